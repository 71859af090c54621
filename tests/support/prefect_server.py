"""Talking to a local Prefect server from the tests: a free port, polling with a deadline, the client and the UI's
POST (the `server` fixture that starts one is in tests/flows/conftest.py)."""

import asyncio
import json
import socket
import time
import urllib.error
import urllib.request

from prefect.client.orchestration import PrefectClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def healthy(api: str) -> bool:
    try:
        return urllib.request.urlopen(f"{api}/health", timeout=2).status == 200
    except OSError:
        return False


def call(api: str, fn):
    async def go():
        async with PrefectClient(api) as client:
            return await fn(client)
    return asyncio.run(go())


def post(url: str, body: dict, seconds: float = 90) -> dict:
    """POST as the UI does; a busy server (SQLite locked under a running flow) answers 503 or 429, which the
    UI and Prefect's own client retry, so this does too, with backoff, within a deadline."""
    deadline, pause = time.monotonic() + seconds, 0.5
    while True:
        request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code not in (429, 503) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 8)
