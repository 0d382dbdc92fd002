"""`harness gate --base-cmd --head-cmd`: real servers on loopback, run A B A B through harness.run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.gate.cli import main
from harness.gate.interleave import InterleavePlan, SideRound, run_interleaved

FAKE = Path(__file__).resolve().parents[1] / "fake_servers" / "sglang_like.py"


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The fake server measures nothing real: keep it off the machine-wide harness lock.
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path / "locks"))


def _cmd(*flags: str) -> str:
    return " ".join([sys.executable, str(FAKE), *flags])


def _results(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*/round-*/baseline/result.json"))]


def test_slower_head_is_a_regression_with_rounds_interleaved_abba(tmp_path: Path, capsys) -> None:
    # The head's token interval is 4x the base's (+300%): a 2 ms sleep's TPOT, averaged over 63 intervals,
    # moved by at most ~20% request to request on this 2-core VM with one core busy, so the effect is
    # 15x that noise and the verdict cannot hinge on the machine's speed.
    out = tmp_path / "gate"
    code = main(["--design", "alternating", "--base-cmd", _cmd("--fake-interval-ms", "2"),
                 "--head-cmd", _cmd("--fake-interval-ms", "8"), "--rounds", "2", "--requests", "10", "--warmups", "1", "--out", str(out), "--no-plots", "baseline"])
    text = capsys.readouterr().out
    assert code == 1, text
    verdict = json.loads((out / "verdict.json").read_text())
    tpot = next(r for r in verdict["rows"] if r["metric"] == "tpot_ms")
    assert tpot["verdict"] == "regression" and tpot["estimate"]["n_base"] == 20
    results = _results(out)
    assert len(results) == 4 and all(r["status"] == "ok" for r in results)
    assert all(r["server"]["shutdown"]["survivors"] == [] for r in results)  # no orphan server
    # A B B A: results were written in this order (mtime has ns resolution, started_at only seconds).
    paths = sorted((out / "runs").glob("*/round-*/baseline/result.json"), key=lambda p: p.stat().st_mtime_ns)
    assert [(p.parts[-4], p.parts[-3]) for p in paths] == [
        ("base", "round-00"), ("head", "round-00"), ("head", "round-01"), ("base", "round-01")]
    head_argv = json.loads(paths[1].read_text())["server"]["argv"]
    assert head_argv[head_argv.index("--fake-interval-ms") + 1] == "8"

def test_head_that_cannot_start_is_a_regression(tmp_path: Path, capsys) -> None:
    out = tmp_path / "gate"
    code = main(["--design", "alternating", "--base-cmd", _cmd(), "--head-cmd", _cmd("--fake-mode", "crash_on_start"),
                 "--rounds", "1",
                 "--requests", "8", "--warmups", "0", "--out", str(out), "--no-plots", "baseline"])
    assert code == 1
    rows = json.loads((out / "verdict.json").read_text())["rows"]
    assert {r["metric"]: r["verdict"] for r in rows}["startup"] == "regression"


def test_harness_error_is_infrastructure_naming_the_round(tmp_path: Path) -> None:
    def broken(plan: InterleavePlan, side_round: SideRound) -> None:
        raise OSError("disk full")

    plan = InterleavePlan(("baseline",), ("a",), ("b",), 2, None, None, "reference", tmp_path)
    with pytest.raises(Exception, match=r"base/round-00: harness run failed for the base side, round 0: OSError"):
        run_interleaved(plan, broken)


def test_round_waits_for_the_harness_lock_then_gives_up(tmp_path: Path) -> None:
    from harness.gate.interleave import harness_run_side
    from harness.scenarios.hardware import detect_host
    from harness.serve.lock import GpuLock

    plan = InterleavePlan(("baseline",), (_cmd(),), (_cmd(),), 1, 8, 0, "reference", tmp_path / "runs",
                          lock_wait_s=0.0)
    # The lock another harness run on this machine holds (run_all takes the same one).
    with GpuLock.for_machine(len(detect_host().gpus), tmp_path / "other-run"), \
            pytest.raises(Exception, match=r"runs: .*harness pid .* \(waited 0 s\)"):
        run_interleaved(plan, harness_run_side)
    assert not (tmp_path / "runs" / "base" / "round-00" / "manifest.json").exists()


def test_the_gate_holds_the_machine_lock_from_the_first_round_to_the_last(tmp_path: Path) -> None:
    from harness.gate.interleave import machine_lock
    from harness.scenarios.hardware import detect_host
    from harness.serve.lock import GpuLock, LockHeldError

    plan = InterleavePlan(("baseline",), ("a",), ("b",), 2, None, None, "reference", tmp_path / "runs")
    other = GpuLock.for_machine(len(detect_host().gpus), tmp_path / "other-run")
    # Another run is kept out for as long as the gate runs its rounds.
    with machine_lock(plan.out, plan.lock_wait_s), pytest.raises(LockHeldError, match="harness pid"):
        other.acquire()
    other.acquire()  # released when the gate is done
    other.release()


def test_abab_order_runs_base_first_every_round(tmp_path: Path) -> None:
    calls: list[tuple[str, int]] = []

    def record(plan: InterleavePlan, side_round: SideRound) -> None:
        calls.append((side_round.side, side_round.round_index))

    for order, expected in (("abab", ["base", "head"] * 3), ("abba", ["base", "head", "head", "base", "base", "head"])):
        calls.clear()
        plan = InterleavePlan(("baseline",), ("a",), ("b",), 3, None, None, "reference", tmp_path, order=order)
        assert run_interleaved(plan, record) == (tmp_path / "base", tmp_path / "head")
        assert [side for side, _ in calls] == expected
        assert [i for _, i in calls] == [0, 0, 1, 1, 2, 2]
