"""oracle_input_from_json: typed input, and one-line errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reference_impl.fixset import A2A_TOKEN_CAP, FixSet
from reference_impl.parse import OracleInputError, oracle_input_from_json

VALID: dict[str, Any] = {
    "server_args": {"tp_size": 4, "dp_size": 4, "enable_dp_attention": True, "ep_size": 4,
                    "moe_a2a_backend": "flashinfer", "chunked_prefill_size": 4096, "disable_radix_cache": True},
    "env": {"SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK": "4096"},
    "model": {"hidden_size": 1024, "num_experts_per_tok": 8, "n_routed_experts": 32, "num_hidden_layers": 4,
              "architectures": ["DeepseekV3ForCausalLM"]},
    "dispatch_dtype": "nvfp4",
    "runtime": {"dp_global_num_tokens": [1, 2, 3, 4], "local_num_tokens": 2, "batch_size": 2},
    "gpu": "B200",
    "revert": ["a2a-token-cap"],
    "sglang_version": "0.5.23",
}


def test_valid_input_round_trip() -> None:
    inp = oracle_input_from_json(VALID)
    assert inp.server_args.tp_size == 4 and inp.server_args.enable_dp_attention
    assert inp.model.num_experts == 32  # n_routed_experts alias (DeepSeek config.json)
    assert inp.env_value("SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK") == "4096"
    assert inp.runtime.dp_global_num_tokens == (1, 2, 3, 4)
    assert inp.gpu.name == "B200"
    assert inp.fixes == FixSet.reverting([A2A_TOKEN_CAP])
    assert (inp.dispatch_dtype, inp.sglang_version) == ("nvfp4", "0.5.23")


def test_defaults() -> None:
    inp = oracle_input_from_json({"server_args": {}, "model": VALID["model"]})
    assert inp.fixes == FixSet() and inp.sglang_version == "0.5.16" and inp.dispatch_dtype == "bf16"
    assert inp.runtime.dp_global_num_tokens is None and inp.gpu.name is None


def _with(path: str, value: Any) -> dict[str, Any]:
    obj = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node = obj
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return obj


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "field"), [
    ("server_args.ep_size", -1, "server_args.ep_size: expected a positive integer, got -1"),
    ("server_args.tp_size", "4", "server_args.tp_size"),
    ("server_args.enable_dp_attention", 1, "server_args.enable_dp_attention"),
    ("server_args.moe_a2a_backend", "nccl", "server_args.moe_a2a_backend"),
    ("server_args.chunked_prefill_size", 0, "server_args.chunked_prefill_size"),
    ("server_args.mem_fraction_static", 1.5, "server_args.mem_fraction_static"),
    ("model.hidden_size", _DELETE, "model.hidden_size: required field is missing"),
    ("model.num_experts_per_tok", 0, "model.num_experts_per_tok"),
    ("env.SGLANG_X", [1], "env.SGLANG_X"),
    ("runtime.dp_global_num_tokens", [1, -2], "runtime.dp_global_num_tokens[1]"),
    ("runtime.dp_global_num_tokens", [], "runtime.dp_global_num_tokens"),
    ("runtime.batch_size", 0, "runtime.batch_size"),
    ("gpu", "A100", "gpu.name"),
    ("gpu", {"memory_bytes": -5}, "gpu.memory_bytes"),
    ("revert", ["a2a-token-cap", "nope"], "revert[1]"),
    ("revert", "a2a-token-cap", "revert"),
    ("dispatch_dtype", "fp8", "dispatch_dtype"),
    ("sglang_version", "0.5.15", "sglang_version"),
    ("sglang_version", "latest", "sglang_version"),
    ("server_args", [], "server_args"),
])
def test_errors_name_the_field(path: str, value: Any, field: str) -> None:
    with pytest.raises(OracleInputError) as info:
        oracle_input_from_json(_with(path, value))
    message = str(info.value)
    assert message.startswith(field), message
    assert "\n" not in message


def test_unknown_top_level_field_and_non_object() -> None:
    with pytest.raises(OracleInputError, match=r"^revrt: unknown top-level field"):
        oracle_input_from_json({**VALID, "revrt": []})
    with pytest.raises(OracleInputError, match=r"^input: expected a JSON object"):
        oracle_input_from_json([VALID])
    assert issubclass(OracleInputError, ValueError)
