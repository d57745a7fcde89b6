//! Retention: which finished jobs to delete, shared by `gc` and the
//! automatic clean-up that follows `run` / `start` (`claim_auto`, taken by
//! the supervisor once the caller has its answer, then `AutoClaim::run`
//! in a process of its own, `_gc`, at the lowest priority: `exec_auto`).
//!
//! The rules (a union, DECISIONS D20). A terminal job is deleted when it
//! breaks ANY of them; its `reason` joins the ones it broke with `+`, in
//! the order `older_than+max_jobs+max_bytes`:
//! - `older_than`: its gc time (`finished_at`, else `updated_at`, both
//!   parsed, never compared as strings) is before now − D;
//! - `max_jobs N`: it is not among the newest N terminal jobs;
//! - `max_bytes B`: walking terminal jobs oldest-first, it is needed to
//!   bring their total size to at most B (one that cannot be removed
//!   now, `dry_run_blocker` or a mount inside, is passed over: its bytes
//!   stay counted, and the walk takes the next).
//!
//! All three select a prefix of the same oldest-first order (`max_bytes`
//! less the jobs it passed over), so each can be evaluated on its own
//! and the union is still "what is needed".
//!
//! Also removed: half-written job directories — named as a job id, no
//! meta.json, untouched for a minute — left by a launch that died
//! (reason `incomplete`). Anything else in the root that is not a
//! readable job is skipped (`state_unreadable`), however old: it is not
//! ours.
//!
//! Invariants
//! - Active jobs (`created`, `queued`, `running`) are never deleted
//!   (`active_job`): a `created` job is one someone means to `start`.
//!   Neither is any job whose job lock is held (a supervisor or a
//!   launch), that a reader has pinned, that was started again since it
//!   was read, or that still has live processes (`hold_for_removal`):
//!   those are skipped with `running`, `in_use` or `pid_alive`. Every
//!   removal (`gc`, `delete`, `delete --all`) goes by that one protocol.
//!   A `running` job
//!   whose supervisor is gone is first reconciled to `failed`
//!   (`observe::current_state`) and is then an ordinary terminal job.
//! - Sizes never follow symlinks, and neither does removal: a tree is
//!   removed through directory descriptors alone (`sys::Dir::remove_tree`),
//!   so a directory its owner swaps for a symlink while it goes is
//!   removed as a symlink, never followed; any depth, with at most 32
//!   descriptors open.
//! - A job is never half-removed for want of checking first: one whose
//!   state cannot be read is skipped (`state_unreadable`), and one with
//!   a directory where its meta.json or state.json should be is skipped
//!   with `unsafe_path` before anything of it is removed.
//! - A job leaves every reader's view in one rename (to `.gone-` and
//!   the end of its id, a name no longer than the id, in the root)
//!   before anything of it is removed (`remove_job_dir`):
//!   readers see it whole or not at all, and a removal the system stops
//!   half-way leaves no job with its logs gone, only remains out of
//!   view, which a later `gc` removes (`sweep_gone`).
//! - Nothing on another file system, and nothing under a mount point, is
//!   ever removed or counted: a job directory with a mount inside it or
//!   on it (a bind mount, which keeps the device number, included) is
//!   refused whole (`mount_point`) before anything is removed, as are
//!   removal remains and kept runs with one, and the removal
//!   never descends into a directory on another device than the job
//!   directory's (a mount made after the check).
//! - What every reader refuses as `unsafe_path` (a meta.json that is a
//!   symlink, a FIFO or a directory: `store::damaged`; a state.json that
//!   is not a file) is skipped with that reason, never judged by the
//!   rest of its files and removed.
//! - `deleted` is reported only once the directory is verifiably gone.
//! - Auto-GC never fails its caller: errors are logged, not returned. Its
//!   guard is a non-blocking flock on `<root>/.gc.lock` (a crashed run
//!   leaves a file nobody holds, not a stuck guard); a held lock means
//!   another launch is already collecting, so this one skips silently.
//! - Auto-GC is bounded: at most `scan_limit` job directories have their
//!   state read, at most `delete_limit` are removed. It scans oldest-first
//!   so the budget is spent where the old jobs are; with only the age rule
//!   active it stops at the first ULID created after the cutoff (a job
//!   cannot have finished before it was created), once it has read the
//!   oldest `SCAN_BEFORE_STOP` (a state aged by hand is still found in a
//!   small root), so a root of recent jobs costs one directory listing
//!   and a few dozen state reads.
//! - With a partial auto scan, `max_jobs` counts every unscanned (newer)
//!   directory as a terminal job: nearly all are, and the error is bounded
//!   by the number of active jobs. `max_bytes` only sees scanned jobs, so
//!   a partial scan can delete less than a full one, never more.
//! - An age-only auto scan that runs out of `scan_limit` notes the last
//!   name it read in the guard file (`resume after NAME`); the next one
//!   begins after it and goes round to the oldest (`Budget::
//!   resume_after`). Other rules count by the oldest-first order, and
//!   keep it.
//! - `max_jobs` and `max_bytes` sweeps read every name their budget
//!   allows: which jobs they keep follows from every job's state and
//!   end, in no order the ids give.
//! - Under `max_jobs` (without `max_bytes`), for a second after a sweep
//!   that read every name and found none past the age line (the guard's
//!   `aged` line), a launch into a root of no more subdirectories than
//!   `max_jobs` (its link count) starts no sweep, if it has more than
//!   `SCAN_BEFORE_STOP`: the same second's grace the age-only idle skip
//!   takes. A smaller root is read in full each time, as before.
//!
//! - Auto-GC runs in its own process, not in a thread of the supervisor:
//!   the supervisor's exit is what a `restart` of its job waits for (that
//!   run's notifications are delivered by then), and a sweep of a large
//!   root held that exit, and so the restart, for as long as it took.
//!   The supervisor takes the guard (most launches find nothing to do and
//!   start nothing), then hands the locked guard file to `_gc` as fd 3.
//! - `_gc` sweeps once the root has gone `QUIET` (20 ms) without a new
//!   directory, waiting at most `QUIET_AT_MOST` (2 s), guard held: the
//!   launches of a burst find it held and start nothing, and the one
//!   sweep after the burst has their budgets with its own (one per job
//!   created since it began to wait, up to `MOST_STOOD_FOR` launches)
//!   and keeps the newest of those, the last launch's, where each
//!   launch's own sweep kept its job (`Policy::later_since_ms`). A
//!   launch whose settings that sweep's do not cover (`AutoGc::covers`,
//!   read from the guard's `rules` line) is not merged: a sweep of its
//!   own waits for its turn (`claim_or_queue`, `_gc --wait-turn`),
//!   holding the guard's seat (an OFD lock on one byte), so that at most
//!   one waits. It
//!   sweeps only if the root still holds the guard it locked: a root
//!   renamed, or swapped for a symlink or another directory while it
//!   waited, is not swept. A sweep per launch, each exec'd to
//!   read `scan_limit` states and delete one job, made a burst of 200
//!   launches into a root at its `max_jobs` 1.09x slower than with
//!   auto-GC off.
//! - Auto-GC also removes the remains of removals (`sweep_gone`), its own
//!   cut short by a crash included: it is the only clean-up most roots
//!   ever get.
//!
//! Rejected: 0.2.3's create-new `.gc.lock` file (a crash left it behind
//! and disabled auto-GC for good); its lexical compare of the first 19
//! bytes of timestamps; `max_jobs`/`max_bytes` that only ever looked at
//! jobs already past the age cutoff; scanning the same first N entries in
//! file-system order every time (old jobs beyond them were never reached).

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::job::{Job, State};
use crate::store::{self, Store};
use crate::{debug, info, observe, sys, time, warn};

use crate::cli::Matches;
use crate::config::GcConfig;

/// Auto-GC settings for one launch, after config and flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AutoGc {
    pub older_than_secs: u64,
    pub max_jobs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub scan_limit: u64,
    pub delete_limit: u64,
}

impl AutoGc {
    /// Config `[gc]`, overridden by `--auto-gc-*`; None when disabled
    /// (`[gc] auto = false` or `--no-auto-gc`) or when the config's
    /// `older_than` is not a duration and no flag replaces it (warned).
    pub fn from_matches(m: &Matches, cfg: &GcConfig) -> Option<AutoGc> {
        if !cfg.auto || m.has("no-auto-gc") {
            return None;
        }
        // Whole seconds, rounded up: never a job younger than the window
        // (`500ms` counted as 0 took jobs that had just ended).
        let older_than_secs = match m
            .get("auto-gc-older-than")
            .and_then(|d| crate::time::parse_duration_ms(d).ok())
            .map(|ms| ms.div_ceil(1000))
        {
            Some(secs) => secs,
            None => {
                // The config's retention is unreadable: guessing one could
                // delete jobs the user meant to keep, and refusing would
                // fail a launch over a clean-up.
                if let Some(why) = &cfg.older_than_invalid {
                    warn!("auto-gc skipped: {why}");
                    return None;
                }
                cfg.older_than_secs
            }
        };
        Some(AutoGc {
            older_than_secs,
            max_jobs: m.u64("auto-gc-max-jobs").or(cfg.max_jobs),
            max_bytes: m.u64("auto-gc-max-bytes").or(cfg.max_bytes),
            scan_limit: cfg.scan_limit,
            delete_limit: cfg.delete_limit,
        })
    }

    /// Does a sweep under these settings remove every job one under
    /// `other` would, within at least its budget? Then a launch with
    /// `other` that finds such a sweep under way needs none of its own.
    pub fn covers(&self, other: &AutoGc) -> bool {
        // None is no limit: covered only by no limit.
        let at_most = |mine: Option<u64>, theirs: Option<u64>| match (mine, theirs) {
            (_, None) => true,
            (Some(a), Some(b)) => a <= b,
            (None, Some(_)) => false,
        };
        self.older_than_secs <= other.older_than_secs
            && at_most(self.max_jobs, other.max_jobs)
            && at_most(self.max_bytes, other.max_bytes)
            && self.scan_limit >= other.scan_limit
            && self.delete_limit >= other.delete_limit
    }

    /// One argv word for the supervisor: `o=..,j=..,b=..,s=..,d=..`.
    pub fn to_arg(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        format!(
            "o={},j={},b={},s={},d={}",
            self.older_than_secs,
            opt(self.max_jobs),
            opt(self.max_bytes),
            self.scan_limit,
            self.delete_limit
        )
    }

    pub fn from_arg(s: &str) -> Option<AutoGc> {
        let mut g = AutoGc {
            older_than_secs: 0,
            max_jobs: None,
            max_bytes: None,
            scan_limit: 0,
            delete_limit: 0,
        };
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            let num = || v.parse::<u64>().ok();
            let opt = || {
                if v == "-" {
                    Some(None)
                } else {
                    num().map(Some)
                }
            };
            match k {
                "o" => g.older_than_secs = num()?,
                "j" => g.max_jobs = opt()?,
                "b" => g.max_bytes = opt()?,
                "s" => g.scan_limit = num()?,
                "d" => g.delete_limit = num()?,
                _ => return None,
            }
        }
        Some(g)
    }
}

/// The auto-GC guard, in the root. Never removed: only its flock counts.
pub const GC_LOCK: &str = ".gc.lock";

/// The right to run one auto-GC sweep: the guard locked, and the sweep
/// not known to be idle. Taken by `claim_auto` where the launch's
/// supervisor runs, so that a launch with nothing to collect starts no
/// process; the sweep itself (`AutoClaim::run`) goes in a process of its
/// own (`_gc`, `exec_auto`) at the lowest priority, which inherits the
/// locked guard (`AutoClaim::guard`). Dropping it releases the guard.
pub struct AutoClaim {
    lock: std::fs::File,
    /// For an age-only sweep: the line recording it, should it be idle.
    idle_note: Option<String>,
    /// Where the last sweep ran out of its scan budget (`Budget::
    /// resume_after`), as the guard file says.
    resume_after: Option<String>,
    /// For a sweep under `max_jobs`: the line it writes should it read
    /// every job and find none past the age line (`claim_auto`).
    aged_note: Option<String>,
}

/// Take the auto-GC guard for one sweep, unless another launch holds it
/// (it is collecting) or an age-only sweep with these settings found
/// nothing under a second ago. Never fails its caller: errors are
/// logged and mean "no sweep". See the module header.
pub fn claim_auto(store: &Store, g: &AutoGc) -> Option<AutoClaim> {
    match claim(store, g, false)? {
        Auto::Sweep(c) => Some(c),
        Auto::Queue(_) => None,
    }
}

