"""A wall-clock budget for the whole suite, so one device call (10 minutes at most) always ends with evidence."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

BUDGET_ENV = "HARNESS_GPU_BUDGET_S"
DEFAULT_BUDGET_S = 520.0


@dataclass(frozen=True)
class Budget:
    started: float
    total_s: float

    @classmethod
    def from_env(cls) -> Budget:
        return cls(time.monotonic(), float(os.environ.get(BUDGET_ENV, DEFAULT_BUDGET_S)))

    def left_s(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def shortfall(self, need_s: float, what: str) -> str | None:
        """Why `what` must be skipped (less left than it needs), or None when it fits."""
        left = self.left_s()
        if left >= need_s:
            return None
        return f"suite time budget: {max(left, 0):.0f} s of {self.total_s:.0f} s left, {what} needs ~{need_s:.0f} s"
