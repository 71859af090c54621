"""Prefect artifacts for the pipeline: a progress bar per pruning iteration, tables, a summary, the plots inline."""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from uuid import UUID

from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from incop_core.imp import paths
from incop_core.imp.config import RunConfig
from incop_core.foundations.fileio import read_json
from incop_core.imp.records import iteration_rows
from incop_core.imp.rundir import finished_iterations, read_record
from incop_core.imp.plan import retrain_epochs

from .ui_plots import plots_markdown


class PruneProgress:
    """One progress artifact over the whole pruning job, and a log line per stage, epoch and iteration (the runner's
    `on_event`). Fine-tuning is the first share, advancing per epoch; each retraining iteration is a share the size
    of its epoch budget. The flow creates the artifact (`create`) where the run directory stands, and each stage
    reopens it by id, so a resumed run never starts again at 0 %."""

    KEY = "prune-progress"

    def __init__(self, config: RunConfig, artifact: Optional[UUID] = None) -> None:
        self.finetune, self.iterations = config.finetune_epochs, config.prune.iterations
        self.budgets = [retrain_epochs(config, t == self.iterations) for t in range(1, self.iterations + 1)]
        self.artifact, self.shown = artifact, 0.0

    @classmethod
    def create(cls, config: RunConfig, runs_dir: str) -> UUID:
        done = finished_iterations(paths.run_dir(Path(runs_dir), config.config_hash()))
        return create_progress_artifact(progress=cls(config).percent(max(done)) if done else 0.0, key=cls.KEY,
                                        description="Fine-tuning epochs, then pruning iterations, finished.")

    def percent(self, iteration: int, epoch: Optional[float] = None) -> float:
        """How far the job is once `iteration` is finished (epoch None), or at `epoch` of it."""
        if epoch is None:
            units = self.finetune + sum(self.budgets[:iteration])
        elif iteration == 0:
            units = min(epoch, self.finetune)
        else:
            units = self.finetune + sum(self.budgets[:iteration - 1]) + min(epoch, self.budgets[iteration - 1])
        return round(min(100.0, 100.0 * units / (self.finetune + sum(self.budgets))), 1)  # the UI shows it as given

    def _show(self, percent: float) -> None:
        if self.artifact and percent > self.shown:
            update_progress_artifact(self.artifact, progress=percent)
            self.shown = percent

    def _label(self, iteration: int) -> str:
        return "fine-tune" if iteration == 0 else f"iteration {iteration}/{self.iterations}"

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "stage":
            self.started(info)
        elif kind == "epoch":
            distance = "" if info["distance"] is None else f", distance {info['distance']:.4f}"
            print(f"{self._label(info['iteration'])} epoch {info['epoch']:.3g}: "
                  f"validation {100 * info['val_acc']:.2f} %{distance}")
            self._show(self.percent(info["iteration"], info["epoch"]))
        elif kind == "iteration":
            self.finished(info)

    def started(self, info: dict) -> None:
        if info.get("cached"):
            print(f"fine-tune: reusing the identical fine-tuning in {info['cached']}")
            self.finished(read_json(Path(info["cached"]) / paths.RECORD), earlier=True)
        elif info["name"] == "finetune":
            print(f"fine-tune: up to {info['epochs']} epochs")
        elif info["name"] == "noise":
            print("fine-tune: a shared fine-tuning measured at another retraining rate; measuring its noise at this "
                  "run's (1 epoch)")
        else:
            print(f"{self._label(info['iteration'])}: pruning, then retraining up to {info['max_epochs']} epochs")

    def finished(self, record: dict, earlier: bool = False) -> None:
        """The line of a finished iteration (fine-tune = 0), from the runner's event or, resuming, its record."""
        distance = f", last distance {record['distances'][-1]['distance']:.4f}" if record.get("distances") else ""
        print(f"{self._label(record['iteration'])} done{' earlier' if earlier else ''}: "
              f"{100 * record['remaining_fraction']:.1f} % weights left, {record['epochs']:.3g} epochs "
              f"({record['stop_reason']}){distance}, validation {100 * record['val_acc']:.2f} %")
        self._show(self.percent(record["iteration"]))

    def replay(self, run: Path, iterations: range) -> None:
        """A resumed stage: one line per iteration of `iterations` that the run directory already holds."""
        for t in finished_iterations(run):
            if t in iterations:
                self.finished(read_record(run, t), earlier=True)


def publish_tables(records: list[dict], bench_rows: list[dict]) -> None:
    create_table_artifact(key="prune-iterations", table=iteration_rows(records),
                          description="Remaining weights, epochs, stop reason and accuracy per iteration.")
    create_table_artifact(key="benchmark", table=bench_rows, description="onnxruntime latency and size per variant and "
                                                                         "profile.")


def publish_summary(markdown: str, files: list[Path]) -> None:
    """The summary and, in one more markdown artifact, the plots embedded inline: the UI renders them itself,
    whereas file:// links to the worker's disk are blocked by browsers and point nowhere off the worker."""
    create_markdown_artifact(key="prune-and-export-summary", markdown=markdown,
                             description="Gains against the dense model.")
    if files:
        create_markdown_artifact(key="prune-and-export-plots", markdown=plots_markdown(files),
                                 description="Accuracy, retraining epochs, remaining weights and wall time per "
                                             "iteration.")


def publish_parameters(params: dict, changed: dict, origin: str) -> None:
    """The merged parameters this run uses, as the Parameters tab cannot show them (it shows what the caller sent)."""
    import json

    lines = [f"Effective parameters: the {origin} ones" + (", with these changed:" if changed else ", unchanged."), ""]
    lines += [f"- `{key}` = `{json.dumps(value)}`" for key, value in changed.items()]
    lines += ["", "```json", json.dumps(params, indent=1, sort_keys=True), "```"]
    create_markdown_artifact(key="effective-parameters", markdown="\n".join(lines),
                             description="Every parameter of this run after merging the caller's onto the served ones.")

