//! Mesh rules, as in AXLearn: an ordered list of (device selector pattern ->
//! mesh shape + config modifiers); the first rule whose pattern matches the
//! selector decides. The same experiment then runs on a CPU, a GPU node or a
//! TPU slice with a mesh fitted to each.

use crate::error::{MeshError, RuleError};
use crate::glob::glob_match;
use crate::mesh::Mesh;
use crate::mesh_shape::MeshShape;

/// One XLA compiler option a mesh rule sets for its hardware, as AXLearn's
/// `compiler_options.default_xla_options` gives them: the name of an XLA
/// debug option or a libtpu flag (`xla_tpu_enable_latency_hiding_scheduler`)
/// and its value as text (`true`, `98304`, `ENABLED`). The runtime passes
/// it as a compile-option override (`CompileOptionsProto.env_option_overrides`),
/// the same channel as `jax.jit(...).lower(...).compile(compiler_options=...)`;
/// the compiler parses the text by the option's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompilerOption {
    /// The option's name, starting `xla_`.
    pub name: String,
    /// Its value as text.
    pub value: String,
}

impl std::fmt::Display for CompilerOption {
    /// `name=value`, as XLA flags are written (without the leading `--`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.name, self.value)
    }
}

impl CompilerOption {
    /// Checks a name and value for the rule `pattern`: the name is `xla_`
    /// followed by lower-case letters, digits and `_`; the value is not
    /// empty and has no whitespace. (XLA aborts on some malformed options
    /// instead of returning an error, so they are refused here first.)
    ///
    /// Errors: [`RuleError::CompilerOption`] naming the rule and the option.
    pub fn new(pattern: &str, name: &str, value: &str) -> Result<CompilerOption, RuleError> {
        let bad = |message: &str| RuleError::CompilerOption {
            pattern: pattern.to_string(),
            option: format!("{name}={value}"),
            message: message.to_string(),
        };
        let well_formed = name.strip_prefix("xla_").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        if !well_formed {
            return Err(bad(
                "the name must be `xla_` followed by lower-case letters, digits and `_`",
            ));
        }
        if value.is_empty() || value.chars().any(char::is_whitespace) {
            return Err(bad("the value must be non-empty text without spaces"));
        }
        Ok(CompilerOption {
            name: name.to_string(),
            value: value.to_string(),
        })
    }
}

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
    /// XLA options for matching hardware, applied to every compile there
    /// (whatever the mesh, an explicit one included).
    pub compiler_options: Vec<CompilerOption>,
}

impl MeshRule {
    /// A rule from its pattern, mesh text (`data=-1,fsdp=8`) and modifier
    /// names, without compiler options.
    pub fn new(pattern: &str, mesh: &str, modifiers: &[&str]) -> Result<MeshRule, MeshError> {
        Ok(MeshRule {
            pattern: pattern.to_string(),
            mesh: mesh.parse()?,
            modifiers: modifiers.iter().map(|m| m.to_string()).collect(),
            compiler_options: Vec::new(),
        })
    }

