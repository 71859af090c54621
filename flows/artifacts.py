"""Prefect artifacts for the pipeline: a progress bar per pruning iteration, tables, a summary, links."""

from __future__ import annotations

from pathlib import Path

from prefect.artifacts import (create_link_artifact, create_markdown_artifact, create_progress_artifact,
                               create_table_artifact, update_progress_artifact)

from incop_core.report import iteration_rows


class PruneProgress:
    """Updates one progress artifact as iterations finish and prints each epoch to the flow's log (the runner's
    `on_event`), so a long fine-tune or retraining shows it is moving in the terminal and in the UI."""

    def __init__(self, iterations: int, artifact: bool = True) -> None:
        self.total = iterations + 1
        self.artifact = create_progress_artifact(progress=0.0, key="prune-progress",
                                                 description="Pruning iterations finished (iteration 0 = fine-tune).") if artifact else None

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "epoch":
            distance = "" if info["distance"] is None else f", distance {info['distance']:.4f}"
            label = "fine-tune" if info["iteration"] == 0 else f"iteration {info['iteration']}/{self.total - 1}"
            print(f"{label} epoch {info['epoch']:.3g}: validation {100 * info['val_acc']:.2f} %{distance}")
        elif kind == "iteration":
            if self.artifact:
                update_progress_artifact(self.artifact, progress=100.0 * (info["iteration"] + 1) / self.total)
            print(f"iteration {info['iteration']} done: {100 * info['remaining_fraction']:.1f} % weights left, "
                  f"{info['epochs']:.3g} epochs ({info['stop_reason']}), validation {100 * info['val_acc']:.2f} %")
        elif kind == "finished" and self.artifact:
            update_progress_artifact(self.artifact, progress=100.0)


def publish_tables(records: list[dict], bench_rows: list[dict]) -> None:
    create_table_artifact(key="prune-iterations", table=iteration_rows(records),
                          description="Remaining weights, epochs, stop reason and accuracy per iteration.")
    create_table_artifact(key="benchmark", table=bench_rows, description="onnxruntime latency and size per variant and profile.")


def publish_summary(markdown: str, files: list[Path]) -> None:
    create_markdown_artifact(key="prune-and-export-summary", markdown=markdown, description="Gains against the dense model.")
    for path in files:
        key = "plot-" + path.stem.lower().replace("_", "-").replace(".", "-")
        create_link_artifact(key=key[:60], link=path.resolve().as_uri(), link_text=path.name)
