"""The nightly's comparisons with the control build: RUN_DIR/control/<scenario>/control.json and its verdict.json.

`harness nightly` writes one such directory per scenario and night (the gate's --out plus control.json,
which names the commit under test); `harness history` reads them back here as ratio-to-control points,
one per scenario, metric and commit. Every error names the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.gate.errors import GateInputError
from harness.store.result import epoch_seconds, read_json_object

CONTROL_DIR = "control"          # RUN_DIR/control/<scenario>/ is the gate's --out for that scenario
CONTROL_FILE = "control.json"    # what was compared, at which commit; marks the directory as a comparison
VERDICT_FILE = "verdict.json"    # the gate's own output (harness.gate.report)
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Ratio:
    """The gate's head/base estimate of one metric: the commit under test over the control build."""

    metric: str
    ratio: float
    ci_low: float
    ci_high: float
    verdict: str


@dataclass(frozen=True)
class Comparison:
    """One scenario's comparison with the control at one commit."""

    path: Path  # control.json
    scenario: str
    commit: str
    order_time: float | None  # the commit's time, else when the comparison was recorded
    ratios: tuple[Ratio, ...]  # metrics with an estimate; none when the gate produced no verdict

    def ratio(self, metric: str) -> Ratio | None:
        return next((r for r in self.ratios if r.metric == metric), None)


def comparison_dirs(results: Path) -> list[Path]:
    """Every directory under `results` that holds a control.json."""
    return sorted(p.parent for p in results.glob(f"**/{CONTROL_FILE}"))


def load_comparison(directory: Path, metrics: tuple[str, ...]) -> Comparison:
    """control.json and (when the gate wrote one) verdict.json of one comparison directory."""
    path = directory / CONTROL_FILE
    obj = read_json_object(path, GateInputError, what="control comparison file")
    if obj.get("schema_version") != SCHEMA_VERSION:
        raise GateInputError(f"{path}: schema_version: expected {SCHEMA_VERSION}, got {obj.get('schema_version')!r}")
    scenario, commit = _text(obj, "scenario", path), _text(obj, "commit", path)
    verdict_name = obj.get("verdict")
    ratios: tuple[Ratio, ...] = ()
    if verdict_name is not None:
        if not isinstance(verdict_name, str):
            raise GateInputError(f"{path}: verdict: expected a file name or null, got {verdict_name!r}")
        ratios = _ratios(directory / verdict_name, scenario, metrics)
    order_time = None
    for key in ("commit_time", "recorded_at"):
        if obj.get(key) is not None:
            order_time = _time(obj[key], path, key)
            break
    return Comparison(path=path, scenario=scenario, commit=commit, order_time=order_time, ratios=ratios)


def _ratios(path: Path, scenario: str, metrics: tuple[str, ...]) -> tuple[Ratio, ...]:
    verdict = read_json_object(path, GateInputError, what="gate verdict file")
    rows = verdict.get("rows")
    if not isinstance(rows, list):
        raise GateInputError(f"{path}: rows: expected a list")
    found = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise GateInputError(f"{path}: rows[{i}]: expected an object")
        if row.get("scenario") != scenario or row.get("metric") not in metrics or row.get("estimate") is None:
            continue  # another scenario, an exact metric, or no estimate (a side measured nothing)
        est = row["estimate"]
        values = [est.get(k) if isinstance(est, dict) else None for k in ("ratio", "ci_low", "ci_high")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
                   for v in values):
            raise GateInputError(f"{path}: rows[{i}].estimate: expected positive ratio, ci_low and ci_high, "
                                 f"got {est!r}")
        found.append(Ratio(metric=row["metric"], ratio=float(values[0]), ci_low=float(values[1]),
                           ci_high=float(values[2]), verdict=str(row.get("verdict"))))
    return tuple(found)


def _text(obj: dict[str, Any], key: str, path: Path) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise GateInputError(f"{path}: {key}: expected a non-empty string, got {value!r}")
    return value


def _time(value: Any, path: Path, key: str) -> float:
    seconds = epoch_seconds(value)
    if seconds is None:
        raise GateInputError(f"{path}: {key}: expected ISO 8601 or epoch seconds, got {value!r}")
    return seconds
