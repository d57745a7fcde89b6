//! `tail [--tail-lines N] [--max-bytes N] [--since CURSOR]
//! [--grep PATTERN [--grep-type T] [--output-stream S]] JOB_ID`: read a
//! job's logs from outside, in bounded reads, whatever their size.
//!
//! Three modes, one document (`type: "tail"`):
//! - plain: the last `--tail-lines` lines within the last `--max-bytes`
//!   of each log (one pread each), starting at a character boundary (a
//!   window that begins inside a character skips its last 1-3 bytes, as
//!   the end `run` and `wait` return does);
//! - `--since CURSOR`: the output written after the cursor, at most
//!   `--max-bytes` per stream from the *start* of the new output
//!   (`--tail-lines` does not apply), so a loop of `tail --since` reads
//!   every byte of both streams exactly once, in order. A budget smaller
//!   than the character at the cursor reads that one character whole (up
//!   to 3 bytes over): split, it would be U+FFFD twice, and the loop's
//!   texts would no longer join to the log (`observe::Log::span`);
//! - `--grep`: `matches` (stdout's first, each stream in offset order):
//!   the last `--tail-lines` matching lines per stream, at most
//!   `--max-bytes` of line text per stream. `stdout`/`stderr` are empty
//!   and the ranges are the bytes searched. With `--since`, only the new
//!   output is searched. In a capped log the pieces of the line its gap
//!   cuts are not lines and never match (`observe::Log::grep`).
//!
//! Invariants
//! - Every answer carries `cursor`, just after the last byte it
//!   included: the end of each returned range (for grep, of each range
//!   searched; a stream `--output-stream` leaves out keeps its position).
//! - The state is read before the logs: a terminal state means the logs
//!   are complete (D15), so an incomplete UTF-8 character or an
//!   unfinished line at the end of a finished job's log is final and
//!   returned, while a running job's is left for the next read.
//! - Every path printed exists (D41): a log that does not (removed by
//!   hand) reads as empty, and its `*_log_path` is left out. Nothing is
//!   written into the job directory to make it exist.
//! - A bad cursor is `invalid_cursor` (exit 2, HTTP 400), never a silent
//!   restart; a bad regex is `invalid_pattern`.
//! - Grep streams through the log in 64 KiB chunks and keeps only the
//!   last matches in a ring: memory is bounded by the chunk, one line
//!   piece (64 KiB, D32) and `--max-bytes`, not by the log.
//!
//!
//! Following (`--follow`/`-f`, `[--raw] [--until D]`): the documented
//! exception to one document per call. From the start of the logs (or
//! `--since`) until the job is terminal (or `--until`), NDJSON on stdout:
//! `{"type":"output","stream","data","range":[a,b]}` per piece as it is
//! written (at most 64 KiB, whole UTF-8 characters but at the very end),
//! then `{"type":"end","state","exit_code","signal"?,"cursor",
//! "failure"?,"output_lost"?}`. A job run with `--retry` is followed through every
//! attempt: when the next attempt's logs begin,
//! `{"type":"attempt","attempt":n}`, then that attempt's output with ranges in its own logs (from 0); the end's
//! cursor is the last attempt's. `--raw` writes the bytes themselves
//! instead (stdout's to stdout, stderr's to stderr) and nothing else but
//! marker lines: a capped log's gap in its stream, as the log shows it,
//! and `[agent-exec: attempt n]` on stderr. Errors before the stream
//! starts (bad id or cursor) are the usual one error document;
//! `GET /tail/{id}?follow=true` sends the same lines in an HTTP chunked
//! body (`serve`).
//! - Per stream nothing is lost or reordered: the pieces' ranges are
//!   contiguous and their data concatenate to the log (`observe::Follower`
//!   reads from where it stopped; it wakes on each write through inotify
//!   and ends on the job lock / terminal state, never on a tick).
//! - Memory stays bounded: one 64 KiB read buffer and one batch of
//!   output lines (sent at 64 KiB, or whenever the follower catches up).
//!
//! Rejected: grep with `--since` returning matches *and* the new text
//! (twice the bytes for the same information); reading whole logs with
//! `read_to_end` for grep (a 200 MB log would cost 200 MB); teeing the
//! job's pipes to followers in the supervisor (a slow follower would
//! slow the job; the logs are already the record).