/// What a launch does about auto-GC (`claim_or_queue`).
pub enum Auto {
    /// Sweep now: the guard is ours.
    Sweep(AutoClaim),
    /// Another launch's sweep holds the guard under settings that do not
    /// cover ours (`AutoGc::covers`): a sweep of ours takes its turn
    /// after it (`_gc --wait-turn`). The guard file, with its `SEAT`
    /// held: one sweep waits at a time.
    Queue(std::fs::File),
}

/// The byte of the guard file whose OFD lock is the seat of the one sweep
/// that waits for its turn (flock and OFD locks never conflict).
const SEAT: u64 = 0;

/// `claim_auto`, for a launch: where another launch's sweep holds the
/// guard under settings that would leave what this launch's remove (a
/// `--auto-gc-max-jobs 1` right after a plain `run`), a sweep of ours
/// waits for its turn, rather than the launch's own settings going
/// unheard (each invocation's settings hold, as the README says). Unless
/// a sweep already waits: then this launch's settings go with the
/// burst's, as before.
pub fn claim_or_queue(store: &Store, g: &AutoGc) -> Option<Auto> {
    claim(store, g, true)
}

fn claim(store: &Store, g: &AutoGc, queue: bool) -> Option<Auto> {
    let path = store.root.join(GC_LOCK);
    let lock = match open_guard(&store.root) {
        Ok(f) => f,
        Err(e) => {
            warn!("auto-gc failed (best-effort): open {}: {e}", path.display());
            return None;
        }
    };
    if !sole_name(&lock) {
        warn!(
            "auto-gc skipped: {} has another name (a hard link); it is written, and would write there too",
            path.display()
        );
        return None;
    }
    match sys::try_lock_exclusive(&lock) {
        Ok(true) => {}
        Ok(false) => {
            // The holder's settings, as it recorded them (`held`). None
            // (not written yet, a holder of an older build, a torn read):
            // taken to cover ours, as every held guard was before.
            let holder = guard_line(&lock, RULES).and_then(|r| AutoGc::from_arg(&r));
            if !queue || holder.map_or(true, |h| h.covers(g)) {
                debug!("auto-gc skipped: another run holds {}", path.display());
                return None;
            }
            if !sys::try_ofd_lock(&lock, SEAT).unwrap_or(false) {
                debug!("auto-gc skipped: another run's sweep already waits for its turn");
                return None;
            }
            return Some(Auto::Queue(lock));
        }
        Err(e) => {
            warn!("auto-gc failed (best-effort): lock {}: {e}", path.display());
            return None;
        }
    }
    // An age-only sweep that found nothing to delete is not repeated
    // within a second: nothing can have crossed the age line meanwhile
    // but what finished a second either side of it (the next sweep takes
    // it), and a burst of launches would otherwise list the root once a
    // job. Only the age rule can be idle this way: a new finished job can
    // put an old one beyond `max_jobs` or `max_bytes` at any moment.
    let age_only = g.max_jobs.is_none() && g.max_bytes.is_none();
    let now_ms = time::now_unix_ms();
    // The key `AutoClaim::held` writes the idle line under.
    let idle_key = guard_key("idle", g);
    if age_only && recently_idle(&lock, &idle_key, now_ms) {
        debug!("auto-gc skipped: an age-only sweep found nothing under a second ago");
        return None;
    }
    // Under `max_jobs`, the same second's grace once a sweep read every
    // job and found none past the age line (`Report::age_clear`), when
    // the root has no more subdirectories than the rule keeps jobs:
    // its link count tells (two, and one per subdirectory, where the
    // file system counts them so; btrfs says 1, and is never skipped).
    // A burst of launches into a root under its limit then starts no
    // sweep at each launch, to list thousands of names and find nothing.
    if let (Some(keep), None) = (g.max_jobs, g.max_bytes) {
        let key = guard_key("aged", g);
        let subdirs = fs::metadata(&store.root).map_or(u64::MAX, |m| {
            use std::os::unix::fs::MetadataExt;
            m.nlink().checked_sub(2).unwrap_or(u64::MAX)
        });
        // Never in a root small enough to be read in full each time (as
        // an age-only sweep reads its first `SCAN_BEFORE_STOP`).
        if subdirs <= keep && subdirs > SCAN_BEFORE_STOP && recently_idle(&lock, &key, now_ms) {
            debug!("auto-gc skipped: under max_jobs, and the age rule found nothing under a second ago");
            return None;
        }
    }
    Some(Auto::Sweep(AutoClaim::held(lock, g)))
}

impl AutoClaim {
    /// The claim of a guard file this process holds locked.
    fn held(lock: std::fs::File, g: &AutoGc) -> AutoClaim {
        let age_only = g.max_jobs.is_none() && g.max_bytes.is_none();
        let now_ms = time::now_unix_ms();
        let by_count = g.max_jobs.is_some() && g.max_bytes.is_none();
        let kept = guard_text(&lock);
        let resume_after = line_in(&kept, RESUME).filter(|n| store::valid_id(n));
        // This sweep's settings, for the launches that find it under way
        // (`claim_or_queue`); the file's other lines stay. The sweep's
        // own note replaces them all when it is done (`run`).
        {
            use std::os::unix::fs::FileExt;
            let mut text: String = kept
                .lines()
                .filter(|l| !l.starts_with(RULES))
                .map(|l| format!("{l}\n"))
                .collect();
            text.push_str(&format!("{RULES}{}\n", g.to_arg()));
            let was = lock.metadata().map_or(u64::MAX, |m| m.len());
            // Cut only what is left over: a truncate is a journal
            // operation on ext4, and the text rarely shrinks.
            if lock.write_at(text.as_bytes(), 0).is_ok() && was > text.len() as u64 {
                let _ = lock.set_len(text.len() as u64);
            }
        }
        AutoClaim {
            resume_after,
            idle_note: age_only.then(|| format!("{} {now_ms}\n", guard_key("idle", g))),
            aged_note: by_count.then(|| format!("{} {now_ms}\n", guard_key("aged", g))),
            lock,
        }
    }

    /// The locked guard file, to hand to the process that sweeps.
    pub fn guard(&self) -> &std::fs::File {
        &self.lock
    }

    /// The sweep: best effort and bounded; never reports to the caller.
    /// `launched`: the job whose launch this sweep follows, which it never
    /// removes (the caller was just given its paths), whatever the rules
    /// say of it once it has ended (`--auto-gc-max-jobs 0`).
    pub fn run(self, store: &Store, g: &AutoGc, launched: &str, later_since_ms: Option<u64>) {
        let policy = Policy {
            protect: Some(launched.to_string()),
            later_since_ms,
            older_than_ms: g.older_than_secs.saturating_mul(1000),
            max_jobs: g.max_jobs,
            max_bytes: g.max_bytes,
            dry_run: false,
            budget: Some(Budget {
                scan_limit: g.scan_limit,
                delete_limit: g.delete_limit,
                read_first: SCAN_BEFORE_STOP,
                resume_after: self.resume_after,
            }),
        };
        let result = sweep(store, &policy);
        let idle = matches!(&result, Ok(r) if r.candidate_count == 0);
        let mut note = self.idle_note.filter(|_| idle).unwrap_or_default();
        // A full reading that found nothing past the age line: for a
        // second, launches under `max_jobs` may start none (`claim_auto`).
        if matches!(&result, Ok(r) if r.age_clear) {
            note.push_str(self.aged_note.as_deref().unwrap_or_default());
        }
        if let Ok(Report {
            stopped_after: Some(name),
            ..
        }) = &result
        {
            note.push_str(&format!("{RESUME}{name}\n"));
        }
        let _ = self.lock.set_len(0);
        {
            use std::io::Write;
            let _ = (&self.lock).write_all(note.as_bytes());
        }
        // The remains of removals a crash or the system cut short (an
        // auto-GC killed half-way through a job leaves one): the only
        // clean-up most roots ever get is this one. Those the sweep's
        // own listing found (a removal it cut short itself is left to the
        // next): a second listing cost as much as the sweep.
        match &result {
            Ok(r) => {
                sweep_gone_of(&store.root, &r.gone, false);
            }
            Err(_) => sweep_gone(&store.root),
        }
        match result {
            Ok(r) => info!(
                "gc complete: mode=auto deleted={} skipped={} out_of_scope={} failed={} freed_bytes={} scanned_dirs={} candidate_count={}",
                r.deleted,
                r.skipped,
                r.out_of_scope,
                r.failed,
                r.freed_bytes,
                r.scanned_dirs,
                r.candidate_count
            ),
            Err(e) => warn!("auto-gc failed (best-effort): {e}"),
        }
    }
}

/// Is the guard file ours alone: no other name (a hard link made by
/// someone) that writing it would write through?
fn sole_name(f: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    f.metadata().is_ok_and(|m| m.nlink() == 1)
}

/// Where `_gc` finds the guard file its supervisor locked for it.
pub const CLAIM_FD: std::os::fd::RawFd = 3;

/// `_gc ROOT JOB_ID --gc SPEC`: one auto-GC sweep after the launch of
/// JOB_ID (which it never removes), in a process of its own at the lowest
/// priority, started by that job's supervisor (see the module header).
/// Prints nothing and never fails: a clean-up is best effort.
///
/// The guard comes locked at `CLAIM_FD`. It is taken as such only if it
/// is this root's guard file, open for reading and writing, and its lock
/// is ours to have (a flock on our own open file is taken again at
/// once): a `_gc` started by hand, with whatever its shell left at fd 3
/// (a read-only one could not record where the sweep stopped), claims
/// the guard as a launch would, and never writes into a file it was
/// merely given.
pub fn exec_auto(m: &Matches) -> Result<crate::output::Output> {
    let done = Ok(crate::output::Output::Done);
    let given = sys::adopt_fd(CLAIM_FD).ok().map(fs::File::from);
    sys::close_from(CLAIM_FD + 1);
    let store = Store::resolve(m.pos(0));
    let launched = m.pos(1).unwrap_or_default();
    let Some(g) = m.get("gc").and_then(AutoGc::from_arg) else {
        return done;
    };
    // The job named exactly (its supervisor names it so): a prefix or
    // another case, given by hand, would leave that job unprotected.
    if !store::valid_id(launched) || !store.root.join(launched).join(crate::job::META).is_file() {
        return done;
    }
    let _ = std::env::set_current_dir("/");
    sys::lowest_priority_for_this_thread();
    let guard = open_guard(&store.root).ok();
    // `--wait-turn` (`Auto::Queue`): the guard comes with its seat, and
    // its lock is another sweep's until that one is done: waited for.
    let wait_turn = m.has("wait-turn");
    let ours = match (&given, &guard) {
        (Some(f), Some(g)) => {
            sys::file_identity(f).ok().map(|i| (i.dev, i.ino))
                == sys::file_identity(g).ok().map(|i| (i.dev, i.ino))
                && sys::read_write(f)
                && sole_name(f)
                && if wait_turn {
                    sys::lock_exclusive(f).is_ok()
                } else {
                    sys::try_lock_exclusive(f).unwrap_or(false)
                }
        }
        _ => false,
    };
    let claim = match given.filter(|_| ours) {
        Some(f) => {
            // Our turn: the next launch that wants one may wait now.
            let _ = sys::ofd_unlock(&f, SEAT);
            Some(AutoClaim::held(f, &g))
        }
        None => claim_auto(&store, &g),
    };
    if let Some(c) = claim {
        // Jobs created from now on are launches that find this sweep
        // waiting (`Policy::later_since_ms`).
        let since = time::now_unix_ms();
        wait_for_quiet(&store.root, QUIET, QUIET_AT_MOST);
        if !holds_the_guard_of(&store.root, c.guard()) {
            warn!(
                "auto-gc skipped: {} is no longer the directory it was launched into",
                store.root.display()
            );
            return done;
        }
        c.run(&store, &g, launched, Some(since));
    }
    done
}

/// The root's guard file, made if missing. The root is opened as the
/// user named it, a symlink to a directory included (as every command
/// takes it); the guard's own name is never followed. Opened with the
/// root's last component not followed, a symlinked root had no guard,
/// and no launch into it ever collected anything (audit 32).
fn open_guard(root: &Path) -> std::io::Result<std::fs::File> {
    sys::Dir::open_root(root)?.open_file(GC_LOCK, sys::How::Open)
}

