//! The Shardy text and shard layouts axle-partition writes, run on the real
//! CPU plugin with 8 devices: a matmul `y = (x · w) * s` with its operands,
//! result and an in-body `sdy.sharding_constraint` sharded several ways
//! (multi-axis dimensions in both orders, partial meshes, unconstrained
//! `?` dimensions). Each device's output block must equal the matching
//! block of an ndarray product, and the assembled result the whole product.
//!
//! Inputs are small integers, so every product and sum is exact in f32 and
//! the comparisons are exact whatever order XLA reduces in.

use axle::partition::{MESH_SYMBOL, Mesh, PartitionSpec};
use axle::runtime::{Client, CompileOptions, ShardLayout, ShardedArray};
use ndarray::{Array2, ArrayD, IxDyn, s};

const X_SHAPE: [usize; 2] = [8, 6];
const W_SHAPE: [usize; 2] = [6, 4];
const Y_SHAPE: [usize; 2] = [8, 4];

/// One sharding of the program: mesh, then the specs of `x`, `w`, `y` and
/// of the constraint on `x · w`.
struct Case {
    mesh: &'static str,
    x: &'static str,
    w: &'static str,
    y: &'static str,
    constraint: &'static str,
}

const CASES: [Case; 5] = [
    Case {
        mesh: "data=2,fsdp=2,model=2",
        x: "(data+fsdp, _)",
        w: "(_, model)",
        y: "(data+fsdp, model)",
        constraint: "(data+fsdp, ?)",
    },
    Case {
        mesh: "data=2,fsdp=2,model=2",
        x: "(fsdp+data, _)",
        w: "(_, model)",
        y: "(model+data, fsdp)",
        constraint: "(?, ?)",
    },
    Case {
        mesh: "data=1,fsdp=4,model=2",
        x: "(data+fsdp, _)",
        w: "(model, _)",
        y: "(fsdp, model)",
        constraint: "(fsdp, _)",
    },
    Case {
        mesh: "data=2,fsdp=2,model=2",
        x: "(model+fsdp+data, _)",
        w: "(_, _)",
        y: "(_, _)",
        constraint: "(data, ?)",
    },
    Case {
        mesh: "fsdp=8",
        x: "(fsdp, _)",
        w: "(_, _)",
        y: "(fsdp, _)",
        constraint: "(fsdp, _)",
    },
];

fn spec(text: &str) -> PartitionSpec {
    text.parse()
        .unwrap_or_else(|e| panic!("spec `{text}`: {e}"))
}

/// The StableHLO module of the case, annotated with Shardy text written by
/// the partition crate.
fn program(mesh: &Mesh, case: &Case) -> String {
    let sharding = |text: &str| spec(text).sdy_sharding(MESH_SYMBOL);
    let scalar = PartitionSpec::replicated(0).sdy_sharding(MESH_SYMBOL);
    format!(
        r#"module @m attributes {{mhlo.num_partitions = {n} : i32, mhlo.num_replicas = 1 : i32}} {{
  {mesh_op}
  func.func public @main(%x: tensor<8x6xf32> {{sdy.sharding = {x}}}, %w: tensor<6x4xf32> {{sdy.sharding = {w}}}, %s: tensor<f32> {{sdy.sharding = {scalar}}}) -> (tensor<8x4xf32> {{sdy.sharding = {y}}}) {{
    %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : (tensor<8x6xf32>, tensor<6x4xf32>) -> tensor<8x4xf32>
    %1 = sdy.sharding_constraint %0 {constraint} : tensor<8x4xf32>
    %2 = stablehlo.broadcast_in_dim %s, dims = [] : (tensor<f32>) -> tensor<8x4xf32>
    %3 = stablehlo.multiply %1, %2 : tensor<8x4xf32>
    return %3 : tensor<8x4xf32>
  }}
}}
"#,
        n = mesh.size(),
        mesh_op = mesh.sdy_mesh_op(MESH_SYMBOL),
        x = sharding(case.x),
        w = sharding(case.w),
        y = sharding(case.y),
        constraint = spec(case.constraint).sdy_constraint(MESH_SYMBOL),
    )
}

/// The runtime layout of `text` on `mesh` for an array of `shape`.
fn layout(mesh: &Mesh, text: &str, shape: &[usize]) -> ShardLayout {
    let l = spec(text).shard_layout(mesh, shape, text).unwrap();
    ShardLayout {
        mesh_shape: l.mesh_shape,
        dim_axes: l.dim_axes,
    }
}

