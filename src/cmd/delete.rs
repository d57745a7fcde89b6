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
//!   `failed` and is deletable. A `queued` job is killed first (it never
//!   ran) and then removed: deleting it takes it out of its queue; one
//!   that somebody besides its supervisor (and other deletes of it, which
//!   say so by a shared flock on its meta.json) holds pinned is refused
//!   before the kill. One whose turn came as the kill went out has started
//!   and ended `killed`: kept (`Stay::Ran`), its record showing it ran.
//!   Every removal holds the job (`gc::hold_for_removal`): its
//!   directory, so a job that a reader has pinned is refused (`in_use`)
//!   and no `start` or `restart` (they pin first) can begin; its job
//!   lock, so a launch in progress refuses the removal (`running`); and
//!   the state read again under both must be the one the delete decided
//!   on, so a job that a concurrent `start` / `restart` ran meanwhile is
//!   refused too, never removed under the state it had. A job with live
//!   processes (its group, or its root by pid and start time) is refused
//!   (`pid_alive`).
//! - A refusal changes nothing. `in_use` is retryable (another caller is
//!   mid-way: a reader, or the job's supervisor delivering its
//!   notifications, which the message names); the others are not.
//! - `delete A B C`: every id must resolve first (else `job_not_found`,
//!   nothing removed); then each is deleted or reported skipped.
//! - `deleted` is reported only once the directory is verifiably gone.
//! - A job that is not what a job should be (a symlink, a directory or
//!   some other non-file where its state.json or meta.json should be:
//!   what `status` reports as `unsafe_path`) is refused with that error
//!   before anything of it is removed, never half-deleted; `delete A B`
//!   and `--all` skip it with its reason (`unsafe_path`,
//!   `state_unreadable`), as `gc` does: in `delete A B` such a job
//!   resolves (it is there) and is skipped, and the others are deleted;
//!   `--all` lists one whose meta.json is damaged whatever its directory
//!   (which cannot be read from it): `unsafe_path`, or `state_unreadable`
//!   for a file that is not a job record. An operating-system failure while
//!   removing (a read-only root) is `io_error`, not `internal_error`.
//! - A job with a file system mounted inside its directory (a bind mount
//!   of somebody's files, say) is refused before anything of it is
//!   removed: `delete JOB` with a non-retryable `io_error` naming the
//!   mount point; `delete A B` and `--all` skip it (`mount_point`, out
//!   of scope). Nothing under a mount is ever removed (`gc::remove_tree`).
//! - Counters: `skipped == out_of_scope + failed` (D21). Jobs of other
//!   directories count in both `out_of_scope` and `skipped` but are not
//!   listed.
//!
//! Rejected: 0.2.3's `pid_alive` probe by pid alone (a reused pid kept a
//! finished job forever); its single-delete error echoing the typed
//! prefix.

use serde::Serialize;

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{Job, Status};
use crate::output::{Output, Response};
use crate::store::Store;
use crate::{gc, observe};

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

    /// A removal that failed (counted `failed`), or that was refused
    /// before it began (`unsafe_path`: out of scope, as in `gc`).
    fn removal_failed(&mut self, id: &str, state: &'static str, e: &gc::RemoveError) {
        if matches!(e, gc::RemoveError::Unsafe(_) | gc::RemoveError::Mount(_)) {
            return self.out_of_scope(id, state, &e.reason());
        }
        self.skipped += 1;
        self.failed += 1;
        self.push(id, state, "skipped", &e.reason());
    }
}

/// How long an explicit delete waits for readers that are letting go
/// (a job's supervisor finishing after its terminal state is written).
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a delete that killed a queued job waits for its supervisor,
/// which sends the killed job's `job.finished` before it lets go.
const KILLED_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long a delete of a queued job looks again at a pin that is not
/// marked as another delete's: that one marks itself a moment after it
/// pinned the job.
const MARK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

/// A queued job this delete told to end whose supervisor has not yet
/// recorded it killed (a refusal's reason).
const KILL_PENDING: &str = "kill_pending";

