"""Command-line options that `harness run`, `harness gate` and `harness nightly` share, defined once."""

from __future__ import annotations

import argparse

from harness.measure.warmup import AUTO, AutoWarmup, WarmupPolicy, parse_warmups
from harness.scenarios.catalog import TARGETS

PIN_METAVAR = "none|auto|SERVER/CLIENT"


def positive_int(text: str) -> int:
    """argparse type of a count: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def warmups(text: str) -> WarmupPolicy:
    """argparse type of --warmups: an integer >= 0 or `auto`."""
    try:
        return parse_warmups(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def warmups_text(policy: WarmupPolicy) -> str:
    """A --warmups value back as its command-line text (to hand it on to another command)."""
    return AUTO if isinstance(policy, AutoWarmup) else str(policy)


def add_target(parser: argparse.ArgumentParser, default: str = "reference") -> None:
    parser.add_argument("--target", choices=TARGETS, default=default,
                        help=f"the server to measure: the reference engine or sglang (default {default})")


def add_requests(parser: argparse.ArgumentParser, help_text: str, default: int | None = None) -> None:
    parser.add_argument("--requests", type=positive_int, default=default, metavar="N", help=help_text)


def add_warmups(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--warmups", type=warmups, default=None, metavar="N|auto", help=help_text)


def add_pin(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--pin", default="none", metavar=PIN_METAVAR, help=help_text)
