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
//! A job restarted while this waits (`restart`) ends the wait too: the
//! answer is the run it began on, read from `runs/<attempt>/` with its
//! logs (`runs::answer_for`), never the new run; `attempt` says which.
//! The runs of `run --retry` are one job run to a waiter: it answers at
//! the last, and `--output` searches each attempt's new logs in turn as
//! they begin (`matched.offset` is in the log of the attempt that wrote
//! the line; the answer describes the job's current attempt, read again
//! once the line is found).
//!
//! Invariants
//! - The logs are read after the state: a terminal state means they are
//!   complete (D15), so the inline output of a finished job is final.
//! - `stdout_total_bytes`/`stderr_total_bytes` come from the same open
//!   of each log as the head, and are absent (as before) when a log does
//!   not exist yet.
//!
//! Several jobs (`wait A B ...`, `--all` by default or `--any`): one
//! deadline for the whole call, waited for by `waitset::wait_jobs`
//! (event-driven, one thread); the answer is `jobs`, one `WaitBody` per
//! id in the order given, read after the wait ended, and with `--any`
//! `first`. An id given twice is waited for and described once, and
//! that one description answers for both entries. An id that names no
//! job fails the whole call before anything is waited for
//! (`job_not_found`, `details.job_id`). `--output` takes one job. One id
//! answers exactly as before: the single document.
//!
//! Rejected: a separate `tail` call after `wait` (a second round trip,
//! and a window in which output and cursor could disagree); a bare list
//! as the answer (one envelope per call, with `first` beside the jobs).

use serde::Serialize;

use crate::cli::Matches;
use crate::cmd::run::{read_inline_of, Ends, Inline, TAIL_BYTES};
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
    /// Which run of the job this answer is about (1: the first).
    pub attempt: u32,
    /// The earlier runs kept (see `runs`): present once the job has run
    /// before (`[]` when none is kept, `keep_runs = 0`), as `status` has
    /// them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_runs: Option<Vec<crate::job::PreviousRun>>,
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
    /// command, cwd; cpu_user_ms, cpu_sys_ms, max_rss_kb once terminal.
    #[serde(flatten)]
    pub ran: crate::usage::RanCost,
    #[serde(flatten)]
    pub queued: crate::queue::QueueInfo,
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

impl Budget {
    /// `--max-bytes` and `--tail-bytes`, else the defaults.
    pub fn from_matches(m: &Matches) -> Budget {
        let d = Budget::default();
        Budget {
            max_bytes: m.u64("max-bytes").unwrap_or(d.max_bytes),
            tail_bytes: m.u64("tail-bytes").unwrap_or(d.tail_bytes),
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
    } = read_inline_of(job, st, budget.max_bytes, budget.tail_bytes)?.1;
    let meta = job.read_meta()?;
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
        attempt: st.attempt(),
        previous_runs: crate::runs::in_answer(job, st),
        matched: None,
        stdout: out.text,
        stderr: err.text,
        stdout_range: out.range,
        stderr_range: err.range,
        encoding: "utf-8-lossy",
        ends,
        ran: crate::usage::RanCost::new(&meta, st),
        queued: crate::queue::QueueInfo::of(st),
        stdout_dropped_bytes: exists.0.then_some(out.dropped),
        stderr_dropped_bytes: exists.1.then_some(err.dropped),
        stdout_skipped_bytes: None,
        stderr_skipped_bytes: None,
    })
}

/// The answer for several jobs.
#[derive(Serialize)]
pub struct WaitManyBody {
    /// `all` or `any`.
    pub mode: &'static str,
    /// With `any`: the id of the job that ended first (absent: none has).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<String>,
    pub jobs: Entries,
    /// Not part of the answer: the first job (its id), in the order
    /// given, whose end the wait was still waiting for when it stopped
    /// (`waitset::Seen::waiting`); None when the wait was over.
    #[serde(skip)]
    pub waiting: Option<String>,
}

/// One entry per id given, in that order; an id given twice is the same
/// description twice (`distinct[order[i]]`), not two reads that a job
/// ending between them would make disagree.
pub struct Entries {
    distinct: Vec<WaitBody>,
    order: Vec<usize>,
}

impl Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.order.iter().map(|&i| &self.distinct[i]))
    }
}

