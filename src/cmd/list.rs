//! `list` / `ps`: jobs newest-created first, filtered by working
//! directory (the current one unless `--cwd DIR` or `--all`), `--state`
//! and `--tag` patterns (all must match). `ps` lists the running and queued jobs.
//!
//! Invariants
//! - Order is creation order, newest first, taken from the ULID names
//!   alone (DECISIONS D28); legacy (non-ULID) directories come after every
//!   ULID job, by name. So a limited listing reads meta/state only of the
//!   directories it walks until `limit + 1` matches are seen (the extra
//!   one only proves `truncated`), not of the whole root.
//! - States are the truth: a `running` job whose supervisor is gone is
//!   reported (and recorded) as `failed` (`observe::current_state`).
//! - `job_id` is the directory name, which always resolves; `short_job_id`
//!   is its shortest unique prefix of at least 10 characters in the root.
//! - Each entry names the job's `command` and `cwd` and, once terminal,
//!   its cost (`crate::usage`); all of it is in the cache note too.
//! - `skipped` counts job directories whose meta.json could not be read
//!   among those walked, and, when the walk reaches the end, those whose
//!   names are not UTF-8; an unreadable state.json lists the job as
//!   `unknown`.
//! - Names come from the list cache while the root is unchanged
//!   (`cache.rs`). A job read in a final state leaves a note there: both
//!   files' inode, size and ctime, and what `list` shows of them. The
//!   note stands in for reading the files only while both still stat the
//!   same, and it is only made from files whose ctime had settled before
//!   the listing began, so no write can hide in a timestamp tick. A
//!   running job is always read (its state changes, and a dead supervisor
//!   must be noticed).
//!
//! Rejected: 0.2.3 read every job and sorted by `started_at` strings,
//! which made `list --limit 5` cost as much as the whole root.

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::cache::ListCache;
use crate::cli::Matches;
use crate::error::Result;
use crate::job::{self, Status};
use crate::output::{Output, Response};
use crate::store::{self, Store};
use crate::sys::{self, FileId};

/// What to list; shared with the HTTP server.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Most jobs to return; 0 = all.
    pub limit: u64,
    /// Only jobs in this state (`created` ... `failed`, or `unknown`).
    pub state: Option<String>,
    /// Only jobs whose working directory is this one; None = all.
    pub cwd: Option<String>,
    /// Tag patterns (validated); every one must match.
    pub tags: Vec<String>,
    /// `ps`: running and queued jobs (`state` is then ignored).
    pub active: bool,
}

#[derive(Serialize)]
pub struct ListEntry {
    pub job_id: String,
    pub short_job_id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, as `status` has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// How long it ran, once terminal (the timestamps are to the second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the job could not store, as `status` lists it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output_lost: Vec<job::OutputLoss>,
    pub tags: Vec<String>,
    /// command, cwd; cpu_user_ms, cpu_sys_ms, max_rss_kb once terminal.
    #[serde(flatten)]
    pub ran: crate::usage::RanCost,
    #[serde(flatten)]
    pub queued: crate::queue::QueueInfo,
}

#[derive(Serialize)]
pub struct ListBody {
    pub root: String,
    pub jobs: Vec<ListEntry>,
    pub truncated: bool,
    pub skipped: u64,
}

/// A directory as jobs record it: canonical when it exists, otherwise
/// made absolute lexically (the way `run --cwd` records a missing one).
pub fn normalize_dir(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| store::absolutize(p))
        .to_string_lossy()
        .into_owned()
}

/// The caller's working directory, normalised like a job's `cwd`. Linux's
/// getcwd already resolves every symlink, so no canonicalisation (one
/// readlink per component) is needed.
pub fn current_dir() -> String {
    caller_dir().unwrap_or_else(|_| normalize_dir(Path::new("/")))
}

/// The caller's working directory for an action scoped to it (`delete
/// --all`, `list` without `--cwd` or `--all`): an error when it cannot
/// be read (it was removed, say: `io_error`) or its path is not UTF-8
/// (`usage_error`, as `run` refuses it), never `/` or a lossy rewrite in
/// its place, which would put other jobs in scope or none at all.
pub fn caller_dir() -> Result<String> {
    caller_dir_or("run it from a directory whose path is")
}

