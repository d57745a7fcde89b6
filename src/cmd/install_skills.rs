//! `install-skills [--claude] [--global]`: write the agent-exec skill
//! embedded in this binary and record it in `.skill-lock.json`.
//!
//! Layout: base B = `.agents` (or `.claude` with `--claude`) under the
//! current directory (or `$HOME` with `--global`); the skill goes to
//! `B/skills/agent-exec/` (SKILL.md and references/), the lock file is
//! `B/.skill-lock.json`: `{"skills": [{name, source_type, installed_at,
//! path}, ...]}`, pretty JSON with no trailing newline.
//!
//! Invariants
//! - Every file, the lock file included, is written atomically (temp file
//!   and rename), so a crash never leaves half a file; then made 0644.
//! - Our entry (`name == "agent-exec"`) is replaced in place, or appended;
//!   every other entry and top-level key is kept, including entries we do
//!   not understand. The legacy map form `{"skills": {"<name>": {...}}}`
//!   is read (the key becomes `name`) and written back as the array form,
//!   without the values that lack any of the four fields (as 0.2.3).
//! - A lock file that is not JSON, or whose `skills` is neither an array
//!   nor a map, is treated as empty, as 0.2.3 does (D26: the same lock
//!   format, so the same reading of it): the skill is installed and the
//!   lock written anew, with a warning on stderr naming what was
//!   replaced. Refusing it left a tool that shares the lock file with no
//!   way forward short of deleting the file by hand.
//!
//! Rejected: 0.2.3's plain writes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::output::{Output, Response};
use crate::store;

const NAME: &str = "agent-exec";
const SOURCE_TYPE: &str = "embedded";
const LOCK_FILE: &str = ".skill-lock.json";

/// The skill, relative to `B/skills/agent-exec/`.
const FILES: &[(&str, &str)] = &[
    ("SKILL.md", include_str!("../../skills/agent-exec/SKILL.md")),
    (
        "references/cli-contract.md",
        include_str!("../../skills/agent-exec/references/cli-contract.md"),
    ),
    (
        "references/completion-events.md",
        include_str!("../../skills/agent-exec/references/completion-events.md"),
    ),
    (
        "references/integration-guide.md",
        include_str!("../../skills/agent-exec/references/integration-guide.md"),
    ),
];

#[derive(Serialize)]
struct Installed {
    name: &'static str,
    source_type: &'static str,
    path: String,
}

#[derive(Serialize)]
struct Body {
    skills: Vec<Installed>,
    global: bool,
    lock_file_path: String,
}

/// A lock entry in the documented shape; unknown keys ride along.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Entry {
    name: String,
    source_type: String,
    installed_at: String,
    path: String,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// An entry we understand, or one we keep untouched.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(untagged)]
enum Item {
    Entry(Entry),
    Other(Value),
}

impl Item {
    fn name(&self) -> Option<&str> {
        match self {
            Item::Entry(e) => Some(&e.name),
            Item::Other(v) => v.get("name").and_then(Value::as_str),
        }
    }
}

#[derive(Serialize, Debug)]
struct Lock {
    skills: Vec<Item>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Read `text` as a lock file (array or legacy map form).
fn parse_lock(text: &str) -> std::result::Result<Lock, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(mut top) = v else {
        return Err("expected a JSON object".into());
    };
    let skills = match top.remove("skills") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.into_iter().map(item).collect(),
        // A legacy value is kept only as a whole entry: written back in
        // the array form, a partial one would make a reader that needs
        // all four fields (0.2.3's) reject the whole file.
        Some(Value::Object(map)) => map
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::Object(mut o) => {
                    o.insert("name".into(), Value::String(k));
                    serde_json::from_value::<Entry>(Value::Object(o))
                        .ok()
                        .map(Item::Entry)
                }
                _ => None,
            })
            .collect(),
        Some(_) => return Err("\"skills\" is neither an array nor an object".into()),
    };
    Ok(Lock { skills, extra: top })
}

fn item(v: Value) -> Item {
    serde_json::from_value::<Entry>(v.clone()).map_or(Item::Other(v), Item::Entry)
}

