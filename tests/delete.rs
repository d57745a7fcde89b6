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
    let created = id_of(&t.ok(&["create", "--", "true"]));
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

/// A job being launched (its lock held, its record still `created`) is
/// refused as being started, retryable, as `kill` says then: the refusal
/// said "a reader holds it", or "started by another caller while this
/// delete waited (it is now 'created')". The launch is held here by a
/// flock of the job's lock file, as a launch holds it.
#[test]
fn a_job_being_started_is_refused_as_being_started() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["create", "--", "true"]));
    let lock = t.job_dir(&id).join("lock");
    std::fs::write(&lock, b"").unwrap();
    let held = t.base.join("held");
    // -o: the lock stays with flock itself (not its child), which the
    // kill below ends.
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sh", "-c", "echo > \"$0\"; exec sleep 61.75"])
        .arg(&held)
        .spawn()
        .expect("flock(1)");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !held.exists() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let (code, e) = t.err(&["delete", &id]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(code, 1, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], true, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("being started"), "{msg}");
    assert!(t.job_dir(&id).join("meta.json").exists());
    // Let go: a created job, deleted.
    assert_eq!(t.ok(&["delete", &id])["deleted"], 1);
}

/// Two deletes of one ended job at once: one removes it, the other says
/// it is gone (`job_not_found`; listed `already_deleted` among several
/// ids), never that the job "is currently running" (`invalid_state`,
/// not retryable; `running` in a list): the loser, let in once the
/// winner was done, read the state of a removed job (146 of 200).
#[test]
fn two_deletes_of_one_job_never_call_it_running() {
    let t = TempRoot::new();
    for round in 0..12 {
        let k = t.start_job(&["true"]);
        t.wait_done(&k);
        // Deleted as soon as `run` answers: its supervisor, letting go,
        // still pins the job, and both deletes wait for it together.
        let j = id_of(&t.ok(&["run", "--", "true"]));
        let mut one = t.cmd(&["delete", &j]);
        let mut two = if round % 2 == 0 {
            t.cmd(&["delete", &j])
        } else {
            t.cmd(&["delete", &j, &k])
        };
        for c in [&mut one, &mut two] {
            c.stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null());
        }
        let (c1, c2) = (one.spawn().unwrap(), two.spawn().unwrap());
        let outs = [
            c1.wait_with_output().unwrap(),
            c2.wait_with_output().unwrap(),
        ];
        for o in &outs {
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            let text = v.to_string();
            assert!(!text.contains("currently running"), "round {round}: {v}");
            if v["ok"] == false {
                let code = v["error"]["code"].as_str().unwrap();
                assert!(
                    code == "job_not_found" || v["error"]["retryable"] == true,
                    "round {round}: {v}"
                );
            } else {
                for e in v["jobs"].as_array().unwrap() {
                    assert_ne!(e["reason"], "running", "round {round}: {v}");
                }
            }
        }
        assert!(!t.job_dir(&j).exists(), "round {round}");
        let _ = t.out(&["delete", &k]);
    }
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
fn delete_all_counts_a_directory_whose_name_is_not_utf8_and_keeps_it() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let id = ulid_at(1_700_000_000_000, 1);
    t.fabricate(&id, "exited", &t.cwd, FIN);
    let odd = t.root.join(std::ffi::OsStr::from_bytes(b"stray\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    for (args, deleted) in [
        (&["delete", "--all", "--dry-run"][..], 0),
        (&["delete", "--all"], 1),
    ] {
        let v = t.ok(args);
        let counts = ["deleted", "skipped", "out_of_scope", "failed"].map(|k| v[k].as_u64());
        assert_eq!(
            counts,
            [Some(deleted), Some(1), Some(1), Some(0)],
            "{args:?}: {v}"
        );
        assert_eq!(
            v["jobs"].as_array().unwrap().len(),
            1,
            "only the job is listed: {v}"
        );
        assert!(odd.is_dir(), "{args:?} removed it");
    }
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
fn a_removal_that_fails_half_way_never_leaves_a_job_that_lies() {
    // A file that cannot be removed (immutable). The job is set aside
    // before anything of it goes: it is not found from then on, never a
    // finished job whose logs are gone (it read `exited` with empty
    // output, and no error). What stayed is removed by a later gc.
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "sh", "-c", "echo kept; echo also >&2"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    std::fs::create_dir(t.job_dir(&id).join("zz")).unwrap();
    let stuck = t.job_dir(&id).join("zz/f");
    std::fs::write(&stuck, b"x").unwrap();
    if !chattr("+i", &stuck) {
        eprintln!("skipped: chattr +i is not available here (needs root and ext4-like fs)");
        return;
    }
    let (code, e) = t.err(&["delete", &id]);
    let after = t.out(&["status", &id]);
    let listed = t.ok(&["list", "--all"]);
    let aside = gone_remains(&t);
    let unstick = aside.first().map(|p| chattr("-i", &p.join("zz/f")));
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("io_error")),
        "{e}"
    );
    assert_eq!(
        after.json()["error"]["code"],
        "job_not_found",
        "{}",
        after.stdout
    );
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 0, "{listed}");
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(unstick, Some(true));
    // Nothing was left in the job's place, and gc takes the rest.
    assert!(!t.job_dir(&id).exists());
    t.ok(&["gc"]);
    assert!(!aside[0].exists());
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

