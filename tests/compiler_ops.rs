//! Every op of axle-compiler executed on the CPU PJRT plugin against an
//! ndarray reference on random inputs (proptest over shapes and values,
//! 8 cases each; one compiled program per case and op family).
//!
//! Tolerances: inputs are f32; references are computed in f64 from the same
//! f32 values. Exact ops (arithmetic on representable results, shape ops,
//! indexing, compare, select) must match to f32 rounding: rtol 1e-6.
//! Transcendentals (exp, log, tanh, logistic, erf, sin, cos, pow) use XLA's
//! CPU approximations, within a few ulp: rtol 1e-5 plus atol 1e-6 near 0.
//! Sums of n terms accumulate n roundings: atol 1e-6 * n * max|x|.

mod compiler_common;

use axle::backend::HostTensor;
use axle::compiler::{
    CmpDir, DType, FunctionBuilder, Tensor, einsum, random_normal, random_uniform,
};
use compiler_common::{Rng, assert_close, assert_close32, f32s, run};
use ndarray::{ArrayD, Axis, IxDyn, Slice};
use proptest::prelude::*;

fn h(a: &ArrayD<f32>) -> HostTensor {
    a.clone().into()
}

fn up(a: &ArrayD<f32>) -> ArrayD<f64> {
    a.mapv(f64::from)
}

