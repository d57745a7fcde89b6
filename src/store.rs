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
//! - Job directories are 0700, files 0600: logs and env may hold secrets.
//! - Every write is temp file + rename in the same directory; `durable`
//!   adds an fsync of the file before the rename.
//!
//! Rejected: 0.2.3 joined the raw argument onto the root (`delete ..`
//! removed the root's parent); its 32-hex random ids do not sort.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::job::{Job, META};

/// Ambiguity reports list at most this many candidates.
pub const MAX_CANDIDATES: usize = 20;
/// Abbreviated ids are never shorter than this.
pub const SHORT_ID_MIN: usize = 10;

#[derive(Clone, Debug)]
pub struct Store {
    pub root: PathBuf,
}

fn env_nonempty(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
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

impl Store {
    /// `--root` > `AGENT_EXEC_ROOT` > `$XDG_DATA_HOME/agent-exec/jobs` >
    /// `$HOME/.local/share/agent-exec/jobs`.
    pub fn resolve(flag: Option<&str>) -> Store {
        let raw = flag
            .map(PathBuf::from)
            .or_else(|| env_nonempty("AGENT_EXEC_ROOT").map(PathBuf::from))
            .or_else(|| {
                env_nonempty("XDG_DATA_HOME").map(|x| Path::new(&x).join("agent-exec/jobs"))
            })
            .or_else(|| {
                env_nonempty("HOME").map(|h| Path::new(&h).join(".local/share/agent-exec/jobs"))
            })
            .unwrap_or_else(|| PathBuf::from(".agent-exec/jobs"));
        Store {
            root: absolutize(&raw),
        }
    }

    pub fn display(&self) -> String {
        self.root.to_string_lossy().into_owned()
    }

    pub fn job(&self, id: &str) -> Job {
        Job::new(id, self.root.join(id))
    }

    /// `mkdir -p` the root; new directories are 0700.
    pub fn ensure_root(&self) -> Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| Error::io(format!("create jobs root {}", self.root.display()), e))
    }

    /// Create a fresh job directory with a new ULID.
    pub fn create_job(&self) -> Result<Job> {
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

    /// Names of the directories in the root that can be job directories
    /// (valid id shape), unsorted. A missing root has none. Symlinks are
    /// not job directories.
    pub fn job_names(&self) -> Result<Vec<String>> {
        let entries = match crate::sys::list_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    format!("failed to read root directory {}", self.root.display()),
                    e,
                ))
            }
        };
        Ok(entries
            .into_iter()
            .filter(|(n, kind)| {
                valid_id(n)
                    && match kind {
                        crate::sys::EntryKind::Dir => true,
                        crate::sys::EntryKind::Other => false,
                        crate::sys::EntryKind::Unknown => {
                            fs::symlink_metadata(self.root.join(n)).is_ok_and(|m| m.is_dir())
                        }
                    }
            })
            .map(|(n, _)| n)
            .collect())
    }

    /// Resolve a full id or a unique case-insensitive prefix.
    pub fn lookup(&self, arg: &str) -> Result<Job> {
        if !valid_id(arg) {
            return Err(Error::JobNotFound(arg.to_string()));
        }
        let upper = arg.to_ascii_uppercase();
        for cand in [arg, upper.as_str()] {
            let dir = self.root.join(cand);
            if dir.join(META).is_file() {
                return Ok(Job::new(cand, dir));
            }
        }
        let mut found: Vec<String> = self
            .job_names()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.len() >= arg.len() && n[..arg.len()].eq_ignore_ascii_case(arg))
            .filter(|n| self.root.join(n).join(META).is_file())
            .collect();
        found.sort();
        match found.len() {
            0 => Err(Error::JobNotFound(arg.to_string())),
            1 => {
                let id = found.remove(0);
                Ok(self.job(&id))
            }
            n => {
                found.truncate(MAX_CANDIDATES);
                Err(Error::AmbiguousJobId {
                    prefix: arg.to_string(),
                    candidates: found,
                    truncated: n > MAX_CANDIDATES,
                })
            }
        }
    }
}

