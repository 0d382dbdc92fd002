"""Result store: summary statistics, schema validation, and result.json written and loaded whole."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from harness.store.atomic import atomic_write_json
from harness.store.result import RESULT_FILE, Result, ResultError, read_object

SCHEMA_PATH = Path(__file__).parents[1] / "schema" / "result.schema.json"


def summarize(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """median, p90, p99, mean, stdev (sample) and n of the non-None values; all None when n == 0."""
    data = np.array([v for v in values if v is not None], dtype=float)
    n = int(data.size)
    if n == 0:
        return {"median": None, "p90": None, "p99": None, "mean": None, "stdev": None, "n": 0}
    return {
        "median": float(np.median(data)),
        "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)),
        "mean": float(data.mean()),
        "stdev": float(statistics.stdev(data)) if n > 1 else 0.0,
        "n": n,
    }


@cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def validate(result: dict[str, Any], source: str = "result") -> None:
    """Raise ResultError naming the first field that breaks the schema."""
    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(result))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ResultError(f"{source}: {where}: {error.message}")


def write_result(scenario_dir: Path, result: dict[str, Any]) -> Path:
    """Validate then atomically write `scenario_dir/result.json`."""
    result = _finite(result)
    path = scenario_dir / RESULT_FILE
    validate(result, source=str(path))
    # What the store writes, every reader (gate, asv) can read: the typed reader checks it before the write.
    Result.from_json(result, str(path))
    atomic_write_json(path, result)
    return path


def load_result(path: Path) -> dict[str, Any]:
    """Read (older schema versions upgraded in memory) and validate a result.json; problems are one ResultError line."""
    data = read_object(path)
    validate(data, source=str(path))
    return data


def _finite(value: Any) -> Any:
    # JSON has no NaN/inf; a non-finite timing is a missing one.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
