"""GPU lock: one harness run per GPU (or per CPU host) at a time, through O_EXCL lock files.

Each GPU in use has its own file `<lock dir>/gpu-<id>.lock` (`cpu.lock` without GPUs) holding the
owner's pid, host, process start time and a random token. A lock whose owner died on this host is
taken over, and the dead owner's servers (found by the token they inherited) are killed first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import secrets
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import psutil

from harness.errors import HarnessError
from harness.provenance import hostname

LOCK_DIR_ENV = "HARNESS_LOCK_DIR"
# Every process the run starts inherits this token, so whoever takes over a dead run's lock can find
# the servers that run left behind (they were started in their own sessions and outlive it).
OWNER_TOKEN_ENV = "HARNESS_OWNER_TOKEN"
_CREATE_TIME_SLACK_S = 1.0
# A lock file with no readable owner is a writer killed between create and write, once this old.
_TORN_AFTER_S = 10.0
_TAKEOVER_GUARD_STALE_S = 10.0
_KILL_WAIT_S = 10.0


class LockHeldError(HarnessError, RuntimeError):
    """Another live harness run holds one of the GPUs (or the CPU host); the message names it."""

    exit_code = 75  # sysexits.h EX_TEMPFAIL: not bad input; try again later


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock file."""

    pid: int
    host: str
    started_at: str
    create_time: float  # the owner process's start time (psutil), guards against pid reuse
    token: str
    run_dir: str

    @classmethod
    def me(cls, run_dir: Path) -> LockOwner:
        return cls(pid=os.getpid(), host=hostname(),
                   started_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   create_time=psutil.Process().create_time(), token=secrets.token_hex(8), run_dir=str(run_dir))

    def describe(self) -> str:
        return f"harness pid {self.pid} on {self.host} since {self.started_at} (run dir {self.run_dir})"


def default_lock_dir() -> Path:
    """$HARNESS_LOCK_DIR, else a folder in the system temp dir shared by every user of the machine."""
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "sglang-moe-harness-locks"


def lock_scope(env: Mapping[str, str], gpu_count: int) -> tuple[str, ...]:
    """One key per GPU in use: CUDA_VISIBLE_DEVICES entries, else every GPU NVML sees, else ("cpu",)."""
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
        return tuple(sorted({f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', entry)}" for entry in entries})) or ("cpu",)
    if gpu_count > 0:
        return tuple(f"gpu-{index}" for index in range(gpu_count))
    return ("cpu",)


def read_owner(path: Path) -> LockOwner | None:
    """The owner recorded in a lock file, or None when it is missing, empty or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockOwner(**{key: data[key] for key in LockOwner.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def owner_alive(owner: LockOwner) -> bool:
    """True unless the owner is known dead: same host, and its pid is gone, a zombie or a newer process."""
    if owner.host != hostname():
        return True  # another host's processes cannot be checked from here
    try:
        process = psutil.Process(owner.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(process.create_time() - owner.create_time) <= _CREATE_TIME_SLACK_S
    except psutil.NoSuchProcess:
        return False


def kill_leftovers(token: str) -> list[int]:
    """SIGKILL the process groups of every process carrying `token` in its environment; returns their pids."""
    me = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: list[psutil.Process] = []
    for process in psutil.process_iter():
        if process.pid in me:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if process.environ().get(OWNER_TOKEN_ENV) == token:
                found.append(process)
    for process in found:
        with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
            os.killpg(os.getpgid(process.pid), signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(found, timeout=_KILL_WAIT_S)
    return sorted(p.pid for p in found)


class GpuLock:
    """Holds every lock file of a scope; a context manager that also marks child processes with its token."""

    def __init__(self, lock_dir: Path, keys: tuple[str, ...], run_dir: Path) -> None:
        self.lock_dir = lock_dir
        self.keys = tuple(sorted(keys))
        self.owner = LockOwner.me(run_dir)
        self.notes: list[str] = []  # what the takeover did, for the user
        self._held: list[Path] = []
        self._previous_token: str | None = None

    @classmethod
    def for_machine(cls, gpu_count: int, run_dir: Path, lock_dir: Path | None = None) -> GpuLock:
        """The lock every harness run on this machine takes: its visible GPUs (or the CPU host)."""
        return cls(lock_dir or default_lock_dir(), lock_scope(os.environ, gpu_count), run_dir)

    def path(self, key: str) -> Path:
        return self.lock_dir / f"{key}.lock"

    def acquire(self) -> None:
        """Take every key or none; raise LockHeldError naming the live holder."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.lock_dir.stat().st_uid == os.getuid():
                self.lock_dir.chmod(0o1777)  # shared by every user of the GPUs, like /tmp
        try:
            for key in self.keys:
                self._acquire_one(self.path(key))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Remove the lock files this run still owns (never one another run took over)."""
        for path in reversed(self._held):
            owner = read_owner(path)
            if owner is not None and owner.token == self.owner.token:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        self._held.clear()

    def __enter__(self) -> GpuLock:
        self.acquire()
        self._previous_token = os.environ.get(OWNER_TOKEN_ENV)
        os.environ[OWNER_TOKEN_ENV] = self.owner.token
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._previous_token is None:
            os.environ.pop(OWNER_TOKEN_ENV, None)
        else:
            os.environ[OWNER_TOKEN_ENV] = self._previous_token
        self.release()

    def _acquire_one(self, path: Path) -> None:
        payload = json.dumps(asdict(self.owner), indent=2).encode() + b"\n"
        while True:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = read_owner(path)
                if holder is None and _age_s(path) < _TORN_AFTER_S:
                    time.sleep(0.05)  # its writer is between create and write; read it again
                    continue
                if holder is not None and owner_alive(holder):
                    raise LockHeldError(self._held_message(path, holder)) from None
                self._take_over(path, holder)
                continue
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._held.append(path)
            return

    def _take_over(self, path: Path, stale: LockOwner | None) -> None:
        """Remove a dead owner's lock once, even when several runs find it stale at the same moment."""
        guard = path.with_name(path.name + ".takeover")
        try:
            os.close(os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            if _age_s(guard) > _TAKEOVER_GUARD_STALE_S:
                with contextlib.suppress(FileNotFoundError):
                    guard.unlink()
            time.sleep(0.05)
            return
        try:
            current = read_owner(path)
            if (current is None) != (stale is None) or (current and stale and current.token != stale.token):
                return  # someone else already replaced it; look again
            killed = kill_leftovers(stale.token) if stale is not None else []
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            who = stale.describe() if stale is not None else "an unreadable owner"
            note = f"took over stale lock {path} of {who}, which is no longer running"
            if killed:
                note += f"; killed its leftover server processes {killed}"
            self.notes.append(note)
        finally:
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()

    def _held_message(self, path: Path, holder: LockOwner) -> str:
        key = path.stem
        what = "the CPU host" if key == "cpu" else f"GPU {key.removeprefix('gpu-')}"
        message = f"{what} is in use by {holder.describe()}; lock file {path}"
        if holder.host != hostname():
            message += " (another host: remove the file if that run is gone)"
        return message


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
