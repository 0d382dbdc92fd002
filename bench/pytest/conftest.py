"""Fixtures of the pytest-benchmark suite: a live reference-engine server on loopback for a session.

`--engine-arg` passes extra flags to the engine (repeatable), e.g. `--engine-arg=--inject-decode-delay-us=500`;
`--bench-scenario` picks the catalog scenario whose model and server args the server gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import RunConfig, server_argv
from harness.measure.client import StreamingClient
from harness.scenarios.catalog import Scenario, load_scenario
from harness.serve.server import LaunchSpec, Server, free_port

HOST = "127.0.0.1"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness benchmarks")
    group.addoption("--engine-arg", action="append", default=[], metavar="FLAG",
                    help="extra reference-engine flag (repeatable), e.g. --engine-arg=--inject-decode-delay-us=500")
    group.addoption("--bench-scenario", default="baseline", help="catalog scenario to serve (default baseline)")


@pytest.fixture(scope="session")
def bench_scenario(request: pytest.FixtureRequest) -> Scenario:
    return load_scenario(request.config.getoption("--bench-scenario"))


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest, bench_scenario: Scenario,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The reference engine serving the scenario; the whole process group is stopped afterwards."""
    out: Path = tmp_path_factory.mktemp("live-server")
    config = RunConfig(out_dir=out, target="reference",
                       extra_server_args=tuple(request.config.getoption("--engine-arg")))
    port = free_port(HOST)
    spec = LaunchSpec(argv=tuple(server_argv(bench_scenario, config, port)), env=(), host=HOST, port=port,
                      log_path=out / "server.log", startup_timeout_s=config.startup_deadline_s(),
                      stop_grace_s=config.stop_grace_s)
    with Server(spec) as server:
        startup = server.wait_ready()
        if startup.outcome != "ok":
            pytest.fail(f"reference engine did not start ({startup.outcome}): {startup.message}\n"
                        f"{server.read_log()[-2000:]}")
        yield server
    shutdown = server.stop()
    assert not shutdown.survivors, f"server processes survived: {shutdown.survivors}"


@pytest.fixture(scope="session")
def client(live_server: Server) -> Iterator[StreamingClient]:
    with StreamingClient(live_server.spec.base_url, token_timeout_s=60.0) as streaming:
        yield streaming
