//! Mesh rules: selectors, the default table, first-match order, overrides
//! and errors.

use axle_partition::{
    CompilerOption, MeshRule, MeshRules, MeshShape, MeshSource, choose_mesh, device_selector,
    glob_match, normalize_device_kind,
};

#[test]
fn selectors_from_platform_kind_and_count() {
    let cases: &[(&str, &str, usize, &str)] = &[
        ("cpu", "cpu", 8, "cpu-8"),
        ("cpu", "whatever the plugin says", 1, "cpu-1"),
        ("cuda", "NVIDIA H100 80GB HBM3", 8, "cuda-h100-8"),
        ("cuda", "NVIDIA A100-SXM4-80GB", 8, "cuda-a100-8"),
        ("CUDA", "NVIDIA H200", 1, "cuda-h200-1"),
        ("cuda", "NVIDIA GeForce RTX 4090", 2, "cuda-rtx4090-2"),
        ("cuda", "Tesla V100-SXM2-16GB", 4, "cuda-v100-4"),
        ("cuda", "", 2, "cuda-2"),
        ("rocm", "AMD Instinct MI300X", 8, "rocm-mi300x-8"),
        ("tpu", "TPU v4", 4, "tpu-v4-4"),
        ("tpu", "TPU v5 lite", 256, "tpu-v5e-256"),
        ("tpu", "TPU v5", 128, "tpu-v5p-128"),
        ("tpu", "TPU v5p", 128, "tpu-v5p-128"),
        ("tpu", "TPU v6 lite", 8, "tpu-v6e-8"),
    ];
    for (platform, kind, count, expected) in cases {
        assert_eq!(
            device_selector(platform, kind, *count),
            *expected,
            "{platform} {kind}"
        );
    }
    assert_eq!(normalize_device_kind("NVIDIA H100 (80GB)"), "h100");
}

#[test]
fn default_rules_choose_the_mesh() {
    // (selector, device count, chosen mesh, rule pattern)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("cpu-1", 1, "data=1", "cpu-*"),
        ("cpu-2", 2, "data=2", "cpu-*"),
        ("cpu-4", 4, "data=1,fsdp=4", "cpu-4"),
        ("cpu-8", 8, "data=2,fsdp=4", "cpu-8"),
        ("cuda-h100-1", 1, "fsdp=1", "cuda-h100-{1,2,4,8}"),
        ("cuda-h100-4", 4, "fsdp=4", "cuda-h100-{1,2,4,8}"),
        ("cuda-h100-8", 8, "fsdp=8", "cuda-h100-{1,2,4,8}"),
        ("cuda-a100-8", 8, "fsdp=8", "cuda-a100-{1,2,4,8}"),
        ("cuda-h200-4", 4, "fsdp=4", "cuda-h200-{1,2,4,8}"),
        ("cuda-h100-16", 16, "data=2,fsdp=8", "cuda-h100-*"),
        ("cuda-rtx4090-2", 2, "fsdp=2", "cuda-*"),
        ("cuda-rtx4090-1", 1, "data=1", "*-1"),
        ("tpu-v4-4", 4, "fsdp=4", "tpu-v4-{1,2,4,8}"),
        ("tpu-v4-8", 8, "fsdp=8", "tpu-v4-{1,2,4,8}"),
        ("tpu-v4-64", 64, "data=4,fsdp=16", "tpu-v4-*"),
        ("tpu-v5p-128", 128, "data=16,fsdp=8", "tpu-v5p-*"),
        ("tpu-v5p-4", 4, "fsdp=4", "tpu-v5p-{1,2,4}"),
        ("tpu-v5p-8", 8, "data=1,fsdp=8", "tpu-v5p-*"),
        ("tpu-v5e-256", 256, "fsdp=256", "tpu-v5e-*"),
        ("tpu-v6e-8", 8, "fsdp=8", "tpu-v6e-*"),
        ("tpu-v5e-1", 1, "fsdp=1", "tpu-v5e-*"),
    ];
    let rules = MeshRules::default();
    for (selector, devices, mesh, pattern) in cases {
        let choice = rules
            .select(selector, *devices)
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(choice.mesh.to_string(), *mesh, "{selector}");
        assert_eq!(
            choice.source,
            MeshSource::Rule {
                pattern: pattern.to_string(),
                selector: selector.to_string()
            }
        );
        assert!(choice.modifiers.is_empty());
    }
}

