//! Defining a job on disk and starting its supervisor. Used by `run`,
//! `create`, `start` and the HTTP server's `POST /exec`.
//!
//! The front-end writes the job directory (meta.json, env.json,
//! stdin.bin; state.json = created only for `create`), then takes the job
//! lock and starts
//! the supervisor as `agent-exec _supervise <root> <id>`, this same
//! binary, in a session of its own: from the CLI with one spawn (vfork →
//! setsid → exec; init adopts it when the caller exits), from a caller
//! that lives long (`serve`, `mcp`) with fork → setsid → fork → exec, so
//! that it has no supervisors to reap (`spawn_supervisor`). Two descriptors cross the exec:
//! fd 3, the write end of a readiness pipe, and fd 4, the job lock. The
//! lock therefore passes from the front-end to the supervisor without a
//! moment where it is free, which is what makes a concurrent `start` of
//! the same job lose cleanly.
//!
//! Readiness protocol on the pipe, one byte each: `R` (running, state.json
//! written), `F` (launch failed, state.json says why), `T` (terminal state
//! on disk), `Q` (queued: waiting for a queue slot or other jobs, see
//! `queue`; `R` or `T` follows when it starts or ends). EOF without `T`
//! means the supervisor is gone.
//!
//! Rejected: a forked front-end that goes on as the supervisor, without
//! the exec (tried: `perf stat` of `run --shell-wrapper 'sh -c' -- echo
//! hello` 3.27 → 2.98 ms, CPU 3.72 → 3.11 ms; launch to job id about
//! 0.9×). The supervisor then carries the front-end's dirty pages
//! (Private_Dirty 100 → 120 KiB), `ps` shows it as the caller's `run`
//! command line instead of `_supervise <root> <id>` (what `pgrep` finds
//! a job's supervisor by), and it is sound only in a caller with one
//! thread: DESIGN keeps the re-exec.
//!
//! Invariants
//! - No secret in any argv: `--env` values live in env.json (0600).
//! - A double fork's intermediate child is reaped before `launch` returns.
//! - A launch failure is a `failed` job with `failure.code`, not an error
//!   envelope: the command worked, the job did not.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::Matches;
use crate::config::{Config, GcConfig};
use crate::error::{Error, Result};
use crate::gc::AutoGc;
use crate::job::{self, Job, Meta, Notification, State, Status};
use crate::store::{self, Store};
use crate::{observe, sys};

/// Where the job's stdin comes from.
#[derive(Debug, Clone)]
pub enum StdinSrc {
    None,
    Value(String),
    Caller,
    File(String),
}

/// Everything that defines a job, before it exists on disk.
#[derive(Debug, Clone)]
pub struct Spec {
    pub command: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<String>,
    pub env_files: Vec<String>,
    pub inherit_env: bool,
    pub mask: Vec<String>,
    pub stdin: StdinSrc,
    pub stdin_max_bytes: u64,
    pub tags: Vec<String>,
    pub timeout_ms: u64,
    pub kill_after_ms: u64,
    pub progress_every_ms: u64,
    pub shell_wrapper: Vec<String>,
    pub notification: Option<Notification>,
    pub full_log: Option<String>,
    pub interactive: bool,
    /// `--tty [--tty-size COLSxROWS]`: [cols, rows].
    pub tty: Option<[u16; 2]>,
    /// `--retry N [--retry-delay D]` (None: no retry).
    pub retry: Option<job::Retry>,
    /// `[restart] keep_runs`, `[notify] sink_timeout` and `[gc]` of a
    /// config named with `--config`: kept with the job for its later
    /// launches (`relaunch_settings`). None: no config was named.
    pub keep_runs: Option<u64>,
    pub named_sink_timeout_ms: Option<u64>,
    pub named_gc: Option<GcConfig>,
    /// `--max-log-bytes` (else `[log] max_bytes`; None or 0: no cap).
    pub max_log_bytes: Option<u64>,
    /// `--no-full-log` (or `[log] full = false`).
    pub no_full_log: bool,
    /// Launch-time, not stored: the command-sink time limit from the
    /// caller's config (None: the supervisor reads the default config).
    /// What is kept for later launches is `named_sink_timeout_ms`.
    pub sink_timeout_ms: Option<u64>,
    /// `--queue`, its slot count, `--after`, `--after-ok` (ids as given;
    /// `define` resolves them). See `queue`.
    pub queue: Option<String>,
    pub parallel: Option<u32>,
    pub after: Vec<String>,
    pub after_ok: Vec<String>,
}

impl Spec {
    /// A spec with defaults for everything but the command.
    pub fn new(command: Vec<String>) -> Spec {
        Spec {
            command,
            cwd: None,
            env: Vec::new(),
            env_files: Vec::new(),
            inherit_env: true,
            mask: Vec::new(),
            stdin: StdinSrc::None,
            stdin_max_bytes: DEFAULT_STDIN_MAX,
            tags: Vec::new(),
            timeout_ms: 0,
            kill_after_ms: 0,
            progress_every_ms: 0,
            shell_wrapper: default_wrapper(),
            notification: None,
            full_log: None,
            interactive: false,
            tty: None,
            retry: None,
            keep_runs: None,
            named_sink_timeout_ms: None,
            named_gc: None,
            max_log_bytes: None,
            no_full_log: false,
            sink_timeout_ms: None,
            queue: None,
            parallel: None,
            after: Vec::new(),
            after_ok: Vec::new(),
        }
    }

