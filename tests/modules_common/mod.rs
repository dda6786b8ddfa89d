//! Helpers shared by the modules tests: random host arrays, running traced layers and model
//! functions on the CPU plugin, and comparing arrays with a stated tolerance.

#![allow(dead_code)]

use axle::backend::{HostTensor, compile};
use axle::compiler::{DType, Function, FunctionBuilder, Tensor};
use axle::modules::{Ctx, Initializer, ParamSpec, ParamTree, declare_params, init_param};
use axle::partition::LogicalSpec;
use axle::runtime::Client;
use ndarray::ArrayD;

/// Parameter values by path.
pub type Tree = ParamTree<ArrayD<f64>>;

/// A one-device client of the default CPU plugin.
pub fn client() -> Client {
    Client::cpu(1).expect("the CPU PJRT plugin loads (scripts/test.sh installs it)")
}

/// Standard normal f64 values of `shape`, deterministic in `seed` and `name`.
pub fn normal(shape: &[usize], name: &str, seed: u64) -> ArrayD<f64> {
    let spec = ParamSpec {
        shape: shape.to_vec(),
        dtype: DType::F32,
        init: Initializer::Normal { std: 1.0 },
        fan_axes: Default::default(),
        roles: LogicalSpec::replicated(shape.len()),
    };
    init_param(&spec, name, seed).mapv(f64::from)
}

/// Parameters of `specs` drawn by their initializers (seed 0), as f64. Norm scales are
/// perturbed away from ones and biases from zeros so that they take part in the checks.
pub fn params_f64(specs: &ParamTree<ParamSpec>) -> Tree {
    specs
        .iter()
        .map(|(path, spec)| {
            let value = init_param(spec, path, 0).mapv(f64::from);
            let value = match spec.init {
                Initializer::Ones | Initializer::Zeros => {
                    value + normal(&spec.shape, path, 1) * 0.1
                }
                _ => value,
            };
            (path.clone(), value)
        })
        .collect()
}

/// Traces `forward` over f64 parameters (by path, relative to the module) and extra named
/// inputs, runs it on the CPU plugin and returns its single f64 result.
pub fn run_layer(
    specs: &ParamTree<ParamSpec>,
    params: &Tree,
    inputs: &[(&str, HostTensor)],
    is_training: bool,
    forward: impl FnOnce(&mut Ctx, &[Tensor]) -> Tensor,
) -> ArrayD<f64> {
    let builder = FunctionBuilder::new("layer");
    let traced = declare_params(&builder, specs, DType::F64);
    let xs: Vec<Tensor> = inputs
        .iter()
        .map(|(name, value)| builder.param(name, value.dtype(), value.dims()))
        .collect();
    let key = builder.rng_key(42);
    let mut ctx = Ctx::new(traced, is_training, Some(key));
    let y = forward(&mut ctx, &xs);
    let f = builder.build(&[("y", &y)]).expect("layer traces");
    let mut args: Vec<HostTensor> = params.values().map(|v| v.clone().into()).collect();
    args.extend(inputs.iter().map(|(_, v)| v.clone()));
    run(&f, &args).remove(0).try_into().expect("an f64 result")
}

/// Compiles `f` on the CPU plugin and runs it once.
pub fn run(f: &Function, args: &[HostTensor]) -> Vec<HostTensor> {
    compile(&client(), f)
        .expect("compiles")
        .run(args)
        .expect("runs")
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, naming the worst element.
pub fn assert_close(what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, atol: f64, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes");
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        let excess = (g - w).abs() - (atol + rtol * w.abs());
        if excess > worst {
            (worst, at) = (excess, i);
        }
    }
    assert!(
        worst <= 0.0,
        "{what}: element {at}: got {}, want {} (atol {atol}, rtol {rtol})",
        got.iter().nth(at).unwrap(),
        want.iter().nth(at).unwrap()
    );
}
