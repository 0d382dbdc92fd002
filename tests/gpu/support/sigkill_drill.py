"""Fault row 10 on a GPU: SIGKILL `harness run` mid-run; within 10 s no server process and no GPU memory is left.

    python3 -m tests.gpu.support.sigkill_drill OUT_DIR [--when stream|startup] [--target sglang|reference]
                                                       [--resume] [--startup-timeout S]

`stream` kills the harness while a request is in flight (sglang's own `sglang:num_running_reqs`),
`startup` once the server holds GPU memory (on the CPU: once it has two processes) but is not yet
healthy. `--target reference` rehearses the drill on the CPU (the reference engine with two ranks).
OUT_DIR gets drill.json (verdict and timings), timeline.txt, processes-before.txt/-after.txt,
gpu-before.txt/-after.txt, harness-console.txt, the scenario file, and run/ (manifest.json and the
scenario's server.log, with the watchdog's lines). Exit 0 when the drill passed, 1 when it did not,
3 when the GPU already held processes before it started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from harness.serve.server import free_port
from harness.serve.watchdog import SERVER_TOKEN_ENV, ProcInfo, carries_token, process_table
from tests.gpu.support.scenarios import BASELINE, GpuScenario

REPO_ROOT = Path(__file__).resolve().parents[3]
BUDGET_S = 10.0
OBSERVE_S = 30.0  # keep watching past the budget so a late release is measured, not just failed
POLL_S = 0.1
NAME = "sigkill-drill"


def drill_scenario(target: str) -> GpuScenario:
    """The GPU suite's sglang baseline (or two reference ranks on the CPU), with requests that outlast the drill."""
    if target == "sglang":
        return replace(BASELINE, name=NAME, targets=("sglang",), warmups=0, requests=100_000, expect=())
    return GpuScenario(name=NAME, description="SIGKILL drill rehearsal: two reference ranks on the CPU",
                       targets=("reference",), gpus=0, input_len=8, output_len=32, warmups=0, requests=100_000,
                       server_args=(("tp_size", 2), ("ep_size", 2), ("cuda_graph_max_bs", 2),
                                    ("max_running_requests", 2), ("disable_radix_cache", True)))


def gpu_pids() -> list[int] | None:
    """`nvidia-smi --query-compute-apps=pid --format=csv,noheader` as pids; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30, check=False)
    return [int(x) for x in done.stdout.split() if x.strip().isdigit()]


def gpu_snapshot() -> str:
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found: no GPU on this machine\n"
    query = ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv"]
    done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def descendants(root: int, table: dict[int, ProcInfo]) -> list[ProcInfo]:
    children: dict[int, list[ProcInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    found, stack = [], list(children.get(root, ()))
    while stack:
        info = stack.pop()
        found.append(info)
        stack.extend(children.get(info.pid, ()))
    return found


class Tree:
    """The harness's watchdog and server processes, identified by pid and start time (pid reuse)."""

    def __init__(self, harness_pid: int) -> None:
        table = process_table()
        below = descendants(harness_pid, table)
        self.watchdog = next((i for i in below if i.ppid == harness_pid and _is_watchdog(i.pid)), None)
        server = [i for i in below if self.watchdog is None or i.pid != self.watchdog.pid]
        leader = next((i for i in server if i.ppid == harness_pid), None)
        self.leader = leader.pid if leader else None
        self.token = _token_of(self.leader) if self.leader else None
        if self.token:
            server += [i for i in table.values() if i not in server and carries_token(i.pid, self.token)]
        self.server = {i.pid: i.start for i in server}
        self.cmdlines = {i.pid: cmdline(i.pid) for i in server}

    def alive(self) -> list[int]:
        """Server processes still running: first seen ones, and any carrier of the server's token."""
        table = process_table()
        left = {pid for pid, start in self.server.items()
                if pid in table and table[pid].start == start and not table[pid].zombie}
        if self.token:
            left |= {i.pid for i in table.values() if not i.zombie and carries_token(i.pid, self.token)}
        return sorted(left)

    def watchdog_alive(self) -> bool:
        if self.watchdog is None:
            return False
        info = process_table().get(self.watchdog.pid)
        return info is not None and info.start == self.watchdog.start and not info.zombie

    def describe(self) -> str:
        table = process_table()
        rows = ["pid ppid pgid sid role cmdline"]
        for pid in sorted({*self.server, *([self.watchdog.pid] if self.watchdog else [])}):
            info = table.get(pid)
            if info is None or info.zombie:
                continue
            role = "watchdog" if self.watchdog and pid == self.watchdog.pid else "server"
            rows.append(f"{pid} {info.ppid} {info.pgrp} {info.session} {role} {cmdline(pid)}")
        return "\n".join(rows) + "\n"


