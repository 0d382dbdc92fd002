"""Produce base and head results with the chosen design, sampling more while the budget lasts.

Paired co-resident where both servers fit (harness.gate.memfit), else alternating server starts;
the reason goes into the report. With `--budget`, the alternating design adds rounds between looks
(the paired design extends its server pairs itself, harness.gate.coresident); both follow the same
sequential rule (harness.gate.sequential).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.gate.compare import compare_sides
from harness.gate.config import GateConfig
from harness.gate.coresident import PairedPlan, run_paired
from harness.gate.errors import GateInputError
from harness.gate.interleave import InterleavePlan, harness_run_side, machine_lock, run_rounds
from harness.gate.load import load_side
from harness.gate.memfit import Fit, alone_fraction, combine, decide_fit, probe_devices, uses_gpu
from harness.gate.sequential import Look, LookPlan, MetricLook, Sampling, decided, needed_samples
from harness.gate.verdicts import Row
from harness.measure.warmup import WarmupPolicy
from harness.scenarios.catalog import ScenarioError, load_scenario
from harness.serve.affinity import Pinning

DESIGNS = ("paired", "alternating")
# Server starts per side before the first look. Alternating: server starts are the expensive part
# (sglang: minutes), so few rounds and many requests (docs/gate.md, Calibration). Paired: host regimes
# cancel inside each request pair, so one server pair decides; --budget adds more when it cannot.
ALTERNATING_ROUNDS = 3
PAIRED_ROUNDS = 1


@dataclass(frozen=True)
class SamplingPlan:
    """Everything `harness gate --base-cmd/--head-cmd` decided from its flags."""

    scenarios: tuple[str, ...]
    base_cmd: tuple[str, ...]
    head_cmd: tuple[str, ...]
    design: str
    rounds: int | None  # None: the chosen design's default
    requests: int
    warmups: WarmupPolicy | None
    target: str
    out: Path  # OUT/runs
    order: str = "abba"
    pinning: Pinning = field(default_factory=Pinning)
    budget_s: float | None = None
    looks: LookPlan = field(default_factory=LookPlan)


def produce(plan: SamplingPlan, config: GateConfig) -> tuple[Path, Path, Sampling]:
    """Run the servers; return the base and head directories and how they were sampled."""
    if plan.design not in DESIGNS:
        raise GateInputError(f"--design: expected one of {', '.join(DESIGNS)}, got {plan.design!r}")
    started = time.monotonic()
    design, reason, fit = plan.design, "asked for with --design alternating", None
    if plan.design == "paired":
        fit = memory_fit(plan)
        design, reason = ("paired", fit.reason) if fit.paired else ("alternating", fit.reason)
    plan = replace(plan, rounds=plan.rounds or (PAIRED_ROUNDS if design == "paired" else ALTERNATING_ROUNDS))
    if design == "paired":
        extra = fit.server_args() if fit else ()
        paired = PairedPlan(scenarios=plan.scenarios, base_cmd=plan.base_cmd, head_cmd=plan.head_cmd,
                            rounds=plan.rounds, requests=plan.requests, warmups=plan.warmups, target=plan.target,
                            out=plan.out, order=plan.order, pinning=plan.pinning, budget_s=plan.budget_s,
                            looks=plan.looks, extra_server_args=extra)
        base, head, looks = run_paired(paired, config)
    else:
        base, head, looks = _alternating(plan, config, started)
    return base, head, Sampling(design=design, design_reason=reason, max_looks=plan.looks.max_looks,
                                budget_s=plan.budget_s, elapsed_s=time.monotonic() - started, looks=looks)


def memory_fit(plan: SamplingPlan) -> Fit:
    """Whether every scenario's two servers fit on the GPUs together (CPU servers always do)."""
    try:
        scenarios = [load_scenario(name) for name in plan.scenarios]
    except ScenarioError as exc:
        raise GateInputError(str(exc)) from exc
    on_gpu = uses_gpu(plan.target, plan.base_cmd) or uses_gpu(plan.target, plan.head_cmd)
    devices = probe_devices() if on_gpu else ()
    fits = []
    for scenario in scenarios:
        needs = scenario.hardware_for(plan.target)
        alone = alone_fraction(scenario, (plan.base_cmd, plan.head_cmd), devices[0].total_bytes) if devices else 1.0
        fits.append(decide_fit(uses_gpu=on_gpu, gpus_needed=needs.gpus, min_gpu_memory_gib=needs.min_gpu_memory_gib,
                               alone=alone, devices=devices))
    return combine(fits)


