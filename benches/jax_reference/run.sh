#!/usr/bin/env bash
# Side-by-side axle vs JAX on the same PJRT plugin file (see docs/benchmarks.md).
# Installs JAX into a virtual environment under target/, builds axle in
# release mode, and runs compare.py; extra arguments go to compare.py.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/jax_reference/venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$root/benches/jax_reference/requirements.txt"
fi
plugin="$(python3 -c 'import lammps_jax_pjrt_cpu, os; print(os.path.join(os.path.dirname(lammps_jax_pjrt_cpu.__file__), "pjrt_c_api_cpu_plugin.so"))')"
(cd "$root" && cargo build --release --bin axle)
axle="${CARGO_TARGET_DIR:-$root/target}/release/axle"
exec "$venv/bin/python" "$root/benches/jax_reference/compare.py" --axle "$axle" --plugin "$plugin" "$@"