/// The most of a lock file read: more is not a skill lock file.
const LOCK_MAX: u64 = 4 << 20;

fn read_lock(path: &Path) -> Result<Lock> {
    // A FIFO or device where the lock file goes is refused as a
    // directory there is (a FIFO blocked the read for ever), and never
    // opened in a way that waits: `read_bounded` opens without blocking
    // and checks it is a regular file before reading a byte.
    if let Ok(m) = fs::metadata(path) {
        if !m.is_file() && !m.is_dir() {
            return Err(Error::UnsafePath(format!(
                "read {}: refusing a FIFO, socket or device where a file should be",
                path.display()
            )));
        }
    }
    let text = match crate::sys::read_bounded(path, LOCK_MAX) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        // Too large to be a skill lock file: as one that does not parse,
        // treated as empty and written anew, with a warning.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            crate::warn!(
                "{}: not a skill lock file ({e}); treated as empty and written anew",
                path.display()
            );
            return Ok(Lock {
                skills: Vec::new(),
                extra: Map::new(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Lock {
                skills: Vec::new(),
                extra: Map::new(),
            })
        }
        // A directory where the lock file goes is no lock file: refused
        // as a non-file where a file should be, as an `.agents` that is
        // a file is.
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) || std::path::Path::is_dir(path) => {
            return Err(Error::UnsafePath(format!(
                "read {}: refusing a directory where a file should be",
                path.display()
            )))
        }
        Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
    };
    if text.trim().is_empty() {
        return Ok(Lock {
            skills: Vec::new(),
            extra: Map::new(),
        });
    }
    Ok(parse_lock(&text).unwrap_or_else(|why| {
        crate::warn!(
            "{}: not a skill lock file ({why}); treated as empty and written anew",
            path.display()
        );
        Lock {
            skills: Vec::new(),
            extra: Map::new(),
        }
    }))
}

/// Replace our entry in place, or append it.
fn upsert(lock: &mut Lock, entry: Entry) {
    match lock.skills.iter_mut().find(|i| i.name() == Some(NAME)) {
        Some(slot) => *slot = Item::Entry(entry),
        None => lock.skills.push(Item::Entry(entry)),
    }
}

fn mkdirs(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| {
        // Something that is not a directory (a file, a FIFO, a dangling
        // symlink) where one of ours goes, or above it (ENOTDIR): refused
        // as a file where its directory goes always was (it read "File
        // exists", io_error), naming it.
        if e.kind() == std::io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::ENOTDIR)
        {
            Error::UnsafePath(format!(
                "create {}: refusing {}: a file or symlink where a directory should be",
                dir.display(),
                blocking(dir).display()
            ))
        } else {
            Error::io(format!("create {}", dir.display()), e)
        }
    })
}

/// The first of `dir` and its ancestors that is there but is no
/// directory (what `create_dir_all` met): the error names it, not the
/// directory that was to be made below it.
fn blocking(dir: &Path) -> &Path {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|a| fs::symlink_metadata(a).is_ok() && !a.is_dir())
        .unwrap_or(dir)
}

