//! Logical sharding roles: what layers write in their param and activation
//! specs instead of mesh axes, and the rules that turn them into
//! [`PartitionSpec`]s for a given mesh. A layer says "this dimension is the
//! batch" or "this is the MLP hidden size"; the rules (data, overridable per
//! experiment or hardware) say which mesh axes that means, and axes the mesh
//! does not have (or has with size 1) are dropped. So a layer never names a
//! parallelism strategy: data parallel, FSDP, tensor and sequence parallel
//! are all the same layer code on different meshes.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::SpecError;
use crate::mesh::Mesh;
use crate::mesh_shape::MESH_AXIS_NAMES;
use crate::spec::{DimSharding, PartitionSpec};

/// The role of one tensor dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalAxis {
    /// The batch dimension of inputs and activations (`batch`).
    Batch,
    /// The sequence dimension of activations (`seq`).
    Seq,
    /// The model-width dimension of a weight, e.g. the `d_model` side of a
    /// projection or embedding: the dimension FSDP shards (`embed`).
    Embed,
    /// Attention heads, of weights and activations (`heads`).
    Heads,
    /// The feed-forward hidden dimension, of weights and activations (`mlp`).
    Mlp,
    /// The vocabulary dimension of LM heads and logits (`vocab`).
    Vocab,
    /// The row (id) dimension of an embedding table: token ids or positions
    /// (`table_vocab`).
    TableVocab,
    /// The width (model dimension) of an embedding table (`table_embed`).
    TableEmbed,
    /// The leading layer dimension of a scanned stack's parameters
    /// (`layers`); mapped to no mesh axis by default.
    Layers,
    /// Never split: head_dim, norm scales, biases, activation widths (`_`).
    Replicated,
    /// Left to the partitioner (Shardy `{?}`), for activation constraints
    /// only (`?`).
    Unconstrained,
}

impl LogicalAxis {
    /// Every role, in the order of the default rules.
    pub const ALL: [LogicalAxis; 11] = [
        LogicalAxis::Batch,
        LogicalAxis::Seq,
        LogicalAxis::Embed,
        LogicalAxis::Heads,
        LogicalAxis::Mlp,
        LogicalAxis::Vocab,
        LogicalAxis::TableVocab,
        LogicalAxis::TableEmbed,
        LogicalAxis::Layers,
        LogicalAxis::Replicated,
        LogicalAxis::Unconstrained,
    ];

    /// The role's name in the text form (`batch`, ..., `_`, `?`).
    pub fn name(self) -> &'static str {
        match self {
            LogicalAxis::Batch => "batch",
            LogicalAxis::Seq => "seq",
            LogicalAxis::Embed => "embed",
            LogicalAxis::Heads => "heads",
            LogicalAxis::Mlp => "mlp",
            LogicalAxis::Vocab => "vocab",
            LogicalAxis::TableVocab => "table_vocab",
            LogicalAxis::TableEmbed => "table_embed",
            LogicalAxis::Layers => "layers",
            LogicalAxis::Replicated => "_",
            LogicalAxis::Unconstrained => "?",
        }
    }

    /// The role called `name` (its text form), if any.
    pub fn from_name(name: &str) -> Option<LogicalAxis> {
        LogicalAxis::ALL
            .into_iter()
            .find(|axis| axis.name() == name)
    }

    /// Whether rules may map this role to mesh axes: every role but `_` and `?`.
    pub fn is_settable(self) -> bool {
        !matches!(self, LogicalAxis::Replicated | LogicalAxis::Unconstrained)
    }
}

/// A logical spec: one [`LogicalAxis`] per tensor dimension, e.g. a
/// feed-forward input weight `(embed, mlp)`, its output weight `(mlp, embed)`,
/// hidden states `(batch, seq, _)`.
///
/// Text form: role names in parentheses separated by `, ` (`(batch, seq, _)`),
/// parsed by `FromStr` and written by `Display`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogicalSpec(pub Vec<LogicalAxis>);

impl LogicalSpec {
    /// A spec of `rank` dimensions that are never split (`(_, _)`).
    pub fn replicated(rank: usize) -> LogicalSpec {
        LogicalSpec(vec![LogicalAxis::Replicated; rank])
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// This spec with `role` as a new leading dimension (the `layers` axis of
    /// a scanned stack's parameters).
    pub fn with_leading(&self, role: LogicalAxis) -> LogicalSpec {
        LogicalSpec(
            std::iter::once(role)
                .chain(self.0.iter().copied())
                .collect(),
        )
    }
}

impl fmt::Display for LogicalSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|axis| axis.name()).collect();
        write!(f, "({})", names.join(", "))
    }
}

