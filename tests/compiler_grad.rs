//! Every differentiable op's VJP against central finite differences in f64
//! (see `check_grad` for the tolerance), composites (softmax cross-entropy,
//! a 2-layer MLP), and a 16-step scan against the unrolled loop.

mod compiler_common;

use axle::compiler::{DType, DotDims, FunctionBuilder, Tensor, einsum, grad};
use compiler_common::{Rng, assert_close, check_grad, f64s, run};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

/// A unary op under test.
type UnaryFn = fn(&Tensor) -> Tensor;

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(4)
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn elementwise_vjps(dims in prop::collection::vec(1usize..4, 0..3), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.array(&dims, -2.0, 2.0);
        let pos = rng.array(&dims, 0.3, 3.0);
        let y = rng.array(&dims, -2.0, 2.0);
        let unary: Vec<(&str, UnaryFn, bool)> = vec![
            ("neg", |t| -t, false), ("abs", |t| t.abs(), false), ("exp", |t| t.exp(), false),
            ("log", |t| t.log(), true), ("log1p", |t| t.log1p(), true), ("tanh", |t| t.tanh(), false),
            ("logistic", |t| t.logistic(), false), ("sqrt", |t| t.sqrt(), true), ("rsqrt", |t| t.rsqrt(), true),
            ("erf", |t| t.erf(), false), ("sin", |t| t.sin(), false), ("cos", |t| t.cos(), false),
            ("square", |t| t.square(), false),
        ];
        for (name, f, positive) in unary {
            check_grad(name, vec![if positive { pos.clone() } else { x.clone() }], |_, p| f(&p[0]));
        }
        check_grad("add", vec![x.clone(), y.clone()], |_, p| &p[0] + &p[1]);
        check_grad("sub", vec![x.clone(), y.clone()], |_, p| &p[0] - &p[1]);
        check_grad("mul", vec![x.clone(), y.clone()], |_, p| &p[0] * &p[1]);
        check_grad("div", vec![x.clone(), pos.clone()], |_, p| &p[0] / &p[1]);
        check_grad("pow", vec![pos.clone(), y.clone()], |_, p| p[0].pow(&p[1]));
        check_grad("max", vec![x.clone(), y.clone()], |_, p| p[0].maximum(&p[1]));
        check_grad("min", vec![x.clone(), y.clone()], |_, p| p[0].minimum(&p[1]));
        check_grad("select", vec![x.clone(), y.clone()], |_, p| p[0].greater(&p[1]).select(&p[0].exp(), &p[1].sin()));
        check_grad("clamp", vec![x.clone(), y.clone(), pos.clone()], |_, p| p[0].clamp(&p[1], &(&p[1] + &p[2])));
        check_grad("convert", vec![x.clone()], |_, p| p[0].convert(DType::F64) * 3.0);
    }

    #[test]
    fn broadcasting_vjps(rows in 1usize..4, cols in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let a = rng.array(&[rows, cols], -2.0, 2.0);
        let row = rng.array(&[cols], -2.0, 2.0);
        let col = rng.array(&[rows, 1], 0.5, 2.0);
        check_grad("add row", vec![a.clone(), row.clone()], |_, p| &p[0] + &p[1]);
        check_grad("mul col", vec![a.clone(), col.clone()], |_, p| &p[0] * &p[1]);
        check_grad("div col", vec![a.clone(), col.clone()], |_, p| &p[0] / &p[1]);
        check_grad("scalar ops", vec![a.clone()], |_, p| (&p[0] * 2.0 - 1.0) / 3.0 + 1.0 - &p[0]);
        check_grad("optimization_barrier", vec![a.clone(), row.clone()], |_, p| {
            let r = axle::compiler::optimization_barrier(&[&p[0], &p[1]]);
            &r[0] * &r[1]
        });
        check_grad("broadcast_in_dim", vec![col.clone()], |_, p| p[0].broadcast_in_dim(&[2, rows, cols], &[1, 2]));
    }

    #[test]
    fn shape_op_vjps(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims: Vec<usize> = (0..3).map(|_| 1 + rng.below(3)).collect();
        let x = rng.array(&dims, -2.0, 2.0);
        let y = rng.array(&dims, -2.0, 2.0);
        let n: usize = dims.iter().product();
        let d = dims.clone();
        check_grad("reshape", vec![x.clone()], move |_, p| p[0].reshape(&[n]));
        check_grad("transpose", vec![x.clone()], |_, p| p[0].transpose(&[2, 0, 1]));
        let (s, l): (Vec<usize>, Vec<usize>) = d.iter().map(|&k| (rng.below(k), k)).unzip();
        check_grad("slice strided", vec![x.clone()], move |_, p| p[0].slice(&s, &l, &[1, 2, 2]));
        let sizes: Vec<usize> = d.iter().map(|&k| 1 + rng.below(k)).collect();
        let starts: Vec<f64> = (0..3).map(|_| rng.below(3) as f64).collect();
        let (sz, st) = (sizes.clone(), starts.clone());
        check_grad("dynamic_slice", vec![x.clone()], move |b, p| {
            let idx: Vec<Tensor> = st.iter().map(|&v| b.scalar(v, DType::I32)).collect();
            let r: Vec<&Tensor> = idx.iter().collect();
            p[0].dynamic_slice(&r, &sz)
        });
        let upd = rng.array(&sizes, -2.0, 2.0);
        check_grad("dynamic_update_slice", vec![x.clone(), upd], move |b, p| {
            let idx: Vec<Tensor> = starts.iter().map(|&v| b.scalar(v, DType::I32)).collect();
            let r: Vec<&Tensor> = idx.iter().collect();
            p[0].dynamic_update_slice(&(&p[1] * &p[1]), &r)
        });
        check_grad("concatenate", vec![x.clone(), y.clone()], |_, p| Tensor::concatenate(&[&p[0], &p[1], &p[0]], 1));
        check_grad("pad", vec![x.clone(), ArrayD::from_elem(IxDyn(&[]), 0.7)], |_, p| p[0].pad(&p[1], &[1, 0, 2], &[0, 2, 1], &[1, 0, 2]));
        check_grad("sum keep", vec![x.clone()], |_, p| p[0].sum(&[0, 2], true));
        check_grad("sum", vec![x.clone()], |_, p| p[0].sum(&[1], false));
        check_grad("mean", vec![x.clone()], |_, p| p[0].mean(&[-1], false));
        check_grad("reduce_max", vec![x.clone()], |_, p| p[0].reduce_max(&[1, 2], false));
        check_grad("reduce_min", vec![x.clone()], |_, p| p[0].reduce_min(&[0], true));
    }

    #[test]
    fn contraction_and_indexing_vjps(b in 1usize..3, m in 1usize..4, k in 1usize..4, n in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.array(&[b, m, k], -1.0, 1.0);
        let w = rng.array(&[k, n], -1.0, 1.0);
        let y = rng.array(&[b, k, n], -1.0, 1.0);
        check_grad("matmul", vec![x.clone(), w.clone()], |_, p| p[0].matmul(&p[1]));
        check_grad("batched matmul", vec![x.clone(), y.clone()], |_, p| p[0].matmul(&p[1]));
        check_grad("dot_general odd dims", vec![x.clone(), y.clone()], |_, p| {
            p[0].dot_general(&p[1], DotDims { lhs_batch: vec![0], rhs_batch: vec![0], lhs_contract: vec![2], rhs_contract: vec![1] }).transpose(&[2, 0, 1])
        });
        check_grad("dot_general contract 2 dims", vec![x.clone(), rng.array(&[m, k, n], -1.0, 1.0)], |_, p| {
            p[0].dot_general(&p[1], DotDims { lhs_contract: vec![2, 1], rhs_contract: vec![1, 0], ..DotDims::default() })
        });
        check_grad("einsum", vec![x.clone(), w.clone()], |_, p| einsum("btd,df->bf", &[&p[0], &p[1]]));
        let v = 5;
        let table = rng.array(&[v, k], -1.0, 1.0);
        let ids: Vec<i32> = (0..b * m).map(|_| rng.below(v) as i32).collect();
        let ids2 = ids.clone();
        check_grad("take", vec![table.clone()], move |bb, p| p[0].take(&bb.constant(&ids2, &[b, m]), 0));
        let ids3 = ids.clone();
        check_grad("index_add", vec![table.clone(), rng.array(&[b, m, k], -1.0, 1.0)], move |bb, p| {
            p[0].index_add(0, &bb.constant(&ids3, &[b, m]), &p[1].tanh())
        });
        let logits = rng.array(&[m, v], -2.0, 2.0);
        let lab: Vec<i32> = (0..m).map(|_| rng.below(v) as i32).collect();
        check_grad("take_along_axis", vec![logits.clone()], move |bb, p| p[0].take_along_axis(&bb.constant(&lab, &[m, 1]), 1));
        check_grad("softmax", vec![logits.clone()], |_, p| p[0].softmax(-1));
        check_grad("log_softmax", vec![logits.clone()], |_, p| p[0].log_softmax(1));
        check_grad("logsumexp", vec![logits.clone()], |_, p| p[0].logsumexp(&[0, 1], false));
    }
}

