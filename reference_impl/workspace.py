"""FlashInfer MoeAlltoAll workspace bytes per rank and sglang's per-token A2A payloads.

Reproduces flashinfer-python's `moe_a2a_get_workspace_size_per_rank` (comm/trtllm_moe_alltoall.py)
and the C++ `calculateOffsets` it calls (data/csrc/trtllm_moe_alltoall.cu) for 0.6.14 and 0.7.x.
Scalar functions take Python ints; the `*_np` twins take numpy int64 arrays for the sweep.
"""

from __future__ import annotations

import numpy as np

from reference_impl.versions import DISPATCH_MAX_SINCE, flashinfer_has_eplb_region, sglang_at_least

# moeAlltoAllKernels.h: kMaxTopK = 22; the top-k rank/index tables are sized for it, not for top_k.
K_MAX_TOP_K = 22
# moeAlltoAllKernels.h: kMaxRanks = 64 (largest EP size the kernels accept).
K_MAX_RANKS = 64
# trtllm_moe_alltoall.cu: kCachelineAlignment = 128; the Python wrapper pads each region to 128 too.
ALIGNMENT = 128
INT32_BYTES = 4
DISPATCH_DTYPES: tuple[str, ...] = ("bf16", "nvfp4", "mxfp8")


def pad_up(value: int, alignment: int = ALIGNMENT) -> int:
    return (value + alignment - 1) // alignment * alignment


def aux_data_size(ep_size: int, max_num_tokens: int, flashinfer: str = "0.6.14",
                  eplb_stats_num_experts: int = 0) -> int:
    """getMoeA2AAuxDataSize: byte offset of the payload region (flags, counters, top-k tables, EPLB)."""
    offset = INT32_BYTES + INT32_BYTES  # flag value, local token counter
    offset += ep_size * INT32_BYTES  # send counters
    offset += ep_size * INT32_BYTES  # recv counters
    regions = [
        ep_size * INT32_BYTES,  # dispatch completion flags
        ep_size * INT32_BYTES,  # combine completion flags
        max_num_tokens * K_MAX_TOP_K * INT32_BYTES,  # top-k target ranks
        max_num_tokens * K_MAX_TOP_K * INT32_BYTES,  # top-k send indices
    ]
    if flashinfer_has_eplb_region(flashinfer):
        regions.append(ep_size * eplb_stats_num_experts * INT32_BYTES)  # EPLB gathered stats
    for size in regions:
        offset = pad_up(offset) + size
    return pad_up(offset)


def moe_a2a_workspace_size_per_rank(
    ep_size: int,
    max_num_tokens: int,
    dispatch_bytes_per_token: int,
    combine_bytes_per_token: int,
    top_k: int | None = None,
    num_experts: int | None = None,
    flashinfer: str = "0.6.14",
    eplb_stats_num_experts: int = 0,
) -> int:
    """Bytes one rank allocates: pad128(aux) + pad128(ep*T*dispatch) + pad128(ep*T*combine).

    top_k / num_experts do not enter the size (the tables use kMaxTopK); they are checked against
    the limits MoeAlltoAll enforces. sglang passes no EPLB region (eplb_stats_num_experts = 0).
    """
    if ep_size < 1 or ep_size > K_MAX_RANKS:
        raise ValueError(f"ep_size must be in 1..{K_MAX_RANKS}, got {ep_size}")
    if max_num_tokens < 1:
        raise ValueError(f"max_num_tokens must be positive, got {max_num_tokens}")
    if top_k is not None and not 0 < top_k <= K_MAX_TOP_K:
        raise ValueError(f"top_k must be in 1..{K_MAX_TOP_K}, got {top_k}")
    if num_experts is not None and num_experts < 1:
        raise ValueError(f"num_experts must be positive, got {num_experts}")
    return (
        aux_data_size(ep_size, max_num_tokens, flashinfer, eplb_stats_num_experts)
        + pad_up(ep_size * max_num_tokens * dispatch_bytes_per_token)
        + pad_up(ep_size * max_num_tokens * combine_bytes_per_token)
    )


