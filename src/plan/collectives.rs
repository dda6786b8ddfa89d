//! The collectives in an optimized HLO module, by kind.

use axle_runtime::HloModule;
use std::collections::BTreeMap;

/// The collective kinds XLA's SPMD partitioner inserts, by HLO opcode.
pub const COLLECTIVE_KINDS: &[&str] = &[
    "all-gather",
    "all-reduce",
    "reduce-scatter",
    "all-to-all",
    "collective-permute",
    "collective-broadcast",
];

/// How many collectives of each kind the module holds, over all its
/// computations (fusions and loop bodies included; a loop body counts
/// once). An asynchronous pair (`all-gather-start` / `all-gather-done`)
/// counts once, as its kind; kinds that do not occur are absent.
pub fn count_collectives(module: &HloModule) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for instruction in module.computations.iter().flat_map(|c| &c.instructions) {
        let opcode = instruction.opcode.as_str();
        let kind = opcode.strip_suffix("-start").unwrap_or(opcode);
        if COLLECTIVE_KINDS.contains(&kind) {
            *counts.entry(kind.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use axle_runtime::{HloComputation, HloInstruction};

    fn instruction(opcode: &str) -> HloInstruction {
        HloInstruction {
            name: opcode.into(),
            opcode: opcode.into(),
            shape: None,
        }
    }

    #[test]
    fn async_pairs_count_once_and_other_ops_not_at_all() {
        let module = HloModule {
            computations: vec![
                HloComputation {
                    name: "body".into(),
                    instructions: ["all-gather-start", "all-gather-done", "dot", "all-reduce"]
                        .map(instruction)
                        .to_vec(),
                },
                HloComputation {
                    name: "main".into(),
                    instructions: ["reduce-scatter", "all-gather", "fusion"]
                        .map(instruction)
                        .to_vec(),
                },
            ],
            ..HloModule::default()
        };
        let counts = count_collectives(&module);
        let expected: BTreeMap<String, usize> =
            [("all-gather", 2), ("all-reduce", 1), ("reduce-scatter", 1)]
                .map(|(k, v)| (k.to_string(), v))
                .into();
        assert_eq!(counts, expected);
    }
}
