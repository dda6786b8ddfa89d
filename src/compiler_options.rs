//! The XLA compiler options a mesh rule gives for its hardware (AXLearn's
//! `compiler_options.default_xla_options` per instance type), with those of
//! the command line (`--xla-option name=value`) over them, as the runtime's
//! compile-option overrides: applied to every compile of a run on that
//! hardware (`axle train`, `eval`, `generate`) and to `axle plan`'s compile
//! for a target.

use axle_partition::{CompilerOption, MeshChoice, RuleError};
use axle_runtime::{Client, OverrideValue};

/// The options as compile-option overrides, each value typed by
/// [`override_value`].
pub fn overrides(options: &[CompilerOption]) -> Vec<(String, OverrideValue)> {
    options
        .iter()
        .map(|o| (o.name.clone(), override_value(&o.value)))
        .collect()
}

/// A compiler option's text as the override JAX would send for the same
/// Python value: `true`/`false` a bool, a whole number an integer, anything
/// else a string (`ENABLED`). The type matters: XLA's debug options refuse
/// a string for a bool field ("'false' is not a valid bool value", the
/// CUDA plugin of jax 0.11.2), while libtpu takes its own flags either way.
pub fn override_value(text: &str) -> OverrideValue {
    match text {
        "true" => OverrideValue::Bool(true),
        "false" => OverrideValue::Bool(false),
        _ => text.parse::<i64>().map_or_else(
            |_| OverrideValue::String(text.to_string()),
            OverrideValue::Int,
        ),
    }
}

/// What the rule's name becomes where `--xla-option` changed its options.
pub const COMMAND_LINE: &str = "--xla-option";

/// `choice` with `options` (`name=value` each, from `--xla-option`) over its rule's compiler
/// options: an option replaces the rule's of the same name, or is added after them. The
/// options' source then reads `RULE + --xla-option` (or `--xla-option` without a rule).
///
/// Errors: the option's text and what is wrong with it (no `=`; a name that is not `xla_`
/// followed by lower-case letters, digits and `_`; an empty value or one with spaces), checked
/// here because XLA aborts on some malformed options instead of returning an error.
pub fn add_options(choice: &mut MeshChoice, options: &[String]) -> Result<(), String> {
    for text in options {
        let option =
            parse_option(text).map_err(|message| format!("{COMMAND_LINE} `{text}`: {message}"))?;
        match choice
            .compiler_options
            .iter_mut()
            .find(|o| o.name == option.name)
        {
            Some(existing) => *existing = option,
            None => choice.compiler_options.push(option),
        }
    }
    if !options.is_empty() {
        choice.compiler_options_rule = Some(match choice.compiler_options_rule.take() {
            Some(rule) => format!("{rule} + {COMMAND_LINE}"),
            None => COMMAND_LINE.to_string(),
        });
    }
    Ok(())
}

/// `text` (`name=value`) as a compiler option, or what is wrong with it (the checks of
/// [`add_options`]).
pub fn parse_option(text: &str) -> Result<CompilerOption, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=VALUE".to_string())?;
    CompilerOption::new(COMMAND_LINE, name, value).map_err(|e| match e {
        RuleError::CompilerOption { message, .. } => message,
        other => other.to_string(),
    })
}

/// `text` itself if it is a well-formed `--xla-option` ([`parse_option`]): the command line's
/// check, so that a malformed option is a usage error.
pub fn check_option(text: &str) -> Result<String, String> {
    parse_option(text).map(|_| text.to_string())
}

/// `client` with the compiler options of `choice` as its compile defaults
/// ([`Client::with_compile_defaults`]); says on stderr which rule gave
/// them when there are any.
pub fn apply_to_client(client: Client, choice: &MeshChoice) -> Client {
    if choice.compiler_options.is_empty() {
        return client;
    }
    let source = format!(
        "mesh rule `{}`",
        choice.compiler_options_rule.as_deref().unwrap_or_default()
    );
    eprintln!(
        "compiler options of {source}: {}",
        choice
            .compiler_options
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    );
    client.with_compile_defaults(&source, overrides(&choice.compiler_options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_typed_as_jax_types_them() {
        assert_eq!(override_value("true"), OverrideValue::Bool(true));
        assert_eq!(override_value("false"), OverrideValue::Bool(false));
        assert_eq!(override_value("98304"), OverrideValue::Int(98304));
        assert_eq!(
            override_value("ENABLED"),
            OverrideValue::String("ENABLED".into())
        );
    }
}
