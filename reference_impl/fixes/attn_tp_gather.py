"""--disable-attn-tp-gather (#26047): gather predicates and the decode token count captured.

Rules are sglang 0.5.16's utils/common.py require_* functions on server args (0.5.23 reads the
same fields from the runtime context; the rules did not change). Reverted = the flag is ignored.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from reference_impl.fixset import DISABLE_ATTN_TP_GATHER, FixSet
from reference_impl.inputs import ServerArgs
from reference_impl.parallel import a2a_backend_enabled, attn_tp_size


@dataclass(frozen=True)
class GatherFlags:
    """The four predicates the graph runner and the scheduler read."""

    require_attn_tp_gather: bool
    require_mlp_tp_gather: bool
    require_gathered_buffer: bool
    require_mlp_sync: bool


def require_mlp_tp_gather(args: ServerArgs) -> bool:
    """utils.common.require_mlp_tp_gather without elastic EP (elastic_ep_backend is None)."""
    if not args.enable_dp_attention:
        return False
    if args.moe_dense_tp_size is None or not args.enable_dp_lm_head:
        return True
    if not a2a_backend_enabled(args) or args.moe_a2a_backend == "flashinfer":
        # FlashInfer A2A needs DP-synchronized token counts (issue #30242) and so takes this path.
        return True
    return args.moe_dense_tp_size > args.tp_size // args.dp_size


def reverted_require_attn_tp_gather(args: ServerArgs) -> bool:
    """The rule without the opt-out: A2A backend or moe_dense_tp_size -> dp_size < tp_size / True."""
    if a2a_backend_enabled(args) or args.moe_dense_tp_size is not None:
        if args.enable_dp_attention:
            return args.dp_size < args.tp_size
        return True
    return False


def fixed_require_attn_tp_gather(args: ServerArgs) -> bool:
    """--disable-attn-tp-gather short-circuits to False, else the rule above."""
    if args.disable_attn_tp_gather:
        return False
    return reverted_require_attn_tp_gather(args)


def gather_flags(fixes: FixSet, args: ServerArgs) -> GatherFlags:
    rule = (fixed_require_attn_tp_gather if fixes.applied(DISABLE_ATTN_TP_GATHER)
            else reverted_require_attn_tp_gather)
    attn = rule(args)
    mlp = require_mlp_tp_gather(args)
    gathered = mlp or attn
    return GatherFlags(attn, mlp, gathered, args.enable_dp_attention or gathered)


def default_decode_capture_batch_sizes(max_bs: int) -> list[int]:
    """ServerArgs._generate_decode_cuda_graph_batch_sizes, normal (non-speculative, padded) case."""
    sizes = [1, 2, 4, 8, 12, *range(16, 257, 8), *range(272, 512, 16), *range(512, max_bs + 1, 32)]
    sizes = [bs for bs in sizes if bs <= max_bs]
    if max_bs not in sizes:
        sizes.append(max_bs)
    return sizes


def capture_alignment(args: ServerArgs, gathered_buffer: bool) -> int:
    """mul_base of base_cuda_graph_runner.get_batch_sizes_to_capture (no two-batch overlap)."""
    mul_base = attn_tp_size(args) if gathered_buffer else 1
    if mul_base % args.attn_cp_size != 0:
        mul_base *= args.attn_cp_size
    return mul_base


def captured_batch_sizes(args: ServerArgs, gathered_buffer: bool, max_bs: int,
                         max_running_requests: int | None) -> list[int]:
    """get_batch_sizes_to_capture: keep sizes that are multiples of mul_base and fit the request pool."""
    sizes = default_decode_capture_batch_sizes(max_bs)
    mul_base = capture_alignment(args, gathered_buffer)
    if max_running_requests is not None:
        limit = -(-max_running_requests // mul_base) * mul_base
        if max(sizes) > limit:
            sizes.append(limit)
    else:
        limit = None
    kept = {bs for bs in sizes if bs % mul_base == 0 and (limit is None or bs <= limit)}
    return sorted(kept)


def capture_num_tokens(args: ServerArgs, gathered_buffer: bool, batch_size: int, max_bs: int,
                       max_running_requests: int | None) -> int | None:
    """Tokens of the decode graph a batch replays: the smallest captured size >= batch_size.

    One token per request (no speculative decoding). None when the batch runs eagerly.
    """
    sizes = captured_batch_sizes(args, gathered_buffer, max_bs, max_running_requests)
    index = bisect.bisect_left(sizes, batch_size)
    return sizes[index] if index < len(sizes) else None
