"""Fault catalog, harness rows: signals, SIGKILL + --resume, disk full, corrupt results, the GPU lock, bad input.

The harness runs as a real subprocess (`python -m harness run`) wherever the fault is a signal, a
limit or a second process; bad input goes through the same `main()` in-process.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from fake_server_helpers import FAKE_LAUNCHER
from reliability_helpers import (
    MARK_ENV,
    REPO_ROOT,
    alive,
    assert_results_loadable,
    fast_args,
    manifest_state,
    server_tree,
    survivors,
    tree_digest,
    wait_for,
    write_scenario,
)
from rich.console import Console

from harness import run as harness_run
from harness.config import RunConfig
from harness.scenarios.catalog import load_scenario
from harness.serve.lock import OWNER_TOKEN_ENV, GpuLock, LockHeldError, LockOwner, lock_scope
from harness.serve.server import group_members
from harness.store import show
from harness.store.result import RESULT_FILE
from harness.store.results import load_result
from harness.store.resume import ATTEMPTS_DIR

FSIZE_LIMIT = 4096  # above a manifest, lock file and the fake server's log; below a result.json (~8 KiB)


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A finished two-scenario run: the results every fault must leave intact and loadable."""
    base = tmp_path_factory.mktemp("earlier")
    paths = [write_scenario(base, "first"), write_scenario(base, "second")]
    scenarios = [load_scenario(p) for p in paths]
    config = RunConfig(out_dir=base / "run", launcher=FAKE_LAUNCHER,
                       startup_timeout_s=10.0, token_timeout_s=2.0, lock_dir=base / "locks")
    mark = uuid.uuid4().hex
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MARK_ENV, mark)
        argv = ["harness", "run", *map(str, paths), "--out", str(config.out_dir), *fast_args()]
        run_all_results = harness_run.run_all(config, scenarios, argv, Console(quiet=True))
    assert [r["status"] for r in run_all_results] == ["ok", "ok"]
    assert survivors(mark) == []
    yield config.out_dir