#[test]
fn first_match_wins_and_carries_modifiers() {
    let rules = MeshRules::new(vec![
        MeshRule::new("cpu-*", "data=-1", &["remat:full"]).unwrap(),
        MeshRule::new("cpu-8", "fsdp=-1", &["never"]).unwrap(),
    ]);
    let choice = rules.select("cpu-8", 8).unwrap();
    assert_eq!(choice.mesh.to_string(), "data=8");
    assert_eq!(choice.modifiers, vec!["remat:full".to_string()]);
}

#[test]
fn explicit_mesh_overrides_the_rules() {
    let explicit: MeshShape = "data=2,model=-1".parse().unwrap();
    let choice = choose_mesh(Some(&explicit), "cpu-8", &MeshRules::default(), 8).unwrap();
    assert_eq!(choice.mesh.to_string(), "data=2,model=4");
    assert_eq!(choice.source, MeshSource::Explicit);
    assert!(choice.modifiers.is_empty());
    // A user-given selector picks a rule whatever the hardware is.
    let choice = choose_mesh(None, "cuda-h100-16", &MeshRules::default(), 16).unwrap();
    assert_eq!(choice.mesh.to_string(), "data=2,fsdp=8");
}

#[test]
fn rule_errors() {
    let err = MeshRules::new(vec![]).select("cpu-8", 8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no mesh rule matches device selector `cpu-8`; pass an explicit mesh (e.g. `--mesh \
         data=-1`) or another selector"
    );
    let err = MeshRules::default().select("cuda-h100-12", 12).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mesh rule `cuda-h100-*` (chosen for selector `cuda-h100-12`): cannot infer the -1 axis of \
         mesh `data=-1,fsdp=8`: 12 devices are not divisible by the product 8 of the other axes"
    );
    let too_big: MeshShape = "data=16".parse().unwrap();
    let err = choose_mesh(Some(&too_big), "cpu-8", &MeshRules::default(), 8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "explicit mesh: mesh `data=16` needs 16 devices but only 8 are available"
    );
    assert!(MeshRule::new("cpu-*", "data=x", &[]).is_err());
}

#[test]
fn glob_patterns() {
    let cases: &[(&str, &str, bool)] = &[
        ("cpu-8", "cpu-8", true),
        ("cpu-8", "cpu-80", false),
        ("cpu-*", "cpu-8", true),
        ("cpu-*", "cpu-", true),
        ("cpu-*", "cuda-8", false),
        ("*-1", "cuda-h100-1", true),
        ("*-1", "cpu-16", false),
        ("*-1", "cpu-21", false),
        ("*", "", true),
        ("", "", true),
        ("", "x", false),
        ("tpu-*-*", "tpu-v5p-128", true),
        ("tpu-*-8", "tpu-v5p-128", false),
        ("*a*b*", "xxaxxbxx", true),
        ("*a*b", "xxaxxbxxb", true),
        ("*a*b", "xxbxxa", false),
        ("tpu-v5p-{1,2,4}", "tpu-v5p-2", true),
        ("tpu-v5p-{1,2,4}", "tpu-v5p-8", false),
        ("tpu-v5p-{1,2,4}", "tpu-v5p-16", false),
        ("{cpu,cuda}-*", "cuda-h100-8", true),
        ("{cpu,cuda}-*", "tpu-v4-8", false),
        ("x-{a,}", "x-", true),
        ("x-{a", "x-{a", true),
    ];
    for (pattern, text, expected) in cases {
        assert_eq!(glob_match(pattern, text), *expected, "{pattern} vs {text}");
    }
}

