//! Runtime speed on the default CPU plugin:
//! - host → device → host of a 64 MiB f32 buffer, against a plain memcpy of
//!   the same bytes on the same machine;
//! - per-execute overhead of a trivial program (goal: under 20 µs per call).
//!
//! Run with `cargo bench --bench runtime`.

use axle_runtime::{Client, CompileOptions};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ELEMENTS: usize = 16 << 20; // 16 Mi f32 = 64 MiB

fn transfer(c: &mut Criterion) {
    let client = Client::cpu(1).expect("default CPU plugin");
    let host: Vec<f32> = (0..ELEMENTS).map(|i| i as f32).collect();
    let mut back = vec![0u8; ELEMENTS * 4];
    let mut group = c.benchmark_group("transfer_64MiB_f32");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((ELEMENTS * 4) as u64));
    group.bench_function("host_device_host", |b| {
        b.iter(|| {
            let buffer = client.buffer_from_slice(&host, &[ELEMENTS], 0).unwrap();
            buffer.copy_to_bytes(&mut back).unwrap();
        })
    });
    let buffer = client.buffer_from_slice(&host, &[ELEMENTS], 0).unwrap();
    group.bench_function("host_to_device", |b| {
        b.iter(|| client.buffer_from_slice(&host, &[ELEMENTS], 0).unwrap())
    });
    group.bench_function("device_to_host", |b| {
        b.iter(|| buffer.copy_to_bytes(&mut back).unwrap())
    });
    group.bench_function("alloc_memcpy", |b| {
        // What host_to_device does at best: a fresh 64 MiB allocation, filled.
        b.iter(|| std::hint::black_box(&host).to_vec())
    });
    let mut copy = vec![0f32; ELEMENTS];
    group.bench_function("memcpy_twice", |b| {
        // The round trip copies the data twice (in and out): so does this.
        b.iter(|| {
            copy.copy_from_slice(std::hint::black_box(&host));
            back.copy_from_slice(bytemuck_bytes(std::hint::black_box(&copy)));
        })
    });
    group.finish();
}

fn bytemuck_bytes(values: &[f32]) -> &[u8] {
    // SAFETY: any f32 bit pattern is valid as bytes; the length is exact.
    unsafe { std::slice::from_raw_parts(values.as_ptr().cast(), std::mem::size_of_val(values)) }
}

fn execute_overhead(c: &mut Criterion) {
    let client = Client::cpu(1).expect("default CPU plugin");
    let program = "func.func public @main(%a: tensor<f32>) -> tensor<f32> {
  %0 = stablehlo.negate %a : tensor<f32>
  return %0 : tensor<f32>
}";
    let exe = client
        .compile(program, &CompileOptions::single_device())
        .unwrap();
    let input = client.buffer_from_slice(&[1.5f32], &[], 0).unwrap();
    c.bench_function("execute_trivial_program", |b| {
        b.iter(|| exe.execute_one(&[&input]).unwrap());
    });
}

criterion_group!(benches, transfer, execute_overhead);
criterion_main!(benches);
