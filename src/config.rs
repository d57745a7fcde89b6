//! Finding, reading and validating agent-exec's `config.toml`.
//!
//! Owns where the config file lives, which file wins, and turning its TOML
//! into a typed `Config` with every value checked. Syntax is `crate::toml`'s
//! business; durations are `crate::time::parse_duration`'s.
//!
//! Precedence: an explicit path (`--config`), which must exist (else
//! `invalid_config`: an agent must learn that its settings were not
//! used); else `$XDG_CONFIG_HOME/agent-exec/config.toml` when
//! `XDG_CONFIG_HOME` is set, non-empty and absolute (the XDG spec says
//! relative values are to be ignored); else
//! `$HOME/.config/agent-exec/config.toml` when `HOME` is set and
//! non-empty; else built-in defaults. A missing default file is not an
//! error. A file that is not regular, exists but cannot be read, is not
//! UTF-8, is over 1 MiB, is not valid TOML or holds a value of the wrong
//! type is an `InvalidConfig`/`Io` error naming the file, the line and the
//! key: guessing at what a broken config meant is worse than refusing it.
//!
//! Keys read (everything else, known to other versions or not, is ignored
//! so that one config file can serve several agent-exec versions):
//! - `shell.unix`: non-empty array of non-empty strings without NUL (they
//!   become an argv prefix, and NUL cannot cross `exec`).
//! - `gc.auto` (bool), `gc.older_than` (duration string), `gc.max_jobs`,
//!   `gc.max_bytes`, `gc.scan_limit`, `gc.delete_limit` (integers >= 0).
//!   A `gc.older_than` string that is not a duration is the one bad value
//!   not refused: it only disables auto-GC, with a warning
//!   (`GcConfig::older_than_invalid`), since auto-GC never fails a launch.
//! - `notify.sink_timeout` (duration string).
//! - `restart.keep_runs` (integer >= 0, default 5): how many earlier runs
//!   of a job `restart` and `run --retry` keep.
//! - `queue.<NAME>.parallel` (integer 1..=1024): the slot count of queue
//!   NAME when `run --queue NAME` gives no `--parallel`.
//! - `log.max_bytes` (integer >= 0; 0 = no cap) and `log.full` (bool):
//!   the defaults of `--max-log-bytes` and `--no-full-log`.
//!
//! A config named with `--config` (`run`, `create`) is read once, when
//! the job is defined: what it says about `[restart] keep_runs`, `[gc]`
//! and `[notify] sink_timeout` is kept in the job's meta.json, so that
//! the job's later launches (`start`, `restart`, which take no
//! `--config`) go by the same file even once it has been edited or
//! removed. A job defined without `--config` reads the default config
//! at each launch (`launch::relaunch_settings`).
//!
//! Durations must be TOML strings (`"30d"`), exactly as on the command line;
//! a bare integer is rejected rather than guessed to be seconds. Zero is
//! accepted everywhere; what zero means is up to the caller.
//!
//! Rejected alternatives: layering several files (system, user, project)
//! and environment overrides per key: more places to look when debugging a
//! job, for no need we have today.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::time::parse_duration_ms;
use crate::toml::{self, Entry, Table};

/// `gc.older_than` when the file does not say: 30 days.
pub const DEFAULT_OLDER_THAN_SECS: u64 = 30 * 86_400;
pub const DEFAULT_SCAN_LIMIT: u64 = 200;
pub const DEFAULT_DELETE_LIMIT: u64 = 20;
pub const DEFAULT_SINK_TIMEOUT_MS: u64 = 30_000;

/// A sink time limit that a caller waiting on the sink must have: `[notify]
/// sink_timeout = "0"` (no limit) is the default one there.
pub fn bounded_sink_ms(ms: u64) -> u64 {
    match ms {
        0 => DEFAULT_SINK_TIMEOUT_MS,
        ms => ms,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file actually read, if any.
    pub path: Option<PathBuf>,
    /// `[shell] unix`: argv prefix for running a command string.
    pub shell_unix: Option<Vec<String>>,
    pub gc: GcConfig,
    pub notify: NotifyConfig,
    /// `[restart] keep_runs`: earlier runs of a job kept (see `runs`).
    pub keep_runs: u64,
    /// `[queue.NAME] parallel = N`, in file order.
    pub queues: Vec<(String, u32)>,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            path: None,
            shell_unix: None,
            gc: GcConfig::default(),
            notify: NotifyConfig::default(),
            keep_runs: crate::runs::DEFAULT_KEEP,
            queues: Vec::new(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// The configured slot count of queue `name`, if any.
    pub fn queue_parallel(&self, name: &str) -> Option<u32> {
        self.queues.iter().find(|(n, _)| n == name).map(|&(_, p)| p)
    }
}

/// `[log]`: how a job's logs are kept (see `logcap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `log.max_bytes`: the default `--max-log-bytes` (0: no cap).
    pub max_bytes: Option<u64>,
    /// `log.full`: write full.log (default true).
    pub full: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_bytes: None,
            full: true,
        }
    }
}

