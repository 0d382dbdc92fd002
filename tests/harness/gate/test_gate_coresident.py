"""The paired co-resident design end to end: real servers on loopback, two at a time, ABBA request pairs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from harness.gate.cli import main

FAKE = Path(__file__).resolve().parents[1] / "fake_servers" / "sglang_like.py"
CPU_SCENARIO = Path(__file__).resolve().parents[3] / "bench" / "evidence" / "cpu-paired-gate.toml"


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep these servers off the machine-wide harness lock other runs on this machine use.
    monkeypatch.setenv("HARNESS_LOCK_DIR", str(tmp_path / "locks"))


def _fake(*flags: str) -> str:
    return " ".join([sys.executable, str(FAKE), "--fake-interval-ms", "0.5", *flags])


def _result(out: Path, side: str, start_pair: int, scenario: str = "baseline") -> dict:
    return json.loads((out / "runs" / side / f"round-{start_pair:02d}" / scenario / "result.json").read_text())


def test_budget_extends_the_server_pair_then_starts_another_then_exits_3(tmp_path: Path, capsys) -> None:
    # An interval limit no measurement can meet: every look is inconclusive, so the rule runs its course.
    config = tmp_path / "never.toml"
    config.write_text("[metrics.tpot_ms]\nthreshold = 0.01\nmax_ci_width = 1e-6\n", encoding="utf-8")
    out = tmp_path / "gate"
    code = main(["--base-cmd", _fake(), "--head-cmd", _fake(), "--requests", "8", "--warmups", "1",
                 "--budget", "600", "--max-looks", "3", "--config", str(config), "--out", str(out), "--no-plots",
                 "baseline"])
    text = capsys.readouterr().out
    assert code == 3, text
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] == "inconclusive" and verdict["design"] == "paired"
    looks = verdict["sampling"]["looks"]
    # 8 pairs; the same servers to 2 x 8; then a fresh server pair of 8; three looks at 1 - 0.05/3.
    assert [(k["number"], k["start_pairs"], k["pairs"], k["action"]) for k in looks] == [
        (1, 1, 8, "extend the server pair by 8 pairs"),
        (2, 1, 16, "new server pair with 8 pairs"),
        (3, 2, 24, "stop: all 3 looks taken")]
    assert all(k["confidence"] == pytest.approx(1 - 0.05 / 3) for k in looks)
    first, second = _result(out, "base", 0), _result(out, "base", 1)
    assert [s["pair"] for s in first["samples"]] == list(range(16))
    assert [s["pair"] for s in second["samples"]] == list(range(8))
    assert second["pairing"] == {"design": "paired", "side": "base", "start_pair": 1, "order": "abba"}
    head = _result(out, "head", 1)
    assert head["pairing"]["side"] == "head" and head["server"]["port"] != second["server"]["port"]
    row = next(r for r in verdict["rows"] if r["metric"] == "tpot_ms")
    assert row["estimate"]["design"] == "paired" and row["estimate"]["rounds"] == 2
    assert row["estimate"]["n_base"] == 24
    (need,) = verdict["sampling"]["to_decide"]
    assert need["metric"] == "tpot_ms" and need["have"] == 24 and need["need"] > 24
    assert "### What it would take" in text and "request pairs" in text
    # Every server of the gate was stopped.
    for side in ("base", "head"):
        for start in (0, 1):
            assert _result(out, side, start)["server"]["shutdown"]["survivors"] == []
    manifest = json.loads((out / "runs" / "head" / "round-01" / "manifest.json").read_text())
    assert manifest["scenarios"]["baseline"]["state"] == "done"


def test_head_that_cannot_start_is_a_regression_and_base_still_measures(tmp_path: Path) -> None:
    out = tmp_path / "gate"
    code = main(["--base-cmd", _fake(), "--head-cmd", _fake("--fake-mode", "crash_on_start"), "--requests", "8",
                 "--warmups", "0", "--out", str(out), "--no-plots", "baseline"])
    assert code == 1
    verdict = json.loads((out / "verdict.json").read_text())
    assert {r["metric"]: r["verdict"] for r in verdict["rows"]}["startup"] == "regression"
    assert [s["pair"] for s in _result(out, "base", 0)["samples"]] == list(range(8))
    assert verdict["sampling"]["looks"][0]["action"] == "stop: the head server stopped early"


def test_two_reference_engines_co_resident(tmp_path: Path) -> None:
    """Two real reference engine servers (CPU) started together, six request pairs: structure only."""
    out = tmp_path / "gate"
    engine = f"{sys.executable} -m reference_impl.engine"
    code = main(["--base-cmd", engine, "--head-cmd", engine, "--requests", "6", "--warmups", "1",
                 "--out", str(out), "--no-plots", str(CPU_SCENARIO)])
    assert code in (0, 3)  # an A/A on a busy 2-core VM: no regression, decided or not
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["design"] == "paired"
    assert verdict["sampling"]["design_reason"] == "CPU servers: no device memory to share"
    base, head = _result(out, "base", 0, "cpu-paired-gate"), _result(out, "head", 0, "cpu-paired-gate")
    for side, result in (("base", base), ("head", head)):
        assert result["status"] == "ok" and result["oracle"]["ok"] is True
        assert result["pairing"] == {"design": "paired", "side": side, "start_pair": 0, "order": "abba"}
        assert [s["pair"] for s in result["samples"]] == list(range(6))
        assert result["server"]["shutdown"]["survivors"] == []
    assert base["server"]["port"] != head["server"]["port"]
    # Same command and scenario flags on both (ports aside), and no memory share on the CPU.
    def flags(result: dict) -> list[str]:
        return [a for a in result["server"]["argv"] if a != str(result["server"]["port"])]

    assert flags(base) == flags(head) and "--cuda-graph-max-bs" in flags(base)
    assert "--mem-fraction-static" not in flags(base)
    # Pair k got the same prompt on both sides, so the pairs compare the same work.
    assert [s["input_len"] for s in base["samples"]] == [s["input_len"] for s in head["samples"]]
    row = next(r for r in verdict["rows"] if r["metric"] == "tpot_ms")
    assert row["estimate"]["design"] == "paired" and row["estimate"]["n_base"] == 6
    # The look saw every gated metric, decode_gpu_ms too (joined from the live servers' records by rid).
    (look,) = verdict["sampling"]["looks"]
    assert {m["metric"]: m["pairs"] for m in look["metrics"]} == {"tpot_ms": 6, "ttft_ms": 6, "decode_gpu_ms": 6}


def test_alternating_design_with_a_budget_adds_rounds_between_looks(tmp_path: Path) -> None:
    config = tmp_path / "never.toml"
    config.write_text("[metrics.tpot_ms]\nthreshold = 0.01\nmax_ci_width = 1e-6\n", encoding="utf-8")
    out = tmp_path / "gate"
    code = main(["--design", "alternating", "--base-cmd", _fake(), "--head-cmd", _fake(), "--rounds", "1",
                 "--requests", "8", "--warmups", "0", "--budget", "600", "--max-looks", "2", "--config", str(config),
                 "--out", str(out), "--no-plots", "baseline"])
    assert code == 3
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["design"] == "alternating"
    assert [(k["number"], k["start_pairs"], k["pairs"], k["action"]) for k in verdict["sampling"]["looks"]] == [
        (1, 1, 8, "1 more round"), (2, 2, 16, "stop: all 2 looks taken")]
    assert sorted(p.name for p in (out / "runs" / "head").iterdir()) == ["round-00", "round-01"]
    assert "pairing" not in _result(out, "base", 1)  # alternating results are not paired
