"""PNG plots with matplotlib (Agg): base vs head distributions, and history with change points."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class HistoryPanel:
    """One series on the shared commit axis: x positions, values, steps, and an optional interval band."""

    ylabel: str
    x: np.ndarray  # positions on the shared commit axis
    values: np.ndarray
    change_points: tuple[int, ...]  # axis positions of the first commit of each step
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    reference: float | None = None  # a horizontal line, e.g. 1.0 for a ratio to the control


def history_panels(path: Path, title: str, commits: Sequence[str], panels: Sequence[HistoryPanel]) -> Path:
    """Metrics across commits, one panel each on a shared axis; a vertical line at each step's first commit."""
    width = max(6.0, 0.25 * len(commits))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 3.2 * len(panels) + 0.6), sharex=True, squeeze=False)
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        if panel.low is not None and panel.high is not None:
            ax.fill_between(panel.x, panel.low, panel.high, color=BASE_COLOR, alpha=0.18, linewidth=0,
                            label="gate interval")
        if panel.reference is not None:
            ax.axhline(panel.reference, color="0.5", linestyle="--", linewidth=0.8)
        ax.plot(panel.x, panel.values, marker="o", markersize=3, linewidth=1, color=BASE_COLOR)
        bounds = [0, *(int(np.searchsorted(panel.x, cp)) for cp in panel.change_points), panel.x.size]
        for start, end in itertools.pairwise(bounds):
            level = float(np.median(panel.values[start:end]))
            ax.hlines(level, panel.x[start] - 0.4, panel.x[end - 1] + 0.4, colors="0.3", linestyles=":", linewidth=1)
        for cp in panel.change_points:
            ax.axvline(cp - 0.5, color=HEAD_COLOR, linewidth=1.2)
            ax.annotate(commits[cp][:10], (cp - 0.5, ax.get_ylim()[1]), rotation=90, fontsize=7,
                        va="top", ha="right", color=HEAD_COLOR)
        ax.set_ylabel(panel.ylabel)
        if panel.low is not None:
            ax.legend(fontsize=7, loc="upper left")
    x = np.arange(len(commits))
    step = max(1, len(commits) // 20)
    bottom = axes[-1, 0]
    bottom.set_xticks(x[::step], [c[:7] for c in commits][::step], rotation=60, fontsize=7)
    bottom.set_xlim(-0.6, len(commits) - 0.4)
    axes[0, 0].set_title(title)
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
