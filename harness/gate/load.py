"""Read run directories (RUN_DIR/<scenario>/result.json) into what the gate compares.

A side (base or head) is either one run directory or a directory of run directories, one per
interleaved round (SIDE/round-00/<scenario>/result.json ...). Results of the paired design carry
`pairing` and samples[].pair; their rounds (server-start pairs) may hold different scenarios, since
the gate starts more server pairs only for a scenario it cannot decide yet. Every error names the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.gate.errors import GateInputError
from harness.store.result import ResultError, read_json_object
from harness.store.results import validate

RESULT_FILE = "result.json"
OOM_OUTCOME = "oom_during_cuda_graph_capture"
STARTUP_OUTCOMES = frozenset({"ok", OOM_OUTCOME, "crash", "timeout"})
STATUSES = frozenset({"ok", "skipped", "failed"})
ORDERS = frozenset({"abba", "abab"})


@dataclass(frozen=True)
class Pairing:
    """A paired-design result: which side, which server-start pair, and the request order."""

    side: str
    start_pair: int
    order: str


@dataclass(frozen=True, eq=False)
class ScenarioRun:
    """One scenario's result.json, reduced to what the gate and the history compare."""

    path: Path
    scenario: str
    status: str
    skip_reason: str | None
    startup_outcome: str | None
    failure_stage: str | None  # failure.stage: startup|request|shutdown|instrumentation|harness
    samples: dict[str, np.ndarray] = field(repr=False)  # metric name -> per-request values
    workspace_bytes: int | None
    capture_oom: bool
    oracle_passed: dict[str, bool]
    commit: str | None
    order_time: float | None  # seconds since the epoch; orders nightly runs (see docs/gate.md)
    pairing: Pairing | None = None
    pair_ids: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # metric -> samples[].pair

    def values(self, metric: str) -> np.ndarray:
        return self.samples.get(metric, np.empty(0))

    def paired_values(self, metric: str) -> dict[int, float]:
        """Pair index -> value (paired results only)."""
        ids = self.pair_ids.get(metric, np.empty(0, dtype=int))
        return dict(zip((int(i) for i in ids), (float(v) for v in self.values(metric)), strict=True))


@dataclass(frozen=True)
class Side:
    """All rounds of one side: scenario -> one ScenarioRun per round, in round order."""

    root: Path
    rounds: tuple[Path, ...]
    runs: dict[str, tuple[ScenarioRun, ...]]


def load_side(root: Path, metrics: tuple[str, ...]) -> Side:
    """Load a run directory, or a directory of per-round run directories."""
    if not root.is_dir():
        raise GateInputError(f"{root}: results directory not found")
    rounds = _round_dirs(root)
    per_round = [_load_run_dir(d, metrics) for d in rounds]
    names = set(per_round[0])
    paired = all(run.pairing is not None for runs in per_round for run in runs.values())
    for directory, runs in zip(rounds[1:], per_round[1:], strict=True):
        if set(runs) != names and not paired:
            diff = sorted(names.symmetric_difference(runs))
            raise GateInputError(f"{directory}: scenarios differ from {rounds[0]} (in one only: {', '.join(diff)})")
        names |= set(runs)
    merged = {name: tuple(runs[name] for runs in per_round if name in runs) for name in sorted(names)}
    return Side(root=root, rounds=tuple(rounds), runs=merged)


def _round_dirs(root: Path) -> list[Path]:
    if any(root.glob(f"*/{RESULT_FILE}")):
        return [root]
    rounds = sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob(f"*/{RESULT_FILE}")))
    if not rounds:
        raise GateInputError(f"{root}: no <scenario>/{RESULT_FILE} found (nor in round subdirectories)")
    return rounds


def _load_run_dir(run_dir: Path, metrics: tuple[str, ...]) -> dict[str, ScenarioRun]:
    runs: dict[str, ScenarioRun] = {}
    for path in sorted(run_dir.glob(f"*/{RESULT_FILE}")):
        run = load_result(path, metrics)
        if run.scenario in runs:
            raise GateInputError(f"{path}: scenario {run.scenario!r} also in {runs[run.scenario].path}")
        runs[run.scenario] = run
    return runs


def load_result(path: Path, metrics: tuple[str, ...]) -> ScenarioRun:
    """Parse one result.json; raises GateInputError naming the file and the field."""
    obj = read_json_object(path, GateInputError, what="result file")
    scenario = _str(obj, "scenario", path, required=True)
    status = _str(obj, "status", path, required=True)
    if status not in STATUSES:
        raise GateInputError(f"{path}: status: expected one of {sorted(STATUSES)}, got {status!r}")
    startup = _table(obj, "startup", path)
    outcome = _str(startup, "outcome", path, where="startup.outcome") if startup else None
    if outcome is not None and outcome not in STARTUP_OUTCOMES:
        raise GateInputError(f"{path}: startup.outcome: expected one of {sorted(STARTUP_OUTCOMES)}, got {outcome!r}")
    pairing = _pairing(obj, path)
    samples, pair_ids = _samples(obj, metrics, path, paired=pairing is not None)
    if status == "ok" and outcome in (None, "ok") and not any(len(v) for v in samples.values()):
        raise GateInputError(f"{path}: status ok but samples[] holds no measured request")
    records = _records(obj, path)
    target = _table(obj, "target", path) or {}
    failure = _table(obj, "failure", path) or {}
    capture = (startup or {}).get("capture") or {}
    run = ScenarioRun(
        path=path,
        scenario=scenario,
        status=status,
        skip_reason=_str(obj, "skip_reason", path),
        startup_outcome=outcome,
        failure_stage=_str(failure, "stage", path, where="failure.stage"),
        samples=samples,
        workspace_bytes=_workspace_bytes(records, path),
        capture_oom=outcome == OOM_OUTCOME or capture.get("oom") is True
        or any(r.get("kind") == "capture_oom" for r in records),
        oracle_passed=_oracle(obj, path),
        commit=_str(target, "commit", path, where="target.commit"),
        order_time=_order_time(obj, target, path),
        pairing=pairing,
        pair_ids=pair_ids,
    )
    # The gate's own checks above give the precise messages; the schema catches everything else.
    try:
        validate(obj, source=str(path))
    except ResultError as exc:
        raise GateInputError(str(exc)) from exc
    return run


