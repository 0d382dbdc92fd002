"""Per decode step: the graph replay's device time against the whole forward and the step's wall time, per server.

`python bench/evidence/step_regions.py RUN_DIR... [--csv OUT.csv.gz]` reads the decode_step records under
each RUN_DIR (a side's round directory) and prints, per server and per injected delay, quartiles of
`device_ms` (the replay region), `forward_ms` and `wall_ms`, and how far each delay level moved the median
replay time. With --csv it keeps the steps themselves, compact, so the records can be dropped.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gzip
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.instrument.reader import load_records


def _quartiles(values: Sequence[float]) -> str:
    if not values:
        return "-"
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return f"{q2:.4f} [{q1:.4f}, {q3:.4f}] (IQR {100 * (q3 - q1) / q2:.2f}%)"


def summarize(run_dir: Path, writer: csv.writer | None) -> list[str]:
    """Markdown rows for one server's steps: one per delay level, A/A first."""
    steps = [r.to_json() for d in sorted(run_dir.rglob("records")) for r in load_records(d).of_kind("decode_step")]
    levels: dict[tuple[str, int], list[dict]] = {}
    for step in steps:
        levels.setdefault((step.get("inject_kind") or "none", int(step.get("inject_us") or 0)), []).append(step)
        if writer is not None:
            writer.writerow([run_dir.name if run_dir.name != "round-00" else run_dir.parent.name,
                             step.get("region"), step["device_ms"], step.get("forward_ms"), step.get("wall_ms"),
                             step.get("inject_kind") or "", step.get("inject_us") or 0])
    rows = []
    base = None
    for (kind, us), group in sorted(levels.items(), key=lambda kv: kv[0][1]):
        device = [s["device_ms"] for s in group if s.get("device_ms") is not None]
        median = float(np.median(device)) if device else float("nan")
        base = median if base is None else base
        regions = sorted({str(s.get("region")) for s in group})
        rows.append(f"| {run_dir} | {kind} {us} us | {len(group)} | {', '.join(regions)} | {_quartiles(device)} | "
                    f"{_quartiles([s['forward_ms'] for s in group if s.get('forward_ms') is not None])} | "
                    f"{_quartiles([s['wall_ms'] for s in group if s.get('wall_ms') is not None])} | "
                    f"{1000 * (median - base):+.1f} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--csv", type=Path, help="also write every step, gzip-compressed CSV")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not d.is_dir()]
    if missing:
        print(f"step_regions: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    print("| server | delay | steps | region | device_ms (replay) median [q1, q3] | forward_ms | wall_ms | "
          "median replay moved (us) |")
    print("|---|---|---|---|---|---|---|---|")
    with contextlib.ExitStack() as stack:
        writer = csv.writer(stack.enter_context(gzip.open(args.csv, "wt", newline=""))) if args.csv else None
        if writer is not None:
            writer.writerow(["side", "region", "device_ms", "forward_ms", "wall_ms", "inject_kind", "inject_us"])
        for run_dir in args.run_dirs:
            print("\n".join(summarize(run_dir, writer)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
