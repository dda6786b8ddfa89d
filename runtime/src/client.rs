//! A PJRT client: the devices of one plugin, and the entry point for buffers
//! and compilation.

use std::ffi::c_char;
use std::sync::Arc;

use crate::compile_options::OverrideValue;
use crate::error::{Error, Result};
use crate::ffi::{self, Args};
use crate::plugin::{Plugin, lossy, pjrt_call};

/// A named client create option (`cpu_device_count`, ...). Unknown names are
/// passed through: the plugin answers with its own error.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateOption {
    /// The option's name.
    pub name: String,
    /// Its value.
    pub value: OptionValue,
}

/// The value of a [`CreateOption`].
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// A 64-bit integer.
    Int64(i64),
    /// A string.
    String(String),
    /// A boolean.
    Bool(bool),
    /// A 32-bit float.
    Float(f32),
    /// A list of 64-bit integers.
    Int64List(Vec<i64>),
}

impl CreateOption {
    /// An integer option.
    pub fn int(name: &str, value: i64) -> Self {
        CreateOption {
            name: name.into(),
            value: OptionValue::Int64(value),
        }
    }
    /// A string option.
    pub fn string(name: &str, value: &str) -> Self {
        CreateOption {
            name: name.into(),
            value: OptionValue::String(value.into()),
        }
    }
    /// A boolean option.
    pub fn bool(name: &str, value: bool) -> Self {
        CreateOption {
            name: name.into(),
            value: OptionValue::Bool(value),
        }
    }
    /// A float option.
    pub fn float(name: &str, value: f32) -> Self {
        CreateOption {
            name: name.into(),
            value: OptionValue::Float(value),
        }
    }
    /// An integer-list option.
    pub fn int_list(name: &str, value: Vec<i64>) -> Self {
        CreateOption {
            name: name.into(),
            value: OptionValue::Int64List(value),
        }
    }

    pub(crate) fn to_ffi(&self) -> ffi::PJRT_NamedValue {
        let mut v = ffi::PJRT_NamedValue::new();
        v.name = self.name.as_ptr().cast::<c_char>();
        v.name_size = self.name.len();
        v.value_size = 1;
        match &self.value {
            OptionValue::Int64(x) => {
                v.type_ = ffi::PJRT_NamedValue_kInt64;
                v.value.int64_value = *x;
            }
            OptionValue::String(s) => {
                v.type_ = ffi::PJRT_NamedValue_kString;
                v.value.string_value = s.as_ptr().cast::<c_char>();
                v.value_size = s.len();
            }
            OptionValue::Bool(b) => {
                v.type_ = ffi::PJRT_NamedValue_kBool;
                v.value.bool_value = *b;
            }
            OptionValue::Float(f) => {
                v.type_ = ffi::PJRT_NamedValue_kFloat;
                v.value.float_value = *f;
            }
            OptionValue::Int64List(list) => {
                v.type_ = ffi::PJRT_NamedValue_kInt64List;
                v.value.int64_array_value = list.as_ptr();
                v.value_size = list.len();
            }
        }
        v
    }
}

/// A device as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// The global device id.
    pub id: i32,
    /// The vendor's device kind (`cpu`, `NVIDIA H100 80GB HBM3`, ...).
    pub kind: String,
    /// The index of the process that can address the device.
    pub process_index: i32,
    /// A short description (`CpuDevice(id=0)`).
    pub description: String,
    /// Whether this client can issue work to it.
    pub addressable: bool,
}

pub(crate) struct ClientInner {
    pub(crate) plugin: Arc<Plugin>,
    pub(crate) raw: *mut ffi::PJRT_Client,
    pub(crate) addressable: Vec<*mut ffi::PJRT_Device>,
}

// SAFETY: a PJRT_Client is thread-safe by the C API's contract (JAX calls
// one client from many threads); the device pointers are owned by the client
// and immutable.
unsafe impl Send for ClientInner {}
// SAFETY: as above.
unsafe impl Sync for ClientInner {}

