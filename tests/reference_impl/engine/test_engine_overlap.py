"""Overlapped decode (next step in flight before this one's tokens are read) decodes what the plain loop does."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from tests.reference_impl.engine.conftest import MICRO_CONFIG

PROMPT = [5, 6, 7, 8, 9, 10]
OTHER = [11, 12, 13]


def _generate(engine: Any, prompt: list[int], new_tokens: int, ignore_eos: bool = True) -> tuple[list[int], Any]:
    body = {"input_ids": prompt, "stream": True,
            "sampling_params": {"max_new_tokens": new_tokens, "ignore_eos": ignore_eos, "temperature": 0}}
    with requests.post(engine.url + "/generate", json=body, stream=True, timeout=120) as response:
        assert response.status_code == 200, response.text
        last = [line for line in response.iter_lines() if line.startswith(b"data: {")][-1]
    out = json.loads(last[len(b"data: "):])
    return out["output_ids"], out["meta_info"]["finish_reason"]


def test_overlapped_decode_matches_the_plain_loop(start_engine: Any, micro_model: Path, tmp_path: Path) -> None:
    plain = start_engine(["--model-path", str(micro_model), "--disable-overlap-schedule"])
    plain.wait_ready()
    expected, _ = _generate(plain, PROMPT, 24)
    other_expected, _ = _generate(plain, OTHER, 12)
    plain.stop()
    # An EOS the greedy continuation reaches at its 6th token makes the overlapped loop drop a token
    # it already had in flight for that request.
    eos_at = next(i for i in range(3, len(expected)) if expected[i] not in expected[:i])
    model = tmp_path / "micro-eos"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({**MICRO_CONFIG, "eos_token_id": expected[eos_at]}))

    overlapped = start_engine(["--model-path", str(model), "--enable-overlap-schedule"])
    overlapped.wait_ready()
    assert _generate(overlapped, PROMPT, 24) == (expected, {"type": "length", "length": 24})
    assert _generate(overlapped, OTHER, 12)[0] == other_expected
    ids, reason = _generate(overlapped, PROMPT, 24, ignore_eos=False)
    assert ids == expected[: eos_at + 1] and reason == {"type": "stop", "matched": expected[eos_at]}
    with ThreadPoolExecutor(4) as pool:  # batched decode, one request leaving by EOS mid-flight
        jobs = [pool.submit(_generate, overlapped, PROMPT, 24, False)]
        jobs += [pool.submit(_generate, overlapped, OTHER, 12) for _ in range(3)]
        results = [job.result() for job in jobs]
    stopped, stop_reason = results[0]
    assert stopped[-1] == expected[eos_at] and expected[eos_at] not in stopped[:-1]
    assert stop_reason["type"] == "stop"
    assert all(len(ids) == 12 and reason["type"] == "length" for ids, reason in results[1:])
    # Every slot came back: a full-length request still fits after the batch.
    assert _generate(overlapped, PROMPT, 24)[0] == expected
