//! Defining a job on disk and starting its supervisor. Used by `run`,
//! `create`, `start` and the HTTP server's `POST /exec`.
//!
//! The front-end writes the job directory (meta.json, env.json,
//! stdin.bin; state.json = created only for `create`), then takes the job
//! lock and starts
//! the supervisor with fork → setsid → fork → exec of this same binary as
//! `agent-exec _supervise <root> <id>`. Two descriptors cross the exec:
//! fd 3, the write end of a readiness pipe, and fd 4, the job lock. The
//! lock therefore passes from the front-end to the supervisor without a
//! moment where it is free, which is what makes a concurrent `start` of
//! the same job lose cleanly.
//!
//! Readiness protocol on the pipe, one byte each: `R` (running, state.json
//! written), `F` (launch failed, state.json says why), `T` (terminal state
//! on disk). EOF without `T` means the supervisor is gone.
//!
//! Invariants
//! - No secret in any argv: `--env` values live in env.json (0600).
//! - The intermediate child is reaped before `launch` returns.
//! - A launch failure is a `failed` job with `failure.code`, not an error
//!   envelope: the command worked, the job did not.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cli::Matches;
use crate::config::Config;
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
    /// Launch-time, not stored: the command-sink time limit from the
    /// caller's config (None: the supervisor reads the default config).
    pub sink_timeout_secs: Option<u64>,
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
            sink_timeout_secs: None,
        }
    }

    /// The definition-time flags shared by `run` and `create`.
    pub fn from_matches(m: &Matches, cfg: &Config) -> Result<Spec> {
        let mut spec = Spec::new(m.rest.clone());
        spec.cwd = m.get("cwd").map(str::to_string);
        spec.env = m.all("env").into_iter().map(str::to_string).collect();
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
        spec.timeout_ms = secs_to_ms(m.u64("timeout"));
        spec.kill_after_ms = secs_to_ms(m.u64("kill-after"));
        spec.progress_every_ms = secs_to_ms(m.u64("progress-every"));
        spec.shell_wrapper = resolve_wrapper(m.get("shell-wrapper"), cfg)?;
        spec.sink_timeout_secs = Some(cfg.notify.sink_timeout_secs);
        spec.notification = crate::notify::notification_from(m, None)?;
        spec.full_log = m.get("log").map(|p| {
            store::absolutize(Path::new(p))
                .to_string_lossy()
                .into_owned()
        });
        Ok(spec)
    }
}

pub const DEFAULT_STDIN_MAX: u64 = 64 * 1024 * 1024;

fn secs_to_ms(s: Option<u64>) -> u64 {
    s.unwrap_or(0).saturating_mul(1000)
}

pub fn default_wrapper() -> Vec<String> {
    vec!["sh".to_string(), "-lc".to_string()]
}

/// Flag checks that need no file: done before the config is read, so a
/// malformed flag is a usage error whatever the config says.
pub fn check_flags(m: &Matches) -> Result<()> {
    if m.get("shell-wrapper").is_some_and(|w| w.trim().is_empty()) {
        return Err(Error::usage("--shell-wrapper must not be empty"));
    }
    Ok(())
}

/// `--shell-wrapper "prog flags"` > config `[shell] unix` > `sh -lc`.
pub fn resolve_wrapper(flag: Option<&str>, cfg: &Config) -> Result<Vec<String>> {
    if let Some(w) = flag {
        let parts: Vec<String> = w.split_whitespace().map(str::to_string).collect();
        if parts.is_empty() {
            return Err(Error::usage("--shell-wrapper must not be empty"));
        }
        return Ok(parts);
    }
    Ok(cfg.shell_unix.clone().unwrap_or_else(default_wrapper))
}

