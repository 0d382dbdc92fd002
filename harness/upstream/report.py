"""One release's verdicts in words: hook targets, fix presence, differential counts, revert proofs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.instrument.targets import resolve_static
from harness.upstream.check import TreeReport
from harness.upstream.local import LocalSource
from reference_impl.fixset import FIX_NAMES

# Per-fix verdicts, as fixes.json and report.json spell them (bench/asv/readout.py reads fixes.json).
PRESENT, ABSENT, NOT_OBSERVABLE, NOT_DRIVABLE = "present", "absent", "not_observable", "not_drivable"
VERDICTS_FILE = "fixes.json"
VERDICTS_FORMAT = "harness-sglang-fixes/1"


@dataclass(frozen=True)
class RevertProof:
    """One revert patch: which fixes the checks flagged on the patched tree, with the failing fields."""

    fix: str
    report: TreeReport | None
    error: str | None = None

    @property
    def caught(self) -> bool:
        return self.report is not None and self.fix in self.report.flagged()

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"fix": self.fix, "caught": self.caught, "error": self.error}
        if self.report is not None:
            out["flagged"] = list(self.report.flagged())
            out["fields"] = list(self.report.count(self.fix).fields)
            out["mismatched"] = self.report.count(self.fix).mismatched
            out["compared"] = self.report.count(self.fix).compared
            out["example"] = (self.report.count(self.fix).examples or ("",))[0]
        return out


@dataclass(frozen=True)
class ReleaseReport:
    """Everything checked on one sglang release, or on a source tree (`source`)."""

    version: str
    root: Path | None
    original: TreeReport | None = None
    error: str | None = None
    reverts: tuple[RevertProof, ...] = field(default=())
    source: LocalSource | None = None

    def presence(self, fix: str) -> str:
        """present / absent (the checks flag it) / not_observable / not_drivable."""
        if self.original is None:
            return NOT_DRIVABLE
        count = self.original.count(fix)
        if count.compared == 0:
            return NOT_OBSERVABLE
        return ABSENT if count.mismatched else PRESENT

    def verdicts_json(self) -> dict[str, object]:
        """fixes.json: the per-fix verdicts alone, what the nightly stores and asv tracks."""
        fixes: dict[str, object] = {}
        for fix in FIX_NAMES:
            count = self.original.count(fix) if self.original else None
            fixes[fix] = {"verdict": self.presence(fix), "compared": count.compared if count else None,
                          "mismatched": count.mismatched if count else None}
        return {"format": VERDICTS_FORMAT, "sglang": self.version,
                "source": self.source.to_json() if self.source else None, "error": self.error, "fixes": fixes}

    def targets(self) -> list[dict[str, object]]:
        if self.root is None:
            return []
        return [{"target": r.target, "module": r.candidate.module if r.candidate else None,
                 "attrs": list(r.candidate.attrs) if r.candidate else None, "reason": r.reason}
                for r in resolve_static(self.root)]

    def to_json(self) -> dict[str, object]:
        return {"sglang": self.version, "source": self.source.to_json() if self.source else None,
                "error": self.error, "hook_targets": self.targets(),
                "fixes": {fix: self.presence(fix) for fix in FIX_NAMES},
                "differential": self.original.to_json() if self.original else None,
                "reverts": [r.to_json() for r in self.reverts]}

    def markdown(self) -> str:
        lines = [f"## sglang {self.version}" + (f" ({self.source.label()})" if self.source else ""), ""]
        if self.source is not None:
            lines += [f"Version from {self.source.version_from}; judged by the rules of "
                      f"{self.source.rules_version}. Revert proofs need a release's committed patches and are "
                      f"not run on a source tree.", ""]
        if self.error:
            lines += [f"Not drivable on the CPU: {self.error}", ""]
        lines += ["| hook target | resolves to | note |", "| --- | --- | --- |"]
        for t in self.targets():
            where = f"`{t['module']}`: {', '.join(t['attrs'] or [])}" if t["module"] else "**missing**"
            lines.append(f"| {t['target']} | {where} | {'' if t['reason'] == 'ok' else t['reason']} |")
        lines += ["", "| fix | in the source | configs compared | mismatches | fields (or why not observable) |", "| --- | --- | --- | --- | --- |"]
        for fix in FIX_NAMES:
            count = self.original.count(fix) if self.original else None
            note = ""
            if count and count.fields:
                note = ", ".join(count.fields)
            elif count and count.unobserved:
                note = ("some configurations " if count.compared else "") + count.unobserved[:300]
            lines.append(f"| {fix} | {self.presence(fix).replace('_', ' ')} | {count.compared if count else '-'} | "
                         f"{count.mismatched if count else '-'} | {note} |")
        if self.reverts:
            lines += ["", "| revert patch | caught | flagged fixes | failing fields | mismatching configs |",
                      "| --- | --- | --- | --- | --- |"]
            for proof in self.reverts:
                data = proof.to_json()
                lines.append(f"| {proof.fix} | {'yes' if proof.caught else 'NO'} | "
                             f"{', '.join(data.get('flagged', []))} | {', '.join(data.get('fields', []))} | "
                             f"{data.get('mismatched', '-')} of {data.get('compared', '-')} |"
                             if proof.error is None else f"| {proof.fix} | error | {proof.error} | | |")
        return "\n".join(lines) + "\n"
