//! A loaded PJRT plugin: the shared library, its function table, and the
//! process-wide registry that initialises each plugin exactly once.

use std::collections::HashMap;
use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::discovery;
use crate::error::{Error, ErrorCode, Result};
use crate::ffi::{self, Args};

/// Calls a function of the plugin's table by name, checking that the plugin's
/// table is long enough to hold it, and turns a returned `PJRT_Error` into
/// [`Error::Pjrt`]. Evaluates to `Result<()>`.
macro_rules! pjrt_call {
    ($plugin:expr, $name:ident, $args:expr) => {{
        let plugin: &$crate::plugin::Plugin = $plugin;
        match plugin.check_has(
            std::mem::offset_of!($crate::ffi::PJRT_Api, $name),
            stringify!($name),
        ) {
            Err(e) => Err(e),
            Ok(()) => match plugin.api().$name {
                None => Err(plugin.missing(stringify!($name))),
                // SAFETY: the table entry lies inside the plugin's table (checked
                // above) and the argument struct follows the header's layout.
                Some(f) => plugin.take_error(unsafe { f($args) }, stringify!($name)),
            },
        }
    }};
}
pub(crate) use pjrt_call;

/// Which quirks of a known plugin the runtime works around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quirk {
    /// xla-cpu-pjrt 0.0.1: multi-device collectives deadlock inside XNNPACK
    /// (rendezvous timeout). Compiles add the env option override
    /// `xla_cpu_use_xnnpack=false`.
    XnnpackCollectiveDeadlock,
}

/// A PJRT plugin loaded into this process and initialised.
///
/// Plugins are never unloaded: the C API gives no way to know that no thread
/// still runs plugin code, so the library stays mapped for the process life.
pub struct Plugin {
    path: PathBuf,
    api: *const ffi::PJRT_Api,
    major: i32,
    minor: i32,
    quirks: Vec<Quirk>,
}

