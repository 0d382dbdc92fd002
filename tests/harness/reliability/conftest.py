"""Fixtures of the fault-catalog tests: a per-test orphan mark and a harness CLI runner."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from reliability_helpers import MARK_ENV, HarnessCli, survivors


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A unique marker in this process's environment (so in-process runs' servers inherit it too);
    the test fails if any marked process outlives it, and such processes are killed."""
    value = uuid.uuid4().hex
    monkeypatch.setenv(MARK_ENV, value)
    yield value
    left = survivors(value)
    for pid in left:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    assert left == [], f"orphan processes survived the test: {left}"


@pytest.fixture
def harness_cli(mark: str, tmp_path: Path) -> Iterator[HarnessCli]:
    cli = HarnessCli(mark, tmp_path / "locks")
    yield cli
    cli.close()
