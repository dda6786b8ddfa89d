//! Rematerialization (`remat` with a `RematPolicy`): values and gradients
//! equal those of the same function without remat, outside and inside a
//! scan, gradients agree with f64 central differences, and the lowered
//! program recomputes exactly what the policy does not save.

mod compiler_common;

use axle::compiler::{FunctionBuilder, RematPolicy, Tensor, grad, remat};
use compiler_common::{Rng, assert_close, check_grad, f64s, run};
use ndarray::ArrayD;

/// The region under test: `sin(tanh(x w1) w2)`, with the hidden
/// activation tagged `hidden`.
fn block(x: &Tensor, w1: &Tensor, w2: &Tensor) -> Tensor {
    x.matmul(w1)
        .tanh()
        .checkpoint_name("hidden")
        .matmul(w2)
        .sin()
}

/// `block`, rematerialized under `policy` (or plain when `None`).
fn maybe_remat(policy: &Option<RematPolicy>, p: &[Tensor]) -> Tensor {
    match policy {
        None => block(&p[0], &p[1], &p[2]),
        Some(pol) => remat(pol, &[&p[0], &p[1], &p[2]], |q| {
            vec![block(&q[0], &q[1], &q[2])]
        })
        .remove(0),
    }
}

fn policies() -> Vec<RematPolicy> {
    vec![
        RematPolicy::Full,
        RematPolicy::Dots,
        RematPolicy::Names(vec!["hidden".into()]),
        RematPolicy::Offload(vec!["hidden".into()]),
        RematPolicy::Names(vec!["absent".into()]),
    ]
}

fn inputs() -> Vec<ArrayD<f64>> {
    let mut rng = Rng(7);
    vec![
        rng.array(&[4, 6], -1.0, 1.0),
        rng.array(&[6, 8], -0.5, 0.5),
        rng.array(&[8, 6], -0.5, 0.5),
    ]
}

/// Loss and the gradients of `sum(block(x, w1, w2) * r)` for each policy
/// equal the plain function's. Both run the same f64 ops (the replay is the
/// forward's ops again), so they agree to rounding: 1e-12 relative.
#[test]
fn remat_values_and_gradients_equal_the_plain_function() {
    let host: Vec<axle::backend::HostTensor> = inputs().into_iter().map(Into::into).collect();
    let eval = |policy: Option<RematPolicy>| {
        run("remat", host.clone(), |b, p| {
            let r = b.constant(
                &(0..24).map(|i| (i as f64).cos()).collect::<Vec<_>>(),
                &[4, 6],
            );
            let loss = (&maybe_remat(&policy, p) * &r).sum_all();
            let mut out = vec![loss.clone()];
            out.extend(grad(&loss, &[&p[0], &p[1], &p[2]]));
            out
        })
    };
    let plain = eval(None);
    for policy in policies() {
        let got = eval(Some(policy.clone()));
        for (i, name) in ["loss", "d x", "d w1", "d w2"].iter().enumerate() {
            let what = format!("{policy:?} {name}");
            assert_close(&what, &f64s(&got[i]), &f64s(&plain[i]), 1e-12, 1e-12);
        }
    }
}

/// Gradients through remat against f64 central differences (tolerance in
/// `check_grad`), for every policy.
#[test]
fn remat_gradients_match_finite_differences() {
    for policy in policies() {
        check_grad(&format!("remat {policy:?}"), inputs(), move |_, p| {
            maybe_remat(&Some(policy.clone()), p)
        });
    }
}

/// Inside a 5-step scan (the body carries `h` and rematerializes `block`),
/// values and gradients equal the same scan without remat (1e-12: same f64
/// ops) and the gradient matches central differences.
#[test]
fn remat_inside_scan() {
    let mut rng = Rng(3);
    let ins = vec![
        rng.array(&[2, 6], -1.0, 1.0),
        rng.array(&[5, 2, 6], -1.0, 1.0),
        rng.array(&[6, 8], -0.5, 0.5),
        rng.array(&[8, 6], -0.5, 0.5),
    ];
    let scanned = |policy: Option<RematPolicy>, b: &FunctionBuilder, p: &[Tensor]| {
        let (c, _) = b.scan(5, &[&p[0]], &[&p[1]], |c, x| {
            let h = &c[0] + &x[0];
            let args = [h, p[2].clone(), p[3].clone()];
            (vec![maybe_remat(&policy, &args)], vec![])
        });
        c[0].sum_all()
    };
    let host: Vec<axle::backend::HostTensor> = ins.iter().cloned().map(Into::into).collect();
    let eval = |policy: Option<RematPolicy>| {
        run("remat scan", host.clone(), |b, p| {
            let loss = scanned(policy, b, p);
            let mut out = vec![loss.clone()];
            out.extend(grad(&loss, &[&p[0], &p[1], &p[2], &p[3]]));
            out
        })
    };
    let plain = eval(None);
    for policy in [RematPolicy::Full, RematPolicy::Dots] {
        let got = eval(Some(policy.clone()));
        for i in 0..5 {
            let what = format!("scan {policy:?} result {i}");
            assert_close(&what, &f64s(&got[i]), &f64s(&plain[i]), 1e-12, 1e-12);
        }
        check_grad(
            &format!("scan remat {policy:?}"),
            ins.clone(),
            move |b, p| scanned(Some(policy.clone()), b, p),
        );
    }
}

