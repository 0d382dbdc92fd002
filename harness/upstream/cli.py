"""`harness sglang-check` / `harness sglang-compat`: the five fixes checked in sglang's released source, on the CPU."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.upstream.check import FIX_VERDICTS, run_tree
from harness.upstream.grid import cases, discriminating
from harness.upstream.linker import LinkError, SourceTree
from harness.upstream.report import ReleaseReport, RevertProof
from harness.upstream.sources import DEFAULT_CACHE, REVERTS, SourceError, Sources, releases
from harness.upstream.standins import StandInError
from reference_impl.fixset import FIX_NAMES

FIRST_WITH_ALL_FIXES = "0.5.16"
REVERT_CASES = 48


@dataclass(frozen=True)
class UpstreamConfig:
    """Options of one sglang-check / sglang-compat invocation."""

    versions: tuple[str, ...]
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
    every = cases(version)
    grid = every[:: config.every]
    try:
        original = run_tree(version, SourceTree(root), version, grid)
    except (LinkError, StandInError) as exc:
        return ReleaseReport(version, root, error=f"{type(exc).__name__}: {exc}")
    proofs = []
    if config.reverts and (REVERTS / version).is_dir():
        for fix in FIX_NAMES:
            # The configurations where the oracle says this revert changes a governed value (sampled).
            picked = discriminating(every, fix, version, FIX_VERDICTS[fix])
            picked = picked[:: max(1, len(picked) // REVERT_CASES)]
            try:
                tree = SourceTree(sources.reverted(version, fix))
                proofs.append(RevertProof(fix, run_tree(f"{version}+revert:{fix}", tree, version, picked)))
            except (SourceError, LinkError, StandInError) as exc:
                proofs.append(RevertProof(fix, None, f"{type(exc).__name__}: {exc}"))
    return ReleaseReport(version, root, original, reverts=tuple(proofs))


def _parse(argv: list[str], prog: str, compat: bool) -> UpstreamConfig:
    parser = argparse.ArgumentParser(prog=f"harness {prog}", description=__doc__)
    parser.add_argument("versions", nargs="*", help="sglang releases (default: " + (
        f"every release from {FIRST_WITH_ALL_FIXES} to the newest" if compat else "0.5.16 and the newest") + ")")
    parser.add_argument("--out", type=Path, help="write report.json and report.md per release here")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="wheel and tree cache")
    parser.add_argument("--no-reverts", action="store_true", help="skip the revert patches")
    parser.add_argument("--every", type=int, default=1, help="check every Nth grid configuration (default 1)")
    ns = parser.parse_args(argv)
    if ns.every < 1:
        parser.error("--every: must be >= 1")
    versions = tuple(ns.versions)
    if not versions:
        try:
            known = releases(FIRST_WITH_ALL_FIXES)
        except SourceError as exc:
            parser.exit(2, f"harness {prog}: {exc}\n")
        versions = tuple(known) if compat else (FIRST_WITH_ALL_FIXES, known[-1])
    # Revert proofs belong to sglang-check; sglang-compat reports what each release holds.
    return UpstreamConfig(versions, ns.out, ns.cache, not ns.no_reverts and not compat, ns.every)


def _run(config: UpstreamConfig) -> int:
    failed = False
    for version in config.versions:
        tic = time.perf_counter()
        report = check_release(config, version)
        print(report.markdown())
        print(f"({time.perf_counter() - tic:.1f} s)\n")
        if config.out_dir is not None:
            folder = config.out_dir / version
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
            (folder / "report.md").write_text(report.markdown(), encoding="utf-8")
        failed |= report.error is not None or any(not p.caught for p in report.reverts)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """sglang-check: differential + revert proofs (exit 1 when a revert is missed or a release cannot be driven)."""
    return _run(_parse(list(sys.argv[1:] if argv is None else argv), "sglang-check", compat=False))


def compat_main(argv: list[str] | None = None) -> int:
    """sglang-compat: per release, hook targets and which fixes the source holds."""
    return _run(_parse(list(sys.argv[1:] if argv is None else argv), "sglang-compat", compat=True))
