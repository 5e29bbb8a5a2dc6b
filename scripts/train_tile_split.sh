#!/usr/bin/env bash
# The improved U-Net of Table 1 (same recipe and budget) trained and tested on the paper's
# tile-level random 8:2 split, for comparison with the official image-level split.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${FUNDUS_DATA_ROOT:-../shared/data}
OUT=runs/tilesplit
[[ -f $OUT/data/split.json ]] || python scripts/tile_split_protocol.py --data-root "$DATA_ROOT" --out "$OUT/data"
resume=(); [[ -f $OUT/model/last.pt ]] && resume=(--resume)
fundus-train --preset improved --data "folder:$OUT/data/train" --width 0.25 --patch-size 64 --batch-size 32 \
  --samples-per-epoch 16000 --epochs 2 --schedule cosine --seed 0 --checkpoint-every 100 --threads 1 \
  --out "$OUT/model" "${resume[@]}"
python -m fundus_vessels.train.evaluate --checkpoint "$OUT/model/best.pt" --data "folder:$OUT/data/test" --out "$OUT/test" --panels 0
