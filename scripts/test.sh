#!/usr/bin/env bash
# The whole test suite: installs the pinned CPU PJRT plugins (a no-op when
# they are already there), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-plugins.sh
cargo test --workspace --all-targets
cargo test --workspace --doc
