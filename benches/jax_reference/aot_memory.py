"""Per-chip memory of the llama-tiny train step, axle and JAX, compiled ahead of time.

For each target (a TPU slice or a GPU machine that this host need not have)
and mesh, this runs `axle plan --json` and compiles JAX's own version of
the same step (jax_llama.py's `make_train_step`, with the shardings `axle
bench --export` wrote) for the same topology through the same compiler:
libtpu for TPUs (`jax.experimental.topologies.get_topology_desc`), the CUDA
PJRT plugin with XLA's GPU target config for GPUs (a deviceless compile).
Then it prints one table of per-chip arguments, outputs, temporaries and
peak, axle's next to JAX's, and the ratio of the peaks.

The two programs are the same model: the script checks that the parameter
count of axle's export equals axle's own count and that the argument bytes
per chip the two compilers report are equal (so shapes, dtypes and
shardings of every argument agree), and stops otherwise. JAX's step takes
axle's dropout key (int64[2], unused by llama-tiny) as an argument too, so
that the argument lists are the same; its only results beyond the carried
state are the loss and gradient norm, where axle's also returns the
learning rate, the skip and finiteness flags and its summaries (scalars).

Every JAX compile runs in a child process without a network (`unshare
--net`, with TPU_SKIP_MDS_QUERY=1), as axle plan's do: libtpu otherwise
looks for cloud metadata servers. See docs/benchmarks.md.
"""

import argparse
import functools
import json
import math
import os
import re
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../.."))
MODEL = "llama-tiny"
HEADS = 4
# What `axle plan` runs for each of its targets (src/plan/target.rs): libtpu's
# topology name, or the CUDA plugin's target config file and `topology` option
# ("<partitions>x<hosts>x<devices per host>").
TPU_TOPOLOGIES = {"tpu-v5e:2x2": "v5e:2x2"}
GPU_CONFIGS = {"gpu-h100": "h100_sxm.txtpb", "gpu-h200": "h200.txtpb", "gpu-a100": "a100_sxm_80.txtpb"}
DEFAULT_RUNS = [
    ("tpu-v5e:2x2", "data=4"),
    ("tpu-v5e:2x2", "fsdp=4"),
    ("tpu-v5e:2x2", "data=2,model=2"),
    ("gpu-h100:4", "fsdp=4"),
    ("gpu-h100:4", "data=4"),
]
# An HLO instruction's opcode follows its shape (which ends in `]`, `}` or `)`);
# an asynchronous pair counts once, by its `-start`, as axle plan counts.
COLLECTIVE = re.compile(
    r"[\]})] (all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute|collective-broadcast)"
    r"(-start)?\("
)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--axle", required=True, help="the axle binary")
    p.add_argument("--runs", nargs="+", default=[f"{t}/{m}" for t, m in DEFAULT_RUNS],
                   help="TARGET/MESH pairs, e.g. tpu-v5e:2x2/fsdp=4")
    p.add_argument("--libtpu", help="libtpu.so (./scripts/install-plugins.sh tpu)")
    p.add_argument("--cuda-plugin", help="xla_cuda_plugin.so of jax-cuda12-pjrt (install-plugins.sh cuda)")
    p.add_argument("--workdir", default=os.path.join(ROOT, "target/jax_aot"))
    p.add_argument("--out", help="also write the markdown table here")
    p.add_argument("--dump", action="store_true",
                   help="also dump both compilers' optimized HLO and buffer assignment "
                        "(XLA_FLAGS=--xla_dump_to) under WORKDIR/dump")
    p.add_argument("--finite-check", choices=["none", "select", "convert"], default="none",
                   help="JAX's step also returns whether the updated parameters are all finite, "
                        "computed as axle does (select: min of select(|p| <= max, 1, 0)) or by "
                        "converting the predicate (convert); none: not at all (default)")
    p.add_argument("--from-json", action="store_true",
                   help="compile nothing: tabulate the JSON files an earlier run left in --workdir")
    p.add_argument("--plan-json", help=argparse.SUPPRESS)
    p.add_argument("--jax-child", nargs=2, metavar=("TARGET", "MESH"), help=argparse.SUPPRESS)
    return p.parse_args()


