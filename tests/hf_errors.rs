//! Bad Hugging Face models are refused with errors naming what is at fault: a missing
//! tensor, an unexpected tensor, a tensor of the wrong shape, an unknown architecture, an
//! unsupported RoPE scaling, an untied `lm_head.weight` in a tied model; and the variants
//! that are fine are accepted (a tied head's copy, GPT-2 names without `transformer.`). Each
//! test copies a fixture into a temporary directory and changes one thing.

use axle::hf::{HfError, import_params, read_config, read_tensors, write_tensors};
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
    write_tensors(tmp.path(), &tensors).unwrap();
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
