//! Notifications: the `job.finished` and `job.output.matched` events, the
//! sinks that receive them, the output matcher the supervisor's tee calls
//! per line, and the one delivery thread behind it.
//!
//! Owns
//! - building `meta.notification` from flags (`run`, `create`, `notify
//!   set`; §10.5 of the reference): `notification_from`;
//! - the events and their field order; `completion_event.json`,
//!   `notification_events.ndjson` and `match_events/<seq>.json`;
//! - command sinks (job's shell wrapper + the command string, event JSON on
//!   stdin, own process group, time limit) and file sinks (one NDJSON line
//!   appended);
//! - `Matcher`: reloads the output-match config when meta.json changes,
//!   matches lines, queues hits for the delivery thread.
//!
//! Invariants
//! - Nothing here ever blocks the tee: the tee thread only matches (a
//!   substring search or a precompiled regex) and queues, once per read
//!   batch. Sinks run on one delivery thread per job (started at the
//!   first hit), so events of a job are delivered in order, and a sink
//!   that sleeps for minutes delays only later notifications.
//! - Order per job: every match event is delivered (the queue drained)
//!   before `job.finished`, whose sinks are those saved when the terminal
//!   state was published, so a `notify set` accepted while the job ran
//!   counts. A launch failure (`failed`, e.g. `cwd_not_found`) gets its
//!   `job.finished` too.
//! - One `job.finished` per supervised run, built from the terminal state
//!   that run published (`Finished`), never from state.json read later: a
//!   `restart` may have replaced it with the next run's by then.
//! - Memory stays bounded under a flood of matches with a slow sink: the
//!   queue holds at most `MEM_QUEUE_BYTES` of lines in memory; beyond that
//!   every further hit is appended to a spool file in the job directory
//!   (`match_queue.spool`) until the thread has caught up, which keeps the
//!   order (memory first, then the spool, then memory again). Chosen over
//!   a bounded channel that blocks (would stall the job) or drops (would
//!   lose events).
//! - Config is reloaded only when meta.json changes (D18): one stat per
//!   read batch, after the read and before matching, compared on
//!   (mtime, inode, size). Every write of meta.json is a rename, so the
//!   inode alone changes on every save. A regex is compiled once per load.
//! - Delivery never changes the job's state: the terminal state is on disk
//!   (and the job lock released) before the first `job.finished` sink runs.
//! - Every line printed after the config was saved is matched (complete
//!   lines and the final partial line; lines over 64 KiB as 64 KiB
//!   pieces). Nothing already processed is replayed. A line already in the
//!   pipe when `notify set` returns is matched with the new config too:
//!   the supervisor cannot know when a byte was written.
//!
//! Decisions
//! - Matching is on the raw bytes for `contains` (equivalent to matching
//!   the lossy UTF-8 text for any pattern without U+FFFD) and on the lossy
//!   text for `regex` (regex-lite works on `&str`). For `contains`, one
//!   search over each read chunk decides for all lines wholly inside it,
//!   so a pattern that never matches costs about one vectorised scan of
//!   the output, not a call per line.
//! - Cost per hit off the tee: consecutive events with the same config
//!   and no command sink share one write to the file sink and one to
//!   `notification_events.ndjson` (each record carries that write's
//!   result).
//! - A command sink's `AGENT_EXEC_EVENT_PATH` names a file that already
//!   holds its event: `completion_event.json`, or, for matches,
//!   `match_events/<seq>.json` where `<seq>` is the event's line number in
//!   `notification_events.ndjson` (0.2.3 pointed at the NDJSON file before
//!   the record was in it). Those files are written only when a command
//!   sink is configured. When one cannot be written (a full disk), its
//!   sink is not started (D41: no path handed out that does not exist);
//!   its delivery result says so, and where even that cannot be written,
//!   a warning on the supervisor's stderr.
//! - A command sink runs in the supervisor's environment (the one of the
//!   command that started the job), never with the job's `--env` values
//!   (which are the job's). Under a login-shell wrapper its PATH is
//!   rebuilt as the job's is (D36, `supervisor::reapply_script`): the
//!   caller's entries first, then those the profile added.
//! - Command sinks run in the directory the supervisor was started in:
//!   the cwd of the command that launched the job (`run`, `start`,
//!   `restart`), not the job's `--cwd`, as in 0.2.3 (reference §10.3);
//!   `/`, where the supervisor itself runs, when that directory is gone.
//!   Their time
//!   limit is `[notify] sink_timeout` of the config the launching command
//!   read (`run --config`, else the default), handed to the supervisor as
//!   `--sink-timeout`; `0` means no limit.
//!   At the limit the sink's process group gets SIGKILL.
//! - A file sink target stays open; before each batch one stat checks
//!   that its path still names the same file, so a consumer that rotates
//!   or removes it sees new events in a new file from the next batch on
//!   (reopening per batch cost a mkdir, an open and a close per line when
//!   a job prints one matching line at a time).
//!
//! Rejected: re-reading meta.json per line and compiling the regex per
//! line (0.2.3: about 8 µs a line); running sinks inside the reader (0.2.3:
//! a slow sink back-pressured the job); a sink without a time limit (0.2.3:
//! a hanging sink pinned the supervisor forever).

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::job::{self, Failure, Job, Meta, Notification, OutputMatch, State};
use crate::{store, supervisor, sys};

pub const EVENT_FINISHED: &str = "job.finished";
pub const EVENT_MATCHED: &str = "job.output.matched";

/// Directory (in the job dir) of per-event files for match command sinks.
pub const MATCH_EVENT_DIR: &str = "match_events";
/// Overflow of the in-memory match queue.
const SPOOL: &str = "match_queue.spool";
/// Bytes of queued lines kept in memory before spilling to `SPOOL`.
const MEM_QUEUE_BYTES: usize = 8 * 1024 * 1024;
/// Bookkeeping per queued item, counted against `MEM_QUEUE_BYTES`.
const ITEM_OVERHEAD: usize = 64;
/// Most events the delivery thread takes at once.
const BATCH: usize = 1024;
/// How long the delivery thread lets a burst of matches accumulate.
const LINGER: Duration = Duration::from_millis(2);
/// Most bytes of lines the delivery thread reads from the spool at once.
const SPOOL_BATCH_BYTES: usize = 2 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Building the stored configuration (§10.5)
// ---------------------------------------------------------------------------

const OUTPUT_FLAGS: [&str; 5] = [
    "output-pattern",
    "output-match-type",
    "output-stream",
    "output-command",
    "output-file",
];

/// A flag's value only when it was given (never a table default), so a
/// merge never overrides a stored value with a default.
fn given<'a>(m: &'a Matches, long: &str) -> Option<&'a str> {
    if m.has(long) {
        m.get(long)
    } else {
        None
    }
}

/// Relative sink paths resolve against the caller's cwd now, once.
fn absolute(p: &str) -> String {
    store::absolutize(Path::new(p))
        .to_string_lossy()
        .into_owned()
}

/// The notification config after applying `m`'s flags to `existing`
/// (None for a new job). `--notify-command` (run/create) or `--command`
/// (notify set) replaces the completion command; `--notify-file` replaces
/// the completion file. Output-match: no `--output-*` flag keeps the
/// existing config; otherwise the given fields override it (or the
/// defaults). An empty resulting pattern means no output-match at all:
/// what `--output-pattern ''` alone asks for; with other `--output-*`
/// flags it is a `usage_error` (their settings would be lost). A regex
/// that does not compile is `invalid_pattern`.
pub fn notification_from(
    m: &Matches,
    existing: Option<&Notification>,
) -> Result<Option<Notification>> {
    let mut n = existing.cloned().unwrap_or_default();
    // A blank command clears its sink, as an empty --output-pattern
    // clears output-match: stored, it would fail at every delivery, and
    // `notify set` would have no other way to remove it. (`run` and
    // `create` refuse one: `launch::check_flags`.)
    let command = |c: &str| (!c.trim().is_empty()).then(|| c.to_string());
    if let Some(c) = given(m, "notify-command").or_else(|| given(m, "command")) {
        n.notify_command = command(c);
    }
    if let Some(f) = given(m, "notify-file") {
        n.notify_file = Some(absolute(f));
    }
    if OUTPUT_FLAGS.iter().any(|f| m.has(f)) {
        let mut om = n.on_output_match.take().unwrap_or_else(|| OutputMatch {
            pattern: String::new(),
            match_type: "contains".into(),
            stream: "either".into(),
            command: None,
            file: None,
        });
        if let Some(p) = given(m, "output-pattern") {
            om.pattern = p.to_string();
        }
        if let Some(t) = given(m, "output-match-type") {
            om.match_type = t.to_string();
        }
        if let Some(s) = given(m, "output-stream") {
            om.stream = s.to_string();
        }
        if let Some(c) = given(m, "output-command") {
            om.command = command(c);
        }
        if let Some(f) = given(m, "output-file") {
            // Empty: removes the file sink (`run` and `create` refuse it).
            om.file = (!f.is_empty()).then(|| absolute(f));
        }
        if om.pattern.is_empty() {
            // Nothing to match: settings for matches would be dropped
            // (0.2.3 did so silently). Refused instead; an empty
            // --output-pattern alone clears output-match on purpose.
            let orphans: Vec<String> = OUTPUT_FLAGS[1..]
                .iter()
                .filter(|f| m.has(f))
                .map(|f| format!("--{f}"))
                .collect();
            if !orphans.is_empty() {
                return Err(Error::usage(format!(
                    "{} needs --output-pattern: no pattern is set (an empty --output-pattern alone clears output-match)",
                    orphans.join(", ")
                )));
            }
        } else {
            check_pattern(&om)?;
            n.on_output_match = Some(om);
        }
    }
    Ok((!n.is_empty()).then_some(n))
}

