"""A word-level tokenizer.json for the tiny config-only models: token id k <-> the word `t<k>`.

sglang.bench_serving needs a Hugging Face tokenizer (random prompts, re-counting the streamed text),
and real sglang needs one to stream `text`. The harness's models ship only config.json, so this
writes the smallest tokenizer that covers the whole vocabulary, in plain JSON (no `tokenizers`
import): WordLevel model, whitespace split, no special tokens. The reference engine's stand-in
detokenization (reference_impl.engine.detokenize) produces the same words.

    python -m harness.bench_serving.tokenizer OUT_DIR [--vocab-size N | --model DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reference_impl.engine.detokenize import word


def tokenizer_json(vocab_size: int) -> dict[str, object]:
    """The tokenizers-library JSON of a WordLevel tokenizer over `t0 .. t<vocab_size-1>`."""
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
        "model": {"type": "WordLevel", "vocab": {word(k): k for k in range(vocab_size)}, "unk_token": word(0)},
    }


def write_tokenizer(out_dir: Path, vocab_size: int) -> Path:
    """Write tokenizer.json and tokenizer_config.json (PreTrainedTokenizerFast) into out_dir."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size: expected >= 1, got {vocab_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer_json(vocab_size)), encoding="utf-8")
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 1 << 20,
              "clean_up_tokenization_spaces": False, "unk_token": word(0)}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench_serving.tokenizer", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--vocab-size", type=int)
    source.add_argument("--model", type=Path, help="model dir whose config.json gives vocab_size")
    args = parser.parse_args(argv)
    vocab = args.vocab_size
    if vocab is None:
        model = args.model or Path(__file__).resolve().parents[1] / "models" / "tiny-qwen3-moe"
        vocab = int(json.loads((model / "config.json").read_text(encoding="utf-8"))["vocab_size"])
    try:
        print(write_tokenizer(args.out_dir, vocab))
    except ValueError as exc:
        print(f"tokenizer: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
