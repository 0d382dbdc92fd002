"""torch.distributed groups of one rank: a gloo control group and the device groups the MLP path uses."""

from __future__ import annotations

import datetime
import os
from typing import Any

import torch
import torch.distributed as dist

from reference_impl.engine.rank_layout import RankLayout

# Ranks block in the control broadcast while the server is idle; idling must not time out.
IDLE_TIMEOUT = datetime.timedelta(days=7)


class Comms:
    """Collectives over the world, this rank's DP group and its CP group; no-ops for one rank."""

    def __init__(self, layout: RankLayout, device: torch.device, master_port: int | None) -> None:
        self.layout = layout
        self.device = device
        self.enabled = layout.world > 1
        if not self.enabled:
            return
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(master_port)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=layout.rank, world_size=layout.world, timeout=IDLE_TIMEOUT,
                                device_id=device if device.type == "cuda" else None)
        self.world = dist.group.WORLD
        self.cpu = dist.new_group(backend="gloo", timeout=IDLE_TIMEOUT) if backend != "gloo" else self.world
        # Every rank must create every group, in the same order.
        self.dp_group = _my_group([layout.dp_group_ranks(d) for d in range(layout.dp_size)], layout.rank)
        cp_lists = []
        for d in range(layout.dp_size):
            for t in range(layout.attn_tp_size):
                base = d * layout.group_size + t
                cp_lists.append([base + c * layout.attn_tp_size for c in range(layout.attn_cp_size)])
        self.cp_group = _my_group(cp_lists, layout.rank)

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.cpu)
        return box[0]

    def all_gather_ints(self, value: int) -> list[int]:
        """One int per world rank over the gloo group (the scheduler's MLP-sync all_gather)."""
        if not self.enabled:
            return [value]
        out = torch.zeros(self.layout.world, dtype=torch.int64)
        dist.all_gather(list(out.chunk(self.layout.world)), torch.tensor([value], dtype=torch.int64),
                        group=self.cpu)
        return out.tolist()

    def gather_objects_to_rank0(self, obj: Any) -> list[Any] | None:
        if not self.enabled:
            return [obj]
        out: list[Any] | None = [None] * self.layout.world if self.layout.rank == 0 else None
        dist.gather_object(obj, out, dst=0, group=self.cpu)
        return out

    def all_gather(self, out: torch.Tensor, inp: torch.Tensor, group_name: str) -> None:
        """out = cat of every member's inp (equal sizes) over 'world', 'dp' or 'cp'."""
        group = {"world": getattr(self, "world", None), "dp": getattr(self, "dp_group", None),
                 "cp": getattr(self, "cp_group", None)}[group_name]
        if not self.enabled or dist.get_world_size(group) == 1:
            out.copy_(inp)
            return
        if self.device.type == "cuda":
            dist.all_gather_into_tensor(out, inp, group=group)
        else:  # gloo has no all_gather_into_tensor; chunks of a contiguous out are contiguous views
            dist.all_gather(list(out.chunk(dist.get_world_size(group))), inp, group=group)

    def all_reduce(self, t: torch.Tensor) -> None:
        if self.enabled:
            dist.all_reduce(t)

    def all_to_all(self, out: torch.Tensor, inp: torch.Tensor, out_splits: list[int], in_splits: list[int]) -> None:
        if not self.enabled:
            out.copy_(inp)
            return
        dist.all_to_all_single(out, inp, out_splits, in_splits)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier(group=self.cpu)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def _my_group(rank_lists: list[list[int]], rank: int) -> Any:
    mine = None
    for ranks in rank_lists:
        group = dist.new_group(ranks)
        if rank in ranks:
            mine = group
    return mine
