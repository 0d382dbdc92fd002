"""Pause points for the fault tests: hold the harness at a named point so a test can SIGKILL it there.

With `HARNESS_TEST_HOLD=POINT` and `HARNESS_TEST_HOLD_FILE=PATH` in its environment, the harness writes
its pid to PATH on reaching POINT and sleeps (at most `_HOLD_S`), then goes on. Unset, it does nothing.
Points: `write:<file name>` (harness/store/atomic.py: the temp file is written and fsynced, not yet renamed).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOLD_ENV = "HARNESS_TEST_HOLD"
HOLD_FILE_ENV = "HARNESS_TEST_HOLD_FILE"
# Long enough for any test to act; bounded so a forgotten variable cannot hang a run for good.
_HOLD_S = 120.0


def hold(point: str) -> None:
    """Pause here when the environment names `point` (tests only)."""
    if os.environ.get(HOLD_ENV) != point:
        return
    reached = os.environ.get(HOLD_FILE_ENV)
    if reached:
        Path(reached).write_text(f"{os.getpid()}\n", encoding="utf-8")
    time.sleep(_HOLD_S)
