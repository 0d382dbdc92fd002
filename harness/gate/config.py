"""Gate configuration: one frozen dataclass built from thresholds.toml."""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.gate.errors import GateInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

DEFAULT_THRESHOLDS = Path(__file__).with_name("thresholds.toml")


@dataclass(frozen=True)
class MetricRule:
    """Practical threshold for one per-request metric (a key of samples[])."""

    name: str
    threshold: float
    max_ci_width: float
    # Between-start SD of the A/A log ratio per target (thresholds.toml [metrics.<m>.start_sd]): two servers
    # of one build sit this far apart, so no number of request pairs on one server pair shrinks the interval
    # below it; the paired design adds it to each start pair's variance (0: not calibrated, not added).
    start_sd: tuple[tuple[str, float], ...] = ()

    def start_sd_for(self, target: str | None) -> float:
        return dict(self.start_sd).get(target or "", 0.0)


@dataclass(frozen=True)
class GateConfig:
    """Everything the statistics and verdicts depend on."""

    metrics: tuple[MetricRule, ...]
    confidence: float = 0.95
    bootstrap_resamples: int = 2000
    seed: int = 20260601
    alpha: float = 0.05
    min_samples: int = 8

    def rule(self, name: str) -> MetricRule:
        for rule in self.metrics:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def with_threshold(self, name: str, threshold: float) -> GateConfig:
        """A copy with one metric's threshold changed (the calibration sweeps it)."""
        rules = tuple(replace(r, threshold=threshold) if r.name == name else r for r in self.metrics)
        return replace(self, metrics=rules)


def load_config(path: Path | None = None) -> GateConfig:
    """Read a thresholds TOML file (the packaged defaults when path is None)."""
    path = path or DEFAULT_THRESHOLDS
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GateInputError(f"{path}: thresholds file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise GateInputError(f"{path}: malformed TOML: {exc}") from exc
    return config_from_mapping(raw, str(path))


def config_from_mapping(raw: dict[str, Any], where: str) -> GateConfig:
    """Validate the parsed TOML; every error names the file and the key."""
    gate = raw.get("gate", {})
    metrics = raw.get("metrics")
    if not isinstance(gate, dict):
        raise GateInputError(f"{where}: [gate] must be a table")
    if not isinstance(metrics, dict) or not metrics:
        raise GateInputError(f"{where}: [metrics.<name>] tables are required (e.g. [metrics.tpot_ms])")
    unknown = set(gate) - {"confidence", "bootstrap_resamples", "seed", "alpha", "min_samples"}
    if unknown:
        raise GateInputError(f"{where}: gate.{sorted(unknown)[0]}: unknown key")
    rules = tuple(_rule(name, table, where) for name, table in metrics.items())
    config = GateConfig(
        metrics=rules,
        confidence=_number(gate, "confidence", 0.95, where, "gate", low=0.5, high=0.9999),
        bootstrap_resamples=int(_number(gate, "bootstrap_resamples", 2000, where, "gate", low=100, high=10**6)),
        seed=int(_number(gate, "seed", 20260601, where, "gate", low=0, high=2**63)),
        alpha=_number(gate, "alpha", 0.05, where, "gate", low=1e-6, high=0.5),
        min_samples=int(_number(gate, "min_samples", 8, where, "gate", low=2, high=10**6)),
    )
    return config


def _rule(name: str, table: Any, where: str) -> MetricRule:
    if not isinstance(table, dict):
        raise GateInputError(f"{where}: metrics.{name} must be a table")
    unknown = set(table) - {"threshold", "max_ci_width", "start_sd"}
    if unknown:
        raise GateInputError(f"{where}: metrics.{name}.{sorted(unknown)[0]}: unknown key")
    if "threshold" not in table:
        raise GateInputError(f"{where}: metrics.{name}.threshold is required")
    section = f"metrics.{name}"
    threshold = _number(table, "threshold", 0.0, where, section, low=0.0, high=10.0)
    width = _number(table, "max_ci_width", 4 * threshold, where, section, low=1e-9, high=100.0)
    sds = table.get("start_sd", {})
    if not isinstance(sds, dict):
        raise GateInputError(f"{where}: {section}.start_sd must be a table of target = SD (e.g. sglang = 0.05)")
    start_sd = tuple((str(target), _number(sds, target, 0.0, where, f"{section}.start_sd", low=0.0, high=1.0))
                     for target in sorted(sds))
    return MetricRule(name=name, threshold=threshold, max_ci_width=width, start_sd=start_sd)


def _number(table: dict[str, Any], key: str, default: float, where: str, section: str,
            *, low: float, high: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise GateInputError(f"{where}: {section}.{key}: expected a number in [{low}, {high}], got {value!r}")
    return float(value)
