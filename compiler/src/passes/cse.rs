//! One forward rebuild of a graph that applies the folds and common
//! subexpression elimination (identical kind, operands and result types).

use super::fold::{Folded, fold};
use crate::ir::{Graph, OpKind, Region, ScanBody, ValueId};
use crate::shape::TensorType;
use std::collections::HashMap;

/// Folds and deduplicates ops; loop bodies are simplified recursively.
pub(crate) fn simplify(g: &Graph) -> Graph {
    let mut ng = Graph::default();
    let mut map: Vec<ValueId> = vec![ValueId(u32::MAX); g.values.len()];
    for p in &g.params {
        map[p.index()] = ng.add_param(g.ty(*p).clone());
    }
    let mut seen: HashMap<(OpKind, Vec<ValueId>, Vec<TensorType>), Vec<ValueId>> = HashMap::new();
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
        let key = (!kind.has_regions()).then(|| (kind.clone(), operands.clone(), tys.clone()));
        if let Some(prev) = key.as_ref().and_then(|k| seen.get(k)) {
            for (r, p) in op.results.iter().zip(prev) {
                map[r.index()] = *p;
            }
            continue;
        }
        let new = ng.add_op(kind, operands, tys);
        if let Some(k) = key {
            seen.insert(k, new.clone());
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