def _samples(obj: dict[str, Any], metrics: tuple[str, ...], path: Path,
             paired: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per metric: the values of the measured requests, and (paired results) each one's pair index."""
    raw = obj.get("samples", [])
    if not isinstance(raw, list):
        raise GateInputError(f"{path}: samples: expected a list")
    columns: dict[str, list[float]] = {m: [] for m in metrics}
    pairs: dict[str, list[int]] = {m: [] for m in metrics}
    seen: set[int] = set()
    for i, sample in enumerate(raw):
        if not isinstance(sample, dict):
            raise GateInputError(f"{path}: samples[{i}]: expected an object")
        pair = sample.get("pair")
        if paired or pair is not None:
            if isinstance(pair, bool) or not isinstance(pair, int) or pair < 0 or pair in seen:
                what = "a pair index not used before" if pair in seen else "an integer >= 0"
                raise GateInputError(f"{path}: samples[{i}].pair: expected {what} (pairing is set), got {pair!r}")
            seen.add(pair)
        # Failed requests carry no measurement the gate may use (warm-ups are not stored at all).
        if sample.get("ok") is False or sample.get("error_kind") or sample.get("warmup"):
            continue
        for metric in metrics:
            value = sample.get(metric)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise GateInputError(f"{path}: samples[{i}].{metric}: expected a finite number >= 0, got {value!r}")
            columns[metric].append(float(value))
            if paired:
                pairs[metric].append(int(pair))
    values = {m: np.asarray(v, dtype=float) for m, v in columns.items()}
    ids = {m: np.asarray(v, dtype=int) for m, v in pairs.items()} if paired else {}
    return values, ids


def _pairing(obj: dict[str, Any], path: Path) -> Pairing | None:
    raw = _table(obj, "pairing", path)
    if raw is None:
        return None
    if raw.get("design") != "paired":
        raise GateInputError(f"{path}: pairing.design: expected 'paired', got {raw.get('design')!r}")
    side, start, order = raw.get("side"), raw.get("start_pair"), raw.get("order")
    if side not in ("base", "head"):
        raise GateInputError(f"{path}: pairing.side: expected 'base' or 'head', got {side!r}")
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise GateInputError(f"{path}: pairing.start_pair: expected an integer >= 0, got {start!r}")
    if order not in ORDERS:
        raise GateInputError(f"{path}: pairing.order: expected one of {sorted(ORDERS)}, got {order!r}")
    return Pairing(side=side, start_pair=start, order=order)


def _records(obj: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    inst = _table(obj, "instrumentation", path) or {}
    records = inst.get("records", [])
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise GateInputError(f"{path}: instrumentation.records: expected a list of objects")
    return records


def _workspace_bytes(records: list[dict[str, Any]], path: Path) -> int | None:
    sizes = []
    for record in records:
        if record.get("kind") != "dispatcher_init":
            continue
        size = record.get("workspace_size_per_rank")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise GateInputError(f"{path}: dispatcher_init.workspace_size_per_rank: expected bytes, got {size!r}")
        sizes.append(size)
    # The largest rank's workspace is what can OOM, so that is the number compared.
    return max(sizes) if sizes else None


def _oracle(obj: dict[str, Any], path: Path) -> dict[str, bool]:
    oracle = _table(obj, "oracle", path)
    if not oracle:
        return {}
    verdicts = oracle.get("verdicts") or []
    if not isinstance(verdicts, list):
        raise GateInputError(f"{path}: oracle.verdicts: expected a list")
    passed: dict[str, bool] = {}
    for i, verdict in enumerate(verdicts):
        if not isinstance(verdict, dict) or not isinstance(verdict.get("name"), str) \
                or "passed" not in verdict or not isinstance(verdict["passed"], (bool, type(None))):
            raise GateInputError(f"{path}: oracle.verdicts[{i}]: expected {{name: str, passed: bool|null, ...}}")
        if verdict["passed"] is not None:  # null: not checked in this run
            passed[verdict["name"]] = verdict["passed"]
    if not passed and isinstance(oracle.get("ok"), bool):
        passed["oracle.ok"] = oracle["ok"]
    return passed


def _order_time(obj: dict[str, Any], target: dict[str, Any], path: Path) -> float | None:
    # Commit time orders commits; the run's start time is the fallback for nightly runs.
    for where, table, key in (("target.commit_time", target, "commit_time"),
                              ("started_at", obj, "started_at"), ("finished_at", obj, "finished_at")):
        value = table.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError as exc:
                raise GateInputError(f"{path}: {where}: expected ISO 8601 or epoch seconds, got {value!r}") from exc
        raise GateInputError(f"{path}: {where}: expected ISO 8601 or epoch seconds, got {value!r}")
    return None


def _table(obj: dict[str, Any], key: str, path: Path) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise GateInputError(f"{path}: {key}: expected an object")
    return value


def _str(obj: dict[str, Any], key: str, path: Path, *, required: bool = False, where: str | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise GateInputError(f"{path}: {where or key}: missing")
        return None
    if not isinstance(value, str):
        raise GateInputError(f"{path}: {where or key}: expected a string, got {value!r}")
    return value
