//! A job's earlier runs (D35): what `restart` and `run --retry` keep of
//! each run before the job runs again under the same id.
//!
//! Layout: `<job>/runs/<attempt>/` holds that run's `state.json` (its
//! terminal state, without its own `previous_runs`), its `stdout.log`,
//! `stderr.log` and, when they were in the job directory, `full.log`,
//! `completion_event.json`, `notification_events.ndjson`, `match_events/`
//! (moved whole) and `stdin.log` (what `send` wrote to that run). The logs
//! are kept there by hard link (no copy, whatever their size), their
//! names in the job directory removed once the run is whole under
//! `runs/`; the job directory then gets fresh empty logs for the next
//! run. The live
//! `state.json` lists the kept runs in `previous_runs` (oldest first),
//! with absolute log paths that exist for as long as the entry is listed:
//! a run dropped by the keep count loses its entry and its directory in
//! the same step, and responses list only the runs whose logs are there
//! (`listed`: a run directory removed by hand is not printed).
//!
//! Invariants
//! - Only the holder of the job lock archives (the supervisor between
//!   retries, `restart` once the old supervisor is gone), so one writer.
//! - Nothing is reached through a symlink: every step goes through
//!   `sys::Dir` (O_NOFOLLOW), and removal is `Dir::remove_tree`, which
//!   removes a symlink rather than what it points at, by descriptors
//!   alone, and never enters a mount (`remove_run_dir`).
//! - state.json is replaced, never removed: a reader always finds one.
//! - Keeping a run is crash-safe and changes nothing until it is done:
//!   the run is staged as links beside the job's own names and appears
//!   under `runs/<attempt>/` whole, by one rename (`stage`); only then
//!   do the job directory's names go. A crash (or a full disk) before
//!   that rename leaves the job as it was; after it, the kept run is
//!   complete, readers of the old state find its logs there
//!   (`moved_since`), and the next archive of that run goes on from it.
//!   An archive never removes a run directory of the run it keeps.
//!
//! Rejected: copying the logs (a 1 GB log would cost 1 GB of writes and
//! the time to make them); one directory per run from the start (every
//! existing path and reader of `<job>/stdout.log` would change).

use std::io::Write;

use crate::error::{Error, Result};
use crate::job::{self, Job, PreviousRun, State, Status};
use crate::sys;

pub const RUNS: &str = "runs";

/// Earlier runs kept when the config does not say (`[restart] keep_runs`).
pub const DEFAULT_KEEP: u64 = 5;

pub fn default_keep() -> u64 {
    DEFAULT_KEEP
}

/// The files of a run that move with it (those absent are skipped).
const MOVED: [&str; 8] = [
    job::STDOUT,
    job::STDERR,
    job::FULL,
    job::COMPLETION_EVENT,
    job::MATCH_EVENTS,
    // The event files of its match sinks, numbered by their lines in
    // notification_events.ndjson: the next run numbers afresh.
    crate::notify::MATCH_EVENT_DIR,
    crate::input::LOG,
    // A capped log reads through its gap records: they move with it.
    crate::logcap::GAPS,
];

/// Keep the ended run `ended` (terminal) of `job` in `runs/<attempt>/`
/// and make fresh empty stream logs; returns the next run's state
/// (`created`, attempt + 1, `previous_runs` updated and cut to the last
/// `keep`). The caller holds the job lock and writes the returned state.
/// Refuse now what would keep `archive` from keeping a run: a `runs`
/// that is there but no directory of ours (a file, a symlink). Asked by
/// `restart` before it stops the job: it stopped it, then failed here,
/// and its error said nothing of the stop.
pub fn check_keepable(job: &Job) -> Result<()> {
    let io = |what: &str, e| Error::io(format!("{what} in {}", job.dir.display()), e);
    let d = sys::Dir::open(&job.dir).map_err(|e| io("open job directory", e))?;
    if d.exists(RUNS) {
        d.open_dir(RUNS).map_err(|e| io("open runs", e))?;
    }
    Ok(())
}

