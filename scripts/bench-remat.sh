#!/usr/bin/env bash
# XLA's per-device memory of a compiled training step for each remat
# policy, and for 1 against 8 micro-batches (accumulation is a scan), with
# the losses of the first steps (they must not depend on the policy).
# Prints one row per run: arguments, outputs, temporaries and peak in MiB,
# compile seconds and the losses.
#
#   scripts/bench-remat.sh [EXPERIMENT]      (default llama-small)
#
# AXLE=path/to/axle uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
experiment=${1:-llama-small}
if [ -z "${AXLE:-}" ]; then
    cargo build --quiet --release --bin axle
    AXLE=${CARGO_TARGET_DIR:-target}/release/axle
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
    local label=$1
    shift
    "$AXLE" bench --experiment "$experiment" --mesh data=1 --cpu-devices 1 \
        --steps 1 --warmup 1 --matmul 0 --json "$work/$label.json" "$@" >/dev/null 2>"$work/stderr" ||
        { cat "$work/stderr"; exit 1; }
    python3 - "$label" "$work/$label.json" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
m = json.load(open(path))["meshes"][0]
mem = m["memory"]
mib = lambda b: b / 2**20
losses = " ".join(f"{l:.6f}" for l in m["losses"])
print(f"| {label} | {mib(mem['arguments']):.1f} | {mib(mem['outputs']):.1f} | "
      f"{mib(mem['temp']):.1f} | {mib(mem['peak']):.1f} | {m['compile_s']:.2f} | {losses} |")
PY
}
echo "| run | arguments MiB | outputs MiB | temporaries MiB | peak MiB | compile s | losses |"
echo "|---|---|---|---|---|---|---|"
for policy in none full dots names:attention_out,ffn_out offload:attention_out,ffn_out; do
    run "remat=$policy" --modifier "remat=$policy"
done
for mb in 1 8; do
    run "remat=full, $mb micro-batches" --modifier remat=full --set "learner.micro_batches=$mb"
done
run "remat=none, 8 micro-batches" --set learner.micro_batches=8
