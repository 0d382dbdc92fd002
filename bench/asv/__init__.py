"""asv suite tracking sglang across commits; it only reads what `harness run` produced."""
