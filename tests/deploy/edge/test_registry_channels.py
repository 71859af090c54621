"""Release channels (issue 22, item 1), through the installed `incop` against `incop registry serve` on loopback:
stable and candidate followers, promote, rollback, and the channel pointers a device refuses (exit 2, one
sentence, DEST/current unchanged)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.support.bad_inputs import expect_user_error, incop_command, run_incop
from deploy.edge.manifest import canonical_bytes
from deploy.edge.pointers import channel_pointer
from deploy.edge.publish import promote, publish
from deploy.edge.signing import generate_keys, load_private_key, load_public_key, sign_manifest, verify_signed
from deploy.edge.store import Store
from tests.support.registry import tiny_onnx, tree_bytes

STABLE, CANDIDATE = "tiny/channels/stable.json", "tiny/channels/candidate.json"


@pytest.fixture
def served(tmp_path):
    """`incop registry serve DIR --port 0` in a child process: (registry directory, URL)."""
    root = tmp_path / "registry"
    root.mkdir()
    child = subprocess.Popen([*incop_command(), "registry", "serve", str(root), "--port", "0"],
                             stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("serving"), line
        yield root, line.split(" at ")[1].split()[0]
    finally:
        child.terminate()
        child.wait(10)


def ok(outcome, *mentions):
    code, stdout, stderr = outcome[:3]
    assert code == 0 and all(m in stdout for m in mentions), (code, stdout, stderr)
    return stdout


@pytest.fixture
def fleet(served, tmp_path):
    """Signed v1 on stable and a worse v2 on candidate; a stable follower (DEST/trusted.pub) runs v1."""
    root, url = served
    private, public = generate_keys(tmp_path / "keys")
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    for model, channel, accuracy in ((models[0], "stable", 0.9), (models[1], "candidate", 0.5)):
        ok(run_incop("publish", model, "--registry", root, "--name", "tiny", "--key", private, "--channel", channel,
                     "--metrics", json.dumps({"accuracy": accuracy})), f"channel {channel}")
    f = {"root": root, "url": url, "private": private, "public": public, "models": models, "tmp": tmp_path,
         "other": generate_keys(tmp_path / "other")[0], "stable": tmp_path / "stable"}
    f["stable"].mkdir()
    shutil.copy(public, f["stable"] / "trusted.pub")
    ok(pull(f, f["stable"]), "pulled tiny v1")
    return f


def pull(f, dest, *extra):
    return run_incop("pull", "--registry", f["url"], "--name", "tiny", "--dest", dest, "--retries", "0", *extra)


def incop_promote(f, version, *extra):
    return run_incop("promote", "tiny", version, "--registry", f["root"], "--key", f["private"], *extra)


def pointer(f, rel=STABLE) -> dict:
    return json.loads((f["root"] / rel).read_bytes())


def write_pointer(f, value: dict, key=None) -> None:
    signed = sign_manifest(value, load_private_key(key)) if key is not None else value
    (f["root"] / STABLE).write_bytes(canonical_bytes(signed))


def runs(dest, version):
    assert os.readlink(dest / "current") == f"versions/{version}"


def test_stable_keeps_v1_candidate_gets_v2_and_promote_moves_stable(fleet):
    f = fleet
    ok(pull(f, f["stable"]), "already current: tiny v1")
    ok(pull(f, f["tmp"] / "canary", "--channel", "candidate", "--public-key", f["public"]), "pulled tiny v2")
    assert ok(run_incop("registry", "list", f["root"])).strip() == "tiny: 1 2* (channels: candidate=2, stable=1)"
    ok(incop_promote(f, "2", "--channel", "stable"), "promoted: channel stable of tiny -> v2", "(signed")
    moved = pointer(f)
    verify_signed(moved, load_public_key(f["public"]), "the stable pointer")
    assert (moved["name"], moved["channel"], moved["version"], "rollback" in moved) == ("tiny", "stable", "2", False)
    ok(pull(f, f["stable"]), "pulled tiny v2")
    assert (f["stable"] / "current/model.onnx").read_bytes() == f["models"][1].read_bytes()


def _edited(f):
    write_pointer(f, {**pointer(f), "version": "2"})


def _resigned_by_another_key(f):
    write_pointer(f, {**pointer(f), "version": "2"}, f["other"])


def _candidate_copied_over_stable(f):
    shutil.copy(f["root"] / CANDIDATE, f["root"] / STABLE)


def _expired(f):
    ok(run_incop("registry", "refresh", f["root"], "--name", "tiny", "--channel", "stable", "--key", f["private"],
                 "--expires", "1"), "refreshed tiny v1 (channel stable)")
    time.sleep(1.2)


def _replayed_older(f):
    old = (f["root"] / STABLE).read_bytes()  # names v1
    ok(incop_promote(f, "2"), "promoted")
    ok(pull(f, f["stable"]), "pulled tiny v2")
    (f["root"] / STABLE).write_bytes(old)


REFUSED = {"edited": (_edited, "changed after it was signed"),
           "re-signed by another key": (_resigned_by_another_key, "does not match the configured public key"),
           "candidate.json copied over stable.json": (_candidate_copied_over_stable, "on channel candidate, not"),
           "expired": (_expired, "expired at"),
           "replayed older": (_replayed_older, "it is a replay")}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_channel_pointer_that_is_not_the_publishers_latest_word_is_refused(fleet, case):
    tamper, mention = REFUSED[case]
    tamper(fleet)
    current = os.readlink(fleet["stable"] / "current")
    before = tree_bytes(fleet["stable"] / "current")
    expect_user_error(pull(fleet, fleet["stable"]), "stable pointer of tiny", mention)
    assert os.readlink(fleet["stable"] / "current") == current and tree_bytes(fleet["stable"] / "current") == before


def test_moving_stable_back_needs_rollback_and_the_device_follows_a_signed_rollback(fleet):
    f = fleet
    ok(incop_promote(f, "2"), "promoted")
    ok(pull(f, f["stable"]), "pulled tiny v2")
    before = (f["root"] / STABLE).read_bytes()
    expect_user_error(incop_promote(f, "1"), "names v2, which is newer than v1", "--rollback")
    assert (f["root"] / STABLE).read_bytes() == before
    store = Store(str(f["root"]))
    stored = (f["root"] / "tiny/versions/1/manifest.json").read_bytes()
    write_pointer(f, channel_pointer(store.manifest("tiny", "1"), stored, "stable"), f["private"])
    expect_user_error(pull(f, f["stable"]), "older than v2", "--allow-downgrade")  # signed, but no rollback
    runs(f["stable"], "2")
    ok(incop_promote(f, "1", "--rollback"), "rolled back: channel stable of tiny -> v1")
    assert pointer(f)["rollback"] is True
    ok(pull(f, f["stable"]), "pulled tiny v1")
    assert (f["stable"] / "current/model.onnx").read_bytes() == f["models"][0].read_bytes()
    ok(incop_promote(f, "2"), "promoted")  # forward again: no flag needed, and none written
    assert "rollback" not in pointer(f)
    ok(pull(f, f["stable"]), "pulled tiny v2")


def test_a_missing_channel_names_promote_and_bad_promotes_are_one_sentence(fleet):
    f = fleet
    expect_user_error(pull(f, f["stable"], "--channel", "beta"), "no channel beta",
                      "incop promote tiny VERSION --channel beta")
    expect_user_error(run_incop("pull", "--registry", f["url"], "--name", "nope", "--dest", f["stable"]),
                      "no model named nope")
    expect_user_error(pull(f, f["stable"], "--channel", "../x"), "channel name '../x'")
    expect_user_error(incop_promote(f, "9"), "no version 9", "incop registry list")
    expect_user_error(incop_promote(f, "2", "--channel", "../x"), "channel name")
    expect_user_error(run_incop("promote", "tiny", "2", "--registry", f["root"], "--key", f["other"]),
                      "does not verify with the public half")
    expect_user_error(run_incop("promote", "tiny", "2", "--registry", f["root"]), "is signed", "--key")
    expect_user_error(run_incop("registry", "refresh", f["root"], "--name", "tiny", "--channel", "beta", "--key",
                                f["private"]), "no channel beta", "incop promote")
    assert pointer(f)["version"] == "1"
    runs(f["stable"], "1")


def test_unsigned_channels_are_followed_without_a_key(served, tmp_path):
    root, url = served
    models = [tiny_onnx(tmp_path / f"m{i}.onnx", seed=i) for i in range(2)]
    assert publish(str(root), "tiny", models[0])["version"] == "1"
    assert publish(str(root), "tiny", models[1], channel="candidate")["version"] == "2"
    f = {"url": url, "root": root}
    assert (pointer(f)["version"], pointer(f, CANDIDATE)["version"]) == ("1", "2")
    assert "signature" not in pointer(f) and (root / "tiny/latest").read_text().strip() == "2"  # old devices
    ok(pull(f, tmp_path / "dev"), "pulled tiny v1")
    ok(pull(f, tmp_path / "canary", "--channel", "candidate"), "pulled tiny v2")
    ok(pull(f, tmp_path / "pinned", "--version", "2"), "pulled tiny v2")  # an explicit version ignores channels
    moved = promote(str(root), "tiny", "2")
    assert (moved["channel"], moved["version"], "signature" in moved) == ("stable", "2", False)
    ok(pull(f, tmp_path / "dev"), "pulled tiny v2")
