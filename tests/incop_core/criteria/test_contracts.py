"""Contract tests over every registered schedule and criterion."""

import typing

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from incop_core.pruning import magnitude
from incop_core.criteria import CRITERIA, CriterionContext, EpochRecord, Verdict
from incop_core.consistency.distances import DISTANCES, Snapshot
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.foundations.plugins import Registry
from incop_core.pruning.schedules import SCHEDULES, PruneState


def _fields_documented(config: type[BaseModel]) -> bool:
    return all(f.description for n, f in config.model_fields.items() if n != "kind")


@pytest.mark.parametrize("name", SCHEDULES.names() + CRITERIA.names())
def test_every_plugin_config_has_its_kind_and_documented_fields(name):
    registry = SCHEDULES if name in SCHEDULES.names() else CRITERIA
    config = registry.config_for(name)
    assert typing.get_args(config.model_fields["kind"].annotation) == (name,)
    assert config().kind == name
    assert _fields_documented(config)


def _limit(weights, mask, scope, group):
    """How many a count for `group` may be at most: survivors of the group ("*") or of the layer."""
    if group == magnitude.ALL:
        return magnitude.survivors(weights, mask, scope)[group].numel()
    keep = mask.tensors[group]
    return int(magnitude.alive_filters(keep).sum()) if scope in magnitude.STRUCTURED else int(keep.sum())


