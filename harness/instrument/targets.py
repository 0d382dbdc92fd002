"""Where each hook lives in sglang, per version, and a static (ast) resolver for an unpacked sglang tree.

Stdlib only: the probe loads this module inside sglang processes. A target's name is the record kind
it writes (hook_missing records name it). Candidates are tried in order; the first whose module file
exists in the installed sglang is the one hooked, so versions between the listed ones also resolve.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Candidate:
    """One place a target lives: a module and attribute paths in it (`Class.method` or `function`)."""

    module: str
    attrs: tuple[str, ...]
    versions: str  # sglang versions this location is known for (documentation)


@dataclass(frozen=True)
class HookTarget:
    name: str
    candidates: tuple[Candidate, ...]
    why: str


_DISPATCHER = "sglang.srt.layers.moe.token_dispatcher.flashinfer"
_DECODE_RUNNER = "sglang.srt.model_executor.runner.decode_cuda_graph_runner"
_LEGACY_RUNNER = "sglang.srt.model_executor.cuda_graph_runner"
_BOUNDARY = "sglang.srt.layers.layer_boundary.factories"
_MODEL_RUNNER = "sglang.srt.model_executor.model_runner"

TARGETS: tuple[HookTarget, ...] = (
    HookTarget("dispatcher_init", (
        Candidate(_DISPATCHER, ("FlashinferDispatcher.__init__",), "0.5.16, 0.5.23"),
    ), "A2A token cap and workspace bytes (fixes 2, 3)"),
    HookTarget("dispatcher_payload", (
        Candidate(_DISPATCHER, ("moe_a2a_get_workspace_size_per_rank",), "0.5.16, 0.5.23"),
    ), "payload bytes per token passed to FlashInfer's workspace formula"),
    HookTarget("dispatch", (
        Candidate(_DISPATCHER, ("FlashinferDispatcher.dispatch",), "0.5.16, 0.5.23"),
    ), "runtime_max_tokens_per_rank per dispatch (fix 1)"),
    HookTarget("attn_tp_gather", (
        Candidate("sglang.srt.utils.common", ("require_attn_tp_gather", "require_mlp_tp_gather",
                                              "require_gathered_buffer", "require_mlp_sync"),
                  "0.5.16 (server_args argument), 0.5.23 (no argument)"),
    ), "gather flags (fix 4)"),
    HookTarget("set_dp_buffer_len", (
        Candidate("sglang.srt.layers.dp_attention", ("_DpGatheredBufferWrapper.set_dp_buffer_len",),
                  "0.5.16, 0.5.23"),
    ), "DP buffer length and per-rank token list at capture (fix 2)"),
    HookTarget("gathered_buffer", (
        Candidate(_DECODE_RUNNER, ("DecodeCudaGraphRunner.__init__",), "0.5.16, 0.5.23"),
        Candidate(_LEGACY_RUNNER, ("CudaGraphRunner.__init__",), "before the runner/ split"),
    ), "gathered-buffer allocation by the decode graph runner (fix 4)"),
    HookTarget("cuda_graph_capture", (
        Candidate(_DECODE_RUNNER, ("DecodeCudaGraphRunner.capture_one_shape",), "0.5.16, 0.5.23"),
        Candidate(_LEGACY_RUNNER, ("CudaGraphRunner.capture_one_batch_size",), "before the runner/ split"),
    ), "decode graph capture per batch size: num_tokens, memory (fixes 3, 4)"),
    HookTarget("capture_oom", (
        Candidate("sglang.srt.model_executor.model_runner_components.cuda_graph_setup",
                  ("capture_cuda_graphs",), "0.5.16, 0.5.23"),
        Candidate(_MODEL_RUNNER, ("ModelRunner.init_device_graphs",),
                  "before model_runner_components"),
    ), "an OOM anywhere in graph setup, not only inside one capture (fix 3)"),
    HookTarget("mlp_scatter_mode", (
        Candidate("sglang.srt.layers.communicator", ("LayerScatterModes.init_new",),
                  "0.5.16 to 0.5.20 (0.5.21 replaced it with layers/layer_boundary)"),
        Candidate(_BOUNDARY, ("_resolve_ffn",), "0.5.22, 0.5.23: the FFN row contract per batch variant"),
        Candidate(_BOUNDARY, ("_ffn_decl",), "0.5.21"),
    ), "MLP scatter mode per layer (fix 5); layer_boundary releases: per FFN stage and batch variant"),
    HookTarget("parallel_groups", (
        Candidate("sglang.srt.distributed.parallel_state", ("initialize_model_parallel",), "0.5.16, 0.5.23"),
    ), "group sizes and the MoE-DP / attention-CP alias (fix 5)"),
    HookTarget("decode_step", (
        Candidate(_MODEL_RUNNER, ("ModelRunner._forward_raw",), "0.5.16, 0.5.23"),
        Candidate(_MODEL_RUNNER, ("ModelRunner.forward",), "releases without _forward_raw"),
    ), "device and host time of every decode forward (graph replay or eager), per request (decode_gpu_ms)"),
)


def watched_modules() -> frozenset[str]:
    """Every module any candidate lives in: the probe hooks whichever of them gets imported."""
    return frozenset(c.module for t in TARGETS for c in t.candidates)


def module_file(root: Path, module: str) -> Path | None:
    """The source file of `module` under the directory holding the `sglang` package, if present."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@dataclass(frozen=True)
class Resolution:
    """How a target resolved in one sglang tree: the candidate used, or why none did."""

    target: str
    candidate: Candidate | None
    reason: str


def resolve_static(root: Path) -> tuple[Resolution, ...]:
    """Resolve every target in the sglang tree under `root` (the dir containing `sglang/`) by parsing."""
    return tuple(resolve_target(root, target) for target in TARGETS)


def resolve_target(root: Path, target: HookTarget) -> Resolution:
    """The first candidate whose module exists and defines its attributes (several may share a module)."""
    reasons = []
    for cand in target.candidates:
        path = module_file(root, cand.module)
        if path is None:
            reasons.append(f"{cand.module}: module not found")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        unresolved = [a for a in cand.attrs if not _defines(tree, a)]
        if unresolved:
            reasons.append(f"{cand.module}: no {', '.join(unresolved)}")
            continue
        return Resolution(target.name, cand, "ok")
    return Resolution(target.name, None, "; ".join(reasons))


def _defines(tree: ast.Module, attr_path: str) -> bool:
    """Whether the module defines (or imports) `name` or `Class.method` at top level."""
    head, _, rest = attr_path.partition(".")
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == head and not rest:
            return True
        if isinstance(node, ast.ClassDef) and node.name == head:
            if not rest:
                return True
            return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == rest
                       for n in node.body)
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not rest and any(
                (alias.asname or alias.name.split(".")[0]) == head for alias in node.names):
            return True
    return False


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Top-level statements, looking inside try/if blocks (optional imports live there)."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.Try):
            out += _top_level(node.body) + _top_level(node.orelse)
            for handler in node.handlers:
                out += _top_level(handler.body)
        elif isinstance(node, ast.If):
            out += _top_level(node.body) + _top_level(node.orelse)
    return out