/// A socket in place of state.json is no file either (audit 32): no
/// open takes it (ENXIO), which read as an io_error, and `delete`
/// removed the job whole. It is refused `unsafe_path` as a FIFO is, and
/// kept; a socket in place of a log is refused so by `tail` and `wait`.
#[test]
fn a_job_with_a_socket_for_its_state_or_log_is_refused() {
    let t = TempRoot::new();
    let odd = id_of(&t.ok(&["run", "--", "echo", "odd"]));
    let log = id_of(&t.ok(&["run", "--", "echo", "log"]));
    t.settle();
    let mut held = Vec::new();
    for path in [
        t.job_dir(&odd).join("state.json"),
        t.job_dir(&log).join("stdout.log"),
    ] {
        std::fs::remove_file(&path).unwrap();
        held.push(std::os::unix::net::UnixListener::bind(&path).unwrap());
    }
    for args in [
        vec!["status", &odd],
        vec!["delete", &odd],
        vec!["tail", &log],
        vec!["wait", &log],
    ] {
        let (code, e) = t.err(&args);
        assert_eq!(
            (code, &e["error"]["code"]),
            (1, &json!("unsafe_path")),
            "{args:?}: {e}"
        );
    }
    let v = t.ok(&["delete", "--all", "--dry-run"]);
    let odd_entry = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == odd.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(odd_entry["reason"], "unsafe_path", "{v}");
    assert!(t.job_dir(&odd).join("meta.json").exists(), "removed");
}

#[test]
fn a_job_with_a_directory_for_its_state_is_refused_whole() {
    // state.json replaced by a directory: `status` says unsafe_path, and
    // so does `delete`, before anything is removed (an unlink could not
    // remove it, and would have stopped with the logs already gone).
    let t = TempRoot::new();
    let odd = id_of(&t.ok(&["run", "--", "echo", "odd"]));
    let fine = id_of(&t.ok(&["run", "--", "true"]));
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
    // --all and gc skip it with the same reason (README: "`delete A B`
    // and `gc` skip it with reason `unsafe_path`").
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["jobs"][0]["reason"], "unsafe_path", "{v}");
    let v = t.ok(&["gc", "--older-than", "0s", "--dry-run"]);
    assert_eq!(v["jobs"][0]["reason"], "unsafe_path", "{v}");
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

// ---------------------------------------------------------------------
// Deletes racing launches, and refusals that change nothing
// ---------------------------------------------------------------------

/// The removal remains (`.gone-*`) in the root.
fn gone_remains(t: &TempRoot) -> Vec<PathBuf> {
    std::fs::read_dir(&t.root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".gone-")
        })
        .collect()
}

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

/// Wait (bounded) until `f` holds.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Does process `pid` have `path` open (a file, or a directory: a pin)?
fn has_open(pid: u32, path: &std::path::Path) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    rd.flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
}

/// Replace state.json whole (by rename, as the supervisor writes it).
fn write_state(t: &TempRoot, id: &str, v: &Value) {
    let tmp = t.job_dir(id).join(".state.tmp");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(&tmp, t.job_dir(id).join("state.json")).unwrap();
}

/// A `delete` that read the job, then found its lock held by a launch
/// (a `start` of the created job, a `restart` of the finished one) and
/// waited: once the lock is let go the job has had a run the delete
/// never saw. It removes nothing (the job was started: refused), where
/// it used to remove the job that `start` / `restart` had just answered
/// for (in a real race, with the job's command still running).
#[test]
fn a_delete_that_waited_out_a_launch_removes_nothing() {
    let t = TempRoot::new();
    let made = id_of(&t.ok(&["create", "--", "true"]));
    let done = id_of(&t.ok(&["run", "--no-auto-gc", "--", "true"]));
    t.settle();
    for id in [&made, &done] {
        let lock = t.job_dir(id).join("lock");
        let mut launch = support::hold_flock(&lock);
        let del = t
            .cmd(&["delete", id])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The delete has read the job and waits on its lock.
        eventually("the delete opens the job lock", || {
            has_open(del.id(), &lock)
        });
        // Meanwhile the launch ran the job (again) to its end.
        let mut st = t.state(id);
        st["job"]["status"] = "exited".into();
        st["job"]["started_at"] = "2030-01-01T00:00:00Z".into();
        st["finished_at"] = "2030-01-01T00:00:01Z".into();
        st["result"]["exit_code"] = 0.into();
        if id == &done {
            st["attempt"] = 2.into();
        }
        write_state(&t, id, &st);
        drop(launch.stdin.take());
        launch.wait().unwrap();
        let o = del.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["error"]["code"], "invalid_state", "{id}: {v}");
        assert!(t.job_dir(id).join("meta.json").exists(), "{id}: {v}");
        assert_eq!(t.ok(&["status", id])["state"], "exited");
    }
}

