"""Warm-up policy: a fixed count of discarded requests, or `auto`: until TPOT is steady (bounded).

`auto` sends warm-ups in windows of `window` requests and stops after a window whose TPOT median is
within `tolerance` of the previous window's (steady), or at `max_requests` or `max_s` (cap).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.measure.client import RequestSample

AUTO = "auto"
STOP_REASONS = ("fixed", "steady", "max_requests", "max_time", "failed")


@dataclass(frozen=True)
class AutoWarmup:
    """`--warmups auto`: windows of `window` requests until two in a row agree within `tolerance`."""

    window: int = 5
    tolerance: float = 0.02  # relative difference of the two last windows' TPOT medians
    max_requests: int = 50
    max_s: float = 120.0

    def __post_init__(self) -> None:
        if self.window < 1 or self.max_requests < 1 or not self.tolerance > 0 or not self.max_s > 0:
            raise ValueError(f"AutoWarmup: window, max_requests >= 1 and tolerance, max_s > 0, got {self}")


WarmupPolicy = int | AutoWarmup


def parse_warmups(text: str) -> WarmupPolicy:
    """`--warmups` value: an integer >= 0 or `auto`; ValueError says what was expected."""
    if text.strip().lower() == AUTO:
        return AutoWarmup()
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(f"expected an integer >= 0 or '{AUTO}', got {text!r}")
    return count


def first_measured_seed(policy: WarmupPolicy) -> int:
    """Prompt seed of the first measured request: after the most warm-ups the policy can send.

    So the measured prompts of an `auto` run do not depend on when it became steady.
    """
    return policy.max_requests if isinstance(policy, AutoWarmup) else policy


def window_medians(tpots: Sequence[float | None], window: int) -> list[float]:
    """The TPOT median of every complete window (a window with no TPOT has none)."""
    medians = []
    for start in range(0, len(tpots) - window + 1, window):
        values = [t for t in tpots[start:start + window] if t is not None]
        if values:
            medians.append(statistics.median(values))
    return medians


def steady(tpots: Sequence[float | None], window: int, tolerance: float) -> bool:
    """True at a window boundary where the last two windows' TPOT medians differ by less than `tolerance`."""
    if len(tpots) < 2 * window or len(tpots) % window:
        return False
    previous = [t for t in tpots[-2 * window:-window] if t is not None]
    last = [t for t in tpots[-window:] if t is not None]
    if not previous or not last:
        return False
    before, after = statistics.median(previous), statistics.median(last)
    return before > 0 and abs(after / before - 1.0) < tolerance


@dataclass(frozen=True)
class WarmupOutcome:
    """How many warm-ups ran and why they stopped; result.json's `warmup`."""

    policy: str  # "fixed" | "auto"
    requests: int
    stopped: str  # one of STOP_REASONS
    elapsed_s: float
    tpot_ms: tuple[float | None, ...]
    auto: AutoWarmup | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"policy": self.policy, "requests": self.requests, "stopped": self.stopped,
                                "elapsed_s": self.elapsed_s, "tpot_ms": list(self.tpot_ms)}
        if self.auto is not None:
            data["auto"] = asdict(self.auto)
            data["window_medians_ms"] = window_medians(self.tpot_ms, self.auto.window)
        return data


def warm_up(send: Callable[[int], RequestSample], policy: WarmupPolicy,
            on_request: Callable[[], None] = lambda: None,
            clock: Callable[[], float] = time.monotonic) -> tuple[WarmupOutcome, RequestSample | None]:
    """Send warm-ups (`send(k)` sends the k-th) until the policy stops; returns the outcome and a failed sample."""
    started = clock()
    tpots: list[float | None] = []
    auto = policy if isinstance(policy, AutoWarmup) else None
    limit = auto.max_requests if auto else policy

    def outcome(stopped: str) -> WarmupOutcome:
        return WarmupOutcome("auto" if auto else "fixed", len(tpots), stopped, clock() - started, tuple(tpots), auto)

    while len(tpots) < limit:
        sample = send(len(tpots))
        tpots.append(sample.tpot_ms)
        on_request()
        if not sample.ok:
            return outcome("failed"), sample
        if auto is not None:
            if steady(tpots, auto.window, auto.tolerance):
                return outcome("steady"), None
            if clock() - started >= auto.max_s:
                return outcome("max_time"), None
    return outcome("max_requests" if auto else "fixed"), None
