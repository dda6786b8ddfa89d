//! Step time of llama-tiny (batch 8, seq 128, AdamW) split over 4 virtual
//! CPU devices, per strategy, relative to the same step on one device of
//! the same client. Goal: at most 1.1x (JAX 0.11.2's FSDP-4 is about 1.13x
//! on this kind of 2-core machine). The 4 "devices" share the host's cores,
//! so partitioning cannot speed the step up: the ratio measures overhead.
//!
//! The strategies take their steps in turns (one step each per round), so
//! load from other processes falls on all of them alike; each is given as
//! the median and the fastest of its rounds (the fastest is the least
//! disturbed by other processes), and as the median CPU time the process
//! spent per step (user + system, from `/proc/self/stat` at Linux's fixed
//! 100 ticks per second): the work partitioning adds, which other
//! processes on the machine do not inflate the way they inflate wall time.
//! The load average is printed before and after.
//!
//! Run with `cargo bench --bench sharding` (`AXLE_BENCH_ROUNDS`, default 10,
//! sets the rounds).

use std::time::{Duration, Instant};

use axle::data::{LanguageModelSource, Loader, Split, Synthetic};
use axle::learner::LearnerConfig;
use axle::partition::{LogicalRules, Mesh};
use axle::runtime::Client;
use axle::trainer::Trainer;
use axle_modules::{BatchShape, CausalLm, registered_model};

/// Devices of the client.
const DEVICES: usize = 4;

/// Strategy name and mesh; the first is the one-device baseline.
const STRATEGIES: [(&str, &str); 7] = [
    ("single", "data=1"),
    ("data", "data=4"),
    ("fsdp", "fsdp=4"),
    ("tensor", "model=4"),
    ("data x tensor", "data=2,model=2"),
    ("sequence", "seq=4"),
    ("data x fsdp", "data=2,fsdp=2"),
];

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_else(|_| "unknown".into())
}

/// CPU time (user + system) this process has used so far; zero where
/// `/proc/self/stat` cannot be read.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name's closing parenthesis: state is the
    // first, utime the 12th and stime the 13th, in ticks of 1/100 s.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| -> u64 { fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0) };
    Duration::from_millis((field(11) + field(12)) * 10)
}

/// The median and the fastest of `times`.
fn median_and_min(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[0])
}

fn main() {
    let rounds: usize = std::env::var("AXLE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let reg = registered_model("llama-tiny").expect("llama-tiny is registered");
    let model = CausalLm::new(&reg.config).expect("llama-tiny builds");
    let client = Client::cpu(DEVICES).expect("default CPU plugin");
    let task = LanguageModelSource::new(Box::new(Synthetic::new(1024, 0)), reg.seq_len);
    let mut loader = Loader::new(&task, Split::Train, reg.batch_size, 0);
    let shape = BatchShape {
        batch_size: reg.batch_size,
        seq_len: reg.seq_len,
    };
    println!(
        "llama-tiny step on {DEVICES} CPU devices, {} cores; load average before: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average().trim()
    );
    let rules = LogicalRules::default();
    let mut trainers: Vec<Trainer> = STRATEGIES
        .iter()
        .map(|(name, mesh)| {
            let mesh = Mesh::parse(mesh, DEVICES).expect("valid mesh");
            let t0 = Instant::now();
            let mut trainer = Trainer::new(
                &client,
                &model,
                &LearnerConfig::default(),
                &shape,
                &mesh,
                &rules,
                0,
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let compiled = t0.elapsed();
            trainer.step(&loader.next_batch(), 0).expect("warm-up step");
            println!("{name:>14} ({mesh}): built and compiled in {compiled:.1?}");
            trainer
        })
        .collect();
    let mut wall: Vec<Vec<Duration>> = vec![Vec::new(); STRATEGIES.len()];
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); STRATEGIES.len()];
    for _ in 0..rounds {
        let tokens = loader.next_batch();
        for (i, trainer) in trainers.iter_mut().enumerate() {
            let (t0, c0) = (Instant::now(), cpu_time());
            trainer.step(&tokens, 0).expect("step");
            wall[i].push(t0.elapsed());
            cpu[i].push(cpu_time().saturating_sub(c0));
        }
    }
    let wall: Vec<(Duration, Duration)> = wall.iter_mut().map(|t| median_and_min(t)).collect();
    let cpu: Vec<Duration> = cpu.iter_mut().map(|t| median_and_min(t).0).collect();
    println!(
        "{:>14} {:>10} {:>9} {:>10} {:>9} {:>10} {:>9}",
        "strategy", "median", "vs single", "fastest", "vs single", "CPU", "vs single"
    );
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (i, (name, _)) in STRATEGIES.iter().enumerate() {
        let ((median, min), cpu_median) = (wall[i], cpu[i]);
        println!(
            "{name:>14} {:>8.0}ms {:>8.2}x {:>8.0}ms {:>8.2}x {:>8.0}ms {:>8.2}x",
            ms(median),
            ratio(median, wall[0].0),
            ms(min),
            ratio(min, wall[0].1),
            ms(cpu_median),
            ratio(cpu_median, cpu[0]),
        );
    }
    println!("load average after: {}", load_average().trim());
}
