"""Property tests: mangled versions of real and written files fed to every reader. Whatever the damage
(truncation, flipped/inserted/deleted bytes, NaN/inf/text numbers, dropped or duplicated lines, wrong joint
counts), a reader either returns valid samples or raises DataError; no other exception may escape."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from readerfiles import npz_file, openpose_frames, pku_files, pyskl_file, toyota_file
from sugar.errors import DataError
from sugar.paths import shared_data_dir
from sugar.skeleton.readers import read_file

DATA = shared_data_dir()
REAL = {
    "ntu": DATA / "ntu_rgbd" / "samples" / "S001C003P008R002A058.skeleton",
    "nw-ucla": DATA / "nw_ucla" / "all_sqe" / "a01_s01_e00_v01.json",
    "msr": DATA / "msr_action3d" / "real_world_coordinates" / "a01_s01_e01_skeleton3D.txt",
    "openpose": DATA / "kinetics_skeleton" / "samples" / "sAP-xS5P0Bw.json",
}
BINARY = {"pyskl", "ctrgcn-npz", "npy"}
BAD_NUMBERS = ["nan", "NaN", "inf", "-inf", "Infinity", "abc", "1e999", "", "0x1F", "1,5", "--2", "9" * 30, "25", "0"]
NUMBER = re.compile(rb"-?\d+(\.\d+)?(e-?\d+)?")


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One pristine file per format: the real ones when the shared data is here, plus written ones."""
    folder = tmp_path_factory.mktemp("originals")
    files = {fmt: p for fmt, p in REAL.items() if p.is_file()}
    files["pku-mmd"] = pku_files(folder / "pku", frames=30)
    files["toyota"] = toyota_file(folder)
    files["pyskl"] = pyskl_file(folder)
    files["ctrgcn-npz"] = npz_file(folder)
    np.save(folder / "one.npy", np.random.default_rng(0).normal(size=(1, 6, 17, 3)).astype(np.float32))
    files["npy"] = folder / "one.npy"
    return files


byte_edit = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64)),
)
text_edit = st.one_of(
    byte_edit,
    st.tuples(st.just("number"), st.floats(0, 1), st.sampled_from(BAD_NUMBERS)),
    st.tuples(st.just("dropline"), st.floats(0, 1)),
    st.tuples(st.just("dupline"), st.floats(0, 1)),
    st.tuples(st.just("json"), st.integers(0, 2**32 - 1)),
)


def _at(data: bytes, frac: float) -> int:
    return min(int(frac * len(data)), max(len(data) - 1, 0))


def _json_edit(data: bytes, seed: int) -> bytes:
    """Structural damage to a JSON document: a list loses, repeats or corrupts one element."""
    try:
        doc = json.loads(data)
    except ValueError:
        return data
    rnd = random.Random(seed)
    lists: list[list] = []

    def walk(node: object) -> None:
        if isinstance(node, list):
            lists.append(node)
            for x in node:
                walk(x)
        elif isinstance(node, dict):
            for x in node.values():
                walk(x)

    walk(doc)
    if lists:
        target = rnd.choice(lists)
        action = rnd.choice(["drop", "dup", "replace"])
        if target and action == "drop":
            target.pop(rnd.randrange(len(target)))
        elif target and action == "dup":
            target.insert(0, target[rnd.randrange(len(target))])
        elif target:
            target[rnd.randrange(len(target))] = rnd.choice([None, "x", float("nan"), [], {}, True, 1e308])
    return json.dumps(doc).encode()


def mangle(data: bytes, edits: list[tuple]) -> bytes:
    for edit in edits:
        kind = edit[0]
        if kind == "truncate":
            data = data[: int(edit[1] * len(data))]
        elif kind == "flip" and data:
            i = _at(data, edit[1])
            data = data[:i] + bytes([data[i] ^ (edit[2] or 1)]) + data[i + 1 :]
        elif kind == "insert":
            i = _at(data, edit[1])
            data = data[:i] + edit[2] + data[i:]
        elif kind == "delete":
            i = _at(data, edit[1])
            data = data[:i] + data[i + edit[2] :]
        elif kind == "number":
            found = list(NUMBER.finditer(data))
            if found:
                m = found[min(int(edit[1] * len(found)), len(found) - 1)]
                data = data[: m.start()] + edit[2].encode() + data[m.end() :]
        elif kind in ("dropline", "dupline"):
            lines = data.split(b"\n")
            i = min(int(edit[1] * len(lines)), len(lines) - 1)
            lines[i:i + 1] = [] if kind == "dropline" else [lines[i], lines[i]]
            data = b"\n".join(lines)
        elif kind == "json":
            data = _json_edit(data, edit[1])
    return data


