"""The sequential rule: per-look error rates, when to stop, what the next batch is, what deciding would take."""

from __future__ import annotations

import pytest

from harness.gate.config import load_config
from harness.gate.sequential import (
    Look,
    LookPlan,
    MetricLook,
    Position,
    Step,
    decided,
    needed_samples,
    next_step,
)
from harness.gate.stats import RatioEstimate

CONFIG = load_config()
RULE = CONFIG.rule("tpot_ms")  # threshold 1%, max_ci_width 8%


def _est(ratio: float, low: float, high: float, n: int = 30) -> RatioEstimate:
    return RatioEstimate(n, n, 20.0, 20.0 * ratio, ratio, low, high, 0.5, 0, design="paired", block_length=3)


def _look(number: int, pairs: int, *verdicts: str, needed: int | None = None) -> Look:
    metrics = tuple(MetricLook(f"m{i}", v, pairs, 1.0, 0.9, 1.1, "", needed if v == "inconclusive" else None)  # type: ignore[arg-type]
                    for i, v in enumerate(verdicts))
    return Look("baseline", number, 1, pairs, 0.9875, 10.0, 4.0, metrics, "")


def _at(**changes: object) -> Position:
    base = {"live_pairs": 30, "requests": 30, "min_samples": 8, "seconds_per_pair": 4.0, "setup_s": 20.0,
            "budget_left_s": 1000.0, "max_looks": 4}
    return Position(**{**base, **changes})  # type: ignore[arg-type]


def test_each_look_gets_its_share_of_the_error_rates() -> None:
    assert LookPlan().config_at_each_look(CONFIG) is CONFIG
    four = LookPlan(max_looks=4).config_at_each_look(CONFIG)
    assert four.confidence == pytest.approx(0.9875) and four.alpha == pytest.approx(0.0125)
    assert four.metrics == CONFIG.metrics and four.seed == CONFIG.seed
    with pytest.raises(ValueError, match="max_looks: expected >= 1"):
        LookPlan(max_looks=0)


def test_stop_when_every_metric_is_decided_or_a_regression_is_proven() -> None:
    assert decided(["no_change", "improvement", "skipped"])  # skipped: measured on neither side
    assert decided(["no_change", "improvement"])
    assert decided(["regression", "inconclusive"])
    assert not decided(["no_change", "inconclusive"])


def test_needed_samples_scales_the_width_as_one_over_sqrt_n() -> None:
    # Centred at 1 with a 16% wide interval: no_change needs 8% (half 4%): (8/4)^2 = 4x the pairs.
    assert needed_samples(_est(1.0, 0.923, 1.083), RULE, 30) == pytest.approx(120, abs=2)
    # +10% with [+2%, +18%]: clear of 1% by ~8.5% (log), half width ~7.3%: already enough.
    assert needed_samples(_est(1.10, 1.02, 1.18), RULE, 30) == 30
    # A decided row never asks for fewer than it has.
    assert needed_samples(_est(1.0, 0.99, 1.01), RULE, 30) == 30


@pytest.mark.parametrize(("look", "at", "expected"), [
    (_look(1, 30, "no_change", "no_change"), _at(), Step("stop: decided")),
    (_look(1, 30, "regression", "inconclusive", needed=500), _at(), Step("stop: decided")),
    (_look(1, 0), _at(), Step("stop: nothing measured")),
    (_look(1, 30, "inconclusive", needed=90), _at(stopped=("head",)), Step("stop: the head server stopped early")),
    (_look(1, 30, "inconclusive", needed=90), _at(budget_left_s=None), Step("stop: no --budget, one look")),
    (_look(4, 30, "inconclusive", needed=90), _at(), Step("stop: all 4 looks taken")),
    # More pairs on the same servers first: what is missing, at most up to 2 x --requests on one pair.
    (_look(1, 30, "inconclusive", needed=50), _at(), Step("extend the server pair by 20 pairs", 20)),
    (_look(1, 30, "inconclusive", needed=500), _at(), Step("extend the server pair by 30 pairs", 30)),
    # At least max(min_samples, requests / 4) pairs, so a look is worth its share of alpha.
    (_look(1, 30, "inconclusive", needed=31), _at(), Step("extend the server pair by 8 pairs", 8)),
    # The budget pays for 12 pairs only.
    (_look(1, 30, "inconclusive", needed=90), _at(budget_left_s=50.0), Step("extend the server pair by 12 pairs", 12)),
    (_look(1, 30, "inconclusive", needed=90), _at(budget_left_s=20.0),
     Step("stop: budget (20 s left, 4.00 s a pair)")),
    # The live pair is full: a new server pair, its start-up paid from the budget.
    (_look(2, 60, "inconclusive", needed=200), _at(live_pairs=60),
     Step("new server pair with 30 pairs", 30, fresh=True)),
    (_look(2, 60, "inconclusive", needed=200), _at(live_pairs=60, budget_left_s=60.0),
     Step("new server pair with 10 pairs", 10, fresh=True)),
    (_look(2, 60, "inconclusive", needed=200), _at(live_pairs=60, budget_left_s=40.0),
     Step("stop: budget (40 s left; a new server pair takes 20 s + 4.00 s a pair)")),
])
def test_next_step(look: Look, at: Position, expected: Step) -> None:
    assert next_step(look, at) == expected


def test_a_start_bound_metric_gets_a_new_server_pair_not_more_pairs() -> None:
    # The between-start SD dominates the undecided metric: more request pairs on the live servers cannot
    # narrow it, so the next batch goes to a fresh server pair of max(min_samples, requests / 4) pairs.
    bound = MetricLook("decode_gpu_ms", "inconclusive", 30, 1.0, 0.98, 1.02, "", 400, start_bound=True)
    look = Look("baseline", 1, 1, 30, 0.9875, 10.0, 4.0, (bound,), "")
    assert next_step(look, _at()) == Step("new server pair with 8 pairs", 8, fresh=True)
    noisy = MetricLook("tpot_ms", "inconclusive", 30, 1.0, 0.9, 1.1, "", 90)
    mixed = Look("baseline", 1, 1, 30, 0.9875, 10.0, 4.0, (bound, noisy), "")
    assert next_step(mixed, _at()) == Step("extend the server pair by 30 pairs", 30)
