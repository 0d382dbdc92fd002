"""Free KV slots of one attention-DP group, handed out by the scheduler (plain Python, no torch)."""

from __future__ import annotations


class KvCacheFullError(RuntimeError):
    """No free KV slots for a request."""


class SlotPool:
    """Owned by rank 0's scheduler, so every rank of a group writes the same slots."""

    def __init__(self, num_slots: int) -> None:
        self.num_slots = num_slots
        self._free = list(range(num_slots - 1, 0, -1))

    @property
    def free(self) -> int:
        return len(self._free)

    def alloc(self, n: int) -> list[int]:
        if n > len(self._free):
            raise KvCacheFullError(f"KV cache full: need {n} slots, {len(self._free)} free of {self.num_slots}")
        return [self._free.pop() for _ in range(n)]

    def release(self, slots: list[int]) -> None:
        self._free.extend(reversed(slots))