/// Wait for several jobs (see the header); None when the client left.
/// Each distinct job is waited for and described once.
pub fn wait_many(
    jobs: &[Job],
    any: bool,
    deadline: Option<std::time::Instant>,
    budget: Budget,
    client: Option<observe::Client<'_>>,
) -> Result<Option<WaitManyBody>> {
    let mut distinct: Vec<Job> = Vec::with_capacity(jobs.len());
    let mut order = Vec::with_capacity(jobs.len());
    let mut index = std::collections::HashMap::new();
    for j in jobs {
        let i = *index.entry(j.id.clone()).or_insert_with(|| {
            distinct.push(j.clone());
            distinct.len() - 1
        });
        order.push(i);
    }
    let seen =
        observe::until_stopped(|| crate::waitset::wait_jobs(&distinct, any, deadline, client));
    let Some(seen) = seen? else {
        return Ok(None);
    };
    let bodies = distinct
        .iter()
        .zip(&seen.states)
        .map(|(j, st)| wait_body(j, st, budget).map_err(|e| e.in_job(&j.id)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(WaitManyBody {
        mode: if any { "any" } else { "all" },
        first: seen.first.filter(|_| any).map(|i| distinct[i].id.clone()),
        jobs: Entries {
            distinct: bodies,
            order,
        },
        waiting: seen.waiting.map(|i| distinct[i].id.clone()),
    }))
}

/// Resolve every id first: an unknown one fails the call, naming it. A
/// job named again (the same text, or another prefix of it) is the same
/// `Job`: each lookup pins the job's directory with a descriptor, and a
/// list with repeats ran out of them (`io_error`, EMFILE) where the job
/// itself is waited for once.
pub fn lookup_all(store: &crate::store::Store, ids: &[String]) -> Result<Vec<Job>> {
    let mut by_text: std::collections::HashMap<&str, Job> = std::collections::HashMap::new();
    let mut by_id: std::collections::HashMap<String, Job> = std::collections::HashMap::new();
    ids.iter()
        .map(|id| {
            if let Some(j) = by_text.get(id.as_str()) {
                return Ok(j.clone());
            }
            let found = store.lookup(id).map_err(|e| e.in_job(id))?;
            let j = by_id.entry(found.id.clone()).or_insert(found).clone();
            by_text.insert(id, j.clone());
            Ok(j)
        })
        .collect()
}

/// What `--output` looks for.
pub struct Ready<'a> {
    pub pattern: &'a str,
    pub regex: bool,
    /// stdout, stderr or either.
    pub stream: &'a str,
    pub since: Option<&'a str>,
}

