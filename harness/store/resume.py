"""`harness run --resume RUN_DIR`: what an earlier run finished, what to re-run, and what is corrupt.

A scenario is kept when the manifest says `done` and its result.json loads and validates. Every
other scenario (pending, running when the harness died, interrupted, or done with a missing or
corrupt result) is re-run; whatever its earlier attempt left is moved, never deleted, to
RUN_DIR/.attempts/<scenario>.<n>/ so the new attempt starts from an empty directory.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from harness.errors import HarnessError
from harness.store.manifest import MANIFEST_FILE, Manifest
from harness.store.result import RESULT_FILE, ResultError, read_json_object
from harness.store.results import load_result

ATTEMPTS_DIR = ".attempts"


class ResumeError(HarnessError, ValueError):
    """RUN_DIR cannot be resumed; the message names the file and the problem."""


@dataclass(frozen=True)
class ResumePlan:
    """The manifest to continue, the results kept (scenario -> result) and what the plan did."""

    manifest: Manifest
    kept: tuple[tuple[str, dict[str, Any]], ...]
    rerun: tuple[str, ...]
    notes: tuple[str, ...]

    def kept_result(self, name: str) -> dict[str, Any] | None:
        return dict(self.kept).get(name)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/manifest.json, checked for the keys resume relies on."""
    path = run_dir / MANIFEST_FILE
    if not run_dir.is_dir():
        raise ResumeError(f"--resume: {run_dir}: no such run directory")
    if not path.is_file():
        raise ResumeError(f"--resume: {path}: missing; {run_dir} is not a harness run directory")
    data = read_json_object(path, ResumeError, what="manifest", prefix="--resume: ")
    problems = [
        (isinstance(data.get("argv"), list) and all(isinstance(a, str) for a in data["argv"]),
         "argv: expected a list of strings"),
        (isinstance(data.get("scenarios"), dict), "scenarios: expected an object"),
        (isinstance(data.get("target"), str), "target: expected a string"),
    ]
    for ok, problem in problems:
        if not ok:
            raise ResumeError(f"--resume: {path}: {problem}")
    if data["argv"][:2] != ["harness", "run"]:
        raise ResumeError(f"--resume: {path}: written by {' '.join(data['argv'][:2])!r}, not `harness run`")
    return data


def resumed_argv(run_dir: Path, current: list[str]) -> list[str]:
    """The earlier run's `harness run` arguments (its --out dropped), then `current` (which may override)."""
    stored = read_manifest(run_dir)["argv"][2:]
    kept: list[str] = []
    skip_next = False
    for arg in stored:
        if skip_next:
            skip_next = False
        elif arg == "--out":
            skip_next = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return [*kept, *current]


def plan_resume(run_dir: Path, names: list[str]) -> ResumePlan:
    """Validate earlier results and decide, per scenario, keep or re-run; moves re-run leftovers aside."""
    data = read_manifest(run_dir)
    _refuse_live_owner(run_dir, data.get("owner"))
    entries: dict[str, dict[str, Any]] = {
        name: entry for name, entry in data["scenarios"].items() if isinstance(entry, dict)
    }
    kept: list[tuple[str, dict[str, Any]]] = []
    rerun: list[str] = []
    notes: list[str] = []
    for name in names:
        entry = entries.get(name, {})
        state = entry.get("state", "pending")
        if state == "done":
            try:
                result = load_result(run_dir / name / RESULT_FILE)
                if result.get("scenario") != name:
                    raise ResultError(f"{run_dir / name / RESULT_FILE}: holds scenario {result.get('scenario')!r}")
                kept.append((name, result))
                notes.append(f"{name}: done ({result['status']}), kept")
                continue
            except ResultError as exc:
                notes.append(f"{name}: earlier result is corrupt: {exc}")
        elif state in ("running", "interrupted"):
            notes.append(f"{name}: was {state} when the earlier run stopped; re-running")
        moved = _set_aside(run_dir, name)
        if moved is not None:
            notes.append(f"{name}: earlier attempt kept in {moved}")
        entries[name] = {"state": "pending", "status": None, "result": None}
        rerun.append(name)
    manifest = Manifest(run_dir=run_dir, target=data["target"], argv=data["argv"], scenarios=entries,
                        created_at=data.get("created_at") or "")
    return ResumePlan(manifest=manifest, kept=tuple(kept), rerun=tuple(rerun), notes=tuple(notes))


def _refuse_live_owner(run_dir: Path, owner: Any) -> None:
    """Two harness processes must never write one run directory (the GPU lock may differ between them)."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() or owner.get("pid") == os.getpid():
        return
    try:
        process = psutil.Process(int(owner["pid"]))
        # A reused pid belongs to some other program; only a live harness counts.
        live = process.status() != psutil.STATUS_ZOMBIE and "harness" in " ".join(process.cmdline())
    except (psutil.Error, KeyError, TypeError, ValueError):
        return
    if live:
        raise ResumeError(f"--resume: {run_dir} is still being run by harness pid {owner['pid']}")


def _set_aside(run_dir: Path, name: str) -> Path | None:
    """Move RUN_DIR/<name>/ to RUN_DIR/.attempts/<name>.<n>/ (first free n); None when there is nothing."""
    source = run_dir / name
    if not source.exists():
        return None
    attempts = run_dir / ATTEMPTS_DIR
    attempts.mkdir(exist_ok=True)
    n = 1
    while (attempts / f"{name}.{n}").exists():
        n += 1
    target = attempts / f"{name}.{n}"
    source.rename(target)
    return target
