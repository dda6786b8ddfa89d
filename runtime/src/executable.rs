//! Compiling StableHLO into a loaded executable, introspecting it, and running it.

use std::ffi::c_char;

use crate::buffer::Buffer;
use crate::client::{Client, Device, raw_list};
use crate::compile_options::{CompileOptions, OverrideValue};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ffi::{self, Args};
use crate::hlo::HloModule;
use crate::introspection::{self, MemoryStats};
use crate::plugin::{NamedValue, Quirk, pjrt_call};
use crate::sharded::ShardedArray;

/// A compiled program loaded on the client's devices. Freed on drop.
pub struct Executable {
    client: Client,
    loaded: *mut ffi::PJRT_LoadedExecutable,
    executable: *mut ffi::PJRT_Executable,
    devices: Vec<*mut ffi::PJRT_Device>,
    num_outputs: usize,
    /// Per-device parameter (dtype, shape), from the optimized HLO; `None`
    /// where the plugin cannot give the optimized program.
    parameters: Option<Vec<(Option<DType>, Vec<usize>)>>,
}

// SAFETY: PJRT loaded executables may be executed and queried from several
// threads at once (the C API's contract, relied on by JAX); the handles are
// immutable after compilation.
unsafe impl Send for Executable {}
// SAFETY: as above.
unsafe impl Sync for Executable {}

impl Drop for Executable {
    fn drop(&mut self) {
        let plugin = &self.client.inner.plugin;
        let mut exe = ffi::PJRT_Executable_Destroy_Args::new();
        exe.executable = self.executable;
        let _ = pjrt_call!(plugin, PJRT_Executable_Destroy, &mut exe);
        let mut loaded = ffi::PJRT_LoadedExecutable_Destroy_Args::new();
        loaded.executable = self.loaded;
        let _ = pjrt_call!(plugin, PJRT_LoadedExecutable_Destroy, &mut loaded);
    }
}

impl std::fmt::Debug for Executable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executable")
            .field("devices", &self.devices.len())
            .field("num_outputs", &self.num_outputs)
            .finish()
    }
}

/// One argument of an execution: borrowed (the caller keeps the buffer) or
/// donated (the program may reuse its memory for an output; the buffer is
/// consumed whatever happens).
#[derive(Debug)]
pub enum Arg<'a> {
    /// The caller keeps the buffer; it is never donated.
    Borrowed(&'a Buffer),
    /// The buffer is given up; a parameter aliased to an output reuses it.
    Donated(Buffer),
}

impl Arg<'_> {
    fn buffer(&self) -> &Buffer {
        match self {
            Arg::Borrowed(b) => b,
            Arg::Donated(b) => b,
        }
    }
}

impl<'a> From<&'a Buffer> for Arg<'a> {
    fn from(b: &'a Buffer) -> Self {
        Arg::Borrowed(b)
    }
}

impl From<Buffer> for Arg<'_> {
    fn from(b: Buffer) -> Self {
        Arg::Donated(b)
    }
}

impl Client {
    /// `options` with this client's defaults added where the caller set
    /// nothing: the overrides of [`Client::with_compile_defaults`]; XNNPACK off on the plugin whose collectives deadlock with it;
    /// and on CPU `xla_cpu_enable_fast_min_max=false`, because XLA CPU's
    /// default lets max/min drop a NaN depending on operand order, where
    /// StableHLO, JAX and the GPU propagate it. These are the options a
    /// compile (and the compile cache's key) uses.
    pub fn effective_options(&self, options: &CompileOptions) -> Result<CompileOptions> {
        let mut options = options.clone();
        for (name, value) in &self.compile_defaults {
            options = options.with_default_override(name, value.clone());
        }
        if self
            .inner
            .plugin
            .has_quirk(Quirk::XnnpackCollectiveDeadlock)
        {
            options =
                options.with_default_override("xla_cpu_use_xnnpack", OverrideValue::Bool(false));
        }
        if self.platform_name()? == "cpu" {
            options = options
                .with_default_override("xla_cpu_enable_fast_min_max", OverrideValue::Bool(false));
        }
        Ok(options)
    }

    /// Compiles a StableHLO module given as MLIR text.
    pub fn compile(&self, mlir_text: &str, options: &CompileOptions) -> Result<Executable> {
        self.compile_mlir(mlir_text.as_bytes(), options)
    }

