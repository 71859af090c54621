"""The release gate's rule (deploy/decisions/gate.py): what moves `stable`, and the one sentence that says why."""

import pytest

from deploy.decisions.gate import judge, unserved

SPEC = {"mean": [0.5], "std": [0.25]}


def figures(val=0.90, p50=1.0, spec=SPEC, shape=(1, 16, 16), version="1"):
    return {"spec": spec, "input": list(shape), "val_accuracy": val, "p50_ms": p50, "version": version}


def test_the_first_release_is_promoted():
    verdict = judge(figures(version="1"), None, 1.0, 0.1, "edge-1t")
    assert verdict.promote and "had no version yet" in verdict.reason


@pytest.mark.parametrize("candidate, promote, words", [
    (figures(val=0.895, p50=0.9, version="2"), True, "promoted to stable"),
    (figures(val=0.88, version="2"), False, "2.00 pp below stable v1"),
    (figures(p50=1.2, version="2"), False, "slower than stable v1"),
    (figures(p50=1.08, version="2"), True, "promoted"),  # within the 10 % slack of a shared CPU
    (figures(spec={"mean": [0.4], "std": [0.25]}, version="2"), False, "normalisation"),
    (figures(shape=(1, 32, 32), version="2"), False, "shape"),
])
def test_a_candidate_moves_stable_only_when_no_worse(candidate, promote, words):
    verdict = judge(candidate, figures(), 1.0, 0.1, "edge-1t")
    assert verdict.promote is promote and words in verdict.reason
    assert verdict.reason.startswith("promoted to stable" if promote else "kept on candidate")


def test_the_tolerance_is_the_parameter_not_a_constant():
    worse = figures(val=0.88, version="2")
    assert not judge(worse, figures(), 1.0, 0.1, "edge-1t").promote
    assert judge(worse, figures(), 2.5, 0.1, "edge-1t").promote


def test_changed_data_or_model_bars_promotion_and_other_changes_do_not():
    assert unserved(["run.data.train_subset", "run.prune.iterations", "run.model.width"]) == [
        "run.data.train_subset", "run.model.width"]
    assert unserved(["run.prune.iterations", "bench_rounds", "publish_variant"]) == []
