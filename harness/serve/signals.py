"""SIGINT/SIGTERM handling for `harness run`: interrupt once, let cleanup finish, exit 130/143.

The pipeline already stops its server in a `finally` when a KeyboardInterrupt crosses it; this
module makes SIGTERM take the same path, remembers which signal came, and records the interrupted
scenario in the manifest so `harness run --resume` re-runs it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType, TracebackType

from harness.store.manifest import Manifest, now_iso

HANDLED = (signal.SIGINT, signal.SIGTERM)


class HarnessInterrupted(KeyboardInterrupt):
    """The run was stopped by a signal; `exit_code` is 128 + its number (130 SIGINT, 143 SIGTERM)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: its signal's, or 130 for a plain KeyboardInterrupt."""
    return exc.exit_code if isinstance(exc, HarnessInterrupted) else 128 + signal.SIGINT


class InterruptGuard:
    """Turns the first SIGINT/SIGTERM into HarnessInterrupted; later ones are noted, not raised.

    A second Ctrl-C must not cut the server group's shutdown short (it is bounded by the stop grace
    period plus 10 s), or the group would be orphaned. Outside the main thread it does nothing,
    since Python only delivers signals there.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
        # Code in between may re-raise a bare KeyboardInterrupt; keep which signal it was.
        if isinstance(exc, KeyboardInterrupt) and not isinstance(exc, HarnessInterrupted) and self.received:
            raise HarnessInterrupted(self.received) from exc

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            raise HarnessInterrupted(signum)
        print(f"harness: {signal.Signals(signum).name} again; still stopping the server", file=sys.stderr)


def mark_interrupted(manifest: Manifest, name: str, signum: int | None) -> None:
    """Record in the manifest that `name` was cut short; a write failure leaves it `running` (also re-run)."""
    entry = manifest.scenarios.get(name)
    if entry is None:
        return
    entry.update(state="interrupted", interrupted_at=now_iso(),
                 signal=signal.Signals(signum).name if signum else None)
    with contextlib.suppress(OSError):
        manifest.save()
