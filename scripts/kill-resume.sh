#!/usr/bin/env bash
# Kills a training run with SIGKILL at random moments, N times (default 50),
# resuming it after each kill. The model is llama-tiny on tiny batches: its
# 45 MB checkpoint, saved every step, takes longer to write than a step
# takes to run, so many kills land inside a save or a prune. After every kill, every `step_*`
# directory must load and match its checksums (`axle checkpoints`). At the
# end the resumed run's final checkpoint must equal, byte for byte, that of
# a run that was never killed.
#
#   scripts/kill-resume.sh [N]        (about 6 s per kill on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
steps=$((kills * 8))
cargo build --quiet --release --bin axle
axle=target/release/axle
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train() {
    "$axle" train --mesh data=1 --cpu-devices 1 --batch-size 4 --seq-len 16 --seed 3 \
        --eval-every 0 --checkpoint-every 1 --keep 2 \
        --steps "$steps" "$@"
}
echo "reference run: $steps steps, never killed"
train --checkpoint-dir "$work/reference" >/dev/null 2>&1
in_save=0
for i in $(seq 1 "$kills"); do
    resume=()
    if [ -d "$work/killed" ]; then resume=(--resume); fi
    train --checkpoint-dir "$work/killed" "${resume[@]}" >/dev/null 2>"$work/stderr" &
    pid=$!
    sleep "$(python3 -c 'import random; print(round(random.uniform(0.5, 4.0), 2))')"
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
echo "finishing the killed run"
train --checkpoint-dir "$work/killed" --resume >/dev/null 2>&1
last=$(printf 'step_%010d' "$steps")
for file in params.safetensors opt_state.safetensors; do
    cmp "$work/reference/$last/$file" "$work/killed/$last/$file"
done
echo "$kills kills ($in_save inside a save or prune): every checkpoint loaded after each kill, and step $steps equals the uninterrupted run's byte for byte"
