#!/usr/bin/env bash
# Step time while a checkpoint is being written in the background, against
# steps with no save in flight, side by side in one run of this script.
# Three runs of the same model and data: no checkpoints; a checkpoint every
# K steps written in the background (the default); the same written before
# the next step (--sync-checkpoints). Reports the median step time of the
# step right after each save (the one that overlaps the background write)
# and of all other steps, from the metrics files.
#
#   scripts/bench-async-checkpoints.sh [STEPS] [EVERY]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}
every=${2:-4}
cargo build --quiet --release --bin axle
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# llama-tiny widened to d 512, 4 layers: 15.2M parameters, a 183 MB
# checkpoint with AdamW's moments.
train() {
    local start
    start=$(date +%s.%N)
    target/release/axle train --mesh data=1 --cpu-devices 1 --seed 0 --eval-every 0 \
        --set decoder.dim=512 --set decoder.transformer.layers.0.feed_forward.hidden_dim=1408 \
        --steps "$steps" "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr"; exit 1; }
    echo "$start $(date +%s.%N)" >>"$work/wall"
}
train --metrics "$work/none.jsonl"
train --metrics "$work/async.jsonl" --checkpoint-dir "$work/async" --checkpoint-every "$every"
train --metrics "$work/sync.jsonl" --checkpoint-dir "$work/sync" --checkpoint-every "$every" --sync-checkpoints
du -sh "$work/async/$(ls "$work/async" | grep step_ | tail -n 1)" | awk '{print "checkpoint size: " $1}'
python3 - "$work" "$every" "$steps" <<'PY'
import json, statistics, sys
work, every, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
wall = [float(b) - float(a) for a, b in (l.split() for l in open(f"{work}/wall"))]
saves = steps // every
def times(name):
    recs = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    return {r["step"]: r["step_time_s"] for r in recs if r.get("kind", "train") == "train" and "step_time_s" in r}
base = times("none")
# Skip the first steps (warm-up) in every run.
def split(t):
    after = [s for st, s in t.items() if st > every and (st - 1) % every == 0]
    other = [s for st, s in t.items() if st > every and (st - 1) % every != 0]
    return statistics.median(after), statistics.median(other)
none_all = statistics.median([s for st, s in base.items() if st > every])
a_after, a_other = split(times("async"))
s_after, s_other = split(times("sync"))
print(f"median step time, no checkpoints:                  {none_all:.3f} s")
print(f"background saves: step overlapping a save          {a_after:.3f} s  ({a_after / none_all:.2f}x)")
print(f"background saves: other steps                      {a_other:.3f} s  ({a_other / none_all:.2f}x)")
print(f"foreground saves: step after a save                {s_after:.3f} s  ({s_after / none_all:.2f}x)")
print(f"whole run (compile included): none {wall[0]:.1f} s, background {wall[1]:.1f} s, foreground {wall[2]:.1f} s")
print(f"training time lost per save: background {(wall[1] - wall[0]) / saves:.3f} s, foreground {(wall[2] - wall[0]) / saves:.3f} s")
PY
