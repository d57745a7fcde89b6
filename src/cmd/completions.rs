//! Shell completion: `completions bash|zsh|fish|powershell` prints a small script,
//! and the hidden `__complete` subcommand computes every candidate from
//! the flag table (`cli::COMMANDS`) and the jobs root.
//!
//! Protocol of `agent-exec __complete -- WORD...`
//! - The words are those of the command line after `agent-exec`, up to
//!   and including the word under the cursor (possibly empty). A word
//!   `--flag=value` is one word (the bash script re-joins what bash split
//!   at `=`).
//! - Output is plain text, one candidate per line, already filtered by
//!   the typed prefix; nothing at all when there is nothing to offer.
//!   Instead of candidates, a single directive line may ask the shell to
//!   complete by itself: `:files`, `:dirs` (file or directory names for
//!   the current word, after any `--flag=`), or `:commands` (the first
//!   word of a job's command). No candidate starts with `:`.
//! - `agent-exec __complete -- :describe WORD...` answers the same, but a
//!   candidate with something to say is `candidate<TAB>help`: a flag's
//!   `Flag.help`, a subcommand's `about`. Values and job ids stay bare.
//!   zsh, fish and PowerShell ask for this; bash cannot show it. No
//!   subcommand starts with `:`, so a line really starting `:describe`
//!   could only have completed nothing: the marker shadows no answer, and
//!   scripts installed before it existed keep working unchanged.
//! - Job ids are offered only where a positional takes a job id
//!   (`Pos::jobs`), never as a flag's value; only jobs whose `meta.json`
//!   cwd is the canonical current directory, in the root named by
//!   `--root` on the line or else the usual resolution; filtered by state
//!   (`JobFilter`). A `running` job whose supervisor is gone (its lock is
//!   free) counts as failed, as `status` would report it; the probe never
//!   writes a job's files.
//!
//! Invariants
//! - Completion is only ever this hidden subcommand: no environment
//!   variable turns an ordinary invocation into completion output (D24).
//! - Cheap on a large root: names are filtered by prefix before any file
//!   is read. What never changes about a job (its cwd; a terminal state)
//!   is kept in `<root>/.cache/complete`, a derived file any completion
//!   may rebuild, so a root of finished jobs costs one directory listing
//!   and one file read. Otherwise: one small `meta.json` read per new
//!   job, and `state.json` only when a state filter applies to a job of
//!   this directory that was not yet terminal.
//! - Scripts call back the command word the user typed (so a binary off
//!   PATH works) and never embed an absolute path at generation time.
//!
//! Rejected: baking the table into four shell scripts (four generators
//! to keep in step, and none of them testable from Rust); clap's
//! `COMPLETE=<shell>` hook (an exported variable hijacks every command);
//! always appending descriptions (an already installed bash or zsh script
//! would offer `--flag<TAB>help` as the candidate); a `--describe` flag on
//! `__complete` (its flags belong to the table in cli.rs, and a positional
//! marker needs no parser change).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use serde::Deserialize;

use crate::cli::{self, Cmd, Flag, JobFilter, Kind, Matches, Ty, COMMANDS, GLOBAL_FLAGS};
use crate::error::{Error, Result};
use crate::job::{Status, LOCK, META, STATE};
use crate::output::Output;
use crate::store::{root_stamp, RootStamp, Store, CACHE_DIR};
use crate::sys;

pub fn exec(m: &Matches) -> Result<Output> {
    let script = match m.pos(0).unwrap_or_default() {
        "bash" => BASH,
        "zsh" => ZSH,
        "fish" => FISH,
        "powershell" => POWERSHELL,
        other => return Err(Error::usage(format!("unsupported shell '{other}'"))),
    };
    Ok(Output::Text(script.to_string()))
}

pub fn exec_complete(m: &Matches) -> Result<Output> {
    let mut words: Vec<&str> = m.rest.iter().map(String::as_str).collect();
    let describe = words.first() == Some(&DESCRIBE);
    if describe {
        words.remove(0);
    }
    let lines = match complete(&words, m.root.as_deref()) {
        Want::Words(w) => w.into_iter().map(|c| c.line(describe)).collect(),
        Want::Files => vec![":files".to_string()],
        Want::Dirs => vec![":dirs".to_string()],
        Want::Commands => vec![":commands".to_string()],
    };
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    Ok(Output::Text(text))
}

pub fn exec_gen_man(m: &Matches) -> Result<Output> {
    crate::man::exec_gen_man(m)
}

/// The first word that asks `__complete` for descriptions.
const DESCRIBE: &str = ":describe";

/// One candidate, and what it is for (empty: nothing to say).
#[derive(Debug, PartialEq, Eq)]
pub struct Cand {
    pub word: String,
    pub help: &'static str,
}

impl Cand {
    fn bare(word: String) -> Cand {
        Cand { word, help: "" }
    }

    /// Its protocol line: the word, then `TAB help` when described.
    fn line(self, describe: bool) -> String {
        if !describe || self.help.is_empty() {
            return self.word;
        }
        let help: String = self
            .help
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{}\t{help}", self.word)
    }
}

/// What the shell should offer for the current word.
#[derive(Debug, PartialEq, Eq)]
pub enum Want {
    Words(Vec<Cand>),
    Files,
    Dirs,
    Commands,
}

/// Where the scan of the earlier words left us.
#[derive(Default)]
struct Line<'a> {
    root: Option<&'a str>,
    cmd: Option<&'static Cmd>,
    group: Option<&'a str>,
    help: bool,
    unknown: bool,
    positionals: usize,
    /// Words of the job's trailing command seen so far (None: not in it).
    rest_words: Option<usize>,
    after_dd: bool,
    seen: Vec<&'static str>,
    /// A flag whose value is the current word.
    pending: Option<&'static Flag>,
}