/// `start` / `restart` racing `delete` of one job: exactly one wins. A
/// job that `start` reports running is never deleted as the `created`
/// job it no longer is (it used to be, and its command then ran with
/// no job directory); nor one `restart` relaunched, as its ended run.
/// The launched run ends `killed`, where the run before it did not.
#[test]
fn start_or_restart_racing_delete_never_both_win() {
    let t = TempRoot::new();
    for round in 0..4 {
        for launcher in ["start", "restart"] {
            let mark = t.base.join(format!("ran-{round}-{launcher}"));
            let script = format!(
                "if [ -e {m} ]; then sleep 0.3; kill -KILL $$; fi; touch {m}",
                m = mark.display()
            );
            let id = if launcher == "start" {
                std::fs::write(&mark, b"").unwrap();
                id_of(&t.ok(&["create", "--", &script]))
            } else {
                let id = id_of(&t.ok(&["run", "--no-auto-gc", "--", &script]));
                t.settle();
                id
            };
            let piped = std::process::Stdio::piped;
            let l = t
                .cmd(&[launcher, "--no-wait", &id])
                .stdout(piped())
                .spawn()
                .unwrap();
            let d = t.cmd(&["delete", &id]).stdout(piped()).spawn().unwrap();
            let lv: Value = serde_json::from_slice(&l.wait_with_output().unwrap().stdout).unwrap();
            let dv: Value = serde_json::from_slice(&d.wait_with_output().unwrap().stdout).unwrap();
            if lv["ok"] == true && dv["ok"] == true {
                // Both answered: only one after the other, the delete
                // having seen the launched run end.
                assert_eq!(
                    dv["jobs"][0]["state"], "killed",
                    "{round} {launcher}: {lv} {dv}"
                );
            }
            if lv["ok"] == true && dv["ok"] == false {
                assert!(t.job_dir(&id).join("meta.json").exists(), "{lv} {dv}");
            }
            if t.job_dir(&id).exists() {
                t.wait_done(&id);
            }
            t.settle();
        }
    }
}

/// A `wait` blocked on `ids` (it holds them pinned), once it holds them.
fn reader_on(t: &TempRoot, ids: &[&str]) -> std::process::Child {
    let mut args = vec!["wait", "--until", "30"];
    args.extend_from_slice(ids);
    let r = t
        .cmd(&args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for id in ids {
        eventually("the reader pins the job", || {
            has_open(r.id(), &t.job_dir(id))
        });
    }
    r
}

/// A refused delete changes nothing. A queued job that a reader holds
/// (a `wait` on it and another job) used to be killed before the
/// refusal; a created one was left with a free lock file, which every
/// reader then took for a launch that died (`failed`, `launch_lost`).
/// The refusal is retryable (the reader lets go) and names the reader.
#[test]
fn a_delete_refused_for_a_reader_changes_nothing() {
    let t = TempRoot::new();
    let first = id_of(&t.ok(&["run", "--no-wait", "--queue", "qq", "--", "sleep", "30"]));
    let queued = id_of(&t.ok(&["run", "--no-wait", "--queue", "qq", "--", "echo", "two"]));
    let made = id_of(&t.ok(&["create", "--", "echo", "three"]));
    assert_eq!(t.ok(&["status", &queued])["state"], "queued");
    let mut reader = reader_on(&t, &[&first, &queued, &made]);
    for (id, state) in [(&queued, "queued"), (&made, "created")] {
        let (code, e) = t.err(&["delete", id]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("invalid_state")),
            "{e}"
        );
        assert_eq!(e["error"]["retryable"], true, "{e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains("reader"), "{msg}");
        assert!(!msg.contains("notification"), "{msg}");
        let v = t.ok(&["status", id]);
        assert_eq!(v["state"], state, "{v}");
        // `delete A B` skips it the same way, and changes nothing either.
        let v = t.ok(&["delete", id, &first]);
        assert_eq!(v["deleted"], 0, "{v}");
        assert_eq!(v["jobs"][0]["reason"], "in_use", "{v}");
        assert_eq!(t.ok(&["status", id])["state"], state);
    }
    let _ = reader.kill();
    reader.wait().unwrap();
    t.ok(&["kill", &first]);
    assert_eq!(t.wait_done(&queued)["state"], "exited");
    // Untouched by the refusals: it starts.
    assert_eq!(t.ok(&["start", &made])["state"], "exited");
    t.settle();
    for id in [&first, &queued, &made] {
        t.ok(&["delete", id]);
    }
}

/// `delete` of a queued job with a slow notification sink: the kill
/// makes its supervisor send the killed job's `job.finished`, which the
/// removal now waits for (a few seconds); it refused after a second
/// with "nothing was changed, try again", having killed the job.
#[test]
fn a_queued_job_with_a_slow_sink_is_killed_and_removed() {
    let t = TempRoot::new();
    let events = t.base.join("events.ndjson");
    let holder = id_of(&t.ok(&["run", "--no-wait", "--queue", "sq", "--", "sleep", "60"]));
    let queued = id_of(&t.ok(&[
        "run",
        "--no-wait",
        "--queue",
        "sq",
        "--notify-command",
        "cat > /dev/null; sleep 2",
        "--notify-file",
        events.to_str().unwrap(),
        "--",
        "echo",
        "never",
    ]));
    assert_eq!(t.ok(&["status", &queued])["state"], "queued");
    let v = t.ok(&["delete", &queued]);
    assert_eq!(v["deleted"], 1, "{v}");
    assert!(!t.job_dir(&queued).exists());
    // Its end was sent, once, before it went.
    let text = std::fs::read_to_string(&events).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"killed\""), "{text}");
    t.ok(&["kill", &holder]);
}

