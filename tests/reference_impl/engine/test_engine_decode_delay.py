"""--inject-decode-delay-us slows every decode step by at least the delay (gate calibration knob)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

DELAY_US = 30_000


def _decode_gaps_ms(engine: Any) -> list[float]:
    response = engine.generate([5, 6, 7, 8], 6)
    arrivals = []
    for line in response.iter_lines():
        if line.startswith(b"data: {"):
            arrivals.append(time.perf_counter())
    return [(b - a) * 1e3 for a, b in itertools.pairwise(arrivals)]


def test_decode_delay_is_injected(start_engine: Any, micro_model: Path) -> None:
    delayed = start_engine(["--model-path", str(micro_model), "--inject-decode-delay-us", str(DELAY_US)])
    delayed.wait_ready()
    gaps = _decode_gaps_ms(delayed)
    assert len(gaps) == 5 and min(gaps) >= DELAY_US / 1000
    assert delayed.records("process_start")  # the delay changes timing only, not the instrumented layout
