"""Issue #12: slow or stalled registries, a hardened `registry serve`, unusable pull sources and predict inputs.

Each case ends in one sentence and exit status 2 (at least one per item through the installed `incop`), and a
failed pull leaves `current` alone and its partial file for the next run to resume.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import zlib
from contextlib import contextmanager
from importlib.util import find_spec

import numpy as np
import pytest

from tests.support.bad_inputs import expect_user_error, run_incop
from deploy.edge.errors import RegistryError, Unreachable
from deploy.edge.publish import publish
from deploy.edge.pull import pull
from deploy.edge.pull_fetch import Pace, Retry
from deploy.edge.serve import make_server, start_in_thread, url_of
from tests.support.registry import RecordingHandler, assert_user_error, invoke, tiny_onnx


class DripHandler(RecordingHandler):
    """Sends the files named in `server.slow` one byte per `server.drip` seconds; the rest at full speed."""

    def _copy(self, path, start, length):
        if path.name not in self.server.slow:
            return super()._copy(path, start, length)
        data = path.read_bytes()[start:start + length]
        for i in range(len(data)):
            if self.server.release.wait(self.server.drip):
                return
            try:
                self.wfile.write(data[i:i + 1])
            except OSError:
                return


class StallHandler(RecordingHandler):
    """Sends half of the files named in `server.slow`, then nothing until the test ends."""

    def _copy(self, path, start, length):
        if path.name not in self.server.slow:
            return super()._copy(path, start, length)
        self.wfile.write(path.read_bytes()[start:start + length // 2])
        self.server.release.wait(30)


@contextmanager
def serving(root, handler=RecordingHandler, **options):
    srv = make_server(root, "127.0.0.1", 0, handler=handler, **options)
    srv.requests, srv.slow, srv.drip, srv.release = [], {"model.onnx"}, 0.2, threading.Event()
    thread = start_in_thread(srv)
    srv.url = url_of(srv)
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def v2_pending(server, tmp_path):
    """A device with v1 current and v2 published; returns the device directory."""
    for seed in (0, 1):
        publish(str(server.root_dir), "tiny", tiny_onnx(tmp_path / f"m{seed}.onnx", seed=seed))
    dest = tmp_path / "dev"
    pull(server.url, "tiny", dest, version="1")
    return dest


# A. Deadlines on pull


def test_a_dripping_server_fails_by_the_deadline_and_a_rerun_resumes(server, v2_pending):
    with serving(server.root_dir, DripHandler) as drip:
        started = time.monotonic()
        outcome = run_incop("pull", "--registry", drip.url, "--name", "tiny", "--dest", v2_pending, "--deadline", "1.5")
        took = time.monotonic() - started
    expect_user_error(outcome, drip.url, "tiny/versions/2/model.onnx", "1.5 s deadline", "--deadline", "re-run")
    assert took < 20
    assert os.readlink(v2_pending / "current") == "versions/1"
    had = (v2_pending / ".partial/2/model.onnx").stat().st_size
    assert had > 0
    server.requests.clear()
    assert pull(server.url, "tiny", v2_pending)["version"] == "2"
    assert [r for p, r in server.requests if p.endswith("model.onnx")] == [f"bytes={had}-"]


def test_a_too_slow_transfer_is_retried_resuming_then_named(server, v2_pending):
    with serving(server.root_dir, DripHandler) as drip:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="slower than 100 bytes/s over 0.5 s, after 2 tries") as caught:
            pull(drip.url, "tiny", v2_pending, retries=1, backoff=0.05, min_rate=100, rate_window=0.5)
        assert time.monotonic() - started < 5
        ranges = [r for p, r in drip.requests if p.endswith("model.onnx")]
    assert "lower --min-rate" in str(caught.value)
    assert ranges[0] is None and ranges[1].startswith("bytes=")  # the second try resumed
    assert os.readlink(v2_pending / "current") == "versions/1"


def test_the_pointer_and_manifest_reads_have_the_deadline_too(server, v2_pending):
    with serving(server.root_dir, DripHandler) as drip:
        drip.slow, drip.drip = {"stable.json"}, 0.4
        with pytest.raises(Unreachable, match="tiny/channels/stable.json within the 0.3 s deadline"):
            pull(drip.url, "tiny", v2_pending, deadline=0.3)
        drip.slow = {"manifest.json"}
        with pytest.raises(Unreachable, match="manifest.json within the 0.3 s deadline"):
            pull(drip.url, "tiny", v2_pending, version="2", deadline=0.3)


def test_a_server_that_stalls_mid_file_fails_by_the_socket_timeout(server, v2_pending):
    with serving(server.root_dir, StallHandler) as stall:
        started = time.monotonic()
        outcome = invoke("pull", "--registry", stall.url, "--name", "tiny", "--dest", v2_pending,
                         "--timeout", "0.5", "--retries", "1")
        assert time.monotonic() - started < 6
    assert_user_error(outcome, "did not answer for tiny/versions/2/model.onnx after 2 tries", "read failed: timed out")
    assert os.readlink(v2_pending / "current") == "versions/1"
    assert (v2_pending / ".partial/2/model.onnx").stat().st_size > 0


def test_the_default_deadline_grows_with_the_file():
    assert Pace(Retry(), "u", "f", 10 * 10240).limit == pytest.approx(70)
    assert Pace(Retry(deadline=5), "u", "f", 10 ** 9).limit == 5
    assert Pace(Retry(min_rate=0), "u", "f", 10 ** 9).limit == float("inf")


# B. `incop registry serve` hardening


def _get(srv, path):
    conn = http.client.HTTPConnection(*srv.server_address[:2], timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def _idle(srv):
    return socket.create_connection(srv.server_address[:2], timeout=5)


def test_an_idle_connection_is_closed_after_the_timeout(tmp_path):
    with serving(tmp_path, timeout=0.3) as srv:
        with _idle(srv) as idle:
            started = time.monotonic()
            assert idle.recv(100) == b""
            assert time.monotonic() - started < 3


def test_connections_beyond_the_bound_get_503_and_no_thread(tmp_path):
    (tmp_path / "f.bin").write_bytes(b"x" * 10)
    with serving(tmp_path, max_connections=3, timeout=10) as srv:
        before = threading.active_count()
        sockets = [_idle(srv) for _ in range(10)]
        try:
            busy = [s.recv(100) for s in sockets[3:]]  # answered at once; the first three sit idle
            assert all(b.startswith(b"HTTP/1.1 503") for b in busy), busy
            assert threading.active_count() - before <= 3
        finally:
            for s in sockets:
                s.close()
        deadline = time.monotonic() + 5
        while _get(srv, "/f.bin") != 200:
            assert time.monotonic() < deadline, "the server did not recover after the idle connections left"
            time.sleep(0.05)


@pytest.mark.parametrize("path", ["/tiny/%00", "/a%00b/model.onnx", "/%zz", "/model%2", "/%ff%fe", "/%C3%28",
                                  "/" + "a" * 2000])
def test_malformed_paths_are_400(tmp_path, capfd, path):
    with serving(tmp_path) as srv:
        assert _get(srv, path) == 400
    assert "Traceback" not in capfd.readouterr().err


def test_a_raw_non_ascii_path_is_400(tmp_path):
    with serving(tmp_path) as srv, _idle(srv) as conn:
        conn.sendall(b"GET /caf\xe9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400")


def test_a_port_in_use_or_out_of_range_or_a_foreign_host_is_one_sentence(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = run_incop("registry", "serve", tmp_path, "--port", port)
    expect_user_error(outcome, f"port {port} on 127.0.0.1 is in use", "--port")
    code, stdout, stderr = run_incop("registry", "serve", tmp_path, "--port", "70000")
    assert code == 2 and "65535" in stderr and "Traceback" not in stdout + stderr
    with pytest.raises(RegistryError, match="cannot bind 192.0.2.1:0 .*; check --host"):
        make_server(tmp_path, "192.0.2.1", 0)
    with pytest.raises(RegistryError, match="port 70000 is outside 0..65535; pass another --port"):
        make_server(tmp_path, "127.0.0.1", 70000)


# C. Pull sources


def test_an_unknown_protocol_is_one_sentence(tmp_path):
    outcome = run_incop("pull", "--registry", "foo://x", "--name", "tiny", "--dest", tmp_path / "dev")
    expect_user_error(outcome, "foo://x", "protocol foo", "fsspec", "http(s)://")


@pytest.mark.skipif(find_spec("s3fs") is not None, reason="s3fs is installed")
def test_s3_without_s3fs_is_one_sentence(tmp_path):
    outcome = invoke("pull", "--registry", "s3://bucket/reg", "--name", "tiny", "--dest", tmp_path / "dev")
    assert_user_error(outcome, "s3://bucket/reg", "pip install s3fs")


# D. predict input checks


@pytest.fixture
def device(tmp_path):
    publish(str(tmp_path / "reg"), "tiny", tiny_onnx(tmp_path / "m.onnx"), input_spec={"mean": 0.5, "std": 0.25})
    pull(str(tmp_path / "reg"), "tiny", tmp_path / "dev")
    return tmp_path / "dev"


def _png_claiming(path, width, height):
    """A PNG whose header claims width x height pixels (no pixel data is needed to trip PIL's bomb guard)."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 9))
                     + chunk(b"IEND", b""))
    return path


