"""Differential tests: the oracle's rules against sglang 0.5.16's own functions, on the CPU.

sglang's code runs through harness/upstream's linker (statement by statement from the wheel, stand-ins
only outside sglang). The grid here is wider than harness/upstream's on the axes these rules read:
DeepEP as well as FlashInfer, dense TP 2, and a matrix of --cuda-graph-max-bs x max running requests.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.instrument.sglang_hooks import Probe
from harness.upstream import drivers
from harness.upstream.case import Case
from harness.upstream.linker import SourceTree
from harness.upstream.sources import DEFAULT_CACHE, SourceError, Sources
from reference_impl.fixes import attn_tp_gather, moe_dp_attn_cp
from reference_impl.fixset import FixSet
from reference_impl.inputs import ServerArgs
from reference_impl.parallel import attn_tp_size

SGLANG_VERSION = "0.5.16"


@pytest.fixture(scope="session")
def tree() -> SourceTree:
    """sglang 0.5.16 from the registry's wheel (cached in .cache/sglang-wheels, shared with harness/upstream)."""
    try:
        return SourceTree(Sources(DEFAULT_CACHE).tree(SGLANG_VERSION))
    except SourceError as exc:
        pytest.skip(str(exc))


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


def _session(tree: SourceTree, args: ServerArgs, tmp: Path) -> Any:
    return drivers.session(tree, Case("differential", args), SGLANG_VERSION, Probe(str(tmp), "sglang", 0))


def test_gather_predicates_match_sglang(tree: SourceTree, tmp_path: Path) -> None:
    assert len(GRID) > 500
    for args in GRID:
        ours = attn_tp_gather.gather_flags(FixSet(), args)
        with _session(tree, args, tmp_path) as s:
            common = s.module("sglang.srt.utils.common")
            real = {name: bool(drivers.call_predicate(getattr(common, name), s.state))
                    for name in ("require_attn_tp_gather", "require_mlp_tp_gather", "require_gathered_buffer",
                                 "require_mlp_sync")}
        assert real == {"require_attn_tp_gather": ours.require_attn_tp_gather,
                        "require_mlp_tp_gather": ours.require_mlp_tp_gather,
                        "require_gathered_buffer": ours.require_gathered_buffer,
                        "require_mlp_sync": ours.require_mlp_sync}, args


def test_attn_tp_size_matches_sglang(tree: SourceTree, tmp_path: Path) -> None:
    for args in GRID[::7]:
        with _session(tree, args, tmp_path) as s:
            world_info = s.module("sglang.srt.layers.dp_attention").compute_dp_attention_world_info
            _, real, _, _ = world_info(args.enable_dp_attention, 0, args.tp_size, args.dp_size, args.attn_cp_size)
        assert attn_tp_size(args) == real, args


def test_mlp_scatter_modes_match_sglang(tree: SourceTree, tmp_path: Path) -> None:
    for args in GRID[::3]:
        with _session(tree, args, tmp_path) as s:
            real = (_mlp_mode(s, sparse=True), _mlp_mode(s, sparse=False))
        ours = moe_dp_attn_cp.mlp_modes(FixSet(), args)
        assert (ours.sparse, ours.dense) == real, args


def _mlp_mode(s: Any, sparse: bool) -> str:
    """LayerScatterModes._compute_mlp_mode of a middle layer, sparse or dense."""
    communicator = s.module("sglang.srt.layers.communicator")
    layer = communicator._LayerModeComputationContext(num_layers=4, layer_id=1, is_layer_sparse=sparse,
                                                      is_previous_layer_sparse=sparse, is_next_layer_sparse=sparse)
    return communicator.LayerScatterModes._compute_mlp_mode(layer).name


def test_captured_batch_sizes_match_sglang(tree: SourceTree, tmp_path: Path) -> None:
    for base, max_bs, max_requests in itertools.product(GRID[::11], (4, 48, 512), (3, 64, 1024)):
        args = ServerArgs(**{**vars(base), "cuda_graph_max_bs": max_bs, "max_running_requests": max_requests})
        gathered = attn_tp_gather.gather_flags(FixSet(), args).require_gathered_buffer
        ours = attn_tp_gather.captured_batch_sizes(args, gathered, max_bs, max_requests)
        with _session(tree, args, tmp_path) as s:
            sizes_of = s.module("sglang.srt.model_executor.runner.base_cuda_graph_runner").get_batch_sizes_to_capture
            try:
                real, _ = sizes_of(drivers.model_runner(s))
            except AssertionError:  # sglang refuses to start: no size is a multiple of the alignment
                real = []
        assert ours == real, (args, max_bs, max_requests)
