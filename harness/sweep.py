"""`harness sweep`: the oracle's A2A workspace and capture headroom over a grid, vectorized with numpy.

Grid axes: ep_size x max_num_tokens per rank x hidden size x dispatch dtype x GPU. Each point is one
FlashInfer A2A configuration (tp_size = ep_size, as sglang forces for the A2A backends) evaluated
with reference_impl's workspace formula and capture-memory model. Writes a CSV (one row per point)
and a PNG of workspace bytes per GPU with the OOM frontier (the capture headroom left for the workspace).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference_impl.fixes.dp_workspace_sizing import default_chunked_prefill_size
from reference_impl.gpus import GPU_MEMORY_MIB, MIB
from reference_impl.inputs import ServerArgs
from reference_impl.memory import BF16, FP32
from reference_impl.resolve import (
    default_cuda_graph_max_bs,
    default_mem_fraction_static,
    reserve_for_graph_mib,
)
from reference_impl.versions import flashinfer_for_sglang, sglang_at_least
from reference_impl.workspace import DISPATCH_DTYPES, workspace_size_np


@dataclass(frozen=True)
class SweepConfig:
    """The grid and the fixed model/serving parameters of one sweep."""

    ep_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    caps: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384, 32768, 65536)
    hidden_sizes: tuple[int, ...] = (2048, 4096, 5120, 7168)
    dtypes: tuple[str, ...] = DISPATCH_DTYPES
    gpus: tuple[str, ...] = tuple(GPU_MEMORY_MIB)
    top_k: int = 8
    moe_intermediate_size: int = 2048
    vocab_size: int = 129280
    mem_fraction_static: float | None = None
    sglang_version: str = "0.5.16"


@dataclass(frozen=True)
class SweepResult:
    """Flat arrays, one entry per grid point (C order over gpu, ep, cap, hidden, dtype)."""

    gpu: np.ndarray
    ep_size: np.ndarray
    cap: np.ndarray
    hidden_size: np.ndarray
    dtype: np.ndarray
    dispatch_bytes: np.ndarray
    workspace_bytes: np.ndarray
    headroom_bytes: np.ndarray

    @property
    def oom(self) -> np.ndarray:
        return self.headroom_bytes < 0

    def __len__(self) -> int:
        return int(self.ep_size.size)


def dispatch_bytes_np(dtype_index: np.ndarray, hidden: np.ndarray, top_k: int, dtypes: tuple[str, ...],
                      sglang_version: str) -> np.ndarray:
    """Vectorized reference_impl.workspace.dispatch_bytes_per_token (same per-dtype rules)."""
    topk_bytes = 8 * top_k
    bf16 = hidden * 2 + topk_bytes
    per_dtype = {"bf16": bf16}
    nvfp4 = hidden // 2 + hidden // 16 + topk_bytes
    mxfp8 = hidden + hidden // 32 + topk_bytes
    if sglang_at_least(sglang_version, "0.5.23"):
        per_dtype.update(nvfp4=np.maximum(nvfp4, bf16), mxfp8=np.maximum(mxfp8, bf16))
    else:  # 0.5.16: nvfp4 dispatch exists, mxfp8 dispatch does not (sized as bf16)
        per_dtype.update(nvfp4=nvfp4, mxfp8=bf16)
    return np.choose(dtype_index, [per_dtype[d] for d in dtypes])


def slack_before_workspace(gpu: str, ep_size: int, config: SweepConfig) -> tuple[int, int]:
    """(total*(1-mfs) - graph pool) for tp_size = ep_size on one GPU, and cuda_graph_max_bs; see memory.py."""
    total = GPU_MEMORY_MIB[gpu] * MIB
    args = ServerArgs(tp_size=ep_size, ep_size=ep_size, moe_a2a_backend="flashinfer")
    max_bs = default_cuda_graph_max_bs(total, ep_size)
    mfs = config.mem_fraction_static
    if mfs is None:
        mfs = default_mem_fraction_static(args, total, default_chunked_prefill_size(total), max_bs)
    graph_pool = int(reserve_for_graph_mib(args, max_bs) * MIB)
    return (total - int(total * mfs)) - graph_pool, max_bs


def evaluate(config: SweepConfig) -> SweepResult:
    """Every grid point at once; the per-(GPU, ep) budget terms come from a table of len(gpus) x len(eps)."""
    shape = (len(config.gpus), len(config.ep_sizes), len(config.caps), len(config.hidden_sizes), len(config.dtypes))
    gi, ei, ci, hi, di = (axis.ravel() for axis in np.indices(shape, dtype=np.int64))
    ep = np.asarray(config.ep_sizes, dtype=np.int64)[ei]
    cap = np.asarray(config.caps, dtype=np.int64)[ci]
    hidden = np.asarray(config.hidden_sizes, dtype=np.int64)[hi]
    dispatch = dispatch_bytes_np(di, hidden, config.top_k, config.dtypes, config.sglang_version)
    workspace = workspace_size_np(ep, cap, dispatch, hidden * 2, flashinfer_for_sglang(config.sglang_version))
    budget = np.empty(shape[:2], dtype=np.int64)
    max_bs = np.empty(shape[:2], dtype=np.int64)
    for g, gpu in enumerate(config.gpus):
        for e, ep_size in enumerate(config.ep_sizes):
            budget[g, e], max_bs[g, e] = slack_before_workspace(gpu, ep_size, config)
    per_token = 4 * hidden * BF16 + config.top_k * 2 * config.moe_intermediate_size * BF16 + config.vocab_size * FP32
    activations = max_bs[gi, ei] * per_token
    headroom = budget[gi, ei] - activations - workspace
    return SweepResult(gi, ep, cap, hidden, di, dispatch, workspace, headroom)


def write_csv(result: SweepResult, config: SweepConfig, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["gpu", "ep_size", "max_num_tokens_per_rank", "hidden_size", "dispatch_dtype",
                         "dispatch_bytes_per_token", "workspace_bytes_per_rank", "capture_headroom_bytes",
                         "predicted_capture_oom"])
        gpus = np.asarray(config.gpus)[result.gpu]
        dtypes = np.asarray(config.dtypes)[result.dtype]
        writer.writerows(zip(gpus.tolist(), result.ep_size.tolist(), result.cap.tolist(), result.hidden_size.tolist(),
                             dtypes.tolist(), result.dispatch_bytes.tolist(), result.workspace_bytes.tolist(),
                             result.headroom_bytes.tolist(), result.oom.tolist(), strict=True))


def write_png(result: SweepResult, config: SweepConfig, path: Path) -> None:
    """One panel per GPU: workspace vs cap per ep_size (bf16, largest hidden) and each ep's OOM frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hidden = max(config.hidden_sizes)
    dtype = config.dtypes.index("bf16") if "bf16" in config.dtypes else 0
    fig, axes = plt.subplots(1, len(config.gpus), figsize=(5 * len(config.gpus), 4), sharey=True, squeeze=False)
    for g, (gpu, ax) in enumerate(zip(config.gpus, axes[0], strict=True)):
        for ep_size in config.ep_sizes:
            sel = (result.gpu == g) & (result.ep_size == ep_size) & (result.hidden_size == hidden) & (result.dtype == dtype)
            caps = result.cap[sel]
            (line,) = ax.plot(caps, result.workspace_bytes[sel] / 2**30, marker="o", label=f"ep {ep_size}")
            frontier = (result.workspace_bytes[sel] + result.headroom_bytes[sel])[0] / 2**30
            ax.axhline(frontier, color=line.get_color(), linestyle=":", linewidth=1)
            ax.scatter(caps[result.oom[sel]], result.workspace_bytes[sel][result.oom[sel]] / 2**30, marker="x",
                       color="red", zorder=3)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{gpu}: hidden {hidden}, {config.dtypes[dtype]}, top-{config.top_k}")
        ax.set_xlabel("max_num_tokens per rank")
    axes[0][0].set_ylabel("A2A workspace per rank (GiB)")
    fig.suptitle("dotted: OOM frontier per ep_size (capture headroom before the workspace); x: predicted OOM",
                 fontsize="small")
    axes[0][-1].legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _choices(known: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(","))
        unknown = [v for v in values if v not in known]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; known: {', '.join(known)}")
        return values
    return parse


