"""Fixture writing synthetic run directories (RUN_DIR/<scenario>/result.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

WriteRun = Callable[..., Path]


@pytest.fixture
def write_run(tmp_path: Path) -> WriteRun:
    """write_run(run_dir_name, {scenario: result_obj(...)}) -> the run directory."""

    def write(name: str, results: dict[str, dict[str, Any]]) -> Path:
        run_dir = tmp_path / name
        for scenario, obj in results.items():
            (run_dir / scenario).mkdir(parents=True, exist_ok=True)
            (run_dir / scenario / "result.json").write_text(json.dumps(obj), encoding="utf-8")
        return run_dir

    return write