use std::io::Write;

use serde::Serialize;

use crate::cli::Matches;
use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::job::Job;
use crate::observe::{self, FollowEnd, FollowSink, Follower, Grep, Log, Match, Pattern, Slice};
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct TailBody {
    pub job_id: String,
    pub stdout: String,
    pub stderr: String,
    pub encoding: &'static str,
    /// Absent when the log does not exist (removed by hand): every path
    /// we print exists (D41). Such a log reads as empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_log_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_log_path: Option<String>,
    pub stdout_range: [u64; 2],
    pub stderr_range: [u64; 2],
    pub stdout_total_bytes: u64,
    pub stderr_total_bytes: u64,
    pub cursor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    /// Bytes a capped log (`--max-log-bytes`) dropped from its middle.
    pub stdout_dropped_bytes: u64,
    pub stderr_dropped_bytes: u64,
    /// With `--since`: bytes after the cursor that were dropped and so
    /// passed over (the text starts after the gap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_skipped_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_skipped_bytes: Option<u64>,
    /// Output the job wrote that could not be stored, as `status` says
    /// (absent when the logs hold everything).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<crate::job::OutputLoss>,
}

/// What to read; the defaults are `tail`'s.
pub struct TailReq<'a> {
    pub lines: u64,
    pub max_bytes: u64,
    pub since: Option<&'a str>,
    /// `(pattern, regex?, stream filter)`.
    pub grep: Option<(&'a str, bool, &'a str)>,
}

