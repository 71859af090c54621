"""`incop registry serve`: read-only, Range-aware, and blind to hidden files and paths outside its directory."""

from __future__ import annotations

import http.client

import pytest


def _request(srv, path: str, method: str = "GET", headers=None):
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


@pytest.fixture
def files(server):
    (server.root_dir / "tiny/versions/1").mkdir(parents=True)
    (server.root_dir / "tiny/versions/1/model.onnx").write_bytes(bytes(range(200)))
    (server.root_dir / "tiny/versions/1/.tmp-123-model.onnx").write_bytes(b"half")
    (server.root_dir.parent / "secret.txt").write_text("secret")
    return server


def test_ranges_and_head(files):
    path = "/tiny/versions/1/model.onnx"
    assert _request(files, path)[2] == bytes(range(200))
    status, headers, body = _request(files, path, headers={"Range": "bytes=150-"})
    assert (status, headers["Content-Range"], body) == (206, "bytes 150-199/200", bytes(range(150, 200)))
    assert _request(files, path, headers={"Range": "bytes=10-19"})[2] == bytes(range(10, 20))
    assert _request(files, path, headers={"Range": "bytes=200-"})[0] == 416
    status, headers, body = _request(files, path, method="HEAD")
    assert (status, headers["Content-Length"], headers["Accept-Ranges"], body) == (200, "200", "bytes", b"")


@pytest.mark.parametrize("path", ["/tiny/versions/1/.tmp-123-model.onnx", "/../secret.txt", "/%2e%2e/secret.txt",
                                  "/tiny/versions/1", "/", "/tiny/versions/2/model.onnx", "//etc/passwd"])
def test_hidden_missing_and_outside_paths_are_not_found(files, path):
    assert _request(files, path)[0] == 404


def test_writes_are_refused(files):
    assert _request(files, "/tiny/versions/1/model.onnx", method="PUT")[0] == 501
    assert _request(files, "/tiny/versions/1/model.onnx", method="DELETE")[0] == 501
