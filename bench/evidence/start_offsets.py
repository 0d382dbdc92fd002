"""How far two servers of the same build sit apart: the A/A log ratio of each server-start pair, and their spread.

`python bench/evidence/start_offsets.py SOURCE...` where a SOURCE is a calibrate_paired pools.json (its A/A
segment) or a `harness gate` report directory (runs/{base,head}/round-NN). Per start pair and metric it prints
the trimmed-mean log ratio head/base and its within-pair bootstrap SD; then, per metric, the root mean square
of the offsets (an A/A's true offset is 0): the between-start SD that thresholds.toml's `start_sd` holds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from harness.gate.paired_stats import PairedSeries, matched_pairs, start_estimate
from harness.store.result import Result, upgrade

METRICS = ("tpot_ms", "decode_gpu_ms", "ttft_ms")


def _read_json(path: Path) -> dict:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


def _from_pools(path: Path) -> Iterator[tuple[str, str, PairedSeries]]:
    for pool in _read_json(path)["pools"]:
        if pool["kind"] == "aa":
            for metric in METRICS:
                base, head = pool["base"].get(metric), pool["head"].get(metric)
                if base and head:
                    yield str(path), metric, PairedSeries(np.asarray(base, float), np.asarray(head, float))


def _values(result: Path, metric: str) -> dict[int, float]:
    """Pair index -> value, read through the harness's one result reader (result.json or result.json.gz)."""
    column = Result.from_json(upgrade(_read_json(result), str(result)), str(result)).column(metric)
    return {pair: value for pair, value in zip(column.pairs, column.values, strict=True) if value > 0}


def _from_report(report: Path) -> Iterator[tuple[str, str, PairedSeries]]:
    for base_round in sorted((report / "runs" / "base").glob("round-*")):
        head_round = report / "runs" / "head" / base_round.name
        for base in sorted(base_round.glob("*/result.json*")):
            head = next(iter(sorted((head_round / base.parent.name).glob("result.json*"))), None)
            if head is None:
                continue
            for metric in METRICS:
                series = matched_pairs(_values(base, metric), _values(head, metric))
                if series.base.size:
                    yield f"{report} {base_round.name}", metric, series


def sources(paths: Sequence[Path]) -> Iterator[tuple[str, str, PairedSeries]]:
    for path in paths:
        if path.is_file():
            yield from _from_pools(path)
        elif (path / "runs" / "base").is_dir():
            yield from _from_report(path)
        else:
            raise SystemExit(f"start_offsets: {path}: neither a pools.json nor a gate report directory (runs/base)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(7)
    offsets: dict[str, list[float]] = {m: [] for m in METRICS}
    print("| start pair | metric | pairs | offset (log ratio, %) | within-pair SD (%) |")
    print("|---|---|---|---|---|")
    for where, metric, series in sources(args.sources):
        est = start_estimate(series, 1000, rng)
        offsets[metric].append(est.log_ratio)
        print(f"| {where} | {metric} | {est.pairs} | {100 * est.log_ratio:+.2f} | {100 * np.sqrt(est.variance):.2f} |")
    print("\n| metric | start pairs | RMS offset = start_sd (%) | largest |offset| (%) |")
    print("|---|---|---|---|")
    for metric, values in offsets.items():
        if values:
            arr = np.asarray(values)
            print(f"| {metric} | {arr.size} | {100 * np.sqrt(np.mean(arr ** 2)):.2f} | {100 * np.max(np.abs(arr)):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
