"""Run manifest (RUN_DIR/manifest.json): which scenarios are pending, running or done, rewritten atomically.

Written after every state change so a killed run leaves an exact record of what finished
(`--resume` builds on this: skip `done`, re-run `running`/`pending`).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.store.atomic import atomic_write_json
from harness.store.result import RESULT_FILE, ResultError

MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1
STATES = ("pending", "running", "interrupted", "done")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    """The run's bookkeeping; `save()` after each change (it is the only writer of the file)."""

    run_dir: Path
    target: str
    argv: list[str]
    scenarios: dict[str, dict[str, Any]] = field(default_factory=dict)
    created_at: str = field(default_factory=now_iso)

    @classmethod
    def start(cls, run_dir: Path, target: str, argv: list[str], names: list[str]) -> Manifest:
        manifest = cls(run_dir=run_dir, target=target, argv=argv,
                       scenarios={name: {"state": "pending", "status": None, "result": None} for name in names})
        manifest.save()
        return manifest

    def mark_running(self, name: str) -> None:
        self.scenarios[name] = {"state": "running", "status": None, "result": None, "started_at": now_iso()}
        self.save()

    def mark_done(self, name: str, status: str) -> None:
        entry = self.scenarios[name]
        entry.update(state="done", status=status, result=f"{name}/{RESULT_FILE}", finished_at=now_iso())
        self.save()

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest_version": MANIFEST_VERSION,
            "created_at": self.created_at,
            "updated_at": now_iso(),
            "owner": {"pid": os.getpid(), "host": socket.gethostname()},
            "target": self.target,
            "argv": self.argv,
            "scenarios": self.scenarios,
        }

    def save(self) -> None:
        atomic_write_json(self.run_dir / MANIFEST_FILE, self.to_json())


def result_paths(target: Path) -> list[Path]:
    """The result files `target` names: itself, <dir>/result.json, or every result of a run directory."""
    if target.is_dir():
        if (target / RESULT_FILE).exists():
            return [target / RESULT_FILE]
        if (target / MANIFEST_FILE).exists():
            return sorted(target.glob(f"*/{RESULT_FILE}"))
        raise ResultError(f"{target}: neither a result.json nor a run directory with {MANIFEST_FILE}")
    return [target]
