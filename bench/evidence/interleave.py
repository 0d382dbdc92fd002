"""Per-request interleaving: each prompt sent by the harness client and by bench_serving's own request code.

    python -m bench.evidence.interleave --base-url URL --tokenizer DIR --out DIR [--pairs 150]
        [--input-len 128] [--output-len 64] [--warmups 1] [--vocab-size 32000]

Rounds of 30 requests per tool sample different stretches of the server's speed (issue #16: the
server's own ITL differed by -10%..+21% between neighbouring windows). Here pair k sends the same prompt
ids through the harness client (one kept-alive connection) and through sglang.bench_serving's
`async_request_sglang_generate` (its aiohttp session per request, its timing, imported, not copied),
back to back, harness first when k is even (H B B H H B ...), so both see the same server state.
Run it with a Python where `sglang.bench_serving` imports (bench_serving's own site). Writes
OUT/raw/interleave.jsonl (one pair a line), OUT/interleave.json and OUT/interleave.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.client import StreamingClient, prompt_ids

MS = 1000.0
BenchCall = Callable[[list[int], int], dict[str, Any]]
# bench_serving's CLI defaults for what async_request_sglang_generate reads from its global args (0.5.16).
BENCH_ARGS = {"backend": "sglang", "temperature": 0.0, "top_p": 1.0, "disable_ignore_eos": False,
              "disable_stream": False, "return_logprob": False, "return_routed_experts": False,
              "logprob_start_len": -1, "top_logprobs_num": 0, "token_ids_logprob": None, "cache_report": False,
              "header": None}


def _serving_module() -> Any:
    """sglang.benchmark.serving (0.5.16+), else the older sglang.bench_serving."""
    try:
        from sglang.benchmark import serving
    except ImportError:
        import sglang.bench_serving as serving
    return serving


def bench_caller(base_url: str) -> tuple[BenchCall, list[Any]]:
    """bench_serving's request function on one event loop; also returns the list its outputs go into."""
    serving = _serving_module()
    serving.set_global_args(argparse.Namespace(**BENCH_ARGS))
    loop = asyncio.new_event_loop()
    outputs: list[Any] = []

    def call(ids: list[int], output_len: int) -> dict[str, Any]:
        request = serving.RequestFuncInput(prompt=ids, api_url=f"{base_url}/generate", prompt_len=len(ids),
                                           output_len=output_len, model="", lora_name=None, image_data=None,
                                           extra_request_body={})
        out = loop.run_until_complete(serving.async_request_sglang_generate(request))
        outputs.append(out)
        return bench_record(out)

    return call, outputs


def bench_record(out: Any) -> dict[str, Any]:
    """A RequestFuncOutput in ms, with TPOT as bench_serving computes it and first-to-last."""
    n = int(out.output_len)
    ok = bool(out.success) and n > 1
    return {"ok": ok, "error": out.error or None, "output_len": n, "ttft_ms": out.ttft * MS, "e2e_ms": out.latency * MS,
            "itl_ms": [x * MS for x in out.itl],
            "tpot_ms": (out.latency - out.ttft) * MS / (n - 1) if ok else None,
            "tpot_ms_first_to_last": sum(out.itl) * MS / (n - 1) if ok else None}


def harness_record(sample: Any) -> dict[str, Any]:
    """A harness RequestSample with bench_serving's TPOT definition beside its own."""
    data = sample.to_json()
    n = data["completion_tokens"] or 0
    data["tpot_ms_done_included"] = (data["e2e_ms"] - data["ttft_ms"]) / (n - 1) if data["ok"] and n > 1 else None
    return data


def run_pairs(client: StreamingClient, bench: BenchCall, pairs: int, input_len: int, output_len: int,
              vocab_size: int, warmups: int = 1) -> list[dict[str, Any]]:
    """Warm both up, then pair k: same prompt, harness first when k is even."""
    for k in range(warmups):
        ids = prompt_ids(input_len, vocab_size, 900_000 + k)
        client.generate(k, ids, output_len)
        bench(ids, output_len)
    records = []
    for k in range(pairs):
        ids = prompt_ids(input_len, vocab_size, k)
        record: dict[str, Any] = {"pair": k, "first": "harness" if k % 2 == 0 else "bench_serving"}
        for tool in (("harness", "bench_serving") if k % 2 == 0 else ("bench_serving", "harness")):
            record[tool] = harness_record(client.generate(k, ids, output_len)) if tool == "harness" else bench(ids, output_len)
        records.append(record)
    return records


def _ci(values: list[float], fn: Callable[[np.ndarray], float], boot: int, seed: int) -> list[float]:
    """95% bootstrap CI of fn over pairs resampled with replacement (fn gets an index array)."""
    rng = np.random.default_rng(seed)
    stats = [fn(rng.integers(0, len(values), len(values))) for _ in range(boot)]
    return [float(v) for v in np.percentile(stats, [2.5, 97.5])]


def _paired(h: list[float], b: list[float], boot: int, seed: int) -> dict[str, Any]:
    """Medians, ratio of medians with a paired bootstrap CI, and the median per-pair ratio."""
    ha, ba = np.asarray(h), np.asarray(b)
    return {"harness_median": float(np.median(ha)), "bench_median": float(np.median(ba)),
            "ratio_median": float(np.median(ha) / np.median(ba)),
            "ratio_median_ci95": _ci(h, lambda i: float(np.median(ha[i]) / np.median(ba[i])), boot, seed),
            "ratio_mean": float(ha.mean() / ba.mean()),
            "median_pair_ratio": float(np.median(ha / ba)),
            "median_pair_diff": float(np.median(ha - ba)),
            "mean_pair_diff_ci95": _ci(h, lambda i: float((ha[i] - ba[i]).mean()), boot, seed)}