// SAFETY: the function table is immutable after `GetPjrtApi` returns, and the
// PJRT C API requires its functions to be callable from any thread.
unsafe impl Send for Plugin {}
// SAFETY: as above; `Plugin` has no interior mutability.
unsafe impl Sync for Plugin {}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("path", &self.path)
            .field("api_version", &(self.major, self.minor))
            .finish()
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Plugin>>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Arc<Plugin>>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl Plugin {
    /// Loads the plugin for a platform (`cpu`, `cuda`, `tpu`) or a path to a
    /// plugin `.so`, as found by the documented discovery (see [`discovery`]).
    pub fn load(platform_or_path: &str) -> Result<Arc<Plugin>> {
        Plugin::load_path(&discovery::find_plugin(platform_or_path)?)
    }

    /// Loads and initialises the plugin at `path`, or returns the one this
    /// process already loaded from the same file (keyed by canonical path).
    pub fn load_path(path: &Path) -> Result<Arc<Plugin>> {
        let canonical = path.canonicalize().map_err(|e| Error::PluginLoad {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut plugins = registry().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plugin) = plugins.get(&canonical) {
            return Ok(plugin.clone());
        }
        let plugin = Arc::new(Plugin::open(&canonical)?);
        plugins.insert(canonical, plugin.clone());
        Ok(plugin)
    }

    fn open(path: &Path) -> Result<Plugin> {
        let load_error = |reason: String| Error::PluginLoad {
            path: path.to_path_buf(),
            reason,
        };
        if path.file_name().is_some_and(|n| n == "xla_cuda_plugin.so") {
            crate::cuda_preload::preload_cuda_libraries(path);
        }
        // SAFETY: loading a library runs its initialisers; a PJRT plugin's are
        // those of an ordinary C++ shared library.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|e| load_error(e.to_string()))?;
        // SAFETY: `GetPjrtApi` has this signature in every PJRT plugin.
        let get_api: libloading::Symbol<unsafe extern "C" fn() -> *const ffi::PJRT_Api> = unsafe {
            library.get(b"GetPjrtApi\0")
        }
        .map_err(|e| load_error(format!("not a PJRT plugin (no GetPjrtApi symbol): {e}")))?;
        // SAFETY: see above.
        let api = unsafe { get_api() };
        // SAFETY: a table from GetPjrtApi lives as long as the library, which
        // is never unloaded (forgotten below).
        let plugin = unsafe { Plugin::from_table(path, api) }?;
        std::mem::forget(library);
        let mut args = ffi::PJRT_Plugin_Initialize_Args::new();
        pjrt_call!(&plugin, PJRT_Plugin_Initialize, &mut args)?;
        Ok(plugin)
    }

    /// Checks a plugin's function table (length, API major version) and
    /// wraps it, without initialising the plugin.
    ///
    /// # Safety
    /// `api` must be null or point to a table at least `struct_size` bytes
    /// long that stays valid for the life of the process.
    unsafe fn from_table(path: &Path, api: *const ffi::PJRT_Api) -> Result<Plugin> {
        let load_error = |reason: String| Error::PluginLoad {
            path: path.to_path_buf(),
            reason,
        };
        if api.is_null() {
            return Err(load_error("GetPjrtApi returned null".into()));
        }
        // SAFETY: `struct_size` is the first field of every table version.
        let struct_size = unsafe { (*api).struct_size };
        let min_size = std::mem::offset_of!(ffi::PJRT_Api, PJRT_Plugin_Initialize);
        if struct_size < min_size {
            return Err(load_error(format!(
                "function table of {struct_size} bytes is too short"
            )));
        }
        // SAFETY: the version struct lies within the `min_size` bytes checked above.
        let version = unsafe { &(*api).pjrt_api_version };
        let (major, minor) = (version.major_version, version.minor_version);
        if major != ffi::PJRT_API_MAJOR {
            return Err(Error::IncompatibleApi {
                path: path.to_path_buf(),
                major,
                minor,
                supported: ffi::PJRT_API_MAJOR,
            });
        }
        let quirks = if path.file_name().is_some_and(|n| n == "xla_cpu_pjrt.so") {
            vec![Quirk::XnnpackCollectiveDeadlock]
        } else {
            Vec::new()
        };
        Ok(Plugin {
            path: path.to_path_buf(),
            api,
            major,
            minor,
            quirks,
        })
    }

    /// The shared library this plugin was loaded from (canonical path).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The PJRT C API version the plugin was built with (major, minor).
    pub fn api_version(&self) -> (i32, i32) {
        (self.major, self.minor)
    }

    /// The plugin's attributes, e.g. `xla_version`, `stablehlo_current_version`
    /// and `stablehlo_minimum_version` (the StableHLO version range it reads).
    pub fn attributes(&self) -> Result<Vec<(String, NamedValue)>> {
        let mut args = ffi::PJRT_Plugin_Attributes_Args::new();
        pjrt_call!(self, PJRT_Plugin_Attributes, &mut args)?;
        // SAFETY: the plugin returns `num_attributes` values that live as long
        // as the process.
        Ok(unsafe { named_values(args.attributes, args.num_attributes) })
    }

    pub(crate) fn has_quirk(&self, quirk: Quirk) -> bool {
        self.quirks.contains(&quirk)
    }

    pub(crate) fn api(&self) -> &ffi::PJRT_Api {
        // SAFETY: checked non-null at load; the library is never unloaded.
        unsafe { &*self.api }
    }

    /// Ok when the plugin's table is long enough to hold the entry at `offset`.
    pub(crate) fn check_has(&self, offset: usize, function: &'static str) -> Result<()> {
        if offset + size_of::<usize>() <= self.api().struct_size {
            Ok(())
        } else {
            Err(self.missing(function))
        }
    }

    pub(crate) fn missing(&self, function: &'static str) -> Error {
        Error::MissingFunction {
            path: self.path.clone(),
            function,
            major: self.major,
            minor: self.minor,
        }
    }

    /// Converts a `PJRT_Error*` into a Rust error carrying the plugin's code
    /// and message, and destroys it. Null means success.
    pub(crate) fn take_error(
        &self,
        error: *mut ffi::PJRT_Error,
        function: &'static str,
    ) -> Result<()> {
        if error.is_null() {
            return Ok(());
        }
        let api = self.api();
        let mut message = ffi::PJRT_Error_Message_Args::new();
        message.error = error;
        let mut code = ffi::PJRT_Error_GetCode_Args::new();
        code.error = error;
        let mut destroy = ffi::PJRT_Error_Destroy_Args::new();
        destroy.error = error;
        // SAFETY: these three entries exist in every API version (they precede
        // PJRT_Plugin_Initialize, checked at load); `error` came from the plugin.
        unsafe {
            let text = match api.PJRT_Error_Message {
                Some(f) => {
                    f(&mut message);
                    lossy(message.message, message.message_size)
                }
                None => String::from("(plugin gave no message)"),
            };
            let code_value = match api.PJRT_Error_GetCode {
                Some(f) if f(&mut code).is_null() => code.code,
                _ => 2,
            };
            if let Some(f) = api.PJRT_Error_Destroy {
                f(&mut destroy);
            }
            Err(Error::Pjrt {
                function,
                code: ErrorCode(code_value),
                message: text,
            })
        }
    }

    /// Blocks until `event` is ready, destroys it, and returns its status.
    pub(crate) fn await_event(
        &self,
        event: *mut ffi::PJRT_Event,
        what: &'static str,
    ) -> Result<()> {
        if event.is_null() {
            return Ok(());
        }
        let mut wait = ffi::PJRT_Event_Await_Args::new();
        wait.event = event;
        let status = pjrt_call!(self, PJRT_Event_Await, &mut wait);
        let mut destroy = ffi::PJRT_Event_Destroy_Args::new();
        destroy.event = event;
        let destroyed = pjrt_call!(self, PJRT_Event_Destroy, &mut destroy);
        status.map_err(|e| match e {
            Error::Pjrt { code, message, .. } => Error::Pjrt {
                function: what,
                code,
                message,
            },
            other => other,
        })?;
        destroyed
    }
}

/// A value of a plugin attribute, client create option or cost property.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedValue {
    /// A string.
    String(String),
    /// A 64-bit integer.
    Int64(i64),
    /// A list of 64-bit integers.
    Int64List(Vec<i64>),
    /// A 32-bit float.
    Float(f32),
    /// A boolean.
    Bool(bool),
}