/// The process cwd, or the canonical `--cwd` (absolute if it cannot be
/// canonicalised, e.g. because it does not exist: the supervisor then
/// records `cwd_not_found`).
fn effective_cwd(cwd: Option<&str>) -> String {
    let base = match cwd {
        Some(c) => PathBuf::from(c),
        None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
    };
    fs::canonicalize(&base)
        .unwrap_or_else(|_| store::absolutize(&base))
        .to_string_lossy()
        .into_owned()
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

fn private_file(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Copy at most `limit` bytes; more is `stdin_too_large`.
fn copy_limited(src: &mut dyn Read, dst: &mut File, limit: u64) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
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

/// Write a new job directory for `spec`. The state is `created`, or
/// `failed` when its stdin source cannot be read.
/// `keep_created`: write state.json even while the job is only `created`
/// (`create`). `run` goes straight to `running`, as in 0.2.3: its
/// supervisor writes the first state, and until then the job reads as
/// `created` (`Job::read_state`). One file fewer on the launch path, where
/// each new file costs a scan of recently freed inodes on ext4 without a
/// journal and the replaced one a release: 14% of a launch measured.
pub fn define(store: &Store, spec: &Spec, keep_created: bool) -> Result<(Job, Meta, State)> {
    if matches!(spec.stdin, StdinSrc::Caller) && sys::isatty(0) {
        return Err(Error::StdinRequired);
    }
    let job = store.create_job()?;
    match define_in(store, &job, spec, keep_created) {
        Ok((meta, st)) => Ok((job, meta, st)),
        Err(e) => {
            // No debris: a job that could not be defined does not exist.
            let _ = fs::remove_dir_all(&job.dir);
            Err(e)
        }
    }
}

fn define_in(store: &Store, job: &Job, spec: &Spec, keep_created: bool) -> Result<(Meta, State)> {
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
        mask: spec.mask.clone(),
        cwd: Some(effective_cwd(spec.cwd.as_deref())),
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
    };
    let mut state = State::created(&job.id);
    if !spec.env.is_empty() {
        let text = serde_json::to_vec(&spec.env).map_err(|e| Error::internal(e.to_string()))?;
        store::write_atomic(&job.dir, job::ENV, &text, false)
            .map_err(|e| Error::io("write env.json", e))?;
    }
    if !matches!(spec.stdin, StdinSrc::None) {
        let path = job.path(job::STDIN);
        let mut dst = private_file(&path).map_err(|e| Error::io("create stdin.bin", e))?;
        match &spec.stdin {
            StdinSrc::Value(v) => {
                copy_limited(&mut v.as_bytes(), &mut dst, spec.stdin_max_bytes)?;
            }
            StdinSrc::Caller => {
                copy_limited(&mut io::stdin().lock(), &mut dst, spec.stdin_max_bytes)?;
            }
            StdinSrc::File(src) => match File::open(src) {
                Ok(mut f) => copy_limited(&mut f, &mut dst, spec.stdin_max_bytes)?,
                Err(e) => state.fail(
                    "stdin_unreadable",
                    format!("open --stdin-file source {src}: {e}"),
                ),
            },
            StdinSrc::None => {}
        }
        meta.stdin_file = Some(job::STDIN.to_string());
    }
    // No empty logs or lock here: the supervisor creates the logs (after
    // telling the caller it runs) and `launch` the lock; a created job
    // reads as having printed nothing. Each new file costs a launch.
    job.write_meta(&meta)?;
    if keep_created || state.status() != Status::Created {
        job.write_state(&state, false)?;
    }
    Ok((meta, state))
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
pub fn launch(
    store: &Store,
    job: &Job,
    meta: Option<&Meta>,
    auto_gc: Option<&AutoGc>,
    sink_timeout: Option<u64>,
) -> Result<Launch> {
    let lock =
        crate::store::open_lock(&job.path(job::LOCK)).map_err(|e| Error::io("open job lock", e))?;
    let read_state = || match meta {
        Some(m) => job.read_state_given(m),
        None => job.read_state(),
    };
    let st = read_state()?;
    let busy = || {
        Error::InvalidState(format!(
            "invalid job state: job {} is in '{}' state; only 'created' jobs can be started",
            job.id,
            st.status().as_str()
        ))
    };
    if st.status() != Status::Created {
        return Err(busy());
    }
    if !sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
        return Err(Error::InvalidState(format!(
            "invalid job state: job {} is already being started",
            job.id
        )));
    }
    // Re-check under the lock: a concurrent start may have won and gone.
    let st = read_state()?;
    if st.status() != Status::Created {
        return Err(busy());
    }
    let (r, w) = sys::pipe().map_err(|e| Error::io("pipe", e))?;
    let spawned = spawn_supervisor(store, job, &w, &lock, auto_gc, sink_timeout);
    drop(w);
    drop(lock);
    if let Err(e) = spawned {
        let mut st = st;
        st.fail(
            "spawn_failed",
            format!("could not start the supervisor: {e}"),
        );
        job.write_state(&st, true)?;
        return Ok(Launch {
            state: st,
            ready: None,
        });
    }
    let mut ready = File::from(r);
    let first = read_byte(&mut ready, Some(Instant::now() + READY_TIMEOUT))?;
    let state = match first {
        Some(_) => job.read_state()?,
        None => supervisor_vanished(job)?,
    };
    Ok(Launch {
        state,
        ready: first.map(|_| ready),
    })
}

/// How long a supervisor may take to say it is running.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

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
    if let Some(secs) = sink_timeout {
        argv.push(CString::new("--sink-timeout").map_err(bad)?);
        argv.push(CString::new(secs.to_string()).map_err(bad)?);
    }
    sys::spawn_detached(
        &exe,
        &argv,
        &[(w.as_raw_fd(), READY_FD), (lock.as_raw_fd(), LOCK_FD)],
    )
}