    /// Compiles a StableHLO module given as MLIR text or MLIR bytecode (the
    /// plugin tells them apart).
    pub fn compile_mlir(&self, code: &[u8], options: &CompileOptions) -> Result<Executable> {
        let plugin = &self.inner.plugin;
        let options = self.effective_options(options)?;
        let encoded = options.encode()?;
        if options.device_assignment.is_none() && options.device_count() > self.device_count() {
            return Err(Error::CompileOptions(format!(
                "{} replicas x {} partitions need {} devices, the client has {}",
                options.num_replicas,
                options.num_partitions,
                options.device_count(),
                self.device_count()
            )));
        }
        let format = "mlir";
        let mut program = ffi::PJRT_Program::new();
        program.code = code.as_ptr().cast::<c_char>().cast_mut();
        program.code_size = code.len();
        program.format = format.as_ptr().cast();
        program.format_size = format.len();
        let mut args = ffi::PJRT_Client_Compile_Args::new();
        args.client = self.inner.raw;
        args.program = &program;
        args.compile_options = encoded.as_ptr().cast();
        args.compile_options_size = encoded.len();
        pjrt_call!(plugin, PJRT_Client_Compile, &mut args)
            .map_err(|e| self.name_suspect_defaults(e))?;
        Executable::from_loaded(self, args.executable)
    }

    /// A compile's `error` with the client's compile defaults that its message names appended as
    /// suspects, with their source: XLA names an option it refuses, not who set it.
    fn name_suspect_defaults(&self, error: Error) -> Error {
        let Error::Pjrt {
            function,
            code,
            message,
        } = error
        else {
            return error;
        };
        let named: Vec<String> = self
            .compile_defaults
            .iter()
            .filter(|(name, _)| message.contains(name.as_str()))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let message = match (named.is_empty(), &self.compile_defaults_source) {
            (true, _) => message,
            (false, source) => format!(
                "{message}; suspect option of {}: {}",
                source.as_deref().unwrap_or("the client's compile defaults"),
                named.join(" ")
            ),
        };
        Error::Pjrt {
            function,
            code,
            message,
        }
    }

    /// Loads an executable serialized by [`Executable::serialize`] (or
    /// [`crate::UnloadedExecutable::serialize`]) onto this client's devices,
    /// skipping XLA's compile. The bytes must come from the same plugin
    /// build; the plugin refuses others with its own error.
    pub fn deserialize(&self, serialized: &[u8]) -> Result<Executable> {
        let mut args = ffi::PJRT_Executable_DeserializeAndLoad_Args::new();
        args.client = self.inner.raw;
        args.serialized_executable = serialized.as_ptr().cast();
        args.serialized_executable_size = serialized.len();
        pjrt_call!(
            &self.inner.plugin,
            PJRT_Executable_DeserializeAndLoad,
            &mut args
        )?;
        Executable::from_loaded(self, args.loaded_executable)
    }
}

impl Executable {
    /// Wraps a loaded executable of `client`: its devices, outputs and
    /// per-device parameter shapes. Frees it on any error.
    fn from_loaded(client: &Client, loaded: *mut ffi::PJRT_LoadedExecutable) -> Result<Executable> {
        let plugin = &client.inner.plugin;
        let mut exe = Executable {
            client: client.clone(),
            loaded,
            executable: std::ptr::null_mut(),
            devices: Vec::new(),
            num_outputs: 0,
            parameters: None,
        };
        let mut get = ffi::PJRT_LoadedExecutable_GetExecutable_Args::new();
        get.loaded_executable = exe.loaded;
        pjrt_call!(plugin, PJRT_LoadedExecutable_GetExecutable, &mut get)?;
        exe.executable = get.executable;
        let mut devices = ffi::PJRT_LoadedExecutable_AddressableDevices_Args::new();
        devices.executable = exe.loaded;
        pjrt_call!(
            plugin,
            PJRT_LoadedExecutable_AddressableDevices,
            &mut devices
        )?;
        // SAFETY: the executable owns `num_addressable_devices` device pointers.
        exe.devices =
            unsafe { raw_list(devices.addressable_devices, devices.num_addressable_devices) };
        exe.num_outputs = introspection::num_outputs(plugin, exe.executable)?;
        exe.parameters = exe.optimized_hlo().ok().map(|module| {
            module
                .parameter_shapes()
                .iter()
                .map(|s| (s.dtype(), s.dims()))
                .collect()
        });
        Ok(exe)
    }
}

impl Executable {
    /// The client the executable belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Number of devices it runs on; argument list `i` goes to partition `i`.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The devices it runs on, in partition order.
    pub fn devices(&self) -> Result<Vec<Device>> {
        self.devices
            .iter()
            .map(|&d| self.client.describe(d, true))
            .collect()
    }

    /// Outputs per device.
    pub fn num_outputs(&self) -> usize {
        self.num_outputs
    }

    /// Per-device parameter dtypes and shapes, where the plugin reports them.
    pub fn parameters(&self) -> Option<&[(Option<DType>, Vec<usize>)]> {
        self.parameters.as_deref()
    }

