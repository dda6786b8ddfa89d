//! `MeshShape`: a mesh as written in configs, mesh rules and on the command
//! line (`data=-1,fsdp=4`), before the device count is known.

use std::fmt;
use std::str::FromStr;

use crate::error::MeshError;
use crate::mesh::{Mesh, MeshAxis};

/// The mesh axis names axle knows, in canonical (major to minor) order, as in
/// AXLearn: `pipeline` and `expert` are reserved for pipeline and expert
/// parallelism; `data`, `fsdp`, `seq` and `model` are the axes the default
/// rules use. Every mesh lists its axes in this order, so that the same names
/// always nest the same way (data outermost, model innermost: devices that
/// differ only in their `model` coordinate are neighbours).
pub const MESH_AXIS_NAMES: [&str; 6] = ["pipeline", "data", "expert", "fsdp", "seq", "model"];

/// The size of one axis in a [`MeshShape`]: fixed, or inferred from the
/// device count (written `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AxisSize {
    /// A fixed size, at least 1.
    Fixed(usize),
    /// Whatever is left of the device count after the fixed axes (`-1`).
    Infer,
}

impl fmt::Display for AxisSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AxisSize::Fixed(n) => write!(f, "{n}"),
            AxisSize::Infer => f.write_str("-1"),
        }
    }
}

/// A mesh description whose one `-1` axis (if any) is not yet resolved:
/// what mesh rules hold and what `--mesh` parses into. [`MeshShape::resolve`]
/// turns it into a [`Mesh`] once the device count is known.
///
/// Invariants (checked by every constructor): at least one axis; names from
/// [`MESH_AXIS_NAMES`], each at most once and in canonical order; sizes >= 1
/// except at most one `-1`.
///
/// Text form: `axis=size` entries joined by `,`, e.g. `data=2,fsdp=-1`;
/// whitespace around names, sizes and commas is ignored. `Display` writes the
/// same form without spaces, so `text.parse::<MeshShape>()` round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MeshShape {
    axes: Vec<(String, AxisSize)>,
}

impl MeshShape {
    /// Builds a mesh shape from `(name, size)` pairs; a size of -1 is inferred
    /// at [`resolve`](Self::resolve) time.
    pub fn new(axes: &[(&str, i64)]) -> Result<MeshShape, MeshError> {
        if axes.is_empty() {
            return Err(MeshError::Empty);
        }
        let mut checked: Vec<(String, AxisSize)> = Vec::with_capacity(axes.len());
        let mut last_rank: Option<(usize, &str)> = None;
        let mut inferred: Option<&str> = None;
        for &(name, size) in axes {
            let rank = MESH_AXIS_NAMES
                .iter()
                .position(|known| *known == name)
                .ok_or_else(|| MeshError::UnknownAxis {
                    axis: name.to_string(),
                    known: MESH_AXIS_NAMES.join(", "),
                })?;
            if let Some((prev_rank, prev_name)) = last_rank {
                if rank == prev_rank {
                    return Err(MeshError::DuplicateAxis {
                        axis: name.to_string(),
                    });
                }
                if rank < prev_rank {
                    if checked.iter().any(|(seen, _)| seen == name) {
                        return Err(MeshError::DuplicateAxis {
                            axis: name.to_string(),
                        });
                    }
                    return Err(MeshError::AxisOrder {
                        axis: name.to_string(),
                        before: prev_name.to_string(),
                        known: MESH_AXIS_NAMES.join(", "),
                    });
                }
            }
            last_rank = Some((rank, name));
            let size = match size {
                -1 => {
                    if let Some(first) = inferred {
                        return Err(MeshError::TwoInferred {
                            first: first.to_string(),
                            second: name.to_string(),
                        });
                    }
                    inferred = Some(name);
                    AxisSize::Infer
                }
                n if n >= 1 => {
                    AxisSize::Fixed(usize::try_from(n).map_err(|_| MeshError::BadSize {
                        axis: name.to_string(),
                        size: n,
                    })?)
                }
                n => {
                    return Err(MeshError::BadSize {
                        axis: name.to_string(),
                        size: n,
                    });
                }
            };
            checked.push((name.to_string(), size));
        }
        Ok(MeshShape { axes: checked })
    }

    /// The axes with their (possibly inferred) sizes, in mesh order.
    pub fn axes(&self) -> &[(String, AxisSize)] {
        &self.axes
    }

