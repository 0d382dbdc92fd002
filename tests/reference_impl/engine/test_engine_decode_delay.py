"""--inject-decode-delay-us slows every decode step by at least the delay (gate calibration knob)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DELAY_US = 30_000
NEW_TOKENS = 6


def _e2e_s(engine: Any) -> float:
    events = engine.stream_events([5, 6, 7, 8], NEW_TOKENS)
    return json.loads(events[-2])["meta_info"]["e2e_latency"]


def test_decode_delay_is_injected(start_engine: Any, micro_model: Path) -> None:
    delayed = start_engine(["--model-path", str(micro_model), "--inject-decode-delay-us", str(DELAY_US)])
    delayed.wait_ready()
    # The first token comes from the prefill; each of the other five is one delayed decode step.
    assert _e2e_s(delayed) >= (NEW_TOKENS - 1) * DELAY_US / 1e6
    assert delayed.records("process_start")  # the delay changes timing only, not the instrumented layout
