"""The folder layout is the architecture: docs/architecture.md's tree is the tree on disk, imports run one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# Floors of docs/architecture.md: a module may import its own part and parts on lower floors only.
FLOORS = {
    "harness.gate": 5, "harness.bench_serving": 5,
    "harness.run": 4,
    "harness.upstream": 3, "harness.config": 3,
    "harness.check": 2, "harness.serve": 2, "harness.wheelhouse": 2,
    "harness.instrument": 1, "harness.scenarios": 1, "harness.measure": 1, "harness.store": 1,
    "harness.provenance": 1, "harness.options": 1, "harness.cli": 1, "harness.__main__": 1,
}
APART = ("harness.sweep",)
# Imported by every part, the apart ones included; it imports nothing from harness.
GROUND = ("harness.errors",)


def _modules() -> list[Path]:
    return sorted(p for top in ("harness", "reference_impl", "bench") for p in (ROOT / top).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _documented() -> dict[str, str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"<!-- tree:start -->\n```\n(.*?)```\n<!-- tree:end -->", text, re.DOTALL)
    assert block, f"{ARCHITECTURE}: no tree block between <!-- tree:start --> and <!-- tree:end -->"
    rows = [line.split(maxsplit=1) for line in block.group(1).splitlines() if line.strip()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def _first_docstring_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def test_documented_tree_is_the_tree_on_disk() -> None:
    documented = _documented()
    on_disk = {str(p.relative_to(ROOT)) for p in _modules()}
    assert sorted(on_disk - set(documented)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(documented) - on_disk) == [], "docs/architecture.md names modules that do not exist"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_says_its_job_first(path: Path) -> None:
    first = _first_docstring_line(path)
    assert first, f"{path}: no module docstring"
    assert _documented()[str(path.relative_to(ROOT))] == first, "docs/architecture.md's line is not the docstring's"


def _part(module: str) -> str | None:
    for part in (*FLOORS, *APART, *GROUND):
        if module == part or module.startswith(part + "."):
            return part
    return None


def _harness_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
    return {m for m in out if m == "harness" or m.startswith("harness.")}


def test_imports_run_one_way() -> None:
    upward = []
    for path in _modules():
        rel = path.relative_to(ROOT)
        if rel.parts[0] != "harness":
            continue
        module = ".".join(rel.with_suffix("").parts).removesuffix(".__init__")
        own = _part(module)
        if own is None and module != "harness":
            upward.append(f"{rel}: not in any floor of docs/architecture.md")
            continue
        for target in _harness_imports(path):
            other = _part(target)
            if other is None or other == own or own is None:
                continue
            if own in GROUND:
                upward.append(f"{rel} -> {target}: {own} is the ground floor (imports nothing)")
                continue
            if other in GROUND:
                continue
            if own in APART or other in APART:
                upward.append(f"{rel} -> {target}: {own if own in APART else other} stands apart")
            elif FLOORS[other] > FLOORS[own]:
                upward.append(f"{rel} (floor {FLOORS[own]}) imports {target} (floor {FLOORS[other]})")
    assert upward == []


def test_reference_impl_imports_nothing_from_harness() -> None:
    """The oracle is the bottom floor: the harness checks against it, so it may not lean on the harness."""
    pattern = re.compile(r"^\s*(import harness|from harness)\b", re.MULTILINE)
    upward = []
    for path in sorted((ROOT / "reference_impl").rglob("*.py")):
        rel = path.relative_to(ROOT)
        upward += [f"{rel} imports {module}" for module in sorted(_harness_imports(path))]
        text = path.read_text(encoding="utf-8")
        upward += [f"{rel}: {match.group(0).strip()}" for match in pattern.finditer(text)]
    assert upward == []