pub fn archive(job: &Job, ended: &State, keep: u64) -> Result<State> {
    let io = |what: &str, e| Error::io(format!("{what} in {}", job.dir.display()), e);
    let attempt = ended.attempt();
    let name = attempt.to_string();
    // A job directory of 0.2.3's (0755, its files 0644) is made 0700
    // here, and the files of the run kept below 0600: its supervisor makes
    // the directory private only when the next run starts, and the kept
    // files, linked away first, stayed 0644.
    let legacy = sys::make_dir_private(&job.dir);
    let d = sys::Dir::open(&job.dir).map_err(|e| io("open job directory", e))?;
    match d.mkdir(RUNS) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(io("mkdir runs", e)),
        Err(_) => {}
        Ok(()) => d.give_dir_to_owner(RUNS),
    }
    let runs = d.open_dir(RUNS).map_err(|e| io("open runs", e))?;
    // A run directory under its final name is whole: an archive that got
    // that far and no further (the next state not yet written) goes on
    // from there. Otherwise the run is staged (again).
    if !runs.exists(&name) {
        stage(job, &d, &runs, &name, ended).map_err(|e| io("keep the run", e))?;
    } else if runs.exists(&staging(&name)) {
        // An even earlier attempt's staging: links only.
        let _ = remove_run_dir(job, &runs, &staging(&name));
    }
    let rd = runs.open_dir(&name).map_err(|e| io("open run", e))?;
    // A file in a run directory that an archive made (this one, or one
    // that crashed after its rename) is a second name of the job
    // directory's file, or moved there whole (by an older version).
    // Another file under the same name was put there by someone else:
    // letting the job's name go would lose the run's log.
    // One exception: an archive that got as far as the next run's fresh
    // logs and no further (killed before the next state was written)
    // left an empty log here beside the kept one. It holds nothing
    // to lose, and the run under its name is ours (its state.json names
    // this run): refusing it wedged the job, every later restart
    // `unsafe_path`.
    let fresh = |f: &str| {
        [job::STDOUT, job::STDERR, job::FULL].contains(&f)
            && d.open_regular(f).is_ok_and(|(_, m)| m.len() == 0)
            && kept_run_is(&rd, attempt)
    };
    let foreign = MOVED.iter().find(|f| {
        d.exists(f) && !d.is_dir(f) && rd.exists(f) && !d.same_file(f, &rd, f) && !fresh(f)
    });
    if let Some(f) = foreign {
        return Err(Error::UnsafePath(format!(
            "keep the run in {}: {} exists and was not made by agent-exec ({f} is not this run's); nothing was changed",
            job.dir.display(),
            job.dir.join(RUNS).join(&name).display()
        )));
    }
    // The run is kept whole under its name: only now does the job
    // directory let go of it. A file linked there loses its name here;
    // what is not there yet (match_events/, a directory) moves.
    for f in MOVED {
        if !d.exists(f) {
            continue;
        }
        let done = match (rd.exists(f), d.is_dir(f)) {
            (true, false) => d.unlink(f),
            (false, _) => d.rename_into(f, &rd, f),
            // Already moved; a directory of that name here is not ours.
            (true, true) => Ok(()),
        };
        done.map_err(|e| io(&format!("keep {f}"), e))?;
    }
    if legacy {
        // Its meta.json too, which the supervisor would have made so had
        // it found the directory wider.
        d.make_private(job::META);
        for f in MOVED {
            rd.make_private(f);
        }
    }
    // A writer of state.json killed between its temporary file and the
    // rename (a restart SIGKILLed part-way) left that file for good. We
    // hold the job lock, and every writer of state.json does: any such
    // file now is a dead writer's.
    let stale = crate::store::temp_prefix(job::STATE);
    for e in std::fs::read_dir(&job.dir).into_iter().flatten().flatten() {
        if let Some(name) = e.file_name().to_str().filter(|n| n.starts_with(&stale)) {
            let _ = d.unlink(name);
        }
    }
    // The next run's logs exist before any state names them (D41): new
    // files, never the old ones truncated (those are the kept run's now).
    for f in [job::STDOUT, job::STDERR] {
        d.open_file(f, sys::How::Truncate)
            .map_err(|e| io(&format!("create {f}"), e))?;
    }
    // And full.log, where the job writes one: a job between `--retry`
    // runs had none, and one killed there never got it back. Best
    // effort: on a file system out of inodes the run is kept and the
    // next one starts (its supervisor makes it, or records no_space)
    // rather than the archive failing and the job's end with it.
    if let Ok(meta) = job.read_meta() {
        let _ = crate::launch::create_full_log(job, &meta);
    }
    let dir = job.dir.join(RUNS).join(&name);
    let mut next = State::created(&job.id);
    next.attempt = Some(attempt + 1);
    next.previous_runs = ended.previous_runs.clone();
    next.previous_runs.push(PreviousRun {
        attempt,
        state: ended.status(),
        exit_code: ended.result.exit_code,
        signal: ended.result.signal.clone(),
        started_at: ended.job.started_at.clone(),
        finished_at: ended.finished_at.clone(),
        stdout_log_path: dir.join(job::STDOUT).to_string_lossy().into_owned(),
        stderr_log_path: dir.join(job::STDERR).to_string_lossy().into_owned(),
        output_lost: ended.output_lost.clone(),
    });
    // Shell completion caches terminal states as final; this one is not
    // any more. The cache is derived: the next completion rebuilds it.
    if let Some(root) = job.dir.parent() {
        let _ = std::fs::remove_file(root.join(crate::cmd::completions::CACHE));
    }
    let cut = next.previous_runs.len().saturating_sub(keep as usize);
    next.previous_runs.drain(..cut);
    // Every run directory the keep count no longer lists goes: those it
    // just dropped, one dropped earlier whose removal stopped half-way (a
    // file the system would not remove then), and the staging of one
    // whose archive crashed, tried again at each archive so that none
    // stays for good.
    let kept: Vec<String> = next
        .previous_runs
        .iter()
        .map(|r| r.attempt.to_string())
        .collect();
    let mut stale = Vec::new();
    let _ = sys::for_each_entry(&job.dir.join(RUNS), |n, _| {
        let run = n.bytes().all(|b| b.is_ascii_digit()) && !kept.iter().any(|k| k == n);
        let staged = n.starts_with('.') && n.ends_with(".new");
        if run || staged {
            stale.push(n.to_string());
        }
    });
    for n in stale {
        let _ = remove_run_dir(job, &runs, &n);
    }
    Ok(next)
}