/// erf by its Maclaurin series (converges quickly for |x| <= 3).
fn erf(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..80 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn shape_strategy() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..5, 0..4)
}

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(8)
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn unary_elementwise(dims in shape_strategy(), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.array_f32(&dims, -2.5, 2.5);
        let xp = rng.array_f32(&dims, 0.1, 4.0);
        let out = run("unary", vec![h(&x), h(&xp)], |_, p| {
            let (x, xp) = (&p[0], &p[1]);
            vec![-x, x.abs(), x.exp(), xp.log(), xp.log1p(), x.tanh(), x.logistic(), xp.sqrt(),
                 xp.rsqrt(), x.erf(), x.sin(), x.cos(), x.sign(), x.floor(), x.square()]
        });
        let (x, xp) = (up(&x), up(&xp));
        let refs: Vec<(&str, ArrayD<f64>, f64)> = vec![
            ("neg", x.mapv(|v| -v), 1e-6),
            ("abs", x.mapv(f64::abs), 1e-6),
            ("exp", x.mapv(f64::exp), 1e-5),
            ("log", xp.mapv(f64::ln), 1e-5),
            ("log1p", xp.mapv(f64::ln_1p), 1e-5),
            ("tanh", x.mapv(f64::tanh), 1e-5),
            ("logistic", x.mapv(|v| 1.0 / (1.0 + (-v).exp())), 1e-5),
            ("sqrt", xp.mapv(f64::sqrt), 1e-6),
            ("rsqrt", xp.mapv(|v| 1.0 / v.sqrt()), 1e-5),
            ("erf", x.mapv(erf), 1e-5),
            ("sin", x.mapv(f64::sin), 1e-5),
            ("cos", x.mapv(f64::cos), 1e-5),
            ("sign", x.mapv(|v| if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { 0.0 }), 0.0),
            ("floor", x.mapv(f64::floor), 0.0),
            ("square", x.mapv(|v| v * v), 1e-6),
        ];
        for (i, (name, want, rtol)) in refs.iter().enumerate() {
            assert_close32(name, &out[i], want, *rtol, 1e-6);
        }
    }

    #[test]
    fn binary_with_broadcasting(dims in shape_strategy(), mask in any::<u8>(), drop in 0usize..2, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        // rhs: some dims set to 1, possibly fewer leading dims (numpy rules).
        let mut bd: Vec<usize> = dims.iter().enumerate().map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect();
        bd.drain(..drop.min(bd.len()));
        let a = rng.array_f32(&dims, -2.0, 2.0);
        let bb = rng.array_f32(&bd, -2.0, 2.0);
        let bpos = rng.array_f32(&bd, 0.5, 2.0);
        let apos = rng.array_f32(&dims, 0.5, 2.0);
        let out = run("binary", vec![h(&a), h(&bb), h(&bpos), h(&apos)], |_, p| {
            let (a, b, bp, ap) = (&p[0], &p[1], &p[2], &p[3]);
            vec![a + b, a - b, a * b, a / bp, ap.pow(b), a.maximum(b), a.minimum(b),
                 a.compare(CmpDir::Eq, &a.floor()), a.not_equal(b), a.less(b), a.less_equal(b), a.greater(b), a.greater_equal(b),
                 a.greater(b).select(a, b), a.clip(-0.5, 0.5), (a * 10.0).convert(DType::I32), a.convert(DType::F64),
                 a * 2.0, 1.0 - a]
        });
        let shape = IxDyn(&dims);
        let (a, b, bp, ap) = (up(&a), up(&bb).broadcast(shape.clone()).unwrap().to_owned(),
                              up(&bpos).broadcast(shape.clone()).unwrap().to_owned(), up(&apos));
        let zip = |f: &dyn Fn(f64, f64) -> f64, x: &ArrayD<f64>, y: &ArrayD<f64>| {
            ndarray::Zip::from(x).and(y).map_collect(|&p, &q| f(p, q))
        };
        let b01 = |v: bool| if v { 1.0 } else { 0.0 };
        let num: Vec<(&str, ArrayD<f64>, f64)> = vec![
            ("add", zip(&|p, q| p + q, &a, &b), 1e-6),
            ("sub", zip(&|p, q| p - q, &a, &b), 1e-6),
            ("mul", zip(&|p, q| p * q, &a, &b), 1e-6),
            ("div", zip(&|p, q| p / q, &a, &bp), 1e-6),
            ("pow", zip(&|p, q| p.powf(q), &ap, &b), 1e-5),
            ("max", zip(&|p, q| p.max(q), &a, &b), 0.0),
            ("min", zip(&|p, q| p.min(q), &a, &b), 0.0),
        ];
        for (i, (name, want, rtol)) in num.iter().enumerate() {
            assert_close32(name, &out[i], want, *rtol, 1e-6);
        }
        let preds: Vec<(&str, ArrayD<f64>)> = vec![
            ("eq", a.mapv(|p| b01(p == p.floor()))),
            ("ne", zip(&|p, q| b01(p != q), &a, &b)),
            ("lt", zip(&|p, q| b01(p < q), &a, &b)),
            ("le", zip(&|p, q| b01(p <= q), &a, &b)),
            ("gt", zip(&|p, q| b01(p > q), &a, &b)),
            ("ge", zip(&|p, q| b01(p >= q), &a, &b)),
        ];
        for (i, (name, want)) in preds.iter().enumerate() {
            let got: ArrayD<bool> = out[7 + i].clone().try_into().unwrap();
            assert_close(name, &got.mapv(b01), want, 0.0, 0.0);
        }
        assert_close32("select", &out[13], &zip(&|p, q| if p > q { p } else { q }, &a, &b), 0.0, 0.0);
        assert_close32("clamp", &out[14], &a.mapv(|p| p.clamp(-0.5, 0.5)), 0.0, 0.0);
        let conv: ArrayD<i32> = out[15].clone().try_into().unwrap();
        let want = a.mapv(|p| (p as f32 * 10.0).trunc() as f64);
        assert_close("convert_i32", &conv.mapv(f64::from), &want, 0.0, 0.0);
        let conv64: ArrayD<f64> = out[16].clone().try_into().unwrap();
        assert_close("convert_f64", &conv64, &a, 0.0, 0.0);
        assert_close32("scalar_mul", &out[17], &a.mapv(|p| p * 2.0), 1e-6, 0.0);
        assert_close32("scalar_rsub", &out[18], &a.mapv(|p| 1.0 - p), 1e-6, 1e-7);
    }

    #[test]
    fn shape_ops(seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let dims: Vec<usize> = (0..3).map(|_| 1 + rng.below(4)).collect();
        let x = rng.array_f32(&dims, -2.0, 2.0);
        let y = rng.array_f32(&dims, -2.0, 2.0);
        let mut perm = vec![0, 1, 2];
        for i in (1..3).rev() { perm.swap(i, rng.below(i + 1)); }
        let start: Vec<usize> = dims.iter().map(|&d| rng.below(d)).collect();
        let limit: Vec<usize> = dims.iter().zip(&start).map(|(&d, &s)| s + 1 + rng.below(d - s)).collect();
        let stride: Vec<usize> = (0..3).map(|_| 1 + rng.below(2)).collect();
        let sizes: Vec<usize> = dims.iter().map(|&d| 1 + rng.below(d)).collect();
        // dynamic starts may be out of range: XLA clamps them into bounds.
        let dstart: Vec<i32> = (0..3).map(|_| rng.below(6) as i32 - 1).collect();
        let upd = rng.array_f32(&sizes, -2.0, 2.0);
        let (low, high, interior) = ([1usize, 0, 2], [0usize, 2, 1], [0usize, 1, 2]);
        let starts: Vec<HostTensor> = dstart.iter().map(|&s| ArrayD::from_elem(IxDyn(&[]), s).into()).collect();
        let mut inputs = vec![h(&x), h(&y), h(&upd)];
        inputs.extend(starts);
        let (p2, s2, l2, st2, sz2) = (perm.clone(), start.clone(), limit.clone(), stride.clone(), sizes.clone());
        let d2 = dims.clone();
        let out = run("shape", inputs, move |b, p| {
            let (x, y, u) = (&p[0], &p[1], &p[2]);
            let st: Vec<&Tensor> = p[3..6].iter().collect();
            let mut bdims = vec![2];
            bdims.extend_from_slice(&d2);
            vec![
                x.broadcast_in_dim(&bdims, &[1, 2, 3]),
                x.reshape(&[d2.iter().product()]),
                x.transpose(&p2),
                x.slice(&s2, &l2, &st2),
                x.dynamic_slice(&st, &sz2),
                x.dynamic_update_slice(u, &st),
                Tensor::concatenate(&[x, y], 1),
                x.pad(&x.splat_like(7.0), &low, &high, &interior),
                b.iota(DType::F32, &d2, 1),
                x.expand_dims(1),
                x.narrow(-1, 0, 1),
            ]
        });
        let xa = up(&x);
        let mut bdims = vec![2];
        bdims.extend_from_slice(&dims);
        assert_close32("broadcast_in_dim", &out[0], &xa.broadcast(IxDyn(&bdims)).unwrap().to_owned(), 0.0, 0.0);
        assert_close32("reshape", &out[1], &xa.iter().copied().collect::<ndarray::Array1<f64>>().into_dyn(), 0.0, 0.0);
        assert_close32("transpose", &out[2], &xa.clone().permuted_axes(perm.clone()).as_standard_layout().to_owned(), 0.0, 0.0);
        let sl = xa.slice_each_axis(|ax| { let i = ax.axis.index(); Slice::new(start[i] as isize, Some(limit[i] as isize), stride[i] as isize) }).to_owned();
        assert_close32("slice", &out[3], &sl, 0.0, 0.0);
        let cl: Vec<usize> = (0..3).map(|i| (dstart[i].max(0) as usize).min(dims[i] - sizes[i])).collect();
        let ds = xa.slice_each_axis(|ax| { let i = ax.axis.index(); Slice::from(cl[i]..cl[i] + sizes[i]) }).to_owned();
        assert_close32("dynamic_slice", &out[4], &ds, 0.0, 0.0);
        let mut dus = xa.clone();
        dus.slice_each_axis_mut(|ax| { let i = ax.axis.index(); Slice::from(cl[i]..cl[i] + sizes[i]) }).assign(&up(&upd));
        assert_close32("dynamic_update_slice", &out[5], &dus, 0.0, 0.0);
        let cat = ndarray::concatenate(Axis(1), &[xa.view(), up(&y).view()]).unwrap();
        assert_close32("concatenate", &out[6], &cat, 0.0, 0.0);
        let pd: Vec<usize> = (0..3).map(|i| low[i] + high[i] + dims[i] + (dims[i] - 1) * interior[i]).collect();
        let mut pad = ArrayD::from_elem(IxDyn(&pd), 7.0);
        for (idx, v) in xa.indexed_iter() {
            let o: Vec<usize> = (0..3).map(|i| low[i] + idx[i] * (interior[i] + 1)).collect();
            pad[IxDyn(&o)] = *v;
        }
        assert_close32("pad", &out[7], &pad, 0.0, 0.0);
        let iota = ArrayD::from_shape_fn(IxDyn(&dims), |i| i[1] as f64);
        assert_close32("iota", &out[8], &iota, 0.0, 0.0);
        assert_close32("expand_dims", &out[9], &xa.clone().insert_axis(Axis(1)), 0.0, 0.0);
        assert_close32("narrow", &out[10], &xa.slice_axis(Axis(2), Slice::from(0..1)).to_owned(), 0.0, 0.0);
    }

    #[test]
    fn contractions(b in 1usize..3, m in 1usize..4, k in 1usize..5, n in 1usize..4, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.array_f32(&[b, m, k], -1.0, 1.0);
        let w = rng.array_f32(&[k, n], -1.0, 1.0);
        let y = rng.array_f32(&[b, k, n], -1.0, 1.0);
        let q = rng.array_f32(&[b, m, 2, k], -1.0, 1.0);
        let kk = rng.array_f32(&[b, n, 2, k], -1.0, 1.0);
        let out = run("dot", vec![h(&x), h(&w), h(&y), h(&q), h(&kk)], |_, p| {
            vec![p[0].matmul(&p[1]), p[0].matmul(&p[2]), einsum("btd,df->btf", &[&p[0], &p[1]]),
                 einsum("bqhd,bkhd->bhqk", &[&p[3], &p[4]]), einsum("btd->db", &[&p[0]])]
        });
        let (x, w, y, q, kk) = (up(&x), up(&w), up(&y), up(&q), up(&kk));
        let tol = 1e-6 * k as f64;
        let mm = ArrayD::from_shape_fn(IxDyn(&[b, m, n]), |i| (0..k).map(|j| x[[i[0], i[1], j]] * w[[j, i[2]]]).sum());
        let bmm = ArrayD::from_shape_fn(IxDyn(&[b, m, n]), |i| (0..k).map(|j| x[[i[0], i[1], j]] * y[[i[0], j, i[2]]]).sum());
        let att = ArrayD::from_shape_fn(IxDyn(&[b, 2, m, n]), |i| (0..k).map(|d| q[[i[0], i[2], i[1], d]] * kk[[i[0], i[3], i[1], d]]).sum());
        let red = ArrayD::from_shape_fn(IxDyn(&[k, b]), |i| (0..m).map(|t| x[[i[1], t, i[0]]]).sum());
        assert_close32("matmul", &out[0], &mm, 1e-6, tol);
        assert_close32("batched matmul", &out[1], &bmm, 1e-6, tol);
        assert_close32("einsum btd,df->btf", &out[2], &mm, 1e-6, tol);
        assert_close32("einsum bqhd,bkhd->bhqk", &out[3], &att, 1e-6, tol);
        assert_close32("einsum btd->db", &out[4], &red, 1e-6, 1e-6 * m as f64);
    }

    #[test]
    fn reductions(dims in prop::collection::vec(1usize..5, 1..4), pick in any::<u8>(), keep in any::<bool>(), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let x = rng.array_f32(&dims, -2.0, 2.0);
        let r = dims.len();
        let mut axes: Vec<usize> = (0..r).filter(|i| pick >> i & 1 == 1).collect();
        if axes.is_empty() { axes.push(r - 1); }
        let ax: Vec<i64> = axes.iter().map(|&a| a as i64 - if pick & 0x80 != 0 { r as i64 } else { 0 }).collect();
        let ax2 = ax.clone();
        let out = run("reduce", vec![h(&x)], move |_, p| {
            vec![p[0].sum(&ax2, keep), p[0].reduce_max(&ax2, keep), p[0].reduce_min(&ax2, keep), p[0].mean(&ax2, keep), p[0].argmax(-1, keep)]
        });
        let xa = up(&x);
        let n: usize = axes.iter().map(|&a| dims[a]).product();
        let reduce = |f: &dyn Fn(ndarray::ArrayViewD<f64>) -> f64| -> ArrayD<f64> {
            let mut a = xa.clone();
            for &axis in axes.iter().rev() {
                a = a.map_axis(Axis(axis), |lane| f(lane.into_dyn()));
                if keep { a = a.insert_axis(Axis(axis)); }
            }
            a
        };
        let tol = 1e-6 * n as f64 * 2.0;
        assert_close32("sum", &out[0], &reduce(&|l| l.sum()), 1e-6, tol);
        assert_close32("max", &out[1], &reduce(&|l| l.fold(f64::NEG_INFINITY, |m, &v| m.max(v))), 0.0, 0.0);
        assert_close32("min", &out[2], &reduce(&|l| l.fold(f64::INFINITY, |m, &v| m.min(v))), 0.0, 0.0);
        assert_close32("mean", &out[3], &reduce(&|l| l.sum()).mapv(|v| v / n as f64), 1e-6, tol);
        let mut am = xa.map_axis(Axis(r - 1), |l| {
            let mut best = 0;
            for (i, v) in l.iter().enumerate() { if *v > l[best] { best = i; } }
            best as f64
        });
        if keep { am = am.insert_axis(Axis(r - 1)); }
        let got: ArrayD<i32> = out[4].clone().try_into().unwrap();
        assert_close("argmax", &got.mapv(f64::from), &am, 0.0, 0.0);
    }

    #[test]
    fn indexing(v in 2usize..7, d in 1usize..4, t in 1usize..5, seed in any::<u64>()) {
        let mut rng = Rng(seed);
        let table = rng.array_f32(&[v, d], -2.0, 2.0);
        let ids = ArrayD::from_shape_simple_fn(IxDyn(&[2, t]), || rng.below(v) as i32);
        let logits = rng.array_f32(&[t, v], -2.0, 2.0);
        let labels = ArrayD::from_shape_simple_fn(IxDyn(&[t, 1]), || rng.below(v) as i32);
        let upd = rng.array_f32(&[2, t, d], -2.0, 2.0);
        let out = run("index", vec![h(&table), ids.clone().into(), h(&logits), labels.clone().into(), h(&upd)], |_, p| {
            vec![p[0].take(&p[1], 0), p[2].take_along_axis(&p[3], -1), p[0].index_add(0, &p[1], &p[4]),
                 p[1].one_hot(v, DType::F32), p[0].take(&p[1], 1).reshape(&[v, 2 * t]).convert(DType::F32)]
        });
        let (tb, lg, up_) = (up(&table), up(&logits), up(&upd));
        let take = ArrayD::from_shape_fn(IxDyn(&[2, t, d]), |i| tb[[ids[[i[0], i[1]]] as usize, i[2]]]);
        assert_close32("take", &out[0], &take, 0.0, 0.0);
        let tal = ArrayD::from_shape_fn(IxDyn(&[t, 1]), |i| lg[[i[0], labels[[i[0], 0]] as usize]]);
        assert_close32("take_along_axis", &out[1], &tal, 0.0, 0.0);
        let mut ia = tb.clone();
        for i in 0..2 { for j in 0..t { for k in 0..d { ia[[ids[[i, j]] as usize, k]] += up_[[i, j, k]]; } } }
        assert_close32("index_add", &out[2], &ia, 1e-6, 1e-6);
        let oh = ArrayD::from_shape_fn(IxDyn(&[2, t, v]), |i| if ids[[i[0], i[1]]] as usize == i[2] { 1.0 } else { 0.0 });
        assert_close32("one_hot", &out[3], &oh, 0.0, 0.0);
        // take along axis 1 with clamped (in-range here) column indices
        let col = ArrayD::from_shape_fn(IxDyn(&[v, 2, t]), |i| tb[[i[0], (ids[[i[1], i[2]]] as usize).min(d - 1)]]);
        assert_close32("take axis 1", &out[4], &col.into_shape_with_order(IxDyn(&[v, 2 * t])).unwrap(), 0.0, 0.0);
    }

    #[test]
    fn composites(rows in 1usize..4, cols in 1usize..6, shift in prop::sample::select(vec![0.0, 80.0, 1000.0]), seed in any::<u64>()) {
        let mut rng = Rng(seed);
        // a large shift checks the max-subtraction: exp(1000) overflows f32.
        let x = rng.array_f32(&[rows, cols], -3.0, 3.0).mapv(|v| v + shift as f32);
        let out = run("composite", vec![h(&x)], |_, p| {
            vec![p[0].softmax(-1), p[0].log_softmax(1), p[0].logsumexp(&[-1], false), p[0].logsumexp(&[0, 1], true)]
        });
        let xa = up(&x);
        let lse = xa.map_axis(Axis(1), |l| { let m = l.fold(f64::NEG_INFINITY, |a, &b| a.max(b)); m + l.mapv(|v| (v - m).exp()).sum().ln() });
        let sm = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| (xa[[i[0], i[1]]] - lse[[i[0]]]).exp());
        let lsm = ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| xa[[i[0], i[1]]] - lse[[i[0]]]);
        let m = xa.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
        let all = ArrayD::from_elem(IxDyn(&[1, 1]), m + xa.mapv(|v| (v - m).exp()).sum().ln());
        // log-domain results are differences of values up to 1000: f32 rounding of x is 6e-5 there.
        let atol = 1e-6 * (1.0 + shift);
        assert_close32("softmax", &out[0], &sm, 1e-5, 1e-6);
        assert_close32("log_softmax", &out[1], &lsm, 1e-5, atol);
        assert_close32("logsumexp", &out[2], &lse, 1e-5, atol);
        assert_close32("logsumexp all", &out[3], &all, 1e-5, atol);
    }
}

