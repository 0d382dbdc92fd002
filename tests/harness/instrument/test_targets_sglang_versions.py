"""Every hook target resolves in real sglang 0.5.16 and 0.5.23 (installed --no-deps, inspected with ast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.instrument.targets import TARGETS, module_file, resolve_static

CACHE = Path(__file__).resolve().parents[3] / ".cache"
# Targets each version is known to lack (none: 0.5.23's mlp_scatter_mode hooks layer_boundary's
# _resolve_ffn, which replaced communicator.py's LayerScatterModes in 0.5.21).
KNOWN_MISSING: dict[str, set[str]] = {"0.5.16": set(), "0.5.23": set()}


def _installed(version: str) -> Path:
    """sglang==version unpacked under .cache/ (no dependencies); skips when it cannot be downloaded."""
    target = CACHE / f"sglang-{version}"
    if (target / "sglang" / "__init__.py").is_file():
        return target
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--disable-pip-version-check",
         "--target", str(target), f"sglang=={version}"],
        capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or not (target / "sglang" / "__init__.py").is_file():
        pytest.skip(f"cannot install sglang=={version}: {proc.stderr.strip().splitlines()[-1:]}")
    return target


@pytest.mark.parametrize("version", sorted(KNOWN_MISSING))
def test_every_hook_target_resolves(version: str) -> None:
    root = _installed(version)
    resolutions = {r.target: r for r in resolve_static(root)}
    assert set(resolutions) == {t.name for t in TARGETS}
    unresolved = {name for name, r in resolutions.items() if r.candidate is None}
    assert unresolved == KNOWN_MISSING[version], {n: resolutions[n].reason for n in unresolved}
    for name, resolution in resolutions.items():
        if resolution.candidate is not None:
            assert module_file(root, resolution.candidate.module) is not None, name


def test_versions_resolve_to_the_documented_locations() -> None:
    """Both versions hook the decode runner under model_executor/runner/ and the dispatcher in flashinfer.py."""
    for version in KNOWN_MISSING:
        resolved = {r.target: r.candidate for r in resolve_static(_installed(version))}
        assert resolved["cuda_graph_capture"].module.endswith("runner.decode_cuda_graph_runner")
        assert resolved["dispatch"].attrs == ("FlashinferDispatcher.dispatch",)
        assert resolved["attn_tp_gather"].attrs[0] == "require_attn_tp_gather"
    scatter = {v: resolve_static(_installed(v)) for v in KNOWN_MISSING}
    assert [next(r.candidate.attrs for r in scatter[v] if r.target == "mlp_scatter_mode") for v in KNOWN_MISSING] == [
        ("LayerScatterModes.init_new",), ("_resolve_ffn",)]
