"""Two co-resident servers take turns: request pairs in ABBA order, never concurrent, paused between batches.

The base and head threads each run the harness pipeline (harness.run) on their own server and ask
this object before every request. Warm-ups and /metrics scrapes only exclude each other; measured
request k of both sides forms pair k: with order "abba" pair k runs base first when k is even and
head first when k is odd (A B B A A B ...), so a linear drift inside every two pairs cancels. A side
that reaches the end of the planned batch waits until the gate extends the plan or finishes it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from harness.measure.client import RequestSample
from harness.measure.turns import MEASURE

SIDES = ("base", "head")
_WAIT_S = 0.5  # re-check interval while waiting (a KeyboardInterrupt in the main thread gets through)
MIN_CUT_PAIRS = 8  # a batch cut at the deadline still gives the look this many pairs


def pair_order(k: int, order: str) -> tuple[str, str]:
    """Which side runs first in pair k."""
    return ("head", "base") if order == "abba" and k % 2 else ("base", "head")


def abba_sequence(pairs: int, order: str) -> list[tuple[int, str]]:
    """The measured requests in time order: (pair, side)."""
    return [(k, side) for k in range(pairs) for side in pair_order(k, order)]


class PairTurns:
    """The turn-taking of one server-start pair; SideTurns views are handed to the two pipelines."""

    def __init__(self, *, planned: int, order: str, start_pair: int) -> None:
        if order not in ("abba", "abab"):
            raise ValueError(f"order: expected abba or abab, got {order!r}")
        self.order = order
        self.start_pair = start_pair
        self._cond = threading.Condition()
        self._planned = planned
        self._finished = False
        self._holder: str | None = None
        self._done = dict.fromkeys(SIDES, 0)         # measured requests finished per side
        self._started = dict.fromkeys(SIDES, 0)      # measured requests sent per side
        self._measuring = dict.fromkeys(SIDES, False)  # past warm-up: asked for measured request 0
        self._left: set[str] = set()
        self._samples: dict[str, list[RequestSample]] = {side: [] for side in SIDES}

    def side(self, name: str) -> SideTurns:
        if name not in SIDES:
            raise ValueError(f"side: expected base or head, got {name!r}")
        return SideTurns(self, name)

    # ---- the gate's side (main thread) ----------------------------------------------------------

    @property
    def planned(self) -> int:
        return self._planned

    def wait_batch(self, deadline: float | None = None) -> bool:
        """Block until both sides finished the planned pairs (or left); True if the batch was cut short.

        Past `deadline` (time.monotonic) the batch is cut to the pairs already begun (at least
        MIN_CUT_PAIRS), so a slow side (e.g. an eager head) cannot outrun the gate's time budget.
        """
        cut = False
        with self._cond:
            while not all(side in self._left or self._done[side] >= self._planned for side in SIDES):
                if not cut and deadline is not None and time.monotonic() >= deadline:
                    cut = True
                    begun = max(self._started.values())  # every begun pair gets its second request
                    self._planned = min(self._planned, max(begun, MIN_CUT_PAIRS))
                    self._cond.notify_all()
                    continue
                self._cond.wait(_WAIT_S)
        return cut

    def extend(self, pairs: int) -> None:
        """Plan `pairs` more request pairs on the same two servers."""
        with self._cond:
            self._planned += pairs
            self._cond.notify_all()

    def finish(self) -> None:
        """No more pairs: the sides go on to stop their servers and write their results."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def left(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._left)

    def samples(self, side: str) -> list[RequestSample]:
        with self._cond:
            return list(self._samples[side])

    # ---- the pipelines' side (one thread each) --------------------------------------------------

    @contextlib.contextmanager
    def hold(self, side: str, kind: str, index: int) -> Iterator[bool]:
        with self._cond:
            if kind == MEASURE:
                self._measuring[side] = True
                self._cond.notify_all()
            while True:
                go = self._may_go(side, kind, index)
                if go is not None:
                    break
                self._cond.wait(_WAIT_S)
            if go:
                self._holder = side
                if kind == MEASURE:
                    self._started[side] = index + 1
        try:
            yield go
        finally:
            with self._cond:
                if go:
                    self._holder = None
                    if kind == MEASURE:
                        self._done[side] = index + 1
                self._cond.notify_all()

    def report(self, side: str, sample: RequestSample) -> None:
        with self._cond:
            self._samples[side].append(sample)

    def leave(self, side: str) -> None:
        """This side sends nothing more (its pipeline returned, whatever the reason)."""
        with self._cond:
            self._left.add(side)
            self._cond.notify_all()

    def _may_go(self, side: str, kind: str, index: int) -> bool | None:
        """True: go now; False: this request is not to be sent; None: wait."""
        if kind == MEASURE and index >= self._planned:
            return False if self._finished else None
        if self._holder is not None:
            return None
        if kind != MEASURE:
            return True
        other = "head" if side == "base" else "base"
        if other in self._left:
            return True
        if not self._measuring[other]:
            return None  # the other server is still warming up: measured requests start together
        first, _ = pair_order(index, self.order)
        needed = index if side == first else index + 1
        return True if self._done[other] >= needed else None


class SideTurns:
    """One side's view (harness.measure.turns.Turns) handed to its pipeline."""

    def __init__(self, turns: PairTurns, side: str) -> None:
        self._turns = turns
        self.side = side

    def hold(self, kind: str, index: int) -> contextlib.AbstractContextManager[bool]:
        return self._turns.hold(self.side, kind, index)

    def report(self, index: int, sample: RequestSample) -> None:
        self._turns.report(self.side, sample)

    def pairing(self) -> dict[str, Any] | None:
        return {"design": "paired", "side": self.side, "start_pair": self._turns.start_pair,
                "order": self._turns.order}

    def leave(self) -> None:
        self._turns.leave(self.side)
