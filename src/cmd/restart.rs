//! `restart [--signal SIG] [--kill-after D] [observation flags] JOB_ID`:
//! run a job again from its stored definition under the same id, then
//! answer like `run` (type `restart`, plus `attempt` and `previous_runs`).
//!
//! Steps: (1) a running job is sent `--signal` and, if it has not ended
//! after `--kill-after`, SIGKILL to its group (a `queued` job is ended
//! `killed` without running, as `kill` ends it, and joins its queue's
//! line again at the back when relaunched); (2) the job lock is taken
//! (its supervisor released it after the terminal state, or died), every
//! process of the old group must be gone (stragglers that outlive the
//! root get the same signal, then SIGKILL), and so must the old
//! supervisor itself: after the lock it still delivers the ended run's
//! notifications (its `job.finished` names that run's logs, its records
//! belong in that run's directory), so the run is not moved away under
//! it; (3) the ended run is kept (`runs::archive`) and the new state
//! (`created`, attempt + 1) written under the lock; (4) `launch` hands
//! the same lock to the new supervisor, so there is no moment at which
//! another `start`/`restart` could slip in.
//!
//! Every wait is bounded. Running out of time while another caller holds
//! the job (a launch, the old supervisor's last steps) is `invalid_state`
//! marked retryable (`Error::Busy`): no run was kept or started yet (the
//! old one may have been stopped: the stop comes first), and the same
//! call later succeeds. A `lock` that is a symlink or not a regular
//! file is `unsafe_path`.
//!
//! Decisions: a `created` job is started, as `start` would (there is no
//! run to keep); env values come from env.json as stored, env files are
//! read again (they are read at every launch); the wait budget (`--until`)
//! counts from when the new run is launched, not from the stop; runs
//! kept, the sink limit and auto-GC go by the config named when the job
//! was defined (`--config`, kept in meta.json), else by the default
//! config as it is now, with `--no-auto-gc`/`--auto-gc-*` on top.
//!
//! Rejected: deleting the old logs (upstream's restart; D35 keeps them);
//! a new job id (callers hold the id).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Matches;
use crate::cmd::run::{observe_inline, InlineBody, WaitPlan};
use crate::error::{Error, Result};
use crate::job::{Job, PreviousRun, Status};
use crate::output::{Output, Response};
use crate::store::Store;
use crate::{launch, observe, runs, sys};

/// `run`'s answer (with `attempt`, which run this is), then the earlier
/// runs kept.
#[derive(Serialize)]
pub struct RestartBody {
    #[serde(flatten)]
    pub inline: InlineBody,
    pub previous_runs: Vec<PreviousRun>,
}

/// How `restart` stops a running job.
#[derive(Clone, Copy, Debug)]
pub struct Stop {
    pub signal: i32,
    pub kill_after: Duration,
    /// How long the ended run's supervisor may take over its last steps
    /// (notifications, auto-GC) once it has let go of the lock.
    pub settle: Duration,
    /// The time limit of a command sink this restart runs itself (the
    /// ended run's `job.finished` that its lost supervisor never sent:
    /// `pay_owed`).
    pub sink_timeout_ms: u64,
}

