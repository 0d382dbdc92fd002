"""`harness list`: the scenario catalog as a table."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

from harness.errors import entry_point
from harness.scenarios.catalog import list_scenarios


@entry_point("harness list: error")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness list", description="List the scenario catalog.")
    parser.parse_args(sys.argv[1:] if argv is None else argv)
    scenarios = list_scenarios()
    table = Table(title="scenarios (harness/scenarios/*.toml)")
    for column in ("name", "targets", "guards", "sglang GPUs", "workload", "description"):
        table.add_column(column, no_wrap=column in ("name", "guards"))
    for scenario in scenarios:
        needs = scenario.hardware_for("sglang")
        gpus = f"{needs.gpus} x >= {needs.min_gpu_memory_gib:g} GiB {'/'.join(needs.arch)}" if needs.gpus else "-"
        w = scenario.workload
        table.add_row(scenario.name, ", ".join(scenario.targets), scenario.guards or "-", gpus,
                      f"in {w.input_len} out {w.output_len} x{w.requests} (+{w.warmups})", scenario.description)
    Console().print(table)
    return 0
