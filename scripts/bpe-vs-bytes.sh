#!/usr/bin/env bash
# Byte-level vs BPE on a real text file (docs/text.md records a run): the
# same llama-tiny, steps and batch shape, trained on GPL-3's text once as
# bytes and once through a byte-level BPE trained on the other license
# texts; prints each run's held-out bits per byte.
# Usage: scripts/bpe-vs-bytes.sh [STEPS] [OUT_DIR]   (AXLE=path/to/axle to skip the build)
set -euo pipefail
steps="${1:-200}"
out="${2:-$(mktemp -d)}"
licenses=/usr/share/common-licenses
axle="${AXLE:-$(dirname "$0")/axle}"
mkdir -p "$out"
"$axle" tokenizer train --vocab-size 1024 --out "$out/tokenizer.json" \
    "$licenses"/{Apache-2.0,Artistic,GFDL-1.3,GPL-2,LGPL-2.1,MPL-1.1,MPL-2.0}
common=(--experiment llama-tiny --mesh data=1 --steps "$steps" --eval-every "$steps" --eval-batches 4 --data "$licenses/GPL-3")
"$axle" train "${common[@]}" --set decoder.vocab_size=256 --checkpoint-dir "$out/bytes" | tee "$out/bytes.txt"
"$axle" train "${common[@]}" --tokenizer "$out/tokenizer.json" --checkpoint-dir "$out/bpe" | tee "$out/bpe.txt"
bytes_loss=$(sed -n 's/^eval loss \([0-9.]*\).*/\1/p' "$out/bytes.txt")
echo "bytes: eval loss $bytes_loss nats/byte = $(python3 -c "import math; print(round($bytes_loss / math.log(2), 4))") bits/byte"
grep -E "bits_per_byte" "$out/bpe.txt" | sed 's/^ */bpe:   /'
