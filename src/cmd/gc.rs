//! `gc [--older-than D] [--max-jobs N] [--max-bytes B] [--dry-run]`:
//! delete finished jobs from the whole root (cwd plays no part) by the
//! rules in `crate::gc`. Manual runs have no scan or delete budget and do
//! not take the auto-GC lock.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::gc::{self, Policy, Report};
use crate::output::{Output, Response};

#[derive(Serialize)]
pub struct GcBody {
    pub root: String,
    pub dry_run: bool,
    pub older_than: String,
    pub older_than_source: &'static str,
    /// deleted, skipped, out_of_scope, failed, freed_bytes, scanned_dirs,
    /// candidate_count, jobs.
    #[serde(flatten)]
    pub report: Report,
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    // The table validated the value; parse it again for its length (and
    // so that an internal caller gets invalid_duration, not a default).
    let older_than = m.get("older-than").unwrap_or("30d").to_string();
    let policy = Policy {
        protect: None,
        later_since_ms: None,
        older_than_ms: crate::time::parse_duration_ms(&older_than)?,
        max_jobs: m.u64("max-jobs"),
        max_bytes: m.u64("max-bytes"),
        dry_run: m.has("dry-run"),
        budget: None,
    };
    let mut r = gc::sweep(&store, &policy)?;
    // What earlier removals set aside and could not remove, as the
    // sweep's listing found it: its bytes are freed too.
    r.freed_bytes =
        r.freed_bytes
            .saturating_add(gc::sweep_gone_of(&store.root, &r.gone, policy.dry_run));
    let body = GcBody {
        root: store.display(),
        dry_run: policy.dry_run,
        older_than,
        older_than_source: if m.has("older-than") {
            "flag"
        } else {
            "default"
        },
        report: r,
    };
    Ok(Output::Doc(Response::new("gc", &body)?))
}
