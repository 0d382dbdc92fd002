"""HarnessError: the one base of the errors the harness reports, and the entry point that catches it.

Every entry point's main(argv) -> int wears @entry_point(prefix): a HarnessError that reaches it becomes
`<prefix>: <message>` on stderr and the error's exit code (2, bad input, unless the class says otherwise).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

EXIT_BAD_INPUT = 2

P = ParamSpec("P")


class HarnessError(Exception):
    """An error the harness reports in one line: bad input, or a machine it cannot use as asked."""

    exit_code: int = EXIT_BAD_INPUT


def entry_point(prefix: str) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Decorate a main(argv) -> int so that a HarnessError becomes `prefix: message` and its exit code."""

    def decorate(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except HarnessError as exc:
                print(f"{prefix}: {exc}", file=sys.stderr)
                return exc.exit_code

        return run

    return decorate
