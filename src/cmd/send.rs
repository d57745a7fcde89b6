//! `send JOB_ID [TEXT] [--newline | --file PATH] [--eof] [--yield D]`:
//! write to an interactive job's stdin through its supervisor (see
//! `input`), then watch the job for `--yield` and answer with what it
//! wrote meanwhile — the loop of a REPL or a prompt, one call per turn.
//!
//! Invariants
//! - The answer's output is exactly what the logs gained after the send
//!   began: read from the sizes the logs had just before, bounded by
//!   `--max-bytes` per stream, with a cursor just after it. The logs are
//!   the files open since then: when the run ends during the yield and
//!   `--retry` keeps it in `runs/` for the next run, the output is still
//!   that run's, and `attempt` says which run it is.
//! - A job that stops reading never holds `send` past its `--yield`:
//!   the supervisor answers by then with the bytes that got in.
//! - A send that could not get in at all by the end of its yield (more
//!   senders than the supervisor takes at once) is `invalid_state`,
//!   retryable: none of its bytes reached the job, nor will (`input`).
//!   More than `input::MAX_MESSAGE` bytes is `stdin_too_large`.
//! - `stdin_open` is about the run the send reached: false once it has
//!   ended, also when a `--retry` run follows.
//! - A job not started with `-i`/`--tty` is `invalid_state`, and so is
//!   an interactive one that has not started yet (`created`, `queued`:
//!   its supervisor opens stdin.sock when the job runs); one whose stdin
//!   was closed (or that has ended) is `stdin_closed`.
//! - Input that reaches the job but that stdin.log cannot record (a full
//!   disk, a symlink in its place) still counts in `bytes_written`, and
//!   the answer says how much of it is missing from the record, and why
//!   (`input_lost`); the job's state lists it too (`output_lost`, stream
//!   `stdin`).
//! - A send that begins inside bytes a capped log dropped reads on from
//!   the kept tail and says how many it passed over (`*_skipped_bytes`),
//!   as `tail --since` does for a cursor in the gap.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{Failure, Job, Status};
use crate::observe;
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct SendBody {
    pub job_id: String,
    pub state: &'static str,
    pub bytes_written: u64,
    pub stdin_open: bool,
    /// Of `bytes_written`, those stdin.log could not record, and why
    /// (`stream` "stdin"): the job has them, its record of input does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_lost: Option<crate::job::OutputLoss>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_range: [u64; 2],
    pub stderr_range: [u64; 2],
    pub stdout_total_bytes: u64,
    pub stderr_total_bytes: u64,
    pub encoding: &'static str,
    pub waited_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// What the job could not store so far, as `status` lists it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<crate::job::OutputLoss>,
    /// Just after the output returned: `tail --since` reads on from here.
    pub cursor: String,
    /// Bytes a capped log (`--max-log-bytes`) dropped from its middle.
    pub stdout_dropped_bytes: u64,
    pub stderr_dropped_bytes: u64,
    /// Bytes written after the send began that the cap had dropped by the
    /// time they were read: passed over, the text starts after them.
    pub stdout_skipped_bytes: u64,
    pub stderr_skipped_bytes: u64,
    /// The run whose logs the output (ranges, totals, cursor) is from:
    /// the one the send reached. Under `--retry` it may have ended during
    /// the yield (its logs kept in `runs/<attempt>/`) while `state`
    /// describes the job, which runs on.
    pub attempt: u32,
}

/// What to send.
pub struct SendRequest {
    pub data: Vec<u8>,
    pub eof: bool,
    pub record: bool,
    pub yield_ms: u64,
    pub max_bytes: u64,
}

/// The operation, for the CLI and the server alike.
pub fn send_job(job: &Job, req: &SendRequest) -> Result<SendBody> {
    send_job_or(job, req, None)
}

