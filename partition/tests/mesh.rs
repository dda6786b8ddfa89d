//! Meshes: parsing, inference of the -1 axis, device lists, errors, Shardy
//! declarations.

use axle_partition::{AxisSize, MESH_SYMBOL, Mesh, MeshShape};

#[test]
fn parse_and_resolve() {
    // (text, devices available, resolved mesh, its device list)
    let cases: &[(&str, usize, &str, Vec<usize>)] = &[
        ("data=2,model=-1", 8, "data=2,model=4", (0..8).collect()),
        ("data=-1", 8, "data=8", (0..8).collect()),
        (
            " data = 2 , fsdp = 4 ",
            8,
            "data=2,fsdp=4",
            (0..8).collect(),
        ),
        ("fsdp=4", 8, "fsdp=4", (0..4).collect()),
        ("data=1", 1, "data=1", vec![0]),
        ("data=-1,fsdp=4", 4, "data=1,fsdp=4", (0..4).collect()),
        (
            "pipeline=1,data=1,expert=1,fsdp=2,seq=2,model=2",
            8,
            "pipeline=1,data=1,expert=1,fsdp=2,seq=2,model=2",
            (0..8).collect(),
        ),
    ];
    for (text, devices, expected, device_list) in cases {
        let mesh = Mesh::parse(text, *devices).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(mesh.to_string(), *expected, "{text}");
        assert_eq!(mesh.devices(), device_list.as_slice(), "{text}");
        assert_eq!(mesh.size(), device_list.len(), "{text}");
    }
}

#[test]
fn new_matches_parse() {
    let mesh = Mesh::new(&[("data", 2), ("model", -1)], 8).unwrap();
    assert_eq!(mesh, Mesh::parse("data=2,model=-1", 8).unwrap());
    assert_eq!(mesh.axis_names(), vec!["data", "model"]);
    assert_eq!(mesh.shape(), vec![2, 4]);
    assert_eq!(mesh.axis_index("model"), Some(1));
    assert_eq!(mesh.axis_size("model"), Some(4));
    assert_eq!(mesh.axis_size("fsdp"), None);
}

#[test]
fn errors_name_the_mesh_and_the_sizes() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "data=2,model=8",
            8,
            "mesh `data=2,model=8` needs 16 devices but only 8 are available",
        ),
        (
            "data=3,model=-1",
            8,
            "cannot infer the -1 axis of mesh `data=3,model=-1`: 8 devices are not divisible by \
             the product 3 of the other axes",
        ),
        (
            "data=-1,model=-1",
            8,
            "mesh axes `data` and `model` both have size -1; at most one size can be inferred",
        ),
        ("data=2,data=2", 8, "mesh axis `data` appears twice"),
        ("data=2,fsdp=2,data=2", 8, "mesh axis `data` appears twice"),
        (
            "model=2,data=2",
            8,
            "mesh axis `data` must come before `model` (canonical order: pipeline, data, expert, \
             fsdp, seq, model)",
        ),
        (
            "data=0",
            8,
            "mesh axis `data` has size 0; sizes must be >= 1, or -1 to infer one axis",
        ),
        (
            "data=-2",
            8,
            "mesh axis `data` has size -2; sizes must be >= 1, or -1 to infer one axis",
        ),
        (
            "dta=2",
            8,
            "unknown mesh axis `dta` (known axes, in order: pipeline, data, expert, fsdp, seq, model)",
        ),
        ("", 8, "a mesh needs at least one axis (e.g. `data=1`)"),
        (
            "data",
            8,
            "cannot parse mesh `data`: entry `data` has no `=` (expected e.g. `data=2,fsdp=4`)",
        ),
        (
            "data=two",
            8,
            "cannot parse mesh `data=two`: size `two` of axis `data` is not an integer (expected \
             e.g. `data=2,fsdp=4`)",
        ),
        (
            "data=2,,fsdp=2",
            8,
            "cannot parse mesh `data=2,,fsdp=2`: empty entry between commas (expected e.g. \
             `data=2,fsdp=4`)",
        ),
        (
            "=2",
            8,
            "cannot parse mesh `=2`: entry `=2` has no axis name (expected e.g. `data=2,fsdp=4`)",
        ),
    ];
    for (text, devices, message) in cases {
        let err = Mesh::parse(text, *devices).expect_err(text);
        assert_eq!(err.to_string(), *message, "{text}");
    }
}

#[test]
fn mesh_over_a_chosen_device_list() {
    let mesh = Mesh::with_devices(&[("data", 2), ("model", -1)], &[7, 6, 5, 4]).unwrap();
    assert_eq!(mesh.to_string(), "data=2,model=2");
    assert_eq!(mesh.devices(), &[7, 6, 5, 4]);
    // Row-major: position 1 is (data 0, model 1), position 2 is (data 1, model 0).
    assert_eq!(mesh.coords(1), Some(vec![0, 1]));
    assert_eq!(mesh.coords(2), Some(vec![1, 0]));
    assert_eq!(mesh.coords(4), None);

    let err = Mesh::with_devices(&[("data", 2)], &[0, 1, 2]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mesh `data=2` has 2 positions but the device list has 3 devices"
    );
    let err = Mesh::with_devices(&[("data", 2)], &[3, 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "device 3 appears twice in the device list of mesh `data=2`"
    );
}

#[test]
fn shape_keeps_the_inferred_axis_until_resolved() {
    let shape: MeshShape = "data=-1,fsdp=4".parse().unwrap();
    assert_eq!(
        shape.axes(),
        &[
            ("data".to_string(), AxisSize::Infer),
            ("fsdp".to_string(), AxisSize::Fixed(4))
        ]
    );
    assert_eq!(shape.to_string(), "data=-1,fsdp=4");
    assert_eq!(shape.resolve(8).unwrap().to_string(), "data=2,fsdp=4");
    assert_eq!(shape.resolve(16).unwrap().to_string(), "data=4,fsdp=4");
}

#[test]
fn shardy_mesh_declarations() {
    // The first line is the form verified on both CPU plugins (docs/design.md).
    let cases: &[(&str, &str)] = &[
        (
            "data=2,model=2",
            r#"sdy.mesh @mesh = <["data"=2, "model"=2]>"#,
        ),
        ("fsdp=8", r#"sdy.mesh @mesh = <["fsdp"=8]>"#),
        // Size-1 axes stay in the mesh (Shardy accepts them; specs resolved
        // from logical roles just never use them).
        (
            "data=1,fsdp=8",
            r#"sdy.mesh @mesh = <["data"=1, "fsdp"=8]>"#,
        ),
        (
            "data=2,seq=2,model=2",
            r#"sdy.mesh @mesh = <["data"=2, "seq"=2, "model"=2]>"#,
        ),
    ];
    for (text, expected) in cases {
        let mesh = Mesh::parse(text, 8).unwrap();
        assert_eq!(mesh.sdy_mesh_op(MESH_SYMBOL), *expected, "{text}");
    }
    // Device lists never appear: partition i runs on devices()[i] through the
    // compile options' device assignment.
    let mesh = Mesh::with_devices(&[("data", 2)], &[1, 0]).unwrap();
    assert_eq!(mesh.sdy_mesh_attr(), r#"<["data"=2]>"#);
}
