//! `run [OPTIONS] [--] COMMAND...`: define a job, start it, and wait until
//! it is terminal or the wait budget (`--until`, 10 s) is spent; answer
//! with the state and the head of both logs in one document.
//!
//! The inline output (shared with `start`, `wait` and `POST /exec`,
//! `read_inline`): the head of each log (`--max-bytes`); when a log is
//! longer, also its end (`stdout_tail`/`stderr_tail`, at most
//! `--tail-bytes`, never overlapping the head), so a failing build's last
//! lines arrive in the first answer; and a `cursor` just after the head,
//! so that the middle is read with `tail --since` and nothing is read
//! twice. Both come from one open of each log, after the state was read
//! (a terminal state means the logs are complete).
//!
//! Rejected: a cursor after the tail (the middle would be unreachable
//! without re-reading from 0); putting the new fields among the old ones
//! (they are added after every existing field, so the order of what
//! callers already parse does not move).

use std::time::Instant;

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::gc::AutoGc;
use crate::job::{Failure, Job, Meta, OutputLoss, State};
use crate::launch::{self, Launch, Spec};
use crate::observe;
use crate::output::{Output, Response};

/// How long to wait, from `--wait`, `--until`, `--forever`, `--no-wait`.
#[derive(Clone, Copy, Debug)]
pub struct WaitPlan {
    pub wait: bool,
    /// None: no deadline.
    pub until_ms: Option<u64>,
    pub max_bytes: u64,
    /// Most bytes of each log's end, beyond the head (0: none).
    pub tail_bytes: u64,
}

/// `--tail-bytes`' default: 16 KiB.
pub const TAIL_BYTES: u64 = 16 * 1024;

impl WaitPlan {
    pub fn from_matches(m: &Matches) -> WaitPlan {
        let no_wait = m.has("no-wait");
        WaitPlan {
            wait: !no_wait && m.bool("wait").unwrap_or(true),
            until_ms: if m.has("forever") && !no_wait {
                None
            } else {
                Some(m.duration_ms("until").unwrap_or(10_000))
            },
            max_bytes: m.u64("max-bytes").unwrap_or(65536),
            tail_bytes: m.u64("tail-bytes").unwrap_or(TAIL_BYTES),
        }
    }

    /// When the answer is due, counted from now (None: no deadline, also
    /// for a budget too large for the clock).
    pub fn deadline(&self) -> Option<Instant> {
        self.until_ms.and_then(crate::time::deadline_after)
    }
}

/// The inline result shared by `run`, `start` and `POST /exec`.
#[derive(Serialize)]
pub struct InlineBody {
    pub job_id: String,
    pub state: &'static str,
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env_vars: Vec<String>,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    pub elapsed_ms: u64,
    pub waited_ms: u64,
    pub stdout: String,
    pub stderr: String,
    pub stdout_range: [u64; 2],
    pub stderr_range: [u64; 2],
    pub stdout_total_bytes: u64,
    pub stderr_total_bytes: u64,
    pub encoding: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// Which run this answer is about: 1 for the first, one more for each
    /// restart or `--retry` run (as in `status` and `wait`).
    pub attempt: u32,
    /// The earlier runs kept (a `--retry` run, a restarted job), as
    /// `wait` and `status` list them; absent when the job has not run
    /// before (`[]` when it has and none is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_runs: Option<Vec<crate::job::PreviousRun>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<OutputLoss>,
    /// The job runs on a pseudo-terminal: all its output is in stdout.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(flatten)]
    pub ends: Ends,
    /// command, cwd; cpu_user_ms, cpu_sys_ms, max_rss_kb once terminal.
    #[serde(flatten)]
    pub ran: crate::usage::RanCost,
    #[serde(flatten)]
    pub queued: crate::queue::QueueInfo,
    /// Bytes a capped log (`--max-log-bytes`) dropped from its middle.
    pub stdout_dropped_bytes: u64,
    pub stderr_dropped_bytes: u64,
}

/// The end of each log that did not fit in the head, and the cursor:
/// what `run`, `start` and `wait` add after their existing fields.
#[derive(Serialize, Default)]
pub struct Ends {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_tail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_tail_range: Option<[u64; 2]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_tail_range: Option<[u64; 2]>,
    pub cursor: String,
}

/// The inline output of a job: heads, ends, cursor.
pub struct Inline {
    pub out: observe::Slice,
    pub err: observe::Slice,
    pub ends: Ends,
    /// Whether each log existed (`wait` leaves out a missing log's size).
    pub exists: (bool, bool),
}

