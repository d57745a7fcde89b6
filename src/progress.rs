//! `-v` on `wait` and `run --forever` (and `start --forever`): a
//! one-line progress note on stderr while the command waits — how long
//! it has waited, how many bytes the job(s) wrote so far — rewritten in
//! place at most once a second, and erased when the answer comes.
//!
//! Invariants
//! - Only when stderr is a terminal (decided once, in main): a pipe or a
//!   file gets nothing, so logs and scripts never see these notes.
//! - Never on stdout: the one document stays alone there.
//! - At most one note a second (`Note::due`); the sizes come from a
//!   stat of each log, nothing is read.
//! - The ticker thread is stopped and joined before the answer is
//!   printed (`Ticker`'s drop), so no note follows the answer.
//!
//! Rejected: notes on a pipe (they would end up in whatever captures
//! stderr); a note per wake (a chatty job would flood the terminal).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::job::Job;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turn the notes on for this process (main: `-v` and a terminal stderr).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// The rate limit: a note is due at most once per `EVERY`.
pub const EVERY: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Note {
    last: Option<Instant>,
}

impl Note {
    /// Is a note due at `now`? If so, it counts as written.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < EVERY => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

/// `1.5 KiB`, `12 B`, `3.2 MiB`.
fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// The note's text (without the line control).
pub fn line(elapsed: Duration, written: u64, jobs: usize) -> String {
    let what = if jobs == 1 {
        "1 job".to_string()
    } else {
        format!("{jobs} jobs")
    };
    format!(
        "agent-exec: waiting {} for {what}, {} written so far",
        crate::table::human_ms(elapsed.as_millis() as u64),
        bytes(written)
    )
}

/// A running ticker; dropping it stops it and erases its note.
pub struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start the notes for `jobs`, if they are enabled.
pub fn start(jobs: &[Job]) -> Option<Ticker> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let logs: Vec<_> = jobs
        .iter()
        .flat_map(|j| [j.stdout_path(), j.stderr_path()])
        .collect();
    let n = jobs.len();
    let (tx, rx) = mpsc::channel::<()>();
    let t0 = Instant::now();
    let thread = std::thread::spawn(move || {
        let mut note = Note::default();
        let mut shown = false;
        // Notes only once a second has passed: a quick answer gets none.
        note.due(t0);
        while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(EVERY) {
            if !note.due(Instant::now()) {
                continue;
            }
            let written: u64 = logs.iter().filter_map(|p| crate::observe::size_of(p)).sum();
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[K{}", line(t0.elapsed(), written, n));
            let _ = e.flush();
            shown = true;
        }
        if shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    });
    Some(Ticker {
        stop: Some(tx),
        thread: Some(thread),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_note_a_second() {
        let t0 = Instant::now();
        let mut n = Note::default();
        assert!(n.due(t0));
        let mut shown = 0;
        // Ten seconds of wakes every 10 ms: ten notes, never two within
        // a second.
        for i in 1..=1000u64 {
            if n.due(t0 + Duration::from_millis(10 * i)) {
                shown += 1;
            }
        }
        assert_eq!(shown, 10);
        assert!(!n.due(t0 + Duration::from_millis(10_500)));
        assert!(n.due(t0 + Duration::from_millis(11_000)));
    }

    #[test]
    fn note_text() {
        assert_eq!(
            line(Duration::from_millis(12_300), 1536, 1),
            "agent-exec: waiting 12s for 1 job, 1.5 KiB written so far"
        );
        assert_eq!(
            line(Duration::from_secs(65), 3, 2),
            "agent-exec: waiting 1m05s for 2 jobs, 3 B written so far"
        );
    }

    #[test]
    fn off_unless_enabled() {
        // Not enabled (the default, and what main decides without a
        // terminal): no thread, nothing written.
        assert!(start(&[Job::new("X", "/nonexistent".into())]).is_none());
    }
}
