"""An injected decode-step delay read from a file at run time, so one server serves several levels (stdlib only).

The file named by HARNESS_INJECT_DELAY_FILE holds `gpu <us>`, `host <us>` or nothing (`off`, `0` and an
empty or missing file mean no delay). `gpu` is applied inside the timed forward region (a sleep kernel on
CUDA, a busy-wait without a device); `host` before it, on the host only. The file is looked at no more
than every POLL_S seconds, and re-read only when its mtime or size changed.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ENV_DELAY_FILE = "HARNESS_INJECT_DELAY_FILE"
POLL_S = 0.05
KINDS = ("gpu", "host")
_OFF = ("", "off", "0", "none")


@dataclass(frozen=True)
class Delay:
    """A delay to add to every decode step: where (`gpu` or `host`) and how long."""

    kind: str
    us: int


def parse_delay(text: str, source: str) -> Delay | None:
    """`gpu 25` / `host 25` -> Delay; `off`, `0` or blank -> None; anything else a ValueError naming `source`."""
    words = text.split()
    if not words or (len(words) == 1 and words[0].lower() in _OFF):
        return None
    if len(words) != 2 or words[0].lower() not in KINDS:
        raise ValueError(f"{source}: expected 'gpu <us>', 'host <us>' or 'off', got {text.strip()!r}")
    try:
        us = int(words[1])
    except ValueError:
        raise ValueError(f"{source}: delay: expected whole microseconds, got {words[1]!r}") from None
    if us < 0:
        raise ValueError(f"{source}: delay: expected microseconds >= 0, got {us}")
    return Delay(words[0].lower(), us) if us else None


class DelaySwitch:
    """The delay the file asks for now; a bad file means no delay and one stderr line (never raises)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic, poll_s: float = POLL_S,
                 warn: Callable[[str], Any] = sys.stderr.write) -> None:
        self.path, self._clock, self._poll_s, self._warn = path, clock, poll_s, warn
        self._next_check = float("-inf")
        self._stamp: tuple[int, int] | None = None
        self._delay: Delay | None = None
        self._warned: str | None = None

    def current(self) -> Delay | None:
        now = self._clock()
        if now < self._next_check:
            return self._delay
        self._next_check = now + self._poll_s
        try:
            stat = os.stat(self.path)
        except OSError:
            self._stamp, self._delay = None, None
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            self._delay = self._read()
        return self._delay

    def _read(self) -> Delay | None:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read(256)
            return parse_delay(text, f"{ENV_DELAY_FILE}={self.path}")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            message = f"harness delay switch: no delay ({exc})\n"
            if message != self._warned:  # once per distinct problem, not once per step
                self._warned = message
                self._warn(message)
            return None


def switch_from_env(environ: Any = os.environ) -> DelaySwitch | None:
    """The switch HARNESS_INJECT_DELAY_FILE names, or None when it is unset."""
    path = environ.get(ENV_DELAY_FILE)
    return DelaySwitch(path) if path else None


def spin(us: float) -> None:
    """Busy-wait `us` microseconds on this thread (sleeping through all but the last 0.5 ms of long waits)."""
    deadline = time.perf_counter() + us / 1e6
    # A sleep overshoots by tens of microseconds, so only the bulk of a long wait sleeps.
    if us > 1000:
        time.sleep(us / 1e6 - 0.0005)
    while time.perf_counter() < deadline:
        pass


class DeviceSleep:
    """A delay on the device's stream: torch.cuda._sleep sized in GPU cycles; without a device, spin()."""

    def __init__(self, cuda: Any | None, log: Callable[[str], Any] | None = None) -> None:
        self._cuda, self._log = cuda, log
        self.cycles_per_us: float | None = None

    def __call__(self, us: float) -> None:
        if us <= 0:
            return
        if self._cuda is None:
            spin(us)
            return
        self._cuda._sleep(round(us * self._rate()))

    def prime(self) -> None:
        """Measure the sleep rate now (it syncs), so that it never runs inside a timed region."""
        if self._cuda is not None:
            self._rate()

    def _rate(self) -> float:
        """GPU clock cycles per microsecond of _sleep, measured once (this syncs, so only on first use)."""
        if self.cycles_per_us is None:
            cuda, rates = self._cuda, []
            for _ in range(5):  # the first runs let the clock ramp up; keep the fastest
                start, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
                start.record()
                cuda._sleep(4_000_000)
                end.record()
                end.synchronize()
                rates.append(4_000_000 / (start.elapsed_time(end) * 1e3))
            self.cycles_per_us = max(rates)
            if self._log is not None:
                self._log(f"device sleep: {self.cycles_per_us:.0f} GPU cycles per microsecond")
        return self.cycles_per_us
