"""The CLI as the harness calls it: sglang flag names, clear errors, exit code 2 for bad flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reference_impl.engine.cli import parse_config

REPO = Path(__file__).resolve().parents[3]
TINY_QWEN = REPO / "harness" / "models" / "tiny-qwen3-moe"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reference_impl.engine", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_unknown_flag_exits_2_naming_it() -> None:
    result = run_cli("--model-path", str(TINY_QWEN), "--no-such-flag", "3")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-flag 3" in result.stderr


def test_bad_values_exit_2_naming_the_flag() -> None:
    result = run_cli("--model-path", str(TINY_QWEN), "--tp-size", "-1")
    assert result.returncode == 2 and "--tp-size" in result.stderr
    result = run_cli("--model-path", str(TINY_QWEN), "--revert-fix", "no-such-fix")
    assert result.returncode == 2 and "--revert-fix" in result.stderr
    result = run_cli("--model-path", str(TINY_QWEN), "--tp-size", "4", "--ep-size", "2")
    assert result.returncode == 2 and "--ep-size 2" in result.stderr


def test_missing_model_config_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_cli("--model-path", str(tmp_path))
    assert result.returncode == 1
    assert "config.json: no such file" in result.stdout


def test_sglang_flags_map_to_server_args_and_ignored_ones_are_recorded() -> None:
    config = parse_config(
        ["--model-path", str(TINY_QWEN), "--tp-size", "4", "--ep-size", "4", "--enable-dp-attention",
         "--dp-size", "2", "--moe-a2a-backend", "flashinfer", "--chunked-prefill-size", "8192",
         "--disable-attn-tp-gather", "--revert-fix", "a2a-token-cap", "--revert-fix", "sp-runtime-max-tokens",
         "--disable-radix-cache", "--load-format", "dummy", "--skip-tokenizer-init", "--enable-metrics",
         "--attention-backend", "fa3", "--moe-dense-tp-size", "1", "--enable-dp-lm-head"],
        environ={"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "2048"})
    args = config.server_args
    assert (args.tp_size, args.ep_size, args.dp_size, args.enable_dp_attention) == (4, 4, 2, True)
    assert args.moe_a2a_backend == "flashinfer" and args.chunked_prefill_size == 8192
    assert args.disable_attn_tp_gather and args.moe_dense_tp_size == 1 and args.enable_dp_lm_head
    assert config.fixes.sorted_reverted() == ["sp-runtime-max-tokens", "a2a-token-cap"]
    assert config.env == (("SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK", "2048"),)
    assert "--disable-radix-cache" in config.ignored_flags and "--load-format" in config.ignored_flags


def test_bad_env_value_is_rejected() -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(["--model-path", str(TINY_QWEN)],
                     environ={"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "lots"})
    assert exc.value.code == 2
