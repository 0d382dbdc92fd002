"""sglang releases as source trees: `pip download --no-deps` into a cache, unpacked once, revert patches applied.

Nothing of sglang is stored in this repository: every tree comes from the registry's wheel at run time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import HarnessError

REVERTS = Path(__file__).resolve().parent / "reverts"
DEFAULT_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "sglang-wheels"
PYPI_JSON = "https://pypi.org/pypi/sglang/json"


class SourceError(HarnessError, RuntimeError):
    """A release or patch cannot be obtained or applied; the message names the version and file."""


@dataclass(frozen=True)
class Sources:
    """Where wheels and unpacked trees are cached (CI keeps this directory between runs)."""

    cache: Path = DEFAULT_CACHE

    def wheel(self, version: str) -> Path:
        """The cp312 manylinux wheel (or the pure one older releases ship) of sglang==version."""
        found = self._cached_wheel(version)
        if found is not None:
            return found
        self.cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
             "--disable-pip-version-check", "--platform", "manylinux_2_34_x86_64", "--python-version", "3.12",
             "--dest", str(self.cache), f"sglang=={version}"],
            capture_output=True, text=True, timeout=600, check=False)
        found = self._cached_wheel(version)
        if proc.returncode != 0 or found is None:
            tail = [line for line in proc.stderr.strip().splitlines() if "WARNING" not in line][-2:]
            raise SourceError(f"sglang=={version}: pip download failed: {' '.join(tail)}")
        return found

    def _cached_wheel(self, version: str) -> Path | None:
        hits = sorted(self.cache.glob(f"sglang-{version}-*.whl")) if self.cache.is_dir() else []
        return hits[0] if hits else None

    def tree(self, version: str) -> Path:
        """The unpacked Python files of sglang==version (the directory that holds `sglang/`)."""
        target = self.cache / "trees" / version
        if (target / "sglang" / "__init__.py").is_file():
            return target
        wheel = self.wheel(version)
        staging = target.with_name(f"{version}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith("sglang/") and m.endswith(".py")]
            if not members:
                raise SourceError(f"{wheel}: no sglang/*.py inside")
            archive.extractall(staging, members)
        try:
            staging.rename(target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def reverted(self, version: str, fix: str) -> Path:
        """A copy of the tree with the committed revert patch of `fix` applied (git apply)."""
        patch = revert_patch(version, fix)
        target = self.cache / "reverted" / version / fix
        stamp = target / ".patch"
        text = patch.read_text(encoding="utf-8")
        if stamp.is_file() and stamp.read_text(encoding="utf-8") == text:
            return target
        shutil.rmtree(target, ignore_errors=True)
        touched = _patched_files(text)
        original = self.tree(version)
        # Only the patched files are copied; the rest are links, so each reverted tree costs kilobytes.
        for path in original.rglob("*.py"):
            rel = path.relative_to(original)
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if str(rel) in touched:
                shutil.copyfile(path, dest)
            else:
                os.symlink(path, dest)
        # Outside any repository, or git apply inside one resolves paths against that repository instead.
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(target.parent)}
        proc = subprocess.run(["git", "apply", "-p1", str(patch)], cwd=target, capture_output=True,
                              text=True, check=False, env=env)
        if proc.returncode != 0:
            raise SourceError(f"{patch}: does not apply to sglang {version}: {proc.stderr.strip()}")
        unchanged = [f for f in sorted(touched)
                     if (target / f).read_bytes() == (original / f).read_bytes()]
        if unchanged:
            raise SourceError(f"{patch}: git apply left {', '.join(unchanged)} unchanged in sglang {version}")
        stamp.write_text(text, encoding="utf-8")
        return target


def revert_patch(version: str, fix: str) -> Path:
    path = REVERTS / version / f"{fix}.diff"
    if not path.is_file():
        known = sorted(p.name for p in REVERTS.iterdir()) if REVERTS.is_dir() else []
        raise SourceError(f"{path}: no revert patch of {fix} for sglang {version} (versions with patches: "
                          f"{', '.join(known)})")
    return path


def _patched_files(text: str) -> set[str]:
    return set(re.findall(r"^\+\+\+ b/(\S+)", text, flags=re.MULTILINE))


def releases(first: str, last: str | None = None) -> list[str]:
    """Final releases of sglang on the registry from `first` to `last` (newest when None), oldest first."""
    from packaging.version import InvalidVersion, Version

    try:
        with urllib.request.urlopen(PYPI_JSON, timeout=60) as response:
            data = json.load(response)
    except OSError as exc:
        raise SourceError(f"{PYPI_JSON}: cannot list sglang releases ({exc})") from exc
    out = []
    for name, files in data.get("releases", {}).items():
        try:
            version = Version(name)
        except InvalidVersion:
            continue
        if files and not version.is_prerelease and version >= Version(first) and (
                last is None or version <= Version(last)):
            out.append(version)
    return [str(v) for v in sorted(out)]
