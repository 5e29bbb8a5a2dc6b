#!/usr/bin/env bash
# Issue 21's DRIVE no-regression step: continue the multi-camera run (scripts/train_multicamera.sh)
# at a lower learning rate with DRIVE's patches drawn WEIGHT times as often as the other cameras'.
# Same data, same validation split (seed 0), same 540 px scale. Resumable like train_multicamera.sh.
# Usage: scripts/finetune_multicamera.sh [OUT] [WEIGHT] [INIT] [EPOCHS]
set -euo pipefail
out=${1:-runs/ft-drive2}
weight=${2:-2}
init=${3:-runs/multicamera/best.pt}
epochs=${4:-6}
resume=()
[ -f "$out/last.pt" ] && resume=(--resume)
exec fundus-train --preset improved --data drive,chase,stare --data-root "${FUNDUS_DATA_ROOT:-../shared/data}" \
  --dataset-weights "drive=$weight" --init "$init" \
  --scale-reference 540 --width 0.25 --patch-size 64 --batch-size 32 --samples-per-epoch 32000 \
  --schedule cosine --epochs "$epochs" --lr 3e-4 --ema 0.999 --compile true --threads 1 \
  --checkpoint-every 200 --out "$out" "${resume[@]}"
