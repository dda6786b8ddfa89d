#!/usr/bin/env bash
# The GPU check: one command on a machine with one NVIDIA GPU (CUDA 12 driver), under
# 8 minutes. Installs the pinned CUDA plugin and the NVIDIA runtime wheels, shows the
# devices, trains llama-tiny on the GPU (the loss must fall), and benchmarks a ~1B llama (llama2-7b's layers, 4 of them:
# 1.07B parameters) in bf16 with MFU, appending the table to docs/benchmarks.md.
# Unrun so far: no GPU machine has been available (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-plugins.sh cpu
./scripts/install-plugins.sh cuda
# The NVIDIA runtime libraries the plugin loads (cuBLAS, cuDNN, NCCL, ...), as JAX's
# `with-cuda` extra pins them for jax 0.11.2; axle preloads them (runtime/src/cuda_preload.rs).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    "jax-cuda12-plugin[with-cuda]==0.11.2"
cargo build --release --bin axle
axle=target/release/axle
$axle devices --plugin cuda
# The trainer on the GPU: llama-tiny, 100 steps; the loss falls from ~7.5.
$axle train --plugin cuda --mesh data=1 --steps 100 --eval-every 0 --metrics /tmp/axle-gpu-train.jsonl
python3 - <<'PY'
import json
losses = [json.loads(l)["loss"] for l in open("/tmp/axle-gpu-train.jsonl") if '"loss"' in l]
assert losses[-1] < losses[0] - 2.0, f"loss did not fall on the GPU: {losses[0]} -> {losses[-1]}"
print(f"GPU training: loss {losses[0]:.3f} -> {losses[-1]:.3f}")
PY
# The runtime on the GPU: devices, compile, execute through the example.
cargo run --release --example devices -- cuda
# ~1B llama in bf16, MFU against the device's bf16 peak.
report=/tmp/axle-gpu-bench.txt
$axle bench --plugin cuda --experiment llama2-7b --mesh data=1 \
    --set decoder.transformer.num_layers=4 --set learner.compute_dtype=bf16 \
    --batch-size 4 --seq-len 2048 --steps 10 --warmup 3 --matmul 8192 | tee "$report"
{
    echo
    echo "## GPU check ($(date -u +%Y-%m-%d), $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
    echo
    echo '`./scripts/gpu-check.sh`: llama2-7b with 4 layers (1.07B parameters), bf16 compute,'
    echo 'batch 4 x seq 2048, one GPU:'
    echo
    cat "$report"
} >> docs/benchmarks.md
echo "appended the table to docs/benchmarks.md"
