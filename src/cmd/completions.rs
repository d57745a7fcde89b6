//! Shell completion: `completions bash|zsh|fish|powershell` prints a small script,
//! and the hidden `__complete` subcommand computes every candidate from
//! the flag table (`cli::COMMANDS`) and the jobs root.
//!
//! Protocol of `agent-exec __complete -- [MARKER...] WORD...`
//! - The words are those of the command line after `agent-exec`, up to
//!   and including the word under the cursor (possibly empty), as typed
//!   (quotes and all). A word `--flag=value` is one word (the bash script
//!   re-joins what bash split at `=`).
//! - Output is plain text, one candidate per line, already filtered by
//!   the typed prefix; nothing at all when there is nothing to offer.
//!   Instead of candidates, a single directive line may ask the shell to
//!   complete by itself: `:files`, `:dirs` (file or directory names for
//!   the current word, after any `--flag=`), or `:commands` (the first
//!   word of a job's command). No candidate starts with `:`.
//! - Leading marker words, in any order, ask for more. No subcommand
//!   starts with `:`, so a line really starting with one could only have
//!   completed nothing: a marker shadows no answer, and scripts installed
//!   before it existed (which send none) keep working unchanged; the
//!   protocol is versioned only by staying compatible.
//!   - `:describe`: a candidate with something to say is
//!     `candidate<TAB>help`: a flag's `Flag.help`, a subcommand's
//!     `about`, a job id's state as `status` reports it (when readable).
//!     Other values stay bare. zsh, fish and PowerShell ask for this; bash
//!     cannot show it, and its ids stay bare.
//!   - `:after=N`: the last N words come after the cursor's word. They
//!     are read for `--root` only (0.2.3 took it from the whole line).
//!   - `:literal`: the words are already as the command will get them
//!     (fish and PowerShell unquote their tokens), so `--root`'s value is
//!     not unquoted again. Without it (bash, zsh, and scripts older than
//!     the marker), `--root`'s value is unquoted as a shell would
//!     (`shell_word`): a root path holding a quote or a backslash, sent
//!     unquoted by an old fish or PowerShell script, is misread.
//! - After a bare `--wait` (a value that may be left out, `OptBool`), the
//!   next word is its value if it is a boolean and the next positional
//!   otherwise: both are offered. Job ids come after `true` and `false`;
//!   where the positional is the job's command (`run --wait `) the answer
//!   is `:commands` alone, since a directive stands alone on its line in
//!   every script (an installed bash script would offer the extra lines
//!   as words) and the shell's command names hold `true` and `false`
//!   anyway (POSIX utilities).
//! - After `help`, what `help` takes: a subcommand, a group and one of
//!   its own (`help tag set`), or `help`; nothing after a complete one.
//! - Job ids are offered where a positional takes a job id (`Pos::jobs`)
//!   and as the value of a `JOB_ID` flag (`--after`: any job's); only jobs
//!   whose `meta.json` cwd is the canonical current directory (all of the
//!   root's when there are none), in the root named by `--root` on the
//!   line (before or after the cursor) or else the usual resolution;
//!   filtered by the state `status` reports (`JobFilter`): a `running` or
//!   `queued` job whose supervisor is gone (its lock is free) is failed,
//!   as is a defined job with neither state.json nor lock (a launch that
//!   never completed, `launch_lost`) or a `created` one whose launch left
//!   its lock free. The probe never writes a job's files.
//!
//! Invariants
//! - Completion is only ever this hidden subcommand: no environment
//!   variable turns an ordinary invocation into completion output (D24).
//! - Cheap on a large root (a shell waits on it at every TAB; a root of
//!   1,000 jobs costs under 3x `agent-exec --version`): names are
//!   filtered by prefix before any file is read. What is known of each
//!   job is kept in `<root>/.cache/complete` (`CACHE`), a derived file
//!   any completion may rebuild: its cwd, a final state for good, any
//!   other state with the stamp of the job's directory it was read under
//!   (`Seen`). So a root of finished jobs costs one directory listing
//!   and one file read; one whose jobs have not ended, one stat per job
//!   of this directory (and a lock probe per running or queued one);
//!   only a job whose directory changed is read again (`meta.json` once
//!   per new job, state.json and its lock). Ids are described from the
//!   same reads.
//! - Scripts call back the command word the user typed (so a binary off
//!   PATH works) and never embed an absolute path at generation time.
//!
//! Rejected: baking the table into four shell scripts (four generators
//! to keep in step, and none of them testable from Rust); clap's
//! `COMPLETE=<shell>` hook (an exported variable hijacks every command);
//! always appending descriptions (an already installed bash or zsh script
//! would offer `--flag<TAB>help` as the candidate); a `--describe` flag on
//! `__complete` (its flags belong to the table in cli.rs, and a positional
//! marker needs no parser change); trusting a cached live state while
//! state.json is unchanged (a launch that died makes only the lock, and
//! the job would be offered to `start` as `created` for good: the
//! directory's stamp covers both files in one stat); an environment
//! variable for the words after the cursor (markers need no quoting
//! scheme).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use serde::Deserialize;

