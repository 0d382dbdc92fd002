"""Wrappers that record sglang's MoE/parallel values as the server runs (stdlib only; never raises).

Each wrapper calls the original first-class, records around it, and swallows its own errors; an
exception of the original always propagates unchanged.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .finder import PostImportFinder
from .targets import TARGETS, Candidate, HookTarget, module_file, resolve_target

# Inside a server the probe's sitecustomize loaded the contract privately, next to this package.
if __package__ == "_harness_instrument":
    from _harness_contract.delay_switch import DelaySwitch, DeviceSleep, spin, switch_from_env
    from _harness_contract.records import ENV_DIR, ENV_RANK, RecordWriter
    from _harness_contract.step_timer import Step, StepTimer, step_timing_enabled
else:
    from reference_impl.contract.delay_switch import DelaySwitch, DeviceSleep, spin, switch_from_env
    from reference_impl.contract.records import ENV_DIR, ENV_RANK, RecordWriter
    from reference_impl.contract.step_timer import Step, StepTimer, step_timing_enabled

ENV_EAGER_CALLS = "HARNESS_INSTRUMENT_EAGER_CALLS"
DEFAULT_EAGER_CALLS = 16
_GATHER_FUNCS = ("require_attn_tp_gather", "require_mlp_tp_gather", "require_gathered_buffer",
                 "require_mlp_sync")


class Probe:
    """Per-process probe state: the lazily opened writer, capture nesting, eager-call budgets."""

    def __init__(self, directory: str, target: str, eager_calls: int, target_version: str | None = None,
                 step_timing: bool = True, delay_switch: DelaySwitch | None = None) -> None:
        self.directory = directory
        self.target = target
        # Known up front when the probe is driven outside an installed sglang (harness/upstream).
        self.target_version = target_version
        self.eager_calls = eager_calls
        self.capturing = 0
        self._writer: RecordWriter | None = None
        self._eager_left: dict[str, int] = {}
        self._once: set[str] = set()
        self._oom_seen: set[int] = set()
        # Target -> the candidate present in the installed sglang tree (known once `sglang` is found).
        self.chosen: dict[str, Candidate] = {}
        # Payload bytes seen by the workspace-size call inside the dispatcher constructor.
        self.last_payload: tuple[Any, Any] = (None, None)
        # Decode step timing (HARNESS_STEP_TIMING) and the run-time delay (HARNESS_INJECT_DELAY_FILE).
        self.step_timing = step_timing
        self.delay_switch = delay_switch
        self._timer: StepTimer | None = None
        self._device_sleep: DeviceSleep | None = None
        self._step_error: str | None = None
        # The decode step whose forward is running, and a GPU-side delay not yet enqueued for it: the
        # delay goes inside the step's graph replay region (or, eager, at the end of its forward).
        self._active: Step | None = None
        self._gpu_delay_us = 0.0

    # --- writing -------------------------------------------------------------------------------
    def write(self, kind: str, **fields: Any) -> None:
        try:
            writer = self._writer or self._open()
            writer.rank = _current_rank(writer.rank)
            writer.write(kind, **fields)
        except Exception as exc:
            sys.stderr.write(f"harness probe: cannot write {kind} record ({type(exc).__name__}: {exc})\n")

    def write_lines(self, lines: list[str]) -> None:
        try:
            writer = self._writer or self._open()
            writer.write_lines(lines)
        except Exception as exc:
            sys.stderr.write(f"harness probe: cannot write {len(lines)} decode_step records "
                             f"({type(exc).__name__}: {exc})\n")

    def rank(self) -> int:
        default = self._writer.rank if self._writer is not None else int(os.environ.get(ENV_RANK, "0"))
        return _current_rank(default)

    def _open(self) -> RecordWriter:
        # Opened on the first record, so processes that never touch sglang leave no file behind.
        self._writer = RecordWriter(self.directory, rank=int(os.environ.get(ENV_RANK, "0")))
        self._writer.write("process_start", target=self.target,
                           target_version=self.target_version or _sglang_version())
        return self._writer

    def close(self) -> None:
        if self._timer is not None:
            self._timer.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def once(self, key: str) -> bool:
        """True the first time `key` is seen in this process."""
        if key in self._once:
            return False
        self._once.add(key)
        return True

    def phase(self) -> str:
        return "capture" if self.capturing or _stream_capturing() else "eager"

    def should_record(self, kind: str) -> bool:
        """Every call during capture; the first `eager_calls` eager calls per kind."""
        if self.capturing:
            return True
        left = self._eager_left.get(kind, self.eager_calls)
        if left > 0:
            self._eager_left[kind] = left - 1
            return True
        # Captures outside the decode runner's capture_one_shape (e.g. other graph runners).
        return _stream_capturing()

    def record_oom(self, exc: BaseException, batch_size: int | None, num_tokens: int | None) -> None:
        if id(exc) in self._oom_seen or not is_oom(exc):
            return
        self._oom_seen.add(id(exc))
        message = str(exc)
        requested, free = parse_oom_message(message)
        self.write("capture_oom", batch_size=batch_size, num_tokens=num_tokens, requested_bytes=requested,
                   free_bytes=free, message=message[:2000])

    # --- decode steps ----------------------------------------------------------------------------
    def decode_begin(self, runner: Any, forward_batch: Any) -> Step | None:
        """Before a forward: a decode step of real requests gets its delay and a timed region (never raises)."""
        try:
            self._active = None  # a forward that raised never reached decode_end
            if getattr(runner, "is_draft_worker", False):
                return None  # a speculative draft model's steps are not the request's decode steps
            rids = getattr(forward_batch, "rids", None)
            if not rids or not forward_batch.forward_mode.is_decode():
                if self._timer is not None:
                    self._timer.other()
                return None
            cuda = _cuda_of(runner)
            if cuda is not None and _stream_capturing():
                return None  # an event recorded into a graph capture would break it
            delay = self.delay_switch.current() if self.delay_switch is not None else None
            if delay is not None and delay.kind == "host":
                spin(delay.us)
            if self._device_sleep is None:  # the first decode step: the device is known now
                self._device_sleep = DeviceSleep(cuda, lambda m: sys.stderr.write(f"harness probe: {m}\n"))
                self._timer = StepTimer(self.write_lines, cuda, self.rank) if self.step_timing else None
                if cuda is not None:
                    self._wrap_graph_replay(cuda)
            self._gpu_delay_us = delay.us if delay is not None and delay.kind == "gpu" else 0.0
            if self._gpu_delay_us:
                self._device_sleep.prime()
            step = self._timer.begin(rids, int(forward_batch.batch_size), delay) if self._timer else None
            self._active = step
            if step is None and self._gpu_delay_us:  # untimed: nothing to put the delay inside
                self._flush_gpu_delay()
            return step
        except Exception as exc:
            self._step_failed(exc)
            return None

    def decode_end(self, step: Step) -> None:
        try:
            self._active = None
            self._flush_gpu_delay()  # an eager forward: the delay still lands inside the forward's events
            if self._timer is not None:
                self._timer.end(step)
        except Exception as exc:
            self._step_failed(exc)

    def graph_replay_begin(self) -> Step | None:
        """Before a CUDA graph replay: inside a timed decode step, open its graph region (never raises)."""
        step = self._active
        if step is None or self._timer is None:
            return None
        try:
            self._timer.graph_begin(step)
            self._flush_gpu_delay()
        except Exception as exc:
            self._step_failed(exc)
            return None
        return step

    def graph_replay_end(self, step: Step) -> None:
        try:
            if self._timer is not None:
                self._timer.graph_end(step)
        except Exception as exc:
            self._step_failed(exc)

    def _flush_gpu_delay(self) -> None:
        if self._gpu_delay_us and self._device_sleep is not None:
            us, self._gpu_delay_us = self._gpu_delay_us, 0.0
            self._device_sleep(us)

    def _wrap_graph_replay(self, cuda: Any) -> None:
        """Time CUDAGraph.replay inside decode steps (called once, at the first decode step; replays elsewhere
        pass through)."""
        graph_cls = getattr(cuda, "CUDAGraph", None)
        if graph_cls is None or not callable(getattr(graph_cls, "replay", None)):
            self.write("hook_missing", target="decode_graph_replay", reason="torch.cuda has no CUDAGraph.replay")
            return
        original = graph_cls.replay

        @functools.wraps(original)
        def replay(graph: Any, *args: Any, **kwargs: Any) -> Any:
            step = self.graph_replay_begin()
            try:
                return original(graph, *args, **kwargs)
            finally:
                if step is not None:
                    self.graph_replay_end(step)

        graph_cls.replay = replay
        self.write("hook_installed", target="decode_graph_replay", module=getattr(graph_cls, "__module__", "?"),
                   attrs=["CUDAGraph.replay"])

    def _step_failed(self, exc: Exception) -> None:
        message = f"harness probe: decode step timing failed ({type(exc).__name__}: {exc})\n"
        if message != self._step_error:  # once per distinct error, not once per step
            self._step_error = message
            sys.stderr.write(message)

    # --- installing ----------------------------------------------------------------------------
    def finder(self) -> PostImportFinder:
        on_import: dict[str, list[Callable[[ModuleType], None]]] = {}
        for target in TARGETS:
            for cand in target.candidates:
                on_import.setdefault(cand.module, []).append(functools.partial(self.hook, target, cand))
        return PostImportFinder(on_import, on_spec={"sglang": self._check_tree})

    def _check_tree(self, _name: str, spec: Any) -> None:
        """When `sglang` is found, report targets with no candidate module in this sglang tree."""
        locations = list(spec.submodule_search_locations or [])
        if not locations:
            return
        root = os.path.dirname(locations[0])
        from pathlib import Path

        for target in TARGETS:
            present = [c for c in target.candidates if module_file(Path(root), c.module)]
            if present:
                # Candidates may share a module (a function renamed in place): the one it defines wins;
                # if none resolves, the first present one, whose hook then names what is missing.
                resolved = _try(lambda t=target: resolve_target(Path(root), t).candidate)
                self.chosen[target.name] = resolved or present[0]
                continue
            modules = ", ".join(dict.fromkeys(c.module for c in target.candidates))
            self.write("hook_missing", target=target.name,
                       reason=f"no module {modules} in sglang {_sglang_version()} at {root}")

    def hook(self, target: HookTarget, cand: Candidate, module: Any) -> None:
        """Wrap `cand`'s attributes in `module` (a module object or anything with the same attributes)."""
        chosen = self.chosen.get(target.name)
        if chosen is not None and chosen != cand:
            return  # an older layout's module that this version still has; the chosen one is hooked
        if target.name == "decode_step" and not (self.step_timing or self.delay_switch):
            return  # switched off: sglang's forward stays unwrapped
        missing = [a for a in cand.attrs if _lookup(module, a) is None]
        if missing:
            self.write("hook_missing", target=target.name,
                       reason=f"{cand.module} has no {', '.join(missing)}")
            return
        install = _INSTALLERS[target.name]
        try:
            install(self, module, cand)
        except Exception as exc:
            self.write("hook_missing", target=target.name,
                       reason=f"{cand.module}: cannot wrap ({type(exc).__name__}: {exc})")
            return
        self.write("hook_installed", target=target.name, module=cand.module, attrs=list(cand.attrs))


