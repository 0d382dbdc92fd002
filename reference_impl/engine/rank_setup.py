"""Builds one rank: device, memory, oracle plan, process groups, model runner, captured graphs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from reference_impl.engine.comms import Comms
from reference_impl.engine.device_memory import DeviceMemory
from reference_impl.engine.engine_config import EngineConfig, engine_version
from reference_impl.engine.model_spec import ModelSpec, load_model_spec
from reference_impl.engine.plan import EnginePlan, build_plan, check_plan
from reference_impl.engine.rank_layout import RankLayout
from reference_impl.engine.records import Records
from reference_impl.engine.runner import ModelRunner

logger = logging.getLogger("reference_engine")


@dataclass
class Rank:
    config: EngineConfig
    spec: ModelSpec
    plan: EnginePlan
    layout: RankLayout
    comms: Comms
    runner: ModelRunner
    records: Records


def build_rank(config: EngineConfig, rank: int, master_port: int | None) -> Rank:
    if config.device == "cuda":
        device = torch.device("cuda", rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        # One thread per rank: BS=1 decode is no faster with two, and on a shared, busy CPU OpenMP's
        # spinning workers made a decode step 20x slower (13 ms -> 280 ms measured on the 2-core box).
        torch.set_num_threads(1)
    records = Records(rank, config.eager_dispatch_records)
    records.write("process_start", target="reference", target_version=engine_version())
    memory = DeviceMemory(device, config.device_memory_gib)
    spec = load_model_spec(config.model_path)
    plan = build_plan(config, spec, memory.total_bytes())
    check_plan(plan, spec)
    layout = RankLayout.of(plan.resolved.server_args, rank)
    comms = Comms(layout, device, master_port)
    runner = ModelRunner(config, spec, plan, layout, comms, memory, records)
    runner.capture_cuda_graphs()
    comms.barrier()
    return Rank(config, spec, plan, layout, comms, runner, records)
