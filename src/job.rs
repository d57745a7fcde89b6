//! The on-disk models of a job: `meta.json` (its definition) and
//! `state.json` (where it is in its life), plus the tag rules.
//!
//! Field names and order follow the 0.2.3 files so old tooling can read
//! ours; additions are new keys only: `state.result.timed_out`,
//! `state.result.cpu_user_ms`/`cpu_sys_ms`/`max_rss_kb`,
//! `state.failure`, `state.supervisor_pid`, `meta.full_log`,
//! `meta.keep_runs`/`sink_timeout_ms`/`gc` (a `--config` file's
//! settings, kept for the job's later launches).
//! Real `--env` values are never here (they live in `env.json`, 0600).
//!
//! Invariants
//! - Readers accept missing optional keys (defaults), so hand-written or
//!   older files load.
//! - `state.json` has one writer at a time: the front-end while the job
//!   is `created`, the supervisor (holding the job lock) after that, and a
//!   reader only once it has obtained the lock of a dead supervisor.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    /// Waiting for a queue slot or for other jobs (`queue.rs`); its
    /// supervisor is alive and holds the job lock, nothing has run yet.
    Queued,
    Running,
    Exited,
    Killed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Exited => "exited",
            Status::Killed => "killed",
            Status::Failed => "failed",
        }
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Exited | Status::Killed | Status::Failed)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobIdent {
    pub id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputMatch {
    pub pattern: String,
    #[serde(default = "default_match_type")]
    pub match_type: String,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

fn default_match_type() -> String {
    "contains".into()
}
fn default_stream() -> String {
    "either".into()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Notification {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_output_match: Option<OutputMatch>,
}

impl Notification {
    pub fn is_empty(&self) -> bool {
        self.notify_command.is_none()
            && self.notify_file.is_none()
            && self.on_output_match.is_none()
    }
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub job: JobIdent,
    #[serde(default = "schema_version")]
    pub schema_version: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub env_keys: Vec<String>,
    /// The `--env` entries in display form (masked): shown in `run`'s
    /// answer, never written (values live only in env.json). Read back
    /// from files written by older versions.
    #[serde(default, skip_serializing)]
    pub env_vars: Vec<String>,
    /// 0.2.3 kept a created job's real `--env` values here: read so that
    /// such a job starts with them, and kept when meta.json is rewritten
    /// (`tag set`). Jobs of ours keep them in env.json only: empty here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_vars_runtime: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification: Option<Notification>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub inherit_env: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<String>,
    #[serde(default)]
    pub timeout_ms: u64,
    #[serde(default)]
    pub kill_after_ms: u64,
    #[serde(default)]
    pub progress_every_ms: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shell_wrapper: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_file: Option<String>,
    /// `--log PATH`: where full.log goes instead of the job directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_log: Option<String>,
    /// `-i`: the job's stdin stays open for `send` (see `input`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub interactive: bool,
    /// `--tty`: the job runs on a pseudo-terminal of this size
    /// (`[cols, rows]`); implies `interactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<[u16; 2]>,
    /// `--max-log-bytes N`: each log keeps its first and last bytes, N in
    /// all, and counts what it dropped (see `logcap`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_log_bytes: Option<u64>,
    /// `--no-full-log` (`[log] full = false`): no full.log is written.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_full_log: bool,
    /// `--queue NAME`: the job waits for one of the queue's slots (see
    /// `queue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `--parallel N` (or the config's): the queue's slot count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u32>,
    /// `--after ID`: jobs that must be terminal before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// `--after-ok ID`: jobs that must have exited 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after_ok: Vec<String>,
    /// `[restart] keep_runs` of the config named with `--config` when the
    /// job was defined: what `restart` keeps of its earlier runs. Absent:
    /// the default config, as read at restart time, says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_runs: Option<u64>,
    /// `[notify] sink_timeout` (milliseconds, 0 = no limit) of that
    /// config: the command-sink limit of the job's later launches
    /// (`start`, `restart`) as of its first. Absent: `sink_timeout_secs`
    /// says, else the default config, as read at each launch. Read it
    /// through `Meta::sink_timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_timeout_ms: Option<u64>,
    /// The same limit in whole seconds, as versions that kept only
    /// seconds wrote it (so "500ms" was lost as 0, no limit). Still read
    /// from their jobs, and still written (rounded up, so a limit stays a
    /// limit) for such a version reading a job of ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_timeout_secs: Option<u64>,
    /// `[gc]` of that config: the auto-GC after the job's later launches
    /// (their `--no-auto-gc` and `--auto-gc-*` flags still apply on top).
    /// Absent: the default config, as read at each launch, says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<crate::config::GcConfig>,
    /// `run --retry N [--retry-delay D]`: the supervisor runs the job
    /// again when it exits non-zero (see `runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

impl Meta {
    /// The kept `[notify] sink_timeout` in milliseconds: the new field,
    /// else the seconds an older version wrote.
    pub fn sink_timeout_ms(&self) -> Option<u64> {
        self.sink_timeout_ms
            .or_else(|| self.sink_timeout_secs.map(|s| s.saturating_mul(1000)))
    }
}

/// The retry policy stored with a job (`run --retry`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Retry {
    /// Further runs after the first, at most.
    pub times: u32,
    #[serde(default)]
    pub delay_ms: u64,
    /// Earlier runs kept (`[restart] keep_runs` when the job was defined).
    #[serde(default = "crate::runs::default_keep")]
    pub keep_runs: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn schema_version() -> String {
    crate::output::SCHEMA_VERSION.to_string()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobState {
    pub id: String,
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct JobResult {
    pub exit_code: Option<i32>,
    #[serde(default, deserialize_with = "signal_named")]
    pub signal: Option<String>,
    pub duration_ms: Option<u64>,
    #[serde(default)]
    pub timed_out: bool,
    /// What the job's process tree cost, as `wait4` reported it when the
    /// root was reaped (its own use and that of every descendant it
    /// reaped). Absent while running, and for a job that never ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_user_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_sys_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_kb: Option<u64>,
}

impl JobResult {
    /// Record the reaped root's resource use (None: wait4 failed).
    pub fn record_usage(&mut self, u: Option<crate::sys::Usage>) {
        if let Some(u) = u {
            self.cpu_user_ms = Some(u.user_ms);
            self.cpu_sys_ms = Some(u.sys_ms);
            self.max_rss_kb = Some(u.max_rss_kb);
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub job: JobState,
    #[serde(default)]
    pub result: JobResult,
    #[serde(
        default,
        deserialize_with = "pid_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// When the job ended, in nanoseconds since the epoch (finished_at
    /// is in whole seconds, and the file's mtime moves in clock ticks):
    /// tells which of two jobs that ended a few milliseconds apart ended
    /// first (`wait --any`'s `first`). Absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ns: Option<u64>,
    /// When this run's workload was started (its exec done), in
    /// nanoseconds since the epoch, as `finished_ns` is for its end:
    /// how long after one job's end the next in a queue started, to
    /// the microsecond (the queue bench reads it). Absent in older files
    /// and before the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_ns: Option<u64>,
    #[serde(default)]
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(
        default,
        deserialize_with = "pid_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub supervisor_pid: Option<u32>,
    /// The pid namespace the supervisor runs in (`sys::pid_ns`), which
    /// numbers `pid`, `supervisor_pid` and `sid`: in another namespace
    /// they name other processes, never judged there (`unseen`). 0: not
    /// known (the supervisor had no /proc of its own), judged nowhere.
    /// Absent in records of older builds: taken to be ours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<u64>,
    /// Recorded with a run's end: whether nothing of its process group
    /// outlived its root. Where the pids cannot be judged (`unseen`), a
    /// true here says no process of the job lives; anything else, that
    /// one may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_empty: Option<bool>,
    /// The workload's session (the supervisor's): with `pid` as the
    /// process-group id it names the job's processes for good
    /// (`sys::group_members`).
    #[serde(
        default,
        deserialize_with = "pid_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub sid: Option<u32>,
    /// When the root process started (clock ticks after boot, from
    /// /proc): tells that process from a later one with the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_time: Option<u64>,
    /// A `--tty` job's: processes its supervisor found in the job's
    /// session when the root (the session's leader) ended, `[pid, start
    /// time]` (`sys::Witness`). While one of them lives, what is left of
    /// the session is still the job's (kill, timeouts, restart, delete
    /// and gc reach or count it); without one, nobody can tell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_in_session: Vec<crate::sys::Witness>,
    /// Output the job wrote that could not be stored (a full disk, EIO):
    /// empty when the logs hold everything.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<OutputLoss>,
    /// The job's queue (`--queue`), recorded when it becomes `queued`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// While `queued`: the jobs it still waits for (`--after`,
    /// `--after-ok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// While `queued` in a queue: how many of its members are ahead of it
    /// (0 = next). Never stored: readers compute it (`queue::position`).
    #[serde(skip)]
    pub queue_position: Option<u64>,
    /// Which run of the job this is: 1 for the first, one more for each
    /// `restart` or `--retry` (absent in older files: 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// The earlier runs still kept (oldest first), see `runs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_runs: Vec<PreviousRun>,
    /// Not stored: set when this state was read from `runs/<attempt>/`
    /// (an earlier run), whose logs are there too.
    #[serde(skip)]
    pub run_dir: Option<PathBuf>,
    /// A terminal state whose `job.finished` is still owed (the job has
    /// sinks, and their delivery has not ended): set with the terminal
    /// record (by the supervisor, or the reader that records it lost),
    /// cleared once delivered. A reader that finds it set with nobody
    /// delivering (`finished_by`, else the supervisor, gone) has it sent
    /// (`observe`). Never in a response.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub finished_owed: bool,
    /// The `agent-exec _notify` delivering an owed `job.finished` (None:
    /// the run's supervisor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_by: Option<u32>,
}

/// A recorded process, group or session id: one past i32::MAX is no
/// process's (the kernel's pids are positive ints) and makes the record
/// damaged, not a number that `as i32` would turn into somebody else's
/// pid (2^32 - V is -V: kill(-(-V)) signals process V).
fn pid_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    let n: Option<u32> = Option::deserialize(d)?;
    match n {
        Some(n) if n > i32::MAX as u32 => {
            Err(serde::de::Error::custom(format!("{n} is not a process id")))
        }
        n => Ok(n),
    }
}

/// A recorded signal as D7 spells it (`SIGTERM`): 0.2.3 wrote some as
/// numbers ("15") and its `kill` as bare names ("TERM"), which read as
/// their names. Anything else is kept as written.
fn signal_named<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.map(|s| match crate::sys::parse_signal(&s) {
        Some(n) if n > 0 => crate::sys::signal_name(n),
        _ => s,
    }))
}

/// An earlier run of a job, as `status` lists it (`previous_runs`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PreviousRun {
    pub attempt: u32,
    pub state: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    /// What that run could not store, as its state recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<OutputLoss>,
}

/// One log that could not take all of its stream. The log keeps what was
/// written before the first failure (an exact prefix); everything after
/// it is counted here, not written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct OutputLoss {
    /// `stdout`, `stderr`, `full` (full.log), or `stdin` (stdin.log: input
    /// that reached the job but could not be recorded).
    pub stream: String,
    pub dropped_bytes: u64,
    /// The first error's name, e.g. `ENOSPC`.
    pub errno: String,
    pub message: String,
}

impl OutputLoss {
    /// `dropped_bytes` of `stream` not stored, the first failure being `e`.
    pub fn new(stream: &str, dropped_bytes: u64, e: &std::io::Error) -> OutputLoss {
        OutputLoss {
            stream: stream.to_string(),
            dropped_bytes,
            errno: e
                .raw_os_error()
                .map_or_else(|| "EIO".to_string(), crate::sys::errno_name),
            message: e.to_string(),
        }
    }
}

impl State {
    pub fn created(id: &str) -> State {
        State {
            job: JobState {
                id: id.to_string(),
                status: Some(Status::Created),
                started_at: None,
            },
            result: JobResult::default(),
            pid: None,
            finished_at: None,
            finished_ns: None,
            started_ns: None,
            updated_at: crate::time::now_ts(),
            failure: None,
            supervisor_pid: None,
            pid_ns: None,
            group_empty: None,
            sid: None,
            pid_start_time: None,
            left_in_session: Vec::new(),
            output_lost: Vec::new(),
            attempt: None,
            previous_runs: Vec::new(),
            run_dir: None,
            queue: None,
            waiting_for: Vec::new(),
            queue_position: None,
            finished_owed: false,
            finished_by: None,
        }
    }

    /// The run's number (1 for a job's first).
    pub fn attempt(&self) -> u32 {
        self.attempt.unwrap_or(1)
    }

    /// The job's processes still alive: members of its process group in
    /// its session (none when either is unknown). Whoever signals a job's
    /// group on its behalf asks this first, so a group that cannot be
    /// shown to be the job's reads as none (`group_check`): a record
    /// without a start time (older versions, or damaged) is never
    /// believed on its pid and sid alone.
    pub fn live_processes(&self) -> Vec<u32> {
        match self.group_check() {
            Group::Job(members) => members,
            Group::None | Group::Replaced | Group::Unproven(_) => Vec::new(),
        }
    }

    /// End what is left of this ended run's group (a background process
    /// its root started): `sig`, then SIGKILL `kill_after` later. True
    /// once none of it lives; false when some outlived SIGKILL by
    /// `grace`. Before a run takes its place: `restart`'s, and the next
    /// `--retry` run's (whose record names that run alone, so `kill`
    /// would never reach these).
    pub fn end_leftovers(
        &self,
        sig: i32,
        kill_after: std::time::Duration,
        grace: std::time::Duration,
    ) -> bool {
        use std::time::Instant;
        let Some(pgid) = self.pid else { return true };
        if self.live_processes().is_empty() {
            return true;
        }
        let left = &self.left_in_session;
        let _ = crate::sys::kill_group_resuming(pgid, sig, left);
        let kill_at = Instant::now() + kill_after;
        let give_up = kill_at + grace;
        let mut killed = false;
        while !self.live_processes().is_empty() {
            let now = Instant::now();
            if !killed && now >= kill_at {
                let _ = crate::sys::kill_group(pgid, libc::SIGKILL, left);
                killed = true;
            }
            if now >= give_up {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        true
    }

    /// `live_processes` for a caller about to signal them on behalf of
    /// `job` (a reader reaping a lost supervisor's leftovers, `kill` of
    /// a job that has ended): besides the start times, each must belong
    /// to the user who owns the job's directory (`Job::owner`, against
    /// the process's real uid, `real_uid`). A record planted in a shared
    /// root by one user names whatever group it likes; without this a
    /// reader run by root would SIGKILL root's (or a third user's)
    /// processes for it. Err says why the live processes the record
    /// names are not the job's: nothing may be signalled then.
    pub fn own_processes(&self, job: &Job) -> std::result::Result<Vec<u32>, String> {
        let members = match self.group_check() {
            Group::Job(members) => members,
            Group::None | Group::Replaced => return Ok(Vec::new()),
            Group::Unproven(why) => return Err(why),
        };
        if members.is_empty() {
            return Ok(members);
        }
        let Some(owner) = job.owner() else {
            return Err("the owner of its directory cannot be read".into());
        };
        for &pid in &members {
            // None: it has ended since the scan (nothing to signal).
            match real_uid(pid) {
                Some(uid) if !admits(owner, uid) => {
                    return Err(format!(
                        "process {pid} belongs to uid {uid}, the job's directory to uid {owner}"
                    ))
                }
                _ => {}
            }
        }
        Ok(members)
    }

    /// What the recorded group is (see `Group`). While the group's leader
    /// lives it must be the process the job started (the recorded start
    /// time). A leader that is gone cannot have been replaced (the kernel
    /// hands out no number that a live process still uses as its group
    /// id), but the record may name any group whose leader has ended:
    /// every member must then have started no earlier than the recorded
    /// root, as each of the job's did (a session's processes descend from
    /// its leader, the job's root).
    fn group_check(&self) -> Group {
        let (Some(pgid), Some(sid)) = (self.pid, self.sid) else {
            return Group::None;
        };
        if pgid <= 1 {
            return Group::None;
        }
        if let Some(why) = self.unseen() {
            if self.group_empty == Some(true) {
                return Group::None;
            }
            return Group::Unproven(why.to_string());
        }
        let members = crate::sys::group_members(pgid, sid, &self.left_in_session);
        // Checked after the scan: most groups asked about are gone, and
        // the scan answers that with one system call.
        if members.is_empty() {
            return Group::None;
        }
        let Some(t) = self.pid_start_time else {
            return Group::Unproven(format!(
                "it names process group {pgid} without the start time that tells the job's root"
            ));
        };
        if self.leader_replaced() {
            return Group::Replaced;
        }
        for &pid in &members {
            if crate::sys::proc_stat(pid).is_some_and(|p| p.start_time < t) {
                return Group::Unproven(format!(
                    "process {pid} of group {pgid} started before the job's root"
                ));
            }
        }
        Group::Job(members)
    }

    /// Is the recorded root pid (the group's leader) now a different
    /// process: alive with another start time than the one recorded?
    fn leader_replaced(&self) -> bool {
        match (self.pid, self.pid_start_time) {
            (Some(pid), Some(t)) => crate::sys::proc_stat(pid).is_some_and(|p| p.start_time != t),
            _ => false,
        }
    }

    /// Who the recorded root pid names now, for a signal to the job's
    /// group while its supervisor lives (`kill`, `restart`). With a start
    /// time recorded, the process of that pid must have it (a zombie
    /// too: its group number stays reserved until it is reaped); without
    /// one (older records), it must be a child of the job's supervisor.
    /// Either way its real uid must be one the job's directory admits
    /// (`admits`: the owner's, or any for a root-owned job), or it must
    /// be the child of the job's live supervisor (a root that changed its
    /// uid, or that root started in another user's job). Anything else
    /// is somebody else's process,
    /// whether by pid reuse or a record edited (or planted) by hand:
    /// never signalled.
    pub fn leader(&self, job: &Job) -> Leader {
        let Some(pid) = self.pid else {
            return Leader::Unrecorded;
        };
        if self.unseen().is_some() {
            return Leader::Unseen;
        }
        if !crate::sys::signallable(pid) {
            return Leader::Stranger(pid);
        }
        let Some(p) = crate::sys::proc_stat(pid) else {
            return Leader::Gone;
        };
        // The child of this job's live supervisor: the kernel's parent
        // link, which no record the job can rewrite changes.
        let child = Some(p.ppid) == self.supervisor_pid && job.is_supervisor(p.ppid);
        // A running job's root is its supervisor's child until reaped: a
        // job that put another process's pid and start time in its own
        // state.json (another job's root, or anyone's) had `kill` and
        // `restart` signal that one (audit 39). Records without a
        // supervisor (0.2.3's) have the start time alone.
        let ours = match self.pid_start_time {
            Some(t) => {
                p.start_time == t
                    && (child || self.supervisor_pid.is_none() || self.status() != Status::Running)
            }
            None => child,
        };
        let owner = job.owner();
        let owned = match real_uid(pid) {
            Some(uid) => owner.is_some_and(|o| admits(o, uid)),
            // Reaped between the two reads (a run that was ending): gone,
            // as a moment later, not a stranger (that read as a damaged
            // record to a `kill` racing a fast job's end).
            None if crate::sys::proc_stat(pid).is_none() => return Leader::Gone,
            None => false,
        };
        // A root of another uid is still the job's while it is the child
        // of the job's live supervisor: one that changed its uid (`sudo
        // -u`, a setuid program), or one that root's `start` or `restart`
        // of another user's job runs as root. The kernel, not the record,
        // says who started it: a process is nobody's child but by fork.
        let owned = owned || child;
        if ours && owned {
            Leader::Root(pid)
        } else {
            Leader::Stranger(pid)
        }
    }

    /// Is the recorded root process still that process (same pid, same
    /// start time)? A reused pid is a different process.
    pub fn root_alive(&self) -> bool {
        if self.unseen().is_some() {
            return false;
        }
        match (self.pid, self.pid_start_time) {
            (Some(pid), Some(t)) => crate::sys::proc_stat(pid)
                .is_some_and(|p| p.start_time == t && p.state != b'Z' && p.state != b'X'),
            _ => false,
        }
    }

    /// This process supervises the run this record is of: its pid, the
    /// pid namespace that numbers the record's pids (0: not known, the
    /// supervisor having no /proc of its own), and no end of the run's
    /// group known yet.
    pub fn supervised_here(&mut self) {
        self.supervisor_pid = Some(std::process::id());
        self.pid_ns = Some(crate::sys::pid_ns().unwrap_or(0));
        self.group_empty = None;
    }

    /// Why this record's pids cannot be judged here, if they cannot:
    /// /proc is not this process's pid namespace's (or missing), or the
    /// job runs in another namespace than ours. Its processes are then
    /// never signalled from here, nor its supervisor taken for dead.
    pub fn unseen(&self) -> Option<&'static str> {
        if !crate::sys::proc_is_ours() {
            return Some(
                "/proc is missing or shows another pid namespace: the job's processes cannot be told from others here",
            );
        }
        match self.pid_ns {
            Some(0) => Some(
                "the job runs where /proc did not show its own pid namespace: its pids cannot be told from others",
            ),
            Some(ns) if crate::sys::pid_ns() != Some(ns) => {
                Some("the job runs in another pid namespace: its pids name other processes here")
            }
            _ => None,
        }
    }

    /// Whether processes of the job may live that this caller cannot
    /// see (`unseen`, and not recorded gone at the run's end): a removal
    /// must not take the job from here.
    pub fn may_live_unseen(&self) -> bool {
        self.pid.is_some() && self.unseen().is_some() && self.group_empty != Some(true)
    }

    /// The status; a file without one reads as `failed` so that it is
    /// never mistaken for a live job.
    pub fn status(&self) -> Status {
        self.job.status.unwrap_or(Status::Failed)
    }

    /// Mark this state failed with a reason (launch failure, lost
    /// supervisor). Keeps what is known (pid, started_at).
    pub fn fail(&mut self, code: &str, message: impl Into<String>) {
        let now = crate::time::now_ts();
        self.job.status = Some(Status::Failed);
        self.finished_at = Some(now.clone());
        self.finished_ns = u64::try_from(crate::time::now_unix_ns()).ok();
        self.updated_at = now;
        self.failure = Some(Failure {
            code: code.to_string(),
            message: message.into(),
        });
    }
}

/// What a job record's process group is now (`State::group_check`).
enum Group {
    /// No live process has the recorded group and session.
    None,
    /// The recorded root pid is another process now (reused): the group
    /// is a stranger's, not the job's.
    Replaced,
    /// The job's: these live members.
    Job(Vec<u32>),
    /// Live processes the record cannot show to be the job's (why).
    Unproven(String),
}

/// May a record in a job directory owned by `owner` name a process of
/// real uid `uid`? The owner's own processes, or anyone's when the owner
/// is root: only root can have made a root-owned job directory (and only
/// root can write in it), so its record is as trusted as root itself,
/// and root's jobs run as anyone (`setpriv`, `su`, `sudo -u`, a daemon
/// that drops its privileges). Refusing those left such a job unkillable
/// (`kill` called its record damaged) and, once its supervisor was lost,
/// undeletable. For any other owner the rule stands: a record one user
/// plants in a shared root reaches no other user's processes.
pub fn admits(owner: u32, uid: u32) -> bool {
    owner == 0 || owner == uid
}

/// The real uid of process `pid` (`Uid:` in /proc/PID/status), the one
/// kill(2) weighs: not the owner of /proc/PID, which is root for a
/// process that is not dumpable (a set-uid program a job runs).
fn real_uid(pid: u32) -> Option<u32> {
    if !crate::sys::proc_is_ours() {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_ascii_whitespace().next()?.parse().ok()
}

/// What a job record's root pid names now (`State::leader`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leader {
    /// The job's root process (alive, or a zombie not yet reaped): its
    /// group is the job's.
    Root(u32),
    /// No process has that pid: the root has ended.
    Gone,
    /// A process that is not the job's root: never to be signalled.
    Stranger(u32),
    /// No root recorded (between `--retry` runs).
    Unrecorded,
    /// Its pids cannot be judged here (`State::unseen`): never signalled.
    Unseen,
}

/// A resolved job: its id and directory, and, once `pin`ned, a shared
/// flock on the directory itself that gc and delete respect (they take
/// it exclusively, without waiting, before removing a job): a job that a
/// launcher, `wait`, `status` or the server is reading is never
/// collected under it. Shared by clones; released when the last goes.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub dir: PathBuf,
    pin: Option<std::sync::Arc<std::fs::File>>,
}

pub const META: &str = "meta.json";
pub const STATE: &str = "state.json";
/// The supervisor's scratch state files: made empty ahead of a state
/// write, renamed over state.json, and holding the state replaced until
/// they are unlinked a moment later. Their bytes are not the job's
/// (`gc::dir_bytes`): counted, a job that had just ended weighed one
/// replaced state more, and auto-GC's `max_bytes` took one job too many.
pub const NEXT_STATE: &str = ".state.next";
pub const RUN_STATE: &str = ".state.run";
pub const PREV_STATE: &str = ".state.prev";
pub const SCRATCH_STATES: [&str; 3] = [NEXT_STATE, RUN_STATE, PREV_STATE];
pub const STDOUT: &str = "stdout.log";
pub const STDERR: &str = "stderr.log";
pub const FULL: &str = "full.log";
pub const LOCK: &str = "lock";
/// Byte `RUN_LOCK_BASE + attempt` of the lock file carries an OFD write
/// lock for as long as the supervisor that runs that attempt lives (its
/// `--retry` attempts included): a waiter blocks on the byte of the run it
/// began on, which no later run (`restart`) ever takes. The flock on the
/// whole file says the job is alive; the byte says which run is.
pub const RUN_LOCK_BASE: u64 = 1 << 20;

/// Byte 1 of the lock file carries an OFD write lock while a `restart`
/// of the job is under way, from before it stops the run to the new
/// run's launch (byte 0 is the notification guard): between the old
/// run's end and the new one, the job reads ended, and a `send` then
/// would have said `stdin_closed` of a job about to take input.
pub const RESTART_BYTE: u64 = 1;

/// The lock-file byte of a job's run (see `RUN_LOCK_BASE`).
pub fn run_lock_byte(attempt: u32) -> u64 {
    RUN_LOCK_BASE + u64::from(attempt)
}
/// Serialises client-side edits of meta.json (`tag set`, `notify set`).
pub const META_LOCK: &str = "meta.lock";
pub const ENV: &str = "env.json";
pub const STDIN: &str = "stdin.bin";
/// Why a `--stdin-file` source could not be read when the job was
/// defined (it then has no stdin.bin): the supervisor's
/// `stdin_unreadable` message, so that it names the caller's file.
pub const STDIN_UNREADABLE: &str = "stdin.unreadable";
pub const COMPLETION_EVENT: &str = "completion_event.json";
pub const MATCH_EVENTS: &str = "notification_events.ndjson";

/// How long a reader waits for a removal holding the job's directory
/// (`Job::pin`): a removal takes milliseconds; one that takes longer is
/// stopped or stuck.
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Job {
    pub fn new(id: impl Into<String>, dir: PathBuf) -> Job {
        Job {
            id: id.into(),
            dir,
            pin: None,
        }
    }

    /// Hold the job directory against collection (see the struct). Waits
    /// out a removal in progress, after which the job is gone
    /// (`job_not_found`); one that does not finish within `REMOVAL_WAIT`
    /// (stopped, or stuck) is `invalid_state`, retryable. A directory
    /// that is a symlink is refused.
    pub fn pin(&mut self) -> Result<()> {
        self.pin_dir(true)
    }

    /// `pin` for a directory being written (no meta.json yet).
    pub fn pin_new(&mut self) -> Result<()> {
        self.pin_dir(false)
    }

    fn pin_dir(&mut self, defined: bool) -> Result<()> {
        if self.pin.is_some() {
            return Ok(());
        }
        let f = crate::sys::open_dir_lockable(&self.dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::JobNotFound(self.id.clone()),
            _ => Error::io(format!("open {}", self.dir.display()), e),
        })?;
        if !crate::sys::try_lock_shared(&f).map_err(|e| Error::io("lock job directory", e))? {
            self.wait_out_removal(&f)?;
        }
        // Removed while we waited (or a half-written directory). A
        // directory that cannot be opened for another reason (out of
        // descriptors) is an I/O failure, never "not found": a caller
        // would conclude the job is gone.
        if defined {
            match crate::sys::Dir::open(&self.dir).map(|d| d.exists(META)) {
                Ok(true) => {}
                Ok(false) => return Err(Error::JobNotFound(self.id.clone())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::JobNotFound(self.id.clone()))
                }
                Err(e) => return Err(Error::io(format!("open {}", self.dir.display()), e)),
            }
        }
        self.pin = Some(std::sync::Arc::new(f));
        Ok(())
    }

    /// The directory is held exclusively: by a removal (`delete`, `gc`),
    /// which sets the job aside within milliseconds. Waited out, in short
    /// sleeps, for `REMOVAL_WAIT` at most, and not past a stop signal: a
    /// remover stopped there (SIGSTOP, a debugger) held every reader of
    /// the job for good, a `wait` deaf to SIGTERM included. Then
    /// `invalid_state`, retryable.
    fn wait_out_removal(&self, f: &std::fs::File) -> Result<()> {
        let until = std::time::Instant::now() + REMOVAL_WAIT;
        let mut step = std::time::Duration::from_millis(1);
        loop {
            std::thread::sleep(step);
            step = (step * 2).min(std::time::Duration::from_millis(20));
            if crate::sys::try_lock_shared(f).map_err(|e| Error::io("lock job directory", e))? {
                return Ok(());
            }
            if std::time::Instant::now() >= until || crate::sys::stop_requested() {
                return Err(Error::Busy(format!(
                    "invalid job state: job {} is held by a removal in progress (delete or gc) that has not finished; try again",
                    self.id
                )));
            }
        }
    }

    /// Let go of the pin (this clone's share of it).
    pub fn unpin(&mut self) {
        self.pin = None;
    }

    /// The pin's descriptor, for a holder that wants to upgrade it to the
    /// exclusive lock of a removal.
    pub fn pin_file(&self) -> Option<&std::fs::File> {
        self.pin.as_deref()
    }

    /// Take the job lock for a launch: create `lock` already locked
    /// (a temp file, flock'ed, then linked into place — link fails if the
    /// name exists), so that no reader ever sees a lock file that is free
    /// while a launch holds it. Err(None): a lock file exists already
    /// (the job was launched, or is being). A `lock` that is a symlink or
    /// not a regular file is `unsafe_path`, never "exists already": a
    /// caller that retried on that would retry forever.
    pub fn claim_lock(&self) -> std::result::Result<std::fs::File, Option<Error>> {
        let io = |what: &str, e| Some(Error::io(format!("{what} {}", self.dir.display()), e));
        let d = crate::sys::Dir::open(&self.dir).map_err(|e| io("open", e))?;
        let tmp = format!(
            ".lock-{}-{}",
            std::process::id(),
            crate::time::now_unix_ns()
        );
        let f = d
            .open_file(&tmp, crate::sys::How::CreateNew)
            .map_err(|e| io("create lock in", e))?;
        let locked = crate::sys::lock_exclusive(&f);
        let linked = locked.and_then(|()| d.link(&tmp, LOCK));
        let _ = d.unlink(&tmp);
        match linked {
            Ok(()) => Ok(f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match d.open_regular(LOCK) {
                    // Gone again meanwhile: the caller may claim anew.
                    Ok(_) => Err(None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(None),
                    Err(e) => Err(Some(self.lock_error(e))),
                }
            }
            Err(e) => Err(io("link lock in", e)),
        }
    }

    /// The job lock, if the file exists (never created here) and is a
    /// regular file: a directory or FIFO planted as `lock` is no launch
    /// (nothing a reader may reconcile), as a symlink is not.
    pub fn open_lock(&self) -> Option<std::fs::File> {
        crate::sys::Dir::open(&self.dir)
            .and_then(|d| d.open_regular(LOCK))
            .map(|(f, _)| f)
            .ok()
    }

    /// Is a `restart` of this job under way (`RESTART_BYTE`)?
    pub fn is_restarting(&self) -> bool {
        self.open_lock()
            .is_some_and(|l| crate::sys::ofd_held(&l, RESTART_BYTE))
    }

    /// Is a launch (`run`, `start`, `restart`) starting this `created`
    /// job right now? It holds the job lock while it starts the
    /// supervisor: the job is about to run, and what a caller wanted of
    /// the running job (kill, send) works a moment later.
    pub fn is_launching(&self) -> bool {
        self.open_lock()
            .is_some_and(|l| matches!(crate::sys::try_lock_shared(&l), Ok(false)))
    }

    /// `open_lock` for a caller that must tell a missing lock (Ok(None):
    /// never launched) from one it may not use: a `lock` that is a
    /// symlink or not a regular file is `unsafe_path`. Open for writing:
    /// a launch hands this descriptor to the supervisor, which takes
    /// write locks on its bytes (its run's byte, the notification guard)
    /// and reserves room in it, none of which a read-only one allows.
    pub fn open_lock_checked(&self) -> Result<Option<std::fs::File>> {
        let opened = crate::sys::Dir::open(&self.dir)
            .and_then(|d| d.open_file(LOCK, crate::sys::How::Existing));
        match opened {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.lock_error(e)),
        }
    }

    fn lock_error(&self, e: std::io::Error) -> Error {
        Error::io(format!("open {}", self.path(LOCK).display()), e)
    }

    /// The uid that owns the job's directory (the entry itself, not a
    /// symlink's target): the user whose processes a record in it may
    /// name (`State::own_processes`). Fixed when the directory is made,
    /// whoever rewrites state.json later (a reader recording a lost
    /// supervisor, as root).
    pub fn owner(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(&self.dir).ok().map(|m| m.uid())
    }

    /// Is process `pid` this job's supervisor (argv: agent-exec
    /// _supervise ROOT ID ...)? What a job record names as its supervisor
    /// is signalled, or taken as alive, only if so: a pid reused by
    /// anything else, or written there by hand, has another command line
    /// (a zombie's reads empty: not any more).
    pub fn is_supervisor(&self, pid: u32) -> bool {
        self.runs_ours(pid, &[b"_supervise"])
    }

    /// Is `pid` a process of ours delivering this job's `job.finished`:
    /// its supervisor, or an `agent-exec _notify` for it?
    pub fn is_deliverer(&self, pid: u32) -> bool {
        self.runs_ours(pid, &[b"_supervise", b"_notify"])
    }

    /// Is `pid` an agent-exec running one of the internal `verbs` for
    /// this job (argv: agent-exec VERB ROOT ID ...)?
    fn runs_ours(&self, pid: u32, verbs: &[&[u8]]) -> bool {
        if pid <= 1 || pid > i32::MAX as u32 || !crate::sys::proc_is_ours() {
            return false;
        }
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let mut args = cmdline.split(|&b| b == 0);
        args.nth(1).is_some_and(|v| verbs.contains(&v)) && args.nth(1) == Some(self.id.as_bytes())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    pub fn stdout_path(&self) -> PathBuf {
        self.path(STDOUT)
    }
    pub fn stderr_path(&self) -> PathBuf {
        self.path(STDERR)
    }
    pub fn stdout_display(&self) -> String {
        self.stdout_path().to_string_lossy().into_owned()
    }
    pub fn stderr_display(&self) -> String {
        self.stderr_path().to_string_lossy().into_owned()
    }

    pub fn read_meta(&self) -> Result<Meta> {
        read_json(&self.path(META))
    }
    /// Which version of meta.json is in place now (None: none readable).
    /// meta.json is only ever replaced by rename, so a new version has a
    /// new inode: a reader that took the stamp before reading the file
    /// knows by one lstat whether what it read is still current.
    pub fn meta_stamp(&self) -> Option<MetaStamp> {
        let m = std::fs::symlink_metadata(self.path(META)).ok()?;
        Some(MetaStamp::of(&m))
    }
    /// state.json; a job whose meta.json exists but whose state.json does
    /// not yet is being started by `run` (see `launch::define`) and reads
    /// as `created`, updated when it was defined.
    pub fn read_state(&self) -> Result<State> {
        self.read_state_else(|| self.read_meta().ok().map(|m| m.created_at))
    }
    /// `read_state` for a caller that holds meta.json already.
    pub fn read_state_given(&self, meta: &Meta) -> Result<State> {
        self.read_state_else(|| Some(meta.created_at.clone()))
    }
    /// `defined_at`: when the job was defined, None if it was not.
    fn read_state_else(&self, defined_at: impl FnOnce() -> Option<String>) -> Result<State> {
        let path = self.path(STATE);
        let e = match read_json(&path) {
            Ok(st) => return Ok(st),
            Err(e) => e,
        };
        // lstat: a dangling symlink is there, not missing (followed, it
        // read as no state, and a reader recorded launch_lost over it).
        if std::fs::symlink_metadata(&path).is_ok() {
            // Written meanwhile (or damaged: then this read says so).
            return read_json(&path);
        }
        match defined_at() {
            Some(at) => {
                let mut st = State::created(&self.id);
                st.updated_at = at;
                Ok(st)
            }
            None => Err(e),
        }
    }
    pub fn write_meta(&self, meta: &Meta) -> Result<()> {
        write_json(&self.dir, META, meta, false)
    }
    /// Write state.json; `durable` fsyncs it (terminal states).
    pub fn write_state(&self, state: &State, durable: bool) -> Result<()> {
        write_json(&self.dir, STATE, state, durable)
    }
}

/// One version of meta.json: inode, size, modification time (`Job::meta_stamp`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MetaStamp([u64; 4]);

impl MetaStamp {
    /// The stamp of meta.json's metadata `m`.
    pub fn of(m: &std::fs::Metadata) -> MetaStamp {
        use std::os::unix::fs::MetadataExt;
        MetaStamp([m.ino(), m.len(), m.mtime() as u64, m.mtime_nsec() as u64])
    }
}

/// Read-modify-write `meta.json` under an exclusive flock on
/// `<job>/meta.lock`, so two concurrent edits (`tag set`, `notify set`)
/// never lose one another: each sees the other's result. The lock file is
/// separate from `lock` (the supervisor's liveness lock, held for the
/// whole run) and from meta.json itself (replaced by rename, so a lock on
/// it would guard a file that is no longer the current one). `f` may
/// refuse the change; nothing is written then. Returns what was stored.
pub fn update_meta(job: &Job, f: impl FnOnce(&mut Meta) -> Result<()>) -> Result<Meta> {
    let path = job.path(META_LOCK);
    let lock = crate::store::open_lock(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    crate::sys::lock_exclusive(&lock)
        .map_err(|e| Error::io(format!("lock {}", path.display()), e))?;
    let mut meta = job.read_meta()?;
    f(&mut meta)?;
    job.write_meta(&meta)?;
    // Closing `lock` releases the flock, after the rename is done.
    drop(lock);
    Ok(meta)
}

/// Read a small regular file whole into `buf`: one read(2) when it fits
/// the buffer (a short read from a regular file is its end), instead of
/// read_to_end's fstat and second read. Our JSON files are replaced by
/// rename, never written in place, so a read never sees half a file.
fn read_small(path: &Path, buf: &mut Vec<u8>) -> std::io::Result<()> {
    read_all(&mut crate::sys::open_read(path)?, buf)
}

/// The largest job record read (meta.json holds the command line, which
/// the kernel bounds far below this): a hand-made giant is refused, not
/// loaded.
pub const MAX_JSON: usize = 16 * 1024 * 1024;

fn read_all(f: &mut std::fs::File, buf: &mut Vec<u8>) -> std::io::Result<()> {
    use std::io::Read;
    buf.clear();
    let mut len = 0;
    loop {
        if len > MAX_JSON {
            break;
        }
        if buf.len() < len + 4096 {
            buf.resize((len + 4096).max(buf.capacity()), 0);
        }
        let want = buf.len() - len;
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if n < want {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(())
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    // A fresh buffer is cheap: blocks up to 4 KiB come back from
    // sys::SmallAlloc's free lists (a thread-local buffer would cost
    // every command a TLS-destructor registration: two system calls).
    let mut buf = Vec::new();
    read_small(path, &mut buf).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    if buf.len() > MAX_JSON {
        return Err(damaged(path, format!("larger than {MAX_JSON} bytes")));
    }
    serde_json::from_slice(&buf).map_err(|e| damaged(path, e.to_string()))
}

/// A job record that exists but cannot be understood (truncated, hand
/// edited, too large): bad input, not a bug of ours, so `io_error`
/// (InvalidData) rather than `internal_error`.
pub fn damaged(path: &Path, why: String) -> Error {
    Error::io(
        format!("read {}", path.display()),
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("damaged job record: {why}"),
        ),
    )
}

/// `read_json` of `name` in the open directory `dir`, with the file's
/// metadata as it was before the read (from the open descriptor, so it
/// describes the file that was read; the same fstat that refuses what
/// is not a regular file). None: missing, unreadable or not JSON.
pub fn read_json_stamped_in<T: for<'de> Deserialize<'de>>(
    dir: &crate::sys::Dir,
    name: &str,
) -> Option<(T, std::fs::Metadata)> {
    let (mut f, m) = dir.open_regular(name).ok()?;
    let mut buf = Vec::new();
    read_all(&mut f, &mut buf).ok()?;
    if buf.len() > MAX_JSON {
        return None;
    }
    Some((serde_json::from_slice(&buf).ok()?, m))
}

pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T, durable: bool) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::internal(format!("serialize {name}: {e}")))?;
    store::write_atomic(dir, name, &text, durable)
        .map_err(|e| Error::io(format!("write {}", dir.join(name).display()), e))
}

// ---------------------------------------------------------------------------
// Tags
// ---------------------------------------------------------------------------

fn tag_reason(tag: &str) -> Option<&'static str> {
    if tag.is_empty() {
        return Some("tag must not be empty");
    }
    if tag.ends_with(".*") {
        return Some("stored tag may not end with '.*' (use exact tag names for run/tag set)");
    }
    if tag.split('.').any(str::is_empty) {
        return Some("tag segments must not be empty (no leading, trailing, or consecutive dots)");
    }
    if !tag
        .split('.')
        .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Some("tag segments may only contain alphanumeric characters and hyphens");
    }
    None
}

