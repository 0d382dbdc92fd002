"""Compare a base side with a head side, scenario by scenario, into verdict rows and problems."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.gate.config import GateConfig
from harness.gate.errors import GateInputError
from harness.gate.load import ScenarioRun, Side
from harness.gate.paired_stats import matched_pairs, paired_ratio
from harness.gate.stats import RatioEstimate, median_ratio
from harness.gate.verdicts import Row, continuous_verdict, exact_verdict, flag_verdict, format_change
from harness.store.result import OOM_AT_CAPTURE

EXIT_PASS, EXIT_REGRESSION, EXIT_INFRA, EXIT_INCONCLUSIVE = 0, 1, 2, 3
# failure.stage values that point at the harness rather than the server under test.
HARNESS_STAGES = frozenset({"harness", "instrumentation"})


@dataclass(frozen=True)
class GateOutcome:
    """All rows plus infrastructure problems; the exit code follows from them."""

    rows: tuple[Row, ...]
    problems: tuple[str, ...]  # one line each, naming the file

    @property
    def exit_code(self) -> int:
        # A proven regression outranks an infrastructure problem elsewhere: it is actionable as is.
        if any(r.verdict == "regression" for r in self.rows):
            return EXIT_REGRESSION
        if self.problems:
            return EXIT_INFRA
        # Inconclusive is not a pass: a slowdown the interval could not rule out must not go green.
        return EXIT_INCONCLUSIVE if any(r.verdict == "inconclusive" for r in self.rows) else EXIT_PASS

    @property
    def verdict(self) -> str:
        return {EXIT_PASS: "pass", EXIT_REGRESSION: "regression", EXIT_INFRA: "infrastructure_failure",
                EXIT_INCONCLUSIVE: "inconclusive"}[self.exit_code]


def compare_sides(base: Side, head: Side, config: GateConfig) -> GateOutcome:
    """Raises GateInputError when the two sides do not hold the same scenarios."""
    if set(base.runs) != set(head.runs):
        only_base = sorted(set(base.runs) - set(head.runs))
        only_head = sorted(set(head.runs) - set(base.runs))
        raise GateInputError(
            f"scenarios differ between base {base.root} and head {head.root}: "
            f"only in base: {', '.join(only_base) or '-'}; only in head: {', '.join(only_head) or '-'}")
    rows: list[Row] = []
    problems: list[str] = []
    for name in sorted(base.runs):
        scenario_rows, scenario_problems = compare_scenario(name, base.runs[name], head.runs[name], config)
        rows.extend(scenario_rows)
        problems.extend(scenario_problems)
    return GateOutcome(rows=tuple(rows), problems=tuple(problems))


def compare_scenario(name: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...],
                     config: GateConfig) -> tuple[list[Row], list[str]]:
    """Rows for one scenario, or the problems that stop it from being compared."""
    base_skipped = [r for r in base if r.result.status == "skipped"]
    head_skipped = [r for r in head if r.result.status == "skipped"]
    if base_skipped or head_skipped:
        if len(base_skipped) == len(base) and len(head_skipped) == len(head):
            reason = base_skipped[0].result.skip_reason or "skipped"
            return [Row(name, "status", "skipped", "skipped", "skipped", "-", reason)], []
        first = (base_skipped or head_skipped)[0]
        return [], [f"{first.path}: skipped ({first.result.skip_reason}) while the other side ran this scenario"]

    # The harness failing on either side, or the base failing at all, says nothing about the PR.
    harness_failed = [r for r in (*base, *head) if r.result.failure_stage in HARNESS_STAGES]
    if harness_failed:
        r = harness_failed[0]
        return [], [f"{r.path}: {r.result.failure_stage} failure (status {r.result.status}); not attributable to head"]
    broken_base = [r for r in base if _crashed(r)]
    if broken_base:
        r = broken_base[0]
        return [], [f"{r.path}: base run failed (status {r.result.status}, startup {r.result.startup_outcome}); "
                    "not attributable to head"]
    rows: list[Row] = []
    broken_head = [r for r in head if _crashed(r)]
    if broken_head:
        r = broken_head[0]
        failed = f"{r.result.status}/{r.result.failure_stage or r.result.startup_outcome}"
        rows.append(Row(name, "startup", "regression", "ok", failed,
                        "-", f"head failed where base ran: {r.path}"))
    rows.append(_oom_row(name, base, head))
    rows.extend(_workspace_rows(name, base, head))
    rows.extend(_oracle_rows(name, base, head))
    for rule in config.metrics:
        rows.append(_metric_row(name, rule.name, base, head, config))
    gpu = _gpu_row(name, base, head)
    if gpu is not None:
        rows.append(gpu)
    return rows, []


# A latency comparison is only as good as the GPU's state while it was measured: throttling in more
# than this share of the telemetry samples, or a lowest SM clock this much below the other side's,
# makes the comparison `inconclusive` (the H200 sittings held 1980 MHz with 0% throttling throughout).
THROTTLED_SHARE_MAX = 0.05
SM_CLOCK_GAP_MAX = 0.02


def _gpu_row(name: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...]) -> Row | None:
    """The GPU's clock and throttling on both sides (telemetry.summary); None when neither side has any."""
    sides = [[r.result.gpu for r in runs if r.result.gpu is not None] for runs in (base, head)]
    if not any(sides):
        return None
    if not all(sides):
        return Row(name, "gpu_clock", "skipped", "-", "-", "-", "GPU telemetry on one side only")
    clocks = [min((g.sm_clock_mhz_min for g in side if g.sm_clock_mhz_min is not None), default=None)
              for side in sides]
    throttled = [max((g.throttled_share for g in side if g.throttled_share is not None), default=None)
                 for side in sides]
    shown = [f"{c:.0f} MHz min, {t:.0%} throttled" if c is not None and t is not None else "n/a"
             for c, t in zip(clocks, throttled, strict=True)]
    if any(t is not None and t > THROTTLED_SHARE_MAX for t in throttled):
        return Row(name, "gpu_clock", "inconclusive", *shown, "-",
                   f"the GPU throttled in over {THROTTLED_SHARE_MAX:.0%} of the samples: latencies not comparable")
    known = [c for c in clocks if c is not None]
    if len(known) == 2 and min(known) < (1 - SM_CLOCK_GAP_MAX) * max(known):
        return Row(name, "gpu_clock", "inconclusive", *shown, "-",
                   f"the lowest SM clocks differ by more than {SM_CLOCK_GAP_MAX:.0%}: latencies not comparable")
    return Row(name, "gpu_clock", "no_change", *shown, "-", "steady clocks, no throttling beyond "
               f"{THROTTLED_SHARE_MAX:.0%} on either side")


