//! `kill [--signal SIG] [--no-wait] JOB_ID`: signal the job's process
//! group. The supervisor records what really happened; `kill` only
//! watches for it (3 s) and reports the state it saw.
//!
//! A `queued` job has no process group yet: `kill` signals its waiting
//! supervisor (the signal asked for if it is TERM, INT or HUP, else
//! TERM), which records `killed` with that signal without running anything
//! (see `queue`). If the job started meanwhile, the supervisor ignores
//! that signal and `kill` signals the job's group as for any running job.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{Job, Leader, Status};
use crate::output::{Output, Response};
use crate::{observe, sys};

/// How long `kill` watches for the job to end.
pub const OBSERVE: Duration = Duration::from_secs(3);

#[derive(Serialize)]
pub struct KillBody {
    pub job_id: String,
    pub signal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminated_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_within_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// Why a job that ended `failed` failed (`supervisor_lost`, ...), as
    /// `status` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<crate::job::Failure>,
    /// Output the job wrote that could not be stored, as `status` says
    /// (absent when the logs hold everything).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<crate::job::OutputLoss>,
}

/// Signals that stop, resume or merely inform: no reason to expect the
/// job to end, so there is nothing to watch for.
pub(crate) fn ends_job(sig: i32) -> bool {
    ![
        libc::SIGSTOP,
        libc::SIGCONT,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
        libc::SIGWINCH,
        libc::SIGURG,
        libc::SIGCHLD,
    ]
    .contains(&sig)
}

pub fn kill_job(job: &Job, sig: i32, no_wait: bool) -> Result<KillBody> {
    kill_job_within(job, sig, no_wait, None, OBSERVE)
}

