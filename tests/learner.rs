//! The learner against values computed independently of it: every
//! schedule at every count of a small case and every optimizer for five
//! steps (one of them with parameter groups: rate multipliers and decay
//! masks by path), against `tests/golden/learner_reference.json` (written by
//! `tests/learner_reference.py`, a float64 numpy implementation from the
//! published formulas), the issue's warm-up + cosine case against its
//! closed form, config defaults through `--set`, and optimizer state
//! sharded like its parameter under FSDP.

use axle::backend::{Program, compile};
use axle::compiler::{DType, FunctionBuilder, Tensor};
use axle::experiment::resolve_config;
use axle::learner::{LearnerConfig, OptimizerConfig, ParamUpdate, STEP, Schedule};
use axle::run::RunOptions;
use axle::runtime::Client;
use axle::train_step::build_train_step;
use ndarray::ArrayD;
use serde_json::Value;
use std::collections::BTreeMap;
use std::f64::consts::PI;

fn reference() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/learner_reference.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// The traced rate of `schedule` at counts `0..n`, evaluated in one
/// program on a vector of counts (every schedule op is elementwise).
fn traced_rates(client: &Client, schedule: &Schedule, n: usize) -> Vec<f64> {
    let b = FunctionBuilder::new("schedule");
    let count = b.param("count", DType::I32, &[n]);
    // A constant schedule is a rank-0 constant: broadcast it.
    let rate = schedule
        .learning_rate(&count.convert(DType::F32))
        .broadcast_to(&[n]);
    let program = compile(client, &b.build(&[("rate", &rate)]).unwrap()).unwrap();
    let counts = ArrayD::from_shape_fn(vec![n], |i| i[0] as i32);
    let out = program.run(&[counts.into()]).unwrap();
    let rate: ArrayD<f32> = out.into_iter().next().unwrap().try_into().unwrap();
    rate.iter().map(|&x| f64::from(x)).collect()
}

