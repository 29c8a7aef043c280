#!/usr/bin/env bash
# The main job on embedded data: generate the synthetic dataset, train one slimmable Mask R-CNN
# for all widths on the CPU, evaluate every width, print the per-width AP table and plot AP vs
# FLOPs. Usage: tools/demo.sh PYTHON [extra config overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${1:?usage: tools/demo.sh PYTHON [overrides...]}"; shift
OUT=output/demo
DATA="${SLIMDET_DATASETS:-datasets}/synthetic"
start=$(date +%s)

if [[ ! -f "$DATA/annotations/instances_val.json" ]]; then
  "$PY" -m slimdet.data.synthetic --out "$DATA"
fi
"$PY" tools/train_net.py --config-file configs/Synthetic/slim_mask_rcnn_R18_FPN.yaml \
  OUTPUT_DIR "$OUT" "$@"
"$PY" -c "from slimdet.evaluation import plot_ap_vs_flops as p; p('$OUT/per_width_results.json', '$OUT/ap_vs_flops.png')"

echo
echo "Per-width results on synthetic_instances_val ($OUT/per_width_results.csv):"
column -s, -t < "$OUT/per_width_results.csv"
echo "Plot: $OUT/ap_vs_flops.png   Wall time: $(( $(date +%s) - start )) s"
