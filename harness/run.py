"""The run pipeline: for each scenario, launch, measure at BS=1, stop, inspect, and store one result."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn, Protocol

import psutil
import requests
from rich.console import Console
from rich.markup import escape

from harness.config import RunConfig, server_argv
from harness.errors import entry_point
from harness.measure.client import RequestSample, StreamingClient, prompt_ids
from harness.measure.metrics import scrape, server_side
from harness.measure.regimes import run_regimes
from harness.measure.step_times import split_records, with_step_times
from harness.measure.telemetry import DEFAULT_INTERVAL_S, TelemetrySampler
from harness.measure.turns import MEASURE, SCRAPE, WARMUP, FreeTurns, Turns
from harness.measure.warmup import (
    AutoWarmup,
    WarmupOutcome,
    WarmupPolicy,
    first_measured_seed,
    warm_up,
)
from harness.options import add_pin, add_requests, add_target, add_warmups
from harness.provenance import harness_identity, reference_target
from harness.scenarios.catalog import Scenario, ScenarioError, Workload, load_scenario
from harness.scenarios.hardware import HostHardware, detect_host, unmet_reason
from harness.serve.affinity import AffinityError, parse_pinning, pinned
from harness.serve.cache_dirs import cache_env
from harness.serve.gpu_leak import check_leaks
from harness.serve.lock import GpuLock, LockHeldError
from harness.serve.server import (
    LaunchSpec,
    PortInUseError,
    Server,
    Shutdown,
    Startup,
    check_port_free,
    free_port,
)
from harness.serve.signals import InterruptGuard, mark_interrupted
from harness.serve.signals import exit_code as interrupt_exit_code
from harness.store.atomic import ResultWriteError
from harness.store.manifest import MANIFEST_FILE, Manifest, now_iso
from harness.store.report import RichProgress, explain, summary_table
from harness.store.result import LOG_FILE, OOM_AT_CAPTURE, RECORDS_DIR, SCHEMA_VERSION
from harness.store.results import summarize, write_result
from harness.store.resume import ResumeError, plan_resume, resumed_argv
from reference_impl.fixset import FIX_NAMES

# A server shared by several scenarios writes its records here (in its first user's dir); each user's
# records/ holds its own slice.
SERVER_RECORDS_DIR = "server-records"
# sysexits.h: EX_TEMPFAIL (another run holds the GPUs; try later) and EX_IOERR (a result could not be written).
EXIT_LOCKED = LockHeldError.exit_code
EXIT_WRITE_FAILED = 74
AUTO = AutoWarmup()  # what `--warmups auto` means


class Progress(Protocol):
    """What the pipeline tells its caller while it works (a rich progress bar, or nothing)."""

    def phase(self, text: str, total: int | None = None) -> None: ...

    def advance(self) -> None: ...


class NoProgress:
    def phase(self, text: str, total: int | None = None) -> None:
        pass

    def advance(self) -> None:
        pass


@dataclass(frozen=True)
class Measurement:
    """Measured samples (warm-ups discarded), the server-side cross-check, and the first failure."""

    samples: tuple[RequestSample, ...]
    server_metrics: dict[str, Any]
    failed: RequestSample | None
    failed_in_warmup: bool
    warmup_s: float = 0.0
    measure_s: float = 0.0
    warmup: WarmupOutcome | None = None


def effective_workload(scenario: Scenario, config: RunConfig) -> Workload:
    """The scenario's workload with --requests / --warmups applied."""
    workload = scenario.workload
    return Workload(
        input_len=workload.input_len,
        output_len=workload.output_len,
        warmups=config.warmups if isinstance(config.warmups, int) else workload.warmups,
        requests=workload.requests if config.requests is None else config.requests,
    )


def warmup_policy(workload: Workload, config: RunConfig) -> WarmupPolicy:
    """`--warmups auto` (AutoWarmup), else the effective workload's count."""
    return config.warmups if isinstance(config.warmups, AutoWarmup) else workload.warmups


@dataclass(frozen=True)
class KeptServer:
    """A healthy server left running for the next scenario with the same launch flags."""

    server: Server
    spec: LaunchSpec
    key: tuple[object, ...]
    owner: str  # the scenario that started it
    startup: Startup
    target: dict[str, Any]
    server_json: dict[str, Any]
    records_dir: Path  # where the server writes its records (every user gets its own slice)
    startup_records: dict[str, int]  # record file sizes when it became healthy


