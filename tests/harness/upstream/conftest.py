"""sglang releases for the upstream checks: wheels fetched with `pip download --no-deps` into .cache/."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.upstream.sources import DEFAULT_CACHE, SourceError, Sources


@pytest.fixture(scope="session")
def sources() -> Sources:
    return Sources(DEFAULT_CACHE)


def tree_of(sources: Sources, version: str) -> Path:
    """The unpacked release; a registry that cannot be reached skips (CI has it, air-gapped boxes do not)."""
    try:
        return sources.tree(version)
    except SourceError as exc:
        pytest.skip(str(exc))
