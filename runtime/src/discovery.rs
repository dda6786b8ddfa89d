//! Where PJRT plugins are looked for.
//!
//! [`find_plugin`] takes a platform name (`cpu`, `cuda`, `tpu`) or a path to a
//! plugin `.so`, and resolves it in this order:
//!
//! 1. a path (anything containing `/` or ending in `.so`) is used as is;
//! 2. `AXLE_PJRT_PLUGIN_<PLATFORM>` (e.g. `AXLE_PJRT_PLUGIN_CPU`), then
//!    `AXLE_PJRT_PLUGIN`, if set, name the plugin file for any platform;
//! 3. otherwise the package files pip installs are searched for in every
//!    Python package directory: `$VIRTUAL_ENV/lib/python3*/site-packages`,
//!    the directories `python3 -c 'import site; ...'` reports (asked once per
//!    process), `~/.local/lib/python3*/site-packages`,
//!    `/usr/local/lib/python3*/{site,dist}-packages` and
//!    `/usr/lib/python3/dist-packages`. Files per platform, in order of
//!    preference:
//!    - cpu: `lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so` (the default, see
//!      `third_party/README.md`), then `xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so`;
//!    - cuda: `jax_plugins/xla_cuda13/xla_cuda_plugin.so`, then
//!      `jax_plugins/xla_cuda12/xla_cuda_plugin.so`;
//!    - tpu: `libtpu/libtpu.so`.
//!
//! When nothing is found the error lists every path tried and the command
//! that installs the pinned CPU plugins.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// The command that installs the pinned CPU plugins (run from the repository root).
pub const CPU_INSTALL_COMMAND: &str =
    "python3 -m pip install --no-deps --require-hashes -r third_party/pjrt-cpu-requirements.txt";

/// Plugin files relative to a site-packages directory, in order of preference.
pub fn package_files(platform: &str) -> Option<&'static [&'static str]> {
    Some(match platform {
        "cpu" => &[
            "lammps_jax_pjrt_cpu/pjrt_c_api_cpu_plugin.so",
            "xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so",
        ],
        "cuda" | "gpu" => &[
            "jax_plugins/xla_cuda13/xla_cuda_plugin.so",
            "jax_plugins/xla_cuda12/xla_cuda_plugin.so",
        ],
        "tpu" => &["libtpu/libtpu.so"],
        _ => return None,
    })
}

fn install_command(platform: &str) -> String {
    match platform {
        "cpu" => CPU_INSTALL_COMMAND.to_string(),
        "cuda" | "gpu" => "python3 -m pip install jax-cuda13-pjrt".to_string(),
        _ => "python3 -m pip install libtpu".to_string(),
    }
}

/// Resolves a platform name or plugin path to a plugin file (see module docs).
pub fn find_plugin(platform_or_path: &str) -> Result<PathBuf> {
    if platform_or_path.contains('/') || platform_or_path.ends_with(".so") {
        return Ok(PathBuf::from(platform_or_path));
    }
    let platform = platform_or_path.to_ascii_lowercase();
    let files = package_files(&platform).ok_or_else(|| Error::UnknownPlatform(platform.clone()))?;
    for var in [
        format!("AXLE_PJRT_PLUGIN_{}", platform.to_ascii_uppercase()),
        "AXLE_PJRT_PLUGIN".into(),
    ] {
        if let Some(path) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(path));
        }
    }
    let mut searched = Vec::new();
    for file in files {
        for dir in package_dirs() {
            let candidate = dir.join(file);
            if candidate.is_file() {
                return Ok(candidate);
            }
            searched.push(candidate);
        }
    }
    Err(Error::PluginNotFound {
        install: install_command(&platform),
        platform,
        searched,
    })
}

/// The first Python package directory holding `relative_file` (a path such as
/// `xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so`), joined with it.
pub fn find_in_packages(relative_file: &str) -> Option<PathBuf> {
    package_dirs()
        .into_iter()
        .map(|dir| dir.join(relative_file))
        .find(|p| p.is_file())
}

/// Every Python package directory that exists, without duplicates, in search order.
pub fn package_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut add = |dir: PathBuf| {
        if dir.is_dir() && !dirs.contains(&dir) {
            dirs.push(dir);
        }
    };
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        for dir in python_dirs(&Path::new(&venv).join("lib"), &["site-packages"]) {
            add(dir);
        }
    }
    for dir in python_site_dirs() {
        add(dir.clone());
    }
    if let Some(home) = std::env::var_os("HOME") {
        for dir in python_dirs(&Path::new(&home).join(".local/lib"), &["site-packages"]) {
            add(dir);
        }
    }
    for dir in python_dirs(
        Path::new("/usr/local/lib"),
        &["site-packages", "dist-packages"],
    ) {
        add(dir);
    }
    add(PathBuf::from("/usr/lib/python3/dist-packages"));
    dirs
}

/// `<lib>/python3*/<leaf>` for every python3 directory under `lib`, newest first.
fn python_dirs(lib: &Path, leaves: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(lib) else {
        return Vec::new();
    };
    let mut versions: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python3"))
        })
        .collect();
    versions.sort();
    versions.reverse();
    versions
        .iter()
        .flat_map(|v| leaves.iter().map(move |leaf| v.join(leaf)))
        .collect()
}

/// The site-packages directories of the `python3` on PATH, asked once per process.
fn python_site_dirs() -> &'static [PathBuf] {
    static DIRS: OnceLock<Vec<PathBuf>> = OnceLock::new();
    DIRS.get_or_init(|| {
        let script =
            "import site\nfor d in site.getsitepackages() + [site.getusersitepackages()]: print(d)";
        std::process::Command::new("python3")
            .args(["-c", script])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|out| out.status.success())
            .map(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    })
}