/// Failed with `log_unwritable`: the workload never got its logs.
fn never_ran_for_its_logs(st: &State) -> bool {
    st.status() == crate::job::Status::Failed
        && st
            .failure
            .as_ref()
            .is_some_and(|f| f.code == "log_unwritable")
}

impl Inline {
    /// No output at all: empty heads, no ends, a cursor at the start.
    fn nothing(id: &str) -> Inline {
        let start = crate::cursor::Cursor {
            out: 0,
            err: 0,
            out_tag: 0,
            err_tag: 0,
        };
        Inline {
            out: observe::Slice::default(),
            err: observe::Slice::default(),
            ends: Ends {
                cursor: start.encode(id),
                ..Ends::default()
            },
            exists: (false, false),
        }
    }
}

/// Read the head (at most `max_bytes`) and the end (at most
/// `tail_bytes`, after the head) of both logs. `done`: the state, read
/// before this, is terminal.
pub fn read_inline(job: &Job, done: bool, max_bytes: u64, tail_bytes: u64) -> Result<Inline> {
    let mut out_log = observe::open_log(&job.stdout_path())?;
    let mut err_log = observe::open_log(&job.stderr_path())?;
    let out = out_log.head(max_bytes, done)?;
    let err = err_log.head(max_bytes, done)?;
    let out_end = out_log.read_fresh(|l| l.end(out.range[1], tail_bytes, done), Option::is_some)?;
    let err_end = err_log.read_fresh(|l| l.end(err.range[1], tail_bytes, done), Option::is_some)?;
    let cursor = observe::cursor_after((&out_log, &out), (&err_log, &err));
    let ends = Ends {
        stdout_tail_range: out_end.as_ref().map(|s| s.range),
        stderr_tail_range: err_end.as_ref().map(|s| s.range),
        stdout_tail: out_end.map(|s| s.text),
        stderr_tail: err_end.map(|s| s.text),
        cursor: cursor.encode(&job.id),
    };
    Ok(Inline {
        out,
        err,
        ends,
        exists: (out_log.tag != 0, err_log.tag != 0),
    })
}

/// `read_inline` for the run `st` describes: from the job's logs, or
/// from `runs/<attempt>/` when that run has been kept (it was read from
/// there, or a `restart` moved it there while it was being read).
/// Returns where the logs were read too.
pub fn read_inline_of(
    job: &Job,
    st: &State,
    max_bytes: u64,
    tail_bytes: u64,
) -> Result<(Job, Inline)> {
    let done = st.status().is_terminal();
    let logs = crate::runs::logs_of(job, st);
    let inline = read_inline(&logs, done, max_bytes, tail_bytes)?;
    match crate::runs::moved_since(job, st) {
        Some(kept) => {
            let inline = read_inline(&kept, done, max_bytes, tail_bytes)?;
            Ok((kept, inline))
        }
        None => Ok((logs, inline)),
    }
}

/// Wait per `plan` on a launched job and build the inline result: the
/// run it describes may have ended several retries after its launch.
/// `deadline`: when the answer is due (the plan's, counted from when the
/// caller began, so that the launch handshake counts against it).
pub fn observe_inline(
    job: &Job,
    meta: &Meta,
    launch: &mut Launch,
    plan: WaitPlan,
    (t0, deadline): (Instant, Option<Instant>),
) -> Result<InlineBody> {
    let waited_from = Instant::now();
    let state = if plan.wait {
        match plan.until_ms {
            Some(ms) => crate::info!("{}: waiting up to {ms} ms", job.id),
            None => crate::info!("{}: waiting until it ends", job.id),
        }
        // `--forever` with -v at a terminal: a progress note meanwhile.
        let _ticker = plan
            .until_ms
            .is_none()
            .then(|| crate::progress::start(std::slice::from_ref(job)))
            .flatten();
        // A stop signal (HUP, INT, TERM) ends this wait as the budget
        // running out would: the answer then says `running`.
        observe::until_stopped(|| launch.wait(job, deadline))?
    } else {
        launch.state.clone()
    };
    let waited_ms = if plan.wait {
        waited_from.elapsed().as_millis() as u64
    } else {
        0
    };
    inline_body(
        job,
        meta,
        &state,
        (plan.max_bytes, plan.tail_bytes),
        t0.elapsed().as_millis() as u64,
        waited_ms,
    )
}

