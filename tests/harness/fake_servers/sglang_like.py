"""A small server that speaks sglang's /generate SSE, /health and /metrics, and misbehaves on request.

Run as a script (the harness launches it through RunConfig.launcher). It accepts the reference
engine's and sglang's command lines and ignores flags it does not know; `--fake-*` flags pick the
behaviour. Modes:
  ok               tokens every --fake-interval-ms after --fake-ttft-ms
  fragmented       ok, but with keep-alive comments, empty lines, CRLF and events split across writes
  never_healthy    /health answers 503 forever
  crash_on_start   prints a traceback and exits with code 3 before listening
  oom_at_capture   a child "scheduler" prints sglang's OOM-at-capture log and dies; the launcher hangs
  http_500         /generate answers 500
  malformed_sse    /generate streams `data: {not json`
  error_event      /generate streams sglang's `data: {"error": ...}` then [DONE]
  cut_stream       the stream is closed after --fake-cut-after tokens, without [DONE]
  die_mid_stream   the whole server exits after --fake-cut-after tokens
  stall            the stream stops after --fake-cut-after tokens and keeps the connection open
  short            [DONE] after output_len - 1 tokens
--fake-children N keeps N child processes (like sglang's scheduler/detokenizer) in the group;
--fake-ignore-sigterm makes the launcher and its children ignore SIGTERM (a wedged server);
--fake-escapees starts two workers that leave the group: one calls setsid() and drops the server's
watchdog token from its environment, one is a daemon (setsid, parent exits at once) that keeps it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from harness.serve.watchdog import SERVER_TOKEN_ENV

OOM_LOG = """\
[2026-11-23 10:12:01 TP0] Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, bs=[1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128, 136, 144, 152, 160, 168, 176, 184, 192, 200, 208, 216, 224, 232, 240, 248, 256], avail mem=0.33 GB
Capturing batches (bs=256 avail_mem=0.33 GB):   0%|          | 0/35 [00:00<?, ?it/s]\r
[2026-11-23 10:12:02 TP0] Scheduler hit an exception: Traceback (most recent call last):
  File "/site/sglang/srt/managers/scheduler.py", line 4625, in run_scheduler_process
    scheduler = Scheduler(
  File "/site/sglang/srt/managers/scheduler.py", line 412, in __init__
    self.init_model_worker()
  File "/site/sglang/srt/model_executor/model_runner.py", line 702, in initialize
    self.init_all_cuda_graphs()
  File "/site/sglang/srt/model_executor/model_runner.py", line 2210, in init_all_cuda_graphs
    init_cuda_graphs(model_runner=self)
  File "/site/sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py", line 61, in init_cuda_graphs
    capture_cuda_graphs(model_runner=model_runner)
  File "/site/sglang/srt/model_executor/model_runner_components/cuda_graph_setup.py", line 101, in capture_cuda_graphs
    eager_runner = EagerRunner(model_runner)
  File "/site/sglang/srt/model_executor/runner/eager_runner.py", line 88, in __init__
    cuda_graph_buffer_registry.register_slot(
  File "/site/sglang/srt/model_executor/cuda_graph_buffer_registry.py", line 141, in register_slot
    buf = torch.empty(shape, dtype=dtype, device=device)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 234.00 MiB. GPU 0 has a total capacity of 79.19 GiB of which 5.38 MiB is free. Including non-PyTorch memory, this process has 79.17 GiB memory in use. Of the allocated memory 78.01 GiB is allocated by PyTorch, and 12.35 MiB is reserved by PyTorch but unallocated.

[2026-11-23 10:12:02] Received sigquit from a child process. It usually means the child failed.
[2026-11-23 10:12:02] kill_process_tree called
"""

CRASH_LOG = """\
Traceback (most recent call last):
  File "/site/sglang/srt/server_args.py", line 5866, in _handle_a2a_moe
    assert resolved_view(self).enable_dp_attention and self.dp_size == self.tp_size
AssertionError: Flashinfer MoE A2A is only supported with dp_size == tp_size and --enable-dp-attention
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fake-mode", default="ok")
    parser.add_argument("--fake-ttft-ms", type=float, default=3.0)
    parser.add_argument("--fake-interval-ms", type=float, default=2.0)
    parser.add_argument("--fake-cut-after", type=int, default=3)
    parser.add_argument("--fake-startup-s", type=float, default=0.0)
    parser.add_argument("--fake-children", type=int, default=1)
    parser.add_argument("--fake-ignore-sigterm", action="store_true")
    parser.add_argument("--fake-escapees", action="store_true")
    args, _unknown = parser.parse_known_args(argv)
    return args


def spawn_children(count: int, ignore_sigterm: bool) -> list[subprocess.Popen[bytes]]:
    """Sleeping children in our process group, standing in for sglang's scheduler and detokenizer."""
    code = "import signal, time\n"
    if ignore_sigterm:
        code += "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    code += "while True: time.sleep(1)\n"
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(count)]


def spawn_escapees() -> list[subprocess.Popen[bytes]]:
    """Two workers outside the process group; prints `fake-server escapee KIND PID` for each."""
    sleeper = "import time\nwhile True: time.sleep(1)\n"
    # Only the watchdog's record of descendants can find this one: other session, no token.
    env = {k: v for k, v in os.environ.items() if k != SERVER_TOKEN_ENV}
    setsid = subprocess.Popen([sys.executable, "-c", sleeper], env=env, start_new_session=True)
    print(f"fake-server escapee setsid {setsid.pid}", flush=True)
    # Reparented before any scan can see its parent: only the token in its environment finds it.
    daemonize = ("import subprocess, sys\n"
                 f"p = subprocess.Popen([sys.executable, '-c', {sleeper!r}], start_new_session=True)\n"
                 "print(f'fake-server escapee daemon {p.pid}', flush=True)\n")
    intermediate = subprocess.Popen([sys.executable, "-c", daemonize])
    intermediate.wait()
    return [setsid]


class Metrics:
    """The three sglang histograms the harness cross-checks, observed per request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.ttft = Histogram("sglang:time_to_first_token_seconds", "ttft", labels, registry=self.registry)
        self.itl = Histogram("sglang:inter_token_latency_seconds", "itl", labels, registry=self.registry)
        self.e2e = Histogram("sglang:e2e_request_latency_seconds", "e2e", labels, registry=self.registry)


def make_handler(args: argparse.Namespace, metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # like uvicorn: each SSE event leaves at once

        def log_message(self, format: str, *fmt_args: Any) -> None:
            sys.stdout.write("fake-server: " + format % fmt_args + "\n")
            sys.stdout.flush()

        def do_GET(self) -> None:
            if self.path == "/health":
                self._plain(503 if args.fake_mode == "never_healthy" else 200, b"")
            elif self.path == "/metrics":
                self._plain(200, generate_latest(metrics.registry), "text/plain; version=0.0.4")
            elif self.path == "/get_server_info":
                self._plain(200, json.dumps({"version": "fake-0.1"}).encode(), "application/json")
            else:
                self._plain(404, b"not found")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if self.path != "/generate":
                self._plain(404, b"not found")
                return
            if args.fake_mode == "http_500":
                self._plain(500, b'{"error": {"message": "Internal Server Error", "code": 500}}',
                            "application/json")
                return
            self._stream(body)

        def _plain(self, status: int, payload: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def _stream(self, body: dict[str, Any]) -> None:
            received = time.perf_counter()
            n_out = int(body["sampling_params"]["max_new_tokens"])
            n_in = len(body.get("input_ids", []))
            mode = args.fake_mode
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            if mode == "malformed_sse":
                self._chunk(b"data: {not json\n\n")
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
                return
            if mode == "error_event":
                error = {"error": {"message": "input too long", "type": "invalid_request_error", "code": 400}}
                self._chunk(b"data: " + json.dumps(error).encode() + b"\n\n")
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")
                return
            total = n_out - 1 if mode == "short" else n_out
            sent_ns: list[int] = []
            output_ids: list[int] = []
            first_at = received + args.fake_ttft_ms / 1000
            for index in range(total):
                if mode in ("cut_stream", "die_mid_stream", "stall") and index == args.fake_cut_after:
                    self._misbehave(mode)
                    return
                _sleep_until(first_at + index * args.fake_interval_ms / 1000)
                output_ids.append(100 + index)
                meta = {"id": "fake", "prompt_tokens": n_in, "completion_tokens": len(output_ids),
                        "finish_reason": {"type": "length", "length": n_out} if index == total - 1 else None}
                event = b"data: " + json.dumps({"output_ids": output_ids, "meta_info": meta}).encode() + b"\n\n"
                sent_ns.append(time.perf_counter_ns())
                if mode == "fragmented":
                    self._chunk(b": keep-alive\r\n\r\n")
                    event = event.replace(b"\n", b"\r\n")
                    self._chunk(event[:7])
                    self._chunk(event[7:])
                else:
                    self._chunk(event)
                if index == 0:
                    metrics.ttft.labels("fake").observe(time.perf_counter() - received)
                else:
                    metrics.itl.labels("fake").observe(args.fake_interval_ms / 1000)
            # The server's own send times (taken just before each token event is written), for the
            # client-overhead benchmark; this event carries no new token.
            meta = {"id": "fake", "prompt_tokens": n_in, "completion_tokens": len(output_ids), "fake_send_ns": sent_ns}
            self._chunk(b"data: " + json.dumps({"output_ids": output_ids, "meta_info": meta}).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
            metrics.e2e.labels("fake").observe(time.perf_counter() - received)

        def _misbehave(self, mode: str) -> None:
            if mode == "die_mid_stream":
                os._exit(1)
            if mode == "stall":
                time.sleep(3600)
            self.close_connection = True
            self.connection.shutdown(2)

    return Handler


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    print(f"fake-server argv: {json.dumps(argv)}", flush=True)
    if args.fake_ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.fake_mode == "crash_on_start":
        sys.stderr.write(CRASH_LOG)
        return 3
    children = spawn_children(args.fake_children, args.fake_ignore_sigterm)
    if args.fake_escapees:
        children += spawn_escapees()
    if args.fake_mode == "oom_at_capture":
        # The scheduler child logs the OOM and dies; the launcher then hangs like sglang 0.5.16 did.
        subprocess.run([sys.executable, "-c", f"import sys; sys.stdout.write({OOM_LOG!r}); sys.exit(1)"],
                       check=False)
        while True:
            time.sleep(1)
    time.sleep(args.fake_startup_s)
    print("Capture target decode CUDA graph begin. backend=full, num_tokens_per_req=1, bs=[1, 2, 4], "
          "avail mem=54.36 GB", flush=True)
    print("Capture target decode CUDA graph end. elapsed=0.01 s, mem usage=0.04 GB, avail mem=54.32 GB.",
          flush=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args, Metrics()))
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN if args.fake_ignore_sigterm else _exit_on_term)
    print("The server is fired up and ready to roll!", flush=True)
    try:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        while True:
            time.sleep(1)
    finally:
        for child in children:
            child.terminate()


def _exit_on_term(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
