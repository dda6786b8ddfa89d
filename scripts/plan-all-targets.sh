#!/usr/bin/env bash
# Plans llama-tiny (one layer) for one target of every hardware family with
# the default mesh rules (no --mesh): each compiles with its rule's mesh and
# XLA compiler options. Prints a markdown table: target, the rule that
# matched, its mesh, how many compiler options it set, per-device peak,
# compile seconds and the verdict. Needs `./scripts/install-plugins.sh tpu`
# and `cuda`; about 8 s per TPU target and 15-20 s per GPU target here.
#
#   scripts/plan-all-targets.sh [TARGET...]
#
# AXLE=path/to/axle uses that binary instead of building the debug one.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${AXLE:-}" ]; then
    cargo build --quiet --bin axle
    AXLE=${CARGO_TARGET_DIR:-target}/debug/axle
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(tpu-v4:2x2x1 tpu-v5e:2x2 tpu-v5p:2x2x1 tpu-v6e:2x2 gpu-h100:4 gpu-h200:4 gpu-a100:4)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "| target | mesh rule | mesh | compiler options | peak MiB / device | compile s | verdict |"
echo "|---|---|---|---|---|---|---|"
for target in "${targets[@]}"; do
    json="$work/plan.json"
    "$AXLE" plan --experiment llama-tiny --target "$target" \
        --set decoder.transformer.num_layers=1 --json "$json" >"$work/stdout" 2>"$work/stderr" ||
        { cat "$work/stdout" "$work/stderr"; exit 1; }
    python3 - "$json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["compiled"]
peak = max(c["peak"], c["arguments"] + c["outputs"] - c["alias"] + c["temporaries"])
verdict = "fits" if "Fits" in r["verdict"] else str(r["verdict"])
print(f"| {r['target']} | `{r['mesh_rule']}` | {r['mesh']} | {len(r['compiler_options'])} | "
      f"{peak / 2**20:.2f} | {c['compile_seconds']:.1f} | {verdict} |")
PY
done
