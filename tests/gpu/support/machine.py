"""What GPUs this machine has, read with nvidia-smi (no torch import needed to decide on skipping)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    compute_cap: str


def list_gpus() -> tuple[Gpu, ...]:
    """Visible GPUs; empty when nvidia-smi is absent or reports none."""
    if shutil.which("nvidia-smi") is None:
        return ()
    query = ["nvidia-smi", "--query-gpu=index,name,memory.total,compute_cap", "--format=csv,noheader,nounits"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and parts[0].isdigit():
            gpus.append(Gpu(int(parts[0]), parts[1], int(float(parts[2])), parts[3]))
    return tuple(gpus)


def gpu_slug(gpus: tuple[Gpu, ...]) -> str:
    """`h100`, `h200x2`...: the GPU model in lower case, with a count when there are several."""
    if not gpus:
        return "nogpu"
    match = re.search(r"\b([A-Z]\d{2,4}[A-Z]?)\b", gpus[0].name)
    model = (match.group(1) if match else re.sub(r"[^a-z0-9]+", "-", gpus[0].name.lower())).lower()
    return model if len(gpus) == 1 else f"{model}x{len(gpus)}"


def arch(gpu: Gpu) -> str:
    """sm90 for compute capability 9.0, and so on."""
    return "sm" + gpu.compute_cap.replace(".", "")


def compute_pids() -> list[int]:
    """PIDs holding GPU memory; a server that left one behind blocks the next launch."""
    if shutil.which("nvidia-smi") is None:
        return []
    done = subprocess.run(["nvidia-smi", "--query-compute-apps=pid", "--format=csv,noheader"],
                          capture_output=True, text=True, timeout=30, check=False)
    return [int(x) for x in done.stdout.split() if x.strip().isdigit()]
