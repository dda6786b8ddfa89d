//! Scanned and unrolled stacks name their layers' tensors differently
//! (`axle_modules::Stack`): unrolled, layer `i` lives under `…/layers/{i}/…`;
//! scanned with a pattern of `P` entries, entry `j` is stacked under
//! `…/layer/{j}/…` (`…/layer/…` when `P = 1`) with a leading axis of
//! `R = layers / P` repeats, so layer `i = r·P + j` is row `r` of entry `j`.
//! [`to_stack_layout`] rewrites a checkpoint's tensors (parameters and the
//! optimizer state named after them) to the layout a model expects, so a
//! checkpoint moves between scanned and unrolled stacks with its values
//! unchanged, bit for bit.

use super::Tensors;
use ndarray::{ArrayD, Axis};
use std::collections::BTreeSet;

/// The path segment of an unrolled stack's layers.
const UNROLLED: &str = "layers";
/// The path segment of a scanned stack's stacked layers.
const SCANNED: &str = "layer";

/// `tensors` with every name of `expected` (name and shape) that it lacks
/// built from the other stack layout when possible: stacked from unrolled
/// layers, or sliced from a scanned stack. Tensors used that way are
/// removed; all others are kept as they are, so the caller still sees
/// tensors that fit neither layout, and names that could not be built.
pub fn to_stack_layout(mut tensors: Tensors, expected: &[(String, Vec<usize>)]) -> Tensors {
    let mut used = BTreeSet::new();
    let mut built = Tensors::new();
    for (name, shape) in expected {
        if tensors.contains_key(name) {
            continue;
        }
        let made = from_unrolled(&tensors, name, shape, expected)
            .or_else(|| from_scanned(&tensors, name, shape));
        if let Some((array, sources)) = made {
            built.insert(name.clone(), array);
            used.extend(sources);
        }
    }
    for name in used {
        tensors.remove(&name);
    }
    tensors.extend(built);
    tensors
}

/// A scanned name `A/layer[/j]/rest` of shape `[R, …]`, stacked from the
/// unrolled `A/layers/{r·P + j}/rest`; `P` is the number of pattern
/// entries the expected names show under `A/layer/`.
fn from_unrolled(
    tensors: &Tensors,
    name: &str,
    shape: &[usize],
    expected: &[(String, Vec<usize>)],
) -> Option<(ArrayD<f32>, Vec<String>)> {
    let segments: Vec<&str> = name.split('/').collect();
    let at = segments.iter().position(|s| *s == SCANNED)?;
    let prefix = segments[..at].join("/");
    let (entry, rest) = match segments.get(at + 1)?.parse::<usize>() {
        Ok(j) => (j, segments[at + 2..].join("/")),
        Err(_) => (0, segments[at + 1..].join("/")),
    };
    let entries = pattern_entries(expected.iter().map(|(n, _)| n.as_str()), &prefix);
    let repeats = *shape.first()?;
    let mut rows = Vec::with_capacity(repeats);
    let mut sources = Vec::with_capacity(repeats);
    for r in 0..repeats {
        let source = join(
            &prefix,
            &format!("{UNROLLED}/{}/{rest}", r * entries + entry),
        );
        let row = tensors.get(&source)?;
        if row.shape() != &shape[1..] {
            return None;
        }
        rows.push(row.view());
        sources.push(source);
    }
    let stacked = ndarray::stack(Axis(0), &rows).ok()?;
    Some((stacked, sources))
}

/// An unrolled name `A/layers/{i}/rest`, sliced from the scanned
/// `A/layer[/j]/rest` (row `i / P` of entry `j = i % P`, with `P` the
/// number of pattern entries the checkpoint holds under `A/layer/`).
fn from_scanned(
    tensors: &Tensors,
    name: &str,
    shape: &[usize],
) -> Option<(ArrayD<f32>, Vec<String>)> {
    let segments: Vec<&str> = name.split('/').collect();
    let at = segments.iter().position(|s| *s == UNROLLED)?;
    let prefix = segments[..at].join("/");
    let layer: usize = segments.get(at + 1)?.parse().ok()?;
    let rest = segments[at + 2..].join("/");
    let entries = pattern_entries(tensors.keys().map(String::as_str), &prefix);
    let source = if entries == 1 && !has_indexed_entries(tensors, &prefix) {
        join(&prefix, &format!("{SCANNED}/{rest}"))
    } else {
        join(&prefix, &format!("{SCANNED}/{}/{rest}", layer % entries))
    };
    let stacked = tensors.get(&source)?;
    let row = layer / entries;
    if row >= stacked.shape()[0] || &stacked.shape()[1..] != shape {
        return None;
    }
    Some((stacked.index_axis(Axis(0), row).to_owned(), vec![source]))
}

