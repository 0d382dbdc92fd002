"""Differential tests: the oracle's rules against sglang 0.5.16's own function definitions, on the CPU.

sglang's modules cannot be imported on a plain CPU box without ~1.5 GB of their import-time deps
(triton, a torchvision matching the CPU torch, transformers' vision stack). So the fixture installs
the real wheel with `pip install --no-deps` into .cache/ and this file compiles the *source* of the
functions under test straight out of it (by AST), binding their few sglang imports to stand-ins
built from the args under test. The logic executed is sglang's, byte for byte.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import enum
import functools
import itertools
import os
import shutil
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reference_impl.fixes import attn_tp_gather, moe_dp_attn_cp
from reference_impl.fixset import FixSet
from reference_impl.inputs import ServerArgs
from reference_impl.parallel import attn_tp_size

SGLANG_VERSION = "0.5.16"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / f"oracle-sglang-{SGLANG_VERSION}"


@pytest.fixture(scope="session")
def sglang_src() -> Path:
    """sglang 0.5.16 unpacked by `pip install --no-deps --target` (cached in .cache/, atomic rename)."""
    package = CACHE / "sglang" / "srt"
    if not package.is_dir():
        staging = CACHE.with_name(f"{CACHE.name}.{os.getpid()}.tmp")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(staging),
             f"sglang=={SGLANG_VERSION}"], capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            pytest.skip(f"cannot pip install sglang=={SGLANG_VERSION}: {proc.stderr.strip().splitlines()[-1:]}")
        try:
            staging.rename(CACHE)
        except OSError:  # another session installed it first
            shutil.rmtree(staging, ignore_errors=True)
    return package


@functools.cache
def _code(path: Path, names: frozenset[str]) -> types.CodeType:
    """Parse and compile once per session; each server-args case only re-executes the definitions."""
    return compile(_definitions(path, set(names)), str(path), "exec")


def _definitions(path: Path, names: set[str]) -> str:
    """Source of the named top-level functions/classes (or ClassName.method) in one sglang file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    picked: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
            picked.append(node)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and f"{node.name}.{item.name}" in names:
                    item.decorator_list = []
                    picked.append(item)
    found = {getattr(n, "name", "") for n in picked}
    missing = {n.split(".")[-1] for n in names} - found
    if missing:
        pytest.fail(f"{path}: sglang {SGLANG_VERSION} no longer defines {sorted(missing)}")
    return ast.unparse(ast.Module(body=picked, type_ignores=[]))