/// Reject a regex that does not compile, when it is set (D18).
pub fn check_pattern(om: &OutputMatch) -> Result<()> {
    if om.match_type == "regex" {
        if let Err(e) = regex_lite::Regex::new(&om.pattern) {
            return Err(Error::InvalidPattern(format!(
                "invalid regex {:?} for --output-pattern: {e}",
                om.pattern
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Events and delivery results
// ---------------------------------------------------------------------------

/// `job.finished`: the fields of 0.2.3 in its order, then ours
/// (`timed_out`, and `failure` for a failed job).
#[derive(Serialize, Debug)]
pub struct FinishedEvent {
    pub schema_version: &'static str,
    pub event_type: &'static str,
    pub job_id: String,
    pub state: &'static str,
    pub command: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub stdout_log_path: String,
    pub stderr_log_path: String,
    pub timed_out: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// cpu_user_ms, cpu_sys_ms, max_rss_kb (`crate::usage`).
    #[serde(flatten)]
    pub cost: crate::usage::Cost,
    /// Which run this is (1: the first; `restart`, `--retry`): the event
    /// fires once per run that is not retried, for its last attempt.
    pub attempt: u32,
    /// Output that could not be stored (a full disk), as every response
    /// about the job says it: a consumer of the event alone could not
    /// tell that the logs are short.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<crate::job::OutputLoss>,
}

impl FinishedEvent {
    pub fn new(job: &Job, meta: &Meta, st: &State) -> FinishedEvent {
        FinishedEvent {
            schema_version: crate::output::SCHEMA_VERSION,
            event_type: EVENT_FINISHED,
            job_id: job.id.clone(),
            state: st.status().as_str(),
            command: meta.command.clone(),
            cwd: meta.cwd.clone(),
            started_at: st.job.started_at.clone(),
            finished_at: st.finished_at.clone(),
            duration_ms: st.result.duration_ms,
            exit_code: st.result.exit_code,
            signal: st.result.signal.clone(),
            stdout_log_path: job.stdout_display(),
            stderr_log_path: job.stderr_display(),
            timed_out: st.result.timed_out,
            failure: st.failure.clone(),
            cost: crate::usage::Cost::of(st),
            attempt: st.attempt(),
            output_lost: st.output_lost.clone(),
        }
    }
}

/// `job.output.matched`, in 0.2.3's field order.
#[derive(Serialize, Debug)]
pub struct MatchEvent<'a> {
    pub schema_version: &'static str,
    pub event_type: &'static str,
    pub job_id: &'a str,
    pub pattern: &'a str,
    pub match_type: &'a str,
    pub stream: &'static str,
    pub line: &'a str,
    pub stdout_log_path: &'a str,
    pub stderr_log_path: &'a str,
}

/// One sink's outcome, in `delivery_results`.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct DeliveryResult {
    pub sink_type: &'static str,
    pub target: String,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempted_at: String,
}

impl DeliveryResult {
    fn new(
        sink_type: &'static str,
        target: &str,
        attempted_at: String,
        r: Result<(), String>,
    ) -> Self {
        DeliveryResult {
            sink_type,
            target: target.to_string(),
            success: r.is_ok(),
            error: r.err(),
            attempted_at,
        }
    }
}

/// An event plus how its delivery went (completion_event.json, and each
/// line of notification_events.ndjson).
#[derive(Serialize)]
struct Record<'a, E: Serialize> {
    #[serde(flatten)]
    event: &'a E,
    delivery_results: &'a [DeliveryResult],
}

// ---------------------------------------------------------------------------
// Sinks
// ---------------------------------------------------------------------------

/// The cwd this process was started in (the launching command's), kept
/// by `keep_caller_cwd` before the supervisor leaves it for `/`.
static CALLER_CWD: OnceLock<PathBuf> = OnceLock::new();

/// Keep the current directory as the one command sinks run in; called
/// once, before the process changes it.
pub fn keep_caller_cwd() {
    if let Ok(d) = std::env::current_dir() {
        let _ = CALLER_CWD.set(d);
    }
}

/// The directory the launching command ran in (`keep_caller_cwd`), if
/// kept and named in UTF-8.
pub fn caller_cwd() -> Option<String> {
    CALLER_CWD
        .get()
        .and_then(|p| p.to_str())
        .map(str::to_string)
}

/// What every sink of one job needs to run.
struct SinkCtx {
    job: Job,
    job_id: String,
    stdout_path: String,
    stderr_path: String,
    wrapper: Vec<String>,
    cwd: Option<PathBuf>,
    timeout: OnceLock<Option<Duration>>,
}

impl SinkCtx {
    fn new(job: &Job, meta: &Meta) -> SinkCtx {
        SinkCtx {
            job: job.clone(),
            job_id: job.id.clone(),
            stdout_path: job.stdout_display(),
            stderr_path: job.stderr_display(),
            wrapper: if meta.shell_wrapper.is_empty() {
                crate::launch::default_wrapper()
            } else {
                meta.shell_wrapper.clone()
            },
            cwd: CALLER_CWD.get().filter(|p| p.is_dir()).cloned(),
            timeout: OnceLock::new(),
        }
    }

    /// The command-sink time limit: what the launching command resolved
    /// from its config (`--sink-timeout` of the supervisor), else the
    /// default config, read the first time a command sink runs.
    fn timeout(&self) -> Option<Duration> {
        *self.timeout.get_or_init(|| {
            let ms = SINK_TIMEOUT_MS.get().copied().unwrap_or_else(|| {
                crate::config::load(None)
                    .map(|c| c.notify.sink_timeout_ms)
                    .unwrap_or(crate::config::DEFAULT_SINK_TIMEOUT_MS)
            });
            (ms > 0).then(|| Duration::from_millis(ms))
        })
    }
}

static SINK_TIMEOUT_MS: OnceLock<u64> = OnceLock::new();

/// Set the command-sink time limit for this process (the supervisor,
/// from the launching command's config).
pub fn set_sink_timeout_ms(ms: u64) {
    let _ = SINK_TIMEOUT_MS.set(ms);
}

/// Run a command sink: `wrapper + [command]`, the event JSON on stdin.
fn run_command(
    ctx: &SinkCtx,
    command: &str,
    event_type: &str,
    event_path: &Path,
    json: &[u8],
) -> DeliveryResult {
    let at = crate::time::now_ts();
    let r = run_command_inner(ctx, command, event_type, event_path, json);
    DeliveryResult::new("command", command, at, r)
}

fn run_command_inner(
    ctx: &SinkCtx,
    command: &str,
    event_type: &str,
    event_path: &Path,
    json: &[u8],
) -> Result<(), String> {
    if command.trim().is_empty() {
        return Err("empty shell command".into());
    }
    if ctx.wrapper.is_empty() {
        return Err("shell wrapper must not be empty".into());
    }
    // A login shell runs the profile first, and Debian's /etc/profile
    // resets PATH: the sink gets the job's PATH rebuild (D36), the
    // caller's entries (this supervisor's PATH, inherited from the
    // command that started the job) first, then those the profile added,
    // and goes back to its directory should the profile `cd` (it ran in
    // the profile's). The job's --env values are the job's alone: a sink
    // never gets them.
    let login = supervisor::is_login_shell(&ctx.wrapper);
    let caller_path = login.then(|| std::env::var_os("PATH")).flatten();
    // Its directory, or `/` where that is gone (where it then runs).
    let back = match &ctx.cwd {
        Some(d) => d.to_str(),
        None => Some("/"),
    };
    let reapply = if login && (caller_path.is_some() || back.is_some()) {
        let shell = supervisor::program_name(&ctx.wrapper);
        supervisor::reapply_parts(supervisor::reapply_script(
            &[],
            caller_path.is_some(),
            (shell, back),
        ))
    } else {
        Vec::new()
    };
    let argv = supervisor::workload_argv(&ctx.wrapper, &[command.to_string()], reapply.len());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    for (i, part) in reapply.iter().enumerate() {
        cmd.env(supervisor::reapply_var(i), part);
    }
    if let Some(p) = caller_path {
        cmd.env(supervisor::CALLER_PATH_VAR, p);
    }
    cmd.env("AGENT_EXEC_EVENT_PATH", event_path)
        .env("AGENT_EXEC_JOB_ID", &ctx.job_id)
        .env("AGENT_EXEC_EVENT_TYPE", event_type)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.current_dir(ctx.cwd.as_deref().unwrap_or(Path::new("/")));
    // This thread waits for it below; a supervisor killed meanwhile
    // takes it along (its time limit could not be kept otherwise).
    sys::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| format!("spawn error: {e}"))?;
    // A limit too large for the clock is no limit (never a panic).
    let deadline = ctx.timeout().and_then(|t| Instant::now().checked_add(t));
    match supervise_sink(&mut child, json, deadline) {
        Ok(Some(status)) => exit_result(status),
        Ok(None) => {
            let _ = sys::kill_group(child.id(), libc::SIGKILL, &[]);
            let _ = child.wait();
            // Duration's Debug form: "1s", "500ms", "1.5s", as configured.
            let limit = ctx.timeout().unwrap_or_default();
            Err(format!("timed out after {limit:?}"))
        }
        Err(e) => {
            let _ = sys::kill_group(child.id(), libc::SIGKILL, &[]);
            let _ = child.wait();
            Err(format!("wait error: {e}"))
        }
    }
}

fn exit_result(status: ExitStatus) -> Result<(), String> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(format!("exited with status {c}")),
        (None, Some(s)) => Err(format!("killed by signal {}", sys::signal_name(s))),
        (None, None) => Err(format!("exited with {status}")),
    }
}

