"""What replaces the GPU world around sglang's code on the CPU: process groups, runtime context, FlashInfer.

Only code that is not under test is stood in: getters of process-global state (answered from the
configuration being checked), FlashInfer's communication objects (their workspace size comes from
reference_impl.workspace, FlashInfer's published formula) and GPU-side collaborators of the graph
runner that have no effect on the recorded values.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from harness.errors import HarnessError
from reference_impl.inputs import ServerArgs
from reference_impl.parallel import attn_tp_size
from reference_impl.workspace import moe_a2a_workspace_size_per_rank


class StandInError(HarnessError, AttributeError):
    """sglang read a piece of runtime state the stand-in does not model; the message names it."""


class State:
    """Process-global runtime state as sglang's getters return it (server args, parallel, schedule...)."""

    def __init__(self, what: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_what", what)
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise StandInError(f"sglang read {object.__getattribute__(self, '_what')}.{name}, which the CPU "
                           f"stand-in does not model (known: {', '.join(sorted(values))})")

    def __setattr__(self, name: str, value: Any) -> None:
        object.__getattribute__(self, "_values")[name] = value

    def set(self, name: str, value: Any) -> None:
        """ForwardFlags.set (sglang's per-forward flags)."""
        setattr(self, name, value)

    def values(self) -> dict[str, Any]:
        return dict(object.__getattribute__(self, "_values"))


class Inert:
    """A GPU-side collaborator whose calls do not shape the recorded values: every method is a no-op."""

    def __init__(self, name: str, **attrs: Any) -> None:
        self.__dict__.update(attrs)
        self._name = name

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None

    def __repr__(self) -> str:
        return f"<inert {self._name}>"


class Group:
    """A torch.distributed process group of a given size, seen from one rank."""

    def __init__(self, size: int, rank: int = 0) -> None:
        self._size = size
        self._rank = rank

    def size(self) -> int:
        return self._size

    def rank(self) -> int:
        return self._rank


class MoeAlltoAll:
    """flashinfer.comm.MoeAlltoAll: keeps its arguments; dispatch returns [ep_size, runtime_max, ...] payloads."""

    def __init__(self, mapping: Any = None, max_num_tokens: int = 0, top_k: int = 0, num_experts: int = 0,
                 workspace_size_per_rank: int = 0, mnnvl_config: Any = None, **extra: Any) -> None:
        self.mapping = mapping
        self.max_num_tokens = max_num_tokens
        self.top_k = top_k
        self.num_experts = num_experts
        self.workspace_size_per_rank = workspace_size_per_rank
        self.ep_size = mapping.get("moe_ep_size", 1) if isinstance(mapping, dict) else 1

    def dispatch(self, token_selected_experts: torch.Tensor, payloads: list[torch.Tensor],
                 runtime_max_tokens_per_rank: int, **kwargs: Any) -> list[torch.Tensor]:
        return [torch.zeros(self.ep_size, runtime_max_tokens_per_rank, *p.shape[1:], dtype=p.dtype)
                for p in payloads]

    def get_combine_payload_tensor_in_workspace(self, runtime_max_tokens_per_rank: int, hidden_size: int,
                                                dtype: torch.dtype) -> torch.Tensor:
        return torch.zeros(self.ep_size, runtime_max_tokens_per_rank, hidden_size, dtype=dtype)


def workspace_size_function(flashinfer: str) -> Any:
    """flashinfer.comm.moe_a2a_get_workspace_size_per_rank as FlashInfer `flashinfer` computes it."""
    def moe_a2a_get_workspace_size_per_rank(ep_size: int, max_num_tokens: int,
                                            total_dispatch_payload_size_per_token: int,
                                            combine_payload_size_per_token: int, **extra: Any) -> int:
        return moe_a2a_workspace_size_per_rank(ep_size, max_num_tokens, total_dispatch_payload_size_per_token,
                                               combine_payload_size_per_token, flashinfer=flashinfer)
    return moe_a2a_get_workspace_size_per_rank


def flashinfer_stand_ins(flashinfer: str) -> dict[str, Any]:
    """FlashInfer's names the dispatcher imports at module level (its formula: reference_impl.workspace)."""
    return {
        "flashinfer.comm.MoeAlltoAll": MoeAlltoAll,
        "flashinfer.comm.moe_a2a_get_workspace_size_per_rank": workspace_size_function(flashinfer),
        "flashinfer.comm.mapping.Mapping": lambda **kwargs: kwargs,
        "flashinfer.comm.mnnvl.MnnvlConfig": lambda **kwargs: kwargs,
        "flashinfer.nvfp4_block_scale_interleave": Inert("nvfp4_block_scale_interleave"),
        "sglang.srt.layers.quantization.fp4_utils.fp4_quantize": Inert("fp4_quantize"),
        "sglang.srt.layers.moe.token_dispatcher.flashinfer_utils.TorchDistributedCommBackend":
            lambda group: group,
    }


@dataclass(frozen=True)
class Geometry:
    """The runtime values one check feeds sglang: the DP token list and this rank's post-scatter tokens."""

    dp_global_num_tokens: tuple[int, ...] | None
    local_num_tokens: int


def runtime_state(args: ServerArgs, chunked_prefill_size: int, geometry: Geometry) -> State:
    """One object answering every runtime-context getter sglang 0.5.16..0.5.23 reads for the five fixes."""
    attn_dp = args.dp_size if args.enable_dp_attention else 1
    # Filled with sglang's own MoeA2ABackend / MoeRunnerBackend members once the tree is linked.
    moe = SimpleNamespace(a2a_backend=None, runner_backend=None, speculative_runner_backend=None,
                          speculative_context=False, disable_fp4_allgather=False,
                          flashinfer_a2a_dispatch_type=None, quantization=None, elastic_ep_backend=None)
    return State("runtime", {
        # ServerArgs (0.5.16 get_server_args()) and its later split views.
        "tp_size": args.tp_size, "dp_size": args.dp_size, "ep_size": args.ep_size,
        "moe_ep_size": args.ep_size, "enable_dp_attention": args.enable_dp_attention,
        "attn_dp_enabled": args.enable_dp_attention, "num_dp_ranks": attn_dp, "attn_dp_size": attn_dp,
        "attn_tp_size": attn_tp_size(args), "attn_cp_size": args.attn_cp_size, "moe_dp_size": args.moe_dp_size,
        "moe_a2a_backend": args.moe_a2a_backend, "moe_dense_tp_size": args.moe_dense_tp_size,
        "enable_dp_lm_head": args.enable_dp_lm_head, "disable_attn_tp_gather": args.disable_attn_tp_gather,
        "elastic_ep_backend": None, "pp_size": 1,
        # This process is rank 0 of every group (the values the five fixes set do not depend on the rank).
        "tp_rank": 0, "attn_tp_rank": 0, "attn_cp_rank": 0, "attn_dp_rank": 0, "moe_ep_rank": 0, "pp_rank": 0,
        "moe_dp_rank": 0, "dwdp_size": 1, "speculative_algorithm": None,
        "chunked_prefill_size": chunked_prefill_size, "enable_dynamic_chunking": False,
        "max_prefill_tokens": 16384, "max_running_requests": args.max_running_requests,
        "enable_prefill_context_parallel": False, "enable_prefill_cp": False, "enable_two_batch_overlap": False,
        "disable_cuda_graph_padding": False, "enable_lora": False, "debug_cuda_graph": False,
        "disaggregation_mode": "null", "quantization": None, "moe_runner_backend": args.moe_runner_backend,
        # Prefill context parallelism of DSA / NSA / MLA models: off (the fixes concern MoE layouts).
        "enable_dsa_prefill_context_parallel": False, "enable_nsa_prefill_context_parallel": False,
        "enable_mla_prefill_context_parallel": False, "attn_cp_prefill_mode": None,
        # get_flags() (0.5.16+): the MoE backend and capture switches.
        "moe": moe, "capture": SimpleNamespace(enable_torch_compile=False),
        "overlap": SimpleNamespace(enable_two_batch_overlap=False),
        # No custom all-reduce on the CPU: sglang picks its sum-length DP padding mode.
        "tp_group": SimpleNamespace(ca_comm=None, world_size=args.tp_size),
        # The scheduler's all-gathered DP token list and this rank's tokens.
        "dp_global_num_tokens": None if geometry.dp_global_num_tokens is None
        else list(geometry.dp_global_num_tokens),
    })


class CudaOnCpu(torch.overrides.TorchFunctionMode):
    """Tensors sglang places on "cuda" (older dispatchers' preallocated dummy-token buffers) land on the CPU."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = dict(kwargs or {})
        device = kwargs.get("device")
        if device is not None and torch.device(device).type == "cuda":
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


@contextlib.contextmanager
def environment(pairs: tuple[tuple[str, str], ...], clear: tuple[str, ...]) -> Iterator[None]:
    """Set the scenario's env vars (and unset `clear`) for sglang's env readers; restore afterwards."""
    saved = {k: os.environ.get(k) for k in {*clear, *(k for k, _ in pairs)}}
    try:
        for key in clear:
            os.environ.pop(key, None)
        os.environ.update(dict(pairs))
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
