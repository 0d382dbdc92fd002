"""A tiny stand-in for sglang laid out at the real module paths, for running the probe on a CPU.

Its classes and functions have sglang's names and argument names and do the same bookkeeping
(values are made up), so the probe's hooks wrap them exactly as they wrap sglang's.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

_DISPATCHER = '''
def moe_a2a_get_workspace_size_per_rank(ep_size, max_num_tokens, total_dispatch_payload_size_per_token,
                                        combine_payload_size_per_token):
    return ep_size * max_num_tokens * (total_dispatch_payload_size_per_token + combine_payload_size_per_token)


class FlashinferDispatcher:
    def __init__(self, group, router_topk, num_experts=None, num_local_experts=None, hidden_size=None,
                 params_dtype=None):
        self.ep_size = group.size()
        self.ep_rank = group.rank()
        self.payload_in_workspace = False
        self.max_num_tokens = 4096
        self.workspace_size = moe_a2a_get_workspace_size_per_rank(
            ep_size=self.ep_size, max_num_tokens=self.max_num_tokens,
            total_dispatch_payload_size_per_token=hidden_size * 2 + router_topk * 8,
            combine_payload_size_per_token=hidden_size * 2)

    def dispatch(self, hidden_states, topk_output):
        from sglang.srt.layers.dp_attention import get_dp_global_num_tokens
        dp_global = get_dp_global_num_tokens()
        if dp_global is not None and len(dp_global) > 1:
            self.runtime_max_tokens_per_rank = max(dp_global)
        else:
            self.runtime_max_tokens_per_rank = hidden_states.shape[0]
        return hidden_states
'''

_COMMON = '''
def require_mlp_tp_gather(server_args):
    return server_args.enable_dp_attention and server_args.dp_size > 1


def require_attn_tp_gather(server_args):
    if server_args.disable_attn_tp_gather:
        return False
    return server_args.moe_a2a_backend != "none"


def require_gathered_buffer(server_args):
    return require_mlp_tp_gather(server_args) or require_attn_tp_gather(server_args)


def require_mlp_sync(server_args):
    return server_args.enable_dp_attention or require_gathered_buffer(server_args)
'''

_DP_ATTENTION = '''
class _DpGatheredBufferWrapper:
    _global_num_tokens = None

    @classmethod
    def set_dp_buffer_len(cls, global_dp_buffer_len, local_dp_buffer_len, dp_max_padding,
                          global_num_tokens=None):
        cls._global_dp_buffer_len = global_dp_buffer_len
        cls._local_dp_buffer_len = local_dp_buffer_len
        cls._global_num_tokens = global_num_tokens


def set_dp_buffer_len(global_dp_buffer_len, local_dp_buffer_len, dp_max_padding, global_num_tokens=None):
    _DpGatheredBufferWrapper.set_dp_buffer_len(global_dp_buffer_len, local_dp_buffer_len, dp_max_padding,
                                               global_num_tokens)


def get_dp_global_num_tokens():
    return _DpGatheredBufferWrapper._global_num_tokens
'''

_RUNNER = '''
from sglang.srt.layers.dp_attention import set_dp_buffer_len
from sglang.srt.utils.common import require_attn_tp_gather, require_mlp_tp_gather


class OutOfMemoryError(RuntimeError):
    """Named like torch.OutOfMemoryError; carries torch's message format."""


class DecodeCudaGraphRunner:
    def __init__(self, model_runner):
        self.model_runner = model_runner
        self.require_mlp_tp_gather = require_mlp_tp_gather(model_runner.server_args)
        self.require_attn_tp_gather = require_attn_tp_gather(model_runner.server_args)
        self.require_gathered_buffer = self.require_mlp_tp_gather or self.require_attn_tp_gather
        self.captured_req_width = 1
        self.dp_size = model_runner.server_args.dp_size
        self.max_num_token = max(model_runner.capture_bs)

    def capture(self):
        for bs in reversed(self.model_runner.capture_bs):
            self.capture_one_shape(bs, forward=None)

    def capture_one_shape(self, size, forward, stream_idx=None, variant_label=None):
        num_tokens = size * self.captured_req_width
        if size in self.model_runner.oom_at_bs:
            raise OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 234.00 MiB. GPU 0 has a total capacity of "
                "79.19 GiB of which 5.38 MiB is free. Including non-PyTorch memory, this process has "
                "79.17 GiB memory in use.")
        if self.require_mlp_tp_gather:
            global_num_tokens = [num_tokens] * self.dp_size
        elif self.require_attn_tp_gather:
            global_num_tokens = [num_tokens]
        else:
            global_num_tokens = None
        set_dp_buffer_len(sum(global_num_tokens) if global_num_tokens else None, num_tokens, False,
                          global_num_tokens)
        self.model_runner.dispatcher.dispatch(_Rows(num_tokens), None)


