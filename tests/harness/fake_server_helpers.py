"""Shared by the harness-core tests: where the fake server lives and the orphan check."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil

from harness.serve.server import Server, group_members

FAKE_SERVER = Path(__file__).parent / "fake_servers" / "sglang_like.py"
FAKE_LAUNCHER = (sys.executable, str(FAKE_SERVER))


def assert_no_orphans(server: Server, children: list[int]) -> None:
    """Nothing of the server's process group, nor any descendant seen while it ran, is alive."""
    assert server.pgid is not None
    assert group_members(server.pgid) == []
    for pid in children:
        if psutil.pid_exists(pid):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"pid {pid} survived"
