"""After pytest (even one killed by a timeout): render the report and pack the evidence for $OUT.

    python3 -m tests.gpu.support.finish --where     print the evidence folder for today and these GPUs
    python3 -m tests.gpu.support.finish OUT_DIR     render report.md and write OUT_DIR/evidence-*.tar.gz
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.gpu.support.evidence import Evidence, pack
from tests.gpu.support.machine import list_gpus
from tests.gpu.support.report import render


def main(argv: list[str]) -> int:
    if argv == ["--where"]:
        root = Evidence.create(list_gpus()).root
        print(root)
        return 0
    if len(argv) != 1:
        print("usage: python3 -m tests.gpu.support.finish --where | OUT_DIR", file=sys.stderr)
        return 2
    root = Evidence.create(list_gpus()).root
    render(root)
    tarball = pack(root, Path(argv[0]))
    print(f"{tarball} ({tarball.stat().st_size / 2**20:.2f} MiB) from {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
