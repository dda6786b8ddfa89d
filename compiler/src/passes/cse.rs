//! One forward rebuild of a graph that applies the folds and common
//! subexpression elimination (identical kind, operands and result types).

use super::fold::{Folded, fold};
use crate::ir::{Graph, OpKind, Region, ScanBody, ValueId};
use crate::shape::TensorType;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// Folds and deduplicates ops; loop bodies are simplified recursively.
pub(crate) fn simplify(g: &Graph) -> Graph {
    let mut ng = Graph::default();
    let mut map: Vec<ValueId> = vec![ValueId(u32::MAX); g.values.len()];
    for p in &g.params {
        map[p.index()] = ng.add_param(g.ty(*p).clone());
    }
    // Hash of (kind, operands, result types) -> ops of `ng` with that hash.
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    for op in &g.ops {
        let mut operands: Vec<ValueId> = op.operands.iter().map(|v| map[v.index()]).collect();
        let tys: Vec<TensorType> = op.results.iter().map(|r| g.ty(*r).clone()).collect();
        let mut kind = simplify_regions(&op.kind);
        match fold(&ng, &kind, &operands, &tys) {
            Some(Folded::Alias(v)) => {
                map[op.results[0].index()] = v;
                continue;
            }
            Some(Folded::Rewrite(k, o)) => {
                kind = k;
                operands = o;
            }
            None => {}
        }
        let key = (!kind.has_regions()).then(|| {
            let mut h = DefaultHasher::new();
            (&kind, &operands, &tys).hash(&mut h);
            h.finish()
        });
        let same = |i: &usize| {
            let o = &ng.ops[*i];
            o.kind == kind
                && o.operands == operands
                && o.results.iter().map(|r| ng.ty(*r)).eq(tys.iter())
        };
        if let Some(prev) = key.and_then(|k| seen.get(&k)?.iter().find(|i| same(i)).copied()) {
            for (r, p) in op.results.iter().zip(ng.ops[prev].results.clone()) {
                map[r.index()] = p;
            }
            continue;
        }
        let new = ng.add_op(kind, operands, tys);
        if let Some(k) = key {
            seen.entry(k).or_default().push(ng.ops.len() - 1);
        }
        for (r, n) in op.results.iter().zip(new) {
            map[r.index()] = n;
        }
    }
    ng.results = g.results.iter().map(|r| map[r.index()]).collect();
    ng
}

fn simplify_regions(kind: &OpKind) -> OpKind {
    match kind {
        OpKind::Scan {
            body,
            length,
            reverse,
            save_carries,
        } => OpKind::Scan {
            body: ScanBody {
                graph: Region::new(simplify(&body.graph)),
                num_carry: body.num_carry,
                num_xs: body.num_xs,
            },
            length: *length,
            reverse: *reverse,
            save_carries: *save_carries,
        },
        OpKind::Remat {
            body,
            num_outputs,
            offload,
        } => OpKind::Remat {
            body: Region::new(simplify(body)),
            num_outputs: *num_outputs,
            offload: *offload,
        },
        OpKind::While {
            cond,
            body,
            num_state,
        } => OpKind::While {
            cond: Region::new(simplify(cond)),
            body: Region::new(simplify(body)),
            num_state: *num_state,
        },
        other => other.clone(),
    }
}
