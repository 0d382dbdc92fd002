"""Benchmark and regression harness for sglang's MoE and parallel serving path."""
