"""Readers against huge numbers and bombs: no number or declared size in a file may make a reader (or
`sugar data inspect`) allocate what the file does not hold.

Hypothesis puts a huge (or non-finite, or negative) number into every numeric field of every format; the
reader must return valid samples or raise DataError, and `folders.scan` (what `sugar data inspect` runs) must
stay within a small memory budget. Hand-made bombs (a zip bomb .npz, an .npy whose header lies, pickles that
ask for gigabytes) are refused before anything is allocated.
"""

from __future__ import annotations

import codecs
import json
import pickle
import subprocess
import sys
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sugar.cli import app
from sugar.errors import DataError
from sugar.skeleton.folders import scan
from sugar.skeleton.readers import read_file

BUDGET = 64 * 2**20  # bytes a tiny file may cost the reader, whatever it declares

HUGE = st.one_of(
    st.sampled_from([10**20, -(10**20), 10**40, 2**63, 2**64, -1, 1e20, 1e308, -1e308, float("inf"),
                     float("-inf"), float("nan"), 1e6 + 0.5]),
    st.integers(min_value=10**6, max_value=10**300),
    st.floats(min_value=1e6, allow_infinity=True),
    st.floats(max_value=-1e6, allow_infinity=True),
)


def text(value: Any) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


# ------------------------------------------------------------------ one small file per format, any field replaced

def ntu(folder: Path, field: str, v: Any) -> Path:
    rows = [text(v) if field == "frames" else "2"]
    for _ in range(2):
        rows.append(text(v) if field == "bodies" else "1")
        info = ["72057594037931101", "0", "1", "1", "1", "1", "0", "0.01", "0.02", "2"]
        if field == "body_info":
            info[7] = text(v)
        rows.append(" ".join(info))
        rows.append(text(v) if field == "joints" else "25")
        for j in range(25):
            vals = [f"{0.01 * j:.3f}", f"{0.05 * j:.3f}", "3.0", "250", "180", "1000", "500", "0.1", "0.2", "0.9",
                    "0.1", "2"]
            if j == 3 and field == "coord":
                vals[1] = text(v)
            if j == 3 and field == "other":
                vals[5] = text(v)
            rows.append(" ".join(vals))
    path = folder / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(rows) + "\n")
    return path


def nw_ucla(folder: Path, field: str, v: Any) -> Path:
    joints = (np.arange(4 * 20 * 3).reshape(4, 20, 3) / 100).tolist()
    if field == "coord":
        joints[1][2][0] = v
    doc = {"file_name": "a01_s01_e00_v01", "skeletons": joints, "label": v if field == "label" else 1}
    path = folder / "a01_s01_e00_v01.json"
    path.write_text(json.dumps(doc))
    return path


def msr(folder: Path, field: str, v: Any) -> Path:
    rows = [[f"{0.01 * i:.3f}", f"{0.02 * i:.3f}", "2.5", "1"] for i in range(3 * 20)]
    if field in ("coord", "confidence"):
        rows[5][{"coord": 1, "confidence": 3}[field]] = text(v)
    path = folder / "a01_s01_e01_skeleton3D.txt"
    path.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    return path


def pku_mmd(folder: Path, field: str, v: Any) -> Path:
    (folder / "skeleton").mkdir()
    (folder / "Label").mkdir()
    rows = [[f"{0.01 * (i + k):.3f}" for k in range(75)] + ["0"] * 75 for i in range(30)]
    if field == "coord":
        rows[4][7] = text(v)
    label = ["3", "0", "20", "1"]
    if field in ("label", "start", "end", "confidence"):
        label[["label", "start", "end", "confidence"].index(field)] = text(v)
    path = folder / "skeleton" / "0002-L.txt"
    path.write_text("\n".join(" ".join(r) for r in rows) + "\n")
    (folder / "Label" / "0002-L.txt").write_text(",".join(label) + "\n")
    return path