/// `caller_dir`, with `hint` telling a caller whose directory is not
/// UTF-8 what to do instead.
fn caller_dir_or(hint: &str) -> Result<String> {
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() => crate::launch::dir_text(d, hint),
        Ok(d) => Err(crate::error::Error::io(
            "current directory",
            std::io::Error::other(format!("not absolute: {}", d.display())),
        )),
        Err(e) => Err(crate::error::Error::io("current directory", e)),
    }
}

pub fn list_jobs(store: &Store, q: &ListQuery) -> Result<ListBody> {
    crate::queue::with_one_read_per_queue(|| list_jobs_now(store, q))
}

fn list_jobs_now(store: &Store, q: &ListQuery) -> Result<ListBody> {
    for t in &q.tags {
        job::validate_tag_pattern(t)?;
    }
    let cwd = q.cwd.as_deref().map(|c| normalize_dir(Path::new(c)));
    let wanted = |m: &MetaSummary| {
        cwd.as_ref().map_or(true, |c| m.cwd.as_ref() == Some(c))
            && q.tags.iter().all(|p| job::tag_matches(&m.tags, p))
    };
    let mut cache = ListCache::load(store)?;
    let learning = cache.learning();
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let mut body = ListBody {
        root: store.display(),
        jobs: Vec::with_capacity(limit.min(64)),
        truncated: false,
        skipped: 0,
    };
    // Notes are checked with paths relative to the root.
    let root_dir = if learning {
        sys::open_dir_path(&store.root).ok()
    } else {
        None
    };
    while let Some(w) = cache.next() {
        if w.restart {
            body.jobs.clear();
            body.skipped = 0;
        }
        let noted = match (&root_dir, w.note.as_deref()) {
            (Some(root), Some(n)) => from_note(root, &w.name, n),
            _ => None,
        };
        let (meta, st) = match noted {
            Some(seen) => seen,
            None => {
                let j = store.job(&w.name);
                // One open of the directory for all its files.
                // A job that cannot be read is skipped, unless it is this
                // process that ran out of descriptors: then no answer is
                // better than "no jobs".
                let unreadable = || match sys::out_of_descriptors() {
                    Some(e) => Err(crate::error::Error::io("read the jobs root", e)),
                    None => Ok(()),
                };
                // A directory a gc or delete is removing (or has removed
                // since the walk began) is no damaged job: not counted.
                let skip = |body: &mut ListBody| {
                    if !crate::gc::being_removed(&j.dir) {
                        body.skipped += 1;
                    }
                };
                let Some(dir) = sys::Dir::open(&j.dir).ok() else {
                    unreadable()?;
                    skip(&mut body);
                    continue;
                };
                // Read whole, as `status` reads it: a meta.json that
                // `status` calls damaged is skipped here too, not shown
                // with blanks (a summary's lenient parse took `[1]` or a
                // `job` without an id for a job).
                let Some((meta, meta_file)) =
                    job::read_json_stamped_in::<job::Meta>(&dir, job::META)
                        .map(|(m, f)| (MetaSummary::of(m), f))
                else {
                    unreadable()?;
                    skip(&mut body);
                    continue;
                };
                if !learning && !wanted(&meta) {
                    continue; // its state is not needed
                }
                let (st, state_file) = read_state(&j, &dir);
                // Its state gone under a removal: gone, not `unknown`.
                if st.is_none() && crate::gc::being_removed(&j.dir) {
                    continue;
                }
                if learning {
                    let meta_file = Some(FileId::of(&meta_file));
                    let note = make_note(&meta, meta_file, st.as_ref(), state_file, cache.t0);
                    if note.is_some() || w.note.is_some() {
                        cache.learn(&w.name, note);
                    }
                }
                (meta, st)
            }
        };
        if !wanted(&meta) {
            continue;
        }
        let state = st
            .as_ref()
            .and_then(|s| s.status)
            .map_or("unknown", Status::as_str);
        let shown = if q.active {
            matches!(state, "running" | "queued")
        } else {
            q.state.as_deref().map_or(true, |want| want == state)
        };
        if !shown {
            continue;
        }
        if limit > 0 && body.jobs.len() == limit {
            body.truncated = true;
            break;
        }
        let st = st.unwrap_or_default();
        body.jobs.push(ListEntry {
            job_id: w.name,
            // Unique among every job directory of the root.
            short_job_id: w.short_id,
            state,
            exit_code: st.exit_code,
            signal: st.signal,
            created_at: meta.created_at,
            started_at: st.started_at,
            finished_at: st.finished_at,
            updated_at: st.updated_at,
            duration_ms: st.duration_ms,
            output_lost: st.output_lost,
            tags: meta.tags,
            ran: crate::usage::RanCost {
                ran: crate::usage::Ran {
                    command: meta.command,
                    cwd: meta.cwd,
                },
                cost: st.cost,
            },
            queued: st.queued,
        });
    }
    // Directories whose names are not UTF-8 come after every name (no
    // id can name them, so they are never read): skipped once the walk
    // has reached the end.
    if !body.truncated {
        body.skipped += cache.foreign();
    }
    cache.save();
    Ok(body)
}

