"""Terminal output with rich: the progress bar while running and the tables of results."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.measure.regimes import describe, stored_or_found
from harness.store.timing import startup_split

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
    return "-" if value is None else f"{value:.4g}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def summary_table(results: list[dict[str, Any]], title: str = "harness run") -> Table:
    """One row per result: status, TTFT and TPOT median (p50) and p90 in ms, n, oracle."""
    targets = sorted({r["target"]["kind"] for r in results})
    # Compact layout: the widest catalog name still fits an 80-column (non-terminal) console.
    table = Table(title=f"{title} (target: {', '.join(targets)}; median and p90 in ms)", box=box.SIMPLE_HEAD,
                  collapse_padding=True, pad_edge=False)
    table.add_column("scenario", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for column in ("TTFT", "p90", "TPOT", "p90 ", "n"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("oracle", no_wrap=True)
    for result in results:
        summary = result["summary"]
        status = result["status"]
        style = {"ok": "green", "skipped": "yellow", "failed": "red"}[status]
        table.add_row(
            result["scenario"],
            f"[{style}]{status}[/]",
            _ms(summary["ttft_ms"]["median"]),
            _ms(summary["ttft_ms"]["p90"]),
            _ms(summary["tpot_ms"]["median"]),
            _ms(summary["tpot_ms"]["p90"]),
            str(summary["tpot_ms"]["n"]),
            {True: "[green]pass[/]", False: "[red]FAIL[/]"}.get((result.get("oracle") or {}).get("ok"), "-"),
        )
    return table


def explain(result: dict[str, Any], console: Console) -> None:
    """The lines a user needs beyond the table: skip reason, failure, capture OOM, failing verdicts."""
    name = result["scenario"]
    if result["status"] == "skipped":
        console.print(f"[yellow]{name}: skipped[/]: {escape(str(result['skip_reason']))}")
    failure = result.get("failure")
    if failure:
        console.print(f"[red]{name}: {failure['stage']} failed ({failure['kind']})[/]: {escape(failure['message'])}")
    source = result.get("source") or {}
    if source.get("kind") == "bench_serving":
        fields = source.get("line_fields") or {}
        console.print(f"{name}: imported from sglang.bench_serving {escape(str(source.get('file')))}:{source.get('line')} "
                      f"(summary from its {source.get('summary_from')}); its own medians: TTFT "
                      f"{_ms(fields.get('median_ttft_ms'))} ms, TPOT {_ms(fields.get('median_tpot_ms'))} ms "
                      "(its TPOT counts up to the [DONE] chunk)")
    metrics = result.get("server_metrics") or {}
    if metrics.get("ttft_ms_mean") is not None:
        console.print(f"{name}: server-side means (/metrics): TTFT {_ms(metrics['ttft_ms_mean'])} ms, "
                      f"ITL {_ms(metrics.get('itl_ms_mean'))} ms; client means: TTFT "
                      f"{_ms(result['summary']['ttft_ms']['mean'])} ms, ITL {_ms(result['summary']['itl_ms']['mean'])} ms")
    steps = step_time_line(result)
    if steps:
        console.print(f"{name}: {steps}")
    timing = result.get("timing") or {}
    if timing.get("total_s") is not None:
        split = startup_split(result.get("startup"))
        parts = [f"weights {split.weights_s:.1f} s" if split.weights_s is not None else None,
                 f"KV pool {split.kv_pool_s:.1f} s" if split.kv_pool_s is not None else None,
                 *(f"capture {n} {s:.1f} s" for n, s in split.captures)]
        detail = ", ".join(p for p in parts if p)
        server = (f"server reused from {timing['server_reused_from']}" if timing.get("server_reused_from")
                  else f"startup {_s(timing.get('startup_s'))}" + (f" ({detail})" if detail else ""))
        console.print(f"{name}: time {_s(timing['total_s'])}: {escape(server)}, warm-up {_s(timing.get('warmup_s'))}, "
                      f"measure {_s(timing.get('measure_s'))}, stop+check "
                      f"{_s((timing.get('stop_s') or 0) + (timing.get('check_s') or 0))}")
    for line in noise_lines(result):
        console.print(f"{name}: {escape(line)}")
    capture = (result.get("startup") or {}).get("capture") or {}
    for phase in _distinct(capture.get("phases", [])):
        console.print(f"{name}: capture {phase['name']}: {phase['elapsed_s']:.2f} s, "
                      f"{phase['mem_usage_gb']:.2f} GB used, {phase['avail_mem_gb']:.2f} GB left")
    oracle = result.get("oracle") or {}
    failing = [v for v in oracle.get("verdicts", []) if v.get("passed") is False]
    for verdict in failing[:_MAX_VERDICT_LINES]:
        console.print(f"[red]{name}: oracle {verdict['name']}[/]: expected {escape(repr(verdict['expected']))}, "
                      f"observed {escape(repr(verdict['observed']))}"
                      + (f" ({escape(str(verdict['detail']))})" if verdict.get("detail") else ""))
    if len(failing) > _MAX_VERDICT_LINES:
        console.print(f"[red]{name}: {len(failing) - _MAX_VERDICT_LINES} more failing oracle verdicts[/] "
                      "(harness show --json RESULT)")
    if oracle.get("error"):
        console.print(f"[yellow]{name}: oracle[/]: {escape(str(oracle['error']))}")
    for error in (result.get("instrumentation") or {}).get("errors", [])[:5]:
        console.print(f"[yellow]{name}: instrumentation[/]: {escape(str(error))}")


def step_time_line(result: dict[str, Any]) -> str | None:
    """decode_gpu_ms and decode_host_ms (medians over requests of per-step means), or None without them."""
    summary = result.get("summary") or {}
    gpu, host = summary.get("decode_gpu_ms") or {}, summary.get("decode_host_ms") or {}
    if gpu.get("median") is None:
        return None
    clocks = {s.get("decode_clock") for s in result.get("samples", []) if s.get("decode_clock")}
    how = "CUDA events" if clocks == {"cuda_event"} else "host clock, no device" if clocks == {"host"} else "mixed clocks"
    return (f"decode step (server, {how}): device {_ms(gpu['median'])} ms (p90 {_ms(gpu.get('p90'))}), host part "
            f"{_ms(host.get('median'))} ms, per step, median over {gpu.get('n')} requests "
            f"(TPOT {_ms((summary.get('tpot_ms') or {}).get('median'))} ms)")


def noise_lines(result: dict[str, Any]) -> list[str]:
    """What the run saw of its own noise: the auto warm-up, regimes inside the series, GPU telemetry."""
    lines = []
    warmup = result.get("warmup") or {}
    if warmup.get("policy") == "auto":
        medians = ", ".join(f"{m:.4g}" for m in warmup.get("window_medians_ms", []))
        lines.append(f"warm-up auto: {warmup['requests']} requests, stopped: {warmup['stopped']}"
                     + (f" (TPOT window medians {medians} ms)" if medians else ""))
    found = stored_or_found(result)
    order = {"tpot_ms": 0, "ttft_ms": 1, "e2e_ms": 2}
    changed = [describe(m, r) for m, r in sorted(found.items(), key=lambda kv: (order.get(kv[0], 3), kv[0]))
               if len(r) > 1]
    if changed:
        lines += changed
    elif found:
        lines.append(f"regimes: one per metric ({', '.join(sorted(found, key=lambda m: (order.get(m, 3), m)))}), "
                     "no change point inside the run")
    telemetry = result.get("telemetry")
    if isinstance(telemetry, dict) and telemetry.get("available") is False:
        lines.append(f"GPU telemetry: unavailable ({telemetry.get('reason')})")
    elif isinstance(telemetry, dict) and telemetry.get("available"):
        lines.append(_telemetry_line(telemetry))
    return lines


def _telemetry_line(telemetry: dict[str, Any]) -> str:
    summary = telemetry["summary"]
    where = "while measuring" if summary["phase"] == "measure" else "in all (none while measuring)"
    gpus = ", ".join(str(g) for g in summary["gpus"])
    parts = []
    for key, label, unit in (("sm_clock_mhz", "SM clock", " MHz"), ("mem_clock_mhz", "memory clock", " MHz"),
                             ("power_w", "power", " W"), ("temperature_c", "temperature", " C")):
        stat = summary[key]
        if stat["median"] is not None:
            parts.append(f"{label} {stat['median']:.4g}{unit} [{stat['min']:.4g}-{stat['max']:.4g}]")
    share = summary["throttled_share"]
    seen = ", ".join(f"{k} {v}" for k, v in summary["reasons_seen"].items()) or "none"
    parts.append("throttled " + (f"{share:.0%}" if share is not None else "-") + f" of samples (reasons seen: {seen})")
    return (f"GPU telemetry (GPU {gpus}, {summary['samples']} samples every {telemetry['interval_s']:g} s {where}): "
            + ", ".join(parts))


def _distinct(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Every rank logs its own capture; identical lines say nothing more.
    seen, distinct = set(), []
    for phase in phases:
        key = tuple(sorted(phase.items()))
        if key not in seen:
            seen.add(key)
            distinct.append(phase)
    return distinct
