"""Rank 0's process: spawns the other ranks, serves HTTP, runs the scheduler; one tree, one exit code."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from reference_impl.engine.engine_config import CPU_DEFAULT_GIB, GIB, EngineConfig, engine_version
from reference_impl.engine.http_server import ServerState, build_app
from reference_impl.engine.metrics import ServerMetrics
from reference_impl.engine.model_spec import ModelSpecError, load_model_spec
from reference_impl.engine.plan import EnginePlan, StartupError, build_plan, check_plan
from reference_impl.engine.process_tree import free_port, kill_children

logger = logging.getLogger("reference_engine")


def launch(config: EngineConfig, argv: Sequence[str]) -> int:
    for flag in config.ignored_flags:
        logger.info(f"{flag}: accepted for sglang compatibility; it does not change the reference engine's compute")
    try:
        spec = load_model_spec(config.model_path)
    except ModelSpecError as exc:
        logger.error(str(exc))
        return 1
    # The layout check needs no device: run it before any rank starts (sglang asserts at startup too).
    plan = build_plan(config, spec, int((config.device_memory_gib or CPU_DEFAULT_GIB) * GIB))
    try:
        check_plan(plan, spec)
    except StartupError as exc:
        logger.error(str(exc))
        return 1
    world = plan.resolved.server_args.tp_size
    master_port = free_port() if world > 1 else None
    children = [
        subprocess.Popen([sys.executable, "-m", "reference_impl.engine.worker", "--rank", str(r),
                          "--master-port", str(master_port), "--", *argv])
        for r in range(1, world)
    ]
    info = {**config.resolved(), "version": engine_version(), "target": "reference", **plan_info(plan)}
    state = ServerState(ServerMetrics(Path(config.model_path).name), info, spec.vocab_size,
                        min(config.context_length or spec.max_position_embeddings, spec.max_position_embeddings),
                        detokenize=not config.skip_tokenizer_init)
    return asyncio.run(_serve(config, state, children, master_port))


def plan_info(plan: EnginePlan) -> dict[str, object]:
    """The resolved args and oracle values a plan runs with, for /server_info."""
    args, g = plan.resolved.server_args, plan.geometry
    return {
        "tp_size": args.tp_size, "ep_size": args.ep_size, "mem_fraction_static": plan.resolved.mem_fraction_static,
        "cuda_graph_max_bs": plan.resolved.cuda_graph_max_bs,
        "chunked_prefill_size": plan.resolved.chunked_prefill_size,
        "oracle": {"require_attn_tp_gather": plan.flags.require_attn_tp_gather,
                   "require_mlp_tp_gather": plan.flags.require_mlp_tp_gather,
                   "require_gathered_buffer": plan.flags.require_gathered_buffer,
                   "mlp_scatter_mode": plan.modes.to_json(),
                   "captured_batch_sizes": list(plan.captured_batch_sizes),
                   "a2a_max_num_tokens": g.max_num_tokens if g else None,
                   "a2a_workspace_bytes_per_rank": g.workspace_bytes_per_rank if g else None,
                   "predicted_capture_oom": plan.prediction.predicted_capture_oom,
                   "capture_headroom_bytes": plan.prediction.capture_headroom_bytes},
    }


async def _serve(config: EngineConfig, state: ServerState, children: list[subprocess.Popen[bytes]],
                 master_port: int | None) -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def finish(code: int) -> None:
        if not done.done():
            done.set_result(code)

    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port).start()
    logger.info(f"HTTP server listening on http://{config.host}:{config.port} (health 503 until ready)")
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, finish, 0)
    engine = threading.Thread(target=_engine_main, args=(config, state, master_port, loop, finish),
                              name="scheduler", daemon=True)
    engine.start()
    for rank, child in enumerate(children, start=1):
        threading.Thread(target=_watch_child, args=(rank, child, loop, finish), daemon=True).start()
    code = await done
    if code != 0:
        await asyncio.sleep(0.3)  # let in-flight SSE error events reach their clients
    kill_children(children)
    if code == 0:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(runner.cleanup(), timeout=2)
    sys.stdout.flush()
    # The scheduler thread may sit inside a collective that will never complete: leave without joining it.
    os._exit(code)


def _engine_main(config: EngineConfig, state: ServerState, master_port: int | None,
                 loop: asyncio.AbstractEventLoop, finish: Callable[[int], None]) -> None:
    from reference_impl.engine.rank_setup import build_rank
    from reference_impl.engine.scheduler import Scheduler

    scheduler = None
    try:
        rank = build_rank(config, 0, master_port)
        scheduler = Scheduler(rank.runner, rank.comms, rank.spec.eos_token_id, rank.plan.resolved.chunked_prefill_size,
                              config.max_running_requests, overlap=config.overlap_schedule)
        scheduler.on_running_changed = state.metrics.set_running
        # The device's real size is known only now: report the values the ranks actually run with.
        state.info.update(plan_info(rank.plan), max_total_num_tokens=rank.runner.max_total_tokens)
        state.submit = scheduler.submit
        # Weights, graphs and the app are long-lived: freezing them keeps collections short and rare
        # in the decode loop, where a full collection is a TPOT outlier.
        gc.collect()
        gc.freeze()
        state.ready = True
        logger.info("The server is fired up and ready to roll!")
        scheduler.run_forever()
    except Exception:
        logger.error(f"Scheduler hit an exception: {traceback.format_exc()}")
        if scheduler is not None:
            scheduler.fail_all("Scheduler hit an exception; the server is shutting down")
        loop.call_soon_threadsafe(finish, 1)


def _watch_child(rank: int, child: subprocess.Popen[bytes], loop: asyncio.AbstractEventLoop,
                 finish: Callable[[int], None]) -> None:
    code = child.wait()
    logger.error(f"rank {rank} exited with code {code}; shutting the engine down")
    loop.call_soon_threadsafe(finish, 1)