/// Does run directory `rd` hold run `attempt` as `stage` keeps it (its
/// state.json a terminal record of that attempt)?
fn kept_run_is(rd: &sys::Dir, attempt: u32) -> bool {
    let Ok(mut f) = rd.open_file(job::STATE, sys::How::Read) else {
        return false;
    };
    let mut buf = Vec::new();
    if std::io::Read::read_to_end(&mut f, &mut buf).is_err() {
        return false;
    }
    serde_json::from_slice::<State>(&buf)
        .is_ok_and(|st| st.attempt() == attempt && st.status().is_terminal())
}

/// Remove `runs/<name>` of `job` (`runs`: that directory) and all under
/// it: never through a symlink, never into a file system mounted there
/// (the mount table names bind mounts, which keep their device number;
/// such a run stays, as `delete` leaves a job with one whole). Pruned by
/// path (`remove_dir_all`), a mount inside an old run lost what it
/// showed, outside the root.
fn remove_run_dir(job: &Job, runs: &sys::Dir, name: &str) -> std::io::Result<()> {
    let path = job.dir.join(RUNS);
    if let Some(at) = crate::gc::mount_inside(&path.join(name)) {
        return Err(std::io::Error::other(format!(
            "{} is a mount point",
            at.display()
        )));
    }
    runs.remove_tree(name, runs.dev()?).map_err(|e| match e {
        sys::TreeError::Os(e) => e,
        sys::TreeError::Mount(at) => {
            std::io::Error::other(format!("{} is on another device", path.join(at).display()))
        }
    })
}