/// Is `guard` (the file this sweep holds locked) still `root`'s guard
/// file? Not once the root has been renamed, removed, or replaced by a
/// symlink or another directory while the sweep waited: it must never
/// sweep a directory it was not launched into. (The guard's own name is
/// not followed: a symlink planted there is not the guard.)
fn holds_the_guard_of(root: &Path, guard: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let named = fs::symlink_metadata(root.join(GC_LOCK)).ok();
    let held = guard.metadata().ok();
    matches!((named, held), (Some(n), Some(h)) if n.file_type().is_file() && (n.dev(), n.ino()) == (h.dev(), h.ino()))
}

/// The most launches one auto-GC sweep takes the budgets of.
const MOST_STOOD_FOR: u64 = 64;

/// How long the root must go unchanged before an auto-GC sweeps, and
/// the longest it waits for that.
const QUIET: Duration = Duration::from_millis(20);
const QUIET_AT_MOST: Duration = Duration::from_secs(2);

/// Wait (holding the guard) until no job has been added to the root for
/// `quiet`, or `at_most` has passed. In a burst of launches the first
/// one's sweep waits, every later launch finds the guard held and starts
/// none (one flock, where it exec'd a `_gc` of its own to delete one
/// job), and the one sweep then takes what the whole burst put past the
/// rules, once the launches have stopped: 200 launches into a root at
/// its `max_jobs` ran 1.09-1.16x slower than with auto-GC off, a
/// collector started and a job removed per launch. A launch changes the
/// root directory (its job's directory, the next spare): its change
/// time and link count. `at_most` bounds the wait under launches that
/// never stop (one sweep per that long). The sweep then stands for the
/// launches made meanwhile (`Policy::later_since_ms`).
fn wait_for_quiet(root: &Path, quiet: Duration, at_most: Duration) {
    use std::os::unix::fs::MetadataExt;
    let look = || {
        fs::metadata(root)
            .ok()
            .map(|m| (m.ctime(), m.ctime_nsec(), m.nlink()))
    };
    let until = Instant::now() + at_most;
    let mut before = look();
    while Instant::now() < until {
        std::thread::sleep(quiet.min(until.saturating_duration_since(Instant::now())));
        let now = look();
        if now == before {
            return;
        }
        before = now;
    }
}

/// The guard file's line that starts "resume after NAME": where the last
/// sweep ran out of its scan budget (see `Budget::resume_after`).
const RESUME: &str = "resume after ";

/// The rest of the guard file's line that starts with `prefix`. Read
/// from the file we hold locked (its only writer is whoever holds the
/// lock); it holds a few lines. `RULES` is read too by a launch that
/// finds it held by another: a read torn by that writer finds no line,
/// or one that does not parse, and is taken as settings not known.
fn guard_line(lock: &std::fs::File, prefix: &str) -> Option<String> {
    line_in(&guard_text(lock), prefix)
}

/// The rest of `text`'s line that starts with `prefix`, trimmed.
fn line_in(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.trim().to_string())
}

/// The guard file's text: its first 512 bytes (it holds a few short
/// lines), empty where they are not UTF-8.
fn guard_text(lock: &std::fs::File) -> String {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 512];
    let n = lock.read_at(&mut buf, 0).unwrap_or(0);
    String::from_utf8(buf[..n].to_vec()).unwrap_or_default()
}

/// The guard file's line that starts "rules SPEC": the settings of the
/// sweep that holds it (`AutoGc::to_arg`), while it does.
const RULES: &str = "rules ";

/// The guard file's key for a line of `kind` (`idle`, `aged`) that holds
/// only for these settings.
fn guard_key(kind: &str, g: &AutoGc) -> String {
    format!("{kind} {} {}", g.older_than_secs, g.scan_limit)
}

/// Does the guard file's line for `key` (`guard_key`: an idle age-only
/// sweep, or a clear reading of the age rule, with these settings) say
/// less than a second before `now_ms`?
fn recently_idle(lock: &std::fs::File, key: &str, now_ms: u64) -> bool {
    guard_line(lock, key)
        .and_then(|rest| rest.parse::<u64>().ok())
        .is_some_and(|at| at <= now_ms && now_ms - at < 1000)
}

/// What to collect, and how much work auto-GC may do.
#[derive(Clone, Debug)]
pub struct Policy {
    /// A job never removed (auto-GC: the one just launched); it still
    /// counts among the jobs and bytes the rules weigh.
    pub protect: Option<String>,
    /// Auto-GC: the jobs created at or after this time (their ids say
    /// when, to the millisecond) were launched while the sweep waited,
    /// and started no sweep of their own (the guard was held). It stands
    /// for them too: their budgets with its own (up to `MOST_STOOD_FOR`
    /// launches'), and the newest of them, the last launch's, is the job
    /// it never removes, in place of `protect` (whose launch a later one
    /// followed, as its own sweep would have). None: `protect` alone.
    pub later_since_ms: Option<u64>,
    /// The age rule, to the millisecond (`gc --older-than 500ms`).
    pub older_than_ms: u64,
    pub max_jobs: Option<u64>,
    pub max_bytes: Option<u64>,
    pub dry_run: bool,
    /// Auto mode; None (manual `gc`) scans and deletes without limit.
    pub budget: Option<Budget>,
}

#[derive(Clone, Debug)]
pub struct Budget {
    pub scan_limit: u64,
    pub delete_limit: u64,
    /// Read at least this many before stopping at a recent id
    /// (`SCAN_BEFORE_STOP`).
    pub read_first: u64,
    /// An age-only sweep begins after this name, where the last one ran
    /// out of `scan_limit`, and goes round to the oldest: old jobs that
    /// are never collected (created ones) filled the same first
    /// `scan_limit` names every time, and nothing beyond them was ever
    /// reached. Noted in the guard file (`AutoClaim`).
    pub resume_after: Option<String>,
}

/// One job directory's fate.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub job_id: String,
    pub state: &'static str,
    pub action: &'static str,
    pub reason: String,
    pub bytes: u64,
}

/// The outcome of one sweep. `skipped == out_of_scope + failed`. Its
/// fields are the tail of the `gc` response, in this order.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub deleted: u64,
    pub skipped: u64,
    pub out_of_scope: u64,
    pub failed: u64,
    pub freed_bytes: u64,
    pub scanned_dirs: u64,
    pub candidate_count: u64,
    pub jobs: Vec<Entry>,
    /// The last name read when the scan ran out of its `scan_limit`
    /// (where the next age-only sweep begins), if it did.
    #[serde(skip)]
    pub stopped_after: Option<String>,
    /// The scan read every name (none left unread for its budget), and
    /// none of them was past the age line.
    #[serde(skip)]
    pub age_clear: bool,
    /// The remains of removals (`.gone-…`) in the root when it was
    /// listed (`sweep_gone_of`).
    #[serde(skip)]
    pub gone: Vec<String>,
}

impl Report {
    /// Remove one selected job (or, in a dry run, say it would be), and
    /// record the outcome: deleted; skipped and counted failed when the
    /// removal failed; out of scope when the job may not be removed now
    /// (`hold_for_removal`'s reason: running, in_use, pid_alive) or at
    /// all (`unsafe_path`: a directory where its meta.json or state.json
    /// should be, which no removal of ours touches).
    fn remove(
        &mut self,
        job: &Job,
        (name, state): (&str, &'static str),
        reason: String,
        bytes: u64,
        dry_run: bool,
        st: Option<&State>,
    ) {
        let mut entry = Entry {
            job_id: name.to_string(),
            state,
            action: "would_delete",
            reason,
            bytes,
        };
        if dry_run {
            // What the real run would refuse is refused here too.
            if let Some(why) = dry_run_blocker(job, st) {
                return self.out_of_scope(name, state, why, bytes);
            }
            if let Some(r) = record_not_a_file(&job.dir) {
                return self.out_of_scope(name, state, &RemoveError::Unsafe(r).reason(), bytes);
            }
            if mount_inside(&job.dir).is_some() {
                return self.out_of_scope(name, state, MOUNT_POINT, bytes);
            }
            self.freed_bytes += bytes;
            self.jobs.push(entry);
            return;
        }
        match hold_for_removal(job, st, std::time::Duration::ZERO).map(|h| (remove_job_dir(job), h))
        {
            Ok((Ok(()), _)) => {
                entry.action = "deleted";
                self.deleted += 1;
                self.freed_bytes += bytes;
            }
            // Removed by a concurrent gc or delete: not this one's
            // deletion, but a candidate all the same, so listed (every
            // candidate has an entry and a counter).
            Ok((Err(RemoveError::Gone), _)) | Err(GONE) => {
                return self.out_of_scope(name, state, GONE, bytes)
            }
            // Refused before anything was removed: not a failure.
            Ok((Err(why @ (RemoveError::Unsafe(_) | RemoveError::Mount(_))), _)) => {
                return self.out_of_scope(name, state, &why.reason(), bytes)
            }
            Ok((Err(why), _)) => {
                entry.action = "skipped";
                entry.reason = why.reason();
                self.skipped += 1;
                self.failed += 1;
            }
            Err(why) => return self.out_of_scope(name, state, why, bytes),
        }
        self.jobs.push(entry);
    }

    /// A job that was never a deletion target.
    fn out_of_scope(&mut self, job_id: &str, state: &'static str, reason: &str, bytes: u64) {
        self.skipped += 1;
        self.out_of_scope += 1;
        self.jobs.push(Entry {
            job_id: job_id.to_string(),
            state,
            action: "skipped",
            reason: reason.to_string(),
            bytes,
        });
    }
}

const OLDER_THAN: u8 = 1;
const MAX_JOBS: u8 = 2;
const MAX_BYTES: u8 = 4;

fn reason(rules: u8) -> String {
    [
        (OLDER_THAN, "older_than"),
        (MAX_JOBS, "max_jobs"),
        (MAX_BYTES, "max_bytes"),
    ]
    .iter()
    .filter(|(bit, _)| rules & bit != 0)
    .map(|(_, name)| *name)
    .collect::<Vec<_>>()
    .join("+")
}

/// A terminal job found by the scan.
struct Finished<'a> {
    name: &'a str,
    state: &'static str,
    /// Unix seconds of its gc time.
    at: i64,
    /// Its `finished_ns`, where recorded: which of two ends in the same
    /// second came first (a job restarted just now, say, is not the
    /// oldest of them for its older id).
    ns: u64,
    bytes: Option<u64>,
    rules: u8,
    /// Why it cannot be removed now (in_use, pid_alive, mount_point),
    /// where the `max_bytes` walk passed over it for that.
    held: Option<&'static str>,
}

impl Finished<'_> {
    /// When it ended, in Unix nanoseconds: `finished_ns` where it is
    /// recorded (and agrees with the second), else the last instant of
    /// its second, so that no rule takes a job younger than it says.
    fn end_ns(&self) -> i128 {
        let second = i128::from(self.at) * 1_000_000_000;
        let ns = i128::from(self.ns);
        if (second..second + 1_000_000_000).contains(&ns) {
            ns
        } else {
            second + 999_999_999
        }
    }
}

/// When a terminal job finished, for retention: `finished_at`, else
/// `updated_at`; None when neither parses.
pub fn gc_time(st: &State) -> Option<i64> {
    st.finished_at
        .as_deref()
        .and_then(time::parse_ts)
        .or_else(|| time::parse_ts(&st.updated_at))
}

/// How many of the oldest job directories an auto-GC reads before its
/// scan may stop at the first id created after the age line.
const SCAN_BEFORE_STOP: u64 = 32;

