//! The jobs root: where it is, how job ids are made and found, and how
//! files in it are written.
//!
//! Layout: `<root>/<ULID>/{meta.json,state.json,stdout.log,...}`. ULIDs
//! sort by creation time, so a sorted directory listing is a timeline and
//! "newest first" needs no file reads.
//!
//! Invariants
//! - An id argument is validated before it touches the file system: not
//!   empty, no `/`, not `.`/`..`, no NUL; a match must hold `meta.json`.
//!   No argument can name a directory outside the root.
//! - A job directory that is there but cannot be looked into (no
//!   permission) is an `io_error` about that job, never `job_not_found`;
//!   one that is damaged (`damaged`) is `unsafe_path`.
//! - A spare directory is taken only when it is ours and empty.
//! - Job directories are 0700, files 0600: logs and env may hold secrets.
//! - Every write is temp file + rename in the same directory; `durable`
//!   adds an fsync of the file before the rename.
//!
//! Rejected: 0.2.3 joined the raw argument onto the root (`delete ..`
//! removed the root's parent); its 32-hex random ids do not sort.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::job::{Job, META};

/// Empty job directories made ahead of need (`refill_spares`), each
/// renamed to a new job's id by the launch that takes it. Why: a new
/// directory in the root costs this ext4 70-150 us (the root is marked
/// the top of a hierarchy, so each mkdir weighs every block group, see
/// `sys::spread_subdirectories`); a rename costs about 7 us. Dot names:
/// nothing that reads the root takes them for jobs (`valid_id`).
pub const SPARE_DIRS: [&str; 2] = [".spare-0", ".spare-1"];

/// The longest jobs root a job is made under, in bytes: 4022. Commands
/// reach a job's files by their full paths (`<root>/<id>/meta.json`) and
/// print them (`stdout_log_path`), so every such path must fit in
/// PATH_MAX (4096 bytes with its NUL), or a job could be made (relative
/// to a directory descriptor) that no later command can read or delete.
/// Names made only relative to an open directory (temp files, the
/// `.lock-*` claim) meet NAME_MAX alone and do not count.
pub const MAX_ROOT_LEN: usize = {
    // The longest paths under the root used by full path: a kept run's
    // match events (the attempt a u32), and a queue's directory, listed
    // by path (a queue name is at most 64 bytes, `queue::check_name`).
    let run = "/01ARZ3NDEKTSV4RRFFQ69G5FAV/runs/4294967295/notification_events.ndjson".len();
    let queue = "/.queues/".len() + 64;
    4096 - 1 - if run > queue { run } else { queue }
};

/// Ambiguity reports list at most this many candidates.
pub const MAX_CANDIDATES: usize = 20;
/// Abbreviated ids are never shorter than this.
pub const SHORT_ID_MIN: usize = 10;

#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
    /// The root as the flag or the environment named it (`Store::given`).
    shown: PathBuf,
}

/// The environment variables that can name the root, in order of
/// precedence after `--root`, each with the path under it that is the
/// root (HOME: the last resort).
const ROOT_VARS: [(&str, &str); 3] = [
    ("AGENT_EXEC_ROOT", ""),
    ("XDG_DATA_HOME", "agent-exec/jobs"),
    ("HOME", ".local/share/agent-exec/jobs"),
];

/// Refuse a root the environment names in bytes that are not UTF-8, as
/// `--root` refuses them (`usage_error`), instead of passing over the
/// variable and quietly using the next one: a job must never land in a
/// root other than the one asked for. Only the variable that decides
/// counts (an unused HOME may be anything).
pub fn check_root_env(flag: Option<&str>) -> Result<()> {
    // A relative root in a current directory that is gone has no place:
    // `io_error`, as `run` answers there, for every command (`list --all`
    // and `gc` answered `ok` for a relative root that named nothing).
    let relative_root_in_nowhere = || -> Result<()> {
        if !Store::resolve(flag).root.is_absolute() {
            if let Err(e) = std::env::current_dir() {
                return Err(Error::io("current directory", e));
            }
        }
        Ok(())
    };
    if flag.is_some() {
        return relative_root_in_nowhere();
    }
    for (key, _) in ROOT_VARS {
        match std::env::var_os(key) {
            Some(v) if v.is_empty() => continue,
            Some(v) if v.to_str().is_none() => {
                return Err(Error::usage(format!(
                "{key} is not valid UTF-8, and a jobs root's path must be (give one with --root)"
            )))
            }
            Some(_) => return relative_root_in_nowhere(),
            None => continue,
        }
    }
    relative_root_in_nowhere()
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The effective user's home directory in /etc/passwd (an absolute path;
/// None when there is no such entry, or it names none). Read only when
/// HOME is unset or empty.
pub fn passwd_home() -> Option<PathBuf> {
    passwd_home_in(&fs::read_to_string("/etc/passwd").ok()?, crate::sys::euid())
}

/// `name:password:uid:gid:gecos:home:shell`, the first entry of `uid`.
fn passwd_home_in(passwd: &str, uid: u32) -> Option<PathBuf> {
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2].parse() == Ok(uid))
        .map(|f| PathBuf::from(f[5]))
        .filter(|h| h.is_absolute())
}