/// `kill_job`, watching for the outcome at most `within` (`OBSERVE`; MCP
/// holds it to the server's call limit when that is shorter), and ending
/// the observation early (with the state seen then) when `give_up`
/// becomes readable: the server passes its stop, so that a `/kill` still
/// watching when it stops is answered, not cut off; MCP a call's cancel.
/// The signal has been sent by then.
pub fn kill_job_within(
    job: &Job,
    sig: i32,
    no_wait: bool,
    give_up: Option<std::os::fd::RawFd>,
    within: Duration,
) -> Result<KillBody> {
    let t0 = Instant::now();
    let st = observe::current_state(job)?;
    let body = KillBody {
        job_id: job.id.clone(),
        signal: sys::signal_name(sig),
        state: None,
        exit_code: None,
        terminated_signal: None,
        observed_within_ms: None,
        timed_out: None,
        failure: None,
        output_lost: st.output_lost.clone(),
    };
    let st = match st.status() {
        Status::Created => {
            // A launch holds the job lock while it starts the supervisor
            // (`run`, `start`, `restart`): the job is about to run, and a
            // kill a moment later reaches it, as `start` says then.
            if job.is_launching() {
                return Err(Error::Busy(format!(
                    "invalid job state: job {} is being started; try again in a moment",
                    job.id
                )));
            }
            return Err(Error::InvalidState(format!(
                "invalid job state: job {} is in 'created' state and has not been started; cannot send signal",
                job.id
            )));
        }
        Status::Queued => {
            if !ends_job(sig) {
                // Nothing runs yet that could be stopped, continued or
                // told: an `ok` would read as if it had been. Retryable:
                // once the job starts, the same call reaches it (as
                // between two --retry runs).
                return Err(Error::Busy(format!(
                    "invalid job state: job {} is queued and has not started; {} would reach no process (a queued job is ended by a signal that ends a process, e.g. TERM)",
                    job.id,
                    sys::signal_name(sig)
                )));
            }
            // The supervisor takes TERM, INT and HUP as "kill" and records
            // the one it got; any other ending signal is sent as TERM.
            let asked = match sig {
                libc::SIGTERM | libc::SIGINT | libc::SIGHUP => sig,
                _ => libc::SIGTERM,
            };
            // Watched from before the signal: the record it causes (or
            // the start that beat it) is a rename in the job directory.
            let watch = (!no_wait)
                .then(|| sys::watch_dir(&job.dir).ok().map(std::fs::File::from))
                .flatten();
            if let Some(spid) = st.supervisor_pid {
                if st.unseen().is_some() {
                    if let Some(w) = watch {
                        observe::close_watch(w);
                    }
                    return Err(unseen(job, &st));
                }
                // Only the job's own supervisor: the record's pid may name
                // any process by now (reused, or edited by hand).
                if !job.is_supervisor(spid) {
                    // Unless the job has moved on meanwhile (its
                    // supervisor ended it, or started it, and went).
                    if let Some(w) = watch {
                        observe::close_watch(w);
                    }
                    let now = observe::current_state(job)?;
                    if now.status() == Status::Queued {
                        return Err(damaged_record(
                            job,
                            format!("its supervisor pid {spid} is not the job's supervisor"),
                        ));
                    }
                    let left = within.saturating_sub(t0.elapsed());
                    return kill_job_within(job, sig, no_wait, give_up, left);
                }
                sys::kill_process(spid, asked)
                    .map_err(|e| Error::io(format!("signal supervisor {spid}"), e))?;
                // A stopped supervisor (SIGSTOP, ^Z) would keep the
                // signal pending, and the queue stalled behind it: it is
                // continued, as a running job's group is.
                let _ = sys::kill_process(spid, libc::SIGCONT);
            }
            if no_wait {
                return Ok(body);
            }
            // The supervisor answers in a moment: wait for its record
            // (or for the job having started just before the signal).
            let now = loop {
                let now = observe::current_state(job)?;
                let left = within.saturating_sub(t0.elapsed());
                if now.status() != Status::Queued || left.is_zero() || give_up.is_some_and(stirred)
                {
                    break now;
                }
                match &watch {
                    Some(w) => {
                        // Not past 100 ms: a supervisor that died instead
                        // of answering writes nothing to wake us.
                        let ms = left.as_millis().clamp(1, 100) as i32;
                        let mut fds = [
                            sys::poll_fd(w.as_raw_fd(), sys::POLLIN),
                            sys::poll_fd(give_up.unwrap_or(-1), sys::POLLIN),
                        ];
                        let _ = sys::poll(&mut fds, ms);
                        observe::drain_watch(w);
                    }
                    // No watch (inotify refused): look again shortly.
                    None => std::thread::sleep(left.min(Duration::from_millis(20))),
                }
            };
            // Closing an inotify descriptor can wait for the kernel: not
            // on the answer's path.
            if let Some(w) = watch {
                observe::close_watch(w);
            }
            if now.status() == Status::Running {
                let left = within.saturating_sub(t0.elapsed());
                return kill_job_within(job, sig, no_wait, give_up, left);
            }
            now
        }
        // A `--retry` job between two runs (`started_at` goes with the
        // run that ended): only the retry delay's stand-in is there, and
        // a signal that ends no process reaches nothing of the job, as
        // for a queued one. Its next run will: later may work.
        Status::Running if st.job.started_at.is_none() && st.attempt() > 1 && !ends_job(sig) => {
            return Err(Error::Busy(format!(
                "invalid job state: job {} is between two --retry runs (its retry delay); {} would reach no process of the job: try again once its next run has started",
                job.id,
                sys::signal_name(sig)
            )));
        }
        Status::Running => {
            // A stopped supervisor (SIGSTOP from its own job, say) records
            // nothing: the job read running for good, whatever was sent
            // (audit 39). `kill` continues it, as it does a queued job's
            // (a `restart` leaves it be, and says the end was not
            // recorded in time).
            if let Some(spid) = st.supervisor_pid.filter(|&s| job.is_supervisor(s)) {
                let _ = sys::kill_process(spid, libc::SIGCONT);
            }
            let sent = signal_running_until(job, &st, sig, t0 + within, give_up)?;
            if sent == Leader::Gone {
                // Nothing was signalled: the root has ended and its
                // supervisor is recording that, in a moment. A record
                // that stays `running` over a root that is gone names a
                // process that was never the job's.
                let now = observe::wait_terminal_or(job, Some(t0 + within), give_up)?;
                let stuck = now.status() == Status::Running
                    && now.pid == st.pid
                    && now.leader(job) == Leader::Gone
                    && !give_up.is_some_and(stirred);
                // Its supervisor lives: a `--retry` run that ended is
                // having what its root left behind ended (up to
                // --kill-after) before the next run starts. Nothing
                // damaged (it read io_error, not retryable); the next run
                // takes the signal.
                if stuck && now.supervisor_pid.is_some_and(|p| job.is_supervisor(p)) {
                    return Err(Error::Busy(format!(
                        "invalid job state: job {} is between two --retry runs (the last one's leftovers are being ended); {} reached no process of the job: try again",
                        job.id,
                        sys::signal_name(sig)
                    )));
                }
                if stuck {
                    return Err(damaged_record(
                        job,
                        format!(
                            "it is running, but its root process {} does not exist",
                            st.pid.unwrap_or_default()
                        ),
                    ));
                }
                if no_wait {
                    return Ok(body);
                }
                now
            } else if no_wait {
                return Ok(body);
            } else if ends_job(sig) {
                observe::wait_terminal_or(job, Some(t0 + within), give_up)?
            } else {
                st
            }
        }
        // Terminal, but processes of the job live on in its group (a
        // background process its root left behind, a record read before
        // anyone reconciled a lost supervisor, a process that escaped the
        // reconciling kill): the signal still reaches them, which
        // `delete`'s "kill it first" relies on — but only processes the
        // record shows to be the job's (as the reconciling reader's
        // kill): a damaged or planted record signals nothing. With none
        // left, nothing is sent.
        _ => {
            let live = st
                .own_processes(job)
                .map_err(|why| not_the_jobs(job, &st, &why))?;
            if let (false, Some(pgid)) = (live.is_empty(), st.pid) {
                sys::kill_group_resuming(pgid, sig, &st.left_in_session)
                    .map_err(|e| Error::io(format!("signal process group {pgid}"), e))?;
            }
            if no_wait {
                return Ok(body);
            }
            st
        }
    };
    Ok(fill(body, &st, t0))
}

