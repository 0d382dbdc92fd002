"""FlashInfer A2A geometry sglang builds: max_num_tokens, per-token payloads, workspace bytes."""

from __future__ import annotations

from dataclasses import dataclass

from reference_impl.fixes import a2a_token_cap, dp_workspace_sizing
from reference_impl.inputs import OracleInput
from reference_impl.parallel import flashinfer_a2a
from reference_impl.resolve import ResolvedArgs
from reference_impl.versions import flashinfer_for_sglang
from reference_impl.workspace import (
    combine_bytes_per_token,
    dispatch_bytes_per_token,
    moe_a2a_workspace_size_per_rank,
)


@dataclass(frozen=True)
class A2AGeometry:
    """What FlashinferDispatcher.__init__ hands MoeAlltoAll on every rank."""

    ep_size: int
    max_num_tokens: int
    dispatch_bytes_per_token: int
    combine_bytes_per_token: int
    workspace_bytes_per_rank: int

    @property
    def payload_workspace_tokens(self) -> int:
        return dp_workspace_sizing.payload_workspace_tokens(self.ep_size, self.max_num_tokens)


def a2a_geometry(inp: OracleInput, resolved: ResolvedArgs) -> A2AGeometry | None:
    """None without --moe-a2a-backend flashinfer (no MoeAlltoAll is built)."""
    args = resolved.server_args
    if not flashinfer_a2a(args):
        return None
    env_tokens = a2a_token_cap.read_env_tokens(inp.env_value(a2a_token_cap.ENV_VAR), inp.sglang_version)
    default = dp_workspace_sizing.default_tokens_per_rank(inp.fixes, resolved.chunked_prefill_size)
    max_num_tokens = a2a_token_cap.max_num_tokens(inp.fixes, env_tokens, args.ep_size, default)
    model = inp.model
    dispatch = dispatch_bytes_per_token(inp.dispatch_dtype, model.hidden_size, model.num_experts_per_tok,
                                        inp.sglang_version)
    combine = combine_bytes_per_token(model.hidden_size)
    workspace = moe_a2a_workspace_size_per_rank(
        args.ep_size, max_num_tokens, dispatch, combine, top_k=model.num_experts_per_tok,
        num_experts=model.num_experts, flashinfer=flashinfer_for_sglang(inp.sglang_version))
    return A2AGeometry(args.ep_size, max_num_tokens, dispatch, combine, workspace)
