"""`harness gate`: compare base and head results (or produce them, paired or alternating) and report."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import entry_point
from harness.gate import plots
from harness.gate.compare import GateOutcome, compare_sides
from harness.gate.config import GateConfig, load_config
from harness.gate.errors import GateInputError
from harness.gate.load import Side, load_side
from harness.gate.report import markdown, regime_lines, verdict_json
from harness.gate.sampling import ALTERNATING_ROUNDS, PAIRED_ROUNDS, SamplingPlan, produce
from harness.gate.sequential import DEFAULT_MAX_LOOKS, LookPlan, Sampling
from harness.options import add_pin, add_requests, add_target, add_warmups
from harness.serve.affinity import AffinityError, parse_pinning
from harness.store.atomic import atomic_write_json, atomic_write_text

# Requests per server start (docs/gate.md, Calibration): on the H200 the reference engine's per-request
# TPOT varies by 0.2-0.7% and a 2% slowdown is caught from 60 requests per side; 150 keeps a margin
# for noisier servers (per-request noise of ~6% was seen before the overlapped decode loop).
DEFAULT_REQUESTS = 150


@dataclass(frozen=True)
class ReportOptions:
    """Where the report goes and how its artifacts are linked."""

    out: Path
    artifact_url: str | None  # prefix for links in the PR comment; None links relative paths
    plots: bool


@entry_point("harness gate")
def main(argv: list[str]) -> int:
    """Entry point for `harness gate ...`; 0 pass, 1 regression, 2 infrastructure failure, 3 inconclusive."""
    if argv and argv[0] == "gate":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    config = load_config(args.config)
    options = ReportOptions(out=args.out, artifact_url=args.artifact_url, plots=not args.no_plots)
    looks = _look_plan(args)
    if args.base_cmd or args.head_cmd:
        base_dir, head_dir, sampling = _produce(args, config, looks)
    else:
        if args.scenarios:
            raise GateInputError("scenario names are only taken with --base-cmd/--head-cmd")
        if not (args.base and args.head):
            raise GateInputError("give --base DIR and --head DIR (or --base-cmd/--head-cmd SCENARIO...)")
        if args.budget is not None:
            raise GateInputError("--budget: only with --base-cmd/--head-cmd (the gate samples more itself)")
        base_dir, head_dir = args.base, args.head
        sampling = Sampling(design="given", design_reason="paired results are compared pair by pair",
                            max_looks=1, budget_s=None, elapsed_s=0.0)
    metrics = tuple(r.name for r in config.metrics)
    base, head = load_side(base_dir, metrics), load_side(head_dir, metrics)
    # The verdicts use the same per-look error rates as the looks that chose when to stop.
    config = looks.config_at_each_look(config)
    outcome = compare_sides(base, head, config)
    print(write_report(outcome, config, base, head, options, sampling), end="")
    for problem in outcome.problems:
        print(f"harness gate: {problem}", file=sys.stderr)
    return outcome.exit_code


def write_report(outcome: GateOutcome, config: GateConfig, base: Side, head: Side, options: ReportOptions,
                 sampling: Sampling | None = None) -> str:
    """Write gate.md, verdict.json and the plots under options.out; return the Markdown."""
    artifacts: dict[str, str] = {}
    if options.plots:
        for scenario, path in _plot_distributions(outcome, config, base, head, options.out).items():
            artifacts[f"{scenario} distributions"] = _link(path, options)
    artifacts["verdict JSON"] = _link(options.out / "verdict.json", options)
    text = markdown(outcome, config, base=str(base.root), head=str(head.root), artifacts=artifacts,
                    regimes=regime_lines(base, head, tuple(r.name for r in config.metrics)), sampling=sampling)
    atomic_write_json(options.out / "verdict.json",
                      verdict_json(outcome, config, base=str(base.root), head=str(head.root), artifacts=artifacts,
                                   sampling=sampling))
    atomic_write_text(options.out / "gate.md", text)
    return text


def _plot_distributions(outcome: GateOutcome, config: GateConfig, base: Side, head: Side,
                        out: Path) -> dict[str, Path]:
    verdicts = {(r.scenario, r.metric): r.verdict for r in outcome.rows}
    paths = {}
    for scenario in sorted(base.runs):
        if (scenario, "status") in verdicts:  # skipped on both sides: nothing measured
            continue
        data = {}
        for rule in config.metrics:
            b = [r.values(rule.name) for r in base.runs[scenario]]
            h = [r.values(rule.name) for r in head.runs[scenario]]
            data[rule.name] = (_concat(b), _concat(h))
        if any(b.size or h.size for b, h in data.values()):
            metric_verdicts = {m: verdicts.get((scenario, m), "") for m in data}
            paths[scenario] = plots.distributions(out / f"{scenario}-distributions.png", scenario, data,
                                                  metric_verdicts)
    return paths


def _concat(groups: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(groups) if groups else np.empty(0)


def _link(path: Path, options: ReportOptions) -> str:
    relative = path.relative_to(options.out).as_posix()
    return f"{options.artifact_url.rstrip('/')}/{relative}" if options.artifact_url else relative


def _look_plan(args: argparse.Namespace) -> LookPlan:
    if args.budget is None:
        if args.max_looks is not None:
            raise GateInputError("--max-looks: only with --budget (without one the gate looks once)")
        return LookPlan()
    return LookPlan(max_looks=args.max_looks or DEFAULT_MAX_LOOKS)


def _produce(args: argparse.Namespace, config: GateConfig, looks: LookPlan) -> tuple[Path, Path, Sampling]:
    if not (args.base_cmd and args.head_cmd):
        raise GateInputError("--base-cmd and --head-cmd go together")
    if args.base or args.head:
        raise GateInputError("give either --base/--head directories or --base-cmd/--head-cmd, not both")
    if not args.scenarios:
        raise GateInputError("--base-cmd/--head-cmd need at least one SCENARIO")
    try:
        pinning = parse_pinning(args.pin)
        if args.design == "paired":
            pinning.share(1, 2)  # two co-resident servers split the server cores: say now if they cannot
    except AffinityError as exc:
        raise GateInputError(str(exc)) from exc
    try:
        base_cmd, head_cmd = tuple(shlex.split(args.base_cmd)), tuple(shlex.split(args.head_cmd))
    except ValueError as exc:
        raise GateInputError(f"--base-cmd/--head-cmd: cannot split: {exc}") from exc
    plan = SamplingPlan(
        scenarios=tuple(args.scenarios), base_cmd=base_cmd, head_cmd=head_cmd, design=args.design,
        rounds=args.rounds, requests=args.requests, warmups=args.warmups, target=args.target,
        out=args.out / "runs", order=args.order, pinning=pinning, budget_s=args.budget, looks=looks,
    )
    return produce(plan, config)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness gate", description=__doc__)
    p.add_argument("--base", type=Path, help="base run directory (or directory of round run directories)")
    p.add_argument("--head", type=Path, help="head run directory (or directory of round run directories)")
    p.add_argument("--base-cmd", help="server command prefix for the base side, e.g. 'python -m reference_impl.engine'")
    p.add_argument("--head-cmd", help="server command prefix for the head side")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="scenarios to run with --base-cmd/--head-cmd")
    p.add_argument("--design", choices=("paired", "alternating"), default="paired",
                   help="paired (default): base and head servers co-resident, requests alternating ABBA between "
                        "them (falls back to alternating when two servers do not fit in GPU memory); "
                        "alternating: one server at a time, rounds A B B A ...")
    p.add_argument("--rounds", type=_positive, default=None,
                   help=f"server starts per side before the first look (default: paired {PAIRED_ROUNDS}, "
                        f"alternating {ALTERNATING_ROUNDS})")
    p.add_argument("--budget", type=_seconds, default=None, metavar="SECONDS",
                   help="keep sampling (more pairs, then more server pairs or rounds) until every metric is "
                        "decided or this much time has passed; exit 3 when still undecided")
    p.add_argument("--max-looks", type=_positive, default=None,
                   help=f"with --budget: looks at most, each at 1/N of the error rates (default {DEFAULT_MAX_LOOKS})")
    p.add_argument("--order", choices=("abba", "abab"), default="abba",
                   help="abba (default): A B, B A, A B ... cancels linear drift; abab: base always first")
    add_requests(p, f"measured requests per server start and side: request pairs per server pair in the "
                    f"paired design (default {DEFAULT_REQUESTS})", default=DEFAULT_REQUESTS)
    add_warmups(p, "warm-up requests per server start; auto: until TPOT is steady (harness run --help)")
    add_pin(p, "cores for the servers and the client, e.g. 2-5/1 (auto: the client on the last "
               "usable core, the servers on the rest; default none: no gain measured on an H200)")
    add_target(p)
    p.add_argument("--config", type=Path, default=None, help="thresholds TOML (default: the packaged one)")
    p.add_argument("--out", type=Path, default=Path("gate-report"), help="report directory (default gate-report)")
    p.add_argument("--artifact-url", default=None, help="URL prefix for artifact links in the Markdown")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value
