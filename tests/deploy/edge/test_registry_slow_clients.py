"""Issue #20 (4, 5): slow headers cannot hold a pull past its deadline, slow clients cannot starve the server.

A. A loopback server sends its status line and headers one byte per 0.5 s: `incop pull` ends by its deadline (or
   its --timeout for the whole header block) for the channel pointer (followed unsigned, and signed), the manifest
   and a model file.
B. `incop registry serve` under slow-loris (header bytes dripped from 127.0.0.2) and idle connections (from
   127.0.0.3): a request's headers must arrive within the header deadline, one address holds a few waiting
   connections at most, and an honest client (127.0.0.1) and a device's pull still get through.
"""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest

from tests.support.bad_inputs import expect_user_error, incop_command, run_incop
from deploy.edge.publish import publish
from deploy.edge.signing import generate_keys
from tests.support.registry import tiny_onnx

SLOW = 0.5  # seconds per header byte
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Pad: "


class SlowHeaderServer:
    """Serves `root` over raw sockets; a request for a name in `slow` gets its headers one byte per SLOW s."""

    def __init__(self, root, slow):
        self.root, self.slow, self.stop, self.threads = root, slow, threading.Event(), []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._spawn(self._accept)

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self.threads.append(thread)

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            self._spawn(self._answer, conn)

    def _answer(self, conn):
        with conn:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request and not self.stop.is_set():
                request += conn.recv(4096) or b"\r\n\r\n"
            path = urllib.parse.unquote(request.split(b" ")[1].decode()).lstrip("/") if b" " in request else ""
            if path.rsplit("/", 1)[-1] in self.slow:
                return self._drip(conn)
            file = self.root / path
            body = file.read_bytes() if path and file.is_file() else None
            status = b"200 OK" if body is not None else b"404 Not Found"
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                         % len(body or b"") + (body or b""))

    def _drip(self, conn):
        sent = 0
        while not self.stop.wait(SLOW):
            try:
                conn.sendall(HEAD[sent:sent + 1] if sent < len(HEAD) else b"a")
            except OSError:
                return
            sent += 1

    def close(self):
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()


@pytest.fixture
def registry(tmp_path):
    """A registry with tiny v1 published signed; returns (registry dir, public key)."""
    private, public = generate_keys(tmp_path / "keys")
    publish(str(tmp_path / "reg"), "tiny", tiny_onnx(tmp_path / "m.onnx"), private_key=private)
    return tmp_path / "reg", public


@contextmanager
def slow_headers(root, *slow):
    srv = SlowHeaderServer(root, set(slow))
    try:
        yield srv
    finally:
        srv.close()


def _timed_pull(url, dest, *options):
    started = time.monotonic()
    outcome = run_incop("pull", "--registry", url, "--name", "tiny", "--dest", dest, *options, timeout=60)
    return outcome, time.monotonic() - started


# A. Slow response headers on pull


@pytest.mark.parametrize("slow, rel", [("stable.json", "tiny/channels/stable.json"),
                                       ("signed stable.json", "tiny/channels/stable.json"),
                                       ("manifest.json", "tiny/versions/1/manifest.json"),
                                       ("model.onnx", "tiny/versions/1/model.onnx")])
def test_headers_dripped_one_byte_at_a_time_end_at_the_deadline(registry, tmp_path, slow, rel):
    root, public = registry
    options = {"stable.json": [], "signed stable.json": ["--public-key", public]}.get(slow, ["--version", "1"])
    with slow_headers(root, rel.rsplit("/", 1)[-1]) as srv:
        outcome, took = _timed_pull(srv.url, tmp_path / "dev", "--deadline", "3", "--timeout", "10",
                                    "--retries", "0", *options)
    expect_user_error(outcome, srv.url, f"did not deliver {rel} within the 3 s deadline", "--deadline", "re-run")
    assert took < 15
    assert not os.path.lexists(tmp_path / "dev/current")


def test_the_timeout_bounds_the_whole_header_block_and_retries_stop_at_the_deadline(registry, tmp_path):
    root, _ = registry
    with slow_headers(root, "stable.json") as srv:
        once, took_once = _timed_pull(srv.url, tmp_path / "dev", "--deadline", "30", "--timeout", "2",
                                      "--retries", "0")
        retried, took_retried = _timed_pull(srv.url, tmp_path / "dev", "--deadline", "3", "--timeout", "2",
                                            "--retries", "3")
    expect_user_error(once, "did not answer for tiny/channels/stable.json after 1 tries",
                      "no response headers within 2 s")
    assert took_once < 12
    expect_user_error(retried, "did not deliver tiny/channels/stable.json within the 3 s deadline")
    assert took_retried < 15


# B. Slow clients against `incop registry serve`


