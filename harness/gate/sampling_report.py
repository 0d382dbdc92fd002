"""The gate report's sampling part: the design and why, each look, and what an undecided row would take."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.gate.compare import GateOutcome
from harness.gate.config import GateConfig
from harness.gate.sequential import Look, Sampling, needed_samples

DESIGN_NAMES = {"paired": "paired co-resident", "alternating": "alternating server starts",
                "given": "results given with --base/--head"}


@dataclass(frozen=True)
class ToDecide:
    """One inconclusive metric: the samples it has, the samples that would decide, and their cost."""

    scenario: str
    metric: str
    ci_width: float
    have: int
    need: int
    unit: str               # "request pairs" | "requests per side" | "server-start pairs"
    seconds: float | None   # for the samples still missing, at the measured pace
    heterogeneous: bool = False  # the start pairs disagree beyond the calibrated between-start SD

    def text(self) -> str:
        if self.heterogeneous:
            return (f"{self.scenario} {self.metric}: interval {self.ci_width:.1%} wide: its {self.have} server-start "
                    f"pairs disagree beyond the between-start SD calibrated for this target (Cochran's Q against "
                    f"thresholds.toml start_sd), so the interval rests on a Student t with {self.have - 1} degree(s) "
                    f"of freedom: this machine's servers sit further apart than the calibration says; more server-start "
                    f"pairs, or a start_sd measured over many A/A gates on this machine (bench/evidence/"
                    f"start_offsets.py, --config)")
        if self.unit == "server-start pairs":
            return (f"{self.scenario} {self.metric}: interval {self.ci_width:.1%} wide from {self.have} {self.unit}, "
                    f"bounded by the between-start SD calibrated for this target (thresholds.toml start_sd): more "
                    f"request pairs on one server pair cannot narrow it; about {self.need} {self.unit} would "
                    f"decide if the estimate stays")
        more = self.need - self.have
        cost = f", ~{self.seconds:.0f} s more" if self.seconds is not None else ""
        return (f"{self.scenario} {self.metric}: interval {self.ci_width:.1%} wide from {self.have} {self.unit}; "
                f"about {self.need} {self.unit} ({more} more{cost}) would decide if the width shrinks as "
                f"1/sqrt(n) and the estimate stays")


def to_decide(outcome: GateOutcome, config: GateConfig, sampling: Sampling) -> list[ToDecide]:
    """What each inconclusive continuous row lacks (rows without an estimate have nothing to scale)."""
    names = {r.name for r in config.metrics}
    needs = []
    for row in outcome.rows:
        est = row.estimate
        if row.verdict != "inconclusive" or row.metric not in names or est is None:
            continue
        look = sampling.last_look(row.scenario)
        if est.start_bound or est.heterogeneous:
            starts = max(est.rounds, 1)
            needs.append(ToDecide(row.scenario, row.metric, est.ci_width, starts,
                                  needed_samples(est, config.rule(row.metric), starts), "server-start pairs", None,
                                  heterogeneous=est.heterogeneous))
            continue
        have = est.n_base
        need = max(needed_samples(est, config.rule(row.metric), have), config.min_samples)
        seconds = (need - have) * look.seconds_per_pair if look and look.seconds_per_pair > 0 else None
        unit = "request pairs" if est.design == "paired" else "requests per side"
        needs.append(ToDecide(row.scenario, row.metric, est.ci_width, have, need, unit, seconds))
    return needs


def sampling_lines(outcome: GateOutcome, config: GateConfig, sampling: Sampling) -> list[str]:
    """Markdown: how the results were produced, the looks, and what the undecided rows would take."""
    design = DESIGN_NAMES.get(sampling.design, sampling.design)
    taken = len({look.number for look in sampling.looks}) or 1
    budget = f"budget {sampling.budget_s:.0f} s" if sampling.budget_s is not None else "no --budget"
    lines = ["", "### Sampling", "",
             f"Design: **{design}** ({sampling.design_reason}). Looks: {taken} of at most {sampling.max_looks} "
             f"({budget}; {_levels(config, sampling)}); "
             f"{sampling.elapsed_s:.0f} s."]
    if sampling.looks:
        lines.append("")
        lines += [f"- {look_line(look)}" for look in sampling.looks]
    needs = to_decide(outcome, config, sampling)
    if needs:
        lines += ["", "### What it would take", ""]
        lines += [f"- {need.text()}" for need in needs]
        lines.append("- rerun with more `--requests`, or give the gate a `--budget` (seconds) to keep sampling")
    return lines


def look_line(look: Look) -> str:
    parts = []
    for m in look.metrics:
        if m.ratio is None or m.ci_low is None or m.ci_high is None:
            parts.append(f"{m.metric} {m.verdict}")
        else:
            parts.append(f"{m.metric} {m.ratio - 1:+.2%} [{m.ci_low - 1:+.2%}, {m.ci_high - 1:+.2%}] {m.verdict}")
    return (f"{look.scenario}, look {look.number} at {look.elapsed_s:.0f} s: {look.start_pairs} server pair(s), "
            f"{look.pairs} pairs, {look.confidence:.2%} intervals: {'; '.join(parts) or 'nothing measured'} "
            f"-> {look.action}")


def sampling_json(outcome: GateOutcome, config: GateConfig, sampling: Sampling) -> dict[str, Any]:
    return {
        "design": sampling.design,
        "design_reason": sampling.design_reason,
        "budget_s": sampling.budget_s,
        "max_looks": sampling.max_looks,
        "elapsed_s": round(sampling.elapsed_s, 3),
        "looks": [asdict(look) for look in sampling.looks],
        "to_decide": [asdict(need) for need in to_decide(outcome, config, sampling)],
    }


def _levels(config: GateConfig, sampling: Sampling) -> str:
    if sampling.max_looks == 1:
        return f"{config.confidence:.0%} intervals"
    return (f"{config.confidence:.2%} intervals: the {(1 - config.confidence) * sampling.max_looks:.0%} error "
            f"rate split evenly over {sampling.max_looks} looks, Bonferroni")
