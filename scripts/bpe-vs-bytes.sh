#!/usr/bin/env bash
# Byte-level vs BPE on real text (docs/text.md records a run): the
# distinct license texts of /usr/share/common-licenses in one file (about
# 230 kB, documents separated by empty lines), the same llama-tiny, steps
# and batch shape, trained once on bytes and once through a byte-level BPE
# of 1024 tokens trained on the file's first nine tenths (the last tenth is
# held out by both runs); prints each run's held-out bits per byte.
# Usage: scripts/bpe-vs-bytes.sh [STEPS] [OUT_DIR]   (AXLE=path/to/axle to skip the build)
set -euo pipefail
steps="${1:-200}"
out="${2:-$(mktemp -d)}"
licenses=/usr/share/common-licenses
axle="${AXLE:-$(dirname "$0")/axle}"
mkdir -p "$out"
text="$out/licenses.txt"
for name in Apache-2.0 Artistic BSD CC0-1.0 GFDL-1.3 GPL-1 GPL-2 GPL-3 LGPL-2.1 LGPL-3 MPL-1.1 MPL-2.0; do
    cat "$licenses/$name"
    printf '\n\n'
done > "$text"
head -c $(($(wc -c < "$text") / 10 * 9)) "$text" > "$out/tokenizer-corpus.txt"
"$axle" tokenizer train --vocab-size 1024 --out "$out/tokenizer.json" "$out/tokenizer-corpus.txt"
common=(--experiment llama-tiny --mesh data=1 --steps "$steps" --eval-every "$steps" --eval-batches 8 --data "$text")
"$axle" train "${common[@]}" --set decoder.vocab_size=256 --checkpoint-dir "$out/bytes" | tee "$out/bytes.txt"
"$axle" train "${common[@]}" --tokenizer "$out/tokenizer.json" --checkpoint-dir "$out/bpe" | tee "$out/bpe.txt"
bytes_loss=$(sed -n 's/^eval loss \([0-9.]*\).*/\1/p' "$out/bytes.txt")
echo "bytes: eval loss $bytes_loss nats/byte = $(python3 -c "import math; print(round($bytes_loss / math.log(2), 4))") bits/byte"
grep -E "bits_per_byte" "$out/bpe.txt" | sed 's/^ */bpe:   /'