/// f32 evaluation of the step arithmetic and of `cos`/`rsqrt`/`pow` is
/// good to a few ulps (~1e-7) of the largest rate involved, so each value
/// must be within 1e-6 of the schedule's largest rate: 8 ulps of margin,
/// and 100x smaller than the one-update shift the issue was about.
#[test]
fn every_schedule_matches_the_reference_at_every_count() {
    let client = Client::cpu(1).unwrap();
    let reference = reference();
    for case in reference["schedules"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let schedule: Schedule = serde_json::from_value(case["schedule"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        schedule
            .validate("learner.schedule")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = floats(&case["rates"]);
        let got = traced_rates(&client, &schedule, want.len());
        let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let table: Vec<String> = (0..want.len())
            .map(|c| format!("count {c:2}: {:.7} want {:.7}", got[c], want[c]))
            .collect();
        for c in 0..want.len() {
            assert!(
                (got[c] - want[c]).abs() <= 1e-6 * scale,
                "{name} at count {c}:\n{}",
                table.join("\n")
            );
        }
    }
}

/// The issue's case, W = 4, total 12, peak 0.1, against the closed form of
/// the 1-based convention: `0.1 * s / 4` for `s = count + 1 < 4`, then
/// `0.05 * (1 + cos(pi * (s - 4) / 8))`. The peak is used once (count 3)
/// and count 4 gets `0.05 * (1 + cos(pi / 8)) = 0.0961939766`.
#[test]
fn warmup_cosine_w4_t12_has_one_peak_and_decays_from_the_next_update() {
    let schedule = Schedule::WarmupCosine {
        peak_lr: 0.1,
        warmup_steps: 4,
        total_steps: 12,
        final_lr: 0.0,
    };
    let got = traced_rates(&Client::cpu(1).unwrap(), &schedule, 14);
    let closed = |count: usize| {
        let s = (count + 1) as f64;
        if s < 4.0 {
            0.1 * s / 4.0
        } else {
            0.05 * (1.0 + (PI * (s - 4.0).min(8.0) / 8.0).cos())
        }
    };
    for (count, rate) in got.iter().enumerate() {
        assert!(
            (rate - closed(count)).abs() <= 1e-7,
            "count {count}: {rate} vs {}",
            closed(count)
        );
    }
    assert!((got[4] - 0.096_193_976_6).abs() < 1e-7, "{}", got[4]);
    assert_eq!(got.iter().filter(|&&r| r == got[3]).count(), 1, "{got:?}");
}

/// One step of `learner` on the reference parameters: parameters,
/// gradients, optimizer state (`opt/<slot>/<name>` and the step counter)
/// in, new parameters and state out, in the order of `carried`.
fn optimizer_program(
    client: &Client,
    learner: &LearnerConfig,
    params: &[(String, Vec<usize>, bool)],
) -> (Program, Vec<(String, Vec<usize>)>) {
    let b = FunctionBuilder::new("learner");
    let values: Vec<Tensor> = params
        .iter()
        .map(|(n, s, _)| b.param(n, DType::F32, s))
        .collect();
    let grads: Vec<Tensor> = params
        .iter()
        .map(|(n, s, _)| b.param(&format!("grad/{n}"), DType::F32, s))
        .collect();
    let mut state = BTreeMap::new();
    let mut carried: Vec<(String, Vec<usize>)> = params
        .iter()
        .map(|(n, s, _)| (n.clone(), s.clone()))
        .collect();
    for (name, shape, _) in params {
        for slot in learner.optimizer.slots(shape) {
            let key = format!("opt/{}/{name}", slot.name);
            let dims = slot.shape(shape);
            state.insert(key.clone(), b.param(&key, DType::F32, &dims));
            carried.push((key, dims));
        }
    }
    state.insert(STEP.to_string(), b.param(STEP, DType::I32, &[]));
    let updates: Vec<ParamUpdate<'_>> = params
        .iter()
        .zip(values.iter().zip(&grads))
        .map(|((path, _, decay), (value, grad))| ParamUpdate {
            path,
            value,
            grad,
            decay: *decay,
        })
        .collect();
    let update = learner.apply(&updates, &state);
    let mut results: Vec<(&str, &Tensor)> = Vec::new();
    for (name, _) in &carried {
        let t = update
            .params
            .get(name)
            .unwrap_or_else(|| &update.state[name]);
        results.push((name, t));
    }
    results.push((STEP, &update.state[STEP]));
    let program = compile(client, &b.build(&results).unwrap()).unwrap();
    (program, carried)
}

/// Five steps of every optimizer against the float64 reference, feeding
/// each step's outputs back in. Tolerance: relative 1e-5, i.e. ~80 f32 ulps.
/// Each step is a dozen or so f32 operations on values of order 1 (a few
/// ulps each), and state and parameters carry their rounding into the next
/// step, so after five steps errors of a few tens of ulps are expected;
/// 1e-5 bounds them while a wrong formula (a missing bias correction, `t`
/// off by one, a misplaced epsilon, a transposed factor) moves values by
/// 1e-3 or more. Entries near zero (momentum of an oscillating gradient)
/// are held to 1e-6 of their tensor's largest entry instead: their
/// rounding is set by the terms that cancelled, not by their own size.
#[test]
fn every_optimizer_matches_the_reference_for_five_steps() {
    let client = Client::cpu(1).unwrap();
    let reference = reference();
    let inputs = &reference["optimizer_inputs"];
    let lr = inputs["lr"].as_f64().unwrap();
    let params: Vec<(String, Vec<usize>, bool)> = inputs["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let shape = p["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            let name = p["name"].as_str().unwrap().to_string();
            (name, shape, p["decay"].as_bool().unwrap())
        })
        .collect();
    let array = |shape: &[usize], values: Vec<f64>| {
        ArrayD::from_shape_vec(shape.to_vec(), values.iter().map(|&x| x as f32).collect()).unwrap()
    };
    for case in reference["optimizers"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let optimizer: OptimizerConfig = serde_json::from_value(case["optimizer"].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let learner = LearnerConfig {
            optimizer,
            schedule: Schedule::Constant { lr },
            max_grad_norm: None,
            param_groups: serde_json::from_value(case["param_groups"].clone()).unwrap(),
            ..LearnerConfig::default()
        };
        learner
            .check_groups(params.iter().map(|p| p.0.as_str()))
            .unwrap();
        learner.validate().unwrap();
        let (program, carried) = optimizer_program(&client, &learner, &params);
        let mut values: Vec<ArrayD<f32>> = carried
            .iter()
            .map(
                |(key, shape)| match params.iter().position(|p| &p.0 == key) {
                    Some(i) => array(shape, floats(&inputs["params"][i]["value"])),
                    None => ArrayD::zeros(shape.clone()),
                },
            )
            .collect();
        let mut step = ArrayD::from_elem(vec![], 0i32);
        for (k, want) in case["steps"].as_array().unwrap().iter().enumerate() {
            let want = want.as_object().unwrap();
            let keys: Vec<&String> = carried.iter().map(|(n, _)| n).collect();
            let mut want_keys: Vec<&String> = want.keys().collect();
            want_keys.sort();
            let mut sorted_keys = keys.clone();
            sorted_keys.sort();
            assert_eq!(sorted_keys, want_keys, "{name}: state slots");
            // Declaration order: parameters, their gradients, the slots,
            // the step counter.
            let np = params.len();
            let mut args: Vec<_> = values[..np].iter().map(|v| v.clone().into()).collect();
            for (n, shape, _) in &params {
                let grad = floats(&inputs["grads"][k][n.as_str()]);
                args.push(array(shape, grad).into());
            }
            args.extend(values[np..].iter().map(|v| v.clone().into()));
            args.push(step.clone().into());
            let out = program.run(&args).unwrap();
            let mut out: Vec<ArrayD<f32>> = out
                .into_iter()
                .take(carried.len())
                .map(|t| t.try_into().unwrap())
                .collect();
            for ((key, shape), got) in carried.iter().zip(&out) {
                let want = floats(&want[key.as_str()]);
                assert_eq!(got.shape(), shape.as_slice(), "{name} {key}");
                let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
                for (i, (&x, &y)) in got.iter().zip(&want).enumerate() {
                    let x = f64::from(x);
                    assert!(
                        (x - y).abs() <= 1e-5 * y.abs().max(scale * 0.1),
                        "{name}, step {}, {key}[{i}]: {x} vs {y}",
                        k + 1
                    );
                }
            }
            values = std::mem::take(&mut out);
            step = ArrayD::from_elem(vec![], k as i32 + 1);
        }
    }
}

/// `--set learner.optimizer=…` and `learner.schedule=…` need only the
/// fields that differ from the defaults; unknown fields are still refused,
/// naming the path.
#[test]
fn switching_optimizer_or_schedule_needs_only_the_differing_fields() {
    let config = resolve_config(
        "llama-tiny",
        &[],
        &[
            r#"learner.optimizer={"kind":"sgd","nesterov":true}"#,
            r#"learner.schedule={"kind":"warmup_cosine","total_steps":5000}"#,
        ],
    )
    .unwrap();
    assert_eq!(
        config.learner.optimizer,
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0
        }
    );
    assert_eq!(
        config.learner.schedule,
        Schedule::WarmupCosine {
            peak_lr: 1e-3,
            warmup_steps: 100,
            total_steps: 5000,
            final_lr: 0.0
        }
    );
    for (set, default) in [
        (r#"{"kind":"adam_w"}"#, LearnerConfig::default().optimizer),
        (
            r#"{"kind":"lion"}"#,
            OptimizerConfig::Lion {
                beta1: 0.9,
                beta2: 0.99,
                weight_decay: 1e-3,
            },
        ),
    ] {
        let config =
            resolve_config("llama-tiny", &[], &[&format!("learner.optimizer={set}")]).unwrap();
        assert_eq!(config.learner.optimizer, default, "{set}");
    }
    let err = resolve_config(
        "llama-tiny",
        &[],
        &[r#"learner.optimizer={"kind":"sgd","beta1":0.9}"#],
    )
    .unwrap_err();
    assert!(
        err.contains("learner.optimizer") && err.contains("beta1"),
        "{err}"
    );
    let err = resolve_config(
        "llama-tiny",
        &[],
        &[r#"learner.schedule={"kind":"wsd","warmup_steps":600,"decay_steps":500}"#],
    )
    .unwrap()
    .learner
    .validate()
    .unwrap_err();
    assert!(err.starts_with("learner.schedule"), "{err}");
    let groups = resolve_config(
        "llama-tiny",
        &[],
        &[r#"learner.param_groups=[{"paths":"*embedding*","weight_decay":false},{"paths":"*/norm/*","lr_scale":0.1}]"#],
    )
    .unwrap()
    .learner;
    assert_eq!(groups.param_groups[0].lr_scale, 1.0);
    assert_eq!(groups.param_groups[1].weight_decay, None);
    let err = groups
        .check_groups(["decoder/token_embedding/weight"])
        .unwrap_err();
    assert!(
        err.starts_with("learner.param_groups.1.paths `*/norm/*` matches no parameter"),
        "{err}"
    );
}

/// Under FSDP (`fsdp=4`), Adafactor's factored statistics are split as
/// the parameter dimensions they keep are: the row statistic of a weight
/// sharded `(fsdp, _)` over `fsdp`, its column statistic replicated; the
/// unfactored statistic of a vector like the vector.
#[test]
fn adafactor_state_is_sharded_like_its_parameter_under_fsdp() {
    let setup = RunOptions {
        experiment: Some("llama-tiny".into()),
        overrides: vec![r#"learner.optimizer={"kind":"adafactor"}"#.into()],
        mesh: Some("fsdp=4".into()),
        cpu_devices: Some(4),
        ..RunOptions::default()
    }
    .setup()
    .unwrap();
    let step = build_train_step(
        setup.model.as_ref(),
        &setup.learner,
        &setup.shape,
        &setup.mesh,
        &setup.rules,
    )
    .unwrap();
    let arg = |name: &str| {
        step.args
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| panic!("no argument {name}"))
    };
    let axes = |name: &str| -> Vec<Vec<String>> {
        arg(name)
            .partition
            .dims()
            .iter()
            .map(|d| d.axes().to_vec())
            .collect()
    };
    let fsdp = || vec!["fsdp".to_string()];
    let mut factored = 0;
    for (path, spec) in &step.param_specs {
        let param = axes(path);
        let row = format!("opt/v_row/{path}");
        if step.args.iter().any(|a| a.name == row) {
            factored += 1;
            // llama-tiny's matrices are 2-D. The row statistic averages
            // the largest dimension `c` away (the later one on ties) and
            // keeps `r`; the column statistic keeps `c`.
            let (r, c) = if spec.shape[0] > spec.shape[1] {
                (1, 0)
            } else {
                (0, 1)
            };
            assert_eq!(axes(&row), vec![param[r].clone()], "{row}");
            let col = format!("opt/v_col/{path}");
            assert_eq!(axes(&col), vec![param[c].clone()], "{col}");
            assert_eq!(arg(&row).shape, vec![spec.shape[r]], "{row}");
            assert_eq!(arg(&col).shape, vec![spec.shape[c]], "{col}");
        } else {
            assert_eq!(axes(&format!("opt/v/{path}")), param, "{path}");
        }
    }
    assert!(factored >= 4, "{factored} factored parameters");
    // The step refuses a parameter group that matches no parameter.
    let learner = LearnerConfig {
        param_groups: serde_json::from_str(r#"[{"paths":"*/no_such_layer/*","lr_scale":0.5}]"#)
            .unwrap(),
        ..setup.learner.clone()
    };
    let err = build_train_step(
        setup.model.as_ref(),
        &learner,
        &setup.shape,
        &setup.mesh,
        &setup.rules,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("learner.param_groups.0.paths"), "{err}");
    // At least one statistic is split over fsdp, as its parameter is.
    assert!(
        step.args
            .iter()
            .filter(|a| a.name.starts_with("opt/v_"))
            .any(|a| a
                .partition
                .dims()
                .iter()
                .any(|d| d.axes() == fsdp().as_slice())),
        "no factored statistic is split over fsdp"
    );
}

/// With `drop_grad_norm` set, a step whose gradient norm is not below it
/// (or is NaN or infinite) returns every parameter and optimizer-state
/// tensor, the step counter included, bit for bit, and reports
/// `skipped = 1`; a step below it updates (and is clipped by
/// `max_grad_norm` as before).
#[test]
fn a_skipped_step_leaves_parameters_and_state_bitwise_unchanged() {
    let learner = LearnerConfig {
        drop_grad_norm: Some(2.0),
        ..LearnerConfig::default()
    };
    learner.validate().unwrap();
    let shape = vec![3usize, 4];
    let b = FunctionBuilder::new("skip");
    let p = b.param("p", DType::F32, &shape);
    let g = b.param("g", DType::F32, &shape);
    let mut state = BTreeMap::new();
    for slot in ["mu", "nu"] {
        let name = format!("opt/{slot}/p");
        state.insert(name.clone(), b.param(&name, DType::F32, &shape));
    }
    state.insert(STEP.to_string(), b.param(STEP, DType::I32, &[]));
    let update = learner.apply(
        &[ParamUpdate {
            path: "p",
            value: &p,
            grad: &g,
            decay: true,
        }],
        &state,
    );
    let f = b
        .build(&[
            ("p", &update.params["p"]),
            ("mu", &update.state["opt/mu/p"]),
            ("nu", &update.state["opt/nu/p"]),
            ("skipped", &update.skipped),
            ("norm", &update.grad_norm),
        ])
        .unwrap();
    let step_out = b.build(&[("step", &update.state[STEP])]).unwrap();
    let client = Client::cpu(1).unwrap();
    let program = compile(&client, &f).unwrap();
    let step_program = compile(&client, &step_out).unwrap();
    let fill =
        |f: &dyn Fn(usize) -> f32| ArrayD::from_shape_fn(shape.clone(), |i| f(i[0] * 4 + i[1]));
    let p0 = fill(&|i| (i as f32 * 0.37).sin());
    let mu0 = fill(&|i| (i as f32 * 0.11).cos() * 0.01);
    let nu0 = fill(&|i| 1e-3 + i as f32 * 1e-4);
    let step0 = ArrayD::from_elem(vec![], 7i32);
    // Global norms: 3.46 (above 2), NaN, infinite, and 1.73 (applied).
    let grads = [
        fill(&|_| 1.0),
        fill(&|i| if i == 5 { f32::NAN } else { 0.1 }),
        fill(&|i| if i == 2 { f32::INFINITY } else { 0.1 }),
        fill(&|_| 0.5),
    ];
    for (k, grad) in grads.iter().enumerate() {
        let args = || {
            vec![
                p0.clone().into(),
                grad.clone().into(),
                mu0.clone().into(),
                nu0.clone().into(),
                step0.clone().into(),
            ]
        };
        let out: Vec<ArrayD<f32>> = program
            .run(&args())
            .unwrap()
            .into_iter()
            .map(|t| t.try_into().unwrap())
            .collect();
        let step: ArrayD<i32> = step_program
            .run(&args())
            .unwrap()
            .into_iter()
            .next()
            .unwrap()
            .try_into()
            .unwrap();
        let bits = |a: &ArrayD<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let skipped = k < 3;
        assert_eq!(out[3][[]], if skipped { 1.0 } else { 0.0 }, "grads {k}");
        for (name, got, old) in [
            ("p", &out[0], &p0),
            ("mu", &out[1], &mu0),
            ("nu", &out[2], &nu0),
        ] {
            if skipped {
                assert_eq!(bits(got), bits(old), "grads {k}: {name} changed");
            } else {
                assert_ne!(bits(got), bits(old), "grads {k}: {name} did not change");
            }
        }
        assert_eq!(step[[]], if skipped { 7 } else { 8 }, "grads {k}");
    }
}

/// Adafactor with factored state runs the same on one device and on
/// `data=2,fsdp=2` (the statistics split as their parameter's dimensions):
/// three steps of a small llama give the same losses up to the reduction
/// order across partitions (f32, ~1e-7 relative per op over a few
/// thousand ops: 1e-5 relative).
#[test]
fn adafactor_trains_alike_on_one_device_and_under_fsdp() {
    let options = |mesh: &str, devices: usize| RunOptions {
        overrides: vec![
            "decoder.dim=64".into(),
            "decoder.transformer.num_layers=1".into(),
            "decoder.transformer.layers.0.feed_forward.hidden_dim=128".into(),
            r#"learner.optimizer={"kind":"adafactor","min_dim_size_to_factor":32}"#.into(),
        ],
        mesh: Some(mesh.into()),
        cpu_devices: Some(devices),
        batch_size: Some(4),
        seq_len: Some(32),
        steps: 3,
        eval_every: 0,
        ..RunOptions::default()
    };
    let one = axle::run::train(&options("data=1", 1), |_| {}).unwrap();
    let fsdp = axle::run::train(&options("data=2,fsdp=2", 4), |_| {}).unwrap();
    assert_eq!(one.losses.len(), 3);
    for (a, b) in one.losses.iter().zip(&fsdp.losses) {
        assert!((a.1 - b.1).abs() <= 1e-5 * a.1.abs(), "{a:?} vs {b:?}");
    }
}
