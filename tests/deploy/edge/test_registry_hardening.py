"""Registry hardening (issue #12, items 1-4): no silent downgrade, no symlink followed out of the device
directory, one publisher per name, and nothing published that onnxruntime cannot load or its spec misdescribes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.bad_inputs import expect_user_error, incop_command, run_incop
from deploy.edge import store as registry_store
from deploy.edge.errors import RegistryError
from deploy.edge.manifest import canonical_bytes, is_older, sha256_file, version_order
from deploy.edge.pointers import latest_pointer
from deploy.edge.publish import publish, publish_entry
from deploy.edge.signing import generate_keys, load_private_key, sign_manifest
from deploy.edge.store import Store
from tests.support.registry import assert_user_error, invoke, tiny_onnx, tree_bytes

STABLE = "tiny/channels/stable.json"  # the pointer a device follows by default


@pytest.fixture
def signed(server, tmp_path):
    """v1 and v2 published signed; the device verified both and runs v2; v1's signed stable pointer was kept."""
    private, public = generate_keys(tmp_path / "keys")
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    root, dest = server.root_dir, tmp_path / "dev"
    publish(str(root), "tiny", models[0], private_key=private)
    old_pointer = (root / STABLE).read_bytes()
    publish(str(root), "tiny", models[1], private_key=private)
    s = {"url": server.url, "root": root, "dest": dest, "private": private, "public": public, "models": models,
         "old_pointer": old_pointer}
    for version in ("1", "2"):
        assert pull_cmd(s, "--public-key", public, "--version", version)[0] == 0
    s["before"] = tree_bytes(dest / "current")
    return s


def pull_cmd(s, *extra, run=invoke):
    return run("pull", "--registry", s["url"], "--name", "tiny", "--dest", s["dest"], "--retries", "0", *extra)


def runs(s, version):
    assert os.readlink(s["dest"] / "current") == f"versions/{version}"
    if version == "2" and "before" in s:
        assert tree_bytes(s["dest"] / "current") == s["before"]


# 1. Freshness: a device never moves to an older version unless told to.

def test_downgrade_through_a_rewritten_pointer_is_refused_unless_allowed(signed):
    pointer = json.loads((signed["root"] / STABLE).read_bytes())  # followed unverified: this device has no key
    (signed["root"] / STABLE).write_bytes(canonical_bytes({**pointer, "version": "1"}))
    expect_user_error(pull_cmd(signed, run=run_incop), "v1", "older than v2", "--allow-downgrade")
    runs(signed, "2")
    code, stdout, _ = pull_cmd(signed, "--allow-downgrade")
    assert code == 0 and "pulled tiny v1" in stdout
    runs(signed, "1")


def test_with_a_key_the_plain_latest_is_ignored_and_an_older_version_needs_the_flag(signed):
    (signed["root"] / "tiny/latest").write_text("1\n")
    code, stdout, _ = pull_cmd(signed, "--public-key", signed["public"])
    assert code == 0 and "already current: tiny v2" in stdout
    shutil.copy(signed["public"], signed["dest"] / "trusted.pub")
    assert_user_error(pull_cmd(signed, "--version", "1"), "older than v2", "--allow-downgrade")
    runs(signed, "2")
    assert pull_cmd(signed, "--version", "1", "--allow-downgrade")[0] == 0
    runs(signed, "1")


def test_a_replayed_old_signed_pointer_is_refused(signed, monkeypatch):
    (signed["root"] / STABLE).write_bytes(signed["old_pointer"])
    monkeypatch.setenv("INCOP_PUBLIC_KEY", str(signed["public"]))
    assert_user_error(pull_cmd(signed), "v1", "older than v2", "--allow-downgrade")
    runs(signed, "2")


def _forge(signed, change, key=None):
    pointer = json.loads((signed["root"] / STABLE).read_bytes())
    change(pointer)
    if key is not None:
        pointer = sign_manifest(pointer, load_private_key(key))
    (signed["root"] / STABLE).write_bytes(canonical_bytes(pointer))


