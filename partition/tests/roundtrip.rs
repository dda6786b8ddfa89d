//! Property tests (32 cases each, small sizes): text forms round-trip, and
//! every valid layout covers each element exactly once per replica group.

mod common;

use axle_partition::{
    DimSharding, LogicalAxis, LogicalSpec, MESH_AXIS_NAMES, MeshShape, PartitionSpec,
};
use common::check_coverage;
use proptest::prelude::*;
use proptest::sample::subsequence;

/// Mesh shapes: a non-empty ordered subset of the canonical axes, sizes 1..4,
/// maybe one -1.
fn mesh_shapes() -> impl Strategy<Value = MeshShape> {
    subsequence(MESH_AXIS_NAMES.to_vec(), 1..=MESH_AXIS_NAMES.len())
        .prop_flat_map(|names| {
            let n = names.len();
            (
                Just(names),
                prop::collection::vec(1i64..4, n),
                prop::option::of(0..n),
            )
        })
        .prop_map(|(names, mut sizes, inferred)| {
            if let Some(i) = inferred {
                sizes[i] = -1;
            }
            let axes: Vec<(&str, i64)> = names.into_iter().zip(sizes).collect();
            MeshShape::new(&axes).unwrap()
        })
}

/// Partition specs of rank 0..4 over the canonical names (validity against a
/// mesh is not needed for the text form).
fn partition_specs() -> impl Strategy<Value = PartitionSpec> {
    let dim = prop_oneof![
        Just(DimSharding::Unconstrained),
        prop::collection::vec(prop::sample::select(MESH_AXIS_NAMES.to_vec()), 0..3)
            .prop_map(|axes| DimSharding::Axes(axes.into_iter().map(String::from).collect())),
    ];
    prop::collection::vec(dim, 0..4).prop_map(PartitionSpec::from_dims)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn mesh_shape_text_round_trips(shape in mesh_shapes()) {
        prop_assert_eq!(shape.to_string().parse::<MeshShape>().unwrap(), shape);
    }

    #[test]
    fn resolved_mesh_text_round_trips(shape in mesh_shapes(), extra in 1usize..3) {
        // Enough devices for every fixed axis times `extra` for the -1 one.
        let fixed: usize = shape.axes().iter().map(|(_, s)| match s {
            axle_partition::AxisSize::Fixed(n) => *n,
            axle_partition::AxisSize::Infer => extra,
        }).product();
        let mesh = shape.resolve(fixed).unwrap();
        prop_assert_eq!(mesh.size(), fixed);
        let again = mesh.to_string().parse::<MeshShape>().unwrap().resolve(fixed).unwrap();
        prop_assert_eq!(again, mesh);
    }

    #[test]
    fn partition_spec_text_round_trips(spec in partition_specs()) {
        prop_assert_eq!(spec.to_string().parse::<PartitionSpec>().unwrap(), spec);
    }

    #[test]
    fn logical_spec_text_round_trips(
        roles in prop::collection::vec(prop::sample::select(LogicalAxis::ALL.to_vec()), 0..5)
    ) {
        let spec = LogicalSpec(roles);
        prop_assert_eq!(spec.to_string().parse::<LogicalSpec>().unwrap(), spec);
    }

    #[test]
    fn layouts_cover_each_element_once_per_replica(
        sizes in prop::collection::vec(1usize..4, 1..4),
        rank in 0usize..4,
        // For each mesh axis: the dim it splits (>= rank: none) and a sort key
        // giving its major-to-minor position within that dim.
        placement in prop::collection::vec((0usize..5, 0u8..8), 3),
        multipliers in prop::collection::vec(1usize..3, 3),
    ) {
        let names = &MESH_AXIS_NAMES[..sizes.len()];
        let axes: Vec<(&str, i64)> = names.iter().zip(&sizes).map(|(n, &s)| (*n, s as i64)).collect();
        let mesh = MeshShape::new(&axes).unwrap().resolve(sizes.iter().product()).unwrap();
        let mut dims: Vec<Vec<(u8, String)>> = vec![Vec::new(); rank];
        for (axis, &(dim, key)) in names.iter().zip(&placement) {
            if dim < rank {
                dims[dim].push((key, axis.to_string()));
            }
        }
        let dims: Vec<Vec<String>> = dims.into_iter().map(|mut d| {
            d.sort();
            d.into_iter().map(|(_, a)| a).collect()
        }).collect();
        let shape: Vec<usize> = dims.iter().zip(&multipliers).map(|(d, m)| {
            d.iter().map(|a| mesh.axis_size(a).unwrap()).product::<usize>() * m
        }).collect();
        let spec = PartitionSpec::new(dims);
        let layout = spec.shard_layout(&mesh, &shape, "t").unwrap();
        prop_assert_eq!(check_coverage(&layout, &shape), Ok(()));
    }
}
