//! `delete` / `rm`: one job or every finished job of this directory;
//! running jobs refused; hostile ids never reach outside the root.

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::TempRoot;

fn ulid_at(ms: u64, n: u128) -> String {
    ulid::Ulid::from_parts(ms, n).to_string()
}

fn other_dir(t: &TempRoot) -> PathBuf {
    let d = t.base.join("other");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::canonicalize(d).unwrap()
}

const FIN: Option<&str> = Some("2026-01-01T00:00:05Z");

#[test]
fn delete_one_finished_job() {
    let t = TempRoot::new();
    let id = t.start_job(&["echo", "hi"]);
    t.wait_done(&id);
    let o = t.out(&["delete", &id[..12]]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    o.assert_order(&[
        "schema_version",
        "ok",
        "type",
        "root",
        "dry_run",
        "deleted",
        "skipped",
        "out_of_scope",
        "failed",
        "jobs",
        "job_id",
        "state",
        "action",
        "reason",
    ]);
    let v = o.json();
    assert_eq!(v["type"], "delete");
    assert!(
        v.get("cwd_scope").is_none(),
        "single delete has no cwd_scope"
    );
    assert_eq!(v["root"], t.root.to_str().unwrap());
    assert_eq!(
        (
            v["deleted"].as_u64(),
            v["skipped"].as_u64(),
            v["out_of_scope"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(1), Some(0), Some(0), Some(0))
    );
    assert_eq!(
        v["jobs"],
        json!([{"job_id": id, "state": "exited", "action": "deleted", "reason": "explicit_delete"}])
    );
    assert!(!t.job_dir(&id).exists());
    let (code, e) = t.err(&["status", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("job_not_found"))
    );
    // Deleting it again: not found.
    let (code, e) = t.err(&["delete", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("job_not_found"))
    );
}

#[test]
fn rm_alias_and_dry_run() {
    let t = TempRoot::new();
    let id = ulid_at(1_700_000_000_000, 1);
    t.fabricate(&id, "killed", &t.cwd, FIN);
    let v = t.ok(&["rm", "--dry-run", &id]);
    assert_eq!(v["type"], "delete");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["deleted"], 0);
    assert_eq!(v["jobs"][0]["action"], "would_delete");
    assert_eq!(v["jobs"][0]["state"], "killed");
    assert!(t.job_dir(&id).exists(), "dry run removed the job");
    let v = t.ok(&["rm", &id]);
    assert_eq!(v["deleted"], 1);
    assert_eq!(v["jobs"][0]["action"], "deleted");
    assert!(!t.job_dir(&id).exists());
}

#[test]
fn running_jobs_are_refused_created_and_stale_ones_deleted() {
    let t = TempRoot::new();
    // No auto-GC: it would collect the old-dated fabricated jobs below.
    let v = t.ok(&["run", "--no-auto-gc", "--no-wait", "--", "sleep", "30"]);
    let live = v["job_id"].as_str().unwrap().to_string();
    let (code, e) = t.err(&["delete", &live]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("invalid_state"))
    );
    assert!(e["error"]["message"].as_str().unwrap().contains(&live));
    assert!(t.job_dir(&live).join("meta.json").exists());
    let (code, _) = t.err(&["delete", "--dry-run", &live]);
    assert_eq!(code, 1);
    assert_eq!(t.ok(&["status", &live])["state"], "running");

    // created: deletable.
    let created = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = t.ok(&["delete", &created]);
    assert_eq!(v["jobs"][0]["state"], "created");
    assert!(!t.job_dir(&created).exists());

    // A "running" job whose supervisor is gone is failed, and deletable.
    let stale = ulid_at(1_700_000_000_000, 2);
    t.fabricate(&stale, "running", &t.cwd, None);
    std::fs::write(t.job_dir(&stale).join("lock"), b"").unwrap();
    let v = t.ok(&["delete", &stale]);
    assert_eq!(v["jobs"][0]["state"], "failed", "{v}");
    assert!(!t.job_dir(&stale).exists());

    // Unreadable state: deletable as unknown.
    let odd = ulid_at(1_700_000_000_000, 3);
    t.fabricate(&odd, "exited", &t.cwd, FIN);
    std::fs::write(t.job_dir(&odd).join("state.json"), "?").unwrap();
    let v = t.ok(&["delete", &odd]);
    assert_eq!(v["jobs"][0]["state"], "unknown");

    t.ok(&["kill", &live]);
    t.wait_done(&live);
    assert_eq!(t.ok(&["delete", &live])["deleted"], 1);
}

