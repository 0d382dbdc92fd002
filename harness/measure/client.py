"""BS=1 streaming client for sglang's /generate: one request at a time, every SSE event timestamped.

Definitions (the only place they are computed):
  TTFT = first event carrying a token - send;  TPOT = (last token event - first token event) /
  (completion_tokens - 1);  ITL = gaps between consecutive token events;  e2e = [DONE] - send.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3.exceptions

_READ_SIZE = 65536

# Error kinds a request can end with (None when it succeeded).
ERROR_KINDS = ("http_status", "connection", "timeout", "stream_cut", "malformed_sse", "server_error",
               "token_count")


def prompt_ids(length: int, vocab_size: int, seed: int) -> list[int]:
    """Deterministic token ids, different per request so no prefix is shared between requests."""
    span = max(vocab_size - 100, 1)
    return [100 + (seed * 7919 + k * 104729 + 17) % span for k in range(length)]


class SseDecoder:
    """Incremental SSE parser: feed bytes as they arrive, get complete `data` payloads back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events = []
        while (newline := self._buffer.find(b"\n")) >= 0:
            line = self._buffer[:newline].rstrip(b"\r")
            self._buffer = self._buffer[newline + 1:]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # Comments (": keep-alive") and other SSE fields (event:, id:, retry:) carry no tokens.
        return events

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event are buffered."""
        return bool(self._buffer.strip() or self._data)


@dataclass(frozen=True)
class RequestSample:
    """One request's timings (ms, relative to send) or the reason it failed."""

    index: int
    input_len: int
    max_new_tokens: int
    ok: bool
    error_kind: str | None = None
    error: str | None = None
    http_status: int | None = None
    completion_tokens: int | None = None
    events: int = 0
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    itl_ms: tuple[float, ...] = ()
    token_times_ms: tuple[float, ...] = ()
    meta_info: dict[str, Any] | None = field(default=None)
    # perf_counter_ns() at send: token_times_ms are relative to it (kept in memory, not in results).
    send_ns: int = 0
    # The request id sent with it: the server's decode_step records name it (harness/measure/step_times.py).
    rid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "rid": self.rid,
            "input_len": self.input_len,
            "max_new_tokens": self.max_new_tokens,
            "ok": self.ok,
            "error_kind": self.error_kind,
            "error": self.error,
            "http_status": self.http_status,
            "completion_tokens": self.completion_tokens,
            "events": self.events,
            "ttft_ms": self.ttft_ms,
            "tpot_ms": self.tpot_ms,
            "e2e_ms": self.e2e_ms,
            "itl_ms": list(self.itl_ms),
            "token_times_ms": list(self.token_times_ms),
            "meta_info": self.meta_info,
        }


class _RequestFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass
class _Stream:
    """Mutable accumulation for one response; frozen into a RequestSample at the end."""

    send_ns: int
    token_ns: list[int] = field(default_factory=list)
    tokens: int = 0
    events: int = 0
    done_ns: int | None = None
    meta_info: dict[str, Any] | None = None

    def on_event(self, payload: bytes, arrived_ns: int) -> None:
        self.events += 1
        if payload.strip() == b"[DONE]":
            self.done_ns = arrived_ns
            return
        try:
            message = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _RequestFailed("malformed_sse", f"event {self.events} is not JSON: {exc}") from None
        if not isinstance(message, dict):
            raise _RequestFailed("malformed_sse", f"event {self.events} is not a JSON object")
        if "error" in message:
            error = message["error"]
            text = error.get("message", error) if isinstance(error, dict) else error
            raise _RequestFailed("server_error", f"server sent an error event: {text}")
        meta = message.get("meta_info")
        count = meta.get("completion_tokens") if isinstance(meta, dict) else None
        if count is None:
            ids = message.get("output_ids")
            count = len(ids) if isinstance(ids, list) else None
        if not isinstance(count, int):
            raise _RequestFailed("malformed_sse", f"event {self.events} has no completion_tokens or output_ids")
        if count > self.tokens:
            self.token_ns.append(arrived_ns)
            self.tokens = count
        self.meta_info = meta if isinstance(meta, dict) else None


