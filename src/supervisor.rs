//! The per-job supervisor (`agent-exec _supervise <root> <id>`): the only
//! writer of `state.json` while a job runs.
//!
//! Invariants
//! - Holds the exclusive flock on `<job>/lock` (fd 4, inherited from the
//!   front-end already locked) from before the workload starts until the
//!   terminal state is on disk; liveness readers rely on it.
//! - The workload is its own process-group leader (pgid = pid), so
//!   timeouts and `kill` reach its descendants and never us.
//! - Completion is the root child's exit, seen on a pidfd and collected
//!   with `wait4` (its rusage kept) — never pipe EOF, which a background
//!   descendant can hold open forever.
//! - The terminal state is written once, after the pipes are drained:
//!   everything the root child wrote is read before `exited` appears.
//!   Descendants that keep the pipes open get a short grace (250 ms idle,
//!   1 s at most), then lose them. It is made durable (fsync of the file
//!   and the directory) right after it is published and waiters are told,
//!   so the fsync never delays `run` or `wait`.
//! - The caller hears `R` (running, state.json says so) as soon as the
//!   workload has exec'd; the logs are created right after, off its path.
//!   If they cannot be, the workload is killed and the job recorded
//!   `failed` with `log_unwritable`: nothing runs unrecorded. A log is
//!   only ever a regular file, and its open never blocks: a FIFO or
//!   device planted under its name is such a failure, not a hang.
//! - Environment values are never in the workload's argv (D22): what a
//!   login shell re-applies after its profile (D36) travels in
//!   environment variables, each under the kernel's limit on one string.
//! - Pipes are read only when poll() says so; a silent job costs no CPU.
//!   Memory is bounded: one read buffer, one partial line per stream of
//!   at most 64 KiB (longer lines are split), one write buffer.
//! - With `--max-log-bytes` each log is cut back in place as it grows
//!   (`logcap`, from `Sink::write`), and cut to its final size before
//!   the terminal state is written: a finished job's logs are final.
//! - Notifications never hold the job: the tee only matches lines (see
//!   `notify::Matcher`; sinks run on its delivery thread), and
//!   `job.finished` is delivered after the terminal state is written and
//!   the lock released. The supervisor exits when delivery is done.
//!
//! Rejected: reader threads with a fixed join deadline (0.2.3 abandoned
//! them after 2 s and lost output); writing the terminal state before
//! draining (0.2.3 reported `exited` with logs still growing).

use std::ffi::{CString, OsString};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::Matches;
use crate::error::{no_room, Result};
use crate::job::{self, Job, Meta, State, Status, NEXT_STATE, PREV_STATE, RUN_STATE};
use crate::launch::{LOCK_FD, READY_FD};
use crate::notify::Matcher;
use crate::output::Output;
use crate::store::Store;
use crate::sys::{self, Exit};

/// Lines longer than this are split into pieces for full.log and
/// output-match (D32).
pub const MAX_LINE: usize = 64 * 1024;
const READ_CHUNK: usize = 128 * 1024;
/// How long a job runs before its supervisor gives back the pages its
/// start-up faulted in (see `run_loop`).
const REST_AFTER_MS: u64 = 20;
const PIPE_SIZE: i32 = 1 << 20;
/// Silence after which descendants still holding the pipes lose them.
/// Long enough that a background child's last words a moment after the
/// root exits are kept (50 ms lost `(sleep 0.05; echo late) &`); short
/// enough that a silent daemon holding the pipes delays the terminal
/// state by no more than this. A job whose pipes close pays nothing.
const DRAIN_IDLE: Duration = Duration::from_millis(250);
const DRAIN_MAX: Duration = Duration::from_secs(1);

/// Entry point of the hidden `_supervise` subcommand.
pub fn exec(m: &Matches) -> Result<Output> {
    // The stand-in for a job between two `--retry` runs (see
    // `between_runs`): it only waits out the delay.
    if let Some(ms) = m.u64("pause-ms") {
        std::thread::sleep(Duration::from_millis(ms));
        return Ok(Output::Done);
    }
    // Blocked before any thread starts, so every thread has them
    // blocked: the note stays pending until the run's end takes it, and
    // the stop signals are read by the run's loop (`run_loop`), or by the
    // queue's wait, instead of killing us (and, by PDEATHSIG, the job
    // with SIGKILL, unrecorded).
    let _ = sys::block_signals(&[sys::STOP_NOTE]);
    let _ = sys::block_signals(&sys::STOP_SIGNALS);
    sys::drop_callers_stop_signals();
    sys::ignore_stray_signals();
    if let Some(mask) = m.get("umask").and_then(|t| u32::from_str_radix(t, 8).ok()) {
        sys::set_callers_umask(mask);
    }
    // Only the readiness pipe and the job lock (fds 3 and 4) are ours;
    // whatever else the launcher's caller left inheritable goes.
    sys::close_from(LOCK_FD + 1);
    hold_spare_fds();
    let store = Store::resolve(m.pos(0));
    let id = m.pos(1).unwrap_or_default().to_string();
    // An id as every command checks it: never a path (`x/ID`, `ID/`).
    if !crate::store::valid_id(&id) {
        return Ok(Output::Done);
    }
    let mut job = store.job(&id);
    // Held for the supervisor's whole life: the job is not collected while
    // it is being run or its notifications delivered.
    if job.pin().is_err() {
        return Ok(Output::Done);
    }
    let mut ready = sys::adopt_fd(READY_FD).ok().map(File::from);
    let lock = match sys::adopt_fd(LOCK_FD).ok().map(File::from) {
        Some(l) => l,
        // Started by hand: take the lock ourselves or give up.
        None => match job.open_lock() {
            Some(l) if sys::try_lock_exclusive(&l).unwrap_or(false) => l,
            _ => return Ok(Output::Done),
        },
    };
    let auto_gc = m.get("gc").and_then(crate::gc::AutoGc::from_arg);
    if let Some(ms) = m.duration_ms("sink-timeout") {
        crate::notify::set_sink_timeout_ms(ms);
    }
    // Every path we use is absolute; do not pin the caller's directory.
    crate::notify::keep_caller_cwd();
    let _ = std::env::set_current_dir("/");
    let ended = supervise(&store, &job, &mut ready, lock, auto_gc);
    // The terminal state is on disk and the lock is free: whoever waits
    // on the job has its answer. What is left (a pending kill-after,
    // notifications) comes after, off its path.
    drop(ready.take());
    // Nothing more to write in the job directory unless notifications are
    // configured: let a `delete` right after the answer proceed at once.
    if ended.sinks.is_none() {
        job.unpin();
    }
    let killer = ended
        .kill_after
        .map(|k| std::thread::spawn(move || k.run()));
    crate::notify::job_ended(&job, ended.matcher, ended.sinks);
    if let Some(t) = killer {
        let _ = t.join();
    }
    Ok(Output::Done)
}

/// What the supervisor still owes once the terminal state is published.
struct Ended {
    /// The output matcher, whose queue may hold undelivered events (None
    /// if the job never ran).
    matcher: Option<Matcher>,
    /// The notification settings as they were when the terminal state was
    /// published (see `publish_terminal`), with that state: these, and
    /// only these, are delivered. None: no notification is configured.
    sinks: Option<crate::notify::Finished>,
    kill_after: Option<KillAfter>,
}

/// How many of the processes left in a `--tty` job's session at its
/// root's end are noted (`State::left_in_session`): one that lives is
/// enough, a few in case some end first.
const WITNESSES: usize = 8;

/// `--kill-after` that was still pending when the root process ended
/// (it died of the TERM, but a member of its group ignores TERM): the
/// README promises SIGKILL to the group after the grace, so the
/// supervisor stays for it.
struct KillAfter {
    at: Instant,
    pgid: u32,
    sid: u32,
    /// A `--tty` job's witnesses that its session is still its own once
    /// the root is reaped (`State::left_in_session`).
    left: Vec<sys::Witness>,
    /// The job's queue slot, held until nothing of the group is left:
    /// the queue never runs more than its slots' worth (the next job
    /// started beside a TERM-ignoring process still awaiting its KILL).
    slot: Option<crate::queue::Held>,
}

impl KillAfter {
    fn run(self) {
        loop {
            // Nothing left of the group: nothing to kill (and the number
            // may be reused).
            if sys::group_members(self.pgid, self.sid, &self.left).is_empty() {
                return;
            }
            let now = Instant::now();
            if now >= self.at {
                let _ = sys::kill_group(self.pgid, libc::SIGKILL, &self.left);
                // Gone once the kernel has delivered it (bounded: a
                // process in D state finishes its call first).
                let until = Instant::now() + Duration::from_secs(2);
                while self.slot.is_some()
                    && !sys::group_members(self.pgid, self.sid, &self.left).is_empty()
                    && Instant::now() < until
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                return;
            }
            std::thread::sleep((self.at - now).min(Duration::from_millis(100)));
        }
    }
}

fn signal(ready: &mut Option<File>, byte: u8) {
    if let Some(f) = ready.as_mut() {
        // The front-end may be gone (EPIPE): that is fine.
        let _ = f.write_all(&[byte]);
    }
}

/// Why a launch failed, recorded in `state.failure`.
struct LaunchError {
    code: &'static str,
    message: String,
}

fn fail(code: &'static str, message: String) -> LaunchError {
    LaunchError { code, message }
}

