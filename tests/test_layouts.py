import json

import pytest

from sugar.errors import LayoutError
from sugar.skeleton.layouts import BODY_PARTS, Layout, get_layout, list_layouts


@pytest.mark.parametrize("name", ["ntu25", "kinect20", "msr20", "coco17", "openpose18"])
def test_builtin_layouts_are_connected_and_cover_body_parts(name):
    layout = get_layout(name)
    assert layout.is_connected()
    assert set(layout.parts) == set(BODY_PARTS)
    assert all(0 <= j < layout.num_joints for idx in layout.parts.values() for j in idx)


def test_joint_counts():
    counts = {n: get_layout(n).num_joints for n in list_layouts()}
    assert counts == {"ntu25": 25, "kinect20": 20, "msr20": 20, "coco17": 17, "openpose18": 18,
                      "lcrnet13": 13, "blazepose33": 33}


def test_msr20_bones_match_body_model(shared_data):
    """The msr20 bones are exactly the 19 (1-based) bones of MSR Action3D's body_model.txt."""
    lines = (shared_data / "msr_action3d" / "body_model.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("bones"))
    expected = {frozenset(int(x) - 1 for x in line.split()) for line in lines[start + 1 :] if line.strip()}
    got = {frozenset(b) for b in get_layout("msr20").bones}
    assert got == expected


def test_user_layout_roundtrip(tmp_path):
    path = tmp_path / "mine.json"
    get_layout("kinect20").to_json(path)
    data = json.loads(path.read_text())
    data["name"] = "mine"
    path.write_text(json.dumps(data))
    mine = get_layout(str(path))
    assert mine.name == "mine" and mine.bones == get_layout("kinect20").bones


def test_bad_layouts_raise_clear_errors(tmp_path):
    with pytest.raises(LayoutError, match="unknown layout 'nope'"):
        get_layout("nope")
    data = get_layout("coco17").to_dict()
    data["bones"] = data["bones"][:-3]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="do not connect"):
        Layout.from_json(path)
    data = get_layout("coco17").to_dict()
    data["centre"] = ["pelvis"]
    path.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="unknown joint 'pelvis'"):
        Layout.from_json(path)
