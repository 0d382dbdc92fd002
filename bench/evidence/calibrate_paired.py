"""Paired gate calibration: pools of co-resident request pairs under run-time injected delays, and the rates.

`collect` starts ONE co-resident server pair (harness.gate.coresident, the gate's own machinery), both
servers reading a delay file (HARNESS_INJECT_DELAY_FILE, reference_impl/contract/delay_switch.py): first an
A/A batch of pairs, then, for each level, the head's file says `gpu <us>` or `host <us>` (the slowdown
times the A/A batch's base TPOT) and another batch runs on the same servers. The base file stays off.
`evaluate` simulates gate decisions on windows of consecutive pairs (harness.gate.paired_calibration)
and writes calibration.md/json and a power-curve PNG per metric. Several `collect` outputs (e.g. one
per device call) are evaluated together, each pool on its own.

    python bench/evidence/calibrate_paired.py collect --out DIR --cmd "python3 -m sglang.launch_server \\
        --sampling-backend pytorch" --target sglang --levels gpu:0.01,gpu:0.02 --aa-pairs 200 --level-pairs 100
    python bench/evidence/calibrate_paired.py evaluate --out DIR DIR1/pools.json DIR2/pools.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.gate.config import load_config
from harness.gate.coresident import PairedPlan, open_start_pair
from harness.gate.memfit import KV_TOKENS_FLAG, PAIRED_KV_TOKENS
from harness.gate.paired_calibration import (
    PairedPool,
    PairedRate,
    PairedTrialPlan,
    evaluate_paired,
    fast_config,
    markdown_table,
)
from harness.measure.warmup import parse_warmups
from harness.scenarios.catalog import load_scenario
from harness.serve.affinity import parse_pinning
from harness.store.atomic import atomic_write_json as write_json
from harness.store.result import RESULT_FILE, read_object

METRICS = ("tpot_ms", "decode_gpu_ms", "ttft_ms")
SCENARIO = Path(__file__).resolve().parent / "sglang-paired-calibration.toml"


@dataclass(frozen=True)
class Segment:
    """Pairs [first, end) of the server pair measured under one delay."""

    kind: str
    slowdown: float
    delay_us: int
    first: int
    end: int


@dataclass(frozen=True)
class CollectPlan:
    """One server pair, its A/A batch and the delay levels that follow it."""

    out: Path
    cmd: tuple[str, ...]
    target: str
    scenario: str
    levels: tuple[tuple[str, float], ...]
    aa_pairs: int
    level_pairs: int
    warmups: str
    pin: str = "none"


def collect(plan: CollectPlan) -> Path:
    """Run the pairs; write OUT/pools.json (per segment, per metric, base/head in pair order)."""
    plan.out.mkdir(parents=True, exist_ok=True)
    files = {side: plan.out / f"delay-{side}.txt" for side in ("base", "head")}
    for path in files.values():
        path.write_text("off\n")
    commands = {side: ("env", f"HARNESS_INJECT_DELAY_FILE={path}", *plan.cmd) for side, path in files.items()}
    # On a GPU both servers get the share the gate would give them (harness.gate.memfit).
    scenario = load_scenario(plan.scenario)
    alone = dict(scenario.server_args).get("mem_fraction_static")
    extra = (KV_TOKENS_FLAG, str(PAIRED_KV_TOKENS)) if plan.target == "sglang" and alone else ()
    paired = PairedPlan(scenarios=(plan.scenario,), base_cmd=commands["base"], head_cmd=commands["head"],
                        rounds=1, requests=plan.aa_pairs, warmups=parse_warmups(plan.warmups),
                        target=plan.target, out=plan.out / "runs", extra_server_args=extra,
                        pinning=parse_pinning(plan.pin))
    started = time.monotonic()
    with open_start_pair(paired, load_config()) as live:
        segments = [Segment("aa", 0.0, 0, 0, plan.aa_pairs)]
        tpot_us = 1000.0 * float(np.median([s.tpot_ms for s in live.turns.samples("base") if s.ok and s.tpot_ms]))
        print(f"[calibrate] A/A batch: base TPOT {tpot_us / 1000:.4f} ms after {time.monotonic() - started:.0f} s",
              file=sys.stderr)
        for kind, slowdown in plan.levels:
            delay_us = max(1, round(slowdown * tpot_us))
            files["head"].write_text(f"{kind} {delay_us}\n")
            time.sleep(0.3)  # the servers poll the file every 50 ms
            first = live.turns.planned
            live.extend(plan.level_pairs)
            segments.append(Segment(kind, slowdown, delay_us, first, first + plan.level_pairs))
            print(f"[calibrate] {kind} +{slowdown:.0%} ({delay_us} us) done at {time.monotonic() - started:.0f} s",
                  file=sys.stderr)
        files["head"].write_text("off\n")
        seconds_per_pair = live.pair_s
        setup_s = live.setup_s
    results = {side: read_object(plan.out / "runs" / side / "round-00" / scenario.name / RESULT_FILE)
               for side in ("base", "head")}
    pools = [_pool(segment, results) for segment in segments]
    path = plan.out / "pools.json"
    write_json(path, {"schema_version": 1, "design": "paired", "pin": plan.pin, "cmd": list(plan.cmd),
                      "target": plan.target, "scenario": plan.scenario, "seconds_per_pair": seconds_per_pair, "setup_s": setup_s,
                      "wall_s": time.monotonic() - started, "base_tpot_ms": tpot_us / 1000,
                      "pools": [_pool_json(p, s) for p, s in zip(pools, segments, strict=True)]})
    return path


def _pool(segment: Segment, results: dict[str, dict]) -> PairedPool:
    by_pair = {side: {int(s.get("pair", s["index"])): s for s in results[side]["samples"] if s.get("ok")}
               for side in results}
    pairs = [k for k in range(segment.first, segment.end) if k in by_pair["base"] and k in by_pair["head"]]
    base, head = {}, {}
    for metric in METRICS:
        both = [k for k in pairs if _positive(by_pair["base"][k].get(metric)) and _positive(by_pair["head"][k].get(metric))]
        if both:
            base[metric] = np.array([by_pair["base"][k][metric] for k in both], dtype=float)
            head[metric] = np.array([by_pair["head"][k][metric] for k in both], dtype=float)
    return PairedPool(segment.kind, segment.slowdown, segment.delay_us, base, head)


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def _pool_json(pool: PairedPool, segment: Segment) -> dict:
    return {"kind": pool.kind, "slowdown": pool.slowdown, "delay_us": pool.delay_us,
            "pairs": [segment.first, segment.end],
            "base": {m: v.tolist() for m, v in pool.base.items()}, "head": {m: v.tolist() for m, v in pool.head.items()}}


def load_pools(path: Path) -> tuple[list[PairedPool], dict]:
    """The pools of one collect run and its header (seconds per pair, setup time, command)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        pools = [PairedPool(p["kind"], float(p["slowdown"]), int(p["delay_us"]),
                            {m: np.asarray(v, dtype=float) for m, v in p["base"].items()},
                            {m: np.asarray(v, dtype=float) for m, v in p["head"].items()}) for p in obj["pools"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"calibrate_paired: {path}: not a pools file ({type(exc).__name__}: {exc})") from exc
    return pools, {k: v for k, v in obj.items() if k != "pools"}


def evaluate(paths: Sequence[Path], out: Path, pair_counts: tuple[int, ...], trials: int, resamples: int,
             seed: int) -> str:
    """calibration.md, calibration.json and one power-curve PNG per metric for all pools of `paths`."""
    config = fast_config(load_config(), resamples)
    out.mkdir(parents=True, exist_ok=True)
    rates: list[PairedRate] = []
    headers = []
    for k, path in enumerate(paths):
        pools, header = load_pools(path)
        headers.append({"file": str(path), **header})
        for rate in evaluate_paired(pools, PairedTrialPlan(pair_counts, trials, seed + 1000 * k), config, METRICS):
            rates.append(rate if len(paths) == 1 else _tagged(rate, k))
    spp = float(np.median([h["seconds_per_pair"] for h in headers if h.get("seconds_per_pair")] or [np.nan]))
    setup = float(np.median([h["setup_s"] for h in headers if h.get("setup_s")] or [np.nan]))
    lines = [f"# Paired gate calibration ({', '.join(str(p) for p in paths)})", "",
             f"Each cell: share of {trials} simulated decisions with verdict `regression` [Wilson 95%] and the "
             f"median interval width w; a decision = n consecutive request pairs from a random start in one "
             f"pool (one co-resident server pair), the gate's paired statistic and rule "
             f"({resamples} bootstrap resamples). Time per pair {spp:.2f} s; server pair setup (start, warm-up) "
             f"{setup:.0f} s. Windows of one pool overlap: a pool of P pairs holds only P/n disjoint windows.", ""]
    for h in headers:
        lines.append(f"- `{h['file']}`: base TPOT {h.get('base_tpot_ms', float('nan')):.4f} ms, "
                     f"{h.get('seconds_per_pair', float('nan')):.3f} s per pair, setup {h.get('setup_s', float('nan')):.0f} s, "
                     f"wall {h.get('wall_s', float('nan')):.0f} s")
    for metric in METRICS:
        if any(r.metric == metric for r in rates):
            lines += ["", f"## {metric} (threshold {config.rule(metric).threshold:.0%})", "",
                      markdown_table(rates, metric, spp if np.isfinite(spp) else None)]
            _plot(out / f"power-{metric}.png", rates, metric)
    text = "\n".join(lines) + "\n"
    (out / "calibration.md").write_text(text, encoding="utf-8")
    write_json(out / "calibration.json", {"schema_version": 1, "inputs": headers, "trials": trials,
                                          "resamples": resamples, "rates": [
        {**r.__dict__, "rate": r.rate, "interval": r.interval()} for r in rates]})
    return text


def _tagged(rate: PairedRate, k: int) -> PairedRate:
    return replace(rate, label=f"{rate.label} (pair {k + 1})")


def _plot(path: Path, rates: list[PairedRate], metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in dict.fromkeys(r.label for r in rates if r.metric == metric):
        mine = sorted((r for r in rates if r.metric == metric and r.label == label), key=lambda r: r.pairs)
        ax.plot([r.pairs for r in mine], [r.rate for r in mine], marker="o", label=label)
    ax.axhline(0.95, color="grey", linestyle=":", linewidth=1)
    ax.axhline(0.01, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("request pairs per decision")
    ax.set_ylabel("share called regression")
    ax.set_title(f"paired gate power, {metric}")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _levels(text: str) -> tuple[tuple[str, float], ...]:
    levels = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        kind, _, value = item.partition(":")
        if kind not in ("gpu", "host") or not value:
            raise argparse.ArgumentTypeError(f"--levels: expected gpu:FRACTION or host:FRACTION, got {item!r}")
        levels.append((kind, float(value)))
    return tuple(levels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--cmd", required=True, help="server command prefix for both sides")
    c.add_argument("--target", default="sglang", choices=("reference", "sglang"))
    c.add_argument("--scenario", default=str(SCENARIO))
    c.add_argument("--levels", type=_levels, default=_levels("gpu:0.01,gpu:0.02,gpu:0.03,gpu:0.05"))
    c.add_argument("--aa-pairs", type=int, default=200)
    c.add_argument("--level-pairs", type=int, default=100)
    c.add_argument("--warmups", default="5")
    c.add_argument("--pin", default="none", help="as harness gate --pin (the two servers split the server cores)")
    e = sub.add_parser("evaluate")
    e.add_argument("pools", nargs="+", type=Path)
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--pair-counts", default="25,50,100,200")
    e.add_argument("--trials", type=int, default=200)
    e.add_argument("--resamples", type=int, default=500)
    e.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.command == "collect":
        path = collect(CollectPlan(args.out, tuple(shlex.split(args.cmd)), args.target, args.scenario, args.levels,
                                   args.aa_pairs, args.level_pairs, args.warmups, args.pin))
        print(path)
        return 0
    counts = tuple(int(x) for x in args.pair_counts.split(","))
    print(evaluate(args.pools, args.out, counts, args.trials, args.resamples, args.seed), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
