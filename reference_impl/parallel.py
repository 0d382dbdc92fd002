"""Parallel group sizes derived from server args, as sglang's dp_attention computes them."""

from __future__ import annotations

from reference_impl.inputs import ServerArgs


def attn_dp_size(args: ServerArgs) -> int:
    """Attention DP replicas: dp_size with DP attention, else 1 (dp_attention.compute_dp_attention_world_info)."""
    return args.dp_size if args.enable_dp_attention else 1


def attn_tp_size(args: ServerArgs) -> int:
    """tp_size // attn_dp_size // attn_cp_size (dp_attention.compute_dp_attention_world_info)."""
    return max(1, args.tp_size // attn_dp_size(args) // max(1, args.attn_cp_size))


def a2a_backend_enabled(args: ServerArgs) -> bool:
    """sglang's MoeA2ABackend.is_none() is false for any backend other than 'none'."""
    return args.moe_a2a_backend != "none"


def flashinfer_a2a(args: ServerArgs) -> bool:
    return args.moe_a2a_backend == "flashinfer"
