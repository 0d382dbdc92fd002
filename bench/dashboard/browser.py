"""Headless Chromium driven over the DevTools protocol: load a page, collect console errors, screenshot.

Chromium comes from the system (Debian's `chromium`, or Google Chrome on GitHub's runners); when none
is installed and the test runs as root with apt-get (CI's fresh machine), `ensure_chromium` installs
Debian's package once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEVTOOLS_LINE = re.compile(r"DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)")


class BrowserUnavailable(RuntimeError):
    """No Chromium and no way to install one here."""


def ensure_chromium() -> str:
    """Path of a Chromium-family browser, installing Debian's chromium via apt-get when root."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrowserUnavailable("no chromium/google-chrome on PATH and cannot apt-get install chromium "
                                 "(needs root and apt-get): install it, e.g. `apt-get install chromium`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([apt, "update", "-qq"], check=True, env=env, timeout=600, capture_output=True)
    subprocess.run([apt, "install", "-y", "-qq", "--no-install-recommends", "chromium"], check=True, env=env,
                   timeout=900, capture_output=True)
    found = shutil.which("chromium")
    if found is None:
        raise BrowserUnavailable("apt-get install chromium finished but no `chromium` is on PATH")
    return found


@dataclass
class PageVisit:
    """What one page load produced: console/JS/network errors, the ready check's value, a PNG."""

    errors: list[str] = field(default_factory=list)
    ready: Any = None
    screenshot: bytes = b""


class Chromium:
    """One headless Chromium process group with a private profile; a context manager."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> Chromium:
        argv = [self.executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                f"--user-data-dir={self._profile.name}", "--window-size=1280,900", "about:blank"]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + 60
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                raise BrowserUnavailable(f"{self.executable} exited with {self._proc.returncode} at startup")
            match = DEVTOOLS_LINE.search(line)
            if match:
                self.port = int(match.group(2))
                return self
        raise BrowserUnavailable(f"{self.executable} printed no DevTools endpoint within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=10)
        if self._proc is not None and self._proc.stderr is not None:
            self._proc.stderr.close()
        self._profile.cleanup()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def visit(self, url: str, ready_js: str, mirror: dict[str, Path] | None = None,
              unpinned: frozenset[str] = frozenset(), timeout_s: float = 30.0) -> PageVisit:
        """Load url, wait until ready_js is truthy (or time out), then screenshot; errors are collected.

        `mirror` maps absolute URLs to local files served in their place (offline CDN); every other
        request goes to the network as usual. `unpinned` URLs lose their `integrity` attribute in the
        page's HTML as it arrives (for mirrored files whose bytes differ from the CDN's minified ones).
        """
        return asyncio.run(self._visit(url, ready_js, mirror or {}, unpinned, timeout_s))

    async def _visit(self, url: str, ready_js: str, mirror: dict[str, Path], unpinned: frozenset[str],
                     timeout_s: float) -> PageVisit:
        visit = PageVisit()
        async with aiohttp.ClientSession() as http:
            async with http.put(f"http://127.0.0.1:{self.port}/json/new?about:blank") as response:
                target = await response.json(content_type=None)
            async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                session = _CdpSession(ws, visit, mirror, unpinned)
                for domain in ("Page.enable", "Runtime.enable", "Log.enable", "Network.enable"):
                    await session.call(domain)
                if mirror:
                    patterns = [{"urlPattern": "https://*"}]
                    if unpinned:
                        patterns.append({"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"})
                    await session.call("Fetch.enable", patterns=patterns)
                await session.call("Page.navigate", url=url)
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    reply = await session.call("Runtime.evaluate", expression=ready_js, returnByValue=True)
                    visit.ready = reply.get("result", {}).get("value")
                    if visit.ready:
                        break
                    await asyncio.sleep(0.25)
                await asyncio.sleep(0.5)  # let late XHRs and their errors arrive before the screenshot
                shot = await session.call("Page.captureScreenshot", format="png")
                visit.screenshot = base64.b64decode(shot["data"])
        return visit


class _CdpSession:
    """Request/response over one page's websocket; events are turned into error strings on the way."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, visit: PageVisit, mirror: dict[str, Path],
                 unpinned: frozenset[str]) -> None:
        self.ws = ws
        self.visit = visit
        self.mirror = mirror
        self.unpinned = unpinned
        self.next_id = 0
        self.replies: dict[int, dict[str, Any]] = {}

    async def send(self, method: str, **params: Any) -> int:
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        return self.next_id

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        waiting = await self.send(method, **params)
        # Events are handled while waiting, and a handler may itself call(): replies are kept by id.
        while waiting not in self.replies:
            message = json.loads((await self.ws.receive(timeout=60)).data)
            if "id" in message:
                self.replies[message["id"]] = message
            else:
                await self._event(message)
        message = self.replies.pop(waiting)
        if "error" in message:
            raise RuntimeError(f"{method}: {message['error']}")
        return message.get("result", {})

    async def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Fetch.requestPaused" and "responseStatusCode" in params:
            await self._unpin_document(params)
        elif method == "Fetch.requestPaused":
            local = self.mirror.get(params["request"]["url"])
            if local is None:
                await self.send("Fetch.continueRequest", requestId=params["requestId"])
            else:
                kind = "text/css" if local.suffix == ".css" else "application/javascript"
                await self.send("Fetch.fulfillRequest", requestId=params["requestId"], responseCode=200,
                                responseHeaders=[{"name": "Content-Type", "value": kind},
                                                 {"name": "Access-Control-Allow-Origin", "value": "*"}],
                                body=base64.b64encode(local.read_bytes()).decode())
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.visit.errors.append(f"exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.visit.errors.append(f"console.{params['type']}: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.visit.errors.append(f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.visit.errors.append(f"network: {params.get('errorText')} ({params.get('type')})")
        elif method == "Network.responseReceived" and params["response"].get("status", 200) >= 400:
            self.visit.errors.append(f"http {params['response']['status']}: {params['response'].get('url')}")


    async def _unpin_document(self, params: dict[str, Any]) -> None:
        reply = await self.call("Fetch.getResponseBody", requestId=params["requestId"])
        body = base64.b64decode(reply["body"]) if reply.get("base64Encoded") else reply["body"].encode()
        text = body.decode("utf-8", errors="replace")
        for url in self.unpinned:
            text = re.sub(rf'(src|href)="{re.escape(url)}" integrity="[^"]*"', rf'\1="{url}"', text)
        await self.send("Fetch.fulfillRequest", requestId=params["requestId"],
                        responseCode=params["responseStatusCode"], responseHeaders=params.get("responseHeaders", []),
                        body=base64.b64encode(text.encode()).decode())


def serve_directory(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m http.server` on a free loopback port in its own process group; (process, base URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                             "--directory", str(directory)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, base
        except OSError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"http.server on port {port} did not come up")