def launch_key(scenario: Scenario, config: RunConfig) -> tuple[object, ...]:
    """What must match for two scenarios to share one server: command line (port aside), env, target."""
    return (config.target, tuple(server_argv(scenario, config, 0)), tuple(sorted(scenario.env)))


def run_scenario(
    scenario: Scenario, config: RunConfig, run_dir: Path, host: HostHardware, progress: Progress
) -> dict[str, Any]:
    """Run one scenario end to end (its own server) and write RUN_DIR/<name>/result.json; returns the result."""
    return run_scenario_on(scenario, config, run_dir, host, progress)[0]


def run_scenario_on(
    scenario: Scenario, config: RunConfig, run_dir: Path, host: HostHardware, progress: Progress,
    kept: KeptServer | None = None, keep: bool = False, turns: Turns | None = None,
) -> tuple[dict[str, Any], KeptServer | None]:
    """Run one scenario on `kept` (or a server of its own); with `keep`, leave a healthy server running.

    `turns` says when each request may go (the paired gate alternates two servers' requests).

    Returns the result and the server left running (None when it was stopped). Records: a shared server
    writes into the first user's server-records/; every user's records/ gets the startup records plus
    those written during its own requests, so its oracle check sees what a fresh server would give it.
    """
    clock = time.monotonic()
    scenario_dir = run_dir / scenario.name
    scenario_dir.mkdir(parents=True, exist_ok=True)
    workload = effective_workload(scenario, config)
    result = _base_result(scenario, config, workload, host)
    skip = _skip_reason(scenario, config, host)
    if skip is not None:
        if kept is not None:  # never happens through run_all (it plans reuse around skips); stay safe
            _stop_kept(kept)
        result.update(status="skipped", skip_reason=skip, finished_at=now_iso())
        write_result(scenario_dir, result)
        return result, None

    refused = _refusal(scenario)
    if refused is not None:
        if kept is not None:  # never happens through run_all (it plans reuse around refusals); stay safe
            _stop_kept(kept)
        return _refuse(result, scenario, scenario_dir, refused), None

    shared = kept is not None or keep
    plan = _plan_server(scenario, config, scenario_dir, kept, shared)
    result["server"] = dict(plan.server_json)
    served = _serve(scenario, config, workload, plan, progress, kept, keep, turns)
    check_clock = time.monotonic()
    if kept is None and plan.server.pid is not None:
        result["server"]["pid"] = plan.server.pid  # also the process group id
    result["target"].update(served.target)
    if served.telemetry is not None:
        result["telemetry"] = served.telemetry
    leak_failure = _check_shutdown(result["server"], plan, served)
    records_dir = scenario_dir / RECORDS_DIR
    if shared:
        _give_records(plan.records_dir, records_dir, served)
    _add_inspection(result, scenario, records_dir, plan, served, kept, turns)
    # Leaked GPU memory spoils every later scenario on that GPU: it outranks the scenario's own failure.
    result["failure"] = leak_failure or _failure(result["startup"], served.measurement, served.shutdown,
                                                 served.interrupted)
    result["status"] = "failed" if result["failure"] else "ok"
    result["finished_at"] = now_iso()
    startup = kept.startup if kept else served.startup
    result["timing"] = {**served.timing, "check_s": time.monotonic() - check_clock,
                        "total_s": time.monotonic() - clock,
                        "server_reused_from": kept.owner if kept else None,
                        "server_startup_s": startup.elapsed_s if startup is not None else None,
                        "server_kept_for_next": served.shutdown is None}
    write_result(scenario_dir, result)
    if served.interrupted:
        raise KeyboardInterrupt
    if served.shutdown is not None or served.startup is None:
        return result, None
    return result, _kept_server(scenario, config, plan, served, kept, result)


@dataclass(frozen=True)
class ServerPlan:
    """The server a scenario runs on: launch spec and handle, where it writes records, result.json's `server`."""

    spec: LaunchSpec
    server: Server
    records_dir: Path  # where the server writes (its first user's server-records/ when it is shared)
    instrument_errors: tuple[str, ...]
    server_json: dict[str, Any]


@dataclass(frozen=True)
class Served:
    """What happened on the server: its startup, the measurement, the records window and the shutdown."""

    startup: Startup | None
    measurement: Measurement | None
    interrupted: bool
    target: dict[str, Any]  # version and commit the server reported (empty when it never became healthy)
    telemetry: dict[str, Any] | None
    started_records: dict[str, int]  # record file sizes when the server became healthy
    window: tuple[dict[str, int], dict[str, int]] | None  # record file sizes around the measurement
    shutdown: Shutdown | None  # None: the server stays up for the next scenario
    timing: dict[str, Any]