def safetensors_shapes(path):
    """{name: (shape, dtype)} from a safetensors file's header (8-byte little-endian
    length, then JSON), without reading the tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return {k: (tuple(v["shape"]), v["dtype"]) for k, v in header.items() if k != "__metadata__"}


def export_dir(workdir):
    return os.path.join(workdir, "export")


def jax_compile(args, target, mesh_text):
    """The child: compile JAX's step for `target` on `mesh_text`, print its memory stats as JSON."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["JAX_ENABLE_X64"] = "1"  # for axle's int64 dropout key; every other dtype is explicit
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax._src import xla_bridge
    from jax.experimental import topologies
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    sys.path.insert(0, HERE)
    from jax_llama import make_train_step

    export = export_dir(args.workdir)
    with open(os.path.join(args.workdir, "bench.json")) as f:
        bench = json.load(f)
    (checkpoint,) = [os.path.join(export, d, "params.safetensors") for d in os.listdir(export)
                     if d.startswith("step_")]
    shapes = safetensors_shapes(checkpoint)
    with open(os.path.join(export, "shardings", f"{mesh_text}.json")) as f:
        shardings = json.load(f)["args"]

    kind, count = target.split(":")
    if kind.startswith("tpu-"):
        topology = topologies.get_topology_desc(TPU_TOPOLOGIES[target], platform="tpu")
    else:
        xla_bridge.register_plugin("cuda", priority=500, library_path=args.cuda_plugin, options=None)
        with open(os.path.join(ROOT, "third_party/gpu-target-configs", GPU_CONFIGS[kind])) as f:
            config = f.read()
        topology = topologies.get_topology_desc(
            "cuda", platform="cuda", target_config=config, topology=f"1x1x{int(count)}")
    axes = [(a, int(n)) for a, n in (kv.split("=") for kv in mesh_text.split(","))]
    # Mesh device p is topology device p: partition p runs on device p, the device assignment
    # both JAX and `axle plan` pass (on libtpu it changes the partitioning: compile_stablehlo.py,
    # docs/benchmarks.md).
    devices = np.array(topology.devices).reshape([n for _, n in axes])
    mesh = Mesh(devices, tuple(a for a, _ in axes))

    def sharding(name):
        dims = [None if not d else (d[0] if len(d) == 1 else tuple(d)) for d in shardings[name]]
        return NamedSharding(mesh, PartitionSpec(*dims))

    names = sorted(shapes)
    num_layers = 1 + max(int(m.group(1)) for n in names if (m := re.search(r"layers/(\d+)/", n)))
    step = make_train_step(num_layers, HEADS)

    def finite(v):
        """1.0 if every element of `v` is finite, else 0.0, as `--finite-check` asks."""
        ok = jnp.abs(v) <= np.finfo(np.float32).max  # false for NaN and +-inf
        if args.finite_check == "select":  # axle's `all_finite` (src/train_step.rs)
            return jnp.min(jnp.where(ok, jnp.ones_like(v), jnp.zeros_like(v)))
        return jnp.min(ok.astype(jnp.float32))

    def train_step(params, mu, nu, count, inputs, targets, rng_key):
        del rng_key  # axle's dropout key: an argument of its step, unused without dropout
        out = step(params, mu, nu, count, inputs, targets)
        if args.finite_check == "none":
            return out
        flags = [finite(v) for v in out[0].values()]
        return (*out, functools.reduce(jnp.minimum, flags))

    param_sh = {n: sharding(n) for n in names}
    mu_sh = {n: sharding(f"opt/mu/{n}") for n in names}
    nu_sh = {n: sharding(f"opt/nu/{n}") for n in names}
    ids_sh = sharding("input_ids")
    scalar = NamedSharding(mesh, PartitionSpec())
    jitted = jax.jit(
        train_step,
        in_shardings=(param_sh, mu_sh, nu_sh, sharding("opt/step"), ids_sh, sharding("target_labels"),
                      sharding("rng_key")),
        out_shardings=(param_sh, mu_sh, nu_sh, sharding("opt/step"), scalar, scalar)
        + ((scalar,) if args.finite_check != "none" else ()),
        donate_argnums=(0, 1, 2, 3),
        keep_unused=True,
    )
    for name, (_, dtype) in shapes.items():
        if dtype != "F32":
            raise SystemExit(f"{checkpoint}: parameter {name} is {dtype}, the JAX step assumes F32")
    f32 = {n: jax.ShapeDtypeStruct(shapes[n][0], jnp.float32) for n in names}
    ids = jax.ShapeDtypeStruct((bench["batch_size"], bench["seq_len"]), jnp.int32)
    # The XLA options axle's mesh rule gave its compile (`name=value`), typed as JAX types them.
    with open(args.plan_json) as f:
        options = dict(o.split("=", 1) for o in json.load(f)["compiler_options"])
    typed = {n: {"true": True, "false": False}.get(v, int(v) if v.lstrip("-").isdigit() else v)
             for n, v in options.items()}
    compiled = jitted.lower(f32, f32, f32, jax.ShapeDtypeStruct((), jnp.int32), ids, ids,
                            jax.ShapeDtypeStruct((2,), jnp.int64)).compile(typed or None)
    stats = compiled.memory_analysis()
    hlo = compiled.as_text()
    collectives = {}
    for m in COLLECTIVE.finditer(hlo):
        collectives[m.group(1)] = collectives.get(m.group(1), 0) + 1
    print(json.dumps({
        "jax": jax.__version__,
        "device_kind": topology.devices[0].device_kind,
        "params": sum(math.prod(s) for s, _ in shapes.values()),
        "arguments": stats.argument_size_in_bytes,
        "outputs": stats.output_size_in_bytes,
        "alias": stats.alias_size_in_bytes,
        "temporaries": stats.temp_size_in_bytes,
        "generated_code": stats.generated_code_size_in_bytes,
        "plugin_peak": stats.peak_memory_in_bytes,
        "collectives": collectives,
        "compiler_options": sorted(options),
    }))


