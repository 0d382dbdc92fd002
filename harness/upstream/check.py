"""The live checks over sglang's own code: records from the hooks, verdicts from harness/oracle_check, per fix."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.check.oracle_check import Verdict, check
from harness.instrument.reader import load_records
from harness.upstream import drivers
from harness.upstream.case import Case
from harness.upstream.linker import SourceTree
from reference_impl.fixset import (
    A2A_TOKEN_CAP,
    DISABLE_ATTN_TP_GATHER,
    DP_WORKSPACE_SIZING,
    FIX_NAMES,
    MOE_DP1_ATTN_CP,
    SP_RUNTIME_MAX_TOKENS,
)

# The verdicts (harness/oracle_check names) whose value each fix governs (docs/instrumentation.md).
FIX_VERDICTS: dict[str, tuple[str, ...]] = {
    SP_RUNTIME_MAX_TOKENS: ("runtime_max_tokens_per_rank",),
    DP_WORKSPACE_SIZING: ("a2a_max_num_tokens", "a2a_workspace_bytes_per_rank", "capture_global_num_tokens",
                          "capture_global_dp_buffer_len"),
    A2A_TOKEN_CAP: ("a2a_max_num_tokens", "a2a_workspace_bytes_per_rank"),
    DISABLE_ATTN_TP_GATHER: ("require_attn_tp_gather", "require_mlp_tp_gather", "require_gathered_buffer",
                             "capture_num_tokens"),
    MOE_DP1_ATTN_CP: ("mlp_scatter_mode.sparse", "mlp_scatter_mode.dense"),
}
GOVERNED = frozenset(name for names in FIX_VERDICTS.values() for name in names)
ALL_DRIVERS = tuple(drivers.DRIVERS)


@dataclass(frozen=True)
class CaseResult:
    """The compared verdicts of one case, and what sglang's own code raised (its asserts)."""

    case: Case
    verdicts: tuple[Verdict, ...]
    errors: tuple[str, ...]

    def governed(self, fix: str) -> tuple[Verdict, ...]:
        names = FIX_VERDICTS[fix]
        return tuple(v for v in self.verdicts if v.name in names and v.passed is not None)


@dataclass(frozen=True)
class FixCount:
    """Per fix: configurations whose governed values were compared, and those with a mismatch."""

    fix: str
    compared: int
    mismatched: int
    fields: tuple[str, ...] = ()  # failing verdict names
    examples: tuple[str, ...] = ()  # a few failing cases, with expected/observed
    unobserved: str = ""  # why a governed value could not be observed (the first skipped verdict's detail)

    def to_json(self) -> dict[str, object]:
        return {"fix": self.fix, "compared": self.compared, "mismatched": self.mismatched,
                "fields": list(self.fields), "examples": list(self.examples), "unobserved": self.unobserved}


@dataclass(frozen=True)
class TreeReport:
    """All cases of one sglang tree (a release, or a release with a revert patch applied)."""

    label: str
    results: tuple[CaseResult, ...]
    counts: tuple[FixCount, ...] = field(default=())

    @property
    def raised(self) -> tuple[CaseResult, ...]:
        return tuple(r for r in self.results if r.errors)

    def count(self, fix: str) -> FixCount:
        return next(c for c in self.counts if c.fix == fix)

    def flagged(self) -> tuple[str, ...]:
        """Fixes with at least one mismatching configuration."""
        return tuple(c.fix for c in self.counts if c.mismatched)

    def to_json(self) -> dict[str, object]:
        return {"label": self.label, "cases": len(self.results), "sglang_raised": len(self.raised),
                "raised_examples": [f"{r.case.name}: {r.errors[0]}" for r in self.raised[:3]],
                "fixes": [c.to_json() for c in self.counts]}


def run_case(tree: SourceTree, case: Case, version: str, driver_names: Sequence[str] = ALL_DRIVERS) -> CaseResult:
    """Drive sglang for one case with the live hooks, then judge the records like a live run."""
    with tempfile.TemporaryDirectory(prefix="harness-upstream-") as records:
        errors = drivers.run(tree, case, version, records, tuple(driver_names))
        loaded = load_records(Path(records))
    if loaded.errors:
        errors = [*errors, *(f"records: {e}" for e in loaded.errors)]
    report = check(case, loaded)
    return CaseResult(case, tuple(v for v in report.verdicts if v.name in GOVERNED), tuple(errors))


def run_tree(label: str, tree: SourceTree, version: str, cases: Sequence[Case]) -> TreeReport:
    results = tuple(run_case(tree, case, version) for case in cases)
    return TreeReport(label, results, tuple(_count(fix, results) for fix in FIX_NAMES))


def _count(fix: str, results: Sequence[CaseResult]) -> FixCount:
    compared = [r for r in results if r.governed(fix)]
    failing = [r for r in compared if any(v.passed is False for v in r.governed(fix))]
    fields = sorted({v.name for r in failing for v in r.governed(fix) if v.passed is False})
    examples = tuple(
        f"{r.case.name}: " + "; ".join(f"{v.name} expected {v.expected} observed {v.observed}"
                                       for v in r.governed(fix) if v.passed is False)
        for r in failing[:3])
    skipped = next((v.detail for r in results for v in r.verdicts
                    if v.name in FIX_VERDICTS[fix] and v.skipped), "")
    return FixCount(fix, len(compared), len(failing), tuple(fields), examples, skipped)
