"""The connections of `incop registry serve`, so that slow or idle clients cannot take every slot.

A request's line and headers must arrive within the header deadline (min(--timeout, 10 s)), counted from when the
server starts waiting for them, so the idle time of a kept-alive connection counts too; a connection that misses
it is closed. At most `max_connections` are served at once, and one address may keep at most `per_client` of its
connections waiting (for its request, or idle between requests): one more gets 503 at once. Transfers in progress
do not count towards that cap, so a fleet behind one address can still download all at once.
"""

from __future__ import annotations

import io
import math
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEADER_DEADLINE = 10.0
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
        b"Connection: close\r\n\r\n")


class HeaderClock(io.RawIOBase):
    """A connection's reader: each receive waits at most the connection timeout and never past `until`."""

    def __init__(self, sock: socket.socket, timeout: float):
        self.sock, self.timeout, self.until = sock, timeout, math.inf

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.until - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request line and headers did not arrive within the header deadline")
        self.sock.settimeout(min(left, self.timeout))
        return self.sock.recv_into(buffer)


class Clients:
    """How many connections each address keeps waiting; `admit` refuses one beyond `cap`."""

    def __init__(self, cap: int):
        self.cap, self.lock, self.count = cap, threading.Lock(), Counter()
        self.address: dict = {}  # connection -> its address, from admit to forget
        self.waiting: set = set()

    def admit(self, conn: socket.socket, address: str) -> bool:
        """Count a new (waiting) connection of `address`; False, counting nothing, when it already has `cap`."""
        with self.lock:
            if self.count[address] >= self.cap:
                return False
            self.address[conn] = address
            self._mark(conn, True)
            return True

    def mark(self, conn: socket.socket, waiting: bool) -> None:
        with self.lock:
            self._mark(conn, waiting)

    def forget(self, conn: socket.socket) -> None:
        with self.lock:
            self._mark(conn, False)
            self.address.pop(conn, None)

    def _mark(self, conn: socket.socket, waiting: bool) -> None:
        address = self.address.get(conn)
        if address is None or (conn in self.waiting) == waiting:
            return
        if waiting:
            self.waiting.add(conn)
            self.count[address] += 1
            return
        self.waiting.discard(conn)
        self.count[address] -= 1
        if not self.count[address]:
            del self.count[address]


class GuardedHandler(BaseHTTPRequestHandler):
    """Reads every request through a HeaderClock and tells the server's Clients when the connection waits."""

    def setup(self) -> None:
        self.timeout = self.server.conn_timeout  # StreamRequestHandler applies it to the socket
        super().setup()
        self.rfile.close()
        self.clock = HeaderClock(self.connection, self.timeout)
        self.rfile = io.BufferedReader(self.clock)

    def handle_one_request(self) -> None:
        self.server.clients.mark(self.request, True)
        self.clock.until = time.monotonic() + self.server.header_deadline
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # the headers are in (or the request was refused)
        self.clock.until = math.inf
        self.connection.settimeout(self.timeout)
        self.server.clients.mark(self.request, False)
        return parsed


class RegistryServer(ThreadingHTTPServer):
    """One thread per connection up to `max_connections`; a deep listen queue so a fleet pulling at once is not
    refused."""

    request_queue_size = 128
    daemon_threads = True

    def __init__(self, address: tuple, handler: type, timeout: float, max_connections: int):
        super().__init__(address, handler)
        self.conn_timeout, self.header_deadline = timeout, min(timeout, HEADER_DEADLINE)
        self.slots, self.clients = threading.BoundedSemaphore(max_connections), Clients(max(4, max_connections // 8))

    def process_request(self, request: socket.socket, client_address) -> None:
        if not self.clients.admit(request, client_address[0]):
            return self._refuse(request)
        if not self.slots.acquire(blocking=False):
            self.clients.forget(request)
            return self._refuse(request)
        try:
            super().process_request(request, client_address)
        except RuntimeError:  # no thread could be started
            self._release(request)
            self._refuse(request)

    def process_request_thread(self, request: socket.socket, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def _release(self, request: socket.socket) -> None:
        self.clients.forget(request)
        self.slots.release()

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.settimeout(1.0)
            request.sendall(BUSY)
        except OSError:
            pass
        self.shutdown_request(request)
