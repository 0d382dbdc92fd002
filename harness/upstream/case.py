"""One configuration the upstream check feeds sglang's code and the oracle alike (a ScenarioLike)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reference_impl.inputs import ServerArgs

MODELS = Path(__file__).resolve().parents[1] / "models"


@dataclass(frozen=True)
class OracleSpec:
    """The [oracle] part of a scenario: the runtime geometry the values are predicted for."""

    dp_global_num_tokens: tuple[int, ...] | None = None
    local_num_tokens: int | None = 1
    batch_size: int | None = 1
    dispatch_dtype: str = "bf16"
    gpu: str | None = None
    expect: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Case:
    """Server args, env and geometry of one check; `name` says which grid point it is."""

    name: str
    args: ServerArgs
    model: str = "tiny-qwen3-moe"
    env: tuple[tuple[str, str], ...] = ()
    oracle: OracleSpec = OracleSpec()

    @property
    def cuda_graph_max_bs(self) -> int:
        return self.args.cuda_graph_max_bs or 4

    @property
    def max_running_requests(self) -> int:
        return self.args.max_running_requests or 64

    @property
    def model_dir(self) -> Path:
        return MODELS / self.model

    @property
    def server_args(self) -> tuple[tuple[str, Any], ...]:
        return tuple((k, getattr(self.args, k)) for k in self.args.__dataclass_fields__)