/// How long, past SIGKILL, a job may take to be recorded gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// Stop the job if it runs, make sure nothing of it is left, keep its
/// run, and hand back the job lock for the launch (None: the job was
/// never started; `launch` claims its lock as `start` does).
pub fn stop_and_keep(job: &Job, stop: Stop, keep: u64) -> Result<Option<std::fs::File>> {
    let st = observe::current_state(job)?;
    if st.status() != Status::Created {
        runs::check_keepable(job)?;
    }
    match st.status() {
        Status::Created => return Ok(None),
        Status::Running => stop_running(job, stop)?,
        // No process group yet: the waiting supervisor takes TERM as
        // "end killed without running", as for `kill`. One that got its
        // slot just then is stopped like any running job.
        Status::Queued => {
            super::kill::kill_job(job, libc::SIGTERM, false)?;
            if observe::current_state(job)?.status() == Status::Running {
                stop_running(job, stop)?;
            }
        }
        _ => {}
    }
    // The ended run's supervisor records its `job.finished` delivered
    // under the job lock: it is waited for before the lock is taken.
    // Holding the lock meanwhile, the restart kept it waiting a second
    // for the lock, and waited that second itself.
    if let Ok(now) = observe::current_state(job) {
        if now.status().is_terminal() && now.attempt() == st.attempt() {
            supervisor_gone(job, &now, Instant::now() + stop.settle)?;
        }
    }
    let lock = take_lock(
        job,
        st.attempt(),
        Instant::now() + stop.kill_after + GONE_WITHIN,
    )?;
    // A job of 0.2.3's found lost with no lock file (`observe`'s reading
    // of it, never written) ended as that reading says: its record still
    // says `running` (it was refused as one that could not be stopped).
    let seen = st;
    let st = match job.read_state()? {
        now if !now.status().is_terminal()
            && seen.status().is_terminal()
            && now.attempt() == seen.attempt() =>
        {
            seen
        }
        now => now,
    };
    if !st.status().is_terminal() {
        return Err(Error::InvalidState(format!(
            "invalid job state: job {} is '{}' and could not be stopped",
            job.id,
            st.status().as_str()
        )));
    }
    empty_group(job, &st, stop)?;
    supervisor_gone(job, &st, Instant::now() + stop.settle)?;
    let st = pay_owed(job, st, stop)?;
    let next = runs::archive(job, &st, keep)?;
    job.write_state(&next, true)?;
    Ok(Some(lock))
}

/// Signal the running job's group, escalate to SIGKILL after the grace,
/// and wait until its supervisor has recorded the end.
fn stop_running(job: &Job, stop: Stop) -> Result<()> {
    let t0 = Instant::now();
    // Followed into a `--retry` job's next run, should the stop come
    // between two (`signal_running_until`).
    let signal_now = |sig: i32, by: Instant| -> Result<()> {
        let st = observe::current_state(job)?;
        if st.status() == Status::Running {
            super::kill::signal_running_until(job, &st, sig, by, None)?;
        }
        Ok(())
    };
    signal_now(stop.signal, t0 + stop.kill_after)?;
    let st = observe::wait_terminal(job, Some(t0 + stop.kill_after))?;
    if st.status().is_terminal() {
        return Ok(());
    }
    crate::info!("restart {}: still running after the grace: SIGKILL", job.id);
    signal_now(libc::SIGKILL, Instant::now() + GONE_WITHIN)?;
    let st = observe::wait_terminal(job, Some(Instant::now() + GONE_WITHIN))?;
    if st.status().is_terminal() {
        return Ok(());
    }
    // Its processes may well be gone: the end is not on record (a
    // supervisor stopped or starved cannot write it). Nothing was kept
    // or started, and the same restart later succeeds.
    Err(Error::Busy(format!(
        "invalid job state: the end of job {} was not recorded within {} ms of SIGKILL \
         (its supervisor has not written it); nothing was started",
        job.id,
        GONE_WITHIN.as_millis()
    )))
}

