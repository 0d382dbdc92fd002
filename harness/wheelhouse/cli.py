"""`harness wheelhouse build|verify`: argument parsing only; the work lives in build and verify."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import entry_point
from harness.wheelhouse.build import build
from harness.wheelhouse.config import MIB, WheelhouseConfig
from harness.wheelhouse.profile import profile_for
from harness.wheelhouse.verify import verify_wheelhouse

IMAGES = Path(__file__).parent / "images"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness wheelhouse",
                                     description="Offline wheels for real sglang on an air-gapped GPU box.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="resolve, download, slim, batch and script the wheels")
    b.add_argument("--sglang", required=True, help="sglang version, e.g. 0.5.16")
    b.add_argument("--python", default="3.12", help="target Python MAJOR.MINOR (default 3.12)")
    b.add_argument("--image", required=True,
                   help="`pip list --format=freeze` file of the target, or a name under harness/wheelhouse/images")
    b.add_argument("--arch", required=True, help="GPU arch: sm90 (Hopper) or sm100 (Blackwell)")
    b.add_argument("--out", type=Path, default=Path(".wheelhouse"), help="output dir (default .wheelhouse)")
    b.add_argument("--batch-mib", type=float, default=60.0, help="largest batch in MiB (default 60)")
    b.add_argument("--download-dir", type=Path, help="wheel cache (default OUT/downloads)")
    b.add_argument("--extra", action="append", default=[],
                   help="another requirement to carry, e.g. matplotlib for the harness's own plots")
    b.add_argument("--find-links", action="append", default=[], help="extra local wheel dir for pip")
    b.add_argument("--no-index", action="store_true", help="use only --find-links, not PyPI")
    b.add_argument("--over", type=Path,
                   help="a built wheelhouse this one installs over: carry only the wheels it lacks (install into "
                        "its own site, put first on PYTHONPATH)")
    v = sub.add_parser("verify", help="check checksums, RECORDs and batch sizes of a built wheelhouse")
    v.add_argument("out", type=Path, nargs="?", default=Path(".wheelhouse"))
    return parser


def _image_path(value: str) -> Path:
    path = Path(value)
    if path.exists() or "/" in value:
        return path
    bundled = IMAGES / f"{value.removesuffix('.txt')}.txt"
    return bundled if bundled.exists() else path


@entry_point("harness wheelhouse")
def main(argv: list[str]) -> int:
    """Run one wheelhouse command; bad input prints one line to stderr and returns 2."""
    args = _parser().parse_args(argv)
    if args.command == "verify":
        problems = verify_wheelhouse(args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"{args.out}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        return 0 if not problems else 1
    config = WheelhouseConfig(sglang_version=args.sglang, python_version=args.python,
                              image=_image_path(args.image), arch=args.arch, out=args.out,
                              batch_limit_bytes=int(args.batch_mib * MIB), download_dir=args.download_dir,
                              extra_requirements=tuple(args.extra),
                              find_links=tuple(args.find_links), no_index=args.no_index, over=args.over)
    manifest = build(config, profile_for(config.sglang_version))
    for batch in manifest["batches"]:
        print(f"{args.out / batch['name']}: {batch['wheels']} wheels, {batch['bytes'] / MIB:.1f} MiB")
    for note in manifest["notes"]:
        print(f"note: {note}")
    return 0