/// Apply `p` to the root. Errors only when the root cannot be listed.
pub fn sweep(store: &Store, p: &Policy) -> Result<Report> {
    let (names, foreign, gone) = names_and_gone(store)?;
    // Oldest first: the last of them is the newest.
    let later: Vec<&String> = match p.later_since_ms {
        Some(since) => names
            .iter()
            .filter(|n| p.protect.as_deref() != Some(n.as_str()))
            .filter(|n| ulid::Ulid::from_string(n).is_ok_and(|u| u.timestamp_ms() >= since))
            .collect(),
        None => Vec::new(),
    };
    let keep = later
        .last()
        .map(|n| n.to_string())
        .or_else(|| p.protect.clone());
    let times = 1 + (later.len() as u64).min(MOST_STOOD_FOR - 1);
    let p = &Policy {
        budget: p.budget.clone().map(|b| Budget {
            scan_limit: b.scan_limit.saturating_mul(times),
            delete_limit: b.delete_limit.saturating_mul(times),
            ..b
        }),
        ..p.clone()
    };
    // Compared to the nanosecond where the end is recorded so: a job
    // 1.8 s old read `too_recent` for `--older-than 1s` when both times
    // were cut to the second.
    let cutoff_ns = time::now_unix_ns() - i128::from(p.older_than_ms) * 1_000_000;
    let cutoff_ms = cutoff_ns.div_euclid(1_000_000);
    let mut r = Report {
        gone,
        ..Report::default()
    };
    let mut done: Vec<Finished> = Vec::new();
    let mut incomplete: Vec<&str> = Vec::new();
    let mut unscanned = 0u64;
    // Names beyond `max_jobs`: as many finished jobs as the rule can take.
    // An age-only budgeted sweep goes on from where the last one stopped
    // (`Budget::resume_after`): the names after it, then round to the
    // oldest. In the first part, a name past the age line ends that part
    // only (every later one is newer still); the older ones follow.
    let age_only = p.max_jobs.is_none() && p.max_bytes.is_none();
    // The name it stopped after may be gone since (that sweep, or
    // another, removed it): the next one in the order is where to go on.
    // Going back to the oldest instead, a sweep that had deleted up to
    // its stop was followed by one that spent its whole budget again on
    // the old jobs it may not remove (created ones), every other time.
    let start = match p.budget.as_ref().and_then(|b| b.resume_after.as_deref()) {
        Some(after) if age_only => {
            let next = names.partition_point(|n| {
                store::Names::cmp_order(n, after) != std::cmp::Ordering::Greater
            });
            if next < names.len() {
                next
            } else {
                0
            }
        }
        _ => 0,
    };
    // The name at place `k` of that order.
    let nth = |k: usize| &names[(start + k) % names.len()];
    let mut round = start > 0;
    // Names were left unread for the scan budget.
    let mut cut_short = false;

    let mut j = 0;
    while j < names.len() {
        let (i, name) = (j, nth(j));
        j += 1;
        if let Some(b) = &p.budget {
            if r.scanned_dirs >= b.scan_limit {
                unscanned = (names.len() - i) as u64;
                cut_short = true;
                // None with a budget of 0 (nothing read: the next
                // begins where this one did).
                r.stopped_after = i.checked_sub(1).map(|k| nth(k).clone());
                break;
            }
            // Names are in creation order: every later ULID is newer too,
            // so none can be past the age line once this one is not: an
            // age-only scan stops there. The first `read_first`
            // (`SCAN_BEFORE_STOP`) are read whatever their ids say: a
            // state whose finished_at was set back by hand (tests age
            // jobs so) is still found in a root of a few jobs.
            // `max_jobs` and `max_bytes` read on: which jobs they keep
            // depends on every job's state and end, in no order the ids
            // give (a long run has an old id and a late end; an active
            // job counts for neither). Stopping once the oldest ids held
            // enough finished jobs, a sweep removed jobs that had ended
            // after ones it kept, and counted created and running ones
            // among the jobs kept.
            let newer = store::id_time_ms(name).is_some_and(|ms| i128::from(ms) >= cutoff_ms);
            if age_only && r.scanned_dirs >= b.read_first && newer {
                if round {
                    // The rest of the first part is newer still: on to
                    // the oldest names.
                    round = false;
                    j = names.len() - start;
                    continue;
                }
                unscanned = (names.len() - i) as u64;
                break;
            }
        }
        r.scanned_dirs += 1;
        // A job whose meta.json is a symlink or not a file reads as
        // `unsafe_path` to `status` and `delete`, whatever its state
        // says: not one to judge by that state, nor to remove.
        if store::damaged(&store.root.join(name)).is_some() {
            r.out_of_scope(name, "unknown", "unsafe_path", 0);
            continue;
        }
        let st = match observe::current_state(&store.job(name)) {
            Ok(st) => st,
            Err(_) if abandoned_incomplete(name, &store.root.join(name)) => {
                incomplete.push(name);
                continue;
            }
            Err(e) => {
                // Out of descriptors: this process's failure, not a
                // job that is not one.
                if e.out_of_descriptors() {
                    return Err(e);
                }
                debug!("gc: {name}: {e}");
                if !being_removed(&store.root.join(name)) {
                    r.out_of_scope(name, "unknown", unreadable_reason(&e), 0);
                }
                continue;
            }
        };
        let status = st.status();
        // Active jobs are never touched, `created` ones included (the
        // README: "Active jobs (running / created) are never touched").
        if !status.is_terminal() {
            r.out_of_scope(name, status.as_str(), "active_job", 0);
            continue;
        }
        let Some(at) = gc_time(&st) else {
            r.out_of_scope(name, status.as_str(), "no_timestamp", 0);
            continue;
        };
        done.push(Finished {
            name,
            state: status.as_str(),
            at,
            ns: st.finished_ns.unwrap_or(0),
            bytes: None,
            rules: 0,
            held: None,
        });
    }

    // A directory whose name is not UTF-8, or no id (`Store::scan`), was
    // scanned but is no job to judge: no id can name it, so nothing may
    // read or remove it. It is
    // counted, not listed (it has no name to print), and not charged to
    // an auto-GC's scan budget: it cost no read.
    r.scanned_dirs += foreign;
    r.skipped += foreign;
    r.out_of_scope += foreign;

    // Oldest first; every rule selects a prefix of this order.
    done.sort_by(|a, b| {
        (a.at, a.ns)
            .cmp(&(b.at, b.ns))
            .then_with(|| a.name.cmp(b.name))
    });
    for f in done.iter_mut().filter(|f| f.end_ns() < cutoff_ns) {
        f.rules |= OLDER_THAN;
    }
    r.age_clear =
        !cut_short && incomplete.is_empty() && done.iter().all(|f| f.rules & OLDER_THAN == 0);
    if let Some(keep) = p.max_jobs {
        let n = done.len() as u64;
        for (i, f) in done.iter_mut().enumerate() {
            let newer = unscanned + (n - 1 - i as u64);
            if newer >= keep {
                f.rules |= MAX_JOBS;
            }
        }
    }
    if let Some(limit) = p.max_bytes {
        let mut total = 0u64;
        for f in done.iter_mut() {
            let b = dir_bytes(&store.root.join(f.name));
            f.bytes = Some(b);
            total = total.saturating_add(b);
        }
        for f in done.iter_mut() {
            if total <= limit {
                break;
            }
            // One that cannot be removed now (a reader holds it, a
            // process of it lives, a mount inside) is passed over, its
            // bytes still counted (they stay on disk): the walk goes on
            // to the next, so that what can go brings the total down as
            // far as the rule asks. It stopped short at such a job, and
            // every later gc the same (audit 30).
            let job = store.job(f.name);
            let st = observe::current_state(&job).ok();
            let held = dry_run_blocker(&job, st.as_ref())
                .or_else(|| mount_inside(&job.dir).map(|_| MOUNT_POINT));
            if held.is_some() {
                f.held = held;
                continue;
            }
            f.rules |= MAX_BYTES;
            total -= f.bytes.unwrap_or(0);
        }
    }

    for f in done.iter_mut() {
        if f.rules != 0 && keep.as_deref() == Some(f.name) {
            f.rules = 0;
            r.out_of_scope(f.name, f.state, "launched_job", 0);
        } else if let (0, Some(why)) = (f.rules, f.held) {
            r.out_of_scope(f.name, f.state, why, f.bytes.unwrap_or(0));
        } else if f.rules == 0 {
            r.out_of_scope(f.name, f.state, "too_recent", 0);
        }
    }
    for name in incomplete {
        // Half-written: no state to speak of, removed whatever the rules.
        r.candidate_count += 1;
        let job = store.job(name);
        let bytes = dir_bytes(&job.dir);
        r.remove(
            &job,
            (name, "unknown"),
            "incomplete".to_string(),
            bytes,
            p.dry_run,
            None,
        );
    }
    for f in done.iter().filter(|f| f.rules != 0) {
        r.candidate_count += 1;
        let job = store.job(f.name);
        if let Some(b) = &p.budget {
            if r.deleted >= b.delete_limit {
                r.out_of_scope(
                    f.name,
                    f.state,
                    "delete_budget_exhausted",
                    f.bytes.unwrap_or(0),
                );
                continue;
            }
        }
        let bytes = f.bytes.unwrap_or_else(|| dir_bytes(&job.dir));
        // Re-read now: the job may have been restarted or pinned since
        // the scan. (A dry run reads it too: its processes decide.)
        let st = observe::current_state(&job).ok();
        r.remove(
            &job,
            (f.name, f.state),
            reason(f.rules),
            bytes,
            p.dry_run,
            st.as_ref(),
        );
    }
    // The files of queues nobody is in any more (not reported: they are
    // no jobs).
    if !p.dry_run {
        crate::queue::sweep_idle(store);
    }
    Ok(r)
}

/// Job directory names in creation order, oldest first: directories with
/// a valid id (no dot files such as `.gc.lock`, no symlinks), legacy
/// (non-ULID) names before every ULID, then ULIDs by their timestamp. A
/// missing root has none. With them, how many directories were left out
/// because their names are not UTF-8 (`Names::foreign`).
pub fn names_oldest_first(store: &Store) -> Result<(Vec<String>, u64)> {
    names_and_gone(store).map(|(names, foreign, _)| (names, foreign))
}

/// `names_oldest_first`, and the remains of removals (`.gone-…`) the
/// same listing found: a root of thousands costs a millisecond or more
/// to list (ext4 hashes every name), and a sweep needs both.
fn names_and_gone(store: &Store) -> Result<(Vec<String>, u64, Vec<String>)> {
    let names = store.names()?;
    let foreign = names.foreign();
    let gone = names
        .dots
        .iter()
        .filter(|n| n.starts_with(GONE_PREFIX))
        .cloned()
        .collect();
    Ok((
        names.oldest_first().map(str::to_string).collect(),
        foreign,
        gone,
    ))
}

/// Bytes of every file under `dir`, without following symlinks (a link
/// counts as itself), but for the supervisor's scratch state files
/// (`job::SCRATCH_STATES`). Unreadable parts count as 0.
pub fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    // Another file system mounted inside is not the job's: its bytes are
    // neither counted nor freed. Asked only of subdirectories, which a
    // job directory of ours has none of.
    let mut dev = None;
    let mut linked = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                let home =
                    *dev.get_or_insert_with(|| fs::symlink_metadata(dir).map(|m| m.dev()).ok());
                let here = e.metadata().map(|m| m.dev());
                if matches!((home, here), (Some(a), Ok(b)) if a == b) {
                    stack.push(e.path());
                }
            } else if d == dir
                && crate::job::SCRATCH_STATES
                    .iter()
                    .any(|n| e.file_name() == *n)
            {
                // The supervisor's scratch state, about to go.
                continue;
            } else if let Ok(m) = e.metadata() {
                // DirEntry::metadata is lstat on Unix. A file with two
                // names here (a run an interrupted archive left linked in
                // the job directory and in runs/) counts once: it was
                // counted twice, and --max-bytes took a job that fit.
                if m.nlink() > 1 && !linked.insert((m.dev(), m.ino())) {
                    continue;
                }
                total = total.saturating_add(m.len());
            }
        }
    }
    total
}

/// What keeps a job removable while it is being removed: an exclusive
/// flock on its directory (no reader holds it pinned, see `Job::pin`, and
/// none can pin it: every `start`, `restart`, reader and supervisor pins
/// first) and its job lock (no supervisor or launch holds it).
pub struct Hold {
    _dir: Option<std::fs::File>,
    lock: Option<std::fs::File>,
    /// The job directory, when `lock` is a lock file this removal made
    /// (a created job has none): a removal that does not happen takes it
    /// away again (see `Drop`).
    claimed: Option<std::path::PathBuf>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        // Still holding the lock, unlink the file we linked in: left
        // behind free, it would read as a launch that died (`launch_lost`)
        // to every reader of a job nobody started. A reader that opened
        // it before sees it unlinked and leaves the job alone
        // (`observe::current_state`). After a removal there is nothing
        // left to unlink.
        if let (Some(dir), Some(_)) = (self.claimed.take(), self.lock.as_ref()) {
            if let Ok(d) = sys::Dir::open(&dir) {
                let _ = d.unlink(crate::job::LOCK);
            }
        }
    }
}

