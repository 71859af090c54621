"""InCoP's two questions (docs/algorithms.md §4.3): is the next prune decision settled (intermediate iterations), and
has the shipped network recovered (the final one). The derived thresholds, the rule on hand-made checks, and a tiny
run end to end."""

import math

import pytest
import torch

from incop_core.imp.config import validate
from incop_core.criteria import CRITERIA, CriterionContext, EpochRecord
from incop_core.pruning.decision import decision_distance, decision_noise, removed, settle_steps
from incop_core.consistency.distances import Snapshot
from incop_core.consistency.epsilon import (Z95, consistent_count, consistent_epsilon, improved, recovered_epsilon,
                                            resolution)
from incop_core.pruning.masks import Mask
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.imp.rundir import load_records
from incop_core.imp.plan import retrain_epochs
from incop_core.imp.runner import run_pruning

N = 200  # probe images of the hand-made snapshots


def test_the_consistency_count_is_the_edge_of_a_one_sided_poisson_test():
    for k_n in (0, 2, 21, 118):
        k = consistent_count(k_n)
        assert k - k_n == pytest.approx(Z95 * math.sqrt(k + k_n)), "k solves k - k_n = z sqrt(k + k_n)"
        assert k > k_n and consistent_count(k_n + 1) > k
    assert consistent_count(0) == pytest.approx(Z95 ** 2)
    assert resolution(2048) == pytest.approx(Z95 ** 2 / 2048)
    assert consistent_epsilon(True, 21 / 1024, 1024) == pytest.approx(consistent_count(21) / 1024)
    assert consistent_epsilon(False, 0.3, 1024) == 0.3 and consistent_epsilon(False, None, 1024) == 0.0


def test_the_final_epsilon_is_the_accuracy_budget_never_below_resolution_and_never_raised_by_noise():
    assert recovered_epsilon(True, 1.0, None, 2048) == pytest.approx(0.01)
    assert recovered_epsilon(True, 1.0, 0.456, 2048) == pytest.approx(0.01), "an unconverged dense network's noise"
    assert recovered_epsilon(True, 0.05, None, 2048) == pytest.approx(resolution(2048)), \
        "below what 2048 images resolve"
    assert recovered_epsilon(True, 1.0, None, 64) == pytest.approx(resolution(64))


def test_mcnemar_improvement_needs_more_fixed_than_broken_beyond_the_churn():
    assert improved(20, 0) and improved(40, 15)
    assert not improved(10, 10) and not improved(0, 0) and not improved(2, 0) and not improved(0, 20)


def test_decision_distance_is_the_jaccard_distance_of_the_removed_sets():
    keep = Mask({"w": torch.ones(10, dtype=torch.bool)})
    a = Mask({"w": torch.tensor([0, 0, 1, 1, 1, 1, 1, 1, 1, 1], dtype=torch.bool)})
    b = Mask({"w": torch.tensor([0, 1, 0, 1, 1, 1, 1, 1, 1, 1], dtype=torch.bool)})
    assert decision_distance(removed(keep, a), removed(keep, a)) == 0.0
    assert decision_distance(removed(keep, a), removed(keep, b)) == pytest.approx(1 - 1 / 3)
    assert decision_distance(removed(keep, keep), removed(keep, keep)) == 0.0, "nothing to prune: nothing to decide"
    smallest = lambda w: Mask({"w": w["w"].abs() > w["w"].abs().sort().values[1]})  # noqa: E731  (prunes the 2 smallest)
    still = {"w": torch.arange(1.0, 11.0)}
    assert decision_noise(smallest, still, {"w": still["w"] + 0.1}, keep) == 0.0
    assert (decision_noise(smallest, still, {"w": torch.tensor([3.0, 2, 1, 4, 5, 6, 7, 8, 9, 10])}, keep)
            == pytest.approx(2 / 3))


def _snapshot(wrong: int) -> Snapshot:
    """N probe images, the first `wrong` of them classified differently from the dense network."""
    classes = torch.zeros(N, dtype=torch.long)
    classes[:wrong] = 1
    return Snapshot(torch.nn.functional.one_hot(classes, 4).float())


DENSE = _snapshot(0)


def _context(snapshots: list[Snapshot], final: bool, decide=None, noise=None) -> CriterionContext:
    queue = list(snapshots)
    return CriterionContext(0.95, {}, None, {}, lambda model, mask, needs: queue.pop(0), DENSE,
                            {"disagreement": 0.0} if noise is None else noise, final=final, decide=decide,
                            decision_noise=0.0, probe_size=N, max_epochs=4)


def _record(model, epoch, val_acc=0.5):
    return EpochRecord(epoch, val_acc if float(epoch).is_integer() else None, 1.0, model, Mask.dense(model),
                       validate=lambda: val_acc)


@pytest.fixture()
def model():
    return build_model(ModelConfig(width=4), (1, 8, 8), 4)


def test_an_intermediate_iteration_stops_once_its_next_decision_stops_moving(model):
    decisions = iter([0.9, 0.5, 0.5])  # the next prune keeps weights above these magnitudes: moves once, then holds

    def decide(weights):
        threshold = next(decisions)
        return Mask({n: w.abs() > threshold * w.abs().max() for n, w in weights.items()})
    criterion = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(100)], final=False, decide=decide))
    first = criterion.check(_record(model, 0))
    assert not first.stop and first.mask_distance is None and first.distance == 0.5, \
        "epoch 0: far, and nothing to compare"
    moved = criterion.check(_record(model, 0.125))
    assert not moved.stop and moved.mask_distance > 0 and moved.distance is None, "mid-epoch: no data pass"
    held = criterion.check(_record(model, 0.25))
    assert held.stop and held.reason == "settled" and held.mask_distance == 0.0