impl<'a> TailReq<'a> {
    /// From a command's arguments (the CLI's or MCP's).
    pub fn from_matches(m: &'a Matches) -> TailReq<'a> {
        TailReq {
            lines: m.u64("tail-lines").unwrap_or(50),
            max_bytes: m.u64("max-bytes").unwrap_or(65536),
            since: m.get("since"),
            grep: m.get("grep").map(|p| {
                (
                    p,
                    m.get("grep-type") == Some("regex"),
                    m.get("output-stream").unwrap_or("either"),
                )
            }),
        }
    }
}

/// The job's state, read before its logs (so that a terminal state means
/// they are complete). A job we cannot read the state of (None) is
/// treated as still writing: that only holds back an unfinished
/// character or line, never loses it.
fn state_first(job: &Job) -> Option<crate::job::State> {
    observe::current_state(job).ok()
}

pub fn tail_body(job: &Job, req: &TailReq) -> Result<TailBody> {
    tail_inner(job, req).map_err(|e| e.in_job(&job.id))
}

fn tail_inner(job: &Job, req: &TailReq) -> Result<TailBody> {
    // Check the pattern and the cursor's own form before any I/O.
    let pattern = match req.grep {
        Some((p, regex, _)) => Some(Pattern::new(p, regex)?.for_job(job)),
        None => None,
    };
    let since = req.since.map(|s| Cursor::decode(s, &job.id)).transpose()?;
    let state = state_first(job);
    let done = state.as_ref().is_some_and(|s| s.status().is_terminal());
    let mut logs = job.clone();
    let mut out = observe::open_log(&job.stdout_path())?;
    let mut err = observe::open_log(&job.stderr_path())?;
    // The run the state names was kept under runs/ since (a `restart`
    // moving it, or one that died before its next state was written):
    // its logs are there, and the job's are the next run's. Asked after
    // the open, as `run::read_inline_of` does, so that either way round
    // the logs read are that run's.
    if let Some(kept) = state
        .as_ref()
        .and_then(|st| crate::runs::moved_since(job, st))
    {
        out = observe::open_log(&kept.stdout_path())?;
        err = observe::open_log(&kept.stderr_path())?;
        logs = kept;
    }
    if let Some(c) = &since {
        out.check_since("stdout.log", c.out, c.out_tag)?;
        err.check_since("stderr.log", c.err, c.err_tag)?;
    }
    let from = since.unwrap_or_default();
    let (o, e, matches) = match (&pattern, req.grep) {
        (Some(p), Some((_, _, which))) => {
            let mut ms = Vec::new();
            let o = grep_stream(&out, "stdout", from.out, which, p, req, done, &mut ms)?;
            let e = grep_stream(&err, "stderr", from.err, which, p, req, done, &mut ms)?;
            (o, e, Some(ms))
        }
        _ => {
            let read = |log: &mut Log, off: u64| match since {
                Some(_) => log.span(off, req.max_bytes, done),
                None => log.read_fresh(
                    |l| l.last_lines(req.lines, req.max_bytes, done),
                    |s| !s.text.is_empty(),
                ),
            };
            (read(&mut out, from.out)?, read(&mut err, from.err)?, None)
        }
    };
    let cursor = observe::cursor_after((&out, &o), (&err, &e));
    Ok(TailBody {
        job_id: job.id.clone(),
        stdout: o.text,
        stderr: e.text,
        encoding: "utf-8-lossy",
        stdout_log_path: out.exists().then(|| logs.stdout_display()),
        stderr_log_path: err.exists().then(|| logs.stderr_display()),
        stdout_range: o.range,
        stderr_range: e.range,
        stdout_total_bytes: o.total,
        stderr_total_bytes: e.total,
        cursor: cursor.encode(&job.id),
        matches,
        stdout_dropped_bytes: out.dropped,
        stderr_dropped_bytes: err.dropped,
        stdout_skipped_bytes: since.map(|_| o.skipped),
        stderr_skipped_bytes: since.map(|_| e.skipped),
        output_lost: state.map(|s| s.output_lost).unwrap_or_default(),
    })
}

/// Search one stream from `from` (when `which` selects it) and append
/// its matches; the slice has no text, and the range searched.
#[allow(clippy::too_many_arguments)]
fn grep_stream(
    log: &Log,
    name: &'static str,
    from: u64,
    which: &str,
    pattern: &Pattern,
    req: &TailReq,
    done: bool,
    out: &mut Vec<Match>,
) -> Result<Slice> {
    let (end, skipped) = if which == name || which == "either" {
        let mut g = Grep::new(pattern, name, req.lines, req.max_bytes, done);
        let end = log.grep(from, &mut g);
        let skipped = g.skipped;
        let found = g.matches()?;
        out.try_reserve(found.len())
            .map_err(|_| observe::out_of_memory("keep the matching lines"))?;
        out.extend(found);
        (end, skipped)
    } else {
        (from, 0)
    };
    Ok(Slice {
        text: String::new(),
        range: [from, end],
        total: log.size,
        dropped: log.dropped,
        skipped,
    })
}

/// Where batches of NDJSON lines go: stdout, or an HTTP chunked body.
pub trait Batches {
    fn send(&mut self, batch: &[u8]) -> std::io::Result<()>;
}

/// The `--follow` NDJSON lines, gathered into batches of about
/// `BATCH` bytes (a batch is also sent whenever the follower catches up,
/// so a line is never held back while the job is quiet).
pub struct Ndjson<B: Batches> {
    pub to: B,
    buf: Vec<u8>,
}

/// As `FOLLOW_CHUNK`: a batch's buffer is resident memory.
const BATCH: usize = 32 * 1024;
const BATCH_ROOM: usize = 3 * BATCH;

impl<B: Batches> Ndjson<B> {
    pub fn new(to: B) -> Ndjson<B> {
        Ndjson {
            to,
            // A batch is sent once it passes BATCH, so it holds at most
            // BATCH plus one chunk's line (a 64 KiB chunk of text, a few
            // per cent larger escaped): room for that from the start, so
            // that a fast writer's follow never reallocates (each
            // realloc of a block this size is an mremap or a copy).
            buf: Vec::with_capacity(BATCH_ROOM),
        }
    }

