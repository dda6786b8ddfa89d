//! The machines `axle plan` compiles for: TPU slices (libtpu topologies) and
//! GPU machines (the CUDA plugin with an XLA `GpuTargetConfigProto`).

use super::PlanError;

/// Which plugin compiles for a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Platform {
    /// libtpu (`libtpu/libtpu.so`).
    Tpu,
    /// The CUDA plugin (`jax_plugins/xla_cuda12/xla_cuda_plugin.so`).
    Cuda,
}

impl Platform {
    /// The plugin discovery's name (`tpu`, `cuda`) and the mesh rules'
    /// platform.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Tpu => "tpu",
            Platform::Cuda => "cuda",
        }
    }
}

/// A machine to compile for: a named TPU slice or a set of GPU hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// axle's name (`tpu-v5e:2x2`, `gpu-h100:2x8`).
    pub name: String,
    /// The plugin that compiles for it.
    pub platform: Platform,
    /// libtpu's topology name (`v5e:2x2`); for GPUs the plugin's
    /// `topology` option, `1x<hosts>x<devices per host>`.
    pub topology: String,
    /// Devices XLA partitions over (TPU v4: cores, 2 per chip; otherwise chips).
    pub devices: usize,
    /// Hosts the devices are spread over.
    pub hosts: usize,
    /// The device kind PJRT reports (`TPU v5 lite`), for the mesh rules.
    pub device_kind: &'static str,
    /// The GPU's `GpuTargetConfigProto` text (`third_party/gpu-target-configs/`).
    pub target_config: Option<&'static str>,
}

/// TPU slices: axle name, libtpu topology, devices, hosts, device kind.
/// Device and host counts are libtpu's (checked by compiling for each:
/// `v4:2x2x1` has 2 cores per chip; v5e and v6e hosts have 4 chips, v5p 4).
const TPUS: &[(&str, &str, usize, usize, &str)] = &[
    ("tpu-v5e:2x2", "v5e:2x2", 4, 1, "TPU v5 lite"),
    ("tpu-v5e:4x4", "v5e:4x4", 16, 4, "TPU v5 lite"),
    ("tpu-v5p:2x2x1", "v5p:2x2x1", 4, 1, "TPU v5"),
    ("tpu-v6e:2x2", "v6e:2x2", 4, 1, "TPU v6 lite"),
    ("tpu-v6e:8x8", "v6e:8x8", 64, 16, "TPU v6 lite"),
    ("tpu-v4:2x2x1", "v4:2x2x1", 8, 1, "TPU v4"),
];

/// The most devices a GPU target may have: 65,536, beyond the largest
/// machines built, so a mistyped count is an error rather than an attempt
/// to allocate a topology of billions of devices.
pub const MAX_DEVICES: usize = 65_536;

/// GPUs: axle name prefix, target config, device kind.
const GPUS: &[(&str, &str, &str)] = &[
    (
        "gpu-h100",
        include_str!("../../third_party/gpu-target-configs/h100_sxm.txtpb"),
        "NVIDIA H100 80GB HBM3",
    ),
    (
        "gpu-h200",
        include_str!("../../third_party/gpu-target-configs/h200.txtpb"),
        "NVIDIA H200 141GB HBM3e",
    ),
    (
        "gpu-a100",
        include_str!("../../third_party/gpu-target-configs/a100_sxm_80.txtpb"),
        "NVIDIA A100-SXM4-80GB",
    ),
];

/// Every target name `target` accepts, for messages and `--help`: the TPU
/// slices, and `gpu-<h100|h200|a100>:<devices>` or `:<hosts>x<devices>`.
pub fn target_names() -> Vec<String> {
    let mut names: Vec<String> = TPUS.iter().map(|t| t.0.to_string()).collect();
    names.extend(GPUS.iter().map(|g| format!("{}:N or {}:HxN", g.0, g.0)));
    names
}

