//! Queues and dependencies without a daemon: `run --queue NAME
//! [--parallel N]`, `--after ID`, `--after-ok ID`.
//!
//! The waiting is done by the job's own supervisor, blocked in the kernel
//! before it starts the workload (nq's idea, generalised to N slots):
//! - a dependency is waited for on its run's byte of its job lock
//!   (`job::RUN_LOCK_BASE`, through `observe::lock_thread`, as `wait`
//!   does), which its supervisor holds while that run lives, `--retry`
//!   attempts included; the kernel wakes us when it lets go (or dies);
//! - a queue of N slots is N files `<root>/.queues/<NAME>/slot.<i>`; a
//!   job runs while it holds an exclusive flock on one of them;
//! - the line in front of the slots is a chain of tickets
//!   `<root>/.queues/<NAME>/w.<entry time ns>.<job id>`, each held
//!   exclusively by its waiting supervisor; a waiter blocks on the nearest
//!   live ticket ahead of its own, and only the head of the line blocks on
//!   the slots (a thread per slot; the first to get one interrupts the
//!   others). So jobs start in the order they entered the queue (launch
//!   order), and a slot that frees wakes exactly one job.
//!
//! Invariants
//! - Every hold is a flock (or, waiting on a dependency's run, an OFD
//!   lock of one byte): a crash of any process (supervisor, caller)
//!   frees what it held by itself; nothing has to be cleaned up for the
//!   queue to move on. A dead waiter's ticket is free, and is skipped and
//!   removed by whoever finds it.
//! - A ticket appears already locked (made under a temporary name, locked,
//!   then linked into place), so a free ticket is always a stale one.
//! - While it waits, the job is `queued` (state.json: `queue`,
//!   `waiting_for`), its supervisor holds the job lock (so readers see it
//!   alive) and has done nothing the job can observe: no process, no env
//!   file read. `queue_position` is computed by readers from the tickets
//!   (`position`), never stored, so it is never stale.
//! - A job's slot count (`--parallel`, stored in meta.json) is its own:
//!   it tries slots 0..N. Jobs of one queue are expected to agree (the
//!   config's `[queue.NAME] parallel` makes that the default).
//! - With dependencies, the job joins the line only once they have ended;
//!   until then it has `waiting_for` and no `queue_position`.
//! - A dependency is judged by the run it was on when the job began to
//!   wait (read before the caller is told `queued`), the first time that
//!   run is terminal, exactly as a `wait` blocked on a restarted job
//!   answers with the run it began on: a `restart` of the dependency
//!   meanwhile never moves the job on to the new run, whichever process
//!   gets the lock first. The ended run is then read from the kept runs
//!   (`runs/<attempt>/`, `runs::load`): the last attempt of its
//!   supervisor, so a `--retry` dependency is judged by its final
//!   attempt. If that record is gone (`keep_runs = 0`, pruned), the run
//!   is known to have ended and nothing more: `--after` goes on,
//!   `--after-ok` fails `dependency_failed`, as for a deleted dependency.
//!   A `created` dependency's run is the one its start launches; a
//!   `queued` one's is the run that waits in its line (a `restart` ends
//!   it `killed` without running, and that is what is judged).
//! - A `--retry` of a queued job is a new turn: the run that failed lets
//!   go of its slot, and the next one waits out the retry delay queued,
//!   outside the line (`not_before`), then joins the line at its end.
//! - `delete` of a queued job kills it (as `kill` does) and removes it.
//! - The supervisor of a queued job takes SIGTERM/SIGINT/SIGHUP as `kill`:
//!   it records `killed` without having run. The signals stay blocked in
//!   it afterwards (the workload starts with a clean mask), so a kill that
//!   races the start is never half-done: either the job is recorded killed
//!   before it ran, or it runs and `kill` signals its process group.
//!
//! Rejected: a queue daemon or a polling tick (a crash would strand the
//! queue, a tick costs latency and CPU); every waiter blocking on every
//! slot (a freed slot would go to an arbitrary waiter: no order, and a
//! thundering herd); a counter file with a lock around it (needs cleanup
//! after crashes); waiting for a dependency on its whole job lock (when
//! a run ended, whether the waiter or a `restart` got the lock first
//! decided which run it judged).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};

use crate::error::{Error, Result};
use crate::job::{Job, Meta, State, Status};
use crate::store::Store;
use crate::sys;

/// Where the queues live, under the root (a dot name: never a job).
pub const DIR: &str = ".queues";
/// The most slots a queue may have.
pub const MAX_PARALLEL: u64 = 1024;

/// A queue name is a file name: 1-64 of `A-Z a-z 0-9 . _ -`, not
/// starting with a dot (so no `..`, no hidden names) — `usage_error`.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid value '{name}' for '--queue': a queue name is 1-64 letters, digits, '.', '_' or '-', not starting with '.'"
        )))
    }
}

/// `--parallel N`: 1..=MAX_PARALLEL.
pub fn check_parallel(n: u64) -> Result<u32> {
    if (1..=MAX_PARALLEL).contains(&n) {
        Ok(n as u32)
    } else {
        Err(Error::usage(format!(
            "invalid value '{n}' for '--parallel': expected 1 to {MAX_PARALLEL}"
        )))
    }
}

/// Why a queue could not be used: no room for its files (a ticket, a
/// slot) is `no_space`, as for any file a job needs before it starts;
/// anything else (a symlink in its place, say) `queue_unusable`.
fn unusable_code(e: &std::io::Error) -> &'static str {
    if crate::error::no_room(e) {
        "no_space"
    } else {
        "queue_unusable"
    }
}

/// Does this job wait for anything before it starts?
pub fn applies(meta: &Meta) -> bool {
    meta.queue.is_some() || !meta.after.is_empty() || !meta.after_ok.is_empty()
}

fn queue_dir(root: &Path, name: &str) -> PathBuf {
    root.join(DIR).join(name)
}

