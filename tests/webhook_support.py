"""A real local HTTP receiver and helpers for the webhook tests and benchmark (no tests here)."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

SECRET_ENV = "WB_TEST_WEBHOOK_SECRET"
SECRET = "test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST.

    mode "ok" answers 200, "fail" answers 500, "garbage" answers with a line that is not HTTP, "hold" signals `arrived` and holds the response
    until `release` is set. `stop()` closes the port (connections refused), `start()` reopens it.
    """

    def __init__(self, port: Optional[int] = None) -> None:
        self.port = port or free_port()
        self.mode = "ok"
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.received.append({"headers": dict(self.headers.items()), "body": body,
                                              "at": time.time(), "event": json.loads(body)})
                mode = receiver.mode
                if mode == "garbage":  # not HTTP at all: http.client raises BadStatusLine
                    self.wfile.write(b"SURPRISE\r\n\r\n")
                    self.close_connection = True
                    return
                if mode == "hold":
                    receiver.arrived.set()
                    receiver.release.wait(60)
                code = 500 if mode == "fail" else 200
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def event_ids(self) -> list[str]:
        with self.lock:
            return [r["event"]["id"] for r in self.received]


def write_config(folder: Path, url: str, *, name: str = "enforcement", max_attempts: int = 5,
                 base: float = 0.05, cap: float = 0.2, timeout: float = 2, lease: float = 5,
                 extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "webhooks.yaml").write_text(f"""
endpoints:
  - name: {name}
    url: {url}
    events: [decision.created, campaign.decided, decision.corrected, appeal.resolved]
    secret_env: {SECRET_ENV}
    max_attempts: {max_attempts}
    backoff_base_seconds: {base}
    backoff_cap_seconds: {cap}
    timeout_seconds: {timeout}
{extra}
worker:
  poll_seconds: 0.05
  lease_seconds: {lease}
  batch_size: 10
""", encoding="utf-8")
    return folder