    /// The definition-time flags shared by `run` and `create`.
    pub fn from_matches(m: &Matches, cfg: &Config) -> Result<Spec> {
        let mut spec = Spec::new(m.rest.clone());
        spec.cwd = m.get("cwd").map(str::to_string);
        spec.env = resolve_env(&m.all("env"))?;
        spec.env_files = m
            .all("env-file")
            .into_iter()
            .map(|p| {
                store::absolutize(Path::new(p))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        spec.inherit_env = !m.has("no-inherit-env");
        spec.mask = m.all("mask").into_iter().map(str::to_string).collect();
        spec.stdin = match (m.get("stdin"), m.get("stdin-file")) {
            (Some("-"), _) => StdinSrc::Caller,
            (Some(v), _) => StdinSrc::Value(v.to_string()),
            (None, Some(f)) => StdinSrc::File(f.to_string()),
            (None, None) => StdinSrc::None,
        };
        spec.stdin_max_bytes = m.u64("stdin-max-bytes").unwrap_or(DEFAULT_STDIN_MAX);
        spec.tags = job::dedup(&m.all("tag"));
        spec.timeout_ms = m.duration_ms("timeout").unwrap_or(0);
        spec.kill_after_ms = m.duration_ms("kill-after").unwrap_or(0);
        spec.progress_every_ms = m.duration_ms("progress-every").unwrap_or(0);
        spec.shell_wrapper = resolve_wrapper(m.get("shell-wrapper"), cfg)?;
        spec.sink_timeout_ms = Some(cfg.notify.sink_timeout_ms);
        spec.notification = crate::notify::notification_from(m, None)?;
        spec.tty = if m.has("tty") {
            Some(parse_tty_size(m.get("tty-size").unwrap_or("80x24"))?)
        } else if m.has("tty-size") {
            return Err(Error::usage("--tty-size needs --tty"));
        } else {
            None
        };
        spec.interactive = m.has("interactive") || spec.tty.is_some();
        spec.retry = match m.u64("retry").unwrap_or(0) {
            0 => None,
            n => Some(job::Retry {
                times: u32::try_from(n).map_err(|_| Error::usage("--retry is too large"))?,
                delay_ms: m.duration_ms("retry-delay").unwrap_or(0),
                keep_runs: cfg.keep_runs,
            }),
        };
        // A config named with --config is not read again by `start` or
        // `restart` (they take none), so what it says about their
        // settings is kept with the job.
        let named = m.has("config");
        spec.keep_runs = named.then_some(cfg.keep_runs);
        spec.named_sink_timeout_ms = named.then_some(cfg.notify.sink_timeout_ms);
        spec.named_gc = named.then(|| cfg.gc.clone());
        spec.queue = m.get("queue").map(str::to_string);
        if let Some(q) = &spec.queue {
            crate::queue::check_name(q)?;
        }
        spec.parallel = match (m.u64("parallel"), &spec.queue) {
            (Some(_), None) => return Err(Error::usage("--parallel needs --queue")),
            (Some(n), Some(_)) => Some(crate::queue::check_parallel(n)?),
            (None, Some(q)) => cfg.queue_parallel(q),
            (None, None) => None,
        };
        spec.after = m.all("after").into_iter().map(str::to_string).collect();
        spec.after_ok = m.all("after-ok").into_iter().map(str::to_string).collect();
        spec.max_log_bytes = m
            .u64("max-log-bytes")
            .or(cfg.log.max_bytes)
            .filter(|&n| n > 0);
        spec.no_full_log =
            m.has("no-full-log") || (!cfg.log.full && !m.has("log") && !m.has("full-log"));
        spec.full_log = m.get("log").map(|p| {
            store::absolutize(Path::new(p))
                .to_string_lossy()
                .into_owned()
        });
        Ok(spec)
    }
}

pub const DEFAULT_STDIN_MAX: u64 = 64 * 1024 * 1024;

/// `COLSxROWS`, each 1..=10000.
pub fn parse_tty_size(s: &str) -> Result<[u16; 2]> {
    let bad = || {
        Error::usage(format!(
            "invalid value '{s}' for '--tty-size': expected COLSxROWS such as 120x40"
        ))
    };
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let n = |v: &str| v.parse::<u16>().ok().filter(|n| (1..=10000).contains(n));
    Ok([n(c).ok_or_else(bad)?, n(r).ok_or_else(bad)?])
}

/// The largest env file read (they are KEY=VALUE lines, not data).
pub const ENV_FILE_MAX: u64 = 1024 * 1024;

/// `--env KEY=VALUE` as given; `--env NAME` alone passes the caller's
/// value of NAME on (as `docker run -e NAME` does) and is dropped when
/// the caller has none — resolved now, so `start` later sees the value
/// the definer had. A caller's value that is not UTF-8 is refused, as
/// `--env NAME=<such bytes>` is: passed on lossily, the job would get
/// other bytes than the caller has, with no word.
pub fn resolve_env(given: &[&str]) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(given.len());
    for kv in given {
        if kv.contains('=') {
            out.push(kv.to_string());
            continue;
        }
        let Some(v) = std::env::var_os(kv) else {
            continue;
        };
        let v = v.into_string().map_err(|_| {
            Error::usage(format!(
                "--env {kv}: the caller's value of {kv} is not UTF-8 (a job's values are text); the job inherits it as it is unless --no-inherit-env is given"
            ))
        })?;
        out.push(format!("{kv}={v}"));
    }
    Ok(out)
}

/// The prefix of the variables agent-exec itself hands to a login
/// shell (`supervisor::REAPPLY_VAR`, `CALLER_PATH_VAR`, the PATH
/// rebuild's own): a job's variable of that name would be overwritten or
/// unset, so none is taken.
pub const RESERVED_ENV_PREFIX: &str = "__AGENT_EXEC_";
pub const RESERVED_ENV: &str = "names beginning with __AGENT_EXEC_ are agent-exec's own";

pub fn reserved_env_name(name: &str) -> bool {
    name.starts_with(RESERVED_ENV_PREFIX)
}

/// One `--env` entry given as a name and a value (the env objects of
/// HTTP's `/exec` and MCP's `run`): `NAME=VALUE`, or why it cannot be one
/// (a name empty or holding `=` or NUL, a value holding NUL).
pub fn env_entry(name: &str, value: &str) -> std::result::Result<String, String> {
    if name.is_empty() || name.contains(['=', '\0']) || value.contains('\0') {
        return Err(format!(
            "invalid env entry '{name}': names must be non-empty without '=' or NUL, values without NUL"
        ));
    }
    if reserved_env_name(name) {
        return Err(format!("invalid env entry '{name}': {RESERVED_ENV}"));
    }
    Ok(format!("{name}={value}"))
}

/// Read and parse one env file: a regular file of at most `ENV_FILE_MAX`
/// bytes (a FIFO or a device is refused before a byte is read).
pub fn read_env_file(path: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let bytes = sys::read_bounded(Path::new(path), ENV_FILE_MAX)
        .map_err(|e| format!("read env file {path}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("env file {path} is not UTF-8"))?;
    // No environment entry can hold one: the file is at fault, not the
    // spawn that would find it.
    if let Some(line) = text.split('\n').position(|l| l.contains('\0')) {
        return Err(format!(
            "env file {path}: line {} holds a NUL byte",
            line + 1
        ));
    }
    // Editors on Windows start a UTF-8 file with a byte-order mark; kept,
    // it would become part of the first name and that variable be lost.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines =
        crate::supervisor::parse_env_file(text).map_err(|e| format!("env file {path}: {e}"))?;
    let mut vars = Vec::with_capacity(lines.len());
    for l in lines {
        if reserved_env_name(&l.name) {
            return Err(format!(
                "env file {path}: line {}: {}: {RESERVED_ENV}",
                l.line, l.name
            ));
        }
        // A bare NAME is `--env NAME`: the caller's value (this process
        // has the caller's environment), dropped when there is none, so
        // that an earlier value stands.
        let value = match l.value {
            Some(v) => v,
            None => match std::env::var_os(&l.name) {
                None => continue,
                Some(v) => v.into_string().map_err(|_| {
                    format!(
                        "env file {path}: line {}: the caller's value of {} is not UTF-8",
                        l.line, l.name
                    )
                })?,
            },
        };
        vars.push((l.name, value));
    }
    Ok(vars)
}

/// The masked display form of a defined job's `--env` entries (`start`'s
/// answer): read from env.json, since meta.json holds no values. A job
/// 0.2.3 created has no env.json: its values are meta.json's
/// `env_vars_runtime` (its display form, `env_vars`, is not kept when we
/// rewrite meta.json, `tag set`).
pub fn env_display(job: &Job, meta: &Meta) -> Vec<String> {
    if !meta.env_vars.is_empty() {
        return meta.env_vars.clone();
    }
    let vars: Vec<String> =
        job::read_json(&job.path(job::ENV)).unwrap_or_else(|_| meta.env_vars_runtime.clone());
    display_env(&vars, &meta.mask)
}

pub fn default_wrapper() -> Vec<String> {
    vec!["sh".to_string(), "-lc".to_string()]
}

/// The config settings of a later launch of a defined job (`start`,
/// `restart`), which take no `--config`.
pub struct Relaunch {
    pub gc: GcConfig,
    pub sink_timeout_ms: u64,
    pub keep_runs: u64,
}

/// What the config named when the job was defined said (kept in its
/// meta.json), else what the default config says now. The default
/// config is read only for what the job does not keep: a job defined
/// with `--config` (which keeps all three) launches the same whatever
/// the default config holds, even a broken one. A job defined by an
/// older version keeps `keep_runs` at most.
pub fn relaunch_settings(meta: &Meta) -> Result<Relaunch> {
    let (gc, sink, keep) = (&meta.gc, meta.sink_timeout_ms(), meta.keep_runs);
    let cfg = match (gc, sink, keep) {
        (Some(_), Some(_), Some(_)) => Config::default(),
        _ => crate::config::load(None)?,
    };
    Ok(Relaunch {
        gc: gc.clone().unwrap_or(cfg.gc),
        sink_timeout_ms: sink.unwrap_or(cfg.notify.sink_timeout_ms),
        keep_runs: keep.unwrap_or(cfg.keep_runs),
    })
}

/// Flag checks that need no file: done before the config is read, so a
/// malformed flag is a usage error whatever the config says.
pub fn check_flags(m: &Matches) -> Result<()> {
    if m.get("shell-wrapper").is_some_and(|w| w.trim().is_empty()) {
        return Err(Error::usage("--shell-wrapper must not be empty"));
    }
    // A blank sink command would fail at every delivery ("empty shell
    // command"); on a new job there is nothing for it to clear.
    for sink in ["notify-command", "output-command"] {
        if m.has(sink) && m.get(sink).is_some_and(|c| c.trim().is_empty()) {
            return Err(Error::usage(format!("--{sink} must not be empty")));
        }
    }
    // An empty path would name the current directory (made absolute),
    // which no sink can append to and no log can be; an empty --cwd (an
    // unset variable in a script) would run the job in the caller's
    // directory without a word.
    for path in [
        "notify-file",
        "output-file",
        "log",
        "cwd",
        "env-file",
        "stdin-file",
    ] {
        if m.all(path).contains(&"") {
            return Err(Error::usage(format!("--{path} must not be empty")));
        }
    }
    Ok(())
}

/// `--shell-wrapper "prog flags"` > `--config FILE`'s `[shell] unix` >
/// the default config file's > `sh -lc`: a `--config` without the key
/// leaves the wrapper to the default file, as 0.2.3 resolved it (that
/// file is read for nothing else then, and only when it is needed).
pub fn resolve_wrapper(flag: Option<&str>, cfg: &Config) -> Result<Vec<String>> {
    if let Some(w) = flag {
        let parts: Vec<String> = w.split_whitespace().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(Error::usage("--shell-wrapper must not be empty"));
        }
        return Ok(parts);
    }
    if let Some(w) = &cfg.shell_unix {
        return Ok(w.clone());
    }
    if cfg.path.is_some() && cfg.path != crate::config::default_path() {
        if let Some(w) = crate::config::default_shell_unix() {
            return Ok(w);
        }
    }
    Ok(default_wrapper())
}

/// The process cwd, or the canonical `--cwd` (absolute if it cannot be
/// canonicalised, e.g. because it does not exist: the supervisor then
/// records `cwd_not_found`).
/// The job's working directory as stored: `--cwd` (made absolute), else
/// the caller's own, canonical. A caller whose directory is gone (getcwd
/// fails) or whose path is not UTF-8 (meta.json holds text) is refused:
/// running the command anywhere else (`/`, or a path rewritten lossily
/// that names no directory) is never what was asked.
fn effective_cwd(cwd: Option<&str>) -> Result<String> {
    let here = || std::env::current_dir().map_err(|e| Error::io("current directory", e));
    let base = match cwd {
        Some(c) if Path::new(c).is_absolute() => PathBuf::from(c),
        // A relative --cwd is from the caller's directory: one that was
        // removed cannot be recorded (a relative path would be), as for
        // no --cwd.
        Some(c) => here()?.join(c),
        None => here()?,
    };
    let path = fs::canonicalize(&base).unwrap_or_else(|_| store::absolutize(&base));
    dir_text(path, "pass --cwd with a path that is")
}

/// A working directory as text (meta.json holds it so): one whose path
/// is not UTF-8 is a `usage_error` saying so, `hint` telling what to do
/// instead; a lossy rewrite would name a directory that does not exist.
/// `run` checks the directory it records here, and `list` / `delete
/// --all` the one they match jobs against.
pub fn dir_text(path: PathBuf, hint: &str) -> Result<String> {
    match path.into_os_string().into_string() {
        Ok(s) => Ok(s),
        Err(p) => Err(Error::usage(format!(
            "the working directory {} is not valid UTF-8; {hint}",
            p.to_string_lossy()
        ))),
    }
}

/// Masked display form of `--env` entries.
pub fn display_env(env: &[String], mask: &[String]) -> Vec<String> {
    env.iter()
        .map(|kv| {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            if mask.iter().any(|m| m == key) {
                format!("{key}=***")
            } else {
                kv.clone()
            }
        })
        .collect()
}

/// Copy at most `limit` bytes; more is `stdin_too_large`. A read that a
/// stop signal interrupts (`observe::until_stopped`) is `io_error`, with
/// `undone` saying what was not done.
pub fn copy_limited(
    src: &mut dyn Read,
    dst: &mut dyn Write,
    limit: u64,
    undone: &str,
) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if sys::stop_ends_wait() {
                    return Err(Error::io(
                        "read stdin",
                        io::Error::new(
                            io::ErrorKind::Interrupted,
                            format!(
                                "stopped by a signal while reading the caller's stdin: {undone}"
                            ),
                        ),
                    ));
                }
                continue;
            }
            Err(e) => return Err(Error::io("read stdin", e)),
        };
        total += n as u64;
        if total > limit {
            return Err(Error::StdinTooLarge(limit));
        }
        dst.write_all(&buf[..n])
            .map_err(|e| Error::io("write stdin.bin", e))?;
    }
}

