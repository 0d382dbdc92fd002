"""Hypothesis properties the issue names: monotonicity, the x ep_size double count, no negative sizes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reference_impl.fixes import a2a_token_cap, sp_runtime_max_tokens
from reference_impl.fixset import FIX_NAMES, FixSet
from reference_impl.inputs import GpuSpec, ModelConfig, OracleInput, Runtime, ServerArgs
from reference_impl.predict import predict
from reference_impl.workspace import (
    DISPATCH_DTYPES,
    dispatch_bytes_per_token,
    moe_a2a_workspace_size_per_rank,
)

eps = st.integers(1, 64)
tokens = st.integers(1, 1 << 17)
payload = st.integers(1, 1 << 15)
versions = st.sampled_from(["0.6.14", "0.7"])


@given(eps, eps, tokens, payload, payload, versions)
def test_workspace_monotone_in_ep_size(a: int, b: int, t: int, d: int, c: int, fi: str) -> None:
    lo, hi = sorted((a, b))
    assert moe_a2a_workspace_size_per_rank(lo, t, d, c, flashinfer=fi) <= moe_a2a_workspace_size_per_rank(
        hi, t, d, c, flashinfer=fi)


@given(eps, tokens, tokens, payload, payload, versions)
def test_workspace_monotone_in_tokens(ep: int, a: int, b: int, d: int, c: int, fi: str) -> None:
    lo, hi = sorted((a, b))
    assert moe_a2a_workspace_size_per_rank(ep, lo, d, c, flashinfer=fi) <= moe_a2a_workspace_size_per_rank(
        ep, hi, d, c, flashinfer=fi)


@given(st.one_of(st.none(), st.integers(1, 1 << 16)), eps, st.integers(1, 1 << 16))
def test_reverted_cap_is_fixed_cap_times_ep(env: int | None, ep: int, default: int) -> None:
    # PR #25907: the old code multiplied the per-rank value by ep_size (its default was 1024).
    fixed_per_rank = env if env is not None else a2a_token_cap.OLD_DEFAULT_TOKENS_PER_RANK
    assert a2a_token_cap.reverted_max_num_tokens(env, ep) == a2a_token_cap.fixed_max_num_tokens(
        fixed_per_rank, default) * ep


dp_lists = st.one_of(st.none(), st.lists(st.integers(0, 1 << 14), min_size=1, max_size=16).map(tuple))


@given(dp_lists, st.integers(0, 1 << 14), st.sampled_from(FIX_NAMES), st.booleans())
def test_runtime_max_tokens_covers_local_tokens(dp_global: tuple[int, ...] | None, local: int, fix: str,
                                                revert: bool) -> None:
    # When the list is the real per-rank (or pre-scatter) counts, it contains this rank's tokens.
    if dp_global is not None:
        dp_global = (*dp_global, local)
    fixes = FixSet.reverting([fix]) if revert else FixSet()
    assert sp_runtime_max_tokens.runtime_max_tokens_per_rank(fixes, dp_global, local) >= local


@st.composite
def oracle_inputs(draw: st.DrawFn) -> OracleInput:
    tp = draw(st.sampled_from([1, 2, 4, 8]))
    dp = draw(st.sampled_from([d for d in (1, 2, 4, 8) if tp % d == 0]))
    cp = draw(st.sampled_from([c for c in (1, 2, 4) if tp % (dp * c) == 0]))
    backend = draw(st.sampled_from(["none", "flashinfer", "deepep"]))
    args = ServerArgs(tp_size=tp, dp_size=dp, ep_size=tp if backend != "none" else 1, enable_dp_attention=dp > 1,
                      attn_cp_size=cp, moe_dp_size=draw(st.sampled_from(sorted({1, cp}))), moe_a2a_backend=backend,
                      moe_dense_tp_size=draw(st.sampled_from([None, 1])),
                      chunked_prefill_size=draw(st.sampled_from([None, -1, 2048, 8192, 16384, 32768])),
                      max_running_requests=draw(st.sampled_from([None, 4, 64, 1024])),
                      disable_attn_tp_gather=draw(st.booleans()),
                      cuda_graph_max_bs=draw(st.sampled_from([None, 8, 64, 512])))
    model = ModelConfig(hidden_size=draw(st.sampled_from([1024, 4096, 7168])), num_experts_per_tok=draw(
        st.integers(1, 22)), num_experts=256, num_hidden_layers=draw(st.integers(1, 64)), moe_intermediate_size=2048,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, vocab_size=32000)
    local = draw(st.integers(0, 4096))
    dp_global = draw(st.one_of(st.none(), st.just(tuple([local] * max(dp, 1)))))
    env = draw(st.one_of(st.just(()), st.integers(1, 1 << 16).map(
        lambda n: ((a2a_token_cap.ENV_VAR, str(n)),))))
    return OracleInput(args, model, env=env, dispatch_dtype=draw(st.sampled_from(DISPATCH_DTYPES)),
                       runtime=Runtime(dp_global, local, draw(st.integers(1, 600))),
                       gpu=GpuSpec(name=draw(st.sampled_from(["H100", "H200", "B200", None]))),
                       fixes=FixSet.reverting(draw(st.lists(st.sampled_from(FIX_NAMES), unique=True))),
                       sglang_version=draw(st.sampled_from(["0.5.16", "0.5.23"])))


@settings(max_examples=300, deadline=None)
@given(oracle_inputs())
def test_valid_config_never_yields_negative_sizes(inp: OracleInput) -> None:
    out = predict(inp).to_json()
    if not out["config_valid"]:
        assert out["errors"]
        return
    for key in ("a2a_max_num_tokens", "a2a_dispatch_payload_bytes_per_token", "a2a_combine_payload_bytes_per_token",
                "a2a_workspace_bytes_per_rank", "payload_workspace_tokens", "runtime_max_tokens_per_rank",
                "capture_num_tokens"):
        assert out[key] is None or out[key] >= 0, (key, out)
    if out["a2a_workspace_bytes_per_rank"] is not None:
        assert out["a2a_dispatch_payload_bytes_per_token"] == dispatch_bytes_per_token(
            inp.dispatch_dtype, inp.model.hidden_size, inp.model.num_experts_per_tok, inp.sglang_version)
    assert all(n >= 0 for n in out["capture_global_num_tokens"] or [])
