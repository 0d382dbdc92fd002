"""Server-side cross-check: scrape sglang's Prometheus /metrics before and after the measured requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

# Histogram families sglang exports with --enable-metrics (the reference engine exports the same names).
TTFT = "sglang:time_to_first_token_seconds"
ITL = "sglang:inter_token_latency_seconds"
E2E = "sglang:e2e_request_latency_seconds"
HISTOGRAMS = (TTFT, ITL, E2E)


@dataclass(frozen=True)
class Totals:
    """A histogram's running _sum (seconds) and _count, summed over all label sets."""

    sum: float = 0.0
    count: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """The histograms of one scrape, or why the scrape failed."""

    histograms: tuple[tuple[str, Totals], ...] = ()
    error: str | None = None

    def get(self, name: str) -> Totals | None:
        return dict(self.histograms).get(name)


def parse(text: str) -> Snapshot:
    """Sum _sum and _count of the histograms the harness compares, across labels."""
    totals: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in HISTOGRAMS:
            continue
        acc = totals.setdefault(family.name, [0.0, 0.0])
        for sample in family.samples:
            if sample.name == family.name + "_sum":
                acc[0] += sample.value
            elif sample.name == family.name + "_count":
                acc[1] += sample.value
    return Snapshot(histograms=tuple((name, Totals(s, c)) for name, (s, c) in sorted(totals.items())))


def scrape(base_url: str, timeout_s: float = 5.0) -> Snapshot:
    """GET /metrics; a missing or broken endpoint is recorded, not raised."""
    try:
        response = requests.get(f"{base_url}/metrics", timeout=timeout_s)
    except requests.RequestException as exc:
        return Snapshot(error=f"GET /metrics failed: {exc}")
    if response.status_code != 200:
        return Snapshot(error=f"GET /metrics answered HTTP {response.status_code}")
    try:
        return parse(response.text)
    except ValueError as exc:
        return Snapshot(error=f"/metrics is not Prometheus text: {exc}")


def server_side(before: Snapshot, after: Snapshot) -> dict[str, Any]:
    """Means over the measured window (after - before), in ms, beside the client's numbers."""
    error = before.error or after.error
    result: dict[str, Any] = {"ttft_ms_mean": None, "itl_ms_mean": None, "e2e_ms_mean": None,
                              "requests": None, "error": error}
    if error:
        return result
    for key, name in (("ttft_ms_mean", TTFT), ("itl_ms_mean", ITL), ("e2e_ms_mean", E2E)):
        start, end = before.get(name) or Totals(), after.get(name)
        if end is None:
            continue
        count = end.count - start.count
        if count > 0:
            result[key] = (end.sum - start.sum) / count * 1000.0
        if name == TTFT:
            result["requests"] = int(count)
    if all(result[key] is None for key in ("ttft_ms_mean", "itl_ms_mean", "e2e_ms_mean")):
        result["error"] = f"no {', '.join(HISTOGRAMS)} samples in the measured window"
    return result