/// Queue `name`'s directory, for changes: reached from the root one name
/// at a time without following a symlink (`.queues` itself included,
/// which a path open would follow), so no ticket or slot is ever made
/// or removed outside the root. `create`: make what is missing (0700).
fn open_queue(root: &Path, name: &str, create: bool) -> std::io::Result<sys::Dir> {
    let step = |at: &sys::Dir, n: &str| -> std::io::Result<sys::Dir> {
        if create {
            match at.mkdir(n) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        at.open_dir(n)
    };
    let top = step(&sys::Dir::open_root(root)?, DIR)?;
    step(&top, name)
}

/// A ticket's name: entry time (fixed width, so names sort by it), then
/// the job id.
fn ticket_name(id: &str) -> String {
    format!("w.{:020}.{id}", crate::time::now_unix_ns().max(0))
}

fn tickets(dir: &Path) -> Rc<Tickets> {
    // Within one listing or one batch of a multi-job wait
    // (`with_one_read_per_queue`) each queue's line is read once, not
    // once per queued job: a `ps` of 200 queued jobs read 40,000 names
    // (20 ms) and now reads 200. The line is shared, not copied: a copy
    // per job was 40,000 string copies again (half of `ps`'s 3 ms).
    let memo = MEMO.with(|m| m.borrow().as_ref().and_then(|m| m.get(dir).cloned()));
    if let Some(line) = memo {
        return line;
    }
    let line = Rc::new(Tickets {
        names: read_tickets(dir),
        index: std::cell::OnceCell::new(),
    });
    MEMO.with(|m| {
        if let Some(m) = m.borrow_mut().as_mut() {
            m.insert(dir.to_path_buf(), line.clone());
        }
    });
    line
}

/// One queue's line as read at one moment: its tickets in order and,
/// built on the first lookup (a listing asks once per queued job), each
/// job's place in it.
struct Tickets {
    names: Vec<String>,
    index: std::cell::OnceCell<std::collections::HashMap<String, u64>>,
}

impl Tickets {
    /// Job `id`'s place in the line (0: next), the first of its tickets
    /// if a stale one is still there.
    fn position(&self, id: &str) -> Option<u64> {
        let index = self.index.get_or_init(|| {
            let mut at = std::collections::HashMap::with_capacity(self.names.len());
            // A ticket's job is what follows its last dot.
            for (i, n) in self.names.iter().enumerate() {
                if let Some((_, owner)) = n.rsplit_once('.') {
                    at.entry(owner.to_string()).or_insert(i as u64);
                }
            }
            at
        });
        index.get(id).copied()
    }
}

thread_local! {
    /// Each queue's line as read during the current listing, if one is
    /// under way on this thread (None: read afresh every time).
    static MEMO: std::cell::RefCell<Option<std::collections::HashMap<PathBuf, Rc<Tickets>>>> =
        const { std::cell::RefCell::new(None) };
}

/// Run `f` (a listing: a snapshot of many jobs) reading each queue's line
/// at most once. The positions it reports are then those of one moment,
/// as a listing's states are; nothing outlives the call.
pub fn with_one_read_per_queue<T>(f: impl FnOnce() -> T) -> T {
    /// Ends the memo however `f` ends (a server thread lives on).
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            MEMO.with(|m| *m.borrow_mut() = None);
        }
    }
    MEMO.with(|m| *m.borrow_mut() = Some(Default::default()));
    let _reset = Reset;
    f()
}

fn read_tickets(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    let _ = sys::for_each_entry(dir, |n, _| {
        if n.starts_with("w.") {
            names.push(n.to_string());
        }
    });
    names.sort_unstable();
    names
}

/// How many members of `queue` are ahead of job `id` in its line (0: it
/// is next), or None when it is not in the line (waiting for its
/// dependencies still, or about to start). Live: read from the tickets.
pub fn position(root: &Path, queue: &str, id: &str) -> Option<u64> {
    tickets(&queue_dir(root, queue)).position(id)
}

/// What a queued job's supervisor does next.
pub enum Turn {
    /// Start the workload (from this state), holding what this says.
    Go(Held, Box<State>),
    /// The job ended without running (killed, a dependency failed): this
    /// terminal state is to be published.
    End(Box<State>),
}

/// The signals that mean "kill this queued job" (`sys::STOP_SIGNALS`),
/// and SIGUSR2: the waiter thread telling the main thread that the wait
/// is over.
const ALL_SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR2];

/// The state shared by the main thread and the waiter: whoever ends the
/// wait first sets `done`, and nobody writes state.json after that.
struct Shared {
    state: State,
    done: bool,
}

