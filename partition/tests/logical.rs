//! Logical roles resolved per mesh: the same layer specs give data parallel,
//! FSDP, tensor and sequence parallel shardings.

use axle_partition::{LogicalAxis, LogicalRules, LogicalSpec, Mesh, PartitionSpec};

#[test]
fn roles_resolve_per_mesh() {
    // (mesh, logical spec, expected partition spec)
    let cases: &[(&str, &str, &str)] = &[
        // Data parallel: only the batch is split.
        ("data=8", "(batch, seq, _)", "(data, _, _)"),
        ("data=8", "(embed, mlp)", "(_, _)"),
        // FSDP (+ data): weights split on their embed side, batch over both.
        ("data=2,fsdp=4", "(batch, seq, _)", "(data+fsdp, _, _)"),
        ("data=2,fsdp=4", "(embed, mlp)", "(fsdp, _)"),
        ("data=2,fsdp=4", "(mlp, embed)", "(_, fsdp)"),
        ("data=2,fsdp=4", "(vocab, embed)", "(_, fsdp)"),
        // Embedding tables: rows over fsdp, width over model.
        ("data=2,fsdp=4", "(table_vocab, table_embed)", "(fsdp, _)"),
        ("data=2,model=4", "(table_vocab, table_embed)", "(_, model)"),
        ("data=2,fsdp=4", "(embed, vocab)", "(fsdp, _)"),
        // Size-1 axes are dropped.
        ("data=1,fsdp=8", "(batch, seq, _)", "(fsdp, _, _)"),
        // Tensor parallel: heads, MLP hidden and vocab over model.
        ("data=2,model=4", "(embed, mlp)", "(_, model)"),
        ("data=2,model=4", "(mlp, embed)", "(model, _)"),
        ("data=2,model=4", "(embed, heads, _)", "(_, model, _)"),
        ("data=2,model=4", "(batch, seq, vocab)", "(data, _, model)"),
        // Sequence parallel: activations over seq; weights too (AXLearn's
        // fsdp_axis_names include seq).
        ("data=2,seq=4", "(batch, seq, _)", "(data, seq, _)"),
        ("data=2,seq=4", "(embed, mlp)", "(seq, _)"),
        // Three axes.
        (
            "fsdp=2,seq=2,model=2",
            "(batch, seq, vocab)",
            "(fsdp, seq, model)",
        ),
        (
            "fsdp=2,seq=2,model=2",
            "(embed, heads, _)",
            "(fsdp+seq, model, _)",
        ),
        ("data=2,fsdp=2,model=2", "(vocab, embed)", "(model, fsdp)"),
        ("data=2,fsdp=2,model=2", "(embed, vocab)", "(fsdp, model)"),
        (
            "data=2,fsdp=2,model=2",
            "(table_vocab, table_embed)",
            "(fsdp, model)",
        ),
        // An axis taken by an earlier dim is not used again.
        ("data=2,fsdp=4", "(embed, embed)", "(fsdp, _)"),
        ("data=2,fsdp=4", "(batch, seq, embed)", "(data+fsdp, _, _)"),
        ("fsdp=2,seq=4", "(seq, embed)", "(seq, fsdp)"),
        // Unconstrained dims stay open for propagation.
        ("data=2,fsdp=4", "(batch, ?)", "(data+fsdp, ?)"),
        ("data=2,fsdp=4", "()", "()"),
    ];
    let rules = LogicalRules::default();
    for (mesh_text, logical_text, expected) in cases {
        let mesh = Mesh::parse(mesh_text, 8).unwrap();
        let logical: LogicalSpec = logical_text.parse().unwrap();
        assert_eq!(logical.to_string(), *logical_text);
        let spec = rules.resolve(&logical, &mesh);
        assert_eq!(spec.to_string(), *expected, "{mesh_text} {logical_text}");
    }
}

