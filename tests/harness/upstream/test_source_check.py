"""`harness sglang-check --source DIR`: a tree on disk gets the release's verdicts; bad trees are named; asv tracks them.

The source tree is sglang 0.5.16's unpacked wheel (the cache `harness sglang-check 0.5.16` itself uses),
so the two commands must agree verdict for verdict and count for count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from asv.util import load_json

from harness.upstream import cli
from harness.upstream.local import locate
from harness.upstream.report import VERDICTS_FILE
from harness.upstream.sources import Sources
from reference_impl.fixset import FIX_NAMES, MOE_DP1_ATTN_CP
from tests.harness.upstream.conftest import tree_of

ROOT = Path(__file__).resolve().parents[3]
RELEASE = "0.5.16"
# Every third configuration: prime to the six FlashInfer inputs per layout, so SP and DP geometries
# are both sampled (0.5.16: 163 configurations, every fix compared on at least 120).
EVERY = "3"
MACHINE = "ci-cpu"


@dataclass(frozen=True)
class Checked:
    """The three command runs the tests share: the tree, the release, and the tree with fix 5 reverted."""

    tree: Path
    source: Path  # --out of `sglang-check --source TREE`
    release: Path  # --out of `sglang-check 0.5.16`
    reverted: Path  # --out of `sglang-compat --source TREE+revert(moe-dp1-attn-cp)`


def harness(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def checked(sources: Sources, tmp_path_factory: pytest.TempPathFactory) -> Checked:
    tree = tree_of(sources, RELEASE)
    reverted = sources.reverted(RELEASE, MOE_DP1_ATTN_CP)
    out = tmp_path_factory.mktemp("source-check")
    # The three runs are independent processes: started together, they share the two cores.
    procs = [harness("sglang-check", "--source", str(tree), "--every", EVERY, "--out", str(out / "source")),
             harness("sglang-check", RELEASE, "--no-reverts", "--every", EVERY, "--out", str(out / "release")),
             harness("sglang-compat", "--source", str(reverted), "--every", EVERY, "--out",
                     str(out / "nightly" / "sglang-check"))]
    for proc in procs:
        finish(proc)
    return Checked(tree, out / "source", out / "release" / RELEASE, out / "nightly" / "sglang-check")


def read(folder: Path, name: str = VERDICTS_FILE) -> dict:
    return json.loads((folder / name).read_text(encoding="utf-8"))


def test_source_tree_gets_the_release_verdicts(checked: Checked) -> None:
    source, release = read(checked.source), read(checked.release)
    assert source["fixes"] == release["fixes"]
    assert {fix: v["verdict"] for fix, v in source["fixes"].items()} == {fix: "present" for fix in FIX_NAMES}
    assert all(v["compared"] >= 120 and v["mismatched"] == 0 for v in source["fixes"].values())
    assert source["sglang"] == release["sglang"] == RELEASE and source["error"] is None
    assert release["source"] is None
    # The wheel tree sits in this repository's ignored .cache/: it is not this repository's commit.
    assert source["source"] == {"path": str(checked.tree), "root": str(checked.tree.resolve()), "version": RELEASE,
                                "version_from": str(checked.tree.resolve() / "sglang" / "_version.py"),
                                "rules_version": RELEASE, "commit": None, "dirty": None}
    reports = read(checked.source, "report.json"), read(checked.release, "report.json")
    assert reports[0]["hook_targets"] == reports[1]["hook_targets"]
    assert reports[0]["differential"] == reports[1]["differential"]
    assert (checked.source / "report.md").read_text().startswith(f"## sglang {RELEASE} (source {checked.tree.resolve()})")


def test_reverted_source_tree_is_flagged_for_exactly_that_fix(checked: Checked) -> None:
    verdicts = read(checked.reverted)["fixes"]
    assert {fix: v["verdict"] for fix, v in verdicts.items()} == {
        fix: "absent" if fix == MOE_DP1_ATTN_CP else "present" for fix in FIX_NAMES}


def test_asv_tracks_one_series_per_fix_from_the_nightly_verdicts(checked: Checked, tmp_path: Path) -> None:
    """A real `asv run` in the nightly's record mode reads RUN_DIR/sglang-check/fixes.json: 1 present, 0 absent."""
    repo = tmp_path / "sglang"
    (repo / "python").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "one commit"], check=True)
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()
    conf = load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    conf.update(repo=str(repo), benchmark_dir=str(ROOT / "bench" / "asv"), env_dir=str(tmp_path / "env"),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    (tmp_path / "asv.conf.json").write_text(json.dumps(conf))
    env = {**os.environ, "HOME": str(tmp_path), "HARNESS_ASV_RUN_DIR": str(checked.reverted.parent),
           "HARNESS_ASV_HARNESS": "false"}  # record mode: running the harness would fail the benchmarks
    for args in (["machine", "--yes", "--machine", MACHINE],
                 ["run", "-E", "existing", "--set-commit-hash", commit, "--machine", MACHINE,
                  "--launch-method", "forkserver", "--bench", "Fix"]):
        proc = subprocess.run([sys.executable, "-m", "asv", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (stored,) = (tmp_path / "results" / MACHINE).glob(f"{commit[:8]}-existing-*.json")
    stored_json = json.loads(stored.read_text())
    params = stored_json["result_columns"].index("params")
    series = stored_json["results"]["benchmarks.Fix.track_present"]
    assert series[params] == [[repr(fix) for fix in FIX_NAMES]]
    assert series[0] == [0 if fix == MOE_DP1_ATTN_CP else 1 for fix in FIX_NAMES]


def _link_farm(tree: Path, dest: Path, edited: str, text: str) -> Path:
    """A copy of the tree that links every file but `edited`, which gets `text` appended."""
    for path in tree.rglob("*.py"):
        rel = path.relative_to(tree)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if str(rel) == edited:
            (dest / rel).write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")
        else:
            os.symlink(path, dest / rel)
    return dest


@pytest.mark.parametrize(("edited", "named"), [
    # A file a hook lives in: parsed before anything runs.
    ("sglang/srt/layers/dp_attention.py",
     "cannot parse module sglang.srt.layers.dp_attention: invalid syntax (line {line}); hook target(s) "
     "set_dp_buffer_len (_DpGatheredBufferWrapper.set_dp_buffer_len) live there"),
    # A file only the capture driver links: named when the linker reaches it.
    ("sglang/srt/speculative/spec_info.py",
     "cannot parse module sglang.srt.speculative.spec_info: invalid syntax (line {line}); the capture driver "
     "links it for hook target(s) cuda_graph_capture, set_dp_buffer_len"),
])
def test_tree_with_a_syntax_error_names_file_and_target(sources: Sources, tmp_path: Path, edited: str,
                                                        named: str, capsys: pytest.CaptureFixture[str]) -> None:
    tree = tree_of(sources, RELEASE)
    line = len((tree / edited).read_text(encoding="utf-8").splitlines()) + 1
    bad = _link_farm(tree, tmp_path / "tree", edited, "def broken(:\n")
    code = cli.main(["--source", str(bad), "--every", "1000", "--out", str(tmp_path / "out")])
    assert code == 2
    message = f"{bad / edited}: " + named.format(line=line)
    assert capsys.readouterr().err == f"harness sglang-check: {message}\n"
    verdicts = read(tmp_path / "out")
    assert verdicts["error"] == f"UnreadableSource: {message}"
    assert {v["verdict"] for v in verdicts["fixes"].values()} == {"not_drivable"}


def test_bad_source_arguments_exit_2_naming_the_path(sources: Sources, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tree = tree_of(sources, RELEASE)
    (tmp_path / "empty").mkdir()
    no_version = _link_farm(tree, tmp_path / "no-version", "sglang/version.py", "")
    (no_version / "sglang" / "_version.py").unlink()
    cases = [
        (["--source", str(tmp_path / "missing")], f"--source {tmp_path / 'missing'}: no such directory"),
        (["--source", str(tmp_path / "empty")],
         f"--source {tmp_path / 'empty'}: no sglang package here ({tmp_path / 'empty' / 'sglang' / '__init__.py'} "
         "does not exist)"),
        (["--source", str(no_version)],
         f"--source: cannot read sglang's version: {no_version / 'sglang' / '_version.py'}: missing; "
         f"{no_version / 'sglang' / 'version.py'}: __version__ is not a string literal"),
        (["0.5.16", "--source", str(tree)], "--source: give either release versions (0.5.16) or --source, not both"),
    ]
    for argv, message in cases:
        try:
            code = cli.compat_main(argv)  # a HarnessError: the entry point prints it and returns 2
        except SystemExit as exited:  # argparse's own usage errors
            code = exited.code
        assert code == 2
        assert message in capsys.readouterr().err


def test_git_checkout_is_labelled_with_its_commit_and_release_tag(sources: Sources, tmp_path: Path) -> None:
    """A checkout's python/ without a build has no _version.py: the nearest release tag gives the rules."""
    checkout = tmp_path / "sglang"
    package = checkout / "python" / "sglang"
    shutil.copytree(tree_of(sources, RELEASE) / "sglang" / "srt" / "utils", package / "srt" / "utils")
    (package / "__init__.py").write_text("")
    (package / "version.py").write_text("from sglang._version import __version__\n")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "release")
    git("tag", "v0.5.23")
    git("commit", "-q", "--allow-empty", "-m", "after the release")
    head = git("rev-parse", "HEAD")
    for given in (checkout / "python", package):  # the folder holding the package, or the package itself
        found = locate(given)
        assert (found.root, found.version, found.version_from, found.commit, found.dirty) == (
            checkout / "python", "0.5.23", "git tag v0.5.23", head, False)
    (package / "__init__.py").write_text("# edited\n")
    assert locate(package).dirty is True
    # A build writes _version.py (setuptools-scm's guess of the next version): its base release is the rules'.
    (package / "_version.py").write_text("__version__ = version = '0.5.24.dev3+g1234567'\n")
    found = locate(package)
    assert (found.version, found.rules_version) == ("0.5.24.dev3+g1234567", "0.5.24")
