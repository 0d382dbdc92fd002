"""Compares a live server's instrumentation records with what reference_impl predicts for its scenario.

Expected values always come from the oracle with every fix applied, so a server (or reference
engine) running with a reverted fix fails the verdict named after the value that fix governs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from harness.errors import HarnessError
from harness.instrument.reader import LoadedRecords, Record
from reference_impl.inputs import OracleInput, ServerArgs


class OracleSpec(Protocol):
    dispatch_dtype: str
    dp_global_num_tokens: Sequence[int] | None
    local_num_tokens: int | None
    batch_size: int | None
    gpu: str | None
    expect: Sequence[tuple[str, Any]]


class ScenarioLike(Protocol):
    name: str
    model_dir: Path
    server_args: Sequence[tuple[str, Any]]
    env: Sequence[tuple[str, str]]
    oracle: OracleSpec


@dataclass(frozen=True)
class Verdict:
    """One compared value; a skipped one (not observable on this target) has passed=None and never counts."""

    name: str
    expected: Any
    observed: Any
    passed: bool | None
    detail: str = ""
    skipped: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "expected": self.expected, "observed": self.observed,
                "passed": self.passed, "detail": self.detail, "skipped": self.skipped}


@dataclass(frozen=True)
class OracleReport:
    """All verdicts of one scenario run; ok when none failed."""

    verdicts: tuple[Verdict, ...]
    prediction: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool | None:
        """True when no verdict failed; None when none was checked at all (nothing to judge)."""
        if all(v.passed is None for v in self.verdicts):
            return None
        return all(v.passed is not False for v in self.verdicts)

    @property
    def failures(self) -> tuple[Verdict, ...]:
        return tuple(v for v in self.verdicts if v.passed is False)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "verdicts": [v.to_json() for v in self.verdicts]}


class OracleCheckError(HarnessError, ValueError):
    """The scenario cannot be turned into an oracle input; the message names the field or file."""


# The hooks (record kinds) whose records the verdicts below read.
_HOOKS = ("dispatcher_init", "dispatch", "attn_tp_gather", "cuda_graph_capture", "set_dp_buffer_len",
          "mlp_scatter_mode", "parallel_groups", "capture_oom")


def check(scenario: ScenarioLike, loaded: LoadedRecords, started: bool = True) -> OracleReport:
    """Predict the scenario with all fixes applied and compare every observable value with the records.

    `started`: whether the server came up; when it did not, a value it never recorded is not checked
    (passed None) rather than failed, and a scenario that expects the refusal checks that it happened.
    """
    prediction = predict_scenario(scenario, sglang_version(loaded))
    verdicts = [*_expect_verdicts(scenario, prediction), *_refusal_verdicts(scenario, started),
                *_record_verdicts(scenario, prediction, loaded, started)]
    return OracleReport(tuple(verdicts), prediction)


def expects_refusal(scenario: ScenarioLike) -> bool:
    """The scenario says the configuration is invalid ([oracle.expect] config_valid = false)."""
    return dict(scenario.oracle.expect).get("config_valid") is False


def refusal(scenario: ScenarioLike) -> str | None:
    """The rules that make the oracle call the scenario invalid; None: it is valid, or expects the refusal."""
    prediction = predict_scenario(scenario)
    if prediction["config_valid"] or expects_refusal(scenario):
        return None
    return "; ".join(prediction["errors"]) or "config_valid is false"


def _refusal_verdicts(scenario: ScenarioLike, started: bool) -> list[Verdict]:
    if not expects_refusal(scenario):
        return []
    return [Verdict("server_refused", True, not started, not started,
                    "the oracle calls the configuration invalid, so the server must refuse to start")]


def sglang_version(loaded: LoadedRecords) -> str | None:
    """The sglang version the probe saw (process_start records), so the oracle applies its rules."""
    versions = {r["target_version"] for r in loaded.of_kind("process_start")
                if r["target"] == "sglang" and r["target_version"]}
    return sorted(versions)[0] if len(versions) == 1 else None


def predict_scenario(scenario: ScenarioLike, version: str | None = None) -> dict[str, Any]:
    from reference_impl.predict import predict

    return predict(oracle_input(scenario, version)).to_json()


def oracle_input(scenario: ScenarioLike, version: str | None = None) -> OracleInput:
    """The oracle input of a scenario (server args, env, model config.json, [oracle]), all fixes applied."""
    from reference_impl.parse import OracleInputError, oracle_input_from_json

    spec = scenario.oracle
    obj: dict[str, Any] = {
        "server_args": dict(scenario.server_args),
        "env": dict(scenario.env),
        "model": _model_json(Path(scenario.model_dir) / "config.json"),
        "dispatch_dtype": spec.dispatch_dtype,
        "runtime": {
            "dp_global_num_tokens": None if spec.dp_global_num_tokens is None else list(spec.dp_global_num_tokens),
            "local_num_tokens": _local_tokens(spec),
            "batch_size": _batch_size(spec),
        },
        "gpu": spec.gpu,
        "revert": [],
    }
    if version is not None:
        obj["sglang_version"] = judged_version(version)
    try:
        return oracle_input_from_json(obj)
    except OracleInputError as exc:
        raise OracleCheckError(f"scenario {scenario.name}: {exc}") from exc


def judged_version(version: str) -> str:
    """The rules a release is judged by: its base release, and 0.5.16's (all five fixes) for older ones.

    A release from before a fix merged is held to the fixed rule, so the check flags what it lacks.
    """
    from reference_impl.versions import SUPPORTED_SGLANG_VERSIONS, sglang_at_least

    base = version.split(".post")[0]
    first = SUPPORTED_SGLANG_VERSIONS[0]
    try:
        return base if sglang_at_least(base, first) else first
    except ValueError:
        return base  # not a release number: the parser names the field


def _model_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise OracleCheckError(f"{path}: cannot read model config ({exc})") from exc
    if not isinstance(raw, dict):
        raise OracleCheckError(f"{path}: model config is not a JSON object")
    return raw


def _local_tokens(spec: OracleSpec) -> int:
    return 1 if spec.local_num_tokens is None else int(spec.local_num_tokens)


def _batch_size(spec: OracleSpec) -> int:
    return 1 if spec.batch_size is None else int(spec.batch_size)


def _server_args(pairs: Iterable[tuple[str, Any]]) -> ServerArgs:
    known = {f.name for f in dataclasses.fields(ServerArgs)}
    try:
        return ServerArgs(**{key: value for key, value in pairs if key in known})
    except TypeError as exc:
        raise OracleCheckError(f"server_args: {exc}") from exc


def _expect_verdicts(scenario: ScenarioLike, prediction: dict[str, Any]) -> list[Verdict]:
    verdicts = []
    for key, value in scenario.oracle.expect:
        if key not in prediction:
            verdicts.append(Verdict(f"expect.{key}", value, None, False, "not a Prediction key"))
            continue
        observed = prediction[key]
        verdicts.append(Verdict(f"expect.{key}", value, observed, _same(value, observed),
                                "scenario [oracle.expect] vs oracle (all fixes applied)"))
    return verdicts


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return bool(a == b and type(a) is type(b)) or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b
    )


def _record_verdicts(scenario: ScenarioLike, prediction: dict[str, Any], loaded: LoadedRecords,
                     started: bool) -> list[Verdict]:
    missing = _unobservable(loaded, started)
    out: list[Verdict] = []
    out += _dispatcher_verdicts(prediction, loaded.of_kind("dispatcher_init"), missing, started)
    out += _dispatch_verdicts(scenario, prediction, loaded.of_kind("dispatch"), missing)
    out += _gather_verdicts(prediction, loaded.of_kind("attn_tp_gather"), missing)
    out += _capture_verdicts(scenario, prediction, loaded, missing, started)
    out += _scatter_verdicts(prediction, loaded.of_kind("mlp_scatter_mode"), missing)
    out += _group_verdicts(scenario, prediction, loaded.of_kind("parallel_groups"), missing)
    return out


def _unobservable(loaded: LoadedRecords, started: bool) -> dict[str, str]:
    """Hook -> why an unrecorded value is not checked: missing in sglang, or the server never started."""
    out = {r["target"]: f"not observable: hook {r['target']} missing ({r['reason']})"
           for r in loaded.of_kind("hook_missing")}
    if not started:
        # Records written before a failed startup still count (a hook that recorded is judged as usual);
        # a hook the server never got to is not checked.
        for hook in _HOOKS:
            if not loaded.of_kind(hook):
                out.setdefault(hook, f"not checked: the server did not start (no {hook} record)")
    return out


def _not_checked(name: str, expected: Any, hooks: Sequence[str], loaded: LoadedRecords, started: bool,
                 missing: dict[str, str]) -> Verdict | None:
    """A presence verdict (a record kind seen or not) of a server that never started nor recorded `hooks`."""
    if started or any(loaded.of_kind(hook) for hook in hooks):
        return None
    return Verdict(name, expected, None, None, missing[hooks[0]], skipped=True)


def _observe_one(name: str, expected: Any, values: Sequence[Any], what: str, hook: str,
                 missing: dict[str, str]) -> Verdict:
    """All records must agree with the expected value (exact); none at all is a failure unless unhookable."""
    distinct = _distinct(values)
    if not distinct:
        if hook in missing:
            return Verdict(name, expected, None, None, missing[hook], skipped=True)
        return Verdict(name, expected, None, False, f"no {what} record")
    observed = distinct[0] if len(distinct) == 1 else distinct
    passed = len(distinct) == 1 and _same(expected, distinct[0])
    detail = f"{len(values)} {what} record(s)" + ("" if len(distinct) == 1 else ", values disagree")
    return Verdict(name, expected, observed, passed, detail)


def _distinct(values: Iterable[Any]) -> list[Any]:
    seen: list[Any] = []
    for v in values:
        v = list(v) if isinstance(v, tuple) else v
        if v not in seen:
            seen.append(v)
    return seen


_DISPATCHER_VALUES = (
    ("a2a_max_num_tokens", "max_num_tokens"),
    ("a2a_dispatch_payload_bytes_per_token", "dispatch_payload_bytes_per_token"),
    ("a2a_combine_payload_bytes_per_token", "combine_payload_bytes_per_token"),
    ("a2a_workspace_bytes_per_rank", "workspace_size_per_rank"),
    ("payload_workspace_tokens", "payload_workspace_tokens"),
)


def _dispatcher_verdicts(prediction: dict[str, Any], records: Sequence[Record],
                         missing: dict[str, str], started: bool) -> list[Verdict]:
    if prediction.get("a2a_max_num_tokens") is None:
        if not started and not records:
            return [Verdict("a2a_dispatcher_constructed", False, None, None, missing["dispatcher_init"],
                            skipped=True)]
        # No A2A dispatcher in this configuration: none may be constructed.
        return [Verdict("a2a_dispatcher_constructed", False, bool(records), not records,
                        f"{len(records)} dispatcher_init record(s)")]
    out = []
    for key, field in _DISPATCHER_VALUES:
        if key not in prediction or prediction[key] is None:
            continue
        values = [r.get(field) for r in records if field in r.fields]
        if records and not values:
            out.append(Verdict(key, prediction[key], None, None, f"dispatcher_init lacks {field}",
                               skipped=True))
            continue
        out.append(_observe_one(key, prediction[key], values, "dispatcher_init", "dispatcher_init", missing))
    return out


def _dispatch_verdicts(scenario: ScenarioLike, prediction: dict[str, Any], records: Sequence[Record],
                       missing: dict[str, str]) -> list[Verdict]:
    expected = prediction.get("runtime_max_tokens_per_rank")
    if expected is None:
        return []
    spec = scenario.oracle
    local = _local_tokens(spec)
    # The oracle evaluates one geometry: the dispatches (capture or eager) with the same local token
    # count, and the same dp_global list when the scenario names one.
    want_global = None if spec.dp_global_num_tokens is None else [int(n) for n in spec.dp_global_num_tokens]
    matching = [r for r in records if r["local_num_tokens"] == local
                and (want_global is None or r["dp_global_num_tokens"] == want_global)]
    values = [r["runtime_max_tokens_per_rank"] for r in matching]
    verdict = _observe_one("runtime_max_tokens_per_rank", expected, values, "dispatch", "dispatch", missing)
    if not matching and records:
        verdict = dataclasses.replace(verdict, detail=(
            f"no dispatch with local_num_tokens={local}"
            + ("" if want_global is None else f" and dp_global_num_tokens={want_global}")
            + f" among {len(records)} dispatch record(s)"))
    return [verdict]


_GATHER_FLAGS = ("require_attn_tp_gather", "require_mlp_tp_gather", "require_gathered_buffer")


def _gather_verdicts(prediction: dict[str, Any], records: Sequence[Record],
                     missing: dict[str, str]) -> list[Verdict]:
    return [
        _observe_one(flag, prediction[flag], [r[flag] for r in records if r[flag] is not None],
                     "attn_tp_gather", "attn_tp_gather", missing)
        for flag in _GATHER_FLAGS if prediction.get(flag) is not None
    ]


def _capture_verdicts(scenario: ScenarioLike, prediction: dict[str, Any], loaded: LoadedRecords,
                      missing: dict[str, str], started: bool) -> list[Verdict]:
    out: list[Verdict] = []
    captures = loaded.of_kind("cuda_graph_capture")
    batch = _batch_size(scenario.oracle)
    # The graph a batch of `batch` requests replays is the smallest captured one that fits it.
    serving = sorted((r for r in captures if r["batch_size"] >= batch), key=lambda r: r["batch_size"])
    serving = [r for r in serving if r["batch_size"] == serving[0]["batch_size"]] if serving else []
    if prediction.get("capture_num_tokens") is not None:
        out.append(_observe_one("capture_num_tokens", prediction["capture_num_tokens"],
                                [r["num_tokens"] for r in serving], f"cuda_graph_capture (bs>={batch})",
                                "cuda_graph_capture", missing))
    if "capture_global_num_tokens" in prediction and prediction.get("capture_num_tokens") is not None:
        n = prediction["capture_num_tokens"]
        at_capture = [r for r in loaded.of_kind("set_dp_buffer_len")
                      if r.get("phase", "capture") == "capture" and r["local_dp_buffer_len"] == n]
        out.append(_observe_one("capture_global_num_tokens", prediction["capture_global_num_tokens"],
                                [r["global_num_tokens"] for r in at_capture],
                                f"capture set_dp_buffer_len (local={n})", "set_dp_buffer_len", missing))
        expected_len = None if prediction["capture_global_num_tokens"] is None else sum(
            prediction["capture_global_num_tokens"])
        if expected_len is not None:
            out.append(_observe_one("capture_global_dp_buffer_len", expected_len,
                                    [r["global_dp_buffer_len"] for r in at_capture],
                                    f"capture set_dp_buffer_len (local={n})", "set_dp_buffer_len", missing))
    if prediction.get("predicted_capture_oom") is not None:
        ooms = loaded.of_kind("capture_oom")
        expected = bool(prediction["predicted_capture_oom"])
        unchecked = _not_checked("predicted_capture_oom", expected, ("cuda_graph_capture", "capture_oom"),
                                 loaded, started, missing)
        if unchecked is not None:
            out.append(unchecked)
            return out
        out.append(Verdict("predicted_capture_oom", expected, bool(ooms), bool(ooms) == expected,
                           f"{len(ooms)} capture_oom record(s)"))
    return out


def _scatter_verdicts(prediction: dict[str, Any], records: Sequence[Record],
                      missing: dict[str, str]) -> list[Verdict]:
    expected = prediction.get("mlp_scatter_mode")
    if expected is None:
        return []
    if isinstance(expected, dict):
        wanted = {"sparse": True, "dense": False}
        out = []
        for label, is_sparse in wanted.items():
            if expected.get(label) is None:
                continue
            layers = _variant_records([r for r in records if bool(r["is_sparse"]) == is_sparse], is_sparse)
            name = f"mlp_scatter_mode.{label}"
            if not layers and any(bool(r["is_sparse"]) != is_sparse for r in records):
                out.append(Verdict(name, [expected[label]], [], None,
                                   f"no {label} layer recorded (the model has none)", skipped=True))
                continue
            modes = sorted({r["mode"] for r in layers})
            out.append(_set_verdict(name, {expected[label]}, modes, records, missing))
        return out
    modes = sorted({r["mode"] for r in records if r["is_sparse"]})
    return [_set_verdict("mlp_scatter_mode", {expected}, modes, records, missing)]


def _variant_records(records: Sequence[Record], is_sparse: bool) -> list[Record]:
    """layer_boundary records carry a batch variant: a sparse FFN's mode is that of the CP extend where
    the configuration has one (the only batch whose MoE input is gathered over MoE-CP), a dense FFN's that
    of an ordinary batch (the mode the oracle models). Records without a variant are kept as they are."""
    if not any(r.get("variant") for r in records):
        return list(records)
    cp_extend = [r for r in records if r.get("variant") == "CONTEXT_PARALLEL"]
    if is_sparse and cp_extend:
        return cp_extend
    return [r for r in records if r.get("variant") in (None, "ORDINARY")]


def _set_verdict(name: str, expected: set[str], observed: list[str], records: Sequence[Record],
                 missing: dict[str, str]) -> Verdict:
    if not records and "mlp_scatter_mode" in missing:
        return Verdict(name, sorted(expected), None, None, missing["mlp_scatter_mode"], skipped=True)
    return Verdict(name, sorted(expected), observed, set(observed) == expected,
                   f"set of modes over {len(records)} mlp_scatter_mode record(s)")


def _group_verdicts(scenario: ScenarioLike, prediction: dict[str, Any], records: Sequence[Record],
                    missing: dict[str, str]) -> list[Verdict]:
    args = _server_args(scenario.server_args)
    attn_dp = args.dp_size if args.enable_dp_attention else 1
    attn_tp = max(args.tp_size // (attn_dp * args.attn_cp_size), 1)
    expected_sizes = {"tp_size": args.tp_size, "ep_size": args.ep_size, "attn_tp_size": attn_tp,
                      "attn_cp_size": args.attn_cp_size, "moe_dp_size": args.moe_dp_size}
    out = [_observe_one(f"group.{name}", value, [r[name] for r in records], "parallel_groups",
                        "parallel_groups", missing) for name, value in expected_sizes.items()]
    alias = prediction.get("moe_dp_group_is_attn_cp_group")
    if alias is not None:
        out.append(_observe_one("moe_dp_group_is_attn_cp_group", alias,
                                [r["moe_dp_group_is_attn_cp_group"] for r in records],
                                "parallel_groups", "parallel_groups", missing))
    return out
