"""`harness nightly` (the commit beside a pinned control build) and the ratio-to-control series of `harness history`."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from control_synthetic import night_values, write_night

from harness.gate.control_points import load_comparison
from harness.gate.history import main as history_main
from harness.gate.nightly import main as nightly_main

ROOT = Path(__file__).resolve().parents[3]
FAKE = ROOT / "tests" / "harness" / "fake_servers" / "sglang_like.py"
N_NIGHTS = 20
MACHINE_SHIFT_AT, REGRESSION_AT = 6, 13


def _readout() -> ModuleType:
    # bench/asv/readout.py is what asv runs (stdlib only); loaded by path as tests/bench does.
    spec = importlib.util.spec_from_file_location("nightly_asv_readout", ROOT / "bench" / "asv" / "readout.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _series(out: Path) -> dict[tuple[str, str], dict]:
    return {(s["metric"], s["kind"]): s for s in json.loads((out / "history.json").read_text())["series"]}


def test_history_finds_the_regression_on_the_ratio_while_a_machine_shift_moves_the_absolute_series(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nights 6.. run on a machine 25% slower (both builds; each night also +-3% on its own); the commit
    gets 4% slower in TPOT and decode device time from night 13. The absolute TPOT steps at the machine
    shift; the ratio to the control, measured side by side, holds still there and steps at the commit."""
    rng = np.random.default_rng(24)
    commits = [f"{i:02d}{'a' * 38}" for i in range(N_NIGHTS)]
    for i, commit in enumerate(commits):
        machine = (1.25 if i >= MACHINE_SHIFT_AT else 1.0) * float(rng.lognormal(0.0, 0.03))
        values = night_values(rng, 30, machine=machine, head=1.04 if i >= REGRESSION_AT else 1.0)
        write_night(tmp_path / "runs" / commit, "baseline", commit, values,
                    commit_time=f"2026-06-{i + 1:02d}T00:00:00Z")
    capsys.readouterr()
    out = tmp_path / "history"
    assert history_main([str(tmp_path / "runs"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    series = _series(out)
    # The control's own results are no points of the commit's series: one value per night, commit order.
    for key in [("tpot_ms", "absolute"), ("tpot_ms", "ratio_to_control")]:
        assert series[key]["commits"] == commits
    # The absolute series steps at the machine shift only: the commit's 4% is lost in the nights' +-3%.
    absolute = [st["commit"] for st in series[("tpot_ms", "absolute")]["steps"]]
    assert absolute == [commits[MACHINE_SHIFT_AT]]
    for metric in ("tpot_ms", "decode_gpu_ms"):
        (step,) = series[(metric, "ratio_to_control")]["steps"]
        assert step["commit"] == commits[REGRESSION_AT]
        assert step["relative"] == pytest.approx(0.04, abs=0.01)
    assert series[("ttft_ms", "ratio_to_control")]["steps"] == []
    ratio = series[("tpot_ms", "ratio_to_control")]
    assert all(low <= v <= high for v, (low, high) in zip(ratio["values"], ratio["intervals"], strict=True))
    assert ratio["label"] == "tpot_ms ÷ control"
    assert f"| baseline | tpot_ms ÷ control | {N_NIGHTS} | `{commits[REGRESSION_AT]}` |" in text
    # One figure per metric holds both panels.
    assert ratio["plot"] == series[("tpot_ms", "absolute")]["plot"] == "baseline-tpot_ms.png"
    assert (out / "baseline-tpot_ms.png").read_bytes()[:4] == b"\x89PNG"


def test_nights_before_the_control_existed_give_an_absolute_series_only(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    for i in range(4):
        write_night(tmp_path / "runs" / f"c{i}", "baseline", f"c{i}", night_values(rng, 12, machine=1.0, head=1.0),
                    commit_time=f"2026-06-{i + 1:02d}T00:00:00Z")
    # An older night: `harness run` only, no control.json beside it.
    old = json.loads((tmp_path / "runs" / "c0" / "baseline" / "result.json").read_text())
    old["target"]["commit"], old["target"]["commit_time"] = "b0", "2026-05-01T00:00:00Z"
    (tmp_path / "runs" / "b0" / "baseline").mkdir(parents=True)
    (tmp_path / "runs" / "b0" / "baseline" / "result.json").write_text(json.dumps(old))
    assert history_main([str(tmp_path / "runs"), "--out", str(tmp_path / "h")]) == 0
    series = _series(tmp_path / "h")
    assert series[("tpot_ms", "absolute")]["commits"] == ["b0", "c0", "c1", "c2", "c3"]
    assert series[("tpot_ms", "ratio_to_control")]["commits"] == ["c0", "c1", "c2", "c3"]


def test_a_broken_control_file_is_named(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(5)
    write_night(tmp_path / "runs" / "c0", "baseline", "c0", night_values(rng, 12, machine=1.0, head=1.0))
    control = tmp_path / "runs" / "c0" / "control" / "baseline" / "control.json"
    obj = json.loads(control.read_text())
    control.write_text(json.dumps({**obj, "commit": None}))
    capsys.readouterr()
    assert history_main([str(tmp_path / "runs"), "--no-plots"]) == 2
    assert f"{control}: commit: expected a non-empty string, got None" in capsys.readouterr().err


def test_write_night_records_what_was_compared(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    # +30%: one sglang server pair's interval carries the calibrated between-start SD (5.2% for TPOT), so a
    # +10% night would be inconclusive; +30% is beyond +1% even then.
    recorded = write_night(tmp_path / "run", "baseline", "f" * 40, night_values(rng, 12, machine=1.0, head=1.3),
                           commit_time="2026-06-01T00:00:00Z")
    assert recorded.head_status == "ok" and recorded.verdict and recorded.gate_exit_code == 1
    stored = json.loads((tmp_path / "run" / "baseline" / "result.json").read_text())
    assert stored["target"] == {"kind": "sglang", "version": "0.5.17.dev42", "commit": "f" * 40,
                                "commit_time": "2026-06-01T00:00:00Z"}
    control = json.loads((tmp_path / "run" / "control" / "baseline" / "control.json").read_text())
    assert control["control"]["version"] == "0.5.17" and control["head_result"] == "baseline/result.json"
    comparison = load_comparison(tmp_path / "run" / "control" / "baseline", ("tpot_ms", "ttft_ms"))
    tpot = comparison.ratio("tpot_ms")
    assert tpot is not None and tpot.verdict == "regression" and tpot.ratio == pytest.approx(1.3, abs=0.02)


def test_an_earlier_night_in_the_same_run_directory_is_never_overwritten(tmp_path: Path, capsys) -> None:
    (tmp_path / "run" / "baseline").mkdir(parents=True)
    (tmp_path / "run" / "baseline" / "result.json").write_text("{}")
    code = nightly_main(["baseline", "--control-cmd", "python -m x", "--head-cmd", "python -m y",
                         "--commit", "abc", "--out", str(tmp_path / "run")])
    assert code == 2
    assert f"{tmp_path / 'run' / 'baseline' / 'result.json'}: already exists; give a fresh --out" in \
        capsys.readouterr().err
    assert (tmp_path / "run" / "baseline" / "result.json").read_text() == "{}"


def test_a_control_that_cannot_start_leaves_the_commits_result_and_no_ratio(tmp_path: Path, capsys) -> None:
    """Fake sglang-like servers (tests/harness/fake_servers): the control crashes at startup."""
    fake = f"{sys.executable} {FAKE} --fake-interval-ms 0.5"
    run = tmp_path / "run"
    code = nightly_main(["baseline", "--control-cmd", f"{fake} --fake-mode crash_on_start", "--head-cmd", fake,
                         "--commit", "c" * 40, "--target", "reference", "--requests", "8", "--warmups", "0",
                         "--out", str(run), "--no-plots"])
    assert code == 2  # the gate could not compare: nothing to attribute to the commit
    stored = json.loads((run / "baseline" / "result.json").read_text())
    assert stored["status"] == "ok" and stored["target"]["commit"] == "c" * 40
    control = json.loads((run / "control" / "baseline" / "control.json").read_text())
    assert control["gate_exit_code"] == 2 and control["verdict"] == "verdict.json"
    readout = _readout()
    tracked = readout.load_result(run, "baseline")
    assert readout.latency_median_ms(tracked, "tpot_ms") == stored["summary"]["tpot_ms"]["median"]
    with pytest.raises(NotImplementedError, match=r"not compared with the control .*base run failed"):
        readout.ratio_to_control(run, "baseline", "tpot_ms")


def test_nightly_on_the_cpu_reference_engine_as_control_and_commit(tmp_path: Path) -> None:
    """The nightly's harness step as the workflow runs it (a subprocess), both builds the reference engine,
    six request pairs of a short baseline: what asv and history read. Structure only, no timing."""
    scenario = tmp_path / "baseline.toml"
    text = (ROOT / "harness" / "scenarios" / "baseline.toml").read_text()
    for old, new in (('model = "tiny-qwen3-moe"', f'model = "{ROOT / "harness" / "models" / "tiny-qwen3-moe"}"'),
                     ("input_len = 128", "input_len = 16"), ("output_len = 64", "output_len = 8"),
                     ("warmups = 3", "warmups = 1")):
        assert old in text
        text = text.replace(old, new)
    scenario.write_text(text)
    engine = f"{sys.executable} -m reference_impl.engine"
    sha = "e" * 40
    run = tmp_path / "runs" / sha
    proc = subprocess.run([sys.executable, "-m", "harness", "nightly", str(scenario), "--control-cmd", engine,
                           "--head-cmd", engine, "--commit", sha, "--commit-time", "2026-06-01T00:00:00Z",
                           "--target", "reference", "--requests", "6", "--out", str(run), "--no-plots"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "baseline: gate exit" in proc.stderr
    stored = json.loads((run / "baseline" / "result.json").read_text())
    head = json.loads((run / "control" / "baseline" / "runs" / "head" / "round-00" / "baseline" / "result.json")
                      .read_text())
    assert stored["status"] == "ok" and stored["oracle"]["ok"] is True
    assert stored["target"]["commit"] == sha and stored["summary"] == head["summary"]
    assert [s["pair"] for s in stored["samples"]] == list(range(6))
    verdict = json.loads((run / "control" / "baseline" / "verdict.json").read_text())
    assert verdict["design"] == "paired"
    readout = _readout()
    rows = {r["metric"]: r for r in verdict["rows"]}
    for metric in ("tpot_ms", "ttft_ms", "decode_gpu_ms"):
        assert readout.ratio_to_control(run, "baseline", metric) == rows[metric]["estimate"]["ratio"]
    tracked = readout.load_result(run, "baseline")
    assert readout.latency_median_ms(tracked, "tpot_ms") == head["summary"]["tpot_ms"]["median"]
    assert readout.decode_gpu_ms(tracked) == head["summary"]["decode_gpu_ms"]["median"]
    # `harness history` over the night: one point per series, the ratio beside the absolute.
    out = tmp_path / "history"
    assert history_main([str(tmp_path / "runs"), "--out", str(out), "--no-plots"]) == 0
    series = _series(out)
    assert series[("tpot_ms", "ratio_to_control")]["values"] == [rows["tpot_ms"]["estimate"]["ratio"]]
    assert series[("tpot_ms", "absolute")]["commits"] == [sha]