/// Softmax cross-entropy of integer labels: `-mean(log_softmax(z)[label])`.
fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Tensor {
    -logits
        .log_softmax(-1)
        .take_along_axis(&labels.expand_dims(-1), -1)
        .mean_all()
}

#[test]
fn softmax_cross_entropy_and_two_layer_mlp() {
    let mut rng = Rng(7);
    let (batch, din, hidden, classes) = (4, 5, 6, 3);
    let labels: Vec<i32> = (0..batch).map(|_| rng.below(classes) as i32).collect();
    let l1 = labels.clone();
    check_grad(
        "cross_entropy",
        vec![rng.array(&[batch, classes], -3.0, 3.0)],
        move |b, p| cross_entropy(&p[0], &b.constant(&l1, &[batch])),
    );
    let inputs = [
        rng.array(&[batch, din], -1.0, 1.0),
        rng.array(&[din, hidden], -0.5, 0.5),
        rng.array(&[hidden], -0.1, 0.1),
        rng.array(&[hidden, classes], -0.5, 0.5),
        rng.array(&[classes], -0.1, 0.1),
    ];
    check_grad("mlp", inputs.to_vec(), move |b, p| {
        let h = (p[0].matmul(&p[1]) + &p[2]).tanh();
        let logits = h.matmul(&p[3]) + &p[4];
        cross_entropy(&logits, &b.constant(&labels, &[batch]))
    });
}