/// May `job` be removed now? `st`: the state the caller decided on (read
/// before anything was held). Err: the skip reason.
/// - `in_use`: a launcher, `wait`, `status`, the server, MCP or the job's
///   own supervisor (delivering notifications) is reading it: it is
///   pinned (`pin_holders` tells which);
/// - `running`: its job lock is held — a supervisor runs it, or a launch
///   is starting it — whatever its files say; or, once both are held, the
///   job is no longer in the state `st` the caller decided on: another
///   caller started (or restarted) it meanwhile, and what the caller
///   meant to remove is gone;
/// - `pid_alive`: a process of the job still lives (its process group in
///   its session, or its root process by pid and start time: a reused
///   pid is somebody else's and never counts).
///
/// The directory is taken first: nobody can pin it after that, so nobody
/// can start the job either; a created job's lock is then claimed (it
/// has no lock file), so that a caller that pinned it earlier cannot
/// launch it; last, the state is read again under both, which decides.
///
/// `patience`: how long to wait for readers that are about to let go (an
/// explicit `delete` right after `run`: the supervisor's last steps); gc
/// does not wait.
pub fn hold_for_removal(
    job: &Job,
    st: Option<&State>,
    patience: std::time::Duration,
) -> std::result::Result<Hold, &'static str> {
    let dir = match job.pin_file() {
        // Our own pin (a `delete` of a looked-up job): upgrade it. Got
        // once another remover let go: it may have taken the directory
        // away meanwhile (two deletes of one job), and what is left to
        // say is that, not "running" (the state then read of nothing).
        Some(f) => {
            if !exclusive_soon_unless(f, patience, || started(job)) {
                return Err(if started(job) { "running" } else { busy(job) });
            }
            if !still_linked(f, &job.dir) {
                return Err(GONE);
            }
            None
        }
        // Tried for a moment (`REMOVER_GRACE`), looking between tries
        // whether another remover has it: a remover's look at whether a
        // directory is being removed (`being_removed`), or its read of
        // the state, holds it shared for a moment before it takes it
        // exclusively, which made concurrent gcs call each other's
        // candidates `in_use` (a job the other then removed).
        None => match sys::open_dir_lockable(&job.dir) {
            Ok(f) => {
                let gone = || being_removed(&job.dir) || !still_linked(&f, &job.dir);
                if !exclusive_soon_unless(&f, patience.max(REMOVER_GRACE), gone) {
                    return Err(if gone() { GONE } else { "in_use" });
                }
                // Held, and still the directory at that name: another
                // remover that held it before us has not taken it away.
                if !still_linked(&f, &job.dir) {
                    return Err(GONE);
                }
                Some(f)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(GONE),
            Err(_) => return Err(busy(job)),
        },
    };
    let mut hold = Hold {
        _dir: dir,
        lock: None,
        claimed: None,
    };
    match job.open_lock() {
        // A terminal job's supervisor lets go right after its last write.
        Some(l) if exclusive_soon(&l, patience) => hold.lock = Some(l),
        Some(_) => return Err("running"),
        None if st.is_some_and(|s| s.status() == crate::job::Status::Created) => {
            match job.claim_lock() {
                Ok(l) => {
                    hold.lock = Some(l);
                    hold.claimed = Some(job.dir.clone());
                }
                // The file system makes no file (read-only, or full): no
                // launch can make the lock either, so none can start the
                // job, and the removal goes on to meet the same refusal
                // (an io_error, a `failed` entry), not to call the job
                // started meanwhile and the delete worth retrying.
                Err(Some(crate::error::Error::Io { source, .. }))
                    if crate::error::no_room(&source)
                        || source.raw_os_error() == Some(libc::EROFS) => {}
                Err(_) => return Err("running"),
            }
        }
        None => {}
    }
    // What the caller decided on may be stale: a launch that held the
    // lock, or pinned the job, a moment ago may have run it since.
    // Nobody writes the state while we hold both, so this read is the
    // truth the removal goes by.
    // Read through the lock we hold where there is one: tried again, it
    // would look held by a supervisor, and a lost one's record (unsaved
    // on a read-only root) read as still running.
    let now = match st {
        Some(before) => {
            let reread = match &hold.lock {
                Some(l) => observe::state_under_lock(job, l),
                None => observe::current_state(job),
            };
            match reread {
                Ok(now) if same_run(before, &now) => Some(now),
                _ => return Err("running"),
            }
        }
        None => None,
    };
    if let Some(why) = alive_blocker(now.as_ref()) {
        return Err(why);
    }
    Ok(hold)
}

/// How long gc (or `delete --all`) tries for a directory that someone
/// else holds before it calls the job `in_use`: long enough for another
/// remover's momentary look to pass, short enough for a sweep past jobs
/// that readers hold.
const REMOVER_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Why a job directory could not be taken for removal: another gc or
/// delete holds it (the only exclusive holders; that one removes it, or
/// reports why not), else a reader or the job's supervisor (`in_use`).
fn busy(job: &Job) -> &'static str {
    if being_removed(&job.dir) {
        GONE
    } else {
        "in_use"
    }
}

/// Is job directory `dir` gone, or being removed by another gc or
/// delete (which holds it exclusively, as nothing else does)? Such a
/// job's state may be unreadable half-way, and it is not this caller's
/// to report.
pub fn being_removed(dir: &Path) -> bool {
    match sys::open_dir_lockable(dir) {
        Ok(f) => !sys::try_lock_shared(&f).unwrap_or(true),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// `hold_for_removal`'s answer for a job directory that another caller
/// (a concurrent gc or delete) removed after this one found it: it is
/// not this caller's deletion, and not a job any more.
pub const GONE: &str = "already_deleted";

/// Is the directory open as `f` the one at `dir` (same device and inode)?
/// False once it has been removed, or replaced.
fn still_linked(f: &std::fs::File, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::symlink_metadata(dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What would keep a dry run's job from being removed by the real run:
/// live processes (`alive_blocker`), or another process holding it
/// pinned (`in_use`: a reader, or its own supervisor still delivering
/// notifications), which the real run would find when it takes the
/// directory. Read from the kernel's lock table: a dry run takes no lock.
pub fn dry_run_blocker(job: &Job, st: Option<&State>) -> Option<&'static str> {
    // A queued job's own supervisor pins it while it waits; `delete`
    // kills it first (and then waits its pin out), so that pin refuses
    // nothing, as in the real run.
    let own = st
        .filter(|s| s.status() == crate::job::Status::Queued)
        .and_then(|s| s.supervisor_pid);
    if own.is_some() {
        return pinned_by_others(&job.dir, own).then_some("in_use");
    }
    alive_blocker(st).or_else(|| pinned_by_others(&job.dir, None).then_some("in_use"))
}

/// Is `now` the same run, in the same state, as `before`?
fn same_run(before: &State, now: &State) -> bool {
    before.status() == now.status()
        && before.attempt() == now.attempt()
        && before.job.started_at == now.job.started_at
}

/// Who else (not this process) holds job `dir` pinned, by pid (0: a
/// holder this process cannot see, in another pid namespace), from the
/// kernel's table of locks; None when it cannot be read. For telling a reader from the job's own
/// supervisor, and for refusing before anything is changed: a pin says
/// who, a failed lock attempt only that somebody does.
pub fn pin_holders(dir: &Path) -> Option<Vec<u32>> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(dir).ok()?;
    // st_dev as the kernel prints it: MAJOR:MINOR in hex (glibc's
    // encoding of the two numbers into st_dev).
    let dev = m.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let want = format!("{major:02x}:{minor:02x}:{}", m.ino());
    // Its pids are numbered in the namespace /proc shows: unknown when
    // that is not ours.
    if !sys::proc_is_ours() {
        return None;
    }
    let table = fs::read_to_string("/proc/locks").ok()?;
    let me = std::process::id();
    let mut out = Vec::new();
    for line in table.lines() {
        // `N: FLOCK ADVISORY READ PID MAJ:MIN:INO 0 EOF`; a waiter's
        // line has `->` after the number and holds nothing yet.
        let mut f = line.split_whitespace().skip(1);
        if f.next() != Some("FLOCK") {
            continue;
        }
        let (Some(pid), Some(file)) = (f.nth(2), f.next()) else {
            continue;
        };
        let pid = pid.parse().unwrap_or(0);
        if file == want && pid != me {
            out.push(pid);
        }
    }
    Some(out)
}

/// Does somebody besides this process and `supervisor` (the job's own
/// supervisor) hold job `dir` pinned? False when that cannot be told.
pub fn pinned_by_others(dir: &Path, supervisor: Option<u32>) -> bool {
    pin_holders(dir).is_some_and(|h| h.iter().any(|&p| Some(p) != supervisor))
}

/// `pid_alive` when a process of the job still lives (its process group
/// in its session, or its root process by pid and start time). The check
/// `hold_for_removal` makes, and the one a dry run makes to predict it
/// (a dry run takes none of the locks: a running job is out of scope by
/// its state already).
pub fn alive_blocker(st: Option<&State>) -> Option<&'static str> {
    st.filter(|st| !st.live_processes().is_empty() || st.root_alive() || st.may_live_unseen())
        .map(|_| "pid_alive")
}

/// An exclusive flock on `f` within `patience`. Polled (a blocking flock
/// cannot be given up): this runs only for a removal that found readers.
fn exclusive_soon(f: &std::fs::File, patience: std::time::Duration) -> bool {
    exclusive_soon_unless(f, patience, || false)
}

/// `exclusive_soon`, giving up at once when `hopeless` says waiting on
/// cannot end in the lock (asked between tries).
fn exclusive_soon_unless(
    f: &std::fs::File,
    patience: std::time::Duration,
    hopeless: impl Fn() -> bool,
) -> bool {
    let until = std::time::Instant::now() + patience;
    loop {
        match sys::try_lock_exclusive(f) {
            Ok(true) => return true,
            Ok(false) if std::time::Instant::now() < until && !hopeless() => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => return false,
        }
    }
}

/// Has `job` begun a run (a `start` or `restart` beside a removal that
/// waits for its pin): its supervisor, which pins it, stays for the whole
/// run, so the removal waits in vain. A launch is one under way (the lock
/// held while the record still says `created`) or one that runs; an
/// ended job's supervisor, letting go, is waited for (and a queued one's,
/// whose pin a reader's may hide: the refusal then says who holds it).
fn started(job: &Job) -> bool {
    use crate::job::Status;
    match job.read_state().map(|s| s.status()) {
        Ok(Status::Running) => true,
        Ok(Status::Created) => job.is_launching(),
        _ => false,
    }
}

/// Why a job directory was not removed (`remove_job_dir`).
#[derive(Debug)]
pub enum RemoveError {
    /// meta.json or state.json (named) is a directory, not a file:
    /// refused before anything was removed, since a removal would stop
    /// there half-way (the job is `unsafe_path` to every reader too).
    Unsafe(&'static str),
    /// The operating system refused a step (a read-only root, say).
    Os(io::Error),
    /// The directory was not there to remove: another caller removed it.
    Gone,
    /// A file system is mounted at this path inside the job directory
    /// (or a directory there is on another device): refused, and nothing
    /// under it removed. Found before anything was removed, unless the
    /// mount appeared meanwhile.
    Mount(std::path::PathBuf),
}

impl RemoveError {
    /// The `reason` a `gc` / `delete --all` entry reports.
    pub fn reason(&self) -> String {
        match self {
            RemoveError::Unsafe(_) => "unsafe_path".to_string(),
            RemoveError::Os(e) => format!("delete_failed: {e}"),
            RemoveError::Gone => GONE.to_string(),
            RemoveError::Mount(_) => MOUNT_POINT.to_string(),
        }
    }

    /// The error an explicit `delete JOB` answers with: `unsafe_path`
    /// for a refusal, `io_error` for what the system did (never
    /// `internal_error`: nothing here is a bug of ours).
    pub fn into_error(self, job: &Job) -> crate::error::Error {
        use crate::error::Error;
        let dir = job.dir.display();
        let e = match self {
            RemoveError::Unsafe(name) => Error::UnsafePath(format!(
                "cannot delete job {}: {dir}/{name} is a directory, not a file; nothing was removed",
                job.id
            )),
            RemoveError::Os(e) => Error::io(format!("delete job directory {dir}"), e),
            RemoveError::Gone => Error::JobNotFound(format!(
                "job {} was deleted by another caller meanwhile",
                job.id
            )),
            // Not retryable (an error of kind Other): it stays so until
            // somebody unmounts it.
            RemoveError::Mount(at) => Error::io(
                format!("cannot delete job {}", job.id),
                io::Error::other(if at == job.dir {
                    format!(
                        "{} is a mount point; nothing under it was removed (unmount it first)",
                        at.display()
                    )
                } else {
                    format!(
                        "{} is a mount point inside the job directory; nothing under it was removed (unmount it first)",
                        at.display()
                    )
                }),
            ),
        };
        e.in_job(&job.id)
    }
}

/// The reason a job with a file system mounted inside its directory is
/// skipped with (`RemoveError::Mount`).
pub const MOUNT_POINT: &str = "mount_point";

/// A mount point at job directory `dir` or inside it, from the mount
/// table (`/proc/self/mountinfo`): a bind mount of the same file system
/// keeps its device number, so no stat tells it from a plain directory.
/// `dir` itself counts: a `runs/<n>` or `.gone-*` that is a mount point
/// was emptied as its contents were, and a job directory that is one
/// was answered "Resource busy" (retryable) by its rename.
/// Where the table cannot be read, a walk of `dir` for a directory on
/// another device stands in. One read of a small file per removal; the
/// directory's own path is resolved only when a mount point names its
/// last component (its job id), which no ordinary mount does.
pub fn mount_inside(dir: &Path) -> Option<std::path::PathBuf> {
    let Ok(table) = fs::read_to_string("/proc/self/mountinfo") else {
        return foreign_device_inside(dir);
    };
    let id = dir.file_name()?.to_str()?;
    let mut real: Option<Option<std::path::PathBuf>> = None;
    for line in table.lines() {
        // Field 5 is the mount point, with space, tab, newline and
        // backslash written as \ooo.
        let Some(at) = line.split(' ').nth(4) else {
            continue;
        };
        if !at.split('/').any(|c| c == id) {
            continue;
        }
        let at = std::path::PathBuf::from(unescape_mountinfo(at));
        let Some(real) = real.get_or_insert_with(|| fs::canonicalize(dir).ok()) else {
            // Not resolvable: it is gone, or not ours to judge; the
            // removal's own device check still holds.
            return None;
        };
        if at.starts_with(&*real) {
            return Some(at);
        }
    }
    None
}

/// `s` with mountinfo's `\ooo` octal escapes decoded.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `dir`, if it is on another device than its parent, or the first
/// directory under it on another device than `dir` (by lstat: a symlink
/// is never followed).
fn foreign_device_inside(dir: &Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::symlink_metadata(dir).ok()?.dev();
    let parent = dir.parent().and_then(|p| fs::symlink_metadata(p).ok());
    if parent.is_some_and(|p| p.dev() != dev) {
        return Some(dir.to_path_buf());
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match e.metadata() {
                Ok(m) if m.dev() != dev => return Some(e.path()),
                Ok(_) => stack.push(e.path()),
                Err(_) => {}
            }
        }
    }
    None
}

/// `Dir::remove_tree` of `name` in `dir` (whose path is `path`, for a
/// report), its errors as a removal's.
fn remove_tree(
    dir: &sys::Dir,
    path: &Path,
    name: &str,
    dev: u64,
) -> std::result::Result<(), RemoveError> {
    dir.remove_tree(name, dev).map_err(|e| match e {
        sys::TreeError::Mount(rel) => RemoveError::Mount(path.join(rel)),
        sys::TreeError::Os(e) => RemoveError::Os(e),
    })
}

/// The first of a job's meta.json and state.json that is a directory
/// (`remove_job_dir` refuses such a job): what a dry run checks to
/// predict it, by lstat.
fn record_not_a_file(dir: &Path) -> Option<&'static str> {
    [crate::job::META, crate::job::STATE]
        .into_iter()
        .find(|r| fs::symlink_metadata(dir.join(r)).is_ok_and(|m| m.is_dir()))
}

