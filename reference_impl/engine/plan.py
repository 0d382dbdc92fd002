"""Everything the engine takes from the oracle: A2A geometry, gather flags, padding, scatter modes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reference_impl.a2a import A2AGeometry, a2a_geometry
from reference_impl.engine.engine_config import EngineConfig
from reference_impl.engine.model_spec import ModelSpec
from reference_impl.fixes import attn_tp_gather, dp_workspace_sizing, moe_dp_attn_cp, sp_runtime_max_tokens
from reference_impl.fixes.attn_tp_gather import GatherFlags
from reference_impl.fixes.moe_dp_attn_cp import MlpScatterModes
from reference_impl.inputs import GpuSpec, OracleInput
from reference_impl.memory import CaptureBudget, capture_activation_bytes, capture_budget
from reference_impl.parallel import attn_tp_size
from reference_impl.predict import predict
from reference_impl.prediction import Prediction
from reference_impl.resolve import ResolvedArgs, reserve_for_graph_mib, resolve

MIB = 1 << 20


class StartupError(RuntimeError):
    """The configuration cannot start (rejected layout, weights exceeding the static budget)."""


@dataclass(frozen=True)
class EnginePlan:
    """The oracle's answers for this server, computed once per rank before any tensor exists."""

    oracle_input: OracleInput
    resolved: ResolvedArgs
    flags: GatherFlags
    modes: MlpScatterModes
    geometry: A2AGeometry | None
    captured_batch_sizes: tuple[int, ...]
    budget: CaptureBudget | None
    moe_dp_group_is_attn_cp_group: bool
    prediction: Prediction  # predict() at BS=1 decode: config validity and the values /server_info shows

    @property
    def startup_errors(self) -> tuple[str, ...]:
        """predict()'s errors except the runtime geometry ones, which each dispatch checks live."""
        return tuple(e for e in self.prediction.errors if not e.startswith("runtime."))

    @property
    def attn_tp_size(self) -> int:
        return attn_tp_size(self.resolved.server_args)

    def mlp_mode(self, sparse: bool) -> str:
        return self.modes.sparse if sparse else self.modes.dense

    def capture_num_tokens(self, batch_size: int) -> int | None:
        """Decode tokens a batch of this size replays (padded), None when it runs eagerly."""
        args = self.resolved.server_args
        return attn_tp_gather.capture_num_tokens(args, self.flags.require_gathered_buffer, batch_size,
                                                 self.resolved.cuda_graph_max_bs, args.max_running_requests)

    def capture_global_num_tokens(self, num_tokens: int) -> list[int] | None:
        args = self.resolved.server_args
        return dp_workspace_sizing.capture_global_num_tokens(
            self.oracle_input.fixes, num_tokens, args.dp_size if args.enable_dp_attention else 1,
            self.flags.require_mlp_tp_gather, self.flags.require_attn_tp_gather)

    def runtime_max_tokens(self, dp_global: Sequence[int] | None, local_num_tokens: int) -> int:
        return sp_runtime_max_tokens.runtime_max_tokens_per_rank(
            self.oracle_input.fixes, dp_global, local_num_tokens, self.attn_tp_size,
            self.oracle_input.sglang_version)

    def geometry_errors(self, runtime_max: int, local_num_tokens: int,
                        dp_global: Sequence[int] | None) -> list[str]:
        """The asserts FlashinferDispatcher.dispatch runs on the chosen geometry."""
        args = self.resolved.server_args
        cap = self.geometry.max_num_tokens if self.geometry else None
        return sp_runtime_max_tokens.geometry_errors(runtime_max, local_num_tokens, cap, dp_global,
                                                     args.enable_dp_attention, args.ep_size,
                                                     self.oracle_input.sglang_version)

    def graph_pool_bytes(self) -> int:
        """sglang's reserve for the decode graph pool (reserve_for_graph_mb), as memory.py charges it."""
        return int(reserve_for_graph_mib(self.resolved.server_args, self.resolved.cuda_graph_max_bs) * MIB)

    def capture_activation_bytes(self, batch_size: int) -> int:
        return capture_activation_bytes(self.oracle_input.model, batch_size)


def build_plan(config: EngineConfig, spec: ModelSpec, device_total_bytes: int) -> EnginePlan:
    inp = OracleInput(server_args=config.server_args, model=spec.oracle_config(), env=config.env,
                      gpu=GpuSpec(memory_bytes=device_total_bytes), fixes=config.fixes)
    resolved = resolve(inp)
    args = resolved.server_args
    flags = attn_tp_gather.gather_flags(inp.fixes, args)
    sizes = attn_tp_gather.captured_batch_sizes(args, flags.require_gathered_buffer, resolved.cuda_graph_max_bs,
                                                args.max_running_requests)
    return EnginePlan(
        oracle_input=inp, resolved=resolved, flags=flags, modes=moe_dp_attn_cp.mlp_modes(inp.fixes, args),
        geometry=a2a_geometry(inp, resolved), captured_batch_sizes=tuple(sizes),
        budget=capture_budget(inp, resolved),
        moe_dp_group_is_attn_cp_group=moe_dp_attn_cp.moe_dp_group_is_attn_cp_group(inp.fixes, args),
        prediction=predict(inp),
    )


def check_plan(plan: EnginePlan, spec: ModelSpec) -> None:
    """Layouts the oracle says sglang rejects, or the engine cannot lay out, stop before any rank starts."""
    if plan.startup_errors:
        raise StartupError("config rejected: " + "; ".join(plan.startup_errors))
    ep = plan.resolved.server_args.ep_size
    if spec.num_experts % ep:
        raise StartupError(f"server_args.ep_size: {ep} does not divide num_experts {spec.num_experts}")
