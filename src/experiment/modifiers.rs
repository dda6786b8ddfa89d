//! The modifiers the command line and mesh rules name: `NAME` or
//! `NAME=ARGS`, each a cross-cutting change to the whole model config
//! written once in `axle_modules::modifiers` over the config visitor.

use super::ExperimentConfig;
use axle_modules::modifiers;

/// A modifier the command line accepts.
#[derive(Clone, Copy, Debug)]
pub struct ModifierInfo {
    /// Its name (`--modifier NAME`).
    pub name: &'static str,
    /// The form of its argument (`THETA`), if it takes one.
    pub arg: Option<&'static str>,
    /// What it does.
    pub help: &'static str,
}

/// Every modifier, in the order `axle config --help` lists them.
pub const MODIFIERS: &[ModifierInfo] = &[
    ModifierInfo {
        name: "rope_everywhere",
        arg: Some("THETA"),
        help: "every attention gets RoPE with base THETA",
    },
    ModifierInfo {
        name: "swap_norms",
        arg: None,
        help: "RMSNorm <-> LayerNorm everywhere",
    },
    ModifierInfo {
        name: "mha_to_gqa",
        arg: Some("K"),
        help: "multi-head attention becomes grouped-query with K key/value heads",
    },
    ModifierInfo {
        name: "qk_norm",
        arg: None,
        help: "RMSNorm on queries and keys per head in every attention",
    },
    ModifierInfo {
        name: "sliding_window",
        arg: Some("W"),
        help: "every attention is local: each query sees the last W keys",
    },
    ModifierInfo {
        name: "alternate_local_global",
        arg: Some("W"),
        help: "every stack alternates local (window W) and global attention layers",
    },
    ModifierInfo {
        name: "swiglu_to_gelu",
        arg: None,
        help: "gated SiLU feed-forward blocks become GELU MLPs of 3/2 the hidden size",
    },
    ModifierInfo {
        name: "tie_embeddings",
        arg: None,
        help: "LM heads are tied to the token embedding",
    },
    ModifierInfo {
        name: "dropout",
        arg: Some("P"),
        help: "every dropout rate becomes P",
    },
    ModifierInfo {
        name: "remat",
        arg: Some("POLICY"),
        help: "every transformer layer is rematerialized: none, full, dots, names:A,B or offload:A,B",
    },
];

/// Applies the modifier `spec` (`NAME` or `NAME=ARGS`) to `cfg`; returns
/// how many configs it changed. Errors name the modifier and list the
/// known ones, or name the bad argument.
pub fn apply_modifier(cfg: &mut ExperimentConfig, spec: &str) -> Result<usize, String> {
    let (name, arg) = match spec.split_once('=') {
        Some((name, arg)) => (name.trim(), Some(arg.trim())),
        None => (spec.trim(), None),
    };
    let info = MODIFIERS.iter().find(|m| m.name == name).ok_or_else(|| {
        let known: Vec<&str> = MODIFIERS.iter().map(|m| m.name).collect();
        format!("unknown modifier `{name}`; known: {}", known.join(", "))
    })?;
    let arg = match (info.arg, arg) {
        (Some(form), None) => {
            return Err(format!(
                "modifier `{name}` needs an argument: {name}={form}"
            ));
        }
        (None, Some(a)) => return Err(format!("modifier `{name}` takes no argument, got `{a}`")),
        (_, a) => a.unwrap_or(""),
    };
    let number = |what: &str| -> Result<f64, String> {
        arg.parse::<f64>()
            .map_err(|_| format!("modifier `{name}`: {what} must be a number, got `{arg}`"))
    };
    let count = |what: &str| -> Result<usize, String> {
        arg.parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
            format!("modifier `{name}`: {what} must be a positive integer, got `{arg}`")
        })
    };
    let model = &mut cfg.model;
    Ok(match name {
        "rope_everywhere" => {
            let theta = number("THETA")?;
            if !(theta.is_finite() && theta > 0.0) {
                return Err(format!(
                    "modifier `rope_everywhere`: THETA must be positive, got {theta}"
                ));
            }
            modifiers::rope_everywhere(model, theta)
        }
        "swap_norms" => modifiers::swap_norms(model),
        "mha_to_gqa" => modifiers::mha_to_gqa(model, count("K")?),
        "qk_norm" => modifiers::qk_norm(model),
        "sliding_window" => modifiers::sliding_window(model, count("W")?),
        "alternate_local_global" => modifiers::alternate_local_global(model, count("W")?),
        "swiglu_to_gelu" => modifiers::swiglu_to_gelu(model),
        "tie_embeddings" => modifiers::tie_embeddings(model),
        "dropout" => {
            let p = number("P")?;
            if !(0.0..1.0).contains(&p) {
                return Err(format!("modifier `dropout`: P must be in [0, 1), got {p}"));
            }
            modifiers::dropout(model, p)
        }
        "remat" => {
            let spec = arg.parse().map_err(|e| format!("modifier `remat`: {e}"))?;
            modifiers::remat(model, &spec)
        }
        _ => unreachable!("every listed modifier is dispatched"),
    })
}