/// Remove a job directory: set aside, then removed. The caller holds it
/// (`hold_for_removal`).
pub fn remove_job_dir(job: &Job) -> std::result::Result<(), RemoveError> {
    // Nothing here follows a symlink: a link is removed as itself.
    let failed = RemoveError::Os;
    // A directory, not a link to one (refused); gone: another remover's.
    if let Err(e) = sys::Dir::open(&job.dir) {
        return Err(match e.kind() {
            io::ErrorKind::NotFound => RemoveError::Gone,
            _ => failed(e),
        });
    }
    let mut names: Vec<(String, sys::EntryKind)> = Vec::with_capacity(16);
    sys::for_each_entry(&job.dir, |n, k| names.push((n.to_string(), k))).map_err(failed)?;
    // A directory in place of meta.json or state.json: the job is
    // `unsafe_path` to every reader, and refused whole, before anything.
    for (name, kind) in &names {
        let record = [crate::job::META, crate::job::STATE]
            .into_iter()
            .find(|r| r == name);
        if let Some(r) = record {
            let dir = match kind {
                sys::EntryKind::Dir => true,
                sys::EntryKind::Unknown => {
                    fs::symlink_metadata(job.dir.join(r)).is_ok_and(|m| m.is_dir())
                }
                sys::EntryKind::Other => false,
            };
            if dir {
                return Err(RemoveError::Unsafe(r));
            }
        }
    }
    // A file system mounted inside (a bind mount of somebody's files):
    // refused whole, before anything is removed, as the job stays whole.
    if let Some(at) = mount_inside(&job.dir) {
        return Err(RemoveError::Mount(at));
    }
    // Out of every reader's view first, in one rename, to a name in the
    // root that is no id (`GONE_PREFIX`): from here the job is not found,
    // whole or not at all. Removed in place instead, a removal that
    // stopped half-way (a file the system will not remove) left a job
    // that still read `exited`, with its logs gone and its output empty
    // and no error; and a `delete` or a listing racing a removal saw the
    // job half-gone (no lock: "running"; no log: an empty one). What the
    // system refuses now stays under that name, out of view, for a later
    // gc to remove (`sweep_gone`).
    let Some((root, id)) = job.dir.parent().zip(job.dir.file_name()) else {
        return Err(RemoveError::Gone);
    };
    let root_dir = sys::Dir::open_root(root).map_err(failed)?;
    let id = id.to_string_lossy();
    let mut aside = aside_name(&id, None);
    let mut moved = root_dir.rename_noreplace(&id, &aside);
    // The name taken by the remains of another removal: a longer one.
    if moved
        .as_ref()
        .is_err_and(|e| e.kind() == io::ErrorKind::AlreadyExists)
    {
        let seq = GONE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        aside = aside_name(&id, Some(seq));
        moved = root_dir.rename_noreplace(&id, &aside);
    }
    match moved {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(RemoveError::Gone),
        Err(e) => return Err(failed(e)),
    }
    remove_aside(&root_dir, root, &aside)
}

/// The name a job directory `id` is set aside under: `GONE_PREFIX` and
/// the id's last 20 characters (a ULID's random part and more), no
/// longer than the id, so that every path under it that is used by full
/// path fits in PATH_MAX as the job's own did (`store::MAX_ROOT_LEN`);
/// `.gone-<id>.<pid>.<n>` took 14 bytes more, and under the longest root
/// a kept run's files could then be neither removed nor swept. `seq`:
/// the name is taken (another removal's remains), a longer one.
fn aside_name(id: &str, seq: Option<u64>) -> String {
    let tail = id
        .char_indices()
        .rev()
        .nth(19)
        .map_or(id, |(i, _)| &id[i..]);
    match seq {
        None => format!("{GONE_PREFIX}{tail}"),
        Some(n) => format!("{GONE_PREFIX}{tail}.{}.{n}", std::process::id()),
    }
}

/// Names in the root of job directories being removed (`remove_job_dir`):
/// a dot name, never an id, skipped by every scan of jobs.
pub const GONE_PREFIX: &str = ".gone-";
static GONE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Remove a job directory set aside under `GONE_PREFIX` in the root
/// (`root_dir`, at `root`): through descriptors alone, never following
/// a symlink (the job's owner may swap any directory of its tree for one
/// while it goes, even the set-aside one) nor entering a file system on
/// another device than the root's.
fn remove_aside(
    root_dir: &sys::Dir,
    root: &Path,
    aside: &str,
) -> std::result::Result<(), RemoveError> {
    let dev = root_dir.dev().map_err(RemoveError::Os)?;
    remove_tree(root_dir, root, aside, dev)
}

/// Remove what earlier removals set aside and could not remove (the
/// system refused a file then; it may not now). Best effort, by gc.
pub fn sweep_gone(root: &Path) {
    let mut names = Vec::new();
    let _ = sys::for_each_entry(root, |n, _| {
        if n.starts_with(GONE_PREFIX) {
            names.push(n.to_string());
        }
    });
    sweep_gone_of(root, &names, false);
}

/// `sweep_gone` of these names (each `GONE_PREFIX`…) in `root`, and the
/// bytes that went (with `dry_run`, that would go; nothing is removed):
/// `gc` counts them in its `freed_bytes`, where they went unreported
/// (audit 30). Not listed: they are no jobs.
pub fn sweep_gone_of(root: &Path, names: &[String], dry_run: bool) -> u64 {
    if names.is_empty() {
        return 0;
    }
    let Ok(root_dir) = sys::Dir::open_root(root) else {
        return 0;
    };
    let mut freed = 0u64;
    for n in names {
        let path = root.join(n);
        // Held (its remover's flock on the directory, taken before the
        // rename): being removed right now, not remains. Two removals of
        // one tree each met the other's deletions, and the one that set
        // it aside reported a job it had removed as `delete_failed:
        // ENOENT`.
        let Ok(held) = sys::open_dir_lockable(&path) else {
            continue;
        };
        // A file system mounted inside (a bind mount keeps its device
        // number, so only the mount table tells): left whole, as a job
        // with one is.
        if sys::try_lock_exclusive(&held).unwrap_or(false) && mount_inside(&path).is_none() {
            let bytes = dir_bytes(&path);
            if dry_run || remove_aside(&root_dir, root, n).is_ok() {
                freed = freed.saturating_add(bytes);
            }
        }
    }
    freed
}

/// How long a job directory without meta.json (a launch that died while
/// writing it) must have been left alone before gc removes it.
pub const INCOMPLETE_AFTER_SECS: i64 = 60;

/// Why a job whose state could not be read is skipped: `unsafe_path`
/// when it is a symlink or not a file (what `status` answers for it),
/// else `state_unreadable`.
pub fn unreadable_reason(e: &Error) -> &'static str {
    if e.code() == "unsafe_path" {
        "unsafe_path"
    } else {
        "state_unreadable"
    }
}

