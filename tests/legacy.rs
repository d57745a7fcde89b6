//! Jobs roots written by the original release (0.2.3), as a user who
//! upgrades keeps them: its job directories (32-hex ids, no lock file,
//! 0755 directories and 0644 logs, records without our fields) read,
//! start, restart and go as ours do, and none stays `running` with
//! nobody behind it (D12).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use serde_json::{json, Value};
use support::TempRoot;

/// A job directory as 0.2.3 left it: meta.json (with `extra` fields),
/// empty 0644 logs in a 0755 directory, and state.json if given.
fn legacy(t: &TempRoot, id: &str, command: Value, extra: Value, state: Option<Value>) -> PathBuf {
    let d = t.job_dir(id);
    std::fs::create_dir_all(&d).unwrap();
    let mut meta = json!({
        "job": {"id": id}, "schema_version": "0.1", "command": command,
        "created_at": "2026-12-01T00:00:00Z", "root": t.root, "env_keys": [],
        "cwd": t.cwd, "tags": []
    });
    for (k, v) in extra.as_object().unwrap() {
        meta[k] = v.clone();
    }
    std::fs::write(d.join("meta.json"), meta.to_string()).unwrap();
    if let Some(st) = state {
        std::fs::write(d.join("state.json"), st.to_string()).unwrap();
    }
    for f in ["stdout.log", "stderr.log"] {
        std::fs::write(d.join(f), b"").unwrap();
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// 0.2.3's record of a created job.
fn created(id: &str) -> Value {
    json!({
        "job": {"id": id, "status": "created"},
        "result": {"exit_code": null, "signal": null, "duration_ms": null},
        "updated_at": "2026-12-01T00:00:00Z"
    })
}

/// 0.2.3's record of a running job (no supervisor, no start time).
fn running(id: &str, pid: u32) -> Value {
    json!({
        "job": {"id": id, "status": "running", "started_at": "2026-12-01T00:00:01Z"},
        "result": {"exit_code": null, "signal": null, "duration_ms": null},
        "pid": pid, "updated_at": "2026-12-01T00:00:01Z"
    })
}

/// A `running` record whose pid now names a process that started after
/// the job did (a reboot reused the number): the job read `running` for
/// ever, and nothing could end or remove it (kill refused the stranger
/// as not the job's, delete and gc kept a running job). It is lost, and
/// the stranger is left alone; so is one whose process is gone.
#[test]
fn a_running_record_naming_a_later_process_is_lost() {
    let t = TempRoot::new();
    let mut stranger = std::process::Command::new("sleep")
        .arg("31.5")
        .spawn()
        .unwrap();
    let a = "e1000000000000000000000000000007";
    legacy(
        &t,
        a,
        json!(["sleep", "1000"]),
        json!({}),
        Some(running(a, stranger.id())),
    );
    let b = "e1000000000000000000000000000008";
    legacy(
        &t,
        b,
        json!(["true"]),
        json!({}),
        Some(running(b, 4_000_008)),
    );
    for id in [a, b] {
        let v = t.ok(&["status", id]);
        assert_eq!(
            (&v["state"], &v["failure"]["code"]),
            (&json!("failed"), &json!("supervisor_lost")),
            "{v}"
        );
        let w = t.ok(&["wait", "--until", "5", id]);
        assert_eq!(w["state"], "failed", "{w}");
    }
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was signalled"
    );
    // Gone from the root as any failed job would be.
    let g = t.ok(&["gc", "--older-than", "0s"]);
    assert_eq!(g["deleted"], 2, "{g}");
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// A job 0.2.3 defined but whose launch failed before any state was
/// recorded (stdin too large, a spawn error): meta.json only. It read
/// `created`, could be started (running a command its `run` had
/// refused), and gc kept it for ever. It is `failed` `launch_lost`.
#[test]
fn a_definition_without_any_state_is_a_lost_launch() {
    let t = TempRoot::new();
    let id = "a4000000000000000000000000000000";
    legacy(&t, id, json!(["sh", "-c", "echo ran"]), json!({}), None);
    let v = t.ok(&["status", id]);
    assert_eq!(
        (&v["state"], &v["failure"]["code"]),
        (&json!("failed"), &json!("launch_lost")),
        "{v}"
    );
    let (_, e) = t.err(&["start", id]);
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    let g = t.ok(&["gc", "--older-than", "0s"]);
    assert_eq!(g["deleted"], 1, "{g}");
    // Our own `create` never shows such a moment: its state comes first.
    let c = t.ok(&["create", "--", "true"]);
    assert_eq!(
        t.ok(&["status", c["job_id"].as_str().unwrap()])["state"],
        "created"
    );
}

/// `restart` of a 0.2.3 job found lost (its process gone, no lock file)
/// runs it again: it was refused as "running and could not be stopped",
/// against `status`, and left a lock file that changed the record's
/// reason.
#[test]
fn restart_of_a_lost_record_runs_it_again() {
    let t = TempRoot::new();
    let id = "e1000000000000000000000000000009";
    legacy(
        &t,
        id,
        json!(["echo", "again"]),
        json!({}),
        Some(running(id, 4_000_007)),
    );
    let s = t.ok(&["status", id]);
    assert_eq!(s["state"], "failed", "{s}");
    let v = t.ok(&["restart", id]);
    assert_eq!(
        (&v["state"], &v["stdout"], &v["attempt"]),
        (&json!("exited"), &json!("again\n"), &json!(2)),
        "{v}"
    );
    let prev = &v["previous_runs"][0];
    assert_eq!(
        (&prev["attempt"], &prev["state"]),
        (&json!(1), &json!("failed")),
        "{v}"
    );
}

/// Starting a job 0.2.3 created: its 0755 directory and 0644 logs are
/// made 0700 and 0600 before its output goes in (D22); and its `--env`
/// display, which `tag set` does not keep in meta.json, still answers.
#[test]
fn a_created_job_of_0_2_3_starts_private_with_its_env_shown() {
    let t = TempRoot::new();
    let id = "d1000000000000000000000000000006";
    let env = json!({
        "env_keys": ["S"], "env_vars": ["S=***"], "env_vars_runtime": ["S=s3cret"], "mask": ["S"]
    });
    let d = legacy(
        &t,
        id,
        json!(["sh", "-c", "echo token=$S"]),
        env,
        Some(created(id)),
    );
    t.ok(&["tag", "set", id, "--tag", "x"]);
    let v = t.ok(&["start", id]);
    assert_eq!(v["stdout"], "token=s3cret\n", "{v}");
    assert_eq!(v["env_vars"], json!(["S=***"]), "{v}");
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d.clone()), 0o700);
    for f in ["stdout.log", "stderr.log"] {
        assert_eq!(mode(d.join(f)), 0o600, "{f}");
    }
}