/// What `copy_limited` says when a stop signal ended the launch's read.
const NO_JOB: &str = "no job was made";

/// A job just written to disk by `define`.
pub struct Defined {
    pub job: Job,
    pub meta: Meta,
    pub state: State,
    /// `run`'s job lock, taken before meta.json was written and held
    /// until the supervisor inherits it (see `launch`).
    pub lock: Option<File>,
    /// Its `--stdin-file` source could not be read, so it has no
    /// stdin.bin: its first launch fails `stdin_unreadable` (which
    /// `create` makes at once, so that the failure is recorded and its
    /// `job.finished` delivered by the supervisor, as for `run`).
    pub stdin_unreadable: bool,
}

/// Write a new job directory for `spec`, `created`. A stdin source or
/// an env file that cannot be read fails the job's launch (at once for
/// `run`: D12), in its supervisor, like every launch failure.
/// `keep_created`: write state.json even while the job is only `created`
/// (`create`). `run` goes straight to `running`, as in 0.2.3: its
/// supervisor writes the first state, and until then the job reads as
/// `created` (`Job::read_state`). One file fewer on the launch path.
/// `run` also takes the job lock before meta.json exists: a launch that
/// dies before its supervisor runs leaves a free lock, which readers turn
/// into `failed`/`launch_lost` (`observe::current_state`).
pub fn define(store: &Store, spec: &Spec, keep_created: bool) -> Result<Defined> {
    if matches!(spec.stdin, StdinSrc::Caller) && sys::isatty(0) {
        return Err(Error::StdinRequired);
    }
    let mut job = store.create_job()?;
    let res = (|| {
        // Pinned from the start: no gc removes it under us.
        job.pin_new()?;
        let lock = if keep_created {
            None
        } else {
            // A fresh directory nobody else writes: create-exclusive,
            // then lock. Readers need meta.json, which comes after.
            let f = sys::Dir::open(&job.dir)
                .and_then(|d| d.open_file(job::LOCK, sys::How::CreateNew))
                .map_err(|e| Error::io("create job lock", e))?;
            sys::lock_exclusive(&f).map_err(|e| Error::io("lock job", e))?;
            reserve_record_room(&f)?;
            Some(f)
        };
        let (meta, state, stdin_unreadable) = define_in(store, &job, spec, keep_created)?;
        Ok((meta, state, lock, stdin_unreadable))
    })();
    match res {
        Ok((meta, state, lock, stdin_unreadable)) => Ok(Defined {
            job,
            meta,
            state,
            lock,
            stdin_unreadable,
        }),
        Err(e) => {
            // No debris: a job that could not be defined does not exist.
            // The pin goes first: out of descriptors, the removal needs
            // the one it holds, and nobody else takes this directory
            // meanwhile (no remover takes a fresh one without meta.json,
            // `gc::abandoned_incomplete`).
            job.unpin();
            discard(&job, None);
            Err(e)
        }
    }
}