fn refused(job: &Job, why: &str) -> Error {
    // A launch holds the job (its lock, then its new supervisor's pin)
    // before the first record says `running`: the job is about to run,
    // and neither "a reader holds it" nor "started meanwhile (it is now
    // 'created')" says so. Asked again a moment later, this call says
    // it runs; `kill` answers the same meanwhile.
    let now = job.read_state().map(|s| s.status());
    if matches!(why, "running" | "in_use")
        && matches!(now, Ok(Status::Created))
        && job.is_launching()
    {
        return Error::Busy(format!(
            "invalid job state: cannot delete job {}: it is being started; nothing was changed, try again in a moment (kill it first once it runs)",
            job.id
        ))
        .in_job(&job.id);
    }
    // Held by the supervisor of a run that began while this delete
    // waited (a `start` beside it): it runs, as a `running` refusal
    // says, not "delivering its notifications".
    let why = match (why, now) {
        ("in_use", Ok(Status::Running)) => "running",
        _ => why,
    };
    let msg = match why {
        "running" => match observe::current_state(job).map(|s| s.status()) {
            Ok(Status::Running | Status::Queued) | Err(_) => "job is currently running".to_string(),
            // Started and already ended again: the same call can now
            // remove it (D6: retryable).
            Ok(now) => {
                return Error::Busy(format!(
                    "invalid job state: cannot delete job {}: it was started by another caller while this delete waited (it is now '{}'); nothing was removed, try again",
                    job.id,
                    now.as_str()
                ))
                .in_job(&job.id)
            }
        },
        // Somebody else is mid-way with the job: the same call succeeds
        // once they let go (D6: retryable).
        "in_use" => {
            // Held, and its record cannot be read: said so, and not
            // retryable (its own supervisor may hold it, for as long as
            // the job runs), not "a reader holds it, try again".
            if let Err(e) = job.read_state() {
                return Error::InvalidState(format!(
                    "invalid job state: cannot delete job {}: it is held (by its supervisor if it runs, or a reader) and its record cannot be read ({e}); kill it first if it runs",
                    job.id
                ))
                .in_job(&job.id);
            }
            return Error::Busy(format!(
                "invalid job state: cannot delete job {}: {}; nothing was changed, try again",
                job.id,
                holder(job)
            ))
            .in_job(&job.id)
        }
        // Another gc or delete took it first: it is gone (said so, as
        // a delete of it asked now would), or that one says why not;
        // asked again, this call has the answer.
        gc::GONE if std::fs::symlink_metadata(&job.dir).is_err() => {
            return Error::JobNotFound(job.id.clone())
        }
        gc::GONE => {
            return Error::Busy(format!(
                "invalid job state: cannot delete job {}: another gc or delete is removing it; nothing was changed by this one, try again",
                job.id
            ))
            .in_job(&job.id)
        }
        KILL_PENDING => {
            return Error::Busy(format!(
                "invalid job state: cannot delete job {}: it is queued, and its supervisor was told to end it (SIGTERM) but has not recorded it killed yet; try again",
                job.id
            ))
            .in_job(&job.id)
        }
        // Advice `kill` can follow only when it would signal them.
        "pid_alive" => match job.read_state().map(|st| (st.unseen(), st.own_processes(job))) {
            Ok((Some(why), _)) => format!(
                "its processes cannot be checked from here ({why}); nothing was removed: delete it where it was started"
            ),
            Ok((None, Err(why))) => format!(
                "processes its record names are still alive, and its record does not show them to be the job's ({why}): kill does not signal them either; end them by hand"
            ),
            _ => "processes of the job are still alive; kill it first".to_string(),
        },
        other => other.to_string(),
    };
    Error::InvalidState(format!(
        "invalid job state: cannot delete job {}: {msg}",
        job.id
    ))
    .in_job(&job.id)
}

