//! Numerics at the edges (issue 11, items 3-6), each case against its
//! closed-form value or an f64 ndarray reference, executed on the CPU PJRT
//! plugin: half-precision accumulation, VJPs at ties, masked softmax rows,
//! powers at 0, out-of-range index modes, empty and one-step scans and
//! zero-size dims.

mod compiler_common;

use axle::backend::HostTensor;
use axle::compiler::{DType, GatherDims, IndexMode, ReduceKind, Tensor, grad, vjp};
use compiler_common::{Rng, assert_close, f32s, f64s, run};
use ndarray::{ArrayD, IxDyn, array};

fn f64_input(v: &[f64], dims: &[usize]) -> HostTensor {
    ArrayD::from_shape_vec(IxDyn(dims), v.to_vec())
        .expect("data fits dims")
        .into()
}

fn i32_input(v: &[i32], dims: &[usize]) -> HostTensor {
    ArrayD::from_shape_vec(IxDyn(dims), v.to_vec())
        .expect("data fits dims")
        .into()
}

/// The one element of a scalar result.
fn only<T: Copy>(a: &ArrayD<T>) -> T {
    assert_eq!(a.len(), 1, "a scalar");
    a.iter().copied().next().expect("one element")
}

fn arr(v: &[f64], dims: &[usize]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(dims), v.to_vec()).expect("data fits dims")
}

#[test]
fn half_precision_mean_of_2_pow_20_copies_accumulates_in_f32() {
    // The mean of 2^20 copies of x is x. In half precision 1e-5 rounds to
    // 168 * 2^-24 = 1.00136e-5 in both f16 (a subnormal, spacing 2^-24) and
    // bf16 (exponent 2^-17, 7 fraction bits: spacing 2^-24), so the right
    // result is that value, to within one spacing 2^-24 (the f32 sum may
    // round the last bit either way). Accumulating in the half type gave 0
    // in f16 (the count 2^20 converted to inf) and 9.60e-6 in bf16 (7
    // spacings off).
    let n = 1 << 20;
    let x = ArrayD::from_elem(IxDyn(&[n]), 1e-5f32);
    let out = run("half mean", vec![x.into()], |_, p| {
        [DType::F16, DType::BF16]
            .iter()
            .map(|&d| p[0].convert(d).mean_all().convert(DType::F32))
            .chain([p[0]
                .convert(DType::BF16)
                .reshape(&[1024, 1024])
                .mean(&[0, 1], false)
                .convert(DType::F32)])
            .collect()
    });
    let spacing = 2f64.powi(-24);
    let wants = [
        half::f16::from_f64(1e-5).to_f64(),
        half::bf16::from_f64(1e-5).to_f64(),
        half::bf16::from_f64(1e-5).to_f64(),
    ];
    for (i, (o, want)) in out.iter().zip(wants).enumerate() {
        let got = f64::from(only(&f32s(o)));
        assert!(
            (got - want).abs() <= spacing,
            "mean {i}: got {got}, want {want} (within {spacing})"
        );
    }
}

#[test]
fn bf16_bias_broadcast_over_65536_rows_gets_gradient_65536() {
    // d/db sum(broadcast(b, [65536, 4])) = 65536 per element, exact in
    // bf16 (2^16) and in an f32 sum of ones: tolerance 0. Accumulating in
    // bf16 stalls at 256 * 2^k steps (it gave 8192).
    let out = run("bf16 bias", vec![arr(&[0.5; 4], &[4]).into()], |_, p| {
        let b = p[0].convert(DType::BF16);
        let loss = b.broadcast_to(&[65536, 4]).sum_all();
        let g = grad(&loss, &[&b]).remove(0);
        vec![g.convert(DType::F64), loss.convert(DType::F64)]
    });
    assert_close(
        "d bias",
        &f64s(&out[0]),
        &arr(&[65536.0; 4], &[4]),
        0.0,
        0.0,
    );
    // The loss is 65536 * 4 * 0.5 = 131072 = 2^17, exact in bf16.
    assert_close("loss", &f64s(&out[1]), &arr(&[131072.0], &[]), 0.0, 0.0);
}

