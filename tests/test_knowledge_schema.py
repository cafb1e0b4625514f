"""Knowledge files: validation reports every bad field, subset/order, ntu60 derivation, shipped files."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from sugar.errors import KnowledgeError
from sugar.knowledge import schema
from sugar.knowledge.schema import BODY_PARTS, Knowledge, check_against_actions, load_knowledge, parse_knowledge
from sugar.skeleton.datasets import class_names

SHIPPED = Path(schema.__file__).parent / "shipped"


def make_class(label: str, i: int = 0) -> dict:
    return {"label": label,
            "motion": {p: f"{p} moves for {label} {i}" for p in BODY_PARTS},
            "visual": [f"A person doing {label}, view {j}." for j in range(4)],
            "description": f"A person does {label}."}


def make_file(labels: list[str], dataset: str = "toy") -> dict:
    return {"schema_version": 1, "dataset": dataset, "source": "test fixture",
            "classes": [make_class(lab, i) for i, lab in enumerate(labels)]}


def write(tmp_path: Path, data: dict, name: str = "k.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_valid_file_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, make_file(["wave", "kick", "sit down"]))
    know = load_knowledge(path)
    assert know.labels == ["wave", "kick", "sit down"]
    assert know.classes[1].motion_text == "; ".join(f"{p} {p} moves for kick 1" for p in BODY_PARTS)
    assert know.motion_text(1) == know.classes[1].motion_text
    assert know.classes[0].motion_text.startswith("head head moves")
    saved = know.save(tmp_path / "out" / "again.json")
    again = load_knowledge(saved)
    assert again == know and again.content_hash() == know.content_hash()
    assert not list((tmp_path / "out").glob(".*tmp"))  # atomic write left no temp file


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    data = make_file(["wave", "kick"])
    a = parse_knowledge(data)
    data2 = copy.deepcopy(data)
    data2["classes"][0]["visual"][0] = "Something else entirely."
    assert parse_knowledge(data2).content_hash() != a.content_hash()
    # key order and whitespace in the file do not matter
    data3 = json.loads(json.dumps(data, sort_keys=True))
    assert parse_knowledge(data3).content_hash() == a.content_hash()


def test_every_bad_field_is_reported(tmp_path: Path) -> None:
    data = make_file(["wave", "kick", "sit down"])
    del data["classes"][0]["motion"]["hip"]
    data["classes"][1]["motion"]["foot"] = "   "
    data["classes"][1]["visual"] = "not a list"
    del data["classes"][2]["description"]
    data["classes"][2]["colour"] = "red"
    path = write(tmp_path, data)
    with pytest.raises(KnowledgeError) as info:
        load_knowledge(path)
    msg = str(info.value)
    assert str(path) in msg
    for where in ("classes[0].motion.hip", "classes[1].motion.foot", "classes[1].visual", "classes[2].description",
                  "classes[2].colour"):
        assert where in msg, where
    assert "'kick'" in msg  # classes are named by label too
    assert "5 problem(s)" in msg


def test_version_and_json_errors(tmp_path: Path) -> None:
    data = make_file(["wave"])
    data["schema_version"] = 7
    with pytest.raises(KnowledgeError, match="unsupported schema_version 7"):
        load_knowledge(write(tmp_path, data))
    del data["schema_version"]
    with pytest.raises(KnowledgeError, match="missing schema_version"):
        load_knowledge(write(tmp_path, data))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KnowledgeError, match=r"bad\.json: not valid JSON"):
        load_knowledge(bad)
    with pytest.raises(KnowledgeError, match="not found"):
        load_knowledge(tmp_path / "missing.json")
    with pytest.raises(KnowledgeError, match="neither a dataset"):
        load_knowledge("no-such-dataset")


def test_duplicate_labels_rejected() -> None:
    with pytest.raises(KnowledgeError, match="duplicate class labels"):
        parse_knowledge(make_file(["wave", "wave"]))


def test_subset_keeps_given_order() -> None:
    know = parse_knowledge(make_file(["a", "b", "c", "d"]))
    sub = know.subset(["c", "a"])
    assert sub.labels == ["c", "a"]
    assert sub.classes[0] == know.classes[2]
    with pytest.raises(KnowledgeError, match=r"no class\(es\) \['z'\]"):
        know.subset(["a", "z"])


def test_check_against_actions() -> None:
    know = parse_knowledge(make_file(["a", "c", "b", "x"]))
    check = check_against_actions(know, ["a", "b", "c", "d"])
    assert check.missing == ["d"]
    assert check.extra == ["x"]
    assert check.misordered == [(1, "b", "c"), (2, "c", "b")]
    assert not check.ok
    assert check_against_actions(parse_knowledge(make_file(["a", "b"])), ["a", "b"]).ok
    with pytest.raises(KnowledgeError, match="missing 1 class"):
        check_against_actions(know, ["a", "b", "c", "d"], strict=True)


@pytest.fixture
def fake_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the packaged-file lookup at a temp folder holding an ntu120 file built from the action list."""
    labels = list(class_names("ntu120"))
    folder = tmp_path / "shipped"
    folder.mkdir()
    write(folder, make_file(labels, "ntu120"), "ntu120.json")
    monkeypatch.setattr(schema, "shipped_path", lambda name: folder / f"{name}.json")
    return folder


