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
scripts/check-cuda.sh   # the cuda feature type-checks and lints, tests included (CUDA 13 wheels, no GPU needed; cached)
cargo test --all-targets
