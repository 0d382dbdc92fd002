"""`python -m reference_impl predict INPUT.json|-`: print the oracle's prediction as one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from reference_impl.parse import OracleInputError, oracle_input_from_json
from reference_impl.predict import predict

EXIT_INVALID_INPUT = 2


def _read(path: str, stdin: TextIO) -> object:
    if path == "-":
        return json.load(stdin)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv: list[str] | None = None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reference_impl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    predict_cmd = commands.add_parser("predict", help="predict sglang's behaviour for one input")
    predict_cmd.add_argument("input", help="input JSON file, or - for stdin")
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    try:
        obj = _read(args.input, stdin)
    except OSError as exc:
        print(f"{args.input}: cannot read input ({exc.strerror or exc})", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except json.JSONDecodeError as exc:
        print(f"{args.input}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        inp = oracle_input_from_json(obj)
    except OracleInputError as exc:
        print(f"{args.input}: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    json.dump(predict(inp).to_json(), stdout)
    stdout.write("\n")
    return 0
