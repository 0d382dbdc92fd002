"""RunConfig: the one frozen object that carries `harness run` options to where they are used.

Also the server command line a RunConfig and a scenario give (server_argv).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness.measure.telemetry import DEFAULT_INTERVAL_S
from harness.measure.warmup import WarmupPolicy
from harness.scenarios.catalog import Scenario
from harness.serve.affinity import Pinning
from harness.serve.cache_dirs import default_cache_dir
from harness.serve.server import SGLANG_FIXED_ARGS, TARGET_MODULES

# Startup deadlines per target: real sglang JIT-compiles and captures graphs (166 s seen for the tiny
# model on an H100, most of it prefill capture), the reference engine starts in seconds.
DEFAULT_STARTUP_TIMEOUT_S = {"reference": 180.0, "sglang": 900.0}


@dataclass(frozen=True)
class RunConfig:
    """Options of one `harness run` invocation; None means "the scenario's (or target's) default"."""

    out_dir: Path
    target: str = "reference"
    requests: int | None = None
    # A count, AutoWarmup (`--warmups auto`: until TPOT is steady, bounded), or None: the scenario's count.
    warmups: WarmupPolicy | None = None
    extra_server_args: tuple[str, ...] = ()
    revert_fixes: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int | None = None
    startup_timeout_s: float | None = None
    # Per-read deadline on the stream: a server that stops sending tokens fails the request after this.
    token_timeout_s: float = 60.0
    stop_grace_s: float = 15.0
    python: str = sys.executable
    # Replaces `[python, "-m", <target module>]` (tests point it at tests/harness/fake_servers/).
    launcher: tuple[str, ...] | None = None
    # Continue the run in out_dir (harness run --resume): keep finished results, re-run the rest.
    resume: bool = False
    # Where the per-GPU lock files live; None: $HARNESS_LOCK_DIR or the system temp dir (harness/serve/lock.py).
    lock_dir: Path | None = None
    # The caller already holds the machine's harness lock for this run (harness gate, across its rounds).
    lock_held: bool = False
    # Cores for the server tree and the client (harness/serve/affinity.py); the default leaves both to the OS.
    pinning: Pinning = field(default_factory=Pinning)
    # Neighbouring scenarios with the same launch flags share one server (its startup is paid once).
    reuse_server: bool = True
    # Triton/inductor/FlashInfer/sglang JIT caches go here (harness/serve/cache_dirs.py); None: the tools' defaults.
    # The default ($HARNESS_CACHE_DIR) lives here, not in the CLI, so runs the gate starts get the cache too.
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    # GPU telemetry (harness/measure/telemetry.py) sampling period; 0 turns it off.
    telemetry_interval_s: float = DEFAULT_INTERVAL_S

    def startup_deadline_s(self) -> float:
        if self.startup_timeout_s is not None:
            return self.startup_timeout_s
        return DEFAULT_STARTUP_TIMEOUT_S[self.target]


def server_argv(scenario: Scenario, config: RunConfig, port: int) -> list[str]:
    """The full command line for `config.target`; the same shape for the reference engine and sglang."""
    prefix = list(config.launcher or (config.python, "-m", TARGET_MODULES[config.target]))
    argv = [*prefix, "--model-path", str(scenario.model_dir), "--host", config.host, "--port", str(port)]
    if config.target == "sglang":
        argv += SGLANG_FIXED_ARGS
    argv += scenario.server_cli_args()
    argv += config.extra_server_args
    for fix in config.revert_fixes:
        argv += ["--revert-fix", fix]
    return config.pinning.wrap(argv, config.python)
