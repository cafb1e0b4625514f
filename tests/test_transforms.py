"""Invariants of the skeleton transforms (layout-aware steps on [M,T,V,C])."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sugar.config import DataConfig
from sugar.errors import ConfigError
from sugar.skeleton import transforms as tf
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.torchdata import SkeletonTensorDataset

NTU = get_layout("ntu25")


def _person(rng: np.random.Generator, frames: int = 30, offset=(0.3, -0.2, 3.0)) -> np.ndarray:
    """A random but non-degenerate skeleton track [T,V,3] around `offset`."""
    base = rng.normal(0, 0.3, size=(NTU.num_joints, 3))
    drift = np.linspace(0, 1, frames)[:, None, None] * rng.normal(0, 0.1, size=(1, NTU.num_joints, 3))
    return (base[None] + drift + np.asarray(offset)).astype(np.float32)


def _two_people(rng: np.random.Generator, frames: int = 30) -> np.ndarray:
    x = np.zeros((2, frames, NTU.num_joints, 3), dtype=np.float32)
    x[0] = _person(rng, frames)
    x[1, 5:20] = _person(rng, frames, offset=(1.0, 0.0, 3.5))[5:20]  # second person only in frames 5..19
    return x


def test_centre_puts_centre_joint_at_origin_in_first_frame_and_keeps_zeros():
    x = _two_people(np.random.default_rng(0))
    out = tf.centre(x, NTU)
    np.testing.assert_allclose(out[0, 0, list(NTU.centre)].mean(axis=0), 0, atol=1e-6)
    assert not out[1, :5].any() and not out[1, 20:].any()  # absent frames stay exactly zero
    # the shift is the same everywhere a person is present
    shift = x[0, 0, NTU.centre[0]] - out[0, 0, NTU.centre[0]]
    np.testing.assert_allclose(x[1, 10] - out[1, 10], np.broadcast_to(shift, (NTU.num_joints, 3)), atol=1e-5)


def test_centre_uses_first_present_frame_when_person_zero_is_absent_at_start():
    x = _two_people(np.random.default_rng(1))
    x[0, :3] = 0
    out = tf.centre(x, NTU)
    np.testing.assert_allclose(out[0, 3, list(NTU.centre)].mean(axis=0), 0, atol=1e-6)
    assert not out[0, :3].any()


@pytest.mark.parametrize("layout_name", ["ntu25", "kinect20", "msr20"])
def test_align_puts_hips_on_x_and_spine_vertical(layout_name):
    layout = get_layout(layout_name)
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.3, size=(1, 10, layout.num_joints, 3)).astype(np.float32)
    out = tf.align(x, layout)
    hip = out[0, 0, layout.left_hip] - out[0, 0, layout.right_hip]
    assert np.linalg.norm(hip[1:]) < 1e-5 * np.linalg.norm(hip) and hip[0] > 0  # parallel to +x
    spine = out[0, 0, layout.spine_top] - out[0, 0, layout.spine_base]
    assert abs(spine[2]) < 1e-5 and spine[1] > 0  # spine in the x-y plane, pointing up
    # a rotation: distances between joints are unchanged
    d_in = np.linalg.norm(x[0, 4, 3] - x[0, 4, 7])
    d_out = np.linalg.norm(out[0, 4, 3] - out[0, 4, 7])
    assert d_out == pytest.approx(d_in, rel=1e-5)


def test_align_makes_spine_exactly_vertical_when_it_is_perpendicular_to_hips():
    x = np.random.default_rng(3).normal(0, 0.3, size=(1, 4, NTU.num_joints, 3)).astype(np.float32)
    rot = tf.random_rotation(np.random.default_rng(4), np.pi)
    # build an upright body (hips on x, spine on y), then rotate it arbitrarily
    x[0, 0, NTU.right_hip] = [-0.1, 0, 0]
    x[0, 0, NTU.left_hip] = [0.1, 0, 0]
    x[0, 0, NTU.spine_base] = [0, 0, 0]
    x[0, 0, NTU.spine_top] = [0, 0.5, 0]
    out = tf.align(tf.rotate(x, rot), NTU)
    spine = out[0, 0, NTU.spine_top] - out[0, 0, NTU.spine_base]
    np.testing.assert_allclose(spine, [0, 0.5, 0], atol=1e-5)


def test_rotation_keeps_absent_persons_zero():
    x = _two_people(np.random.default_rng(5))
    out = tf.RandomRotate(0.5)(x, np.random.default_rng(0))
    assert not out[1, :5].any()
    assert not tf.align(x, NTU)[1, 25:].any()


def test_resample_lengths_and_uniform_test_resize():
    x = _two_people(np.random.default_rng(6), frames=30)
    for frames in (1, 7, 30, 64, 300):
        assert tf.resample(x, frames).shape == (2, frames, NTU.num_joints, 3)
    out = tf.resample(x, 59)  # 30 -> 59 frames: every second output frame is an original one
    np.testing.assert_allclose(out[0, ::2], x[0], atol=1e-6)


def test_resample_drops_trailing_zero_frames_first():
    x = _two_people(np.random.default_rng(7), frames=30)
    padded = np.concatenate([x, np.zeros_like(x)], axis=1)
    np.testing.assert_allclose(tf.resample(padded, 16), tf.resample(x, 16))


def test_resize_does_not_blend_present_frames_with_absent_ones():
    x = _two_people(np.random.default_rng(8), frames=30)
    out = tf.resize_time(x, 97)
    src = np.linspace(0, 29, 97)
    for t, p in enumerate(src):
        if x[1, int(np.floor(p))].any() != x[1, int(np.ceil(p))].any():  # neighbours disagree on presence
            lo = int(np.floor(p))
            nearest = x[1, lo if p - lo < 0.5 else lo + 1]
            np.testing.assert_array_equal(out[1, t], nearest)


def test_crop_window_bounds():
    rng = np.random.default_rng(9)
    for length in (1, 2, 10, 103):
        for _ in range(200):
            start, end = tf.crop_window(length, rng, (0.5, 1.0))
            assert 0 <= start < end <= length
            assert end - start >= min(length, max(1, int(np.floor(0.5 * length))))
    assert tf.crop_window(50, None, (0.5, 1.0)) == (0, 50)


def test_bone_of_root_is_zero_and_children_are_differences():
    x = _two_people(np.random.default_rng(10))
    out = tf.bone(x, NTU)
    root = NTU.parents().index(-1)
    assert not out[:, :, root].any()
    child, parent = NTU.bones[0]
    np.testing.assert_allclose(out[0, 3, child], x[0, 3, child] - x[0, 3, parent], atol=1e-6)
    assert not out[1, :5].any()


def test_motion_last_frame_zero_and_no_jump_into_absence():
    x = _two_people(np.random.default_rng(11))
    out = tf.motion(x)
    assert not out[:, -1].any()
    np.testing.assert_allclose(out[0, 3], x[0, 4] - x[0, 3], atol=1e-6)
    assert not out[1, 4].any() and not out[1, 19].any()  # frames 4->5 and 19->20 cross an absence


def test_pad_persons_shapes():
    x = _two_people(np.random.default_rng(12))
    assert tf.pad_persons(x, 1).shape[0] == 1
    padded = tf.pad_persons(x, 4)
    assert padded.shape == (4, 30, NTU.num_joints, 3) and not padded[2:].any()


def test_drop_trailing_zero_frames():
    x = _two_people(np.random.default_rng(13))
    padded = np.concatenate([x, np.zeros((2, 7, NTU.num_joints, 3), np.float32)], axis=1)
    assert tf.drop_trailing_zero_frames(padded).shape[1] == 30


@pytest.mark.parametrize("stream", ["joint", "bone", "motion", "bone_motion"])
@pytest.mark.parametrize("train", [True, False])
def test_build_transform_output(stream, train):
    cfg = DataConfig(frames=32, max_persons=2, stream=stream)
    t = tf.build_transform(cfg, NTU, train=train)
    x = _two_people(np.random.default_rng(14))[:1]  # one person in, two out
    out = t(x, np.random.default_rng(0))
    assert out.shape == (3, 32, NTU.num_joints, 2) and out.dtype == np.float32
    assert not out[..., 1].any()  # the padded person stays zero through every step
    again = t(x, np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)
    if not train:
        np.testing.assert_array_equal(out, t(x, np.random.default_rng(123)))  # test time is deterministic


def test_random_frames_are_sorted_valid_frames_and_even_at_test():
    x = np.zeros((1, 40, NTU.num_joints, 3), dtype=np.float32)
    x[0, :30] = np.arange(1, 31, dtype=np.float32)[:, None, None]  # frame t holds t + 1; frames 30.. are padding
    train = tf.random_frames(x, 52, np.random.default_rng(3))[0, :, 0, 0]
    assert train.shape == (52,) and np.all(np.diff(train) >= 0) and train.min() >= 1 and train.max() <= 30
    assert len(np.unique(train)) < 52  # more frames asked than the sequence has: some repeat
    test = tf.random_frames(x, 10, None)[0, :, 0, 0]
    assert test[0] == 1 and test[-1] == 30 and np.all(np.diff(test) > 0)


def test_minmax_maps_each_axis_of_present_frames_to_unit_range_and_keeps_absent_zero():
    x = _two_people(np.random.default_rng(16))
    out = tf.minmax(x)
    present = tf.presence(x)
    coords = out[present]
    np.testing.assert_allclose(coords.min(axis=(0, 1)), -1, atol=1e-6)
    np.testing.assert_allclose(coords.max(axis=(0, 1)), 1, atol=1e-6)
    assert not out[~present].any()
    farther = x.copy()
    farther[present] = farther[present] * 3.0 + 1.0
    np.testing.assert_allclose(tf.minmax(farther), out, atol=1e-5)  # distance and size no longer matter
    # so a per-axis random scale before it is undone too: random_scale does nothing under normalize=minmax (as the
    # scale of CTR-GCN's NW-UCLA feeder, applied before its min-max)
    stretched = tf.RandomScale(0.5, 1.5)(x, np.random.default_rng(5))
    assert not np.allclose(stretched[present], x[present])
    np.testing.assert_allclose(tf.minmax(stretched), out, atol=1e-5)


def test_rotation_only_about_the_named_axes():
    r = tf.random_rotation(np.random.default_rng(4), 1.0, axes="x")
    np.testing.assert_allclose(r[0], [1, 0, 0], atol=1e-12)  # about x: x stays put
    r = tf.random_rotation(np.random.default_rng(4), 1.0, axes="xy")
    assert not np.allclose(r, np.eye(3))


def test_ctrgcn_ucla_recipe_chain():
    cfg = DataConfig(frames=52, max_persons=1, align=False, sampling="random", random_rotate=1.0, rotate_axes="xy",
                     normalize="minmax")
    x = _two_people(np.random.default_rng(17))[:1]
    for train in (True, False):
        out = tf.build_transform(cfg, NTU, train=train)(x, np.random.default_rng(0))
        assert out.shape == (3, 52, NTU.num_joints, 1)
        np.testing.assert_allclose(out.reshape(3, -1).min(axis=1), -1, atol=1e-5)


def test_build_transform_rejects_bad_settings():
    with pytest.raises(ConfigError):
        tf.build_transform(DataConfig(stream="rgb"), NTU, train=True)
    for bad in (DataConfig(sampling="every"), DataConfig(normalize="zscore"), DataConfig(rotate_axes="xw")):
        with pytest.raises(ConfigError):
            tf.build_transform(bad, NTU, train=True)
    with pytest.raises(ConfigError):
        tf.build_transform(DataConfig(random_crop=(0.0, 1.0)), NTU, train=True)


def test_tensor_dataset_reproducible_per_epoch():
    from sugar.skeleton.sample import Sample

    rng = np.random.default_rng(15)
    samples = [Sample(f"s{i}", _two_people(rng), i % 3) for i in range(4)]
    t = tf.build_transform(DataConfig(frames=16), NTU, train=True)
    ds = SkeletonTensorDataset(samples, t, seed=7)
    x0, y0 = ds[2]
    assert x0.shape == (3, 16, NTU.num_joints, 2) and x0.dtype == torch.float32 and y0 == 2
    assert torch.equal(ds[2][0], x0)
    ds.set_epoch(1)
    assert not torch.equal(ds[2][0], x0)
    ds.set_epoch(0)
    assert torch.equal(ds[2][0], x0)
    assert torch.equal(SkeletonTensorDataset(samples, t, seed=7)[2][0], x0)