/// Wait (in the calling supervisor, before anything of the job starts)
/// until the job may start, and not before `not_before` (a retry's
/// delay). `tell` is called once the `queued` state is
/// on disk, so the caller learns it at once; a job that finds a free
/// slot and nothing to wait for is never `queued`.
pub fn wait_turn(
    store: &Store,
    job: &Job,
    meta: &Meta,
    mut state: State,
    not_before: Option<std::time::Instant>,
    tell: impl FnOnce(),
) -> Turn {
    let ids = dedup_ids(meta);
    // Without dependencies the job takes its place in the line now,
    // before its caller hears anything: launch order is queue order. A
    // retry with a delay (`not_before`) joins it once the delay is over.
    let mut line = None;
    if let (true, Some(name), None) = (ids.is_empty(), &meta.queue, not_before) {
        match enter(&store.root, name, meta.parallel.unwrap_or(1), &job.id) {
            Ok(Entered::Slot(held)) => {
                state.queue = meta.queue.clone();
                held.take_over(store, &job.id);
                return Turn::Go(held, Box::new(state));
            }
            Ok(Entered::Line(l)) => line = Some(l),
            Err(e) => {
                state.fail(unusable_code(&e), format!("queue {name}: {e}"));
                return Turn::End(Box::new(state));
            }
        }
    }
    // From here a kill is a signal taken by this thread (`sigwait`);
    // blocked before any thread starts, so every thread has it blocked.
    let _ = sys::block_signals(&ALL_SIGNALS);
    // Meant for the slot threads alone (`block_any_slot`), which unblock it.
    let _ = sys::block_signals(&[sys::INTERRUPT]);
    state.job.status = Some(Status::Queued);
    state.updated_at = crate::time::now_ts();
    state.supervised_here();
    state.queue = meta.queue.clone();
    // Every dependency's run is fixed here, before the caller hears that
    // the job waits, not when the wait gets to it: a dependency restarted
    // after `run` answered, or while an earlier one is awaited, is judged
    // by the run it was on now.
    let deps: Vec<(Job, Option<Waited>)> = ids
        .iter()
        .map(|id| {
            let dep = store.job(id);
            let waited = crate::observe::current_state(&dep)
                .ok()
                .map(|st| Waited::of(&st));
            (dep, waited)
        })
        .collect();
    state.waiting_for = ids;
    // Every path a response prints exists when it is printed (D41).
    let _ = crate::launch::create_logs(job);
    let _ = job.write_state(&state, false);
    tell();
    let shared = Arc::new(Mutex::new(Shared { state, done: false }));
    let (tx, rx) = mpsc::channel();
    // The end of the wait reaches this thread from whichever thread sees
    // it (the waiter, or the slot thread that won): one hop, not two.
    let deliver: Deliver = Arc::new(move |r| {
        let _ = tx.send(r);
        let _ = sys::kill(std::process::id() as i32, libc::SIGUSR2);
    });
    {
        let (store, job, meta, shared) = (store.clone(), job.clone(), meta.clone(), shared.clone());
        std::thread::spawn(move || {
            // A retry's delay first: until then the job waits outside the
            // line (no queue_position), its slot free for the others.
            if let Some(at) = not_before {
                std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
            }
            if let Some(r) = wait_all(&store, &job, &meta, &shared, deps, line, &deliver) {
                deliver(r);
            }
        });
    }
    let outcome = loop {
        match sys::wait_signal(&ALL_SIGNALS) {
            Ok(libc::SIGUSR2) | Err(_) => {
                if let Ok(r) = rx.try_recv() {
                    // A kill that came with the end of the wait still wins.
                    match sys::take_pending_signal(&sys::STOP_SIGNALS) {
                        Some(sig) => break Err(Ended::Killed(sig)),
                        None => break r,
                    }
                }
            }
            Ok(sig) => break Err(Ended::Killed(sig)),
        }
    };
    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
    g.done = true;
    let mut st = g.state.clone();
    drop(g);
    st.waiting_for.clear();
    match outcome {
        // `running` replaces `queued` once the workload has started.
        Ok(slot) => {
            slot.take_over(store, &job.id);
            Turn::Go(slot, Box::new(st))
        }
        Err(Ended::Killed(sig)) => {
            leave_line(store, job, meta);
            let now = crate::time::now_ts();
            st.job.status = Some(Status::Killed);
            st.result.signal = Some(sys::signal_name(sig));
            st.finished_at = Some(now.clone());
            st.finished_ns = u64::try_from(crate::time::now_unix_ns()).ok();
            st.updated_at = now;
            Turn::End(Box::new(st))
        }
        Err(Ended::Failed(code, why)) => {
            st.fail(code, why);
            Turn::End(Box::new(st))
        }
    }
}

