"""Engine processes for the tests: started for real on loopback, stopped by process group, no orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

REPO = Path(__file__).resolve().parents[3]
TINY_QWEN = REPO / "harness" / "models" / "tiny-qwen3-moe"
# A micro Qwen3-MoE so multi-rank and long-prompt tests spend their time on the engine, not on matmuls.
MICRO_CONFIG = {
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "hidden_size": 128, "head_dim": 32,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "num_experts": 8,
    "num_experts_per_tok": 2, "moe_intermediate_size": 64, "intermediate_size": 256, "vocab_size": 512,
    "max_position_embeddings": 8192, "eos_token_id": 2, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
    "norm_topk_prob": True,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EngineProcess:
    """One `python -m reference_impl.engine` process group with its log and instrumentation dir."""

    args: list[str]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        self.records_dir = self.workdir / "records"
        self.log_path = self.workdir / "server.log"
        env = {**os.environ, "HARNESS_INSTRUMENT_DIR": str(self.records_dir), **self.env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reference_impl.engine", "--host", "127.0.0.1", "--port", str(self.port),
             *self.args], cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"engine exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # refused while starting, or slow to answer under load
                pass
            time.sleep(0.1)
        raise AssertionError(f"engine not healthy after {timeout} s:\n{self.log()[-3000:]}")

    def wait_exit(self, timeout: float = 90.0) -> int:
        return self.proc.wait(timeout=timeout)

    def records(self, kind: str) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.records_dir.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record["kind"] == kind:
                    out.append(record)
        return out

    def generate(self, input_ids: list[int], max_new_tokens: int, stream: bool = True) -> requests.Response:
        body = {"input_ids": input_ids, "stream": stream,
                "sampling_params": {"max_new_tokens": max_new_tokens, "ignore_eos": True, "temperature": 0}}
        return requests.post(self.url + "/generate", json=body, stream=stream, timeout=120)

    def stream_events(self, input_ids: list[int], max_new_tokens: int) -> list[bytes]:
        """The raw SSE payloads (after `data: `), the final [DONE] included."""
        response = self.generate(input_ids, max_new_tokens)
        assert response.status_code == 200, response.text
        raw = response.content
        assert raw.endswith(b"\n\n")
        events = raw.split(b"\n\n")[:-1]
        assert all(e.startswith(b"data: ") for e in events), raw[:300]
        return [e[len(b"data: "):] for e in events]

    def output_ids(self, input_ids: list[int], max_new_tokens: int) -> list[int]:
        events = self.stream_events(input_ids, max_new_tokens)
        assert events[-1] == b"[DONE]"
        return json.loads(events[-2])["output_ids"]

    def stop(self) -> None:
        """SIGTERM the group, SIGKILL after a grace period; every process of the group must be gone."""
        pgid = self.proc.pid
        members = _group_members(pgid)
        if self.proc.poll() is None:
            os.killpg(pgid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(pgid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        _, alive = psutil.wait_procs(members, timeout=10)
        for p in alive:
            p.kill()
        self._log.close()
        assert not alive, f"engine processes outlived the engine: {[p.pid for p in alive]}"


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    return TINY_QWEN


@pytest.fixture(scope="session")
def micro_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("micro-qwen3-moe")
    (path / "config.json").write_text(json.dumps(MICRO_CONFIG), encoding="utf-8")
    return path


@pytest.fixture
def start_engine(tmp_path: Path) -> Iterator[Any]:
    """start_engine(args, env=None) -> EngineProcess; all started engines are stopped at teardown."""
    started: list[EngineProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> EngineProcess:
        workdir = tmp_path / f"engine-{len(started)}"
        workdir.mkdir()
        engine = EngineProcess(args, workdir, env or {})
        started.append(engine)
        return engine

    yield start
    for engine in started:
        engine.stop()


@pytest.fixture(scope="session")
def engine_process() -> type[EngineProcess]:
    """The EngineProcess class, for module-scoped engines shared by several tests."""
    return EngineProcess
