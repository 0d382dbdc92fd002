"""load_records: records round-trip; every bad line is reported with file and line, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.instrument.reader import load_records
from reference_impl.contract.records import FIELDS, KINDS, RecordWriter


def _line(kind: str = "hook_installed", **fields: object) -> str:
    record = {"schema": 1, "kind": kind, "pid": 7, "rank": 0, "t": 1.5, "target": "dispatch", **fields}
    return json.dumps(record)


def test_writer_records_round_trip(tmp_path: Path) -> None:
    writer = RecordWriter(tmp_path, rank=3)
    writer.write("dispatch", phase="capture", runtime_max_tokens_per_rank=4, local_num_tokens=4,
                 dp_global_num_tokens=[4, 4])
    writer.write("hook_missing", target="mlp_scatter_mode", reason="no module")
    writer.close()
    loaded = load_records(tmp_path)
    assert loaded.errors == ()
    assert [r.kind for r in loaded.records] == ["dispatch", "hook_missing"]
    dispatch = loaded.of_kind("dispatch")[0]
    assert dispatch.rank == 3
    assert dispatch["dp_global_num_tokens"] == [4, 4]
    assert dispatch.source.endswith(":1")
    out = loaded.to_json()
    assert out["records"][0]["runtime_max_tokens_per_rank"] == 4
    assert out["errors"] == []


def test_malformed_line_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "records-1.jsonl"
    path.write_text(_line() + "\n{not json\n" + _line() + "\n")
    loaded = load_records(tmp_path)
    assert len(loaded.records) == 2
    assert len(loaded.errors) == 1
    assert loaded.errors[0].startswith(f"{path}:2: malformed JSON")


def test_truncated_last_line_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "records-2.jsonl"
    full = _line()
    path.write_text(full + "\n" + full[: len(full) // 2])
    loaded = load_records(tmp_path)
    assert len(loaded.records) == 1
    assert loaded.errors == (loaded.errors[0],)
    assert loaded.errors[0].startswith(f"{path}:2: truncated record (no newline at end of file)")


def test_unterminated_but_complete_last_line_is_kept_and_flagged(tmp_path: Path) -> None:
    path = tmp_path / "records-3.jsonl"
    path.write_text(_line())
    loaded = load_records(tmp_path)
    assert len(loaded.records) == 1
    assert loaded.errors == (f"{path}:1: truncated record (no newline at end of file); kept",)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('["a list"]', "record is not a JSON object"),
        (json.dumps({"schema": 1, "kind": "dispatch"}), "record lacks field(s) pid, rank, t"),
        (_line().replace('"schema": 1', '"schema": 2'), "schema: expected 1, got 2"),
        (_line(kind="nonsense"), "kind: unknown record kind 'nonsense'"),
        (_line(kind="dispatch"), "dispatch record lacks field(s) phase"),
        (_line().replace('"pid": 7', '"pid": "7"'), "pid: expected an integer"),
        ("", "empty line"),
    ],
)
def test_invalid_records_name_the_problem(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "records-4.jsonl"
    path.write_text(_line() + "\n" + line + "\n")
    loaded = load_records(tmp_path)
    assert len(loaded.records) == 1
    assert len(loaded.errors) == 1
    assert loaded.errors[0].startswith(f"{path}:2: {problem}"), loaded.errors


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    loaded = load_records(tmp_path / "absent")
    assert loaded.records == ()
    assert loaded.errors == (f"{tmp_path / 'absent'}: records directory does not exist",)


def test_files_are_read_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "records-20.jsonl").write_text(_line(target="b") + "\n")
    (tmp_path / "records-10.jsonl").write_text(_line(target="a") + "\n")
    assert [r["target"] for r in load_records(tmp_path).records] == ["a", "b"]


def test_every_kind_declares_its_fields() -> None:
    assert set(FIELDS) == set(KINDS)
