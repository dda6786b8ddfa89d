//! Each layer's traced forward, compiled and run on the CPU plugin, against an independent
//! ndarray implementation on random inputs. Everything runs in f64 on both sides, so the only
//! differences are rounding in a different order of operations: the tolerance is 1e-10
//! (absolute plus relative), far below any formula error (a wrong sign, scale, mask, head
//! grouping or rotation changes outputs at the 1e-2 level or more).

mod modules_common;

use axle::backend::HostTensor;
use axle::modules::{
    Activation, Attention, AttentionConfig, Ctx, Embedding, EmbeddingConfig, FeedForward,
    FeedForwardConfig, LayerNormConfig, Linear, LinearConfig, Module, Norm, NormConfig, ParamSpec,
    ParamTree, RmsNormConfig, RopeConfig, Stack, TransformerLayer, TransformerLayerConfig,
    cross_entropy, modifiers,
};
use axle::modules::{CausalLm, Config, registered_model};
use modules_common::{Tree, assert_close, normal, params_f64, run_layer};
use ndarray::{Array2, ArrayD, Axis, IxDyn, s};

const TOL: f64 = 1e-10;

fn matmul_last(x: &ArrayD<f64>, w: &ArrayD<f64>) -> ArrayD<f64> {
    let (k, n) = (w.shape()[0], w.shape()[1]);
    let x2 = x.to_shape((x.len() / k, k)).unwrap().to_owned();
    let w2: Array2<f64> = w.to_shape((k, n)).unwrap().to_owned();
    let mut dims = x.shape().to_vec();
    *dims.last_mut().unwrap() = n;
    x2.dot(&w2).into_shape_with_order(IxDyn(&dims)).unwrap()
}

fn linear_ref(p: &Tree, prefix: &str, x: &ArrayD<f64>) -> ArrayD<f64> {
    let y = matmul_last(x, &p[&format!("{prefix}weight")]);
    match p.get(&format!("{prefix}bias")) {
        Some(b) => y + b,
        None => y,
    }
}

fn norm_ref(cfg: &NormConfig, p: &Tree, prefix: &str, x: &ArrayD<f64>) -> ArrayD<f64> {
    let last = Axis(x.ndim() - 1);
    let scale = &p[&format!("{prefix}scale")];
    match cfg {
        NormConfig::RmsNorm(c) => {
            let ms = x.mapv(|v| v * v).mean_axis(last).unwrap().insert_axis(last);
            x / &ms.mapv(|m| (m + c.eps).sqrt()) * scale
        }
        NormConfig::LayerNorm(c) => {
            let mean = x.mean_axis(last).unwrap().insert_axis(last);
            let centered = x - &mean;
            let var = centered
                .mapv(|v| v * v)
                .mean_axis(last)
                .unwrap()
                .insert_axis(last);
            let y = centered / &var.mapv(|v| (v + c.eps).sqrt()) * scale;
            match p.get(&format!("{prefix}bias")) {
                Some(b) => y + b,
                None => y,
            }
        }
    }
}

/// RoPE on `x` `[b, t, h, d]` ("rotate half" layout).
fn rope_ref(x: &ArrayD<f64>, positions: &ArrayD<i32>, theta: f64) -> ArrayD<f64> {
    let (b, t, h, d) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
    let half = d / 2;
    let mut out = x.clone();
    for (bi, ti, hi, i) in itertools(b, t, h, half) {
        let angle = positions[[bi, ti]] as f64 * theta.powf(-2.0 * i as f64 / d as f64);
        let (x1, x2) = (x[[bi, ti, hi, i]], x[[bi, ti, hi, i + half]]);
        out[[bi, ti, hi, i]] = x1 * angle.cos() - x2 * angle.sin();
        out[[bi, ti, hi, i + half]] = x2 * angle.cos() + x1 * angle.sin();
    }
    out
}

fn itertools(
    a: usize,
    b: usize,
    c: usize,
    d: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (0..a).flat_map(move |i| {
        (0..b).flat_map(move |j| (0..c).flat_map(move |k| (0..d).map(move |l| (i, j, k, l))))
    })
}

