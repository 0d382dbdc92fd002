"""`python -m reference_impl predict`: a real subprocess, file and stdin, exit 2 naming the field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reference_impl.prediction import PREDICTION_KEYS

ROOT = Path(__file__).resolve().parents[2]
INPUT = {
    "server_args": {"tp_size": 4, "ep_size": 4, "moe_a2a_backend": "flashinfer", "disable_attn_tp_gather": True,
                    "cuda_graph_max_bs": 4},
    "model": json.loads((ROOT / "harness/models/tiny-qwen3-moe/config.json").read_text()),
    "runtime": {"dp_global_num_tokens": None, "local_num_tokens": 1, "batch_size": 1},
    "gpu": "H100",
    "revert": [],
}


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reference_impl", *args], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, check=False)


def test_predict_from_file(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text(json.dumps(INPUT))
    proc = _run(["predict", str(path)])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert tuple(out) == PREDICTION_KEYS
    assert out["require_attn_tp_gather"] is False and out["capture_num_tokens"] == 1
    # tiny Qwen3-MoE (hidden 1024, top-4), ep 4, default cap 4096: dispatch 2048 + 32, combine 2048.
    assert (out["a2a_dispatch_payload_bytes_per_token"], out["a2a_combine_payload_bytes_per_token"]) == (2080, 2048)


def test_predict_from_stdin_with_revert() -> None:
    proc = _run(["predict", "-"], json.dumps({**INPUT, "revert": ["disable-attn-tp-gather"]}))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["require_attn_tp_gather"] is True and out["capture_num_tokens"] == 4
    assert proc.stdout.count("\n") == 1


def test_invalid_input_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = {**INPUT, "server_args": {**INPUT["server_args"], "ep_size": -1}}
    proc = _run(["predict", "-"], json.dumps(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    assert "server_args.ep_size: expected a positive integer, got -1" in proc.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    proc = _run(["predict", str(broken)])
    assert proc.returncode == 2 and "broken.json: invalid JSON at line 1" in proc.stderr
    proc = _run(["predict", str(tmp_path / "missing.json")])
    assert proc.returncode == 2 and "missing.json: cannot read input" in proc.stderr