def run(cmd, env=None, check=True):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, env=env, check=check, stdout=subprocess.PIPE, text=True)


def peak(m):
    """axle plan's peak: the larger of the compiler's peak and arguments + outputs
    - aliased + temporaries (plugins have reported peaks below the temporaries)."""
    return max(m["plugin_peak"], m["arguments"] + m["outputs"] - m["alias"] + m["temporaries"])


def dump_env(workdir, system, target, mesh_text):
    """Environment that makes XLA dump its optimized HLO and buffer assignment."""
    where = os.path.join(workdir, "dump", system, f"{target}-{mesh_text}".replace(":", "_"))
    flags = f"--xla_dump_to={where} --xla_dump_hlo_as_text --xla_dump_hlo_pass_re=^$"
    env = dict(os.environ)
    env["XLA_FLAGS"] = flags
    return env


def compile_both(args, target, mesh_text, plan_json, jax_json):
    """Runs `axle plan` and the JAX child for one target and mesh, writing both JSON reports."""
    env = dump_env(args.workdir, "axle", target, mesh_text) if args.dump else None
    plan = run([args.axle, "plan", "--experiment", MODEL, "--target", target, "--mesh", mesh_text,
                "--json", plan_json], env=env, check=False)
    if plan.returncode not in (0, 3):
        raise SystemExit(f"axle plan for {target} {mesh_text} failed (status {plan.returncode})")
    env = dump_env(args.workdir, "jax", target, mesh_text) if args.dump else dict(os.environ)
    env["TPU_SKIP_MDS_QUERY"] = "1"
    # libtpu takes /tmp/libtpu_lockfile unless told that several processes may load it; a
    # compile-only client needs no exclusive chip, and other plans may be running.
    env["ALLOW_MULTIPLE_LIBTPU_LOAD"] = "1"
    if args.libtpu:
        env["TPU_LIBRARY_PATH"] = args.libtpu
    cuda = ["--cuda-plugin", args.cuda_plugin] if args.cuda_plugin else []
    child = run(["unshare", "--net", sys.executable, os.path.abspath(__file__), "--axle", args.axle,
                 "--workdir", args.workdir, *cuda, "--finite-check", args.finite_check,
                 "--plan-json", plan_json, "--jax-child", target, mesh_text], env=env)
    with open(jax_json, "w") as f:
        f.write(child.stdout.strip().splitlines()[-1])