/// Take away a job directory this call made and could not launch (or
/// define): the error answer is then all that is left of it.
/// meta.json goes first, by path (no descriptor needed), so that from
/// then on the directory is no job to any reader; then the job lock, if
/// held, whose descriptor the rest of the removal may need; then the
/// rest. Best effort: a directory that stays is a half-written one,
/// which gc removes after a minute.
fn discard(job: &Job, lock: Option<File>) {
    let _ = fs::remove_file(job.path(job::META));
    drop(lock);
    if fs::remove_dir_all(&job.dir).is_err() {
        // Out of descriptors (a server under a tight `ulimit -n`), the
        // walk cannot open the directory: an empty one, the usual case
        // then, goes by its path alone.
        let _ = fs::remove_dir(&job.dir);
    }
}

/// Room kept for one state file: a block of the file systems we meet
/// (a page of tmpfs), more than a failed state takes.
const RECORD_ROOM: u64 = 4096;

/// Real blocks in `run`'s new lock file, taken before meta.json is
/// written, so that a job defined on a nearly full disk can always record
/// its end: the supervisor's own reserve (64 KiB) may then fail, and the
/// `failed`/`no_space` state it writes instead needs a block that
/// meta.json may have taken; it gives these back for it (the lock file is
/// cut to nothing before the retried write, `publish_terminal`). Without
/// them, the job had no state.json, a free lock and a disk too full to
/// record `launch_lost`: `run` answered `io_error` and left the job
/// behind. A disk without even this room fails the definition instead
/// (no job is left: `define` removes it). A file system without fallocate,
/// or a file-size limit below it (EFBIG), goes on without: neither is a
/// full disk.
fn reserve_record_room(lock: &File) -> Result<()> {
    match sys::allocate(lock, RECORD_ROOM) {
        Err(e) if crate::error::no_room(&e) => {
            Err(Error::io("reserve room for the job's state", e))
        }
        _ => Ok(()),
    }
}

