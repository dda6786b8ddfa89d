"""Greedy decoding speed of `axle generate --hf` against `transformers`' `generate`.

One random Llama (llama-tiny's sizes: vocab 1024, dim 256, 4 layers, 4 heads, SwiGLU 704,
f32, weights drawn with std 0.1 so that greedy choices are not near ties) is saved with
`save_pretrained`; both systems generate from that directory, alternating run by run so that
the machine's load falls on both alike:

- decode tokens/s for a batch of 1 and of 8 random 32-token prompts, 128 new tokens, greedy;
  transformers: `model.generate(..., do_sample=False, use_cache=True)` with
  `torch.set_num_threads(2)` (`--torch-threads`), decode time = time(128 new tokens) - time(1 new token), over
  batch x 127 tokens, after an untimed warm-up; axle: `generate --json`'s
  `decode_tokens_per_s` (its 127 decode calls, compiling excluded), one process per run;
- prefill seconds of one 1,024-token prompt: transformers, a `use_cache=True` forward pass;
  axle, `generate --max-new-tokens 1 --json`'s `prefill_s`.

Both must produce the same greedy tokens (checked; the run fails otherwise). Prints a Markdown
table of medians with the axle / transformers ratios, and the load averages before and after.

    python compare.py --axle PATH/TO/axle [--reps 3] [--out DIR]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

import torch
import transformers

PROMPT_LEN, NEW_TOKENS, LONG_PROMPT = 32, 128, 1024
BATCHES = (1, 8)


def make_model(out):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=1024, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048,
        rms_norm_eps=1e-6, rope_theta=10000.0, initializer_range=0.1,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    model.save_pretrained(out)
    return transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()


def hf_generate(model, ids, new_tokens):
    with torch.no_grad():
        start = time.perf_counter()
        out = model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, use_cache=True, eos_token_id=None,
                             pad_token_id=0)
        return time.perf_counter() - start, out[:, ids.shape[1]:].tolist()


def hf_decode(model, ids):
    """Decode tokens/s and the new tokens of `ids` [batch, prompt]."""
    first, _ = hf_generate(model, ids, 1)
    total, tokens = hf_generate(model, ids, NEW_TOKENS)
    return ids.shape[0] * (NEW_TOKENS - 1) / (total - first), tokens


def hf_prefill(model, ids):
    with torch.no_grad():
        start = time.perf_counter()
        model(ids, use_cache=True)
        return time.perf_counter() - start


def axle_generate(axle, model_dir, ids, new_tokens):
    command = [axle, "generate", "--hf", model_dir, "--max-new-tokens", str(new_tokens),
               "--json", "--cpu-devices", "1", "--ignore-eos"]
    for row in ids.tolist():
        command += ["--prompt-ids", ",".join(map(str, row))]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--axle", required=True, help="the axle binary")
    parser.add_argument("--reps", type=int, default=3, help="alternations of the two systems")
    parser.add_argument("--out", help="where to save the model (default: a temporary dir)")
    parser.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    model_dir = args.out or tempfile.mkdtemp(prefix="hf_generate_")
    model = make_model(model_dir)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, 1024, (max(BATCHES), PROMPT_LEN), generator=g)
    long_prompt = torch.randint(0, 1024, (1, LONG_PROMPT), generator=g)
    # Untimed warm-up of transformers' kernels (axle compiles before its timers start).
    hf_generate(model, prompts, 8)
    hf_prefill(model, long_prompt)
    load_before = os.getloadavg()
    rates = {(system, b): [] for system in ("axle", "transformers") for b in BATCHES}
    prefill = {"axle": [], "transformers": []}
    for rep in range(args.reps):
        for b in BATCHES:
            ids = prompts[:b]
            # Alternate which system goes first from one repetition to the next.
            order = ("axle", "transformers") if rep % 2 == 0 else ("transformers", "axle")
            tokens = {}
            for system in order:
                if system == "axle":
                    report = axle_generate(args.axle, model_dir, ids, NEW_TOKENS)
                    rates[("axle", b)].append(report["decode_tokens_per_s"])
                    tokens["axle"] = report["continuations"]
                else:
                    rate, tokens["transformers"] = hf_decode(model, ids)
                    rates[("transformers", b)].append(rate)
            if tokens["axle"] != tokens["transformers"]:
                raise SystemExit(f"batch {b}: greedy tokens differ:\n"
                                 f"axle         {tokens['axle']}\n"
                                 f"transformers {tokens['transformers']}")
        prefill["axle"].append(axle_generate(args.axle, model_dir, long_prompt, 1)["prefill_s"])
        prefill["transformers"].append(hf_prefill(model, long_prompt))
    load_after = os.getloadavg()

    med = statistics.median
    print(f"transformers {transformers.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), python {platform.python_version()}; "
          f"{args.reps} alternations; greedy tokens identical")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)}; "
          f"after: {' '.join(f'{x:.2f}' for x in load_after)}")
    print()
    print("| measure | axle | transformers | axle / transformers |")
    print("|---|---|---|---|")
    for b in BATCHES:
        a, t = med(rates[("axle", b)]), med(rates[("transformers", b)])
        print(f"| decode tokens/s, batch {b}, {PROMPT_LEN}-token prompts, {NEW_TOKENS} new "
              f"| {a:.1f} | {t:.1f} | {a / t:.2f} |")
    a, t = med(prefill["axle"]), med(prefill["transformers"])
    print(f"| prefill s, one {LONG_PROMPT}-token prompt | {a:.3f} | {t:.3f} | {a / t:.2f} |")
    print()
    print("all runs:", json.dumps({"decode_tokens_per_s": {f"{s} batch {b}": v
                                                           for (s, b), v in rates.items()},
                                   "prefill_s": prefill}))


if __name__ == "__main__":
    main()
