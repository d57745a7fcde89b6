//! `wait [--until S | --forever] [--max-bytes N] [--tail-bytes N]
//! [--output PATTERN [--output-match-type T] [--output-stream S]
//! [--since CURSOR]] JOB_ID`: block until the job is terminal or the
//! deadline passes (not an error: the state says which). Wakes on the
//! supervisor's state write, not on a poll tick; `--poll` is accepted
//! and ignored.
//!
//! Readiness (`--output`): also return as soon as a line matches, at
//! once if one already exists (from `--since`, default the start of the
//! logs); the answer then carries `matched: {stream, line, offset}` (the
//! first matching line found; stdout is searched before stderr). It is
//! read from the logs by `observe::wait_output` — the supervisor does no
//! extra work — waking on each write (inotify) and scanning only the new
//! bytes in bounded chunks.
//!
//! The answer keeps wait's own fields, in their order, then carries the
//! same inline output as `run` (`cmd::run::read_inline`): the head of
//! each log, its end when the head does not reach it, and a cursor just
//! after the head — so an agent's `wait` is also its first read.
//!
//! Invariants
//! - The logs are read after the state: a terminal state means they are
//!   complete (D15), so the inline output of a finished job is final.
//! - `stdout_total_bytes`/`stderr_total_bytes` come from the same open
//!   of each log as the head, and are absent (as before) when a log does
//!   not exist yet.
//!
//! Rejected: a separate `tail` call after `wait` (a second round trip,
//! and a window in which output and cursor could disagree).

use serde::Serialize;

use crate::cli::Matches;
use crate::cmd::run::{read_inline, Ends, Inline, TAIL_BYTES};
use crate::error::Result;
use crate::job::{Failure, Job, State};
use crate::observe;
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct WaitBody {
    pub job_id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_total_bytes: Option<u64>,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<crate::job::OutputLoss>,
    /// The line `--output` matched (absent: none did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<observe::Match>,
    // The inline output, as `run` has it (added after wait's own fields).
    pub stdout: String,
    pub stderr: String,
    pub stdout_range: [u64; 2],
    pub stderr_range: [u64; 2],
    pub encoding: &'static str,
    #[serde(flatten)]
    pub ends: Ends,
    /// Bytes a capped log (`--max-log-bytes`) dropped from its middle
    /// (absent, as the totals, while a log does not exist).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_dropped_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_dropped_bytes: Option<u64>,
    /// `--output` with `--since`: bytes after the cursor that a capped log
    /// had dropped, passed over by the search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_skipped_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_skipped_bytes: Option<u64>,
}

/// How much output a `wait` answer carries.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub max_bytes: u64,
    pub tail_bytes: u64,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_bytes: 65536,
            tail_bytes: TAIL_BYTES,
        }
    }
}

/// `st` must have been read before this call (see the header).
pub fn wait_body(job: &Job, st: &State, budget: Budget) -> Result<WaitBody> {
    let terminal = st.status().is_terminal();
    let Inline {
        out,
        err,
        ends,
        exists,
    } = read_inline(job, terminal, budget.max_bytes, budget.tail_bytes)?;
    Ok(WaitBody {
        job_id: job.id.clone(),
        state: st.status().as_str(),
        exit_code: st.result.exit_code.filter(|_| terminal),
        stdout_total_bytes: exists.0.then_some(out.total),
        stderr_total_bytes: exists.1.then_some(err.total),
        updated_at: st.updated_at.clone(),
        finished_at: st.finished_at.clone().filter(|_| terminal),
        signal: st.result.signal.clone().filter(|_| terminal),
        duration_ms: st.result.duration_ms.filter(|_| terminal),
        timed_out: terminal.then_some(st.result.timed_out),
        failure: st.failure.clone(),
        output_lost: st.output_lost.clone(),
        matched: None,
        stdout: out.text,
        stderr: err.text,
        stdout_range: out.range,
        stderr_range: err.range,
        encoding: "utf-8-lossy",
        ends,
        stdout_dropped_bytes: exists.0.then_some(out.dropped),
        stderr_dropped_bytes: exists.1.then_some(err.dropped),
        stdout_skipped_bytes: None,
        stderr_skipped_bytes: None,
    })
}

/// What `--output` looks for.
pub struct Ready<'a> {
    pub pattern: &'a str,
    pub regex: bool,
    /// stdout, stderr or either.
    pub stream: &'a str,
    pub since: Option<&'a str>,
}

/// Wait for `ready`'s line or the job's end, until `deadline`; None when
/// the server's client left first. The pattern and the cursor are
/// checked before anything is waited for.
pub fn wait_ready(
    job: &Job,
    ready: &Ready,
    deadline: Option<std::time::Instant>,
    budget: Budget,
    client: Option<observe::Client<'_>>,
) -> Result<Option<WaitBody>> {
    let pattern = observe::Pattern::new(ready.pattern, ready.regex)?;
    let since = ready
        .since
        .map(|c| crate::cursor::Cursor::decode(c, &job.id))
        .transpose()?;
    let Some((st, matched, skipped)) = observe::wait_output(
        job,
        &pattern,
        ready.stream,
        since.as_ref(),
        deadline,
        client,
    )?
    else {
        return Ok(None);
    };
    let mut body = wait_body(job, &st, budget)?;
    body.matched = matched;
    if since.is_some() {
        body.stdout_skipped_bytes = Some(skipped[0]);
        body.stderr_skipped_bytes = Some(skipped[1]);
    }
    Ok(Some(body))
}

/// Wait with an optional budget in milliseconds (None = forever; a
/// budget too large for the clock is forever too).
pub fn wait_for_ms(
    job: &Job,
    until_ms: Option<u64>,
    budget: Budget,
    ready: Option<&Ready>,
) -> Result<WaitBody> {
    let deadline = until_ms.and_then(crate::time::deadline_after);
    crate::info!("wait {}: waiting up to {:?} ms", job.id, until_ms);
    if let Some(r) = ready {
        // Without a client nobody can leave: the answer is always there.
        let body = wait_ready(job, r, deadline, budget, None)?;
        return body.ok_or_else(|| crate::error::Error::internal("wait ended without an answer"));
    }
    let st = observe::wait_terminal(job, deadline)?;
    crate::info!("wait {}: {}", job.id, st.status().as_str());
    wait_body(job, &st, budget)
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let until = if m.has("forever") {
        None
    } else {
        Some(m.duration_ms("until").unwrap_or(30_000))
    };
    let budget = Budget {
        max_bytes: m.u64("max-bytes").unwrap_or(65536),
        tail_bytes: m.u64("tail-bytes").unwrap_or(TAIL_BYTES),
    };
    let ready = m.get("output").map(|p| Ready {
        pattern: p,
        regex: m.get("output-match-type") == Some("regex"),
        stream: m.get("output-stream").unwrap_or("either"),
        since: m.get("since"),
    });
    if ready.is_none() && m.has("since") {
        return Err(crate::error::Error::usage("--since needs --output"));
    }
    let body = wait_for_ms(&job, until, budget, ready.as_ref()).map_err(|e| e.in_job(&job.id))?;
    Ok(Output::Doc(Response::new("wait", &body)))
}
