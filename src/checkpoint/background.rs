//! Asynchronous checkpoints: the training loop hands a checkpoint already
//! copied to host memory to a background thread, which serializes it,
//! fsyncs it, renames it into place and prunes old ones, while the next
//! steps run.
//!
//! The writing thread runs at the lowest CPU priority, so on a host with
//! few cores it yields to XLA's compute threads. At most one save is in
//! flight: starting a second waits for the first,
//! so host memory holds at most two copies of the state. A save is atomic
//! whether it runs here or in the foreground ([`Checkpointer::save`]): a
//! crash mid-write leaves the previous checkpoints untouched.

use super::{Checkpoint, CheckpointError, Checkpointer};
use std::path::PathBuf;
use std::thread::JoinHandle;

/// Saves checkpoints with a [`Checkpointer`] on a background thread, one
/// at a time, logging each saved checkpoint on stderr.
///
/// Dropping it waits for the save in flight (its error, if any, is logged),
/// so a run that stops on an error still finishes writing what it
/// committed to write.
#[derive(Debug)]
pub struct BackgroundSaver {
    checkpointer: Checkpointer,
    in_flight: Option<JoinHandle<Result<PathBuf, CheckpointError>>>,
}

impl BackgroundSaver {
    /// A saver writing with `checkpointer`.
    pub fn new(checkpointer: Checkpointer) -> Self {
        BackgroundSaver {
            checkpointer,
            in_flight: None,
        }
    }

    /// The checkpointer that writes.
    pub fn checkpointer(&self) -> &Checkpointer {
        &self.checkpointer
    }

    /// Starts writing `checkpoint` in the background, after the save in
    /// flight (if any) has finished. Returns the error of that earlier save,
    /// in which case `checkpoint` is not written.
    pub fn save(&mut self, checkpoint: Checkpoint) -> Result<(), CheckpointError> {
        self.wait()?;
        let checkpointer = self.checkpointer.clone();
        self.in_flight = Some(std::thread::spawn(move || {
            lower_priority();
            let path = checkpointer.save(&checkpoint)?;
            eprintln!(
                "saved checkpoint {} (step {})",
                path.display(),
                checkpoint.step
            );
            Ok(path)
        }));
        Ok(())
    }

    /// Waits for the save in flight; returns its directory, or `None` when
    /// there was none.
    pub fn wait(&mut self) -> Result<Option<PathBuf>, CheckpointError> {
        match self.in_flight.take() {
            None => Ok(None),
            Some(handle) => match handle.join() {
                Ok(result) => result.map(Some),
                Err(_) => Err(CheckpointError::SaveThread {
                    dir: self.checkpointer.dir().to_path_buf(),
                }),
            },
        }
    }
}

/// Gives the calling thread the lowest CPU priority (nice 19), so that on
/// a host with few cores the save yields to XLA's compute threads and the
/// training step slows as little as possible; the save then takes longer,
/// which one save in flight bounds. Best effort: a failure leaves the
/// priority as it was.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; on Linux
    // PRIO_PROCESS with a thread id sets that thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

impl Drop for BackgroundSaver {
    fn drop(&mut self) {
        if let Err(e) = self.wait() {
            eprintln!("{e}");
        }
    }
}
