"""One module per sglang fix; each exposes the fixed rule, the reverted rule and a FixSet selector."""
