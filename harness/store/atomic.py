"""The one atomic file writer: a temp file beside the target, fsynced, renamed over it, the directory fsynced.

Results, the manifest, gate reports and the wheelhouse manifest all go through it, so a crash or a
full disk leaves either the old file or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.store.testhook import hold


class ResultWriteError(HarnessError, OSError):
    """A result or manifest could not be written (disk full, file size limit, ...); the earlier file is intact."""

    exit_code = 74  # EX_IOERR: the disk, not the input


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to a temp file in the same directory, fsync it, rename over `path`, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    # os.open with 0o666 lets the umask decide the mode, as for any file the user writes (mkstemp: 0600).
    try:
        fd = os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        hold(f"write:{path.name}")
        os.replace(tmp_name, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise _write_error(path, exc) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON through atomic_write_text; NaN/inf and unknown types raise before anything is written."""
    # Serialised first, so a value JSON cannot hold never leaves even a temp file behind.
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=_jsonable) + "\n"
    atomic_write_text(path, text)


def _write_error(path: Path, exc: OSError) -> ResultWriteError:
    why = {errno.ENOSPC: "disk full (ENOSPC)", errno.EDQUOT: "disk quota exceeded (EDQUOT)",
           errno.EFBIG: "file size limit exceeded (EFBIG)"}.get(exc.errno or 0, exc.strerror or str(exc))
    kept = "the earlier file is kept unchanged" if path.exists() else "nothing was written"
    error = ResultWriteError(f"{path}: cannot write: {why}; {kept}")
    error.errno = exc.errno
    return error


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot store {type(value).__name__} in a result")


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; some filesystems refuse this, which is harmless.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
