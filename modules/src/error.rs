//! The error type of axle-modules: every variant names the config path, parameter path or model at fault.

/// Errors from building, editing or instantiating configs and from tracing modules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required config field was left unset (`null`) at instantiation.
    #[error("config `{path}`: required field is not set")]
    Missing {
        /// Full dotted path of the field, e.g. `decoder.transformer.layers.0.attention.num_heads`.
        path: String,
    },
    /// A path given to get/set names no field of the config.
    #[error("config `{path}`: no such field; valid keys at `{parent}`: {valid}")]
    UnknownPath {
        /// The path as given.
        path: String,
        /// The longest prefix of `path` that exists.
        parent: String,
        /// The keys that exist under `parent`, comma separated.
        valid: String,
    },
    /// A path indexes a list (a numeric segment) past its end.
    #[error("config `{path}`: index {index} is out of range; `{list}` has {len} entries")]
    IndexOutOfRange {
        /// The path as given.
        path: String,
        /// The path of the list.
        list: String,
        /// The index given.
        index: usize,
        /// The length of the list.
        len: usize,
    },
    /// A value could not be stored at a path because it has the wrong type or form.
    #[error("config `{path}`: cannot set `{value}`: {reason}")]
    InvalidValue {
        /// Full dotted path of the field.
        path: String,
        /// The value as given.
        value: String,
        /// What was expected, from the deserializer.
        reason: String,
    },
    /// A command-line override that is not of the form `path=value`.
    #[error("config override `{0}` is not of the form `path=value`")]
    BadOverride(String),
    /// Config values that are each well typed but do not fit together (e.g. heads not dividing the model dim).
    #[error("config `{path}`: {message}")]
    Inconsistent {
        /// Full dotted path of the field at fault.
        path: String,
        /// What is wrong, with the numbers involved.
        message: String,
    },
    /// A model name that is not in the registry.
    #[error("unknown model `{name}`; registered models: {known}")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The registered names, comma separated.
        known: String,
    },
    /// A parameter that a module's forward needs is missing from the parameter tree.
    #[error("parameter `{path}` is missing (expected shape {expected:?})")]
    MissingParam {
        /// Full `/`-separated parameter path.
        path: String,
        /// The shape the module declares for it.
        expected: Vec<usize>,
    },
    /// A parameter has a different shape than its module declares.
    #[error("parameter `{path}` has shape {got:?}, the module declares {expected:?}")]
    ParamShape {
        /// Full `/`-separated parameter path.
        path: String,
        /// The declared shape.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A forward input has the wrong shape or dtype.
    #[error("input `{name}` of `{path}`: {message}")]
    BadInput {
        /// The module's parameter path prefix (`<root>` for the model).
        path: String,
        /// The input's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Dropout in training without an RNG key.
    #[error("`{path}`: dropout in training needs an RNG key, none was given")]
    MissingRng {
        /// The module's parameter path.
        path: String,
    },
    /// Tracing recorded an invalid op (the compiler's message names the op, shapes and location).
    #[error("tracing failed: {0}")]
    Trace(#[from] axle_compiler::TraceError),
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
