//! Compile options: the subset of XLA's `CompileOptionsProto`
//! (`xla/pjrt/proto/compile_options.proto`) axle sets, encoded with prost.

use prost::Message;

use crate::error::{Error, Result};

/// How a program is compiled: replicas, partitions, partitioner, device
/// assignment and XLA debug-option overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileOptions {
    /// Number of replicas (data-parallel copies the program itself does not split).
    pub num_replicas: usize,
    /// Number of SPMD partitions (the mesh size).
    pub num_partitions: usize,
    /// Partition with XLA's SPMD partitioner (required when `num_partitions > 1`).
    pub use_spmd_partitioning: bool,
    /// Read Shardy (`sdy`) shardings; required for programs written with them.
    pub use_shardy_partitioner: bool,
    /// Device id per (replica, partition), replica-major; `None` lets the plugin
    /// place partition p on addressable device p.
    pub device_assignment: Option<Vec<i64>>,
    /// XLA debug options by name (`xla_cpu_use_xnnpack` → false, ...).
    pub env_overrides: Vec<(String, OverrideValue)>,
}

/// A value of an env option override.
#[derive(Debug, Clone, PartialEq)]
pub enum OverrideValue {
    /// A string flag.
    String(String),
    /// A boolean flag.
    Bool(bool),
    /// An integer flag.
    Int(i64),
    /// A floating-point flag.
    Double(f64),
}

impl std::fmt::Display for OverrideValue {
    /// The value as an XLA flag would write it (`true`, `98304`, `ENABLED`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OverrideValue::String(s) => write!(f, "{s}"),
            OverrideValue::Bool(b) => write!(f, "{b}"),
            OverrideValue::Int(i) => write!(f, "{i}"),
            OverrideValue::Double(d) => write!(f, "{d}"),
        }
    }
}

impl CompileOptions {
    /// One replica, one partition: an ordinary single-device program.
    pub fn single_device() -> Self {
        CompileOptions {
            num_replicas: 1,
            num_partitions: 1,
            use_spmd_partitioning: false,
            use_shardy_partitioner: false,
            device_assignment: None,
            env_overrides: Vec::new(),
        }
    }

    /// `num_partitions`-way SPMD partitioning of a Shardy-annotated program
    /// (`sdy.mesh`, `#sdy.sharding`), the form axle emits.
    pub fn shardy(num_partitions: usize) -> Self {
        CompileOptions {
            num_partitions,
            use_spmd_partitioning: true,
            use_shardy_partitioner: true,
            ..CompileOptions::single_device()
        }
    }

    /// `num_partitions`-way SPMD partitioning of a GSPMD-annotated program
    /// (`mhlo.sharding` attributes).
    pub fn gspmd(num_partitions: usize) -> Self {
        CompileOptions {
            use_shardy_partitioner: false,
            ..CompileOptions::shardy(num_partitions)
        }
    }

    /// Adds an XLA debug-option override, e.g. `("xla_cpu_use_xnnpack", Bool(false))`.
    pub fn with_override(mut self, name: &str, value: OverrideValue) -> Self {
        self.env_overrides.retain(|(n, _)| n != name);
        self.env_overrides.push((name.to_string(), value));
        self
    }

    /// Adds an XLA debug-option override unless the caller already set that
    /// option (the runtime's per-plugin defaults use this).
    pub fn with_default_override(self, name: &str, value: OverrideValue) -> Self {
        if self.env_overrides.iter().any(|(n, _)| n == name) {
            self
        } else {
            self.with_override(name, value)
        }
    }

    /// Number of devices the program runs on.
    pub fn device_count(&self) -> usize {
        self.num_replicas * self.num_partitions
    }

    /// Checks what XLA would reject or abort on.
    pub fn validate(&self) -> Result<()> {
        if self.num_replicas == 0 || self.num_partitions == 0 {
            return Err(Error::CompileOptions(format!(
                "num_replicas ({}) and num_partitions ({}) must be at least 1",
                self.num_replicas, self.num_partitions
            )));
        }
        if self.num_partitions > 1 && !self.use_spmd_partitioning {
            return Err(Error::CompileOptions(format!(
                "num_partitions = {} needs use_spmd_partitioning",
                self.num_partitions
            )));
        }
        if let Some(assignment) = &self.device_assignment
            && assignment.len() != self.device_count()
        {
            return Err(Error::CompileOptions(format!(
                "device_assignment has {} entries, replicas x partitions = {}",
                assignment.len(),
                self.device_count()
            )));
        }
        Ok(())
    }