/// The descriptor numbers the supervisor finds its pipe and lock at.
pub const READY_FD: i32 = 3;
pub const LOCK_FD: i32 = 4;

/// The supervisor closed the pipe without a word: record that it is lost
/// (unless it managed to write a state first).
fn supervisor_vanished(job: &Job) -> Result<State> {
    let st = observe::current_state(job)?;
    if st.status() != Status::Created {
        return Ok(st);
    }
    let lock = File::open(job.path(job::LOCK)).map_err(|e| Error::io("open job lock", e))?;
    if sys::try_lock_exclusive(&lock).map_err(|e| Error::io("lock job", e))? {
        let mut st = job.read_state()?;
        if st.status() == Status::Created {
            st.fail(
                "supervisor_lost",
                "the supervisor exited before starting the job",
            );
            job.write_state(&st, true)?;
        }
        return Ok(st);
    }
    job.read_state()
}

/// One byte from the readiness pipe, or None at EOF or the deadline.
fn read_byte(f: &mut File, deadline: Option<Instant>) -> Result<Option<u8>> {
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let now = Instant::now();
                if d <= now {
                    return Ok(None);
                }
                (d - now).as_millis().clamp(1, i32::MAX as u128) as i32
            }
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
    /// A job that ended before it started (e.g. unreadable stdin).
    pub fn finished(state: State) -> Launch {
        Launch { state, ready: None }
    }

    /// Wait until the job is terminal or `deadline` passes (None: no
    /// deadline). Wakes on the supervisor's `T` byte, not on a tick.
    pub fn wait(&mut self, job: &Job, deadline: Option<Instant>) -> Result<State> {
        if self.state.status().is_terminal() {
            return Ok(self.state.clone());
        }
        let Some(ready) = self.ready.as_mut() else {
            return observe::wait_terminal(job, deadline);
        };
        loop {
            match read_byte(ready, deadline)? {
                Some(b'T') | None => break,
                Some(_) => continue,
            }
        }
        self.state = observe::current_state(job)?;
        Ok(self.state.clone())
    }
}