    /// The rule with these compiler options (name, value) instead of its own.
    ///
    /// Errors: [`RuleError::CompilerOption`] naming the rule and the first
    /// malformed option (see [`CompilerOption::new`]).
    pub fn with_compiler_options(
        mut self,
        options: &[(&str, &str)],
    ) -> Result<MeshRule, RuleError> {
        self.compiler_options = options
            .iter()
            .map(|(name, value)| CompilerOption::new(&self.pattern, name, value))
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// XLA options on every TPU generation (AXLearn's `default_xla_options`):
/// partition `RngBitGenerator` per shard, schedule collectives with the
/// latency-hiding scheduler, and skip the SPMD CSE prevention that made
/// small models run out of memory.
const TPU_COMMON: [(&str, &str); 3] = [
    ("xla_tpu_spmd_rng_bit_generator_unsafe", "true"),
    ("xla_tpu_enable_latency_hiding_scheduler", "true"),
    ("xla_tpu_perform_spmd_cse_prevention", "false"),
];

/// TPU v4 (AXLearn): asynchronous all-gathers and collective permutes,
/// which v5 and later enable by default.
const TPU_V4: [(&str, &str); 5] = [
    TPU_COMMON[0],
    TPU_COMMON[1],
    TPU_COMMON[2],
    ("xla_enable_async_all_gather", "true"),
    ("xla_enable_async_collective_permute", "true"),
];

/// TPU v5e (MaxText's `CF_FOR_ALL_GATHER`, the continuation fusion that
/// overlaps FSDP's all-gathers with compute on the single TensorCore).
const TPU_V5E: [(&str, &str); 8] = [
    TPU_COMMON[0],
    TPU_COMMON[1],
    TPU_COMMON[2],
    ("xla_tpu_enable_async_collective_fusion", "true"),
    (
        "xla_tpu_enable_async_collective_fusion_fuse_all_gather",
        "true",
    ),
    (
        "xla_tpu_enable_async_collective_fusion_multiple_steps",
        "true",
    ),
    ("xla_tpu_overlap_compute_collective_tc", "true"),
    ("xla_enable_async_all_gather", "true"),
];

/// TPU v5p (MaxText's v5p runs): the continuation fusion for all-reduces
/// (`CF_FOR_ALL_REDUCE`; libtpu 0.0.48.1 refuses the all-gather one off
/// v5e: "not supported/recommended on platforms other than Viperlite"),
/// asynchronous collective permutes, the data-parallel all-reduce
/// optimisation, and no all-gathers inside megacore fusions (v5p has two
/// TensorCores per chip; MaxText turns `megacore_fusion_allow_ags` off).
const TPU_V5P: [(&str, &str); 11] = [
    TPU_COMMON[0],
    TPU_COMMON[1],
    TPU_COMMON[2],
    ("xla_tpu_enable_async_collective_fusion", "true"),
    (
        "xla_tpu_enable_async_collective_fusion_fuse_all_reduce",
        "true",
    ),
    (
        "xla_tpu_enable_async_collective_fusion_multiple_steps",
        "true",
    ),
    ("xla_tpu_overlap_compute_collective_tc", "true"),
    ("xla_enable_async_collective_permute", "true"),
    ("xla_tpu_megacore_fusion_allow_ags", "false"),
    ("xla_tpu_enable_data_parallel_all_reduce_opt", "true"),
    ("xla_tpu_data_parallel_opt_different_sized_ops", "true"),
];

/// TPU v6e (AXLearn's v6e set for one slice): a larger scoped VMEM, the
/// experimental scheduler features with memory pressure tracking,
/// aggressive optimization-barrier removal, async depth before stalls, and
/// the continuation fusion for all-reduces (AXLearn's all-gather one is
/// refused on v6e by libtpu 0.0.48.1, as on v5p).
const TPU_V6E: [(&str, &str); 17] = [
    TPU_COMMON[0],
    TPU_COMMON[1],
    TPU_COMMON[2],
    TPU_V5P[3],
    TPU_V5P[4],
    TPU_V5P[5],
    TPU_V5P[6],
    ("xla_enable_async_all_gather", "true"),
    ("xla_tpu_scoped_vmem_limit_kib", "98304"),
    ("xla_tpu_enable_all_experimental_scheduler_features", "true"),
    (
        "xla_tpu_enable_scheduler_memory_pressure_tracking",
        "ENABLED",
    ),
    ("xla_tpu_host_transfer_overlap_limit", "24"),
    ("xla_tpu_aggressive_opt_barrier_removal", "ENABLED"),
    ("xla_lhs_prioritize_async_depth_over_stall", "ENABLED"),
    (
        "xla_should_allow_loop_variant_parameter_in_chain",
        "ENABLED",
    ),
    ("xla_should_add_loop_invariant_op_in_chain", "ENABLED"),
    ("xla_latency_hiding_scheduler_rerun", "0"),
];

/// NVIDIA GPUs (JAX's GPU performance tips, as AXLearn's GPU launchers set
/// them): the latency-hiding scheduler overlaps collectives with compute,
/// GEMMs go to cuBLAS rather than Triton, loops are double-buffered, and
/// collectives are combined up to 128 MiB. One set for A100, H100 and H200:
/// the sources give none per GPU, and the pipelined-collective flags they
/// also name (`xla_gpu_enable_pipelined_all_gather`, `_reduce_scatter`,
/// `_all_reduce`) are gone from the CUDA plugin of jax 0.11.2 ("No such
/// compile option").
const GPU: [(&str, &str); 6] = [
    ("xla_gpu_enable_latency_hiding_scheduler", "true"),
    ("xla_gpu_enable_triton_gemm", "false"),
    ("xla_gpu_enable_while_loop_double_buffering", "true"),
    ("xla_gpu_all_reduce_combine_threshold_bytes", "134217728"),
    ("xla_gpu_all_gather_combine_threshold_bytes", "134217728"),
    (
        "xla_gpu_reduce_scatter_combine_threshold_bytes",
        "134217728",
    ),
];

/// No compiler options.
const NONE: [(&str, &str); 0] = [];

/// A default rule: pattern, mesh, compiler options (name, value).
type DefaultRule = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// The default rules: pattern, mesh, compiler options. FSDP within a node
/// or slice, data parallel across, as AXLearn's fuji configs do; the first
/// match wins.
const DEFAULT_RULES: [DefaultRule; 17] = [
    // CPU with virtual devices (tests, benches): FSDP over 4, data across.
    ("cpu-4", "data=-1,fsdp=4", &NONE),
    ("cpu-8", "data=-1,fsdp=4", &NONE),
    ("cpu-*", "data=-1", &NONE),
    // One GPU node of up to 8: FSDP inside the node (NVLink), data across
    // nodes of 8.
    ("cuda-h100-{1,2,4,8}", "fsdp=-1", &GPU),
    ("cuda-h100-*", "data=-1,fsdp=8", &GPU),
    ("cuda-h200-{1,2,4,8}", "fsdp=-1", &GPU),
    ("cuda-h200-*", "data=-1,fsdp=8", &GPU),
    ("cuda-a100-{1,2,4,8}", "fsdp=-1", &GPU),
    ("cuda-a100-*", "data=-1,fsdp=8", &GPU),
    // TPU slices (counts are devices). v4/v5p: small slices all FSDP, larger
    // ones FSDP in groups (fuji: v4 fsdp=16, v5p fsdp=8) and data across;
    // v5e/v6e (16/32 GB HBM): FSDP over the whole slice (fuji: v5e-256).
    ("tpu-v4-{1,2,4,8}", "fsdp=-1", &TPU_V4),
    ("tpu-v4-*", "data=-1,fsdp=16", &TPU_V4),
    ("tpu-v5p-{1,2,4}", "fsdp=-1", &TPU_V5P),
    ("tpu-v5p-*", "data=-1,fsdp=8", &TPU_V5P),
    ("tpu-v5e-*", "fsdp=-1", &TPU_V5E),
    ("tpu-v6e-*", "fsdp=-1", &TPU_V6E),
    // Other hardware: one device as is, any other GPU all FSDP.
    ("*-1", "data=1", &NONE),
    ("cuda-*", "fsdp=-1", &NONE),
];
/// An ordered list of [`MeshRule`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshRules {
    rules: Vec<MeshRule>,
}

impl Default for MeshRules {
    /// The shipped rules (see the source of `DEFAULT_RULES` for each one's
    /// reason and the source of each compiler option): `cpu-4`, `cpu-8` ->
    /// `data=-1,fsdp=4`; `cpu-*` -> `data=-1`; `cuda-{h100,h200,a100}-{1,2,4,8}`
    /// -> `fsdp=-1`, more -> `data=-1,fsdp=8`; `tpu-v4-{1,2,4,8}` ->
    /// `fsdp=-1`, more -> `data=-1,fsdp=16`; `tpu-v5p-{1,2,4}` -> `fsdp=-1`,
    /// more -> `data=-1,fsdp=8`; `tpu-v5e-*`, `tpu-v6e-*` -> `fsdp=-1`;
    /// `*-1` -> `data=1`; `cuda-*` -> `fsdp=-1`. The GPU and TPU rules carry
    /// XLA options per generation; none carries modifiers.
    fn default() -> MeshRules {
        MeshRules {
            rules: DEFAULT_RULES
                .iter()
                .map(|(pattern, mesh, options)| {
                    MeshRule::new(pattern, mesh, &[])
                        .map_err(|e| e.to_string())
                        .and_then(|rule| {
                            rule.with_compiler_options(options)
                                .map_err(|e| e.to_string())
                        })
                        .expect("the default mesh rules are valid")
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
    /// The XLA options of the first rule matching the selector (also for
    /// an explicit mesh: they belong to the hardware, not to the mesh).
    pub compiler_options: Vec<CompilerOption>,
    /// The pattern of the rule whose compiler options these are (`None`
    /// when no rule matches the selector).
    pub compiler_options_rule: Option<String>,
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
            compiler_options: rule.compiler_options.clone(),
            compiler_options_rule: Some(rule.pattern.clone()),
        })
    }
}

/// The mesh for a run on `num_devices` devices: `explicit` when given (it
/// overrides the rules' mesh and modifiers; the compiler options of the
/// first rule matching `selector` still apply), else the first of
/// `rules` matching `selector` (built with
/// [`device_selector`](crate::device_selector), or given by the user).
pub fn choose_mesh(
    explicit: Option<&MeshShape>,
    selector: &str,
    rules: &MeshRules,
    num_devices: usize,
) -> Result<MeshChoice, RuleError> {
    match explicit {
        Some(shape) => {
            let rule = rules.find(selector);
            Ok(MeshChoice {
                mesh: shape.resolve(num_devices).map_err(RuleError::Explicit)?,
                modifiers: Vec::new(),
                source: MeshSource::Explicit,
                compiler_options: rule.map_or_else(Vec::new, |r| r.compiler_options.clone()),
                compiler_options_rule: rule.map(|r| r.pattern.clone()),
            })
        }
        None => rules.select(selector, num_devices),
    }
}
