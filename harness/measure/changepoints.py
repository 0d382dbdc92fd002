"""Change points in a series (commits in the history, requests in one run): penalised kernel CPD (ruptures).

ruptures has no E-Divisive; KernelCPD with the linear kernel is the kernel method for changes in
the mean (what E-Divisive means looks for), solved exactly by dynamic programming under a penalty.
The series is divided by a robust noise scale first, so the penalty is in units of noise variance:
pen = beta * log(n) (BIC-like). A found step is kept only when the medians either side differ by more
than the metric's practical threshold, so a statistically clear but tiny shift is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import ruptures as rpt

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class ChangePointConfig:
    """Penalty and filters for one metric's series."""

    beta: float = 4.0          # penalty per change point = beta * log(n), in units of noise variance
    min_size: int = 2          # fewest commits in a segment: one odd night is not a step
    min_rel_step: float = 0.02  # relative change of the median between neighbouring segments
    # Detect on log(values): timing noise is multiplicative, so a slow level is noisier in ms and one
    # noise scale for the whole series would split it. Positive series only (else linear).
    log_scale: bool = False


@dataclass(frozen=True)
class Step:
    """A change point: the index of the first point of the new level and the levels either side."""

    index: int
    before: float
    after: float

    @property
    def relative(self) -> float:
        return self.after / self.before - 1.0 if self.before else float("inf")


def noise_scale(values: np.ndarray) -> float:
    """Robust sigma from first differences (insensitive to the steps themselves)."""
    if values.size < 3:
        return 0.0
    diffs = np.diff(values)
    return float(MAD_TO_SIGMA * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0))


def find_steps(values: np.ndarray, config: ChangePointConfig) -> list[Step]:
    """Steps in a noisy series, or every change in an exact one (e.g. workspace bytes)."""
    values = np.asarray(values, dtype=float)
    n = values.size
    if n < 2:
        return []
    signal = np.log(values) if config.log_scale and bool(np.all(values > 0)) else values
    sigma = noise_scale(signal)
    if sigma == 0.0:
        # Noise-free apart from jumps (most differences exactly zero): every jump is a candidate.
        changes = [s.index for s in _exact_steps(values)]
        return _merge_small(values, [0, *changes, n], config.min_rel_step)
    if n < 2 * config.min_size:
        return []
    algo = rpt.KernelCPD(kernel="linear", min_size=config.min_size).fit((signal / sigma).reshape(-1, 1))
    ends = algo.predict(pen=config.beta * np.log(n))
    return _merge_small(values, [0, *ends], config.min_rel_step)


def exact_changes(values: np.ndarray) -> list[Step]:
    """Every index whose value differs from the previous one: for deterministic metrics."""
    return _exact_steps(np.asarray(values, dtype=float))


def _exact_steps(values: np.ndarray) -> list[Step]:
    return [Step(int(i), float(values[i - 1]), float(values[i]))
            for i in range(1, values.size) if values[i] != values[i - 1]]


def _merge_small(values: np.ndarray, bounds: list[int], min_rel_step: float) -> list[Step]:
    # Drop the boundary with the smallest relative step below the practical threshold, then repeat:
    # neighbours of a dropped boundary are compared again on the merged segment.
    bounds = list(bounds)
    while len(bounds) > 2:
        rel = [abs(_step(values, bounds, k).relative) for k in range(1, len(bounds) - 1)]
        smallest = int(np.argmin(rel))
        if rel[smallest] >= min_rel_step:
            break
        del bounds[smallest + 1]
    return [_step(values, bounds, k) for k in range(1, len(bounds) - 1)]


def _step(values: np.ndarray, bounds: list[int], k: int) -> Step:
    before = float(np.median(values[bounds[k - 1]:bounds[k]]))
    after = float(np.median(values[bounds[k]:bounds[k + 1]]))
    return Step(int(bounds[k]), before, after)