/// Could `s` name a job directory? Checked before any file-system access.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s != "."
        && s != ".."
        && !s.starts_with('.')
        && !s
            .bytes()
            .any(|b| b == b'/' || b == b'\\' || b == 0 || b.is_ascii_control())
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
pub fn is_ulid(id: &str) -> bool {
    id.len() == 26
        && id.as_bytes()[0] <= b'7'
        && id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'H' | b'J' | b'K' | b'M' | b'N' | b'P'..=b'T' | b'V'..=b'Z'))
}

/// Milliseconds since the epoch encoded in a ULID id, if it is one.
pub fn id_time_ms(id: &str) -> Option<u64> {
    if id.len() != 26 {
        return None;
    }
    ulid::Ulid::from_string(id).ok().map(|u| u.timestamp_ms())
}

/// Case-insensitive order of ids, without allocating.
pub fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    a.bytes()
        .map(|c| c.to_ascii_uppercase())
        .cmp(b.bytes().map(|c| c.to_ascii_uppercase()))
}

/// For each name (sorted ascending by `cmp_ids`, case-insensitively
/// unique), the shortest prefix of at least `SHORT_ID_MIN` chars that no
/// other name shares — like git's abbreviated hashes.
pub fn short_ids(sorted: &[String]) -> Vec<String> {
    let lcp = |a: &str, b: &str| {
        a.bytes()
            .zip(b.bytes())
            .take_while(|(x, y)| x.eq_ignore_ascii_case(y))
            .count()
    };
    (0..sorted.len())
        .map(|i| {
            let name = &sorted[i];
            let mut need = SHORT_ID_MIN;
            if i > 0 {
                need = need.max(lcp(name, &sorted[i - 1]) + 1);
            }
            if i + 1 < sorted.len() {
                need = need.max(lcp(name, &sorted[i + 1]) + 1);
            }
            name[..need.min(name.len())].to_string()
        })
        .collect()
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Open (creating it 0600 if needed) a file that is only ever flock'ed:
/// a job's `lock` or `meta.lock`, the root's `.gc.lock`.
pub fn open_lock(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// Make an already renamed `dir/name` durable: fsync the file, then the
/// directory (for the rename). Best effort: the data is already visible.
pub fn sync_file(dir: &Path, name: &str) {
    if let Ok(f) = fs::File::open(dir.join(name)) {
        let _ = f.sync_all();
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write `data` to `dir/name` atomically: a 0600 temp file in the same
/// directory, then rename over the target.
pub fn write_atomic(dir: &Path, name: &str, data: &[u8], durable: bool) -> io::Result<()> {
    let seq = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".tmp-{name}-{}-{seq}", std::process::id()));
    let res = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(name))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
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
        Store { root }
    }

    fn make_job(s: &Store, id: &str) {
        let d = s.root.join(id);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(META), "{}").unwrap();
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
                candidates,
                truncated,
                ..
            } => {
                assert_eq!(candidates.len(), 2);
                assert!(!truncated);
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
                candidates,
                truncated,
                ..
            } => {
                assert_eq!(candidates.len(), MAX_CANDIDATES);
                assert!(truncated);
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
    fn short_ids_are_unique_and_at_least_ten() {
        let names: Vec<String> = vec![
            "01ABCDEFGHIJ0000000000000A".into(),
            "01ABCDEFGHIJK000000000000B".into(),
            "01ZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
        ];
        let s = short_ids(&names);
        assert_eq!(s[0], "01ABCDEFGHIJ0");
        assert_eq!(s[1], "01ABCDEFGHIJK");
        assert_eq!(s[2], "01ZZZZZZZZ");
    }

    #[test]
    fn absolutize_is_lexical() {
        let p = absolutize(Path::new("./a/./b"));
        assert!(p.is_absolute());
        assert!(p.ends_with("a/b"));
        assert_eq!(absolutize(Path::new("/x/./y")), PathBuf::from("/x/y"));
    }
}