/// Make a path absolute against the current directory, lexically (no
/// symlink resolution, so the path stays the one the user gave).
pub fn absolutize(p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// The error of a `mkdir -p` of `path`, said as what it is: "File
/// exists" of a path that is not a directory is a file (ENOTDIR), or a
/// symlink that leads nowhere a directory is (a loop, a dangling link:
/// what following it says). Used for the jobs root and a `--log` file's
/// directories.
pub fn mkdir_error(path: &Path, e: std::io::Error) -> std::io::Error {
    match (e.kind(), fs::metadata(path)) {
        (std::io::ErrorKind::AlreadyExists, Err(m)) => m,
        (std::io::ErrorKind::AlreadyExists, Ok(m)) if !m.is_dir() => {
            std::io::Error::from_raw_os_error(libc::ENOTDIR)
        }
        _ => e,
    }
}

impl Store {
    /// `--root` > `AGENT_EXEC_ROOT` > `$XDG_DATA_HOME/agent-exec/jobs` >
    /// `$HOME/.local/share/agent-exec/jobs`.
    pub fn resolve(flag: Option<&str>) -> Store {
        let shown = Store::given(flag);
        Store {
            root: absolutize(&shown),
            shown,
        }
    }

    /// The store at `root`, an absolute path, shown as it is.
    #[cfg(test)]
    pub fn at(root: PathBuf) -> Store {
        Store {
            shown: root.clone(),
            root,
        }
    }

    /// The root as the flag or the environment names it, before it is
    /// made absolute: what the `root` field of `list`, `gc` and `delete`
    /// shows, as 0.2.3 shows it (a relative root stays relative there;
    /// every path the job's files are reached by is absolute).
    fn given(flag: Option<&str>) -> PathBuf {
        flag.map(PathBuf::from)
            .or_else(|| {
                ROOT_VARS.iter().find_map(|(key, under)| {
                    // AGENT_EXEC_ROOT as it is (a join of "" would
                    // add a slash to what `root` shows).
                    env_nonempty(key).map(|v| match under.is_empty() {
                        true => PathBuf::from(v),
                        false => Path::new(&v).join(under),
                    })
                })
            })
            // HOME unset or empty: the home the user database gives, as
            // 0.2.3's lookup falls back to it (a root relative to the
            // current directory lost the jobs at the next `cd`).
            .or_else(|| passwd_home().map(|h| h.join(".local/share/agent-exec/jobs")))
            .unwrap_or_else(|| PathBuf::from(".agent-exec/jobs"))
    }

    /// The root as given, for the `root` field of `list`, `gc` and
    /// `delete`.
    pub fn display(&self) -> String {
        self.shown.to_string_lossy().into_owned()
    }

    pub fn job(&self, id: &str) -> Job {
        Job::new(id, self.root.join(id))
    }

    /// `mkdir -p` the root; new directories are 0700. The root is marked
    /// the top of its directory hierarchies (see `sys::spread_subdirectories`).
    pub fn ensure_root(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| {
                Error::io_as_is(
                    format!("create jobs root {}", self.root.display()),
                    mkdir_error(&self.root, e),
                )
            })?;
        crate::sys::spread_subdirectories(&self.root);
        Ok(())
    }

    /// Create a fresh job directory with a new ULID: a spare directory
    /// renamed into place when there is one (see `refill_spares`), else
    /// a new one.
    pub fn create_job(&self) -> Result<Job> {
        self.check_root_len()?;
        if let Some(job) = self.take_spare() {
            return Ok(job);
        }
        self.ensure_root()?;
        let mut last = None;
        for _ in 0..16 {
            let id = new_id()?;
            let dir = self.root.join(&id);
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Job::new(id, dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(Error::io(
                        format!("create job directory {}", dir.display()),
                        e,
                    ))
                }
            }
        }
        Err(Error::io(
            "job ID generation failed: 16 consecutive collisions",
            last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists)),
        ))
    }

    /// Refuse to make a job whose paths would not all fit in PATH_MAX
    /// (`MAX_ROOT_LEN`), before anything is made: the error the kernel
    /// would give for the longest of them (ENAMETOOLONG, `io_error`),
    /// as it gave for a root too long for the job directory itself.
    fn check_root_len(&self) -> Result<()> {
        let len = self.root.as_os_str().len();
        if len <= MAX_ROOT_LEN {
            return Ok(());
        }
        Err(Error::io_as_is(
            format!(
                "jobs root is {len} bytes long; a job is made only under a root of at most {MAX_ROOT_LEN} bytes, so that every path in it fits in PATH_MAX (4096)"
            ),
            io::Error::from_raw_os_error(libc::ENAMETOOLONG),
        ))
    }

    /// A spare directory renamed to a new id. Only an empty directory of
    /// ours is taken (not a symlink, no entry at all under it: a file
    /// planted there, a `lock` say, would pass for the new job's own and
    /// fail its launch), and never over an existing name; anything else
    /// is left where it is, for `create_job` to make the directory
    /// itself. Two launches never get the same spare:
    /// the rename moves it once.
    fn take_spare(&self) -> Option<Job> {
        let root = crate::sys::Dir::open_root(&self.root).ok()?;
        for spare in SPARE_DIRS {
            // Touched first: gc takes a job directory without meta.json
            // whose mtime is a minute old for a launch that died, and a
            // spare keeps the mtime it was made with through the rename.
            if !root.is_own_leaf_dir(spare)
                || !is_empty_dir(&self.root.join(spare))
                || root.touch(spare).is_err()
            {
                continue;
            }
            let id = new_id().ok()?;
            if root.rename_noreplace(spare, &id).is_ok() {
                let dir = self.root.join(&id);
                return Some(Job::new(id, dir));
            }
        }
        None
    }

    /// Make the spare job directories that are missing. The supervisor
    /// calls this once its caller has been told the job runs, so that
    /// the next launch's directory costs a rename on that launch's path
    /// instead of a mkdir. Best effort: a root that refuses is left as
    /// it is, and the next launch makes its own directory.
    pub fn refill_spares(&self) {
        if let Ok(root) = crate::sys::Dir::open_root(&self.root) {
            for spare in SPARE_DIRS {
                let _ = root.mkdir(spare);
            }
        }
    }

    /// Calls `f` with the name of every directory in the root that can be
    /// a job directory (valid id shape), in directory order. A missing
    /// root has none. Symlinks are not job directories.
    ///
    /// Returns how many other directories it passed over, whose names
    /// are not UTF-8 or not of that shape (a control character, a
    /// backslash, over 128 bytes): no id argument can name one, so no
    /// command reads or removes it, but `gc`, `list` and `delete --all`
    /// count it as skipped rather than hide it; so is a symlink named as
    /// a job. Dot names are the root's own entries (`.spare-N`,
    /// `.queues`, `.gc.lock`, `.gone-…`), never counted.
    fn scan(&self, mut f: impl FnMut(&str), mut dots: Option<&mut Vec<String>>) -> Result<u64> {
        use std::os::unix::ffi::OsStrExt;
        let mut foreign = 0u64;
        let r = crate::sys::for_each_raw_entry(&self.root, |raw, kind| {
            if raw.starts_with(b".") {
                if let (Some(v), Ok(n)) = (dots.as_deref_mut(), std::str::from_utf8(raw)) {
                    v.push(n.to_string());
                }
                return;
            }
            let is_dir = match kind {
                crate::sys::EntryKind::Dir => true,
                crate::sys::EntryKind::Other => false,
                crate::sys::EntryKind::Unknown => {
                    fs::symlink_metadata(self.root.join(std::ffi::OsStr::from_bytes(raw)))
                        .is_ok_and(|m| m.is_dir())
                }
            };
            match std::str::from_utf8(raw) {
                Ok(n) if is_dir && valid_id_bytes(raw) => f(n),
                _ if is_dir => foreign += 1,
                // A symlink named as a job: never followed nor removed
                // (by id it is `unsafe_path`), and counted as skipped,
                // not hidden, as a directory that cannot be a job is.
                Ok(_)
                    if valid_id_bytes(raw)
                        && fs::symlink_metadata(
                            self.root.join(std::ffi::OsStr::from_bytes(raw)),
                        )
                        .is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    foreign += 1
                }
                _ => {}
            }
        });
        match r {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io_as_is(
                format!("failed to read root directory {}", self.root.display()),
                e,
            )),
            _ => Ok(foreign),
        }
    }

    /// Names of the root's job directories, unsorted.
    pub fn job_names(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        self.scan(|n| v.push(n.to_string()), None)?;
        Ok(v)
    }

    /// Names of the root's job directories in creation order.
    pub fn names(&self) -> Result<Names> {
        let mut b = Names::default();
        let mut dots = Vec::new();
        b.foreign = self.scan(
            |n| {
                b.push(n);
            },
            Some(&mut dots),
        )?;
        b.dots = dots;
        b.sort();
        Ok(b)
    }

    /// Resolve a full id or a unique case-insensitive prefix. The job is
    /// pinned (`Job::pin`): no gc or delete removes it while the caller
    /// holds it. A directory that is a symlink, or whose meta.json is
    /// not a regular file, is not a job.
    pub fn lookup(&self, arg: &str) -> Result<Job> {
        let mut job = self.resolve_id(arg)?;
        job.pin().map_err(|e| e.in_job(&job.id))?;
        Ok(job)
    }

    fn resolve_id(&self, arg: &str) -> Result<Job> {
        if !valid_id(arg) {
            return Err(Error::JobNotFound(arg.to_string()));
        }
        let upper = arg.to_ascii_uppercase();
        for cand in [arg, upper.as_str()] {
            match self.probe(cand) {
                Probe::Job => return Ok(Job::new(cand, self.root.join(cand))),
                Probe::Unreadable(e) => return Err(e.in_job(cand)),
                Probe::NotJob => {}
            }
            // Named exactly, but not a job to use (`damaged`): said so
            // rather than "not found".
            if let Some(what) = self.damaged(cand) {
                return Err(Error::UnsafePath(format!("job {cand}: {what}")).in_job(cand));
            }
        }
        // Names are compared as bytes: a name with multi-byte characters
        // is never sliced inside one.
        // A directory that may be a job but cannot be looked into (no
        // permission) is a candidate too: if it is the one named, the
        // caller hears why it cannot have it, not that it is not there.
        // A root that cannot be read is an io_error, as `list` says, not
        // "no such job" (a missing root has no jobs: not an error).
        let mut found: Vec<(String, Option<Error>)> = self
            .job_names()?
            .into_iter()
            .filter(|n| {
                n.len() >= arg.len()
                    && n.as_bytes()[..arg.len()].eq_ignore_ascii_case(arg.as_bytes())
            })
            .filter_map(|n| match self.probe(&n) {
                Probe::Job => Some((n, None)),
                Probe::Unreadable(e) => Some((n, Some(e))),
                Probe::NotJob => None,
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        match found.len() {
            0 => Err(Error::JobNotFound(arg.to_string())),
            1 => match found.remove(0) {
                (id, None) => Ok(self.job(&id)),
                (id, Some(e)) => Err(e.in_job(&id)),
            },
            n => {
                found.truncate(MAX_CANDIDATES);
                Err(Error::AmbiguousJobId {
                    prefix: arg.to_string(),
                    candidates: found.into_iter().map(|(id, _)| id).collect(),
                    more: n.saturating_sub(MAX_CANDIDATES),
                })
            }
        }
    }

    /// Why job `name`, named exactly, is not one to use though it is
    /// there (`damaged`): said so, rather than "not found".
    fn damaged(&self, name: &str) -> Option<&'static str> {
        damaged(&self.root.join(name))
    }

    /// Is `name` a job: a real directory (not a symlink) holding a
    /// regular meta.json (not a symlink either)? A directory whose
    /// meta.json cannot even be looked for (no search permission on it)
    /// is `Unreadable`: it is there, and may well be a job.
    fn probe(&self, name: &str) -> Probe {
        let dir = self.root.join(name);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            // The root cannot be searched (no permission): the job may
            // well be there; "not found" would tell the caller it is gone.
            // (A root that is a file, ENOTDIR, is the scan's io_error, and
            // so is one that is a symlink loop: lstat follows no link of
            // the last name, so ELOOP here is the root's, not the job's.)
            Err(e)
                if e.kind() != io::ErrorKind::NotFound
                    && !matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) =>
            {
                return Probe::Unreadable(Error::io(format!("read {}", dir.display()), e))
            }
            _ => return Probe::NotJob,
        }
        let meta = dir.join(META);
        match fs::symlink_metadata(&meta) {
            Ok(m) if m.is_file() => Probe::Job,
            // A meta.json that is a symlink, a FIFO or a directory: a job
            // no reader uses (`damaged`), said so whether it is named in
            // full or by a prefix (a prefix answered job_not_found, while
            // `list` showed the job and its full id read unsafe_path).
            Ok(_) => match damaged(&dir) {
                Some(what) => Probe::Unreadable(Error::UnsafePath(format!("job {name}: {what}"))),
                None => Probe::NotJob,
            },
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Probe::Unreadable(Error::io(format!("read {}", meta.display()), e))
            }
            _ => Probe::NotJob,
        }
    }
}