def test_an_unsigned_missing_or_forged_pointer_is_refused_when_a_key_is_configured(signed, tmp_path):
    other = generate_keys(tmp_path / "other")[0]
    forgeries = [(lambda p: p.pop("signature"), None, "not signed"),
                 (lambda p: p.update(version="1"), None, "changed after it was signed"),
                 (lambda p: p.update(version="1"), other, "does not match"),
                 (lambda p: p.update(manifest_sha256="0" * 64), signed["private"], "does not match the sha256")]
    for change, key, mention in forgeries:
        _forge(signed, change, key)
        assert_user_error(pull_cmd(signed, "--public-key", signed["public"]), mention)
        runs(signed, "2")
        publish_entry(str(signed["root"]), "tiny", signed["models"][1], private_key=signed["private"])  # repairs it
    (signed["root"] / STABLE).unlink()
    assert_user_error(pull_cmd(signed, "--public-key", signed["public"]), "no channel stable",
                      "incop promote tiny VERSION --channel stable")
    runs(signed, "2")


def test_republishing_identical_content_rewrites_both_pointers(signed, tmp_path):
    (signed["root"] / "tiny/latest.json").unlink()
    (signed["root"] / "tiny/latest").write_text("1\n")
    manifest, written = publish_entry(str(signed["root"]), "tiny", signed["models"][1], private_key=signed["private"])
    assert not written and Store(str(signed["root"])).latest("tiny") == "2"
    pointer = json.loads((signed["root"] / "tiny/latest.json").read_bytes())
    stored = (signed["root"] / "tiny/versions/2/manifest.json").read_bytes()
    fresh_pointer = latest_pointer(manifest, stored)
    times = ("issued", "expires")
    assert {k: v for k, v in pointer.items() if k not in ("signature", *times)} == \
        {k: v for k, v in fresh_pointer.items() if k not in times}
    fresh = {**signed, "dest": tmp_path / "fresh"}
    assert "pulled tiny v2" in pull_cmd(fresh, "--public-key", signed["public"])[1]


def test_older_means_created_first_then_version_order():
    def entry(version, created="2026-01-01T00:00:00+00:00"):
        return {"name": "t", "version": version, "created": created}

    assert version_order("2") < version_order("10") < version_order("10.1.0")
    assert version_order("1.2.0") < version_order("1.10.0")
    assert is_older(entry("2"), entry("10")) and not is_older(entry("10"), entry("2"))
    assert is_older(entry("9"), entry("1", "2026-01-02T00:00:00+00:00"))
    assert not is_older(entry("3"), entry("3"))


# 2. Symbolic links in the device directory are never followed out of it.

@pytest.fixture
def device(server, tmp_path):
    """v1 runs on the device, v2 is published; `outside` holds files no pull may touch."""
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    publish(str(server.root_dir), "tiny", models[0])
    s = {"url": server.url, "dest": tmp_path / "dev", "models": models, "outside": tmp_path / "outside"}
    assert pull_cmd(s)[0] == 0
    publish(str(server.root_dir), "tiny", models[1])
    (s["outside"] / "keep").mkdir(parents=True)
    (s["outside"] / "keep/victim.bin").write_bytes(b"precious")
    s["before"], s["outside_before"] = tree_bytes(s["dest"] / "current"), tree_bytes(s["outside"])
    return s


def refused_untouched(s, outcome, *mentions):
    expect_user_error(outcome, *mentions)
    assert os.readlink(s["dest"] / "current") == "versions/1"
    assert tree_bytes(s["dest"] / "current") == s["before"]
    assert tree_bytes(s["outside"]) == s["outside_before"]


def test_a_link_planted_in_partial_is_not_written_through(device):
    (device["dest"] / ".partial/2").mkdir(parents=True)
    os.symlink(device["outside"] / "keep/victim.bin", device["dest"] / ".partial/2/model.onnx")
    refused_untouched(device, pull_cmd(device, run=run_incop), ".partial/2/model.onnx is a symbolic link", "remove it")


