"""Build a wheelhouse: resolve, download, slim the kernel wheel, add stubs, batch, write scripts."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from harness.store.atomic import atomic_write_text
from harness.wheelhouse.batches import split_batches
from harness.wheelhouse.config import WheelhouseConfig
from harness.wheelhouse.download import PipSource
from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.image import read_image
from harness.wheelhouse.profile import Profile
from harness.wheelhouse.resolve import resolve
from harness.wheelhouse.scripts import write_batch_files
from harness.wheelhouse.slim import check_installs, slim_wheel
from harness.wheelhouse.stub import build_stub_wheel
from harness.wheelhouse.wheelfile import file_sha256, wheel_identity

MANIFEST = "manifest.json"
# install.sh and SHA256SUMS ride along in each batch directory.
BATCH_OVERHEAD_BYTES = 16 * 1024


def build(config: WheelhouseConfig, profile: Profile) -> dict[str, Any]:
    """Produce config.out/batch-N/ directories and manifest.json; returns the manifest."""
    image = read_image(config.image)
    source = PipSource(config.find_links, config.no_index)
    roots = [Requirement(f"sglang=={config.sglang_version}"), *(Requirement(r) for r, _why in profile.additions),
             *map(Requirement, config.extra_requirements)]
    resolution = resolve(roots, profile, image, config.downloads, config.python_version, source)
    shared = _held_by(config)
    left_out: list[str] = []
    config.out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=config.out))
    try:
        entries: dict[str, dict[str, Any]] = {}
        kernel_name = canonicalize_name(profile.kernel.distribution)
        for wheel in resolution.wheels:
            if (wheel.name, wheel.version) in shared:
                left_out.append(f"{wheel.name}=={wheel.version}")
                continue
            entry: dict[str, Any] = {"name": wheel.name, "version": wheel.version, "why": wheel.why}
            if wheel.name == kernel_name:
                result = slim_wheel(wheel.path, staging, profile.kernel, config.arch)
                with tempfile.TemporaryDirectory(dir=config.out) as target:
                    installed = check_installs(result.path, config.python_version, Path(target))
                entry["slimmed"] = {"arch": config.arch, "original_bytes": wheel.path.stat().st_size,
                                    "original_sha256": file_sha256(wheel.path), "dropped": list(result.dropped),
                                    "dropped_uncompressed_bytes": result.dropped_bytes,
                                    "installed_files": len(installed)}
            else:
                _link_or_copy(wheel.path, staging / wheel.path.name)
            entries[wheel.path.name] = entry
        for stub in resolution.stubs:
            if (canonicalize_name(stub.distribution), stub.version) in shared:
                left_out.append(f"{canonicalize_name(stub.distribution)}=={stub.version}")
                continue
            path = build_stub_wheel(stub, staging)
            entries[path.name] = {"name": canonicalize_name(stub.distribution), "version": stub.version,
                                  "why": f"stub for {stub.requirement}: {stub.why}"}
        wheels = sorted(staging.glob("*.whl"))
        _check_one_version_each(wheels)
        groups = split_batches(wheels, config.batch_limit_bytes - BATCH_OVERHEAD_BYTES)
        _remove_old_batches(config.out)
        batches = []
        for index, group in enumerate(groups, start=1):
            batch_dir = config.out / f"batch-{index}"
            batch_dir.mkdir()
            moved = [Path(shutil.move(str(p), batch_dir / p.name)) for p in group]
            write_batch_files(batch_dir, moved)
            for path in moved:
                entries[path.name].update(file=path.name, batch=batch_dir.name, bytes=path.stat().st_size,
                                          sha256=file_sha256(path))
            batches.append({"name": batch_dir.name, "wheels": len(moved),
                            "bytes": sum(_dir_bytes(batch_dir))})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest = {
        "schema_version": 1, "sglang_version": config.sglang_version, "python_version": config.python_version,
        "arch": config.arch, "image": str(config.image), "batch_limit_bytes": config.batch_limit_bytes,
        "batches": batches, "wheels": [entries[k] for k in sorted(entries)],
        "from_image": [dict(zip(("name", "version", "required_by"), t, strict=True)) for t in resolution.from_image],
        "skipped": [dict(zip(("name", "reason", "required_by"), t, strict=True)) for t in resolution.skipped],
        "extra_requirements": list(config.extra_requirements), "notes": list(resolution.notes),
        "over": None if config.over is None else {"path": str(config.over), "left_out": sorted(left_out)},
    }
    atomic_write_text(config.out / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _held_by(config: WheelhouseConfig) -> set[tuple[str, str]]:
    """(name, version) of every wheel the --over wheelhouse carries; empty without --over."""
    if config.over is None:
        return set()
    path = config.over / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        held = {(canonicalize_name(w["name"]), w["version"]) for w in manifest["wheels"]}
        target = (manifest["arch"], manifest["python_version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WheelhouseError(f"--over: {path} is not a wheelhouse manifest ({exc})") from exc
    if target != (config.arch, config.python_version):
        # Wheels left out because the base "has" them would be the wrong build (kernel arch, CPython ABI).
        raise WheelhouseError(f"--over: {path} was built for {target[0]}, Python {target[1]}; this build is for "
                              f"{config.arch}, Python {config.python_version}")
    return held


def _link_or_copy(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def _check_one_version_each(wheels: list[Path]) -> None:
    # Two versions of one distribution stop the whole offline install, so refuse them here.
    seen: dict[str, str] = {}
    for path in wheels:
        name, _version = wheel_identity(path)
        if name in seen:
            raise WheelhouseError(f"two wheels of {name}: {seen[name]} and {path.name}")
        seen[name] = path.name


def _remove_old_batches(out: Path) -> None:
    """Remove only batch dirs this tool wrote (they hold install.sh and SHA256SUMS)."""
    for old in out.glob("batch-*"):
        if old.is_dir() and (old / "install.sh").is_file() and (old / "SHA256SUMS").is_file():
            shutil.rmtree(old)
        elif old.exists():
            raise WheelhouseError(f"--out: {old} exists and was not written by harness wheelhouse; "
                                  "move it or choose another --out")


def _dir_bytes(directory: Path) -> list[int]:
    return [p.stat().st_size for p in directory.iterdir() if p.is_file()]