/// What `list` shows of meta.json.
struct MetaSummary {
    created_at: String,
    cwd: Option<String>,
    tags: Vec<String>,
    command: Vec<String>,
}

impl MetaSummary {
    fn of(m: job::Meta) -> MetaSummary {
        MetaSummary {
            created_at: m.created_at,
            cwd: m.cwd,
            tags: m.tags,
            command: m.command,
        }
    }
}

/// What `list` shows of state.json.
#[derive(Default)]
struct StateSummary {
    /// None: no status recorded (listed `unknown`).
    status: Option<Status>,
    exit_code: Option<i32>,
    signal: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    updated_at: Option<String>,
    /// Terminal jobs only, like `cost`.
    duration_ms: Option<u64>,
    /// Terminal jobs only (`usage::Cost::of`).
    cost: crate::usage::Cost,
    queued: crate::queue::QueueInfo,
    output_lost: Vec<job::OutputLoss>,
}

impl From<job::State> for StateSummary {
    fn from(s: job::State) -> Self {
        StateSummary {
            duration_ms: s.result.duration_ms.filter(|_| s.status().is_terminal()),
            cost: crate::usage::Cost::of(&s),
            queued: crate::queue::QueueInfo::of(&s),
            status: Some(s.status()),
            exit_code: s.result.exit_code,
            signal: s.result.signal,
            started_at: s.job.started_at,
            finished_at: s.finished_at,
            updated_at: Some(s.updated_at),
            output_lost: s.output_lost,
        }
    }
}

/// The job's state as it really is (a running job whose supervisor is
/// gone reads `failed`), with the file's stamp when it is final.
fn read_state(j: &job::Job, dir: &sys::Dir) -> (Option<StateSummary>, Option<FileId>) {
    if let Some((s, file)) = job::read_json_stamped_in::<job::State>(dir, job::STATE) {
        if s.status().is_terminal() && !s.finished_owed {
            // A timed-out job whose supervisor died waiting out
            // `--kill-after` owes its leftovers a SIGKILL, which any read
            // sends once due (`kill_overdue_leftovers`), a listing too.
            // Not noted while any of them lives: the next listing looks
            // again (a noted job's files are not read).
            if s.result.timed_out {
                crate::observe::kill_overdue_leftovers(j, &s, false);
                if s.own_processes(j).is_ok_and(|left| !left.is_empty()) {
                    return (Some(s.into()), None);
                }
            }
            return (Some(s.into()), Some(FileId::of(&file)));
        }
        // Not final, or a finished job whose `job.finished` is still owed
        // (rewritten once sent, so not to be noted): the general read,
        // from what was read, checks for a lost supervisor and has an
        // owed event sent if nobody is sending it.
        return (
            crate::observe::current_state_in(j, dir, s)
                .ok()
                .map(|s| crate::observe::as_shown(j, s).into()),
            None,
        );
    }
    // Missing (a job being defined), damaged, or replaced meanwhile:
    // the general path says which.
    (crate::observe::current_state(j).ok().map(Into::into), None)
}

/// The cache note for a job read in a final state from files that had
/// settled before this listing began (so that no later write can keep
/// their stamps): both stamps, then what `list` shows, as JSON.
fn make_note(
    meta: &MetaSummary,
    meta_file: Option<FileId>,
    st: Option<&StateSummary>,
    state_file: Option<FileId>,
    t0: i128,
) -> Option<String> {
    let (m, s, st) = (meta_file?, state_file?, st?);
    let status = st.status.filter(|s| s.is_terminal())?;
    let settled = |f: FileId| store::settled(f.ctime_ns, t0);
    if !settled(m) || !settled(s) {
        return None;
    }
    let shown = (
        &meta.created_at,
        &meta.cwd,
        &meta.tags,
        status.as_str(),
        st.exit_code,
        &st.started_at,
        &st.finished_at,
        &st.updated_at,
        &meta.command,
        (st.cost.cpu_user_ms, st.cost.cpu_sys_ms, st.cost.max_rss_kb),
        st.duration_ms,
        &st.signal,
        &st.output_lost,
    );
    Some(format!("{m} {s} {}", serde_json::to_string(&shown).ok()?))
}