def bf16_dispatch_bytes_per_token(hidden_size: int, top_k: int) -> int:
    """bf16 hidden states + int32 top-k ids + float32 top-k weights (FlashinferDispatcher.__init__)."""
    return hidden_size * 2 + top_k * 4 + top_k * 4


def dispatch_bytes_per_token(dtype: str, hidden_size: int, top_k: int, sglang_version: str = "0.5.16",
                             speculative_eagle: bool = False) -> int:
    """Dispatch payload bytes per token exactly as sglang's FlashinferDispatcher.__init__ sizes it.

    0.5.16: nvfp4 (SGLANG_MOE_NVFP4_DISPATCH) = hidden/2 + hidden/16 + 8*top_k; there is no mxfp8
    dispatch, so mxfp8 is sized as bf16. 0.5.23: nvfp4 and mxfp8 (hidden + hidden/32 + 8*top_k) are
    sized as max(quantized, bf16) so a BF16 fallback fits. EAGLE always sizes bf16 (unquantized nextn).
    """
    if dtype not in DISPATCH_DTYPES:
        raise ValueError(f"dispatch dtype must be one of {DISPATCH_DTYPES}, got {dtype!r}")
    topk_bytes = top_k * 4 + top_k * 4
    bf16 = hidden_size * 2 + topk_bytes
    if speculative_eagle or dtype == "bf16":
        return bf16
    newer = sglang_at_least(sglang_version, DISPATCH_MAX_SINCE)
    if dtype == "nvfp4":
        quantized = hidden_size // 2 + hidden_size // 16 + topk_bytes
        return max(quantized, bf16) if newer else quantized
    if not newer:
        return bf16
    quantized = hidden_size + hidden_size // 32 + topk_bytes
    return max(quantized, bf16)


def combine_bytes_per_token(hidden_size: int) -> int:
    """bf16 hidden states come back in combine for every dispatch dtype."""
    return hidden_size * 2


def _pad_up_np(value: np.ndarray) -> np.ndarray:
    return (value + (ALIGNMENT - 1)) // ALIGNMENT * ALIGNMENT


def aux_data_size_np(ep_size: np.ndarray, max_num_tokens: np.ndarray, flashinfer: str = "0.6.14",
                     eplb_stats_num_experts: int = 0) -> np.ndarray:
    """Vectorized aux_data_size over int64 arrays (same region order and padding)."""
    ep = np.asarray(ep_size, dtype=np.int64)
    tokens = np.asarray(max_num_tokens, dtype=np.int64)
    offset = 2 * INT32_BYTES + 2 * ep * INT32_BYTES
    regions = [ep * INT32_BYTES, ep * INT32_BYTES, tokens * (K_MAX_TOP_K * INT32_BYTES),
               tokens * (K_MAX_TOP_K * INT32_BYTES)]
    if flashinfer_has_eplb_region(flashinfer):
        regions.append(ep * (eplb_stats_num_experts * INT32_BYTES))
    for size in regions:
        offset = _pad_up_np(offset) + size
    return _pad_up_np(offset)


def workspace_size_np(ep_size: np.ndarray, max_num_tokens: np.ndarray, dispatch_bytes: np.ndarray,
                      combine_bytes: np.ndarray, flashinfer: str = "0.6.14") -> np.ndarray:
    """Vectorized moe_a2a_workspace_size_per_rank (no argument checks: the sweep builds valid grids)."""
    ep = np.asarray(ep_size, dtype=np.int64)
    tokens = np.asarray(max_num_tokens, dtype=np.int64)
    rows = ep * tokens
    return (aux_data_size_np(ep, tokens, flashinfer)
            + _pad_up_np(rows * np.asarray(dispatch_bytes, dtype=np.int64))
            + _pad_up_np(rows * np.asarray(combine_bytes, dtype=np.int64)))
