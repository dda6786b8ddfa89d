//! The check that a compiled train step fits the devices' memory, made
//! after compiling and before any parameter or optimizer state is placed
//! on a device, so that a model too large fails with its sizes instead of
//! an allocator abort (or a slow swap) part-way through initialisation.

use super::RunError;
use axle_runtime::{Client, Executable, MemoryStats};

/// Environment variable that overrides the detected per-device memory
/// limit, in bytes: for a device shared with other processes (a GPU where
/// another job holds memory), or to try a smaller device's budget.
pub const DEVICE_MEMORY_LIMIT_ENV: &str = "AXLE_DEVICE_MEMORY_LIMIT";

/// A compiled train step that needs more memory on one device than the
/// device has (XLA's compiled memory stats against the limit of
/// [`device_memory_limit`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "{experiment} on mesh {mesh}: the compiled {program} needs {} per device \
     (the larger of XLA's compiled peak {} and arguments {} + outputs {} − aliased {} \
     + temporaries {}), more than the {} of {limit_from}; nothing was placed on the devices. \
     `axle plan` shows which meshes fit; rematerialization (--modifier remat=full) or \
     sharding the parameters and optimizer state (an fsdp mesh axis, --mesh fsdp=N) \
     lower the need",
    show_bytes(*needed as i64),
    show_bytes(stats.peak),
    show_bytes(stats.arguments),
    show_bytes(stats.outputs),
    show_bytes(stats.alias),
    show_bytes(stats.temp),
    show_bytes(*limit as i64)
)]
pub struct DeviceMemoryShortfall {
    /// The experiment (or the name of a model built in code).
    pub experiment: String,
    /// The mesh.
    pub mesh: String,
    /// The program checked (`train step`, `eval step`).
    pub program: String,
    /// Bytes one device needs ([`device_bytes_needed`]).
    pub needed: u64,
    /// XLA's compiled memory stats of the train step, per device.
    pub stats: MemoryStats,
    /// Bytes one device may use.
    pub limit: u64,
    /// Where the limit came from.
    pub limit_from: String,
}

/// `bytes` for messages: exact, and, from 1 KiB on, in the largest binary
/// unit (KiB, MiB, GiB) it reaches, so that a small limit never reads
/// "0.0 MiB".
pub fn show_bytes(bytes: i64) -> String {
    const UNITS: [(&str, f64); 3] = [
        ("GiB", (1u64 << 30) as f64),
        ("MiB", (1u64 << 20) as f64),
        ("KiB", 1024.0),
    ];
    match UNITS
        .iter()
        .find(|(_, size)| bytes.unsigned_abs() as f64 >= *size)
    {
        Some((unit, size)) => format!("{bytes} bytes ({:.1} {unit})", bytes as f64 / size),
        None => format!("{bytes} bytes"),
    }
}

/// A per-device memory budget and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryLimit {
    /// Bytes one device may use.
    pub bytes: u64,
    /// Where the number came from, for messages
    /// (`AXLE_DEVICE_MEMORY_LIMIT`, `the device's bytes_limit`, ...).
    pub source: String,
}

/// The per-device limit set by [`DEVICE_MEMORY_LIMIT_ENV`], read and checked
/// before anything is compiled so that a bad value fails at once. `None`
/// where the variable is unset or empty. Errors:
/// [`RunError::InvalidOption`] naming the variable for a value that is not
/// a positive whole number of bytes.
pub fn device_memory_limit_from_env() -> Result<Option<u64>, RunError> {
    let Ok(text) = std::env::var(DEVICE_MEMORY_LIMIT_ENV) else {
        return Ok(None);
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|&b| b > 0)
        .map(Some)
        .ok_or_else(|| {
            RunError::InvalidOption(format!(
                "{DEVICE_MEMORY_LIMIT_ENV}={text}: expected a positive number of bytes per device"
            ))
        })
}

/// The per-device memory limit of `client`'s first `devices` devices:
/// `override_bytes` when given, else [`DEVICE_MEMORY_LIMIT_ENV`]
/// ([`device_memory_limit_from_env`]), else the smallest `bytes_limit` the
/// plugin reports for them ([`Client::device_memory_limit`]), else, on the
/// CPU plugins (whose devices share the host's memory and report no
/// limit), the host's available memory (`MemAvailable`) divided among the
/// devices. `None` where none of these is known. Errors:
/// [`RunError::InvalidOption`] for an environment value that is not a
/// positive whole number of bytes; the runtime's errors.
pub fn device_memory_limit(
    client: &Client,
    devices: usize,
    override_bytes: Option<u64>,
) -> Result<Option<MemoryLimit>, RunError> {
    if let Some(bytes) = override_bytes {
        return Ok(Some(MemoryLimit {
            bytes,
            source: "the setup's device_memory_limit".into(),
        }));
    }
    if let Some(bytes) = device_memory_limit_from_env()? {
        return Ok(Some(MemoryLimit {
            bytes,
            source: DEVICE_MEMORY_LIMIT_ENV.into(),
        }));
    }
    let mut reported: Option<u64> = None;
    for index in 0..devices {
        if let Some(limit) = client.device_memory_limit(index)? {
            reported = Some(reported.map_or(limit, |r| r.min(limit)));
        }
    }
    if let Some(bytes) = reported {
        return Ok(Some(MemoryLimit {
            bytes,
            source: "the device's bytes_limit (PJRT_Device_MemoryStats)".into(),
        }));
    }
    if client.platform_name()? == "cpu"
        && let Some(available) = super::setup::available_host_memory()
    {
        return Ok(Some(MemoryLimit {
            bytes: available / devices.max(1) as u64,
            source: format!(
                "available host memory (MemAvailable, {:.1} GiB) shared by {devices} CPU device(s)",
                available as f64 / super::GIB
            ),
        }));
    }
    Ok(None)
}

/// Bytes one device needs to run `stats`' program:
/// [`MemoryStats::planned_peak`], the figure `axle plan` uses (the CPU
/// plugin's peak leaves out the temporaries, so the peak alone would pass
/// steps that cannot run).
pub fn device_bytes_needed(stats: &MemoryStats) -> u64 {
    stats.planned_peak().max(0) as u64
}

/// Refuses `executable`, the compiled `program` (`train step`, `eval
/// step`) of experiment `experiment` on `mesh`, when one device needs more
/// than `limit` ([`device_memory_limit`]). Passes when the plugin reports
/// no memory stats or no limit is known. Errors: [`RunError::DeviceMemory`]
/// with the sizes ([`DeviceMemoryShortfall`]); the runtime's errors.
pub fn check_device_memory(
    executable: &Executable,
    program: &str,
    experiment: &str,
    mesh: &str,
    limit: Option<MemoryLimit>,
) -> Result<(), RunError> {
    let (Some(stats), Some(limit)) = (executable.memory_stats()?, limit) else {
        return Ok(());
    };
    let needed = device_bytes_needed(&stats);
    if needed <= limit.bytes {
        return Ok(());
    }
    Err(RunError::DeviceMemory(Box::new(DeviceMemoryShortfall {
        experiment: experiment.to_string(),
        mesh: mesh.to_string(),
        program: program.to_string(),
        needed,
        stats,
        limit: limit.bytes,
        limit_from: limit.source,
    })))
}
