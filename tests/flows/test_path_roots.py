"""Path parameters from the UI stay under the worker's configured roots (flows/roots.py), checked at flow start."""

import pytest

from flows.checks import preflight
from flows.roots import allowed_roots, outside_roots
from incop_core.foundations.errors import ConfigError
from tests.support.flows import good_params


def test_a_local_run_without_roots_may_use_any_path(tmp_path, monkeypatch):
    monkeypatch.delenv("INCOP_ALLOWED_ROOTS", raising=False)
    monkeypatch.delenv("INCOP_HOME", raising=False)
    params = good_params(tmp_path).model_copy(update={"runs_dir": "/tmp/elsewhere-runs"})
    assert allowed_roots(deployment_run=False) is None and outside_roots(params, False) is None


def test_a_deployment_run_stays_in_the_workers_directory_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("INCOP_ALLOWED_ROOTS", raising=False)
    monkeypatch.delenv("INCOP_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert outside_roots(good_params(tmp_path), deployment_run=True) is None
    params = good_params(tmp_path).model_copy(update={"registry": "/etc/incop-registry",
                                                      "signing_key": "/root/.ssh/id"})
    sentence = outside_roots(params, deployment_run=True)
    assert "registry /etc/incop-registry" in sentence and "signing_key /root/.ssh/id" in sentence
    assert "INCOP_ALLOWED_ROOTS" in sentence and str(tmp_path) in sentence


@pytest.mark.parametrize("field", ["runs_dir", "registry", "storage", "signing_key"])
def test_every_path_field_outside_the_configured_roots_is_refused_by_name(tmp_path, monkeypatch, field):
    monkeypatch.setenv("INCOP_ALLOWED_ROOTS", str(tmp_path / "allowed"))
    params = good_params(tmp_path).model_copy(update={"runs_dir": str(tmp_path / "allowed" / "runs"),
                                                      "registry": str(tmp_path / "allowed" / "registry")})
    assert outside_roots(params, deployment_run=False) is None
    with pytest.raises(ConfigError, match=f"{field} {tmp_path}/outside"):
        preflight(params.model_copy(update={field: str(tmp_path / "outside" / "x")}))


def test_data_root_and_weights_are_checked_too_and_a_link_out_of_a_root_is_outside(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    (allowed / "runs").mkdir(parents=True)
    (allowed / "escape").symlink_to(tmp_path / "secret", target_is_directory=True)
    monkeypatch.setenv("INCOP_HOME", str(allowed))
    params = good_params(tmp_path).model_copy(update={"runs_dir": str(allowed / "runs"),
                                                      "registry": str(allowed / "r")})
    run = params.run.model_copy(update={
        "data": params.run.data.model_copy(update={"root": str(allowed / "escape")}),
        "model": params.run.model.model_copy(update={"weights": "/var/lib/other.pt"})})
    sentence = outside_roots(params.model_copy(update={"run": run}), deployment_run=True)
    assert f"run.data.root {allowed / 'escape'}" in sentence and "run.model.weights /var/lib/other.pt" in sentence