def toyota(folder: Path, field: str, v: Any) -> Path:
    frames = [[{"pose3d": [0.01 * i for i in range(39)], "pose2d": [float(i) for i in range(26)],
                "cumscore": 3.0}] for _ in range(4)]
    det = frames[2][0]
    if field == "coord":
        det["pose3d"][4] = v
    if field in ("pose2d", "cumscore"):
        det[field] = v if field == "cumscore" else [v] * 26
    doc = {"K": v if field == "K" else 20, "njts": v if field == "njts" else 13, "frames": frames}
    path = folder / "Drink.Fromcup_p03_r01_v05_c05_pose3d.json"
    path.write_text(json.dumps(doc))
    return path


def openpose(folder: Path, field: str, v: Any) -> Path:
    data = [{"frame_index": k + 1, "skeleton": [{"pose": [0.1 + 0.01 * i for i in range(36)],
                                                   "score": [0.5] * 18}]} for k in range(3)]
    if field == "frame_index":
        data[-1]["frame_index"] = v
    if field == "pose":
        data[1]["skeleton"][0]["pose"][3] = v
    if field == "score":
        data[1]["skeleton"][0]["score"][3] = v
    doc = {"data": data, "label": "dancing", "label_index": v if field == "label_index" else 3}
    path = folder / "clip.json"
    path.write_text(json.dumps(doc))
    return path


def openpose_frames(folder: Path, field: str, v: Any) -> Path:
    clip = folder / "clip"
    clip.mkdir()
    for t in range(3):
        kp = [0.5 + i for i in range(54)]
        if field == "keypoint" and t == 1:
            kp[4] = v
        doc = {"version": v if field == "version" else 1.3, "people": [{"pose_keypoints_2d": kp}]}
        (clip / f"clip_{t:012d}_keypoints.json").write_text(json.dumps(doc))
    return clip


