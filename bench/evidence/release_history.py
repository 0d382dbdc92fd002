"""A git history of sglang releases, one commit per benchmarked night, rebuilt from the release wheels.

`python bench/evidence/release_history.py --wheel 0.5.16=WHEEL --wheel 0.5.17=WHEEL --nights 3 --out REPO --plan PLAN`

asv files a result under (machine, commit, environment), so three nights under one commit id would
overwrite each other; the nightly on sglang's main sees a new commit every night, most of which leave
the serving path alone. This history models that: per release one commit holding the wheel's `sglang/`
package under `python/`, then one empty commit per further night. Author, committer and dates are fixed
(the release's newest file date, plus one hour per night), so the same wheels always give the same ids.
PLAN (tab-separated: night, version, commit, commit_time) is what the GPU nights pass to `harness nightly`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path


@dataclass(frozen=True)
class Release:
    """One release wheel and the nights it is benchmarked."""

    version: str
    wheel: Path


def _parse_release(text: str) -> Release:
    version, sep, path = text.partition("=")
    if not sep or not version or not path:
        raise argparse.ArgumentTypeError(f"--wheel: expected VERSION=PATH, got {text!r}")
    wheel = Path(path)
    if not wheel.is_file():
        raise argparse.ArgumentTypeError(f"--wheel: no such file: {wheel}")
    return Release(version, wheel)


def _release_time(wheel: Path) -> datetime:
    """The newest file date inside the wheel (zip entries carry no zone: read as UTC)."""
    with zipfile.ZipFile(wheel) as archive:
        newest = max(info.date_time for info in archive.infolist())
    return datetime(*newest, tzinfo=UTC)


def _unpack_package(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.filename.startswith("sglang/") and not info.is_dir():
                archive.extract(info, dest)


def _git(repo: Path, *args: str, when: datetime | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "release-history", "GIT_AUTHOR_EMAIL": "release-history@localhost",
           "GIT_COMMITTER_NAME": "release-history", "GIT_COMMITTER_EMAIL": "release-history@localhost",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    if when is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
    done = subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def build(releases: list[Release], nights: int, out: Path) -> list[tuple[int, str, str, str]]:
    """Write the repository; returns (night, version, commit, commit_time) per night, oldest first."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _git(out, "init", "--quiet", "--initial-branch=main")
    plan: list[tuple[int, str, str, str]] = []
    night = 0
    for release in releases:
        released = _release_time(release.wheel)
        package = out / "python" / "sglang"
        if package.exists():
            shutil.rmtree(package)
        _unpack_package(release.wheel, out / "python")
        _git(out, "add", "--all")
        for k in range(nights):
            night += 1
            when = released + timedelta(hours=k)
            message = (f"sglang {release.version} ({release.wheel.name})" if k == 0
                       else f"night {night}: sglang {release.version} again, tree unchanged")
            _git(out, "commit", "--quiet", "--allow-empty", "-m", message, when=when)
            plan.append((night, release.version, _git(out, "rev-parse", "HEAD"), when.isoformat()))
        _git(out, "tag", f"v{release.version}", f"HEAD~{nights - 1}")
    return plan


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=_parse_release, action="append", required=True,
                        help="VERSION=PATH of a release wheel, oldest first")
    parser.add_argument("--nights", type=int, default=3, help="nights per release (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="the repository to (re)create")
    parser.add_argument("--plan", type=Path, required=True, help="where to write the nights' plan (TSV)")
    args = parser.parse_args(argv)
    if args.nights < 1:
        parser.error(f"--nights: expected at least 1, got {args.nights}")
    plan = build(args.wheel, args.nights, args.out)
    lines = ["night\tversion\tcommit\tcommit_time"] + ["\t".join(map(str, row)) for row in plan]
    args.plan.parent.mkdir(parents=True, exist_ok=True)
    args.plan.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
