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

/// A log as one reader sees it: the open file (None: it does not exist
/// yet), its size when opened, and its identity (`cursor::file_tag`, 0
/// without a file). Every read of one response goes through one `Log`,
/// so that its ranges, totals and cursor agree with each other even
/// while the job writes on.
pub struct Log {
    file: Option<File>,
    pub size: u64,
    pub tag: u32,
}

/// Open a log; a missing one reads as empty. A log that is a symlink or
/// not a regular file is an error (`unsafe_path`), never followed
/// (sys::open_read).
pub fn open_log(path: &Path) -> Result<Log> {
    let ctx = || format!("read {}", path.display());
    let f = match sys::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Log {
                file: None,
                size: 0,
                tag: 0,
            })
        }
        Err(e) => return Err(Error::io(ctx(), e)),
    };
    let size = f.metadata().map_err(|e| Error::io(ctx(), e))?.len();
    let tag = crate::cursor::file_tag(&f).map_err(|e| Error::io(ctx(), e))?;
    Ok(Log {
        file: Some(f),
        size,
        tag,
    })
}

fn read_at(f: &File, offset: u64, buf: &mut [u8]) -> usize {
    let mut got = 0usize;
    while got < buf.len() {
        match f.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    got
}

/// The length of `b` without an incomplete UTF-8 sequence at its end:
/// a lead byte followed by fewer continuation bytes than it announces.
/// Anything else (ASCII, a complete character, invalid bytes) ends where
/// it ends.
fn complete_len(b: &[u8]) -> usize {
    for back in 1..=b.len().min(4) {
        let i = b.len() - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        let need = match c {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if back < need { i } else { b.len() };
    }
    b.len()
}

/// How many continuation bytes (at most 3) start `b`: a window that
/// begins inside a character skips them so its text starts clean (the
/// skipped bytes belong to the range before it).
fn continuation_prefix(b: &[u8]) -> usize {
    b.iter().take(3).take_while(|&&c| c & 0xC0 == 0x80).count()
}

impl Log {
    /// Read `[from, from + len)`, clamped to the size seen at open.
    fn bytes(&self, from: u64, len: u64) -> Vec<u8> {
        let Some(f) = &self.file else {
            return Vec::new();
        };
        let len = len.min(self.size.saturating_sub(from));
        let mut buf = vec![0u8; len as usize];
        let got = read_at(f, from, &mut buf);
        buf.truncate(got);
        buf
    }

    /// Where a read that got `b` (starting at `from`) should stop, by the
    /// UTF-8 rule: an incomplete character at its end is left for the
    /// next read, which starts with it — unless no more can come (the
    /// job is `done` and the read reached the end of the log; such bytes
    /// are returned as U+FFFD), or it is all the read got (a budget
    /// under 4 bytes: returned lossily, so that reading always advances).
    fn cut(&self, from: u64, b: &[u8], done: bool) -> usize {
        let at_end = from + b.len() as u64 >= self.size;
        if done && at_end {
            return b.len();
        }
        match complete_len(b) {
            0 if !at_end => b.len(),
            n => n,
        }
    }

    /// At most `max` bytes from `from`: the head (`from` = 0), or the
    /// new output after a cursor. Never splits a character at its end
    /// (see `cut`), so the range ends exactly after the returned text.
    pub fn span(&self, from: u64, max: u64, done: bool) -> Slice {
        let b = self.bytes(from, max);
        let n = self.cut(from, &b, done);
        Slice {
            text: String::from_utf8_lossy(&b[..n]).into_owned(),
            range: [from, from + n as u64],
            total: self.size,
        }
    }

    /// The end of the log, at most `max` bytes and never before `not_before`
    /// (the end of a head already returned): None when nothing is left
    /// after it. The start skips into the next character when it falls
    /// inside one.
    pub fn end(&self, not_before: u64, max: u64, done: bool) -> Option<Slice> {
        let from = self.size.saturating_sub(max).max(not_before);
        if from >= self.size {
            return None;
        }
        let b = self.bytes(from, self.size - from);
        let skip = if from > not_before {
            continuation_prefix(&b)
        } else {
            0
        };
        let n = skip + self.cut(from + skip as u64, &b[skip..], done);
        (n > skip).then(|| Slice {
            text: String::from_utf8_lossy(&b[skip..n]).into_owned(),
            range: [from + skip as u64, from + n as u64],
            total: self.size,
        })
    }

    /// The last `lines` lines (0 = no line limit) within the last
    /// `max_bytes` bytes of the log. A trailing newline is kept.
    pub fn last_lines(&self, lines: u64, max_bytes: u64, done: bool) -> Slice {
        let start = self.size - self.size.min(max_bytes);
        let mut window = self.bytes(start, self.size - start);
        let keep = self.cut(start, &window, done);
        window.truncate(keep);
        let begin = if lines == 0 {
            if start > 0 {
                continuation_prefix(&window)
            } else {
                0
            }
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
        let end = start + window.len() as u64;
        Slice {
            text: String::from_utf8_lossy(&window[begin..]).into_owned(),
            range: [start + begin as u64, end],
            total: self.size,
        }
    }

    /// Check that a cursor's position in this stream still names a place
    /// in this very log: the same file (`tag`), not past its end.
    pub fn check_since(&self, name: &str, offset: u64, tag: u32) -> Result<()> {
        let bad = |why: String| Err(Error::InvalidCursor(format!("invalid cursor: {why}")));
        if tag == 0 {
            // Made before the log existed: position 0 of whatever is there now.
            return Ok(());
        }
        if self.file.is_none() {
            return bad(format!("{name} was deleted since the cursor was made"));
        }
        if self.tag != tag {
            return bad(format!("{name} was replaced since the cursor was made"));
        }
        if offset > self.size {
            return bad(format!(
                "it points at byte {offset} of {name}, which has only {} bytes",
                self.size
            ));
        }
        Ok(())
    }

    /// Search the lines of `[from, size)` in fixed chunks, keeping the
    /// last matches in a ring (`Grep`). Returns where the search stopped:
    /// the end of the log when the job is `done`, else the start of an
    /// unfinished last line (it is searched whole next time).
    pub fn grep(&self, from: u64, g: &mut Grep) -> u64 {
        let Some(f) = &self.file else {
            return from;
        };
        let mut chunk = vec![0u8; GREP_CHUNK];
        let mut line: Vec<u8> = Vec::with_capacity(GREP_LINE_MAX.min(4096));
        let mut line_start = from;
        let mut pos = from;
        while pos < self.size {
            let want = (self.size - pos).min(GREP_CHUNK as u64) as usize;
            let got = read_at(f, pos, &mut chunk[..want]);
            if got == 0 {
                break;
            }
            let mut rest = &chunk[..got];
            let mut at = pos;
            while !rest.is_empty() {
                let room = GREP_LINE_MAX - line.len();
                let scan = &rest[..rest.len().min(room)];
                match scan.iter().position(|&b| b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&scan[..i]);
                        g.offer(&line, line_start);
                        line.clear();
                        at += i as u64 + 1;
                        rest = &rest[i + 1..];
                        line_start = at;
                    }
                    None => {
                        line.extend_from_slice(scan);
                        at += scan.len() as u64;
                        rest = &rest[scan.len()..];
                        if line.len() == GREP_LINE_MAX {
                            // D32: an over-long line is matched in pieces.
                            g.offer(&line, line_start);
                            line.clear();
                            line_start = at;
                        }
                    }
                }
            }
            pos += got as u64;
        }
        if line.is_empty() {
            return pos;
        }
        if g.done {
            g.offer(&line, line_start);
            pos
        } else {
            line_start
        }
    }
}

/// Bytes read per step of a grep: the whole buffer a search holds.
const GREP_CHUNK: usize = 64 * 1024;
/// Lines longer than this are matched in pieces of this size (as
/// output-match does, D32), so a log without newlines costs no more.
pub const GREP_LINE_MAX: usize = 64 * 1024;

/// What `tail --grep` looks for.
pub enum Pattern {
    Contains(String),
    Regex(regex_lite::Regex),
}

impl Pattern {
    pub fn new(pattern: &str, regex: bool) -> Result<Pattern> {
        if !regex {
            return Ok(Pattern::Contains(pattern.to_string()));
        }
        regex_lite::Regex::new(pattern)
            .map(Pattern::Regex)
            .map_err(|e| Error::InvalidPattern(format!("invalid regex '{pattern}': {e}")))
    }

    fn is_match(&self, line: &str) -> bool {
        match self {
            Pattern::Contains(p) => line.contains(p.as_str()),
            Pattern::Regex(r) => r.is_match(line),
        }
    }
}

/// One matching line: its stream, its text without the newline, and the
/// byte offset of its start in that stream.
#[derive(Debug, Clone, Serialize)]
pub struct Match {
    pub stream: &'static str,
    pub line: String,
    pub offset: u64,
}

/// The search state of one stream: the last `keep` matches (0 = no count
/// limit) holding at most `max_bytes` of line text between them. A single
/// line longer than `max_bytes` is cut to it (at a character boundary).
pub struct Grep<'a> {
    pub pattern: &'a Pattern,
    pub stream: &'static str,
    pub keep: u64,
    pub max_bytes: u64,
    /// The job is terminal: an unfinished last line is final too.
    pub done: bool,
    pub ring: std::collections::VecDeque<Match>,
    bytes: u64,
}