def copy_run(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    return to


def lock_files(harness_cli) -> list[Path]:
    return sorted(Path(harness_cli.env["HARNESS_LOCK_DIR"]).glob("*.lock"))


def server_log(run_dir: Path, name: str) -> str:
    try:
        return (run_dir / name / "server.log").read_text()
    except FileNotFoundError:
        return ""


def wait_serving(run_dir: Path, name: str) -> None:
    wait_for(lambda: manifest_state(run_dir, name) == "running" and "fired up" in server_log(run_dir, name),
             30, f"{name} to be serving")


def server_processes(harness_pid: int) -> tuple[int, list[int]]:
    """(pgid of the server, every descendant pid of the harness, its watchdog included) while it runs."""
    watchdog, leader, server = server_tree(harness_pid)
    return leader, [watchdog, *server]


def flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines


def completed_rc(run_dir: Path, names: list[str]) -> int:
    """What `harness run` exits with once every scenario ran: 1 when a verdict failed (the fake server
    writes no instrumentation records, so oracle verdicts can fail), else 0."""
    results = [load_result(run_dir / name / RESULT_FILE) for name in names]
    assert [r["status"] for r in results] == ["ok"] * len(names)
    return 1 if any(r["oracle"]["ok"] is False for r in results) else 0


# ---- harness killed with SIGKILL mid-run, then --resume ---------------------------------------------


def test_sigkill_mid_run_then_resume_keeps_done_results_and_reruns_the_interrupted_one(tmp_path, harness_cli):
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    first = write_scenario(scenarios, "first")
    second = write_scenario(scenarios, "second", {"interval_ms": 300}, output_len=40, requests=1)
    third = write_scenario(scenarios, "third")
    run_dir = tmp_path / "run"
    proc = harness_cli.start(str(first), str(second), str(third), "--out", str(run_dir), *fast_args())
    wait_serving(run_dir, "second")
    first_bytes = (run_dir / "first" / RESULT_FILE).read_bytes()
    pgid, descendants = server_processes(proc.pid)
    proc.kill()
    proc.wait()
    # SIGKILL gives the harness no chance to clean up; its watchdog stops the server group instead.
    wait_for(lambda: alive(descendants) == [] and group_members(pgid) == [], 10, "the server group to be gone")
    assert manifest_state(run_dir, "second") == "running" and manifest_state(run_dir, "third") == "pending"
    assert lock_files(harness_cli), "a SIGKILLed run leaves its lock behind"

    write_scenario(scenarios, "second")  # the re-run attempt is quick
    resumed = harness_cli.run("--resume", str(run_dir), timeout_s=60)
    out = flat(resumed.stdout)
    assert resumed.returncode == completed_rc(run_dir, ["first", "second", "third"]), resumed.stderr
    # Nothing of the dead run was left for the takeover to kill.
    assert "took over stale lock" in out and "killed its leftover server processes" not in out
    assert "second: was running when the earlier run stopped; re-running" in out
    assert (run_dir / "first" / RESULT_FILE).read_bytes() == first_bytes  # kept, not re-measured
    assert_results_loadable(run_dir, ["first", "second", "third"])
    assert load_result(run_dir / "second" / RESULT_FILE)["status"] == "ok"
    assert "fired up" in (run_dir / ATTEMPTS_DIR / "second.1" / "server.log").read_text()
    assert {manifest_state(run_dir, n) for n in ("first", "second", "third")} == {"done"}
    assert lock_files(harness_cli) == []


def test_resume_refuses_a_directory_without_a_manifest_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        harness_run.main(["--resume", str(tmp_path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json: missing" in err[0]


# ---- SIGINT / SIGTERM from the user ------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_kills_the_server_group_marks_the_scenario_and_exits_128_plus_signal(
        tmp_path, harness_cli, signum, code):
    slow = write_scenario(tmp_path, "slow", {"interval_ms": 300}, output_len=40, requests=1)
    run_dir = tmp_path / "run"
    proc = harness_cli.start(str(slow), "--out", str(run_dir), *fast_args())
    wait_serving(run_dir, "slow")
    pgid, descendants = server_processes(proc.pid)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert group_members(pgid) == [] and alive(descendants) == []
    result = load_result(run_dir / "slow" / RESULT_FILE)
    assert result["failure"] == {"stage": "harness", "kind": "interrupted", "message": "interrupted (SIGINT/SIGTERM)"}
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["scenarios"]["slow"]["state"] == "interrupted"
    assert manifest["scenarios"]["slow"]["signal"] == signal.Signals(signum).name
    assert f"harness run --resume {run_dir}" in flat(out)
    assert lock_files(harness_cli) == []


# ---- disk full while writing a result ----------------------------------------------------------------


def _limit_file_size() -> None:
    # Past the limit write() fails with EFBIG instead of the process dying of SIGXFSZ.
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_disk_full_while_writing_a_result_is_one_clear_line_and_resumable(tmp_path, harness_cli, earlier_run):
    before = tree_digest(earlier_run)
    scenario = write_scenario(tmp_path, "first")
    run_dir = tmp_path / "run"
    full = harness_cli.run(str(scenario), "--out", str(run_dir), *fast_args(), preexec_fn=_limit_file_size)
    assert full.returncode == harness_run.EXIT_WRITE_FAILED
    err = full.stderr.strip().splitlines()
    assert len(err) == 1, full.stderr
    assert f"{run_dir / 'first' / RESULT_FILE}: cannot write: file size limit exceeded (EFBIG)" in err[0]
    assert not (run_dir / "first" / RESULT_FILE).exists()
    assert list((run_dir / "first").glob(".*.tmp")) == []  # the torn temp file was removed
    assert manifest_state(run_dir, "first") == "running"
    assert lock_files(harness_cli) == []
    assert tree_digest(earlier_run) == before

    resumed = harness_cli.run("--resume", str(run_dir))
    assert resumed.returncode == completed_rc(run_dir, ["first"]), resumed.stderr


def test_disk_full_while_overwriting_keeps_the_earlier_file(tmp_path, earlier_run):
    run_dir = copy_run(earlier_run, tmp_path / "run")
    target = run_dir / "first" / RESULT_FILE
    before = target.read_bytes()
    code = (
        "import sys; from pathlib import Path; from harness.store.atomic import atomic_write_json, ResultWriteError\n"
        "try:\n"
        f"    atomic_write_json(Path({str(target)!r}), {{'pad': 'x' * {4 * FSIZE_LIMIT}}})\n"
        "except ResultWriteError as exc:\n"
        "    print(exc); sys.exit(9)\n"
    )
    child = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                           preexec_fn=_limit_file_size, timeout=60)
    assert child.returncode == 9, child.stderr
    assert child.stdout.strip() == (f"{target}: cannot write: file size limit exceeded (EFBIG); "
                                    "the earlier file is kept unchanged")
    assert target.read_bytes() == before
    assert_results_loadable(run_dir, ["first", "second"])
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json", "server.log"]


# ---- corrupt or partial result file from an earlier run -----------------------------------------------


def test_corrupt_result_is_reported_kept_aside_and_rerun_on_resume(tmp_path, earlier_run, capsys):
    run_dir = copy_run(earlier_run, tmp_path / "run")
    partial = run_dir / "second" / RESULT_FILE
    torn = partial.read_bytes()[: len(partial.read_bytes()) // 2]
    partial.write_bytes(torn)
    first_before = (run_dir / "first" / RESULT_FILE).read_bytes()

    assert show.main([str(partial)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not valid JSON (truncated or corrupt?)" in err[0]

    assert harness_run.main(["--resume", str(run_dir)]) == completed_rc(run_dir, ["first", "second"])
    out = flat(capsys.readouterr().out)
    assert "second: earlier result is corrupt" in out
    assert (run_dir / ATTEMPTS_DIR / "second.1" / RESULT_FILE).read_bytes() == torn  # kept, not deleted
    assert (run_dir / "first" / RESULT_FILE).read_bytes() == first_before
    assert_results_loadable(run_dir, ["first", "second"])


# ---- two harness runs on the same GPUs at once ------------------------------------------------------


def test_second_run_on_the_same_gpus_is_refused_naming_the_holder(tmp_path, harness_cli, earlier_run):
    before = tree_digest(earlier_run)
    slow = write_scenario(tmp_path, "slow", {"interval_ms": 300}, output_len=40, requests=1)
    quick = write_scenario(tmp_path, "quick")
    holder = harness_cli.start(str(slow), "--out", str(tmp_path / "run1"), *fast_args())
    wait_serving(tmp_path / "run1", "slow")
    second = harness_cli.run(str(quick), "--out", str(tmp_path / "run2"), *fast_args())
    assert second.returncode == harness_run.EXIT_LOCKED
    err = second.stderr.strip().splitlines()
    assert len(err) == 1
    assert f"is in use by harness pid {holder.pid} on {socket.gethostname()}" in err[0]
    assert str(tmp_path / "run1") in err[0] and "cpu.lock" in err[0]
    assert not (tmp_path / "run2").exists()
    # Other GPUs (so the lock lets it through) must still not resume a run directory a live harness writes.
    resume = harness_cli.run("--resume", str(tmp_path / "run1"), env={"CUDA_VISIBLE_DEVICES": "7"})
    assert resume.returncode == 2
    assert f"run1 is still being run by harness pid {holder.pid}" in resume.stderr
    assert manifest_state(tmp_path / "run1", "slow") == "running"
    holder.send_signal(signal.SIGTERM)
    assert holder.wait(timeout=30) == 143
    assert tree_digest(earlier_run) == before


def test_lock_scope_follows_the_visible_gpus_and_overlaps_conflict(tmp_path):
    assert lock_scope({"CUDA_VISIBLE_DEVICES": "1,0"}, gpu_count=8) == ("gpu-0", "gpu-1")
    assert lock_scope({}, gpu_count=2) == ("gpu-0", "gpu-1")
    assert lock_scope({}, gpu_count=0) == ("cpu",)
    assert lock_scope({"CUDA_VISIBLE_DEVICES": ""}, gpu_count=2) == ("cpu",)
    with GpuLock(tmp_path, ("gpu-0", "gpu-1"), tmp_path / "a"):
        with pytest.raises(LockHeldError, match=r"GPU 1 is in use by harness pid \d+"):
            GpuLock(tmp_path, ("gpu-1", "gpu-2"), tmp_path / "b").acquire()
        assert not (tmp_path / "gpu-2.lock").exists()  # all or nothing
        with GpuLock(tmp_path, ("gpu-2",), tmp_path / "c"):
            pass
    assert list(tmp_path.glob("*.lock")) == []


def test_stale_lock_of_a_dead_run_is_taken_over_and_its_leftover_server_killed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = LockOwner(pid=dead.pid, host=socket.gethostname(), started_at="2026-01-01T00:00:00+00:00",
                      create_time=1.0, token=uuid.uuid4().hex, run_dir="/old/run")
    (tmp_path / "cpu.lock").write_text(json.dumps(stale.__dict__))
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True,
                                env={**os.environ, OWNER_TOKEN_ENV: stale.token})
    try:
        with GpuLock(tmp_path, ("cpu",), tmp_path / "new") as lock:
            leftover.wait(timeout=10)  # already reaped by the takeover, so its status reads 0
            assert not psutil.pid_exists(leftover.pid)
            assert len(lock.notes) == 1 and f"harness pid {dead.pid}" in lock.notes[0]
            assert f"killed its leftover server processes [{leftover.pid}]" in lock.notes[0]
            assert json.loads((tmp_path / "cpu.lock").read_text())["pid"] == os.getpid()
    finally:
        leftover.kill()
        leftover.wait()


def test_lock_of_another_host_is_never_taken_over(tmp_path):
    remote = LockOwner(pid=1, host="some-other-host", started_at="2026-01-01T00:00:00+00:00", create_time=1.0,
                       token="t", run_dir="/r")
    (tmp_path / "gpu-0.lock").write_text(json.dumps(remote.__dict__))
    with pytest.raises(LockHeldError, match=r"some-other-host.*another host: remove the file if that run is gone"):
        GpuLock(tmp_path, ("gpu-0",), tmp_path / "run").acquire()


# ---- bad input: port taken, malformed scenario, missing model directory ------------------------------


def _bad_input(argv: list[str], capsys, earlier_run: Path, tmp_path: Path) -> str:
    before = tree_digest(earlier_run)
    with pytest.raises(SystemExit) as exited:
        harness_run.main([*argv, "--out", str(tmp_path / "new-run"), *fast_args()])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert not (tmp_path / "new-run").exists()
    assert tree_digest(earlier_run) == before
    return err[0]


def test_port_already_taken_is_refused_before_anything_starts(tmp_path, capsys, earlier_run, mark):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _bad_input([str(write_scenario(tmp_path, "first")), "--port", str(port)], capsys, earlier_run,
                          tmp_path)
    assert f"--port: port {port} on 127.0.0.1 is already in use" in line


def test_malformed_scenario_file_names_the_file(tmp_path, capsys, earlier_run):
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\n[workload\ninput_len = 8\n')
    line = _bad_input([str(broken)], capsys, earlier_run, tmp_path)
    assert f"{broken}: malformed TOML" in line


def test_missing_model_directory_names_the_field(tmp_path, capsys, earlier_run):
    missing = tmp_path / "no-such-model"
    scenario = write_scenario(tmp_path, "nomodel", model=missing)
    line = _bad_input([str(scenario)], capsys, earlier_run, tmp_path)
    assert f"{scenario}: model: no config.json in model directory {missing}" in line
