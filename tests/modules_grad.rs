//! llama-tiny's loss gradient (reverse-mode AD through the whole model, run on the CPU plugin)
//! against central finite differences in f64, on random coordinates and the largest-gradient
//! coordinate of every parameter; and scanned vs unrolled stacks: same loss, same gradients.

mod modules_common;

use axle::backend::{HostTensor, compile};
use axle::compiler::DType;
use axle::modules::trace::GRAD_PREFIX;
use axle::modules::{
    CausalLm, Config, LossSignature, Module, ParamTree, init_params, loss_and_grad_function,
    loss_function, registered_model,
};
use modules_common::{assert_close, client};
use ndarray::{ArrayD, Axis, IxDyn};

const BATCH: usize = 2;
const SEQ: usize = 16;

/// Token ids and labels: a fixed pseudo-random pattern over the vocabulary, with two labels
/// masked out (-1).
fn batch(vocab: usize) -> (ArrayD<i32>, ArrayD<i32>) {
    let ids: Vec<i32> = (0..BATCH * SEQ)
        .map(|i| ((i * 7919 + 13) % vocab) as i32)
        .collect();
    let mut labels: Vec<i32> = (0..BATCH * SEQ)
        .map(|i| ((i * 104729 + 5) % vocab) as i32)
        .collect();
    labels[3] = -1;
    labels[SEQ + 9] = -1;
    let shape = IxDyn(&[BATCH, SEQ]);
    (
        ArrayD::from_shape_vec(shape.clone(), ids).unwrap(),
        ArrayD::from_shape_vec(shape, labels).unwrap(),
    )
}

fn args<T: Clone>(params: &ParamTree<ArrayD<T>>, vocab: usize) -> Vec<HostTensor>
where
    HostTensor: From<ArrayD<T>>,
{
    let (ids, labels) = batch(vocab);
    let mut args: Vec<HostTensor> = params.values().map(|v| v.clone().into()).collect();
    args.push(ids.into());
    args.push(labels.into());
    args
}

fn scalar(h: &HostTensor) -> f64 {
    match h {
        HostTensor::F64(a) => a.iter().next().copied().unwrap(),
        HostTensor::F32(a) => a.iter().next().copied().unwrap() as f64,
        other => panic!("not a float scalar: {other:?}"),
    }
}

fn sig(dtype: DType) -> LossSignature {
    LossSignature {
        batch_size: BATCH,
        seq_len: SEQ,
        dtype,
        is_training: false,
    }
}

