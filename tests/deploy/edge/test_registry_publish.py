"""Publishing: the manifest's contents, versions, idempotence, signing, and atomicity across a crash."""

from __future__ import annotations

import json
import uuid

import pytest

from deploy.edge import publish as registry_publish
from deploy.edge.errors import RegistryError
from deploy.edge.manifest import SCHEMA_VERSION, content_id, sha256_file
from deploy.edge.publish import publish, publish_entry
from deploy.edge.pull import pull
from deploy.edge.signing import generate_keys, load_private_key, load_public_key, verify_manifest
from deploy.edge.store import Store
from tests.support.registry import tiny_onnx

METRICS = {"latency_ms": {"edge-1t": {"p50": 1.5, "p90": 1.9}}, "accuracy": 0.91, "sparsity": 0.8}


@pytest.fixture
def models(tmp_path):
    return [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(3)]


def test_manifest_holds_everything_a_device_needs(tmp_path, models):
    registry = tmp_path / "reg"
    spec = {"mean": 0.5, "std": 0.25, "labels": list("abcdefghij")}
    source = {"run": "883fe0c6", "config_hash": "883fe0c6aa"}
    manifest = publish(str(registry), "tiny", models[0], METRICS, spec, source)
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["version"] == "1"
    info = manifest["files"]["model.onnx"]
    assert info == {"sha256": sha256_file(models[0]), "size": models[0].stat().st_size,
                    "compressed_size": info["compressed_size"]}
    assert 0 < manifest["compressed_size"] == info["compressed_size"]
    assert manifest["metrics"] == METRICS and manifest["source"]["config_hash"] == "883fe0c6aa"
    spec = manifest["input_spec"]
    assert spec["shape"] == [1, 1, 8, 8] and spec["channels"] == 1 and spec["size"] == [8, 8]
    assert spec["mean"] == [0.5] and spec["std"] == [0.25] and spec["dtype"] == "float32"
    assert manifest["opset"] == 17 and manifest["min_onnxruntime"] == "1.12" and manifest["created"].endswith("+00:00")
    assert manifest["content_id"] == content_id(manifest)
    on_disk = json.loads((registry / "tiny/versions/1/manifest.json").read_text())
    assert on_disk == manifest and (registry / "tiny/latest").read_text().strip() == "1"
    assert (registry / "tiny/versions/1/model.onnx").read_bytes() == models[0].read_bytes()


def test_versions_count_up_and_identical_content_is_published_once(tmp_path, models):
    url = str(tmp_path / "reg")
    assert publish(url, "tiny", models[0])["version"] == "1"
    again, written = publish_entry(url, "tiny", models[0])
    assert again["version"] == "1" and not written
    assert publish(url, "tiny", models[1])["version"] == "2"
    assert publish(url, "tiny", models[1], metrics={"accuracy": 0.5})["version"] == "3"
    assert publish(url, "tiny", models[2], version="4.0.0-rc1")["version"] == "4.0.0-rc1"
    store = Store(url)
    assert store.versions("tiny") == ["1", "2", "3", "4.0.0-rc1"] and store.latest("tiny") == "4.0.0-rc1"
    assert publish(url, "tiny", models[0])["version"] == "4"  # the next integer after 3
    with pytest.raises(RegistryError, match="already published with different content"):
        publish(url, "tiny", models[1], version="1")
    assert publish_entry(url, "tiny", models[0], version="1")[1] is False


def test_publish_refuses_bad_names_and_inputs(tmp_path, models):
    url = str(tmp_path / "reg")
    for bad in ("../evil", "a/b", "", ".hidden"):
        with pytest.raises(RegistryError, match="model name"):
            publish(url, bad, models[0])
    with pytest.raises(RegistryError, match="unsafe file"):
        publish(url, "tiny", {"../model.onnx": models[0]})
    with pytest.raises(RegistryError, match="does not exist"):
        publish(url, "tiny", tmp_path / "missing.onnx")
    with pytest.raises(RegistryError, match="NaN"):
        publish(url, "tiny", models[0], metrics={"accuracy": float("nan")})
    with pytest.raises(RegistryError, match="not a readable ONNX"):
        publish(url, "tiny", _junk(tmp_path))
    assert not (tmp_path / "reg").exists()


def _junk(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    return path


def test_signed_manifest_verifies_and_records_its_key(tmp_path, models):
    private, public = generate_keys(tmp_path / "keys")
    manifest = publish(str(tmp_path / "reg"), "tiny", models[0], private_key=private)
    assert manifest["signature"]["alg"] == "ed25519"
    verify_manifest(manifest, load_public_key(public))
    assert (private.stat().st_mode & 0o777) == 0o600
    # Re-publishing the same content unsigned is a new entry: the signer is part of its identity.
    assert publish(str(tmp_path / "reg"), "tiny", models[0])["version"] == "2"
    assert "signature" not in Store(str(tmp_path / "reg")).manifest("tiny", "2")
    assert load_private_key(None) is None


def test_a_crash_before_the_manifest_leaves_the_previous_state(tmp_path, models, monkeypatch):
    url = str(tmp_path / "reg")
    publish(url, "tiny", models[0])
    real = Store.write_bytes

    def crash_on_manifest(self, rel, data):
        if rel.endswith("manifest.json"):
            raise KeyboardInterrupt("power cut")
        real(self, rel, data)

    monkeypatch.setattr(Store, "write_bytes", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        publish(url, "tiny", models[1])
    monkeypatch.undo()
    store = Store(url)
    assert store.versions("tiny") == ["1"] and store.latest("tiny") == "1"
    assert pull(url, "tiny", tmp_path / "dev")["version"] == "1"
    assert publish(url, "tiny", models[1])["version"] == "2"  # the half-written version is simply rewritten


def test_a_crash_before_the_pointer_is_repaired_by_publishing_again(tmp_path, models, monkeypatch):
    url = str(tmp_path / "reg")
    publish(url, "tiny", models[0])
    real = Store.write_bytes

    def crash_on_pointer(self, rel, data):
        if rel.endswith("/latest"):
            raise KeyboardInterrupt("power cut")
        real(self, rel, data)

    monkeypatch.setattr(Store, "write_bytes", crash_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        publish(url, "tiny", models[1])
    monkeypatch.undo()
    assert Store(url).latest("tiny") == "1"
    manifest, written = publish_entry(url, "tiny", models[1])
    assert (manifest["version"], written, Store(url).latest("tiny")) == ("2", False, "2")


def test_any_fsspec_url_works_as_a_registry(tmp_path, models):
    url = f"memory://{uuid.uuid4().hex}/registry"
    publish(url, "tiny", models[0])
    publish(url, "tiny", {"model.onnx": models[1], "labels.txt": _labels(tmp_path)})
    result = pull(url, "tiny", tmp_path / "dev")
    assert result["version"] == "2"
    assert (tmp_path / "dev/current/labels.txt").read_text() == "a\nb\n"
    assert registry_publish.Store(url).names() == ["tiny"]


def _labels(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("a\nb\n")
    return path