/// Feed `json` to the sink's stdin and wait for it to exit, both bounded
/// by `deadline`. Ok(None): the deadline passed. A sink that does not
/// read its stdin cannot block us: the pipe is non-blocking and polled.
fn supervise_sink(
    child: &mut Child,
    json: &[u8],
    deadline: Option<Instant>,
) -> io::Result<Option<ExitStatus>> {
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        let _ = sys::set_nonblocking(s.as_raw_fd());
    }
    let pidfd = sys::pidfd_open(child.id()).ok();
    let mut off = 0;
    loop {
        if let Some(s) = stdin.as_mut() {
            loop {
                if off == json.len() {
                    stdin = None; // EOF for the sink
                    break;
                }
                match s.write(&json[off..]) {
                    Ok(n) => off += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // EPIPE: the sink does not want its input; fine.
                    Err(_) => {
                        stdin = None;
                        break;
                    }
                }
            }
        }
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| d <= now) {
            return Ok(None);
        }
        let mut wait_ms = deadline.map_or(-1, |d| {
            (d - now).as_millis().clamp(1, i32::MAX as u128) as i32
        });
        let mut fds = Vec::with_capacity(2);
        if let Some(s) = &stdin {
            fds.push(sys::poll_fd(s.as_raw_fd(), libc::POLLOUT));
        }
        match &pidfd {
            Some(p) => fds.push(sys::poll_fd(p.as_raw_fd(), sys::POLLIN)),
            // No pidfd (old kernel): look for the exit every 10 ms.
            None => wait_ms = if wait_ms < 0 { 10 } else { wait_ms.min(10) },
        }
        sys::poll(&mut fds, wait_ms)?;
    }
}

/// Append `line` (one JSON document plus `\n`) to `path`, creating the
/// parent directories and the file (0600) when needed. Opened without
/// blocking, and a FIFO or a socket is refused: opening a FIFO nobody
/// reads would wait forever, and writing one nobody drains would stall
/// the delivery thread (so the supervisor) without a time limit.
///
/// Never into a directory of the jobs root `root` (by where the path
/// leads, its symlinks followed): a sink named `<root>/<id>/meta.json`
/// appended an event to another job's record, which every reader then
/// refused as damaged. Looked at before anything is made, and again at the file
/// opened (a link swapped in between).
fn open_append(path: &Path, root: &Path) -> Result<File, String> {
    use std::os::unix::fs::FileTypeExt;
    // New parent directories are 0700, as `--log`'s are, whatever the
    // umask: a world-writable one (umask 000) let another user swap the
    // file the supervisor appends to.
    let mkdirs = |parent: &Path| {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
    };
    let open = |p: &Path, create: bool| {
        fs::OpenOptions::new()
            .append(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(libc::O_NONBLOCK)
            .open(p)
    };
    let f = open_outside_root(path, root, &mkdirs, &open).map_err(|e| match e {
        Outside::Inside(why) => why,
        Outside::Mkdir(e) => format!("create parent dir: {e}"),
        Outside::Open(e) => format!("open error: {e}"),
    })?;
    let kind = f
        .metadata()
        .map_err(|e| format!("open error: {e}"))?
        .file_type();
    if kind.is_fifo() || kind.is_socket() {
        return Err("open error: not a regular file (a FIFO or a socket)".into());
    }
    Ok(f)
}

/// Why `open_outside_root` made nothing.
pub(crate) enum Outside {
    /// The path leads into a directory of the jobs root: the refusal.
    Inside(String),
    Mkdir(io::Error),
    Open(io::Error),
}

/// Open a file the user named (a sink's, `--log`'s) where its path
/// leads, making it and its missing parent directories there when it
/// does not exist, and never inside a directory of the jobs root
/// `root`. `open(p, false)` opens an existing `p`, following symlinks;
/// `open(p, true)` makes a new one (O_CREAT|O_EXCL, which follows no
/// symlink). A missing file is made at the place a dangling symlink
/// names (`resolved`), looked at first: made through the link, it
/// appeared inside the root although the delivery was refused. Looked
/// at again once open (a link swapped in meanwhile is refused, with
/// nothing made through it).
pub(crate) fn open_outside_root(
    path: &Path,
    root: &Path,
    mkdirs: &dyn Fn(&Path) -> io::Result<()>,
    open: &dyn Fn(&Path, bool) -> io::Result<File>,
) -> Result<File, Outside> {
    let inside = refused_inside(root);
    let target = resolved(path);
    if inside(&target) {
        return Err(Outside::Inside(inside_root(root)));
    }
    let f = match open(path, false) {
        Ok(f) => f,
        // Missing, or a file where a directory on the way should be
        // (which making the parents then names).
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
                mkdirs(parent).map_err(Outside::Mkdir)?;
            }
            match open(&target, true) {
                Ok(f) => f,
                // Made meanwhile by someone else: opened as it is.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    open(path, false).map_err(Outside::Open)?
                }
                Err(e) => return Err(Outside::Open(e)),
            }
        }
        Err(e) => return Err(Outside::Open(e)),
    };
    if inside(&resolved(path)) {
        return Err(Outside::Inside(inside_root(root)));
    }
    Ok(f)
}

/// The jobs root a job lives in.
fn job_root(job: &Job) -> &Path {
    job.dir.parent().unwrap_or(Path::new("/"))
}

/// Is a (resolved) path inside a directory of the jobs root (a job's,
/// or the root's own `.queues`)? A file directly in the root (an
/// `events.ndjson` kept beside the jobs) touches no record: allowed.
fn refused_inside(root: &Path) -> impl Fn(&Path) -> bool {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    move |p: &Path| p.starts_with(&root) && p.parent().is_some_and(|d| d != root)
}

fn inside_root(root: &Path) -> String {
    format!(
        "refused: the file is inside a directory of the jobs root {} (only agent-exec writes there)",
        root.display()
    )
}

/// Where `path` leads: its deepest existing ancestor with every symlink
/// resolved, and the rest as given. A dangling symlink on the way leads
/// where it names (a file made through it is made there), followed as
/// the kernel would, at most 40 deep.
fn resolved(path: &Path) -> PathBuf {
    resolved_within(path, 40)
}

fn resolved_within(path: &Path, links: u32) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        let under = |p: PathBuf| rest.iter().rev().fold(p, |p, c| p.join(c));
        if let Ok(real) = fs::canonicalize(at) {
            return under(real);
        }
        if links > 0 {
            if let Ok(link) = fs::read_link(at) {
                let from = at.parent().unwrap_or(Path::new("/"));
                return resolved_within(&under(from.join(link)), links - 1);
            }
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// A file of the job directory (`dir/name`), opened without following a
/// symlink at the directory or the file (`sys::Dir`). Sink targets the
/// user named are opened as given (`open_append`).
fn open_in_job(path: &Path, how: sys::How) -> io::Result<File> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad file name"))?;
    sys::Dir::open(path.parent().unwrap_or(Path::new(".")))?.open_file(name, how)
}

/// Append one line whole, or nothing: a write cut short (a full disk)
/// is taken back, so that the next event's line does not run on from a
/// torn one (both were lost to a reader: one JSON document per line).
/// Under an exclusive flock of the file, which every deliverer of ours
/// takes for its append (many jobs may name one file), so that taking
/// back cuts only our own bytes; waited for 2 s at most, then written
/// without it (a stranger holding it must not stall deliveries).
fn append_line(f: &mut File, line: &[u8]) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(2);
    let locked = loop {
        match sys::try_lock_exclusive(f) {
            Ok(true) => break true,
            Ok(false) if Instant::now() < until => std::thread::sleep(Duration::from_millis(2)),
            _ => break false,
        }
    };
    let before = f.metadata().map(|m| m.len()).ok();
    let r = f.write_all(line).map_err(|e| {
        if let (true, Some(len)) = (locked, before) {
            let _ = f.set_len(len);
        }
        format!("write error: {e}")
    });
    if locked {
        let _ = sys::unlock(f);
    }
    r
}

