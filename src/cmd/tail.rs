//! `tail [--tail-lines N] [--max-bytes N] JOB_ID`: the end of both logs,
//! read with one bounded pread each, whatever their size.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::observe;
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct TailBody {
    pub job_id: String,
    pub stdout: String,
    pub stderr: String,
    pub encoding: &'static str,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    pub stdout_range: [u64; 2],
    pub stderr_range: [u64; 2],
    pub stdout_total_bytes: u64,
    pub stderr_total_bytes: u64,
}

pub fn tail_body(job: &crate::job::Job, lines: u64, max_bytes: u64) -> Result<TailBody> {
    let read =
        |p: &std::path::Path| observe::tail(p, lines, max_bytes).map_err(|e| e.in_job(&job.id));
    let out = read(&job.stdout_path())?;
    let err = read(&job.stderr_path())?;
    Ok(TailBody {
        job_id: job.id.clone(),
        stdout: out.text,
        stderr: err.text,
        encoding: "utf-8-lossy",
        stdout_log_path: job.stdout_display(),
        stderr_log_path: job.stderr_display(),
        stdout_range: out.range,
        stderr_range: err.range,
        stdout_total_bytes: out.total,
        stderr_total_bytes: err.total,
    })
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let body = tail_body(
        &job,
        m.u64("tail-lines").unwrap_or(50),
        m.u64("max-bytes").unwrap_or(65536),
    )?;
    Ok(Output::Doc(Response::new("tail", &body)))
}