@pytest.mark.parametrize("name", SCHEDULES.names())
@pytest.mark.parametrize("scope", magnitude.SCOPES)
def test_schedule_counts_are_within_survivors_and_prune_shrinks_the_mask(name, scope):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    images = torch.randn(32, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    probe = lambda: [(images[i:i + 16], torch.zeros(16, dtype=torch.long)) for i in (0, 16)]  # noqa: E731
    weights = {n: w.detach() for n, w in prunable_weights(model).items()}
    mask = Mask.dense(model)
    groups = channel_groups(model, images[:2]) if scope == "group" else None
    for t in (1, 2, 3):
        state = PruneState(weights, mask, scope, t, model, probe, groups)
        counts = SCHEDULES.build(SCHEDULES.config_for(name)()).prune_counts(state)
        assert counts and all(0 <= c <= _limit(weights, mask, scope, g) for g, c in counts.items())
        new = magnitude.prune(weights, mask, counts, scope, groups)
        assert new.is_subset_of(mask) and new.remaining_total() <= mask.remaining_total()
        if scope == "global":  # random weights are never flat enough for a schedule to prune nothing
            assert new.remaining_total() < mask.remaining_total()
        mask = new
        with torch.no_grad():
            for n, w in prunable_weights(model).items():
                w.mul_(mask.tensors[n])


FAR = {"if": np.full(3, 5.0), "gf": np.full(4, 50.0), "if-stream": np.full(3, 5.0), "gf-stream": np.full(4, 50.0)}
ZERO_STREAM = {"if": np.zeros(3), "gf": np.zeros(4)}


def _record(epoch, val_acc, model):
    return EpochRecord(epoch, val_acc, 1.0, model, Mask.dense(model), ZERO_STREAM)


def _snapshot(classes, seed=0):
    """A snapshot whose top-1 classes are `classes` (with features and gradients for every distance)."""
    logits = torch.nn.functional.one_hot(torch.tensor(classes), 4).float() * 5
    features = [logits @ torch.randn(4, 3, generator=torch.Generator().manual_seed(seed + k)) for k in range(3)]
    return Snapshot(logits, features, 1.0 + np.array(classes[:4], dtype=float))


DENSE = _snapshot([0, 1, 2, 3] * 4)


def _context(measured, noise=None):
    """A context whose probe measurement always returns `measured` (a Snapshot)."""
    measure = lambda signal, m, k: np.zeros_like(FAR[signal])  # noqa: E731
    return CriterionContext(0.9, FAR, measure, {}, lambda model, mask, needs: measured, DENSE, noise or {},
                            probe_size=len(DENSE.logits))


FAR_SNAPSHOT = _snapshot([1, 2, 3, 0] * 4, seed=10)


@pytest.mark.parametrize("name", CRITERIA.names())
def test_criterion_answers_a_verdict_and_never_stops_before_it_should(name):
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    context = _context(FAR_SNAPSHOT, {n: 0.05 for n in DISTANCES.names()})
    criterion = CRITERIA.build(CRITERIA.config_for(name)(), context)
    verdict = criterion.check(_record(1, 0.5, model))
    assert isinstance(verdict, Verdict) and not verdict.stop  # far flow, low accuracy: go on
    if name != "fixed-epochs":
        assert criterion.check(_record(2, 0.95, model)).reason == "accuracy"


@pytest.mark.parametrize("name", ["incop-if", "incop-gf"])
@pytest.mark.parametrize("estimator", ["stream", "probe"])
def test_flow_criteria_stop_on_consistent_flow_with_either_estimator(name, estimator):
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    measure = lambda signal, m, k: np.zeros_like(FAR[signal])  # noqa: E731
    config = CRITERIA.config_for(name)(estimator=estimator)
    far = CRITERIA.build(config, CriterionContext(0.9, FAR, measure)).check(_record(1, 0.5, model))
    assert not far.stop and far.distance > 0
    near = {k: np.zeros_like(v) for k, v in FAR.items()}
    verdict = CRITERIA.build(config, CriterionContext(0.9, near, measure)).check(_record(1, 0.5, model))
    assert verdict.reason == "flow" and verdict.distance == 0


def test_auto_epsilon_comes_from_the_context():
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    config = CRITERIA.config_for("incop-if")(epsilon="auto")
    context = CriterionContext(0.9, {"if-stream": np.full(3, 0.1)}, None, {"if-stream": 0.2})
    criterion = CRITERIA.build(config, context)
    assert criterion.epsilon == 0.2
    assert criterion.check(_record(1, 0.5, model)).reason == "flow"  # distance 0.173 < 0.2


def test_non_finite_flow_is_never_consistent():
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    measure = lambda signal, m, k: np.array([np.nan, 0.0, 0.0])  # noqa: E731
    config = CRITERIA.config_for("incop-if")(estimator="probe")
    criterion = CRITERIA.build(config, CriterionContext(0.9, {"if": np.zeros(3)}, measure))
    assert not criterion.check(EpochRecord(1, 0.5, 1.0, model, Mask.dense(model))).stop


def test_check_every_skips_epochs_between_checks():
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    calls = []
    measure = lambda signal, m, k: calls.append(1) or np.ones(3)  # noqa: E731
    config = CRITERIA.config_for("incop-if")(check_every=3, estimator="probe")
    criterion = CRITERIA.build(config, CriterionContext(0.9, {"if": np.zeros(3)}, measure))
    for epoch in range(1, 7):
        criterion.check(EpochRecord(epoch, 0.1, 1.0, model, Mask.dense(model)))
    assert len(calls) == 2


@pytest.mark.parametrize("distance", DISTANCES.names())
def test_every_distance_is_zero_on_the_reference_positive_away_from_it_and_inf_on_nan(distance):
    measure = DISTANCES.get(distance)
    assert measure(DENSE, DENSE) == pytest.approx(0.0, abs=1e-9)
    assert measure(FAR_SNAPSHOT, DENSE) > 0
    broken = Snapshot(DENSE.logits * float("nan"), [f * float("nan") for f in DENSE.features],
                      DENSE.gradients * float("nan"))
    assert measure(broken, DENSE) == float("inf")


@pytest.mark.parametrize("distance", DISTANCES.names())
def test_incop_stops_at_epoch_zero_when_the_pruned_network_is_already_consistent(distance):
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    config = CRITERIA.config_for("incop")(distance=distance)
    verdict = CRITERIA.build(config, _context(DENSE, {distance: 0.05})).check(_record(0, 0.5, model))
    assert verdict.stop and verdict.reason == "flow" and verdict.distance == pytest.approx(0.0, abs=1e-9)
    far = CRITERIA.build(config, _context(FAR_SNAPSHOT, {distance: 1e-6}))
    assert not far.check(_record(0, 0.5, model)).stop and far.epsilon < DISTANCES.get(distance)(FAR_SNAPSHOT, DENSE)


def test_registry_refuses_duplicate_names_and_lists_names():
    registry: Registry = Registry("thing")
    registry.register("a", BaseModel)(object)
    with pytest.raises(ValueError, match="twice"):
        registry.register("a", BaseModel)(object)
    assert registry.names() == ["a"]
    assert {"lth", "sap"} <= set(SCHEDULES.names())
    assert {"fixed-epochs", "accuracy", "incop", "incop-if", "incop-gf"} <= set(CRITERIA.names())


def test_every_plug_in_states_the_protocol_the_runner_asks():
    from incop_core.criteria import CRITERIA, Criterion, CriterionSettings
    from incop_core.pruning.schedules import SCHEDULES, Schedule

    for name in CRITERIA.names():
        config, built = CRITERIA.get(name)
        assert issubclass(config, CriterionSettings) and issubclass(built, Criterion), name
    for name in SCHEDULES.names():
        assert issubclass(SCHEDULES.get(name)[1], Schedule), name
    incop, fixed = CRITERIA.config_for("incop")(), CRITERIA.config_for("fixed-epochs")(epochs=3)
    assert (incop.retrain_budget(5, final=False), incop.retrain_budget(5, final=True)) == (5, 10)
    assert fixed.retrain_budget(5, final=True) == 3 and not fixed.checks_decision(final=False)
    assert incop.checks_decision(final=False) and incop.reference_distance() == incop.distance