fn flag_named(cmd: Option<&'static Cmd>, name: &str) -> Option<&'static Flag> {
    cmd.and_then(|c| c.flag(name))
        .or_else(|| GLOBAL_FLAGS.iter().find(|f| f.long == name))
}

/// A boolean as the parser takes one after an optional-value flag
/// (`--wait 0` too).
fn is_bool_word(w: &str) -> bool {
    crate::cli::switch_value(w).is_some()
}

/// Walk the words before the cursor the way `cli::parse` would.
fn scan<'a>(before: &[&'a str]) -> Line<'a> {
    let mut l = Line::default();
    let mut i = 0;
    while i < before.len() {
        let w = before[i];
        i += 1;
        if let Some(n) = l.rest_words.as_mut() {
            *n += 1;
            continue;
        }
        let takes_rest = |l: &Line| {
            l.cmd
                .and_then(|c| c.pos.get(l.positionals))
                .is_some_and(|p| p.rest)
        };
        if !l.after_dd && w == "--" {
            l.after_dd = true;
            if takes_rest(&l) {
                l.rest_words = Some(0);
            }
            continue;
        }
        if !l.after_dd && w.starts_with("--") {
            let (name, inline) = match w[2..].split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (&w[2..], None),
            };
            let Some(flag) = flag_named(l.cmd, name) else {
                continue;
            };
            l.seen.push(flag.long);
            let next = before.get(i).copied();
            let value = match (flag.kind, inline) {
                (_, Some(v)) => Some(v),
                (Kind::Switch, None) => None,
                (Kind::OptBool, None) => match next {
                    Some(n) if is_bool_word(n) => {
                        i += 1;
                        Some(n)
                    }
                    None => {
                        l.pending = Some(flag);
                        None
                    }
                    Some(_) => None,
                },
                (Kind::Value(_), None) => match next {
                    Some(n) if !n.starts_with("--") => {
                        i += 1;
                        Some(n)
                    }
                    Some(_) => None,
                    None => {
                        l.pending = Some(flag);
                        None
                    }
                },
            };
            if flag.long == "root" {
                if let Some(v) = value {
                    l.root = Some(v);
                }
            }
            continue;
        }
        if !l.after_dd && w.starts_with('-') && w.len() > 1 {
            continue; // -v, -vv, -h: no values
        }
        match l.cmd {
            None if l.unknown => {}
            None if l.help => {
                if l.group.is_none() && is_group(w) {
                    l.group = Some(w);
                }
            }
            None => {
                if let Some(g) = l.group {
                    l.cmd = cli::find(&format!("{g} {w}"));
                    l.unknown = l.cmd.is_none();
                } else if w == "help" {
                    l.help = true;
                } else if is_group(w) {
                    l.group = Some(w);
                } else {
                    l.cmd = cli::find(w);
                    l.unknown = l.cmd.is_none();
                }
            }
            Some(_) if takes_rest(&l) => l.rest_words = Some(1),
            Some(_) => l.positionals += 1,
        }
    }
    l
}

fn is_group(word: &str) -> bool {
    COMMANDS
        .iter()
        .any(|c| !c.hidden && c.name.split_once(' ').is_some_and(|(g, _)| g == word))
}

/// Candidates for the last word of `words` (the one under the cursor).
/// `root` is a `--root` given to `__complete` itself; one on the line
/// wins.
pub fn complete(words: &[&str], root: Option<&str>) -> Want {
    let (cur, before) = match words.split_last() {
        Some((c, b)) => (*c, b),
        None => ("", &[][..]),
    };
    let mut l = scan(before);
    l.root = l.root.or(root);
    if l.unknown || l.cmd.is_some_and(|c| c.hidden) {
        return Want::Words(Vec::new());
    }
    if let Some(n) = l.rest_words {
        return if n == 0 { Want::Commands } else { Want::Files };
    }
    if let Some(flag) = l.pending {
        // As in `cli::parse`, a word starting with `--` is never a value.
        if !cur.starts_with("--") {
            return values(flag, "", cur, l.root);
        }
    }
    if !l.after_dd && cur.starts_with('-') {
        if let Some((name, v)) = cur.strip_prefix("--").and_then(|s| s.split_once('=')) {
            return match flag_named(l.cmd, name) {
                Some(f) if f.takes_value() || f.kind == Kind::OptBool => {
                    values(f, &cur[..name.len() + 3], v, l.root)
                }
                _ => Want::Words(Vec::new()),
            };
        }
        return Want::Words(flags(&l, cur));
    }
    let Some(cmd) = l.cmd else {
        return Want::Words(subcommands(&l, cur));
    };
    // A command that takes several ids (`wait A B`, `delete A B`) goes
    // on offering them after the first, less those already given.
    let pos = cmd
        .pos
        .get(l.positionals)
        .or_else(|| cmd.pos.last().filter(|p| p.many));
    match pos {
        Some(p) if p.rest => Want::Commands,
        // `delete --all` takes no id (`delete` refuses both).
        Some(p) if p.jobs.is_some() && cmd.name == "delete" && l.seen.contains(&"all") => {
            Want::Words(Vec::new())
        }
        Some(p) => {
            if let Some(filter) = p.jobs {
                let ids = job_ids(filter, cur, l.root);
                let named = if p.many {
                    given(before, &ids)
                } else {
                    Vec::new()
                };
                Want::Words(
                    ids.iter()
                        .filter(|id| !named.contains(id))
                        .cloned()
                        .map(Cand::bare)
                        .collect(),
                )
            } else {
                Want::Words(prefixed(p.values.iter().copied(), cur))
            }
        }
        None => Want::Words(Vec::new()),
    }
}