class StreamingClient:
    """Sends one streaming /generate request at a time over a kept-alive connection."""

    def __init__(self, base_url: str, token_timeout_s: float, connect_timeout_s: float = 5.0) -> None:
        self.url = f"{base_url}/generate"
        self.timeout = (connect_timeout_s, token_timeout_s)
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> StreamingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def generate(self, index: int, input_ids: list[int], max_new_tokens: int) -> RequestSample:
        """Run one request to completion; failures come back as a sample with ok=False, never raised."""
        rid = uuid.uuid4().hex  # sglang's own rid format; decode_step records name the request by it
        body = {
            "input_ids": input_ids,
            "sampling_params": {"max_new_tokens": max_new_tokens, "temperature": 0, "ignore_eos": True},
            "stream": True,
            "rid": rid,
        }
        base = {"index": index, "rid": rid, "input_len": len(input_ids), "max_new_tokens": max_new_tokens}
        stream = _Stream(send_ns=time.perf_counter_ns())
        status = None
        try:
            with self.session.post(self.url, json=body, stream=True, timeout=self.timeout) as response:
                status = response.status_code
                if status != 200:
                    raise _RequestFailed("http_status", f"HTTP {status}: {response.text[:200].strip()}")
                self._read(response, stream)
        except _RequestFailed as failure:
            return self._failed(base, stream, status, failure.kind, str(failure))
        except (requests.Timeout, urllib3.exceptions.ReadTimeoutError, TimeoutError) as exc:
            return self._failed(base, stream, status, "timeout",
                                f"no data for {self.timeout[1]:g} s after {stream.tokens} token(s): {exc}")
        except (requests.ConnectionError, urllib3.exceptions.ProtocolError, ConnectionError) as exc:
            kind = "stream_cut" if status == 200 else "connection"
            return self._failed(base, stream, status, kind, f"{type(exc).__name__}: {exc}")
        return self._sample(base, stream, status)

    def _read(self, response: requests.Response, stream: _Stream) -> None:
        decoder = SseDecoder()
        raw = response.raw
        while True:
            chunk = raw.read1(_READ_SIZE)
            arrived_ns = time.perf_counter_ns()
            if not chunk:
                break
            if stream.done_ns is not None:
                continue  # drain the chunked terminator so the kept-alive connection can be reused
            for payload in decoder.feed(chunk):
                stream.on_event(payload, arrived_ns)
                if stream.done_ns is not None:
                    break
        if stream.done_ns is not None:
            return
        detail = " mid-event" if decoder.pending else ""
        raise _RequestFailed("stream_cut", f"stream ended{detail} before [DONE] after {stream.tokens} token(s)")

    @staticmethod
    def _failed(base: dict[str, Any], stream: _Stream, status: int | None, kind: str, message: str) -> RequestSample:
        return RequestSample(**base, ok=False, error_kind=kind, error=message, http_status=status,
                             completion_tokens=stream.tokens, events=stream.events, meta_info=stream.meta_info)

    def _sample(self, base: dict[str, Any], stream: _Stream, status: int | None) -> RequestSample:
        assert stream.done_ns is not None
        if stream.tokens != base["max_new_tokens"]:
            return self._failed(base, stream, status, "token_count",
                                f"got {stream.tokens} completion tokens, asked for {base['max_new_tokens']}")
        ms = [(t - stream.send_ns) / 1e6 for t in stream.token_ns]
        tpot = (ms[-1] - ms[0]) / (stream.tokens - 1) if stream.tokens > 1 else None
        return RequestSample(
            **base,
            ok=True,
            http_status=status,
            completion_tokens=stream.tokens,
            events=stream.events,
            ttft_ms=ms[0] if ms else None,
            tpot_ms=tpot,
            e2e_ms=(stream.done_ns - stream.send_ns) / 1e6,
            itl_ms=tuple(b - a for a, b in itertools.pairwise(ms)),
            token_times_ms=tuple(ms),
            meta_info=stream.meta_info,
            send_ns=stream.send_ns,
        )