def main(argv: list[str]) -> int:
    defaults = SweepConfig()
    parser = argparse.ArgumentParser(prog="harness sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output directory for sweep.csv and sweep.png")
    parser.add_argument("--ep-sizes", type=_ints, default=defaults.ep_sizes)
    parser.add_argument("--caps", type=_ints, default=defaults.caps, help="max_num_tokens per rank")
    parser.add_argument("--hidden-sizes", type=_ints, default=defaults.hidden_sizes)
    parser.add_argument("--dtypes", type=_choices(DISPATCH_DTYPES), default=defaults.dtypes)
    parser.add_argument("--gpus", type=_choices(tuple(GPU_MEMORY_MIB)), default=defaults.gpus)
    parser.add_argument("--top-k", type=int, default=defaults.top_k)
    parser.add_argument("--moe-intermediate-size", type=int, default=defaults.moe_intermediate_size)
    parser.add_argument("--vocab-size", type=int, default=defaults.vocab_size)
    parser.add_argument("--mem-fraction-static", type=float, default=None,
                        help="default: sglang 0.5.16's heuristic per GPU")
    parser.add_argument("--sglang-version", default=defaults.sglang_version)
    args = parser.parse_args(argv)
    if not 0 < args.top_k <= 22:
        parser.error(f"--top-k: expected 1..22 (FlashInfer kMaxTopK), got {args.top_k}")
    if max(args.ep_sizes) > 64:
        parser.error(f"--ep-sizes: FlashInfer MoeAlltoAll supports at most 64 ranks, got {max(args.ep_sizes)}")
    if args.mem_fraction_static is not None and not 0 < args.mem_fraction_static < 1:
        parser.error(f"--mem-fraction-static: expected a number in (0, 1), got {args.mem_fraction_static}")
    config = SweepConfig(args.ep_sizes, args.caps, args.hidden_sizes, args.dtypes, args.gpus, args.top_k,
                         args.moe_intermediate_size, args.vocab_size, args.mem_fraction_static, args.sglang_version)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"--out {args.out}: cannot create directory ({exc.strerror})", file=sys.stderr)
        return 2
    result = evaluate(config)
    write_csv(result, config, args.out / "sweep.csv")
    write_png(result, config, args.out / "sweep.png")
    print(f"{len(result)} configurations, {int(result.oom.sum())} predicted capture OOM -> "
          f"{args.out / 'sweep.csv'}, {args.out / 'sweep.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
