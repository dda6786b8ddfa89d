//! The runtime's error type: every failure names the thing at fault.

use std::path::PathBuf;

use crate::dtype::DType;

/// Everything that can go wrong between axle and a PJRT plugin.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No plugin for a platform was found in any of the places searched.
    #[error(
        "no PJRT plugin for platform `{platform}` found; looked in:\n{}\ninstall it with: {install}",
        searched.iter().map(|p| format!("  {}", p.display())).collect::<Vec<_>>().join("\n")
    )]
    PluginNotFound {
        /// The platform asked for (`cpu`, `cuda`, `tpu`).
        platform: String,
        /// Every path that was tried, in order.
        searched: Vec<PathBuf>,
        /// The command that installs a plugin for this platform.
        install: String,
    },

    /// The platform name is not one the discovery knows.
    #[error("unknown PJRT platform `{0}` (known: cpu, cuda, tpu, or a path to a plugin .so)")]
    UnknownPlatform(String),

    /// dlopen failed or the library does not export `GetPjrtApi`.
    #[error("cannot load PJRT plugin {path}: {reason}")]
    PluginLoad {
        /// The shared library.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },

    /// The plugin speaks an API major version these bindings do not.
    #[error("PJRT plugin {path} has API {major}.{minor}; axle supports major version {supported}")]
    IncompatibleApi {
        /// The shared library.
        path: PathBuf,
        /// Its major version.
        major: i32,
        /// Its minor version.
        minor: i32,
        /// The major version axle's bindings follow.
        supported: i32,
    },

    /// The plugin's function table is too short for a function axle needs.
    #[error("PJRT plugin {path} (API {major}.{minor}) lacks `{function}`")]
    MissingFunction {
        /// The shared library.
        path: PathBuf,
        /// The missing C API function.
        function: &'static str,
        /// The plugin's API major version.
        major: i32,
        /// The plugin's API minor version.
        minor: i32,
    },

    /// A PJRT call returned an error: the plugin's own code and message.
    #[error("{function} failed ({code}): {message}")]
    Pjrt {
        /// The C API function that failed.
        function: &'static str,
        /// The absl status code name (`INVALID_ARGUMENT`, ...).
        code: ErrorCode,
        /// The plugin's message.
        message: String,
    },

    /// Host data does not match the shape and dtype it is said to have.
    #[error("host data for shape {shape:?} of {dtype} needs {expected} bytes, got {got}")]
    ByteLength {
        /// The shape asked for.
        shape: Vec<usize>,
        /// The element type.
        dtype: DType,
        /// `product(shape) * dtype size`.
        expected: usize,
        /// What was given.
        got: usize,
    },

    /// A buffer was read as a different element type than it holds.
    #[error("buffer holds {got}, asked for {expected}")]
    DTypeMismatch {
        /// The type asked for.
        expected: DType,
        /// The buffer's type.
        got: DType,
    },

    /// The plugin reported an element type axle does not handle.
    #[error("unsupported PJRT element type {0}")]
    UnsupportedType(i32),

    /// A device index past the end of the client's addressable devices.
    #[error("device index {index} out of range: the client has {count} addressable devices")]
    DeviceIndex {
        /// The index asked for.
        index: usize,
        /// How many there are.
        count: usize,
    },

    /// The number of per-device argument lists differs from the executable's devices.
    #[error("executable runs on {expected} devices, got argument lists for {got}")]
    DeviceCount {
        /// The executable's addressable device count.
        expected: usize,
        /// Argument lists given.
        got: usize,
    },

    /// Wrong number of arguments for a device.
    #[error("device {device}: program takes {expected} arguments, got {got}")]
    ArgumentCount {
        /// The partition the list is for.
        device: usize,
        /// Parameters of the program.
        expected: usize,
        /// Arguments given.
        got: usize,
    },

    /// An argument's shape or dtype differs from the program's parameter.
    #[error(
        "device {device}, argument {index}: program expects {expected_dtype}{expected_shape:?}, got {got_dtype}{got_shape:?}"
    )]
    ArgumentMismatch {
        /// The partition.
        device: usize,
        /// The parameter position.
        index: usize,
        /// Parameter dtype.
        expected_dtype: DType,
        /// Parameter per-device shape.
        expected_shape: Vec<usize>,
        /// Argument dtype.
        got_dtype: DType,
        /// Argument shape.
        got_shape: Vec<usize>,
    },

    /// An argument lives on another device than the partition it is given to.
    #[error(
        "device {device}, argument {index}: buffer is on device id {buffer_device}, partition runs on device id {expected_device}"
    )]
    ArgumentDevice {
        /// The partition.
        device: usize,
        /// The parameter position.
        index: usize,
        /// Device id of the partition.
        expected_device: i32,
        /// Device id the buffer is on.
        buffer_device: i32,
    },

    /// Compile options that XLA would reject or abort on.
    #[error("invalid compile options: {0}")]
    CompileOptions(String),

    /// A shard layout that does not fit the array or the mesh.
    #[error("invalid shard layout: {0}")]
    ShardLayout(String),

    /// The optimized program could not be decoded.
    #[error("cannot decode the optimized HLO: {0}")]
    HloDecode(String),

    /// An ndarray could not be built from the data read back.
    #[error("cannot build an array of shape {shape:?}: {reason}")]
    Array {
        /// The shape.
        shape: Vec<usize>,
        /// ndarray's complaint.
        reason: String,
    },
}

/// A PJRT status code (absl codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    /// `INVALID_ARGUMENT`.
    pub const INVALID_ARGUMENT: ErrorCode = ErrorCode(3);
    /// `UNIMPLEMENTED`.
    pub const UNIMPLEMENTED: ErrorCode = ErrorCode(12);

    /// The absl name of the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "OK",
            1 => "CANCELLED",
            2 => "UNKNOWN",
            3 => "INVALID_ARGUMENT",
            4 => "DEADLINE_EXCEEDED",
            5 => "NOT_FOUND",
            6 => "ALREADY_EXISTS",
            7 => "PERMISSION_DENIED",
            8 => "RESOURCE_EXHAUSTED",
            9 => "FAILED_PRECONDITION",
            10 => "ABORTED",
            11 => "OUT_OF_RANGE",
            12 => "UNIMPLEMENTED",
            13 => "INTERNAL",
            14 => "UNAVAILABLE",
            15 => "DATA_LOSS",
            16 => "UNAUTHENTICATED",
            _ => "UNRECOGNIZED",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
