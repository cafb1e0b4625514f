"""The one-way flow of docs/architecture.md, checked on the source: a module imports only from lower rows,
and library modules import the project's modules at module level (commands/ defer theirs for start-up)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# rows of the module map, lowest first; a module may import its own package and any lower row
ROWS: list[tuple[str, ...]] = [
    ("sugar.errors", "sugar.paths"),
    ("sugar.fileio",),
    ("sugar.config", "sugar.runs", "sugar.llm_loading"),
    ("sugar.skeleton",),
    ("sugar.knowledge", "sugar.viz", "sugar.overlay", "sugar.pose"),
    ("sugar.models",),
    ("sugar.features", "sugar.evaluation"),
    ("sugar.training",),
    ("sugar.serve", "sugar.demo", "sugar.web"),
    ("sugar.commands",),
    ("sugar.cli",),
]


def _row(module: str) -> tuple[int, str]:
    for level, row in enumerate(ROWS):
        for prefix in row:
            if module == prefix or module.startswith(prefix + "."):
                return level, prefix
    raise AssertionError(f"{module} is on no row of the module map; add it to docs/architecture.md and ROWS")


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((SRC / "sugar").rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        if name != "sugar":
            out.append((name, path))
    return out


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported sugar module, at module level?) for every import outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [(n, id(node) in top) for n in names if n == "sugar" or n.startswith("sugar.")]
    return found


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_down(module: str, path: Path) -> None:
    level, package = _row(module)
    for imported, _ in _imports(path):
        if imported == "sugar":
            continue
        their_level, their_package = _row(imported)
        assert their_package == package or their_level < level, \
            f"{module} imports {imported}, which is not below it in the module map"


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_library_modules_import_the_project_at_module_level(module: str, path: Path) -> None:
    if _row(module)[1] in ("sugar.commands", "sugar.cli"):
        return  # commands defer imports on purpose: `sugar --help` starts without torch
    inner = [m for m, at_top in _imports(path) if not at_top]
    assert not inner, f"{module} imports {inner} inside a function; import at module level"
