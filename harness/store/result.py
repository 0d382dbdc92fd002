"""One result.json, typed: its vocabulary, schema version and upgrade path, and the metrics derived from it.

Every reader of result.json (the store, the gate, the asv suite) goes through `read_object` and
`Result.from_json`, so they agree on what a run measured, e.g. whether it ran out of memory at CUDA
graph capture. Stdlib only and no harness imports: the asv suite loads this file by path, since
asv's per-commit environment may hold sglang and nothing else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn

RESULT_FILE = "result.json"
LOG_FILE = "server.log"
RECORDS_DIR = "records"

SCHEMA_VERSION = 1
STATUSES = ("ok", "skipped", "failed")
OOM_AT_CAPTURE = "oom_during_cuda_graph_capture"
STARTUP_OUTCOMES = ("ok", OOM_AT_CAPTURE, "crash", "timeout")
PAIRING_ORDERS = ("abba", "abab")
PAIRING_SIDES = ("base", "head")
# source.kind of a run `harness import` made from sglang.bench_serving output: client latencies only.
IMPORTED_KIND = "bench_serving"

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]
# Version n -> the step that lifts an object of version n to n + 1, applied in memory on read (never
# written back), as pyperf and asv do with their own files. Empty: every result.json ever written is
# version 1, whose later additions (telemetry, regimes, warmup, pairing, timing, target.commit_time,
# summary.decode_gpu_ms, samples[].rid ...) are optional keys that older files lack, and a missing key
# reads as "not recorded". A change that renames or reshapes a key bumps SCHEMA_VERSION and adds its step.
UPGRADES: Mapping[int, Upgrade] = MappingProxyType({})


try:  # the harness's one error base; asv and the nightly alert load this file alone, without the harness
    from harness.errors import HarnessError

    _ERROR_BASES: tuple[type[Exception], ...] = (HarnessError, ValueError)
except ImportError:
    _ERROR_BASES = (ValueError,)


class ResultError(*_ERROR_BASES):  # type: ignore[misc]
    """A result file that cannot be read or does not match the schema; the message names the file."""


@dataclass(frozen=True)
class Pairing:
    """A paired-design result: which side, which server-start pair, and the request order."""

    side: str
    start_pair: int
    order: str


@dataclass(frozen=True)
class Stat:
    """One summary entry (summary.<metric>); None where the run measured nothing."""

    median: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    stdev: float | None = None
    n: int = 0


@dataclass(frozen=True)
class Request:
    """One measured request: its place in samples[], its pair index (paired results) and its fields."""

    index: int
    pair: int | None
    fields: Mapping[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Column:
    """One metric over the measured requests, in file order; `pairs` holds each one's pair index (paired only)."""

    values: tuple[float, ...]
    pairs: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class Result:
    """A result.json read and checked once; the derived metrics are computed here and nowhere else."""

    file: str  # the file read ("result" when built in memory); every message names it
    scenario: str
    status: str
    skip_reason: str | None
    startup_outcome: str | None  # None: the run never started a server (skipped, or a harness failure)
    failure_stage: str | None  # failure.stage: startup|request|shutdown|instrumentation|harness
    commit: str | None
    order_time: float | None  # seconds since the epoch; orders nightly runs (see docs/gate.md)
    target_kind: str | None  # target.kind: "sglang" | "reference" (the gate's start_sd is per target)
    imported: bool  # made by `harness import` from bench_serving: no server-side numbers at all
    summary: Mapping[str, Stat] | None  # None: the run measured nothing (summary: null)
    pairing: Pairing | None
    workspace_bytes: int | None  # the largest dispatcher_init.workspace_size_per_rank; None: no dispatcher
    capture_oom: bool
    capture_mem_bytes: int | None  # None: no cuda_graph_capture record with memory readings
    oracle_passed: Mapping[str, bool]  # verdict name -> passed, checked verdicts only
    oracle_failures: int | None  # None: no oracle verdicts in the file
    gpu: GpuTelemetry | None = None  # telemetry.summary of a run sampled by NVML; None: no GPU telemetry
    failed_checks: tuple[FailedCheck, ...] = ()  # the oracle verdicts with passed: false, in file order
    requests: tuple[Request, ...] = field(default=(), repr=False)  # the measured samples[] entries

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], file: str = "result") -> Result:
        """Check and type an (upgraded) result object; any problem is one ResultError naming the file and field."""
        reader = _Reader(file)
        scenario = reader.string(obj, "scenario", required=True)
        status = reader.string(obj, "status", required=True)
        if status not in STATUSES:
            reader.fail("status", f"expected one of {sorted(STATUSES)}, got {status!r}")
        startup = reader.table(obj, "startup") or {}
        outcome = reader.string(startup, "outcome", where="startup.outcome")
        if outcome is not None and outcome not in STARTUP_OUTCOMES:
            reader.fail("startup.outcome", f"expected one of {sorted(STARTUP_OUTCOMES)}, got {outcome!r}")
        capture = reader.table(startup, "capture", where="startup.capture") or {}
        pairing = _pairing(reader, obj)
        records = _records(reader, obj)
        target = reader.table(obj, "target") or {}
        failure = reader.table(obj, "failure") or {}
        verdicts = _verdicts(reader, obj)
        failed = tuple(FailedCheck(v["name"], json.dumps(v.get("expected")), json.dumps(v.get("observed")))
                       for v in verdicts or () if v["passed"] is False)
        return cls(
            file=file,
            scenario=str(scenario),
            status=str(status),
            skip_reason=reader.string(obj, "skip_reason"),
            startup_outcome=outcome,
            failure_stage=reader.string(failure, "stage", where="failure.stage"),
            commit=reader.string(target, "commit", where="target.commit"),
            order_time=_order_time(reader, obj, target),
            target_kind=reader.string(target, "kind", where="target.kind"),
            imported=(reader.table(obj, "source") or {}).get("kind") == IMPORTED_KIND,
            summary=_summary(reader, obj),
            pairing=pairing,
            workspace_bytes=_largest_workspace_bytes(reader, records),
            capture_oom=_capture_oom(outcome, capture, records),
            capture_mem_bytes=_capture_mem_bytes(reader, records),
            oracle_passed=_passed(obj, verdicts),
            oracle_failures=None if verdicts is None else len(failed),
            requests=_measured_requests(reader, obj, paired=pairing is not None),
            gpu=_gpu_telemetry(reader, obj),
            failed_checks=failed,
        )

    def median(self, metric: str) -> float | None:
        """summary.<metric>.median, None when absent or not measured."""
        stat = (self.summary or {}).get(metric)
        return None if stat is None else stat.median

    def summarised(self, metric: str) -> bool:
        """Whether summary holds `metric` at all (results from before a metric existed lack it)."""
        return self.summary is not None and metric in self.summary

    def column(self, metric: str) -> Column:
        """`metric` over the measured requests that carry it; a value that is not a finite number >= 0 is an error."""
        values: list[float] = []
        pairs: list[int] = []
        for request in self.requests:
            value = request.fields.get(metric)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ResultError(f"{self.file}: samples[{request.index}].{metric}: "
                                  f"expected a finite number >= 0, got {value!r}")
            values.append(float(value))
            if request.pair is not None and self.pairing is not None:
                pairs.append(request.pair)
        return Column(values=tuple(values), pairs=tuple(pairs))


