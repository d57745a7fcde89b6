//! `status <JOB_ID>`: where a job is in its life, what it runs (command,
//! cwd, tags) and, once it ended, what it cost (`crate::usage`).

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::job::{Failure, Meta, State};
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct StatusBody {
    pub job_id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
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
    pub tags: Vec<String>,
    /// The job runs on a pseudo-terminal (`--tty`): its output is all in
    /// stdout, and `send` writes to the terminal.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// Its stdin stays open for `send` (`-i`, or `--tty`): what an agent
    /// that comes back to the job needs to know before it sends.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub interactive: bool,
    /// command, cwd; cpu_user_ms, cpu_sys_ms, max_rss_kb once terminal.
    #[serde(flatten)]
    pub ran: crate::usage::RanCost,
    /// Which run of the job this is (1: the first; see `restart`).
    pub attempt: u32,
    /// The earlier runs kept, oldest first.
    pub previous_runs: Vec<crate::job::PreviousRun>,
    #[serde(flatten)]
    pub queued: crate::queue::QueueInfo,
}

/// What `status` shows of meta.json (the server reads only this).
#[derive(serde::Deserialize, Default)]
pub struct MetaPart {
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tty: Option<[u16; 2]>,
    #[serde(default)]
    pub interactive: bool,
}

impl StatusBody {
    pub fn new(job: &crate::job::Job, meta: &Meta, st: &State) -> StatusBody {
        let part = MetaPart {
            created_at: meta.created_at.clone(),
            command: meta.command.clone(),
            cwd: meta.cwd.clone(),
            tags: meta.tags.clone(),
            tty: meta.tty,
            interactive: meta.interactive,
        };
        StatusBody::from_parts(job, part, st)
    }

    /// For a caller that read only `MetaPart` from meta.json (the HTTP
    /// server's `/status`, which answers many of these a second).
    pub fn from_parts(job: &crate::job::Job, meta: MetaPart, st: &State) -> StatusBody {
        let MetaPart {
            created_at,
            command,
            cwd,
            tags,
            tty,
            interactive,
        } = meta;
        let status = st.status();
        let terminal = status.is_terminal();
        StatusBody {
            job_id: job.id.clone(),
            state: status.as_str(),
            exit_code: st.result.exit_code,
            created_at,
            started_at: st.job.started_at.clone(),
            finished_at: st.finished_at.clone(),
            signal: st.result.signal.clone(),
            duration_ms: st.result.duration_ms,
            timed_out: terminal.then_some(st.result.timed_out),
            failure: st.failure.clone(),
            output_lost: st.output_lost.clone(),
            tags,
            tty: tty.is_some(),
            // `--tty` implies `-i`: meta.json says so of such a job.
            interactive,
            ran: crate::usage::RanCost {
                ran: crate::usage::Ran { command, cwd },
                cost: crate::usage::Cost::of(st),
            },
            attempt: st.attempt(),
            previous_runs: crate::runs::listed(job, &st.previous_runs),
            queued: crate::queue::QueueInfo::of(st),
        }
    }
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let body = read(&job)?;
    Ok(Output::Doc(
        Response::new("status", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}

/// A job's `status` answer, as every door (CLI, HTTP, MCP) gives it.
pub fn read(job: &crate::job::Job) -> Result<StatusBody> {
    (|| {
        let meta = job.read_meta()?;
        let state = crate::observe::as_shown(job, crate::observe::current_state(job)?);
        Ok(StatusBody::new(job, &meta, &state))
    })()
    .map_err(|e: crate::error::Error| e.in_job(&job.id))
}