pub fn inline_body(
    job: &Job,
    meta: &Meta,
    st: &State,
    (max_bytes, tail_bytes): (u64, u64),
    elapsed_ms: u64,
    waited_ms: u64,
) -> Result<InlineBody> {
    let status = st.status();
    let terminal = status.is_terminal();
    let (logs, Inline { out, err, ends, .. }) = match read_inline_of(job, st, max_bytes, tail_bytes)
    {
        Ok(read) => read,
        // A job that never ran because its logs could not be made (one
        // was a planted symlink, say) is answered as the failed job it
        // is (D12), with no output: the unsafe file is not read.
        Err(e) if e.code() == "unsafe_path" && never_ran_for_its_logs(st) => {
            (crate::runs::logs_of(job, st), Inline::nothing(&job.id))
        }
        Err(e) => return Err(e),
    };
    Ok(InlineBody {
        job_id: job.id.clone(),
        state: status.as_str(),
        tags: meta.tags.clone(),
        env_vars: meta.env_vars.clone(),
        stdout_log_path: logs.stdout_display(),
        stderr_log_path: logs.stderr_display(),
        elapsed_ms,
        waited_ms,
        stdout: out.text,
        stderr: err.text,
        stdout_range: out.range,
        stderr_range: err.range,
        stdout_total_bytes: out.total,
        stderr_total_bytes: err.total,
        encoding: "utf-8-lossy",
        exit_code: st.result.exit_code,
        finished_at: st.finished_at.clone().filter(|_| terminal),
        signal: st.result.signal.clone(),
        duration_ms: st.result.duration_ms,
        timed_out: terminal.then_some(st.result.timed_out),
        attempt: st.attempt(),
        previous_runs: crate::runs::in_answer(job, st),
        failure: st.failure.clone(),
        output_lost: st.output_lost.clone(),
        tty: meta.tty.is_some(),
        ends,
        ran: crate::usage::RanCost::new(meta, st),
        queued: crate::queue::QueueInfo::of(st),
        stdout_dropped_bytes: out.dropped,
        stderr_dropped_bytes: err.dropped,
    })
}

/// For a command that will wait per `plan` (`run`, `start`, `restart`),
/// before it starts any thread: a stop signal then ends its wait with
/// the answer, instead of the process without one (`observe::
/// until_stopped`). One that does not wait keeps the default, and so
/// does one whose mask cannot be changed (never seen: the calls fail
/// only on bad arguments).
pub fn hold_stop_signals(plan: WaitPlan) {
    if plan.wait {
        let _ = crate::sys::hold_stop_signals();
    }
}

/// Define, launch and observe: the whole `run`, also used by the server.
/// Errors after the job exists carry its id, but for a launch whose job
/// was taken away again (one that could not even record its failure,
/// `launch::launch`), which names none: once launched, the job ran, so
/// an error while it is observed names it even when its directory has
/// gone since.
pub fn run_spec(
    store: &crate::store::Store,
    spec: &Spec,
    plan: WaitPlan,
    auto_gc: Option<&AutoGc>,
) -> Result<InlineBody> {
    let t0 = Instant::now();
    let deadline = plan.deadline();
    let d = launch::define(store, spec, false)?;
    crate::info!("run: defined job {} in {}", d.job.id, d.job.dir.display());
    let job = &d.job;
    // Even a job whose stdin source or env file cannot be read is
    // launched: its supervisor records the failure and delivers its
    // `job.finished`, as for every launch failure.
    let gc_sinks = (auto_gc, spec.sink_timeout_ms);
    let mut l = launch::launch(store, job, Some(&d.meta), d.lock, gc_sinks, deadline).map_err(
        |e| match job.path(crate::job::META).symlink_metadata() {
            Err(gone) if gone.kind() == std::io::ErrorKind::NotFound => e,
            _ => e.in_job(&job.id),
        },
    )?;
    crate::info!("run: job {} is {}", job.id, l.state.status().as_str());
    observe_inline(job, &d.meta, &mut l, plan, (t0, deadline)).map_err(|e| e.in_job(&job.id))
}

pub fn exec(m: &Matches) -> Result<Output> {
    let plan = WaitPlan::from_matches(m);
    hold_stop_signals(plan);
    let store = super::store(m);
    launch::check_flags(m)?;
    let cfg = crate::config::load(m.get("config").map(std::path::Path::new))?;
    let spec = Spec::from_matches(m, &cfg)?;
    let auto_gc = AutoGc::from_matches(m, &cfg.gc);
    let body = run_spec(&store, &spec, plan, auto_gc.as_ref())?;
    // The job exists and ran: an answer too large for the memory left
    // still names it (ask again with a smaller --max-bytes).
    let doc = Response::new("run", &body).map_err(|e| e.in_job(&body.job_id))?;
    Ok(Output::Doc(doc))
}
