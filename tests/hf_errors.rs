//! Bad Hugging Face models are refused with errors naming what is at fault: a missing
//! tensor, an unexpected tensor, a tensor of the wrong shape, an unknown architecture, an
//! unsupported RoPE scaling, an untied `lm_head.weight` in a tied model; and the variants
//! that are fine are accepted (a tied head's copy, GPT-2 names without `transformer.`); a NaN
//! or an f16 infinity, a GPT-2 tensor under both its names, a shard index naming the wrong
//! shard or a file outside the model directory. Each test copies a fixture into a temporary
//! directory and changes one thing.

use axle::hf::{HfError, WeightDtype, import_params, read_config, read_tensors, write_tensors};
use ndarray::ArrayD;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hf")
        .join(name)
}

/// The fixture `name` (config and weights, as one file) in a new temporary directory,
/// after `edit` changed its tensors.
fn edited(name: &str, edit: impl FnOnce(&mut axle::checkpoint::Tensors)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors = read_tensors(&fixture(name)).unwrap();
    edit(&mut tensors);
    write_tensors(tmp.path(), &tensors, WeightDtype::F32).unwrap();
    std::fs::copy(
        fixture(name).join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    tmp
}

fn import(dir: &Path) -> Result<axle::checkpoint::Tensors, HfError> {
    import_params(dir, &read_config(dir)?)
}

#[test]
fn a_missing_tensor_is_named() {
    let name = "model.layers.1.self_attn.k_proj.weight";
    let tmp = edited("llama", |t| {
        t.remove(name).unwrap();
    });
    let err = import(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::MissingTensor { name: n, .. } if n == name),
        "{err}"
    );
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn an_extra_tensor_is_named() {
    let name = "transformer.h.0.attn.q_norm.weight";
    let tmp = edited("gpt2", |t| {
        t.insert(name.into(), ArrayD::zeros(vec![12]));
    });
    let err = import(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::ExtraTensor { name: n, .. } if n == name),
        "{err}"
    );
    assert!(err.to_string().contains(name), "{err}");
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let name = "model.layers.0.self_attn.q_proj.bias";
    let tmp = edited("qwen2", |t| {
        t.insert(name.into(), ArrayD::zeros(vec![47]));
    });
    let err = import(tmp.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(&err, HfError::TensorShape { name: n, got, expected, .. }
            if n == name && got == &[47] && expected == &[48]),
        "{message}"
    );
    assert!(
        message.contains(name) && message.contains("[47]") && message.contains("[48]"),
        "{message}"
    );
}

#[test]
fn an_unknown_architecture_is_named() {
    let tmp = edited("llama", |_| {});
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("LlamaForCausalLM", "FalconForCausalLM")).unwrap();
    let err = read_config(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::UnknownArchitecture { architecture, .. } if architecture == "FalconForCausalLM"),
        "{err}"
    );
    assert!(err.to_string().contains("FalconForCausalLM"), "{err}");
}

#[test]
fn an_unsupported_rope_scaling_is_named() {
    let tmp = edited("llama3", |_| {});
    let path = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"llama3\"", "\"yarn\"")).unwrap();
    let err = read_config(tmp.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("rope_type") && message.contains("yarn"),
        "{message}"
    );
}

#[test]
fn a_tied_model_accepts_a_copy_of_the_embedding_as_lm_head_and_refuses_another() {
    let original = import(&fixture("llama3")).unwrap();
    let copy = edited("llama3", |t| {
        let embedding = t["model.embed_tokens.weight"].clone();
        t.insert("lm_head.weight".into(), embedding);
    });
    assert_eq!(import(copy.path()).unwrap(), original);
    let other = edited("llama3", |t| {
        let embedding = &t["model.embed_tokens.weight"] * 2.0;
        t.insert("lm_head.weight".into(), embedding);
    });
    let err = import(other.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::ExtraTensor { name, .. } if name.starts_with("lm_head.weight")),
        "{err}"
    );
}

#[test]
fn gpt2_tensors_without_the_transformer_prefix_import_the_same() {
    let original = import(&fixture("gpt2")).unwrap();
    let bare = edited("gpt2", |t| {
        *t = std::mem::take(t)
            .into_iter()
            .map(|(name, v)| (name.trim_start_matches("transformer.").to_string(), v))
            .collect();
    });
    assert_eq!(import(bare.path()).unwrap(), original);
}

#[test]
fn a_non_finite_value_is_refused_naming_the_tensor() {
    let name = "model.layers.0.mlp.up_proj.weight";
    let tmp = edited("llama3", |t| {
        t.get_mut(name).unwrap()[[1, 2]] = f32::NAN;
    });
    let err = import(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::NonFinite { name: n, .. } if n == name),
        "{err}"
    );
}