/// `[gc]`. Also kept in meta.json (`Meta::gc`) when named with
/// `--config`, in this shape: a key missing there (a record written
/// before the key existed) reads as its default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GcConfig {
    pub auto: bool,
    /// `gc.older_than` as written, trimmed and validated, if given. Not
    /// kept with a job: `older_than_secs` says the same.
    #[serde(skip)]
    pub older_than: Option<String>,
    /// `older_than` in seconds, or the 30-day default.
    pub older_than_secs: u64,
    /// Why `gc.older_than` was not understood, file and line included:
    /// auto-GC is then skipped with this as its warning, unless
    /// `--auto-gc-older-than` says what the file failed to. Kept with a
    /// job, so that its later launches skip and warn alike.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_than_invalid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_jobs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    pub scan_limit: u64,
    pub delete_limit: u64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            auto: true,
            older_than: None,
            older_than_secs: DEFAULT_OLDER_THAN_SECS,
            older_than_invalid: None,
            max_jobs: None,
            max_bytes: None,
            scan_limit: DEFAULT_SCAN_LIMIT,
            delete_limit: DEFAULT_DELETE_LIMIT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// `notify.sink_timeout` in milliseconds (0: no limit). Kept in
    /// milliseconds end to end: "500ms" must not become 0, no limit.
    pub sink_timeout_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            sink_timeout_ms: DEFAULT_SINK_TIMEOUT_MS,
        }
    }
}

/// Where the config file is looked for when no path is given.
pub fn default_path() -> Option<PathBuf> {
    // HOME unset or empty: the user database's home, as for the root.
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| crate::store::passwd_home().map(PathBuf::into_os_string));
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME").as_deref(),
        home.as_deref(),
    )
}

/// `default_path` with the environment passed in, so tests need not touch
/// the process environment (shared by all test threads).
fn default_path_from(xdg: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    if let Some(xdg) = xdg.map(Path::new) {
        if xdg.is_absolute() {
            return Some(xdg.join("agent-exec").join("config.toml"));
        }
    }
    let home = home.filter(|h| !h.is_empty())?;
    Some(
        Path::new(home)
            .join(".config")
            .join("agent-exec")
            .join("config.toml"),
    )
}

/// `[shell] unix` of the default config file, for a `--config` file that
/// has none (the wrapper's precedence: flag, `--config`, default file,
/// built-in). Quiet and lenient: that file is not the one asked for, so
/// a default file that is missing, unreadable or broken, or whose key is
/// not a valid wrapper, is no wrapper (the built-in `sh -lc` then), and
/// none of its other keys is judged or warned about.
pub fn default_shell_unix() -> Option<Vec<String>> {
    let path = default_path()?;
    let src = read_if_exists(&path, true).ok()??;
    let root = toml::parse(src.strip_prefix('\u{feff}').unwrap_or(&src)).ok()?;
    let origin = path.as_path();
    let v = Validator {
        origin,
        root: &root,
    };
    let e = v.key("shell", "unix")?;
    v.argv(e, "shell.unix").ok()
}

/// Loads the config: `explicit` if given and present, else the default
/// path, else built-in defaults. See the module header for the rules.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    load_from(explicit, default_path().as_deref())
}

fn load_from(explicit: Option<&Path>, default: Option<&Path>) -> Result<Config> {
    if let Some(path) = explicit {
        // As every other empty path flag (`--log ''`): a usage mistake,
        // not a file that could not be found.
        if path.as_os_str().is_empty() {
            return Err(Error::usage("--config must not be empty"));
        }
        // Asked for by name: a missing file is an error, never a silent
        // fall back to defaults the caller did not choose.
        return match read_if_exists(path, false)? {
            Some(src) => parse_str(&src, path),
            None => Err(Error::InvalidConfig(format!(
                "config file {} not found",
                path.display()
            ))),
        };
    }
    match default {
        Some(d) => match read_if_exists(d, true)? {
            Some(src) => parse_str(&src, d),
            None => Ok(Config::default()),
        },
        None => Ok(Config::default()),
    }
}

/// The null device, under whatever name: a character device with its
/// device number.
fn is_null_device(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device()
        && std::fs::metadata("/dev/null").is_ok_and(|n| n.rdev() == m.rdev())
}

