//! The classifier, ViT and regressor families run on the CPU plugin: loss gradients against
//! f64 central finite differences, the classifiers' loss and accuracy at initialization, and
//! the regressor's mean squared error against an ndarray f64 forward.

mod modules_common;

use axle::backend::{HostTensor, Program, compile};
use axle::compiler::DType;
use axle::modules::trace::GRAD_PREFIX;
use axle::modules::{
    BatchShape, Config, InputSpec, LossSignature, Model, ParamTree, Vit, init_params,
    loss_and_grad_function, loss_function, registered_config,
};
use modules_common::{Tree, client, normal, params_f64, run_layer};
use ndarray::{Array2, ArrayD, Ix1, Ix2, IxDyn};

/// Deterministic inputs for `specs`: integers spread over their valid range, floats standard
/// normal (f32, as the data pipeline delivers them).
fn inputs(specs: &[InputSpec], seed: u64) -> Vec<HostTensor> {
    specs
        .iter()
        .map(|s| match s.dtype {
            DType::I32 => {
                let range = s.valid.clone().expect("integer inputs have a valid range");
                let n: usize = s.shape.iter().product();
                let span = (range.end - range.start) as usize;
                let values = (0..n)
                    .map(|i| (range.start + ((i * 7919 + 13 + seed as usize) % span) as i64) as i32)
                    .collect();
                ArrayD::from_shape_vec(IxDyn(&s.shape), values)
                    .unwrap()
                    .into()
            }
            DType::F32 => normal(&s.shape, &s.name, seed).mapv(|v| v as f32).into(),
            other => panic!("no test data for {other:?}"),
        })
        .collect()
}

/// Parameters (path order) followed by the inputs: the argument order of traced functions.
fn args<T: Clone>(params: &ParamTree<ArrayD<T>>, inputs: &[HostTensor]) -> Vec<HostTensor>
where
    HostTensor: From<ArrayD<T>>,
{
    let mut args: Vec<HostTensor> = params.values().map(|v| v.clone().into()).collect();
    args.extend(inputs.iter().cloned());
    args
}

fn scalar(h: &HostTensor) -> f64 {
    match h {
        HostTensor::F64(a) => a.iter().next().copied().unwrap(),
        HostTensor::F32(a) => a.iter().next().copied().unwrap() as f64,
        other => panic!("not a float scalar: {other:?}"),
    }
}

/// The results of `program` on `args`, by result name.
fn run_named(program: &Program, args: &[HostTensor]) -> ParamTree<HostTensor> {
    program
        .result_names()
        .iter()
        .cloned()
        .zip(program.run(args).unwrap())
        .collect()
}

fn model(name: &str) -> (Box<dyn Model>, BatchShape) {
    let registered = registered_config(name).unwrap();
    let shape = BatchShape {
        batch_size: registered.batch_size,
        seq_len: registered.seq_len,
    };
    (registered.config.build().unwrap(), shape)
}

fn sig(shape: BatchShape, dtype: DType) -> LossSignature {
    LossSignature {
        batch_size: shape.batch_size,
        seq_len: shape.seq_len,
        dtype,
        is_training: false,
    }
}