#[test]
fn rules_can_be_overridden() {
    let mut rules = LogicalRules::default();
    rules
        .set(LogicalAxis::Embed, &["fsdp"])
        .set(LogicalAxis::Replicated, &["data"]);
    assert_eq!(rules.axes_for(LogicalAxis::Embed), &["fsdp".to_string()]);
    assert!(rules.axes_for(LogicalAxis::Replicated).is_empty());
    let mesh = Mesh::parse("data=2,seq=4", 8).unwrap();
    let logical: LogicalSpec = "(embed, mlp, _)".parse().unwrap();
    assert_eq!(rules.resolve(&logical, &mesh), PartitionSpec::replicated(3));
}

#[test]
fn typos_in_rules_are_kept_for_validation_to_report() {
    let mut rules = LogicalRules::default();
    rules.set(LogicalAxis::Mlp, &["modle"]);
    let mesh = Mesh::parse("fsdp=8", 8).unwrap();
    let spec = rules.resolve(&"(mlp, embed)".parse().unwrap(), &mesh);
    assert_eq!(spec.to_string(), "(modle, fsdp)");
    let err = spec
        .validate(&mesh, &[704, 256], "ffn/down_proj/weight")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`ffn/down_proj/weight`: dim 0 is sharded over axis `modle`, which mesh `fsdp=8` does not have"
    );
}

#[test]
fn sequence_splitting_follows_the_rules() {
    let mesh = Mesh::parse("data=2,seq=4", 8).unwrap();
    let mut rules = LogicalRules::default();
    assert!(rules.splits_sequence(&mesh));
    assert!(!rules.splits_sequence(&Mesh::parse("data=8", 8).unwrap()));
    rules.set(LogicalAxis::Seq, &[]);
    assert!(!rules.splits_sequence(&mesh));
    // Sequence parallel over `model`, chosen by rules alone.
    rules.set(LogicalAxis::Seq, &["model"]);
    assert!(rules.splits_sequence(&Mesh::parse("data=2,model=4", 8).unwrap()));
}

#[test]
fn rules_serialize_as_a_map_of_roles_to_mesh_axes() {
    let rules = LogicalRules::default();
    let json = serde_json::to_value(&rules).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "batch": ["data", "expert", "fsdp"],
            "seq": ["seq"],
            "embed": ["expert", "fsdp", "seq"],
            "heads": ["model"],
            "mlp": ["model"],
            "vocab": ["model"],
            "table_vocab": ["expert", "fsdp", "seq"],
            "table_embed": ["model"],
            "layers": [],
        })
    );
    assert_eq!(serde_json::from_value::<LogicalRules>(json).unwrap(), rules);
    // A role left out keeps its default; one given replaces it.
    let partial: LogicalRules =
        serde_json::from_value(serde_json::json!({"heads": [], "layers": ["pipeline"]})).unwrap();
    let mut want = LogicalRules::default();
    want.set(LogicalAxis::Heads, &[])
        .set(LogicalAxis::Layers, &["pipeline"]);
    assert_eq!(partial, want);
    let err = serde_json::from_value::<LogicalRules>(serde_json::json!({"hidden": []}))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "unknown role `hidden` (known: batch, seq, embed, heads, mlp, vocab, table_vocab, table_embed, layers)"
    );
    let err = serde_json::from_value::<LogicalRules>(serde_json::json!({"mlp": ["modle"]}))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "role `mlp`: unknown mesh axis `modle` (known axes: pipeline, data, expert, fsdp, seq, model)"
    );
}

#[test]
fn logical_text_errors() {
    let err = "(batch, hidden)".parse::<LogicalSpec>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot parse partition spec `(batch, hidden)`: unknown role `hidden` (known: batch, seq, \
         embed, heads, mlp, vocab, table_vocab, table_embed, layers, _, ?) (expected e.g. `(data+fsdp, _, model, ?)`)"
    );
    assert!("batch".parse::<LogicalSpec>().is_err());
}