use crate::cli::{self, Cmd, Flag, JobFilter, Kind, Matches, Ty, COMMANDS, GLOBAL_FLAGS};
use crate::error::{Error, Result};
use crate::job::{Job, State, Status, META, STATE};
use crate::output::Output;
use crate::store::{root_stamp, RootStamp, Store, CACHE_DIR};
use crate::sys::{self, FileId};

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
    let words: Vec<&str> = m.rest.iter().map(String::as_str).collect();
    let (req, words) = Req::parse(&words);
    let (line, after) = words.split_at(words.len() - req.after.min(words.len()));
    let lines = match complete_with(line, after, m.root.as_deref(), req) {
        Want::Words(w) => w.into_iter().map(|c| c.line(req.describe)).collect(),
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
/// `:after=N`: the last N words are those after the cursor's.
const AFTER: &str = ":after=";
/// The words are already as the command would get them (fish and
/// PowerShell unquote them): `--root`'s value is not unquoted again.
const LITERAL: &str = ":literal";

/// What the leading marker words ask of `__complete`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Req {
    pub describe: bool,
    pub after: usize,
    pub literal: bool,
}

impl Req {
    /// The markers at the start of `words` (any order), and the words
    /// after them. A word starting with `:` is never a subcommand, so a
    /// marker shadows no line that could have completed anything.
    fn parse<'w, 'a>(mut words: &'w [&'a str]) -> (Req, &'w [&'a str]) {
        let mut req = Req::default();
        while let Some((&first, rest)) = words.split_first() {
            if first == DESCRIBE {
                req.describe = true;
            } else if first == LITERAL {
                req.literal = true;
            } else if let Some(n) = first.strip_prefix(AFTER).and_then(|n| n.parse().ok()) {
                req.after = n;
            } else {
                break;
            }
            words = rest;
        }
        (req, words)
    }
}

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
    /// Words given to `help` so far (`help tag set`: 2).
    help_words: usize,
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
                if l.help_words == 0 && is_group(w) {
                    l.group = Some(w);
                }
                l.help_words += 1;
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
#[cfg(test)]
fn complete(words: &[&str], root: Option<&str>) -> Want {
    complete_with(words, &[], root, Req::default())
}

/// `complete`, knowing the words after the cursor's (`after`, read for
/// `--root` only) and what the markers asked.
pub fn complete_with(words: &[&str], after: &[&str], root: Option<&str>, req: Req) -> Want {
    let (cur, before) = match words.split_last() {
        Some((c, b)) => (*c, b),
        None => ("", &[][..]),
    };
    let mut l = scan(before);
    // The root the command will run with: `--root` anywhere on the line,
    // before the cursor or after it, unquoted as the shell will.
    let whole: Vec<&str> = words.iter().chain(after).copied().collect();
    let on_line = scan(&whole).root.map(|w| {
        if req.literal {
            expand_home(w).into_owned()
        } else {
            shell_word(w)
        }
    });
    let root = on_line.as_deref().or(root);
    let ctx = Ctx {
        root,
        describe: req.describe,
    };
    if l.unknown || l.cmd.is_some_and(|c| c.hidden) {
        return Want::Words(Vec::new());
    }
    if let Some(n) = l.rest_words {
        return if n == 0 { Want::Commands } else { Want::Files };
    }
    if let Some(flag) = l.pending.take() {
        // As in `cli::parse`, a word starting with `--` is never a value;
        // nor is one starting with `-` for a flag whose value is optional.
        if flag.kind == Kind::OptBool {
            if !cur.starts_with('-') {
                return bare_bool(&l, before, cur, &ctx);
            }
        } else if !cur.starts_with("--") {
            return values(flag, "", cur, &ctx);
        }
    }
    if !l.after_dd && cur.starts_with('-') {
        if let Some((name, v)) = cur.strip_prefix("--").and_then(|s| s.split_once('=')) {
            return match flag_named(l.cmd, name) {
                Some(f) if f.takes_value() || f.kind == Kind::OptBool => {
                    values(f, &cur[..name.len() + 3], v, &ctx)
                }
                _ => Want::Words(Vec::new()),
            };
        }
        return Want::Words(flags(&l, cur));
    }
    let Some(cmd) = l.cmd else {
        // `help` takes a subcommand, or a group and one of its own.
        if l.help && (l.help_words > 1 || (l.help_words == 1 && l.group.is_none())) {
            return Want::Words(Vec::new());
        }
        return Want::Words(subcommands(&l, cur));
    };
    positional(&l, cmd, before, cur, &ctx)
}

/// Where the candidates come from besides the words.
struct Ctx<'a> {
    root: Option<&'a str>,
    describe: bool,
}

/// After a bare `--wait` (a switch whose value may follow): its value,
/// or the positional that comes next, since the parser takes a boolean
/// word as the value and any other word as that positional. Where the
/// positional is the job's command (`run --wait `), `:commands` alone
/// answers: a directive line stands alone in the protocol, and the shell's
/// command names already hold `true` and `false` (POSIX utilities), so
/// both readings are offered.
fn bare_bool(l: &Line, before: &[&str], cur: &str, ctx: &Ctx) -> Want {
    let bools = prefixed(["true", "false"].into_iter(), cur);
    let next = match l.cmd {
        Some(cmd) => positional(l, cmd, before, cur, ctx),
        None => Want::Words(Vec::new()),
    };
    match next {
        Want::Words(mut w) => {
            w.retain(|c| !bools.iter().any(|b| b.word == c.word));
            Want::Words(bools.into_iter().chain(w).collect())
        }
        other => other,
    }
}