/// Who holds a job that a removal found pinned, in words: its own
/// supervisor (delivering the ended run's notifications), or a reader.
fn holder(job: &Job) -> &'static str {
    let others = gc::pin_holders(&job.dir).unwrap_or_default();
    let st = job.read_state().ok();
    let supervisor = st.as_ref().and_then(|s| s.supervisor_pid);
    let queued = st.is_some_and(|s| s.status() == Status::Queued);
    match supervisor {
        _ if others.is_empty() => "a reader or the job's supervisor was holding it",
        // Queued by a `start` while this delete waited: asked again, it
        // is killed and removed as any queued job.
        Some(s) if queued && others.iter().all(|&p| p == s) => {
            "it was queued by another caller while this delete waited"
        }
        Some(s) if others.iter().all(|&p| p == s) => {
            "the job's supervisor is still delivering its notifications"
        }
        _ => "a reader (a run, wait, status, tail --follow, the server or MCP), or the delivery of a lost supervisor's job.finished, holds it",
    }
}

/// Why a job stays: `delete_job`'s refusals and failures.
enum Stay {
    /// May not be removed now (running, in_use, pid_alive): its state
    /// and the reason.
    Refused(&'static str, String),
    /// Its state reads as `unsafe_path`: refused as `status` refuses it.
    Unsafe(Error),
    /// The removal was refused or failed (`gc::remove_job_dir`).
    Removal(&'static str, gc::RemoveError),
    /// A queued job this delete killed, still held by its supervisor
    /// (delivering its `job.finished`) when the wait ran out.
    KilledHeld,
    /// A queued job whose turn came as this delete killed it: it had
    /// started, and ended in this state; kept.
    Ran(&'static str),
}

/// Delete one job (any state but running). Refusals are errors.
pub fn delete_one(store: &Store, job: &Job, dry_run: bool) -> Result<DeleteBody> {
    let mut body = DeleteBody::new(store, dry_run, None);
    match delete_job(job, dry_run) {
        Ok((state, action)) => {
            if action == "deleted" {
                body.deleted = 1;
            }
            body.push(&job.id, state, action, "explicit_delete");
            Ok(body)
        }
        Err(Stay::Unsafe(e)) => Err(e.in_job(&job.id)),
        Err(Stay::Removal(_, e)) => Err(e.into_error(job)),
        Err(Stay::Refused(_, why)) => Err(refused(job, &why)),
        Err(Stay::KilledHeld) => Err(Error::Busy(format!(
            "invalid job state: cannot delete job {}: it was queued, and this delete killed it (it never ran); its supervisor is still delivering its notifications: try again to remove it",
            job.id
        ))
        .in_job(&job.id)),
        Err(Stay::Ran(now)) => Err(Error::Busy(format!(
            "invalid job state: cannot delete job {}: it was queued, and its turn came as this delete killed it: it had started, and is now '{now}'; its record of what ran is kept: delete it again to remove it",
            job.id
        ))
        .in_job(&job.id)),
    }
}

/// The jobs `ids` name, each once (a job named twice, by its id and a
/// prefix say, would hold its own pin against its removal), in the order
/// first named. Every id must resolve before anything is removed.
pub fn lookup_distinct(store: &Store, ids: &[String]) -> Result<Vec<Job>> {
    let mut jobs: Vec<Job> = Vec::with_capacity(ids.len());
    for id in ids {
        let j = match store.lookup(id) {
            Ok(j) => j,
            // There but damaged (what `status` refuses as unsafe_path):
            // it resolved, and `delete_job` skips it with that reason, as
            // it skips one whose state.json is damaged; one damaged job
            // is no reason to delete none of the others.
            Err(Error::InJob(name, e)) if e.code() == "unsafe_path" => store.job(&name),
            Err(e) => return Err(e),
        };
        // Let go at once: each is held again when its turn comes
        // (`gc::hold_for_removal`). Held from here to the end, two
        // deletes of the same jobs in another order each kept the other
        // from every job but its first, for a second each, and called
        // them `in_use` (or left them all in place).
        let mut j = j;
        j.unpin();
        // A duplicate is dropped here.
        if !jobs.iter().any(|k| k.id == j.id) {
            jobs.push(j);
        }
    }
    Ok(jobs)
}

/// Delete several jobs: each is deleted or reported skipped with its
/// reason; none is an error once every id resolved.
pub fn delete_many(store: &Store, jobs: &[Job], dry_run: bool) -> DeleteBody {
    let mut body = DeleteBody::new(store, dry_run, None);
    for job in jobs {
        match delete_job(job, dry_run) {
            Ok((state, action)) => {
                if action == "deleted" {
                    body.deleted += 1;
                }
                body.push(&job.id, state, action, "explicit_delete");
            }
            Err(Stay::Removal(state, e)) => body.removal_failed(&job.id, state, &e),
            // Its supervisor holds it, not yet done with the kill.
            Err(Stay::Refused(state, why)) if why == KILL_PENDING => {
                body.out_of_scope(&job.id, state, "in_use")
            }
            Err(Stay::Refused(state, why)) => body.out_of_scope(&job.id, state, &why),
            Err(Stay::KilledHeld) => body.out_of_scope(&job.id, "killed", "in_use"),
            // Ran after all (see `Stay::Ran`): kept, as a job that ran
            // is by a delete of several.
            Err(Stay::Ran(now)) => body.out_of_scope(&job.id, now, "started"),
            Err(Stay::Unsafe(e)) => body.out_of_scope(&job.id, "unknown", e.code()),
        }
    }
    body
}

/// Delete one job unless it is running, held, alive or unsafe. Ok: its
/// state and the action taken; Err: why it stays.
fn delete_job(job: &Job, dry_run: bool) -> std::result::Result<(&'static str, &'static str), Stay> {
    // Its directory or meta.json a symlink or not a file: refused whole,
    // as `lookup` refuses it (a job named among others comes here
    // unpinned for this answer, see `lookup_distinct`).
    if let Some(why) = crate::store::damaged(&job.dir) {
        let e = Error::UnsafePath(format!("job {}: {why}", job.id));
        return Err(Stay::Unsafe(e.in_job(&job.id)));
    }
    // A state that cannot be read is no reason to keep a job (a damaged
    // state.json is what one deletes), but one that is not a file at all
    // is: every reader refuses that job as `unsafe_path`, and so does
    // this, before anything of it is removed.
    let st = match observe::current_state(job) {
        Err(e) if e.code() == "unsafe_path" => return Err(Stay::Unsafe(e)),
        r => r.ok(),
    };
    let state = st.as_ref().map_or("unknown", |s| s.status().as_str());
    if st.as_ref().is_some_and(|s| s.status() == Status::Running) {
        return Err(Stay::Refused(state, "running".into()));
    }
    if dry_run {
        // A dry run predicts the real one: a job with live processes
        // would be refused.
        if let Some(why) = gc::dry_run_blocker(job, st.as_ref()) {
            return Err(Stay::Refused(state, why.to_string()));
        }
        // And so would one with a file system mounted inside it.
        if let Some(at) = gc::mount_inside(&job.dir) {
            return Err(Stay::Removal(state, gc::RemoveError::Mount(at)));
        }
        return Ok((state, "would_delete"));
    }
    // A queued job leaves its queue: it is killed (nothing of it ran, so
    // nothing is lost) and then removed like any ended job.
    let mut killed = false;
    // Held until this delete is over (see below).
    let _deleting;
    let st = match st {
        Some(s) if s.status() == Status::Queued => {
            // Its supervisor pins it while it waits, which the removal
            // waits out; anybody else's pin would refuse the removal, and
            // a refusal must find the job as it was: asked before the
            // kill. (A reader that pins it between the two still refuses
            // the removal, of a job then ended `killed`.) But another
            // delete of it is no reader: the first of the two to take the
            // job removes it, the other then finds it gone. Deletes say
            // what they are by a shared flock on the job's meta.json,
            // which nothing else locks, kept until they are done; two
            // that took each other's pins for readers' both refused, and
            // the job ran. A delete pins the job (its lookup) a moment
            // before it takes that mark: a pin without one is looked at
            // again for a little while (a reader's stays, and refuses).
            _deleting = crate::sys::open_read(&job.path(crate::job::META))
                .ok()
                .filter(|f| crate::sys::lock_shared(f).is_ok());
            let readers = || {
                let deleting = gc::pin_holders(&job.path(crate::job::META)).unwrap_or_default();
                gc::pin_holders(&job.dir).is_some_and(|h| {
                    h.iter()
                        .any(|&p| Some(p) != s.supervisor_pid && !deleting.contains(&p))
                })
            };
            let until = std::time::Instant::now() + MARK_PATIENCE;
            while readers() {
                if std::time::Instant::now() >= until {
                    return Err(Stay::Refused(state, "in_use".into()));
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            // Its supervisor cannot be told from here: nothing is sent,
            // as `kill` says (it was told "try again" for good).
            if s.unseen().is_some() {
                return Err(Stay::Unsafe(crate::cmd::kill::unseen(job, &s)));
            }
            let _ = crate::cmd::kill::kill_job(job, libc::SIGTERM, false);
            let now = observe::current_state(job).ok();
            match now.as_ref().map(|s| s.status()) {
                // Its turn came as the kill went out: it had started, and
                // the kill ended it as it ends a running job (kill's
                // race). This delete was for a job that never ran: the
                // record of what ran is kept, and said so.
                Some(s)
                    if s.is_terminal()
                        && now.as_ref().is_some_and(|n| n.job.started_at.is_some()) =>
                {
                    return Err(Stay::Ran(s.as_str()));
                }
                Some(s) if s.is_terminal() => {}
                // Told to end, and not yet on record (a supervisor slow
                // to answer): said so, not "running" for good.
                Some(Status::Queued) => return Err(Stay::Refused(state, KILL_PENDING.into())),
                // Removed meanwhile, by another delete of it.
                None if std::fs::symlink_metadata(&job.dir).is_err() => {
                    return Err(Stay::Refused(state, gc::GONE.into()))
                }
                _ => return Err(Stay::Refused(state, "running".into())),
            }
            // Its supervisor now sends the killed job's `job.finished`
            // (a command sink may take a while): waited for longer, and
            // should it still hold the job, the refusal must not say
            // nothing changed.
            killed = true;
            now
        }
        other => other,
    };
    let patience = if killed { KILLED_PATIENCE } else { PATIENCE };
    let _hold = gc::hold_for_removal(job, st.as_ref(), patience).map_err(|why| match why {
        "in_use" if killed => Stay::KilledHeld,
        _ => Stay::Refused(state, why.to_string()),
    })?;
    gc::remove_job_dir(job).map_err(|e| Stay::Removal(state, e))?;
    Ok((state, "deleted"))
}

/// Delete every finished job whose working directory is `cwd_scope`
/// (and every created one with `include_created`).
pub fn delete_all(
    store: &Store,
    cwd_scope: String,
    dry_run: bool,
    include_created: bool,
) -> Result<DeleteBody> {
    let (names, foreign) = gc::names_oldest_first(store)?;
    let mut body = DeleteBody::new(store, dry_run, None);
    // Directories whose names are not UTF-8: no id names them, so whose
    // they are is never read and they are never removed; counted as out
    // of scope, as gc counts them, and not listed (no name to print).
    body.skipped += foreign;
    body.out_of_scope += foreign;
    for name in &names {
        let job = store.job(name);
        // Out of descriptors: this process's failure; no job is judged.
        let meta = match job.read_meta() {
            Err(e) if e.out_of_descriptors() => return Err(e),
            // Taken away by a concurrent gc or delete since the listing:
            // listed as such, as gc lists it, so that every name found
            // has an entry (whose it was can no longer be read).
            Err(_) if crate::gc::being_removed(&job.dir) => {
                body.out_of_scope(name, "unknown", gc::GONE);
                continue;
            }
            m => m,
        };
        // Its meta.json a symlink or not a file: whose it is cannot be
        // told, and no reader accepts it. Listed, as `gc` lists it, so
        // the skip is seen, and never removed.
        if meta.is_err() && crate::store::damaged(&job.dir).is_some() {
            body.out_of_scope(name, "unknown", "unsafe_path");
            continue;
        }
        // A meta.json that is a file but not a record (not JSON, not a
        // job's, too large): as unknown a directory, and listed too,
        // with the reason `gc` gives a record it cannot read. A missing
        // one (a launch still writing it) or one that cannot be opened
        // (no permission) is not damaged: counted, not listed.
        if let Err(Error::Io { source, .. }) = &meta {
            if source.kind() == std::io::ErrorKind::InvalidData {
                body.out_of_scope(name, "unknown", "state_unreadable");
                continue;
            }
        }
        let in_scope = meta.is_ok_and(|m| m.cwd.as_deref() == Some(cwd_scope.as_str()));
        if !in_scope {
            body.skipped += 1;
            body.out_of_scope += 1;
            continue;
        }
        let st = match observe::current_state(&job) {
            Ok(st) => st,
            Err(e) if e.out_of_descriptors() => return Err(e),
            // Taken away by a concurrent gc or delete: not this one's.
            Err(_) if crate::gc::being_removed(&job.dir) => {
                body.out_of_scope(name, "unknown", gc::GONE);
                continue;
            }
            Err(e) => {
                body.out_of_scope(name, "unknown", crate::gc::unreadable_reason(&e));
                continue;
            }
        };
        let status = st.status();
        let state = status.as_str();
        let wanted = status.is_terminal() || (include_created && status == Status::Created);
        if !wanted {
            // `running` / `created` say why by themselves.
            body.out_of_scope(name, state, state);
            continue;
        }
        // A process of the job still alive: the job is not over for the
        // machine, whatever its record says (checked by start time, so a
        // reused pid never counts).
        if let Some(why) = gc::alive_blocker(Some(&st)) {
            body.out_of_scope(name, state, why);
            continue;
        }
        // Why it is in scope: finished here, or (--include-created)
        // created here and never started.
        let why = if st.status() == Status::Created {
            "created_in_cwd"
        } else {
            "terminal_in_cwd"
        };
        if dry_run {
            match gc::dry_run_blocker(&job, Some(&st)) {
                Some(blocker) => body.out_of_scope(name, state, blocker),
                None => body.push(name, state, "would_delete", why),
            }
            continue;
        }
        let hold = match gc::hold_for_removal(&job, Some(&st), PATIENCE) {
            Ok(h) => h,
            // Removed by a concurrent gc or delete, after this one
            // chose it: listed as such (skipped, already_deleted).
            Err(why) => {
                body.out_of_scope(name, state, why);
                continue;
            }
        };
        match gc::remove_job_dir(&job) {
            Ok(()) => {
                body.deleted += 1;
                body.push(name, state, "deleted", why);
            }
            Err(gc::RemoveError::Gone) => body.out_of_scope(name, state, gc::GONE),
            Err(e) => body.removal_failed(name, state, &e),
        }
        drop(hold);
    }
    body.cwd_scope = Some(cwd_scope);
    Ok(body)
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let dry_run = m.has("dry-run");
    let ids = &m.positionals;
    if m.has("include-created") && !m.has("all") {
        return Err(Error::usage("--include-created needs --all"));
    }
    let body = match (m.has("all"), ids.len()) {
        (true, 0) => delete_all(
            &store,
            super::list::caller_dir()?,
            dry_run,
            m.has("include-created"),
        )?,
        (false, 1) => delete_one(&store, &store.lookup(&ids[0])?, dry_run)?,
        (false, n) if n > 1 => {
            let jobs = lookup_distinct(&store, ids)?;
            delete_many(&store, &jobs, dry_run)
        }
        (true, _) => {
            return Err(Error::usage(
                "the argument '--all' cannot be used with 'JOB_ID'",
            ))
        }
        (false, _) => {
            return Err(Error::usage(
                "delete needs a JOB_ID, or --all for every finished job of this directory",
            ))
        }
    };
    Ok(Output::Doc(Response::new("delete", &body)?))
}
