"""Sequential sampling rule: Bonferroni alpha spending over a fixed number of looks, and what deciding would take.

With `--budget`, the gate may look at the data up to `max_looks` times and stop as soon as every
continuous metric is decided. Each look uses confidence 1 - (1 - c) / max_looks (and alpha / max_looks
for the rank test), so the chance of any false regression over all looks stays below the fixed-design
rate whatever the dependence between looks (a union bound). Pocock or O'Brien-Fleming boundaries
need independent normal increments with known information fractions; the looks here are
block-bootstrap intervals over autocorrelated pairs whose size the budget decides on the way, so
the gate takes the rule that assumes nothing. docs/gate.md, Sequential rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from harness.gate.config import GateConfig, MetricRule
from harness.gate.stats import RatioEstimate
from harness.gate.verdicts import Verdict

DECIDED: frozenset[str] = frozenset({"regression", "improvement", "no_change", "skipped"})  # skipped: not measured
DEFAULT_MAX_LOOKS = 4


@dataclass(frozen=True)
class LookPlan:
    """How many looks the gate may take at most (1: the fixed design, no budget)."""

    max_looks: int = 1

    def __post_init__(self) -> None:
        if self.max_looks < 1:
            raise ValueError(f"max_looks: expected >= 1, got {self.max_looks}")

    def config_at_each_look(self, config: GateConfig) -> GateConfig:
        """The gate config every look uses: the error rates split evenly over the looks."""
        if self.max_looks == 1:
            return config
        return replace(config, confidence=1.0 - (1.0 - config.confidence) / self.max_looks,
                       alpha=config.alpha / self.max_looks)


def decided(verdicts: Iterable[Verdict]) -> bool:
    """Stop sampling: a regression is already proven, or no metric is left undecided."""
    seen = list(verdicts)
    return "regression" in seen or all(v in DECIDED for v in seen)


def needed_samples(est: RatioEstimate, rule: MetricRule, n: int) -> int:
    """Samples (request pairs, or requests per side) at which the interval would decide, if its width
    shrinks as 1/sqrt(n) and the estimate stays: wholly beyond the threshold, or narrow enough for no_change."""
    centre = math.log(est.ratio)
    half = (math.log(est.ci_high) - math.log(est.ci_low)) / 2.0
    if half <= 0 or n < 1:
        return n
    beyond = abs(centre) - math.log1p(rule.threshold)
    # max_ci_width is in ratio units; near 1 the log width is the same to the first order.
    target = max(beyond, rule.max_ci_width / 2.0)
    return max(n, math.ceil(n * (half / target) ** 2))


@dataclass(frozen=True)
class MetricLook:
    """One metric at one look: its verdict, interval and the pairs it would take to decide."""

    metric: str
    verdict: Verdict
    pairs: int
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    reason: str
    needed: int | None  # inconclusive: pairs at which the interval would decide (needed_samples)
    start_bound: bool = False  # the between-start SD dominates: only new server pairs narrow it


@dataclass(frozen=True)
class Look:
    """One look of the sequential rule at one scenario, and what the gate did next."""

    scenario: str
    number: int
    start_pairs: int
    pairs: int
    confidence: float
    elapsed_s: float
    seconds_per_pair: float
    metrics: tuple[MetricLook, ...]
    action: str


@dataclass(frozen=True)
class Sampling:
    """How the gate produced its results: design (and why), the looks taken, the budget and time used."""

    design: str          # "paired" | "alternating" | "given" (--base/--head directories)
    design_reason: str
    max_looks: int
    budget_s: float | None
    elapsed_s: float
    looks: tuple[Look, ...] = ()

    def last_look(self, scenario: str) -> Look | None:
        mine = [look for look in self.looks if look.scenario == scenario]
        return mine[-1] if mine else None


@dataclass(frozen=True)
class Position:
    """Where the paired design stands at a look: the live server pair, the clock and the budget."""

    live_pairs: int          # request pairs planned on the live server pair so far
    requests: int            # --requests: the first batch of a server pair
    min_samples: int
    seconds_per_pair: float  # measured in the last batch
    setup_s: float           # a server pair's start and warm-up, measured
    budget_left_s: float | None  # None: no --budget
    max_looks: int
    stopped: tuple[str, ...] = ()  # sides whose server stopped early


@dataclass(frozen=True)
class Step:
    """What the paired design does after a look: stop, extend the live server pair, or start a new one."""

    action: str
    pairs: int = 0      # 0: stop
    fresh: bool = False  # the pairs go to a new server pair


PER_START_CAP = 2  # a server pair serves at most this many times --requests pairs; then a fresh pair starts


def next_step(look: Look, at: Position) -> Step:
    """More pairs on the same servers first (no start-up), then a new server pair, within the budget.

    The batch is what needed_samples says the undecided metrics lack, at least max(min_samples,
    requests / 4) pairs so a look is worth its share of alpha, at most what the budget still pays for.
    """
    if at.stopped:
        return Step(f"stop: the {' and '.join(at.stopped)} server stopped early")
    if not look.metrics:
        return Step("stop: nothing measured")
    if decided(m.verdict for m in look.metrics):
        return Step("stop: decided")
    if at.budget_left_s is None:
        return Step("stop: no --budget, one look")
    if look.number >= at.max_looks:
        return Step(f"stop: all {at.max_looks} looks taken")
    undecided = [m for m in look.metrics if m.verdict == "inconclusive"]
    wanted = max((m.needed or 0) for m in look.metrics) - look.pairs
    floor = max(at.min_samples, at.requests // 4)
    per_pair = max(at.seconds_per_pair, 1e-3)
    room = PER_START_CAP * at.requests - at.live_pairs
    if undecided and all(m.start_bound for m in undecided):
        room = 0  # more pairs on these servers cannot narrow what is undecided: a new server pair can
        wanted = floor
    if room >= floor:
        pairs = min(max(wanted, floor), room, int(at.budget_left_s / per_pair))
        if pairs >= floor:
            return Step(f"extend the server pair by {pairs} pairs", pairs)
        return Step(f"stop: budget ({at.budget_left_s:.0f} s left, {per_pair:.2f} s a pair)")
    pairs = min(max(wanted, floor), at.requests, int((at.budget_left_s - at.setup_s) / per_pair))
    if pairs >= floor:
        return Step(f"new server pair with {pairs} pairs", pairs, fresh=True)
    return Step(f"stop: budget ({at.budget_left_s:.0f} s left; a new server pair takes {at.setup_s:.0f} s "
                f"+ {per_pair:.2f} s a pair)")
