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
//! - Waiting for output (`wait_output`: readiness; `Follower`: tail
//!   --follow) reads the logs, never asks the supervisor for anything: it
//!   wakes on each write through an inotify watch on the job directory
//!   (`sys::watch_dir_writes`) and on the job's end through its lock
//!   (`Waker`), and reads only the bytes after where it stopped, in
//!   64 KiB pieces, so memory is bounded whatever the log's size.
//! - A job run with `--retry` is one run to these readers until its last
//!   attempt ends: once the state names a later attempt, the logs held
//!   (complete: the archive moved them after their attempt ended, and
//!   the open files are still them) are read to their end, then the
//!   next attempt's logs from their start (`next_logs`; an attempt in
//!   between from `runs/<n>/` while kept). A `restart` is another run:
//!   `runs::answer_for` ends the read with the run it began on instead.
//! - A stop signal (HUP, INT, TERM, held by a command that waits) ends
//!   the caller's own wait (`until_stopped`) as its deadline passing
//!   would, at once and with the same answer; a wait inside another step
//!   (a restart's stop of the old run) is not cut short by it.
//!
//! Rejected: a fixed poll interval (0.2.3 slept 1 s between reads);
//! inotify for a plain wait in the CLI (closing a watch can cost up to
//! 15-18 ms, which a 2 ms job would pay; the output waits need it, and
//! leave its close to the process's exit, after the answer); lock
//! threads in the server (one blocked thread per abandoned wait); a tee
//! of the job's pipes to readers in the supervisor (work, and back
//! pressure, on the job's path).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::job::{Job, State, Status};
use crate::sys;

/// A slice of a log: lossy UTF-8 text, its byte range, the log's size
/// (every byte the job wrote to it), the bytes a capped log dropped, and
/// the bytes this read skipped because they were dropped (it began in
/// the gap, see `logcap`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Slice {
    pub text: String,
    pub range: [u64; 2],
    pub total: u64,
    #[serde(skip)]
    pub dropped: u64,
    #[serde(skip)]
    pub skipped: u64,
}

/// A log as one reader sees it: the open file (None: it does not exist
/// yet), its size when opened, and its identity (`cursor::file_tag`, 0
/// without a file). Every read of one response goes through one `Log`,
/// so that its ranges, totals and cursor agree with each other even
/// while the job writes on.
///
/// Sizes, ranges and offsets are logical (bytes the job wrote). A capped
/// log (`logcap`) maps them to the file through its gap record, taken
/// with the size and checked again after every read: a read that raced
/// a compaction is done again with the new record, never returned. A
/// read never spans the gap: it stops at the end of the head, and one
/// that starts in the dropped bytes starts at the tail instead.
pub struct Log {
    file: Option<File>,
    pub size: u64,
    pub tag: u32,
    /// Bytes dropped from the middle, when the size was taken.
    pub dropped: u64,
    /// A capped log: its gap records, slot, and job directory.
    gaps: Option<CapRecords>,
    gap: std::cell::Cell<crate::logcap::Gap>,
}

/// A capped log's gap records: the file, the log's slot in it, and the
/// job directory.
type CapRecords = (crate::logcap::Gaps, usize, std::path::PathBuf);

/// The gap records of a stream log in a job directory (None: not one,
/// or not capped). A `log.gaps` that cannot be read (a symlink, a
/// directory) is an error: read as "not capped", the log's marker line
/// passed for output and its totals lost every dropped byte.
fn gaps_of(path: &Path) -> Result<Option<CapRecords>> {
    use crate::logcap;
    let slot = match path.file_name().and_then(|n| n.to_str()) {
        Some(crate::job::STDOUT) => logcap::STDOUT,
        Some(crate::job::STDERR) => logcap::STDERR,
        _ => return Ok(None),
    };
    let Some(dir) = path.parent() else {
        return Ok(None);
    };
    let gaps = logcap::Gaps::open(dir)
        .map_err(|e| Error::io(format!("read {}", dir.join(logcap::GAPS).display()), e))?;
    Ok(gaps.map(|g| (g, slot, dir.to_path_buf())))
}

/// Open a log; a missing one reads as empty. A log that is a symlink or
/// not a regular file is an error (`unsafe_path`), never followed
/// (sys::open_read).
pub fn open_log(path: &Path) -> Result<Log> {
    let ctx = || format!("read {}", path.display());
    // The gap records first: they exist before a capped log does.
    let gaps = gaps_of(path)?;
    let f = match sys::open_read(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Log {
                file: None,
                size: 0,
                tag: 0,
                dropped: 0,
                gaps: None,
                gap: Default::default(),
            })
        }
        Err(e) => return Err(Error::io(ctx(), e)),
    };
    let tag = crate::cursor::file_tag(&f).map_err(|e| Error::io(ctx(), e))?;
    let mut log = Log {
        file: Some(f),
        size: 0,
        tag,
        dropped: 0,
        gaps,
        gap: Default::default(),
    };
    log.take_size().map_err(|e| Error::io(ctx(), e))?;
    Ok(log)
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
pub(crate) fn complete_len(b: &[u8]) -> usize {
    for back in 1..=b.len().min(4) {
        let i = b.len() - back;
        if b[i] & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back
        }
        return if may_complete(&b[i..]) { i } else { b.len() };
    }
    b.len()
}

/// Can `part` (a byte that is no continuation byte, then the
/// continuation bytes after it) still become one valid UTF-8 character
/// when more bytes come? Only a lead byte that starts one (C2–DF, E0–EF,
/// F0–F4) with fewer bytes than it announces, whose second byte, if
/// there, is in the range that lead allows (no overlong form, surrogate
/// or code point past U+10FFFF). Anything else can never become text:
/// it is shown as U+FFFD at once, not held back for a next read.
fn may_complete(part: &[u8]) -> bool {
    let len = seq_len(part[0]);
    let second = match part[0] {
        0xE0 => 0xA0..=0xBF,
        0xED => 0x80..=0x9F,
        0xF0 => 0x90..=0xBF,
        0xF4 => 0x80..=0x8F,
        _ => 0x80..=0xBF,
    };
    part.len() < len && part.get(1).map_or(true, |c| second.contains(c))
}

/// How many bytes a character that `lead` starts has: 1 for ASCII and
/// for bytes that start no valid character (C0, C1, F5–FF, and the
/// continuation bytes).
fn seq_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

/// `b[from..]` as lossy UTF-8 text, for an answer. Valid text (nearly
/// all output) becomes the string in place, with nothing copied: a log
/// slice as large as the memory left still makes an answer. Invalid
/// bytes are replaced in a string reserved fallibly (U+FFFD is three
/// bytes for one), so that too is `io_error` (ENOMEM) rather than an
/// abort when memory runs out.
pub(crate) fn text_of(mut b: Vec<u8>, from: usize) -> Result<String> {
    b.drain(..from);
    match String::from_utf8(b) {
        Ok(s) => Ok(s),
        Err(e) => {
            let b = e.into_bytes();
            let mut s = String::new();
            s.try_reserve(b.len())
                .map_err(|_| out_of_memory("convert the log's text"))?;
            for chunk in b.utf8_chunks() {
                s.try_reserve(chunk.valid().len() + 3)
                    .map_err(|_| out_of_memory("convert the log's text"))?;
                s.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    s.push(char::REPLACEMENT_CHARACTER);
                }
            }
            Ok(s)
        }
    }
}

/// The error of an allocation the caller's budget asked for and the
/// memory left (`ulimit -v`, a cgroup) could not give: `io_error` with
/// ENOMEM (not retryable as it stands: a smaller budget may fit).
pub fn out_of_memory(doing: &str) -> Error {
    Error::io(doing, std::io::Error::from_raw_os_error(libc::ENOMEM))
}

/// When `b` is nothing but the start of one character (a read budget
/// smaller than that character): the character's whole length.
fn cut_first_char(b: &[u8]) -> Option<usize> {
    let need = seq_len(*b.first()?);
    (complete_len(b) == 0 && need > b.len()).then_some(need)
}

/// How many continuation bytes (at most 3) start `b`: a window that
/// begins inside a character skips them so its text starts clean (the
/// skipped bytes belong to the range before it).
pub(crate) fn continuation_prefix(b: &[u8]) -> usize {
    b.iter().take(3).take_while(|&&c| c & 0xC0 == 0x80).count()
}

/// Of `after`, the continuation bytes that start a window, how many
/// belong to a character begun in `before` (up to 3 bytes just before
/// the window): the rest of a character, or of one invalid sequence as
/// lossy decoding reads it (one U+FFFD), split by the window's start.
/// Those go with the range before, so the window's text starts on a
/// character. Continuation bytes no lead byte announces are invalid
/// bytes of their own, each a U+FFFD of the window's text: they stay
/// (skipped as if split, a budget of 3 over 4 of them read nothing).
pub(crate) fn straddling(before: &[u8], after: &[u8]) -> usize {
    let Some(lead) = before.iter().rposition(|&c| c & 0xC0 != 0x80) else {
        return 0;
    };
    let mut seq = before[lead..].to_vec();
    seq.extend_from_slice(after);
    let first = seq.utf8_chunks().next().map_or(0, |c| {
        c.valid()
            .chars()
            .next()
            .map_or(c.invalid().len(), char::len_utf8)
    });
    first.saturating_sub(before.len() - lead).min(after.len())
}

/// The cursor just after two slices read from stdout's and stderr's logs:
/// what every answer that returns output ends with.
pub fn cursor_after(out: (&Log, &Slice), err: (&Log, &Slice)) -> Cursor {
    Cursor {
        out: out.1.range[1],
        err: err.1.range[1],
        out_tag: out.0.tag,
        err_tag: err.0.tag,
    }
}

impl Log {
    /// Whether the log existed when it was opened (a missing one reads
    /// as empty).
    pub fn exists(&self) -> bool {
        self.file.is_some()
    }

    /// The logical size now, with the gap record it goes with (both
    /// taken between two looks at the same stable record).
    fn take_size(&mut self) -> std::io::Result<()> {
        let Some(f) = &self.file else {
            return Ok(());
        };
        let Some((gaps, slot, dir)) = &self.gaps else {
            self.size = f.metadata()?.len();
            return Ok(());
        };
        loop {
            let g = gaps.stable(*slot, dir)?;
            let len = f.metadata()?.len();
            if gaps.still(*slot, &g)? {
                self.gap.set(g);
                self.size = g.logical_len(len);
                self.dropped = g.dropped;
                return Ok(());
            }
        }
    }

    /// Look again at a log this reader keeps open: its size now, or, if
    /// it did not exist, whether it does now. The file stays the one
    /// first opened (its identity does not change: a capped log is cut
    /// in place).
    pub fn refresh(&mut self, path: &Path) -> Result<()> {
        if self.gaps.is_none() {
            // Made capped since it was opened (a job restarted with a cap).
            self.gaps = gaps_of(path)?;
        }
        match &self.file {
            Some(_) => self
                .take_size()
                .map_err(|e| Error::io(format!("read {}", path.display()), e))?,
            None => *self = open_log(path)?,
        }
        Ok(())
    }

    /// Look again at the file this reader holds, wherever its name has
    /// gone since: a `--retry` archive moves an attempt's logs to
    /// `runs/<attempt>/` (by link, so the open file is still the same
    /// one) and puts the next attempt's under the old names, which
    /// `refresh` would take up. A log that did not exist stays empty.
    pub fn reread(&mut self) -> Result<()> {
        self.take_size()
            .map_err(|e| Error::io("read a log kept open", e))
    }

    /// Fill `buf` with the bytes from logical position `from` on, up to
    /// the size last seen and never across the gap of a capped log.
    /// Returns how many, and the position they start at: `from`, or the
    /// start of the kept tail when `from` lies in the dropped bytes.
    pub fn read_logical(&self, from: u64, buf: &mut [u8]) -> (usize, u64) {
        let Some(f) = &self.file else {
            return (0, from);
        };
        loop {
            let g = self.gap.get();
            let (at, file_at, limit) = if !g.active() {
                (from, from, self.size)
            } else if from < g.head {
                (from, from, g.head.min(self.size))
            } else {
                let at = from.max(g.tail_start());
                (at, at - g.dropped + g.marker, self.size)
            };
            let at = at.min(self.size.max(from));
            if at >= limit {
                return (0, at);
            }
            let len = (buf.len() as u64).min(limit - at) as usize;
            let got = read_at(f, file_at, &mut buf[..len]);
            let Some((gaps, slot, dir)) = &self.gaps else {
                return (got, at);
            };
            match gaps.still(*slot, &g) {
                Ok(true) => return (got, at),
                // Cut while we read: read again through the new record.
                Ok(false) => match gaps.stable(*slot, dir) {
                    Ok(ng) => self.gap.set(ng),
                    Err(_) => return (0, from),
                },
                Err(_) => return (0, from),
            }
        }
    }

    /// Whether a cut made since this reader took the log's size dropped
    /// everything up to that size (a flood's pass-over, `logcap::skip`):
    /// a read from the end then finds nothing of what it saw, and must
    /// take the size again (`reread`) to find the tail there is now.
    fn overtaken(&self) -> bool {
        let g = self.gap.get();
        g.active() && g.tail_start() >= self.size && g.dropped > self.dropped
    }

