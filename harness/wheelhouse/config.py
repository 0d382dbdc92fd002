"""The one configuration of a wheelhouse build, validated once at the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from harness.wheelhouse.errors import WheelhouseError

ARCHES = ("sm90", "sm100")
MIB = 1024 * 1024


@dataclass(frozen=True)
class WheelhouseConfig:
    """What to build: sglang version, target Python and image, GPU arch, output and batch limit."""

    sglang_version: str
    python_version: str
    image: Path
    arch: str
    out: Path
    batch_limit_bytes: int = 60 * MIB
    download_dir: Path | None = None
    extra_requirements: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    # A built wheelhouse whose site this one is installed over: wheels it already holds are left out.
    over: Path | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"\d+(\.\d+)*([.-]?(post|rc|a|b)\d+)?", self.sglang_version):
            raise WheelhouseError(f"--sglang: expected a version like 0.5.16, got {self.sglang_version!r}")
        if not re.fullmatch(r"3\.\d{1,2}", self.python_version):
            raise WheelhouseError(f"--python: expected MAJOR.MINOR like 3.12, got {self.python_version!r}")
        if self.arch not in ARCHES:
            raise WheelhouseError(f"--arch: expected one of {', '.join(ARCHES)}, got {self.arch!r}")
        if self.batch_limit_bytes < MIB:
            raise WheelhouseError(f"--batch-mib: expected at least 1 MiB, got {self.batch_limit_bytes} bytes")
        for text in self.extra_requirements:
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                reason = str(exc).splitlines()[0]
                raise WheelhouseError(f"--extra: not a requirement: {text!r} ({reason})") from exc
        if self.over is not None and not (self.over / "manifest.json").is_file():
            raise WheelhouseError(f"--over: {self.over} holds no manifest.json (build that wheelhouse first)")
        if not self.image.is_file():
            raise WheelhouseError(f"--image: no such file: {self.image}")

    @property
    def downloads(self) -> Path:
        """Where the original wheels are cached between builds (never carried to the device)."""
        return self.download_dir if self.download_dir is not None else self.out / "downloads"

    @property
    def python_tag(self) -> str:
        return "cp" + self.python_version.replace(".", "")