/// Atomic write, then the usual 0644 of a document (write_atomic makes
/// 0600 files, right for job data but not for a shared skill).
fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    mkdirs(dir)?;
    let dir = real_dir(dir);
    store::write_atomic(&dir, &name, bytes, durable).map_err(|e| {
        if e.raw_os_error() == Some(libc::EISDIR) {
            // A directory where one of our files goes (the rename over it
            // fails): refused as one in the lock file's place is.
            Error::UnsafePath(format!(
                "write {}: refusing a directory where a file should be",
                path.display()
            ))
        } else {
            Error::io(format!("write {}", path.display()), e)
        }
    })?;
    fs::set_permissions(dir.join(&name), fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// The directory a path names, its symlinks resolved. The base is the
/// user's own (`~/.claude` is often a link into a dotfiles checkout),
/// not a jobs root: a link there is followed for every file alike.
/// `write_atomic` refuses a directory that is itself a symlink, which
/// had written the skill through a linked `~/.claude` and then refused
/// its lock file, leaving the install half done.
fn real_dir(dir: &Path) -> PathBuf {
    fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn base_dir(global: bool, claude: bool) -> Result<PathBuf> {
    let parent = if global {
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(h) => store::absolutize(Path::new(&h)),
            // The caller's environment, not a bug: said as a usage error.
            None => {
                return Err(Error::usage(
                    "install-skills --global needs HOME, which is unset or empty",
                ))
            }
        }
    } else {
        std::env::current_dir().map_err(|e| Error::io("current directory", e))?
    };
    // The answer names the files it wrote: a path it could only show
    // lossily (as one that does not exist) is refused, as a jobs root
    // the environment names in such bytes is.
    if parent.to_str().is_none() {
        let whose = if global {
            "HOME"
        } else {
            "the current directory"
        };
        return Err(Error::usage(format!(
            "{whose} is not valid UTF-8, and the paths install-skills reports must be: {}",
            parent.display()
        )));
    }
    Ok(parent.join(if claude { ".claude" } else { ".agents" }))
}

pub fn exec(m: &Matches) -> Result<Output> {
    let global = m.has("global");
    let base = base_dir(global, m.has("claude"))?;
    let skill_dir = base.join("skills").join(NAME);
    let lock_path = base.join(LOCK_FILE);
    // Read first: one that cannot be read at all stops us before any write.
    let mut lock = read_lock(&lock_path)?;
    for (rel, text) in FILES {
        write_file(&skill_dir.join(rel), text.as_bytes(), false)?;
    }
    let path = skill_dir.to_string_lossy().into_owned();
    upsert(
        &mut lock,
        Entry {
            name: NAME.into(),
            source_type: SOURCE_TYPE.into(),
            installed_at: crate::time::now_ts(),
            path: path.clone(),
            extra: Map::new(),
        },
    );
    let json = serde_json::to_string_pretty(&lock)
        .map_err(|e| Error::internal(format!("serialize lock file: {e}")))?;
    write_file(&lock_path, json.as_bytes(), true)?;
    let body = Body {
        skills: vec![Installed {
            name: NAME,
            source_type: SOURCE_TYPE,
            path,
        }],
        global,
        lock_file_path: lock_path.to_string_lossy().into_owned(),
    };
    Ok(Output::Doc(Response::new("install_skills", &body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            source_type: SOURCE_TYPE.into(),
            installed_at: "2026-01-01T00:00:00Z".into(),
            path: "/p".into(),
            extra: Map::new(),
        }
    }

    #[test]
    fn keeps_what_it_does_not_understand() {
        let mut lock = parse_lock(
            r#"{"version": 2, "skills": [{"name": "x", "odd": true}, {"name": "agent-exec", "source_type": "embedded", "installed_at": "old", "path": "/old", "hash": "h"}]}"#,
        )
        .unwrap();
        upsert(&mut lock, entry(NAME));
        let out = serde_json::to_string(&lock).unwrap();
        assert_eq!(
            out,
            r#"{"skills":[{"name":"x","odd":true},{"name":"agent-exec","source_type":"embedded","installed_at":"2026-01-01T00:00:00Z","path":"/p"}],"version":2}"#
        );
    }

    #[test]
    fn legacy_map_and_refusals() {
        let lock = parse_lock(
            r#"{"skills": {"other": {"source_type": "git", "installed_at": "t", "path": "/o"}}}"#,
        )
        .unwrap();
        assert_eq!(lock.skills.len(), 1);
        assert_eq!(lock.skills[0].name(), Some("other"));
        let partial = parse_lock(r#"{"skills": {"bar": {"source_type": "x"}}}"#).unwrap();
        assert!(partial.skills.is_empty());
        assert!(parse_lock("[1]").is_err());
        assert!(parse_lock("{not json").is_err());
        assert!(parse_lock(r#"{"skills": 3}"#).is_err());
        assert!(parse_lock(r#"{}"#).unwrap().skills.is_empty());
    }

    #[test]
    fn skill_text_is_ours() {
        let skill = FILES[0].1;
        assert!(skill.starts_with("---\nname: agent-exec\n"));
        for (rel, _) in FILES {
            assert!(skill.contains(rel.trim_start_matches("references/")) || *rel == "SKILL.md");
        }
    }
}
