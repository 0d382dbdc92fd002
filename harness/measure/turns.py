"""When a server may send its next request: a plain run never waits; the paired gate takes turns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from harness.measure.client import RequestSample

# Kinds of server contact during the measure phase; "measure" requests are the ones a pairing matches.
WARMUP, MEASURE, SCRAPE = "warmup", "measure", "scrape"


class Turns(Protocol):
    """Grants one server's requests their turn; the paired gate's implementation alternates two servers."""

    def hold(self, kind: str, index: int) -> AbstractContextManager[bool]:
        """Wait for the turn of request `index` of `kind`; the value is False when it is not to be sent."""
        ...

    def report(self, index: int, sample: RequestSample) -> None:
        """A measured request finished (the paired gate looks at the samples between batches)."""
        ...

    def pairing(self) -> dict[str, Any] | None:
        """What result.json records as `pairing` (None: not paired)."""
        ...


class FreeTurns:
    """A plain run: every request at once, `requests` measured ones."""

    def __init__(self, requests: int) -> None:
        self.requests = requests

    @contextlib.contextmanager
    def hold(self, kind: str, index: int) -> Iterator[bool]:
        yield kind != MEASURE or index < self.requests

    def report(self, index: int, sample: RequestSample) -> None:
        pass

    def pairing(self) -> dict[str, Any] | None:
        return None