fn define_in(
    store: &Store,
    job: &Job,
    spec: &Spec,
    keep_created: bool,
) -> Result<(Meta, State, bool)> {
    let env_keys = spec
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map_or(kv.as_str(), |(k, _)| k)
                .to_string()
        })
        .collect();
    let mut meta = Meta {
        job: job::JobIdent { id: job.id.clone() },
        schema_version: crate::output::SCHEMA_VERSION.to_string(),
        command: spec.command.clone(),
        created_at: crate::time::now_ts(),
        root: store.display(),
        env_keys,
        env_vars: display_env(&spec.env, &spec.mask),
        env_vars_runtime: Vec::new(),
        mask: spec.mask.clone(),
        cwd: Some(effective_cwd(spec.cwd.as_deref())?),
        notification: spec.notification.clone().filter(|n| !n.is_empty()),
        tags: spec.tags.clone(),
        inherit_env: spec.inherit_env,
        env_files: spec.env_files.clone(),
        timeout_ms: spec.timeout_ms,
        kill_after_ms: spec.kill_after_ms,
        progress_every_ms: spec.progress_every_ms,
        shell_wrapper: spec.shell_wrapper.clone(),
        stdin_file: None,
        full_log: spec.full_log.clone(),
        interactive: spec.interactive,
        tty: spec.tty,
        retry: spec.retry.clone(),
        keep_runs: spec.keep_runs,
        sink_timeout_ms: spec.named_sink_timeout_ms,
        // For an older version reading this job (see the field).
        sink_timeout_secs: spec.named_sink_timeout_ms.map(|ms| ms.div_ceil(1000)),
        gc: spec.named_gc.clone(),
        queue: spec.queue.clone(),
        parallel: spec.queue.as_ref().map(|_| spec.parallel.unwrap_or(1)),
        after: resolve_deps(store, &spec.after)?,
        after_ok: resolve_deps(store, &spec.after_ok)?,
        max_log_bytes: spec.max_log_bytes,
        no_full_log: spec.no_full_log,
    };
    let mut state = State::created(&job.id);
    // Its queue, shown in any state: a created job's too.
    state.queue = spec.queue.clone();
    // Env files are read by the supervisor when the job starts (for
    // `run`, now): an unusable one fails the launch there, which records
    // it and delivers its `job.finished` as for any launch failure. A
    // created job only stores the paths (the README: "re-read at start
    // time"), so the file may be written between `create` and `start`.
    let mut stdin_unreadable = false;
    if !spec.env.is_empty() {
        let text = serde_json::to_vec(&spec.env).map_err(|e| Error::internal(e.to_string()))?;
        store::write_atomic(&job.dir, job::ENV, &text, false)
            .map_err(|e| Error::io("write env.json", e))?;
    }
    if !matches!(spec.stdin, StdinSrc::None) {
        let mut dst = sys::Dir::open(&job.dir)
            .and_then(|d| d.open_file(job::STDIN, sys::How::Truncate))
            .map_err(|e| Error::io("create stdin.bin", e))?;
        match &spec.stdin {
            StdinSrc::Value(v) => {
                copy_limited(&mut v.as_bytes(), &mut dst, spec.stdin_max_bytes, NO_JOB)?;
            }
            StdinSrc::Caller => {
                // A read that may wait for as long as the caller's writer
                // likes: a stop signal (`timeout`, Ctrl-C, a framework
                // cancelling the call) ends it, and no job is made. It
                // was read to EOF whatever came, then the job launched.
                crate::observe::until_stopped(|| {
                    copy_limited(
                        &mut io::stdin().lock(),
                        &mut dst,
                        spec.stdin_max_bytes,
                        NO_JOB,
                    )
                })?;
            }
            StdinSrc::File(src) => match open_regular(src) {
                Ok(mut f) => copy_limited(&mut f, &mut dst, spec.stdin_max_bytes, NO_JOB)?,
                Err(e) => {
                    // No stdin.bin: the supervisor cannot open it and
                    // fails the launch `stdin_unreadable`, recording it
                    // and delivering `job.finished` as for any launch
                    // failure. An empty one would run the job without
                    // its input.
                    let why = format!("open --stdin-file source {src}: {e}");
                    crate::info!("define {}: {why}", job.id);
                    sys::Dir::open(&job.dir)
                        .and_then(|d| d.unlink(job::STDIN))
                        .map_err(|e| Error::io("remove stdin.bin", e))?;
                    // Best effort: without it the failure names stdin.bin.
                    let _ =
                        store::write_atomic(&job.dir, job::STDIN_UNREADABLE, why.as_bytes(), false);
                    stdin_unreadable = true;
                }
            },
            StdinSrc::None => {}
        }
        meta.stdin_file = Some(job::STDIN.to_string());
    }
    // A created job has no lock: its state.json comes before meta.json,
    // which makes the directory a job to readers, so that none finds a
    // job with no state (what a launch of 0.2.3's that failed early
    // leaves, which readers take for lost).
    if keep_created {
        job.write_state(&state, false)?;
    }
    job.write_meta(&meta)?;
    // A capped log's gap records exist before the log does, so that a
    // reader that finds the log finds them (see `logcap`).
    if keep_created && meta.max_log_bytes.is_some() {
        sys::Dir::open(&job.dir)
            .and_then(|d| crate::logcap::create(&d))
            .map_err(|e| Error::io(format!("create {}", crate::logcap::GAPS), e))?;
    }
    // Every path a response prints exists when it is printed (D41): a
    // created job's logs are empty files until it starts; `run`'s are
    // created by its supervisor before it reports.
    if keep_created {
        create_logs(job)?;
        create_full_log(job, &meta)?;
    }
    Ok((meta, state, stdin_unreadable))
}

