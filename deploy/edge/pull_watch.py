"""A watchdog for one HTTP request, so that neither slow headers nor a stalled body can outlast its time.

The socket timeout bounds each receive only, and http.client reads the status line and headers with no overall
limit: a server that sends them one byte per second would hold a pull for ever. The watchdog shuts the request's
socket down at a time.monotonic() instant (first the header deadline, then the file's deadline); the blocked
read then fails at once. Imports neither torch nor prefect.
"""

from __future__ import annotations

import http.client
import math
import socket
import threading
import time
import urllib.request
from typing import Any


class Watchdog:
    """Shuts a request's socket down once `until` (a time.monotonic() instant) has passed; never earlier."""

    def __init__(self, until: float):
        self.lock, self.spare, self.timer, self.fired = threading.Lock(), None, None, False
        with self.lock:
            self._arm(until)

    def attach(self, sock: socket.socket) -> None:
        """Watch `sock` through a duplicate descriptor of its own, so no other file can take its number meanwhile."""
        spare = socket.fromfd(sock.fileno(), sock.family, sock.type)
        with self.lock:
            self._release()
            self.spare = spare
            if self.fired:
                _shut(spare)

    def extend(self, until: float) -> bool:
        """Move the stop to `until`; False when the current one has already passed."""
        with self.lock:
            if self.fired:
                return False
            self._arm(until)
            return True

    def close(self) -> None:
        with self.lock:
            self._arm(math.inf)
            self._release()

    def _arm(self, until: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.until, self.timer = until, None
        if math.isfinite(until):
            self.timer = threading.Timer(max(0.0, until - time.monotonic()), self._fire, (until,))
            self.timer.daemon = True
            self.timer.start()

    def _fire(self, until: float) -> None:
        time.sleep(max(0.0, until - time.monotonic()))  # a timer may wake a hair early; the deadline must have passed
        with self.lock:
            if until != self.until:  # moved or closed meanwhile
                return
            self.fired = True
            if self.spare is not None:
                _shut(self.spare)

    def _release(self) -> None:
        if self.spare is not None:
            self.spare.close()
            self.spare = None


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the peer
        pass


class WatchedResponse:
    """A response whose reads fail once its watchdog cut it (instead of ending early like a short file)."""

    def __init__(self, response: Any, watch: Watchdog):
        self.response, self.watch, self.status = response, watch, response.status

    def read1(self, size: int = -1) -> bytes:
        return self._checked(self.response.read1(size))

    def read(self, size: int = -1) -> bytes:
        return self._checked(self.response.read(size))

    def _checked(self, data: bytes) -> bytes:
        if not data and self.watch.fired:
            raise TimeoutError("cut off at the deadline")
        return data

    def close(self) -> None:
        self.watch.close()
        self.response.close()

    def __enter__(self) -> "WatchedResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Watched:
    """Mixed into http.client's connections: the socket, once connected, is handed to the request's watchdog."""

    def __init__(self, *args: Any, watch: Watchdog, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.watch = watch

    def connect(self) -> None:
        super().connect()
        self.watch.attach(self.sock)


class _HTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _Handler:
    """Mixed into urllib's HTTP(S) handlers: they open watched connections (proxies and redirects keep working)."""

    connections = {http.client.HTTPConnection: _HTTPConnection}

    def __init__(self, watch: Watchdog):
        super().__init__()
        self.watch = watch

    def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
        return super().do_open(self.connections[http_class], req, watch=self.watch, **kwargs)


class _HTTPHandler(_Handler, urllib.request.HTTPHandler):
    pass


HANDLERS = [_HTTPHandler]
if hasattr(urllib.request, "HTTPSHandler"):  # Python built with ssl
    class _HTTPSConnection(_Watched, http.client.HTTPSConnection):
        pass

    class _HTTPSHandler(_Handler, urllib.request.HTTPSHandler):
        connections = {http.client.HTTPSConnection: _HTTPSConnection}

    HANDLERS.append(_HTTPSHandler)


def watched_opener(watch: Watchdog) -> urllib.request.OpenerDirector:
    """urllib's default opener, with every connection it makes watched by `watch`."""
    return urllib.request.build_opener(*(handler(watch) for handler in HANDLERS))
