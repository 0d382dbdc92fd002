"""The sglang / flashinfer version switch: which later rule changes apply."""

from __future__ import annotations

SUPPORTED_SGLANG_VERSIONS: tuple[str, ...] = ("0.5.16", "0.5.23")
SUPPORTED_FLASHINFER_VERSIONS: tuple[str, ...] = ("0.6.14", "0.7")
# First sglang release of each later rule change, read from the released sources (harness sglang-compat):
# the per-rank env cap read through EnvInt (non-integers raise), ...
ENV_INT_SINCE = "0.5.17"
# ... runtime_max_tokens_per_rank = ceil(max(dp_global) / attn_tp_size) and its <= max_num_tokens assert
# (issue #30242), ...
CEIL_RULE_SINCE = "0.5.19"
# ... and the quantized dispatch payload taken as max(quantized, bf16).
DISPATCH_MAX_SINCE = "0.5.20"


def version_tuple(version: str) -> tuple[int, ...]:
    """'0.5.23' -> (0, 5, 23); raises ValueError on anything that is not dotted integers."""
    parts = version.strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a dotted numeric version: {version!r}")
    return tuple(int(p) for p in parts)


def sglang_at_least(version: str, minimum: str) -> bool:
    return version_tuple(version) >= version_tuple(minimum)


def flashinfer_has_eplb_region(flashinfer: str) -> bool:
    """flashinfer 0.7.x added the EPLB gathered-stats region to the A2A aux data (0.6.14 has none)."""
    return version_tuple(flashinfer)[:2] >= (0, 7)


def flashinfer_for_sglang(sglang_version: str) -> str:
    """The flashinfer-python each sglang release pins (0.5.16 -> 0.6.14; 0.5.23 -> 0.7.x)."""
    return "0.7" if sglang_at_least(sglang_version, "0.5.23") else "0.6.14"