    /// Send the end object (its own batch, after all output).
    pub fn end(&mut self, end: &FollowEnd, job: &Job, cursor: &Cursor) -> std::io::Result<()> {
        #[derive(Serialize)]
        struct End<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            state: &'a str,
            exit_code: Option<i32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            signal: Option<&'a str>,
            cursor: String,
            /// Why a `failed` job failed, as `status` says.
            #[serde(skip_serializing_if = "Option::is_none")]
            failure: Option<&'a crate::job::Failure>,
            /// As `status` lists it; absent when nothing was lost.
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            output_lost: &'a [crate::job::OutputLoss],
        }
        let (st, terminal) = match end {
            FollowEnd::Ended(st) => (st, true),
            FollowEnd::Until(st) => (st, st.status().is_terminal()),
            FollowEnd::Left => return Ok(()),
        };
        let doc = End {
            kind: "end",
            state: st.status().as_str(),
            exit_code: st.result.exit_code.filter(|_| terminal),
            signal: st.result.signal.as_deref().filter(|_| terminal),
            cursor: cursor.encode(&job.id),
            failure: st.failure.as_ref().filter(|_| terminal),
            output_lost: &st.output_lost,
        };
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, &doc).map_err(std::io::Error::other)?;
        self.buf.push(b'\n');
        self.to.send(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<B: Batches> FollowSink for Ndjson<B> {
    fn output(&mut self, stream: &'static str, from: u64, bytes: &[u8]) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(bytes);
        self.buf
            .extend_from_slice(b"{\"type\":\"output\",\"stream\":\"");
        self.buf.extend_from_slice(stream.as_bytes());
        self.buf.extend_from_slice(b"\",\"data\":");
        json_string(&mut self.buf, &text);
        let end = from + bytes.len() as u64;
        writeln!(self.buf, ",\"range\":[{from},{end}]}}")?;
        if self.buf.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    /// A capped log's gap: one `{"type":"gap"}` line between the pieces
    /// on either side of it.
    fn skipped(&mut self, stream: &'static str, from: u64, to: u64) -> std::io::Result<()> {
        writeln!(
            self.buf,
            "{{\"type\":\"gap\",\"stream\":\"{stream}\",\"range\":[{from},{to}],\"skipped_bytes\":{}}}",
            to - from
        )
    }

    /// The next `--retry` attempt's logs begin: one
    /// `{"type":"attempt","attempt":n}` line, after the earlier
    /// attempt's last output and before the new one's first (whose
    /// ranges start again at 0).
    fn attempt(&mut self, attempt: u32) -> std::io::Result<()> {
        writeln!(self.buf, "{{\"type\":\"attempt\",\"attempt\":{attempt}}}")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            self.to.send(&self.buf)?;
            self.buf.clear();
            // One-off growth (a batch of escaped control bytes, up to six
            // times its size) goes back; ordinary batches fit as they are.
            if self.buf.capacity() > 4 * BATCH_ROOM {
                self.buf.shrink_to(BATCH_ROOM);
            }
        }
        Ok(())
    }
}

/// `text` as a JSON string, appended to `out`: the same escapes as
/// serde_json (`\"`, `\\`, `\n` and the other short forms, `\u00XX` for
/// the rest below 0x20), found eight bytes at a time so that runs of
/// plain text are copied whole. A follow of a fast writer is mostly this:
/// serde_json's byte-at-a-time loop was half of its time.
fn json_string(out: &mut Vec<u8>, text: &str) {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    // Does any byte of `w` need escaping? (< 0x20, '"' or '\\'; bytes
    // of 0x80 and up never do, and are masked out.) False positives only
    // send a byte down the slow path.
    let special = |w: u64| {
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        (w.wrapping_sub(LO * 0x20) | zero(w ^ (LO * b'"' as u64)) | zero(w ^ (LO * b'\\' as u64)))
            & !w
            & HI
            != 0
    };
    // Runs are short (a line each): they are gathered in a small buffer
    // with block copies, not one memcpy call apiece (musl's memcpy starts
    // a `rep movs` per call).
    let mut tmp = [0u8; 4096];
    let mut n = 0;
    let mut put = |out: &mut Vec<u8>, bytes: &[u8], n: &mut usize| {
        if *n + bytes.len() > tmp.len() {
            out.extend_from_slice(&tmp[..*n]);
            *n = 0;
            if bytes.len() > tmp.len() {
                out.extend_from_slice(bytes);
                return;
            }
        }
        crate::supervisor::copy_short(&mut tmp[*n..*n + bytes.len()], bytes);
        *n += bytes.len();
    };
    let b = text.as_bytes();
    out.reserve(b.len() + 2);
    put(out, b"\"", &mut n);
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        if let Some(word) = b.get(i..i + 8) {
            let mut w8 = [0u8; 8];
            w8.copy_from_slice(word);
            if !special(u64::from_le_bytes(w8)) {
                i += 8;
                continue;
            }
        }
        let c = b[i];
        let mut hex = [b'\\', b'u', b'0', b'0', 0, 0];
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                hex[4] = HEX[(c >> 4) as usize];
                hex[5] = HEX[(c & 15) as usize];
                &hex
            }
            _ => {
                i += 1;
                continue;
            }
        };
        put(out, &b[start..i], &mut n);
        put(out, esc, &mut n);
        i += 1;
        start = i;
    }
    put(out, &b[start..], &mut n);
    put(out, b"\"", &mut n);
    out.extend_from_slice(&tmp[..n]);
}

