#!/usr/bin/env bash
# The main job on embedded data: generate the synthetic dataset, train one slimmable Mask R-CNN
# for all widths on the CPU, evaluate every width, print the per-width AP table and plot AP vs
# FLOPs, profile every width on this machine and draw what each width detects. Runs on the GPU
# where PyTorch sees one (the configs pin MODEL.DEVICE cpu), else on the CPU.
# Usage: tools/demo.sh PYTHON [extra config overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:?usage: tools/demo.sh PYTHON [overrides...]}"; shift
OUT=output/demo
CONFIG=configs/Synthetic/slim_mask_rcnn_R18_FPN.yaml
DATA="${SLIMDET_DATASETS:-datasets}/synthetic"
start=$(date +%s)
DEVICE=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
echo "Device: $DEVICE"

if [[ ! -f "$DATA/annotations/instances_val.json" ]]; then
  "$PY" -m slimdet.data.synthetic --out "$DATA"
fi
"$PY" tools/train_net.py --config-file "$CONFIG" OUTPUT_DIR "$OUT" MODEL.DEVICE "$DEVICE" "$@"
"$PY" -c "from slimdet.evaluation import plot_ap_vs_flops as p; p('$OUT/per_width_results.json', '$OUT/ap_vs_flops.png')"
# Deployment side: what every width costs on this machine, and what every width detects.
"$PY" tools/profile_widths.py --config-file "$CONFIG" --weights "$OUT/model_final.pth" \
  --input-size 128 128 --image "$DATA/images/val/000001.png" --output "$OUT/profile.json" \
  MODEL.DEVICE "$DEVICE"
"$PY" tools/predict.py --config-file "$CONFIG" --input "$DATA/images/val/00000[1-3].png" \
  --all-widths --scale 3 --output "$OUT/widths" --opts MODEL.WEIGHTS "$OUT/model_final.pth" MODEL.DEVICE "$DEVICE"

echo
echo "Per-width results on synthetic_instances_val ($OUT/per_width_results.csv):"
column -s, -t < "$OUT/per_width_results.csv"
echo "Plot: $OUT/ap_vs_flops.png   Profile of every width on this machine: $OUT/profile.json"
echo "What each width detects, side by side: $(ls "$OUT"/widths/*_widths.png | tr '\n' ' ')"
echo "Wall time: $(( $(date +%s) - start )) s"