def _crashed(run: ScenarioRun) -> bool:
    # An OOM at capture is a measured outcome (compared exactly), not a crash.
    return run.result.startup_outcome in ("crash", "timeout") or (
        run.result.status == "failed" and run.result.startup_outcome != OOM_AT_CAPTURE)


def _oom_row(name: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...]) -> Row:
    base_oom, head_oom = any(r.result.capture_oom for r in base), any(r.result.capture_oom for r in head)
    verdict, reason = flag_verdict(base_oom, head_oom, "OOM at capture")
    return Row(name, "capture_oom", verdict, _yes(base_oom), _yes(head_oom), "-", reason)


def _workspace_rows(name: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...]) -> list[Row]:
    base_bytes = _max_or_none(r.result.workspace_bytes for r in base)
    head_bytes = _max_or_none(r.result.workspace_bytes for r in head)
    if base_bytes is None and head_bytes is None:
        return []
    verdict, reason = exact_verdict(base_bytes, head_bytes)
    change = f"{head_bytes - base_bytes:+,d} B" if base_bytes is not None and head_bytes is not None else "-"
    return [Row(name, "workspace_bytes", verdict, _bytes(base_bytes), _bytes(head_bytes), change, reason)]


def _oracle_rows(name: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...]) -> list[Row]:
    rows = []
    checks = sorted({k for r in (*base, *head) for k in r.result.oracle_passed})
    for check in checks:
        base_seen = [r.result.oracle_passed[check] for r in base if check in r.result.oracle_passed]
        head_seen = [r.result.oracle_passed[check] for r in head if check in r.result.oracle_passed]
        metric = f"oracle:{check}"
        if not base_seen or not head_seen:
            side = "base" if not base_seen else "head"
            rows.append(Row(name, metric, "inconclusive", _pf(base_seen), _pf(head_seen), "-",
                            f"not checked on {side}"))
            continue
        verdict, reason = flag_verdict(not all(base_seen), not all(head_seen), "oracle failure")
        rows.append(Row(name, metric, verdict, _pf(base_seen), _pf(head_seen), "-", reason))
    # Unchanged checks fold into one line so the PR comment shows what moved.
    same = [r for r in rows if r.verdict == "no_change"]
    if len(same) > 1:
        failing = [r.metric.removeprefix("oracle:") for r in same if r.base != "pass"]
        summary = Row(name, "oracle", "no_change", f"{len(same) - len(failing)} pass, {len(failing)} fail",
                      "same", "-", f"{len(same)} checks unchanged" +
                      (f" (failing on both: {', '.join(failing)})" if failing else ""))
        rows = [summary, *(r for r in rows if r.verdict != "no_change")]
    return rows