fn inputs() -> (ArrayD<f32>, ArrayD<f32>, ArrayD<f32>) {
    let x = ArrayD::from_shape_fn(IxDyn(&X_SHAPE), |i| ((i[0] * 6 + i[1]) % 7) as f32 - 3.0);
    let w = ArrayD::from_shape_fn(IxDyn(&W_SHAPE), |i| ((i[0] * 4 + i[1]) % 5) as f32 - 2.0);
    let s = ArrayD::from_elem(IxDyn(&[]), 2.0f32);
    (x, w, s)
}

/// Runs the case; returns the per-device output buffers as host arrays and
/// the assembled result.
fn run(client: &Client, mesh: &Mesh, case: &Case) -> (Vec<ArrayD<f32>>, ArrayD<f32>) {
    let text = program(mesh, case);
    let exe = client
        .compile(&text, &CompileOptions::shardy(mesh.size()))
        .unwrap_or_else(|e| panic!("{}: {e}\n{text}", case.mesh));
    let (x, w, s) = inputs();
    let xa = ShardedArray::from_array(client, &x, &layout(mesh, case.x, &X_SHAPE)).unwrap();
    let wa = ShardedArray::from_array(client, &w, &layout(mesh, case.w, &W_SHAPE)).unwrap();
    let sa = ShardedArray::from_array(client, &s, &layout(mesh, "()", &[])).unwrap();
    let mut out = exe.execute_sharded(&[&xa, &wa, &sa]).unwrap();
    let shards = out.remove(0);
    let blocks = shards
        .iter()
        .map(|b| b.to_array::<f32>().unwrap())
        .collect();
    let y = ShardedArray::from_shards(&Y_SHAPE, &layout(mesh, case.y, &Y_SHAPE), shards)
        .unwrap()
        .to_array::<f32>()
        .unwrap();
    (blocks, y)
}

fn reference() -> Array2<f32> {
    let (x, w, _) = inputs();
    let x = x.into_dimensionality::<ndarray::Ix2>().unwrap();
    let w = w.into_dimensionality::<ndarray::Ix2>().unwrap();
    x.dot(&w) * 2.0
}

#[test]
fn sharded_matmuls_match_ndarray_on_every_device() {
    let client = Client::cpu(8).unwrap();
    let want = reference();
    for case in &CASES {
        let mesh = Mesh::parse(case.mesh, 8).unwrap();
        let (blocks, y) = run(&client, &mesh, case);
        let y_layout = spec(case.y).shard_layout(&mesh, &Y_SHAPE, "y").unwrap();
        for (device, block) in blocks.iter().enumerate() {
            let at = y_layout.shard_slices(device, &Y_SHAPE).unwrap();
            let expect = want.slice(s![at[0].0..at[0].0 + at[0].1, at[1].0..at[1].0 + at[1].1]);
            assert_eq!(
                block,
                &expect.into_dyn(),
                "{} y{} device {device}",
                case.mesh,
                case.y
            );
        }
        assert_eq!(y, want.clone().into_dyn(), "{} y{}", case.mesh, case.y);
    }
}

/// Device blocks worked out by hand from Shardy's rule (a dimension split
/// over axes `a+b` is split over `a` first, then each part over `b`; device
/// `i` sits at the row-major mesh position `i`), independent of the
/// partition crate's layout code.
#[test]
fn device_blocks_follow_shardy_axis_order() {
    let client = Client::cpu(8).unwrap();
    let want = reference();
    // Case 1: y is (model+data, fsdp) on data=2,fsdp=2,model=2; rows split
    // in 4 blocks of 2, columns in 2 blocks of 2. Device 5 = (data 1, fsdp
    // 0, model 1): row block model*2+data = 3, column block fsdp = 0.
    // Device 6 = (1, 1, 0): row block 1, column block 1.
    let mesh = Mesh::parse(CASES[1].mesh, 8).unwrap();
    let (blocks, _) = run(&client, &mesh, &CASES[1]);
    assert_eq!(blocks[5], want.slice(s![6..8, 0..2]).into_dyn());
    assert_eq!(blocks[6], want.slice(s![2..4, 2..4]).into_dyn());
    // Case 0: y is (data+fsdp, model); device 6 = (1, 1, 0): row block
    // data*2+fsdp = 3, column block 0. Device 3 = (0, 1, 1): rows 2..4,
    // columns 2..4.
    let mesh = Mesh::parse(CASES[0].mesh, 8).unwrap();
    let (blocks, _) = run(&client, &mesh, &CASES[0]);
    assert_eq!(blocks[6], want.slice(s![6..8, 0..2]).into_dyn());
    assert_eq!(blocks[3], want.slice(s![2..4, 2..4]).into_dyn());
}