impl Drop for ClientInner {
    fn drop(&mut self) {
        let mut args = ffi::PJRT_Client_Destroy_Args::new();
        args.client = self.raw;
        // An error while shutting down has nobody to report to.
        let _ = pjrt_call!(&self.plugin, PJRT_Client_Destroy, &mut args);
    }
}

/// A PJRT client. Cheap to clone (shared); buffers and executables keep it alive.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
    /// XLA option overrides every compile on this client gets unless the
    /// caller sets the same option ([`Client::with_compile_defaults`]).
    pub(crate) compile_defaults: Vec<(String, OverrideValue)>,
    /// Where the compile defaults come from, for errors (`mesh rule `tpu-v5e-*``).
    pub(crate) compile_defaults_source: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("plugin", &self.inner.plugin)
            .field("devices", &self.inner.addressable.len())
            .finish()
    }
}

impl Client {
    /// A client of the default CPU plugin with `devices` virtual CPU devices
    /// (the `cpu_device_count` option): sharded programs run for real on one host.
    pub fn cpu(devices: usize) -> Result<Client> {
        Client::new(
            Plugin::load("cpu")?,
            &[CreateOption::int("cpu_device_count", devices as i64)],
        )
    }

    /// A client of `plugin` with the given create options.
    pub fn new(plugin: Arc<Plugin>, options: &[CreateOption]) -> Result<Client> {
        let values: Vec<ffi::PJRT_NamedValue> = options.iter().map(CreateOption::to_ffi).collect();
        let mut args = ffi::PJRT_Client_Create_Args::new();
        args.create_options = values.as_ptr();
        args.num_options = values.len();
        pjrt_call!(&plugin, PJRT_Client_Create, &mut args)?;
        let mut inner = ClientInner {
            plugin,
            raw: args.client,
            addressable: Vec::new(),
        };
        let mut devices = ffi::PJRT_Client_AddressableDevices_Args::new();
        devices.client = inner.raw;
        pjrt_call!(&inner.plugin, PJRT_Client_AddressableDevices, &mut devices)?;
        // SAFETY: the client owns `num_addressable_devices` device pointers.
        inner.addressable =
            unsafe { raw_list(devices.addressable_devices, devices.num_addressable_devices) };
        Ok(Client {
            inner: Arc::new(inner),
            compile_defaults: Vec::new(),
            compile_defaults_source: None,
        })
    }

    /// This client with XLA option overrides (name, value) added to every
    /// compile on it unless the caller's options set the same name: the
    /// compiler options a mesh rule gives for the hardware (AXLearn's
    /// `compiler_options` per instance type). They are part of the options
    /// a compile and the compile cache's key use. `source` says where they
    /// come from (`mesh rule `tpu-v5e-*``): a compile the plugin refuses with a
    /// message naming one of them names it and its source as the suspect.
    pub fn with_compile_defaults(
        mut self,
        source: &str,
        overrides: Vec<(String, OverrideValue)>,
    ) -> Client {
        self.compile_defaults_source = Some(source.to_string());
        for (name, value) in overrides {
            self.compile_defaults.retain(|(n, _)| *n != name);
            self.compile_defaults.push((name, value));
        }
        self
    }

    /// The overrides of [`Client::with_compile_defaults`], in order.
    pub fn compile_defaults(&self) -> &[(String, OverrideValue)] {
        &self.compile_defaults
    }

