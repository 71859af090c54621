"""Attacks on a device's trust, run through the installed `incop` against a loopback registry server.

A local user who can write DEST plants links mid-download; a trust anchor that cannot be read must fail closed;
a registry or mirror that freezes or replays the signed channel pointer is refused; hostile JSON is refused
within bounds before anything else happens. Each attack ends in one sentence (exit 2) with `current` intact.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.support.bad_inputs import expect_user_error, incop_command, run_incop
from deploy.edge.publish import publish
from deploy.edge.signing import generate_keys
from tests.support.registry import tiny_onnx, tree_bytes

STABLE = "tiny/channels/stable.json"  # the pointer a device follows by default


@pytest.fixture
def device(server, tmp_path):
    """v1 is current on DEST; a victim directory outside DEST holds a file nobody may touch."""
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(3)]
    publish(str(server.root_dir), "tiny", models[0])
    dest = tmp_path / "dev"
    assert run_incop("pull", "--registry", server.url, "--name", "tiny", "--dest", dest)[0] == 0
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file.txt").write_text("precious\n")
    return {"server": server, "url": server.url, "dest": dest, "models": models, "victim": victim,
            "before": tree_bytes(dest / "current"), "tmp": tmp_path}


def pull(d, *extra, dest=None):
    return run_incop("pull", "--registry", d["url"], "--name", "tiny", "--dest", dest or d["dest"], "--retries", "0",
                     *extra)


def assert_untouched(d):
    assert os.readlink(d["dest"] / "current") == "versions/1"
    assert tree_bytes(d["dest"] / "current") == d["before"]
    assert sorted(p.name for p in d["victim"].iterdir()) == ["file.txt"]
    assert (d["victim"] / "file.txt").read_text() == "precious\n"


def _slow_two_file_entry(d) -> None:
    """v2 = a 1.5 MB first file (served 64 KiB per 0.15 s) and then the model."""
    big = d["tmp"] / "a.bin"
    big.write_bytes(os.urandom(1536 * 1024))
    publish(str(d["server"].root_dir), "tiny", {"a.bin": big, "model.onnx": d["models"][1]})
    d["server"].delay = 0.15


def _pull_while(d, plant) -> tuple[int, str, str]:
    """Start `incop pull` of the slow v2, call `plant` once its first file is being written, and wait."""
    part = d["dest"] / ".partial/2/a.bin"
    child = subprocess.Popen([*incop_command(), "pull", "--registry", d["url"], "--name", "tiny", "--dest",
                              str(d["dest"]), "--retries", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert part.exists(), "the download never started"
        plant()
        out, err = child.communicate(timeout=90)
    finally:
        child.kill()
        child.wait()
    return child.returncode, out, err


def test_a_file_link_planted_mid_download_is_refused_not_written_through(device):
    _slow_two_file_entry(device)
    link = device["dest"] / ".partial/2/model.onnx"
    outcome = _pull_while(device, lambda: link.symlink_to(device["victim"] / "file.txt"))
    expect_user_error(outcome, "symbolic link", "model.onnx")
    assert_untouched(device)


def test_a_staging_directory_swapped_for_a_link_mid_download_is_never_installed(device):
    _slow_two_file_entry(device)
    staged = device["dest"] / ".partial/2"

    def swap():
        staged.rename(staged.with_name("moved"))
        staged.symlink_to(device["victim"], target_is_directory=True)

    expect_user_error(_pull_while(device, swap), "symbolic link")
    assert_untouched(device)
    assert not (device["dest"] / "versions/2").exists()


@pytest.mark.parametrize("anchor", ["directory", "dangling link", "empty file"])
def test_a_trust_anchor_that_cannot_be_read_fails_closed(device, anchor):
    publish(str(device["server"].root_dir), "tiny", device["models"][1])  # an attacker's unsigned v2
    trusted = device["dest"] / "trusted.pub"
    if anchor == "directory":
        trusted.mkdir()
    elif anchor == "dangling link":
        trusted.symlink_to(device["tmp"] / "unmounted/incop.pub")
    else:
        trusted.write_bytes(b"")
    expect_user_error(pull(device), "trusted.pub" if anchor != "empty file" else "public key")
    assert_untouched(device)


def test_an_empty_public_key_variable_fails_closed(device):
    publish(str(device["server"].root_dir), "tiny", device["models"][1])
    expect_user_error(run_incop("pull", "--registry", device["url"], "--name", "tiny", "--dest", device["dest"],
                                env={"INCOP_PUBLIC_KEY": ""}), "INCOP_PUBLIC_KEY", "empty")
    assert_untouched(device)


@pytest.fixture
def signed(device):
    """Signed v2 published with a 3 s pointer expiry; DEST trusts the key (trusted.pub) and runs v1."""
    private, public = generate_keys(device["tmp"] / "keys")
    (device["dest"] / "trusted.pub").write_bytes(public.read_bytes())
    root = device["server"].root_dir
    publish(str(root), "tiny", device["models"][1], private_key=private, expires=3)
    return {**device, "private": private, "public": public, "root": root,
            "pointer_v2": (root / STABLE).read_bytes()}


def test_a_frozen_registry_is_refused_once_its_pointer_expires(signed):
    assert "pulled tiny v2" in pull(signed)[1]
    publish(str(signed["root"]), "tiny", signed["models"][2], private_key=signed["private"])  # v3 exists
    (signed["root"] / STABLE).write_bytes(signed["pointer_v2"])  # ... but the mirror keeps v2's pointer
    time.sleep(3.2)
    expect_user_error(pull(signed), "expired", "stale")
    assert os.readlink(signed["dest"] / "current") == "versions/2"


def test_a_replayed_older_pointer_is_refused_and_refresh_extends_a_pointer(signed):
    refreshed = run_incop("registry", "refresh", signed["root"], "--name", "tiny", "--channel", "stable", "--key",
                          signed["private"], "--expires", "1h")
    assert refreshed[0] == 0 and "refreshed tiny v2 (channel stable)" in refreshed[1], refreshed
    old = (signed["root"] / STABLE).read_bytes()  # v2's pointer, valid for an hour
    publish(str(signed["root"]), "tiny", signed["models"][2], private_key=signed["private"])
    assert "pulled tiny v3" in pull(signed)[1]
    (signed["root"] / STABLE).write_bytes(old)  # still valid, but issued before v3's
    expect_user_error(pull(signed, "--allow-downgrade"), "replay", "already accepted")
    assert os.readlink(signed["dest"] / "current") == "versions/3"
    publish(str(signed["root"]), "tiny", signed["models"][2], private_key=signed["private"])  # repairs the pointer
    refreshed = run_incop("registry", "refresh", signed["root"], "--name", "tiny", "--channel", "stable", "--key",
                          signed["private"], "--expires", "1h")
    assert refreshed[0] == 0 and "refreshed tiny v3 (channel stable)" in refreshed[1], refreshed
    assert "already current: tiny v3" in pull(signed)[1]


def test_a_fresh_device_refuses_an_old_expired_pointer(signed):
    time.sleep(3.2)
    fresh = signed["tmp"] / "fresh"
    fresh.mkdir()
    (fresh / "trusted.pub").write_bytes(signed["public"].read_bytes())
    expect_user_error(pull(signed, dest=fresh), "expired")
    assert not (fresh / "current").exists()


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


HOSTILE = {
    "model_file a list": ("manifest", lambda m: m.update(model_file=["model.onnx"])),
    "4000-deep stable.json": ("pointer", lambda _: _nested(4000)),
    "600-deep stable.json (within its size limit)": ("pointer", lambda _: _nested(600)),
    "400 kB nested manifest": ("manifest", lambda _: _nested(66_000)),
    "5000-digit integer": ("manifest", lambda m: m.update(opset=10 ** 5000)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_json_is_refused_within_bounds_before_verification(signed, case):
    where, change = HOSTILE[case]
    path = signed["root"] / (STABLE if where == "pointer" else "tiny/versions/2/manifest.json")
    original = json.loads(path.read_bytes())
    edited = change(original)
    data = edited if isinstance(edited, bytes) else _dump(original)
    path.write_bytes(data)
    for extra in [()] if where == "pointer" else [(), ("--version", "2")]:  # through the pointer, and without it
        sentence = expect_user_error(pull(signed, *extra))
        assert any(word in sentence for word in ("unusable", "corrupt", "does not match", "tampered", "larger")), \
            sentence
        assert_untouched(signed)


def _dump(obj) -> bytes:
    import sys

    sys.set_int_max_str_digits(0)
    try:
        return json.dumps(obj).encode()
    finally:
        sys.set_int_max_str_digits(4300)


def test_bad_publish_and_key_options_are_one_sentence(device):
    tmp, root = device["tmp"], device["server"].root_dir
    deep = tmp / "deep.json"
    deep.write_bytes(_nested(4000))
    for flag in ("--input-spec", "--metrics"):
        expect_user_error(run_incop("publish", device["models"][1], "--registry", root, "--name", "tiny", flag, deep),
                          flag, "nests deeper")
    expect_user_error(run_incop("publish", device["models"][1], "--registry", root, "--name", "tiny", "--file",
                                f"model.onnx={device['models'][2]}"), "--file model.onnx", "first argument")
    expect_user_error(run_incop("publish", device["models"][1], "--registry", root, "--name", "tiny", "--expires",
                                "soon"), "--expires")
    expect_user_error(run_incop("keys", "generate", "--out", tmp / "k", "--stem", "../escaped"), "stem")
    assert not (tmp / "escaped.key").exists() and not (tmp / "escaped.pub").exists()
    assert [p.name for p in (root / "tiny/versions").iterdir()] == ["1"]


def test_rollback_over_a_hostile_previous_manifest_is_one_sentence(device):
    publish(str(device["server"].root_dir), "tiny", device["models"][1])
    assert "pulled tiny v2" in pull(device)[1]
    (device["dest"] / "versions/1/manifest.json").write_bytes(_nested(4000))
    expect_user_error(run_incop("rollback", "--dest", device["dest"]), "no readable manifest", "--version 1")
    assert os.readlink(device["dest"] / "current") == "versions/2"


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://"])
def test_a_malformed_registry_url_is_one_sentence(tmp_path, url):
    expect_user_error(run_incop("pull", "--registry", url, "--name", "tiny", "--dest", tmp_path / "dev"),
                      "--registry")
    assert not (tmp_path / "dev").exists()