def summarize(records: list[dict[str, Any]], boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Paired statistics over the pairs where both requests succeeded."""
    ok = [r for r in records if r["harness"]["ok"] and r["bench_serving"]["ok"]]
    h = [r["harness"] for r in ok]
    b = [r["bench_serving"] for r in ok]
    out: dict[str, Any] = {"pairs": len(records), "pairs_ok": len(ok)}
    if not ok:
        return out
    out["ttft_ms"] = _paired([x["ttft_ms"] for x in h], [x["ttft_ms"] for x in b], boot, seed)
    out["tpot_ms_first_to_last"] = _paired([x["tpot_ms"] for x in h], [x["tpot_ms_first_to_last"] for x in b], boot, seed)
    out["tpot_ms_bench_definition"] = _paired([x["tpot_ms_done_included"] for x in h], [x["tpot_ms"] for x in b],
                                              boot, seed)
    for tool in ("harness", "bench_serving"):
        diffs = [r["harness"]["ttft_ms"] - r["bench_serving"]["ttft_ms"] for r in ok if r["first"] == tool]
        out[f"ttft_diff_ms_when_{tool}_first"] = statistics.median(diffs) if diffs else None
    server = [x["ttft_ms"] - _server_ttft(x["meta_info"] or {}) for x in h if _server_ttft(x["meta_info"] or {})]
    out["harness_client_minus_server_ttft_ms_median"] = statistics.median(server) if server else None
    return out


def _server_ttft(meta: dict[str, Any]) -> float | None:
    """received -> first chunk sent (sglang 0.5.16 meta_info), or the reference engine's first_token_latency."""
    if isinstance(meta.get("first_token_latency"), (int, float)):
        return meta["first_token_latency"] * MS
    sent, got, done = (meta.get(k) for k in ("response_sent_to_client_ts", "request_received_ts", "request_finished_ts"))
    if all(isinstance(v, (int, float)) for v in (sent, got, done)) and sent < done:
        return (sent - got) * MS
    return None


def bench_own_metrics(outputs: list[Any], tokenizer: Path) -> dict[str, Any]:
    """bench_serving's calculate_metrics over its measured outputs: what it would have printed."""
    serving = _serving_module()
    try:
        metrics, _lens = serving.calculate_metrics(None, outputs, 1.0, serving.get_tokenizer(str(tokenizer)), "sglang")
    except Exception as exc:  # its signature moves between releases; the paired numbers do not need it
        return {"error": f"{type(exc).__name__}: {exc}"}
    keys = ("median_ttft_ms", "mean_ttft_ms", "median_tpot_ms", "mean_tpot_ms", "median_itl_ms", "mean_itl_ms")
    return {k: float(getattr(metrics, k)) for k in keys}


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def report(summary: dict[str, Any]) -> str:
    """interleave.md: the paired table and bench_serving's own aggregate over the same requests."""
    lines = ["# Harness vs bench_serving, interleaved per request", "",
             f"{summary['pairs_ok']} of {summary['pairs']} pairs ok; each pair = one prompt sent by both, back to "
             "back, order alternating (H B B H ...).", "",
             "| metric (ms) | harness median | bench_serving median | ratio of medians [95% CI] | ratio of means "
             "| median per-pair ratio | median per-pair diff |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in (("ttft_ms", "TTFT"), ("tpot_ms_first_to_last", "TPOT first to last token"),
                       ("tpot_ms_bench_definition", "TPOT to [DONE] (bench_serving's)")):
        p = summary.get(key)
        if p:
            lines.append(f"| {label} | {_f(p['harness_median'], 4)} | {_f(p['bench_median'], 4)} | "
                         f"{_f(p['ratio_median'], 4)} [{_f(p['ratio_median_ci95'][0], 4)}, {_f(p['ratio_median_ci95'][1], 4)}] "
                         f"| {_f(p['ratio_mean'], 4)} | {_f(p['median_pair_ratio'], 4)} | {_f(p['median_pair_diff'], 4)} |")
    lines += ["", f"TTFT harness - bench_serving, median: {_f(summary.get('ttft_diff_ms_when_harness_first'))} ms when "
              f"the harness went first, {_f(summary.get('ttft_diff_ms_when_bench_serving_first'))} ms when second. "
              f"Harness client - server TTFT (meta_info), median {_f(summary.get('harness_client_minus_server_ttft_ms_median'))} ms."]
    own = summary.get("bench_serving_calculate_metrics") or {}
    if own and "error" not in own:
        lines += ["", "bench_serving's own calculate_metrics over its requests here: " +
                  ", ".join(f"{k} {_f(v, 4)}" for k, v in own.items()) + "."]
    elif own:
        lines += ["", f"bench_serving's calculate_metrics failed: {own['error']}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """CLI: pairs against a running server; the evidence into --out."""
    parser = argparse.ArgumentParser(prog="python -m bench.evidence.interleave", description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=32000)
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.output_len < 2:
        print("interleave: error: --pairs >= 1 and --output-len >= 2", file=sys.stderr)
        return 2
    (args.out / "raw").mkdir(parents=True, exist_ok=True)
    bench, outputs = bench_caller(args.base_url.rstrip("/"))
    with StreamingClient(args.base_url.rstrip("/"), token_timeout_s=60.0) as client:
        records = run_pairs(client, bench, args.pairs, args.input_len, args.output_len, args.vocab_size, args.warmups)
    (args.out / "raw" / "interleave.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = summarize(records)
    summary["bench_serving_calculate_metrics"] = bench_own_metrics(outputs[args.warmups:], args.tokenizer)
    summary["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    (args.out / "interleave.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "interleave.md").write_text(report(summary))
    print(report(summary))
    return 0 if summary["pairs_ok"] == summary["pairs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
