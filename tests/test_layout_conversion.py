"""Cross-dataset layout conversion by joint name (NW-UCLA kinect20 <-> MSR Action3D msr20)."""

from __future__ import annotations

import numpy as np
import pytest

from sugar.errors import LayoutError
from sugar.skeleton.layouts import Layout, convert_joints, get_layout, joint_mapping


def test_kinect20_and_msr20_convert_both_ways_without_loss() -> None:
    src, dst = get_layout("msr20"), get_layout("kinect20")
    joints = np.random.default_rng(0).normal(size=(1, 5, 20, 3)).astype(np.float32)
    converted = convert_joints(joints, src, dst)
    for i, name in enumerate(dst.joints):
        np.testing.assert_array_equal(converted[..., i, :], joints[..., src.index(name), :])
    np.testing.assert_array_equal(convert_joints(converted, dst, src), joints)


def test_missing_joints_are_a_clear_error() -> None:
    with pytest.raises(LayoutError, match=r"coco17 to kinect20.*has no joint"):
        joint_mapping("coco17", "kinect20")


def test_same_layout_by_name_is_untouched() -> None:
    joints = np.zeros((1, 2, 20, 3), np.float32)
    mine = Layout.from_dict({**get_layout("kinect20").to_dict(), "name": "my-own-layout"})
    assert convert_joints(joints, "my-own-layout", mine) is joints


def test_dataset_as_layout(shared_data) -> None:
    from sugar.skeleton.datasets import open_dataset

    msr = open_dataset("msr-action3d", split="test")
    as_kinect = msr.as_layout("kinect20")
    assert as_kinect.layout.name == "kinect20" and len(as_kinect) == len(msr)
    a, b = msr[0], as_kinect[0]
    head = (get_layout("msr20").index("head"), get_layout("kinect20").index("head"))
    np.testing.assert_array_equal(a.joints[:, :, head[0]], b.joints[:, :, head[1]])
    assert b.meta["layout"] == "kinect20"
    assert as_kinect.subset([0, 1]).layout.name == "kinect20"
