"""Side by side on ONE running server: the harness's BS=1 client vs sglang.bench_serving --max-concurrency 1.

Rounds alternate which tool goes first (ABBA), so slow drift of the machine cancels. Per round the
harness client sends N requests (ids in, `max_new_tokens`, ignore_eos, stream) and keeps every
meta_info; bench_serving runs N requests of `--dataset-name random-ids --tokenize-prompt` with the
same lengths and appends its line (with --output-details) to raw/bench_serving.jsonl. /metrics is
scraped around every round, so the server's own histograms give each tool's window separately.

    python -m bench.evidence.fidelity --tokenizer DIR --out DIR (--base-url URL | --server-cmd "CMD") \\
        [--rounds 5] [--requests 30] [--input-len 128] [--output-len 64] [--bench-python PY] [--bench-pythonpath P]

--server-cmd starts the server itself (harness.serve.server: own process group, server.log, startup milestones,
the whole group stopped at the end), on a free port appended as `--host 127.0.0.1 --port P`.

Writes OUT/report.md, OUT/summary.json, OUT/analysis.{md,json} (bench.evidence.explain), OUT/commands.txt and OUT/raw/ (harness-round-NN.json,
bench_serving.jsonl, bench_serving-round-NN.log, metrics-<tool>-round-NN-{before,after}.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import requests

from bench.evidence import explain
from harness.measure.client import RequestSample, StreamingClient, prompt_ids
from harness.measure.metrics import parse, server_side
from harness.serve.cache_dirs import cache_env, default_cache_dir
from harness.serve.server import LaunchSpec, Server, free_port

TPOT_GOAL, TTFT_GOAL = 0.02, 0.05


@dataclass(frozen=True)
class FidelityConfig:
    """One side-by-side sitting."""

    base_url: str
    tokenizer: Path
    out: Path
    rounds: int = 5
    requests: int = 30
    input_len: int = 128
    output_len: int = 64
    warmups: int = 1  # per round and tool: bench_serving's --warmup-requests default is 1
    vocab_size: int = 32000
    bench_python: str = sys.executable
    bench_pythonpath: str = ""
    token_timeout_s: float = 60.0


def _scrape_text(base_url: str) -> str:
    try:
        response = requests.get(f"{base_url}/metrics", timeout=10)
        return response.text if response.status_code == 200 else f"# HTTP {response.status_code}\n"
    except requests.RequestException as exc:
        return f"# GET /metrics failed: {exc}\n"


def _window(config: FidelityConfig, tool: str, round_no: int, before: str, after: str) -> dict[str, Any]:
    raw = config.out / "raw"
    (raw / f"metrics-{tool}-round-{round_no:02d}-before.txt").write_text(before)
    (raw / f"metrics-{tool}-round-{round_no:02d}-after.txt").write_text(after)
    try:
        return server_side(parse(before), parse(after))
    except ValueError as exc:
        return {"error": f"/metrics not parseable: {exc}"}


def harness_round(config: FidelityConfig, round_no: int) -> dict[str, Any]:
    """N requests through the harness client; every sample with its meta_info."""
    samples: list[RequestSample] = []
    with StreamingClient(config.base_url, token_timeout_s=config.token_timeout_s) as client:
        seed = 100_000 * round_no
        for k in range(config.warmups):
            client.generate(k, prompt_ids(config.input_len, config.vocab_size, seed + k), config.output_len)
        before = _scrape_text(config.base_url)
        for k in range(config.requests):
            ids = prompt_ids(config.input_len, config.vocab_size, seed + config.warmups + k)
            samples.append(client.generate(k, ids, config.output_len))
        after = _scrape_text(config.base_url)
    data = {"round": round_no, "samples": [s.to_json() for s in samples],
            "server_metrics": _window(config, "harness", round_no, before, after)}
    (config.out / "raw" / f"harness-round-{round_no:02d}.json").write_text(json.dumps(data, indent=1))
    return data


def bench_command(config: FidelityConfig, round_no: int) -> list[str]:
    url = urlparse(config.base_url)
    return [config.bench_python, "-m", "sglang.bench_serving", "--backend", "sglang", "--host", str(url.hostname),
            "--port", str(url.port), "--tokenizer", str(config.tokenizer), "--dataset-name", "random-ids",
            "--tokenize-prompt", "--random-input-len", str(config.input_len), "--random-output-len",
            str(config.output_len), "--random-range-ratio", "1", "--num-prompts", str(config.requests),
            "--max-concurrency", "1", "--warmup-requests", str(config.warmups), "--seed", str(round_no),
            "--output-file", str(config.out / "raw" / "bench_serving.jsonl"), "--output-details", "--disable-tqdm"]


def bench_round(config: FidelityConfig, round_no: int) -> dict[str, Any]:
    """One sglang.bench_serving invocation; its JSONL line (appended) is read back."""
    command = bench_command(config, round_no)
    env = {**os.environ, "PYTHONPATH": config.bench_pythonpath} if config.bench_pythonpath else dict(os.environ)
    raw = config.out / "raw"
    jsonl = raw / "bench_serving.jsonl"
    lines_before = len(jsonl.read_text().splitlines()) if jsonl.exists() else 0
    # The server's window starts after bench_serving's own warm-up only approximately: it sleeps 1 s
    # after warming up, and its interpreter start (imports) precedes both.
    before = _scrape_text(config.base_url)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800, check=False)
    elapsed = time.monotonic() - started
    after = _scrape_text(config.base_url)
    (raw / f"bench_serving-round-{round_no:02d}.log").write_text(done.stdout + done.stderr)
    with (config.out / "commands.txt").open("a") as log:
        log.write(f"# rc={done.returncode} elapsed={elapsed:.1f}s\nPYTHONPATH={shlex.quote(config.bench_pythonpath)} "
                  f"{shlex.join(['python3', *command[1:]])}\n")
    lines = jsonl.read_text().splitlines() if jsonl.exists() else []
    if done.returncode != 0 or len(lines) != lines_before + 1:
        raise RuntimeError(f"bench_serving round {round_no} failed (rc {done.returncode}): "
                           f"{(done.stdout + done.stderr)[-1500:]}")
    line = json.loads(lines[-1])
    return {"round": round_no, "line": line, "elapsed_s": elapsed,
            "server_metrics": _window(config, "bench_serving", round_no, before, after)}


def interleave_command(config: FidelityConfig) -> list[str]:
    """--design requests: the same N x rounds requests per tool, paired per request (bench.evidence.interleave)."""
    return [config.bench_python, "-m", "bench.evidence.interleave", "--base-url", config.base_url,
            "--tokenizer", str(config.tokenizer), "--out", str(config.out), "--pairs", str(config.rounds * config.requests),
            "--input-len", str(config.input_len), "--output-len", str(config.output_len),
            "--warmups", str(config.warmups), "--vocab-size", str(config.vocab_size)]


def run_interleaved(config: FidelityConfig) -> int:
    """Run the interleaved pairs under bench_serving's Python (it imports sglang.bench_serving), log it."""
    root = str(Path(__file__).resolve().parents[2])
    path = ":".join(p for p in (config.bench_pythonpath, root) if p)
    command = interleave_command(config)
    (config.out / "raw").mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path},
                          timeout=1800, check=False)
    (config.out / "raw" / "interleave.log").write_text(done.stdout + done.stderr)
    with (config.out / "commands.txt").open("a") as log:
        log.write(f"# rc={done.returncode} elapsed={time.monotonic() - started:.1f}s\n"
                  f"PYTHONPATH={shlex.quote(path)} {shlex.join(['python3', *command[1:]])}\n")
    print(done.stdout + (done.stderr[-3000:] if done.returncode else ""), file=sys.stderr)
    return done.returncode