/// A job whose processes this caller cannot tell from others
/// (`State::unseen`): nothing is signalled, and the answer says why at
/// once. It waited out the whole window and then called the record
/// damaged, or said the job had ended on its own.
pub fn unseen(job: &Job, st: &crate::job::State) -> Error {
    nothing_signalled(
        job,
        std::io::ErrorKind::Unsupported,
        format!(
            "{}; nothing was signalled (run the command where the job was started)",
            st.unseen().unwrap_or_default()
        ),
    )
}

/// Processes the record names were not shown to be the job's (`why`,
/// from `State::own_processes`): `unseen` where its pids cannot be
/// judged here, else a damaged record.
pub fn not_the_jobs(job: &Job, st: &crate::job::State, why: &str) -> Error {
    match st.unseen() {
        Some(_) => unseen(job, st),
        None => damaged_record(
            job,
            format!("the processes it names are not the job's ({why})"),
        ),
    }
}

/// Has `fd` become readable (or hung up)? Without waiting.
fn stirred(fd: std::os::fd::RawFd) -> bool {
    let mut fds = [sys::poll_fd(fd, sys::POLLIN)];
    sys::poll(&mut fds, 0).is_ok_and(|n| n > 0) && fds[0].revents != 0
}

/// The signals one sends to stop a job (kill's and restart's default
/// TERM among them), as against those a job may handle and live on
/// (USR1, HUP as "reload" aside, WINCH, …).
fn stops_job(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGTERM | libc::SIGINT | libc::SIGQUIT | libc::SIGKILL
    )
}

/// Send `sig` to a running job's process group. A signal sent to stop
/// the job (`stops_job`) is announced to its supervisor first
/// (`sys::STOP_NOTE`), so that a run stopped on purpose is not taken for
/// a failure to `--retry`, even when the job answers TERM with an exit
/// code of its own. Any other signal (USR1 to a job that handles it)
/// leaves `--retry` as it was. Any signal but one that stops or
/// continues the group is followed by SIGCONT (`sys::kill_group_resuming`).
///
/// The group is signalled only while its leader is the job's root
/// (`State::leader`: same start time) and the note only to the job's own
/// supervisor (`Job::is_supervisor`): a record whose pid names another
/// process (reused, or edited by hand) signals nothing and is an error.
/// Returns what the recorded root was: `Gone` and `Unrecorded` signalled
/// nothing.
pub fn signal_running(job: &Job, st: &crate::job::State, sig: i32) -> Result<Leader> {
    let pid = match st.leader(job) {
        Leader::Root(pid) => pid,
        Leader::Stranger(pid) => {
            return Err(damaged_record(
                job,
                format!("its root pid {pid} is not the job's process"),
            ))
        }
        Leader::Unseen => return Err(unseen(job, st)),
        other => return Ok(other),
    };
    if let (true, Some(spid)) = (stops_job(sig), st.supervisor_pid) {
        // Best effort: a supervisor that is gone has nothing to retry.
        if job.is_supervisor(spid) {
            let _ = sys::kill_process(spid, sys::STOP_NOTE);
        }
    }
    // Resuming: a stopped job (SIGSTOP, ^Z) would keep TERM pending.
    // The root is a witness too: should it have left its group, it is
    // signalled itself (`sys::kill_group`).
    let mut left = st.left_in_session.clone();
    if let Some(t) = st.pid_start_time {
        left.push([u64::from(pid), t]);
    }
    sys::kill_group_resuming(pid, sig, &left)
        .map(|_| Leader::Root(pid))
        .map_err(|e| Error::io(format!("signal process group {pid}"), e))
}

