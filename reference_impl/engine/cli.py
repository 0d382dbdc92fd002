"""Command line: sglang's flag names -> EngineConfig; unknown flags exit 2 with argparse's error."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from reference_impl.contract.delay_switch import ENV_DELAY_FILE
from reference_impl.contract.step_timer import step_timing_enabled
from reference_impl.engine.engine_config import A2A_TOKENS_ENV, DEVICE_MEMORY_ENV, EngineConfig
from reference_impl.fixset import FIX_NAMES, FixSet
from reference_impl.inputs import ServerArgs

# sglang flags the scenarios pass that change nothing in this engine; accepted and logged.
IGNORED_VALUE_FLAGS = ("--load-format", "--attention-backend", "--sampling-backend", "--grammar-backend",
                       "--log-level")
IGNORED_BOOL_FLAGS = ("--disable-radix-cache", "--enable-metrics", "--trust-remote-code")
# Flags the oracle reads (they change predicted geometry) but this engine's compute does not.
ORACLE_ONLY_FLAGS = ("--moe-runner-backend", "--moe-dense-tp-size", "--enable-dp-lm-head")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reference_impl.engine",
                                description="Reference MoE server speaking sglang's native HTTP API.")
    p.add_argument("--model-path", required=True, help="directory holding an HF-style config.json")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--tp-size", "--tensor-parallel-size", dest="tp_size", type=_positive, default=1)
    p.add_argument("--dp-size", "--data-parallel-size", dest="dp_size", type=_positive, default=1)
    p.add_argument("--ep-size", "--expert-parallel-size", dest="ep_size", type=_positive, default=1)
    p.add_argument("--enable-dp-attention", action="store_true")
    p.add_argument("--attn-cp-size", type=_positive, default=1)
    p.add_argument("--moe-dp-size", type=_positive, default=1)
    p.add_argument("--moe-a2a-backend", default="none",
                   choices=("none", "flashinfer", "deepep", "mooncake", "ascend_fuseep", "mori", "nixl"))
    p.add_argument("--chunked-prefill-size", type=int, default=None)
    p.add_argument("--max-running-requests", type=_positive, default=None)
    p.add_argument("--cuda-graph-max-bs", type=_positive, default=None)
    p.add_argument("--mem-fraction-static", type=_fraction, default=None)
    p.add_argument("--disable-attn-tp-gather", action="store_true")
    p.add_argument("--disable-cuda-graph", action="store_true")
    p.add_argument("--disable-overlap-schedule", action="store_true",
                   help="decode one step at a time (one-rank CUDA engines otherwise keep the next step in flight)")
    p.add_argument("--enable-overlap-schedule", action="store_true",
                   help="overlapped decode on the CPU too, where nothing runs asynchronously (tests its logic)")
    p.add_argument("--max-total-tokens", type=_positive, default=None)
    p.add_argument("--context-length", type=_positive, default=None)
    p.add_argument("--random-seed", dest="seed", type=int, default=0)
    p.add_argument("--revert-fix", action="append", default=[], choices=FIX_NAMES, metavar="NAME",
                   help=f"reintroduce a fix's original bug (repeatable): {', '.join(FIX_NAMES)}")
    p.add_argument("--inject-decode-delay-us", type=_non_negative, default=0,
                   help="add this long to every decode step: a GPU sleep kernel on CUDA, a busy-wait on the "
                        "CPU (gate calibration)")
    p.add_argument("--device-memory-gib", type=_positive_float, default=None,
                   help=f"device capacity: simulated on CPU (default 16), a real allocator cap on CUDA; "
                        f"env {DEVICE_MEMORY_ENV} works too")
    p.add_argument("--skip-tokenizer-init", action="store_true",
                   help="stream output_ids only, no text (sglang's flag); otherwise text is the stand-in "
                        "detokenization 't<id>' joined by spaces")
    p.add_argument("--tokenizer-path", default=None, help="reported by /model_info (bench_serving reads it)")
    p.add_argument("--served-model-name", default=None, help="the model id /v1/models reports")
    p.add_argument("--moe-runner-backend", default="auto")
    p.add_argument("--moe-dense-tp-size", type=_positive, default=None)
    p.add_argument("--enable-dp-lm-head", action="store_true")
    for flag in IGNORED_VALUE_FLAGS:
        p.add_argument(flag, default=None, help=argparse.SUPPRESS)
    for flag in IGNORED_BOOL_FLAGS:
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    return p


def parse_config(argv: Sequence[str], environ: dict[str, str] | None = None) -> EngineConfig:
    """Parse argv (argparse exits 2 on unknown flags or bad values) and validate combinations."""
    environ = dict(os.environ) if environ is None else environ
    parser = build_parser()
    ns = parser.parse_args(list(argv))
    given = set(argv)
    ignored = tuple(f for f in IGNORED_VALUE_FLAGS + IGNORED_BOOL_FLAGS + ORACLE_ONLY_FLAGS if f in given)
    server_args = ServerArgs(
        tp_size=ns.tp_size, dp_size=ns.dp_size, ep_size=ns.ep_size,
        enable_dp_attention=ns.enable_dp_attention, attn_cp_size=ns.attn_cp_size,
        moe_dp_size=ns.moe_dp_size, moe_a2a_backend=ns.moe_a2a_backend,
        moe_runner_backend=ns.moe_runner_backend, moe_dense_tp_size=ns.moe_dense_tp_size,
        enable_dp_lm_head=ns.enable_dp_lm_head, chunked_prefill_size=ns.chunked_prefill_size,
        max_running_requests=ns.max_running_requests, disable_attn_tp_gather=ns.disable_attn_tp_gather,
        cuda_graph_max_bs=ns.cuda_graph_max_bs, mem_fraction_static=ns.mem_fraction_static,
    )
    _check_topology(parser, server_args)
    device_memory = ns.device_memory_gib
    if device_memory is None and environ.get(DEVICE_MEMORY_ENV):
        try:
            device_memory = _positive_float(environ[DEVICE_MEMORY_ENV])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"env {DEVICE_MEMORY_ENV}: {exc}")
    env = tuple((k, environ[k]) for k in (A2A_TOKENS_ENV,) if k in environ)
    if A2A_TOKENS_ENV in environ:
        try:
            _positive(environ[A2A_TOKENS_ENV])
        except argparse.ArgumentTypeError as exc:
            parser.error(f"env {A2A_TOKENS_ENV}: {exc}")
    return EngineConfig(
        model_path=ns.model_path, server_args=server_args, fixes=FixSet.reverting(ns.revert_fix),
        host=ns.host, port=ns.port, device=ns.device, disable_cuda_graph=ns.disable_cuda_graph,
        overlap_schedule=not ns.disable_overlap_schedule and (ns.device == "cuda" or ns.enable_overlap_schedule),
        inject_decode_delay_us=ns.inject_decode_delay_us, inject_delay_file=environ.get(ENV_DELAY_FILE) or None,
        step_timing=step_timing_enabled(environ), device_memory_gib=device_memory,
        max_total_tokens=ns.max_total_tokens, context_length=ns.context_length, seed=ns.seed,
        env=env, ignored_flags=ignored, skip_tokenizer_init=ns.skip_tokenizer_init,
        tokenizer_path=ns.tokenizer_path, served_model_name=ns.served_model_name,
    )


def _check_topology(parser: argparse.ArgumentParser, a: ServerArgs) -> None:
    """Combinations the engine cannot lay out; sglang rejects most of these too."""
    if a.tp_size % a.dp_size:
        parser.error(f"--dp-size {a.dp_size} must divide --tp-size {a.tp_size}")
    if a.ep_size not in (1, a.tp_size):
        parser.error(f"--ep-size {a.ep_size}: the reference engine supports ep_size 1 or tp_size ({a.tp_size})")
    attn_group = a.tp_size // (a.dp_size if a.enable_dp_attention else 1)
    if attn_group % a.attn_cp_size:
        parser.error(f"--attn-cp-size {a.attn_cp_size} must divide the attention group size {attn_group}")
    if a.tp_size % a.moe_dp_size:
        parser.error(f"--moe-dp-size {a.moe_dp_size} must divide --tp-size {a.tp_size}")
    if a.dp_size > 1 and not a.enable_dp_attention:
        parser.error("--dp-size > 1 needs --enable-dp-attention in the reference engine (one process per tp rank)")


def _checked(cast: Callable[[str], float], label: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type: `cast` the text and refuse values `ok` rejects, naming what was expected."""

    def parse(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {label}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {label}, got {text!r}")
        return value

    return parse


_positive = _checked(int, "a positive integer", lambda v: v > 0)
_non_negative = _checked(int, "a non-negative integer", lambda v: v >= 0)
_positive_float = _checked(float, "a positive number", lambda v: v > 0)


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="[%(asctime)s %(name)s] %(message)s", force=True)
    config = parse_config(sys.argv[1:] if argv is None else argv)
    from reference_impl.engine.launch import launch  # torch is imported only after the flags parse

    return launch(config, sys.argv[1:] if argv is None else list(argv))
