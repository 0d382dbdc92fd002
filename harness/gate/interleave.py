"""Produce base and head results on one machine in interleaved rounds (A B B A ... or A B A B ...) so drift cancels."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.gate.errors import GateInputError
from harness.measure.warmup import WarmupPolicy
from harness.serve.affinity import Pinning

LOCK_POLL_S = 5.0


@dataclass(frozen=True)
class InterleavePlan:
    """What to run: scenarios, the two server command prefixes, rounds and where results go."""

    scenarios: tuple[str, ...]
    base_cmd: tuple[str, ...]
    head_cmd: tuple[str, ...]
    rounds: int
    requests: int | None  # None: the scenario's own [workload] requests
    warmups: WarmupPolicy | None
    target: str
    out: Path
    order: str = "abba"  # "abba": A B, B A, A B ...; "abab": A B, A B ...
    lock_wait_s: float = 900.0  # how long the gate waits for another harness run to release the machine
    pinning: Pinning = field(default_factory=Pinning)
    first_round: int = 0  # the sequential rule runs more rounds later: rounds first_round .. rounds - 1


@dataclass(frozen=True)
class SideRound:
    """One server start per scenario for one side in one round, written to run_dir."""

    side: str  # "base" | "head"
    round_index: int
    server_cmd: tuple[str, ...]
    run_dir: Path


RunSide = Callable[[InterleavePlan, SideRound], None]


def run_interleaved(plan: InterleavePlan, run_side: RunSide | None = None) -> tuple[Path, Path]:
    """Run every round base then head; return the base and head directories of round run dirs.

    Real rounds (harness_run_side) hold the machine's harness lock from the first round to the last,
    so no other harness run can slip in between a base and a head round.
    """
    run_side = run_side or harness_run_side
    held = machine_lock(plan.out, plan.lock_wait_s) if run_side is harness_run_side else contextlib.nullcontext()
    with held:
        run_rounds(plan, run_side)
    return plan.out / "base", plan.out / "head"


def run_rounds(plan: InterleavePlan, run_side: RunSide) -> None:
    """Rounds first_round .. rounds - 1 (the caller holds the machine lock)."""
    for i in range(plan.first_round, plan.rounds):
        for side, cmd in round_order(plan, i):
            side_round = SideRound(side, i, cmd, plan.out / side / f"round-{i:02d}")
            try:
                run_side(plan, side_round)
            except GateInputError:
                raise
            except Exception as exc:  # the harness itself failed, not the server it measured
                raise GateInputError(f"{side_round.run_dir}: harness run failed for the {side} side, round {i}: "
                                     f"{type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def machine_lock(out: Path, wait_s: float) -> Iterator[None]:
    """The harness lock of this machine's GPUs (or CPU host), waiting up to wait_s for it."""
    from harness.scenarios.hardware import detect_host
    from harness.serve.lock import GpuLock, LockHeldError

    lock = GpuLock.for_machine(len(detect_host().gpus), out)
    deadline = time.monotonic() + wait_s
    with contextlib.ExitStack() as held:
        while True:
            try:
                held.enter_context(lock)
                break
            except LockHeldError as exc:
                if time.monotonic() >= deadline:
                    raise GateInputError(f"{out}: {exc} (waited {wait_s:.0f} s)") from exc
                time.sleep(LOCK_POLL_S)
        yield


def round_order(plan: InterleavePlan, index: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Which side runs first in round `index`: always base (abab), or alternating (abba).

    abab cancels drift only between pairs; abba also cancels a linear drift inside each pair of rounds,
    which abab turns into a bias against the head (it always runs second).
    """
    ab = (("base", plan.base_cmd), ("head", plan.head_cmd))
    return ab[::-1] if plan.order == "abba" and index % 2 else ab


def harness_run_side(plan: InterleavePlan, side_round: SideRound) -> None:
    """Run the scenarios through the harness core's pipeline, the side's command as the launcher."""
    from rich.console import Console

    from harness.config import RunConfig
    from harness.run import run_all
    from harness.scenarios.catalog import ScenarioError, load_scenario

    try:
        scenarios = [load_scenario(name) for name in plan.scenarios]
    except ScenarioError as exc:
        raise GateInputError(str(exc)) from exc
    # run_interleaved holds the machine lock for all rounds (machine_lock).
    config = RunConfig(out_dir=side_round.run_dir, target=plan.target,
                       requests=plan.requests, warmups=plan.warmups, launcher=side_round.server_cmd,
                       pinning=plan.pinning, lock_held=True)
    argv = ["harness", "gate", f"--{side_round.side}-cmd", " ".join(side_round.server_cmd), *plan.scenarios]
    run_all(config, scenarios, argv, Console(stderr=True, quiet=True))