fn with_newline(json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(json.len() + 1);
    v.extend_from_slice(json);
    v.push(b'\n');
    v
}

/// A record of `notification_events.ndjson` could not be written (a full
/// disk): said on stderr, the one place left.
fn records_lost(ctx: &SinkCtx, path: &Path, why: &str) {
    crate::warn!(
        "job.output.matched of {}: delivery results not recorded in {}: {why}",
        ctx.job_id,
        path.display()
    );
}

fn file_result(path: &str, r: Result<(), String>, at: String) -> DeliveryResult {
    DeliveryResult::new("file", path, at, r)
}

// ---------------------------------------------------------------------------
// job.finished
// ---------------------------------------------------------------------------

/// Deliver `job.finished` to the completion sinks configured in `meta`
/// now, if any: completion_event.json first (empty results), then the
/// command sink, then the file sink, then completion_event.json again
/// with the results. Best effort: nothing here can fail the job.
pub fn deliver_finished(job: &Job, meta: &Meta, st: &State) {
    deliver_finished_in(SinkCtx::new(job, meta), job, meta, st);
}

/// `deliver_finished` with the sinks' context made (and their time limit
/// set, for a caller that is no supervisor).
fn deliver_finished_in(ctx: SinkCtx, job: &Job, meta: &Meta, st: &State) {
    let Some(n) = &meta.notification else { return };
    if n.notify_command.is_none() && n.notify_file.is_none() {
        return;
    }
    let ev = FinishedEvent::new(job, meta, st);
    let Ok(json) = serde_json::to_vec(&ev) else {
        return;
    };
    let write = |results: &[DeliveryResult]| {
        let rec = Record {
            event: &ev,
            delivery_results: results,
        };
        job::write_json(&job.dir, job::COMPLETION_EVENT, &rec, false)
    };
    let written = write(&[]);
    let mut results = Vec::new();
    if let Some(c) = &n.notify_command {
        // Its AGENT_EXEC_EVENT_PATH must hold this event (D41): a sink
        // is not started on a file that could not be written (a full
        // disk), or on a previous run's.
        results.push(match &written {
            Ok(()) => {
                let path = job.path(job::COMPLETION_EVENT);
                run_command(&ctx, c, EVENT_FINISHED, &path, &json)
            }
            Err(e) => not_started(c, e),
        });
    }
    if let Some(f) = &n.notify_file {
        let at = crate::time::now_ts();
        let r = open_append(Path::new(f), job_root(job))
            .and_then(|mut h| append_line(&mut h, &with_newline(&json)));
        results.push(file_result(f, r, at));
    }
    if let Err(e) = write(&results) {
        crate::warn!(
            "job.finished of {}: delivery results not recorded: {e}",
            job.id
        );
    }
}

/// The delivery result of a match command sink left over when the
/// backlog's time after the job's end ran out (`Deliverer::budget`).
const BACKLOG_CUT: &str = "not started: the job had ended and the match events before this one had used up the time their command sinks get after the end ([notify] sink_timeout)";

/// The result of a command sink left unstarted because the file its
/// `AGENT_EXEC_EVENT_PATH` names could not be written (`why`).
fn not_started(command: &str, why: &dyn std::fmt::Display) -> DeliveryResult {
    let at = crate::time::now_ts();
    DeliveryResult::new(
        "command",
        command,
        at,
        Err(format!(
            "not started: its event file could not be written: {why}"
        )),
    )
}

/// What a run's `job.finished` is made of, taken by the supervisor when
/// it published that run's terminal state (see `finished`).
pub struct Finished {
    /// The notification settings as they were then (the sinks).
    pub meta: Meta,
    /// The run's terminal state, as published.
    pub state: State,
}

/// The `job.finished` owed for the terminal state `state` just published
/// with the settings `sinks`; None when no sink would get it. The state is
/// kept here, not read back later: once the job lock is released a
/// `restart` may replace state.json with the next run's, and this run's
/// event must still describe this run.
pub fn finished(sinks: Option<Meta>, state: &State) -> Option<Finished> {
    let meta = sinks.filter(|m| m.notification.is_some())?;
    Some(Finished {
        meta,
        state: state.clone(),
    })
}

/// The end of a supervised job, after the terminal state is on disk and
/// the job lock is released: let the match-delivery thread finish its
/// queue, then deliver `job.finished` to the sinks of `ended`: the
/// settings as they were when the terminal state was published (read
/// under the guard that `notify set` takes, see
/// `supervisor::publish_terminal`), so a change accepted while the job ran
/// counts and one made after it ended never runs a sink. The event is
/// built from the state published then, never from state.json as it is
/// now (by then it may be a later run's).
pub fn job_ended(job: &Job, matcher: Option<Matcher>, ended: Option<Finished>) {
    if let Some(m) = matcher {
        m.finish();
    }
    if let Some(f) = ended {
        if f.state.status().is_terminal() {
            deliver_finished(job, &f.meta, &f.state);
            delivered(job, f.state.attempt());
        }
    }
}

/// Run `attempt`'s `job.finished` is delivered: state.json no longer says
/// it is owed (see `State::finished_owed`). Under the job lock, tried for
/// a second only: its holder may be a `restart`, which waits for us to
/// exit; a debt left so is found paid by whoever would send it again
/// (`finished_recorded`).
fn delivered(job: &Job, attempt: u32) {
    let Some(lock) = job.open_lock() else { return };
    if !crate::observe::lock_frees_within(&lock, std::time::Duration::from_secs(1)) {
        return;
    }
    if let Ok(mut now) = job.read_state() {
        if now.finished_owed && now.attempt() == attempt {
            now.finished_owed = false;
            now.finished_by = None;
            let _ = job.write_state(&now, false);
        }
    }
    let _ = sys::unlock(&lock);
}

/// The `job.finished` of a run whose supervisor died before it could
/// send one: a reader has just recorded `supervisor_lost` or
/// `launch_lost` for run `attempt` (holding the job lock, so it is the
/// only one that does). Delivered by a detached `agent-exec _notify`,
/// never by the reader itself: a command sink may run for its whole
/// time limit, and `status` must not wait for it. Nothing is started when
/// no sink is configured. Best effort, as every delivery.
///
/// The job is pinned for the delivery from here on, not only once the
/// detached process has started: a shared flock of the job directory,
/// taken now on a description of its own and handed down as fd
/// `PIN_FD`. A `delete` (or gc) right after this reader's answer then
/// finds the job `in_use`, as while its own supervisor delivers; before,
/// it removed the job before the delivery began, and the event was lost.
/// Not the reader's own pin: a reader that goes on to remove the job
/// (`delete`) would upgrade that very description to its exclusive lock.
///
/// Only a reader running as the job directory's owner sends it: the
/// sinks are the owner's commands, and run as the reader (root reading a
/// shared root ran another user's `--notify-command` as root). Another
/// reader leaves the event owed, for the owner's next read.
///
/// False: the delivery could not be started (out of descriptors or
/// processes); the event stays owed, and the caller may send it itself.
pub fn deliver_lost(job: &Job, attempt: u32) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if !owned_by_us(job) {
        crate::info!("job.finished of {}: left to its owner to send", job.id);
        return true;
    }
    let Some(root) = job.dir.parent().filter(|_| has_finished_sinks(job)) else {
        return true;
    };
    let argv = sys::argv(&[
        b"agent-exec",
        b"_notify",
        root.as_os_str().as_bytes(),
        job.id.as_bytes(),
        b"--attempt",
        attempt.to_string().as_bytes(),
    ]);
    let pin = sys::open_dir_lockable(&job.dir)
        .ok()
        .filter(|f| sys::try_lock_shared(f).unwrap_or(false));
    let keep: Vec<_> = pin.iter().map(|f| (f.as_raw_fd(), PIN_FD)).collect();
    let spawned = argv.and_then(|argv| sys::spawn_detached(&sys::self_exe()?, &argv, &keep));
    if let Err(e) = spawned {
        crate::warn!("job.finished of {}: cannot start its delivery: {e}", job.id);
        return false;
    }
    true
}

/// Send the ended run `st`'s owed `job.finished` from this process, now:
/// a `restart` about to keep that run, whose lost supervisor never sent
/// it (see `restart::pay_owed`). Nothing is sent twice: a delivery whose
/// results are on record (completion_event.json of that attempt, written
/// once the sinks have answered) sent it already. False when it is not
/// ours to send (another user's job, see `deliver_lost`).
pub fn send_owed_now(job: &Job, st: &State, sink_timeout_ms: u64) -> bool {
    if !owned_by_us(job) {
        return false;
    }
    if finished_recorded(job, st.attempt()) {
        return true;
    }
    let Ok(meta) = job.read_meta() else {
        return false;
    };
    let ctx = SinkCtx::new(job, &meta);
    let ms = crate::config::bounded_sink_ms(sink_timeout_ms);
    let _ = ctx.timeout.set(Some(std::time::Duration::from_millis(ms)));
    let sent = State {
        finished_owed: false,
        finished_by: None,
        ..st.clone()
    };
    deliver_finished_in(ctx, job, &meta, &sent);
    true
}

