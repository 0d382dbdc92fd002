"""Run `harness run` in a subprocess the way a user would, and log the exact command as evidence."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class HarnessRun:
    """One `harness run` invocation: exit code, console report, and the scenario's result.json."""

    command: tuple[str, ...]
    returncode: int
    elapsed_s: float
    console: str
    run_dir: Path
    result: dict[str, Any] | None

    @property
    def scenario_dir(self) -> Path:
        return self.run_dir / (self.result or {}).get("scenario", "")


def run_harness(scenario_toml: Path, target: str, run_dir: Path, startup_timeout_s: float, limit_s: float,
                commands_log: Path) -> HarnessRun:
    """`python -m harness run TOML --target T --out DIR`; the console output is kept as the report."""
    command = (sys.executable, "-m", "harness", "run", str(scenario_toml), "--target", target,
               "--out", str(run_dir), "--startup-timeout", f"{startup_timeout_s:g}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    started = time.monotonic()
    with subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, start_new_session=True) as proc:
        try:
            console, _ = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            # SIGTERM lets the harness stop its server group and write what it has; then force.
            os.killpg(proc.pid, 15)
            try:
                console, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                console, _ = proc.communicate()
            console += f"\n[gpu suite] harness run exceeded {limit_s:.0f} s and was stopped\n"
    elapsed = time.monotonic() - started
    results = sorted(run_dir.glob("*/result.json"))
    result = json.loads(results[0].read_text()) if results else None
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "harness-console.txt").write_text(console, encoding="utf-8")
    with commands_log.open("a", encoding="utf-8") as log:
        log.write(f"# rc={proc.returncode} elapsed={elapsed:.1f}s\n{shlex.join(_relative(command))}\n")
    return HarnessRun(command, proc.returncode, elapsed, console, run_dir, result)


def _relative(command: tuple[str, ...]) -> list[str]:
    """Paths inside the checkout written relative to it, so commands.txt reads the same anywhere."""
    out = []
    for part in command:
        path = Path(part)
        if part == sys.executable:
            out.append("python3")
        elif path.is_absolute() and REPO_ROOT in path.parents:
            out.append(str(path.relative_to(REPO_ROOT)))
        else:
            out.append(part)
    return out