def test_nan_npy_and_a_decompression_bomb_are_one_sentence(device, tmp_path):
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan, np.float32))
    expect_user_error(run_incop("predict", "--model", device, tmp_path / "nan.npy"), "nan.npy", "NaN")
    bomb = _png_claiming(tmp_path / "bomb.png", 40000, 40000)
    expect_user_error(run_incop("predict", "--model", device, bomb), "bomb.png", "decompression bomb", "resize")


@pytest.mark.parametrize("limit", [40, 20])  # 64 pixels: a DecompressionBombWarning, then the error
def test_a_bomb_below_the_hard_limit_is_refused_too(device, tmp_path, monkeypatch, limit):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "img.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    assert_user_error(invoke("predict", "--model", device, tmp_path / "img.png"), "img.png", "decompression bomb")


def test_an_onnx_that_onnxruntime_cannot_load_is_one_sentence(device, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    model = device / "versions/1/model.onnx"
    model.write_bytes(b"not a model")
    np.save(tmp_path / "x.npy", np.zeros((8, 8), np.uint8))
    expect_user_error(run_incop("predict", "--model", device, tmp_path / "x.npy"), "model.onnx",
                      "cannot be loaded by onnxruntime", "pull the model again")
    graph = helper.make_graph([helper.make_node("Frobnicate", ["input"], ["logits"])], "odd",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(model))
    assert_user_error(invoke("predict", "--model", device, tmp_path / "x.npy"), "cannot be loaded by onnxruntime",
                      "Frobnicate")


@pytest.mark.parametrize("field, value, says", [("dtype", "nonsense", "unusable dtype"),
                                                ("dtype", "complex64", "unusable dtype"),
                                                ("size", [8], "unusable size"), ("std", [0.0], "unusable std"),
                                                ("channels", 2, "2 input channels"),
                                                ("size", [4, 4], "the model rejects")])
def test_an_unusable_input_spec_is_one_sentence(device, tmp_path, field, value, says):
    path = device / "versions/1/manifest.json"
    manifest = json.loads(path.read_text())
    manifest["input_spec"][field] = value
    path.write_text(json.dumps(manifest))
    from PIL import Image

    Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(tmp_path / "img.png")
    assert_user_error(invoke("predict", "--model", device, tmp_path / "img.png"), says)


def test_a_truncated_image_names_its_file(device, tmp_path):
    from PIL import Image

    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:40])
    assert_user_error(invoke("predict", "--model", device, tmp_path / "cut.png"), "cut.png", "not a readable image")