/// The lowered gradient recomputes what the policy does not save, counted
/// in the StableHLO of (loss, gradients) of `sin(tanh(x w1) w2)`: the
/// forward has 1 `tanh` and 2 `dot_general`, the backward 4 `dot_general`
/// (two per matmul). `Full` replays `tanh` and both matmuls (the `sine`
/// replay is dead: its VJP needs `cos` of the input only); `Dots` replays
/// `tanh` only; `Names(["hidden"])` replays the second matmul only (the
/// tagged `tanh` output is saved). The replay sits behind one
/// `optimization_barrier`, so neither our CSE nor XLA's merges it with the
/// forward ops.
#[test]
fn the_backward_pass_replays_what_the_policy_does_not_save() {
    let count = |policy: Option<RematPolicy>| {
        let b = FunctionBuilder::new("f");
        let p: Vec<Tensor> = [[4, 6], [6, 8], [8, 6]]
            .iter()
            .enumerate()
            .map(|(i, d)| b.param(&format!("p{i}"), axle::compiler::DType::F32, d))
            .collect();
        let loss = maybe_remat(&policy, &p).sum_all();
        let g = grad(&loss, &[&p[0], &p[1], &p[2]]);
        let f = b
            .build(&[("loss", &loss), ("g0", &g[0]), ("g1", &g[1]), ("g2", &g[2])])
            .unwrap();
        let text = f.to_stablehlo();
        let n = |op: &str| text.matches(&format!("\"{op}\"")).count();
        (
            n("stablehlo.tanh"),
            n("stablehlo.dot_general"),
            n("stablehlo.optimization_barrier"),
        )
    };
    assert_eq!(count(None), (1, 6, 0));
    assert_eq!(count(Some(RematPolicy::Full)), (2, 8, 1));
    assert_eq!(count(Some(RematPolicy::Dots)), (2, 6, 1));
    let names = RematPolicy::Names(vec!["hidden".into()]);
    assert_eq!(count(Some(names)), (1, 7, 1));
}

/// `Offload(["hidden"])` replays what `Names(["hidden"])` replays, and
/// the saved value goes to host memory and back as JAX lowers
/// `save_and_offload_only_these_names`: one `annotate_device_placement`
/// to `pinned_host` of the saved value, one to `device` of that result,
/// which enters the barrier. `Names` emits no placement. (That the value
/// lands in host memory on TPU is checked in tests/plan.rs.)
#[test]
fn offload_moves_the_saved_value_to_host_and_back() {
    let text = |policy: RematPolicy| {
        let b = FunctionBuilder::new("f");
        let p: Vec<Tensor> = [[4, 6], [6, 8], [8, 6]]
            .iter()
            .enumerate()
            .map(|(i, d)| b.param(&format!("p{i}"), axle::compiler::DType::F32, d))
            .collect();
        let loss = maybe_remat(&Some(policy), &p).sum_all();
        let g = grad(&loss, &[&p[0], &p[1], &p[2]]);
        let f = b
            .build(&[("loss", &loss), ("g0", &g[0]), ("g1", &g[1]), ("g2", &g[2])])
            .unwrap();
        f.to_stablehlo()
    };
    let offload = text(RematPolicy::Offload(vec!["hidden".into()]));
    let names = text(RematPolicy::Names(vec!["hidden".into()]));
    let placements = |text: &str, kind: &str| -> Vec<String> {
        let attr = format!("_xla_buffer_placement = \"{kind}\"");
        text.lines()
            .filter(|l| l.contains("@annotate_device_placement") && l.contains(&attr))
            .map(|l| l.trim().to_string())
            .collect()
    };
    assert!(placements(&names, "pinned_host").is_empty(), "{names}");
    assert!(placements(&names, "device").is_empty(), "{names}");
    let (to_host, to_device) = (
        placements(&offload, "pinned_host"),
        placements(&offload, "device"),
    );
    assert_eq!((to_host.len(), to_device.len()), (1, 1), "{offload}");
    assert!(
        to_host[0].contains("has_side_effect = true"),
        "{}",
        to_host[0]
    );
    let host_value = to_host[0].split(' ').next().unwrap();
    let device_value = to_device[0].split(' ').next().unwrap();
    assert!(
        to_device[0].contains(&format!("@annotate_device_placement({host_value})")),
        "the device placement reads the host one: {offload}"
    );
    let barrier = offload
        .lines()
        .find(|l| l.contains("stablehlo.optimization_barrier"))
        .unwrap();
    assert!(
        barrier.contains(&format!("{device_value},"))
            || barrier.contains(&format!("{device_value})")),
        "the value back on the device enters the barrier: {barrier}"
    );
    let ops = |t: &str| {
        ["stablehlo.tanh", "stablehlo.dot_general"]
            .map(|op| t.matches(&format!("\"{op}\"")).count())
    };
    assert_eq!(ops(&offload), ops(&names));
}
