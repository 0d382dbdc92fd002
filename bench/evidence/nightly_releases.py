"""The nightly's record side over GPU nights of sglang releases: per-fix check, asv run/compare/publish, history.

`./dev python -m bench.evidence.nightly_releases --device-tar T.tar.gz... --plan PLAN --repo REPO --out DIR`

The tarballs are what scripts/gpu/nightly-sitting.sh brought back (nights/night-K: one `harness nightly`
RUN_DIR each); PLAN and REPO come from bench/evidence/release_history.py. Per night, in plan order, as the
workflow's record job does: `harness sglang-check --source` on REPO's python/ at the night's commit, then
`asv run -E existing --set-commit-hash COMMIT` in record mode over the night's RUN_DIR. Then `asv compare`
between neighbouring nights, `asv publish`, the dashboard in headless Chromium, `harness history`, and per
release one `harness gate` over its nights (each night one server-start pair: the release over the control).
Everything derived goes under DIR (asv/, history/, releases/, nights/<K>/ with each night's small text files);
the full RUN_DIRs are rebuilt from the tarballs in DIR/work (git-ignored).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from asv.util import load_json

from bench.dashboard.browser import Chromium, ensure_chromium, serve_directory
from bench.dashboard.cdn_mirror import integrity_mismatches, mirror

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "baseline"
# Kept readable next to the tarballs: the gate's report and verdict, the night's control.json.
SMALL_FILES = ("control/baseline/gate.md", "control/baseline/verdict.json", "control/baseline/control.json")
GRAPHS = ("track_tpot_ratio_to_control", "track_decode_gpu_ratio_to_control", "track_ttft_ratio_to_control",
          "track_tpot_ms", "track_decode_gpu_ms")


@dataclass(frozen=True)
class Night:
    """One row of the plan: the night's number, the sglang release it ran, its commit in the history."""

    number: int
    version: str
    commit: str
    commit_time: str


@dataclass(frozen=True)
class Options:
    """Where the nights come from and where the record goes."""

    tarballs: tuple[Path, ...]
    plan: Path
    repo: Path
    out: Path
    machine: str
    device: str


def read_plan(path: Path) -> list[Night]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    try:
        return [Night(int(r["night"]), r["version"], r["commit"], r["commit_time"]) for r in rows]
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"{path}: not a plan (night, version, commit, commit_time): {exc}") from exc


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def unpack(options: Options, nights: list[Night]) -> dict[int, Path]:
    """RUN_DIR per night, rebuilt under OUT/work/runs/<commit> from the device's tarballs."""
    work = options.out / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "device").mkdir(parents=True)
    for tarball in options.tarballs:
        with tarfile.open(tarball) as tar:
            tar.extractall(work / "device", filter="data")
    runs = {}
    for night in nights:
        source = work / "device" / "nights" / f"night-{night.number}"
        if not source.is_dir():
            raise SystemExit(f"night {night.number}: not in the tarballs ({', '.join(map(str, options.tarballs))})")
        runs[night.number] = work / "runs" / night.commit
        shutil.copytree(source, runs[night.number])
    return runs


def check_fixes(options: Options, night: Night, run_dir: Path) -> None:
    """`harness sglang-check --source` on the release history's tree at the night's commit (the fixes job)."""
    tree = options.out / "work" / "trees" / night.commit
    if not tree.exists():
        _run(["git", "-C", str(options.repo.resolve()), "worktree", "add", "--detach", "--force", str(tree.resolve()),
              night.commit], ROOT)
    _run([sys.executable, "-m", "harness", "sglang-check", "--source", str(tree / "python"),
          "--out", str(run_dir / "sglang-check")], ROOT)


def write_asv_config(options: Options) -> Path:
    """The project's asv.conf.json, pointed at the release history, with results beside it (paths relative)."""
    asv_dir = options.out / "asv"
    asv_dir.mkdir(parents=True, exist_ok=True)
    here = asv_dir.resolve()
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=os.path.relpath(options.repo.resolve(), here),
                benchmark_dir=os.path.relpath(ROOT / "bench" / "asv", here),
                env_dir=os.path.relpath(options.out.resolve() / "work" / "asv-env", here),
                results_dir="results", html_dir=os.path.relpath(options.out.resolve() / "work" / "html", here))
    conf.pop("show_commit_url", None)  # the history's commits are not sglang's: links to GitHub would be dead
    path = asv_dir / "asv.conf.json"
    path.write_text(json.dumps(conf, indent=2) + "\n", encoding="utf-8")
    return path


