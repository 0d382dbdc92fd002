"""The warm-up policy on synthetic TPOT sequences: the steadiness rule, the caps, failures, the flag."""

from __future__ import annotations

import itertools

import pytest

from harness.measure.client import RequestSample
from harness.measure.warmup import (
    AutoWarmup,
    first_measured_seed,
    parse_warmups,
    steady,
    warm_up,
    window_medians,
)


def _sender(tpots: list[float], fail_at: int | None = None):
    sent: list[int] = []

    def send(k: int) -> RequestSample:
        sent.append(k)
        if k == fail_at:
            return RequestSample(index=k, input_len=1, max_new_tokens=2, ok=False, error_kind="timeout", error="x")
        return RequestSample(index=k, input_len=1, max_new_tokens=2, ok=True, tpot_ms=tpots[k])

    return send, sent


def test_steady_compares_the_last_two_windows_at_window_boundaries():
    assert not steady([1.0, 1.0, 1.0], window=2, tolerance=0.02)  # fewer than two windows
    assert steady([1.0, 1.0, 1.01, 1.01], window=2, tolerance=0.02)
    assert not steady([1.0, 1.0, 1.01, 1.01, 1.01], window=2, tolerance=0.02)  # mid-window
    assert not steady([1.0, 1.0, 1.03, 1.03], window=2, tolerance=0.02)
    # Medians, not means: one slow request in a window does not keep the server "unsteady".
    assert steady([1.0, 1.0, 1.0, 1.0, 5.0, 1.0], window=3, tolerance=0.02)
    assert not steady([None, None, 1.0, 1.0], window=2, tolerance=0.02)
    assert window_medians([3.0, 1.0, 2.0, 2.0, None, 9.0, 7.0], 2) == [2.0, 2.0, 9.0]


def test_auto_stops_when_two_windows_agree():
    # A server that speeds up for 8 requests (JIT, caches) then holds 1.00 ms.
    tpots = [4.0, 3.0, 2.5, 2.0, 1.6, 1.3, 1.1, 1.05, *([1.0] * 40)]
    send, sent = _sender(tpots)
    outcome, failed = warm_up(send, AutoWarmup(window=4, tolerance=0.02, max_requests=40))
    assert failed is None
    # windows: [4,3,2.5,2] 2.75 | [1.6,1.3,1.1,1.05] 1.2 | [1,1,1,1] 1.0 (-17%) | [1,1,1,1] 1.0: steady at 16
    assert (outcome.policy, outcome.stopped, outcome.requests) == ("auto", "steady", 16)
    assert sent == list(range(16))
    data = outcome.to_json()
    assert data["window_medians_ms"] == pytest.approx([2.75, 1.2, 1.0, 1.0])
    assert data["tpot_ms"] == tpots[:16]
    assert data["auto"] == {"window": 4, "tolerance": 0.02, "max_requests": 40, "max_s": 120.0}


def test_auto_stops_at_the_request_cap_when_regimes_keep_switching():
    tpots = list(itertools.islice(itertools.cycle([1.1] * 5 + [1.8] * 5), 60))
    send, _ = _sender(tpots)
    outcome, failed = warm_up(send, AutoWarmup(window=5, tolerance=0.02, max_requests=30))
    assert failed is None and (outcome.stopped, outcome.requests) == ("max_requests", 30)


def test_auto_stops_at_the_time_cap():
    ticks = itertools.count()
    send, _ = _sender([float(k + 1) for k in range(50)])  # never steady
    outcome, _ = warm_up(send, AutoWarmup(window=2, max_requests=50, max_s=7.0), clock=lambda: float(next(ticks)))
    # clock: 0 at start, then one tick per check after each request: 7.0 reached after the 7th.
    assert (outcome.stopped, outcome.requests) == ("max_time", 7)


def test_a_failed_warmup_stops_with_its_sample():
    send, _ = _sender([1.0] * 10, fail_at=3)
    outcome, failed = warm_up(send, AutoWarmup(window=2))
    assert failed is not None and failed.index == 3
    assert (outcome.stopped, outcome.requests) == ("failed", 4)
    outcome, failed = warm_up(send, 2)
    assert failed is None and (outcome.policy, outcome.stopped, outcome.requests) == ("fixed", "fixed", 2)
    counted = []
    outcome, _ = warm_up(send, 0, on_request=lambda: counted.append(1))
    assert outcome.requests == 0 and counted == [] and "auto" not in outcome.to_json()


def test_the_flag_value_and_the_first_measured_seed():
    assert parse_warmups("auto") == AutoWarmup() and parse_warmups(" AUTO ") == AutoWarmup()
    assert parse_warmups("0") == 0 and parse_warmups("12") == 12
    for bad in ("-1", "two", "", "1.5"):
        with pytest.raises(ValueError, match="expected an integer >= 0 or 'auto'"):
            parse_warmups(bad)
    assert first_measured_seed(3) == 3
    assert first_measured_seed(AutoWarmup(max_requests=20)) == 20
    with pytest.raises(ValueError):
        AutoWarmup(window=0)
