"""`harness sglang-compat` entry point (the command lives in harness/upstream/cli.py)."""

from harness.upstream.cli import compat_main as main

__all__ = ["main"]
