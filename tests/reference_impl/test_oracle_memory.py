"""Capture-time memory budget: catalog, sglang's defaults, and the 16384-vs-4096 B200 OOM of #25907."""

from __future__ import annotations

import dataclasses

from oracle_models import DEEPSEEK_V3

from reference_impl.gpus import GPU_MEMORY_MIB, MIB
from reference_impl.inputs import GpuSpec, OracleInput, ServerArgs
from reference_impl.memory import MemoryAssumptions, capture_budget, weights_bytes_per_rank
from reference_impl.resolve import default_mem_fraction_static, resolve

B200_EP4 = ServerArgs(tp_size=4, dp_size=4, enable_dp_attention=True, ep_size=4, moe_a2a_backend="flashinfer",
                      chunked_prefill_size=16384, cuda_graph_max_bs=64, mem_fraction_static=0.9)


def _inp(tokens_per_rank: int, args: ServerArgs = B200_EP4) -> OracleInput:
    return OracleInput(args, DEEPSEEK_V3, gpu=GpuSpec(name="B200"),
                       env=(("SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK", str(tokens_per_rank)),))


def test_budget_adds_up() -> None:
    budget = capture_budget(_inp(4096))
    assert budget is not None
    assert budget.total_bytes == GPU_MEMORY_MIB["B200"] * MIB
    assert budget.a2a_workspace_bytes == 471_531_904  # five-fixes.md, bf16 hidden 7168 top-8 ep 4
    slack = budget.total_bytes - budget.static_bytes
    assert budget.headroom_bytes == slack - budget.graph_pool_bytes - budget.activation_bytes - budget.a2a_workspace_bytes
    assert budget.kv_cache_bytes == budget.static_bytes - budget.weights_bytes


def test_16384_per_rank_ooms_where_4096_fits() -> None:
    # #25907: the 16384 default OOMed during CUDA graph capture on 4xB200, 4096 did not. The
    # workspace grows linearly with the cap (0.47 GB -> 1.89 GB per rank), so any deployment whose
    # headroom before the workspace lies between the two shows exactly that split. The PR does not
    # state its mem_fraction_static; we set it so that this headroom is 1 GiB and check both sides.
    base = capture_budget(_inp(4096))
    assert base is not None
    before_workspace = base.headroom_bytes + base.a2a_workspace_bytes
    # Choose mem_fraction_static so the pre-workspace headroom is 1 GiB, then check both sides.
    total = base.total_bytes
    target_slack = (1 << 30) + base.graph_pool_bytes + base.activation_bytes
    mfs = round(1 - target_slack / total, 4)
    args = dataclasses.replace(B200_EP4, mem_fraction_static=mfs)
    fits = capture_budget(_inp(4096, args))
    ooms = capture_budget(_inp(16384, args))
    assert fits is not None and ooms is not None and before_workspace > 0
    assert not fits.predicted_capture_oom and ooms.predicted_capture_oom
    assert ooms.a2a_workspace_bytes == 1_886_126_464  # 16384 rows: pad128(aux) + 4*16384*(14400 + 14336)


def test_workspace_in_static_pool_never_causes_capture_oom() -> None:
    budget = capture_budget(_inp(65536), assumptions=MemoryAssumptions(workspace_in_slack=False))
    in_slack = capture_budget(_inp(65536))
    assert budget is not None and in_slack is not None
    assert budget.headroom_bytes == in_slack.headroom_bytes + in_slack.a2a_workspace_bytes
    assert budget.kv_cache_bytes == in_slack.kv_cache_bytes - in_slack.a2a_workspace_bytes


def test_default_mem_fraction_static_h100() -> None:
    # server_args._handle_gpu_memory_settings on an 81559 MiB H100, tp 1, cps 8192, max_bs 256:
    # reserved = 512 + 8192*1.5 + 1/8*1024 + 256*2 = 13440 MiB (> the 10 GiB floor);
    # mfs = round((81559 - 13440) / 81559, 3) = round(0.83521, 3) = 0.835.
    assert default_mem_fraction_static(ServerArgs(), GPU_MEMORY_MIB["H100"] * MIB, 8192, 256) == 0.835


def test_resolve_uses_gpu_defaults() -> None:
    resolved = resolve(OracleInput(ServerArgs(tp_size=8), DEEPSEEK_V3, gpu=GpuSpec(name="H200")))
    # H200 143771 MiB < 160 GiB: chunked 8192, decode max_bs 512 at tp >= 4.
    assert (resolved.chunked_prefill_size, resolved.cuda_graph_max_bs) == (8192, 512)
    assert resolved.mem_fraction_static is not None and 0 < resolved.mem_fraction_static < 1


def test_weights_split_over_ep() -> None:
    ep1 = weights_bytes_per_rank(DEEPSEEK_V3, ServerArgs(tp_size=8, ep_size=1))
    ep8 = weights_bytes_per_rank(DEEPSEEK_V3, ServerArgs(tp_size=8, ep_size=8))
    # Experts are split 8 ways either way (EP 8, or MoE-TP 8): same bytes per rank.
    assert ep1 == ep8
    assert weights_bytes_per_rank(DEEPSEEK_V3, ServerArgs(tp_size=4, ep_size=4)) > ep8


def test_unknown_gpu_gives_no_budget() -> None:
    assert capture_budget(OracleInput(B200_EP4, DEEPSEEK_V3)) is None