# The derived metrics: one definition each, used by every reader.


def _capture_oom(outcome: str | None, capture: Mapping[str, Any], records: tuple[Mapping[str, Any], ...]) -> bool:
    """OOM at CUDA graph capture: the startup outcome says so, the log showed one, or the server recorded one."""
    # Any one signal is enough: a server can record a capture OOM it then survives (outcome ok), and a
    # log can hold one the classifier placed elsewhere; the gate and the asv dashboard must not disagree.
    return (outcome == OOM_AT_CAPTURE or capture.get("oom") is True
            or any(r.get("kind") == "capture_oom" for r in records))


def _largest_workspace_bytes(reader: _Reader, records: tuple[Mapping[str, Any], ...]) -> int | None:
    """The largest dispatcher_init.workspace_size_per_rank over ranks; None when no dispatcher was built."""
    sizes = []
    for record in records:
        if record.get("kind") != "dispatcher_init":
            continue
        size = record.get("workspace_size_per_rank")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            reader.fail("dispatcher_init.workspace_size_per_rank", f"expected bytes, got {size!r}")
        sizes.append(size)
    # The largest rank's workspace is what can OOM, so that is the number compared and tracked.
    return max(sizes) if sizes else None


def _capture_mem_bytes(reader: _Reader, records: tuple[Mapping[str, Any], ...]) -> int | None:
    """Device memory CUDA graph capture took on the busiest rank: the sum of free-before - free-after per rank."""
    per_rank: dict[int, int] = {}
    for record in records:
        if record.get("kind") != "cuda_graph_capture":
            continue
        before, after = record.get("mem_free_before"), record.get("mem_free_after")
        if before is None or after is None:
            continue  # no device to read (the probe on a CPU host): not measured, not zero
        if isinstance(before, bool) or isinstance(after, bool) or not isinstance(before, int) \
                or not isinstance(after, int):
            reader.fail("cuda_graph_capture.mem_free_before/after", f"expected bytes, got {before!r}, {after!r}")
        rank = record.get("rank") if isinstance(record.get("rank"), int) else 0
        per_rank[rank] = per_rank.get(rank, 0) + before - after
    return max(per_rank.values()) if per_rank else None


