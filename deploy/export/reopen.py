"""Rebuild a finished run's models and data from its directory (config.json + iteration checkpoints), through the
runner's own readers: the checkpoint checks of imp/checkpoint.py and the probe draw of `Split.probe`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from incop_core.imp import paths
from incop_core.imp.config import RunConfig
from incop_core.datasets.data import load_dataset
from incop_core.datasets.splits import Dataset, Split
from incop_core.foundations.errors import CorruptFile
from incop_core.foundations.fileio import read_json
from incop_core.pruning.masks import Mask
from incop_core.imp.checkpoint import load_checkpoint
from incop_core.models.zoo import build_model, read_state
from incop_core.imp.rundir import check_status, finished_iterations, read_record

from ..errors import DeployError, RunNotFinished


@dataclass(frozen=True)
class LoadedRun:
    """A finished run: its config, data, final iteration's record and mask."""

    path: Path
    config: RunConfig
    data: Dataset
    final: int
    record: dict
    mask: Mask

    def model(self, iteration: int) -> nn.Module:
        """The run's architecture with the weights saved at `iteration`, in eval mode on the CPU."""
        torch.manual_seed(self.config.seed)
        model = build_model(self.config.model.model_copy(update={"weights": None}), self.data.input_shape,
                            self.data.num_classes)
        folder = paths.iteration_dir(self.path, iteration)
        state, _ = load_checkpoint(folder, model, f"restore the run's original {paths.CONFIG}, or delete {folder} and "
                                                  "re-run `incop prune` with the run's settings to recompute it")
        model.load_state_dict(state)
        return model.eval()

    def probe_split(self) -> Split:
        """The run's fixed, seeded probe subset of the training split (as the runner draws it)."""
        return self.data.train.probe(self.config.seed, self.config.prune.probe_size)


def load_state(path: Path) -> dict:
    try:
        return read_state(path)
    except Exception as exc:
        raise DeployError(f"checkpoint {path} is unreadable ({type(exc).__name__}); delete its iteration folder "
                          f"and re-run `incop prune` to recompute it") from None


def require_finished(run: Path) -> None:
    """Raise unless `run` is a run directory whose pruning loop has finished."""
    run = Path(run)
    if not (run / paths.CONFIG).is_file():
        raise DeployError(f"{run} is not a run directory (no {paths.CONFIG}); pass a directory made by `incop prune`")
    status = check_status(run)
    if status.get("state") != "finished":
        raise RunNotFinished(f"run {run.name} has not finished (state {status.get('state')}, "
                             f"{status.get('iterations_done')}/{status.get('iterations_total')} iterations); "
                             f"wait for it to finish (or resume it with `incop prune`) before exporting")
    if not finished_iterations(run):
        raise RunNotFinished(f"run {run.name} is marked finished but {run / paths.ITERATIONS} holds no finished "
                             f"iteration; re-run `incop prune --config {run / paths.CONFIG} --run-dir {run}` to "
                             "recompute them, then export")
    read_record(run, finished_iterations(run)[-1])  # a damaged final record is a sentence, not a KeyError later


def load_run(run: Path) -> LoadedRun:
    """Load a finished run's config, data and final mask (models are built on demand)."""
    run = Path(run)
    require_finished(run)
    try:
        config = RunConfig.model_validate(read_json(run / paths.CONFIG))
    except CorruptFile:
        raise DeployError(f"{run / paths.CONFIG} is corrupt (not valid JSON); restore it, or remove {run} and "
                          "re-run `incop prune` with the run's settings") from None
    except Exception as exc:
        raise DeployError(f"{run / paths.CONFIG} does not load with this version of incop ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120]}); check that its schedule and criterion are "
                          "registered") from None
    final = finished_iterations(run)[-1]
    folder = paths.iteration_dir(run, final)
    data = load_dataset(config.data, config.seed)
    return LoadedRun(run, config, data, final, read_record(run, final), Mask.load(folder / paths.MASK))


def normalised(split: Split, data: Dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `limit` images of `split` as normalised float32 NCHW, with their labels."""
    images, labels = split.images[:limit], split.labels[:limit]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return ((images.float() / 255 - mean) / std).contiguous(), labels
