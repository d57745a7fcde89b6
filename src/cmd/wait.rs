//! `wait [--until S | --forever] JOB_ID`: block until the job is terminal
//! or the deadline passes (not an error: the state says which). Wakes on
//! the supervisor's state write, not on a poll tick; `--poll` is accepted
//! and ignored.

use serde::Serialize;

use crate::cli::Matches;
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
}

pub fn wait_body(job: &Job, st: &State) -> WaitBody {
    let terminal = st.status().is_terminal();
    WaitBody {
        job_id: job.id.clone(),
        state: st.status().as_str(),
        exit_code: st.result.exit_code.filter(|_| terminal),
        stdout_total_bytes: observe::size_of(&job.stdout_path()),
        stderr_total_bytes: observe::size_of(&job.stderr_path()),
        updated_at: st.updated_at.clone(),
        finished_at: st.finished_at.clone().filter(|_| terminal),
        signal: st.result.signal.clone().filter(|_| terminal),
        duration_ms: st.result.duration_ms.filter(|_| terminal),
        timed_out: terminal.then_some(st.result.timed_out),
        failure: st.failure.clone(),
        output_lost: st.output_lost.clone(),
    }
}

/// Wait with an optional budget in milliseconds (None = forever; a
/// budget too large for the clock is forever too).
pub fn wait_for_ms(job: &Job, until_ms: Option<u64>) -> Result<WaitBody> {
    let deadline = until_ms.and_then(crate::time::deadline_after);
    crate::info!("wait {}: waiting up to {:?} ms", job.id, until_ms);
    let st = observe::wait_terminal(job, deadline)?;
    crate::info!("wait {}: {}", job.id, st.status().as_str());
    Ok(wait_body(job, &st))
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let until = if m.has("forever") {
        None
    } else {
        Some(m.duration_ms("until").unwrap_or(30_000))
    };
    let body = wait_for_ms(&job, until).map_err(|e| e.in_job(&job.id))?;
    Ok(Output::Doc(Response::new("wait", &body)))
}
