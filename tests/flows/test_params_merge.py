"""Partial overrides merge onto the defaults (CLI) and onto the served parameters (deployment runs), the
progress covers fine-tuning and iterations, and the pooled parent run shows the cpu run's summary."""

from types import SimpleNamespace
from uuid import uuid4

import pytest

import flows.artifacts
import flows.pipeline
import flows.pools
from flows.artifacts import PruneProgress
from flows.cli import load_params
from flows.params import PipelineParams, deep_merge, differences
from incop_core.imp.config import validate
from incop_core.foundations.errors import ConfigError


def test_deep_merge_merges_sections_and_replaces_lists_and_values():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 3}
    merged = deep_merge(base, {"a": {"c": [3]}, "d": 4})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 4}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 3}  # neither input changes


def test_deep_merge_replaces_a_plug_in_of_another_kind_and_merges_one_of_the_same():
    base = {"schedule": {"kind": "lth", "fraction": 0.2}}
    assert deep_merge(base, {"schedule": {"kind": "sap"}}) == {"schedule": {"kind": "sap"}}
    assert (deep_merge(base, {"schedule": {"kind": "lth", "fraction": 0.3}})
            == {"schedule": {"kind": "lth", "fraction": 0.3}})
    assert deep_merge(base, {"schedule": {"fraction": 0.5}}) == {"schedule": {"kind": "lth", "fraction": 0.5}}


def test_a_partial_set_keeps_the_main_jobs_defaults():
    params = load_params(None, ["run.prune.iterations=8"])
    assert params.run.prune.iterations == 8
    assert (params.run.data.train_subset, params.run.finetune_epochs,
            params.run.prune.scope) == (20000, 15, "layer-filter")
    assert params.run.prune.schedule.kind == "lth" and params.run.prune.schedule.fraction == 0.2


def test_setting_another_schedule_kind_drops_the_old_kinds_fields():
    params = load_params(None, ["run.prune.schedule.kind=sap"])
    assert params.run.prune.schedule.kind == "sap" and not hasattr(params.run.prune.schedule, "fraction")


def test_a_partial_config_file_merges_onto_the_defaults_and_sets_merge_onto_it(tmp_path):
    path = tmp_path / "params.json"
    path.write_text('{"run": {"data": {"val_size": 3000}}, "bench_rounds": 5}')
    params = load_params(path, ["run.prune.schedule.fraction=0.3"])
    assert (params.run.data.val_size, params.run.data.train_subset, params.bench_rounds) == (3000, 20000, 5)
    assert params.run.prune.schedule.fraction == 0.3 and params.run.finetune_epochs == 15


def test_a_set_into_a_single_value_is_one_sentence():
    with pytest.raises(ConfigError, match="single value"):
        load_params(None, ["bench_rounds.x=1"])


def test_differences_name_the_changed_dotted_keys():
    assert differences({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 4}}) == {"a.c": 3, "a.d": 4}
    assert (differences({"s": {"kind": "lth", "fraction": 0.2}}, {"s": {"kind": "sap"}})
            == {"s.fraction": "(unset)", "s.kind": "sap"})


def test_a_deployment_run_merges_what_the_caller_set_onto_the_served_parameters(monkeypatch):
    served = load_params(None, ["runs_dir=/srv/runs", "bench_rounds=7",
                                "run.finetune_epochs=3"]).model_dump(mode="json")
    monkeypatch.setattr(flows.pipeline, "served_params", lambda: served)
    partial = PipelineParams.model_validate({"run": {"prune": {"iterations": 8}}})  # as Prefect validates the UI's JSON
    assert partial.run.finetune_epochs == 5  # RunConfig's bare default, which the merge must not keep
    effective = flows.pipeline.effective_params(partial)
    assert (effective.runs_dir, effective.bench_rounds, effective.run.finetune_epochs) == ("/srv/runs", 7, 3)
    assert effective.run.prune.iterations == 8 and effective.run.data.train_subset == 20000


def test_served_settings_at_the_librarys_defaults_stay_there_under_a_partial_run(monkeypatch):
    """The main job distils and decays its retraining rate; a deployment served with the library's plain retraining
    (no distillation, constant rate, round_mode down) must keep it when the UI sends only run.prune.iterations, so
    every setting is in the served dump even at its default (only the hash leaves new settings out)."""
    plain = validate({"data": {"name": "synthetic"}, "prune": {"scope": "group", "round_to": 8}})
    served = PipelineParams(run=plain).model_dump(mode="json")
    assert PipelineParams().run.optim.retrain_distill == 0.5  # the main job's, which the merge must not bring in
    monkeypatch.setattr(flows.pipeline, "served_params", lambda: served)
    partial = PipelineParams.model_validate({"run": {"prune": {"iterations": 3}}})
    effective = flows.pipeline.effective_params(partial).run
    assert (effective.optim.retrain_distill, effective.optim.retrain_schedule, effective.prune.round_mode,
            effective.prune.criterion.final_epochs) == (0.0, "constant", "down", None)
    assert effective == plain.model_copy(update={"prune": plain.prune.model_copy(update={"iterations": 3})})


