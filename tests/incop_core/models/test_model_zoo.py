"""The model zoo and the user's own `package.module:factory` model: builds, shapes, state-dict keys, one-sentence
errors."""

import sys
import textwrap

import pytest
import torch
from torch import nn

from pydantic import ValidationError

from incop_core.imp.config import validate
from incop_core.foundations.errors import ConfigError
from incop_core.models.zoo import KNOWN_MODELS, ModelConfig, build_model
from incop_core.models.relus import distinct_relus
from incop_core.foundations.hashdump import hashed_dump

TINY = "tests.support.custom_model:tiny_net"
BROKEN = '''
import torch
from torch import nn
from tests.support.custom_model import TinyNet

CONSTANT = 3

def returns_int(): return 3
def raises(): raise RuntimeError("no GPU here")
def three_channels(num_classes): return TinyNet(3, num_classes)
def three_classes(in_channels): return TinyNet(in_channels, 3)
def flat_only(in_channels, num_classes): return nn.Sequential(nn.Flatten(), nn.Linear(5, num_classes))
'''


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory):
    """A module `zoo_broken` of factories that go wrong in every way build_model reports."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "zoo_broken.py").write_text(textwrap.dedent(BROKEN))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(folder))
        yield "zoo_broken"
        sys.modules.pop("zoo_broken", None)


@pytest.mark.parametrize("shape, classes", [((1, 28, 28), 10), ((3, 32, 32), 4)], ids=["28x28x1", "32x32x3"])
@pytest.mark.parametrize("name", KNOWN_MODELS)
def test_every_zoo_model_builds_for_the_input_and_classes(name, shape, classes):
    model = build_model(ModelConfig(name=name), shape, classes).eval()
    with torch.no_grad():
        assert model(torch.randn(2, *shape)).shape == (2, classes)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.in_channels == shape[0] and first.stride == (1, 1)  # small inputs: a stride-1 stem


def _old_resnet18(channels, size, num_classes):
    """resnet18 adapted as before the zoo grew (a 3x3 stride-1 stem and no max pool on small inputs)."""
    from torchvision.models import resnet18

    model = resnet18(weights=None)
    if size < 64:
        model.conv1, model.maxpool = nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.Identity()
    elif channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 7, 2, 3, bias=False)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return distinct_relus(model)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (1, 64, 64)])
def test_resnet18_state_dict_and_outputs_are_unchanged(shape):
    torch.manual_seed(0)
    new = build_model(ModelConfig(name="resnet18"), shape, 10).eval()
    torch.manual_seed(0)
    old = _old_resnet18(shape[0], shape[1], 10).eval()
    new_state, old_state = new.state_dict(), old.state_dict()
    assert list(new_state) == list(old_state)
    assert all(torch.equal(new_state[k], old_state[k]) for k in old_state)
    x = torch.randn(2, *shape)
    with torch.no_grad():
        assert torch.equal(new(x), old(x))


def test_custom_factory_gets_input_arguments_and_kwargs():
    model = build_model(validate({"model": {"name": TINY, "kwargs": {"width": 4}}}).model, (1, 28, 28), 10)
    assert (model.training and model.stem[0].in_channels == 1 and model.fc.out_features == 10
            and model.fc.in_features == 4)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_custom_weights_load_and_a_misfit_names_model_kwargs(tmp_path):
    cfg = ModelConfig(name=TINY, kwargs={"width": 4})
    path = tmp_path / "w.pt"
    torch.save(build_model(cfg, (3, 32, 32), 4).state_dict(), path)
    assert build_model(cfg.model_copy(update={"weights": str(path)}), (3, 32, 32), 4)
    with pytest.raises(ConfigError, match=r'does not fit tests.support.custom_model:tiny_net with model.kwargs '
                                          r'\{"width": 8\}.*same model.name, model.kwargs and data set'):
        build_model(ModelConfig(name=TINY, kwargs={"width": 8}, weights=str(path)), (3, 32, 32), 4)


def test_empty_kwargs_stay_out_of_the_hash_so_old_hashes_hold():
    assert "kwargs" not in hashed_dump(validate({"model": {"name": "resnet18"}}))["model"]
    factory = validate({"model": {"name": TINY, "kwargs": {"width": 4}}})
    assert factory.model.model_dump(mode="json")["kwargs"] == {"width": 4}
    assert validate(factory.model_dump(mode="json")).config_hash() == factory.config_hash()


FAILURES = {
    "import": ("zoo_missing_module:net", ["cannot import module zoo_missing_module", "No module named", "PYTHONPATH"]),
    "attribute": ("{m}:nothing_here", ["has no attribute nothing_here", "function or class"]),
    "not callable": ("{m}:CONSTANT", ["is an object of type int, not callable"]),
    "returns int": ("{m}:returns_int", ["returned an object of type int, not a torch nn.Module"]),
    "raises": ("{m}:raises", ["raised RuntimeError: no GPU here", "fix the factory or model.kwargs"]),
    "cannot run": ("{m}:three_channels",
                   ["cannot run on the data's input of shape (2, 1, 28, 28)", "1 input channels"]),
    "output shape": ("{m}:three_classes", ["gives (2, 3)", "not (2, 10)", "num_classes"]),
    "flat model": ("{m}:flat_only", ["cannot run on the data's input of shape (2, 1, 28, 28)"]),
}


@pytest.mark.parametrize("name, mentions", FAILURES.values(), ids=FAILURES.keys())
def test_a_bad_factory_is_one_sentence_naming_the_fix(broken_models, name, mentions):
    with pytest.raises(ConfigError) as caught:
        build_model(ModelConfig(name=name.format(m=broken_models)), (1, 28, 28), 10)
    message = str(caught.value)
    assert "\n" not in message and all(m in message for m in mentions), message


@pytest.mark.parametrize("name", ["nope", "tests.support.custom_model", "tests/support/custom_model.py:tiny_net",
                                  "a:b:c", ":f"])
def test_a_bad_name_is_rejected_with_the_known_names_and_the_factory_form(name):
    with pytest.raises(ConfigError) as caught:
        validate({"model": {"name": name}})
    message = str(caught.value)
    assert message.startswith("bad config value at model.name:") and repr(name) in message
    assert all(known in message for known in KNOWN_MODELS) and "'package.module:factory'" in message


def test_kwargs_on_a_zoo_model_are_refused():
    with pytest.raises(ConfigError, match="model.kwargs is only for a 'package.module:factory' model.name"):
        validate({"model": {"name": "resnet18", "kwargs": {"width": 4}}})


def test_the_pipeline_imports_a_factory_only_from_modules_the_worker_allows(monkeypatch):
    """A name typed into the Prefect UI must not import and call code on the worker (say subprocess:run)."""
    from flows.params import PipelineParams, default_run

    raw = {"run": {**default_run().model_dump(mode="json"),
                   "model": {"name": "subprocess:run", "kwargs": {"args": ["id"]}}}}
    monkeypatch.delenv("INCOP_MODEL_MODULES", raising=False)
    with pytest.raises(ValidationError, match="INCOP_MODEL_MODULES"):
        PipelineParams.model_validate(raw)
    monkeypatch.setenv("INCOP_MODEL_MODULES", "tests, mypkg")
    with pytest.raises(ValidationError, match="INCOP_MODEL_MODULES"):
        PipelineParams.model_validate(raw)
    raw["run"]["model"] = {"name": "tests.support.custom_model:tiny_net", "kwargs": {"width": 4}}
    assert PipelineParams.model_validate(raw).run.model.kwargs == {"width": 4}
