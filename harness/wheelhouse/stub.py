"""Generate the tiny stub wheel that stands in for a package imported only for optional helpers."""

from __future__ import annotations

from pathlib import Path

from packaging.utils import canonicalize_name

from harness.wheelhouse.profile import Stub
from harness.wheelhouse.wheelfile import WheelEntry, write_wheel


def build_stub_wheel(stub: Stub, dest_dir: Path) -> Path:
    """Write a reproducible py3-none-any wheel holding the stub's files."""
    dist = canonicalize_name(stub.distribution).replace("-", "_")
    info = f"{dist}-{stub.version}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: {stub.distribution}\nVersion: {stub.version}\n"
                f"Summary: Stub for {stub.requirement}: {stub.why}\n")
    wheel = "Wheel-Version: 1.0\nGenerator: harness.wheelhouse\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = [WheelEntry(path, text.encode("utf-8")) for path, text in stub.files]
    entries += [WheelEntry(f"{info}/METADATA", metadata.encode("utf-8")),
                WheelEntry(f"{info}/WHEEL", wheel.encode("utf-8"))]
    path = dest_dir / f"{dist}-{stub.version}-py3-none-any.whl"
    write_wheel(path, entries, f"{info}/RECORD")
    return path
