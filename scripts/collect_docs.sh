#!/usr/bin/env bash
# Copy the shipped model's figures, training log/config and result files into docs/.
#   scripts/collect_docs.sh runs/finetune models/unet-drive-chase
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/shipped}
BUNDLE=${2:-models/unet-drive-chase}
mkdir -p docs/figures docs/results docs/training
cp "$RUN/loss_curve.png" docs/figures/loss_curve.png
cp "$RUN/test/panels/drive_01.png" docs/figures/panel_drive_01.png
cp "$RUN/test/panels/drive_02.png" docs/figures/panel_drive_02.png
cp "$RUN/config.yaml" "$RUN/log.jsonl" docs/training/
# a fine-tuned run (--init CKPT): keep the config and log of the run it started from too
INIT=$(sed -n 's/^init: *//p' "$RUN/config.yaml" | tr -d "'\"")
if [[ -n "$INIT" ]]; then
  mkdir -p docs/training/init
  cp "$(dirname "$INIT")/config.yaml" "$(dirname "$INIT")/log.jsonl" docs/training/init/
  cp "$(dirname "$INIT")/loss_curve.png" docs/figures/loss_curve_init.png
fi
cp "$RUN/test/metrics.json" docs/results/shipped_drive_test.json
cp "$RUN/fundus-infer-metrics/metrics.json" docs/results/shipped_fundus_infer_drive_test.json
cp "$BUNDLE/parity.json" docs/results/parity.json
cp "$BUNDLE/int8_report.json" docs/results/int8_report.json
for row in fcn unet improved; do
  cp "runs/table1-$row/test/metrics.json" "docs/results/table1_$row.json"
done
[[ -f runs/tilesplit/test/metrics.json ]] && cp runs/tilesplit/test/metrics.json docs/results/tilesplit_test_tiles.json
echo "docs/ updated from $RUN and $BUNDLE"
