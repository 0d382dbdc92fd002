"""The one exception the gate raises for bad input; the CLI turns it into exit code 2."""

from __future__ import annotations

from harness.errors import HarnessError


class GateInputError(HarnessError):
    """Missing, empty, corrupt or mismatched results or config: an infrastructure failure."""