/// Is `dir` a half-written job directory (no meta.json) untouched for
/// `INCOMPLETE_AFTER_SECS`? Only a directory named as a launch names one
/// (a ULID) can be: anything else in the root (a folder someone put
/// there, a root given by mistake) is not ours to remove, and is skipped
/// as unreadable.
fn abandoned_incomplete(name: &str, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // Named as a job of ours or of 0.2.3's (D3: both are job ids).
    let id = store::is_ulid(name) || store::is_legacy_hex(name);
    if !id || fs::symlink_metadata(dir.join(crate::job::META)).is_ok() {
        return false;
    }
    fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.mtime() + INCOMPLETE_AFTER_SECS < time::now_unix())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> Store {
        let root = std::env::temp_dir().join(format!(
            "ae-gc-{tag}-{}-{}",
            std::process::id(),
            store::new_id().unwrap()
        ));
        fs::create_dir_all(&root).unwrap();
        Store::at(root)
    }

    /// A terminal job created at `created_s`, finished at `finished_s`.
    fn finished(s: &Store, created_s: u64, finished_s: i64, n: u128) -> String {
        let id = ulid::Ulid::from_parts(created_s * 1000, n).to_string();
        let job = s.job(&id);
        fs::create_dir_all(&job.dir).unwrap();
        let mut st = State::created(&id);
        st.job.status = Some(crate::job::Status::Exited);
        st.finished_at = Some(time::format_ts(finished_s));
        job.write_state(&st, false).unwrap();
        id
    }

    /// The ids of a report's entries with `action`, in its order.
    fn with_action<'a>(r: &'a Report, action: &str) -> Vec<&'a str> {
        r.jobs
            .iter()
            .filter(|e| e.action == action)
            .map(|e| e.job_id.as_str())
            .collect()
    }

    fn policy(older: u64, jobs: Option<u64>, budget: Option<(u64, u64)>) -> Policy {
        Policy {
            protect: None,
            later_since_ms: None,
            older_than_ms: older * 1000,
            max_jobs: jobs,
            max_bytes: None,
            dry_run: true,
            budget: budget.map(|(s, d)| Budget {
                scan_limit: s,
                delete_limit: d,
                read_first: 0,
                resume_after: None,
            }),
        }
    }

    /// The state a terminal write replaced, still under a scratch name
    /// for a moment, is not the job's: a job that had just ended weighed
    /// it too, and auto-GC's max_bytes took one job too many.
    #[test]
    fn scratch_states_are_not_counted() {
        let s = scratch("scratch-states");
        let job = s.root.join("01JOB");
        fs::create_dir_all(job.join("runs/1")).unwrap();
        fs::write(job.join("state.json"), vec![b's'; 400]).unwrap();
        for name in crate::job::SCRATCH_STATES {
            fs::write(job.join(name), vec![b'o'; 360]).unwrap();
            // Below the top a name is only a name.
            fs::write(job.join("runs/1").join(name), b"12").unwrap();
        }
        assert_eq!(dir_bytes(&job), 400 + 3 * 2);
        let _ = fs::remove_dir_all(&s.root);
    }

    /// A file with two names in a job (an archive cut short left a log
    /// linked in the job directory and in runs/) counts once.
    #[test]
    fn a_file_with_two_names_counts_once() {
        let s = scratch("linked");
        let job = s.root.join("01JOB");
        fs::create_dir_all(job.join("runs/1")).unwrap();
        fs::write(job.join("stdout.log"), vec![b'a'; 1000]).unwrap();
        fs::write(job.join("meta.json"), b"{}").unwrap();
        assert_eq!(dir_bytes(&job), 1002);
        fs::hard_link(job.join("stdout.log"), job.join("runs/1/stdout.log")).unwrap();
        assert_eq!(dir_bytes(&job), 1002);
        let _ = fs::remove_dir_all(&s.root);
    }

    /// The remains of a removal are swept; a tree being removed right now
    /// (its remover holds the directory's flock) is left to its remover:
    /// two removals of one tree met each other's deletions, and the one
    /// that set the job aside reported it `delete_failed: ENOENT`.
    #[test]
    fn sweeping_leaves_a_removal_in_progress_to_its_remover() {
        let s = scratch("sweep");
        let gone = s.root.join(".gone-AAAAAAAAAAAAAAAAAAAA");
        fs::create_dir_all(gone.join("runs/1")).unwrap();
        fs::write(gone.join("runs/1/stdout.log"), b"x").unwrap();
        let held = sys::open_dir_lockable(&gone).unwrap();
        assert!(sys::try_lock_exclusive(&held).unwrap());
        sweep_gone(&s.root);
        assert!(gone.join("runs/1/stdout.log").exists());
        drop(held);
        sweep_gone(&s.root);
        assert!(!gone.exists());
        // A tree that vanishes under its remover is no failure.
        let root_dir = sys::Dir::open_root(&s.root).unwrap();
        assert!(remove_aside(&root_dir, &s.root, ".gone-AAAAAAAAAAAAAAAAAAAA").is_ok());
        let _ = fs::remove_dir_all(&s.root);
    }

    #[test]
    fn a_job_is_set_aside_under_a_name_no_longer_than_its_id() {
        let id = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(aside_name(id, None), ".gone-NDEKTSV4RRFFQ69G5FAV");
        assert_eq!(aside_name(id, None).len(), id.len());
        let hex = "0123456789abcdef0123456789abcdef";
        assert!(aside_name(hex, None).len() <= hex.len());
        assert_eq!(aside_name("short", None), ".gone-short");
        assert!(aside_name(id, Some(3)).starts_with(".gone-NDEKTSV4RRFFQ69G5FAV."));
    }

    #[test]
    fn a_directory_another_remover_took_is_gone_not_deleted() {
        let s = scratch("gone");
        let id = finished(&s, 1_700_000_000, 1_700_000_001, 1);
        let job = s.job(&id);
        let st = job.read_state().unwrap();
        // Opened and locked by us after the other remover let go of it:
        // no longer the directory at that name.
        let f = sys::open_dir_lockable(&job.dir).unwrap();
        fs::rename(&job.dir, s.root.join("elsewhere")).unwrap();
        assert!(!still_linked(&f, &job.dir));
        assert!(matches!(remove_job_dir(&job), Err(RemoveError::Gone)));
        assert_eq!(
            hold_for_removal(&job, Some(&st), std::time::Duration::ZERO).err(),
            Some(GONE)
        );
        // Not this one's deletion, but its candidate: listed as skipped,
        // already_deleted (out of scope, not a failure).
        let mut body = Report::default();
        body.remove(
            &job,
            (&id, "exited"),
            "older_than".into(),
            5,
            false,
            Some(&st),
        );
        assert_eq!(
            (body.deleted, body.skipped, body.out_of_scope, body.failed),
            (0, 1, 1, 0)
        );
        assert_eq!(body.jobs.len(), 1);
        assert_eq!(body.jobs[0].reason, GONE);
        let _ = fs::remove_dir_all(&s.root);
    }

    #[test]
    fn reasons_join_in_rule_order() {
        assert_eq!(reason(OLDER_THAN), "older_than");
        assert_eq!(reason(MAX_BYTES | OLDER_THAN), "older_than+max_bytes");
        assert_eq!(
            reason(MAX_BYTES | MAX_JOBS | OLDER_THAN),
            "older_than+max_jobs+max_bytes"
        );
        assert_eq!(reason(MAX_BYTES | MAX_JOBS), "max_jobs+max_bytes");
    }

    #[test]
    fn names_come_oldest_first_legacy_before_ulids() {
        let s = scratch("names");
        let newer = ulid::Ulid::from_parts(2_000_000_000_000, 0).to_string();
        let older = ulid::Ulid::from_parts(1_000_000_000_000, u128::MAX >> 48).to_string();
        for d in [newer.as_str(), "ffff0000legacy", older.as_str(), ".hidden"] {
            fs::create_dir_all(s.root.join(d)).unwrap();
        }
        fs::write(s.root.join("01FILE0000000000000000000F"), b"").unwrap();
        // A symlink is never a job: counted as skipped (foreign), as a
        // directory that cannot be a job is.
        std::os::unix::fs::symlink(&s.root, s.root.join("loop")).unwrap();
        assert_eq!(
            names_oldest_first(&s).unwrap(),
            (vec!["ffff0000legacy".to_string(), older, newer], 1)
        );
        let gone = Store::at(s.root.join("missing"));
        assert!(names_oldest_first(&gone).unwrap().0.is_empty());
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn auto_budget_scans_oldest_first_and_stops_at_new_ulids() {
        let s = scratch("budget");
        let now = time::now_unix() as u64;
        let old: Vec<String> = (0..3)
            .map(|i| finished(&s, now - 90 * 86_400 + i, (now - 80 * 86_400) as i64, 1))
            .collect();
        for i in 0..5 {
            finished(&s, now - 3600 + i, (now - 60) as i64, 2);
        }
        // Age only: the five recent ULIDs are never read.
        let r = sweep(&s, &policy(86_400, None, Some((100, 100)))).unwrap();
        assert_eq!((r.scanned_dirs, r.candidate_count), (3, 3));
        // A scan budget spends itself on the oldest.
        let r = sweep(&s, &policy(86_400, None, Some((2, 100)))).unwrap();
        let picked: Vec<&str> = r.jobs.iter().map(|e| e.job_id.as_str()).collect();
        assert_eq!(picked, vec![old[0].as_str(), old[1].as_str()]);
        // Delete budget: the rest is reported, not deleted.
        let mut p = policy(86_400, None, Some((100, 1)));
        p.dry_run = false;
        let r = sweep(&s, &p).unwrap();
        assert_eq!((r.deleted, r.out_of_scope, r.skipped), (1, 2, 2));
        assert_eq!(r.jobs[1].reason, "delete_budget_exhausted");
        assert!(!s.root.join(&old[0]).exists());
        // Manual runs read everything.
        let r = sweep(&s, &policy(86_400, None, None)).unwrap();
        assert_eq!(r.scanned_dirs, 7);
        fs::remove_dir_all(&s.root).unwrap();
    }

    /// `n` created jobs, defined 100 days before `now`: the oldest in the
    /// root, and never collected.
    fn created_long_ago(s: &Store, now: u64, n: u64) {
        for i in 0..n {
            let id = ulid::Ulid::from_parts((now - 100 * 86_400 + i) * 1000, 9).to_string();
            let job = s.job(&id);
            fs::create_dir_all(&job.dir).unwrap();
            job.write_state(&State::created(&id), false).unwrap();
        }
    }

    /// Old jobs that are never collected (created ones) at the head of
    /// the root no longer hold an age-only auto scan there for good: the
    /// next sweep begins where the last ran out of budget, and goes round.
    #[test]
    fn an_age_only_budget_goes_on_past_what_it_cannot_collect() {
        let s = scratch("round");
        let now = time::now_unix() as u64;
        created_long_ago(&s, now, 4);
        let old: Vec<String> = (0..2)
            .map(|i| finished(&s, now - 90 * 86_400 + i, (now - 80 * 86_400) as i64, 1))
            .collect();
        for i in 0..3 {
            finished(&s, now - 3600 + i, (now - 60) as i64, 2);
        }
        let budget = |after: Option<String>| {
            let mut p = policy(86_400, None, Some((3, 100)));
            p.budget.as_mut().unwrap().resume_after = after;
            p
        };
        // The created jobs fill a budget of 3, every time it starts there.
        let r = sweep(&s, &budget(None)).unwrap();
        assert_eq!((r.scanned_dirs, r.candidate_count), (3, 0));
        let r = sweep(&s, &budget(r.stopped_after)).unwrap();
        let picked: Vec<&str> = r
            .jobs
            .iter()
            .filter(|e| e.reason == "older_than")
            .map(|e| e.job_id.as_str())
            .collect();
        assert_eq!(picked, vec![old[0].as_str(), old[1].as_str()]);
        // Past the old ones come recent ids only: round to the oldest.
        let r = sweep(&s, &budget(r.stopped_after)).unwrap();
        assert_eq!((r.scanned_dirs, r.candidate_count), (3, 0));
        assert!(
            r.jobs.iter().all(|e| e.reason == "active_job"),
            "{:?}",
            r.jobs
        );
        // A budget of 0 reads nothing, and notes nothing.
        let mut p = budget(None);
        p.budget.as_mut().unwrap().scan_limit = 0;
        let r = sweep(&s, &p).unwrap();
        assert_eq!((r.scanned_dirs, r.stopped_after), (0, None));
        // Other rules keep the oldest-first order they count by.
        let mut p = budget(Some(old[1].clone()));
        p.max_jobs = Some(1);
        assert_eq!(sweep(&s, &p).unwrap().jobs[0].reason, "active_job");
        fs::remove_dir_all(&s.root).unwrap();
    }

    /// A sweep that removed the job it stopped after (its name is gone
    /// from the root) is followed by one that goes on from the next name,
    /// not from the oldest: started there again, it spent its budget on
    /// the created jobs at the head of the root every other time.
    #[test]
    fn an_age_only_budget_goes_on_past_the_job_it_removed_last() {
        let s = scratch("resume-gone");
        let now = time::now_unix() as u64;
        created_long_ago(&s, now, 4);
        let old: Vec<String> = (0..6)
            .map(|i| finished(&s, now - 90 * 86_400 + i, (now - 80 * 86_400) as i64, 1))
            .collect();
        let budget = |after: Option<String>| {
            let mut p = policy(86_400, None, Some((3, 100)));
            p.dry_run = false;
            p.budget.as_mut().unwrap().resume_after = after;
            p
        };
        let r = sweep(&s, &budget(None)).unwrap();
        assert!(with_action(&r, "deleted").is_empty());
        let r = sweep(&s, &budget(r.stopped_after)).unwrap();
        assert_eq!(with_action(&r, "deleted"), old[..2]);
        assert_eq!(r.stopped_after.as_deref(), Some(old[1].as_str()));
        let r = sweep(&s, &budget(r.stopped_after)).unwrap();
        assert_eq!(with_action(&r, "deleted"), old[2..5]);
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn partial_scan_counts_unscanned_jobs_for_max_jobs() {
        let s = scratch("maxjobs");
        let now = time::now_unix() as u64;
        let ids: Vec<String> = (0..6)
            .map(|i| finished(&s, now - 7200 + i, (now - 3600 + i) as i64, 3))
            .collect();
        // Scan 2 of 6, keep the newest 3: the 2 scanned have 4+ newer.
        let r = sweep(&s, &policy(86_400, Some(3), Some((2, 100)))).unwrap();
        assert_eq!(r.candidate_count, 2);
        assert!(r.jobs.iter().all(|e| e.reason == "max_jobs"));
        // Keep the newest 5: only the oldest is beyond them.
        let r = sweep(&s, &policy(86_400, Some(5), Some((2, 100)))).unwrap();
        assert_eq!(r.candidate_count, 1);
        assert_eq!(r.jobs.last().unwrap().job_id, ids[0]);
        fs::remove_dir_all(&s.root).unwrap();
    }

    /// A sweep that stands for the launches made while it waited (jobs
    /// created since it began) keeps the newest of them, the last
    /// launch's, and not the one it was started for, which a later
    /// launch followed; with none, it keeps its own launch's job alone,
    /// whatever is newer (a `restart` of an old job). Its budget is one
    /// launch's for each of them, with its own.
    #[test]
    fn a_sweep_standing_for_a_burst_keeps_the_last_launch() {
        let s = scratch("newest");
        let now = time::now_unix() as u64;
        let ids: Vec<String> = (0..4)
            .map(|i| finished(&s, now - 60 + i, (now - 10) as i64, 3))
            .collect();
        let mut p = policy(30 * 86_400, Some(0), Some((200, 100)));
        p.protect = Some(ids[0].clone());
        let taken = |p: &Policy| -> Vec<String> {
            let r = sweep(&s, p).unwrap();
            let mut v: Vec<String> = with_action(&r, "would_delete")
                .into_iter()
                .map(String::from)
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(taken(&p), ids[1..].to_vec());
        // Nothing launched since: its own job, not the newest.
        p.later_since_ms = Some(now * 1000);
        assert_eq!(taken(&p), ids[1..].to_vec());
        // Two launched since: the last of them is kept, its own is not.
        p.later_since_ms = Some((now - 58) * 1000);
        assert_eq!(taken(&p), ids[..3].to_vec());
        fs::remove_dir_all(&s.root).unwrap();
        // Its budget: one launch's alone, then its own and the 3 later
        // launches' (delete_limit 1 each).
        for (since, gone) in [(None, 1), (Some((now - 60) * 1000), 3)] {
            let s = scratch("newest-budget");
            let ids: Vec<String> = (0..4)
                .map(|i| finished(&s, now - 60 + i, (now - 10) as i64, 3))
                .collect();
            let mut p = policy(30 * 86_400, Some(0), Some((200, 1)));
            p.dry_run = false;
            p.protect = Some(ids[0].clone());
            p.later_since_ms = since;
            let r = sweep(&s, &p).unwrap();
            assert_eq!(r.deleted, gone, "{:?}", r.jobs);
            let left: Vec<bool> = ids.iter().map(|id| s.job(id).dir.exists()).collect();
            let want = if since.is_some() {
                vec![false, false, false, true]
            } else {
                vec![true, false, true, true]
            };
            assert_eq!(left, want, "{:?}", r.jobs);
            fs::remove_dir_all(&s.root).unwrap();
        }
    }

    /// The wait for a quiet root: done one `quiet` later on a root nobody
    /// launches into, and bounded by `at_most` under launches that never
    /// stop.
    #[test]
    fn the_quiet_wait_is_bounded() {
        let s = scratch("quiet");
        let t = Instant::now();
        wait_for_quiet(&s.root, Duration::from_millis(20), Duration::from_secs(30));
        assert!(t.elapsed() < Duration::from_secs(10));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let maker = {
            let (root, stop) = (s.root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    fs::create_dir(root.join(format!("d{i}"))).unwrap();
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        // Wait for the first directory: the maker is running.
        while fs::read_dir(&s.root).unwrap().next().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        wait_for_quiet(
            &s.root,
            Duration::from_millis(200),
            Duration::from_millis(600),
        );
        let took = t.elapsed();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        maker.join().unwrap();
        assert!(took < Duration::from_secs(10), "{took:?}");
        fs::remove_dir_all(&s.root).unwrap();
    }

    /// `max_jobs` keeps the newest N finished jobs by their end, whatever
    /// their ids say, and counts no active job among them: a budgeted
    /// sweep reads every job its budget allows before it judges. (One
    /// that stopped once the oldest ids held enough finished jobs
    /// removed long runs that had ended last, and counted created jobs
    /// among those kept.)
    #[test]
    fn auto_max_jobs_goes_by_the_end_and_counts_finished_jobs_only() {
        let s = scratch("beyond");
        let now = time::now_unix() as u64;
        // 40 runs of about two hours: the older the id, the later the end.
        let ids: Vec<String> = (0..40)
            .map(|i| finished(&s, now - 7200 + i, (now - 100 - i) as i64, 4))
            .collect();
        // Keep 35: the 5 that ended first go, the newest ids.
        let r = sweep(&s, &policy(30 * 86_400, Some(35), Some((200, 100)))).unwrap();
        let mut picked = with_action(&r, "would_delete");
        picked.sort_unstable();
        let want: Vec<&str> = ids[35..].iter().map(String::as_str).collect();
        assert_eq!(picked, want);
        assert_eq!(r.scanned_dirs, 40);
        assert!(r.age_clear, "read all, none past the line");
        // Created jobs among them are not counted as kept ones.
        for i in 0..5u64 {
            let id = ulid::Ulid::from_parts((now - 7100 + i) * 1000, 7).to_string();
            let job = s.job(&id);
            fs::create_dir_all(&job.dir).unwrap();
            job.write_state(&State::created(&id), false).unwrap();
        }
        let r = sweep(&s, &policy(30 * 86_400, Some(35), Some((200, 100)))).unwrap();
        assert_eq!(r.candidate_count, 5);
        // Two ends in one second: the one recorded later (finished_ns)
        // is the newer, whatever the ids.
        let a = finished(&s, now - 80 * 86_400, (now - 50) as i64, 8);
        let b = finished(&s, now - 70 * 86_400, (now - 50) as i64, 9);
        for (id, ns) in [(&a, 2u64), (&b, 1u64)] {
            let job = s.job(id);
            let mut st = job.read_state().unwrap();
            st.finished_ns = Some(ns);
            job.write_state(&st, false).unwrap();
        }
        let r = sweep(&s, &policy(30 * 86_400, Some(1), Some((200, 100)))).unwrap();
        let kept: Vec<&str> = r
            .jobs
            .iter()
            .filter(|e| e.action != "would_delete" && e.state == "exited")
            .map(|e| e.job_id.as_str())
            .collect();
        assert_eq!(kept, vec![a.as_str()], "the end recorded last is kept");
        // A job past the age line makes a reading not clear; so does a
        // scan cut short by its budget.
        let _ = finished(&s, now - 95 * 86_400, (now - 40 * 86_400) as i64, 5);
        let r = sweep(&s, &policy(30 * 86_400, Some(100), Some((200, 100)))).unwrap();
        assert!(!r.age_clear);
        let r = sweep(&s, &policy(30 * 86_400, Some(100), Some((10, 100)))).unwrap();
        assert!(!r.age_clear);
        fs::remove_dir_all(&s.root).unwrap();
    }

    /// A sweep under `max_jobs` that read every job and found none past
    /// the age line is noted in the guard: for a second, a launch into a
    /// root of more than `SCAN_BEFORE_STOP` directories and no more than
    /// the count keeps starts no sweep; over the count, it does.
    #[test]
    fn a_clear_reading_spares_launches_under_the_limit_for_a_second() {
        let s = scratch("aged-note");
        let now = time::now_unix() as u64;
        for i in 0..SCAN_BEFORE_STOP + 8 {
            finished(&s, now - 90 * 86_400 + i, (now - 3600) as i64, 4);
        }
        let launched = finished(&s, now, now as i64, 9);
        let mut g = AutoGc {
            older_than_secs: 30 * 86_400,
            max_jobs: Some(100),
            max_bytes: None,
            scan_limit: 200,
            delete_limit: 100,
        };
        let line = |s: &Store| fs::read_to_string(s.root.join(GC_LOCK)).unwrap();
        claim_auto(&s, &g).unwrap().run(&s, &g, &launched, None);
        assert!(line(&s).starts_with("aged 2592000 200 "), "{:?}", line(&s));
        // Under the limit (41 directories, 100 kept): no sweep.
        assert!(claim_auto(&s, &g).is_none());
        // Over it: a sweep, which takes the oldest.
        g.max_jobs = Some(40);
        claim_auto(&s, &g).unwrap().run(&s, &g, &launched, None);
        // 40 jobs and the guard.
        assert_eq!(fs::read_dir(&s.root).unwrap().count(), 41, "one went");
        // A sweep cut short by its budget notes nothing.
        g.scan_limit = 5;
        g.max_jobs = Some(100);
        claim_auto(&s, &g).unwrap().run(&s, &g, &launched, None);
        assert!(!line(&s).contains("aged"), "{:?}", line(&s));
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn sizes_count_links_not_targets() {
        let s = scratch("bytes");
        let big = s.root.join("big");
        fs::write(&big, vec![0u8; 100_000]).unwrap();
        let d = s.root.join("job");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("a"), b"12345").unwrap();
        fs::write(d.join("sub/b"), b"123").unwrap();
        std::os::unix::fs::symlink(&big, d.join("l")).unwrap();
        std::os::unix::fs::symlink(&s.root, d.join("up")).unwrap();
        let n = dir_bytes(&d);
        assert!((8..8 + 2 * 4096).contains(&n), "{n}");
        assert!(n < 100_000);
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn an_idle_age_only_sweep_is_remembered_for_a_second() {
        use std::io::Write;
        let s = scratch("idle");
        let lock = store::open_lock(&s.root.join(GC_LOCK)).unwrap();
        assert!(!recently_idle(&lock, "idle 10 200", 5_000));
        (&lock).write_all(b"idle 10 200 5000\n").unwrap();
        assert!(recently_idle(&lock, "idle 10 200", 5_999));
        assert!(
            !recently_idle(&lock, "idle 10 200", 6_000),
            "a second later"
        );
        assert!(
            !recently_idle(&lock, "idle 11 200", 5_500),
            "other settings"
        );
        assert!(
            !recently_idle(&lock, "idle 10 200", 4_000),
            "a clock set back"
        );
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn auto_gc_arg_round_trip() {
        let g = AutoGc {
            older_than_secs: 86400,
            max_jobs: Some(5),
            max_bytes: None,
            scan_limit: 200,
            delete_limit: 20,
        };
        assert_eq!(AutoGc::from_arg(&g.to_arg()), Some(g));
        assert_eq!(AutoGc::from_arg("x=1"), None);
        assert_eq!(AutoGc::from_arg("o=abc"), None);
    }

    #[test]
    fn settings_cover_those_that_remove_no_more() {
        let g = |spec: &str| AutoGc::from_arg(spec).unwrap();
        let plain = g("o=2592000,j=-,b=-,s=200,d=50");
        assert!(plain.covers(&plain));
        // A count, a size, a shorter age, a larger budget: more removed.
        for more in [
            "o=2592000,j=1,b=-,s=200,d=50",
            "o=2592000,j=-,b=10,s=200,d=50",
            "o=60,j=-,b=-,s=200,d=50",
            "o=2592000,j=-,b=-,s=400,d=50",
            "o=2592000,j=-,b=-,s=200,d=99",
        ] {
            assert!(!plain.covers(&g(more)), "{more}");
            assert!(g(more).covers(&plain), "{more}");
        }
        let tight = g("o=60,j=1,b=10,s=400,d=99");
        assert!(tight.covers(&plain) && !plain.covers(&tight));
        assert!(g("o=0,j=2,b=-,s=200,d=50").covers(&g("o=60,j=3,b=-,s=200,d=50")));
        assert!(!g("o=0,j=3,b=-,s=200,d=50").covers(&g("o=60,j=2,b=-,s=200,d=50")));
    }
}
