"""sglang's native HTTP API on aiohttp: /generate (SSE), /health, /server_info, /metrics."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from reference_impl.engine.detokenize import detokenize
from reference_impl.engine.metrics import ServerMetrics
from reference_impl.engine.scheduler import ErrorEvent, Event, Request, TokenEvent


@dataclass
class ServerState:
    """What the HTTP side reads; `ready` flips once every rank has captured its graphs."""

    metrics: ServerMetrics
    info: dict[str, Any]
    vocab_size: int
    context_len: int
    submit: Callable[[Request], None] | None = None
    ready: bool = False
    # sglang streams "text" unless --skip-tokenizer-init; bench_serving counts a token only when text is non-empty.
    detokenize: bool = True


class BadRequest(ValueError):
    """A /generate body the engine cannot serve; the message names the field."""


def parse_generate(body: Any, vocab_size: int, context_len: int) -> tuple[list[int], int, bool, bool, str]:
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    ids = body.get("input_ids")
    if ids is None:
        raise BadRequest("input_ids: required (the reference engine has no tokenizer; send token ids)")
    if not isinstance(ids, list) or not ids or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
        raise BadRequest("input_ids: expected a non-empty list of integers (batched requests are not supported)")
    if any(t < 0 or t >= vocab_size for t in ids):
        raise BadRequest(f"input_ids: token ids must be in [0, {vocab_size})")
    params = body.get("sampling_params") or {}
    if not isinstance(params, dict):
        raise BadRequest("sampling_params: expected an object")
    max_new = params.get("max_new_tokens", 128)
    if not isinstance(max_new, int) or isinstance(max_new, bool) or max_new < 1:
        raise BadRequest(f"sampling_params.max_new_tokens: expected a positive integer, got {max_new!r}")
    if len(ids) + max_new > context_len:
        raise BadRequest(f"input_ids: {len(ids)} prompt + {max_new} new tokens exceed the context length {context_len}")
    temperature = params.get("temperature", 0.0)
    if not isinstance(temperature, int | float) or temperature < 0:
        raise BadRequest(f"sampling_params.temperature: expected a number >= 0, got {temperature!r}")
    rid = body.get("rid") or uuid.uuid4().hex
    return ids, max_new, bool(params.get("ignore_eos", False)), bool(body.get("stream", False)), str(rid)


def build_app(state: ServerState) -> web.Application:
    app = web.Application()

    async def health(_: web.Request) -> web.Response:
        if not state.ready:
            return web.Response(status=503, text="starting")
        return web.Response(status=200, text="")

    async def server_info(_: web.Request) -> web.Response:
        return web.json_response(state.info)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=state.metrics.render(), content_type="text/plain", charset="utf-8")

    async def model_info(_: web.Request) -> web.Response:
        return web.json_response({"model_path": state.info.get("model_path"),
                                  "tokenizer_path": state.info.get("tokenizer_path"), "is_generation": True})

    async def models(_: web.Request) -> web.Response:
        # OpenAI-style model list, as sglang serves it; bench_serving polls it before it starts.
        if not state.ready:
            return web.Response(status=503, text="starting")
        name = state.info.get("served_model_name") or state.info.get("model_path")
        return web.json_response({"object": "list", "data": [
            {"id": name, "object": "model", "owned_by": "sglang", "root": name,
             "max_model_len": state.context_len}]})

    async def generate(request: web.Request) -> web.StreamResponse:
        if not state.ready or state.submit is None:
            return web.json_response({"error": {"message": "server is not ready"}}, status=503)
        try:
            body = await request.json()
        except json.JSONDecodeError as exc:
            return web.json_response({"error": {"message": f"body: not valid JSON ({exc})"}}, status=400)
        try:
            ids, max_new, ignore_eos, stream, rid = parse_generate(body, state.vocab_size, state.context_len)
        except BadRequest as exc:
            return web.json_response({"error": {"message": str(exc)}}, status=400)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()
        state.submit(Request(rid, ids, max_new, ignore_eos, lambda e: loop.call_soon_threadsafe(events.put_nowait, e)))
        tracker = _Tracker(state.metrics, rid, len(ids), state.detokenize)
        if not stream:
            while True:
                event = await events.get()
                if isinstance(event, ErrorEvent):
                    return web.json_response({"error": {"message": event.message}}, status=500)
                out = tracker.on_token(event)
                if event.finish_reason is not None:
                    return web.json_response(out)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        while True:
            event = await events.get()
            if isinstance(event, ErrorEvent):
                payload = {"error": {"message": event.message}}
                await response.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                break
            out = tracker.on_token(event)
            await response.write(b"data: " + json.dumps(out).encode() + b"\n\n")
            if event.finish_reason is not None:
                break
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app.router.add_get("/health", health)
    app.router.add_get("/health_generate", health)
    app.router.add_get("/server_info", server_info)
    app.router.add_get("/get_server_info", server_info)
    app.router.add_get("/get_model_info", model_info)
    app.router.add_get("/model_info", model_info)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/generate", generate)
    return app


class _Tracker:
    """Per-request output in sglang's shape (cumulative output_ids and text) and its latency metrics.

    The last chunk's meta_info carries sglang 0.5.16's request timestamps (wall clock, as with
    --enable-metrics): request_received_ts, prefill_finished_time, request_finished_ts,
    response_sent_to_client_ts, and decode_throughput = (tokens - 1) / (finish - first token).
    """

    def __init__(self, metrics: ServerMetrics, rid: str, prompt_tokens: int, with_text: bool = True) -> None:
        self.metrics, self.rid, self.prompt_tokens, self.with_text = metrics, rid, prompt_tokens, with_text
        self.start = self.last = time.perf_counter()
        self.received_ts = time.time()
        self.first_token_ts: float | None = None
        self.output_ids: list[int] = []
        self.first_token_latency: float | None = None

    def on_token(self, event: TokenEvent) -> dict[str, Any]:
        now = time.perf_counter()
        if not self.output_ids:
            self.first_token_latency = now - self.start
            self.first_token_ts = time.time()
            self.metrics.first_token(self.first_token_latency, self.prompt_tokens)
        else:
            self.metrics.next_token(now - self.last)
        self.last = now
        self.output_ids.append(event.token)
        meta: dict[str, Any] = {
            "id": self.rid, "finish_reason": event.finish_reason, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": len(self.output_ids), "cached_tokens": 0,
            "first_token_latency": self.first_token_latency,
        }
        if event.finish_reason is not None:
            meta["e2e_latency"] = now - self.start
            self.metrics.finished(now - self.start)
            finished_ts = time.time()
            decode_s = finished_ts - (self.first_token_ts or finished_ts)
            meta.update(request_received_ts=self.received_ts, prefill_finished_time=self.first_token_ts,
                        request_finished_ts=finished_ts, response_sent_to_client_ts=finished_ts)
            if len(self.output_ids) > 1 and decode_s > 0:
                meta["decode_throughput"] = (len(self.output_ids) - 1) / decode_s
        out: dict[str, Any] = {"output_ids": list(self.output_ids), "meta_info": meta, "index": 0}
        if self.with_text:
            out = {"text": detokenize(self.output_ids), **out}
        return out
