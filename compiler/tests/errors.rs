//! Bad input is caught while tracing with a message naming the op, the
//! operand shapes and the caller's source location (this file).

use axle_compiler::{DType, FunctionBuilder, TraceError, grad};

fn err(b: &FunctionBuilder) -> TraceError {
    b.error().expect("an error was recorded")
}

#[test]
fn add_with_mismatched_shapes() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[4, 8]);
    let y = b.param("y", DType::F32, &[3]);
    let line = line!() + 1;
    let z = &x + &y;
    let e = err(&b);
    let msg = e.to_string();
    assert_eq!(e.op, "add");
    assert!(msg.contains(&format!("tests/errors.rs:{line}:")), "{msg}");
    assert!(msg.contains("f32[4,8]") && msg.contains("f32[3]"), "{msg}");
    assert!(msg.contains("do not broadcast"), "{msg}");
    // Later ops are no-ops and `build` returns the first error.
    let w = z.exp().sum_all();
    assert_eq!(b.build(&[("w", &w)]).unwrap_err(), e);
}

#[test]
fn dot_with_mismatched_contracting_dims() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[4, 8]);
    let w = b.param("w", DType::F32, &[7, 3]);
    let line = line!() + 1;
    let _ = x.matmul(&w);
    let msg = err(&b).to_string();
    assert_eq!(
        msg,
        format!(
            "dot_general at {}:{line}:15: contracting dims mismatch: lhs f32[4,8] dim 1 (8) vs rhs f32[7,3] dim 0 (7)",
            file!()
        )
    );
}

#[test]
fn axis_out_of_range() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[4, 8]);
    let line = line!() + 1;
    let _ = x.sum(&[2], false);
    let msg = err(&b).to_string();
    assert!(msg.starts_with("reduce_sum at "), "{msg}");
    assert!(msg.contains(&format!("errors.rs:{line}:")), "{msg}");
    assert!(
        msg.contains("axis 2 out of range for rank 2") && msg.contains("f32[4,8]"),
        "{msg}"
    );

    let b = FunctionBuilder::new("g");
    let x = b.param("x", DType::F32, &[4, 8]);
    let _ = x.softmax(-3);
    let msg = err(&b).to_string();
    assert!(msg.contains("axis -3 out of range for rank 2"), "{msg}");
    assert!(msg.contains("errors.rs:"), "{msg}");
}

#[test]
fn reshape_changing_element_count() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[4, 8]);
    let line = line!() + 1;
    let _ = x.reshape(&[5, 6]);
    let msg = err(&b).to_string();
    assert_eq!(
        msg,
        format!(
            "reshape at {}:{line}:15: cannot reshape f32[4,8] (32 elements) to f32[5,6] (30 elements)",
            file!()
        )
    );
}

#[test]
fn grad_of_non_scalar_without_cotangent() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[4, 3]);
    let y = x.tanh();
    let line = line!() + 1;
    let _ = grad(&y, &[&x]);
    let msg = err(&b).to_string();
    assert_eq!(
        msg,
        format!(
            "grad at {}:{line}:13: loss must be a scalar, got f32[4,3]; use vjp with a cotangent for non-scalar outputs",
            file!()
        )
    );
}

#[test]
fn grad_of_integer_input_and_dtype_mismatch() {
    let b = FunctionBuilder::new("f");
    let ids = b.param("ids", DType::I32, &[4]);
    let table = b.param("table", DType::F32, &[10, 3]);
    let loss = table.take(&ids, 0).sum_all();
    let _ = grad(&loss, &[&ids]);
    let msg = err(&b).to_string();
    assert!(msg.contains("input i32[4] is not differentiable"), "{msg}");

    let b = FunctionBuilder::new("g");
    let x = b.param("x", DType::F32, &[4]);
    let y = b.param("y", DType::F64, &[4]);
    let _ = &x * &y;
    let msg = err(&b).to_string();
    assert!(
        msg.contains("mul at ") && msg.contains("dtype mismatch: lhs f32[4] vs rhs f64[4]"),
        "{msg}"
    );
}

#[test]
fn scan_body_errors_reach_the_outer_function() {
    let b = FunctionBuilder::new("f");
    let c = b.param("c", DType::F32, &[3]);
    let xs = b.param("xs", DType::F32, &[5, 4]);
    let _ = b.scan(5, &[&c], &[&xs], |c, x| (vec![&c[0] + &x[0]], vec![]));
    let msg = err(&b).to_string();
    assert!(
        msg.contains("add at ") && msg.contains("f32[3] vs f32[4]"),
        "{msg}"
    );
    assert!(msg.contains("errors.rs:"), "{msg}");
}

#[test]
fn scan_body_returning_the_wrong_number_of_carries() {
    let b = FunctionBuilder::new("f");
    let c = b.param("c", DType::F32, &[3]);
    let d = b.param("d", DType::F32, &[3]);
    let xs = b.param("xs", DType::F32, &[5, 3]);
    let line = line!() + 1;
    let _ = b.scan(5, &[&c, &d], &[&xs], |c, x| (vec![&c[0] + &x[0]], vec![]));
    let msg = err(&b).to_string();
    assert_eq!(
        msg,
        format!(
            "scan at {}:{line}:15: body must return 2 carries, got 1",
            file!()
        )
    );
}

#[test]
fn tensors_of_two_functions_do_not_mix() {
    let f = FunctionBuilder::new("f");
    let g = FunctionBuilder::new("g");
    let x = f.param("x", DType::F32, &[2]);
    let y = g.param("y", DType::F32, &[2]);
    let _ = &x + &y;
    let msg = f.error().or(g.error()).expect("an error").to_string();
    assert!(
        msg.starts_with("add at ") && msg.contains("errors.rs:"),
        "{msg}"
    );
    assert!(
        msg.contains("belongs to function `f`, not to `g`")
            || msg.contains("belongs to function `g`, not to `f`"),
        "{msg}"
    );
}

#[test]
fn gradient_through_a_while_loop_is_refused() {
    let b = FunctionBuilder::new("f");
    let x = b.param("x", DType::F32, &[2]);
    let i0 = b.scalar(0.0, DType::I32);
    let limit = b.scalar(3.0, DType::I32);
    let s = b.while_loop(
        &[&i0, &x],
        |s| s[0].less(&limit),
        |s| vec![&s[0] + &s[0].ones_like(), s[1].sin()],
    );
    let line = line!() + 1;
    let _ = grad(&s[1].sum_all(), &[&x]);
    let msg = err(&b).to_string();
    assert_eq!(
        msg,
        format!(
            "grad at {}:{line}:13: while_loop is not differentiable; use scan for loops that need gradients",
            file!()
        )
    );
}

#[test]
fn values_of_a_scan_body_do_not_leak_out() {
    let b = FunctionBuilder::new("f");
    let c = b.param("c", DType::F32, &[3]);
    let xs = b.param("xs", DType::F32, &[5, 3]);
    let mut leaked = None;
    let _ = b.scan(5, &[&c], &[&xs], |c, x| {
        leaked = Some(x[0].clone());
        (vec![&c[0] + &x[0]], vec![])
    });
    let _ = &c * leaked.as_ref().unwrap();
    let msg = err(&b).to_string();
    assert!(
        msg.starts_with("mul at ") && msg.contains("errors.rs:"),
        "{msg}"
    );
    assert!(
        msg.contains("traced inside a scan or while body and cannot be used outside it"),
        "{msg}"
    );
}