def test_ntu60_is_first_60_of_ntu120(fake_shipped: Path) -> None:
    ntu120 = load_knowledge("ntu120")
    ntu60 = load_knowledge("ntu60")
    assert len(ntu120) == 120 and len(ntu60) == 60
    assert ntu60.dataset == "ntu60"
    assert ntu60.labels == list(schema.class_names("ntu60"))
    assert ntu60.classes == ntu120.classes[:60]
    assert "ntu60" in schema.shipped_datasets() and "ntu120" in schema.shipped_datasets()


def test_named_dataset_checked_against_actions(fake_shipped: Path) -> None:
    data = json.loads((fake_shipped / "ntu120.json").read_text())
    data["classes"][3], data["classes"][4] = data["classes"][4], data["classes"][3]
    (fake_shipped / "ntu120.json").write_text(json.dumps(data))
    with pytest.raises(KnowledgeError, match="out of order"):
        load_knowledge("ntu120")


def _shipped_files() -> list[Path]:
    return sorted(SHIPPED.glob("*.json")) if SHIPPED.is_dir() else []


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: p.stem)
def test_shipped_file_quality(path: Path) -> None:
    """Every shipped file: validates, covers its action list in order, rich and distinct knowledge per class."""
    know = load_knowledge(path.stem)
    assert know.dataset == path.stem
    assert check_against_actions(know, class_names(path.stem)).ok
    for cls in know.classes:
        assert len(cls.visual) >= 4, cls.label
        assert all(getattr(cls.motion, p).strip() for p in BODY_PARTS), cls.label
    for name, values in (("motion text", [c.motion_text for c in know.classes]),
                         ("visual list", [tuple(c.visual) for c in know.classes]),
                         ("description", [c.description for c in know.classes])):
        dups = {v for v in values if values.count(v) > 1}
        assert not dups, f"{path.name}: classes share a {name}: {list(dups)[:2]}"


def test_shipped_files_found_or_none_yet() -> None:
    """The parametrised test above covers whatever is shipped; ntu60 needs ntu120 when that file is present."""
    files = _shipped_files()
    if any(p.stem == "ntu120" for p in files):
        assert len(load_knowledge("ntu60")) == 60
    for p in files:
        assert p.stem in {"ntu120", "pku-mmd", "toyota", "nw-ucla", "msr-action3d", "synthetic"}, p.name


def test_knowledge_model_is_pydantic() -> None:
    assert issubclass(Knowledge, schema.BaseModel)
