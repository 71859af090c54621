"""One guard for the whole CLI: an expected failure is one sentence naming the fix and exit 2, a bug keeps its
traceback.

/sys/... is the path nobody may write, root included (EPERM, EACCES or EROFS depending on the machine): tests run as
root in CI, where chmod'ed folders stay writable."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from pydantic import BaseModel

from tests.support.bad_inputs import expect_user_error, run_incop
from incop_core.imp import paths
from incop_core.cli.guard import guarded
from incop_core.imp.config import validate
from incop_core.foundations.errors import ConfigError, explain
from incop_core.imp.runner import run_pruning
from tests.support.cli import assert_user_error, invoke
from tests.support.data import make_idx
from tests.support.registry import tiny_onnx

UNWRITABLE = "/sys/incop-test-out"
TINY_RUN = {"data": {"name": "synthetic", "synthetic_size": 64, "image_size": 16}, "model": {"width": 8},
            "finetune_epochs": 1, "prune": {"iterations": 1, "max_epochs": 1, "probe_size": 32, "probe_batch": 16,
                                            "criterion": {"kind": "fixed-epochs"}}}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    return run_pruning(validate(TINY_RUN), tmp_path_factory.mktemp("runs"))


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    import shutil

    run = tmp_path / "runs" / finished_run.name
    shutil.copytree(finished_run, run)
    return run


@pytest.fixture
def a_file(tmp_path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return path


# -- the mapping ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bug", [ZeroDivisionError("division by zero"), AttributeError("'NoneType' has no attribute"),
                                 RuntimeError("CUDA error: device-side assert"), KeyError("model"), TypeError("bad"),
                                 OSError("no errno"), ImportError("No module named 'nope'"), ValueError("bad value")])
def test_a_bug_is_not_explained_and_keeps_its_traceback(bug):
    assert explain(bug) is None

    def body():
        raise bug

    with pytest.raises(type(bug)):
        guarded(body)


def test_a_bug_through_the_cli_still_shows_its_traceback(monkeypatch, tmp_path):
    import incop_core.imp.rundir

    monkeypatch.setattr(incop_core.imp.rundir, "list_runs", lambda root: 1 / 0)
    code, _, _, exception = invoke("runs", "--runs-dir", tmp_path)
    assert code == 1 and isinstance(exception, ZeroDivisionError)


def test_user_errors_and_exits_pass_through():
    assert explain(ConfigError("fix it")) == "fix it"

    def exits():
        raise typer.Exit(3)

    with pytest.raises(typer.Exit):
        guarded(exits)


@pytest.mark.parametrize("code, words", [
    (errno.EACCES, ["cannot write /out/x", "permission denied", "choose a writable --out"]),
    (errno.EPERM, ["cannot write /out/x", "choose a writable --out"]),
    (errno.EROFS, ["cannot write /out/x", "read-only file system", "choose a writable --out"]),
    (errno.ENOSPC, ["cannot write /out/x", "disk is full", "free space"]),
    (errno.ENOENT, ["cannot create /out/x", "choose a writable --out"]),
    (errno.EEXIST, ["/out/x already exists", "choose another --out"]),
    (errno.EISDIR, ["/out/x is a directory", "pass a file path"]),
    (errno.ENAMETOOLONG, ["too long", "use a shorter path"]),
])
def test_os_errors_under_an_output_option_name_the_path_and_the_option(code, words):
    sentence = explain(OSError(code, "strerror", "/out/x"), {"--out": Path("/out"), "--dest": None})
    for word in words:
        assert word in sentence


def test_os_errors_elsewhere_name_the_path(a_file):
    assert explain(PermissionError(errno.EACCES, "Permission denied", "/etc/x")).startswith("cannot access /etc/x")
    assert "does not exist; check the path" in explain(FileNotFoundError(errno.ENOENT, "No such file", "/nope"))
    below = a_file / "sub" / "x.json"
    for exc in (NotADirectoryError(errno.ENOTDIR, "Not a directory", str(below)),
                FileExistsError(errno.EEXIST, "File exists", str(a_file))):
        assert explain(exc, {"--dest": a_file}) == (f"{a_file} is a file where a directory is needed; "
                                                    "choose another --dest or move the file away")
    assert "choose another --port" in explain(OSError(errno.EADDRINUSE, "Address already in use"))
    assert explain(OSError(errno.EIO, "I/O error", "/x")) is None


def test_json_pydantic_onnxruntime_and_fsspec_errors_are_explained(tmp_path):
    import fsspec
    import onnxruntime

    class Model(BaseModel):
        n: int

    with pytest.raises(Exception) as pydantic_error:
        Model.model_validate({"n": "many"})
    with pytest.raises(json.JSONDecodeError) as json_error:
        json.loads("{bad")
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    with pytest.raises(Exception) as ort_error:
        onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    with pytest.raises(ValueError) as protocol_error:
        fsspec.core.url_to_fs("nosuchprotocol://bucket/x")
    missing = ImportError("Install s3fs to access S3")
    assert "onnxruntime cannot load the model" in explain(ort_error.value)
    assert "JSON file is corrupt" in explain(json_error.value)
    assert "does not match" in explain(pydantic_error.value)
    assert "unknown storage URL" in explain(protocol_error.value)
    assert "install it with pip" in explain(missing)


def test_the_guard_never_imports_onnxruntime_or_torch():
    script = ("import sys; from incop_core.foundations.errors import explain; explain(ValueError('x')); "
              "print(sorted(m for m in ('onnxruntime', 'torch', 'pydantic') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "[]", done.stderr


# -- through the installed command (a subprocess, as a user runs it) -------------------------------------------------

def test_installed_prune_into_a_read_only_runs_dir():
    outcome = run_incop("prune", "--dataset", "synthetic", "--iterations", "1", "--finetune-epochs", "1",
                        "--set", "data.synthetic_size=32", "--set", "prune.probe_size=16", "--set", "model.width=4",
                        "--set", "data.image_size=8", "--runs-dir", UNWRITABLE)
    expect_user_error(outcome, UNWRITABLE, "choose a writable --runs-dir")


def test_installed_keys_generate_into_a_file(a_file):
    expect_user_error(run_incop("keys", "generate", "--out", a_file), str(a_file), "--out")


def test_installed_report_of_a_corrupt_record(run_copy):
    (paths.iteration_dir(run_copy, 1) / paths.RECORD).write_text("{not json")
    expect_user_error(run_incop("report", run_copy), "record.json", "corrupt",
                      f"delete {paths.iteration_dir(run_copy, 1)}")


def test_installed_publish_with_long_inline_metrics(tmp_path):
    model, registry = tiny_onnx(tmp_path / "m.onnx"), tmp_path / "registry"
    metrics = json.dumps({"note": "x" * 400})
    done = run_incop("publish", model, "--registry", registry, "--name", "tiny", "--metrics", metrics)
    assert done[0] == 0, done[2]
    expect_user_error(run_incop("publish", model, "--registry", registry, "--name", "tiny", "--metrics", "y" * 400),
                      "--metrics")


def test_installed_prune_refuses_labels_the_data_set_does_not_declare(tmp_path):
    root = tmp_path / "idx"
    make_idx(root, bad_label=255)
    outcome = run_incop("prune", "--dataset", "fashion-mnist", "--data-root", root, "--iterations", "1",
                        "--runs-dir", tmp_path / "runs")
    expect_user_error(outcome, "train-labels-idx1-ubyte.gz", "label 255", "10 classes")
    assert not (tmp_path / "runs").exists()


# -- every writing command with an unwritable or file output (in-process) -----------------------------------------

TINY = ["--dataset", "synthetic", "--iterations", "1", "--max-epochs", "1", "--finetune-epochs", "1",
        "--set", "data.synthetic_size=32", "--set", "prune.probe_size=16", "--set", "model.width=4",
        "--set", "data.image_size=8"]


@pytest.mark.parametrize("flag", ["--runs-dir", "--run-dir"])
def test_prune_output_is_a_file(a_file, flag):
    assert_user_error(invoke("prune", *TINY, flag, a_file), str(a_file), f"choose another {flag}")


def test_prune_on_a_full_disk(monkeypatch, tmp_path):
    import incop_core.imp.rundir

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(incop_core.imp.rundir, "write_json_atomic", full)
    assert_user_error(invoke("prune", *TINY, "--runs-dir", tmp_path / "runs"), "disk is full", "free space",
                      "--runs-dir")


def test_export_into_a_read_only_or_file_out(finished_run, a_file):
    assert_user_error(invoke("export", finished_run, "--out", UNWRITABLE), UNWRITABLE, "choose a writable --out")
    assert_user_error(invoke("export", finished_run, "--out", a_file), str(a_file), "choose another --out")


def test_bench_out_is_a_file_or_read_only(tmp_path, a_file):
    model, quick = tiny_onnx(tmp_path / "dense.onnx"), ["--rounds", "1", "--per-round", "1", "--warmup", "0"]
    assert_user_error(invoke("bench", model, *quick, "--out", a_file), str(a_file), "choose another --out")
    assert_user_error(invoke("bench", model, *quick, "--out", UNWRITABLE), UNWRITABLE, "choose a writable --out")


def test_keys_generate_into_a_read_only_folder():
    assert_user_error(invoke("keys", "generate", "--out", UNWRITABLE), UNWRITABLE, "choose a writable --out")


def test_publish_and_pull_into_a_file_or_read_only_folder(tmp_path, a_file):
    model = tiny_onnx(tmp_path / "m.onnx")
    assert_user_error(invoke("publish", model, "--registry", a_file, "--name", "tiny"), str(a_file))
    assert_user_error(invoke("publish", model, "--registry", UNWRITABLE, "--name", "tiny"), UNWRITABLE)
    registry = tmp_path / "registry"
    assert invoke("publish", model, "--registry", registry, "--name", "tiny")[0] == 0
    assert_user_error(invoke("pull", "--registry", registry, "--name", "tiny", "--dest", a_file), str(a_file))
    assert_user_error(invoke("pull", "--registry", registry, "--name", "tiny", "--dest", UNWRITABLE), UNWRITABLE)


def test_registry_list_of_a_file_or_unknown_protocol(a_file):
    assert_user_error(invoke("registry", "list", a_file), str(a_file), "not a directory")
    assert_user_error(invoke("registry", "list", "nosuchprotocol://x"), "nosuchprotocol")


def test_compare_and_pipeline_name_their_output_option(monkeypatch, tmp_path):
    import flows.cli
    import incop_core.experiments.compare

    def denied(folder):
        def raise_(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / "comparison.json"))
        return raise_

    out = tmp_path / "cmp"
    monkeypatch.setattr(incop_core.experiments.compare, "run_compare", denied(out))
    monkeypatch.setattr(flows.cli, "_local_only", lambda: None)
    assert_user_error(invoke("compare", "--dataset", "synthetic", "--out", out), str(out), "choose a writable --out")
    monkeypatch.setattr(flows.cli, "_run_flow", denied(tmp_path / "pipe-runs"))
    assert_user_error(invoke("pipeline", "--set", f"runs_dir={tmp_path / 'pipe-runs'}"), "choose a writable runs_dir")


def test_metrics_too_long_to_be_a_file_name_is_read_as_inline_json(tmp_path):
    from deploy.edge.cli_options import json_option

    assert json_option(json.dumps({"k": "v" * 300}), "--metrics") == {"k": "v" * 300}
    assert json_option('  {"a": 1}', "--metrics") == {"a": 1}
    spec = tmp_path / "spec.json"
    spec.write_text('{"mean": 0.5}')
    assert json_option(str(spec), "--input-spec") == {"mean": 0.5}


# -- damaged runs ----------------------------------------------------------------------------------------------------

def test_corrupt_config_json(run_copy):
    (run_copy / paths.CONFIG).write_text("{not json")
    assert_user_error(invoke("export", run_copy), str(run_copy / paths.CONFIG), "corrupt")
    code, stdout, stderr, _ = invoke("runs", "--runs-dir", run_copy.parent)
    assert code == 0 and "damag" in stdout  # the table may shorten the state column
    assert "warning:" in stderr and f"remove {run_copy}" in " ".join(stderr.split())
    outcome = invoke("prune", "--config", json_file(run_copy.parent.parent, TINY_RUN), "--runs-dir", run_copy.parent)
    assert_user_error(outcome, str(run_copy / paths.CONFIG), "remove")


def test_corrupt_or_incomplete_record_json(run_copy):
    record = paths.iteration_dir(run_copy, 1) / paths.RECORD
    for damage in ("{not json", json.dumps({"iteration": 1})):
        record.write_text(damage)
        assert_user_error(invoke("report", run_copy.name, "--runs-dir", run_copy.parent), str(record), "delete")
        assert_user_error(invoke("export", run_copy), str(record), "delete")
        code, _, stderr, _ = invoke("runs", "--runs-dir", run_copy.parent)
        assert code == 0 and str(record) in "".join(stderr.split())
    config = json_file(run_copy.parent.parent, TINY_RUN)
    assert_user_error(invoke("prune", "--config", config, "--runs-dir", run_copy.parent), str(record))
    import shutil

    shutil.rmtree(paths.iteration_dir(run_copy, 1))  # the fix the sentence names: delete it and re-run
    code, _, stderr, exception = invoke("prune", "--config", config, "--runs-dir", run_copy.parent)
    assert code == 0, f"{exception!r} {stderr}"
    assert invoke("report", run_copy)[0] == 0


def test_absolute_run_paths(finished_run, tmp_path, a_file):
    code, stdout, _, exception = invoke("report", finished_run.absolute(), "--runs-dir", tmp_path / "elsewhere")
    assert code == 0, repr(exception)
    assert finished_run.name in stdout
    for not_a_run in (tmp_path, a_file):
        assert_user_error(invoke("report", not_a_run.absolute()), str(not_a_run), "not a run directory")
        assert_user_error(invoke("export", not_a_run.absolute()), str(not_a_run), "not a run directory")
    assert_user_error(invoke("export", tmp_path / "missing"), "incop runs")


# -- config files ------------------------------------------------------------------------------------------------------

def json_file(folder: Path, raw: dict) -> Path:
    path = folder / "config.json"
    path.write_text(json.dumps(raw))
    return path
