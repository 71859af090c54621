"""Issue #13, item 3: the Prefect form shows schedule and criterion as a choice of kinds, errors name the field,
and the checks the schema cannot express run at flow start in the form's words."""

from __future__ import annotations

import copy

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import ValidationError as SchemaError
from prefect.utilities.schema_tools.validation import validate as server_validate

from flows.checks import preflight
from flows.params import PipelineParams
from flows.pipeline import prune_and_export
from incop_core.imp.config import validate
from incop_core.criteria import CRITERIA
from incop_core.foundations.errors import ConfigError
from incop_core.pruning.schedules import SCHEDULES
from tests.support.flows import good_params

UNIONS = {"schedule": SCHEDULES, "criterion": CRITERIA}


@pytest.fixture(scope="module")
def schema() -> dict:
    return parameter_schema(prune_and_export).model_dump()


def _resolve(schema: dict, ref: str) -> dict:
    return schema["definitions"][ref.rsplit("/", 1)[-1]]


@pytest.mark.parametrize("field", sorted(UNIONS))
def test_union_is_an_anyof_of_titled_objects_each_with_its_kind(schema, field):
    union = _resolve(schema, "#/definitions/PruneConfig")["properties"][field]
    assert "oneOf" not in union and union["title"] and union["description"]
    members = [_resolve(schema, m["$ref"]) for m in union["anyOf"]]  # the UI labels a $ref member by its title
    kinds = [m["properties"]["kind"]["const"] for m in members]
    assert sorted(kinds) == UNIONS[field].names()
    assert all(m["properties"]["kind"]["readOnly"] for m in members)  # the tab sets it; the box under it is not edited
    assert all(kind in union["description"] for kind in kinds)  # the server's anyOf message cannot name them; this does
    titles = [m["title"] for m in members]
    assert len(set(titles)) == len(titles) and not any(t.endswith("Config") for t in titles)
    assert all(m["type"] == "object" and len(m["properties"]) >= 1 for m in members)


def test_default_form_values_and_a_kindless_section_pass_the_servers_schema(schema):
    params = PipelineParams().model_dump(mode="json")
    server_validate({"params": params}, schema, raise_on_error=True)
    params["run"]["prune"]["criterion"] = {"epsilon": 0.3}  # pydantic gives it the default kind
    server_validate({"params": params}, schema, raise_on_error=True)


def test_server_names_the_union_field_of_an_unknown_kind(schema):
    params = PipelineParams().model_dump(mode="json")
    params["run"]["prune"]["criterion"]["kind"] = "nope"
    with pytest.raises(SchemaError, match=r"field 'params\.run\.prune\.criterion'"):
        server_validate({"params": params}, schema, raise_on_error=True)


@pytest.mark.parametrize("criterion, expected", [
    ({"kind": "nope"},
     "params.run.prune.criterion: unknown criterion kind 'nope'; choose one of: accuracy, fixed-epochs"),
    ({"kind": "incop", "epsilon": 0}, "params.run.prune.criterion: epsilon should be greater than 0 or 'auto' (got 0"),
    ({"kind": "incop-if", "bogus": 1}, "params.run.prune.criterion: bogus is not a setting of this kind"),
], ids=["unknown-kind", "epsilon-zero", "unknown-setting"])
def test_flow_side_validation_names_the_field_once(criterion, expected):
    params = PipelineParams().model_dump(mode="json")
    params["run"]["prune"]["criterion"] = criterion
    with pytest.raises(ParameterTypeError) as caught:
        prune_and_export.validate_parameters({"params": params})
    message = str(caught.value)
    assert expected in message and message.count("\n - ") == 1
    assert "constrained-float" not in message and "literal[" not in message


def test_sap_orders_are_named_at_flow_start():
    params = PipelineParams().model_dump(mode="json")
    params["run"]["prune"]["schedule"] = {"kind": "sap", "p": 2, "q": 1}
    with pytest.raises(ParameterTypeError, match=r"params\.run\.prune\.schedule: schedule sap: SAP needs p < q"):
        prune_and_export.validate_parameters({"params": params})


def test_a_data_set_without_its_root_is_refused_naming_the_field_in_every_interface():
    with pytest.raises(ConfigError) as caught:
        validate({"data": {"name": "cifar10"}})
    message = str(caught.value)
    assert "data.root is empty" in message and "run.data.root" in message and "--data-root" in message
    assert validate({"data": {"name": "cifar10", "root": "/data/cifar"}}).data.root == "/data/cifar"


def test_preflight_passes_good_parameters(tmp_path):
    preflight(good_params(tmp_path))


def _problem(params: PipelineParams) -> str:
    with pytest.raises(ConfigError) as caught:
        preflight(params)
    return str(caught.value)


def test_preflight_names_sap_orders_and_the_publish_profile(tmp_path):
    params = good_params(tmp_path)
    params.run.prune.schedule.p = 3.0  # no assignment validation: a mutated model reaches the flow unchecked
    params.publish_profile = "throughput"
    message = _problem(params)
    assert "run.prune.schedule.p (3.0) must be below run.prune.schedule.q (1.0)" in message
    assert "publish_profile throughput is not among profiles" in message
    assert "--" not in message  # field names, not CLI flags


def test_preflight_names_a_missing_data_directory_and_signing_key(tmp_path):
    params = good_params(tmp_path)
    params.run = validate({"data": {"name": "mnist", "root": str(tmp_path / "nowhere")}})
    params.signing_key = str(tmp_path / "missing.key")
    message = _problem(params)
    assert f"run.data.root {tmp_path / 'nowhere'} is not a directory" in message
    assert f"signing_key {tmp_path / 'missing.key'} is not a readable file" in message


def test_preflight_names_unwritable_output_directories(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    params = good_params(tmp_path)
    params.runs_dir, params.registry = str(blocker / "runs"), str(blocker / "registry")
    message = _problem(params)
    assert f"runs_dir {blocker / 'runs'} cannot be written" in message
    assert f"registry {blocker / 'registry'} cannot be written" in message
    params.registry = "s3://bucket/registry"  # a URL is its backend's business
    assert "registry" not in _problem(params)


def test_preflight_reports_every_problem_in_one_error(tmp_path):
    params = good_params(tmp_path)
    broken = copy.deepcopy(params)
    broken.signing_key, broken.publish_profile = str(tmp_path / "none.key"), "throughput"
    assert _problem(broken).count("; ") >= 1 and _problem(broken).startswith("the parameters cannot work: ")
