"""The run-time delay switch: what a file may say, when it is re-read, and that a bad file never raises."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reference_impl.contract.delay_switch import (
    Delay,
    DelaySwitch,
    DeviceSleep,
    parse_delay,
    spin,
    switch_from_env,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("gpu 25", Delay("gpu", 25)), ("HOST 1000\n", Delay("host", 1000)), ("  gpu   7 ", Delay("gpu", 7)),
    ("", None), ("off", None), ("0", None), ("gpu 0", None), ("\n", None),
])
def test_parse(text: str, expected: Delay | None) -> None:
    assert parse_delay(text, "f") == expected


@pytest.mark.parametrize(("text", "message"), [
    ("gpu", "f: expected 'gpu <us>', 'host <us>' or 'off', got 'gpu'"),
    ("cpu 5", "f: expected 'gpu <us>', 'host <us>' or 'off', got 'cpu 5'"),
    ("gpu 2.5", "f: delay: expected whole microseconds, got '2.5'"),
    ("host -3", "f: delay: expected microseconds >= 0, got -3"),
])
def test_parse_errors_name_the_file(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_delay(text, "f")
    assert str(caught.value) == message


def test_file_is_looked_at_once_per_poll_and_reread_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "delay"
    now = [0.0]
    warnings: list[str] = []
    switch = DelaySwitch(str(path), clock=lambda: now[0], poll_s=0.05, warn=warnings.append)
    assert switch.current() is None  # no file: no delay
    path.write_text("gpu 25")
    assert switch.current() is None  # within the poll interval: the last answer
    now[0] = 0.05
    assert switch.current() == Delay("gpu", 25)
    path.write_text("host 300")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new mtime even on a coarse clock
    now[0] = 0.2
    assert switch.current() == Delay("host", 300)
    path.write_text("host 3o0")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 2 * 10**9))
    for step in range(3):
        now[0] = 0.3 + step
        assert switch.current() is None
    assert len(warnings) == 1 and "got '3o0'" in warnings[0]
    path.unlink()
    now[0] = 10.0
    assert switch.current() is None


def test_switch_from_env(tmp_path: Path) -> None:
    assert switch_from_env({}) is None
    switch = switch_from_env({"HARNESS_INJECT_DELAY_FILE": str(tmp_path / "d")})
    assert switch is not None and switch.path == str(tmp_path / "d")


def test_without_a_device_both_kinds_wait_at_least_the_delay() -> None:
    # A lower bound on the same clock the wait polls: no bet on this machine's speed.
    for wait in (spin, DeviceSleep(None)):
        tic = time.perf_counter()
        wait(1500)
        assert time.perf_counter() - tic >= 0.0015
