"""The configurations the upstream check runs: every layout of up to 8 ranks sglang accepts, per fix's inputs."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from harness.upstream.case import Case, OracleSpec
from reference_impl.inputs import ServerArgs
from reference_impl.predict import predict


def _layouts() -> Iterator[ServerArgs]:
    """TP x DP attention x attention CP x MoE-DP x A2A backend x dense TP x DP LM head x the gather flag."""
    for tp, dp, cp, backend, dense, lm_head, flag in itertools.product(
            (1, 2, 4, 8), (1, 2, 4), (1, 2), ("none", "flashinfer"), (None, 1), (False, True), (False, True)):
        dp_attention = dp > 1
        if tp % dp or tp % (dp * cp) or (lm_head and not dp_attention):
            continue
        ep = tp if backend != "none" else 1
        for moe_dp in sorted({1, cp}):
            yield ServerArgs(tp_size=tp, dp_size=dp, ep_size=ep, enable_dp_attention=dp_attention,
                             attn_cp_size=cp, moe_dp_size=moe_dp, moe_a2a_backend=backend,
                             moe_dense_tp_size=dense, enable_dp_lm_head=lm_head, disable_attn_tp_gather=flag,
                             cuda_graph_max_bs=8, max_running_requests=64)


def _a2a_inputs(args: ServerArgs) -> Iterator[tuple[ServerArgs, tuple[tuple[str, str], ...], OracleSpec]]:
    """For a FlashInfer layout: chunked prefill sizes, the per-rank env cap, and the DP / SP token geometry."""
    if args.moe_a2a_backend != "flashinfer":
        yield args, (), OracleSpec()
        return
    attn_dp = args.dp_size if args.enable_dp_attention else 1
    geometries = [OracleSpec(dp_global_num_tokens=None, local_num_tokens=3)]
    if attn_dp > 1:
        counts = tuple(range(attn_dp, 0, -1))
        geometries.append(OracleSpec(dp_global_num_tokens=counts, local_num_tokens=counts[0]))
    else:
        # Sequence parallelism: the scheduler's one-entry pre-scatter count, a smaller post-scatter x.
        geometries.append(OracleSpec(dp_global_num_tokens=(8,), local_num_tokens=2))
    for chunked, env in ((None, ()), (16384, ()), (2048, (("SGLANG_FLASHINFER_NUM_MAX_DISPATCH_TOKENS_PER_RANK",
                                                           "1536"),))):
        for geometry in geometries:
            yield ServerArgs(**{**vars(args), "chunked_prefill_size": chunked}), env, geometry


def cases(version: str, model: str = "tiny-qwen3-moe") -> list[Case]:
    """Every grid point the oracle calls valid for `version` (sglang refuses the others at start-up)."""
    out: list[Case] = []
    for args in _layouts():
        for full_args, env, spec in _a2a_inputs(args):
            case = Case(_name(full_args, env, spec), full_args, model=model, env=env, oracle=spec)
            if _valid(case, version):
                out.append(case)
    return out


def _name(args: ServerArgs, env: tuple[tuple[str, str], ...], spec: OracleSpec) -> str:
    parts = [f"tp{args.tp_size}", f"dp{args.dp_size}" + ("a" if args.enable_dp_attention else ""),
             f"cp{args.attn_cp_size}", f"moedp{args.moe_dp_size}", args.moe_a2a_backend]
    if args.moe_dense_tp_size is not None:
        parts.append(f"dense{args.moe_dense_tp_size}")
    if args.enable_dp_lm_head:
        parts.append("lmhead")
    if args.disable_attn_tp_gather:
        parts.append("no-attn-tp-gather")
    if args.chunked_prefill_size is not None:
        parts.append(f"cps{args.chunked_prefill_size}")
    parts += [f"{k.split('_')[-1].lower()}={v}" for k, v in env]
    if spec.dp_global_num_tokens is not None:
        parts.append("dpglobal" + "-".join(map(str, spec.dp_global_num_tokens)) + f"-local{spec.local_num_tokens}")
    return ",".join(parts)


def _valid(case: Case, version: str) -> bool:
    from harness.check.oracle_check import oracle_input

    return predict(oracle_input(case, version)).config_valid



def discriminating(all_cases: list[Case], fix: str, version: str, governed: tuple[str, ...]) -> list[Case]:
    """The cases where reverting `fix` changes a value it governs, as the oracle predicts it."""
    import dataclasses

    from harness.check.oracle_check import oracle_input
    from reference_impl.fixset import FixSet

    out = []
    for case in all_cases:
        fixed = oracle_input(case, version)
        before = predict(fixed).to_json()
        after = predict(dataclasses.replace(fixed, fixes=FixSet.reverting([fix]))).to_json()
        keys = {name.split(".")[0] for name in governed}
        if any(before.get(k) != after.get(k) for k in keys):
            out.append(case)
    return out