/// `signal_running`, followed through a `--retry` job's change of runs
/// for a signal that stops the job. Between two runs the recorded root
/// has ended (or no root is recorded yet): nothing is signalled, and the
/// next run started as if no `kill` had come (the answer said running
/// after 3 s, and the job went on retrying). So the supervisor is told
/// first (`sys::STOP_NOTE`: the run that ended is not retried), and a
/// next run that started all the same (the supervisor had decided just
/// before) is signalled in turn, until `deadline`. Returns what was
/// signalled last, as `signal_running` does.
pub fn signal_running_until(
    job: &Job,
    st: &crate::job::State,
    sig: i32,
    deadline: Instant,
    give_up: Option<std::os::fd::RawFd>,
) -> Result<Leader> {
    let mut st = st.clone();
    loop {
        let sent = signal_running(job, &st, sig)?;
        if !stops_job(sig) || !matches!(sent, Leader::Gone | Leader::Unrecorded) {
            return Ok(sent);
        }
        match st.supervisor_pid {
            Some(spid) if job.is_supervisor(spid) => {
                let _ = sys::kill_process(spid, sys::STOP_NOTE);
            }
            _ => return Ok(sent),
        }
        // Its end, or the next run's root: polled, for the moment
        // between two runs (the state's writes are renames in the job
        // directory, but a watch costs more than these few looks).
        loop {
            if Instant::now() >= deadline || give_up.is_some_and(stirred) {
                return Ok(sent);
            }
            std::thread::sleep(Duration::from_millis(2));
            let now = observe::current_state(job)?;
            if now.status() != Status::Running {
                return Ok(sent);
            }
            if now.pid.is_some() && now.pid != st.pid {
                st = now;
                break;
            }
        }
    }
}

/// A job record that names processes that are not the job's: nothing
/// was signalled. `io_error` with the damaged-record wording of
/// `job::damaged` (bad input on disk, not a state the job can be in, so
/// not `invalid_state`), and not retryable: asking again reads the same
/// record.
pub(crate) fn damaged_record(job: &Job, why: String) -> Error {
    nothing_signalled(
        job,
        std::io::ErrorKind::InvalidData,
        format!(
            "damaged job record {}: {why}; nothing was signalled",
            job.path(crate::job::STATE).display()
        ),
    )
}

/// `io_error` for a signal to job `job` that was not sent.
fn nothing_signalled(job: &Job, kind: std::io::ErrorKind, message: String) -> Error {
    Error::io(
        format!("signal job {}", job.id),
        std::io::Error::new(kind, message),
    )
}

/// The answer once the job has been watched: what the state says.
fn fill(mut body: KillBody, st: &crate::job::State, t0: Instant) -> KillBody {
    let terminal = st.status().is_terminal();
    body.state = Some(st.status().as_str());
    body.exit_code = st.result.exit_code.filter(|_| terminal);
    body.terminated_signal = st.result.signal.clone().filter(|_| terminal);
    body.observed_within_ms = Some(t0.elapsed().as_millis() as u64);
    body.timed_out = terminal.then_some(st.result.timed_out);
    body.failure = st.failure.clone().filter(|_| terminal);
    body.output_lost = st.output_lost.clone();
    body
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let job = store.lookup(m.pos(0).unwrap_or_default())?;
    let sig = sys::parse_signal(m.get("signal").unwrap_or("TERM")).unwrap_or(libc::SIGTERM);
    let body = kill_job(&job, sig, m.has("no-wait")).map_err(|e| e.in_job(&job.id))?;
    Ok(Output::Doc(
        Response::new("kill", &body).map_err(|e| e.in_job(&job.id))?,
    ))
}