/// A job record of ours that could not be read: `code`, unless the
/// supervisor ran out of descriptors (a caller's tight `ulimit -n`,
/// which it inherits), which is no fault of the record: `spawn_failed`,
/// as when the limit stops the spawn itself. It read `meta_unreadable`
/// of an intact meta.json.
fn unreadable(code: &'static str, e: &crate::error::Error) -> LaunchError {
    if e.out_of_descriptors() {
        no_descriptor(e.to_string())
    } else {
        fail(code, e.to_string())
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The launch ran out of descriptors: the job could not be started.
fn no_descriptor(message: String) -> LaunchError {
    fail(
        "spawn_failed",
        format!("{message} (no file descriptor left: see ulimit -n)"),
    )
}

/// Run the job to its terminal state: one run, then one more for each
/// `--retry` due (a loop, so that any number of retries costs no stack).
fn supervise(
    store: &Store,
    job: &Job,
    ready: &mut Option<File>,
    lock: File,
    auto_gc: Option<crate::gc::AutoGc>,
) -> Ended {
    let (mut lock, mut auto_gc, mut retried, mut not_before) = (lock, auto_gc, 0, None);
    loop {
        match run_once(store, job, ready, lock, auto_gc, (retried, not_before)) {
            Step::Done(ended) => return *ended,
            Step::Again(l, g, at) => (lock, auto_gc, retried, not_before) = (l, g, retried + 1, at),
        }
    }
}

/// How one run ended: the job's end, or another run due (`--retry`),
/// with the lock and what is left of auto-GC handed on, and when a
/// queued job's next run may join its line (its retry delay).
enum Step {
    Done(Box<Ended>),
    Again(File, Option<crate::gc::AutoGc>, Option<Instant>),
}

/// One run of the job. `retried`: how many `--retry` runs came before
/// this one under this supervisor; `not_before`: for a queued job's
/// retry, the end of its delay (see `between_runs`).
fn run_once(
    store: &Store,
    job: &Job,
    ready: &mut Option<File>,
    lock: File,
    auto_gc: Option<crate::gc::AutoGc>,
    (retried, not_before): (u32, Option<Instant>),
) -> Step {
    // Taken before the read: if meta.json changes after it, the stamp no
    // longer matches and the end reads it again (`publish_terminal_via`).
    let stamp = job.meta_stamp();
    let meta = job.read_meta();
    let mut state = match &meta {
        Ok(meta) => job.read_state_given(meta),
        Err(_) => job.read_state(),
    }
    .unwrap_or_else(|_| State::created(&job.id));
    // A launch hands over a job that has not run (`created`: run's, a
    // start's, a restart's next run). Anything else is `_supervise` run
    // by hand on a job that has: it ran a finished job again, its logs
    // and result overwritten. Nothing is done.
    if retried == 0 && state.status() != Status::Created {
        crate::warn!(
            "job {} is {}, not created: nothing to run",
            job.id,
            state.status().as_str()
        );
        return unrun(None);
    }
    // This run's byte of the lock file, held until its end is published
    // (`let_go`) or this process dies: what a waiter on this run blocks
    // on (see `job::RUN_LOCK_BASE`). A `--retry` run adds its own byte.
    let _ = sys::try_ofd_lock(&lock, job::run_lock_byte(state.attempt()));
    let prepared = meta
        .map_err(|e| unreadable("meta_unreadable", &e))
        .and_then(|meta| prepare(job, &meta).map(|cmd| (meta, cmd)));
    let (meta, mut prepared) = match prepared {
        Ok(x) => x,
        Err(e) => return unrun(launch_failed(job, ready, &lock, state, e)),
    };
    // The stream logs exist before anyone is told the job runs (every
    // path a response prints exists, D41), and before the workload
    // starts: if they cannot be made, nothing runs at all. full.log,
    // which no response prints, is made after the caller is told: each
    // new file costs this ext4 a scan past recently freed inodes.
    let cap = meta.max_log_bytes.map(crate::logcap::Cap::new);
    let (out_log, err_log, mut gaps) = match open_stream_logs(job, cap) {
        Ok(l) => l,
        // No room (an inode, on a file system out of them) for the first
        // file the job makes: it does not run, for want of space.
        Err(e) if no_room(&e) => {
            let msg = format!("create the job's logs: {e}");
            return no_space(job, ready, &lock, state, msg);
        }
        Err(e) => {
            let msg = format!("create the job's logs: {e}");
            if out_of_descriptors(&e) {
                return unrun(launch_failed(job, ready, &lock, state, no_descriptor(msg)));
            }
            return logs_failed(job, ready, &lock, state, msg);
        }
    };
    // Room for the terminal state on a file system that the job may fill:
    // real blocks in the lock file (only ever flock'ed), given back just
    // before the terminal state is written if the disk is full then.
    let reserved = match sys::allocate(&lock, RESERVE) {
        // The caller's file-size limit (RLIMIT_FSIZE) is below the
        // reserve: reserve what it allows instead. The state file is far
        // smaller than that limit or could not be written anyway, and the
        // room kept is still room on a disk the job fills.
        Err(e) if e.raw_os_error() == Some(libc::EFBIG) => {
            match sys::file_size_limit().map(|max| max.min(RESERVE) & !4095) {
                Some(n) if n > 0 => sys::allocate(&lock, n),
                _ => Ok(()),
            }
        }
        r => r,
    };
    // A file-size limit (`ulimit -f`) below any state the job's end may
    // need, which this process could not lift for that write
    // (`publish_terminal_via`): its end could not be recorded.
    let reserved = reserved.and_then(|()| {
        if sys::could_write_file_of(STATE_ROOM) {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "the file-size limit (ulimit -f) of {} bytes is below the {STATE_ROOM} bytes kept for the job's record",
            sys::file_size_limit().unwrap_or_default()
        )))
    });
    if let Err(e) = reserved {
        // Too little room left to promise the job's end a record: it
        // does not start (a file system without fallocate runs the job
        // unreserved, as it must). The failed state is small; should a
        // partial reservation hold its room, `publish_terminal` gives it
        // back and writes again.
        if no_room(&e) {
            let msg = format!("reserve room for the job's end ({RESERVE} bytes): {e}");
            return no_space(job, ready, &lock, state, msg);
        }
        if e.raw_os_error().is_none() && e.kind() == io::ErrorKind::Other {
            return no_space(job, ready, &lock, state, e.to_string());
        }
    }
    // A queued job waits for its turn (queue.rs) here, with everything
    // but the spawn done (its command built, logs open, reserve taken),
    // so that a freed slot is followed by the spawn alone; the slot it
    // takes is held until its end is published.
    let mut queue_slot = None;
    let full_path = meta
        .full_log
        .as_ref()
        .map(PathBuf::from)
        .unwrap_or_else(|| job.path(job::FULL));
    // A queued job's caller has its answer before the wait, so the files
    // an unqueued job makes after its caller is told (full.log, the two
    // state files) are made now: when its slot frees, the start has no
    // file to create (each new inode costs this ext4 a scan, see above).
    let mut early = None;
    // On a file system nearly out of inodes, the files a job makes once
    // it runs (full.log, the two state files) are made before it starts,
    // as for a queued job: if they cannot be, it does not run at all
    // (`no_space`), rather than run and be killed for want of full.log,
    // or run with no running state on record. Elsewhere they come after
    // the caller is told, off its path (one fstatvfs decides).
    if !crate::queue::applies(&meta) && sys::inodes_below(&lock, LOW_INODES) {
        let made = open_full_log(job, &full_path, &meta, gaps.take()).and_then(|full| {
            let next = NextState::create(job, NEXT_STATE)?;
            let running = NextState::create(job, RUN_STATE).inspect_err(|_| next.discard_ref())?;
            Ok(Early {
                full,
                next: Some(next),
                running: Some(running),
            })
        });
        match made {
            Ok(e) => early = Some(e),
            Err(e) if no_room(&e) => {
                let msg = format!("make the job's files before it starts: {e}");
                return no_space(job, ready, &lock, state, msg);
            }
            Err(e) => {
                let msg = format!("create {}: {e}", full_path.display());
                return logs_failed(job, ready, &lock, state, msg);
            }
        }
    }
    // Made here, before the spawn: a queued job's files (before its wait,
    // see above), and a `--log PATH` of the caller's: it is the one
    // log that can fail for reasons of its own (a directory that cannot
    // be made, a file that may not be written), and opened after `R`, a
    // `--no-wait` caller was told `running` of a job then killed and
    // recorded `failed`.
    let queued = crate::queue::applies(&meta);
    if early.is_none() && (queued || meta.full_log.is_some()) {
        match open_full_log(job, &full_path, &meta, gaps.take()) {
            Ok(full) => {
                let made = |name| queued.then(|| NextState::create(job, name).ok()).flatten();
                early = Some(Early {
                    full,
                    next: made(NEXT_STATE),
                    running: made(RUN_STATE),
                })
            }
            Err(e) if no_room(&e) => {
                let msg = format!("create {}: {e}", full_path.display());
                return no_space(job, ready, &lock, state, msg);
            }
            Err(e) => {
                let msg = format!("create {}: {e}", full_path.display());
                return logs_failed(job, ready, &lock, state, msg);
            }
        }
    }
    if queued {
        let tell = || signal(ready, b'Q');
        match crate::queue::wait_turn(store, job, &meta, state, not_before, tell) {
            crate::queue::Turn::Go(held, st) => {
                queue_slot = Some(held);
                state = *st;
            }
            crate::queue::Turn::End(st) => {
                Early::discard(early);
                let sinks = publish_terminal(job, &lock, &st);
                signal(ready, b'T');
                crate::store::sync_file(&job.dir, crate::job::STATE);
                return unrun(sinks);
            }
        }
    }
    // Whose session the workload starts in, for a reader that finds this
    // supervisor gone before the job's `running` record (killed between
    // the spawn and that write): what is left in the session then is the
    // job's, which it kills (`observe`). In the lock file's first bytes,
    // room of ours already (its reserve); cut away with the rest at the
    // end.
    {
        use std::os::unix::fs::FileExt;
        let _ = lock.write_at(format!("{}\n", std::process::id()).as_bytes(), 0);
    }
    let mut child = match start_workload(&mut prepared) {
        Ok(c) => c,
        Err(e) => {
            Early::discard(early);
            if let Some(gone) = cwd_missing(&job_cwd(&meta)) {
                return unrun(launch_failed(job, ready, &lock, state, gone));
            }
            let prog = meta.shell_wrapper.first().cloned().unwrap_or_default();
            let mut msg = format!("spawn {prog}: {e}");
            if e.raw_os_error() == Some(libc::E2BIG) {
                let w = &prepared.work;
                // The kernel takes at most MAX_ARG_STRLEN (32 pages) in
                // one argument or variable, whatever the total: name the
                // first such string (by its name, for a variable: never
                // its value) before blaming the total.
                let long = w
                    .argv
                    .iter()
                    .map(|s| (false, s))
                    .chain(w.envp.iter().map(|s| (true, s)))
                    .find(|(_, s)| s.count_bytes() + 1 > MAX_ARG_STRLEN);
                if let Some((is_env, s)) = long {
                    let bytes = s.count_bytes();
                    let what = if is_env {
                        let b = s.to_bytes();
                        let name = &b[..b.iter().position(|&c| c == b'=').unwrap_or(b.len())];
                        format!("the variable {}", String::from_utf8_lossy(name))
                    } else if s
                        .to_bytes()
                        .windows(REAPPLY_VAR.len())
                        .any(|w| w == REAPPLY_VAR.as_bytes())
                    {
                        // Its set-up (`workload_argv`) comes first in it.
                        "one argument (the command, after the login shell's set-up)".to_string()
                    } else {
                        "one argument".to_string()
                    };
                    msg.push_str(&format!(
                        "; {what} is {bytes} bytes, more than the kernel takes in one \
                         argument or variable ({} bytes)",
                        MAX_ARG_STRLEN - 1
                    ));
                } else {
                    // Too much in all: say how much, and why it may be more
                    // than the caller gave.
                    let bytes: usize = w
                        .argv
                        .iter()
                        .chain(&w.envp)
                        .map(|s| s.count_bytes() + 1)
                        .sum();
                    msg.push_str(&format!(
                        "; the command and its environment come to {bytes} bytes, more than \
                         the kernel takes (a login-shell wrapper carries each --env and \
                         --env-file value twice)"
                    ));
                }
            }
            return unrun(launch_failed(
                job,
                ready,
                &lock,
                state,
                fail("spawn_failed", msg),
            ));
        }
    };
    // The command (its argv and a copy of the whole environment) is
    // spent: free it now, not after the job.
    let Prepared {
        work, tty, initial, ..
    } = prepared;
    drop(work);
    let started = Instant::now();
    state.started_ns = u64::try_from(crate::time::now_unix_ns()).ok();
    let pid = child.pid;
    let now = crate::time::now_ts();
    state.job.status = Some(Status::Running);
    state.job.started_at = Some(now.clone());
    state.updated_at = now;
    state.pid = Some(pid);
    state.supervised_here();
    // A job on a terminal leads its own session; any other shares ours.
    state.sid = Some(if tty.is_some() {
        pid
    } else {
        sys::session_id()
    });
    // An interactive job's stdin: the pipe's write end, or the terminal's
    // master, owned here and fed from stdin.sock (see `input`).
    let (tty_read, sink) = match &tty {
        Some(master) => (
            master.try_clone().ok().map(File::from),
            master.try_clone().ok().map(File::from),
        ),
        None => (None, child.stdin.take()),
    };
    let mut input = match sink {
        Some(sink) if meta.interactive => {
            match crate::input::Input::new(&job.dir, sink, tty.is_some(), initial) {
                Ok(i) => Some(i),
                Err(e) => {
                    Early::discard(early);
                    let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
                    let _ = sys::wait4(pid, true);
                    // No room for stdin.sock is no room, like any file the
                    // job needs (it is stopped before it could do a thing).
                    let code = if no_room(&e) {
                        "no_space"
                    } else {
                        "spawn_failed"
                    };
                    state.fail(code, format!("open the job's input channel: {e}"));
                    let sinks = publish_terminal(job, &lock, &state);
                    signal(ready, b'F');
                    return unrun(sinks);
                }
            }
        }
        _ => None,
    };
    drop(tty);
    state.pid_start_time = sys::proc_stat(pid).map(|p| p.start_time);
    // The queued state that the running one replaced: freed when this
    // run is over (dropped on return), never on the way to the start.
    let mut queued_state = None;
    let (early_full, early_next) = match early {
        Some(Early {
            full,
            next,
            running,
        }) => {
            match running.map(|r| r.commit(&state)) {
                Some(Ok(r)) => queued_state = r,
                _ => {
                    let _ = record(job, &state);
                }
            }
            (Some(full), Some(next))
        }
        None => {
            let _ = record(job, &state);
            (None, None)
        }
    };
    signal(ready, b'R');
    // The workload runs and is recorded: the next job in line may take
    // its place at the head now. Not before: its wake-up would compete
    // for the CPU with the start just made.
    if let Some(q) = queue_slot.as_mut() {
        q.started();
    }
    // Auto-GC never stands between the job and its answer (D20): it
    // starts when the caller has let go of the readiness pipe (a
    // `--no-wait` caller that has its answer) or when the terminal state
    // has been published and the caller told, whichever comes first, in
    // a process of its own at the lowest priority, and nothing waits for
    // it. A waiting caller is blocked on the pipe until `T`, so the
    // collection never competes with it for anything it needs. The next
    // launch's spare directory is made at the same moment, for the same
    // reason.
    let mut after = AfterAnswer {
        store: store.clone(),
        job_id: job.id.clone(),
        settings: auto_gc,
        spares: true,
        caller: ready.as_ref().map(|f| f.as_raw_fd()),
    };
    let opened = match early_full {
        Some(f) => Ok(f),
        None => open_full_log(job, &full_path, &meta, gaps.take()),
    };
    let full_log = match opened {
        Ok(f) => f,
        Err(e) => {
            // Nothing may run unrecorded: stop the workload, record why.
            let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
            let _ = sys::wait4(pid, true);
            state.fail(
                "log_unwritable",
                format!("create {}: {e}", full_path.display()),
            );
            let sinks = publish_terminal(job, &lock, &state);
            signal(ready, b'T');
            return unrun(sinks);
        }
    };
    let mut next_state = match early_next {
        Some(Some(n)) => Some(n),
        _ => NextState::create(job, NEXT_STATE).ok(),
    };
    // On a terminal, everything the job writes comes through the master
    // (stdout.log); its stderr pipe is a placeholder, closed at once.
    let streams = match tty_read {
        Some(master) => sys::pipe().map(|(r, w)| {
            drop(w);
            (OwnedFd::from(master), r)
        }),
        // No pipes: a terminal whose master could not be duplicated.
        None => child
            .out
            .take()
            .ok_or_else(|| io::Error::other("no descriptor left for the terminal's output")),
    };
    let (out, err) = match streams {
        Ok(pair) => pair,
        Err(e) => {
            // Out of descriptors: nothing may run unrecorded (it ran on,
            // and its supervisor left without a word).
            let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
            let _ = sys::wait4(pid, true);
            state.fail(
                "spawn_failed",
                format!("open the job's output channel: {e}"),
            );
            let sinks = publish_terminal(job, &lock, &state);
            signal(ready, b'T');
            return unrun(sinks);
        }
    };
    let mut tee = Tee {
        streams: [Stream::new(out, out_log), Stream::new(err, err_log)],
        full: FullLog::new(full_log),
        buf: vec![0u8; READ_CHUNK],
        matcher: Matcher::new(job, &meta, stamp),
        last_reads: false,
    };
    let mut rec = Recorder {
        job,
        lock: &lock,
        next: &mut next_state,
        floor: None,
    };
    let outcome = run_loop(
        &mut rec,
        &meta,
        &mut state,
        (pid, started),
        &mut tee,
        &mut input,
        &mut after,
    );
    tee.drain();
    tee.finish();
    // What was lost, taken before the input channel goes with its count.
    let output_lost = all_losses(&tee, input.as_ref().and_then(|i| i.loss()));
    if let Some(i) = input.take() {
        i.finish(&job.dir);
    }
    // A --tty job's root led its session: once it is reaped, nobody can
    // tell what is left of that session from a stranger's that took the
    // number. Unreaped, it still holds the number, so whatever lives in
    // the session now is the job's: noted, it keeps the rest reachable.
    if state.sid == Some(pid) {
        state.left_in_session = sys::session_witnesses(pid, pid, WITNESSES);
    }
    let (exit, usage) = match sys::wait4(pid, true) {
        Ok(Some((e, u))) => (e, Some(u)),
        _ => (Exit::Code(-1), None),
    };
    // Nothing of the group outlived its root (asked of the kernel, here,
    // where its number is the job's): a reader that cannot judge the
    // record's pids (`State::unseen`) then knows no process of the job
    // lives, for good, and may remove it or run it again.
    state.group_empty = Some(
        state.left_in_session.is_empty()
            && i32::try_from(pid).is_ok_and(|g| {
                sys::kill(-g, 0).is_err_and(|e| e.raw_os_error() == Some(libc::ESRCH))
            }),
    );
    state.result.record_usage(usage);
    let now = crate::time::now_ts();
    match exit {
        Exit::Code(c) => {
            state.job.status = Some(Status::Exited);
            state.result.exit_code = Some(c);
        }
        Exit::Signal(s) => {
            state.job.status = Some(Status::Killed);
            state.result.signal = Some(sys::signal_name(s));
        }
    }
    state.result.duration_ms = Some(outcome.exited_at.duration_since(started).as_millis() as u64);
    state.result.timed_out = outcome.timed_out;
    // The moment the root's end was seen, not this write's: the logs'
    // drain (D15) may have gone on for up to a second since, and
    // finished_at said that second (a job of 4 ms that started at :36
    // "finished" at :37).
    let ended_ns = crate::time::now_unix_ns() - outcome.exited_at.elapsed().as_nanos() as i128;
    state.finished_at = Some(crate::time::format_ts(
        ended_ns.div_euclid(1_000_000_000) as i64
    ));
    state.finished_ns = u64::try_from(ended_ns).ok();
    state.updated_at = now;
    state.output_lost = output_lost;
    // A `kill` or `restart` that stopped this run said so first (asked
    // only of a run that would be retried: no call on every job's end).
    let stopped = || outcome.stopped || sys::take_pending_signal(&[sys::STOP_NOTE]).is_some();
    if let Some(r) = retry_due(&meta, &state, retried).filter(|_| !stopped()) {
        // Run again: this run's matches are delivered now (its queue),
        // its collection, if not started yet, handed on; `job.finished`
        // waits for the last run.
        if let Some(n) = next_state {
            n.discard();
        }
        // This run's pipes, logs and buffer go now, not at the job's end.
        let Tee {
            matcher,
            streams,
            full,
            buf,
            ..
        } = tee;
        drop((streams, full, buf));
        matcher.finish();
        let auto_gc = after.settings.take();
        // What this run left in its group ends first, as a restart ends
        // it: SIGTERM, then SIGKILL after the job's --kill-after (0: at
        // once), and a moment for the kernel to deliver it.
        let _ = state.end_leftovers(
            libc::SIGTERM,
            Duration::from_millis(meta.kill_after_ms),
            Duration::from_secs(2),
        );
        // A `kill` or `restart` that came meanwhile (its note pending: the
        // run's root was gone, so it signalled nothing) stops the job
        // here: this run's end is the job's, and no other run starts (one
        // started, and the restart killed it, or the kill reached none).
        if sys::take_pending_signal(&[sys::STOP_NOTE]).is_some() {
            let sinks = publish_terminal(job, &lock, &state);
            let_go(&lock);
            signal(ready, b'T');
            crate::store::sync_file(&job.dir, crate::job::STATE);
            return unrun(sinks);
        }
        // A queued job lets go of its slot now: the jobs behind it may
        // have it during the delay, and its next run goes back into the
        // line (`between_runs`).
        drop(queue_slot);
        return match between_runs(job, &state, &r, meta.queue.is_some()) {
            Ok(not_before) => Step::Again(lock, auto_gc, not_before),
            Err(last) => {
                let sinks = publish_terminal(job, &lock, &last);
                let_go(&lock);
                signal(ready, b'T');
                crate::store::sync_file(&job.dir, crate::job::STATE);
                unrun(sinks)
            }
        };
    }
    let known = stamp.map(|s| (&meta, s));
    let (sinks, replaced) = publish_terminal_via(job, &lock, &state, next_state, known);
    // The queue's next job may start as soon as the end is on record:
    // before the waiters woken below can take this CPU from us, and
    // before the fsync. Unless a timeout's KILL is still due to what is
    // left of the group: then once that is gone (`KillAfter`).
    let slot_after = if outcome.kill_at.is_some() {
        queue_slot
    } else {
        drop(queue_slot);
        None
    };
    // The lock is released, then the caller told (so that whoever acts on
    // the answer, a `delete` say, finds the job free); only then is
    // durability paid for. A crash in between loses at most the rename,
    // and the next reader then finds a `running` job with a free lock:
    // supervisor_lost, never a lie.
    let_go(&lock);
    signal(ready, b'T');
    drop(ready.take());
    // Whoever was woken (the caller on the pipe, a `wait` on the lock)
    // is usually queued on this CPU behind us: let it have the CPU now,
    // not after the clean-up and the fsync below.
    std::thread::yield_now();
    if !LOCK_IS_STATE.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = lock.set_len(0);
    }
    drop(lock);
    // Now the collection may start, if the caller did not let it already.
    after.start();
    crate::store::sync_file(&job.dir, crate::job::STATE);
    // Off the path that waits: the replaced states' blocks may go now.
    drop((replaced, queued_state));
    let Tee { matcher, .. } = tee;
    Step::Done(Box::new(Ended {
        matcher: Some(matcher),
        sinks,
        kill_after: outcome.kill_at.map(|at| KillAfter {
            at,
            pgid: pid,
            // The job's own session for a --tty job (its root leads it).
            sid: state.sid.unwrap_or_else(sys::session_id),
            left: state.left_in_session.clone(),
            slot: slot_after,
        }),
    }))
}

