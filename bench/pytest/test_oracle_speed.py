"""Oracle speed: the vectorized sweep must evaluate >= 1e6 configurations per minute (issue 2, item 5)."""

from __future__ import annotations

from typing import Any

from harness.sweep import SweepConfig, evaluate
from reference_impl.gpus import GPU_MEMORY_MIB
from reference_impl.workspace import DISPATCH_DTYPES

# 64 ep sizes x 128 caps x 16 hidden sizes x 3 dtypes x 3 GPUs = 1,179,648 configurations per call.
GRID = SweepConfig(
    ep_sizes=tuple(range(1, 65)),
    caps=tuple(range(256, 256 * 129, 256)),
    hidden_sizes=tuple(range(1024, 1024 * 17, 1024)),
    dtypes=DISPATCH_DTYPES,
    gpus=tuple(GPU_MEMORY_MIB),
)
TARGET_PER_MINUTE = 1_000_000


def test_sweep_configs_per_minute(benchmark: Any) -> None:
    result = benchmark.pedantic(evaluate, args=(GRID,), rounds=5, iterations=1, warmup_rounds=1)
    configs = len(result)
    assert configs == 64 * 128 * 16 * 3 * 3
    per_minute = configs / benchmark.stats.stats.median * 60
    benchmark.extra_info["configs"] = configs
    benchmark.extra_info["configs_per_minute"] = per_minute
    assert per_minute >= TARGET_PER_MINUTE, f"{per_minute:.3g} configs/minute < {TARGET_PER_MINUTE:.0e}"


def test_scalar_predict_per_minute(benchmark: Any) -> None:
    """The full scalar predict() path, for comparison (not vectorized)."""
    from reference_impl.inputs import GpuSpec, ModelConfig, OracleInput, Runtime, ServerArgs
    from reference_impl.predict import predict

    inp = OracleInput(
        server_args=ServerArgs(tp_size=4, dp_size=4, ep_size=4, enable_dp_attention=True, moe_a2a_backend="flashinfer",
                               chunked_prefill_size=16384, cuda_graph_max_bs=64),
        model=ModelConfig(hidden_size=7168, num_experts_per_tok=8, num_experts=256, num_hidden_layers=61,
                          moe_intermediate_size=2048, vocab_size=129280),
        runtime=Runtime(dp_global_num_tokens=(4, 4, 4, 4), local_num_tokens=4, batch_size=4),
        gpu=GpuSpec(name="B200"),
    )
    prediction = benchmark(predict, inp)
    assert prediction.config_valid
    benchmark.extra_info["predicts_per_minute"] = 60 / benchmark.stats.stats.median