#[test]
fn delete_all_is_scoped_to_this_directory() {
    let t = TempRoot::new();
    let other = other_dir(&t);
    let mk = |n: u128, state: &str, dir: &std::path::Path| {
        let id = ulid_at(1_700_000_000_000 + n as u64, n);
        let fin = (!matches!(state, "created" | "running")).then_some("2026-01-01T00:00:05Z");
        t.fabricate(&id, state, dir, fin);
        id
    };
    let exited = mk(1, "exited", &t.cwd);
    let killed = mk(2, "killed", &t.cwd);
    let failed = mk(3, "failed", &t.cwd);
    let created = mk(4, "created", &t.cwd);
    let running = mk(5, "running", &t.cwd); // no lock file: trusted as running
    let elsewhere = mk(6, "exited", &other);
    let unreadable = mk(7, "exited", &t.cwd);
    std::fs::write(t.job_dir(&unreadable).join("state.json"), "{").unwrap();
    std::fs::create_dir_all(t.root.join("stray")).unwrap();

    let check = |v: &Value, dry: bool| {
        assert_eq!(v["type"], "delete");
        assert_eq!(v["dry_run"], dry);
        assert_eq!(v["cwd_scope"], t.cwd.to_str().unwrap());
        // out_of_scope: elsewhere + stray (no meta) + created + running + unreadable.
        assert_eq!(v["out_of_scope"], 5, "{v}");
        assert_eq!(v["failed"], 0);
        assert_eq!(v["skipped"], 5, "skipped = out_of_scope + failed");
        assert_eq!(v["deleted"], if dry { 0 } else { 3 });
        let jobs = v["jobs"].as_array().unwrap();
        let find = |id: &str| jobs.iter().find(|j| j["job_id"] == id).cloned();
        let act = if dry { "would_delete" } else { "deleted" };
        for (id, st) in [
            (&exited, "exited"),
            (&killed, "killed"),
            (&failed, "failed"),
        ] {
            assert_eq!(
                find(id),
                Some(
                    json!({"job_id": id, "state": st, "action": act, "reason": "terminal_in_cwd"})
                )
            );
        }
        assert_eq!(
            find(&created),
            Some(
                json!({"job_id": created, "state": "created", "action": "skipped", "reason": "created"})
            )
        );
        assert_eq!(
            find(&running),
            Some(
                json!({"job_id": running, "state": "running", "action": "skipped", "reason": "running"})
            )
        );
        assert_eq!(
            find(&unreadable),
            Some(
                json!({"job_id": unreadable, "state": "unknown", "action": "skipped", "reason": "state_unreadable"})
            )
        );
        assert_eq!(find(&elsewhere), None, "other directories are not listed");
        assert_eq!(jobs.len(), 6);
    };

    let o = t.out(&["delete", "--all", "--dry-run"]);
    o.assert_order(&[
        "root",
        "dry_run",
        "cwd_scope",
        "deleted",
        "skipped",
        "out_of_scope",
        "failed",
        "jobs",
    ]);
    check(&o.json(), true);
    for id in [&exited, &killed, &failed] {
        assert!(t.job_dir(id).exists());
    }
    check(&t.ok(&["rm", "--all"]), false);
    for id in [&exited, &killed, &failed] {
        assert!(!t.job_dir(id).exists(), "{id}");
    }
    for id in [&created, &running, &elsewhere, &unreadable] {
        assert!(t.job_dir(id).exists(), "{id}");
    }
    // From the other directory, its job goes.
    let mut c = t.cmd(&["delete", "--all"]);
    c.current_dir(&other);
    let v = t.exec(c).json();
    assert_eq!(v["cwd_scope"], other.to_str().unwrap());
    assert_eq!(v["deleted"], 1);
    assert!(!t.job_dir(&elsewhere).exists());
}

#[test]
fn delete_all_with_missing_root_and_usage_errors() {
    let t = TempRoot::new();
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["cwd_scope"], t.cwd.to_str().unwrap());
    assert_eq!(v["jobs"], json!([]));
    assert_eq!(
        (v["deleted"].as_u64(), v["skipped"].as_u64()),
        (Some(0), Some(0))
    );

    let id = ulid_at(1_700_000_000_000, 1);
    t.fabricate(&id, "exited", &t.cwd, FIN);
    for args in [
        vec!["delete", "--all", &id],
        vec!["delete"],
        vec!["rm", "--dry-run"],
        vec!["delete", "--bogus", &id],
    ] {
        let (code, e) = t.err(&args);
        assert_eq!(code, 2, "{args:?}");
        assert_eq!(e["error"]["code"], "usage_error", "{args:?}");
    }
    assert!(t.job_dir(&id).exists());
}

#[test]
fn delete_all_from_a_removed_directory_is_an_error_not_the_root_of_it_all() {
    let t = TempRoot::new();
    // A finished job of `/`: what `--all` would reach if an unreadable
    // working directory were taken for `/`.
    let id = ulid_at(1_700_000_000_000, 7);
    t.fabricate(&id, "exited", std::path::Path::new("/"), FIN);
    let gone = t.base.join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    let mut c = t.private("sh");
    c.arg("-c")
        .arg("cd \"$1\" && rmdir \"$1\" && exec \"$2\" --root \"$3\" delete --all")
        .arg("sh")
        .arg(&gone)
        .arg(support::bin())
        .arg(&t.root);
    let o = t.exec(c);
    assert_eq!(o.code, 1, "{}", o.stdout);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["error"]["code"], "io_error", "{v}");
    assert!(t.job_dir(&id).join("meta.json").exists(), "{v}");
}

