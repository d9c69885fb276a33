"""The learner's small HTTP server: ``/metrics``, ``/health`` and ``/ready``, on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest

TEXT_FORMAT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8"


def serve(registry: CollectorRegistry, readiness: Callable[[], tuple[bool, str]],
          host: str, port: int) -> ThreadingHTTPServer:
    """Start the server in a daemon thread; ``shutdown()`` the returned server to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(registry), TEXT_FORMAT_0_0_4)
            elif self.path == "/health":
                self._json(200, {"status": "up"})
            elif self.path == "/ready":
                ok, reason = readiness()
                self._json(200 if ok else 503, {"ready": ok, "reason": reason})
            else:
                self._json(404, {"error": "not found", "path": self.path})

        def _json(self, status: int, body: dict[str, object]) -> None:
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds: not worth a log line each

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="learner-web", daemon=True).start()
    return server