impl FromStr for LogicalSpec {
    type Err = SpecError;

    fn from_str(text: &str) -> Result<LogicalSpec, SpecError> {
        let parse_error = |reason: String| SpecError::Parse {
            text: text.to_string(),
            reason,
        };
        crate::spec::split_dims(text)?
            .into_iter()
            .map(|name| {
                LogicalAxis::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = LogicalAxis::ALL.iter().map(|a| a.name()).collect();
                    parse_error(format!(
                        "unknown role `{name}` (known: {})",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(LogicalSpec)
    }
}

/// Which mesh axes each role may use, major to minor: the part of an
/// experiment that decides the parallelism strategy (MaxText's logical axis
/// rules), so that layers name only the roles of their dimensions.
///
/// The defaults follow AXLearn's GPT configs (`batch_axis_names`,
/// `fsdp_axis_names`, `tp_axis_names`, `seq_axis_names` of
/// `set_double_shard_weights_config`):
///
/// | role | mesh axes | AXLearn name |
/// |---|---|---|
/// | `batch` | `data, expert, fsdp` | `batch_axis_names` |
/// | `seq` | `seq` | `seq_axis_names` |
/// | `embed` | `expert, fsdp, seq` | `fsdp_axis_names` |
/// | `heads`, `mlp`, `vocab` | `model` | `tp_axis_names` |
/// | `table_vocab` | `expert, fsdp, seq` | |
/// | `table_embed` | `model` | |
/// | `layers` | none | |
///
/// So weights are `(embed, mlp)` -> `(fsdp, model)` and `(mlp, embed)` ->
/// `(model, fsdp)`; the LM head `(embed, vocab)` -> `(fsdp, model)`; logits
/// `(batch, seq, vocab)` -> `(data+fsdp, seq, model)`. Embedding tables
/// `(table_vocab, table_embed)` -> `(fsdp, model)`: split by rows for FSDP
/// (the lookup gathers whole rows) and by width for tensor parallelism;
/// AXLearn's and MaxText's `(model, fsdp)` tables are
/// `table_vocab = [model]`, `table_embed = [expert, fsdp, seq]`. As in
/// AXLearn, the `seq` axis also shards weights (a sequence-parallel mesh
/// keeps one copy of the weights per `seq` group, not per device).
///
/// Serde form (an experiment's `sharding`): a map from each role that rules
/// may set (all but `_` and `?`) to its list of mesh axes, e.g.
/// `{"batch": ["data", "expert", "fsdp"], ..., "mlp": ["model"]}`; a role
/// left out takes its default axes, an unknown role or mesh axis name is an
/// error naming it.
///
/// ```
/// use axle_partition::{LogicalAxis, LogicalRules, LogicalSpec, Mesh};
///
/// // Tensor parallel on the MLP only: attention heads stay whole.
/// let mut rules = LogicalRules::default();
/// rules.set(LogicalAxis::Heads, &[]);
/// let mesh = Mesh::parse("fsdp=2,model=2", 4).unwrap();
/// let resolve = |text: &str| rules.resolve(&text.parse::<LogicalSpec>().unwrap(), &mesh);
/// assert_eq!(resolve("(embed, mlp)").to_string(), "(fsdp, model)");
/// assert_eq!(resolve("(embed, heads)").to_string(), "(fsdp, _)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalRules {
    axes: Vec<(LogicalAxis, Vec<String>)>,
}

impl Default for LogicalRules {
    fn default() -> LogicalRules {
        let rule = |role, axes: &[&str]| (role, axes.iter().map(|a| a.to_string()).collect());
        LogicalRules {
            axes: vec![
                rule(LogicalAxis::Batch, &["data", "expert", "fsdp"]),
                rule(LogicalAxis::Seq, &["seq"]),
                rule(LogicalAxis::Embed, &["expert", "fsdp", "seq"]),
                rule(LogicalAxis::Heads, &["model"]),
                rule(LogicalAxis::Mlp, &["model"]),
                rule(LogicalAxis::Vocab, &["model"]),
                rule(LogicalAxis::TableVocab, &["expert", "fsdp", "seq"]),
                rule(LogicalAxis::TableEmbed, &["model"]),
                rule(LogicalAxis::Layers, &[]),
            ],
        }
    }
}

impl LogicalRules {
    /// Replaces the mesh axes of `role` (e.g. `Embed` -> `["fsdp"]` to stop
    /// sharding weights over `seq`). Setting `Replicated` or `Unconstrained`
    /// has no effect: their meaning is fixed.
    pub fn set(&mut self, role: LogicalAxis, axes: &[&str]) -> &mut LogicalRules {
        if !role.is_settable() {
            return self;
        }
        let axes: Vec<String> = axes.iter().map(|a| a.to_string()).collect();
        match self.axes.iter_mut().find(|(r, _)| *r == role) {
            Some(entry) => entry.1 = axes,
            None => self.axes.push((role, axes)),
        }
        self
    }

    /// The mesh axes `role` may use (empty for `Replicated`/`Unconstrained`).
    pub fn axes_for(&self, role: LogicalAxis) -> &[String] {
        self.axes
            .iter()
            .find(|(r, _)| *r == role)
            .map_or(&[], |(_, axes)| axes)
    }

    /// The partition spec of `spec` on `mesh`: each role's axes that the mesh
    /// has with size > 1, in the rule's order, skipping axes an earlier
    /// dimension already took (as Flax's logical axis rules do: a tensor with
    /// two `embed` dimensions is split on the first only). Names that are no
    /// mesh axis at all (typos in rules built in code) are kept, so that
    /// [`PartitionSpec::validate`] reports them with the tensor's path; the
    /// result needs that validation against the tensor's shape anyway.
    pub fn resolve(&self, spec: &LogicalSpec, mesh: &Mesh) -> PartitionSpec {
        let mut taken: Vec<&str> = Vec::new();
        let mut dims = Vec::with_capacity(spec.0.len());
        for &role in &spec.0 {
            if role == LogicalAxis::Unconstrained {
                dims.push(DimSharding::Unconstrained);
                continue;
            }
            let mut axes = Vec::new();
            for axis in self.axes_for(role) {
                let usable = match mesh.axis_size(axis) {
                    Some(size) => size > 1,
                    None => !MESH_AXIS_NAMES.contains(&axis.as_str()),
                };
                if usable && !taken.contains(&axis.as_str()) {
                    taken.push(axis);
                    axes.push(axis.clone());
                }
            }
            dims.push(DimSharding::Axes(axes));
        }
        PartitionSpec::from_dims(dims)
    }

    /// Whether activations `(batch, seq, ...)` resolve with their sequence
    /// dimension split over some mesh axis on `mesh` (sequence parallelism).
    pub fn splits_sequence(&self, mesh: &Mesh) -> bool {
        let activation = LogicalSpec(vec![LogicalAxis::Batch, LogicalAxis::Seq]);
        !self.resolve(&activation, mesh).dims()[1].axes().is_empty()
    }
}

impl Serialize for LogicalRules {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let roles: Vec<LogicalAxis> = LogicalAxis::ALL
            .into_iter()
            .filter(|role| role.is_settable())
            .collect();
        let mut map = s.serialize_map(Some(roles.len()))?;
        for role in roles {
            map.serialize_entry(role.name(), self.axes_for(role))?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for LogicalRules {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LogicalRules, D::Error> {
        let entries = BTreeMap::<String, Vec<String>>::deserialize(d)?;
        let mut rules = LogicalRules::default();
        for (name, axes) in &entries {
            let role = LogicalAxis::from_name(name)
                .filter(|role| role.is_settable())
                .ok_or_else(|| {
                    let known: Vec<&str> = LogicalAxis::ALL
                        .iter()
                        .filter(|role| role.is_settable())
                        .map(|role| role.name())
                        .collect();
                    D::Error::custom(format!(
                        "unknown role `{name}` (known: {})",
                        known.join(", ")
                    ))
                })?;
            if let Some(axis) = axes
                .iter()
                .find(|axis| !MESH_AXIS_NAMES.contains(&axis.as_str()))
            {
                return Err(D::Error::custom(format!(
                    "role `{name}`: unknown mesh axis `{axis}` (known axes: {})",
                    MESH_AXIS_NAMES.join(", ")
                )));
            }
            let axes: Vec<&str> = axes.iter().map(String::as_str).collect();
            rules.set(role, &axes);
        }
        Ok(rules)
    }
}
