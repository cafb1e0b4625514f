"""The processor: any sample in the model's layout and channels, the same tensor in training and inference."""

from __future__ import annotations

import numpy as np
import pytest

from sugar.config import DataConfig
from sugar.errors import DataError
from sugar.skeleton.layouts import get_layout
from sugar.skeleton.processor import Processor
from sugar.skeleton.sample import Sample
from sugar.skeleton.synthetic import make_synthetic


def test_processor_round_trips_and_matches_the_training_transform(tmp_path) -> None:
    layout = get_layout("ntu25")
    processor = Processor.from_config(DataConfig(frames=20, max_persons=1, stream="bone"), layout, 3)
    processor.save_pretrained(tmp_path)
    loaded = Processor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    sample = make_synthetic(1, seed=3)[0]
    x = loaded(sample)
    assert x.shape == (3, 20, 25, 1)
    np.testing.assert_array_equal(x, processor.transform(train=False)(sample.joints, np.random.default_rng(0)))
    assert loaded.batch([sample, sample]).shape == (2, 3, 20, 25, 1)


def test_processor_converts_by_joint_name_and_names_bad_input() -> None:
    processor = Processor.from_config(DataConfig(frames=8, max_persons=1), get_layout("msr20"), 3)
    joints = np.random.default_rng(0).normal(size=(1, 10, 20, 3)).astype(np.float32)
    kinect = Sample("ucla", joints, meta={"layout": "kinect20"})
    converted = processor.joints(kinect)  # kinect20 -> msr20 by joint name
    msr = get_layout("msr20")
    for j, name in enumerate(msr.joints):
        np.testing.assert_array_equal(converted[:, :, j], joints[:, :, get_layout("kinect20").index(name)])
    assert processor(kinect).shape == (3, 8, 20, 1)
    ntu = make_synthetic(1, seed=1)[0]  # 25 joints, no layout named: cannot be read as msr20
    unnamed = Sample("clip.npy", ntu.joints, meta={"path": "clip.npy"})
    with pytest.raises(DataError, match=r"clip\.npy.*expected 20 joints"):
        processor(unnamed)
    flat = Sample("flat", np.ones((1, 5, 20, 2), np.float32), meta={"path": "flat.json"})
    with pytest.raises(DataError, match=r"flat\.json.*3 channels"):
        processor(flat)



def test_random_scale_and_repeat_augment_each_copy_differently() -> None:
    samples = make_synthetic(1, seed=2, min_frames=20, max_frames=24)[:3]
    cfg = DataConfig(frames=16, max_persons=1, random_rotate=0.0, random_crop=(1.0, 1.0), random_scale=(0.5, 1.5),
                     align=False, centre=False)
    processor = Processor.from_config(cfg, get_layout("ntu25"), 3)
    ds = processor.dataset(samples, train=True, seed=0, repeat=2)
    assert len(ds) == 6
    plain = processor.dataset(samples, train=False)[0][0].numpy()
    first, again = ds[0][0].numpy(), ds[3][0].numpy()  # two copies of sample 0
    assert not np.allclose(first, again)
    ratio = first[:, :, 1:] / np.where(plain[:, :, 1:] == 0, np.nan, plain[:, :, 1:])
    for axis in range(3):  # one factor per axis, within the range
        values = ratio[axis][np.isfinite(ratio[axis])]
        assert 0.5 <= values.mean() <= 1.5 and np.allclose(values, values.mean(), rtol=1e-3)
    assert Processor.from_dict(processor.to_dict()).settings.random_scale == (0.5, 1.5)
