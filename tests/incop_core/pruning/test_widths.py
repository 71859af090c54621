"""`prune.round_to: auto` (issue 21): kept widths chosen on measured convolution latency, cached, never for noise."""

import json

import pytest
import torch

from incop_core.imp import paths
from incop_core.imp.config import validate
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.imp.runner import run_pruning
from incop_core.pruning.widths import ConvShape, LatencyTable, auto_widths, conv_latency_ms, fastest_kept, layer_shapes

CONV = ConvShape(32, 64, (3, 3), (1, 1), (1, 1), 1, 8, 8)


def _table(cost):
    calls = []

    def measure(shape):
        calls.append(shape)
        return cost(shape)
    return LatencyTable(None, measure), calls


def test_a_width_is_given_up_only_for_a_measured_gain():
    slow_odd, _ = _table(lambda s: 1.0 if s.outputs % 8 == 0 else 2.0)  # a SIMD-blocked kernel: multiples of 8 fast
    assert fastest_kept(61, 64, [CONV], [], slow_odd) == 56
    flat, calls = _table(lambda s: 1.0 + 0.01 * (s.outputs % 3))  # within 5 %: noise, keep what the schedule asked
    assert fastest_kept(61, 64, [CONV], [], flat) == 61 and {s.outputs for s in calls} == set(range(54, 62))
    assert fastest_kept(5, 8, [CONV], [], flat) == 8  # a group of at most 8 keeps what it has


def test_a_group_width_prices_its_writers_readers_and_depthwise_layers_together():
    table, calls = _table(lambda s: 1.0)
    depthwise = ConvShape(64, 64, (3, 3), (1, 1), (1, 1), 64, 8, 8)
    reader = ConvShape(64, 16, (1, 1), (1, 1), (0, 0), 1, 8, 8)
    fastest_kept(60, 64, [CONV, depthwise], [reader], table)
    assert any(s.groups == s.inputs == s.outputs == 60 for s in calls)  # the depthwise conv at the new width
    assert (any(s.inputs == 60 and s.outputs == 16 for s in calls)
            and any(s.outputs == 60 and s.inputs == 32 for s in calls))


def test_latencies_are_measured_once_and_survive_in_the_cache(tmp_path):
    cache = tmp_path / ".widths.json"
    first, calls = LatencyTable(cache, lambda s: 0.5), []
    assert first(CONV) == 0.5 and json.loads(cache.read_text()) == {CONV.key(): 0.5}
    again = LatencyTable(cache, lambda s: calls.append(s) or 9.0)
    assert again(CONV) == 0.5 and calls == []
    cache.write_text("{not json")
    assert LatencyTable(cache, lambda s: 0.7)(CONV) == 0.7  # a damaged cache is measured again


def test_a_real_convolution_is_timed_by_onnxruntime():
    assert 0 < conv_latency_ms(CONV, runs=3) < 1000


def test_layer_shapes_see_each_layer_at_its_input_size():
    model = build_model(ModelConfig(width=8), (1, 16, 16), 4)
    shapes = layer_shapes(model, torch.zeros(2, 1, 16, 16))
    assert (shapes["features.0.weight"].height, shapes["features.4.weight"].height) == (16, 8)
    assert shapes["classifier.0.weight"].kernel == (1, 1) and shapes["classifier.0.weight"].inputs == 16 * 4 * 4


def test_auto_widths_move_counts_onto_fast_widths_and_leave_the_classifier():
    model = build_model(ModelConfig(width=16), (1, 16, 16), 4)
    widths = auto_widths(model, torch.zeros(2, 1, 16, 16))
    widths.table.measure = lambda s: 1.0 if s.outputs % 8 == 0 else 3.0
    counts = widths.counts({"features.0.weight": 3, "features.4.weight": 3}, Mask.dense(model))
    assert counts == {"features.0.weight": 8, "features.4.weight": 8}  # 13 -> 8 kept, 29 -> 24 kept
    assert "classifier.2.weight" not in widths.members


@pytest.mark.parametrize("scope", ["layer-filter", "group"])
def test_a_run_with_round_to_auto(tiny_config, tmp_path, scope):
    config = tiny_config(scope=scope, round_to="auto", schedule={"kind": "lth", "fraction": 0.3},
                         criterion={"kind": "fixed-epochs"}, max_epochs=1)
    run = run_pruning(config, tmp_path)
    mask = Mask.load(paths.iteration_dir(run, 2) / paths.MASK)
    assert mask.remaining_total() < mask.total() and (tmp_path / paths.WIDTHS_CACHE).is_file()
    assert validate({"prune": {"scope": scope, "round_to": "auto"}}).prune.round_to == "auto"