def _plan_server(scenario: Scenario, config: RunConfig, scenario_dir: Path, kept: KeptServer | None,
                 shared: bool) -> ServerPlan:
    """The kept server, or a launch spec of the scenario's own (records in server-records/ when shared)."""
    if kept is not None:
        server_json = {**kept.server_json, "log": f"../{kept.owner}/{LOG_FILE}", "shutdown": None,
                       "reused_from": kept.owner}
        return ServerPlan(kept.spec, kept.server, kept.records_dir, (), server_json)
    records_dir = scenario_dir / (SERVER_RECORDS_DIR if shared else RECORDS_DIR)
    instrument_env, instrument_errors = _instrument_env(records_dir, config.target)
    caches = cache_env(config.cache_dir).items() if config.cache_dir else ()
    port = config.port or free_port(config.host)
    spec = LaunchSpec(
        argv=tuple(server_argv(scenario, config, port)),
        env=(*caches, *scenario.env, *instrument_env.items()),
        host=config.host,
        port=port,
        log_path=scenario_dir / LOG_FILE,
        startup_timeout_s=config.startup_deadline_s(),
        stop_grace_s=config.stop_grace_s,
    )
    server_json = {"argv": list(spec.argv), "env": dict(spec.env), "port": port, "log": LOG_FILE,
                   "extra_server_args": list(config.extra_server_args),
                   "revert_fixes": list(config.revert_fixes), "pinning": config.pinning.describe(),
                   "shutdown": None, "reused_from": None}
    return ServerPlan(spec, Server(spec), records_dir, tuple(instrument_errors), server_json)


def _serve(scenario: Scenario, config: RunConfig, workload: Workload, plan: ServerPlan, progress: Progress,
           kept: KeptServer | None, keep: bool, turns: Turns | None) -> Served:
    """Start the server (unless kept), measure on it, stop it unless it stays healthy for the next scenario."""
    server, spec = plan.server, plan.spec
    startup: Startup | None = kept.startup if kept else None
    measurement: Measurement | None = None
    interrupted = False
    target: dict[str, Any] = dict(kept.target) if kept else {}
    telemetry_json: dict[str, Any] | None = None
    window: tuple[dict[str, int], dict[str, int]] | None = None
    started_records = kept.startup_records if kept else {}
    timing: dict[str, Any] = {"startup_s": 0.0 if kept else None, "warmup_s": None, "measure_s": None}
    try:
        if kept is None:
            progress.phase(f"{scenario.name}: starting {config.target} server")
            server.start()
            startup = server.wait_ready()
            timing["startup_s"] = startup.elapsed_s
            started_records = _record_sizes(plan.records_dir)
        if startup is not None and startup.outcome == "ok":
            if kept is None:
                target = _target_version(config, spec.base_url)
            before = _record_sizes(plan.records_dir)
            visible = dict(spec.env).get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
            telemetry = TelemetrySampler(config.telemetry_interval_s, lambda: _server_tree(server), visible)
            with telemetry, pinned(config.pinning.client):
                measurement = _measure(spec.base_url, scenario, workload, config, progress, turns, telemetry)
            telemetry_json = telemetry.to_json()
            window = (before, _record_sizes(plan.records_dir))
            timing.update(warmup_s=measurement.warmup_s, measure_s=measurement.measure_s)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        healthy = (startup is not None and startup.outcome == "ok" and measurement is not None
                   and measurement.failed is None and server.alive())
        shutdown: Shutdown | None = None
        if not (keep and healthy and not interrupted):
            progress.phase(f"{scenario.name}: stopping server")
            stop_clock = time.monotonic()
            shutdown = server.stop()
            timing["stop_s"] = time.monotonic() - stop_clock
    return Served(startup, measurement, interrupted, target, telemetry_json, started_records, window,
                  shutdown, timing)


def _check_shutdown(server_json: dict[str, Any], plan: ServerPlan, served: Served) -> dict[str, str] | None:
    """Record the shutdown and the GPU-leak check of a stopped server; the leak's failure, if any."""
    if served.shutdown is None:
        server_json["gpu_leak"] = None  # checked by the scenario that stops the shared server
        return None
    server_json["shutdown"] = served.shutdown.to_json()
    leak = check_leaks(plan.server.pids)
    server_json["gpu_leak"] = leak.to_json()
    return leak.failure()


def _give_records(server_records: Path, records_dir: Path, served: Served) -> None:
    """A shared server's records for this scenario: its startup records plus those of its own requests."""
    if served.window is not None:
        _slice_records(server_records, records_dir, served.started_records, *served.window)
    elif served.startup is not None:
        started = served.started_records
        _slice_records(server_records, records_dir, started, started, _record_sizes(server_records))


