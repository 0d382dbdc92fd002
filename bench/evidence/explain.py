"""Explain a fidelity sitting's harness-vs-bench_serving differences from its raw files (issue #16).

    python -m bench.evidence.explain EVIDENCE_DIR [--boot 2000] [--seed 0]

Reads EVIDENCE_DIR/raw (harness-round-NN.json, bench_serving.jsonl with --output-details,
metrics-<tool>-round-NN-{before,after}.txt) and writes EVIDENCE_DIR/analysis.json and analysis.md:
bench_serving's own aggregates recomputed from its per-request fields (sglang 0.5.16
`sglang/benchmark/serving.py`: TTFT = first chunk with non-empty `text`; ITL = gaps between text chunks
split over the new completion_tokens; TPOT = (latency - ttft) / (output_len - 1), latency taken at the
last SSE line, `[DONE]`; output_len = the last text chunk's completion_tokens), each difference split
into definition, aggregation, server drift (the server's own /metrics and meta_info) and client.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.measure.metrics import parse, server_side

MS = 1000.0


@dataclass(frozen=True)
class HarnessReq:
    """One harness-client request: client times and the server's own meta_info times (ms)."""

    ttft: float
    tpot: float  # first to last token chunk / (n - 1)
    tpot_done: float  # bench_serving's definition: ([DONE] - ttft) / (n - 1)
    e2e: float
    n: int
    server_ttft: float | None  # tokenizer manager: request received -> first chunk
    server_tpot: float | None  # 1 / meta_info.decode_throughput: first -> last token, server side


@dataclass(frozen=True)
class BenchReq:
    """One bench_serving request from --output-details (ms)."""

    ttft: float
    tpot: float  # sum(itl) / (output_len - 1): first to last text chunk
    n: int
    itl_count: int


@dataclass(frozen=True)
class Round:
    """One ABBA round: both tools' requests, bench_serving's line and the two /metrics windows."""

    no: int
    harness_first: bool
    harness: list[HarnessReq]
    bench: list[BenchReq]
    line: dict[str, Any]
    harness_window: dict[str, Any]
    bench_window: dict[str, Any]


def _server_ttft(meta: dict[str, Any]) -> float | None:
    """Server TTFT from meta_info: first_token_latency, else received -> first chunk sent (sglang 0.5.16)."""
    if isinstance(meta.get("first_token_latency"), (int, float)):
        return float(meta["first_token_latency"]) * MS
    sent, got, done = (meta.get(k) for k in ("response_sent_to_client_ts", "request_received_ts",
                                             "request_finished_ts"))
    if all(isinstance(v, (int, float)) for v in (sent, got, done)) and sent < done:
        return (sent - got) * MS
    return None


def harness_req(sample: dict[str, Any]) -> HarnessReq:
    """A harness sample (RequestSample.to_json) with its server-side times."""
    meta = sample.get("meta_info") or {}
    n = int(sample["completion_tokens"])
    thr = meta.get("decode_throughput")
    return HarnessReq(ttft=sample["ttft_ms"], tpot=sample["tpot_ms"],
                      tpot_done=(sample["e2e_ms"] - sample["ttft_ms"]) / (n - 1), e2e=sample["e2e_ms"], n=n,
                      server_ttft=_server_ttft(meta),
                      server_tpot=MS / thr if isinstance(thr, (int, float)) and thr > 0 else None)


def bench_reqs(line: dict[str, Any]) -> list[BenchReq]:
    """The successful requests of one bench_serving line."""
    return [BenchReq(ttft=t * MS, tpot=sum(i) * MS / (n - 1), n=n, itl_count=len(i))
            for t, i, n, err in zip(line["ttfts"], line["itls"], line["output_lens"], line["errors"], strict=True)
            if not err and n > 1]


def _window(raw: Path, tool: str, no: int) -> dict[str, Any]:
    before, after = (parse((raw / f"metrics-{tool}-round-{no:02d}-{p}.txt").read_text()) for p in ("before", "after"))
    return server_side(before, after)