/// A note's JSON: what `list` shows, in `make_note`'s order.
type Shown = (
    String,
    Option<String>,
    Vec<String>,
    String,
    Option<i32>,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    (Option<u64>, Option<u64>, Option<u64>),
    Option<u64>,
    Option<String>,
    Vec<job::OutputLoss>,
);

/// A note's summary, if both files of job `name` in `root` are still as
/// the note saw them.
fn from_note(root: &File, name: &str, note: &str) -> Option<(MetaSummary, Option<StateSummary>)> {
    let (m, rest) = note.split_once(' ')?;
    let (s, json) = rest.split_once(' ')?;
    let holds = |file: &str, id: &str| {
        FileId::parse(id).is_some_and(|id| sys::stat_at(root, name, file).is_ok_and(|f| f == id))
    };
    if !holds(job::META, m) || !holds(job::STATE, s) {
        return None;
    }
    let (
        created_at,
        cwd,
        tags,
        status,
        exit_code,
        started_at,
        finished_at,
        updated_at,
        command,
        (cpu_user_ms, cpu_sys_ms, max_rss_kb),
        duration_ms,
        signal,
        output_lost,
    ): Shown = serde_json::from_str(json).ok()?;
    let status = [Status::Exited, Status::Killed, Status::Failed]
        .into_iter()
        .find(|t| t.as_str() == status)?;
    let meta = MetaSummary {
        created_at,
        cwd,
        tags,
        command,
    };
    let st = StateSummary {
        status: Some(status),
        exit_code,
        signal,
        started_at,
        finished_at,
        updated_at,
        duration_ms,
        output_lost,
        cost: crate::usage::Cost {
            cpu_user_ms,
            cpu_sys_ms,
            max_rss_kb,
        },
        // Noted jobs are terminal: not queued, and `queue` is only
        // shown from the state file itself.
        queued: Default::default(),
    };
    Some((meta, Some(st)))
}

/// The query of `list` / `ps` flags. Without `--cwd` or `--all` the
/// caller's directory is the filter: one that cannot be read, or is not
/// UTF-8, is an error (`caller_dir`), never a filter that matches
/// nothing or the jobs of `/`.
fn query(m: &Matches, state: Option<String>) -> Result<ListQuery> {
    let cwd = match (m.has("all"), m.get("cwd")) {
        (true, _) => None,
        // As `run --cwd ''` and `GET /list?cwd=`: an unset variable in a
        // script, not a way to name the current directory.
        (false, Some("")) => return Err(crate::error::Error::usage("--cwd must not be empty")),
        // Relative to a current directory that must exist: a removed one
        // is an error, never a filter that matches nothing.
        (false, Some(c)) if Path::new(c).is_relative() => {
            caller_dir_or("pass --cwd with a path that is, or --all")?;
            Some(c.to_string())
        }
        (false, Some(c)) => Some(c.to_string()),
        (false, None) => Some(caller_dir_or("pass --cwd with a path that is, or --all")?),
    };
    Ok(ListQuery {
        active: false,
        limit: m.u64("limit").unwrap_or(50),
        state,
        cwd,
        tags: m.all("tag").into_iter().map(str::to_string).collect(),
    })
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let body = list_jobs(&store, &query(m, m.get("state").map(str::to_string))?)?;
    Ok(Output::Doc(list_response(&body)?))
}

/// `ps`: the running and queued jobs.
pub fn exec_ps(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let q = ListQuery {
        active: true,
        ..query(m, None)?
    };
    let body = list_jobs(&store, &q)?;
    Ok(Output::Doc(list_response(&body)?))
}

/// An entry is about 300 bytes of JSON: one buffer for the document.
fn list_response(body: &ListBody) -> Result<Response> {
    Response::with_capacity("list", body, 1024 + 320 * body.jobs.len())
}