/// The ids among `ids` that a word already on the line names: in full,
/// or by a prefix that only it has (as lookup takes one; an ambiguous
/// prefix names none).
fn given<'a>(before: &[&str], ids: &'a [String]) -> Vec<&'a String> {
    before
        .iter()
        .filter(|w| !w.is_empty() && !w.starts_with('-'))
        .filter_map(|w| {
            let mut named = ids.iter().filter(|id| completes(id, w));
            match (named.next(), named.next()) {
                (Some(id), None) => Some(id),
                _ => ids.iter().find(|id| id.eq_ignore_ascii_case(w)),
            }
        })
        .collect()
}

fn prefixed<'a>(items: impl Iterator<Item = &'a str>, cur: &str) -> Vec<Cand> {
    items
        .filter(|s| s.starts_with(cur))
        .map(|s| Cand::bare(s.to_string()))
        .collect()
}

/// The value of `flag`: `pre` is the `--flag=` already typed in the word.
fn values(flag: &Flag, pre: &str, cur: &str, root: Option<&str>) -> Want {
    let words: Vec<Cand> = match flag.kind {
        Kind::Switch => Vec::new(),
        Kind::OptBool => prefixed(["true", "false"].into_iter(), cur),
        Kind::Value(Ty::Path) if flag.meta == "DIR" || flag.long == "root" => return Want::Dirs,
        Kind::Value(Ty::Path) => return Want::Files,
        Kind::Value(Ty::Choice) => prefixed(flag.choices.iter().copied(), cur),
        Kind::Value(Ty::Signal) => {
            // Bare names (TERM); SIG-prefixed ones once "S", "SI"... is typed.
            let up = cur.to_ascii_uppercase();
            let with_sig = !up.is_empty() && ("SIG".starts_with(&up) || up.starts_with("SIG"));
            let bare = sys::signal_names().map(str::to_string);
            let sig = sys::signal_names()
                .filter(|_| with_sig)
                .map(|n| format!("SIG{n}"));
            bare.chain(sig)
                .filter(|n| n.starts_with(&up))
                .map(Cand::bare)
                .collect()
        }
        // `--after JOB_ID`, `--after-ok JOB_ID`: any job may be waited
        // for, whichever directory it ran in (no `here`: every job is
        // one of "the others", all offered).
        Kind::Value(_) if flag.meta == "JOB_ID" => job_ids_found(JobFilter::All, cur, root, None)
            .pick()
            .into_iter()
            .map(Cand::bare)
            .collect(),
        Kind::Value(_) => Vec::new(),
    };
    Want::Words(
        words
            .into_iter()
            .map(|c| Cand {
                word: format!("{pre}{}", c.word),
                ..c
            })
            .collect(),
    )
}

fn flags(l: &Line, cur: &str) -> Vec<Cand> {
    let own: &[Flag] = l.cmd.map_or(&[], |c| c.flags);
    let top = l.cmd.is_none() && l.group.is_none() && !l.help;
    own.iter()
        .chain(GLOBAL_FLAGS.iter())
        .filter(|f| f.long != "version" || top)
        .filter(|f| f.multi || f.long == "verbose" || !l.seen.contains(&f.long))
        .flat_map(|f| {
            // The second name (`--lines`) too, as help shows and the
            // parser takes it; the short form (`-f`) once a lone `-` is
            // typed (`--` asks for the long ones only).
            let also = f.also.map(|a| Cand {
                word: format!("--{a}"),
                help: f.help,
            });
            let short = f.short.map(|c| Cand {
                word: format!("-{c}"),
                help: f.help,
            });
            std::iter::once(Cand {
                word: format!("--{}", f.long),
                help: f.help,
            })
            .chain(also)
            .chain(short)
        })
        .filter(|c| c.word.starts_with(cur))
        .collect()
}

