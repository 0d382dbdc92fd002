"""Seconds per part of the suite from pytest's JUnit XML: `python3 scripts/ci/parts.py junit.xml` (stdlib only)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict


def part_of(classname: str) -> str:
    """tests.harness.gate.test_x -> tests/harness/gate; tests.bench.test_y -> tests/bench."""
    folders = classname.split(".")
    while folders and (folders[-1][:1].isupper() or folders[-1].startswith("test_")):
        folders.pop()
    return "/".join(folders) or "?"


def main(path: str) -> int:
    seconds: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for case in ET.parse(path).getroot().iter("testcase"):
        part = part_of(case.get("classname", ""))
        seconds[part] += float(case.get("time", 0.0))
        counts[part] += 1
    total = sum(seconds.values())
    print(f"test seconds by part (total {total:.0f} s):")
    for part, secs in sorted(seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {secs:7.1f} s  {counts[part]:4d} tests  {part}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
