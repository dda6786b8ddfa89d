//! Dead-code elimination: keeps the ops that results depend on; drops the
//! saved-carry outputs of a scan when nothing uses them.

use crate::ir::{Graph, OpKind, Region, ScanBody, ValueId};
use crate::shape::TensorType;

/// Removes ops whose results are unused; loop bodies are cleaned recursively.
pub(crate) fn dce(g: &Graph) -> Graph {
    let mut live = vec![false; g.values.len()];
    for r in &g.results {
        live[r.index()] = true;
    }
    let mut keep = vec![false; g.ops.len()];
    for (i, op) in g.ops.iter().enumerate().rev() {
        if op.results.iter().any(|r| live[r.index()]) {
            keep[i] = true;
            for v in &op.operands {
                live[v.index()] = true;
            }
        }
    }
    let mut ng = Graph::default();
    let mut map: Vec<ValueId> = vec![ValueId(u32::MAX); g.values.len()];
    for p in &g.params {
        map[p.index()] = ng.add_param(g.ty(*p).clone());
    }
    for (i, op) in g.ops.iter().enumerate() {
        if !keep[i] {
            continue;
        }
        let operands: Vec<ValueId> = op.operands.iter().map(|v| map[v.index()]).collect();
        let (kind, n_results) = clean_kind(&op.kind, &op.results, &live);
        let tys: Vec<TensorType> = op.results[..n_results]
            .iter()
            .map(|r| g.ty(*r).clone())
            .collect();
        let new = ng.add_op(kind, operands, tys);
        for (r, n) in op.results.iter().zip(new) {
            map[r.index()] = n;
        }
    }
    ng.results = g.results.iter().map(|r| map[r.index()]).collect();
    ng
}

/// The op kind with cleaned regions, and how many results it keeps.
fn clean_kind(kind: &OpKind, results: &[ValueId], live: &[bool]) -> (OpKind, usize) {
    match kind {
        OpKind::Scan {
            body,
            length,
            reverse,
            save_carries,
        } => {
            let base = body.graph.results.len();
            let saved_used = results[base.min(results.len())..]
                .iter()
                .any(|r| live[r.index()]);
            let save = *save_carries && saved_used;
            (
                OpKind::Scan {
                    body: ScanBody {
                        graph: Region::new(dce(&body.graph)),
                        num_carry: body.num_carry,
                        num_xs: body.num_xs,
                    },
                    length: *length,
                    reverse: *reverse,
                    save_carries: save,
                },
                if save { results.len() } else { base },
            )
        }
        OpKind::Remat {
            body,
            num_outputs,
            offload,
        } => (
            OpKind::Remat {
                body: Region::new(dce(body)),
                num_outputs: *num_outputs,
                offload: *offload,
            },
            results.len(),
        ),
        OpKind::While {
            cond,
            body,
            num_state,
        } => (
            OpKind::While {
                cond: Region::new(dce(cond)),
                body: Region::new(dce(body)),
                num_state: *num_state,
            },
            results.len(),
        ),
        other => (other.clone(), results.len()),
    }
}
