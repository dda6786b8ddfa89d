//! Smoke test of the second CPU plugin, xla-cpu-pjrt 0.0.1 (API 0.81), which
//! axle supports but does not use by default (see third_party/README.md).

use axle_runtime::{
    Client, CompileOptions, CreateOption, Error, OverrideValue, Plugin, ShardLayout, ShardedArray,
    discovery,
};
use ndarray::{Array2, ArrayD, IxDyn};

fn client() -> Client {
    let path = discovery::find_in_packages("xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so").expect(
        "xla-cpu-pjrt is installed by scripts/test.sh (third_party/pjrt-cpu-requirements.txt)",
    );
    let plugin = Plugin::load_path(&path).unwrap();
    assert_eq!(plugin.api_version(), (0, 81));
    Client::new(plugin, &[CreateOption::int("cpu_device_count", 4)]).unwrap()
}

/// Data parallel over 4 devices: rows of `x` split, `w` replicated, and the
/// result `xᵀ(xw)` summed over all rows, so XLA must all-reduce across the
/// four devices — the collective that deadlocks on this plugin when XNNPACK
/// is on. The runtime turns XNNPACK off for this plugin by itself.
#[test]
fn four_device_all_reduce_runs_with_the_xnnpack_workaround() {
    let c = client();
    assert_eq!(c.platform_name().unwrap(), "cpu");
    assert_eq!(c.device_count(), 4);
    let program = r#"
module @m attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["data"=4]>
  func.func public @main(%x: tensor<16x8xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {}]>},
                         %w: tensor<8x8xf32> {sdy.sharding = #sdy.sharding<@mesh, [{}, {}]>})
      -> (tensor<8x8xf32> {sdy.sharding = #sdy.sharding<@mesh, [{}, {}]>}) {
    %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<16x8xf32>, tensor<8x8xf32>) -> tensor<16x8xf32>
    %1 = stablehlo.dot_general %x, %0, contracting_dims = [0] x [0] : (tensor<16x8xf32>, tensor<16x8xf32>) -> tensor<8x8xf32>
    return %1 : tensor<8x8xf32>
  }
}"#;
    let exe = c.compile(program, &CompileOptions::shardy(4)).unwrap();
    assert!(
        exe.optimized_hlo()
            .unwrap()
            .find_opcode("all-reduce")
            .count()
            > 0
    );
    // Small integers keep every product and sum exact in f32.
    let x = Array2::from_shape_fn((16, 8), |(i, j)| ((i + 2 * j) % 5) as f32 - 2.0);
    let w = Array2::from_shape_fn((8, 8), |(i, j)| ((3 * i + j) % 4) as f32 - 1.0);
    let rows = ShardLayout {
        mesh_shape: vec![4],
        dim_axes: vec![vec![0], vec![]],
    };
    let replicated = ShardLayout::replicated(vec![4], 2);
    let xs = ShardedArray::from_array(&c, &x.clone().into_dyn(), &rows).unwrap();
    let ws = ShardedArray::from_array(&c, &w.clone().into_dyn(), &replicated).unwrap();
    let mut out = exe.execute_sharded(&[&xs, &ws]).unwrap();
    let y = ShardedArray::from_shards(&[8, 8], &replicated, out.remove(0)).unwrap();
    let expected = x.t().dot(&x.dot(&w));
    for shard in y.shards() {
        assert_eq!(
            shard.to_array::<f32>().unwrap(),
            expected.clone().into_dyn(),
            "every replica holds the full sum"
        );
    }
}

/// The workaround travels as a compile-option env override; the plugin reads
/// it (an invalid value for the flag is refused, naming it).
#[test]
fn the_xnnpack_override_reaches_xla() {
    let c = client();
    let program =
        "func.func public @main(%a: tensor<2xf32>) -> tensor<2xf32> { return %a : tensor<2xf32> }";
    let options = CompileOptions::single_device()
        .with_override("xla_cpu_use_xnnpack", OverrideValue::String("maybe".into()));
    let err = c.compile(program, &options).unwrap_err();
    assert!(
        matches!(&err, Error::Pjrt { message, .. } if message.contains("xla_cpu_use_xnnpack")),
        "{err}"
    );
    let exe = c
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let a = c
        .buffer_from_array(&ArrayD::from_elem(IxDyn(&[2]), 1.5f32), 0)
        .unwrap();
    assert_eq!(
        exe.execute_one(&[&a]).unwrap()[0].to_vec::<f32>().unwrap(),
        vec![1.5, 1.5]
    );
}
