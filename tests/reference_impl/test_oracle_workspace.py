"""FlashInfer MoeAlltoAll workspace bytes (0.6.14 and 0.7.x) and sglang's per-token payloads."""

from __future__ import annotations

import numpy as np
import pytest

from reference_impl.workspace import (
    aux_data_size,
    bf16_dispatch_bytes_per_token,
    combine_bytes_per_token,
    dispatch_bytes_per_token,
    moe_a2a_workspace_size_per_rank,
    workspace_size_np,
)


def test_five_fixes_reference_number() -> None:
    # five-fixes.md: bf16, hidden 7168, top-8, ep 4, 4096/rank -> 471,531,904 B per rank. Derivation:
    # dispatch = 2*7168 + 8*8 = 14400 B, combine = 2*7168 = 14336 B;
    # aux (trtllm_moe_alltoall.cu calculateOffsets): 4+4+16+16 = 40 -> 128, +16 -> 144 -> 256, +16 = 272
    #   -> 384, +4096*22*4 = 360832 -> 360832, +360448 = 721280 -> 721280;
    # total = 721280 + 4*4096*14400 + 4*4096*14336 = 721280 + 235929600 + 234881024 = 471531904.
    dispatch = bf16_dispatch_bytes_per_token(7168, 8)
    combine = combine_bytes_per_token(7168)
    assert (dispatch, combine) == (14400, 14336)
    assert aux_data_size(4, 4096) == 721280
    assert moe_a2a_workspace_size_per_rank(4, 4096, dispatch, combine, top_k=8, num_experts=256) == 471_531_904


def test_eplb_region_only_in_0_7() -> None:
    # fi07 calculateOffsets adds an EPLB region of ep*E*4 bytes (aligned); sglang passes E = 0, so the
    # size is identical unless a caller asks for EPLB stats. ep 4, E 256: 4096 B, already 128-aligned.
    assert aux_data_size(4, 4096, "0.7") == aux_data_size(4, 4096, "0.6.14")
    assert aux_data_size(4, 4096, "0.7", eplb_stats_num_experts=256) == 721280 + 4 * 256 * 4
    assert aux_data_size(4, 4096, "0.6.14", eplb_stats_num_experts=256) == 721280


def test_alignment_of_small_regions() -> None:
    # ep 1, 1 token: 4+4+4+4 = 16 -> 128, +4 -> 256, +4 -> 384, +88 = 472 -> 512, +88 = 600 -> 640.
    assert aux_data_size(1, 1) == 640
    # payload rows pad to 128 each: 1*1*100 -> 128 (dispatch), 1*1*10 -> 128 (combine).
    assert moe_a2a_workspace_size_per_rank(1, 1, 100, 10) == 640 + 128 + 128


@pytest.mark.parametrize(("dtype", "version", "expected"), [
    # 0.5.16 FlashinferDispatcher.__init__: bf16 = 2h + 4k + 4k.
    ("bf16", "0.5.16", 7168 * 2 + 64),
    # 0.5.16 with SGLANG_MOE_NVFP4_DISPATCH: h/2 + h/16 + 8k = 3584 + 448 + 64.
    ("nvfp4", "0.5.16", 3584 + 448 + 64),
    # 0.5.16 has no MXFP8 dispatch: sized as bf16.
    ("mxfp8", "0.5.16", 7168 * 2 + 64),
    # 0.5.23: max(quantized, bf16) -> bf16 for both quantized wire formats.
    ("nvfp4", "0.5.23", 7168 * 2 + 64),
    ("mxfp8", "0.5.23", max(7168 + 224 + 64, 7168 * 2 + 64)),
])
def test_dispatch_payload_bytes(dtype: str, version: str, expected: int) -> None:
    assert dispatch_bytes_per_token(dtype, 7168, 8, version) == expected


def test_eagle_always_sizes_bf16() -> None:
    # "For eagle mode, use the larger workspace size since nextn layer will be unquantized."
    assert dispatch_bytes_per_token("nvfp4", 7168, 8, "0.5.16", speculative_eagle=True) == 7168 * 2 + 64


def test_rejects_what_moe_alltoall_rejects() -> None:
    with pytest.raises(ValueError, match="top_k"):
        moe_a2a_workspace_size_per_rank(4, 4096, 100, 100, top_k=23)
    with pytest.raises(ValueError, match="ep_size"):
        moe_a2a_workspace_size_per_rank(65, 4096, 100, 100)
    with pytest.raises(ValueError, match="dispatch dtype"):
        dispatch_bytes_per_token("fp8", 7168, 8)


def test_numpy_twin_matches_scalar() -> None:
    rng = np.random.default_rng(0)
    ep = rng.integers(1, 65, 500)
    tokens = rng.integers(1, 70000, 500)
    dispatch = rng.integers(1, 20000, 500)
    combine = rng.integers(1, 20000, 500)
    for version in ("0.6.14", "0.7"):
        vectorized = workspace_size_np(ep, tokens, dispatch, combine, version)
        scalar = [moe_a2a_workspace_size_per_rank(int(e), int(t), int(d), int(c), flashinfer=version)
                  for e, t, d, c in zip(ep, tokens, dispatch, combine, strict=True)]
        assert vectorized.tolist() == scalar