/// One recurrent step: `h' = tanh(h u + x w)`, output `y = sum(h' * h')`.
fn step(h: &Tensor, x: &Tensor, u: &Tensor, w: &Tensor) -> (Tensor, Tensor) {
    let h2 = (h.expand_dims(0).matmul(u) + x.expand_dims(0).matmul(w))
        .reshape(&[h.dims()[0]])
        .tanh();
    let y = h2.square().sum_all();
    (h2, y)
}

#[test]
fn scan_of_16_steps_equals_unrolled_loop_in_values_and_gradients() {
    let (len, d, e) = (16, 4, 3);
    let mut rng = Rng(11);
    let inputs = vec![
        rng.array(&[d], -1.0, 1.0),
        rng.array(&[len, e], -1.0, 1.0),
        rng.array(&[d, d], -0.6, 0.6),
        rng.array(&[e, d], -0.6, 0.6),
    ];
    let r: Vec<f64> = (0..len).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let loss_of = |b: &FunctionBuilder, hf: &Tensor, ys: &Tensor| {
        hf.sum_all() + (ys * &b.constant(&r, &[len])).sum_all()
    };
    let host: Vec<axle::backend::HostTensor> = inputs.iter().map(|a| a.clone().into()).collect();
    let scanned = run("scan", host.clone(), |b, p| {
        let (u, w) = (&p[2], &p[3]);
        let (c, ys) = b.scan(len, &[&p[0]], &[&p[1]], |c, x| {
            let (h, y) = step(&c[0], &x[0], u, w);
            (vec![h], vec![y])
        });
        let loss = loss_of(b, &c[0], &ys[0]);
        let g = grad(&loss, &[&p[0], &p[1], &p[2], &p[3]]);
        let mut out = vec![loss, c[0].clone(), ys[0].clone()];
        out.extend(g);
        out
    });
    let unrolled = run("unrolled", host, |b, p| {
        let (u, w) = (&p[2], &p[3]);
        let mut h = p[0].clone();
        let mut ys = Vec::new();
        for t in 0..len {
            let x = p[1].narrow(0, t, 1).reshape(&[e]);
            let (h2, y) = step(&h, &x, u, w);
            h = h2;
            ys.push(y.expand_dims(0));
        }
        let refs: Vec<&Tensor> = ys.iter().collect();
        let ys = Tensor::concatenate(&refs, 0);
        let loss = loss_of(b, &h, &ys);
        let g = grad(&loss, &[&p[0], &p[1], &p[2], &p[3]]);
        let mut out = vec![loss, h, ys];
        out.extend(g);
        out
    });
    // Same f64 arithmetic in a different order (loop vs unrolled): agree to 1e-12.
    let names = ["loss", "final carry", "ys", "d h0", "d xs", "d u", "d w"];
    for (i, name) in names.iter().enumerate() {
        assert_close(name, &f64s(&scanned[i]), &f64s(&unrolled[i]), 1e-12, 1e-12);
    }
    // And the scan's gradient against finite differences.
    check_grad("scan", inputs.clone(), move |b, p| {
        let (u, w) = (&p[2], &p[3]);
        let (c, ys) = b.scan(len, &[&p[0]], &[&p[1]], |c, x| {
            let (h, y) = step(&c[0], &x[0], u, w);
            (vec![h], vec![y])
        });
        &c[0].sum_all() + &ys[0].sum_all()
    });
}

