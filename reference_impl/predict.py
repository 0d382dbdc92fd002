"""predict(OracleInput) -> Prediction: every rule applied in the order sglang evaluates them."""

from __future__ import annotations

from reference_impl.a2a import A2AGeometry, a2a_geometry
from reference_impl.fixes import attn_tp_gather, dp_workspace_sizing, moe_dp_attn_cp, sp_runtime_max_tokens
from reference_impl.fixes.a2a_token_cap import EnvValueError
from reference_impl.gpus import UnknownGpuError
from reference_impl.inputs import OracleInput, ServerArgs
from reference_impl.memory import capture_budget
from reference_impl.parallel import attn_tp_size, flashinfer_a2a
from reference_impl.prediction import Prediction
from reference_impl.resolve import ResolvedArgs, resolve
from reference_impl.workspace import K_MAX_RANKS, K_MAX_TOP_K


def parallel_errors(args: ServerArgs, top_k: int) -> list[str]:
    """Layout checks sglang makes outside the five fixes that the rules below rely on."""
    errors: list[str] = []
    if args.enable_dp_attention and args.tp_size % args.dp_size:
        errors.append(f"server_args.dp_size: tp_size ({args.tp_size}) must be divisible by dp_size "
                      f"({args.dp_size}) with DP attention")
    if args.tp_size % args.ep_size:
        errors.append(f"server_args.ep_size: tp_size ({args.tp_size}) must be divisible by ep_size ({args.ep_size})")
    if flashinfer_a2a(args):
        if args.ep_size > K_MAX_RANKS:
            errors.append(f"server_args.ep_size: FlashInfer MoeAlltoAll supports at most {K_MAX_RANKS} ranks")
        if top_k > K_MAX_TOP_K:
            errors.append(f"model.num_experts_per_tok: FlashInfer MoeAlltoAll supports top-k <= {K_MAX_TOP_K}")
    return errors


def _geometry(inp: OracleInput, resolved: ResolvedArgs, errors: list[str]) -> A2AGeometry | None:
    try:
        return a2a_geometry(inp, resolved)
    except (EnvValueError, ValueError) as exc:
        errors.append(f"env.SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK: {exc}"
                      if isinstance(exc, EnvValueError) else str(exc))
        return None


def predict(inp: OracleInput) -> Prediction:
    errors: list[str] = []
    try:
        resolved = resolve(inp)
    except UnknownGpuError as exc:
        errors.append(str(exc))
        resolved = resolve(OracleInput(inp.server_args, inp.model, inp.env, inp.dispatch_dtype, inp.runtime,
                                       fixes=inp.fixes, sglang_version=inp.sglang_version))
    args = resolved.server_args
    errors += parallel_errors(args, inp.model.num_experts_per_tok)
    errors += moe_dp_attn_cp.layout_errors(inp.fixes, args)

    flags = attn_tp_gather.gather_flags(inp.fixes, args)
    num_tokens = attn_tp_gather.capture_num_tokens(args, flags.require_gathered_buffer, inp.runtime.batch_size,
                                                   resolved.cuda_graph_max_bs, args.max_running_requests)
    if not attn_tp_gather.captured_batch_sizes(args, flags.require_gathered_buffer, resolved.cuda_graph_max_bs,
                                               args.max_running_requests):
        errors.append("server_args.cuda_graph_max_bs: no decode CUDA graph batch size is a multiple of "
                      f"{attn_tp_gather.capture_alignment(args, flags.require_gathered_buffer)} "
                      "(sglang asserts at startup)")
    capture_global = None
    if num_tokens is not None:
        capture_global = dp_workspace_sizing.capture_global_num_tokens(
            inp.fixes, num_tokens, args.dp_size, flags.require_mlp_tp_gather, flags.require_attn_tp_gather)

    geometry = _geometry(inp, resolved, errors) if not errors else None
    runtime_max = None
    if geometry is not None:
        runtime = inp.runtime
        runtime_max = sp_runtime_max_tokens.runtime_max_tokens_per_rank(
            inp.fixes, runtime.dp_global_num_tokens, runtime.local_num_tokens, attn_tp_size(args),
            inp.sglang_version)
        errors += sp_runtime_max_tokens.geometry_errors(
            runtime_max, runtime.local_num_tokens, geometry.max_num_tokens, runtime.dp_global_num_tokens,
            args.enable_dp_attention, args.ep_size, inp.sglang_version)

    # The memory model needs the A2A geometry whenever the FlashInfer backend is on.
    budget = capture_budget(inp, resolved) if geometry is not None or not flashinfer_a2a(args) else None
    modes = moe_dp_attn_cp.mlp_modes(inp.fixes, args)
    return Prediction(
        config_valid=not errors,
        errors=tuple(errors),
        a2a_max_num_tokens=geometry.max_num_tokens if geometry else None,
        a2a_dispatch_payload_bytes_per_token=geometry.dispatch_bytes_per_token if geometry else None,
        a2a_combine_payload_bytes_per_token=geometry.combine_bytes_per_token if geometry else None,
        a2a_workspace_bytes_per_rank=geometry.workspace_bytes_per_rank if geometry else None,
        payload_workspace_tokens=geometry.payload_workspace_tokens if geometry else None,
        runtime_max_tokens_per_rank=runtime_max,
        require_attn_tp_gather=flags.require_attn_tp_gather,
        require_mlp_tp_gather=flags.require_mlp_tp_gather,
        require_gathered_buffer=flags.require_gathered_buffer,
        capture_num_tokens=num_tokens,
        capture_global_num_tokens=None if capture_global is None else tuple(capture_global),
        mlp_scatter_mode=tuple(modes.to_json().items()),
        moe_dp_group_is_attn_cp_group=moe_dp_attn_cp.moe_dp_group_is_attn_cp_group(inp.fixes, args),
        predicted_capture_oom=budget.predicted_capture_oom if budget else None,
        capture_headroom_bytes=budget.headroom_bytes if budget else None,
    )
