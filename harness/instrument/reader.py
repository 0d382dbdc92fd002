"""Reads a records directory back; every malformed or truncated line becomes an error naming file and line."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_impl.contract.records import COMMON_FIELDS, FIELDS, KINDS, SCHEMA_VERSION


@dataclass(frozen=True)
class Record:
    """One instrumentation record; `fields` holds the kind's own fields, `source` is `file:line`."""

    kind: str
    pid: int
    rank: int
    t: float
    fields: dict[str, Any]
    source: str

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA_VERSION, "kind": self.kind, "pid": self.pid, "rank": self.rank,
                "t": self.t, **self.fields, "source": self.source}


@dataclass(frozen=True)
class LoadedRecords:
    """All records of a run directory (file order, then line order) and the problems found reading it."""

    records: tuple[Record, ...]
    errors: tuple[str, ...]

    def of_kind(self, kind: str) -> tuple[Record, ...]:
        if kind not in KINDS:
            raise ValueError(f"unknown instrumentation record kind {kind!r}")
        return tuple(r for r in self.records if r.kind == kind)

    def to_json(self) -> dict[str, Any]:
        return {"records": [r.to_json() for r in self.records], "errors": list(self.errors)}


def load_records(records_dir: Path) -> LoadedRecords:
    """Load every `*.jsonl` file under `records_dir`; problems are reported, never dropped."""
    records_dir = Path(records_dir)
    if not records_dir.is_dir():
        return LoadedRecords((), (f"{records_dir}: records directory does not exist",))
    records: list[Record] = []
    errors: list[str] = []
    for path in sorted(records_dir.glob("*.jsonl")):
        _load_file(path, records, errors)
    return LoadedRecords(tuple(records), tuple(errors))


def _load_file(path: Path, records: list[Record], errors: list[str]) -> None:
    try:
        data = path.read_bytes()
    except OSError as exc:
        errors.append(f"{path}: unreadable ({exc.strerror or exc})")
        return
    lines = data.split(b"\n")
    ends_with_newline = lines[-1] == b""
    if ends_with_newline:
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        where = f"{path}:{number}"
        last_unterminated = number == len(lines) and not ends_with_newline
        if not raw.strip():
            errors.append(f"{where}: empty line")
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            what = "truncated record (no newline at end of file)" if last_unterminated else "malformed JSON"
            errors.append(f"{where}: {what}: {exc}")
            continue
        problem = _validate(obj)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if last_unterminated:
            # The writer ends every record with a newline, so this one may have been cut short.
            errors.append(f"{where}: truncated record (no newline at end of file); kept")
        records.append(_record(obj, where))


def _validate(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return f"record is not a JSON object (got {type(obj).__name__})"
    missing = [name for name in COMMON_FIELDS if name not in obj]
    if missing:
        return f"record lacks field(s) {', '.join(missing)}"
    if obj["schema"] != SCHEMA_VERSION:
        return f"schema: expected {SCHEMA_VERSION}, got {obj['schema']!r}"
    kind = obj["kind"]
    if kind not in KINDS:
        return f"kind: unknown record kind {kind!r}"
    missing = [name for name in FIELDS[kind] if name not in obj]
    if missing:
        return f"{kind} record lacks field(s) {', '.join(missing)}"
    for name, typ in (("pid", int), ("rank", int)):
        if not isinstance(obj[name], typ) or isinstance(obj[name], bool):
            return f"{name}: expected an integer, got {obj[name]!r}"
    if not isinstance(obj["t"], (int, float)):
        return f"t: expected a number, got {obj['t']!r}"
    return None


def _record(obj: dict[str, Any], source: str) -> Record:
    fields = {k: v for k, v in obj.items() if k not in COMMON_FIELDS}
    return Record(kind=obj["kind"], pid=obj["pid"], rank=obj["rank"], t=float(obj["t"]), fields=fields,
                  source=source)