/// A job that does not run for want of room for its files: `no_space`.
fn no_space(job: &Job, ready: &mut Option<File>, lock: &File, state: State, msg: String) -> Step {
    unrun(launch_failed(
        job,
        ready,
        lock,
        state,
        fail("no_space", msg),
    ))
}

/// A log could not be made before the workload started: nothing runs,
/// and the job ends `failed` with `log_unwritable`.
fn logs_failed(
    job: &Job,
    ready: &mut Option<File>,
    lock: &File,
    state: State,
    msg: String,
) -> Step {
    unrun(launch_failed(
        job,
        ready,
        lock,
        state,
        fail("log_unwritable", msg),
    ))
}

/// The end of a job that never ran: its failure recorded, the sinks of
/// its `job.finished` to deliver.
fn unrun(sinks: Option<crate::notify::Finished>) -> Step {
    Step::Done(Box::new(Ended {
        matcher: None,
        sinks,
        kill_after: None,
    }))
}

/// The retry policy, if `ended` is to be run again: it exited non-zero
/// on its own (not killed, not by its `--timeout`: that limit is the
/// caller's, and a run it cut short is not retried) and retries are left.
fn retry_due(meta: &Meta, ended: &State, retried: u32) -> Option<job::Retry> {
    let r = meta.retry.as_ref()?;
    let failed = ended.status() == Status::Exited
        && ended.result.exit_code.is_some_and(|c| c != 0)
        && !ended.result.timed_out;
    (failed && retried < r.times).then(|| r.clone())
}

/// Keep the run that ended (`runs::archive`), then wait out the retry
/// delay as the job: a stand-in process (this binary, `_supervise
/// --pause-ms`) leads the job's process group meanwhile, so `kill` and
/// `restart` reach it as they reach any running job. Ok: run again (for
/// a job of a queue, not before the instant given, if any). Err: the
/// job's last state (killed during the delay, or the run could not be
/// kept: then the run that ended is the result).
///
/// A job of a queue (`queued`) has let go of its slot: it is `queued`
/// from here, and its next run waits out the delay in the queue's wait
/// (`queue::wait_turn`), outside the line, then joins the line at its
/// end. Holding the slot through the delay left the queue idle with
/// nothing of the job running, only for the job to go to the back of
/// the line after it all the same (audit 26); and a job counted
/// `running` with no slot would make a queue look to run more than its
/// slots' worth. A kill meanwhile is a queued job's: `killed` without
/// another run.
fn between_runs(
    job: &Job,
    ended: &State,
    r: &job::Retry,
    queued: bool,
) -> std::result::Result<Option<Instant>, Box<State>> {
    let mut next = match crate::runs::archive(job, ended, r.keep_runs) {
        Ok(n) => n,
        Err(e) => {
            crate::warn!(
                "keep run {} of {}: {e}; not retrying",
                ended.attempt(),
                job.id
            );
            return Err(Box::new(ended.clone()));
        }
    };
    let now = crate::time::now_ts();
    next.updated_at = now;
    next.supervised_here();
    if queued {
        next.job.status = Some(Status::Queued);
        let at = (r.delay_ms > 0).then(|| Instant::now() + Duration::from_millis(r.delay_ms));
        return match job.write_state(&next, false) {
            Ok(()) => Ok(at),
            Err(_) => Err(Box::new(ended.clone())),
        };
    }
    next.job.status = Some(Status::Running);
    next.sid = Some(sys::session_id());
    if r.delay_ms == 0 {
        return match job.write_state(&next, false) {
            Ok(()) => Ok(None),
            Err(_) => Err(Box::new(ended.clone())),
        };
    }
    // Started as the workload is (its own group, dying with us), with no
    // environment: it only sleeps.
    let stand_in = sys::self_exe().and_then(|exe| {
        let null = File::options().read(true).write(true).open("/dev/null")?;
        let arg = |a: &str| CString::new(a).map_err(io::Error::other);
        let argv = [
            "_supervise",
            "--pause-ms",
            &r.delay_ms.to_string(),
            "/",
            "-",
        ]
        .into_iter()
        .map(arg)
        .collect::<io::Result<Vec<_>>>()?;
        let fd = null.as_raw_fd();
        sys::spawn_workload(&sys::Workload {
            argv: std::iter::once(exe.clone()).chain(argv).collect(),
            paths: vec![exe],
            envp: Vec::new(),
            cwd: c"/".to_owned(),
            stdio: [fd; 3],
            setup: sys::Setup::Group,
        })
    });
    let Ok(pid) = stand_in else {
        // No stand-in: wait without one (kill then finds no process).
        let _ = job.write_state(&next, false);
        std::thread::sleep(Duration::from_millis(r.delay_ms));
        return Ok(None);
    };
    next.pid = Some(pid);
    next.pid_start_time = sys::proc_stat(pid).map(|p| p.start_time);
    let _ = job.write_state(&next, false);
    match wait_out_delay(pid, Duration::from_millis(r.delay_ms)) {
        Some(sig) => {
            let now = crate::time::now_ts();
            next.job.status = Some(Status::Killed);
            next.result.signal = Some(sig);
            // This attempt never ran: no duration, as for a job killed
            // while queued.
            next.finished_at = Some(now.clone());
            next.finished_ns = u64::try_from(crate::time::now_unix_ns()).ok();
            next.updated_at = now;
            Err(Box::new(next))
        }
        None => Ok(None),
    }
}

/// Wait out a retry delay led by the stand-in `pid`. Some(signal): a
/// signal ended the stand-in first (a `kill`, or one of the stop signals
/// this supervisor got, passed on to its group as `run_loop` passes them
/// to a run's): the job ends `killed` without another run. None: the
/// delay is over; the stand-in is ended and reaped, whatever state it is
/// in. The delay is this process's clock, not the stand-in's sleep: a
/// `kill --signal STOP` froze the stand-in, and with it the job, in
/// `running` until someone continued it; and a TERM sent to this process
/// waited, blocked, until the next run had started and then killed that.
fn wait_out_delay(pid: u32, delay: Duration) -> Option<String> {
    let end = Instant::now() + delay;
    let pidfd = sys::pidfd_open(pid).ok();
    let signals = sys::signalfd(&sys::STOP_SIGNALS).ok();
    // Recorded as for a queued job killed (nothing of it runs either):
    // TERM, INT or HUP as asked, any other signal as SIGTERM (a USR1
    // read SIGUSR1, unlike the same kill of a queued job).
    let ended_by = |exit| match exit {
        Ok(Some((Exit::Signal(sig), _))) => Some(sys::signal_name(match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP => sig,
            _ => libc::SIGTERM,
        })),
        _ => None,
    };
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let mut ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        if pidfd.is_none() {
            // No pidfd (old kernel): look for its end every 20 ms.
            ms = ms.min(20);
        }
        let mut fds = Vec::with_capacity(2);
        if let Some(f) = &signals {
            fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
        }
        if let Some(p) = &pidfd {
            fds.push(sys::poll_fd(p.as_raw_fd(), sys::POLLIN));
        }
        let _ = sys::poll(&mut fds, ms);
        if let Some(sig) = signals.as_ref().and_then(sys::take_signal) {
            // As `kill` would send it: the stand-in ends by it, and the
            // look below records that.
            let _ = sys::kill_group_resuming(pid, sig, &[]);
        }
        match sys::wait4(pid, false) {
            Ok(None) => {}
            exit => return ended_by(exit),
        }
    }
    // Over: the stand-in goes (stopped or not; SIGKILL reaches both).
    // Had a signal ended it just before, that still counts.
    if let Ok(Some(exit)) = sys::wait4(pid, false) {
        return ended_by(Ok(Some(exit)));
    }
    let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
    let _ = sys::wait4(pid, true);
    None
}

/// A state file made ahead of its write (empty, 0600, in the job
/// directory, never through a symlink) and renamed over state.json when
/// it is written: one writer, write then rename, as every state write,
/// with the file's creation moved off the path that waits for it. The
/// terminal state's (`NEXT_STATE`) is made while the job runs; a queued
/// job makes its running state's (`RUN_STATE`) too while it waits.
struct NextState {
    dir: sys::Dir,
    file: File,
    name: &'static str,
}

impl NextState {
    fn create(job: &Job, name: &'static str) -> io::Result<NextState> {
        let dir = sys::Dir::open(&job.dir)?;
        let file = dir.open_file(name, sys::How::Truncate)?;
        Ok(NextState { dir, file, name })
    }

    /// Not needed after all (the job runs again): leave no file behind.
    fn discard(self) {
        self.discard_ref();
    }

    fn discard_ref(&self) {
        let _ = self.dir.unlink(self.name);
    }

    /// Write `state` and put it in place of state.json, keeping the file
    /// it replaces alive (under this file's name, or `.state.prev`) until
    /// the `Replaced` is dropped: the swap frees no blocks. On ext4 mounted
    /// with `discard` and no journal (this machine's root), freeing a
    /// block waits for the device to discard it, 0.1-3 ms, which would
    /// stand between the job's end and its waiters (and the queue's next
    /// job). The swap is one RENAME_EXCHANGE; where the file system has
    /// none (or state.json is missing), a link and a rename.
    ///
    /// The file is written through its descriptor but moved by name, so
    /// the name must still be this file (D41: nothing planted in the job
    /// directory is followed or published). If something else took it
    /// (a symlink, another file), that is removed, never followed, and
    /// the commit fails: the caller writes the state the ordinary way (a
    /// new file, then a rename), and on a full disk frees the reserve
    /// for it first (`publish_terminal_via`). Checked before the write,
    /// so that our abandoned file's blocks go back before that, and
    /// after the swap, for a name replaced in between.
    fn commit(mut self, state: &State) -> io::Result<Option<Replaced>> {
        let text = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        if !self.dir.names(self.name, &self.file) {
            self.drop_impostor();
            return Err(self.not_ours());
        }
        if let Err(e) = self.file.write_all(&text) {
            let _ = self.dir.unlink(self.name);
            return Err(e);
        }
        if self.dir.exchange(self.name, job::STATE).is_ok() {
            if !self.dir.names(job::STATE, &self.file) {
                // Swapped for something else after the check: state.json
                // now holds that, and our name the state it replaced,
                // which goes. The caller's write replaces the impostor.
                let _ = self.dir.unlink(self.name);
                return Err(self.not_ours());
            }
            return Ok(Some(Replaced {
                dir: self.dir,
                name: self.name,
            }));
        }
        // A `.state.prev` left by a supervisor that died is replaced.
        let kept = match self.dir.link(job::STATE, PREV_STATE) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let _ = self.dir.unlink(PREV_STATE);
                self.dir.link(job::STATE, PREV_STATE).is_ok()
            }
            r => r.is_ok(),
        };
        let moved = match self.dir.rename(self.name, job::STATE) {
            Ok(()) if !self.dir.names(job::STATE, &self.file) => Err(self.not_ours()),
            r => r,
        };
        if let Err(e) = moved {
            let _ = self.dir.unlink(self.name);
            if kept {
                let _ = self.dir.unlink(PREV_STATE);
            }
            return Err(e);
        }
        Ok(kept.then_some(Replaced {
            dir: self.dir,
            name: PREV_STATE,
        }))
    }
}

impl NextState {
    /// Remove whatever now holds this file's name, if it is not this file
    /// (unlink removes a symlink itself, never its target).
    fn drop_impostor(&self) {
        if self.dir.exists(self.name) && !self.dir.names(self.name, &self.file) {
            let _ = self.dir.unlink(self.name);
        }
    }

    fn not_ours(&self) -> io::Error {
        io::Error::other(format!(
            "{} in the job directory is no longer the file this supervisor made",
            self.name
        ))
    }
}

/// The state.json a state write replaced, kept (`NextState::commit`).
struct Replaced {
    dir: sys::Dir,
    name: &'static str,
}

/// Dropped off the path that waits (or on whatever path a run ends by):
/// the kept file goes, and its blocks may be freed.
impl Drop for Replaced {
    fn drop(&mut self) {
        let _ = self.dir.unlink(self.name);
    }
}

/// What a queued job makes before it waits for its turn (see `run_once`).
struct Early {
    full: Option<Sink>,
    next: Option<NextState>,
    running: Option<NextState>,
}

impl Early {
    /// The job never ran: leave no state file behind.
    fn discard(early: Option<Early>) {
        if let Some(e) = early {
            for f in [e.next, e.running].into_iter().flatten() {
                f.discard();
            }
        }
    }
}

/// What waits until the caller has its answer: the spare job directories
/// for the next launches (`store::refill_spares`), and auto-GC. Both
/// start when the caller has let go of the readiness pipe or the job's
/// answer is out, whichever is first — never before the caller has what
/// it waits for (a `--no-wait` caller still prints and exits after `R`,
/// on this CPU as often as not). Until then they cost nothing: the
/// caller's pipe is one more descriptor in the tee's poll(). The
/// directories are made at once, since the next launch may want one; the
/// collection goes to a process of its own at the lowest priority
/// (`gc::exec_auto`), which this one never waits for: a `restart` waits
/// for this process to exit, and not for a sweep of the root.
struct AfterAnswer {
    store: Store,
    /// The job this supervisor runs: never collected by its own sweep.
    job_id: String,
    settings: Option<crate::gc::AutoGc>,
    spares: bool,
    caller: Option<std::os::fd::RawFd>,
}

impl AfterAnswer {
    /// The caller's pipe, while something waits for it to go.
    fn waiting_for(&self) -> Option<std::os::fd::RawFd> {
        (self.settings.is_some() || self.spares)
            .then_some(self.caller)
            .flatten()
    }

    fn start(&mut self) {
        if std::mem::take(&mut self.spares) {
            self.store.refill_spares();
        }
        let Some(g) = self.settings.take() else {
            return;
        };
        // The guard first, here: most launches in a burst find another
        // collecting, or nothing to collect, and start no process at all.
        let started = match crate::gc::claim_or_queue(&self.store, &g) {
            None => return,
            Some(crate::gc::Auto::Sweep(claim)) => {
                spawn_collector(&self.store, &self.job_id, &g, claim.guard(), false)
            }
            Some(crate::gc::Auto::Queue(seat)) => {
                spawn_collector(&self.store, &self.job_id, &g, &seat, true)
            }
        };
        if let Err(e) = started {
            crate::warn!("auto-gc failed (best-effort): cannot start it: {e}");
        }
        // Our copy of the guard goes; the lock (or the seat) stays with
        // the collector's.
    }
}

/// Start `_gc ROOT JOB_ID --gc SPEC`, detached, the locked guard at its
/// `gc::CLAIM_FD` (`wait_turn`: the guard with its seat held, the sweep
/// to wait for the one under way). At our priority until its exec,
/// which this waits for
/// (a failure to start is said here); the sweep lowers its own priority
/// first thing (`gc::exec_auto`). Rejected: the lowest priority from
/// before the exec (a burst of launches that collect each time: 1.14x
/// its time without auto-GC, against 1.16x): the wait for the exec then
/// waited for an idle CPU, and a supervisor that started a collection
/// mid-run drained no output and recorded no end meanwhile (audit).
fn spawn_collector(
    store: &Store,
    id: &str,
    g: &crate::gc::AutoGc,
    guard: &File,
    wait_turn: bool,
) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let spec = g.to_arg();
    let mut words: Vec<&[u8]> = vec![
        b"agent-exec",
        b"_gc",
        store.root.as_os_str().as_bytes(),
        id.as_bytes(),
        b"--gc",
        spec.as_bytes(),
    ];
    if wait_turn {
        words.push(b"--wait-turn");
    }
    let argv = sys::argv(&words)?;
    let keep = [(guard.as_raw_fd(), crate::gc::CLAIM_FD)];
    sys::spawn_detached(&sys::self_exe()?, &argv, &keep)
}