def _compile(src: Path, relative: str, names: set[str], scope: dict[str, Any]) -> dict[str, Any]:
    """Exec sglang's definitions in `scope`; imports of sglang.* inside them resolve to scope['sglang_modules']."""
    stand_ins: dict[str, Any] = scope.pop("sglang_modules", {})

    def guarded_import(name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if name.startswith("sglang"):
            if name not in stand_ins:
                raise ImportError(f"differential test has no stand-in for {name}")
            return stand_ins[name]
        return builtins.__import__(name, globals_, locals_, fromlist, level)

    # A private module object: dataclasses looks the defining module up in sys.modules.
    module_name = f"_oracle_diff_sglang_{SGLANG_VERSION.replace('.', '_')}_{Path(relative).stem}"
    module = sys.modules.setdefault(module_name, types.ModuleType(module_name))
    namespace: dict[str, Any] = module.__dict__
    namespace.clear()
    namespace.update({"__builtins__": {**vars(builtins), "__import__": guarded_import}, "__name__": module_name,
                      **scope})
    exec(_code(src / relative, frozenset(names)), namespace)  # sglang's own definitions, isolated in this private module
    return dict(namespace)


@dataclasses.dataclass
class SglangArgs:
    """The attributes of sglang's ServerArgs the compiled functions read."""

    tp_size: int
    dp_size: int
    enable_dp_attention: bool
    moe_dense_tp_size: int | None
    enable_dp_lm_head: bool
    disable_attn_tp_gather: bool
    attn_cp_size: int
    moe_dp_size: int
    elastic_ep_backend: None = None
    enable_prefill_context_parallel: bool = False
    enable_two_batch_overlap: bool = False
    disable_cuda_graph_padding: bool = False
    speculative_algorithm: None = None


def _sglang_args(args: ServerArgs) -> SglangArgs:
    return SglangArgs(args.tp_size, args.dp_size, args.enable_dp_attention, args.moe_dense_tp_size,
                      args.enable_dp_lm_head, args.disable_attn_tp_gather, args.attn_cp_size, args.moe_dp_size)


@pytest.fixture(scope="session")
def moe_a2a_backend_enum(sglang_src: Path) -> type:
    """sglang.srt.layers.moe.utils.MoeA2ABackend, compiled from the wheel."""
    names = _compile(sglang_src, "layers/moe/utils.py", {"MoeA2ABackend"}, {"Enum": enum.Enum})
    return names["MoeA2ABackend"]


class Bound:
    """sglang's functions bound to one server-args object (their process-global state)."""

    def __init__(self, src: Path, backend_enum: type, args: ServerArgs) -> None:
        self.args = _sglang_args(args)
        backend = backend_enum(args.moe_a2a_backend)
        moe_utils = types.SimpleNamespace(get_moe_a2a_backend=lambda: backend)
        runtime = types.SimpleNamespace(get_server_args=lambda: self.args)
        common = _compile(src, "utils/common.py", {"require_mlp_tp_gather", "require_attn_tp_gather",
                                                    "require_gathered_buffer", "require_mlp_sync"},
                          {"ServerArgs": SglangArgs, "sglang_modules": {"sglang.srt.layers.moe.utils": moe_utils}})
        self.common = common
        dp_attention = _compile(src, "layers/dp_attention.py",
                                {"compute_dp_attention_world_info", "is_enable_moe_cp_allgather"},
                                {"sglang_modules": {"sglang.srt.runtime_context": runtime}})
        self.dp_attention = dp_attention
        self.communicator = _compile(
            src, "layers/communicator.py",
            {"ScatterMode", "_LayerModeComputationContext", "LayerScatterModes", "enable_moe_dense_fully_dp"},
            {"Enum": enum.Enum, "auto": enum.auto, "dataclass": dataclasses.dataclass, "Optional": typing.Optional,
             "get_moe_a2a_backend": lambda: backend, "get_server_args": lambda: self.args,
             # Not under test: the FP4 allgather path needs modelopt_fp4; DSA/MLA prefill CP are off.
             "should_use_flashinfer_cutlass_moe_fp4_allgather": lambda: False,
             "is_dsa_enable_prefill_cp": lambda: False, "is_mla_prefill_cp_enabled": lambda: False,
             "is_enable_moe_cp_allgather": dp_attention["is_enable_moe_cp_allgather"]})
        self.server_args = _compile(src, "server_args.py", {"ServerArgs._generate_decode_cuda_graph_batch_sizes"}, {})
        _, attn_tp, _, _ = dp_attention["compute_dp_attention_world_info"](
            args.enable_dp_attention, 0, args.tp_size, args.dp_size, args.attn_cp_size)
        parallel = types.SimpleNamespace(attn_tp_size=attn_tp, attn_cp_size=args.attn_cp_size)
        self.runner = _compile(src, "model_executor/runner/base_cuda_graph_runner.py", {"get_batch_sizes_to_capture"},
                               {"get_parallel": lambda: parallel,
                                "get_flags": lambda: types.SimpleNamespace(
                                    capture=types.SimpleNamespace(enable_torch_compile=False)),
                                "require_gathered_buffer": common["require_gathered_buffer"],
                                "ModelRunner": object, "Tuple": tuple, "List": list})

    def captured_batch_sizes(self, max_bs: int, max_running_requests: int) -> list[int]:
        decode_bs = self.server_args["_generate_decode_cuda_graph_batch_sizes"](self.args, max_bs)
        graph = types.SimpleNamespace(decode=types.SimpleNamespace(bs=decode_bs))
        runner_args = types.SimpleNamespace(**dataclasses.asdict(self.args), cuda_graph_config=graph,
                                            torch_compile_max_bs=max_bs)
        model_runner = types.SimpleNamespace(server_args=runner_args,
                                             req_to_token_pool=types.SimpleNamespace(size=max_running_requests))
        capture_bs, _ = self.runner["get_batch_sizes_to_capture"](model_runner)
        return capture_bs


def _server_args_grid() -> Iterator[ServerArgs]:
    """Every layout of up to 8 ranks that sglang's own asserts accept, with and without the flags."""
    for tp, dp, backend, dense, lm_head, flag, cp in itertools.product(
            (1, 2, 4, 8), (1, 2, 4, 8), ("none", "flashinfer", "deepep"), (None, 1, 2), (False, True),
            (False, True), (1, 2, 4)):
        dp_attention = dp > 1
        if tp % dp or tp % (dp * cp) or (lm_head and not dp_attention):
            continue
        ep = tp if backend != "none" else 1
        for moe_dp in {1, cp}:
            yield ServerArgs(tp_size=tp, dp_size=dp, ep_size=ep, enable_dp_attention=dp_attention,
                             attn_cp_size=cp, moe_dp_size=moe_dp, moe_a2a_backend=backend, moe_dense_tp_size=dense,
                             enable_dp_lm_head=lm_head, disable_attn_tp_gather=flag)


GRID = list(_server_args_grid())


def _check_gather(bound: Bound, args: ServerArgs) -> None:
    ours = attn_tp_gather.gather_flags(FixSet(), args)
    real = bound.common
    assert ours.require_attn_tp_gather == real["require_attn_tp_gather"](bound.args), args
    assert ours.require_mlp_tp_gather == real["require_mlp_tp_gather"](bound.args), args
    assert ours.require_gathered_buffer == real["require_gathered_buffer"](bound.args), args
    assert ours.require_mlp_sync == real["require_mlp_sync"](bound.args), args


def test_gather_predicates_match_sglang(sglang_src: Path, moe_a2a_backend_enum: type) -> None:
    assert len(GRID) > 500
    for args in GRID:
        _check_gather(Bound(sglang_src, moe_a2a_backend_enum, args), args)


def test_attn_tp_size_matches_sglang(sglang_src: Path, moe_a2a_backend_enum: type) -> None:
    for args in GRID[::7]:
        bound = Bound(sglang_src, moe_a2a_backend_enum, args)
        _, real, _, _ = bound.dp_attention["compute_dp_attention_world_info"](
            args.enable_dp_attention, 0, args.tp_size, args.dp_size, args.attn_cp_size)
        assert attn_tp_size(args) == real, args


def test_mlp_scatter_modes_match_sglang(sglang_src: Path, moe_a2a_backend_enum: type) -> None:
    for args in GRID[::3]:
        bound = Bound(sglang_src, moe_a2a_backend_enum, args)
        modes_cls = bound.communicator["LayerScatterModes"]
        context = bound.communicator["_LayerModeComputationContext"]

        def mode(sparse: bool, cls: Any = modes_cls, ctx: Callable[..., Any] = context) -> str:
            layer = ctx(num_layers=4, layer_id=1, is_layer_sparse=sparse, is_previous_layer_sparse=sparse,
                        is_next_layer_sparse=sparse)
            return cls._compute_mlp_mode(layer).name

        ours = moe_dp_attn_cp.mlp_modes(FixSet(), args)
        assert (ours.sparse, ours.dense) == (mode(True), mode(False)), args


def test_captured_batch_sizes_match_sglang(sglang_src: Path, moe_a2a_backend_enum: type) -> None:
    for args, max_bs, max_requests in itertools.product(GRID[::11], (4, 48, 512), (3, 64, 1024)):
        bound = Bound(sglang_src, moe_a2a_backend_enum, args)
        gathered = attn_tp_gather.gather_flags(FixSet(), args).require_gathered_buffer
        ours = attn_tp_gather.captured_batch_sizes(args, gathered, max_bs, max_requests)
        try:
            real = bound.captured_batch_sizes(max_bs, max_requests)
        except AssertionError:  # sglang refuses to start: no size is a multiple of the alignment
            real = []
        assert ours == real, (args, max_bs, max_requests)
