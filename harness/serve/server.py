"""Server lifecycle: launch in its own process group, wait for /health, classify failures, kill the group.

Each server has a watchdog process (harness/serve/watchdog.py) that kills its whole tree if the harness
dies without stopping it (SIGKILL, the OOM killer); the leader also gets PR_SET_PDEATHSIG on Linux.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil
import requests

from harness.errors import HarnessError
from harness.serve.lock import OWNER_TOKEN_ENV
from harness.serve.server_log import FATAL_MARKER, CaptureInfo, Milestone, diagnose, milestone, parse_capture
from harness.serve.watchdog import (
    SERVER_TOKEN_ENV,
    Watchdog,
    WatchdogConfig,
    carries_token,
    pdeathsig_preexec,
)

TARGET_MODULES = {"reference": "reference_impl.engine", "sglang": "sglang.launch_server"}
# Flags every sglang launch gets: dummy weights from a config.json, token ids in and out, /metrics, and
# no prefill CUDA graphs (every scenario measures BS=1 decode; their capture took 85 of 166 s startup).
SGLANG_FIXED_ARGS = ("--load-format", "dummy", "--skip-tokenizer-init", "--enable-metrics",
                     "--disable-prefill-cuda-graph")
_POLL_S = 0.1
# After the fatal marker, give the process a moment to finish writing its traceback before reading.
_SETTLE_S = 1.0


class PortInUseError(HarnessError, RuntimeError):
    """The requested port is already bound on the host."""


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one server process."""

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # added to (and overriding) the harness's own environment
    host: str
    port: int
    log_path: Path
    startup_timeout_s: float
    stop_grace_s: float

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class Startup:
    """How startup ended: outcome (one of harness.store.result.STARTUP_OUTCOMES) and the evidence."""

    outcome: str
    message: str
    elapsed_s: float
    returncode: int | None
    capture: CaptureInfo
    # Startup lines in the order the harness saw them (first of each name; every rank logs its own).
    milestones: tuple[Milestone, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "elapsed_s": round(self.elapsed_s, 3),
            "returncode": self.returncode,
            "capture": self.capture.to_json(),
            "milestones": [{"name": m.name, "at_s": round(m.at_s, 3), "elapsed_s": m.elapsed_s}
                           for m in self.milestones],
        }


@dataclass(frozen=True)
class Shutdown:
    """How the process group was stopped and whether anything survived it."""

    signal: str  # "SIGTERM" when that sufficed, "SIGKILL" when the group had to be killed
    returncode: int | None
    elapsed_s: float
    survivors: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "signal": self.signal,
            "returncode": self.returncode,
            "elapsed_s": round(self.elapsed_s, 3),
            "survivors": list(self.survivors),
        }


