"""sglang.bench_serving interop: its JSONL <-> harness results, a word-level tokenizer, the fidelity run."""
