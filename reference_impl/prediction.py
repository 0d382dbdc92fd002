"""The oracle's answer for one input; `to_json` gives the stable `predict` output keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PREDICTION_KEYS: tuple[str, ...] = (
    "config_valid",
    "errors",
    "a2a_max_num_tokens",
    "a2a_dispatch_payload_bytes_per_token",
    "a2a_combine_payload_bytes_per_token",
    "a2a_workspace_bytes_per_rank",
    "payload_workspace_tokens",
    "runtime_max_tokens_per_rank",
    "require_attn_tp_gather",
    "require_mlp_tp_gather",
    "require_gathered_buffer",
    "capture_num_tokens",
    "capture_global_num_tokens",
    "mlp_scatter_mode",
    "moe_dp_group_is_attn_cp_group",
    "predicted_capture_oom",
    "capture_headroom_bytes",
)


@dataclass(frozen=True)
class Prediction:
    """What sglang does for the input. A2A fields are None without the FlashInfer A2A backend;
    memory fields are None when the GPU is unknown."""

    config_valid: bool
    errors: tuple[str, ...]
    a2a_max_num_tokens: int | None
    a2a_dispatch_payload_bytes_per_token: int | None
    a2a_combine_payload_bytes_per_token: int | None
    a2a_workspace_bytes_per_rank: int | None
    payload_workspace_tokens: int | None
    runtime_max_tokens_per_rank: int | None
    require_attn_tp_gather: bool
    require_mlp_tp_gather: bool
    require_gathered_buffer: bool
    capture_num_tokens: int | None
    capture_global_num_tokens: tuple[int, ...] | None
    mlp_scatter_mode: tuple[tuple[str, str], ...]
    moe_dp_group_is_attn_cp_group: bool
    predicted_capture_oom: bool | None
    capture_headroom_bytes: int | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types only; keys exactly PREDICTION_KEYS, in that order."""
        out: dict[str, Any] = {key: getattr(self, key) for key in PREDICTION_KEYS}
        out["errors"] = list(self.errors)
        out["capture_global_num_tokens"] = (
            None if self.capture_global_num_tokens is None else list(self.capture_global_num_tokens)
        )
        out["mlp_scatter_mode"] = dict(self.mlp_scatter_mode)
        return out
