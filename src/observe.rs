//! Reading a job from outside: bounded log slices, the liveness check,
//! and waiting for a terminal state.
//!
//! Invariants
//! - Head and tail read at most what they return: one `pread` of at most
//!   `max_bytes` from the right offset, whatever the log's size.
//! - A job never reads as `running` once its supervisor is gone: the
//!   supervisor holds an exclusive flock on `<job>/lock` for the whole
//!   run, so a reader that *obtains* that lock while state.json still
//!   says `running` knows no supervisor is left, and records `failed`
//!   with `failure.code = "supervisor_lost"` while holding it.
//! - Waiting wakes on events (`wait_terminal`): the job lock for
//!   short-lived commands, an inotify watch in the server.
//!
//! Rejected: a fixed poll interval (0.2.3 slept 1 s between reads);
//! inotify in the CLI (closing the watch costs 5-15 ms at exit); lock
//! threads in the server (one blocked thread per abandoned wait).

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::{Job, State, Status};
use crate::sys;

/// A slice of a log: lossy UTF-8 text, its byte range, the file's size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Slice {
    pub text: String,
    pub range: [u64; 2],
    pub total: u64,
}

/// The log and its size; Ok(None) when it does not exist (yet). A log
/// that is a symlink or not a regular file is an error (`unsafe_path`),
/// never followed (sys::open_read).
fn open_sized(path: &Path) -> Result<Option<(File, u64)>> {
    let ctx = || format!("read {}", path.display());
    let f = match sys::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(ctx(), e)),
    };
    let size = f.metadata().map_err(|e| Error::io(ctx(), e))?.len();
    Ok(Some((f, size)))
}

fn read_at(f: &File, offset: u64, len: u64) -> Vec<u8> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0usize;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    buf.truncate(got);
    buf
}

/// The first `max_bytes` of a log.
pub fn head(path: &Path, max_bytes: u64) -> Result<Slice> {
    let Some((f, size)) = open_sized(path)? else {
        return Ok(Slice::default());
    };
    let n = size.min(max_bytes);
    let bytes = read_at(&f, 0, n);
    Ok(Slice {
        range: [0, bytes.len() as u64],
        text: String::from_utf8_lossy(&bytes).into_owned(),
        total: size,
    })
}

/// The last `lines` lines (0 = no line limit) within the last
/// `max_bytes` bytes of a log. A trailing newline is kept.
pub fn tail(path: &Path, lines: u64, max_bytes: u64) -> Result<Slice> {
    let Some((f, size)) = open_sized(path)? else {
        return Ok(Slice::default());
    };
    let start = size - size.min(max_bytes);
    let window = read_at(&f, start, size - start);
    let begin = if lines == 0 {
        0
    } else {
        // Ignore one trailing newline, then walk back over `lines` breaks.
        let body = window.strip_suffix(b"\n").unwrap_or(&window);
        let mut seen = 0u64;
        let mut begin = 0usize;
        for (i, &b) in body.iter().enumerate().rev() {
            if b == b'\n' {
                seen += 1;
                if seen == lines {
                    begin = i + 1;
                    break;
                }
            }
        }
        begin
    };
    let kept = &window[begin..];
    let end = start + window.len() as u64;
    Ok(Slice {
        text: String::from_utf8_lossy(kept).into_owned(),
        range: [start + begin as u64, end],
        total: size.max(end),
    })
}

/// At most `max_bytes` of a log from byte `offset` on (what it gained
/// since `offset`): one bounded read.
pub fn read_from(path: &Path, offset: u64, max_bytes: u64) -> Result<Slice> {
    let Some((f, size)) = open_sized(path)? else {
        return Ok(Slice::default());
    };
    let start = offset.min(size);
    let bytes = read_at(&f, start, (size - start).min(max_bytes));
    Ok(Slice {
        range: [start, start + bytes.len() as u64],
        text: String::from_utf8_lossy(&bytes).into_owned(),
        total: size,
    })
}