/// The first failed write of a follow other than EPIPE (a full disk, an
/// I/O error): a reader that left ends a follow quietly, but this lost
/// what the job wrote, and the exit status must say so.
static LOST: std::sync::Mutex<Option<(&str, std::io::Error)>> = std::sync::Mutex::new(None);

/// Note `e` (see `LOST`) and hand it back.
fn noted(e: std::io::Error, what: &'static str) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        let copy = match e.raw_os_error() {
            Some(n) => std::io::Error::from_raw_os_error(n),
            None => std::io::Error::new(e.kind(), e.to_string()),
        };
        let mut lost = LOST.lock().unwrap_or_else(|p| p.into_inner());
        lost.get_or_insert((what, copy));
    }
    e
}

/// This process's stdout, written straight through.
struct Stdout;

impl Batches for Stdout {
    fn send(&mut self, batch: &[u8]) -> std::io::Result<()> {
        self.send_all(batch).map_err(|e| noted(e, "stdout"))
    }
}

impl Stdout {
    fn send_all(&mut self, batch: &[u8]) -> std::io::Result<()> {
        let mut out = crate::output::Patient(std::io::stdout().lock());
        if crate::output::yaml() {
            // `--yaml`: each line as a document of a YAML stream, each
            // after its `---` (a batch holds whole lines only).
            let mut text = String::new();
            for line in String::from_utf8_lossy(batch).lines() {
                text.push_str("---\n");
                text.push_str(&crate::yaml::json_to_yaml(line).map_err(std::io::Error::other)?);
            }
            out.write_all(text.as_bytes())?;
        } else {
            out.write_all(batch)?;
        }
        out.flush()
    }
}

/// `--raw`: each stream's bytes to our own stream of that name.
struct Raw {
    /// What was last written to [stdout, stderr] ended a line (or nothing
    /// was).
    at_line_start: [bool; 2],
}

impl FollowSink for Raw {
    fn output(&mut self, stream: &'static str, _from: u64, bytes: &[u8]) -> std::io::Result<()> {
        let i = usize::from(stream != "stdout");
        if let Some(&last) = bytes.last() {
            self.at_line_start[i] = last == b'\n';
        }
        if i == 0 {
            let mut out = crate::output::Patient(std::io::stdout().lock());
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .map_err(|e| noted(e, "stdout"))
        } else {
            std::io::stderr()
                .lock()
                .write_all(bytes)
                .map_err(|e| noted(e, "stderr"))
        }
    }

