//! A config named with `--config` when a job is defined (`create`,
//! `run`) holds for the job's later launches (`start`, `restart`), which
//! take no `--config`: its `[notify] sink_timeout` and `[gc]` settings
//! are kept with the job, as its shell wrapper, log cap and keep_runs
//! are, and a later edit or removal of the file changes nothing.
//! The default config, when these tests write one, says something else,
//! so that reading it instead shows.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TempRoot;

/// Poll `cond` until it holds, with a deadline (a condition waited on,
/// not a sleep standing in for one).
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The job is terminal, its supervisor (which delivers notifications)
/// has exited, and so has the auto-GC sweep it started (`_gc`).
fn settle(t: &TempRoot, id: &str) {
    t.wait_done(id);
    wait_until("the supervisor and its sweep to exit", || {
        ["_supervise", "_gc"].iter().all(|c| {
            t.pids_matching(&format!("{c} {} {id}", t.root.display()))
                .is_empty()
        })
    });
}

fn write_default_config(t: &TempRoot, text: &str) {
    let d = t.base.join("config/agent-exec");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.toml"), text).unwrap();
}

/// A config file outside the default place, only ever named by flag.
fn named_config(t: &TempRoot, text: &str) -> PathBuf {
    let p = t.base.join("named.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

/// What the job's last `job.finished` command sink came to.
fn sink_error(t: &TempRoot, id: &str) -> Value {
    let ce: Value = serde_json::from_str(&t.read(id, "completion_event.json"))
        .unwrap_or_else(|e| panic!("completion_event.json of {id}: {e}"));
    ce["delivery_results"][0]["error"].clone()
}

/// Two jobs that finished in 2000: any retention window collects them,
/// unless auto-GC is off.
fn ancient_jobs(t: &TempRoot) -> [String; 2] {
    [1, 2].map(|n| {
        let id = ulid::Ulid::from_parts(946_684_800_000, n).to_string();
        t.fabricate(&id, "exited", &t.cwd, Some("2000-01-01T00:00:05Z"));
        id
    })
}

fn all_exist(t: &TempRoot, ids: &[String]) -> bool {
    ids.iter().all(|id| t.job_dir(id).exists())
}

fn none_exist(t: &TempRoot, ids: &[String]) -> bool {
    !ids.iter().any(|id| t.job_dir(id).exists())
}

#[test]
fn start_uses_the_sink_timeout_of_the_config_named_at_create() {
    let t = TempRoot::new();
    write_default_config(&t, "[notify]\nsink_timeout = \"2s\"\n");
    let cfg = named_config(&t, "[notify]\nsink_timeout = \"1s\"\n");
    // A duration no other process on the machine uses: 303.<our pid>.
    let sleeper = format!("sleep 303.{}", std::process::id());
    let id = id_of(&t.ok(&[
        "create",
        "--config",
        s(&cfg),
        "--notify-command",
        &sleeper,
        "--",
        "true",
    ]));
    // Kept with the job: the file may go between create and start.
    std::fs::remove_file(&cfg).unwrap();
    t.ok(&["start", &id]);
    settle(&t, &id);
    assert_eq!(sink_error(&t, &id), "timed out after 1s");
    assert!(t.pids_matching(&sleeper).is_empty());
}

#[test]
fn restart_uses_the_sink_timeout_of_the_config_named_at_run() {
    let t = TempRoot::new();
    write_default_config(&t, "[notify]\nsink_timeout = \"2s\"\n");
    let cfg = named_config(&t, "[notify]\nsink_timeout = \"1s\"\n");
    let sleeper = format!("sleep 304.{}", std::process::id());
    let id = id_of(&t.ok(&[
        "run",
        "--config",
        s(&cfg),
        "--notify-command",
        &sleeper,
        "--",
        "true",
    ]));
    settle(&t, &id);
    assert_eq!(sink_error(&t, &id), "timed out after 1s");
    // An edit of the file after the job was defined changes nothing.
    std::fs::write(&cfg, "[notify]\nsink_timeout = \"3s\"\n").unwrap();
    let v = t.ok(&["restart", &id]);
    assert_eq!(v["attempt"], 2, "{v}");
    settle(&t, &id);
    assert_eq!(sink_error(&t, &id), "timed out after 1s");
}

#[test]
fn start_runs_auto_gc_with_the_gc_settings_of_the_config_named_at_create() {
    let t = TempRoot::new();
    // The default config turns auto-GC off; the named one turns it on.
    write_default_config(&t, "[gc]\nauto = false\n");
    let cfg = named_config(&t, "[gc]\nauto = true\nolder_than = \"1d\"\n");
    let old = ancient_jobs(&t);
    let id = id_of(&t.ok(&["create", "--config", s(&cfg), "--", "true"]));
    let other = id_of(&t.ok(&["create", "--config", s(&cfg), "--", "true"]));
    std::fs::remove_file(&cfg).unwrap();
    // A flag on start still wins over what the job keeps.
    t.ok(&["start", "--no-auto-gc", &other]);
    settle(&t, &other);
    assert!(all_exist(&t, &old), "collected despite --no-auto-gc");
    t.ok(&["start", &id]);
    settle(&t, &id);
    assert!(none_exist(&t, &old), "start did not use the stored [gc]");
    assert!(t.job_dir(&id).exists() && t.job_dir(&other).exists());
}

#[test]
fn restart_runs_auto_gc_with_the_gc_settings_of_the_config_named_at_run() {
    let t = TempRoot::new();
    write_default_config(&t, "[gc]\nauto = false\n");
    let cfg = named_config(&t, "[gc]\nauto = true\nolder_than = \"1d\"\n");
    let id = id_of(&t.ok(&["run", "--no-auto-gc", "--config", s(&cfg), "--", "true"]));
    settle(&t, &id);
    let old = ancient_jobs(&t);
    std::fs::write(&cfg, "[gc]\nauto = false\n").unwrap();
    t.ok(&["restart", "--no-auto-gc", &id]);
    settle(&t, &id);
    assert!(all_exist(&t, &old), "collected despite --no-auto-gc");
    t.ok(&["restart", &id]);
    settle(&t, &id);
    assert!(none_exist(&t, &old), "restart did not use the stored [gc]");
}

#[test]
fn a_job_defined_without_config_still_reads_the_default_one_at_start() {
    let t = TempRoot::new();
    let sleeper = format!("sleep 305.{}", std::process::id());
    let id = id_of(&t.ok(&["create", "--notify-command", &sleeper, "--", "true"]));
    write_default_config(&t, "[notify]\nsink_timeout = \"1s\"\n");
    t.ok(&["start", &id]);
    settle(&t, &id);
    assert_eq!(sink_error(&t, &id), "timed out after 1s");
}

#[test]
fn a_sink_timeout_under_a_second_is_kept_in_milliseconds() {
    let t = TempRoot::new();
    // Whole seconds only, "500ms" was 0: no limit at all.
    let cfg = named_config(&t, "[notify]\nsink_timeout = \"500ms\"\n");
    let sleeper = format!("sleep 305.{}", std::process::id());
    let id = id_of(&t.ok(&[
        "run",
        "--config",
        s(&cfg),
        "--notify-command",
        &sleeper,
        "--",
        "true",
    ]));
    settle(&t, &id);
    assert_eq!(sink_error(&t, &id), "timed out after 500ms");
    let meta = t.meta(&id);
    assert_eq!(meta["sink_timeout_ms"], 500, "{meta}");
    // Rounded up for older versions, so that a limit stays a limit.
    assert_eq!(meta["sink_timeout_secs"], 1, "{meta}");
}

/// The error `run --config PATH` gives: (code, message).
fn config_error(t: &TempRoot, path: &str) -> (String, String) {
    let (_, v) = t.err(&["run", "--config", path, "--", "true"]);
    let e = &v["error"];
    (
        e["code"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
    )
}

#[test]
fn a_config_path_that_cannot_be_opened_is_invalid_config() {
    let t = TempRoot::new();
    let ok = named_config(&t, "");
    let slash = format!("{}/", s(&ok));
    let (code, msg) = config_error(&t, &slash);
    assert_eq!(code, "invalid_config", "{msg}");
    assert!(
        msg.contains("not a directory") && msg.contains(&slash),
        "{msg}"
    );
    let lp = t.base.join("loop.toml");
    std::os::unix::fs::symlink(&lp, &lp).unwrap();
    let (code, msg) = config_error(&t, s(&lp));
    assert_eq!(code, "invalid_config", "{msg}");
    assert!(msg.contains("symbolic links"), "{msg}");
    let sock = t.base.join("sock.toml");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (code, msg) = config_error(&t, s(&sock));
    assert_eq!(code, "invalid_config", "{msg}");
    // The empty path is a usage mistake, as `--log ''` is.
    let (code, msg) = config_error(&t, "");
    assert_eq!(
        (&*code, &*msg),
        ("usage_error", "--config must not be empty")
    );
}

/// The default config file cannot exist under a file where its directory
/// should be: the defaults, as a missing file (0.2.3 asked whether it
/// exists). Named with --config, the same path is an error; an unreadable
/// default file still is one.
#[test]
fn a_file_where_the_default_config_dir_should_be_reads_defaults() {
    let t = TempRoot::new();
    std::fs::create_dir_all(t.base.join("config")).unwrap();
    let file = t.base.join("config/agent-exec");
    std::fs::write(&file, "").unwrap();
    let v = t.ok(&["run", "--", "echo", "hi"]);
    assert_eq!(v["stdout"], "hi\n", "{v}");
    let (code, msg) = config_error(&t, s(&file.join("config.toml")));
    assert_eq!(code, "invalid_config", "{msg}");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir_all(file.join("config.toml")).unwrap();
    let (_, v) = t.err(&["run", "--", "true"]);
    assert_eq!(v["error"]["code"], "invalid_config", "{v}");
}

#[test]
fn a_huge_bad_duration_is_not_echoed_whole() {
    let t = TempRoot::new();
    let huge = "9".repeat(100_000) + "x";
    let cfg = named_config(&t, &format!("[notify]\nsink_timeout = \"{huge}\"\n"));
    let (code, msg) = config_error(&t, s(&cfg));
    assert_eq!(code, "invalid_config");
    assert!(msg.len() < 400 && msg.contains("..."), "{}", msg.len());
}

/// A TOML date where no key of ours looks (another tool's section, a
/// newer version's key) loads; a wrong type on a key we know, `[shell]
/// windows` included, is invalid_config naming its line.
#[test]
fn dates_elsewhere_load_and_known_keys_keep_their_types() {
    let t = TempRoot::new();
    let p = named_config(
        &t,
        "[other_tool]\nlast_sync = 2024-01-01T00:00:00Z\nday = 1979-05-27\nat = 1979-05-27 07:32:00\n",
    );
    let v = t.ok(&["run", "--config", s(&p), "--", "echo", "hi"]);
    assert_eq!(v["stdout"], "hi\n", "{v}");
    for (text, line) in [
        ("[shell]\nwindows = 5\n", 2),
        ("# x\n[gc]\nauto = 2024-01-01\n", 3),
        ("[other]\nday = 2023-02-29\n", 2),
    ] {
        let p = named_config(&t, text);
        let (code, msg) = config_error(&t, s(&p));
        assert_eq!(code, "invalid_config", "{text}: {msg}");
        assert!(msg.contains(&format!("{}:{line}:", s(&p))), "{text}: {msg}");
    }
}
