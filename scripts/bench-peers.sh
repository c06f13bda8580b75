#!/usr/bin/env bash
# Times Kestrel against its peers in ONE run on THIS machine: batch 1, 2 threads, same input
# (assets/bus.jpg letterboxed), same weights file for every engine.
#   peers: ONNX Runtime fp32 and static int8 (QDQ) on models exported by our own reference
#          exporter (scripts/bench/export_onnx.py, checked against OpenCV DNN before timing),
#          and OpenCV DNN 4.x (Darknet importer).
#   models: yolov3-tiny@416 (real weights, assets/), yolov3-spp3, prune_0.5_0.5, prune_0.95 @416
#          (random weights, seed 1, written once to .cache/bench/).
# Prints the table and writes it into docs/performance.md (BENCH-TABLE section).
# Usage: scripts/bench-peers.sh [--iters N] [--models "a b"] [--no-kestrel] [--kestrel-profile release|dev]
# The peers live in their own venv (.cache/bench-venv, scripts/requirements-bench.txt), not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ITERS=20
MODELS="yolov3-tiny yolov3-spp3 prune_0.5_0.5 prune_0.95"
SIZE=416
THREADS=2
WITH_KESTREL=1
KESTREL_PROFILE=release   # dev = dev profile (deps already opt-level 3) with our crate at 3: no Candle rebuild
while [ $# -gt 0 ]; do
  case "$1" in
    --iters) ITERS=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --no-kestrel) WITH_KESTREL=0; shift ;;
    --kestrel-profile) KESTREL_PROFILE=$2; shift 2 ;;
    *) echo "bench-peers.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Same thread budget for everyone.
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

VENV=.cache/bench-venv
REQ=scripts/requirements-bench.txt
CACHE=.cache/bench
mkdir -p "$CACHE" docs

ensure_venv() {
  local want; want=$(sha256sum "$REQ" | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.req.sha256" 2>/dev/null)" != "$want" ]; then
    echo "bench: creating $VENV from $REQ" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ"
    echo "$want" > "$VENV/.req.sha256"
  fi
}

py() { (cd scripts/bench && "$ROOT/$VENV/bin/python" "$@"); }

model_cfg() {
  case "$1" in
    yolov3-tiny) echo "$ROOT/assets/yolov3-tiny.cfg" ;;
    *) echo "$ROOT/models/cfg/$1.cfg" ;;
  esac
}

model_weights() {  # real weights for tiny, deterministic random weights otherwise
  case "$1" in
    yolov3-tiny) echo "$ROOT/assets/yolov3-tiny.weights" ;;
    *) local w="$ROOT/$CACHE/$1.weights"
       [ -s "$w" ] || py darknet.py random "$(model_cfg "$1")" "$w" 1 >&2
       echo "$w" ;;
  esac
}

# Exports (and checks against OpenCV DNN) the fp32 ONNX, then quantizes it; cached by weights.
prepare_onnx() {
  local name=$1 cfg=$2 w=$3 fp32="$ROOT/$CACHE/$1.onnx" int8="$ROOT/$CACHE/$1.int8.onnx"
  if [ ! -s "$fp32" ] || [ "$fp32" -ot "$w" ] || [ "$fp32" -ot scripts/bench/export_onnx.py ]; then
    py export_onnx.py "$cfg" "$w" "$SIZE" "$fp32" >&2
    py check_export.py "$cfg" "$w" "$SIZE" "$fp32" "$ROOT/assets/bus.jpg" >&2
    rm -f "$int8"
  fi
  if [ ! -s "$int8" ]; then
    py quantize.py "$fp32" "$int8" "$SIZE" "$ROOT/assets/bus.jpg" "$ROOT/assets/zidane.jpg" >&2
    rm -f "$int8.pre.onnx"
  fi
}