/// AD gradient of the model's f64 loss against central differences at the largest-gradient
/// and one pseudo-random coordinate of every parameter. Parameters come from the initializers
/// with zero and one initializations perturbed (so zero heads and unit norm scales carry
/// gradient and are checked).
fn check_gradient(model: &dyn Model, shape: BatchShape) {
    let specs = model.param_specs();
    let params = params_f64(&specs);
    let data = inputs(&model.input_specs(&shape).unwrap(), 0);
    let client = client();
    let grad_program = compile(
        &client,
        &loss_and_grad_function(model, &sig(shape, DType::F64)).unwrap(),
    )
    .unwrap();
    let loss_program = compile(
        &client,
        &loss_function(model, &sig(shape, DType::F64)).unwrap(),
    )
    .unwrap();
    let outputs = run_named(&grad_program, &args(&params, &data));
    let eps = 1e-5;
    for (path, value) in &params {
        let grad: ArrayD<f64> = outputs[&format!("{GRAD_PREFIX}{path}")]
            .clone()
            .try_into()
            .unwrap();
        let largest = grad
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        let random = (path.len() * 2654435761 + 97) % value.len();
        for flat in [largest, random] {
            let loss_at = |delta: f64| {
                let mut shifted = params.clone();
                shifted.get_mut(path).unwrap().as_slice_mut().unwrap()[flat] += delta;
                scalar(&loss_program.run(&args(&shifted, &data)).unwrap()[0])
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
            let ad = grad.as_slice().unwrap()[flat];
            // f64 throughout: the central difference's truncation error is ~eps^2 * |f'''|
            // (~1e-10 for these smooth losses of order 1) and its rounding error ~1e-16 * loss /
            // eps ~ 1e-11, so a correct gradient agrees far inside 1e-7 + 1e-5 * |g|, while a
            // wrong term (a missing path, a transposed patch, a wrong pooling scale) is off by
            // a sizeable fraction of the gradient.
            assert!(
                (fd - ad).abs() <= 1e-7 + 1e-5 * ad.abs(),
                "{path}[{flat}]: AD {ad} vs FD {fd}"
            );
        }
    }
}

#[test]
fn bert_tiny_gradient_matches_central_differences_in_f64() {
    let (model, _) = model("bert-tiny");
    let shape = BatchShape {
        batch_size: 3,
        seq_len: 8,
    };
    check_gradient(&*model, shape);
}

#[test]
fn vit_tiny_gradient_matches_central_differences_in_f64() {
    let (model, _) = model("vit-tiny");
    let shape = BatchShape {
        batch_size: 3,
        seq_len: 16,
    };
    check_gradient(&*model, shape);
}

#[test]
fn first_token_pooling_gradient_matches_central_differences_in_f64() {
    let mut cfg = registered_config("bert-tiny").unwrap().config;
    cfg.set("pooling", "first_token").unwrap();
    let model = cfg.build().unwrap();
    let shape = BatchShape {
        batch_size: 2,
        seq_len: 8,
    };
    check_gradient(&*model, shape);
}

#[test]
fn mlp_regressor_gradient_matches_central_differences_in_f64() {
    let (model, _) = model("mlp-regressor");
    let shape = BatchShape {
        batch_size: 8,
        seq_len: 1,
    };
    check_gradient(&*model, shape);
}

/// The classifiers at their real initialization (f32) on a registered-size batch: the loss is
/// near `ln(num_classes)`, the weight is the batch size, accuracy is a fraction of the batch.
#[test]
fn classifiers_start_near_chance() {
    let client = client();
    for name in ["bert-tiny", "vit-tiny"] {
        let (model, shape) = model(name);
        let specs = model.input_specs(&shape).unwrap();
        let params = init_params(&model.param_specs(), 0);
        let data = inputs(&specs, 1);
        let program = compile(
            &client,
            &loss_function(&*model, &sig(shape, DType::F32)).unwrap(),
        )
        .unwrap();
        let out = run_named(&program, &args(&params, &data));
        let names: Vec<&str> = out
            .keys()
            .map(String::as_str)
            .filter(|n| !n.ends_with("output_rms"))
            .collect();
        assert_eq!(
            names,
            [
                "accuracy",
                "loss",
                "loss/cross_entropy",
                "loss/num_targets",
                "loss_weight"
            ],
            "{name}"
        );
        let loss = scalar(&out["loss"]);
        // ln 4 = 1.386. bert-tiny's head is N(0, 0.02) over a LayerNorm-ed, mean-pooled vector
        // of norm at most sqrt(64) = 8: logits have std at most 0.16, which raises the expected
        // cross-entropy above ln 4 by about var / 2 < 0.013. vit-tiny's head starts at zero:
        // all logits are equal and the loss is ln 4 up to f32 rounding.
        let tolerance = if name == "bert-tiny" { 0.05 } else { 1e-6 };
        assert!(
            (loss - 4f64.ln()).abs() < tolerance,
            "{name}: initial loss {loss} vs ln 4"
        );
        assert_eq!(scalar(&out["loss_weight"]), shape.batch_size as f64);
        assert_eq!(scalar(&out["loss/num_targets"]), shape.batch_size as f64);
        let accuracy = scalar(&out["accuracy"]);
        let hits = accuracy * shape.batch_size as f64;
        assert!(
            (0.0..=1.0).contains(&accuracy) && (hits - hits.round()).abs() < 1e-4,
            "{name}: accuracy {accuracy} is a fraction of {} examples",
            shape.batch_size
        );
        if name == "vit-tiny" {
            // Equal logits: argmax picks class 0 (the first maximum), so the accuracy is the
            // fraction of labels that are 0.
            let labels: ArrayD<i32> = data[1].clone().try_into().unwrap();
            let zeros = labels.iter().filter(|&&l| l == 0).count();
            assert!(zeros > 0 && zeros < labels.len());
            assert!((accuracy - zeros as f64 / labels.len() as f64).abs() < 1e-7);
        }
    }
}

/// An elementwise nonlinearity on the host.
type Activation = fn(f64) -> f64;

/// The MLP forward in ndarray f64: hidden layers with `act`, then the output layer.
fn mlp_ref(p: &Tree, features: &Array2<f64>, layers: usize, act: Activation) -> Vec<f64> {
    let dense = |x: &Array2<f64>, prefix: &str| {
        let w = p[&format!("{prefix}/weight")]
            .clone()
            .into_dimensionality::<Ix2>()
            .unwrap();
        let b = p[&format!("{prefix}/bias")]
            .clone()
            .into_dimensionality::<Ix1>()
            .unwrap();
        x.dot(&w) + &b
    };
    let mut x = features.clone();
    for i in 0..layers {
        x = dense(&x, &format!("hidden/{i}")).mapv(act);
    }
    dense(&x, "output").iter().copied().collect()
}

fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

fn gelu_tanh(x: f64) -> f64 {
    let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3));
    0.5 * x * (1.0 + inner.tanh())
}

