//! The exact correspondence between Hugging Face tensor names and axle parameter paths, per
//! family, with the layout change each needs.
//!
//! `torch.nn.Linear` stores its weight `(out, in)`, axle's [`axle_modules::Linear`] `(in, out)`:
//! Llama-family projections are transposed. GPT-2's `Conv1D` already stores `(in, out)`, and
//! its fused `c_attn` holds the q, k and v projections side by side along the output axis.
//! Both use RoPE's half-split ("rotate_half") layout, as axle does, so no head permutation.

use super::config::Family;

/// One Hugging Face tensor and the axle parameters it holds: the Hugging Face tensor is the
/// concatenation of `parts` along their last axis, transposed when `transposed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The Hugging Face tensor name.
    pub hf: String,
    /// The axle parameter paths, in concatenation order.
    pub parts: Vec<String>,
    /// Whether the Hugging Face tensor is the transpose (a `torch.nn.Linear` weight).
    pub transposed: bool,
}

/// What a family's tensors look like beyond its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The family.
    pub family: Family,
    /// Transformer layers.
    pub num_layers: usize,
    /// An untied LM head (`lm_head.weight`).
    pub lm_head: bool,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// A bias on the attention output projection.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
}

/// The prefix of the GPT-2 body in `GPT2LMHeadModel` checkpoints (a bare `GPT2Model`'s
/// tensors have none).
pub const GPT2_PREFIX: &str = "transformer.";

/// Tensors some Hugging Face checkpoints hold that are buffers, not parameters (GPT-2's causal
/// mask `attn.bias` / `attn.masked_bias`, older Llamas' `rotary_emb.inv_freq`): skipped on
/// import.
pub fn is_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

fn one(hf: String, axle: String, transposed: bool) -> Mapping {
    Mapping {
        hf,
        parts: vec![axle],
        transposed,
    }
}

/// Every tensor of a model of `layout`, with the axle parameters it holds (Hugging Face names
/// of `GPT2LMHeadModel` with the [`GPT2_PREFIX`]).
pub fn mappings(layout: &Layout) -> Vec<Mapping> {
    match layout.family {
        Family::Gpt2 => gpt2(layout),
        _ => llama(layout),
    }
}

fn llama(layout: &Layout) -> Vec<Mapping> {
    let d = "decoder";
    let mut out = vec![one(
        "model.embed_tokens.weight".into(),
        format!("{d}/token_embedding/weight"),
        false,
    )];
    for i in 0..layout.num_layers {
        let hf = format!("model.layers.{i}");
        let ax = format!("{d}/transformer/layers/{i}");
        out.push(one(
            format!("{hf}.input_layernorm.weight"),
            format!("{ax}/attention_norm/scale"),
            false,
        ));
        for (proj, bias) in [
            ("q_proj", layout.qkv_bias),
            ("k_proj", layout.qkv_bias),
            ("v_proj", layout.qkv_bias),
            ("o_proj", layout.o_bias),
        ] {
            out.push(one(
                format!("{hf}.self_attn.{proj}.weight"),
                format!("{ax}/attention/{proj}/weight"),
                true,
            ));
            if bias {
                out.push(one(
                    format!("{hf}.self_attn.{proj}.bias"),
                    format!("{ax}/attention/{proj}/bias"),
                    false,
                ));
            }
        }
        out.push(one(
            format!("{hf}.post_attention_layernorm.weight"),
            format!("{ax}/ffn_norm/scale"),
            false,
        ));
        for proj in ["gate_proj", "up_proj", "down_proj"] {
            out.push(one(
                format!("{hf}.mlp.{proj}.weight"),
                format!("{ax}/feed_forward/{proj}/weight"),
                true,
            ));
            if layout.mlp_bias {
                out.push(one(
                    format!("{hf}.mlp.{proj}.bias"),
                    format!("{ax}/feed_forward/{proj}/bias"),
                    false,
                ));
            }
        }
    }
    out.push(one(
        "model.norm.weight".into(),
        format!("{d}/output_norm/scale"),
        false,
    ));
    if layout.lm_head {
        out.push(one(
            "lm_head.weight".into(),
            format!("{d}/lm_head/weight"),
            true,
        ));
    }
    out
}

fn gpt2(layout: &Layout) -> Vec<Mapping> {
    let (p, d) = (GPT2_PREFIX, "decoder");
    let mut out = vec![
        one(
            format!("{p}wte.weight"),
            format!("{d}/token_embedding/weight"),
            false,
        ),
        one(
            format!("{p}wpe.weight"),
            format!("{d}/position_embedding/weight"),
            false,
        ),
    ];
    for i in 0..layout.num_layers {
        let hf = format!("{p}h.{i}");
        let ax = format!("{d}/transformer/layers/{i}");
        for (hf_norm, ax_norm) in [("ln_1", "attention_norm"), ("ln_2", "ffn_norm")] {
            out.push(one(
                format!("{hf}.{hf_norm}.weight"),
                format!("{ax}/{ax_norm}/scale"),
                false,
            ));
            out.push(one(
                format!("{hf}.{hf_norm}.bias"),
                format!("{ax}/{ax_norm}/bias"),
                false,
            ));
        }
        for kind in ["weight", "bias"] {
            out.push(Mapping {
                hf: format!("{hf}.attn.c_attn.{kind}"),
                parts: ["q_proj", "k_proj", "v_proj"]
                    .iter()
                    .map(|proj| format!("{ax}/attention/{proj}/{kind}"))
                    .collect(),
                transposed: false,
            });
            for (hf_name, ax_name) in [
                ("attn.c_proj", "attention/o_proj"),
                ("mlp.c_fc", "feed_forward/up_proj"),
                ("mlp.c_proj", "feed_forward/down_proj"),
            ] {
                out.push(one(
                    format!("{hf}.{hf_name}.{kind}"),
                    format!("{ax}/{ax_name}/{kind}"),
                    false,
                ));
            }
        }
    }
    out.push(one(
        format!("{p}ln_f.weight"),
        format!("{d}/output_norm/scale"),
        false,
    ));
    out.push(one(
        format!("{p}ln_f.bias"),
        format!("{d}/output_norm/bias"),
        false,
    ));
    out
}