#[test]
fn randomness_uniform_normal_dropout() {
    let n = 20_000usize;
    let x = ArrayD::<f32>::ones(IxDyn(&[n]));
    let out = run("rng", vec![h(&x)], |b, p| {
        let key = b.rng_key(42);
        let (key, u) = random_uniform(&key, DType::F32, &[n]);
        let (key, u2) = random_uniform(&key, DType::F32, &[n]);
        let (key, z) = random_normal(&key, DType::F32, &[n]);
        let (_, d) = axle::compiler::dropout(&p[0], &key, 0.25);
        let (_, u_again) = random_uniform(&b.rng_key(42), DType::F32, &[n]);
        vec![u, u2, z, d, u_again]
    });
    let (u, u2, z, d, ua) = (
        f32s(&out[0]),
        f32s(&out[1]),
        f32s(&out[2]),
        f32s(&out[3]),
        f32s(&out[4]),
    );
    assert!(u.iter().all(|&v| (0.0..1.0).contains(&v)));
    // Mean of n uniforms: sd 0.2887/sqrt(n) = 0.002; allow 5 sd.
    let mean = |a: &ArrayD<f32>| a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
    assert!((mean(&u) - 0.5).abs() < 0.01, "uniform mean {}", mean(&u));
    assert_eq!(u, ua, "same key, same numbers");
    assert_ne!(u, u2, "the returned key gives new numbers");
    let zm = mean(&z);
    let zv = z.iter().map(|&v| (v as f64 - zm).powi(2)).sum::<f64>() / n as f64;
    assert!(
        zm.abs() < 0.035 && (zv - 1.0).abs() < 0.05,
        "normal mean {zm} var {zv}"
    );
    // dropout: zero with probability 0.25 (sd of the fraction 0.003), kept values scaled by 4/3.
    let zeros = d.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - 0.25).abs() < 0.015, "dropped fraction {zeros}");
    assert!(d.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
}

