"""Kills the server's process tree when the harness dies, however it dies (SIGKILL, the OOM killer).

`Server.start()` runs this file as a small process of its own (stdlib only, `python -I`, its own
session so a signal to the harness's group does not reach it) before it launches the server. The
watchdog holds the read end of a pipe whose only write end is the harness's: EOF there means the
harness is gone, since the kernel closes the descriptor on any death. `watch PID` names the server's
leader, `stop` (after a normal `Server.stop()`) lets the watchdog exit without touching anything.

When the harness dies (EOF, or the watchdog's parent changed) it sends SIGTERM and, after
`grace_s`, SIGKILL to every server process: the leader's process group and session, every
descendant it saw while polling /proc (one that called setsid() and was reparented is still
caught), and every process whose environment carries the server's token. It then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

# Every server process inherits this variable (value: a token per server) so the watchdog can find
# the ones that left both the process group and the tree (setsid + reparenting).
SERVER_TOKEN_ENV = "HARNESS_SERVER_TOKEN"
DEFAULT_GRACE_S = 2.0
# After SIGKILL the kernel frees a process's memory on exit; this long is "it is stuck in the driver".
_KILL_WAIT_S = 6.0
_STOP_POLL_S = 0.05
# /proc is rescanned for new descendants every poll while the tree grows (sglang spawns its schedulers,
# detokenizer and TP workers at startup), then ever less often, down to this, to stay out of the
# measurement (a scan reads every /proc/PID/stat: 1.3 ms for 75 processes on the 2-core CI machine).
_SLOW_SCAN_S = 5.0
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class WatchdogConfig:
    """Whom the watchdog serves (the harness pid), which token marks the server, and its timings."""

    harness_pid: int
    token: str
    grace_s: float = DEFAULT_GRACE_S  # SIGTERM -> SIGKILL; the budget is 10 s for everything
    poll_s: float = 0.5

    def argv(self) -> list[str]:
        return ["--harness-pid", str(self.harness_pid), "--token", self.token, "--grace-s", str(self.grace_s),
                "--poll-s", str(self.poll_s)]


@dataclass(frozen=True)
class ProcInfo:
    """One line of /proc/PID/stat, the fields the watchdog needs."""

    pid: int
    ppid: int
    pgrp: int
    session: int
    start: int  # clock ticks since boot: tells a reused pid from the process first seen
    zombie: bool


def process_table() -> dict[int, ProcInfo]:
    """Every process visible in /proc (empty where there is no /proc)."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
            # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
            fields = data[data.rindex(b")") + 2:].split()
            table[int(name)] = ProcInfo(int(name), int(fields[1]), int(fields[2]), int(fields[3]),
                                        int(fields[19]), fields[0] in (b"Z", b"X"))
        except (OSError, ValueError, IndexError):
            continue
    return table


def carries_token(pid: int, token: str) -> bool:
    """True when the process's environment holds SERVER_TOKEN_ENV=token (readable for our own user's)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            return f"{SERVER_TOKEN_ENV}={token}".encode() in environ.read().split(b"\0")
    except OSError:
        return False


class Tracker:
    """The server's processes: its group and session, every descendant ever seen, and token carriers."""

    def __init__(self, token: str, exclude: Iterable[int]) -> None:
        self.token = token
        self.leader: int | None = None
        self.seen: dict[int, int] = {}  # pid -> start time, so a reused pid is never mistaken for it
        self._exclude = set(exclude)

    def watch(self, leader: int) -> None:
        self.leader = leader

    def update(self, table: dict[int, ProcInfo], by_token: bool = False) -> list[int]:
        """Remember every server process in `table`; returns the live (non-zombie) ones."""
        children: dict[int, list[ProcInfo]] = {}
        for info in table.values():
            children.setdefault(info.ppid, []).append(info)
        stack = [info for info in table.values()
                 if info.pid not in self._exclude and (
                     self.seen.get(info.pid) == info.start
                     or (self.leader is not None and self.leader in (info.pgrp, info.session))
                     or (by_token and carries_token(info.pid, self.token)))]
        found: dict[int, ProcInfo] = {}
        while stack:
            info = stack.pop()
            if info.pid in found or info.pid in self._exclude:
                continue
            found[info.pid] = info
            stack.extend(children.get(info.pid, ()))
        self.seen.update({pid: info.start for pid, info in found.items()})
        return sorted(pid for pid, info in found.items() if not info.zombie)


def stop_all(tracker: Tracker, grace_s: float, log: Callable[[str], None]) -> list[int]:
    """SIGTERM every server process, SIGKILL what is left after `grace_s`; returns the survivors."""
    started = time.monotonic()
    live = tracker.update(process_table(), by_token=True)
    if not live:
        _send([], signal.SIGKILL, tracker.leader)
        log(f"no server process left to stop (seen while it ran: {sorted(tracker.seen)})")
        return []
    log(f"SIGTERM to {len(live)} server process(es) {live}")
    termed = set(_send(live, signal.SIGTERM, tracker.leader))
    while time.monotonic() - started < grace_s:
        time.sleep(_STOP_POLL_S)
        live = tracker.update(process_table(), by_token=True)
        termed.update(_send([pid for pid in live if pid not in termed], signal.SIGTERM))
        if not live:
            log(f"all gone {time.monotonic() - started:.2f} s after SIGTERM")
            return []
    log(f"SIGKILL to {live} after {grace_s:g} s")
    deadline = time.monotonic() + _KILL_WAIT_S
    while live and time.monotonic() < deadline:
        _send(live, signal.SIGKILL)
        time.sleep(_STOP_POLL_S)
        live = tracker.update(process_table(), by_token=True)
    if live:
        log(f"still alive {time.monotonic() - started:.2f} s after the first signal: {live}")
    else:
        log(f"all gone {time.monotonic() - started:.2f} s after SIGTERM")
    return live