    /// The serialized `CompileOptionsProto`. Never empty (an empty string
    /// aborts the process inside XLA): replica and partition counts are
    /// always written.
    pub fn encode(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let device_assignment = self
            .device_assignment
            .as_ref()
            .map(|ids| DeviceAssignmentProto {
                replica_count: self.num_replicas as i32,
                computation_count: self.num_partitions as i32,
                computation_devices: (0..self.num_partitions)
                    .map(|p| ComputationDevice {
                        replica_device_ids: (0..self.num_replicas)
                            .map(|r| ids[r * self.num_partitions + p])
                            .collect(),
                    })
                    .collect(),
            });
        let proto = CompileOptionsProto {
            executable_build_options: Some(ExecutableBuildOptionsProto {
                num_replicas: self.num_replicas as i64,
                num_partitions: self.num_partitions as i64,
                use_spmd_partitioning: self.use_spmd_partitioning,
                device_assignment,
                use_shardy_partitioner: self.use_shardy_partitioner,
            }),
            env_option_overrides: self
                .env_overrides
                .iter()
                .map(|(name, value)| {
                    let value = match value {
                        OverrideValue::String(s) => OverrideKind::String(s.clone()),
                        OverrideValue::Bool(b) => OverrideKind::Bool(*b),
                        OverrideValue::Int(i) => OverrideKind::Int(*i),
                        OverrideValue::Double(d) => OverrideKind::Double(*d),
                    };
                    (name.clone(), OptionOverrideProto { value: Some(value) })
                })
                .collect(),
        };
        Ok(proto.encode_to_vec())
    }
}

/// `xla.CompileOptionsProto` (fields axle sets).
#[derive(Clone, PartialEq, Message)]
struct CompileOptionsProto {
    #[prost(message, optional, tag = "3")]
    executable_build_options: Option<ExecutableBuildOptionsProto>,
    #[prost(btree_map = "string, message", tag = "7")]
    env_option_overrides: std::collections::BTreeMap<String, OptionOverrideProto>,
}

/// `xla.ExecutableBuildOptionsProto` (fields axle sets).
#[derive(Clone, PartialEq, Message)]
struct ExecutableBuildOptionsProto {
    #[prost(int64, tag = "4")]
    num_replicas: i64,
    #[prost(int64, tag = "5")]
    num_partitions: i64,
    #[prost(bool, tag = "6")]
    use_spmd_partitioning: bool,
    #[prost(message, optional, tag = "9")]
    device_assignment: Option<DeviceAssignmentProto>,
    #[prost(bool, tag = "19")]
    use_shardy_partitioner: bool,
}

/// `xla.DeviceAssignmentProto`.
#[derive(Clone, PartialEq, Message)]
struct DeviceAssignmentProto {
    #[prost(int32, tag = "1")]
    replica_count: i32,
    #[prost(int32, tag = "2")]
    computation_count: i32,
    #[prost(message, repeated, tag = "3")]
    computation_devices: Vec<ComputationDevice>,
}

/// `xla.DeviceAssignmentProto.ComputationDevice`.
#[derive(Clone, PartialEq, Message)]
struct ComputationDevice {
    #[prost(int64, repeated, tag = "1")]
    replica_device_ids: Vec<i64>,
}

/// `xla.OptionOverrideProto`.
#[derive(Clone, PartialEq, Message)]
struct OptionOverrideProto {
    #[prost(oneof = "OverrideKind", tags = "1, 2, 3, 4")]
    value: Option<OverrideKind>,
}

/// The `value` oneof of `OptionOverrideProto`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum OverrideKind {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte strings docs/design.md records as verified against both plugins.
    #[test]
    fn encodings_match_the_verified_bytes() {
        assert_eq!(
            CompileOptions::single_device().encode().unwrap(),
            [0x1a, 0x04, 0x20, 0x01, 0x28, 0x01]
        );
        assert_eq!(
            CompileOptions::shardy(4).encode().unwrap(),
            [
                0x1a, 0x09, 0x20, 0x01, 0x28, 0x04, 0x30, 0x01, 0x98, 0x01, 0x01
            ]
        );
    }

    #[test]
    fn partitions_without_spmd_are_refused() {
        let options = CompileOptions {
            num_partitions: 2,
            ..CompileOptions::single_device()
        };
        assert!(
            matches!(options.encode(), Err(Error::CompileOptions(m)) if m.contains("use_spmd_partitioning"))
        );
    }

    #[test]
    fn zero_partitions_are_refused() {
        let options = CompileOptions {
            num_partitions: 0,
            ..CompileOptions::single_device()
        };
        assert!(options.encode().is_err());
    }
}