def _finite64(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:
        return float("inf")


def pyskl(folder: Path, field: str, v: Any) -> Path:
    kp = np.linspace(0, 1, 2 * 5 * 17 * 2).reshape(2, 5, 17, 2)
    score = np.full((2, 5, 17), 0.5)
    if field == "keypoint":
        kp[0, 1, 2, 0] = _finite64(v)
    if field == "score":
        score[0, 1, 2] = _finite64(v)
    ann = {"frame_dir": v if field == "frame_dir" else "clip0", "label": v if field == "label" else 2,
           "total_frames": v if field == "total_frames" else 5, "img_shape": (v, 640) if field == "img_shape"
           else (480, 640), "keypoint": kp, "keypoint_score": score}
    split = {"xsub_train": [v if field == "split" else "clip0"]}
    path = folder / "anno.pkl"
    path.write_bytes(pickle.dumps({"split": split, "annotations": [ann]}, protocol=4))
    return path


def ctrgcn_npz(folder: Path, field: str, v: Any) -> Path:
    x = np.linspace(0, 1, 2 * 6 * 150).reshape(2, 6, 150)
    y = np.array([1, 3], dtype=np.float64)
    if field == "x":
        x[0, 2, 7] = _finite64(v)
    if field == "y":
        y[1] = _finite64(v)
    path = folder / "data.npz"
    np.savez(path, x_train=x, y_train=y)
    return path


def npy(folder: Path, field: str, v: Any) -> Path:
    arr = np.linspace(0, 1, 6 * 17 * 3).reshape(6, 17, 3)
    if field == "value":
        arr[2, 3, 1] = _finite64(v)
    path = folder / "one.npy"
    np.save(path, arr)
    return path


WRITERS: dict[str, tuple[Callable[[Path, str, Any], Path], list[str]]] = {
    "ntu": (ntu, ["frames", "bodies", "body_info", "joints", "coord", "other"]),
    "nw-ucla": (nw_ucla, ["coord", "label"]),
    "msr": (msr, ["coord", "confidence"]),
    "pku-mmd": (pku_mmd, ["coord", "label", "start", "end", "confidence"]),
    "toyota": (toyota, ["coord", "pose2d", "cumscore", "K", "njts"]),
    "openpose": (openpose, ["frame_index", "pose", "score", "label_index"]),
    "openpose-frames": (openpose_frames, ["keypoint", "version"]),
    "pyskl": (pyskl, ["keypoint", "score", "frame_dir", "label", "total_frames", "img_shape", "split"]),
    "ctrgcn-npz": (ctrgcn_npz, ["x", "y"]),
    "npy": (npy, ["value"]),
}


def within_budget(fn: Callable[[], Any]) -> Any:
    """fn() with traced allocations (numpy's included); fails when its peak exceeds BUDGET."""
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < BUDGET, f"peak {peak / 2**20:.0f} MiB"
    return result


def read_or_data_error(path: Path, fmt: str, **kwargs: Any) -> list:
    try:
        samples = within_budget(lambda: read_file(path, format=fmt, **kwargs))
    except DataError as exc:
        assert len(str(exc)) < 600, str(exc)  # one line, not a 309-digit number
        return []
    for s in samples:
        assert s.joints.dtype == np.float32 and s.joints.ndim == 4 and np.isfinite(s.joints).all()
        assert s.label is None or 0 <= s.label <= 100_000
    return samples


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_huge_number_in_any_field(fmt: str, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject):
    write, fields = WRITERS[fmt]
    field = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(HUGE, label="value")
    folder = tmp_path_factory.mktemp(fmt)
    path = write(folder, field, value)
    read_or_data_error(path, fmt)
    read_or_data_error(path, fmt, alone=True, max_bytes=1 << 20)
    try:  # what `sugar data inspect` does with the same file, class names included
        summary = within_budget(lambda: scan(path, fmt).summary())
    except DataError:
        return
    assert len(summary["classes"]) <= 100_001


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_writers_make_readable_files(fmt: str, tmp_path: Path):
    """The templates above are valid as written, so the property test probes the one field it replaces."""
    write, _ = WRITERS[fmt]
    assert read_file(write(tmp_path, "", None), format=fmt)


# ------------------------------------------------------------------ the probes of issue 12

def test_kinetics_label_index_1e20_is_bounded(tmp_path: Path):
    path = openpose(tmp_path, "label_index", 10**20)
    with pytest.raises(DataError, match="label_index = 1e\\+20 is out of range"):
        within_budget(lambda: read_file(path))
    result = within_budget(lambda: CliRunner().invoke(app, ["data", "inspect", str(tmp_path), "--json"]))
    assert result.exit_code == 1 and "out of range" in result.stdout


def test_pyskl_label_10_to_40_is_bounded(tmp_path: Path):
    path = pyskl(tmp_path, "label", 10**40)
    with pytest.raises(DataError, match="label = 1e\\+40 is out of range"):
        within_budget(lambda: read_file(path))


def test_ntu_frame_count_1e308_is_one_short_line(tmp_path: Path):
    path = ntu(tmp_path, "frames", 1e308)
    with pytest.raises(DataError) as err:
        read_file(path)
    assert "1e+308" in str(err.value) and "0" * 20 not in str(err.value)


def test_npz_zip_bomb_is_refused_before_inflating(tmp_path: Path):
    """About a MB on disk declaring 256 MiB: refused from the zip directory, nothing inflated."""
    path = tmp_path / "bomb.npz"
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1, dtype=np.float32))
    header["shape"] = (2**24, 4)  # 256 MiB of float32
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf, \
            zf.open("x_train.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_1_0(member, header)
        chunk = bytes(2**24)
        for _ in range(2**24 * 4 * 4 // len(chunk)):
            member.write(chunk)
    assert path.stat().st_size < 2 * 2**20
    with pytest.raises(DataError, match=r"would decode to 256\.0 MiB"):
        within_budget(lambda: read_file(path, max_bytes=64 * 2**20))


def test_npy_header_declaring_more_than_the_file_is_refused(tmp_path: Path):
    path = tmp_path / "liar.npy"
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 25, 3)})
        fh.write(bytes(800))
    with pytest.raises(DataError, match="declares 600000000 bytes"):
        within_budget(lambda: read_file(path))


