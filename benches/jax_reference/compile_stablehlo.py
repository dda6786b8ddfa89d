"""Compile a StableHLO file (e.g. `axle lower` output) for a TPU or GPU topology through jaxlib.

A diagnostic for aot_memory.py's table: it compiles axle's own program with
the compile options JAX uses (jaxlib's `CompileOptions`: Shardy SPMD over
`--partitions`, and an explicit device assignment, partition p on device p,
unless `--no-device-assignment`, which is what `axle plan` sends), so that a
difference between axle's and JAX's numbers can be split into one of the
program and one of the options. Prints the compiled memory stats (bytes per
chip) and the collectives of the optimized HLO as one JSON line.

Run it as aot_memory.py runs its JAX child: `unshare --net` with
TPU_SKIP_MDS_QUERY=1, ALLOW_MULTIPLE_LIBTPU_LOAD=1 and TPU_LIBRARY_PATH set
to libtpu.so (docs/benchmarks.md).
"""

import argparse
import collections
import json
import os
import re


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mlir", help="StableHLO text with sdy shardings (axle lower --mesh ...)")
    p.add_argument("--topology", default="v5e:2x2", help="libtpu topology name")
    p.add_argument("--cuda-plugin", help="compile for GPUs instead: the CUDA plugin's .so")
    p.add_argument("--gpu-config", help="with --cuda-plugin: a GpuTargetConfigProto text file "
                   "(third_party/gpu-target-configs/)")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--no-device-assignment", action="store_true",
                   help="leave the device assignment to the compiler, as axle plan does")
    args = p.parse_args()
    os.environ["JAX_PLATFORMS"] = "cpu"
    import numpy as np
    from jax._src.interpreters import mlir
    from jax._src.lib import xla_client as xc
    from jax._src.lib.mlir import ir
    from jax.experimental import topologies

    if args.cuda_plugin:
        from jax._src import xla_bridge

        xla_bridge.register_plugin("cuda", priority=500, library_path=args.cuda_plugin, options=None)
        with open(args.gpu_config) as f:
            config = f.read()
        topology = topologies.get_topology_desc(
            "cuda", platform="cuda", target_config=config, topology=f"1x1x{args.partitions}")
    else:
        topology = topologies.get_topology_desc(args.topology, platform="tpu")
    devices = topology.devices[: args.partitions]
    options = xc.CompileOptions()
    build = options.executable_build_options
    build.num_replicas = 1
    build.num_partitions = args.partitions
    build.use_spmd_partitioning = True
    build.use_shardy_partitioner = True
    if not args.no_device_assignment:
        build.device_assignment = xc.DeviceAssignment.create(
            np.array([d.id for d in devices]).reshape(1, args.partitions))
    with open(args.mlir) as f:
        text = f.read()
    with mlir.make_ir_context():
        module = ir.Module.parse(text)
        exe = devices[0].client.compile(
            module, executable_devices=xc.DeviceList(tuple(devices)), compile_options=options)
    stats = exe.get_compiled_memory_stats()
    hlo = exe.hlo_modules()[0].to_string()
    collectives = collections.Counter(
        m.group(1) for m in re.finditer(
            r"[\]})] (all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute)(-start)?\(", hlo))
    print(json.dumps({
        "device_assignment": not args.no_device_assignment,
        "arguments": stats.argument_size_in_bytes,
        "outputs": stats.output_size_in_bytes,
        "alias": stats.alias_size_in_bytes,
        "temporaries": stats.temp_size_in_bytes,
        "generated_code": stats.generated_code_size_in_bytes,
        "plugin_peak": stats.peak_memory_in_bytes,
        "collectives": dict(sorted(collectives.items())),
    }))


if __name__ == "__main__":
    main()
