"""Bad registries and attacks: each is one sentence, exit status 2, and the device's current model untouched."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from deploy.edge import dirfd, pull_device
from deploy.edge.manifest import canonical_bytes
from deploy.edge.publish import publish
from deploy.edge.signing import generate_keys
from tests.support.registry import assert_user_error, invoke, tiny_onnx, tree_bytes


@pytest.fixture
def setup(server, tmp_path):
    """v1 is current on a device; v2 is published (unsigned) and about to be tampered with."""
    keys = [generate_keys(tmp_path / f"keys{i}") for i in range(2)]
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    publish(str(server.root_dir), "tiny", models[0])
    dest = tmp_path / "dev"
    assert invoke("pull", "--registry", server.url, "--name", "tiny", "--dest", dest)[0] == 0
    publish(str(server.root_dir), "tiny", models[1])
    entry = server.root_dir / "tiny/versions/2"
    return {"url": server.url, "dest": dest, "entry": entry, "keys": keys, "models": models, "server": server,
            "before": tree_bytes(dest / "current")}


def pull_v2(s, *extra):
    return invoke("pull", "--registry", s["url"], "--name", "tiny", "--dest", s["dest"], "--retries", "0", *extra)


def assert_untouched(s):
    assert os.readlink(s["dest"] / "current") == "versions/1"
    assert tree_bytes(s["dest"] / "current") == s["before"]
    assert not (s["dest"] / "versions/2").exists()


def edit_manifest(s, change):
    path = s["entry"] / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_bytes(canonical_bytes(manifest))


def test_bit_flipped_model(setup):
    model = setup["entry"] / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    assert_user_error(pull_v2(setup), "sha256", "model.onnx")
    assert_untouched(setup)


def test_truncated_model(setup):
    model = setup["entry"] / "model.onnx"
    model.write_bytes(model.read_bytes()[:-100])
    assert_user_error(pull_v2(setup), "truncated")
    assert_untouched(setup)


def test_manifest_naming_a_different_hash(setup):
    edit_manifest(setup, lambda m: m["files"]["model.onnx"].update(sha256="0" * 64))
    assert_user_error(pull_v2(setup), "sha256")
    assert_untouched(setup)


def test_file_swapped_in_from_another_version(setup):
    shutil.copy(setup["server"].root_dir / "tiny/versions/1/model.onnx", setup["entry"] / "model.onnx")
    assert_user_error(pull_v2(setup), "sha256")
    assert_untouched(setup)


def test_missing_signature_when_a_key_is_configured(setup):
    assert_user_error(pull_v2(setup, "--public-key", setup["keys"][0][1]), "not signed")
    assert_untouched(setup)


def test_signature_by_another_key(setup, tmp_path):
    publish(str(setup["server"].root_dir), "tiny", setup["models"][1], private_key=setup["keys"][1][0], version="3")
    outcome = invoke("pull", "--registry", setup["url"], "--name", "tiny", "--dest", setup["dest"],
                     "--public-key", setup["keys"][0][1], "--version", "3")
    assert_user_error(outcome, "signature", "does not match")
    assert_untouched(setup)


def test_signed_manifest_edited_after_signing(setup, monkeypatch):
    publish(str(setup["server"].root_dir), "tiny", setup["models"][1], private_key=setup["keys"][0][0], version="3")
    setup["entry"] = setup["server"].root_dir / "tiny/versions/3"
    edit_manifest(setup, lambda m: m["metrics"].update(accuracy=0.99))
    monkeypatch.setenv("INCOP_PUBLIC_KEY", str(setup["keys"][0][1]))
    assert_user_error(pull_v2(setup, "--version", "3"), "changed after it was signed", "tampered")
    assert_untouched(setup)


def test_unknown_name_and_unknown_version(setup):
    assert_user_error(invoke("pull", "--registry", setup["url"], "--name", "nope", "--dest", setup["dest"]),
                      "no model named nope")
    assert_user_error(pull_v2(setup, "--version", "9"), "no version 9")
    assert_untouched(setup)


def test_registry_unreachable(setup):
    setup["server"].shutdown()
    setup["server"].server_close()
    assert_user_error(pull_v2(setup, "--retries", "1"), "did not answer", "check the URL")
    assert_untouched(setup)


def test_path_traversal_in_manifest_file_names(setup):
    def escape(manifest):
        manifest["files"]["../../../escaped.onnx"] = manifest["files"].pop("model.onnx")
        manifest["model_file"] = "../../../escaped.onnx"

    edit_manifest(setup, escape)
    assert_user_error(pull_v2(setup), "unsafe file")
    assert not list(setup["dest"].parent.rglob("escaped.onnx"))
    assert_untouched(setup)


def test_model_needing_a_newer_onnxruntime(setup):
    edit_manifest(setup, lambda m: m.update(min_onnxruntime="99.0"))
    assert_user_error(pull_v2(setup), "needs onnxruntime >= 99.0")
    assert_untouched(setup)


class FullDisk:
    """A file whose writes fail with ENOSPC once `room` bytes were written."""

    def __init__(self, handle, room: int):
        self.handle, self.room = handle, room

    def write(self, data: bytes) -> int:
        if self.room < len(data):  # like a real disk: what fits is written, then the write fails
            self.handle.write(data[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_disk_full_during_download_then_resume(setup, monkeypatch):
    writable = dirfd.StagedFile.open_for_writing
    monkeypatch.setattr(dirfd.StagedFile, "open_for_writing", lambda self: FullDisk(writable(self), 1000))
    assert_user_error(pull_v2(setup), "disk is full", "free space")
    assert_untouched(setup)
    part = setup["dest"] / ".partial/2/model.onnx"
    assert part.stat().st_size == 1000  # kept, so the next pull resumes
    monkeypatch.undo()
    assert pull_v2(setup)[0] == 0
    assert (setup["dest"] / "current/model.onnx").read_bytes() == setup["models"][1].read_bytes()


def test_not_enough_free_space_is_refused_before_downloading(setup, monkeypatch):
    monkeypatch.setattr(pull_device.Stage, "free", lambda self: 10)
    assert_user_error(pull_v2(setup), "free space")
    assert_untouched(setup)


def test_corrupt_channel_pointer(setup):
    pointer = Path(setup["server"].root_dir) / "tiny/channels/stable.json"
    pointer.write_bytes(canonical_bytes({**json.loads(pointer.read_bytes()), "version": "../../etc"}))
    assert_user_error(pull_v2(setup), "stable pointer", "corrupt")
    assert_untouched(setup)
