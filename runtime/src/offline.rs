//! Running a compiler without a network: TPU and GPU plugins compile ahead
//! of time in a child process inside a new network namespace.
//!
//! libtpu looks for cloud metadata servers when it starts (unless
//! `TPU_SKIP_MDS_QUERY=1`), and a compile for a topology can crash inside
//! the plugin (a 16-partition `v5p:2x2x4` compile segfaulted in libtpu's
//! all-reduce combiner). So every libtpu or CUDA-plugin compile runs in a
//! child process made by [`offline_command`]: `unshare --net` gives it a
//! network namespace holding only a loopback interface, so nothing it does
//! can reach another machine, and a crash kills only the child.

use std::path::Path;
use std::process::Command;

/// The environment variable that stops libtpu from querying the cloud
/// metadata server.
pub const SKIP_METADATA_QUERY: (&str, &str) = ("TPU_SKIP_MDS_QUERY", "1");

/// The environment variable that lets several processes load libtpu at
/// once. libtpu otherwise takes `/tmp/libtpu_lockfile`, which guards the
/// host's TPU chips, and a second process fails in `PJRT_Plugin_Initialize`
/// ("Internal error when accessing libtpu multi-process lockfile"); an
/// ahead-of-time compile touches no chip, so parallel plans and tests may
/// share the machine (JAX's TPU CI sets the same for parallel tests).
pub const ALLOW_MULTIPLE_LIBTPU_LOAD: (&str, &str) = ("ALLOW_MULTIPLE_LIBTPU_LOAD", "1");

/// A command running `program` in a new network namespace (`unshare --net`,
/// which needs root or user namespaces), with [`SKIP_METADATA_QUERY`] and
/// [`ALLOW_MULTIPLE_LIBTPU_LOAD`] set. Add arguments and spawn it as any
/// [`Command`].
pub fn offline_command(program: &Path) -> Command {
    let mut command = Command::new("unshare");
    command
        .arg("--net")
        .arg("--")
        .arg(program)
        .env(SKIP_METADATA_QUERY.0, SKIP_METADATA_QUERY.1)
        .env(ALLOW_MULTIPLE_LIBTPU_LOAD.0, ALLOW_MULTIPLE_LIBTPU_LOAD.1);
    command
}

/// Whether this process can reach no network interface but loopback
/// (`/proc/net/dev` lists only `lo`): the check a child makes before it
/// loads an ahead-of-time plugin.
pub fn is_offline() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/net/dev") else {
        return false;
    };
    text.lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .all(|name| name.trim() == "lo")
}
