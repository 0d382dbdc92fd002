"""Slim the sglang-kernel wheel to one GPU arch, regenerating RECORD for what remains."""

from __future__ import annotations

import fnmatch
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.profile import KernelSlimming
from harness.wheelhouse.wheelfile import WheelEntry, dist_info_dir, verify_wheel, write_wheel

_ARCH_DIR = re.compile(r"sm\d+[a-z]?")


@dataclass(frozen=True)
class SlimResult:
    """The slimmed wheel and what was dropped from it (uncompressed bytes)."""

    path: Path
    dropped: tuple[str, ...]
    dropped_bytes: int


def is_dropped(member: str, rule: KernelSlimming, arch: str) -> bool:
    """True for lazily loaded libraries and for op directories of other arches."""
    prefix = rule.package + "/"
    if not member.startswith(prefix):
        return False
    inside = member[len(prefix):]
    if "/" not in inside:
        return any(fnmatch.fnmatch(inside, pattern) for pattern in rule.drop_globs)
    top = inside.split("/", 1)[0]
    return bool(_ARCH_DIR.fullmatch(top)) and top != rule.arch_dir(arch)


def slim_wheel(source: Path, dest_dir: Path, rule: KernelSlimming, arch: str) -> SlimResult:
    """Write `dest_dir/<same name>` without the dropped members; the result must verify."""
    dest = dest_dir / source.name
    if dest.resolve() == source.resolve():
        raise WheelhouseError(f"{source}: slimming would overwrite the original wheel")
    required = f"{rule.package}/{rule.required.format(arch_dir=rule.arch_dir(arch))}"
    kept: list[WheelEntry] = []
    dropped: list[str] = []
    dropped_bytes = 0
    with zipfile.ZipFile(source) as zf:
        names = zf.namelist()
        info_dir = dist_info_dir(names, source)
        record = f"{info_dir}/RECORD"
        if required not in names:
            raise WheelhouseError(f"{source.name}: has no {required}; cannot slim it for {arch}")
        for info in zf.infolist():
            if info.is_dir() or info.filename == record or info.filename.startswith(f"{record}."):
                continue
            if is_dropped(info.filename, rule, arch):
                dropped.append(info.filename)
                dropped_bytes += info.file_size
                continue
            kept.append(WheelEntry(info.filename, zf.read(info), info.external_attr or (0o644 << 16),
                                   info.date_time, info.compress_type))
    write_wheel(dest, kept, record)
    problems = verify_wheel(dest)
    if problems:
        raise WheelhouseError(f"{dest.name}: slimmed wheel fails its RECORD check: {problems[0]}")
    return SlimResult(dest, tuple(dropped), dropped_bytes)


def check_installs(wheel: Path, python_version: str, target: Path) -> list[str]:
    """Install the wheel with real pip (`--no-deps --target`) for the target Python; return its files."""
    import subprocess
    import sys

    from harness.wheelhouse.download import PLATFORMS

    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-compile",
               "--disable-pip-version-check", "--only-binary=:all:", "--python-version", python_version,
               "--implementation", "cp", "--target", str(target)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    done = subprocess.run([*command, str(wheel)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise WheelhouseError(f"{wheel.name}: pip cannot install the slimmed wheel: {tail}")
    return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