def _add_inspection(result: dict[str, Any], scenario: Scenario, records_dir: Path, plan: ServerPlan,
                    served: Served, kept: KeptServer | None, turns: Turns | None) -> None:
    """The records and the oracle's verdicts, the startup, and the measured samples and their summaries."""
    started = served.startup is not None and served.startup.outcome == "ok"
    instrumentation, oracle = _inspect(scenario, records_dir, list(plan.instrument_errors), started)
    instrumentation["records"], step_times = split_records(instrumentation["records"])
    result["instrumentation"] = instrumentation
    result["oracle"] = oracle
    if served.startup is not None:
        result["startup"] = _with_recorded_oom(served.startup, instrumentation["records"])
        if kept is not None:
            result["startup"]["reused_from"] = kept.owner
    measurement = served.measurement
    if measurement is None:
        return
    result["samples"] = with_step_times([s.to_json() for s in measurement.samples], step_times)
    pairing = turns.pairing() if turns is not None else None
    if pairing is not None:
        # Measured request i of each side is pair i (same prompt); the gate matches them by this index.
        result["pairing"] = pairing
        for sample in result["samples"]:
            sample["pair"] = sample["index"]
    result["summary"] = {**_summary(measurement.samples), **_step_summary(result["samples"])}
    result["regimes"] = run_regimes(result["samples"])
    if measurement.warmup is not None:
        result["warmup"] = measurement.warmup.to_json()
        result["workload"]["warmups"] = measurement.warmup.requests
    result["server_metrics"] = measurement.server_metrics


def _kept_server(scenario: Scenario, config: RunConfig, plan: ServerPlan, served: Served,
                 kept: KeptServer | None, result: dict[str, Any]) -> KeptServer:
    """The healthy server left running for the next scenario with the same launch flags."""
    assert served.startup is not None
    return KeptServer(
        server=plan.server, spec=plan.spec, key=launch_key(scenario, config),
        owner=kept.owner if kept else scenario.name, startup=served.startup,
        target={k: v for k, v in result["target"].items() if k != "kind"},
        server_json={k: v for k, v in result["server"].items()
                     if k not in ("log", "shutdown", "gpu_leak", "reused_from")},
        records_dir=plan.records_dir, startup_records=served.started_records,
    )


def _refusal(scenario: Scenario) -> str | None:
    """Why the oracle calls the scenario invalid (the rules that fail), or None: launch it."""
    from harness.check.oracle_check import OracleCheckError, refusal

    try:
        return refusal(scenario)
    except OracleCheckError:
        return None  # the oracle cannot judge it before launch; the inspection after the run records why


def _refuse(result: dict[str, Any], scenario: Scenario, scenario_dir: Path, why: str) -> dict[str, Any]:
    """Store the result of a scenario refused before launch: the failing rules, its verdicts not checked."""
    from harness.check.oracle_check import check
    from harness.instrument.reader import LoadedRecords

    report = check(scenario, LoadedRecords((), ()), started=False)  # no server, so no records
    result.update(status="failed", oracle={"error": None, **report.to_json()}, finished_at=now_iso(),
                  failure={"stage": "startup", "kind": "invalid_config",
                           "message": f"not launched: the oracle calls this configuration invalid: {why} "
                                      "(a scenario expecting this says config_valid = false in "
                                      "[oracle.expect])"})
    write_result(scenario_dir, result)
    return result


def _stop_kept(kept: KeptServer) -> None:
    kept.server.stop()


def _record_sizes(records_dir: Path) -> dict[str, int]:
    """Each record file's size up to its last complete line (the server may be mid-write)."""
    sizes = {}
    for path in sorted(records_dir.glob("*.jsonl")) if records_dir.is_dir() else []:
        with contextlib.suppress(OSError):
            data = path.read_bytes()
            sizes[path.name] = data.rfind(b"\n") + 1
    return sizes


def _slice_records(src: Path, dst: Path, startup: dict[str, int], before: dict[str, int],
                   after: dict[str, int]) -> None:
    """dst/<file> = the server's startup records + what it wrote between `before` and `after`."""
    for name, end in after.items():
        dst.mkdir(parents=True, exist_ok=True)
        data = (src / name).read_bytes()
        head = startup.get(name, 0)
        start = max(before.get(name, head), head)
        (dst / name).write_bytes(data[:head] + data[start:end])


