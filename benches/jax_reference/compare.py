"""axle and JAX side by side on the same PJRT plugin file, alternating.

For each model and mesh, each round runs `axle bench` (which also exports
the initial parameters, batches and shardings) and then `jax_llama.py` on
that export, each in its own process, so load from other processes falls on
both alike. Writes a markdown table of the medians over rounds and their
ratios (axle / JAX), and the first losses of both, which must agree for the
comparison to be of the same computation.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--axle", default=os.path.join(HERE, "../../target/release/axle"))
    p.add_argument("--plugin", required=True, help="path to the PJRT plugin .so both systems load")
    p.add_argument("--models", nargs="+", default=["llama-tiny", "llama-small"])
    p.add_argument("--meshes", nargs="+", default=["data=1", "fsdp=4"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--workdir", default=os.path.join(HERE, "../../target/jax_reference"))
    p.add_argument("--out", default=None, help="markdown file (stdout too)")
    p.add_argument("--from-json", action="store_true",
                   help="run nothing: tabulate the JSON files an earlier run left in --workdir")
    return p.parse_args()


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    args = parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    rows = []
    loads = [load_average()] if not args.from_json else ["(earlier run)"]
    for model in args.models:
        export = os.path.join(args.workdir, f"{model}-export")
        for mesh in args.meshes:
            axle_runs, jax_runs = [], []
            for r in range(args.rounds):
                a_json = os.path.join(args.workdir, f"{model}-{mesh}-axle-{r}.json")
                j_json = os.path.join(args.workdir, f"{model}-{mesh}-jax-{r}.json")
                axle_cmd = [args.axle, "bench", "--model", model, "--mesh", mesh,
                            "--plugin", args.plugin, "--cpu-devices", "4",
                            "--warmup", str(args.warmup), "--steps", str(args.steps),
                            "--matmul", "0", "--json", a_json, "--export", export]
                jax_cmd = [sys.executable, os.path.join(HERE, "jax_llama.py"),
                           "--export", export, "--model", model, "--mesh", mesh,
                           "--plugin", args.plugin, "--cpu-devices", "4",
                           "--warmup", str(args.warmup), "--steps", str(args.steps),
                           "--json", j_json]
                order = [axle_cmd, jax_cmd] if r % 2 == 0 else [jax_cmd, axle_cmd]
                for cmd in order if not args.from_json else []:
                    run(cmd)
                with open(a_json) as f:
                    axle_runs.append(json.load(f)["meshes"][0])
                with open(j_json) as f:
                    jax_runs.append(json.load(f))
            a_trace = [m["trace_s"] + m["emit_s"] for m in axle_runs]
            j_trace = [j["trace_lower_s"] for j in jax_runs]
            a_compile = [m["compile_s"] for m in axle_runs]
            j_compile = [j["compile_s"] for j in jax_runs]
            a_step = [m["step_s"]["median"] for m in axle_runs]
            j_step = [j["step_s"]["median"] for j in jax_runs]
            # Ratios are taken within a round (the two runs were adjacent in
            # time), then the median over rounds.
            ratio = lambda num, den: statistics.median(n / d for n, d in zip(num, den))
            a_loss, j_loss = axle_runs[0]["losses"][:3], jax_runs[0]["losses"][:3]
            diff = max(abs(a - j) for a, j in zip(a_loss, j_loss))
            med = statistics.median
            rows.append((model, mesh, med(a_trace), med(j_trace), ratio(j_trace, a_trace),
                         med(a_compile), med(j_compile), ratio(a_compile, j_compile),
                         med(a_step), med(j_step), ratio(a_step, j_step), a_loss, j_loss, diff))
    loads.append(load_average() if not args.from_json else "(earlier run)")
    fmt = lambda xs: ", ".join(f"{x:.5f}" for x in xs)
    lines = [
        f"Load average (1/5/15 min) before: {loads[0]}; after: {loads[1]}. "
        f"{args.rounds} rounds, {args.warmup} warm-up + {args.steps} timed steps each; "
        "times are medians over rounds, ratios medians of the per-round ratios.",
        "",
        "| model | mesh | trace+emit axle s | trace+lower JAX s | JAX / axle | compile axle s "
        "| compile JAX s | axle / JAX | step axle s | step JAX s | axle / JAX "
        "| first losses axle | first losses JAX | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (model, mesh, at, jt, tr, ac, jc, cr, ast, jst, sr, al, jl, d) in rows:
        lines.append(
            f"| {model} | {mesh} | {at:.4f} | {jt:.3f} | {tr:.0f}x | {ac:.2f} | {jc:.2f} "
            f"| {cr:.2f} | {ast:.4f} | {jst:.4f} | {sr:.2f} | {fmt(al)} | {fmt(jl)} | {d:.1e} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