#[test]
fn llama_tiny_gradient_matches_central_differences_in_f64() {
    let model = CausalLm::new(&registered_model("llama-tiny").unwrap().config).unwrap();
    let vocab = model.decoder.vocab_size;
    let specs = model.param_specs();
    let mut params: ParamTree<ArrayD<f64>> = init_params(&specs, 0)
        .into_iter()
        .map(|(p, v)| (p, v.mapv(f64::from)))
        .collect();
    // Move norm scales off exactly 1 so that a wrong scale gradient cannot hide.
    for (path, value) in params.iter_mut() {
        if path.ends_with("scale") {
            value.mapv_inplace(|v| v * 1.1);
        }
    }
    let client = client();
    let grad_program = compile(
        &client,
        &loss_and_grad_function(&model, &sig(DType::F64)).unwrap(),
    )
    .unwrap();
    let loss_program = compile(&client, &loss_function(&model, &sig(DType::F64)).unwrap()).unwrap();
    let outputs = grad_program.run(&args(&params, vocab)).unwrap();
    let names = grad_program.result_names().to_vec();
    let loss = scalar(&outputs[0]);
    assert!(
        (loss - (vocab as f64).ln()).abs() < 0.5,
        "initial loss {loss} near ln(vocab)"
    );

    let eps = 1e-5;
    let mut checked = 0;
    for (path, value) in params.clone() {
        let index = names
            .iter()
            .position(|n| *n == format!("{GRAD_PREFIX}{path}"))
            .unwrap();
        let grad: ArrayD<f64> = outputs[index].clone().try_into().unwrap();
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
                let v = shifted.get_mut(&path).unwrap();
                v.as_slice_mut().unwrap()[flat] += delta;
                scalar(&loss_program.run(&args(&shifted, vocab)).unwrap()[0])
            };
            let fd = (loss_at(eps) - loss_at(-eps)) / (2.0 * eps);
            let ad = grad.as_slice().unwrap()[flat];
            // Central differences in f64: truncation ~eps^2 * f''' and rounding ~1e-16 * loss / eps
            // are both below 1e-9 here; AD and FD agree far inside 1e-7 + 1e-5 * |g|.
            assert!(
                (fd - ad).abs() <= 1e-7 + 1e-5 * ad.abs(),
                "{path}[{flat}]: AD {ad} vs FD {fd}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * specs.len());
}

/// The unrolled parameters `.../layers/{i}/p`, stacked along a new axis 0 as `.../layer/p`.
fn stack_layers<T: Clone>(
    tree: &ParamTree<ArrayD<T>>,
    prefix: &str,
    layers: usize,
) -> ParamTree<ArrayD<T>> {
    let mut out = ParamTree::new();
    let first = format!("{prefix}layers/0/");
    for (path, value) in tree {
        if let Some(rel) = path.strip_prefix(&first) {
            let views: Vec<_> = (0..layers)
                .map(|i| tree[&format!("{prefix}layers/{i}/{rel}")].view())
                .collect();
            out.insert(
                format!("{prefix}layer/{rel}"),
                ndarray::stack(Axis(0), &views).unwrap(),
            );
        } else if !path.starts_with(&format!("{prefix}layers/")) {
            out.insert(path.clone(), value.clone());
        }
    }
    out
}

#[test]
fn scanned_and_unrolled_stacks_give_the_same_loss_and_gradients() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    let unrolled = CausalLm::new(&cfg).unwrap();
    cfg.set("decoder.transformer.scan", "true").unwrap();
    let scanned = CausalLm::new(&cfg).unwrap();
    let vocab = unrolled.decoder.vocab_size;
    let params = init_params(&unrolled.param_specs(), 3);
    let prefix = "decoder/transformer/";
    let stacked = stack_layers(&params, prefix, 4);
    assert_eq!(
        stacked.keys().collect::<Vec<_>>(),
        scanned.param_specs().keys().collect::<Vec<_>>()
    );

    let client = client();
    let run = |model: &CausalLm, p: &ParamTree<ArrayD<f32>>| {
        let program = compile(
            &client,
            &loss_and_grad_function(model, &sig(DType::F32)).unwrap(),
        )
        .unwrap();
        let out = program.run(&args(p, vocab)).unwrap();
        let grads: ParamTree<ArrayD<f32>> = program.result_names()[1..]
            .iter()
            .zip(&out[1..])
            .map(|(n, g)| {
                (
                    n.strip_prefix(GRAD_PREFIX).unwrap().to_string(),
                    g.clone().try_into().unwrap(),
                )
            })
            .collect();
        (scalar(&out[0]), grads)
    };
    let (loss_u, grads_u) = run(&unrolled, &params);
    let (loss_s, grads_s) = run(&scanned, &stacked);
    // f32, the same arithmetic in a loop body instead of inline: XLA may fuse and order sums
    // differently, so allow f32 rounding over a few thousand terms.
    assert!(
        (loss_u - loss_s).abs() <= 1e-5 * loss_u.abs(),
        "loss {loss_u} vs {loss_s}"
    );
    let grads_u = stack_layers(&grads_u, prefix, 4);
    for (path, g) in &grads_s {
        let want = grads_u[path].mapv(f64::from);
        assert_close(path, &g.mapv(f64::from), &want, 1e-6, 1e-3);
    }
}

/// Summaries come out by path: one scalar per unrolled layer, one `[layers]` vector from the
/// scanned loop, with the same values, and the loss terms under `loss/`.
#[test]
fn summaries_are_collected_by_path_in_both_stack_layouts() {
    let mut cfg = registered_model("llama-tiny").unwrap().config;
    cfg.set("decoder.transformer.num_layers", "2").unwrap();
    let unrolled = CausalLm::new(&cfg).unwrap();
    cfg.set("decoder.transformer.scan", "true").unwrap();
    let scanned = CausalLm::new(&cfg).unwrap();
    let vocab = unrolled.decoder.vocab_size;
    let params = init_params(&unrolled.param_specs(), 5);
    let prefix = "decoder/transformer/";
    let client = client();
    let run = |model: &CausalLm, p: &ParamTree<ArrayD<f32>>| {
        let program = compile(&client, &loss_function(model, &sig(DType::F32)).unwrap()).unwrap();
        let out = program.run(&args(p, vocab)).unwrap();
        let named: ParamTree<ArrayD<f32>> = program
            .result_names()
            .iter()
            .zip(out)
            .map(|(n, v)| (n.clone(), v.try_into().unwrap()))
            .collect();
        named
    };
    let u = run(&unrolled, &params);
    let s = run(&scanned, &stack_layers(&params, prefix, 2));
    let names: Vec<&str> = u.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "decoder/transformer/layers/0/output_rms",
            "decoder/transformer/layers/1/output_rms",
            "loss",
            "loss/cross_entropy",
            "loss/num_targets",
            "loss/z_loss",
            "loss_weight",
        ]
    );
    let stacked = &s["decoder/transformer/layer/output_rms"];
    assert_eq!(stacked.shape(), [2]);
    for i in 0..2 {
        let layer = u[&format!("{prefix}layers/{i}/output_rms")]
            .iter()
            .next()
            .copied()
            .unwrap();
        assert!(
            (stacked[i] - layer).abs() <= 1e-5 * layer,
            "layer {i}: {} vs {layer}",
            stacked[i]
        );
    }
    // z-loss is off in llama-tiny: the loss is the cross-entropy over the 30 live targets.
    assert_eq!(u["loss"], u["loss/cross_entropy"]);
    assert_eq!(u["loss/num_targets"].iter().next(), Some(&30.0));
}
