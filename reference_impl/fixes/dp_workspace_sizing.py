"""DP workspace sizing and set_dp_buffer_len at capture (#26643).

Fixed (0.5.16): the dispatcher default cap is max(chunked_prefill_size or 4096, 4096) per rank,
chunked_prefill_size being the DP-adjusted value sglang holds at model construction; the decode
graph runner hands set_dp_buffer_len the per-rank list [n]*dp_size (MLP-TP gather), [n] (attn-TP
gather) or None. Reverted: the cap default is the flat 4096 #25907 settled on, and set_dp_buffer_len
gets no per-rank token list at capture.
"""

from __future__ import annotations

from reference_impl.fixset import DP_WORKSPACE_SIZING, FixSet
from reference_impl.inputs import ServerArgs

# FlashinferDispatcher.__init__ (0.5.16): "resolve_max_num_reqs caps at 4096 per DP worker", used as
# a floor because max_running_requests is unresolved at model construction.
DECODE_FLOOR_TOKENS = 4096
# Default tokens per rank between #25907 (settled at 4096) and #26643.
PRE_FIX_DEFAULT_TOKENS = 4096
MIB = 1 << 20


def default_chunked_prefill_size(gpu_memory_bytes: int | None) -> int:
    """ServerArgs._handle_gpu_memory_settings (0.5.16) when --chunked-prefill-size is not given.

    gpu_mem is in MiB: <20 GiB 2048, <35 GiB 2048, <60 GiB 4096, <90 GiB 8192, <160 GiB 8192,
    else 16384; unknown memory -> 4096.
    """
    if gpu_memory_bytes is None:
        return 4096
    gpu_mem = gpu_memory_bytes / MIB
    if gpu_mem < 35 * 1024:
        return 2048
    if gpu_mem < 60 * 1024:
        return 4096
    if gpu_mem < 160 * 1024:
        return 8192
    return 16384


def resolved_chunked_prefill_size(args: ServerArgs, gpu_memory_bytes: int | None) -> int:
    """chunked_prefill_size as the dispatcher reads it: GPU default if unset, // dp_size under DP attention.

    ServerArgs._handle_data_parallelism divides it by dp_size when DP attention is on; -1 disables.
    """
    cps = args.chunked_prefill_size
    if cps is None:
        cps = default_chunked_prefill_size(gpu_memory_bytes)
    if args.enable_dp_attention and cps > 0:
        cps = cps // args.dp_size
    return cps


def fixed_default_tokens_per_rank(chunked_prefill_size: int | None) -> int:
    """max(cps if cps and cps > 0 else 4096, 4096): covers the largest prefill chunk and decode batch."""
    cps = chunked_prefill_size
    return max(cps if cps and cps > 0 else DECODE_FLOOR_TOKENS, DECODE_FLOOR_TOKENS)


def reverted_default_tokens_per_rank(chunked_prefill_size: int | None) -> int:
    """Before #26643 the default ignored chunked_prefill_size (flat 4096)."""
    del chunked_prefill_size
    return PRE_FIX_DEFAULT_TOKENS


def default_tokens_per_rank(fixes: FixSet, chunked_prefill_size: int | None) -> int:
    if fixes.applied(DP_WORKSPACE_SIZING):
        return fixed_default_tokens_per_rank(chunked_prefill_size)
    return reverted_default_tokens_per_rank(chunked_prefill_size)


def payload_workspace_tokens(ep_size: int, max_num_tokens: int) -> int:
    """Payload rows the workspace holds for each of dispatch and combine: ep_size x max_num_tokens."""
    return ep_size * max_num_tokens


def fixed_capture_global_num_tokens(num_tokens: int, dp_size: int, mlp_tp_gather: bool,
                                    attn_tp_gather: bool) -> list[int] | None:
    """decode_cuda_graph_runner capture: [n]*dp_size, [n] or None, handed to set_dp_buffer_len."""
    if mlp_tp_gather:
        return [num_tokens] * dp_size
    if attn_tp_gather:
        return [num_tokens]
    return None


def reverted_capture_global_num_tokens(num_tokens: int, dp_size: int, mlp_tp_gather: bool,
                                       attn_tp_gather: bool) -> list[int] | None:
    """Before #26643 set_dp_buffer_len got only the buffer lengths: the dispatcher saw no list."""
    del num_tokens, dp_size, mlp_tp_gather, attn_tp_gather
    return None


def capture_global_num_tokens(fixes: FixSet, num_tokens: int, dp_size: int, mlp_tp_gather: bool,
                              attn_tp_gather: bool) -> list[int] | None:
    rule = (fixed_capture_global_num_tokens if fixes.applied(DP_WORKSPACE_SIZING)
            else reverted_capture_global_num_tokens)
    return rule(num_tokens, dp_size, mlp_tp_gather, attn_tp_gather)


def global_dp_buffer_len(global_num_tokens: list[int] | None) -> int | None:
    """sum(global_num_tokens_cpu) as the gathered buffer length, None without a gathered buffer."""
    return None if global_num_tokens is None else sum(global_num_tokens)
