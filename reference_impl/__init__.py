"""Executable oracle of the five sglang MoE/parallel fixes the harness guards."""
