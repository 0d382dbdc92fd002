"""The engine's instrumentation writer: harness records when HARNESS_INSTRUMENT_DIR is set, else nothing."""

from __future__ import annotations

from typing import Any

from reference_impl.contract.records import RecordWriter, writer_from_env


class Records:
    """Writes records of this rank; `dispatch` eager records stop after a fixed count."""

    def __init__(self, rank: int, eager_dispatch_limit: int) -> None:
        self.rank = rank
        self._writer: RecordWriter | None = writer_from_env()
        if self._writer is not None:
            self._writer.rank = rank
        self._eager_left = eager_dispatch_limit

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def write_lines(self, lines: list[str]) -> None:
        """Records already encoded (decode_step, reference_impl/contract/step_timer.py)."""
        if self._writer is not None:
            self._writer.write_lines(lines)

    def write(self, kind: str, **fields: Any) -> None:
        if self._writer is not None:
            self._writer.write(kind, **fields)

    def dispatch(self, capturing: bool, **fields: Any) -> None:
        if not capturing:
            if self._eager_left <= 0:
                return
            self._eager_left -= 1
        self.write("dispatch", phase="capture" if capturing else "eager", **fields)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
