"""One HTTP port: /metrics, /healthz, /readyz, read-only JSON under /api/ and pages under /ui/."""

import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from cmdb_worker.worker.api import Api, BadRequest, Gone, NotFound
from cmdb_worker.worker.ui import Ui

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
        # A short poll interval: stop() returns within 0.1 s instead of the default 0.5 s.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )

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

    ui = Ui(api)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/api/"):
                api_path = url.path.removeprefix("/api/")
                self._send(*_api_response(api, api_path, parse_qs(url.query)))
            elif url.path == "/ui" or url.path.startswith("/ui/"):
                ui_path = url.path.removeprefix("/ui").removeprefix("/")
                self._send(*ui.get(ui_path, parse_qs(url.query)))
            elif url.path == "/metrics":
                encode, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, content_type, encode(registry))
            elif url.path == "/healthz":
                self._send(*probe(is_live, "live"))
            elif url.path == "/readyz":
                self._send(*probe(is_ready, "ready"))
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
    """The API's answer; ``path`` is still percent-encoded so CI ids may carry ``%2F``."""
    try:
        content_type, body = api.get(path, query)
    except NotFound as missing:
        return _error(HTTPStatus.NOT_FOUND, missing)
    except BadRequest as bad:
        return _error(HTTPStatus.BAD_REQUEST, bad)
    except Gone as gone:
        return _error(HTTPStatus.GONE, gone)
    return HTTPStatus.OK, content_type, body


def _error(status: HTTPStatus, error: Exception) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps({"error": str(error)}).encode()


def liveness(last_progress: Callable[[], float], timeout: float) -> Callable[[], bool]:
    """Live while the processing loop made progress within ``timeout`` seconds."""
    return lambda: time.monotonic() - last_progress() < timeout