#[test]
fn nested_scan_gradients() {
    let mut rng = Rng(5);
    let inputs = [
        rng.array(&[3], -1.0, 1.0),
        rng.array(&[4, 2, 3], -1.0, 1.0),
        rng.array(&[3], 0.5, 1.0),
    ];
    check_grad("nested scan", inputs.to_vec(), |b, p| {
        let scale = &p[2];
        let (c, _) = b.scan(4, &[&p[0]], &[&p[1]], |c, x| {
            let inner_b = c[0].builder().clone();
            let (c2, ys) = inner_b.scan(2, &[&c[0]], &[&x[0]], |c, x| {
                (vec![(&c[0] * scale + &x[0]).sin()], vec![c[0].sum_all()])
            });
            (vec![&c2[0] + &ys[0].sum_all()], vec![])
        });
        c[0].clone()
    });
}

/// `vjp` over several outputs sums their contributions; `stop_gradient`
/// blocks one path; integer values may sit in the graph. Closed forms:
/// d/dx [ca·x² + cb·Σsin x] = 2x·ca + cb·cos x, and
/// d/dx Σ stop_gradient(x)·x = x.
#[test]
fn vjp_with_several_outputs_and_stop_gradient() {
    let x = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.3f64, -1.2, 2.0]).unwrap();
    let ca = ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.5, -2.0]).unwrap();
    let cb = ArrayD::from_elem(IxDyn(&[]), 0.7);
    let out = run(
        "vjp",
        vec![x.clone().into(), ca.clone().into(), cb.clone().into()],
        |b, p| {
            let x = &p[0];
            let a = x.square();
            let count = b.iota(DType::I32, &[3], 0).sum_all();
            let s = x.sin().sum_all() + count.convert(DType::F64);
            let g = axle::compiler::vjp(&[&a, &s], &[&p[1], &p[2]], &[x]);
            let sg = grad(&(&x.stop_gradient() * x).sum_all(), &[x]);
            vec![g[0].clone(), sg[0].clone()]
        },
    );
    let want = ArrayD::from_shape_fn(IxDyn(&[3]), |i| {
        2.0 * x[[i[0]]] * ca[[i[0]]] + 0.7 * x[[i[0]]].cos()
    });
    assert_close("vjp", &f64s(&out[0]), &want, 1e-14, 1e-14);
    assert_close("stop_gradient", &f64s(&out[1]), &x, 0.0, 0.0);
}

/// Gradients of gradients: the backward ops are ordinary primitives, so
/// `grad` applies again. d/dx Σ d/dx tanh(x) = Σ -2 tanh(x) (1 - tanh²(x)).
#[test]
fn second_derivative_of_tanh() {
    let x = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.3f64, -1.2, 2.0]).unwrap();
    let out = run("hessian", vec![x.clone().into()], |_, p| {
        let g = grad(&p[0].tanh().sum_all(), &[&p[0]]).remove(0);
        grad(&g.sum_all(), &[&p[0]])
    });
    let want = x.mapv(|v| -2.0 * v.tanh() * (1.0 - v.tanh().powi(2)));
    assert_close("d2 tanh", &f64s(&out[0]), &want, 1e-12, 1e-14);
}
