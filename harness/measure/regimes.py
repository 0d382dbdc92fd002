"""Regimes inside one run's per-request series: change points (ruptures), then each segment's median.

On real sglang the per-request TPOT switches between levels that last 10-30 requests (issue #22);
a run's median hides that. The change points come from harness.measure.changepoints (the same
penalised KernelCPD the nightly history uses) on log(values), after a Hampel filter replaced lone
slow requests (a GC pause) by their neighbours' median, so a spike is not a regime; segments of
fewer than min_size requests, or whose medians differ by less than min_rel_step, are not regimes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import median_filter

from harness.measure.changepoints import ChangePointConfig, find_steps, noise_scale

# beta 6 (not history's 4), measured on 200 seeded synthetic series of 100 requests each
# (tests/harness/measure/test_regimes.py): flat with 4% noise, 1 false regime (3 with beta 4); flat with
# 2% noise and 5 lone requests 60% slower, 3; one 10-request regime 50% slower, found in 199.
REQUEST_CHANGEPOINTS = ChangePointConfig(beta=6.0, min_size=5, min_rel_step=0.02, log_scale=True)
# Hampel filter: a request further than SPIKE_SIGMAS robust sigmas (of log values) from the median of
# the 2 * SPIKE_HALF_WINDOW + 1 around it is a spike; runs of up to SPIKE_HALF_WINDOW requests are spikes.
SPIKE_HALF_WINDOW = 3
SPIKE_SIGMAS = 3.0
# Per-request scalars of a sample that are counts or ids, not timings.
NOT_METRICS = frozenset({"index", "input_len", "max_new_tokens", "completion_tokens", "events", "http_status"})


@dataclass(frozen=True)
class Regime:
    """One level of a series: request indices start..end (inclusive) and the median over them."""

    start: int
    end: int
    median: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "median": self.median, "n": self.n}


def find_regimes(values: Sequence[float] | np.ndarray, indices: Sequence[int] | None = None,
                 config: ChangePointConfig = REQUEST_CHANGEPOINTS) -> tuple[Regime, ...]:
    """The regimes of one series; `indices` name each value's request (default 0..n-1)."""
    data = np.asarray(values, dtype=float)
    n = int(data.size)
    if n == 0:
        return ()
    where = list(range(n)) if indices is None else list(indices)
    if len(where) != n:
        raise ValueError(f"{len(where)} indices for {n} values")
    # Too short to hold two segments of min_size: one level by definition (and the exact-series path
    # of find_steps would otherwise split two unequal values).
    steps = [] if n < 2 * config.min_size else find_steps(despiked(data), config)
    bounds = [0, *(s.index for s in steps), n]
    return tuple(Regime(where[a], where[b - 1], float(np.median(data[a:b])), b - a)
                 for a, b in itertools.pairwise(bounds))


def despiked(values: np.ndarray) -> np.ndarray:
    """`values` with lone spikes replaced by the running median (Hampel filter, in log space)."""
    if values.size < 3 or not bool(np.all(values > 0)):
        return values
    logs = np.log(values)
    sigma = noise_scale(logs)
    if sigma == 0.0:
        return values
    running = median_filter(logs, size=2 * SPIKE_HALF_WINDOW + 1, mode="nearest")
    return np.exp(np.where(np.abs(logs - running) > SPIKE_SIGMAS * sigma, running, logs))


def request_series(samples: Iterable[Mapping[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar per-request timing (a number under a `*_ms` key) of the ok samples, in request order."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for position, sample in enumerate(samples):
        if sample.get("ok") is False or sample.get("error_kind"):
            continue
        index = sample.get("index", position)
        for key, value in sample.items():
            if key in NOT_METRICS or not key.endswith("_ms") or isinstance(value, bool) \
                    or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            ids, values = series.setdefault(key, ([], []))
            ids.append(int(index))
            values.append(float(value))
    return series


def run_regimes(samples: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """result.json's `regimes`: metric -> its regimes, for every per-request timing present."""
    return {metric: [r.to_json() for r in find_regimes(values, ids)]
            for metric, (ids, values) in sorted(request_series(samples).items())}


def stored_or_found(result: Mapping[str, Any]) -> dict[str, tuple[Regime, ...]]:
    """A result's stored regimes, or regimes found from its samples (results written before they were stored)."""
    stored = result.get("regimes")
    if not isinstance(stored, Mapping):
        stored = run_regimes(result.get("samples") or [])
    return {metric: tuple(Regime(int(r["start"]), int(r["end"]), float(r["median"]), int(r["n"])) for r in found)
            for metric, found in stored.items()}


def describe(metric: str, regimes: Sequence[Regime]) -> str:
    """One line, e.g. `tpot_ms: 3 regimes: 1.12 ms [0-24], 1.85 ms [25-51], 1.2 ms [52-99]`."""
    unit = " ms" if metric.endswith("_ms") else ""
    parts = ", ".join(f"{r.median:.3g}{unit} [{r.start}-{r.end}]" for r in regimes)
    return f"{metric}: {len(regimes)} regime{'s' if len(regimes) != 1 else ''}: {parts}"
