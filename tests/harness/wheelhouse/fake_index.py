"""A local pip index of tiny fake wheels (a fake sglang and sglang-kernel) for offline wheelhouse tests."""

from __future__ import annotations

import os
from pathlib import Path

from harness.wheelhouse.profile import IPYTHON_STUB, SGL_KERNEL_SLIMMING, Profile
from harness.wheelhouse.wheelfile import WheelEntry, write_wheel

SGLANG_VERSION = "9.9.9"
KB = 1024


def make_wheel(index: Path, name: str, version: str, requires: tuple[str, ...] = (),
               files: tuple[tuple[str, bytes], ...] = (), tag: str = "py3-none-any") -> Path:
    """Write NAME-VERSION-TAG.whl with the given Requires-Dist lines and files."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: {'true' if tag.startswith('py3') else 'false'}\n"
    wheel += f"Tag: {tag}\n"
    entries = [WheelEntry(path, data) for path, data in files] or [
        WheelEntry(f"{dist}/__init__.py", f"VERSION = {version!r}\n".encode())]
    entries += [WheelEntry(f"{info}/METADATA", metadata.encode()), WheelEntry(f"{info}/WHEEL", wheel.encode())]
    path = index / f"{dist}-{version}-{tag}.whl"
    write_wheel(path, entries, f"{info}/RECORD")
    return path


def build_index(index: Path) -> None:
    """Fake sglang with every kind of requirement the resolver must handle."""
    index.mkdir(parents=True, exist_ok=True)
    make_wheel(index, "sglang", SGLANG_VERSION, requires=(
        "sglang-kernel==1.0.0", "alpha", "beta>=2", "skipme", "IPython", "imagepkg>=1", "pinned-pkg",
        "big", 'winonly; sys_platform == "win32"', 'extrapkg; extra == "foo"', "withextra[fast]"))
    so = os.urandom  # incompressible payloads so wheel sizes track what is dropped
    make_wheel(index, "sglang-kernel", "1.0.0", tag="cp310-abi3-manylinux2014_x86_64", files=(
        ("sgl_kernel/__init__.py", b"from sgl_kernel.version import __version__\n"),
        ("sgl_kernel/version.py", b'__version__ = "1.0.0"\n'),
        ("sgl_kernel/flash_ops.abi3.so", so(400 * KB)),
        ("sgl_kernel/flashmla_ops.abi3.so", so(100 * KB)),
        ("sgl_kernel/infllm_ops.cpython-310-x86_64-linux-gnu.so", so(100 * KB)),
        ("sgl_kernel/spatial_ops.abi3.so", so(10 * KB)),
        ("sgl_kernel/sm90/common_ops.abi3.so", so(60 * KB)),
        ("sgl_kernel/sm100/common_ops.abi3.so", so(70 * KB)),
        ("sgl_kernel/infllm_v2/__init__.py", b""),
        ("triton_kernels/__init__.py", b""),
    ))
    make_wheel(index, "alpha", "1.0", requires=("gamma", "bulky"))
    make_wheel(index, "bulky", "1.0", files=(("bulky/blob.bin", so(400 * KB)),))
    make_wheel(index, "gamma", "1.0")
    make_wheel(index, "beta", "1.0")
    make_wheel(index, "beta", "2.0")
    make_wheel(index, "pinned-pkg", "1.0")
    make_wheel(index, "pinned-pkg", "2.0")
    make_wheel(index, "withextra", "1.0", requires=('delta; extra == "fast"',))
    make_wheel(index, "delta", "1.0")
    make_wheel(index, "big", "1.0", files=(("big/blob.bin", so(1229 * KB)),))
    make_wheel(index, "matplotlib-fake", "1.0")
    make_wheel(index, "epsilon", "1.0")


IMAGE_TEXT = "# fake image\nimagepkg==1.5\ntorch==2.11.0\n"


def fake_profile() -> Profile:
    return Profile(sglang_version=SGLANG_VERSION, pins=("pinned-pkg==1.0", "sglang-kernel==1.0.0"),
                   skips=(("skipme", "not needed to serve"),), kernel=SGL_KERNEL_SLIMMING,
                   stubs=(IPYTHON_STUB,), additions=(("epsilon", "imported but undeclared"),))