def load(evidence: Path) -> list[Round]:
    """All rounds of a sitting; round k is harness-first when k is odd (fidelity.run's ABBA)."""
    raw = evidence / "raw"
    lines = [json.loads(x) for x in (raw / "bench_serving.jsonl").read_text().splitlines() if x.strip()]
    rounds = []
    for no, line in enumerate(lines, 1):
        data = json.loads((raw / f"harness-round-{no:02d}.json").read_text())
        ok = [harness_req(s) for s in data["samples"] if s["ok"] and s["completion_tokens"] > 1]
        rounds.append(Round(no=no, harness_first=no % 2 == 1, harness=ok, bench=bench_reqs(line), line=line,
                            harness_window=_window(raw, "harness", no), bench_window=_window(raw, "bench_serving", no)))
    return rounds


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values)


def recompute_bench(line: dict[str, Any]) -> dict[str, Any]:
    """bench_serving's aggregates from its own per-request fields, beside what it printed."""
    reqs = bench_reqs(line)
    ns = {r.n for r in reqs}
    mean_ttft, mean_e2e = line["mean_ttft_ms"], line["mean_e2e_latency_ms"]
    # TPOT_i = (latency_i - ttft_i) / (n - 1); with one n, mean TPOT = (mean e2e - mean ttft) / (n - 1).
    n = next(iter(ns)) if len(ns) == 1 else None
    itls = [x * MS for i, e in zip(line["itls"], line["errors"], strict=True) if not e for x in i]
    done_tail = mean_e2e - mean_ttft - _mean([r.tpot * (r.n - 1) for r in reqs])
    return {
        "requests": len(reqs), "output_lens": sorted(ns),
        "first_text_chunk_is_one_token": all(r.itl_count == r.n - 1 for r in reqs),
        "median_ttft_ms": {"reported": line["median_ttft_ms"], "recomputed": _med([r.ttft for r in reqs])},
        "mean_ttft_ms": {"reported": mean_ttft, "recomputed": _mean([r.ttft for r in reqs])},
        "mean_itl_ms": {"reported": line["mean_itl_ms"], "recomputed": _mean(itls)},
        "median_itl_ms": {"reported": line["median_itl_ms"], "recomputed": float(np.median(itls))},
        "mean_tpot_ms": {"reported": line["mean_tpot_ms"],
                         "recomputed": (mean_e2e - mean_ttft) / (n - 1) if n else None},
        "median_tpot_ms": {"reported": line["median_tpot_ms"], "first_to_last": _med([r.tpot for r in reqs])},
        "mean_tpot_first_to_last_ms": _mean([r.tpot for r in reqs]),
        "done_tail_ms_mean": done_tail, "done_tail_per_token_ms": done_tail / (n - 1) if n else None,
        "output_tokens": line["total_output_tokens"],
        "output_tokens_retokenized": line.get("total_output_tokens_retokenized"),
    }


def _ratio_ci(h: list[list[float]], b: list[list[float]], stat: str, boot: int, seed: int) -> list[float]:
    """95% bootstrap CI of stat(harness) / stat(bench), resampling requests within each round and tool."""
    rng = np.random.default_rng(seed)
    fn = np.median if stat == "median" else np.mean
    out = np.empty(boot)
    for k in range(boot):
        hs = np.concatenate([rng.choice(np.asarray(x), len(x)) for x in h])
        bs = np.concatenate([rng.choice(np.asarray(x), len(x)) for x in b])
        out[k] = fn(hs) / fn(bs)
    return [float(v) for v in np.percentile(out, [2.5, 97.5])]