/// The end is published: let go of the job lock and of the run bytes,
/// so that every waiter wakes before the caller is told.
fn let_go(lock: &File) {
    let _ = sys::unlock(lock);
    let _ = sys::ofd_unlock_from(lock, job::RUN_LOCK_BASE);
}

/// The terminal state went into the lock file, now state.json (a file
/// system out of inodes, `publish_terminal_via`): the file is no longer
/// ours to cut back.
static LOCK_IS_STATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Below this many free inodes, a job's files are all made before it
/// starts (see `supervise`): it makes at most a handful while it runs.
const LOW_INODES: u64 = 64;

/// Bytes reserved in the lock file for the terminal state.
const RESERVE: u64 = 64 * 1024;

/// The largest file the job's record may need, for a caller's file-size
/// limit to leave room for (a terminal state is a few KiB at most).
const STATE_ROOM: u64 = 16 * 1024;

/// Write the terminal state, holding the notification guard (an OFD lock
/// on byte 0 of the job lock file, which `notify set` takes too): the
/// notification settings read here are exactly those saved before the
/// terminal state became visible, so a `notify set` accepted while the
/// job ran is delivered and one that lands after is not (no sink runs
/// for it). On a full disk the reserved blocks are given back and the
/// write tried once more: the exit code survives a full disk.
///
/// For an end other than a run's (a launch that failed, a job killed or
/// failed while queued or between `--retry` runs), the reserve is given
/// back here, still holding the lock: only a run's end leaves that to
/// after its waiters are told (`run_once`). Kept, it stayed for good,
/// and gc counted it as the job's bytes.
fn publish_terminal(job: &Job, lock: &File, state: &State) -> Option<crate::notify::Finished> {
    let sinks = publish_terminal_via(job, lock, state, None, None).0;
    if !LOCK_IS_STATE.load(std::sync::atomic::Ordering::SeqCst) {
        let _ = lock.set_len(0);
    }
    sinks
}

/// `publish_terminal` through a state file made in advance (`NextState`):
/// the completion path then creates no file, which on this ext4 costs a
/// scan past recently freed inodes (a tenth to a third of a millisecond).
fn publish_terminal_via(
    job: &Job,
    lock: &File,
    state: &State,
    next: Option<NextState>,
    known: Option<(&Meta, job::MetaStamp)>,
) -> (Option<crate::notify::Finished>, Option<Replaced>) {
    let guard = sys::ofd_lock(lock, 0).is_ok();
    // The meta.json read at the start, if it is still the one in place:
    // one lstat instead of a read and a parse before the waiters wake.
    let sinks = match known {
        Some((meta, stamp)) if job.meta_stamp() == Some(stamp) => Some(meta.clone()),
        _ => job.read_meta().ok(),
    };
    // With sinks for `job.finished`, the record says it is owed until
    // delivered (`notify::job_ended` clears it): a supervisor killed while
    // delivering left it lost for good, and a reader now sends it.
    let owed = sinks
        .as_ref()
        .and_then(|m| m.notification.as_ref())
        .is_some_and(|n| n.notify_command.is_some() || n.notify_file.is_some());
    // Said either way: a state carried over from an earlier run must not
    // keep a debt that this one does not have. Copied only to change it
    // (the end of every job passes here).
    let marked;
    let published = state;
    let state = if state.finished_owed == owed && state.finished_by.is_none() {
        state
    } else {
        marked = State {
            finished_owed: owed,
            finished_by: None,
            ..state.clone()
        };
        &marked
    };
    // The job's output is final: the caller's file-size limit (`ulimit
    // -f`), which its logs kept to, must not keep its end from being
    // recorded (a state larger than the limit failed with EFBIG, and the
    // job read supervisor_lost, its exit code lost). Put back before any
    // sink starts: sinks run with the caller's limits.
    let lifted = sys::lift_file_size_limit();
    let mut replaced = None;
    let prepared = match next {
        Some(n) => n.commit(state).map(|r| replaced = r),
        None => Err(io::Error::from(io::ErrorKind::NotFound)),
    };
    if prepared.is_err() {
        if let Err(e) = record(job, state) {
            crate::warn!("write terminal state: {e}; freeing the reserved space and retrying");
            let _ = lock.set_len(0);
            if let Err(e) = record(job, state) {
                // Bytes were not what was missing: an inode for the new
                // file was (a file system out of inodes, since the files
                // made in advance could not be). The record goes into the
                // lock file, renamed to state.json, as a reader records a
                // lost supervisor's end: an ended job needs no lock file,
                // and those blocked on this one wake as it is let go.
                if e.is_no_room() || sys::fs_full(lock) {
                    match crate::observe::into_lock_file(job, lock, state) {
                        Ok(()) => LOCK_IS_STATE.store(true, std::sync::atomic::Ordering::SeqCst),
                        Err(e) => crate::warn!("write terminal state into the lock file: {e}"),
                    }
                }
            }
        }
    }
    drop(lifted);
    if guard {
        let _ = sys::ofd_unlock(lock, 0);
    }
    (crate::notify::finished(sinks, published), replaced)
}

/// How many descriptors the supervisor keeps in reserve: a write of
/// state.json opens two at once (the job's directory, the temporary file).
const SPARE_FDS: usize = 2;

/// Descriptors (of /dev/null) held so that the job's record can still be
/// written when the process has run out of them (a low `ulimit -n`; a
/// `--tty` job holds several more than a piped one): `record` lets them
/// go for its write. Without them the supervisor could neither record
/// the job running nor record why it stopped it, and its caller was told
/// `created` about a job that had run.
static SPARES: std::sync::Mutex<Vec<File>> = std::sync::Mutex::new(Vec::new());

/// Take the spare descriptors (again), as many as the process can spare.
fn hold_spare_fds() {
    let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
    while spares.len() < SPARE_FDS {
        match File::open("/dev/null") {
            Ok(f) => spares.push(f),
            Err(_) => break,
        }
    }
}

/// Write state.json; if that fails, once more with the spare descriptors
/// freed for the attempt (taken back after it).
fn record(job: &Job, state: &State) -> Result<()> {
    job.write_state(state, false).or_else(|_| {
        SPARES.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let written = job.write_state(state, false);
        hold_spare_fds();
        written
    })
}

/// Record a launch that failed; the returned settings are the sinks its
/// `job.finished` goes to (as `publish_terminal`).
fn launch_failed(
    job: &Job,
    ready: &mut Option<File>,
    lock: &File,
    mut state: State,
    e: LaunchError,
) -> Option<crate::notify::Finished> {
    state.fail(e.code, e.message);
    // The answer names the logs: they exist, empty, when it is read
    // (D41), as they do for a job that ran.
    let made = crate::launch::create_logs(job).and_then(|()| {
        job.read_meta()
            .and_then(|meta| crate::launch::create_full_log(job, &meta))
    });
    if let Err(e) = made {
        crate::warn!("logs of {}: {e}", job.id);
    }
    let sinks = publish_terminal(job, lock, &state);
    signal(ready, b'F');
    crate::store::sync_file(&job.dir, crate::job::STATE);
    sinks
}

/// The workload's command, and for an interactive job what its input
/// needs: the terminal's master (`--tty`), the launch-time stdin bytes.
struct Prepared {
    work: sys::Workload,
    stdin: StdinFor,
    tty: Option<OwnedFd>,
    initial: Option<File>,
}

/// What the workload reads on its stdin (off a terminal).
enum StdinFor {
    /// A pipe whose write end this supervisor keeps (`--interactive`).
    Pipe,
    /// The job's stdin bytes, read straight from their file.
    File(File),
    /// /dev/null.
    Null,
}

/// A started workload: its pid and the supervisor's ends of its pipes
/// (none on a terminal, where the master carries everything).
struct Child {
    pid: u32,
    stdin: Option<File>,
    out: Option<(OwnedFd, OwnedFd)>,
}

/// Linux's MAX_ARG_STRLEN: 32 pages of 4 KiB, the longest one argument
/// or environment string execve takes, its NUL included.
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Start `p`'s workload: pipes for its output (and input, when
/// interactive) made here, the child's ends closed once it has exec'd.
fn start_workload(p: &mut Prepared) -> io::Result<Child> {
    if p.tty.is_some() {
        let pid = sys::spawn_workload(&p.work)?;
        return Ok(Child {
            pid,
            stdin: None,
            out: None,
        });
    }
    let (in_r, in_w) = match std::mem::replace(&mut p.stdin, StdinFor::Null) {
        StdinFor::Pipe => {
            let (r, w) = sys::pipe()?;
            (r, Some(w))
        }
        StdinFor::File(f) => (OwnedFd::from(f), None),
        StdinFor::Null => (OwnedFd::from(File::open("/dev/null")?), None),
    };
    let (out_r, out_w) = sys::pipe()?;
    let (err_r, err_w) = sys::pipe()?;
    p.work.stdio = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let pid = sys::spawn_workload(&p.work)?;
    Ok(Child {
        pid,
        stdin: in_w.map(File::from),
        out: Some((out_r, err_r)),
    })
}

/// Where the job runs: its recorded cwd, or for a job of 0.2.3's whose
/// meta.json has none (optional there), the directory of the command
/// that launched it, as 0.2.3 ran it (not `/`, where the supervisor
/// goes).
fn job_cwd(meta: &Meta) -> String {
    meta.cwd
        .clone()
        .or_else(crate::notify::caller_cwd)
        .unwrap_or_else(|| "/".to_string())
}

/// `cwd_not_found` when the job's working directory is not there to run
/// in (one code for every way; the message says which). Asked when the
/// command is prepared, and again when its spawn fails: a directory
/// removed while the job was queued failed the chdir, which read as
/// `spawn_failed` blaming the wrapper.
fn cwd_missing(cwd: &str) -> Option<LaunchError> {
    let why = match std::fs::metadata(cwd) {
        // Search permission on the directory itself is chdir's too: the
        // workload's chdir then failed, reported as `spawn_failed` (as
        // if the wrapper could not run), while the same refusal one
        // directory up was `cwd_not_found`.
        Ok(m) if m.is_dir() && !sys::can_enter(Path::new(&cwd)) => {
            Some("cannot be entered (permission denied)")
        }
        Ok(m) if m.is_dir() => None,
        Ok(_) => Some("is not a directory"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("not found"),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            Some("not found (a part of its path is not a directory)")
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Some("cannot be reached (permission denied on a directory above it)")
        }
        Err(_) => Some("cannot be reached"),
    };
    why.map(|why| fail("cwd_not_found", format!("working directory {why}: {cwd}")))
}

