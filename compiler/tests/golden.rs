//! The emitted StableHLO of a small function matches the reviewed golden
//! file `tests/golden/mlp_step.mlir`. Regenerate with `AXLE_BLESS=1`.

use axle_compiler::{DType, FunctionBuilder, value_and_grad};

fn small_step() -> String {
    let b = FunctionBuilder::new("mlp_step");
    let x = b.param("x", DType::F32, &[2, 3]);
    let w = b.param("w", DType::F32, &[3, 2]);
    let labels = b.param("labels", DType::I32, &[2]);
    let logits = x.matmul(&w).tanh();
    let logp = logits.log_softmax(-1);
    let loss = -logp.take_along_axis(&labels.expand_dims(-1), -1).mean_all();
    let (loss, g) = value_and_grad(&loss, &[&w]);
    let mut f = b
        .build(&[("loss", &loss), ("w_new", &(&w - &(&g[0] * 0.1)))])
        .unwrap();
    f.add_mesh("sdy.mesh @mesh = <[\"data\"=1]>");
    f.set_param_sharding("x", "<@mesh, [{\"data\"}, {}]>")
        .unwrap();
    f.donate("w", "w_new").unwrap();
    f.to_stablehlo()
}

#[test]
fn emitted_text_matches_golden_file() {
    let text = small_step();
    assert_eq!(text, small_step(), "emission must be deterministic");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mlp_step.mlir");
    if std::env::var("AXLE_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(path).expect("golden file; create it with AXLE_BLESS=1");
    assert_eq!(
        text, golden,
        "emitted text changed; review and re-bless with AXLE_BLESS=1"
    );
}
