"""Live calibration of the PR gate on the reference engine: false alarm and detection rates.

For each condition (A/A, then head slowed by --inject-decode-delay-us = 1, 2, 3, 5, 10% of the
measured base TPOT) it runs base and head servers interleaved through the gate's own pipeline
(harness.gate.interleave), keeps the per-request TPOT of every server start as a pool, then
simulates many gate decisions on subsamples (harness.gate.calibration) per request count.

    python bench/evidence/calibrate_gate.py --out results/calibration            # CPU defaults
    python bench/evidence/calibrate_gate.py --out DIR --device cuda --pool-requests 200
    python bench/evidence/calibrate_gate.py --out DIR --from-pools DIR/pools.json  # re-evaluate only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from harness.gate import plots
from harness.gate.calibration import (
    METRIC,
    NoiseModel,
    Pool,
    Rate,
    TrialPlan,
    evaluate,
    markdown_table,
    noise_model,
    project,
)
from harness.gate.config import load_config
from harness.gate.interleave import InterleavePlan, RunSide, run_interleaved
from harness.gate.load import load_side
from harness.serve.affinity import parse_pinning
from harness.store.atomic import atomic_write_json, atomic_write_text

SLOWDOWNS = (0.01, 0.02, 0.03, 0.05, 0.10)


@dataclass(frozen=True)
class CalibrationPlan:
    """Live collection and evaluation settings."""

    out: Path
    scenario: str = "baseline"  # catalog name or path to a scenario .toml
    device: str | None = None  # passed to the engine as --device when set
    pin: str = "none"          # harness.serve.affinity spec for servers and client, as `harness gate --pin`
    slowdowns: tuple[float, ...] = SLOWDOWNS
    pool_rounds: int = 4       # interleaved rounds collected per condition (server starts per side)
    pool_requests: int = 40    # measured requests per server start
    warmups: int | None = None
    request_counts: tuple[int, ...] = (10, 20, 40)
    rounds: int = 2            # rounds per side in one simulated gate decision
    trials: int = 200
    thresholds: tuple[float, ...] = (0.01, 0.02)
    seed: int = 7


def engine_cmd(plan: CalibrationPlan, delay_us: int) -> tuple[str, ...]:
    cmd = [sys.executable, "-m", "reference_impl.engine"]
    if plan.device:
        cmd += ["--device", plan.device]
    if delay_us:
        cmd += ["--inject-decode-delay-us", str(delay_us)]
    return tuple(cmd)


def collect(plan: CalibrationPlan, run_side: RunSide | None = None, *, base_tpot_ms: float | None = None,
            with_aa: bool = True) -> list[Pool]:
    """Run A/A first (it also measures base TPOT unless given), then one A/B pool per slowdown."""
    pools = [_collect_one(plan, 0.0, 0, run_side)] if with_aa else []
    save_pools(plan.out / "pools.json", pools)
    if base_tpot_ms is None:
        base_tpot_ms = float(np.median(np.concatenate(pools[0].base)))
    tpot_us = base_tpot_ms * 1000.0
    for slowdown in plan.slowdowns:
        pools.append(_collect_one(plan, slowdown, round(slowdown * tpot_us), run_side))
        save_pools(plan.out / "pools.json", pools)
    return pools


def _collect_one(plan: CalibrationPlan, slowdown: float, delay_us: int, run_side: RunSide | None) -> Pool:
    name = "aa" if delay_us == 0 else f"ab-{slowdown * 100:g}pct"
    started = time.monotonic()
    base_dir, head_dir = run_interleaved(InterleavePlan(
        scenarios=(plan.scenario,), base_cmd=engine_cmd(plan, 0), head_cmd=engine_cmd(plan, delay_us),
        rounds=plan.pool_rounds, requests=plan.pool_requests, warmups=plan.warmups, target="reference",
        out=plan.out / "runs" / name, pinning=parse_pinning(plan.pin)), run_side)
    # plan.scenario may be a catalog name or a .toml path: take the one scenario the runs hold.
    (base,) = load_side(base_dir, (METRIC,)).runs.values()
    (head,) = load_side(head_dir, (METRIC,)).runs.values()
    pool = Pool(slowdown, delay_us, tuple(r.values(METRIC) for r in base), tuple(r.values(METRIC) for r in head))
    print(f"[calibrate] {name}: delay {delay_us} us, measured {pool.measured_ratio() - 1:+.2%} "
          f"in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return pool


def save_pools(path: Path, pools: list[Pool]) -> None:
    atomic_write_json(path, {"schema_version": 1, "metric": METRIC, "pools": [
        {"slowdown": p.slowdown, "delay_us": p.delay_us, "base": [r.tolist() for r in p.base],
         "head": [r.tolist() for r in p.head]} for p in pools]})


def load_pools(path: Path) -> list[Pool]:
    obj = json.loads(path.read_text(encoding="utf-8"))
    return [Pool(p["slowdown"], p["delay_us"], tuple(np.asarray(r) for r in p["base"]),
                 tuple(np.asarray(r) for r in p["head"])) for p in obj["pools"]]


def report(plan: CalibrationPlan, pools: list[Pool], rates: list[Rate], where: str,
           projection: tuple[NoiseModel, TrialPlan, list[Rate]] | None = None) -> str:
    """calibration.md (one table per threshold), calibration.json and calibration.png."""
    config = load_config()
    default = config.rule(METRIC).threshold
    tpot = float(np.median(np.concatenate(pools[0].base)))
    lines = [f"# Gate calibration ({where})", "",
             f"Scenario `{plan.scenario}`, base TPOT median {tpot:.3f} ms; pools of {len(pools[0].base)} "
             f"interleaved rounds x {pools[0].base[0].size} requests per condition; each simulated decision draws "
             f"{plan.rounds} of those round pairs and n/{plan.rounds} requests from each; {plan.trials} trials per cell "
             "(when a decision uses every pool round, trials differ only in requests, not in server starts). Cells: share of trials with verdict "
             "`regression` [Wilson 95%]; A/A row = false alarm rate.", ""]
    for t in plan.thresholds:
        mark = " (default)" if t == default else ""
        lines += [f"## TPOT threshold {t:.1%}{mark}", "", markdown_table(rates, pools, t)]
    if projection is not None:
        model, proj_plan, proj_rates = projection
        spread = float(1.4826 * np.median(np.abs(model.residuals - 1.0)))
        lines += ["## Projection to larger decisions from the measured noise", "",
                  f"Requests drawn from the {model.residuals.size} measured per-request residuals "
                  f"(robust CV {spread:.1%}), each round pair shifted by N(0, tau={model.tau:.2%}) "
                  f"(tau from the A/A pool), exact slowdowns; {proj_plan.rounds} rounds; "
                  f"{proj_plan.trials} trials per cell.", ""]
        for t in plan.thresholds:
            lines += [f"### TPOT threshold {t:.1%}", "", markdown_table(proj_rates, None, t)]
    text = "\n".join(lines)
    atomic_write_text(plan.out / "calibration.md", text)
    atomic_write_json(plan.out / "calibration.json", {
        "schema_version": 1, "where": where, "plan": {k: str(v) if isinstance(v, Path) else v
                                                      for k, v in asdict(plan).items()},
        "base_tpot_ms": tpot, "measured_ratio": {str(p.slowdown): p.measured_ratio() for p in pools},
        "rates": [{**asdict(r), "rate": r.rate, "interval": r.interval()} for r in rates]})
    chosen = [r for r in rates if r.threshold == default]
    slowdowns = [p.slowdown for p in pools if p.slowdown > 0]
    by = {(r.slowdown, r.requests): r.rate for r in chosen}
    counts = sorted({r.requests for r in chosen})
    plots.calibration(plan.out / "calibration.png", slowdowns,
                      {n: [by[(s, n)] for s in slowdowns] for n in counts}, {n: by[(0.0, n)] for n in counts},
                      f"gate calibration, TPOT threshold {default:.0%} ({where})")
    return text


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = CalibrationPlan(
        out=args.out, scenario=args.scenario, device=args.device, pin=args.pin, slowdowns=_floats(args.slowdowns),
        pool_rounds=args.pool_rounds, pool_requests=args.pool_requests, warmups=args.warmups,
        request_counts=tuple(int(x) for x in args.request_counts.split(",")), rounds=args.rounds,
        trials=args.trials, thresholds=_floats(args.thresholds))
    if args.skip_aa and args.base_tpot_ms is None:
        raise SystemExit("calibrate_gate: --skip-aa needs --base-tpot-ms (the A/A pool measures it otherwise)")
    if args.from_pools:
        pools = sorted((p for path in args.from_pools for p in load_pools(path)), key=lambda p: p.slowdown)
    else:
        pools = collect(plan, base_tpot_ms=args.base_tpot_ms, with_aa=not args.skip_aa)
        save_pools(plan.out / "pools.json", pools)
    if args.collect_only:
        return 0
    if not pools or pools[0].slowdown != 0.0:
        raise SystemExit("calibrate_gate: the evaluation needs an A/A pool (slowdown 0)")
    # A count that takes every request of every pool round makes all trials one and the same decision.
    smallest = min(min(r.size for r in (*p.base, *p.head)) for p in pools)
    counts = tuple(n for n in plan.request_counts
                   if n // plan.rounds < smallest or min(len(p.base) for p in pools) > plan.rounds)
    if counts != plan.request_counts:
        print(f"[calibrate] dropped request counts that leave nothing to resample: "
              f"{sorted(set(plan.request_counts) - set(counts))}", file=sys.stderr)
        plan = replace(plan, request_counts=counts)
    trial_plan = TrialPlan(plan.request_counts, plan.rounds, plan.trials, plan.seed)
    rates = evaluate(pools, trial_plan, load_config(), plan.thresholds)
    projection = None
    if args.project_counts:
        proj_plan = TrialPlan(tuple(int(x) for x in args.project_counts.split(",")), args.project_rounds,
                              plan.trials, plan.seed)
        model = noise_model(pools, load_config(), plan.seed)
        slowdowns = tuple(p.slowdown for p in pools if p.slowdown > 0) or SLOWDOWNS
        projection = (model, proj_plan, project(model, slowdowns, proj_plan, load_config(), plan.thresholds))
    print(report(plan, pools, rates, args.where, projection))
    return 0


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scenario", default="baseline")
    p.add_argument("--device", default=None, help="engine --device (cpu|cuda); default: the engine's")
    p.add_argument("--pin", default="none", help="core pinning as `harness gate --pin` (default none)")
    p.add_argument("--slowdowns", default=",".join(str(s) for s in SLOWDOWNS))
    p.add_argument("--pool-rounds", type=int, default=4)
    p.add_argument("--pool-requests", type=int, default=40)
    p.add_argument("--warmups", type=int, default=None)
    p.add_argument("--request-counts", default="10,20,40")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--trials", type=int, default=200)
    p.add_argument("--thresholds", default="0.01,0.02")
    p.add_argument("--where", default="CPU, this machine", help="label for the report (machine/device)")
    p.add_argument("--from-pools", type=Path, nargs="+", default=None, help="re-evaluate saved pools.json files")
    p.add_argument("--base-tpot-ms", type=float, default=None, help="base TPOT the delays are a share of")
    p.add_argument("--skip-aa", action="store_true", help="collect A/B pools only (needs --base-tpot-ms)")
    p.add_argument("--collect-only", action="store_true", help="write pools.json, evaluate later")
    p.add_argument("--project-counts", default="", help="also project rates for these requests per side, "
                   "drawing from the measured noise (e.g. 150,300,450)")
    p.add_argument("--project-rounds", type=int, default=3, help="rounds per side in the projection")
    return p


if __name__ == "__main__":
    sys.exit(main())
