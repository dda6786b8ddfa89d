//! Using axle as a compilation backend from another Rust program: trace a
//! function, lower it to StableHLO, compile and run it on a chosen PJRT
//! plugin. Run with `cargo run --example embed [plugin]` (plugin: `cpu`, a
//! platform name or a path to a plugin `.so`; default `cpu`).

use axle::backend::{BackendError, compile};
use axle::compiler::{DType, FunctionBuilder};
use axle::runtime::{Client, CreateOption, Plugin};
use ndarray::{ArrayD, IxDyn};

fn main() -> Result<(), BackendError> {
    let plugin = std::env::args().nth(1).unwrap_or_else(|| "cpu".into());
    let b = FunctionBuilder::new("affine");
    let (x, w) = (
        b.param("x", DType::F32, &[2, 3]),
        b.param("w", DType::F32, &[3, 2]),
    );
    let f = b.build(&[("y", &x.matmul(&w).tanh())])?;
    println!("{}", f.to_stablehlo());
    let client = Client::new(
        Plugin::load(&plugin)?,
        &[CreateOption::int("cpu_device_count", 1)],
    )?;
    let x0 = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
    let y: ArrayD<f32> = compile(&client, &f)?
        .run(&[x0.into(), ArrayD::<f32>::ones(IxDyn(&[3, 2])).into()])?
        .remove(0)
        .try_into()?;
    println!("y = {y}");
    Ok(())
}
