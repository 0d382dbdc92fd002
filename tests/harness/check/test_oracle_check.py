"""oracle_check: records that match the fixed oracle pass; records of a reverted fix fail on its value.

Records are written with RecordWriter the way the reference engine writes them natively, from the
oracle's own prediction with or without a fix; the checker must tell the two apart.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.check.oracle_check import OracleCheckError, check, oracle_input, refusal
from harness.instrument.reader import load_records
from harness.scenarios.catalog import Scenario, load_scenario
from reference_impl.contract.records import RecordWriter
from reference_impl.fixset import FIX_NAMES, FixSet
from reference_impl.predict import predict

# The verdict that must fail when a fix is reverted: the value the fix governs.
GOVERNED = {
    "sp-runtime-max-tokens": "runtime_max_tokens_per_rank",
    "dp-workspace-sizing": "capture_global_num_tokens",
    "a2a-token-cap": "a2a_max_num_tokens",
    "disable-attn-tp-gather": "require_attn_tp_gather",
    "moe-dp1-attn-cp": "moe_dp_group_is_attn_cp_group",
}

# Reverted, these fixes make the configuration invalid: the reverted engine refuses to start it.
REFUSED_WHEN_REVERTED = ("moe-dp1-attn-cp",)


def _scenario(name: str) -> Scenario:
    scenario = load_scenario(name)
    if name == "sp-runtime-max-tokens" and scenario.oracle.dp_global_num_tokens is None:
        # With SP the scheduler's list holds the pre-scatter count (one entry, 4 tokens) while each
        # rank sends 1: the geometry that tells the fixed rule from the original one.
        oracle = dataclasses.replace(scenario.oracle, dp_global_num_tokens=(4,))
        scenario = dataclasses.replace(scenario, oracle=oracle)
    return scenario


def _write_records(scenario: Scenario, reverted: tuple[str, ...], directory: Path) -> dict[str, Any]:
    """Records a server would write for `scenario` with `reverted` fixes; returns that prediction."""
    inp = dataclasses.replace(oracle_input(scenario), fixes=FixSet.reverting(reverted))
    pred = predict(inp).to_json()
    args = inp.server_args
    attn_dp = args.dp_size if args.enable_dp_attention else 1
    writer = RecordWriter(directory)
    writer.write("process_start", target="reference", target_version="test")
    writer.write("parallel_groups", tp_size=args.tp_size, dp_size=args.dp_size, ep_size=args.ep_size,
                 attn_tp_size=args.tp_size // (attn_dp * args.attn_cp_size), attn_cp_size=args.attn_cp_size,
                 moe_dp_size=args.moe_dp_size,
                 moe_dp_group_is_attn_cp_group=pred["moe_dp_group_is_attn_cp_group"])
    writer.write("attn_tp_gather", require_attn_tp_gather=pred["require_attn_tp_gather"],
                 require_mlp_tp_gather=pred["require_mlp_tp_gather"],
                 require_gathered_buffer=pred["require_gathered_buffer"], require_mlp_sync=None)
    if pred["a2a_max_num_tokens"] is not None:
        writer.write("dispatcher_init", ep_size=args.ep_size, ep_rank=0, max_num_tokens=pred["a2a_max_num_tokens"],
                     dispatch_payload_bytes_per_token=pred["a2a_dispatch_payload_bytes_per_token"],
                     combine_payload_bytes_per_token=pred["a2a_combine_payload_bytes_per_token"],
                     workspace_size_per_rank=pred["a2a_workspace_bytes_per_rank"],
                     payload_workspace_tokens=pred["payload_workspace_tokens"])
        dp_global = inp.runtime.dp_global_num_tokens
        writer.write("dispatch", phase="eager", runtime_max_tokens_per_rank=pred["runtime_max_tokens_per_rank"],
                     local_num_tokens=inp.runtime.local_num_tokens,
                     dp_global_num_tokens=None if dp_global is None else list(dp_global))
    n = pred["capture_num_tokens"]
    if n is not None:
        writer.write("cuda_graph_capture", batch_size=n, num_tokens=n, mem_free_before=None, mem_free_after=None,
                     allocated_before=None, allocated_after=None, elapsed_s=0.01)
        tokens = pred["capture_global_num_tokens"]
        writer.write("set_dp_buffer_len", phase="capture", global_dp_buffer_len=None if tokens is None else sum(tokens),
                     local_dp_buffer_len=n, global_num_tokens=tokens)
    writer.write("mlp_scatter_mode", layer_id=0, is_sparse=False, mode=pred["mlp_scatter_mode"]["dense"])
    writer.write("mlp_scatter_mode", layer_id=1, is_sparse=True, mode=pred["mlp_scatter_mode"]["sparse"])
    writer.close()
    return pred


@pytest.mark.parametrize("name", ["baseline", *FIX_NAMES])
def test_fixed_server_passes(tmp_path: Path, name: str) -> None:
    scenario = _scenario(name)
    _write_records(scenario, (), tmp_path)
    report = check(scenario, load_records(tmp_path))
    assert report.ok, [v for v in report.verdicts if not v.passed]
    names = {v.name for v in report.verdicts}
    assert {"require_attn_tp_gather", "capture_num_tokens", "group.tp_size"} <= names
    assert json.loads(json.dumps(report.to_json()))["ok"] is True


@pytest.mark.parametrize("fix", FIX_NAMES)
def test_reverted_fix_fails_on_the_value_it_governs(tmp_path: Path, fix: str) -> None:
    scenario = _scenario(fix)
    _write_records(scenario, (fix,), tmp_path)
    report = check(scenario, load_records(tmp_path))
    assert not report.ok
    failed = {v.name: v for v in report.failures}
    assert GOVERNED[fix] in failed, sorted(failed)
    verdict = failed[GOVERNED[fix]]
    assert verdict.expected != verdict.observed
    out = report.to_json()
    assert out["ok"] is False
    assert {"name", "expected", "observed", "passed"} <= set(out["verdicts"][0])


def test_token_cap_revert_shows_the_double_count(tmp_path: Path) -> None:
    scenario = _scenario("a2a-token-cap")
    _write_records(scenario, ("a2a-token-cap",), tmp_path)
    failed = {v.name: v for v in check(scenario, load_records(tmp_path)).failures}
    assert failed["a2a_max_num_tokens"].expected == 4096
    assert failed["a2a_max_num_tokens"].observed == 4096 * 4
    assert failed["a2a_workspace_bytes_per_rank"].observed > failed["a2a_workspace_bytes_per_rank"].expected


def test_no_records_fails_every_observable(tmp_path: Path) -> None:
    report = check(_scenario("baseline"), load_records(tmp_path))
    assert not report.ok
    capture = next(v for v in report.verdicts if v.name == "capture_num_tokens")
    assert (capture.passed, capture.observed) == (False, None)
    assert "no cuda_graph_capture" in capture.detail


def test_hook_missing_makes_a_verdict_skipped_not_passed(tmp_path: Path) -> None:
    scenario = _scenario("moe-dp1-attn-cp")
    _write_records(scenario, (), tmp_path / "all")
    (path,) = (tmp_path / "all").glob("*.jsonl")
    kept = [line for line in path.read_text().splitlines() if '"kind":"mlp_scatter_mode"' not in line]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / path.name).write_text("\n".join(kept) + "\n")
    writer = RecordWriter(tmp_path / "run")
    writer.write("hook_missing", target="mlp_scatter_mode", reason="no module sglang.srt.layers.communicator")
    writer.close()
    report = check(scenario, load_records(tmp_path / "run"))
    scatter = [v for v in report.verdicts if v.name.startswith("mlp_scatter_mode")]
    assert scatter and all(v.skipped and v.passed is None for v in scatter)
    assert "hook mlp_scatter_mode missing" in scatter[0].detail
    assert report.ok


def test_layer_boundary_records_are_judged_by_their_batch_variant(tmp_path: Path) -> None:
    """0.5.21+: the sparse FFN's CP-extend record is its scatter mode; the dense FFN's ordinary one."""
    scenario = _scenario("moe-dp1-attn-cp")
    pred = _write_records(scenario, (), tmp_path / "all")
    (path,) = (tmp_path / "all").glob("*.jsonl")
    kept = [line for line in path.read_text().splitlines() if '"kind":"mlp_scatter_mode"' not in line]

    def judged(sparse_cp_mode: str) -> dict[str, Any]:
        run = tmp_path / sparse_cp_mode
        run.mkdir()
        (run / path.name).write_text("\n".join(kept) + "\n")
        writer = RecordWriter(run)
        for variant, sparse, mode in (("ORDINARY", False, "FULL"), ("ORDINARY", True, "FULL"),
                                      ("CONTEXT_PARALLEL", False, "MOE_FULL"),
                                      ("CONTEXT_PARALLEL", True, sparse_cp_mode)):
            writer.write("mlp_scatter_mode", layer_id=None, is_sparse=sparse, mode=mode, variant=variant)
        writer.close()
        return {v.name: v for v in check(scenario, load_records(run)).verdicts}

    assert pred["mlp_scatter_mode"] == {"sparse": "MOE_FULL", "dense": "FULL"}
    fixed = judged("MOE_FULL")
    assert fixed["mlp_scatter_mode.sparse"].passed and fixed["mlp_scatter_mode.dense"].passed
    reverted = judged("FULL")
    assert reverted["mlp_scatter_mode.sparse"].passed is False
    assert reverted["mlp_scatter_mode.sparse"].observed == ["FULL"]


def test_scenario_expectations_are_checked_against_the_oracle(tmp_path: Path) -> None:
    scenario = _scenario("a2a-token-cap")
    wrong = dataclasses.replace(scenario.oracle, expect=(("a2a_max_num_tokens", 16384), ("nonsense_key", 1)))
    scenario = dataclasses.replace(scenario, oracle=wrong)
    _write_records(scenario, (), tmp_path)
    failed = {v.name: v for v in check(scenario, load_records(tmp_path)).failures}
    assert set(failed) == {"expect.a2a_max_num_tokens", "expect.nonsense_key"}
    assert (failed["expect.a2a_max_num_tokens"].expected, failed["expect.a2a_max_num_tokens"].observed) == (
        16384, 4096)


def test_disagreeing_ranks_fail(tmp_path: Path) -> None:
    scenario = _scenario("a2a-token-cap")
    _write_records(scenario, (), tmp_path)
    writer = RecordWriter(tmp_path, rank=1)
    writer.write("dispatcher_init", ep_size=4, ep_rank=1, max_num_tokens=1024, dispatch_payload_bytes_per_token=1,
                 combine_payload_bytes_per_token=1, workspace_size_per_rank=1)
    writer.close()
    failed = {v.name: v for v in check(scenario, load_records(tmp_path)).failures}
    assert failed["a2a_max_num_tokens"].observed == [4096, 1024]
    assert "disagree" in failed["a2a_max_num_tokens"].detail


def test_bad_model_config_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{broken")
    scenario = dataclasses.replace(_scenario("baseline"), model_dir=tmp_path)
    with pytest.raises(OracleCheckError, match=r"config.json: cannot read model config"):
        check(scenario, load_records(tmp_path))


def _harness_run(out: Path, scenarios: list[str], reverted: str | None) -> dict[str, dict[str, Any]]:
    """`harness run` on the reference engine (one request per scenario); result.json per scenario."""
    argv = [sys.executable, "-m", "harness", "run", *scenarios, "--target", "reference", "--requests", "1",
            "--warmups", "0", "--out", str(out), "--lock-dir", str(out.parent / "locks")]
    if reverted:
        argv += ["--revert-fix", reverted]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False,
                          cwd=Path(__file__).resolve().parents[3])
    results = {}
    for name in scenarios:
        path = out / name / "result.json"
        assert path.is_file(), f"no result for {name}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        results[name] = json.loads(path.read_text())
    return results


@pytest.mark.slow
def test_harness_run_on_the_reference_engine_passes_and_each_revert_fails(tmp_path: Path) -> None:
    """Acceptance: fixed -> oracle.ok true; --revert-fix FIX -> false, failing on the value FIX governs."""
    fixed = _harness_run(tmp_path / "fixed", list(FIX_NAMES), None)
    for name, result in fixed.items():
        assert result["startup"]["outcome"] == "ok", (name, result["startup"])
        assert result["instrumentation"]["errors"] == [], name
        failing = [v for v in result["oracle"]["verdicts"] if v["passed"] is False]
        assert result["oracle"]["ok"] is True, (name, failing)
    for fix in FIX_NAMES:
        result = _harness_run(tmp_path / f"revert-{fix}", [fix], fix)[fix]
        verdicts = {v["name"]: v for v in result["oracle"]["verdicts"]}
        if fix in REFUSED_WHEN_REVERTED:
            # The symptom is the refusal itself: the server never started, so its values are not checked.
            assert (result["failure"]["stage"], result["failure"]["kind"]) == ("startup", "crash"), fix
            assert "config rejected" in result["failure"]["message"], fix
            assert verdicts[GOVERNED[fix]]["passed"] is None, fix
            continue
        failing = {name for name, v in verdicts.items() if v["passed"] is False}
        assert result["oracle"]["ok"] is False, fix
        assert GOVERNED[fix] in failing, (fix, sorted(failing))


def test_a_server_that_did_not_start_is_not_checked_not_failed(tmp_path: Path) -> None:
    report = check(_scenario("baseline"), load_records(tmp_path), started=False)
    assert report.failures == ()
    observed = [v for v in report.verdicts if not v.name.startswith("expect.")]
    assert observed and all(v.passed is None and v.detail.startswith("not checked") for v in observed)


def test_records_written_before_a_failed_startup_still_count(tmp_path: Path) -> None:
    scenario = _scenario("a2a-token-cap")
    _write_records(scenario, ("a2a-token-cap",), tmp_path)
    failed = {v.name for v in check(scenario, load_records(tmp_path), started=False).failures}
    assert "a2a_max_num_tokens" in failed


def test_refusal_names_the_rule_unless_the_scenario_expects_it() -> None:
    scenario = _scenario("baseline")
    args = {**dict(scenario.server_args), "tp_size": 4, "dp_size": 8, "enable_dp_attention": True}
    invalid = dataclasses.replace(scenario, server_args=tuple(args.items()))
    assert refusal(scenario) is None
    assert "tp_size (4) must be divisible by dp_size (8)" in (refusal(invalid) or "")
    expecting = dataclasses.replace(invalid, oracle=dataclasses.replace(
        invalid.oracle, expect=(*invalid.oracle.expect, ("config_valid", False))))
    assert refusal(expecting) is None
