#!/usr/bin/env bash
# Installs everything Kestrel's build and tests need, idempotently:
#   - Debian packages (only those `dpkg -s` reports missing; apt-get update at most once),
#   - a Python virtual environment at .venv with the independent peers, pinned,
#   - the real test assets (scripts/fetch-assets.sh),
#   - Rust's aarch64-unknown-linux-gnu standard library (the Jetson's target, for the cross check).
# Usage: scripts/setup.sh [--no-apt] [--no-python] [--no-assets]
set -euo pipefail
cd "$(dirname "$0")/.."
APT_PACKAGES=(python3-venv libclang-dev nasm ffmpeg socat)
PY_REQUIREMENTS=scripts/requirements-test.txt
do_apt=1; do_py=1; do_assets=1
for a in "$@"; do
  case "$a" in
    --no-apt) do_apt=0 ;; --no-python) do_py=0 ;; --no-assets) do_assets=0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

if [ "$do_apt" = 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing apt packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

# The Jetson build is type-checked and linted on every run (scripts/test.sh): rustup fetches the
# target's standard library once (its own checksums); nothing is linked, so no cross gcc.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "setup: adding the aarch64-unknown-linux-gnu Rust target"
  rustup target add aarch64-unknown-linux-gnu \
    || echo "setup: WARNING: could not add the aarch64 target; scripts/test.sh will say it did not check the Jetson build" >&2
fi

if [ "$do_py" = 1 ]; then
  stamp=.venv/.requirements.sha256
  want=$(sha256sum "$PY_REQUIREMENTS" | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating .venv with $PY_REQUIREMENTS"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r "$PY_REQUIREMENTS"
    echo "$want" > "$stamp"
  fi
fi

if [ "$do_assets" = 1 ]; then
  scripts/fetch-assets.sh
fi
