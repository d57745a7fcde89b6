//! `start [OPTIONS] JOB_ID`: launch a job made by `create`, then wait like
//! `run`. Only a `created` job starts, and only once, however many
//! `start`s race for it: the job lock decides.

use std::time::Instant;

use crate::cli::Matches;
use crate::cmd::run::{observe_inline, WaitPlan};
use crate::error::Result;
use crate::launch;
use crate::output::{Output, Response};

pub fn exec(m: &Matches) -> Result<Output> {
    let t0 = Instant::now();
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let meta = job.read_meta()?;
    let cfg = crate::config::load(None)?;
    let auto_gc = crate::gc::AutoGc::from_matches(m, &cfg.gc);
    let sink_timeout = Some(cfg.notify.sink_timeout_secs);
    let mut l = launch::launch(&store, &job, None, auto_gc.as_ref(), sink_timeout)?;
    let body = observe_inline(&job, &meta, &mut l, WaitPlan::from_matches(m), t0)?;
    Ok(Output::Doc(Response::new("start", &body)))
}