/// Build the workload's command from the stored definition.
fn prepare(job: &Job, meta: &Meta) -> std::result::Result<Prepared, LaunchError> {
    let cwd = job_cwd(meta);
    if let Some(e) = cwd_missing(&cwd) {
        return Err(e);
    }
    // What the caller set: env files, then --env (later wins).
    let mut set: Vec<(String, String)> = Vec::new();
    for path in &meta.env_files {
        set.extend(crate::launch::read_env_file(path).map_err(|e| fail("env_file_unreadable", e))?);
    }
    let env_path = job.path(job::ENV);
    // lstat: a dangling symlink in its place fails the launch as any
    // symlink there does (followed, it read as no env file: the job ran
    // without its --env values).
    if std::fs::symlink_metadata(&env_path).is_ok() {
        let vars: Vec<String> =
            job::read_json(&env_path).map_err(|e| unreadable("env_unreadable", &e))?;
        set.extend(vars.iter().map(|kv| split_kv(kv)));
    } else if !meta.env_vars_runtime.is_empty() {
        // A job 0.2.3 created: its values are in its meta.json.
        set.extend(meta.env_vars_runtime.iter().map(|kv| split_kv(kv)));
    } else if !meta.env_keys.is_empty() {
        // The job was defined with --env values and their only copy is
        // gone: running it without them would be running another job.
        return Err(fail(
            "env_unreadable",
            format!(
                "{} is missing: the job's --env values ({}) are gone",
                env_path.display(),
                meta.env_keys.join(", ")
            ),
        ));
    }
    let stdin_bytes = match &meta.stdin_file {
        None => None,
        Some(name) => {
            let p = if Path::new(name).is_absolute() {
                PathBuf::from(name)
            } else {
                job.dir.join(name)
            };
            Some(sys::open_read(&p).map_err(|e| {
                // Missing because its source could not be read when the
                // job was defined: say so in the caller's words.
                let why = (e.kind() == std::io::ErrorKind::NotFound)
                    .then(|| sys::open_read(&job.dir.join(job::STDIN_UNREADABLE)).ok())
                    .flatten()
                    .and_then(|f| {
                        let mut text = String::new();
                        f.take(4096).read_to_string(&mut text).ok().map(|_| text)
                    });
                fail(
                    "stdin_unreadable",
                    why.unwrap_or_else(|| format!("open {}: {e}", p.display())),
                )
            })?)
        }
    };
    // Interactive: a pipe this supervisor keeps (the given bytes go in
    // first, through `input`); otherwise the given bytes, or nothing.
    let (stdin, initial) = match (meta.interactive && meta.tty.is_none(), stdin_bytes) {
        (true, f) => (StdinFor::Pipe, f),
        (false, Some(f)) if meta.tty.is_none() => (StdinFor::File(f), None),
        (false, f) => (StdinFor::Null, f),
    };
    let tty = match meta.tty {
        Some([cols, rows]) => Some(
            sys::open_pty(cols, rows)
                .map_err(|e| fail("spawn_failed", format!("open a pseudo-terminal: {e}")))?,
        ),
        None => None,
    };
    let wrapper = if meta.shell_wrapper.is_empty() {
        crate::launch::default_wrapper()
    } else {
        meta.shell_wrapper.clone()
    };
    // A login shell runs the profile after our environment is in place,
    // and Debian's /etc/profile resets PATH: re-apply what the caller
    // gave after it (D36).
    let login = is_login_shell(&wrapper);
    // The caller's PATH, inherited and not given, travels to the script
    // in a variable of its own, as bytes: one that is not UTF-8 keeps its
    // place in front of the profile's entries all the same.
    let caller_path = (login && meta.inherit_env && !set.iter().any(|(k, _)| k == "PATH"))
        .then(|| std::env::var_os("PATH"))
        .flatten();
    let reapply = login.then(|| {
        let back = (program_name(&wrapper), Some(cwd.as_str()));
        reapply_parts(reapply_script(&set, caller_path.is_some(), back))
    });
    let parts = reapply.as_ref().map_or(0, Vec::len);
    let argv = workload_argv(&wrapper, &meta.command, parts);
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| fail("spawn_failed", "empty command".to_string()))?;
    // The wrapper found on the job's PATH here, with a stat per directory,
    // rather than by the child trying execve in each (9 failed execs on a
    // PATH of shims and tool directories before /usr/bin). argv[0] stays
    // the name as given.
    let job_path = set
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            meta.inherit_env
                .then(|| std::env::var("PATH").ok())
                .flatten()
        });
    let bad = |what: &str| fail("spawn_failed", format!("{what} holds a NUL byte"));
    let c = |v: &[u8], what: &str| CString::new(v).map_err(|_| bad(what));
    let (mut found, anywhere) = candidates(prog, job_path.as_deref(), Path::new(&cwd));
    // The wrapper is the caller's choice, not the job's: one the job's
    // PATH lacks (`--env PATH=/my/tools`) is looked for on the caller's
    // too, so that the job runs with the PATH it was given instead of
    // failing to start. A caller with no PATH (`env -i`) searches the
    // default one, as its own launch of `sh` would (`candidates`).
    if !anywhere {
        let own = std::env::var("PATH").ok();
        if let (alt, true) = candidates(prog, own.as_deref(), Path::new(&cwd)) {
            found = alt;
        }
    }
    let paths = found
        .iter()
        .map(|p| c(p.as_os_str().as_bytes(), "the command"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let argv = std::iter::once(prog)
        .chain(args)
        .map(|a| c(a.as_bytes(), "an argument"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    // The environment as std's Command builds it: inherited (unless
    // cleared), then each setting in order, sorted by name.
    let mut env: std::collections::BTreeMap<OsString, OsString> = if meta.inherit_env {
        std::env::vars_os().collect()
    } else {
        Default::default()
    };
    // On a terminal, TERM says which, unless the caller set it; and the
    // terminal's size is its own (--tty-size): the caller's COLUMNS and
    // LINES, which programs read before asking the terminal, would
    // contradict it (the job's own --env or env file still sets them).
    if tty.is_some() {
        if !set.iter().any(|(k, _)| k == "TERM") {
            env.insert("TERM".into(), "xterm-256color".into());
        }
        env.remove(std::ffi::OsStr::new("COLUMNS"));
        env.remove(std::ffi::OsStr::new("LINES"));
    }
    for (k, v) in set {
        env.insert(k.into(), v.into());
    }
    for (i, part) in reapply.into_iter().flatten().enumerate() {
        env.insert(reapply_var(i).into(), part.into());
    }
    if let Some(p) = caller_path {
        env.insert(CALLER_PATH_VAR.into(), p);
    }
    let envp = env
        .into_iter()
        .map(|(mut k, v)| {
            k.push("=");
            k.push(v);
            c(k.as_bytes(), "the environment")
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let (tty, setup) = match tty {
        // The child makes its own session on the terminal.
        Some((master, slave)) => (Some(master), sys::Setup::Terminal(slave)),
        None => (None, sys::Setup::Group),
    };
    let work = sys::Workload {
        paths,
        argv,
        envp,
        cwd: c(cwd.as_bytes(), "the working directory")?,
        stdio: [0, 1, 2],
        setup,
    };
    Ok(Prepared {
        work,
        stdin,
        tty,
        initial,
    })
}

/// The paths the child tries, in order, for `prog`: execvp's search
/// (each PATH entry, an empty one meaning the working directory; musl's
/// default PATH when there is none). Leading absolute entries with no
/// executable file of that name are passed over here, a stat each, rather
/// than by the child trying execve in each (9 failed execs on a PATH of
/// shims and tool directories before /usr/bin): the usual start is one
/// execve. A relative entry (an empty one too) names a directory of the
/// job's `cwd`, which the child enters first: it is looked at there, and
/// stays relative. With nothing found, every entry is left to the child,
/// which then reports what execvp would, and the flag says so (false:
/// found on no entry; a relative entry used to count as found, so a
/// PATH ending in `:` never let the wrapper be looked for elsewhere).
fn candidates(prog: &str, path: Option<&str>, cwd: &Path) -> (Vec<PathBuf>, bool) {
    if prog.contains('/') {
        return (vec![PathBuf::from(prog)], true);
    }
    let dirs: Vec<&str> = path
        .unwrap_or("/usr/local/bin:/bin:/usr/bin")
        .split(':')
        .collect();
    let all: Vec<PathBuf> = dirs.iter().map(|d| Path::new(d).join(prog)).collect();
    let absent = |c: &PathBuf| !is_executable(&cwd.join(c));
    let skip = all.iter().take_while(|c| absent(c)).count();
    if skip == all.len() {
        (all, false)
    } else {
        (all[skip..].to_vec(), true)
    }
}

/// A regular file someone may execute.
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The variable that carries `reapply_script` to the login shell (its
/// first part; the others are `REAPPLY_VAR_1`, `_2`, … see
/// `reapply_parts`); the shell unsets them before it runs the command,
/// so the job never sees them. Environment variables, not arguments:
/// values may be secrets, and argv is public (D22).
pub const REAPPLY_VAR: &str = "__AGENT_EXEC_ENV";

/// The variable that carries the caller's PATH to `reapply_script`
/// (unset by the script before anything else runs).
pub const CALLER_PATH_VAR: &str = "__AGENT_EXEC_PATH";

/// The most bytes of `reapply_script` one variable carries. The kernel
/// refuses (E2BIG) any single argv or environment string longer than
/// MAX_ARG_STRLEN (32 pages, 128 KiB), however small the whole is: a
/// script of many small values must not be one string. Half of that
/// leaves room for the name and any page size.
const REAPPLY_PART: usize = 64 * 1024;

/// The name of part `i` of the script (see `reapply_parts`).
pub(crate) fn reapply_var(i: usize) -> String {
    if i == 0 {
        REAPPLY_VAR.to_string()
    } else {
        format!("{REAPPLY_VAR}_{i}")
    }
}

/// `script` cut into parts of at most `REAPPLY_PART` bytes, in order
/// (at least one). Cut anywhere, even inside a quoted value: the shell
/// joins the parts again before it evaluates them (`workload_argv`).
pub(crate) fn reapply_parts(script: String) -> Vec<String> {
    if script.len() <= REAPPLY_PART {
        return vec![script];
    }
    let mut parts = Vec::new();
    let mut rest = script.as_str();
    while !rest.is_empty() {
        // Back to a character boundary (at most 3 bytes): each part stays
        // a valid string; the bytes joined are the script's all the same.
        let mut cut = rest.len().min(REAPPLY_PART);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (part, tail) = rest.split_at(cut);
        parts.push(part.to_string());
        rest = tail;
    }
    parts
}

/// Is `wrapper` a POSIX-family shell started as a login shell (`-l`,
/// `--login`, or a flag cluster such as `-lc`)? Only those run a
/// profile that can undo the caller's environment, and only those read
/// the sh-syntax script of `reapply_script`.
pub fn is_login_shell(wrapper: &[String]) -> bool {
    let Some((_, flags)) = wrapper.split_first() else {
        return false;
    };
    let name = program_name(wrapper);
    let posix = [
        "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh",
    ];
    posix.contains(&name)
        && flags.iter().any(|f| {
            f == "--login"
                || (f.starts_with('-')
                    && !f.starts_with("--")
                    && f[1..].bytes().all(|b| b.is_ascii_alphabetic())
                    && f.contains('l'))
        })
}

/// The file name of the program the wrapper runs in the end: its first
/// word's, or for `env [OPTION]... [NAME=VALUE]... PROGRAM ...`,
/// PROGRAM's (`fish` for `env fish -c`, whose `exec "$@"` fish cannot
/// parse: it said so and exited 0, the job's command never run). None
/// when that is not plain to see (`env -S`).
fn program_run(wrapper: &[String]) -> Option<&str> {
    fn name(w: &str) -> Option<&str> {
        Path::new(w).file_name().and_then(|n| n.to_str())
    }
    let mut words = wrapper.iter().map(String::as_str);
    let first = name(words.next()?)?;
    if first != "env" {
        return Some(first);
    }
    while let Some(w) = words.next() {
        match w {
            "-u" | "--unset" | "-C" | "--chdir" => {
                words.next();
            }
            "--" => return words.next().and_then(name),
            // The program is the first word of the string env splits.
            "-S" | "--split-string" => {
                return words.next()?.split_whitespace().next().and_then(name)
            }
            _ if w.starts_with("--split-string=") => {
                return w["--split-string=".len()..]
                    .split_whitespace()
                    .next()
                    .and_then(name)
            }
            _ if w.starts_with("--") => {}
            // A cluster of short options (`-iu X`): one that takes a
            // value (u, C) takes the rest of the cluster, or the next
            // word; S splits the rest (or the next word) into the words
            // the program begins.
            _ if w.starts_with('-') && w.len() > 1 => {
                for (i, c) in w.char_indices().skip(1) {
                    let rest = &w[i + c.len_utf8()..];
                    match c {
                        'u' | 'C' => {
                            if rest.is_empty() {
                                words.next();
                            }
                            break;
                        }
                        'S' => {
                            let split = if rest.is_empty() { words.next()? } else { rest };
                            return split.split_whitespace().next().and_then(name);
                        }
                        _ => {}
                    }
                }
            }
            _ if w.contains('=') => {}
            _ => return name(w),
        }
    }
    None
}

/// The wrapper program's file name (`bash` for `/bin/bash -lc`; empty
/// when there is none, or it is not UTF-8).
pub fn program_name(wrapper: &[String]) -> &str {
    wrapper
        .first()
        .and_then(|p| Path::new(p).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or_default()
}

/// A POSIX sh script, evaluated by the login shell `shell` (its program
/// name) after its profile: export every value the caller gave (`--env`,
/// `--env-file`) again, with `caller_path` (PATH inherited and not
/// given: its value is in `CALLER_PATH_VAR`) rebuild PATH as the
/// caller's entries followed by those the profile added that are not
/// among them, and go back to the directory `back`, if given, should the
/// profile have left it (a `cd` in ~/.profile). Values are
/// single-quoted, so the script expands nothing of theirs.
///
/// Nothing the profile did can end the shell here: a variable it made
/// read-only (`readonly PATH`, a hardened profile's `readonly TMOUT`)
/// keeps the profile's value. An export that fails is a special
/// built-in's error, which ends a POSIX shell (dash: the job never ran),
/// unless run through `command`; zsh's `command` runs programs only,
/// and there an error ends just the `eval` it is in. PATH is rebuilt
/// only if it can be assigned. Names the shell itself gives a meaning to
/// (`shell_special`) are not applied again: they reach the command
/// through the environment the shell was given, as without a profile.
pub fn reapply_script(
    set: &[(String, String)],
    caller_path: bool,
    (shell, back): (&str, Option<&str>),
) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let b = builtin(shell);
    let t = test_builtin(shell);
    let guarded = |line: &str| match shell {
        // The text `eval` reads is parsed then, aliases and all: a
        // profile's `alias export=echo` printed the values (audit).
        "zsh" => format!("{b}eval {} 2>/dev/null", quote(&format!("{b}{line}"))),
        "bash" => format!("{b}{line} 2>/dev/null"),
        _ => format!("\\command {line} 2>/dev/null"),
    };
    let mut out = String::new();
    let mut seen: Vec<&str> = Vec::new();
    // Last one wins, as in the environment itself.
    for (k, v) in set.iter().rev() {
        if seen.contains(&k.as_str()) || !is_shell_name(k) || shell_special(k) {
            continue;
        }
        seen.push(k);
        out.push_str(&guarded(&format!("export {k}={}", quote(v))));
        out.push('\n');
    }
    if caller_path && !seen.contains(&"PATH") {
        out.push_str(&format!(
            "if {}; then\n__AGENT_EXEC_P=$PATH\nPATH=${CALLER_PATH_VAR}\n{}",
            guarded("export PATH=\"$PATH\""),
            "while {t} -n \"$__AGENT_EXEC_P\" ]; do\n\
             __AGENT_EXEC_D=${__AGENT_EXEC_P%%:*}\n\
             case $__AGENT_EXEC_P in *:*) __AGENT_EXEC_P=${__AGENT_EXEC_P#*:} ;; *) __AGENT_EXEC_P= ;; esac\n\
             if {t} -n \"$__AGENT_EXEC_D\" ]; then\n\
             case :$PATH: in *:\"$__AGENT_EXEC_D\":*) ;; *) PATH=${PATH:+$PATH:}$__AGENT_EXEC_D ;; esac\n\
             fi\n\
             done\n"
                .replace("{t}", t)
        ));
        out.push_str(&format!(
            "{b}unset __AGENT_EXEC_P __AGENT_EXEC_D\n{}\nfi\n{b}unset {CALLER_PATH_VAR}\n",
            guarded("export PATH")
        ));
    }
    // The workload started in `cwd` (canonical), so the shell's PWD is
    // it (or a path with symlinks to it, which `-ef` tells) unless the
    // profile moved: only then is there a `cd`, which sets PWD and
    // OLDPWD. The built-in `cd`, never a function the profile defined
    // under that name (rvm's, a prompt hook's), which could print into
    // the job's output or refuse (see `builtin`). A directory gone
    // meanwhile is the job's end: its command never runs anywhere else.
    if let Some(cwd) = back {
        let cd = match shell {
            "zsh" | "bash" => format!("{b}cd"),
            _ => "\\command cd".to_string(),
        };
        let cwd = quote(cwd);
        out.push_str(&format!(
            "{t} \"$PWD\" = {cwd} ] || {t} \"$PWD\" -ef {cwd} ] || {cd} -- {cwd} || exit\n"
        ));
    }
    out
}

/// How the set-up calls a shell built-in so that nothing the profile
/// defined stands in for it: bash and zsh let a function (and an alias)
/// take a built-in's name, even `eval` or `export`, and their `builtin`
/// bypasses both; a POSIX shell finds a special built-in (`eval`, `set`,
/// `unset`, `export`) before any function, and a backslash keeps an
/// alias of that name from being expanded. The profile's functions and
/// aliases printed into the job's output, refused to run its command,
/// or were handed the set-up itself, values and all.
fn builtin(shell: &str) -> &'static str {
    match shell {
        // Itself behind a backslash: a profile's `alias builtin=echo`
        // (zsh expands aliases in scripts; bash with expand_aliases)
        // printed the set-up, values and all, into the job's output.
        "bash" | "zsh" => "\\builtin ",
        _ => "\\",
    }
}

/// How the set-up calls `[`, a regular built-in, past a profile's
/// function of that name (one that never failed kept the PATH loop
/// going for good): `builtin` in bash and zsh, `command` elsewhere.
fn test_builtin(shell: &str) -> &'static str {
    match shell {
        "bash" | "zsh" => "\\builtin [",
        _ => "\\command [",
    }
}

/// A variable the shell gives a meaning of its own, which assigning it
/// would change (IFS: how the command's words split; zsh's UID, EUID,
/// GID, EGID and USERNAME: which user the shell runs as) or which the
/// shell holds read-only (bash's PPID, SHELLOPTS, BASHOPTS, ...).
fn shell_special(k: &str) -> bool {
    [
        "IFS",
        "PPID",
        "UID",
        "EUID",
        "GID",
        "EGID",
        "USERNAME",
        "SHELLOPTS",
        "BASHOPTS",
        "BASHPID",
        "BASH_VERSINFO",
        "BASH_ARGV0",
        "HISTCMD",
        "LINENO",
        "RANDOM",
        "SRANDOM",
        "SECONDS",
        "EPOCHSECONDS",
        "EPOCHREALTIME",
        "OPTIND",
        "OPTARG",
    ]
    .contains(&k)
}

/// A name `export` accepts: letters, digits and `_`, not starting with a
/// digit. Other names stay in the environment as given; no profile sets
/// them.
fn is_shell_name(k: &str) -> bool {
    !k.is_empty()
        && !k.as_bytes()[0].is_ascii_digit()
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The shell variable holding `$-` while the set-up of `workload_argv`
/// runs quiet.
const FLAGS_VAR: &str = "__AGENT_EXEC_F";

/// One argument: a shell string handed to the wrapper. Two or more: the
/// wrapper runs `exec "$@"` (fish, which binds the words after `-c
/// SCRIPT` to `$argv` and has no `"$@"`: `exec $argv`), so the recorded
/// pid and exit status are the workload's own (the login shell
/// initialises, then replaces itself). `reapply`: the number of parts of
/// `reapply_script` in the environment (0: none); their values, joined
/// in order, are evaluated first. Only their names are in argv.
pub fn workload_argv(wrapper: &[String], command: &[String], reapply: usize) -> Vec<String> {
    let mut argv = wrapper.to_vec();
    let names: Vec<String> = (0..reapply).map(reapply_var).collect();
    let prelude = if names.is_empty() {
        String::new()
    } else {
        let joined: String = names.iter().map(|n| format!("${{{n}}}")).collect();
        // The user asked to trace their command, not the set-up, which
        // holds every value, secrets too: it runs with -x (trace) and -v
        // (bash echoes what `eval` reads) off, each turned on again after
        // it only if it was on, -x last, so that the next line traced is
        // the command. The two steps that turn them off run with stderr
        // on /dev/null, where their own trace goes: nothing of the set-up
        // is traced (bash -v still echoes the line as it reads it: names,
        // never values).
        let v = FLAGS_VAR;
        // Nor does it run with the profile's -e (`set -e` in .profile,
        // `bash -elc`) or -u (a profile that unsets PATH): a value the
        // shell refuses (read-only, zsh's `status`) ended the shell
        // there, before the command; those are put back the same way.
        let b = builtin(program_name(wrapper));
        // On the command's own first line: the shell's line numbers in
        // its messages (and $LINENO) are then the command's.
        format!(
            "{{ {v}=$-; {b}set +xveu; }} 2>/dev/null; {b}eval \"{joined}\"; {b}unset {}; \
             case ${v} in *e*) {b}set -e;; esac; \
             case ${v} in *u*) {b}set -u;; esac; \
             case ${v} in *v*) {b}set -v;; esac; \
             case ${v} in *x*) {b}unset {v}; {b}set -x;; *) {b}unset {v};; esac; ",
            names.join(" ")
        )
    };
    if command.len() == 1 {
        argv.push(format!("{prelude}{}", command[0]));
    } else {
        // bash and zsh take options after `exec` (`-c` clears the
        // environment, `-a NAME` renames the program): a first word that
        // starts with a dash is the program, as for any other shell.
        let run = if program_run(wrapper) == Some("fish") {
            "exec $argv"
        } else if matches!(program_run(wrapper), Some("bash" | "zsh")) {
            "\\builtin exec -- \"$@\""
        } else if !prelude.is_empty() {
            // After a profile, behind a backslash as the set-up's own
            // built-ins: a profile's `alias exec=...` ran in place of
            // the command (dash expands aliases in scripts).
            "\\exec \"$@\""
        } else {
            "exec \"$@\""
        };
        argv.push(format!("{prelude}{run}"));
        argv.push("--".to_string());
        argv.extend(command.iter().cloned());
    }
    argv
}

fn split_kv(kv: &str) -> (String, String) {
    match kv.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (kv.to_string(), String::new()),
    }
}

/// One setting of an env file (`parse_env_file`).
#[derive(Debug, PartialEq, Eq)]
pub struct EnvLine {
    /// Its line in the file, from 1.
    pub line: usize,
    pub name: String,
    /// None: a bare `NAME`, which passes the caller's value on.
    pub value: Option<String>,
}

/// `NAME=VALUE` and bare `NAME` lines, each optionally after `export `
/// (so a file a shell sources reads the same here); blank lines and `#`
/// comments skipped; the indentation before a name ignored. The value is
/// everything after the first `=` as written, spaces at either end
/// included (as `--env 'A=  x  '` keeps them), without the line ending
/// (`\n`, and a `\r` before it: a CRLF file). No quoting. A name that is
/// empty or holds white space is refused, with its line number: such a
/// line (`B = x`, `=x`) was not meant to set a variable of that name.
pub fn parse_env_file(text: &str) -> std::result::Result<Vec<EnvLine>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let line = match raw.strip_suffix('\n') {
            Some(l) => l.strip_suffix('\r').unwrap_or(l),
            None => raw,
        };
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let body = match body.strip_prefix("export") {
            Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start_matches([' ', '\t']),
            _ => body,
        };
        let (name, value) = match body.split_once('=') {
            Some((k, v)) => (k, Some(v.to_string())),
            None => (body, None),
        };
        if name.is_empty() {
            return Err(format!(
                "line {}: a variable name is required before '='",
                i + 1
            ));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!(
                "line {}: the name '{name}' holds white space (write NAME=VALUE, no space before '=')",
                i + 1
            ));
        }
        out.push(EnvLine {
            line: i + 1,
            name: name.to_string(),
            value,
        });
    }
    Ok(out)
}

/// A log cap and the gap records' file, for full.log.
type CapFor = (crate::logcap::Cap, File);

/// Create (truncate) the stream logs in the job directory, never through
/// a symlink. Capped (`cap`): the gap records first (a reader that finds
/// a log finds them, see `logcap`), and the logs readable too (the cuts
/// copy within them); the gap records' file is returned for full.log.
fn open_stream_logs(
    job: &Job,
    cap: Option<crate::logcap::Cap>,
) -> io::Result<(Sink, Sink, Option<CapFor>)> {
    use crate::logcap;
    // A job directory of 0.2.3's is 0755: 0700 before its logs fill,
    // and its meta.json, 0644, 0600 (it may hold the --env values; ours
    // is 0600 from the start, and not opened again for this).
    let legacy = sys::make_dir_private(&job.dir);
    let dir = sys::Dir::open(&job.dir)?;
    if legacy {
        dir.make_private(job::META);
    }
    let Some(cap) = cap else {
        let out = dir.open_file(job::STDOUT, sys::How::Truncate)?;
        let err = dir.open_file(job::STDERR, sys::How::Truncate)?;
        return Ok((Sink::new(out), Sink::new(err), None));
    };
    let gaps = logcap::create(&dir)?;
    let open = |name: &str, slot: usize| -> io::Result<Sink> {
        let f = dir.open_file(name, sys::How::Open)?;
        f.set_len(0)?;
        let c = logcap::Capper::new(cap, gaps.try_clone()?, slot);
        Ok(Sink::capped(f, c))
    };
    let out = open(job::STDOUT, logcap::STDOUT)?;
    let err = open(job::STDERR, logcap::STDERR)?;
    Ok((out, err, Some((cap, gaps))))
}

/// Create (truncate) full.log: in the job directory, never through a
/// symlink, or where `--log` said (a path the user chose, made as asked);
/// capped like the stream logs; None with `--no-full-log`. Either way
/// only a regular file: a FIFO or device there is refused without
/// blocking the open (`sys::regular_for_writing`).
fn open_full_log(
    job: &Job,
    full: &Path,
    meta: &Meta,
    gaps: Option<CapFor>,
) -> io::Result<Option<Sink>> {
    if meta.no_full_log {
        return Ok(None);
    }
    // Capped, the file is read too (the cuts copy within it).
    let how = if gaps.is_some() {
        sys::How::Open
    } else {
        sys::How::Truncate
    };
    let f = if full == job.path(job::FULL) {
        sys::Dir::open(&job.dir)?.open_file(job::FULL, how)?
    } else {
        // Never into another job's directory (or .queues): `--log
        // <root>/<id>/stdout.log` overwrote that job's output, and
        // state.json its record (`notify::open_outside_root`: looked at
        // before anything is made, a dangling link's target included,
        // and again at the file opened).
        let root = job.dir.parent().unwrap_or(Path::new("/"));
        let mkdirs = |parent: &Path| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| crate::store::mkdir_error(parent, e))
        };
        // Emptied only once it is known to be neither a FIFO nor in the
        // root (below), not by the open.
        let open = |p: &Path, create: bool| {
            fs::OpenOptions::new()
                .read(how == sys::How::Open)
                .write(true)
                .create_new(create)
                .mode(0o600)
                .custom_flags(libc::O_NONBLOCK)
                .open(p)
        };
        use crate::notify::Outside;
        let f = match crate::notify::open_outside_root(full, root, &mkdirs, &open) {
            Ok(f) => f,
            Err(Outside::Inside(why)) => {
                return Err(io::Error::new(io::ErrorKind::PermissionDenied, why))
            }
            Err(Outside::Mkdir(e)) => return Err(e),
            Err(Outside::Open(e)) => return Err(sys::nonblocking_open_error(e)),
        };
        let f = sys::regular_for_writing(f)?;
        if how == sys::How::Truncate {
            f.set_len(0)?;
        }
        f
    };
    if how == sys::How::Open {
        f.set_len(0)?;
    }
    Ok(Some(match gaps {
        Some((cap, gaps)) => Sink::capped(
            f,
            crate::logcap::Capper::new(cap, gaps, crate::logcap::FULL),
        ),
        None => Sink::new(f),
    }))
}

