//! The compile for a target, run in a child process without a network
//! (`axle plan` re-runs its own executable with `--compile-child`), and the
//! parent's side that starts it and reads its result.

use super::PlanError;
use super::collectives::count_collectives;
use super::target::{Platform, Target};
use crate::compiler_options::override_value;
use axle_partition::CompilerOption;
use axle_runtime::offline::{is_offline, offline_command};
use axle_runtime::{
    CompileOptions, CreateOption, MemoryStats, NamedValue, OverrideValue, Plugin, Topology,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the compiler made of the program for one device of the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Compiled {
    /// The device kind the plugin reports (`TPU v5 lite`).
    pub device_kind: String,
    /// Devices in the topology.
    pub devices: usize,
    /// Distinct process (host) indices of those devices.
    pub hosts: usize,
    /// The device ids each host (process index) addresses: partition `p`
    /// of the SPMD program runs on device `p` (XLA's default device
    /// assignment), so host `h` feeds the argument shards of its devices.
    pub host_devices: BTreeMap<i32, Vec<i32>>,
    /// Device memory the compiler may use, bytes (libtpu's
    /// `device_memory_bytes_limit`; for GPUs the target config's size).
    pub memory_limit: Option<u64>,
    /// Argument bytes per device.
    pub arguments: i64,
    /// Output bytes per device.
    pub outputs: i64,
    /// Argument bytes reused for outputs (donation).
    pub alias: i64,
    /// Temporary bytes per device.
    pub temporaries: i64,
    /// Generated code bytes.
    pub generated_code: i64,
    /// Peak bytes live on a device ([`axle_runtime::MemoryStats::peak_or_sum`]).
    pub peak: i64,
    /// FLOPs per device, where the compiler's cost analysis gives them.
    pub flops: Option<f64>,
    /// Bytes accessed per device, where the cost analysis gives them.
    pub bytes_accessed: Option<f64>,
    /// Collectives in the optimized HLO, by kind.
    pub collectives: BTreeMap<String, usize>,
    /// Instructions of the optimized HLO whose result lies in host memory
    /// (XLA's memory space 5, `S(5)`): values offloaded to the host by a
    /// `remat=offload:...` policy, and the copies that move them.
    pub host_memory_instructions: usize,
    /// Seconds `PJRT_Compile` took.
    pub compile_seconds: f64,
}

impl Compiled {
    /// These sizes as the runtime's [`MemoryStats`], whose
    /// [`MemoryStats::buffer_sum`] and [`MemoryStats::planned_peak`] are the
    /// one definition `axle plan` and `axle train` share.
    pub fn memory_stats(&self) -> MemoryStats {
        MemoryStats {
            generated_code: self.generated_code,
            arguments: self.arguments,
            outputs: self.outputs,
            alias: self.alias,
            temp: self.temporaries,
            peak: self.peak,
            total: 0,
        }
    }

    /// [`MemoryStats::buffer_sum`] of these sizes.
    pub fn buffer_sum(&self) -> i64 {
        self.memory_stats().buffer_sum()
    }

    /// [`MemoryStats::planned_peak`] of these sizes: the peak the verdict
    /// uses.
    pub fn planned_peak(&self) -> i64 {
        self.memory_stats().planned_peak()
    }
}

/// The child's answer: compiled, or refused by the compiler with its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ChildOutcome {
    /// The program compiled.
    Compiled(Compiled),
    /// The compiler returned an error (out of memory among others).
    Refused {
        /// The compiler's message.
        message: String,
        /// The device memory limit, where known before the compile failed.
        memory_limit: Option<u64>,
    },
}