def test_a_linked_partial_version_or_partial_directory_is_not_installed(device):
    staged = device["outside"] / "staged"
    staged.mkdir()
    shutil.copy(device["models"][1], staged / "model.onnx")
    device["outside_before"] = tree_bytes(device["outside"])
    (device["dest"] / ".partial").mkdir()
    os.symlink(staged, device["dest"] / ".partial/2")
    refused_untouched(device, pull_cmd(device), ".partial/2 is a symbolic link")
    assert not (device["dest"] / "versions/2").exists()
    shutil.rmtree(device["dest"] / ".partial")
    os.symlink(device["outside"], device["dest"] / ".partial")
    refused_untouched(device, pull_cmd(device), ".partial is a symbolic link")


def test_a_linked_versions_directory_is_never_pruned_through(device):
    real = device["outside"] / "versions"
    shutil.move(device["dest"] / "versions", real)
    (real / "unrelated").mkdir()
    (real / "unrelated/data.txt").write_text("not a model")
    os.symlink(real, device["dest"] / "versions")
    device["outside_before"] = tree_bytes(device["outside"])
    refused_untouched(device, pull_cmd(device), "versions is a symbolic link")


def test_pruning_unlinks_planted_links_without_following_them(device):
    os.symlink(device["outside"] / "keep", device["dest"] / "versions/7")
    assert pull_cmd(device)[0] == 0 and pull_cmd(device, "--version", "1", "--allow-downgrade")[0] == 0
    assert not os.path.lexists(device["dest"] / "versions/7")
    assert tree_bytes(device["outside"]) == device["outside_before"]


def test_current_pointing_outside_or_a_linked_lock_is_refused(device):
    (device["dest"] / "current").unlink()
    os.symlink(device["outside"] / "keep", device["dest"] / "current")
    expect_user_error(pull_cmd(device), "current is not a link to versions/<version>", "remove it")
    expect_user_error(invoke("rollback", "--dest", device["dest"]), "current is not a link")
    assert tree_bytes(device["outside"]) == device["outside_before"]
    (device["dest"] / "current").unlink()
    os.symlink("versions/1", device["dest"] / "current")
    (device["dest"] / ".lock").unlink()
    os.symlink(device["outside"] / "keep/victim.bin", device["dest"] / ".lock")
    refused_untouched(device, pull_cmd(device), ".lock is a symbolic link")


# 3. One publisher at a time per registry name.

