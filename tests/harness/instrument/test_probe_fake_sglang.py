"""The probe for real: a subprocess imports a fake sglang tree (real module paths) with instrument_env."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_sglang_tree import write_tree

from harness.instrument.launch import instrument_env
from harness.instrument.reader import LoadedRecords, load_records
from harness.instrument.sglang_hooks import parse_oom_message
from reference_impl.contract.records import ENV_DIR

BASE_ARGS: dict[str, Any] = {
    "tp_size": 4, "ep_size": 4, "dp_size": 4, "attn_cp_size": 1, "moe_dp_size": 1,
    "enable_dp_attention": True, "disable_attn_tp_gather": False, "moe_a2a_backend": "flashinfer",
    "capture_bs": [1, 2, 4], "oom_at_bs": [], "eager_steps": 20, "eager_dp_global": [1, 1, 1, 1],
}


def _serve(tmp_path: Path, args: dict[str, Any], *, version: str = "0.5.16", omit: tuple[str, ...] = (),
           extra_env: dict[str, str] | None = None, mutate: Callable[[Path], None] | None = None
           ) -> tuple[subprocess.CompletedProcess[str], LoadedRecords]:
    site = write_tree(tmp_path / "site", version=version, omit=omit)
    if mutate is not None:
        mutate(site)
    records = tmp_path / "records"
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_DIR, "PYTHONPATH")}
    env = {**clean, **instrument_env(records, "sglang", base_env={"PYTHONPATH": str(site)}), **(extra_env or {})}
    proc = subprocess.run([sys.executable, str(site / "drive_fake_server.py"), json.dumps(args)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return proc, load_records(records)


def test_records_of_a_dp_attention_a2a_start(tmp_path: Path) -> None:
    proc, loaded = _serve(tmp_path, BASE_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "DONE"
    assert loaded.errors == ()
    start = loaded.of_kind("process_start")
    assert [(r["target"], r["target_version"]) for r in start] == [("sglang", "0.5.16")]
    assert {r["target"] for r in loaded.of_kind("hook_installed")} == {
        "parallel_groups", "mlp_scatter_mode", "dispatcher_init", "dispatcher_payload", "dispatch",
        "capture_oom", "set_dp_buffer_len", "attn_tp_gather", "gathered_buffer", "cuda_graph_capture",
        "decode_step"}
    assert loaded.of_kind("hook_missing") == ()

    (groups,) = loaded.of_kind("parallel_groups")
    assert (groups["tp_size"], groups["dp_size"], groups["ep_size"], groups["attn_tp_size"],
            groups["attn_cp_size"], groups["moe_dp_size"]) == (4, 4, 4, 1, 1, 1)
    assert groups["moe_dp_group_is_attn_cp_group"] is False

    (init,) = loaded.of_kind("dispatcher_init")
    assert (init["ep_size"], init["max_num_tokens"]) == (4, 4096)
    assert init["dispatch_payload_bytes_per_token"] == 1024 * 2 + 4 * 8
    assert init["combine_payload_bytes_per_token"] == 2048
    assert init["workspace_size_per_rank"] == 4 * 4096 * (2080 + 2048)

    (gather,) = loaded.of_kind("attn_tp_gather")
    assert gather.fields == {"require_attn_tp_gather": True, "require_mlp_tp_gather": True,
                             "require_gathered_buffer": True, "require_mlp_sync": True}
    (buffer,) = loaded.of_kind("gathered_buffer")
    assert (buffer["allocated"], buffer["num_tokens"]) == (True, 4)

    captures = loaded.of_kind("cuda_graph_capture")
    assert [(r["batch_size"], r["num_tokens"]) for r in captures] == [(4, 4), (2, 2), (1, 1)]
    assert all(r["elapsed_s"] >= 0 for r in captures)
    capture_buffers = [r for r in loaded.of_kind("set_dp_buffer_len") if r["phase"] == "capture"]
    assert [(r["global_dp_buffer_len"], r["global_num_tokens"]) for r in capture_buffers] == [
        (16, [4, 4, 4, 4]), (8, [2, 2, 2, 2]), (4, [1, 1, 1, 1])]

    dispatches = loaded.of_kind("dispatch")
    capture = [r for r in dispatches if r["phase"] == "capture"]
    eager = [r for r in dispatches if r["phase"] == "eager"]
    assert [(r["runtime_max_tokens_per_rank"], r["local_num_tokens"]) for r in capture] == [(4, 4), (2, 2), (1, 1)]
    assert len(eager) == 16  # only the first N eager calls (default 16) of 20
    assert {(r["runtime_max_tokens_per_rank"], tuple(r["dp_global_num_tokens"])) for r in eager} == {
        (1, (1, 1, 1, 1))}

    modes = loaded.of_kind("mlp_scatter_mode")
    assert [(r["layer_id"], r["is_sparse"], r["mode"]) for r in modes] == [
        (0, False, "FULL"), (1, True, "SCATTERED"), (2, True, "SCATTERED")]


def test_eager_budget_follows_the_environment(tmp_path: Path) -> None:
    proc, loaded = _serve(tmp_path, BASE_ARGS, extra_env={"HARNESS_INSTRUMENT_EAGER_CALLS": "3"})
    assert proc.returncode == 0, proc.stderr
    assert len([r for r in loaded.of_kind("dispatch") if r["phase"] == "eager"]) == 3


def test_attn_cp_alias_and_no_gather(tmp_path: Path) -> None:
    args = {**BASE_ARGS, "dp_size": 1, "ep_size": 1, "enable_dp_attention": False, "attn_cp_size": 2,
            "moe_a2a_backend": "none", "eager_dp_global": None}
    proc, loaded = _serve(tmp_path, args)
    assert proc.returncode == 0, proc.stderr
    (groups,) = loaded.of_kind("parallel_groups")
    assert (groups["attn_cp_size"], groups["moe_dp_size"], groups["moe_dp_group_size"]) == (2, 1, 2)
    assert groups["moe_dp_group_is_attn_cp_group"] is True
    (gather,) = loaded.of_kind("attn_tp_gather")
    assert gather["require_attn_tp_gather"] is False
    assert {tuple(r["global_num_tokens"] or ()) for r in loaded.of_kind("set_dp_buffer_len")
            if r["phase"] == "capture"} == {()}


def test_oom_during_capture_is_recorded_and_still_raised(tmp_path: Path) -> None:
    proc, loaded = _serve(tmp_path, {**BASE_ARGS, "oom_at_bs": [2]})
    assert proc.returncode == 3, proc.stderr
    assert "CUDA out of memory" in proc.stdout
    (oom,) = loaded.of_kind("capture_oom")
    assert (oom["batch_size"], oom["num_tokens"]) == (2, 2)
    assert oom["requested_bytes"] == 234 * 1024**2
    assert oom["free_bytes"] == round(5.38 * 1024**2)
    assert [r["batch_size"] for r in loaded.of_kind("cuda_graph_capture")] == [4]


def test_missing_targets_are_recorded_and_the_server_runs(tmp_path: Path) -> None:
    """Like 0.5.23: no communicator module; plus a target attribute renamed in its module."""
    def rename_mlp_sync(site: Path) -> None:
        common = site / "sglang/srt/utils/common.py"
        common.write_text(common.read_text().replace("def require_mlp_sync", "def renamed_mlp_sync"))

    proc, loaded = _serve(tmp_path, BASE_ARGS, version="0.5.23", omit=("sglang/srt/layers/communicator.py",),
                          mutate=rename_mlp_sync)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "DONE"
    missing = {r["target"]: r["reason"] for r in loaded.of_kind("hook_missing")}
    assert set(missing) == {"mlp_scatter_mode", "attn_tp_gather"}
    assert "sglang.srt.layers.communicator" in missing["mlp_scatter_mode"]
    assert "0.5.23" in missing["mlp_scatter_mode"]
    assert missing["attn_tp_gather"] == "sglang.srt.utils.common has no require_mlp_sync"
    assert loaded.of_kind("attn_tp_gather") == ()
    assert len(loaded.of_kind("cuda_graph_capture")) == 3


def test_only_the_candidate_present_in_this_version_is_hooked(tmp_path: Path) -> None:
    """An older layout's module that still exists (without the old attribute) yields no hook_missing."""
    def add_legacy_model_runner(site: Path) -> None:
        # model_runner.py is in the tree already (decode_step lives there), without init_device_graphs.
        setup = site / "sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py"
        setup.write_text("import sglang.srt.model_executor.model_runner\n" + setup.read_text())

    proc, loaded = _serve(tmp_path, BASE_ARGS, mutate=add_legacy_model_runner)
    assert proc.returncode == 0, proc.stderr
    assert loaded.of_kind("hook_missing") == ()
    installed = [r for r in loaded.of_kind("hook_installed") if r["target"] == "capture_oom"]
    assert [r["module"] for r in installed] == [
        "sglang.srt.model_executor.model_runner_components.cuda_graph_setup"]


