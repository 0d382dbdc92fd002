"""Split wheels into batches that each fit one device call's carry limit."""

from __future__ import annotations

import math
from pathlib import Path

from harness.wheelhouse.errors import WheelhouseError

_STEP = 256 * 1024


def split_batches(wheels: list[Path], limit_bytes: int) -> list[list[Path]]:
    """Fewest batches under limit_bytes (first-fit decreasing), then as even in size as FFD allows.

    Even batches leave the most room under the carry limit for the working tree that travels too.
    """
    sized = sorted(((p.stat().st_size, p.name, p) for p in wheels), key=lambda t: (-t[0], t[1]))
    for size, name, _path in sized:
        if size > limit_bytes:
            raise WheelhouseError(f"{name}: {size / 2**20:.1f} MiB is larger than the batch limit "
                                  f"{limit_bytes / 2**20:.1f} MiB (--batch-mib)")
    fewest = _first_fit(sized, limit_bytes)
    total = sum(size for size, _n, _p in sized)
    cap = max(math.ceil(total / max(len(fewest), 1)), sized[0][0] if sized else 0)
    while cap < limit_bytes:
        even = _first_fit(sized, cap)
        if len(even) == len(fewest):
            return even
        cap += _STEP
    return fewest


def _first_fit(sized: list[tuple[int, str, Path]], cap: int) -> list[list[Path]]:
    bins: list[tuple[int, list[Path]]] = []
    for size, _name, path in sized:
        for index, (used, members) in enumerate(bins):
            if used + size <= cap:
                members.append(path)
                bins[index] = (used + size, members)
                break
        else:
            bins.append((size, [path]))
    return [sorted(members, key=lambda p: p.name) for _used, members in bins]
