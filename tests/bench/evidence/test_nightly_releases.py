"""nightly_releases.py's own logic on the CPU: the plan, which nights asv compares, and bad input."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from bench.evidence.nightly_releases import Night, Options, comparisons, main, read_plan, unpack

PLAN = ("night\tversion\tcommit\tcommit_time\n"
        "1\t0.5.16\taaa1\t2026-07-25T00:11:26+00:00\n2\t0.5.16\taaa2\t2026-07-25T01:11:26+00:00\n"
        "3\t0.5.17\tbbb1\t2026-08-08T00:19:40+00:00\n4\t0.5.17\tbbb2\t2026-08-08T01:19:40+00:00\n")


def test_plan_rows_become_nights(tmp_path: Path) -> None:
    plan = tmp_path / "plan.tsv"
    plan.write_text(PLAN)
    nights = read_plan(plan)
    assert [(n.number, n.version, n.commit) for n in nights] == [
        (1, "0.5.16", "aaa1"), (2, "0.5.16", "aaa2"), (3, "0.5.17", "bbb1"), (4, "0.5.17", "bbb2")]


def test_a_file_that_is_not_a_plan_is_named(tmp_path: Path) -> None:
    plan = tmp_path / "plan.tsv"
    plan.write_text("night\tversion\none\t0.5.16\n")
    with pytest.raises(SystemExit, match=r"plan\.tsv: not a plan \(night, version, commit, commit_time\)"):
        read_plan(plan)


def test_neighbouring_nights_and_release_boundaries_are_compared() -> None:
    nights = [Night(k, v, f"c{k}", "") for k, v in ((1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "c"))]
    pairs = [(x.number, y.number) for x, y in comparisons(nights)]
    # every night against the next; then first night of each release against the next release's first
    assert pairs == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (1, 4), (4, 6)]


def test_a_night_missing_from_the_tarballs_is_named(tmp_path: Path) -> None:
    tarball = tmp_path / "nights-1-1.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("nights/night-1/baseline/result.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    options = Options((tarball,), tmp_path / "plan.tsv", tmp_path / "repo", tmp_path / "out", "m", "d")
    nights = [Night(1, "0.5.16", "aaa1", ""), Night(2, "0.5.16", "aaa2", "")]
    with pytest.raises(SystemExit, match=r"night 2: not in the tarballs"):
        unpack(options, nights)
    # night 1 was laid out under its commit before the missing one stopped the run
    assert (tmp_path / "out" / "work" / "runs" / "aaa1" / "baseline" / "result.json").is_file()


def test_a_missing_tarball_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--device-tar", str(tmp_path / "none.tar.gz"), "--plan", "p", "--repo", "r", "--out", str(tmp_path / "o")])
    assert exited.value.code == 2
    assert f"--device-tar: no such file: {tmp_path / 'none.tar.gz'}" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