# --- attribute plumbing ------------------------------------------------------------------------
def _lookup(module: ModuleType, attr_path: str) -> Any:
    owner: Any = module
    for part in attr_path.split("."):
        owner = inspect.getattr_static(owner, part, None) if isinstance(owner, type) else getattr(
            owner, part, None)
        if owner is None:
            return None
    return owner


def _replace(module: ModuleType, attr_path: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]
             ) -> None:
    """Replace a function, method, classmethod or staticmethod by `make(original)`."""
    head, _, rest = attr_path.partition(".")
    if not rest:
        original = getattr(module, head)
        setattr(module, head, functools.wraps(original)(make(original)))
        return
    cls = getattr(module, head)
    raw = inspect.getattr_static(cls, rest)
    if isinstance(raw, classmethod):
        func = raw.__func__
        setattr(cls, rest, classmethod(functools.wraps(func)(make(func))))
    elif isinstance(raw, staticmethod):
        func = raw.__func__
        setattr(cls, rest, staticmethod(functools.wraps(func)(make(func))))
    else:
        setattr(cls, rest, functools.wraps(raw)(make(raw)))


# --- installers, one per target ----------------------------------------------------------------
def _install_dispatcher_payload(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            size = original(*args, **kwargs)
            try:
                bound = inspect.signature(original).bind(*args, **kwargs).arguments
                probe.last_payload = (bound.get("total_dispatch_payload_size_per_token"),
                                      bound.get("combine_payload_size_per_token"))
            except Exception:
                probe.last_payload = (None, None)
            return size
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_dispatcher_init(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            probe.last_payload = (None, None)
            original(self, *args, **kwargs)
            dispatch_bytes, combine_bytes = probe.last_payload
            max_tokens = getattr(self, "max_num_tokens", None)
            ep_size = getattr(self, "ep_size", None)
            probe.write("dispatcher_init", ep_size=ep_size, ep_rank=getattr(self, "ep_rank", None),
                        max_num_tokens=max_tokens, dispatch_payload_bytes_per_token=dispatch_bytes,
                        combine_payload_bytes_per_token=combine_bytes,
                        workspace_size_per_rank=getattr(self, "workspace_size", None),
                        payload_in_workspace=getattr(self, "payload_in_workspace", None))
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_dispatch(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(self, *args, **kwargs)
            if probe.should_record("dispatch"):
                hidden_states = args[0] if args else kwargs.get("hidden_states")
                dp_global = _dp_global_num_tokens(module)
                probe.write("dispatch", phase=probe.phase(),
                            runtime_max_tokens_per_rank=getattr(self, "runtime_max_tokens_per_rank", None),
                            local_num_tokens=_rows(hidden_states), dp_global_num_tokens=dp_global)
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_attn_tp_gather(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    originals = {name: getattr(module, name) for name in _GATHER_FUNCS}

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if probe.once("attn_tp_gather"):
                # The four predicates take the same arguments (server_args in 0.5.16, none in 0.5.23).
                values = {name: _try(lambda f=f: bool(f(*args, **kwargs))) for name, f in originals.items()}
                probe.write("attn_tp_gather", **values)
            return result
        return wrapper

    for name in _GATHER_FUNCS:
        _replace(module, name, make)


def _install_set_dp_buffer_len(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(cls: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(cls, *args, **kwargs)
            if probe.should_record("set_dp_buffer_len"):
                bound = _bind(original, cls, *args, **kwargs)
                tokens = bound.get("global_num_tokens")
                probe.write("set_dp_buffer_len", phase=probe.phase(),
                            global_dp_buffer_len=bound.get("global_dp_buffer_len"),
                            local_dp_buffer_len=bound.get("local_dp_buffer_len"),
                            global_num_tokens=None if tokens is None else [int(n) for n in tokens])
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_gathered_buffer(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            allocated = bool(getattr(self, "require_gathered_buffer", False))
            probe.write("gathered_buffer", allocated=allocated,
                        num_tokens=getattr(self, "max_num_token", None) if allocated else 0,
                        runner=type(self).__name__)
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_cuda_graph_capture(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            size = args[0] if args else kwargs.get("size", kwargs.get("bs"))
            width = getattr(self, "captured_req_width", None) or getattr(self, "num_tokens_per_bs", None) or 1
            num_tokens = _try(lambda: int(size) * int(width))
            before = _memory()
            tic = time.perf_counter()
            probe.capturing += 1
            try:
                out = original(self, *args, **kwargs)
            except BaseException as exc:
                probe.record_oom(exc, _try(lambda: int(size)), num_tokens)
                raise
            finally:
                probe.capturing -= 1
            elapsed = time.perf_counter() - tic
            after = _memory()
            probe.write("cuda_graph_capture", batch_size=_try(lambda: int(size)), num_tokens=num_tokens,
                        mem_free_before=before[0], mem_free_after=after[0], allocated_before=before[1],
                        allocated_after=after[1], elapsed_s=elapsed)
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_capture_oom(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                # OOMs outside one capture (e.g. the eager runner's static buffers) have no batch size.
                probe.record_oom(exc, None, None)
                raise
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_mlp_scatter_mode(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    if cand.attrs[0] != "LayerScatterModes.init_new":
        _install_ffn_rows(probe, module, cand)
        return

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(cls: Any, *args: Any, **kwargs: Any) -> Any:
            modes = original(cls, *args, **kwargs)
            mode = getattr(modes, "mlp_mode", None)
            probe.write("mlp_scatter_mode", layer_id=kwargs.get("layer_id"),
                        is_sparse=kwargs.get("is_layer_sparse"), mode=getattr(mode, "name", str(mode)))
            return modes
        return wrapper

    _replace(module, cand.attrs[0], make)


# The batch variants whose FFN rows the scatter-mode vocabulary describes: ordinary batches, and a
# context-parallel extend (the only batch on which the MoE-CP gather of fix 5 happens).
_FFN_VARIANTS = ("ORDINARY", "CONTEXT_PARALLEL")


def _install_ffn_rows(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    """layer_boundary (0.5.21+): the FFN row contract sglang resolves per batch variant, as a scatter mode."""
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(variant: Any, *args: Any, **kwargs: Any) -> Any:
            out = original(variant, *args, **kwargs)
            name = getattr(variant, "name", None)
            if name in _FFN_VARIANTS:
                sparse = bool(kwargs.get("sparse"))
                # The function is per stage, not per layer: sglang does not pass a layer id.
                probe.write("mlp_scatter_mode", layer_id=None, is_sparse=sparse, variant=name,
                            mode=_try(lambda: ffn_scatter_mode(module, name, out, sparse,
                                                               kwargs.get("dense_tp_size"))))
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


def ffn_scatter_mode(factories: Any, variant: str, resolved: Any, sparse: bool, dense_tp_size: Any) -> str:
    """An FFN's resolved row contract in LayerScatterModes' words (SCATTERED / MOE_FULL / FULL).

    SCATTERED: the FFN computes on this rank's own rows (sglang's _ffn_on_rank_rows; 0.5.21, which
    lacks it, leaves exactly those outputs without a sum group). MOE_FULL: on a CP extend, its input
    rows are not sharded over attention CP, i.e. gathered over the MoE-CP group. FULL: otherwise.
    """
    contract = resolved[0]
    on_rank_rows = getattr(factories, "_ffn_on_rank_rows", None)
    own = on_rank_rows(sparse, dense_tp_size) if on_rank_rows is not None else contract.output.group is None
    if own:
        return "SCATTERED"
    axes = {getattr(axis, "name", str(axis)) for axis in contract.input.layout.sharded}
    if variant == "CONTEXT_PARALLEL" and "ATTN_CP" not in axes:
        return "MOE_FULL"
    return "FULL"


# initialize_model_parallel's keyword names per version (0.5.16 first, 0.5.23 second).
_DP_ARG = ("attention_data_parallel_size", "attn_dp_size")
_MOE_DP_ARG = ("moe_data_model_parallel_size", "moe_dp_size")


def _install_parallel_groups(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            bound = _bind(original, *args, **kwargs)

            def size(getter: str) -> Any:
                return _try(lambda: int(getattr(module, getter)()))

            moe_dp_group_size = size("get_moe_data_parallel_world_size")
            requested_moe_dp = _first(bound, _MOE_DP_ARG)
            # Aliased: MoE-DP *is* the attention-CP group object and so is wider than requested. (With
            # tp=1 both are the TP group by coincidence of size; that is not the alias fix 5 adds.)
            alias = _try(lambda: module.get_moe_dp_group() is module.get_attn_cp_group()
                         and moe_dp_group_size != requested_moe_dp)
            probe.write("parallel_groups", tp_size=size("get_tensor_model_parallel_world_size"),
                        dp_size=_first(bound, _DP_ARG), ep_size=size("get_moe_expert_parallel_world_size"),
                        attn_tp_size=size("get_attn_tensor_model_parallel_world_size"),
                        attn_cp_size=size("get_attn_context_model_parallel_world_size"),
                        moe_dp_size=requested_moe_dp, moe_dp_group_size=moe_dp_group_size,
                        moe_dp_group_is_attn_cp_group=alias)
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


def _install_decode_step(probe: Probe, module: ModuleType, cand: Candidate) -> None:
    """ModelRunner._forward_raw: the decode graph replay or eager forward, bracketed per step."""
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, forward_batch: Any, *args: Any, **kwargs: Any) -> Any:
            step = probe.decode_begin(self, forward_batch)
            out = original(self, forward_batch, *args, **kwargs)
            if step is not None:
                probe.decode_end(step)
            return out
        return wrapper

    _replace(module, cand.attrs[0], make)


_INSTALLERS: dict[str, Callable[[Probe, ModuleType, Candidate], None]] = {
    "dispatcher_init": _install_dispatcher_init,
    "dispatcher_payload": _install_dispatcher_payload,
    "dispatch": _install_dispatch,
    "attn_tp_gather": _install_attn_tp_gather,
    "set_dp_buffer_len": _install_set_dp_buffer_len,
    "gathered_buffer": _install_gathered_buffer,
    "cuda_graph_capture": _install_cuda_graph_capture,
    "capture_oom": _install_capture_oom,
    "mlp_scatter_mode": _install_mlp_scatter_mode,
    "parallel_groups": _install_parallel_groups,
    "decode_step": _install_decode_step,
}


# --- small readers, all tolerant ----------------------------------------------------------------
def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _first(bound: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        if name in bound:
            return bound[name]
    return None


def _bind(func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Arguments by parameter name, defaults included; {} if they do not bind."""
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {}
    bound.apply_defaults()
    return dict(bound.arguments)


def _rows(tensor: Any) -> Any:
    return _try(lambda: int(tensor.shape[0]))


def _dp_global_num_tokens(dispatcher_module: Any) -> Any:
    """The list the dispatcher itself reads: its module's get_dp_global_num_tokens (dp_attention's)."""
    getter = getattr(dispatcher_module, "get_dp_global_num_tokens", None)
    if getter is None:
        dp_attention = sys.modules.get("sglang.srt.layers.dp_attention")
        getter = getattr(dp_attention, "get_dp_global_num_tokens", None)
    tokens = _try(getter) if getter is not None else None
    return None if tokens is None else _try(lambda: [int(n) for n in tokens])


def _memory() -> tuple[Any, Any]:
    """(free bytes on the device, bytes allocated by torch), or Nones without CUDA."""
    torch = sys.modules.get("torch")
    if torch is None or not _try(torch.cuda.is_available):
        return None, None
    free = _try(lambda: int(torch.cuda.mem_get_info()[0]))
    return free, _try(lambda: int(torch.cuda.memory_allocated()))


def _stream_capturing() -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    return bool(_try(lambda: torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()))


def _cuda_of(runner: Any) -> Any:
    """torch.cuda when the runner's forward runs on a CUDA device, else None (timed by the host clock)."""
    torch = sys.modules.get("torch")
    if torch is None or str(getattr(runner, "device", "")).split(":")[0] != "cuda":
        return None
    return torch.cuda


def _current_rank(default: int) -> int:
    dist = sys.modules.get("torch.distributed")
    if dist is not None and _try(lambda: dist.is_available() and dist.is_initialized()):
        rank = _try(dist.get_rank)
        if isinstance(rank, int):
            return rank
    return default


def _sglang_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("sglang")
    except Exception:
        module = sys.modules.get("sglang.version")
        return getattr(module, "__version__", None)


def is_oom(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (any alias) or a RuntimeError carrying CUDA's out-of-memory message."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return "OutOfMemoryError" in names or "out of memory" in str(exc).lower()


_UNITS = {"B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4,
          "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}
_REQUESTED = re.compile(r"Tried to allocate ([0-9.]+) ?([KMGT]i?B|B)", re.IGNORECASE)
_FREE = re.compile(r"of which ([0-9.]+) ?([KMGT]i?B|B) (?:is )?free", re.IGNORECASE)


def parse_oom_message(message: str) -> tuple[int | None, int | None]:
    """(requested bytes, free bytes) from torch's OOM message; None where the message lacks one."""
    def grab(pattern: re.Pattern[str]) -> int | None:
        match = pattern.search(message)
        if not match:
            return None
        return round(float(match.group(1)) * _UNITS[match.group(2).upper()])

    return grab(_REQUESTED), grab(_FREE)


def install_sglang_hooks() -> None:
    """Put the probe's finder first on sys.meta_path (no-op without HARNESS_INSTRUMENT_DIR)."""
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return
    if any(isinstance(f, PostImportFinder) for f in sys.meta_path):
        return
    try:
        eager_calls = int(os.environ.get(ENV_EAGER_CALLS, DEFAULT_EAGER_CALLS))
    except ValueError:
        eager_calls = DEFAULT_EAGER_CALLS
    probe = Probe(directory, os.environ.get("HARNESS_INSTRUMENT_TARGET", "sglang"), eager_calls,
                  step_timing=step_timing_enabled(), delay_switch=switch_from_env())
    finder = probe.finder()
    sys.meta_path.insert(0, finder)
    finder.run_for_loaded()
