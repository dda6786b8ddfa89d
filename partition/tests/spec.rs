//! Partition specs: text form, validation errors, Shardy text, layouts.

use axle_partition::{DimSharding, MESH_SYMBOL, Mesh, PartitionSpec, ShardLayout, pspec};

fn mesh(text: &str) -> Mesh {
    Mesh::parse(text, 8).unwrap()
}

#[test]
fn text_form_round_trips() {
    // (input, canonical display, the same spec built by the macro)
    let cases: Vec<(&str, &str, PartitionSpec)> = vec![
        ("()", "()", pspec![]),
        ("(data)", "(data)", pspec!["data"]),
        (
            "(data+fsdp, _)",
            "(data+fsdp, _)",
            pspec![["data", "fsdp"], _],
        ),
        (
            " ( data + fsdp ,_ , model,? ) ",
            "(data+fsdp, _, model, ?)",
            pspec![["data", "fsdp"], _, "model", ?],
        ),
        (
            "(model+data, _, _)",
            "(model+data, _, _)",
            pspec![["model", "data"], _, _],
        ),
    ];
    for (text, display, built) in cases {
        let spec: PartitionSpec = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(spec, built, "{text}");
        assert_eq!(spec.to_string(), display, "{text}");
    }
    assert_eq!(
        PartitionSpec::new(vec![vec!["data".into(), "fsdp".into()], vec![]]),
        pspec![["data", "fsdp"], _]
    );
    assert_eq!(PartitionSpec::replicated(2).to_string(), "(_, _)");
    assert_eq!(PartitionSpec::unconstrained(2).to_string(), "(?, ?)");
    assert_eq!(pspec![?].dims(), &[DimSharding::Unconstrained]);
}

#[test]
fn text_form_errors() {
    let suffix = " (expected e.g. `(data+fsdp, _, model, ?)`)";
    let cases: &[(&str, &str)] = &[
        ("data", "must be enclosed in `(` and `)`"),
        ("(data,)", "dim 1 is empty (use `_` for not split)"),
        ("(da ta)", "dim 0: `da ta` is not an axis name"),
        ("(data++fsdp)", "dim 0: `` is not an axis name"),
        ("(_+data)", "dim 0: `_` is not an axis name"),
        ("(data, ?+model)", "dim 1: `?` is not an axis name"),
    ];
    for (text, reason) in cases {
        let err = text.parse::<PartitionSpec>().expect_err(text);
        assert_eq!(
            err.to_string(),
            format!("cannot parse partition spec `{text}`: {reason}{suffix}")
        );
    }
}

