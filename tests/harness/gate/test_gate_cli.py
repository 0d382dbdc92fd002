"""`harness gate --base DIR --head DIR`: exit codes, report files, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gate_synthetic import result_obj, tpot_samples

from harness.gate.cli import main


def _runs(write_run, head_scale: float, head_workspace: int = 4096) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    base = write_run("base", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 40), workspace=4096),
                              "a2a-token-cap": result_obj("a2a-token-cap", status="skipped")})
    head = write_run("head", {
        "baseline": result_obj("baseline", tpot=tpot_samples(rng, 40, scale=head_scale), workspace=head_workspace),
        "a2a-token-cap": result_obj("a2a-token-cap", status="skipped")})
    return base, head


def test_pass_writes_markdown_json_and_plot(write_run, tmp_path: Path, capsys) -> None:
    base, head = _runs(write_run, 1.0)
    out = tmp_path / "report"
    assert main(["--base", str(base), "--head", str(head), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Performance gate: **pass**" in text
    assert "| baseline | tpot_ms |" in text and "| a2a-token-cap | status |" in text
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["exit_code"] == 0 and verdict["verdict"] == "pass"
    tpot = next(r for r in verdict["rows"] if r["metric"] == "tpot_ms")
    assert tpot["verdict"] == "no_change" and tpot["estimate"]["n_base"] == 40
    png = out / "baseline-distributions.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "gate.md").read_text() == text


def test_regression_exits_one_and_links_artifacts(write_run, tmp_path: Path, capsys) -> None:
    base, head = _runs(write_run, 1.08, head_workspace=8192)
    out = tmp_path / "report"
    code = main(["gate", "--base", str(base), "--head", str(head), "--out", str(out), "--artifact-url",
                 "https://ci.example/run/1/"])
    assert code == 1
    text = capsys.readouterr().out
    assert "🔴 regression" in text
    assert "(https://ci.example/run/1/baseline-distributions.png)" in text
    rows = json.loads((out / "verdict.json").read_text())["rows"]
    assert {r["metric"] for r in rows if r["verdict"] == "regression"} == {"tpot_ms", "workspace_bytes"}


def test_mismatched_scenarios_exit_two(write_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(1)
    base = write_run("base", {"x": result_obj("x", tpot=tpot_samples(rng, 10))})
    head = write_run("head", {"y": result_obj("y", tpot=tpot_samples(rng, 10))})
    assert main(["--base", str(base), "--head", str(head), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only in base: x; only in head: y" in err[0]


def test_corrupt_file_exits_two_naming_it(write_run, tmp_path: Path, capsys) -> None:
    base, head = _runs(write_run, 1.0)
    bad = head / "baseline" / "result.json"
    bad.write_text("{\"scenario\": ", encoding="utf-8")
    assert main(["--base", str(base), "--head", str(head), "--out", str(tmp_path / "r")]) == 2
    assert str(bad) in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--base", "x"], ["--base-cmd", "python"], ["--base", "a", "--head", "b", "s"]])
def test_incomplete_arguments_exit_two(argv: list[str], capsys) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("harness gate: ")


def test_bad_thresholds_file_exits_two(write_run, tmp_path: Path, capsys) -> None:
    base, head = _runs(write_run, 1.0)
    config = tmp_path / "t.toml"
    config.write_text("[metrics.tpot_ms]\nthreshold = -1\n", encoding="utf-8")
    assert main(["--base", str(base), "--head", str(head), "--config", str(config)]) == 2
    assert "metrics.tpot_ms.threshold" in capsys.readouterr().err


def test_harness_command_dispatches_to_the_gate(write_run, tmp_path: Path) -> None:
    import subprocess
    import sys

    base, head = _runs(write_run, 1.08)
    done = subprocess.run([sys.executable, "-m", "harness", "gate", "--base", str(base), "--head", str(head),
                           "--out", str(tmp_path / "r"), "--no-plots"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Performance gate: **regression**" in done.stdout
    done = subprocess.run([sys.executable, "-m", "harness", "gate", "--base", str(tmp_path / "nope"), "--head",
                           str(head)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "nope: results directory not found" in done.stderr


def test_inconclusive_exits_three_and_says_what_it_would_take(write_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(4)
    base = write_run("base", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 20, sigma=0.2))})
    head = write_run("head", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 20, sigma=0.2))})
    out = tmp_path / "report"
    assert main(["--base", str(base), "--head", str(head), "--out", str(out), "--no-plots"]) == 3
    text = capsys.readouterr().out
    assert "Performance gate: **inconclusive** (exit 3)" in text
    assert "Design: **results given with --base/--head**" in text
    need = next(line for line in text.splitlines() if line.startswith("- baseline tpot_ms: interval"))
    assert "from 20 requests per side; about" in need and "would decide if the width shrinks as 1/sqrt(n)" in need
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["exit_code"] == 3 and verdict["design"] == "given"
    (todo,) = [t for t in verdict["sampling"]["to_decide"] if t["metric"] == "tpot_ms"]
    assert todo["have"] == 20 and todo["need"] > 20 and todo["unit"] == "requests per side"


@pytest.mark.parametrize(("argv", "message"), [
    (["--base", "a", "--head", "b", "--budget", "60"], "--budget: only with --base-cmd/--head-cmd"),
    (["--base-cmd", "x", "--head-cmd", "y", "--max-looks", "3", "s"], "--max-looks: only with --budget"),
    (["--base-cmd", "x", "--head-cmd", "'unclosed", "s"], "--base-cmd/--head-cmd: cannot split"),
])
def test_bad_sampling_arguments_exit_two_naming_the_flag(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--budget", "-5"], "--budget: expected seconds > 0, got -5"),
    (["--budget", "soon"], "--budget: expected seconds > 0, got soon"),
    (["--design", "sideways"], "--design: invalid choice: 'sideways'"),
    (["--max-looks", "0"], "--max-looks: expected a positive integer, got 0"),
])
def test_bad_flag_values_are_refused_by_the_parser(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