    /// `read` of the end of this log, made again at the size now while it
    /// found nothing (`found`) because a running flood's cut dropped all
    /// it saw first (`overtaken`). Bounded: each retry means the job
    /// wrote on meanwhile.
    pub fn read_fresh<T>(
        &mut self,
        read: impl Fn(&Log) -> Result<T>,
        found: impl Fn(&T) -> bool,
    ) -> Result<T> {
        for _ in 0..8 {
            let r = read(self)?;
            if found(&r) || !self.overtaken() {
                return Ok(r);
            }
            self.reread()?;
        }
        read(self)
    }

    /// Whether logical position `at` is the end of a capped log's head
    /// (what comes next was dropped): an unfinished character there
    /// never completes.
    fn at_gap(&self, at: u64) -> bool {
        let g = self.gap.get();
        g.active() && at == g.head
    }

    /// Whether a line starting at logical position `at` is the rest of
    /// one the gap cut (`at` is where the kept tail starts, and the last
    /// byte dropped was not a newline): grep skips it to its end.
    fn cut_line_at(&self, at: u64) -> bool {
        let g = self.gap.get();
        g.active() && g.tail_mid_line && at == g.tail_start()
    }

    /// Where the kept tail of a capped log starts (0 when nothing was
    /// dropped): reads from the end never reach back across the gap.
    fn tail_floor(&self) -> u64 {
        let g = self.gap.get();
        if g.active() {
            g.tail_start().min(self.size)
        } else {
            0
        }
    }

    /// How many bytes at `at`, where `window` was read, belong to a
    /// character begun before it (`straddling`): 0 at the start of the
    /// log or of a capped log's kept tail (which starts whole).
    fn inside_char(&self, at: u64, window: &[u8]) -> Result<usize> {
        let after = &window[..continuation_prefix(window)];
        let back = at.saturating_sub(self.tail_floor()).min(3);
        if after.is_empty() || back == 0 {
            return Ok(0);
        }
        let (before, from) = self.bytes(at - back, back)?;
        if from + before.len() as u64 != at {
            return Ok(0);
        }
        Ok(straddling(&before, after))
    }

    /// Read `[from, from + len)`, clamped to the size seen at open (see
    /// `read_logical`): the bytes and where they start. The buffer is
    /// what the log holds there, never the caller's whole budget, and
    /// taken fallibly: a budget the memory left cannot hold is an
    /// `io_error` (ENOMEM), not an abort without an answer.
    fn bytes(&self, from: u64, len: u64) -> Result<(Vec<u8>, u64)> {
        if self.file.is_none() {
            return Ok((Vec::new(), from));
        }
        let len = len.min(self.size.saturating_sub(from));
        let mut buf = Vec::new();
        usize::try_from(len)
            .ok()
            .and_then(|n| buf.try_reserve_exact(n).ok())
            .ok_or_else(|| out_of_memory("read the log"))?;
        buf.resize(len as usize, 0);
        let (got, at) = self.read_logical(from, &mut buf);
        buf.truncate(got);
        Ok((buf, at))
    }

    /// The size without an unfinished character at its end: where the
    /// output written from now on begins for a reader that wants whole
    /// characters (`send`'s answer). The log may end inside a character
    /// the job is still writing; a read from its raw size began on that
    /// character's continuation bytes.
    pub fn whole_chars_end(&self) -> Result<u64> {
        let back = self.size.min(3);
        let (b, at) = self.bytes(self.size - back, back)?;
        Ok(at + complete_len(&b) as u64)
    }

    fn slice(&self, text: String, range: [u64; 2], skipped: u64) -> Slice {
        Slice {
            text,
            range,
            total: self.size,
            dropped: self.dropped,
            skipped,
        }
    }

    /// Where a read that got `b` (starting at `from`) should stop, by the
    /// UTF-8 rule: an incomplete character at its end is left for the
    /// next read, which starts with it — unless no more can come (the
    /// job is `done` and the read reached the end of the log, or the read
    /// stopped at a capped log's gap; such bytes are returned as U+FFFD).
    /// A read that got only part of its first character never comes here
    /// (`span` reads that character whole); should one still, it is
    /// returned lossily, so that reading always advances.
    fn cut(&self, from: u64, b: &[u8], done: bool) -> usize {
        let at_end = from + b.len() as u64 >= self.size;
        if (done && at_end) || self.at_gap(from + b.len() as u64) {
            return b.len();
        }
        match complete_len(b) {
            0 if !at_end => b.len(),
            n => n,
        }
    }

    /// The head: at most `max` bytes from the start, never past a capped
    /// log's gap; empty when the cap kept no head (`--max-log-bytes 1`),
    /// where a span from 0 would start after the gap.
    pub fn head(&self, max: u64, done: bool) -> Result<Slice> {
        if self.at_gap(0) {
            return Ok(self.slice(String::new(), [0, 0], 0));
        }
        self.span(0, max, done)
    }

    /// At most `max` bytes from `from`: the head (`from` = 0), or the
    /// new output after a cursor. Never splits a character at its end
    /// (see `cut`), so the range ends exactly after the returned text.
    ///
    /// A budget smaller than the character at `from` returns that whole
    /// character, `max` plus at most 3 bytes: half of it would read as
    /// U+FFFD here and its rest as U+FFFD again in the next read, so the
    /// texts of a `tail --since` loop would no longer join to the log
    /// (README). A character not all written yet waits, as at any end.
    ///
    /// A capped log's span stops at the end of its head; one from a
    /// position in the dropped bytes starts after them (`skipped`).
    pub fn span(&self, from: u64, max: u64, done: bool) -> Result<Slice> {
        let (mut b, mut at) = self.bytes(from, max)?;
        if let Some(need) = cut_first_char(&b) {
            (b, at) = self.bytes(at, need as u64)?;
        }
        let n = self.cut(at, &b, done);
        b.truncate(n);
        let text = text_of(b, 0)?;
        Ok(self.slice(text, [at, at + n as u64], at - from))
    }

    /// The end of the log, at most `max` bytes and never before `not_before`
    /// (the end of a head already returned): None when nothing is left
    /// after it. The start skips into the next character when it falls
    /// inside one.
    pub fn end(&self, not_before: u64, max: u64, done: bool) -> Result<Option<Slice>> {
        let from = self
            .size
            .saturating_sub(max)
            .max(not_before)
            .max(self.tail_floor());
        if from >= self.size {
            return Ok(None);
        }
        let (b, from) = self.bytes(from, self.size - from)?;
        let skip = if from > not_before {
            self.inside_char(from, &b)?
        } else {
            0
        };
        if skip == b.len() {
            // A budget under the last character: it is read whole (up
            // to 3 bytes over), as a head reads its first one whole.
            let from = self
                .size
                .saturating_sub(4)
                .max(not_before)
                .max(self.tail_floor());
            let (b, from) = self.bytes(from, self.size - from)?;
            let Some(lead) = b.iter().rposition(|&c| c & 0xC0 != 0x80) else {
                return Ok(None);
            };
            return self.end_slice(b, from, lead, done);
        }
        self.end_slice(b, from, skip, done)
    }

    /// `b` (read at `from`) from byte `skip` on, up to where `cut` lets
    /// a read end: None when that leaves nothing.
    fn end_slice(
        &self,
        mut b: Vec<u8>,
        from: u64,
        skip: usize,
        done: bool,
    ) -> Result<Option<Slice>> {
        let n = skip + self.cut(from + skip as u64, &b[skip..], done);
        if n <= skip {
            return Ok(None);
        }
        b.truncate(n);
        let text = text_of(b, skip)?;
        Ok(Some(self.slice(
            text,
            [from + skip as u64, from + n as u64],
            0,
        )))
    }

    /// The last `lines` lines (0 = no line limit) within the last
    /// `max_bytes` bytes of the log. A trailing newline is kept.
    /// A capped log's window never reaches back across the gap.
    pub fn last_lines(&self, lines: u64, max_bytes: u64, done: bool) -> Result<Slice> {
        let start = (self.size - self.size.min(max_bytes)).max(self.tail_floor());
        if start >= self.size && !done {
            // Nothing to return (`--max-bytes 0`): the range, and the
            // cursor after it, still end before a character the job has
            // not finished writing, as any other read's do; at the raw
            // size the next read began on its continuation bytes.
            let end = self.whole_chars_end()?.max(self.tail_floor());
            return Ok(self.slice(String::new(), [end, end], 0));
        }
        let start = match lines {
            0 => start,
            n => self.lines_back(start, n)?,
        };
        let (mut window, mut start) = self.bytes(start, self.size - start)?;
        let mut inside = self.inside_char(start, &window)?;
        if inside > 0 && inside == window.len() {
            // A budget under the last character: it is read whole (up to
            // 3 bytes over), as `end` and a head read one.
            let wider = self.size.saturating_sub(4).max(self.tail_floor());
            let (w, s) = self.bytes(wider, self.size - wider)?;
            if let Some(lead) = w.iter().rposition(|&c| c & 0xC0 != 0x80) {
                window = w[lead..].to_vec();
                start = s + lead as u64;
                inside = 0;
            }
        }
        let keep = self.cut(start, &window, done);
        window.truncate(keep);
        let begin = if lines == 0 {
            inside.min(window.len())
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
        // A window that starts inside a character skips into the next
        // one, as `end` does: its range starts where its text does (a
        // line break found above is past any such bytes already).
        let begin = begin.max(inside.min(window.len()));
        let end = start + window.len() as u64;
        let text = text_of(window, begin)?;
        Ok(self.slice(text, [start + begin as u64, end], 0))
    }

    /// A start for `last_lines` at or after `from` that still holds its
    /// last `lines` lines: just past the `lines + 2`-th line break from
    /// the end (one more for a trailing newline, one for an unfinished
    /// last line that `cut` drops), found reading back in growing steps;
    /// `from` when there are not that many breaks. So 50 lines of a
    /// 4 MB `--max-bytes` window read about what they return (D19), not
    /// the whole window (a server's tails kept that memory, audit 37).
    fn lines_back(&self, from: u64, lines: u64) -> Result<u64> {
        let want = lines.saturating_add(2);
        let mut seen = 0u64;
        let mut end = self.size;
        let mut step = 16 * 1024u64;
        while end > from {
            let at = end.saturating_sub(step).max(from);
            let (b, got_at) = self.bytes(at, end - at)?;
            if got_at != at || b.len() as u64 != end - at {
                // Not the bytes asked for (a log that changed under
                // us): the whole window, as before.
                return Ok(from);
            }
            for (i, &c) in b.iter().enumerate().rev() {
                if c == b'\n' {
                    seen += 1;
                    if seen == want {
                        return Ok(at + i as u64 + 1);
                    }
                }
            }
            end = at;
            step = step.saturating_mul(4).min(4 << 20);
        }
        Ok(from)
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
    ///
    /// A capped log is searched in its head, then in its kept tail, and
    /// the bytes passed over are added to `g.skipped`. The line the gap
    /// cuts is no line on either side (`logcap`): the head's last line is
    /// offered only when the gap starts with its newline, and a kept tail
    /// that starts inside a line is searched from its first newline on.
    /// Stopped inside that piece (no newline yet), the search says to
    /// start again at the tail, so the next one skips it too.
    ///
    /// `from` is a cursor, and may fall inside a line: that line is
    /// matched whole, from its real start (`line_start`), so `^` and a
    /// pattern that spans the cursor mean what they say, but it counts
    /// only through a match that ends after `from` (`Grep::offer`):
    /// readiness never fires on output that was there before the cursor.
    /// The search never says to go on before `from`.
    pub fn grep(&self, from: u64, g: &mut Grep) -> u64 {
        if self.file.is_none() {
            return from;
        }
        g.floor = from;
        self.grep_lines(self.line_start(from), g).max(from)
    }

    /// Where the line that position `from` falls in starts: `from` itself
    /// when it is a line's start, else just after the newline before it.
    /// The look back is bounded by GREP_LINE_MAX (a longer line is
    /// matched in pieces anyway, D32: its piece starts at `from`) and
    /// never crosses a capped log's gap: in the kept tail it stops at the
    /// tail's start, where `grep_lines` skips a line the gap cut.
    fn line_start(&self, from: u64) -> u64 {
        let g = self.gap.get();
        let floor = if !g.active() || from < g.head {
            0
        } else if from > g.tail_start() {
            g.tail_start()
        } else {
            // At the gap, in the dropped bytes or at the tail's start:
            // no line before `from` goes on past it.
            return from;
        };
        let back = from.saturating_sub(GREP_LINE_MAX as u64).max(floor);
        if back == from {
            return from;
        }
        let mut buf = vec![0u8; (from - back) as usize];
        let (got, at) = self.read_logical(back, &mut buf);
        if at != back || got != buf.len() {
            return from;
        }
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => back + i as u64 + 1,
            None if back == floor => floor,
            None => from,
        }
    }

    /// The search of `grep`, from `from` (a line's start, or a cursor in
    /// an over-long line).
    fn grep_lines(&self, from: u64, g: &mut Grep) -> u64 {
        let mut chunk = vec![0u8; GREP_CHUNK];
        let mut line: Vec<u8> = Vec::with_capacity(GREP_LINE_MAX.min(4096));
        let mut line_start = from;
        let mut pos = from;
        // In the piece of a cut line the kept tail starts with.
        let mut cut = self.cut_line_at(from);
        while pos < self.size {
            if g.out_of_time(pos) {
                // Go on from the line this stopped in (whole, next time).
                return if cut || !line.is_empty() {
                    line_start
                } else {
                    pos
                };
            }
            let want = (self.size - pos).min(GREP_CHUNK as u64) as usize;
            let (got, at) = self.read_logical(pos, &mut chunk[..want]);
            if at > pos {
                // The head's last line: a whole one whose newline was
                // dropped, or a piece of one that goes on in the dropped
                // bytes, not a line. Only from the head's end: a search
                // that was past it when a cut dropped what it had not read
                // yet (a running job) holds the start of a line whose rest
                // is gone, which it offered as a line ("100006" of
                // "100006553", a false readiness match).
                let gap = self.gap.get();
                if !line.is_empty() && pos == gap.head && !gap.head_mid_line {
                    g.offer(&line, line_start);
                    if g.first && !g.ring.is_empty() {
                        return pos;
                    }
                }
                line.clear();
                g.skipped += at - pos;
                pos = at;
                line_start = at;
                cut = self.cut_line_at(at);
            }
            if got == 0 {
                break;
            }
            let mut rest = &chunk[..got];
            let mut at = pos;
            if cut {
                let Some(i) = rest.iter().position(|&b| b == b'\n') else {
                    pos += got as u64;
                    continue;
                };
                cut = false;
                at += i as u64 + 1;
                rest = &rest[i + 1..];
                line_start = at;
            }
            while !rest.is_empty() {
                if line.len() == GREP_LINE_MAX {
                    // A line of exactly GREP_LINE_MAX bytes is one line
                    // (its newline may come in the next chunk); only a
                    // longer one is matched in pieces (D32), each ending
                    // on a character boundary, the start of a cut
                    // character beginning the next.
                    if rest[0] == b'\n' {
                        g.offer(&line, line_start);
                        line.clear();
                        at += 1;
                        rest = &rest[1..];
                        line_start = at;
                    } else {
                        let end = whole_chars_end(&line);
                        g.offer(&line[..end], line_start);
                        line.drain(..end);
                        line_start += end as u64;
                    }
                    if g.first && !g.ring.is_empty() {
                        return line_start;
                    }
                    continue;
                }
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
                        if g.first && !g.ring.is_empty() || g.stopped() {
                            return at;
                        }
                    }
                    None => {
                        line.extend_from_slice(scan);
                        at += scan.len() as u64;
                        rest = &rest[scan.len()..];
                    }
                }
            }
            pos += got as u64;
        }
        if cut && !g.done {
            // The tail's cut line has not ended yet: searched again from
            // the tail's start (`line_start`) next time, and skipped again.
            return line_start;
        }
        if line.is_empty() {
            return pos;
        }
        if g.done {
            g.offer(&line, line_start);
            return pos;
        }
        // A readiness wait takes a line still being written when its
        // match is settled: a prompt waits for its answer without a
        // newline ("Continue? [y/n] "), and the wait waited for ever.
        if g.first {
            g.settled_only = true;
            g.offer(&line, line_start);
            g.settled_only = false;
            if !g.ring.is_empty() {
                return pos;
            }
        }
        line_start
    }
}

