"""sglang's own source, run on the CPU: differential checks, revert proofs, release history, hook compatibility."""
