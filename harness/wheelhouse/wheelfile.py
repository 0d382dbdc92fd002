"""Read and write wheel files: metadata, RECORD hashes, and an integrity check of a finished wheel."""

from __future__ import annotations

import base64
import csv
import email.parser
import hashlib
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import NormalizedName, parse_wheel_filename
from packaging.version import Version

from harness.wheelhouse.errors import WheelhouseError

# A fixed timestamp makes generated wheels byte-for-byte reproducible.
FIXED_DATE = (2020, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class WheelEntry:
    """One file to place in a wheel."""

    path: str
    data: bytes
    external_attr: int = 0o644 << 16
    date_time: tuple[int, int, int, int, int, int] = FIXED_DATE
    compress_type: int = zipfile.ZIP_DEFLATED


def record_hash(data: bytes) -> str:
    """The RECORD hash field: sha256, urlsafe base64 without padding (PEP 376/427)."""
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel_identity(path: Path) -> tuple[NormalizedName, Version]:
    """Canonical name and version from a wheel's file name."""
    try:
        name, version, _build, _tags = parse_wheel_filename(path.name)
    except ValueError as exc:
        raise WheelhouseError(f"{path}: not a wheel file name ({exc})") from exc
    return name, version


def dist_info_dir(names: Iterable[str], path: Path) -> str:
    tops = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    if len(tops) != 1:
        raise WheelhouseError(f"{path}: expected one .dist-info directory, found {sorted(tops) or 'none'}")
    return tops.pop()


def read_requires_dist(path: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        info = dist_info_dir(zf.namelist(), path)
        metadata = zf.read(f"{info}/METADATA").decode("utf-8")
    message = email.parser.Parser().parsestr(metadata, headersonly=True)
    return [str(value) for value in message.get_all("Requires-Dist") or []]


def write_wheel(path: Path, entries: Iterable[WheelEntry], record_path: str) -> None:
    """Write entries then a RECORD that lists each with its sha256 and size."""
    rows: list[tuple[str, str, str]] = []
    with zipfile.ZipFile(path, "w") as zf:
        for entry in entries:
            info = zipfile.ZipInfo(entry.path, date_time=entry.date_time)
            info.external_attr = entry.external_attr
            info.compress_type = entry.compress_type
            zf.writestr(info, entry.data)
            rows.append((entry.path, record_hash(entry.data), str(len(entry.data))))
        rows.append((record_path, "", ""))
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        info = zipfile.ZipInfo(record_path, date_time=FIXED_DATE)
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, buf.getvalue())


def verify_wheel(path: Path) -> list[str]:
    """Problems with a wheel's RECORD: unlisted files, listed-but-missing files, wrong hash or size."""
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        return [f"{path.name}: not a readable zip ({exc})"]
    try:
        with zf:
            return _check_record(zf, path)
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, WheelhouseError) as exc:
        return [f"{path.name}: corrupt wheel ({exc})"]


def _check_record(zf: zipfile.ZipFile, path: Path) -> list[str]:
    problems: list[str] = []
    names = [n for n in zf.namelist() if not n.endswith("/")]
    info = dist_info_dir(names, path)
    record_path = f"{info}/RECORD"
    if record_path not in names:
        return [f"{path.name}: no {record_path}"]
    listed: dict[str, tuple[str, str]] = {}
    for row in csv.reader(io.StringIO(zf.read(record_path).decode("utf-8"))):
        if row:
            listed[row[0]] = (row[1] if len(row) > 1 else "", row[2] if len(row) > 2 else "")
    for name in names:
        if name == record_path or name.startswith(f"{info}/RECORD."):
            continue
        if name not in listed:
            problems.append(f"{path.name}: {name} is not in RECORD")
            continue
        data = zf.read(name)
        digest, size = listed[name]
        if digest != record_hash(data):
            problems.append(f"{path.name}: {name} hash does not match RECORD")
        if size != str(len(data)):
            problems.append(f"{path.name}: {name} size {len(data)} does not match RECORD ({size})")
    problems.extend(f"{path.name}: RECORD lists missing file {name}" for name in listed
                    if name not in names)
    return problems