def _send(pids: Iterable[int], sig: signal.Signals, leader: int | None = None) -> list[int]:
    if leader is not None and not os.path.isdir("/proc"):  # no process table to read: the group at least
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, sig)
    sent = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent.append(pid)
    return sent


class _Stopped(Exception):
    """A signal told the watchdog itself to go: it cleans up like when the harness dies."""


def serve(config: WatchdogConfig, fd: int) -> int:
    """The watchdog's loop; 0 after `stop` or a clean kill, 1 when a server process survived SIGKILL."""

    def log(text: str) -> None:
        stamp = dt.datetime.now().isoformat(sep=" ", timespec="milliseconds")
        with contextlib.suppress(OSError):  # a full disk must not stop the kill
            print(f"[{stamp}] harness watchdog (pid {os.getpid()}): {text}", file=sys.stderr, flush=True)

    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if not stopping:  # once cleaning up, nothing may cut it short
            raise _Stopped(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_signal)
    tracker = Tracker(config.token, exclude={os.getpid(), config.harness_pid})
    pending = b""
    next_scan, scan_every = 0.0, config.poll_s
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], config.poll_s)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    reason = f"harness pid {config.harness_pid} is gone (its pipe closed)"
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    command, _, arg = line.decode().partition(" ")
                    if command == "stop":
                        return 0
                    if command == "watch":
                        tracker.watch(int(arg))
                        next_scan = 0.0
            # A second net for a harness whose write end was inherited by a forked child.
            if os.getppid() != config.harness_pid:
                reason = f"harness pid {config.harness_pid} is gone (the watchdog was reparented)"
                break
            now = time.monotonic()
            if tracker.leader is not None and now >= next_scan:
                known = len(tracker.seen)
                try:
                    tracker.update(process_table())
                except Exception as exc:  # a scan's bug must not end the watch: the kill rescans anyway
                    log(f"scan failed: {type(exc).__name__}: {exc}")
                grew = len(tracker.seen) > known
                scan_every = config.poll_s if grew else min(2 * scan_every, _SLOW_SCAN_S)
                next_scan = now + scan_every
    except _Stopped as exc:
        reason = f"the watchdog itself got {exc}"
    stopping = True
    log(f"{reason}; stopping the server (leader pid {tracker.leader}, token {config.token})")
    return 1 if stop_all(tracker, config.grace_s, log) else 0


class Watchdog:
    """The harness's end: starts the watchdog process, names the server to it, and disarms it after a stop."""

    def __init__(self, proc: subprocess.Popen[bytes], write_fd: int) -> None:
        self._proc = proc
        self._write_fd: int | None = write_fd

    @property
    def pid(self) -> int:
        return self._proc.pid

    @classmethod
    def start(cls, config: WatchdogConfig, log_path: Path, env: dict[str, str]) -> Watchdog:
        """Launch the watchdog; its messages (only when it has to act) are appended to `log_path`."""
        # os.pipe() descriptors are not inheritable: no server process can hold the write end open.
        read_fd, write_fd = os.pipe()
        # -I: it needs only the stdlib, so neither PYTHON* variables nor the user site can change it.
        argv = [sys.executable, "-I", str(Path(__file__).resolve()), "--fd", str(read_fd), *config.argv()]
        try:
            with open(log_path, "ab") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, pass_fds=(read_fd,), start_new_session=True)
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        return cls(proc, write_fd)

    def watch(self, leader_pid: int) -> None:
        self._send(f"watch {leader_pid}\n")

    def disarm(self, timeout_s: float = 5.0) -> None:
        """The server was stopped normally: the watchdog exits without killing anything."""
        self._send("stop\n")
        if self._write_fd is not None:
            os.close(self._write_fd)
            self._write_fd = None
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def _send(self, line: str) -> None:
        if self._write_fd is None:
            return
        with contextlib.suppress(BrokenPipeError):  # a dead watchdog cannot be told anything
            os.write(self._write_fd, line.encode())


def pdeathsig_preexec() -> Callable[[], None] | None:
    """Linux: a preexec_fn giving the server leader PR_SET_PDEATHSIG=SIGKILL; None where it cannot apply.

    The signal fires when the *thread* that forked exits, so only the main thread (alive as long as
    the harness) may use it. It covers the leader alone; the watchdog covers everything else.
    """
    import ctypes
    import threading

    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the harness died between fork and prctl: nobody would signal us
            os._exit(1)

    return preexec


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="harness/serve/watchdog.py")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--harness-pid", type=int, required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--grace-s", type=float, default=DEFAULT_GRACE_S)
    parser.add_argument("--poll-s", type=float, default=0.5)
    args = parser.parse_args(argv)
    config = WatchdogConfig(harness_pid=args.harness_pid, token=args.token, grace_s=args.grace_s,
                            poll_s=args.poll_s)
    return serve(config, args.fd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
