"""The one frozen configuration object the engine hands down from the CLI to every rank."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import metadata

from reference_impl.fixset import FixSet
from reference_impl.inputs import ServerArgs

A2A_TOKENS_ENV = "SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK"
DEVICE_MEMORY_ENV = "REFERENCE_ENGINE_DEVICE_MEMORY_GIB"
GIB = 1 << 30
# sglang's defaults for a 16 GiB GPU (cuda_graph_max_bs 8) keep CPU startup short; 80 mimics an H100.
CPU_DEFAULT_GIB = 16.0


@dataclass(frozen=True)
class EngineConfig:
    """Server args (sglang names, as the oracle reads them) plus the engine's own knobs."""

    model_path: str
    server_args: ServerArgs
    fixes: FixSet = field(default_factory=FixSet)
    host: str = "127.0.0.1"
    port: int = 30000
    device: str = "cpu"
    disable_cuda_graph: bool = False
    # Overlapped decode (docs/engine.md): default on CUDA; on a CPU every step is synchronous anyway.
    overlap_schedule: bool = False
    inject_decode_delay_us: int = 0
    # HARNESS_INJECT_DELAY_FILE: a delay switched at run time (reference_impl/contract/delay_switch.py).
    inject_delay_file: str | None = None
    # decode_step records (device and host time per step) while instrumented; HARNESS_STEP_TIMING=0 stops them.
    step_timing: bool = True
    # Capacity of the simulated device on CPU; on CUDA an optional cap of the real allocator.
    device_memory_gib: float | None = None
    max_total_tokens: int | None = None
    context_length: int | None = None
    seed: int = 0
    env: tuple[tuple[str, str], ...] = ()
    ignored_flags: tuple[str, ...] = ()
    eager_dispatch_records: int = 32
    # sglang's --skip-tokenizer-init: stream token ids only (no "text"), as the harness asks of sglang.
    skip_tokenizer_init: bool = False
    tokenizer_path: str | None = None
    served_model_name: str | None = None

    @property
    def world_size(self) -> int:
        return self.server_args.tp_size

    @property
    def max_running_requests(self) -> int:
        return self.server_args.max_running_requests or 32

    def env_value(self, name: str) -> str | None:
        return dict(self.env).get(name)

    def resolved(self) -> dict[str, object]:
        """The resolved arguments as plain JSON (for /server_info), sglang's field names first."""
        out: dict[str, object] = dataclasses.asdict(self.server_args)
        out.update(
            model_path=self.model_path, host=self.host, port=self.port, device=self.device,
            disable_cuda_graph=self.disable_cuda_graph, overlap_schedule=self.overlap_schedule,
            inject_decode_delay_us=self.inject_decode_delay_us, inject_delay_file=self.inject_delay_file,
            step_timing=self.step_timing,
            device_memory_gib=self.device_memory_gib, max_total_tokens=self.max_total_tokens,
            context_length=self.context_length, random_seed=self.seed,
            max_running_requests=self.max_running_requests,
            reverted_fixes=self.fixes.sorted_reverted(), env=dict(self.env),
            skip_tokenizer_init=self.skip_tokenizer_init, tokenizer_path=self.tokenizer_path,
            served_model_name=self.served_model_name or self.model_path,
        )
        return out


def engine_version() -> str:
    try:
        return f"reference-{metadata.version('sglang-moe-harness')}"
    except metadata.PackageNotFoundError:
        return "reference-0+unknown"