struct Outcome {
    exited_at: Instant,
    timed_out: bool,
    /// A stop signal sent to the supervisor was passed on to the job.
    stopped: bool,
    /// A `--kill-after` SIGKILL not yet sent when the root exited.
    kill_at: Option<Instant>,
}

/// What the job could not store so far: its logs', then its input's
/// (stdin.log, `Input::loss`), in that order.
fn all_losses(tee: &Tee, stdin: Option<job::OutputLoss>) -> Vec<job::OutputLoss> {
    let mut lost = tee.losses();
    lost.extend(stdin);
    lost
}

/// Where `run_loop` records the running job: its directory, and the lock
/// file whose reserve (`RESERVE`) pays for that record on a full disk.
struct Recorder<'a> {
    job: &'a Job,
    lock: &'a File,
    /// The terminal state's file, made while the job runs: the record of
    /// last resort on a file system out of inodes (`losses`).
    next: &'a mut Option<NextState>,
    /// What the reserve may shrink to for running-state writes, once one
    /// has failed: half of it; the other half stays for the terminal
    /// state.
    floor: Option<u64>,
}

/// How much of the reserve one running-state write that failed gives
/// back: room for the state file and the next one's, no more. A log
/// that still takes its stream (another has failed) may fill what is
/// left of it; the next write then has a slice of its own.
const RUNNING_SLICE: u64 = RESERVE / 8;

impl Recorder<'_> {
    /// Record the running state at once with what has been lost so far
    /// (`output_lost`), so that every response about the running job
    /// says so, not only the end's. Best effort, as progress writes; but
    /// a loss usually means a full disk, where the write itself needs a
    /// block: when it fails, a slice of the reserve is given back and the
    /// write tried again, as long as half of the reserve is left.
    fn losses(&mut self, state: &mut State, lost: Vec<job::OutputLoss>) {
        state.output_lost = lost;
        state.updated_at = crate::time::now_ts();
        if record(self.job, state).is_ok() {
            return;
        }
        // Less than the whole reserve when the file-size limit cut it.
        let held = self.lock.metadata().map_or(0, |m| m.len()).min(RESERVE);
        let floor = *self.floor.get_or_insert(held / 2);
        if held > floor {
            let _ = self
                .lock
                .set_len(held.saturating_sub(RUNNING_SLICE).max(floor));
            match record(self.job, state) {
                Err(e) if e.is_no_room() => {}
                _ => return,
            }
        }
        // No inode left for a new state file (blocks given back are no
        // help then): the file made for the terminal state takes this
        // record, and the state it replaces goes at once, its inode back
        // for the writes that follow. The end then writes as it does on a
        // file system out of inodes (at worst into the lock file). The
        // running state said nothing of the loss until the end.
        if let Some(n) = self.next.take() {
            let _ = n.commit(state);
        }
    }
}

/// Tee output until the root child exits; enforce timeout, kill-after
/// and progress refreshes with poll timeouts. What is lost (a log that
/// stops taking its stream, input stdin.log cannot record) is recorded
/// in the running state as it happens (`Recorder::losses`).
fn run_loop(
    rec: &mut Recorder,
    meta: &Meta,
    state: &mut State,
    (pid, started): (u32, Instant),
    tee: &mut Tee,
    input: &mut Option<crate::input::Input>,
    after: &mut AfterAnswer,
) -> Outcome {
    let pidfd = sys::pidfd_open(pid).ok();
    // SIGTERM, SIGINT or SIGHUP sent to the supervisor (a `kill` of the
    // wrong pid, a container's stop, a logout) is passed on to the job's
    // group, as `kill` would send it: the job ends the way it answers,
    // and that is recorded, instead of the supervisor dying and the job
    // with it by SIGKILL, `supervisor_lost`.
    let signals = sys::signalfd(&sys::STOP_SIGNALS).ok();
    let mut stopped = false;
    let ms = Duration::from_millis;
    let mut timeout_at = (meta.timeout_ms > 0).then(|| started + ms(meta.timeout_ms));
    let mut kill_at: Option<Instant> = None;
    let every = ms(meta.progress_every_ms);
    let mut progress_at = (meta.progress_every_ms > 0).then(|| started + every);
    let mut timed_out = false;
    // Once the job has run for `REST_AFTER_MS`, the loop's next wait
    // drops the program's pages (`sys::poll_at_rest`): from then on only
    // the code and data the loop itself touches are resident again. Not
    // at once: a job that ends sooner (most commands) would have its
    // end handled by code faulted back in page by page, on the path of
    // everyone waiting for it.
    let rest_at = started + ms(REST_AFTER_MS);
    let mut pages_dropped = false;
    let job = rec.job;
    // The logs whose losses the running state lists (`Tee::lossy`).
    let mut lossy = 0;
    loop {
        let now = Instant::now();
        // A root that ended by itself just before its time is no timeout
        // (recorded `timed_out` with its own exit 0): its end is taken
        // below, as any other.
        if timeout_at.is_some_and(|t| t <= now) && sys::has_exited(pid).is_ok_and(|gone| gone) {
            timeout_at = None;
        }
        if timeout_at.is_some_and(|t| t <= now) {
            timeout_at = None;
            timed_out = true;
            let _ = sys::kill_group_resuming(pid, libc::SIGTERM, &[]);
            if meta.kill_after_ms > 0 {
                kill_at = Some(now + ms(meta.kill_after_ms));
            } else {
                let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
            }
        }
        if kill_at.is_some_and(|t| t <= now) {
            kill_at = None;
            let _ = sys::kill_group(pid, libc::SIGKILL, &[]);
        }
        if let Some(t) = progress_at.filter(|t| *t <= now) {
            state.updated_at = crate::time::now_ts();
            // The counts of bytes lost grow between the writes of losses.
            if !state.output_lost.is_empty() {
                state.output_lost = all_losses(tee, input.as_ref().and_then(|i| i.loss()));
            }
            let _ = job.write_state(state, false);
            progress_at = Some(t + every);
        }
        let next = [
            timeout_at,
            kill_at,
            progress_at,
            input.as_ref().and_then(|i| i.next_deadline()),
        ]
        .into_iter()
        .flatten()
        .min();
        let mut wait_ms = next.map_or(-1, |t| {
            t.saturating_duration_since(now)
                .as_millis()
                .clamp(1, i32::MAX as u128) as i32
        });
        if pidfd.is_none() {
            // No pidfd (old kernel): look for the exit every 20 ms.
            wait_ms = if wait_ms < 0 { 20 } else { wait_ms.min(20) };
        }
        let rest = !pages_dropped && rest_at <= now;
        if !pages_dropped && !rest {
            let left = rest_at
                .saturating_duration_since(now)
                .as_millis()
                .clamp(1, i32::MAX as u128) as i32;
            wait_ms = if wait_ms < 0 { left } else { wait_ms.min(left) };
        }
        let mut fds = Vec::with_capacity(3);
        for s in tee.streams.iter().filter(|s| s.open) {
            fds.push(sys::poll_fd(s.fd.as_raw_fd(), sys::POLLIN));
        }
        if let Some(i) = input.as_ref() {
            i.poll_fds(&mut fds);
        }
        // A caller that has its answer and lets go of the readiness pipe
        // (POLLERR on our end: events 0) lets auto-GC start.
        let caller = after.waiting_for();
        if let Some(fd) = caller {
            fds.push(sys::poll_fd(fd, 0));
        }
        if let Some(f) = &signals {
            fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
        }
        // Last: `exited` below looks for it there.
        if let Some(p) = &pidfd {
            fds.push(sys::poll_fd(p.as_raw_fd(), sys::POLLIN));
        }
        if rest {
            pages_dropped = true;
            let _ = sys::poll_at_rest(&mut fds, wait_ms);
        } else {
            let _ = sys::poll(&mut fds, wait_ms);
        }
        if let Some(fd) = caller {
            let gone = fds.iter().any(|f| f.fd == fd && f.revents != 0);
            if gone {
                after.start();
            }
        }
        if let Some(f) = &signals {
            if fds.iter().any(|p| p.fd == f.as_raw_fd() && p.revents != 0) {
                while let Some(sig) = sys::take_signal(f) {
                    // Not a run to `--retry`: it was stopped on purpose.
                    stopped = true;
                    let _ = sys::kill_group_resuming(pid, sig, &[]);
                }
            }
        }
        if let Some(i) = input.as_mut() {
            // Input that stdin.log could not take is on record before its
            // sender is answered.
            i.step(|stdin| rec.losses(state, all_losses(tee, Some(stdin))));
        }
        let ready_streams: Vec<bool> = {
            let mut it = fds.iter();
            tee.streams
                .iter()
                .map(|s| s.open && it.next().is_some_and(|p| p.revents != 0))
                .collect()
        };
        for (i, ready) in ready_streams.into_iter().enumerate() {
            if ready {
                tee.read_once(i);
            }
        }
        if tee.lossy() != lossy {
            lossy = tee.lossy();
            rec.losses(
                state,
                all_losses(tee, input.as_ref().and_then(|i| i.loss())),
            );
        }
        let exited = match &pidfd {
            Some(p) => fds
                .last()
                .is_some_and(|f| f.fd == p.as_raw_fd() && f.revents != 0),
            None => sys::has_exited(pid).unwrap_or(true),
        };
        if exited {
            return Outcome {
                exited_at: Instant::now(),
                timed_out,
                stopped,
                kill_at,
            };
        }
    }
}

