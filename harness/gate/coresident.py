"""Paired co-resident A/B: base and head servers started together, requests alternating ABBA between them.

Each server-start pair launches both servers at once (one harness pipeline thread per side, each on
its own port, same scenario flags), warms both, then sends request pairs in ABBA order, never two at
a time (harness.gate.pair_turns), so a host regime hits both sides alike. Results land where the
alternating design puts them (OUT/runs/{base,head}/round-NN/<scenario>/result.json, one round per
server-start pair), each an ordinary result.json plus `pairing` and samples[].pair. Between batches
the gate looks at the pairs (harness.gate.sequential): decided, or extend the same servers, then
start a new server pair, while the budget lasts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.gate.config import GateConfig
from harness.gate.errors import GateInputError
from harness.gate.interleave import machine_lock
from harness.gate.pair_turns import SIDES, PairTurns
from harness.gate.paired_stats import PairedSeries, matched_pairs, paired_ratio
from harness.gate.sequential import Look, LookPlan, MetricLook, Position, Step, needed_samples, next_step
from harness.gate.verdicts import continuous_verdict
from harness.instrument.reader import load_records
from harness.measure.step_times import per_request, with_step_times
from harness.measure.warmup import WarmupPolicy
from harness.scenarios.catalog import Scenario, ScenarioError, load_scenario
from harness.scenarios.hardware import HostHardware, detect_host
from harness.serve.affinity import Pinning
from harness.store.manifest import Manifest
from harness.store.result import RECORDS_DIR


@dataclass(frozen=True)
class PairedPlan:
    """What to run, how many pairs, and how long the gate may keep sampling."""

    scenarios: tuple[str, ...]
    base_cmd: tuple[str, ...]
    head_cmd: tuple[str, ...]
    rounds: int     # server-start pairs before the first look
    requests: int   # request pairs per server-start pair (the first batch)
    warmups: WarmupPolicy | None
    target: str
    out: Path       # OUT/runs: base/round-NN and head/round-NN
    order: str = "abba"
    pinning: Pinning = field(default_factory=Pinning)
    lock_wait_s: float = 900.0
    budget_s: float | None = None  # None: one look, no extension
    looks: LookPlan = field(default_factory=LookPlan)
    extra_server_args: tuple[str, ...] = ()  # e.g. the --mem-fraction-static share (harness.gate.memfit)


@dataclass(frozen=True)
class StartPair:
    """The samples (result.json form) of one server-start pair so far, per side."""

    index: int
    base: tuple[dict[str, Any], ...]
    head: tuple[dict[str, Any], ...]


def run_paired(plan: PairedPlan, config: GateConfig) -> tuple[Path, Path, tuple[Look, ...]]:
    """Run every scenario co-resident; return the base and head directories and the looks taken."""
    try:
        scenarios = [load_scenario(name) for name in plan.scenarios]
    except ScenarioError as exc:
        raise GateInputError(str(exc)) from exc
    started = time.monotonic()
    looks: list[Look] = []
    with machine_lock(plan.out, plan.lock_wait_s):
        host = detect_host()
        sides = _Sides(plan)
        for position, scenario in enumerate(scenarios):
            deadline = None
            if plan.budget_s is not None:  # what is left is shared evenly by the scenarios still to run
                left = plan.budget_s - (time.monotonic() - started)
                deadline = time.monotonic() + left / (len(scenarios) - position)
            looks += _ScenarioRun(plan, config, scenario, host, sides, started, deadline).run()
    return plan.out / "base", plan.out / "head", tuple(looks)


@contextlib.contextmanager
def open_start_pair(plan: PairedPlan, config: GateConfig) -> Iterator[_LiveStartPair]:
    """One server pair of the plan's single scenario, warmed and past its first batch, for a caller that
    drives further batches itself (e.g. bench/evidence/calibrate_paired.py); both results written on exit."""
    (name,) = plan.scenarios
    try:
        scenario = load_scenario(name)
    except ScenarioError as exc:
        raise GateInputError(str(exc)) from exc
    run = _ScenarioRun(plan, config, scenario, detect_host(), _Sides(plan), time.monotonic(), None)
    live = _LiveStartPair(run, 0, plan.requests).__enter__()
    try:
        yield live
    except BaseException:
        live.__exit__(None, None, None)
        raise
    live.close()


class _Sides:
    """Each side-round's run directory and manifest (so `harness show` reads them like `harness run`'s)."""

    def __init__(self, plan: PairedPlan) -> None:
        self.plan = plan
        self._manifests: dict[tuple[str, int], Manifest] = {}

    def run_dir(self, side: str, start_pair: int) -> Path:
        return self.plan.out / side / f"round-{start_pair:02d}"

    def running(self, side: str, start_pair: int, scenario: str) -> None:
        key = (side, start_pair)
        if key not in self._manifests:
            cmd = self.plan.base_cmd if side == "base" else self.plan.head_cmd
            argv = ["harness", "gate", "--design", "paired", f"--{side}-cmd", " ".join(cmd), *self.plan.scenarios]
            self._manifests[key] = Manifest.start(self.run_dir(side, start_pair), self.plan.target, argv, [])
        self._manifests[key].mark_running(scenario)

    def done(self, side: str, start_pair: int, scenario: str, status: str) -> None:
        self._manifests[(side, start_pair)].mark_done(scenario, status)


class _ScenarioRun:
    """One scenario's sequence: server-start pairs, batches of request pairs, looks."""

    def __init__(self, plan: PairedPlan, config: GateConfig, scenario: Scenario, host: HostHardware,
                 sides: _Sides, started: float, deadline: float | None) -> None:
        self.plan, self.scenario, self.host, self.sides = plan, scenario, host, sides
        self.config = plan.looks.config_at_each_look(config)
        self.started, self.deadline = started, deadline
        self.finished: list[StartPair] = []
        self.looks: list[Look] = []

    def run(self) -> list[Look]:
        index, planned = 0, self.plan.requests
        while True:
            with _LiveStartPair(self, index, planned) as live:
                if index < self.plan.rounds - 1:  # the initial server pairs before the first look
                    self.finished.append(live.close())
                    index += 1
                    continue
                planned = self._look_and_extend(live)
                self.finished.append(live.close())
            if not planned:
                return self.looks
            index += 1

    def _look_and_extend(self, live: _LiveStartPair) -> int:
        """Look, extend the live server pair while that is the next step; return pairs for a fresh pair (0: stop)."""
        while True:
            look = self._look(live)
            step = self._next_step(look, live)
            self.looks.append(replace(look, action=step.action))
            if not step.pairs or step.fresh:
                return step.pairs
            live.extend(step.pairs)

    def _look(self, live: _LiveStartPair) -> Look:
        starts = [*self.finished, live.snapshot()]
        metrics = []
        for rule in self.config.metrics:
            series = [s for s in (_series(start, rule.name) for start in starts) if s.base.size]
            pairs = sum(s.base.size for s in series)
            if not pairs:
                continue  # not in the live samples: decided from the written results only
            try:
                est = paired_ratio(series, start_sd=rule.start_sd_for(self.plan.target),
                                   resamples=self.config.bootstrap_resamples,
                                   confidence=self.config.confidence, seed=self.config.seed)
            except ValueError as exc:
                metrics.append(MetricLook(rule.name, "inconclusive", pairs, None, None, None, str(exc), None))
                continue
            verdict, reason = continuous_verdict(est, rule, self.config)
            need = needed_samples(est, rule, pairs) if verdict == "inconclusive" else None
            metrics.append(MetricLook(rule.name, verdict, pairs, est.ratio, est.ci_low, est.ci_high, reason, need,
                                      start_bound=est.start_bound and verdict == "inconclusive"))
        return Look(scenario=self.scenario.name, number=len(self.looks) + 1, start_pairs=len(starts),
                    pairs=max((m.pairs for m in metrics), default=0), confidence=self.config.confidence,
                    elapsed_s=time.monotonic() - self.started, seconds_per_pair=live.pair_s,
                    metrics=tuple(metrics), action="")

    def _next_step(self, look: Look, live: _LiveStartPair) -> Step:
        left = None if self.deadline is None else self.deadline - time.monotonic()
        return next_step(look, Position(
            live_pairs=live.turns.planned, requests=self.plan.requests, min_samples=self.config.min_samples,
            seconds_per_pair=live.pair_s, setup_s=live.setup_s, budget_left_s=left,
            max_looks=self.plan.looks.max_looks, stopped=tuple(sorted(live.turns.left()))))


