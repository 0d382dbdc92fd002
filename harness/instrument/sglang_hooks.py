"""Hooks on sglang targets (placeholder until the full set lands): installs nothing yet."""

from __future__ import annotations


def install_sglang_hooks() -> None:
    return None
