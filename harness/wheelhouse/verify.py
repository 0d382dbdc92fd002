"""Check a built wheelhouse: checksums, RECORDs, batch sizes, one version per distribution."""

from __future__ import annotations

import json
from pathlib import Path

from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.wheelfile import file_sha256, verify_wheel, wheel_identity


def verify_wheelhouse(out: Path) -> list[str]:
    """Every problem found in out/ (empty when the wheelhouse is sound)."""
    manifest_path = out / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        limit = int(manifest["batch_limit_bytes"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WheelhouseError(f"{manifest_path}: not a wheelhouse manifest ({exc})") from exc
    problems: list[str] = []
    seen: dict[str, str] = {}
    batch_dirs = sorted(p for p in out.glob("batch-*") if p.is_dir())
    if [b["name"] for b in manifest.get("batches", [])] != [p.name for p in sorted(
            batch_dirs, key=lambda p: int(p.name.split("-", 1)[1]))]:
        problems.append("batch directories do not match manifest.json")
    for batch in batch_dirs:
        size = sum(p.stat().st_size for p in batch.iterdir() if p.is_file())
        if size > limit:
            problems.append(f"{batch.name}: {size} bytes exceeds the limit {limit}")
        sums = _read_sums(batch / "SHA256SUMS")
        wheels = sorted(batch.glob("*.whl"))
        if sorted(sums) != [p.name for p in wheels]:
            problems.append(f"{batch.name}: SHA256SUMS does not list exactly the batch's wheels")
        for wheel in wheels:
            if sums.get(wheel.name) not in (None, file_sha256(wheel)):
                problems.append(f"{batch.name}/{wheel.name}: sha256 differs from SHA256SUMS")
            problems.extend(f"{batch.name}/{p}" for p in verify_wheel(wheel))
            name = wheel_identity(wheel)[0]
            if name in seen:
                problems.append(f"{name} appears twice: {seen[name]} and {batch.name}/{wheel.name}")
            seen[name] = f"{batch.name}/{wheel.name}"
        if not (batch / "install.sh").is_file():
            problems.append(f"{batch.name}: no install.sh")
    return problems


def _read_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    sums: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        digest, _sep, name = line.partition("  ")
        sums[name] = digest
    return sums
