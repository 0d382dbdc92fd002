"""One rank's model runner: builds the model and buffers from the plan, captures decode graphs, runs steps."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import torch

from reference_impl.contract.delay_switch import DelaySwitch, DeviceSleep, spin
from reference_impl.contract.step_timer import Step as TimedStep
from reference_impl.contract.step_timer import StepTimer
from reference_impl.engine.comms import Comms
from reference_impl.engine.device_memory import GIB, DeviceMemory
from reference_impl.engine.dispatcher import A2ADispatcher
from reference_impl.engine.engine_config import EngineConfig
from reference_impl.engine.forward_batch import ForwardBatch, ForwardMode
from reference_impl.engine.kv_cache import KvCache
from reference_impl.engine.mlp_path import MlpCommunicator
from reference_impl.engine.model import MoeModel
from reference_impl.engine.model_spec import ModelSpec
from reference_impl.engine.plan import EnginePlan, StartupError
from reference_impl.engine.rank_layout import RankLayout
from reference_impl.engine.records import Records
from reference_impl.engine.step import GroupWork, Step
from reference_impl.engine.weights import WeightFactory

logger = logging.getLogger("reference_engine.runner")
CPU_DEFAULT_MAX_TOTAL_TOKENS = 65536


class ModelRunner:
    def __init__(self, config: EngineConfig, spec: ModelSpec, plan: EnginePlan, layout: RankLayout,
                 comms: Comms, memory: DeviceMemory, records: Records) -> None:
        self.config, self.spec, self.plan, self.layout = config, spec, plan, layout
        self.comms, self.memory, self.records = comms, memory, records
        self.device = memory.device
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.use_graphs = not config.disable_cuda_graph
        self.context_len = min(config.context_length or spec.max_position_embeddings, spec.max_position_embeddings)
        self._write_layout_records()

        tic = time.perf_counter()
        weights = WeightFactory(config.seed, self.device, self.dtype)
        self.model = MoeModel(spec, layout.expert_slice(spec.num_experts), weights, self.context_len)
        weight_bytes = sum(t.numel() * t.element_size() for t in _tensors(self.model))
        memory.charge("weights", weight_bytes)
        logger.info(f"Load weight end. elapsed={time.perf_counter() - tic:.2f} s, type={type(self.model).__name__}, "
                    f"dtype={self.dtype}, mem usage={weight_bytes / GIB:.2f} GB.")

        self.dispatcher = None
        if plan.geometry is not None:
            self.dispatcher = A2ADispatcher(plan, layout, comms, memory, records, spec.hidden_size,
                                            spec.num_experts_per_tok)
        self.gathered_buffer = None
        if plan.flags.require_gathered_buffer:
            # Sized for the largest decode graph's gather; bigger (prefill) gathers use a temporary.
            rows = max(plan.captured_batch_sizes) * layout.group_size
            self.gathered_buffer = memory.empty("gathered_buffer", (rows, spec.hidden_size), self.dtype)
        records.write("gathered_buffer", allocated=self.gathered_buffer is not None,
                      num_tokens=0 if self.gathered_buffer is None else int(self.gathered_buffer.shape[0]))
        self.path = MlpCommunicator(plan, layout, comms, self.dispatcher, self.gathered_buffer,
                                    dense_experts=self.device.type == "cuda")

        static = int(memory.total_bytes() * plan.resolved.mem_fraction_static)
        kv_budget = static - weight_bytes
        if kv_budget <= 0:
            raise StartupError(f"Loaded weights ({weight_bytes / GIB:.2f} GB) exceed the static budget "
                               f"mem_fraction_static x total = {static / GIB:.2f} GB")
        per_slot = KvCache.bytes_per_slot(spec, self.dtype)
        slots = kv_budget // per_slot
        cap = config.max_total_tokens or (CPU_DEFAULT_MAX_TOTAL_TOKENS if self.device.type != "cuda" else None)
        if cap is not None:
            slots = min(slots, cap + 1)
        self.kv = KvCache(spec, int(slots), memory, self.dtype)
        if self.device.type != "cuda":
            # sglang's KV pool takes the whole static budget; the CPU pool holds fewer tokens but the
            # ledger still charges the rest, so capture headroom is what the same GPU would have.
            memory.charge("kv_cache_unbacked", kv_budget - int(slots) * per_slot)
        logger.info(f"KV Cache is allocated. #tokens: {slots - 1}, KV size: {slots * per_slot / GIB:.2f} GB")
        self.graphs: dict[int, _Graph] = {}
        self.graph_pool: torch.Tensor | None = None
        # Greedy tokens of the last step, one row per sampled request (at most max_running_requests).
        self.next_ids = torch.zeros(max(1, config.max_running_requests), dtype=torch.long, device=self.device)
        pinned = self.device.type == "cuda"
        self.out_host = [torch.zeros(self.next_ids.numel(), dtype=torch.long, pin_memory=pinned) for _ in range(2)]
        self.out_flip = 0
        cuda = torch.cuda if self.device.type == "cuda" else None
        self.device_sleep = DeviceSleep(cuda, logger.info)
        self.delay_switch = DelaySwitch(config.inject_delay_file) if config.inject_delay_file else None
        self.step_timer = None
        if records.enabled and config.step_timing:
            self.step_timer = StepTimer(records.write_lines, cuda, rank=lambda: records.rank)

    @property
    def max_total_tokens(self) -> int:
        return self.kv.num_slots - 1

    def _write_layout_records(self) -> None:
        lay, plan, args = self.layout, self.plan, self.plan.resolved.server_args
        self.records.write("parallel_groups", tp_size=args.tp_size, dp_size=args.dp_size, ep_size=args.ep_size,
                           attn_tp_size=lay.attn_tp_size, attn_cp_size=lay.attn_cp_size,
                           moe_dp_size=lay.moe_dp_size,
                           moe_dp_group_is_attn_cp_group=plan.moe_dp_group_is_attn_cp_group)
        f = plan.flags
        self.records.write("attn_tp_gather", require_attn_tp_gather=f.require_attn_tp_gather,
                           require_mlp_tp_gather=f.require_mlp_tp_gather,
                           require_gathered_buffer=f.require_gathered_buffer, require_mlp_sync=f.require_mlp_sync)
        for layer_id in range(self.spec.num_hidden_layers):
            sparse = self.spec.is_sparse_layer(layer_id)
            self.records.write("mlp_scatter_mode", layer_id=layer_id, is_sparse=sparse,
                               mode=plan.mlp_mode(sparse))

    # ---- decode geometry -------------------------------------------------------------------
    def decode_num_tokens(self, batch_size: int) -> tuple[int, bool]:
        """(tokens the decode step runs, whether a captured graph serves it)."""
        if self.use_graphs:
            n = self.plan.capture_num_tokens(batch_size)
            if n is not None:
                return n, True
        return batch_size, False

    # ---- graph capture ---------------------------------------------------------------------
    def capture_cuda_graphs(self) -> None:
        """Decode graphs for every captured size, largest first (CPU: a warm-up forward per size)."""
        if not self.use_graphs:
            return
        sizes = list(self.plan.captured_batch_sizes)
        tic, before = time.perf_counter(), self.memory.free_bytes()
        kind = "CUDA graph" if self.device.type == "cuda" else "CPU graph (stand-in)"
        logger.info(f"Capture target decode {kind} begin. backend=full, num_tokens_per_req=1, bs={sizes}, "
                    f"avail mem={before / GIB:.2f} GB")
        for num_tokens in reversed(sizes):
            self._capture_one(num_tokens)
        after = self.memory.free_bytes()
        logger.info(f"Capture target decode {kind} end. elapsed={time.perf_counter() - tic:.2f} s, "
                    f"mem usage={(before - after) / GIB:.2f} GB, avail mem={after / GIB:.2f} GB.")

    def _capture_one(self, num_tokens: int) -> None:
        free0, alloc0, tic = self.memory.free_bytes(), self.memory.allocated_bytes(), time.perf_counter()
        logger.info(f"Capturing batches (bs={num_tokens} avail_mem={free0 / GIB:.2f} GB)")
        global_num_tokens = self.plan.capture_global_num_tokens(num_tokens)
        self.records.write("set_dp_buffer_len", global_dp_buffer_len=self._buffer_len(num_tokens),
                           local_dp_buffer_len=num_tokens, global_num_tokens=global_num_tokens)
        try:
            if self.graph_pool is None and self.device.type != "cuda":
                # Stand-in for the CUDA graph memory pool: sglang's reserve plus the largest graph's activations.
                size = (self.plan.graph_pool_bytes()
                        + self.plan.capture_activation_bytes(self.plan.resolved.cuda_graph_max_bs))
                self.graph_pool = self.memory.empty("cuda_graph_pool", (size,), torch.uint8)
            batch = self._dummy_decode(num_tokens, global_num_tokens)
            if self.device.type == "cuda":
                self.graphs[num_tokens] = _Graph.capture(self, batch)
            else:
                batch.capturing = True
                self._forward(batch)
        except torch.OutOfMemoryError as exc:
            self.records.write("capture_oom", batch_size=num_tokens, num_tokens=num_tokens,
                               requested_bytes=_requested_bytes(str(exc)), free_bytes=self.memory.free_bytes(),
                               message=str(exc).splitlines()[0])
            raise
        self.records.write("cuda_graph_capture", batch_size=num_tokens, num_tokens=num_tokens,
                           mem_free_before=free0, mem_free_after=self.memory.free_bytes(),
                           allocated_before=alloc0, allocated_after=self.memory.allocated_bytes(),
                           elapsed_s=time.perf_counter() - tic)

    def _buffer_len(self, num_tokens: int) -> int | None:
        f = self.plan.flags
        if f.require_mlp_tp_gather:
            return num_tokens * self.layout.dp_size
        return num_tokens if f.require_attn_tp_gather else None

    # ---- steps ---------------------------------------------------------------------------------
    def run_step(self, step: Step) -> list[int]:
        """Runs this rank's share of the step; returns greedy tokens for its group's sample rows."""
        return self.collect(self.launch(step))

    def launch(self, step: Step, chained: bool = False) -> Launched:
        """Enqueue the step; `chained`: a decode step whose input ids are the previous decode step's
        tokens, still on the device (same requests, same rows), so the host need not wait for them."""
        work = step.groups[self.layout.dp_rank]
        timed = None
        if step.kind == "decode":
            batch, graph = self._decode_batch(step)
            timed = self._begin_decode(work)
        else:
            batch, graph = self._extend_batch(step), None
            if self.step_timer is not None:
                self.step_timer.other()
        chain = self.next_ids if chained else None
        if graph is not None:
            graph.replay(work, chain)
            logits = graph.logits
        else:
            if chain is not None:
                batch.input_ids[: work.num_tokens].copy_(chain[: work.num_tokens])
            logits = self._forward(batch)
        if timed is not None:
            self.step_timer.end(timed)  # type: ignore[union-attr]
        k = len(work.sample_rows)
        if not k:
            return Launched(None, None)
        ids = self.next_ids[:k]
        torch.argmax(logits[:k], dim=-1, out=ids)
        if self.device.type != "cuda":
            return Launched(ids.clone(), None)
        # Two pinned buffers: step i's copy must survive until collect(i), while step i+1 is in flight.
        self.out_flip ^= 1
        host = self.out_host[self.out_flip][:k]
        host.copy_(ids, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        return Launched(host, done)

    def collect(self, launched: Launched) -> list[int]:
        """Wait for a launched step; its greedy tokens."""
        if launched.done is not None:
            launched.done.synchronize()
        return launched.tokens.tolist() if launched.tokens is not None else []

    def _begin_decode(self, work: GroupWork) -> TimedStep | None:
        """Injected delays and the start of the step's timed forward region.

        A host delay comes before the region; --inject-decode-delay-us and a `gpu` delay from the switch
        file run inside it, ahead of the forward: on a GPU a sleep kernel, so the delay stays on the
        critical path when host work overlaps the GPU; on the CPU a busy-wait.
        """
        delay = self.delay_switch.current() if self.delay_switch is not None else None
        if delay is not None and delay.kind == "host":
            spin(delay.us)
        timed = None
        if self.step_timer is not None and work.num_tokens:
            timed = self.step_timer.begin(work.rids, work.num_tokens, delay)
        self.device_sleep(self.config.inject_decode_delay_us)
        if delay is not None and delay.kind == "gpu":
            self.device_sleep(delay.us)
        return timed

    def flush_step_timing(self) -> None:
        """Write the steps still held back (the scheduler calls this when it has nothing to run)."""
        if self.step_timer is not None:
            self.step_timer.flush(wait=True)

    def _forward(self, batch: ForwardBatch) -> torch.Tensor:
        if batch.sample_index is None:
            batch.sample_index = self._long(_sample_rows(batch))
        return self.model(batch, self.kv, self.path, batch.sample_index)

    def _global_num_tokens(self, my_tokens: int) -> list[int] | None:
        """sglang's prepare_mlp_sync_batch: a real all_gather of every DP group's token count."""
        if not self.plan.flags.require_mlp_sync:
            return None
        counts = self.comms.all_gather_ints(my_tokens)
        return [counts[d * self.layout.group_size] for d in range(self.layout.dp_size)]

    def _extend_batch(self, step: Step) -> ForwardBatch:
        work = step.groups[self.layout.dp_rank]
        t = self._tensors(work)
        slots = [torch.tensor(s, dtype=torch.long, device=self.device) for s in work.seg_slots]
        mode = ForwardMode.EXTEND if work.num_tokens else ForwardMode.IDLE
        return ForwardBatch(mode, *t, seg_lens=work.seg_lens, seg_prefix_lens=work.seg_prefix_lens,
                            seg_kv_slots=slots, global_num_tokens=self._global_num_tokens(work.num_tokens),
                            dp_num_tokens=[g.num_tokens for g in step.groups])

    def _decode_batch(self, step: Step) -> tuple[ForwardBatch, _Graph | None]:
        work = step.groups[self.layout.dp_rank]
        n, graphed = self.decode_num_tokens(max(g.num_tokens for g in step.groups))
        if not graphed:
            t = self._tensors(work)
            width = max([len(r) for r in work.block_table], default=1)
            table = [r + [0] * (width - len(r)) for r in work.block_table]
            mode = ForwardMode.DECODE if work.num_tokens else ForwardMode.IDLE
            return ForwardBatch(mode, *t, block_table=self._long(table or [[0]])[: work.num_tokens],
                                seq_lens=self._long(work.seq_lens),
                                global_num_tokens=self._global_num_tokens(work.num_tokens),
                                dp_num_tokens=[g.num_tokens for g in step.groups]), None
        self._global_num_tokens(n)  # the scheduler's per-step sync still runs; replay uses the baked list
        graph = self.graphs.get(n)
        if graph is not None:  # CUDA: _Graph.replay stages the inputs straight into its static batch
            return graph.batch, graph
        # CPU stand-in for a graph replay: the dummy batch with this step's rows written in.
        batch = self._dummy_decode(n, self.plan.capture_global_num_tokens(n))
        b = work.num_tokens
        if b:
            batch.input_ids[:b] = self._long(work.input_ids)
            batch.positions[:b] = self._long(work.positions)
            batch.out_slots[:b] = self._long(work.out_slots)
            width = max(len(r) for r in work.block_table)
            assert batch.seq_lens is not None
            # No static shape to keep on the CPU: size the table to the longest request.
            batch.block_table = torch.zeros(n, width, dtype=torch.long, device=self.device)
            batch.block_table[:b, :width] = self._long([r + [0] * (width - len(r)) for r in work.block_table])
            batch.seq_lens[:b] = self._long(work.seq_lens)
        batch.quiet = True  # a replay runs no Python on a GPU, so its CPU stand-in writes no dispatch records
        return batch, None

    def _dummy_decode(self, n: int, global_num_tokens: list[int] | None) -> ForwardBatch:
        """n padding rows: token 0 at position 0 writing the scratch slot 0, attending to itself."""
        zeros = torch.zeros(n, dtype=torch.long, device=self.device)
        width = self.context_len if self.device.type == "cuda" else 1
        return ForwardBatch(ForwardMode.DECODE, zeros.clone(), zeros.clone(), zeros.clone(),
                            block_table=torch.zeros(n, width, dtype=torch.long, device=self.device),
                            seq_lens=torch.ones(n, dtype=torch.long, device=self.device),
                            global_num_tokens=global_num_tokens, dp_num_tokens=[n] * self.layout.dp_size,
                            sample_index=torch.arange(n, device=self.device))

    def _tensors(self, work: GroupWork) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self._long(work.input_ids), self._long(work.positions), self._long(work.out_slots)

    def _long(self, values: list[int] | list[list[int]]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=self.device)


def _sample_rows(batch: ForwardBatch) -> list[int]:
    if batch.mode is ForwardMode.EXTEND:
        ends, total = [], 0
        for length in batch.seg_lens:
            total += length
            ends.append(total - 1)
        return ends
    return list(range(batch.num_tokens))


@dataclass(frozen=True)
class Launched:
    """A step in flight: where its tokens land on the host, and the event that says they have."""

    tokens: torch.Tensor | None
    done: torch.cuda.Event | None


class _Graph:
    """A captured CUDA decode graph with its static input batch and output logits."""

    def __init__(self, runner: ModelRunner, batch: ForwardBatch, graph: torch.cuda.CUDAGraph,
                 logits: torch.Tensor) -> None:
        self.runner, self.batch, self.graph, self.logits = runner, batch, graph, logits
        assert batch.block_table is not None
        n, width = batch.block_table.shape
        self.rows = n
        # One pinned staging buffer for every input (ids, positions, slots, seq lens, block table) and one
        # async copy per step: separate pageable copies made the host part of a BS=1 step vary 0.23-0.48 ms
        # from one process to the next on an H200, with the graph replay itself steady to 0.3%.
        self.host = torch.zeros(4 * n + n * width, dtype=torch.long, pin_memory=True)
        self.host_np = self.host.numpy()
        self.staged = torch.empty_like(self.host, device=batch.input_ids.device)
        self.staged_done = torch.cuda.Event()
        self.table_width = width  # columns of the static block table that may hold stale entries

    @classmethod
    def capture(cls, runner: ModelRunner, batch: ForwardBatch) -> _Graph:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            batch.quiet = True
            for _ in range(2):
                runner._forward(batch)
        torch.cuda.current_stream().wait_stream(stream)
        batch.quiet, batch.capturing = False, True
        graph = torch.cuda.CUDAGraph()
        pool = getattr(runner, "_cuda_pool", None)
        with torch.cuda.graph(graph, pool=pool):
            logits = runner._forward(batch)
        runner._cuda_pool = graph.pool()  # type: ignore[attr-defined]
        batch.capturing = False
        return cls(runner, batch, graph, logits)

    def replay(self, work: GroupWork, chain: torch.Tensor | None) -> None:
        """Write the step's rows (padding rows as _dummy_decode makes them) into the static batch; replay.

        `chain`: device tokens of the previous step, which replace the host's input ids row for row.
        """
        s, n, b = self.batch, self.rows, work.num_tokens
        width = max((len(r) for r in work.block_table), default=1)
        self.staged_done.synchronize()  # the previous step's copy has read the host buffer
        h = self.host_np
        for i, values in enumerate((work.input_ids, work.positions, work.out_slots, work.seq_lens)):
            h[i * n: i * n + b] = values
            h[i * n + b: (i + 1) * n] = 1 if i == 3 else 0
        table = h[4 * n: 4 * n + n * width].reshape(n, width)
        table[:] = 0
        for i, row in enumerate(work.block_table):
            table[i, : len(row)] = row
        used = 4 * n + n * width
        self.staged[:used].copy_(self.host[:used], non_blocking=True)
        self.staged_done.record()
        d = self.staged
        for i, name in enumerate(("input_ids", "positions", "out_slots", "seq_lens")):
            getattr(s, name).copy_(d[i * n: (i + 1) * n])
        assert s.block_table is not None
        if chain is not None:
            s.input_ids[:b].copy_(chain[:b])
        s.block_table[:, :width].copy_(d[4 * n: used].view(n, width))
        if self.table_width > width:  # a longer request ran before: clear its tail
            s.block_table[:, width: self.table_width].zero_()
        self.table_width = width
        self.graph.replay()

def _tensors(module: torch.nn.Module) -> list[torch.Tensor]:
    seen: dict[int, torch.Tensor] = {}
    for mod in module.modules():
        for value in vars(mod).values():
            if isinstance(value, torch.Tensor):
                seen[id(value)] = value
    return list(seen.values())


def _requested_bytes(message: str) -> int | None:
    match = re.search(r"Tried to allocate ([0-9.]+) (MiB|GiB|KiB)", message)
    if not match:
        return None
    scale = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[match.group(2)]
    return int(float(match.group(1)) * scale)
