//! Waiting for several jobs at once (`wait A B ...`, `GET /wait?ids=`,
//! the MCP `wait` tool's `ids`): until all of them are terminal
//! (`--all`) or the first one is (`--any`), or one deadline for the
//! whole call passes.
//!
//! Invariants
//! - Event-driven, like a single wait (`observe::wait_terminal`): each
//!   job that is still running has one wake source, polled together in
//!   one thread: in short-lived commands a pipe that becomes readable
//!   when the job's supervisor lets go of its lock (`observe::
//!   lock_thread`; the helper thread dies with the process), in the
//!   server and MCP an inotify watch on the job directory (the rename of
//!   state.json), backed by a slow tick for a supervisor that died
//!   without writing. `created` jobs, which have no supervisor yet, are
//!   looked at every 50 ms.
//! - A source is set up before the state read that decides to wait, so
//!   an end in between still wakes the wait.
//! - `first` is the job seen terminal first; among several seen in the
//!   same round, the one whose run ended first (its recorded
//!   `finished_ns`; else `finished_at`, refined by the file's mtime).
//!   The round that sees the first end reads every job, not only those
//!   whose source fired: two jobs that end microseconds apart may let go
//!   of their locks in the other order.
//! - A job restarted while waited on is settled by the run the wait
//!   began on (its end, from runs/), as a single wait is; the wait never
//!   moves on to the new run.
//! - A server client that leaves (or an MCP call that is cancelled)
//!   ends the wait at once: `Ok(None)`.
//!
//! Rejected: one waiting thread per job calling `wait_terminal` (the
//! server could not abandon the threads of an `any` that has answered);
//! a poll tick for every job (a cost, and an answer late by the tick).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::job::{Job, State, Status};
use crate::observe::{self, Client, Stir};
use crate::sys;

/// What the wait saw: every job's last state, in the order given, and
/// which one ended first (None: none has).
pub struct Seen {
    pub states: Vec<State>,
    pub first: Option<usize>,
    /// The first job, in the order given, whose end the wait was still
    /// waiting for when it stopped; None when the wait was over (every
    /// job settled, or one with `any`). A server whose stop cut the wait
    /// short names it, instead of answering as if the wait were over.
    pub waiting: Option<usize>,
}

/// One job's wake source.
enum Source {
    /// Not set up (terminal, or nothing to watch yet).
    None,
    /// The supervisor's lock was let go of once this is readable.
    Lock(File),
    /// An inotify watch on the job directory.
    Watch(File),
    /// A lock pipe that fired: the job is read before anything is set up
    /// again. Its run has ended, so the read nearly always settles it; a
    /// new source set up first (a thread, for a lock) would be thrown
    /// away on every job's end.
    Spent,
}

impl Source {
    fn file(&self) -> Option<&File> {
        match self {
            Source::None | Source::Spent => None,
            Source::Lock(f) | Source::Watch(f) => Some(f),
        }
    }
}

/// Close watches off the answer's path (see `observe::close_watch`).
struct Sources(Vec<Source>);

impl Drop for Sources {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            if let Source::Watch(f) = s {
                observe::close_watch(f);
            }
        }
    }
}

fn source_for(job: &Job, st: &State) -> Source {
    if observe::watching() {
        return match sys::watch_dir(&job.dir) {
            Ok(fd) => Source::Watch(File::from(fd)),
            Err(_) => Source::None,
        };
    }
    match (st.status(), job.open_lock()) {
        (Status::Running | Status::Queued, Some(lock)) => {
            observe::lock_thread(job, lock, st.attempt()).map_or(Source::None, Source::Lock)
        }
        _ => Source::None,
    }
}

/// When a job's run ended (ns), to order ends seen together, from the
/// state the wait read (`st`, the run waited on: a restarted job's is
/// its kept run).
fn ended_ns(job: &Job, st: &State) -> i128 {
    use std::os::unix::fs::MetadataExt;
    const NS: i128 = 1_000_000_000;
    // The end the supervisor recorded, to the nanosecond: two jobs that
    // ended a few milliseconds apart have state files of one mtime (it
    // moves in clock ticks), and the one named first was called first.
    if let Some(ns) = st.finished_ns {
        return i128::from(ns);
    }
    let mtime = std::fs::metadata(job.path(crate::job::STATE))
        .map(|m| i128::from(m.mtime()) * NS + i128::from(m.mtime_nsec()))
        .unwrap_or(i128::MAX);
    // Without it (a job of 0.2.3's, or of an older build), its
    // finished_at, to the second: the file may have been written long
    // after (a copied root), and then named a job that ended days later
    // first. Within that second, the mtime is the finer guess.
    let Some(sec) = st.finished_at.as_deref().and_then(crate::time::parse_ts) else {
        return mtime;
    };
    let from = i128::from(sec) * NS;
    if (from..from + NS).contains(&mtime) {
        mtime
    } else {
        from
    }
}

