"""Fault row 10: the harness SIGKILLed (OOM killer, runner cancel) leaves no server process behind.

The harness runs as a real subprocess (`python -m harness run`) and is SIGKILLed mid-stream and
mid-startup (the real reference engine, two rank processes), while writing a result, and while its
server has workers that left the process group. Each test polls until no process of the run is left
(the `mark` fixture's environment marker, inherited by the harness, its watchdog and every server
process) and fails past 10 s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
from fake_server_helpers import FAKE_LAUNCHER
from reliability_helpers import (
    REPO_ROOT,
    alive,
    assert_results_loadable,
    fast_args,
    manifest_state,
    reference_scenario,
    server_tree,
    survivors,
    wait_for,
    write_scenario,
)

from harness.serve.server import free_port, group_members
from harness.store.result import RESULT_FILE
from harness.store.results import load_result
from harness.store.resume import ATTEMPTS_DIR
from harness.store.testhook import HOLD_ENV, HOLD_FILE_ENV

BUDGET_S = 10.0  # the bound: from the SIGKILL to no server process left
WATCHDOG_LINE = "harness watchdog"


def kill_and_wait_gone(proc: subprocess.Popen[str], mark: str, server: list[int]) -> tuple[float, float]:
    """SIGKILL the harness; (s until every server process is gone, s until nothing of the run is left)."""
    killed_at = time.monotonic()
    proc.kill()
    proc.wait()
    wait_for(lambda: alive(server) == [], BUDGET_S, f"server processes {server} to be gone")
    server_gone = time.monotonic() - killed_at
    wait_for(lambda: survivors(mark) == [], BUDGET_S - server_gone, "every process of the run to be gone")
    everything_gone = time.monotonic() - killed_at
    print(f"SIGKILL -> server gone {server_gone:.2f} s, watchdog gone too {everything_gone:.2f} s")
    return server_gone, everything_gone


def running_requests(port: int) -> float:
    """The server's own `sglang:num_running_reqs` gauge (0 when it cannot be read)."""
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0).text
    except requests.RequestException:
        return 0.0
    for line in text.splitlines():
        if line.startswith("sglang:num_running_reqs"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def log_of(run_dir: Path, name: str) -> str:
    try:
        return (run_dir / name / "server.log").read_text()
    except FileNotFoundError:
        return ""


def test_sigkill_mid_stream_leaves_no_reference_engine_rank_within_10s(tmp_path, harness_cli, mark):
    # The drill: `harness run ... --requests 200`, kill -9 of the harness while it streams.
    scenario = reference_scenario(tmp_path, "ranks", requests=200)
    run_dir, port = tmp_path / "run", free_port("127.0.0.1")
    proc = harness_cli.start(str(scenario), "--out", str(run_dir), "--port", str(port),
                             "--startup-timeout", "120")
    wait_for(lambda: running_requests(port) >= 1, 150, "a request in flight")
    watchdog, leader, server = server_tree(proc.pid)
    assert len(alive(server)) == 2, "rank 0 (launcher, HTTP, scheduler) and the rank 1 worker"
    server_gone, _ = kill_and_wait_gone(proc, mark, server)
    assert server_gone < BUDGET_S and group_members(leader) == []
    assert manifest_state(run_dir, "ranks") == "running"  # the cut scenario; --resume re-runs it
    assert not (run_dir / "ranks" / RESULT_FILE).exists()
    assert f"harness pid {proc.pid} is gone" in log_of(run_dir, "ranks")
    assert alive([watchdog]) == []


def test_sigkill_mid_startup_leaves_no_reference_engine_rank_within_10s(tmp_path, harness_cli, mark):
    scenario = reference_scenario(tmp_path, "starting", requests=2)
    run_dir = tmp_path / "run"
    proc = harness_cli.start(str(scenario), "--out", str(run_dir), "--startup-timeout", "120")

    def worker_started() -> bool:
        # Rank 0 spawns rank 1 before either builds its model: from here to /health 200 is startup.
        try:
            return len(alive(server_tree(proc.pid)[2])) == 2
        except (StopIteration, psutil.Error):
            return False

    wait_for(worker_started, 120, "the rank 1 worker to be started")
    _, leader, server = server_tree(proc.pid)
    assert "fired up" not in log_of(run_dir, "starting"), "the server became healthy before the kill"
    server_gone, _ = kill_and_wait_gone(proc, mark, server)
    assert server_gone < BUDGET_S and group_members(leader) == []
    assert "fired up" not in log_of(run_dir, "starting")
    assert manifest_state(run_dir, "starting") == "running"


def test_sigkill_while_writing_the_result_leaves_nothing_and_resumes(tmp_path, harness_cli, mark):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    first = write_scenario(scenarios, "first", {"children": 2})
    run_dir, reached = tmp_path / "run", tmp_path / "reached"
    hold = {HOLD_ENV: f"write:{RESULT_FILE}", HOLD_FILE_ENV: str(reached)}
    proc = harness_cli.start(str(first), "--out", str(run_dir), *fast_args(), env=hold)
    wait_for(reached.exists, 60, "the harness to reach the result write")
    # The result is written after the server group was stopped and the watchdog let go.
    assert survivors(mark) == [proc.pid]
    torn = list((run_dir / "first").glob(f".{RESULT_FILE}.*.tmp"))
    assert len(torn) == 1 and json.loads(torn[0].read_text())["scenario"] == "first"
    _, everything_gone = kill_and_wait_gone(proc, mark, [])
    assert everything_gone < BUDGET_S
    assert not (run_dir / "first" / RESULT_FILE).exists()  # the rename never happened: no torn result
    assert manifest_state(run_dir, "first") == "running"

    resumed = harness_cli.run("--resume", str(run_dir), timeout_s=60)
    assert resumed.returncode in (0, 1), resumed.stderr
    assert_results_loadable(run_dir, ["first"])
    assert load_result(run_dir / "first" / RESULT_FILE)["status"] == "ok"
    assert (run_dir / ATTEMPTS_DIR / "first.1" / torn[0].name).exists()  # kept aside, never deleted
    assert manifest_state(run_dir, "first") == "done"


def test_sigkill_also_stops_workers_that_left_the_process_group(tmp_path, harness_cli, mark):
    # One worker calls setsid() and drops the server's token; a daemon is reparented at once.
    # fake_startup_s gives the watchdog's /proc scans time to see the first while its parent lives.
    slow = write_scenario(tmp_path, "escape", {"escapees": True, "startup_s": 1.0, "interval_ms": 300},
                          output_len=40, requests=1)
    run_dir = tmp_path / "run"
    proc = harness_cli.start(str(slow), "--out", str(run_dir), *fast_args())
    wait_for(lambda: "fired up" in log_of(run_dir, "escape"), 30, "the fake server to be serving")
    _, leader, server = server_tree(proc.pid)
    escapees = {line.split()[2]: int(line.split()[3]) for line in log_of(run_dir, "escape").splitlines()
                if line.startswith("fake-server escapee ")}
    assert set(escapees) == {"setsid", "daemon"}
    for pid in escapees.values():
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        assert pid not in group_members(leader)  # left the group: a group kill alone misses it
    assert psutil.Process(escapees["daemon"]).ppid() != leader
    server_gone, _ = kill_and_wait_gone(proc, mark, sorted({*server, *escapees.values()}))
    assert server_gone < BUDGET_S
    log = log_of(run_dir, "escape")
    assert WATCHDOG_LINE in log and all(str(pid) in log for pid in escapees.values())


@pytest.mark.parametrize("wedged", [False, True], ids=["obeys-sigterm", "ignores-sigterm"])
def test_watchdog_alone_stops_a_server_started_without_pdeathsig(tmp_path, mark, wedged):
    # Started from a thread, the leader gets no PR_SET_PDEATHSIG: only the watchdog can stop it. A wedged
    # server (like sglang 0.5.16's launcher hung after a scheduler OOM) ignores SIGTERM: SIGKILL after 2 s.
    port = free_port("127.0.0.1")
    log = tmp_path / "server.log"
    flags = ["--port", str(port), "--fake-children", "2", *(["--fake-ignore-sigterm"] if wedged else [])]
    code = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "from harness.serve.server import LaunchSpec, Server\n"
        f"spec = LaunchSpec(argv=tuple({[*FAKE_LAUNCHER, *flags]!r}),"
        f" env=(), host='127.0.0.1', port={port}, log_path=Path({str(log)!r}), startup_timeout_s=20.0,"
        " stop_grace_s=5.0)\n"
        "server = Server(spec)\n"
        "starter = threading.Thread(target=server.start)\n"
        "starter.start(); starter.join()\n"
        "print(server.wait_ready().outcome, flush=True)\n"
        "time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout is not None and harness.stdout.readline().strip() == "ok"
        _, leader, server = server_tree(harness.pid)
        assert len(alive(server)) == 3
        server_gone, _ = kill_and_wait_gone(harness, mark, server)
    finally:
        harness.kill()
        harness.communicate()
    assert server_gone < BUDGET_S and group_members(leader) == []
    text = log.read_text()
    assert "SIGTERM to 3 server process(es)" in text
    assert (f"SIGKILL to {sorted(server)} after 2 s" in text) == wedged
