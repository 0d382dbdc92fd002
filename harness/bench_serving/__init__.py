"""sglang.bench_serving interop: its JSONL <-> harness results and a word-level tokenizer.

The side-by-side fidelity sitting (one-off evidence code) lives in bench/evidence.
"""
