"""FlashInfer's own moe_a2a_get_workspace_size_per_rank against reference_impl's formula, over a grid."""

from __future__ import annotations

import itertools
import time

import pytest

from reference_impl.workspace import (
    aux_data_size,
    combine_bytes_per_token,
    dispatch_bytes_per_token,
    moe_a2a_workspace_size_per_rank,
)
from tests.gpu.support.budget import Budget
from tests.gpu.support.evidence import Evidence
from tests.gpu.support.machine import Gpu

pytestmark = pytest.mark.gpu

EP_SIZES = (1, 2, 4, 8, 16, 32, 64)
MAX_TOKENS = (1, 3, 128, 1000, 4096, 8192)
HIDDEN = (1024, 4096, 7168)
TOP_K = (4, 8)
DTYPES = ("bf16", "nvfp4")


def test_workspace_size_matches_flashinfer(evidence: Evidence, budget: Budget, gpus: tuple[Gpu, ...]) -> None:
    short = budget.shortfall(150, "flashinfer JIT build + workspace grid")
    if short:
        evidence.record("flashinfer workspace grid", "skipped", reason=short)
        pytest.skip(short)
    started = time.monotonic()
    try:
        import flashinfer
        from flashinfer.comm.trtllm_moe_alltoall import (
            get_moe_alltoall_module,
            moe_a2a_get_workspace_size_per_rank,
        )
        module = get_moe_alltoall_module()  # JIT-builds the C++ op on first use
    except Exception as exc:  # the exact reason is the evidence
        reason = f"flashinfer moe_a2a not usable here: {type(exc).__name__}: {exc}"
        evidence.record("flashinfer workspace grid", "skipped", reason=reason[:2000])
        pytest.skip(reason[:500])
    build_s = time.monotonic() - started
    rows, mismatches = [], []
    for ep, tokens, hidden, top_k, dtype in itertools.product(EP_SIZES, MAX_TOKENS, HIDDEN, TOP_K, DTYPES):
        dispatch = dispatch_bytes_per_token(dtype, hidden, top_k, "0.5.16")
        combine = combine_bytes_per_token(hidden)
        theirs = int(moe_a2a_get_workspace_size_per_rank(ep, tokens, dispatch, combine))
        ours = moe_a2a_workspace_size_per_rank(ep, tokens, dispatch, combine, top_k=top_k, flashinfer="0.6.14")
        aux_theirs = int(module.moe_a2a_get_aux_data_size(ep, tokens))
        aux_ours = aux_data_size(ep, tokens, "0.6.14")
        row = {"ep_size": ep, "max_num_tokens": tokens, "hidden": hidden, "top_k": top_k, "dtype": dtype,
               "dispatch_bytes_per_token": dispatch, "combine_bytes_per_token": combine,
               "flashinfer": theirs, "reference": ours, "aux_flashinfer": aux_theirs, "aux_reference": aux_ours}
        rows.append(row)
        if theirs != ours or aux_theirs != aux_ours:
            mismatches.append(row)
    evidence.write_json("flashinfer-workspace.json", {
        "flashinfer_version": flashinfer.__version__, "jit_build_s": round(build_s, 1),
        "configs": len(rows), "mismatches": mismatches, "rows": rows})
    evidence.record("flashinfer workspace grid", "passed" if not mismatches else "failed",
                    flashinfer=flashinfer.__version__, configs=len(rows), mismatches=len(mismatches),
                    jit_build_s=round(build_s, 1))
    assert not mismatches, mismatches[:5]