/// The size of a file, if it exists.
pub fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Read state.json, reconciling a dead supervisor into `failed`:
/// - `running` with a free job lock: the supervisor died. The record says
///   `supervisor_lost`, and the job's process group (its root already got
///   SIGKILL from the kernel when the supervisor died, see
///   `sys::die_with_parent`) is killed now, so that no workload runs on
///   under a record that says it ended.
/// - `created` with a job lock that exists and is free: a launch began
///   (`run` takes the lock before it writes meta.json; `start` creates it
///   already locked) and nobody holds it any more, so the supervisor never
///   ran the job: `launch_lost`. A `create`d job has no lock file.
pub fn current_state(job: &Job) -> Result<State> {
    let st = job.read_state()?;
    if !matches!(st.status(), Status::Running | Status::Created) {
        return Ok(st);
    }
    // Jobs written by other tools may have no lock file: trust the state.
    let Some(lock) = job.open_lock() else {
        return Ok(st);
    };
    if !sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
        return Ok(st);
    }
    // We hold the lock: no supervisor can write any more. Re-read under
    // the lock, since it may have finished just before releasing it.
    let mut st = job.read_state()?;
    match st.status() {
        Status::Running => {
            let killed = kill_orphans(&st);
            let tail = if killed > 0 {
                format!("; its {killed} remaining process(es) were killed")
            } else {
                String::new()
            };
            st.fail(
                "supervisor_lost",
                format!("the job's supervisor exited without recording a result{tail}"),
            );
            job.write_state(&st, true)?;
        }
        Status::Created => {
            st.fail(
                "launch_lost",
                "the job's launch began but its supervisor was gone before the job ran",
            );
            job.write_state(&st, true)?;
        }
        _ => {}
    }
    let _ = sys::unlock(&lock);
    Ok(st)
}

/// SIGKILL what is left of a job whose supervisor is gone, and wait
/// (briefly) until it is gone: a caller told `failed` finds no live
/// process of the job. Returns how many processes were signalled.
fn kill_orphans(st: &State) -> usize {
    let members = st.live_processes();
    if members.is_empty() {
        return 0;
    }
    if let Some(pgid) = st.pid {
        let _ = sys::kill_group(pgid, libc::SIGKILL);
    }
    let until = Instant::now() + Duration::from_millis(500);
    while !st.live_processes().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    members.len()
}

/// How a process waits for a job's end (see `wait_terminal`).
static WATCH_MODE: AtomicBool = AtomicBool::new(false);

/// Long-lived processes (the HTTP server) wait with inotify watches
/// instead of lock-holding helper threads, which they could not abandon.
pub fn use_watches() {
    WATCH_MODE.store(true, Ordering::Relaxed);
}

/// Wait until the job is terminal or `deadline` passes (None = forever).
/// Returns the last state read.
///
/// A finished job costs one read. Otherwise the wait is event-driven:
/// - by default (short-lived commands), a helper thread blocks in
///   flock(LOCK_SH) on the job lock, which the supervisor releases right
///   after publishing the terminal state (or the kernel releases when it
///   dies); a thread still blocked at the deadline dies with the process;
/// - in the server, an inotify watch on the job directory sees the
///   rename of state.json. (Closing an inotify descriptor waits out an
///   SRCU grace period, 5-15 ms here, which a CLI would pay at exit.)
///
/// A `created` job has no supervisor: it is polled every 50 ms.
pub fn wait_terminal(job: &Job, deadline: Option<Instant>) -> Result<State> {
    wait_terminal_or(job, deadline, None)
}

/// `wait_terminal`, also ending early (with the current state) when
/// `give_up` becomes readable or hangs up: the server passes a client's
/// socket, so that a request whose client has left stops waiting at once
/// instead of holding its connection slot until the job ends. Only the
/// watching mode (the server's) looks at it.
pub fn wait_terminal_or(
    job: &Job,
    deadline: Option<Instant>,
    give_up: Option<std::os::fd::RawFd>,
) -> Result<State> {
    let st = current_state(job)?;
    if st.status().is_terminal() {
        return Ok(st);
    }
    if WATCH_MODE.load(Ordering::Relaxed) {
        wait_watching(job, deadline, give_up)
    } else {
        wait_on_lock(job, st, deadline)
    }
}