/// The file's text, `None` if it does not exist. Reads at most one byte
/// over the parser's limit, so pointing the config at a huge file or a
/// device cannot exhaust memory. For the `default` path, a path that
/// cannot lead to a file (a file where a directory on the way should be,
/// a name too long) is no file too: nobody named it, and 0.2.3 read
/// defaults there (it asked whether the file exists).
fn read_if_exists(path: &Path, default: bool) -> Result<Option<String>> {
    let context = || format!("read config file {}", path.display());
    // O_NONBLOCK: a FIFO named as the config cannot block the open; only
    // a regular file is read.
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e)
            if default
                && matches!(
                    e.raw_os_error(),
                    Some(libc::ENOTDIR | libc::ENAMETOOLONG | libc::ELOOP)
                ) =>
        {
            return Ok(None)
        }
        // A directory on the way that we may not search (HOME=/root for
        // an unprivileged user after `su`): 0.2.3 asked `exists()`, which
        // is false when the file cannot be looked at. A file that is
        // there but unreadable still fails below, as it did.
        Err(e)
            if default
                && e.kind() == io::ErrorKind::PermissionDenied
                && std::fs::metadata(path).is_err() =>
        {
            return Ok(None)
        }
        // Out of descriptors: this process's failure, not the config's
        // (`io_error`, retryable, as any read would be; it was
        // `invalid_config` about a file that did not even exist).
        Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
            return Err(Error::io(context(), e))
        }
        // Whatever keeps the file from being opened (`ok.toml/`, a
        // symlink loop, a socket, a file where the agent-exec directory
        // should be) is a config that cannot be used: `invalid_config`,
        // not `unsafe_path` (about job directories) or `io_error`.
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(libc::ENOTDIR) => "a component of the path is not a directory".to_owned(),
                Some(libc::ELOOP) => "too many levels of symbolic links".to_owned(),
                Some(libc::ENXIO | libc::EOPNOTSUPP) => "not a regular file".to_owned(),
                _ => os_message(&e),
            };
            return Err(Error::InvalidConfig(format!(
                "{}: config file cannot be opened: {why}",
                path.display()
            )));
        }
    };
    let meta = file.metadata().ok();
    // `--config /dev/null`: no settings at all, the defaults, as `ssh -F
    // /dev/null` means. Only that device: another one could be a
    // terminal or an endless stream.
    if meta.as_ref().is_some_and(is_null_device) {
        return Ok(Some(String::new()));
    }
    if !meta.is_some_and(|m| m.is_file()) {
        return Err(Error::InvalidConfig(format!(
            "{}: config file is not a regular file",
            path.display()
        )));
    }
    let limit = toml::MAX_INPUT_BYTES;
    let mut bytes = Vec::new();
    file.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(context(), e))?;
    if bytes.len() > limit {
        return Err(Error::InvalidConfig(format!(
            "{}: config file is larger than {limit} bytes",
            path.display()
        )));
    }
    match String::from_utf8(bytes) {
        Ok(text) => Ok(Some(text)),
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            Err(Error::InvalidConfig(format!(
                "{}:{line}: config file is not valid UTF-8",
                path.display()
            )))
        }
    }
}

