#!/usr/bin/env bash
# The default bundle's training run (issue 21): DRIVE 21-40 + CHASE_DB1 01-10 + STARE's first ten,
# every photograph resampled so its FOV is 540 px across (DRIVE's own scale), width 0.25 U-Net.
# Resumable: run the same command again after a kill (it adds --resume when OUT/last.pt exists).
# Usage: scripts/train_multicamera.sh [OUT] [DATA] [EPOCHS]
set -euo pipefail
out=${1:-runs/multicamera}
data=${2:-drive,chase,stare}
epochs=${3:-16}
resume=()
[ -f "$out/last.pt" ] && resume=(--resume)
exec fundus-train --preset improved --data "$data" --data-root "${FUNDUS_DATA_ROOT:-../shared/data}" \
  --scale-reference 540 --width 0.25 --patch-size 64 --batch-size 32 --samples-per-epoch 32000 \
  --schedule cosine --epochs "$epochs" --lr 1e-3 --ema 0.999 --compile true --threads 1 \
  --checkpoint-every 200 --out "$out" "${resume[@]}"
