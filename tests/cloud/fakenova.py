"""A tiny Keystone v3 + Nova v2.1 look-alike on loopback, for the OpenStack driver's tests.

Only because no real Nova can run here. It keeps servers in a dict, answers the calls
libcloud makes (token, create, detail list, get, delete) and can be told to fail.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STAMP = "2026-01-01T00:00:00Z"


class FakeNova:
    """Start with ``with FakeNova() as nova``; ``nova.url`` is the Keystone auth URL."""

    def __init__(self) -> None:
        self.servers: dict[str, dict] = {}
        self.fail_next = 0  # the next this-many compute calls answer 503
        self.error_names: set[str] = set()  # servers with these names go to ERROR
        self.tokens_issued = 0
        self.auth_bodies: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeNova:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    def _server_json(self, server: dict) -> dict:
        return {
            **server,
            "addresses": {},
            "hostId": "fakehost",
            "tenant_id": "project",
            "user_id": "user",
            "accessIPv4": "",
            "accessIPv6": "",
            "created": STAMP,
            "updated": STAMP,
            "links": [{"rel": "self", "href": f"{self.url}/v2.1/servers/{server['id']}"}],
        }

    def _handler(self):
        nova = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict | None = None, headers=None):
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                n = int(self.headers.get("Content-Length", 0))
                return json.loads(self.rfile.read(n) or b"{}")

            def _compute_fault(self) -> bool:
                with nova._lock:
                    if nova.fail_next > 0:
                        nova.fail_next -= 1
                        self._send(503, {"computeFault": {"message": "injected", "code": 503}})
                        return True
                return False

            def do_POST(self):
                if self.path.startswith("/v3/auth/tokens"):
                    nova.auth_bodies.append(self._body())
                    nova.tokens_issued += 1
                    catalog = [
                        {
                            "type": "compute",
                            "name": "nova",
                            "endpoints": [
                                {
                                    "interface": "public",
                                    "region": "RegionOne",
                                    "region_id": "RegionOne",
                                    "url": f"{nova.url}/v2.1",
                                }
                            ],
                        }
                    ]
                    token = {
                        "expires_at": "2999-01-01T00:00:00.000000Z",
                        "issued_at": STAMP,
                        "catalog": catalog,
                        "project": {"id": "project", "name": "hepstream"},
                        "user": {"id": "user", "name": "hepstream"},
                        "roles": [],
                        "methods": ["password"],
                    }
                    self._send(201, {"token": token}, {"X-Subject-Token": uuid.uuid4().hex})
                    return
                if self.path == "/v2.1/servers":
                    if self._compute_fault():
                        return
                    req = self._body()["server"]
                    sid = str(uuid.uuid4())
                    status = "ERROR" if req["name"] in nova.error_names else "ACTIVE"
                    server = {
                        "id": sid,
                        "name": req["name"],
                        "status": status,
                        "metadata": req.get("metadata", {}),
                        "image": {"id": req.get("imageRef")},
                        "flavor": {"id": req.get("flavorRef")},
                    }
                    with nova._lock:
                        nova.servers[sid] = server
                    self._send(202, {"server": {"id": sid, "adminPass": "x"}})
                    return
                self._send(404, {"itemNotFound": {"message": self.path, "code": 404}})

            def do_GET(self):
                if self._compute_fault():
                    return
                if self.path.startswith("/v2.1/servers/detail"):
                    with nova._lock:
                        servers = [nova._server_json(s) for s in nova.servers.values()]
                    self._send(200, {"servers": servers})
                    return
                if self.path.startswith("/v2.1/servers/"):
                    sid = self.path.rsplit("/", 1)[1]
                    server = nova.servers.get(sid)
                    if server is None:
                        self._send(404, {"itemNotFound": {"message": sid, "code": 404}})
                    else:
                        self._send(200, {"server": nova._server_json(server)})
                    return
                self._send(404, {"itemNotFound": {"message": self.path, "code": 404}})

            def do_DELETE(self):
                if self._compute_fault():
                    return
                sid = self.path.rsplit("/", 1)[1]
                with nova._lock:
                    found = nova.servers.pop(sid, None)
                self._send(204 if found else 404)

        return Handler
