"""Scenario catalog: every shipped scenario loads, renders sglang flags, and bad files fail by field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.scenarios.catalog import SCENARIO_DIR, Scenario, ScenarioError, list_scenarios, load_scenario
from harness.scenarios.hardware import Hardware
from reference_impl.fixset import FIX_NAMES

BASELINE = (SCENARIO_DIR / "baseline.toml").read_text()


def test_catalog_holds_baseline_and_one_scenario_per_fix():
    scenarios = {s.name: s for s in list_scenarios()}
    assert set(scenarios) == {"baseline", *FIX_NAMES}
    for name in FIX_NAMES:
        assert scenarios[name].guards == name
        assert scenarios[name].hardware_for("reference") == Hardware(gpus=0)
        assert scenarios[name].hardware_for("sglang").gpus in (2, 4)
    for scenario in scenarios.values():
        assert (scenario.model_dir / "config.json").is_file()
        assert scenario.targets == ("reference", "sglang")


def test_baseline_fields():
    baseline = load_scenario("baseline")
    assert baseline.model_dir.name == "tiny-qwen3-moe"
    assert (baseline.workload.input_len, baseline.workload.output_len) == (128, 64)
    assert (baseline.workload.warmups, baseline.workload.requests) == (3, 10)
    assert baseline.hardware_for("sglang") == Hardware(gpus=1, min_gpu_memory_gib=16, arch=("sm90", "sm100"))
    assert baseline.oracle.local_num_tokens == 1
    assert dict(baseline.oracle.expect)["capture_num_tokens"] == 1
    assert baseline.server_cli_args() == [
        "--tp-size", "1", "--cuda-graph-max-bs", "4", "--chunked-prefill-size", "4096",
        "--max-running-requests", "4", "--disable-radix-cache"]


@pytest.mark.parametrize(
    ("name", "flags", "env"),
    [
        ("dp-workspace-sizing", ["--tp-size", "4", "--dp-size", "4", "--enable-dp-attention",
                                 "--moe-a2a-backend", "flashinfer"], {}),
        ("moe-dp1-attn-cp", ["--tp-size", "4", "--attn-cp-size", "2", "--moe-dp-size", "1"], {}),
        ("sp-runtime-max-tokens", ["--ep-size", "4", "--moe-a2a-backend", "flashinfer"], {}),
        ("a2a-token-cap", ["--moe-a2a-backend", "flashinfer"],
         {"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "4096"}),
        ("disable-attn-tp-gather", ["--tp-size", "2", "--enable-dp-attention", "--disable-attn-tp-gather"], {}),
    ],
)
def test_fix_scenarios_use_the_reported_parallel_shapes(name, flags, env):
    scenario = load_scenario(name)
    argv = " ".join(scenario.server_cli_args())
    assert " ".join(flags[:2]) in argv
    for flag in flags:
        assert flag in scenario.server_cli_args()
    assert dict(scenario.env) == env


def _scenario(server_args: tuple) -> Scenario:
    base = load_scenario("baseline")
    return Scenario(**{**base.__dict__, "server_args": server_args})


def test_flag_rendering():
    scenario = _scenario((("tp_size", 2), ("enable_dp_attention", True), ("disable_radix_cache", False),
                          ("cuda_graph_bs", [1, 2, 4]), ("mem_fraction_static", 0.5), ("attention_backend", "triton")))
    assert scenario.server_cli_args() == ["--tp-size", "2", "--enable-dp-attention", "--cuda-graph-bs", "1", "2",
                                          "4", "--mem-fraction-static", "0.5", "--attention-backend", "triton"]


@given(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True), st.integers(min_value=0, max_value=10**6))
def test_every_field_name_renders_as_its_dashed_flag(name, value):
    assert _scenario(((name, value),)).server_cli_args() == ["--" + name.replace("_", "-"), str(value)]


def _write(tmp_path: Path, text: str, name: str = "baseline") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("[workload]", "[workload\n"), "malformed TOML"),
        (lambda t: t.replace('model = "tiny-qwen3-moe"', 'model = "no-such-model"'), "model: no config.json"),
        (lambda t: t.replace("requests = 10", "requests = -1"), "workload.requests: expected an integer >= 1"),
        (lambda t: t.replace("requests = 10", 'requests = "ten"'), "workload.requests"),
        (lambda t: t.replace('targets = ["reference", "sglang"]', 'targets = ["tpu"]'), "targets: unknown target"),
        (lambda t: t.replace("targets = [", 'guards = "no-such-fix"\ntargets = ['), "guards: unknown fix"),
        (lambda t: "colour = 1\n" + t, "colour: unknown key"),
        (lambda t: t.replace("tp_size = 1", "tp_size = {a = 1}"), "server_args.tp_size"),
        (lambda t: t.replace("[env]", "[env]\nBAD-NAME = 1"), "env.BAD-NAME"),
        (lambda t: t.replace('arch = ["sm90", "sm100"]', 'arch = ["hopper"]'), "hardware.sglang.arch"),
        (lambda t: t.replace("[hardware.sglang]", "[hardware.tpu]"), "hardware.tpu: target 'tpu' is not in targets"),
        (lambda t: t.replace('dispatch_dtype = "bf16"', 'dispatch_dtype = "fp64"'), "oracle.dispatch_dtype"),
        (lambda t: t.replace("[workload]", "[workload]\nbatch_size = 2"), "workload.batch_size: unknown key"),
    ],
)
def test_bad_scenario_files_fail_with_one_line_naming_file_and_field(tmp_path, edit, message):
    path = _write(tmp_path, edit(BASELINE))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    text = str(info.value)
    assert text.startswith(str(path)) and message in text
    assert "\n" not in text


def test_name_must_match_file(tmp_path):
    with pytest.raises(ScenarioError, match="name: must match the file name 'other'"):
        load_scenario(_write(tmp_path, BASELINE, name="other"))


def test_unknown_scenario_lists_the_catalog():
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope'; known: a2a-token-cap, baseline"):
        load_scenario("nope")