/// `--after`/`--after-ok` ids (full or unique prefixes) as full ids; an
/// unknown one is `job_not_found` naming it.
fn resolve_deps(store: &Store, ids: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        let j = store.lookup(id).map_err(|e| e.in_job(id))?;
        if !out.contains(&j.id) {
            out.push(j.id);
        }
    }
    Ok(out)
}

/// A user-named input file: must be a regular file (a FIFO or a device
/// such as /dev/urandom is refused before a byte is read).
fn open_regular(path: &str) -> io::Result<File> {
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    sys::check_regular(&f)?;
    Ok(f)
}

/// Create both stream logs empty where they do not exist (0600, never
/// through a symlink); a log already there is kept as it is.
pub fn create_logs(job: &Job) -> Result<()> {
    let d = sys::Dir::open(&job.dir).map_err(|e| Error::io("open job directory", e))?;
    for name in [job::STDOUT, job::STDERR] {
        d.open_file(name, sys::How::Append)
            .map_err(|e| Error::io(format!("create {name}"), e))?;
    }
    Ok(())
}

/// full.log too, empty where it does not exist, when the job writes one
/// in its directory (not `--no-full-log`, not `--log PATH`): a job has
/// it from its definition on (`create`), and after a launch that failed,
/// as 0.2.3 made it with the stream logs. A run's supervisor makes it
/// once the job runs.
pub fn create_full_log(job: &Job, meta: &Meta) -> Result<()> {
    if meta.no_full_log || meta.full_log.is_some() {
        return Ok(());
    }
    let d = sys::Dir::open(&job.dir).map_err(|e| Error::io("open job directory", e))?;
    d.open_file(job::FULL, sys::How::Append)
        .map_err(|e| Error::io(format!("create {}", job::FULL), e))?;
    Ok(())
}

/// A started job: its state after the readiness handshake, and the pipe
/// that reports when it becomes terminal.
pub struct Launch {
    pub state: State,
    ready: Option<File>,
}