/// A job whose supervisor still delivers its notifications cannot be
/// deleted yet: retryable, and said so (not "a reader holds it").
#[test]
fn a_delete_during_notifications_is_retryable_and_says_why() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--notify-command", "sleep 5", "--", "true"]);
    let id = id_of(&v);
    assert_eq!(v["state"], "exited");
    let (code, e) = t.err(&["delete", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("invalid_state")),
        "{e}"
    );
    assert_eq!(e["error"]["retryable"], true, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("supervisor") && msg.contains("notification"),
        "{msg}"
    );
    t.settle();
    assert_eq!(t.ok(&["delete", &id])["deleted"], 1);
}

/// A dry run predicts that refusal: `would_delete` means the real run
/// would remove the job (seed README), so a job its supervisor still
/// holds for notifications is skipped `in_use` by every dry run too.
#[test]
fn dry_runs_predict_the_refusal_during_notifications() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--notify-command", "sleep 5", "--", "true"]);
    let id = id_of(&v);
    let skipped = |v: &Value| {
        let e = &v["jobs"][0];
        assert_eq!(
            (e["action"].as_str(), e["reason"].as_str()),
            (Some("skipped"), Some("in_use")),
            "{v}"
        );
    };
    skipped(&t.ok(&["gc", "--max-jobs", "0", "--dry-run"]));
    skipped(&t.ok(&["delete", "--all", "--dry-run"]));
    let (code, e) = t.err(&["delete", "--dry-run", &id]);
    assert_eq!(
        (code, e["error"]["retryable"].as_bool()),
        (1, Some(true)),
        "{e}"
    );
    // What the real runs answer meanwhile.
    skipped(&t.ok(&["gc", "--max-jobs", "0"]));
    t.settle();
    let v = t.ok(&["gc", "--max-jobs", "0", "--dry-run"]);
    assert_eq!(v["jobs"][0]["action"], "would_delete", "{v}");
    assert_eq!(t.ok(&["delete", &id])["deleted"], 1);
}

/// Replace job `id`'s meta.json by `what`: a directory, a symlink to a
/// file outside the root, or a FIFO.
fn damage_meta(t: &TempRoot, id: &str, what: &str) {
    let meta = t.job_dir(id).join("meta.json");
    std::fs::remove_file(&meta).unwrap();
    match what {
        "dir" => std::fs::create_dir(&meta).unwrap(),
        "symlink" => {
            let outside = t.base.join(format!("outside-{id}.json"));
            std::fs::write(&outside, b"{}").unwrap();
            std::os::unix::fs::symlink(&outside, &meta).unwrap();
        }
        "fifo" => {
            let ok = std::process::Command::new("mkfifo")
                .arg(&meta)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mkfifo");
        }
        other => panic!("{other}"),
    }
}