/// Bytes read per step of a grep: the whole buffer a search holds.
const GREP_CHUNK: usize = 64 * 1024;
/// Lines longer than this are matched in pieces of at most this size (as
/// output-match does, D32), so a log without newlines costs no more.
/// A piece ends on a character boundary (`whole_chars_end`).
pub const GREP_LINE_MAX: usize = 64 * 1024;
/// How long a waiter's search of what was written before it began may
/// go on past its deadline (`Grep::whole_below`): a log of some hundred
/// MB, searched whole, where a readiness check must not say "no match"
/// for a line that is there.
const SEARCH_AT_LEAST: Duration = Duration::from_secs(1);

/// Where a piece of an over-long line ends so that it does not cut a
/// UTF-8 character: `b.len()`, less the bytes of a character that `b`
/// only begins (at most 3). Bytes that are no UTF-8 are cut anywhere.
pub fn whole_chars_end(b: &[u8]) -> usize {
    // As a read's end (`complete_len`), but never cut to nothing: a
    // piece that is only the start of a character is taken whole.
    match complete_len(b) {
        0 => b.len(),
        n => n,
    }
}

/// The text of a line (without its "\n") for matching. On a terminal
/// (`crlf`: the job runs on one) the lines end in "\r\n" (ONLCR), so
/// there the "\r" is the line's end, not its text: `$` anchors, and a
/// matched `line` has no "\r". Every "\r" before the "\n" is: a program
/// that ends its lines in "\r\n" itself reaches the log as "\r\r\n"
/// (its `ready$` never matched). A pipe's lines keep theirs, as
/// output-match always has (0.2.3). Only matching sees this (readiness,
/// `tail --grep`, the supervisor's output matcher); the logs keep every
/// byte.
pub fn line_text(line: &[u8], crlf: bool) -> &[u8] {
    if !crlf {
        return line;
    }
    let end = line.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
    &line[..end]
}

/// What `tail --grep` (and readiness) looks for, and where a line ends.
pub struct Pattern {
    test: Test,
    /// Lines end in "\r\n" (a terminal's, see `line_text`).
    crlf: bool,
}

enum Test {
    Contains(String),
    Regex(regex_lite::Regex),
}

impl Pattern {
    pub fn new(pattern: &str, regex: bool) -> Result<Pattern> {
        let test = if regex {
            regex_lite::Regex::new(pattern)
                .map(Test::Regex)
                .map_err(|e| Error::InvalidPattern(format!("invalid regex '{pattern}': {e}")))?
        } else {
            Test::Contains(pattern.to_string())
        };
        Ok(Pattern { test, crlf: false })
    }

    /// For `job`'s lines: on a terminal they end in "\r\n"
    /// (`line_text`).
    pub fn for_job(mut self, job: &Job) -> Pattern {
        self.crlf = job.read_meta().is_ok_and(|m| m.tty.is_some());
        self
    }

    fn is_match(&self, line: &str) -> bool {
        match &self.test {
            Test::Contains(p) => line.contains(p.as_str()),
            Test::Regex(r) => r.is_match(line),
        }
    }

    /// Does `part`, the start of a line still being written, hold a
    /// match that the rest of the line cannot undo? Any occurrence of a
    /// text; a regex's (first) match that ends before the last byte
    /// written, since what decides it (`$`, `\b` at its end) is written
    /// already. One that ends there (`ready$`, `port \d+`) waits.
    fn settled_in(&self, part: &str) -> bool {
        match &self.test {
            Test::Contains(p) => part.contains(p.as_str()),
            Test::Regex(r) => r.find(part).is_some_and(|m| m.end() < part.len()),
        }
    }

    /// Whether some match in `line` ends after byte `after` (the cursor,
    /// which the line began before): one that needs output written after
    /// it. The first match may lie wholly before the cursor while a later
    /// or overlapping one reaches past it, so the search goes on from
    /// just after each match's start (for a regex, with the whole line as
    /// context: `^` still means the line's start). A regex's matches are
    /// the leftmost-first ones it reports: `x|xab` at one start is `x`.
    fn ends_after(&self, line: &str, after: usize) -> bool {
        let next = |at: usize| line[at..].chars().next().map(|c| at + c.len_utf8());
        let mut at = match &self.test {
            // No occurrence that starts earlier can reach past `after`.
            Test::Contains(p) => {
                let mut at = (after + 1).saturating_sub(p.len()).min(line.len());
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                at
            }
            Test::Regex(_) => 0,
        };
        loop {
            let (start, end) = match &self.test {
                Test::Contains(p) => match line[at..].find(p.as_str()) {
                    Some(i) => (at + i, at + i + p.len()),
                    None => return false,
                },
                Test::Regex(r) => match r.find_at(line, at) {
                    Some(m) => (m.start(), m.end()),
                    None => return false,
                },
            };
            if end > after {
                return true;
            }
            match next(start) {
                Some(n) => at = n,
                None => return false,
            }
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
    /// Stop at the first match (readiness), instead of keeping the last.
    pub first: bool,
    pub ring: std::collections::VecDeque<Match>,
    /// Offer a line still being written (`grep_lines`' last): it counts
    /// only through a match already settled (`Pattern::settled_in`).
    settled_only: bool,
    /// Bytes passed over because a capped log dropped them.
    pub skipped: u64,
    /// A waiter's deadline (`until`): the search stops there.
    until: Option<Option<Instant>>,
    /// Below this position the deadline is no earlier than this moment
    /// (`whole_below`).
    whole_below: (u64, Option<Instant>),
    bytes: u64,
    /// Where the search began (`Log::grep`): a line that starts before
    /// it matches only through a match that ends after it.
    floor: u64,
    /// The matches kept outgrew the memory left (a large `max_bytes`
    /// of short lines): the search keeps nothing more and its caller
    /// answers `io_error` (ENOMEM) rather than the process aborting.
    pub out_of_memory: bool,
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
            first: false,
            ring: std::collections::VecDeque::new(),
            settled_only: false,
            skipped: 0,
            until: None,
            whole_below: (0, None),
            bytes: 0,
            floor: 0,
            out_of_memory: false,
        }
    }

    /// The search's matches, or ENOMEM if they outgrew the memory left.
    pub fn matches(self) -> Result<std::collections::VecDeque<Match>> {
        if self.out_of_memory {
            return Err(out_of_memory("keep the matching lines"));
        }
        Ok(self.ring)
    }

    /// For a waiter (readiness): the search stops once `deadline` has
    /// passed (or a stop signal ended the wait, `left`), checked at each
    /// chunk, and says where to go on. A huge log of short lines took a
    /// minute to search; the wait's `--until` bounds it now (but see
    /// `whole_below`).
    pub fn until(mut self, deadline: Option<Instant>) -> Grep<'a> {
        self.until = Some(deadline);
        self
    }

    /// A waiter's search of the log before `pos` (what was written
    /// when the wait began) goes on past its deadline until `at_least`
    /// (a second past it): "matches at once if such a line was written
    /// already" then holds for any log searched within that time,
    /// whatever `--until` (with `--until 0`, a log of 23 MB said no
    /// match for a line that was there, having read 1 MiB of it, on
    /// every call). A stop signal still ends it.
    pub fn whole_below(mut self, pos: u64, at_least: Instant) -> Grep<'a> {
        self.whole_below = (pos, Some(at_least));
        self
    }

    /// A waiter's search that a stop signal has ended: asked after each
    /// line (one atomic load while no signal has come), since a slow
    /// pattern may take a second a line and the clock is read only once
    /// a chunk.
    fn stopped(&self) -> bool {
        self.until.is_some() && sys::stop_ends_wait()
    }

    /// Out of time at `pos`? A stop signal ends a waiter's search
    /// wherever it is (a slow pattern held SIGINT for seconds).
    fn out_of_time(&self, pos: u64) -> bool {
        let Some(deadline) = self.until else {
            return false;
        };
        if sys::stop_ends_wait() {
            return true;
        }
        if let (below, Some(at_least)) = self.whole_below {
            if pos < below && Instant::now() < at_least {
                return false;
            }
        }
        left(deadline).is_none()
    }

    /// Search only up to the first match: `Log::grep` stops just after it.
    pub fn first_only(mut self) -> Grep<'a> {
        self.first = true;
        self
    }

    fn offer(&mut self, line: &[u8], offset: u64) {
        if self.out_of_memory {
            return;
        }
        let line = line_text(line, self.pattern.crlf);
        let text = String::from_utf8_lossy(line);
        let found = match self.floor.checked_sub(offset) {
            Some(before) if before > 0 => {
                // The cursor's place in the text: the same byte in a
                // line of valid UTF-8; else that byte's in the lossy text.
                let before = (before as usize).min(line.len());
                let after = match &text {
                    std::borrow::Cow::Borrowed(_) => before,
                    std::borrow::Cow::Owned(_) => lossy_offset(line, before),
                };
                self.pattern.ends_after(&text, after)
            }
            _ => self.pattern.is_match(&text),
        };
        if !found || self.settled_only && !self.pattern.settled_in(&text) {
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
            // A budget under the line's first character keeps that
            // character whole (up to 3 bytes over), as every read does:
            // the match's line read empty.
            if n == 0 && self.max_bytes > 0 {
                n = text.chars().next().map_or(0, char::len_utf8);
            }
            text.truncate(n);
        }
        // The ring's own growth (doubling, some 50 bytes a match) is
        // the allocation a large budget makes large: fallibly.
        if self.ring.try_reserve(1).is_err() {
            self.out_of_memory = true;
            self.ring = std::collections::VecDeque::new();
            return;
        }
        self.bytes += (text.len() as u64).max(1);
        self.ring.push_back(Match {
            stream: self.stream,
            line: text,
            offset,
        });
        // The newest match stays even over the budget by its first
        // character (see above), unless the budget is 0.
        let over = |g: &Self| g.bytes > g.max_bytes && (g.ring.len() > 1 || g.max_bytes == 0);
        while (self.keep > 0 && self.ring.len() as u64 > self.keep) || over(self) {
            match self.ring.pop_front() {
                Some(m) => self.bytes -= (m.line.len() as u64).max(1),
                None => break,
            }
        }
    }
}

