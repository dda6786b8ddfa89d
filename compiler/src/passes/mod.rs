//! Cleanup passes run before emission: constant folding of trivial
//! identities plus CSE in one forward rebuild, then dead-code elimination.

mod cse;
mod dce;
pub(crate) mod fold;

use crate::ir::Graph;

/// Folding + CSE, then DCE; loop bodies are simplified recursively.
pub(crate) fn run_all(g: &Graph) -> Graph {
    dce::dce(&cse::simplify(g))
}

#[cfg(test)]
mod tests {
    use crate::ir::{OpKind, UnaryOp};
    use crate::{DType, FunctionBuilder, grad};

    fn count(f: &crate::Function, pred: impl Fn(&OpKind) -> bool) -> usize {
        f.graph().ops.iter().filter(|op| pred(&op.kind)).count()
    }

    #[test]
    fn trivial_identities_fold_away() {
        let b = FunctionBuilder::new("f");
        let x = b.param("x", DType::F32, &[4, 3]);
        let y = ((&x * 1.0 + 0.0 - 0.0) / 1.0)
            .reshape(&[4, 3])
            .convert(DType::F32)
            .transpose(&[0, 1])
            .broadcast_to(&[4, 3])
            .stop_gradient();
        let f = b.build(&[("y", &y)]).unwrap();
        assert!(f.graph().ops.is_empty(), "{f}");
        assert_eq!(f.graph().results, f.graph().params);
    }

    #[test]
    fn reshape_of_reshape_and_broadcast_of_splat_fold() {
        let b = FunctionBuilder::new("f");
        let x = b.param("x", DType::F32, &[4, 3]);
        let y = x.reshape(&[12]).reshape(&[2, 6]) + &b.scalar(2.0, DType::F32);
        let f = b.build(&[("y", &y)]).unwrap();
        assert_eq!(count(&f, |k| matches!(k, OpKind::Reshape)), 1, "{f}");
        assert_eq!(
            count(&f, |k| matches!(k, OpKind::BroadcastInDim { .. })),
            0,
            "{f}"
        );
        assert_eq!(
            count(&f, |k| matches!(k, OpKind::Constant { splat: true, .. })),
            1,
            "{f}"
        );
    }

    #[test]
    fn common_subexpressions_are_shared_and_dead_code_removed() {
        let b = FunctionBuilder::new("f");
        let x = b.param("x", DType::F32, &[4]);
        let unused = x.tanh();
        let y = x.exp() + x.exp();
        let f = b.build(&[("y", &y)]).unwrap();
        assert_eq!(
            count(&f, |k| matches!(k, OpKind::Unary(UnaryOp::Exp))),
            1,
            "{f}"
        );
        assert_eq!(
            count(&f, |k| matches!(k, OpKind::Unary(UnaryOp::Tanh))),
            0,
            "{f}"
        );
        assert!(!unused.builder().failed());
    }

    #[test]
    fn unused_saved_scan_carries_are_dropped() {
        let b = FunctionBuilder::new("f");
        let c = b.param("c", DType::F32, &[3]);
        let xs = b.param("xs", DType::F32, &[5, 3]);
        let (fin, _) = b.scan(5, &[&c], &[&xs], |c, x| {
            (vec![(&c[0] * &x[0]).sin()], vec![])
        });
        let loss = fin[0].sum_all();
        let g = grad(&loss, &[&c]);
        let saves = |f: &crate::Function| {
            f.graph().ops.iter().any(|op| {
                matches!(
                    op.kind,
                    OpKind::Scan {
                        save_carries: true,
                        ..
                    }
                )
            })
        };
        let with_grad = b.build(&[("loss", &loss), ("g", &g[0])]).unwrap();
        assert!(saves(&with_grad), "{with_grad}");
        let without = b.build(&[("loss", &loss)]).unwrap();
        assert!(!saves(&without), "{without}");
        assert_eq!(count(&without, |k| matches!(k, OpKind::Scan { .. })), 1);
    }
}
