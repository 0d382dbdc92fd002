"""Entry point the probe's sitecustomize calls: installs the post-import hooks for sglang targets."""

from __future__ import annotations


def install() -> None:
    """Install the sglang hooks (stdlib only; torch and sglang are touched only once imported)."""
    from .sglang_hooks import install_sglang_hooks

    install_sglang_hooks()