/// A job whose meta.json is a directory, a symlink or a FIFO is refused
/// by `delete U` alone (`unsafe_path`, as `status` answers); named among
/// others it is skipped with that reason and the others are deleted
/// (README: "`delete A B` and `gc` skip it with reason `unsafe_path`"),
/// and `delete --all` lists it skipped too, never removed.
#[test]
fn a_job_with_a_damaged_meta_json_is_skipped_among_others() {
    for what in ["dir", "symlink", "fifo"] {
        let t = TempRoot::new();
        let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
        let a = id(t.ok(&["run", "--", "true"]));
        let u = id(t.ok(&["run", "--", "true"]));
        t.settle();
        damage_meta(&t, &u, what);
        let (code, e) = t.err(&["delete", &u]);
        assert_eq!(
            (code, &e["error"]["code"]),
            (1, &json!("unsafe_path")),
            "{what}: {e}"
        );
        assert_eq!(e["error"]["details"]["job_id"], u.as_str(), "{what}: {e}");
        for dry in [true, false] {
            let mut args = vec!["delete", a.as_str(), u.as_str()];
            if dry {
                args.insert(1, "--dry-run");
            }
            let v = t.ok(&args);
            let want = if dry { "would_delete" } else { "deleted" };
            assert_eq!(v["jobs"][0]["action"], want, "{what}: {v}");
            assert_eq!(
                (
                    &v["jobs"][1]["job_id"],
                    &v["jobs"][1]["action"],
                    &v["jobs"][1]["reason"]
                ),
                (&json!(u), &json!("skipped"), &json!("unsafe_path")),
                "{what}: {v}"
            );
            assert_eq!(
                (&v["skipped"], &v["out_of_scope"], &v["failed"]),
                (&json!(1), &json!(1), &json!(0)),
                "{what}: {v}"
            );
        }
        assert!(!t.job_dir(&a).exists(), "{what}: A was not deleted");
        for dry in [true, false] {
            let args = if dry {
                vec!["delete", "--all", "--dry-run"]
            } else {
                vec!["delete", "--all"]
            };
            let v = t.ok(&args);
            assert_eq!(
                (
                    &v["jobs"][0]["job_id"],
                    &v["jobs"][0]["reason"],
                    &v["deleted"]
                ),
                (&json!(u), &json!("unsafe_path"), &json!(0)),
                "{what}: {v}"
            );
        }
        for f in ["meta.json", "state.json", "stdout.log"] {
            let p = t.job_dir(&u).join(f);
            assert!(std::fs::symlink_metadata(&p).is_ok(), "{what}: {f} removed");
        }
    }
}

/// `delete --all` in a directory whose path is not UTF-8 is refused as
/// `run` refuses it (`usage_error`), never scoped to a lossy rewrite of
/// the path, which names no directory (and so no job).
#[test]
fn delete_all_refuses_a_cwd_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "true"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    t.settle();
    let odd = t.base.join(std::ffi::OsStr::from_bytes(b"d\xff"));
    std::fs::create_dir(&odd).unwrap();
    for args in [
        vec!["delete", "--all"],
        vec!["delete", "--all", "--dry-run"],
    ] {
        let mut c = t.cmd(&args);
        c.current_dir(&odd);
        let o = t.exec(c);
        let e = o.json();
        assert_eq!(
            (o.code, &e["error"]["code"]),
            (2, &json!("usage_error")),
            "{args:?}: {e}"
        );
    }
    assert!(t.job_dir(&id).exists());
}

/// `delete --all` lists a job whose meta.json is a file but not a job
/// record (not JSON) as skipped, `state_unreadable`, as it lists one
/// whose meta.json is not a file (README: "`delete --all` lists one
/// whose `meta.json` is damaged whatever its directory"); never removed,
/// and the others are deleted.
#[test]
fn delete_all_lists_a_job_whose_meta_json_is_not_json() {
    let t = TempRoot::new();
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let bad = id(t.ok(&["run", "--", "true"]));
    let good = id(t.ok(&["run", "--", "true"]));
    t.settle();
    std::fs::write(t.job_dir(&bad).join("meta.json"), b"{bad").unwrap();
    for dry in [true, false] {
        let args = if dry {
            vec!["delete", "--all", "--dry-run"]
        } else {
            vec!["delete", "--all"]
        };
        let v = t.ok(&args);
        let want = if dry { "would_delete" } else { "deleted" };
        assert_eq!(
            v["jobs"],
            json!([
                {"job_id": bad, "state": "unknown", "action": "skipped", "reason": "state_unreadable"},
                {"job_id": good, "state": "exited", "action": want, "reason": "terminal_in_cwd"},
            ]),
            "{v}"
        );
        assert_eq!(
            (&v["skipped"], &v["out_of_scope"], &v["failed"]),
            (&json!(1), &json!(1), &json!(0)),
            "{v}"
        );
    }
    assert!(t.job_dir(&bad).join("meta.json").is_file());
    assert!(!t.job_dir(&good).exists());
}

