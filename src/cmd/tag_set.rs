//! `tag set <JOB_ID> [--tag TAG]...`: replace a job's tags.
//!
//! Works in any state. The tags are validated (again: the flag table
//! already did, but this is also the HTTP server's path), deduplicated in
//! first-seen order, and stored through `job::update_meta`, whose lock on
//! `meta.lock` makes concurrent edits of one job serialise instead of
//! overwriting each other. No `--tag` at all clears the list.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::job::{self, Job};
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct TagSetBody {
    pub job_id: String,
    pub tags: Vec<String>,
}

/// Replace the tags of `job` with `tags` (validated, deduplicated). An
/// error from the store (meta.json or meta.lock that cannot be used)
/// names the job in `details.job_id`, as every error about a job does.
pub fn set_tags(job: &Job, tags: &[&str]) -> Result<TagSetBody> {
    for t in tags {
        job::validate_tag(t)?;
    }
    let tags = job::dedup(tags);
    let meta = job::update_meta(job, |m| {
        m.tags = tags;
        Ok(())
    })
    .map_err(|e| e.in_job(&job.id))?;
    Ok(TagSetBody {
        job_id: job.id.clone(),
        tags: meta.tags,
    })
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let body = set_tags(&job, &m.all("tag"))?;
    Ok(Output::Doc(Response::new("tag_set", &body)?))
}
