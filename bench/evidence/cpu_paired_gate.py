"""CPU evidence for the paired gate: a default A/A and a +10% decode delay on the reference engine, one core busy.

Runs, on this machine, with a `python -c 'while True: pass'` loop pinned to the last core:
  1. `harness gate` A/A (both sides `python -m reference_impl.engine`), 30 requests a side, defaults
     otherwise (paired co-resident design, thresholds.toml); expected exit 0;
  2. the same with the head slowed by `--inject-decode-delay-us` = 10% of the A/A's median base TPOT;
     expected exit 1.
Writes OUT/<gate>/{gate.md,verdict.json,runs/} and OUT/commands.md + OUT/evidence.json (commands,
exit codes, wall times, interval widths, the busy-core method, the machine's load).
With --pool-pairs N it then runs three longer paired gates (A/A, +5%, +10%; N request pairs each,
same busy core) and evaluates the gate's TPOT decision on every window of n consecutive pairs
(n = 10, 20, 30; windows start at even pairs, so each keeps whole ABBA blocks): OUT/power.md and
OUT/power.json, the CPU paired power table of docs/gate.md.

    python bench/evidence/cpu_paired_gate.py --out results/gate/2026-12-04-cpu-paired [--pool-pairs 100]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUSY_CODE = "while True: pass"
GATED = ("tpot_ms", "ttft_ms", "decode_gpu_ms")
WINDOWS = (10, 20, 30)
POOL_SLOWDOWNS = (0.0, 0.05, 0.10)


@dataclass(frozen=True)
class EvidencePlan:
    """What to run and where the evidence goes."""

    out: Path
    scenario: Path = HERE / "cpu-paired-gate.toml"
    requests: int = 30
    slowdown: float = 0.10
    busy: str = "pinned"  # pinned: the loop on the last usable core; unpinned; none
    python: str = sys.executable


@dataclass(frozen=True)
class GateRun:
    """One `harness gate` invocation and what it decided."""

    name: str
    argv: tuple[str, ...]
    expected_exit: int
    exit_code: int
    wall_s: float
    rows: tuple[dict[str, Any], ...]  # the gated metrics' rows of verdict.json
    design: str | None


def engine_cmd(plan: EvidencePlan, delay_us: int = 0) -> str:
    cmd = [plan.python, "-m", "reference_impl.engine"]
    if delay_us:
        cmd += ["--inject-decode-delay-us", str(delay_us)]
    return shlex.join(cmd)


def run_gate(plan: EvidencePlan, name: str, head_cmd: str, expected_exit: int, requests: int | None = None) -> GateRun:
    out = plan.out / name
    if out.exists():
        shutil.rmtree(out)
    argv = (plan.python, "-m", "harness", "gate", "--base-cmd", engine_cmd(plan), "--head-cmd", head_cmd,
            "--requests", str(requests or plan.requests), "--out", str(out), "--no-plots", str(plan.scenario))
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    (plan.out / f"{name}.stderr.txt").write_text(done.stderr, encoding="utf-8")
    # The servers' instrumentation records (decode_step lines, MBs) are reduced into result.json already.
    for records in sorted(out.glob("runs/*/round-*/*/records")):
        shutil.rmtree(records)
    verdict_path = out / "verdict.json"
    verdict = json.loads(verdict_path.read_text()) if verdict_path.exists() else {"rows": [], "design": None}
    rows = tuple(r for r in verdict["rows"] if r["metric"] in GATED)
    return GateRun(name, argv, expected_exit, done.returncode, wall, rows, verdict.get("design"))


def base_tpot_ms(plan: EvidencePlan, name: str) -> float:
    """Median TPOT of the base side of gate `name` (measured under the same load as the gates)."""
    from harness.store.result import RESULT_FILE, read_object

    paths = sorted((plan.out / name / "runs" / "base").glob(f"round-*/*/{RESULT_FILE}"))
    values = [s["tpot_ms"] for p in paths for s in read_object(p)["samples"] if s.get("tpot_ms")]
    if not values:
        raise SystemExit(f"{plan.out / name}: no base TPOT measured; see {name}.stderr.txt")
    return statistics.median(values)


def start_busy(plan: EvidencePlan) -> subprocess.Popen[bytes] | None:
    if plan.busy == "none":
        return None
    loop = subprocess.Popen([plan.python, "-c", BUSY_CODE])
    if plan.busy == "pinned":
        os.sched_setaffinity(loop.pid, {max(os.sched_getaffinity(0))})
    return loop


def busy_method(plan: EvidencePlan) -> str:
    if plan.busy == "none":
        return "no busy loop"
    where = f"pinned to core {max(os.sched_getaffinity(0))} (os.sched_setaffinity)" if plan.busy == "pinned" \
        else "not pinned"
    return f"`{Path(plan.python).name} -c '{BUSY_CODE}'` at normal priority, {where}, for both gates"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--requests", type=int, default=30, help="requests a side (request pairs)")
    p.add_argument("--slowdown", type=float, default=0.10, help="injected decode delay, share of base TPOT")
    p.add_argument("--busy", choices=("pinned", "unpinned", "none"), default="pinned")
    p.add_argument("--pool-pairs", type=int, default=0,
                   help="also run A/A, +5%% and +10%% pools of this many pairs for the power table (0: skip)")
    args = p.parse_args(argv)
    plan = EvidencePlan(out=args.out, requests=args.requests, slowdown=args.slowdown, busy=args.busy)
    plan.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    loop = start_busy(plan)
    try:
        aa = run_gate(plan, "aa", engine_cmd(plan), expected_exit=0)
        tpot = base_tpot_ms(plan, "aa")
        delay_us = round(plan.slowdown * tpot * 1000)
        slow = run_gate(plan, f"slow{round(plan.slowdown * 100)}", engine_cmd(plan, delay_us), expected_exit=1)
        pools = [run_gate(plan, f"pool-{round(s * 100)}", engine_cmd(plan, round(s * tpot * 1000)),
                          expected_exit=0 if s == 0 else 1, requests=args.pool_pairs)
                 for s in POOL_SLOWDOWNS] if args.pool_pairs else []
    finally:
        if loop is not None:
            loop.terminate()
            loop.wait(10)
    load_after = os.getloadavg()
    evidence = {
        "plan": {**asdict(plan), "out": str(plan.out), "scenario": str(plan.scenario.relative_to(REPO))},
        "busy_core": busy_method(plan),
        "machine": {"cpus": os.cpu_count(), "usable": sorted(os.sched_getaffinity(0)), "cpu": platform.processor(),
                    "load_before": load_before, "load_after": load_after},
        "base_tpot_ms": tpot,
        "delay_us": delay_us,
        "gates": [asdict(g) for g in (aa, slow)],
    }
    if pools:
        evidence["pools"] = [asdict(g) for g in pools]
        power = power_table(plan, pools)
        (plan.out / "power.json").write_text(json.dumps(power, indent=2) + "\n", encoding="utf-8")
        (plan.out / "power.md").write_text(power_md(power, evidence), encoding="utf-8")
    (plan.out / "evidence.json").write_text(json.dumps(evidence, indent=2) + "\n", encoding="utf-8")
    (plan.out / "commands.md").write_text(commands_md(plan, evidence, (aa, slow)), encoding="utf-8")
    print((plan.out / "commands.md").read_text(), end="")
    return 0 if all(g.exit_code == g.expected_exit for g in (aa, slow)) else 1


def commands_md(plan: EvidencePlan, evidence: dict[str, Any], gates: tuple[GateRun, ...]) -> str:
    lines = [
        "# CPU evidence: paired gate on the reference engine, one core busy",
        "",
        f"`python bench/evidence/cpu_paired_gate.py --out {plan.out} --requests {plan.requests} "
        f"--slowdown {plan.slowdown} --busy {plan.busy}`",
        "",
        f"- busy core: {evidence['busy_core']}",
        f"- machine: {evidence['machine']['cpus']} CPUs; load average (1/5/15 min) before "
        f"{_load(evidence['machine']['load_before'])}, after {_load(evidence['machine']['load_after'])} "
        "(other work on this shared VM included)",
        f"- scenario `{evidence['plan']['scenario']}`; base TPOT (A/A base median) {evidence['base_tpot_ms']:.2f} ms; "
        f"injected delay {evidence['delay_us']} us per decode step = {plan.slowdown:.0%}",
        "- kept per gate: gate.md, verdict.json, runs/ (result.json, server.log, manifest.json); the servers' "
        "records/ are deleted after each gate (result.json holds what was reduced from them)",
        "",
        "| gate | exit (expected) | wall | design | metric | change [95% CI] | CI width | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in gates:
        for i, row in enumerate(g.rows):
            est = row["estimate"]
            width = f"{est['ci_high'] - est['ci_low']:.1%}" if est else "-"
            head = (f"{g.name} | {g.exit_code} ({g.expected_exit}) | {g.wall_s:.0f} s | {g.design}" if i == 0
                    else " | | | ")
            lines.append(f"| {head} | {row['metric']} | {row['change']} | {width} | {row['verdict']} |")
    lines += ["", "Commands (run from the repository root):", ""]
    lines += [f"- `{g.name}`: `{shlex.join(g.argv)}`" for g in gates]
    return "\n".join(lines) + "\n"


def power_table(plan: EvidencePlan, pools: list[GateRun]) -> list[dict[str, Any]]:
    """The TPOT verdict on every window of n consecutive pairs of each pool, counted per verdict."""
    from harness.gate.config import load_config
    from harness.gate.load import load_side
    from harness.gate.paired_stats import matched_pairs, paired_ratio
    from harness.gate.verdicts import continuous_verdict

    config = load_config()
    rule = config.rule("tpot_ms")
    rows = []
    for pool, slowdown in zip(pools, POOL_SLOWDOWNS, strict=True):
        (base,) = load_side(plan.out / pool.name / "runs" / "base", ("tpot_ms",)).runs.values()
        (head,) = load_side(plan.out / pool.name / "runs" / "head", ("tpot_ms",)).runs.values()
        whole = matched_pairs(base[0].paired_values("tpot_ms"), head[0].paired_values("tpot_ms"))
        for n in WINDOWS:
            counts = {"regression": 0, "no_change": 0, "inconclusive": 0, "improvement": 0}
            widths = []
            for start in range(0, whole.base.size - n + 1, 2):
                window = type(whole)(whole.base[start:start + n], whole.head[start:start + n])
                est = paired_ratio([window], resamples=config.bootstrap_resamples, confidence=config.confidence,
                                   seed=config.seed + start)
                counts[continuous_verdict(est, rule, config)[0]] += 1
                widths.append(est.ci_width)
            rows.append({"slowdown": slowdown, "pool": pool.name, "pairs_in_pool": int(whole.base.size), "n": n,
                         "windows": sum(counts.values()), **counts,
                         "median_ci_width": statistics.median(widths) if widths else None})
    return rows


def power_md(rows: list[dict[str, Any]], evidence: dict[str, Any]) -> str:
    from harness.gate.calibration import wilson

    lines = ["# CPU paired power table (reference engine, one core busy)", "",
             f"Busy core: {evidence['busy_core']}. Base TPOT {evidence['base_tpot_ms']:.2f} ms. Each pool is one "
             "paired gate (one server pair); every window of n consecutive pairs starting at an even pair is "
             "one simulated gate decision on TPOT (default thresholds.toml: 1%, interval limit 8%). Windows "
             "overlap, so they are not independent trials: the Wilson intervals are optimistic.", "",
             "| slowdown | n pairs | windows | regression [95% CI] | no_change | inconclusive | median CI width |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = wilson(r["regression"], r["windows"])
        share = r["regression"] / r["windows"] if r["windows"] else 0.0
        width = f"{r['median_ci_width']:.1%}" if r["median_ci_width"] is not None else "-"
        label = "A/A" if r["slowdown"] == 0 else f"+{r['slowdown']:.0%}"
        lines.append(f"| {label} | {r['n']} | {r['windows']} | {share:.0%} [{low:.0%}, {high:.0%}] | "
                     f"{r['no_change']} | {r['inconclusive']} | {width} |")
    return "\n".join(lines) + "\n"


def _load(values: tuple[float, float, float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    sys.exit(main())
