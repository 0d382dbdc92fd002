"""The reference engine: a live MoE server whose MoE/parallel geometry comes from the oracle."""
