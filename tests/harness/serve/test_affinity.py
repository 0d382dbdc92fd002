"""CPU pinning: core lists, the exec launcher that pins a whole server tree, the client's pinned block."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.run import config_from_args
from harness.serve.affinity import (
    AffinityError,
    Pinning,
    format_cpus,
    parse_cpus,
    parse_pinning,
    pinned,
    usable_cpus,
)

USABLE = frozenset(range(16))


@given(st.frozensets(st.integers(0, 15), min_size=1))
def test_format_and_parse_round_trip(cpus: frozenset[int]) -> None:
    assert parse_cpus(format_cpus(cpus), "--pin", USABLE) == cpus


def test_core_lists_and_settings() -> None:
    assert format_cpus(frozenset({0, 1, 2, 6, 8, 9})) == "0-2,6,8-9"
    assert parse_pinning("none", usable=USABLE) == Pinning()
    assert parse_pinning("2-5/1", usable=USABLE) == Pinning(frozenset({2, 3, 4, 5}), frozenset({1}))
    assert parse_pinning("/3", usable=USABLE) == Pinning(None, frozenset({3}))
    assert parse_pinning("auto", usable=USABLE) == Pinning(frozenset(range(15)), frozenset({15}))
    assert parse_pinning("auto", usable=frozenset({0, 1})) == Pinning()  # too few cores to split


@pytest.mark.parametrize(("spec", "message"), [
    ("2-5", "expected none, auto or SERVER/CLIENT"),
    ("a/1", "'a' is not a core number"),
    ("5-2/1", "bad range '5-2'"),
    ("0-3/3", "share cores 3"),
    ("99/1", "cores 99 are not available here"),
])
def test_bad_settings_name_the_option(spec: str, message: str) -> None:
    with pytest.raises(AffinityError, match="--pin") as err:
        parse_pinning(spec, usable=USABLE)
    assert message in str(err.value)


PROBE = ("import json, os, threading; out = {}; "
         "t = threading.Thread(target=lambda: out.update(thread=sorted(os.sched_getaffinity(0)))); t.start(); t.join(); "
         "print(json.dumps({'pid': os.getpid(), 'main': sorted(os.sched_getaffinity(0)), **out}))")


def test_the_launcher_pins_the_process_and_its_threads_and_keeps_its_pid() -> None:
    core = max(usable_cpus())
    argv = Pinning(server=frozenset({core})).wrap([sys.executable, "-c", PROBE], sys.executable)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=60)
    seen = json.loads(out)
    assert seen["main"] == [core] and seen["thread"] == [core]
    assert seen["pid"] == proc.pid  # exec, not a child: the harness's process group and kill logic still hold


def test_the_launcher_rejects_bad_cores_before_running_anything() -> None:
    done = subprocess.run([sys.executable, "-m", "harness.serve.affinity", "9999", "--", "true"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "CPUS: cores 9999 are not available here" in done.stderr


def test_the_client_block_is_pinned_and_restored() -> None:
    before = os.sched_getaffinity(0)
    core = min(before)
    with pinned(frozenset({core})):
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == before
    with pinned(None):
        assert os.sched_getaffinity(0) == before


def test_harness_run_takes_and_checks_pin(tmp_path, capsys) -> None:
    config, _ = config_from_args(["--out", str(tmp_path / "a"), "--pin", f"/{min(usable_cpus())}"])
    assert config.pinning == Pinning(None, frozenset({min(usable_cpus())}))
    with pytest.raises(SystemExit) as exit_info:
        config_from_args(["--out", str(tmp_path / "b"), "--pin", "9999/"])
    assert exit_info.value.code == 2
    assert "--pin (server cores): cores 9999 are not available here" in capsys.readouterr().err


def test_co_resident_servers_share_the_server_cores_without_overlap() -> None:
    pinning = parse_pinning("auto", usable=USABLE)  # 16 cores: servers 0-14, client 15
    base, head = pinning.share(0, 2), pinning.share(1, 2)
    assert base == Pinning(frozenset(range(7)), frozenset({15}))
    assert head == Pinning(frozenset(range(7, 15)), frozenset({15}))
    assert Pinning().share(1, 2) == Pinning()  # nothing pinned: nothing to share
    with pytest.raises(AffinityError, match="1 server cores cannot be shared by 2 servers"):
        parse_pinning("2/1", usable=USABLE).share(0, 2)