fn attention_ref(
    layer: &Attention,
    p: &Tree,
    prefix: &str,
    x: &ArrayD<f64>,
    positions: &ArrayD<i32>,
    segments: Option<&ArrayD<i32>>,
) -> ArrayD<f64> {
    let (b, t) = (x.shape()[0], x.shape()[1]);
    let (h, kv, hd) = (layer.num_heads, layer.num_kv_heads, layer.head_dim);
    let proj = |name: &str, heads: usize| {
        linear_ref(p, &format!("{prefix}{name}/"), x)
            .into_shape_with_order(IxDyn(&[b, t, heads, hd]))
            .unwrap()
    };
    let (mut q, mut k, v) = (proj("q_proj", h), proj("k_proj", kv), proj("v_proj", kv));
    if let Some(norm) = &layer.cfg.qk_norm {
        q = norm_ref(norm, p, &format!("{prefix}q_norm/"), &q);
        k = norm_ref(norm, p, &format!("{prefix}k_norm/"), &k);
    }
    if let Some(rope) = &layer.cfg.rope {
        q = rope_ref(&q, positions, rope.theta);
        k = rope_ref(&k, positions, rope.theta);
    }
    let mut out = ArrayD::<f64>::zeros(IxDyn(&[b, t, h, hd]));
    for bi in 0..b {
        for hi in 0..h {
            let kh = hi / (h / kv);
            for qi in 0..t {
                let visible: Vec<usize> = (0..t)
                    .filter(|&si| !layer.cfg.causal || si <= qi)
                    .filter(|&si| layer.cfg.sliding_window.is_none_or(|w| qi.abs_diff(si) < w))
                    .filter(|&si| segments.is_none_or(|s| s[[bi, si]] == s[[bi, qi]]))
                    .collect();
                let logits: Vec<f64> = visible
                    .iter()
                    .map(|&si| {
                        let dot: f64 = (0..hd)
                            .map(|e| q[[bi, qi, hi, e]] * k[[bi, si, kh, e]])
                            .sum();
                        let logit = dot / (hd as f64).sqrt();
                        match layer.cfg.logit_soft_cap {
                            Some(cap) => cap * (logit / cap).tanh(),
                            None => logit,
                        }
                    })
                    .collect();
                let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for (w, &si) in weights.iter().zip(&visible) {
                    for e in 0..hd {
                        out[[bi, qi, hi, e]] += w / total * v[[bi, si, kh, e]];
                    }
                }
            }
        }
    }
    let out = out.into_shape_with_order(IxDyn(&[b, t, h * hd])).unwrap();
    linear_ref(p, &format!("{prefix}o_proj/"), &out)
}

