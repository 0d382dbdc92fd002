"""Fetch wheels for the target platform with `pip download --no-deps --only-binary=:all:`."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from harness.wheelhouse.errors import WheelhouseError
from harness.wheelhouse.wheelfile import wheel_identity

# pip matches manylinux_2_N exactly, so name every glibc the target may accept (the GPU image has 2.39).
PLATFORMS = ("manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64",
             *(f"manylinux_2_{n}_x86_64" for n in range(5, 40)), "linux_x86_64")


@dataclass(frozen=True)
class PipSource:
    """Where pip looks: the default index, or local directories only (tests, mirrors)."""

    find_links: tuple[str, ...] = ()
    no_index: bool = False


def pip_download(requirements: list[Requirement], dest: Path, python_version: str, source: PipSource) -> None:
    """Download one wheel per requirement into dest; a missing one is an error naming it."""
    if not requirements:
        return
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--python-version", python_version, "--implementation", "cp",
               "--dest", str(dest)]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    for link in source.find_links:
        command += ["--find-links", link]
    if source.no_index:
        command.append("--no-index")
    command += [_pip_spec(req) for req in requirements]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        missing = re.search(r"No matching distribution found for (\S+)", done.stderr)
        detail = missing.group(1) if missing else done.stderr.strip().splitlines()[-1:] or ["pip failed"]
        what = detail if isinstance(detail, str) else detail[0]
        raise WheelhouseError(f"pip download: no cp{python_version.replace('.', '')} manylinux x86_64 wheel "
                              f"for {what}")


def find_downloaded(requirement: Requirement, dest: Path) -> Path:
    """The newest wheel in dest that satisfies the requirement (what pip just chose)."""
    name = canonicalize_name(requirement.name)
    best: tuple[Version, Path] | None = None
    for path in dest.glob("*.whl"):
        wheel_name, version = wheel_identity(path)
        if wheel_name == name and requirement.specifier.contains(version, prereleases=True) and (
                best is None or version > best[0]):
            best = (version, path)
    if best is None:
        raise WheelhouseError(f"pip download reported success but no wheel for {requirement} is in {dest}")
    return best[1]


def _pip_spec(requirement: Requirement) -> str:
    # Extras and markers were already applied by the resolver; pip gets only name and versions.
    return f"{requirement.name}{requirement.specifier}"
