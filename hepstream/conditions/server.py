"""Read-only HTTP service for conditions (Starlette under uvicorn), cache-friendly.

``GET /gt/NAME`` is the global tag document (tags, IOVs, payload list); ``GET
/payload/SHA256`` is a payload's bytes. Payloads and LOCKED global tags never change:
they are sent with a long ``max-age`` and ``immutable``, so a site's squid keeps them and
the central server sees each URL about once per site. OPEN tags get a short ``max-age``
and ``must-revalidate``; the ETag lets a proxy revalidate with a 304 instead of a body.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hepstream.conditions.model import LOCKED, Payload
from hepstream.conditions.store import Store
from hepstream.errors import ConfigError, InputError, Interrupted
from hepstream.procs import Service

IMMUTABLE = "public, max-age=31536000, immutable"
OPEN_MAX_AGE = 10
REVALIDATE = f"public, max-age={OPEN_MAX_AGE}, must-revalidate"


class _AccessLog:
    """Pure ASGI middleware: one ``METHOD PATH STATUS`` line per request to a file."""

    def __init__(self, app: ASGIApp, path: str | None) -> None:
        self.app = app
        self.handle = open(path, "a", buffering=1) if path else None  # noqa: SIM115
        self.lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.handle is None:
            await self.app(scope, receive, send)
            return
        status = {"code": 0}

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            with self.lock:
                self.handle.write(f"{scope['method']} {scope['path']} {status['code']}\n")


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return etag in [tag.strip() for tag in given.split(",")] or given.strip() == "*"


def make_app(store: Store, access_log: str | None = None) -> ASGIApp:
    """The Starlette application serving ``store`` read-only."""
    locked: dict[str, tuple[bytes, str]] = {}  # LOCKED documents never change: kept

    def document(name: str) -> tuple[bytes, str, bool]:
        if name in locked:
            return (*locked[name], True)
        gt = store.global_tag(name)
        body = gt.to_json().encode()
        etag = f'"{hashlib.sha256(body).hexdigest()}"'
        if gt.status == LOCKED:
            locked[name] = (body, etag)
        return body, etag, gt.status == LOCKED

    def index(request: Request) -> Response:  # noqa: ARG001 (Starlette passes the request)
        names = [{"name": n, "status": s} for n, s in store.names()]
        return JSONResponse({"global_tags": names}, headers={"Cache-Control": REVALIDATE})

    def global_tag(request: Request) -> Response:
        try:
            body, etag, is_locked = document(request.path_params["name"])
        except InputError as err:
            return JSONResponse({"error": str(err)}, 404, headers={"Cache-Control": "no-store"})
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE if is_locked else REVALIDATE}
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def payload(request: Request) -> Response:
        sha = request.path_params["sha"]
        etag = f'"{sha}"'
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        try:
            path = store.payload_file(Payload(sha, "json", 0))
        except (InputError, ConfigError):
            return JSONResponse(
                {"error": f"no payload {sha}"}, 404, headers={"Cache-Control": "no-store"}
            )
        if _not_modified(request, etag):
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type="application/octet-stream", headers=headers)

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/gt/{name}", global_tag),
            Route("/payload/{sha}", payload),
        ]
    )
    return _AccessLog(app, access_log)


def serve(
    store: Store, host: str = "127.0.0.1", port: int = 0, access_log: str | None = None
) -> None:
    """Serve until interrupted; prints ``serving http://HOST:PORT`` once listening."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        make_app(store, access_log), log_level="warning", access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    url_host = f"[{host}]" if ":" in host else host
    print(f"serving http://{url_host}:{bound}", flush=True)
    try:
        server.run(sockets=[sock])
    except Interrupted:
        # uvicorn shuts down on SIGINT/SIGTERM, then raises the signal again for whoever
        # handled it before: for a server, that signal is how it is asked to stop
        return


class ConditionsServer(Service):
    """``hepstream conditions serve`` as a child process (tests, demo); stopped on exit."""

    def __init__(
        self,
        db: str | Path,
        payloads: str | Path | None = None,
        access_log: str | Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.db, self.payloads, self.access_log, self.timeout = db, payloads, access_log, timeout
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ConditionsServer:
        argv = [sys.executable, "-m", "hepstream", "conditions", "serve", "--db", str(self.db)]
        argv += ["--port", "0"]
        if self.payloads:
            argv += ["--payloads", str(self.payloads)]
        if self.access_log:
            argv += ["--access-log", str(self.access_log)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
        line = _readline(self.process, self.timeout)
        if not line.startswith("serving "):
            self.stop()
            raise InputError(f"conditions server did not start: {line.strip() or 'no output'}")
        self.url = line.split()[1]
        _wait_http(self.url, self.timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: the server dies as it would in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None


def _readline(process: subprocess.Popen[str], timeout: float) -> str:
    result: list[str] = []
    stdout = process.stdout
    assert stdout is not None  # started with stdout=PIPE
    reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


def _wait_http(url: str, timeout: float) -> None:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with direct.open(url + "/", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise InputError(f"conditions server at {url} does not answer") from None
            time.sleep(0.05)
