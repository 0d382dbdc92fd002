"""Track TTFT, TPOT (BS=1), decode step device time, A2A workspace, OOM at capture, capture memory and oracle failures.

`setup_cache` runs the selected scenarios once per commit through `harness run` (or takes the run
directory the nightly already produced); every track_* only reads that run's result.json files, and
the *_ratio_to_control ones the verdict.json of the night's comparison with the control build.
`Fix` reads the per-fix verdicts the nightly's `harness sglang-check --source` left in that directory.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any, ClassVar

from asv_runner.benchmarks.mark import SkipNotImplemented

from . import readout
from .suite_config import SuiteConfig, catalog_names, fix_names

# Generous per-scenario budget: real sglang JIT-compiles and captures CUDA graphs (minutes).
SCENARIO_TIMEOUT_S = 1800


class Scenario:
    """One parameter per catalog scenario; the harness runs all selected scenarios in one go."""

    params: ClassVar[list[list[str]]] = [catalog_names()]
    param_names: ClassVar[list[str]] = ["scenario"]
    # track_* only read JSON: one call is the measurement.
    rounds = 1
    repeat = 1
    number = 1
    timeout = 60

    def setup_cache(self) -> str:
        config = SuiteConfig.from_env()
        if config.run_dir is not None:
            if not config.run_dir.is_dir():
                raise FileNotFoundError(f"HARNESS_ASV_RUN_DIR: {config.run_dir} is not a directory")
            return str(config.run_dir)
        # asv sets ASV_COMMIT only when it installed the commit itself (virtualenv flow).
        commit = os.environ.get("ASV_COMMIT", "run")[:12]
        out = config.out_root / f"{commit}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        argv = [*config.harness_command(), "run", *config.scenario_args(), "--target", config.target, "--out", str(out)]
        if config.launcher:
            argv += ["--launcher", config.launcher]
        argv += list(config.harness_args)
        # A non-zero exit means some scenario failed (an OOM at capture is one): that is data, not an error.
        proc = subprocess.run(argv, timeout=SCENARIO_TIMEOUT_S * len(config.scenarios), check=False,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if not out.is_dir():
            raise RuntimeError(f"harness run wrote no run directory (exit {proc.returncode}):\n{proc.stdout}")
        return str(out)

    setup_cache.timeout = SCENARIO_TIMEOUT_S * len(catalog_names())

    def setup(self, run_dir: str, scenario: str) -> None:
        config = SuiteConfig.from_env()
        if scenario not in config.scenarios:
            raise NotImplementedError(f"{scenario}: not selected (HARNESS_ASV_SCENARIOS)")
        self.result = readout.load_result(Path(run_dir), scenario)

    def _read(self, metric: Any, *args: str) -> Any:
        # Only setup may raise NotImplementedError to skip; from a benchmark body asv wants this subclass.
        try:
            return metric(self.result, *args)
        except NotImplementedError as exc:
            raise SkipNotImplemented(str(exc)) from None

    def track_ttft_ms(self, run_dir: str, scenario: str) -> float:
        return self._read(readout.latency_median_ms, "ttft_ms")

    track_ttft_ms.unit = "ms"

    def track_tpot_ms(self, run_dir: str, scenario: str) -> float:
        return self._read(readout.latency_median_ms, "tpot_ms")

    track_tpot_ms.unit = "ms"

    def track_decode_gpu_ms(self, run_dir: str, scenario: str) -> float:
        return self._read(readout.decode_gpu_ms)

    track_decode_gpu_ms.unit = "ms"

    # The commit under test over the pinned control build, measured side by side the same night
    # (`harness nightly`, the gate's paired estimate): machine-wide shifts cancel in these.
    def track_ttft_ratio_to_control(self, run_dir: str, scenario: str) -> float:
        return self._ratio(run_dir, scenario, "ttft_ms")

    track_ttft_ratio_to_control.unit = "ratio"

    def track_tpot_ratio_to_control(self, run_dir: str, scenario: str) -> float:
        return self._ratio(run_dir, scenario, "tpot_ms")

    track_tpot_ratio_to_control.unit = "ratio"

    def track_decode_gpu_ratio_to_control(self, run_dir: str, scenario: str) -> float:
        return self._ratio(run_dir, scenario, "decode_gpu_ms")

    track_decode_gpu_ratio_to_control.unit = "ratio"

    def _ratio(self, run_dir: str, scenario: str, metric: str) -> float:
        try:
            return readout.ratio_to_control(Path(run_dir), scenario, metric)
        except NotImplementedError as exc:
            raise SkipNotImplemented(str(exc)) from None

    def track_a2a_workspace_bytes(self, run_dir: str, scenario: str) -> int:
        return self._read(readout.a2a_workspace_bytes)

    track_a2a_workspace_bytes.unit = "bytes"

    def track_capture_oom(self, run_dir: str, scenario: str) -> int:
        return self._read(readout.capture_oom)

    track_capture_oom.unit = "oom"

    def track_capture_mem_bytes(self, run_dir: str, scenario: str) -> int:
        return self._read(readout.capture_mem_bytes)

    track_capture_mem_bytes.unit = "bytes"

    def track_oracle_failures(self, run_dir: str, scenario: str) -> int:
        return self._read(readout.oracle_failures)

    track_oracle_failures.unit = "failures"

    # Noise telemetry beside the latencies: a night whose TPOT moved with a lower clock or throttling
    # says so on the dashboard (skipped on CPU runs, which have no NVML).
    def track_sm_clock_mhz(self, run_dir: str, scenario: str) -> float:
        return self._read(readout.sm_clock_mhz)

    track_sm_clock_mhz.unit = "MHz"

    def track_throttled_share(self, run_dir: str, scenario: str) -> float:
        return self._read(readout.throttled_share)

    track_throttled_share.unit = "share"


class Fix:
    """One series per fix: 1 while sglang's source at the commit holds it, 0 when the checks find it absent."""

    params: ClassVar[list[list[str]]] = [fix_names()]
    param_names: ClassVar[list[str]] = ["fix"]
    rounds = 1
    repeat = 1
    number = 1
    timeout = 60

    def setup(self, fix: str) -> None:
        run_dir = SuiteConfig.from_env().run_dir
        if run_dir is None:
            raise NotImplementedError("fix verdicts are read from a finished run directory (HARNESS_ASV_RUN_DIR)")
        self.present = readout.fix_present(run_dir, fix)

    def track_present(self, fix: str) -> int:
        return self.present

    track_present.unit = "present"
