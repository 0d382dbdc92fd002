"""Slimming rules, batching bounds, stub reproducibility and the 0.5.16 and 0.5.17 profiles' pins."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.wheelhouse.batches import _first_fit, split_batches
from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.profile import (
    IPYTHON_STUB,
    SGL_KERNEL_SLIMMING,
    SGLANG_0_5_16,
    SGLANG_0_5_17,
    profile_for,
)
from harness.wheelhouse.slim import is_dropped, slim_wheel
from harness.wheelhouse.stub import build_stub_wheel
from harness.wheelhouse.wheelfile import verify_wheel
from tests.harness.wheelhouse.fake_index import make_wheel


@pytest.mark.parametrize(("member", "arch", "dropped"), [
    ("sgl_kernel/flash_ops.abi3.so", "sm90", True),
    ("sgl_kernel/flashmla_ops.abi3.so", "sm100", True),
    ("sgl_kernel/infllm_ops.cpython-310-x86_64-linux-gnu.so", "sm90", True),
    ("sgl_kernel/sm100/common_ops.abi3.so", "sm90", True),
    ("sgl_kernel/sm90/common_ops.abi3.so", "sm100", True),
    ("sgl_kernel/sm90/common_ops.abi3.so", "sm90", False),
    ("sgl_kernel/spatial_ops.abi3.so", "sm90", False),
    ("sgl_kernel/flash_attn.py", "sm90", False),            # python wrapper stays; it loads lazily
    ("sgl_kernel/infllm_v2/_loader.py", "sm90", False),
    ("triton_kernels/matmul_ogs.py", "sm90", False),
    ("sglang_kernel-0.4.5.dist-info/METADATA", "sm90", False),
])
def test_slimming_rule(member: str, arch: str, dropped: bool) -> None:
    assert is_dropped(member, SGL_KERNEL_SLIMMING, arch) is dropped


def test_slim_refuses_a_wheel_without_the_arch_library(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "sglang-kernel", "1.0.0", files=(("sgl_kernel/__init__.py", b""),))
    (tmp_path / "out").mkdir()
    with pytest.raises(WheelhouseError, match=r"has no sgl_kernel/sm90/common_ops\.abi3\.so"):
        slim_wheel(wheel, tmp_path / "out", SGL_KERNEL_SLIMMING, "sm90")


def test_slim_keeps_file_modes_and_writes_a_verifying_record(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path, "sglang-kernel", "1.0.0", files=(
        ("sgl_kernel/sm100/common_ops.abi3.so", os.urandom(1000)),
        ("sgl_kernel/flash_ops.abi3.so", os.urandom(1000))))
    (tmp_path / "out").mkdir()
    result = slim_wheel(wheel, tmp_path / "out", SGL_KERNEL_SLIMMING, "sm100")
    assert result.dropped == ("sgl_kernel/flash_ops.abi3.so",) and result.dropped_bytes == 1000
    assert verify_wheel(result.path) == []
    with zipfile.ZipFile(result.path) as zf:
        record = zf.read("sglang_kernel-1.0.0.dist-info/RECORD").decode()
    assert "flash_ops" not in record and "sgl_kernel/sm100/common_ops.abi3.so,sha256=" in record


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=1000), min_size=1, max_size=30),
       limit=st.integers(min_value=1000, max_value=3000))
def test_batches_respect_the_limit_and_use_the_fewest_ffd_bins(tmp_path_factory: pytest.TempPathFactory,
                                                              sizes: list[int], limit: int) -> None:
    root = tmp_path_factory.mktemp("b")
    paths = []
    for i, size in enumerate(sizes):
        path = root / f"w{i}.whl"
        path.write_bytes(b"x" * size)
        paths.append(path)
    batches = split_batches(paths, limit)
    assert sorted(p.name for b in batches for p in b) == sorted(p.name for p in paths)
    assert all(sum(p.stat().st_size for p in b) <= limit for b in batches)
    fewest = _first_fit(sorted(((p.stat().st_size, p.name, p) for p in paths), key=lambda t: (-t[0], t[1])), limit)
    assert len(batches) == len(fewest)


def test_stub_wheel_is_reproducible_and_importable(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_stub_wheel(IPYTHON_STUB, tmp_path / "a")
    second = build_stub_wheel(IPYTHON_STUB, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert verify_wheel(first) == []
    with zipfile.ZipFile(first) as zf:
        display = zf.read("IPython/display.py").decode()
    assert len(display.splitlines()) == 2
    namespace: dict[str, object] = {}
    exec(compile(display, "IPython/display.py", "exec"), namespace)
    assert callable(namespace["HTML"]) and callable(namespace["display"])


def test_profile_0_5_16_carries_the_pins_the_offline_run_needed() -> None:
    pins = dict(p.split("==") for p in SGLANG_0_5_16.pins)
    assert pins["transformers"] == "5.12.1" and pins["tokenizers"] == "0.22.2"
    assert pins["xgrammar"] == "0.2.1" and pins["sglang-kernel"] == "0.4.5"
    assert pins["flashinfer-python"] == "0.6.14"


def test_profile_0_5_17_is_0_5_16_with_flashinfer_moved() -> None:
    """0.5.17 differs from 0.5.16 only in its version and the FlashInfer pin, kept at the same place."""
    assert profile_for("0.5.17") is SGLANG_0_5_17 and profile_for("0.5.16") is SGLANG_0_5_16
    old, new = dict(p.split("==") for p in SGLANG_0_5_16.pins), dict(p.split("==") for p in SGLANG_0_5_17.pins)
    assert new.pop("flashinfer-python") == "0.6.15.post1" and old.pop("flashinfer-python") == "0.6.14"
    assert new == old
    assert [p.split("==")[0] for p in SGLANG_0_5_17.pins] == [p.split("==")[0] for p in SGLANG_0_5_16.pins]
    assert SGLANG_0_5_17.sglang_version == "0.5.17"
    assert (SGLANG_0_5_17.skips, SGLANG_0_5_17.kernel, SGLANG_0_5_17.stubs, SGLANG_0_5_17.additions) == (
        SGLANG_0_5_16.skips, SGLANG_0_5_16.kernel, SGLANG_0_5_16.stubs, SGLANG_0_5_16.additions)