/// Where byte `at` of `bytes` is in `String::from_utf8_lossy(bytes)`:
/// the start of the character it falls in (each invalid sequence is one
/// U+FFFD, three bytes). Not where the lossy text of `bytes[..at]` ends:
/// a character cut at `at` is one more U+FFFD there.
fn lossy_offset(bytes: &[u8], at: usize) -> usize {
    let (mut raw, mut text) = (0, 0);
    for chunk in bytes.utf8_chunks() {
        let valid = chunk.valid();
        if at < raw + valid.len() {
            let mut i = at - raw;
            while !valid.is_char_boundary(i) {
                i -= 1;
            }
            return text + i;
        }
        raw += valid.len();
        text += valid.len();
        let bad = chunk.invalid().len();
        if bad > 0 {
            if at < raw + bad {
                return text;
            }
            raw += bad;
            text += char::REPLACEMENT_CHARACTER.len_utf8();
        }
    }
    text
}

/// The logical size of a job's log (every byte written to it, whatever
/// a cap dropped); 0 when it cannot be read.
pub fn log_size(path: &Path) -> u64 {
    open_log(path).map_or(0, |l| l.size)
}

/// The size of a file, if it exists.
pub fn size_of(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Read state.json, reconciling a dead supervisor into `failed`:
/// - `running` with a free job lock: the supervisor died. The record says
///   `supervisor_lost`, and the job's process group (its root already got
///   SIGKILL from the kernel when the supervisor died, see
///   `sys::spawn_workload`) is killed now, so that no workload runs on
///   under a record that says it ended; but only a group the record shows
///   to be the job's (`State::own_processes`: the root's start time
///   recorded and matching, the processes of a uid the job directory
///   admits: its owner's, anyone's for a root-owned one). A
///   reused pid is a stranger's group, and a record that names processes
///   it cannot show to be the job's (damaged, or planted in a shared root
///   by another user) is recorded lost all the same, saying that nothing
///   was signalled: never a signal on its word.
/// - `created` with a job lock that exists and is free: a launch began
///   (`run` takes the lock before it writes meta.json; `start` creates it
///   already locked) and nobody holds it any more, so the supervisor never
///   ran the job: `launch_lost`. A `create`d job has no lock file.
/// - `queued` with a free job lock: the supervisor died while the job
///   waited (nothing of it ran): `supervisor_lost`.
///
/// A queued job's `queue_position` is filled in (`queue::annotate`).
pub fn current_state(job: &Job) -> Result<State> {
    current_state_from(job, job.read_state()?)
}

/// `current_state` for a caller that has just read state.json (`st`):
/// the same liveness check and annotation, without reading it again.
pub fn current_state_from(job: &Job, st: State) -> Result<State> {
    current_state_opening(job, st, || job.open_lock())
}

/// `current_state_from` for a caller that has the job's directory open
/// already (`list`): its lock is opened relative to `dir`.
pub fn current_state_in(job: &Job, dir: &sys::Dir, st: State) -> Result<State> {
    current_state_opening(job, st, || {
        dir.open_regular(crate::job::LOCK).ok().map(|(f, _)| f)
    })
}

fn current_state_opening(
    job: &Job,
    st: State,
    open_lock: impl FnOnce() -> Option<File>,
) -> Result<State> {
    let mut st = current_state_inner(job, st, open_lock)?;
    crate::queue::annotate(job, &mut st);
    Ok(st)
}

fn current_state_inner(
    job: &Job,
    st: State,
    open_lock: impl FnOnce() -> Option<File>,
) -> Result<State> {
    if !matches!(
        st.status(),
        Status::Running | Status::Created | Status::Queued
    ) {
        if st.finished_owed {
            if let Some(lock) = open_lock() {
                send_owed_finished(job, &st, &lock);
            }
        }
        kill_overdue_leftovers(job, &st, false);
        return Ok(st);
    }
    // Jobs written by other tools (0.2.3) have no lock file: the kernel
    // cannot vouch for them. Their recorded pid (the child's, or early
    // on the supervisor's) can: a `running` job whose process is gone is
    // reported failed (D12: never running with nobody behind it). Not
    // written back: without the lock, a supervisor of theirs might still
    // be about to write the truth.
    let Some(lock) = open_lock() else {
        // Ours always have one until a removal (gc, delete) unlinks it,
        // which it does only once it has renamed the directory away: a
        // job read `running` just before it ended and was removed is
        // gone, not a lost supervisor (a listing showed such jobs
        // `failed` for a moment). Not `gc::being_removed`: the remover
        // asks this too, holding the directory.
        let gone = std::fs::symlink_metadata(&job.dir)
            .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
        if gone {
            return Err(Error::JobNotFound(job.id.clone()));
        }
        return Ok(lost_without_lock(job, st));
    };
    if !sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
        // Held, by its supervisor as a rule. But another reader that is
        // recording a lost supervisor (or gc judging the job) holds it
        // for a moment too, and then the record it is writing is the
        // answer, not the stale `running`: with the recorded supervisor
        // gone, that moment is waited out (bounded) and the state read
        // again. A live supervisor costs nothing more. The bound is
        // generous because the holder may be slow to finish: an auto-GC
        // sweep runs at idle priority and a busy machine can starve it
        // (as it can a killed supervisor's last threads, which hold the
        // lock until they are gone).
        // Not when its pids cannot be judged here (`unseen`): every look
        // at a running job then waited the whole bound.
        let waited = matches!(st.status(), Status::Running | Status::Queued)
            && st.unseen().is_none()
            && st.supervisor_pid.is_some_and(|p| !process_lives(p))
            && lock_frees_within(&lock, Duration::from_secs(2));
        if !waited {
            return Ok(st);
        }
    }
    // A lock file no longer linked was a removal's (`gc::Hold`): the job
    // is being removed, or a removal that claimed the lock of a created
    // job gave up and unlinked it. Nothing launched under it: there is
    // nothing to reconcile, and writing would turn a job that was never
    // started into a lost launch.
    if lock_unlinked(&lock) {
        let _ = sys::unlock(&lock);
        return Ok(st);
    }
    let st = settle_held(job, &lock, true);
    let _ = sys::unlock(&lock);
    st
}

/// A job whose `--timeout` fired is recorded at once, and its supervisor
/// then waits out `--kill-after` to SIGKILL what is left of the group
/// (holding a queue's slot until then). If that supervisor died meanwhile,
/// nobody sent the SIGKILL: the leftovers lived on for good, and the
/// queue's next job started beside them. Sent here, once due (the root's
/// end plus `--kill-after`), to the job's own processes only; `wait`:
/// wait for that moment, and for them to be gone (bounded), as the next
/// job of the queue does before it starts (`queue::settle`). A reader
/// that comes earlier leaves it to a later one. Costs nothing for any
/// other job: only a timed-out one is looked at.
pub fn kill_overdue_leftovers(job: &Job, st: &State, wait: bool) {
    let (Some(pgid), Some(ended)) = (st.pid, st.finished_ns) else {
        return;
    };
    // Cheapest first: a gone group is one system call.
    if !st.result.timed_out
        || !st.status().is_terminal()
        || !st.own_processes(job).is_ok_and(|left| !left.is_empty())
        || st.supervisor_pid.is_some_and(|p| job.is_supervisor(p))
    {
        return;
    }
    let Ok(meta) = job.read_meta() else { return };
    // 0: the SIGKILL went with the TERM.
    if meta.kill_after_ms == 0 {
        return;
    }
    let due = i128::from(ended) + i128::from(meta.kill_after_ms) * 1_000_000;
    let early = due - crate::time::now_unix_ns();
    if early > 0 {
        if !wait {
            return;
        }
        std::thread::sleep(Duration::from_nanos(early as u64));
        // The group may have gone, or its number been reused, meanwhile.
        if !st.own_processes(job).is_ok_and(|left| !left.is_empty()) {
            return;
        }
    }
    let _ = sys::kill_group(pgid, libc::SIGKILL, &st.left_in_session);
    if wait {
        let until = Instant::now() + Duration::from_secs(2);
        while !st.live_processes().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// The state of a job whose lock the caller holds (`gc::hold_for_removal`
/// holds it to remove the job): as `current_state` reads it, a lost
/// supervisor recorded, without trying the lock again (ours would look
/// like a supervisor's). A `created` job stays `created`: the caller's
/// hold on its lock is no launch.
pub fn state_under_lock(job: &Job, lock: &File) -> Result<State> {
    let mut st = settle_held(job, lock, false)?;
    crate::queue::annotate(job, &mut st);
    Ok(st)
}

/// With the job lock held (`lock`): no supervisor can write any more.
/// Record what a `running` or `queued` job (and, with `created_lost`, a
/// `created` one whose launch began) left unsaid. Never unlocks.
fn settle_held(job: &Job, lock: &File, created_lost: bool) -> Result<State> {
    // Re-read under the lock, since it may have finished just before
    // releasing it.
    let mut st = job.read_state()?;
    // Unless the lock we hold is not the one the supervisor holds: a
    // `lock` file replaced under a running job is free on its new inode.
    // A supervisor of this job that still lives is the job's truth, not
    // lost: nothing is recorded and nothing killed. Asked only here, with
    // the lock found free, so a live job's read costs nothing more.
    if matches!(st.status(), Status::Running | Status::Queued)
        && st.supervisor_pid.is_some_and(|p| job.is_supervisor(p))
    {
        return Ok(st);
    }
    // A run already kept in runs/<attempt>/ (`--retry` between runs: its
    // supervisor died after it kept the run and before it wrote the next
    // run's state): the kept record is the run's end, and no other run
    // started. It read `supervisor_lost` for a run whose exit code was on
    // record, and previous_runs then disagreed with runs/.
    let kept = (st.status() == Status::Running)
        .then(|| crate::runs::load(job, st.attempt()))
        .flatten();
    if let Some(mut kept) = kept {
        let _ = kill_orphans(job, &st);
        kept.run_dir = None;
        record_reconciled(job, lock, &kept);
        return Ok(kept);
    }
    match st.status() {
        Status::Running => {
            let killed = kill_orphans(job, &st);
            // Its logs are final now: cut capped ones as its end would
            // have (nobody writes them any more).
            if let Ok(meta) = job.read_meta() {
                if let Some(max) = meta.max_log_bytes.filter(|&m| m > 0) {
                    let here = meta.full_log.is_none();
                    if let Err(e) = crate::logcap::settle_orphaned(&job.dir, max, here) {
                        crate::warn!("cut the capped logs of {}: {e}", job.id);
                    }
                }
            }
            let tail = match killed {
                // A live process under the recorded pid that is not in
                // the job's group: a later process that reused the
                // number, or one a planted record names.
                Ok(0) if st.pid.is_some_and(process_lives) => format!(
                    "; nothing was signalled, as process {} that its record names is not the job's",
                    st.pid.unwrap_or_default()
                ),
                Ok(0) => String::new(),
                Ok(n) => format!("; its {n} remaining process(es) were killed"),
                Err(why) => format!(
                    "; nothing was signalled, as the processes its record names are not the job's ({why})"
                ),
            };
            // Between two `--retry` runs (the delay), the next attempt
            // is recorded running without a start: it never ran.
            let when = if st.job.started_at.is_none() && st.attempt() > 1 {
                format!(" before attempt {} started (it never ran)", st.attempt())
            } else {
                String::new()
            };
            st.fail(
                "supervisor_lost",
                format!("the job's supervisor exited without recording a result{when}{tail}"),
            );
            record_reconciled(job, lock, &st);
        }
        Status::Queued => {
            // Nothing of the job ran; its queue slot and place in line
            // went with the supervisor.
            st.fail(
                "supervisor_lost",
                "the job's supervisor exited while the job was queued; it never ran",
            );
            record_reconciled(job, lock, &st);
        }
        Status::Created if created_lost => {
            // A supervisor killed between its workload's spawn and the
            // record of it: the workload's root died with it (its
            // parent-death signal), but what it started lives on in the
            // supervisor's session, unrecorded (it read `launch_lost`,
            // and nothing could reach it).
            let left = spawned_then_lost(job, lock);
            // A supervisor that could not make the job's first file (no
            // inode left: the room kept for the record is bytes) says
            // nothing and goes; the full file system is the cause.
            if left > 0 {
                st.fail(
                    "supervisor_lost",
                    format!(
                        "the job's supervisor exited after it started the job and before it recorded it running; its {left} remaining process(es) were killed"
                    ),
                );
            } else if sys::fs_full(lock) {
                st.fail(
                    "no_space",
                    "the job did not run: the jobs root's file system had no room (no free inode or block) for the job's files",
                );
            } else {
                st.fail(
                    "launch_lost",
                    "the job's launch began but its supervisor was gone before the job ran",
                );
            }
            // Its (empty) logs, which the supervisor never made: `run`
            // prints their paths, and every path printed exists (D41).
            let _ = crate::launch::create_logs(job);
            record_reconciled(job, lock, &st);
        }
        _ => {}
    }
    Ok(st)
}

/// A terminal run whose `job.finished` was still owed when last seen
/// (`State::finished_owed`): if nobody delivers it any more (its
/// supervisor, or the `_notify` recorded in `finished_by`, was killed
/// while the sinks ran), a detached `_notify` is started to send it,
/// which records itself as the one delivering and clears the debt once
/// it is sent (`notify::exec_lost`). Decided under the job lock, by one
/// reader at a time; a `_notify` that finds another one delivering
/// leaves. A live deliverer is left alone.
fn send_owed_finished(job: &Job, st: &State, lock: &File) {
    let delivering = |s: &State| {
        s.finished_by
            .or(s.supervisor_pid)
            .is_some_and(|p| job.is_deliverer(p))
    };
    if delivering(st) || !sys::try_lock_exclusive(lock).unwrap_or(false) {
        return;
    }
    if let Ok(now) = job.read_state() {
        if now.finished_owed
            && now.attempt() == st.attempt()
            && now.status().is_terminal()
            && !delivering(&now)
        {
            crate::notify::deliver_lost(job, now.attempt());
        }
    }
    let _ = sys::unlock(lock);
}

/// What a lost supervisor held for the job's end, given back once the
/// end is on record: the room reserved in the lock file (64 KiB, which
/// gc then counted as the job's) and its scratch state files.
fn release_reserve(job: &Job, lock: &File) {
    if let Some(f) = job
        .open_lock_checked()
        .ok()
        .flatten()
        .filter(|f| same_file(f, lock))
    {
        let _ = f.set_len(0);
    }
    if let Ok(d) = sys::Dir::open(&job.dir) {
        for name in crate::job::SCRATCH_STATES {
            let _ = d.unlink(name);
        }
    }
}

/// Record what a reader found out about a job whose supervisor is gone
/// (`lock`, the job lock, held by us). On a full disk the room the
/// supervisor kept for the job's end (real blocks in the lock file, see
/// `supervisor::RESERVE`) is given back, as its own end would have done,
/// and the write tried again. If it still fails, the reconciled state is
/// the answer all the same, unsaved: the next reader finds the same and
/// tries again. Answering `io_error` instead hid a lost supervisor behind
/// a full disk (and `list` showed `unknown`).
///
/// Once recorded, the run's `job.finished` is owed (its supervisor never
/// sent it): started here, by the one reader that recorded the end.
fn record_reconciled(job: &Job, lock: &File, st: &State) {
    // Owed until sent: a delivery that dies is started again by a reader.
    let marked = State {
        finished_owed: crate::notify::has_finished_sinks(job),
        ..st.clone()
    };
    let st = &marked;
    if job.write_state(st, true).is_ok() {
        release_reserve(job, lock);
        crate::notify::deliver_lost(job, st.attempt());
        return;
    }
    // `lock` is open read-only; the reserve is cut (and, failing that,
    // the record written) through a writable descriptor of the same file
    // (never created here).
    let writable = job
        .open_lock_checked()
        .ok()
        .flatten()
        .filter(|f| same_file(f, lock));
    if let Some(f) = &writable {
        let _ = f.set_len(0);
    }
    let written = job.write_state(st, true).or_else(|e| {
        // Bytes were not what was missing: an inode for the temporary
        // file was (a file system out of inodes). The record goes into
        // the lock file, ours and free of a supervisor now, renamed to
        // state.json: an ended job needs no lock to vouch for it.
        match &writable {
            Some(f) if e.is_no_room() || sys::fs_full(lock) => {
                into_lock_file(job, f, st).map_err(|_| e)
            }
            _ => Err(e),
        }
    });
    match written {
        Ok(()) => {
            crate::notify::deliver_lost(job, st.attempt());
        }
        Err(e) => crate::warn!("record the state of {}: {e}; answering it unsaved", job.id),
    }
}

/// Write `st` into the job's lock file (`f`, open for writing, held by
/// us) and rename it to state.json: a record that needs no new inode.
pub(crate) fn into_lock_file(job: &Job, f: &File, st: &State) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let text = serde_json::to_vec_pretty(st)?;
    f.set_len(0)?;
    f.write_all_at(&text, 0)?;
    f.sync_all()?;
    sys::Dir::open(&job.dir)?.rename(crate::job::LOCK, crate::job::STATE)
}

/// The processes a supervisor killed right after it spawned the job's
/// workload left behind, killed: those of its session (it leads one: its
/// pid, which it wrote at the start of the job lock before the spawn)
/// that started after the job was defined, and whose uid the job
/// directory admits (`job::admits`: a number planted in the lock file
/// reaches no other user's). A
/// session whose number a live leader holds is another's (the pid taken
/// again since). Returns how many were killed.
fn spawned_then_lost(job: &Job, lock: &File) -> usize {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 16];
    let n = lock.read_at(&mut buf, 0).unwrap_or(0);
    let Some(sid) = std::str::from_utf8(&buf[..n])
        .ok()
        .and_then(|t| t.split_once('\n'))
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
    else {
        return 0;
    };
    let since = job
        .read_meta()
        .ok()
        .and_then(|m| crate::time::parse_ts(&m.created_at))
        .and_then(sys::ticks_since_boot_at);
    match (since, job.owner()) {
        (Some(since), Some(owner)) => {
            sys::kill_orphaned_session(sid, since, |uid| crate::job::admits(owner, uid))
        }
        _ => 0,
    }
}

