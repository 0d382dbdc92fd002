"""Rank 0's scheduler: admits requests, builds one step at a time, broadcasts it, reports tokens.

One prefill chunk per step, otherwise one decode step over every running request; requests go to
the attention-DP group with the fewest running requests, so a BS=1 workload always lands on group 0.
"""

from __future__ import annotations

import queue
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from reference_impl.engine.slot_pool import SlotPool
from reference_impl.engine.step import GroupWork, Step

if TYPE_CHECKING:  # torch stays out of the HTTP side's imports, so /health answers 503 while it loads
    from reference_impl.engine.comms import Comms
    from reference_impl.engine.runner import ModelRunner


@dataclass
class TokenEvent:
    token: int
    finish_reason: dict[str, object] | None


@dataclass
class ErrorEvent:
    message: str


Event = TokenEvent | ErrorEvent


@dataclass
class Request:
    rid: str
    input_ids: list[int]
    max_new_tokens: int
    ignore_eos: bool
    emit: Callable[[Event], None]
    output_ids: list[int] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    prefilled: int = 0
    dp_rank: int = 0


def needs_token_gather(step: Step) -> bool:
    """Tokens sampled outside DP group 0 must travel to rank 0 (every rank decides this alike)."""
    return any(g.sample_rows for g in step.groups[1:])


