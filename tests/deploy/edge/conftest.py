"""Fixtures of the deploy/edge tests: a registry directory served on loopback."""

import pytest

from deploy.edge.serve import make_server, start_in_thread, url_of
from tests.support.registry import RecordingHandler


@pytest.fixture
def server(tmp_path):
    """A registry directory served on 127.0.0.1 (a free port); stopped after the test."""
    root = tmp_path / "registry"
    root.mkdir()
    srv = make_server(root, "127.0.0.1", 0, handler=RecordingHandler)
    srv.requests = []
    thread = start_in_thread(srv)
    srv.url, srv.root_dir = url_of(srv), root
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)