/// Are `a` and `b` open on the same file?
fn same_file(a: &File, b: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (a.metadata(), b.metadata()) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Is process `pid` there and not a zombie (a killed supervisor waiting
/// to be reaped is gone for this purpose)?
fn process_lives(pid: u32) -> bool {
    sys::proc_stat(pid).is_some_and(|p| p.state != b'Z' && p.state != b'X')
}

/// The job's state after its supervisor's last word (`T` or `F` on the
/// readiness pipe): the terminal record it wrote, or, when it could not
/// write one, what a reader records for a lost supervisor (`launch_lost`,
/// `supervisor_lost`) once the lock it is letting go of is free. The wait
/// for that is bounded: a supervisor that has said its last word is
/// exiting, and one that is not (a restart took the job on) is left be.
pub fn after_last_word(job: &Job) -> Result<State> {
    let st = current_state(job)?;
    if st.status().is_terminal() {
        return Ok(st);
    }
    if let Some(lock) = job.open_lock() {
        if lock_frees_within(&lock, Duration::from_secs(2)) {
            let _ = sys::unlock(&lock);
        }
    }
    current_state(job)
}

/// Take `lock` (exclusive) if it frees within `within`, polling: a hold
/// this waits out is a reader's or gc's, a few milliseconds long.
pub(crate) fn lock_frees_within(lock: &File, within: Duration) -> bool {
    let until = Instant::now() + within;
    loop {
        if sys::try_lock_exclusive(lock).unwrap_or(false) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Has the lock file behind `lock` been unlinked since it was opened?
fn lock_unlinked(lock: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    lock.metadata().is_ok_and(|m| m.nlink() == 0)
}

/// How a reader shows a job (`status`, `list`): a `created` record of a
/// job that has run before, under a held lock, is a `restart` between
/// keeping the ended run and its new supervisor's first record — a job
/// being started, not one defined and never started (what `created`
/// says, and `list --state created` and a poller take it for). Shown as
/// what it is about to be: `queued` when it has a queue or dependencies
/// to wait for, else `running`. Not part of `current_state`: those who
/// act on a job (`kill`, `start`) answer "being started" meanwhile.
pub fn as_shown(job: &Job, mut st: State) -> State {
    if st.status() == Status::Created && st.attempt() > 1 && job.is_launching() {
        let waits = job
            .read_meta()
            .is_ok_and(|m| m.queue.is_some() || !m.after.is_empty() || !m.after_ok.is_empty());
        st.job.status = Some(if waits {
            Status::Queued
        } else {
            Status::Running
        });
    }
    st
}

/// Is live process `pid` a later one than the job's root recorded in
/// `st` (its number reused)? By the recorded start time; without one
/// (0.2.3's records), by a start more than 2 s after the job's
/// `started_at` (the root starts as the job does).
fn taken_since(st: &State, pid: u32) -> bool {
    if let Some(t) = st.pid_start_time {
        return sys::proc_stat(pid).is_some_and(|p| p.start_time != t);
    }
    let started = st.job.started_at.as_deref().and_then(crate::time::parse_ts);
    match (started, sys::process_started_unix(pid)) {
        (Some(job), Some(process)) => process > job + 2,
        _ => false,
    }
}

/// Is the recorded process of a lock-less `running` job gone: its pid,
/// and whether the number now names a later process (None: it lives,
/// or no process is named to judge by, as 0.2.3 wrote `running` a
/// moment before its child's pid). Read-only: `lost_without_lock`
/// records the loss, completion only looks.
pub(crate) fn lockless_root_gone(st: &State) -> Option<(u32, bool)> {
    let pid = st.pid.filter(|p| *p > 1)?;
    // Nothing can be told of a pid that cannot be judged here: as read.
    if st.unseen().is_some() {
        return None;
    }
    // Alive: the job's root, unless a later process took its number.
    match process_lives(pid) {
        true if taken_since(st, pid) => Some((pid, true)),
        true => None,
        false => Some((pid, false)),
    }
}

/// A lock-less `running` job (see `current_state_inner`) as its recorded
/// process says: failed if that process is gone (or a zombie), or is a
/// later process that took its number (started after the job did: its
/// recorded start time differs, or, in a record of 0.2.3's without one,
/// it started after the job's `started_at`; a reboot reuses numbers).
/// When its supervisor is gone too, what is left of its process group
/// is killed as for a supervisor lost with its lock in place
/// (`kill_orphans`, the same checks): the workload does not outlive its
/// record unnoticed. A job
/// defined by 0.2.3 whose launch failed before any state was recorded
/// (meta.json, no state.json, no lock) is `failed` `launch_lost`: it
/// read `created`, and could be started, or never collected.
fn lost_without_lock(job: &Job, mut st: State) -> State {
    if st.status() == Status::Created
        && std::fs::symlink_metadata(job.path(crate::job::STATE)).is_err()
    {
        // As read (`read_state`: the job's definition time), every time.
        let at = st.updated_at.clone();
        st.fail(
            "launch_lost",
            "the job has no lock file and no recorded state: its launch never completed",
        );
        st.finished_at = Some(at.clone());
        st.updated_at = at;
        // Known to the second only (its last record): no finer end.
        st.finished_ns = None;
        return st;
    }
    if st.status() != Status::Running {
        return st;
    }
    let Some((pid, reused)) = lockless_root_gone(&st) else {
        return st;
    };
    // Said the same on every read, so only when nothing was signalled:
    // the first read kills, the later ones find nothing left.
    let mut tail = String::new();
    if !st.supervisor_pid.is_some_and(|p| job.is_supervisor(p)) {
        if let Err(why) = kill_orphans(job, &st) {
            tail = format!(
                "; nothing was signalled, as the processes its record names are not the job's ({why})"
            );
        }
    }
    // When it ended is unknown; its last record is the latest it can be
    // known to have lived (and the same on every read: nothing is written).
    let last_word = st.updated_at.clone();
    st.fail(
        "supervisor_lost",
        format!(
            "the job has no lock file and its recorded process {pid} is gone{}{tail}",
            if reused {
                " (the number names a later process now)"
            } else {
                ""
            }
        ),
    );
    st.finished_at = Some(last_word.clone());
    st.updated_at = last_word;
    // Known to the second only (its last record): no finer end.
    st.finished_ns = None;
    st
}

/// SIGKILL what is left of a job whose supervisor is gone, and wait
/// (briefly) until it is gone: a caller told `failed` finds no live
/// process of the job. Returns how many processes were signalled, or why
/// the live processes the record names are not the job's (nothing was
/// signalled).
fn kill_orphans(job: &Job, st: &State) -> std::result::Result<usize, String> {
    let members = st.own_processes(job)?;
    if members.is_empty() {
        return Ok(0);
    }
    if let Some(pgid) = st.pid {
        let _ = sys::kill_group(pgid, libc::SIGKILL, &st.left_in_session);
    }
    let until = Instant::now() + Duration::from_millis(500);
    while !st.live_processes().is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(members.len())
}

/// How a process waits for a job's end (see `wait_terminal`).
static WATCH_MODE: AtomicBool = AtomicBool::new(false);

/// Long-lived processes (the HTTP server) wait with inotify watches
/// instead of lock-holding helper threads, which they could not abandon.
pub fn use_watches() {
    WATCH_MODE.store(true, Ordering::Relaxed);
    let _ = closer();
}

/// Does this process wait with watches (the server, MCP)?
pub(crate) fn watching() -> bool {
    WATCH_MODE.load(Ordering::Relaxed)
}

/// Wait until the job is terminal or `deadline` passes (None = forever).
/// Returns the last state read.
///
/// A finished job costs one read. Otherwise the wait is event-driven:
/// - by default (short-lived commands), the calling thread blocks on
///   the job lock (the run's byte, then the flock), which the supervisor
///   releases right after publishing the terminal state (or the kernel
///   releases when it dies); a timer signal (`sys::ThreadAlarm`) ends
///   the blocked call at the deadline. Where no alarm can be set, a
///   helper thread blocks instead and wakes the caller through a pipe
///   (one wake-up more); one still blocked at the deadline dies with the
///   process;
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
    // A `restart` meanwhile ends this wait too: the answer is the run it
    // began on, kept in runs/ (`runs::answer_for`), never the new one.
    let first = st.clone();
    let done = |s: &State| s.status().is_terminal() || crate::runs::restarted_since(&first, s);
    let st = if WATCH_MODE.load(Ordering::Relaxed) {
        wait_watching(job, deadline, give_up, &done)?
    } else {
        wait_on_lock(job, st, deadline, &done)?
    };
    Ok(crate::runs::answer_for(job, &first, st))
}

/// Run `wait`, the caller's own wait for a job (run's observation,
/// `wait`, the yield of `send`, `tail --follow`), so that a stop signal
/// (`sys::hold_stop_signals`: HUP, INT, TERM) ends it as its deadline
/// passing would, at once: every wait loop asks `left`, and a blocking
/// call in between is interrupted (`sys::StopScope`). Where the signals
/// are not held (the server, MCP, a command that does not wait), this
/// is just `wait()`.
pub fn until_stopped<R>(wait: impl FnOnce() -> R) -> R {
    let _scope = sys::StopScope::enter();
    wait()
}

/// Time left before `deadline`; None when it has passed, or when a stop
/// signal has ended the wait (`until_stopped`), whatever the deadline.
pub(crate) fn left(deadline: Option<Instant>) -> Option<Duration> {
    if sys::stop_ends_wait() {
        return None;
    }
    match deadline {
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|l| !l.is_zero()),
        None => Some(Duration::from_secs(3600)),
    }
}

/// Block until `end` (a `lock_thread` pipe) is readable (true) or
/// `deadline` passes (false). No deadline is no deadline: the wait goes
/// on in `left`'s slices for as long as it takes.
fn ended_within(end: &File, deadline: Option<Instant>) -> bool {
    loop {
        let Some(left) = left(deadline) else {
            return false;
        };
        let mut fds = [sys::poll_fd(end.as_raw_fd(), sys::POLLIN)];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        match sys::poll(&mut fds, ms) {
            Ok(0) => {}
            // Readable, or a poll that cannot be made: read the state.
            _ => return true,
        }
    }
}

/// `st`: the state just read (not terminal).
fn wait_on_lock(
    job: &Job,
    mut st: State,
    deadline: Option<Instant>,
    done: &dyn Fn(&State) -> bool,
) -> Result<State> {
    let tick = Duration::from_millis(50);
    loop {
        let Some(left) = left(deadline) else {
            return Ok(st);
        };
        match (st.status(), job.open_lock()) {
            // Woken when the run ends (or its supervisor dies); a
            // `restart` right after does not hold it up (see
            // `until_run_ends`).
            (Status::Running | Status::Queued, Some(lock)) => {
                match run_ended_within(job, &lock, st.attempt(), deadline) {
                    Some(true) => {}
                    Some(false) => return current_state(job),
                    // No alarm here: a helper thread blocks instead.
                    None => match lock_thread(job, lock, st.attempt()) {
                        Some(end) if !ended_within(&end, deadline) => return current_state(job),
                        Some(_) => {}
                        None => std::thread::sleep(left.min(tick)),
                    },
                }
            }
            // Created (no supervisor yet), or no lock file (written by
            // another tool): look again shortly.
            _ => std::thread::sleep(left.min(tick)),
        }
        st = current_state(job)?;
        if done(&st) {
            return Ok(st);
        }
    }
}

/// An inotify watch closed through `close_watch` when dropped.
struct Watch(Option<File>);

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(w) = self.0.take() {
            close_watch(w);
        }
    }
}