#[test]
fn bf16_linear_bias_and_embedding_gradients_within_1_percent_of_f32() {
    // A linear layer y = x w + b and an embedding lookup table[ids] over a
    // batch of 32768 rows, loss = sum(y * r) + sum(table[ids] * s) with
    // positive cotangents r, s in [0.5, 1.5). The bias gradient is the
    // column sum of r (about 32768 each), the table's row v the sum of s
    // over the ~512 rows with id v. Computed once with everything in f32
    // and once with the parameters and activations in bf16 (what
    // `learner.compute_dtype=bf16` does). bf16 rounds each cotangent to
    // 2^-9 relative (random signs, averaging out) and the f32-accumulated
    // sum once more to 2^-9 = 0.2%: the bf16 gradients must be within 1% of
    // the f32 ones (bf16 accumulation was 3-23% off). The f32 gradients
    // match the f64 reference to 1e-4 (f32 sums of 32768 terms).
    let (n, k, m, vocab) = (32768, 8, 4, 64);
    let mut rng = Rng(11);
    let x = rng.array_f32(&[n, k], -1.0, 1.0);
    let w = rng.array_f32(&[k, m], -1.0, 1.0);
    let b = rng.array_f32(&[m], -1.0, 1.0);
    let r = rng.array_f32(&[n, m], 0.5, 1.5);
    let table = rng.array_f32(&[vocab, k], -1.0, 1.0);
    let s = rng.array_f32(&[n, k], 0.5, 1.5);
    let ids: Vec<i32> = (0..n).map(|_| rng.below(vocab) as i32).collect();
    let inputs: Vec<HostTensor> = vec![
        x.into(),
        w.into(),
        b.into(),
        r.clone().into(),
        table.into(),
        s.clone().into(),
        i32_input(&ids, &[n]),
    ];
    let out = run("bf16 grads", inputs, |_, p| {
        let mut outs = Vec::new();
        for dtype in [DType::F32, DType::BF16] {
            let c: Vec<Tensor> = p[..6].iter().map(|t| t.convert(dtype)).collect();
            let y = &c[0].matmul(&c[1]) + &c[2];
            let e = c[4].take(&p[6], 0);
            let loss = (&y * &c[3]).sum_all() + (&e * &c[5]).sum_all();
            let g = grad(&loss, &[&c[2], &c[4]]);
            outs.extend(g.iter().map(|t| t.convert(DType::F32)));
        }
        outs
    });
    let r = r.mapv(f64::from);
    let s = s.mapv(f64::from);
    let want_b = r.sum_axis(ndarray::Axis(0));
    let mut want_t = ArrayD::<f64>::zeros(IxDyn(&[vocab, k]));
    for (row, &id) in ids.iter().enumerate() {
        for j in 0..k {
            want_t[[id as usize, j]] += s[[row, j]];
        }
    }
    let g32: Vec<ArrayD<f64>> = out[..2].iter().map(|o| f32s(o).mapv(f64::from)).collect();
    let g16: Vec<ArrayD<f64>> = out[2..].iter().map(|o| f32s(o).mapv(f64::from)).collect();
    assert_close("f32 d bias", &g32[0], &want_b, 1e-4, 0.0);
    assert_close("f32 d table", &g32[1], &want_t, 1e-4, 0.0);
    assert_close("bf16 d bias", &g16[0], &g32[0], 0.01, 0.0);
    assert_close("bf16 d table", &g16[1], &g32[1], 0.01, 0.0);
}

#[test]
fn max_min_split_ties_and_stable_softplus_has_slope_half_at_0() {
    // d/dx [max(x, 0) + min(x, 0)] = d/dx x = 1 everywhere, 0 included
    // (each side of a tie gets half); softplus(x) = max(x, 0) +
    // log1p(exp(-|x|)) has slope logistic(x), 0.5 at 0. f64 throughout:
    // tolerance 1e-12 (a few roundings of O(1) values).
    let xs = [0.0, -1.5, 2.0];
    let out = run("ties", vec![f64_input(&xs, &[3])], |_, p| {
        let x = &p[0];
        let zero = x.zeros_like();
        let identity = &x.maximum(&zero) + &x.minimum(&zero);
        let softplus = &x.maximum(&zero) + &(-&x.abs()).exp().log1p();
        let mut g = grad(&identity.sum_all(), &[x]);
        g.extend(grad(&softplus.sum_all(), &[x]));
        g.push(softplus);
        g
    });
    assert_close(
        "d identity",
        &f64s(&out[0]),
        &arr(&[1.0; 3], &[3]),
        0.0,
        1e-12,
    );
    let logistic = xs.map(|v| 1.0 / (1.0 + (-v).exp()));
    assert_close(
        "d softplus",
        &f64s(&out[1]),
        &arr(&logistic, &[3]),
        0.0,
        1e-12,
    );
    let softplus = xs.map(|v| v.exp().ln_1p());
    assert_close(
        "softplus",
        &f64s(&out[2]),
        &arr(&softplus, &[3]),
        0.0,
        1e-12,
    );
}

#[test]
fn softmax_log_softmax_and_logsumexp_stay_finite_on_masked_rows() {
    // Row 0 has one -inf entry, row 1 is fully masked (all -inf).
    // Closed forms, with p the softmax of row 0 (its -inf entry has p = 0):
    //   logsumexp: row 0 log(e^1 + e^2), row 1 -inf; gradient p, row 1 0.
    //   softmax: p, row 1 all 0; VJP with cotangent c: p (c - <p, c>), row 1 0.
    //   log_softmax: x - lse, row 1 all -inf; VJP: c - p sum(c), row 1 c.
    // f64 throughout: tolerance 1e-12.
    let ninf = f64::NEG_INFINITY;
    let x = [1.0, ninf, 2.0, ninf, ninf, ninf];
    let c = [0.3, -0.7, 1.1, 0.5, -0.2, 0.9];
    let out = run(
        "masked softmax",
        vec![f64_input(&x, &[2, 3]), f64_input(&c, &[2, 3])],
        |_, p| {
            let (x, c) = (&p[0], &p[1]);
            let lse = x.logsumexp(&[1], false);
            let sm = x.softmax(1);
            let ls = x.log_softmax(1);
            let d_lse = grad(&lse.sum_all(), &[x]).remove(0);
            let d_sm = vjp(&[&sm], &[c], &[x]).remove(0);
            let d_ls = vjp(&[&ls], &[c], &[x]).remove(0);
            vec![lse, sm, ls, d_lse, d_sm, d_ls]
        },
    );
    let z = 1f64.exp() + 2f64.exp();
    let p = [1f64.exp() / z, 0.0, 2f64.exp() / z];
    let pc: f64 = (0..3).map(|j| p[j] * c[j]).sum();
    let csum: f64 = c[..3].iter().sum();
    let lse = z.ln();
    let tol = 1e-12;
    assert_close(
        "logsumexp",
        &f64s(&out[0]),
        &arr(&[lse, ninf], &[2]),
        0.0,
        tol,
    );
    let sm = [p[0], 0.0, p[2], 0.0, 0.0, 0.0];
    assert_close("softmax", &f64s(&out[1]), &arr(&sm, &[2, 3]), 0.0, tol);
    let ls = [1.0 - lse, ninf, 2.0 - lse, ninf, ninf, ninf];
    assert_close("log_softmax", &f64s(&out[2]), &arr(&ls, &[2, 3]), 0.0, tol);
    let d_lse = [p[0], 0.0, p[2], 0.0, 0.0, 0.0];
    assert_close(
        "d logsumexp",
        &f64s(&out[3]),
        &arr(&d_lse, &[2, 3]),
        0.0,
        tol,
    );
    let d_sm: Vec<f64> = (0..6)
        .map(|i| if i < 3 { p[i] * (c[i] - pc) } else { 0.0 })
        .collect();
    assert_close("d softmax", &f64s(&out[4]), &arr(&d_sm, &[2, 3]), 0.0, tol);
    let d_ls: Vec<f64> = (0..6)
        .map(|i| if i < 3 { c[i] - p[i] * csum } else { c[i] })
        .collect();
    assert_close(
        "d log_softmax",
        &f64s(&out[5]),
        &arr(&d_ls, &[2, 3]),
        0.0,
        tol,
    );
}