def _skip_reason(scenario: Scenario, config: RunConfig, host: HostHardware) -> str | None:
    if config.target not in scenario.targets:
        return f"scenario runs on {', '.join(scenario.targets)}, not on target {config.target!r}"
    reason = unmet_reason(scenario.hardware_for(config.target), host)
    return f"hardware absent: {reason}" if reason else None


def _measure(base_url: str, scenario: Scenario, workload: Workload, config: RunConfig,
             progress: Progress, turns: Turns | None = None,
             telemetry: TelemetrySampler | None = None) -> Measurement:
    turns = turns or FreeTurns(workload.requests)
    vocab = int(json.loads((scenario.model_dir / "config.json").read_text()).get("vocab_size", 32000))
    policy = warmup_policy(workload, config)
    started = time.monotonic()
    with StreamingClient(base_url, token_timeout_s=config.token_timeout_s) as client:
        progress.phase(f"{scenario.name}: warm-up",
                       total=policy.max_requests if isinstance(policy, AutoWarmup) else policy)
        warm_samples: list[RequestSample] = []

        def send_warmup(index: int) -> RequestSample:
            with turns.hold(WARMUP, index):
                sample = client.generate(index, prompt_ids(workload.input_len, vocab, index), workload.output_len)
            warm_samples.append(sample)
            return sample

        warmup, failed_warmup = warm_up(send_warmup, policy, progress.advance)
        if telemetry is not None:
            telemetry.note_requests(WARMUP, ((s.index, s.send_ns, s.e2e_ms) for s in warm_samples))
            telemetry.set_phase(MEASURE)
        if failed_warmup is not None:
            return Measurement((), server_side(scrape(base_url), scrape(base_url)), failed_warmup, True,
                               time.monotonic() - started, warmup=warmup)
        warmed = time.monotonic()
        with turns.hold(SCRAPE, 0):
            before = scrape(base_url)
        progress.phase(f"{scenario.name}: measuring", total=workload.requests)
        samples: list[RequestSample] = []
        failed = None
        index = 0
        while True:
            with turns.hold(MEASURE, index) as go:
                if not go:
                    break
                seed = first_measured_seed(policy) + index
                sample = client.generate(index, prompt_ids(workload.input_len, vocab, seed), workload.output_len)
            turns.report(index, sample)
            samples.append(sample)
            progress.advance()
            if not sample.ok:
                failed = sample  # a broken server makes later numbers meaningless
                break
            index += 1
        with turns.hold(SCRAPE, 1):
            after = scrape(base_url)
    if telemetry is not None:
        telemetry.note_requests(MEASURE, ((s.index, s.send_ns, s.e2e_ms) for s in samples))
    return Measurement(tuple(samples), server_side(before, after), failed, False, warmed - started,
                       time.monotonic() - warmed, warmup=warmup)


def _server_tree(server: Server) -> set[int]:
    """The server's processes now (sglang's scheduler and detokenizer are children of the launcher)."""
    pids = set(server.pids)
    if server.pid is not None:
        with contextlib.suppress(psutil.Error):
            pids |= {p.pid for p in psutil.Process(server.pid).children(recursive=True)}
    return pids


def _step_summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """decode_gpu_ms and decode_host_ms over the measured requests (the server's decode_step records)."""
    good = [s for s in samples if s["ok"]]
    return {key: summarize(s.get(key) for s in good) for key in ("decode_gpu_ms", "decode_host_ms")}


def _summary(samples: tuple[RequestSample, ...]) -> dict[str, Any]:
    good = [s for s in samples if s.ok]
    return {
        "ttft_ms": summarize(s.ttft_ms for s in good),
        "tpot_ms": summarize(s.tpot_ms for s in good),
        "e2e_ms": summarize(s.e2e_ms for s in good),
        "itl_ms": summarize(gap for s in good for gap in s.itl_ms),
    }


def _failure(startup: dict[str, Any] | None, measurement: Measurement | None, shutdown: Shutdown | None,
             interrupted: bool) -> dict[str, str] | None:
    if interrupted:
        return {"stage": "harness", "kind": "interrupted", "message": "interrupted (SIGINT/SIGTERM)"}
    if startup is not None and startup["outcome"] != "ok":
        return {"stage": "startup", "kind": startup["outcome"], "message": startup["message"]}
    if measurement is not None and measurement.failed is not None:
        failed = measurement.failed
        where = "warm-up" if measurement.failed_in_warmup else "measured"
        return {"stage": "request", "kind": str(failed.error_kind),
                "message": f"{where} request {failed.index}: {failed.error}"}
    if shutdown is not None and shutdown.survivors:
        return {"stage": "shutdown", "kind": "orphan_processes",
                "message": f"processes survived SIGKILL of the group: {list(shutdown.survivors)}"}
    return None


