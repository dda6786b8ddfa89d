#!/usr/bin/env bash
# Per-chip memory of llama-tiny's train step, axle vs JAX 0.11.2, both compiled ahead of time
# for tpu-v5e:2x2 and gpu-h100:4 (see docs/benchmarks.md). Installs JAX into a CPython 3.12
# virtual environment under target/ (benches/jax_reference/aot-requirements.txt), the pinned
# libtpu and CUDA plugin (./scripts/install-plugins.sh tpu, cuda), and runs aot_memory.py with
# the axle binary $AXLE (default: a release build); extra arguments go to aot_memory.py.
# PYTHON: the CPython 3.12 that makes the venv (default python3.12).
# The compiles run under `unshare --net`: run as root or with user namespaces.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/jax_aot/venv"
if [ ! -x "$venv/bin/python" ]; then
  # The pins are cp312 wheels; PYTHON names another CPython 3.12 (e.g. under pyenv).
  "${PYTHON:-python3.12}" -m venv "$venv"
  "$venv/bin/pip" install -q --require-hashes -r "$root/benches/jax_reference/aot-requirements.txt"
fi
"$root/scripts/install-plugins.sh" tpu
"$root/scripts/install-plugins.sh" cuda
site="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
if [ -z "${AXLE:-}" ]; then
  (cd "$root" && cargo build --release --bin axle)
  AXLE="${CARGO_TARGET_DIR:-$root/target}/release/axle"
fi
exec "$venv/bin/python" "$root/benches/jax_reference/aot_memory.py" --axle "$AXLE" \
  --libtpu "$site/libtpu/libtpu.so" --cuda-plugin "$site/jax_plugins/xla_cuda12/xla_cuda_plugin.so" "$@"
