#!/usr/bin/env bash
# The whole test suite: installs the pinned PJRT plugins (CPU, and libtpu and the CUDA
# plugin for the ahead-of-time compile tests) and TensorBoard's event-file reader
# (no-ops when they are already there), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-plugins.sh all
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --require-hashes -r third_party/tensorboard-requirements.txt
cargo test --workspace --all-targets
cargo test --workspace --doc
