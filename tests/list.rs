//! `list` and `ps`: cwd scoping, filters and their combinations, order,
//! limits, short ids, stale jobs, and the response shape. Also the views
//! for people beside them: `--table` rows (cut tags, characters that
//! would reorder or split a row) and `wait` (an id given twice, the `-v`
//! note at a terminal).

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::TempRoot;

/// A ULID-shaped id created `ms` milliseconds after the epoch.
fn ulid_at(ms: u64, n: u128) -> String {
    ulid::Ulid::from_parts(ms, n).to_string()
}

/// Ids of a list response, in order.
fn ids(v: &Value) -> Vec<String> {
    v["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no jobs in {v}"))
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect()
}

/// `run --no-wait` without auto-GC (which would collect the old-dated
/// fabricated jobs while the test looks at them).
fn start_quiet(t: &TempRoot, cmd: &str) -> String {
    let v = t.ok(&["run", "--no-auto-gc", "--no-wait", "--", cmd]);
    v["job_id"].as_str().unwrap().to_string()
}

fn other_dir(t: &TempRoot) -> PathBuf {
    let d = t.base.join("other");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::canonicalize(d).unwrap()
}

fn set_tags(t: &TempRoot, id: &str, tags: &[&str]) {
    let p = t.job_dir(id).join("meta.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    m["tags"] = json!(tags);
    std::fs::write(&p, serde_json::to_vec(&m).unwrap()).unwrap();
}

/// Fabricate `n` exited jobs in `cwd` with increasing ULID times; oldest first.
fn fabricate_n(t: &TempRoot, cwd: &Path, base_ms: u64, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let id = ulid_at(base_ms + i as u64 * 1000, 7);
            t.fabricate(&id, "exited", cwd, Some("2026-01-01T00:00:01Z"));
            id
        })
        .collect()
}