def asv(conf: Path, *args: str, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    return _run([sys.executable, "-m", "asv", "--config", str(conf.resolve()), *args], ROOT, env=env, log=log)


def record(options: Options, nights: list[Night], runs: dict[int, Path]) -> Path:
    conf = write_asv_config(options)
    shutil.rmtree(conf.parent / "results", ignore_errors=True)
    asv(conf, "machine", "--yes", "--machine", options.machine, "--cpu", options.device, "--os", "lent GPU box",
        "--arch", "x86_64", "--num_cpu", "16", "--ram", "128GB")
    logs = conf.parent / "logs"
    logs.mkdir(exist_ok=True)
    for night in nights:
        env = {**os.environ, "HARNESS_ASV_RUN_DIR": str(runs[night.number].resolve()),
               "HARNESS_ASV_SCENARIOS": SCENARIO}
        asv(conf, "run", "-E", "existing", "--set-commit-hash", night.commit, "--machine", options.machine,
            "--show-stderr", env=env, log=logs / f"run-night-{night.number}.txt")
    return conf


def comparisons(nights: list[Night]) -> list[tuple[Night, Night]]:
    """Each night against the next, then each release's first night against the next release's."""
    pairs = list(pairwise(nights))
    first_of: dict[str, Night] = {}
    for night in nights:
        first_of.setdefault(night.version, night)
    return pairs + [pair for pair in pairwise(first_of.values()) if pair not in pairs]


def compare(conf: Path, options: Options, nights: list[Night]) -> list[Path]:
    """`asv compare` (factor 1.1, asv's default) for every pair of `comparisons`; one file each."""
    out = conf.parent / "compare"
    out.mkdir(exist_ok=True)
    written = []
    for a, b in comparisons(nights):
        text = asv(conf, "compare", "--machine", options.machine, a.commit, b.commit)
        path = out / f"night-{a.number}-vs-{b.number}.txt"
        path.write_text(f"# asv compare {a.commit} {b.commit}  (night {a.number}: sglang {a.version} -> "
                        f"night {b.number}: sglang {b.version})\n{text}", encoding="utf-8")
        written.append(path)
    return written


def publish_and_look(conf: Path, options: Options) -> list[Path]:
    """`asv publish`, then each tracked series' graph page in headless Chromium; fails on any page error."""
    asv(conf, "publish")
    html = options.out / "work" / "html"
    files = mirror(ROOT / ".cache" / "asv-cdn")
    unpinned = integrity_mismatches(files, (html / "index.html").read_text(encoding="utf-8"))
    server, base = serve_directory(html)
    shots = []
    try:
        with Chromium(ensure_chromium()) as browser:
            for graph in GRAPHS:
                visit = browser.visit(f"{base}/#benchmarks.Scenario.{graph}", PLOT_READY_JS, files, unpinned)
                if visit.errors:
                    raise SystemExit(f"dashboard page {graph}: {visit.errors}")
                if not visit.ready:
                    raise SystemExit(f"dashboard page {graph}: no plotted graph")
                path = conf.parent / f"dashboard-{graph}.png"
                path.write_bytes(visit.screenshot)
                shots.append(path)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
    return shots


PLOT_READY_JS = """(() => {
  const canvas = document.querySelector('#main-graph canvas.flot-base');
  return canvas && document.querySelectorAll('#main-graph .legendLabel').length > 0;
})()"""


def compare_releases(options: Options, nights: list[Night], runs: dict[int, Path]) -> list[Path]:
    """Per release, its nights as server-start pairs of one gate: the release over the control, with intervals."""
    reports = []
    for version in dict.fromkeys(night.version for night in nights):
        rounds = options.out / "work" / "releases" / version
        shutil.rmtree(rounds, ignore_errors=True)
        for night in (n for n in nights if n.version == version):
            for side in ("base", "head"):
                (rounds / side).mkdir(parents=True, exist_ok=True)
                os.symlink((runs[night.number] / "control" / SCENARIO / "runs" / side / "round-00").resolve(),
                           rounds / side / f"night-{night.number}")
        report = options.out / "releases" / f"{version}-over-control"
        proc = subprocess.run([sys.executable, "-m", "harness", "gate", "--target", "sglang", "--base",
                               str(rounds / "base"), "--head", str(rounds / "head"), "--out", str(report)],
                              cwd=ROOT, capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1, 3):  # a verdict either way is data; 2 and others are failures
            raise SystemExit(f"harness gate over the {version} nights exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        reports.append(report / "gate.md")
    return reports


def history(options: Options) -> None:
    _run([sys.executable, "-m", "harness", "history", str(options.out / "work" / "runs"), "--out",
          str(options.out / "history")], ROOT)


def keep_small_files(options: Options, nights: list[Night], runs: dict[int, Path]) -> None:
    for night in nights:
        dest = options.out / "nights" / f"night-{night.number}"
        shutil.rmtree(dest, ignore_errors=True)
        for name in SMALL_FILES:
            target = dest / Path(name).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(runs[night.number] / name, target)
        shutil.copytree(runs[night.number] / "sglang-check", dest / "sglang-check")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device-tar", type=Path, action="append", required=True,
                        help="a nights-FIRST-LAST.tar.gz from scripts/gpu/nightly-sitting.sh (repeat)")
    parser.add_argument("--plan", type=Path, required=True, help="the nights' plan (release_history.py --plan)")
    parser.add_argument("--repo", type=Path, required=True, help="the release history (release_history.py --out)")
    parser.add_argument("--out", type=Path, required=True, help="the evidence directory")
    parser.add_argument("--machine", default="h100-lent", help="asv machine name (default h100-lent)")
    parser.add_argument("--device", default="NVIDIA H100 80GB HBM3", help="the GPU the nights ran on")
    args = parser.parse_args(argv)
    for tarball in args.device_tar:
        if not tarball.is_file():
            parser.error(f"--device-tar: no such file: {tarball}")
    options = Options(tuple(args.device_tar), args.plan, args.repo, args.out, args.machine, args.device)
    nights = read_plan(options.plan)
    runs = unpack(options, nights)
    for night in nights:
        check_fixes(options, night, runs[night.number])
    conf = record(options, nights, runs)
    for path in compare(conf, options, nights):
        print(path.read_text(encoding="utf-8"))
    keep_small_files(options, nights, runs)
    for report in compare_releases(options, nights, runs):
        print(f"release comparison: {report}")
    history(options)
    for path in publish_and_look(conf, options):
        print(f"screenshot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
