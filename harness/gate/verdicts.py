"""Turn a statistic or two exact values into a verdict: regression, improvement, no_change, inconclusive."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.gate.config import GateConfig, MetricRule
from harness.gate.stats import RatioEstimate

Verdict = Literal["regression", "improvement", "no_change", "inconclusive", "skipped"]


@dataclass(frozen=True)
class Row:
    """One line of the verdict table: one scenario and one metric."""

    scenario: str
    metric: str
    verdict: Verdict
    base: str       # human-readable base value
    head: str
    change: str     # e.g. "+2.4% [+1.9%, +3.0%]" or "bytes +4096"
    reason: str     # why this verdict, in a few words
    estimate: RatioEstimate | None = None


def continuous_verdict(est: RatioEstimate, rule: MetricRule, config: GateConfig) -> tuple[Verdict, str]:
    """The issue's rule: decide only when the whole interval lies beyond (or within) the threshold."""
    upper, lower = 1.0 + rule.threshold, 1.0 - rule.threshold
    if min(est.n_base, est.n_head) < config.min_samples:
        return "inconclusive", f"too few samples (n={est.n_base}/{est.n_head} < {config.min_samples})"
    significant = est.p_value < config.alpha
    test = "paired p" if est.design == "paired" else "MWU p"  # paired: the interval's own test
    if est.ci_low > upper:
        if significant:
            return "regression", f"CI above +{rule.threshold:.1%}, {test}={est.p_value:.2g}"
        return "inconclusive", f"CI above +{rule.threshold:.1%} but {test}={est.p_value:.2g} >= {config.alpha:.3g}"
    if est.ci_high < lower:
        if significant:
            return "improvement", f"CI below -{rule.threshold:.1%}, {test}={est.p_value:.2g}"
        return "inconclusive", f"CI below -{rule.threshold:.1%} but {test}={est.p_value:.2g} >= {config.alpha:.3g}"
    if est.ci_width > rule.max_ci_width:
        return "inconclusive", f"too noisy (CI width {est.ci_width:.1%} > {rule.max_ci_width:.1%})"
    if est.ci_low >= lower and est.ci_high <= upper:
        return "no_change", f"CI within ±{rule.threshold:.1%}"
    return "no_change", f"CI crosses ±{rule.threshold:.1%}, not wholly beyond it"


def exact_verdict(base: int | None, head: int | None) -> tuple[Verdict, str]:
    """Bytes and other deterministic sizes: any increase is a regression."""
    if base is None or head is None:
        side = "base" if base is None else "head"
        return "inconclusive", f"not recorded on {side}"
    if head > base:
        return "regression", "increased"
    if head < base:
        return "improvement", "decreased"
    return "no_change", "identical"


def flag_verdict(base_bad: bool, head_bad: bool, what: str) -> tuple[Verdict, str]:
    """Boolean failures (OOM at capture, an oracle check failing): new in head is a regression."""
    if head_bad and not base_bad:
        return "regression", f"new {what} in head"
    if base_bad and not head_bad:
        return "improvement", f"{what} fixed in head"
    return "no_change", f"{what} on both" if head_bad else f"no {what}"


def format_change(est: RatioEstimate) -> str:
    return f"{est.ratio - 1:+.2%} [{est.ci_low - 1:+.2%}, {est.ci_high - 1:+.2%}]"
