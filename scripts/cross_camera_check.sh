#!/usr/bin/env bash
# Each shipped bundle on CHASE_DB1 images none of them trained on: subjects 07 and 08 (held out of
# unet-drive-chase's training by its validation split; unet-drive never saw CHASE_DB1), through the
# product path (fundus-infer, FOV computed from the photograph) and the project's evaluation.
#   scripts/cross_camera_check.sh [OUT]      -> OUT/<bundle>/metrics.json, one line of scores per bundle
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_ROOT=${FUNDUS_DATA_ROOT:-../shared/data}
OUT=${1:-runs/cross-camera}
DATA=$OUT/chase-07-08
mkdir -p "$DATA/images" "$DATA/labels"
for eye in 07L 07R 08L 08R; do
  ln -sf "$(realpath "$DATA_ROOT/CHASEDB1/Image_$eye.jpg")" "$DATA/images/Image_$eye.jpg"
  ln -sf "$(realpath "$DATA_ROOT/CHASEDB1/Image_${eye}_1stHO.png")" "$DATA/labels/Image_$eye.png"
done
for bundle in unet-drive unet-drive-chase; do
  fundus-infer "$DATA/images" -o "$OUT/$bundle/infer" --model "$bundle" --quiet
  echo -n "$bundle on CHASE_DB1 07+08: "
  python -m fundus_vessels.train.evaluate --predictions "$OUT/$bundle/infer" --model "$bundle" --data "folder:$DATA" \
    --split test --out "$OUT/$bundle" --panels 0
done
