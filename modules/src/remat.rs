//! The rematerialization setting of a layer (AXLearn's `RematSpec`): which of its activations
//! the forward pass keeps for the backward pass, the rest being recomputed
//! ([`axle_compiler::remat`]). Written in configs and on the command line as text: `none`,
//! `full`, `dots`, `names:A,B` or `offload:A,B`.

use std::fmt;
use std::str::FromStr;

use axle_compiler::RematPolicy;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

/// The names a transformer layer tags its activations with, for `names:` and `offload:`:
/// the attention block's output and the feed-forward block's output (each before its residual
/// add), `[batch, seq, dim]`.
pub const LAYER_TAGS: &[&str] = &["attention_out", "ffn_out"];

/// A layer's rematerialization setting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RematSpec {
    /// No rematerialization: every activation the backward pass needs stays alive.
    #[default]
    None,
    /// Recompute the whole layer in the backward pass (save nothing but its input).
    Full,
    /// Save the matmul (`dot_general`) outputs, recompute the elementwise ops.
    Dots,
    /// Save only the activations tagged with these names (see [`LAYER_TAGS`]).
    Names(Vec<String>),
    /// Save these tagged activations in host memory where the target has one; on the CPU
    /// plugin (no host memory space) they are saved on device, as with `names:`.
    Offload(Vec<String>),
}

impl RematSpec {
    /// The compiler policy, or `None` for no rematerialization.
    pub fn policy(&self) -> Option<RematPolicy> {
        match self {
            RematSpec::None => None,
            RematSpec::Full => Some(RematPolicy::Full),
            RematSpec::Dots => Some(RematPolicy::Dots),
            RematSpec::Names(n) => Some(RematPolicy::Names(n.clone())),
            RematSpec::Offload(n) => Some(RematPolicy::Offload(n.clone())),
        }
    }
}

impl FromStr for RematSpec {
    type Err = String;

    /// Parses `none`, `full`, `dots`, `names:A,B` or `offload:A,B` (at least one name each,
    /// each one of [`LAYER_TAGS`]: a name no layer tags would save nothing, acting as `full`).
    fn from_str(text: &str) -> Result<RematSpec, String> {
        let names = |list: &str| -> Result<Vec<String>, String> {
            let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                return Err(format!(
                    "remat `{text}` needs a comma-separated list of names, e.g. names:{}",
                    LAYER_TAGS.join(",")
                ));
            }
            if let Some(unknown) = names.iter().find(|n| !LAYER_TAGS.contains(&n.as_str())) {
                return Err(format!(
                    "remat `{text}`: no layer tags an activation `{unknown}`; the names are {}",
                    LAYER_TAGS.join(", ")
                ));
            }
            Ok(names)
        };
        match text.trim().split_once(':') {
            None if text.trim() == "none" => Ok(RematSpec::None),
            None if text.trim() == "full" => Ok(RematSpec::Full),
            None if text.trim() == "dots" => Ok(RematSpec::Dots),
            Some(("names", list)) => Ok(RematSpec::Names(names(list)?)),
            Some(("offload", list)) => Ok(RematSpec::Offload(names(list)?)),
            _ => Err(format!(
                "unknown remat policy `{text}`; expected none, full, dots, names:A,B or offload:A,B"
            )),
        }
    }
}

impl fmt::Display for RematSpec {
    /// The text form [`RematSpec::from_str`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RematSpec::None => f.write_str("none"),
            RematSpec::Full => f.write_str("full"),
            RematSpec::Dots => f.write_str("dots"),
            RematSpec::Names(n) => write!(f, "names:{}", n.join(",")),
            RematSpec::Offload(n) => write!(f, "offload:{}", n.join(",")),
        }
    }
}

impl Serialize for RematSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RematSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RematSpec, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_bad_text_is_named() {
        for text in [
            "none",
            "full",
            "dots",
            "names:attention_out",
            "offload:attention_out,ffn_out",
        ] {
            assert_eq!(text.parse::<RematSpec>().unwrap().to_string(), text);
        }
        let e = "some".parse::<RematSpec>().unwrap_err();
        assert!(e.contains("`some`") && e.contains("offload:A,B"), "{e}");
        let e = "names:".parse::<RematSpec>().unwrap_err();
        assert!(e.contains("names:attention_out,ffn_out"), "{e}");
        let e = "names:attention_out,nonexistent"
            .parse::<RematSpec>()
            .unwrap_err();
        assert!(
            e.contains("`nonexistent`") && e.contains("attention_out, ffn_out"),
            "{e}"
        );
        assert!("offload:nonexistent".parse::<RematSpec>().is_err());
    }
}
