//! `start [OPTIONS] JOB_ID`: launch a job made by `create`, then wait like
//! `run`. Only a `created` job starts, and only once, however many
//! `start`s race for it: the job lock decides. Auto-GC and the
//! command-sink limit go by the config named at `create --config`, kept
//! with the job (else the default config); `--no-auto-gc` and
//! `--auto-gc-*` on `start` apply on top.

use std::time::Instant;

use crate::cli::Matches;
use crate::cmd::run::{observe_inline, WaitPlan};
use crate::error::Result;
use crate::launch;
use crate::output::{Output, Response};

pub fn exec(m: &Matches) -> Result<Output> {
    let t0 = Instant::now();
    let plan = WaitPlan::from_matches(m);
    crate::cmd::run::hold_stop_signals(plan);
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let deadline = plan.deadline();
    let body = (|| {
        let mut meta = job.read_meta()?;
        meta.env_vars = launch::env_display(&job, &meta);
        // The settings of the config named at `create`, if one was.
        let cfg = launch::relaunch_settings(&meta)?;
        let auto_gc = crate::gc::AutoGc::from_matches(m, &cfg.gc);
        let gc_sinks = (auto_gc.as_ref(), Some(cfg.sink_timeout_ms));
        let mut l = launch::launch(&store, &job, None, None, gc_sinks, deadline)?;
        observe_inline(&job, &meta, &mut l, plan, (t0, deadline))
    })()
    .map_err(|e| e.in_job(&job.id))?;
    Ok(Output::Doc(
        Response::new("start", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}