# Reading: one file -> one upgraded object -> one Result.


def read_text(path: Path, error: type[Exception], *, what: str = "file", prefix: str = "") -> str:
    """The UTF-8 text of `path`; a missing or unreadable file is one `error` line naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{prefix}{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{prefix}{path}: cannot read: {exc}") from None


def read_json_object(path: Path, error: type[Exception], *, what: str = "file", prefix: str = "") -> dict[str, Any]:
    """Read one JSON object from `path`; each problem is one `error` line naming the file."""
    text = read_text(path, error, what=what, prefix=prefix)
    if not text.strip():
        raise error(f"{prefix}{path}: empty {what}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{prefix}{path}: not valid JSON (truncated or corrupt?): {exc}") from None
    if not isinstance(data, dict):
        raise error(f"{prefix}{path}: expected a JSON object")
    return data


def upgrade(obj: dict[str, Any], file: str = "result", *, steps: Mapping[int, Upgrade] = UPGRADES,
            current: int = SCHEMA_VERSION) -> dict[str, Any]:
    """`obj` lifted to version `current` one step at a time; a newer or unknown version is a ResultError."""
    version = obj.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultError(f"{file}: schema_version: expected an integer >= 1, got {version!r}")
    if version > current:
        raise ResultError(f"{file}: schema_version {version!r}, this harness reads {current} and older")
    while version < current:
        step = steps.get(version)
        if step is None:
            raise ResultError(f"{file}: schema_version {version}: no upgrade to {version + 1} (too old to read)")
        obj = {**step(obj), "schema_version": version + 1}
        version += 1
    return obj


def read_object(path: Path) -> dict[str, Any]:
    """A result.json as an object of the current schema version (older versions upgraded in memory)."""
    return upgrade(read_json_object(path, ResultError, what="result file"), str(path))


def read_result(path: Path) -> Result:
    """A result.json, read, upgraded and typed; any problem is one ResultError line naming the file."""
    return Result.from_json(read_object(path), str(path))


class _Reader:
    """Field access that turns every type problem into one ResultError naming the file and the field."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, where: str, message: str) -> NoReturn:
        raise ResultError(f"{self.file}: {where}: {message}")

    def table(self, obj: Mapping[str, Any], key: str, *, where: str | None = None) -> Mapping[str, Any] | None:
        value = obj.get(key)
        if value is not None and not isinstance(value, Mapping):
            self.fail(where or key, "expected an object")
        return value

    def string(self, obj: Mapping[str, Any], key: str, *, required: bool = False,
               where: str | None = None) -> str | None:
        value = obj.get(key)
        if value is None:
            if required:
                self.fail(where or key, "missing")
            return None
        if not isinstance(value, str):
            self.fail(where or key, f"expected a string, got {value!r}")
        return value

    def number(self, obj: Mapping[str, Any], key: str, *, where: str) -> float | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"expected a number or null, got {value!r}")
        return float(value)