enum Ended {
    Killed(i32),
    Failed(&'static str, String),
}

/// How the end of the wait is handed to the supervisor's main thread.
type Deliver = Arc<dyn Fn(std::result::Result<Held, Ended>) + Send + Sync>;

/// The dependency ids, each once, in the order given.
fn dedup_ids(meta: &Meta) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in meta.after.iter().chain(&meta.after_ok) {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    ids
}

/// A dependency as `wait_all` goes through them: its end when it was
/// judged without waiting (`judge_now`), else None until waited for.
struct Dep {
    id: String,
    job: Job,
    waited: Option<Waited>,
    end: Option<DepEnd>,
}

/// The waiter thread: dependencies first, then the queue. None: a slot
/// thread delivers the outcome (see `Line::wait`).
fn wait_all(
    store: &Store,
    job: &Job,
    meta: &Meta,
    shared: &Mutex<Shared>,
    deps: Vec<(Job, Option<Waited>)>,
    line: Option<Line>,
    deliver: &Deliver,
) -> Option<std::result::Result<Held, Ended>> {
    // Each judged now first: those that have ended are taken first, so
    // an --after-ok one that failed fails the job at once (it waited for
    // the dependencies named before it), and `waiting_for` names only
    // those that have not ended.
    let mut deps: Vec<Dep> = dedup_ids(meta)
        .into_iter()
        .zip(deps)
        .map(|(id, (job, mut waited))| {
            let end = judge_now(&job, &mut waited);
            Dep {
                id,
                job,
                waited,
                end,
            }
        })
        .collect();
    deps.sort_by_key(|d| d.end.is_none());
    let pending = |deps: &[Dep]| -> Vec<String> {
        deps.iter()
            .filter(|d| d.end.is_none())
            .map(|d| d.id.clone())
            .collect()
    };
    {
        let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
        let left = pending(&deps);
        if !g.done && g.state.waiting_for != left {
            g.state.waiting_for = left;
            let _ = job.write_state(&g.state, false);
        }
    }
    for i in 0..deps.len() {
        let d = &mut deps[i];
        let end = match d.end.take() {
            Some(end) => end,
            None => wait_dependency(&d.job, d.waited.take()),
        };
        let id = d.id.clone();
        let must_be_ok = meta.after_ok.contains(&id);
        let how = match end {
            _ if !must_be_ok => None,
            DepEnd::Deleted => Some("was deleted before it was seen to exit 0".to_string()),
            DepEnd::Unrecorded(run) => Some(format!(
                "ended its run {run} and ran again; that run's record is no longer kept, so it was not seen to exit 0"
            )),
            DepEnd::Ended(st) if st.result.exit_code != Some(0) => {
                let how = match (&st.result.exit_code, &st.result.signal) {
                    (Some(c), _) => format!("exited {c}"),
                    (None, Some(s)) => format!("ended {} ({s})", st.status().as_str()),
                    _ => format!("ended {}", st.status().as_str()),
                };
                // Which run: the job may have run again since.
                Some(format!("run {} {how}", st.attempt()))
            }
            DepEnd::Ended(_) => None,
        };
        if let Some(how) = how {
            return Some(Err(Ended::Failed(
                "dependency_failed",
                format!("dependency {id} {how}; --after-ok needs exit code 0"),
            )));
        }
        // What is left to wait for, for readers.
        let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
        let left = pending(&deps[i + 1..]);
        if !g.done && g.state.waiting_for != left {
            g.state.waiting_for = left;
            g.state.updated_at = crate::time::now_ts();
            let _ = job.write_state(&g.state, false);
        }
    }
    let Some(name) = &meta.queue else {
        return Some(Ok(Held::default()));
    };
    let parallel = meta.parallel.unwrap_or(1);
    let unusable =
        |e: std::io::Error| Ended::Failed(unusable_code(&e), format!("queue {name}: {e}"));
    let line = match line {
        Some(l) => l,
        None => match enter(&store.root, name, parallel, &job.id) {
            Ok(Entered::Slot(held)) => return Some(Ok(held)),
            Ok(Entered::Line(l)) => l,
            Err(e) => return Some(Err(unusable(e))),
        },
    };
    line.wait(deliver).map_err(unusable).transpose()
}

/// How the run of a dependency that a dependent waited on ended.
enum DepEnd {
    /// Its terminal state (a `--retry` job's last attempt).
    Ended(Box<State>),
    /// It ended and the job has run again since, but the ended run's
    /// record is no longer kept (`[restart] keep_runs`): ended, with an
    /// outcome nobody can vouch for. The number is the run's attempt.
    Unrecorded(u32),
    Deleted,
}

/// The run of a dependency that a dependent judges: the one that was
/// current when it began waiting (see the module header).
struct Waited {
    /// The run's end, when it had ended already as the wait began.
    ended: Option<Box<State>>,
    /// The run's first attempt (its `--retry` attempts come after it).
    attempt: u32,
    /// The supervisor that runs it, once known: a later run (`restart`)
    /// has another. None while the run has not started (`created`).
    supervisor: Option<u32>,
}

/// What to do after a read of the dependency's state.
enum Next {
    Done(DepEnd),
    /// The run waited on is under way: block until its supervisor lets
    /// go of the run's byte of the job lock.
    BlockOnRun,
    /// Nothing to block on (not started yet; no lock file): watch.
    Watch,
}

impl Waited {
    fn of(st: &State) -> Waited {
        Waited {
            ended: Some(Box::new(st.clone())).filter(|s| s.status().is_terminal()),
            attempt: st.attempt(),
            supervisor: Self::supervisor_of(st),
        }
    }

    fn supervisor_of(st: &State) -> Option<u32> {
        match st.status() {
            Status::Created => None,
            _ => st.supervisor_pid,
        }
    }

