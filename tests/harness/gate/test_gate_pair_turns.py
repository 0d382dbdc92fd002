"""Turn-taking of two co-resident servers: ABBA order, never concurrent, batches, a side that leaves."""

from __future__ import annotations

import threading
import time

import pytest

from harness.gate.pair_turns import PairTurns, abba_sequence, pair_order
from harness.measure.client import RequestSample
from harness.measure.turns import MEASURE, SCRAPE, WARMUP, FreeTurns


class Recorder:
    """What each side did while holding its turn, and how many held a turn at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, int]] = []
        self.holding = 0
        self.most = 0

    def work(self, side: str, kind: str, index: int) -> None:
        with self.lock:
            self.holding += 1
            self.most = max(self.most, self.holding)
            self.events.append((side, kind, index))
        time.sleep(0.002)  # long enough for the other thread to try to cut in
        with self.lock:
            self.holding -= 1

    def measured(self) -> list[tuple[int, str]]:
        return [(i, side) for side, kind, i in self.events if kind == MEASURE]


def side_pipeline(turns: PairTurns, side: str, recorder: Recorder, warmups: int, delay_s: float = 0.0) -> None:
    """What harness.run._measure does with its turns, a recorder standing in for the HTTP requests."""
    view = turns.side(side)
    time.sleep(delay_s)  # e.g. a slower server start
    try:
        for i in range(warmups):
            with view.hold(WARMUP, i):
                recorder.work(side, WARMUP, i)
        with view.hold(SCRAPE, 0):
            recorder.work(side, SCRAPE, 0)
        index = 0
        while True:
            with view.hold(MEASURE, index) as go:
                if not go:
                    break
                recorder.work(side, MEASURE, index)
            view.report(index, RequestSample(index=index, input_len=1, max_new_tokens=2, ok=True, tpot_ms=1.0))
            index += 1
        with view.hold(SCRAPE, 1):
            recorder.work(side, SCRAPE, 1)
    finally:
        view.leave()


def _start(turns: PairTurns, recorder: Recorder, warmups: dict[str, int],
           delays: dict[str, float] | None = None) -> list[threading.Thread]:
    threads = [threading.Thread(target=side_pipeline,
                                args=(turns, side, recorder, warmups[side], (delays or {}).get(side, 0.0)))
               for side in ("base", "head")]
    for thread in threads:
        thread.start()
    return threads


def test_pair_order_and_abba_sequence() -> None:
    assert [pair_order(k, "abba") for k in range(3)] == [("base", "head"), ("head", "base"), ("base", "head")]
    assert {pair_order(k, "abab") for k in range(4)} == {("base", "head")}
    assert abba_sequence(4, "abba") == [(0, "base"), (0, "head"), (1, "head"), (1, "base"),
                                        (2, "base"), (2, "head"), (3, "head"), (3, "base")]


@pytest.mark.parametrize("order", ["abba", "abab"])
def test_measured_requests_alternate_in_order_never_concurrent_and_extend(order: str) -> None:
    turns = PairTurns(planned=4, order=order, start_pair=0)
    recorder = Recorder()
    # Unequal warm-ups and a late head: measured pairs still start only when both are warm.
    threads = _start(turns, recorder, {"base": 1, "head": 3}, {"head": 0.05})
    turns.wait_batch()
    assert recorder.measured() == abba_sequence(4, order)
    first_measured = next(n for n, e in enumerate(recorder.events) if e[1] == MEASURE)
    assert [e for e in recorder.events[:first_measured] if e[1] == WARMUP] \
        and all(e[1] != MEASURE for e in recorder.events[:first_measured])
    assert sum(1 for e in recorder.events[:first_measured] if e[1] == WARMUP) == 4  # both warmed first
    turns.extend(2)
    turns.wait_batch()
    turns.finish()
    for thread in threads:
        thread.join(10)
    assert recorder.measured() == abba_sequence(6, order)
    assert recorder.most == 1  # never two requests at once
    assert [s.index for s in turns.samples("head")] == list(range(6))
    assert turns.planned == 6 and turns.left() == {"base", "head"}


def test_a_side_that_leaves_lets_the_other_finish_its_batch_alone() -> None:
    turns = PairTurns(planned=3, order="abba", start_pair=1)
    recorder = Recorder()
    head = turns.side("head")
    head.leave()  # e.g. its server crashed at startup: it never asks for a turn
    thread = threading.Thread(target=side_pipeline, args=(turns, "base", recorder, 1))
    thread.start()
    turns.wait_batch()
    assert recorder.measured() == [(0, "base"), (1, "base"), (2, "base")]
    assert turns.left() == {"head"}
    turns.finish()
    thread.join(10)
    assert turns.side("base").pairing() == {"design": "paired", "side": "base", "start_pair": 1, "order": "abba"}


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="order: expected abba or abab"):
        PairTurns(planned=1, order="aabb", start_pair=0)
    with pytest.raises(ValueError, match="side: expected base or head"):
        PairTurns(planned=1, order="abba", start_pair=0).side("middle")


def test_a_plain_run_never_waits() -> None:
    free = FreeTurns(requests=2)
    with free.hold(MEASURE, 1) as go:
        assert go
    with free.hold(MEASURE, 2) as go:
        assert not go
    with free.hold(WARMUP, 99) as go:
        assert go
    assert free.pairing() is None


def test_a_batch_past_the_deadline_is_cut_to_the_pairs_begun() -> None:
    # 1000 pairs planned, a deadline already 0.2 s away: the batch stops after the pairs begun by then
    # (at least MIN_CUT_PAIRS), both sides finish the pair in flight, and nothing runs after the cut.
    from harness.gate.pair_turns import MIN_CUT_PAIRS

    turns = PairTurns(planned=1000, order="abba", start_pair=0)
    recorder = Recorder()
    threads = _start(turns, recorder, {"base": 0, "head": 0})
    assert turns.wait_batch(deadline=time.monotonic() + 0.2) is True
    cut_at = turns.planned
    assert MIN_CUT_PAIRS <= cut_at < 1000
    turns.finish()
    for thread in threads:
        thread.join(10)
    assert recorder.measured() == abba_sequence(cut_at, "abba")
    assert turns.wait_batch(deadline=time.monotonic() - 1) is False  # already complete: nothing to cut
