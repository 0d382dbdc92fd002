"""One directory for the JIT and compile caches a server fills, kept between runs on one runner.

Real sglang spends much of its startup compiling: Triton kernels (attention, MoE, the CUDA graph
capture runs each once), torch inductor, FlashInfer's JIT ops, DeepGEMM. Each tool caches under
~/.cache by default, which a fresh CI container loses; `harness run --cache-dir DIR` (or
$HARNESS_CACHE_DIR) points all of them into DIR so the second run on a runner starts warm.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR_ENV = "HARNESS_CACHE_DIR"
# Variable -> subdirectory. Names read in sglang 0.5.16 (srt/environ.py, compilation/compiler_interface.py),
# Triton, torch inductor, FlashInfer's JIT (FLASHINFER_WORKSPACE_BASE/.cache/flashinfer) and the CUDA driver.
CACHE_VARIABLES = (
    ("TRITON_CACHE_DIR", "triton"),
    ("TORCHINDUCTOR_CACHE_DIR", "torchinductor"),
    ("SGLANG_CACHE_DIR", "sglang"),
    ("SGLANG_DG_CACHE_DIR", "deep_gemm"),
    ("FLASHINFER_WORKSPACE_BASE", "flashinfer"),
    ("CUDA_CACHE_PATH", "nv-compute-cache"),
)


def cache_env(root: Path) -> dict[str, str]:
    """The server environment that puts every cache under `root` (created here)."""
    root = root.resolve()
    env = {}
    for variable, sub in CACHE_VARIABLES:
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[variable] = str(root / sub)
    return env


def default_cache_dir() -> Path | None:
    value = os.environ.get(CACHE_DIR_ENV)
    return Path(value) if value else None


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.serve.cache_dirs DIR`: print `export VAR=...` lines for a shell."""
    import shlex
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.serve.cache_dirs DIR", file=sys.stderr)
        return 2
    for variable, value in cache_env(Path(args[0])).items():
        print(f"export {variable}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