def test_an_intermediate_iteration_already_as_consistent_as_the_dense_network_retrains_nothing(model):
    moving = iter(range(1, 100))
    decide = lambda weights: Mask({n: w.abs() > 1e-3 * next(moving) for n, w in weights.items()})  # noqa: E731
    noise = {"disagreement": 10 / N}
    near = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(15)], False, decide, noise))
    assert near.check(_record(model, 0)).reason == "flow" and near.epsilon == pytest.approx(consistent_count(10) / N)
    far = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(40)], False, decide, noise))
    assert not far.check(_record(model, 0)).stop


def test_the_final_iteration_stops_when_recovered_or_when_it_stopped_improving_over_its_window(model):
    recovered = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(2)], final=True))
    assert recovered.epsilon == pytest.approx(max(0.01, resolution(N)))
    assert recovered.check(_record(model, 0)).reason == "flow", "2 of 200 images: within 1 pp"
    counts = [60, 30, 20, 19, 19, 19]  # a steep recovery, then a plateau
    plateau = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(c) for c in counts], final=True))
    assert plateau.window == 2, "auto: half of max_epochs (4), rounded up"
    verdicts = [plateau.check(_record(model, e)) for e in range(len(counts))]
    assert [v.stop for v in verdicts] == [False, False, False, False, True, True][:len(verdicts)]
    assert verdicts[4].reason == "plateau", "epoch 4 is no better than epoch 2 (window 2): 20 -> 19 images"
    back = CRITERIA.build(CRITERIA.config_for("incop")(), _context([_snapshot(60)], final=True))
    assert back.check(_record(model, 1, val_acc=0.96)).reason == "accuracy"


def test_budgets_give_the_final_iteration_its_own_cap_and_final_only_zero_intermediate_epochs(tiny_config):
    incop = tiny_config()
    assert retrain_epochs(incop, final=False) == incop.prune.max_epochs
    assert retrain_epochs(incop, final=True) == 2 * incop.prune.max_epochs
    capped = validate({**incop.model_dump(mode="json"), "prune": {**incop.model_dump(mode="json")["prune"],
                                                                   "criterion": {"kind": "incop", "final_epochs": 7}}})
    assert retrain_epochs(capped, final=True) == 7
    final_only = tiny_config(criterion={"kind": "fixed-epochs", "intermediate_epochs": 0})
    assert (retrain_epochs(final_only, final=False),
            retrain_epochs(final_only, final=True)) == (0, final_only.prune.max_epochs)
    assert settle_steps(157) == 20 and settle_steps(1) == 1


def test_a_tiny_run_checks_decisions_mid_epoch_in_intermediate_iterations_and_records_both_curves(
        tmp_path, tiny_config):
    raw = tiny_config(iterations=3, scope="layer-filter", probe_size=512, probe_batch=128,
                      schedule={"kind": "lth", "fraction": 0.7}).model_dump(mode="json")
    raw["data"]["synthetic_size"], raw["optim"]["batch_size"] = 640, 32  # 18 steps an epoch: a decision check every 3
    config = validate(raw)
    records = load_records(run_pruning(config, tmp_path))
    intermediate, final = records[1:-1], records[-1]
    assert [r["final"] for r in records[1:]] == [False, False, True]
    for r in intermediate:
        assert r["decision_noise"] is not None and 0.0 <= r["decision_noise"] <= 1.0
        assert r["stop_reason"] in ("settled", "flow", "accuracy", "max-epochs")
        assert r["epochs"] <= config.prune.max_epochs
        assert all(0.0 <= m["mask_distance"] <= 1.0 for m in r["mask_distances"])
        mid = [h for h in r["history"] if not float(h["epoch"]).is_integer()]
        assert all(h["distance"] is None and h["val_acc"] is None for h in mid), "decision checks make no data pass"
        if r["stop_reason"] == "settled":
            assert r["mask_distances"][-1]["mask_distance"] <= r["decision_noise"]
    assert any(r["stop_reason"] == "settled" and 0 < r["epochs"] < 1 for r in intermediate), "a fraction of an epoch"
    assert final["decision_noise"] is None and final["epochs"] <= 2 * config.prune.max_epochs
    assert final["stop_reason"] in ("flow", "plateau", "accuracy", "max-epochs") and final["distances"]


def test_the_decision_noise_comes_from_the_calibration_and_equals_measuring_it_afresh(tmp_path, tiny_config):
    raw = tiny_config(iterations=2, scope="global", probe_size=256, probe_batch=128).model_dump(mode="json")
    raw["data"]["synthetic_size"], raw["optim"]["batch_size"] = 640, 32
    config = validate(raw)
    run = run_pruning(config, tmp_path / "a", stop_after=0)
    settle = run / "iterations" / "0000" / "settle.pt"
    assert settle.is_file(), "fine-tuning keeps the dense weights after one decision-check interval"
    cached = load_records(run_pruning(config, tmp_path / "a"))[1]["decision_noise"]
    fresh_run = run_pruning(config, tmp_path / "b", stop_after=0)
    (fresh_run / "iterations" / "0000" / "settle.pt").unlink()  # a fine-tuning from before settle.pt existed
    fresh = load_records(run_pruning(config, tmp_path / "b"))[1]["decision_noise"]
    assert cached == fresh and cached > 0, "the same interval of the same retraining, measured either way"
