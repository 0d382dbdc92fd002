"""Is this machine steady enough to benchmark on? Times a fixed single-thread CPU workload in short chunks.

On a shared VM the whole machine can slow down by tens of percent for seconds at a time (other
tenants); no statistic over one server run cancels that, only interleaving does (`harness gate`).
This shows the windows: each chunk is the same work, so any spread is the machine's.

    python bench/evidence/machine_steadiness.py --seconds 30 --out DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from harness.store.atomic import atomic_write_json, atomic_write_text

# A chunk counts as slow when it takes this much longer than the machine's fast level (10th percentile).
SLOW_FACTOR = 1.10


@dataclass(frozen=True)
class SteadinessPlan:
    seconds: float
    chunk_ms: float
    out: Path | None


@dataclass(frozen=True)
class Steadiness:
    """The chunk times of one measurement and what they say about the machine."""

    chunk_ms: tuple[float, ...]
    fast_ms: float          # 10th percentile: the machine's speed when nothing else gets in the way
    median_ms: float
    slow_share: float       # share of chunks over SLOW_FACTOR x fast_ms
    longest_slow_s: float   # the longest run of consecutive slow chunks, in seconds
    worst_ratio: float      # slowest chunk / fast_ms

    @classmethod
    def from_chunks(cls, chunk_ms: list[float]) -> Steadiness:
        times = np.asarray(chunk_ms, dtype=float)
        if times.size < 10:
            raise ValueError(f"need at least 10 chunks to judge steadiness, got {times.size}")
        fast = float(np.percentile(times, 10))
        slow = times > SLOW_FACTOR * fast
        longest = run = 0.0
        for t, is_slow in zip(times, slow, strict=True):
            run = run + t if is_slow else 0.0
            longest = max(longest, run)
        return cls(tuple(float(t) for t in times), fast, float(np.median(times)), float(slow.mean()),
                   longest / 1000.0, float(times.max() / fast))


def measure(plan: SteadinessPlan) -> Steadiness:
    """Run same-size matmul chunks for plan.seconds on one thread."""
    torch.set_num_threads(1)
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    per_chunk = _matmuls_per_chunk(a, plan.chunk_ms)
    chunks: list[float] = []
    deadline = time.perf_counter() + plan.seconds
    while time.perf_counter() < deadline or len(chunks) < 10:
        began = time.perf_counter()
        for _ in range(per_chunk):
            torch.mm(a, a)
        chunks.append((time.perf_counter() - began) * 1000.0)
    return Steadiness.from_chunks(chunks)


def _matmuls_per_chunk(a: torch.Tensor, chunk_ms: float) -> int:
    # Sized from the fastest of a few probes, so that a slow moment during sizing does not shrink chunks.
    probes = []
    for _ in range(5):
        began = time.perf_counter()
        for _ in range(10):
            torch.mm(a, a)
        probes.append((time.perf_counter() - began) * 1000.0 / 10)
    return max(1, round(chunk_ms / min(probes)))


def report(plan: SteadinessPlan, s: Steadiness, where: str) -> str:
    text = (f"# Machine steadiness ({where})\n\n"
            f"{len(s.chunk_ms)} chunks of the same single-thread matmul work (~{plan.chunk_ms:g} ms each) over "
            f"{plan.seconds:g} s.\n\n"
            f"| fast level (p10) | median | slow chunks (>{SLOW_FACTOR - 1:.0%} over p10) | longest slow window "
            "| slowest chunk |\n"
            "|---|---|---|---|---|\n"
            f"| {s.fast_ms:.1f} ms | {s.median_ms:.1f} ms (x{s.median_ms / s.fast_ms:.3f}) | {s.slow_share:.1%} | "
            f"{s.longest_slow_s:.1f} s | x{s.worst_ratio:.2f} |\n")
    if plan.out is not None:
        atomic_write_text(plan.out / "steadiness.md", text)
        atomic_write_json(plan.out / "steadiness.json", {
            "schema_version": 1, "where": where, "seconds": plan.seconds, "target_chunk_ms": plan.chunk_ms,
            "slow_factor": SLOW_FACTOR, "fast_ms": s.fast_ms, "median_ms": s.median_ms, "slow_share": s.slow_share,
            "longest_slow_s": s.longest_slow_s, "worst_ratio": s.worst_ratio, "chunk_ms": list(s.chunk_ms)})
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0, help="how long to measure (default 30)")
    p.add_argument("--chunk-ms", type=float, default=200.0, help="work per chunk, in ms on a quiet machine")
    p.add_argument("--out", type=Path, default=None, help="write steadiness.md and steadiness.json here")
    p.add_argument("--where", default="this machine")
    args = p.parse_args(argv)
    if not args.seconds > 0:
        p.error(f"--seconds: expected a positive duration, got {args.seconds:g}")
    if not args.chunk_ms > 0:
        p.error(f"--chunk-ms: expected a positive duration, got {args.chunk_ms:g}")
    plan = SteadinessPlan(args.seconds, args.chunk_ms, args.out)
    print(report(plan, measure(plan), args.where), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
