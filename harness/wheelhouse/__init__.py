"""Offline wheelhouse for real sglang on air-gapped GPU runners (`harness wheelhouse ...`)."""

from __future__ import annotations


def main(argv: list[str]) -> int:
    """Entry point the harness CLI dispatches `harness wheelhouse ...` to."""
    from harness.wheelhouse.cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
