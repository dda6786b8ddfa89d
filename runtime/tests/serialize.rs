//! A compiled CPU executable serialized and loaded back (the persistent
//! compile cache's mechanism) computes what the original computes.

mod common;

use axle_runtime::CompileOptions;
use common::client;
use ndarray::Array2;

#[test]
fn a_serialized_executable_loads_back_and_gives_the_same_outputs() {
    let c = client();
    let program = "func.func public @main(%a: tensor<4x3xf32>, %b: tensor<3x2xf32>) -> tensor<4x2xf32> {
  %0 = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0] : (tensor<4x3xf32>, tensor<3x2xf32>) -> tensor<4x2xf32>
  %1 = stablehlo.tanh %0 : tensor<4x2xf32>
  return %1 : tensor<4x2xf32>
}";
    let original = c
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let bytes = original.serialize().unwrap();
    assert!(!bytes.is_empty(), "the CPU plugin serializes executables");
    let loaded = c.deserialize(&bytes).unwrap();
    assert_eq!(loaded.num_outputs(), 1);
    assert_eq!(loaded.device_count(), 1);

    let a = Array2::from_shape_fn((4, 3), |(i, j)| (i as f32 - 1.5) * 0.3 + j as f32 * 0.2);
    let b = Array2::from_shape_fn((3, 2), |(i, j)| (i as f32 + 1.0) * 0.25 - j as f32 * 0.5);
    let inputs = [
        c.buffer_from_slice(a.as_slice().unwrap(), &[4, 3], 0)
            .unwrap(),
        c.buffer_from_slice(b.as_slice().unwrap(), &[3, 2], 0)
            .unwrap(),
    ];
    let args: Vec<_> = inputs.iter().collect();
    let from_original = original.execute_one(&args).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    let from_loaded = loaded.execute_one(&args).unwrap()[0]
        .to_vec::<f32>()
        .unwrap();
    // The same machine code runs: bit-identical outputs.
    assert_eq!(from_loaded, from_original);
    // And both are tanh(a·b): f64 reference, 1e-6 for f32 rounding of a
    // 3-term dot product and XLA's tanh approximation (a few ulp).
    let reference = a.mapv(f64::from).dot(&b.mapv(f64::from)).mapv(f64::tanh);
    for (got, want) in from_loaded.iter().zip(reference.iter()) {
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn garbage_is_refused_with_the_plugins_error() {
    let err = client().deserialize(b"not an executable").unwrap_err();
    assert!(
        err.to_string()
            .contains("PJRT_Executable_DeserializeAndLoad"),
        "{err}"
    );
}