/// Copies `n` named values out of plugin memory.
///
/// # Safety
/// `values` must point to `n` valid `PJRT_NamedValue`s (or be null with n = 0).
pub(crate) unsafe fn named_values(
    values: *const ffi::PJRT_NamedValue,
    n: usize,
) -> Vec<(String, NamedValue)> {
    if values.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    let values = unsafe { std::slice::from_raw_parts(values, n) };
    values
        .iter()
        .map(|v| {
            // SAFETY: the plugin fills the union member named by `type_`.
            unsafe {
                let name = lossy(v.name, v.name_size);
                let value = match v.type_ {
                    ffi::PJRT_NamedValue_kString => {
                        NamedValue::String(lossy(v.value.string_value, v.value_size))
                    }
                    ffi::PJRT_NamedValue_kInt64 => NamedValue::Int64(v.value.int64_value),
                    ffi::PJRT_NamedValue_kInt64List => {
                        NamedValue::Int64List(if v.value.int64_array_value.is_null() {
                            Vec::new()
                        } else {
                            std::slice::from_raw_parts(v.value.int64_array_value, v.value_size)
                                .to_vec()
                        })
                    }
                    ffi::PJRT_NamedValue_kFloat => NamedValue::Float(v.value.float_value),
                    _ => NamedValue::Bool(v.value.bool_value),
                };
                (name, value)
            }
        })
        .collect()
}

/// A Rust string from a plugin-owned (pointer, length) pair.
///
/// # Safety
/// `ptr` must point to `len` readable bytes, or be null.
pub(crate) unsafe fn lossy(ptr: *const c_char, len: usize) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zeroed function table claiming `struct_size` bytes and API `major.minor`.
    fn fake_table(struct_size: usize, major: i32, minor: i32) -> &'static ffi::PJRT_Api {
        // SAFETY: the table holds integers, pointers and Option<fn>: zero is valid.
        let mut table: Box<ffi::PJRT_Api> = Box::new(unsafe { std::mem::zeroed() });
        table.struct_size = struct_size;
        table.pjrt_api_version.major_version = major;
        table.pjrt_api_version.minor_version = minor;
        Box::leak(table)
    }

    fn plugin(struct_size: usize, major: i32) -> Result<Plugin> {
        let table = fake_table(struct_size, major, 1);
        // SAFETY: the leaked table lives for the process.
        unsafe { Plugin::from_table(Path::new("/fake/plugin.so"), table) }
    }

    #[test]
    fn a_short_table_makes_later_functions_missing_not_a_crash() {
        // A table that ends right after PJRT_Client_Create.
        let end = std::mem::offset_of!(ffi::PJRT_Api, PJRT_Client_Create) + 8;
        let plugin = plugin(end, 0).unwrap();
        let mut args = ffi::PJRT_Client_Compile_Args::new();
        let err = pjrt_call!(&plugin, PJRT_Client_Compile, &mut args).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MissingFunction {
                    function: "PJRT_Client_Compile",
                    minor: 1,
                    ..
                }
            ),
            "{err}"
        );
        // Inside the table but null: missing too.
        let mut args = ffi::PJRT_Client_Create_Args::new();
        let err = pjrt_call!(&plugin, PJRT_Client_Create, &mut args).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MissingFunction {
                    function: "PJRT_Client_Create",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn another_major_version_is_refused() {
        let size = std::mem::size_of::<ffi::PJRT_Api>();
        let err = plugin(size, 1).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IncompatibleApi {
                    major: 1,
                    supported: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("/fake/plugin.so"));
    }

    #[test]
    fn a_truncated_table_is_refused() {
        let err = plugin(16, 0).unwrap_err();
        assert!(err.to_string().contains("too short"), "{err}");
        // SAFETY: null is allowed.
        assert!(unsafe { Plugin::from_table(Path::new("/fake/p.so"), std::ptr::null()) }.is_err());
    }
}
