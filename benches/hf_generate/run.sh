#!/usr/bin/env bash
# Decode throughput of `axle generate --hf` against `transformers`' `generate` on the
# same random Llama, side by side in one run (see compare.py and docs/benchmarks.md).
#
#   PYTHON=/path/to/venv/bin/python benches/hf_generate/run.sh [--reps N] [--out DIR]
#
# PYTHON: a Python with benches/hf_generate/requirements.txt installed (default `python3`).
# AXLE: the axle binary (default: built here in release mode).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-python3}"
if [[ -z "${AXLE:-}" ]]; then
    "$root/scripts/install-plugins.sh"
    cargo build --quiet --release --manifest-path "$root/Cargo.toml" --bin axle
    AXLE="${CARGO_TARGET_DIR:-$root/target}/release/axle"
fi
exec "$python" "$root/benches/hf_generate/compare.py" --axle "$AXLE" "$@"
