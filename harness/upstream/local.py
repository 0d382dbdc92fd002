"""An sglang source tree named by --source: where its package is, its version and its git commit.

A checkout's python/ folder, an unpacked wheel or site-packages. Nothing is imported from the tree:
the version is read from its files (or, in a git checkout without a build, from the nearest release
tag), and every file a hook target lives in is parsed up front, so a broken tree stops the check with
the file and the target named.
"""

from __future__ import annotations

import ast
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

from harness.errors import HarnessError
from harness.instrument.targets import TARGETS, module_file
from harness.upstream.linker import UnreadableSource, parse_file

# Where a tree says its version: the build-time file setuptools-scm writes (0.5.1x wheels, an installed
# checkout), then the hand-edited literal of older trees.
VERSION_FILES = ("sglang/_version.py", "sglang/version.py")
RELEASE_TAGS = "v[0-9]*"


class LocalSourceError(HarnessError, ValueError):
    """--source names no usable sglang tree; the message names the path or file and what is wrong."""


@dataclass(frozen=True)
class LocalSource:
    """One sglang tree on disk: the directory holding `sglang/`, its version and, in a git checkout, the commit."""

    path: Path  # as given on the command line
    root: Path  # the directory that holds the sglang package
    version: str  # as the tree states it
    version_from: str  # the file (or git tag) it was read from
    commit: str | None = None
    dirty: bool | None = None  # uncommitted changes under the sglang package (git checkouts only)

    @property
    def rules_version(self) -> str:
        """The release whose rules judge the tree: 0.5.24.dev3+gabc and 0.5.24rc1 are judged as 0.5.24."""
        return Version(self.version).base_version

    def label(self) -> str:
        where = f"source {self.root}"
        if self.commit:
            where += f", commit {self.commit}" + (" with uncommitted changes" if self.dirty else "")
        return where

    def to_json(self) -> dict[str, object]:
        return {"path": str(self.path), "root": str(self.root), "version": self.version,
                "version_from": self.version_from, "rules_version": self.rules_version,
                "commit": self.commit, "dirty": self.dirty}


def locate(path: Path) -> LocalSource:
    """The tree at `path`: the directory holding `sglang/`, or the `sglang` package directory itself."""
    if not path.exists():
        raise LocalSourceError(f"--source {path}: no such directory")
    if not path.is_dir():
        raise LocalSourceError(f"--source {path}: not a directory")
    resolved = path.resolve()
    if (resolved / "sglang" / "__init__.py").is_file():
        root = resolved
    elif resolved.name == "sglang" and (resolved / "__init__.py").is_file():
        root = resolved.parent
    else:
        raise LocalSourceError(f"--source {path}: no sglang package here ({resolved / 'sglang' / '__init__.py'} "
                               f"does not exist); give a checkout's python/ folder, an unpacked wheel, "
                               f"site-packages or the sglang package directory")
    commit, dirty = _git_state(root)
    version, version_from = _version(root, commit is not None)
    return LocalSource(path, root, version, version_from, commit, dirty)


def preflight(root: Path) -> None:
    """Parse every file a hook target lives in; UnreadableSource names the file and its targets."""
    targets_of: dict[str, list[str]] = {}
    for target in TARGETS:
        for cand in target.candidates:
            targets_of.setdefault(cand.module, []).append(f"{target.name} ({', '.join(cand.attrs)})")
    for module, targets in targets_of.items():
        path = module_file(root, module)
        if path is None:
            continue  # a candidate this release does not have: reported by the hook-target table
        try:
            parse_file(path, module)
        except UnreadableSource as exc:
            raise UnreadableSource(f"{exc}; hook target(s) {', '.join(dict.fromkeys(targets))} live there") from None


def _version(root: Path, in_git: bool) -> tuple[str, str]:
    tried = []
    for rel in VERSION_FILES:
        path = root / rel
        if not path.is_file():
            tried.append(f"{path}: missing")
            continue
        try:
            found = _literal_version(parse_file(path, "sglang.version"))
        except UnreadableSource as exc:
            raise LocalSourceError(f"--source: {exc}") from None
        if found is None:
            tried.append(f"{path}: __version__ is not a string literal")
            continue
        return _checked(found, str(path)), str(path)
    if in_git:
        tag = _git(root, "describe", "--tags", "--abbrev=0", "--match", RELEASE_TAGS)
        if tag:
            return _checked(tag.removeprefix("v"), f"git tag {tag}"), f"git tag {tag}"
        tried.append(f"{root}: no release tag ({RELEASE_TAGS}) reachable from HEAD (a shallow clone has none)")
    raise LocalSourceError("--source: cannot read sglang's version: " + "; ".join(tried))


def _literal_version(module: ast.Module) -> str | None:
    """`__version__ = "x"` (also `__version__ = version = "x"`) at the top level of the module."""
    for node in module.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
                and any(isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets)):
            return node.value.value
    return None


def _checked(version: str, where: str) -> str:
    try:
        Version(version)
    except InvalidVersion:
        raise LocalSourceError(f"--source: {where}: {version!r} is not a version number") from None
    return version


def _git_state(root: Path) -> tuple[str | None, bool | None]:
    """HEAD and whether the package has uncommitted changes, when git tracks this sglang package."""
    # An unpacked wheel under another repository (this one's .cache/) is ignored there, not tracked.
    if _git(root, "ls-files", "--error-unmatch", "sglang/__init__.py") is None:
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", "sglang")
    return commit, (bool(status) if status is not None else None)


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
