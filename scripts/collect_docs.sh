#!/usr/bin/env bash
# Copy a shipped model's figures, training log/config and result files into docs/, one folder per bundle.
#   scripts/collect_docs.sh runs/drive models/unet-drive
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:?usage: collect_docs.sh RUN BUNDLE}
BUNDLE=${2:?usage: collect_docs.sh RUN BUNDLE}
NAME=$(basename "$BUNDLE")
FIG=docs/figures/$NAME RES=docs/results/$NAME TRAIN=docs/training/$NAME
mkdir -p "$FIG" "$RES" "$TRAIN"
cp "$RUN/loss_curve.png" "$FIG/loss_curve.png"
cp "$RUN/test/panels/drive_01.png" "$FIG/panel_drive_01.png"
cp "$RUN/test/panels/drive_02.png" "$FIG/panel_drive_02.png"
cp "$RUN/config.yaml" "$RUN/log.jsonl" "$TRAIN/"
[[ -f "$RUN/threshold.json" ]] && cp "$RUN/threshold.json" "$RES/threshold_validation.json"
TEST_MIOU=$(python -c "import json,sys; print(json.load(open(sys.argv[1]))[\"fov\"][\"pooled\"][\"miou\"])" "$RUN/test/metrics.json")
python scripts/time_to_quality.py "$RUN/log.jsonl" --out "$FIG/time_to_quality.png" --table "$RES/time_to_quality.json" --test-miou "$TEST_MIOU"
# a fine-tuned run (--init CKPT): keep the config and log of the run it started from too
INIT=$(sed -n 's/^init: *//p' "$RUN/config.yaml" | tr -d "'\"")
if [[ -n "$INIT" ]]; then
  mkdir -p "$TRAIN/init"
  cp "$(dirname "$INIT")/config.yaml" "$(dirname "$INIT")/log.jsonl" "$TRAIN/init/"
  cp "$(dirname "$INIT")/loss_curve.png" "$FIG/loss_curve_init.png"
fi
cp "$RUN/test/metrics.json" "$RES/drive_test.json"
cp "$RUN/fundus-infer-metrics/metrics.json" "$RES/fundus_infer_drive_test.json"
cp "$BUNDLE/parity.json" "$RES/parity.json"
cp "$BUNDLE/int8_report.json" "$RES/int8_report.json"
# Table 1 of the paper (scripts/train_table1.sh), when its runs are here
for row in fcn unet improved; do
  if [[ -f "runs/table1-$row/test/metrics.json" ]]; then cp "runs/table1-$row/test/metrics.json" "docs/results/table1_$row.json"; fi
done
if [[ -f runs/tilesplit/test/metrics.json ]]; then cp runs/tilesplit/test/metrics.json docs/results/tilesplit_test_tiles.json; fi
echo "docs/ updated from $RUN and $BUNDLE"