/// `send_job`, ending the yield early when `give_up` stirs (an MCP
/// client's cancellation, the server's stop): the bytes not in yet stay
/// out, and the answer is the one the yield's end would give.
pub fn send_job_or(
    job: &Job,
    req: &SendRequest,
    give_up: Option<std::os::fd::RawFd>,
) -> Result<SendBody> {
    let meta = job.read_meta()?;
    if !meta.interactive {
        return Err(Error::InvalidState(format!(
            "invalid job state: job {} was not started with --interactive or --tty; its stdin is not open",
            job.id
        )));
    }
    let before = observe::current_state(job)?;
    if before.status().is_terminal() {
        return Err(ended(job));
    }
    if let Some(e) = not_started(job, before.status()) {
        return Err(e);
    }
    // Where the new output begins: the logs are kept open from here to
    // the answer, so that it is read from the files this run writes even
    // when the run ends during the yield and `--retry` moves them to
    // runs/ (by link: the open files stay the same) for the next run.
    let mut out_log = observe::open_log(&job.stdout_path())?;
    let mut err_log = observe::open_log(&job.stderr_path())?;
    // (From the start of a character the job has only begun to write:
    // the answer starts on a character boundary, as every read does.)
    let from = [out_log.whole_chars_end()?, err_log.whole_chars_end()?];
    let t0 = Instant::now();
    let wait = Duration::from_millis(req.yield_ms);
    // A stop (signal, `give_up`) ends the wait for the bytes to get in
    // too, as the yield's end would: a job that does not read holds the
    // send no longer than it holds the watching below.
    let sent = observe::until_stopped(|| {
        crate::input::send(&job.dir, &req.data, req.eof, req.record, wait, give_up)
    });
    let reply = sent.map_err(|e| {
            // Bytes may have got in (the supervisor began writing, then
            // died or went quiet): said so, whatever the state is now
            // (an ended job read as stdin_closed, "nothing sent").
            let unanswered = crate::input::unanswered(&e);
            if unanswered == Some(crate::input::Unanswered::MayHaveGotIn) {
                return Error::io(format!("send to job {}", job.id), e);
            }
            // No socket, or nobody at it: the state says why (the job
            // ended, or was made `created` again by a restart meanwhile).
            let status = observe::current_state(job).map(|s| s.status());
            match status {
                Ok(s) if s.is_terminal() => ended(job),
                Ok(s) => match not_started(job, s) {
                    Some(not) => not,
                    // Nothing of it reached the job, nor will: the same
                    // send later is no repeat.
                    None if unanswered == Some(crate::input::Unanswered::NotTaken) => Error::Busy(format!(
                        "invalid job state: job {} took none of this send's bytes within --yield (other sends were ahead of it); nothing was written: try again",
                        job.id
                    )),
                    // Running, but the supervisor has already let go of
                    // stdin.sock: its run is ending (or between retries).
                    // Or it let go with this send connected and not taken
                    // (EOF or a reset before it said it writes): none of
                    // the bytes got in, as for a socket already gone.
                    None if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound
                            | std::io::ErrorKind::ConnectionRefused
                            | std::io::ErrorKind::ConnectionReset
                            | std::io::ErrorKind::UnexpectedEof
                    ) =>
                    {
                        // A `--retry` job may be between two runs, the
                        // next of which takes input: later may work.
                        if meta.retry.is_some() {
                            Error::Busy(format!(
                                "invalid job state: job {} is between two --retry runs (or its last is ending); its next run takes input: try again",
                                job.id
                            ))
                        } else {
                            closed(job, "its stdin.sock is gone (the run is ending)")
                        }
                    }
                    None => Error::io(format!("send to job {}", job.id), e),
                },
                Err(_) => Error::io(format!("send to job {}", job.id), e),
            }
        })?;
    if reply.error.is_some() {
        return Err(closed(job, "its stdin was closed"));
    }
    // Watch for the answer: until the yield is spent, or the job ends.
    let left = wait.saturating_sub(t0.elapsed());
    // A stop signal ends the yield as its end would (`until_stopped`).
    let st = observe::until_stopped(|| {
        observe::wait_terminal_or(job, Instant::now().checked_add(left), give_up)
    })?;
    let terminal = st.status().is_terminal();
    // The run the logs held are from: the one read before the send,
    // unless they are the logs the job has now (opened just after an
    // archive, before the state named the next run).
    let now_out = observe::open_log(&job.stdout_path())?;
    let attempt = if out_log.exists() && now_out.tag == out_log.tag {
        st.attempt()
    } else {
        before.attempt()
    };
    // An ended run's logs are complete: its unfinished last character
    // (or a missing log, still missing) is final.
    let ended = terminal || attempt < st.attempt();
    for (log, path) in [
        (&mut out_log, job.stdout_path()),
        (&mut err_log, job.stderr_path()),
    ] {
        if log.exists() {
            log.reread()?;
        } else if !ended {
            *log = observe::open_log(&path)?;
        }
    }
    let out = out_log.span(from[0].min(out_log.size), req.max_bytes, ended)?;
    let err = err_log.span(from[1].min(err_log.size), req.max_bytes, ended)?;
    let cursor = observe::cursor_after((&out_log, &out), (&err_log, &err)).encode(&job.id);
    // The loss this send met is the job's too, whether or not the state
    // read here has it yet (its supervisor records it; on a full disk
    // that record may not be written before the answer, or at all).
    let mut output_lost = st.output_lost.clone();
    if let Some(lost) = &reply.input_lost {
        if !output_lost.iter().any(|l| l.stream == lost.stream) {
            output_lost.push(lost.clone());
        }
    }
    Ok(SendBody {
        job_id: job.id.clone(),
        state: st.status().as_str(),
        bytes_written: reply.bytes_written.unwrap_or(0),
        // The input the send reached is the run's it reached: closed once
        // that run has ended, whether the job has (`terminal`) or a
        // `--retry` run is next (which takes input of its own).
        stdin_open: reply.stdin_open.unwrap_or(false) && !ended,
        input_lost: reply.input_lost,
        stdout: out.text,
        stderr: err.text,
        stdout_range: out.range,
        stderr_range: err.range,
        stdout_total_bytes: out.total,
        stderr_total_bytes: err.total,
        encoding: "utf-8-lossy",
        waited_ms: t0.elapsed().as_millis() as u64,
        exit_code: st.result.exit_code.filter(|_| terminal),
        signal: st.result.signal.clone().filter(|_| terminal),
        finished_at: st.finished_at.clone().filter(|_| terminal),
        timed_out: terminal.then_some(st.result.timed_out),
        failure: st.failure.clone(),
        output_lost,
        cursor,
        stdout_dropped_bytes: out.dropped,
        stderr_dropped_bytes: err.dropped,
        stdout_skipped_bytes: out.skipped,
        stderr_skipped_bytes: err.skipped,
        attempt,
    })
}

