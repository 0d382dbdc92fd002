"""GPU suite plumbing: skip without CUDA, one evidence folder and one time budget per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gpu.support.budget import Budget
from tests.gpu.support.evidence import Evidence
from tests.gpu.support.machine import Gpu, list_gpus
from tests.gpu.support.report import render

_HERE = Path(__file__).parent
_EVIDENCE = pytest.StashKey[Evidence]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [i for i in items if i.get_closest_marker("gpu") and _HERE in Path(str(i.path)).parents]
    if gpu_items and not list_gpus():
        skip = pytest.mark.skip(reason="no CUDA GPU visible (nvidia-smi absent or lists none)")
        for item in gpu_items:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def gpus() -> tuple[Gpu, ...]:
    found = list_gpus()
    torch = pytest.importorskip("torch")
    if not found or not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")
    return found


@pytest.fixture(scope="session")
def evidence(request: pytest.FixtureRequest, gpus: tuple[Gpu, ...]) -> Evidence:
    ev = Evidence.create(gpus)
    request.config.stash[_EVIDENCE] = ev
    return ev


@pytest.fixture(scope="session")
def budget() -> Budget:
    return Budget.from_env()


def pytest_sessionfinish(session: pytest.Session) -> None:
    ev = session.config.stash.get(_EVIDENCE, None)
    if ev is not None:
        render(ev.root)
