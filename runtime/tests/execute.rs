//! Single-device compile and execute on the real default CPU plugin, checked
//! against ndarray.

mod common;

use axle_runtime::{Arg, CompileOptions, DType, Error, OverrideValue};
use common::{binary_program, client};
use half::{bf16, f16};
use ndarray::{Array2, ArrayD, IxDyn};

/// Deterministic small-integer-valued test data: products and short sums of
/// such values are exact in f32, so results can be compared exactly.
fn ints(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + seed * 3) % 11) as f32 - 5.0)
        .collect()
}

#[test]
fn f32_add_equals_ndarray() {
    let c = client();
    let exe = c
        .compile(
            &binary_program("add", "tensor<3x4xf32>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    let a = ArrayD::from_shape_vec(IxDyn(&[3, 4]), ints(12, 1)).unwrap();
    let b = ArrayD::from_shape_vec(IxDyn(&[3, 4]), ints(12, 2)).unwrap();
    let out = exe
        .execute_one(&[
            &c.buffer_from_array(&a, 0).unwrap(),
            &c.buffer_from_array(&b, 0).unwrap(),
        ])
        .unwrap();
    assert_eq!(out.len(), 1);
    // Exact: f32 addition of small integers has no rounding.
    assert_eq!(out[0].to_array::<f32>().unwrap(), &a + &b);
}

#[test]
fn f32_matmul_equals_ndarray() {
    let c = client();
    let program = "func.func public @main(%a: tensor<5x3xf32>, %b: tensor<3x2xf32>) -> tensor<5x2xf32> {
  %0 = stablehlo.dot_general %a, %b, contracting_dims = [1] x [0] : (tensor<5x3xf32>, tensor<3x2xf32>) -> tensor<5x2xf32>
  return %0 : tensor<5x2xf32>
}";
    let exe = c
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let a = Array2::from_shape_vec((5, 3), ints(15, 3)).unwrap();
    let b = Array2::from_shape_vec((3, 2), ints(6, 4)).unwrap();
    let out = exe
        .execute_one(&[
            &c.buffer_from_slice(a.as_slice().unwrap(), &[5, 3], 0)
                .unwrap(),
            &c.buffer_from_slice(b.as_slice().unwrap(), &[3, 2], 0)
                .unwrap(),
        ])
        .unwrap();
    // Exact: every product and partial sum is a small integer.
    assert_eq!(out[0].to_array::<f32>().unwrap(), a.dot(&b).into_dyn());
    assert_eq!(exe.output_dtypes().unwrap(), vec![DType::F32]);
    assert_eq!(exe.output_dims().unwrap(), vec![vec![5, 2]]);
    assert_eq!(exe.num_outputs(), 1);
    // The CPU plugin does not implement cost analysis: reported as None, not an error.
    assert!(exe.cost_analysis().is_ok());
    let stats = exe
        .memory_stats()
        .unwrap()
        .expect("the CPU plugin reports memory stats");
    assert_eq!(
        (stats.arguments, stats.outputs),
        (4 * (15 + 6), 4 * 10),
        "f32 bytes of a, b and the result"
    );
}

#[test]
fn every_dtype_round_trips_through_device_memory() {
    let c = client();
    let dims = [2, 3];
    macro_rules! round_trip {
        ($t:ty, $values:expr) => {{
            let values: Vec<$t> = $values;
            let buffer = c.buffer_from_slice(&values, &dims, 1).unwrap();
            assert_eq!(buffer.dtype(), <$t as axle_runtime::Element>::DTYPE);
            assert_eq!(buffer.dims(), &dims);
            assert_eq!(buffer.to_vec::<$t>().unwrap(), values, "{}", stringify!($t));
        }};
    }
    round_trip!(
        f32,
        vec![0.0, -1.5, f32::MAX, f32::MIN_POSITIVE, 3.25, -0.0]
    );
    round_trip!(
        f64,
        vec![0.0, -1.5, f64::MAX, 1e-300, std::f64::consts::PI, 2.0]
    );
    round_trip!(
        bf16,
        [0.0f32, -1.5, 3.0e38, 1.0e-3, 7.0, 256.0]
            .map(bf16::from_f32)
            .to_vec()
    );
    round_trip!(
        f16,
        [0.0f32, -1.5, 65504.0, 6.1e-5, 7.0, 0.333]
            .map(f16::from_f32)
            .to_vec()
    );
    round_trip!(i32, vec![0, -1, i32::MAX, i32::MIN, 7, 42]);
    round_trip!(i64, vec![0, -1, i64::MAX, i64::MIN, 7, 1 << 40]);
    round_trip!(u32, vec![0, 1, u32::MAX, 7, 42, 1 << 31]);
    round_trip!(u8, vec![0, 1, 255, 7, 42, 128]);
    round_trip!(bool, vec![true, false, false, true, true, false]);
}

#[test]
fn integer_and_pred_programs_compute_on_device() {
    let c = client();
    let exe = c
        .compile(
            &binary_program("multiply", "tensor<4xi32>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    let a: [i32; 4] = [3, -4, 100_000, 7];
    let b = [5, 6, 20_000, -1];
    let out = exe
        .execute_one(&[
            &c.buffer_from_slice(&a, &[4], 0).unwrap(),
            &c.buffer_from_slice(&b, &[4], 0).unwrap(),
        ])
        .unwrap();
    // i32 wraps like Rust's wrapping_mul (100000 * 20000 overflows).
    let expected: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x.wrapping_mul(*y)).collect();
    assert_eq!(out[0].to_vec::<i32>().unwrap(), expected);

    let exe = c
        .compile(
            &binary_program("and", "tensor<4xi1>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    let a = [true, true, false, false];
    let b = [true, false, true, false];
    let out = exe
        .execute_one(&[
            &c.buffer_from_slice(&a, &[4], 0).unwrap(),
            &c.buffer_from_slice(&b, &[4], 0).unwrap(),
        ])
        .unwrap();
    assert_eq!(
        out[0].to_vec::<bool>().unwrap(),
        vec![true, false, false, false]
    );
}

#[test]
fn malformed_mlir_returns_xla_message_and_process_survives() {
    let c = client();
    let err = c
        .compile(
            "func.func @main(%a: tensor<2xf32>) -> tensor<2xf32> { %0 = stablehlo.bogus %a }",
            &CompileOptions::single_device(),
        )
        .unwrap_err();
    let Error::Pjrt {
        function,
        code,
        message,
    } = &err
    else {
        panic!("expected a PJRT error, got {err}")
    };
    assert_eq!(*function, "PJRT_Client_Compile");
    assert!(
        message.contains("'stablehlo.bogus' is unknown"),
        "XLA's message should name the bad op: {message}"
    );
    // The plugin reports UNKNOWN for parse failures; any non-OK code is right.
    assert_ne!(code.0, 0, "{err}");
    // The client still works.
    let exe = c
        .compile(
            &binary_program("add", "tensor<2xf32>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    let x = c.buffer_from_slice(&[1.0f32, 2.0], &[2], 0).unwrap();
    assert_eq!(
        exe.execute_one(&[&x, &x]).unwrap()[0]
            .to_vec::<f32>()
            .unwrap(),
        vec![2.0, 4.0]
    );
}

#[test]
fn wrong_arguments_are_refused_before_execution() {
    let c = client();
    let exe = c
        .compile(
            &binary_program("add", "tensor<2x2xf32>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    let good = c.buffer_from_slice(&[1.0f32; 4], &[2, 2], 0).unwrap();
    let wrong_shape = c.buffer_from_slice(&[1.0f32; 6], &[3, 2], 0).unwrap();
    let wrong_dtype = c.buffer_from_slice(&[1i32; 4], &[2, 2], 0).unwrap();
    let wrong_device = c.buffer_from_slice(&[1.0f32; 4], &[2, 2], 1).unwrap();

    let err = exe.execute_one(&[&good]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ArgumentCount {
                device: 0,
                expected: 2,
                got: 1
            }
        ),
        "{err}"
    );
    let err = exe.execute_one(&[&good, &wrong_shape]).unwrap_err();
    assert!(
        matches!(&err, Error::ArgumentMismatch { index: 1, got_shape, .. } if got_shape == &[3, 2]),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "device 0, argument 1: program expects f32[2, 2], got f32[3, 2]"
    );
    let err = exe.execute_one(&[&wrong_dtype, &good]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ArgumentMismatch {
                index: 0,
                got_dtype: DType::I32,
                ..
            }
        ),
        "{err}"
    );
    let err = exe.execute_one(&[&good, &wrong_device]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ArgumentDevice {
                index: 1,
                expected_device: 0,
                buffer_device: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = exe
        .execute(&[&[&good, &good], &[&good, &good]])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::DeviceCount {
                expected: 1,
                got: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn host_data_is_checked_against_shape_and_dtype() {
    let c = client();
    let err = c.buffer_from_slice(&[1.0f32; 5], &[2, 3], 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ByteLength {
                expected: 24,
                got: 20,
                ..
            }
        ),
        "{err}"
    );
    let err = c.buffer_from_slice(&[1.0f32; 6], &[2, 3], 9).unwrap_err();
    assert!(
        matches!(err, Error::DeviceIndex { index: 9, count: 4 }),
        "{err}"
    );
    let buffer = c.buffer_from_slice(&[1.0f32; 6], &[2, 3], 0).unwrap();
    let err = buffer.to_vec::<f64>().unwrap_err();
    assert!(
        matches!(
            err,
            Error::DTypeMismatch {
                expected: DType::F64,
                got: DType::F32
            }
        ),
        "{err}"
    );
}

#[test]
fn donated_arguments_are_consumed_and_borrowed_ones_survive() {
    let c = client();
    let program = "func.func public @main(%a: tensor<4xf32> {tf.aliasing_output = 0 : i32}) -> tensor<4xf32> {
  %0 = stablehlo.add %a, %a : tensor<4xf32>
  return %0 : tensor<4xf32>
}";
    let exe = c
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let stats = exe
        .memory_stats()
        .unwrap()
        .expect("the CPU plugin reports memory stats");
    assert_eq!(
        stats.alias, 16,
        "the output should reuse the 16-byte argument"
    );

    let x = c
        .buffer_from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4], 0)
        .unwrap();
    let out = exe.execute_donating(vec![vec![Arg::Donated(x)]]).unwrap();
    assert_eq!(out[0][0].to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
    // Feed the output back in, as a training loop does with its state.
    let [state] = <[_; 1]>::try_from(out.into_iter().next().unwrap()).unwrap();
    let out = exe.execute_donating(vec![vec![state.into()]]).unwrap();
    assert_eq!(
        out[0][0].to_vec::<f32>().unwrap(),
        vec![4.0, 8.0, 12.0, 16.0]
    );

    let kept = c
        .buffer_from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[4], 0)
        .unwrap();
    let out = exe.execute_one(&[&kept]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0, 8.0]);
    assert_eq!(
        kept.to_vec::<f32>().unwrap(),
        vec![1.0, 2.0, 3.0, 4.0],
        "a borrowed argument is never donated"
    );
}

#[test]
fn threads_share_one_client_and_executable() {
    let c = client();
    let exe = c
        .compile(
            &binary_program("add", "tensor<64xf32>"),
            &CompileOptions::single_device(),
        )
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let exe = &exe;
            s.spawn(move || {
                for i in 0..50 {
                    let v = (t * 100 + i) as f32;
                    let a = c.buffer_from_slice(&[v; 64], &[64], 0).unwrap();
                    let out = exe.execute_one(&[&a, &a]).unwrap();
                    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![2.0 * v; 64]);
                }
            });
        }
    });
}

/// Every dtype goes through a compiled program too: the parameter types the
/// runtime reads from the optimized HLO must match the buffers' types, and
/// the results must equal Rust's own arithmetic (exact for these values).
#[test]
fn every_dtype_passes_through_a_program() {
    let c = client();
    macro_rules! check {
        ($t:ty, $op:literal, $a:expr, $b:expr, $f:expr) => {{
            let (a, b): ([$t; 3], [$t; 3]) = ($a, $b);
            let ty = format!(
                "tensor<3x{}>",
                <$t as axle_runtime::Element>::DTYPE.mlir_name()
            );
            let exe = c
                .compile(&binary_program($op, &ty), &CompileOptions::single_device())
                .unwrap();
            let out = exe
                .execute_one(&[
                    &c.buffer_from_slice(&a, &[3], 0).unwrap(),
                    &c.buffer_from_slice(&b, &[3], 0).unwrap(),
                ])
                .unwrap();
            let f: fn($t, $t) -> $t = $f;
            let expected: Vec<$t> = a.iter().zip(&b).map(|(x, y)| f(*x, *y)).collect();
            assert_eq!(out[0].to_vec::<$t>().unwrap(), expected, "{}", ty);
        }};
    }
    check!(f32, "add", [1.5, -2.0, 1e30], [0.25, 2.0, 1e30], |x, y| x
        + y);
    check!(
        f64,
        "add",
        [1.5, -2.0, 1e300],
        [0.25, 2.0, 1e300],
        |x, y| x + y
    );
    let h = |v: [f32; 3]| v.map(bf16::from_f32);
    check!(
        bf16,
        "add",
        h([1.5, -2.0, 128.0]),
        h([0.25, 2.0, 1.0]),
        |x, y| x + y
    );
    let h = |v: [f32; 3]| v.map(f16::from_f32);
    check!(
        f16,
        "add",
        h([1.5, -2.0, 1024.0]),
        h([0.25, 2.0, 1.0]),
        |x, y| x + y
    );
    check!(i32, "add", [1, -2, i32::MAX], [5, 2, 1], |x, y| x
        .wrapping_add(y));
    check!(i64, "add", [1, -2, 1 << 40], [5, 2, 1], |x, y| x + y);
    check!(u32, "add", [1, 2, u32::MAX], [5, 2, 1], |x, y| x
        .wrapping_add(y));
    check!(u8, "add", [1, 2, 255], [5, 2, 1], |x, y| x.wrapping_add(y));
    check!(
        bool,
        "or",
        [true, false, false],
        [false, false, true],
        |x, y| x | y
    );
}

/// A client's compile defaults (how a mesh rule's XLA options reach every
/// compile on that hardware) get to XLA: an option it does not know is
/// refused by name, a bad value of a real one too, and the caller's own
/// setting of an option wins over the default.
#[test]
fn compile_defaults_reach_xla_and_yield_to_the_callers_options() {
    let program = binary_program("add", "tensor<2xf32>");
    let unknown = client().clone().with_compile_defaults(
        "a test",
        vec![(
            "xla_no_such_option_in_axle".into(),
            OverrideValue::Bool(true),
        )],
    );
    let err = unknown
        .compile(&program, &CompileOptions::single_device())
        .unwrap_err();
    assert!(
        matches!(&err, Error::Pjrt { message, .. } if message.contains("xla_no_such_option_in_axle")
            && message.contains("suspect option of a test: xla_no_such_option_in_axle=true")),
        "{err}"
    );
    let bad = client().clone().with_compile_defaults(
        "a test",
        vec![(
            "xla_cpu_use_xnnpack".into(),
            OverrideValue::String("maybe".into()),
        )],
    );
    assert_eq!(
        bad.compile_defaults(),
        [(
            "xla_cpu_use_xnnpack".to_string(),
            OverrideValue::String("maybe".into())
        )]
    );
    assert!(
        bad.compile(&program, &CompileOptions::single_device())
            .is_err()
    );
    let own = CompileOptions::single_device()
        .with_override("xla_cpu_use_xnnpack", OverrideValue::Bool(false));
    let exe = bad.compile(&program, &own).unwrap();
    let a = bad
        .buffer_from_array(&ArrayD::from_elem(IxDyn(&[2]), 1.5f32), 0)
        .unwrap();
    let out = exe.execute_one(&[&a, &a]).unwrap();
    assert_eq!(out[0].to_vec::<f32>().unwrap(), vec![3.0, 3.0]);
}