fn wait_watching(
    job: &Job,
    deadline: Option<Instant>,
    give_up: Option<std::os::fd::RawFd>,
    done: &dyn Fn(&State) -> bool,
) -> Result<State> {
    // Watch first, then read: a change between the two still wakes us.
    let watch = Watch(sys::watch_dir(&job.dir).ok().map(File::from));
    let watch = &watch.0;
    loop {
        let st = current_state(job)?;
        if done(&st) {
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
                drain_watch(f);
            }
        }
        if give_up.is_some() && fds.last().is_some_and(|p| p.revents != 0) {
            return current_state(job);
        }
    }
}

// ---------------------------------------------------------------------------
// Waiting for output: readiness (`wait --output`) and following (`tail -f`)
// ---------------------------------------------------------------------------

/// What a server client's socket says while its request waits (the
/// server decides; see `Client`).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Stir {
    /// Nothing new.
    Quiet,
    /// It sent more (a pipelined request): still there, but its socket
    /// stays readable, so it is no longer watched, only looked at.
    Sent,
    /// It closed, half-closed or reset: nobody will read an answer.
    Left,
}

/// A server client whose request waits: its socket (which wakes the
/// wait when it stirs) and how to read what it did.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub fd: std::os::fd::RawFd,
    /// What to poll it for (POLLERR and POLLHUP always count).
    pub events: i16,
    pub look: &'a dyn Fn() -> Stir,
}

/// What wakes a reader that waits for a job's output or its end, without
/// a fixed tick:
/// - an inotify watch on the job directory that fires on every write to
///   a file in it (the logs growing), on a file created (a log appears)
///   and on state.json renamed into place (the terminal state);
/// - the job's end, seen through its lock: in short-lived commands a
///   helper thread blocks in flock(LOCK_SH) and then writes to a pipe
///   (the thread dies with the process); in the server, which may not
///   leave blocked threads behind, the state.json rename above, backed by
///   a slow tick for a supervisor that died without writing (as in
///   `wait_watching`);
/// - a server client's socket (`Client`).
///
/// The inotify descriptor is closed off the answer's path when the waker
/// is dropped (`close_watch`): closing one can wait out an SRCU grace
/// period (up to 15-18 ms measured), which must come after the answer.
struct Waker<'a> {
    watch: Option<File>,
    lock_end: Option<File>,
    client: Option<Client<'a>>,
    /// The client pipelined a request: look at it on each wake, but no
    /// longer poll its socket (always readable now).
    client_muted: bool,
}

impl Drop for Waker<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.watch.take() {
            close_watch(w);
        }
    }
}

/// The closer thread of a long-lived process (see `close_watch`), started
/// with the process's watch mode, so that its thread count stays steady.
fn closer() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<File>> {
    static CLOSER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<File>>> =
        std::sync::OnceLock::new();
    CLOSER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<File>();
        std::thread::spawn(move || {
            // It inherits the starting thread's signal mask: the server
            // blocks SIGTERM/SIGINT before it calls `use_watches` (a block
            // made here would leave a window in which a signal lands on
            // this thread and kills the process).
            // Each is dropped (closed) here, one after another.
            for f in rx {
                drop(f);
            }
        });
        std::sync::Mutex::new(tx)
    })
}

/// Read away what an inotify watch (non-blocking) has queued, so that
/// the next poll waits for news.
pub(crate) fn drain_watch(mut w: &File) {
    let mut buf = [0u8; 4096];
    while matches!(w.read(&mut buf), Ok(n) if n > 0) {}
}

/// Close an inotify descriptor off the answer's path: its last close
/// waits out an SRCU grace period (5–15 ms here). A command exits right
/// after its answer, so a background child makes that close after it
/// has gone; a long-lived process (the server, MCP) hands it to one
/// closer thread, so that the request that used it answers at once.
pub(crate) fn close_watch(w: File) {
    if !WATCH_MODE.load(Ordering::Relaxed) {
        sys::close_after_exit(std::os::fd::OwnedFd::from(w));
        return;
    }
    if let Ok(tx) = closer().lock() {
        // Should the thread be gone, the file comes back and is closed
        // here: slower, never lost.
        let _ = tx.send(w);
    }
}

/// How often a muted client (see `Waker`) is looked at for a hangup.
pub(crate) const CLIENT_TICK: Duration = Duration::from_millis(1000);

impl<'a> Waker<'a> {
    /// Set up before the read that decides to wait, so that a write in
    /// between still wakes it.
    fn new(job: &Job, st: &State, client: Option<Client<'a>>) -> Waker<'a> {
        let watch = sys::watch_dir_writes(&job.dir).ok().map(File::from);
        let server = WATCH_MODE.load(Ordering::Relaxed);
        let lock_end = match (server, st.status(), job.open_lock()) {
            (false, Status::Running | Status::Queued, Some(lock)) => {
                lock_thread(job, lock, st.attempt())
            }
            _ => None,
        };
        Waker {
            watch,
            lock_end,
            client,
            client_muted: false,
        }
    }

    /// Block until something may have changed or `deadline` passes.
    /// Returns true when the client left.
    fn wait(&mut self, deadline: Option<Instant>, status: Status) -> Result<bool> {
        let Some(left) = left(deadline) else {
            return Ok(false);
        };
        // Ticks back up what no event announces: a `created` job (no
        // supervisor yet), a supervisor that died unseen (no lock
        // thread), no inotify at all, a muted client.
        let mut tick = left;
        if status == Status::Created || self.watch.is_none() {
            tick = tick.min(Duration::from_millis(50));
        } else if self.lock_end.is_none() {
            tick = tick.min(Duration::from_millis(200));
        }
        if self.client_muted {
            tick = tick.min(CLIENT_TICK);
        }
        let mut fds = Vec::with_capacity(3);
        let mut slots = [usize::MAX; 3];
        if let Some(f) = &self.watch {
            slots[0] = fds.len();
            fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
        }
        if let Some(f) = &self.lock_end {
            slots[1] = fds.len();
            fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
        }
        if let Some(c) = self.client.filter(|_| !self.client_muted) {
            slots[2] = fds.len();
            fds.push(sys::poll_fd(c.fd, c.events));
        }
        let ms = tick.as_millis().clamp(1, i32::MAX as u128) as i32;
        sys::poll(&mut fds, ms).map_err(|e| Error::io("poll", e))?;
        let fired = |i: usize| fds.get(slots[i]).is_some_and(|p| p.revents != 0);
        if fired(0) {
            if let Some(f) = self.watch.as_ref() {
                drain_watch(f);
            }
        }
        if fired(1) {
            // The supervisor let go of the lock: the state read next says
            // how the job ended. The pipe stays readable: stop polling it.
            self.lock_end = None;
        }
        if fired(2) || self.client_muted {
            if let Some(c) = self.client {
                match (c.look)() {
                    Stir::Left => return Ok(true),
                    Stir::Sent => self.client_muted = true,
                    Stir::Quiet => {}
                }
            }
        }
        Ok(false)
    }
}

/// How often a wait past its deadline is interrupted again, should the
/// first signal have come just before the lock call blocked.
const ALARM_REPEAT: Duration = Duration::from_millis(10);

/// `until_run_ends` in the calling thread, given up at `deadline`:
/// Some(true) the run ended, Some(false) the deadline came first. The
/// supervisor's release wakes this thread itself, not a helper that then
/// wakes it (one wake-up less between the end and the answer). None
/// when no alarm can be set here (`sys::ThreadAlarm`).
fn run_ended_within(
    job: &Job,
    lock: &File,
    attempt: u32,
    deadline: Option<Instant>,
) -> Option<bool> {
    // A stop signal interrupts the blocked call as the alarm does
    // (`until_stopped`), and ends the wait as the deadline would.
    if sys::stop_ends_wait() {
        return Some(false);
    }
    let Some(d) = deadline else {
        return Some(until_run_ends(job, lock, attempt, &sys::stop_ends_wait));
    };
    let left = d.checked_duration_since(Instant::now())?;
    let _alarm = sys::ThreadAlarm::arm(left, ALARM_REPEAT).ok()?;
    Some(until_run_ends(job, lock, attempt, &|| {
        Instant::now() >= d || sys::stop_ends_wait()
    }))
}

/// A pipe that becomes readable once the supervisor has let go of the job
/// lock (it published the terminal state, or died).
pub(crate) fn lock_thread(job: &Job, lock: File, attempt: u32) -> Option<File> {
    let (rd, wr) = sys::pipe().ok()?;
    let job = job.clone();
    // A small stack: the thread blocks in a lock call and reads one
    // state. One that cannot be made (the caller's thread or process
    // limit: `wait` of many ids) is None, and the job is looked at on a
    // tick instead; it was an internal error (a panic of thread::spawn).
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            until_run_ends(&job, &lock, attempt, &|| false);
            let _ = File::from(wr).write_all(&[1]);
        })
        .ok()?;
    Some(File::from(rd))
}

/// Block until run `attempt` of `job` has ended: its supervisor has let
/// go of the run's byte of the lock file (`job::RUN_LOCK_BASE`), having
/// published the end, or died. A `restart` after it takes the whole-file
/// flock and starts another run with another byte, so this never waits
/// through the next run. A supervisor that holds the job but not the
/// byte (started by an agent-exec before run bytes) is waited for on the
/// whole file, as then.
///
/// A signal ends a blocked lock call (`sys::ThreadAlarm`); the wait then
/// gives up (false) if `passed` says so, else blocks again. A lock call
/// that fails counts as the end (the state read next says more).
fn until_run_ends(job: &Job, lock: &File, attempt: u32, passed: &dyn Fn() -> bool) -> bool {
    let block = |call: &dyn Fn() -> std::io::Result<bool>| loop {
        if passed() {
            return false;
        }
        if !matches!(call(), Ok(false)) {
            return true;
        }
    };
    let byte = crate::job::run_lock_byte(attempt);
    if !block(&|| sys::ofd_lock_shared_interruptible(lock, byte)) {
        return false;
    }
    let _ = sys::ofd_unlock(lock, byte);
    match sys::try_lock_shared(lock) {
        Ok(false) => {
            let same_run = job.read_state().is_ok_and(|now| {
                now.attempt() == attempt && matches!(now.status(), Status::Running | Status::Queued)
            });
            if same_run {
                if !block(&|| sys::lock_shared_interruptible(lock)) {
                    return false;
                }
                let _ = sys::unlock(lock);
            }
        }
        Ok(true) => {
            let _ = sys::unlock(lock);
        }
        Err(_) => {}
    }
    true
}

