#!/usr/bin/env bash
# Pipeline overhead of `kestrel run` (printed, never asserted): replay of the real photos through
# yolov3-tiny@416 on the CPU, release build. Overhead = (decode + preprocess + postprocess + publish)
# / forward, from the run's own --stats-json (per-stage means). Goal: <= 10 %.
#   scripts/bench-pipeline.sh [N_FRAMES]   (env: KESTREL_BIN, CARGO_TARGET_DIR, SIZE)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-60}
SIZE=${SIZE:-416}
BIN=${KESTREL_BIN:-${CARGO_TARGET_DIR:-target}/release/kestrel}
if [ ! -x "$BIN" ]; then
  cargo build --release
fi
for f in yolov3-tiny.cfg yolov3-tiny.weights coco.names bus.jpg zidane.jpg; do
  [ -f "assets/$f" ] || { echo "assets/$f missing: run scripts/setup.sh" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# a VisDrone-VID sequence of the real photos, alternating
seq_dir="$work/replay/sequences/bench"
mkdir -p "$seq_dir"
for i in $(seq 1 10); do
  src=assets/bus.jpg; [ $((i % 2)) -eq 0 ] && src=assets/zidane.jpg
  cp "$src" "$seq_dir/$(printf %07d "$i").jpg"
done
"$BIN" run --source "replay:$work/replay" --loop --max-frames "$N" \
  --cfg assets/yolov3-tiny.cfg --weights assets/yolov3-tiny.weights --names assets/coco.names \
  --size "$SIZE" --jsonl "$work/out.jsonl" --mavlink udpout:127.0.0.1:14550 \
  --stats-json "$work/stats.json" --stats-every 1000 2>/dev/null
python3 - "$work/stats.json" "$N" "$SIZE" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
st = s["latency_ms"]["stages"]
mean = lambda k: st.get(k, {}).get("mean", 0.0)
print(f"kestrel run: replay of real photos, yolov3-tiny@{sys.argv[3]}, {sys.argv[2]} frames, CPU")
print(f"frames in/out {s['frames_in']}/{s['frames_out']}, fps out {s['fps_out']:.2f}, drops {s['drops']}")
for k in ["decode", "queue", "preprocess", "forward", "postprocess", "publish"]:
    x = st.get(k, {})
    print(f"  {k:<12} mean {x.get('mean', 0):8.2f} ms  p50 {x.get('p50', 0):8.2f}  p99 {x.get('p99', 0):8.2f}")
e = s["latency_ms"]["capture_to_publish"]
print(f"  capture->publish p50 {e['p50']:.1f} ms, p99 {e['p99']:.1f} ms")
over = sum(mean(k) for k in ["decode", "preprocess", "postprocess", "publish"])
print(f"pipeline overhead (decode+preprocess+postprocess+publish)/forward = {over:.2f}/{mean('forward'):.2f} ms = {100*over/mean('forward'):.1f} % (goal <= 10 %)")
print(f"  of which on the inference thread (preprocess+postprocess): {100*(mean('preprocess')+mean('postprocess'))/mean('forward'):.1f} %")
PY
