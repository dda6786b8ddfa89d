//! Topology descriptions: the devices of a machine (or a slice of many) that
//! need not be present, and compiling for them without a client.
//!
//! This is PJRT's ahead-of-time path (`PJRT_TopologyDescription_Create`,
//! `PJRT_Compile` with no client), as JAX's `jax.jit(f).lower(...).compile()`
//! on a `topologies.get_topology_desc(...)` uses it: libtpu compiles for a
//! named TPU slice (`v5e:2x2`, `v5p:2x2x1`) and the CUDA plugin for GPUs
//! described by a `target_config` create option, on a host with neither.
//! A compile for a topology may crash inside the plugin and libtpu looks for
//! cloud metadata servers: callers run it in a child process without a
//! network (axle's `plan` does).

use std::ffi::c_char;
use std::sync::Arc;

use crate::client::{CreateOption, raw_list};
use crate::compile_options::CompileOptions;
use crate::error::Result;
use crate::ffi::{self, Args};
use crate::hlo::HloModule;
use crate::introspection::{self, MemoryStats};
use crate::plugin::{NamedValue, Plugin, lossy, named_values, pjrt_call};

/// A plugin's description of a set of devices, created by name
/// (`PJRT_TopologyDescription_Create`). Freed on drop.
pub struct Topology {
    plugin: Arc<Plugin>,
    raw: *mut ffi::PJRT_TopologyDescription,
    name: String,
}

// SAFETY: a topology description is immutable after creation and the C API's
// functions may be called from any thread.
unsafe impl Send for Topology {}
// SAFETY: as above.
unsafe impl Sync for Topology {}

impl Drop for Topology {
    fn drop(&mut self) {
        let mut args = ffi::PJRT_TopologyDescription_Destroy_Args::new();
        args.topology = self.raw;
        let _ = pjrt_call!(&self.plugin, PJRT_TopologyDescription_Destroy, &mut args);
    }
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field("plugin", &self.plugin)
            .finish()
    }
}

/// One device of a [`Topology`], as its `PJRT_DeviceDescription` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopologyDevice {
    /// Global device id.
    pub id: i32,
    /// The process (host) that would address it.
    pub process_index: i32,
    /// Device kind (`TPU v5 lite`, `NVIDIA H100 80GB HBM3`).
    pub kind: String,
    /// A short description.
    pub description: String,
    /// The device's attributes (`coords` of a TPU chip, `core_on_chip`, ...).
    pub attributes: Vec<(String, NamedValue)>,
}

impl TopologyDevice {
    /// The chip coordinates in the slice (the `coords` attribute), where the
    /// plugin gives them.
    pub fn coords(&self) -> Option<&[i64]> {
        self.attributes
            .iter()
            .find_map(|(name, value)| match value {
                NamedValue::Int64List(c) if name == "coords" => Some(c.as_slice()),
                _ => None,
            })
    }
}

impl Topology {
    /// Creates the topology `name` (libtpu: `v5e:2x2`, `v4:2x2x1`; the CUDA
    /// plugin: any name, with the `target_config` and `topology` options)
    /// with the plugin's create options.
    ///
    /// Errors: [`crate::Error::MissingFunction`] for a plugin without
    /// topologies (the CPU plugins), [`crate::Error::Pjrt`] with the plugin's
    /// message for a name or option it refuses.
    pub fn create(plugin: Arc<Plugin>, name: &str, options: &[CreateOption]) -> Result<Topology> {
        let values: Vec<ffi::PJRT_NamedValue> = options.iter().map(CreateOption::to_ffi).collect();
        let mut args = ffi::PJRT_TopologyDescription_Create_Args::new();
        args.topology_name = name.as_ptr().cast::<c_char>();
        args.topology_name_size = name.len();
        args.create_options = values.as_ptr();
        args.num_options = values.len();
        pjrt_call!(&plugin, PJRT_TopologyDescription_Create, &mut args)?;
        Ok(Topology {
            plugin,
            raw: args.topology,
            name: name.to_string(),
        })
    }

    /// The name it was created with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin it belongs to.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// The platform (`tpu`, `cuda`).
    pub fn platform_name(&self) -> Result<String> {
        let mut args = ffi::PJRT_TopologyDescription_PlatformName_Args::new();
        args.topology = self.raw;
        pjrt_call!(
            &self.plugin,
            PJRT_TopologyDescription_PlatformName,
            &mut args
        )?;
        // SAFETY: owned by the topology, which outlives this call.
        Ok(unsafe { lossy(args.platform_name, args.platform_name_size) })
    }

    /// The topology's attributes (libtpu: `device_memory_bytes_limit`, the
    /// HBM per chip in bytes, among others).
    pub fn attributes(&self) -> Result<Vec<(String, NamedValue)>> {
        let mut args = ffi::PJRT_TopologyDescription_Attributes_Args::new();
        args.topology = self.raw;
        pjrt_call!(&self.plugin, PJRT_TopologyDescription_Attributes, &mut args)?;
        // SAFETY: `num_attributes` values owned by the topology.
        Ok(unsafe { named_values(args.attributes, args.num_attributes) })
    }

    /// An integer attribute by name, if the plugin reports it.
    pub fn int_attribute(&self, name: &str) -> Result<Option<i64>> {
        Ok(self.attributes()?.into_iter().find_map(|(n, v)| match v {
            NamedValue::Int64(x) if n == name => Some(x),
            _ => None,
        }))
    }

