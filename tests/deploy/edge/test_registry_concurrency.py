"""Fifty devices pulling from one loopback server at once: every pull verified, `current` never partial."""

from __future__ import annotations

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

from deploy.edge.manifest import sha256_file
from deploy.edge.publish import publish
from deploy.edge.pull import pull
from tests.support.registry import tiny_onnx

DEVICES = 50


def _current_is_whole(dest):
    """`current` is absent (nothing pulled yet) or a complete version that matches its manifest; None when the
    version read was swapped out and pruned while being read. Like a device's runtime, the reader resolves the
    link once: reading `current/...` path by path could mix two versions across a swap."""
    current = dest / "current"
    try:
        version = current.resolve(strict=True)
    except (FileNotFoundError, RuntimeError):
        if not current.is_symlink():
            return True  # nothing pulled yet
        return None if current.exists() else False  # made between the two reads (undecided), or dangling (broken)
    try:
        manifest = json.loads((version / "manifest.json").read_text())
        return all(sha256_file(version / name) == info["sha256"] for name, info in manifest["files"].items())
    except FileNotFoundError:
        return None if not version.exists() else False


def _watch(dests, stop, seen):
    rng = random.Random(0)
    while not stop.is_set():
        dest = rng.choice(dests)
        whole = _current_is_whole(dest)
        if whole is not None:
            seen.append(whole)


def _round(url, dests, version):
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(dests, stop, seen))
    watcher.start()
    try:
        with ThreadPoolExecutor(DEVICES) as pool:
            results = list(pool.map(lambda d: pull(url, "tiny", d, version=version, backoff=0.05), dests))
    finally:
        stop.set()
        watcher.join()
    return results, seen


def test_fifty_concurrent_pulls_are_all_verified_and_never_partial(server, tmp_path):
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i, hidden=1024) for i in range(2)]  # about 300 KB each
    for model in models:
        publish(str(server.root_dir), "tiny", model)
    dests = [tmp_path / f"device{i:02d}" for i in range(DEVICES)]
    for version, model in (("1", models[0]), ("2", models[1])):
        results, seen = _round(server.url, dests, version)
        assert [r["version"] for r in results] == [version] * DEVICES
        assert seen and all(seen), "a reader saw a partial model as current"
        expected = model.read_bytes()
        assert all((d / "current/model.onnx").read_bytes() == expected for d in dests)
    assert all((d / "previous/model.onnx").read_bytes() == models[0].read_bytes() for d in dests)
