//! 1,000 executions of one program keep the process's resident memory flat:
//! every buffer, event and error handle is freed. Its own test binary, so no
//! other test allocates while it measures.

use axle_runtime::{Client, CompileOptions};

/// Resident set size in bytes, from /proc/self/statm (pages x page size).
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[test]
fn a_thousand_executions_keep_rss_flat() {
    let client = Client::cpu(1).unwrap();
    let program = "func.func public @main(%a: tensor<256x256xf32>, %b: tensor<256x256xf32>) -> tensor<256x256xf32> {
  %0 = stablehlo.add %a, %b : tensor<256x256xf32>
  return %0 : tensor<256x256xf32>
}";
    let exe = client
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let data = vec![1.0f32; 256 * 256];
    let step = || {
        // New inputs, an execution, outputs read back and dropped: 256 KiB
        // per buffer, 768 KiB per step, 750 MiB over the run if anything leaked.
        let a = client.buffer_from_slice(&data, &[256, 256], 0).unwrap();
        let b = client.buffer_from_slice(&data, &[256, 256], 0).unwrap();
        let out = exe.execute_one(&[&a, &b]).unwrap();
        assert_eq!(out[0].to_vec::<f32>().unwrap()[0], 2.0);
        // An error path too: a wrong-shape argument is refused.
        assert!(exe.execute_one(&[&a]).is_err());
    };
    for _ in 0..100 {
        step();
    }
    let before = rss_bytes();
    for _ in 0..1000 {
        step();
    }
    let growth = rss_bytes().saturating_sub(before);
    // Generous bound: allocator caching and lazily touched pages may add a few
    // MiB; a leak of one buffer per step would add 256 MiB.
    assert!(
        growth < 20 << 20,
        "RSS grew by {} KiB over 1,000 executions",
        growth >> 10
    );
    eprintln!("RSS growth over 1,000 executions: {} KiB", growth >> 10);
}
