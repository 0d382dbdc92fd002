"""`harness sglang-check` / `harness sglang-compat`: the five fixes checked in sglang's released source, on the CPU."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import entry_point
from harness.upstream.check import FIX_VERDICTS, run_tree
from harness.upstream.grid import cases, discriminating
from harness.upstream.linker import LinkError, SourceTree, UnreadableSource
from harness.upstream.local import LocalSource, locate, preflight
from harness.upstream.report import VERDICTS_FILE, ReleaseReport, RevertProof
from harness.upstream.sources import DEFAULT_CACHE, REVERTS, SourceError, Sources, releases
from harness.upstream.standins import StandInError
from reference_impl.fixset import FIX_NAMES

FIRST_WITH_ALL_FIXES = "0.5.16"
REVERT_CASES = 48


@dataclass(frozen=True)
class UpstreamConfig:
    """Options of one sglang-check / sglang-compat invocation."""

    versions: tuple[str, ...]
    source: LocalSource | None  # --source: one tree on disk instead of the releases
    out_dir: Path | None
    cache: Path
    reverts: bool
    every: int


def check_release(config: UpstreamConfig, version: str) -> ReleaseReport:
    """Differential over the grid on the release, then each committed revert patch of it."""
    sources = Sources(config.cache)
    try:
        root = sources.tree(version)
    except SourceError as exc:
        return ReleaseReport(version, None, error=str(exc))
    report = _differential(config, root, version, version)
    if report.original is None or not (config.reverts and (REVERTS / version).is_dir()):
        return report
    every = cases(version)
    proofs = []
    for fix in FIX_NAMES:
        # The configurations where the oracle says this revert changes a governed value (sampled).
        picked = discriminating(every, fix, version, FIX_VERDICTS[fix])
        picked = picked[:: max(1, len(picked) // REVERT_CASES)]
        try:
            tree = SourceTree(sources.reverted(version, fix))
            proofs.append(RevertProof(fix, run_tree(f"{version}+revert:{fix}", tree, version, picked)))
        except (SourceError, LinkError, StandInError) as exc:
            proofs.append(RevertProof(fix, None, f"{type(exc).__name__}: {exc}"))
    return dataclasses.replace(report, reverts=tuple(proofs))


def check_source(config: UpstreamConfig, source: LocalSource) -> ReleaseReport:
    """Differential, hook targets and fix presence on a tree on disk, by the rules of the version it states."""
    report = _differential(config, source.root, source.rules_version, source.version)
    return dataclasses.replace(report, source=source)


def _differential(config: UpstreamConfig, root: Path, rules: str, version: str) -> ReleaseReport:
    """The grid of `rules`' release (every Nth configuration) driven through the tree at `root`."""
    preflight(root)
    grid = cases(rules)[:: config.every]
    try:
        original = run_tree(version, SourceTree(root), rules, grid)
    except (LinkError, StandInError) as exc:
        return ReleaseReport(version, root, error=f"{type(exc).__name__}: {exc}")
    return ReleaseReport(version, root, original)


def _parse(argv: list[str], prog: str, compat: bool) -> UpstreamConfig:
    parser = argparse.ArgumentParser(prog=f"harness {prog}", description=__doc__)
    parser.add_argument("versions", nargs="*", help="sglang releases (default: " + (
        f"every release from {FIRST_WITH_ALL_FIXES} to the newest" if compat else "0.5.16 and the newest") + ")")
    parser.add_argument("--source", type=Path, metavar="DIR",
                        help="check this sglang tree instead of releases: a checkout's python/ folder, an unpacked "
                             "wheel, site-packages or the sglang package dir (no revert proofs)")
    parser.add_argument("--out", type=Path, help=f"write report.json, report.md and {VERDICTS_FILE} per release "
                                                 "here (with --source: in this directory)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="wheel and tree cache")
    parser.add_argument("--no-reverts", action="store_true", help="skip the revert patches")
    parser.add_argument("--every", type=int, default=1, help="check every Nth grid configuration (default 1)")
    ns = parser.parse_args(argv)
    if ns.every < 1:
        parser.error("--every: must be >= 1")
    versions = tuple(ns.versions)
    if ns.source is not None:
        if versions:
            parser.error(f"--source: give either release versions ({' '.join(versions)}) or --source, not both")
        return UpstreamConfig((), locate(ns.source), ns.out, ns.cache, False, ns.every)
    if not versions:
        known = releases(FIRST_WITH_ALL_FIXES)
        versions = tuple(known) if compat else (FIRST_WITH_ALL_FIXES, known[-1])
    # Revert proofs belong to sglang-check; sglang-compat reports what each release holds.
    return UpstreamConfig(versions, None, ns.out, ns.cache, not ns.no_reverts and not compat, ns.every)


def _run(config: UpstreamConfig, prog: str) -> int:
    failed = False
    trees = [(config.source.version, config.out_dir)] if config.source else [
        (version, config.out_dir / version if config.out_dir else None) for version in config.versions]
    for version, folder in trees:
        tic = time.perf_counter()
        try:
            report = check_source(config, config.source) if config.source else check_release(config, version)
        except UnreadableSource as exc:
            # Bad input, not a layout the check lacks: say which file and target, keep the error with the results.
            print(f"harness {prog}: {exc}", file=sys.stderr)
            _write(folder, ReleaseReport(version, None, error=f"UnreadableSource: {exc}", source=config.source))
            return 2
        print(report.markdown())
        print(f"({time.perf_counter() - tic:.1f} s)\n")
        _write(folder, report)
        failed |= report.error is not None or any(not p.caught for p in report.reverts)
    return 1 if failed else 0


def _write(folder: Path | None, report: ReleaseReport) -> None:
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    (folder / "report.md").write_text(report.markdown(), encoding="utf-8")
    (folder / VERDICTS_FILE).write_text(json.dumps(report.verdicts_json(), indent=2) + "\n", encoding="utf-8")


@entry_point("harness sglang-check")
def main(argv: list[str] | None = None) -> int:
    """sglang-check: differential + revert proofs (exit 1 when a revert is missed or a release cannot be driven)."""
    return _run(_parse(list(sys.argv[1:] if argv is None else argv), "sglang-check", compat=False), "sglang-check")


@entry_point("harness sglang-compat")
def compat_main(argv: list[str] | None = None) -> int:
    """sglang-compat: per release, hook targets and which fixes the source holds."""
    return _run(_parse(list(sys.argv[1:] if argv is None else argv), "sglang-compat", compat=True), "sglang-compat")
