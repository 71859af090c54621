"""P7 (issue #11): training throughput of incop's masked trainer against a plain PyTorch loop.

    .venv/bin/python bench/trainer_throughput.py                  # small CNN on the CPU, ~2 min
    .venv/bin/python bench/trainer_throughput.py --model resnet18 # on a GPU: the bf16 / channels_last path

Same model, batch, data and device for every loop; each timed pass is one pass over the same training
subset, the three loops interleaved round by round so machine noise hits them alike; figures are medians.
- plain: `torch.optim.SGD` step, nothing else (on CUDA with the same bf16 autocast and channels_last
  layout the trainer uses, so the ratio measures the trainer's own overhead, not a precision change);
- masked: `incop_core.training.train.train_epoch` with `MaskedSGD` at 50 % global sparsity (gradients and
  weights masked every step), monitor off;
- masked+monitor: the same with the streaming IF/GF monitor on (what `incop-if` / `incop-gf` with
  streaming estimators run).
P7 = masked+monitor images/s ÷ plain images/s (target >= 0.95). Writes bench/results/trainer_throughput.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from incop_core.training.optim import OptimConfig
from incop_core.datasets.config import DataConfig
from incop_core.datasets.data import load_dataset
from incop_core.datasets.splits import batches
from incop_core.datasets.placement import place_dataset
from incop_core.platforms.devices import autocast, prepare_model, resolve
from incop_core.foundations.fileio import write_json_atomic
from incop_core.pruning.magnitude import prune
from incop_core.pruning.masks import Mask, prunable_weights
from incop_core.models.zoo import ModelConfig, build_model
from incop_core.consistency.streaming import StreamMonitor
from incop_core.training.masked_sgd import MaskedSGD
from incop_core.training.train import train_epoch

ROOT = Path(__file__).resolve().parent
TARGET = 0.95


def plain_epoch(model, data, opt, batch_size, device, generator) -> None:
    model.train()
    for images, labels in batches(data.train, batch_size, data, device, generator):
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device):
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def half_sparse(model) -> Mask:
    dense = Mask.dense(model)
    weights = prunable_weights(model)
    count = sum(int(m.sum()) for m in dense.tensors.values()) // 2
    return prune(weights, dense, {"*": count}, "global")


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small-cnn")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--train-subset", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads on the CPU (0: torch's default)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "trainer_throughput.json")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve(args.device)
    data = place_dataset(load_dataset(DataConfig(name="fashion-mnist", train_subset=args.train_subset), 0), device)
    torch.manual_seed(0)
    model = prepare_model(build_model(ModelConfig(name=args.model), data.input_shape, data.num_classes), device)
    mask = half_sparse(model)
    cfg = OptimConfig(lr=0.01, batch_size=args.batch)
    plain_opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                foreach=True)
    masked_opt = MaskedSGD(model, mask, cfg)
    monitor = StreamMonitor(model)

    def masked(with_monitor: bool, gen):
        if with_monitor:
            with monitor.watching():
                train_epoch(model, data, masked_opt, args.batch, device, gen, monitor)
            monitor.end_epoch()
        else:
            train_epoch(model, data, masked_opt, args.batch, device, gen)

    loops = {"plain": lambda gen: plain_epoch(model, data, plain_opt, args.batch, device, gen),
             "masked": lambda gen: masked(False, gen), "masked+monitor": lambda gen: masked(True, gen)}
    for loop in loops.values():  # warm-up: allocator, kernels, autotuning
        loop(torch.Generator().manual_seed(0))
    seconds = {name: [] for name in loops}
    for r in range(args.rounds):
        for name, loop in loops.items():
            sync(device)
            start = time.perf_counter()
            loop(torch.Generator().manual_seed(r + 1))
            sync(device)
            seconds[name].append(time.perf_counter() - start)
        print(f"round {r + 1}/{args.rounds}: "
              + ", ".join(f"{n} {len(data.train) / s[-1]:.0f} img/s" for n, s in seconds.items()),
              flush=True)
    rate = {name: len(data.train) / statistics.median(s) for name, s in seconds.items()}
    result = {"model": args.model, "device": str(device),
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "threads": torch.get_num_threads(), "batch": args.batch, "images_per_pass": len(data.train),
              "rounds": args.rounds,
              "precision": "bf16 autocast, channels_last" if device.type == "cuda" else "float32",
              "images_per_second_median": rate, "seconds": seconds,
              "P7_masked": rate["masked"] / rate["plain"], "P7": rate["masked+monitor"] / rate["plain"],
              "target": TARGET,
              "monitor_seconds": monitor.seconds,
              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    result["meets"] = result["P7"] >= TARGET
    print(f"P7 masked+monitor / plain: {result['P7']:.3f} (masked alone {result['P7_masked']:.3f}; target >= {TARGET}) "
          f"-> {'meets' if result['meets'] else 'misses'}")
    write_json_atomic(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
