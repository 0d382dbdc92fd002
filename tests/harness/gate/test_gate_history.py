"""Change points over synthetic nightly results with steps at known commits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from gate_synthetic import result_obj, tpot_samples

from harness.gate.history import main
from harness.measure.changepoints import ChangePointConfig, find_steps

N_COMMITS = 24


def _nightlies(write_run, *, with_time: bool = True) -> list[str]:
    rng = np.random.default_rng(4)
    commits = [f"{i:02d}{'c' * 38}" for i in range(N_COMMITS)]
    for i, commit in enumerate(commits):
        # TPOT +6% from commit 10 on, back down 6% from commit 17; workspace doubles at commit 7.
        scale = 1.06 if 10 <= i < 17 else 1.0
        # Nightly runs start in commit order; without distinct times only a commits file can order them.
        obj = result_obj("baseline", tpot=tpot_samples(rng, 30, scale=scale), workspace=4096 if i < 7 else 8192,
                         commit=commit, started_at=f"2026-05-{i + 1 if with_time else 1:02d}T02:00:00Z")
        # Directory names deliberately out of commit order: the order must come from the data.
        write_run(f"results/night-{(i * 7) % N_COMMITS:02d}", {"baseline": obj})
    return commits


def test_steps_name_their_first_commit(write_run, tmp_path: Path, capsys) -> None:
    commits = _nightlies(write_run)
    out = tmp_path / "hist"
    assert main([str(tmp_path / "results"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"`{commits[10]}`" in text and f"`{commits[17]}`" in text
    series = {s["metric"]: s for s in json.loads((out / "history.json").read_text())["series"]}
    assert [st["commit"] for st in series["tpot_ms"]["steps"]] == [commits[10], commits[17]]
    assert series["tpot_ms"]["steps"][0]["relative"] == pytest.approx(0.06, abs=0.01)
    assert series["ttft_ms"]["steps"] == []
    assert [st["commit"] for st in series["workspace_bytes"]["steps"]] == [commits[7]]
    assert series["tpot_ms"]["commits"] == commits
    assert (out / "baseline-tpot_ms.png").read_bytes()[:4] == b"\x89PNG"


def test_commits_file_orders_results_without_times(write_run, tmp_path: Path, capsys) -> None:
    commits = _nightlies(write_run, with_time=False)
    order = tmp_path / "commits.txt"
    order.write_text("\n".join(c[:12] for c in commits) + "\n", encoding="utf-8")
    assert main([str(tmp_path / "results"), "--commits", str(order), "--no-plots"]) == 0
    assert f"`{commits[10]}`" in capsys.readouterr().out


def test_ambiguous_order_is_a_clear_error(write_run, tmp_path: Path, capsys) -> None:
    _nightlies(write_run, with_time=False)
    assert main([str(tmp_path / "results"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "have the same order time" in err and "--commits" in err


def test_commit_missing_from_commits_file(write_run, tmp_path: Path, capsys) -> None:
    _nightlies(write_run)
    order = tmp_path / "commits.txt"
    order.write_text("deadbeef\n", encoding="utf-8")
    assert main([str(tmp_path / "results"), "--commits", str(order)]) == 2
    assert "is not in" in capsys.readouterr().err


def test_missing_results_dir(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "none")]) == 2
    assert "results directory not found" in capsys.readouterr().err


def test_flat_noisy_series_has_few_false_steps() -> None:
    # The documented penalty keeps spurious steps rare on pure noise (measured: ~1% of 30-point series).
    rng = np.random.default_rng(21)
    series = [20 * rng.lognormal(0, 0.01, 30) for _ in range(200)]
    false = sum(bool(find_steps(x, ChangePointConfig())) for x in series)
    assert false / len(series) <= 0.03


def test_step_below_practical_threshold_is_merged() -> None:
    rng = np.random.default_rng(2)
    x = 20 * rng.lognormal(0, 0.001, 30)
    x[15:] *= 1.01  # clear statistically (10 sigma) but below the 2% practical threshold
    assert find_steps(x, ChangePointConfig(min_rel_step=0.02)) == []
    assert [s.index for s in find_steps(x, ChangePointConfig(min_rel_step=0.005))] == [15]


def test_commit_time_outranks_run_start(write_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(5)
    for i in range(8):
        # Re-run out of order (started_at reversed); target.commit_time still gives the true order.
        obj = result_obj("s", tpot=tpot_samples(rng, 20, scale=1.1 if i >= 4 else 1.0), commit=f"c{i}",
                         commit_time=f"2026-04-{i + 1:02d}T00:00:00Z", started_at=f"2026-05-{20 - i:02d}T02:00:00Z")
        write_run(f"results/r{i}", {"s": obj})
    assert main([str(tmp_path / "results"), "--no-plots"]) == 0
    assert "| s | tpot_ms | 8 | `c4` |" in capsys.readouterr().out
