//! Trivial constant folding: `x*1`, `x+0`, `x-0`, `x/1`, reshape/convert/
//! transpose/broadcast that change nothing, reshape of reshape, broadcast of
//! a splat constant, and stop_gradient (meaningless after autodiff).

use crate::ir::{BinaryOp, Graph, OpKind, ValueId};
use crate::ops::constant::element_as_f64;
use crate::shape::TensorType;

/// What a folded op becomes.
pub(crate) enum Folded {
    /// Its single result is this existing value.
    Alias(ValueId),
    /// A different op.
    Rewrite(OpKind, Vec<ValueId>),
}

/// The value of `v` when it is a splat constant in `g`.
pub(crate) fn splat_value(g: &Graph, v: ValueId) -> Option<f64> {
    let op = g.producer(v)?;
    match &g.ops[op.index()].kind {
        OpKind::Constant { bytes, splat: true } => Some(element_as_f64(bytes, g.ty(v).dtype)),
        _ => None,
    }
}

/// Folds one op whose operands (already in `g`) are `ops`, or `None`.
pub(crate) fn fold(
    g: &Graph,
    kind: &OpKind,
    ops: &[ValueId],
    out: &[TensorType],
) -> Option<Folded> {
    let same = |i: usize| g.ty(ops[i]) == &out[0];
    match kind {
        OpKind::Binary(b) => {
            let (l, r) = (splat_value(g, ops[0]), splat_value(g, ops[1]));
            match b {
                BinaryOp::Mul if r == Some(1.0) && same(0) => Some(Folded::Alias(ops[0])),
                BinaryOp::Mul if l == Some(1.0) && same(1) => Some(Folded::Alias(ops[1])),
                BinaryOp::Add if r == Some(0.0) && same(0) => Some(Folded::Alias(ops[0])),
                BinaryOp::Add if l == Some(0.0) && same(1) => Some(Folded::Alias(ops[1])),
                BinaryOp::Sub if r == Some(0.0) && same(0) => Some(Folded::Alias(ops[0])),
                BinaryOp::Div if r == Some(1.0) && same(0) => Some(Folded::Alias(ops[0])),
                _ => None,
            }
        }
        OpKind::Reshape | OpKind::Convert if same(0) => Some(Folded::Alias(ops[0])),
        OpKind::Reshape => {
            let p = g.producer(ops[0])?;
            let inner = &g.ops[p.index()];
            matches!(inner.kind, OpKind::Reshape).then(|| {
                if g.ty(inner.operands[0]) == &out[0] {
                    Folded::Alias(inner.operands[0])
                } else {
                    Folded::Rewrite(OpKind::Reshape, vec![inner.operands[0]])
                }
            })
        }
        OpKind::Transpose { perm } if perm.iter().enumerate().all(|(i, &p)| i == p) => {
            Some(Folded::Alias(ops[0]))
        }
        OpKind::BroadcastInDim { .. } if same(0) => Some(Folded::Alias(ops[0])),
        OpKind::BroadcastInDim { .. } => {
            let p = g.producer(ops[0])?;
            match &g.ops[p.index()].kind {
                OpKind::Constant { bytes, splat: true } => Some(Folded::Rewrite(
                    OpKind::Constant {
                        bytes: bytes.clone(),
                        splat: true,
                    },
                    vec![],
                )),
                _ => None,
            }
        }
        OpKind::StopGradient => Some(Folded::Alias(ops[0])),
        _ => None,
    }
}
