"""Render the evidence folder as report.md plus plots; `python -m tests.gpu.support.report DIR` re-renders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load_results(root: Path) -> list[dict[str, Any]]:
    """Every result.json under root/runs, sorted by scenario then target."""
    results = [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*/*/result.json"))]
    return sorted(results, key=lambda r: (r["scenario"], r["target"]["kind"]))


def _ms(summary: dict[str, Any], key: str, stat: str) -> str:
    value = (summary.get(key) or {}).get(stat)
    return "–" if value is None else f"{value:.2f}"


def _reason(result: dict[str, Any]) -> str:
    text = result.get("skip_reason") or (result.get("failure") or {}).get("message") or ""
    return text.replace("|", "\\|").replace("\n", " ")[:200]


def _verdicts(result: dict[str, Any]) -> str:
    verdicts = (result.get("oracle") or {}).get("verdicts") or []
    if not verdicts:
        return (result.get("oracle") or {}).get("error") or "–"
    passed = sum(1 for v in verdicts if v.get("passed"))
    return f"{passed}/{len(verdicts)} passed"


def capture_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, what, memory) for each capture the log or the instrumentation records saw."""
    rows = []
    capture = (result.get("startup") or {}).get("capture") or {}
    for phase in capture.get("phases") or []:
        rows.append(("log", f"{phase['name']} ({phase['elapsed_s']:.2f} s)",
                     f"{phase['mem_usage_gb']:.2f} GB used, {phase['avail_mem_gb']:.2f} GB left"))
    for record in (result.get("instrumentation") or {}).get("records") or []:
        if record.get("kind") == "cuda_graph_capture":
            before, after = record.get("mem_free_before"), record.get("mem_free_after")
            used = f"{(before - after) / 2**20:.1f} MiB" if isinstance(before, int) and isinstance(after, int) else "?"
            rows.append(("records", f"bs={record.get('batch_size')} tokens={record.get('num_tokens')}", used))
        if record.get("kind") == "capture_oom":
            rows.append(("records", f"capture_oom bs={record.get('batch_size')}",
                         f"requested {record.get('requested_bytes')} B, free {record.get('free_bytes')} B"))
    return rows


def render(root: Path) -> Path:
    """Write root/report.md (and root/plots/*.png when matplotlib is there); returns the report path."""
    results = load_results(root)
    checks = json.loads((root / "checks.json").read_text()) if (root / "checks.json").exists() else []
    env = json.loads((root / "environment.json").read_text()) if (root / "environment.json").exists() else {}
    lines = [f"# GPU evidence: {root.name}", ""]
    if env:
        lines += ["| | |", "| --- | --- |"] + [f"| {k} | {str(v).replace('|', '/')} |" for k, v in sorted(env.items())]
        lines.append("")
    lines += ["## Scenarios (BS=1)", "",
              "| scenario | target | version | status | startup | startup s | TTFT med ms | TTFT p90 | "
              "TPOT med ms | TPOT p90 | n | oracle | reason |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        startup = r.get("startup") or {}
        s = r.get("summary") or {}
        lines.append(f"| {r['scenario']} | {r['target']['kind']} | {r['target'].get('version') or '–'} | "
                     f"{r['status']} | {startup.get('outcome', '–')} | {startup.get('elapsed_s', '–')} | "
                     f"{_ms(s, 'ttft_ms', 'median')} | {_ms(s, 'ttft_ms', 'p90')} | {_ms(s, 'tpot_ms', 'median')} | "
                     f"{_ms(s, 'tpot_ms', 'p90')} | {(s.get('tpot_ms') or {}).get('n', 0)} | {_verdicts(r)} | "
                     f"{_reason(r)} |")
    lines += ["", "## CUDA graph capture memory", "", "| scenario | target | source | capture | memory |",
              "| --- | --- | --- | --- | --- |"]
    for r in results:
        for source, what, memory in capture_rows(r):
            lines.append(f"| {r['scenario']} | {r['target']['kind']} | {source} | {what} | {memory} |")
    lines += ["", "## Oracle verdicts", "", "| scenario | target | name | expected | observed | passed |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for v in (r.get("oracle") or {}).get("verdicts") or []:
            lines.append(f"| {r['scenario']} | {r['target']['kind']} | {v.get('name')} | {v.get('expected')} | "
                         f"{v.get('observed')} | {v.get('passed')} |")
    lines += ["", "## Checks", "", "| check | outcome | details |", "| --- | --- | --- |"]
    for c in checks:
        details = {k: v for k, v in c.items() if k not in ("check", "outcome")}
        lines.append(f"| {c['check']} | {c['outcome']} | {json.dumps(details, default=str)[:300].replace('|', '/')} |")
    plots = _plots(root, results)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots]
    lines += ["", "Exact commands: [commands.txt](commands.txt); each run's result.json, server.log and "
              "instrumentation records are under runs/.", ""]
    report = root / "report.md"
    report.write_text("\n".join(lines), encoding="utf-8")
    return report


def _plots(root: Path, results: list[dict[str, Any]]) -> list[Path]:
    measured = [r for r in results if (r.get("summary") or {}).get("tpot_ms", {}).get("median") is not None]
    if not measured:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        (root / "plots-missing.txt").write_text(f"matplotlib unavailable: {exc}\n")
        return []
    (root / "plots").mkdir(exist_ok=True)
    labels = [f"{r['scenario']}\n{r['target']['kind']}" for r in measured]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(measured)), 4.5))
    for ax, key, title in ((axes[0], "ttft_ms", "TTFT (ms), BS=1"), (axes[1], "tpot_ms", "TPOT (ms), BS=1")):
        med = [r["summary"][key]["median"] or 0 for r in measured]
        p90 = [r["summary"][key].get("p90") or m for r, m in zip(measured, med, strict=True)]
        ax.bar(range(len(measured)), med, yerr=[[0] * len(med), [b - a for a, b in zip(med, p90, strict=True)]],
               capsize=4, color="#4477aa")
        ax.set_xticks(range(len(measured)), labels, fontsize=7)
        ax.set_title(title + " median, bar to p90")
    fig.tight_layout()
    path = root / "plots" / "latency.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


if __name__ == "__main__":
    print(render(Path(sys.argv[1])))
