//! A persistent compile cache: executables serialized on disk, keyed by
//! everything that determines them, so a second run of the same step loads
//! the compiled program instead of running XLA's compiler again (as JAX's
//! persistent compilation cache does).
//!
//! The key is the program text, the encoded compile options, and the
//! plugin's path, file size and modification time, API version and XLA
//! version attribute. An entry file
//! (`<hash>.pjrt` in the cache directory) holds the whole key, the
//! serialized executable and a CRC-32 (IEEE, `crc32fast`) of everything
//! before it; a hit requires the checksum to match and the stored key to
//! equal the current one byte for byte, so a hash collision is a miss,
//! never a wrong program, and a damaged entry (a flipped bit, a truncated
//! file) is recompiled and rewritten, never loaded. Entries are written to
//! a temporary file and renamed into place, so concurrent runs never read a
//! partial entry. Entries are never deleted: clear the cache by deleting
//! its directory.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::client::Client;
use crate::compile_options::CompileOptions;
use crate::error::Result;
use crate::executable::Executable;
use crate::plugin::NamedValue;

/// The environment variable naming the cache directory; `off`, `false` or
/// `0` (any case) disables it.
pub const CACHE_ENV: &str = "AXLE_COMPILE_CACHE";

/// First bytes of an entry file (version 2: with a trailing CRC-32).
const MAGIC: &[u8; 8] = b"AXLECC2\n";

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
    /// The entry for this program was damaged (its checksum did not match,
    /// or the plugin refused its executable): compiled again and, where
    /// `stored` is set, rewritten.
    Damaged {
        /// The damaged entry file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
        /// Whether the fresh entry was written over it.
        stored: bool,
    },
}

/// What an entry file held.
#[derive(Debug, PartialEq)]
enum Entry {
    /// No entry, an entry of another format version, or one for another key
    /// (a hash collision): an ordinary miss.
    Absent,
    /// The serialized executable of a sound entry for this key.
    Valid(Vec<u8>),
    /// An entry whose checksum does not match its contents.
    Damaged(String),
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

    /// The cache the environment asks for: `$AXLE_COMPILE_CACHE` (`off`,
    /// `false` or `0`, any case: none), else `$XDG_CACHE_HOME/axle/compile`,
    /// else `~/.cache/axle/compile`; `None` when disabled or no home is
    /// known.
    pub fn from_env() -> Option<CompileCache> {
        cache_dir(
            std::env::var_os(CACHE_ENV),
            std::env::var_os("XDG_CACHE_HOME"),
            std::env::var_os("HOME"),
        )
        .map(CompileCache::new)
    }