/// What `Store::probe` found under a name in the root.
enum Probe {
    Job,
    NotJob,
    Unreadable(Error),
}

/// Why the job directory `dir` is not one to use though it is there: it
/// or its meta.json is a symlink (never followed), or its meta.json is
/// something other than a file (a directory, a FIFO). What `status`
/// refuses as `unsafe_path`, and what every removal (`delete A B`,
/// `delete --all`, `gc`) skips with that reason rather than remove a job
/// no reader accepts. None when it is fine, or missing (a half-written
/// directory is not damaged: gc takes it in time).
pub fn damaged(dir: &Path) -> Option<&'static str> {
    let dm = fs::symlink_metadata(dir).ok()?;
    if dm.file_type().is_symlink() {
        return Some("its directory is a symlink; agent-exec does not follow it");
    }
    let mm = fs::symlink_metadata(dir.join(META))
        .ok()
        .filter(|_| dm.is_dir())?;
    if mm.file_type().is_symlink() {
        Some("its meta.json is a symlink; agent-exec does not follow it")
    } else if !mm.is_file() {
        Some("its meta.json is not a regular file")
    } else {
        None
    }
}

/// Does the directory `dir` hold no entry at all? False when it cannot
/// be read: then it is not known to be empty.
fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_none())
}

/// Could `s` name a job directory? Checked before any file-system access.
pub fn valid_id(s: &str) -> bool {
    valid_id_bytes(s.as_bytes())
}