def run(config: FidelityConfig, startup: dict[str, Any] | None = None) -> dict[str, Any]:
    """All rounds, interleaved ABBA; returns and writes the summary and the report."""
    (config.out / "raw").mkdir(parents=True, exist_ok=True)
    harness_rounds, bench_rounds = [], []
    for round_no in range(1, config.rounds + 1):
        order = ("harness", "bench") if round_no % 2 else ("bench", "harness")
        for tool in order:
            print(f"fidelity: round {round_no}/{config.rounds}: {tool}", file=sys.stderr, flush=True)
            if tool == "harness":
                harness_rounds.append(harness_round(config, round_no))
            else:
                bench_rounds.append(bench_round(config, round_no))
    summary = summarize(harness_rounds, bench_rounds, config)
    summary["server_startup"] = startup
    (config.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (config.out / "report.md").write_text(report(summary))
    explain.write(config.out)
    return summary


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _weighted(values: list[float], weights: list[int]) -> float | None:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights) if sum(weights) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def summarize(harness_rounds: list[dict[str, Any]], bench_rounds: list[dict[str, Any]],
              config: FidelityConfig) -> dict[str, Any]:
    """Medians of each tool and of the server's own timestamps, ratios harness/bench_serving."""
    ok = [s for r in harness_rounds for s in r["samples"] if s["ok"]]
    metas = [s["meta_info"] or {} for s in ok]
    lines = [r["line"] for r in bench_rounds]
    b_ok = [(ttft, itls, n) for line in lines for ttft, itls, n, err in
            zip(line["ttfts"], line["itls"], line["output_lens"], line["errors"], strict=True) if not err]
    done = [(s["e2e_ms"] - s["ttft_ms"]) / (s["completion_tokens"] - 1) for s in ok if s["completion_tokens"] > 1]
    first_to_last = [s["tpot_ms"] for s in ok if s["tpot_ms"] is not None]
    harness = {
        "requests": len(ok), "failed": sum(len(r["samples"]) for r in harness_rounds) - len(ok),
        "ttft_ms": _median([s["ttft_ms"] for s in ok]), "ttft_ms_mean": _mean([s["ttft_ms"] for s in ok]),
        "tpot_ms": _median(first_to_last), "tpot_ms_mean": _mean(first_to_last),
        # bench_serving's TPOT definition applied to the harness's own requests: up to the [DONE] chunk.
        "tpot_ms_done_included": _median(done), "tpot_ms_done_included_mean": _mean(done),
        "e2e_ms": _median([s["e2e_ms"] for s in ok]), "e2e_ms_mean": _mean([s["e2e_ms"] for s in ok]),
    }
    b_tpot = [sum(i) * 1000 / (n - 1) for _t, i, n in b_ok if n > 1]
    weights = [line["completed"] for line in lines]
    bench = {
        "requests": len(b_ok), "failed": sum(len(line["errors"]) for line in lines) - len(b_ok),
        "ttft_ms": _median([t * 1000 for t, _i, _n in b_ok]), "ttft_ms_mean": _mean([t * 1000 for t, _i, _n in b_ok]),
        # Per request, first to last text chunk: the harness's definition (its TTFT and itls are per request).
        "tpot_ms": _median(b_tpot), "tpot_ms_first_to_last": _median(b_tpot), "tpot_ms_mean": _mean(b_tpot),
        # Its own definition (to [DONE]) is per request only inside bench_serving: --output-details keeps no
        # latency, so pool its lines' means (exact); a median of round medians is one round's value, not pooled.
        "tpot_ms_mean_as_defined": _weighted([line["mean_tpot_ms"] for line in lines], weights),
        "tpot_ms_median_of_round_medians": _median([line["median_tpot_ms"] for line in lines]),
        "e2e_ms_mean": _weighted([line["mean_e2e_latency_ms"] for line in lines], weights),
        "e2e_ms_median_of_round_medians": _median([line["median_e2e_latency_ms"] for line in lines]),
        "interpreter_round_s": _median([r["elapsed_s"] for r in bench_rounds]),
    }
    # sglang 0.5.16 meta_info (with --enable-metrics): wall-clock stamps on the last chunk of each request.
    server_meta = {
        "ttft_ms_received_to_prefill_done": _median([(m["prefill_finished_time"] - m["request_received_ts"]) * 1000
                                                     for m in metas if _has(m, "prefill_finished_time",
                                                                            "request_received_ts")]),
        "tpot_ms_from_decode_throughput": _median([1000 / m["decode_throughput"] for m in metas
                                                   if _has(m, "decode_throughput") and m["decode_throughput"] > 0]),
        "e2e_ms": _median([m["e2e_latency"] * 1000 for m in metas if _has(m, "e2e_latency")]),
        "requests_with_timestamps": sum(1 for m in metas if _has(m, "request_received_ts")),
    }
    windows = {tool: _pool([r["server_metrics"] for r in rounds]) for tool, rounds in
               (("harness", harness_rounds), ("bench_serving", bench_rounds))}
    return {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
        "harness": harness, "bench_serving": bench, "server_meta_info": server_meta, "server_metrics": windows,
        "ratios": {
            "ttft": _ratio(harness["ttft_ms"], bench["ttft_ms"]),
            "ttft_mean": _ratio(harness["ttft_ms_mean"], bench["ttft_ms_mean"]),
            "tpot_first_to_last": _ratio(harness["tpot_ms"], bench["tpot_ms"]),
            "tpot_first_to_last_mean": _ratio(harness["tpot_ms_mean"], bench["tpot_ms_mean"]),
            "tpot_bench_definition_mean": _ratio(harness["tpot_ms_done_included_mean"], bench["tpot_ms_mean_as_defined"]),
            "e2e_mean": _ratio(harness["e2e_ms_mean"], bench["e2e_ms_mean"]),
        },
        "per_round": [{"round": h["round"],
                       "harness_ttft_ms": _median([s["ttft_ms"] for s in h["samples"] if s["ok"]]),
                       "harness_tpot_ms": _median([s["tpot_ms"] for s in h["samples"] if s["ok"] and s["tpot_ms"]]),
                       "bench_ttft_ms": b["line"]["median_ttft_ms"],
                       "bench_tpot_ms": _median([sum(i) * 1000 / (n - 1) for i, n, e in zip(
                           b["line"]["itls"], b["line"]["output_lens"], b["line"]["errors"], strict=True) if not e and n > 1]),
                       "bench_tpot_ms_printed": b["line"]["median_tpot_ms"],
                       "server_itl_ms_mean": {"harness": h["server_metrics"].get("itl_ms_mean"),
                                              "bench_serving": b["server_metrics"].get("itl_ms_mean")}}
                      for h, b in zip(harness_rounds, bench_rounds, strict=True)],
    }