# ---- KESTREL COLUMN ---------------------------------------------------------------------------
# Prints {"kestrel": {"median_ms": forward median, "p90_ms": …}} (or "kestrel_q8", "kestrel_bf16") from
# examples/forward_bench: the forward pass alone, back to back on the same letterboxed input, as
# the peers are timed (`kestrel bench` also runs decode + NMS between frames, which on random
# weights is a 10 000-box NMS that evicts the caches the next forward would find warm).
# q8 / bf16 = the per-layer plan measured at load, as `kestrel run --precision q8|bf16` loads it.
forward_bench=""
build_kestrel() {
  [ "$WITH_KESTREL" = 1 ] || return 0
  local dir=release build=(cargo build --release -q --example forward_bench)
  if [ "$KESTREL_PROFILE" = dev ]; then
    dir=debug build=(env CARGO_PROFILE_DEV_OPT_LEVEL=3 cargo build -q --example forward_bench)
  fi
  if "${build[@]}" >&2; then
    forward_bench="$CARGO_TARGET_DIR/$dir/examples/forward_bench"
  else
    echo "bench: KESTREL COLUMN = n/a: forward_bench does not build" >&2
  fi
}

kestrel_forward_json() {  # CFG WEIGHTS [PRECISION [KEY_SUFFIX CHAIN]]
  local cfg=$1 w=$2 prec=${3:-f32} key=kestrel out="" chain=${5:-${KESTREL_CHAIN:-0}}
  [ "$prec" = f32 ] || key="kestrel_$prec"
  key="$key${4:-}"
  if [ -n "$forward_bench" ]; then
    out=$(KESTREL_CHAIN=$chain PRECISION=$prec "$forward_bench" "$cfg" "$w" "$SIZE" "$ITERS" "$ROOT/$INPUT") || out=""
  fi
  if [ -z "$out" ]; then echo "bench: no Kestrel $prec number for $cfg" >&2; echo "{\"$key\": null}"; return; fi
  py kestrel_json.py "$key" <<<"$out"
}
# -----------------------------------------------------------------------------------------------

ensure_venv
build_kestrel
INPUT="$CACHE/input$SIZE.f32"   # the peers' letterboxed input, for Kestrel
py -c "import darknet; darknet.letterbox('$ROOT/assets/bus.jpg', $SIZE).astype('<f4').tofile('$ROOT/$INPUT')"
RESULTS="$CACHE/results.jsonl"
: > "$RESULTS"
for m in $MODELS; do
  cfg=$(model_cfg "$m"); w=$(model_weights "$m")
  prepare_onnx "$m" "$cfg" "$w"
  echo "bench: timing $m@$SIZE ($ITERS iters, $THREADS threads)" >&2
  peers=$(py time_peers.py "$m" "$cfg" "$w" "$ROOT/$CACHE/$m.onnx" "$ROOT/$CACHE/$m.int8.onnx" \
    "$SIZE" "$ROOT/assets/bus.jpg" "$ITERS" "$THREADS")
  kes=$(kestrel_forward_json "$cfg" "$w")
  kq8=$(kestrel_forward_json "$cfg" "$w" q8)
  # q8 with int8 chaining (static activation scales calibrated on the first frame, as ORT's
  # static QDQ model has them from its calibration images): `KESTREL_CHAIN=1`.
  kq8c=$(kestrel_forward_json "$cfg" "$w" q8 _chained 1)
  kbf=$(kestrel_forward_json "$cfg" "$w" bf16)
  "$VENV/bin/python" -c 'import json,sys; a={}; [a.update(json.loads(x)) for x in sys.argv[1:]]; print(json.dumps(a))' \
    "$peers" "$kes" "$kq8" "$kq8c" "$kbf" >> "$RESULTS"
done

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
flags=$(grep -o -w -E 'avx512f|avx512_vnni|avx512_bf16|amx_int8|amx_bf16|avx2|fma|asimddp|i8mm' /proc/cpuinfo | sort -u | tr '\n' ' ')
machine="Machine: $cpu, $(nproc) cores ($flags), $(date -u '+%Y-%m-%d %H:%M UTC'), load average at end: $(cut -d' ' -f1-3 /proc/loadavg); commit $(git rev-parse --short HEAD)."
[ -f docs/performance.md ] || printf '# Performance\n\n<!-- BENCH-TABLE:BEGIN -->\n<!-- BENCH-TABLE:END -->\n' > docs/performance.md
py report.py "$ROOT/$RESULTS" "$ROOT/docs/performance.md" "$machine"