/// A file system mounted inside a job directory (a bind mount of the
/// same file system: same device number) is not the job's. `delete JOB`
/// refuses it before removing anything, with an `io_error` that is not
/// retryable (it stays so until unmounted), and `delete --all` skips it
/// (`mount_point`); the mounted files and the job stay. It used to wipe
/// the mounted files and answer a retryable "Resource busy".
#[test]
fn a_job_with_a_mount_inside_is_refused_and_the_mount_kept() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.wait_done(&id);
    let precious = t.base.join("precious");
    std::fs::create_dir_all(precious.join("sub")).unwrap();
    std::fs::write(precious.join("sub/gold"), "gold").unwrap();
    // Declared after `t`: dropped (unmounted) first.
    let Some(_mount) = support::Mount::bind(&precious, &t.job_dir(&id).join("mnt")) else {
        return;
    };
    let kept = || {
        assert_eq!(
            std::fs::read_to_string(precious.join("sub/gold"))
                .ok()
                .as_deref(),
            Some("gold"),
            "files under the mount were removed"
        );
        for f in ["meta.json", "state.json", "stdout.log"] {
            assert!(t.job_dir(&id).join(f).exists(), "{f} removed");
        }
    };
    for args in [vec!["delete", &id], vec!["delete", "--dry-run", &id]] {
        let (code, v) = t.err(&args);
        assert_eq!(code, 1, "{v}");
        assert_eq!(v["error"]["code"], "io_error", "{v}");
        assert_eq!(v["error"]["retryable"], false, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("mount point inside the job directory"), "{v}");
        kept();
    }
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["jobs"][0]["reason"], "mount_point", "{v}");
    assert_eq!(
        (v["deleted"].as_u64(), v["failed"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    kept();
    let v = t.ok(&["list"]);
    assert_eq!(v["jobs"][0]["job_id"], json!(id), "{v}");
}

/// A dry run predicts the real one for a queued job too: its own
/// supervisor's pin refuses nothing (delete kills it, then removes it).
#[test]
fn dry_run_of_a_queued_job_predicts_its_deletion() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let wait_gate = format!("while [ ! -e '{}' ]; do sleep 0.01; done", gate.display());
    let head = t.ok(&["run", "--no-wait", "--queue", "dq", "--", &wait_gate]);
    let q = t.ok(&["run", "--no-wait", "--queue", "dq", "--", "echo x"]);
    let q = q["job_id"].as_str().unwrap().to_string();
    assert_eq!(t.ok(&["status", &q])["state"], "queued");
    let v = t.ok(&["delete", "--dry-run", &q]);
    assert_eq!(v["jobs"][0]["action"], "would_delete", "{v}");
    let v = t.ok(&["delete", &q]);
    assert_eq!(v["jobs"][0]["action"], "deleted", "{v}");
    std::fs::write(&gate, "").unwrap();
    t.wait_done(head["job_id"].as_str().unwrap());
}

/// A running job whose state.json is damaged: `delete` refuses it saying
/// the record is damaged, not retryable, not that a reader holds it and
/// to try again (its own supervisor held it).
#[test]
fn delete_of_a_held_job_with_a_damaged_state_says_so() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "62.25"]);
    std::fs::write(t.job_dir(&id).join("state.json"), "garbage").unwrap();
    let (code, e) = t.err(&["delete", &id]);
    assert_eq!(code, 1, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], false, "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("damaged"),
        "{e}"
    );
    // Its supervisor ends it once the record is whole again.
    let sup = std::process::Command::new("pkill")
        .args(["-f", "sleep 62.25"])
        .status()
        .unwrap();
    assert!(sup.success());
}

/// `delete --all` racing `gc`: a job the gc took away between delete's
/// listing and its reading is listed skipped `already_deleted`, so that
/// every job counted has an entry (they were counted out_of_scope and
/// left out of `jobs`). Every job here is a finished one of this
/// directory: nothing is out of scope for another reason.
#[test]
fn delete_all_racing_gc_lists_every_job_it_counts() {
    let t = TempRoot::new();
    for round in 0..4u64 {
        for n in 0..40u128 {
            let id = ulid_at(1_700_000_000_000 + round * 1000 + n as u64, n);
            t.fabricate(&id, "exited", &t.cwd, Some("2026-01-01T00:00:05Z"));
        }
        let gc = t.cmd(&["gc", "--max-jobs", "0"]).spawn().unwrap();
        let v = t.ok(&["delete", "--all"]);
        let mut gc = gc;
        gc.wait().unwrap();
        let jobs = v["jobs"].as_array().unwrap();
        let skipped = jobs.iter().filter(|j| j["action"] == "skipped").count();
        assert_eq!(v["skipped"], skipped, "round {round}: {v}");
        assert_eq!(v["out_of_scope"], skipped, "round {round}: {v}");
        for j in jobs.iter().filter(|j| j["action"] == "skipped") {
            assert_eq!(j["reason"], "already_deleted", "{v}");
        }
        assert_eq!(v["deleted"], jobs.len() - skipped, "{v}");
    }
}