/// Wait until every job (`any == false`) or one of them (`any`) is
/// terminal, or `deadline` passes (None: no deadline). None when the
/// client left first.
pub fn wait_jobs(
    jobs: &[Job],
    any: bool,
    deadline: Option<Instant>,
    client: Option<Client<'_>>,
) -> Result<Option<Seen>> {
    // Each batch of reads sees each queue's line once (queued jobs'
    // positions): 200 queued ids read 200 ticket names, not 40,000.
    let mut states = crate::queue::with_one_read_per_queue(|| {
        jobs.iter()
            .map(|j| observe::current_state(j).map_err(|e| e.in_job(&j.id)))
            .collect::<Result<Vec<_>>>()
    })?;
    // The run each job was on when the wait began: a `restart` meanwhile
    // ends that job's part of the wait with that run's end (kept in
    // runs/), never with the new run (as a single wait, `observe::
    // wait_terminal_or`).
    let began = states.clone();
    let mut settled: Vec<bool> = states.iter().map(|s| s.status().is_terminal()).collect();
    let mut first = pick_first(jobs, &states, &settled, &[]);
    let done = |settled: &[bool]| {
        if any {
            settled.iter().any(|&x| x)
        } else {
            settled.iter().all(|&x| x)
        }
    };
    let seen = |states, first, settled: &[bool]| Seen {
        states,
        first,
        waiting: (!done(settled))
            .then(|| settled.iter().position(|&x| !x))
            .flatten(),
    };
    let Some(left) = observe::left(deadline).filter(|_| !done(&settled)) else {
        return Ok(Some(seen(states, first, &settled)));
    };
    // Said once the runs waited on are known (`-v`).
    match deadline {
        Some(_) => crate::info!(
            "wait: {} jobs, waiting up to {} ms",
            jobs.len(),
            left.as_millis()
        ),
        None => crate::info!("wait: {} jobs, waiting until they end", jobs.len()),
    }
    let mut sources = Sources(jobs.iter().map(|_| Source::None).collect());
    let mut muted = false;
    // Jobs to read again: those whose source fired (or has none, or the
    // tick came), not all of them on every wake — with hundreds of ids a
    // wake per job end would otherwise read every pending job each time.
    let mut stale = vec![true; jobs.len()];
    loop {
        // Sources first, then the read: an end in between still wakes.
        for (i, job) in jobs.iter().enumerate() {
            if !settled[i] && matches!(sources.0[i], Source::None) {
                sources.0[i] = source_for(job, &states[i]);
                stale[i] = true;
            }
        }
        let before = settled.clone();
        // A spent source's job still running after the read (a supervisor
        // that died unrecorded, say): set a source up and read it again
        // at once, before any poll.
        let mut again = false;
        // Pass 1 reads the jobs whose source fired. Once one of them has
        // ended and none had before, pass 2 reads the others too: one may
        // have ended earlier and told us later (its supervisor let go of
        // its lock after this one's), and `first` is the earliest end
        // among all the ends there are to see, not the first one heard.
        // Only `--any` names a first: a `--all` wait of 200 queued jobs
        // read all the others at the first end (2 ms of CPU, at the very
        // moment the queue's next job was starting, perf sched).
        for pass in [1, 2] {
            let ended_now = (0..jobs.len()).any(|i| settled[i] && !before[i]);
            if pass == 2 && !(any && first.is_none() && ended_now) {
                break;
            }
            crate::queue::with_one_read_per_queue(|| -> Result<()> {
                for (i, job) in jobs.iter().enumerate() {
                    if !before[i] && !settled[i] && (stale[i] || pass == 2) {
                        let now = observe::current_state(job).map_err(|e| e.in_job(&job.id))?;
                        settled[i] = now.status().is_terminal()
                            || crate::runs::restarted_since(&began[i], &now);
                        states[i] = crate::runs::answer_for(job, &began[i], now);
                        if matches!(sources.0[i], Source::Spent) {
                            sources.0[i] = Source::None;
                            again |= !settled[i];
                        }
                        // A job with no source is looked at on every round.
                        stale[i] = matches!(sources.0[i], Source::None);
                    }
                }
                Ok(())
            })?;
        }
        if any && first.is_none() {
            first = pick_first(jobs, &states, &settled, &before);
        }
        if done(&settled) {
            // `--any`: the jobs still running are described as they are
            // now, as `wait ID` alone would (a state read rounds ago
            // named a `--retry` job's first attempt beside the output of
            // its current one).
            // One that has ended meanwhile is described ended, and may
            // have ended before the one heard: `first` is the earliest end
            // among those the answer shows (both read exited, and the
            // later one was named).
            let mut late = false;
            for (i, job) in jobs.iter().enumerate() {
                if !settled[i] {
                    let now = observe::current_state(job).map_err(|e| e.in_job(&job.id))?;
                    if now.status().is_terminal() || crate::runs::restarted_since(&began[i], &now) {
                        settled[i] = true;
                        late = true;
                    }
                    states[i] = crate::runs::answer_for(job, &began[i], now);
                }
            }
            if late {
                first = pick_first(jobs, &states, &settled, &before);
            }
            return Ok(Some(seen(states, first, &settled)));
        }
        let Some(left) = observe::left(deadline) else {
            return Ok(Some(seen(states, first, &settled)));
        };
        if again {
            continue;
        }
        // Ticks back up what no event announces: a job with no source
        // (`created`, or a lock pipe already spent), a supervisor that
        // died unseen in the watching mode, a muted client.
        let mut tick = left;
        for (i, &s) in settled.iter().enumerate() {
            if s {
                continue;
            }
            tick = tick.min(match &sources.0[i] {
                Source::None | Source::Spent => Duration::from_millis(50),
                Source::Watch(_) => Duration::from_millis(200),
                Source::Lock(_) => left,
            });
        }
        if muted {
            tick = tick.min(observe::CLIENT_TICK);
        }
        let mut fds = Vec::with_capacity(jobs.len() + 1);
        let mut owners = Vec::with_capacity(jobs.len());
        for (i, s) in sources.0.iter().enumerate() {
            if let Some(f) = s.file() {
                fds.push(sys::poll_fd(f.as_raw_fd(), sys::POLLIN));
                owners.push(i);
            }
        }
        let client_slot = match client.filter(|_| !muted) {
            Some(c) => {
                fds.push(sys::poll_fd(c.fd, sys::POLLIN | libc::POLLRDHUP));
                Some(fds.len() - 1)
            }
            None => None,
        };
        let ms = tick.as_millis().clamp(1, i32::MAX as u128) as i32;
        let woke = sys::poll(&mut fds, ms).map_err(|e| Error::io("poll", e))?;
        if woke == 0 {
            // The tick: what no event announced (a supervisor that died
            // unseen while watched) is read again.
            stale.iter_mut().for_each(|s| *s = true);
        }
        for (slot, &i) in owners.iter().enumerate() {
            if fds[slot].revents == 0 {
                continue;
            }
            stale[i] = true;
            match &sources.0[i] {
                Source::Watch(f) => observe::drain_watch(f),
                // Spent: it stays readable. The read below says how the
                // job ended.
                Source::Lock(_) => sources.0[i] = Source::Spent,
                Source::None | Source::Spent => {}
            }
        }
        let stirred = client_slot.is_some_and(|s| fds[s].revents != 0);
        if stirred || muted {
            if let Some(c) = client {
                match (c.look)() {
                    // Answered now, as they are: a client that only
                    // half-closed still reads it (`serve`'s `/wait`).
                    Stir::Left => return Ok(Some(seen(states, first, &settled))),
                    Stir::Sent => muted = true,
                    Stir::Quiet => {}
                }
            }
        }
    }
}

/// Among the jobs settled now and not `before` (empty: none was), the
/// one whose run ended first (`ended_ns`).
fn pick_first(jobs: &[Job], states: &[State], settled: &[bool], before: &[bool]) -> Option<usize> {
    (0..jobs.len())
        .filter(|&i| settled[i] && !before.get(i).copied().unwrap_or(false))
        .min_by_key(|&i| ended_ns(&jobs[i], &states[i]))
}