def _metric_row(name: str, metric: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...],
                config: GateConfig) -> Row:
    base_groups = [r.values(metric) for r in base]
    head_groups = [r.values(metric) for r in head]
    n_base, n_head = sum(g.size for g in base_groups), sum(g.size for g in head_groups)
    if n_base == 0 and n_head == 0:
        # Neither side measured it (e.g. decode_gpu_ms in results older than the decode_step records).
        return Row(name, metric, "skipped", "n=0", "n=0", "-", "not measured on either side")
    if n_base == 0 or n_head == 0:
        return Row(name, metric, "inconclusive", f"n={n_base}", f"n={n_head}", "-", "no samples on one side")
    try:
        est = _estimate(metric, base, head, config)
    except ValueError as exc:
        return Row(name, metric, "inconclusive", f"n={n_base}", f"n={n_head}", "-", str(exc))
    verdict, reason = continuous_verdict(est, config.rule(metric), config)
    if est.design == "paired":
        reason += f"; paired, {est.n_base} pairs, block {est.block_length}"
        if est.rounds:
            reason += f", {est.rounds} server-start pairs"
    elif est.rounds:
        reason += f"; {est.rounds} round pairs"
    return Row(name, metric, verdict, f"{est.base_median:.4g} (n={n_base})", f"{est.head_median:.4g} (n={n_head})",
               format_change(est), reason, est)


def _estimate(metric: str, base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...],
              config: GateConfig) -> RatioEstimate:
    """Matched request pairs when both sides come from the same co-resident server pairs, else unpaired."""
    if paired_rounds(base, head):
        series = [matched_pairs(b.paired_values(metric), h.paired_values(metric)) for b, h in zip(base, head, strict=True)]
        return paired_ratio(series, resamples=config.bootstrap_resamples, confidence=config.confidence,
                            seed=config.seed, start_sd=config.rule(metric).start_sd_for(base[0].target_kind))
    return median_ratio([r.values(metric) for r in base], [r.values(metric) for r in head],
                        resamples=config.bootstrap_resamples, confidence=config.confidence, seed=config.seed)


def paired_rounds(base: tuple[ScenarioRun, ...], head: tuple[ScenarioRun, ...]) -> bool:
    """Both sides paired, round by round from the same server-start pair."""
    if len(base) != len(head) or not base:
        return False
    pairs = [(b.result.pairing, h.result.pairing) for b, h in zip(base, head, strict=True)]
    return all(b is not None and h is not None and b.side == "base" and h.side == "head"
               and b.start_pair == h.start_pair for b, h in pairs)


def _max_or_none(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _bytes(value: int | None) -> str:
    return "-" if value is None else f"{value:,d} B"


def _pf(seen: list[bool]) -> str:
    if not seen:
        return "-"
    return "pass" if all(seen) else f"fail ({seen.count(False)}/{len(seen)})"
