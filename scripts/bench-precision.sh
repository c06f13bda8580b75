#!/usr/bin/env bash
# Latency per precision (f32, f16, q8) of yolov3-tiny@416 (real weights) and SlimYOLOv3
# prune_0.95@416 (random weights, seed 1) on THIS CPU, batch 1, 2 threads, plus each model file's
# size. Prints a markdown table (docs/performance.md keeps a copy with machine and date).
# q8 and f16 run with the per-layer plan measured at load (each conv reduced only where faster);
# "q8 all" forces every conv to int8 (the worst-case accuracy and its speed).
# usage: scripts/bench-precision.sh [--iters N]
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=20
[ "${1:-}" = "--iters" ] && ITERS=$2
export RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=2
scripts/fetch-assets.sh >/dev/null
cargo build --release --quiet
K=${CARGO_TARGET_DIR:-target}/release/kestrel
PY=${KESTREL_PYTHON:-.venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" scripts/bench/darknet.py random models/cfg/prune_0.95.cfg "$TMP/prune_0.95.weights" 1 >/dev/null

median() { # cfg weights precision [extra...]: forward median ms
  local cfg=$1 w=$2 p=$3; shift 3
  "$K" bench --cfg "$cfg" --weights "$w" --size 416 --iters "$ITERS" --precision "$p" --json "$@" 2>/dev/null \
    | "$PY" -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["forward"]["median_ms"])'
}
size_mb() { "$PY" -c 'import os,sys; print("%.1f" % (os.path.getsize(sys.argv[1]) / 1e6))' "$1"; }

echo "| model @416 | f32 ms | f16 ms | q8 ms (plan) | q8 ms (all int8) | f32 / q8 | .weights MB | f16 file MB | q8_0 file MB (% of f32) |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in "yolov3-tiny assets/yolov3-tiny.cfg assets/yolov3-tiny.weights" \
         "prune_0.95 models/cfg/prune_0.95.cfg $TMP/prune_0.95.weights"; do
  set -- $m
  name=$1 cfg=$2 w=$3
  f32=$(median "$cfg" "$w" f32)
  f16=$(median "$cfg" "$w" f16)
  q8=$(median "$cfg" "$w" q8)
  q8all=$(median "$cfg" "$w" q8 --all-reduced)
  "$K" quantize --cfg "$cfg" --weights "$w" --dtype f16 --out "$TMP/$name-f16.gguf" 2>/dev/null
  "$K" quantize --cfg "$cfg" --weights "$w" --dtype q8_0 --out "$TMP/$name-q8.gguf" 2>/dev/null
  ratio=$("$PY" -c "print('%.2f' % ($f32 / $q8))")
  pct=$("$PY" -c "import os; print('%.1f' % (100 * os.path.getsize('$TMP/$name-q8.gguf') / os.path.getsize('$w')))")
  echo "| $name | $f32 | $f16 | $q8 | $q8all | ${ratio}× | $(size_mb "$w") | $(size_mb "$TMP/$name-f16.gguf") | $(size_mb "$TMP/$name-q8.gguf") ($pct %) |"
done
