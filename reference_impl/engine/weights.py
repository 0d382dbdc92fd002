"""Seeded random weights: every tensor has its own generator, so a rank builds only its own experts."""

from __future__ import annotations

import zlib

import torch


class WeightFactory:
    """Makes the same tensor for the same (seed, name) on every rank and every run."""

    def __init__(self, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.seed = seed
        self.device = device
        self.dtype = dtype

    def normal(self, name: str, *shape: int, std: float = 0.02) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(name.encode()))
        t = torch.randn(*shape, generator=gen, dtype=torch.float32) * std
        return t.to(device=self.device, dtype=self.dtype)

    def ones(self, *shape: int) -> torch.Tensor:
        return torch.ones(*shape, device=self.device, dtype=self.dtype)
