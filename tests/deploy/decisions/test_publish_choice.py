"""Which exported variant the pipeline publishes: validation accuracy and latency on the target profile choose."""

import random

import pytest

from deploy.errors import DeployError
from deploy.decisions.summary import explain_choice, summary_markdown


def _export(**variants) -> dict:
    """variants: name -> (val_accuracy, test_accuracy, zstd bytes)."""
    arts = {name: {"val_accuracy": v, "accuracy": t, "sizes": {"raw": z, "zstd": z}}
            for name, (v, t, z) in variants.items()}
    if "int8" in arts:
        arts["int8"]["quantized_from"] = "compacted" if "compacted" in arts else "pruned"
    return {"artifacts": arts}


def _bench(profile="edge-1t", **p50) -> dict:
    return {"profiles": {profile: {"models": {n: {"p50_ms": v} for n, v in p50.items()}}}}


def test_int8_is_published_only_where_it_beats_its_float_source():
    export = _export(dense=(0.92, 0.91, 1000), pruned=(0.92, 0.91, 400), compacted=(0.92, 0.91, 120),
                     int8=(0.92, 0.91, 40))
    chosen, why = explain_choice(export, _bench(dense=0.10, pruned=0.10, compacted=0.03, int8=0.045))
    assert chosen == "compacted" and "not faster than `compacted`" in why["int8"]
    assert explain_choice(export, _bench(dense=0.10, pruned=0.10, compacted=0.03, int8=0.02))[0] == "int8"


def test_a_variant_slower_than_dense_is_never_published_even_when_smallest():
    export = _export(dense=(0.92, 0.91, 1000), pruned=(0.92, 0.91, 400), int8=(0.92, 0.91, 40))
    chosen, why = explain_choice(export, _bench(dense=0.10, pruned=0.11, int8=0.12))
    assert chosen == "dense" and "slower than dense" in why["pruned"] and "slower than dense" in why["int8"]


def test_validation_accuracy_chooses_and_test_accuracy_does_not():
    export = _export(dense=(0.92, 0.90, 1000), compacted=(0.905, 0.95, 100), pruned=(0.915, 0.70, 400))
    chosen, why = explain_choice(export, _bench(dense=0.10, pruned=0.09, compacted=0.03))
    assert chosen == "pruned" and "more than 1 pp below dense" in why["compacted"]


def test_latency_ties_go_to_the_smaller_file():
    export = _export(dense=(0.92, 0.91, 1000), compacted=(0.92, 0.91, 120), int8=(0.92, 0.91, 40))
    export["artifacts"]["int8"]["quantized_from"] = "dense"  # int8 beats its source, ties with compacted
    assert explain_choice(export, _bench(dense=0.10, compacted=0.030, int8=0.0305))[0] == "int8"
    assert explain_choice(export, _bench(dense=0.10, compacted=0.030, int8=0.040))[0] == "compacted"


def test_random_exports_never_publish_a_slower_or_less_accurate_variant():
    rng = random.Random(0)
    for _ in range(500):
        names = ["dense", "pruned", "compacted", "int8"]
        export = _export(**{n: (rng.uniform(0.85, 0.95), rng.uniform(0.85, 0.95), rng.randint(10, 1000))
                            for n in names})
        bench = _bench(**{n: rng.uniform(0.01, 0.2) for n in names})
        chosen, why = explain_choice(export, bench)
        arts, t = export["artifacts"], bench["profiles"]["edge-1t"]["models"]
        assert t[chosen]["p50_ms"] <= t["dense"]["p50_ms"]
        assert arts[chosen]["val_accuracy"] >= arts["dense"]["val_accuracy"] - 0.01
        if chosen == "int8":
            assert t["int8"]["p50_ms"] < t[arts["int8"]["quantized_from"]]["p50_ms"]
        assert why[chosen].startswith("chosen")


def test_choice_without_validation_accuracy_or_profile_says_how_to_fix():
    export = _export(dense=(0.92, 0.91, 1000), pruned=(0.92, 0.91, 400))
    with pytest.raises(DeployError, match="not benchmarked"):
        explain_choice(export, _bench("cpu-2t", dense=0.1, pruned=0.1))
    del export["artifacts"]["pruned"]["val_accuracy"]
    with pytest.raises(DeployError, match="re-export"):
        explain_choice(export, _bench(dense=0.1, pruned=0.1))


def test_named_variant_is_published_as_asked_and_the_summary_says_why():
    export = _export(dense=(0.92, 0.91, 1000), int8=(0.92, 0.91, 40))
    assert explain_choice(export, _bench(dense=0.1, int8=0.2), preference="int8")[0] == "int8"
    chosen, why = explain_choice(export, _bench(dense=0.1, int8=0.2))
    export["sparsity"] = {"sparsity": 0.5}
    bench = {"profiles": {"edge-1t": {"models": {"dense": {"p50_ms": 0.1, "speedup_p50": 1.0},
                                                 "int8": {"p50_ms": 0.2, "speedup_p50": 0.5}}}},
             "models": {"dense": {"flops": 10}, "int8": {"flops": 10}}}
    totals = {"iterations": 1, "retrain_epochs": 1, "final_remaining_fraction": 0.5, "final_test_acc": 0.9,
              "flow_share": 0.1}
    text = summary_markdown(totals, export, bench, chosen, None, why)
    assert "Why this variant" in text and "`int8`: slower than dense" in text


def test_dense_is_published_when_nothing_else_keeps_accuracy_and_says_so():
    export = _export(dense=(0.87, 0.86, 1000), compacted=(0.72, 0.72, 100), int8=(0.72, 0.72, 30))
    chosen, why = explain_choice(export, _bench(dense=10.0, compacted=1.8, int8=0.6))
    assert chosen == "dense" and why["dense"].startswith("chosen: no other variant")


def test_a_publish_profile_that_is_not_benchmarked_is_a_config_error():
    from flows.cli import load_params
    from incop_core.foundations.errors import ConfigError

    with pytest.raises(ConfigError, match="publish_profile edge-1t is not among profiles"):
        load_params(None, ['profiles=["cpu-2t"]'])
    assert load_params(None, ['profiles=["cpu-2t"]', "publish_profile=cpu-2t"]).publish_profile == "cpu-2t"