def free_port(host: str) -> int:
    """A port the kernel considers free right now (a later bind can still race; startup then crashes)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUseError when `port` cannot be bound, so a foreign server is never measured."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUseError(f"port {port} on {host} is already in use ({exc.strerror})") from None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                members.append(pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return members


class Server:
    """One server process group; a context manager that always stops it on exit."""

    def __init__(self, spec: LaunchSpec) -> None:
        self.spec = spec
        self._proc: subprocess.Popen[bytes] | None = None
        self._known_pids: set[int] = set()
        self._shutdown: Shutdown | None = None
        self._started_at: float | None = None  # time.monotonic() at launch: startup milestones count from it
        self._watchdog: Watchdog | None = None
        self._token = secrets.token_hex(8)  # in every server process's environment (SERVER_TOKEN_ENV)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def pids(self) -> frozenset[int]:
        """The launcher and every descendant seen while it ran (checked for GPU memory after stop)."""
        return frozenset({self._proc.pid, *self._known_pids}) if self._proc else frozenset()

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog else None

    @property
    def pgid(self) -> int | None:
        # start_new_session makes the launcher a session and group leader: pgid == pid.
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the watchdog, then the server in its own session, the watchdog's token in its environment."""
        self.spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        # The watchdog is not a server process: the lock's stale-run cleanup (by owner token) skips it.
        watchdog_env = {k: v for k, v in os.environ.items() if k not in (OWNER_TOKEN_ENV, SERVER_TOKEN_ENV)}
        # Started first, so a harness killed at any later instant still has its server cleaned up.
        self._watchdog = Watchdog.start(WatchdogConfig(harness_pid=os.getpid(), token=self._token),
                                        self.spec.log_path, watchdog_env)
        env = {**os.environ, **dict(self.spec.env), SERVER_TOKEN_ENV: self._token}
        self._started_at = time.monotonic()
        try:
            with open(self.spec.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    list(self.spec.argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    preexec_fn=pdeathsig_preexec(),
                )
        except BaseException:
            self._watchdog.disarm()
            raise
        self._watchdog.watch(self._proc.pid)

    def wait_ready(self) -> Startup:
        """Poll /health until 200, the process exits, the log shows a fatal error, or the deadline passes."""
        assert self._proc is not None, "start() first"
        started = time.monotonic()
        deadline = started + self.spec.startup_timeout_s
        session = requests.Session()
        watch = _MarkerWatch(self.spec.log_path, FATAL_MARKER, self._started_at or started)
        try:
            while True:
                self._remember_children()
                returncode = self._proc.poll()
                if returncode is not None or watch.seen():
                    if returncode is None:
                        time.sleep(_SETTLE_S)
                    return self._failed(self.read_log(), returncode, started, timed_out=False, watch=watch)
                if self._healthy(session):
                    watch.seen()  # the lines written just before /health answered
                    elapsed = time.monotonic() - (self._started_at or started)
                    return Startup("ok", "healthy", elapsed, None, parse_capture(self.read_log()),
                                   watch.milestones())
                if time.monotonic() >= deadline:
                    return self._failed(self.read_log(), None, started, timed_out=True)
                time.sleep(_POLL_S)
        finally:
            session.close()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def read_log(self) -> str:
        try:
            return self.spec.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> Shutdown:
        """SIGTERM the group, each descendant seen and each carrier of the server's token; SIGKILL after
        the grace period; then release the watchdog."""
        if self._shutdown is not None:
            return self._shutdown
        if self._proc is None:
            self._shutdown = Shutdown("SIGTERM", None, 0.0, ())
            return self._shutdown
        started = time.monotonic()
        used = "SIGTERM"
        self._signal_all(signal.SIGTERM)
        if not self._wait_gone(self.spec.stop_grace_s):
            used = "SIGKILL"
            self._signal_all(signal.SIGKILL)
            self._wait_gone(10.0)
        self._shutdown = Shutdown(used, self._proc.poll(), time.monotonic() - started, tuple(self._survivors()))
        # Only now: a harness killed while stopping the group still has the watchdog finish the job.
        if self._watchdog is not None:
            self._watchdog.disarm()
        return self._shutdown

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _healthy(self, session: requests.Session) -> bool:
        try:
            return session.get(f"{self.spec.base_url}/health", timeout=2.0).status_code == 200
        except requests.RequestException:
            return False

    def _failed(self, log: str, returncode: int | None, started: float, timed_out: bool,
                watch: _MarkerWatch | None = None) -> Startup:
        diagnosis = diagnose(log, returncode, timed_out, self.spec.startup_timeout_s)
        return Startup(diagnosis.outcome, diagnosis.message, time.monotonic() - started, returncode,
                       parse_capture(log), watch.milestones() if watch else ())

    def _remember_children(self, by_token: bool = False) -> None:
        # Descendants that call setsid() leave the group, and a daemon's parent exits at once: remembering
        # them (and, when stopping, whoever carries this server's token) lets stop() reach them too.
        assert self._proc is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            self._known_pids.update(c.pid for c in psutil.Process(self._proc.pid).children(recursive=True))
        if by_token:
            self._known_pids.update(pid for pid in psutil.pids()
                                    if pid != os.getpid() and carries_token(pid, self._token))

    def _signal_all(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        self._remember_children(by_token=True)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)
        for pid in self._known_pids:
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    os.kill(pid, sig)

    def _survivors(self) -> list[int]:
        assert self._proc is not None
        alive = set(group_members(self._proc.pid))
        for pid in self._known_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.add(pid)
        return sorted(alive)

    def _wait_gone(self, timeout_s: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=_POLL_S)  # reaps the leader so it does not linger as a zombie
            if not self._survivors():
                return True
            if time.monotonic() >= deadline:
                return False


class _MarkerWatch:
    """Reads only what a growing log gained since the last look, says when `marker` appeared, and
    timestamps startup milestone lines as they appear (so startup splits need no log timestamps)."""

    def __init__(self, path: Path, marker: str, t0: float | None = None) -> None:
        self.path = path
        self.marker = marker.encode()
        self.t0 = time.monotonic() if t0 is None else t0
        self._offset = 0
        self._tail = b""
        self._partial = b""
        self._milestones: dict[str, Milestone] = {}

    def seen(self) -> bool:
        try:
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                new = log.read()
        except FileNotFoundError:
            return False
        self._offset += len(new)
        at_s = time.monotonic() - self.t0
        *lines, self._partial = (self._partial + new).split(b"\n")
        for raw in lines:
            # tqdm progress redraws with \r: every piece is a line of its own.
            for piece in raw.split(b"\r"):
                found = milestone(piece.decode("utf-8", errors="replace"), at_s)
                if found is not None and found.name not in self._milestones:
                    self._milestones[found.name] = found
        window = self._tail + new
        self._tail = window[-len(self.marker):]  # a marker split across two reads is still found
        return self.marker in window

    def milestones(self) -> tuple[Milestone, ...]:
        return tuple(sorted(self._milestones.values(), key=lambda m: m.at_s))