def _pairing(reader: _Reader, obj: Mapping[str, Any]) -> Pairing | None:
    raw = reader.table(obj, "pairing")
    if raw is None:
        return None
    if raw.get("design") != "paired":
        reader.fail("pairing.design", f"expected 'paired', got {raw.get('design')!r}")
    side, start, order = raw.get("side"), raw.get("start_pair"), raw.get("order")
    if side not in PAIRING_SIDES:
        reader.fail("pairing.side", f"expected 'base' or 'head', got {side!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        reader.fail("pairing.start_pair", f"expected an integer >= 0, got {start!r}")
    if order not in PAIRING_ORDERS:
        reader.fail("pairing.order", f"expected one of {sorted(PAIRING_ORDERS)}, got {order!r}")
    return Pairing(side=side, start_pair=start, order=order)


def _measured_requests(reader: _Reader, obj: Mapping[str, Any], *, paired: bool) -> tuple[Request, ...]:
    """The samples[] entries the metrics use; every entry's pair index is checked when pairing is set."""
    raw = obj.get("samples") or []
    if not isinstance(raw, list):
        reader.fail("samples", "expected a list")
    measured = []
    seen: set[int] = set()
    for i, sample in enumerate(raw):
        if not isinstance(sample, Mapping):
            reader.fail(f"samples[{i}]", "expected an object")
        pair = sample.get("pair")
        if paired or pair is not None:
            if isinstance(pair, bool) or not isinstance(pair, int) or pair < 0 or pair in seen:
                what = "a pair index not used before" if pair in seen else "an integer >= 0"
                reader.fail(f"samples[{i}].pair", f"expected {what} (pairing is set), got {pair!r}")
            seen.add(pair)
        # Failed requests carry no measurement a metric may use (warm-ups are not stored at all).
        if sample.get("ok") is False or sample.get("error_kind") or sample.get("warmup"):
            continue
        measured.append(Request(index=i, pair=pair, fields=MappingProxyType(dict(sample))))
    return tuple(measured)


def _records(reader: _Reader, obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    inst = reader.table(obj, "instrumentation") or {}
    records = inst.get("records") or []
    if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
        reader.fail("instrumentation.records", "expected a list of objects")
    return tuple(records)


@dataclass(frozen=True)
class FailedCheck:
    """One failed oracle verdict: its name and the expected and observed values as JSON text."""

    name: str
    expected: str
    observed: str


@dataclass(frozen=True)
class GpuTelemetry:
    """What NVML saw through the measure phase (telemetry.summary): the SM clock and the throttled share."""

    sm_clock_mhz_min: float | None
    sm_clock_mhz_median: float | None
    throttled_share: float | None  # samples with a throttle reason, 0..1


def _gpu_telemetry(reader: _Reader, obj: Mapping[str, Any]) -> GpuTelemetry | None:
    telemetry = reader.table(obj, "telemetry")
    if not telemetry or telemetry.get("available") is not True:
        return None
    summary = reader.table(telemetry, "summary", where="telemetry.summary") or {}
    clock = reader.table(summary, "sm_clock_mhz", where="telemetry.summary.sm_clock_mhz") or {}
    return GpuTelemetry(reader.number(clock, "min", where="telemetry.summary.sm_clock_mhz.min"),
                        reader.number(clock, "median", where="telemetry.summary.sm_clock_mhz.median"),
                        reader.number(summary, "throttled_share", where="telemetry.summary.throttled_share"))


def _summary(reader: _Reader, obj: Mapping[str, Any]) -> Mapping[str, Stat] | None:
    raw = reader.table(obj, "summary")
    if raw is None:
        return None
    stats = {}
    for metric, entry in raw.items():
        if not isinstance(entry, Mapping):
            continue  # not a statistic (the schema's business, not the metrics')
        values = {key: reader.number(entry, key, where=f"summary.{metric}.{key}")
                  for key in ("median", "p90", "p99", "mean", "stdev")}
        n = entry.get("n", 0)
        stats[metric] = Stat(n=n if isinstance(n, int) and not isinstance(n, bool) else 0, **values)
    return MappingProxyType(stats)


def _verdicts(reader: _Reader, obj: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...] | None:
    """The oracle verdicts, each checked to hold a str name and passed: bool, or None for not checked in
    this run. None: no verdicts at all."""
    oracle = reader.table(obj, "oracle")
    if not oracle or oracle.get("verdicts") is None:
        return None
    verdicts = oracle["verdicts"]
    if not isinstance(verdicts, list):
        reader.fail("oracle.verdicts", "expected a list")
    out = []
    for i, verdict in enumerate(verdicts):
        if not isinstance(verdict, Mapping) or not isinstance(verdict.get("name"), str) \
                or "passed" not in verdict or not isinstance(verdict["passed"], (bool, type(None))):
            reader.fail(f"oracle.verdicts[{i}]", "expected {name: str, passed: bool|null, ...}")
        out.append(verdict)
    return tuple(out)


def _passed(obj: Mapping[str, Any], verdicts: tuple[Mapping[str, Any], ...] | None) -> Mapping[str, bool]:
    passed = {v["name"]: v["passed"] for v in verdicts or () if v["passed"] is not None}
    oracle = obj.get("oracle") or {}
    # A run whose oracle gave no per-fix verdict may still say ok or not as a whole.
    if not passed and isinstance(oracle.get("ok"), bool):
        passed["oracle.ok"] = oracle["ok"]
    return MappingProxyType(passed)


def _order_time(reader: _Reader, obj: Mapping[str, Any], target: Mapping[str, Any]) -> float | None:
    # Commit time orders commits; the run's start time is the fallback for nightly runs.
    for where, table, key in (("target.commit_time", target, "commit_time"),
                              ("started_at", obj, "started_at"), ("finished_at", obj, "finished_at")):
        value = table.get(key)
        if value is None:
            continue
        seconds = epoch_seconds(value)
        if seconds is None:
            reader.fail(where, f"expected ISO 8601 or epoch seconds, got {value!r}")
        return seconds
    return None


def epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from a number or an ISO 8601 string ('Z' allowed); None when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
