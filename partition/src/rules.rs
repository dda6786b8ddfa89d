//! Mesh rules, as in AXLearn: an ordered list of (device selector pattern ->
//! mesh shape + config modifiers); the first rule whose pattern matches the
//! selector decides. The same experiment then runs on a CPU, a GPU node or a
//! TPU slice with a mesh fitted to each.

use crate::error::{MeshError, RuleError};
use crate::glob::glob_match;
use crate::mesh::Mesh;
use crate::mesh_shape::MeshShape;

/// One mesh rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshRule {
    /// A [`glob_match`] pattern over device selectors, e.g. `cuda-h100-*`.
    pub pattern: String,
    /// The mesh for matching hardware; its `-1` axis takes the device count.
    pub mesh: MeshShape,
    /// Names of config modifiers to apply with this mesh (e.g. a remat
    /// policy); this crate only carries them, the modules crate applies them.
    pub modifiers: Vec<String>,
}

impl MeshRule {
    /// A rule from its pattern, mesh text (`data=-1,fsdp=8`) and modifier
    /// names.
    pub fn new(pattern: &str, mesh: &str, modifiers: &[&str]) -> Result<MeshRule, MeshError> {
        Ok(MeshRule {
            pattern: pattern.to_string(),
            mesh: mesh.parse()?,
            modifiers: modifiers.iter().map(|m| m.to_string()).collect(),
        })
    }
}

/// The default rules: pattern, mesh. FSDP within a node or slice, data
/// parallel across, as AXLearn's fuji configs do; the first match wins.
const DEFAULT_RULES: [(&str, &str); 14] = [
    // Any single device: nothing to split.
    ("*-1", "data=1"),
    // CPU with virtual devices (tests, benches): FSDP over 4, data across.
    ("cpu-4", "data=-1,fsdp=4"),
    ("cpu-8", "data=-1,fsdp=4"),
    ("cpu-*", "data=-1"),
    // One GPU node of 8: FSDP inside the node (NVLink), data across nodes.
    ("cuda-h100-*", "data=-1,fsdp=8"),
    ("cuda-h200-*", "data=-1,fsdp=8"),
    ("cuda-a100-*", "data=-1,fsdp=8"),
    ("cuda-*", "fsdp=-1"),
    // TPU slices (counts are chips). v4/v5p: small slices all FSDP, larger
    // ones FSDP in groups (fuji: v4 fsdp=16, v5p fsdp=8) and data across;
    // v5e/v6e (16/32 GB HBM): FSDP over the whole slice (fuji: v5e-256).
    ("tpu-v4-4", "fsdp=4"),
    ("tpu-v4-8", "fsdp=8"),
    ("tpu-v4-*", "data=-1,fsdp=16"),
    ("tpu-v5p-*", "data=-1,fsdp=8"),
    ("tpu-v5e-*", "fsdp=-1"),
    ("tpu-v6e-*", "fsdp=-1"),
];

/// An ordered list of [`MeshRule`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshRules {
    rules: Vec<MeshRule>,
}

impl Default for MeshRules {
    /// The shipped rules (see the source of `DEFAULT_RULES` for each one's
    /// reason): `*-1` -> `data=1`; `cpu-4`, `cpu-8` -> `data=-1,fsdp=4`;
    /// `cpu-*` -> `data=-1`; `cuda-{h100,h200,a100}-*` -> `data=-1,fsdp=8`;
    /// `cuda-*` -> `fsdp=-1`; `tpu-v4-4` -> `fsdp=4`; `tpu-v4-8` -> `fsdp=8`;
    /// `tpu-v4-*` -> `data=-1,fsdp=16`; `tpu-v5p-*` -> `data=-1,fsdp=8`;
    /// `tpu-v5e-*`, `tpu-v6e-*` -> `fsdp=-1`. None carries modifiers.
    fn default() -> MeshRules {
        MeshRules {
            rules: DEFAULT_RULES
                .iter()
                .map(|(pattern, mesh)| {
                    MeshRule::new(pattern, mesh, &[]).expect("the default mesh rules are valid")
                })
                .collect(),
        }
    }
}

/// Where a chosen mesh came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeshSource {
    /// The user gave the mesh (e.g. `--mesh`); rules were not consulted.
    Explicit,
    /// The first rule matching the selector.
    Rule {
        /// The rule's pattern.
        pattern: String,
        /// The selector it matched.
        selector: String,
    },
}

/// The mesh a run uses, with the config modifiers that come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshChoice {
    /// The resolved mesh.
    pub mesh: Mesh,
    /// Config modifier names to apply (none for an explicit mesh).
    pub modifiers: Vec<String>,
    /// Why this mesh.
    pub source: MeshSource,
}

impl MeshRules {
    /// Rules in priority order (first match wins).
    pub fn new(rules: Vec<MeshRule>) -> MeshRules {
        MeshRules { rules }
    }

    /// The rules, in priority order.
    pub fn rules(&self) -> &[MeshRule] {
        &self.rules
    }

    /// The first rule whose pattern matches `selector`.
    pub fn find(&self, selector: &str) -> Option<&MeshRule> {
        self.rules
            .iter()
            .find(|rule| glob_match(&rule.pattern, selector))
    }

    /// The mesh (on `num_devices` devices) and modifiers of the first rule
    /// matching `selector`. No match, or a match whose mesh does not fit the
    /// devices, is an error naming the selector (and the rule).
    pub fn select(&self, selector: &str, num_devices: usize) -> Result<MeshChoice, RuleError> {
        let rule = self.find(selector).ok_or_else(|| RuleError::NoMatch {
            selector: selector.to_string(),
        })?;
        let mesh = rule
            .mesh
            .resolve(num_devices)
            .map_err(|source| RuleError::Mesh {
                pattern: rule.pattern.clone(),
                selector: selector.to_string(),
                source,
            })?;
        Ok(MeshChoice {
            mesh,
            modifiers: rule.modifiers.clone(),
            source: MeshSource::Rule {
                pattern: rule.pattern.clone(),
                selector: selector.to_string(),
            },
        })
    }
}

/// The mesh for a run on `num_devices` devices: `explicit` when given (it
/// overrides the rules entirely, modifiers included), else the first of
/// `rules` matching `selector` (built with
/// [`device_selector`](crate::device_selector), or given by the user).
pub fn choose_mesh(
    explicit: Option<&MeshShape>,
    selector: &str,
    rules: &MeshRules,
    num_devices: usize,
) -> Result<MeshChoice, RuleError> {
    match explicit {
        Some(shape) => Ok(MeshChoice {
            mesh: shape.resolve(num_devices).map_err(RuleError::Explicit)?,
            modifiers: Vec::new(),
            source: MeshSource::Explicit,
        }),
        None => rules.select(selector, num_devices),
    }
}