    /// Judge `now`, a state of the dependency read since the wait began.
    fn judge(&mut self, dep: &Job, now: &State) -> Next {
        if let Some(st) = &self.ended {
            return Next::Done(DepEnd::Ended(st.clone()));
        }
        if now.attempt() <= self.attempt {
            return match now.status() {
                s if s.is_terminal() => Next::Done(DepEnd::Ended(Box::new(now.clone()))),
                Status::Created => Next::Watch,
                _ => {
                    self.supervisor = self.supervisor.or(now.supervisor_pid);
                    Next::BlockOnRun
                }
            };
        }
        // The job is on a later attempt: a `--retry` of the run waited on
        // (the same supervisor), or a run started after it ended. A run
        // that started unseen (the wait began on `created`) is known by
        // its kept record.
        let run = self.attempt;
        if self.supervisor.is_none() {
            self.supervisor = crate::runs::load(dep, run).and_then(|st| st.supervisor_pid);
        }
        let Some(pid) = self.supervisor else {
            return Next::Done(DepEnd::Unrecorded(run));
        };
        if Self::supervisor_of(now) == Some(pid) {
            return match now.status().is_terminal() {
                true => Next::Done(DepEnd::Ended(Box::new(now.clone()))),
                false => Next::BlockOnRun,
            };
        }
        // Moved on: the run's end is its supervisor's last kept attempt.
        let kept = (run..now.attempt())
            .rev()
            .filter_map(|a| crate::runs::load(dep, a))
            .find(|st| st.supervisor_pid == Some(pid));
        Next::Done(match kept {
            Some(st) => DepEnd::Ended(Box::new(st)),
            None => DepEnd::Unrecorded(run),
        })
    }
}

/// `wait_dependency`'s judgement of `dep` as it is now, without
/// waiting: None while it has not ended (or cannot be read this moment).
fn judge_now(dep: &Job, waited: &mut Option<Waited>) -> Option<DepEnd> {
    let now = match crate::observe::current_state(dep) {
        Ok(st) => st,
        Err(_) if !dep.dir.join(crate::job::META).exists() => return Some(DepEnd::Deleted),
        Err(_) => return None,
    };
    let w = waited.get_or_insert_with(|| Waited::of(&now));
    match w.judge(dep, &now) {
        Next::Done(end) => Some(end),
        Next::BlockOnRun | Next::Watch => None,
    }
}

/// Block until the run of dependency `dep` that `waited` says (None: the
/// one current at the first read here) has ended, or the job is gone,
/// and say how it ended. A `restart` meanwhile never moves the wait on
/// to the next run: the wait blocks on the run's byte of the job lock
/// (`job::RUN_LOCK_BASE`), as `wait` does (`observe::lock_thread`), and
/// no later run ever takes it.
fn wait_dependency(dep: &Job, mut waited: Option<Waited>) -> DepEnd {
    loop {
        let now = match crate::observe::current_state(dep) {
            Ok(st) => st,
            Err(_) if !dep.dir.join(crate::job::META).exists() => return DepEnd::Deleted,
            Err(_) => {
                // Being written or replaced: look again shortly.
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            }
        };
        let w = waited.get_or_insert_with(|| Waited::of(&now));
        match w.judge(dep, &now) {
            Next::Done(end) => return end,
            // The byte of the attempt read: the run's supervisor holds
            // the bytes of all its attempts until its end.
            Next::BlockOnRun if block_on_run(dep, now.attempt()) => {}
            Next::BlockOnRun | Next::Watch => watch_for_change(dep, &now),
        }
    }
}

/// Block until the supervisor of run `attempt` of `dep` has let go of
/// that run (published its end, or died). False: nothing to block on
/// (no lock file, or no helper thread could be made).
fn block_on_run(dep: &Job, attempt: u32) -> bool {
    let Some(lock) = dep.open_lock() else {
        return false;
    };
    let Some(end) = crate::observe::lock_thread(dep, lock, attempt) else {
        return false;
    };
    let mut fds = [sys::poll_fd(
        std::os::fd::AsRawFd::as_raw_fd(&end),
        sys::POLLIN,
    )];
    loop {
        match sys::poll(&mut fds, -1) {
            Ok(0) => continue,
            Ok(_) => return true,
            // No way to wait on the pipe: the caller reads and watches.
            Err(_) => return false,
        }
    }
}

/// Wait for a change in `dep`'s directory (its start, its deletion) since
/// `seen` was read, or a while: a `created` job has no supervisor, and
/// so no lock to block on yet.
fn watch_for_change(dep: &Job, seen: &State) {
    let watch = sys::watch_dir(&dep.dir).ok().map(File::from);
    let again = crate::observe::current_state(dep);
    let same = |s: &State| s.status() == seen.status() && s.attempt() == seen.attempt();
    if matches!(&again, Ok(s) if same(s)) {
        let mut fds: Vec<_> = watch
            .iter()
            .map(|w| sys::poll_fd(std::os::fd::AsRawFd::as_raw_fd(w), sys::POLLIN))
            .collect();
        let _ = sys::poll(&mut fds, 1000);
    }
}

/// A place in a queue's line: our ticket, held while we wait.
struct Line {
    dir: PathBuf,
    d: sys::Dir,
    parallel: u32,
    mine: String,
    ticket: File,
    member: File,
}

enum Entered {
    /// Nobody was waiting and a slot was free: it is ours.
    Slot(Held),
    Line(Line),
}

/// Being in queue `name`: a shared flock on its directory, taken before
/// the job makes a ticket or takes a slot there and kept until it lets
/// go of the queue (`Held::_member`). gc removes a queue's files only
/// under the exclusive flock (`sweep_idle`), so never while anyone is in
/// it; a job that opened the directory just before gc removed it finds
/// it unlinked once its lock is granted, and joins the queue made anew.
fn join(root: &Path, name: &str) -> std::io::Result<(sys::Dir, File)> {
    use std::os::unix::fs::MetadataExt;
    // Bounded: each retry needs a gc to remove the directory again in
    // between, which it does only while the queue is empty.
    for _ in 0..64 {
        // Gone between its mkdir and its open (or that of "."): made anew.
        let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        let d = match open_queue(root, name, true) {
            Err(e) if gone(&e) => continue,
            d => d?,
        };
        let member = match d.lockable() {
            Err(e) if gone(&e) => continue,
            m => m?,
        };
        sys::lock_shared(&member)?;
        if member.metadata()?.nlink() > 0 {
            return Ok((d, member));
        }
    }
    Err(std::io::Error::other(
        "its directory was removed each time the job joined",
    ))
}

/// Join queue `name`: take a free slot at once if nobody is waiting,
/// else a ticket at the end of the line.
fn enter(root: &Path, name: &str, parallel: u32, id: &str) -> std::io::Result<Entered> {
    let parallel = parallel.max(1);
    let dir = queue_dir(root, name);
    let (d, member) = join(root, name)?;
    if tickets(&dir).names.is_empty() {
        if let Some(f) = try_any_slot(&d, parallel)? {
            return Ok(Entered::Slot(Held {
                slot: Some(f),
                ticket: None,
                _member: Some(member),
            }));
        }
    }
    let mine = ticket_name(id);
    let tmp = format!(".t.{id}");
    let ticket = d.open_file(&tmp, sys::How::Truncate)?;
    sys::lock_exclusive(&ticket)?;
    let linked = d.link(&tmp, &mine);
    let _ = d.unlink(&tmp);
    linked?;
    Ok(Entered::Line(Line {
        dir,
        d,
        parallel,
        mine,
        ticket,
        member,
    }))
}

impl Line {
    /// Wait to be the head of the line, then for one of the slots. The
    /// place in line is kept until the job has started (`Held::started`),
    /// so the next one cannot overtake it between here and its spawn.
    /// Ok(None): every slot is taken; the first slot thread to get one
    /// delivers the job's `Held` itself.
    fn wait(self, deliver: &Deliver) -> std::io::Result<Option<Held>> {
        while let Some(ahead) = nearest_live_ahead(&self.d, &self.dir, &self.mine) {
            let _ = sys::lock_shared(&ahead);
            let _ = sys::unlock(&ahead);
        }
        let free = try_any_slot(&self.d, self.parallel)?;
        let slots = match free {
            Some(_) => Vec::new(),
            None => (0..self.parallel)
                .map(|i| self.d.open_file(&slot_name(i), sys::How::Open))
                .collect::<std::io::Result<Vec<File>>>()?,
        };
        let ticket = Ticket {
            d: self.d,
            name: self.mine,
            _file: self.ticket,
        };
        if let Some(f) = free {
            return Ok(Some(Held {
                slot: Some(f),
                ticket: Some(ticket),
                _member: Some(self.member),
            }));
        }
        block_any_slot(slots, (ticket, self.member), deliver)?;
        Ok(None)
    }
}

/// What a job that may start holds: its queue slot, until its end is
/// published (dropped), and its place at the head of the line, until its
/// workload has been spawned (`started`). Fields drop in this order: the
/// queue's membership (`join`) goes last.
#[derive(Default)]
pub struct Held {
    /// Holding the open file is holding the slot's lock; it also names
    /// the job that holds it (`take_over`).
    slot: Option<File>,
    ticket: Option<Ticket>,
    _member: Option<File>,
}

impl Held {
    /// Take the slot over for job `own`: first settle the job that held
    /// it last, named in the slot file. A holder lets go after its end is
    /// published, or when its supervisor dies; killed with SIGKILL, that
    /// supervisor's workload loses only its root (the parent-death
    /// signal), and the rest of its process group lives on. Reading its
    /// state records `supervisor_lost` and kills that group
    /// (`observe::current_state`) before this job starts, so a queue never
    /// runs more than its slots' worth. One writer: the slot's holder.
    fn take_over(&self, store: &Store, own: &str) {
        use std::os::unix::fs::FileExt;
        let Some(f) = &self.slot else { return };
        let mut buf = [0u8; 160];
        let n = f.read_at(&mut buf, 0).unwrap_or(0);
        let prev = std::str::from_utf8(&buf[..n]).unwrap_or_default().trim();
        if !prev.is_empty() && prev != own && crate::store::valid_id(prev) {
            settle(&store.job(prev));
        }
        // Ids have one length: overwrite in place. A truncate is an ext4
        // journal operation (65 µs here) on the path of the queue's next
        // start; only a longer leftover (a damaged file) needs one.
        let _ = f.write_at(own.as_bytes(), 0);
        if n > own.len() {
            let _ = f.set_len(own.len() as u64);
        }
    }

