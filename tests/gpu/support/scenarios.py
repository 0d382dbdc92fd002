"""GPU-suite scenarios: written as harness scenario TOML files next to the evidence they produce."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

Value = bool | int | float | str | tuple[int, ...]

# The launch flags that served the tiny model on an H100 (../shared/sglang-offline.md), minus the port.
TINY_SGLANG_ARGS: tuple[tuple[str, Value], ...] = (
    ("device", "cuda"),
    ("attention_backend", "triton"),
    ("sampling_backend", "pytorch"),
    ("grammar_backend", "none"),
    ("mem_fraction_static", 0.3),
    ("cuda_graph_max_bs", 4),
    ("max_running_requests", 4),
    ("disable_radix_cache", True),
    # BS=1 decode is what is measured; prefill graph capture alone took 85 s of a 166 s startup.
    ("disable_prefill_cuda_graph", True),
)


@dataclass(frozen=True)
class GpuScenario:
    """One scenario of the suite; `to_toml` gives the harness scenario file."""

    name: str
    description: str
    targets: tuple[str, ...]
    gpus: int
    server_args: tuple[tuple[str, Value], ...]
    model: str = "tiny-qwen3-moe"
    input_len: int = 128
    output_len: int = 64
    warmups: int = 3
    requests: int = 10
    env: tuple[tuple[str, str], ...] = ()
    oracle: tuple[tuple[str, Value], ...] = (("dispatch_dtype", "bf16"), ("local_num_tokens", 1))
    expect: tuple[tuple[str, Value], ...] = ()

    def with_args(self, **changes: Value) -> GpuScenario:
        """The same scenario with some server args replaced, added, or (value None) removed."""
        args = dict(self.server_args)
        for key, value in changes.items():
            if value is None:
                args.pop(key, None)
            else:
                args[key] = value
        return replace(self, server_args=tuple(args.items()))

    def to_toml(self) -> str:
        lines = [f"name = {_value(self.name)}", f"description = {_value(self.description)}",
                 f"model = {_value(self.model)}", f"targets = {_value(self.targets)}", "", "[server_args]"]
        lines += [f"{key} = {_value(value)}" for key, value in self.server_args]
        lines += ["", "[env]"] + [f"{key} = {_value(value)}" for key, value in self.env]
        lines += ["", "[workload]", f"input_len = {self.input_len}", f"output_len = {self.output_len}",
                  f"warmups = {self.warmups}", f"requests = {self.requests}", ""]
        for target in self.targets:
            lines += [f"[hardware.{target}]", f"gpus = {self.gpus}", ""]
        lines += ["[oracle]"] + [f"{key} = {_value(value)}" for key, value in self.oracle]
        lines += ["", "[oracle.expect]"] + [f"{key} = {_value(value)}" for key, value in self.expect]
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name}.toml"
        path.write_text(self.to_toml(), encoding="utf-8")
        return path


def _value(value: Value | tuple[str, ...]) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def for_reference(scenario: GpuScenario, known_flags: set[str]) -> tuple[GpuScenario, tuple[str, ...]]:
    """The scenario with the sglang-only flags the reference engine's parser rejects taken out."""
    dropped = tuple(k for k, _v in scenario.server_args if "--" + k.replace("_", "-") not in known_flags)
    return scenario.with_args(**dict.fromkeys(dropped)), dropped


BASELINE = GpuScenario(
    name="gpu-baseline",
    description="Tiny Qwen3-MoE on one GPU, BS=1 TTFT/TPOT, decode CUDA graphs (bs 1,2,4), instrumentation on",
    targets=("reference", "sglang"), gpus=1, server_args=TINY_SGLANG_ARGS,
    expect=(("require_attn_tp_gather", False), ("capture_num_tokens", 1)),
)

PREFILL_CAPTURE = GpuScenario(
    name="gpu-prefill-capture",
    description="Tiny Qwen3-MoE on one GPU with a two-size prefill CUDA graph (64, 128 tokens): capture memory",
    targets=("sglang",), gpus=1, output_len=16, warmups=2, requests=5,
    server_args=BASELINE.with_args(disable_prefill_cuda_graph=None, cuda_graph_bs_prefill=(64, 128)).server_args,
)


def capture_oom(total_memory_gib: float) -> GpuScenario:
    """mem-fraction-static that leaves ~0.40 GiB outside the pool, and graphs up to bs 256.

    On an 80 GB H100, 0.994 and 0.996 (0.48 and 0.32 GiB left) OOMed in CUDA graph setup after the KV
    pool fit (../shared/sglang-offline.md); the fraction is derived from the card so an H200 gets the
    same absolute headroom.
    """
    fraction = round(1.0 - 0.40 / total_memory_gib, 5)
    return GpuScenario(
        name="gpu-capture-oom",
        description=f"Forced OOM in CUDA graph setup: mem_fraction_static {fraction}, cuda_graph_max_bs 256",
        targets=("sglang",), gpus=1, output_len=8, warmups=1, requests=2,
        server_args=BASELINE.with_args(mem_fraction_static=fraction, cuda_graph_max_bs=256,
                                       max_running_requests=None).server_args,
    )


def two_gpu_scenarios() -> tuple[GpuScenario, ...]:
    """The issue's 2-GPU configurations, each BS=1 with oracle verdicts from the records."""
    base = BASELINE.with_args(mem_fraction_static=0.3)
    dp2 = (("dispatch_dtype", "bf16"), ("dp_global_num_tokens", (1, 1)), ("local_num_tokens", 1),
           ("batch_size", 1))
    common = {"targets": ("sglang",), "gpus": 2, "output_len": 32, "warmups": 2, "requests": 8, "oracle": dp2}
    return (
        GpuScenario(name="gpu2-dp-attention", description="tp 2, --enable-dp-attention --dp-size 2",
                    server_args=base.with_args(tp_size=2, dp_size=2, enable_dp_attention=True).server_args,
                    **common),
        GpuScenario(name="gpu2-dp-attention-no-gather",
                    description="tp 2, --enable-dp-attention --dp-size 2 --disable-attn-tp-gather",
                    server_args=base.with_args(tp_size=2, dp_size=2, enable_dp_attention=True,
                                               disable_attn_tp_gather=True).server_args, **common),
        GpuScenario(name="gpu2-attn-cp", description="tp 2, --attn-cp-size 2 --moe-dp-size 1",
                    server_args=base.with_args(tp_size=2, attn_cp_size=2, moe_dp_size=1).server_args,
                    **{**common, "oracle": (("dispatch_dtype", "bf16"), ("local_num_tokens", 1))},
                    expect=(("moe_dp_group_is_attn_cp_group", True),)),
        GpuScenario(name="gpu2-flashinfer-a2a",
                    description="tp 2, dp-attention dp 2, --moe-a2a-backend flashinfer --ep-size 2",
                    server_args=base.with_args(tp_size=2, dp_size=2, enable_dp_attention=True, ep_size=2,
                                               moe_a2a_backend="flashinfer").server_args, **common),
    )
