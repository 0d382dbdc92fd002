"""Helpers of the fault-catalog tests: scenario files driving the fake server, harness subprocesses, orphan checks."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from fake_server_helpers import FAKE_LAUNCHER

from harness.scenarios.catalog import MODEL_DIR
from harness.serve.lock import LOCK_DIR_ENV
from harness.store.manifest import MANIFEST_FILE
from harness.store.result import RESULT_FILE
from harness.store.results import load_result

REPO_ROOT = Path(__file__).resolve().parents[3]
# Every process a test starts inherits this variable; whatever still carries it afterwards is an orphan.
MARK_ENV = "RELIABILITY_TEST_MARK"
LAUNCHER = shlex.join(FAKE_LAUNCHER)


def write_scenario(directory: Path, name: str, fake: dict[str, str | int | float | bool] | None = None,
                   output_len: int = 4, requests: int = 2, warmups: int = 0,
                   model: Path = MODEL_DIR / "tiny-qwen3-moe") -> Path:
    """A scenario TOML whose [server_args] become the fake server's `--fake-*` flags."""
    args = "\n".join(f"fake_{key} = {_toml(value)}" for key, value in (fake or {}).items())
    path = directory / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndescription = "reliability test: {name}"\nmodel = "{model}"\ntargets = ["reference"]\n'
        f"[server_args]\n{args}\n[workload]\ninput_len = 8\noutput_len = {output_len}\n"
        f"warmups = {warmups}\nrequests = {requests}\n[hardware.reference]\ngpus = 0\n",
        encoding="utf-8",
    )
    return path


def _toml(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')


def reference_scenario(directory: Path, name: str, tp_size: int = 2, output_len: int = 32,
                       requests: int = 200) -> Path:
    """A scenario for the real reference engine: `tp_size` rank processes under gloo, tiny model."""
    path = directory / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\ndescription = "reliability test: {name}"\nmodel = "tiny-qwen3-moe"\n'
        f'targets = ["reference"]\n[server_args]\ntp_size = {tp_size}\nep_size = {tp_size}\n'
        f"cuda_graph_max_bs = 2\nmax_running_requests = 2\ndisable_radix_cache = true\n"
        f"[workload]\ninput_len = 8\noutput_len = {output_len}\nwarmups = 0\nrequests = {requests}\n"
        f"[hardware.reference]\ngpus = 0\n",
        encoding="utf-8",
    )
    return path


def is_watchdog(process: psutil.Process) -> bool:
    return any(part.endswith("watchdog.py") for part in process.cmdline())


def server_tree(harness_pid: int) -> tuple[int, int, list[int]]:
    """(watchdog pid, server leader pid = its pgid, every server process) of a running harness."""
    children = psutil.Process(harness_pid).children()
    watchdog = next(c for c in children if is_watchdog(c))
    leader = next(c for c in children if not is_watchdog(c))
    return watchdog.pid, leader.pid, [leader.pid, *(c.pid for c in leader.children(recursive=True))]


def alive(pids: list[int]) -> list[int]:
    """The pids of `pids` still running (zombies count as gone: they hold no memory)."""
    left = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            continue
    return left


def survivors(mark: str) -> list[int]:
    """Live (non-zombie) processes that inherited `MARK_ENV=mark`, this test process excluded."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        try:
            if process.environ().get(MARK_ENV) == mark and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return found


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `predicate` until true; fail the test naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def tree_digest(run_dir: Path) -> dict[str, str]:
    """sha256 of every file under run_dir: proves an earlier run was not touched."""
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


def assert_results_loadable(run_dir: Path, names: list[str]) -> None:
    for name in names:
        assert load_result(run_dir / name / RESULT_FILE)["scenario"] == name


def manifest_state(run_dir: Path, name: str) -> str | None:
    import json

    try:
        return json.loads((run_dir / MANIFEST_FILE).read_text())["scenarios"][name]["state"]
    except (OSError, ValueError, KeyError):
        return None


class HarnessCli:
    """Starts `python -m harness run ...` as a real subprocess in its own session, marked and locked privately."""

    def __init__(self, mark: str, lock_dir: Path) -> None:
        self.env = {**os.environ, MARK_ENV: mark, LOCK_DIR_ENV: str(lock_dir), "COLUMNS": "200"}
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str, preexec_fn: Callable[[], None] | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *args], cwd=REPO_ROOT,
                                env={**self.env, **(env or {})},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=preexec_fn)
        self.started.append(proc)
        return proc

    def run(self, *args: str, timeout_s: float = 60.0, preexec_fn: Callable[[], None] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args, preexec_fn=preexec_fn, env=env)
        out, err = proc.communicate(timeout=timeout_s)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def close(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def fast_args(*extra: str) -> list[str]:
    """Options that keep a harness run against the fake server short."""
    return ["--launcher", LAUNCHER, "--startup-timeout", "10", "--token-timeout", "2", *extra]
