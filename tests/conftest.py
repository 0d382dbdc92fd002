"""Suite-wide: test runs lock GPUs in a private lock dir, never the machine's (harness/serve/lock.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.serve.lock import LOCK_DIR_ENV


@pytest.fixture(autouse=True, scope="session")
def private_lock_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Tests of other sessions on the same machine (and a real nightly) must not see each other as
    # "GPUs in use"; subprocesses inherit the variable.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(LOCK_DIR_ENV, str(tmp_path_factory.mktemp("harness-locks")))
        yield