def _has(meta: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(meta.get(k), (int, float)) for k in keys)


def _pool(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Request-weighted means of the per-round /metrics windows."""
    good = [w for w in windows if not w.get("error") and w.get("requests")]
    total = sum(w["requests"] for w in good)
    out: dict[str, Any] = {"requests": total, "errors": [w["error"] for w in windows if w.get("error")]}
    for key in ("ttft_ms_mean", "itl_ms_mean", "e2e_ms_mean"):
        parts = [(w[key], w["requests"]) for w in good if w.get(key) is not None]
        out[key] = sum(v * n for v, n in parts) / sum(n for _v, n in parts) if parts else None
    return out


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(ratio: float | None, goal: float) -> str:
    if ratio is None:
        return "n/a"
    return f"{'within' if abs(ratio - 1) <= goal else 'OUTSIDE'} {goal:.0%} ({ratio - 1:+.2%})"


def report(summary: dict[str, Any]) -> str:
    """report.md: medians per tool, the server's own view, ratios and the goals."""
    h, b, m, w, r = (summary[k] for k in ("harness", "bench_serving", "server_meta_info", "server_metrics", "ratios"))
    c = summary["config"]
    lines = [
        "# Harness vs sglang.bench_serving on one server",
        "",
        f"Server {c['base_url']}; {c['rounds']} interleaved rounds (ABBA) x {c['requests']} requests per tool, "
        f"{c['input_len']} prompt ids / {c['output_len']} new tokens, ignore_eos, BS=1 "
        f"(bench_serving --max-concurrency 1); {c['warmups']} warm-up request(s) per round and tool.",
        "",
        "| statistic (ms), pooled over requests | harness | bench_serving | harness / bench_serving | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| TTFT | {_f(h['ttft_ms'])} | {_f(b['ttft_ms'])} | {_f(r['ttft'], 4)} | {_verdict(r['ttft'], TTFT_GOAL)} |",
        f"| TTFT, mean | {_f(h.get('ttft_ms_mean'))} | {_f(b.get('ttft_ms_mean'))} | {_f(r.get('ttft_mean'), 4)} "
        f"| {_verdict(r.get('ttft_mean'), TTFT_GOAL)} |",
        f"| TPOT, first to last token (both per request) | {_f(h['tpot_ms'])} | {_f(b.get('tpot_ms_first_to_last'))} "
        f"| {_f(r.get('tpot_first_to_last'), 4)} | {_verdict(r.get('tpot_first_to_last'), TPOT_GOAL)} |",
        f"| TPOT, first to last token, mean | {_f(h.get('tpot_ms_mean'))} | {_f(b.get('tpot_ms_mean'))} "
        f"| {_f(r.get('tpot_first_to_last_mean'), 4)} | {_verdict(r.get('tpot_first_to_last_mean'), TPOT_GOAL)} |",
        f"| TPOT as bench_serving defines it (to `[DONE]`), mean | {_f(h.get('tpot_ms_done_included_mean'))} "
        f"| {_f(b.get('tpot_ms_mean_as_defined'))} | {_f(r.get('tpot_bench_definition_mean'), 4)} "
        f"| {_verdict(r.get('tpot_bench_definition_mean'), TPOT_GOAL)} |",
        f"| e2e (send to [DONE]), mean | {_f(h.get('e2e_ms_mean'))} | {_f(b.get('e2e_ms_mean'))} | {_f(r.get('e2e_mean'), 4)} | |",
        "",
        "Medians and means are over all requests of all rounds. bench_serving's per-round printed median TPOT "
        f"(median of the rounds': {_f(b.get('tpot_ms_median_of_round_medians'))} ms) is one round's value, not "
        "pooled; its per-request latency is not in --output-details, so its own TPOT is pooled as a mean "
        "(exact). analysis.md (python -m bench.evidence.explain) splits every difference into "
        "definition, aggregation, server drift and client.",
        "",
        f"Requests: harness {h['requests']} ok / {h['failed']} failed; bench_serving {b['requests']} ok / {b['failed']} failed.",
        "",
        "## The server's own view",
        "",
        "| server-side | during harness rounds | during bench_serving rounds |",
        "| --- | --- | --- |",
        f"| /metrics TTFT mean (ms) | {_f(w['harness']['ttft_ms_mean'])} | {_f(w['bench_serving']['ttft_ms_mean'])} |",
        f"| /metrics ITL mean (ms) | {_f(w['harness']['itl_ms_mean'])} | {_f(w['bench_serving']['itl_ms_mean'])} |",
        f"| /metrics e2e mean (ms) | {_f(w['harness']['e2e_ms_mean'])} | {_f(w['bench_serving']['e2e_ms_mean'])} |",
        f"| requests in the windows | {w['harness']['requests']} | {w['bench_serving']['requests']} |",
        "",
        "meta_info of the harness's requests (sglang 0.5.16 with --enable-metrics, wall clock): "
        f"received -> prefill finished median {_f(m['ttft_ms_received_to_prefill_done'])} ms; "
        f"TPOT from decode_throughput median {_f(m['tpot_ms_from_decode_throughput'])} ms; "
        f"e2e_latency median {_f(m['e2e_ms'])} ms ({m['requests_with_timestamps']} requests carried timestamps).",
        "",
        "The bench_serving windows include its warm-up request and its 1 s sleep, not its interpreter start.",
        "",
        "## What each tool counts",
        "",
        "- First token: harness = first SSE chunk whose completion_tokens grew; bench_serving (--backend sglang) "
        "= first chunk whose `text` is non-empty. With a tokenizer on the server both are the first token's chunk.",
        "- TPOT: harness = (last token chunk - first token chunk) / (n - 1); bench_serving = (arrival of the "
        "`[DONE]` chunk - TTFT) / (n - 1), so its TPOT carries the last gap to `[DONE]` / (n - 1).",
        "- HTTP path: both POST /generate with input_ids (bench_serving --tokenize-prompt), stream: true; "
        "harness: requests + urllib3 read1 on one kept-alive connection, perf_counter_ns per read; "
        "bench_serving: a new aiohttp session per request, line iteration in an asyncio loop, perf_counter.",
        "",
        "## Per round (medians, ms)",
        "",
        "| round | harness TTFT | bench_serving TTFT | harness TPOT | bench_serving TPOT (printed) "
        "| server ITL mean, harness / bench_serving window |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {p['round']} | {_f(p['harness_ttft_ms'])} | {_f(p['bench_ttft_ms'])} | {_f(p['harness_tpot_ms'])} "
              f"| {_f(p['bench_tpot_ms'])} ({_f(p.get('bench_tpot_ms_printed'))}) "
              f"| {_f(p.get('server_itl_ms_mean', {}).get('harness'))} / {_f(p.get('server_itl_ms_mean', {}).get('bench_serving'))} |"
              for p in summary["per_round"]]
    startup = summary.get("server_startup")
    if startup:
        from harness.store.timing import startup_split

        split = startup_split(startup)
        lines += ["", "## Server startup (this sitting's one start)", "",
                  f"Healthy after {_f(split.total_s, 1)} s: weights {_f(split.weights_s, 1)} s, KV pool "
                  f"{_f(split.kv_pool_s, 1)} s, " + "".join(f"capture {n} {s:.1f} s, " for n, s in split.captures)
                  + f"other {_f(split.other_s, 1)} s (milestones in summary.json)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence.fidelity", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base-url", help="a server that is already running")
    where.add_argument("--server-cmd", help="start this server (host and port are appended) and stop it at the end")
    parser.add_argument("--startup-timeout", type=float, default=900.0)
    parser.add_argument("--tokenizer", type=Path, required=True, help="the tokenizer dir bench_serving loads")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--warmups", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--bench-python", default=sys.executable)
    parser.add_argument("--bench-pythonpath", default="", help="PYTHONPATH for bench_serving (its site and stubs)")
    parser.add_argument("--design", choices=("rounds", "requests"), default="rounds",
                        help="rounds: ABBA rounds of --requests per tool; requests: rounds x requests pairs, "
                             "one prompt through both tools back to back (bench.evidence.interleave)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests, args.input_len, args.output_len) < 1 or args.output_len < 2:
        print("fidelity: error: --rounds, --requests, --input-len >= 1 and --output-len >= 2", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    server = None
    base_url = (args.base_url or "").rstrip("/")
    startup: dict[str, Any] | None = None
    if args.server_cmd:
        port = free_port("127.0.0.1")
        cache = default_cache_dir()
        spec = LaunchSpec(argv=(*shlex.split(args.server_cmd), "--host", "127.0.0.1", "--port", str(port)),
                          env=tuple(cache_env(cache).items()) if cache else (), host="127.0.0.1", port=port,
                          log_path=args.out / "server.log", startup_timeout_s=args.startup_timeout, stop_grace_s=15)
        (args.out / "commands.txt").open("a").write(f"# server\n{shlex.join(spec.argv)}\n")
        server = Server(spec)
        server.start()
        result = server.wait_ready()
        startup = result.to_json()
        print(f"fidelity: server {result.outcome} after {result.elapsed_s:.1f} s", file=sys.stderr, flush=True)
        if result.outcome != "ok":
            server.stop()
            (args.out / "summary.json").write_text(json.dumps({"server_startup": startup}, indent=2) + "\n")
            print(f"fidelity: error: server did not start: {result.message}", file=sys.stderr)
            return 1
        base_url = spec.base_url
    config = FidelityConfig(base_url=base_url, tokenizer=args.tokenizer, out=args.out,
                            rounds=args.rounds, requests=args.requests, input_len=args.input_len,
                            output_len=args.output_len, warmups=args.warmups, vocab_size=args.vocab_size,
                            bench_python=args.bench_python, bench_pythonpath=args.bench_pythonpath)
    if args.design == "requests":
        try:
            rc = run_interleaved(config)
        finally:
            if server is not None:
                shutdown = server.stop()
                print(f"fidelity: server stopped ({shutdown.signal}, survivors {list(shutdown.survivors)})", file=sys.stderr)
        if startup is not None:
            (args.out / "startup.json").write_text(json.dumps(startup, indent=2) + "\n")
        return rc
    try:
        summary = run(config, startup)
    except RuntimeError as exc:
        print(f"fidelity: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            shutdown = server.stop()
            print(f"fidelity: server stopped ({shutdown.signal}, survivors {list(shutdown.survivors)})", file=sys.stderr)
    print(report(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