/// One of a job's two logs, read by one waiting reader from `pos` on.
struct Stream {
    name: &'static str,
    path: std::path::PathBuf,
    log: Log,
    pos: u64,
    /// The log's size when it was opened: a readiness search reads that
    /// much for up to a second past its deadline (`Grep::whole_below`).
    written_before: u64,
}

/// Open both logs and check a cursor against them (`invalid_cursor`).
fn open_streams(job: &Job, since: Option<&Cursor>) -> Result<[Stream; 2]> {
    let open = |name: &'static str, path: std::path::PathBuf| -> Result<Stream> {
        let log = open_log(&path)?;
        Ok(Stream {
            name,
            written_before: log.size,
            log,
            path,
            pos: 0,
        })
    };
    let mut s = [
        open("stdout", job.stdout_path())?,
        open("stderr", job.stderr_path())?,
    ];
    if let Some(c) = since {
        s[0].log.check_since("stdout.log", c.out, c.out_tag)?;
        s[1].log.check_since("stderr.log", c.err, c.err_tag)?;
        s[0].pos = c.out;
        s[1].pos = c.err;
    }
    Ok(s)
}

/// The attempt whose logs a reader is about to open: read before it
/// opens them. A `--retry` archive replaces the logs before the state
/// names the next attempt, so logs opened after this read are of this
/// attempt or, in that short window, of the next one (`next_logs` tells
/// them apart by their identity); never of an earlier one.
fn attempt_before_open(job: &Job) -> u32 {
    job.read_state().map_or(1, |st| st.attempt())
}

/// Where a reader of a job's logs goes on once the job is on a later
/// `--retry` attempt than the one whose logs it holds.
enum NextLogs {
    /// The logs held are attempt n's already (opened in the window
    /// between an archive and the state that names their attempt).
    Held(u32),
    /// Attempt n's logs, to read from their start once the ones held
    /// are read to their end (their attempt has ended: they are complete).
    New(u32, Box<[Stream; 2]>),
}

/// The logs after those of attempt `held` (`streams`), given `st`, the
/// state of a later attempt of the same run read since (through
/// `runs::answer_for`, so a `restart`'s new run is never one of them).
/// Attempts in between are read from where they are kept,
/// `runs/<n>/`, and passed over once no longer kept; the attempt `st`
/// describes from the job directory, or from its kept directory when
/// `st` was read from there (a run that a restart ended).
fn next_logs(job: &Job, st: &State, held: u32, streams: &[Stream; 2]) -> Result<NextLogs> {
    let last = st.attempt();
    for n in held.saturating_add(1)..=last {
        let dir = match &st.run_dir {
            _ if n < last => job.dir.join(crate::runs::RUNS).join(n.to_string()),
            Some(kept) => kept.clone(),
            None => job.dir.clone(),
        };
        let next = open_streams(&Job::new(job.id.clone(), dir), None)?;
        let same = next
            .iter()
            .zip(streams)
            .any(|(a, b)| a.log.tag != 0 && a.log.tag == b.log.tag);
        if same {
            return Ok(NextLogs::Held(n));
        }
        if n < last && !next.iter().any(|s| s.log.exists()) {
            continue;
        }
        return Ok(NextLogs::New(n, Box::new(next)));
    }
    Ok(NextLogs::Held(held.max(last)))
}

/// What `wait_output` ends with: the state, the line found, the bytes of
/// stdout and stderr passed over in a capped log's gap.
pub type Found = (State, Option<Match>, [u64; 2]);

/// Wait until a line of the selected stream(s) (`which`: stdout, stderr
/// or either) from `since` on (default: the start) matches `pattern`, the
/// job is terminal, or `deadline` passes. Returns the state (read before
/// the last scan of the logs), the first matching line found, and the
/// bytes of each stream the search passed over because a capped log had
/// dropped them; None when the client left first.
///
/// Each scan reads only the bytes after the previous one, in 64 KiB
/// chunks (`Log::grep`); an unfinished last line is scanned again whole
/// once its newline is there, or as it is when the job is terminal.
pub fn wait_output(
    job: &Job,
    pattern: &Pattern,
    which: &str,
    since: Option<&Cursor>,
    deadline: Option<Instant>,
    client: Option<Client<'_>>,
) -> Result<Option<Found>> {
    let mut attempt = attempt_before_open(job);
    let mut streams = open_streams(job, since)?;
    let mut skipped = [0u64; 2];
    let mut waker: Option<Waker> = None;
    let mut first: Option<State> = None;
    loop {
        // The state before the logs: terminal means they are complete.
        let st = current_state(job)?;
        // Restarted meanwhile: the run this began on has ended, and its
        // logs are the files still open here (moved to runs/, not
        // replaced): scan them to their end and answer with that run.
        let began = first.get_or_insert_with(|| st.clone());
        let st = crate::runs::answer_for(job, began, st);
        // A later `--retry` attempt: the same run to this caller, whose
        // output goes on in that attempt's new logs. The attempt held
        // has ended (its logs are complete): its rest is searched as
        // final, then the search goes on from the start of the next.
        if st.attempt() > attempt {
            match next_logs(job, &st, attempt, &streams)? {
                NextLogs::Held(n) => attempt = n,
                NextLogs::New(n, next) => {
                    let found = scan(
                        &mut streams,
                        which,
                        pattern,
                        true,
                        &mut skipped,
                        true,
                        deadline,
                    )?;
                    if let Some(m) = found {
                        return Ok(Some((st, Some(m), skipped)));
                    }
                    (attempt, streams) = (n, *next);
                }
            }
            continue;
        }
        let done = st.status().is_terminal();
        if let Some(m) = scan(
            &mut streams,
            which,
            pattern,
            done,
            &mut skipped,
            false,
            deadline,
        )? {
            return Ok(Some((st, Some(m), skipped)));
        }
        if done || left(deadline).is_none() {
            return Ok(Some((st, None, skipped)));
        }
        match &mut waker {
            // Watch, then scan once more before the first sleep.
            None => waker = Some(Waker::new(job, &st, client)),
            Some(w) => {
                if w.wait(deadline, st.status())? {
                    return Ok(None);
                }
            }
        }
    }
}