#[test]
fn powers_sqrt_and_norms_at_0_give_jax_limits() {
    // JAX's rules at x = 0: d/dx x^0 = 0 (not 0 * 0^-1 = NaN); d/dx x^2 =
    // 0; d/dy 0^y at y = 2 is 0 (log 0 taken as 0, times 0^2 = 0); d/dx
    // x^0.5 and d/dx sqrt(x) are +inf. The norm sqrt(sum(x^2)) written with
    // where_safe has gradient 0 at x = 0 (the plain form is inf * 0 = NaN,
    // as in JAX) and x / |x| elsewhere. Exact values: tolerance 0 (1e-12
    // for the norm's gradient elsewhere).
    let out = run(
        "pow at 0",
        vec![f64_input(&[0.0], &[]), f64_input(&[0.0, 0.0], &[2])],
        |b, p| {
            let x = &p[0];
            let two = b.scalar(2.0, DType::F64);
            let mut outs = grad(&x.powf(0.0), &[x]);
            outs.extend(grad(&x.powf(2.0), &[x]));
            outs.extend(grad(&x.pow(&two), &[&two]));
            outs.extend(grad(&x.powf(0.5), &[x]));
            outs.extend(grad(&x.sqrt(), &[x]));
            let norm = |v: &Tensor| {
                let sq = v.square().sum_all();
                let live = sq.greater(&sq.zeros_like());
                live.where_safe(&sq, 1.0, |t| t.sqrt(), &sq.zeros_like())
            };
            outs.extend(grad(&norm(&p[1]), &[&p[1]]));
            let v = b.constant(&[3.0f64, -4.0], &[2]);
            outs.extend(grad(&norm(&(&p[1] + &v)), &[&p[1]]));
            outs
        },
    );
    let scalar = |i: usize| only(&f64s(&out[i]));
    assert_eq!(scalar(0), 0.0, "d/dx x^0 at 0");
    assert_eq!(scalar(1), 0.0, "d/dx x^2 at 0");
    assert_eq!(scalar(2), 0.0, "d/dy 0^y at y = 2");
    assert_eq!(scalar(3), f64::INFINITY, "d/dx x^0.5 at 0");
    assert_eq!(scalar(4), f64::INFINITY, "d/dx sqrt(x) at 0");
    assert_close(
        "d norm at 0",
        &f64s(&out[5]),
        &arr(&[0.0, 0.0], &[2]),
        0.0,
        0.0,
    );
    let unit = arr(&[0.6, -0.8], &[2]);
    assert_close("d norm at (3, -4)", &f64s(&out[6]), &unit, 0.0, 1e-12);
}