/// Time left before `deadline`; None when it has passed.
fn left(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero()),
        None => Some(Duration::from_secs(3600)),
    }
}

/// `st`: the state just read (not terminal).
fn wait_on_lock(job: &Job, mut st: State, deadline: Option<Instant>) -> Result<State> {
    let tick = Duration::from_millis(50);
    loop {
        let Some(left) = left(deadline) else {
            return Ok(st);
        };
        match (st.status(), job.open_lock()) {
            (Status::Running, Some(lock)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    let got = sys::lock_shared(&lock).is_ok();
                    // Let go before reporting, so the reader may take the
                    // lock (to record a lost supervisor) at once.
                    let _ = sys::unlock(&lock);
                    let _ = tx.send(got);
                });
                match rx.recv_timeout(left) {
                    Ok(true) => {}
                    Ok(false) => std::thread::sleep(left.min(tick)),
                    Err(_) => return current_state(job),
                }
            }
            // Created (no supervisor yet), or no lock file (written by
            // another tool): look again shortly.
            _ => std::thread::sleep(left.min(tick)),
        }
        st = current_state(job)?;
        if st.status().is_terminal() {
            return Ok(st);
        }
    }
}

fn wait_watching(
    job: &Job,
    deadline: Option<Instant>,
    give_up: Option<std::os::fd::RawFd>,
) -> Result<State> {
    // Watch first, then read: a change between the two still wakes us.
    let watch = sys::watch_dir(&job.dir).ok().map(File::from);
    let mut drain = [0u8; 4096];
    loop {
        let st = current_state(job)?;
        if st.status().is_terminal() {
            return Ok(st);
        }
        let Some(left) = left(deadline) else {
            return Ok(st);
        };
        // `created` jobs have no supervisor yet: tick faster. The slow
        // tick only backs up a supervisor that died without writing.
        let tick = if st.status() == Status::Created {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(200)
        };
        let ms = left.min(tick).as_millis().max(1) as i32;
        let mut fds = Vec::with_capacity(2);
        if let Some(f) = &watch {
            fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
        }
        if let Some(fd) = give_up {
            fds.push(sys::poll_fd(fd, sys::POLLIN));
        }
        if fds.is_empty() {
            std::thread::sleep(Duration::from_millis(ms as u64));
            continue;
        }
        sys::poll(&mut fds, ms).map_err(|e| Error::io("poll", e))?;
        if let Some(f) = &watch {
            if fds[0].revents != 0 {
                while matches!((&*f).read(&mut drain), Ok(n) if n > 0) {}
            }
        }
        if give_up.is_some() && fds.last().is_some_and(|p| p.revents != 0) {
            return current_state(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(tag: &str, content: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ae-obs-{tag}-{}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn head_is_bounded() {
        let p = file_with("head", b"hello world\n");
        let s = head(&p, 5).unwrap();
        assert_eq!(s.text, "hello");
        assert_eq!(s.range, [0, 5]);
        assert_eq!(s.total, 12);
        let s = head(&p, 0).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("", [0, 0]));
        let missing = head(Path::new("/nonexistent/x"), 10).unwrap();
        assert_eq!((missing.total, missing.range), (0, [0, 0]));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn tail_lines_and_window() {
        let p = file_with("tail", b"a\nbb\nccc\n");
        let s = tail(&p, 2, 1000).unwrap();
        assert_eq!(s.text, "bb\nccc\n");
        assert_eq!(s.range, [2, 9]);
        let s = tail(&p, 0, 4).unwrap();
        assert_eq!(s.text, "ccc\n");
        assert_eq!(s.range, [5, 9]);
        let s = tail(&p, 10, 1000).unwrap();
        assert_eq!(s.text, "a\nbb\nccc\n");
        let s = tail(&p, 1, 3).unwrap();
        assert_eq!(s.text, "cc\n");
        assert_eq!(s.range[1] - s.range[0], s.text.len() as u64);
        std::fs::remove_file(p).unwrap();
        let p = file_with("tail2", b"x\ny");
        assert_eq!(tail(&p, 1, 100).unwrap().text, "y");
        std::fs::remove_file(p).unwrap();
    }
}
