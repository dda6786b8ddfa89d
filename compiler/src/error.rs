//! The error recorded while tracing: the first invalid op wins.

use std::panic::Location;
use thiserror::Error;

/// A shape, dtype, axis or usage error found while tracing.
///
/// Displays as `dot_general at src/foo.rs:12:5: contracting dims mismatch: ...`.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{op} at {location}: {message}")]
pub struct TraceError {
    /// The op (or API call such as `grad`) that failed.
    pub op: String,
    /// The caller's source location, `file:line:column`.
    pub location: String,
    /// What is wrong, naming operand shapes and dtypes.
    pub message: String,
}

impl TraceError {
    /// An error for `op` called at `loc`.
    pub(crate) fn new(op: &str, loc: &Location<'_>, message: String) -> Self {
        TraceError {
            op: op.to_string(),
            location: format!("{}:{}:{}", loc.file(), loc.line(), loc.column()),
            message,
        }
    }
}

/// An error of a finished [`crate::Function`] (attributes, names).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FunctionError {
    /// No parameter with that name.
    #[error("function `{function}` has no parameter `{name}` (parameters: {known})")]
    UnknownParam {
        /// The function.
        function: String,
        /// The missing name.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// No result with that name.
    #[error("function `{function}` has no result `{name}` (results: {known})")]
    UnknownResult {
        /// The function.
        function: String,
        /// The missing name.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// Donation between values of different types.
    #[error(
        "cannot donate parameter `{param}` ({param_ty}) to result `{result}` ({result_ty}): types differ"
    )]
    AliasTypeMismatch {
        /// Parameter name.
        param: String,
        /// Parameter type.
        param_ty: String,
        /// Result name.
        result: String,
        /// Result type.
        result_ty: String,
    },
}