/// Start the supervisor for a `created` job and wait for it to report.
/// `sink_timeout`: the command-sink time limit from the caller's config.
/// `meta`: the job's definition when the caller holds it (`run`), so
/// that a job without state.json yet is not read twice for it.
/// `lock`: the job lock `define` took for `run`; None (`start`): it is
/// claimed here, and a job whose lock file exists already was launched
/// (or is being): `invalid_state`.
/// `ready_by`: the latest moment to stop waiting for the supervisor's
/// first word (the caller's own deadline): a supervisor that is slow to
/// start never holds the answer past it; the job then reads `created`
/// (launching) until it reports, or `launch_lost` if it dies first.
pub fn launch(
    store: &Store,
    job: &Job,
    meta: Option<&Meta>,
    lock: Option<File>,
    gc_and_sinks: (Option<&AutoGc>, Option<u64>),
    ready_by: Option<Instant>,
) -> Result<Launch> {
    let (auto_gc, sink_timeout) = gc_and_sinks;
    // `run`: the job was defined by this caller under the lock it hands
    // in, which nobody else could take since (every writer of state.json
    // holds it), and a `created` job has no state.json yet (`define_in`):
    // its state is known without reading it. What `read_state_given`
    // would return.
    let defined_here = match (meta, &lock) {
        (Some(m), Some(_)) => {
            let mut st = State::created(&job.id);
            st.updated_at = m.created_at.clone();
            Some(st)
        }
        _ => None,
    };
    let read_state = || match meta {
        Some(m) => job.read_state_given(m),
        None => job.read_state(),
    };
    let busy = |st: &State| {
        Error::InvalidState(format!(
            "invalid job state: job {} is in '{}' state; only 'created' jobs can be started",
            job.id,
            st.status().as_str()
        ))
    };
    let lock = match lock {
        Some(l) => l,
        None => {
            let st = observe::current_state(job)?;
            if st.status() != Status::Created {
                return Err(busy(&st));
            }
            match job.claim_lock() {
                // Room for the job's record, as `run` keeps it
                // (`reserve_record_room`): without it a full disk left
                // the supervisor unable to record even `no_space`, and
                // the job read `launch_lost` after an answer that called
                // the start retryable. Without the room, the lock file
                // goes again (unlinked while held: no start can be
                // holding it) and the job stays `created`, so a retry
                // once space is freed starts it.
                Ok(l) => match reserve_record_room(&l) {
                    Ok(()) => l,
                    Err(e) => {
                        let _ = fs::remove_file(job.path(job::LOCK));
                        return Err(e);
                    }
                },
                Err(Some(e)) => return Err(e),
                Err(None) => {
                    // Launched meanwhile, or being launched right now.
                    let st = observe::current_state(job)?;
                    if st.status() != Status::Created {
                        return Err(busy(&st));
                    }
                    // The winner is mid-launch: contention, and a
                    // retry a moment later gets a settled answer.
                    return Err(Error::Busy(format!(
                        "invalid job state: job {} is already being started",
                        job.id
                    )));
                }
            }
        }
    };
    let ours = defined_here.is_some();
    // Re-check under the lock: a concurrent start may have won and gone.
    let st = match defined_here {
        Some(st) => st,
        None => read_state()?,
    };
    if st.status() != Status::Created {
        return Err(busy(&st));
    }
    crate::debug!("launch {}: starting its supervisor", job.id);
    // A job `run` defined and could not start, with not even its failure
    // on record, is taken away again: its error answer is all there is
    // (as for one that could not be defined). Left, it read `failed`
    // with no failure and later `launch_lost`. A job `start` found stays.
    let undo = |lock: File, e: Error| {
        if ours {
            discard(job, Some(lock));
        }
        e
    };
    let (r, w) = match sys::pipe() {
        Ok(p) => p,
        Err(e) => return Err(undo(lock, Error::io("pipe", e))),
    };
    let spawned = spawn_supervisor(store, job, &w, &lock, auto_gc, sink_timeout);
    drop(w);
    if let Err(e) = spawned {
        // Out of descriptors, the record below needs the pipe's.
        drop(r);
        let mut st = st;
        st.fail(
            "spawn_failed",
            format!("could not start the supervisor: {e}"),
        );
        // Its `job.finished` is owed like any launch failure's, with no
        // supervisor to send it: a detached deliverer is started below,
        // and should that fail too (out of descriptors or processes, as
        // the supervisor was), a later reader finds it owed and sends it.
        st.finished_owed = crate::notify::has_finished_sinks(job);
        // Every path the answer prints exists when it is printed (D41):
        // the supervisor would have made the logs.
        let _ = create_logs(job);
        if job.write_state(&st, true).is_err() {
            // A full disk: give back the lock file's room and try again.
            let _ = lock.set_len(0);
            if let Err(e) = job.write_state(&st, true) {
                return Err(undo(lock, e));
            }
        }
        drop(lock);
        // Out of processes or descriptors the deliverer may not start
        // either (as the supervisor did not): then sent from here, now,
        // rather than by some later reader an agent told `failed` has no
        // reason to run.
        if st.finished_owed && !crate::notify::deliver_lost(job, st.attempt()) {
            crate::notify::send_owed_now(job, &st, sink_timeout.unwrap_or(0));
        }
        return Ok(Launch {
            state: st,
            ready: None,
        });
    }
    // The supervisor holds the lock now (the same open file description).
    drop(lock);
    let mut ready = File::from(r);
    let cap = Instant::now() + READY_TIMEOUT;
    let by = ready_by.map_or(cap, |d| (d + READY_MARGIN).min(cap));
    // From here the job is launched: whatever goes wrong names it, even
    // once its directory has gone (run_spec names none only for a launch
    // whose job was taken away again, before this).
    let first = read_byte(&mut ready, Some(by)).map_err(|e| e.in_job(&job.id))?;
    crate::debug!(
        "launch {}: supervisor said {}",
        job.id,
        first.map_or_else(|| "nothing".to_string(), |b| format!("'{}'", char::from(b)))
    );
    let mut state = match first {
        // Its last word: the record is final, or it could not be written.
        Some(b'T' | b'F') => observe::after_last_word(job),
        Some(_) => job.read_state(),
        // EOF (gone: launch_lost) or the deadline (still starting).
        None => observe::current_state(job),
    }
    .map_err(|e| e.in_job(&job.id))?;
    crate::queue::annotate(job, &mut state);
    // Still starting at the deadline (a supervisor slow to say it runs):
    // the answer prints the log paths, which exist when printed (D41),
    // before the supervisor has made them. Made here as it makes them
    // (empty, kept if there): nothing else to do on a path this rare.
    if first.is_none() && state.status() == Status::Created {
        let _ = create_logs(job);
    }
    let alive = first.is_some() || state.status() == Status::Created;
    Ok(Launch {
        state,
        ready: alive.then_some(ready),
    })
}

