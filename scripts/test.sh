#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what is missing (apt packages, Python peers,
# real assets; all idempotent and checksummed), then format, lint and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export KESTREL_PYTHON="$PWD/.venv/bin/python"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --features camera --all-targets -- -D warnings   # the real camera code (nokhwa) must compile in CI
# The Jetson's CPU target (no AMX/VNNI code there) type-checks and lints, when rustup could fetch it.
if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  cargo clippy --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
else
  echo "test.sh: WARNING: aarch64-unknown-linux-gnu is not installed: the Jetson build was NOT checked" >&2
fi
scripts/check-cuda.sh   # the cuda feature type-checks and lints, tests included (CUDA 13 wheels, no GPU needed; cached)
cargo test --all-targets
