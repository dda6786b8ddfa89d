//! The packed metrics vector of the train and eval steps (`axle::packed_metrics`), run on the
//! CPU plugin: every metric comes back under its name, vectors element by element, and the
//! constants of the program come from the layout without being computed on the device.

mod compiler_common;

use axle::backend::HostTensor;
use axle::compiler::DType;
use axle::packed_metrics::PackedMetrics;
use compiler_common::{f32s, run};
use ndarray::{ArrayD, IxDyn};

fn scalar(v: f32) -> HostTensor {
    HostTensor::F32(ArrayD::from_elem(IxDyn(&[]), v))
}

#[test]
fn scalars_vectors_and_constants_come_back_by_name_in_order() {
    let vector = HostTensor::F32(ArrayD::from_shape_vec(IxDyn(&[3]), vec![4.0, 5.0, 6.0]).unwrap());
    let mut layout = None;
    let out = run(
        "packed_metrics",
        vec![scalar(1.5), vector, scalar(-2.0)],
        |b, p| {
            let rate = b.scalar(1e-3, DType::F32);
            let (l, packed) = PackedMetrics::pack(&[
                ("loss", &p[0]),
                ("learning_rate", &rate),
                ("layer/rms", &p[1]),
                ("skipped", &p[2]),
            ]);
            layout = Some(l);
            vec![packed]
        },
    );
    let layout = layout.unwrap();
    let values: Vec<f32> = f32s(&out[0]).iter().copied().collect();
    // The constant learning rate is not in the device vector.
    assert_eq!((layout.len(), values.len()), (5, 5));
    assert_eq!(
        layout.names().collect::<Vec<_>>(),
        ["loss", "learning_rate", "layer/rms", "skipped"]
    );
    let named = layout.unpack(&values).unwrap();
    let want = [
        ("loss", 1.5),
        ("learning_rate", 1e-3_f32),
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

#[test]
fn metrics_that_are_all_constants_leave_an_empty_vector() {
    let mut layout = None;
    let out = run("constant_metrics", vec![scalar(0.0)], |b, _| {
        let (one, zero) = (b.scalar(1.0, DType::F32), b.scalar(0.0, DType::F32));
        let (l, packed) = PackedMetrics::pack(&[("a", &one), ("b", &zero)]);
        layout = Some(l);
        vec![packed]
    });
    let layout = layout.unwrap();
    assert!(layout.is_empty());
    assert_eq!(f32s(&out[0]).len(), 0);
    assert_eq!(
        layout.unpack(&[]).unwrap(),
        [("a".to_string(), 1.0), ("b".to_string(), 0.0)]
    );
}
