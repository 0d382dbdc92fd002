"""Scenario catalog: harness/scenarios/*.toml parsed into frozen dataclasses, with one-line errors."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.scenarios.hardware import Hardware
from reference_impl.fixset import FIX_NAMES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

SCENARIO_DIR = Path(__file__).parent
MODEL_DIR = Path(__file__).parents[1] / "models"
TARGETS = ("reference", "sglang")

ServerArgValue = bool | int | float | str | list
_TOP_KEYS = {"name", "description", "model", "targets", "guards", "server_args", "env", "workload",
             "hardware", "oracle"}
_WORKLOAD_KEYS = {"input_len", "output_len", "warmups", "requests"}
_HARDWARE_KEYS = {"gpus", "min_gpu_memory_gib", "arch"}
_ORACLE_KEYS = {"dispatch_dtype", "dp_global_num_tokens", "local_num_tokens", "batch_size", "gpu", "expect"}
_ARG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARCH = re.compile(r"^sm\d{2,3}a?$")


class ScenarioError(HarnessError, ValueError):
    """A scenario that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Workload:
    """BS=1, strictly sequential: `warmups` discarded requests, then `requests` measured ones."""

    input_len: int
    output_len: int
    warmups: int
    requests: int


@dataclass(frozen=True)
class OracleSpec:
    """Runtime geometry the oracle evaluates, and Prediction key -> value pairs that must hold.

    `expect` values keep their TOML/JSON types (lists stay lists) so they compare equal to
    `Prediction.to_json()` values.
    """

    dispatch_dtype: str = "bf16"
    dp_global_num_tokens: tuple[int, ...] | None = None
    local_num_tokens: int | None = None
    batch_size: int | None = None
    gpu: str | None = None
    expect: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One runnable configuration: model, sglang server args, env, workload, hardware, oracle."""

    name: str
    description: str
    model_dir: Path
    targets: tuple[str, ...]
    guards: str | None
    server_args: tuple[tuple[str, ServerArgValue], ...]
    env: tuple[tuple[str, str], ...]
    workload: Workload
    hardware: tuple[tuple[str, Hardware], ...]
    oracle: OracleSpec
    path: Path = field(default=Path(), compare=False)

    def hardware_for(self, target: str) -> Hardware:
        """The hardware this scenario needs on `target`; no table means nothing beyond a CPU."""
        return dict(self.hardware).get(target, Hardware())

    def server_cli_args(self) -> list[str]:
        """sglang flags: `tp_size=2` -> `--tp-size 2`, `true` -> bare flag, `false` -> omitted."""
        argv: list[str] = []
        for name, value in self.server_args:
            flag = "--" + name.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif value is False:
                continue
            elif isinstance(value, list):
                argv += [flag, *(str(item) for item in value)]
            else:
                argv += [flag, str(value)]
        return argv


def scenario_path(name_or_path: str | Path) -> Path:
    """The TOML file for a catalog name (`baseline`) or a path to a .toml file."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        return Path(text)
    return SCENARIO_DIR / f"{text}.toml"


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate one scenario; raises ScenarioError naming the file and field."""
    path = scenario_path(name_or_path)
    if not path.is_file():
        if path.parent == SCENARIO_DIR and not str(name_or_path).endswith(".toml"):
            known = ", ".join(p.stem for p in sorted(SCENARIO_DIR.glob("*.toml")))
            raise ScenarioError(f"unknown scenario {str(name_or_path)!r}; known: {known}")
        raise ScenarioError(f"{path}: no such scenario file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: malformed TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    return _Parser(path).scenario(data)


def list_scenarios() -> list[Scenario]:
    """Every scenario of the catalog, sorted by name."""
    return [load_scenario(path) for path in sorted(SCENARIO_DIR.glob("*.toml"))]


class _Parser:
    """Validates one decoded TOML document; every error names `path` and the dotted field."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, field_name: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {field_name}: {problem}")

    def scenario(self, data: dict[str, Any]) -> Scenario:
        self._no_unknown("", data, _TOP_KEYS)
        name = self._str(data, "name")
        if name != self.path.stem:
            raise self.fail("name", f"must match the file name {self.path.stem!r}, got {name!r}")
        targets = self._targets(data)
        return Scenario(
            name=name,
            description=self._str(data, "description"),
            model_dir=self._model_dir(data),
            targets=targets,
            guards=self._guards(data),
            server_args=self._server_args(data.get("server_args", {})),
            env=self._env(data.get("env", {})),
            workload=self._workload(data.get("workload")),
            hardware=self._hardware(data.get("hardware", {}), targets),
            oracle=self._oracle(data.get("oracle", {})),
            path=self.path,
        )

    def _no_unknown(self, prefix: str, table: dict[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(prefix + key, f"unknown key; allowed: {', '.join(sorted(allowed))}")

    def _table(self, value: Any, field_name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(field_name, f"expected a table, got {type(value).__name__}")
        return value

    def _str(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def _targets(self, data: dict[str, Any]) -> tuple[str, ...]:
        value = data.get("targets")
        if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
            raise self.fail("targets", f"expected a non-empty list of strings, got {value!r}")
        unknown = [t for t in value if t not in TARGETS]
        if unknown:
            raise self.fail("targets", f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
        return tuple(value)

    def _guards(self, data: dict[str, Any]) -> str | None:
        value = data.get("guards")
        if value is not None and value not in FIX_NAMES:
            raise self.fail("guards", f"unknown fix {value!r}; known: {', '.join(FIX_NAMES)}")
        return value

    def _model_dir(self, data: dict[str, Any]) -> Path:
        model = self._str(data, "model")
        model_dir = Path(model) if Path(model).is_absolute() else MODEL_DIR / model
        if not (model_dir / "config.json").is_file():
            raise self.fail("model", f"no config.json in model directory {model_dir}")
        return model_dir

    def _server_args(self, value: Any) -> tuple[tuple[str, ServerArgValue], ...]:
        table = self._table(value, "server_args")
        pairs = []
        for name, arg in table.items():
            field_name = f"server_args.{name}"
            if not _ARG_NAME.match(name):
                raise self.fail(field_name, "expected a ServerArgs field name (lower_snake_case)")
            scalars = (bool, int, float, str)
            if isinstance(arg, list):
                if not all(isinstance(item, scalars) and not isinstance(item, bool) for item in arg):
                    raise self.fail(field_name, f"list items must be numbers or strings, got {arg!r}")
            elif not isinstance(arg, scalars):
                raise self.fail(field_name, f"expected a bool, number, string or list, got {arg!r}")
            pairs.append((name, arg))
        return tuple(pairs)

    def _env(self, value: Any) -> tuple[tuple[str, str], ...]:
        table = self._table(value, "env")
        pairs = []
        for name, env_value in table.items():
            if not _ENV_NAME.match(name):
                raise self.fail(f"env.{name}", "not a valid environment variable name")
            if isinstance(env_value, bool) or not isinstance(env_value, (str, int, float)):
                raise self.fail(f"env.{name}", f"expected a string or number, got {env_value!r}")
            pairs.append((name, str(env_value)))
        return tuple(pairs)

    def _int(self, table: dict[str, Any], prefix: str, key: str, minimum: int) -> int:
        value = table.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{prefix}.{key}", f"expected an integer >= {minimum}, got {value!r}")
        return value

    def _workload(self, value: Any) -> Workload:
        if value is None:
            raise self.fail("workload", "missing table")
        table = self._table(value, "workload")
        self._no_unknown("workload.", table, _WORKLOAD_KEYS)
        return Workload(
            input_len=self._int(table, "workload", "input_len", 1),
            output_len=self._int(table, "workload", "output_len", 1),
            warmups=self._int(table, "workload", "warmups", 0),
            requests=self._int(table, "workload", "requests", 1),
        )

    def _hardware(self, value: Any, targets: tuple[str, ...]) -> tuple[tuple[str, Hardware], ...]:
        table = self._table(value, "hardware")
        pairs = []
        for target, needs in table.items():
            prefix = f"hardware.{target}"
            if target not in targets:
                raise self.fail(prefix, f"target {target!r} is not in targets {list(targets)}")
            needs = self._table(needs, prefix)
            self._no_unknown(prefix + ".", needs, _HARDWARE_KEYS)
            memory = needs.get("min_gpu_memory_gib", 0)
            if isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory < 0:
                raise self.fail(f"{prefix}.min_gpu_memory_gib", f"expected a number >= 0, got {memory!r}")
            arch = needs.get("arch", [])
            if not isinstance(arch, list) or not all(isinstance(a, str) and _ARCH.match(a) for a in arch):
                raise self.fail(f"{prefix}.arch", f"expected a list like ['sm90', 'sm100'], got {arch!r}")
            gpus = self._int(needs, prefix, "gpus", 0) if "gpus" in needs else 0
            pairs.append((target, Hardware(gpus=gpus, min_gpu_memory_gib=float(memory), arch=tuple(arch))))
        return tuple(pairs)

    def _oracle(self, value: Any) -> OracleSpec:
        table = self._table(value, "oracle")
        self._no_unknown("oracle.", table, _ORACLE_KEYS)
        dtype = table.get("dispatch_dtype", "bf16")
        if dtype not in ("bf16", "nvfp4"):
            raise self.fail("oracle.dispatch_dtype", f"expected 'bf16' or 'nvfp4', got {dtype!r}")
        dp_global = table.get("dp_global_num_tokens")
        if dp_global is not None and (
            not isinstance(dp_global, list)
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in dp_global)
        ):
            raise self.fail("oracle.dp_global_num_tokens", f"expected a list of integers >= 0, got {dp_global!r}")
        optional_ints = {}
        for key in ("local_num_tokens", "batch_size"):
            optional_ints[key] = self._int(table, "oracle", key, 0) if key in table else None
        gpu = table.get("gpu")
        if gpu is not None and not isinstance(gpu, str):
            raise self.fail("oracle.gpu", f"expected a GPU name string, got {gpu!r}")
        expect = self._table(table.get("expect", {}), "oracle.expect")
        return OracleSpec(
            dispatch_dtype=dtype,
            dp_global_num_tokens=tuple(dp_global) if dp_global is not None else None,
            local_num_tokens=optional_ints["local_num_tokens"],
            batch_size=optional_ints["batch_size"],
            gpu=gpu,
            expect=tuple(expect.items()),
        )
