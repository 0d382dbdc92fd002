"""moe_dp_size = 1 with attention CP (#22003): valid layouts, MLP scatter modes, MoE-DP group alias.

Fixed (0.5.16): server_args._handle_context_parallelism accepts attn_cp_size != moe_dp_size only
with moe_dp_size == 1, and qwen3_moe asserts attn_cp_size % moe_dp_size == 0; sparse layers use
SCATTERED with an A2A backend, MOE_FULL when attn_cp_size > moe_dp_size
(dp_attention.is_enable_moe_cp_allgather), else FULL; parallel_state aliases the MoE-DP group to the
attention-CP group when attn_cp_size > moe_dp_size.
Reverted (pre-#22003): attn_cp_size must equal moe_dp_size; no MOE_FULL mode and no alias.
"""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.fixset import MOE_DP1_ATTN_CP, FixSet
from reference_impl.inputs import ServerArgs
from reference_impl.parallel import a2a_backend_enabled

SCATTERED = "SCATTERED"
FULL = "FULL"
MOE_FULL = "MOE_FULL"


@dataclass(frozen=True)
class MlpScatterModes:
    """LayerScatterModes._compute_mlp_mode for a sparse (MoE) and a dense layer."""

    sparse: str
    dense: str

    def to_json(self) -> dict[str, str]:
        return {"sparse": self.sparse, "dense": self.dense}


def _common_layout_errors(args: ServerArgs) -> list[str]:
    """server_args 0.5.16 context/MoE-DP parallelism asserts that hold with and without the fix."""
    errors: list[str] = []
    if args.attn_cp_size > 1:
        if args.tp_size % args.attn_cp_size:
            errors.append("server_args.attn_cp_size: tp_size must be divisible by attn_cp_size")
        elif args.tp_size % (args.dp_size * args.attn_cp_size):
            errors.append("server_args.attn_cp_size: tp_size must be divisible by dp_size * attn_cp_size")
    if args.moe_dp_size > 1:
        if args.tp_size % args.moe_dp_size:
            errors.append("server_args.moe_dp_size: tp_size must be divisible by moe_dp_size")
        if args.ep_size * args.moe_dp_size > args.tp_size:
            errors.append("server_args.moe_dp_size: ep_size * moe_dp_size must be <= tp_size")
        elif args.ep_size > 1 and args.ep_size * args.moe_dp_size != args.tp_size:
            errors.append("server_args.moe_dp_size: ep_size * moe_dp_size must equal tp_size")
    return errors


def fixed_layout_errors(args: ServerArgs) -> list[str]:
    errors = _common_layout_errors(args)
    if args.attn_cp_size != args.moe_dp_size and args.moe_dp_size != 1:
        errors.append("server_args.moe_dp_size: attn_cp_size != moe_dp_size is only supported when "
                      "moe_dp_size == 1")
    if args.attn_cp_size % args.moe_dp_size:
        errors.append(f"server_args.attn_cp_size: attn_cp_size ({args.attn_cp_size}) must be divisible by "
                      f"moe_dp_size ({args.moe_dp_size})")
    return errors


def reverted_layout_errors(args: ServerArgs) -> list[str]:
    errors = _common_layout_errors(args)
    if args.attn_cp_size != args.moe_dp_size and (args.attn_cp_size > 1 or args.moe_dp_size > 1):
        errors.append("server_args.moe_dp_size: attn_cp_size must equal moe_dp_size (before #22003)")
    return errors


def moe_cp_allgather(args: ServerArgs) -> bool:
    """dp_attention.is_enable_moe_cp_allgather: attn_cp_size > moe_dp_size."""
    return args.attn_cp_size > args.moe_dp_size


def dense_mode(args: ServerArgs) -> str:
    """Dense layers are SCATTERED only when fully DP (enable_moe_dense_fully_dp: moe_dense_tp_size == 1)."""
    return SCATTERED if args.moe_dense_tp_size == 1 else FULL


def fixed_mlp_modes(args: ServerArgs) -> MlpScatterModes:
    if a2a_backend_enabled(args):
        sparse = SCATTERED
    elif moe_cp_allgather(args):
        sparse = MOE_FULL
    else:
        sparse = FULL
    return MlpScatterModes(sparse, dense_mode(args))


def reverted_mlp_modes(args: ServerArgs) -> MlpScatterModes:
    return MlpScatterModes(SCATTERED if a2a_backend_enabled(args) else FULL, dense_mode(args))


def layout_errors(fixes: FixSet, args: ServerArgs) -> list[str]:
    return fixed_layout_errors(args) if fixes.applied(MOE_DP1_ATTN_CP) else reverted_layout_errors(args)


def mlp_modes(fixes: FixSet, args: ServerArgs) -> MlpScatterModes:
    return fixed_mlp_modes(args) if fixes.applied(MOE_DP1_ATTN_CP) else reverted_mlp_modes(args)


def moe_dp_group_is_attn_cp_group(fixes: FixSet, args: ServerArgs) -> bool:
    """parallel_state.initialize_model_parallel: _MOE_DP = _ATTN_CP when attn_cp_size > moe_dp_size."""
    return fixes.applied(MOE_DP1_ATTN_CP) and moe_cp_allgather(args)
