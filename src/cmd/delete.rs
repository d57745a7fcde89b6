//! `delete JOB_ID` / `delete --all [--dry-run]` (alias `rm`): remove one
//! job that is not running, or every finished job of this directory.
//!
//! Invariants
//! - Nothing outside the root is ever removed: `store.lookup` validates
//!   the id before it touches the file system (`delete ""`, `delete ..`,
//!   `delete /tmp` are `job_not_found`), and `--all` only walks the
//!   root's own job directories.
//! - A running job is never removed. Liveness comes from the job lock via
//!   `observe::current_state`: a job whose supervisor is gone reads
//!   `failed` and is deletable. A `created` job is removed while holding
//!   its job lock, so a concurrent `start` either wins first (and the job
//!   is then running, so refused) or fails.
//! - `deleted` is reported only once the directory is verifiably gone.
//! - Counters: `skipped == out_of_scope + failed` (D21). Jobs of other
//!   directories count in both `out_of_scope` and `skipped` but are not
//!   listed.
//!
//! Rejected: 0.2.3's `pid_alive` probe (a reused pid kept a finished job
//! forever); its single-delete error echoing the typed prefix.

use std::fs::File;

use serde::Serialize;

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{self, Job, Status};
use crate::output::{Output, Response};
use crate::store::Store;
use crate::{gc, observe, sys};

#[derive(Serialize)]
pub struct DeleteEntry {
    pub job_id: String,
    pub state: &'static str,
    pub action: &'static str,
    pub reason: String,
}

#[derive(Serialize)]
pub struct DeleteBody {
    pub root: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd_scope: Option<String>,
    pub deleted: u64,
    pub skipped: u64,
    pub out_of_scope: u64,
    pub failed: u64,
    pub jobs: Vec<DeleteEntry>,
}

impl DeleteBody {
    fn new(store: &Store, dry_run: bool, cwd_scope: Option<String>) -> DeleteBody {
        DeleteBody {
            root: store.display(),
            dry_run,
            cwd_scope,
            deleted: 0,
            skipped: 0,
            out_of_scope: 0,
            failed: 0,
            jobs: Vec::new(),
        }
    }

    fn push(&mut self, id: &str, state: &'static str, action: &'static str, reason: &str) {
        self.jobs.push(DeleteEntry {
            job_id: id.to_string(),
            state,
            action,
            reason: reason.to_string(),
        });
    }

    fn out_of_scope(&mut self, id: &str, state: &'static str, reason: &str) {
        self.skipped += 1;
        self.out_of_scope += 1;
        self.push(id, state, "skipped", reason);
    }
}

fn running(job: &Job) -> Error {
    Error::InvalidState(format!(
        "invalid job state: cannot delete job {}: job is currently running",
        job.id
    ))
}

/// Hold the job lock of a `created` job, so no `start` can launch it
/// while it is being removed. Err: it is being started right now.
fn lock_created(job: &Job) -> Result<File> {
    let lock =
        crate::store::open_lock(&job.path(job::LOCK)).map_err(|e| Error::io("open job lock", e))?;
    if !sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
        return Err(running(job));
    }
    Ok(lock)
}

/// Delete one job (any state but running).
pub fn delete_one(store: &Store, job: &Job, dry_run: bool) -> Result<DeleteBody> {
    let st = observe::current_state(job).ok();
    let status = st.as_ref().map(|s| s.status());
    let mut state = status.map_or("unknown", Status::as_str);
    if status == Some(Status::Running) {
        return Err(running(job));
    }
    let mut body = DeleteBody::new(store, dry_run, None);
    let _guard = if status == Some(Status::Created) && !dry_run {
        let lock = lock_created(job)?;
        // Re-read under the lock: a `start` may have won just before.
        let now = observe::current_state(job).ok().map(|s| s.status());
        if now == Some(Status::Running) {
            return Err(running(job));
        }
        state = now.map_or("unknown", Status::as_str);
        Some(lock)
    } else {
        None
    };
    if dry_run {
        body.push(&job.id, state, "would_delete", "explicit_delete");
        return Ok(body);
    }
    if let Err(why) = gc::remove_job_dir(job) {
        return Err(Error::internal(match why.strip_prefix("delete_failed: ") {
            Some(e) => format!("failed to delete job directory {}: {e}", job.dir.display()),
            None => format!(
                "delete reported success but job directory still exists: {}",
                job.dir.display()
            ),
        }));
    }
    body.deleted = 1;
    body.push(&job.id, state, "deleted", "explicit_delete");
    Ok(body)
}

/// Delete every finished job whose working directory is `cwd_scope`.
pub fn delete_all(store: &Store, cwd_scope: String, dry_run: bool) -> Result<DeleteBody> {
    let names = gc::names_oldest_first(store)?;
    let mut body = DeleteBody::new(store, dry_run, None);
    for name in &names {
        let job = store.job(name);
        let in_scope = job
            .read_meta()
            .is_ok_and(|m| m.cwd.as_deref() == Some(cwd_scope.as_str()));
        if !in_scope {
            body.skipped += 1;
            body.out_of_scope += 1;
            continue;
        }
        let Ok(st) = observe::current_state(&job) else {
            body.out_of_scope(name, "unknown", "state_unreadable");
            continue;
        };
        let status = st.status();
        let state = status.as_str();
        if !status.is_terminal() {
            // `running` / `created` say why by themselves.
            body.out_of_scope(name, state, state);
            continue;
        }
        if dry_run {
            body.push(name, state, "would_delete", "terminal_in_cwd");
            continue;
        }
        match gc::remove_job_dir(&job) {
            Ok(()) => {
                body.deleted += 1;
                body.push(name, state, "deleted", "terminal_in_cwd");
            }
            Err(why) => {
                body.skipped += 1;
                body.failed += 1;
                body.push(name, state, "skipped", &why);
            }
        }
    }
    body.cwd_scope = Some(cwd_scope);
    Ok(body)
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let dry_run = m.has("dry-run");
    let body = match (m.has("all"), m.pos(0)) {
        (true, None) => delete_all(&store, super::list::current_dir(), dry_run)?,
        (false, Some(id)) => delete_one(&store, &store.lookup(id)?, dry_run)?,
        (true, Some(_)) => {
            return Err(Error::usage(
                "the argument '--all' cannot be used with 'JOB_ID'",
            ))
        }
        (false, None) => {
            return Err(Error::usage(
                "delete needs a JOB_ID, or --all for every finished job of this directory",
            ))
        }
    };
    Ok(Output::Doc(Response::new("delete", &body)))
}