/// Position of the first `\n`, a word at a time.
fn find_newline(h: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let mut i = 0;
    while let Some(word) = h.get(i..i + 8) {
        let mut w8 = [0u8; 8];
        w8.copy_from_slice(word);
        let w = u64::from_le_bytes(w8) ^ NL;
        if w.wrapping_sub(LO) & !w & HI != 0 {
            break;
        }
        i += 8;
    }
    h[i..].iter().position(|&b| b == b'\n').map(|p| p + i)
}

struct Stream {
    fd: File,
    log: Sink,
    partial: Vec<u8>,
    open: bool,
}

/// A log file that records, instead of ignoring, a failed write: after
/// the first failure (ENOSPC, EIO, ...) nothing more is written, so the
/// log stays an exact prefix of the stream (never a stream with a hole),
/// and every byte not written is counted for the terminal state.
struct Sink {
    f: File,
    lost: Option<(io::Error, u64)>,
    /// `--max-log-bytes`: cuts the file back as it grows (`logcap`).
    cap: Option<crate::logcap::Capper>,
}

impl Sink {
    fn new(f: File) -> Sink {
        Sink {
            f,
            lost: None,
            cap: None,
        }
    }

    fn capped(f: File, cap: crate::logcap::Capper) -> Sink {
        Sink {
            f,
            lost: None,
            cap: Some(cap),
        }
    }

    /// The job has ended: a capped log is cut to its exact size.
    fn finish(&mut self) {
        if let (Some(c), None) = (self.cap.as_mut(), self.lost.as_ref()) {
            if let Err(e) = c.finish(&mut self.f) {
                self.lost = Some((e, 0));
            }
        }
    }

    /// Whether `write_ahead` may pass over bytes (a capped log, cut
    /// already): only then is the backlog worth asking the kernel for.
    fn may_skip(&self) -> bool {
        self.lost.is_none() && self.cap.as_ref().is_some_and(|c| c.may_skip())
    }

    /// `write`, told that at least `follow` more bytes will come after
    /// `bytes`: a capped log may drop them unwritten (`Capper::skip`).
    fn write_ahead(&mut self, bytes: &[u8], follow: u64) {
        if self.lost.is_none() {
            if let Some(c) = self.cap.as_mut() {
                match c.skip(&mut self.f, bytes, follow) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => {
                        self.lost = Some((e, bytes.len() as u64));
                        return;
                    }
                }
            }
        }
        self.write(bytes)
    }

    fn write(&mut self, mut bytes: &[u8]) {
        if let Some((_, n)) = &mut self.lost {
            *n += bytes.len() as u64;
            return;
        }
        // Bytes appended and not yet counted by the log's cap.
        let mut uncounted = 0u64;
        while !bytes.is_empty() {
            let e = match self.f.write(bytes) {
                Ok(0) => io::Error::from_raw_os_error(libc::ENOSPC),
                Ok(n) => {
                    bytes = &bytes[n..];
                    uncounted += n as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            // A capped log out of room: cut back now, and go on if that
            // made room (each cut frees what the tail had outgrown).
            if let (true, Some(c)) = (no_room(&e), self.cap.as_mut()) {
                match c.cut_for_room(&mut self.f, std::mem::take(&mut uncounted)) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => {
                        self.lost = Some((e, bytes.len() as u64));
                        return;
                    }
                }
            }
            self.lost = Some((e, bytes.len() as u64));
            return;
        }
        if let Some(c) = self.cap.as_mut() {
            // A cut that fails leaves the log as it is (a prefix of the
            // stream, with or without a complete gap): nothing more goes
            // in, as after a failed write.
            if let Err(e) = c.wrote(&mut self.f, uncounted) {
                self.lost = Some((e, 0));
            }
        }
    }

    fn loss(&self, stream: &str) -> Option<job::OutputLoss> {
        let (e, n) = self.lost.as_ref()?;
        Some(job::OutputLoss::new(stream, *n, e))
    }
}

impl Stream {
    fn new(fd: OwnedFd, log: Sink) -> Stream {
        let _ = sys::set_nonblocking(fd.as_raw_fd());
        sys::set_pipe_size(fd.as_raw_fd(), PIPE_SIZE);
        Stream {
            fd: File::from(fd),
            log,
            partial: Vec::new(),
            open: true,
        }
    }
}

/// Bytes of a full.log prefix: `YYYY-MM-DDTHH:MM:SSZ [STDOUT] `.
const PREFIX: usize = 30;
/// full.log's write buffer: room for the longest line piece with its
/// prefix and newline, so a valid line never bypasses it.
const FULL_BUF: usize = PREFIX + MAX_LINE + 1;

/// full.log: `<ts> [STDOUT] <line>` per line, assembled in one fixed
/// buffer and written when the next line would not fit and after every
/// read. Rejected: handing the kernel two iovecs per line with writev,
/// which copies nothing in user space but pays the kernel's per-segment
/// user copy twice a line: a 200 MB tee of 101-byte lines took 429 ms
/// that way and 331 ms this way (with `copy_short`).
struct FullLog {
    /// None: `--no-full-log`.
    f: Option<Sink>,
    prefix: [[u8; PREFIX]; 2],
    sec: i64,
    buf: Box<[u8]>,
    len: usize,
    /// Bytes known to follow what is flushed now (the pipes' backlog
    /// after the current read; 0 outside one): see `Sink::write_ahead`.
    follow: u64,
}

impl FullLog {
    fn new(f: Option<Sink>) -> FullLog {
        let mut prefix = [[b' '; PREFIX]; 2];
        prefix[0][20..].copy_from_slice(b" [STDOUT] ");
        prefix[1][20..].copy_from_slice(b" [STDERR] ");
        FullLog {
            f,
            prefix,
            sec: i64::MIN,
            buf: vec![0u8; FULL_BUF].into_boxed_slice(),
            len: 0,
            follow: 0,
        }
    }

    /// The prefixes carry the current second.
    fn refresh_clock(&mut self) {
        let now = crate::time::now_unix();
        if now != self.sec {
            self.sec = now;
            let mut ts = [0u8; 20];
            crate::time::write_ts(&mut ts, now);
            for p in &mut self.prefix {
                p[..20].copy_from_slice(&ts);
            }
        }
    }

    /// One line of stream `stream`, without its newline; `utf8` says it
    /// is known to be valid, else it is checked (and made valid) here.
    fn line(&mut self, stream: usize, line: &[u8], utf8: bool) {
        if self.f.is_none() {
            return;
        }
        let need = PREFIX + line.len() + 1;
        if (utf8 || std::str::from_utf8(line).is_ok()) && need <= self.buf.len() {
            if self.len + need > self.buf.len() {
                self.flush();
            }
            let at = self.len;
            self.buf[at..at + PREFIX].copy_from_slice(&self.prefix[stream]);
            copy_short(&mut self.buf[at + PREFIX..at + need - 1], line);
            self.buf[at + need - 1] = b'\n';
            self.len = at + need;
            return;
        }
        // Invalid bytes become U+FFFD (three bytes each, so the line may
        // outgrow the buffer): converted piece by piece as it is copied,
        // never into a second, larger copy.
        let prefix = self.prefix[stream];
        self.put(&prefix);
        for chunk in line.utf8_chunks() {
            self.put(chunk.valid().as_bytes());
            if !chunk.invalid().is_empty() {
                self.put(
                    char::REPLACEMENT_CHARACTER
                        .encode_utf8(&mut [0; 4])
                        .as_bytes(),
                );
            }
        }
        self.put(b"\n");
    }

    /// Append `bytes`, writing the buffer out whenever it fills.
    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = (self.buf.len() - self.len).min(bytes.len());
            copy_short(&mut self.buf[self.len..self.len + n], &bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }

    /// Write what is pending.
    fn flush(&mut self) {
        if self.len > 0 {
            if let Some(f) = self.f.as_mut() {
                f.write_ahead(&self.buf[..self.len], self.follow);
            }
            self.len = 0;
        }
    }
}

/// `dst.copy_from_slice(src)` for the short slices full.log is made of.
/// musl's memcpy starts a `rep movs` for every call, which cost a fifth
/// of the supervisor's time at two calls per 101-byte line; 16-byte
/// block moves (the last one overlapping) do the same in a few cycles.
pub fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if n < 16 {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        return;
    }
    let mut i = 0;
    while i + 16 <= n {
        dst[i..i + 16].copy_from_slice(&src[i..i + 16]);
        i += 16;
    }
    dst[n - 16..n].copy_from_slice(&src[n - 16..n]);
}

struct Tee {
    streams: [Stream; 2],
    full: FullLog,
    buf: Vec<u8>,
    /// Output-match: sees every emitted line or piece of either stream.
    matcher: Matcher,
    /// The drain's last reads (`read_buffered`): what the pipes hold then
    /// is not read, so a capped log may not pass over bytes for its sake.
    last_reads: bool,
}

impl Tee {
    /// One read from stream `i`. Returns false when nothing was read.
    fn read_once(&mut self, i: usize) -> bool {
        self.read_once_n(i) > 0
    }

