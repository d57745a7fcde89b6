//! `list` / `ps`: jobs newest-created first, filtered by working
//! directory (the current one unless `--cwd DIR` or `--all`), `--state`
//! and `--tag` patterns (all must match). `ps` is `list --state running`.
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
//! - `skipped` counts job directories whose meta.json could not be read
//!   among those walked; an unreadable state.json lists the job as
//!   `unknown`.
//!
//! Rejected: 0.2.3 read every job and sorted by `started_at` strings,
//! which made `list --limit 5` cost as much as the whole root.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::Matches;
use crate::error::Result;
use crate::job;
use crate::output::{Output, Response};
use crate::store::{self, Store};

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
}

#[derive(Serialize)]
pub struct ListEntry {
    pub job_id: String,
    pub short_job_id: String,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub tags: Vec<String>,
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

/// The caller's working directory, normalised like a job's `cwd`.
pub fn current_dir() -> String {
    normalize_dir(&std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")))
}

pub fn list_jobs(store: &Store, q: &ListQuery) -> Result<ListBody> {
    for t in &q.tags {
        job::validate_tag_pattern(t)?;
    }
    let cwd = q.cwd.as_deref().map(|c| normalize_dir(Path::new(c)));
    let names = store.names_cached()?;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let mut body = ListBody {
        root: store.display(),
        jobs: Vec::new(),
        truncated: false,
        skipped: 0,
    };
    for name in names.oldest_first().rev() {
        let j = store.job(name);
        let Some(meta) = read_summary(&j) else {
            body.skipped += 1;
            continue;
        };
        if cwd.as_ref().is_some_and(|c| meta.cwd.as_ref() != Some(c)) {
            continue;
        }
        if !q.tags.iter().all(|p| job::tag_matches(&meta.tags, p)) {
            continue;
        }
        let st = crate::observe::current_state(&j).ok();
        let state = st.as_ref().map_or("unknown", |s| s.status().as_str());
        if q.state.as_deref().is_some_and(|want| want != state) {
            continue;
        }
        if limit > 0 && body.jobs.len() == limit {
            body.truncated = true;
            break;
        }
        body.jobs.push(ListEntry {
            job_id: name.to_string(),
            short_job_id: String::new(),
            state,
            exit_code: st.as_ref().and_then(|s| s.result.exit_code),
            created_at: meta.created_at,
            started_at: st.as_ref().and_then(|s| s.job.started_at.clone()),
            finished_at: st.as_ref().and_then(|s| s.finished_at.clone()),
            updated_at: st.map(|s| s.updated_at),
            tags: meta.tags,
        });
    }
    // Unique among every job directory of the root, not only these.
    for e in &mut body.jobs {
        e.short_job_id = names.short_id(&e.job_id);
    }
    Ok(body)
}

/// What `list` needs of meta.json: parsed without allocating for the
/// fields it skips (most of the file).
#[derive(serde::Deserialize)]
struct MetaSummary {
    /// Required (a directory without it is not a job), never read.
    #[serde(rename = "job")]
    _job: serde::de::IgnoredAny,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

fn read_summary(j: &job::Job) -> Option<MetaSummary> {
    job::read_json(&j.path(job::META)).ok()
}

fn query(m: &Matches, state: Option<String>) -> ListQuery {
    ListQuery {
        limit: m.u64("limit").unwrap_or(50),
        state,
        cwd: if m.has("all") {
            None
        } else {
            Some(m.get("cwd").map_or_else(current_dir, str::to_string))
        },
        tags: m.all("tag").into_iter().map(str::to_string).collect(),
    }
}

pub fn exec(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let body = list_jobs(&store, &query(m, m.get("state").map(str::to_string)))?;
    Ok(Output::Doc(Response::new("list", &body)))
}

/// `ps`: `list --state running`.
pub fn exec_ps(m: &Matches) -> Result<Output> {
    let store = super::store(m);
    let body = list_jobs(&store, &query(m, Some("running".to_string())))?;
    Ok(Output::Doc(Response::new("list", &body)))
}