class Scheduler:
    def __init__(self, runner: ModelRunner, comms: Comms, eos_token_id: int | None, chunk_size: int,
                 max_running: int, overlap: bool = False) -> None:
        self.runner, self.comms, self.eos = runner, comms, eos_token_id
        self.chunk, self.max_running = chunk_size, max_running
        self.dp_size = runner.layout.dp_size
        # One rank: decode keeps one step in flight (no peer ranks to keep in lockstep).
        self.overlap = overlap and runner.layout.world == 1
        self.pools = [SlotPool(runner.kv.num_slots) for _ in range(self.dp_size)]
        self.inbox: queue.Queue[Request | None] = queue.Queue()
        self.waiting: list[Request] = []
        self.running: list[Request] = []
        self.on_running_changed: Callable[[int], None] = lambda n: None

    def submit(self, req: Request) -> None:
        self.inbox.put(req)

    def stop(self) -> None:
        self.inbox.put(None)

    def run_forever(self) -> None:
        while True:
            if not self._admit(block=not self.waiting and not self.running):
                self.comms.broadcast_object(Step("stop", []))
                return
            step, owners = self._next_step()
            if step is None:
                continue
            self.comms.broadcast_object(step)
            if step.kind == "decode" and self.overlap:
                self._decode_overlapped(step, owners)
                continue
            tokens = self.runner.run_step(step)
            by_group = {0: tokens}
            if needs_token_gather(step):
                gathered = self.comms.gather_objects_to_rank0(tokens) or []
                for d in range(1, self.dp_size):
                    by_group[d] = gathered[d * self.runner.layout.group_size] or []
            self._deliver(owners, by_group)

    def _decode_overlapped(self, step: Step, owners: list[list[Request]]) -> None:
        """Decode with the next step enqueued before this one's tokens are read, as sglang's overlap
        scheduler does: building steps and delivering tokens then hide behind the GPU, and TPOT is the
        device's step time instead of device plus host (whose speed varies from process to process)."""
        launched = self.runner.launch(step)
        while True:
            chain = self._can_chain(owners[0])
            if chain:
                nxt, nxt_owners = self._decode_step([GroupWork()], [[]], ahead=1)
                assert nxt is not None
                nxt_launched = self.runner.launch(nxt, chained=True)
            self._deliver(owners, {0: self.runner.collect(launched)})
            if not chain:
                return
            running = {id(r) for r in self.running}
            if any(id(req) not in running for req in nxt_owners[0]):
                # A request hit EOS: drop its token from the step already in flight, then step normally.
                tokens = self.runner.collect(nxt_launched)
                kept = [(r, t) for r, t in zip(nxt_owners[0], tokens, strict=True) if id(r) in running]
                self._deliver([[r for r, _ in kept]], {0: [t for _, t in kept]})
                return
            launched, owners = nxt_launched, nxt_owners

    def _can_chain(self, reqs: list[Request]) -> bool:
        """The same requests decode again, each with two tokens still to go, and nobody is waiting."""
        same = len(reqs) == len(self.running) and all(a is b for a, b in zip(reqs, self.running, strict=True))
        return (same and not self.waiting and self.inbox.empty()
                and all(r.max_new_tokens - len(r.output_ids) >= 2 for r in reqs))

    def fail_all(self, message: str) -> None:
        for req in self.waiting + self.running:
            req.emit(ErrorEvent(message))

    def _admit(self, block: bool) -> bool:
        """Moves new requests to waiting; False when stop was requested."""
        try:
            item = self.inbox.get(timeout=None) if block else self.inbox.get_nowait()
        except queue.Empty:
            return True
        while True:
            if item is None:
                return False
            self.waiting.append(item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return True

    def _next_step(self) -> tuple[Step | None, list[list[Request]]]:
        groups = [GroupWork() for _ in range(self.dp_size)]
        owners: list[list[Request]] = [[] for _ in range(self.dp_size)]
        if self.waiting and len(self.running) < self.max_running:
            req = self.waiting[0]
            if req.prefilled == 0:
                req.dp_rank = min(range(self.dp_size), key=lambda d: sum(r.dp_rank == d for r in self.running))
            pool = self.pools[req.dp_rank]
            start = req.prefilled
            length = min(self.chunk, len(req.input_ids) - start)
            # Admit only what fits next to the running requests' remaining decode tokens, so a decode
            # step never runs out of slots (sglang would retract; this engine waits instead).
            if start == 0 and pool.free - self._committed(req.dp_rank) < len(req.input_ids) + req.max_new_tokens:
                if not self.running:  # nothing will ever free slots: this request can never fit
                    self.waiting.pop(0)
                    req.emit(ErrorEvent(f"input_ids: {len(req.input_ids)} + {req.max_new_tokens} tokens do "
                                        f"not fit the KV cache ({pool.free} free slots)"))
                    return None, owners
                return self._decode_step(groups, owners)
            req.slots += pool.alloc(length)
            work = groups[req.dp_rank]
            work.input_ids = req.input_ids[start:start + length]
            work.positions = list(range(start, start + length))
            work.out_slots = req.slots[start:start + length]
            work.seg_lens, work.seg_prefix_lens = [length], [start]
            work.seg_slots = [req.slots[:start + length]]
            req.prefilled += length
            if req.prefilled == len(req.input_ids):
                work.sample_rows = [length - 1]
                owners[req.dp_rank].append(req)
                self.waiting.pop(0)
                self.running.append(req)
                self.on_running_changed(len(self.running))
            return Step("extend", groups), owners
        return self._decode_step(groups, owners)

    def _committed(self, dp_rank: int) -> int:
        """Slots the running requests of a DP group will still take."""
        return sum(len(r.input_ids) + r.max_new_tokens - len(r.slots) for r in self.running if r.dp_rank == dp_rank)

    def _decode_step(self, groups: list[GroupWork], owners: list[list[Request]],
                     ahead: int = 0) -> tuple[Step | None, list[list[Request]]]:
        """One decode step over every running request; `ahead`=1 builds it while the previous step's
        token is still on the device (its input id is a placeholder the runner replaces there)."""
        if not self.running:
            return None, owners
        for req in self.running:
            pos = len(req.input_ids) + len(req.output_ids) - 1 + ahead
            req.slots += self.pools[req.dp_rank].alloc(1)
            work = groups[req.dp_rank]
            work.input_ids.append(req.output_ids[-1] if not ahead else 0)
            work.positions.append(pos)
            work.out_slots.append(req.slots[pos])
            work.block_table.append(req.slots[:pos + 1])
            work.seq_lens.append(pos + 1)
            work.sample_rows.append(len(work.input_ids) - 1)
            work.rids.append(req.rid)
            owners[req.dp_rank].append(req)
        return Step("decode", groups), owners

    def _deliver(self, owners: list[list[Request]], by_group: dict[int, list[int]]) -> None:
        for d, reqs in enumerate(owners):
            for req, token in zip(reqs, by_group.get(d, []), strict=True):
                req.output_ids.append(token)
                reason: dict[str, object] | None = None
                if not req.ignore_eos and self.eos is not None and token == self.eos:
                    reason = {"type": "stop", "matched": token}
                elif len(req.output_ids) >= req.max_new_tokens:
                    reason = {"type": "length", "length": req.max_new_tokens}
                if reason is not None and len(self.running) == 1:
                    # Nothing follows the last step: its record is written before the client hears the end.
                    self.runner.flush_step_timing()
                req.emit(TokenEvent(token, reason))
                if reason is not None:
                    self.running.remove(req)
                    self.pools[req.dp_rank].release(req.slots)
                    self.on_running_changed(len(self.running))