def main():
    args = parse_args()
    if args.jax_child:
        jax_compile(args, *args.jax_child)
        return
    runs = [r.split("/", 1) for r in args.runs]
    os.makedirs(args.workdir, exist_ok=True)
    bench_json = os.path.join(args.workdir, "bench.json")
    if not args.from_json:
        # One CPU step per mesh exports the parameters and each mesh's shardings.
        meshes = sorted({m for _, m in runs})
        run([args.axle, "bench", "--experiment", MODEL, *[a for m in meshes for a in ("--mesh", m)],
             "--cpu-devices", "4", "--warmup", "0", "--steps", "1", "--matmul", "0",
             "--json", bench_json, "--export", export_dir(args.workdir)])
    with open(bench_json) as f:
        axle_params = json.load(f)["params"]
    rows = []
    for target, mesh_text in runs:
        check = "" if args.finite_check == "none" else f"-finite-{args.finite_check}"
        stem = f"{target}-{mesh_text}{check}".replace(":", "_")
        plan_json = os.path.join(args.workdir, f"plan-{stem}.json")
        jax_json = os.path.join(args.workdir, f"jax-{stem}.json")
        if not args.from_json:
            compile_both(args, target, mesh_text, plan_json, jax_json)
        with open(plan_json) as f:
            report = json.load(f)
        with open(jax_json) as f:
            jax_stats = json.load(f)
        if report["mesh_modifiers"] or report["modifiers"] or report["overrides"]:
            raise SystemExit(f"{plan_json}: axle planned with modifiers or overrides; "
                             "the JAX step mirrors the plain experiment")
        axle_stats = dict(report["compiled"])
        axle_stats["plugin_peak"] = axle_stats["peak"]  # the plugin's peak in axle plan's JSON
        # The same model: same parameter count, same argument bytes per chip.
        if jax_stats["params"] != axle_params:
            raise SystemExit(f"parameter count: axle {axle_params}, JAX {jax_stats['params']}")
        if jax_stats["arguments"] != axle_stats["arguments"]:
            raise SystemExit(f"{target} {mesh_text}: argument bytes per chip differ: "
                             f"axle {axle_stats['arguments']}, JAX {jax_stats['arguments']}")
        rows.append((target, mesh_text, axle_stats, jax_stats))
    print_table(rows, axle_params, args.finite_check, args.out)


def print_table(rows, params, finite_check, out):
    mib = lambda b: f"{b / 2**20:.2f}"
    lines = [
        f"{MODEL}, {params:,} parameters (equal in both), f32, batch 8 x seq 128, AdamW; "
        f"JAX {rows[0][3]['jax']}. MiB per chip, axle / JAX. Compiler peak: the plugin's "
        "`peak_memory_in_bytes`; planned peak: the larger of it and arguments + outputs - aliased "
        "+ temporaries (what `axle plan` compares with the chip's memory); ratios axle / JAX; "
        "the planned peaks' difference in bytes, axle - JAX."
        + (f" JAX's step with `--finite-check {finite_check}`." if finite_check != "none" else ""),
        "",
        "| target | mesh | arguments | outputs | aliased | temporaries | compiler peak | ratio "
        "| planned peak | ratio | difference, bytes | collectives axle | collectives JAX |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target, mesh_text, a, j in rows:
        pair = lambda x, y: f"{mib(x)} / {mib(y)}"
        coll = lambda m: ", ".join(f"{k} {v}" for k, v in sorted(m["collectives"].items())) or "none"
        lines.append(
            f"| {target} | {mesh_text} | {pair(a['arguments'], j['arguments'])} "
            f"| {pair(a['outputs'], j['outputs'])} | {pair(a['alias'], j['alias'])} "
            f"| {pair(a['temporaries'], j['temporaries'])} "
            f"| {pair(a['plugin_peak'], j['plugin_peak'])} | {a['plugin_peak'] / j['plugin_peak']:.3f} "
            f"| {pair(peak(a), peak(j))} | {peak(a) / peak(j):.3f} | {peak(a) - peak(j):+,} "
            f"| {coll(a)} | {coll(j)} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