    /// Element type of every output.
    pub fn output_dtypes(&self) -> Result<Vec<DType>> {
        let mut args = ffi::PJRT_Executable_OutputElementTypes_Args::new();
        args.executable = self.executable;
        pjrt_call!(
            &self.client.inner.plugin,
            PJRT_Executable_OutputElementTypes,
            &mut args
        )?;
        if args.output_types.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: the plugin returns `num_output_types` types owned by the executable.
        let types = unsafe { std::slice::from_raw_parts(args.output_types, args.num_output_types) };
        types
            .iter()
            .map(|&t| DType::from_pjrt(t).ok_or(Error::UnsupportedType(t)))
            .collect()
    }

    /// Per-device shape of every output.
    pub fn output_dims(&self) -> Result<Vec<Vec<usize>>> {
        let mut args = ffi::PJRT_Executable_OutputDimensions_Args::new();
        args.executable = self.executable;
        pjrt_call!(
            &self.client.inner.plugin,
            PJRT_Executable_OutputDimensions,
            &mut args
        )?;
        if args.dim_sizes.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: `num_outputs` ranks, and their sum of dims, owned by the executable.
        let ranks = unsafe { std::slice::from_raw_parts(args.dim_sizes, args.num_outputs) };
        let total: usize = ranks.iter().sum();
        let dims = if total == 0 {
            &[][..]
        } else {
            unsafe { std::slice::from_raw_parts(args.dims, total) }
        };
        let mut out = Vec::with_capacity(ranks.len());
        let mut at = 0;
        for &rank in ranks {
            out.push(dims[at..at + rank].iter().map(|&d| d as usize).collect());
            at += rank;
        }
        Ok(out)
    }

    /// The program after XLA's optimizations and SPMD partitioning.
    pub fn optimized_hlo(&self) -> Result<HloModule> {
        introspection::optimized_hlo(&self.client.inner.plugin, self.executable)
    }

    /// XLA's memory sizes per device, or `None` where the plugin does not
    /// report them.
    pub fn memory_stats(&self) -> Result<Option<MemoryStats>> {
        introspection::memory_stats(&self.client.inner.plugin, self.executable)
    }

    /// XLA's cost analysis (`flops`, `bytes accessed`, ...), or `None` where
    /// the plugin does not report it.
    pub fn cost_analysis(&self) -> Result<Option<Vec<(String, NamedValue)>>> {
        introspection::cost_analysis(&self.client.inner.plugin, self.executable)
    }

    /// The plugin's serialized form of this executable, for
    /// [`Client::deserialize`] (a persistent compile cache).
    pub fn serialize(&self) -> Result<Vec<u8>> {
        introspection::serialize(&self.client.inner.plugin, self.executable)
    }

    /// Runs the program: `args[i]` are the arguments of partition `i`; returns
    /// `outputs[i][j]`, output `j` of partition `i`. No argument is donated.
    /// Blocks until every device has finished.
    pub fn execute(&self, args: &[&[&Buffer]]) -> Result<Vec<Vec<Buffer>>> {
        let lists: Vec<Vec<(&Buffer, bool)>> = args
            .iter()
            .map(|list| list.iter().map(|&b| (b, false)).collect())
            .collect();
        self.run(&lists)
    }

    /// Like [`Executable::execute`], for a single-device program.
    pub fn execute_one(&self, args: &[&Buffer]) -> Result<Vec<Buffer>> {
        let mut outputs = self.execute(&[args])?;
        Ok(outputs.remove(0))
    }