@contextmanager
def serving(root, *options):
    """`incop registry serve ROOT --port 0` in a subprocess; yields its URL."""
    proc = subprocess.Popen([*incop_command(), "registry", "serve", str(root), "--port", "0", *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, (line, proc.poll())
        yield found[0]
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _connect(url, source):
    sock, address = socket.socket(), urllib.parse.urlsplit(url)
    try:
        sock.settimeout(2)
        sock.bind((source, 0))
        sock.connect((address.hostname, address.port))
    except OSError:
        sock.close()
        raise
    return sock


def _closed(sock) -> bool:
    """Whether the server closed `sock` (or answered it, which for these requests means a 503 and a close)."""
    poll = select.poll()
    poll.register(sock, select.POLLIN)
    if not poll.poll(0):
        return False
    try:
        sock.recv(4096)
    except OSError:
        pass
    return True


def _sent(sock, data) -> bool:
    try:
        return sock.send(data) == len(data)
    except OSError:
        return False


class Attack:
    """`drippers` connections from 127.0.0.2 send one header byte per second (reconnecting when closed);
    `idlers` from 127.0.0.3 connect once and send nothing."""

    def __init__(self, url, drippers, idlers):
        self.url, self.stop = url, threading.Event()
        self.drip, self.idle, self.idlers = [None] * drippers, [], idlers
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        for _ in range(self.idlers):
            self.idle.append(_connect(self.url, "127.0.0.3"))

    def _run(self):
        request = b"GET /tiny/latest HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 10000
        sent = [0] * len(self.drip)
        while not self.stop.wait(1.0):
            for i, sock in enumerate(self.drip):
                if sock is not None and _closed(sock):
                    sock.close()
                    sock = self.drip[i] = None
                try:
                    if sock is None:
                        sock = self.drip[i] = _connect(self.url, "127.0.0.2")
                        sent[i] = 0
                    sent[i] += sock.send(request[sent[i]:sent[i] + 1])
                except OSError:
                    pass  # refused or closed: the next round sees it and reconnects

    def close(self):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)
        for sock in self.drip + self.idle:
            if sock is not None:
                sock.close()


@contextmanager
def attacked(url, drippers=64, idlers=300):
    attack = Attack(url, drippers, idlers)
    try:
        attack.start()
        time.sleep(2.5)  # every dripper connected and sent a couple of bytes
        yield attack
    finally:
        attack.close()


def _get(url) -> int:
    try:
        with urllib.request.urlopen(url + "/tiny/latest", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code
    except OSError:
        return 0


def test_slow_loris_and_idle_connections_do_not_starve_honest_clients(registry, tmp_path):
    root, _ = registry
    with serving(root) as url, attacked(url):
        statuses = [_get(url) for _ in range(40)]
        outcome = run_incop("pull", "--registry", url, "--name", "tiny", "--dest", tmp_path / "dev",
                            "--retries", "0", timeout=60)
    assert statuses == [200] * 40
    assert outcome[0] == 0, outcome
    assert os.readlink(tmp_path / "dev/current") == "versions/1"


def test_one_address_keeps_a_few_waiting_connections_and_the_next_gets_503_at_once(registry):
    root, _ = registry
    with serving(root) as url:
        held = [_connect(url, "127.0.0.2") for _ in range(8)]  # max(4, 64 // 8) waiting connections
        try:
            extra, other = _connect(url, "127.0.0.2"), _connect(url, "127.0.0.3")
            with extra, other:
                assert extra.recv(4096).startswith(b"HTTP/1.1 503")
                other.sendall(b"GET /tiny/latest HTTP/1.1\r\nHost: x\r\n\r\n")
                assert other.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(0.5)
            assert not any(_closed(sock) for sock in held)
        finally:
            for sock in held:
                sock.close()


def test_request_headers_and_idle_keep_alive_must_arrive_within_the_header_deadline(registry):
    root, _ = registry
    with serving(root, "--timeout", "30") as url:
        dripper, idle = _connect(url, "127.0.0.2"), _connect(url, "127.0.0.1")
        with dripper, idle:
            idle.sendall(b"HEAD /tiny/latest HTTP/1.1\r\nHost: x\r\n\r\n")
            assert idle.recv(4096).startswith(b"HTTP/1.1 200")  # kept alive, then idle
            started, open_ = time.monotonic(), {dripper, idle}
            while open_ and time.monotonic() - started < 20:
                for sock in list(open_):
                    if _closed(sock):
                        open_.discard(sock)
                if dripper in open_ and not _sent(dripper, b"G"):
                    open_.discard(dripper)
                time.sleep(0.5)
            took = time.monotonic() - started
    assert not open_, "a connection outlived the 10 s header deadline"
    assert 8 < took < 16