#[test]
fn while_loop_and_annotations() {
    let x = ArrayD::from_elem(IxDyn(&[3]), 1.5f32);
    let out = run("while", vec![h(&x)], |b, p| {
        let i0 = b.scalar(0.0, DType::I32);
        let limit = b.scalar(10.0, DType::I32);
        let st = b.while_loop(
            &[&i0, &p[0]],
            |s| s[0].less(&limit),
            |s| vec![&s[0] + &s[0].ones_like(), &s[1] * 1.1 + &p[0]],
        );
        let bar = axle::compiler::optimization_barrier(&[&st[1]]);
        vec![st[0].convert(DType::F32), bar[0].stop_gradient()]
    });
    assert_close32(
        "trip count",
        &out[0],
        &ArrayD::from_elem(IxDyn(&[]), 10.0),
        0.0,
        0.0,
    );
    let mut v = 1.5f64;
    for _ in 0..10 {
        v = v * 1.1 + 1.5;
    }
    assert_close32(
        "while value",
        &out[1],
        &ArrayD::from_elem(IxDyn(&[3]), v),
        1e-5,
        0.0,
    );
}

#[test]
fn embed_example_runs() {
    let status = std::process::Command::new(env!("CARGO"))
        .args(["run", "--quiet", "--example", "embed"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "embed failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(stdout.contains("func.func public @main"), "{stdout}");
    // y = tanh(x @ ones): the rows of x sum to 0.6 and 1.5.
    let y: Vec<f64> = stdout
        .split("y =")
        .nth(1)
        .expect("the example prints y")
        .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let want = [0.6f64.tanh(), 0.6f64.tanh(), 1.5f64.tanh(), 1.5f64.tanh()];
    assert_eq!(y.len(), 4, "{stdout}");
    for (g, w) in y.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

/// Shardy shardings on parameters and results, a sharding constraint in the
/// body and a donated parameter, emitted by the compiler and run on two CPU
/// devices: the result equals the single-device ndarray computation.
#[test]
fn shardy_annotations_compile_and_run_on_two_devices() {
    use axle::runtime::{Client, CompileOptions, ShardLayout, ShardedArray};
    let b = FunctionBuilder::new("sharded");
    let x = b.param("x", DType::F32, &[8, 6]);
    let w = b.param("w", DType::F32, &[6, 4]);
    let acc = b.param("acc", DType::F32, &[8, 4]);
    let y = x
        .matmul(&w)
        .sharding_constraint("<@mesh, [{\"data\"}, {?}]>")
        .tanh();
    let acc_new = &acc + &y;
    let mut f = b.build(&[("acc_new", &acc_new)]).unwrap();
    f.add_mesh("sdy.mesh @mesh = <[\"data\"=2]>");
    f.set_num_partitions(2);
    f.set_param_sharding("x", "<@mesh, [{\"data\"}, {}]>")
        .unwrap();
    f.set_param_sharding("w", "#sdy.sharding<@mesh, [{}, {}]>")
        .unwrap();
    f.set_param_sharding("acc", "<@mesh, [{\"data\"}, {}]>")
        .unwrap();
    f.set_result_sharding("acc_new", "<@mesh, [{\"data\"}, {}]>")
        .unwrap();
    f.donate("acc", "acc_new").unwrap();
    let text = f.to_stablehlo();
    assert!(
        text.contains("tf.aliasing_output = 0 : i32") && text.contains("sdy.sharding_constraint")
    );
    let client = Client::cpu(2).unwrap();
    let exe = client
        .compile(&text, &CompileOptions::shardy(2))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut rng = Rng(3);
    let (xh, wh, ah) = (
        rng.array_f32(&[8, 6], -1.0, 1.0),
        rng.array_f32(&[6, 4], -1.0, 1.0),
        rng.array_f32(&[8, 4], -1.0, 1.0),
    );
    let rows = ShardLayout {
        mesh_shape: vec![2],
        dim_axes: vec![vec![0], vec![]],
    };
    let xa = ShardedArray::from_array(&client, &xh, &rows).unwrap();
    let wa = ShardedArray::from_array(&client, &wh, &ShardLayout::replicated(vec![2], 2)).unwrap();
    let aa = ShardedArray::from_array(&client, &ah, &rows).unwrap();
    let mut out = exe.execute_sharded(&[&xa, &wa, &aa]).unwrap();
    assert_eq!(out[0][0].dims(), &[4, 4], "each device holds half the rows");
    let got = ShardedArray::from_shards(&[8, 4], &rows, out.remove(0))
        .unwrap()
        .to_array::<f32>()
        .unwrap();
    let (x64, w64, a64) = (up(&xh), up(&wh), up(&ah));
    let want = ArrayD::from_shape_fn(IxDyn(&[8, 4]), |i| {
        a64[[i[0], i[1]]]
            + (0..6)
                .map(|k| x64[[i[0], k]] * w64[[k, i[1]]])
                .sum::<f64>()
                .tanh()
    });
    assert_close("sharded result", &got.mapv(f64::from), &want, 1e-5, 1e-6);
}

/// Half-precision types trace, lower and run: bf16 and f16 arithmetic,
/// transcendental and matmul, converted back to f32 on the way out.
/// bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.4%), f16 keeps
/// 11 (2^-11 = 0.05%); each result carries a few roundings, so rtol is
/// 4 * 2^-8 for bf16 and 4 * 2^-11 for f16.
#[test]
fn half_precision_types() {
    let mut rng = Rng(9);
    let x = rng.array_f32(&[3, 4], -1.0, 1.0);
    let w = rng.array_f32(&[4, 2], -1.0, 1.0);
    let out = run("half", vec![h(&x), h(&w)], |_, p| {
        [DType::BF16, DType::F16]
            .iter()
            .map(|&d| {
                let (x, w) = (p[0].convert(d), p[1].convert(d));
                (x.exp() * 0.5 + 1.0).matmul(&w).convert(DType::F32)
            })
            .collect()
    });
    let (x, w) = (up(&x), up(&w));
    let want = ArrayD::from_shape_fn(IxDyn(&[3, 2]), |i| {
        (0..4)
            .map(|k| (x[[i[0], k]].exp() * 0.5 + 1.0) * w[[k, i[1]]])
            .sum::<f64>()
    });
    assert_close32("bf16", &out[0], &want, 4.0 / 256.0, 4.0 * 4.0 / 256.0);
    assert_close32("f16", &out[1], &want, 4.0 / 2048.0, 4.0 * 4.0 / 2048.0);
}

/// Logical ops on pred and the unsigned shift used by the random helpers,
/// against plain Rust on all input combinations.
#[test]
fn logical_and_shift_ops() {
    let p = ArrayD::from_shape_vec(IxDyn(&[4]), vec![false, false, true, true]).unwrap();
    let q = ArrayD::from_shape_vec(IxDyn(&[4]), vec![false, true, false, true]).unwrap();
    let bits =
        ArrayD::from_shape_vec(IxDyn(&[4]), vec![0u32, 1, 0xFFFF_FFFF, 0x8000_0001]).unwrap();
    let by = ArrayD::from_shape_vec(IxDyn(&[4]), vec![0u32, 1, 8, 31]).unwrap();
    let out = run(
        "logical",
        vec![
            p.clone().into(),
            q.clone().into(),
            bits.clone().into(),
            by.clone().into(),
        ],
        |_, t| {
            vec![
                t[0].logical_and(&t[1]),
                t[0].logical_or(&t[1]),
                t[0].logical_not(),
                t[2].shift_right_logical(&t[3]),
            ]
        },
    );
    let preds: Vec<ArrayD<bool>> = out[..3]
        .iter()
        .map(|h| h.clone().try_into().unwrap())
        .collect();
    let zip =
        |f: fn(bool, bool) -> bool| ndarray::Zip::from(&p).and(&q).map_collect(|&a, &b| f(a, b));
    assert_eq!(preds[0], zip(|a, b| a && b));
    assert_eq!(preds[1], zip(|a, b| a || b));
    assert_eq!(preds[2], p.mapv(|a| !a));
    let shifted: ArrayD<u32> = out[3].clone().try_into().unwrap();
    assert_eq!(
        shifted,
        ndarray::Zip::from(&bits)
            .and(&by)
            .map_collect(|&a, &s| a >> s)
    );
}