def _with_recorded_oom(startup: Startup, records: list[dict[str, Any]]) -> dict[str, Any]:
    """A crash the log could not place is an OOM at capture when the server recorded one."""
    data = startup.to_json()
    oom = next((r for r in records if isinstance(r, dict) and r.get("kind") == "capture_oom"), None)
    data["capture"]["source"] = "log"
    if oom is None or startup.outcome in ("ok", OOM_AT_CAPTURE):
        return data
    capture = data["capture"]
    capture.update(oom=True, source="instrumentation")
    for key in ("batch_size", "num_tokens", "requested_bytes", "free_bytes"):
        if isinstance(oom.get(key), int):
            capture[key] = oom[key]
    data["outcome"] = OOM_AT_CAPTURE
    data["message"] = f"OOM during CUDA graph capture at batch size {capture['batch_size']} (instrumentation)"
    return data


def _instrument_env(records_dir: Path, target: str) -> tuple[dict[str, str], list[str]]:
    try:
        from harness.instrument.launch import instrument_env
    except ImportError as exc:
        return {}, [f"instrumentation not available: {exc}"]
    return dict(instrument_env(records_dir, target)), []


def _inspect(scenario: Scenario, records_dir: Path, errors: list[str],
             started: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load the server's instrumentation records and check them against the oracle (`started`: it came up)."""
    instrumentation: dict[str, Any] = {"records": [], "errors": list(errors)}
    oracle: dict[str, Any] = {"ok": None, "verdicts": [], "error": None}
    try:
        from harness.check.oracle_check import check
        from harness.instrument.reader import load_records
    except ImportError as exc:
        oracle["error"] = f"oracle check not available: {exc}"
        return instrumentation, oracle
    try:
        loaded = load_records(records_dir)
        instrumentation["records"] = [_plain(r) for r in loaded.records]
        instrumentation["errors"] += [_plain(e) for e in loaded.errors]
        report = check(scenario, loaded, started)
        oracle = {"error": None, **_plain(report)}
        oracle.setdefault("ok", report.ok)
        oracle.setdefault("verdicts", [])
    except Exception as exc:  # their bug must not lose the measured result; it is recorded instead
        oracle["error"] = f"{type(exc).__name__}: {exc}"
    return instrumentation, oracle


def _plain(value: Any) -> Any:
    return value.to_json() if hasattr(value, "to_json") else value


def _target_version(config: RunConfig, base_url: str) -> dict[str, str | None]:
    if config.target == "reference":
        return reference_target()
    for path in ("/get_server_info", "/server_info"):
        try:
            response = requests.get(base_url + path, timeout=5.0)
            if response.status_code == 200 and isinstance(response.json(), dict):
                return {"version": response.json().get("version"), "commit": None}
        except (requests.RequestException, ValueError):
            continue
    return {"version": None, "commit": None}


def _base_result(scenario: Scenario, config: RunConfig, workload: Workload, host: HostHardware) -> dict[str, Any]:
    empty = summarize([])
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario.name,
        "status": "failed",
        "skip_reason": None,
        "failure": None,
        "started_at": now_iso(),
        "finished_at": now_iso(),
        "target": {"kind": config.target, "version": None, "commit": None},
        "harness": harness_identity(),
        "hardware": host.to_json(),
        "scenario_detail": {
            "description": scenario.description,
            "path": str(scenario.path),
            "model_dir": str(scenario.model_dir),
            "guards": scenario.guards,
            "server_args": dict(scenario.server_args),
            "server_cli_args": scenario.server_cli_args(),
            "env": dict(scenario.env),
            "hardware_needs": asdict(scenario.hardware_for(config.target)),
            "oracle": {**asdict(scenario.oracle), "expect": dict(scenario.oracle.expect)},
        },
        "server": None,
        "workload": asdict(workload),
        "startup": None,
        "samples": [],
        "summary": {"ttft_ms": empty, "tpot_ms": empty, "e2e_ms": empty, "itl_ms": empty},
        "server_metrics": {"ttft_ms_mean": None, "itl_ms_mean": None, "e2e_ms_mean": None, "requests": None,
                           "error": "not measured"},
        "instrumentation": {"records": [], "errors": []},
        "oracle": {"ok": None, "verdicts": [], "error": None},
    }


