"""The rank processes form one tree: they die with the parent and the parent dies with any of them."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil


def _workers(engine: Any) -> list[psutil.Process]:
    return [p for p in psutil.Process(engine.proc.pid).children() if "reference_impl.engine.worker" in " ".join(p.cmdline())]


def test_workers_exit_when_the_parent_is_killed(start_engine: Any, micro_model: Path) -> None:
    engine = start_engine(["--model-path", str(micro_model), "--tp-size", "2", "--ep-size", "2",
                           "--cuda-graph-max-bs", "2"])
    engine.wait_ready()
    workers = _workers(engine)
    assert len(workers) == 1
    os.kill(engine.proc.pid, signal.SIGKILL)  # only the parent: no group kill, no cleanup code runs
    engine.proc.wait(timeout=10)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive, "a rank outlived its parent"


def test_parent_exits_when_a_worker_dies(start_engine: Any, micro_model: Path) -> None:
    engine = start_engine(["--model-path", str(micro_model), "--tp-size", "2", "--ep-size", "2",
                           "--cuda-graph-max-bs", "2"])
    engine.wait_ready()
    (worker,) = _workers(engine)
    worker.kill()
    assert engine.wait_exit(timeout=30) == 1
    assert "rank 1 exited with code" in engine.log()


def test_sigterm_stops_every_rank_cleanly(start_engine: Any, micro_model: Path) -> None:
    engine = start_engine(["--model-path", str(micro_model), "--tp-size", "2", "--ep-size", "2",
                           "--cuda-graph-max-bs", "2"])
    engine.wait_ready()
    workers = _workers(engine)
    os.kill(engine.proc.pid, signal.SIGTERM)
    assert engine.wait_exit(timeout=30) == 0
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert not alive
