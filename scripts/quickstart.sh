#!/usr/bin/env bash
# The main job on the built-in default, end to end, into $MSREID_WORK (default: work/):
# a synthetic dataset in the Market-1501 layout, a brief training with evaluation,
# a full-int8 TFLite export, and the edge demo (no TensorFlow) on a synthetic video.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(bash "$root/scripts/setup_env.sh")"
export PATH="$venv/bin:$PATH" TF_CPP_MIN_LOG_LEVEL=2
work="${MSREID_WORK:-$root/work}"
epochs="${MSREID_EPOCHS:-30}"
mkdir -p "$work"

echo "== 1/4 synthetic dataset and street video"
msreid synth --out "$work/synth" --ids 100 --cameras 6 --seed 0 --overwrite \
    --video "$work/street.mp4" --video-people 3 --video-frames 120

echo "== 2/4 train $epochs epochs, then evaluate (resumes if interrupted)"
msreid train --dataset market1501 --root "$work/synth" --out "$work/run" --epochs "$epochs" --eval-every 0
python "$root/benchmarks/color_histogram_baseline.py" "$work/synth" | tail -n 3

echo "== 3/4 export full-int8 TFLite, validate against Keras"
msreid export "$work/run/model.keras" --out "$work/export" --modes int8 \
    --calibration-root "$work/synth" --calibration-dataset market1501

echo "== 4/4 edge demo on the street video (LiteRT only)"
python -m edge_demo run --model-dir "$work/export" --mode int8 --source "$work/street.mp4" --headless \
    --gallery "$work/gallery.sqlite" --out-video "$work/street_annotated.mp4" --events "$work/events.jsonl"
echo "done: $work/run (model, metrics.json), $work/export (TFLite), $work/street_annotated.mp4, $work/events.jsonl"
