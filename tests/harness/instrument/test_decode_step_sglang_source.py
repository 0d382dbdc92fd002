"""The decode_step hook around sglang's own released ModelRunner._forward_raw, run on the CPU through the linker.

The method body is sglang's, compiled from the release's file; only what it calls on `self` (the graph
runner, the eager runner) and 0.5.23's process-wide model config are stand-ins.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from harness.instrument.reader import load_records
from harness.instrument.sglang_hooks import Probe
from harness.instrument.targets import TARGETS, resolve_target
from harness.upstream.linker import LazyModule, Linker, SourceTree
from harness.upstream.sources import DEFAULT_CACHE, SourceError, Sources
from reference_impl.contract.delay_switch import DelaySwitch

MODULE = "sglang.srt.model_executor.model_runner"
TARGET = next(t for t in TARGETS if t.name == "decode_step")
STAND_INS = {"sglang.srt.runtime_context.get_model":  # 0.5.23 enters the model config's override
             lambda: SimpleNamespace(override=lambda **kw: contextlib.nullcontext())}


def _tree(version: str) -> Path:
    try:
        return Sources(DEFAULT_CACHE).tree(version)
    except SourceError as exc:
        pytest.skip(str(exc))


class _Forwards:
    """What _forward_raw calls on `self`: which path ran, and a graph replay that takes a moment."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def replay(self, forward_batch: Any, pp_proxy_tensors: Any = None) -> str:
        self.paths.append("graph")
        return "logits"

    def eager(self, forward_batch: Any, pp_proxy_tensors: Any = None) -> str:
        self.paths.append("eager")
        return "logits"


@pytest.mark.parametrize("version", ["0.5.16", "0.5.23"])
def test_hook_times_decode_steps_of_the_real_forward(tmp_path: Path, version: str) -> None:
    root = _tree(version)
    candidate = resolve_target(root, TARGET).candidate
    assert candidate is not None and (candidate.module, candidate.attrs) == (MODULE, ("ModelRunner._forward_raw",))
    delay = tmp_path / "delay"
    delay.write_text("gpu 1500")
    probe = Probe(str(tmp_path / "records"), "sglang", 16, target_version=version,
                  delay_switch=DelaySwitch(str(delay), poll_s=0.0))
    with Linker(SourceTree(root), STAND_INS) as linker:
        mode = LazyModule(linker, "sglang.srt.model_executor.forward_batch_info").ForwardMode
        runner_class = type("ModelRunner", (), {"_forward_raw": linker.method(MODULE, "ModelRunner._forward_raw")})
        probe.hook(TARGET, candidate, SimpleNamespace(ModelRunner=runner_class))
        forwards = _Forwards()
        runner = runner_class()
        vars(runner).update(
            device="cpu", is_draft_worker=False, hisparse_coordinator=None, attn_backend=None,
            model=SimpleNamespace(shared_experts_config=None), prefill_cuda_graph_runner=None,
            decode_cuda_graph_runner=SimpleNamespace(can_run_graph=lambda fb: True, execute=forwards.replay),
            eager_runner=SimpleNamespace(execute=forwards.eager), pp_group=SimpleNamespace(is_last_rank=True),
            _prepare_eager_forward_batch=lambda fb: None,
            _maybe_execute_deferred_mamba_cow_and_clear=lambda fb: None)

        def batch(kind: str, rid: str) -> SimpleNamespace:
            return SimpleNamespace(forward_mode=getattr(mode, kind), rids=[rid], batch_size=1,
                                   moe_num_token_non_padded=None, global_num_tokens_cpu=None)

        for kind, rid in [("EXTEND", "r1"), ("DECODE", "r1"), ("DECODE", "r1"), ("DECODE", "r1"),
                          ("EXTEND", "r2"), ("DECODE", "r2")]:
            out = runner._forward_raw(batch(kind, rid), None)
            assert out.logits_output == "logits"
    probe.close()
    # sglang replays the decode graph on the CPU too (DECODE is its cpu-graph mode) and runs a prefill eagerly.
    assert forwards.paths == ["eager", "graph", "graph", "graph", "eager", "graph"]
    loaded = load_records(tmp_path / "records")
    assert loaded.errors == ()
    assert [r["target"] for r in loaded.of_kind("hook_installed")] == ["decode_step"]
    steps = loaded.of_kind("decode_step")
    assert [r["rids"] for r in steps] == [["r1"], ["r1"], ["r1"], ["r2"]]
    assert {(r["clock"], r["batch_size"], r["inject_kind"], r["inject_us"]) for r in steps} == {("host", 1, "gpu", 1500)}
    assert all(r["device_ms"] >= 1.5 for r in steps)  # the delay runs inside the timed region
    # r1's third step is followed by a prefill and r2's step by nothing: no wall time for either.
    assert [r["wall_ms"] is None for r in steps] == [False, False, True, True]