/// The answer for a job that reads ended: `stdin_closed`, unless a
/// `restart` is under way (its next run takes input: retryable).
fn ended(job: &Job) -> Error {
    if job.is_restarting() {
        return Error::Busy(format!(
            "invalid job state: job {} is being restarted; its stdin opens when the next run starts: try again in a moment",
            job.id
        ));
    }
    closed(job, "the job has ended")
}

/// `invalid_state` for an interactive job that has not started: its
/// stdin (and stdin.sock) exists only once its supervisor runs it.
/// A `created` job that a launch is starting (a `start`, or a `restart`
/// between its runs) is about to take input: retryable; so is a queued
/// one.
fn not_started(job: &Job, status: Status) -> Option<Error> {
    if status == Status::Created && job.is_launching() {
        return Some(Error::Busy(format!(
            "invalid job state: job {} is being started (or restarted); its stdin opens when it runs: try again in a moment",
            job.id
        )));
    }
    // A queued one starts by itself, and the same send reaches it then:
    // retryable (as between two --retry runs). A created one waits for
    // someone to start it.
    let msg = || {
        format!(
            "invalid job state: job {} has not started yet (it is '{}'); its stdin opens when it runs",
            job.id,
            status.as_str()
        )
    };
    match status {
        Status::Created => Some(Error::InvalidState(msg())),
        Status::Queued => Some(Error::Busy(msg())),
        _ => None,
    }
}