/// Where run `name` is put together before it appears under its name.
fn staging(name: &str) -> String {
    format!(".{name}.new")
}

/// Keep run `name` in `runs/<name>/` in one step: a staging directory
/// gets a second name (a hard link, no copy) for each of the run's files
/// and the run's own state.json, then is renamed into place. Until that
/// rename the job directory is untouched, so a crash or an error (a full
/// disk) leaves the job as it was: the staging directory holds only
/// links, and is removed (here on error, by the next archive after a
/// crash). After it, the kept run is whole, and `archive` lets the job
/// directory's names go.
fn stage(
    job: &Job,
    d: &sys::Dir,
    runs: &sys::Dir,
    name: &str,
    ended: &State,
) -> std::io::Result<()> {
    let staging = staging(name);
    if runs.exists(&staging) {
        remove_run_dir(job, runs, &staging)?;
    }
    runs.mkdir(&staging)?;
    runs.give_dir_to_owner(&staging);
    let staged = (|| {
        let sd = runs.open_dir(&staging)?;
        for f in MOVED {
            if d.exists(f) && !d.is_dir(f) {
                d.link_into(f, &sd, f)?;
            }
        }
        let mut kept = ended.clone();
        kept.previous_runs.clear();
        let text = serde_json::to_vec_pretty(&kept).map_err(std::io::Error::other)?;
        sd.open_file(job::STATE, sys::How::CreateNew)?
            .write_all(&text)?;
        runs.rename(&staging, name)
    })();
    if staged.is_err() {
        let _ = remove_run_dir(job, runs, &staging);
    }
    staged
}

/// `previous_runs` in a `run`, `start` or `wait` answer: present once the
/// job has run before (its attempt is past the first), even when no run
/// is kept (`keep_runs = 0`), so one job has one shape in every answer
/// that lists its runs (`status` always, `restart` always).
pub fn in_answer(job: &Job, st: &State) -> Option<Vec<PreviousRun>> {
    (st.attempt() > 1).then(|| listed(job, &st.previous_runs))
}

/// The kept runs of `job` a response lists (`previous_runs`): those
/// whose two logs are there, with their paths where they are now,
/// `<job>/runs/<attempt>/` under the job's directory as it is named
/// today. The paths state.json recorded are those of the root when the
/// run was kept: a root moved or renamed since (a relative HOME's moves
/// with its directory) dropped every entry. A run directory (or a log in
/// it) removed by hand would otherwise be printed as a path that does
/// not exist (D41). Readers only filter: the entry stays in state.json
/// until the keep count drops it with its directory (`archive`). See
/// `logs_there` for what counts as there.
pub fn listed(job: &Job, runs: &[PreviousRun]) -> Vec<PreviousRun> {
    runs.iter()
        .map(|r| {
            let dir = job.dir.join(RUNS).join(r.attempt.to_string());
            PreviousRun {
                stdout_log_path: dir.join(job::STDOUT).to_string_lossy().into_owned(),
                stderr_log_path: dir.join(job::STDERR).to_string_lossy().into_owned(),
                ..r.clone()
            }
        })
        .filter(logs_there)
        .collect()
}