    /// The plugin this client runs on.
    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.inner.plugin
    }

    /// The platform name (`cpu`, `cuda`, `tpu`).
    pub fn platform_name(&self) -> Result<String> {
        let mut args = ffi::PJRT_Client_PlatformName_Args::new();
        args.client = self.inner.raw;
        pjrt_call!(&self.inner.plugin, PJRT_Client_PlatformName, &mut args)?;
        // SAFETY: the string is owned by the client and lives as long as it.
        Ok(unsafe { lossy(args.platform_name, args.platform_name_size) })
    }

    /// The platform version (for CPU the XLA build, for GPU the CUDA version).
    pub fn platform_version(&self) -> Result<String> {
        let mut args = ffi::PJRT_Client_PlatformVersion_Args::new();
        args.client = self.inner.raw;
        pjrt_call!(&self.inner.plugin, PJRT_Client_PlatformVersion, &mut args)?;
        // SAFETY: the string is owned by the client and lives as long as it.
        Ok(unsafe { lossy(args.platform_version, args.platform_version_size) })
    }

    /// This client's process index (0 in single-process runs).
    pub fn process_index(&self) -> Result<i32> {
        let mut args = ffi::PJRT_Client_ProcessIndex_Args::new();
        args.client = self.inner.raw;
        pjrt_call!(&self.inner.plugin, PJRT_Client_ProcessIndex, &mut args)?;
        Ok(args.process_index)
    }

    /// Every device the runtime sees, addressable or not.
    pub fn devices(&self) -> Result<Vec<Device>> {
        let mut args = ffi::PJRT_Client_Devices_Args::new();
        args.client = self.inner.raw;
        pjrt_call!(&self.inner.plugin, PJRT_Client_Devices, &mut args)?;
        // SAFETY: the client owns `num_devices` device pointers.
        let all = unsafe { raw_list(args.devices, args.num_devices) };
        all.into_iter()
            .map(|d| self.describe(d, self.inner.addressable.contains(&d)))
            .collect()
    }

    /// The devices this client can issue work to; index `i` here is the
    /// `device` argument of the buffer functions.
    pub fn addressable_devices(&self) -> Result<Vec<Device>> {
        self.inner
            .addressable
            .iter()
            .map(|&d| self.describe(d, true))
            .collect()
    }

    /// The upper limit of memory the program may allocate on addressable
    /// device `index`, in bytes: `bytes_limit` of `PJRT_Device_MemoryStats`
    /// (the allocator's limit; the CUDA plugin reports its memory fraction
    /// of the GPU). `None` where the plugin reports no limit: the CPU
    /// plugins, whose devices share host memory, answer `UNIMPLEMENTED`.
    /// Errors: [`Error::DeviceIndex`] for an index out of range, and the
    /// plugin's other errors.
    pub fn device_memory_limit(&self, index: usize) -> Result<Option<u64>> {
        let mut args = ffi::PJRT_Device_MemoryStats_Args::new();
        args.device = self.device_ptr(index)?;
        match pjrt_call!(&self.inner.plugin, PJRT_Device_MemoryStats, &mut args) {
            Ok(()) if args.bytes_limit_is_set && args.bytes_limit > 0 => {
                Ok(Some(args.bytes_limit as u64))
            }
            Ok(()) => Ok(None),
            Err(e) if crate::introspection::unsupported(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Number of addressable devices.
    pub fn device_count(&self) -> usize {
        self.inner.addressable.len()
    }

    pub(crate) fn device_ptr(&self, index: usize) -> Result<*mut ffi::PJRT_Device> {
        self.inner
            .addressable
            .get(index)
            .copied()
            .ok_or(Error::DeviceIndex {
                index,
                count: self.inner.addressable.len(),
            })
    }

    pub(crate) fn describe(
        &self,
        device: *mut ffi::PJRT_Device,
        addressable: bool,
    ) -> Result<Device> {
        let plugin = &self.inner.plugin;
        let mut get = ffi::PJRT_Device_GetDescription_Args::new();
        get.device = device;
        pjrt_call!(plugin, PJRT_Device_GetDescription, &mut get)?;
        let description = get.device_description;
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
        // SAFETY: the strings are owned by the device and live as long as the client.
        let (kind, description) = unsafe {
            (
                lossy(kind.device_kind, kind.device_kind_size),
                lossy(text.to_string, text.to_string_size),
            )
        };
        Ok(Device {
            id: id.id,
            kind,
            process_index: process.process_index,
            description,
            addressable,
        })
    }
}

/// Copies a plugin-owned pointer list.
///
/// # Safety
/// `ptr` must point to `n` readable pointers, or be null.
pub(crate) unsafe fn raw_list<T>(ptr: *const *mut T, n: usize) -> Vec<*mut T> {
    if ptr.is_null() || n == 0 {
        Vec::new()
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(ptr, n) }.to_vec()
    }
}