/// How long a supervisor may take to say it is running.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How far past the caller's deadline the handshake may run: a healthy
/// supervisor reports within milliseconds, so even `--until 0` gets a
/// running job, while a stuck one holds the answer no longer than this.
const READY_MARGIN: Duration = Duration::from_millis(500);

fn spawn_supervisor(
    store: &Store,
    job: &Job,
    w: &OwnedFd,
    lock: &File,
    auto_gc: Option<&AutoGc>,
    sink_timeout: Option<u64>,
) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let exe = sys::self_exe()?;
    let bad = |_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in argument");
    let mut argv = vec![
        CString::new("agent-exec").map_err(bad)?,
        CString::new("_supervise").map_err(bad)?,
        CString::new(store.root.as_os_str().as_bytes()).map_err(bad)?,
        CString::new(job.id.as_str()).map_err(bad)?,
    ];
    if let Some(g) = auto_gc {
        argv.push(CString::new("--gc").map_err(bad)?);
        argv.push(CString::new(g.to_arg()).map_err(bad)?);
    }
    if let Some(ms) = sink_timeout {
        argv.push(CString::new("--sink-timeout").map_err(bad)?);
        argv.push(CString::new(format!("{ms}ms")).map_err(bad)?);
    }
    // The caller's umask for the workload, where ours differs from it
    // (`sys::own_umask`): the supervisor inherits ours.
    if let Some(mask) = sys::callers_umask() {
        argv.push(CString::new("--umask").map_err(bad)?);
        argv.push(CString::new(format!("{mask:o}")).map_err(bad)?);
    }
    let keep = [(w.as_raw_fd(), READY_FD), (lock.as_raw_fd(), LOCK_FD)];
    if LONG_LIVED.load(std::sync::atomic::Ordering::Relaxed) {
        sys::spawn_detached(&exe, &argv, &keep)
    } else {
        sys::spawn_orphan(&exe, &argv, &keep).map(|_| ())
    }
}

/// Set by a caller that lives long (the server): it must not be left
/// with supervisors to reap, so it starts them through a double fork.
/// Short-lived callers (the CLI) start them with one posix_spawn; init
/// adopts and reaps them once the caller has exited.
static LONG_LIVED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Mark this process long-lived (`LONG_LIVED`), and hold its own program
/// file open (`sys::hold_own_exe`): a server outlives upgrades and `cargo
/// clean`s of the file it was started from, and the supervisors it starts
/// must be the program it is. As PID 1 it reaps the supervisors it leaves
/// (`sys::reap_orphans_if_init`).
pub fn set_long_lived() {
    LONG_LIVED.store(true, std::sync::atomic::Ordering::Relaxed);
    sys::hold_own_exe();
    sys::reap_orphans_if_init();
}

/// The descriptor numbers the supervisor finds its pipe and lock at.
pub const READY_FD: i32 = 3;
pub const LOCK_FD: i32 = 4;

/// One byte from the readiness pipe, or None at EOF or the deadline (or
/// a stop signal, inside `observe::until_stopped`).
fn read_byte(f: &mut File, deadline: Option<Instant>) -> Result<Option<u8>> {
    loop {
        let Some(left) = observe::left(deadline) else {
            return Ok(None);
        };
        let ms = match deadline {
            None => -1,
            Some(_) => left.as_millis().clamp(1, i32::MAX as u128) as i32,
        };
        let mut fds = [sys::poll_fd(f.as_raw_fd(), sys::POLLIN)];
        if sys::poll(&mut fds, ms).map_err(|e| Error::io("poll", e))? == 0 {
            continue;
        }
        let mut b = [0u8; 1];
        return match f.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(b[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(Error::io("read readiness pipe", e)),
        };
    }
}

impl Launch {
    /// Wait until the job is terminal or `deadline` passes (None: no
    /// deadline). Wakes on the supervisor's `T` byte, not on a tick.
    pub fn wait(&mut self, job: &Job, deadline: Option<Instant>) -> Result<State> {
        if self.state.status().is_terminal() {
            return Ok(self.state.clone());
        }
        let Some(ready) = self.ready.as_mut() else {
            return observe::wait_terminal(job, deadline);
        };
        let last_word = loop {
            match read_byte(ready, deadline)? {
                Some(b'T') => break true,
                // The end of the pipe before the deadline: the supervisor
                // is gone, whatever it managed to write.
                None => break observe::left(deadline).is_some(),
                Some(_) => continue,
            }
        };
        crate::debug!("wait {}: the supervisor's word is in", job.id);
        let now = observe::current_state(job)?;
        // `T` (or the pipe's end) with no terminal record of this run:
        // the supervisor could not write one (out of descriptors or room),
        // or died. Once it has let go of the lock, the record a reader
        // makes for a lost one.
        let now = if last_word
            && !now.status().is_terminal()
            && !crate::runs::restarted_since(&self.state, &now)
        {
            observe::after_last_word(job)?
        } else {
            now
        };
        // Restarted by someone else right after it ended: this caller's
        // answer is the run it launched (`runs::answer_for`).
        self.state = crate::runs::answer_for(job, &self.state, now);
        Ok(self.state.clone())
    }
}