    /// Why entries cannot be stored in the cache directory, if they cannot:
    /// it cannot be created, is not a directory, or a file cannot be
    /// created in it. Creates the directory when missing.
    pub fn unusable(&self) -> Option<String> {
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return Some(e.to_string());
        }
        if !self.dir.is_dir() {
            return Some("not a directory".into());
        }
        let probe = self.dir.join(format!(".write-test{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => std::fs::remove_file(&probe).err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
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
        let damage = match read_entry(&path, &key) {
            Entry::Valid(serialized) => match client.deserialize(&serialized) {
                Ok(exe) => {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((exe, CacheOutcome::Hit(path)));
                }
                Err(e) => Some(format!("the plugin refused its executable: {e}")),
            },
            Entry::Damaged(reason) => Some(reason),
            Entry::Absent => None,
        };
        let exe = client.compile(mlir_text, options)?;
        self.misses.fetch_add(1, Ordering::Relaxed);
        let stored = exe
            .serialize()
            .ok()
            .is_some_and(|bytes| write_entry(&self.dir, &path, &key, &bytes).is_ok());
        let outcome = match damage {
            Some(reason) => CacheOutcome::Damaged {
                path,
                reason,
                stored,
            },
            None => CacheOutcome::Miss(stored.then_some(path)),
        };
        Ok((exe, outcome))
    }
}

/// The cache directory for the values of `$AXLE_COMPILE_CACHE`,
/// `$XDG_CACHE_HOME` and `$HOME`, in that precedence; `None` when the first
/// is `off`, `false` or `0` (any case) or no directory is known.
fn cache_dir(
    axle: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let nonempty = |v: Option<OsString>| v.filter(|v| !v.is_empty());
    if let Some(v) = nonempty(axle) {
        let off = ["off", "false", "0"]
            .iter()
            .any(|word| v.to_str().is_some_and(|v| v.eq_ignore_ascii_case(word)));
        return (!off).then(|| PathBuf::from(v));
    }
    nonempty(xdg_cache_home)
        .map(PathBuf::from)
        .or_else(|| nonempty(home).map(|h| Path::new(&h).join(".cache")))
        .map(|base| base.join("axle").join("compile"))
}

/// Program text, the encoded options a compile uses (the caller's with the
/// client's defaults, [`Client::effective_options`]) and the plugin's
/// identity, with lengths.
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
        &client.effective_options(options)?.encode()?,
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

/// The entry at `path`: `MAGIC`, the key's length (u64, little-endian),
/// the key, the serialized executable, then the CRC-32 (u32, little-endian)
/// of all bytes before it.
fn read_entry(path: &Path, key: &[u8]) -> Entry {
    let Ok(bytes) = std::fs::read(path) else {
        return Entry::Absent;
    };
    if !bytes.starts_with(MAGIC) {
        return Entry::Absent;
    }
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Entry::Damaged("truncated".into());
    };
    if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
        return Entry::Damaged("checksum mismatch".into());
    }
    let rest = &body[MAGIC.len()..];
    let parsed = rest.split_first_chunk::<8>().and_then(|(len, rest)| {
        let len = usize::try_from(u64::from_le_bytes(*len)).ok()?;
        rest.split_at_checked(len)
    });
    match parsed {
        Some((stored_key, executable)) if stored_key == key => Entry::Valid(executable.to_vec()),
        Some(_) => Entry::Absent,
        None => Entry::Damaged("key length beyond the end of the file".into()),
    }
}

/// The bytes of an entry (see [`read_entry`]).
fn encode_entry(key: &[u8], executable: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(MAGIC.len() + 8 + key.len() + executable.len() + 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(executable);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Writes an entry through a temporary file renamed into place.
fn write_entry(dir: &Path, path: &Path, key: &[u8], executable: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&encode_entry(key, executable))?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_anywhere_makes_the_entry_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("entry.pjrt");
        let (key, program) = (b"the key".as_slice(), b"serialized program".as_slice());
        write_entry(dir.path(), &path, key, program).unwrap();
        assert_eq!(read_entry(&path, key), Entry::Valid(program.to_vec()));
        assert_eq!(read_entry(&path, b"other key"), Entry::Absent);
        let sound = std::fs::read(&path).unwrap();
        // Every byte after the magic, flipped one at a time: CRC-32 detects
        // every single-bit (indeed every burst up to 32 bits) error.
        for i in MAGIC.len()..sound.len() {
            let mut bytes = sound.clone();
            bytes[i] ^= 0x01;
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(read_entry(&path, key), Entry::Damaged(_)),
                "byte {i}"
            );
        }
        std::fs::write(&path, &sound[..sound.len() - 2]).unwrap();
        assert!(matches!(read_entry(&path, key), Entry::Damaged(_)));
        std::fs::write(&path, b"AXLECC1\nold format").unwrap();
        assert_eq!(read_entry(&path, key), Entry::Absent);
    }

    #[test]
    fn the_directory_follows_the_environment_in_order() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            cache_dir(os("/c"), os("/x"), os("/h")),
            Some(PathBuf::from("/c"))
        );
        for off in ["off", "OFF", "false", "False", "0"] {
            assert_eq!(cache_dir(os(off), os("/x"), os("/h")), None, "{off}");
        }
        assert_eq!(
            cache_dir(os(""), os("/x"), os("/h")),
            Some(PathBuf::from("/x/axle/compile"))
        );
        assert_eq!(
            cache_dir(None, None, os("/h")),
            Some(PathBuf::from("/h/.cache/axle/compile"))
        );
        assert_eq!(cache_dir(None, None, None), None);
    }

    #[test]
    fn files_and_device_nodes_are_unusable_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(CompileCache::new(dir.path().join("new")).unusable(), None);
        let file = dir.path().join("a file");
        std::fs::write(&file, b"").unwrap();
        for bad in [file, PathBuf::from("/dev/null"), PathBuf::from("/proc/x")] {
            assert!(CompileCache::new(&bad).unusable().is_some(), "{bad:?}");
        }
    }
}
