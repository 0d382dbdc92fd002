"""The evidence folder results/gpu/<date>-<gpu>/: runs, commands, checks, report, plots, one tarball."""

from __future__ import annotations

import datetime as dt
import json
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.gpu.support.harness_runner import REPO_ROOT
from tests.gpu.support.machine import Gpu, gpu_slug

EVIDENCE_ENV = "HARNESS_GPU_EVIDENCE"  # overrides the folder (tests use a tmp dir)
OUT_ENV = "HARNESS_GPU_OUT"            # where the tarball goes ($OUT on the device machine)


@dataclass
class Evidence:
    """Collects what the suite observed; `finish` writes the report and packs everything."""

    root: Path
    gpus: tuple[Gpu, ...]
    checks: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def create(cls, gpus: tuple[Gpu, ...], today: dt.date | None = None) -> Evidence:
        override = os.environ.get(EVIDENCE_ENV)
        day = (today or dt.datetime.now(dt.timezone.utc).date()).isoformat()
        root = Path(override) if override else REPO_ROOT / "results" / "gpu" / f"{day}-{gpu_slug(gpus)}"
        root.mkdir(parents=True, exist_ok=True)
        return cls(root=root, gpus=gpus)

    @property
    def commands(self) -> Path:
        return self.root / "commands.txt"

    def run_dir(self, scenario: str, target: str) -> Path:
        return self.root / "runs" / f"{scenario}--{target}"

    def record(self, check: str, outcome: str, **details: Any) -> None:
        """One line of the report's check table: outcome is passed, failed or skipped."""
        self.checks.append({"check": check, "outcome": outcome, **details})
        _write_json(self.root / "checks.json", self.checks)

    def write_json(self, name: str, data: Any) -> Path:
        return _write_json(self.root / name, data)


def pack(root: Path, out_dir: Path) -> Path:
    """One tarball holding results/gpu/<folder>/..., so the device tool returns one file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tarball = out_dir / f"evidence-{root.name}.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(root, arcname=f"results/gpu/{root.name}")
    return tarball


def _write_json(path: Path, data: Any) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
