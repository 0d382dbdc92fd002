"""Provenance: the harness's version, its checkout's git commit and the host, recorded with every result."""

from __future__ import annotations

import importlib.metadata
import socket
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "sglang-moe-harness"


def package_version(distribution: str = DISTRIBUTION) -> str | None:
    """The installed version of `distribution` (this harness by default), or None when it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit(root: Path = REPO_ROOT) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout at `root`, or (None, None) outside git."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())


def git_commit_time(root: Path = REPO_ROOT) -> str | None:
    """ISO 8601 committer time of the checkout's HEAD, or None outside git."""
    try:
        return subprocess.run(["git", "-C", str(root), "show", "-s", "--format=%cI", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def harness_identity() -> dict[str, object]:
    """result.json's `harness` block: this harness's version, commit and whether its checkout is dirty."""
    commit, dirty = git_commit()
    return {"version": package_version(), "commit": commit, "dirty": dirty}


def reference_target() -> dict[str, str | None]:
    """The reference engine's `target` fields: it ships with the harness, so the harness's version and commit.

    commit_time lets `harness history` order nightly results by commit without a commits file.
    """
    return {"version": package_version(), "commit": git_commit()[0], "commit_time": git_commit_time()}


def hostname() -> str:
    """This machine's name, as lock files and run manifests record their owner."""
    return socket.gethostname()
