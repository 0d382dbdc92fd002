"""`harness import` / `harness export` against JSONL written by the real sglang.bench_serving (fixture)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.asv import readout
from harness.bench_serving import exporter, importer
from harness.bench_serving.convert import BenchServingError, read_jsonl, to_line, to_result
from harness.store.results import load_result

DATA = Path(__file__).parent / "data"
REAL = DATA / "reference-cpu.jsonl"
REPO = Path(__file__).resolve().parents[3]
# A real harness run of real sglang 0.5.16 on an H100 (committed evidence).
SGLANG_RESULT = REPO / "results/gpu/2026-11-24-h100/runs/gpu-baseline--sglang/gpu-baseline/result.json"
HARNESS = {"version": "test", "commit": None, "dirty": None}


def _close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-12 relative (seconds -> ms -> seconds may move the last bit)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_close(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


def _import(tmp_path: Path, source: Path, *args: str) -> tuple[int, list[Path]]:
    out = tmp_path / "imported"
    code = importer.main([str(source), "--out", str(out), *args])
    return code, sorted(out.glob("**/result.json"))


def test_real_file_round_trips_line_for_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    originals = [line.data for line in read_jsonl(REAL)]
    assert len(originals) == 2 and originals[0]["request_rate"] == float("inf")
    code, paths = _import(tmp_path, REAL)
    assert code == 0 and [p.parent.parent.name for p in paths] == ["line-01", "line-02"]
    capsys.readouterr()
    out = tmp_path / "exported.jsonl"
    for path in paths:
        assert exporter.main([str(path.parent.parent), "--out", str(out)]) == 0
    text = out.read_text()
    assert '"request_rate": Infinity' in text  # written exactly as bench_serving writes it
    exported = [json.loads(line) for line in text.splitlines()]
    for original, back in zip(originals, exported, strict=True):
        assert list(back) == list(original)
        assert _close(back, original), [k for k in original if not _close(back[k], original[k])]


def test_imported_result_is_a_valid_run_with_the_harness_definitions(tmp_path: Path) -> None:
    line = read_jsonl(REAL)[0]
    code, paths = _import(tmp_path, REAL, "--line", "1", "--scenario", "baseline")
    assert code == 0 and len(paths) == 1
    result = load_result(paths[0])  # schema-valid
    assert result["status"] == "ok" and result["target"]["kind"] == "reference"  # server_info says so
    assert result["source"]["kind"] == "bench_serving" and result["source"]["line"] == 1
    samples = result["samples"]
    data = line.data
    assert len(samples) == data["completed"] == 8
    for sample, ttft, itls, n in zip(samples, data["ttfts"], data["itls"], data["output_lens"], strict=True):
        assert sample["ttft_ms"] == pytest.approx(ttft * 1000)
        assert sample["tpot_ms"] == pytest.approx(sum(itls) * 1000 / (n - 1))  # first to last token chunk
    # TTFT is defined alike; the medians agree with bench_serving's own.
    assert result["summary"]["ttft_ms"]["median"] == pytest.approx(data["median_ttft_ms"], rel=1e-9)
    # Its TPOT also counts the gap to the [DONE] chunk: the harness's is never larger.
    ours = statistics.median(s["tpot_ms"] for s in samples)
    assert ours <= data["median_tpot_ms"] * (1 + 1e-9)
    assert result["summary"]["e2e_ms"]["median"] == data["median_e2e_latency_ms"]
    # asv reads the latencies; what only a live server reports is n/a, not a failure.
    run_dir = paths[0].parent.parent
    tracked = readout.load_result(run_dir, "baseline")
    assert readout.latency_median_ms(tracked, "tpot_ms") == result["summary"]["tpot_ms"]["median"]
    for metric in (readout.a2a_workspace_bytes, readout.capture_oom, readout.capture_mem_bytes,
                   readout.oracle_failures):
        with pytest.raises(NotImplementedError, match="bench_serving"):
            metric(tracked)


def test_show_prints_both_definitions(tmp_path: Path) -> None:
    _code, paths = _import(tmp_path, REAL, "--line", "2")
    shown = subprocess.run([sys.executable, "-m", "harness", "show", str(paths[0].parent.parent)],
                           capture_output=True, text=True, cwd=REPO, env={"COLUMNS": "200", "PATH": ""}, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "imported from sglang.bench_serving" in shown.stdout and "its own medians" in shown.stdout


def test_gate_compares_imported_runs(tmp_path: Path) -> None:
    from harness.gate import cli as gate_cli

    _code, paths = _import(tmp_path, REAL, "--line", "1")
    base = paths[0].parent.parent
    slow = json.loads(REAL.read_text().splitlines()[0])
    slow["ttfts"] = [x * 1.5 for x in slow["ttfts"]]
    slow["itls"] = [[x * 1.5 for x in row] for row in slow["itls"]]
    slow_file = tmp_path / "slow.jsonl"
    slow_file.write_text(json.dumps(slow) + "\n")
    head = tmp_path / "head"
    assert importer.main([str(slow_file), "--out", str(head)]) == 0
    # 8 requests of a noisy CPU fixture cannot show "no change" within the TPOT interval limit: the gate
    # says inconclusive (exit 3, neutral), never a regression.
    assert gate_cli.main(["--base", str(base), "--head", str(base), "--out", str(tmp_path / "aa"), "--no-plots"]) == 3
    assert gate_cli.main(["--base", str(base), "--head", str(head), "--out", str(tmp_path / "ab"), "--no-plots"]) == 1


def test_a_harness_run_exports_with_bench_servings_formulas(tmp_path: Path) -> None:
    result = load_result(SGLANG_RESULT)
    line = to_line(result)
    good = [s for s in result["samples"] if s["ok"]]
    assert line["completed"] == len(good) and line["max_concurrency"] == 1
    assert line["median_ttft_ms"] == pytest.approx(result["summary"]["ttft_ms"]["median"])
    tpots = [(s["e2e_ms"] - s["ttft_ms"]) / (s["completion_tokens"] - 1) for s in good]
    assert line["median_tpot_ms"] == pytest.approx(statistics.median(tpots))
    assert line["ttfts"] == pytest.approx([s["ttft_ms"] / 1000 for s in result["samples"]])
    # And back: the exported line imports to the same per-request TTFTs and ITLs.
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(line) + "\n")
    again = to_result(read_jsonl(path)[0], "gpu-baseline", HARNESS)
    assert [s["ttft_ms"] for s in again["samples"]] == pytest.approx([s["ttft_ms"] for s in good])
    assert again["samples"][0]["itl_ms"] == pytest.approx(good[0]["itl_ms"])


def _broken(tmp_path: Path, edit: Any, raw: str | None = None) -> Path:
    lines = REAL.read_text().splitlines()
    data = json.loads(lines[1])
    if edit is not None:
        edit(data)
    path = tmp_path / "broken.jsonl"
    path.write_text(lines[0] + "\n" + (raw if raw is not None else json.dumps(data)) + "\n")
    return path


@pytest.mark.parametrize(("edit", "raw", "message"), [
    (None, '{"backend": "sglang", "completed": 8', "broken.jsonl:2: not valid JSON"),
    (lambda d: d["ttfts"].__setitem__(3, "x"), None, "broken.jsonl:2: ttfts[3]: expected a finite number >= 0, got 'x'"),
    (lambda d: d["itls"].pop(), None, "broken.jsonl:2: itls: 7 entries, input_lens has 8"),
    (lambda d: d.pop("median_ttft_ms"), None, "broken.jsonl:2: median_ttft_ms: missing"),
    (lambda d: d.update(backend="vllm"), None, "broken.jsonl:2: backend: harness results hold sglang runs, got 'vllm'"),
    (lambda d: d.update(completed=9), None, "broken.jsonl:2: completed: 9, but 8 of 8 requests have no error"),
    (lambda d: d.pop("itls"), None, "broken.jsonl:2: itls: missing"),
])
def test_bad_input_names_file_line_and_field_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, raw: str | None, message: str) -> None:
    code, paths = _import(tmp_path, _broken(tmp_path, edit, raw))
    assert code == 2 and paths == []
    assert not (tmp_path / "imported").exists(), "a bad line must not leave half an import behind"
    assert message in capsys.readouterr().err


def test_failed_requests_and_lines_without_details(tmp_path: Path) -> None:
    data = json.loads(REAL.read_text().splitlines()[0])
    data["errors"][2] = "Traceback (most recent call last):\naiohttp.ClientConnectorError: refused"
    data["completed"] = 7
    path = tmp_path / "failed.jsonl"
    path.write_text(json.dumps(data) + "\n")
    result = to_result(read_jsonl(path)[0], "x", HARNESS)
    assert result["status"] == "failed" and result["failure"]["kind"] == "connection"
    assert result["samples"][2]["error"] == data["errors"][2]  # kept whole
    assert _close(to_line(result), data)
    bare = {k: v for k, v in data.items() if k not in ("input_lens", "output_lens", "ttfts", "itls",
                                                        "generated_texts", "errors")}
    path.write_text(json.dumps(bare) + "\n")
    summary_only = to_result(read_jsonl(path)[0], "x", HARNESS)
    assert summary_only["samples"] == [] and summary_only["source"]["summary_from"] == "aggregates"
    assert summary_only["summary"]["tpot_ms"]["median"] == data["median_tpot_ms"]  # its own definition here
    assert _close(to_line(summary_only), bare)
    with pytest.raises(BenchServingError, match="no benchmark lines"):
        (tmp_path / "empty.jsonl").write_text("\n")
        read_jsonl(tmp_path / "empty.jsonl")
