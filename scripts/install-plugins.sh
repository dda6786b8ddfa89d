#!/usr/bin/env bash
# Installs the pinned CPU PJRT plugins with pip (a no-op when they are
# already there); see third_party/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --no-deps --require-hashes -r third_party/pjrt-cpu-requirements.txt
