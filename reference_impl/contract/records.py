"""Instrumentation record format (schema 1): one JSON object per line, one file per process.

Stdlib only: this module is imported inside sglang and reference-engine processes.
Every record has: schema, kind, pid, rank, t (time.time()), plus the kind's fields:

- process_start: target ("sglang"|"reference"), target_version
- parallel_groups: tp_size, dp_size, ep_size, attn_tp_size, attn_cp_size, moe_dp_size,
  moe_dp_group_is_attn_cp_group; optional moe_dp_group_size (the MoE-DP group's world size)
- attn_tp_gather: require_attn_tp_gather, require_mlp_tp_gather, require_gathered_buffer,
  require_mlp_sync
- gathered_buffer: allocated (bool), num_tokens
- dispatcher_init: ep_size, ep_rank, max_num_tokens, dispatch_payload_bytes_per_token,
  combine_payload_bytes_per_token, workspace_size_per_rank; optional payload_workspace_tokens,
  payload_in_workspace
- dispatch: phase ("capture"|"eager"), runtime_max_tokens_per_rank, local_num_tokens,
  dp_global_num_tokens (list or null)
- set_dp_buffer_len: global_dp_buffer_len, local_dp_buffer_len, global_num_tokens (list or null);
  optional phase ("capture"|"eager"; a record without one counts as written at capture)
- cuda_graph_capture: batch_size, num_tokens, mem_free_before, mem_free_after,
  allocated_before, allocated_after, elapsed_s
- capture_oom: batch_size, num_tokens, requested_bytes, free_bytes, message
- mlp_scatter_mode: layer_id, is_sparse, mode ("SCATTERED"|"FULL"|"MOE_FULL"); optional variant
  ("ORDINARY"|"CONTEXT_PARALLEL": layer_boundary releases, whose hook is per FFN stage, layer_id null)
- decode_step: rids (request ids in the batch), batch_size, device_ms (the device time of the step's CUDA
  graph replay, or of its forward when none replayed), forward_ms (the forward's), region ("graph_replay"|"forward"),
  host_ms (wall_ms - device_ms, or null), clock ("cuda_event"|"host": how device_ms was measured), ts
  (time.time() at the step's start); also wall_ms (start to the next forward's start when that is a
  decode step of the same requests, else null), inject_kind ("gpu"|"host"|null), inject_us
- hook_installed: target; hook_missing: target, reason
A record may carry more fields than listed; FIELDS below is what the reader requires.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
ENV_DIR = "HARNESS_INSTRUMENT_DIR"
ENV_RANK = "HARNESS_INSTRUMENT_RANK"

KINDS = frozenset(
    {
        "process_start",
        "parallel_groups",
        "attn_tp_gather",
        "gathered_buffer",
        "dispatcher_init",
        "dispatch",
        "set_dp_buffer_len",
        "cuda_graph_capture",
        "capture_oom",
        "mlp_scatter_mode",
        "decode_step",
        "hook_installed",
        "hook_missing",
    }
)


# Fields every record of a kind must carry (the reader reports a record missing one); a writer may add
# more. Values are JSON scalars, lists of ints, or null where the docstring says so.
COMMON_FIELDS = ("schema", "kind", "pid", "rank", "t")
FIELDS: dict[str, tuple[str, ...]] = {
    "process_start": ("target", "target_version"),
    "parallel_groups": ("tp_size", "dp_size", "ep_size", "attn_tp_size", "attn_cp_size", "moe_dp_size",
                        "moe_dp_group_is_attn_cp_group"),
    "attn_tp_gather": ("require_attn_tp_gather", "require_mlp_tp_gather", "require_gathered_buffer",
                       "require_mlp_sync"),
    "gathered_buffer": ("allocated", "num_tokens"),
    "dispatcher_init": ("ep_size", "ep_rank", "max_num_tokens", "dispatch_payload_bytes_per_token",
                        "combine_payload_bytes_per_token", "workspace_size_per_rank"),
    "dispatch": ("phase", "runtime_max_tokens_per_rank", "local_num_tokens", "dp_global_num_tokens"),
    "set_dp_buffer_len": ("global_dp_buffer_len", "local_dp_buffer_len", "global_num_tokens"),
    "cuda_graph_capture": ("batch_size", "num_tokens", "mem_free_before", "mem_free_after",
                           "allocated_before", "allocated_after", "elapsed_s"),
    "capture_oom": ("batch_size", "num_tokens", "requested_bytes", "free_bytes", "message"),
    "mlp_scatter_mode": ("layer_id", "is_sparse", "mode"),
    "decode_step": ("rids", "batch_size", "device_ms", "host_ms", "clock", "ts"),
    "hook_installed": ("target",),
    "hook_missing": ("target", "reason"),
}


class RecordWriter:
    """Appends records to `<dir>/records-<pid>.jsonl`, flushing each line so a crash loses nothing."""

    def __init__(self, directory: str | os.PathLike[str], rank: int = 0) -> None:
        self.rank = rank
        self.path = Path(directory) / f"records-{os.getpid()}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def write(self, kind: str, **fields: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown instrumentation record kind {kind!r}")
        record = {"schema": SCHEMA_VERSION, "kind": kind, "pid": os.getpid(), "rank": self.rank,
                  "t": time.time(), **fields}
        line = json.dumps(record, default=_jsonable, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def write_lines(self, lines: list[str]) -> None:
        """Append records already encoded as JSON lines (the per-step hot path), in one write."""
        text = "".join(line + "\n" for line in lines)
        with self._lock:
            self._file.write(text)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def writer_from_env() -> RecordWriter | None:
    """The writer configured by HARNESS_INSTRUMENT_DIR, or None when instrumentation is off."""
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return None
    return RecordWriter(directory, rank=int(os.environ.get(ENV_RANK, "0")))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "name"):
        return value.name
    return str(value)
