//! `gc` and auto-GC: the three retention rules as a union, reasons,
//! dry runs, active jobs untouched, stale jobs reconciled, sizes without
//! symlinks; auto-GC after `run` / `start`, its switches, guard and
//! budgets.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::TempRoot;

const DAY: u64 = 86_400;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

use support::ts_of_unix as ts;

/// A ULID id created at Unix second `unix`.
fn id_at(unix: u64, n: u128) -> String {
    ulid::Ulid::from_parts(unix * 1000, n).to_string()
}

/// A terminal job created and finished `ago` seconds ago.
fn finished(t: &TempRoot, state: &str, ago: u64, n: u128) -> String {
    let at = now() - ago;
    let id = id_at(at - 5, n);
    t.fabricate(&id, state, &t.cwd, Some(&ts(at)));
    id
}

/// The first process whose command line holds `needle`, waited for up
/// to `secs` (`why` says what was missing).
fn first_pid(t: &TempRoot, needle: &str, secs: u64, why: impl Fn() -> String) -> u32 {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(&pid) = t.pids_matching(needle).first() {
            return pid;
        }
        assert!(std::time::Instant::now() < until, "{}", why());
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `kill SIG pid` (`-STOP`, `-CONT`, ...).
fn send(pid: u32, sig: &str) -> std::process::ExitStatus {
    Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
}

/// A long-running job that does not collect anything itself.
fn live(t: &TempRoot) -> String {
    let v = t.ok(&["run", "--no-auto-gc", "--no-wait", "--", "sleep", "30"]);
    v["job_id"].as_str().unwrap().to_string()
}

/// Wait (20 s at most) until the supervisor `pid` is gone.
fn supervisor_gone(pid: u64) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while support::process_alive(pid) {
        assert!(std::time::Instant::now() < until, "the supervisor lingers");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn entry<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {v}"))
}

fn counters(v: &Value) -> [u64; 7] {
    [
        "deleted",
        "skipped",
        "out_of_scope",
        "failed",
        "scanned_dirs",
        "candidate_count",
        "freed_bytes",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}")))
}

#[test]
fn timestamp_helper_matches_the_binary() {
    let t = TempRoot::new();
    let id = t.start_job(&["true"]);
    let before = ts(now());
    let st = t.wait_done(&id);
    let after = ts(now() + 1);
    let fin = st["finished_at"].as_str().unwrap().to_string();
    assert!(before <= fin && fin <= after, "{before} {fin} {after}");
    assert_eq!(ts(0), "1970-01-01T00:00:00Z");
    assert_eq!(ts(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn old_jobs_go_active_and_recent_ones_stay() {
    let t = TempRoot::new();
    let old = finished(&t, "exited", 40 * DAY, 1);
    let old_killed = finished(&t, "killed", 31 * DAY, 2);
    let recent = finished(&t, "failed", 29 * DAY, 3);
    let old_running = id_at(now() - 90 * DAY, 4);
    t.fabricate(&old_running, "running", &t.cwd, None);
    let old_created = id_at(now() - 90 * DAY, 5);
    t.fabricate(&old_created, "created", &t.cwd, None);
    std::fs::create_dir_all(t.root.join("stray")).unwrap();
    let live = live(&t);

    let o = t.out(&["gc"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    o.assert_order(&[
        "schema_version",
        "ok",
        "type",
        "root",
        "dry_run",
        "older_than",
        "older_than_source",
        "deleted",
        "skipped",
        "out_of_scope",
        "failed",
        "freed_bytes",
        "scanned_dirs",
        "candidate_count",
        "jobs",
        "job_id",
        "state",
        "action",
        "reason",
        "bytes",
    ]);
    let v = o.json();
    assert_eq!(v["type"], "gc");
    assert_eq!(v["root"], t.root.to_str().unwrap());
    assert_eq!(v["dry_run"], false);
    assert_eq!(v["older_than"], "30d");
    assert_eq!(v["older_than_source"], "default");
    let c = counters(&v);
    assert_eq!(c[..6], [2, 5, 5, 0, 7, 2], "{v}");
    assert!(c[6] > 0, "freed bytes");
    for id in [&old, &old_killed] {
        let e = entry(&v, id);
        assert_eq!(
            (e["action"].as_str(), e["reason"].as_str()),
            (Some("deleted"), Some("older_than"))
        );
        assert!(e["bytes"].as_u64().unwrap() > 0);
        assert!(!t.job_dir(id).exists());
    }
    assert_eq!(entry(&v, &old_killed)["state"], "killed");
    let e = entry(&v, &recent);
    assert_eq!(
        (e["action"].as_str(), e["reason"].as_str()),
        (Some("skipped"), Some("too_recent"))
    );
    // Active jobs are never touched, however old: a created job too.
    for (id, st) in [
        (&old_running, "running"),
        (&live, "running"),
        (&old_created, "created"),
    ] {
        let e = entry(&v, id);
        assert_eq!(e["state"], st);
        assert_eq!(
            (e["action"].as_str(), e["reason"].as_str()),
            (Some("skipped"), Some("active_job"))
        );
        assert!(t.job_dir(id).join("meta.json").exists());
    }
    let e = entry(&v, "stray");
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("unknown"), Some("state_unreadable"))
    );
    assert!(t.job_dir(&recent).exists());
    assert_eq!(t.ok(&["status", &live])["state"], "running");

    // --older-than, from the flag.
    let v = t.ok(&["gc", "--older-than", "28d", "--dry-run"]);
    assert_eq!(
        (v["older_than"].as_str(), v["older_than_source"].as_str()),
        (Some("28d"), Some("flag"))
    );
    assert_eq!(entry(&v, &recent)["action"], "would_delete");
    for d in ["695h", "41700m", "2502000s", "2502000"] {
        let v = t.ok(&["gc", "--older-than", d, "--dry-run"]);
        assert_eq!(entry(&v, &recent)["action"], "would_delete", "{d}");
        assert_eq!(v["older_than"], d);
    }
    t.ok(&["kill", &live]);
}

#[test]
fn dry_run_reports_and_keeps_everything() {
    let t = TempRoot::new();
    let a = finished(&t, "exited", 40 * DAY, 1);
    let b = finished(&t, "exited", 50 * DAY, 2);
    std::fs::write(t.job_dir(&a).join("stdout.log"), vec![b'x'; 1000]).unwrap();
    let v = t.ok(&["gc", "--dry-run"]);
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], 0);
    assert_eq!(v["candidate_count"], 2);
    let (ea, eb) = (entry(&v, &a), entry(&v, &b));
    assert_eq!(ea["action"], "would_delete");
    assert_eq!(eb["action"], "would_delete");
    let (ba, bb) = (ea["bytes"].as_u64().unwrap(), eb["bytes"].as_u64().unwrap());
    assert!(ba >= 1000 && ba > bb, "{v}");
    assert_eq!(v["freed_bytes"].as_u64(), Some(ba + bb));
    // Executed entries come oldest first.
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["job_id"], b.as_str());
    assert!(t.job_dir(&a).exists() && t.job_dir(&b).exists());
    // The real run frees exactly what the dry run announced.
    let r = t.ok(&["gc"]);
    assert_eq!(r["freed_bytes"], v["freed_bytes"]);
    assert_eq!(r["deleted"], 2);
}

#[test]
fn max_jobs_keeps_the_newest_n_terminal_jobs() {
    let t = TempRoot::new();
    // Five recent terminal jobs, one old one, one active.
    let recent: Vec<String> = (1..=5)
        .map(|h| finished(&t, "exited", h * 3600, h as u128))
        .collect(); // recent[0] is the newest
    let old = finished(&t, "exited", 60 * DAY, 9);
    let running = id_at(now() - 1000, 10);
    t.fabricate(&running, "running", &t.cwd, None);

    let v = t.ok(&["gc", "--max-jobs", "2"]);
    assert_eq!(v["candidate_count"], 4, "{v}");
    assert_eq!(v["deleted"], 4);
    assert_eq!(entry(&v, &old)["reason"], "older_than+max_jobs");
    for id in &recent[2..] {
        assert_eq!(entry(&v, id)["reason"], "max_jobs");
        assert!(!t.job_dir(id).exists());
    }
    for id in &recent[..2] {
        assert_eq!(entry(&v, id)["reason"], "too_recent");
        assert!(t.job_dir(id).exists());
    }
    assert_eq!(entry(&v, &running)["reason"], "active_job");
    assert!(t.job_dir(&running).exists());

    // max-jobs 0 removes every terminal job, never an active one.
    let v = t.ok(&["gc", "--max-jobs", "0"]);
    assert_eq!(v["deleted"], 2);
    assert!(t.job_dir(&running).exists());
    // Fewer terminal jobs than N: nothing to do.
    let a = finished(&t, "exited", 60, 20);
    let v = t.ok(&["gc", "--max-jobs", "5"]);
    assert_eq!(v["deleted"], 0);
    assert!(t.job_dir(&a).exists());
}

#[test]
fn max_bytes_deletes_oldest_first_until_under_the_limit() {
    let t = TempRoot::new();
    // Four recent jobs of a little over 10 kB each.
    let ids: Vec<String> = (1..=4)
        .map(|h| {
            let id = finished(&t, "exited", h * 3600, h as u128);
            std::fs::write(t.job_dir(&id).join("stdout.log"), vec![b'x'; 10_000]).unwrap();
            id
        })
        .collect(); // ids[3] is the oldest
    let v = t.ok(&["gc", "--max-bytes", "25000", "--dry-run"]);
    let total: u64 = ids
        .iter()
        .map(|id| entry(&v, id)["bytes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(v["candidate_count"], 2, "{v}");
    for id in &ids[2..] {
        let e = entry(&v, id);
        assert_eq!(
            (e["action"].as_str(), e["reason"].as_str()),
            (Some("would_delete"), Some("max_bytes"))
        );
    }
    for id in &ids[..2] {
        assert_eq!(entry(&v, id)["reason"], "too_recent");
    }
    let freed = v["freed_bytes"].as_u64().unwrap();
    assert!(freed > 20_000 && freed < 22_000, "{v}");
    assert!(total == freed);

    // All three rules at once, and their order in `reason`.
    let old = finished(&t, "exited", 40 * DAY, 30);
    std::fs::write(t.job_dir(&old).join("stdout.log"), vec![b'x'; 10_000]).unwrap();
    let v = t.ok(&["gc", "--max-bytes", "25000", "--max-jobs", "3"]);
    assert_eq!(
        entry(&v, &old)["reason"],
        "older_than+max_jobs+max_bytes",
        "{v}"
    );
    assert_eq!(entry(&v, &ids[3])["reason"], "max_jobs+max_bytes");
    assert_eq!(entry(&v, &ids[2])["reason"], "max_bytes");
    assert_eq!(v["deleted"], 3);
    assert!(t.job_dir(&ids[0]).exists() && t.job_dir(&ids[1]).exists());
    // Already under the limit: nothing.
    assert_eq!(t.ok(&["gc", "--max-bytes", "1000000"])["deleted"], 0);
}

/// `--max-bytes` passes over a job that cannot be removed now (here a
/// process of it lives: `pid_alive`), its bytes still counted, and goes
/// on to the next oldest until the total is under the limit. It stopped
/// at such a job, short of the limit, and so did every later gc (audit
/// 30).
#[test]
fn max_bytes_passes_over_a_job_that_cannot_go_now() {
    let t = TempRoot::new();
    let (mut member, pid, sid, start) = support::group_leader("61.5");
    // Four jobs of a little over 10 kB each; the oldest still lives.
    let ids: Vec<String> = (1..=4)
        .map(|h| {
            let id = finished(&t, "exited", h * 3600, h as u128);
            std::fs::write(t.job_dir(&id).join("stdout.log"), vec![b'x'; 10_000]).unwrap();
            id
        })
        .collect(); // ids[3] is the oldest
    let state = t.job_dir(&ids[3]).join("state.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    v["pid"] = pid.into();
    v["sid"] = sid.into();
    v["pid_start_time"] = start.into();
    std::fs::write(&state, v.to_string()).unwrap();
    for dry in [true, false] {
        let mut args = vec!["gc", "--max-bytes", "25000"];
        if dry {
            args.push("--dry-run");
        }
        let v = t.ok(&args);
        assert_eq!(entry(&v, &ids[3])["reason"], "pid_alive", "{v}");
        let gone = if dry { "would_delete" } else { "deleted" };
        for id in &ids[1..3] {
            assert_eq!(entry(&v, id)["action"], gone, "{v}");
        }
        assert_eq!(entry(&v, &ids[0])["reason"], "too_recent", "{v}");
        assert_eq!(v["candidate_count"], 2, "{v}");
    }
    assert!(t.job_dir(&ids[3]).exists() && t.job_dir(&ids[0]).exists());
    let _ = member.kill();
    let _ = member.wait();
}

/// The remains of an earlier removal (set aside under `.gone-` in the
/// root) that gc removes are counted in its freed_bytes, and a dry run
/// counts them without removing them: they went unreported (audit 30).
#[test]
fn removal_remains_count_in_freed_bytes() {
    let t = TempRoot::new();
    let id = finished(&t, "exited", 3600, 1);
    let remains = t.root.join(".gone-AAAAAAAAAAAAAAAAAAAA");
    std::fs::create_dir_all(&remains).unwrap();
    std::fs::write(remains.join("stdout.log"), vec![b'x'; 5000]).unwrap();
    let v = t.ok(&["gc", "--dry-run"]);
    assert_eq!(v["freed_bytes"], 5000, "{v}");
    assert!(remains.exists());
    let v = t.ok(&["gc"]);
    assert_eq!(v["freed_bytes"], 5000, "{v}");
    assert!(!remains.exists());
    // Not a job: not listed; the job itself is too recent.
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(entry(&v, &id)["reason"], "too_recent");
}

#[test]
fn sizes_do_not_follow_symlinks() {
    let t = TempRoot::new();
    let big = t.base.join("big.bin");
    std::fs::write(&big, vec![0u8; 200_000]).unwrap();
    let outside = t.base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"keep").unwrap();
    let id = finished(&t, "exited", 40 * DAY, 1);
    std::os::unix::fs::symlink(&big, t.job_dir(&id).join("link")).unwrap();
    std::os::unix::fs::symlink(&outside, t.job_dir(&id).join("dirlink")).unwrap();
    let v = t.ok(&["gc"]);
    let e = entry(&v, &id);
    assert_eq!(e["action"], "deleted");
    assert!(e["bytes"].as_u64().unwrap() < 10_000, "{v}");
    assert!(big.exists(), "the symlink target was removed");
    assert!(outside.join("keep").exists());
}

#[test]
fn timestamps_are_parsed_not_compared_as_text() {
    let t = TempRoot::new();
    let when = now() - 40 * DAY;
    // Other RFC 3339 spellings of UTC are understood.
    let frac = id_at(when, 1);
    t.fabricate(
        &frac,
        "exited",
        &t.cwd,
        Some(&ts(when).replace('Z', ".250Z")),
    );
    let offset = id_at(when, 2);
    t.fabricate(
        &offset,
        "exited",
        &t.cwd,
        Some(&ts(when).replace('Z', "+00:00")),
    );
    // A garbage finished_at falls back to updated_at.
    let fallback = id_at(when, 3);
    t.fabricate(&fallback, "exited", &t.cwd, Some(&ts(when)));
    let p = t.job_dir(&fallback).join("state.json");
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    st["finished_at"] = json!("yesterday-ish");
    std::fs::write(&p, st.to_string()).unwrap();
    // Neither parses: kept, with a reason.
    let none = id_at(when, 4);
    t.fabricate(&none, "exited", &t.cwd, Some("not a time"));
    let recent = finished(&t, "exited", 60, 5);
    let v = t.ok(&["gc"]);
    for id in [&frac, &offset, &fallback] {
        assert_eq!(entry(&v, id)["action"], "deleted", "{id}: {v}");
    }
    assert_eq!(entry(&v, &none)["reason"], "no_timestamp");
    assert_eq!(entry(&v, &recent)["reason"], "too_recent");
}

#[test]
fn stale_running_jobs_are_reconciled_then_collected() {
    let t = TempRoot::new();
    let stale = id_at(now() - 90 * DAY, 1);
    t.fabricate(&stale, "running", &t.cwd, None);
    std::fs::write(t.job_dir(&stale).join("lock"), b"").unwrap();
    // Reconciled now: it finished (failed) now, so the age rule keeps it.
    let v = t.ok(&["gc"]);
    let e = entry(&v, &stale);
    assert_eq!(
        (e["state"].as_str(), e["reason"].as_str()),
        (Some("failed"), Some("too_recent"))
    );
    assert_eq!(t.state(&stale)["failure"]["code"], "supervisor_lost");
    // ... and it is an ordinary terminal job for the other rules.
    let v = t.ok(&["gc", "--max-jobs", "0"]);
    assert_eq!(entry(&v, &stale)["action"], "deleted");
}

#[test]
fn invalid_durations_are_usage_errors_even_without_a_root() {
    let t = TempRoot::new();
    for bad in ["5x", "", "1d12h", "-1d", "++1d", "3.5.h", "1D", "d", " "] {
        let (code, e) = t.err(&["gc", "--older-than", bad]);
        assert_eq!(code, 2, "{bad:?}");
        assert_eq!(e["error"]["code"], "invalid_duration", "{bad:?}");
    }
    assert!(!t.root.exists());
    // A leading `+` is a positive number, as 0.2.3 took it.
    let v = t.ok(&["gc", "--older-than", "+7d"]);
    assert_eq!(v["older_than"], "+7d", "{v}");
    let v = t.ok(&["gc"]);
    assert_eq!(counters(&v), [0; 7]);
    assert_eq!(v["jobs"], json!([]));
    let (code, _) = t.err(&["gc", "--max-jobs", "many"]);
    assert_eq!(code, 2);
}

/// Durations trim surrounding whitespace (0.2.3 §6.2); `gc` echoes
/// `older_than` as given.
#[test]
fn durations_trim_surrounding_whitespace_and_gc_echoes_the_raw_value() {
    let t = TempRoot::new();
    // Ten days: older than 7d, younger than auto-GC's default 30d.
    let old = finished(&t, "exited", 10 * DAY, 1);
    for raw in [" 7d ", "\t7d", "7d\n"] {
        let v = t.ok(&["gc", "--older-than", raw, "--dry-run"]);
        assert_eq!(v["older_than"], raw, "{v}");
        assert_eq!(entry(&v, &old)["action"], "would_delete", "{v}");
    }
    let v = t.ok(&["run", "--timeout", " 5s ", "--until", " 10 ", "--", "true"]);
    assert_eq!(v["state"], "exited", "{v}");
    t.settle();
    assert!(t.job_dir(&old).exists());
    t.ok(&["run", "--auto-gc-older-than", " 7d ", "--", "true"]);
    t.settle();
    assert!(
        !t.job_dir(&old).exists(),
        "auto-GC went by the trimmed window"
    );
    let old = finished(&t, "exited", 3 * 3600, 2);
    write_config(&t, "[gc]\nolder_than = \" 2h \"\n");
    let o = t.out(&["run", "--", "true"]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(!o.stderr.contains("auto-gc skipped"), "{}", o.stderr);
    t.settle();
    assert!(
        !t.job_dir(&old).exists(),
        "auto-GC went by the config's trimmed window"
    );
}

// ---------------------------------------------------------------------------
// Auto-GC
// ---------------------------------------------------------------------------

fn write_config(t: &TempRoot, text: &str) {
    let d = t.base.join("config/agent-exec");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.toml"), text).unwrap();
}

/// An old finished job, and a legacy-named (non-ULID) old one.
fn old_pair(t: &TempRoot) -> (String, String) {
    let old = finished(t, "exited", 40 * DAY, 1);
    let legacy = "0123456789abcdef0123456789abcdef".to_string();
    t.fabricate(&legacy, "exited", &t.cwd, Some(&ts(now() - 40 * DAY)));
    (old, legacy)
}

#[test]
fn auto_gc_after_run_removes_old_jobs() {
    let t = TempRoot::new();
    let (old, legacy) = old_pair(&t);
    let recent = finished(&t, "exited", 3600, 2);
    let v = t.ok(&["run", "--", "echo", "hi"]);
    t.settle();
    assert_eq!(v["state"], "exited");
    assert_eq!(v["stdout"], "hi\n", "the run's own response is unchanged");
    assert!(!t.job_dir(&old).exists(), "old job survived auto-GC");
    assert!(!t.job_dir(&legacy).exists(), "legacy job survived auto-GC");
    assert!(t.job_dir(&recent).exists());
    let me = v["job_id"].as_str().unwrap();
    assert!(t.job_dir(me).join("meta.json").exists());
    // The guard is a lock file that stays, private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(t.root.join(".gc.lock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A job aged by hand (its state's finished_at set back, its id as new
/// as it was) is collected by auto-GC as by `gc`: in a small root the
/// scan does not stop at the first recent id.
#[test]
fn auto_gc_goes_by_finished_at_not_by_the_id() {
    let t = TempRoot::new();
    let aged = t.job_id_of(&["run", "--no-auto-gc", "--", "true"]);
    let kept = t.job_id_of(&["run", "--no-auto-gc", "--", "true"]);
    t.settle();
    let path = t.job_dir(&aged).join("state.json");
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let old = ts(now() - 40 * DAY);
    st["finished_at"] = json!(old);
    st["updated_at"] = json!(old);
    std::fs::write(&path, st.to_string()).unwrap();
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&aged).exists(), "aged job survived auto-GC");
    assert!(t.job_dir(&kept).exists());
}

/// Auto-GC's max_bytes weighs the job it follows as it will stay: the
/// state its end replaced, still under a scratch name for a moment, is
/// not the job's (counted, the limit took one job too many, every time).
#[test]
fn auto_gc_max_bytes_takes_only_what_the_limit_needs() {
    let t = TempRoot::new();
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let first = id(t.ok(&["run", "--no-auto-gc", "--", "true"]));
    let second = id(t.ok(&["run", "--no-auto-gc", "--", "true"]));
    t.settle();
    let v = t.ok(&["gc", "--max-jobs", "0", "--dry-run"]);
    let bytes = |id: &str| entry(&v, id)["bytes"].as_u64().unwrap();
    // Room for two such jobs and a little: a third is one too many.
    let limit = (bytes(&first) + bytes(&second) + 100).to_string();
    let third = id(t.ok(&["run", "--auto-gc-max-bytes", &limit, "--", "true"]));
    // The supervisor's collection is done when it is.
    t.settle();
    assert!(!t.job_dir(&first).exists(), "the oldest stayed");
    assert!(
        t.job_dir(&second).exists(),
        "max_bytes took a job it did not need to"
    );
    assert!(t.job_dir(&third).exists());
}

/// A job that ends without a run (a failed dependency, killed while
/// queued, a launch that failed, a lost supervisor) gives back the room
/// reserved for its end, as a run's end does: the 64 KiB stayed in its
/// lock file for good, and gc weighed the job at 70 times its size.
#[test]
fn an_end_without_a_run_gives_back_its_reserve() {
    let t = TempRoot::new();
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let ran = id(t.ok(&["run", "--", "true"]));
    let bad = id(t.ok(&["run", "--", "false"]));
    let dep = id(t.ok(&["run", "--after-ok", &bad, "--", "true"]));
    let first = id(t.ok(&["run", "--no-wait", "--queue", "q", "--", "sleep", "30"]));
    let queued = id(t.ok(&["run", "--no-wait", "--queue", "q", "--", "true"]));
    assert_eq!(t.ok(&["kill", &queued])["state"], "killed");
    t.ok(&["kill", &first]);
    let nowhere = t.base.join("nowhere");
    let lost_cwd = id(t.ok(&["run", "--cwd", nowhere.to_str().unwrap(), "--", "true"]));
    let lost = id(t.ok(&["run", "--no-wait", "--", "sleep", "30"]));
    let sup = t.state(&lost)["supervisor_pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    supervisor_gone(sup);
    assert_eq!(
        t.ok(&["status", &lost])["failure"]["code"],
        "supervisor_lost"
    );
    t.settle();
    let expect = [
        (&dep, "dependency_failed"),
        (&queued, ""),
        (&lost_cwd, "cwd_not_found"),
        (&lost, "supervisor_lost"),
    ];
    for (job, code) in expect {
        let st = t.ok(&["status", job]);
        assert_eq!(st["failure"]["code"].as_str().unwrap_or(""), code, "{st}");
        let d = t.job_dir(job);
        let lock = std::fs::metadata(d.join("lock"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert_eq!(lock, 0, "{code}: the reserve stayed");
        for name in [".state.next", ".state.run", ".state.prev"] {
            assert!(!d.join(name).exists(), "{code}: {name} stayed");
        }
    }
    // gc weighs each as about the size of a job that ran.
    let v = t.ok(&["gc", "--max-jobs", "0", "--dry-run"]);
    let bytes = |job: &str| entry(&v, job)["bytes"].as_u64().unwrap();
    for (job, _) in expect {
        assert!(bytes(job) < bytes(&ran) + 4096, "{v}");
    }
}

#[test]
fn auto_gc_after_start() {
    let t = TempRoot::new();
    let (old, _) = old_pair(&t);
    let id = t.job_id_of(&["create", "--", "true"]);
    assert!(t.job_dir(&old).exists(), "create does not collect");
    let v = t.ok(&["start", &id]);
    t.settle();
    assert_eq!(v["state"], "exited");
    assert!(!t.job_dir(&old).exists());
}

#[test]
fn auto_gc_can_be_switched_off() {
    let t = TempRoot::new();
    let (old, legacy) = old_pair(&t);
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    t.settle();
    let id = t.job_id_of(&["create", "--", "true"]);
    t.ok(&["start", "--no-auto-gc", &id]);
    t.settle();
    assert!(t.job_dir(&old).exists() && t.job_dir(&legacy).exists());

    write_config(&t, "[gc]\nauto = false\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(t.job_dir(&old).exists() && t.job_dir(&legacy).exists());

    write_config(&t, "[gc]\nauto = true\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&old).exists() && !t.job_dir(&legacy).exists());
}

#[test]
fn auto_gc_retention_and_pressure_from_flags_and_config() {
    let t = TempRoot::new();
    let two_hours = finished(&t, "exited", 2 * 3600, 1);
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(t.job_dir(&two_hours).exists());
    t.ok(&["run", "--auto-gc-older-than", "1h", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&two_hours).exists());

    // The config's window, then max_jobs pressure from a flag.
    let a = finished(&t, "exited", 3 * 3600, 2);
    write_config(&t, "[gc]\nolder_than = \"4h\"\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(t.job_dir(&a).exists());
    write_config(&t, "[gc]\nolder_than = \"2h\"\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&a).exists());

    // Keep the newest 2 terminal jobs: of the earlier runs (each
    // terminal now), all but the two newest go.
    let v = t.ok(&["list", "--limit", "0"]);
    assert!(v["jobs"].as_array().unwrap().len() >= 4, "{v}");
    t.ok(&["run", "--auto-gc-max-jobs", "2", "--", "true"]);
    t.settle();
    let v = t.ok(&["list", "--limit", "0"]);
    // Auto-GC runs once the launching job has ended (never before its
    // answer), so that job is itself among the newest two it keeps.
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2, "{v}");
}

/// A burst of launches into a root kept by `--auto-gc-max-jobs` is
/// collected once the launches stop, and the root is back at its count:
/// the launches that found the clean-up waiting for the root to go quiet
/// started none, and it took their budgets (here two deletions each)
/// with its own. The last launch's job, which its clean-up never removes, is
/// among the newest it keeps anyway; the first launch's job may be kept
/// as its own sweep's (one more than the count).
#[test]
fn a_burst_of_launches_ends_at_max_jobs() {
    let t = TempRoot::new();
    let old: Vec<String> = (0..5)
        .map(|i| finished(&t, "exited", 3600 + i, 300 + i as u128))
        .collect();
    write_config(&t, "[gc]\ndelete_limit = 2\n");
    let burst: Vec<String> = (0..6)
        .map(|_| t.job_id_of(&["run", "--auto-gc-max-jobs", "2", "--", "true"]))
        .collect();
    t.settle();
    for id in &old {
        assert!(
            !t.job_dir(id).exists(),
            "{id} outlived the burst's clean-up"
        );
    }
    for id in &burst[4..] {
        assert!(t.job_dir(id).exists(), "{id}: one of the newest two");
    }
    let left = burst.iter().filter(|id| t.job_dir(id).exists()).count();
    assert!((2..=3).contains(&left), "{left} of the burst left");
}

/// The clean-up after a `restart` of an old job keeps that job alone:
/// the jobs created before it are not launches it stands for, so neither
/// is the newest of them kept nor are their budgets taken (it spared the
/// newest job and deleted more than one launch's `delete_limit`).
#[test]
fn the_clean_up_after_a_restart_stands_for_that_launch_alone() {
    let t = TempRoot::new();
    let ids: Vec<String> = (0..4)
        .map(|_| t.job_id_of(&["run", "--no-auto-gc", "--", "true"]))
        .collect();
    t.settle();
    t.ok(&["restart", "--auto-gc-max-jobs", "0", &ids[0]]);
    t.settle();
    let left: Vec<bool> = ids.iter().map(|id| t.job_dir(id).exists()).collect();
    assert_eq!(left, vec![true, false, false, false]);
    // Its budget is one launch's: delete_limit 1 takes one job.
    let t = TempRoot::new();
    let ids: Vec<String> = (0..4)
        .map(|_| t.job_id_of(&["run", "--no-auto-gc", "--", "true"]))
        .collect();
    t.settle();
    write_config(&t, "[gc]\ndelete_limit = 1\n");
    t.ok(&["restart", "--auto-gc-max-jobs", "0", &ids[0]]);
    t.settle();
    let left = ids.iter().filter(|id| t.job_dir(id).exists()).count();
    assert_eq!(left, 3, "one deleted");
}

/// A clean-up that waits for its root to go quiet never sweeps another
/// directory: its root renamed and a symlink to elsewhere put in its
/// place meanwhile, it sweeps nothing (it swept the other directory).
/// The root is kept busy (a directory made and removed in it) so that
/// the clean-up is still waiting when it is stopped; the swap is made
/// while it is stopped.
#[test]
fn a_clean_up_never_sweeps_a_root_swapped_while_it_waits() {
    let t = TempRoot::new();
    let outside = TempRoot::new();
    let old: Vec<String> = (0..3)
        .map(|i| finished(&outside, "exited", 40 * DAY, 10 + i))
        .collect();
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let toucher = {
        let (root, busy) = (t.root.clone(), busy.clone());
        std::thread::spawn(move || {
            let d = root.join(".busy");
            while busy.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = std::fs::create_dir(&d);
                let _ = std::fs::remove_dir(&d);
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    t.ok(&["run", "--no-wait", "--", "true"]);
    let needle = format!("_gc {} ", t.root.display());
    let gc = first_pid(&t, &needle, 10, || "no clean-up started".to_string());
    let signal = |sig: &str| send(gc, sig);
    signal("-STOP");
    busy.store(false, std::sync::atomic::Ordering::SeqCst);
    toucher.join().unwrap();
    let moved = t.base.join("moved");
    std::fs::rename(&t.root, &moved).unwrap();
    std::os::unix::fs::symlink(&outside.root, &t.root).unwrap();
    signal("-CONT");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while t.pids_matching(&needle).contains(&gc) {
        assert!(
            std::time::Instant::now() < until,
            "the clean-up never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for id in &old {
        assert!(
            outside.job_dir(id).exists(),
            "{id} swept through the symlink"
        );
    }
}

#[test]
fn auto_gc_budgets_and_oldest_first() {
    let t = TempRoot::new();
    // Plenty of recent jobs created after three old ones.
    let old: Vec<String> = (0..3)
        .map(|i| finished(&t, "exited", (40 + i) * DAY, 100 + i as u128))
        .collect();
    for i in 0..10 {
        finished(&t, "exited", 3600 + i, 200 + i as u128);
    }
    // delete_limit: one per launch, oldest first.
    write_config(&t, "[gc]\ndelete_limit = 1\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    let left: Vec<bool> = old.iter().map(|id| t.job_dir(id).exists()).collect();
    assert_eq!(left, vec![true, true, false], "oldest (42 days) first");
    // scan_limit 0 scans nothing.
    write_config(&t, "[gc]\nscan_limit = 0\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(t.job_dir(&old[0]).exists() && t.job_dir(&old[1]).exists());
    // A small scan budget still reaches the old jobs: they come first.
    write_config(&t, "[gc]\nscan_limit = 2\n");
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&old[0]).exists() && !t.job_dir(&old[1]).exists());
}

/// A `[gc] older_than` that is no duration only skips auto-GC, with a
/// warning: the launch goes on (0.2.3 logged "auto-gc failed
/// (best-effort)"). `--auto-gc-older-than` says what the file could not.
/// A value of the wrong type is still a broken config.
#[test]
fn a_config_older_than_that_is_no_duration_skips_auto_gc_with_a_warning() {
    let t = TempRoot::new();
    let (old, _) = old_pair(&t);
    write_config(&t, "[gc]\nolder_than = \"bogus\"\n");
    let named = t.base.join("named.toml");
    std::fs::write(&named, "[gc]\nolder_than = \"bogus\"\n").unwrap();
    let named = named.to_str().unwrap();
    for args in [
        &["run", "--", "echo", "hi"][..],
        &["run", "--no-auto-gc", "--", "echo", "hi"],
        &["run", "--config", named, "--", "echo", "hi"],
    ] {
        let o = t.out(args);
        let v = o.json();
        assert_eq!(o.code, 0, "{args:?}: {v} {}", o.stderr);
        assert_eq!(v["stdout"], "hi\n", "{args:?}: {v}");
        let warned = o.stderr.contains("auto-gc skipped: ")
            && o.stderr.contains("gc.older_than: invalid duration: bogus");
        assert_eq!(warned, !args.contains(&"--no-auto-gc"), "{}", o.stderr);
    }
    // A job defined with the named file keeps its verdict for later launches.
    let id = t.job_id_of(&["create", "--config", named, "--", "true"]);
    std::fs::remove_file(named).unwrap();
    let o = t.out(&["start", &id]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(o.stderr.contains("auto-gc skipped: "), "{}", o.stderr);
    let id = t.job_id_of(&["create", "--", "true"]);
    let o = t.out(&["start", &id]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(o.stderr.contains("auto-gc skipped: "), "{}", o.stderr);
    t.settle();
    assert!(
        t.job_dir(&old).exists(),
        "collected with a retention nobody gave"
    );

    // serve reads the same file; /exec runs.
    let s = t.serve();
    let (code, v) = support::http_json(s.port, "POST", "/exec", r#"{"command":["echo","hi"]}"#);
    assert_eq!((code, &v["stdout"]), (200, &json!("hi\n")), "{v}");
    drop(s);

    t.ok(&["run", "--auto-gc-older-than", "30d", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&old).exists(), "the flag's retention applies");

    write_config(&t, "[gc]\nolder_than = 5\n");
    let (code, v) = t.err(&["run", "--no-auto-gc", "--", "true"]);
    assert_eq!(
        (code, &v["error"]["code"]),
        (1, &json!("invalid_config")),
        "{v}"
    );
}

#[test]
fn auto_gc_guard_is_a_lock_not_a_file() {
    let t = TempRoot::new();
    let (old, _) = old_pair(&t);
    // Someone else is collecting: this launch skips, and still succeeds.
    let mut holder = support::hold_flock(&t.root.join(".gc.lock"));
    let v = t.ok(&["run", "--", "true"]);
    t.settle();
    assert_eq!(v["state"], "exited");
    assert!(t.job_dir(&old).exists(), "ran despite a held guard");
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    // The file is still there, but nobody holds it: it does not block.
    assert!(t.root.join(".gc.lock").exists());
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&old).exists());
}

/// Each invocation's auto-GC settings hold (README: "CLI overrides
/// config for each invocation"), even when another launch's sweep is
/// under way: a `run --auto-gc-max-jobs 1` that finds the guard held by a
/// sweep whose settings (its `rules` line) keep more, sweeps with its
/// own once that one is done. It left 7 jobs after a plain `run` and
/// started nothing (audit). One whose settings the holder's cover starts
/// nothing, as in a burst.
#[test]
fn auto_gc_settings_a_sweep_under_way_does_not_cover_get_their_turn() {
    let t = TempRoot::new();
    let old: Vec<String> = (0..4)
        .map(|i| finished(&t, "exited", 60 + i, 10 + i as u128))
        .collect();
    let guard = t.root.join(".gc.lock");
    // A sweep under way that keeps every job younger than 30 days.
    std::fs::write(&guard, "rules o=2592000,j=-,b=-,s=100000,d=100000\n").unwrap();
    let mut holder = support::hold_flock(&guard);
    let v = t.ok(&["run", "--auto-gc-max-jobs", "1", "--", "true"]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    // Its sweep waits for the one under way: nothing is removed yet.
    let root = t.root.display().to_string();
    first_pid(&t, &format!("_gc {root} {id}"), 10, || {
        "no sweep waits for its turn".into()
    });
    assert!(old.iter().all(|o| t.job_dir(o).exists()));
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    t.settle();
    let v = t.ok(&["list", "--limit", "0"]);
    let left: Vec<&str> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [id.as_str()], "{v}");

    // Settings the holder's cover: no sweep of its own.
    let old = finished(&t, "exited", 60, 30);
    std::fs::write(&guard, "rules o=0,j=1,b=-,s=100000,d=100000\n").unwrap();
    let mut holder = support::hold_flock(&guard);
    t.ok(&["run", "--auto-gc-max-jobs", "1", "--", "true"]);
    t.settle();
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    assert!(t.job_dir(&old).exists(), "a covered launch swept");
}

#[test]
fn a_job_with_a_directory_for_its_meta_is_skipped_whole() {
    // meta.json replaced by a directory: an unlink cannot remove it, so
    // gc would stop half-way with the logs gone. It is skipped with
    // `unsafe_path` before anything is removed, dry run or not.
    let t = TempRoot::new();
    let id = finished(&t, "exited", 90 * 86_400, 1);
    for f in ["stdout.log", "stderr.log"] {
        std::fs::write(t.job_dir(&id).join(f), "x").unwrap();
    }
    let meta = t.job_dir(&id).join("meta.json");
    std::fs::remove_file(&meta).unwrap();
    std::fs::create_dir(&meta).unwrap();
    for dry in [true, false] {
        let mut args = vec!["gc", "--older-than", "1d"];
        if dry {
            args.push("--dry-run");
        }
        let v = t.ok(&args);
        let e = entry(&v, &id);
        assert_eq!(
            (&e["action"], &e["reason"]),
            (&json!("skipped"), &json!("unsafe_path")),
            "{v}"
        );
        assert_eq!(
            (v["out_of_scope"].as_u64(), v["failed"].as_u64()),
            (Some(1), Some(0)),
            "{v}"
        );
    }
    for f in ["state.json", "stdout.log", "stderr.log"] {
        assert!(t.job_dir(&id).join(f).exists(), "{f} removed");
    }
}

/// A job whose meta.json is a symlink or a FIFO is `unsafe_path` to
/// `status` and `delete`: gc skips it with that reason, dry run or not,
/// and removes nothing of it (it used to judge it by its state alone).
#[test]
fn gc_skips_a_job_whose_meta_json_is_a_symlink_or_a_fifo() {
    let t = TempRoot::new();
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let linked = id(t.ok(&["run", "--", "true"]));
    let fifo = id(t.ok(&["run", "--", "true"]));
    let fine = id(t.ok(&["run", "--", "true"]));
    t.settle();
    let outside = t.base.join("outside.json");
    std::fs::write(&outside, b"{}").unwrap();
    let meta = |j: &str| t.job_dir(j).join("meta.json");
    std::fs::remove_file(meta(&linked)).unwrap();
    std::os::unix::fs::symlink(&outside, meta(&linked)).unwrap();
    std::fs::remove_file(meta(&fifo)).unwrap();
    assert!(Command::new("mkfifo")
        .arg(meta(&fifo))
        .status()
        .unwrap()
        .success());
    for args in [
        vec!["gc", "--max-jobs", "0", "--dry-run"],
        vec!["gc", "--max-jobs", "0"],
    ] {
        let v = t.ok(&args);
        let jobs = v["jobs"].as_array().unwrap();
        for j in [&linked, &fifo] {
            let e = jobs
                .iter()
                .find(|e| e["job_id"] == j.as_str())
                .unwrap_or_else(|| panic!("{j} not listed: {v}"));
            assert_eq!(
                (&e["action"], &e["reason"]),
                (&json!("skipped"), &json!("unsafe_path")),
                "{args:?}: {v}"
            );
        }
        assert_eq!(v["out_of_scope"], 2, "{args:?}: {v}");
    }
    assert!(!t.job_dir(&fine).exists());
    for j in [&linked, &fifo] {
        for f in ["meta.json", "state.json", "stdout.log"] {
            let p = t.job_dir(j).join(f);
            assert!(std::fs::symlink_metadata(&p).is_ok(), "{j}/{f} removed");
        }
    }
    assert!(outside.exists());
    // Named by a prefix as by the full id: unsafe_path (a prefix read
    // job_not_found, of a job `list` shows).
    for j in [&linked, &fifo] {
        for cmd in ["status", "delete"] {
            let (_, e) = t.err(&[cmd, &j[..20]]);
            assert_eq!(e["error"]["code"], "unsafe_path", "{cmd} {j}: {e}");
        }
    }
}

/// Several removers at once (gc against gc, gc against `delete --all`):
/// each job is reported deleted by exactly one of them, and the counts
/// add up. A directory another remover took after this one found it
/// used to count as this one's deletion too.
#[test]
fn concurrent_removers_never_report_one_job_twice() {
    let t = TempRoot::new();
    let n = 30;
    for _ in 0..n {
        t.ok(&["run", "--no-auto-gc", "--", "true"]);
    }
    t.settle();
    let runs: [&[&str]; 3] = [
        &["gc", "--max-jobs", "0"],
        &["gc", "--max-jobs", "0"],
        &["delete", "--all"],
    ];
    let children: Vec<Child> = runs
        .iter()
        .map(|args| t.cmd(args).stdout(Stdio::piped()).spawn().unwrap())
        .collect();
    let mut seen = std::collections::BTreeMap::new();
    let mut total = 0;
    for c in children {
        let o = c.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let listed: Vec<&Value> = v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "deleted")
            .collect();
        assert_eq!(v["deleted"].as_u64(), Some(listed.len() as u64), "{v}");
        total += listed.len();
        for e in listed {
            *seen
                .entry(e["job_id"].as_str().unwrap().to_string())
                .or_insert(0) += 1;
        }
    }
    assert!(seen.values().all(|&k| k == 1), "{seen:?}");
    assert_eq!(total, n, "{seen:?}");
    assert_eq!(t.ok(&["list"])["jobs"].as_array().unwrap().len(), 0);
}

#[test]
fn a_directory_whose_name_is_not_utf8_is_counted_and_kept() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let odd = t.root.join(std::ffi::OsStr::from_bytes(b"stray\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::create_dir_all(t.root.join("strayfoo")).unwrap();
    for args in [&["gc", "--dry-run"][..], &["gc", "--older-than", "0s"]] {
        let v = t.ok(args);
        // Scanned and skipped like the stray directory beside it, but
        // not listed: it has no name to print.
        assert_eq!(counters(&v), [0, 2, 2, 0, 2, 0, 0], "{args:?}: {v}");
        assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
        entry(&v, "strayfoo");
        assert!(odd.is_dir(), "{args:?} removed it");
    }
}

/// A file system mounted inside a job directory (here a bind mount of
/// the same file system, which keeps its device number) is not the
/// job's: gc skips the job whole with `mount_point`, dry run or not, and
/// removes nothing under the mount nor of the job. It used to descend
/// into the mount and wipe it, then fail retryably on the mount point.
#[test]
fn a_job_with_a_mount_inside_is_skipped_and_the_mount_kept() {
    let t = TempRoot::new();
    let id = finished(&t, "exited", 90 * DAY, 1);
    let precious = t.base.join("precious");
    std::fs::create_dir_all(precious.join("sub")).unwrap();
    std::fs::write(precious.join("sub/gold"), "gold").unwrap();
    // Declared after `t`: dropped (unmounted) first.
    let Some(_mount) = support::Mount::bind(&precious, &t.job_dir(&id).join("mnt")) else {
        return;
    };
    for dry in [true, false] {
        let mut args = vec!["gc", "--older-than", "0s"];
        if dry {
            args.push("--dry-run");
        }
        let v = t.ok(&args);
        let e = entry(&v, &id);
        assert_eq!(
            (&e["action"], &e["reason"]),
            (&json!("skipped"), &json!("mount_point")),
            "{v}"
        );
        assert_eq!(
            (
                v["out_of_scope"].as_u64(),
                v["failed"].as_u64(),
                v["freed_bytes"].as_u64()
            ),
            (Some(1), Some(0), Some(0)),
            "{v}"
        );
        assert_eq!(
            std::fs::read_to_string(precious.join("sub/gold"))
                .ok()
                .as_deref(),
            Some("gold"),
            "files under the mount were removed"
        );
    }
    for f in ["meta.json", "state.json", "stdout.log"] {
        assert!(t.job_dir(&id).join(f).exists(), "{f} removed");
    }
    t.ok(&["status", &id]);
}

/// Three gc runs at once: each lists every candidate it chose (one that
/// another removed first as skipped, `already_deleted`), its counters
/// add up, and together they removed each job once.
#[test]
fn concurrent_gcs_each_account_for_every_candidate() {
    let t = TempRoot::new();
    for _ in 0..30 {
        t.ok(&["run", "--no-auto-gc", "--", "true"]);
    }
    let kids: Vec<_> = (0..3)
        .map(|_| {
            t.cmd(&["gc", "--max-jobs", "0"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut deleted = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap();
        let jobs = v["jobs"].as_array().unwrap();
        assert_eq!(jobs.len() as u64, n("candidate_count"), "{v}");
        assert_eq!(n("deleted") + n("skipped"), n("candidate_count"), "{v}");
        assert_eq!(n("skipped"), n("out_of_scope") + n("failed"), "{v}");
        for j in jobs.iter().filter(|j| j["action"] == "skipped") {
            assert_eq!(j["reason"], "already_deleted", "{v}");
        }
        deleted += n("deleted");
    }
    assert_eq!(deleted, 30);
}

/// `--older-than` is judged to the nanosecond where the end is recorded
/// so (`finished_ns`): both times were cut to the second, and a job 1.8 s
/// old read `too_recent` for `--older-than 1s`.
#[test]
fn the_age_rule_is_judged_below_the_second() {
    let t = TempRoot::new();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let ended = |ago_ms: u64, n: u128| {
        let ns = now_ns - ago_ms * 1_000_000;
        let id = finished(&t, "exited", 5, n);
        let path = t.job_dir(&id).join("state.json");
        let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        st["finished_at"] = json!(ts(ns / 1_000_000_000));
        st["updated_at"] = st["finished_at"].clone();
        st["finished_ns"] = json!(ns);
        std::fs::write(&path, st.to_string()).unwrap();
        id
    };
    let (a, b, c) = (ended(1500, 1), ended(800, 2), ended(100, 3));
    let action = |v: &Value, id: &str| entry(v, id)["action"].as_str().unwrap().to_string();
    let v = t.ok(&["gc", "--older-than", "1s", "--dry-run"]);
    assert_eq!(action(&v, &a), "would_delete", "{v}");
    assert_eq!(action(&v, &c), "skipped", "{v}");
    let v = t.ok(&["gc", "--older-than", "500ms", "--dry-run"]);
    assert_eq!(action(&v, &b), "would_delete", "{v}");
    assert_eq!(action(&v, &c), "skipped", "{v}");
    assert_eq!(entry(&v, &c)["reason"], "too_recent", "{v}");
}

/// A sub-second auto-GC window never takes a job younger than it: it
/// counted in whole seconds rounded down, so `900ms` was 0 and took a job
/// that had ended a moment before.
#[test]
fn a_sub_second_auto_gc_window_takes_no_younger_job() {
    let t = TempRoot::new();
    for (round, how) in [["--auto-gc-older-than", "900ms"], ["--config", "CONFIG"]]
        .iter()
        .enumerate()
    {
        let config = t.base.join("gc.toml");
        std::fs::write(&config, "[gc]\nolder_than = \"0.9s\"\n").unwrap();
        let config = config.to_str().unwrap();
        let young = t.job_id_of(&["run", "--no-auto-gc", "--", "true"]);
        let t0 = std::time::Instant::now();
        let mut args = vec!["run"];
        args.extend(how.iter().map(|a| if *a == "CONFIG" { config } else { a }));
        args.extend(["--", "true"]);
        t.ok(&args);
        t.settle();
        // Only a sweep within 0.9 s of its end must leave it (a machine
        // that slow is not asked).
        if t0.elapsed() < std::time::Duration::from_millis(800) {
            assert!(t.job_dir(&young).exists(), "round {round}: {how:?}");
        } else {
            println!("note: round {round} too slow to judge");
        }
    }
}

/// The auto-GC that follows a launch never removes the job launched: its
/// caller was just given that job's paths. `--auto-gc-max-jobs 0` takes
/// every other finished job, and used to take this one too, or not,
/// depending on when the sweep ran.
#[test]
fn auto_gc_never_removes_the_job_it_follows() {
    let t = TempRoot::new();
    for round in 0..4 {
        let old = t.job_id_of(&["run", "--no-auto-gc", "--", "true"]);
        let v = t.ok(&["run", "--auto-gc-max-jobs", "0", "--", "true"]);
        let id = v["job_id"].as_str().unwrap().to_string();
        // The sweep (its own process, `_gc`) and the supervisor are done.
        t.settle();
        assert!(
            !t.job_dir(&old).exists(),
            "round {round}: the sweep did not run"
        );
        let s = t.ok(&["status", &id]);
        assert_eq!(s["state"], "exited", "round {round}: {s}");
    }
}

/// The remains of a removal (`.gone-*`) with a file system mounted
/// inside are left whole by gc: only the mount table tells a bind mount
/// of the same file system from a directory, and gc's sweep of the
/// remains used to remove what the mount showed, outside the root, and
/// answer nothing.
#[test]
fn the_remains_of_a_removal_with_a_mount_inside_are_left_whole() {
    let t = TempRoot::new();
    // No auto-GC: its sweep, idle-priority and slow under load, held the
    // remains' lock while the last `gc` looked, which then left them.
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    let precious = t.base.join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("gold"), "gold").unwrap();
    let gone = t.root.join(".gone-AAAAAAAAAAAAAAAAAAAA");
    let Some(mount) = support::Mount::bind(&precious, &gone.join("mnt")) else {
        return;
    };
    t.ok(&["gc"]);
    assert_eq!(
        std::fs::read_to_string(precious.join("gold"))
            .ok()
            .as_deref(),
        Some("gold"),
        "files under the mount were removed"
    );
    assert!(gone.join("mnt").exists());
    // Unmounted, the remains go at the next gc.
    drop(mount);
    t.ok(&["gc"]);
    assert!(!gone.exists());
    assert!(precious.join("gold").exists());
}

/// A removal never follows a directory of the job's tree that its owner
/// swaps for a symlink while it goes (the owner of a job in a shared
/// root may): everything is removed through descriptors. By path, the
/// files of the directory the symlink named went instead, outside the
/// root (19,000 of 20,000 here, each time).
#[test]
fn a_removal_never_follows_a_directory_swapped_for_a_symlink() {
    let t = TempRoot::new();
    let id = t.job_id_of(&["run", "--", "true"]);
    let n = 20_000;
    let victim = t.base.join("victim");
    let deep = t.job_dir(&id).join("sub/sub2");
    for d in [&victim, &deep] {
        std::fs::create_dir_all(d).unwrap();
        for i in 0..n {
            std::fs::write(d.join(format!("f{i}")), "").unwrap();
        }
    }
    // Once the removal is under way in sub2, sub2 becomes a symlink to
    // the victim.
    let (root, victim2) = (t.root.clone(), victim.clone());
    let swapper = std::thread::spawn(move || {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < until {
            let gone = std::fs::read_dir(&root)
                .into_iter()
                .flatten()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with(".gone-"));
            let Some(g) = gone else { continue };
            let sub2 = g.path().join("sub/sub2");
            let left = std::fs::read_dir(&sub2).map_or(0, |r| r.count());
            if left < n - 500 {
                if std::fs::rename(&sub2, g.path().join("sub/old")).is_ok() {
                    let _ = std::os::unix::fs::symlink(&victim2, &sub2);
                }
                return;
            }
        }
    });
    let _ = t.out(&["delete", &id]);
    swapper.join().unwrap();
    let left = std::fs::read_dir(&victim).unwrap().count();
    assert_eq!(left, n, "files outside the root were removed");
}

/// auto-GC runs in a process of its own (`_gc ROOT ID`): the supervisor
/// exits without waiting for its sweep, and a `restart`, which waits for
/// the ended run's supervisor to exit, is answered while the sweep that
/// run started goes on (held stopped here). It waited for the whole
/// sweep, about a second in a root of 3,000 old jobs.
#[test]
fn a_restart_does_not_wait_for_the_sweep_its_last_run_started() {
    let t = TempRoot::new();
    write_config(&t, "[gc]\nscan_limit = 100000\ndelete_limit = 100000\n");
    let old: Vec<String> = (0..2000u64)
        .map(|i| finished(&t, "exited", 40 * DAY + i, 1 + u128::from(i)))
        .collect();
    let v = t.ok(&["run", "--", "true"]);
    let id = v["job_id"].as_str().unwrap();
    let needle = format!("_gc {} {id}", t.root.display());
    let sweep = first_pid(&t, &needle, 20, || {
        let left = old.iter().filter(|o| t.job_dir(o).exists()).count();
        format!("no sweep process ({left} old jobs left)")
    });
    let signal = |sig: &str| send(sweep, sig);
    signal("-STOP");
    let v = t.ok(&["restart", id]);
    assert_eq!(
        (&v["state"], &v["attempt"]),
        (&json!("exited"), &json!(2)),
        "{v}"
    );
    assert!(support::process_alive(u64::from(sweep)), "the sweep ended");
    signal("-CONT");
    t.settle();
    assert!(old.iter().all(|o| !t.job_dir(o).exists()));
}

/// What a removal cut short left out of view (`.gone-*`: an auto-GC
/// killed half-way through a job leaves it) is removed by the next
/// auto-GC, not only by an explicit `gc`: it stayed for good.
#[test]
fn auto_gc_removes_what_a_removal_cut_short_left() {
    let t = TempRoot::new();
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    let gone = t.root.join(".gone-AAAAAAAAAAAAAAAAAAAA");
    std::fs::create_dir_all(gone.join("runs/1")).unwrap();
    std::fs::write(gone.join("runs/1/stdout.log"), b"x").unwrap();
    std::fs::write(gone.join("meta.json"), b"{}").unwrap();
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert!(!gone.exists());
}

/// A `.gc.lock` with a second name (a hard link to a file elsewhere) is
/// never written: auto-GC skips, and the other file keeps its bytes (it
/// was emptied).
#[test]
fn a_hard_linked_guard_is_never_written() {
    let t = TempRoot::new();
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    let victim = t.base.join("victim");
    std::fs::write(&victim, b"precious\n").unwrap();
    std::fs::hard_link(&victim, t.root.join(".gc.lock")).unwrap();
    let old = finished(&t, "exited", 40 * DAY, 3);
    t.ok(&["run", "--", "true"]);
    t.settle();
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    assert!(
        t.job_dir(&old).exists(),
        "swept through a hard-linked guard"
    );
}

/// `_gc` run by hand: a descriptor 3 that is the root's guard opened
/// read-only is not taken as the claim (the sweep could not note where
/// it stopped), and a job named by a prefix or in another case is not
/// one it protects: it does nothing.
#[test]
fn a_sweep_run_by_hand_keeps_its_place_and_its_job() {
    let t = TempRoot::new();
    let me = t.job_id_of(&["run", "--no-auto-gc", "--", "true"]);
    for i in 0..30u64 {
        finished(&t, "exited", 40 * DAY + i, 10 + u128::from(i));
    }
    std::fs::write(t.root.join(".gc.lock"), b"").unwrap();
    let jobs = || t.jobs_in_root();
    let spec = "o=0,j=-,b=-,s=10,d=10";
    let sweep = |id: &str| {
        let ok = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" _gc \"$1\" \"$2\" --gc \"$3\" 3<\"$1/.gc.lock\"")
            .args([
                std::path::Path::new(support::bin()),
                &t.root,
                std::path::Path::new(id),
                std::path::Path::new(spec),
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    for named in [me[..20].to_string(), me.to_ascii_lowercase()] {
        sweep(&named);
        assert!(t.job_dir(&me).exists(), "{named}");
        assert_eq!(jobs(), 31, "{named}");
    }
    sweep(&me);
    assert!(t.job_dir(&me).exists());
    assert_eq!(jobs(), 21);
    let guard = std::fs::read_to_string(t.root.join(".gc.lock")).unwrap();
    assert!(guard.starts_with("resume after "), "{guard:?}");
}

/// Under `--auto-gc-max-jobs`, in a root of more than 32 jobs, a clean-up
/// within a second of a full reading that found nothing past the age line
/// reads only what the count needs, and a launch into a root under its
/// limit starts none (the README). The count is still kept at every
/// launch, and a job past the age line still goes once the second is out.
#[test]
fn a_root_kept_by_max_jobs_is_kept_and_aged_jobs_still_go() {
    let t = TempRoot::new();
    // Created 60 days ago, ended an hour ago (long runs): each is one the
    // age rule must read, not one it may pass by its id.
    for i in 0..40 {
        let id = id_at(now() - 60 * DAY + i, 300 + i as u128);
        t.fabricate(&id, "exited", &t.cwd, Some(&ts(now() - 3600)));
    }
    let count = |t: &TempRoot| {
        t.ok(&["list", "--limit", "0"])["jobs"]
            .as_array()
            .unwrap()
            .len()
    };
    let keep = "45";
    // Under the limit, then over it by the launches themselves: each
    // launch's clean-up keeps the count, whatever the second's grace.
    for _ in 0..8 {
        t.ok(&["run", "--auto-gc-max-jobs", keep, "--", "true"]);
        t.settle();
        assert!(count(&t) <= 45, "{}", count(&t));
    }
    assert_eq!(count(&t), 45);
    // Jobs put in beyond the limit right after a clean-up: the next
    // launch takes them (the oldest go), grace or not.
    let extra: Vec<String> = (0..3)
        .map(|i| {
            // Ended before the others too: the count keeps the jobs that
            // ended last.
            let id = id_at(now() - 70 * DAY + i, 900 + i as u128);
            t.fabricate(&id, "exited", &t.cwd, Some(&ts(now() - 7200)));
            id
        })
        .collect();
    t.ok(&["run", "--auto-gc-max-jobs", keep, "--", "true"]);
    t.settle();
    assert_eq!(count(&t), 45);
    let left: Vec<bool> = extra.iter().map(|id| t.job_dir(id).exists()).collect();
    assert_eq!(left, [false; 3], "the oldest go first");
    // A job past the age line (created 50 days ago, ended 40 days ago),
    // behind the 32 oldest: once the second's grace is out, the next
    // clean-up finds it.
    let id = id_at(now() - 50 * DAY, 999);
    t.fabricate(&id, "exited", &t.cwd, Some(&ts(now() - 40 * DAY)));
    // The grace lasts a second from the last full reading (README).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    t.ok(&["run", "--auto-gc-max-jobs", keep, "--", "true"]);
    t.settle();
    assert!(!t.job_dir(&id).exists(), "a job past the age line stayed");
}

/// `--auto-gc-max-jobs N` keeps the N finished jobs that ended last,
/// whatever their ids say, and counts no created or running job among
/// them: in a root of more than 32 jobs, a clean-up that stopped reading
/// once the oldest ids held enough finished jobs removed long runs that
/// had ended after the ones it kept, and kept fewer than N.
#[test]
fn auto_max_jobs_keeps_the_last_ended_and_counts_finished_jobs_only() {
    let t = TempRoot::new();
    // 34 runs of about two hours: the older the id, the later the end.
    let ids: Vec<String> = (0..34u64)
        .map(|i| {
            let id = id_at(now() - 7200 + i, 500 + u128::from(i));
            t.fabricate(&id, "exited", &t.cwd, Some(&ts(now() - 100 - i)));
            id
        })
        .collect();
    let created: Vec<String> = (0..3)
        .map(|_| t.job_id_of(&["create", "--", "true"]))
        .collect();
    let launched = t.job_id_of(&["run", "--auto-gc-max-jobs", "30", "--", "true"]);
    t.settle();
    let left: Vec<&String> = ids.iter().filter(|id| t.job_dir(id).exists()).collect();
    // 35 finished (with the launch's own, which ended last): the five
    // that ended first go, the newest fabricated ids.
    let want: Vec<&String> = ids[..29].iter().collect();
    assert_eq!(left, want);
    assert!(t.job_dir(&launched).exists());
    assert!(created.iter().all(|id| t.job_dir(id).exists()));
}

/// A root named through a symlink is collected as any other (audit 32):
/// its guard file was opened with the root's last component not
/// followed, which failed, and no launch into it ever collected a thing
/// (the jobs piled up past `--auto-gc-max-jobs`).
#[test]
fn auto_gc_collects_a_root_named_through_a_symlink() {
    let t = TempRoot::new();
    let link = t.base.join("link");
    std::fs::create_dir_all(&t.root).unwrap();
    std::os::unix::fs::symlink(&t.root, &link).unwrap();
    for _ in 0..4 {
        let mut c = t.bare();
        c.arg("--root")
            .arg(&link)
            .args(["run", "--auto-gc-max-jobs", "1", "--", "true"]);
        assert_eq!(t.exec(c).json()["state"], "exited");
    }
    let jobs = || t.jobs_in_root();
    // Kept: the newest (the count), and perhaps the first launch's own,
    // which its sweep never removes (see the burst test above).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while jobs() > 2 {
        assert!(
            std::time::Instant::now() < until,
            "{} jobs left of 4, not 1 or 2",
            jobs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(t.root.join(".gc.lock").is_file());
}
