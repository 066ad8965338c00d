"""One HTTP port: /metrics, /healthz, /readyz and read-only JSON under /api/."""

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from worker.api import Api, NotFound

Route = Callable[[dict[str, list[str]]], tuple[int, str, bytes]]


class StatusServer:
    """Serves health, readiness, metrics and the query API from a daemon thread."""

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, api: Api,
        is_live: Callable[[], bool], is_ready: Callable[[], bool],
    ) -> None:  # fmt: skip
        handler = _handler(registry, api, is_live, is_ready)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> "StatusServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(
    registry: CollectorRegistry, api: Api,
    is_live: Callable[[], bool], is_ready: Callable[[], bool],
) -> type[BaseHTTPRequestHandler]:  # fmt: skip
    def probe(check: Callable[[], bool], name: str) -> tuple[int, str, bytes]:
        ok = check()
        body = json.dumps({"status": "ok" if ok else "failing", "check": name}).encode()
        return (200 if ok else 503), "application/json", body

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            path, query = unquote(url.path), parse_qs(url.query)
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path == "/healthz":
                self._send(*probe(is_live, "live"))
            elif path == "/readyz":
                self._send(*probe(is_ready, "ready"))
            elif path.startswith("/api/"):
                self._send(*_api_response(api, path.removeprefix("/api/"), query))
            else:
                self._send(404, "application/json", b'{"error": "not found"}')

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # access logs would drown the worker's own; Prometheus scrapes every 30 s

    return Handler


def _api_response(api: Api, path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
    try:
        content_type, body = api.get(path, query)
    except NotFound as missing:
        return (
            HTTPStatus.NOT_FOUND,
            "application/json",
            json.dumps({"error": str(missing)}).encode(),
        )
    return HTTPStatus.OK, content_type, body


def liveness(last_progress: Callable[[], float], timeout: float) -> Callable[[], bool]:
    """Live while the processing loop made progress within ``timeout`` seconds."""
    return lambda: time.monotonic() - last_progress() < timeout
