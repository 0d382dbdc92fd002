"""The linker on a small sglang-shaped tree: what it links, what it refuses, and that sessions share nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.upstream.linker import Linker, LinkError, MissingName, SourceTree

FILES = {
    "sglang/__init__.py": "",
    "sglang/srt/__init__.py": "",
    "sglang/srt/utils.py": """
from typing import overload

_CALLS = []


def record(x):
    _CALLS.append(x)
    return len(_CALLS)


@overload
def double(x: int) -> int: ...
@overload
def double(x: str) -> str: ...
def double(x):
    return x * 2
""",
    "sglang/srt/layer.py": """
from __future__ import annotations

from sglang.srt.utils import double, record

try:
    import triton
    HAVE_TRITON = True
except ImportError:
    HAVE_TRITON = False

try:
    from flashinfer.comm import MoeAlltoAll
except ImportError:
    MoeAlltoAll = None


def get_world_size() -> int:
    raise RuntimeError("no process group on the CPU")


class Layer:
    width: int = 2

    def plan(self, tokens):
        return double(tokens) * get_world_size() + record(tokens)

    def a2a(self):
        return MoeAlltoAll(size=self.width)

    def needs_triton(self):
        return triton.cdiv(7, 2)

    def backend(self):
        try:
            import torchada
        except ImportError:
            return "cuda"
        return torchada.name

    def kernel(self):
        try:
            from sgl_kernel import fused_moe
        except ImportError:
            return "triton fallback"
        return fused_moe
""",
}


@pytest.fixture
def tree(tmp_path: Path) -> SourceTree:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"), encoding="utf-8")
    return SourceTree(tmp_path)


def test_links_definitions_across_modules_with_stand_ins_first(tree: SourceTree) -> None:
    with Linker(tree, {"sglang.srt.layer.get_world_size": lambda: 4,
                       "flashinfer.comm.MoeAlltoAll": lambda size: ("a2a", size)}) as linker:
        layer = linker.resolve("sglang.srt.layer", "Layer")()
        assert layer.plan(3) == 3 * 2 * 4 + 1  # the @overload series' last (real) definition ran
        assert layer.a2a() == ("a2a", 2)


def test_a_package_missing_on_the_cpu_is_an_import_error_to_sglang(tree: SourceTree) -> None:
    with Linker(tree, {}) as linker:
        # A top-level flag set in a try body binds as on a GPU box (the try body is the binding) ...
        assert linker.resolve("sglang.srt.layer", "HAVE_TRITON") is True
        layer = linker.resolve("sglang.srt.layer", "Layer")()
        # ... a function-level import of a missing package takes sglang's own `except ImportError` path ...
        assert layer.backend() == "cuda"
        assert layer.kernel() == "triton fallback"
        # ... and code that really uses one stops with an error naming the package.
        with pytest.raises(LinkError, match="needs triton"):
            layer.needs_triton()


def test_unknown_names_and_modules_name_what_is_missing(tree: SourceTree) -> None:
    with Linker(tree, {}) as linker:
        with pytest.raises(MissingName, match=re.escape("sglang.srt.utils defines no 'nothing'")):
            linker.resolve("sglang.srt.utils", "nothing")
        with pytest.raises(LinkError, match=re.escape("sglang.srt.absent is not in sglang's tree")):
            linker.resolve("sglang.srt.absent", "x")
    with pytest.raises(LinkError, match="no sglang package"):
        SourceTree(tree.root / "sglang")


def test_sessions_share_no_module_state(tree: SourceTree) -> None:
    for _ in range(2):
        with Linker(tree, {}) as linker:
            record = linker.resolve("sglang.srt.utils", "record")
            assert record("a") == 1  # a fresh _CALLS list every session