    /// The workload is spawned: the next job in line may go.
    pub fn started(&mut self) {
        self.ticket = None;
    }
}

/// Settle the job that let go of a slot: a terminal record as a rule
/// (its end was published first). Still `running` (or `queued`), its
/// supervisor died, and may still be exiting: the slot's lock can go
/// before the job lock does, which a reader then finds held. Read again
/// (bounded) until the reader that takes the job lock records the loss
/// and kills what is left. A live supervisor of the job (a `restart`'s
/// next run, back in the line) is not a loss: left alone.
fn settle(prev: &Job) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let Ok(st) = crate::observe::current_state(prev) else {
            return;
        };
        let live = matches!(st.status(), Status::Running | Status::Queued);
        if !live {
            // Timed out, and its supervisor died waiting out --kill-after:
            // the slot was to be held until that SIGKILL.
            crate::observe::kill_overdue_leftovers(prev, &st, true);
            return;
        }
        if st.supervisor_pid.is_some_and(|p| prev.is_supervisor(p))
            || std::time::Instant::now() >= until
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A held ticket; dropping it takes it out of the line.
struct Ticket {
    d: sys::Dir,
    name: String,
    _file: File,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Unlinked before the lock goes with the file: the next waiter,
        // woken by that, never finds it live.
        let _ = self.d.unlink(&self.name);
    }
}

/// The nearest ticket before `mine` whose owner still waits (its lock is
/// held); stale tickets met on the way are removed.
fn nearest_live_ahead(d: &sys::Dir, dir: &Path, mine: &str) -> Option<File> {
    let line = tickets(dir);
    for n in line.names.iter().rev().filter(|n| n.as_str() < mine) {
        let Ok(f) = d.open_file(n, sys::How::Read) else {
            continue;
        };
        match sys::try_lock_shared(&f) {
            Ok(true) => {
                // Free: its owner got a slot or died. Not in the line.
                let _ = sys::unlock(&f);
                let _ = d.unlink(n);
            }
            Ok(false) => return Some(f),
            Err(_) => {}
        }
    }
    None
}

fn slot_name(i: u32) -> String {
    format!("slot.{i}")
}

fn try_any_slot(d: &sys::Dir, parallel: u32) -> std::io::Result<Option<File>> {
    for i in 0..parallel {
        let f = d.open_file(&slot_name(i), sys::How::Open)?;
        if sys::try_lock_exclusive(&f)? {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

/// Wait for whichever slot frees first: one thread blocks on each; the
/// first to get its slot takes the ticket and delivers the job's `Held`
/// to the main thread directly. The others keep blocking; when they get
/// their slot they find the ticket gone and let go at once (only the
/// head of the line waits here, so nobody else is kept from a slot).
fn block_any_slot(
    slots: Vec<File>,
    ticket: (Ticket, File),
    deliver: &Deliver,
) -> std::io::Result<()> {
    // The first thread to take a slot wins the ticket and interrupts its
    // siblings, so that none of them goes on waiting for another slot
    // (which it would take, only to let it go: every start would pay an
    // extra hand-off, and a sibling could take a slot from the job next
    // in line). A sibling interrupted just before it blocks misses the
    // signal; it then takes and drops a slot once, as before.
    sys::arm_interrupt()?;
    let ticket = Arc::new(Mutex::new(Some(ticket)));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>> = Arc::default();
    let mut held = threads.lock().unwrap_or_else(|e| e.into_inner());
    for f in slots {
        let (ticket, deliver) = (ticket.clone(), deliver.clone());
        let (done, threads) = (done.clone(), threads.clone());
        // A small stack: these threads only block in flock.
        let t = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = sys::unblock_signals(&[sys::INTERRUPT]);
                let is_done = || done.load(std::sync::atomic::Ordering::SeqCst);
                loop {
                    if is_done() {
                        return;
                    }
                    match sys::lock_exclusive_interruptible(&f) {
                        Ok(true) => break,
                        Ok(false) => continue,
                        Err(_) => return,
                    }
                }
                let won = ticket.lock().unwrap_or_else(|e| e.into_inner()).take();
                let Some((t, member)) = won else {
                    // A sibling won: dropping `f` frees this slot.
                    return;
                };
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                let me = std::thread::current().id();
                for h in threads.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    if h.thread().id() != me {
                        sys::interrupt_thread(h);
                    }
                }
                deliver(Ok(Held {
                    slot: Some(f),
                    ticket: Some(t),
                    _member: Some(member),
                }));
            })?;
        held.push(t);
    }
    Ok(())
}

