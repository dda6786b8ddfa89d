//! The CUDA plugin's client create options, by name (those of XLA's
//! `GpuClientOptions` that `PJRT_Client_Create` reads).

use crate::client::CreateOption;

/// How the CUDA plugin allocates device memory (`allocator` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuAllocator {
    /// The plugin's default (BFC).
    Default,
    /// cudaMalloc / cudaFree per buffer (`platform`): slow, no pool.
    Platform,
    /// XLA's best-fit-with-coalescing pool (`bfc`).
    Bfc,
    /// CUDA's stream-ordered allocator (`cuda_async`).
    CudaAsync,
}

impl GpuAllocator {
    fn name(self) -> &'static str {
        match self {
            GpuAllocator::Default => "default",
            GpuAllocator::Platform => "platform",
            GpuAllocator::Bfc => "bfc",
            GpuAllocator::CudaAsync => "cuda_async",
        }
    }
}

/// Options of a CUDA client; `None` leaves the plugin's default (JAX's
/// `XLA_PYTHON_CLIENT_*` variables set the same options).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuClientOptions {
    /// The allocator.
    pub allocator: Option<GpuAllocator>,
    /// Fraction of device memory the pool may take (0, 1]; the plugin's
    /// default is 0.75.
    pub memory_fraction: Option<f32>,
    /// Take the pool's memory up front.
    pub preallocate: Option<bool>,
    /// Local device ordinals to use (all when `None`).
    pub visible_devices: Option<Vec<i64>>,
}

impl GpuClientOptions {
    /// The named create options for [`crate::Client::new`].
    pub fn create_options(&self) -> Vec<CreateOption> {
        let mut options = Vec::new();
        if let Some(a) = self.allocator {
            options.push(CreateOption::string("allocator", a.name()));
        }
        if let Some(f) = self.memory_fraction {
            options.push(CreateOption::float("memory_fraction", f));
        }
        if let Some(p) = self.preallocate {
            options.push(CreateOption::bool("preallocate", p));
        }
        if let Some(d) = &self.visible_devices {
            options.push(CreateOption::int_list("visible_devices", d.clone()));
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OptionValue;

    #[test]
    fn options_carry_the_plugins_names_and_types() {
        let options = GpuClientOptions {
            allocator: Some(GpuAllocator::CudaAsync),
            memory_fraction: Some(0.9),
            preallocate: Some(false),
            visible_devices: Some(vec![0, 2]),
        }
        .create_options();
        let named: Vec<(&str, &OptionValue)> = options
            .iter()
            .map(|o| (o.name.as_str(), &o.value))
            .collect();
        assert_eq!(
            named,
            vec![
                ("allocator", &OptionValue::String("cuda_async".into())),
                ("memory_fraction", &OptionValue::Float(0.9)),
                ("preallocate", &OptionValue::Bool(false)),
                ("visible_devices", &OptionValue::Int64List(vec![0, 2])),
            ]
        );
        assert!(GpuClientOptions::default().create_options().is_empty());
    }
}
