//! The packed metrics vector of the train and eval steps (`axle::packed_metrics`), run on the
//! CPU plugin: every metric comes back under its name, vectors element by element.

mod compiler_common;

use axle::backend::HostTensor;
use axle::packed_metrics::PackedMetrics;
use compiler_common::{f32s, run};
use ndarray::{ArrayD, IxDyn};

#[test]
fn scalars_and_vectors_come_back_by_name_in_order() {
    let scalar = |v: f32| HostTensor::F32(ArrayD::from_elem(IxDyn(&[]), v));
    let vector = HostTensor::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![4.0, 5.0, 6.0]).unwrap());
    let mut layout = None;
    let out = run(
        "packed_metrics",
        vec![scalar(1.5), vector, scalar(-2.0)],
        |_, p| {
            let (l, packed) =
                PackedMetrics::pack(&[("loss", &p[0]), ("layer/rms", &p[1]), ("skipped", &p[2])]);
            layout = Some(l);
            vec![packed]
        },
    );
    let layout = layout.unwrap();
    let values: Vec<f32> = f32s(&out[0]).iter().copied().collect();
    assert_eq!(layout.len(), 5);
    assert_eq!(
        layout.names().collect::<Vec<_>>(),
        ["loss", "layer/rms", "skipped"]
    );
    let named = layout.unpack(&values).unwrap();
    let want = [
        ("loss", 1.5),
        ("layer/rms/0", 4.0),
        ("layer/rms/1", 5.0),
        ("layer/rms/2", 6.0),
        ("skipped", -2.0),
    ];
    assert_eq!(named.len(), want.len());
    for ((name, value), (want_name, want_value)) in named.iter().zip(want) {
        assert_eq!((name.as_str(), *value), (want_name, want_value));
    }
    // A vector of another length is refused, not misread.
    assert!(layout.unpack(&values[..4]).is_none());
    assert!(layout.unpack(&[0.0; 6]).is_none());
}
