"""CPU pinning of the server and the client, to keep them off each other's cores (and off others').

`python -m harness.serve.affinity CPUS -- ARGV...` pins itself and then execs ARGV (same pid, so the
process group and the logs stay the harness's), which pins every thread the server ever starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from harness.errors import HarnessError, entry_point


class AffinityError(HarnessError, ValueError):
    """A CPU list that cannot be used here; the message names the option."""


@dataclass(frozen=True)
class Pinning:
    """Cores for the server process tree and for the measuring client; None leaves it to the OS."""

    server: frozenset[int] | None = None
    client: frozenset[int] | None = None

    def describe(self) -> dict[str, list[int] | None]:
        return {"server": _sorted(self.server), "client": _sorted(self.client)}

    def share(self, index: int, count: int) -> Pinning:
        """The `index`-th of `count` co-resident servers: its contiguous share of the server cores (the client's
        cores unchanged), so two servers measured in turns never run on each other's cores."""
        if self.server is None or count <= 1:
            return self
        cores = sorted(self.server)
        if len(cores) < count:
            raise AffinityError(f"--pin: {len(cores)} server cores cannot be shared by {count} servers")
        size = len(cores) // count
        chosen = cores[index * size:(index + 1) * size] if index < count - 1 else cores[index * size:]
        return Pinning(frozenset(chosen), self.client)

    def wrap(self, argv: list[str], python: str) -> list[str]:
        """The server command, prefixed with the pinning launcher when server cores are set."""
        if self.server is None:
            return argv
        return [python, "-m", "harness.serve.affinity", format_cpus(self.server), "--", *argv]


def usable_cpus() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0))


def parse_cpus(text: str, option: str, usable: frozenset[int]) -> frozenset[int]:
    """'0-3,6' -> {0, 1, 2, 3, 6}; every core must be one this process may run on."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise AffinityError(f"{option}: {part!r} is not a core number or range (e.g. 0-3,6)") from None
        if first < 0 or last < first:
            raise AffinityError(f"{option}: bad range {part!r}")
        cpus.update(range(first, last + 1))
    missing = sorted(cpus - usable)
    if missing:
        raise AffinityError(f"{option}: cores {format_cpus(frozenset(missing))} are not available here "
                            f"(usable: {format_cpus(usable)})")
    return frozenset(cpus)


def parse_pinning(spec: str, option: str = "--pin", usable: frozenset[int] | None = None) -> Pinning:
    """`none`, `auto`, or `SERVER/CLIENT` core lists (e.g. `2-5/1`; either side may be empty)."""
    usable = usable_cpus() if usable is None else usable
    spec = spec.strip()
    if spec == "none":
        return Pinning()
    if spec == "auto":
        return auto_pinning(usable)
    server_text, sep, client_text = spec.partition("/")
    if not sep:
        raise AffinityError(f"{option}: expected none, auto or SERVER/CLIENT core lists (e.g. 2-5/1), got {spec!r}")
    server = parse_cpus(server_text, f"{option} (server cores)", usable) if server_text.strip() else None
    client = parse_cpus(client_text, f"{option} (client cores)", usable) if client_text.strip() else None
    if server and client and server & client:
        raise AffinityError(f"{option}: server and client share cores {format_cpus(server & client)}")
    return Pinning(server, client)


def auto_pinning(usable: frozenset[int]) -> Pinning:
    """The client on the highest usable core, the server on the rest; no pinning below 3 cores.

    It only keeps the two from sharing a core; on an H200 it did not narrow the start-to-start TPOT
    spread (bench/evidence/start_noise.py), so it is not the default.
    """
    if len(usable) < 3:
        return Pinning()
    cores = sorted(usable)
    return Pinning(server=frozenset(cores[:-1]), client=frozenset(cores[-1:]))


def format_cpus(cpus: frozenset[int]) -> str:
    """{0, 1, 2, 6} -> '0-2,6'."""
    runs: list[list[int]] = []
    for cpu in sorted(cpus):
        if runs and runs[-1][1] == cpu - 1:
            runs[-1][1] = cpu
        else:
            runs.append([cpu, cpu])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Pin the calling thread (the client's) to `cpus` for the block, then restore its cores."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _sorted(cpus: frozenset[int] | None) -> list[int] | None:
    return None if cpus is None else sorted(cpus)


@entry_point("harness.serve.affinity: error")
def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m harness.serve.affinity CPUS -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    cpus = parse_cpus(argv[0], "CPUS", usable_cpus())
    os.sched_setaffinity(0, cpus)
    os.execvp(argv[2], argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