/// In the child: compiles `program` (StableHLO text file) for `target` with
/// the XLA `compiler_options` (`name=value`, as compile-option overrides),
/// writing a JSON [`ChildOutcome`] to `report`. Refuses to load the plugin
/// unless the process has no network but loopback.
pub fn run_child(
    target: &Target,
    program: &Path,
    report: &Path,
    compiler_options: &[String],
) -> Result<(), PlanError> {
    if !is_offline() {
        return Err(PlanError::Isolation(
            "the compile child must run without a network (axle plan starts it under `unshare --net`)"
                .into(),
        ));
    }
    let text = std::fs::read_to_string(program).map_err(|e| PlanError::Io {
        path: program.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut overrides = Vec::new();
    for option in compiler_options {
        let (name, value) = option.split_once('=').ok_or_else(|| PlanError::Child {
            target: target.name.clone(),
            message: format!("compiler option `{option}` is not name=value"),
        })?;
        overrides.push((name.to_string(), override_value(value)));
    }
    let mut memory_limit = None;
    let outcome = match compile(target, &text, &overrides, &mut memory_limit) {
        Ok(compiled) => ChildOutcome::Compiled(compiled),
        Err(e) => ChildOutcome::Refused {
            message: e.to_string(),
            memory_limit,
        },
    };
    let json = serde_json::to_string(&outcome).map_err(|e| PlanError::Child {
        target: target.name.clone(),
        message: e.to_string(),
    })?;
    std::fs::write(report, json).map_err(|e| PlanError::Io {
        path: report.to_path_buf(),
        message: e.to_string(),
    })
}

/// Creates the target's topology, compiles for it with `overrides` and
/// reads what XLA reports; sets `memory_limit` as soon as it is known.
fn compile(
    target: &Target,
    program: &str,
    overrides: &[(String, OverrideValue)],
    memory_limit: &mut Option<u64>,
) -> Result<Compiled, PlanError> {
    let plugin = Plugin::load(target.platform.name())?;
    let (name, options) = match target.platform {
        Platform::Tpu => (target.topology.as_str(), Vec::new()),
        Platform::Cuda => (
            "cuda",
            vec![
                CreateOption::string("target_config", target.target_config.unwrap_or_default()),
                CreateOption::string("topology", &target.topology),
            ],
        ),
    };
    let topology = Topology::create(plugin, name, &options)?;
    let devices = topology.devices()?;
    if devices.len() != target.devices {
        return Err(PlanError::Child {
            target: target.name.clone(),
            message: format!(
                "the plugin's topology `{name}` has {} devices, axle expects {}",
                devices.len(),
                target.devices
            ),
        });
    }
    *memory_limit = match target.platform {
        Platform::Tpu => topology
            .int_attribute("device_memory_bytes_limit")?
            .map(|b| b as u64),
        Platform::Cuda => target.config_memory_bytes(),
    };
    let mut options = if target.devices > 1 {
        CompileOptions::shardy(target.devices)
    } else {
        CompileOptions::single_device()
    };
    // Partition p on the topology's device p, as JAX sends it. Without an
    // assignment libtpu chose ring-shaped collective-permutes for v5e 2x2
    // fsdp=4 (23.8 MB of temporaries instead of 16.1, benches/jax_reference).
    options.device_assignment = Some(devices.iter().map(|d| i64::from(d.id)).collect());
    for (name, value) in overrides {
        options = options.with_override(name, value.clone());
    }
    let start = Instant::now();
    let exe = topology.compile(program, &options)?;
    let compile_seconds = start.elapsed().as_secs_f64();
    let stats = exe.memory_stats()?.ok_or_else(|| PlanError::Child {
        target: target.name.clone(),
        message: "the plugin reports no memory sizes".into(),
    })?;
    let cost = exe.cost_analysis()?.unwrap_or_default();
    let number = |key: &str| {
        cost.iter().find_map(|(n, v)| match v {
            NamedValue::Float(f) if n == key => Some(f64::from(*f)),
            NamedValue::Int64(i) if n == key => Some(*i as f64),
            _ => None,
        })
    };
    let optimized = exe.optimized_hlo()?;
    let mut host_devices: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for d in &devices {
        host_devices.entry(d.process_index).or_default().push(d.id);
    }
    Ok(Compiled {
        device_kind: devices.first().map(|d| d.kind.clone()).unwrap_or_default(),
        devices: devices.len(),
        hosts: host_devices.len(),
        host_devices,
        memory_limit: *memory_limit,
        arguments: stats.arguments,
        outputs: stats.outputs,
        alias: stats.alias,
        temporaries: stats.temp,
        generated_code: stats.generated_code,
        peak: stats.peak_or_sum(),
        flops: number("flops"),
        bytes_accessed: number("bytes accessed"),
        collectives: count_collectives(&optimized),
        host_memory_instructions: optimized.host_memory_instructions().count(),
        compile_seconds,
    })
}

/// In the parent: writes `program` to a scratch directory, runs `exe`
/// (the `axle` binary) with `--compile-child` and the XLA
/// `compiler_options` in a new network namespace, and reads its outcome. A
/// child killed by a signal (a compiler crash) is
/// [`PlanError::CompilerCrashed`] naming the target.
pub fn compile_in_child(
    exe: &Path,
    target: &Target,
    program: &str,
    compiler_options: &[CompilerOption],
) -> Result<ChildOutcome, PlanError> {
    let dir = scratch_dir()?;
    let result = run_in(&dir, exe, target, program, compiler_options);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_in(
    dir: &Path,
    exe: &Path,
    target: &Target,
    program: &str,
    compiler_options: &[CompilerOption],
) -> Result<ChildOutcome, PlanError> {
    let program_path = dir.join("step.mlir");
    let report_path = dir.join("report.json");
    std::fs::write(&program_path, program).map_err(|e| PlanError::Io {
        path: program_path.clone(),
        message: e.to_string(),
    })?;
    let mut command = offline_command(exe);
    command
        .arg("plan")
        .arg("--target")
        .arg(&target.name)
        .arg("--compile-child")
        .arg(&program_path)
        .arg("--child-report")
        .arg(&report_path);
    for option in compiler_options {
        command
            .arg("--compile-child-option")
            .arg(option.to_string());
    }
    let output = command
        .output()
        .map_err(|e| PlanError::Isolation(format!("cannot start `unshare --net`: {e}")))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
    let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
    if let Some(signal) = output.status.signal() {
        return Err(PlanError::CompilerCrashed {
            target: target.name.clone(),
            signal,
            stderr: tail,
        });
    }
    if !output.status.success() {
        return Err(PlanError::Child {
            target: target.name.clone(),
            message: format!("the compile child exited with {}:\n{tail}", output.status),
        });
    }
    let text = std::fs::read_to_string(&report_path).map_err(|e| PlanError::Io {
        path: report_path.clone(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| PlanError::Child {
        target: target.name.clone(),
        message: format!("unreadable report {}: {e}", report_path.display()),
    })
}

/// A fresh directory under the system's temporary directory.
fn scratch_dir() -> Result<PathBuf, PlanError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("axle-plan-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| PlanError::Io {
        path: dir.clone(),
        message: e.to_string(),
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A compile child that dies of SIGSEGV, as libtpu did compiling for
    /// `v5p:2x2x4`: the parent reports a crash naming the target instead
    /// of dying with it.
    #[test]
    fn a_crashing_compiler_is_an_error_naming_the_target() {
        let dir = scratch_dir().unwrap();
        let exe = dir.join("segfaulting-compiler");
        std::fs::write(
            &exe,
            "#!/bin/sh\necho 'Check failure in the combiner' >&2\nkill -SEGV $$\n",
        )
        .unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let target = crate::plan::target("tpu-v5p:2x2x1").unwrap();
        let err = compile_in_child(&exe, &target, "module {}", &[]).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            matches!(&err, PlanError::CompilerCrashed { signal: 11, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("tpu-v5p:2x2x1") && text.contains("Check failure"),
            "{text}"
        );
    }
}
