"""A full KV cache makes requests wait for slots; a request that can never fit gets a clear error."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def test_requests_wait_for_slots_or_fail_clearly(start_engine: Any, micro_model: Path) -> None:
    engine = start_engine(["--model-path", str(micro_model), "--max-total-tokens", "100"])
    engine.wait_ready()
    response = engine.generate([5] * 90, 20, stream=False)
    assert response.status_code == 500
    assert "do not fit the KV cache" in response.json()["error"]["message"]
    with ThreadPoolExecutor(3) as pool:  # 3 x 60 tokens > 100 slots: they have to take turns
        outputs = list(pool.map(lambda p: engine.output_ids(p, 20), [[5] * 40, [6] * 40, [7] * 40]))
    assert [len(o) for o in outputs] == [20, 20, 20]
    assert engine.proc.poll() is None
