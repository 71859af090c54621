"""`incop registry serve`: a small read-only HTTP server for a registry directory (GET/HEAD with Range).

Hidden names (temporary files of a publish in progress) and anything outside the directory are 404; a
malformed path is 400. Each connection has a socket timeout, each request a header deadline, and at most
`max_connections` are served at once, a few waiting ones per client address (serve_conn.py): one more is
answered 503 at once, so slow or idle connections cannot pile up threads or starve other clients.
"""

from __future__ import annotations

import errno
import re
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Union

from .errors import RegistryError
from .serve_conn import GuardedHandler, RegistryServer

RANGE_RE = re.compile(r"^bytes=(\d+)-(\d*)$")
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
MAX_PATH = 1024
CHUNK = 1 << 16


class RegistryHandler(GuardedHandler):
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

    def _relative(self) -> Optional[str]:
        """The decoded path of the request, or None when it is malformed (the answer is then 400)."""
        raw = self.path
        if len(raw) > MAX_PATH or not raw.isascii() or not raw.isprintable() or BAD_ESCAPE.search(raw):
            return None
        try:
            rel = urllib.parse.unquote(urllib.parse.urlsplit(raw).path, errors="strict")
        except (ValueError, UnicodeDecodeError):
            return None
        return rel.lstrip("/") if rel.isprintable() else None

    def _resolve(self, rel: str) -> Optional[Path]:
        parts = rel.split("/")
        if not rel or any(p in ("", ".", "..") or p.startswith(".") or len(p) > 255 for p in parts):
            return None
        root = self.server.root
        try:
            path = (root / rel).resolve()
            return path if path.is_file() and path.is_relative_to(root) else None
        except (OSError, ValueError):
            return None

    def _serve(self, body: bool) -> None:
        rel = self._relative()
        if rel is None:
            return self._empty(HTTPStatus.BAD_REQUEST)
        path = self._resolve(rel)
        size = _size(path)
        if size is None:
            return self._empty(HTTPStatus.NOT_FOUND)
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
        try:
            self._send(path, start, length)
        except OSError:  # the file vanished, the client left or stopped reading past the timeout
            self.close_connection = True

    def _send(self, path: Path, start: int, length: int) -> None:
        with open(path, "rb") as handle:
            handle.seek(start)
            while length > 0:
                chunk = handle.read(min(CHUNK, length))
                if not chunk:
                    break
                self.wfile.write(chunk)
                length -= len(chunk)
                if self.server.delay:
                    time.sleep(self.server.delay)
        self.close_connection = self.close_connection or length > 0  # shrank while served: end the reply here

    def _head(self, status: HTTPStatus, headers: dict) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _empty(self, status: HTTPStatus, headers: Optional[dict] = None) -> None:
        self._head(status, {"Content-Length": "0", **(headers or {})})


def _size(path: Optional[Path]) -> Optional[int]:
    """The size of `path`, or None when there is none (or it vanished since it was resolved)."""
    try:
        return None if path is None else path.stat().st_size
    except OSError:
        return None


def make_server(root: Path, host: str = "127.0.0.1", port: int = 8765, delay: float = 0.0,
                handler: type = RegistryHandler, timeout: float = 30.0, max_connections: int = 64) -> RegistryServer:
    """A server bound to host:port (port 0 picks a free one: read it from server.server_address)."""
    try:
        server = RegistryServer((host, port), handler, timeout, max_connections)
    except OverflowError:
        raise RegistryError(f"port {port} is outside 0..65535; pass another --port") from None
    except OSError as exc:
        raise RegistryError(_bind_error(exc, host, port)) from None
    server.root, server.delay, server.verbose = Path(root).resolve(), delay, False
    return server


def _bind_error(exc: OSError, host: str, port: Union[int, str]) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use; pass another --port or stop the other server"
    if exc.errno == errno.EACCES:
        return f"binding port {port} on {host} is not permitted; pass a --port above 1023"
    return f"cannot bind {host}:{port} ({exc.strerror or exc}); check --host"


def start_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}"