    /// Resolves the shape on the first devices of `num_devices` (ids
    /// `0..size`). A `-1` axis takes `num_devices / product(other sizes)`, so
    /// the mesh then covers every device; without `-1` the mesh may be smaller
    /// than the device count (it uses the first devices) but not larger.
    pub fn resolve(&self, num_devices: usize) -> Result<Mesh, MeshError> {
        let sizes = self.sizes_for(num_devices)?;
        let size = self.checked_product(&sizes, num_devices)?;
        if size > num_devices {
            return Err(MeshError::TooLarge {
                mesh: self.to_string(),
                size,
                devices: num_devices,
            });
        }
        Ok(Mesh::from_parts(self.named(&sizes), (0..size).collect()))
    }

    /// Resolves the shape over an explicit device list: `devices[i]` is the
    /// device at row-major position `i` of the mesh (partition `i` of a
    /// program compiled for it). The mesh must cover exactly these devices.
    pub fn resolve_on(&self, devices: &[usize]) -> Result<Mesh, MeshError> {
        let sizes = self.sizes_for(devices.len())?;
        let size = self.checked_product(&sizes, devices.len())?;
        if size != devices.len() {
            return Err(MeshError::DeviceCount {
                mesh: self.to_string(),
                size,
                devices: devices.len(),
            });
        }
        let mut seen = devices.to_vec();
        seen.sort_unstable();
        if let Some(pair) = seen.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(MeshError::DuplicateDevice {
                mesh: self.to_string(),
                device: pair[0],
            });
        }
        Ok(Mesh::from_parts(self.named(&sizes), devices.to_vec()))
    }

    /// The concrete axis sizes for `num_devices` devices (the `-1` filled in
    /// with `num_devices / product(fixed sizes)`, which must be a whole,
    /// non-zero number).
    fn sizes_for(&self, num_devices: usize) -> Result<Vec<usize>, MeshError> {
        let fixed: Vec<usize> = self
            .axes
            .iter()
            .filter_map(|(_, size)| match size {
                AxisSize::Fixed(n) => Some(*n),
                AxisSize::Infer => None,
            })
            .collect();
        let fixed_product = self.checked_product(&fixed, num_devices)?;
        let fits = num_devices > 0 && num_devices.is_multiple_of(fixed_product);
        self.axes
            .iter()
            .map(|(_, size)| match size {
                AxisSize::Fixed(n) => Ok(*n),
                AxisSize::Infer if fits => Ok(num_devices / fixed_product),
                AxisSize::Infer => Err(MeshError::NotDivisible {
                    mesh: self.to_string(),
                    devices: num_devices,
                    fixed: fixed_product,
                }),
            })
            .collect()
    }

    /// The product of `sizes`, or `TooLarge` (for `devices` devices) if it
    /// overflows.
    fn checked_product(&self, sizes: &[usize], devices: usize) -> Result<usize, MeshError> {
        sizes
            .iter()
            .try_fold(1usize, |acc, &n| acc.checked_mul(n))
            .ok_or(MeshError::TooLarge {
                mesh: self.to_string(),
                size: usize::MAX,
                devices,
            })
    }

    fn named(&self, sizes: &[usize]) -> Vec<MeshAxis> {
        self.axes
            .iter()
            .zip(sizes)
            .map(|((name, _), &size)| MeshAxis {
                name: name.clone(),
                size,
            })
            .collect()
    }
}

impl fmt::Display for MeshShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, size)) in self.axes.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{name}={size}")?;
        }
        Ok(())
    }
}

impl FromStr for MeshShape {
    type Err = MeshError;

    fn from_str(text: &str) -> Result<MeshShape, MeshError> {
        let parse_error = |reason: String| MeshError::Parse {
            text: text.to_string(),
            reason,
        };
        if text.trim().is_empty() {
            return Err(MeshError::Empty);
        }
        let mut pairs: Vec<(&str, i64)> = Vec::new();
        for entry in text.split(',') {
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(parse_error("empty entry between commas".to_string()));
            }
            let (name, size) = entry
                .split_once('=')
                .ok_or_else(|| parse_error(format!("entry `{entry}` has no `=`")))?;
            let (name, size) = (name.trim(), size.trim());
            if name.is_empty() {
                return Err(parse_error(format!("entry `{entry}` has no axis name")));
            }
            let size: i64 = size.parse().map_err(|_| {
                parse_error(format!("size `{size}` of axis `{name}` is not an integer"))
            })?;
            pairs.push((name, size));
        }
        MeshShape::new(&pairs)
    }
}
