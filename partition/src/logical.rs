//! Logical sharding roles: what layers write in their param and activation
//! specs instead of mesh axes, and the rules that turn them into
//! [`PartitionSpec`]s for a given mesh. A layer says "this dimension is the
//! batch" or "this is the MLP hidden size"; the rules (data, overridable per
//! experiment or hardware) say which mesh axes that means, and axes the mesh
//! does not have (or has with size 1) are dropped. So a layer never names a
//! parallelism strategy: data parallel, FSDP, tensor and sequence parallel
//! are all the same layer code on different meshes.

use std::fmt;
use std::str::FromStr;

use crate::error::SpecError;
use crate::mesh::Mesh;
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
    /// The vocabulary dimension of embeddings, LM heads and logits (`vocab`).
    Vocab,
    /// Never split: head_dim, norm scales, biases, activation widths (`_`).
    Replicated,
    /// Left to the partitioner (Shardy `{?}`), for activation constraints
    /// only (`?`).
    Unconstrained,
}

impl LogicalAxis {
    /// Every role, in the order of the default rules.
    pub const ALL: [LogicalAxis; 8] = [
        LogicalAxis::Batch,
        LogicalAxis::Seq,
        LogicalAxis::Embed,
        LogicalAxis::Heads,
        LogicalAxis::Mlp,
        LogicalAxis::Vocab,
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
            LogicalAxis::Replicated => "_",
            LogicalAxis::Unconstrained => "?",
        }
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
                LogicalAxis::ALL
                    .into_iter()
                    .find(|axis| axis.name() == name)
                    .ok_or_else(|| {
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

/// Which mesh axes each role may use, major to minor.
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
///
/// So weights are `(embed, mlp)` -> `(fsdp, model)` and `(mlp, embed)` ->
/// `(model, fsdp)`; embeddings `(vocab, embed)` -> `(model, fsdp)`; logits
/// `(batch, seq, vocab)` -> `(data+fsdp, seq, model)`. As in AXLearn, the
/// `seq` axis also shards weights (a sequence-parallel mesh keeps one copy of
/// the weights per `seq` group, not per device).
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
            ],
        }
    }
}

impl LogicalRules {
    /// Replaces the mesh axes of `role` (e.g. `Embed` -> `["fsdp"]` to stop
    /// sharding weights over `seq`). Setting `Replicated` or `Unconstrained`
    /// has no effect: their meaning is fixed.
    pub fn set(&mut self, role: LogicalAxis, axes: &[&str]) -> &mut LogicalRules {
        if matches!(role, LogicalAxis::Replicated | LogicalAxis::Unconstrained) {
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
    /// two `embed` dimensions is split on the first only). The result still
    /// needs [`PartitionSpec::validate`] against the tensor's shape.
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
                let usable = mesh.axis_size(axis).is_some_and(|size| size > 1);
                if usable && !taken.contains(&axis.as_str()) {
                    taken.push(axis);
                    axes.push(axis.clone());
                }
            }
            dims.push(DimSharding::Axes(axes));
        }
        PartitionSpec::from_dims(dims)
    }
}

/// The spec of one optimizer state tensor of a parameter: sharded like the
/// parameter when it has the parameter's shape (Adam's moments, momentum),
/// replicated otherwise (step counters, scalars).
pub fn optimizer_state_spec(
    param_spec: &PartitionSpec,
    param_shape: &[usize],
    state_shape: &[usize],
) -> PartitionSpec {
    if state_shape == param_shape {
        param_spec.clone()
    } else {
        PartitionSpec::replicated(state_shape.len())
    }
}