/// Are the logs of kept run `r` where `archive` put them, and ours?
/// Its two paths must name `<job>/runs/<attempt>/stdout.log` and
/// `stderr.log` of one job directory, and each step below the root is
/// taken through `sys::Dir` (O_NOFOLLOW): a job directory, `runs` or
/// run directory that is a symlink, or a log that is a symlink or not a
/// regular file, drops the entry, as a run removed by hand does. Why not
/// an lstat of each path: that follows every symlink but the last, so a
/// `runs/<attempt>` linked elsewhere was read through (and its paths,
/// which lead outside the root, printed).
fn logs_there(r: &PreviousRun) -> bool {
    let name = r.attempt.to_string();
    // The job directory a log path names, if it has the kept layout.
    let job_dir = |p: &str, log: &str| -> Option<std::path::PathBuf> {
        let p = std::path::Path::new(p);
        let run = p.parent().filter(|_| p.file_name() == Some(log.as_ref()))?;
        let runs = run
            .parent()
            .filter(|_| run.file_name() == Some(name.as_ref()))?;
        let dir = runs
            .parent()
            .filter(|_| runs.file_name() == Some(RUNS.as_ref()))?;
        Some(dir.to_path_buf())
    };
    let (Some(dir), Some(other)) = (
        job_dir(&r.stdout_log_path, job::STDOUT),
        job_dir(&r.stderr_log_path, job::STDERR),
    ) else {
        return false;
    };
    if dir != other {
        return false;
    }
    let run = sys::Dir::open(&dir)
        .and_then(|d| d.open_dir(RUNS))
        .and_then(|runs| runs.open_dir(&name));
    run.is_ok_and(|rd| rd.open_regular(job::STDOUT).is_ok() && rd.open_regular(job::STDERR).is_ok())
}

/// The state of the job's run `attempt`, kept in `runs/<attempt>/`
/// (None: not kept, or no longer). `run_dir` says where its logs are.
pub fn load(job: &Job, attempt: u32) -> Option<State> {
    let name = attempt.to_string();
    let d = sys::Dir::open(&job.dir).ok()?;
    let rd = d.open_dir(RUNS).ok()?.open_dir(&name).ok()?;
    let mut f = rd.open_file(job::STATE, sys::How::Read).ok()?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut buf).ok()?;
    let mut st: State = serde_json::from_slice(&buf).ok()?;
    if !st.status().is_terminal() {
        return None;
    }
    st.run_dir = Some(job.dir.join(RUNS).join(name));
    Some(st)
}

/// Has the job moved on to a later run started by someone else (a
/// `restart`) since `first`, a running state, was read? Runs started by
/// `--retry` come from the same supervisor and are the same job run to
/// its caller: they do not count. A `first` that was not running has no
/// run to have moved on from: false.
pub fn restarted_since(first: &State, now: &State) -> bool {
    first.status() == Status::Running
        && now.attempt() > first.attempt()
        && (now.status() == Status::Created || now.supervisor_pid != first.supervisor_pid)
}

/// What a caller that began waiting at `first` is owed, given the state
/// `now` read since: `now`, or, when the job was restarted meanwhile,
/// the run it was waiting on once that run has ended (from `runs/`) —
/// `now` still when that run is no longer kept.
pub fn answer_for(job: &Job, first: &State, now: State) -> State {
    if !restarted_since(first, &now) {
        return now;
    }
    // A retried job may have run more times under that supervisor: the
    // last kept run it supervised is the one the caller waited on.
    (first.attempt()..now.attempt())
        .rev()
        .filter_map(|a| load(job, a))
        .find(|st| st.supervisor_pid == first.supervisor_pid)
        .unwrap_or(now)
}

/// Where the logs of the run `st` describes are: the job itself, or,
/// for a kept run, a stand-in whose directory is `runs/<attempt>/` (the
/// same id, so cursors name the job).
pub fn logs_of(job: &Job, st: &State) -> Job {
    match &st.run_dir {
        Some(d) => Job::new(job.id.clone(), d.clone()),
        None => job.clone(),
    }
}