/// Was run `attempt`'s `job.finished` sent already, as its record says
/// (completion_event.json of that attempt, with the sinks' results,
/// written once they have answered)? A deliverer that could not clear
/// the debt afterwards (`delivered`) left it owed: not sent twice.
fn finished_recorded(job: &Job, attempt: u32) -> bool {
    sys::read_bounded(&job.path(job::COMPLETION_EVENT), 1 << 20)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| {
            v["attempt"].as_u64() == Some(u64::from(attempt))
                && v["delivery_results"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty())
        })
}

/// Is the job's directory this process's user's (see `deliver_lost`)?
fn owned_by_us(job: &Job) -> bool {
    job.owner() == Some(sys::euid())
}

/// Does the job's meta.json name a sink for `job.finished`?
pub fn has_finished_sinks(job: &Job) -> bool {
    job.read_meta()
        .ok()
        .and_then(|m| m.notification)
        .is_some_and(|n| n.notify_command.is_some() || n.notify_file.is_some())
}

/// Where `deliver_lost` hands its pin of the job to `_notify`.
const PIN_FD: std::os::unix::io::RawFd = 3;

/// `agent-exec _notify ROOT ID --attempt N` (see `deliver_lost`): send
/// run N's `job.finished` as recorded in state.json, with the sinks meta
/// names and the sink time limit the job's later launches would use.
/// Nothing when state.json describes another run by now (a `restart`
/// took the job on) or a run that has not ended.
pub fn exec_lost(m: &Matches) -> Result<crate::output::Output> {
    let done = Ok(crate::output::Output::Done);
    // The pin handed down (`deliver_lost`) stays open until we exit.
    sys::close_from(PIN_FD + 1);
    let store = store::Store::resolve(m.pos(0));
    let mut job = store.job(m.pos(1).unwrap_or_default());
    // Held while delivering, as a supervisor does: gc leaves the job be.
    if !owned_by_us(&job) || job.pin().is_err() {
        return done;
    }
    keep_caller_cwd();
    let _ = std::env::set_current_dir("/");
    let Some(attempt) = m.u64("attempt").and_then(|a| u32::try_from(a).ok()) else {
        return done;
    };
    // The debt is claimed under the job lock: this process is recorded as
    // the one delivering, unless another live one is (several readers may
    // have started one each), or it is paid, or the run is not the one
    // ended (a `restart` took the job on).
    let Some(st) = claim_owed(&job, attempt) else {
        return done;
    };
    let Ok(meta) = job.read_meta() else {
        return done;
    };
    if let Ok(r) = crate::launch::relaunch_settings(&meta) {
        set_sink_timeout_ms(r.sink_timeout_ms);
    }
    if !finished_recorded(&job, attempt) {
        deliver_finished(&job, &meta, &st);
    }
    delivered(&job, attempt);
    done
}

/// Take over run `attempt`'s owed `job.finished` (see `exec_lost`): the
/// state to send it from, with this process recorded in `finished_by`;
/// None when there is nothing for us to send. The job lock is waited for
/// (a reader deciding, a supervisor clearing, the `create` that started
/// us exiting): up to 10 s, as nothing waits on this detached process,
/// and one that gave up at 2 s on a loaded machine left the event unsent
/// until some later reader.
fn claim_owed(job: &Job, attempt: u32) -> Option<State> {
    let lock = job.open_lock()?;
    if !crate::observe::lock_frees_within(&lock, std::time::Duration::from_secs(10)) {
        return None;
    }
    let me = std::process::id();
    let claimed = job.read_state().ok().filter(|st| {
        st.status().is_terminal()
            && st.attempt() == attempt
            && st.finished_owed
            && !st
                .finished_by
                .or(st.supervisor_pid)
                .is_some_and(|p| p != me && job.is_deliverer(p))
    });
    let claimed = claimed.and_then(|mut st| {
        st.finished_by = Some(me);
        job.write_state(&st, false).ok()?;
        st.finished_by = None;
        st.finished_owed = false;
        Some(st)
    });
    let _ = sys::unlock(&lock);
    claimed
}

// ---------------------------------------------------------------------------
// Output matching (runs in the tee thread)
// ---------------------------------------------------------------------------

/// What a line is tested with, compiled once per config load.
enum Test {
    Contains(String),
    Regex(regex_lite::Regex),
    /// A stored regex that does not compile (hand-edited meta.json).
    Never,
}

struct Active {
    om: Arc<OutputMatch>,
    test: Test,
    /// Which streams are eligible: [stdout, stderr].
    streams: [bool; 2],
}

impl Active {
    fn compile(om: OutputMatch) -> Active {
        let test = if om.match_type == "regex" {
            regex_lite::Regex::new(&om.pattern).map_or(Test::Never, Test::Regex)
        } else {
            Test::Contains(om.pattern.clone())
        };
        let streams = match om.stream.as_str() {
            "stdout" => [true, false],
            "stderr" => [false, true],
            _ => [true, true],
        };
        Active {
            om: Arc::new(om),
            test,
            streams,
        }
    }

    fn is_match(&self, line: &[u8]) -> bool {
        match &self.test {
            Test::Contains(p) => contains(line, p),
            Test::Regex(re) => match std::str::from_utf8(line) {
                Ok(s) => re.is_match(s),
                Err(_) => re.is_match(&String::from_utf8_lossy(line)),
            },
            Test::Never => false,
        }
    }
}

