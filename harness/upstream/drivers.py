"""Drive sglang's own functions for one Case on the CPU, with the harness's live hooks wrapped around them.

Each driver calls what a starting or serving sglang process calls for the value it guards, in
sglang's order, through the linker. The probe's hooks (harness/instrument) write the same records a
live server writes; harness/oracle_check then judges them exactly as it judges a live run.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from harness.check.oracle_check import judged_version
from harness.instrument.sglang_hooks import Probe
from harness.instrument.targets import TARGETS, Candidate, HookTarget, resolve_target
from harness.upstream.case import Case
from harness.upstream.linker import LazyModule, Linker, MissingName, SourceTree, UnreadableSource
from harness.upstream.standins import (
    CudaOnCpu,
    Geometry,
    Group,
    Inert,
    State,
    environment,
    flashinfer_stand_ins,
    runtime_state,
)
from reference_impl.fixes.a2a_token_cap import ENV_VAR
from reference_impl.fixes.dp_workspace_sizing import resolved_chunked_prefill_size
from reference_impl.parse import parse_model
from reference_impl.versions import flashinfer_for_sglang

_RUNTIME = "sglang.srt.runtime_context"
_DP_ATTENTION = "sglang.srt.layers.dp_attention"
_FORWARD_BATCH = "sglang.srt.model_executor.forward_batch_info"
_BOUNDARY = "sglang.srt.layers.layer_boundary.factories"
_PARALLEL_STATE = "sglang.srt.distributed.parallel_state"
_DECODE_RUNNER = "sglang.srt.model_executor.runner.decode_cuda_graph_runner"
_LEGACY_RUNNER = "sglang.srt.model_executor.cuda_graph_runner"
_GETTERS = ("context", "parallel", "server_args", "flags", "forward", "device", "model", "exec", "schedule",
            "memory", "spec", "lora", "mm", "disagg", "serving", "observability")


@dataclass(frozen=True)
class Session:
    """A linker over one sglang tree for one case, its runtime state and the probe recording it."""

    linker: Linker
    state: State
    probe: Probe
    case: Case
    version: str

    def module(self, name: str) -> LazyModule:
        return LazyModule(self.linker, name)

    def hook(self, target_name: str) -> Candidate | None:
        """Install one live hook on the linked tree (the candidate the live probe would pick); None if none."""
        target = _target(target_name)
        resolved = _resolved(self.linker.tree.root, target_name)
        present = [c for c in target.candidates if self.linker.tree.module_file(c.module) is not None]
        cand = resolved or (present[0] if present else None)
        if cand is not None:
            self.probe.hook(target, cand, self.module(cand.module))
            return cand
        self.probe.write("hook_missing", target=target_name,
                         reason=f"no module {', '.join(dict.fromkeys(c.module for c in target.candidates))} in sglang "
                                f"{self.version}")
        return None


@functools.cache
def _resolved(root: Path, target_name: str) -> Candidate | None:
    """The candidate the live probe picks in this tree (parsed once per tree and target)."""
    return resolve_target(root, _target(target_name)).candidate


def _target(name: str) -> HookTarget:
    return next(t for t in TARGETS if t.name == name)


def stand_ins(state: State, version: str) -> dict[str, Any]:
    """Runtime-context getters answer from `state`; FlashInfer is the CPU stand-in."""
    out: dict[str, Any] = {f"{_RUNTIME}.get_{name}": (lambda: state) for name in _GETTERS}
    # Before runtime_context (0.5.12 and older) the server args were a module global of server_args.
    out["sglang.srt.server_args.get_global_server_args"] = lambda: state
    out.update(flashinfer_stand_ins(flashinfer_for_sglang(judged_version(version))))
    # Diffusion-LLM serving config (0.5.2x): not part of these checks, and not configured.
    out["sglang.srt.dllm.config.DllmConfig"] = SimpleNamespace(from_server_args=lambda server_args: None)
    return out


@contextlib.contextmanager
def session(tree: SourceTree, case: Case, version: str, probe: Probe) -> Iterator[Session]:
    """A fresh link of the tree for `case` (no state survives from another driver), recorded by `probe`."""
    config = _model_json(case.model_dir)
    model = parse_model(config)
    state = runtime_state(case.args, resolved_chunked_prefill_size(case.args, None),
                          Geometry(case.oracle.dp_global_num_tokens, case.oracle.local_num_tokens or 1))
    state.hidden_size = model.hidden_size
    state.dp = SimpleNamespace(enabled=case.args.enable_dp_attention, use_world_group_for_gather=False,
                               joiner_skip_all_gather=False, scoped_gather_slot=None,
                               buffer_hidden_size=model.hidden_size, buffer_dtype=torch.bfloat16,
                               buffer_device="cpu")
    state.is_extend_in_batch = False
    state.sp_active = False
    links = stand_ins(state, version)
    # The process's ModelConfig (0.5.20+ runtime getter): its hf_config is the case's config.json.
    hf_config = SimpleNamespace(**config)
    links[f"{_RUNTIME}.process_model_config"] = lambda: SimpleNamespace(hf_config=hf_config)
    with Linker(tree, links) as linker, environment(case.env, clear=(ENV_VAR,)), CudaOnCpu():
        moe_utils = LazyModule(linker, "sglang.srt.layers.moe.utils")
        state.moe.a2a_backend = moe_utils.MoeA2ABackend(case.args.moe_a2a_backend)
        state.moe.runner_backend = moe_utils.MoeRunnerBackend(case.args.moe_runner_backend)
        # The MoE backend getters read process-global state whose home moved across releases (a module
        # global before 0.5.13, get_flags().moe since): answer them from the case in every release.
        linker.stand_ins["sglang.srt.layers.moe.utils.get_moe_a2a_backend"] = lambda: state.moe.a2a_backend
        linker.stand_ins["sglang.srt.layers.moe.utils.get_moe_runner_backend"] = lambda: state.moe.runner_backend
        yield Session(linker, state, probe, case, version)


@functools.cache
def _model_json(model_dir: Path) -> dict[str, Any]:
    """The model's config.json, read once per process (every case of a grid shares one model; read-only)."""
    return json.loads((model_dir / "config.json").read_text(encoding="utf-8"))