/// An f16 file whose value 1e5 overflowed to infinity (f16's largest finite value is 65504)
/// is refused naming the tensor.
#[test]
fn an_f16_value_that_overflowed_is_refused_naming_the_tensor() {
    let name = "transformer.h.1.mlp.c_fc.bias";
    let mut tensors = read_tensors(&fixture("gpt2")).unwrap();
    tensors.get_mut(name).unwrap()[[0]] = 1e5;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, t)| {
            let data = t
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect();
            (n.clone(), t.shape().to_vec(), data)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F16, shape.clone(), data)
                    .unwrap();
            (n.clone(), view)
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    safetensors::serialize_to_file(views, None, &tmp.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        fixture("gpt2").join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let err = import(tmp.path()).unwrap_err();
    assert!(
        matches!(&err, HfError::NonFinite { name: n, .. } if n == name),
        "{err}"
    );
}

#[test]
fn a_gpt2_tensor_under_both_names_is_given_twice() {
    let tmp = edited("gpt2", |t| {
        let wte = t["transformer.wte.weight"].clone();
        t.insert("wte.weight".into(), wte);
    });
    let err = import(tmp.path()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("transformer.wte.weight") && message.contains("given twice"),
        "{message}"
    );
}

/// The sharded llama fixture copied into a temporary directory, with `edit` applied to its
/// index's `weight_map`.
fn edited_index(
    edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture("llama")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, tmp.path().join(path.file_name().unwrap())).unwrap();
    }
    let index = tmp.path().join("model.safetensors.index.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
    edit(json["weight_map"].as_object_mut().unwrap());
    std::fs::write(&index, json.to_string()).unwrap();
    tmp
}

#[test]
fn a_shard_index_naming_the_wrong_shard_is_refused() {
    let name = "model.norm.weight";
    let mut wrong = String::new();
    let tmp = edited_index(|map| {
        let file = map[name].as_str().unwrap().to_string();
        wrong = map
            .values()
            .map(|f| f.as_str().unwrap().to_string())
            .find(|f| *f != file)
            .unwrap();
        map.insert(name.into(), wrong.clone().into());
    });
    let message = read_tensors(tmp.path()).unwrap_err().to_string();
    assert!(
        message.contains(name) && message.contains(&wrong) && message.contains("but it is in"),
        "{message}"
    );
}

#[test]
fn a_shard_index_leaving_the_model_directory_is_refused() {
    let name = "model.norm.weight";
    let tmp = edited_index(|map| {
        map.insert(name.into(), "../model.safetensors".into());
    });
    let message = read_tensors(tmp.path()).unwrap_err().to_string();
    assert!(
        message.contains(name)
            && message.contains("../model.safetensors")
            && message.contains("not a file inside"),
        "{message}"
    );
}

/// Nonsense `config.json` values are refused naming the config.json field (not axle's config
/// path): counts of 0, epsilons and RoPE bases at or below 0, key/value heads that do not
/// divide the heads.
#[test]
fn nonsense_config_values_are_refused_naming_the_field() {
    type Edit = fn(&mut serde_json::Value);
    let cases: [(&str, &str, Edit); 7] = [
        ("llama", "rms_norm_eps", |c| c["rms_norm_eps"] = 0.0.into()),
        ("llama", "rope_parameters.rope_theta", |c| {
            c["rope_parameters"]["rope_theta"] = (-1.0).into()
        }),
        ("mistral", "rope_theta", |c| {
            c.as_object_mut().unwrap().remove("rope_parameters");
            c["rope_theta"] = 0.0.into();
        }),
        ("llama", "max_position_embeddings", |c| {
            c["max_position_embeddings"] = 0.into()
        }),
        ("mistral", "num_key_value_heads", |c| {
            c["num_key_value_heads"] = 3.into()
        }),
        ("gpt2", "layer_norm_epsilon", |c| {
            c["layer_norm_epsilon"] = (-1e-5).into()
        }),
        ("gpt2", "n_positions", |c| c["n_positions"] = 0.into()),
    ];
    for (name, field, edit) in cases {
        let tmp = edited(name, |_| {});
        let path = tmp.path().join("config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut config);
        std::fs::write(&path, config.to_string()).unwrap();
        let err = read_config(tmp.path()).unwrap_err();
        assert!(
            matches!(&err, HfError::Config { field: f, .. } if f == field),
            "{name} {field}: {err}"
        );
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}
