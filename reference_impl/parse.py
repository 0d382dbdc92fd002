"""JSON -> OracleInput, with one-line errors that name the offending field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from reference_impl.fixset import FIX_NAMES, FixSet
from reference_impl.gpus import GPU_MEMORY_MIB
from reference_impl.inputs import DISPATCH_DTYPES, GpuSpec, ModelConfig, OracleInput, Runtime, ServerArgs
from reference_impl.versions import version_tuple

TOP_LEVEL_KEYS = ("server_args", "env", "model", "dispatch_dtype", "runtime", "gpu", "revert", "sglang_version")
MOE_A2A_BACKENDS = ("none", "deepep", "mooncake", "nixl", "mori", "ascend_fuseep", "ascend_tp", "flashinfer",
                    "megamoe", "customized")
MIN_SGLANG_VERSION = "0.5.16"
# HF config.json spells the expert count per architecture; the first present name wins.
MODEL_ALIASES: dict[str, tuple[str, ...]] = {
    "num_experts": ("num_experts", "n_routed_experts", "num_local_experts"),
}


class OracleInputError(ValueError):
    """Invalid oracle input; the message starts with the dotted field name."""


def _fail(field: str, expected: str, value: Any) -> OracleInputError:
    return OracleInputError(f"{field}: expected {expected}, got {value!r}")


def _int(field: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, "an integer", value)
    if minimum is not None and value < minimum:
        raise _fail(field, "a positive integer" if minimum == 1 else f"an integer >= {minimum}", value)
    return value


def _positive(field: str, value: Any) -> int:
    return _int(field, value, 1)


def _optional(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda field, value: None if value is None else check(field, value)


def _bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _fail(field, "true or false", value)
    return value


def _a2a_backend(field: str, value: Any) -> str:
    if value is None:
        return "none"
    if not isinstance(value, str) or value not in MOE_A2A_BACKENDS:
        raise _fail(field, f"one of {', '.join(MOE_A2A_BACKENDS)}", value)
    return value


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(field, "a non-empty string", value)
    return value


def _chunked_prefill(field: str, value: Any) -> int:
    number = _int(field, value)
    if number == 0 or number < -1:
        raise _fail(field, "a positive integer or -1 (disabled)", value)
    return number


def _fraction(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise _fail(field, "a number between 0 and 1 (exclusive)", value)
    return float(value)


SERVER_ARG_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "tp_size": _positive,
    "dp_size": _positive,
    "ep_size": _positive,
    "enable_dp_attention": _bool,
    "attn_cp_size": _positive,
    "moe_dp_size": _positive,
    "moe_a2a_backend": _a2a_backend,
    "moe_runner_backend": _string,
    "moe_dense_tp_size": _optional(_positive),
    "enable_dp_lm_head": _bool,
    "chunked_prefill_size": _optional(_chunked_prefill),
    "max_running_requests": _optional(_positive),
    "disable_attn_tp_gather": _bool,
    "cuda_graph_max_bs": _optional(_positive),
    "mem_fraction_static": _optional(_fraction),
}
MODEL_REQUIRED = ("hidden_size", "num_experts_per_tok", "num_experts", "num_hidden_layers")


def _object(field: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(field, "a JSON object", value)
    return value


def parse_server_args(value: Any) -> ServerArgs:
    """Known sglang fields are checked; other ServerArgs fields (e.g. disable_radix_cache) are ignored."""
    raw = _object("server_args", value)
    values = {key: check(f"server_args.{key}", raw[key]) for key, check in SERVER_ARG_CHECKS.items() if key in raw}
    return ServerArgs(**values)


def parse_model(value: Any) -> ModelConfig:
    raw = dict(_object("model", value))
    for name, aliases in MODEL_ALIASES.items():
        present = next((alias for alias in aliases if alias in raw and raw[alias] is not None), None)
        if present is not None:
            raw[name] = raw[present]
    values: dict[str, int] = {}
    for model_field in dataclasses.fields(ModelConfig):
        key = model_field.name
        if key in MODEL_REQUIRED:
            if key not in raw:
                raise OracleInputError(f"model.{key}: required field is missing")
            values[key] = _positive(f"model.{key}", raw[key])
        elif raw.get(key) is not None:
            values[key] = _int(f"model.{key}", raw[key], 0)
    return ModelConfig(**values)


def parse_env(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    raw = _object("env", value)
    pairs = []
    for key, item in raw.items():
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise _fail(f"env.{key}", "a string (or integer) value", item)
        pairs.append((str(key), str(item)))
    return tuple(pairs)


def parse_runtime(value: Any) -> Runtime:
    if value is None:
        return Runtime()
    raw = _object("runtime", value)
    dp_global = raw.get("dp_global_num_tokens")
    if dp_global is not None:
        if not isinstance(dp_global, list) or not dp_global:
            raise _fail("runtime.dp_global_num_tokens", "a non-empty list of integers or null", dp_global)
        dp_global = tuple(_int(f"runtime.dp_global_num_tokens[{i}]", n, 0) for i, n in enumerate(dp_global))
    local = _int("runtime.local_num_tokens", raw.get("local_num_tokens", 1), 0)
    batch = _positive("runtime.batch_size", raw.get("batch_size", 1))
    return Runtime(dp_global_num_tokens=dp_global, local_num_tokens=local, batch_size=batch)


def parse_gpu(value: Any) -> GpuSpec:
    if value is None:
        return GpuSpec()
    if isinstance(value, str):
        value = {"name": value}
    raw = _object("gpu", value)
    name = raw.get("name")
    memory = raw.get("memory_bytes")
    if name is not None and (not isinstance(name, str) or name.strip().upper() not in GPU_MEMORY_MIB):
        raise _fail("gpu.name", f"one of {', '.join(GPU_MEMORY_MIB)}", name)
    if memory is not None:
        memory = _positive("gpu.memory_bytes", memory)
    return GpuSpec(name=name, memory_bytes=memory)


def parse_revert(value: Any) -> FixSet:
    if value is None:
        return FixSet()
    if not isinstance(value, list):
        raise _fail("revert", "a list of fix names", value)
    for i, name in enumerate(value):
        if name not in FIX_NAMES:
            raise _fail(f"revert[{i}]", f"one of {', '.join(FIX_NAMES)}", name)
    return FixSet.reverting(value)


def parse_sglang_version(value: Any) -> str:
    if value is None:
        return MIN_SGLANG_VERSION
    if not isinstance(value, str):
        raise _fail("sglang_version", "a version string such as 0.5.16", value)
    try:
        parsed = version_tuple(value)
    except ValueError:
        raise _fail("sglang_version", "a dotted numeric version such as 0.5.16", value) from None
    if parsed < version_tuple(MIN_SGLANG_VERSION):
        raise _fail("sglang_version", f"{MIN_SGLANG_VERSION} or later (all five fixes merged)", value)
    return value


def parse_dispatch_dtype(value: Any) -> str:
    if value is None:
        return "bf16"
    if value not in DISPATCH_DTYPES:
        raise _fail("dispatch_dtype", f"one of {', '.join(DISPATCH_DTYPES)}", value)
    return value


def oracle_input_from_json(obj: object) -> OracleInput:
    """Build an OracleInput from decoded JSON; raises OracleInputError naming the field."""
    raw = _object("input", obj)
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise OracleInputError(f"{unknown[0]}: unknown top-level field; known: {', '.join(TOP_LEVEL_KEYS)}")
    for key in ("server_args", "model"):
        if key not in raw:
            raise OracleInputError(f"{key}: required field is missing")
    return OracleInput(
        server_args=parse_server_args(raw["server_args"]),
        model=parse_model(raw["model"]),
        env=parse_env(raw.get("env")),
        dispatch_dtype=parse_dispatch_dtype(raw.get("dispatch_dtype")),
        runtime=parse_runtime(raw.get("runtime")),
        gpu=parse_gpu(raw.get("gpu")),
        fixes=parse_revert(raw.get("revert")),
        sglang_version=parse_sglang_version(raw.get("sglang_version")),
    )
