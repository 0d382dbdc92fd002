"""`harness nightly`: the commit under test measured side by side with a pinned control build (paired gate).

Per scenario, `harness gate --design paired` runs with base = the control build's server command and
head = the commit's, into RUN_DIR/control/<scenario>/ (verdict.json, gate.md, runs/{base,head}/...).
The head's first server start is then copied to RUN_DIR/<scenario>/result.json with target.commit set
(the absolute series that asv and `harness history` read, as after `harness run`), and control.json
says what was compared at which commit (docs/tracking.md).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import entry_point
from harness.gate import cli as gate_cli
from harness.gate.compare import EXIT_INCONCLUSIVE, EXIT_INFRA, EXIT_PASS, EXIT_REGRESSION
from harness.gate.control_points import CONTROL_DIR, CONTROL_FILE, SCHEMA_VERSION, VERDICT_FILE
from harness.gate.errors import GateInputError
from harness.measure.warmup import WarmupPolicy
from harness.options import add_requests, add_target, add_warmups, warmups_text
from harness.scenarios.catalog import load_scenario
from harness.store.atomic import ResultWriteError, atomic_write_json
from harness.store.result import RESULT_FILE, ResultError, read_object
from harness.store.results import write_result

# Gate exits that mean "compared": the verdict is data for the nightly, not a failure of it.
COMPARED = frozenset({EXIT_PASS, EXIT_REGRESSION, EXIT_INCONCLUSIVE})
HEAD_FIRST_START = Path("runs") / "head" / "round-00"
BASE_FIRST_START = Path("runs") / "base" / "round-00"


@dataclass(frozen=True)
class Night:
    """What one night compares: the commit under test (head) against the control build (base)."""

    commit: str
    commit_time: str | None
    control_cmd: str
    head_cmd: str


@dataclass(frozen=True)
class NightlyConfig:
    """`harness nightly` options, from the command line to the gate invocations."""

    scenarios: tuple[str, ...]  # catalog names or scenario TOML files
    night: Night
    target: str
    out: Path  # RUN_DIR
    requests: int | None  # request pairs per server pair; None: the gate's default
    warmups: WarmupPolicy | None
    rounds: int | None  # server-start pairs; None: the gate's default (one)
    plots: bool


@dataclass(frozen=True)
class Recorded:
    """What one scenario's comparison left in RUN_DIR."""

    scenario: str
    gate_exit_code: int
    head_status: str | None  # the head result's status; None when the gate left no head result
    verdict: bool  # the gate wrote verdict.json


@entry_point("harness nightly")
def main(argv: list[str]) -> int:
    """0: every scenario compared and its head result stored; 1: a head run failed; 2: bad input or no comparison."""
    if argv and argv[0] == "nightly":
        argv = argv[1:]
    args = _parser().parse_args(argv)
    night = Night(commit=args.commit, commit_time=args.commit_time, control_cmd=args.control_cmd,
                  head_cmd=args.head_cmd)
    config = NightlyConfig(scenarios=tuple(args.scenarios), night=night, target=args.target, out=args.out,
                           requests=args.requests, warmups=args.warmups, rounds=args.rounds, plots=not args.no_plots)
    names = _scenario_names(config)
    recorded = []
    for argument, name in zip(config.scenarios, names, strict=True):
        gate_out = config.out / CONTROL_DIR / name
        code = gate_cli.main(gate_argv(config, argument, gate_out))
        try:
            recorded.append(record_comparison(config.out, name, gate_out, night, code))
        except (ResultError, ResultWriteError) as exc:
            print(f"harness nightly: {name}: {exc}", file=sys.stderr)
            recorded.append(Recorded(name, code, None, False))
    for r in recorded:
        print(f"harness nightly: {r.scenario}: gate exit {r.gate_exit_code}, head {r.head_status or 'no result'}, "
              f"{'verdict.json' if r.verdict else 'no verdict'}", file=sys.stderr)
    if any(r.gate_exit_code not in COMPARED or r.head_status is None for r in recorded):
        return EXIT_INFRA
    return 1 if any(r.head_status == "failed" for r in recorded) else 0


