//! A persistent compile cache: executables serialized on disk, keyed by
//! everything that determines them, so a second run of the same step loads
//! the compiled program instead of running XLA's compiler again (as JAX's
//! persistent compilation cache does).
//!
//! The key is the program text, the encoded compile options, and the
//! plugin's path, file size and modification time, API version and XLA
//! version attribute. An entry file
//! (`<hash>.pjrt` in the cache directory) holds the whole key and the
//! serialized executable; a hit requires the stored key to equal the
//! current one byte for byte, so a hash collision is a miss, never a wrong
//! program. Entries are written to a temporary file and renamed into place,
//! so concurrent runs never read a partial entry.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::client::Client;
use crate::compile_options::CompileOptions;
use crate::error::Result;
use crate::executable::Executable;
use crate::plugin::NamedValue;

/// The environment variable naming the cache directory; `off` disables it.
pub const CACHE_ENV: &str = "AXLE_COMPILE_CACHE";

/// First bytes of an entry file.
const MAGIC: &[u8; 8] = b"AXLECC1\n";

/// A directory of serialized executables, with hit and miss counters.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

/// Where an executable came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from this entry file; XLA's compiler did not run.
    Hit(PathBuf),
    /// Compiled, and stored in this entry file (`None` when it could not
    /// be written: a read-only directory or a plugin that cannot serialize).
    Miss(Option<PathBuf>),
}

impl CompileCache {
    /// A cache in `dir` (created when the first entry is written).
    pub fn new(dir: impl Into<PathBuf>) -> CompileCache {
        CompileCache {
            dir: dir.into(),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
        }
    }

    /// The cache the environment asks for: `$AXLE_COMPILE_CACHE` (`off`:
    /// none), else `$XDG_CACHE_HOME/axle/compile`, else
    /// `~/.cache/axle/compile`; `None` when disabled or no home is known.
    pub fn from_env() -> Option<CompileCache> {
        match std::env::var_os(CACHE_ENV) {
            Some(v) if v == "off" => None,
            Some(v) if !v.is_empty() => Some(CompileCache::new(v)),
            _ => std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .map(|base| CompileCache::new(base.join("axle").join("compile"))),
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Executables loaded from the cache so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Executables compiled (not found in the cache) so far.
    pub fn misses(&self) -> usize {
        self.misses.load(Ordering::Relaxed)
    }

    /// Compiles `mlir_text` on `client`, or loads the executable an earlier
    /// compile of the same text, options and plugin stored. A cache that
    /// cannot be read or written only costs the compile; compile errors are
    /// returned as from [`Client::compile`].
    pub fn compile(
        &self,
        client: &Client,
        mlir_text: &str,
        options: &CompileOptions,
    ) -> Result<(Executable, CacheOutcome)> {
        let key = cache_key(client, mlir_text, options)?;
        let path = self.dir.join(format!("{:016x}.pjrt", fnv1a(&key)));
        if let Some(serialized) = read_entry(&path, &key)
            && let Ok(exe) = client.deserialize(&serialized)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((exe, CacheOutcome::Hit(path)));
        }
        let exe = client.compile(mlir_text, options)?;
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stored = exe
            .serialize()
            .ok()
            .and_then(|bytes| write_entry(&self.dir, &path, &key, &bytes).ok())
            .map(|()| path);
        Ok((exe, CacheOutcome::Miss(stored)))
    }
}

/// Program text, encoded options and the plugin's identity, with lengths.
fn cache_key(client: &Client, mlir_text: &str, options: &CompileOptions) -> Result<Vec<u8>> {
    let plugin = client.plugin();
    let xla_version = plugin
        .attributes()
        .unwrap_or_default()
        .into_iter()
        .find_map(|(name, value)| match value {
            NamedValue::Int64(v) if name == "xla_version" => Some(v.to_string()),
            NamedValue::String(v) if name == "xla_version" => Some(v),
            _ => None,
        })
        .unwrap_or_default();
    let (major, minor) = plugin.api_version();
    // The file's size and modification time tell apart two builds installed
    // at the same path with the same version attributes.
    let file = std::fs::metadata(plugin.path())
        .map(|m| format!("{} bytes, modified {:?}", m.len(), m.modified().ok()))
        .unwrap_or_default();
    let identity = format!(
        "{}\n{file}\napi {major}.{minor}\nxla {xla_version}\n",
        plugin.path().display()
    );
    let mut key = Vec::new();
    for part in [
        identity.as_bytes(),
        &options.encode()?,
        mlir_text.as_bytes(),
    ] {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part);
    }
    Ok(key)
}

/// 64-bit FNV-1a: the entry's file name (collisions are caught by the
/// stored key).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The serialized executable of the entry at `path` if its key is `key`.
fn read_entry(path: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(MAGIC.as_slice())?;
    let (len, rest) = rest.split_at_checked(8)?;
    let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
    let (stored_key, executable) = rest.split_at_checked(len)?;
    (stored_key == key).then(|| executable.to_vec())
}

/// Writes an entry through a temporary file renamed into place.
fn write_entry(dir: &Path, path: &Path, key: &[u8], executable: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&(key.len() as u64).to_le_bytes())?;
    file.write_all(key)?;
    file.write_all(executable)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