# --- the drivers ---------------------------------------------------------------------------------
def drive_dispatcher(s: Session) -> None:
    """FlashinferDispatcher.__init__ then one dispatch of the case's geometry (fixes 1, 2, 3)."""
    if s.case.args.moe_a2a_backend != "flashinfer":
        return
    for name in ("dispatcher_payload", "dispatcher_init", "dispatch"):
        s.hook(name)
    model = _model_json(s.case.model_dir)
    hidden = int(model["hidden_size"])
    top_k = int(model["num_experts_per_tok"])
    experts = int(model.get("num_experts") or model.get("n_routed_experts"))
    dispatcher_cls = s.module("sglang.srt.layers.moe.token_dispatcher.flashinfer").FlashinferDispatcher
    kwargs: dict[str, Any] = {"router_topk": top_k, "num_experts": experts, "hidden_size": hidden,
                              "num_local_experts": experts // s.case.args.ep_size}
    if "moe_runner_config" in inspect.signature(dispatcher_cls.__init__).parameters:
        # 0.5.23: the MoE layer hands its runner config down (no shared experts are fused here).
        config_cls = s.module("sglang.srt.layers.moe.moe_runner.base").MoeRunnerConfig
        kwargs["moe_runner_config"] = config_cls(num_experts=experts, num_local_experts=kwargs["num_local_experts"],
                                                 hidden_size=hidden, top_k=top_k, num_fused_shared_experts=0)
    dispatcher = dispatcher_cls(Group(s.case.args.ep_size), **kwargs)
    dispatcher.set_quant_config({})
    geometry = s.case.oracle
    local = geometry.local_num_tokens or 1
    dp_global = None if geometry.dp_global_num_tokens is None else list(geometry.dp_global_num_tokens)
    # The forward pass hands the scheduler's gathered list to set_dp_buffer_len; dispatch reads it back.
    set_len = s.module(_DP_ATTENTION).set_dp_buffer_len
    set_len(sum(dp_global) if dp_global else local, local, False, dp_global)
    topk_cls = s.module("sglang.srt.layers.moe.topk").StandardTopKOutput
    topk = topk_cls(torch.zeros(local, top_k), torch.zeros(local, top_k, dtype=torch.int32), None)
    dispatcher.dispatch(torch.zeros(local, hidden, dtype=torch.bfloat16), topk)


def drive_gather(s: Session) -> None:
    """require_attn_tp_gather and friends as the scheduler evaluates them at start-up (fix 4)."""
    s.hook("attn_tp_gather")
    common = s.module("sglang.srt.utils.common")
    func = common.require_attn_tp_gather
    call_predicate(func, s.state)


def drive_capture(s: Session) -> None:
    """Decode CUDA graph capture of every batch size sglang picks (fixes 2 and 4): sizes, set_dp_buffer_len."""
    for name in ("gathered_buffer", "cuda_graph_capture", "set_dp_buffer_len", "attn_tp_gather"):
        s.hook(name)
    if s.linker.tree.module_file(_DECODE_RUNNER) is None and s.linker.tree.module_file(_LEGACY_RUNNER):
        _drive_legacy_capture(s)
        return
    runner_mod = s.module(_DECODE_RUNNER)
    base_mod = s.module("sglang.srt.model_executor.runner.base_cuda_graph_runner")
    gathered, mlp_gather, attn_gather = _gather_flags(s)
    owner = model_runner(s)
    sizes, _ = base_mod.get_batch_sizes_to_capture(owner)
    runner = _runner(s, runner_mod, owner, gathered, mlp_gather, attn_gather)
    capture_one = runner_mod.DecodeCudaGraphRunner.capture_one_shape
    for size in sizes:
        capture_one(runner, size, _forward)


def _drive_legacy_capture(s: Session) -> None:
    """Before the runner/ split (0.5.13 and older): CudaGraphRunner.capture_one_batch_size per batch size."""
    args = s.case.args
    # Process-group getters of those releases read module globals that initialize_dp_attention and
    # initialize_model_parallel set at start-up; they answer from the case instead.
    s.linker.stand_ins.update({
        f"{_DP_ATTENTION}.get_attention_tp_size": lambda: s.state.attn_tp_size,
        f"{_DP_ATTENTION}.get_attention_cp_size": lambda: s.state.attn_cp_size,
        f"{_DP_ATTENTION}.get_attention_dp_size": lambda: s.state.attn_dp_size,
        f"{_DP_ATTENTION}.get_attention_tp_rank": lambda: 0,
        f"{_PARALLEL_STATE}.get_moe_expert_parallel_world_size": lambda: args.ep_size,
    })
    runner_mod = s.module(_LEGACY_RUNNER)
    gathered, mlp_gather, attn_gather = _gather_flags(s)
    generate = s.linker.method("sglang.srt.server_args", "ServerArgs._generate_cuda_graph_batch_sizes")
    s.state.cuda_graph_max_bs = s.case.cuda_graph_max_bs
    server_args = State("server_args", {**s.state.values(), "cuda_graph_bs": list(generate(s.state)),
                                        "torch_compile_max_bs": 0, "enable_torch_compile": False})
    model_runner = SimpleNamespace(
        server_args=server_args, req_to_token_pool=SimpleNamespace(size=s.case.max_running_requests),
        spec_algorithm=_spec_none(s), is_draft_worker=False, hisparse_coordinator=None,
        attn_backend=Inert("attn_backend"), token_to_kv_pool=Inert("token_to_kv_pool"),
        tp_group=Inert("tp_group"), lora_manager=None, canary_manager=None)
    sizes, _ = runner_mod.get_batch_sizes_to_capture(model_runner)
    runner = object.__new__(runner_mod.CudaGraphRunner)
    rows = 4096
    buffers = _Buffers(
        **{name: torch.zeros(rows, dtype=torch.int64) for name in (
            "input_ids", "req_pool_indices", "seq_lens", "seq_lens_cpu", "out_cache_loc", "positions")},
        mrope_positions=torch.zeros(3, rows, dtype=torch.int64), next_token_logits_buffer=torch.zeros(rows, 1),
        num_token_non_padded=torch.zeros(1, dtype=torch.int32),
        global_num_tokens_gpu=torch.zeros(args.dp_size, dtype=torch.int32),
        global_num_tokens_for_logprob_gpu=torch.zeros(args.dp_size, dtype=torch.int32), pp_proxy_tensors={})
    runner.__dict__.update(
        model_runner=model_runner, buffers=buffers, stream=None, num_tokens_per_bs=1, is_encoder_decoder=False,
        require_gathered_buffer=gathered, require_mlp_tp_gather=mlp_gather, require_attn_tp_gather=attn_gather,
        nsa_enable_prefill_cp=False, enable_prefill_cp=False, buffer_registry=_Registry(rows), pp_size=1, dp_size=args.dp_size, enable_pdmux=False,
        capture_hidden_mode=s.module(_FORWARD_BATCH).CaptureHiddenMode.NULL, attn_backend=Inert("attn_backend"),
        capture_forward_mode=_decode_mode(s), tbo_plugin=Inert("tbo_plugin"), deepep_adapter=Inert("deepep"),
        device_module=Inert("device_module"), max_bs=s.case.cuda_graph_max_bs, speculative_num_steps=0,
        # The CUDA graph itself: no graph object, and capture runs the function once (as its warm-up does).
        _create_device_graph=lambda: None,
        _capture_graph=lambda graph, pool, stream, run_once: run_once())
    for size in sizes:
        runner_mod.CudaGraphRunner.capture_one_batch_size(runner, size, _forward)


def _gather_flags(s: Session) -> tuple[bool, bool, bool]:
    """sglang's (require_gathered_buffer, require_mlp_tp_gather, require_attn_tp_gather) for the case."""
    common = s.module("sglang.srt.utils.common")
    return (bool(call_predicate(common.require_gathered_buffer, s.state)),
            bool(call_predicate(common.require_mlp_tp_gather, s.state)),
            bool(call_predicate(common.require_attn_tp_gather, s.state)))


def _forward(input_ids: torch.Tensor, positions: torch.Tensor, forward_batch: Any, **kwargs: Any) -> Any:
    return SimpleNamespace(next_token_logits=None)


def model_runner(s: Session) -> Any:
    decode = SimpleNamespace(bs=_decode_batch_sizes(s))
    # 0.5.19+: the capture list and compile bound moved to get_exec().graph.
    s.state.graph = SimpleNamespace(cuda_graph_config=SimpleNamespace(decode=decode), torch_compile_max_bs=0,
                                    debug_cuda_graph=False)
    server_args = State("server_args", {**s.state.values(), "cuda_graph_config": SimpleNamespace(decode=decode),
                                        "torch_compile_max_bs": 0, "enable_torch_compile": False,
                                        "enable_lora": False})
    runner = SimpleNamespace(
        server_args=server_args, req_to_token_pool=SimpleNamespace(size=s.case.max_running_requests),
        spec_algorithm=_spec_none(s), is_draft_worker=False, capture_tail_hooks=[], capture_head_hooks=[],
        canary_manager=None,
        hisparse_coordinator=None, attn_backend=Inert("attn_backend"), lora_manager=None, model=Inert("model"),
        kv_index_translator=Inert("kv_index_translator"))
    try:  # 0.5.23: whether a captured bucket is attn-TP sharded is ModelRunner's own decision
        sharded = s.linker.method("sglang.srt.model_executor.model_runner", "ModelRunner.attn_tp_sequence_sharded")
    except MissingName:
        return runner
    runner.attn_tp_sequence_sharded = functools.partial(sharded, runner)
    return runner


def _decode_batch_sizes(s: Session) -> list[int]:
    """ServerArgs' decode capture list for the case's --cuda-graph-max-bs (sglang's own generator)."""
    if s.linker.tree.module_file("sglang.srt.arg_groups.cuda_graph_hook") is not None:  # 0.5.19 and later
        generate = s.module("sglang.srt.arg_groups.cuda_graph_hook").generate_decode_cuda_graph_batch_sizes
    else:
        generate = s.linker.method("sglang.srt.server_args", "ServerArgs._generate_decode_cuda_graph_batch_sizes")
    return list(generate(s.state, s.case.cuda_graph_max_bs))


def _spec_none(s: Session) -> Any:
    """sglang's own SpeculativeAlgorithm for 'no speculative decoding'."""
    spec = s.module("sglang.srt.speculative.spec_info").SpeculativeAlgorithm
    return spec.from_string(None)


def _runner(s: Session, runner_mod: LazyModule, model_runner: Any, gathered: bool, mlp_gather: bool,
            attn_gather: bool) -> Any:
    """A DecodeCudaGraphRunner with the state __init__ would leave, minus GPU memory: capture needs no more."""
    cls = runner_mod.DecodeCudaGraphRunner
    runner = object.__new__(cls)
    max_tokens = 4096
    buffers = _Buffers(
        num_token_non_padded=torch.zeros(1, dtype=torch.int32),
        global_num_tokens_gpu=torch.zeros(s.case.args.dp_size, dtype=torch.int32),
        global_num_tokens_for_logprob_gpu=torch.zeros(s.case.args.dp_size, dtype=torch.int32),
        next_token_logits_buffer=torch.zeros(max_tokens, 1), rids_int=None, bootstrap_room_ids_int=None,
        pp_proxy_tensors={}, ngram_embedding_info=None, custom_mask=None, input_embeds=None)
    runner.__dict__.update(
        model_runner=model_runner, captured_req_width=1, num_tokens_per_bs=1, ragged_verify_mode=False,
        buffers=buffers, buffer_registry=_Registry(max_tokens), require_gathered_buffer=gathered,
        require_mlp_tp_gather=mlp_gather, require_attn_tp_gather=attn_gather, enable_prefill_cp=False,
        pp_size=1, dp_size=s.case.args.dp_size, num_dp_ranks=s.state.num_dp_ranks,
        capture_hidden_mode=s.module(_FORWARD_BATCH).CaptureHiddenMode.NULL, enable_pdmux=False,
        attn_backend=Inert("attn_backend"), tbo_plugin=Inert("tbo_plugin"), deepep_adapter=Inert("deepep"),
        backend=_EagerCapture(), capture_forward_mode=_decode_mode(s), max_bs=s.case.cuda_graph_max_bs,
        device="cpu", speculative_num_steps=0, record_nolora_graph=False,
        device_module=SimpleNamespace(is_current_stream_capturing=lambda: False), dllm_uses_input_embeds=False)
    return runner


def _decode_mode(s: Session) -> Any:
    return s.module(_FORWARD_BATCH).ForwardMode.DECODE


class _Buffers(SimpleNamespace):
    """DecodeInputBuffers: the token-count tensors capture writes; optional feature buffers are absent (None)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


class _Registry:
    """cuda_graph_buffer_registry: static input slots, sliced per captured shape."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def get_slot(self, name: str) -> Any:
        rows = self.rows
        dtype = torch.bool if name.endswith("mask") else torch.int64
        tensor = torch.zeros(rows, dtype=dtype)
        return SimpleNamespace(slice_for=lambda bs, num_tokens: tensor[: num_tokens if name in _TOKEN_SLOTS
                                                                         else bs])

    def has_slot(self, name: str) -> bool:
        return False


_TOKEN_SLOTS = {"input_ids", "out_cache_loc", "positions", "mrope_positions"}


class _EagerCapture:
    """The graph backend: runs the captured function once, as capture's warm-up does."""

    def capture_one(self, key: Any, run_once: Callable[[], Any], **kwargs: Any) -> None:
        run_once()

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def drive_scatter(s: Session) -> None:
    """The MLP scatter mode of a sparse and a dense layer as the model builds them (fix 5)."""
    cand = s.hook("mlp_scatter_mode")
    if cand is None:
        return
    if cand.module == _BOUNDARY:
        _drive_ffn_rows(s, cand.attrs[0])
        return
    communicator = s.module("sglang.srt.layers.communicator")
    modes = communicator.LayerScatterModes
    layers = 4
    for layer_id, sparse in ((0, False), (1, True), (2, True)):
        modes.init_new(layer_id=layer_id, num_layers=layers, is_layer_sparse=sparse,
                       is_previous_layer_sparse=layer_id > 1, is_next_layer_sparse=True)


def _drive_ffn_rows(s: Session, resolve_name: str) -> None:
    """layer_boundary (0.5.21+): the FFN row contract of a dense and a sparse FFN per batch variant.

    The variants are sglang's own list for the configuration. The CP extend (the batch fix 5 is about)
    exists only with --enable-prefill-cp, so it is on whenever attn_cp_size > 1; the communicator releases
    keep sglang's default (off), under which their sparse mode is already MOE_FULL.
    """
    s.state.enable_prefill_cp = s.case.args.attn_cp_size > 1
    s.state.enable_attn_tp_input_scattered = False
    s.state.enable_cp_tp_group_sharing = False
    s.state.sp = SimpleNamespace(enabled=False)  # get_flags().sp: layernorm sequence parallelism, off
    s.state.comm = SimpleNamespace(boundary_reduction=_boundary_reduction(s))
    factories = s.module(_BOUNDARY)
    active = getattr(factories, "_active_variants", None) or factories._variants  # 0.5.21 name
    resolve = getattr(factories, resolve_name)
    for variant in active():
        if variant.name in ("ORDINARY", "CONTEXT_PARALLEL"):
            # Sparse first: where sglang refuses the MoE layout (0.5.21's _refuse_uncovered_cp_moe), the
            # case is reported not observable with sglang's reason, not as a model without sparse layers.
            for sparse in (True, False):
                resolve(variant, sparse=sparse)


def _boundary_reduction(s: Session) -> str:
    """--boundary-reduction auto as sglang resolves it for the case's model."""
    config = SimpleNamespace(**_model_json(s.case.model_dir))
    return str(s.module("sglang.srt.arg_groups.boundary_reduction").model_boundary_reduction(config))


def call_predicate(func: Callable[..., Any], state: State) -> Any:
    """0.5.16's predicates take server_args; 0.5.23's take none (or keyword-only ones) and read get_parallel()."""
    positional = [p for p in inspect.signature(func).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return func(state) if positional else func()


# The hook targets whose records each driver produces (reported missing when the driver cannot link).
DRIVER_TARGETS: dict[str, tuple[str, ...]] = {
    "dispatcher": ("dispatcher_init", "dispatch"),
    "gather": ("attn_tp_gather",),
    "capture": ("cuda_graph_capture", "set_dp_buffer_len"),
    "scatter": ("mlp_scatter_mode",),
}

DRIVERS: dict[str, Callable[[Session], None]] = {
    "dispatcher": drive_dispatcher,
    "gather": drive_gather,
    "capture": drive_capture,
    "scatter": drive_scatter,
}


def run(tree: SourceTree, case: Case, version: str, records_dir: str, drivers: tuple[str, ...]) -> list[str]:
    """Run the named drivers for one case; returns the errors sglang's own code raised (asserts included)."""
    errors: list[str] = []
    probe = Probe(records_dir, "sglang", eager_calls=16, target_version=version)
    try:
        for name in drivers:
            try:
                errors += _drive(name, tree, case, version, probe)
            except UnreadableSource as exc:
                # A broken tree must stop the check, not read as "this release's layout is unknown".
                raise UnreadableSource(f"{exc}; the {name} driver links it for hook target(s) "
                                       f"{', '.join(DRIVER_TARGETS[name])}") from None
    finally:
        probe.close()
    return errors


def _drive(name: str, tree: SourceTree, case: Case, version: str, probe: Probe) -> list[str]:
    """One driver in a fresh session: sglang's own asserts are returned, an unknown layout is recorded missing."""
    with session(tree, case, version, probe) as s:
        try:
            DRIVERS[name](s)
        except UnreadableSource:
            raise
        except Exception as exc:
            if isinstance(exc, AssertionError) and "CUDA" not in str(exc):
                return [f"{name}: {type(exc).__name__}: {exc}"]  # sglang's own geometry asserts
            # This release's layout is unknown to the driver: its values are not observable
            # (skipped verdicts that name the reason), never silently passed.
            for target in DRIVER_TARGETS[name]:
                probe.write("hook_missing", target=target,
                            reason=f"driver {name} cannot run sglang {version}: {type(exc).__name__}: {exc}")
    return []
