"""Synthetic nights of `harness nightly`: paired control/head results, the real gate's verdict, the layout stored."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gate_synthetic import paired_obj

from harness.gate.cli import main as gate_main
from harness.gate.control_points import CONTROL_DIR
from harness.gate.nightly import BASE_FIRST_START, HEAD_FIRST_START, Night, Recorded, record_comparison
from harness.store.atomic import atomic_write_json
from harness.store.results import summarize

CONTROL_CMD = "/opt/sglang-control/bin/python -m sglang.launch_server"
HEAD_CMD = "/runner/venv/bin/python -m sglang.launch_server"


@dataclass(frozen=True)
class PairedNight:
    """One scenario's per-request values on the control (base) and the commit (head), pair by pair."""

    tpot: tuple[np.ndarray, np.ndarray]
    ttft: tuple[np.ndarray, np.ndarray]
    decode_gpu: tuple[np.ndarray, np.ndarray] | None = None


def night_values(rng: np.random.Generator, pairs: int, *, machine: float, head: float,
                 noise: float = 0.01) -> PairedNight:
    """A night on a machine `machine` times slower than usual, the commit `head` times the control's
    TPOT and decode device time (TTFT unchanged); each request carries its own log-normal noise."""
    def side(median: float, scale: float) -> np.ndarray:
        return median * machine * scale * rng.lognormal(0.0, noise, pairs)

    return PairedNight(tpot=(side(20.0, 1.0), side(20.0, head)), ttft=(side(50.0, 1.0), side(50.0, 1.0)),
                       decode_gpu=(side(15.0, 1.0), side(15.0, head)))


def write_night(run_dir: Path, scenario: str, commit: str, values: PairedNight, *,
                commit_time: str | None = None) -> Recorded:
    """What `harness nightly` leaves for one scenario: the gate's paired sides, its verdict, control.json,
    and the head's result stored as RUN_DIR/<scenario>/result.json. The gate itself compares them."""
    gate_out = run_dir / CONTROL_DIR / scenario
    sides = {"base": BASE_FIRST_START, "head": HEAD_FIRST_START}
    for index, (side, where) in enumerate(sides.items()):
        obj = paired_obj(scenario, side, 0, tpot=values.tpot[index], ttft=values.ttft[index])
        obj["target"] = {"kind": "sglang", "version": "0.5.17" if side == "base" else "0.5.17.dev42", "commit": None}
        if values.decode_gpu is not None:
            for sample, value in zip(obj["samples"], values.decode_gpu[index], strict=False):
                if sample["ok"]:
                    sample.update(decode_gpu_ms=float(value), decode_steps=63, decode_clock="cuda_event")
            obj["summary"]["decode_gpu_ms"] = summarize(values.decode_gpu[index])
        atomic_write_json(gate_out / where / scenario / "result.json", obj)
    code = gate_main(["--base", str(gate_out / "runs" / "base"), "--head", str(gate_out / "runs" / "head"),
                      "--out", str(gate_out), "--no-plots"])
    night = Night(commit=commit, commit_time=commit_time, control_cmd=CONTROL_CMD, head_cmd=HEAD_CMD)
    return record_comparison(run_dir, scenario, gate_out, night, code)
