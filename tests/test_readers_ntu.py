"""NTU raw-format details on written files: person selection (denoising), structure errors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from readerfiles import ntu_text, upright_body
from sugar.errors import DataError
from sugar.skeleton.readers import read_file

NAME = "S001C001P001R001A050.skeleton"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / NAME
    path.write_text(text)
    return path


def test_denoising_keeps_two_most_active_real_bodies(tmp_path: Path):
    frames = 40
    wide = upright_body(frames, 3, motion=0.5, width=2.0, height=0.5)  # wider than tall: furniture-like noise
    bodies = {
        "111": (range(frames), upright_body(frames, 1, motion=0.01)),   # real, calm
        "222": (range(5, 40), upright_body(35, 2, motion=0.1)),          # real, active, appears at frame 5
        "333": (range(10, 20), upright_body(10, 4, motion=0.9)),         # 10 frames only: noise
        "444": (range(frames), wide),                                     # wide: noise
    }
    [s] = read_file(_write(tmp_path, ntu_text(bodies, frames)))
    assert s.joints.shape == (2, frames, 25, 3) and s.meta["bodies"] == 4 and s.label == 49
    np.testing.assert_allclose(s.joints[0, 5:], bodies["222"][1], atol=1e-5)  # most active first
    assert not s.joints[0, :5].any()  # absent before it appears
    np.testing.assert_allclose(s.joints[1], bodies["111"][1], atol=1e-5)


def test_single_noisy_body_is_kept(tmp_path: Path):
    bodies = {"9": (range(8), upright_body(8, 0, motion=0.1))}
    [s] = read_file(_write(tmp_path, ntu_text(bodies, 8)))
    assert s.joints.shape == (1, 8, 25, 3)


def test_frames_without_bodies_are_zero(tmp_path: Path):
    bodies = {"9": (range(2, 6), upright_body(4, 0, motion=0.1))}
    [s] = read_file(_write(tmp_path, ntu_text(bodies, 8)))
    assert s.num_frames == 8 and not s.joints[0, :2].any() and not s.joints[0, 6:].any()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t[: len(t) // 2], "truncated"),
    (lambda t: t.replace("\n25\n", "\n24\n", 1), "expected 25 joints, got 24"),
    (lambda t: "9" + t, "unexpected values|truncated"),
    (lambda t: t + "1 2 3\n", "unexpected values after the last"),
    (lambda t: re.sub(r"\n-?\d+\.\d{6} ", "\nnan ", t, count=1), "NaN or infinite"),
    (lambda t: re.sub(r"\n-?\d+\.\d{6} ", "\nabc ", t, count=1), "'abc'.*not a number"),
    (lambda t: "", "empty file"),
    (lambda t: "0\n", "frame count is 0"),
    (lambda t: "2\n0\n0\n", "no body"),
])  # fmt: skip
def test_structure_errors(tmp_path: Path, edit, message):
    bodies = {"9": (range(6), upright_body(6, 0, motion=0.1))}
    with pytest.raises(DataError, match=message) as info:
        read_file(_write(tmp_path, edit(ntu_text(bodies, 6))))
    assert NAME in str(info.value)


def test_body_id_switch_joins_one_person(tmp_path: Path):
    """NTU body ids often change mid-clip: two non-overlapping bodies are one person (CTR-GCN's slot rule)."""
    first, second = upright_body(20, 1, motion=0.1), upright_body(20, 2, motion=0.05)
    bodies = {"111": (range(0, 20), first), "222": (range(20, 40), second)}
    [s] = read_file(_write(tmp_path, ntu_text(bodies, 40)))
    assert s.joints.shape == (1, 40, 25, 3) and s.meta["bodies"] == 2
    assert s.joints[0].reshape(40, -1).any(axis=1).all()  # every frame filled
    np.testing.assert_allclose(s.joints[0, :20], first, atol=1e-5)
    np.testing.assert_allclose(s.joints[0, 20:], second, atol=1e-5)


def test_overlapping_fragments_fill_second_slot(tmp_path: Path):
    """A third body overlapping both slots is dropped; one overlapping only slot 0 joins slot 1."""
    bodies = {
        "1": (range(0, 40), upright_body(40, 1, motion=0.3)),   # most active: slot 0 = [0, 39]
        "2": (range(0, 20), upright_body(20, 2, motion=0.1)),   # overlaps slot 0 -> slot 1 = [0, 19]
        "3": (range(20, 40), upright_body(20, 3, motion=0.05)),  # overlaps slot 0, not slot 1 -> slot 1
        "4": (range(10, 30), upright_body(20, 4, motion=0.01)),  # overlaps both -> dropped
    }
    [s] = read_file(_write(tmp_path, ntu_text(bodies, 40)))
    assert s.joints.shape == (2, 40, 25, 3)
    np.testing.assert_allclose(s.joints[1, :20], bodies["2"][1], atol=1e-5)
    np.testing.assert_allclose(s.joints[1, 20:], bodies["3"][1], atol=1e-5)
