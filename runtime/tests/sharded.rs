//! SPMD over a 2x2 mesh of virtual CPU devices: Shardy-annotated programs,
//! sharded arrays in and out, checked against the unsharded ndarray result.

mod common;

use axle_runtime::{CompileOptions, ShardLayout, ShardedArray};
use common::client;
use ndarray::{Array2, ArrayD, IxDyn};

const MATMUL: &str = r#"
module @m attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {
  sdy.mesh @mesh = <["data"=2, "model"=2]>
  func.func public @main(%x: tensor<8x4xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {"model"}]>},
                         %w: tensor<4x6xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"model"}, {}]>})
      -> (tensor<8x6xf32> {sdy.sharding = #sdy.sharding<@mesh, [{"data"}, {}]>}) {
    %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<8x4xf32>, tensor<4x6xf32>) -> tensor<8x6xf32>
    return %0 : tensor<8x6xf32>
  }
}"#;

fn layout(dims: &[&[usize]]) -> ShardLayout {
    ShardLayout {
        mesh_shape: vec![2, 2],
        dim_axes: dims.iter().map(|d| d.to_vec()).collect(),
    }
}

/// Small integers: the f32 matmul is exact whatever order XLA sums in.
fn ints(rows: usize, cols: usize, seed: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 5 + j * 3 + seed) % 9) as f32 - 4.0
    })
}

#[test]
fn shardy_matmul_on_four_devices_equals_unsharded_product() {
    let c = client();
    let exe = c.compile(MATMUL, &CompileOptions::shardy(4)).unwrap();
    assert_eq!(exe.device_count(), 4);
    let x = ints(8, 4, 1);
    let w = ints(4, 6, 2);
    let x_sharded =
        ShardedArray::from_array(c, &x.clone().into_dyn(), &layout(&[&[0], &[1]])).unwrap();
    let w_sharded =
        ShardedArray::from_array(c, &w.clone().into_dyn(), &layout(&[&[1], &[]])).unwrap();
    assert_eq!(x_sharded.shards()[1].dims(), &[4, 2]);

    let mut outputs = exe.execute_sharded(&[&x_sharded, &w_sharded]).unwrap();
    assert_eq!(outputs.len(), 1);
    let y = ShardedArray::from_shards(&[8, 6], &layout(&[&[0], &[]]), outputs.remove(0)).unwrap();
    assert_eq!(y.to_array::<f32>().unwrap(), x.dot(&w).into_dyn());

    // The contraction dimension is split over `model`: XLA must sum the
    // partial products with an all-reduce, on per-device 4x6 blocks.
    let hlo = exe.optimized_hlo().unwrap();
    let all_reduce: Vec<_> = hlo.find_opcode("all-reduce").collect();
    assert!(!all_reduce.is_empty(), "no all-reduce in the optimized HLO");
    assert_eq!(all_reduce[0].shape.as_ref().unwrap().dims(), vec![4, 6]);
    let params: Vec<Vec<usize>> = hlo.parameter_shapes().iter().map(|s| s.dims()).collect();
    assert_eq!(params, vec![vec![4, 2], vec![2, 6]]);
}

#[test]
fn sharded_arrays_round_trip_for_every_layout_kind() {
    let c = client();
    let global = ArrayD::from_shape_fn(IxDyn(&[4, 8]), |i| (i[0] * 8 + i[1]) as i32);
    for dims in [
        vec![vec![0], vec![1]],
        vec![vec![1], vec![0]],
        vec![vec![0, 1], vec![]],
        vec![vec![], vec![1, 0]],
        vec![vec![], vec![]],
    ] {
        let l = ShardLayout {
            mesh_shape: vec![2, 2],
            dim_axes: dims.clone(),
        };
        let sharded = ShardedArray::from_array(c, &global, &l).unwrap();
        assert_eq!(
            sharded.to_array::<i32>().unwrap(),
            global,
            "layout {dims:?}"
        );
    }
}

#[test]
fn shards_land_where_the_layout_says() {
    let c = client();
    let global = ArrayD::from_shape_fn(IxDyn(&[4, 2]), |i| (i[0] * 2 + i[1]) as f32);
    // Rows split over mesh axis 1 (size 2): devices 0 and 2 (axis-1 position 0)
    // hold rows 0..2, devices 1 and 3 hold rows 2..4.
    let sharded = ShardedArray::from_array(c, &global, &layout(&[&[1], &[]])).unwrap();
    let rows: Vec<Vec<f32>> = sharded
        .shards()
        .iter()
        .map(|b| b.to_vec::<f32>().unwrap())
        .collect();
    assert_eq!(rows[0], vec![0.0, 1.0, 2.0, 3.0]);
    assert_eq!(rows[1], vec![4.0, 5.0, 6.0, 7.0]);
    assert_eq!(rows[2], rows[0]);
    assert_eq!(rows[3], rows[1]);
}

#[test]
fn a_device_assignment_puts_partition_p_on_the_named_device() {
    let c = client();
    let options = CompileOptions {
        device_assignment: Some(vec![3, 2, 1, 0]),
        ..CompileOptions::shardy(4)
    };
    let exe = c.compile(MATMUL, &options).unwrap();
    let ids: Vec<i32> = exe.devices().unwrap().iter().map(|d| d.id).collect();
    assert_eq!(ids, vec![3, 2, 1, 0]);
    // Shards placed for the default order are now on the wrong devices.
    let x = ShardedArray::from_array(c, &ints(8, 4, 1).into_dyn(), &layout(&[&[0], &[1]])).unwrap();
    let w = ShardedArray::from_array(c, &ints(4, 6, 2).into_dyn(), &layout(&[&[1], &[]])).unwrap();
    let err = exe.execute_sharded(&[&x, &w]).unwrap_err();
    assert!(
        matches!(
            err,
            axle_runtime::Error::ArgumentDevice {
                device: 0,
                expected_device: 3,
                buffer_device: 0,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn gspmd_annotations_partition_too() {
    let c = client();
    let program = r#"
module @m attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {
  func.func public @main(%x: tensor<8x3xf32> {mhlo.sharding = "{devices=[4,1]<=[4]}"})
      -> (tensor<3xf32> {mhlo.sharding = "{replicated}"}) {
    %zero = stablehlo.constant dense<0.0> : tensor<f32>
    %0 = stablehlo.reduce(%x init: %zero) applies stablehlo.add across dimensions = [0] : (tensor<8x3xf32>, tensor<f32>) -> tensor<3xf32>
    return %0 : tensor<3xf32>
  }
}"#;
    let exe = c.compile(program, &CompileOptions::gspmd(4)).unwrap();
    let x = ints(8, 3, 5);
    let rows = ShardLayout {
        mesh_shape: vec![4],
        dim_axes: vec![vec![0], vec![]],
    };
    let xs = ShardedArray::from_array(c, &x.clone().into_dyn(), &rows).unwrap();
    let mut out = exe.execute_sharded(&[&xs]).unwrap();
    let sum = ShardedArray::from_shards(&[3], &ShardLayout::replicated(vec![4], 1), out.remove(0))
        .unwrap();
    // Column sums of small integers: exact.
    assert_eq!(
        sum.to_array::<f32>().unwrap(),
        x.sum_axis(ndarray::Axis(0)).into_dyn()
    );
    assert!(
        exe.optimized_hlo()
            .unwrap()
            .find_opcode("all-reduce")
            .count()
            > 0
    );
}