/// erf by its Taylor series, accurate to ~1e-16 for |x| <= 2.5 (the inputs used here).
fn erf(x: f64) -> f64 {
    assert!(x.abs() <= 2.5);
    let (mut term, mut sum) = (x, x);
    for n in 1..80 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn activation_ref(a: Activation, x: f64) -> f64 {
    match a {
        Activation::Gelu => 0.5 * x * (1.0 + erf(x / 2f64.sqrt())),
        Activation::GeluTanh => {
            0.5 * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
        }
        Activation::Silu => x / (1.0 + (-x).exp()),
    }
}

fn ffn_ref(layer: &FeedForward, p: &Tree, prefix: &str, x: &ArrayD<f64>) -> ArrayD<f64> {
    let up = linear_ref(p, &format!("{prefix}up_proj/"), x);
    let act = layer.cfg.activation;
    let hidden = match &layer.gate_proj {
        Some(_) => {
            linear_ref(p, &format!("{prefix}gate_proj/"), x).mapv(|g| activation_ref(act, g)) * up
        }
        None => up.mapv(|u| activation_ref(act, u)),
    };
    linear_ref(p, &format!("{prefix}down_proj/"), &hidden)
}

fn ids(values: &[i32], shape: &[usize]) -> ArrayD<i32> {
    ArrayD::from_shape_vec(IxDyn(shape), values.to_vec()).unwrap()
}

#[test]
fn linear_matches_reference() {
    for bias in [false, true] {
        let layer = Linear::new(
            &LinearConfig {
                bias,
                ..LinearConfig::default()
            }
            .with_dims(5, 4),
            "linear",
        )
        .unwrap();
        let specs = layer.param_specs();
        let p = params_f64(&specs);
        let x = normal(&[2, 3, 5], "x", 1);
        let got = run_layer(&specs, &p, &[("x", x.clone().into())], false, |ctx, xs| {
            layer.forward(ctx, &xs[0]).unwrap()
        });
        assert_close(
            &format!("linear bias={bias}"),
            &got,
            &linear_ref(&p, "", &x),
            TOL,
            TOL,
        );
    }
}

#[test]
fn embedding_lookup_and_tied_head_match_reference() {
    let cfg = EmbeddingConfig {
        num_embeddings: Some(11),
        dim: Some(6),
        ..EmbeddingConfig::default()
    };
    let table = Embedding::new(&cfg, "embedding").unwrap();
    let specs = table.param_specs();
    let p = params_f64(&specs);
    let token_ids = ids(&[3, 0, 10, 3, 7, 1], &[2, 3]);
    let got = run_layer(
        &specs,
        &p,
        &[("ids", token_ids.clone().into())],
        false,
        |ctx, xs| table.forward(ctx, &xs[0]).unwrap(),
    );
    let w = &p["weight"];
    let mut want = ArrayD::zeros(IxDyn(&[2, 3, 6]));
    for ((i, j), &id) in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        .iter()
        .zip(token_ids.iter())
    {
        want.slice_mut(s![*i, *j, ..])
            .assign(&w.slice(s![id as usize, ..]));
    }
    assert_close("embedding lookup", &got, &want, 0.0, 0.0);
    let x = normal(&[2, 3, 6], "x", 2);
    let got = run_layer(&specs, &p, &[("x", x.clone().into())], false, |ctx, xs| {
        table.attend(ctx, &xs[0]).unwrap()
    });
    assert_close(
        "tied head",
        &got,
        &matmul_last(&x, &w.t().to_owned()),
        TOL,
        TOL,
    );
}

#[test]
fn norms_match_reference() {
    let configs = [
        NormConfig::RmsNorm(RmsNormConfig {
            input_dim: Some(8),
            eps: 1e-6,
        }),
        NormConfig::LayerNorm(LayerNormConfig {
            input_dim: Some(8),
            eps: 1e-5,
            bias: true,
        }),
        NormConfig::LayerNorm(LayerNormConfig {
            input_dim: Some(8),
            eps: 1e-5,
            bias: false,
        }),
    ];
    for cfg in configs {
        let norm = Norm::new(&cfg, "norm").unwrap();
        let specs = norm.param_specs();
        let p = params_f64(&specs);
        let x = normal(&[3, 4, 8], "x", 3) * 3.0 + 1.0;
        let got = run_layer(&specs, &p, &[("x", x.clone().into())], false, |ctx, xs| {
            norm.forward(ctx, &xs[0]).unwrap()
        });
        assert_close(
            &format!("{cfg:?}"),
            &got,
            &norm_ref(&cfg, &p, "", &x),
            TOL,
            TOL,
        );
    }
}

#[test]
fn attention_with_rope_gqa_causal_mask_and_segments_matches_reference() {
    // (heads, kv heads, rope, causal, packed)
    let cases = [
        (4, None, None, true, false),
        (4, Some(2), Some(10000.0), true, false),
        (4, Some(1), Some(500.0), true, true),
        (2, None, Some(10000.0), false, true),
    ];
    for (heads, kv, theta, causal, packed) in cases {
        let cfg = AttentionConfig {
            input_dim: Some(32),
            num_heads: Some(heads),
            num_kv_heads: kv,
            causal,
            rope: theta.map(RopeConfig::with_theta),
            ..AttentionConfig::default()
        };
        let layer = Attention::new(&cfg, "attention").unwrap();
        let specs = layer.param_specs();
        let p = params_f64(&specs);
        let x = normal(&[2, 6, 32], "x", 4);
        // Positions restart in the second segment of each row (packed sequences).
        let positions = ids(&[0, 1, 2, 0, 1, 2, 5, 6, 7, 8, 0, 1], &[2, 6]);
        let segments = ids(&[1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2], &[2, 6]);
        let mut inputs = vec![
            ("x", HostTensor::from(x.clone())),
            ("positions", positions.clone().into()),
        ];
        if packed {
            inputs.push(("segment_ids", segments.clone().into()));
        }
        let got = run_layer(&specs, &p, &inputs, false, |ctx, xs| {
            layer.forward(ctx, &xs[0], &xs[1], xs.get(2)).unwrap()
        });
        let want = attention_ref(&layer, &p, "", &x, &positions, packed.then_some(&segments));
        assert_close(
            &format!(
                "attention {heads}/{kv:?} heads rope {theta:?} causal {causal} packed {packed}"
            ),
            &got,
            &want,
            TOL,
            TOL,
        );
    }
}

/// QK-norm (RMSNorm and LayerNorm over head_dim, before RoPE), sliding windows (causal:
/// `q - W < k <= q`; not causal: `|q - k| < W`) and logit soft-capping, alone and together, with
/// GQA, RoPE and packed segments. The tolerance stays 1e-10: the new ops (an rsqrt per head, a
/// tanh per logit) are f64 on both sides and accurate to a few ulp, while a formula error (a
/// window off by one, the cap applied after masking or before scaling, the norm over the wrong
/// axis or after RoPE) changes outputs by 1e-3 or more.
#[test]
fn attention_with_qk_norm_sliding_window_and_soft_cap_matches_reference() {
    let rms = NormConfig::RmsNorm(RmsNormConfig::default());
    let layer_norm = NormConfig::LayerNorm(LayerNormConfig::default());
    // (qk norm, window, cap, causal, packed)
    let cases = [
        (Some(rms.clone()), None, None, true, false),
        (Some(layer_norm), None, None, true, true),
        (None, Some(1), None, true, false),
        (None, Some(2), None, true, true),
        (None, Some(3), None, false, false),
        (None, Some(2), None, false, true),
        (None, None, Some(0.5), true, false),
        (None, None, Some(2.0), false, true),
        (Some(rms), Some(3), Some(1.0), true, true),
    ];
    for (qk_norm, window, cap, causal, packed) in cases {
        let cfg = AttentionConfig {
            input_dim: Some(32),
            num_heads: Some(4),
            num_kv_heads: Some(2),
            causal,
            rope: Some(RopeConfig::default()),
            qk_norm: qk_norm.clone(),
            sliding_window: window,
            logit_soft_cap: cap,
            ..AttentionConfig::default()
        };
        let layer = Attention::new(&cfg, "attention").unwrap();
        let specs = layer.param_specs();
        let p = params_f64(&specs);
        // Larger inputs give logits of several units, so that a cap of 0.5 to 2 bites.
        let x = normal(&[2, 6, 32], "x", 9) * 2.0;
        let positions = ids(&[0, 1, 2, 0, 1, 2, 5, 6, 7, 8, 0, 1], &[2, 6]);
        let segments = ids(&[1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 2, 2], &[2, 6]);
        let mut inputs = vec![
            ("x", HostTensor::from(x.clone())),
            ("positions", positions.clone().into()),
        ];
        if packed {
            inputs.push(("segment_ids", segments.clone().into()));
        }
        let got = run_layer(&specs, &p, &inputs, false, |ctx, xs| {
            layer.forward(ctx, &xs[0], &xs[1], xs.get(2)).unwrap()
        });
        let want = attention_ref(&layer, &p, "", &x, &positions, packed.then_some(&segments));
        let name = format!(
            "attention qk_norm {} window {window:?} cap {cap:?} causal {causal} packed {packed}",
            qk_norm.is_some()
        );
        assert_close(&name, &got, &want, TOL, TOL);
    }
}

#[test]
fn feed_forward_matches_reference() {
    for (activation, gated) in [
        (Activation::Gelu, false),
        (Activation::GeluTanh, false),
        (Activation::Silu, true),
    ] {
        let cfg = FeedForwardConfig {
            input_dim: Some(8),
            hidden_dim: Some(12),
            activation,
            gated,
            ..FeedForwardConfig::default()
        };
        let layer = FeedForward::new(&cfg, "ffn").unwrap();
        let specs = layer.param_specs();
        let p = params_f64(&specs);
        // Small inputs keep the hidden pre-activations within the reference erf's range.
        let x = normal(&[2, 3, 8], "x", 5) * 0.5;
        let got = run_layer(&specs, &p, &[("x", x.clone().into())], false, |ctx, xs| {
            layer.forward(ctx, &xs[0]).unwrap()
        });
        assert_close(
            &format!("{activation:?} gated={gated}"),
            &got,
            &ffn_ref(&layer, &p, "", &x),
            TOL,
            TOL,
        );
    }
}

#[test]
fn pre_norm_transformer_layer_matches_reference() {
    let cfg = TransformerLayerConfig {
        input_dim: Some(16),
        attention: AttentionConfig {
            num_heads: Some(4),
            num_kv_heads: Some(2),
            rope: Some(RopeConfig::default()),
            ..AttentionConfig::default()
        },
        feed_forward: FeedForwardConfig {
            hidden_dim: Some(24),
            ..FeedForwardConfig::default()
        },
        ..TransformerLayerConfig::default()
    };
    let layer = TransformerLayer::new(&cfg, "layer").unwrap();
    let specs = layer.param_specs();
    let p = params_f64(&specs);
    let x = normal(&[2, 5, 16], "x", 6);
    let positions = ids(&[0, 1, 2, 3, 4, 0, 1, 2, 3, 4], &[2, 5]);
    let inputs = [
        ("x", HostTensor::from(x.clone())),
        ("positions", positions.clone().into()),
    ];
    let got = run_layer(&specs, &p, &inputs, false, |ctx, xs| {
        layer.forward(ctx, &xs[0], &xs[1], None).unwrap()
    });
    let want = layer_ref(&layer, &p, "", &x, &positions);
    assert_close("transformer layer", &got, &want, TOL, TOL);
}

fn layer_ref(
    layer: &TransformerLayer,
    p: &Tree,
    prefix: &str,
    x: &ArrayD<f64>,
    positions: &ArrayD<i32>,
) -> ArrayD<f64> {
    let path = |child: &str| format!("{prefix}{child}/");
    let h = norm_ref(&layer.cfg.attention_norm, p, &path("attention_norm"), x);
    let x1 = x + &attention_ref(&layer.attention, p, &path("attention"), &h, positions, None);
    let h = norm_ref(&layer.cfg.ffn_norm, p, &path("ffn_norm"), &x1);
    &x1 + &ffn_ref(&layer.feed_forward, p, &path("feed_forward"), &h)
}

/// The whole decoder (embeddings, stack, final norm, head) on small versions of llama-tiny
/// (RoPE, untied head), gpt2-tiny (learned positions, tied head) and llama-tiny with a
/// `[local, global]` layer pattern, QK-norm and a logit soft cap (4 layers: the pattern twice),
/// each unrolled and scanned. The scanned stack gets the unrolled parameters stacked per pattern
/// entry, so both must give the reference logits (tolerance 1e-10, as everywhere here).
#[test]
fn decoder_logits_match_reference_unrolled_and_scanned() {
    for (name, local_global) in [
        ("llama-tiny", false),
        ("gpt2-tiny", false),
        ("llama-tiny", true),
    ] {
        let mut cfg = registered_model(name).unwrap().config;
        cfg.apply_overrides(&[
            "decoder.vocab_size=13",
            "decoder.dim=16",
            "decoder.transformer.num_layers=2",
            "decoder.transformer.layers.0.feed_forward.hidden_dim=24",
        ])
        .unwrap();
        if cfg.decoder.position_embedding.is_some() {
            cfg.set("decoder.position_embedding.num_embeddings", "8")
                .unwrap();
        }
        if local_global {
            modifiers::qk_norm(&mut cfg);
            modifiers::alternate_local_global(&mut cfg, 2);
            cfg.apply_overrides(&[
                "decoder.transformer.num_layers=4",
                "decoder.transformer.layers.1.attention.logit_soft_cap=1.5",
            ])
            .unwrap();
        }
        let decoder = CausalLm::new(&cfg).unwrap().decoder;
        let specs = decoder.param_specs();
        let p = params_f64(&specs);
        let token_ids = ids(&[1, 5, 12, 0, 7, 7, 3, 2, 9, 11, 4, 6], &[2, 6]);
        let table = &p["token_embedding/weight"];
        let positions = ids(&[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5], &[2, 6]);
        let mut x = ArrayD::zeros(IxDyn(&[2, 6, 16]));
        for ((b, t), &id) in (0..2)
            .flat_map(|b| (0..6).map(move |t| (b, t)))
            .zip(token_ids.iter())
        {
            let mut row = x.slice_mut(s![b, t, ..]);
            row.assign(&table.slice(s![id as usize, ..]));
            if let Some(pos) = p.get("position_embedding/weight") {
                row += &pos.slice(s![t, ..]);
            }
        }
        for i in 0..decoder.transformer.num_layers {
            x = layer_ref(
                decoder.transformer.layer(i),
                &p,
                &format!("transformer/layers/{i}/"),
                &x,
                &positions,
            );
        }
        let x = norm_ref(&decoder.cfg.output_norm, &p, "output_norm/", &x);
        let want = match decoder.lm_head {
            Some(_) => linear_ref(&p, "lm_head/", &x),
            None => matmul_last(&x, &table.t().to_owned()),
        };
        cfg.set("decoder.transformer.scan", "true").unwrap();
        let scanned = CausalLm::new(&cfg).unwrap().decoder;
        let scanned_specs = scanned.param_specs();
        let scanned_p = stacked_params(&scanned.transformer, &scanned_specs, &p);
        for (layout, decoder, specs, p) in [
            ("unrolled", &decoder, &specs, &p),
            ("scanned", &scanned, &scanned_specs, &scanned_p),
        ] {
            let got = run_layer(
                specs,
                p,
                &[("ids", token_ids.clone().into())],
                false,
                |ctx, xs| decoder.forward(ctx, &xs[0], None, None).unwrap(),
            );
            let case = format!("{name} local/global {local_global} {layout}");
            assert_close(&case, &got, &want, TOL, TOL);
        }
    }
}

/// The decoder parameters of the scanned stack `stack` (specs `specs`) built from the unrolled
/// ones: pattern entry `j`'s `transformer/layer/{j}/rel` (`transformer/layer/rel` for a one-entry
/// pattern) stacks `transformer/layers/{r * pattern + j}/rel` over the repeats `r`.
fn stacked_params(stack: &Stack, specs: &ParamTree<ParamSpec>, unrolled: &Tree) -> Tree {
    let pattern = stack.layers.len();
    specs
        .keys()
        .map(|path| {
            let Some(rest) = path.strip_prefix("transformer/layer/") else {
                return (path.clone(), unrolled[path].clone());
            };
            let (j, rel) = match pattern {
                1 => (0, rest),
                _ => rest
                    .split_once('/')
                    .map(|(j, rel)| (j.parse::<usize>().unwrap(), rel))
                    .unwrap(),
            };
            let slices: Vec<_> = (0..stack.repeats())
                .map(|r| unrolled[&format!("transformer/layers/{}/{rel}", r * pattern + j)].view())
                .collect();
            (path.clone(), ndarray::stack(Axis(0), &slices).unwrap())
        })
        .collect()
}

#[test]
fn dropout_zeroes_or_scales_in_training_and_is_identity_in_eval() {
    let x = normal(&[64, 64], "x", 7);
    let specs = Default::default();
    let drop = |ctx: &mut Ctx, xs: &[axle::compiler::Tensor]| ctx.dropout(&xs[0], 0.25).unwrap();
    let eval = run_layer(
        &specs,
        &Default::default(),
        &[("x", x.clone().into())],
        false,
        drop,
    );
    assert_eq!(eval, x);
    let train = run_layer(
        &specs,
        &Default::default(),
        &[("x", x.clone().into())],
        true,
        drop,
    );
    let mut kept = 0;
    for (y, x) in train.iter().zip(x.iter()) {
        if *y != 0.0 {
            kept += 1;
            assert!((y - x / 0.75).abs() <= 1e-12 * x.abs(), "{y} vs {x} / 0.75");
        }
    }
    // 4096 Bernoulli(0.75) draws: mean 3072, std 27.7; allow 5 standard deviations.
    assert!(
        (kept as f64 - 3072.0).abs() < 5.0 * 27.7,
        "kept {kept} of 4096"
    );
}

#[test]
fn cross_entropy_with_masked_labels_and_z_loss_matches_reference() {
    let logits = normal(&[2, 5, 7], "logits", 8) * 2.0;
    let labels = ids(&[3, -1, 0, 6, 2, -1, -1, 4, 5, 1], &[2, 5]);
    let z_scale = 1e-2;
    let got = run_layer(
        &Default::default(),
        &Default::default(),
        &[
            ("logits", logits.clone().into()),
            ("labels", labels.clone().into()),
        ],
        false,
        |_, xs| cross_entropy(&xs[0], &xs[1], z_scale).total,
    );
    let (mut nll, mut z, mut live) = (0.0, 0.0, 0.0);
    for (row, &label) in logits
        .to_shape((10, 7))
        .unwrap()
        .outer_iter()
        .zip(labels.iter())
    {
        if label < 0 {
            continue;
        }
        let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_z = max + row.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
        nll += log_z - row[label as usize];
        z += log_z * log_z;
        live += 1.0;
    }
    let want = ArrayD::from_elem(IxDyn(&[]), nll / live + z_scale * z / live);
    assert_close("cross-entropy + z-loss", &got, &want, TOL, TOL);
}