/// A send over the most one message carries (16 MiB).
fn too_large() -> Error {
    Error::StdinTooLarge(crate::input::MAX_MESSAGE as u64)
}

fn closed(job: &Job, why: &str) -> Error {
    Error::StdinClosed(format!(
        "stdin_closed: cannot send to job {}: {why}",
        job.id
    ))
}

/// The request from any door's `Matches`: TEXT is the second
/// positional (after the job id); `--file` exists only on the command
/// line (the server reads no caller-named file).
pub fn request_from(m: &Matches) -> Result<SendRequest> {
    let text = m.pos_bytes(1);
    let data = match (m.get("file"), text) {
        (Some(_), Some(_)) => {
            return Err(Error::usage("give TEXT or --file, not both"));
        }
        (Some("-"), None) => {
            // A terminal is refused, as `run --stdin -` refuses it: read
            // to its end, it held the call until someone typed ^D.
            if crate::sys::isatty(0) {
                return Err(Error::StdinRequired);
            }
            // The caller's stdin (a pipe of binary bytes, which TEXT
            // cannot carry): read to its end, as `run --stdin -` reads
            // it, and a stop signal meanwhile sends nothing.
            let mut d = Vec::new();
            crate::observe::until_stopped(|| {
                crate::launch::copy_limited(
                    &mut std::io::stdin().lock(),
                    &mut d,
                    crate::input::MAX_MESSAGE as u64,
                    "nothing was sent",
                )
            })
            .map_err(|e| match e {
                Error::StdinTooLarge(_) => too_large(),
                e => e,
            })?;
            d
        }
        (Some(path), None) => {
            crate::sys::read_bounded(std::path::Path::new(path), crate::input::MAX_MESSAGE as u64)
                .map_err(|e| match e.kind() {
                // What read_bounded says of a file over the limit.
                std::io::ErrorKind::InvalidData => too_large(),
                // The caller's own file, not one of a job's: a FIFO or a
                // directory there is an I/O error as any other, not
                // `unsafe_path` (a job directory's refusal).
                _ => Error::io_as_is(format!("read {path}"), e),
            })?
        }
        (None, Some(t)) => {
            let mut d = t.to_vec();
            if m.has("newline") {
                d.push(b'\n');
            }
            d
        }
        (None, None) if m.has("eof") => Vec::new(),
        (None, None) if m.has("newline") => b"\n".to_vec(),
        (None, None) => {
            return Err(Error::usage(
                "send needs TEXT, --file PATH, --newline or --eof",
            ))
        }
    };
    // One message to the supervisor carries at most this much, whichever
    // door it came through.
    if data.len() > crate::input::MAX_MESSAGE {
        return Err(too_large());
    }
    Ok(SendRequest {
        data,
        eof: m.has("eof"),
        record: !m.has("no-record"),
        yield_ms: m.duration_ms("yield").unwrap_or(250),
        max_bytes: m.u64("max-bytes").unwrap_or(65536),
    })
}

pub fn exec(m: &Matches) -> Result<Output> {
    // An empty path would name the current directory: an argument error
    // (before the job is looked up, D5), as `run --stdin-file ''` is.
    if m.get("file") == Some("") {
        return Err(Error::usage("--file must not be empty"));
    }
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    // A send that yields waits, and so does one that reads the caller's
    // stdin (`--file -`): a stop signal then ends the wait with an
    // answer instead of the process without one (before any thread).
    if m.get("file") == Some("-") || m.duration_ms("yield").unwrap_or(250) > 0 {
        let _ = crate::sys::hold_stop_signals();
    }
    let req = request_from(m).map_err(|e| match e {
        Error::StdinTooLarge(_) => e.in_job(&job.id),
        e => e,
    })?;
    let body = send_job(&job, &req).map_err(|e| e.in_job(&job.id))?;
    Ok(Output::Doc(
        Response::new("send", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}