def _series(start: StartPair, metric: str) -> PairedSeries:
    return matched_pairs(_column(start.base, metric), _column(start.head, metric))


def _column(samples: tuple[dict[str, Any], ...], metric: str) -> dict[int, float]:
    values = {}
    for sample in samples:
        value = sample.get(metric)
        if sample.get("ok") and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            values[int(sample["index"])] = float(value)
    return values


class _LiveStartPair:
    """Two pipeline threads (base, head) on their own servers, taking turns through one PairTurns.

    Entering launches both and waits for the first batch; leaving (close, or an exception) finishes the
    pairs, so both sides stop their servers and write their results.
    """

    def __init__(self, owner: _ScenarioRun, index: int, planned: int) -> None:
        self.owner = owner
        self.index = index
        self.turns = PairTurns(planned=planned, order=owner.plan.order, start_pair=index)
        self.threads: list[threading.Thread] = []
        self.statuses: dict[str, str] = {}
        self.errors: list[str] = []
        self.setup_s = 0.0  # launch to the first measured pair: startup and warm-up
        self.pair_s = 0.0   # seconds per request pair in the last batch

    def __enter__(self) -> _LiveStartPair:
        ports = _two_free_ports()
        launched = time.monotonic()
        for side, port in zip(SIDES, ports, strict=True):
            self.owner.sides.running(side, self.index, self.owner.scenario.name)
            thread = threading.Thread(target=self._run_side, args=(side, port), name=f"gate-{side}", daemon=True)
            self.threads.append(thread)
            thread.start()
        try:
            self.turns.wait_batch(self.owner.deadline)
        except BaseException:  # e.g. Ctrl-C while waiting: both sides still stop their servers
            self.__exit__(None, None, None)
            raise
        total = time.monotonic() - launched
        self.pair_s = _pair_seconds(self.turns, self.turns.planned) or total / max(self.turns.planned, 1)
        self.setup_s = max(0.0, total - self.pair_s * self.turns.planned)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.turns.finish()
        for thread in self.threads:
            thread.join()

    def extend(self, pairs: int) -> None:
        self.turns.extend(pairs)
        self.turns.wait_batch(self.owner.deadline)
        self.pair_s = _pair_seconds(self.turns, pairs) or self.pair_s

    def snapshot(self) -> StartPair:
        return StartPair(self.index, self._samples("base"), self._samples("head"))

    def _samples(self, side: str) -> tuple[dict[str, Any], ...]:
        """The side's measured requests so far as result.json will hold them, decode step times included
        (joined by rid from the records its server has written; both servers are idle during a look)."""
        records = load_records(self.owner.sides.run_dir(side, self.index) / self.owner.scenario.name / RECORDS_DIR)
        times = per_request(r.to_json() for r in records.records)
        return tuple(with_step_times([s.to_json() for s in self.turns.samples(side)], times))

    def close(self) -> StartPair:
        """Finish the pairs and wait for both results; the pairs measured."""
        snapshot = self.snapshot()
        self.__exit__(None, None, None)
        for side in SIDES:
            self.owner.sides.done(side, self.index, self.owner.scenario.name, self.statuses.get(side, "failed"))
        if self.errors:
            raise GateInputError("; ".join(self.errors))
        return snapshot

    def _run_side(self, side: str, port: int) -> None:
        from harness.config import RunConfig
        from harness.run import NoProgress, run_scenario_on

        plan = self.owner.plan
        view = self.turns.side(side)
        run_dir = self.owner.sides.run_dir(side, self.index)
        config = RunConfig(out_dir=run_dir, target=plan.target,
                           requests=self.turns.planned, warmups=plan.warmups,
                           launcher=plan.base_cmd if side == "base" else plan.head_cmd, port=port,
                           pinning=plan.pinning.share(SIDES.index(side), len(SIDES)),
                           lock_held=True,
                           extra_server_args=plan.extra_server_args)
        try:
            result, _ = run_scenario_on(self.owner.scenario, config, run_dir, self.owner.host, NoProgress(),
                                        turns=view)
            self.statuses[side] = str(result["status"])
        except Exception as exc:  # the harness itself failed, not the server it measured
            self.errors.append(f"{run_dir}: harness run failed for the {side} side, start pair {self.index}: "
                               f"{type(exc).__name__}: {exc}")
        finally:
            view.leave()


def _pair_seconds(turns: PairTurns, pairs: int) -> float | None:
    """Seconds per request pair over the last `pairs` pairs, from the requests' send times."""
    sends = sorted(s.send_ns for side in SIDES for s in turns.samples(side)[-pairs:] if s.send_ns)
    if len(sends) < 4:
        return None
    return (sends[-1] - sends[0]) / 1e9 / (len(sends) / 2 - 0.5)


def _two_free_ports() -> tuple[int, int]:
    """Two distinct ports free right now (both bound at once, so the kernel cannot hand out one twice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in SIDES]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return int(socks[0].getsockname()[1]), int(socks[1].getsockname()[1])
