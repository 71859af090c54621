"""Masks, magnitude pruning in every scope, and masked training."""

import pytest
import torch
from torch import nn

from incop_core.pruning import magnitude
from incop_core.training.optim import OptimConfig
from incop_core.criteria import CRITERIA, CriterionContext
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.foundations.errors import IncopError
from incop_core.pruning.groups import channel_groups
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.training.train import train
from incop_core.foundations.hashdump import hashed_dump


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 4 * 4, 5), nn.ReLU(),
                         nn.Linear(5, 3))


def test_mask_rejects_non_binary_values_and_wrong_shapes():
    with pytest.raises(IncopError, match="other than 0 and 1"):
        Mask({"w": torch.tensor([0.0, 0.5])})
    model = _model()
    bad = Mask({**Mask.dense(model).tensors, "0.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(IncopError, match="shape"):
        bad.check_matches(model)


def test_mask_save_load_round_trip_with_report(tmp_path):
    model = _model()
    mask = magnitude.prune(prunable_weights(model), Mask.dense(model), {"*": 100}, "global")
    mask.save(tmp_path / "mask.pt")
    loaded = Mask.load(tmp_path / "mask.pt")
    assert all(torch.equal(loaded.tensors[n], mask.tensors[n]) for n in mask.tensors)
    report = (tmp_path / "mask.json").read_text()
    assert '"remaining"' in report and str(mask.remaining_total()) in report


@pytest.mark.parametrize("scope", magnitude.SCOPES)
def test_masks_only_shrink_over_iterations(scope):
    model, mask = _model(), None
    mask = Mask.dense(model)
    weights = prunable_weights(model)
    coupled = channel_groups(model, torch.zeros(2, 2, 6, 6)) if scope == "group" else None
    for _ in range(4):
        groups = magnitude.survivors(weights, mask, scope, coupled)
        counts = {g: int(0.3 * v.numel()) for g, v in groups.items()}
        smaller = magnitude.prune(weights, mask, counts, scope, coupled)
        assert smaller.is_subset_of(mask)
        # small layers: 0.3 x 3 = 0
        assert smaller.remaining_total() < mask.remaining_total() or not any(counts.values())
        mask = smaller


def test_global_scope_prunes_exactly_the_asked_count_even_with_ties():
    weights = {"a.weight": torch.ones(4, 5), "b.weight": torch.ones(3, 5)}
    mask = magnitude.prune(weights, Mask({n: torch.ones_like(w) for n, w in weights.items()}), {"*": 7}, "global")
    assert mask.remaining_total() == 35 - 7


def test_layer_scope_ranks_inside_each_layer():
    weights = {"a.weight": torch.arange(1.0, 13).reshape(3, 4), "b.weight": torch.arange(100.0, 112).reshape(3, 4)}
    mask = Mask({n: torch.ones_like(w) for n, w in weights.items()})
    pruned = magnitude.prune(weights, mask, {"a.weight": 3, "b.weight": 6}, "layer")
    assert pruned.remaining() == {"a.weight": 9, "b.weight": 6}
    assert not pruned.tensors["a.weight"].flatten()[:3].any() and pruned.tensors["a.weight"].flatten()[3:].all()


def test_neuron_scope_prunes_the_same_share_of_every_row():
    w = torch.randn(4, 10, generator=torch.Generator().manual_seed(0))
    pruned = magnitude.prune({"a.weight": w}, Mask({"a.weight": torch.ones(4, 10)}), {"a.weight": 20}, "neuron")
    rows = pruned.tensors["a.weight"]
    assert rows.sum(dim=1).tolist() == [5, 5, 5, 5]
    for row in range(4):  # the survivors are the row's largest magnitudes
        kept = w[row].abs()[rows[row]]
        assert kept.min() >= w[row].abs()[~rows[row]].max()


def test_filter_scope_removes_whole_filters_by_norm_and_never_the_output_layer():
    model = _model()
    weights = prunable_weights(model)
    mask = magnitude.prune(weights, Mask.dense(model), {"*": 4}, "filter")
    for name, keep in mask.tensors.items():
        rows = keep.reshape(keep.shape[0], -1)
        assert torch.all(rows.all(dim=1) | ~rows.any(dim=1)), f"{name} has partial filters"
    assert mask.tensors["5.weight"].all()
    assert mask.remaining_total() < Mask.dense(model).remaining_total()
    assert all(t.reshape(t.shape[0], -1).any(dim=1).sum() >= 1 for t in mask.tensors.values())


def test_pruned_weights_stay_exactly_zero_through_training_with_decay_and_momentum():
    data = load_dataset(DataConfig(name="synthetic", synthetic_size=96, image_size=16), seed=0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), data.input_shape, data.num_classes)
    weights = prunable_weights(model)
    mask = magnitude.prune(weights, Mask.dense(model), {"*": Mask.dense(model).total() // 2}, "global")
    mask.apply_(model)
    criterion = CRITERIA.build(CRITERIA.config_for("fixed-epochs")(), CriterionContext(1.0, {}, None))
    before = {n: w.detach().clone() for n, w in weights.items()}
    train(model, data, mask, OptimConfig(lr=0.1, momentum=0.9, weight_decay=0.05, batch_size=16), criterion, 3,
          torch.device("cpu"), seed=0)
    for name, w in prunable_weights(model).items():
        assert torch.all(w[~mask.tensors[name]] == 0), name
        assert not torch.equal(w, before[name])  # the survivors did train


def test_layer_filter_scope_ranks_inside_each_layer_and_never_empties_one():
    model = _model()
    weights = prunable_weights(model)
    names = list(weights)
    counts = {name: weights[name].shape[0] for name in names[:-1]}  # ask for every filter of every hidden layer
    mask = magnitude.prune(weights, Mask.dense(model), counts, "layer-filter")
    for name in names[:-1]:
        alive = magnitude.alive_filters(mask.tensors[name])
        assert int(alive.sum()) == 1  # all but the strongest filter, never the last one
        norms = magnitude.filter_norms(weights[name], torch.ones_like(mask.tensors[name]))
        assert norms[alive].item() == norms.max().item()
    assert mask.tensors[names[-1]].all()  # the classifier's outputs are never pruned
    half = {name: weights[name].shape[0] // 2 for name in names[:-1]}
    mask = magnitude.prune(weights, Mask.dense(model), half, "layer-filter")
    assert all(int(magnitude.alive_filters(mask.tensors[n]).sum()) == weights[n].shape[0] - half[n] for n in names[:-1])


def _wide():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 20, 3), nn.ReLU(), nn.Flatten(),
                         nn.Linear(20 * 4 * 4, 6), nn.ReLU(), nn.Linear(6, 3))


def test_round_to_keeps_a_multiple_of_filters_per_layer_rounding_down_never_below_one_multiple():
    model = _wide()
    weights, dense = prunable_weights(model), Mask.dense(model)
    names = list(weights)[:-1]  # 32, 20 and 6 filters
    counts = {names[0]: 6, names[1]: 19, names[2]: 1}
    rounded = magnitude.round_filter_counts(counts, dense, 8)
    assert rounded == {names[0]: 8, names[1]: 12, names[2]: 0}  # keep 26 -> 24; keep 1 -> 8; 6 alive <= 8: as it is
    mask = magnitude.prune(weights, dense, rounded, "layer-filter")
    kept = [int(magnitude.alive_filters(mask.tensors[n]).sum()) for n in names]
    assert kept == [24, 8, 6]
    again = magnitude.round_filter_counts({names[0]: 4, names[1]: 0, names[2]: 0}, mask, 8)
    assert again[names[0]] == 8  # 24 - 4 = 20 -> 16


def test_round_mode_nearest_keeps_the_multiple_closest_to_the_ask_and_never_more_than_is_alive():
    from incop_core.imp.config import validate
    from incop_core.foundations.errors import ConfigError

    model = _wide()
    dense = Mask.dense(model)
    names = list(prunable_weights(model))[:-1]  # 32, 20 and 6 filters
    asked = {names[0]: 6, names[1]: 7, names[2]: 1}  # keep 26, 13, 5
    assert magnitude.round_filter_counts(asked, dense, 8, nearest=True) == {names[0]: 8, names[1]: 4, names[2]: 0}
    assert magnitude.round_filter_counts(asked, dense, 8) == {names[0]: 8, names[1]: 12, names[2]: 0}  # 13 -> 8
    assert magnitude.round_filter_counts({names[1]: 0}, dense, 8, nearest=True) == {names[1]: 0}  # 20 -> 24: 20
    for count, kept in ((19, 16), (20, 16), (21, 8)):  # keep 13 -> 16, 12 -> 16 (a half rounds up), 11 -> 8
        assert magnitude.round_filter_counts({names[0]: count}, dense, 8, nearest=True) == {names[0]: 32 - kept}
    plain = validate({"prune": {"scope": "group", "round_to": 8}})
    assert "round_mode" not in hashed_dump(plain)["prune"]  # old hashes hold
    assert plain.model_dump(mode="json")["prune"]["round_mode"] == "down"
    assert validate({"prune": {"scope": "group", "round_to": 8, "round_mode": "nearest"}}).config_hash() != \
        plain.config_hash()
    with pytest.raises(ConfigError, match="integer prune.round_to"):
        validate({"prune": {"scope": "group", "round_to": "auto", "round_mode": "nearest"}})


def test_round_to_needs_the_layer_filter_scope():
    from incop_core.imp.config import validate
    from incop_core.foundations.errors import ConfigError

    with pytest.raises(ConfigError, match="needs scope layer-filter"):
        validate({"prune": {"scope": "filter", "round_to": 8}})
    assert validate({"prune": {"scope": "layer-filter", "round_to": 8}}).prune.round_to == 8


def test_structured_pruning_zeroes_the_batchnorm_of_dead_filters_so_compaction_needs_no_carrier_channel():
    from deploy.export.compact import compact, max_abs_difference
    from incop_core.pruning.masks import coupled_norms

    data = load_dataset(DataConfig(name="synthetic", synthetic_size=64, image_size=16), 0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), data.input_shape, data.num_classes)
    for norm in coupled_norms(model).values():  # BatchNorm shifts a pruned channel to a constant unless zeroed
        nn.init.uniform_(norm.bias, 0.5, 1.0)
    weights = prunable_weights(model)
    counts = {"features.0.weight": 3, "features.4.weight": 5}
    mask = magnitude.prune(weights, Mask.dense(model), counts, "layer-filter")
    mask.apply_(model, norms=True)
    criterion = CRITERIA.build(CRITERIA.config_for("fixed-epochs")(), CriterionContext(0.0, {}, None))
    train(model, data, mask, OptimConfig(lr=0.1, batch_size=16), criterion, 1, torch.device("cpu"), seed=0, norms=True)
    norms = coupled_norms(model)
    for name, count in counts.items():
        dead = ~magnitude.alive_filters(mask.tensors[name])
        assert int(dead.sum()) == count
        assert torch.all(norms[name].weight[dead] == 0) and torch.all(norms[name].bias[dead] == 0)
        assert torch.all(norms[name].bias[~dead] != 0)  # live channels train as before
    model.eval()
    images = torch.randn(8, *data.input_shape)
    result = compact(model, images[:4])
    assert max_abs_difference(model, result.model, images) < 1e-4
    convs = [m for m in result.model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8 - 3, 16 - 5]  # exactly the live filters: no carrier channel


def test_streamed_gradient_flow_covers_the_prunable_weights_only_when_batchnorms_are_masked():
    from incop_core.consistency.streaming import StreamMonitor
    from incop_core.training.masked_sgd import MaskedSGD

    data = load_dataset(DataConfig(name="synthetic", synthetic_size=32, image_size=16), 0)
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8), data.input_shape, data.num_classes)
    weights = prunable_weights(model)
    mask = magnitude.prune(weights, Mask.dense(model), {"features.0.weight": 2}, "layer-filter")
    opt, monitor = MaskedSGD(model, mask, OptimConfig(lr=0.1), norms=True), StreamMonitor(model)
    assert len(opt.params) == len(weights) + 4  # two BatchNorms, scale and shift each
    model(torch.randn(4, *data.input_shape)).sum().backward()
    opt.step(monitor)
    assert len(monitor.gf_sum) == len(weights)
