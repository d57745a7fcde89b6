//! `create [OPTIONS] [--] COMMAND...`: store a job definition; start
//! nothing. `start` launches it later.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::launch::{self, Spec};
use crate::output::{Output, Response};

#[derive(Serialize)]
struct CreateBody {
    job_id: String,
    state: &'static str,
    stdout_log_path: String,
    stderr_log_path: String,
    tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure: Option<crate::job::Failure>,
    /// `--queue NAME`, as status shows it in any state.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    /// `--tty`, as `run`'s answer says it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tty: bool,
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    launch::check_flags(m)?;
    let cfg = crate::config::load(m.get("config").map(std::path::Path::new))?;
    let spec = Spec::from_matches(m, &cfg)?;
    let launch::Defined {
        job,
        meta,
        mut state,
        stdin_unreadable,
        ..
    } = launch::define(&store, &spec, true)?;
    // Its stdin source could not be read: the job can never run. It is
    // launched now, so that its supervisor records the failure
    // (`stdin_unreadable`) and delivers its `job.finished` as for any
    // launch failure; `create` answers that failed job.
    if stdin_unreadable {
        let sinks = (None, spec.sink_timeout_ms);
        state = launch::launch(&store, &job, Some(&meta), None, sinks, None)?.state;
    }
    let body = CreateBody {
        job_id: job.id.clone(),
        state: state.status().as_str(),
        stdout_log_path: job.stdout_display(),
        stderr_log_path: job.stderr_display(),
        tags: meta.tags,
        failure: state.failure,
        queue: meta.queue,
        tty: meta.tty.is_some(),
    };
    Ok(Output::Doc(Response::new("create", &body)?))
}
