"""Rich progress over iterations and epochs, driven by the runner's events."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from incop_core.imp.config import RunConfig


class ProgressPrinter:
    def __init__(self, console: Console, config: RunConfig) -> None:
        self.console, self.config = console, config
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=False)
        self.iterations = self.bar.add_task("iterations", total=config.prune.iterations + 1)
        self.epochs = self.bar.add_task("epochs", total=config.finetune_epochs)

    def __enter__(self) -> "ProgressPrinter":
        return self  # the bar starts with the first event, so early errors print alone

    def __exit__(self, *exc) -> None:
        self.bar.stop()

    def on_event(self, kind: str, info: dict) -> None:
        self.bar.start()
        if kind == "stage":
            total = info.get("epochs") or info.get("max_epochs")
            label = "fine-tune" if info["name"] in ("finetune", "noise") else f"iteration {info['iteration']}"
            self.bar.reset(self.epochs, total=total, description=f"{label} epochs")
        elif kind == "epoch":
            distance = "" if info["distance"] is None else f", distance {info['distance']:.4f}"
            self.bar.update(self.epochs, completed=info["epoch"],
                            description=f"iter {info['iteration']} epoch {info['epoch']:.3g}: val "
                                        f"{100 * info['val_acc']:.1f} %{distance}")
        elif kind == "iteration":
            self.bar.update(self.iterations, completed=info["iteration"] + 1)
            self.console.print(f"iteration {info['iteration']}: {100 * info['remaining_fraction']:.1f} % weights left, "
                               f"{info['epochs']:.3g} epochs ({info['stop_reason']}), test "
                               f"{100 * info['test_acc']:.2f} %")
        elif kind == "finished" and info.get("resumed"):
            self.bar.update(self.iterations, completed=self.config.prune.iterations + 1)
            self.console.print("run already finished; nothing to do")