/// A job directory that is itself a mount point (bound onto itself, say)
/// is refused as one with a mount inside: a non-retryable `io_error`
/// naming it, `mount_point` for `delete --all`. Its rename was answered
/// "Resource busy", retryable, and `delete_failed` for the rest.
#[test]
fn a_job_directory_that_is_a_mount_point_is_refused_as_one() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.wait_done(&id);
    let dir = t.job_dir(&id);
    let Some(_mount) = support::Mount::bind(&dir, &dir) else {
        return;
    };
    let (code, v) = t.err(&["delete", &id]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(
        (&v["error"]["code"], &v["error"]["retryable"]),
        (&json!("io_error"), &json!(false)),
        "{v}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is a mount point"),
        "{v}"
    );
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["jobs"][0]["reason"], "mount_point", "{v}");
    assert!(dir.join("meta.json").exists());
}

/// A job directory holding a tree hundreds of directories deep is
/// removed whole: one 256 deep failed `io_error` and stayed in the root,
/// out of view, for good.
#[test]
fn a_job_with_a_very_deep_tree_is_deleted_whole() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.wait_done(&id);
    let deep: PathBuf = std::iter::repeat("d").take(300).collect();
    std::fs::create_dir_all(t.job_dir(&id).join(&deep)).unwrap();
    std::fs::write(t.job_dir(&id).join(&deep).join("f"), "x").unwrap();
    let v = t.ok(&["delete", &id]);
    assert_eq!(v["type"], "delete", "{v}");
    // Neither the job nor remains set aside (`.gone-*`).
    let left: Vec<_> = std::fs::read_dir(&t.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| *n == id || n.starts_with(".gone-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Two deletes of the same jobs named in opposite orders each remove
/// some and list the rest `already_deleted` (or, coming after the other
/// took one away, answer `job_not_found` for it): never `in_use`, never
/// leaving the jobs. Each used to hold every job it named from its
/// lookup on, so that neither could take any but its first from the
/// other: `in_use` after a second each, the jobs left in place.
#[test]
fn two_deletes_of_the_same_jobs_in_opposite_orders_remove_them_all() {
    let t = TempRoot::new();
    for _ in 0..5 {
        let ids: Vec<String> = (0..40)
            .map(|_| id_of(&t.ok(&["run", "--no-auto-gc", "--", "true"])))
            .collect();
        let mut back = ids.clone();
        back.reverse();
        let run = |ids: &[String]| {
            let mut c = t.cmd(&["delete"]);
            c.args(ids).stdout(std::process::Stdio::piped());
            c.spawn().unwrap()
        };
        let (a, b) = (run(&ids), run(&back));
        for child in [a, b] {
            let o = child.wait_with_output().unwrap();
            let v: Value = serde_json::from_slice(&o.stdout).unwrap();
            if v["ok"] == false {
                assert_eq!(v["error"]["code"], "job_not_found", "{v}");
                continue;
            }
            for j in v["jobs"].as_array().unwrap() {
                assert!(
                    j["action"] == "deleted" || j["reason"] == "already_deleted",
                    "{v}"
                );
            }
        }
        for id in &ids {
            assert!(!t.job_dir(id).exists(), "{id} left");
        }
    }
}

/// A file the system will not remove (immutable) is named in the
/// answer, so that its cause can be lifted; the next gc then removes
/// what stayed. The answer named only the job directory.
#[test]
fn a_file_that_will_not_go_is_named() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.wait_done(&id);
    let imm = t.job_dir(&id).join("imm");
    std::fs::write(&imm, "").unwrap();
    if !chattr("+i", &imm) {
        eprintln!("note: chattr +i not possible here; skipped");
        return;
    }
    let (code, v) = t.err(&["delete", &id]);
    let left = gone_remains(&t);
    for p in &left {
        chattr("-i", &p.join("imm"));
    }
    assert_eq!((code, &v["error"]["code"]), (1, &json!("io_error")), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("/imm: "),
        "{v}"
    );
    t.ok(&["gc"]);
    for p in &left {
        assert!(!p.exists(), "{p:?}");
    }
}

/// `chattr FLAG PATH` (`+i`, `-i`); false where it cannot be done (not
/// root, or a file system without the attribute).
fn chattr(flag: &str, path: &std::path::Path) -> bool {
    std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A removal stopped while it holds a job's directory (SIGSTOP of a
/// `delete`, a `gc` or an auto-GC sweep, here flock(1) holding it as a
/// remover does) no longer holds every reader of the job for good: a
/// reader gives up after a few seconds, `invalid_state` and retryable,
/// and a `wait` that gets SIGTERM meanwhile gives up at once (it stayed
/// blocked, deaf to the signal, for as long as the removal was stopped).
#[test]
fn a_stopped_removal_holds_no_reader_for_good() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.settle();
    let mut holder = support::hold_flock(&t.job_dir(&id));
    let (_, e) = t.err(&["status", &id]);
    assert_eq!(
        (&e["error"]["code"], &e["error"]["retryable"]),
        (&json!("invalid_state"), &json!(true)),
        "{e}"
    );
    let child = t
        .cmd(&["wait", "--forever", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t0 = std::time::Instant::now();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let out = child.wait_with_output().unwrap();
    // Well under the readers' 5 s limit: the signal ended it.
    assert!(t0.elapsed() < std::time::Duration::from_secs(4));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "invalid_state", "{v}");
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(t.ok(&["status", &id])["state"], "exited");
}

/// Two deletes of one queued job at once: one removes it, the other
/// finds it gone, and it never runs. Each took the other's pin for a
/// reader's: both refused (`in_use`, "a reader holds it"), and the job
/// ran once its slot freed. Several rounds: the two do not always meet.
#[test]
fn two_deletes_of_a_queued_job_remove_it_once() {
    let t = TempRoot::new();
    for round in 0..6 {
        let holder = id_of(&t.ok(&["run", "--no-wait", "--queue", "dq", "--", "sleep", "30"]));
        let marker = t.base.join(format!("ran.{round}"));
        let script = format!("echo ran > '{}'", marker.display());
        let queued = id_of(&t.ok(&["run", "--no-wait", "--queue", "dq", "--", &script]));
        let (a, b) = (t.cmd(&["delete", &queued]), t.cmd(&["delete", &queued]));
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| t.exec(a));
            let b = s.spawn(|| t.exec(b));
            (a.join().unwrap(), b.join().unwrap())
        });
        let mut codes: Vec<String> = [&a, &b]
            .iter()
            .map(|o| {
                let v = o.json();
                match v["ok"].as_bool() {
                    Some(true) => v["jobs"][0]["action"].as_str().unwrap().to_string(),
                    _ => v["error"]["code"].as_str().unwrap().to_string(),
                }
            })
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            ["deleted", "job_not_found"],
            "round {round}: {} {}",
            a.stdout,
            b.stdout
        );
        // Its slot frees: nothing of it is left to run.
        t.ok(&["kill", &holder]);
        t.wait_done(&holder);
        assert!(!t.job_dir(&queued).exists());
        assert!(!marker.exists(), "round {round}: the deleted job ran");
    }
}