#[test]
fn mlp_regressor_mse_matches_an_ndarray_forward() {
    let client = client();
    let acts: [(&str, Activation); 2] = [("silu", silu), ("gelu_tanh", gelu_tanh)];
    for (act_name, act) in acts {
        let mut cfg = registered_config("mlp-regressor").unwrap().config;
        cfg.set("activation", act_name).unwrap();
        let model = cfg.build().unwrap();
        let shape = BatchShape {
            batch_size: 16,
            seq_len: 1,
        };
        let params = params_f64(&model.param_specs());
        let data = inputs(&model.input_specs(&shape).unwrap(), 2);
        let program = compile(
            &client,
            &loss_function(&*model, &sig(shape, DType::F64)).unwrap(),
        )
        .unwrap();
        let out = run_named(&program, &args(&params, &data));
        let features: ArrayD<f32> = data[0].clone().try_into().unwrap();
        let features = features
            .mapv(f64::from)
            .into_dimensionality::<Ix2>()
            .unwrap();
        let targets: ArrayD<f32> = data[1].clone().try_into().unwrap();
        let predictions = mlp_ref(&params, &features, 2, act);
        let want = predictions
            .iter()
            .zip(targets.iter())
            .map(|(p, &t)| (p - f64::from(t)).powi(2))
            .sum::<f64>()
            / 16.0;
        // Both sides in f64 on the same parameters and inputs: only the order of rounding
        // differs (1e-16 per operation over a few hundred operations per example).
        for result in ["loss", "mse"] {
            let got = scalar(&out[result]);
            assert!(
                (got - want).abs() <= 1e-12 * want,
                "{act_name} {result}: {got} vs reference {want}"
            );
        }
        assert_eq!(scalar(&out["loss_weight"]), 16.0);
    }
}

/// Patches are cut as in the ViT reference code (einops `b (h p1) (w p2) c -> b (h w) (p1 p2
/// c)`): checked element by element against index arithmetic on a 3-channel 8x8 image in
/// 4x4 patches, whose values all differ.
#[test]
fn vit_patches_follow_the_reference_layout() {
    let mut cfg = registered_config("vit-tiny").unwrap().config;
    cfg.set("image_size", "8").unwrap();
    cfg.set("channels", "3").unwrap();
    let axle::modules::ModelConfig::Vit(cfg) = cfg else {
        unreachable!("vit-tiny is a ViT")
    };
    let vit = Vit::new(&cfg).unwrap();
    let (b, s, p, c) = (2, 8, 4, 3);
    let image = ArrayD::from_shape_fn(IxDyn(&[b, s, s, c]), |i| {
        (((i[0] * s + i[1]) * s + i[2]) * c + i[3]) as f64
    });
    let got = run_layer(
        &ParamTree::new(),
        &Tree::new(),
        &[("image", image.clone().into())],
        false,
        |_, xs| vit.patchify(&xs[0]),
    );
    assert_eq!(got.shape(), [b, 4, p * p * c]);
    let grid = s / p;
    for ((n, patch, k), v) in got.indexed_iter().map(|(i, v)| ((i[0], i[1], i[2]), *v)) {
        let (row, col) = (patch / grid * p + k / (p * c), patch % grid * p + k / c % p);
        assert_eq!(v, image[[n, row, col, k % c]], "patch {patch} element {k}");
    }
}