def _per_round(r: Round) -> dict[str, Any]:
    """One round's client and server numbers for both tools, and the paired ratios."""
    hw, bw = r.harness_window, r.bench_window
    h_tpot, b_tpot = _mean([x.tpot for x in r.harness]), _mean([x.tpot for x in r.bench])
    h_ttft, b_ttft = _mean([x.ttft for x in r.harness]), _mean([x.ttft for x in r.bench])
    server_itl = (hw.get("itl_ms_mean"), bw.get("itl_ms_mean"))
    server_ttft = (hw.get("ttft_ms_mean"), bw.get("ttft_ms_mean"))
    have_itl, have_ttft = None not in server_itl, None not in server_ttft
    return {
        "round": r.no, "order": "harness, bench_serving" if r.harness_first else "bench_serving, harness",
        "harness_ttft_median": _med([x.ttft for x in r.harness]), "bench_ttft_median": _med([x.ttft for x in r.bench]),
        "harness_ttft_mean": h_ttft, "bench_ttft_mean": b_ttft,
        "server_ttft_mean": {"harness_window": server_ttft[0], "bench_window": server_ttft[1]},
        "client_minus_server_ttft": {"harness": h_ttft - server_ttft[0] if have_ttft else None,
                                     "bench_serving": b_ttft - server_ttft[1] if have_ttft else None},
        "harness_tpot_median": _med([x.tpot for x in r.harness]), "bench_tpot_median": _med([x.tpot for x in r.bench]),
        "bench_tpot_median_reported": r.line["median_tpot_ms"],
        "harness_tpot_mean": h_tpot, "bench_tpot_mean": b_tpot,
        "server_itl_mean": {"harness_window": server_itl[0], "bench_window": server_itl[1]},
        "tpot_ratio_client": h_tpot / b_tpot,
        "tpot_ratio_server": server_itl[0] / server_itl[1] if have_itl else None,
        "tpot_ratio_client_over_server": (h_tpot / b_tpot) / (server_itl[0] / server_itl[1]) if have_itl else None,
        "client_over_server_itl": {"harness": h_tpot / server_itl[0] if have_itl else None,
                                   "bench_serving": b_tpot / server_itl[1] if have_itl else None},
        "window_requests": {"harness": hw.get("requests"), "bench_serving": bw.get("requests")},
    }


def _geo(values: list[float]) -> float:
    return math.exp(_mean([math.log(v) for v in values]))