/// Search the selected streams (`which`) from where each stopped for
/// the first line that matches; `done`: their ends are final. `held`:
/// the logs are an ended attempt's, whose names may since be the next
/// attempt's, so only the open files are looked at again. `deadline`:
/// the wait's, where a long search stops (`Grep::until`).
fn scan(
    streams: &mut [Stream; 2],
    which: &str,
    pattern: &Pattern,
    done: bool,
    skipped: &mut [u64; 2],
    held: bool,
    deadline: Option<Instant>,
) -> Result<Option<Match>> {
    for (i, s) in streams.iter_mut().enumerate() {
        if which != "either" && which != s.name {
            continue;
        }
        s.look_again(held)?;
        let mut g = Grep::new(pattern, s.name, 1, GREP_LINE_MAX as u64, done)
            .first_only()
            .until(deadline)
            .whole_below(
                s.written_before,
                deadline.map_or_else(Instant::now, |d| d + SEARCH_AT_LEAST),
            );
        s.pos = s.log.grep(s.pos, &mut g);
        skipped[i] += g.skipped;
        if let Some(m) = g.ring.pop_front() {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// Where followed output goes (NDJSON on stdout, raw bytes, an HTTP
/// stream). An error means nobody reads any more: following stops.
pub trait FollowSink {
    /// The bytes of `stream` starting at `from`: whole UTF-8 characters,
    /// except at the very end of a finished job's log.
    fn output(&mut self, stream: &'static str, from: u64, bytes: &[u8]) -> std::io::Result<()>;
    /// The bytes `[from, to)` of `stream` were dropped by a capped log
    /// (`logcap`): what is passed on next starts at `to`.
    fn skipped(&mut self, stream: &'static str, from: u64, to: u64) -> std::io::Result<()> {
        let _ = (stream, from, to);
        Ok(())
    }
    /// The job's next `--retry` attempt began: what is passed on next
    /// comes from that attempt's own logs, whose offsets start at 0.
    /// Everything of the earlier attempts was passed on before.
    fn attempt(&mut self, attempt: u32) -> std::io::Result<()> {
        let _ = attempt;
        Ok(())
    }
    /// Everything written so far is due now (the follower is about to
    /// sleep, or stops).
    fn flush(&mut self) -> std::io::Result<()>;
}

/// Why following stopped.
pub enum FollowEnd {
    /// The job is terminal and all its output was passed on.
    Ended(State),
    /// The deadline passed first (the state then).
    Until(State),
    /// The reader left (a write failed, or the client hung up).
    Left,
}

/// Most bytes passed on in one piece. 32 KiB, not 64: the follower's
/// buffers (this chunk, its escaped line, the batch it joins) are its
/// memory; at 64 KiB a follow of 200 MB peaked at 2.07 MB resident
/// (target 2), at 32 KiB 1.95 MB, keeping up as well.
pub const FOLLOW_CHUNK: usize = 32 * 1024;

/// Follows a job's two logs from a position until the job ends, from
/// one `--retry` attempt's logs to the next's.
pub struct Follower {
    streams: [Stream; 2],
    /// The attempt whose logs `streams` are (see `attempt_before_open`).
    attempt: u32,
}

impl Follower {
    /// From `since` (checked against the logs: `invalid_cursor`), or
    /// from the start of both logs.
    pub fn new(job: &Job, since: Option<&Cursor>) -> Result<Follower> {
        let attempt = attempt_before_open(job);
        Ok(Follower {
            streams: open_streams(job, since)?,
            attempt,
        })
    }

    /// Just after everything passed on, in both streams.
    pub fn cursor(&self) -> Cursor {
        let [o, e] = &self.streams;
        Cursor {
            out: o.pos,
            err: e.pos,
            out_tag: o.log.tag,
            err_tag: e.log.tag,
        }
    }

    /// Pass every new byte of both logs to `sink`, in order per stream
    /// and in pieces of at most `FOLLOW_CHUNK`, as it is written, until
    /// the job is terminal (then the rest, and `Ended`), `deadline`
    /// passes, or the reader leaves. Memory: one chunk buffer.
    ///
    /// While output is pending the streams take turns, a chunk each, and
    /// the state is not read; once both are caught up the state is read
    /// (terminal: the logs are complete, so one last read ends it), the
    /// sink flushed, and the follower sleeps until the next write.
    pub fn run(
        &mut self,
        job: &Job,
        sink: &mut dyn FollowSink,
        deadline: Option<Instant>,
        client: Option<Client<'_>>,
    ) -> Result<FollowEnd> {
        let mut buf = vec![0u8; FOLLOW_CHUNK];
        let first = current_state(job)?;
        let mut waker = Waker::new(job, &first, client);
        // Begun on a later run than the first: said before its output,
        // as each next `--retry` attempt is, so the reader knows whose
        // logs the ranges are offsets in.
        if self.attempt > 1 && sink.attempt(self.attempt).is_err() {
            return Ok(FollowEnd::Left);
        }
        loop {
            let mut moved = false;
            for s in self.streams.iter_mut() {
                s.log.refresh(&s.path)?;
                match s.step(&mut buf, false, sink) {
                    Ok(m) => moved |= m,
                    Err(_) => return Ok(FollowEnd::Left),
                }
            }
            // Checked after a read, so that even a deadline already past
            // (`until=0`) passes on what is there.
            if left(deadline).is_none() {
                let st = current_state(job)?;
                return Ok(match sink.flush() {
                    Ok(()) => FollowEnd::Until(st),
                    Err(_) => FollowEnd::Left,
                });
            }
            if moved {
                continue;
            }
            // Restarted meanwhile: the logs followed (still open here)
            // are the run's that ended; finish them and end with it.
            let st = crate::runs::answer_for(job, &first, current_state(job)?);
            // A later `--retry` attempt: still the same run to a
            // follower. The attempt followed has ended, so its logs are
            // complete: pass on their rest, then go on with the next
            // attempt's logs from their start (announced to the sink).
            if st.attempt() > self.attempt {
                match next_logs(job, &st, self.attempt, &self.streams)? {
                    NextLogs::Held(n) => self.attempt = n,
                    NextLogs::New(n, next) => {
                        if self.finish(&mut buf, sink, true)?.is_err() || sink.attempt(n).is_err() {
                            return Ok(FollowEnd::Left);
                        }
                        (self.attempt, self.streams) = (n, *next);
                    }
                }
                continue;
            }
            if st.status().is_terminal() {
                if self.finish(&mut buf, sink, false)?.is_err() {
                    return Ok(FollowEnd::Left);
                }
                return Ok(match sink.flush() {
                    Ok(()) => FollowEnd::Ended(st),
                    Err(_) => FollowEnd::Left,
                });
            }
            if sink.flush().is_err() {
                return Ok(FollowEnd::Left);
            }
            if waker.wait(deadline, st.status())? {
                return Ok(FollowEnd::Left);
            }
        }
    }

    /// Pass on the rest of both logs, whose attempt has ended (nothing
    /// more can come: an unfinished character at the end is final).
    /// `held`: the logs' names may be the next attempt's by now, so only
    /// the open files are looked at again. The inner Err: the reader left.
    fn finish(
        &mut self,
        buf: &mut [u8],
        sink: &mut dyn FollowSink,
        held: bool,
    ) -> Result<std::io::Result<()>> {
        for s in self.streams.iter_mut() {
            s.look_again(held)?;
            loop {
                match s.step(buf, true, sink) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return Ok(Err(e)),
                }
            }
        }
        Ok(Ok(()))
    }
}

impl Stream {
    /// Take up how far the log has grown: by its name, or, `held`, only
    /// through the open file (an ended `--retry` attempt's logs, whose
    /// names may be the next attempt's by now: `Log::reread`).
    fn look_again(&mut self, held: bool) -> Result<()> {
        if held {
            self.log.reread()
        } else {
            self.log.refresh(&self.path)
        }
    }

    /// Pass on the next chunk after `pos`, if any. An incomplete UTF-8
    /// character at its end waits for the next chunk, unless the job is
    /// `done` (nothing more can come).
    fn step(
        &mut self,
        buf: &mut [u8],
        done: bool,
        sink: &mut dyn FollowSink,
    ) -> std::io::Result<bool> {
        if self.pos >= self.log.size {
            return Ok(false);
        }
        let (got, at) = self.log.read_logical(self.pos, buf);
        let moved = at > self.pos;
        if moved {
            sink.skipped(self.name, self.pos, at)?;
            self.pos = at;
        }
        let ends = done || self.log.at_gap(at + got as u64);
        let n = if ends { got } else { complete_len(&buf[..got]) };
        if n == 0 {
            return Ok(moved);
        }
        sink.output(self.name, self.pos, &buf[..n])?;
        self.pos += n as u64;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window's start skips only what belongs to a character (or one
    /// invalid sequence) begun before it; stray continuation bytes are
    /// the window's own.
    #[test]
    fn a_window_skips_only_the_rest_of_a_character_begun_before_it() {
        // € (E2 82 AC) split 2 | 1 and 1 | 2.
        assert_eq!(straddling(b"\xe2\x82", b"\xac"), 1);
        assert_eq!(straddling(b"a\xe2", b"\x82\xac"), 2);
        // An incomplete sequence is one U+FFFD: its split rest goes too.
        assert_eq!(straddling(b"\xe2", b"\x82"), 1);
        // After a whole character, an ASCII byte, or nothing known: stray.
        assert_eq!(straddling(b"\xe2\x82\xac", b"\x80\x80"), 0);
        assert_eq!(straddling(b"ok\n", b"\xb0\xb0\xb0"), 0);
        assert_eq!(straddling(b"\xb0\xb0\xb0", b"\xb0"), 0);
        assert_eq!(straddling(b"", b"\x80"), 0);
        // A lead whose next byte is out of its range starts nothing.
        assert_eq!(straddling(b"\xe0", b"\x80"), 0);
    }

    #[test]
    fn a_terminals_line_ends_at_its_carriage_returns() {
        assert_eq!(line_text(b"ready\r", true), b"ready");
        assert_eq!(line_text(b"ready\r\r", true), b"ready");
        assert_eq!(line_text(b"a\rb\r", true), b"a\rb");
        assert_eq!(line_text(b"\r\r", true), b"");
        // A pipe's line keeps its "\r".
        assert_eq!(line_text(b"ready\r", false), b"ready\r");
    }

    fn file_with(tag: &str, content: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("ae-obs-{tag}-{}", std::process::id()));
        std::fs::write(&p, content).unwrap();
        p
    }

    /// A reader that opened a job's directory, read it `running`, and
    /// then saw its lock file gone finds the job removed (renamed away,
    /// then emptied), not a lost supervisor.
    #[test]
    fn a_running_job_removed_under_a_reader_is_gone_not_lost() {
        let root = std::env::temp_dir().join(format!(
            "ae-obs-gone-{}-{}",
            std::process::id(),
            crate::store::new_id().unwrap()
        ));
        let store = crate::store::Store::at(root.clone());
        let id = crate::store::new_id().unwrap();
        let job = store.job(&id);
        std::fs::create_dir_all(&job.dir).unwrap();
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let pid = gone.id();
        gone.wait().unwrap();
        let st: State = serde_json::from_str(&format!(
            r#"{{"job":{{"id":"{id}","status":"running"}},"pid":{pid},"result":{{"exit_code":null,"signal":null,"duration_ms":null}},"updated_at":"2026-01-01T00:00:00Z"}}"#
        ))
        .unwrap();
        let dir = sys::Dir::open(&job.dir).unwrap();
        // Lockless and in place: a legacy job whose process is gone.
        let lost = current_state_in(&job, &dir, st.clone()).unwrap();
        assert_eq!(lost.status(), Status::Failed);
        // Renamed away by a removal (its lock file with it).
        std::fs::rename(&job.dir, root.join(".gone")).unwrap();
        match current_state_in(&job, &dir, st) {
            Err(Error::JobNotFound(j)) => assert_eq!(j, id),
            other => panic!("{:?}", other.map(|s| s.status())),
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn head_is_bounded() {
        let p = file_with("head", b"hello world\n");
        let log = open_log(&p).unwrap();
        let s = log.span(0, 5, true).unwrap();
        assert_eq!(s.text, "hello");
        assert_eq!(s.range, [0, 5]);
        assert_eq!(s.total, 12);
        let s = log.span(0, 0, true).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("", [0, 0]));
        let missing = open_log(Path::new("/nonexistent/x")).unwrap();
        let s = missing.span(0, 10, true).unwrap();
        assert_eq!((s.total, s.range, missing.tag), (0, [0, 0], 0));
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn tail_lines_and_window() {
        let p = file_with("tail", b"a\nbb\nccc\n");
        let log = open_log(&p).unwrap();
        let s = log.last_lines(2, 1000, true).unwrap();
        assert_eq!(s.text, "bb\nccc\n");
        assert_eq!(s.range, [2, 9]);
        let s = log.last_lines(0, 4, true).unwrap();
        assert_eq!(s.text, "ccc\n");
        assert_eq!(s.range, [5, 9]);
        let s = log.last_lines(10, 1000, true).unwrap();
        assert_eq!(s.text, "a\nbb\nccc\n");
        let s = log.last_lines(1, 3, true).unwrap();
        assert_eq!(s.text, "cc\n");
        assert_eq!(s.range[1] - s.range[0], s.text.len() as u64);
        std::fs::remove_file(p).unwrap();
        let p = file_with("tail2", b"x\ny");
        assert_eq!(
            open_log(&p).unwrap().last_lines(1, 100, true).unwrap().text,
            "y"
        );
        std::fs::remove_file(p).unwrap();
    }

    /// The last lines of a large window are found reading back from the
    /// end (`lines_back`), with the same answer as a read of the whole
    /// window, which a tail of 50 lines within `--max-bytes 4000000`
    /// read whole (audit 37).
    #[test]
    fn the_last_lines_are_found_reading_back_only_so_far() {
        let mut text = Vec::new();
        for i in 0..200_000u32 {
            text.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        text.extend_from_slice(b"unfinished");
        let p = file_with("tail3", &text);
        let log = open_log(&p).unwrap();
        let size = text.len() as u64;
        // Just past the 52nd break from the end: 50 lines, one for a
        // trailing newline, one for the unfinished line.
        let start = log.lines_back(0, 50).unwrap();
        assert!(size - start < 2_000, "{start} of {size}");
        assert_eq!(text[start as usize - 1], b'\n');
        let breaks = text[start as usize..]
            .iter()
            .filter(|&&c| c == b'\n')
            .count();
        assert_eq!(breaks, 51);
        // Fewer breaks than asked for: the whole window.
        assert_eq!(log.lines_back(size - 30, 50).unwrap(), size - 30);
        // An unfinished last line counts as one, done or not.
        for done in [true, false] {
            let s = log.last_lines(50, 4_000_000, done).unwrap();
            assert!(
                s.text.starts_with("line 199951\n"),
                "{done}: {}",
                &s.text[..20]
            );
            assert!(s.text.ends_with("line 199999\nunfinished"), "{done}");
            assert_eq!(s.range, [size - s.text.len() as u64, size]);
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn pieces_end_on_character_boundaries() {
        // "aé€😀" = 61 | c3 a9 | e2 82 ac | f0 9f 98 80
        let b = "aé€😀".as_bytes();
        for (n, want) in [
            (1, 1),
            (2, 1),
            (3, 3),
            (4, 3),
            (5, 3),
            (6, 6),
            (7, 6),
            (8, 6),
            (9, 6),
            (10, 10),
        ] {
            assert_eq!(whole_chars_end(&b[..n]), want, "{n}");
        }
        // Not UTF-8: cut where asked; a lone start byte is not emptied.
        assert_eq!(whole_chars_end(&[0xff, 0xfe]), 2);
        assert_eq!(whole_chars_end(&[0xe2]), 1);
        assert_eq!(whole_chars_end(&[0x80, 0x80, 0x80, 0x80]), 4);
    }

    #[test]
    fn utf8_is_never_split_at_the_end_of_a_read() {
        // "aé€" = 61 | c3 a9 | e2 82 ac
        let p = file_with("utf8", "aé€".as_bytes());
        let log = open_log(&p).unwrap();
        // A budget that cuts "é": stop before it, whatever the state.
        let s = log.span(0, 2, true).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("a", [0, 1]));
        let s = log.span(1, 4, true).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("é", [1, 3]));
        // A budget below one character reads that character whole.
        let s = log.span(3, 1, true).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("€", [3, 6]));
        let s = log.span(1, 1, false).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("é", [1, 3]));
        // The end of a running job's log: an incomplete character waits.
        std::fs::write(&p, &"aé€".as_bytes()[..5]).unwrap();
        let log = open_log(&p).unwrap();
        let s = log.span(0, 100, false).unwrap();
        assert_eq!((s.text.as_str(), s.range), ("aé", [0, 3]));
        assert_eq!(log.span(3, 100, false).unwrap().range, [3, 3]);
        // ...and is final once the job is done.
        assert_eq!(log.span(3, 100, true).unwrap().range, [3, 5]);
        // A budget below that unfinished character waits for it too.
        assert_eq!(log.span(3, 1, false).unwrap().range, [3, 3]);
        assert_eq!(log.span(3, 1, true).unwrap().range, [3, 5]);
        // The end window starts after a split character.
        let s = log.end(0, 3, true).unwrap().unwrap();
        assert_eq!(s.range, [3, 5]);
        let s = log.end(0, 4, true).unwrap().unwrap();
        assert_eq!((s.text.as_str(), s.range[0]), ("é\u{fffd}", 1));
        assert!(log.end(5, 4, true).unwrap().is_none());
        // So does a window of last lines, with or without a line limit.
        for lines in [0, 50] {
            let s = log.last_lines(lines, 3, true).unwrap();
            assert_eq!((s.text.as_str(), s.range), ("\u{fffd}", [3, 5]));
        }
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn lossy_offsets_follow_the_replaced_text() {
        let b = b"\xff\xc3\xa9x";
        let text = String::from_utf8_lossy(b);
        assert_eq!(text, "\u{fffd}\u{e9}x");
        // In the invalid byte, before, inside and after the character.
        let at: Vec<usize> = (0..=4).map(|i| lossy_offset(b, i)).collect();
        assert_eq!(at, [0, 3, 3, 5, 6]);
        assert_eq!(lossy_offset(b"ab", 1), 1);
        // A cursor inside "é" after an invalid byte: "é" ends past it.
        let p = file_with("grep-lossy", b"\xff\xc3\xa9\n");
        let log = open_log(&p).unwrap();
        let pat = Pattern::new("\u{e9}", false).unwrap();
        let mut g = Grep::new(&pat, "stdout", 0, 1000, true);
        log.grep(2, &mut g);
        assert_eq!(g.ring.len(), 1);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn a_match_counts_past_the_cursor_only() {
        let c = |p: &str| Pattern::new(p, false).unwrap();
        let r = |p: &str| Pattern::new(p, true).unwrap();
        // Overlapping occurrences: the later one reaches past byte 2.
        assert!(c("aa").ends_after("aaa", 2));
        assert!(!c("aa").ends_after("aaab", 3));
        assert!(c("").ends_after("ab", 1));
        assert!(!c("").ends_after("ab", 2));
        // The first regex match lies before the cursor, a later one not.
        assert!(r("a.").ends_after("abxaby", 4));
        assert!(!r("^a.").ends_after("abxaby", 4));
        // Multi-byte text: positions are byte offsets.
        assert!(c("é!").ends_after("café!", 5));
        assert!(!c("é").ends_after("café!", 5));
        // A grep from a cursor inside a line reports the whole line.
        let p = file_with("grep-cursor", b"notREADY-yet\nREADY\n");
        let log = open_log(&p).unwrap();
        let pat = c("READY");
        let mut g = Grep::new(&pat, "stdout", 0, 1000, true);
        assert_eq!(log.grep(9, &mut g), log.size);
        let got: Vec<(&str, u64)> = g.ring.iter().map(|m| (m.line.as_str(), m.offset)).collect();
        assert_eq!(got, [("READY", 13)]);
        let pat = c("Y-y");
        let mut g = Grep::new(&pat, "stdout", 0, 1000, true);
        log.grep(9, &mut g);
        assert_eq!(g.ring[0].line, "notREADY-yet");
        assert_eq!(g.ring[0].offset, 0);
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