    /// One read from stream `i`: how many bytes it took (an interrupted
    /// read counts as 1, to be tried again).
    fn read_once_n(&mut self, i: usize) -> usize {
        let n = {
            let s = &mut self.streams[i];
            match s.fd.read(&mut self.buf) {
                Ok(0) => {
                    s.open = false;
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
                Err(_) => {
                    s.open = false;
                    0
                }
            }
        };
        if n == 0 {
            self.flush_partial(i);
            self.matcher.end_batch();
            self.full.flush();
            return 0;
        }
        // What the pipes hold now is read, and logged, after these bytes
        // (full.log takes at least a byte for each): a capped log in a
        // flood need not write what that will push out of its tail.
        let backlog = |s: &Stream| sys::bytes_buffered(s.fd.as_raw_fd()).unwrap_or(0) as u64;
        let may = !self.last_reads;
        let full_skips = may && self.full.f.as_ref().is_some_and(Sink::may_skip);
        let own = if full_skips || may && self.streams[i].log.may_skip() {
            backlog(&self.streams[i])
        } else {
            0
        };
        self.streams[i].log.write_ahead(&self.buf[..n], own);
        if full_skips {
            let other = &self.streams[1 - i];
            self.full.follow = own + if other.open { backlog(other) } else { 0 };
        }
        self.full.refresh_clock();
        // After the read, before matching: a config saved before these
        // bytes were written applies to them.
        self.matcher.refresh();
        self.split_lines(i, n);
        self.matcher.end_batch();
        // full.log is as current as the stream logs after every read.
        self.full.flush();
        self.full.follow = 0;
        n
    }

    fn split_lines(&mut self, i: usize, n: usize) {
        let Tee {
            streams,
            full,
            buf,
            matcher,
            ..
        } = self;
        let s = &mut streams[i];
        let mut chunk = &buf[..n];
        // One search over the whole chunk instead of one per line: lines
        // that lie wholly inside it are tested only if it may match.
        let scan = matcher.scan_chunk(i, chunk);
        // Likewise one UTF-8 validation: a line ending before the first
        // invalid byte is valid (newlines are character boundaries).
        let valid_upto = match std::str::from_utf8(chunk) {
            Ok(_) => n,
            Err(e) => e.valid_up_to(),
        };
        let mut offset = 0;
        while let Some(pos) = find_newline(chunk) {
            let line = &chunk[..pos];
            if s.partial.is_empty() {
                let utf8 = offset + pos <= valid_upto;
                if utf8 && line.len() <= MAX_LINE {
                    // The common case: straight from the read buffer.
                    full.line(i, line, true);
                    if scan {
                        matcher.line(i, line);
                    }
                } else {
                    emit_pieces(full, (matcher, scan), i, line, utf8);
                }
            } else {
                push_partial(&mut s.partial, line, |p| {
                    emit_pieces(full, (matcher, true), i, p, false)
                });
                emit_pieces(full, (matcher, true), i, &s.partial, false);
                s.partial.clear();
            }
            chunk = &chunk[pos + 1..];
            offset += pos + 1;
        }
        push_partial(&mut s.partial, chunk, |p| {
            emit_pieces(full, (matcher, true), i, p, false)
        });
    }

    fn flush_partial(&mut self, i: usize) {
        let s = &mut self.streams[i];
        if !s.partial.is_empty() {
            self.full.refresh_clock();
            emit_pieces(
                &mut self.full,
                (&mut self.matcher, true),
                i,
                &s.partial,
                false,
            );
            s.partial.clear();
        }
    }

    /// Read what the pipes hold now; then give descendants a short grace.
    /// Every byte in a pipe when the job's process ended is read, whatever
    /// a descendant writes to the other one: the streams take turns, a
    /// read each (stream by stream, a background `yes` on stdout kept the
    /// reads on stdout for the whole grace, and the stderr the process had
    /// written before it ended was lost, with the job still `exited`), and
    /// at the bound what each pipe holds at that moment is read too.
    fn drain(&mut self) {
        let end = Instant::now() + DRAIN_MAX;
        loop {
            // Bounded: a descendant that never stops writing must not
            // keep us here.
            loop {
                let mut read = false;
                for i in 0..2 {
                    if self.streams[i].open && Instant::now() < end {
                        read |= self.read_once(i);
                    }
                }
                if !read {
                    break;
                }
            }
            let now = Instant::now();
            if self.streams.iter().all(|s| !s.open) {
                return;
            }
            if now >= end {
                self.read_buffered();
                return;
            }
            let ms = DRAIN_IDLE.min(end - now).as_millis().max(1) as i32;
            let mut fds: Vec<sys::PollFd> = self
                .streams
                .iter()
                .filter(|s| s.open)
                .map(|s| sys::poll_fd(s.fd.as_raw_fd(), sys::POLLIN))
                .collect();
            if sys::poll(&mut fds, ms).unwrap_or(0) == 0 {
                return;
            }
        }
    }

    /// Read what each pipe holds now, and no more than that (a writer
    /// that goes on is not waited for): past the drain's bound, the bytes
    /// written before it are still the job's.
    fn read_buffered(&mut self) {
        // Every byte an earlier pass-over counted on is read here (the
        // pipes are FIFOs); what comes after is not, so none of these
        // reads passes over bytes (a background writer's flood left an
        // 8 KiB tail where the cap kept N/2).
        self.last_reads = true;
        for i in 0..2 {
            let mut left = match self.streams[i].open {
                true => sys::bytes_buffered(self.streams[i].fd.as_raw_fd()).unwrap_or(0),
                false => 0,
            };
            while left > 0 && self.streams[i].open {
                match self.read_once_n(i) {
                    0 => break,
                    n => left = left.saturating_sub(n),
                }
            }
        }
    }

    /// Which logs have stopped taking their stream, one bit each (stdout,
    /// stderr, full.log): checked after every read, so no list is made.
    fn lossy(&self) -> u8 {
        let full = self.full.f.as_ref().is_some_and(|f| f.lost.is_some());
        u8::from(self.streams[0].log.lost.is_some())
            | u8::from(self.streams[1].log.lost.is_some()) << 1
            | u8::from(full) << 2
    }

    /// What could not be stored, per log.
    fn losses(&self) -> Vec<job::OutputLoss> {
        [
            self.streams[0].log.loss("stdout"),
            self.streams[1].log.loss("stderr"),
            self.full.f.as_ref().and_then(|f| f.loss("full")),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Flush partial lines and buffers: after this the logs are complete.
    fn finish(&mut self) {
        self.flush_partial(0);
        self.flush_partial(1);
        self.full.flush();
        for s in &mut self.streams {
            s.log.finish();
        }
        if let Some(f) = self.full.f.as_mut() {
            f.finish();
        }
    }
}

/// Add `bytes` to the unterminated line held in `partial`, handing each
/// piece that is complete to `emit`: pieces are the line's consecutive
/// blocks of at most MAX_LINE, each ending on a character boundary (the
/// start of a character a block would cut begins the next one,
/// `whole_chars_end`), and a full block waits for the next byte (a line
/// of exactly MAX_LINE is one piece, wherever the reads split it). So
/// `partial` never holds more than one piece, whatever a read brings.
fn push_partial(partial: &mut Vec<u8>, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
    use crate::observe::whole_chars_end;
    while !bytes.is_empty() {
        if partial.len() == MAX_LINE {
            let end = whole_chars_end(partial);
            emit(&partial[..end]);
            partial.drain(..end);
        }
        if partial.is_empty() && bytes.len() > MAX_LINE {
            let end = whole_chars_end(&bytes[..MAX_LINE]);
            emit(&bytes[..end]);
            bytes = &bytes[end..];
            continue;
        }
        if partial.capacity() < MAX_LINE {
            partial.reserve_exact(MAX_LINE - partial.len());
        }
        let take = (MAX_LINE - partial.len()).min(bytes.len());
        partial.extend_from_slice(&bytes[..take]);
        bytes = &bytes[take..];
    }
}

/// Write a line of stream `i` to full.log, and to the
/// output matcher when `check` (false: its chunk cannot match), split
/// into pieces of at most MAX_LINE.
fn emit_pieces(
    full: &mut FullLog,
    (matcher, check): (&mut Matcher, bool),
    i: usize,
    line: &[u8],
    utf8: bool,
) {
    if line.len() <= MAX_LINE {
        full.line(i, line, utf8);
        if check {
            matcher.line(i, line);
        }
        return;
    }
    // Pieces end on character boundaries (`whole_chars_end`), but the
    // line may hold invalid UTF-8: each is checked.
    let mut rest = line;
    while !rest.is_empty() {
        let end = match rest.len() > MAX_LINE {
            true => crate::observe::whole_chars_end(&rest[..MAX_LINE]),
            false => rest.len(),
        };
        let (piece, more) = rest.split_at(end);
        full.line(i, piece, false);
        if check {
            matcher.line(i, piece);
        }
        rest = more;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_lines_go_out_in_max_line_pieces() {
        // However the reads split a line, its pieces are its consecutive
        // MAX_LINE blocks, the last one sent when the line ends.
        let line: Vec<u8> = (0..3 * MAX_LINE + 5).map(|i| (i % 251) as u8).collect();
        let expect: Vec<&[u8]> = line.chunks(MAX_LINE).collect();
        for split in [
            1,
            7,
            MAX_LINE - 1,
            MAX_LINE,
            MAX_LINE + 1,
            2 * MAX_LINE,
            100_000,
        ] {
            let mut partial = Vec::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for read in line.chunks(split) {
                push_partial(&mut partial, read, |p| got.push(p.to_vec()));
                assert!(partial.len() <= MAX_LINE);
                assert!(partial.capacity() <= MAX_LINE, "split {split}");
            }
            got.push(std::mem::take(&mut partial));
            assert_eq!(got, expect, "split {split}");
        }
        // Exactly MAX_LINE bytes read in two parts: one piece.
        let mut partial = Vec::new();
        let mut got = 0;
        push_partial(&mut partial, &line[..MAX_LINE / 2], |_| got += 1);
        push_partial(&mut partial, &line[MAX_LINE / 2..MAX_LINE], |_| got += 1);
        assert_eq!((got, partial.len()), (0, MAX_LINE));
    }

    #[test]
    fn pieces_of_a_long_line_never_cut_a_character() {
        // 100000 x "€" (3 bytes): MAX_LINE is no multiple of 3, so fixed
        // blocks would cut one at every piece's end.
        let line = "€".repeat(100_000).into_bytes();
        for split in [1, 2, 5, MAX_LINE - 1, MAX_LINE, MAX_LINE + 1, 100_000] {
            let mut partial = Vec::new();
            let mut got: Vec<Vec<u8>> = Vec::new();
            for read in line.chunks(split) {
                push_partial(&mut partial, read, |p| got.push(p.to_vec()));
                assert!(partial.len() <= MAX_LINE);
            }
            got.push(std::mem::take(&mut partial));
            for p in &got {
                assert!(
                    p.len() <= MAX_LINE && std::str::from_utf8(p).is_ok(),
                    "split {split}"
                );
            }
            assert_eq!(got.concat(), line, "split {split}");
        }
    }

    #[test]
    fn short_copies_are_exact() {
        let src: Vec<u8> = (0..200u8).collect();
        for n in 0..200 {
            let mut dst = vec![0xffu8; n];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }

    #[test]
    fn newline_search_matches_naive() {
        let mut data = vec![b'a'; 100];
        assert_eq!(find_newline(&data), None);
        for pos in [0, 1, 7, 8, 9, 15, 16, 63, 99] {
            data[pos] = b'\n';
            assert_eq!(find_newline(&data), data.iter().position(|&b| b == b'\n'));
            data[pos] = b'a';
        }
        assert_eq!(find_newline(b""), None);
        assert_eq!(find_newline(b"\xff\x0a"), Some(1));
    }

    #[test]
    fn the_program_env_runs_is_found_past_its_options() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        for (wrapper, want) in [
            ("fish -c", Some("fish")),
            ("/usr/bin/env fish -c", Some("fish")),
            ("env -i A=1 fish -c", Some("fish")),
            ("env -iu X fish -c", Some("fish")),
            ("env -uX fish -c", Some("fish")),
            ("env -C / --unset=X -- fish -c", Some("fish")),
            ("env -S fish -c", Some("fish")),
            ("env --split-string=fish -c", Some("fish")),
            ("env -i", None),
            ("sh -c", Some("sh")),
        ] {
            assert_eq!(program_run(&w(wrapper)), want, "{wrapper}");
        }
    }

    #[test]
    fn argv_modes() {
        let w = vec!["sh".to_string(), "-lc".to_string()];
        assert_eq!(
            workload_argv(&w, &["echo hi".into()], 0),
            ["sh", "-lc", "echo hi"]
        );
        assert_eq!(
            workload_argv(&w, &["echo".into(), "hi".into()], 0),
            ["sh", "-lc", "exec \"$@\"", "--", "echo", "hi"]
        );
        // A POSIX shell's built-ins behind a backslash (no alias).
        let quiet = "{ __AGENT_EXEC_F=$-; \\set +xveu; } 2>/dev/null; ";
        let restore = "case $__AGENT_EXEC_F in *e*) \\set -e;; esac; \
                       case $__AGENT_EXEC_F in *u*) \\set -u;; esac; \
                       case $__AGENT_EXEC_F in *v*) \\set -v;; esac; \
                       case $__AGENT_EXEC_F in *x*) \\unset __AGENT_EXEC_F; \\set -x;; \
                       *) \\unset __AGENT_EXEC_F;; esac; ";
        let a = workload_argv(&w, &["echo".into(), "hi".into()], 1);
        assert_eq!(
            a[2],
            format!(
                "{quiet}\\eval \"${{{REAPPLY_VAR}}}\"; \\unset {REAPPLY_VAR}; {restore}\\exec \"$@\""
            )
        );
        let a = workload_argv(&w, &["echo hi".into()], 3);
        assert_eq!(
            a[2],
            format!(
                "{quiet}\\eval \"${{__AGENT_EXEC_ENV}}${{__AGENT_EXEC_ENV_1}}${{__AGENT_EXEC_ENV_2}}\"; \
                 \\unset __AGENT_EXEC_ENV __AGENT_EXEC_ENV_1 __AGENT_EXEC_ENV_2; {restore}echo hi"
            )
        );
        // bash and zsh: `builtin`, past the profile's functions too.
        let w = vec!["bash".to_string(), "-lc".to_string()];
        let a = workload_argv(&w, &["echo hi".into()], 1);
        assert!(
            a[2].starts_with(
                "{ __AGENT_EXEC_F=$-; \\builtin set +xveu; } 2>/dev/null; \\builtin eval "
            ),
            "{}",
            a[2]
        );
        assert_eq!(
            workload_argv(&w, &["-c".into(), "env".into()], 0)[2..],
            ["\\builtin exec -- \"$@\"", "--", "-c", "env"]
        );
        // fish binds the words after `-c SCRIPT --` to $argv.
        for fish in ["fish", "/usr/bin/fish"] {
            let w = vec![fish.to_string(), "-lc".to_string()];
            assert_eq!(
                workload_argv(&w, &["echo".into(), "hi".into()], 0)[2..],
                ["exec $argv", "--", "echo", "hi"]
            );
            assert_eq!(workload_argv(&w, &["echo hi".into()], 0)[2], "echo hi");
        }
    }

    #[test]
    fn the_set_up_is_not_traced_and_tracing_comes_back_for_the_command() {
        // sh -x (and bash -v, which echoes what eval reads) would show the
        // set-up's values: it runs with both off, the command with
        // whatever was on.
        let script = reapply_script(&[("TOKEN".into(), "s3cret".into())], false, ("sh", None));
        for (flags, traced) in [("-xc", true), ("-c", false)] {
            for shell in ["sh", "bash"] {
                let argv = workload_argv(
                    &[shell.to_string(), flags.to_string()],
                    &["echo \"${#TOKEN}\"".into()],
                    1,
                );
                let out = std::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .env(REAPPLY_VAR, &script)
                    .output()
                    .unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.stdout, b"6\n", "{shell} {flags}: {err}");
                // The command's trace alone: none of the set-up.
                let want = if traced { "+ echo 6\n" } else { "" };
                assert_eq!(err, want, "{shell} {flags}");
            }
        }
    }

    #[test]
    fn a_long_reapply_script_is_cut_into_parts_the_shell_joins() {
        // Many values, each small, cut into parts wherever the limit
        // falls (inside quoted values): every part fits the kernel's
        // limit on one string, and sh, joining them, restores every value.
        let set: Vec<(String, String)> = (0..40)
            .map(|i| (format!("V{i}"), format!("it's é {i} ").repeat(300)))
            .collect();
        let script = reapply_script(&set, false, ("sh", None));
        let parts = reapply_parts(script.clone());
        assert!(parts.len() > 1, "{}", parts.len());
        assert!(parts.iter().all(|p| p.len() <= REAPPLY_PART));
        assert_eq!(parts.concat(), script);
        assert_eq!(reapply_parts(String::new()), [""]);
        let argv = workload_argv(
            &["sh".to_string(), "-c".to_string()],
            &["printf '%s|%s|%s' \"$V0\" \"$V39\" \"${__AGENT_EXEC_ENV_1-gone}\"".into()],
            parts.len(),
        );
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]).env("V0", "profile");
        for (i, p) in parts.iter().enumerate() {
            cmd.env(reapply_var(i), p);
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "{}|{}|gone",
                "it's é 0 ".repeat(300),
                "it's é 39 ".repeat(300)
            )
        );
    }

    #[test]
    fn programs_resolve_like_execvp() {
        let c = |prog: &str, path: Option<&str>| candidates(prog, path, Path::new("/")).0;
        assert_eq!(c("/bin/sh", Some("/nowhere")), [PathBuf::from("/bin/sh")]);
        assert_eq!(
            c("sh", Some("/nonexistent:/usr/bin:/bin")),
            [PathBuf::from("/usr/bin/sh"), PathBuf::from("/bin/sh")]
        );
        // PATH unset: execvp's default.
        let first = c("sh", None)[0].clone();
        assert!(
            ["/usr/local/bin/sh", "/bin/sh", "/usr/bin/sh"].contains(&first.to_str().unwrap()),
            "{first:?}"
        );
        // Found nowhere: every entry is left to the child.
        assert_eq!(
            c("no-such-program-here", Some("/usr/bin")),
            [PathBuf::from("/usr/bin/no-such-program-here")]
        );
        // A relative entry (an empty one: the cwd) is looked at in the
        // job's cwd, and kept relative where the program is there.
        assert_eq!(
            c("sh", Some("/nonexistent::/usr/bin")),
            [PathBuf::from("/usr/bin/sh")]
        );
        let (here, found) = candidates("sh", Some("/nonexistent::/x"), Path::new("/usr/bin"));
        assert_eq!(
            (here, found),
            (vec![PathBuf::from("sh"), PathBuf::from("/x/sh")], true)
        );
        // Found on no entry, relative ones included: said so.
        assert!(!candidates("sh", Some("/nonexistent:"), Path::new("/")).1);
    }

    #[test]
    fn login_shells_are_recognised() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        for yes in [
            "sh -lc",
            "bash -lc",
            "/bin/zsh -l -c",
            "bash --login -c",
            "dash -cl",
        ] {
            assert!(is_login_shell(&w(yes)), "{yes}");
        }
        for no in ["sh -c", "fish -lc", "bash -c", "python3 -c", "sh --norc -c"] {
            assert!(!is_login_shell(&w(no)), "{no}");
        }
    }

    #[test]
    fn reapply_script_goes_back_past_a_cd_function() {
        // A profile that moved and defined `cd` as a function (one that
        // prints, then refuses): the way back uses the shell's own cd.
        for shell in ["sh", "bash", "zsh"] {
            let script = reapply_script(&[], false, (shell, Some("/usr/bin")));
            let Ok(out) = std::process::Command::new(shell)
                .arg("-c")
                .arg("cd /; cd() { echo hook; return 1; }; eval \"$S\"; echo \"$PWD\"")
                .env("S", &script)
                .current_dir("/usr/bin")
                .output()
            else {
                eprintln!("skipped: no {shell} here");
                continue;
            };
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "/usr/bin\n",
                "{shell}"
            );
        }
    }

    #[test]
    fn reapply_script_runs_in_sh() {
        // The script, evaluated after a "profile" that clobbers PATH and a
        // variable, restores the caller's values; quotes survive.
        let set = vec![
            ("A".to_string(), "it's $HOME `x`".to_string()),
            ("bad-name".to_string(), "skipped".to_string()),
        ];
        // The "profile" also changes directory: the script goes back.
        let script = reapply_script(&set, true, ("sh", Some("/usr/bin")));
        // A caller's PATH entry need not be UTF-8: it comes as bytes.
        use std::os::unix::ffi::OsStrExt;
        let caller = std::ffi::OsStr::from_bytes(b"/caller/bin:/caf\xe9:/usr/bin");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("PATH=/usr/bin:/profile/bin; A=profile; cd /; eval \"$S\"; printf '%s|%s|%s|%s' \"$PATH\" \"$A\" \"${__AGENT_EXEC_PATH-unset}\" \"$PWD\"")
            .env("S", &script)
            .env(CALLER_PATH_VAR, caller)
            .current_dir("/usr/bin")
            .output()
            .unwrap();
        assert_eq!(
            out.stdout,
            b"/caller/bin:/caf\xe9:/usr/bin:/profile/bin|it's $HOME `x`|unset|/usr/bin"
        );
        // A directory that is gone ends the shell: the command never runs
        // elsewhere.
        let script = reapply_script(&[], false, ("sh", Some("/no/such/dir")));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg("eval \"$S\"; echo ran")
            .env("S", &script)
            .output()
            .unwrap();
        assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    }

    #[test]
    fn env_file_format() {
        let l = |line: usize, name: &str, value: Option<&str>| EnvLine {
            line,
            name: name.into(),
            value: value.map(String::from),
        };
        let v =
            parse_env_file("# c\n\n  A=1\nB= x=y \r\nC\r\n\texport D=\t#d\nexport\nexport=e\nF=\r");
        assert_eq!(
            v.unwrap(),
            [
                l(3, "A", Some("1")),
                l(4, "B", Some(" x=y ")),
                l(5, "C", None),
                l(6, "D", Some("\t#d")),
                l(7, "export", None),
                l(8, "export", Some("e")),
                // Only a \r before a \n is a line ending.
                l(9, "F", Some("\r")),
            ]
        );
        assert_eq!(parse_env_file("").unwrap(), []);
        for (text, line) in [
            ("A=1\n=x\n", 2),
            ("B = x", 1),
            ("export C D=1", 1),
            ("X Y", 1),
        ] {
            let e = parse_env_file(text).unwrap_err();
            assert!(e.starts_with(&format!("line {line}: ")), "{text:?}: {e}");
        }
    }
}
