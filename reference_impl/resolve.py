"""Server args as sglang 0.5.16 resolves them before the model is built (defaults and overrides)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from reference_impl.fixes.dp_workspace_sizing import (
    default_chunked_prefill_size,
    resolved_chunked_prefill_size,
)
from reference_impl.gpus import MIB, gpu_memory_bytes
from reference_impl.inputs import OracleInput, ServerArgs

# arg_groups/overrides.py _A2A_EP_SPANNING_BACKENDS: these backends force ep_size = tp_size.
A2A_EP_SPANNING_BACKENDS = frozenset({"megamoe", "deepep", "mooncake", "nixl", "ascend_fuseep", "flashinfer", "mori"})


@dataclass(frozen=True)
class ResolvedArgs:
    """Resolved server args plus the derived values the rules read."""

    server_args: ServerArgs
    gpu_memory_bytes: int | None
    chunked_prefill_size: int  # DP-adjusted, as the dispatcher reads it
    cuda_graph_max_bs: int
    mem_fraction_static: float | None


def resolve_server_args(args: ServerArgs) -> ServerArgs:
    """_data_parallelism_defaults (dp_size 1 turns DP attention / DP lm head off) and _a2a_ep_size."""
    changes: dict[str, object] = {}
    if args.dp_size == 1 and (args.enable_dp_attention or args.enable_dp_lm_head):
        changes.update(enable_dp_attention=False, enable_dp_lm_head=False)
    if args.moe_a2a_backend in A2A_EP_SPANNING_BACKENDS and args.ep_size != args.tp_size:
        changes["ep_size"] = args.tp_size
    return dataclasses.replace(args, **changes) if changes else args


def default_cuda_graph_max_bs(gpu_bytes: int | None, tp_size: int) -> int:
    """_handle_gpu_memory_settings' decode max_bs by GPU memory (MiB thresholds) and tp_size."""
    if gpu_bytes is None:
        return 160
    gpu_mem = gpu_bytes / MIB
    if gpu_mem < 20 * 1024:
        return 8
    if gpu_mem < 35 * 1024:
        return 24 if tp_size < 4 else 80
    if gpu_mem < 60 * 1024:
        return 32 if tp_size < 4 else 160
    if gpu_mem < 160 * 1024:
        return 256 if tp_size < 4 else 512
    return 512


def reserve_for_graph_mib(args: ServerArgs, max_bs: int) -> float:
    """ServerArgs.reserve_for_graph_mb with the prefill CUDA graph disabled (non-disaggregated)."""
    reserved = max_bs * 2.0
    if args.enable_dp_attention:
        reserved += max_bs * args.dp_size * 3
        if max_bs > 300:
            reserved += max_bs * args.dp_size * 1.5
    return reserved


def default_mem_fraction_static(args: ServerArgs, gpu_bytes: int | None, chunked_prefill_size: int,
                                max_bs: int) -> float:
    """_handle_gpu_memory_settings: (gpu_mem - reserved) / gpu_mem rounded to 3 places (pp_size 1).

    reserved = 512 + max(chunked_prefill_size, 2048) * 1.5 + tp_size / 8 * 1024 + graph reserve, at
    least 10 GiB above 60 GiB GPUs; chunked_prefill_size is the value before the DP division.
    """
    if gpu_bytes is None:
        return 0.88
    gpu_mem = gpu_bytes / MIB
    activation_tokens = max(chunked_prefill_size, 2048)
    reserved = 512 + activation_tokens * 1.5 + args.tp_size / 8 * 1024 + reserve_for_graph_mib(args, max_bs)
    if gpu_mem > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((gpu_mem - reserved) / gpu_mem, 3)


def resolve(inp: OracleInput) -> ResolvedArgs:
    args = resolve_server_args(inp.server_args)
    gpu_bytes = gpu_memory_bytes(inp.gpu)
    max_bs = args.cuda_graph_max_bs or default_cuda_graph_max_bs(gpu_bytes, args.tp_size)
    cps_before_dp = args.chunked_prefill_size
    if cps_before_dp is None:
        cps_before_dp = default_chunked_prefill_size(gpu_bytes)
    mfs = args.mem_fraction_static
    if mfs is None and gpu_bytes is not None:
        mfs = default_mem_fraction_static(args, gpu_bytes, cps_before_dp, max_bs)
    return ResolvedArgs(
        server_args=args,
        gpu_memory_bytes=gpu_bytes,
        chunked_prefill_size=resolved_chunked_prefill_size(args, gpu_bytes),
        cuda_graph_max_bs=max_bs,
        mem_fraction_static=mfs,
    )