/// `valid_id` of a name as the directory listing gives it, UTF-8 or not.
fn valid_id_bytes(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != b"."
        && s != b".."
        && !s.starts_with(b".")
        && !s
            .iter()
            .any(|&b| b == b'/' || b == b'\\' || b == 0 || b.is_ascii_control())
}

/// A new ULID: creation time in ms plus 80 bits from the kernel.
pub fn new_id() -> Result<String> {
    let mut r = [0u8; 16];
    crate::sys::random_bytes(&mut r).map_err(|e| Error::io("getrandom", e))?;
    let rand = u128::from_le_bytes(r) & ((1u128 << 80) - 1);
    Ok(ulid::Ulid::from_parts(crate::time::now_unix_ms(), rand).to_string())
}

/// Does `id` have the shape of a ULID (26 upper-case Crockford base32
/// characters)? Such names sort by creation time as plain text.
/// A job id of 0.2.3's: 32 hex digits (a UUID without its dashes).
pub fn is_legacy_hex(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn is_ulid(id: &str) -> bool {
    id.len() == 26 && id.as_bytes()[0] <= b'7' && id.bytes().all(|b| CROCKFORD[b as usize])
}

/// Upper-case Crockford base32 digits (no I, L, O, U), as a table: the
/// list cache checks every byte of every cached name.
static CROCKFORD: [bool; 256] = {
    let mut t = [false; 256];
    let digits = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut i = 0;
    while i < digits.len() {
        t[digits[i] as usize] = true;
        i += 1;
    }
    t
};

/// Milliseconds since the epoch encoded in a ULID id, if it is one.
pub fn id_time_ms(id: &str) -> Option<u64> {
    if id.len() != 26 {
        return None;
    }
    ulid::Ulid::from_string(id).ok().map(|u| u.timestamp_ms())
}

/// The root's private cache directory (not a valid id, so never a job).
pub const CACHE_DIR: &str = ".cache";

/// A directory as a cache saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootStamp {
    pub ino: u64,
    pub nlink: u64,
    pub mtime_ns: i128,
}