/// Take the job's ticket out of its queue's line (a killed waiter; a
/// crashed one's is removed by the next one to look).
fn leave_line(store: &Store, job: &Job, meta: &Meta) {
    let Some(name) = &meta.queue else { return };
    let dir = queue_dir(&store.root, name);
    let suffix = format!(".{}", job.id);
    if let Ok(d) = open_queue(&store.root, name, false) {
        for n in tickets(&dir).names.iter().filter(|n| n.ends_with(&suffix)) {
            let _ = d.unlink(n);
        }
    }
}

/// gc's part in the queues: remove the files of every queue nobody is in
/// (its slots, stale tickets, its directory), which would otherwise stay
/// for every queue name ever used. A queue is left alone while anyone is
/// in it (its directory's flock: `join`), while any of its slots or
/// tickets is held (by a supervisor of a build that did not take that
/// flock), and while the job that last held a slot still reads live: a
/// supervisor that died holding it leaves that job's processes behind,
/// and only the slot file names the job, so that the queue's next job
/// settles it before it starts (`Held::take_over`). Reading it here
/// records the loss and ends those processes (`observe::current_state`);
/// the queue goes at a later gc. Anything else in the directory keeps
/// it (rmdir refuses). Returns how many queues went.
pub fn sweep_idle(store: &Store) -> u64 {
    let top_path = store.root.join(DIR);
    let Ok(top) = sys::Dir::open_root(&store.root).and_then(|r| r.open_dir(DIR)) else {
        return 0;
    };
    let mut names = Vec::new();
    let _ = sys::for_each_entry(&top_path, |n, _| {
        if check_name(n).is_ok() {
            names.push(n.to_string());
        }
    });
    let mut removed = 0;
    for name in names {
        let Ok(d) = top.open_dir(&name) else { continue };
        let Ok(member) = d.lockable() else { continue };
        if !matches!(sys::try_lock_exclusive(&member), Ok(true)) {
            continue;
        }
        let mut files = Vec::new();
        let _ = sys::for_each_entry(&top_path.join(&name), |n, _| files.push(n.to_string()));
        if files.iter().any(|n| in_use(store, &d, n)) {
            continue;
        }
        for n in files.iter().filter(|n| is_queue_file(n)) {
            let _ = d.unlink(n);
        }
        if top.rmdir(&name).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// A slot's, a ticket's or a ticket-to-be's name.
fn is_queue_file(n: &str) -> bool {
    n.starts_with("slot.") || n.starts_with("w.") || n.starts_with(".t.")
}

/// Is queue file `n` held, or a slot whose last holder still reads live?
fn in_use(store: &Store, d: &sys::Dir, n: &str) -> bool {
    use std::os::unix::fs::FileExt;
    if !is_queue_file(n) {
        return false;
    }
    let Ok(f) = d.open_file(n, sys::How::Read) else {
        return false;
    };
    if !matches!(sys::try_lock_exclusive(&f), Ok(true)) {
        return true;
    }
    if !n.starts_with("slot.") {
        return false;
    }
    let mut buf = [0u8; 160];
    let got = f.read_at(&mut buf, 0).unwrap_or(0);
    let prev = std::str::from_utf8(&buf[..got]).unwrap_or_default().trim();
    if !crate::store::valid_id(prev) {
        return false;
    }
    crate::observe::current_state(&store.job(prev))
        .is_ok_and(|st| matches!(st.status(), Status::Running | Status::Queued))
}

/// What responses say about a job's queue and dependencies (flattened
/// into `status`, `run`/`start`, `wait` and list entries): `queue` (its
/// queue, whatever its state), and while it is `queued`,
/// `queue_position` (0 = next) and `waiting_for` (dependencies not yet
/// terminal).
#[derive(serde::Serialize, Default)]
pub struct QueueInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

impl QueueInfo {
    pub fn of(st: &State) -> QueueInfo {
        let queued = st.status() == Status::Queued;
        QueueInfo {
            queue: st.queue.clone(),
            queue_position: st.queue_position.filter(|_| queued),
            waiting_for: if queued {
                st.waiting_for.clone()
            } else {
                Vec::new()
            },
        }
    }
}

/// Fill in `queue_position` of a queued job's state (readers), and take
/// off `waiting_for` the dependencies that have ended since its
/// supervisor wrote it (it is about to, woken by their end): a reader
/// that was just told a dependency ended never sees the job still
/// waiting for it. A job with nothing left to wait for that is not in
/// its queue's line yet is about to join it at the end: its position is
/// the line's length (0 when the line is empty and it is about to start)
/// — unless an `--after-ok` dependency ended other than exited 0: then it
/// never joins (it is about to fail `dependency_failed`), and has none.
pub fn annotate(job: &Job, st: &mut State) {
    if st.status() != Status::Queued {
        return;
    }
    let Some(root) = job.dir.parent() else {
        return;
    };
    let had_deps = !st.waiting_for.is_empty();
    let mut failed = Vec::new();
    st.waiting_for.retain(|id| match dependency_end(root, id) {
        None => true,
        Some(ok) => {
            if !ok {
                failed.push(id.clone());
            }
            false
        }
    });
    if let Some(q) = st.queue.as_deref() {
        st.queue_position = position(root, q, &job.id).or_else(|| {
            let doomed = || {
                !failed.is_empty()
                    && job
                        .read_meta()
                        .is_ok_and(|m| m.after_ok.iter().any(|d| failed.contains(d)))
            };
            (had_deps && st.waiting_for.is_empty() && !doomed())
                .then(|| tickets(&queue_dir(root, q)).names.len() as u64)
        });
    }
}

/// Has dependency `id` (a full id, as `define` stored it) ended, as a
/// reader sees it, and was that end ok: its directory gone (deleted:
/// not ok), or its state terminal (ok: exited 0). None: not ended; a
/// state that cannot be read leaves it listed: its supervisor judges.
fn dependency_end(root: &Path, id: &str) -> Option<bool> {
    if !crate::store::valid_id(id) {
        return None;
    }
    let dep = Job::new(id, root.join(id));
    match dep.read_state() {
        Ok(st) if st.status().is_terminal() => {
            Some(st.status() == Status::Exited && st.result.exit_code == Some(0))
        }
        Ok(_) => None,
        Err(_) => matches!(
            std::fs::symlink_metadata(&dep.dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
        .then_some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["q", "build-1", "a.b_c", "X".repeat(64).as_str()] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "é", &"x".repeat(65)] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.code(), "usage_error", "{bad}");
        }
        assert!(check_parallel(0).is_err());
        assert!(check_parallel(MAX_PARALLEL + 1).is_err());
        assert_eq!(check_parallel(3).unwrap(), 3);
    }

    #[test]
    fn tickets_sort_by_entry_time() {
        let a = ticket_name("01B");
        std::thread::sleep(std::time::Duration::from_millis(1));
        let b = ticket_name("01A");
        assert!(a < b, "{a} {b}");
    }

    fn at(status: Status, attempt: u32, pid: Option<u32>) -> State {
        let mut st = State::created("X");
        st.job.status = Some(status);
        st.attempt = Some(attempt);
        st.supervisor_pid = pid;
        st
    }

    /// What `judge` says, in short: the attempt of the end it gives,
    /// 0 for an end without a record, or "block" / "watch".
    fn verdict(w: &mut Waited, dep: &Job, now: &State) -> String {
        match w.judge(dep, now) {
            Next::Done(DepEnd::Ended(st)) => format!("ended {}", st.attempt()),
            Next::Done(DepEnd::Unrecorded(run)) => format!("unrecorded {run}"),
            Next::Done(DepEnd::Deleted) => "deleted".into(),
            Next::BlockOnRun => "block".into(),
            Next::Watch => "watch".into(),
        }
    }

    #[test]
    fn a_dependency_is_judged_by_the_run_it_was_on() {
        // No kept runs: a job directory that does not exist.
        let dep = Job::new("X", std::env::temp_dir().join("ae-no-such-job-dir"));
        let running = at(Status::Running, 1, Some(10));
        let mut w = Waited::of(&running);
        // Its `--retry` attempts are the same run (the same supervisor).
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Running, 2, Some(10))),
            "block"
        );
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Exited, 2, Some(10))),
            "ended 2"
        );
        // A later run (`restart`): the run waited on, whose record is gone.
        for later in [
            at(Status::Created, 2, None),
            at(Status::Exited, 2, Some(11)),
        ] {
            assert_eq!(verdict(&mut w, &dep, &later), "unrecorded 1");
        }
        // Not started yet: its run is the one its start launches.
        let mut w = Waited::of(&at(Status::Created, 1, None));
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Created, 1, None)),
            "watch"
        );
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Queued, 1, Some(12))),
            "block"
        );
        assert_eq!(w.supervisor, Some(12));
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Running, 2, Some(13))),
            "unrecorded 1"
        );
        // Ended already when the wait began: that end, whatever came after.
        let mut w = Waited::of(&at(Status::Failed, 1, Some(10)));
        assert_eq!(
            verdict(&mut w, &dep, &at(Status::Exited, 2, Some(11))),
            "ended 1"
        );
    }

    #[test]
    fn a_taken_over_slot_names_only_its_new_holder() {
        use std::fs;
        let dir = std::env::temp_dir().join(format!("ae-slot-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let store = Store::resolve(Some(dir.to_str().unwrap()));
        let own = "01KQ3Z5Y0000000000000000AA";
        // A damaged leftover longer than an id, one shorter, one as long.
        for before in [
            "x".repeat(300),
            "01SHORT".to_string(),
            "01KQ3Z5Y0000000000000000ZZ".to_string(),
        ] {
            let path = dir.join("slot");
            fs::write(&path, &before).unwrap();
            let f = File::options().read(true).write(true).open(&path).unwrap();
            Held {
                slot: Some(f),
                ..Held::default()
            }
            .take_over(&store, own);
            assert_eq!(fs::read_to_string(&path).unwrap(), own, "after {before:?}");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_place_in_line_is_the_first_ticket_of_the_job() {
        let names = ["w.1.01A", "w.2.01B", "w.3.01A", "w.4.01C", "junk"];
        let line = Tickets {
            names: names.iter().map(|n| n.to_string()).collect(),
            index: std::cell::OnceCell::new(),
        };
        // 01A's first ticket counts (a stale one not yet removed).
        for (id, at) in [
            ("01A", Some(0)),
            ("01B", Some(1)),
            ("01C", Some(3)),
            ("01D", None),
        ] {
            assert_eq!(line.position(id), at, "{id}");
        }
    }
}
