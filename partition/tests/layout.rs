//! Shard layouts: which block each device holds, checked by hand-computed
//! cases and by brute-force enumeration of every element.

mod common;

use axle_partition::{Mesh, PartitionSpec, ShardLayout, pspec};
use common::{check_blocks, check_coverage};

#[test]
fn hand_computed_blocks() {
    // Mesh data=2 x model=4; device i sits at (i / 4, i % 4).
    let mesh = Mesh::parse("data=2,model=4", 8).unwrap();
    // (spec, global shape, device, expected (start, len) per dim)
    type Case = (PartitionSpec, Vec<usize>, usize, Vec<(usize, usize)>);
    let cases: Vec<Case> = vec![
        // Device 5 = (data 1, model 1): rows split 4 ways by model -> block 1
        // of 2 rows; columns split 2 ways by data -> block 1 of 2 columns.
        (pspec!["model", "data"], vec![8, 4], 5, vec![(2, 2), (2, 2)]),
        // Both axes on dim 0, data major: block = data * 4 + model = device.
        (
            pspec![["data", "model"], _],
            vec![16, 3],
            6,
            vec![(12, 2), (0, 3)],
        ),
        // model major: block = model * 2 + data; device 6 = (1, 2) -> block 5.
        (
            pspec![["model", "data"], _],
            vec![16, 3],
            6,
            vec![(10, 2), (0, 3)],
        ),
        // Replicated over model: devices 0..4 hold the same rows 0..4.
        (pspec!["data", _], vec![8, 2], 3, vec![(0, 4), (0, 2)]),
        (pspec!["data", _], vec![8, 2], 4, vec![(4, 4), (0, 2)]),
        (
            PartitionSpec::replicated(2),
            vec![5, 7],
            7,
            vec![(0, 5), (0, 7)],
        ),
    ];
    for (spec, shape, device, expected) in cases {
        let layout = spec.shard_layout(&mesh, &shape, "t").unwrap();
        assert_eq!(
            layout.shard_slices(device, &shape).unwrap(),
            expected,
            "{spec} device {device}"
        );
    }
}

#[test]
fn every_element_once_per_replica_group() {
    let cases: &[(&str, &str, &[usize])] = &[
        ("data=8", "(data, _)", &[16, 3]),
        ("fsdp=8", "(fsdp, _)", &[8, 2]),
        ("data=2,model=4", "(model, data)", &[8, 4]),
        ("data=2,model=4", "(data, _, model)", &[2, 3, 4]),
        ("data=2,model=4", "(_, model)", &[3, 4]),
        ("data=2,seq=4", "(data, seq, _)", &[4, 8, 2]),
        ("data=2,fsdp=2,model=2", "(fsdp+data, model)", &[4, 6]),
        ("data=2,fsdp=2,model=2", "(model+fsdp+data)", &[16]),
        ("data=2,fsdp=2,model=2", "(_, _)", &[3, 2]),
        ("data=2,fsdp=2,model=2", "()", &[]),
    ];
    for (mesh_text, spec_text, shape) in cases {
        let mesh = Mesh::parse(mesh_text, 8).unwrap();
        let spec: PartitionSpec = spec_text.parse().unwrap();
        let layout = spec.shard_layout(&mesh, shape, "t").unwrap();
        check_coverage(&layout, shape).unwrap_or_else(|e| panic!("{mesh_text} {spec_text}: {e}"));
    }
}

#[test]
fn the_coverage_check_catches_gaps_and_overlaps() {
    // Two blocks of rows of a [4, 2] array in one replica group.
    let good = vec![(0, vec![(0, 2), (0, 2)]), (0, vec![(2, 2), (0, 2)])];
    assert_eq!(check_blocks(&[4, 2], 1, &good), Ok(()));
    let overlap = vec![(0, vec![(0, 3), (0, 2)]), (0, vec![(2, 2), (0, 2)])];
    assert_eq!(
        check_blocks(&[4, 2], 1, &overlap),
        Err("replica 0: element [2, 0] held 2 times".into())
    );
    let gap = vec![(0, vec![(0, 2), (0, 2)]), (0, vec![(2, 1), (0, 2)])];
    assert_eq!(
        check_blocks(&[4, 2], 1, &gap),
        Err("replica 0: element [3, 0] held 0 times".into())
    );
}

#[test]
fn replicas() {
    let mesh = Mesh::parse("data=2,fsdp=2,model=2", 8).unwrap();
    let layout = pspec!["fsdp", _].shard_layout(&mesh, &[4, 4], "t").unwrap();
    assert_eq!(layout.num_replicas(), 4);
    // Replica index = (data, model) row-major; device 5 = (1, 0, 1) -> 3.
    assert_eq!(layout.replica_index(5).unwrap(), 3);
    assert_eq!(layout.replica_index(0).unwrap(), 0);
    let full = pspec![["data", "fsdp", "model"]]
        .shard_layout(&mesh, &[8], "t")
        .unwrap();
    assert_eq!(full.num_replicas(), 1);
    let replicated = ShardLayout::replicated(vec![2, 2, 2], 2);
    assert_eq!(replicated.num_replicas(), 8);
    assert_eq!(replicated.shard_shape(&[3, 5]).unwrap(), vec![3, 5]);
}

#[test]
fn layout_errors() {
    let layout = ShardLayout {
        mesh_shape: vec![2, 4],
        dim_axes: vec![vec![0], vec![1]],
    };
    let cases: Vec<(ShardLayout, Vec<usize>, usize, &str)> = vec![
        (
            layout.clone(),
            vec![4],
            0,
            "layout has 2 dims but the array has shape [4]",
        ),
        (
            layout.clone(),
            vec![4, 6],
            0,
            "dim 1 of size 6 is not divisible into 4 shards",
        ),
        (
            layout.clone(),
            vec![4, 4],
            8,
            "shard 8 is out of range: the layout has 8 shards",
        ),
        (
            ShardLayout {
                mesh_shape: vec![2],
                dim_axes: vec![vec![1]],
            },
            vec![4],
            0,
            "dim 0 uses mesh axis index 1 but the mesh has 1 axes",
        ),
        (
            ShardLayout {
                mesh_shape: vec![2],
                dim_axes: vec![vec![0], vec![0]],
            },
            vec![4, 4],
            0,
            "mesh axis index 0 is used by dim 0 and again by dim 1",
        ),
    ];
    for (layout, shape, shard, message) in cases {
        let err = layout.shard_slices(shard, &shape).expect_err(message);
        assert_eq!(err.to_string(), message);
    }
}
