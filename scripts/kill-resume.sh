#!/usr/bin/env bash
# Kills a training run with SIGKILL at random moments, N times (default 50),
# resuming it after each kill. The model is llama-tiny on tiny batches: its
# 45 MB checkpoint, saved every step, takes longer to write than a step
# takes to run, so many kills land inside a save or a prune. After every
# kill (each lands at a random moment after the run's first save began),
# every `step_*` directory must load and match its checksums
# (`axle checkpoints`). At the end the killed run is resumed to a final
# step, and its checkpoint there must equal, byte for byte, that of a run
# to the same step that was never killed.
#
#   scripts/kill-resume.sh [N]        (about 6 s per kill on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
cargo build --quiet --release --bin axle
axle=target/release/axle
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The step count is not part of what a checkpoint records, so the killed
# runs aim far and the comparison happens at whatever step they reached.
common=(--mesh data=1 --cpu-devices 1 --batch-size 4 --seq-len 16 --seed 3
    --eval-every 0 --checkpoint-every 1 --keep 2)
train() {
    if ! "$axle" train "${common[@]}" "$@" >/dev/null 2>"$work/stderr"; then
        cat "$work/stderr" >&2
        return 1
    fi
}
in_save=0
for i in $(seq 1 "$kills"); do
    resume=()
    if [ -d "$work/killed" ]; then resume=(--resume); fi
    "$axle" train "${common[@]}" --checkpoint-dir "$work/killed" --steps 1000000 "${resume[@]}" \
        >/dev/null 2>&1 &
    pid=$!
    # Wait for the run's first save to begin (compiling takes seconds), then
    # kill it at a random moment within the next 1.5 s.
    for _ in $(seq 1 1200); do
        if compgen -G "$work/killed/.tmp-step_*-$pid" >/dev/null || ! kill -0 "$pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    sleep "$(python3 -c 'import random; print(round(random.uniform(0.0, 1.5), 2))')"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if compgen -G "$work/killed/.tmp-*" >/dev/null; then in_save=$((in_save + 1)); fi
    if ! "$axle" checkpoints --checkpoint-dir "$work/killed" >"$work/verify" 2>&1; then
        cat "$work/verify"
        echo "kill $i: a damaged checkpoint" >&2
        exit 1
    fi
    newest=$(tail -n 1 "$work/verify" | awk '{print $3}')
    echo "kill $i: newest checkpoint step ${newest:-none}, all checkpoints load"
done
final=$((${newest:-0} + 3))
echo "resuming the killed run to step $final, and running it unkilled from scratch"
train --checkpoint-dir "$work/killed" --steps "$final" --resume
train --checkpoint-dir "$work/reference" --steps "$final"
last=$(printf 'step_%010d' "$final")
for file in params.safetensors opt_state.safetensors; do
    cmp "$work/reference/$last/$file" "$work/killed/$last/$file"
done
echo "$kills kills ($in_save inside a save or prune): every checkpoint loaded after each kill, and step $final equals the uninterrupted run's byte for byte"
