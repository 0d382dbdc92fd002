"""harness sweep: the grid matches the scalar oracle point by point, and the CSV/PNG are written."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from harness.sweep import SweepConfig, evaluate, main
from reference_impl.workspace import (
    combine_bytes_per_token,
    dispatch_bytes_per_token,
    moe_a2a_workspace_size_per_rank,
)

SMALL = SweepConfig(ep_sizes=(1, 4, 64), caps=(4096, 16384), hidden_sizes=(1024, 7168), top_k=8)


@pytest.mark.parametrize("version", ["0.5.16", "0.5.23"])
def test_grid_matches_scalar_oracle(version: str) -> None:
    config = SweepConfig(**{**SMALL.__dict__, "sglang_version": version})
    result = evaluate(config)
    assert len(result) == 3 * 3 * 2 * 2 * 3
    for i in range(len(result)):
        hidden, ep, cap = int(result.hidden_size[i]), int(result.ep_size[i]), int(result.cap[i])
        dispatch = dispatch_bytes_per_token(config.dtypes[int(result.dtype[i])], hidden, 8, version)
        assert result.dispatch_bytes[i] == dispatch
        flashinfer = "0.7" if version == "0.5.23" else "0.6.14"
        assert result.workspace_bytes[i] == moe_a2a_workspace_size_per_rank(
            ep, cap, dispatch, combine_bytes_per_token(hidden), flashinfer=flashinfer)


def test_oom_frontier_is_monotone() -> None:
    result = evaluate(SMALL)
    # Within one GPU/ep/hidden/dtype, more tokens never turns an OOM back into a fit.
    keys = np.stack([result.gpu, result.ep_size, result.hidden_size, result.dtype], axis=1)
    for key in np.unique(keys, axis=0):
        sel = np.all(keys == key, axis=1)
        order = np.argsort(result.cap[sel])
        assert np.all(np.diff(result.oom[sel][order].astype(int)) >= 0)
    # ep 64 x 16384 x hidden 7168 bf16 is 64*16384*(14400+14336) B = 30.1 GB per rank, beyond an H100's
    # ~13.4 GB of capture slack (81559 MiB at sglang's default mem_fraction_static), so it OOMs there.
    big = (result.ep_size == 64) & (result.cap == 16384) & (result.hidden_size == 7168) & (result.dtype == 0)
    h100 = SMALL.gpus.index("H100")
    assert result.workspace_bytes[big][0] > 30e9
    assert result.oom[big & (result.gpu == h100)].all()


def test_main_writes_csv_and_png(tmp_path: Path) -> None:
    rc = main(["--out", str(tmp_path), "--ep-sizes", "1,4", "--caps", "4096,16384", "--hidden-sizes", "7168",
               "--dtypes", "bf16,nvfp4", "--gpus", "B200,H100"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "sweep.csv").open()))
    assert len(rows) == 2 * 2 * 1 * 2 * 2
    row = next(r for r in rows if r["gpu"] == "B200" and r["ep_size"] == "4" and r["max_num_tokens_per_rank"] == "4096"
               and r["dispatch_dtype"] == "bf16")
    assert int(row["workspace_bytes_per_rank"]) == 471_531_904
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--out", str(tmp_path), "--gpus", "A100"])
    assert info.value.code == 2
    assert "--gpus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--ep-sizes", "4,x"])