def _is_watchdog(pid: int) -> bool:
    return any(part.endswith("watchdog.py") for part in cmdline(pid).split())


def _token_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for entry in f.read().split(b"\0"):
                key, _, value = entry.decode(errors="replace").partition("=")
                if key == SERVER_TOKEN_ENV:
                    return value
    except OSError:
        return None
    return None


def running_requests(port: int) -> float:
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2.0).text
    except requests.RequestException:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("sglang:num_running_reqs"))


def server_log(run_dir: Path) -> str:
    try:
        return (run_dir / NAME / "server.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def kill_point_reached(when: str, target: str, port: int, run_dir: Path, harness_pid: int) -> bool:
    if when == "stream":
        return running_requests(port) >= 1
    if "fired up" in server_log(run_dir):
        raise RuntimeError("the server became healthy before the startup kill point")
    tree = Tree(harness_pid)
    # sglang: a scheduler holds GPU memory; the reference engine on the CPU: rank 1 was started.
    held = bool(gpu_pids()) if target == "sglang" else len(tree.alive()) >= 2
    return tree.leader is not None and held


def drill(out: Path, when: str, target: str, startup_timeout_s: float, resume: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"when": when, "target": target, "budget_s": BUDGET_S, "passed": False}
    before = gpu_pids()
    if before:
        report["error"] = f"the GPU already holds processes {before} before the drill"
        return report
    scenario_path = drill_scenario(target).write(out)
    run_dir, port = out / "run", free_port("127.0.0.1")
    command = [sys.executable, "-m", "harness", "run", str(scenario_path), "--target", target, "--out", str(run_dir),
               "--port", str(port), "--startup-timeout", f"{startup_timeout_s:g}"]
    report["command"] = " ".join(command)
    timeline: list[str] = []
    started = time.monotonic()

    def note(text: str) -> None:
        timeline.append(f"{time.monotonic() - started:8.2f} s  {text}")

    with open(out / "harness-console.txt", "w") as console:
        harness = subprocess.Popen(command, cwd=REPO_ROOT, stdout=console, stderr=subprocess.STDOUT,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"},
                                   start_new_session=True)
    note(f"harness pid {harness.pid} started: {report['command']}")
    tree: Tree | None = None
    try:
        deadline = started + startup_timeout_s + 60
        while not kill_point_reached(when, target, port, run_dir, harness.pid):
            if harness.poll() is not None:
                raise RuntimeError(f"harness exited ({harness.returncode}) before the kill point")
            if time.monotonic() > deadline:
                raise RuntimeError(f"kill point {when!r} not reached in {deadline - started:.0f} s")
            time.sleep(0.2)
        tree = Tree(harness.pid)
        (out / "processes-before.txt").write_text(tree.describe())
        (out / "gpu-before.txt").write_text(gpu_snapshot())
        note(f"kill point {when!r}: server {sorted(tree.server)}, GPU pids {gpu_pids()}")
        os.kill(harness.pid, signal.SIGKILL)
        killed = time.monotonic()
        harness.wait()
        note("SIGKILL sent to the harness")
        server_gone = gpu_free = None
        last: tuple[Any, ...] = ()
        while time.monotonic() - killed < OBSERVE_S:
            alive, gpu, since = tree.alive(), gpu_pids(), time.monotonic() - killed
            if (alive, gpu, tree.watchdog_alive()) != last:
                last = (alive, gpu, tree.watchdog_alive())
                note(f"+{since:.2f} s after SIGKILL: server alive {alive}, GPU pids {gpu}, watchdog alive {last[2]}")
            if server_gone is None and not alive:
                server_gone = since
            if gpu_free is None and not gpu:
                gpu_free = since
            if server_gone is not None and gpu_free is not None and not tree.watchdog_alive():
                break
            time.sleep(POLL_S)
        (out / "processes-after.txt").write_text(tree.describe())
        (out / "gpu-after.txt").write_text(gpu_snapshot())
        report.update(harness_pid=harness.pid, leader_pid=tree.leader,
                      watchdog_pid=tree.watchdog.pid if tree.watchdog else None,
                      server_processes={str(pid): line for pid, line in tree.cmdlines.items()},
                      server_gone_s=_rounded(server_gone), gpu_checked=before is not None,
                      gpu_released_s=_rounded(gpu_free) if before is not None else None)
        report["passed"] = (server_gone is not None and server_gone <= BUDGET_S
                            and gpu_free is not None and gpu_free <= BUDGET_S)
    except RuntimeError as exc:
        report["error"] = str(exc)
        note(f"error: {exc}")
    finally:
        if harness.poll() is None:  # the drill failed before its kill: still leave the GPU clean
            tree = tree or Tree(harness.pid)
            harness.kill()
            harness.wait()
            with contextlib.suppress(RuntimeError):
                _wait(lambda: not tree.alive(), BUDGET_S)
        if tree is not None and tree.alive():
            left = tree.alive()
            report["passed"] = False
            report["cleanup_killed"] = left
            for pid in left:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            note(f"drill cleanup: SIGKILL to survivors {left}")
    manifest = run_dir / "manifest.json"
    if manifest.exists():
        report["manifest_state"] = json.loads(manifest.read_text())["scenarios"].get(NAME, {}).get("state")
    report["watchdog_log"] = [line for line in server_log(run_dir).splitlines() if "harness watchdog" in line]
    if resume and report["passed"]:
        report["resume"] = resume_run(run_dir, startup_timeout_s, note)
        report["passed"] = report["resume"]["ok"]
    (out / "timeline.txt").write_text("\n".join(timeline) + "\n")
    return report


def _wait(done: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(POLL_S)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def resume_run(run_dir: Path, startup_timeout_s: float, note: Callable[[str], None]) -> dict[str, Any]:
    """`harness run --resume RUN_DIR --requests 3`: the cut scenario re-runs on the freed GPU."""
    command = [sys.executable, "-m", "harness", "run", "--resume", str(run_dir), "--requests", "3"]
    note(f"resume: {' '.join(command)}")
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False,
                              timeout=startup_timeout_s + 120, env={**os.environ, "COLUMNS": "160"})
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": "resume timed out"}
    (run_dir.parent / "resume-console.txt").write_text(done.stdout + done.stderr)
    result_path = run_dir / NAME / "result.json"
    status = json.loads(result_path.read_text())["status"] if result_path.exists() else None
    gpu = gpu_pids()
    note(f"resume exited {done.returncode}, result status {status}, GPU pids after {gpu}")
    return {"ok": status == "ok" and not gpu, "returncode": done.returncode, "status": status, "gpu_after": gpu}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.gpu.support.sigkill_drill")
    parser.add_argument("out", type=Path)
    parser.add_argument("--when", choices=("stream", "startup"), default="stream")
    parser.add_argument("--target", choices=("sglang", "reference"), default="sglang")
    parser.add_argument("--startup-timeout", type=float, default=400.0)
    parser.add_argument("--resume", action="store_true", help="then resume the run and check it completes")
    args = parser.parse_args(argv)
    # `timeout` sends SIGTERM: unwind through drill()'s cleanup so no harness or sglang is left running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    report = drill(args.out, args.when, args.target, args.startup_timeout, args.resume)
    (args.out / "drill.json").write_text(json.dumps(report, indent=2) + "\n")
    verdict = "PASSED" if report["passed"] else "FAILED"
    print(f"sigkill drill ({args.when}, {args.target}): {verdict}; server gone {report.get('server_gone_s')} s, "
          f"GPU released {report.get('gpu_released_s')} s after SIGKILL; evidence in {args.out}")
    if report.get("error", "").startswith("the GPU already holds"):
        return 3
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
