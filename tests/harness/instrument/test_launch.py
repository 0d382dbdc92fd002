"""instrument_env: records dir and probe on PYTHONPATH; the probe chains to an existing sitecustomize."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.instrument.launch import PROBE_DIR, instrument_env
from reference_impl.contract.records import ENV_DIR


def test_env_points_at_records_and_probe(tmp_path: Path) -> None:
    env = instrument_env(tmp_path / "records", "sglang", base_env={"PYTHONPATH": "/a:/b"})
    assert env[ENV_DIR] == str((tmp_path / "records").resolve())
    assert env["HARNESS_INSTRUMENT_TARGET"] == "sglang"
    assert env["PYTHONPATH"].split(os.pathsep) == [str(PROBE_DIR), "/a", "/b"]
    assert (PROBE_DIR / "sitecustomize.py").is_file()


def test_probe_is_not_added_twice(tmp_path: Path) -> None:
    once = instrument_env(tmp_path, "reference", base_env={})
    twice = instrument_env(tmp_path, "reference", base_env={"PYTHONPATH": once["PYTHONPATH"]})
    assert twice["PYTHONPATH"] == str(PROBE_DIR)


def test_unknown_target_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="instrument target: expected one of reference, sglang, got 'vllm'"):
        instrument_env(tmp_path, "vllm")


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV_DIR, "PYTHONPATH")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


def test_existing_sitecustomize_still_runs(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("import os\nos.environ['OTHER_SITECUSTOMIZE'] = 'ran'\n")
    env = instrument_env(tmp_path / "records", "sglang", base_env={"PYTHONPATH": str(other)})
    proc = _run("import os, sys; print(os.environ.get('OTHER_SITECUSTOMIZE'));"
                "print(any(type(f).__name__ == 'PostImportFinder' for f in sys.meta_path))", env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["ran", "True"]


def test_broken_sitecustomize_downstream_does_not_break_the_process(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "sitecustomize.py").write_text("raise RuntimeError('boom')\n")
    env = instrument_env(tmp_path / "records", "sglang", base_env={"PYTHONPATH": str(other)})
    proc = _run("print('alive')", env)
    assert proc.returncode == 0
    assert proc.stdout.strip() == "alive"
    assert "RuntimeError: boom" in proc.stderr


def test_no_records_dir_means_no_probe(tmp_path: Path) -> None:
    env = instrument_env(tmp_path / "records", "sglang")
    env[ENV_DIR] = ""
    proc = _run("import sys; print(any(type(f).__name__ == 'PostImportFinder' for f in sys.meta_path))", env)
    assert proc.stdout.strip() == "False"
    assert not (tmp_path / "records").exists()


def test_a_process_that_never_imports_sglang_writes_no_file(tmp_path: Path) -> None:
    env = instrument_env(tmp_path / "records", "sglang")
    proc = _run("import json; print('ok')", env)
    assert proc.returncode == 0, proc.stderr
    assert not list((tmp_path / "records").glob("*.jsonl"))
