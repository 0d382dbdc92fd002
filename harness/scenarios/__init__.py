"""Scenarios: the catalog of harness/scenarios/*.toml, what each needs from the machine, the listing."""