def _cli_publish(model, registry):
    return subprocess.Popen([*incop_command(), "publish", str(model), "--registry", str(registry), "--name", "tiny"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_24_concurrent_publishes_each_get_their_own_version(tmp_path):
    registry = tmp_path / "reg"
    models = [tiny_onnx(tmp_path / f"m{i:02d}.onnx", seed=i) for i in range(24)]
    children = [_cli_publish(model, registry) for model in models[:3]]  # through the installed command
    with ThreadPoolExecutor(21) as pool:
        threaded = list(pool.map(lambda m: publish_entry(str(registry), "tiny", m)[0]["version"], models[3:]))
    from_cli = []
    for child in children:
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode == 0 and "published: tiny v" in stdout, stderr
        from_cli.append(stdout.split("published: tiny v")[1].split()[0])
    versions, store = from_cli + threaded, Store(str(registry))
    assert sorted(versions, key=int) == [str(v) for v in range(1, 25)]
    for model, version in zip(models, versions):
        assert store.manifest("tiny", version)["files"]["model.onnx"]["sha256"] == sha256_file(model)
    assert store.latest("tiny") == "24" and store.names() == ["tiny"]


def test_two_writers_on_an_fsspec_store_cannot_both_claim_a_version(tmp_path):
    claims, start = Store(f"memory://{uuid.uuid4().hex}/claims"), threading.Barrier(8)

    def claim(i):
        start.wait()
        return claims.create_bytes("tiny/versions/1/manifest.json", f"writer {i}".encode())

    with ThreadPoolExecutor(8) as pool:
        won = [i for i, ok in enumerate(pool.map(claim, range(8))) if ok]
    assert len(won) == 1 and claims.read_bytes("tiny/versions/1/manifest.json") == f"writer {won[0]}".encode()
    store = Store(f"memory://{uuid.uuid4().hex}/reg")
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        versions = list(pool.map(lambda m: publish_entry(store.url, "tiny", m)[0]["version"], models))
    assert sorted(versions, key=int) == [str(v) for v in range(1, 7)] and store.latest("tiny") == "6"
    assert all(store.manifest("tiny", v)["files"]["model.onnx"]["sha256"] == sha256_file(m)
               for m, v in zip(models, versions))


def test_a_held_lock_is_waited_for_and_a_stale_one_taken_over(tmp_path, monkeypatch):
    monkeypatch.setattr(registry_store, "LOCK_WAIT", 0.3)
    model, registry = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "reg"
    with Store(str(registry)).lock("tiny"):
        assert_user_error(invoke("publish", model, "--registry", registry, "--name", "tiny"),
                          "another publish of tiny", "wait")
    assert Store(str(registry)).versions("tiny") == []
    url = f"memory://{uuid.uuid4().hex}/reg"
    Store(url).write_bytes("tiny/.publish.lock", json.dumps({"token": "dead", "time": 0}).encode())
    assert publish(url, "tiny", model)["version"] == "1" and not Store(url).exists("tiny/.publish.lock")


# 4. Publish refuses what onnxruntime cannot load or what the input spec misdescribes, writing nothing.

def image_onnx(path, size=28, op="Flatten", batch=1):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(__import__("numpy").zeros((size * size, 10), "float32"), "w")
    nodes = [helper.make_node(op, ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    graph = helper.make_graph(nodes, "img", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                                           [batch, 1, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])], [weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_a_model_onnxruntime_cannot_load_is_refused(tmp_path):
    model = image_onnx(tmp_path / "odd.onnx", op="NoSuchOp")
    expect_user_error(run_incop("publish", model, "--registry", tmp_path / "reg", "--name", "odd"),
                      "onnxruntime cannot load", "export it again")
    assert not (tmp_path / "reg").exists()


def test_an_image_size_that_does_not_match_the_model_is_refused(tmp_path):
    model = image_onnx(tmp_path / "m28.onnx")
    outcome = invoke("publish", model, "--registry", tmp_path / "reg", "--name", "m", "--input-spec",
                     '{"size": [14, 14]}')
    assert_user_error(outcome, "size [14, 14]", "[1, 1, 28, 28]", "give size [28, 28]")
    assert_user_error(invoke("publish", model, "--registry", tmp_path / "reg", "--name", "m", "--input-spec",
                             '{"dtype": "object"}'), "dtype 'object'", "float32")
    assert not (tmp_path / "reg").exists()


@pytest.mark.parametrize("spec, mention", [
    ({"input_name": "x"}, "input_name 'x'"), ({"shape": [1, 1, 28]}, "shape"), ({"shape": [1, 1, 14, 14]}, "shape"),
    ({"dtype": "float16"}, "dtype float16"), ({"channels": 3, "mean": [0] * 3, "std": [1] * 3}, "channels 3"),
    ({"size": [28, None]}, "size"), ({"layout": "HWC"}, "layout")])
def test_input_specs_that_do_not_fit_the_graph_are_refused(tmp_path, spec, mention):
    with pytest.raises(RegistryError, match="input spec") as caught:
        publish(str(tmp_path / "reg"), "m", image_onnx(tmp_path / "m.onnx"), input_spec=spec)
    assert mention in str(caught.value) and not (tmp_path / "reg").exists()


def test_dynamic_dims_accept_any_size(tmp_path):
    model = image_onnx(tmp_path / "dyn.onnx", batch="batch")
    manifest = publish(str(tmp_path / "reg"), "m", model, input_spec={"shape": [8, 1, 28, 28]})
    assert manifest["input_spec"]["shape"] == [8, 1, 28, 28] and manifest["input_spec"]["size"] == [28, 28]
