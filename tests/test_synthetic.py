"""The procedural dataset: valid samples, reproducible, kinematically sound, and learnable."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sugar.skeleton.layouts import get_layout
from sugar.skeleton.synthetic import SYNTHETIC_CLASSES, make_synthetic

LAYOUT = get_layout("ntu25")


def _bone_lengths(joints: np.ndarray) -> np.ndarray:
    """[M, T, V, 3] -> [M, T, bones]."""
    child, parent = np.array(LAYOUT.bones).T
    return np.linalg.norm(joints[:, :, child] - joints[:, :, parent], axis=-1)


def test_shapes_dtype_and_labels() -> None:
    samples = make_synthetic(2, seed=0)
    assert len(samples) == 2 * len(SYNTHETIC_CLASSES)
    assert sorted({s.label for s in samples}) == list(range(len(SYNTHETIC_CLASSES)))
    for s in samples:
        assert s.joints.dtype == np.float32
        assert s.joints.shape[0] == 1 and s.joints.shape[2:] == (25, 3)
        assert 40 <= s.num_frames <= 100
        assert np.isfinite(s.joints).all()
        s.validate(num_joints=25)
        action = SYNTHETIC_CLASSES[s.label]
        assert s.meta["action"] == action
        assert s.name.startswith(f"syn_{action.replace(' ', '_')}_")
        assert {"speed", "amplitude", "body_size", "yaw_deg", "distance_m", "noise_m"} <= set(s.meta)


def test_kinect_convention() -> None:
    """y up, persons 2.5-3.5 m in front of the camera (z), a person facing the camera has left at smaller x."""
    for s in make_synthetic(3, seed=4, noise_mm=(0, 0)):
        first = s.joints[0, 0]
        assert (
            first[LAYOUT.index("head"), 1] > first[LAYOUT.index("spine_base"), 1] > first[LAYOUT.index("left_foot"), 1]
        )
        assert 2.0 < first[LAYOUT.index("spine_mid"), 2] < 4.0
        if abs(s.meta["yaw_deg"]) < 30:
            assert first[LAYOUT.index("left_shoulder"), 0] < first[LAYOUT.index("right_shoulder"), 0]


def test_deterministic_and_extendable() -> None:
    a = make_synthetic(2, seed=7)
    b = make_synthetic(2, seed=7)
    c = make_synthetic(3, seed=7)
    assert [s.name for s in a] == [s.name for s in b]
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.joints, y.joints)
        assert x.meta == y.meta
    np.testing.assert_array_equal(a[1].joints, c[1].joints)  # sample i depends on (seed, class, i) only
    d = make_synthetic(2, seed=8)
    assert not np.array_equal(a[0].joints, d[0].joints)


def test_bone_lengths_constant_over_time() -> None:
    """Forward kinematics keeps every bone rigid; noise only jitters them by millimetres."""
    for s in make_synthetic(2, seed=1, noise_mm=(0, 0)):
        lengths = _bone_lengths(s.joints)
        assert np.abs(lengths - lengths[:, :1]).max() < 1e-4, s.name
        assert lengths.min() > 0.02 and lengths.max() < 0.6
    for s in make_synthetic(1, seed=1):
        assert _bone_lengths(s.joints).std(axis=1).max() < 0.03


def test_body_size_varies_and_lengths_vary() -> None:
    samples = make_synthetic(6, seed=2, noise_mm=(0, 0))
    assert len({s.num_frames for s in samples}) > 10
    thigh = [c for c, _ in LAYOUT.bones].index(LAYOUT.index("left_knee"))
    thighs = {round(float(_bone_lengths(s.joints)[0, 0, thigh]), 3) for s in samples}
    assert len(thighs) > 10
    short = make_synthetic(1, seed=0, min_frames=12, max_frames=12)
    assert {s.num_frames for s in short} == {12}


def test_two_persons() -> None:
    samples = make_synthetic(4, seed=3, two_person_fraction=1.0)
    for s in samples:
        assert s.num_persons == 2 and s.meta["num_persons"] == 2
        gap = np.linalg.norm(s.joints[0, 0, 0] - s.joints[1, 0, 0])
        assert gap > 0.5  # the bystander stands beside the actor, not inside them
    assert {s.num_persons for s in make_synthetic(2, seed=3)} == {1}


def test_within_class_variety() -> None:
    samples = make_synthetic(4, seed=5)
    for c in range(len(SYNTHETIC_CLASSES)):
        same = [s for s in samples if s.label == c]
        metas = {(s.meta["yaw_deg"], s.meta["body_size"], s.num_frames) for s in same}
        assert len(metas) == len(same)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        make_synthetic(1, 0, min_frames=50, max_frames=40)
    with pytest.raises(ValueError):
        make_synthetic(1, 0, two_person_fraction=2.0)
    with pytest.raises(ValueError):
        make_synthetic(1, 0, classes=("dance",))
    subset = make_synthetic(2, 0, classes=("jump", "bow"))
    assert [s.label for s in subset] == [5, 5, 7, 7]


def _pooled(s) -> np.ndarray:
    """View-invariant pooled features: heights and distances of joints relative to the spine base."""
    j = s.joints[0]
    rel = j - j[:, :1]
    height, dist = rel[..., 1], np.linalg.norm(rel, axis=-1)
    root = j[:, 0, 1] - j[0, 0, 1]
    return np.concatenate(
        [height.mean(0), height.std(0), height.max(0), dist.mean(0), dist.std(0), [root.min(), root.max()]]
    )


def test_classes_are_learnable_on_held_out_samples() -> None:
    """A linear model on pooled features separates the actions on samples from another seed."""
    train, test = make_synthetic(12, seed=0), make_synthetic(6, seed=1)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(np.stack([_pooled(s) for s in train]), [s.label for s in train])
    pred = clf.predict(np.stack([_pooled(s) for s in test]))
    accuracy = float(np.mean(pred == np.array([s.label for s in test])))
    assert accuracy > 0.6, accuracy  # chance is 0.1