def test_unwritable_records_dir_never_breaks_the_server(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the records dir should be")
    site = write_tree(tmp_path / "site")
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_DIR, "PYTHONPATH")}
    env = {**clean, **instrument_env(blocker / "records", "sglang", base_env={"PYTHONPATH": str(site)})}
    proc = subprocess.run([sys.executable, str(site / "drive_fake_server.py"), json.dumps(BASE_ARGS)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "DONE"
    assert "harness probe: cannot write" in proc.stderr


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("CUDA out of memory. Tried to allocate 234.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which "
         "5.38 MiB is free.", (234 * 1024**2, round(5.38 * 1024**2))),
        ("CUDA out of memory. Tried to allocate 9.77 GiB. GPU 0 has a total capacity of 79.19 GiB of which "
         "1.50 GiB is free.", (round(9.77 * 1024**3), round(1.5 * 1024**3))),
        ("CUDA out of memory. Tried to allocate 512 B.", (512, None)),
        ("something else", (None, None)),
    ],
)
def test_oom_message_parsing(message: str, expected: tuple[int | None, int | None]) -> None:
    assert parse_oom_message(message) == expected


DECODE_ARGS = {**BASE_ARGS, "eager_steps": 0, "decode_requests": [["req-a", 3], ["req-b", 2]]}