def check(fmt: str, original: Path, damaged: bytes, workdir: Path) -> None:
    target = workdir / original.relative_to(original.parent.parent) if fmt == "pku-mmd" else workdir / original.name
    if fmt == "pku-mmd":  # keep the label file beside it
        (workdir / "Label").mkdir(parents=True, exist_ok=True)
        (workdir / "Label" / original.name).write_bytes((original.parent.parent / "Label" / original.name).read_bytes())
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(damaged)
    try:
        samples = read_file(target, format=fmt)
    except DataError as exc:
        assert str(target) in str(exc) or exc.path is not None
        return
    for s in samples:  # anything returned is a valid skeleton
        assert s.joints.dtype == np.float32 and s.joints.ndim == 4 and np.isfinite(s.joints).all()


FORMAT_NAMES = ["ntu", "nw-ucla", "msr", "openpose", "pku-mmd", "toyota", "pyskl", "ctrgcn-npz", "npy"]


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mangled_files_only_raise_data_error(fmt: str, originals: dict[str, Path], tmp_path: Path, data: st.DataObject):
    if fmt not in originals:
        pytest.skip(f"real {fmt} file not available")
    original = originals[fmt]
    edits = data.draw(st.lists(byte_edit if fmt in BINARY else text_edit, min_size=1, max_size=3), label="edits")
    check(fmt, original, mangle(original.read_bytes(), edits), tmp_path)


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_pristine_files_read(fmt: str, originals: dict[str, Path]):
    if fmt not in originals:
        pytest.skip(f"real {fmt} file not available")
    assert read_file(originals[fmt], format=fmt)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(part=st.sampled_from(["manifest.csv", "layout.json", "classes.txt"]),
       edits=st.lists(text_edit, min_size=1, max_size=3))
def test_mangled_generic_folder_only_raises_data_error(tmp_path: Path, part: str, edits: list[tuple]):
    import shutil

    from sugar.skeleton.folders import scan
    from sugar.skeleton.readers import write_generic
    from sugar.skeleton.sample import Sample

    pristine = tmp_path / "pristine"
    if not pristine.exists():
        r = np.random.default_rng(0)
        samples = [Sample(f"s{i}", r.normal(size=(1, 6, 25, 3)).astype(np.float32), i % 2) for i in range(3)]
        write_generic(samples, "ntu25", ["a", "b"], ["train", "test", "train"], pristine)
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    (work / part).write_bytes(mangle((pristine / part).read_bytes(), edits))
    for call in (lambda: read_file(work, format="generic"), lambda: scan(work).samples):
        try:
            samples = call()
        except DataError:
            continue
        for s in samples:  # anything returned is a valid skeleton
            assert s.joints.dtype == np.float32 and s.joints.ndim == 4 and np.isfinite(s.joints).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=st.integers(0, 4), joints=st.sampled_from([25, 18]), edits=st.lists(text_edit, min_size=1, max_size=3))
def test_mangled_openpose_frame_only_raises_data_error(tmp_path: Path, frame: int, joints: int, edits: list[tuple]):
    """One damaged *_keypoints.json in an OpenPose output folder (BODY_25 or COCO-18)."""
    import shutil

    pristine = tmp_path / f"pristine{joints}"
    if not pristine.exists():
        openpose_frames(pristine, frames=5, joints=joints)
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(pristine, work)
    target = sorted(work.iterdir())[frame]
    target.write_bytes(mangle(target.read_bytes(), edits))
    try:
        samples = read_file(work, format="openpose-frames")
    except DataError as exc:
        assert exc.path is not None
        return
    for s in samples:  # anything returned is a valid skeleton
        assert s.joints.dtype == np.float32 and s.joints.shape[2:] == (18, 3) and np.isfinite(s.joints).all()
