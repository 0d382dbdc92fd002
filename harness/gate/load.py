"""Read run directories (RUN_DIR/<scenario>/result.json) into what the gate compares.

A side (base or head) is either one run directory or a directory of run directories, one per
interleaved round (SIDE/round-00/<scenario>/result.json ...). Results of the paired design carry
`pairing` and samples[].pair; their rounds (server-start pairs) may hold different scenarios, since
the gate starts more server pairs only for a scenario it cannot decide yet. Each file is read through
harness/store/result.py (the one reader, shared with the asv suite); every error names the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.gate.errors import GateInputError
from harness.store.result import RESULT_FILE, Result, ResultError, read_object
from harness.store.results import validate


@dataclass(frozen=True, eq=False)
class ScenarioRun:
    """One scenario's result.json as the store reads it, with the gated metrics as arrays."""

    path: Path
    result: Result
    samples: dict[str, np.ndarray] = field(repr=False)  # metric name -> per-request values
    pair_ids: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # metric -> samples[].pair

    @property
    def target_kind(self) -> str | None:
        """target.kind: "sglang" | "reference" (selects the metric's start_sd)."""
        return self.result.target_kind

    @property
    def commit(self) -> str | None:
        """target.commit (history orders runs and comparisons alike by it)."""
        return self.result.commit

    @property
    def order_time(self) -> float | None:
        return self.result.order_time

    def values(self, metric: str) -> np.ndarray:
        return self.samples.get(metric, np.empty(0))

    def paired_values(self, metric: str) -> dict[int, float]:
        """Pair index -> value (paired results only)."""
        ids = self.pair_ids.get(metric, np.empty(0, dtype=int))
        return dict(zip((int(i) for i in ids), (float(v) for v in self.values(metric)), strict=True))


@dataclass(frozen=True)
class Side:
    """All rounds of one side: scenario -> one ScenarioRun per round, in round order."""

    root: Path
    rounds: tuple[Path, ...]
    runs: dict[str, tuple[ScenarioRun, ...]]


def load_side(root: Path, metrics: tuple[str, ...]) -> Side:
    """Load a run directory, or a directory of per-round run directories."""
    if not root.is_dir():
        raise GateInputError(f"{root}: results directory not found")
    rounds = _round_dirs(root)
    per_round = [_load_run_dir(d, metrics) for d in rounds]
    names = set(per_round[0])
    paired = all(run.result.pairing is not None for runs in per_round for run in runs.values())
    for directory, runs in zip(rounds[1:], per_round[1:], strict=True):
        if set(runs) != names and not paired:
            diff = sorted(names.symmetric_difference(runs))
            raise GateInputError(f"{directory}: scenarios differ from {rounds[0]} (in one only: {', '.join(diff)})")
        names |= set(runs)
    merged = {name: tuple(runs[name] for runs in per_round if name in runs) for name in sorted(names)}
    return Side(root=root, rounds=tuple(rounds), runs=merged)


def _round_dirs(root: Path) -> list[Path]:
    if any(root.glob(f"*/{RESULT_FILE}")):
        return [root]
    rounds = sorted(d for d in root.iterdir() if d.is_dir() and any(d.glob(f"*/{RESULT_FILE}")))
    if not rounds:
        raise GateInputError(f"{root}: no <scenario>/{RESULT_FILE} found (nor in round subdirectories)")
    return rounds


def _load_run_dir(run_dir: Path, metrics: tuple[str, ...]) -> dict[str, ScenarioRun]:
    runs: dict[str, ScenarioRun] = {}
    for path in sorted(run_dir.glob(f"*/{RESULT_FILE}")):
        run = load_result(path, metrics)
        name = run.result.scenario
        if name in runs:
            raise GateInputError(f"{path}: scenario {name!r} also in {runs[name].path}")
        runs[name] = run
    return runs


def load_result(path: Path, metrics: tuple[str, ...]) -> ScenarioRun:
    """Parse one result.json; raises GateInputError naming the file and the field."""
    try:
        obj = read_object(path)
        result = Result.from_json(obj, str(path))
        columns = {metric: result.column(metric) for metric in metrics}
        # The reader's checks above give the precise messages; the schema catches everything else.
        validate(obj, source=str(path))
    except ResultError as exc:
        raise GateInputError(str(exc)) from exc
    if result.status == "ok" and result.startup_outcome in (None, "ok") \
            and not any(column.values for column in columns.values()):
        raise GateInputError(f"{path}: status ok but samples[] holds no measured request")
    samples = {m: np.asarray(c.values, dtype=float) for m, c in columns.items()}
    pair_ids = {m: np.asarray(c.pairs, dtype=int) for m, c in columns.items()} if result.pairing else {}
    return ScenarioRun(path=path, result=result, samples=samples, pair_ids=pair_ids)
