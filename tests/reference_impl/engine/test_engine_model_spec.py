"""config.json loading: the shipped tiny models load; a broken field gets a one-line error naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reference_impl.engine.model_spec import ModelSpecError, load_model_spec

MODELS = Path(__file__).resolve().parents[3] / "harness" / "models"


def test_tiny_qwen3_moe() -> None:
    spec = load_model_spec(MODELS / "tiny-qwen3-moe")
    assert (spec.hidden_size, spec.num_experts, spec.num_experts_per_tok, spec.head_dim) == (1024, 16, 4, 128)
    assert all(spec.is_sparse_layer(i) for i in range(spec.num_hidden_layers))
    assert spec.oracle_config().num_experts == 16


def test_tiny_deepseek_v3_is_tolerated() -> None:
    spec = load_model_spec(MODELS / "tiny-deepseek-v3")
    assert (spec.num_experts, spec.num_experts_per_tok, spec.num_shared_experts) == (32, 8, 1)
    assert not spec.is_sparse_layer(0) and spec.is_sparse_layer(1)
    assert spec.head_dim == 1024 // 8


def test_bad_field_is_named(tmp_path: Path) -> None:
    raw = json.loads((MODELS / "tiny-qwen3-moe" / "config.json").read_text())
    raw["num_experts_per_tok"] = -2
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelSpecError, match="num_experts_per_tok: expected a positive integer, got -2"):
        load_model_spec(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelSpecError, match="not valid JSON"):
        load_model_spec(tmp_path)
