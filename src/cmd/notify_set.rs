//! `notify set JOB_ID [flags]`: change a job's stored notification
//! settings, in any state. Metadata only: no sink runs here, not even for
//! a finished job. The read-modify-write of meta.json holds `meta.lock`,
//! so a concurrent `tag set` or `notify set` is never lost (D16). A
//! running supervisor notices the new meta.json at its next read batch
//! and applies it to the lines printed after this returns.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{self, Notification};
use crate::notify;
use crate::output::{Output, Response};

#[derive(Serialize)]
struct NotifySetBody {
    job_id: String,
    /// The stored object; `{}` when nothing is configured.
    notification: Notification,
}

pub fn exec(m: &Matches) -> Result<Output> {
    // A pattern that cannot compile is an argument error: report it
    // before touching the store (the merge below checks the full result),
    // naming the job as given, as the merge's own check names it.
    if m.get("output-match-type") == Some("regex") {
        if let Some(p) = m.get("output-pattern").filter(|p| !p.is_empty()) {
            notify::check_pattern(&job::OutputMatch {
                pattern: p.to_string(),
                match_type: "regex".into(),
                stream: "either".into(),
                command: None,
                file: None,
            })
            .map_err(|e| e.in_job(m.pos(0).unwrap_or_default()))?;
        }
    }
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    // The notification guard (byte 0 of the job lock file, which the
    // supervisor takes while it reads the settings and publishes the
    // terminal state): this change lands wholly before the job ends, and
    // is delivered, or wholly after, and never runs a sink. A job that
    // never launched has no lock file and no supervisor to race.
    let guard = job.open_lock();
    if let Some(g) = &guard {
        crate::sys::ofd_lock_shared(g, 0).map_err(|e| Error::io("lock job", e).in_job(&job.id))?;
    }
    let meta = job::update_meta(&job, |meta| {
        meta.notification = notify::notification_from(m, meta.notification.as_ref())?;
        Ok(())
    })
    .map_err(|e| e.in_job(&job.id))?;
    drop(guard);
    let body = NotifySetBody {
        job_id: job.id.clone(),
        notification: meta.notification.unwrap_or_default(),
    };
    Ok(Output::Doc(Response::new("notify.set", &body)?))
}