/// A delete of a queued job whose turn comes as the delete's kill goes
/// out: the job started, and the kill ended it as it ends a running job.
/// The delete keeps its record (killed, with started_at) and says so;
/// it answered that it had deleted a queued job, and nothing showed that
/// it ran. The moment is a race: the delete is sent at a sweep of
/// moments around the slot's freeing, and each round must be one of the
/// honest outcomes (removed before it ran, or kept having run).
#[test]
fn a_queued_job_that_started_as_it_was_deleted_is_kept() {
    let t = TempRoot::new();
    let mut kept = 0;
    for round in 0..24u64 {
        let gate = t.base.join(format!("gate.{round}"));
        let holder = id_of(&t.ok(&[
            "run",
            "--no-wait",
            "--queue",
            "rq",
            "--",
            &format!("while [ ! -e '{}' ]; do sleep 0.001; done", gate.display()),
        ]));
        let marker = t.base.join(format!("ran.{round}"));
        let script = format!("echo ran > '{}'; sleep 0.3", marker.display());
        let queued = id_of(&t.ok(&["run", "--no-wait", "--queue", "rq", "--", &script]));
        let delete = t.cmd(&["delete", &queued]);
        let o = std::thread::scope(|s| {
            let d = s.spawn(|| t.exec(delete));
            // The slot frees 0 to 5.75 ms after the delete is sent.
            std::thread::sleep(std::time::Duration::from_micros(250 * (round % 24)));
            std::fs::write(&gate, b"").unwrap();
            d.join().unwrap()
        });
        t.wait_done(&holder);
        let v = o.json();
        if v["ok"] == true {
            assert_eq!(v["jobs"][0]["action"], "deleted", "{v}");
            assert!(!t.job_dir(&queued).exists());
            // Removed: it never ran (its shell would have written the
            // marker by now, had it started: the delete waited for its
            // end).
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!marker.exists(), "round {round}: deleted, yet it ran: {v}");
            continue;
        }
        let e = &v["error"];
        assert_eq!(e["code"], "invalid_state", "{v}");
        t.ok(&["wait", &queued]);
        let st = t.ok(&["status", &queued]);
        let msg = e["message"].as_str().unwrap();
        if msg.contains("its turn came") {
            // Kept, having started: killed, with its start on record.
            assert_eq!(e["retryable"], true, "{v}");
            assert_eq!(st["state"], "killed", "{st}");
            assert!(st["started_at"].is_string(), "{st}");
            kept += 1;
            // Asked again, it goes.
            t.ok(&["delete", &queued]);
        } else {
            // Too late: it was running when the delete looked.
            assert!(msg.contains("running"), "{v}");
            t.ok(&["delete", &queued]);
        }
    }
    eprintln!("{kept} of 24 rounds met the start");
}
