"""Small HTTP servers on 127.0.0.1 for the InfluxDB-only parts of the sink (status codes,
bucket admin, delete), which VictoriaMetrics does not implement: a recorder that answers
each request through a function and keeps what it received, and, on top of it, the few
InfluxDB 2 org and bucket endpoints `hookflash influx ensure-buckets` uses.

Plain Python (no pytest), like services.py.
"""

from __future__ import annotations

import gzip
import itertools
import json
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes  # decompressed when it came gzip'ed
    gzipped: bool

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def lines(self) -> list[str]:
        return self.body.decode().splitlines()


def no_content(_request: Request) -> Reply:
    return 204, {}, b""


def influx_error(status: int, message: str, headers: dict[str, str] | None = None) -> Reply:
    """An error as InfluxDB 2 answers it: JSON with `code` and `message`."""
    body = json.dumps({"code": "invalid" if status < 500 else "internal error", "message": message})
    return status, {"Content-Type": "application/json", **(headers or {})}, body.encode()


def queued(*replies: Reply) -> Callable[[Request], Reply]:
    """Answers writes with the given replies in turn, then 204; anything else 204."""
    pending = list(replies)

    def respond(request: Request) -> Reply:
        if request.path == "/api/v2/write" and pending:
            return pending.pop(0)
        return no_content(request)

    return respond


class Recorder(ThreadingHTTPServer):
    """Answers every request with `respond(request)`; keeps every request in `requests`."""

    daemon_threads = True

    def __init__(
        self,
        respond: Callable[[Request], Reply] = no_content,
        early: Callable[[str, str], Reply | None] | None = None,
    ) -> None:
        """`early(method, path)`: a reply to send before reading the body (then the
        connection is closed), as a server does that refuses a request on its headers."""
        self.respond = respond
        self.early = early
        self.early_answers = 0
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def _handle(self) -> None:
                early = recorder.early(self.command, self.path) if recorder.early else None
                if early is not None:  # answer without reading the body, and hang up
                    status, headers, payload = early
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(payload)
                    self.close_connection = True
                    with recorder._lock:
                        recorder.early_answers += 1
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                gzipped = self.headers.get("Content-Encoding") == "gzip"
                if gzipped:
                    body = gzip.decompress(body)
                url = urllib.parse.urlsplit(self.path)
                request = Request(
                    self.command,
                    url.path,
                    urllib.parse.parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    gzipped,
                )
                with recorder._lock:
                    recorder.requests.append(request)
                    status, headers, payload = recorder.respond(request)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def writes(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/api/v2/write"]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@dataclass
class InfluxBuckets:
    """The org and bucket endpoints of an InfluxDB 2 server, enough for ensure-buckets:
    GET /api/v2/orgs?org=, GET /api/v2/buckets?orgID=&name=, POST /api/v2/buckets,
    PATCH /api/v2/buckets/{id}. `token` must come as `Authorization: Token …`."""

    token: str
    orgs: dict[str, str] = field(default_factory=lambda: {"hookflash": "0a1b2c3d4e5f6a7b"})
    buckets: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, name: str, every_seconds: int, org: str = "hookflash") -> None:
        bucket_id = f"{next(self._ids):016x}"
        self.buckets[bucket_id] = {
            "id": bucket_id,
            "orgID": self.orgs[org],
            "name": name,
            "type": "user",
            "retentionRules": [{"type": "expire", "everySeconds": every_seconds}],
        }

    def retention(self, name: str) -> int | None:
        for bucket in self.buckets.values():
            if bucket["name"] == name:
                return int(bucket["retentionRules"][0]["everySeconds"]) if bucket["retentionRules"] else 0
        return None

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Token {self.token}":
            return influx_error(401, "unauthorized access")
        if request.method == "GET" and request.path == "/api/v2/orgs":
            name = request.arg("org")
            if name not in self.orgs:
                return influx_error(404, f'organization name "{name}" not found')
            return _json(200, {"orgs": [{"id": self.orgs[name], "name": name}]})
        if request.method == "GET" and request.path == "/api/v2/buckets":
            found = [
                b
                for b in self.buckets.values()
                if b["orgID"] == request.arg("orgID") and b["name"] == request.arg("name")
            ]
            return _json(200, {"buckets": found})
        if request.method == "POST" and request.path == "/api/v2/buckets":
            wanted = request.json()
            self.add(wanted["name"], 0, next(n for n, i in self.orgs.items() if i == wanted["orgID"]))
            created = list(self.buckets.values())[-1]
            created["retentionRules"] = wanted.get("retentionRules", [])
            return _json(201, created)
        if request.method == "PATCH" and request.path.startswith("/api/v2/buckets/"):
            bucket = self.buckets[request.path.rsplit("/", 1)[1]]
            bucket["retentionRules"] = request.json()["retentionRules"]
            return _json(200, bucket)
        return influx_error(404, f"no such endpoint {request.method} {request.path}")


def _json(status: int, payload: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(payload).encode()
