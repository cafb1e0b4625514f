"""The blazepose33 layout and its conversion by joint name to kinect20 / ntu25 / coco17 / openpose18: exact where
joints coincide, and every derived joint computed from the neighbours DERIVED_JOINTS names."""

from __future__ import annotations

import numpy as np
import pytest

from sugar.errors import LayoutError
from sugar.skeleton.layouts import conversion_matrix, convert_joints, derived_joints, get_layout

TARGETS = ("kinect20", "ntu25", "coco17", "openpose18")


def _pose(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, 4, 33, 3)).astype(np.float32)


def test_blazepose33_is_the_mediapipe_order() -> None:
    bp = get_layout("blazepose33")
    assert bp.num_joints == 33 and bp.is_connected()
    # MediaPipe's documented indices of a few landmarks
    for name, idx in {"nose": 0, "left_ear": 7, "left_shoulder": 11, "right_wrist": 16, "left_hip": 23,
                      "right_ankle": 28, "right_foot_index": 32}.items():
        assert bp.index(name) == idx
    assert set(bp.parts) == {"head", "hand", "arm", "hip", "leg", "foot"}


@pytest.mark.parametrize("target", TARGETS)
def test_coinciding_joints_are_copied_exactly(target: str) -> None:
    bp, dst = get_layout("blazepose33"), get_layout(target)
    joints = _pose()
    out = convert_joints(joints, bp, dst)
    assert out.shape == (2, 4, dst.num_joints, 3) and out.dtype == np.float32
    shared = [j for j in dst.joints if j in bp.joints]
    assert shared, target
    for name in shared:
        np.testing.assert_array_equal(out[..., dst.index(name), :], joints[..., bp.index(name), :])


def _mid(joints: np.ndarray, a: str, b: str) -> np.ndarray:
    bp = get_layout("blazepose33")
    return (joints[..., bp.index(a), :] + joints[..., bp.index(b), :]) / 2


EXPECTED = {  # every derived joint, written out independently of DERIVED_JOINTS
    ("kinect20", "hip_center"): lambda j: _mid(j, "left_hip", "right_hip"),
    ("kinect20", "shoulder_center"): lambda j: _mid(j, "left_shoulder", "right_shoulder"),
    ("kinect20", "spine"): lambda j: 0.83 * _mid(j, "left_hip", "right_hip")
    + 0.17 * _mid(j, "left_shoulder", "right_shoulder"),
    ("kinect20", "head"): lambda j: _mid(j, "left_ear", "right_ear"),
    ("kinect20", "left_hand"): lambda j: 0.5 * j[..., 15, :] + 0.25 * _mid(j, "left_index", "left_pinky") * 2,
    ("kinect20", "right_hand"): lambda j: 0.5 * j[..., 16, :] + 0.25 * _mid(j, "right_index", "right_pinky") * 2,
    ("kinect20", "left_foot"): lambda j: j[..., 31, :],
    ("kinect20", "right_foot"): lambda j: j[..., 32, :],
    ("ntu25", "spine_base"): lambda j: _mid(j, "left_hip", "right_hip"),
    ("ntu25", "spine_shoulder"): lambda j: _mid(j, "left_shoulder", "right_shoulder"),
    ("ntu25", "spine_mid"): lambda j: 0.43 * _mid(j, "left_hip", "right_hip")
    + 0.57 * _mid(j, "left_shoulder", "right_shoulder"),
    ("ntu25", "neck"): lambda j: 0.65 * _mid(j, "left_shoulder", "right_shoulder")
    + 0.35 * _mid(j, "left_ear", "right_ear"),
    ("ntu25", "head"): lambda j: _mid(j, "left_ear", "right_ear"),
    ("ntu25", "left_hand"): lambda j: 0.5 * j[..., 15, :] + 0.25 * (j[..., 19, :] + j[..., 17, :]),
    ("ntu25", "right_hand"): lambda j: 0.5 * j[..., 16, :] + 0.25 * (j[..., 20, :] + j[..., 18, :]),
    ("ntu25", "left_hand_tip"): lambda j: j[..., 19, :],
    ("ntu25", "right_hand_tip"): lambda j: j[..., 20, :],
    ("ntu25", "left_foot"): lambda j: j[..., 31, :],
    ("ntu25", "right_foot"): lambda j: j[..., 32, :],
    ("openpose18", "neck"): lambda j: _mid(j, "left_shoulder", "right_shoulder"),
}


@pytest.mark.parametrize("target", TARGETS)
def test_every_derived_joint_is_tested_and_listed(target: str) -> None:
    derived = derived_joints("blazepose33", target)
    assert set(derived) == {j for (t, j) in EXPECTED if t == target}
    for weights in derived.values():
        assert sum(weights.values()) == pytest.approx(1.0)  # a weighted mean: translation is preserved


@pytest.mark.parametrize(("target", "joint"), sorted(EXPECTED))
def test_derived_joint_values(target: str, joint: str) -> None:
    joints = _pose(1)
    out = convert_joints(joints, "blazepose33", target)
    np.testing.assert_allclose(out[..., get_layout(target).index(joint), :], EXPECTED[(target, joint)](joints),
                               rtol=1e-5, atol=1e-6)


def test_conversion_is_linear_and_keeps_translation() -> None:
    w = conversion_matrix("blazepose33", "kinect20")
    assert w.shape == (20, 33)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    shift = np.array([1.0, -2.0, 3.0], np.float32)
    joints = _pose(2)
    np.testing.assert_allclose(convert_joints(joints + shift, "blazepose33", "kinect20"),
                               convert_joints(joints, "blazepose33", "kinect20") + shift, rtol=1e-5, atol=1e-5)


def test_joints_that_cannot_be_derived_are_a_clear_error() -> None:
    with pytest.raises(LayoutError, match=r"coco17 to kinect20.*left_hand.*cannot be derived"):
        convert_joints(np.zeros((1, 1, 17, 3), np.float32), "coco17", "kinect20")