/// The run `st` (read from the job's state.json) has been kept in
/// `runs/<attempt>/` since: the job runs again. A reader that read the
/// logs after such a state asks this *after* reading them: if it says
/// yes, what it read may be the next run's, and the run's own logs are
/// in the returned stand-in (see `logs_of`). Asked before, the answer
/// could change during the read; asked after, it is right either way.
pub fn moved_since(job: &Job, st: &State) -> Option<Job> {
    if st.run_dir.is_some() || !st.status().is_terminal() {
        return None;
    }
    let name = st.attempt().to_string();
    let d = sys::Dir::open(&job.dir).ok()?;
    d.open_dir(RUNS)
        .ok()?
        .open_dir(&name)
        .ok()?
        .exists(job::STATE)
        .then(|| Job::new(job.id.clone(), job.dir.join(RUNS).join(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_job() -> Job {
        let dir = std::env::temp_dir().join(format!(
            "ae-runs-{}-{}",
            std::process::id(),
            crate::store::new_id().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Job::new("X", dir)
    }

    fn ended(attempt: u32, code: i32) -> State {
        let mut st = State::created("X");
        st.job.status = Some(Status::Exited);
        st.result.exit_code = Some(code);
        st.attempt = Some(attempt);
        st
    }

    #[test]
    fn archive_moves_the_logs_and_keeps_the_last_k() {
        let job = temp_job();
        std::fs::write(job.stdout_path(), "one\n").unwrap();
        std::fs::write(job.stderr_path(), "err\n").unwrap();
        let next = archive(&job, &ended(1, 3), 2).unwrap();
        assert_eq!(next.attempt(), 2);
        assert_eq!(next.status(), Status::Created);
        let p = &next.previous_runs[0];
        assert_eq!((p.attempt, p.exit_code), (1, Some(3)));
        assert_eq!(
            std::fs::read_to_string(&p.stdout_log_path).unwrap(),
            "one\n"
        );
        assert_eq!(std::fs::read(job.stdout_path()).unwrap(), b"");
        let kept = load(&job, 1).unwrap();
        assert_eq!(kept.result.exit_code, Some(3));
        assert!(kept.run_dir.is_some());
        // Two more runs with keep 2: run 1 goes, entry and directory.
        let mut st = next;
        for a in 2..=3 {
            let mut e = ended(a, 0);
            e.previous_runs = st.previous_runs.clone();
            st = archive(&job, &e, 2).unwrap();
        }
        let attempts: Vec<u32> = st.previous_runs.iter().map(|r| r.attempt).collect();
        assert_eq!(attempts, vec![2, 3]);
        assert!(!job.dir.join(RUNS).join("1").exists());
        assert!(load(&job, 1).is_none());
        // A kept run removed by hand (or one log of it) is not listed.
        assert_eq!(listed(&job, &st.previous_runs).len(), 2);
        std::fs::remove_file(&st.previous_runs[1].stderr_log_path).unwrap();
        std::fs::remove_dir_all(job.dir.join(RUNS).join("2")).unwrap();
        assert!(listed(&job, &st.previous_runs).is_empty());
        std::fs::remove_dir_all(&job.dir).unwrap();
    }

    #[test]
    fn a_symlinked_runs_directory_is_refused() {
        let job = temp_job();
        let elsewhere = job.dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, job.dir.join(RUNS)).unwrap();
        std::fs::write(job.stdout_path(), "x").unwrap();
        assert!(archive(&job, &ended(1, 1), 5).is_err());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        std::fs::remove_dir_all(&job.dir).unwrap();
    }

    #[test]
    fn a_symlinked_run_directory_is_neither_listed_nor_followed() {
        let job = temp_job();
        let outside = job.dir.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(job::STDOUT), "theirs").unwrap();
        std::fs::write(outside.join(job::STDERR), "theirs").unwrap();
        std::fs::write(job.stdout_path(), "one\n").unwrap();
        std::fs::write(job.stderr_path(), "").unwrap();
        let st = archive(&job, &ended(1, 1), 1).unwrap();
        assert_eq!(listed(&job, &st.previous_runs).len(), 1);
        let run1 = job.dir.join(RUNS).join("1");
        std::fs::remove_dir_all(&run1).unwrap();
        std::os::unix::fs::symlink(&outside, &run1).unwrap();
        // The recorded paths lead through the link: not listed.
        assert!(listed(&job, &st.previous_runs).is_empty());
        // Paths of another layout are never ours either.
        let mut odd = st.previous_runs[0].clone();
        odd.stdout_log_path = outside.join(job::STDOUT).display().to_string();
        odd.stderr_log_path = outside.join(job::STDERR).display().to_string();
        assert!(listed(&job, &[odd]).is_empty());
        // Keep 1: the next archive drops run 1, the link and not what
        // it points at.
        let mut e = ended(2, 1);
        e.previous_runs = st.previous_runs.clone();
        let st = archive(&job, &e, 1).unwrap();
        assert_eq!(st.previous_runs.len(), 1);
        assert!(std::fs::symlink_metadata(&run1).is_err());
        assert_eq!(std::fs::read(outside.join(job::STDOUT)).unwrap(), b"theirs");
        // A link where the run being kept goes is refused, and nothing
        // is written through it.
        std::os::unix::fs::symlink(&outside, job.dir.join(RUNS).join("3")).unwrap();
        assert!(archive(&job, &ended(3, 1), 1).is_err());
        let mut names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [job::STDERR, job::STDOUT]);
        std::fs::remove_dir_all(&job.dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn an_archive_cut_short_after_the_fresh_logs_is_finished_by_the_next() {
        let job = temp_job();
        std::fs::write(job.stdout_path(), "one\n").unwrap();
        std::fs::write(job.stderr_path(), "err\n").unwrap();
        // The first archive got through (the run kept, fresh empty logs
        // made) and its caller died before writing the next state: the
        // job still reads as the ended run 1, and is archived again.
        archive(&job, &ended(1, 3), 5).unwrap();
        // And a dead writer's temporary state goes with the keep.
        let stale = job
            .dir
            .join(format!("{}999999-0", crate::store::temp_prefix(job::STATE)));
        std::fs::write(&stale, "{").unwrap();
        let next = archive(&job, &ended(1, 3), 5).unwrap();
        assert!(!stale.exists());
        assert_eq!(next.attempt(), 2);
        assert_eq!(next.previous_runs.len(), 1);
        let kept = &next.previous_runs[0];
        assert_eq!(std::fs::read(&kept.stdout_log_path).unwrap(), b"one\n");
        assert_eq!(std::fs::read(&kept.stderr_log_path).unwrap(), b"err\n");
        assert_eq!(std::fs::read(job.stdout_path()).unwrap(), b"");
        // A log with something in it beside a kept run is not one an
        // archive made: refused, and kept where it is.
        std::fs::write(job.stdout_path(), "two\n").unwrap();
        let e = archive(&job, &ended(1, 3), 5).unwrap_err();
        assert_eq!(e.code(), "unsafe_path");
        assert_eq!(std::fs::read(job.stdout_path()).unwrap(), b"two\n");
        // Nor is an empty one beside a run directory that is not a kept
        // run of that attempt.
        std::fs::write(job.stdout_path(), "").unwrap();
        let run1 = job.dir.join(RUNS).join("1");
        std::fs::write(run1.join(job::STATE), "{}").unwrap();
        assert_eq!(
            archive(&job, &ended(1, 3), 5).unwrap_err().code(),
            "unsafe_path"
        );
        std::fs::remove_dir_all(&job.dir).unwrap();
    }

    #[test]
    fn restarts_are_told_from_retries() {
        let mut first = State::created("X");
        first.job.status = Some(Status::Running);
        first.supervisor_pid = Some(10);
        let mut retry = first.clone();
        retry.attempt = Some(2);
        assert!(!restarted_since(&first, &retry));
        let mut restarted = retry.clone();
        restarted.supervisor_pid = Some(11);
        assert!(restarted_since(&first, &restarted));
        let mut created = State::created("X");
        created.attempt = Some(2);
        assert!(restarted_since(&first, &created));
        assert!(!restarted_since(&first, &first));
        // Only a running state has a run to move on from.
        assert!(!restarted_since(&State::created("X"), &restarted));
    }
}
