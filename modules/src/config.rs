//! The config tree: every module's config is a plain serde struct that also implements [`ConfigNode`],
//! so that generic code can walk it, find every config of a given type and modify or replace it
//! (the basis of config modifiers), and address any field by a dotted path.

use std::any::Any;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::config_path;
use crate::error::{Error, Result};

/// A node of a config tree that knows its child configs.
///
/// Implemented with [`crate::config_node!`] for structs, by hand for enum slots such as
/// [`crate::NormConfig`], and generically for `Option<T>` (an optional child) and `Vec<T>` (a
/// list of children, such as the layer pattern of a [`crate::StackConfig`]).
/// The visitor sees every node as `dyn Any`, so a modifier can downcast to the type it
/// cares about and edit or replace it wholesale.
pub trait ConfigNode: Any {
    /// Calls `f` on each direct child config, in declaration order.
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode));
    /// Calls `f` on each direct child config, in declaration order.
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode));
    /// This node as `Any`, for downcasting by visitors.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// This node as `Any`, for downcasting by visitors.
    fn as_any(&self) -> &dyn Any;
}

/// Implements [`ConfigNode`] for a struct whose listed fields are its child configs.
#[macro_export]
macro_rules! config_node {
    ($ty:ty $(, $field:ident)* $(,)?) => {
        impl $crate::ConfigNode for $ty {
            fn children_mut(&mut self, _f: &mut dyn FnMut(&mut dyn $crate::ConfigNode)) {
                $(_f(&mut self.$field);)*
            }
            fn children(&self, _f: &mut dyn FnMut(&dyn $crate::ConfigNode)) {
                $(_f(&self.$field);)*
            }
            fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
                self
            }
            fn as_any(&self) -> &dyn std::any::Any {
                self
            }
        }
    };
}

impl<T: ConfigNode> ConfigNode for Option<T> {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode)) {
        if let Some(child) = self {
            f(child);
        }
    }
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode)) {
        if let Some(child) = self {
            f(child);
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl<T: ConfigNode> ConfigNode for Vec<T> {
    fn children_mut(&mut self, f: &mut dyn FnMut(&mut dyn ConfigNode)) {
        for child in self {
            f(child);
        }
    }
    fn children(&self, f: &mut dyn FnMut(&dyn ConfigNode)) {
        for child in self {
            f(child);
        }
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Calls `f` on `node` and then, depth first, on every config below it.
///
/// `f` runs on a node before its children are visited, so a node replaced by `f` has the
/// children of its replacement visited.
pub fn visit_mut(node: &mut dyn ConfigNode, f: &mut dyn FnMut(&mut dyn Any)) {
    f(node.as_any_mut());
    node.children_mut(&mut |child| visit_mut(child, f));
}

/// Calls `f` on `node` and then, depth first, on every config below it.
pub fn visit(node: &dyn ConfigNode, f: &mut dyn FnMut(&dyn Any)) {
    f(node.as_any());
    node.children(&mut |child| visit(child, f));
}

/// Calls `f` on every config of type `T` anywhere in the tree (including the root) and returns
/// how many there were. `f` may modify the config or replace it (`*cfg = ...`).
pub fn for_each_mut<T: Any>(root: &mut dyn ConfigNode, mut f: impl FnMut(&mut T)) -> usize {
    let mut count = 0;
    visit_mut(root, &mut |node| {
        if let Some(cfg) = node.downcast_mut::<T>() {
            f(cfg);
            count += 1;
        }
    });
    count
}

/// Every config of type `T` anywhere in the tree, in depth-first order.
pub fn find_all<T: Any + Clone>(root: &dyn ConfigNode) -> Vec<T> {
    let mut found = Vec::new();
    visit(root, &mut |node| {
        if let Some(cfg) = node.downcast_ref::<T>() {
            found.push(cfg.clone());
        }
    });
    found
}

/// A root config: a serializable config tree with dotted-path access and a stable text dump.
///
/// Paths name struct fields from the root, joined by `.`, and list entries by their index:
/// `decoder.transformer.layers.0.attention.num_heads`.
pub trait Config: ConfigNode + Serialize + DeserializeOwned + Clone {
    /// The value at `path`, as JSON.
    fn get(&self, path: &str) -> Result<serde_json::Value> {
        config_path::get(self, path)
    }

    /// Sets the field at `path` from its command-line text form: JSON where the text parses as
    /// JSON (`8`, `1e-5`, `true`, `null`, `[["fsdp"],["model"]]`), a string otherwise (`gelu`).
    fn set(&mut self, path: &str, value: &str) -> Result<()> {
        config_path::set(self, path, value)
    }

    /// Applies command-line overrides of the form `path=value`, in order.
    fn apply_overrides<S: AsRef<str>>(&mut self, overrides: &[S]) -> Result<()> {
        for item in overrides {
            let item = item.as_ref();
            let (path, value) = item
                .split_once('=')
                .ok_or_else(|| Error::BadOverride(item.to_string()))?;
            self.set(path.trim(), value.trim())?;
        }
        Ok(())
    }

    /// The stable text form of the config: one `path = value` line per leaf, sorted by path.
    fn dump(&self) -> String {
        config_path::dump(self)
    }
}

impl<T: ConfigNode + Serialize + DeserializeOwned + Clone> Config for T {}

/// The value of a required size field (a dimension, a count): [`Error::Missing`] naming
/// `path.field` when unset, [`Error::Inconsistent`] when zero, since no layer has a
/// zero-sized dimension.
pub fn required(value: Option<usize>, path: &str, field: &str) -> Result<usize> {
    match value {
        None => Err(Error::Missing {
            path: join(path, field),
        }),
        Some(0) => Err(Error::Inconsistent {
            path: join(path, field),
            message: "must be at least 1, got 0".into(),
        }),
        Some(n) => Ok(n),
    }
}

/// Joins a config path prefix and a field name with `.` (the root prefix is empty).
pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}