/// The candidates of the positional argument the cursor is on.
fn positional(l: &Line, cmd: &'static Cmd, before: &[&str], cur: &str, ctx: &Ctx) -> Want {
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
                let ids = job_ids(filter, cur, ctx);
                let names: Vec<String> = ids.iter().map(|(id, _)| id.clone()).collect();
                let named = if p.many {
                    given(before, &names)
                } else {
                    Vec::new()
                };
                Want::Words(
                    ids.into_iter()
                        .filter(|(id, _)| !named.contains(&id))
                        .map(id_cand)
                        .collect(),
                )
            } else {
                Want::Words(prefixed(p.values.iter().copied(), cur))
            }
        }
        None => Want::Words(Vec::new()),
    }
}

/// A job id, described by its state when it could be read.
fn id_cand((id, status): (String, Option<Status>)) -> Cand {
    Cand {
        word: id,
        help: status.map_or("", Status::as_str),
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
fn values(flag: &Flag, pre: &str, cur: &str, ctx: &Ctx) -> Want {
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
        Kind::Value(_) if flag.meta == "JOB_ID" => Query::new(JobFilter::All, cur, ctx, None)
            .run()
            .pick()
            .into_iter()
            .map(id_cand)
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
            // `help help` is help's own help.
            add("help", "Show help for agent-exec or a subcommand");
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

/// A word of the line as the shell will pass it to the command (bash
/// and zsh send the words as typed): `'...'` literally, `"..."` with `\`
/// escaping only `$`, `` ` ``, `"`, `\` and a newline, `$'...'` with its
/// usual escapes, `\c` outside quotes as `c`; a leading unquoted `~` or
/// `~/` as `$HOME`. `$NAME` and `${NAME}` outside single quotes become
/// the variable's value when it is in this process's environment (the
/// shell exported it), and stay as typed otherwise: a shell variable
/// that was not exported cannot be known here, and nothing is ever run
/// to find out. A quote left open (the cursor may be inside it) runs to
/// the end of the word.
fn shell_word(word: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Q {
        Bare,
        Single,
        Double,
        Ansi,
    }
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars().peekable();
    if word == "~" || word.starts_with("~/") {
        let home = std::env::var("HOME").unwrap_or_default();
        if !home.is_empty() {
            out.push_str(&home);
            chars.next();
        }
    }
    let mut q = Q::Bare;
    while let Some(c) = chars.next() {
        match (q, c) {
            (Q::Single, '\'') | (Q::Double, '"') | (Q::Ansi, '\'') => q = Q::Bare,
            (Q::Single, c) => out.push(c),
            (Q::Bare, '\'') => q = Q::Single,
            (Q::Bare, '"') => q = Q::Double,
            (Q::Bare, '\\') => match chars.next() {
                Some('\n') | None => {}
                Some(n) => out.push(n),
            },
            (Q::Double, '\\') => match chars.peek().copied() {
                Some('\n') => {
                    chars.next();
                }
                Some(n @ ('$' | '`' | '"' | '\\')) => {
                    chars.next();
                    out.push(n);
                }
                _ => out.push('\\'),
            },
            (Q::Ansi, '\\') => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('e' | 'E') => out.push('\x1b'),
                Some(n) => out.push(n),
                None => {}
            },
            (Q::Bare, '$') if chars.peek() == Some(&'\'') => {
                chars.next();
                q = Q::Ansi;
            }
            (Q::Bare | Q::Double, '$') => out.push_str(&variable(&mut chars)),
            (_, c) => out.push(c),
        }
    }
    out
}

/// The rest of `$NAME` or `${NAME}` (the `$` was read): the variable's
/// value if it is in the environment, else the text as typed.
fn variable(chars: &mut std::iter::Peekable<std::str::Chars>) -> String {
    let braced = chars.peek() == Some(&'{');
    let mut text = String::from("$");
    if braced {
        text.push('{');
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (!name.is_empty() && c.is_ascii_digit());
        if !ok {
            break;
        }
        name.push(c);
        chars.next();
    }
    text.push_str(&name);
    if braced {
        if chars.peek() != Some(&'}') {
            return text; // `${x:-y}` and the like: left as typed
        }
        chars.next();
        text.push('}');
    }
    match std::env::var(&name) {
        Ok(v) if !name.is_empty() => v,
        _ => text,
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

/// The completion cache, `<root>/.cache/complete`: what is known about
/// each job, so that a root of a thousand jobs costs one file read (and,
/// for jobs not yet ended, one stat each) instead of two thousand. Lines
/// are `ID<TAB>STATUS<TAB>STAMP<TAB>CWD` (see `Seen`): a job's cwd is
/// fixed when it is defined; a final state is final; any other state is
/// kept with the stamp (inode, size, ctime) of the job's directory when
/// it was read. The header also records the root's inode, link count and
/// mtime (ns) when the cache was written: job directories are
/// subdirectories, so creating or removing one changes the link count and
/// the mtime, and while all three are unchanged (and the mtime is older
/// than the cache by more than the file system's coarse clock can blur)
/// the cached names *are* the root's names and the directory is not
/// listed at all. The cache sits in a subdirectory so that writing it
/// does not touch the root's own mtime. Any doubt (unreadable, other
/// version) means an empty cache; it is rebuilt by the next completion.
/// A `restart` (or `--retry` run) makes a terminal job live again: it
/// removes this file (`runs::archive`).
pub const CACHE: &str = ".cache/complete";
const CACHE_HEADER: &str = "agent-exec complete-cache 3";
/// How much older than the cache the root's mtime must be for the cached
/// names to be trusted (mtimes come from a coarse, tick-based clock).
const MTIME_SLACK_NS: i128 = 1_000_000_000;
/// A cache larger than this is ignored (and rewritten).
const CACHE_MAX: u64 = 32 << 20;

/// What the cache knows of a job's state.
///
/// A state that is not final is trusted while the job's directory is
/// unchanged: every write of state.json (ours, and 0.2.3's) replaces it
/// by a rename, and a launch makes the `lock` file; both change the
/// directory's ctime, which nothing can set back. A stamp is only kept
/// when it was taken well after the directory's last change
/// (`store::settled`), so that no change can hide inside the clock's
/// granularity. The job's own files are watched by that one stat, not
/// state.json's: a `start` whose supervisor died before it wrote a state
/// changed the directory (its lock) and not state.json, and the job
/// reads `failed` since. A state.json rewritten in place (by hand) is not
/// seen until the directory changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Nothing trusted: read the job.
    Unknown,
    /// Recorded final in state.json (cached without a stamp).
    Final(Status),
    /// What the job read as while its directory was this one. `created`
    /// (no lock: never launched) and `failed` (no state.json and no lock:
    /// a launch that never completed) hold as long as the directory;
    /// `running` and `queued` only while the job's lock is held too (a
    /// dead supervisor lets go of it without a word), so they cost a
    /// lock probe as well.
    Live(Status, FileId),
}

fn status_named(s: &str) -> Option<Status> {
    [
        Status::Created,
        Status::Queued,
        Status::Running,
        Status::Exited,
        Status::Killed,
        Status::Failed,
    ]
    .into_iter()
    .find(|x| x.as_str() == s)
}

impl Seen {
    fn parse(status: &str, stamp: &str) -> Seen {
        match (status_named(status), stamp) {
            (Some(s), "-") if s.is_terminal() => Seen::Final(s),
            (Some(s), stamp) => FileId::parse(stamp).map_or(Seen::Unknown, |id| Seen::Live(s, id)),
            (None, _) => Seen::Unknown,
        }
    }

    fn write(self, out: &mut String) {
        let _ = match self {
            Seen::Unknown => write!(out, "-\t-"),
            Seen::Final(s) => write!(out, "{}\t-", s.as_str()),
            Seen::Live(s, id) => write!(out, "{}\t{id}", s.as_str()),
        };
    }
}

struct Known<'a> {
    cwd: std::borrow::Cow<'a, str>,
    seen: Seen,
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

/// A cache line: (id, what is known of its state, cwd).
fn cache_line(line: &str) -> Option<(&str, Seen, &str)> {
    let mut parts = line.splitn(4, '\t');
    let id = parts.next()?;
    let seen = Seen::parse(parts.next()?, parts.next()?);
    Some((id, seen, parts.next()?))
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
        .map(|(id, seen, cwd)| {
            (
                id,
                Known {
                    cwd: cwd.into(),
                    seen,
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
    let mut text = String::with_capacity(96 + names.len() * 96);
    let now = crate::time::now_unix_ns();
    let _ = writeln!(text, "{CACHE_HEADER} {ino} {nlink} {mtime_ns} {now}");
    for &n in names {
        let Some(k) = known.get(n) else {
            continue;
        };
        if k.cwd.contains('\n') || n.contains('\t') {
            continue; // cannot be written as one line: read each time
        }
        text.push_str(n);
        text.push('\t');
        k.seen.write(&mut text);
        let _ = writeln!(text, "\t{}", k.cwd);
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

/// Is the job's lock held (by its supervisor, or a launch)? None: it
/// has no lock file (or none that is a regular file, as readers take it).
fn lock_held(job: &Job) -> Option<(bool, File)> {
    let lock = job.open_lock()?;
    // An error is no proof of a free lock: the record stands.
    let free = sys::try_lock_exclusive(&lock).unwrap_or(false);
    if free {
        let _ = sys::unlock(&lock);
    }
    Some((!free, lock))
}

/// Reads jobs the way `status` reports them, without ever writing: the
/// liveness checks of `observe::current_state`, none of its records.
struct Prober<'r> {
    root: &'r Path,
    /// The root, opened once (O_PATH) for the stats.
    fd: Option<Option<File>>,
    /// When this completion began: stamps older than this (by the clock's
    /// blur) are kept.
    t0: i128,
    buf: Vec<u8>,
}

impl<'r> Prober<'r> {
    fn new(root: &'r Path, t0: i128) -> Prober<'r> {
        Prober {
            root,
            fd: None,
            t0,
            buf: Vec::with_capacity(4096),
        }
    }

    /// The job directory's stamp: one fstatat under the open root.
    fn stamp(&mut self, name: &str) -> Option<FileId> {
        let root = self.root;
        let fd = self
            .fd
            .get_or_insert_with(|| sys::open_dir_path(root).ok())
            .as_ref()?;
        sys::stat_at(fd, name, ".").ok()
    }

    /// The state the CLI reports for job `name` (None: unreadable), from
    /// `seen` while it holds, else read; and what the cache should keep.
    fn state(&mut self, name: &str, seen: Seen) -> (Option<Status>, Seen) {
        match seen {
            Seen::Final(s) => return (Some(s), seen),
            Seen::Live(s, id) if self.stamp(name) == Some(id) => match s {
                Status::Running | Status::Queued => {
                    let job = Job::new(name, self.root.join(name));
                    if lock_held(&job).is_some_and(|(held, _)| held) {
                        return (Some(s), seen);
                    }
                }
                _ => return (Some(s), seen),
            },
            _ => {}
        }
        self.probe(name)
    }

    /// Read job `name`'s files (see `Seen` for what may be kept).
    fn probe(&mut self, name: &str) -> (Option<Status>, Seen) {
        // The stamp first: a change after it shows in the next one.
        let t0 = self.t0;
        let stamp = self
            .stamp(name)
            .filter(|s| crate::store::settled(s.ctime_ns, t0));
        let live = |s: Status| stamp.map_or(Seen::Unknown, |id| Seen::Live(s, id));
        let dir = self.root.join(name);
        let state_path = dir.join(STATE);
        let recorded = if read_into(&state_path, &mut self.buf) {
            match serde_json::from_slice::<StatusOnly>(&self.buf) {
                // No status at all reads as failed (`State::status`).
                Ok(s) => Some(s.job.status.unwrap_or(Status::Failed)),
                Err(_) => return (None, Seen::Unknown),
            }
        } else if std::fs::symlink_metadata(&state_path).is_ok() {
            return (None, Seen::Unknown); // there, and unreadable
        } else {
            None
        };
        if let Some(s) = recorded.filter(|s| s.is_terminal()) {
            return (Some(s), Seen::Final(s));
        }
        let job = Job::new(name, dir);
        let lock = lock_held(&job);
        // A lock file no longer linked was a removal's: nothing launched
        // under it (`observe`: nothing to reconcile).
        let unlinked = |l: &File| {
            use std::os::unix::fs::MetadataExt;
            l.metadata().is_ok_and(|m| m.nlink() == 0)
        };
        match (recorded, lock) {
            // Defined (meta.json), never recorded, never launched: a
            // launch that never completed (`launch_lost`), every time.
            (None, None) => (Some(Status::Failed), live(Status::Failed)),
            // `run` is starting it: created until its supervisor writes.
            (None, Some((true, _))) => (Some(Status::Created), Seen::Unknown),
            (None | Some(Status::Created), Some((false, l))) if unlinked(&l) => {
                (Some(Status::Created), Seen::Unknown)
            }
            // A launch began and nobody holds its lock: `launch_lost`.
            (None | Some(Status::Created), Some((false, _))) => {
                (Some(Status::Failed), Seen::Unknown)
            }
            (Some(Status::Created), None) => (Some(Status::Created), live(Status::Created)),
            // Being started: a restart shows it as what it becomes.
            (Some(Status::Created), Some((true, _))) => {
                let shown = self
                    .full()
                    .filter(|st| st.attempt() > 1)
                    .map_or(Status::Created, |st| {
                        crate::observe::as_shown(&job, st).status()
                    });
                (Some(shown), Seen::Unknown)
            }
            (Some(s), Some((true, _))) => (Some(s), live(s)),
            (Some(s), Some((false, l))) => {
                let now = if unlinked(&l) { s } else { self.lost(&job, s) };
                (Some(now), live(s))
            }
            (Some(Status::Running), None) => (Some(self.lockless()), Seen::Unknown),
            (Some(s), None) => (Some(s), Seen::Unknown),
        }
    }

    /// The whole state.json just read into the buffer.
    fn full(&self) -> Option<State> {
        serde_json::from_slice(&self.buf).ok()
    }

    /// A `running` or `queued` job whose lock is free: its supervisor is
    /// gone (failed), unless it still lives (the lock file was replaced
    /// under it) or the run was already kept (`--retry` between runs).
    fn lost(&self, job: &Job, s: Status) -> Status {
        let Some(st) = self.full() else {
            return Status::Failed;
        };
        if st.supervisor_pid.is_some_and(|p| job.is_supervisor(p)) {
            return s;
        }
        if s == Status::Running {
            if let Some(kept) = crate::runs::load(job, st.attempt()) {
                return kept.status();
            }
        }
        Status::Failed
    }

    /// A `running` job without a lock file (0.2.3's): running while its
    /// recorded process lives and is the one that started the job.
    fn lockless(&self) -> Status {
        match self.full() {
            Some(st) if crate::observe::lockless_root_gone(&st).is_some() => Status::Failed,
            _ => Status::Running,
        }
    }
}

/// Ids of this directory's jobs that start with `cur` (case-insensitive,
/// as lookup is) and pass `filter`, sorted, each with its state when it
/// was read; when none of this directory does, those of the whole root
/// (the README: every known job id can be completed; this directory's
/// come first because they are what one usually means, and a root of
/// thousands stays a short list).
fn job_ids(filter: JobFilter, cur: &str, ctx: &Ctx) -> Vec<(String, Option<Status>)> {
    // getcwd(2) already resolves symlinks.
    let here = std::env::current_dir()
        .ok()
        .map(|h| h.to_string_lossy().into_owned());
    Query::new(filter, cur, ctx, here.as_deref()).run().pick()
}

/// Matching jobs of this directory (`mine`) and, while there are none of
/// those, of the others (`others`): one pass over the root, and no state
/// read for another directory's job once one of this directory matched.
#[derive(Default)]
struct Found {
    mine: Vec<(String, Option<Status>)>,
    others: Vec<(String, Option<Status>)>,
}

impl Found {
    /// Is a job (this directory's or not) still worth checking?
    fn wants(&self, mine: bool) -> bool {
        mine || self.mine.is_empty()
    }

    fn push(&mut self, name: &str, status: Option<Status>, mine: bool) {
        if mine {
            self.mine.push((name.to_string(), status));
        } else if self.mine.is_empty() {
            self.others.push((name.to_string(), status));
        }
    }

    /// This directory's, else the root's; sorted.
    fn pick(self) -> Vec<(String, Option<Status>)> {
        let mut out = if self.mine.is_empty() {
            self.others
        } else {
            self.mine
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// One look for job ids.
struct Query<'a> {
    filter: JobFilter,
    cur: &'a str,
    root: Option<&'a str>,
    /// This directory (None: unknown, or every job is wanted).
    here: Option<&'a str>,
    /// Read states even without a filter: to describe the ids.
    states: bool,
    t0: i128,
}

impl<'a> Query<'a> {
    fn new(filter: JobFilter, cur: &'a str, ctx: &Ctx<'a>, here: Option<&'a str>) -> Query<'a> {
        Query {
            filter,
            cur,
            root: ctx.root,
            here,
            states: ctx.describe,
            t0: crate::time::now_unix_ns(),
        }
    }

    fn needs_state(&self) -> bool {
        self.states || self.filter != JobFilter::All
    }

    /// The job's state if it is wanted: Some(state, read or not) to
    /// offer it, None to leave it out.
    fn judge(&self, status: Option<Status>) -> Option<Option<Status>> {
        match status {
            Some(s) if admits(self.filter, s) => Some(Some(s)),
            None if self.filter == JobFilter::All => Some(None),
            _ => None,
        }
    }

    /// The jobs that start with `cur` and pass `filter`, sorted into this
    /// directory's (`here`; none when it is unknown) and the others.
    fn run(&self) -> Found {
        let store = Store::resolve(self.root);
        let mut cache_text = String::new();
        if crate::observe::size_of(&store.root.join(CACHE)).is_some_and(|n| n <= CACHE_MAX) {
            cache_text = std::fs::read_to_string(store.root.join(CACHE)).unwrap_or_default();
        }
        let stamp = root_stamp(&store.root);
        let mut prober = Prober::new(&store.root, self.t0);
        if let Some(out) = self.run_on_complete_cache(&cache_text, stamp, &mut prober) {
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
        let mut out = Found::default();
        for &name in &names {
            let k = known.get_mut(name);
            present += usize::from(k.is_some());
            if !completes(name, self.cur) {
                continue;
            }
            let k = match k {
                Some(k) => k,
                None => {
                    let Some(cwd) = read_cwd(&store.root.join(name), &mut prober.buf) else {
                        continue; // being created, or not a job
                    };
                    learned = true;
                    known.entry(name).or_insert(Known {
                        cwd: cwd.into(),
                        seen: Seen::Unknown,
                    })
                }
            };
            let mine = self.here == Some(&*k.cwd);
            if !out.wants(mine) {
                continue;
            }
            let mut status = None;
            if self.needs_state() {
                let (s, seen) = prober.state(name, k.seen);
                if seen != k.seen {
                    k.seen = seen;
                    learned = true;
                }
                status = s;
            }
            if let Some(status) = self.judge(status) {
                out.push(name, status, mine);
            }
        }
        if learned || present < cached || (!complete && stamp.is_some()) {
            write_cache(&store.root, &names, &known);
        }
        out
    }

    /// `run` straight from the cache's lines, without building its map,
    /// when the cache lists every job and nothing new is learned (the
    /// common case, and the one that must be fast). None: take the
    /// general path.
    fn run_on_complete_cache(
        &self,
        text: &str,
        stamp: Option<RootStamp>,
        prober: &mut Prober,
    ) -> Option<Found> {
        let (body, true) = cache_body(text, stamp)? else {
            return None;
        };
        let mut out = Found::default();
        for line in body.split_terminator('\n') {
            let (name, seen, cwd) = cache_line(line)?;
            let mine = self.here == Some(cwd);
            if !completes(name, self.cur) || !out.wants(mine) {
                continue;
            }
            let mut status = None;
            if self.needs_state() {
                let (s, now) = prober.state(name, seen);
                if now != seen {
                    return None; // learned: the general path records it
                }
                status = s;
            }
            if let Some(status) = self.judge(status) {
                out.push(name, status, mine);
            }
        }
        Some(out)
    }
}

// ---------------------------------------------------------------------------
// The scripts
// ---------------------------------------------------------------------------

/// bash: re-join `--flag=value` (bash splits words at `=`), ask
/// `__complete` with the words after the cursor's too (`:after=N`), then
/// strip what bash will not replace.
const BASH: &str = r#"# bash completion for agent-exec
# Install: agent-exec completions bash >> ~/.bash_completion
# Candidates come from `agent-exec __complete`, which reads the flag table
# and the jobs root; this script only talks to bash.

_agent_exec() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local -a words=()
    local i w glue=0 n=-1
    for (( i = 1; i < ${#COMP_WORDS[@]}; i++ )); do
        w=${COMP_WORDS[i]}
        if (( i == COMP_CWORD + 1 )); then
            # The words after the cursor's (for a --root there) start anew.
            n=${#words[@]}
            glue=0
        fi
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
    (( n < 0 )) && n=${#words[@]}
    local after=$(( ${#words[@]} - n ))
    # The word as agent-exec sees it, and the part bash will replace.
    local word=${words[n-1]} strip=""
    if [[ $word == --*=* && $cur != "$word" ]]; then
        strip=${word%%=*}=
        [[ $cur == "=" ]] && cur=""
    fi
    local prog=${COMP_WORDS[0]}
    prog=${prog/#\~/$HOME}
    local out
    out=$(command "$prog" __complete -- ":after=$after" "${words[@]}" 2>/dev/null) || return 0
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

/// zsh: works both from `fpath` (file `_agent-exec`) and when sourced
/// (by whatever path: `zsh_eval_context` tells, where `funcstack` named a
/// file sourced as `_agent-exec` like the function and registered
/// nothing).
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
    out=$(command $prog __complete -- :describe ":after=$(( $#words - CURRENT ))" "${(@)words[2,-1]}" 2>/dev/null) || return 1
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

# Autoloaded from fpath, the file is the function's body: complete.
# Sourced (by any path, even a bare `_agent-exec` that names the function
# too) or eval'ed: register.
if [[ ${zsh_eval_context[-1]} == (loadautofunc|shfunc) ]]; then
    _agent-exec "$@"
else
    compdef _agent-exec agent-exec
fi
"#;

/// fish: one dynamic completion rule; fish filters nothing itself. Its
/// tokens come unquoted (`:literal`), and those after the cursor's are
/// sent too (`:after=N`). The
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
    # The tokens after the cursor's (for a --root there); the current
    # token is among all of them unless it is empty.
    set -l all (commandline -op)
    set -l skip (math (count $tokens) + 1)
    test -n "$cur"; and set skip (math $skip + 1)
    set -l after
    test $skip -le (count $all); and set after $all[$skip..-1]
    set -l prog (string replace -r '^~' $HOME -- $tokens[1])
    set -l out (command $prog __complete -- :describe :literal ":after="(count $after) $tokens[2..-1] "$cur" $after 2>/dev/null)
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

/// PowerShell (7+): a native argument completer. It rebuilds the words
/// from the command's AST (string constants unquoted, other elements as
/// typed: `:literal`), those after the cursor's last (`:after=N`), asks
/// `:describe`, and turns each line into a
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

    # The words before the one under the cursor, then that word; the
    # words after it are sent too (for a --root there).
    $words = @()
    $after = @()
    for ($i = 1; $i -lt $elements.Count; $i++) {
        $e = $elements[$i]
        $text = $e.Extent.Text
        if ($e -is $stringAst) {
            $text = $e.Value
        }
        if ($e.Extent.StartOffset -gt $cursorPosition) {
            $after += $text
        } elseif ($e.Extent.EndOffset -lt $cursorPosition) {
            $words += $text
        }
    }
    $current = [string]$wordToComplete
    $last = $current
    $passing = Get-Variable -Name PSNativeCommandArgumentPassing -ValueOnly -ErrorAction SilentlyContinue
    if ($current -eq '' -and ($null -eq $passing -or [string]$passing -eq 'Legacy')) {
        $last = '""'
    }
    $argv = @('__complete', '--', ':describe', ':literal', (':after=' + $after.Count)) + $words + @($last) + $after
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
        // A bare --wait: its value, or the next argument (`run`: the
        // command, whose names hold true and false).
        assert_eq!(complete(&["run", "--wait", ""], None), Want::Commands);
        assert_eq!(
            words(complete(&["run", "--wait=f"], None)),
            ["--wait=false"]
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
    fn shell_words_are_unquoted_as_the_shell_would() {
        assert_eq!(shell_word("/a/b"), "/a/b");
        assert_eq!(shell_word("'/a b'"), "/a b");
        assert_eq!(shell_word("\"/a b\""), "/a b");
        assert_eq!(shell_word("/a\\ b"), "/a b");
        assert_eq!(shell_word("'/it'\\''s'"), "/it's");
        assert_eq!(shell_word("\"a\\\"b\\c\""), "a\"b\\c");
        assert_eq!(shell_word("$'/a\\tb'"), "/a\tb");
        // An open quote runs to the end (the cursor may be inside it).
        assert_eq!(shell_word("'/a b"), "/a b");
        // `~` only unquoted and first; `$VAR` when exported, else as typed.
        assert_eq!(shell_word("'~/x'"), "~/x");
        assert_eq!(shell_word("/x/~"), "/x/~");
        assert_eq!(
            shell_word("$AE_SURELY_UNSET_VAR/x"),
            "$AE_SURELY_UNSET_VAR/x"
        );
        assert_eq!(shell_word("'$HOME'"), "$HOME");
        assert_eq!(shell_word("${x:-y}"), "${x:-y}");
        if let Ok(h) = std::env::var("HOME") {
            if !h.is_empty() {
                assert_eq!(shell_word("~/j"), format!("{h}/j"));
                assert_eq!(shell_word("\"$HOME\"/j"), format!("{h}/j"));
                assert_eq!(shell_word("${HOME}/j"), format!("{h}/j"));
            }
        }
    }

    /// A scratch root with job `id` defined in `cwd` (created).
    fn scratch(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "ae-compl-{tag}-{}-{}",
            std::process::id(),
            crate::time::now_unix_ns()
        ));
        let root = base.join("jobs");
        let cwd = base.join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        (root, cwd)
    }

    fn define(root: &Path, id: &str, cwd: &Path, state: &str) {
        let d = root.join(id);
        std::fs::create_dir_all(&d).unwrap();
        let meta = serde_json::json!({"job": {"id": id}, "cwd": cwd});
        std::fs::write(d.join(META), meta.to_string()).unwrap();
        let st = serde_json::json!({"job": {"id": id, "status": state}, "updated_at": ""});
        std::fs::write(d.join(STATE), st.to_string()).unwrap();
    }

    /// state.json replaced as every writer replaces it: by a rename.
    fn replace_state(root: &Path, id: &str, state: &str) {
        let st = serde_json::json!({"job": {"id": id, "status": state}, "updated_at": ""});
        crate::store::write_atomic(&root.join(id), STATE, st.to_string().as_bytes(), false)
            .unwrap();
    }

    /// Job ids as a completion starting at `t0` finds them.
    fn ids_at(
        filter: JobFilter,
        root: &Path,
        here: &Path,
        t0: i128,
    ) -> Vec<(String, Option<Status>)> {
        let root = root.to_str().unwrap();
        let here = here.to_str().unwrap();
        Query {
            filter,
            cur: "",
            root: Some(root),
            here: Some(here),
            states: true,
            t0,
        }
        .run()
        .pick()
    }

    /// A state that is not final is kept with its directory's stamp and
    /// trusted while the directory is unchanged (state.json is not read
    /// again: rewritten in place, unseen); every change a launch makes
    /// (the lock, a state written by rename) is seen at once, and a lock
    /// let go of is probed at every look.
    #[test]
    fn live_states_are_trusted_while_the_directory_is_unchanged() {
        let (root, cwd) = scratch("live");
        let id = "01JAAAAAAAAAAAAAAAAAAAAAA1";
        define(&root, id, &cwd, "created");
        // A completion well after the job's last change keeps its stamp.
        let later = crate::time::now_unix_ns() + 10_000_000_000;
        let created = vec![(id.to_string(), Some(Status::Created))];
        assert_eq!(ids_at(JobFilter::Created, &root, &cwd, later), created);
        let cache = std::fs::read_to_string(root.join(CACHE)).unwrap();
        assert!(cache.contains(&format!("{id}\tcreated\t")), "{cache}");
        assert!(!cache.contains(&format!("{id}\tcreated\t-")), "{cache}");
        // Trusted: the file is not read again (one stat of the directory).
        let st = serde_json::json!({"job": {"id": id, "status": "running"}, "updated_at": ""});
        std::fs::write(root.join(id).join(STATE), st.to_string()).unwrap();
        assert_eq!(ids_at(JobFilter::Created, &root, &cwd, later), created);
        // A launch makes the lock: seen; with nobody holding it, the
        // launch died (`launch_lost`): failed, as status reports it.
        replace_state(&root, id, "created");
        assert_eq!(ids_at(JobFilter::Created, &root, &cwd, later), created);
        let lock = File::create(root.join(id).join(crate::job::LOCK)).unwrap();
        assert!(ids_at(JobFilter::Created, &root, &cwd, later).is_empty());
        assert_eq!(
            ids_at(JobFilter::Terminal, &root, &cwd, later),
            [(id.to_string(), Some(Status::Failed))]
        );
        // Held by a launch: still created; then running, by rename.
        sys::lock_exclusive(&lock).unwrap();
        assert_eq!(ids_at(JobFilter::Created, &root, &cwd, later), created);
        replace_state(&root, id, "running");
        let running = vec![(id.to_string(), Some(Status::Running))];
        assert!(ids_at(JobFilter::Created, &root, &cwd, later).is_empty());
        assert_eq!(ids_at(JobFilter::Running, &root, &cwd, later), running);
        let cache = std::fs::read_to_string(root.join(CACHE)).unwrap();
        assert!(cache.contains(&format!("{id}\trunning\t")), "{cache}");
        assert_eq!(ids_at(JobFilter::Running, &root, &cwd, later), running);
        // Its supervisor dies (the lock is let go of): failed at once,
        // though the directory is unchanged.
        sys::unlock(&lock).unwrap();
        assert!(ids_at(JobFilter::Running, &root, &cwd, later).is_empty());
        assert_eq!(
            ids_at(JobFilter::Terminal, &root, &cwd, later),
            [(id.to_string(), Some(Status::Failed))]
        );
        // A stamp taken too soon after a change is not kept.
        let id2 = "01JAAAAAAAAAAAAAAAAAAAAAA2";
        define(&root, id2, &cwd, "created");
        // Looked at the very moment of its last change.
        let changed = {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(root.join(id2)).unwrap();
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec())
        };
        assert_eq!(ids_at(JobFilter::Created, &root, &cwd, changed).len(), 1);
        let cache = std::fs::read_to_string(root.join(CACHE)).unwrap();
        assert!(cache.contains(&format!("{id2}\t-\t-\t")), "{cache}");
        let _ = std::fs::remove_dir_all(root.parent().unwrap());
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