#[test]
fn validation_errors_name_path_dim_and_sizes() {
    let path = "decoder/layers/3/attention/q_proj/weight";
    let cases: Vec<(&str, PartitionSpec, Vec<usize>, String)> = vec![
        (
            "data=2,model=4",
            pspec!["data", _],
            vec![16, 8, 2],
            format!(
                "`{path}`: partition spec (data, _) has rank 2 but the tensor has shape [16, 8, 2]"
            ),
        ),
        (
            "data=2,model=4",
            pspec!["fsdp", _],
            vec![16, 8],
            format!(
                "`{path}`: dim 0 is sharded over axis `fsdp`, which mesh `data=2,model=4` does not have"
            ),
        ),
        (
            "data=2,model=4",
            pspec!["model", "model"],
            vec![16, 8],
            format!("`{path}`: mesh axis `model` is used by dim 0 and again by dim 1"),
        ),
        (
            "data=2,model=4",
            pspec![["data", "data"], _],
            vec![16, 8],
            format!("`{path}`: mesh axis `data` is used by dim 0 and again by dim 0"),
        ),
        (
            "data=2,model=4",
            pspec![_, "model"],
            vec![16, 6],
            format!(
                "`{path}`: dim 1 of size 6 is not divisible by 4 = product of its mesh axes model=4"
            ),
        ),
        (
            "data=2,model=4",
            pspec![["data", "model"], _],
            vec![12, 8],
            format!(
                "`{path}`: dim 0 of size 12 is not divisible by 8 = product of its mesh axes \
                 data=2 x model=4"
            ),
        ),
    ];
    for (mesh_text, spec, shape, message) in cases {
        let err = spec
            .validate(&mesh(mesh_text), &shape, path)
            .expect_err(&message);
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn valid_specs_pass() {
    let m = mesh("data=2,fsdp=2,model=2");
    let cases: Vec<(PartitionSpec, Vec<usize>, Vec<usize>)> = vec![
        (pspec![], vec![], vec![]),
        (pspec![["data", "fsdp"], _, ?], vec![8, 3, 5], vec![2, 3, 5]),
        (pspec!["fsdp", "model"], vec![4, 6], vec![2, 3]),
        (
            pspec![_, ["model", "data", "fsdp"]],
            vec![1, 16],
            vec![1, 2],
        ),
        (pspec![["data"], _], vec![0, 7], vec![0, 7]),
    ];
    for (spec, shape, shard_shape) in cases {
        spec.validate(&m, &shape, "p")
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            spec.shard_shape(&m, &shape, "p").unwrap(),
            shard_shape,
            "{spec}"
        );
    }
}

#[test]
fn shardy_text() {
    // (spec, argument/result attribute, sharding_constraint form)
    let cases: Vec<(PartitionSpec, &str, &str)> = vec![
        // The two forms verified on both CPU plugins (docs/design.md).
        (
            pspec!["data", _],
            r#"#sdy.sharding<@mesh, [{"data"}, {}]>"#,
            r#"<@mesh, [{"data"}, {}]>"#,
        ),
        (
            pspec!["data", ?],
            r#"#sdy.sharding<@mesh, [{"data"}, {?}]>"#,
            r#"<@mesh, [{"data"}, {?}]>"#,
        ),
        (
            pspec!["data", "model"],
            r#"#sdy.sharding<@mesh, [{"data"}, {"model"}]>"#,
            r#"<@mesh, [{"data"}, {"model"}]>"#,
        ),
        // Several axes on one dim: major to minor, in the order given.
        (
            pspec![["data", "fsdp"], _, _],
            r#"#sdy.sharding<@mesh, [{"data", "fsdp"}, {}, {}]>"#,
            r#"<@mesh, [{"data", "fsdp"}, {}, {}]>"#,
        ),
        (
            pspec![["model", "data"]],
            r#"#sdy.sharding<@mesh, [{"model", "data"}]>"#,
            r#"<@mesh, [{"model", "data"}]>"#,
        ),
        // Fully replicated, and a scalar.
        (
            PartitionSpec::replicated(2),
            r#"#sdy.sharding<@mesh, [{}, {}]>"#,
            r#"<@mesh, [{}, {}]>"#,
        ),
        (pspec![], r#"#sdy.sharding<@mesh, []>"#, r#"<@mesh, []>"#),
    ];
    for (spec, attribute, constraint) in cases {
        assert_eq!(spec.sdy_sharding(MESH_SYMBOL), attribute, "{spec}");
        assert_eq!(spec.sdy_constraint(MESH_SYMBOL), constraint, "{spec}");
    }
    assert_eq!(
        pspec!["data"].sdy_sharding("mesh_2"),
        r#"#sdy.sharding<@mesh_2, [{"data"}]>"#
    );
}

#[test]
fn shard_layout_uses_mesh_axis_indices() {
    let m = mesh("data=2,fsdp=2,model=2");
    let layout = pspec![["fsdp", "data"], _, "model"]
        .shard_layout(&m, &[8, 3, 4], "w")
        .unwrap();
    assert_eq!(
        layout,
        ShardLayout {
            mesh_shape: vec![2, 2, 2],
            dim_axes: vec![vec![1, 0], vec![], vec![2]]
        }
    );
    let err = pspec!["data", ?]
        .shard_layout(&m, &[8, 4], "act")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`act`: dim 1 is unconstrained (`?`), which has no fixed shard layout"
    );
    let err = pspec!["seq"].shard_layout(&m, &[8], "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "`x`: dim 0 is sharded over axis `seq`, which mesh `data=2,fsdp=2,model=2` does not have"
    );
}

#[test]
fn restricted_to_drops_axes_the_mesh_lacks_or_has_with_size_one() {
    let mesh = Mesh::new(&[("data", 2), ("fsdp", 1), ("model", 4)], 8).unwrap();
    let spec = pspec![["data", "fsdp"], "model", "seq", "modle"];
    assert_eq!(
        spec.restricted_to(&mesh).to_string(),
        "(data, model, _, modle)"
    );
    let err = spec
        .restricted_to(&mesh)
        .validate(&mesh, &[4, 8, 2, 2], "w")
        .unwrap_err();
    assert!(err.to_string().contains("modle"), "{err}");
}