/// The names of the compiler options of the default rule `selector` matches.
fn option_names(selector: &str, devices: usize) -> Vec<String> {
    let choice = MeshRules::default().select(selector, devices).unwrap();
    choice
        .compiler_options
        .into_iter()
        .map(|o| o.name)
        .collect()
}

#[test]
fn default_rules_carry_xla_options_per_hardware() {
    // Every TPU generation: AXLearn's three common options.
    for (selector, devices) in [
        ("tpu-v4-8", 8),
        ("tpu-v5e-4", 4),
        ("tpu-v5p-4", 4),
        ("tpu-v6e-4", 4),
    ] {
        let names = option_names(selector, devices);
        assert!(
            names.contains(&"xla_tpu_enable_latency_hiding_scheduler".to_string()),
            "{selector}: {names:?}"
        );
    }
    // Continuation fusion of all-gathers on v5e only (libtpu refuses it on
    // v5p and v6e); megacore options on v5p (two TensorCores per chip).
    let fuse = "xla_tpu_enable_async_collective_fusion_fuse_all_gather".to_string();
    assert!(option_names("tpu-v5e-4", 4).contains(&fuse));
    assert!(!option_names("tpu-v5p-4", 4).contains(&fuse));
    assert!(!option_names("tpu-v6e-4", 4).contains(&fuse));
    assert!(
        option_names("tpu-v5p-16", 16).contains(&"xla_tpu_megacore_fusion_allow_ags".to_string())
    );
    for gpu in ["cuda-h100-8", "cuda-h200-16", "cuda-a100-4"] {
        let devices = gpu.rsplit('-').next().unwrap().parse().unwrap();
        let names = option_names(gpu, devices);
        assert!(
            names.contains(&"xla_gpu_enable_latency_hiding_scheduler".to_string()),
            "{gpu}: {names:?}"
        );
    }
    // CPU and unknown hardware: none.
    assert!(option_names("cpu-8", 8).is_empty());
    assert!(option_names("cuda-rtx4090-2", 2).is_empty());
}

#[test]
fn an_explicit_mesh_keeps_the_hardwares_compiler_options() {
    let explicit: MeshShape = "data=4".parse().unwrap();
    let choice = choose_mesh(Some(&explicit), "tpu-v5e-4", &MeshRules::default(), 4).unwrap();
    assert_eq!(choice.mesh.to_string(), "data=4");
    assert_eq!(choice.compiler_options_rule.as_deref(), Some("tpu-v5e-*"));
    assert_eq!(
        choice.compiler_options,
        MeshRules::default()
            .select("tpu-v5e-4", 4)
            .unwrap()
            .compiler_options
    );
    let choice = choose_mesh(Some(&explicit), "cpu-4", &MeshRules::default(), 4).unwrap();
    assert!(choice.compiler_options.is_empty());
}

#[test]
fn malformed_compiler_options_are_refused_naming_the_rule_and_option() {
    let rule = MeshRule::new("tpu-v5e-*", "fsdp=-1", &[]).unwrap();
    let err = rule
        .clone()
        .with_compiler_options(&[("xla_ok", "true"), ("--xla_tpu_x", "true")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mesh rule `tpu-v5e-*`") && err.contains("`--xla_tpu_x=true`"),
        "{err}"
    );
    let err = rule
        .with_compiler_options(&[("xla_tpu_x", "")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`xla_tpu_x=`") && err.contains("non-empty"),
        "{err}"
    );
    let option = CompilerOption::new("p", "xla_tpu_scoped_vmem_limit_kib", "98304").unwrap();
    assert_eq!(option.to_string(), "xla_tpu_scoped_vmem_limit_kib=98304");
}