/// The job lock, exclusively, once its holder lets go: the supervisor
/// releases it right after the terminal state (and the kernel, if it
/// died). A lock found free over a job that reads running or created
/// (its supervisor died unrecorded) is let go, the state reconciled by
/// `observe::current_state`, and taken again. `attempt`: the run being
/// replaced; a later one that holds the lock was started by another
/// `restart` meanwhile, which this one then leaves alone. Every way
/// round the loop passes the deadline check: none spins.
fn take_lock(job: &Job, attempt: u32, by: Instant) -> Result<std::fs::File> {
    let mut again = false;
    loop {
        if again {
            if Instant::now() >= by {
                return Err(Error::Busy(format!(
                    "invalid job state: job {} is held by another launch or its supervisor",
                    job.id
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        again = true;
        let lock = match job.open_lock_checked()? {
            Some(l) => l,
            // Never launched (a `create`d job that failed before it
            // started): claim the lock as a launch does.
            None => match job.claim_lock() {
                Ok(l) => return Ok(l),
                Err(Some(e)) => return Err(e),
                // Made meanwhile by another launch: look again.
                Err(None) => continue,
            },
        };
        if sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
            if job.read_state()?.status().is_terminal() {
                return Ok(lock);
            }
            drop(lock);
            observe::current_state(job)?;
            continue;
        }
        // Another caller's launch is in progress (it holds the lock):
        // retryable, as a `start` that meets another's launch is; asked
        // again, this call restarts the run that one started.
        if job.read_state().is_ok_and(|st| st.attempt() > attempt) {
            return Err(Error::Busy(format!(
                "invalid job state: job {} was restarted by another caller meanwhile; nothing was started by this one",
                job.id
            )));
        }
    }
}

/// Wait, until `by`, for the supervisor of the ended run `st` to exit:
/// it lets go of the lock as soon as the end is recorded, then delivers
/// that run's notifications. A process is taken to be that supervisor
/// only while its command line is `_supervise` of this job (a pid reused
/// by anything else, or a zombie, has another or an empty one). A
/// restart made by one of that run's sinks (a `job.finished` command
/// that restarts its job) runs under that supervisor, which waits for
/// the sink: it does not wait in turn, or neither would ever finish.
fn supervisor_gone(job: &Job, st: &crate::job::State, by: Instant) -> Result<()> {
    let Some(pid) = st.supervisor_pid else {
        return Ok(());
    };
    if is_ancestor(pid) || ends_within(pid, by, |p| job.is_supervisor(p)) {
        return Ok(());
    }
    Err(Error::Busy(format!(
        "invalid job state: the supervisor of run {} of job {} (pid {pid}) is still \
         delivering its notifications",
        st.attempt(),
        job.id
    )))
}

/// Does `pid`, while `still(pid)` says it is the process meant, end by
/// `by`? Opened before the first look, so that the pidfd names the
/// process looked at; without pidfds (Linux < 5.3) the look is repeated.
fn ends_within(pid: u32, by: Instant, still: impl Fn(u32) -> bool) -> bool {
    use std::os::fd::AsRawFd;
    let exited = sys::pidfd_open(pid).ok();
    while still(pid) {
        let left = by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let step = left.min(Duration::from_millis(100));
        match &exited {
            Some(fd) => {
                let mut fds = [sys::poll_fd(fd.as_raw_fd(), sys::POLLIN)];
                let _ = sys::poll(&mut fds, step.as_millis().max(1) as i32);
            }
            None => std::thread::sleep(step.min(Duration::from_millis(10))),
        }
    }
    true
}

/// The ended run's `job.finished`, still owed (`finished_owed`): paid
/// before the run is kept. A run whose supervisor died has it owed from
/// the reader that recorded the loss, which started a `_notify` for it;
/// once the run is moved away and the next one holds the lock, that
/// delivery finds another run and sends nothing, so a restart soon after
/// the loss lost the event for good. A delivery under way (a `_notify`,
/// or the supervisor, which cannot clear the debt while this restart
/// holds the lock) is waited for; what it sent is on record and is not
/// sent again (`notify::send_owed_now`). One that runs this restart (a
/// sink that restarts its job) is paying it now. Another user's job's
/// event stays owed, as a reader leaves it.
fn pay_owed(job: &Job, st: crate::job::State, stop: Stop) -> Result<crate::job::State> {
    if !st.finished_owed {
        return Ok(st);
    }
    let deliverer = st.finished_by.or(st.supervisor_pid);
    if !deliverer.is_some_and(is_ancestor) {
        if let Some(pid) = st.finished_by {
            let by = Instant::now() + stop.settle;
            if !ends_within(pid, by, |p| job.is_deliverer(p)) {
                return Err(Error::Busy(format!(
                    "invalid job state: run {} of job {} is still having its job.finished \
                     delivered (pid {pid})",
                    st.attempt(),
                    job.id
                )));
            }
        }
        if !crate::notify::send_owed_now(job, &st, stop.sink_timeout_ms) {
            return Ok(st);
        }
    }
    // Recorded: a restart that fails after this has not left the event
    // owed, to be sent again.
    let paid = crate::job::State {
        finished_owed: false,
        finished_by: None,
        ..st
    };
    job.write_state(&paid, false)?;
    Ok(paid)
}

/// Is `pid` this process or one of its ancestors (by /proc's parent
/// links, up to init)?
fn is_ancestor(pid: u32) -> bool {
    let mut p = std::process::id();
    // Bounded, in case /proc says something odd; real trees end at 1.
    for _ in 0..4096 {
        if p == pid {
            return true;
        }
        match sys::proc_stat(p).map(|s| s.ppid) {
            Some(pp) if pp > 0 && pp != p => p = pp,
            _ => return false,
        }
    }
    false
}

/// Processes of the old run that outlived its root (a TERM-ignoring
/// child): they get the signal, then SIGKILL after the grace. The new
/// run starts only once none is left.
fn empty_group(job: &Job, st: &crate::job::State, stop: Stop) -> Result<()> {
    // Only processes the record shows to be the job's, as `kill` and the
    // reader that reconciles a lost supervisor: a record planted in a
    // shared root by one user signals nobody else's processes through a
    // `restart` either.
    st.own_processes(job)
        .map_err(|why| crate::cmd::kill::not_the_jobs(job, st, &why))?;
    if st.end_leftovers(stop.signal, stop.kill_after, GONE_WITHIN) {
        return Ok(());
    }
    Err(Error::InvalidState(format!(
        "invalid job state: processes of job {} outlived SIGKILL",
        job.id
    )))
}

/// How long the ended run's supervisor is given for its last steps: one
/// command sink's time limit (`[notify] sink_timeout`; with no limit, the
/// default one) and `GONE_WITHIN` for the rest. A supervisor slower than
/// that (a long queue of slow sinks) makes the restart `Busy`, not wait
/// on and on.
fn settle_within(sink_timeout_ms: u64) -> Duration {
    Duration::from_millis(crate::config::bounded_sink_ms(sink_timeout_ms)) + GONE_WITHIN
}

/// The whole `restart` of `job`, per the flags in `m` (the CLI's, or
/// those an HTTP or MCP call gave under the same names).
pub fn restart_job(store: &Store, job: &Job, m: &Matches) -> Result<RestartBody> {
    let plan = WaitPlan::from_matches(m);
    (|| {
        let mut meta = job.read_meta()?;
        meta.env_vars = launch::env_display(job, &meta);
        // A config the job was defined with (`run --config`) says how
        // many runs to keep, how long its sinks may take and how to
        // auto-GC; else the default config, read now.
        let cfg = launch::relaunch_settings(&meta)?;
        let stop = Stop {
            signal: sys::parse_signal(m.get("signal").unwrap_or("TERM")).unwrap_or(libc::SIGTERM),
            kill_after: Duration::from_millis(m.duration_ms("kill-after").unwrap_or(5000)),
            settle: settle_within(cfg.sink_timeout_ms),
            sink_timeout_ms: cfg.sink_timeout_ms,
        };
        // Said from before the run is stopped to the next one's launch
        // (`job::RESTART_BYTE`), on a description of our own (open for
        // writing: a write lock needs it), released when this returns,
        // or this process dies.
        let intent = job.open_lock_checked().ok().flatten();
        if let Some(f) = &intent {
            let _ = sys::try_ofd_lock(f, crate::job::RESTART_BYTE);
        }
        let lock = stop_and_keep(job, stop, cfg.keep_runs)?;
        let t0 = Instant::now();
        let deadline = plan.deadline();
        let auto_gc = crate::gc::AutoGc::from_matches(m, &cfg.gc);
        let gc_sinks = (auto_gc.as_ref(), Some(cfg.sink_timeout_ms));
        // A created job is simply started; if another caller (a start,
        // a concurrent restart) launched it first, this restart can be
        // asked again, of the run that caller began.
        let was_created = lock.is_none();
        let mut l = match launch::launch(store, job, None, lock, gc_sinks, deadline) {
            Err(e) if was_created && e.code() == "invalid_state" && !e.retryable() => {
                return Err(Error::Busy(format!(
                    "invalid job state: job {} was started by another caller while this restart was starting it; nothing was changed: try again to restart that run",
                    job.id
                )))
            }
            r => r?,
        };
        // The earlier runs as of the run the answer describes: with
        // `--retry`, later than the one launched here.
        let mut inline = observe_inline(job, &meta, &mut l, plan, (t0, deadline))?;
        // Always present here, even empty (a created job's first run):
        // taken out of `run`'s part, which would print it only when not.
        let previous_runs = inline.previous_runs.take().unwrap_or_default();
        Ok(RestartBody {
            inline,
            previous_runs,
        })
    })()
    .map_err(|e: Error| e.in_job(&job.id))
}

/// The rest of a server's `restart` (HTTP `/restart`, MCP `restart`):
/// `launched` is `restart_job`'s answer to the call's flags with
/// `no_wait`, and the watch of the new run is the server's own, so that
/// a server's stop or a client's cancel ends it (`watch` gets the
/// deadline and answers None when it was cut). The budget counts from
/// the launch, as `restart` counts it, and ends no later than `cap`.
/// None: the watch was cut.
pub fn watch_relaunched(
    job: &Job,
    launched: RestartBody,
    plan: WaitPlan,
    cap: Option<Instant>,
    watch: impl FnOnce(Option<Instant>) -> Result<Option<crate::job::State>>,
) -> Result<Option<RestartBody>> {
    let terminal = matches!(launched.inline.state, "exited" | "killed" | "failed");
    if !plan.wait || terminal {
        return Ok(Some(launched));
    }
    // The launch ended `elapsed_ms` before now.
    let waited_from = Instant::now();
    let t0 = waited_from
        .checked_sub(Duration::from_millis(launched.inline.elapsed_ms))
        .unwrap_or(waited_from);
    let until = plan
        .until_ms
        .and_then(|ms| t0.checked_add(Duration::from_millis(ms)));
    let deadline = match (until, cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let Some(st) = watch(deadline)? else {
        return Ok(None);
    };
    (|| {
        let mut meta = job.read_meta()?;
        meta.env_vars = launch::env_display(job, &meta);
        let mut inline = crate::cmd::run::inline_body(
            job,
            &meta,
            &st,
            (plan.max_bytes, plan.tail_bytes),
            t0.elapsed().as_millis() as u64,
            waited_from.elapsed().as_millis() as u64,
        )?;
        let previous_runs = inline.previous_runs.take().unwrap_or_default();
        Ok(Some(RestartBody {
            inline,
            previous_runs,
        }))
    })()
    .map_err(|e: Error| e.in_job(&job.id))
}

pub fn exec(m: &Matches) -> Result<Output> {
    // Held from the start (before any thread), but only the watch of the
    // new run is ended by one: the stop of the old run goes on to its
    // bounded end, and the watch that follows ends at once.
    crate::cmd::run::hold_stop_signals(WaitPlan::from_matches(m));
    // The stop of the old run can take seconds: the first signal that
    // comes meanwhile is the one the exit status names.
    crate::sys::take_stop_signals_now();
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let body = restart_job(&store, &job, m)?;
    Ok(Output::Doc(
        Response::new("restart", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}