#[test]
fn take_of_rows_5_and_minus_1_from_5_rows_follows_its_mode() {
    // take of rows [5, -1] from a [5, 2] table. Clip reads rows 4 and 0
    // and sends the cotangent c to them; Fill(-7) reads -7 and drops the
    // gradient; the checked mode reads like clip and counts 2 bad ids.
    // take_along_axis and a general gather clamp the same way. Exact:
    // tolerance 0.
    let table: Vec<f64> = (0..10).map(f64::from).collect();
    let c = [1.0, 2.0, 3.0, 4.0];
    let out = run(
        "take modes",
        vec![
            f64_input(&table, &[5, 2]),
            i32_input(&[5, -1], &[2]),
            f64_input(&c, &[2, 2]),
            i32_input(&[5, -2], &[2, 1]),
        ],
        |_, p| {
            let (t, ids, c) = (&p[0], &p[1], &p[2]);
            let clip = t.take_with_mode(ids, 0, IndexMode::Clip);
            let fill = t.take_with_mode(ids, 0, IndexMode::Fill(-7.0));
            let (checked, bad) = t.take_checked(ids, 0);
            let d_clip = vjp(&[&clip], &[c], &[t]).remove(0);
            let d_fill = vjp(&[&fill], &[c], &[t]).remove(0);
            let d_default = vjp(&[&t.take(ids, 0)], &[c], &[t]).remove(0);
            let tt = t.reshape(&[2, 5]);
            let along = tt.take_along_axis(&p[3], 1);
            let along_fill = tt.take_along_axis_with_mode(&p[3], 1, IndexMode::Fill(9.0));
            let one = along.ones_like();
            let d_along = vjp(&[&along], &[&one], &[t]).remove(0);
            let d_along_fill = vjp(&[&along_fill], &[&one], &[t]).remove(0);
            let (_, along_bad) = tt.take_along_axis_checked(&p[3], 1);
            vec![
                clip,
                fill,
                checked,
                bad,
                d_clip,
                d_fill,
                d_default,
                along,
                along_fill,
                d_along,
                d_along_fill,
                along_bad,
            ]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    assert_close(
        "clip",
        &g(0),
        &arr(&[8.0, 9.0, 0.0, 1.0], &[2, 2]),
        0.0,
        0.0,
    );
    assert_close("fill", &g(1), &arr(&[-7.0; 4], &[2, 2]), 0.0, 0.0);
    assert_close("checked", &g(2), &g(0), 0.0, 0.0);
    let bad: ArrayD<i32> = out[3].clone().try_into().expect("i32 count");
    assert_eq!(only(&bad), 2, "out-of-range ids counted");
    let mut want = vec![0.0; 10];
    want[8..10].copy_from_slice(&c[..2]);
    want[0..2].copy_from_slice(&c[2..]);
    assert_close("d clip", &g(4), &arr(&want, &[5, 2]), 0.0, 0.0);
    assert_close("d fill", &g(5), &arr(&[0.0; 10], &[5, 2]), 0.0, 0.0);
    assert_close("d default (clip)", &g(6), &arr(&want, &[5, 2]), 0.0, 0.0);
    // tt = [[0..5], [5..10]]; indices [[5], [-2]] clip to 4 and 0.
    assert_close("along clip", &g(7), &arr(&[4.0, 5.0], &[2, 1]), 0.0, 0.0);
    assert_close("along fill", &g(8), &arr(&[9.0, 9.0], &[2, 1]), 0.0, 0.0);
    let mut want = vec![0.0; 10];
    want[4] = 1.0;
    want[5] = 1.0;
    assert_close("d along clip", &g(9), &arr(&want, &[5, 2]), 0.0, 0.0);
    assert_close("d along fill", &g(10), &arr(&[0.0; 10], &[5, 2]), 0.0, 0.0);
    let along_bad: ArrayD<i32> = out[11].clone().try_into().expect("i32 count");
    assert_eq!(
        only(&along_bad),
        2,
        "out-of-range ids of take_along_axis counted"
    );
}

#[test]
fn one_hot_and_dynamic_slice_follow_their_mode() {
    // one_hot of [5, -1] at depth 5: the default (fill 0) gives zero rows,
    // Clip puts the one at 4 and 0, Fill(-1) fills the rows with -1.
    // dynamic_slice of [0, 1, 2, 3, 4] at start 3, size 4: Clip moves the
    // start to 1 and its gradient lands on elements 1..5; Fill(9) reads
    // [3, 4, 9, 9] and the gradient of the two filled slots is dropped;
    // the checked mode reads like Clip and counts the one bad start.
    // Exact: tolerance 0.
    let c = [1.0, 2.0, 3.0, 4.0];
    let out = run(
        "one_hot and dynamic_slice modes",
        vec![
            i32_input(&[5, -1], &[2]),
            f64_input(&[0.0, 1.0, 2.0, 3.0, 4.0], &[5]),
            f64_input(&c, &[4]),
        ],
        |b, p| {
            let ids = &p[0];
            let start = b.scalar(3.0, DType::I32);
            let clip = p[1].dynamic_slice_with_mode(&[&start], &[4], IndexMode::Clip);
            let fill = p[1].dynamic_slice_with_mode(&[&start], &[4], IndexMode::Fill(9.0));
            let d_clip = vjp(&[&clip], &[&p[2]], &[&p[1]]).remove(0);
            let d_fill = vjp(&[&fill], &[&p[2]], &[&p[1]]).remove(0);
            let (checked, bad) = p[1].dynamic_slice_checked(&[&start], &[4]);
            let inside = b.scalar(1.0, DType::I32);
            let (_, good) = p[1].dynamic_slice_checked(&[&inside], &[4]);
            vec![
                ids.one_hot(5, DType::F64),
                ids.one_hot_with_mode(5, DType::F64, IndexMode::Clip),
                ids.one_hot_with_mode(5, DType::F64, IndexMode::Fill(-1.0)),
                clip,
                fill,
                d_clip,
                d_fill,
                checked,
                bad.convert(DType::F64),
                good.convert(DType::F64),
            ]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    assert_close("one_hot", &g(0), &arr(&[0.0; 10], &[2, 5]), 0.0, 0.0);
    let mut want = vec![0.0; 10];
    want[4] = 1.0;
    want[5] = 1.0;
    assert_close("one_hot clip", &g(1), &arr(&want, &[2, 5]), 0.0, 0.0);
    assert_close("one_hot fill", &g(2), &arr(&[-1.0; 10], &[2, 5]), 0.0, 0.0);
    assert_close(
        "slice clip",
        &g(3),
        &arr(&[1.0, 2.0, 3.0, 4.0], &[4]),
        0.0,
        0.0,
    );
    assert_close(
        "slice fill",
        &g(4),
        &arr(&[3.0, 4.0, 9.0, 9.0], &[4]),
        0.0,
        0.0,
    );
    let d_clip = arr(&[0.0, 1.0, 2.0, 3.0, 4.0], &[5]);
    assert_close("d slice clip", &g(5), &d_clip, 0.0, 0.0);
    let d_fill = arr(&[0.0, 0.0, 0.0, 1.0, 2.0], &[5]);
    assert_close("d slice fill", &g(6), &d_fill, 0.0, 0.0);
    assert_close("slice checked", &g(7), &g(3), 0.0, 0.0);
    assert_close(
        "start 3 + 4 > 5 counted",
        &g(8),
        &arr(&[1.0], &[]),
        0.0,
        0.0,
    );
    assert_close(
        "start 1 + 4 <= 5 not counted",
        &g(9),
        &arr(&[0.0], &[]),
        0.0,
        0.0,
    );
}

#[test]
fn scan_of_length_0_and_1() {
    // body: carry' = carry * x + 1, y = 2 * carry. Length 0: carry
    // unchanged, ys of shape [0, 2], d carry_out / d carry = identity.
    // Length 1 with x0: carry' = c x0 + 1, ys = [2c]; with cotangents r for
    // the carry and q for ys, d/dc = r x0 + 2 q. A while loop whose
    // condition is false at once returns its state. f64: tolerance 1e-12.
    let c0 = [1.5, -2.0];
    let x1 = [3.0, 0.5];
    let r = [0.7, -1.3];
    let q = [0.2, 0.4];
    let out = run(
        "scan lengths",
        vec![
            f64_input(&c0, &[2]),
            f64_input(&[], &[0, 2]),
            f64_input(&x1, &[1, 2]),
            f64_input(&r, &[2]),
            f64_input(&q, &[1, 2]),
        ],
        |b, p| {
            let body =
                |c: &[Tensor], x: &[Tensor]| (vec![&(&c[0] * &x[0]) + 1.0], vec![&c[0] * 2.0]);
            let (c_empty, ys_empty) = b.scan(0, &[&p[0]], &[&p[1]], body);
            let d_empty = vjp(&[&c_empty[0]], &[&p[3]], &[&p[0], &p[1]]);
            let (c_one, ys_one) = b.scan(1, &[&p[0]], &[&p[2]], body);
            let d_one = vjp(&[&c_one[0], &ys_one[0]], &[&p[3], &p[4]], &[&p[0]]);
            let never = b.while_loop(
                &[&p[0]],
                |s| s[0].sum_all().greater(&b.scalar(100.0, DType::F64)),
                |s| vec![&s[0] * 2.0],
            );
            vec![
                c_empty[0].clone(),
                ys_empty[0].clone(),
                d_empty[0].clone(),
                d_empty[1].clone(),
                c_one[0].clone(),
                ys_one[0].clone(),
                d_one[0].clone(),
                never[0].clone(),
            ]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    let tol = 1e-12;
    assert_close("carry, length 0", &g(0), &arr(&c0, &[2]), 0.0, 0.0);
    assert_eq!(g(1).shape(), &[0, 2], "ys, length 0");
    assert_close("d carry, length 0", &g(2), &arr(&r, &[2]), 0.0, 0.0);
    assert_eq!(g(3).shape(), &[0, 2], "d xs, length 0");
    let c1: Vec<f64> = (0..2).map(|i| c0[i] * x1[i] + 1.0).collect();
    assert_close("carry, length 1", &g(4), &arr(&c1, &[2]), 0.0, tol);
    let y1: Vec<f64> = c0.iter().map(|c| 2.0 * c).collect();
    assert_close("ys, length 1", &g(5), &arr(&y1, &[1, 2]), 0.0, tol);
    let d1: Vec<f64> = (0..2).map(|i| r[i] * x1[i] + 2.0 * q[i]).collect();
    assert_close("d carry, length 1", &g(6), &arr(&d1, &[2]), 0.0, tol);
    assert_close("while, no iteration", &g(7), &arr(&c0, &[2]), 0.0, 0.0);
}

#[test]
fn zero_size_dims_give_the_empty_reductions_and_products() {
    // Reductions over an empty axis give their identities (sum 0, max
    // -inf, min +inf) and a mean of nothing is NaN (0 / 0, as in NumPy);
    // a product over an empty contraction is zeros, and its gradient is
    // empty; empty operands pass through softmax, take, concatenate, pad
    // and a zero-length slice, forward and backward (the pad value of a
    // [2, 3] result padded from nothing gets gradient 6). Exact: tolerance 0.
    let w = array![[1.0, 2.0, 3.0]].into_dyn();
    let out = run(
        "zero-size dims",
        vec![
            f64_input(&[], &[0, 3]),
            f64_input(&[], &[2, 0]),
            i32_input(&[], &[0]),
            w.clone().into(),
            f64_input(&[0.5], &[]),
        ],
        |_, p| {
            let (x, a) = (&p[0], &p[1]);
            let prod = a.matmul(x);
            let d_a = grad(&prod.sum_all(), &[a]).remove(0);
            let table = Tensor::concatenate(&[x, &p[3]], 0);
            let padded = x.pad(&p[4], &[1, 0], &[1, 0], &[0, 0]);
            let empty_slice = p[3].narrow(1, 1, 0);
            let loss = padded.sum_all() + empty_slice.sum_all() + table.sum_all();
            let d = grad(&loss, &[x, &p[3], &p[4]]);
            vec![
                x.sum(&[0], false),
                x.reduce_max(&[0], false),
                x.reduce_min(&[0], false),
                x.mean(&[0], false),
                prod,
                d_a,
                x.softmax(1),
                table.take(&p[2], 0),
                table,
                padded,
                d[0].clone(),
                d[1].clone(),
                d[2].clone(),
            ]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    assert_close("sum", &g(0), &arr(&[0.0; 3], &[3]), 0.0, 0.0);
    assert_close("max", &g(1), &arr(&[f64::NEG_INFINITY; 3], &[3]), 0.0, 0.0);
    assert_close("min", &g(2), &arr(&[f64::INFINITY; 3], &[3]), 0.0, 0.0);
    assert!(g(3).iter().all(|v| v.is_nan()), "mean of nothing: {}", g(3));
    assert_close(
        "matmul over k = 0",
        &g(4),
        &arr(&[0.0; 6], &[2, 3]),
        0.0,
        0.0,
    );
    assert_eq!(g(5).shape(), &[2, 0], "d a");
    assert_eq!(g(6).shape(), &[0, 3], "softmax");
    assert_eq!(g(7).shape(), &[0, 3], "take of no ids");
    assert_close("concatenate", &g(8), &w, 0.0, 0.0);
    assert_close("pad of nothing", &g(9), &arr(&[0.5; 6], &[2, 3]), 0.0, 0.0);
    assert_eq!(g(10).shape(), &[0, 3], "d x");
    assert_close("d w", &g(11), &arr(&[1.0; 3], &[1, 3]), 0.0, 0.0);
    assert_close("d pad value", &g(12), &arr(&[6.0], &[]), 0.0, 0.0);
}

#[test]
fn empty_dims_without_a_meaning_are_trace_errors_naming_the_op() {
    // argmax over an empty axis has no index to give, and a lookup in a
    // table with no rows has no row to clip to: both are refused when
    // traced, naming the op, the operand and the caller's line.
    let b = axle::compiler::FunctionBuilder::new("empty argmax");
    let x = b.param("x", DType::F32, &[3, 0]);
    let err = b.build(&[("i", &x.argmax(1, false))]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("argmax at tests/compiler_numerics.rs:"),
        "{text}"
    );
    assert!(text.contains("axis 1 of f32[3,0] is empty"), "{text}");
    let b = axle::compiler::FunctionBuilder::new("empty take");
    let t = b.param("t", DType::F32, &[0, 4]);
    let ids = b.param("ids", DType::I32, &[2]);
    let err = b.build(&[("rows", &t.take(&ids, 0))]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("take at tests/compiler_numerics.rs:"),
        "{text}"
    );
    assert!(text.contains("f32[0,4]"), "{text}");
}

#[test]
fn general_gather_clips_or_fills_whole_slices() {
    // x = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]. Point lookups at
    // (0, 1), (2, 3), (1, -1), (3, 0): Clip reads 1, 11, x[1, 0] = 4,
    // x[2, 0] = 8 and sends cotangents 1, 2, 3, 4 there; Fill(-1) reads
    // -1 for the last two and drops their gradient. 2x2 windows at (0, 0)
    // and (2, 3): Clip moves the second to (1, 2), Fill(-1) fills all of it.
    // Exact: tolerance 0.
    let x: Vec<f64> = (0..12).map(f64::from).collect();
    let point = GatherDims {
        offset_dims: vec![],
        collapsed_slice_dims: vec![0, 1],
        start_index_map: vec![0, 1],
        index_vector_dim: 1,
        slice_sizes: vec![1, 1],
        ..GatherDims::default()
    };
    let window = GatherDims {
        offset_dims: vec![1, 2],
        collapsed_slice_dims: vec![],
        start_index_map: vec![0, 1],
        index_vector_dim: 1,
        slice_sizes: vec![2, 2],
        ..GatherDims::default()
    };
    let out = run(
        "gather modes",
        vec![
            f64_input(&x, &[3, 4]),
            i32_input(&[0, 1, 2, 3, 1, -1, 3, 0], &[4, 2]),
            f64_input(&[1.0, 2.0, 3.0, 4.0], &[4]),
            i32_input(&[0, 0, 2, 3], &[2, 2]),
        ],
        |_, p| {
            let (x, ids, c) = (&p[0], &p[1], &p[2]);
            let clip = x.gather_with_mode(ids, point.clone(), IndexMode::Clip);
            let fill = x.gather_with_mode(ids, point.clone(), IndexMode::Fill(-1.0));
            let d_clip = vjp(&[&clip], &[c], &[x]).remove(0);
            let d_fill = vjp(&[&fill], &[c], &[x]).remove(0);
            let w_clip = x.gather(&p[3], window.clone());
            let w_fill = x.gather_with_mode(&p[3], window.clone(), IndexMode::Fill(-1.0));
            vec![clip, fill, d_clip, d_fill, w_clip, w_fill]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    assert_close("clip", &g(0), &arr(&[1.0, 11.0, 4.0, 8.0], &[4]), 0.0, 0.0);
    assert_close(
        "fill",
        &g(1),
        &arr(&[1.0, 11.0, -1.0, -1.0], &[4]),
        0.0,
        0.0,
    );
    let mut want = vec![0.0; 12];
    want[1] = 1.0;
    want[11] = 2.0;
    want[4] = 3.0;
    want[8] = 4.0;
    assert_close("d clip", &g(2), &arr(&want, &[3, 4]), 0.0, 0.0);
    want[4] = 0.0;
    want[8] = 0.0;
    assert_close("d fill", &g(3), &arr(&want, &[3, 4]), 0.0, 0.0);
    let w_clip = [0.0, 1.0, 4.0, 5.0, 6.0, 7.0, 10.0, 11.0];
    assert_close("window clip", &g(4), &arr(&w_clip, &[2, 2, 2]), 0.0, 0.0);
    let w_fill = [0.0, 1.0, 4.0, 5.0, -1.0, -1.0, -1.0, -1.0];
    assert_close("window fill", &g(5), &arr(&w_fill, &[2, 2, 2]), 0.0, 0.0);
}

#[test]
fn i64_and_u64_reductions_keep_64_bit_values_and_identities_exact() {
    // 64-bit integer constants must not pass through f64 (which rounds
    // i64::MAX to 2^63, out of range). Exact integers: compared with ==.
    // u64 results come back bit-cast to i64 (the host has no u64 arrays):
    // u64::MAX - k reads as -(k + 1).
    let big = 1i64 << 60;
    let x = array![big, big + 1, i64::MAX, i64::MIN + 1].into_dyn();
    let out = run(
        "identities of 64-bit ints",
        vec![x.into(), ArrayD::<i64>::zeros(IxDyn(&[0, 2])).into()],
        |b, p| {
            let (x, e) = (&p[0], &p[1]);
            let head = x.narrow(0, 0, 2);
            let u = b.constant(&[u64::MAX - 2, u64::MAX - 1, 1u64 << 63], &[3]);
            let e_u = b.constant::<u64>(&[], &[0]);
            vec![
                head.reduce_min(&[0], false),
                head.reduce_max(&[0], false),
                x.reduce_min(&[0], false),
                x.reduce_max(&[0], false),
                e.reduce_min(&[0], false),
                e.reduce_max(&[0], false),
                x.reduce_window(ReduceKind::Min, &[2], &[1], &[(0, 1)]),
                u.narrow(0, 0, 2)
                    .reduce_min(&[0], false)
                    .bitcast_convert(DType::I64),
                u.reduce_max(&[0], false).bitcast_convert(DType::I64),
                e_u.reduce_min(&[0], false).bitcast_convert(DType::I64),
                e_u.reduce_max(&[0], false).bitcast_convert(DType::I64),
            ]
        },
    );
    let i = |k: usize| -> ArrayD<i64> { out[k].clone().try_into().expect("an i64 result") };
    assert_eq!(only(&i(0)), big, "min of [2^60, 2^60 + 1]");
    assert_eq!(only(&i(1)), big + 1, "max of [2^60, 2^60 + 1]");
    assert_eq!(only(&i(2)), i64::MIN + 1, "min");
    assert_eq!(only(&i(3)), i64::MAX, "max");
    assert_eq!(i(4).as_slice().unwrap(), &[i64::MAX; 2], "empty min");
    assert_eq!(i(5).as_slice().unwrap(), &[i64::MIN; 2], "empty max");
    assert_eq!(
        i(6).as_slice().unwrap(),
        &[big, big + 1, i64::MIN + 1, i64::MIN + 1],
        "window min, padded with i64::MAX"
    );
    assert_eq!(only(&i(7)), -3, "u64 min: u64::MAX - 2");
    assert_eq!(only(&i(8)), -2, "u64 max: u64::MAX - 1");
    assert_eq!(only(&i(9)), -1, "empty u64 min: u64::MAX");
    assert_eq!(only(&i(10)), 0, "empty u64 max: 0");
}

#[test]
fn max_min_and_argmax_propagate_nan_in_either_operand_position() {
    // StableHLO, JAX and GPUs propagate NaN through max/min; the runtime
    // turns XLA CPU's fast min/max off. argmax gives the first NaN (as
    // jnp.argmax); softmax/logsumexp of a row holding NaN are NaN.
    // Exact: tolerance 0 (assert_close treats NaN == NaN).
    let nan = f64::NAN;
    let a = [1.0, nan, 3.0, 0.5];
    let b = [nan, 2.0, 1.0, nan];
    let out = run(
        "NaN max",
        vec![f64_input(&a, &[4]), f64_input(&b, &[4])],
        |_, p| {
            let (a, b) = (&p[0], &p[1]);
            vec![
                a.maximum(b),
                b.maximum(a),
                a.minimum(b),
                a.reduce_max(&[0], false),
                b.reduce_min(&[0], false),
                a.cummax(0, false),
                a.reduce_window(ReduceKind::Max, &[2], &[2], &[(0, 0)]),
                a.argmax(0, false),
                b.argmax(0, false),
                a.logsumexp(&[0], false),
                a.softmax(0),
                a.log_softmax(0),
            ]
        },
    );
    let g = |i: usize| f64s(&out[i]);
    let all_nan = arr(&[nan; 4], &[4]);
    let max = arr(&[nan, nan, 3.0, nan], &[4]);
    assert_close("maximum(a, b)", &g(0), &max, 0.0, 0.0);
    assert_close("maximum(b, a)", &g(1), &max, 0.0, 0.0);
    let min = arr(&[nan, nan, 1.0, nan], &[4]);
    assert_close("minimum(a, b)", &g(2), &min, 0.0, 0.0);
    assert!(only(&g(3)).is_nan(), "reduce_max: {}", g(3));
    assert!(only(&g(4)).is_nan(), "reduce_min: {}", g(4));
    assert_close("cummax", &g(5), &arr(&[1.0, nan, nan, nan], &[4]), 0.0, 0.0);
    assert_close("max pool", &g(6), &arr(&[nan, 3.0], &[2]), 0.0, 0.0);
    let idx = |i: usize| -> i32 {
        let a: ArrayD<i32> = out[i].clone().try_into().expect("an i32 result");
        only(&a)
    };
    assert_eq!(idx(7), 1, "argmax of [1, NaN, 3, 0.5]");
    assert_eq!(idx(8), 0, "argmax of [NaN, 2, 1, NaN]");
    assert!(only(&g(9)).is_nan(), "logsumexp: {}", g(9));
    assert_close("softmax", &g(10), &all_nan, 0.0, 0.0);
    assert_close("log_softmax", &g(11), &all_nan, 0.0, 0.0);
}

#[test]
fn clamp_pow_and_fill_slices_follow_jax_at_the_edges() {
    // clamp (JAX's lax.clamp JVP): x gets the cotangent only strictly
    // inside (lo < x < hi), so clip(0, 1) of [0, 1, 0.5, 2, -1] passes
    // [0, 0, 1, 0, 0]; lo gets the cotangent where lo > x, hi where hi < x.
    // pow (JAX's _pow_jvp_rhs): d/dy (-2)^3 = log(-2) * -8 = NaN; d/dx is
    // 3 * (-2)^2 = 12. dynamic_slice Fill(-1) of [0..5) at a u32 start of
    // u32::MAX, size 2: wholly outside, so [-1, -1] (start + size must not
    // wrap to 1). Exact: tolerance 0.
    let x = [0.0, 1.0, 0.5, 2.0, -1.0];
    let out = run(
        "clamp and pow edges",
        vec![f64_input(&x, &[5]), f64_input(&[-2.0], &[])],
        |b, p| {
            let (x, base) = (&p[0], &p[1]);
            let lo = b.scalar(0.0, DType::F64);
            let hi = b.scalar(1.0, DType::F64);
            let y = x.clamp(&lo, &hi).sum_all();
            let mut outs = grad(&y, &[x, &lo, &hi]);
            let three = b.scalar(3.0, DType::F64);
            outs.extend(grad(&base.pow(&three), &[base, &three]));
            let table = b.constant(&[0.0f64, 1.0, 2.0, 3.0, 4.0], &[5]);
            let start = b.constant(&[u32::MAX], &[]);
            outs.push(table.dynamic_slice_with_mode(&[&start], &[2], IndexMode::Fill(-1.0)));
            outs
        },
    );
    let g = |i: usize| f64s(&out[i]);
    let d_x = arr(&[0.0, 0.0, 1.0, 0.0, 0.0], &[5]);
    assert_close("d clamp / dx", &g(0), &d_x, 0.0, 0.0);
    assert_eq!(only(&g(1)), 1.0, "d clamp / d lo: only x = -1 is below");
    assert_eq!(only(&g(2)), 1.0, "d clamp / d hi: only x = 2 is above");
    assert_eq!(only(&g(3)), 12.0, "d/dx x^3 at -2");
    assert!(only(&g(4)).is_nan(), "d/dy (-2)^y at 3: {}", g(4));
    assert_close(
        "fill slice at u32::MAX",
        &g(5),
        &arr(&[-1.0, -1.0], &[2]),
        0.0,
        0.0,
    );
}

#[test]
fn int_means_duplicate_results_and_composite_errors_are_refused_at_the_caller() {
    // mean of integers would truncate (JAX returns a float): refused. Two
    // results with one name: refused by build. A composite's bad axis is
    // reported at the caller's line, not inside the library.
    let b = axle::compiler::FunctionBuilder::new("int mean");
    let x = b.param("x", DType::I32, &[3]);
    let err = b.build(&[("m", &x.mean_all())]).unwrap_err();
    assert_eq!(err.op, "mean", "{err}");
    assert!(
        err.message.contains("i32[3]") && err.message.contains("convert"),
        "{err}"
    );
    let b = axle::compiler::FunctionBuilder::new("duplicate");
    let x = b.param("x", DType::F32, &[3]);
    let err = b.build(&[("y", &x), ("y", &x.exp())]).unwrap_err();
    assert_eq!(err.op, "build", "{err}");
    assert!(err.message.contains("`y`"), "{err}");
    let b = axle::compiler::FunctionBuilder::new("lse axis");
    let x = b.param("x", DType::F32, &[3]);
    let err = b.build(&[("y", &x.logsumexp(&[5], false))]).unwrap_err();
    assert!(
        err.to_string().contains(" at tests/compiler_numerics.rs:"),
        "{err}"
    );
}

#[test]
fn overflowing_narrow_and_one_hot_sizes_are_trace_errors() {
    // start + len and the one-hot element count overflow: refused, naming
    // the op, instead of an arithmetic-overflow panic or a nonsense type.
    let b = axle::compiler::FunctionBuilder::new("narrow overflow");
    let x = b.param("x", DType::F32, &[4]);
    let err = b.build(&[("y", &x.narrow(0, 2, usize::MAX))]).unwrap_err();
    assert_eq!(err.op, "slice", "{err}");
    assert!(err.message.contains("out of range"), "{err}");
    let b = axle::compiler::FunctionBuilder::new("one_hot overflow");
    let ids = b.param("ids", DType::I32, &[3]);
    let err = b
        .build(&[("y", &ids.one_hot(usize::MAX, DType::F32))])
        .unwrap_err();
    assert_eq!(err.op, "one_hot", "{err}");
    assert!(err.message.contains("overflows"), "{err}");
    // pad sizes that overflow i64 (or do not fit it) are refused.
    for (low, high, interior) in [
        (vec![usize::MAX], vec![0], vec![0]),
        (vec![0], vec![0], vec![usize::MAX]),
        (vec![i64::MAX as usize], vec![1], vec![0]),
    ] {
        let b = axle::compiler::FunctionBuilder::new("pad overflow");
        let x = b.param("x", DType::F32, &[3]);
        let zero = b.scalar(0.0, DType::F32);
        let err = b
            .build(&[("y", &x.pad(&zero, &low, &high, &interior))])
            .unwrap_err();
        assert_eq!(err.op, "pad", "{err}");
        assert!(err.message.contains("overflows"), "{err}");
    }
}

#[test]
fn fill_nan_on_integer_tables_is_refused() {
    // NaN has no i32 value (it would silently read 0): a trace error.
    let b = axle::compiler::FunctionBuilder::new("fill nan");
    let table = b.param("t", DType::I32, &[4, 2]);
    let ids = b.param("ids", DType::I32, &[3]);
    let rows = table.take_with_mode(&ids, 0, IndexMode::Fill(f64::NAN));
    let err = b.build(&[("rows", &rows)]).unwrap_err();
    assert_eq!(err.op, "fill", "{err}");
    assert!(
        err.message.contains("NaN") && err.message.contains("i32"),
        "{err}"
    );
}