impl<'a> Ready<'a> {
    /// `--output` and its companions from a command's arguments (the
    /// CLI's or MCP's); None without `--output`. `--since` without it is
    /// refused by the caller, in its door's words.
    pub fn from_matches(m: &'a Matches) -> Option<Ready<'a>> {
        m.get("output").map(|p| Ready {
            pattern: p,
            regex: m.get("output-match-type") == Some("regex"),
            stream: m.get("output-stream").unwrap_or("either"),
            since: m.get("since"),
        })
    }
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
    let pattern = observe::Pattern::new(ready.pattern, ready.regex)?.for_job(job);
    let since = ready
        .since
        .map(|c| crate::cursor::Cursor::decode(c, &job.id))
        .transpose()?;
    let found = observe::until_stopped(|| {
        observe::wait_output(
            job,
            &pattern,
            ready.stream,
            since.as_ref(),
            deadline,
            client,
        )
    });
    let Some((st, matched, skipped)) = found? else {
        return Ok(None);
    };
    // Read again if the attempt read was kept while its logs were read:
    // they may be the next one's.
    let mut st = now_after_match(job, st);
    let mut body = wait_body(job, &st, budget)?;
    for _ in 0..3 {
        if st.status().is_terminal() || crate::runs::load(job, st.attempt()).is_none() {
            break;
        }
        st = now_after_match(job, st);
        body = wait_body(job, &st, budget)?;
    }
    body.matched = matched;
    if since.is_some() {
        body.stdout_skipped_bytes = Some(skipped[0]);
        body.stderr_skipped_bytes = Some(skipped[1]);
    }
    Ok(Some(body))
}

/// The job as it is once `--output`'s line is found: `st` (read then) if
/// terminal, else read again. A line printed just before its attempt
/// exited is found as `--retry` keeps that run: the logs move to
/// `runs/<attempt>/` and the next run's fresh ones take their place a
/// moment before the next state is written (`runs::archive`). A state of
/// an attempt kept meanwhile is read again until the next one is there
/// (200 ms at most; then the kept run's own record): described with the
/// logs in place, the ended attempt read `running` with the next one's
/// empty output, and without the run that printed the line in
/// `previous_runs`.
fn now_after_match(job: &Job, st: State) -> State {
    if st.status().is_terminal() {
        return st;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_millis(200);
    loop {
        let now = observe::current_state(job).unwrap_or_else(|_| st.clone());
        if now.status().is_terminal() {
            return now;
        }
        match crate::runs::load(job, now.attempt()) {
            None => return now,
            Some(kept) if std::time::Instant::now() >= until => return kept,
            Some(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
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
    match until_ms {
        Some(ms) => crate::info!("wait {}: waiting up to {ms} ms", job.id),
        None => crate::info!("wait {}: waiting until it ends", job.id),
    }
    if let Some(r) = ready {
        // Without a client nobody can leave: the answer is always there.
        let body = wait_ready(job, r, deadline, budget, None)?;
        return body.ok_or_else(|| crate::error::Error::internal("wait ended without an answer"));
    }
    let st = observe::until_stopped(|| observe::wait_terminal(job, deadline))?;
    wait_body(job, &st, budget)
}

pub fn exec(m: &Matches) -> Result<Output> {
    // Before any thread: a stop signal (HUP, INT, TERM) then ends the
    // wait with its answer, as the deadline would (`observe::
    // until_stopped`), instead of ending the process without one.
    let _ = crate::sys::hold_stop_signals();
    // A few descriptors per job for the whole wait: a soft limit that
    // the hard one lifts must not end it (`ulimit -Sn 20` failed a wait
    // on 4 running jobs, io_error; a thousand ids, one of 1024). This
    // process starts nothing that would inherit the raised limit.
    crate::sys::raise_open_files_limit();
    let store = super::store(m);
    if m.positionals.len() > 1 {
        return exec_many(m, &store);
    }
    // An argument error before the job is looked up (D5), as for the
    // values the parser checks.
    let ready = Ready::from_matches(m);
    if ready.is_none() && m.has("since") {
        return Err(crate::error::Error::usage("--since needs --output"));
    }
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let until = until_ms(m);
    let budget = Budget::from_matches(m);
    // -v at a terminal: a progress note while waiting (gone before the answer).
    let ticker = crate::progress::start(std::slice::from_ref(&job));
    let body = wait_for_ms(&job, until, budget, ready.as_ref()).map_err(|e| e.in_job(&job.id));
    // The note is erased first: a log line written while it is on screen
    // would be glued to it.
    drop(ticker);
    let body = body?;
    crate::info!("wait {}: {}", job.id, body.state);
    Ok(Output::Doc(
        Response::new("wait", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}

/// The CLI's budget: `--until` (default 30 s), none with `--forever`.
fn until_ms(m: &Matches) -> Option<u64> {
    if m.has("forever") {
        None
    } else {
        Some(m.duration_ms("until").unwrap_or(30_000))
    }
}

/// `wait A B ...`.
fn exec_many(m: &Matches, store: &crate::store::Store) -> Result<Output> {
    if m.has("output") || m.has("since") {
        return Err(crate::error::Error::usage(
            "--output and --since take one job id; wait for several jobs without them",
        ));
    }
    let jobs = lookup_all(store, &m.positionals)?;
    let until = until_ms(m);
    let deadline = until.and_then(crate::time::deadline_after);
    let budget = Budget::from_matches(m);
    match until {
        Some(ms) => crate::info!("wait: {} jobs, up to {ms} ms", jobs.len()),
        None => crate::info!("wait: {} jobs, until they end", jobs.len()),
    }
    let ticker = crate::progress::start(&jobs);
    let body = wait_many(&jobs, m.has("any"), deadline, budget, None);
    drop(ticker);
    let body =
        body?.ok_or_else(|| crate::error::Error::internal("wait ended without an answer"))?;
    Ok(Output::Doc(Response::new("wait", &body)?))
}