    /// A new `--retry` attempt: a marker line in the style of the gap's
    /// on stderr, on a line of its own, so that stdout stays the job's
    /// bytes alone (which is what --raw is for).
    fn attempt(&mut self, attempt: u32) -> std::io::Result<()> {
        let sep = if self.at_line_start[1] { "" } else { "\n" };
        self.at_line_start[1] = true;
        writeln!(
            std::io::stderr().lock(),
            "{sep}[agent-exec: attempt {attempt}]"
        )
        .map_err(|e| noted(e, "stderr"))
    }

    /// The bytes themselves have no room for a note: the gap is shown as
    /// the log shows it, one marker line.
    /// On a line of its own, as in the log: a line break first only
    /// after bytes that did not end one (no blank line the job never
    /// printed).
    fn skipped(&mut self, stream: &'static str, from: u64, to: u64) -> std::io::Result<()> {
        let mid_line = !self.at_line_start[usize::from(stream != "stdout")];
        let m = crate::logcap::marker(to - from, mid_line);
        self.output(stream, from, &m)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `tail --follow`: checks (id, cursor) first, so that their errors are
/// the usual one document; then streams, and exits here.
fn follow(m: &Matches, job: &Job) -> Result<Output> {
    // A stop signal (HUP, INT, TERM) ends the follow as `--until` would:
    // after whole lines, with the end line (`observe::until_stopped`).
    let _ = crate::sys::hold_stop_signals();
    let since = m
        .get("since")
        .map(|s| Cursor::decode(s, &job.id))
        .transpose()?;
    let mut f = Follower::new(job, since.as_ref())?;
    let deadline = m.duration_ms("until").and_then(crate::time::deadline_after);
    let raw = m.has("raw");
    // Whoever reads our stdout may go while the job is quiet (`tail -f
    // JOB | head -1`): the follow ends then, not at the job's next write.
    let look = || {
        if crate::sys::output_gone(1) {
            observe::Stir::Left
        } else {
            observe::Stir::Quiet
        }
    };
    let reader = observe::Client {
        fd: 1,
        events: 0,
        look: &look,
    };
    let res = if raw {
        let mut sink = Raw {
            at_line_start: [true; 2],
        };
        observe::until_stopped(|| f.run(job, &mut sink, deadline, Some(reader)))
    } else {
        let mut sink = Ndjson::new(Stdout);
        observe::until_stopped(|| f.run(job, &mut sink, deadline, Some(reader))).inspect(|end| {
            // A failed write means nobody reads: nothing more to say.
            let _ = sink.end(end, job, &f.cursor());
        })
    };
    // A write that failed for another reason than a reader gone lost
    // output: said on stderr, and exit 1 (no line more on stdout).
    let lost = LOST.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((what, why)) = lost {
        let e = Error::io(format!("write the follow to {what}"), why).in_job(&job.id);
        crate::output::error_line(&e);
        std::process::exit(e.exit_code());
    }
    match res {
        Ok(_) => Ok(Output::Done),
        Err(e) => {
            // Mid-stream: the error is the stream's last line (NDJSON),
            // plus the usual line on stderr; never a second document.
            let e = e.in_job(&job.id);
            crate::output::error_line(&e);
            if !raw {
                let mut line = crate::output::error_json(&e).into_bytes();
                line.push(b'\n');
                let _ = Stdout.send(&line);
            }
            std::process::exit(e.exit_code());
        }
    }
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    if m.has("follow") || m.has("raw") {
        return follow(m, &job).map_err(|e: Error| e.in_job(&job.id));
    }
    let body = tail_body(&job, &TailReq::from_matches(m))?;
    Ok(Output::Doc(
        Response::new("tail", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_match_serde_json() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain text of some length, no escapes at all here".into(),
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{1}i\u{1f}j\u{7f}k é 日本 😀".into(),
        ];
        for c in 0u8..=127 {
            for n in [1usize, 7, 8, 9, 17] {
                let mut t = "x".repeat(n);
                t.push(c as char);
                t.push_str("yz");
                samples.push(t);
            }
        }
        for t in samples {
            let mut mine = Vec::new();
            json_string(&mut mine, &t);
            assert_eq!(
                String::from_utf8(mine).unwrap(),
                serde_json::to_string(&t).unwrap(),
                "{t:?}"
            );
        }
    }
}
