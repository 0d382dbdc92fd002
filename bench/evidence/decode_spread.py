"""Where the start-to-start TPOT spread comes from: GPU graph replay or host work, per fresh process.

Each child process builds the baseline scenario's rank (the engine's own capture), then times
`--steps` graph replays alone (GPU) and `--steps` whole decode steps (`ModelRunner.run_step`:
host tensors, replay, argmax, .tolist()). The parent runs `--processes` children per environment
setting and reports each component's per-process medians and spread.

    python bench/evidence/decode_spread.py --out DIR --processes 6 --setting default --setting fixed-layout
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "harness" / "models" / "tiny-qwen3-moe"
# fixed-layout: one hash seed and no address-space randomization, so every process lays out alike.
SETTINGS = {"default": ([], {}), "fixed-layout": (["setarch", "-R"], {"PYTHONHASHSEED": "0"})}


def child(steps: int, device: str) -> dict[str, object]:
    import torch

    from reference_impl.engine.cli import parse_config
    from reference_impl.engine.rank_setup import build_rank
    from reference_impl.engine.step import GroupWork, Step

    config = parse_config(["--model-path", str(MODEL), "--device", device, "--cuda-graph-max-bs", "4",
                           "--max-running-requests", "4"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rank = build_rank(config, 0, port)
    graph = rank.runner.graphs.get(1)  # none on the CPU: the numbers are then host-only
    pos = 128
    work = GroupWork(input_ids=[7], positions=[pos], out_slots=[pos], block_table=[list(range(pos + 1))],
                     seq_lens=[pos + 1], sample_rows=[0])
    step = Step("decode", [work])

    def timed(fn: object) -> list[float]:
        out = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()  # type: ignore[operator]
            out.append((time.perf_counter() - t0) * 1e3)
        return out

    def replay() -> None:
        if graph is not None:
            graph.graph.replay()
            torch.cuda.synchronize()

    for _ in range(50):
        rank.runner.run_step(step)
    replay_ms = timed(replay)
    step_ms = timed(lambda: rank.runner.run_step(step))
    replay_ms += timed(replay)  # before and after: a drift inside the process shows as a difference
    return {"replay_ms": float(np.median(replay_ms)), "step_ms": float(np.median(step_ms)),
            "replay_first_half_ms": float(np.median(replay_ms[:steps])),
            "replay_second_half_ms": float(np.median(replay_ms[steps:]))}


def parent(out: Path, processes: int, settings: list[str], steps: int, device: str) -> str:
    rows: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    for i in range(processes):
        for name in settings:
            prefix, env = SETTINGS[name]
            cmd = [*prefix, sys.executable, str(Path(__file__).resolve()), "--child", "--steps", str(steps),
                   "--device", device]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT)
            if proc.returncode != 0:
                raise SystemExit(f"decode_spread: {name} process {i} failed:\n{proc.stderr[-3000:]}")
            rows[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"[decode_spread] {name} {i}: {rows[name][-1]}", file=sys.stderr)
    lines = ["| setting | component | median over processes (ms) | min..max | spread (sd/median) |",
             "|---|---|---|---|---|"]
    for name, results in rows.items():
        for key in ("step_ms", "replay_ms"):
            v = np.array([r[key] for r in results])
            lines.append(f"| {name} | {key} | {np.median(v):.4f} | {v.min():.4f}..{v.max():.4f} | "
                         f"{np.std(v, ddof=1) / np.median(v):.2%} |")
        host = np.array([r["step_ms"] - r["replay_ms"] for r in results])
        lines.append(f"| {name} | step - replay (host) | {np.median(host):.4f} | {host.min():.4f}..{host.max():.4f} | "
                     f"{np.std(host, ddof=1) / np.median(host):.2%} |")
    text = "\n".join(lines) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_spread.md").write_text(text)
    (out / "decode_spread.json").write_text(json.dumps(rows, indent=1))
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true")
    p.add_argument("--out", type=Path)
    p.add_argument("--processes", type=int, default=6)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--setting", action="append", choices=sorted(SETTINGS))
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.steps, args.device)))
        return 0
    if args.out is None:
        p.error("--out: required")
    print(parent(args.out, args.processes, args.setting or ["default"], args.steps, args.device), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
