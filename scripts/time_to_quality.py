"""Time to quality of a training run: validation MIoU against wall-clock minutes, as a figure and a table.

    python scripts/time_to_quality.py runs/drive/log.jsonl --out docs/figures/unet-drive/time_to_quality.png \
        --table docs/results/unet-drive/time_to_quality.json [--peer 0.825]

Reads the epoch records of ``log.jsonl`` (``train_minutes``: training wall-clock including validation,
summed over resumed sessions; ``val_miou``), draws the curve with the peer's level as a line, and
writes the table with the first minute and step at which validation MIoU reaches the peer's level.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fundus_vessels.runtime.imageio import atomic_output, write_json


def epoch_records(log: Path) -> list[dict]:
    """Epoch records carrying validation scores and training minutes, in step order."""
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("kind") == "epoch" and "val_miou" in r and "train_minutes" in r]
    return sorted(rows, key=lambda r: r["step"])


def first_reaching(rows: list[dict], level: float) -> dict | None:
    """The first epoch record whose validation MIoU is at least ``level``."""
    return next((r for r in rows if r["val_miou"] >= level), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="log.jsonl of a training run")
    parser.add_argument("--out", type=Path, required=True, help="figure (PNG)")
    parser.add_argument("--table", type=Path, required=True, help="table (JSON)")
    parser.add_argument("--peer", type=float, default=0.825, help="the peer's MIoU (LadderNet, 41 min on this CPU)")
    parser.add_argument("--peer-minutes", type=float, default=41.0)
    parser.add_argument(
        "--test-miou", type=float, help="the shipped checkpoint's DRIVE test MIoU (scored once), drawn at its minute"
    )
    args = parser.parse_args(argv)
    rows = epoch_records(args.log)
    if not rows:
        parser.error(f"{args.log}: no epoch records with val_miou and train_minutes")
    reached = first_reaching(rows, args.peer)
    best = max(rows, key=lambda r: r["val_miou"])  # the shipped checkpoint: best validation MIoU
    table = {
        "log": str(args.log),
        "criterion": "validation MIoU (pooled, FOV, threshold of the training config) at the end of each epoch",
        "peer_miou": args.peer,
        "peer_minutes": args.peer_minutes,
        "first_at_peer_level": {k: reached[k] for k in ("step", "train_minutes", "val_miou")} if reached else None,
        "rows": [{k: r[k] for k in ("step", "train_minutes", "val_miou", "val_f1", "val_auc")} for r in rows],
    }
    if args.test_miou is not None:  # scored once on DRIVE test
        table["shipped_test_miou"] = {
            "step": best["step"],
            "train_minutes": best["train_minutes"],
            "miou": args.test_miou,
        }
    write_json(args.table, table)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot([r["train_minutes"] for r in rows], [r["val_miou"] for r in rows], "o-", label="this model (validation)")
    peer_label = f"peer (LadderNet): DRIVE test MIoU {args.peer} after {args.peer_minutes:g} min"
    ax.axhline(args.peer, color="gray", linestyle="--", label=peer_label)
    if args.test_miou is not None:
        ax.plot([best["train_minutes"]], [args.test_miou], "r*", markersize=12, label="shipped: DRIVE test MIoU")
    if reached:
        ax.axvline(
            reached["train_minutes"],
            color="tab:green",
            linestyle=":",
            label=f"reached at {reached['train_minutes']:.0f} min",
        )
    ax.set_xlabel("training wall-clock (minutes, this 2-core CPU)")
    ax.set_ylabel("validation MIoU (FOV, pooled)")
    ax.set_ylim(max(0.4, min(r["val_miou"] for r in rows) - 0.02), 0.85)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    with atomic_output(args.out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(json.dumps(table["first_at_peer_level"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