/// The target called `name` (see [`target_names`]).
///
/// Errors: [`PlanError::UnknownTarget`] naming it and listing the known
/// ones; [`PlanError::DeviceCount`] for no GPUs or more than
/// [`MAX_DEVICES`].
pub fn target(name: &str) -> Result<Target, PlanError> {
    let unknown = || PlanError::UnknownTarget {
        name: name.to_string(),
        known: target_names().join(", "),
    };
    if let Some(&(axle, topology, devices, hosts, kind)) = TPUS.iter().find(|t| t.0 == name) {
        return Ok(Target {
            name: axle.to_string(),
            platform: Platform::Tpu,
            topology: topology.to_string(),
            devices,
            hosts,
            device_kind: kind,
            target_config: None,
        });
    }
    let (prefix, shape) = name.split_once(':').ok_or_else(unknown)?;
    let &(_, config, kind) = GPUS.iter().find(|g| g.0 == prefix).ok_or_else(unknown)?;
    let (hosts, per_host) = match shape.split_once('x') {
        Some((h, d)) => (h.parse::<usize>(), d.parse::<usize>()),
        None => (Ok(1), shape.parse::<usize>()),
    };
    let (Ok(hosts), Ok(per_host)) = (hosts, per_host) else {
        return Err(unknown());
    };
    let bad_count = |message: String| PlanError::DeviceCount {
        target: name.to_string(),
        message,
    };
    if hosts == 0 || per_host == 0 {
        return Err(bad_count("needs at least one GPU (and one host)".into()));
    }
    let devices = hosts
        .checked_mul(per_host)
        .filter(|&d| d <= MAX_DEVICES)
        .ok_or_else(|| {
            bad_count(format!(
                "asks for {hosts} x {per_host} GPUs; axle plans for at most {MAX_DEVICES} devices"
            ))
        })?;
    Ok(Target {
        name: name.to_string(),
        platform: Platform::Cuda,
        topology: format!("1x{hosts}x{per_host}"),
        devices,
        hosts,
        device_kind: kind,
        target_config: Some(config),
    })
}

impl Target {
    /// Device memory in bytes as the GPU target config states it
    /// (`device_memory_size`); `None` for TPUs, whose limit libtpu reports
    /// at compile time (`device_memory_bytes_limit`).
    pub fn config_memory_bytes(&self) -> Option<u64> {
        let config = self.target_config?;
        config.lines().find_map(|line| {
            line.trim()
                .strip_prefix("device_memory_size:")
                .and_then(|v| v.trim().parse().ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_names_give_hosts_and_devices() {
        let t = target("gpu-h100:2x8").unwrap();
        assert_eq!((t.devices, t.hosts, t.topology.as_str()), (16, 2, "1x2x8"));
        let t = target("gpu-a100:8").unwrap();
        assert_eq!((t.devices, t.hosts), (8, 1));
        // XLA's spec of an H100 SXM: 84,942,979,072 bytes (79.1 GiB usable of 80 GB).
        assert_eq!(
            target("gpu-h100:4").unwrap().config_memory_bytes(),
            Some(84_942_979_072)
        );
        assert_eq!(
            target("gpu-h200:8").unwrap().config_memory_bytes(),
            Some(151_397_597_184)
        );
    }

    #[test]
    fn unknown_names_are_refused_naming_them() {
        for bad in ["tpu-v9:2x2", "gpu-h100", "gpu-x:8", "gpu-h100:2xq"] {
            let err = target(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("tpu-v5e:2x2"), "{err}");
        }
    }

    #[test]
    fn device_counts_of_zero_or_beyond_the_limit_are_refused() {
        for bad in ["gpu-h100:0", "gpu-h100:0x8", "gpu-h100:4x0"] {
            let err = target(bad).unwrap_err().to_string();
            assert!(
                err.contains(bad) && err.contains("at least one GPU"),
                "{err}"
            );
        }
        for bad in [
            "gpu-h100:65537",
            "gpu-h100:4096x17",
            "gpu-a100:99999999999x99999999999",
        ] {
            let err = target(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("65536"), "{err}");
        }
        assert_eq!(target("gpu-h100:8192x8").unwrap().devices, MAX_DEVICES);
    }
}
