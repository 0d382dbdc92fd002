"""sglang.bench_serving's JSONL (one benchmark per line) <-> the harness's result.json.

Read from sglang 0.5.16's sglang/benchmark/serving.py: each line holds the arguments (backend,
dataset_name, request_rate, max_concurrency, random_input_len, ...), `server_info` (its GET
/server_info), aggregates (`{mean,median,std,p90,p95,p99}_{ttft,tpot,itl,e2e_latency}_ms`, duration,
completed, token totals, throughputs) and, with --output-details, per request: input_lens,
output_lens, ttfts and itls (seconds), generated_texts, errors ("" when it succeeded).

Definitions differ slightly, so an imported result keeps both (docs/bench-serving.md):
  bench_serving TTFT = first SSE chunk whose `text` is non-empty; the harness's = first chunk whose
  completion_tokens grew (the same chunk whenever the server detokenizes).
  bench_serving TPOT = (arrival of the last chunk, `[DONE]` included, - TTFT) / (output_len - 1); the
  harness's = (last token chunk - first token chunk) / (completion_tokens - 1). Per request the harness
  TPOT of an imported line is sum(itls) / (output_len - 1): its ITLs span first to last token chunk.
Samples and the summary follow the harness's definitions; the line's own fields are kept verbatim in
`source.line_fields`, so `to_line(to_result(x))` gives x back (floats through ms and back: 1e-12).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.store.result import IMPORTED_KIND, SCHEMA_VERSION, read_text
from harness.store.results import summarize

DETAIL_KEYS = ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors")
_REQUIRED_DETAILS = ("input_lens", "output_lens", "ttfts", "itls")
_METRICS = (("ttft_ms", "ttft"), ("tpot_ms", "tpot"), ("itl_ms", "itl"), ("e2e_ms", "e2e_latency"))
# JSON has no NaN/inf, but bench_serving writes `"request_rate": Infinity`; results must stay strict JSON.
_FLOAT_TAG = "$float"


class BenchServingError(HarnessError, ValueError):
    """A line that cannot be imported; the message starts with FILE:LINE and names the field."""


@dataclass(frozen=True)
class Line:
    """One parsed JSONL line and where it came from."""

    path: Path
    number: int  # 1-based, as editors count
    data: dict[str, Any]

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"


def read_jsonl(path: Path) -> list[Line]:
    """Every non-blank line of a bench_serving output file, parsed; errors name the file and line."""
    text = read_text(path, BenchServingError)
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise BenchServingError(f"{path}:{number}: not valid JSON (truncated?): {exc}") from None
        if not isinstance(data, dict):
            raise BenchServingError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        lines.append(Line(path, number, data))
    if not lines:
        raise BenchServingError(f"{path}: no benchmark lines (empty file)")
    return lines


def to_result(line: Line, scenario: str, harness: dict[str, Any]) -> dict[str, Any]:
    """The harness result.json for one line (validated field by field; schema-valid when it returns)."""
    data, where = line.data, line.where
    backend = _field(data, "backend", where, str)
    if not backend.startswith("sglang"):
        raise BenchServingError(f"{where}: backend: harness results hold sglang runs, got {backend!r}")
    completed = _count(data, "completed", where)
    for key in ("median_ttft_ms", "median_tpot_ms"):
        _number(data, key, where)
    server_info = data.get("server_info")
    if server_info is not None and not isinstance(server_info, dict):
        raise BenchServingError(f"{where}: server_info: expected an object or null")
    server_info = server_info or {}
    samples = _samples(data, where, completed)
    failed = next((s for s in samples if not s["ok"]), None)
    summary_from = "samples" if samples else "aggregates"
    finished = dt.datetime.fromtimestamp(line.path.stat().st_mtime, dt.timezone.utc)
    duration = data.get("duration") if isinstance(data.get("duration"), (int, float)) else 0.0
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario,
        "status": "failed" if failed else "ok",
        "skip_reason": None,
        "failure": None if failed is None else {
            "stage": "request", "kind": failed["error_kind"],
            "message": f"request {failed['index']}: {failed['error'].strip().splitlines()[-1][:300]}"},
        # bench_serving records no date: the file's modification time is the best end time there is.
        "started_at": (finished - dt.timedelta(seconds=float(duration))).isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "target": {"kind": "reference" if server_info.get("target") == "reference" else "sglang",
                   "version": _str_or_none(server_info.get("version")), "commit": None},
        "harness": harness,
        "hardware": {"cpu": {}, "gpus": [], "note": "not recorded by sglang.bench_serving"},
        "scenario_detail": {
            "description": _describe(data),
            "path": None,
            "model_dir": _str_or_none(server_info.get("model_path")),
            "guards": None,
            "server_args": _encode(server_info),
            "env": {},
        },
        "server": None,
        "workload": _workload(data, samples, completed),
        # The server answered, so it had started; how long it took is not in the line (elapsed_s 0, observed false).
        "startup": {"outcome": "ok", "message": "not observed: imported from sglang.bench_serving",
                    "elapsed_s": 0.0, "returncode": None, "observed": False,
                    "capture": {"batch_size": None, "num_tokens": None, "capture_bs": [], "requested_bytes": None,
                                "free_bytes": None, "oom": False, "phases": []}},
        "samples": samples,
        "summary": _summary_from_samples(samples, data) if samples else _summary_from_aggregates(data),
        "server_metrics": {"ttft_ms_mean": None, "itl_ms_mean": None, "e2e_ms_mean": None, "requests": None,
                           "error": "not measured: imported from sglang.bench_serving"},
        "instrumentation": {"records": [], "errors": []},
        "oracle": {"ok": None, "verdicts": [], "error": "no instrumentation records in a bench_serving run"},
        "source": {
            "kind": IMPORTED_KIND,
            "file": str(line.path),
            "line": line.number,
            "summary_from": summary_from,
            "line_keys": list(data),
            "line_fields": {k: _encode(v) for k, v in data.items() if k not in DETAIL_KEYS and k not in
                            _extra_detail_keys(data, samples)},
            "extra_details": {k: _encode(data[k]) for k in _extra_detail_keys(data, samples)},
        },
    }


def to_line(result: dict[str, Any]) -> dict[str, Any]:
    """One bench_serving JSONL object for a result: the imported line itself, or computed from samples."""
    source = result.get("source") or {}
    samples = [s for s in result.get("samples") or [] if isinstance(s, dict)]
    if source.get("kind") == IMPORTED_KIND:
        fields = {k: _decode(v) for k, v in source["line_fields"].items()}
        if samples:
            fields.update(_details(samples))
            fields.update({k: _decode(v) for k, v in (source.get("extra_details") or {}).items()})
        return {k: fields[k] for k in source["line_keys"] if k in fields}
    return {**_aggregates(result, samples), **_details(samples)}


def _samples(data: dict[str, Any], where: str, completed: int) -> list[dict[str, Any]]:
    present = [k for k in DETAIL_KEYS if k in data]
    if not present:
        return []
    missing = [k for k in _REQUIRED_DETAILS if k not in data]
    if missing:
        raise BenchServingError(f"{where}: {', '.join(missing)}: missing (the line has {', '.join(present)})")
    columns = {k: data[k] for k in DETAIL_KEYS if k in data}
    for key, column in columns.items():
        if not isinstance(column, list):
            raise BenchServingError(f"{where}: {key}: expected a list, got {type(column).__name__}")
    n = len(columns["input_lens"])
    for key, column in columns.items():
        if len(column) != n:
            raise BenchServingError(f"{where}: {key}: {len(column)} entries, input_lens has {n}")
    samples = []
    for i in range(n):
        error = columns.get("errors", [""] * n)[i]
        if not isinstance(error, str):
            raise BenchServingError(f"{where}: errors[{i}]: expected a string, got {error!r}")
        ttft_s = _value(columns["ttfts"][i], f"ttfts[{i}]", where)
        itls = columns["itls"][i]
        if not isinstance(itls, list):
            raise BenchServingError(f"{where}: itls[{i}]: expected a list, got {type(itls).__name__}")
        itl_ms = [_value(x, f"itls[{i}][{j}]", where) * 1000.0 for j, x in enumerate(itls)]
        tokens = _int(columns["output_lens"][i], f"output_lens[{i}]", where)
        ok = error == ""
        sample: dict[str, Any] = {
            "index": i, "input_len": _int(columns["input_lens"][i], f"input_lens[{i}]", where), "ok": ok,
            "error_kind": None if ok else _error_kind(error), "error": None if ok else error,
            "http_status": None, "completion_tokens": tokens,
            "ttft_ms": ttft_s * 1000.0,
            "tpot_ms": sum(itl_ms) / (tokens - 1) if ok and tokens > 1 and itl_ms else None,
            "e2e_ms": None,  # per-request latency is not in the details, only its aggregates
            "itl_ms": itl_ms,
        }
        if "generated_texts" in columns:
            text = columns["generated_texts"][i]
            if not isinstance(text, str):
                raise BenchServingError(f"{where}: generated_texts[{i}]: expected a string")
            sample["generated_text"] = text
        samples.append(sample)
    good = sum(1 for s in samples if s["ok"])
    if good != completed:
        raise BenchServingError(f"{where}: completed: {completed}, but {good} of {n} requests have no error")
    return samples


def _summary_from_samples(samples: list[dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
    good = [s for s in samples if s["ok"]]
    return {
        "ttft_ms": summarize(s["ttft_ms"] for s in good),
        "tpot_ms": summarize(s["tpot_ms"] for s in good),
        # Per-request e2e is not in the details; bench_serving's e2e ([DONE] - send) is the harness's.
        "e2e_ms": _aggregate_summary(data, "e2e_latency", len(good)),
        "itl_ms": summarize(x for s in good for x in s["itl_ms"]),
    }


def _summary_from_aggregates(data: dict[str, Any]) -> dict[str, Any]:
    n = int(data["completed"])
    return {key: _aggregate_summary(data, name, n) for key, name in _METRICS}


def _aggregate_summary(data: dict[str, Any], name: str, n: int) -> dict[str, Any]:
    def get(stat: str) -> float | None:
        value = data.get(f"{stat}_{name}_ms")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    if n == 0 or get("median") is None:
        return summarize([])
    return {"median": get("median"), "p90": get("p90"), "p99": get("p99"), "mean": get("mean"),
            "stdev": get("std"), "n": n}


def _workload(data: dict[str, Any], samples: list[dict[str, Any]], completed: int) -> dict[str, int]:
    def length(key: str, fallback: list[int]) -> int:
        value = data.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        return int(np.median(fallback)) if fallback else 0

    return {
        "input_len": length("random_input_len", [s["input_len"] for s in samples]),
        "output_len": length("random_output_len", [s["completion_tokens"] for s in samples if s["ok"]]),
        "warmups": 0,  # bench_serving's --warmup-requests is not written to the line
        "requests": len(samples) or completed,
    }


def _details(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "input_lens": [s.get("input_len", 0) for s in samples],
        "output_lens": [s.get("completion_tokens") or 0 for s in samples],
        "ttfts": [(s.get("ttft_ms") or 0.0) / 1000.0 for s in samples],
        "itls": [[x / 1000.0 for x in s.get("itl_ms") or []] for s in samples],
        "generated_texts": [s.get("generated_text", "") for s in samples],
        "errors": [s.get("error") or "" if not s.get("ok") else "" for s in samples],
    }


def _aggregates(result: dict[str, Any], samples: list[dict[str, Any]]) -> dict[str, Any]:
    """bench_serving's aggregate fields computed its way from a harness run's samples (BS=1, sequential)."""
    good = [s for s in samples if s.get("ok")]
    ttft = [s["ttft_ms"] for s in good if s.get("ttft_ms") is not None]
    e2e = [s["e2e_ms"] for s in good if s.get("e2e_ms") is not None]
    # Its TPOT: (latency - ttft) / (n - 1), where latency is the [DONE] chunk's arrival: the harness's e2e.
    tpot = [(s["e2e_ms"] - s["ttft_ms"]) / (s["completion_tokens"] - 1) for s in good
            if s.get("e2e_ms") is not None and s.get("ttft_ms") is not None and (s.get("completion_tokens") or 0) > 1]
    itl = [x for s in good for x in s.get("itl_ms") or []]
    total_in = sum(s.get("input_len", 0) for s in good)
    total_out = sum(s.get("completion_tokens") or 0 for s in good)
    # Requests ran back to back, so the sum of their latencies is the benchmark's duration (without gaps).
    duration = sum(e2e) / 1000.0
    workload = result.get("workload") or {}
    line: dict[str, Any] = {
        "tag": f"harness:{result.get('scenario')}", "backend": "sglang", "dataset_name": "harness",
        "request_rate": float("inf"), "max_concurrency": 1, "sharegpt_output_len": None,
        "random_input_len": workload.get("input_len"), "random_output_len": workload.get("output_len"),
        "random_range_ratio": 1.0,
        "server_info": {"version": (result.get("target") or {}).get("version"),
                        "harness_result": {"scenario": result.get("scenario"),
                                           "target": (result.get("target") or {}).get("kind"),
                                           "status": result.get("status")}},
        "duration": duration, "completed": len(good), "total_input_tokens": total_in,
        "total_input_text_tokens": total_in, "total_input_vision_tokens": 0, "total_output_tokens": total_out,
        "total_output_tokens_retokenized": total_out,
        "request_throughput": len(good) / duration if duration else 0.0,
        "input_throughput": total_in / duration if duration else 0.0,
        "output_throughput": total_out / duration if duration else 0.0,
        "total_throughput": (total_in + total_out) / duration if duration else 0.0,
    }
    for name, values in (("e2e_latency", e2e), ("ttft", ttft), ("tpot", tpot), ("itl", itl)):
        line.update(_stats(name, values))
    line.update(concurrency=1.0 if duration else 0.0, accept_length=None, max_output_tokens_per_s=None,
                max_concurrent_requests=1)
    return line


def _stats(name: str, values_ms: list[float]) -> dict[str, float]:
    # bench_serving's numpy calls, including `np.mean(x or 0)` for an empty list (0.0).
    data = np.asarray(values_ms or [0.0], dtype=float)
    return {f"mean_{name}_ms": float(np.mean(data)), f"median_{name}_ms": float(np.median(data)),
            f"std_{name}_ms": float(np.std(data)), f"p90_{name}_ms": float(np.percentile(data, 90)),
            f"p95_{name}_ms": float(np.percentile(data, 95)), f"p99_{name}_ms": float(np.percentile(data, 99))}


def _extra_detail_keys(data: dict[str, Any], samples: list[dict[str, Any]]) -> list[str]:
    # Per-request lists a newer bench_serving adds (cached_tokens, ...): kept whole, never dropped.
    if not samples:
        return []
    return [k for k, v in data.items() if k not in DETAIL_KEYS and isinstance(v, list) and len(v) == len(samples)
            and k not in ("server_info",)]


def _describe(data: dict[str, Any]) -> str:
    parts = [f"imported from sglang.bench_serving --backend {data.get('backend')}",
             f"dataset {data.get('dataset_name')}"]
    if data.get("random_input_len") is not None:
        parts.append(f"{data.get('random_input_len')} in / {data.get('random_output_len')} out")
    parts.append(f"max_concurrency {data.get('max_concurrency')}")
    return ", ".join(parts)


def _error_kind(error: str) -> str:
    """The harness's error kind for a bench_serving error string (an HTTP reason, or a traceback)."""
    if "Timeout" in error:
        return "timeout"
    if "Traceback" in error or "Connect" in error:
        return "connection"
    return "http_status"


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_TAG: repr(value)}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_FLOAT_TAG}:
            return float(value[_FLOAT_TAG])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _field(data: dict[str, Any], key: str, where: str, kind: type) -> Any:
    if key not in data:
        raise BenchServingError(f"{where}: {key}: missing")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BenchServingError(f"{where}: {key}: expected a {kind.__name__}, got {value!r}")
    return value


def _number(data: dict[str, Any], key: str, where: str) -> float:
    if key not in data:
        raise BenchServingError(f"{where}: {key}: missing")
    return _value(data[key], key, where)


def _count(data: dict[str, Any], key: str, where: str) -> int:
    if key not in data:
        raise BenchServingError(f"{where}: {key}: missing")
    return _int(data[key], key, where)


def _value(value: Any, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BenchServingError(f"{where}: {field}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _int(value: Any, field: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BenchServingError(f"{where}: {field}: expected an integer >= 0, got {value!r}")
    return value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
