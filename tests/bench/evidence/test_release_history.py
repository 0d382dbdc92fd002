"""release_history.py on two tiny fake release wheels: reproducible ids, one commit per night, tags, plan."""

from __future__ import annotations

import os
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.evidence.release_history import main

# Zip dates have a two-second resolution: even seconds only. The newest date of each wheel is its release time.
RELEASES = {
    "0.5.16": {"sglang/__init__.py": ((2026, 7, 24, 23, 0, 0), b"from sglang.version import __version__\n"),
               "sglang/version.py": ((2026, 7, 25, 0, 11, 26), b'__version__ = "0.5.16"\n'),
               "sglang/old_module.py": ((2026, 7, 1, 12, 0, 0), b"GONE_IN_0_5_17 = True\n")},
    "0.5.17": {"sglang/__init__.py": ((2026, 8, 1, 9, 30, 0), b"from sglang.version import __version__\n"),
               "sglang/version.py": ((2026, 8, 8, 0, 19, 40), b'__version__ = "0.5.17"\n')},
}
NIGHTS = 3


def _wheel(directory: Path, version: str) -> Path:
    """A wheel-shaped zip: the release's sglang/ files plus a dist-info the history must not carry."""
    path = directory / f"sglang-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, (when, data) in RELEASES[version].items():
            archive.writestr(zipfile.ZipInfo(name, date_time=when), data)
        archive.writestr(zipfile.ZipInfo(f"sglang-{version}.dist-info/METADATA", date_time=(2026, 1, 1, 0, 0, 0)),
                         f"Name: sglang\nVersion: {version}\n")
    return path


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def _run(wheels: dict[str, Path], out: Path, plan: Path) -> list[list[str]]:
    argv = [x for version, wheel in wheels.items() for x in ("--wheel", f"{version}={wheel}")]
    assert main([*argv, "--nights", str(NIGHTS), "--out", str(out), "--plan", str(plan)]) == 0
    header, *rows = (line.split("\t") for line in plan.read_text().splitlines())
    assert header == ["night", "version", "commit", "commit_time"]
    return rows


@pytest.fixture
def wheels(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "wheels").mkdir()
    return {version: _wheel(tmp_path / "wheels", version) for version in RELEASES}


def test_same_wheels_give_the_same_commit_ids(wheels: dict[str, Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two builds in two directories, the second under another zone and git identity, agree on every id."""
    first = _run(wheels, tmp_path / "a" / "repo", tmp_path / "a" / "plan.tsv")
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "someone else")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "else@example.com")
    second = _run(wheels, tmp_path / "b" / "repo", tmp_path / "b" / "plan.tsv")
    assert second == first
    assert (tmp_path / "a" / "plan.tsv").read_bytes() == (tmp_path / "b" / "plan.tsv").read_bytes()
    assert len({commit for _night, _version, commit, _time in first}) == len(RELEASES) * NIGHTS
    # Rebuilding over an existing repository starts it afresh and gives the same ids again.
    assert _run(wheels, tmp_path / "a" / "repo", tmp_path / "a" / "again.tsv") == first
    assert _git(tmp_path / "a" / "repo", "rev-list", "--count", "main") == str(len(RELEASES) * NIGHTS)


def test_one_commit_per_night_tags_and_plan_match_the_repository(wheels: dict[str, Path], tmp_path: Path) -> None:
    """6 commits: per release one holding its sglang/ and two empty ones; tags at first nights; plan == log."""
    repo = tmp_path / "repo"
    rows = _run(wheels, repo, tmp_path / "plan.tsv")
    log = _git(repo, "log", "--reverse", "--format=%H %T %aI %cI %an <%ae> %cn <%ce>", "main").splitlines()
    assert len(log) == len(rows) == 6
    trees: dict[str, str] = {}
    for (night, version, commit, commit_time), line in zip(rows, log, strict=True):
        sha, tree, author_time, committer_time, *who = line.split()
        assert (commit, commit_time) == (sha, committer_time) and author_time == committer_time
        assert " ".join(who) == "release-history <release-history@localhost> release-history <release-history@localhost>"
        k = (int(night) - 1) % NIGHTS
        released = max(when for when, _data in RELEASES[version].values())
        assert commit_time == (datetime(*released, tzinfo=UTC) + timedelta(hours=k)).isoformat()
        assert trees.setdefault(version, tree) == tree, f"night {night} changed the tree of {version}"
        if k:
            assert _git(repo, "diff-tree", "--no-commit-id", "-r", f"{commit}~1", commit) == ""
            assert _git(repo, "log", "-1", "--format=%s", commit) == (
                f"night {night}: sglang {version} again, tree unchanged")
    assert [r[:2] for r in rows] == [["1", "0.5.16"], ["2", "0.5.16"], ["3", "0.5.16"],
                                     ["4", "0.5.17"], ["5", "0.5.17"], ["6", "0.5.17"]]
    assert trees["0.5.16"] != trees["0.5.17"]
    assert _git(repo, "rev-list", "-n1", "v0.5.16") == rows[0][2]
    assert _git(repo, "rev-list", "-n1", "v0.5.17") == rows[3][2]
    assert _git(repo, "log", "-1", "--format=%s", "v0.5.17") == f"sglang 0.5.17 ({wheels['0.5.17'].name})"
    # Each release's tree is its wheel's sglang/ package under python/, nothing else (a dropped module goes).
    for version, files in RELEASES.items():
        tag = f"v{version}"
        assert _git(repo, "ls-tree", "-r", "--name-only", tag).splitlines() == sorted(f"python/{n}" for n in files)
        for name, (_when, data) in files.items():
            assert _git(repo, "show", f"{tag}:python/{name}") == data.decode().strip()
    assert _git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(("wheel", "message"), [
    ("0.5.16", "--wheel: expected VERSION=PATH, got '0.5.16'"),
    ("0.5.16=", "--wheel: expected VERSION=PATH, got '0.5.16='"),
    ("={WHEEL}", "--wheel: expected VERSION=PATH, got '={WHEEL}'"),
    ("0.5.16={MISSING}", "--wheel: no such file: {MISSING}"),
])
def test_bad_wheel_argument_exits_naming_wheel(wheel: str, message: str, wheels: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A --wheel without '=', a version or an existing file is a usage error (exit 2) naming --wheel."""
    paths = {"WHEEL": wheels["0.5.16"], "MISSING": tmp_path / "nope.whl"}
    with pytest.raises(SystemExit) as exited:
        main(["--wheel", f"0.5.17={wheels['0.5.17']}", "--wheel", wheel.format(**paths),
              "--out", str(tmp_path / "repo"), "--plan", str(tmp_path / "plan.tsv")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --wheel: {message.format(**paths)}\n" in err, err
    assert not (tmp_path / "repo").exists() and not (tmp_path / "plan.tsv").exists()


def test_fewer_than_one_night_is_an_error(wheels: dict[str, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--nights 0 would tag HEAD~-1: refused before anything is written."""
    with pytest.raises(SystemExit) as exited:
        main(["--wheel", f"0.5.16={wheels['0.5.16']}", "--nights", "0", "--out", str(tmp_path / "repo"),
              "--plan", str(tmp_path / "plan.tsv")])
    assert exited.value.code == 2
    assert "--nights: expected at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
