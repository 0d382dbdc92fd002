"""Fixtures for the harness-core tests: the fake sglang-like server and orphan checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fake_server_helpers import FAKE_LAUNCHER

from harness.serve.server import LaunchSpec, Server, free_port, group_members


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Factory: start the fake server with `--fake-*` flags; every server is stopped at teardown."""
    started: list[Server] = []

    def start(*flags: str, startup_timeout_s: float = 20.0, stop_grace_s: float = 5.0) -> Server:
        port = free_port("127.0.0.1")
        spec = LaunchSpec(
            argv=(*FAKE_LAUNCHER, "--host", "127.0.0.1", "--port", str(port), *flags),
            env=(),
            host="127.0.0.1",
            port=port,
            log_path=tmp_path / f"server-{len(started)}.log",
            startup_timeout_s=startup_timeout_s,
            stop_grace_s=stop_grace_s,
        )
        server = Server(spec)
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
        assert server.pgid is None or group_members(server.pgid) == []


@pytest.fixture
def valid_result(tmp_path: Path) -> dict:
    """A schema-valid result as the pipeline writes it, from a real run against the fake server."""
    from fake_server_helpers import FAKE_LAUNCHER

    from harness.config import RunConfig
    from harness.run import NoProgress, run_scenario
    from harness.scenarios.catalog import load_scenario
    from harness.scenarios.hardware import HostHardware

    config = RunConfig(out_dir=tmp_path / "run", requests=2, warmups=1, launcher=FAKE_LAUNCHER)
    host = HostHardware(cpu_model="test", cpu_count=1)
    return run_scenario(load_scenario("baseline"), config, config.out_dir, host, NoProgress())
