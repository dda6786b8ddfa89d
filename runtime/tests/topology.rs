//! Ahead-of-time compiles for TPU (libtpu) and GPU (the CUDA plugin) on a
//! machine with neither: topologies, devices, attributes, client-less
//! compiles, memory sizes, cost analysis and the collectives XLA inserted.
//!
//! Each test re-runs itself in a child process without a network
//! (`axle_runtime::offline`): libtpu and the CUDA plugin are only ever
//! loaded there. Install them with `./scripts/install-plugins.sh tpu` and
//! `cuda` (`scripts/test.sh` does).

use axle_runtime::offline::{is_offline, offline_command};
use axle_runtime::{CompileOptions, CreateOption, NamedValue, Plugin, Topology};
use std::collections::BTreeSet;

/// Set in the child process that does a test's work.
const CHILD: &str = "AXLE_RUNTIME_TEST_OFFLINE_CHILD";

/// In the test process: runs test `name` of this binary again in a child
/// without a network, asserts that it passed, and returns false. In that
/// child: checks it is offline and returns true (do the work).
fn in_offline_child(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        assert!(is_offline(), "the child must see no network but loopback");
        return true;
    }
    let exe = std::env::current_exe().unwrap();
    let out = offline_command(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "offline child of {name} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// x[64,128] sharded by rows over 4 devices times a replicated w[128,256],
/// summed to a replicated scalar: per device a 16x128x256 matmul and an
/// all-reduce of the partial sums.
const PROGRAM: &str = r#"module @m attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["data"=4]>
  func.func public @main(%x: tensor<64x128xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {}]>},
                         %w: tensor<128x256xf32> {sdy.sharding = #sdy.sharding<@mesh, [{}, {}]>})
      -> (tensor<f32> {sdy.sharding = #sdy.sharding<@mesh, []>}) {
    %y = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<64x128xf32>, tensor<128x256xf32>) -> tensor<64x256xf32>
    %zero = stablehlo.constant dense<0.0> : tensor<f32>
    %s = stablehlo.reduce(%y init: %zero) applies stablehlo.add across dimensions = [0, 1] : (tensor<64x256xf32>, tensor<f32>) -> tensor<f32>
    return %s : tensor<f32>
  }
}"#;

/// Per-device argument bytes: a 16x128 f32 shard of x and all of w.
const ARGUMENT_BYTES: i64 = 4 * (16 * 128 + 128 * 256);
/// Per-device multiply-adds of the 16x128 · 128x256 matmul, as FLOPs.
const MATMUL_FLOPS: f64 = 2.0 * 16.0 * 128.0 * 256.0;

fn opcodes(exe: &axle_runtime::UnloadedExecutable) -> BTreeSet<String> {
    exe.optimized_hlo()
        .unwrap()
        .computations
        .iter()
        .flat_map(|c| c.instructions.iter().map(|i| i.opcode.clone()))
        .collect()
}

#[test]
fn tpu_v5e_2x2_topology_compiles_without_a_tpu() {
    if !in_offline_child("tpu_v5e_2x2_topology_compiles_without_a_tpu") {
        return;
    }
    let plugin = Plugin::load("tpu").expect("libtpu (./scripts/install-plugins.sh tpu)");
    let topology = Topology::create(plugin.clone(), "v5e:2x2", &[]).unwrap();
    assert_eq!(topology.platform_name().unwrap(), "tpu");
    let devices = topology.devices().unwrap();
    assert_eq!(devices.len(), 4, "a 2x2 slice has 4 chips");
    assert!(
        devices.iter().all(|d| d.kind == "TPU v5 lite"),
        "{devices:?}"
    );
    let coords: BTreeSet<Vec<i64>> = devices
        .iter()
        .map(|d| d.coords().expect("TPU chips have coords")[..2].to_vec())
        .collect();
    let square: BTreeSet<Vec<i64>> = [[0, 0], [1, 0], [0, 1], [1, 1]]
        .iter()
        .map(|c| c.to_vec())
        .collect();
    assert_eq!(coords, square, "one chip at each point of the 2x2 grid");
    // v5e has 16 GiB of HBM per chip (Google's published figure); libtpu
    // keeps a little for itself: the limit must lie in (15, 16] GiB.
    let limit = topology
        .int_attribute("device_memory_bytes_limit")
        .unwrap()
        .expect("libtpu reports the HBM limit");
    assert!(limit > 15 << 30 && limit <= 16 << 30, "{limit}");

    let exe = topology
        .compile(PROGRAM, &CompileOptions::shardy(4))
        .unwrap();
    let stats = exe.memory_stats().unwrap().expect("libtpu reports memory");
    assert_eq!(
        stats.arguments, ARGUMENT_BYTES,
        "both shapes are tile-aligned: no padding"
    );
    assert!(stats.peak >= stats.arguments, "{stats:?}");
    let cost = exe.cost_analysis().unwrap().expect("libtpu reports costs");
    let flops = cost
        .iter()
        .find_map(|(n, v)| match v {
            NamedValue::Float(f) if n == "flops" => Some(f64::from(*f)),
            _ => None,
        })
        .expect("a flops entry");
    // The matmul dominates; the reduction adds one add per element of the
    // 16x256 block and the all-reduce a few: at most 5% more.
    assert!(
        (MATMUL_FLOPS..=1.05 * MATMUL_FLOPS).contains(&flops),
        "{flops} vs {MATMUL_FLOPS}"
    );
    assert!(
        opcodes(&exe).contains("all-reduce"),
        "partial sums are all-reduced"
    );
    assert!(!exe.serialize().unwrap().is_empty());
}

#[test]
fn an_unknown_tpu_topology_is_the_plugins_error() {
    if !in_offline_child("an_unknown_tpu_topology_is_the_plugins_error") {
        return;
    }
    let plugin = Plugin::load("tpu").expect("libtpu (./scripts/install-plugins.sh tpu)");
    let err = Topology::create(plugin, "v1:9x9", &[]).unwrap_err();
    assert!(
        err.to_string().contains("PJRT_TopologyDescription_Create"),
        "{err}"
    );
}

#[test]
fn gpu_h100_x4_compiles_without_a_gpu() {
    if !in_offline_child("gpu_h100_x4_compiles_without_a_gpu") {
        return;
    }
    let plugin = Plugin::load("cuda").expect("CUDA plugin (./scripts/install-plugins.sh cuda)");
    let target = include_str!("../../third_party/gpu-target-configs/h100_sxm.txtpb");
    let topology = Topology::create(
        plugin,
        "cuda",
        &[
            CreateOption::string("target_config", target),
            CreateOption::string("topology", "1x1x4"),
        ],
    )
    .unwrap();
    let devices = topology.devices().unwrap();
    assert_eq!(devices.len(), 4);
    let exe = topology
        .compile(PROGRAM, &CompileOptions::shardy(4))
        .unwrap();
    let stats = exe
        .memory_stats()
        .unwrap()
        .expect("the CUDA plugin reports memory");
    assert_eq!(stats.arguments, ARGUMENT_BYTES);
    assert!(
        opcodes(&exe).contains("all-reduce"),
        "partial sums are all-reduced"
    );
}