/// Can any change after `t0_ns` (wall clock) be told from a file time
/// `time_ns` read before it? Yes when that time is older than `t0` by more
/// than the file system's timestamps can blur: Linux stamps with a
/// tick-based clock (at most 10 ms behind), so 100 ms is plenty;
/// whole-second stamps (nanoseconds 0) need two seconds.
pub fn settled(time_ns: i128, t0_ns: i128) -> bool {
    let slack = if time_ns % 1_000_000_000 == 0 {
        2_000_000_000
    } else {
        100_000_000
    };
    time_ns + slack < t0_ns
}

pub fn root_stamp(root: &Path) -> Option<RootStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(root).ok()?;
    Some(RootStamp {
        ino: m.ino(),
        nlink: m.nlink(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// Case-insensitive order of ids, without allocating.
pub fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    cmp_ci(a.as_bytes(), b.as_bytes())
}

fn cmp_ci(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.iter()
        .map(u8::to_ascii_uppercase)
        .cmp(b.iter().map(u8::to_ascii_uppercase))
}

const ULID_LEN: usize = 26;

/// A root's job directory names from one directory scan, in creation
/// order. ULID names (all that `new_id` makes) are fixed arrays sorted by
/// two integer keys: no heap string per name and no byte-by-byte compare,
/// which were most of the user time of `list` over 1,000 jobs. Other
/// valid names ("legacy") count as older than every ULID and sort by
/// name, case-insensitively.
#[derive(Debug, Default)]
pub struct Names {
    /// Ascending; upper-case, so byte order is `cmp_ids` order.
    ulids: Vec<[u8; ULID_LEN]>,
    /// Ascending by `cmp_ids`, ties by bytes.
    legacy: Vec<String>,
    /// Directories of the scan whose names are not UTF-8 (`Store::scan`).
    foreign: u64,
    /// The root's own entries the scan passed (`.spare-N`, `.gone-…`),
    /// UTF-8 ones, unsorted: what else a sweep looks for in the same
    /// listing.
    pub dots: Vec<String>,
}

impl Names {
    /// Add a name; says whether it is a ULID.
    pub fn push(&mut self, name: &str) -> bool {
        match <[u8; ULID_LEN]>::try_from(name.as_bytes()) {
            Ok(a) if is_ulid(name) => {
                self.ulids.push(a);
                true
            }
            _ => {
                self.legacy.push(name.to_string());
                false
            }
        }
    }

    /// Big-endian integers order exactly like the bytes they hold, and
    /// compare in two instructions where bytes take a `memcmp` call.
    fn key(u: &[u8; ULID_LEN]) -> (u128, u128) {
        let mut lo = [0u8; 16];
        lo[..ULID_LEN - 16].copy_from_slice(&u[16..]);
        (
            u128::from_be_bytes(u[..16].try_into().unwrap_or_default()),
            u128::from_be_bytes(lo),
        )
    }

    pub fn sort(&mut self) {
        self.ulids.sort_unstable_by_key(Names::key);
        self.legacy
            .sort_unstable_by(|a, b| cmp_ids(a, b).then_with(|| a.cmp(b)));
    }

    pub fn len(&self) -> usize {
        self.ulids.len() + self.legacy.len()
    }

    /// How many directories the scan passed over because their names are
    /// not UTF-8: not among the names, but to be counted as skipped.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// The order of `oldest_first`, for any two names: legacy names
    /// before ULIDs, legacy by `cmp_ids` then bytes, ULIDs by bytes.
    pub fn cmp_order(a: &str, b: &str) -> std::cmp::Ordering {
        match (is_ulid(a), is_ulid(b)) {
            (true, true) => a.cmp(b),
            (false, false) => cmp_ids(a, b).then_with(|| a.cmp(b)),
            (x, y) => x.cmp(&y),
        }
    }

    /// Oldest first (`.rev()` for newest first): legacy names, then ULIDs.
    pub fn oldest_first(&self) -> impl DoubleEndedIterator<Item = &str> {
        // ULID bytes are ASCII, so the conversion never fails.
        self.legacy.iter().map(String::as_str).chain(
            self.ulids
                .iter()
                .map(|u| std::str::from_utf8(u).unwrap_or_default()),
        )
    }

    /// The shortest prefix of `name` (one of these names), at least
    /// `SHORT_ID_MIN` long, that no other name shares case-insensitively
    /// — like git's abbreviated hashes. It is computed from the neighbours
    /// of `name` in each sorted list: the longest common prefix with any
    /// other name is found at a neighbour.
    pub fn short_id(&self, name: &str) -> String {
        let n = name.as_bytes();
        // ULIDs are upper-case: against an upper-cased name, plain byte
        // order is the case-insensitive order (and far cheaper).
        let upper = name.to_ascii_uppercase();
        let longest = longest_shared_prefix(&self.ulids, upper.as_bytes(), n, |a, b| a.cmp(b))
            .max(longest_shared_prefix(&self.legacy, n, n, cmp_ci));
        short_prefix(name, longest)
    }

    /// The `k`-th name, newest first.
    pub fn newest(&self, k: usize) -> Option<&str> {
        match k.checked_sub(self.ulids.len()) {
            None => std::str::from_utf8(&self.ulids[self.ulids.len() - 1 - k]).ok(),
            Some(l) => self
                .legacy
                .len()
                .checked_sub(l + 1)
                .map(|i| self.legacy[i].as_str()),
        }
    }
}

/// The short id of `name` given the longest prefix (in bytes) another
/// name shares with it: one character more, at least `SHORT_ID_MIN`
/// characters (not bytes: a legacy name may be non-ASCII), at most all.
pub fn short_prefix(name: &str, shared: usize) -> String {
    let least = name
        .char_indices()
        .nth(SHORT_ID_MIN)
        .map_or(name.len(), |(i, _)| i);
    let mut end = (shared + 1).min(name.len()).max(least);
    // Never cut a character of a (legacy, non-ASCII) name in two.
    while !name.is_char_boundary(end) {
        end += 1;
    }
    name[..end].to_string()
}

/// Length of the case-insensitive common prefix of two names.
pub fn common_prefix(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> usize {
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
        .count()
}

/// The longest case-insensitive common prefix of `n` with a name of
/// `sorted` other than `n` itself (`n.len()` when one equals it but for
/// case, since no prefix tells them apart). `key` is `n` as `cmp` orders
/// `sorted`.
fn longest_shared_prefix<T: AsRef<[u8]>>(
    sorted: &[T],
    key: &[u8],
    n: &[u8],
    cmp: impl Fn(&[u8], &[u8]) -> std::cmp::Ordering,
) -> usize {
    let lo = sorted.partition_point(|x| cmp(x.as_ref(), key).is_lt());
    let hi = lo + sorted[lo..].partition_point(|x| cmp(x.as_ref(), key).is_le());
    if sorted[lo..hi].iter().any(|x| x.as_ref() != n) {
        return n.len();
    }
    let lcp = |x: &T| common_prefix(x.as_ref(), n);
    let before = lo.checked_sub(1).map_or(0, |i| lcp(&sorted[i]));
    let after = sorted.get(hi).map_or(0, lcp);
    before.max(after)
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Open (creating it 0600 if needed) a file that is only ever flock'ed:
/// a job's `lock` or `meta.lock`, the root's `.gc.lock`. Never through a
/// symlink (see `sys::Dir`).
pub fn open_lock(path: &Path) -> io::Result<fs::File> {
    let (dir, name) = split(path)?;
    crate::sys::Dir::open(dir)?.open_file(name, crate::sys::How::Open)
}

fn split(path: &Path) -> io::Result<(&Path, &str)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad file name"))?;
    Ok((path.parent().unwrap_or(Path::new(".")), name))
}

/// Make an already renamed `dir/name` durable: fsync the file, then the
/// directory (for the rename). Best effort: the data is already visible.
pub fn sync_file(dir: &Path, name: &str) {
    if let Ok(f) = crate::sys::open_read(&dir.join(name)) {
        let _ = f.sync_all();
    }
    if let Ok(d) = crate::sys::open_dir_lockable(dir) {
        let _ = d.sync_all();
    }
}

/// How `write_atomic`'s temporary files for `name` begin (the writer's
/// pid and a count follow): one left by a writer killed before its
/// rename is found by this (`runs::archive`).
pub fn temp_prefix(name: &str) -> String {
    format!(".tmp-{name}-")
}

/// Write `data` to `dir/name` atomically: a 0600 temp file in the same
/// directory, then rename over the target — relative to the directory
/// opened without following a symlink, so the write lands in `dir` or
/// nowhere. A rename replaces a symlink planted at `name`; it never
/// writes through it.
///
/// A temporary name already taken (left by a writer killed before its
/// rename, which had this pid: pids come round, and in a new pid
/// namespace at once) is passed over for the next one, and left alone:
/// it may be another namespace's live writer's. (It was removed as if
/// ours, and the write failed: a `job.finished` command sink was never
/// started, or the record of its delivery was lost.)
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
    write_atomic_in(&crate::sys::Dir::open(dir)?, name, data, durable)
}

/// `write_atomic` into a directory already open (one reached below a job
/// directory one name at a time, none of them a symlink).
pub fn write_atomic_in(
    d: &crate::sys::Dir,
    name: &str,
    data: &[u8],
    durable: bool,
) -> io::Result<()> {
    let mut tries = 0;
    let (tmp, mut f) = loop {
        let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = format!("{}{}-{seq}", temp_prefix(name), std::process::id());
        match d.open_file(&tmp, crate::sys::How::CreateNew) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            Err(e) => return Err(e),
        }
    };
    let res = (|| {
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        d.rename(&tmp, name)
    })();
    if res.is_err() {
        let _ = d.unlink(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_root(tag: &str) -> Store {
        let root = std::env::temp_dir().join(format!(
            "ae-store-{tag}-{}-{}",
            std::process::id(),
            new_id().unwrap()
        ));
        Store::at(root)
    }

    fn make_job(s: &Store, id: &str) {
        let d = s.root.join(id);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(META), "{}").unwrap();
    }

    /// Temporary names taken already (a killed writer that had this pid)
    /// are passed over and left alone; the write goes through.
    #[test]
    fn a_write_passes_over_temporary_names_already_taken() {
        let s = temp_root("tmp-taken");
        fs::create_dir_all(&s.root).unwrap();
        let next = TMP_SEQ.load(Ordering::Relaxed);
        let taken: Vec<PathBuf> = (next..next + 3)
            .map(|seq| {
                let p = s.root.join(format!(
                    "{}{}-{seq}",
                    temp_prefix("f.json"),
                    std::process::id()
                ));
                fs::write(&p, "stale").unwrap();
                p
            })
            .collect();
        write_atomic(&s.root, "f.json", b"new", false).unwrap();
        assert_eq!(fs::read(s.root.join("f.json")).unwrap(), b"new");
        assert!(taken.iter().all(|p| p.exists()));
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn ids_are_ulids_and_sort_by_time() {
        let a = new_id().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id().unwrap();
        assert_eq!(a.len(), 26);
        assert!(a < b);
        assert!(id_time_ms(&a).is_some());
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    /// The bound the README states, and the queue-name limit it rests on.
    #[test]
    fn the_longest_root_leaves_room_for_every_full_path() {
        assert_eq!(MAX_ROOT_LEN, 4022);
        assert!(crate::queue::check_name(&"q".repeat(64)).is_ok());
        assert!(crate::queue::check_name(&"q".repeat(65)).is_err());
        let s = Store::at(PathBuf::from(format!("/{}", "r".repeat(MAX_ROOT_LEN))));
        let e = s.create_job().unwrap_err();
        assert_eq!(e.code(), "io_error");
        assert!(e.to_string().contains("(os error 36)"), "{e}");
    }

    #[test]
    fn the_home_without_home_is_the_users_entry() {
        let db = "root:x:0:0:root:/root:/bin/sh\n\
                  # not an entry\n\
                  nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n\
                  rel:x:7:7::home/rel:/bin/sh\n\
                  short:x:8:8\n\
                  me:x:1000:1000:Me,,,:/home/me:/bin/bash\n\
                  again:x:1000:1000::/home/again:/bin/sh\n";
        assert_eq!(passwd_home_in(db, 0), Some(PathBuf::from("/root")));
        // The first entry of the uid; none, or a relative home: none.
        assert_eq!(passwd_home_in(db, 1000), Some(PathBuf::from("/home/me")));
        assert_eq!(passwd_home_in(db, 7), None);
        assert_eq!(passwd_home_in(db, 8), None);
        assert_eq!(passwd_home_in(db, 4242), None);
    }

    #[test]
    fn a_launch_takes_a_spare_directory_and_only_a_safe_one() {
        use std::os::unix::fs::MetadataExt;
        let s = temp_root("spare");
        // No root, no spare: the directory is made.
        let first = s.create_job().unwrap();
        assert!(first.dir.is_dir());
        s.refill_spares();
        let spare = s.root.join(SPARE_DIRS[0]);
        let ino = fs::metadata(&spare).unwrap().ino();
        // Made long ago: the launch refreshes its mtime (gc's test for a
        // half-written directory reads it).
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::open(&spare).unwrap().set_modified(old).unwrap();
        let job = s.create_job().unwrap();
        let m = fs::metadata(&job.dir).unwrap();
        assert_eq!(m.ino(), ino, "the spare was renamed into place");
        assert!(m.modified().unwrap() > old + std::time::Duration::from_secs(3000));
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        assert!(is_ulid(&job.id));
        assert!(!spare.exists());
        // Spares are not jobs.
        let names = s.job_names().unwrap();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

        // A symlink, a file, or a directory with a subdirectory in a
        // spare's place is never taken (nor touched).
        let outside = s.root.with_extension("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::remove_dir(s.root.join(SPARE_DIRS[1])).unwrap();
        std::os::unix::fs::symlink(&outside, s.root.join(SPARE_DIRS[0])).unwrap();
        fs::write(s.root.join(SPARE_DIRS[1]), b"x").unwrap();
        let job = s.create_job().unwrap();
        assert!(fs::symlink_metadata(&job.dir).unwrap().is_dir());
        assert!(fs::symlink_metadata(s.root.join(SPARE_DIRS[0]))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(s.root.join(SPARE_DIRS[1]).is_file());
        fs::remove_file(s.root.join(SPARE_DIRS[0])).unwrap();
        fs::remove_file(s.root.join(SPARE_DIRS[1])).unwrap();
        fs::create_dir_all(s.root.join(SPARE_DIRS[0]).join("sub")).unwrap();
        let job = s.create_job().unwrap();
        assert!(fs::read_dir(&job.dir).unwrap().next().is_none());
        assert!(s.root.join(SPARE_DIRS[0]).join("sub").is_dir());
        // Nor one with a file in it (a planted `lock` would fail the
        // launch that took it).
        fs::create_dir(s.root.join(SPARE_DIRS[1])).unwrap();
        fs::write(s.root.join(SPARE_DIRS[1]).join("lock"), b"").unwrap();
        let job = s.create_job().unwrap();
        assert!(fs::read_dir(&job.dir).unwrap().next().is_none());
        assert!(s.root.join(SPARE_DIRS[1]).join("lock").is_file());
        fs::remove_dir_all(&s.root).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn hostile_ids_never_resolve() {
        let s = temp_root("hostile");
        s.ensure_root().unwrap();
        for bad in ["", ".", "..", "../x", "a/b", "/tmp", "\0", ".hidden"] {
            let e = s.lookup(bad).unwrap_err();
            assert_eq!(e.code(), "job_not_found", "{bad:?}");
        }
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn prefix_lookup_case_insensitive_and_ambiguous() {
        let s = temp_root("prefix");
        make_job(&s, "01AAAA0000000000000000000A");
        make_job(&s, "01AAAB0000000000000000000B");
        fs::create_dir_all(s.root.join("01AAAC-no-meta")).unwrap();
        assert_eq!(s.lookup("01aaaa").unwrap().id, "01AAAA0000000000000000000A");
        assert_eq!(
            s.lookup("01AAAA0000000000000000000A").unwrap().id,
            "01AAAA0000000000000000000A"
        );
        match s.lookup("01AAA").unwrap_err() {
            Error::AmbiguousJobId {
                candidates, more, ..
            } => {
                assert_eq!(candidates.len(), 2);
                assert_eq!(more, 0);
            }
            e => panic!("{e}"),
        }
        assert_eq!(s.lookup("01AAAC").unwrap_err().code(), "job_not_found");
        assert_eq!(s.lookup("ZZ").unwrap_err().code(), "job_not_found");
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn ambiguity_is_capped() {
        let s = temp_root("cap");
        for i in 0..25 {
            make_job(&s, &format!("01CAP{i:021}"));
        }
        match s.lookup("01CAP").unwrap_err() {
            Error::AmbiguousJobId {
                candidates, more, ..
            } => {
                assert_eq!(candidates.len(), MAX_CANDIDATES);
                assert_eq!(more, 25 - MAX_CANDIDATES);
                let mut sorted = candidates.clone();
                sorted.sort();
                assert_eq!(candidates, sorted);
            }
            e => panic!("{e}"),
        }
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn atomic_write_is_private() {
        let s = temp_root("atomic");
        s.ensure_root().unwrap();
        write_atomic(&s.root, "f.json", b"hello", true).unwrap();
        write_atomic(&s.root, "f.json", b"again", false).unwrap();
        assert_eq!(fs::read(s.root.join("f.json")).unwrap(), b"again");
        let mode = fs::metadata(s.root.join("f.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(&s.root)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
        let job = s.create_job().unwrap();
        let mode = fs::metadata(&job.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::remove_dir_all(&s.root).unwrap();
    }

    #[test]
    fn a_non_ascii_short_id_has_ten_characters_not_bytes() {
        let name = "01M9ÄÄÄÄÄÄÄÄÄÄÄÄ";
        assert_eq!(short_prefix(name, 0), "01M9ÄÄÄÄÄÄ");
        assert_eq!(short_prefix(name, 0).chars().count(), SHORT_ID_MIN);
        // One character past the shared prefix, whole.
        assert_eq!(short_prefix(name, 16), "01M9ÄÄÄÄÄÄÄ");
        assert_eq!(short_prefix("01ABC", 0), "01ABC");
    }

    #[test]
    fn short_ids_are_unique_and_at_least_ten() {
        // ULIDs (Crockford: no I, L, O, U) and legacy names mixed.
        let ulids = [
            "01ABCDEFGHJK0000000000000A",
            "01ABCDEFGHJKM000000000000B",
            "01ZZZZZZZZZZZZZZZZZZZZZZZZ",
        ];
        let legacy = [
            "01abcdefghjkm000000000000b-old",
            "legacy-one",
            "LEGACY-ONE-X",
            "mixed",
            "MIXED",
        ];
        let mut all = Names::default();
        for n in ulids.iter().chain(&legacy) {
            all.push(n);
        }
        all.sort();
        assert_eq!(all.ulids.len(), 3);
        assert_eq!(all.short_id(ulids[0]), "01ABCDEFGHJK0");
        // Shares 26 characters with a legacy name, case-insensitively.
        assert_eq!(all.short_id(ulids[1]), ulids[1]);
        assert_eq!(all.short_id(ulids[2]), "01ZZZZZZZZ");
        assert_eq!(all.short_id(legacy[0]), "01abcdefghjkm000000000000b-");
        assert_eq!(all.short_id("legacy-one"), "legacy-one");
        assert_eq!(all.short_id("LEGACY-ONE-X"), "LEGACY-ONE-");
        // Equal but for case: no prefix tells them apart.
        assert_eq!(all.short_id("mixed"), "mixed");
        assert_eq!(all.short_id("MIXED"), "MIXED");
        // Newest first: ULIDs descending, then legacy names descending.
        let order: Vec<&str> = all.oldest_first().rev().collect();
        assert_eq!(&order[..3], &[ulids[2], ulids[1], ulids[0]]);
        assert_eq!(order.len(), 8);
        assert_eq!(order[7], legacy[0]);
        // Against the obvious quadratic definition.
        let every: Vec<&str> = all.oldest_first().collect();
        for n in &every {
            let longest = every
                .iter()
                .filter(|o| *o != n)
                .map(|o| {
                    o.bytes()
                        .zip(n.bytes())
                        .take_while(|(a, b)| a.eq_ignore_ascii_case(b))
                        .count()
                        + usize::from(o.eq_ignore_ascii_case(n))
                })
                .max()
                .unwrap_or(0);
            let want = &n[..(longest + 1).max(SHORT_ID_MIN).min(n.len())];
            assert_eq!(all.short_id(n), want, "{n}");
        }
    }

    #[test]
    fn absolutize_is_lexical() {
        let p = absolutize(Path::new("./a/./b"));
        assert!(p.is_absolute());
        assert!(p.ends_with("a/b"));
        assert_eq!(absolutize(Path::new("/x/./y")), PathBuf::from("/x/y"));
    }
}