def test_a_config_file_dumped_from_a_run_keeps_its_settings_at_the_librarys_defaults(tmp_path):
    plain = validate({"data": {"name": "synthetic"}})
    (tmp_path / "params.json").write_text(PipelineParams(run=plain).model_dump_json())
    assert load_params(tmp_path / "params.json", []).run == plain


def test_a_direct_call_is_used_as_given(monkeypatch):
    monkeypatch.setattr(flows.pipeline, "served_params", lambda: None)
    run = validate({"data": {"name": "synthetic"}, "prune": {"scope": "filter"}})
    given = PipelineParams(run=run, bench_rounds=4)
    assert flows.pipeline.effective_params(given) == given


def test_progress_covers_fine_tuning_then_each_iteration(monkeypatch):
    shown = []
    monkeypatch.setattr(flows.artifacts, "update_progress_artifact", lambda artifact, progress: shown.append(progress))
    config = validate({"finetune_epochs": 10, "prune": {"iterations": 2, "max_epochs": 5}})
    progress = PruneProgress(config, uuid4())
    record = {"remaining_fraction": 0.8, "epochs": 2, "stop_reason": "incop", "val_acc": 0.9, "distances": []}
    for epoch in (1, 10):
        progress("epoch", {"iteration": 0, "epoch": epoch, "val_acc": 0.5, "distance": None})
    progress("iteration", {**record, "iteration": 0, "remaining_fraction": 1.0})
    progress("epoch", {"iteration": 1, "epoch": 2, "val_acc": 0.5, "distance": 0.1})
    progress("iteration", {**record, "iteration": 1})
    progress("iteration", {**record, "iteration": 2})
    # fine-tune 10 epochs, iteration 1 up to 5, the final one up to 10 (InCoP's final cap): 25 in all
    assert shown == pytest.approx([4.0, 40.0, 48.0, 60.0, 100.0])  # iteration 0's end repeats nothing


def test_a_resumed_stage_logs_each_finished_iteration_from_its_record(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(flows.artifacts, "update_progress_artifact", lambda artifact, progress: None)
    records = {t: {"iteration": t, "remaining_fraction": 1 - 0.2 * t, "epochs": 3, "stop_reason": "incop",
                   "val_acc": 0.9, "distances": [{"epoch": 3, "distance": 0.0125}]} for t in (0, 1, 2)}
    monkeypatch.setattr(flows.artifacts, "finished_iterations", lambda run: sorted(records))
    monkeypatch.setattr(flows.artifacts, "read_record", lambda run, t: records[t])
    PruneProgress(validate({"prune": {"iterations": 3}})).replay(tmp_path, range(1, 4))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" done")[0] for line in lines] == ["iteration 1/3", "iteration 2/3"]
    assert "80.0 % weights left" in lines[0] and "last distance 0.0125" in lines[0] and "validation 90.00 %" in lines[0]


def _completed(name: str):
    return SimpleNamespace(id=uuid4(), name=name, state=SimpleNamespace(is_completed=lambda: True, name="Completed"))


def test_the_pooled_parent_run_shows_the_cpu_runs_summary(monkeypatch, tmp_path):
    children, created = [], []
    monkeypatch.setattr(flows.pools, "run_deployment",
                        lambda name, parameters: children.append((name, parameters)) or _completed(name))
    summary = SimpleNamespace(key="prune-and-export-summary", data="# Gains",
                              description="Gains against the dense model.")
    monkeypatch.setattr(flows.pools, "child_markdown",
                        lambda run_id: [summary, SimpleNamespace(key=None, data="x", description="")])
    monkeypatch.setattr(flows.pools, "create_markdown_artifact", lambda **kwargs: created.append(kwargs))
    params = load_params(None, [f"storage={tmp_path}"])
    result = flows.pools.prune_and_export_pools.fn(params)
    assert (result["summary"] == "# Gains"
            and [name for name, _ in children] == [flows.pools.GPU_DEPLOYMENT, flows.pools.CPU_DEPLOYMENT])
    assert created == [{"key": "prune-and-export-summary", "markdown": "# Gains",
                        "description": "Gains against the dense model."}]
    assert (children[1][1]["source"] == flows.pools.stage_uri(params)
            and children[0][1]["params"]["storage"] == str(tmp_path))


def test_a_parent_run_whose_cpu_run_left_no_summary_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(flows.pools, "run_deployment", lambda name, parameters: _completed(name))
    monkeypatch.setattr(flows.pools, "child_markdown", lambda run_id: [])
    with pytest.raises(RuntimeError, match="without a prune-and-export-summary"):
        flows.pools.prune_and_export_pools.fn(load_params(None, [f"storage={tmp_path}"]))
