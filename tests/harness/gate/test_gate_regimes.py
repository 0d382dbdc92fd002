"""The gate report names the regimes inside each side's runs (synthetic series, fixed seeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gate_synthetic import result_obj, tpot_samples

from harness.gate.cli import main


def test_gate_md_has_a_line_per_side_with_more_than_one_regime(write_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(22)
    # Head: one round whose TPOT switched level for requests 25-51 (the shape seen on sglang, issue #22).
    switching = np.concatenate([tpot_samples(rng, 25, median=1.12, sigma=0.03),
                                tpot_samples(rng, 27, median=1.85, sigma=0.03),
                                tpot_samples(rng, 48, median=1.20, sigma=0.03)])
    base = tmp_path / "base"
    head = tmp_path / "head"
    for k in range(2):
        write_run(f"base/round-{k:02d}", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 100, median=1.2))})
    write_run("head/round-00", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 100, median=1.2))})
    write_run("head/round-01", {"baseline": result_obj("baseline", tpot=switching)})
    out = tmp_path / "report"
    main(["--base", str(base), "--head", str(head), "--out", str(out), "--no-plots"])
    text = capsys.readouterr().out
    assert "### Regimes inside runs" in text
    (line,) = [line for line in text.splitlines() if line.startswith("- baseline, ")]
    assert line.startswith("- baseline, head: round 1 tpot_ms: 3 regimes: 1.1")
    assert "[0-24]" in line and "[25-51]" in line and "[52-99]" in line
    assert (out / "gate.md").read_text() == text


def test_no_regime_section_when_every_run_is_one_level(write_run, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(5)
    base = write_run("base", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 60))})
    head = write_run("head", {"baseline": result_obj("baseline", tpot=tpot_samples(rng, 60))})
    main(["--base", str(base), "--head", str(head), "--out", str(tmp_path / "report"), "--no-plots"])
    assert "Regimes inside runs" not in capsys.readouterr().out


def test_gate_takes_warmups_auto_and_refuses_a_bad_value(capsys) -> None:
    from harness.gate.cli import _parser
    from harness.measure.warmup import AutoWarmup

    assert _parser().parse_args(["--warmups", "auto"]).warmups == AutoWarmup()
    assert _parser().parse_args(["--warmups", "3"]).warmups == 3
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["--warmups", "soon"])
    assert exit_info.value.code == 2
    assert "--warmups: expected an integer >= 0 or 'auto', got 'soon'" in capsys.readouterr().err
