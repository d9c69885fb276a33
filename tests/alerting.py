"""Test helpers for alert delivery: a real Alertmanager and a webhook receiver to notify.

``Alertmanager`` runs Debian's ``prometheus-alertmanager`` (or an ``alertmanager`` on PATH)
on a free loopback port with its own data directory and clustering off. ``WebhookReceiver``
is a tiny HTTP server in a thread that records every notification Alertmanager posts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.support import ServerProcess, free_port, wait_until


def alertmanager_exe() -> str | None:
    """Debian names the binary prometheus-alertmanager; upstream names it alertmanager."""
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class WebhookReceiver:
    """Records Alertmanager webhook notifications (one JSON body per POST), by URL path."""

    def __init__(self) -> None:
        self.notifications: list[tuple[str, dict[str, Any]]] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._changed:
                    receiver.notifications.append((self.path, json.loads(body)))
                    receiver._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, predicate: Any, timeout_seconds: float, what: str
                 ) -> tuple[str, dict[str, Any]]:
        """The first notification ``(path, body)`` for which ``predicate`` is true."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while True:
                for note in self.notifications:
                    if predicate(*note):
                        return note
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(p, b["status"], b["groupLabels"]) for p, b in self.notifications]
                    raise AssertionError(f"timed out after {timeout_seconds}s waiting for "
                                         f"{what}; notifications: {seen}")
                self._changed.wait(left)


def short_timer_config(config_path: Path, receiver_url: str, *, group_wait: str = "1s",
                        group_interval: str = "2s", resolve_timeout: str = "10s") -> str:
    """The shipped Alertmanager config with short timers and every webhook sent to
    ``receiver_url`` (same path), so the routing tree under test is the real one."""
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("global", {})["resolve_timeout"] = resolve_timeout

    def shorten(route: dict[str, Any]) -> None:
        route.update(group_wait=group_wait, group_interval=group_interval)
        for child in route.get("routes", []):
            shorten(child)

    shorten(config["route"])
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = urllib.request.urlparse(hook["url"]).path
            hook["url"] = receiver_url + path
    return yaml.safe_dump(config, sort_keys=False)


class Alertmanager(ServerProcess):
    """A real Alertmanager on loopback; use as a context manager."""

    name = "alertmanager"

    def __init__(self, exe: str, workdir: Path, config_text: str) -> None:
        self.exe, self.workdir, self.config_text = exe, workdir, config_text
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Alertmanager:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "alertmanager.yml"
        config.write_text(self.config_text)
        self.proc = subprocess.Popen(
            [self.exe, f"--config.file={config}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "alertmanager.log").open("wb"),
        )
        wait_until(self._ready, 30, "Alertmanager to be ready", step=0.2)
        return self