/// A stored tag: dot-separated segments of `[A-Za-z0-9-]`.
pub fn validate_tag(tag: &str) -> Result<()> {
    match tag_reason(tag) {
        None => Ok(()),
        Some(why) => Err(Error::InvalidTag(format!("invalid tag {tag:?}: {why}"))),
    }
}

/// A filter: an exact tag, or `ns.*` for a namespace.
pub fn validate_tag_pattern(pat: &str) -> Result<()> {
    let base = pat.strip_suffix(".*").unwrap_or(pat);
    match tag_reason(base) {
        None => Ok(()),
        Some(why) => Err(Error::InvalidTag(format!("invalid tag {pat:?}: {why}"))),
    }
}

/// Does a job with `tags` match `pattern` (already validated)?
pub fn tag_matches(tags: &[String], pattern: &str) -> bool {
    match pattern.strip_suffix(".*") {
        Some(ns) => tags
            .iter()
            .any(|t| t == ns || (t.starts_with(ns) && t.as_bytes().get(ns.len()) == Some(&b'.'))),
        None => tags.iter().any(|t| t == pattern),
    }
}

/// Deduplicate keeping the first occurrence.
pub fn dedup(items: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for &i in items {
        if !out.iter().any(|o| o == i) {
            out.push(i.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_recorded_as_a_number_reads_as_its_name() {
        let r: JobResult = serde_json::from_str(r#"{"exit_code":null,"signal":"15"}"#).unwrap();
        assert_eq!(r.signal.as_deref(), Some("SIGTERM"));
        let r: JobResult = serde_json::from_str(r#"{"signal":"SIGKILL"}"#).unwrap();
        assert_eq!(r.signal.as_deref(), Some("SIGKILL"));
        let r: JobResult = serde_json::from_str(r#"{"signal":"TERM"}"#).unwrap();
        assert_eq!(r.signal.as_deref(), Some("SIGTERM"));
        let r: JobResult = serde_json::from_str(r#"{"signal":"odd"}"#).unwrap();
        assert_eq!(r.signal.as_deref(), Some("odd"));
        let r: JobResult = serde_json::from_str(r#"{"signal":null}"#).unwrap();
        assert_eq!(r.signal, None);
    }

    #[test]
    fn tag_rules() {
        for ok in ["ci", "project.build", "hoge-fuga.v2", "A-1.b"] {
            validate_tag(ok).unwrap();
        }
        for bad in ["", "a.*", ".a", "a.", "a..b", "a b", "a/b", "é"] {
            let e = validate_tag(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_tag", "{bad}");
        }
        validate_tag_pattern("ns.*").unwrap();
        assert!(validate_tag_pattern(".*").is_err());
        assert!(validate_tag_pattern("a.*.*").is_err());
    }

    #[test]
    fn namespace_patterns() {
        let tags = vec!["ns.a".to_string(), "other".to_string()];
        assert!(tag_matches(&tags, "ns.*"));
        assert!(tag_matches(&tags, "other"));
        assert!(!tag_matches(&tags, "ns"));
        assert!(!tag_matches(&["nsx".to_string()], "ns.*"));
        assert!(tag_matches(&["ns".to_string()], "ns.*"));
    }

    #[test]
    fn dedup_keeps_first() {
        assert_eq!(dedup(&["b", "a", "b", "c", "a"]), vec!["b", "a", "c"]);
    }

    #[test]
    fn update_meta_loses_no_concurrent_edit() {
        let dir = std::env::temp_dir().join(format!(
            "ae-job-update-{}-{}",
            std::process::id(),
            store::new_id().unwrap()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let job = Job::new("X", dir.clone());
        let meta: Meta = serde_json::from_str(r#"{"job":{"id":"X"},"command":["true"]}"#).unwrap();
        job.write_meta(&meta).unwrap();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let job = job.clone();
                std::thread::spawn(move || {
                    update_meta(&job, |m| {
                        m.tags.push(format!("t{i}"));
                        Ok(())
                    })
                    .unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let tags = job.read_meta().unwrap().tags;
        assert_eq!(tags.len(), 16, "{tags:?}");
        for i in 0..16 {
            assert!(tags.contains(&format!("t{i}")), "{tags:?}");
        }
        // A refused edit writes nothing.
        let e = update_meta(&job, |m| {
            m.tags.clear();
            Err(Error::InvalidTag("no".into()))
        })
        .unwrap_err();
        assert_eq!(e.code(), "invalid_tag");
        assert_eq!(job.read_meta().unwrap().tags.len(), 16);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(META_LOCK))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn small_reads_are_whole() {
        let dir = std::env::temp_dir().join(format!("ae-job-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut buf = Vec::new();
        for len in [0usize, 1, 4095, 4096, 4097, 10_000, 70_000] {
            let p = dir.join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, &data).unwrap();
            read_small(&p, &mut buf).unwrap();
            assert_eq!(buf, data, "length {len}");
        }
        // The same buffer serves a later, shorter file exactly.
        let p = dir.join("short.json");
        std::fs::write(&p, br#"{"job":{"id":"X"},"command":["true"]}"#).unwrap();
        let m: Meta = read_json(&p).unwrap();
        assert_eq!(m.job.id, "X");
        assert!(read_json::<Meta>(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_job_without_state_json_reads_as_created_only_if_defined() {
        let dir = std::env::temp_dir().join(format!("ae-job-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let job = Job::new("X", dir.clone());
        // Neither file: not a job (yet).
        assert!(job.read_state().is_err());
        // meta.json alone: `run` has defined it, its supervisor has not
        // written a state yet.
        std::fs::write(
            dir.join(META),
            r#"{"job":{"id":"X"},"command":["true"],"created_at":"2026-01-02T03:04:05Z"}"#,
        )
        .unwrap();
        let st = job.read_state().unwrap();
        assert_eq!(st.status(), Status::Created);
        assert_eq!(st.updated_at, "2026-01-02T03:04:05Z");
        assert!(st.job.started_at.is_none() && st.pid.is_none());
        // A damaged state.json is an error, not `created`.
        std::fs::write(dir.join(STATE), "{").unwrap();
        assert!(job.read_state().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_named_configs_settings_round_trip_and_missing_keys_are_defaults() {
        let mut m: Meta = serde_json::from_str(r#"{"job":{"id":"X"},"command":["true"]}"#).unwrap();
        m.keep_runs = Some(2);
        m.sink_timeout_ms = Some(0);
        m.gc = Some(crate::config::GcConfig {
            auto: false,
            older_than: Some("7d".into()),
            older_than_secs: 604_800,
            older_than_invalid: None,
            max_jobs: Some(3),
            max_bytes: None,
            scan_limit: 9,
            delete_limit: 1,
        });
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains(
            r#""gc":{"auto":false,"older_than_secs":604800,"max_jobs":3,"scan_limit":9,"delete_limit":1}"#
        ), "{text}");
        let back: Meta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.sink_timeout_ms(), Some(0));
        // Milliseconds win over the seconds kept for older versions.
        (m.sink_timeout_ms, m.sink_timeout_secs) = (Some(500), Some(1));
        let text = serde_json::to_string(&m).unwrap();
        assert!(
            text.contains(r#""sink_timeout_ms":500,"sink_timeout_secs":1"#),
            "{text}"
        );
        let back: Meta = serde_json::from_str(&text).unwrap();
        assert_eq!(back.sink_timeout_ms(), Some(500));
        // A job an older version defined has the seconds only.
        let old: Meta =
            serde_json::from_str(r#"{"job":{"id":"X"},"command":["true"],"sink_timeout_secs":7}"#)
                .unwrap();
        assert_eq!(old.sink_timeout_ms(), Some(7000));
        let gc = back.gc.unwrap();
        // The text form is not kept: the seconds say the same.
        assert_eq!((gc.older_than, gc.older_than_secs), (None, 604_800));
        assert_eq!((gc.auto, gc.max_jobs, gc.delete_limit), (false, Some(3), 1));
        // A key missing from a kept [gc] (one added later) reads as its
        // default.
        let m: Meta =
            serde_json::from_str(r#"{"job":{"id":"X"},"command":["true"],"gc":{"auto":false}}"#)
                .unwrap();
        let want = crate::config::GcConfig {
            auto: false,
            ..Default::default()
        };
        assert_eq!(m.gc, Some(want));
    }

    #[test]
    fn minimal_files_load() {
        let m: Meta = serde_json::from_str(r#"{"job":{"id":"X"},"command":["true"]}"#).unwrap();
        assert!(m.inherit_env);
        assert_eq!(m.tags, Vec::<String>::new());
        // Written before a `--config` file's settings were kept: none
        // kept, so later launches read the default config.
        assert_eq!((m.keep_runs, m.sink_timeout_ms()), (None, None));
        assert_eq!(m.gc, None);
        let s: State = serde_json::from_str(
            r#"{"job":{"id":"X","status":"running"},"result":{"exit_code":null,"signal":null,"duration_ms":null},"updated_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(s.status(), Status::Running);
        assert!(!s.result.timed_out);
    }
}