#[test]
fn cwd_scoping_across_two_directories() {
    let t = TempRoot::new();
    let other = other_dir(&t);
    let here = t.start_job(&["true"]);
    let mut c = t.cmd(&["run", "--", "true"]);
    c.current_dir(&other);
    let o = t.exec(c);
    assert_eq!(o.code, 0, "{}", o.stdout);
    let there = o.json()["job_id"].as_str().unwrap().to_string();
    t.wait_done(&here);

    // Default: the current directory only.
    assert_eq!(ids(&t.ok(&["list"])), vec![here.clone()]);
    let mut c = t.cmd(&["list"]);
    c.current_dir(&other);
    assert_eq!(ids(&t.exec(c).json()), vec![there.clone()]);
    // --cwd names another directory; a relative or non-canonical spelling
    // of it means the same directory.
    assert_eq!(
        ids(&t.ok(&["list", "--cwd", other.to_str().unwrap()])),
        vec![there.clone()]
    );
    assert_eq!(
        ids(&t.ok(&["list", "--cwd", "../other"])),
        vec![there.clone()]
    );
    assert_eq!(
        ids(&t.ok(&["list", "--cwd", &format!("{}/./", other.display())])),
        vec![there.clone()]
    );
    // --all: both, newest first.
    assert_eq!(ids(&t.ok(&["list", "--all"])), vec![there.clone(), here]);
    // A directory without jobs.
    assert_eq!(ids(&t.ok(&["list", "--cwd", "/"])), Vec::<String>::new());
    // --cwd and --all conflict.
    let (code, e) = t.err(&["list", "--all", "--cwd", "/"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
    let (code, _) = t.err(&["ps", "--cwd", "/", "--all"]);
    assert_eq!(code, 2);
}

#[test]
fn newest_created_first_with_limit_and_truncated() {
    let t = TempRoot::new();
    let made = fabricate_n(&t, &t.cwd, 1_700_000_000_000, 5);
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();

    let v = t.ok(&["list"]);
    assert_eq!(ids(&v), newest_first);
    assert_eq!(v["truncated"], false);

    let v = t.ok(&["list", "--limit", "2"]);
    assert_eq!(ids(&v), newest_first[..2].to_vec());
    assert_eq!(v["truncated"], true);

    let v = t.ok(&["list", "--limit", "5"]);
    assert_eq!(ids(&v).len(), 5);
    assert_eq!(
        v["truncated"], false,
        "exactly limit matches is not truncated"
    );

    let v = t.ok(&["list", "--limit", "0"]);
    assert_eq!(ids(&v), newest_first);
    assert_eq!(v["truncated"], false);

    // The default limit is 50.
    fabricate_n(&t, &t.cwd, 1_710_000_000_000, 50);
    let v = t.ok(&["list"]);
    assert_eq!(ids(&v).len(), 50);
    assert_eq!(v["truncated"], true);
    assert_eq!(ids(&t.ok(&["list", "--limit", "0"])).len(), 55);

    // Real jobs sort by creation too (started_at plays no part).
    let a = start_quiet(&t, "true");
    let b = start_quiet(&t, "true");
    assert_eq!(ids(&t.ok(&["list", "--limit", "2"])), vec![b, a]);
}

#[test]
fn limited_listing_stops_reading_once_it_has_enough() {
    let t = TempRoot::new();
    // An old directory whose meta.json is broken ...
    let broken = ulid_at(1_600_000_000_000, 1);
    t.fabricate(&broken, "exited", &t.cwd, None);
    std::fs::write(t.job_dir(&broken).join("meta.json"), "{not json").unwrap();
    // ... behind two newer good jobs.
    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 2);
    let v = t.ok(&["list", "--limit", "1"]);
    assert_eq!(
        (v["truncated"].as_bool(), v["skipped"].as_u64()),
        (Some(true), Some(0))
    );
    let v = t.ok(&["list", "--limit", "0"]);
    assert_eq!(
        (v["truncated"].as_bool(), v["skipped"].as_u64()),
        (Some(false), Some(1))
    );
    assert_eq!(ids(&v).len(), 2);
}

#[test]
fn state_filter_and_ps() {
    let t = TempRoot::new();
    let mut by_state = Vec::new();
    for (i, s) in ["created", "running", "exited", "killed", "failed"]
        .iter()
        .enumerate()
    {
        let id = ulid_at(1_700_000_000_000 + i as u64, 3);
        let fin = (!matches!(*s, "created" | "running")).then_some("2026-01-01T00:00:09Z");
        t.fabricate(&id, s, &t.cwd, fin);
        by_state.push((*s, id));
    }
    let unknown = ulid_at(1_700_000_000_100, 3);
    t.fabricate(&unknown, "exited", &t.cwd, None);
    std::fs::write(t.job_dir(&unknown).join("state.json"), "garbage").unwrap();
    by_state.push(("unknown", unknown.clone()));

    for (s, id) in &by_state {
        let v = t.ok(&["list", "--state", s]);
        assert_eq!(ids(&v), vec![id.clone()], "--state {s}: {v}");
        assert_eq!(v["jobs"][0]["state"], *s);
    }
    // An unknown-state job has no state fields at all.
    let v = t.ok(&["list", "--state", "unknown"]);
    let j = v["jobs"][0].as_object().unwrap();
    for k in ["exit_code", "started_at", "finished_at", "updated_at"] {
        assert!(!j.contains_key(k), "{k} in {v}");
    }
    assert_eq!(j["tags"], json!([]));
    // Exit codes show where known.
    let v = t.ok(&["list", "--state", "exited"]);
    assert_eq!(v["jobs"][0]["exit_code"], 0);
    assert_eq!(v["jobs"][0]["finished_at"], "2026-01-01T00:00:09Z");

    // ps = list --state running, same shape.
    let running = by_state[1].1.clone();
    let v = t.ok(&["ps"]);
    assert_eq!(v["type"], "list");
    assert_eq!(ids(&v), vec![running.clone()]);
    assert_eq!(ids(&t.ok(&["ps", "--cwd", "/"])), Vec::<String>::new());
    assert_eq!(ids(&t.ok(&["ps", "--all", "--limit", "0"])), vec![running]);
    let (code, e) = t.err(&["ps", "--state", "exited"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
    let (code, e) = t.err(&["list", "--state", "sleeping"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
    // All six, newest first.
    assert_eq!(ids(&t.ok(&["list"])).len(), 6);
}

#[test]
fn a_running_job_whose_supervisor_is_gone_lists_as_failed() {
    let t = TempRoot::new();
    let id = ulid_at(1_700_000_000_000, 9);
    t.fabricate(&id, "running", &t.cwd, None);
    // A lock file nobody holds: there is no supervisor.
    std::fs::write(t.job_dir(&id).join("lock"), b"").unwrap();
    let v = t.ok(&["list"]);
    assert_eq!(v["jobs"][0]["state"], "failed", "{v}");
    assert!(v["jobs"][0]["finished_at"].is_string());
    assert_eq!(t.state(&id)["failure"]["code"], "supervisor_lost");
    assert_eq!(ids(&t.ok(&["ps"])), Vec::<String>::new());
    assert_eq!(ids(&t.ok(&["list", "--state", "failed"])), vec![id]);

    // A live job is running, and ps shows it.
    let live = start_quiet(&t, "sleep 30");
    assert_eq!(ids(&t.ok(&["ps"])), vec![live.clone()]);
    t.ok(&["kill", &live]);
}

#[test]
fn tag_filters_exact_namespace_and_all_of_them() {
    let t = TempRoot::new();
    let other = other_dir(&t);
    let ids_made = fabricate_n(&t, &t.cwd, 1_700_000_000_000, 5);
    let (a, b, c, d, e) = (
        &ids_made[0],
        &ids_made[1],
        &ids_made[2],
        &ids_made[3],
        &ids_made[4],
    );
    set_tags(&t, a, &["ci"]);
    set_tags(&t, b, &["ci", "release"]);
    set_tags(&t, c, &["proj.build", "ci"]);
    set_tags(&t, d, &["proj.build.deep"]);
    set_tags(&t, e, &["proj", "projx"]);
    let elsewhere = ulid_at(1_800_000_000_000, 1);
    t.fabricate(&elsewhere, "exited", &other, Some("2026-01-01T00:00:01Z"));
    set_tags(&t, &elsewhere, &["ci", "release"]);

    let q = |args: &[&str]| {
        let mut a = vec!["list"];
        a.extend_from_slice(args);
        let mut got = ids(&t.ok(&a));
        got.sort();
        got
    };
    let set = |v: &[&String]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(q(&["--tag", "ci"]), set(&[a, b, c]));
    assert_eq!(q(&["--tag", "release"]), set(&[b]));
    assert_eq!(q(&["--tag", "ci", "--tag", "release"]), set(&[b]));
    assert_eq!(
        q(&["--tag", "release", "--tag", "ci", "--all"]),
        set(&[b, &elsewhere])
    );
    // ns.* matches the namespace itself and anything below it, not `projx`.
    assert_eq!(q(&["--tag", "proj.*"]), set(&[c, d, e]));
    assert_eq!(q(&["--tag", "proj.build.*"]), set(&[c, d]));
    assert_eq!(q(&["--tag", "proj.build"]), set(&[c]));
    assert_eq!(q(&["--tag", "proj.*", "--tag", "ci"]), set(&[c]));
    assert_eq!(q(&["--tag", "nope"]), Vec::<String>::new());
    // With state and limit.
    assert_eq!(q(&["--tag", "ci", "--state", "exited"]), set(&[a, b, c]));
    assert_eq!(
        q(&["--tag", "ci", "--state", "failed"]),
        Vec::<String>::new()
    );
    let v = t.ok(&["list", "--tag", "ci", "--limit", "1"]);
    assert_eq!(ids(&v), vec![c.clone()]);
    assert_eq!(v["truncated"], true);
    let v = t.ok(&["list", "--tag", "release", "--limit", "1"]);
    assert_eq!(v["truncated"], false, "only one match: {v}");
    assert_eq!(v["jobs"][0]["tags"], json!(["ci", "release"]));

    // Patterns are validated while parsing.
    for bad in ["", ".*", "a..b", "a b", "a.*.*", "x.", "é"] {
        let (code, e) = t.err(&["list", "--tag", bad]);
        assert_eq!(code, 2, "{bad:?}");
        assert_eq!(e["error"]["code"], "invalid_tag", "{bad:?}");
    }
}

#[test]
fn short_ids_are_unique_prefixes_of_at_least_ten() {
    let t = TempRoot::new();
    let a = "01HZZZZZZZZZZZ00000000000A".to_string();
    let b = "01HZZZZZZZZZZZ00000000000B".to_string();
    let c = "01J0000000000000000000000C".to_string();
    for id in [&a, &b, &c] {
        t.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
    }
    let v = t.ok(&["list"]);
    let shorts: Vec<(String, String)> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["job_id"].as_str().unwrap().to_string(),
                j["short_job_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(shorts[0], (c.clone(), c[..10].to_string()));
    // a and b share 25 characters.
    let sa = &shorts.iter().find(|(id, _)| *id == a).unwrap().1;
    assert_eq!(sa, &a);
    // A job in another directory still makes names ambiguous.
    let d = "01J0000000000000000000000D".to_string();
    t.fabricate(&d, "exited", &t.base, Some("2026-01-01T00:00:01Z"));
    let v = t.ok(&["list", "--limit", "1"]);
    assert_eq!(v["jobs"][0]["short_job_id"], c.as_str(), "{v}");
    // Every short id resolves to its job.
    let v = t.ok(&["list", "--all"]);
    for j in v["jobs"].as_array().unwrap() {
        let s = t.ok(&["status", j["short_job_id"].as_str().unwrap()]);
        assert_eq!(s["job_id"], j["job_id"]);
    }
}

#[test]
fn response_shape_and_field_order() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "exit 3"]);
    t.wait_done(&id);
    t.ok(&["tag", "set", &id, "--tag", "x.y"]);
    let o = t.out(&["list"]);
    assert_eq!(o.code, 0);
    o.assert_order(&[
        "schema_version",
        "ok",
        "type",
        "root",
        "jobs",
        "job_id",
        "short_job_id",
        "state",
        "exit_code",
        "created_at",
        "started_at",
        "finished_at",
        "updated_at",
        "tags",
        "truncated",
        "skipped",
    ]);
    let v = o.json();
    assert_eq!(v["type"], "list");
    assert_eq!(v["root"], t.root.to_str().unwrap());
    let j = &v["jobs"][0];
    assert_eq!(j["job_id"], id.as_str());
    assert_eq!(j["state"], "exited");
    assert_eq!(j["exit_code"], 3);
    assert_eq!(j["tags"], json!(["x.y"]));
    assert_eq!(v["skipped"], 0);
    // YAML works too.
    let o = t.out(&["--yaml", "list"]);
    assert!(o.stdout.contains("type: list"), "{}", o.stdout);
}

#[test]
fn stray_entries_and_missing_root() {
    let t = TempRoot::new();
    // No root at all: an empty list.
    let v = t.ok(&["list", "--all"]);
    assert_eq!(v["jobs"], json!([]));
    assert_eq!(
        (v["truncated"].as_bool(), v["skipped"].as_u64()),
        (Some(false), Some(0))
    );

    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 1);
    // A directory without meta.json counts as skipped; files and dot
    // entries are not job directories at all.
    std::fs::create_dir_all(t.root.join("stray")).unwrap();
    std::fs::write(t.root.join("afile"), b"x").unwrap();
    std::fs::write(t.root.join(".gc.lock"), b"").unwrap();
    let v = t.ok(&["list", "--all"]);
    assert_eq!(ids(&v).len(), 1);
    assert_eq!(v["skipped"], 1, "{v}");
}

/// Sleep until `dir`'s last change (and the files just written) are old
/// enough for the list cache to trust them: 100 ms, or 2 s on file
/// systems with whole-second timestamps.
fn settle(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let nsec = std::fs::metadata(dir).map_or(0, |m| m.mtime_nsec());
    std::thread::sleep(std::time::Duration::from_millis(if nsec == 0 {
        2100
    } else {
        150
    }));
}

/// Make the root's list cache current (src/cache.rs): the first listing
/// of a quiet root creates the cache directory, the next one writes.
fn warm(t: &TempRoot) {
    for _ in 0..2 {
        settle(&t.root);
        t.ok(&["list", "--all", "--limit", "0"]);
    }
    let cache = std::fs::read_to_string(t.root.join(".cache/list")).unwrap();
    assert!(cache.contains('\t'), "notes were cached: {cache:.300}");
}

/// The listing as a root without any cache gives it.
fn uncached(t: &TempRoot, args: &[&str]) -> Value {
    let _ = std::fs::remove_dir_all(t.root.join(".cache"));
    t.ok(args)
}

#[test]
fn the_list_cache_follows_every_change() {
    let t = TempRoot::new();
    let ids_ = fabricate_n(&t, &t.cwd, 1_700_000_000_000, 70);
    warm(&t);
    let all = ["list", "--all", "--limit", "0"];
    let cached = t.ok(&all);
    assert_eq!(
        cached,
        uncached(&t, &all),
        "cached and fresh listings agree"
    );
    warm(&t);

    // Files edited in place, even to the same size, are seen.
    let newest = &ids_[69];
    let state = t.job_dir(newest).join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    let edited = text.replace("2026-01-01T00:00:01Z", "2026-01-01T00:00:09Z");
    assert_eq!(edited.len(), text.len());
    std::fs::write(&state, edited).unwrap();
    set_tags(&t, &ids_[68], &["hand.made"]);
    t.ok(&["tag", "set", &ids_[67], "--tag", "by.cli"]);
    let v = t.ok(&["list", "--limit", "3"]);
    assert_eq!(v["jobs"][0]["finished_at"], "2026-01-01T00:00:09Z", "{v}");
    assert_eq!(v["jobs"][1]["tags"], json!(["hand.made"]), "{v}");
    assert_eq!(v["jobs"][2]["tags"], json!(["by.cli"]), "{v}");

    // Jobs that come and go are seen at once.
    t.ok(&["delete", &ids_[66]]);
    std::fs::remove_dir_all(t.job_dir(&ids_[65])).unwrap();
    let fresh = start_quiet(&t, "true");
    t.wait_done(&fresh);
    let v = t.ok(&all);
    let got = ids(&v);
    assert_eq!(got.len(), 69);
    assert_eq!(got[0], fresh);
    assert!(!got.contains(&ids_[66]) && !got.contains(&ids_[65]));
    warm(&t);
    assert_eq!(t.ok(&all), uncached(&t, &all));

    // A damaged cache is never believed over the root.
    warm(&t);
    let cache = t.root.join(".cache/list");
    let text = std::fs::read_to_string(&cache).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(3, 9);
    std::fs::write(&cache, lines.join("\n") + "\n").unwrap();
    let damaged = t.ok(&all);
    assert_eq!(damaged, uncached(&t, &all));
}

/// Without `--cwd` or `--all`, `list` and `ps` filter by the caller's
/// directory: one whose path is not UTF-8 is refused as `run` refuses it
/// (`usage_error`), and one that was removed is `io_error`, never an
/// empty list (a lossy path matches no job) or the jobs of `/`.
#[test]
fn list_and_ps_refuse_a_cwd_they_cannot_name() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    t.ok(&["run", "--", "true"]);
    let odd = t.base.join(std::ffi::OsStr::from_bytes(b"d\xff"));
    std::fs::create_dir(&odd).unwrap();
    for cmd in ["list", "ps"] {
        let mut c = t.cmd(&[cmd]);
        c.current_dir(&odd);
        let o = t.exec(c);
        let e = o.json();
        assert_eq!(
            (o.code, &e["error"]["code"]),
            (2, &json!("usage_error")),
            "{cmd}: {e}"
        );
        // Told where to look instead, it answers.
        let mut c = t.cmd(&[cmd, "--all"]);
        c.current_dir(&odd);
        assert_eq!(t.exec(c).json()["ok"], true, "{cmd} --all");
    }
    // A removed directory (the shell removes its own cwd, then runs us).
    let gone = t.base.join("gone");
    for cmd in ["list", "ps"] {
        std::fs::create_dir(&gone).unwrap();
        let mut sh = t.private("sh");
        sh.current_dir(&gone)
            .arg("-c")
            .arg("rmdir \"$PWD\" && exec \"$0\" --root \"$1\" \"$2\"")
            .arg(support::bin())
            .arg(&t.root)
            .arg(cmd);
        let o = t.exec(sh);
        let e = o.json();
        assert_eq!(
            (o.code, &e["error"]["code"]),
            (1, &json!("io_error")),
            "{cmd}: {e}"
        );
    }
    // A relative root there names nothing: every command says so, as
    // `run` does (`list --all` and `gc` answered ok, root "relr").
    for args in [
        &["--root", "relr", "list", "--all"][..],
        &["--root", "relr", "gc"],
        &["gc"],
    ] {
        std::fs::create_dir(&gone).unwrap();
        let mut sh = t.private("sh");
        sh.current_dir(&gone)
            .env("HOME", "rh")
            .arg("-c")
            .arg("rmdir \"$PWD\" && exec \"$@\"")
            .arg("sh")
            .arg(support::bin())
            .args(args);
        let o = t.exec(sh);
        assert_eq!(
            (o.code, &o.json()["error"]["code"]),
            (1, &json!("io_error")),
            "{args:?}: {}",
            o.stdout
        );
    }
    // A relative --cwd needs that directory too; an empty one is refused
    // as run's and GET /list's are.
    std::fs::create_dir(&gone).unwrap();
    let mut sh = t.private("sh");
    sh.current_dir(&gone)
        .arg("-c")
        .arg("rmdir \"$PWD\" && exec \"$0\" --root \"$1\" list --cwd .")
        .arg(support::bin())
        .arg(&t.root);
    let o = t.exec(sh);
    assert_eq!(
        (o.code, &o.json()["error"]["code"]),
        (1, &json!("io_error"))
    );
    for cmd in ["list", "ps"] {
        let (code, e) = t.err(&[cmd, "--cwd", ""]);
        assert_eq!(
            (code, &e["error"]["code"]),
            (2, &json!("usage_error")),
            "{e}"
        );
    }
}

#[test]
fn a_killed_job_lists_its_signal_as_status_does() {
    // The list entry carries `signal` as `status` does, so the table's
    // EXIT column says the same in both; read twice, the second time from
    // the listing's cache of finished jobs.
    let t = TempRoot::new();
    let id = t.ok(&["run", "--timeout", "0.2", "--", "sleep", "5"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(t.wait_done(&id)["signal"], "SIGTERM");
    for _ in 0..2 {
        let v = t.ok(&["list"]);
        let e = &v["jobs"][0];
        assert_eq!(
            (e["state"].as_str(), e["signal"].as_str()),
            (Some("killed"), Some("SIGTERM")),
            "{v}"
        );
        let row = |args: &[&str]| {
            let o = t.cmd(args).output().unwrap();
            let text = String::from_utf8(o.stdout).unwrap();
            text.lines().nth(1).unwrap_or_default().to_string()
        };
        let (listed, status) = (row(&["list", "--table"]), row(&["status", "--table", &id]));
        assert!(listed.contains("SIGTERM"), "{listed}");
        assert!(status.contains("SIGTERM"), "{status}");
    }
    let exited = t.ok(&["run", "--", "true"]);
    let v = t.ok(&["list"]);
    let e = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job_id"] == exited["job_id"])
        .unwrap()
        .clone();
    assert!(e.get("signal").is_none(), "{e}");
}

#[test]
fn a_directory_whose_name_is_not_utf8_counts_as_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 1);
    std::fs::create_dir_all(t.root.join(std::ffi::OsStr::from_bytes(b"stray\xff"))).unwrap();
    std::fs::create_dir_all(t.root.join("strayfoo")).unwrap();
    let v = t.ok(&["list", "--all"]);
    assert_eq!(ids(&v).len(), 1, "{v}");
    assert_eq!(v["skipped"], 2, "{v}");
}

/// Neither is one whose name no id can be (a control character, a
/// backslash, over 128 bytes), nor a job whose meta.json `status` calls
/// damaged: both are skipped, not hidden, nor shown with blanks.
#[test]
fn names_no_id_can_be_and_damaged_definitions_count_as_skipped() {
    let t = TempRoot::new();
    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 1);
    let names = [
        format!("a{}b", '\t'),
        "a\\b".to_string(),
        format!("a{}b", '\u{7f}'),
        "x".repeat(129),
    ];
    for n in &names {
        std::fs::create_dir_all(t.root.join(n)).unwrap();
    }
    let v = t.ok(&["list", "--all"]);
    assert_eq!(ids(&v).len(), 1, "{v}");
    assert_eq!(v["skipped"], 4, "{v}");
    let g = t.ok(&["gc", "--dry-run"]);
    assert_eq!(g["skipped"], 4, "{g}");
    for n in &names {
        std::fs::remove_dir(t.root.join(n)).unwrap();
    }
    // A meta.json status refuses: not a job with blank fields.
    let id = t.ok(&["run", "--no-auto-gc", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in [r#"{"job":{}}"#, "[1]", r#"["x"]"#] {
        std::fs::write(t.job_dir(&id).join("meta.json"), bad).unwrap();
        t.err(&["status", &id]);
        let v = t.ok(&["list", "--all"]);
        assert_eq!(ids(&v).len(), 1, "{bad}: {v}");
        assert_eq!(v["skipped"], 1, "{bad}: {v}");
    }
}

// ---------------------------------------------------------------------------
// Views for people: `--table` rows, and `wait` (several ids, `-v`)
// ---------------------------------------------------------------------------

/// Tags that do not fit are cut as COMMAND is, ending in `…` (a tag cut
/// silently reads as a whole one, and hides those after it).
#[test]
fn table_marks_cut_tags() {
    let t = TempRoot::new();
    let long = "x".repeat(60);
    t.ok(&["run", "--tag", &long, "--tag", "release", "--", "true"]);
    let mut c = t.cmd(&["list", "--table"]);
    c.env("COLUMNS", "80");
    let o = t.exec(c);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let row = o.stdout.lines().nth(1).unwrap();
    assert!(row.chars().count() <= 80, "{row}");
    assert!(row.ends_with("x…"), "{row}");
}

/// A list that `--limit` cut says so on stderr (the table alone cannot
/// show it; the document has `truncated`); stdout is the table alone.
#[test]
fn table_says_on_stderr_that_limit_cut_the_list() {
    let t = TempRoot::new();
    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 3);
    let o = t.exec(t.cmd(&["list", "--table", "--limit", "2"]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.lines().count(), 3, "{}", o.stdout);
    assert!(
        o.stderr.contains("2 jobs shown; more match"),
        "{}",
        o.stderr
    );
    for args in [
        &["list", "--table"][..],
        &["list", "--table", "--limit", "3"],
    ] {
        let o = t.exec(t.cmd(args));
        assert_eq!(o.stdout.lines().count(), 4, "{}", o.stdout);
        assert!(!o.stderr.contains("more match"), "{args:?}: {}", o.stderr);
    }
}

/// One job is one line: the bidirectional formatting characters (which
/// can show a row's cells in another order) and the line and paragraph
/// separators are shown as spaces, in commands and in tags, as control
/// characters are.
#[test]
fn table_rows_keep_bidi_controls_and_separators_out() {
    let t = TempRoot::new();
    let odd = [
        '\u{202E}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
        '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{2028}', '\u{2029}',
    ];
    let word: String = odd.iter().flat_map(|&c| ['a', c]).collect();
    let id = t.ok(&["run", "--", &format!("echo {word}")])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    set_tags(&t, &id, &[&format!("t{word}")]);
    for args in [vec!["list", "--table"], vec!["status", "--table", &id]] {
        let o = t.out(&args);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(!o.stdout.contains(&odd[..]), "{args:?}: {:?}", o.stdout);
        let row = o.stdout.lines().nth(1).unwrap();
        assert!(row.contains("echo a a a"), "{args:?}: {row:?}");
        assert!(row.contains("ta a a"), "{args:?}: {row:?}");
    }
}

/// `wait --any X X`: the same job is described the same in both entries
/// (waited for and read once), never `running` in one and `exited` in
/// the other. The job ends during the wait, when two separate reads
/// could disagree; several rounds, as that race is not won every time.
#[test]
fn wait_for_the_same_id_twice_describes_it_once() {
    let t = TempRoot::new();
    for _ in 0..8 {
        let x = t.start_job(&["sleep", "0.2"]);
        for mode in ["--any", "--all"] {
            let v = t.ok(&["wait", mode, "--until", "10", &x, &x]);
            let jobs = v["jobs"].as_array().unwrap();
            assert_eq!(jobs.len(), 2, "{v}");
            assert_eq!(jobs[0], jobs[1], "{mode}: {v}");
            assert_eq!(jobs[0]["state"], "exited", "{mode}: {v}");
            if mode == "--any" {
                assert_eq!(v["first"], x.as_str());
            }
        }
    }
}

/// An id given many times holds what one id does: the wait answers
/// with every entry under a descriptor limit that one job fits in many
/// times over (each copy pinned a descriptor of its own: io_error).
#[test]
fn an_id_given_many_times_is_looked_up_once() {
    let t = TempRoot::new();
    let x = t.job_id_of(&["run", "--", "true"]);
    let short = &x[..12];
    let mut args = vec!["wait", "--until", "5"];
    for _ in 0..100 {
        args.push(&x);
        args.push(short);
    }
    let mut c = std::process::Command::new("sh");
    c.args([
        "-c",
        "ulimit -n 48 && exec \"$@\"",
        "sh",
        support::bin(),
        "--root",
    ])
    .arg(&t.root)
    .args(&args)
    .env("HOME", t.base.join("home"))
    .env("XDG_CONFIG_HOME", t.base.join("config"))
    .stdin(std::process::Stdio::null());
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["jobs"].as_array().unwrap().len(), 200, "{v}");
}

/// `wait -v ID` at a terminal: the progress note is erased before the
/// log line that says how the job ended, not left with it glued on.
#[test]
fn wait_v_erases_its_note_before_the_log_line() {
    // `script` gives the command a terminal (stdin, stdout, stderr).
    if support::no_script() {
        return;
    }
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "2.2"]);
    let line = format!(
        "{} --root {} -v wait --forever {id} >/dev/null",
        support::bin(),
        t.root.display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(&t.cwd)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"))
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null());
    let o = t.exec(c);
    let notes = o.stdout.matches("written so far").count();
    assert!(notes >= 1, "no note at a terminal: {:?}", o.stdout);
    // Each note is followed by the erase (the next note's, or the last).
    let erased = o.stdout.matches("written so far\r\x1b[K").count();
    assert_eq!(erased, notes, "{:?}", o.stdout);
    assert!(
        o.stdout.contains("INFO agent-exec: wait "),
        "{:?}",
        o.stdout
    );
    assert!(o.stdout.contains(": exited"), "{:?}", o.stdout);
}

/// A symlink named as a job (to a directory outside, say) is no job: it
/// is never followed, and `list`, `gc` and `delete --all` count it as
/// skipped instead of hiding it; by id it is `unsafe_path`.
#[test]
fn a_symlink_named_as_a_job_counts_as_skipped() {
    let t = TempRoot::new();
    fabricate_n(&t, &t.cwd, 1_700_000_000_000, 1);
    let outside = t.base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"x").unwrap();
    let name = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    std::os::unix::fs::symlink(&outside, t.root.join(name)).unwrap();
    let v = t.ok(&["list", "--all"]);
    assert_eq!(ids(&v).len(), 1, "{v}");
    assert_eq!(v["skipped"], 1, "{v}");
    let g = t.ok(&["gc", "--max-jobs", "0"]);
    assert_eq!(g["skipped"], 1, "{g}");
    let (_, e) = t.err(&["status", name]);
    assert_eq!(e["error"]["code"], "unsafe_path", "{e}");
    assert!(outside.join("keep").exists());
    assert!(t.root.join(name).symlink_metadata().is_ok());
}
