"""PNG plots with matplotlib (Agg): base vs head distributions, and history with change points."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless CI; must precede pyplot
import matplotlib.pyplot as plt
import numpy as np

BASE_COLOR, HEAD_COLOR = "#1f77b4", "#d62728"


def distributions(path: Path, scenario: str, metrics: dict[str, tuple[np.ndarray, np.ndarray]],
                  verdicts: dict[str, str]) -> Path:
    """One panel per metric: overlaid histograms of base and head with their medians."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, (metric, (base, head)) in zip(axes[0], metrics.items(), strict=True):
        both = np.concatenate([base, head])
        bins = np.histogram_bin_edges(both, bins=min(40, max(10, both.size // 4))) if both.size else 10
        for values, label, color in ((base, "base", BASE_COLOR), (head, "head", HEAD_COLOR)):
            if values.size:
                ax.hist(values, bins=bins, alpha=0.45, color=color, label=f"{label} (n={values.size})")
                ax.axvline(float(np.median(values)), color=color, linestyle="--", linewidth=1.2)
        ax.set_title(f"{scenario}: {metric} — {verdicts.get(metric, '')}")
        ax.set_xlabel(metric)
        ax.set_ylabel("requests")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def history(path: Path, title: str, ylabel: str, commits: Sequence[str], values: np.ndarray,
            change_points: Sequence[int]) -> Path:
    """A metric across commits; a vertical line at the first commit of each step."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(values)), 3.8))
    x = np.arange(len(values))
    ax.plot(x, values, marker="o", markersize=3, linewidth=1, color=BASE_COLOR)
    bounds = [0, *change_points, len(values)]
    for start, end in itertools.pairwise(bounds):
        level = float(np.median(values[start:end]))
        ax.hlines(level, start - 0.4, end - 0.6, colors="0.3", linestyles=":", linewidth=1)
    for cp in change_points:
        ax.axvline(cp - 0.5, color=HEAD_COLOR, linewidth=1.2)
        ax.annotate(commits[cp][:10], (cp - 0.5, ax.get_ylim()[1]), rotation=90, fontsize=7,
                    va="top", ha="right", color=HEAD_COLOR)
    step = max(1, len(values) // 20)
    ax.set_xticks(x[::step], [c[:7] for c in commits][::step], rotation=60, fontsize=7)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return _save(fig, path)


def calibration(path: Path, slowdowns: Sequence[float], rates: dict[int, Sequence[float]],
                false_alarm: dict[int, float], title: str) -> Path:
    """Detection rate against injected slowdown, one line per request count; false alarms at 0."""
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for n, detect in sorted(rates.items()):
        xs = [0.0, *[100 * s for s in slowdowns]]
        ys = [false_alarm[n], *detect]
        ax.plot(xs, [100 * y for y in ys], marker="o", label=f"{n} requests/side")
    ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
    ax.axhline(95.0, color="0.5", linestyle=":", linewidth=1)
    ax.set_xlabel("injected decode slowdown (% of TPOT); 0 = A/A")
    ax.set_ylabel("verdict regression (% of trials)")
    ax.set_title(textwrap.fill(title, 70), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
