"""Iteration tables for the CLI, the Prefect pipeline and the README: pure functions over run records."""

from __future__ import annotations

def iteration_rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        last = r["distances"][-1]["distance"] if r.get("distances") else None
        rows.append({"iter": r["iteration"], "remaining %": round(100 * r["remaining_fraction"], 2),
                     "epochs": round(r["epochs"], 2), "stop": r["stop_reason"],
                     "val acc %": round(100 * r["val_acc"], 2),
                     "test acc %": round(100 * r["test_acc"], 2), "wall s": round(r["wall_seconds"], 1),
                     "flow s": round(r["flow_seconds"], 2), "last distance": None if last is None else round(last, 4)})
    return rows


def totals(records: list[dict]) -> dict:
    """Retraining totals over iterations >= 1 (iteration 0 is the dense fine-tune)."""
    pruning = [r for r in records if r["iteration"] >= 1]
    wall = sum(r["wall_seconds"] for r in pruning)
    flow = sum(r["flow_seconds"] for r in pruning)
    return {"iterations": len(pruning), "retrain_epochs": sum(r["epochs"] for r in pruning),
            "pruning_wall_seconds": wall, "flow_seconds": flow, "flow_share": flow / wall if wall else 0.0,
            "final_remaining_fraction": records[-1]["remaining_fraction"] if records else None,
            "final_test_acc": records[-1]["test_acc"] if records else None}


CHANCE_MARGIN = 0.015  # accuracy within 1.5 points of 1/classes is chance


def chance_warnings(record: dict, classes: int) -> list[str]:
    """A warning when a stage ended at chance accuracy (validation or test accuracy at most CHANCE_MARGIN above
    1/classes): the network collapsed, usually from too high a learning rate."""
    chance = 1 / classes
    if min(record["val_acc"], record["test_acc"]) > chance + CHANCE_MARGIN:
        return []
    stage = "fine-tuning" if record["iteration"] == 0 else f"retraining after prune iteration {record['iteration']}"
    option = "optim.lr" if record["iteration"] == 0 else "optim.retrain_lr"
    return [f"{stage} ended at chance accuracy (validation {100 * record['val_acc']:.1f} %, test "
            f"{100 * record['test_acc']:.1f} %, chance {100 * chance:.3g} %); lower the learning rate "
            f"(--set {option}=...)"]


def run_warnings(records: list[dict]) -> list[str]:
    """Every warning the run's records carry, first iteration first."""
    return [w for r in records for w in r.get("warnings", [])]


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no finished iterations)\n"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join("" if row[c] is None else str(row[c]) for c in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def dense_plateau(records: list[dict]) -> dict:
    """How the dense model ended fine-tuning (iteration 0's record): epochs, validation accuracy per epoch, the gain
    over its last 2 epochs and whether that is a plateau (< 0.3 pp; docs/algorithms.md §7), and its test accuracy."""
    dense = records[0]
    accs = [h["val_acc"] for h in dense["history"] if h["epoch"] >= 1]
    return {"epochs": len(accs), "val_acc_per_epoch": accs, "best_val_acc": dense["val_acc"],
            "test_acc": dense["test_acc"],
            "val_gain_last_2_epochs_pp": dense.get("plateau_gain_pp"), "plateaued": bool(dense.get("plateau"))}


def plateau_sentence(plateau: dict, train_images: int, test_images: int) -> str:
    gain = plateau["val_gain_last_2_epochs_pp"]
    return (f"Dense baseline: {plateau['epochs']} cosine fine-tuning epochs on {train_images} training images; "
            f"validation gained {'n/a' if gain is None else f'{gain:.2f}'} pp over its last 2 epochs "
            f"({'a plateau: < 0.3 pp' if plateau['plateaued'] else 'NOT a plateau (>= 0.3 pp)'}); test accuracy "
            f"{100 * plateau['test_acc']:.2f} % on {test_images} test images.")
