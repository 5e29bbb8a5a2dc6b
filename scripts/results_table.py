"""Print README result rows (markdown) from ``train.evaluate`` metrics files.

python scripts/results_table.py "FCN-8s=runs/table1-fcn/test/metrics.json" ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("miou", "f1", "accuracy", "sensitivity", "specificity", "auc")


def row(label: str, path: Path) -> str:
    metrics = json.loads(path.read_text())
    pooled, mean = metrics["fov"]["pooled"], metrics["fov"]["per_image_mean"]
    whole = metrics["whole_image"]["pooled"]["miou"]
    cells = [f"{pooled[k]:.4f}" for k in COLUMNS]
    return f"| {label} | " + " | ".join(cells) + f" | {mean['miou']:.4f} / {mean['f1']:.4f} | {whole:.4f} |"


def main(argv: list[str]) -> int:
    header = [
        "model",
        "MIoU",
        "F1",
        "accuracy",
        "sensitivity",
        "specificity",
        "AUC",
        "per-image mean MIoU / F1",
        "whole-image MIoU",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for item in argv:
        label, path = item.split("=", 1)
        print(row(label, Path(path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
