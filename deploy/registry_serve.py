"""`incop registry serve`: a small read-only HTTP server for a registry directory (GET/HEAD with Range).

Hidden names (temporary files of a publish in progress) and anything outside the directory are 404.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
CHUNK = 1 << 16


class RegistryHandler(BaseHTTPRequestHandler):
    """Serves files under `server.root`; `server.delay` seconds of sleep per chunk simulate a slow link."""

    server_version = "incop-registry/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep test output quiet
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    def _resolve(self) -> Optional[Path]:
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
            return None
        root = self.server.root
        path = (root / rel).resolve()
        return path if path.is_file() and path.is_relative_to(root) else None

    def _serve(self, body: bool) -> None:
        path = self._resolve()
        if path is None:
            return self._empty(HTTPStatus.NOT_FOUND)
        size = path.stat().st_size
        start, end, status = 0, size - 1, HTTPStatus.OK
        match = RANGE_RE.match(self.headers.get("Range", "").strip())
        if match:
            start, end = int(match[1]), int(match[2]) if match[2] else size - 1
            if start >= size or end < start:
                return self._empty(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"})
            end, status = min(end, size - 1), HTTPStatus.PARTIAL_CONTENT
        headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if status == HTTPStatus.PARTIAL_CONTENT:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._head(status, headers)
        if body:
            self._copy(path, start, end - start + 1)

    def _copy(self, path: Path, start: int, length: int) -> None:
        with open(path, "rb") as handle:
            handle.seek(start)
            while length > 0:
                chunk = handle.read(min(CHUNK, length))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                length -= len(chunk)
                if self.server.delay:
                    time.sleep(self.server.delay)

    def _head(self, status: HTTPStatus, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _empty(self, status: HTTPStatus, headers: Optional[dict] = None) -> None:
        self._head(status, {"Content-Length": "0", **(headers or {})})


class RegistryServer(ThreadingHTTPServer):
    """One thread per request; a deep listen queue so a fleet pulling at once is not refused."""

    request_queue_size = 128
    daemon_threads = True


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8765, delay: float = 0.0,
                handler: type = RegistryHandler) -> RegistryServer:
    """A server bound to host:port (port 0 picks a free one: read it from server.server_address)."""
    server = RegistryServer((host, port), handler)
    server.root, server.delay, server.verbose = Path(root).resolve(), delay, False
    return server


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"