/// The number of pattern entries among `names` under `prefix/layer/`: one
/// more than the largest entry index, or 1 for an unindexed one-entry
/// pattern.
fn pattern_entries<'a>(names: impl Iterator<Item = &'a str>, prefix: &str) -> usize {
    let under = join(prefix, &format!("{SCANNED}/"));
    names
        .filter_map(|n| n.strip_prefix(&under))
        .filter_map(|rest| rest.split('/').next()?.parse::<usize>().ok())
        .max()
        .map_or(1, |j| j + 1)
}

/// Whether `tensors` hold indexed pattern entries `prefix/layer/{j}/…`.
fn has_indexed_entries(tensors: &Tensors, prefix: &str) -> bool {
    let under = join(prefix, &format!("{SCANNED}/"));
    tensors.keys().any(|n| {
        n.strip_prefix(&under)
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|j| j.parse::<usize>().is_ok())
    })
}

fn join(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else {
        format!("{prefix}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    fn layer(i: usize) -> ArrayD<f32> {
        ArrayD::from_shape_fn(IxDyn(&[2, 3]), |ix| (100 * i + 10 * ix[0] + ix[1]) as f32)
    }

    fn expect(names: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        names
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect()
    }

    /// Four unrolled layers in a pattern of two entries become two stacked
    /// entries of two repeats (layer i = 2r + j), and back, bit for bit.
    #[test]
    fn a_two_entry_pattern_round_trips() {
        let unrolled: Tensors = (0..4)
            .map(|i| (format!("adam/mu/stack/layers/{i}/w"), layer(i)))
            .chain([("other".to_string(), layer(9))])
            .collect();
        let scanned_names = expect(&[
            ("adam/mu/stack/layer/0/w", &[2, 2, 3]),
            ("adam/mu/stack/layer/1/w", &[2, 2, 3]),
            ("other", &[2, 3]),
        ]);
        let scanned = to_stack_layout(unrolled.clone(), &scanned_names);
        assert_eq!(
            scanned.keys().collect::<Vec<_>>(),
            [
                "adam/mu/stack/layer/0/w",
                "adam/mu/stack/layer/1/w",
                "other"
            ]
        );
        let entry1 = &scanned["adam/mu/stack/layer/1/w"];
        assert_eq!(entry1.index_axis(Axis(0), 1), layer(3));
        let unrolled_names: Vec<_> = unrolled
            .iter()
            .map(|(n, t)| (n.clone(), t.shape().to_vec()))
            .collect();
        assert_eq!(to_stack_layout(scanned, &unrolled_names), unrolled);
    }

    /// A one-entry pattern is stacked under `layer/` with no index.
    #[test]
    fn a_uniform_stack_uses_the_unindexed_name() {
        let unrolled: Tensors = (0..3)
            .map(|i| (format!("s/layers/{i}/w"), layer(i)))
            .collect();
        let scanned = to_stack_layout(unrolled.clone(), &expect(&[("s/layer/w", &[3, 2, 3])]));
        assert_eq!(scanned.keys().collect::<Vec<_>>(), ["s/layer/w"]);
        let names: Vec<_> = (0..3)
            .map(|i| (format!("s/layers/{i}/w"), vec![2, 3]))
            .collect();
        assert_eq!(to_stack_layout(scanned, &names), unrolled);
    }

    /// A missing layer or a wrong shape builds nothing: the sources stay for
    /// the caller to report.
    #[test]
    fn incomplete_sources_are_left_alone() {
        let two: Tensors = (0..2)
            .map(|i| (format!("s/layers/{i}/w"), layer(i)))
            .collect();
        let out = to_stack_layout(two.clone(), &expect(&[("s/layer/w", &[3, 2, 3])]));
        assert_eq!(out, two);
        let out = to_stack_layout(two.clone(), &expect(&[("s/layer/w", &[2, 3, 2])]));
        assert_eq!(out, two);
    }
}