def _by_rid(loaded: LoadedRecords) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for record in loaded.of_kind("decode_step"):
        (rid,) = record["rids"]
        out.setdefault(rid, []).append(record)
    return out


def test_decode_steps_are_timed_per_request(tmp_path: Path) -> None:
    proc, loaded = _serve(tmp_path, DECODE_ARGS)
    assert proc.returncode == 0, proc.stderr
    assert loaded.errors == ()
    steps = _by_rid(loaded)
    # Every decode step of the target model, none of the draft model's, none of a prefill.
    assert {rid: len(records) for rid, records in steps.items()} == {"req-a": 3, "req-b": 2}
    for records in steps.values():
        assert all((r["batch_size"], r["clock"], r["inject_kind"], r["inject_us"]) == (1, "host", None, 0)
                   for r in records)
        assert all(r["device_ms"] >= 0.5 for r in records)  # the fake forward spins 0.5 ms
        # A step's wall time runs to the next decode step of the same request; the last one has none.
        *inner, last = records
        assert (last["wall_ms"], last["host_ms"]) == (None, None)
        for r in inner:
            assert r["wall_ms"] >= r["device_ms"]
            assert abs(r["host_ms"] - (r["wall_ms"] - r["device_ms"])) < 1e-5
        assert [r["ts"] for r in records] == sorted(r["ts"] for r in records)


def test_step_timing_switched_off_leaves_the_forward_unwrapped(tmp_path: Path) -> None:
    proc, loaded = _serve(tmp_path, DECODE_ARGS, extra_env={"HARNESS_STEP_TIMING": "0"})
    assert proc.returncode == 0, proc.stderr
    assert loaded.of_kind("decode_step") == ()
    assert "decode_step" not in {r["target"] for r in loaded.of_kind("hook_installed")}


def test_delay_file_is_applied_inside_the_timed_forward(tmp_path: Path) -> None:
    delay = tmp_path / "delay"
    delay.write_text("gpu 2000\n")
    proc, loaded = _serve(tmp_path, DECODE_ARGS, extra_env={"HARNESS_INJECT_DELAY_FILE": str(delay)})
    assert proc.returncode == 0, proc.stderr
    records = loaded.of_kind("decode_step")
    assert len(records) == 5
    assert {(r["inject_kind"], r["inject_us"]) for r in records} == {("gpu", 2000)}
    # Without a device a `gpu` delay is a busy-wait inside the region: at least 2 ms + the 0.5 ms forward.
    assert all(r["device_ms"] >= 2.5 for r in records)


def test_bad_delay_file_means_no_delay_and_one_message(tmp_path: Path) -> None:
    delay = tmp_path / "delay"
    delay.write_text("gpu soon\n")
    proc, loaded = _serve(tmp_path, DECODE_ARGS, extra_env={"HARNESS_INJECT_DELAY_FILE": str(delay)})
    assert proc.returncode == 0, proc.stderr
    assert {r["inject_kind"] for r in loaded.of_kind("decode_step")} == {None}
    assert proc.stderr.count("harness delay switch: no delay") == 1
    assert "expected whole microseconds, got 'soon'" in proc.stderr