/// Subcommand words, described by their `about` (a group word by its
/// first member's, which names the group's purpose well enough).
fn subcommands(l: &Line, cur: &str) -> Vec<Cand> {
    let visible = || COMMANDS.iter().filter(|c| !c.hidden);
    let mut out: Vec<Cand> = Vec::new();
    let mut add = |s: &str, help: &'static str| {
        if s.starts_with(cur) && !out.iter().any(|o| o.word == s) {
            out.push(Cand {
                word: s.to_string(),
                help,
            });
        }
    };
    match l.group {
        Some(g) => {
            for c in visible() {
                if let Some(rest) = c.name.strip_prefix(g).and_then(|r| r.strip_prefix(' ')) {
                    add(rest, c.about);
                }
            }
        }
        None => {
            for c in visible() {
                add(c.name.split(' ').next().unwrap_or(c.name), c.about);
                if let Some(a) = c.alias {
                    add(a, c.about);
                }
            }
            if !l.help {
                add("help", "Show help for agent-exec or a subcommand");
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Job ids
// ---------------------------------------------------------------------------

#[derive(Deserialize)]
struct CwdOnly {
    #[serde(default)]
    cwd: Option<String>,
}

#[derive(Deserialize)]
struct StatusOnly {
    job: JobStatusOnly,
}

#[derive(Deserialize)]
struct JobStatusOnly {
    status: Option<Status>,
}

/// Read a small file into `buf` with as few system calls as possible
/// (open, read, close): `read_to_end` adds a stat and a seek per file,
/// which is a third of the cost on a root of a thousand jobs. A short
/// read of a regular file means end of file.
fn read_into(path: &Path, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    let mut len = 0;
    loop {
        if buf.len() < len + 4096 {
            buf.resize(len + 4096, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    buf.truncate(len);
    true
}

/// `~/x` as the shell would have expanded it when running the command.
fn expand_home(p: &str) -> std::borrow::Cow<'_, str> {
    match (p.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if !home.is_empty() => format!("{home}/{rest}").into(),
        _ if p == "~" => std::env::var("HOME").unwrap_or_default().into(),
        _ => p.into(),
    }
}

/// The state `status` would report, as far as can be told without
/// writing: a `running` job whose lock is free has lost its supervisor.
fn effective(status: Status, dir: &Path) -> Status {
    if !matches!(status, Status::Running | Status::Queued) {
        return status;
    }
    let Ok(lock) = File::open(dir.join(LOCK)) else {
        return status; // written by another tool: trust the state
    };
    match sys::try_lock_exclusive(&lock) {
        Ok(true) => {
            let _ = sys::unlock(&lock);
            Status::Failed
        }
        _ => status,
    }
}

fn admits(filter: JobFilter, s: Status) -> bool {
    match filter {
        JobFilter::All => true,
        JobFilter::Created => s == Status::Created,
        JobFilter::Waitable => matches!(s, Status::Created | Status::Queued | Status::Running),
        JobFilter::Running => s == Status::Running,
        JobFilter::Killable => matches!(s, Status::Queued | Status::Running),
        JobFilter::Terminal => s.is_terminal(),
    }
}

/// The completion cache, `<root>/.cache/complete`: what never changes
/// about a job, so that a root of a thousand jobs costs one file read
/// instead of a thousand. A job's cwd is fixed when it is defined, and a
/// terminal state is final; nothing else is cached. Lines are
/// `ID<TAB>STATUS<TAB>CWD` with STATUS `exited`, `killed`, `failed` or
/// `-` (not terminal when last read). The header also records the root's
/// inode, link count and mtime (ns) when the cache was written: job
/// directories are subdirectories, so creating or removing one changes
/// the link count and the mtime, and while all three are unchanged (and
/// the mtime is older than the cache by more than the file system's
/// coarse clock can blur) the cached names *are* the root's names and the
/// directory is not listed at all. The cache sits in a subdirectory so
/// that writing it does not touch the root's own mtime. Any doubt
/// (unreadable, other version) means an empty cache; it is rebuilt by the
/// next completion. A `restart` (or `--retry` run) makes a terminal job
/// live again: it removes this file (`runs::archive`).
pub const CACHE: &str = ".cache/complete";
const CACHE_HEADER: &str = "agent-exec complete-cache 2";
/// How much older than the cache the root's mtime must be for the cached
/// names to be trusted (mtimes come from a coarse, tick-based clock).
const MTIME_SLACK_NS: i128 = 1_000_000_000;
/// A cache larger than this is ignored (and rewritten).
const CACHE_MAX: u64 = 32 << 20;

struct Known<'a> {
    cwd: std::borrow::Cow<'a, str>,
    terminal: Option<Status>,
}

fn parse_status(s: &str) -> Option<Status> {
    match s {
        "exited" => Some(Status::Exited),
        "killed" => Some(Status::Killed),
        "failed" => Some(Status::Failed),
        _ => None,
    }
}

/// The cache's body, and whether its names are the root's complete
/// listing (written for the root as it is now, well after its last
/// change). None: not a cache of this version.
fn cache_body(text: &str, stamp: Option<RootStamp>) -> Option<(&str, bool)> {
    let (header, body) = text.split_once('\n')?;
    let mut w = header.rsplitn(5, ' ');
    let written: i128 = w.next()?.parse().ok()?;
    let mtime_ns: i128 = w.next()?.parse().ok()?;
    let nlink = w.next()?.parse().ok()?;
    let ino = w.next()?.parse().ok()?;
    if w.next()? != CACHE_HEADER {
        return None;
    }
    let cached = RootStamp {
        ino,
        nlink,
        mtime_ns,
    };
    Some((
        body,
        stamp == Some(cached) && mtime_ns + MTIME_SLACK_NS < written,
    ))
}

/// A cache line: (id, status, cwd).
fn cache_line(line: &str) -> Option<(&str, &str, &str)> {
    let mut parts = line.splitn(3, '\t');
    Some((parts.next()?, parts.next()?, parts.next()?))
}

/// Does job `name` complete the word `cur` (case-insensitively, as
/// lookup matches)? Names starting with `:` never do (bash splits there),
/// nor those that would not come back as one id: a `-` first (the line
/// would read it as a flag: a directory `-rf` was offered to `start`),
/// white space or a control character (inserted unquoted).
fn completes(name: &str, cur: &str) -> bool {
    name.len() >= cur.len()
        && name.is_char_boundary(cur.len())
        && name[..cur.len()].eq_ignore_ascii_case(cur)
        && !name.starts_with([':', '-'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The cached entries, and whether they are the root's complete listing.
fn parse_cache(text: &str, stamp: Option<RootStamp>) -> (HashMap<&str, Known<'_>>, bool) {
    let Some((body, complete)) = cache_body(text, stamp) else {
        return (HashMap::new(), false);
    };
    let known = body
        .split('\n')
        .filter_map(cache_line)
        .map(|(id, status, cwd)| {
            let terminal = parse_status(status);
            (
                id,
                Known {
                    cwd: cwd.into(),
                    terminal,
                },
            )
        })
        .collect();
    (known, complete)
}

fn write_cache(root: &Path, names: &[&str], known: &HashMap<&str, Known>) {
    // The cache's own directory first (creating it changes the root),
    // then the stamp: writing inside it leaves the root as stamped.
    let dir = root.join(CACHE_DIR);
    // 0700 like every directory of the root: the cache holds each job's
    // cwd and command.
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let Some(RootStamp {
        ino,
        nlink,
        mtime_ns,
    }) = root_stamp(root)
    else {
        return;
    };
    let mut text = String::with_capacity(96 + names.len() * 64);
    let now = crate::time::now_unix_ns();
    let _ = writeln!(text, "{CACHE_HEADER} {ino} {nlink} {mtime_ns} {now}");
    for &n in names {
        let Some(k) = known.get(n) else {
            continue;
        };
        if k.cwd.contains('\n') || n.contains('\t') {
            continue; // cannot be written as one line: read each time
        }
        let status = k.terminal.map_or("-", Status::as_str);
        let _ = writeln!(text, "{n}\t{status}\t{}", k.cwd);
    }
    // Best effort: a read-only root just stays uncached.
    let _ = crate::store::write_atomic(&dir, "complete", text.as_bytes(), false);
}

fn read_cwd(dir: &Path, buf: &mut Vec<u8>) -> Option<String> {
    if !read_into(&dir.join(META), buf) {
        return None;
    }
    match serde_json::from_slice(buf) {
        Ok(CwdOnly { cwd }) => Some(cwd.unwrap_or_default()),
        Err(_) => None,
    }
}

fn read_status(dir: &Path, buf: &mut Vec<u8>) -> Option<Status> {
    if !read_into(&dir.join(STATE), buf) {
        // The general reader decides: a job being started by `run` has no
        // state.json yet and reads as created.
        let id = dir.file_name()?.to_str()?;
        let job = crate::job::Job::new(id, dir.to_path_buf());
        return job.read_state().ok()?.job.status;
    }
    match serde_json::from_slice(buf) {
        Ok(StatusOnly {
            job: JobStatusOnly { status },
        }) => status,
        Err(_) => None,
    }
}

/// `job_ids` straight from the cache's lines, without building its map,
/// when the cache lists every job and nothing new is learned (the common
/// case, and the one that must be fast). None: take the general path.
fn from_complete_cache(
    text: &str,
    stamp: Option<RootStamp>,
    filter: JobFilter,
    cur: &str,
    here: Option<&str>,
    store: &Store,
) -> Option<Found> {
    let (body, true) = cache_body(text, stamp)? else {
        return None;
    };
    let mut out = Found::default();
    for line in body.split_terminator('\n') {
        let (name, status, cwd) = cache_line(line)?;
        let mine = here == Some(cwd);
        if !completes(name, cur) || !out.wants(mine) {
            continue;
        }
        if filter != JobFilter::All {
            let dir = store.root.join(name);
            let status = match parse_status(status) {
                Some(s) => s,
                None => {
                    let s = read_status(&dir, &mut Vec::new())?;
                    if s.is_terminal() {
                        return None; // learned: the general path records it
                    }
                    s
                }
            };
            if !admits(filter, effective(status, &dir)) {
                continue;
            }
        }
        out.push(name, mine);
    }
    Some(out)
}

/// Ids of this directory's jobs that start with `cur` (case-insensitive,
/// as lookup is) and pass `filter`, sorted; when none of this directory
/// does, those of the whole root (the README: every known job id can be
/// completed; this directory's come first because they are what one
/// usually means, and a root of thousands stays a short list).
fn job_ids(filter: JobFilter, cur: &str, root: Option<&str>) -> Vec<String> {
    // getcwd(2) already resolves symlinks.
    let here = std::env::current_dir()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    job_ids_found(filter, cur, root, here.as_deref()).pick()
}

/// Matching jobs of this directory (`mine`) and, while there are none of
/// those, of the others (`others`): one pass over the root, and no state
/// read for another directory's job once one of this directory matched.
#[derive(Default)]
struct Found {
    mine: Vec<String>,
    others: Vec<String>,
}

impl Found {
    /// Is a job (this directory's or not) still worth checking?
    fn wants(&self, mine: bool) -> bool {
        mine || self.mine.is_empty()
    }

    fn push(&mut self, name: &str, mine: bool) {
        if mine {
            self.mine.push(name.to_string());
        } else if self.mine.is_empty() {
            self.others.push(name.to_string());
        }
    }

    /// This directory's, else the root's; sorted.
    fn pick(self) -> Vec<String> {
        let mut out = if self.mine.is_empty() {
            self.others
        } else {
            self.mine
        };
        out.sort();
        out
    }
}

/// The jobs that start with `cur` and pass `filter`, sorted into this
/// directory's (`here`; none when it is unknown) and the others.
fn job_ids_found(filter: JobFilter, cur: &str, root: Option<&str>, here: Option<&str>) -> Found {
    let store = Store::resolve(root.map(expand_home).as_deref());
    let mut cache_text = String::new();
    if crate::observe::size_of(&store.root.join(CACHE)).is_some_and(|n| n <= CACHE_MAX) {
        cache_text = std::fs::read_to_string(store.root.join(CACHE)).unwrap_or_default();
    }
    let stamp = root_stamp(&store.root);
    if let Some(out) = from_complete_cache(&cache_text, stamp, filter, cur, here, &store) {
        return out;
    }
    let (mut known, complete) = parse_cache(&cache_text, stamp);
    // Unchanged root: the cache lists every job; no directory listing.
    let listed;
    let names: Vec<&str> = if complete {
        known.keys().copied().collect()
    } else {
        listed = store.job_names().unwrap_or_default();
        listed.iter().map(String::as_str).collect()
    };
    if names.is_empty() {
        return Found::default();
    }
    let cached = known.len();
    let mut present = 0;
    let mut learned = false;
    let mut buf = Vec::with_capacity(4096);
    let mut out = Found::default();
    for &name in &names {
        let k = known.get_mut(name);
        present += usize::from(k.is_some());
        if !completes(name, cur) {
            continue;
        }
        let dir = store.root.join(name);
        let k = match k {
            Some(k) => k,
            None => {
                let Some(cwd) = read_cwd(&dir, &mut buf) else {
                    continue; // being created, or not a job
                };
                learned = true;
                known.entry(name).or_insert(Known {
                    cwd: cwd.into(),
                    terminal: None,
                })
            }
        };
        let mine = here == Some(&*k.cwd);
        if !out.wants(mine) {
            continue;
        }
        if filter != JobFilter::All {
            let status = match k.terminal {
                Some(s) => s,
                None => {
                    let Some(s) = read_status(&dir, &mut buf) else {
                        continue;
                    };
                    if s.is_terminal() {
                        k.terminal = Some(s);
                        learned = true;
                    }
                    s
                }
            };
            if !admits(filter, effective(status, &dir)) {
                continue;
            }
        }
        out.push(name, mine);
    }
    if learned || present < cached || (!complete && stamp.is_some()) {
        write_cache(&store.root, &names, &known);
    }
    out
}

// ---------------------------------------------------------------------------
// The scripts
// ---------------------------------------------------------------------------

/// bash: re-join `--flag=value` (bash splits words at `=`), ask
/// `__complete`, then strip what bash will not replace.
const BASH: &str = r#"# bash completion for agent-exec
# Install: agent-exec completions bash >> ~/.bash_completion
# Candidates come from `agent-exec __complete`, which reads the flag table
# and the jobs root; this script only talks to bash.

_agent_exec() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local -a words=()
    local i w glue=0
    for (( i = 1; i <= COMP_CWORD; i++ )); do
        w=${COMP_WORDS[i]}
        if (( glue )); then
            words[${#words[@]}-1]+=$w
            glue=0
        elif [[ $w == "=" && ${#words[@]} -gt 0 && ${words[${#words[@]}-1]} == --* && ${words[${#words[@]}-1]} != *=* ]]; then
            words[${#words[@]}-1]+="="
            glue=1
        else
            words+=("$w")
        fi
    done
    # The word as agent-exec sees it, and the part bash will replace.
    local word=${words[${#words[@]}-1]} strip=""
    if [[ $word == --*=* && $cur != "$word" ]]; then
        strip=${word%%=*}=
        [[ $cur == "=" ]] && cur=""
    fi
    local prog=${COMP_WORDS[0]}
    prog=${prog/#\~/$HOME}
    local out
    out=$(command "$prog" __complete -- "${words[@]}" 2>/dev/null) || return 0
    COMPREPLY=()
    local value=${cur}
    [[ -z $strip && $word == --*=* ]] && value=${word#*=}
    case $out in
        :files)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$value")
            ;;
        :dirs)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -d -- "$value")
            ;;
        :commands)
            mapfile -t COMPREPLY < <(compgen -c -- "$cur")
            ;;
        "") ;;
        *)
            local line
            while IFS= read -r line; do
                COMPREPLY+=("${line#"$strip"}")
            done <<< "$out"
            ;;
    esac
    if [[ -z $strip && $word == --*=* ]]; then
        # bash did not split at '=' (COMP_WORDBREAKS changed): whole words.
        case $out in
            :files|:dirs)
                for i in "${!COMPREPLY[@]}"; do
                    COMPREPLY[i]=${word%%=*}=${COMPREPLY[i]}
                done
                ;;
        esac
    fi
    return 0
}
complete -F _agent_exec agent-exec
"#;

/// zsh: works both from `fpath` (file `_agent-exec`) and when sourced.
/// Asks for descriptions and shows them with `_describe` (`:` in a
/// candidate is escaped, as `_describe` splits there).
const ZSH: &str = r#"#compdef agent-exec
# zsh completion for agent-exec
# Install: agent-exec completions zsh > ~/.zsh/completions/_agent-exec
# (with ~/.zsh/completions in fpath before compinit), or source it.
# Candidates come from `agent-exec __complete`.

_agent-exec() {
    local prog=${words[1]}
    prog=${prog/#\~/$HOME}
    local out
    out=$(command $prog __complete -- :describe "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    local -a cands described
    cands=("${(@f)out}")
    case ${cands[1]} in
        :files)
            compset -P '--*='
            _files
            ;;
        :dirs)
            compset -P '--*='
            _files -/
            ;;
        :commands)
            _command_names -e
            ;;
        '')
            return 1
            ;;
        *)
            local line word
            for line in "${cands[@]}"; do
                word=${line%%$'\t'*}
                word=${word//:/\\:}
                if [[ $line == *$'\t'* ]]; then
                    described+=("$word:${line#*$'\t'}")
                else
                    described+=("$word")
                fi
            done
            _describe -t agent-exec agent-exec described -M 'm:{a-z}={A-Z}'
            ;;
    esac
}

if [[ $funcstack[1] == _agent-exec ]]; then
    _agent-exec "$@"
else
    compdef _agent-exec agent-exec
fi
"#;

/// fish: one dynamic completion rule; fish filters nothing itself. The
/// `candidate<TAB>help` lines of `:describe` are fish's own format. The
/// `--flag=` prefix is spliced in quoted: an unquoted empty `$pre` would
/// be an empty list and erase every path (fish expands `$a$b` as a
/// product).
const FISH: &str = r#"# fish completion for agent-exec
# Install: agent-exec completions fish > ~/.config/fish/completions/agent-exec.fish
# Candidates come from `agent-exec __complete`.

function __agent_exec_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l prog (string replace -r '^~' $HOME -- $tokens[1])
    set -l out (command $prog __complete -- :describe $tokens[2..-1] "$cur" 2>/dev/null)
    or return
    set -l pre (string match -r -- '^--[^=]*=' "$cur")
    set -l value (string replace -r -- '^--[^=]*=' '' "$cur")
    switch "$out[1]"
        case :files
            for p in (__fish_complete_path "$value")
                printf '%s\n' "$pre$p"
            end
        case :dirs
            for p in (__fish_complete_directories "$value")
                printf '%s\n' "$pre$p"
            end
        case :commands
            __fish_complete_command
        case '*'
            printf '%s\n' $out
    end
end

complete -c agent-exec -f -a '(__agent_exec_complete)'
"#;

/// PowerShell (7+): a native argument completer. It rebuilds the words up
/// to the cursor from the command's AST (string constants unquoted, other
/// elements as typed), asks `:describe`, and turns each line into a
/// `CompletionResult` whose tooltip is the help text. Paths and command
/// names it lists itself so that a `--flag=` prefix survives. Under
/// legacy native argument passing an empty argument is dropped, so the
/// empty current word is sent as `""`.
const POWERSHELL: &str = r#"# PowerShell completion for agent-exec
# Install: agent-exec completions powershell >> $PROFILE
# Candidates come from `agent-exec __complete`; this script only talks to
# PowerShell.

Register-ArgumentCompleter -Native -CommandName agent-exec -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $stringAst = [System.Management.Automation.Language.StringConstantExpressionAst]
    $elements = $commandAst.CommandElements
    $prog = $elements[0].Extent.Text
    if ($elements[0] -is $stringAst) {
        $prog = $elements[0].Value
    }
    if ($prog.StartsWith('~')) {
        $prog = $HOME + $prog.Substring(1)
    }

    # The words before the one under the cursor, then that word.
    $words = @()
    for ($i = 1; $i -lt $elements.Count; $i++) {
        $e = $elements[$i]
        if ($e.Extent.EndOffset -ge $cursorPosition) {
            break
        }
        if ($e -is $stringAst) {
            $words += $e.Value
        } else {
            $words += $e.Extent.Text
        }
    }
    $current = [string]$wordToComplete
    $last = $current
    $passing = Get-Variable -Name PSNativeCommandArgumentPassing -ValueOnly -ErrorAction SilentlyContinue
    if ($current -eq '' -and ($null -eq $passing -or [string]$passing -eq 'Legacy')) {
        $last = '""'
    }
    $argv = @('__complete', '--', ':describe') + $words + @($last)
    $out = @(& $prog @argv 2>$null)
    if ($LASTEXITCODE -ne 0 -or $out.Count -eq 0) {
        return
    }

    # Quote a completion that PowerShell would otherwise split or expand.
    $quote = {
        param($text)
        if ($text -match '[\s''"`$&|;,(){}@#<>]') {
            return "'" + $text.Replace("'", "''") + "'"
        }
        return $text
    }
    $result = {
        param($text, $list, $type, $tip)
        if ([string]::IsNullOrEmpty($tip)) {
            $tip = $list
        }
        [System.Management.Automation.CompletionResult]::new((& $quote $text), $list, $type, $tip)
    }
    $paths = {
        param($pre, $value, $dirsOnly)
        $slash = $value.LastIndexOf('/')
        $dir = $value.Substring(0, $slash + 1)
        $leaf = $value.Substring($slash + 1)
        $base = $dir
        if ($base -eq '') {
            $base = '.'
        } elseif ($base.StartsWith('~')) {
            $base = $HOME + $base.Substring(1)
        }
        Get-ChildItem -LiteralPath $base -Force -ErrorAction SilentlyContinue |
            Where-Object { $_.Name.StartsWith($leaf) -and ($_.PSIsContainer -or -not $dirsOnly) } |
            Sort-Object -Property Name |
            ForEach-Object {
                $text = $pre + $dir + $_.Name
                $type = 'ProviderItem'
                if ($_.PSIsContainer) {
                    $text = $text + '/'
                    $type = 'ProviderContainer'
                }
                & $result $text $_.Name $type $text
            }
    }

    $pre = ''
    $value = $current
    if ($current -match '^(--[^=]*=)(.*)$') {
        $pre = $Matches[1]
        $value = $Matches[2]
    }
    $first = [string]$out[0]
    if ($first -eq ':files') {
        & $paths $pre $value $false
    } elseif ($first -eq ':dirs') {
        & $paths $pre $value $true
    } elseif ($first -eq ':commands') {
        Get-Command -Name ($value + '*') -CommandType Application, ExternalScript -ErrorAction SilentlyContinue |
            Sort-Object -Property Name -Unique |
            ForEach-Object { & $result $_.Name $_.Name 'Command' $_.Source }
    } else {
        foreach ($line in $out) {
            $line = [string]$line
            $tab = $line.IndexOf([char]9)
            $word = $line
            $help = ''
            if ($tab -ge 0) {
                $word = $line.Substring(0, $tab)
                $help = $line.Substring($tab + 1)
            }
            $type = 'ParameterValue'
            if ($word.StartsWith('-')) {
                $type = 'ParameterName'
            }
            & $result $word $word $type $help
        }
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: Want) -> Vec<String> {
        match w {
            Want::Words(w) => w.into_iter().map(|c| c.word).collect(),
            other => panic!("expected words, got {other:?}"),
        }
    }

    #[test]
    fn subcommands_and_groups() {
        let top = words(complete(&[""], None));
        assert!(top.contains(&"run".to_string()));
        assert!(top.contains(&"tag".to_string()));
        assert!(top.contains(&"rm".to_string()));
        assert!(!top.iter().any(|c| c.starts_with('_')), "{top:?}");
        assert_eq!(words(complete(&["ta"], None)), ["tail", "tag"]);
        assert_eq!(words(complete(&["tag", ""], None)), ["set"]);
        assert_eq!(
            words(complete(&["--root", "/x", "notify", "s"], None)),
            ["set"]
        );
        assert!(words(complete(&["bogus", ""], None)).is_empty());
        assert!(words(complete(&["_supervise", ""], None)).is_empty());
    }

    #[test]
    fn flags_come_from_the_table() {
        let f = words(complete(&["kill", "--"], None));
        assert!(f.contains(&"--signal".to_string()), "{f:?}");
        assert!(f.contains(&"--root".to_string()));
        assert!(!f.contains(&"--version".to_string()));
        assert!(words(complete(&["--ver"], None)).contains(&"--version".to_string()));
        // A non-repeatable flag is not offered twice; a repeatable one is.
        let f = words(complete(
            &["run", "--timeout", "5", "--tag", "a", "--t"],
            None,
        ));
        assert!(f.contains(&"--tag".to_string()), "{f:?}");
        assert!(!f.contains(&"--timeout".to_string()), "{f:?}");
    }

    #[test]
    fn flag_values() {
        assert_eq!(
            words(complete(&["list", "--state", "r"], None)),
            ["running".to_string()]
        );
        assert_eq!(
            words(complete(&["notify", "set", "--output-stream=stde"], None)),
            ["--output-stream=stderr".to_string()]
        );
        assert!(words(complete(&["kill", "--signal", ""], None)).contains(&"TERM".to_string()));
        // All the names the flag takes, not only the table's.
        let all = words(complete(&["kill", "--signal", ""], None));
        for name in ["RTMIN", "RTMAX"] {
            assert!(all.contains(&name.to_string()), "{name}: {all:?}");
        }
        #[cfg(target_arch = "x86_64")]
        assert!(all.contains(&"STKFLT".to_string()), "{all:?}");
        assert!(
            words(complete(&["kill", "--signal", "SIGK"], None)).contains(&"SIGKILL".to_string())
        );
        assert_eq!(complete(&["run", "--env-file", ""], None), Want::Files);
        assert_eq!(complete(&["run", "--cwd", ""], None), Want::Dirs);
        assert_eq!(complete(&["--root=/t"], None), Want::Dirs);
        assert_eq!(complete(&["status", "--root", ""], None), Want::Dirs);
        // Values without a fixed set offer nothing, never job ids.
        assert!(words(complete(&["run", "--timeout", ""], None)).is_empty());
        assert_eq!(
            words(complete(&["run", "--wait", ""], None)),
            ["true", "false"]
        );
    }

    #[test]
    fn trailing_command() {
        assert_eq!(complete(&["run", ""], None), Want::Commands);
        assert_eq!(complete(&["run", "--", ""], None), Want::Commands);
        assert_eq!(
            complete(&["run", "--timeout", "3", "ls", ""], None),
            Want::Files
        );
        assert_eq!(complete(&["run", "--", "ls", "--"], None), Want::Files);
        assert_eq!(
            words(complete(&["completions", ""], None)),
            ["bash", "zsh", "fish", "powershell"]
        );
    }

    fn described(w: Want) -> Vec<String> {
        match w {
            Want::Words(w) => w.into_iter().map(|c| c.line(true)).collect(),
            other => panic!("expected words, got {other:?}"),
        }
    }

    #[test]
    fn descriptions_come_from_the_table() {
        let kill = cli::find("kill").unwrap();
        let signal = kill.flags.iter().find(|f| f.long == "signal").unwrap();
        assert_eq!(
            described(complete(&["kill", "--sig"], None)),
            [format!("--signal\t{}", signal.help)]
        );
        assert_eq!(
            described(complete(&["ki"], None)),
            [format!("kill\t{}", kill.about)]
        );
        // Values carry no description; undescribed lines are unchanged.
        assert_eq!(
            described(complete(&["list", "--state", "r"], None)),
            ["running"]
        );
        let c = Cand {
            word: "--x".into(),
            help: "a\tb\nc",
        };
        assert_eq!(c.line(true), "--x\ta b c");
        // Every flag of every visible command is described.
        for cmd in COMMANDS.iter().filter(|c| !c.hidden) {
            for f in cmd.flags.iter().chain(GLOBAL_FLAGS) {
                assert!(!f.help.is_empty(), "{} --{}", cmd.name, f.long);
            }
        }
    }

    #[test]
    fn second_names_are_completed_like_the_flag() {
        assert_eq!(words(complete(&["tail", "--li"], None)), ["--lines"]);
        // Every "Also --x" that help shows is the flag's `also`, and both
        // names complete; a flag given by either name is not offered again.
        let mut seen = 0;
        for cmd in COMMANDS.iter().filter(|c| !c.hidden) {
            for f in cmd.flags {
                let shown = f.help.split("Also --").nth(1).map(|r| {
                    r.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .next()
                        .unwrap_or_default()
                });
                assert_eq!(shown, f.also, "{} --{}", cmd.name, f.long);
                let Some(also) = f.also else { continue };
                seen += 1;
                let mut line: Vec<&str> = cmd.name.split(' ').collect();
                let cur = format!("--{also}");
                line.push(&cur);
                let got = words(complete(&line, None));
                assert!(got.contains(&cur), "{}: {got:?}", cmd.name);
                line.pop();
                let given = [format!("--{also}"), format!("--{}", f.long)];
                for g in &given {
                    let mut l = line.clone();
                    l.extend([g.as_str(), "5", "--"]);
                    let got = words(complete(&l, None));
                    assert!(!given.iter().any(|n| got.contains(n)), "{g}: {got:?}");
                }
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn home_expansion() {
        assert_eq!(expand_home("/a/b"), "/a/b");
        if let Ok(h) = std::env::var("HOME") {
            if !h.is_empty() {
                assert_eq!(expand_home("~/j"), format!("{h}/j"));
            }
        }
    }
}