/// Substring search. Valid UTF-8 (the usual case) goes through the
/// standard library's vectorised `str` search.
fn contains(hay: &[u8], needle: &str) -> bool {
    if needle.len() > hay.len() {
        return false;
    }
    if let Ok(h) = std::str::from_utf8(hay) {
        return h.contains(needle);
    }
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The text of a chunk just read, for a chunk-wide search: without the
/// bytes of a character cut at either end (they belong to lines that
/// began in the previous chunk or end in the next one, which are tested
/// line by line; and no pattern occurrence can begin with a continuation
/// byte). None when there are invalid bytes inside.
fn chunk_text(chunk: &[u8]) -> Option<&str> {
    let lead = chunk
        .iter()
        .take(3)
        .take_while(|&&b| b & 0xC0 == 0x80)
        .count();
    let body = &chunk[lead..];
    match std::str::from_utf8(body) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&body[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

/// The per-job output matcher. The tee calls `refresh` once per read
/// batch and `line` per emitted line or piece.
pub struct Matcher {
    meta_path: PathBuf,
    sig: Option<job::MetaStamp>,
    active: Option<Active>,
    ctx: Arc<SinkCtx>,
    /// Hits of the current read batch, not yet queued.
    batch: Vec<Item>,
    worker: Option<Worker>,
    /// The job runs on a terminal, whose lines end in "\r\n": the "\r"
    /// is the line's end, not its text (as for readiness, see
    /// `observe::line_text`).
    crlf: bool,
}

impl Matcher {
    /// `meta` gives the sinks' wrapper and cwd. With `stamp`, the stamp
    /// meta.json had before `meta` was read from it, `meta`'s output-match
    /// config applies until the file changes (no read on the first
    /// output); without, the first `refresh` loads it.
    pub fn new(job: &Job, meta: &Meta, stamp: Option<job::MetaStamp>) -> Matcher {
        let mut m = Matcher {
            meta_path: job.path(job::META),
            sig: None,
            active: None,
            ctx: Arc::new(SinkCtx::new(job, meta)),
            batch: Vec::new(),
            worker: None,
            crlf: meta.tty.is_some(),
        };
        if let Some(stamp) = stamp {
            m.sig = Some(stamp);
            m.load(
                meta.notification
                    .as_ref()
                    .and_then(|n| n.on_output_match.clone()),
            );
        }
        m
    }

    /// Reload the config if meta.json changed since the last load. Call
    /// after reading a batch and before matching it, so that a save that
    /// completed before a line was printed applies to that line.
    pub fn refresh(&mut self) {
        let Ok(md) = fs::symlink_metadata(&self.meta_path) else {
            return;
        };
        let sig = job::MetaStamp::of(&md);
        if self.sig == Some(sig) {
            return;
        }
        match job::read_json::<Meta>(&self.meta_path) {
            Ok(meta) => {
                self.sig = Some(sig);
                self.load(meta.notification.and_then(|n| n.on_output_match));
            }
            // Keep the previous config; try again next batch.
            Err(_) => self.sig = None,
        }
    }

    fn load(&mut self, om: Option<OutputMatch>) {
        match om {
            None => self.active = None,
            Some(om) if self.active.as_ref().is_some_and(|a| *a.om == om) => {}
            Some(om) => self.active = Some(Active::compile(om)),
        }
    }

    /// May a line lying wholly inside `chunk` (bytes just read from stream
    /// `i`: 0 stdout, 1 stderr) match? For `contains`, one search over
    /// the chunk answers for all its lines at once, which is what keeps a
    /// pattern that never matches nearly free. Lines that began in an
    /// earlier chunk must be tested regardless.
    pub fn scan_chunk(&self, i: usize, chunk: &[u8]) -> bool {
        let Some(a) = &self.active else { return false };
        if !a.streams[i] {
            return false;
        }
        let Test::Contains(p) = &a.test else {
            return true;
        };
        chunk_text(chunk).map_or(true, |text| text.contains(p.as_str()))
    }

    /// Test one line (without its `\n`) of stream `i`; queue a hit.
    #[inline]
    pub fn line(&mut self, i: usize, line: &[u8]) {
        let Some(a) = &self.active else { return };
        let line = crate::observe::line_text(line, self.crlf);
        if !a.streams[i] || !a.is_match(line) {
            return;
        }
        self.batch.push(Item {
            om: a.om.clone(),
            stream: i as u8,
            line: String::from_utf8_lossy(line).into_owned(),
        });
    }

    /// Hand this read batch's hits to the delivery thread: one lock and
    /// one wake-up per batch, not per hit.
    pub fn end_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let ctx = &self.ctx;
        self.worker
            .get_or_insert_with(|| Worker::start(ctx.clone()))
            .queue
            .push_all(std::mem::take(&mut self.batch));
    }

    /// Close the queue and wait until every queued event is delivered.
    pub fn finish(mut self) {
        self.end_batch();
        if let Some(w) = self.worker.take() {
            w.queue.close();
            let _ = w.handle.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The match queue (memory, then a spool file) and its delivery thread
// ---------------------------------------------------------------------------

/// A hit waiting for delivery, with the config it matched under.
struct Item {
    om: Arc<OutputMatch>,
    stream: u8,
    line: String,
}

impl Item {
    fn cost(&self) -> usize {
        self.line.len() + ITEM_OVERHEAD
    }
}

/// An `Item` as one line of the spool file.
#[derive(Serialize)]
struct SpoolOut<'a> {
    om: &'a OutputMatch,
    stream: u8,
    line: &'a str,
}

#[derive(Deserialize)]
struct SpoolIn {
    om: OutputMatch,
    stream: u8,
    line: String,
}

#[derive(Default)]
struct QState {
    mem: VecDeque<Item>,
    mem_bytes: usize,
    /// The spool's writing end (the tee appends, under the lock).
    spool: Option<BufWriter<File>>,
    /// Spooled records not yet handed to the delivery thread.
    pending: usize,
    /// While true, new items go to the spool, so order is kept.
    spooling: bool,
    closed: bool,
    /// When the job's end closed the queue.
    closed_at: Option<Instant>,
}

#[derive(Default)]
struct Queue {
    state: Mutex<QState>,
    cv: Condvar,
    spool_path: PathBuf,
}

/// What the delivery thread does next.
enum Next {
    /// Items taken from memory, in order.
    Mem(Vec<Item>),
    /// Read this many records from the spool (flushed, not yet read).
    Spooled(usize),
    Done,
}

fn open_spool(path: &Path) -> io::Result<BufWriter<File>> {
    let f = open_in_job(path, sys::How::Append)?;
    f.set_len(0)?;
    Ok(BufWriter::with_capacity(64 * 1024, f))
}

impl Queue {
    fn push_all(&self, items: Vec<Item>) {
        let Ok(mut q) = self.state.lock() else { return };
        for item in items {
            self.push_locked(&mut q, item);
        }
        drop(q);
        self.cv.notify_one();
    }

    #[cfg(test)]
    fn push(&self, item: Item) {
        self.push_all(vec![item]);
    }

    fn push_locked(&self, q: &mut QState, item: Item) {
        let cost = item.cost();
        if !q.spooling && q.mem_bytes + cost <= MEM_QUEUE_BYTES {
            q.mem_bytes += cost;
            q.mem.push_back(item);
            return;
        }
        if q.spool.is_none() {
            q.spool = open_spool(&self.spool_path).ok();
        }
        let written = q.spool.as_mut().is_some_and(|w| {
            let rec = SpoolOut {
                om: &item.om,
                stream: item.stream,
                line: &item.line,
            };
            serde_json::to_writer(&mut *w, &rec).is_ok() && w.write_all(b"\n").is_ok()
        });
        if written {
            q.spooling = true;
            q.pending += 1;
        } else if !q.spooling {
            // No spool (disk full?): memory rather than a lost event.
            q.mem_bytes += cost;
            q.mem.push_back(item);
        }
    }

    fn close(&self) {
        if let Ok(mut q) = self.state.lock() {
            q.closed = true;
            q.closed_at = Some(Instant::now());
        }
        self.cv.notify_all();
    }

    fn closed_at(&self) -> Option<Instant> {
        self.state.lock().ok().and_then(|q| q.closed_at)
    }

    /// Block until there is something to deliver, or the queue is closed
    /// and empty. `reader` is the delivery thread's reading end of the
    /// spool (rewound here when the spool starts over); `idle` runs
    /// before each wait.
    fn next(&self, reader: &mut Option<BufReader<File>>, idle: &mut dyn FnMut()) -> Next {
        let Ok(mut q) = self.state.lock() else {
            return Next::Done;
        };
        let mut lingered = false;
        loop {
            // A few events of a burst: give the rest a moment to arrive,
            // so a job printing matches line by line is served in batches
            // (one wake-up and one write per file) instead of one wake-up
            // per line competing with the job for the CPU.
            if !q.mem.is_empty() && q.mem.len() < BATCH && !q.closed && !lingered {
                lingered = true;
                drop(q);
                std::thread::sleep(LINGER);
                q = match self.state.lock() {
                    Ok(g) => g,
                    Err(_) => return Next::Done,
                };
                continue;
            }
            if !q.mem.is_empty() {
                let n = q.mem.len().min(BATCH);
                let items: Vec<Item> = q.mem.drain(..n).collect();
                q.mem_bytes -= items.iter().map(Item::cost).sum::<usize>();
                return Next::Mem(items);
            }
            if q.spooling {
                if q.pending > 0 {
                    if let Some(w) = q.spool.as_mut() {
                        let _ = w.flush();
                    }
                    return Next::Spooled(std::mem::take(&mut q.pending));
                }
                // Every spooled record has been read and delivered: the
                // file starts over and new items go to memory again.
                if let Some(w) = q.spool.as_mut() {
                    let _ = w.flush();
                    let _ = w.get_ref().set_len(0);
                }
                if let Some(r) = reader.as_mut() {
                    let _ = r.seek(io::SeekFrom::Start(0));
                }
                q.spooling = false;
                continue;
            }
            if q.closed {
                if q.spool.take().is_some() {
                    let _ = fs::remove_file(&self.spool_path);
                }
                return Next::Done;
            }
            drop(q);
            idle();
            q = match self.state.lock() {
                Ok(g) => g,
                Err(_) => return Next::Done,
            };
            if !q.mem.is_empty() || q.spooling || q.closed {
                continue;
            }
            q = match self.cv.wait(q) {
                Ok(g) => g,
                Err(_) => return Next::Done,
            };
        }
    }
}

/// Read the next spooled record; None at a short read. One record at a
/// time, so memory stays bounded however much was spooled.
fn read_spooled(
    reader: &mut BufReader<File>,
    buf: &mut String,
    last: &mut Option<Arc<OutputMatch>>,
) -> Option<Option<Item>> {
    buf.clear();
    if reader.read_line(buf).unwrap_or(0) == 0 {
        return None;
    }
    let Ok(rec) = serde_json::from_str::<SpoolIn>(buf) else {
        return Some(None);
    };
    // Consecutive records share their config.
    let om = match last {
        Some(c) if **c == rec.om => c.clone(),
        _ => {
            let c = Arc::new(rec.om);
            *last = Some(c.clone());
            c
        }
    };
    Some(Some(Item {
        om,
        stream: rec.stream,
        line: rec.line,
    }))
}

struct Worker {
    queue: Arc<Queue>,
    handle: JoinHandle<()>,
}

impl Worker {
    fn start(ctx: Arc<SinkCtx>) -> Worker {
        let queue = Arc::new(Queue {
            spool_path: ctx.job.path(SPOOL),
            ..Queue::default()
        });
        let q = queue.clone();
        let handle = std::thread::spawn(move || deliver_loop(&ctx, q));
        Worker { queue, handle }
    }
}

/// The delivery thread: events in queue order, a batch at a time.
fn deliver_loop(ctx: &SinkCtx, queue: Arc<Queue>) {
    let mut d = Deliverer {
        seq: 0,
        record_log: None,
        sink_file: None,
        event_dir_made: false,
        ended: queue.clone(),
        budget: ctx.timeout().unwrap_or(Duration::from_millis(
            crate::config::DEFAULT_SINK_TIMEOUT_MS,
        )),
    };
    let mut reader: Option<BufReader<File>> = None;
    let mut buf = String::new();
    let mut last = None;
    loop {
        match queue.next(&mut reader, &mut || d.idle()) {
            Next::Mem(items) => d.deliver(ctx, &items),
            Next::Spooled(mut n) => {
                if reader.is_none() {
                    reader = sys::open_read(&queue.spool_path).ok().map(BufReader::new);
                }
                let Some(r) = reader.as_mut() else { continue };
                // In batches, so memory stays bounded however much was
                // spooled: at most BATCH items, at most SPOOL_BATCH_BYTES.
                while n > 0 {
                    let mut items = Vec::with_capacity(n.min(BATCH));
                    let mut bytes = 0;
                    while n > 0 && items.len() < BATCH && bytes < SPOOL_BATCH_BYTES {
                        n -= 1;
                        match read_spooled(r, &mut buf, &mut last) {
                            Some(Some(item)) => {
                                bytes += item.cost();
                                items.push(item);
                            }
                            Some(None) => {}
                            None => n = 0,
                        }
                    }
                    d.deliver(ctx, &items);
                }
            }
            Next::Done => break,
        }
    }
}

struct Deliverer {
    /// Number of events delivered so far (the last one's 1-based seq).
    seq: u64,
    /// notification_events.ndjson, kept open for the job's life.
    record_log: Option<File>,
    /// The file sink target, kept open, with the (device, inode) it had
    /// when opened.
    sink_file: Option<(String, File, (u64, u64))>,
    event_dir_made: bool,
    /// The queue, closed at the job's end (`Queue::closed_at`).
    ended: Arc<Queue>,
    /// Once the job has ended, its backlog of command sinks gets one sink
    /// time limit (the default one when there is none) to start in; what
    /// is left after that is recorded, not run. Run one by one, 100,000
    /// hits of a 3 s sink held the supervisor for days: `job.finished`
    /// waited behind them, and the job could be neither deleted nor
    /// restarted.
    budget: Duration,
}

impl Deliverer {
    /// The queue ran empty: nothing to let go of (see `append_sink`).
    fn idle(&mut self) {}

    fn append_sink(&mut self, root: &Path, path: &str, bytes: &[u8]) -> Result<(), String> {
        // One stat per batch tells whether the path still names the file
        // we hold: a consumer that rotated or removed it gets a new file.
        let here = fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        let stale = self
            .sink_file
            .as_ref()
            .map_or(true, |(p, _, id)| p != path || here != Some(*id));
        if stale {
            let f = open_append(Path::new(path), root)?;
            let id = f.metadata().map(|m| (m.dev(), m.ino())).unwrap_or_default();
            self.sink_file = Some((path.to_string(), f, id));
        }
        let Some((_, f, _)) = self.sink_file.as_mut() else {
            return Err("open error: no file".into());
        };
        let r = append_line(f, bytes);
        if r.is_err() {
            self.sink_file = None;
        }
        r
    }

    fn append_records(&mut self, ctx: &SinkCtx, bytes: &[u8]) {
        let path = || ctx.job.path(job::MATCH_EVENTS);
        if self.record_log.is_none() {
            // In the job directory: never through a symlink.
            match open_in_job(&path(), sys::How::Append) {
                Ok(f) => self.record_log = Some(f),
                Err(e) => return records_lost(ctx, &path(), &format!("open error: {e}")),
            }
        }
        if let Some(f) = self.record_log.as_mut() {
            let before = f.metadata().map(|m| m.len());
            if let Err(e) = append_line(f, bytes) {
                // A write cut short (ENOSPC) leaves no half line for the
                // next record to be glued to.
                if let Ok(n) = before {
                    let _ = f.set_len(n);
                }
                records_lost(ctx, &path(), &e);
            }
        }
    }

    /// Deliver `items` in order. An event with a command sink goes alone
    /// (its sink must see the earlier events' records); a run of events
    /// with only a file sink (or none) shares one write per file.
    fn deliver(&mut self, ctx: &SinkCtx, items: &[Item]) {
        let mut rest = items;
        while let Some(first) = rest.first() {
            let n = if first.om.command.is_some() {
                1
            } else {
                rest.iter()
                    .take_while(|it| Arc::ptr_eq(&it.om, &first.om) || it.om == first.om)
                    .count()
            };
            let (run, tail) = rest.split_at(n);
            if first.om.command.is_some() {
                self.deliver_with_command(ctx, first);
            } else {
                self.deliver_run(ctx, run);
            }
            rest = tail;
        }
    }

    fn event<'a>(ctx: &'a SinkCtx, item: &'a Item) -> MatchEvent<'a> {
        MatchEvent {
            schema_version: crate::output::SCHEMA_VERSION,
            event_type: EVENT_MATCHED,
            job_id: &ctx.job_id,
            pattern: &item.om.pattern,
            match_type: &item.om.match_type,
            stream: if item.stream == 0 { "stdout" } else { "stderr" },
            line: &item.line,
            stdout_log_path: &ctx.stdout_path,
            stderr_log_path: &ctx.stderr_path,
        }
    }

    /// Events sharing one config without a command sink: the file sink
    /// gets all their lines in one write, then the records follow in one
    /// write (each record carries that write's result).
    fn deliver_run(&mut self, ctx: &SinkCtx, run: &[Item]) {
        let Some(first) = run.first() else { return };
        // Each event is serialized once; its record is the same text with
        // the run's (shared) delivery results spliced in before the last
        // brace: half the work of serializing a flattened Record each time.
        let mut lines = Vec::with_capacity(run.len() * 256);
        let mut ends = Vec::with_capacity(run.len());
        for it in run {
            if serde_json::to_writer(&mut lines, &Self::event(ctx, it)).is_ok() {
                lines.push(b'\n');
                ends.push(lines.len());
            }
        }
        let mut results = Vec::new();
        if let Some(f) = &first.om.file {
            let at = crate::time::now_ts();
            let r = self.append_sink(job_root(&ctx.job), f, &lines);
            results.push(file_result(f, r, at));
        }
        let results_json = serde_json::to_vec(&results).unwrap_or_else(|_| b"[]".to_vec());
        let mut recs = Vec::with_capacity(lines.len() + ends.len() * (results_json.len() + 24));
        let mut start = 0;
        for end in ends {
            // `{...}` + `\n`: drop the brace and newline, append the rest.
            let ev = &lines[start..end - 2];
            recs.extend_from_slice(ev);
            recs.extend_from_slice(b",\"delivery_results\":");
            recs.extend_from_slice(&results_json);
            recs.extend_from_slice(b"}\n");
            start = end;
        }
        self.seq += run.len() as u64;
        self.append_records(ctx, &recs);
    }

    fn deliver_with_command(&mut self, ctx: &SinkCtx, item: &Item) {
        self.seq += 1;
        let ev = Self::event(ctx, item);
        let Ok(json) = serde_json::to_vec(&ev) else {
            return;
        };
        let mut results = Vec::with_capacity(2);
        if let Some(c) = &item.om.command {
            let late = self
                .ended
                .closed_at()
                .and_then(|t| t.checked_add(self.budget))
                .is_some_and(|t| Instant::now() >= t);
            // Never started with an AGENT_EXEC_EVENT_PATH that does not
            // exist (D41): its failure is recorded instead. One left over
            // from the backlog gets no event file, which only a sink that
            // starts reads: a backlog of 100,000 wrote as many files
            // (450 MB) and held `job.finished` the while.
            results.push(if late {
                DeliveryResult::new(
                    "command",
                    c,
                    crate::time::now_ts(),
                    Err(BACKLOG_CUT.to_string()),
                )
            } else {
                match self.event_file(ctx, &ev) {
                    Ok(path) => run_command(ctx, c, EVENT_MATCHED, &path, &json),
                    Err(e) => not_started(c, &e),
                }
            });
        }
        if let Some(f) = &item.om.file {
            let at = crate::time::now_ts();
            let r = self.append_sink(job_root(&ctx.job), f, &with_newline(&json));
            results.push(file_result(f, r, at));
        }
        let rec = Record {
            event: &ev,
            delivery_results: &results,
        };
        if let Ok(line) = serde_json::to_vec(&rec) {
            self.append_records(ctx, &with_newline(&line));
        }
    }

    /// `match_events/<seq>.json`, holding the event before its command
    /// sink starts (AGENT_EXEC_EVENT_PATH); Err says why it could not be
    /// written (a full disk).
    ///
    /// Reached from the job directory one name at a time, neither of
    /// them through a symlink: a job directory swapped for a symlink while
    /// the job ran had the event written wherever the link led.
    fn event_file(&mut self, ctx: &SinkCtx, ev: &MatchEvent) -> Result<PathBuf, String> {
        let dir = ctx.job.path(MATCH_EVENT_DIR);
        let fail = |what: &str, e: io::Error| format!("{what} {}: {e}", dir.display());
        let job_dir = crate::sys::Dir::open(&ctx.job.dir).map_err(|e| fail("open", e))?;
        if !self.event_dir_made {
            match job_dir.mkdir(MATCH_EVENT_DIR) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(fail("create", e));
                }
                _ => self.event_dir_made = true,
            }
        }
        let d = job_dir
            .open_dir(MATCH_EVENT_DIR)
            .map_err(|e| fail("open", e))?;
        let name = format!("{:06}.json", self.seq);
        // One line, as the event's line in notification_events.ndjson
        // (and 0.2.3's AGENT_EXEC_EVENT_PATH) is: a sink that reads the
        // file as NDJSON finds its event, one that reads JSON too.
        let mut text = serde_json::to_vec(ev).map_err(|e| e.to_string())?;
        text.push(b'\n');
        crate::store::write_atomic_in(&d, &name, &text, false)
            .map_err(|e| fail(&format!("write {name} in"), e))?;
        Ok(dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn om(pattern: &str, match_type: &str, stream: &str) -> OutputMatch {
        OutputMatch {
            pattern: pattern.into(),
            match_type: match_type.into(),
            stream: stream.into(),
            command: None,
            file: None,
        }
    }

    #[test]
    fn contains_on_bytes() {
        assert!(contains(b"an ERROR here", "ERROR"));
        assert!(!contains(b"an error here", "ERROR"));
        assert!(contains(b"\xff\xfe ERROR", "ERROR"));
        assert!(!contains(b"ERR", "ERROR"));
        assert!(contains("caf\u{e9}".as_bytes(), "\u{e9}"));
    }

    #[test]
    fn chunk_text_trims_cut_characters() {
        let e = "\u{e9}".as_bytes(); // C3 A9
        assert_eq!(chunk_text(b"plain\nlines\n"), Some("plain\nlines\n"));
        let mut cut = vec![e[1]];
        cut.extend_from_slice(b"mid\n");
        cut.push(e[0]);
        assert_eq!(chunk_text(&cut), Some("mid\n"));
        assert_eq!(chunk_text(b"a\xffb\n"), None);
    }

    #[test]
    fn compiled_tests_and_streams() {
        let a = Active::compile(om("^ERR\\d+", "regex", "stderr"));
        assert!(a.is_match(b"ERR42 boom"));
        assert!(!a.is_match(b"x ERR42"));
        assert_eq!(a.streams, [false, true]);
        let bad = Active::compile(om("(", "regex", "either"));
        assert!(!bad.is_match(b"("));
        let c = Active::compile(om("(", "contains", "stdout"));
        assert!(c.is_match(b"a ( b"));
        assert_eq!(c.streams, [true, false]);
    }

    #[test]
    fn invalid_regex_is_rejected_when_set() {
        let e = check_pattern(&om("(", "regex", "either")).unwrap_err();
        assert_eq!(e.code(), "invalid_pattern");
        assert_eq!(e.exit_code(), 2);
        check_pattern(&om("(", "contains", "either")).unwrap();
    }

    #[test]
    fn exit_strings() {
        assert_eq!(exit_result(ExitStatus::from_raw(0)), Ok(()));
        assert_eq!(
            exit_result(ExitStatus::from_raw(3 << 8)),
            Err("exited with status 3".into())
        );
        assert_eq!(
            exit_result(ExitStatus::from_raw(9)),
            Err("killed by signal SIGKILL".into())
        );
    }

    #[test]
    fn event_field_order() {
        let ev = MatchEvent {
            schema_version: "0.1",
            event_type: EVENT_MATCHED,
            job_id: "J",
            pattern: "p",
            match_type: "contains",
            stream: "stdout",
            line: "l",
            stdout_log_path: "o",
            stderr_log_path: "e",
        };
        let rec = Record {
            event: &ev,
            delivery_results: &[],
        };
        assert_eq!(
            serde_json::to_string(&rec).unwrap(),
            r#"{"schema_version":"0.1","event_type":"job.output.matched","job_id":"J","pattern":"p","match_type":"contains","stream":"stdout","line":"l","stdout_log_path":"o","stderr_log_path":"e","delivery_results":[]}"#
        );
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ae-notify-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// Take what `next` hands out, the way the delivery thread does.
    fn take(q: &Queue, reader: &mut Option<BufReader<File>>, got: &mut Vec<String>) -> bool {
        match q.next(reader, &mut || {}) {
            Next::Mem(items) => got.extend(items.into_iter().map(|i| i.line)),
            Next::Spooled(n) => {
                if reader.is_none() {
                    *reader = Some(BufReader::new(File::open(&q.spool_path).unwrap()));
                }
                let (mut buf, mut last) = (String::new(), None);
                for _ in 0..n {
                    let item = read_spooled(reader.as_mut().unwrap(), &mut buf, &mut last);
                    got.push(item.unwrap().unwrap().line);
                }
            }
            Next::Done => return false,
        }
        true
    }

    /// Items pushed past the memory budget go through the spool and come
    /// out in push order, across several rounds where the delivery side
    /// catches up (so the spool starts over); the spool is removed at the
    /// end.
    #[test]
    fn queue_spills_in_order() {
        let dir = temp_dir("queue");
        let q = Queue {
            spool_path: dir.join(SPOOL),
            ..Queue::default()
        };
        let cfg = Arc::new(om("x", "contains", "either"));
        let big = "x".repeat(MEM_QUEUE_BYTES / 4);
        let taken = std::sync::atomic::AtomicUsize::new(0);
        let go = std::sync::atomic::AtomicBool::new(false);
        let mut expected = Vec::new();
        let got = std::thread::scope(|sc| {
            let consumer = sc.spawn(|| {
                // Held back during round 0, so that round must spill.
                while !go.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                let (mut reader, mut got) = (None, Vec::new());
                while take(&q, &mut reader, &mut got) {
                    taken.store(got.len(), std::sync::atomic::Ordering::SeqCst);
                }
                got
            });
            for round in 0..3 {
                for i in round * 10..round * 10 + 10 {
                    let line = if i % 3 == 0 {
                        format!("{i}{big}")
                    } else {
                        format!("{i}")
                    };
                    expected.push(line.clone());
                    q.push(Item {
                        om: cfg.clone(),
                        stream: (i % 2) as u8,
                        line,
                    });
                }
                assert!(q.state.lock().unwrap().mem_bytes <= MEM_QUEUE_BYTES);
                if round == 0 {
                    assert!(q.state.lock().unwrap().spooling, "never spilled");
                    go.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                while taken.load(std::sync::atomic::Ordering::SeqCst) < expected.len() {
                    std::thread::yield_now();
                }
            }
            q.close();
            consumer.join().unwrap()
        });
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "order differs");
        assert!(!dir.join(SPOOL).exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_sink_creates_parents() {
        let dir = temp_dir("file");
        let p = dir.join("a/b/events.ndjson");
        let root = dir.join("jobs");
        let mut f = open_append(&p, &root).unwrap();
        append_line(&mut f, b"{}\n").unwrap();
        append_line(&mut f, b"{}\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "{}\n{}\n");
        let blocked = dir.join("a/b/events.ndjson/x");
        assert!(open_append(&blocked, &root)
            .unwrap_err()
            .starts_with("create parent dir:"));
        // Never into the jobs root: by name, or through a link to it;
        // nothing is made there.
        fs::create_dir_all(root.join("01JOB")).unwrap();
        std::os::unix::fs::symlink(&root, dir.join("link")).unwrap();
        for p in [
            root.join("01JOB/meta.json"),
            root.join("new/events.ndjson"),
            dir.join("link/01JOB/x.ndjson"),
        ] {
            let e = open_append(&p, &root).unwrap_err();
            assert!(
                e.starts_with("refused: the file is inside a directory of the jobs root"),
                "{e}"
            );
        }
        assert!(!root.join("01JOB/meta.json").exists());
        assert!(!root.join("new").exists());
        // A dangling link into a job directory (direct, through a chain,
        // or above the file): refused, and nothing made where it leads.
        std::os::unix::fs::symlink(root.join("01JOB/runs"), dir.join("dangling")).unwrap();
        std::os::unix::fs::symlink(dir.join("dangling"), dir.join("chain")).unwrap();
        std::os::unix::fs::symlink(root.join("01JOB/sub"), dir.join("updir")).unwrap();
        for p in [
            dir.join("dangling"),
            dir.join("chain"),
            dir.join("updir/x/e.ndjson"),
        ] {
            let e = open_append(&p, &root).unwrap_err();
            assert!(e.starts_with("refused:"), "{}: {e}", p.display());
        }
        assert_eq!(fs::read_dir(root.join("01JOB")).unwrap().count(), 0);
        // A dangling link leading outside makes the file where it leads;
        // a link to an existing file appends to it.
        std::os::unix::fs::symlink(dir.join("out/far.ndjson"), dir.join("away")).unwrap();
        append_line(&mut open_append(&dir.join("away"), &root).unwrap(), b"1\n").unwrap();
        append_line(&mut open_append(&dir.join("away"), &root).unwrap(), b"2\n").unwrap();
        assert_eq!(
            fs::read_to_string(dir.join("out/far.ndjson")).unwrap(),
            "1\n2\n"
        );
        // A file directly in the root is no job's: allowed.
        assert!(open_append(&root.join("events.ndjson"), &root).is_ok());
        let _ = fs::remove_dir_all(&dir);
    }
}
