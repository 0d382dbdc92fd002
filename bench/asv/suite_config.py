"""SuiteConfig: the asv suite's options, read once from HARNESS_ASV_* environment variables.

asv gives a benchmark no arguments of its own, so the environment is the interface (docs/tracking.md).
Stdlib only: in the per-commit virtualenv flow this runs in an environment that holds just sglang.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "harness" / "scenarios"
FIXSET = ROOT / "reference_impl" / "fixset.py"


def catalog_names() -> list[str]:
    """Every scenario of the catalog: the suite's parameter values, stable across targets."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def fix_names() -> list[str]:
    """The five fixes (reference_impl/fixset.py, stdlib only), loaded by path: asv's environment may lack the harness."""
    spec = importlib.util.spec_from_file_location("_harness_fixset", FIXSET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return list(module.FIX_NAMES)


@dataclass(frozen=True)
class SuiteConfig:
    """Which target to run, which scenarios, and where run directories are read from or written to."""

    target: str
    scenarios: tuple[str, ...]
    scenario_dir: Path | None  # variants of catalog scenarios (same names), e.g. shorter workloads
    run_dir: Path | None  # a finished run directory to read instead of running (the nightly record job)
    out_root: Path  # where fresh run directories go
    harness: tuple[str, ...]  # the harness command (it runs in the project's environment); () = find it
    harness_args: tuple[str, ...]  # extra `harness run` options, e.g. --requests 3 --revert-fix NAME
    conf_dir: Path
    launcher: str | None  # `harness run --launcher`: the server command; None: the harness's default

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SuiteConfig:
        env = dict(os.environ) if environ is None else environ
        known = catalog_names()
        scenarios = tuple(s for s in env.get("HARNESS_ASV_SCENARIOS", "").replace(",", " ").split() if s)
        unknown = sorted(set(scenarios) - set(known))
        if unknown:
            raise ValueError(f"HARNESS_ASV_SCENARIOS: unknown scenario(s) {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
        target = env.get("HARNESS_ASV_TARGET", "sglang")
        if target not in ("reference", "sglang"):
            raise ValueError(f"HARNESS_ASV_TARGET: expected 'reference' or 'sglang', got {target!r}")
        # asv runs benchmarks from a scratch directory and does not always say where it was started
        # (ASV_CONF_DIR): relative paths are only accepted when it does.
        conf_dir = Path(env["ASV_CONF_DIR"]) if env.get("ASV_CONF_DIR") else None
        run_dir = _path(env, "HARNESS_ASV_RUN_DIR", conf_dir)
        scenario_dir = _path(env, "HARNESS_ASV_SCENARIO_DIR", conf_dir)
        if scenario_dir is not None:
            missing = [s for s in scenarios or known if not (scenario_dir / f"{s}.toml").is_file()]
            if missing:
                raise ValueError(f"HARNESS_ASV_SCENARIO_DIR: {scenario_dir} lacks {', '.join(missing)} (.toml)")
        # asv's virtualenv flow builds sglang into its own environment: the server must run there.
        per_commit_env = env.get("ASV_ENV_TYPE", "existing") != "existing"
        return cls(
            target=target,
            scenarios=scenarios or tuple(known),
            scenario_dir=scenario_dir,
            run_dir=run_dir,
            out_root=_path(env, "HARNESS_ASV_OUT", conf_dir) or ((conf_dir or ROOT) / ".asv" / "runs").resolve(),
            harness=tuple(shlex.split(env.get("HARNESS_ASV_HARNESS", ""))),
            harness_args=tuple(shlex.split(env.get("HARNESS_ASV_HARNESS_ARGS", ""))),
            conf_dir=conf_dir or ROOT,
            launcher=f"{sys.executable} -m sglang.launch_server" if per_commit_env and target == "sglang" else None,
        )

    def harness_command(self) -> tuple[str, ...]:
        """The harness to run; looked up only when the suite has to run scenarios itself."""
        return self.harness or _default_harness(self.conf_dir)

    def scenario_args(self) -> list[str]:
        """What `harness run` is given: catalog names, or the variant files of HARNESS_ASV_SCENARIO_DIR."""
        if self.scenario_dir is None:
            return list(self.scenarios)
        return [str(self.scenario_dir / f"{name}.toml") for name in self.scenarios]


def _path(env: dict[str, str], name: str, base: Path | None) -> Path | None:
    value = env.get(name)
    if not value:
        return None
    if not Path(value).is_absolute() and base is None:
        raise ValueError(f"{name}: give an absolute path (got {value!r}; asv runs benchmarks elsewhere)")
    return ((base or Path("/")) / value).resolve()


def _default_harness(conf_dir: Path) -> tuple[str, ...]:
    for candidate in (conf_dir / ".venv" / "bin" / "harness", Path(sys.prefix) / "bin" / "harness"):
        if candidate.is_file():
            return (str(candidate),)
    found = shutil.which("harness")
    if found:
        return (found,)
    raise FileNotFoundError("no `harness` command: run `./dev true` or set HARNESS_ASV_HARNESS")
