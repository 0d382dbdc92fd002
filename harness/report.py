"""Terminal output with rich: the progress bar while running and the tables of results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

_MAX_VERDICT_LINES = 8


class RichProgress:
    """A rich progress bar driven by the pipeline's phase()/advance() calls."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=True,
        )
        self._task = self._progress.add_task("", total=None)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, text: str, total: int | None = None) -> None:
        self._progress.reset(self._task, description=text, total=total, completed=0)

    def advance(self) -> None:
        self._progress.advance(self._task)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_table(results: list[dict[str, Any]], title: str = "harness run") -> Table:
    """One row per result: outcome, TTFT/TPOT medians and p90, n, oracle."""
    table = Table(title=title)
    for column in ("scenario", "target", "status", "startup", "TTFT med ms", "TTFT p90", "TPOT med ms",
                   "TPOT p90", "n", "server TTFT/ITL ms", "oracle"):
        table.add_column(column, justify="right" if "ms" in column or column in ("n", "TTFT p90", "TPOT p90")
                         else "left")
    for result in results:
        summary = result["summary"]
        startup = result.get("startup") or {}
        metrics = result.get("server_metrics") or {}
        oracle = result.get("oracle") or {}
        status = result["status"]
        style = {"ok": "green", "skipped": "yellow", "failed": "red"}[status]
        table.add_row(
            result["scenario"],
            result["target"]["kind"],
            f"[{style}]{status}[/]",
            startup.get("outcome", "-"),
            _ms(summary["ttft_ms"]["median"]),
            _ms(summary["ttft_ms"]["p90"]),
            _ms(summary["tpot_ms"]["median"]),
            _ms(summary["tpot_ms"]["p90"]),
            str(summary["tpot_ms"]["n"]),
            f"{_ms(metrics.get('ttft_ms_mean'))}/{_ms(metrics.get('itl_ms_mean'))}",
            {True: "[green]pass[/]", False: "[red]FAIL[/]"}.get(oracle.get("ok"), "-"),
        )
    return table


def explain(result: dict[str, Any], console: Console) -> None:
    """The lines a user needs beyond the table: skip reason, failure, capture OOM, failing verdicts."""
    name = result["scenario"]
    if result["status"] == "skipped":
        console.print(f"[yellow]{name}: skipped[/]: {result['skip_reason']}")
    failure = result.get("failure")
    if failure:
        console.print(f"[red]{name}: {failure['stage']} failed ({failure['kind']})[/]: {failure['message']}")
    capture = (result.get("startup") or {}).get("capture") or {}
    for phase in capture.get("phases", []):
        console.print(f"{name}: capture {phase['name']}: {phase['elapsed_s']:.2f} s, "
                      f"{phase['mem_usage_gb']:.2f} GB used, {phase['avail_mem_gb']:.2f} GB left")
    oracle = result.get("oracle") or {}
    failing = [v for v in oracle.get("verdicts", []) if v.get("passed") is False]
    for verdict in failing[:_MAX_VERDICT_LINES]:
        console.print(f"[red]{name}: oracle {verdict['name']}[/]: expected {verdict['expected']!r}, "
                      f"observed {verdict['observed']!r}")
    if len(failing) > _MAX_VERDICT_LINES:
        console.print(f"[red]{name}: {len(failing) - _MAX_VERDICT_LINES} more failing oracle verdicts[/] "
                      "(harness show --json RESULT)")
    if oracle.get("error"):
        console.print(f"[yellow]{name}: oracle[/]: {oracle['error']}")
    for error in (result.get("instrumentation") or {}).get("errors", [])[:5]:
        console.print(f"[yellow]{name}: instrumentation[/]: {error}")