# ---- `harness run` command line -------------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"harness run: error: {message} (see harness run --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="harness run", description="Run scenarios at BS=1 and store one result each.")
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="catalog name or .toml path (default: baseline)")
    add_target(parser)
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<UTC time>)")
    add_requests(parser, "measured requests (overrides the scenario)")
    add_warmups(parser, f"discarded warm-up requests (overrides the scenario); auto: windows of "
                        f"{AUTO.window} until two windows' TPOT medians agree within "
                        f"{AUTO.tolerance * 100:g}%%, at most {AUTO.max_requests} requests or {AUTO.max_s:g} s")
    parser.add_argument("--telemetry-interval", type=float, default=DEFAULT_INTERVAL_S, metavar="S",
                        help="GPU clock/power/temperature/throttle sampling period through the run (NVML); 0: off")
    parser.add_argument("--extra-server-args", default="", metavar='"ARGS"',
                        help='appended verbatim to the server command line; write --extra-server-args="--flag v"')
    parser.add_argument("--revert-fix", action="append", default=[], metavar="NAME", choices=FIX_NAMES,
                        help="reference target only: reintroduce a fix's bug (repeatable)")
    parser.add_argument("--port", type=int, help="server port (default: a free one)")
    parser.add_argument("--startup-timeout", type=float, metavar="S", help="seconds to wait for /health")
    parser.add_argument("--token-timeout", type=float, default=60.0, metavar="S",
                        help="fail a request when the stream is silent this long")
    parser.add_argument("--launcher", default="", metavar='"CMD"',
                        help='replaces "python -m <target module>", e.g. "/opt/sgl/bin/python -m sglang.launch_server"')
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="continue RUN_DIR with its own arguments: keep finished results, re-run the rest")
    add_pin(parser, "pin the server tree and the client to cores, e.g. 2-5/1 (default none; auto: the "
                    "client on the last usable core, the server on the rest)")
    parser.add_argument("--no-reuse-server", action="store_true",
                        help="start a fresh server for every scenario (default: neighbours with the same launch "
                             "flags share one; each result says server.reused_from)")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help="keep Triton/inductor/FlashInfer/sglang JIT caches here between runs "
                             "(default $HARNESS_CACHE_DIR; unset: the tools' own ~/.cache)")
    parser.add_argument("--lock-dir", type=Path, metavar="DIR",
                        help="per-GPU lock files (default: $HARNESS_LOCK_DIR or <tmp>/sglang-moe-harness-locks)")
    return parser


