#!/usr/bin/env bash
# Table 1 of the paper under one budget: FCN, U-Net (ReLU + SGD), improved U-Net (Leaky ReLU + Adam).
# Same data, width, patches, batch, steps and seed; only what the paper changes differs.
# Resumable: rerunning continues each row from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${FUNDUS_DATA_ROOT:-../shared/data}
COMMON=(--data drive,chase --data-root "$DATA_ROOT" --width 0.25 --patch-size 64 --batch-size 32
        --samples-per-epoch 16000 --epochs 2 --schedule cosine --seed 0 --checkpoint-every 100 --threads 1
        --val-split pooled)  # the validation split these rows were first run with
for preset in fcn unet improved; do
  out=runs/table1-$preset
  resume=(); [[ -f $out/last.pt ]] && resume=(--resume)
  fundus-train --preset "$preset" "${COMMON[@]}" --out "$out" "${resume[@]}"
  python -m fundus_vessels.train.evaluate --checkpoint "$out/best.pt" --data drive --split test --data-root "$DATA_ROOT" --out "$out/test"
done
