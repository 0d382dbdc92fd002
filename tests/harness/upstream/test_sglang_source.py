"""The five fixes in sglang's own released source, run on the CPU through the live hooks and oracle_check.

Acceptance of issue 15: per-fix differential counts with 0 mismatches; each revert patch caught on
0.5.16 and 0.5.23 with 0 false alarms on the originals; pre-fix releases flagged for what they lack.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.instrument.targets import resolve_static
from harness.upstream.check import FIX_VERDICTS, run_tree
from harness.upstream.grid import cases, discriminating
from harness.upstream.linker import SourceTree
from harness.upstream.sources import Sources
from reference_impl.fixset import FIX_NAMES, MOE_DP1_ATTN_CP
from tests.harness.upstream.conftest import tree_of

ROOT = Path(__file__).resolve().parents[3]
NEWEST = "0.5.23"


@pytest.mark.parametrize("version", ["0.5.16", NEWEST])
def test_differential_has_no_mismatch(sources: Sources, version: str) -> None:
    grid = cases(version)[::2]
    report = run_tree(version, SourceTree(tree_of(sources, version)), version, grid)
    assert not report.raised, [r.errors for r in report.raised[:3]]
    for fix in FIX_NAMES:
        count = report.count(fix)
        assert count.mismatched == 0, count.examples
        assert count.compared >= 30, (fix, count)


def _sample(items: list, most: int) -> list:
    step = max(1, len(items) // most)
    return items[::step][:most]


@pytest.mark.parametrize("version", ["0.5.16", NEWEST])
@pytest.mark.parametrize("fix", FIX_NAMES)
def test_revert_patch_is_caught(sources: Sources, version: str, fix: str) -> None:
    tree_of(sources, version)
    picked = _sample(discriminating(cases(version), fix, version, FIX_VERDICTS[fix]), 16)
    assert picked, f"no configuration separates {fix} in the oracle"
    original = run_tree(version, SourceTree(sources.tree(version)), version, picked)
    assert original.flagged() == (), [c.examples for c in original.counts]  # no false alarm
    reverted = run_tree(f"{version}+{fix}", SourceTree(sources.reverted(version, fix)), version, picked)
    count = reverted.count(fix)
    assert fix in reverted.flagged(), [c.to_json() for c in reverted.counts]
    assert set(count.fields) <= set(FIX_VERDICTS[fix]) and count.fields
    assert count.mismatched >= len(picked) // 2, count.to_json()


@pytest.mark.parametrize(("release", "absent"), [
    # #25685, #25907, #26643 and #26047 first shipped in 0.5.13; #22003 (moe-dp1-attn-cp) in 0.5.11.
    ("0.5.12.post1", set(FIX_NAMES) - {MOE_DP1_ATTN_CP}),
    ("0.5.10.post1", set(FIX_NAMES)),
])
def test_pre_fix_releases_are_flagged(sources: Sources, release: str, absent: set[str]) -> None:
    # Every third configuration: a stride prime to the six FlashInfer inputs per layout, so SP geometries
    # (the only ones fix 1 changes) are sampled too.
    report = run_tree(release, SourceTree(tree_of(sources, release)), release, cases(release)[::3])
    assert set(report.flagged()) == absent
    for fix in FIX_NAMES:
        assert report.count(fix).compared > 0, (fix, report.count(fix).unobserved)
    # Each missing fix fails on the values its PR changed.
    assert set(report.count("sp-runtime-max-tokens").fields) == {"runtime_max_tokens_per_rank"}
    assert set(report.count("a2a-token-cap").fields) == {"a2a_max_num_tokens", "a2a_workspace_bytes_per_rank"}
    assert {"capture_global_num_tokens", "a2a_max_num_tokens"} <= set(report.count("dp-workspace-sizing").fields)
    assert "require_attn_tp_gather" in report.count("disable-attn-tp-gather").fields
    if MOE_DP1_ATTN_CP in absent:
        assert report.count(MOE_DP1_ATTN_CP).fields == ("mlp_scatter_mode.sparse",)


@pytest.mark.parametrize(("version", "attrs"), [
    ("0.5.20", ("LayerScatterModes.init_new",)), ("0.5.21", ("_ffn_decl",)), (NEWEST, ("_resolve_ffn",))])
def test_scatter_mode_hook_follows_the_layout(sources: Sources, version: str, attrs: tuple[str, ...]) -> None:
    """The live probe's fix-5 hook: the communicator until 0.5.20, layer_boundary's FFN row contract after."""
    resolved = {r.target: r.candidate for r in resolve_static(tree_of(sources, version))}
    assert resolved["mlp_scatter_mode"] is not None and resolved["mlp_scatter_mode"].attrs == attrs


def test_compat_command_writes_reports(tmp_path: Path, sources: Sources) -> None:
    tree_of(sources, "0.5.16")
    proc = subprocess.run([sys.executable, "-m", "harness", "sglang-compat", "0.5.16", "--every", "8",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "0.5.16" / "report.json").read_text())
    assert report["fixes"] == {fix: "present" for fix in FIX_NAMES}
    assert {t["target"] for t in report["hook_targets"] if t["module"] is None} == set()
    assert "| moe-dp1-attn-cp | present |" in (tmp_path / "0.5.16" / "report.md").read_text()


def test_unknown_release_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "sglang-compat", "0.0.404", "--out", str(tmp_path),
                           "--cache", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1
    assert "sglang==0.0.404" in proc.stdout
    assert json.loads((tmp_path / "0.0.404" / "report.json").read_text())["error"].startswith("sglang==0.0.404")