    /// Runs a partitioned program on sharded arguments (shard `i` of each goes
    /// to partition `i`) and returns `outputs[j][i]`: output `j`'s buffer on
    /// device `i`, ready for [`ShardedArray::from_shards`].
    pub fn execute_sharded(&self, args: &[&ShardedArray]) -> Result<Vec<Vec<Buffer>>> {
        let lists: Vec<Vec<&Buffer>> = (0..self.devices.len())
            .map(|device| {
                args.iter()
                    .map(|a| {
                        a.shards().get(device).ok_or(Error::DeviceCount {
                            expected: self.devices.len(),
                            got: a.shards().len(),
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let slices: Vec<&[&Buffer]> = lists.iter().map(Vec::as_slice).collect();
        let per_device = self.execute(&slices)?;
        let mut per_output: Vec<Vec<Buffer>> = (0..self.num_outputs).map(|_| Vec::new()).collect();
        for outputs in per_device {
            for (j, buffer) in outputs.into_iter().enumerate() {
                per_output[j].push(buffer);
            }
        }
        Ok(per_output)
    }

    /// Runs the program with some arguments donated ([`Arg::Donated`]): the
    /// program may write its outputs into their memory. Donated buffers are
    /// consumed even when execution fails.
    pub fn execute_donating(&self, args: Vec<Vec<Arg<'_>>>) -> Result<Vec<Vec<Buffer>>> {
        let lists: Vec<Vec<(&Buffer, bool)>> = args
            .iter()
            .map(|list| {
                list.iter()
                    .map(|a| (a.buffer(), matches!(a, Arg::Donated(_))))
                    .collect()
            })
            .collect();
        self.run(&lists)
    }

    /// Checks every argument against the program before the plugin sees it.
    fn check_args(&self, lists: &[Vec<(&Buffer, bool)>]) -> Result<()> {
        if lists.len() != self.devices.len() {
            return Err(Error::DeviceCount {
                expected: self.devices.len(),
                got: lists.len(),
            });
        }
        for (device, list) in lists.iter().enumerate() {
            if let Some(params) = &self.parameters {
                if params.len() != list.len() {
                    return Err(Error::ArgumentCount {
                        device,
                        expected: params.len(),
                        got: list.len(),
                    });
                }
                for (index, ((dtype, dims), (buffer, _))) in params.iter().zip(list).enumerate() {
                    if *dtype != Some(buffer.dtype()) || dims != buffer.dims() {
                        return Err(Error::ArgumentMismatch {
                            device,
                            index,
                            expected_dtype: dtype.unwrap_or(buffer.dtype()),
                            expected_shape: dims.clone(),
                            got_dtype: buffer.dtype(),
                            got_shape: buffer.dims().to_vec(),
                        });
                    }
                }
            } else if list.len() != lists[0].len() {
                return Err(Error::ArgumentCount {
                    device,
                    expected: lists[0].len(),
                    got: list.len(),
                });
            }
            for (index, (buffer, _)) in list.iter().enumerate() {
                if buffer.device != self.devices[device] {
                    let id = |d| self.client.describe(d, true).map(|d| d.id).unwrap_or(-1);
                    return Err(Error::ArgumentDevice {
                        device,
                        index,
                        expected_device: id(self.devices[device]),
                        buffer_device: buffer
                            .client
                            .describe(buffer.device, true)
                            .map(|d| d.id)
                            .unwrap_or(-1),
                    });
                }
            }
        }
        Ok(())
    }

    fn run(&self, lists: &[Vec<(&Buffer, bool)>]) -> Result<Vec<Vec<Buffer>>> {
        self.check_args(lists)?;
        let plugin = &self.client.inner.plugin;
        let num_args = lists.first().map_or(0, Vec::len);
        let non_donatable: Vec<i64> = (0..num_args)
            .filter(|&i| lists.iter().any(|list| !list[i].1))
            .map(|i| i as i64)
            .collect();
        let raw_args: Vec<Vec<*mut ffi::PJRT_Buffer>> = lists
            .iter()
            .map(|list| list.iter().map(|(b, _)| b.raw).collect())
            .collect();
        let arg_ptrs: Vec<*const *mut ffi::PJRT_Buffer> =
            raw_args.iter().map(|l| l.as_ptr()).collect();
        let mut raw_outputs: Vec<Vec<*mut ffi::PJRT_Buffer>> = (0..lists.len())
            .map(|_| vec![std::ptr::null_mut(); self.num_outputs])
            .collect();
        let output_ptrs: Vec<*mut *mut ffi::PJRT_Buffer> =
            raw_outputs.iter_mut().map(|l| l.as_mut_ptr()).collect();
        let mut events: Vec<*mut ffi::PJRT_Event> = vec![std::ptr::null_mut(); lists.len()];

        let mut options = ffi::PJRT_ExecuteOptions::new();
        options.non_donatable_input_indices = non_donatable.as_ptr();
        options.num_non_donatable_input_indices = non_donatable.len();
        let mut args = ffi::PJRT_LoadedExecutable_Execute_Args::new();
        args.executable = self.loaded;
        args.options = &mut options;
        args.argument_lists = arg_ptrs.as_ptr();
        args.num_devices = lists.len();
        args.num_args = num_args;
        args.output_lists = output_ptrs.as_ptr();
        args.device_complete_events = events.as_mut_ptr();
        pjrt_call!(plugin, PJRT_LoadedExecutable_Execute, &mut args)?;

        // Wrap every output first so all handles are freed on any error below.
        let mut outputs = Vec::with_capacity(lists.len());
        let mut first_error = None;
        for (device, list) in raw_outputs.iter().enumerate() {
            let mut row = Vec::with_capacity(list.len());
            for &raw in list {
                match Buffer::from_raw(&self.client, raw, self.devices[device]) {
                    Ok(b) => row.push(b),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            outputs.push(row);
        }
        for event in events {
            if let Err(e) = plugin.await_event(event, "PJRT_LoadedExecutable_Execute") {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(outputs),
        }
    }
}