class _Reduce:
    """An object that pickles as `fn(*args)` (how a hostile pickle is written without running it)."""

    def __init__(self, fn: Any, args: tuple):
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple:
        return self.fn, self.args


_RECONSTRUCT = np.zeros(1).__reduce__()[0]


@pytest.mark.parametrize(("payload", "message"), [
    (_Reduce(bytes, (10**10,)), "refused bytes"),
    (_Reduce(bytearray, (2**40,)), "refused bytearray"),
    (_Reduce(_RECONSTRUCT, (np.ndarray, (10**6, 10**6), b"b")), r"would decode to 953,674\.3 MiB"),
    (_Reduce(codecs.encode, (_Reduce(codecs.encode, (b"ab" * 100, "hex")), "hex")), "refused _codecs.encode"),
])
def test_pickle_bombs_are_refused(tmp_path: Path, payload: Any, message: str):
    path = tmp_path / "bomb.pkl"
    path.write_bytes(pickle.dumps({"annotations": [{"keypoint": payload}]}, protocol=4))
    with pytest.raises(DataError, match=message):
        within_budget(lambda: read_file(path, max_bytes=2**30))


def test_real_pickled_arrays_still_load_under_the_guard(tmp_path: Path):
    for protocol in (2, 4, 5):
        path = pyskl(tmp_path, "label", 1)
        doc = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps(doc, protocol=protocol))
        [s] = read_file(path, max_bytes=1 << 20)
        assert s.joints.shape == (2, 5, 17, 3) and s.label == 1


# ------------------------------------------------------------------ uploads are read alone

def test_pku_mmd_alone_never_looks_for_label_files(tmp_path: Path):
    path = pku_mmd(tmp_path, "coord", 0.5)
    assert len(read_file(path)) == 1  # beside its label file: one labelled segment
    (tmp_path / "Label" / "0002-L.txt").write_text("this would be read if the reader looked\n")
    [whole] = read_file(path, alone=True)
    assert whole.label is None and whole.num_frames == 30


def test_folders_cannot_be_read_alone(tmp_path: Path):
    clip = openpose_frames(tmp_path, "keypoint", 0.5)
    assert read_file(clip)
    with pytest.raises(DataError, match="folder"):
        read_file(clip, alone=True)


# ------------------------------------------------------------------ the data commands say what went wrong

def test_inspect_exits_1_when_every_file_is_bad(tmp_path: Path):
    for i in range(2):
        (tmp_path / f"a0{i + 1}_s01_e01_skeleton3D.txt").write_text("1 2 3\n")
    result = CliRunner().invoke(app, ["data", "inspect", str(tmp_path)])
    assert result.exit_code == 1 and "expected 4 numbers" in result.stdout
    msr(tmp_path, "coord", 0.5)
    assert CliRunner().invoke(app, ["data", "inspect", str(tmp_path)]).exit_code == 0


def test_convert_of_a_bad_file_says_why(tmp_path: Path):
    path = nw_ucla(tmp_path, "label", 99)
    with pytest.raises(DataError, match=r"no readable sample to convert: label must be an integer 1\.\.10, got 99"):
        CliRunner().invoke(app, ["data", "convert", str(path), str(tmp_path / "out")], catch_exceptions=False)


def test_sugar_command_exit_codes(tmp_path: Path):
    """The installed entry point (cli.main) passes a command's exit code on: 1 when nothing was readable."""
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    run = subprocess.run([sys.executable, "-c", "from sugar.cli import main; main()", "data", "inspect",
                          str(tmp_path / "bad.npy"), "--json"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    run = subprocess.run([sys.executable, "-c", "from sugar.cli import main; main()", "data", "inspect",
                          str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no such file" in run.stderr