/// An OS error's text without Rust's " (os error N)" suffix.
fn os_message(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Parses and validates config text; `origin` is used in error messages
/// and recorded as `Config::path`.
pub fn parse_str(src: &str, origin: &Path) -> Result<Config> {
    // Editors on some platforms prepend a byte-order mark; it is not
    // content, and refusing the file over it would only confuse.
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let root = toml::parse(src).map_err(|e| {
        Error::InvalidConfig(format!("{}:{}: {}", origin.display(), e.line, e.message))
    })?;
    let v = Validator {
        origin,
        root: &root,
    };
    let mut cfg = Config {
        path: Some(origin.to_path_buf()),
        ..Config::default()
    };
    v.section("shell")?;
    v.section("gc")?;
    v.section("notify")?;
    v.section("restart")?;
    v.section("log")?;

    if let Some(e) = v.key("shell", "unix") {
        cfg.shell_unix = Some(v.argv(e, "shell.unix")?);
    }
    // Not used here, but typed as in 0.2.3: an array of strings (empty
    // allowed, as it is off Windows), never silently anything else.
    if let Some(e) = v.key("shell", "windows") {
        let strings = e
            .value
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i.as_str().is_some()));
        if !strings {
            let msg = match e.value.as_array() {
                Some(a) => {
                    let (i, item) = a
                        .iter()
                        .enumerate()
                        .find(|(_, i)| i.as_str().is_none())
                        .unwrap_or((0, &e.value));
                    format!(
                        "element {} is {}, expected a string",
                        i + 1,
                        item.type_name()
                    )
                }
                None => format!(
                    "expected an array of strings such as [\"cmd\", \"/C\"], found {}",
                    e.value.type_name()
                ),
            };
            return Err(v.fail(e, "shell.windows", msg));
        }
    }

    let gc = &mut cfg.gc;
    if let Some(e) = v.key("gc", "auto") {
        gc.auto = v.boolean(e, "gc.auto")?;
    }
    if let Some(e) = v.key("gc", "older_than") {
        match v.duration(e, "gc.older_than") {
            Ok((raw, secs)) => {
                gc.older_than = Some(raw);
                gc.older_than_secs = secs;
            }
            // Only auto-GC reads it, and auto-GC never fails its caller: a
            // string that is no duration skips auto-GC with a warning (as
            // 0.2.3 did) rather than refusing the job. A value of the
            // wrong type is refused, as every other broken key is.
            Err(err) if e.value.as_str().is_some() => {
                gc.older_than_invalid = Some(err.to_string());
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(e) = v.key("gc", "max_jobs") {
        gc.max_jobs = Some(v.count(e, "gc.max_jobs")?);
    }
    if let Some(e) = v.key("gc", "max_bytes") {
        gc.max_bytes = Some(v.count(e, "gc.max_bytes")?);
    }
    if let Some(e) = v.key("gc", "scan_limit") {
        gc.scan_limit = v.count(e, "gc.scan_limit")?;
    }
    if let Some(e) = v.key("gc", "delete_limit") {
        gc.delete_limit = v.count(e, "gc.delete_limit")?;
    }

    if let Some(e) = v.key("notify", "sink_timeout") {
        cfg.notify.sink_timeout_ms = v.duration_ms(e, "notify.sink_timeout")?;
    }
    if let Some(e) = v.key("log", "max_bytes") {
        cfg.log.max_bytes = Some(v.count(e, "log.max_bytes")?);
    }
    if let Some(e) = v.key("log", "full") {
        cfg.log.full = v.boolean(e, "log.full")?;
    }
    if let Some(e) = v.key("restart", "keep_runs") {
        cfg.keep_runs = v.count(e, "restart.keep_runs")?;
    }

    v.section("queue")?;
    v.warn_unknown();
    if let Some(queues) = root.get("queue").and_then(|q| q.as_table()) {
        for q in queues.entries() {
            let key = format!("queue.{}", q.key);
            let Some(t) = q.value.as_table() else {
                return Err(v.fail(
                    q,
                    &key,
                    format_args!("expected a table, found {}", q.value.type_name()),
                ));
            };
            // A table no queue can use (`[queue."a b"]`): ignored with a
            // word on stderr, as a key nothing reads is, not a failure of
            // every command that reads the file (most use no queue).
            if crate::queue::check_name(&q.key).is_err() {
                // Quoted: `queue..x` and `queue.` would not say which.
                crate::warn!(
                    "{}:{}: queue.{:?}: no queue can have this name (1-64 letters, digits, '.', '_' or '-', not starting with '.'), ignored",
                    v.origin.display(),
                    q.line,
                    q.key
                );
                continue;
            }
            if let Some(e) = t.entry("parallel") {
                let key = format!("{key}.parallel");
                let n = v.count(e, &key)?;
                let n = crate::queue::check_parallel(n).map_err(|_| {
                    v.fail(
                        e,
                        &key,
                        format_args!("expected 1 to {}, found {n}", crate::queue::MAX_PARALLEL),
                    )
                })?;
                cfg.queues.push((q.key.clone(), n));
            }
        }
    }
    Ok(cfg)
}

/// Typed reads of entries, each failing with file, line and key.
struct Validator<'a> {
    origin: &'a Path,
    root: &'a Table,
}

/// The keys of each section we read. Any other key there is ignored, as
/// 0.2.3 ignored unknown keys (a file written for a newer version still
/// loads), but said on stderr: a misspelt `max_job` or a queue table
/// nested by a dotted name (`[queue.a.b]` is queue `a`'s key `b`) did
/// nothing without a word.
const KNOWN: [(&str, &[&str]); 5] = [
    ("shell", &["unix", "windows"]),
    (
        "gc",
        &[
            "auto",
            "older_than",
            "max_jobs",
            "max_bytes",
            "scan_limit",
            "delete_limit",
        ],
    ),
    ("notify", &["sink_timeout"]),
    ("restart", &["keep_runs"]),
    ("log", &["max_bytes", "full"]),
];

impl Validator<'_> {
    /// Warn of each key of a known section (and of a queue's table) that
    /// is read by nothing, naming its line.
    fn warn_unknown(&self) {
        let warn = |e: &Entry, key: &str| {
            crate::warn!(
                "{}:{}: {key}: unknown key, ignored",
                self.origin.display(),
                e.line
            );
        };
        for (section, keys) in KNOWN {
            let Some(t) = self.root.get(section).and_then(|v| v.as_table()) else {
                continue;
            };
            for e in t
                .entries()
                .iter()
                .filter(|e| !keys.contains(&e.key.as_str()))
            {
                warn(e, &format!("{section}.{}", e.key));
            }
        }
        let Some(queues) = self.root.get("queue").and_then(|v| v.as_table()) else {
            return;
        };
        for q in queues.entries() {
            // A table no queue can use is named once, as a whole.
            let (Some(t), true) = (q.value.as_table(), crate::queue::check_name(&q.key).is_ok())
            else {
                continue;
            };
            for e in t.entries().iter().filter(|e| e.key != "parallel") {
                warn(e, &format!("queue.{}.{}", q.key, e.key));
            }
        }
    }

    fn fail(&self, e: &Entry, key: &str, message: impl std::fmt::Display) -> Error {
        Error::InvalidConfig(format!(
            "{}:{}: {key}: {message}",
            self.origin.display(),
            e.line
        ))
    }

    /// A known section must be a table when present; `gc = 1` is a mistake,
    /// not an unknown key.
    fn section(&self, name: &str) -> Result<()> {
        match self.root.entry(name) {
            Some(e) if e.value.as_table().is_none() => Err(self.fail(
                e,
                name,
                format_args!("expected a table, found {}", e.value.type_name()),
            )),
            _ => Ok(()),
        }
    }

    fn key(&self, section: &str, key: &str) -> Option<&Entry> {
        self.root.lookup(&[section, key])
    }

    fn boolean(&self, e: &Entry, key: &str) -> Result<bool> {
        e.value.as_bool().ok_or_else(|| {
            self.fail(
                e,
                key,
                format_args!("expected true or false, found {}", e.value.type_name()),
            )
        })
    }

    fn count(&self, e: &Entry, key: &str) -> Result<u64> {
        match e.value.as_int() {
            Some(n) => u64::try_from(n).map_err(|_| {
                self.fail(
                    e,
                    key,
                    format_args!("expected a non-negative integer, found {n}"),
                )
            }),
            None => Err(self.fail(
                e,
                key,
                format_args!(
                    "expected a non-negative integer, found {}",
                    e.value.type_name()
                ),
            )),
        }
    }

    /// A duration string: its text and its value in seconds.
    fn duration(&self, e: &Entry, key: &str) -> Result<(String, u64)> {
        let text = e.value.as_str().unwrap_or_default();
        let ms = self.duration_ms(e, key)?;
        // Stored trimmed, as it was understood, for callers that echo it.
        // Whole seconds, rounded up: a retention of 500ms counted as 0
        // took jobs younger than it.
        Ok((text.trim().to_owned(), ms.div_ceil(1000)))
    }

    /// A duration string's value in milliseconds. A bad one is quoted
    /// shortened, as the parser quotes tokens: a megabyte of it would
    /// otherwise fill the error (and meta.json, for `gc.older_than`).
    fn duration_ms(&self, e: &Entry, key: &str) -> Result<u64> {
        let Some(text) = e.value.as_str() else {
            return Err(self.fail(
                e,
                key,
                format_args!(
                    "expected a duration string such as \"30d\", found {}",
                    e.value.type_name()
                ),
            ));
        };
        parse_duration_ms(text).map_err(|err| {
            let message = err.to_string().replacen(text, &toml::clip(text), 1);
            self.fail(e, key, message)
        })
    }

    fn argv(&self, e: &Entry, key: &str) -> Result<Vec<String>> {
        let Some(items) = e.value.as_array() else {
            return Err(self.fail(
                e,
                key,
                format_args!(
                    "expected an array of strings such as [\"sh\", \"-c\"], found {}",
                    e.value.type_name()
                ),
            ));
        };
        if items.is_empty() {
            return Err(self.fail(
                e,
                key,
                "must not be empty; it names the shell program to run",
            ));
        }
        let mut argv = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let Some(s) = item.as_str() else {
                return Err(self.fail(
                    e,
                    key,
                    format_args!("element {n} is {}, expected a string", item.type_name()),
                ));
            };
            if s.is_empty() {
                return Err(self.fail(e, key, format_args!("element {n} is an empty string")));
            }
            if s.contains('\0') {
                return Err(self.fail(e, key, format_args!("element {n} contains a NUL byte")));
            }
            argv.push(s.to_owned());
        }
        Ok(argv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn origin() -> &'static Path {
        Path::new("/etc/x/config.toml")
    }

    fn parse(src: &str) -> Result<Config> {
        parse_str(src, origin())
    }

    /// Asserts an `InvalidConfig` whose message is exactly `want`.
    fn invalid(src: &str, want: &str) {
        match parse(src) {
            Err(Error::InvalidConfig(msg)) => assert_eq!(msg, want, "for {src:?}"),
            other => panic!("expected InvalidConfig for {src:?}, got {other:?}"),
        }
    }

    /// A fresh, empty directory under the system temp dir.
    fn scratch_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "agent-exec-config-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn restart_keep_runs() {
        assert_eq!(parse("").unwrap().keep_runs, 5);
        assert_eq!(parse("[restart]\nkeep_runs = 2\n").unwrap().keep_runs, 2);
        assert!(parse("[restart]\nkeep_runs = -1\n").is_err());
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.path, None);
        assert_eq!(c.shell_unix, None);
        assert!(c.gc.auto);
        assert_eq!(c.gc.older_than, None);
        assert_eq!(c.gc.older_than_secs, 2_592_000);
        assert_eq!(c.gc.max_jobs, None);
        assert_eq!(c.gc.max_bytes, None);
        assert_eq!(c.gc.scan_limit, 200);
        assert_eq!(c.gc.delete_limit, 20);
        assert_eq!(c.notify.sink_timeout_ms, 30_000);
        // An empty file is all defaults, but records where it came from.
        let parsed = parse("").unwrap();
        assert_eq!(parsed.path.as_deref(), Some(origin()));
        assert_eq!(
            Config {
                path: None,
                ..parsed
            },
            c
        );
    }

    #[test]
    fn full_example() {
        let c = parse(
            r#"
# comment
[shell]
unix    = ["sh", "-lc"]   # argv prefix
windows = ["cmd", "/C"]

[gc]
auto = false
older_than = "7d"
max_jobs = 200
max_bytes = 1_073_741_824
scan_limit = 500
delete_limit = 50

[notify]
sink_timeout = "2m"
"#,
        )
        .unwrap();
        assert_eq!(c.shell_unix, Some(vec!["sh".to_owned(), "-lc".to_owned()]));
        assert!(!c.gc.auto);
        assert_eq!(c.gc.older_than.as_deref(), Some("7d"));
        assert_eq!(c.gc.older_than_secs, 604_800);
        assert_eq!(c.gc.max_jobs, Some(200));
        assert_eq!(c.gc.max_bytes, Some(1_073_741_824));
        assert_eq!(c.gc.scan_limit, 500);
        assert_eq!(c.gc.delete_limit, 50);
        assert_eq!(c.notify.sink_timeout_ms, 120_000);
    }

    #[test]
    fn unknown_keys_and_tables_are_ignored() {
        let c = parse(concat!(
            "future = 1\n",
            "[gc]\nauto = true\nnew_knob = 'x'\n",
            "[server]\nbind = 1979-05-27\n",
        ));
        assert!(c.is_ok());
        // Unknown keys are ignored, but the file must still be valid TOML.
        assert!(parse("[server]\nbind = 1979-02-30\n").is_err());
        let c = parse("future = 1.5\n[gc]\nnew_knob = [1, 'a']\n[[hooks]]\nx = {}\n").unwrap();
        assert_eq!(c.gc, GcConfig::default());
    }

    #[test]
    fn dotted_and_inline_forms_count_too() {
        let c = parse("gc.max_jobs = 5\nnotify = { sink_timeout = \"1h\" }\n").unwrap();
        assert_eq!(c.gc.max_jobs, Some(5));
        assert_eq!(c.notify.sink_timeout_ms, 3_600_000);
    }

    #[test]
    fn wrong_types() {
        let p = "/etc/x/config.toml";
        invalid(
            "[gc]\nauto = \"yes\"\n",
            &format!("{p}:2: gc.auto: expected true or false, found string"),
        );
        invalid(
            "[gc]\n\nmax_jobs = -1\n",
            &format!("{p}:3: gc.max_jobs: expected a non-negative integer, found -1"),
        );
        invalid(
            "[gc]\nmax_bytes = \"1G\"\n",
            &format!("{p}:2: gc.max_bytes: expected a non-negative integer, found string"),
        );
        invalid(
            "[gc]\nscan_limit = 1.5\n",
            &format!("{p}:2: gc.scan_limit: expected a non-negative integer, found float"),
        );
        invalid(
            "[gc]\ndelete_limit = -9223372036854775808\n",
            &format!(
                "{p}:2: gc.delete_limit: expected a non-negative integer, found \
                 -9223372036854775808"
            ),
        );
        invalid(
            "[gc]\nolder_than = 30\n",
            &format!(
                "{p}:2: gc.older_than: expected a duration string such as \"30d\", found integer"
            ),
        );
        invalid(
            "[notify]\nsink_timeout = \"-5s\"\n",
            &format!(
                "{p}:2: notify.sink_timeout: invalid duration: -5s; expected formats: 500ms, \
                 1.5s, 5m, 2h, 1d, 1w (a bare number is seconds)"
            ),
        );
        invalid(
            "[notify]\nsink_timeout = true\n",
            &format!(
                "{p}:2: notify.sink_timeout: expected a duration string such as \"30d\", found \
                 boolean"
            ),
        );
        invalid(
            "gc = 1\n",
            &format!("{p}:1: gc: expected a table, found integer"),
        );
        invalid(
            "x = 1\nshell = [\"sh\"]\n",
            &format!("{p}:2: shell: expected a table, found array"),
        );
    }

    #[test]
    fn shell_validation() {
        let p = "/etc/x/config.toml";
        invalid(
            "[shell]\nunix = []\n",
            &format!("{p}:2: shell.unix: must not be empty; it names the shell program to run"),
        );
        invalid(
            "[shell]\nunix = \"sh -c\"\n",
            &format!(
                "{p}:2: shell.unix: expected an array of strings such as [\"sh\", \"-c\"], found \
                 string"
            ),
        );
        invalid(
            "[shell]\nunix = [\"\", \"-c\"]\n",
            &format!("{p}:2: shell.unix: element 1 is an empty string"),
        );
        invalid(
            "[shell]\nunix = [\"sh\", \"\"]\n",
            &format!("{p}:2: shell.unix: element 2 is an empty string"),
        );
        invalid(
            "[shell]\nunix = [\n  \"sh\",\n  3,\n]\n",
            &format!("{p}:2: shell.unix: element 2 is integer, expected a string"),
        );
        invalid(
            "[shell]\nunix = [\"sh\\u0000\"]\n",
            &format!("{p}:2: shell.unix: element 1 contains a NUL byte"),
        );
        let c = parse("[shell]\nunix = ['/bin/bash', '-c']\nwindows = []\n").unwrap();
        assert_eq!(
            c.shell_unix,
            Some(vec!["/bin/bash".to_owned(), "-c".to_owned()])
        );
        parse("[shell]\nwindows = ['cmd', '/C']\n").unwrap();
        invalid(
            "[shell]\nwindows = 42\n",
            &format!("{p}:2: shell.windows: expected an array of strings such as [\"cmd\", \"/C\"], found integer"),
        );
        invalid(
            "[shell]\nwindows = ['cmd', 1]\n",
            &format!("{p}:2: shell.windows: element 2 is integer, expected a string"),
        );
        // A date where a known key wants something else is that key's
        // type error; anywhere else it loads.
        invalid(
            "[gc]\nauto = 1979-05-27\n",
            &format!("{p}:2: gc.auto: expected true or false, found date-time"),
        );
        parse("[other_tool]\nlast_sync = 2024-01-01T00:00:00Z\n[gc]\nx = 07:32:00\n").unwrap();
    }

    #[test]
    fn a_gc_older_than_that_is_no_duration_only_disables_auto_gc() {
        let p = origin().display();
        let c =
            parse("[shell]\nunix = [\"bash\", \"-c\"]\n[gc]\nolder_than = \"30 days\"\n").unwrap();
        assert_eq!(
            c.gc.older_than_invalid.as_deref(),
            Some(&*format!(
                "{p}:4: gc.older_than: invalid duration: 30 days; expected formats: 500ms, \
                 1.5s, 5m, 2h, 1d, 1w (a bare number is seconds)"
            ))
        );
        assert_eq!(c.gc.older_than, None);
        assert_eq!(c.gc.older_than_secs, DEFAULT_OLDER_THAN_SECS);
        // The rest of the file still counts.
        assert_eq!(c.shell_unix, Some(vec!["bash".into(), "-c".into()]));
        assert_eq!(
            parse("[gc]\nolder_than = \"7d\"")
                .unwrap()
                .gc
                .older_than_invalid,
            None
        );
    }

    #[test]
    fn zero_values_are_accepted() {
        let c =
            parse("[gc]\nolder_than = \" 0s \"\nscan_limit = 0\n[notify]\nsink_timeout = \"0\"")
                .unwrap();
        assert_eq!(c.gc.older_than.as_deref(), Some("0s"));
        assert_eq!(c.gc.older_than_secs, 0);
        assert_eq!(c.gc.scan_limit, 0);
        assert_eq!(c.notify.sink_timeout_ms, 0);
    }

    #[test]
    fn malformed_toml_names_file_and_line() {
        invalid(
            "[gc]\nauto = true\nauto = false\n",
            "/etc/x/config.toml:3: duplicate key `auto` (first defined on line 2)",
        );
        invalid(
            "\n\n[gc\n",
            "/etc/x/config.toml:3: expected `]` to close the table header, found end of line",
        );
        invalid(
            "[shell]\nunix = [\"sh\",\n",
            "/etc/x/config.toml:2: unterminated array",
        );
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        let c = parse("\u{feff}[gc]\nmax_jobs = 3\n").unwrap();
        assert_eq!(c.gc.max_jobs, Some(3));
    }

    #[test]
    fn default_path_precedence() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert_eq!(
            default_path_from(os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/xdg/agent-exec/config.toml"))
        );
        assert_eq!(
            default_path_from(os(""), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/agent-exec/config.toml"))
        );
        assert_eq!(
            default_path_from(os("relative/xdg"), os("/home/u")),
            Some(PathBuf::from("/home/u/.config/agent-exec/config.toml"))
        );
        assert_eq!(
            default_path_from(None, os("/home/u")),
            Some(PathBuf::from("/home/u/.config/agent-exec/config.toml"))
        );
        assert_eq!(
            default_path_from(os("/xdg"), None),
            Some(PathBuf::from("/xdg/agent-exec/config.toml"))
        );
        assert_eq!(default_path_from(None, None), None);
        assert_eq!(default_path_from(os("rel"), os("")), None);
        assert_eq!(default_path_from(os(""), None), None);
    }

    #[test]
    fn load_reads_explicit_then_default_then_builtins() {
        let dir = scratch_dir();
        let explicit = dir.join("explicit.toml");
        let default = dir.join("default.toml");
        let missing = dir.join("missing.toml");
        std::fs::write(&explicit, "[gc]\nmax_jobs = 1\n").unwrap();
        std::fs::write(&default, "[gc]\nmax_jobs = 2\n").unwrap();

        let c = load_from(Some(&explicit), Some(&default)).unwrap();
        assert_eq!(
            (c.path.as_deref(), c.gc.max_jobs),
            (Some(&*explicit), Some(1))
        );

        let c = load_from(None, Some(&default)).unwrap();
        assert_eq!(
            (c.path.as_deref(), c.gc.max_jobs),
            (Some(&*default), Some(2))
        );

        // Explicit but missing: an error naming it, whatever else exists.
        for default in [Some(&*default), Some(&*missing), None] {
            let e = load_from(Some(&missing), default).unwrap_err();
            assert_eq!(e.code(), "invalid_config");
            assert!(e.to_string().contains("missing.toml"), "{e}");
        }
        // Explicit but not a regular file (a directory, a FIFO).
        let e = load_from(Some(&dir), None).unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{e}");
        // The null device is a config with no settings: the defaults,
        // not the default file's. Another device is refused.
        let null = load_from(Some(Path::new("/dev/null")), Some(&default)).unwrap();
        assert_eq!(null.gc.max_jobs, None);
        let e = load_from(Some(Path::new("/dev/zero")), None).unwrap_err();
        assert_eq!(e.code(), "invalid_config", "{e}");
        // A missing default file is no error.
        assert_eq!(load_from(None, Some(&missing)).unwrap(), Config::default());
        assert_eq!(load_from(None, None).unwrap(), Config::default());
        // Nor one that cannot exist: a file where its directory would be,
        // a name too long. Named with --config, the same is an error.
        let file = dir.join("agent-exec");
        std::fs::write(&file, "").unwrap();
        let under = file.join("config.toml");
        assert_eq!(load_from(None, Some(&under)).unwrap(), Config::default());
        let long = dir.join("x".repeat(300)).join("config.toml");
        assert_eq!(load_from(None, Some(&long)).unwrap(), Config::default());
        let looped = dir.join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let under_loop = looped.join("config.toml");
        assert_eq!(
            load_from(None, Some(&under_loop)).unwrap(),
            Config::default()
        );
        assert!(matches!(
            load_from(Some(&under), None),
            Err(Error::InvalidConfig(_))
        ));

        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn load_errors() {
        let dir = scratch_dir();
        // Exists but is not a regular file: refused, naming it.
        match load_from(Some(&dir), None) {
            Err(Error::InvalidConfig(msg)) => {
                assert_eq!(
                    msg,
                    format!("{}: config file is not a regular file", dir.display())
                );
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        // A broken default file is an error too, not silently skipped.
        let broken = dir.join("broken.toml");
        std::fs::write(&broken, "[gc]\nmax_jobs = \n").unwrap();
        match load_from(None, Some(&broken)) {
            Err(Error::InvalidConfig(msg)) => assert_eq!(
                msg,
                format!(
                    "{}:2: expected a value, found end of line",
                    broken.display()
                )
            ),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let latin1 = dir.join("latin1.toml");
        std::fs::write(&latin1, b"# ok\n# caf\xe9\n").unwrap();
        match load_from(Some(&latin1), None) {
            Err(Error::InvalidConfig(msg)) => assert_eq!(
                msg,
                format!("{}:2: config file is not valid UTF-8", latin1.display())
            ),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        let huge = dir.join("huge.toml");
        std::fs::write(&huge, "#".repeat(toml::MAX_INPUT_BYTES + 1)).unwrap();
        match load_from(Some(&huge), None) {
            Err(Error::InvalidConfig(msg)) => assert!(msg.contains("larger than"), "{msg}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
