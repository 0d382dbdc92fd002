"""Result store: summary statistics, schema validation, atomic JSON writes, loading with clear errors."""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
import statistics
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np

from harness.store.testhook import hold

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).parents[1] / "schema" / "result.schema.json"
RESULT_FILE = "result.json"
LOG_FILE = "server.log"
RECORDS_DIR = "records"
STATUSES = ("ok", "skipped", "failed")


class ResultError(ValueError):
    """A result file that cannot be read or does not match the schema; the message names the file."""


class ResultWriteError(OSError):
    """A result or manifest could not be written (disk full, file size limit, ...); the earlier file is intact."""


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


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON to a temp file in the same directory, fsync it, rename over `path`, fsync the dir.

    A crash or a full disk leaves either the old file or the new one, never a torn file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=_jsonable) + "\n"
    tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any file the user writes (mkstemp: 0600).
    try:
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        hold(f"write:{path.name}")
        os.replace(tmp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise _write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def _write_error(path: Path, exc: OSError) -> ResultWriteError:
    why = {errno.ENOSPC: "disk full (ENOSPC)", errno.EDQUOT: "disk quota exceeded (EDQUOT)",
           errno.EFBIG: "file size limit exceeded (EFBIG)"}.get(exc.errno or 0, exc.strerror or str(exc))
    kept = "the earlier file is kept unchanged" if path.exists() else "nothing was written"
    error = ResultWriteError(f"{path}: cannot write: {why}; {kept}")
    error.errno = exc.errno
    return error


def write_result(scenario_dir: Path, result: dict[str, Any]) -> Path:
    """Validate then atomically write `scenario_dir/result.json`."""
    result = _finite(result)
    validate(result, source=str(scenario_dir / RESULT_FILE))
    path = scenario_dir / RESULT_FILE
    atomic_write_json(path, result)
    return path


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


def load_result(path: Path) -> dict[str, Any]:
    """Read and validate a result.json; any problem is one ResultError line naming the file."""
    data = read_json_object(path, ResultError, what="result file")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ResultError(f"{path}: schema_version {data.get('schema_version')!r}, this harness reads {SCHEMA_VERSION}")
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


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot store {type(value).__name__} in a result")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
