"""Real asv in the nightly's record mode over a night of `harness nightly`: absolute and ratio-to-control tracks.

The night is synthetic and exact (tests/harness/gate/control_synthetic.py): paired control/head results
whose every pair has the same head/base ratio, compared by the real gate, laid out by
harness.gate.nightly.record_comparison. asv only reads it (no harness is started).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from asv.util import load_json

ROOT = Path(__file__).resolve().parents[2]
MACHINE = "ci-cpu"
TPOT_RATIO, DECODE_RATIO = 1.05, 1.02


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_record_mode_stores_the_ratio_to_control_beside_the_absolute_tracks(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "harness" / "gate"))
    from control_synthetic import PairedNight, write_night
    from gate_synthetic import result_obj

    repo = tmp_path / "sglang"
    (repo / "python").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one commit")
    commit = git(repo, "rev-parse", "HEAD").strip()
    run = tmp_path / "runs" / commit
    rng = np.random.default_rng(11)
    tpot, ttft, decode = (m * rng.lognormal(0.0, 0.02, 12) for m in (2.0, 40.0, 1.5))
    # Every pair: the commit 5% slower in TPOT, 2% in decode device time, TTFT the same as the control's.
    night = PairedNight(tpot=(tpot, tpot * TPOT_RATIO), ttft=(ttft, ttft.copy()),
                        decode_gpu=(decode, decode * DECODE_RATIO))
    recorded = write_night(run, "baseline", commit, night)
    assert recorded.verdict and recorded.head_status == "ok"
    # A scenario the night ran without the control (e.g. it did not fit twice on the GPUs): absolute only.
    (run / "a2a-token-cap").mkdir()
    (run / "a2a-token-cap" / "result.json").write_text(json.dumps(
        result_obj("a2a-token-cap", tpot=np.full(8, 3.25), ttft=np.full(8, 41.5), commit=commit)))

    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(repo), benchmark_dir=str(ROOT / "bench" / "asv"), env_dir=str(tmp_path / "env"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "HOME": str(tmp_path), "HARNESS_ASV_RUN_DIR": str(run),
           "HARNESS_ASV_HARNESS": "false"}  # running the harness would fail the benchmarks
    for args in (["machine", "--yes", "--machine", MACHINE],
                 ["run", "-E", "existing", "--set-commit-hash", commit, "--machine", MACHINE,
                  "--launch-method", "forkserver", "--show-stderr",
                  # The latency tracks, absolute and normalized (synthetic results hold no capture records).
                  "--bench", r"Scenario\.track_(tpot|ttft|decode_gpu)_"]):
        proc = subprocess.run([sys.executable, "-m", "asv", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (stored,) = (tmp_path / "results" / MACHINE).glob(f"{commit[:8]}-existing-*.json")
    results = json.loads(stored.read_text())["results"]
    names = json.loads((tmp_path / "results" / "benchmarks.json").read_text())[
        "benchmarks.Scenario.track_tpot_ratio_to_control"]["params"][0]
    base, a2a = names.index("'baseline'"), names.index("'a2a-token-cap'")

    def tracked(name: str) -> list[float]:
        return results[f"benchmarks.Scenario.{name}"][0]

    verdict = json.loads((run / "control" / "baseline" / "verdict.json").read_text())
    estimate = {r["metric"]: r["estimate"]["ratio"] for r in verdict["rows"] if r.get("estimate")}
    # One computation: asv files the gate's own estimates, which are the built-in ratios.
    for name, metric, expected in (("track_tpot_ratio_to_control", "tpot_ms", TPOT_RATIO),
                                   ("track_decode_gpu_ratio_to_control", "decode_gpu_ms", DECODE_RATIO),
                                   ("track_ttft_ratio_to_control", "ttft_ms", 1.0)):
        assert tracked(name)[base] == estimate[metric]
        assert tracked(name)[base] == pytest.approx(expected, rel=1e-9)
        assert math.isnan(tracked(name)[a2a])  # no control that night: n/a, not a failure
    head = json.loads((run / "baseline" / "result.json").read_text())
    assert tracked("track_tpot_ms")[base] == head["summary"]["tpot_ms"]["median"]
    assert tracked("track_tpot_ms")[base] == pytest.approx(float(np.median(tpot * TPOT_RATIO)))
    assert tracked("track_decode_gpu_ms")[base] == pytest.approx(float(np.median(decode * DECODE_RATIO)))
    assert tracked("track_tpot_ms")[a2a] == 3.25
    others = [i for i in range(len(names)) if i not in (base, a2a)]
    assert all(math.isnan(tracked("track_tpot_ratio_to_control")[i]) for i in others)