impl<'a> Grep<'a> {
    pub fn new(
        pattern: &'a Pattern,
        stream: &'static str,
        keep: u64,
        max_bytes: u64,
        done: bool,
    ) -> Grep<'a> {
        Grep {
            pattern,
            stream,
            keep,
            max_bytes,
            done,
            ring: std::collections::VecDeque::new(),
            bytes: 0,
        }
    }

    fn offer(&mut self, line: &[u8], offset: u64) {
        let text = String::from_utf8_lossy(line);
        if !self.pattern.is_match(&text) {
            return;
        }
        let mut text = text.into_owned();
        // Empty lines cost a byte, so that the ring stays bounded even
        // with no count limit and a pattern that matches them.
        if text.len() as u64 > self.max_bytes {
            let mut n = self.max_bytes as usize;
            while !text.is_char_boundary(n) {
                n -= 1;
            }
            text.truncate(n);
        }
        self.bytes += (text.len() as u64).max(1);
        self.ring.push_back(Match {
            stream: self.stream,
            line: text,
            offset,
        });
        while (self.keep > 0 && self.ring.len() as u64 > self.keep) || self.bytes > self.max_bytes {
            match self.ring.pop_front() {
                Some(m) => self.bytes -= (m.line.len() as u64).max(1),
                None => break,
            }
        }
    }
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
        let log = open_log(&p).unwrap();
        let s = log.span(0, 5, true);
        assert_eq!(s.text, "hello");
        assert_eq!(s.range, [0, 5]);
        assert_eq!(s.total, 12);
        let s = log.span(0, 0, true);
        assert_eq!((s.text.as_str(), s.range), ("", [0, 0]));
        let missing = open_log(Path::new("/nonexistent/x")).unwrap();
        let s = missing.span(0, 10, true);
        assert_eq!((s.total, s.range, missing.tag), (0, [0, 0], 0));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn tail_lines_and_window() {
        let p = file_with("tail", b"a\nbb\nccc\n");
        let log = open_log(&p).unwrap();
        let s = log.last_lines(2, 1000, true);
        assert_eq!(s.text, "bb\nccc\n");
        assert_eq!(s.range, [2, 9]);
        let s = log.last_lines(0, 4, true);
        assert_eq!(s.text, "ccc\n");
        assert_eq!(s.range, [5, 9]);
        let s = log.last_lines(10, 1000, true);
        assert_eq!(s.text, "a\nbb\nccc\n");
        let s = log.last_lines(1, 3, true);
        assert_eq!(s.text, "cc\n");
        assert_eq!(s.range[1] - s.range[0], s.text.len() as u64);
        std::fs::remove_file(p).unwrap();
        let p = file_with("tail2", b"x\ny");
        assert_eq!(open_log(&p).unwrap().last_lines(1, 100, true).text, "y");
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn utf8_is_never_split_at_the_end_of_a_read() {
        // "aé€" = 61 | c3 a9 | e2 82 ac
        let p = file_with("utf8", "aé€".as_bytes());
        let log = open_log(&p).unwrap();
        // A budget that cuts "é": stop before it, whatever the state.
        let s = log.span(0, 2, true);
        assert_eq!((s.text.as_str(), s.range), ("a", [0, 1]));
        let s = log.span(1, 4, true);
        assert_eq!((s.text.as_str(), s.range), ("é", [1, 3]));
        // A budget below one character still advances (lossily).
        let s = log.span(3, 1, true);
        assert_eq!(s.range, [3, 4]);
        // The end of a running job's log: an incomplete character waits.
        std::fs::write(&p, &"aé€".as_bytes()[..5]).unwrap();
        let log = open_log(&p).unwrap();
        let s = log.span(0, 100, false);
        assert_eq!((s.text.as_str(), s.range), ("aé", [0, 3]));
        assert_eq!(log.span(3, 100, false).range, [3, 3]);
        // ...and is final once the job is done.
        assert_eq!(log.span(3, 100, true).range, [3, 5]);
        // The end window starts after a split character.
        let s = log.end(0, 3, true).unwrap();
        assert_eq!(s.range, [3, 5]);
        let s = log.end(0, 4, true).unwrap();
        assert_eq!((s.text.as_str(), s.range[0]), ("é\u{fffd}", 1));
        assert!(log.end(5, 4, true).is_none());
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn grep_keeps_the_last_matches_and_stops_before_an_open_line() {
        let p = file_with("grep", b"err 1\nok\nerr 2\nerr 3\nerr 4 (open)");
        let log = open_log(&p).unwrap();
        let pat = Pattern::new("err", false).unwrap();
        let mut g = Grep::new(&pat, "stdout", 2, 1000, false);
        let end = log.grep(0, &mut g);
        let got: Vec<(String, u64)> = g.ring.iter().map(|m| (m.line.clone(), m.offset)).collect();
        assert_eq!(got, [("err 2".into(), 9), ("err 3".into(), 15)]);
        assert_eq!(end, 21);
        let mut g = Grep::new(&pat, "stdout", 0, 1000, true);
        assert_eq!(log.grep(end, &mut g), log.size);
        assert_eq!(g.ring[0].line, "err 4 (open)");
        let re = Pattern::new("^err [13]$", true).unwrap();
        let mut g = Grep::new(&re, "stdout", 0, 6, true);
        log.grep(0, &mut g);
        let got: Vec<&str> = g.ring.iter().map(|m| m.line.as_str()).collect();
        assert_eq!(got, ["err 3"]);
        assert_eq!(
            Pattern::new("(", true).err().unwrap().code(),
            "invalid_pattern"
        );
        std::fs::remove_file(p).unwrap();
    }
}