#[test]
fn a_removal_that_fails_half_way_leaves_the_job_as_it_was() {
    // A file that cannot be removed (immutable): the job must still read
    // as the finished job it is, never `created` (startable again).
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo", "kept"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let log = t.job_dir(&id).join("stdout.log");
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&log)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("skipped: chattr +i is not available here (needs root and ext4-like fs)");
        return;
    }
    let (code, e) = t.err(&["delete", &id]);
    let after = t.ok(&["status", &id]);
    assert!(chattr("-i"));
    assert_eq!(code, 1, "{e}");
    assert_eq!(after["state"], "exited", "{after}");
    assert_eq!(after["exit_code"], 0, "{after}");
    t.ok(&["delete", &id]);
    assert!(!t.job_dir(&id).exists());
}

#[test]
fn an_operating_system_failure_is_io_error_and_removes_nothing() {
    // A job directory nothing can be removed from (immutable, as a
    // read-only root would be): `io_error`, never `internal_error`.
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo", "kept"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let dir = t.job_dir(&id);
    let chattr = |flag: &str| {
        std::process::Command::new("chattr")
            .arg(flag)
            .arg(&dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !chattr("+i") {
        eprintln!("skipped: chattr +i is not available here (needs root and ext4-like fs)");
        return;
    }
    let (code, e) = t.err(&["delete", &id]);
    let many = t.ok(&["delete", &id, &id[..12]]);
    let listed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(chattr("-i"));
    assert_eq!((code, &e["error"]["code"]), (1, &json!("io_error")), "{e}");
    assert_eq!(e["error"]["details"]["job_id"], id.as_str(), "{e}");
    assert_eq!(many["failed"], 1, "{many}");
    assert!(
        many["jobs"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("delete_failed: "),
        "{many}"
    );
    for f in ["meta.json", "state.json", "stdout.log", "stderr.log"] {
        assert!(listed.iter().any(|n| n == f), "{f} removed: {listed:?}");
    }
    t.ok(&["delete", &id]);
    assert!(!dir.exists());
}

#[test]
fn a_job_with_a_directory_for_its_state_is_refused_whole() {
    // state.json replaced by a directory: `status` says unsafe_path, and
    // so does `delete`, before anything is removed (an unlink could not
    // remove it, and would have stopped with the logs already gone).
    let t = TempRoot::new();
    let odd = t.ok(&["run", "--", "echo", "odd"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let fine = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let state = t.job_dir(&odd).join("state.json");
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let (_, st) = t.err(&["status", &odd]);
    assert_eq!(st["error"]["code"], "unsafe_path", "{st}");
    for args in [vec!["delete", &odd], vec!["delete", "--dry-run", &odd]] {
        let (code, e) = t.err(&args);
        assert_eq!(
            (code, &e["error"]["code"]),
            (1, &st["error"]["code"]),
            "{e}"
        );
        assert_eq!(e["error"]["details"]["job_id"], odd.as_str(), "{e}");
    }
    // Several: it is skipped with its reason, the other one deleted.
    let v = t.ok(&["delete", &odd, &fine]);
    assert_eq!(
        (
            &v["deleted"],
            &v["skipped"],
            &v["out_of_scope"],
            &v["failed"]
        ),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{v}"
    );
    assert_eq!(v["jobs"][0]["reason"], "unsafe_path", "{v}");
    // --all skips it as gc does (its state cannot be read).
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["jobs"][0]["reason"], "state_unreadable", "{v}");
    for f in ["meta.json", "stdout.log", "stderr.log"] {
        assert!(t.job_dir(&odd).join(f).exists(), "{f} removed");
    }
    assert!(!t.job_dir(&fine).exists());
}

#[test]
fn a_job_named_twice_is_deleted_once() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "true"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let v = t.ok(&["delete", &id, &id[..12]]);
    assert_eq!(
        (v["deleted"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(0)),
        "{v}"
    );
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1, "{v}");
    assert!(!t.job_dir(&id).exists());
}

#[test]
fn hostile_ids_never_delete_outside_the_root() {
    let t = TempRoot::new();
    let canary = t.base.join("canary");
    std::fs::create_dir_all(&canary).unwrap();
    std::fs::write(canary.join("meta.json"), "{}").unwrap();
    let id = ulid_at(1_700_000_000_000, 1);
    t.fabricate(&id, "exited", &t.cwd, FIN);
    // A directory inside the root that is not a job.
    std::fs::create_dir_all(t.root.join("notajob")).unwrap();
    let canary_s = canary.to_str().unwrap();
    for bad in [
        "",
        ".",
        "..",
        "/tmp",
        "../canary",
        "../../canary",
        canary_s,
        "notajob",
        "*",
        ".gc.lock",
    ] {
        for cmd in ["delete", "rm"] {
            let (code, e) = t.err(&[cmd, bad]);
            assert_eq!(code, 1, "{cmd} {bad:?}");
            assert_eq!(e["error"]["code"], "job_not_found", "{cmd} {bad:?}: {e}");
        }
    }
    assert!(canary.join("meta.json").exists());
    assert!(t.root.join("notajob").exists());
    assert!(t.job_dir(&id).join("meta.json").exists());
    assert!(std::path::Path::new("/tmp").exists());
}