def gate_argv(config: NightlyConfig, scenario: str, gate_out: Path) -> list[str]:
    """The `harness gate` arguments for one scenario: control as base, the commit as head, paired."""
    argv = ["--design", "paired", "--base-cmd", config.night.control_cmd, "--head-cmd", config.night.head_cmd,
            "--target", config.target, "--out", str(gate_out)]
    if config.requests is not None:
        argv += ["--requests", str(config.requests)]
    if config.warmups is not None:
        argv += ["--warmups", warmups_text(config.warmups)]
    if config.rounds is not None:
        argv += ["--rounds", str(config.rounds)]
    if not config.plots:
        argv.append("--no-plots")
    return [*argv, scenario]


def record_comparison(run_dir: Path, scenario: str, gate_out: Path, night: Night, gate_exit_code: int) -> Recorded:
    """Copy the head's first server start to RUN_DIR/<scenario>/result.json and write control.json."""
    head = _read(gate_out / HEAD_FIRST_START / scenario / RESULT_FILE)
    base = _read(gate_out / BASE_FIRST_START / scenario / RESULT_FILE)
    head_result = None
    if head is not None:
        target = dict(head.get("target") or {})
        # A server reports its version, not the commit it was built from: the nightly knows that one.
        target["commit"] = night.commit
        if night.commit_time is not None:
            target["commit_time"] = night.commit_time
        write_result(run_dir / scenario, {**head, "target": target})
        head_result = f"{scenario}/{RESULT_FILE}"
    verdict = (gate_out / VERDICT_FILE).is_file()
    atomic_write_json(gate_out / CONTROL_FILE, {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario,
        "commit": night.commit,
        "commit_time": night.commit_time,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "control": {"cmd": night.control_cmd, "version": _version(base)},
        "head": {"cmd": night.head_cmd, "version": _version(head)},
        "gate_exit_code": gate_exit_code,
        "verdict": VERDICT_FILE if verdict else None,
        "head_result": head_result,  # relative to RUN_DIR
    })
    return Recorded(scenario, gate_exit_code, None if head is None else str(head.get("status")), verdict)


def _read(path: Path) -> dict[str, Any] | None:
    # The same reading as every result.json (older versions upgraded); the copy is written at the current one.
    return read_object(path) if path.is_file() else None


def _version(result: dict[str, Any] | None) -> str | None:
    return ((result or {}).get("target") or {}).get("version")


def _scenario_names(config: NightlyConfig) -> list[str]:
    """Each scenario's name (its directories' name); refuses a RUN_DIR that already holds one of them."""
    if not config.night.commit.strip():
        raise GateInputError("--commit: empty")
    for flag, cmd in (("--control-cmd", config.night.control_cmd), ("--head-cmd", config.night.head_cmd)):
        try:
            words = shlex.split(cmd)
        except ValueError as exc:
            raise GateInputError(f"{flag}: {exc}") from None
        if not words:
            raise GateInputError(f"{flag}: empty")
    names = [load_scenario(scenario).name for scenario in config.scenarios]  # a ScenarioError names the file
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GateInputError(f"scenario {', '.join(duplicates)} given more than once")
    for name in names:
        # No lost data: an earlier night's results in the same RUN_DIR are never overwritten.
        for taken in (config.out / name / RESULT_FILE, config.out / CONTROL_DIR / name):
            if taken.exists():
                raise GateInputError(f"{taken}: already exists; give a fresh --out")
    return names


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness nightly", description=__doc__.splitlines()[0])
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="catalog names or scenario TOML files")
    p.add_argument("--control-cmd", required=True,
                   help="server command prefix of the control build, e.g. '/opt/sglang-0.5.17/bin/python -m "
                        "sglang.launch_server' (the gate's base side)")
    p.add_argument("--head-cmd", required=True, help="server command prefix of the commit under test (head side)")
    p.add_argument("--commit", required=True, help="the commit under test: target.commit of the stored results")
    p.add_argument("--commit-time", default=None, help="its commit time, ISO 8601 (orders `harness history`)")
    add_target(p, default="sglang")
    p.add_argument("--out", type=Path, required=True, help="the night's run directory (RUN_DIR)")
    add_requests(p, "request pairs per server pair (default: the gate's)")
    add_warmups(p, "warm-up requests per server start")
    p.add_argument("--rounds", type=_positive, default=None,
                   help="server-start pairs (default: the gate's, one); the absolute series takes the first")
    p.add_argument("--no-plots", action="store_true", help="skip the gate's PNG plots")
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value