def _q(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def harness_vs_server(rounds: list[Round]) -> dict[str, Any]:
    """Per request (harness only: it keeps meta_info): client minus the server's own timestamps."""
    reqs = [x for r in rounds for x in r.harness if x.server_ttft is not None and x.server_tpot is not None]
    if not reqs:
        return {"requests": 0}
    ttft_gap = [x.ttft - x.server_ttft for x in reqs if x.server_ttft is not None]
    tpot_gap = [x.tpot - x.server_tpot for x in reqs if x.server_tpot is not None]
    server_tpot = [x.server_tpot for x in reqs if x.server_tpot is not None]
    server_ttft = [x.server_ttft for x in reqs if x.server_ttft is not None]
    return {
        "requests": len(reqs),
        "client_minus_server_ttft_ms": {"median": _med(ttft_gap), "p10": _q(ttft_gap, 10), "p90": _q(ttft_gap, 90)},
        "client_minus_server_tpot_ms": {"median": _med(tpot_gap), "p10": _q(tpot_gap, 10), "p90": _q(tpot_gap, 90)},
        "server_ttft_ms": {"p10": _q(server_ttft, 10), "median": _med(server_ttft), "p90": _q(server_ttft, 90)},
        "server_tpot_ms": {"p10": _q(server_tpot, 10), "median": _med(server_tpot), "p90": _q(server_tpot, 90)},
    }


def analyse(rounds: list[Round], boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every number analysis.md states, as one JSON-able dict."""
    h_all = [x for r in rounds for x in r.harness]
    b_all = [x for r in rounds for x in r.bench]
    per_round = [_per_round(r) for r in rounds]
    bench = [recompute_bench(r.line) for r in rounds]
    completed = [r.line["completed"] for r in rounds]
    h_tpot, b_tpot = [[x.tpot for x in r.harness] for r in rounds], [[x.tpot for x in r.bench] for r in rounds]
    h_ttft, b_ttft = [[x.ttft for x in r.harness] for r in rounds], [[x.ttft for x in r.bench] for r in rounds]
    double = [p["tpot_ratio_client_over_server"] for p in per_round if p["tpot_ratio_client_over_server"]]
    gaps = [p["client_minus_server_ttft"] for p in per_round if p["client_minus_server_ttft"]["harness"] is not None]
    drift_adj = [p["harness_ttft_mean"] - p["server_ttft_mean"]["harness_window"] + p["server_ttft_mean"]["bench_window"]
                 for p in per_round if p["server_ttft_mean"]["harness_window"] is not None]
    bench_mean_tpot = sum(b["mean_tpot_ms"]["reported"] * c for b, c in zip(bench, completed, strict=True)) / sum(completed)
    h_done = _mean([x.tpot_done for x in h_all])
    return {
        "rounds": len(rounds), "requests": {"harness": len(h_all), "bench_serving": len(b_all)},
        "bench_serving_recomputed": bench,
        "aggregation": {
            "bench_tpot_median_of_round_medians": _med([r.line["median_tpot_ms"] for r in rounds]),
            "bench_tpot_median_pooled_first_to_last": _med([x.tpot for x in b_all]),
            "bench_tpot_mean_pooled_as_defined": bench_mean_tpot,
            "bench_tpot_mean_pooled_first_to_last": _mean([x.tpot for x in b_all]),
            "harness_tpot_median_pooled": _med([x.tpot for x in h_all]),
            "harness_tpot_mean_pooled": _mean([x.tpot for x in h_all]),
            "harness_tpot_done_mean_pooled": h_done,
            "harness_done_tail_per_token_ms": _mean([x.tpot_done - x.tpot for x in h_all]),
            "ratio_tpot_mean_bench_definition": h_done / bench_mean_tpot,
        },
        "ttft": {
            "harness_median": _med([x.ttft for x in h_all]), "bench_median": _med([x.ttft for x in b_all]),
            "harness_mean": _mean([x.ttft for x in h_all]), "bench_mean": _mean([x.ttft for x in b_all]),
            "ratio_median": _med([x.ttft for x in h_all]) / _med([x.ttft for x in b_all]),
            "ratio_median_ci95": _ratio_ci(h_ttft, b_ttft, "median", boot, seed),
            "ratio_mean": _mean([x.ttft for x in h_all]) / _mean([x.ttft for x in b_all]),
            "client_minus_server_mean": {"harness": _mean([g["harness"] for g in gaps]) if gaps else None,
                                         "bench_serving": _mean([g["bench_serving"] for g in gaps]) if gaps else None},
            "client_overhead_diff_per_round": [g["harness"] - g["bench_serving"] for g in gaps],
            "ratio_mean_drift_corrected": _mean(drift_adj) / _mean([p["bench_ttft_mean"] for p in per_round])
            if drift_adj else None,
        },
        "tpot_first_to_last": {
            "harness_median": _med([x.tpot for x in h_all]), "bench_median": _med([x.tpot for x in b_all]),
            "ratio_median": _med([x.tpot for x in h_all]) / _med([x.tpot for x in b_all]),
            "ratio_median_ci95": _ratio_ci(h_tpot, b_tpot, "median", boot, seed),
            "ratio_mean": _mean([x.tpot for x in h_all]) / _mean([x.tpot for x in b_all]),
            "ratio_mean_ci95": _ratio_ci(h_tpot, b_tpot, "mean", boot, seed),
            "paired_round_ratios": [p["tpot_ratio_client"] for p in per_round],
            "paired_round_ratio_geomean": _geo([p["tpot_ratio_client"] for p in per_round]),
            "server_round_ratios": [p["tpot_ratio_server"] for p in per_round],
            "client_over_server_round_ratios": double,
            "client_over_server_geomean": _geo(double) if double else None,
            "server_ratio_pooled": _mean([p["server_itl_mean"]["harness_window"] for p in per_round])
            / _mean([p["server_itl_mean"]["bench_window"] for p in per_round]) if double else None,
            "round_medians_range": {"harness": [min(map(_med, h_tpot)), max(map(_med, h_tpot))],
                                    "bench_serving": [min(map(_med, b_tpot)), max(map(_med, b_tpot))]},
        },
        "harness_vs_server_per_request": harness_vs_server(rounds),
        "per_round": per_round,
        "bootstrap": {"resamples": boot, "seed": seed, "scheme": "requests within (round, tool)"},
    }


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio - 1:+.2%}"


def _ci(pair: list[float]) -> str:
    return f"[{pair[0]:.3f}, {pair[1]:.3f}]"


def _recompute_md(a: dict[str, Any]) -> list[str]:
    """bench_serving's printed aggregates against the same numbers from its per-request fields."""
    rows = ["| round | median TTFT printed / recomputed | mean TPOT printed / (mean e2e - mean TTFT)/(n-1) "
            "| median TPOT printed / first-to-last | [DONE] tail (ms, per token) | 1st text chunk = 1 token "
            "| tokens / retokenized |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for k, b in enumerate(a["bench_serving_recomputed"], 1):
        rows.append(f"| {k} | {_f(b['median_ttft_ms']['reported'], 4)} / {_f(b['median_ttft_ms']['recomputed'], 4)} "
                    f"| {_f(b['mean_tpot_ms']['reported'], 5)} / {_f(b['mean_tpot_ms']['recomputed'], 5)} "
                    f"| {_f(b['median_tpot_ms']['reported'], 4)} / {_f(b['median_tpot_ms']['first_to_last'], 4)} "
                    f"| {_f(b['done_tail_ms_mean'])} ({_f(b['done_tail_per_token_ms'], 4)}) "
                    f"| {'yes' if b['first_text_chunk_is_one_token'] else 'NO'} "
                    f"| {b['output_tokens']} / {b['output_tokens_retokenized']} |")
    return rows


def _round_md(a: dict[str, Any]) -> list[str]:
    """Per round, paired: each tool's client means beside the server's own /metrics window means."""
    rows = ["| round | order | TTFT mean H / B | server TTFT H / B window | client - server H / B "
            "| TPOT mean H / B | server ITL H / B window | client ratio | server ratio | client / server |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for p in a["per_round"]:
        s, g, i = p["server_ttft_mean"], p["client_minus_server_ttft"], p["server_itl_mean"]
        rows.append(f"| {p['round']} | {p['order']} | {_f(p['harness_ttft_mean'])} / {_f(p['bench_ttft_mean'])} "
                    f"| {_f(s['harness_window'])} / {_f(s['bench_window'])} | {_f(g['harness'])} / {_f(g['bench_serving'])} "
                    f"| {_f(p['harness_tpot_mean'], 4)} / {_f(p['bench_tpot_mean'], 4)} "
                    f"| {_f(i['harness_window'], 4)} / {_f(i['bench_window'], 4)} | {_f(p['tpot_ratio_client'], 4)} "
                    f"| {_f(p['tpot_ratio_server'], 4)} | {_f(p['tpot_ratio_client_over_server'], 4)} |")
    return rows


def _table_md(a: dict[str, Any]) -> list[str]:
    """The explanation table: each reported difference and where it comes from."""
    g, t, tt, s = a["aggregation"], a["tpot_first_to_last"], a["ttft"], a["harness_vs_server_per_request"]
    tails = [b["done_tail_per_token_ms"] for b in a["bench_serving_recomputed"] if b["done_tail_per_token_ms"]]
    diff = tt["client_overhead_diff_per_round"]
    at_least = sum(b["median_tpot_ms"]["reported"] >= b["median_tpot_ms"]["first_to_last"]
                   for b in a["bench_serving_recomputed"])
    ttft_p = s.get("server_ttft_ms", {})
    rows = ["| difference | kind | size | evidence |", "| --- | --- | --- | --- |",
            f"| bench_serving TPOT as a median of round medians {_f(g['bench_tpot_median_of_round_medians'])} vs its first-to-last "
            f"{_f(g['bench_tpot_median_pooled_first_to_last'])} | aggregation (harness report) | "
            f"{_pct(g['bench_tpot_median_of_round_medians'] / g['bench_tpot_median_pooled_first_to_last'])} | the first "
            "is the median of the rounds' printed medians (one round's value), the second the median over all "
            f"requests; the printed median is >= first-to-last in {at_least} of {a['rounds']} rounds |",
            f"| bench_serving TPOT counts the gap to `[DONE]` | definition | +{_f(min(tails), 4)}..+{_f(max(tails), 4)} "
            f"ms/token (harness: +{_f(g['harness_done_tail_per_token_ms'], 4)}) | mean e2e - mean TTFT - mean sum(itl) |"
            if tails else "| [DONE] tail | definition | - | - |",
            "| first token: text chunk vs completion_tokens | definition | "
            f"{'0' if all(b['first_text_chunk_is_one_token'] for b in a['bench_serving_recomputed']) else 'NOT 0'} "
            "| len(itl) = output_len - 1 for every bench_serving request means its first text chunk carried 1 token |",
            "| retokenization (word-level tokenizer) | definition | "
            f"{'0' if all(b['output_tokens'] == b['output_tokens_retokenized'] for b in a['bench_serving_recomputed']) else 'see table'} "
            "| total_output_tokens vs retokenized; TPOT uses completion_tokens, never the retokenized count |",
            f"| TPOT first-to-last, pooled median {_f(t['ratio_median'], 4)} / mean {_f(t['ratio_mean'], 4)} | server "
            f"drift | paired round ratios {', '.join(_f(v, 3) for v in t['paired_round_ratios'])}; the server's own "
            f"ITL ratios {', '.join(_f(v, 3) for v in t['server_round_ratios'])} | /metrics ITL per window |",
            f"| TPOT after the server's own ratio (client / server) | client | "
            f"{_pct(t['client_over_server_geomean'])} (rounds {', '.join(_f(v, 4) for v in t['client_over_server_round_ratios'])}) "
            "| what remains: the two HTTP clients |",
            f"| TTFT pooled median {_f(tt['ratio_median'], 4)} (CI {_ci(tt['ratio_median_ci95'])}) vs mean "
            f"{_f(tt['ratio_mean'], 4)} | server drift + statistic | the server's own TTFT (meta_info) spans p10 "
            f"{_f(ttft_p.get('p10'))} .. p90 {_f(ttft_p.get('p90'))} ms | a median of a wide, drifting mix |",
            f"| TTFT client overhead (client mean - server /metrics mean) | client | harness "
            f"{_f(tt['client_minus_server_mean']['harness'])} vs bench_serving {_f(tt['client_minus_server_mean']['bench_serving'])} "
            f"ms: {_f(_mean(diff)) if diff else '-'} ms (rounds {', '.join(_f(v, 2) for v in diff)}); drift-corrected "
            f"TTFT ratio {_f(tt['ratio_mean_drift_corrected'], 4)} | bench_serving's window also holds its warm-up "
            "request (see caveats) |",
            ]
    return rows


def _summary_md(a: dict[str, Any]) -> list[str]:
    """Four lines: definitional, aggregation, server drift, client (what is left)."""
    g, t, tt = a["aggregation"], a["tpot_first_to_last"], a["ttft"]
    diff = tt["client_overhead_diff_per_round"]
    done = g["bench_tpot_mean_pooled_as_defined"] / g["bench_tpot_mean_pooled_first_to_last"]
    return [
        f"- Definitional: bench_serving's TPOT runs to `[DONE]`: {_pct(done)} of its TPOT (harness alike: "
        f"{_pct(g['harness_tpot_done_mean_pooled'] / g['harness_tpot_mean_pooled'])}); first token and retokenization: "
        "0 (table below).",
        f"- Aggregation: bench_serving's median of round medians (report.md's TPOT before the fix) vs over requests: "
        f"{_pct(g['bench_tpot_median_of_round_medians'] / g['bench_tpot_median_pooled_first_to_last'])}"
        f"; TTFT median vs mean ratio: {_f(tt['ratio_median'], 4)} vs {_f(tt['ratio_mean'], 4)}.",
        f"- Server drift: on the common definition the clients' ratio of mean TPOT is {_f(t['ratio_mean'], 4)} and the "
        f"server's own /metrics ITL ratio of the same windows is {_f(t['server_ratio_pooled'], 4)}; per round the "
        f"client / server ratio is {', '.join(_f(v, 4) for v in t['client_over_server_round_ratios'])}.",
        f"- Client (what is left): TPOT {_pct(t['client_over_server_geomean'])}; TTFT harness - bench_serving "
        f"{_f(_mean(diff)) if diff else '-'} ms after each window's server TTFT ({_pct(tt['ratio_mean_drift_corrected'])}"
        " of TTFT), not separable from bench_serving's warm-up request in its window with these files.",
    ]


def render(a: dict[str, Any]) -> str:
    """analysis.md: the explanation table, the recomputation and the paired rounds."""
    g, t, tt, s = a["aggregation"], a["tpot_first_to_last"], a["ttft"], a["harness_vs_server_per_request"]
    lines = ["# Where harness and bench_serving differ, and why", "",
             f"{a['rounds']} ABBA rounds; harness {a['requests']['harness']} / bench_serving "
             f"{a['requests']['bench_serving']} requests. H = harness client, B = sglang.bench_serving. Written by "
             "`python -m bench.evidence.explain` from raw/ (numbers in analysis.json).", "",
             "## Summary", "", *_summary_md(a), "", "## Explanation", "", *_table_md(a), "",
             "## Common definition (first to last token, / (n - 1)), pooled over requests", "",
             "| statistic | harness | bench_serving | ratio | 95% bootstrap CI |", "| --- | --- | --- | --- | --- |",
             f"| TPOT median | {_f(t['harness_median'], 4)} | {_f(t['bench_median'], 4)} | {_f(t['ratio_median'], 4)} "
             f"| {_ci(t['ratio_median_ci95'])} |",
             f"| TPOT mean | {_f(g['harness_tpot_mean_pooled'], 4)} | {_f(g['bench_tpot_mean_pooled_first_to_last'], 4)} "
             f"| {_f(t['ratio_mean'], 4)} | {_ci(t['ratio_mean_ci95'])} |",
             f"| TPOT mean, bench_serving's definition (to [DONE]) | {_f(g['harness_tpot_done_mean_pooled'], 4)} "
             f"| {_f(g['bench_tpot_mean_pooled_as_defined'], 4)} | {_f(g['ratio_tpot_mean_bench_definition'], 4)} | |",
             f"| TTFT median | {_f(tt['harness_median'])} | {_f(tt['bench_median'])} | {_f(tt['ratio_median'], 4)} "
             f"| {_ci(tt['ratio_median_ci95'])} |",
             f"| TTFT mean | {_f(tt['harness_mean'])} | {_f(tt['bench_mean'])} | {_f(tt['ratio_mean'], 4)} | |",
             "", f"Bootstrap: {a['bootstrap']['resamples']} resamples of requests within each (round, tool), seed "
             f"{a['bootstrap']['seed']}. Round medians of TPOT span {_f(t['round_medians_range']['harness'][0])}.."
             f"{_f(t['round_medians_range']['harness'][1])} ms (H) and {_f(t['round_medians_range']['bench_serving'][0])}.."
             f"{_f(t['round_medians_range']['bench_serving'][1])} ms (B): the server's speed moves more between "
             "rounds than the tools differ.", "",
             "## Paired by round (means; server = /metrics window of that tool's requests)", "", *_round_md(a), "",
             "## bench_serving recomputed from its own per-request fields", "", *_recompute_md(a), ""]
    if s.get("requests"):
        lines += ["## Harness client vs the server's meta_info, per request", "",
                  f"{s['requests']} harness requests: client TTFT - server TTFT (received -> first chunk) median "
                  f"{_f(s['client_minus_server_ttft_ms']['median'])} ms (p10 {_f(s['client_minus_server_ttft_ms']['p10'])}, "
                  f"p90 {_f(s['client_minus_server_ttft_ms']['p90'])}); client TPOT - 1/decode_throughput median "
                  f"{_f(s['client_minus_server_tpot_ms']['median'], 4)} ms (p10 {_f(s['client_minus_server_tpot_ms']['p10'], 4)}, "
                  f"p90 {_f(s['client_minus_server_tpot_ms']['p90'], 4)}). Server TPOT itself: p10 "
                  f"{_f(s['server_tpot_ms']['p10'])}, median {_f(s['server_tpot_ms']['median'])}, p90 "
                  f"{_f(s['server_tpot_ms']['p90'])} ms.", ""]
    lines += ["## Caveats", "",
              "- bench_serving's --output-details has no per-request latency, so its TPOT as it defines it (to "
              "`[DONE]`) is exact only as a mean: (mean e2e - mean TTFT) / (n - 1) when all n are equal.",
              "- bench_serving's /metrics window includes its warm-up request (window requests "
              f"{', '.join(str(p['window_requests']['bench_serving']) for p in a['per_round'])} vs "
              f"{', '.join(str(p['window_requests']['harness']) for p in a['per_round'])} for the harness); a warm-up "
              "TTFT d ms above the round's mean lowers B's client-minus-server TTFT by d / (requests + 1).",
              "- /metrics ITL is about 1.3% below both clients' first-to-last TPOT alike, so it cancels in the "
              "client / server ratio.", ""]
    return "\n".join(lines)


def write(evidence: Path, boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """analysis.json and analysis.md next to the sitting's report."""
    analysis = analyse(load(evidence), boot, seed)
    (evidence / "analysis.json").write_text(json.dumps(analysis, indent=1) + "\n")
    (evidence / "analysis.md").write_text(render(analysis))
    return analysis


def main(argv: list[str] | None = None) -> int:
    """CLI: explain one evidence directory."""
    parser = argparse.ArgumentParser(prog="python -m bench.evidence.explain", description=__doc__.split("\n")[0])
    parser.add_argument("evidence", type=Path)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.evidence / "raw" / "bench_serving.jsonl").is_file():
        print(f"explain: error: {args.evidence}/raw/bench_serving.jsonl not found", file=sys.stderr)
        return 2
    write(args.evidence, args.boot, args.seed)
    print(f"explain: wrote {args.evidence}/analysis.md and analysis.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