def _alternating(plan: SamplingPlan, config: GateConfig, started: float) -> tuple[Path, Path, tuple[Look, ...]]:
    """Interleaved rounds; with a budget, more rounds while the looks cannot decide."""
    rounds = InterleavePlan(scenarios=plan.scenarios, base_cmd=plan.base_cmd, head_cmd=plan.head_cmd,
                            rounds=plan.rounds, requests=plan.requests, warmups=plan.warmups,
                            target=plan.target, out=plan.out, order=plan.order, pinning=plan.pinning)
    look_config = plan.looks.config_at_each_look(config)
    metrics = tuple(r.name for r in config.metrics)
    looks: list[Look] = []
    with machine_lock(rounds.out, rounds.lock_wait_s):
        run_rounds(rounds, harness_run_side)
        number = 1
        while plan.budget_s is not None:
            outcome = compare_sides(load_side(rounds.out / "base", metrics), load_side(rounds.out / "head", metrics),
                                    look_config)
            elapsed = time.monotonic() - started
            round_s = elapsed / rounds.rounds
            step = _alternating_looks(outcome.rows, look_config, number, rounds.rounds, elapsed, round_s / plan.requests)
            action, more = _more_rounds(step, plan, number, round_s, plan.budget_s - elapsed)
            looks += [replace(look, action=action) for look in step]
            if not more:
                break
            rounds = replace(rounds, first_round=rounds.rounds, rounds=rounds.rounds + more)
            run_rounds(rounds, harness_run_side)
            number += 1
    return rounds.out / "base", rounds.out / "head", tuple(looks)


def _alternating_looks(rows: tuple[Row, ...], config: GateConfig, number: int, rounds: int, elapsed_s: float,
                       request_s: float) -> list[Look]:
    """One look per scenario from the continuous-metric rows (n = requests per side)."""
    by_scenario: dict[str, list[MetricLook]] = {}
    names = {r.name for r in config.metrics}
    for row in rows:
        if row.metric not in names:
            continue
        est = row.estimate
        if est is None:
            by_scenario.setdefault(row.scenario, []).append(
                MetricLook(row.metric, row.verdict, 0, None, None, None, row.reason, None))
            continue
        need = needed_samples(est, config.rule(row.metric), est.n_base) if row.verdict == "inconclusive" else None
        by_scenario.setdefault(row.scenario, []).append(MetricLook(
            row.metric, row.verdict, est.n_base, est.ratio, est.ci_low, est.ci_high, row.reason, need))
    return [Look(scenario=name, number=number, start_pairs=rounds, pairs=max((m.pairs for m in metrics), default=0),
                 confidence=config.confidence, elapsed_s=elapsed_s, seconds_per_pair=request_s,
                 metrics=tuple(metrics), action="") for name, metrics in sorted(by_scenario.items())]


def _more_rounds(step: list[Look], plan: SamplingPlan, number: int, round_s: float, left_s: float) -> tuple[str, int]:
    """(what the log says, rounds to add; 0: stop)."""
    undecided = [look for look in step if not decided(m.verdict for m in look.metrics)]
    if not undecided:
        return "stop: decided", 0
    if number >= plan.looks.max_looks:
        return f"stop: all {plan.looks.max_looks} looks taken", 0
    wanted = max(((m.needed or 0) - m.pairs for look in undecided for m in look.metrics), default=0)
    # At most as many rounds as the first look had, so the later looks still have budget to spend.
    cap = plan.rounds or ALTERNATING_ROUNDS
    more = min(max(1, math.ceil(wanted / max(plan.requests, 1))), cap, int(left_s / max(round_s, 1e-3)))
    if not more:
        return f"stop: budget ({left_s:.0f} s left, {round_s:.0f} s a round)", 0
    return f"{more} more round{'s' if more > 1 else ''}", more
