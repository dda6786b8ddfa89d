//! Helpers of the compiler tests: a shared CPU client, running traced
//! functions on ndarray inputs, seeded random arrays, tolerance checks and
//! the finite-difference gradient check.

#![allow(dead_code)]

use axle::backend::{HostTensor, compile};
use axle::compiler::{DType, FunctionBuilder, Tensor, grad};
use axle::runtime::Client;
use ndarray::{ArrayD, IxDyn};
use std::sync::OnceLock;

/// One client of the default CPU plugin per test binary.
pub fn client() -> &'static Client {
    static C: OnceLock<Client> = OnceLock::new();
    C.get_or_init(|| {
        Client::cpu(1).expect("the CPU PJRT plugin loads (scripts/test.sh installs it)")
    })
}

/// splitmix64: a tiny deterministic generator for test data.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// An f64 array of `dims` uniform in `[lo, hi)`.
    pub fn array(&mut self, dims: &[usize], lo: f64, hi: f64) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(dims), || self.uniform(lo, hi))
    }
    /// An f32 array of `dims` uniform in `[lo, hi)`.
    pub fn array_f32(&mut self, dims: &[usize], lo: f64, hi: f64) -> ArrayD<f32> {
        self.array(dims, lo, hi).mapv(|v| v as f32)
    }
}

/// Builds a function with the given parameters, compiles it on the CPU
/// plugin and runs it on `inputs`.
pub fn run(
    name: &str,
    inputs: Vec<HostTensor>,
    f: impl FnOnce(&FunctionBuilder, &[Tensor]) -> Vec<Tensor>,
) -> Vec<HostTensor> {
    let b = FunctionBuilder::new(name);
    let params: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| b.param(&format!("p{i}"), x.dtype(), x.dims()))
        .collect();
    let outs = f(&b, &params);
    let named: Vec<(String, &Tensor)> = outs
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("r{i}"), t))
        .collect();
    let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let func = b
        .build(&refs)
        .unwrap_or_else(|e| panic!("{name}: trace error: {e}"));
    let prog =
        compile(client(), &func).unwrap_or_else(|e| panic!("{name}: {e}\n{}", func.to_stablehlo()));
    prog.run(&inputs).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The f32 array inside a result.
pub fn f32s(h: &HostTensor) -> ArrayD<f32> {
    h.clone().try_into().expect("an f32 result")
}

/// The f64 array inside a result.
pub fn f64s(h: &HostTensor) -> ArrayD<f64> {
    h.clone().try_into().expect("an f64 result")
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise and equal shapes.
pub fn assert_close(what: &str, got: &ArrayD<f64>, want: &ArrayD<f64>, rtol: f64, atol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        let ok = (g - w).abs() <= atol + rtol * w.abs() || (g.is_nan() && w.is_nan()) || g == w;
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w} (rtol {rtol}, atol {atol})\ngot  {got}\nwant {want}"
        );
    }
}

/// [`assert_close`] for an f32 result against an f64 reference.
pub fn assert_close32(what: &str, got: &HostTensor, want: &ArrayD<f64>, rtol: f64, atol: f64) {
    assert_close(what, &f32s(got).mapv(f64::from), want, rtol, atol);
}

/// Checks the VJP of `f` against central finite differences in f64.
///
/// The scalar loss is `sum(f(x) * r)` with a fixed random cotangent `r`, so
/// the whole VJP of `f` is exercised. For random directions `v`,
/// `(L(x + eps v) - L(x - eps v)) / (2 eps)` must equal `<grad L, v>`.
/// With eps = 1e-6 in f64 the truncation error is O(eps^2) ~ 1e-12 and the
/// rounding error O(1e-16 / eps) ~ 1e-10 relative to |L|, so a tolerance of
/// 1e-6 * (1 + |grad| |v|) leaves three orders of margin while any wrong
/// rule (a missing factor, a wrong transpose) shows up at O(1).
pub fn check_grad(
    name: &str,
    inputs: Vec<ArrayD<f64>>,
    f: impl Fn(&FunctionBuilder, &[Tensor]) -> Tensor,
) {
    let seed = 0xC0FFEE ^ name.len() as u64;
    let b = FunctionBuilder::new(name);
    let params: Vec<Tensor> = inputs
        .iter()
        .enumerate()
        .map(|(i, x)| b.param(&format!("p{i}"), DType::F64, x.shape()))
        .collect();
    let out = f(&b, &params);
    let mut rng = Rng(seed);
    let r_data: Vec<f64> = (0..out.numel()).map(|_| rng.uniform(-1.0, 1.0)).collect();
    let r = b.constant(&r_data, out.dims());
    let loss = (&out * &r).sum_all();
    let wrt: Vec<&Tensor> = params.iter().collect();
    let grads = grad(&loss, &wrt);
    let mut results = vec![("loss".to_string(), &loss)];
    for (i, g) in grads.iter().enumerate() {
        results.push((format!("g{i}"), g));
    }
    let refs: Vec<(&str, &Tensor)> = results.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let func = b
        .build(&refs)
        .unwrap_or_else(|e| panic!("{name}: trace error: {e}"));
    let prog =
        compile(client(), &func).unwrap_or_else(|e| panic!("{name}: {e}\n{}", func.to_stablehlo()));
    let eval = |xs: &[ArrayD<f64>]| -> Vec<ArrayD<f64>> {
        let hs: Vec<HostTensor> = xs.iter().map(|x| x.clone().into()).collect();
        prog.run(&hs)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .iter()
            .map(f64s)
            .collect()
    };
    let base = eval(&inputs);
    let eps = 1e-6;
    for _ in 0..2 {
        let v: Vec<ArrayD<f64>> = inputs
            .iter()
            .map(|x| rng.array(x.shape(), -1.0, 1.0))
            .collect();
        let plus: Vec<ArrayD<f64>> = inputs.iter().zip(&v).map(|(x, d)| x + &(d * eps)).collect();
        let minus: Vec<ArrayD<f64>> = inputs.iter().zip(&v).map(|(x, d)| x - &(d * eps)).collect();
        let fd = (eval(&plus)[0].sum() - eval(&minus)[0].sum()) / (2.0 * eps);
        let dot: f64 = base[1..].iter().zip(&v).map(|(g, d)| (g * d).sum()).sum();
        let gnorm: f64 = base[1..]
            .iter()
            .map(|g| g.mapv(|x| x * x).sum())
            .sum::<f64>()
            .sqrt();
        let vnorm: f64 = v
            .iter()
            .map(|d| d.mapv(|x| x * x).sum())
            .sum::<f64>()
            .sqrt();
        let tol = 1e-6 * (1.0 + gnorm * vnorm);
        assert!(
            (fd - dot).abs() <= tol,
            "{name}: finite difference {fd} vs vjp {dot} (tol {tol})"
        );
    }
}