class _Rows:
    def __init__(self, n):
        self.shape = (n, 16)
'''

_CUDA_GRAPH_SETUP = '''
def capture_cuda_graphs(*, model_runner, capture_decode_cuda_graph=True):
    from sglang.srt.model_executor.runner.decode_cuda_graph_runner import DecodeCudaGraphRunner
    runner = DecodeCudaGraphRunner(model_runner)
    runner.capture()
    return runner
'''

_COMMUNICATOR = '''
import enum


class ScatterMode(enum.Enum):
    SCATTERED = enum.auto()
    TP_ATTN_FULL = enum.auto()
    FULL = enum.auto()
    MOE_FULL = enum.auto()


class LayerScatterModes:
    def __init__(self, mlp_mode):
        self.mlp_mode = mlp_mode

    @classmethod
    def init_new(cls, **kwargs):
        sparse = kwargs["is_layer_sparse"]
        return cls(ScatterMode.SCATTERED if sparse else ScatterMode.FULL)
'''

_PARALLEL_STATE = '''
_SIZES = {}
_TP = object()
_ATTN_CP = None
_MOE_DP = None


def initialize_model_parallel(tensor_model_parallel_size=1, expert_model_parallel_size=1,
                              pipeline_model_parallel_size=1, attention_data_parallel_size=1,
                              attention_context_model_parallel_size=1, moe_data_model_parallel_size=1,
                              backend=None):
    global _ATTN_CP, _MOE_DP
    tp, cp, dp = tensor_model_parallel_size, attention_context_model_parallel_size, attention_data_parallel_size
    _SIZES.update(tp=tp, ep=expert_model_parallel_size, attn_cp=cp, attn_tp=tp // (dp * cp))
    _ATTN_CP = object()
    if cp > moe_data_model_parallel_size:
        _MOE_DP = _ATTN_CP
        _SIZES["moe_dp"] = cp
    else:
        _MOE_DP = object()
        _SIZES["moe_dp"] = moe_data_model_parallel_size


def get_tensor_model_parallel_world_size():
    return _SIZES["tp"]


def get_moe_expert_parallel_world_size():
    return _SIZES["ep"]


def get_attn_tensor_model_parallel_world_size():
    return _SIZES["attn_tp"]


def get_attn_context_model_parallel_world_size():
    return _SIZES["attn_cp"]


def get_moe_data_parallel_world_size():
    return _SIZES["moe_dp"]


def get_moe_dp_group():
    return _MOE_DP


def get_attn_cp_group():
    return _ATTN_CP
'''

_MODEL_RUNNER = '''
import enum
import time


class ForwardMode(enum.IntEnum):
    EXTEND = 1
    DECODE = 2

    def is_decode(self):
        return self == ForwardMode.DECODE


class ForwardBatch:
    def __init__(self, forward_mode, rids, batch_size):
        self.forward_mode, self.rids, self.batch_size = forward_mode, rids, batch_size


class ModelRunner:
    def __init__(self, device="cpu", is_draft_worker=False):
        self.device, self.is_draft_worker = device, is_draft_worker

    def forward(self, forward_batch, pp_proxy_tensors=None):
        return self._forward_raw(forward_batch, pp_proxy_tensors)

    def _forward_raw(self, forward_batch, pp_proxy_tensors, reinit_attn_backend=False, split_forward_count=1):
        deadline = time.perf_counter() + 0.0005  # a forward that takes some time
        while time.perf_counter() < deadline:
            pass
        return forward_batch.batch_size
'''

MODULES = {
    "sglang/srt/layers/moe/token_dispatcher/flashinfer.py": _DISPATCHER,
    "sglang/srt/utils/common.py": _COMMON,
    "sglang/srt/layers/dp_attention.py": _DP_ATTENTION,
    "sglang/srt/model_executor/runner/decode_cuda_graph_runner.py": _RUNNER,
    "sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py": _CUDA_GRAPH_SETUP,
    "sglang/srt/layers/communicator.py": _COMMUNICATOR,
    "sglang/srt/distributed/parallel_state.py": _PARALLEL_STATE,
    "sglang/srt/model_executor/model_runner.py": _MODEL_RUNNER,
}

# Runs a miniature server start-up and a few eager decode steps against the fake tree.
DRIVER = '''
import json, sys
from types import SimpleNamespace as NS

args = NS(**json.loads(sys.argv[1]))
from sglang.srt.distributed import parallel_state
parallel_state.initialize_model_parallel(tensor_model_parallel_size=args.tp_size,
    expert_model_parallel_size=args.ep_size, attention_data_parallel_size=args.dp_size,
    attention_context_model_parallel_size=args.attn_cp_size,
    moe_data_model_parallel_size=args.moe_dp_size)
try:
    from sglang.srt.layers.communicator import LayerScatterModes
except ImportError:  # like sglang 0.5.23, which has no communicator module
    LayerScatterModes = None
for layer_id in range(3 if LayerScatterModes else 0):
    LayerScatterModes.init_new(layer_id=layer_id, num_layers=3, is_layer_sparse=layer_id > 0,
                               is_previous_layer_sparse=None, is_next_layer_sparse=None)
from sglang.srt.layers.moe.token_dispatcher.flashinfer import FlashinferDispatcher
group = NS(size=lambda: args.ep_size, rank=lambda: 0)
dispatcher = FlashinferDispatcher(group, router_topk=4, num_experts=16, hidden_size=1024)
model_runner = NS(server_args=args, capture_bs=args.capture_bs, oom_at_bs=args.oom_at_bs,
                  dispatcher=dispatcher)
from sglang.srt.model_executor.model_runner_components.cuda_graph_setup import capture_cuda_graphs
try:
    capture_cuda_graphs(model_runner=model_runner)
except RuntimeError as exc:
    print("OOM:", exc)
    sys.exit(3)
from sglang.srt.layers.dp_attention import set_dp_buffer_len
from sglang.srt.model_executor.runner.decode_cuda_graph_runner import _Rows
for step in range(args.eager_steps):
    set_dp_buffer_len(None, 1, False, args.eager_dp_global)
    dispatcher.dispatch(_Rows(1), None)
# BS=1 requests: a prefill, then decode steps; a draft model's decode step between; a last prefill.
from sglang.srt.model_executor.model_runner import ForwardBatch, ForwardMode, ModelRunner
runner, draft = ModelRunner(), ModelRunner(is_draft_worker=True)
for rid, steps in getattr(args, "decode_requests", []):
    runner.forward(ForwardBatch(ForwardMode.EXTEND, [rid], 1))
    for _ in range(steps):
        runner.forward(ForwardBatch(ForwardMode.DECODE, [rid], 1))
        draft.forward(ForwardBatch(ForwardMode.DECODE, [rid], 1))
runner.forward(ForwardBatch(ForwardMode.EXTEND, ["last"], 1))
print("DONE")
'''


def write_tree(root: Path, version: str = "0.5.16", omit: tuple[str, ...] = ()) -> Path:
    """Write the fake tree (and a dist-info naming `version`) under `root`; `omit` drops modules."""
    for rel, source in MODULES.items():
        if rel in omit:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    for directory in sorted({p for rel in MODULES for p in (root / rel).parents if p != root and root in
                             p.parents}):
        init = directory / "__init__.py"
        if directory.is_dir() and not init.exists():
            init.write_text("", encoding="utf-8")
    dist = root / f"sglang-{version}.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: sglang\nVersion: {version}\n",
                                   encoding="utf-8")
    (root / "drive_fake_server.py").write_text(DRIVER, encoding="utf-8")
    return root
