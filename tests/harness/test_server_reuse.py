"""Server reuse: neighbouring scenarios with the same launch flags share one real reference-engine server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from harness.serve.server import group_members
from harness.store.results import load_result
from harness.store.timing import markdown, row

REPO = Path(__file__).resolve().parents[2]
BASELINE = (REPO / "harness" / "scenarios" / "baseline.toml").read_text()


def _variant(directory: Path, name: str, max_bs: int) -> Path:
    """baseline under another name, a short workload, and its own cuda_graph_max_bs."""
    text = BASELINE.replace('name = "baseline"', f'name = "{name}"')
    text = re.sub(r"cuda_graph_max_bs = \d+", f"cuda_graph_max_bs = {max_bs}", text)
    text = re.sub(r"input_len = \d+", "input_len = 16", text)
    text = re.sub(r"output_len = \d+", "output_len = 4", text)
    text = re.sub(r"warmups = \d+", "warmups = 1", text)
    text = re.sub(r"requests = \d+", "requests = 2", text)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_same_flags_share_one_server_and_each_keeps_its_own_records(tmp_path: Path) -> None:
    first, second, other = (_variant(tmp_path, "first", 4), _variant(tmp_path, "second", 4),
                            _variant(tmp_path, "other", 2))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(first), str(second), str(other),
                           "--out", str(out), "--cache-dir", str(tmp_path / "cache")],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    results = {name: load_result(out / name / "result.json") for name in ("first", "second", "other")}
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-2000:])
    a, b, c = results["first"], results["second"], results["other"]
    assert all(r["status"] == "ok" and r["oracle"]["ok"] is True for r in (a, b, c))
    # One process served first and second; other (different flags) got its own.
    assert a["server"]["pid"] == b["server"]["pid"] != c["server"]["pid"]
    assert a["server"]["reused_from"] is None and b["server"]["reused_from"] == "first"
    assert c["server"]["reused_from"] is None
    assert a["server"]["shutdown"] is None and b["server"]["shutdown"]["survivors"] == []
    assert a["timing"]["server_kept_for_next"] and not b["timing"]["server_kept_for_next"]
    assert b["timing"]["startup_s"] == 0.0 and b["timing"]["server_startup_s"] == a["timing"]["startup_s"]
    assert b["startup"]["reused_from"] == "first" and b["startup"]["capture"]["phases"]
    assert not (out / "second" / "server.log").exists() and (out / "first" / "server.log").stat().st_size
    # Each scenario's records: the server's startup records plus only its own requests' records.
    for r in (a, b):
        kinds = [rec["kind"] for rec in r["instrumentation"]["records"]]
        assert kinds.count("process_start") == 1 and "cuda_graph_capture" in kinds, kinds
    assert (out / "first" / "server-records").is_dir() and (out / "second" / "records").is_dir()
    # The cache directory reached the server's environment.
    assert a["server"]["env"]["TRITON_CACHE_DIR"] == str((tmp_path / "cache" / "triton").resolve())
    for r in (a, c):
        assert group_members(r["server"]["pid"]) == []
        names = [m["name"] for m in r["startup"]["milestones"]]
        assert "weights loaded" in names and "capture target decode end" in names, names
        assert r["timing"]["total_s"] >= r["timing"]["startup_s"] > 0
    table = markdown([row(r, install_s=12.0) for r in (a, b, c)])
    assert "| second | ok | 12.0 | 0.0 |" in table and "reused from first" in table
    assert "time" in done.stdout and "server reused from first" in done.stdout


def test_no_reuse_server_starts_one_per_scenario(tmp_path: Path) -> None:
    first, second = _variant(tmp_path, "first", 4), _variant(tmp_path, "second", 4)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(first), str(second), "--out", str(out),
                           "--no-reuse-server"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    a, b = (load_result(out / n / "result.json") for n in ("first", "second"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert a["server"]["pid"] != b["server"]["pid"] and b["server"]["reused_from"] is None
    assert a["server"]["shutdown"] is not None and (out / "second" / "server.log").stat().st_size
