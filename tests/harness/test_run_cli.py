"""`harness run/show/list` end to end against the fake server: outcomes recorded, bad input refused."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from fake_server_helpers import FAKE_LAUNCHER

from harness.cli import COMMANDS
from harness.cli import main as harness
from harness.scenarios.catalog import SCENARIO_DIR
from harness.scenarios.hardware import detect_host
from harness.serve.server import group_members
from harness.store.results import load_result

LAUNCHER = f"--launcher={shlex.join(FAKE_LAUNCHER)}"


def _run(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "run"
    return harness(["run", "--out", str(out), LAUNCHER, "--requests", "3", "--warmups", "1", *args]), out


def _assert_group_gone(result: dict) -> None:
    assert result["server"]["shutdown"]["survivors"] == []
    assert group_members(result["server"]["pid"]) == []


def test_run_records_a_valid_result_and_prints_the_medians(tmp_path, capsys):
    rc, out = _run(tmp_path, "--extra-server-args=--fake-interval-ms 2 --fake-ttft-ms 10")
    result = load_result(out / "baseline" / "result.json")  # validates against the schema
    assert rc == (1 if result["oracle"]["ok"] is False else 0)
    assert result["status"] == "ok" and result["startup"]["outcome"] == "ok"
    assert result["summary"]["tpot_ms"]["n"] == 3 and len(result["samples"]) == 3
    sent = result["samples"][-1]["meta_info"]["fake_send_ns"]
    # First to last token over 63 gaps: the client's clock agrees with the server's send times up to the
    # delivery lag of two tokens (abs 2 ms allows 126 ms of lag; a loaded VM shows a few ms).
    assert result["samples"][-1]["tpot_ms"] == pytest.approx((sent[-1] - sent[0]) / 1e6 / 63, abs=2.0)
    assert result["summary"]["ttft_ms"]["median"] >= 10
    assert result["server_metrics"]["requests"] == 3
    assert result["workload"] == {"input_len": 128, "output_len": 64, "warmups": 1, "requests": 3}
    assert result["target"]["kind"] == "reference"
    assert (out / "baseline" / "server.log").stat().st_size > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenarios"]["baseline"] == {**manifest["scenarios"]["baseline"], "state": "done", "status": "ok"}
    _assert_group_gone(result)
    printed = capsys.readouterr().out
    assert "TTFT" in printed and "TPOT" in printed
    assert f"{result['summary']['tpot_ms']['median']:.4g}" in printed


def test_extra_server_args_and_revert_fix_reach_the_server_verbatim(tmp_path):
    _run(tmp_path, "--extra-server-args=--fake-interval-ms 1 --some-sglang-flag 'a b'",
         "--revert-fix", "a2a-token-cap", "--revert-fix", "dp-workspace-sizing")
    result = load_result(tmp_path / "run" / "baseline" / "result.json")
    tail = ["--fake-interval-ms", "1", "--some-sglang-flag", "a b",
            "--revert-fix", "a2a-token-cap", "--revert-fix", "dp-workspace-sizing"]
    assert result["server"]["argv"][-len(tail):] == tail
    log = (tmp_path / "run" / "baseline" / "server.log").read_text()
    logged = json.loads(next(line for line in log.splitlines() if line.startswith("fake-server argv: "))[18:])
    assert logged[-len(tail):] == tail
    assert "--disable-radix-cache" in logged and "--load-format" not in logged  # reference, not sglang


def test_oom_at_capture_is_a_recorded_outcome(tmp_path, capsys):
    rc, out = _run(tmp_path, "--extra-server-args=--fake-mode oom_at_capture")
    assert rc == 1
    result = load_result(out / "baseline" / "result.json")
    assert result["status"] == "failed"
    assert result["startup"]["outcome"] == "oom_during_cuda_graph_capture"
    assert result["startup"]["capture"]["batch_size"] == 256
    assert result["startup"]["capture"]["free_bytes"] == int(5.38 * 2**20)
    assert result["failure"]["stage"] == "startup"
    assert result["samples"] == [] and result["summary"]["ttft_ms"]["median"] is None
    _assert_group_gone(result)
    assert "oom_during_cuda_graph_capture" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "stage", "kind"),
    [("--fake-mode cut_stream", "request", "stream_cut"), ("--fake-mode http_500", "request", "http_status"),
     ("--fake-mode crash_on_start", "startup", "crash")],
)
def test_failures_are_classified_in_the_result(tmp_path, flags, stage, kind):
    rc, out = _run(tmp_path, f"--extra-server-args={flags}")
    assert rc == 1
    result = load_result(out / "baseline" / "result.json")
    assert (result["status"], result["failure"]["stage"], result["failure"]["kind"]) == ("failed", stage, kind)
    _assert_group_gone(result)


def test_never_healthy_server_times_out(tmp_path):
    rc, out = _run(tmp_path, "--extra-server-args=--fake-mode never_healthy", "--startup-timeout", "1")
    result = load_result(out / "baseline" / "result.json")
    assert (rc, result["startup"]["outcome"]) == (1, "timeout")
    _assert_group_gone(result)


@pytest.mark.skipif(bool(detect_host().gpus), reason="this host has GPUs; the sglang scenario would run")
def test_sglang_target_without_gpus_is_skipped_with_the_reason(tmp_path):
    rc, out = _run(tmp_path, "--target", "sglang", "baseline", "moe-dp1-attn-cp")
    assert rc == 0
    for name, gpus in (("baseline", 1), ("moe-dp1-attn-cp", 4)):
        result = load_result(out / name / "result.json")
        assert result["status"] == "skipped" and result["server"] is None
        assert result["skip_reason"].startswith(f"hardware absent: needs {gpus} GPU(s)")


def _bad(tmp_path: Path, capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as info:
        harness(["run", "--out", str(tmp_path / "bad"), *args])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert not (tmp_path / "bad").exists()
    return err


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys):
    assert "unknown scenario 'nope'" in _bad(tmp_path, capsys, "nope")
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [\n")
    assert "malformed TOML" in _bad(tmp_path, capsys, str(broken))
    no_model = tmp_path / "baseline.toml"
    no_model.write_text((SCENARIO_DIR / "baseline.toml").read_text().replace(
        '"tiny-qwen3-moe"', '"/nonexistent/model"'))
    assert "model: no config.json in model directory /nonexistent/model" in _bad(tmp_path, capsys, str(no_model))
    assert "--requests: expected an integer >= 1" in _bad(tmp_path, capsys, "--requests", "0")
    assert "--warmups" in _bad(tmp_path, capsys, "--warmups", "-1")
    assert "--revert-fix is handed to the reference engine only" in _bad(
        tmp_path, capsys, "--target", "sglang", "--revert-fix", "a2a-token-cap")
    assert "invalid choice" in _bad(tmp_path, capsys, "--revert-fix", "no-such-fix")
    assert "invalid choice" in _bad(tmp_path, capsys, "--target", "tpu")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is already in use" in _bad(tmp_path, capsys, "--port", str(port))


def test_an_earlier_run_directory_is_never_overwritten(tmp_path, capsys):
    _run(tmp_path)
    result_file = tmp_path / "run" / "baseline" / "result.json"
    before = result_file.read_bytes()
    with pytest.raises(SystemExit) as info:
        harness(["run", "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    assert "already holds a run" in capsys.readouterr().err
    assert result_file.read_bytes() == before


def test_show_prints_a_run_and_refuses_a_corrupt_result(tmp_path, capsys):
    _run(tmp_path)
    capsys.readouterr()
    assert harness(["show", str(tmp_path / "run")]) == 0
    assert "baseline" in capsys.readouterr().out
    assert harness(["show", "--json", str(tmp_path / "run" / "baseline")]) == 0
    assert json.loads(capsys.readouterr().out)["scenario"] == "baseline"
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"schema_version": 1, "scenario": "x"')
    assert harness(["show", str(corrupt)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness show: error:") and str(corrupt) in err and "\n" not in err


def test_list_and_dispatch(capsys, monkeypatch):
    assert harness(["list"]) == 0
    listed = capsys.readouterr().out
    for name in ("baseline", "sp-runtime-max-tokens", "dp-workspace-sizing", "a2a-token-cap",
                 "disable-attn-tp-gather", "moe-dp1-attn-cp"):
        assert name in listed
    assert harness(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    monkeypatch.setitem(COMMANDS, "sweep", ("harness.no_such_module", "x"))
    assert harness(["sweep"]) == 2
    assert "harness.no_such_module is missing" in capsys.readouterr().err
    assert harness([]) == 2


def test_python_dash_m_harness_is_the_same_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "nope"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("harness run: error:") and "unknown scenario 'nope'" in done.stderr


def _not_checked(result: dict) -> list[dict]:
    return [v for v in result["oracle"]["verdicts"] if not v["name"].startswith("expect.")]


def test_a_failed_startup_leaves_the_oracle_verdicts_not_checked(tmp_path):
    rc, out = _run(tmp_path, "--extra-server-args=--fake-mode crash_on_start")
    result = load_result(out / "baseline" / "result.json")
    assert (rc, result["failure"]["kind"]) == (1, "crash")
    verdicts = _not_checked(result)
    assert verdicts and all(v["passed"] is None and v["detail"].startswith("not checked") for v in verdicts)
    assert result["oracle"]["ok"] is not False


def _invalid_scenario(tmp_path: Path, expect_refusal: bool) -> Path:
    """baseline with tp 4 / dp 8 under DP attention: the oracle calls it invalid (tp_size % dp_size != 0)."""
    text = (SCENARIO_DIR / "baseline.toml").read_text().replace('name = "baseline"', 'name = "tp4-dp8"')
    text = text.replace("tp_size = 1\n", "tp_size = 4\ndp_size = 8\nenable_dp_attention = true\n")
    if expect_refusal:
        text = text.replace("[oracle.expect]\n", "[oracle.expect]\nconfig_valid = false\n")
    path = tmp_path / "tp4-dp8.toml"
    path.write_text(text)
    return path


def test_a_scenario_the_oracle_calls_invalid_is_refused_before_launch(tmp_path, capsys):
    rc, out = _run(tmp_path, str(_invalid_scenario(tmp_path, expect_refusal=False)))
    result = load_result(out / "tp4-dp8" / "result.json")
    assert (rc, result["status"], result["failure"]["kind"]) == (1, "failed", "invalid_config")
    assert "tp_size (4) must be divisible by dp_size (8)" in result["failure"]["message"]
    assert result["startup"] is None and not (out / "tp4-dp8" / "server.log").exists()
    assert [v for v in result["oracle"]["verdicts"] if v["passed"] is False] == []


def test_a_scenario_that_expects_the_refusal_is_launched_and_must_be_refused(tmp_path):
    scenario = str(_invalid_scenario(tmp_path, expect_refusal=True))
    rc, out = _run(tmp_path, scenario, "--extra-server-args=--fake-mode crash_on_start")
    result = load_result(out / "tp4-dp8" / "result.json")
    refused = next(v for v in result["oracle"]["verdicts"] if v["name"] == "server_refused")
    assert (rc, result["failure"]["stage"], refused["passed"]) == (0, "startup", True)
    out = tmp_path / "accepted"
    rc = harness(["run", "--out", str(out), LAUNCHER, "--requests", "1", "--warmups", "0", scenario])
    result = load_result(out / "tp4-dp8" / "result.json")
    refused = next(v for v in result["oracle"]["verdicts"] if v["name"] == "server_refused")
    assert (rc, refused["passed"], result["oracle"]["ok"]) == (1, False, False)
