"""Environment that turns instrumentation on in a server process started by the harness."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reference_impl.contract.records import ENV_DIR

ENV_TARGET = "HARNESS_INSTRUMENT_TARGET"
PROBE_DIR = Path(__file__).resolve().parent / "probe"
TARGETS = ("reference", "sglang")


def instrument_env(records_dir: Path, target: str, base_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Variables to add to the server's environment: records dir, target, probe dir on PYTHONPATH.

    The probe dir carries a sitecustomize.py that chains to any other sitecustomize on the path,
    so it is harmless for the reference engine (which writes records natively).
    """
    if target not in TARGETS:
        raise ValueError(f"instrument target: expected one of {', '.join(TARGETS)}, got {target!r}")
    env = os.environ if base_env is None else base_env
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(PROBE_DIR)]
    return {
        ENV_DIR: str(Path(records_dir).resolve()),
        ENV_TARGET: target,
        "PYTHONPATH": os.pathsep.join([str(PROBE_DIR), *existing]),
    }