    /// Every device of the topology, in the plugin's order.
    pub fn devices(&self) -> Result<Vec<TopologyDevice>> {
        let plugin = &self.plugin;
        let mut args = ffi::PJRT_TopologyDescription_GetDeviceDescriptions_Args::new();
        args.topology = self.raw;
        pjrt_call!(
            plugin,
            PJRT_TopologyDescription_GetDeviceDescriptions,
            &mut args
        )?;
        // SAFETY: the topology owns `num_descriptions` descriptions.
        let raw = unsafe { raw_list(args.descriptions, args.num_descriptions) };
        raw.into_iter().map(|d| describe(plugin, d)).collect()
    }

    /// Compiles a StableHLO module (MLIR text) for this topology, with no
    /// client and no device: `PJRT_Compile`. The result can be inspected and
    /// serialized, not run.
    pub fn compile(&self, mlir_text: &str, options: &CompileOptions) -> Result<UnloadedExecutable> {
        let encoded = options.encode()?;
        let format = "mlir";
        let mut program = ffi::PJRT_Program::new();
        program.code = mlir_text.as_ptr().cast::<c_char>().cast_mut();
        program.code_size = mlir_text.len();
        program.format = format.as_ptr().cast();
        program.format_size = format.len();
        let mut args = ffi::PJRT_Compile_Args::new();
        args.topology = self.raw;
        args.program = &program;
        args.compile_options = encoded.as_ptr().cast();
        args.compile_options_size = encoded.len();
        pjrt_call!(&self.plugin, PJRT_Compile, &mut args)?;
        Ok(UnloadedExecutable {
            plugin: self.plugin.clone(),
            raw: args.executable,
        })
    }
}

/// Reads one device description: id, process, kind, text and attributes.
fn describe(
    plugin: &Plugin,
    description: *mut ffi::PJRT_DeviceDescription,
) -> Result<TopologyDevice> {
    let mut id = ffi::PJRT_DeviceDescription_Id_Args::new();
    id.device_description = description;
    pjrt_call!(plugin, PJRT_DeviceDescription_Id, &mut id)?;
    let mut process = ffi::PJRT_DeviceDescription_ProcessIndex_Args::new();
    process.device_description = description;
    pjrt_call!(plugin, PJRT_DeviceDescription_ProcessIndex, &mut process)?;
    let mut kind = ffi::PJRT_DeviceDescription_Kind_Args::new();
    kind.device_description = description;
    pjrt_call!(plugin, PJRT_DeviceDescription_Kind, &mut kind)?;
    let mut text = ffi::PJRT_DeviceDescription_ToString_Args::new();
    text.device_description = description;
    pjrt_call!(plugin, PJRT_DeviceDescription_ToString, &mut text)?;
    let mut attributes = ffi::PJRT_DeviceDescription_Attributes_Args::new();
    attributes.device_description = description;
    pjrt_call!(plugin, PJRT_DeviceDescription_Attributes, &mut attributes)?;
    // SAFETY: the strings and values are owned by the description, which
    // lives as long as its topology.
    unsafe {
        Ok(TopologyDevice {
            id: id.id,
            process_index: process.process_index,
            kind: lossy(kind.device_kind, kind.device_kind_size),
            description: lossy(text.to_string, text.to_string_size),
            attributes: named_values(attributes.attributes, attributes.num_attributes),
        })
    }
}

/// A program compiled for a [`Topology`] (`PJRT_Executable`, not loaded on
/// any device): what XLA made of it, its sizes and cost, and its serialized
/// form for the machine it was compiled for. Freed on drop.
pub struct UnloadedExecutable {
    plugin: Arc<Plugin>,
    raw: *mut ffi::PJRT_Executable,
}

// SAFETY: immutable after compilation; PJRT functions are thread-safe.
unsafe impl Send for UnloadedExecutable {}
// SAFETY: as above.
unsafe impl Sync for UnloadedExecutable {}

impl Drop for UnloadedExecutable {
    fn drop(&mut self) {
        let mut args = ffi::PJRT_Executable_Destroy_Args::new();
        args.executable = self.raw;
        let _ = pjrt_call!(&self.plugin, PJRT_Executable_Destroy, &mut args);
    }
}

impl std::fmt::Debug for UnloadedExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnloadedExecutable")
            .field("plugin", &self.plugin)
            .finish()
    }
}

impl UnloadedExecutable {
    /// The program after XLA's optimizations and SPMD partitioning (per
    /// device shapes; the collectives XLA inserted).
    pub fn optimized_hlo(&self) -> Result<HloModule> {
        introspection::optimized_hlo(&self.plugin, self.raw)
    }

    /// XLA's memory sizes per device, or `None` where not reported.
    pub fn memory_stats(&self) -> Result<Option<MemoryStats>> {
        introspection::memory_stats(&self.plugin, self.raw)
    }

    /// XLA's cost analysis (`flops`, `bytes accessed`, ... per device), or
    /// `None` where the plugin does not give it (the CUDA plugin without a GPU).
    pub fn cost_analysis(&self) -> Result<Option<Vec<(String, NamedValue)>>> {
        introspection::cost_analysis(&self.plugin, self.raw)
    }

    /// Outputs per device.
    pub fn num_outputs(&self) -> Result<usize> {
        introspection::num_outputs(&self.plugin, self.raw)
    }

    /// The serialized executable, loadable on a client of the target machine.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        introspection::serialize(&self.plugin, self.raw)
    }
}
