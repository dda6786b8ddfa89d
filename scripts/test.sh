#!/usr/bin/env bash
# The whole test suite: installs the pinned CPU PJRT plugins (a no-op when
# they are already there), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --require-hashes \
    -r third_party/pjrt-cpu-requirements.txt
cargo test --workspace --all-targets
cargo test --workspace --doc
