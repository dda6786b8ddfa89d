//! Hugging Face tensors to axle parameters and back, by the [`super::names`] mapping, with
//! every tensor accounted for: a missing, unexpected or misshapen tensor is an error naming it.

use super::config::{Family, HfModel};
use super::files::read_tensors;
use super::names::{GPT2_PREFIX, Layout, mappings};
use super::{HfError, Result};
use crate::checkpoint::Tensors;
use axle_modules::{CausalLm, CausalLmConfig, Module};
use ndarray::{ArrayD, Axis, concatenate};
use std::path::Path;

/// The tensor layout of an axle causal LM exported as `family` (the config must have a
/// one-entry layer pattern, as imported configs and [`super::config::export_config`]'s do).
pub fn layout(family: Family, config: &CausalLmConfig) -> Layout {
    let d = &config.decoder;
    let layer = &d.transformer.layers[0];
    Layout {
        family,
        num_layers: d.transformer.num_layers.unwrap_or(0),
        lm_head: d.lm_head.is_some(),
        qkv_bias: layer.attention.input_linear.bias,
        o_bias: layer.attention.output_linear.bias,
        mlp_bias: layer.feed_forward.input_linear.bias,
    }
}

/// The axle parameters (paths as in [`axle_modules::Module::param_specs`]) of the Hugging
/// Face model in `dir`, whose `config.json` gave `model`. GPT-2 tensors may carry the
/// `transformer.` prefix of `GPT2LMHeadModel` or none (`GPT2Model`); buffers
/// ([`super::names::is_buffer`]) are skipped; a tied model may hold `lm_head.weight` only as
/// a copy of the token embedding. Errors: [`HfError::MissingTensor`],
/// [`HfError::ExtraTensor`], [`HfError::TensorShape`], [`HfError::NonFinite`] (a NaN or an
/// infinity, e.g. an f16 value that overflowed, so no checkpoint is written with one) and
/// [`HfError::DuplicateTensor`] (a GPT-2 tensor under both its names) naming the tensor, and
/// those of [`read_tensors`].
pub fn import_params(dir: &Path, model: &HfModel) -> Result<Tensors> {
    let specs = CausalLm::new(&model.config)?.param_specs();
    let layout = layout(model.family, &model.config);
    let mut hf = Tensors::new();
    for (name, tensor) in read_tensors(dir)? {
        if super::names::is_buffer(&name) {
            continue;
        }
        if tensor.iter().any(|v| !v.is_finite()) {
            return Err(HfError::NonFinite {
                name,
                dir: dir.to_path_buf(),
            });
        }
        let key = match model.family {
            Family::Gpt2 if !name.starts_with(GPT2_PREFIX) && name != "lm_head.weight" => {
                format!("{GPT2_PREFIX}{name}")
            }
            _ => name.clone(),
        };
        if hf.insert(key.clone(), tensor).is_some() {
            return Err(HfError::DuplicateTensor {
                name: key,
                dir: dir.to_path_buf(),
            });
        }
    }
    let extra = |name: &str| HfError::ExtraTensor {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        family: model.family.architecture().to_string(),
    };
    let mut params = Tensors::new();
    for m in mappings(&layout) {
        let tensor = hf.remove(&m.hf).ok_or_else(|| HfError::MissingTensor {
            name: m.hf.clone(),
            dir: dir.to_path_buf(),
        })?;
        let shapes: Vec<&[usize]> = m.parts.iter().map(|p| specs[p].shape.as_slice()).collect();
        let mut expected = shapes[0].to_vec();
        *expected.last_mut().expect("parameters have rank >= 1") =
            shapes.iter().map(|s| s[s.len() - 1]).sum();
        if m.transposed {
            expected.reverse();
        }
        if tensor.shape() != expected.as_slice() {
            return Err(HfError::TensorShape {
                name: m.hf.clone(),
                dir: dir.to_path_buf(),
                got: tensor.shape().to_vec(),
                expected,
            });
        }
        let tensor = if m.transposed {
            tensor.reversed_axes().as_standard_layout().into_owned()
        } else {
            tensor
        };
        let last = Axis(tensor.ndim() - 1);
        let mut start = 0;
        for (path, shape) in m.parts.iter().zip(&shapes) {
            let width = shape[shape.len() - 1];
            let part = tensor.slice_axis(last, (start..start + width).into());
            params.insert(path.clone(), part.as_standard_layout().into_owned());
            start += width;
        }
    }
    if !layout.lm_head
        && let Some(head) = hf.remove("lm_head.weight")
        && Some(&head) != params.get("decoder/token_embedding/weight")
    {
        return Err(extra(
            "lm_head.weight (the config ties the LM head to the token embedding, and it differs from it)",
        ));
    }
    if let Some(name) = hf.keys().next() {
        return Err(extra(name));
    }
    Ok(params)
}

/// The Hugging Face tensors of axle parameters `params` of a model of `config` exported as
/// `family` (GPT-2 names with the `transformer.` prefix; no `lm_head.weight` when tied, as
/// `transformers` saves tied models). Errors: [`HfError::Export`] naming a parameter the
/// model needs that `params` lacks, or one it holds that the family has no tensor for.
pub fn export_params(family: Family, config: &CausalLmConfig, params: &Tensors) -> Result<Tensors> {
    let mut used = 0;
    let mut hf = Tensors::new();
    for m in mappings(&layout(family, config)) {
        let parts = m
            .parts
            .iter()
            .map(|p| {
                params
                    .get(p)
                    .map(|a| a.view())
                    .ok_or_else(|| HfError::Export(format!("the parameters lack {p}")))
            })
            .collect::<Result<Vec<_>>>()?;
        used += parts.len();
        let last = Axis(parts[0].ndim() - 1);
        let joined: ArrayD<f32> = concatenate(last, &parts)
            .map_err(|e| HfError::Export(format!("cannot join {}: {e}", m.parts.join(", "))))?;
        let joined = if m.transposed {
            joined.reversed_axes().as_standard_layout().into_owned()
        } else {
            joined
        };
        hf.insert(m.hf, joined);
    }
    if used != params.len() {
        let mapped: Vec<String> = mappings(&layout(family, config))
            .into_iter()
            .flat_map(|m| m.parts)
            .collect();
        let unmapped: Vec<&str> = params
            .keys()
            .filter(|p| !mapped.contains(p))
            .map(String::as_str)
            .collect();
        return Err(HfError::Export(format!(
            "{} has no tensor for the parameters {}",
            family.architecture(),
            unmapped.join(", ")
        )));
    }
    Ok(hf)
}
