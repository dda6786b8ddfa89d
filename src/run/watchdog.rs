//! The step watchdog: a thread that watches what the training loop is
//! doing (a train step, an evaluation, a checkpoint copy), reports an
//! activity that runs far longer than the median of its kind (a collective
//! waiting on a lost peer, a stuck device), and ends the process when one
//! exceeds the step timeout, rather than letting a hung run wait forever.
//!
//! The timeout ends the process with `_exit` and status [`TIMEOUT_EXIT_CODE`]:
//! the hung thread is inside XLA, so neither unwinding nor exit handlers can
//! be trusted to return. Checkpoints stay consistent because every save is
//! atomic; the metrics file is flushed line by line.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit status of a run ended by the watchdog (that of coreutils'
/// `timeout`).
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// An activity is reported as slow once it has run this many times the
/// median duration of its kind.
pub const SLOW_FACTOR: f64 = 10.0;

/// Completed activities of a kind needed before a median is trusted.
const MIN_SAMPLES: usize = 5;

/// Durations kept per kind for the median (the most recent ones).
const WINDOW: usize = 100;

/// Watches the training loop; see the module docs. Stopped when dropped.
pub struct Watchdog {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    current: Option<Activity>,
    durations: BTreeMap<&'static str, Vec<f64>>,
    finished: bool,
}

struct Activity {
    kind: &'static str,
    step: u64,
    started: Instant,
    reported: bool,
}

impl Watchdog {
    /// Starts the watchdog thread; an activity running longer than
    /// `timeout` ends the process.
    pub fn start(timeout: Duration) -> Watchdog {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let watched = Arc::clone(&shared);
        let thread = std::thread::spawn(move || watch(&watched, timeout));
        Watchdog {
            shared,
            thread: Some(thread),
        }
    }

    /// Marks the start of an activity of `kind` (`train step`, `eval`,
    /// `checkpoint copy`) working towards step `step`.
    pub fn begin(&self, kind: &'static str, step: u64) {
        self.lock().current = Some(Activity {
            kind,
            step,
            started: Instant::now(),
            reported: false,
        });
    }

    /// Marks the end of the current activity and records its duration.
    pub fn end(&self) {
        let mut state = self.lock();
        if let Some(activity) = state.current.take() {
            let seconds = activity.started.elapsed().as_secs_f64();
            let recent = state.durations.entry(activity.kind).or_default();
            if recent.len() == WINDOW {
                recent.remove(0);
            }
            recent.push(seconds);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.lock().finished = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watchdog thread: wakes a few times per timeout (at least once a
/// second) and checks the current activity.
fn watch(shared: &Shared, timeout: Duration) {
    let poll = (timeout / 4).min(Duration::from_secs(1));
    let mut state = shared
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    while !state.finished {
        state = shared
            .wake
            .wait_timeout(state, poll)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        let State {
            current, durations, ..
        } = &mut *state;
        let Some(activity) = current else { continue };
        let elapsed = activity.started.elapsed();
        if elapsed > timeout {
            eprintln!(
                "watchdog: {} of step {} has run for {}, longer than the step timeout of {}; exiting with status {TIMEOUT_EXIT_CODE}",
                activity.kind,
                activity.step,
                seconds(elapsed.as_secs_f64()),
                seconds(timeout.as_secs_f64())
            );
            // SAFETY: `_exit` ends the process at once; it touches no Rust
            // state, and the hung thread never returns to observe it.
            unsafe { libc::_exit(TIMEOUT_EXIT_CODE) };
        }
        let median = durations.get(activity.kind).and_then(|d| median(d));
        if let Some(median) = median
            && !activity.reported
            && is_slow(elapsed.as_secs_f64(), median)
        {
            activity.reported = true;
            eprintln!(
                "watchdog: {} of step {} has run for {}, {:.0}x the median of {} (a hung collective or device?); the run ends after {}",
                activity.kind,
                activity.step,
                seconds(elapsed.as_secs_f64()),
                elapsed.as_secs_f64() / median,
                seconds(median),
                seconds(timeout.as_secs_f64())
            );
        }
    }
}

/// `s` seconds with three significant digits, in seconds or milliseconds
/// or microseconds, so that short durations do not print as 0.
fn seconds(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.3} s")
    } else if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.3} µs", s * 1e6)
    }
}

/// The median of `durations`, once there are enough of them to trust.
fn median(durations: &[f64]) -> Option<f64> {
    if durations.len() < MIN_SAMPLES {
        return None;
    }
    let mut sorted = durations.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(sorted[sorted.len() / 2])
}

/// Whether an activity running for `elapsed` seconds is far slower than
/// the `median` of its kind.
fn is_slow(elapsed: f64, median: f64) -> bool {
    elapsed > SLOW_FACTOR * median
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_needs_enough_samples() {
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), None);
        assert_eq!(median(&[5.0, 1.0, 3.0, 2.0, 4.0]), Some(3.0));
    }

    #[test]
    fn slow_means_over_ten_times_the_median() {
        assert!(!is_slow(1.0, 0.1));
        assert!(is_slow(1.01, 0.1));
    }
}