def config_from_args(argv: list[str]) -> tuple[RunConfig, list[Scenario]]:
    """Parse and validate `harness run` arguments; bad input exits 2 with one line."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.resume is not None:
        if args.scenarios or args.out:
            parser.error("--resume: the scenarios and --out come from RUN_DIR's manifest; give neither")
        try:
            args = parser.parse_args(resumed_argv(args.resume, argv))
        except ResumeError as exc:
            parser.error(str(exc))
    if not args.telemetry_interval >= 0:
        parser.error(f"--telemetry-interval: expected seconds >= 0, got {args.telemetry_interval}")
    if args.revert_fix and args.target != "reference":
        parser.error("--revert-fix is handed to the reference engine only; sglang runs its fixes as merged")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port: expected 1..65535, got {args.port}")
    if args.startup_timeout is not None and args.startup_timeout <= 0:
        parser.error(f"--startup-timeout: expected seconds > 0, got {args.startup_timeout}")
    try:
        extra = tuple(shlex.split(args.extra_server_args))
        launcher = tuple(shlex.split(args.launcher)) or None
    except ValueError as exc:
        parser.error(f"--extra-server-args/--launcher: cannot split: {exc}")
    try:
        scenarios = [load_scenario(name) for name in (args.scenarios or ["baseline"])]
    except ScenarioError as exc:
        parser.error(str(exc))
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        parser.error(f"scenario named twice: {names}")
    if args.port is not None:
        try:
            check_port_free("127.0.0.1", args.port)
        except PortInUseError as exc:
            parser.error(f"--port: {exc}")
    try:
        pinning = parse_pinning(args.pin)
    except AffinityError as exc:
        parser.error(str(exc))
    out = args.resume or args.out or _default_run_dir()
    if args.resume is None and (out / MANIFEST_FILE).exists():
        parser.error(f"--out: {out} already holds a run (manifest.json); choose a new directory")
    if out.exists() and not out.is_dir():
        parser.error(f"--out: {out} exists and is not a directory")
    config = RunConfig(
        out_dir=out, target=args.target, requests=args.requests, warmups=args.warmups,
        extra_server_args=extra, revert_fixes=tuple(args.revert_fix), port=args.port,
        startup_timeout_s=args.startup_timeout, token_timeout_s=args.token_timeout, launcher=launcher,
        resume=args.resume is not None, lock_dir=args.lock_dir, pinning=pinning,
        reuse_server=not args.no_reuse_server, telemetry_interval_s=args.telemetry_interval,
        **({"cache_dir": args.cache_dir} if args.cache_dir else {}),
    )
    return config, scenarios


def _default_run_dir() -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    candidate, n = Path("runs") / stamp, 1
    while candidate.exists():
        n += 1
        candidate = Path("runs") / f"{stamp}-{n}"
    return candidate


def run_all(config: RunConfig, scenarios: list[Scenario], argv: list[str], console: Console) -> list[dict[str, Any]]:
    """Run every scenario in order under the GPU lock, keeping the manifest current.

    SIGINT/SIGTERM stop the current server and raise HarnessInterrupted; config.resume keeps finished results.
    """
    host = detect_host()
    names = [s.name for s in scenarios]
    lock = None if config.lock_held else GpuLock.for_machine(len(host.gpus), config.out_dir, config.lock_dir)
    results = []
    with InterruptGuard() as guard, lock or contextlib.nullcontext():
        for note in lock.notes if lock else []:
            console.print(f"[yellow]{escape(note)}[/]")
        config.out_dir.mkdir(parents=True, exist_ok=True)
        plan = plan_resume(config.out_dir, names) if config.resume else None
        if plan is not None:
            for note in plan.notes:
                console.print(f"resume: {escape(note)}")
            manifest = plan.manifest
            manifest.save()
        else:
            manifest = Manifest.start(config.out_dir, config.target, argv, names)
        to_run = [s for s in scenarios if plan is None or plan.kept_result(s.name) is None]
        keys = {s.name: launch_key(s, config) if _skip_reason(s, config, host) is None and _refusal(s) is None
                else None for s in to_run}
        live: KeptServer | None = None
        with RichProgress(console) as progress:
            try:
                for scenario in scenarios:
                    done = plan.kept_result(scenario.name) if plan is not None else None
                    if done is not None:
                        results.append(done)
                        continue
                    if live is not None and live.key != keys[scenario.name]:
                        _stop_kept(live)  # cannot happen as planned below; a safety net
                        live = None
                    position = to_run.index(scenario)
                    following = to_run[position + 1] if position + 1 < len(to_run) else None
                    # Reuse only between neighbours: the server is never held across a scenario it cannot serve.
                    keep = (config.reuse_server and following is not None and keys[scenario.name] is not None
                            and keys[following.name] == keys[scenario.name])
                    manifest.mark_running(scenario.name)
                    try:
                        result, live = run_scenario_on(scenario, config, config.out_dir, host, progress, live, keep)
                    except KeyboardInterrupt:
                        live = None  # run_scenario_on stopped it
                        mark_interrupted(manifest, scenario.name, guard.received)
                        raise
                    manifest.mark_done(scenario.name, result["status"])
                    results.append(result)
            finally:
                if live is not None:
                    _stop_kept(live)
    return results


def _refused_as_expected(result: dict[str, Any]) -> bool:
    """A failed startup the scenario expected: the oracle calls it invalid and the server refused it."""
    verdicts = (result.get("oracle") or {}).get("verdicts") or []
    refused = any(v.get("name") == "server_refused" and v.get("passed") is True for v in verdicts)
    return refused and (result.get("failure") or {}).get("stage") == "startup"


@entry_point("harness run: error")
def main(argv: list[str] | None = None) -> int:
    """`harness run`: 0 when every scenario ran (or was skipped) and no oracle verdict failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    config, scenarios = config_from_args(argv)
    console = Console()
    try:
        results = run_all(config, scenarios, ["harness", "run", *argv], console)
    except KeyboardInterrupt as exc:
        console.print(f"[red]interrupted[/]; finished results are kept in {config.out_dir}; "
                      f"continue with: harness run --resume {config.out_dir}")
        return interrupt_exit_code(exc)
    except ResultWriteError as exc:
        print(f"harness run: error: {exc}; continue with: harness run --resume {config.out_dir}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    console.print(summary_table(results, title=f"harness run -> {config.out_dir}"))
    for result in results:
        explain(result, console)
    console.print(f"results: {config.out_dir}")
    bad = [r for r in results if (r["status"] == "failed" and not _refused_as_expected(r))
           or (r.get("oracle") or {}).get("ok") is False]
    return 1 if bad else 0