/// Its meta.json too, which holds the values in clear
/// (`env_vars_runtime`): started, it is 0600 (it stayed 0644).
#[test]
fn a_started_job_of_0_2_3_has_a_private_meta() {
    let t = TempRoot::new();
    let id = "d1000000000000000000000000000009";
    let env = json!({"env_keys": ["S"], "env_vars_runtime": ["S=s3cret"]});
    let d = legacy(&t, id, json!(["true"]), env, Some(created(id)));
    let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d.join("meta.json")), 0o644);
    t.ok(&["start", id]);
    assert_eq!(mode(d.join("meta.json")), 0o600);
}

/// A restart of an ended 0.2.3 job keeps that run's files private too:
/// they went to runs/1 at 0644, linked away before the new run's
/// supervisor made the directory private (D22: every file 0600).
#[test]
fn a_restarted_job_of_0_2_3_keeps_its_run_private() {
    let t = TempRoot::new();
    let id = "d100000000000000000000000000000b";
    let ended = json!({
        "job": {"id": id, "status": "exited", "started_at": "2026-12-01T00:00:01Z"},
        "result": {"exit_code": 0, "signal": null, "duration_ms": 5},
        "pid": 999_999, "finished_at": "2026-12-01T00:00:02Z", "updated_at": "2026-12-01T00:00:02Z"
    });
    let d = legacy(&t, id, json!(["echo", "x"]), json!({}), Some(ended));
    std::fs::write(d.join("stdout.log"), b"old\n").unwrap();
    std::fs::write(d.join("full.log"), b"old\n").unwrap();
    for f in ["full.log", "state.json", "meta.json"] {
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let v = t.ok(&["restart", id]);
    assert_eq!(v["attempt"], 2, "{v}");
    assert_eq!(
        std::fs::read_to_string(d.join("runs/1/stdout.log")).unwrap(),
        "old\n"
    );
    let mut wide = Vec::new();
    let mut stack = vec![d.clone()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let m = e.metadata().unwrap();
            let want = if m.is_dir() { 0o700 } else { 0o600 };
            if m.permissions().mode() & 0o777 != want {
                wide.push(e.path());
            }
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(wide.is_empty(), "wider than private: {wide:?}");
}

/// A meta.json of 0.2.3's without `cwd` (optional there) runs the job
/// where the `start` was run, as 0.2.3 did (it ran in `/`).
#[test]
fn a_job_of_0_2_3_without_a_cwd_runs_where_it_is_started() {
    let t = TempRoot::new();
    let id = "d100000000000000000000000000000a";
    let d = legacy(&t, id, json!(["pwd"]), json!({}), Some(created(id)));
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("meta.json")).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("cwd");
    std::fs::write(d.join("meta.json"), meta.to_string()).unwrap();
    let here = t.base.join("here");
    std::fs::create_dir_all(&here).unwrap();
    let mut c = t.bare();
    c.current_dir(&here)
        .arg("--root")
        .arg(&t.root)
        .args(["start", id]);
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], format!("{}\n", here.display()), "{v}");
}

/// A half-written directory named as a 0.2.3 id (32 hex digits, no
/// meta.json), older than a minute, is removed by gc as `incomplete`,
/// as one named as a ULID is (D3: both are job ids); it was skipped as
/// unreadable for ever.
#[test]
fn gc_removes_a_half_written_legacy_directory() {
    let t = TempRoot::new();
    let d = t.job_dir("b9000000000000000000000000000000");
    std::fs::create_dir_all(&d).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&d).unwrap().set_modified(old).unwrap();
    let v = t.ok(&["gc"]);
    let j = &v["jobs"][0];
    assert_eq!(
        (&j["action"], &j["reason"]),
        (&json!("deleted"), &json!("incomplete")),
        "{v}"
    );
    assert!(!d.exists());
}
