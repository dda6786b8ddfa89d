//! The NVIDIA libraries the CUDA plugin needs loaded before it starts.
//!
//! `jax-cuda12-pjrt`'s plugin finds most CUDA libraries through its RPATH
//! into `site-packages/nvidia/*/lib`, but dlopens some by bare name
//! (cuSOLVER, NVRTC, nvJitLink, NVSHMEM) where the dynamic loader does not
//! look. JAX's plugin shim (`jax_plugins/xla_cuda12/__init__.py`) preloads
//! them with `RTLD_GLOBAL` from the pip-installed NVIDIA wheels; so does
//! axle, before it opens the plugin. Only on a machine with those wheels
//! (`scripts/gpu-check.sh` installs them); a deviceless compile needs none.

use std::path::{Path, PathBuf};

/// `site-packages/nvidia/<dir>/lib/<file>`, in dependency order (cuSPARSE
/// and cuSOLVER need nvJitLink and cuBLAS loaded first).
const LIBRARIES: &[(&str, &str)] = &[
    ("cuda_runtime", "libcudart.so.12"),
    ("nvjitlink", "libnvJitLink.so.12"),
    ("cuda_nvrtc", "libnvrtc.so.12"),
    ("cublas", "libcublasLt.so.12"),
    ("cublas", "libcublas.so.12"),
    ("cusparse", "libcusparse.so.12"),
    ("cusolver", "libcusolver.so.11"),
    ("cufft", "libcufft.so.11"),
    ("cuda_cupti", "libcupti.so.12"),
    ("nccl", "libnccl.so.2"),
    ("nvshmem", "libnvshmem_host.so.3"),
    ("cudnn", "libcudnn.so.9"),
];

/// The NVIDIA library files present beside the plugin at `plugin`
/// (`<site-packages>/jax_plugins/xla_cuda12/xla_cuda_plugin.so`), in load order.
pub(crate) fn cuda_libraries(plugin: &Path) -> Vec<PathBuf> {
    let Some(site) = plugin.ancestors().nth(3) else {
        return Vec::new();
    };
    LIBRARIES
        .iter()
        .map(|(dir, file)| site.join("nvidia").join(dir).join("lib").join(file))
        .filter(|p| p.is_file())
        .collect()
}

/// Loads every library of [`cuda_libraries`] with `RTLD_NOW | RTLD_GLOBAL`
/// and keeps it loaded. A library that fails to load is skipped: the
/// plugin then reports what it misses when a client is created.
pub(crate) fn preload_cuda_libraries(plugin: &Path) {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    for path in cuda_libraries(plugin) {
        // SAFETY: NVIDIA's libraries run ordinary initialisers when loaded.
        if let Ok(library) = unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) } {
            std::mem::forget(library);
        }
    }
}
