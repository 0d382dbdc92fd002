"""PR performance gate: compare base/head results, find change points in nightly history."""
