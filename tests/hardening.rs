//! Regression tests for the defects a hostile-input and crash campaign
//! found (one test per finding, named after it): lost output on a full
//! disk, gc racing readers, workloads outliving their supervisor, jobs
//! stuck in `created`, unbounded env files, a kill-after that never
//! fired, deletes of live jobs, late notification settings, log paths
//! that did not exist yet, panics on edge values, symlinks in job
//! directories, secrets in meta.json, the login shell eating PATH, and
//! the small first-use defects. Each test fails on the code before its
//! fix.

mod support;
#[path = "support/validate.rs"]
mod validate;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{free_kib, Mount, TempRoot};

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

/// Is `pid` a live process (some thread of it not yet exited)?
fn alive(pid: u64) -> bool {
    support::process_alive(pid)
}

/// Wait (bounded) until `f` holds; the processes we watch end on their
/// own schedule, not ours.
fn eventually(what: &str, secs: u64, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes whose whole command line is `sleep ARG` (not the
/// shells whose scripts mention it).
fn sleepers(arg: &str) -> Vec<u32> {
    let want = format!("sleep\0{arg}\0");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmd == want.as_bytes() && alive(u64::from(pid)) {
            out.push(pid);
        }
    }
    out
}

fn kill9(pid: u64) {
    Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
}

/// The supervisor of a job has exited (its argv names the job id).
fn supervisor_gone(t: &TempRoot, id: &str) -> bool {
    t.pids_matching(&format!("_supervise {} {id}", t.root.display()))
        .is_empty()
}

// ---------------------------------------------------------------------
// A1. Full disk
// ---------------------------------------------------------------------

/// A caller's file-size limit (`ulimit -f`) below the job's record: its
/// end is still recorded, exit code and all, and its logs keep to the
/// limit (EFBIG in output_lost); where the limit cannot be lifted for
/// the record (a hard limit, not root), the job does not run: no_space.
/// The record failed with EFBIG, and the job read supervisor_lost.
#[test]
fn a1_a_file_size_limit_below_the_record_keeps_the_exit_code() {
    let t = TempRoot::new();
    let under = |limit: &str| {
        let mut c = t.private("sh");
        c.arg("-c")
            .arg(format!("ulimit {limit}; exec \"$0\" \"$@\""))
            .arg(support::bin())
            .args(["--root"])
            .arg(&t.root)
            .args(["run", "--", "head -c 5000 /dev/zero; exit 5"]);
        t.exec(c).json()
    };
    // The soft limit alone: lifted to the hard one for the record.
    let v = under("-S -f 1");
    assert_eq!(
        (&v["state"], &v["exit_code"]),
        (&json!("exited"), &json!(5)),
        "{v}"
    );
    assert_eq!(v["output_lost"][0]["errno"], "EFBIG", "{v}");
    assert!(v["stdout_total_bytes"].as_u64().unwrap() <= 512, "{v}");
    // The hard one too: lifted by a process allowed to (CAP_SYS_RESOURCE),
    // else the job does not run.
    let v = under("-f 1");
    let lifted = v["state"] == "exited" && v["exit_code"] == 5;
    let refused = v["state"] == "failed" && v["failure"]["code"] == "no_space";
    assert!(lifted || refused, "{v}");
    if refused {
        assert!(
            v["failure"]["message"]
                .as_str()
                .unwrap()
                .contains("ulimit -f"),
            "{v}"
        );
    }
}

#[test]
fn a1_full_disk_is_recorded_and_the_exit_code_survives() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "1m") else {
        return;
    };
    // 4 MB of output into a 1 MiB file system, then exit 3.
    let events = t.base.join("finished.ndjson");
    let v = t.ok(&[
        "run",
        "--no-auto-gc",
        "--notify-file",
        events.to_str().unwrap(),
        "--until",
        "60",
        "--",
        "head -c 4000000 /dev/zero | tr '\\0' x; exit 3",
    ]);
    let id = id_of(&v);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["exit_code"], 3, "{v}");
    let lost = v["output_lost"].as_array().expect("output_lost in run");
    let out = lost
        .iter()
        .find(|l| l["stream"] == "stdout")
        .unwrap_or_else(|| panic!("stdout loss: {v}"));
    assert_eq!(out["errno"], "ENOSPC", "{v}");
    let dropped = out["dropped_bytes"].as_u64().unwrap();
    let stored = v["stdout_total_bytes"].as_u64().unwrap();
    assert_eq!(stored + dropped, 4_000_000, "{v}");
    // The log is an exact prefix of the stream.
    let log = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    assert_eq!(log.len() as u64, stored);
    assert!(log.iter().all(|&b| b == b'x'));
    // Every response about the job says so.
    for args in [vec!["status", &id], vec!["wait", &id]] {
        let s = t.ok(&args);
        assert_eq!(s["state"], "exited", "{s}");
        assert_eq!(s["exit_code"], 3, "{s}");
        assert_eq!(s["output_lost"], v["output_lost"], "{s}");
    }
    // And its job.finished event: a consumer of the event alone could
    // not tell that the logs are short.
    eventually("job.finished", 20, || {
        std::fs::read_to_string(&events).is_ok_and(|t| t.ends_with('\n'))
    });
    let ev: Value = serde_json::from_str(std::fs::read_to_string(&events).unwrap().trim()).unwrap();
    assert_eq!(ev["output_lost"], v["output_lost"], "{ev}");
}

/// A job whose supervisor died, on a root that became read-only: its end
/// cannot be saved, and `delete` says what stops it (io_error, not
/// retryable), at once; gc reports it failed with the reason, never
/// "running" beside a failed state.
#[test]
fn a1_a_lost_job_on_a_read_only_root_is_an_io_error_to_delete() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "2m") else {
        return;
    };
    let id = t.start_job(&["sleep", "65.25"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // And the auto-GC sweep it started, which holds the root's guard
    // open for writing: the file system cannot be made read-only under
    // it (EBUSY).
    t.settle();
    let ro = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&t.root)
        .status()
        .unwrap();
    assert!(ro.success());
    let t0 = Instant::now();
    let (_, e) = t.err(&["delete", &id]);
    assert!(t0.elapsed() < Duration::from_millis(1500), "{e}");
    assert_eq!(
        (
            e["error"]["code"].as_str(),
            e["error"]["retryable"].as_bool()
        ),
        (Some("io_error"), Some(false)),
        "{e}"
    );
    for args in [vec!["gc", "--max-jobs", "0"], vec!["delete", "--all"]] {
        let v = t.ok(&args);
        let j = &v["jobs"][0];
        assert_eq!(
            (j["state"].as_str(), j["action"].as_str()),
            (Some("failed"), Some("skipped")),
            "{v}"
        );
        assert!(
            j["reason"].as_str().unwrap().starts_with("delete_failed"),
            "{v}"
        );
    }
    assert!(sleepers("65.25").is_empty());
}

/// A `created` job on a root that became read-only: `delete` says what
/// stops it (io_error, not retryable), and `delete --all
/// --include-created` counts it failed; it said "started by another
/// caller while this delete waited ... try again" (invalid_state,
/// retryable), and --all listed it skipped as `running`.
#[test]
fn a1_a_created_job_on_a_read_only_root_is_an_io_error_to_delete() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "2m") else {
        return;
    };
    let id = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ro = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&t.root)
        .status()
        .unwrap();
    assert!(ro.success());
    let (_, e) = t.err(&["delete", &id]);
    assert_eq!(
        (
            e["error"]["code"].as_str(),
            e["error"]["retryable"].as_bool()
        ),
        (Some("io_error"), Some(false)),
        "{e}"
    );
    let v = t.ok(&["delete", "--all", "--include-created"]);
    assert_eq!(v["failed"], 1, "{v}");
    let j = &v["jobs"][0];
    assert_eq!(j["state"], "created", "{v}");
    assert!(
        j["reason"].as_str().unwrap().starts_with("delete_failed"),
        "{v}"
    );
    assert_eq!(t.ok(&["status", &id])["state"], "created");
}

/// A disk too full to hold the room reserved for a job's end: the job
/// does not run at all (it could not promise its exit code a record) and
/// says why, instead of running and losing its end.
#[test]
fn a1_a_disk_too_full_for_the_reserve_runs_nothing_and_says_so() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "1m") else {
        return;
    };
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    // Its supervisor gives back its reserve after the answer: measure
    // the room left once it has.
    t.settle();
    // About 40 KiB left (df's count of free 1 KiB blocks, less 40).
    let avail = free_kib(&t.root);
    std::fs::write(
        t.root.join("filler"),
        vec![0u8; ((avail - 40) * 1024) as usize],
    )
    .unwrap();
    // The job would print more than is left, and then could not record
    // its end: it must not run.
    let marker = t.base.join("ran");
    let cmd = format!("touch {}; seq 1 100000; exit 3", marker.display());
    let v = t.ok(&["run", "--no-auto-gc", "--", &cmd]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "no_space", "{v}");
    assert!(!marker.exists(), "the command ran");
    let id = id_of(&v);
    let s = t.ok(&["status", &id]);
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(s["failure"]["code"], "no_space", "{s}");
    // With room again, jobs run as before.
    std::fs::remove_file(t.root.join("filler")).unwrap();
    let v = t.ok(&["run", "--no-auto-gc", "--", "exit 3"]);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_u64()),
        (Some("exited"), Some(3))
    );
}

// ---------------------------------------------------------------------
// A2. Collection never races a reader
// ---------------------------------------------------------------------

#[test]
fn a2_auto_gc_never_collects_a_job_its_launcher_is_reading() {
    let t = TempRoot::new();
    let children: Vec<_> = (0..40)
        .map(|i| {
            let mut c = t.cmd(&[
                "run",
                "--auto-gc-max-jobs",
                "1",
                "--",
                &format!("echo n{i}"),
            ]);
            c.stdout(Stdio::piped()).stderr(Stdio::null());
            (i, c.spawn().unwrap())
        })
        .collect();
    for (i, c) in children {
        let o = c.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["state"], "exited", "{v}");
        assert_eq!(v["stdout"], format!("n{i}\n"), "{v}");
    }
}

#[test]
fn a2_manual_gc_beside_a_launch_loop_loses_no_answer() {
    let t = TempRoot::new();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Three collectors at once, each deleting every finished job.
    let gcs: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let root = t.root.clone();
            let home = t.base.join("home");
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = Command::new(support::bin())
                        .arg("--root")
                        .arg(&root)
                        .args(["gc", "--older-than", "0"])
                        .env("HOME", &home)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            })
        })
        .collect();
    for i in 0..100 {
        let v = t.ok(&["run", "--no-auto-gc", "--", &format!("echo m{i}")]);
        assert_eq!(v["stdout"], format!("m{i}\n"), "{v}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for g in gcs {
        g.join().unwrap();
    }
}

#[test]
fn a2_gc_skips_a_job_a_reader_holds_and_errors_name_the_job() {
    let t = TempRoot::new();
    let id = "01K00000000000000000000003".to_string();
    t.fabricate(&id, "exited", &t.cwd, Some("2026-01-01T00:00:00Z"));
    // A reader's pin is a shared flock on the job directory.
    let mut holder = Command::new("flock")
        .arg("-s")
        .arg(t.job_dir(&id))
        .args(["sleep", "1"])
        .spawn()
        .unwrap();
    eventually("the reader holds the job", 5, || {
        Command::new("flock")
            .args(["-n", "-x"])
            .arg(t.job_dir(&id))
            .arg("true")
            .status()
            .is_ok_and(|s| !s.success())
    });
    let v = t.ok(&["gc", "--older-than", "0"]);
    let e = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{v}"))
        .clone();
    assert_eq!(
        (e["action"].as_str(), e["reason"].as_str()),
        (Some("skipped"), Some("in_use")),
        "{v}"
    );
    assert!(t.job_dir(&id).join("meta.json").exists());
    holder.wait().unwrap();
    let v = t.ok(&["gc", "--older-than", "0"]);
    assert_eq!(v["deleted"], 1, "{v}");

    // An error about a job carries its id.
    let id = id_of(&t.ok(&["run", "--", "true"]));
    std::fs::write(t.job_dir(&id).join("state.json"), "{").unwrap();
    let (_, e) = t.err(&["status", &id[..12]]);
    assert_eq!(e["error"]["details"]["job_id"], id.as_str(), "{e}");
}

// ---------------------------------------------------------------------
// A3. The workload does not outlive a lost supervisor
// ---------------------------------------------------------------------

#[test]
fn a3_a_lost_supervisor_takes_its_workload_with_it() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 61.25 & sleep 61.5; wait"]);
    let st = t.state(&id);
    let (sup, root) = (
        st["supervisor_pid"].as_u64().unwrap(),
        st["pid"].as_u64().unwrap(),
    );
    eventually("both sleeps run", 5, || {
        sleepers("61.25").len() == 1 && sleepers("61.5").len() == 1
    });
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // The root dies with its supervisor (parent-death signal).
    eventually("the root process is gone", 5, || !alive(root));
    let v = t.ok(&["status", &id]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    // Reading it reconciled it: the rest of the group is gone too.
    assert!(sleepers("61.25").is_empty(), "background sleep survived");
    assert!(sleepers("61.5").is_empty());
    // Nothing left: delete may remove it.
    t.ok(&["delete", &id]);
}

/// Every reader that reports a lost job's end says why it failed: `kill`
/// (which finds it ended) and `tail --follow`'s end line, as `status`.
#[test]
fn a3_kill_and_follow_of_a_lost_job_say_why_it_failed() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "61.75"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "failed", "{k}");
    assert_eq!(k["failure"]["code"], "supervisor_lost", "{k}");
    let o = t.out(&["tail", "--follow", &id]);
    let end: Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "end", "{}", o.stdout);
    assert_eq!(end["failure"]["code"], "supervisor_lost", "{end}");
    // A job that did not fail says nothing of failure.
    let ok = t.start_job(&["true"]);
    t.wait_done(&ok);
    assert!(t.ok(&["kill", &ok]).get("failure").is_none());
}

/// A `sleep SECS` job with a file sink (`events`) and a command sink
/// (`command`), whose supervisor is SIGKILLed; a `status` then records
/// its end (`supervisor_lost`), which owes the job its `job.finished`.
fn lost_with_sinks(t: &TempRoot, events: &std::path::Path, command: &str, secs: &str) -> String {
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--notify-file",
        events.to_str().unwrap(),
        "--notify-command",
        command,
        "--",
        "sleep",
        secs,
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    let v = t.ok(&["status", &id]);
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    id
}

/// Wait until `completion_event.json` (`done`) records both sinks'
/// delivery results.
fn two_deliveries_recorded(done: &std::path::Path) {
    eventually("the delivery is recorded", 10, || {
        std::fs::read_to_string(done)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .is_some_and(|v| {
                v["delivery_results"]
                    .as_array()
                    .is_some_and(|r| r.len() == 2)
            })
    });
}

/// The job.finished its supervisor never sent is sent once the end is
/// recorded: by a detached delivery the reader starts, not the reader.
#[test]
fn a3_a_lost_supervisor_s_job_finished_is_still_delivered_once() {
    let t = TempRoot::new();
    let events = t.root.join("events.ndjson");
    let marks = t.root.join("sink-ran");
    let command = format!("cat > /dev/null; echo x >> '{}'", marks.display());
    let id = lost_with_sinks(&t, &events, &command, "63.5");
    // More readers: the end is recorded once, so it is sent once.
    t.ok(&["status", &id]);
    t.ok(&["list", "--all"]);
    let done = t.job_dir(&id).join("completion_event.json");
    two_deliveries_recorded(&done);
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let ev: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        (
            ev["event_type"].as_str(),
            ev["job_id"].as_str(),
            ev["state"].as_str()
        ),
        (Some("job.finished"), Some(id.as_str()), Some("failed")),
        "{ev}"
    );
    let rec: Value = serde_json::from_str(&std::fs::read_to_string(&done).unwrap()).unwrap();
    for r in rec["delivery_results"].as_array().unwrap() {
        assert_eq!(r["success"], true, "{rec}");
    }
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "x\n");
}

/// A supervisor killed while its sinks ran (the job had ended, and its
/// record said so) owes its `job.finished`: the next reader has it sent,
/// as for a supervisor lost before the end, and so on until one delivery
/// ends. It was lost for good (47 of 60 such kills), the file sink's
/// too, which runs after the command's. A sink cut short runs again.
#[test]
fn a3_a_supervisor_killed_while_delivering_still_gets_job_finished_sent_once() {
    let t = TempRoot::new();
    let events = t.base.join("events.ndjson");
    let started = t.base.join("started");
    let gate = t.base.join("gate");
    let marks = t.base.join("sink-ran");
    let command = format!(
        "touch '{}'; while [ ! -e '{}' ]; do sleep 0.01; done; cat > /dev/null; echo x >> '{}'",
        started.display(),
        gate.display(),
        marks.display()
    );
    let v = t.ok(&[
        "run",
        "--notify-file",
        events.to_str().unwrap(),
        "--notify-command",
        &command,
        "--",
        "echo",
        "hi",
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    eventually("the command sink runs", 10, || started.exists());
    assert_eq!(t.state(&id)["finished_owed"], true);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // `list` finds the debt (it had its own shortcut for finished jobs)
    // and starts a delivery; killed too, it leaves the debt in place (it
    // was cleared before the delivery began, and the event lost).
    t.ok(&["list", "--all"]);
    let notifier = || -> Option<u64> {
        let o = Command::new("pgrep")
            .args(["-f", &format!("_notify .*{id}")])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    };
    eventually("a delivery starts", 10, || {
        notifier().is_some_and(|p| t.state(&id)["finished_by"] == json!(p))
    });
    let pid = notifier().unwrap();
    kill9(pid);
    eventually("the delivery is gone", 5, || !alive(pid));
    assert_eq!(t.state(&id)["finished_owed"], true);
    std::fs::write(&gate, "").unwrap();
    // A reader finds the debt and sends the event; more readers do not.
    let st = t.ok(&["status", &id]);
    assert_eq!(
        (&st["state"], &st["exit_code"]),
        (&json!("exited"), &json!(0)),
        "{st}"
    );
    assert!(st.get("finished_owed").is_none(), "{st}");
    let done = t.job_dir(&id).join("completion_event.json");
    two_deliveries_recorded(&done);
    t.ok(&["status", &id]);
    t.ok(&["wait", &id]);
    t.settle();
    let text = std::fs::read_to_string(&events).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let ev: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&ev["event_type"], &ev["state"]),
        (&json!("job.finished"), &json!("exited")),
        "{ev}"
    );
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "x\n");
    let raw = std::fs::read_to_string(t.job_dir(&id).join("state.json")).unwrap();
    assert!(!raw.contains("finished_owed"), "{raw}");
    // A supervisor that delivers clears the debt itself.
    let v = t.ok(&[
        "run",
        "--notify-file",
        events.to_str().unwrap(),
        "--",
        "true",
    ]);
    let other = v["job_id"].as_str().unwrap().to_string();
    eventually("the debt is cleared", 10, || {
        !std::fs::read_to_string(t.job_dir(&other).join("state.json"))
            .unwrap()
            .contains("finished_owed")
    });
    assert_eq!(std::fs::read_to_string(&events).unwrap().lines().count(), 2);
}

/// That delivery holds the job from the moment the reader records the
/// end: a `delete` right after the reader's answer is refused (in use:
/// `invalid_state`, retryable) until it is sent, as while a supervisor
/// delivers. It
/// removed the job before the detached delivery began, which then found
/// no job and sent nothing (13 of 200 in a status-then-delete loop).
#[test]
fn a3_a_lost_supervisor_s_delivery_holds_the_job_until_sent() {
    let t = TempRoot::new();
    let events = t.base.join("events.ndjson");
    let gate = t.base.join("gate");
    let command = format!(
        "cat > /dev/null; while [ ! -e '{}' ]; do sleep 0.01; done",
        gate.display()
    );
    let id = lost_with_sinks(&t, &events, &command, "63.75");
    let (code, e) = t.err(&["delete", &id]);
    assert_eq!(code, 1, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], true, "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("job.finished"), "{msg}");
    std::fs::write(&gate, "").unwrap();
    eventually("the delivery ends and the job can go", 10, || {
        t.out(&["delete", &id]).code == 0
    });
    let text = std::fs::read_to_string(&events).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn a3_kill_reaches_the_group_of_a_job_whose_supervisor_died() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 62.25 & sleep 62.5; wait"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    eventually("sleeps run", 5, || sleepers("62.25").len() == 1);
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // `kill` is the first reader: it must not answer ok while nothing
    // was signalled and the sleep runs on.
    let v = t.ok(&["kill", &id]);
    assert_eq!(v["state"], "failed", "{v}");
    assert!(sleepers("62.25").is_empty(), "kill left the group alive");
}

/// A terminal record whose process group still has members (a process
/// that escaped every kill) is never deleted; a pid reused by a
/// stranger never blocks a delete.
#[test]
fn a3_a20_delete_refuses_live_members_and_ignores_reused_pids() {
    let t = TempRoot::new();
    let (mut member, pid, sid, start) = support::group_leader("63.5");
    let fab = |id: &str, pid: u32, sid: u64, start: u64| {
        t.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:00Z"));
        let p = t.job_dir(id).join("state.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["pid"] = pid.into();
        v["sid"] = sid.into();
        v["pid_start_time"] = start.into();
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let live = "01K00000000000000000000001";
    let reused = "01K00000000000000000000002";
    fab(live, pid, sid, start);
    // Same pid, but another start time and session: somebody else's.
    fab(reused, pid, sid + 1, start + 1);
    // A dry run predicts the real run: the live job would be refused.
    let (code, e) = t.err(&["delete", "--dry-run", live]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("invalid_state")),
        "{e}"
    );
    let v = t.ok(&["gc", "--dry-run"]);
    let reasons: Vec<(String, String)> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["job_id"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&(live.to_string(), "pid_alive".to_string())),
        "{v}"
    );
    assert!(
        reasons.contains(&(reused.to_string(), "older_than".to_string())),
        "{v}"
    );
    let (code, e) = t.err(&["delete", live]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("invalid_state")),
        "{e}"
    );
    assert!(t.job_dir(live).exists());
    let v = t.ok(&["delete", "--all"]);
    let entry = |id: &str| {
        v["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["job_id"] == id)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(entry(live)["reason"], "pid_alive", "{v}");
    assert_eq!(entry(reused)["action"], "deleted", "{v}");
    assert!(t.job_dir(live).exists() && !t.job_dir(reused).exists());
    member.kill().unwrap();
    member.wait().unwrap();
    t.ok(&["delete", live]);
}

/// Cleaning up after a lost supervisor kills the job's process group
/// only while its leader is still the process the job started (same
/// start time): a group whose number now belongs to somebody else (here
/// another job, as after pid reuse) is left alone by `status` and by
/// `kill`, which both used to SIGKILL it.
#[test]
fn a3_a_lost_supervisor_cleanup_never_kills_a_reused_group() {
    let t = TempRoot::new();
    // Without auto-GC: a sweep judging a lost job holds its lock for a
    // moment, and a reader waits that out only while the recorded
    // supervisor is gone, which the forged records below deny (an
    // idle-priority sweep on a busy machine made `status` answer the
    // stale `running`).
    let start =
        |secs: &str| id_of(&t.ok(&["run", "--no-wait", "--no-auto-gc", "--", "sleep", secs]));
    let lost: Vec<String> = (0..2).map(|_| start("64.25")).collect();
    // A start time is counted in clock ticks (10 ms here): a stranger
    // started in the same tick as a lost root is indistinguishable from
    // it, which real pid reuse (after the pid space wraps) never is.
    let ticks = |id: &str| t.state(id)["pid_start_time"].as_u64().unwrap();
    let lost_ticks: Vec<u64> = lost.iter().map(|id| ticks(id)).collect();
    let mut stranger = start("64.5");
    while lost_ticks.contains(&ticks(&stranger)) {
        t.ok(&["kill", "--signal", "KILL", &stranger]);
        t.wait_done(&stranger);
        stranger = start("64.5");
    }
    // Its login shell has exec'd `sleep` (under load it was still reading
    // the profile when the count below was taken, and read 0).
    eventually("the stranger sleeps", 20, || sleepers("64.5").len() == 1);
    let st = t.state(&stranger);
    let (pid, sid) = (st["pid"].clone(), st["sid"].clone());
    for id in &lost {
        let sup = t.state(id)["supervisor_pid"].as_u64().unwrap();
        kill9(sup);
        eventually("the supervisor is gone", 5, || !alive(sup));
        // Its numbers now name the stranger's group; its start time is
        // still its own root's.
        let p = t.job_dir(id).join("state.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        assert!(v["pid_start_time"].as_u64().is_some(), "{v}");
        v["pid"] = pid.clone();
        v["sid"] = sid.clone();
        v["supervisor_pid"] = sid.clone();
        std::fs::write(&p, v.to_string()).unwrap();
    }
    let v = t.ok(&["status", &lost[0]]);
    assert_eq!(v["state"], "failed", "{v}");
    let v = t.ok(&["kill", &lost[1]]);
    assert_eq!(v["state"], "failed", "{v}");
    t.ok(&["kill", &lost[0]]);
    assert_eq!(sleepers("64.5").len(), 1, "the stranger was killed");
    assert_eq!(t.ok(&["status", &stranger])["state"], "running");
    t.ok(&["kill", &stranger]);
    t.wait_done(&stranger);
}

// ---------------------------------------------------------------------
// A4. Nothing stays `created` forever
// ---------------------------------------------------------------------

#[test]
fn a4_a5_a_fifo_env_file_fails_at_once() {
    let t = TempRoot::new();
    let fifo = t.base.join("f");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let t0 = Instant::now();
    let v = t.ok(&[
        "run",
        "--until",
        "2",
        "--env-file",
        fifo.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "env_file_unreadable", "{v}");
    let id = id_of(&v);
    // Every command agrees on what it is.
    assert_eq!(t.ok(&["status", &id])["state"], "failed");
    t.ok(&["delete", &id]);
}

#[test]
fn a4_a_launch_that_died_reads_launch_lost_and_half_written_dirs_go() {
    let t = TempRoot::new();
    // What a `run` front-end killed in its launch window leaves: the job
    // lock (free now) and meta.json, no state.json.
    let id = id_of(&t.ok(&["create", "--", "true"]));
    let d = t.job_dir(&id);
    std::fs::remove_file(d.join("state.json")).unwrap();
    std::fs::write(d.join("lock"), b"").unwrap();
    let v = t.ok(&["status", &id]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "launch_lost", "{v}");
    assert_eq!(t.ok(&["kill", &id])["state"], "failed");
    t.ok(&["delete", &id]);
    // A directory without meta.json, untouched for two minutes: gc
    // removes it; a fresh one stays (a launch may be writing it).
    let old = t.root.join("01K00000000000000000000009");
    let fresh = t.root.join("01K0000000000000000000000A");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&fresh).unwrap();
    // A folder that is not named as a job is not ours, however old (a
    // mistyped --root must not cost anybody their files).
    let theirs = t.root.join("myproject");
    std::fs::create_dir_all(theirs.join("src")).unwrap();
    std::fs::write(theirs.join("src/main.rs"), b"important").unwrap();
    for d in [&old, &theirs] {
        assert!(Command::new("touch")
            .args(["-d", "3 hours ago"])
            .arg(d)
            .status()
            .unwrap()
            .success());
    }
    let v = t.ok(&["gc"]);
    assert!(!old.exists(), "{v}");
    assert!(fresh.exists(), "{v}");
    assert!(theirs.join("src/main.rs").exists(), "{v}");
    let e = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job_id"] == "myproject")
        .cloned()
        .unwrap();
    assert_eq!(
        (e["action"].as_str(), e["reason"].as_str()),
        (Some("skipped"), Some("state_unreadable")),
        "{v}"
    );
    let e = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job_id"] == "01K00000000000000000000009")
        .cloned()
        .unwrap();
    assert_eq!(e["reason"], "incomplete", "{v}");
}

#[test]
fn a4_killing_run_front_ends_never_leaves_created_jobs() {
    let t = TempRoot::new();
    for i in 0..24u64 {
        let mut c = t.cmd(&["run", "--no-auto-gc", "--", "true"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        // Spread the kills over the launch window.
        std::thread::sleep(Duration::from_micros(200 * (i % 12)));
        let _ = child.kill();
        let _ = child.wait();
    }
    for e in std::fs::read_dir(&t.root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !e.path().join("meta.json").exists() {
            continue;
        }
        let v = t.ok(&["wait", "--until", "10", &name]);
        assert_ne!(v["state"], "created", "{v}");
        assert_ne!(v["state"], "running", "{v}");
    }
}

// ---------------------------------------------------------------------
// A5. Bounded, regular input files
// ---------------------------------------------------------------------

#[test]
fn a5_env_and_stdin_files_are_bounded_and_regular() {
    let t = TempRoot::new();
    let big = t.base.join("big.env");
    std::fs::write(&big, "A=".to_string() + &"x".repeat(2 << 20)).unwrap();
    // A NUL byte fits no environment entry: the file's fault, named.
    let nul = t.base.join("nul.env");
    std::fs::write(&nul, "A=1\nK=a\0b\n").unwrap();
    for (flag, path, code) in [
        ("--env-file", "/dev/urandom", "env_file_unreadable"),
        ("--env-file", big.to_str().unwrap(), "env_file_unreadable"),
        ("--env-file", nul.to_str().unwrap(), "env_file_unreadable"),
        ("--stdin-file", "/dev/urandom", "stdin_unreadable"),
    ] {
        let t0 = Instant::now();
        let v = t.ok(&["run", flag, path, "--", "true"]);
        assert!(t0.elapsed() < Duration::from_secs(3), "{flag} {path}");
        assert_eq!(v["state"], "failed", "{v}");
        assert_eq!(v["failure"]["code"], code, "{v}");
    }
    let v = t.ok(&["run", "--env-file", nul.to_str().unwrap(), "--", "true"]);
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("nul.env") && msg.contains("line 2"), "{v}");
}

// ---------------------------------------------------------------------
// A6. kill-after reaches the group after its root died of the TERM
// ---------------------------------------------------------------------

#[test]
fn a6_kill_after_fires_after_the_root_is_gone() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--timeout",
        "1",
        "--kill-after",
        "1",
        "--",
        "sh -c '(trap \"\" TERM; exec sleep 64.625) & wait'",
    ]);
    let id = id_of(&v);
    eventually("the TERM-ignoring sleep runs", 5, || {
        sleepers("64.625").len() == 1
    });
    let w = t.wait_done(&id);
    assert_eq!(w["timed_out"], true, "{w}");
    eventually("SIGKILL reaches the sleep", 6, || {
        sleepers("64.625").is_empty()
    });
}

// ---------------------------------------------------------------------
// A7. A live job is never deleted, whatever its files say
// ---------------------------------------------------------------------

#[test]
fn a7_delete_refuses_a_running_job_with_a_broken_state_file() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    std::fs::write(t.job_dir(&id).join("state.json"), "garbage").unwrap();
    let (code, e) = t.err(&["delete", &id]);
    assert_eq!(code, 1);
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert!(t.job_dir(&id).join("meta.json").exists());
    let v = t.ok(&["gc", "--older-than", "0"]);
    assert!(t.job_dir(&id).exists(), "gc removed a live job: {v}");
}

// ---------------------------------------------------------------------
// A8. Notification settings and the terminal state, in both orders
// ---------------------------------------------------------------------

#[test]
fn a8_notify_set_after_the_end_never_runs_a_sink() {
    let t = TempRoot::new();
    for i in 0..15 {
        let id = id_of(&t.ok(&["run", "--", "echo done"]));
        let marker = t.base.join(format!("m{i}"));
        let cmd = format!("touch {}", marker.display());
        t.ok(&["notify", "set", &id, "--command", &cmd]);
        eventually("the supervisor exits", 10, || supervisor_gone(&t, &id));
        assert!(
            !marker.exists(),
            "a sink ran for settings made after the end"
        );
    }
}

#[test]
fn a8_notify_set_while_running_is_delivered() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "0.5"]);
    let marker = t.base.join("delivered");
    let cmd = format!("touch {}", marker.display());
    t.ok(&["notify", "set", &id, "--command", &cmd]);
    t.wait_done(&id);
    eventually("the sink ran", 10, || marker.exists());
}

// ---------------------------------------------------------------------
// A9. Every printed path exists when printed
// ---------------------------------------------------------------------

#[test]
fn a9_log_paths_exist_when_printed() {
    let t = TempRoot::new();
    for _ in 0..20 {
        let v = t.ok(&["run", "--no-wait", "--", "true"]);
        for k in ["stdout_log_path", "stderr_log_path"] {
            assert!(Path::new(v[k].as_str().unwrap()).exists(), "{k}: {v}");
        }
    }
    let v = t.ok(&["create", "--", "true"]);
    for k in ["stdout_log_path", "stderr_log_path"] {
        assert!(Path::new(v[k].as_str().unwrap()).exists(), "{k}: {v}");
    }
}

/// A supervisor slow to say it runs (held 3 s at its first system call
/// of its own, with strace): `run` answers at its deadline, the job still
/// `created`, and the log paths it prints exist then. They did not: the
/// supervisor makes them, and had not yet (audit). Skipped without
/// strace (CI installs it).
#[test]
fn a9_log_paths_exist_when_a_slow_supervisor_is_answered_for() {
    use std::io::BufRead;
    let t = TempRoot::new();
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("strace missing: skipped");
        return;
    }
    let mut c = t.private("strace");
    c.args(["-f", "-o", "/dev/null", "-e", "trace=close_range"])
        .args(["-e", "inject=close_range:delay_enter=3000000:when=1"])
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(["run", "--no-auto-gc", "--until", "0", "--", "true"])
        .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // The answer, as soon as it is printed (strace itself lasts until the
    // supervisor ends, by when it has made the logs anyway).
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_default();
    let exists: Vec<bool> = ["stdout_log_path", "stderr_log_path"]
        .iter()
        .map(|k| v[*k].as_str().is_some_and(|p| Path::new(p).exists()))
        .collect();
    let _ = child.wait();
    if v["state"] != "created" {
        eprintln!("the supervisor was not held (strace could not): skipped: {v}");
        return;
    }
    assert_eq!(exists, [true, true], "{v}");
    t.wait_done(&id_of(&v));
}

// ---------------------------------------------------------------------
// A10. No panic on edge values or hostile names
// ---------------------------------------------------------------------

#[test]
fn a10_edge_values_and_hostile_names_never_panic() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    for until in [
        "18446744073709551615",
        "18446744073709551616",
        "9999999999999999999s",
        "0",
    ] {
        let v = t.ok(&["wait", "--until", until, &id]);
        assert_eq!(v["state"], "exited", "{until}: {v}");
    }
    for flag in ["--timeout", "--kill-after", "--until", "--progress-every"] {
        let v = t.ok(&["run", flag, "18446744073709551615", "--", "true"]);
        assert_eq!(v["state"], "exited", "{flag}: {v}");
    }
    // Legacy directories with non-ASCII names: the root stays usable
    // (made once the runs' auto-GC, which would collect them, is done).
    t.settle();
    for name in ["é-job", "日本語の仕事", "aé"] {
        t.fabricate(name, "exited", &t.cwd, Some("2026-01-01T00:00:00Z"));
    }
    for args in [
        vec!["list", "--all"],
        vec!["ps", "--all"],
        vec!["list"],
        vec!["status", "é"],
        vec!["status", "日本"],
        vec!["status", &id[..10]],
        vec!["gc", "--dry-run"],
    ] {
        let o = t.out(&args);
        assert!(o.code == 0 || o.code == 1, "{args:?}: {}", o.stdout);
        let v = o.json();
        assert_ne!(v["error"]["code"], "internal_error", "{args:?}: {v}");
    }
    assert_eq!(t.ok(&["status", "日本"])["job_id"], "日本語の仕事");
    // A sink time limit beyond any clock is accepted and the event still
    // arrives.
    let cfg = t.base.join("c.toml");
    std::fs::write(&cfg, "[notify]\nsink_timeout = \"9999999999999999999s\"\n").unwrap();
    let events = t.base.join("events.ndjson");
    let marker = t.base.join("sink-ran");
    let v = t.ok(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--notify-command",
        &format!("touch {}", marker.display()),
        "--notify-file",
        events.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(v["state"], "exited");
    eventually("job.finished delivered", 10, || {
        marker.exists()
            && std::fs::read_to_string(&events).is_ok_and(|s| s.contains("job.finished"))
    });
}

// ---------------------------------------------------------------------
// A11. No symlink in a job directory is ever followed
// ---------------------------------------------------------------------

#[test]
fn a11_symlinks_in_job_dirs_are_refused() {
    let t = TempRoot::new();
    let secret = t.base.join("secret.txt");
    std::fs::write(&secret, "TOP-SECRET-MARKER\n").unwrap();
    let id = id_of(&t.ok(&["run", "--", "echo hi"]));
    let log = t.job_dir(&id).join("stdout.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    for args in [
        vec!["tail", &id],
        vec!["run", "--", "true"],
        vec!["status", &id],
        vec!["wait", &id],
    ] {
        let o = t.out(&args);
        assert!(
            !o.stdout.contains("TOP-SECRET-MARKER"),
            "{args:?}: {}",
            o.stdout
        );
    }
    let (code, e) = t.err(&["tail", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("unsafe_path")),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["job_id"], id.as_str());
    // A job directory that is a symlink is not a job: named exactly, it
    // is refused as such (the man page's unsafe_path); a prefix does not
    // find it.
    let elsewhere = t.base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let other = id_of(&t.ok(&["run", "--", "true"]));
    std::fs::rename(t.job_dir(&other), elsewhere.join(&other)).unwrap();
    std::os::unix::fs::symlink(elsewhere.join(&other), t.job_dir(&other)).unwrap();
    for cmd in ["status", "tail", "wait", "kill", "delete"] {
        let (_, e) = t.err(&[cmd, &other]);
        assert_eq!(e["error"]["code"], "unsafe_path", "{cmd} {e}");
        assert_eq!(e["error"]["details"]["job_id"], other.as_str(), "{cmd} {e}");
    }
    let (_, e) = t.err(&["status", &other[..20]]);
    assert_eq!(e["error"]["code"], "job_not_found", "{e}");
    t.ok(&["gc", "--older-than", "0"]);
    assert!(
        elsewhere.join(&other).join("meta.json").exists(),
        "gc followed a symlink"
    );
    // A state.json that is a symlink is refused, not read.
    let third = id_of(&t.ok(&["run", "--", "true"]));
    // Put in place in one rename, once the run's auto-GC sweep is over
    // (a reader finding no record in between writes one).
    t.settle();
    let st = t.job_dir(&third).join("state.json");
    let tmp = t.job_dir(&third).join("state.json.link");
    std::os::unix::fs::symlink(&secret, &tmp).unwrap();
    std::fs::rename(&tmp, &st).unwrap();
    let (_, e) = t.err(&["status", &third]);
    assert_eq!(e["error"]["code"], "unsafe_path", "{e}");
}

/// A state.json that is a dangling symlink is a symlink too, not a
/// missing record: readers recorded launch_lost over it (an exited job
/// read failed) and `delete` removed the job.
#[test]
fn a11_a_dangling_symlink_for_state_json_is_refused() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    // Nothing else reads the job meanwhile (the auto-GC sweep the run
    // started), and the symlink takes the record's place in one rename:
    // a reader that found no record between a removal and a symlink
    // wrote one (launch_lost) over the symlink.
    t.settle();
    let st = t.job_dir(&id).join("state.json");
    let tmp = t.job_dir(&id).join("state.json.link");
    std::os::unix::fs::symlink(t.base.join("nothing-here"), &tmp).unwrap();
    std::fs::rename(&tmp, &st).unwrap();
    for cmd in ["status", "delete"] {
        let (_, e) = t.err(&[cmd, &id]);
        assert_eq!(e["error"]["code"], "unsafe_path", "{cmd}: {e}");
    }
    t.ok(&["list"]);
    t.ok(&["gc", "--older-than", "0"]);
    assert!(
        std::fs::symlink_metadata(&st).is_ok_and(|m| m.file_type().is_symlink()),
        "a reader wrote over the symlink"
    );
}

/// A log replaced by a hard link to a file outside the root before the
/// job starts: nothing is done to that file (it was cut, written with
/// the job's output and made 0600); the job does not run.
#[test]
fn a11_a_hard_linked_log_is_never_written_through() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempRoot::new();
    let outside = t.base.join("precious");
    std::fs::write(&outside, "PRECIOUS\n").unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
    for log in ["stdout.log", "stderr.log"] {
        let id = id_of(&t.ok(&["create", "--", "echo out; echo err >&2"]));
        let at = t.job_dir(&id).join(log);
        std::fs::remove_file(&at).unwrap();
        std::fs::hard_link(&outside, &at).unwrap();
        let v = t.ok(&["start", &id]);
        let s = t.wait_done(&id);
        assert_eq!(s["state"], "failed", "{log}: {v} {s}");
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            "PRECIOUS\n",
            "{log}"
        );
        let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{log}");
    }
}

/// A job directory swapped for a symlink while the job runs: the match
/// event its command sink gets is written in no directory the link
/// leads to (it was: match_events/ was made through the link).
#[test]
fn a11_match_events_are_never_written_through_a_swapped_job_directory() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let id = id_of(&t.ok(&[
        "run",
        "--no-wait",
        "--output-pattern",
        "HIT",
        "--output-command",
        "true",
        "--",
        &format!(
            "echo READY; while [ ! -e '{}' ]; do sleep 0.01; done; echo HIT",
            gate.display()
        ),
    ]));
    // Its supervisor's set-up is done by then (a swap before it fails the
    // job's logs: nothing to match).
    t.ok(&["wait", "--output", "READY", &id]);
    let dir = t.job_dir(&id);
    let elsewhere = t.base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(&dir, t.root.join(".moved")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
    std::fs::write(&gate, "").unwrap();
    // The supervisor ends (its sink's delivery done) once the job has.
    eventually("the supervisor to end", 20, || supervisor_gone(&t, &id));
    assert!(
        std::fs::read_dir(&elsewhere).unwrap().next().is_none(),
        "written through the link: {:?}",
        std::fs::read_dir(&elsewhere).unwrap().collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------
// A12. Secrets stay out of meta.json
// ---------------------------------------------------------------------

#[test]
fn a12_env_values_live_only_in_env_json() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--env",
        "A=s3cret-value",
        "--env",
        "B=masked-value",
        "--mask",
        "B",
        "--",
        "true",
    ]);
    let id = id_of(&v);
    let meta = t.read(&id, "meta.json");
    assert!(
        !meta.contains("s3cret-value") && !meta.contains("masked-value"),
        "{meta}"
    );
    assert!(meta.contains("\"A\""), "names are kept: {meta}");
    assert_eq!(
        v["env_vars"],
        serde_json::json!(["A=s3cret-value", "B=***"])
    );
    let env = t.job_dir(&id).join("env.json");
    assert!(std::fs::read_to_string(&env)
        .unwrap()
        .contains("s3cret-value"));
    assert_eq!(
        std::fs::metadata(&env).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // `start` of a created job shows the same display form.
    let c = id_of(&t.ok(&[
        "create",
        "--env",
        "B=masked-value",
        "--mask",
        "B",
        "--",
        "true",
    ]));
    assert!(!t.read(&c, "meta.json").contains("masked-value"));
    let s = t.ok(&["start", &c]);
    assert_eq!(s["env_vars"], serde_json::json!(["B=***"]), "{s}");
}

// ---------------------------------------------------------------------
// C14, C15. The job's environment under a login shell
// ---------------------------------------------------------------------

/// A HOME whose ~/.profile resets PATH and a variable, as Debian's
/// /etc/profile does to PATH.
fn hostile_profile(t: &TempRoot) -> (std::path::PathBuf, std::path::PathBuf) {
    let home = t.base.join("phome");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".profile"),
        "PATH=/usr/bin:/bin:/profile/bin; export PATH\nFOO=from-profile; export FOO\n",
    )
    .unwrap();
    let tools = t.base.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let tool = tools.join("mytool");
    std::fs::write(&tool, "#!/bin/sh\necho mytool-ran\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    (home, tools)
}

fn run_env(t: &TempRoot, home: &Path, path: &str, args: &[&str]) -> Value {
    let mut c = t.cmd(&["run", "--shell-wrapper", "sh -lc"]);
    c.args(args).env("HOME", home).env("PATH", path);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(v["ok"], true, "{v}");
    v
}

/// The login-shell set-up leaves no trace in the job: the shell's line
/// numbers are the command's, the variables the PATH rebuild uses are
/// agent-exec's own names (refused in --env and env files), and a job's
/// PATH without the wrapper does not keep the wrapper from starting.
#[test]
fn c14_the_login_set_up_is_invisible_to_the_job() {
    let t = TempRoot::new();
    let (home, tools) = hostile_profile(&t);
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let v = run_env(
        &t,
        &home,
        &path,
        &["--env", "FOO=x", "--", "echo one\nif then"],
    );
    let err = v["stderr"].as_str().unwrap();
    assert!(err.contains(" 2: ") && !err.contains(" 3: "), "{v}");
    // Names the rebuild used to clobber are the job's again.
    let v = run_env(
        &t,
        &home,
        &path,
        &["--env", "__ae_p=mine", "--", "echo ${__ae_p-unset}"],
    );
    assert_eq!(v["stdout"], "mine\n", "{v}");
    for env in ["__AGENT_EXEC_PATH=/x", "__AGENT_EXEC_ENV"] {
        let (code, e) = t.err(&["run", "--env", env, "--", "true"]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (2, Some("usage_error")),
            "{e}"
        );
    }
    let envf = t.base.join("reserved.env");
    std::fs::write(&envf, "__AGENT_EXEC_P=1\n").unwrap();
    let v = t.ok(&["run", "--env-file", envf.to_str().unwrap(), "--", "true"]);
    assert_eq!(v["failure"]["code"], "env_file_unreadable", "{v}");
    // A PATH with no sh on it: the wrapper is found as the caller finds
    // it, and the job runs with the PATH it was given.
    let v = run_env(
        &t,
        &home,
        &path,
        &[
            "--env",
            &format!("PATH={}", tools.display()),
            "--",
            "mytool; echo $PATH",
        ],
    );
    assert_eq!(
        v["stdout"].as_str().unwrap(),
        format!("mytool-ran\n{}\n", tools.display()),
        "{v}"
    );
    // Also with an empty entry (a PATH ending in `:`, `::` inside): it
    // names the job's cwd, which has no sh either (it failed spawn_failed).
    for given in [
        format!("{}:", tools.display()),
        format!(":{}", tools.display()),
    ] {
        let v = run_env(
            &t,
            &home,
            &path,
            &["--env", &format!("PATH={given}"), "--", "mytool"],
        );
        assert_eq!(v["stdout"], "mytool-ran\n", "{given}: {v}");
    }
    // A caller with no PATH at all (`env -i`, audit 28): the wrapper is
    // looked for on the default PATH, where its launch without --env
    // PATH finds it (it failed spawn_failed, 'spawn sh').
    let mut c = t.cmd(&["run", "--shell-wrapper", "sh -lc"]);
    c.args([
        "--env",
        &format!("PATH={}", tools.display()),
        "--",
        "mytool",
    ])
    .env("HOME", &home)
    .env_remove("PATH");
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], "mytool-ran\n", "{v}");
}

/// `--env NAME` passes the caller's value on as it is, or not at all.
#[test]
fn c14_env_name_alone_refuses_a_value_it_cannot_pass_on() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let mut c = t.cmd(&["run", "--env", "ODD", "--", "true"]);
    c.env("ODD", std::ffi::OsStr::from_bytes(b"a\xffb"));
    let o = t.exec(c);
    let e = o.json();
    assert_eq!(
        (o.code, e["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{e}"
    );
    let mut c = t.cmd(&["run", "--env", "GOOD", "--", "echo $GOOD"]);
    c.env("GOOD", "caf\u{e9}");
    assert_eq!(t.exec(c).json()["stdout"], "caf\u{e9}\n");
}

#[test]
fn c14_the_caller_path_and_env_win_over_the_profile() {
    let t = TempRoot::new();
    let (home, tools) = hostile_profile(&t);
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let v = run_env(&t, &home, &path, &["--", "mytool"]);
    assert_eq!(v["stdout"], "mytool-ran\n", "{v}");
    let v = run_env(&t, &home, &path, &["--", "echo $PATH"]);
    // Caller's entries first, then what the profile added.
    assert_eq!(
        v["stdout"].as_str().unwrap().trim(),
        format!("{}:/usr/bin:/bin:/profile/bin", tools.display()),
        "{v}"
    );
    let v = run_env(&t, &home, &path, &["--env", "FOO=mine", "--", "echo $FOO"]);
    assert_eq!(v["stdout"], "mine\n", "{v}");
    let envf = t.base.join("e.env");
    std::fs::write(&envf, "FOO=from-file\n").unwrap();
    let v = run_env(
        &t,
        &home,
        &path,
        &["--env-file", envf.to_str().unwrap(), "--", "echo $FOO"],
    );
    assert_eq!(v["stdout"], "from-file\n", "{v}");
    let v = run_env(
        &t,
        &home,
        &path,
        &[
            "--env",
            "PATH=/custom/bin:/usr/bin:/bin",
            "--",
            "echo $PATH",
        ],
    );
    assert_eq!(v["stdout"], "/custom/bin:/usr/bin:/bin\n", "{v}");
    // Argv mode too; the helper variable never reaches the job.
    let v = run_env(
        &t,
        &home,
        &path,
        &[
            "--env",
            "FOO=argv",
            "--",
            "sh",
            "-c",
            "echo $FOO ${__AGENT_EXEC_ENV-gone}",
        ],
    );
    assert_eq!(v["stdout"], "argv gone\n", "{v}");
    // --no-inherit-env: nothing of the caller's; PATH is what the system
    // profile sets (no HOME, so no ~/.profile).
    let v = run_env(&t, &home, &path, &["--no-inherit-env", "--", "echo $PATH"]);
    let p = v["stdout"].as_str().unwrap();
    assert!(p.contains("/bin") && !p.contains("tools"), "{v}");
}

#[test]
fn c15_env_name_alone_passes_the_callers_value() {
    let t = TempRoot::new();
    let mut c = t.cmd(&[
        "run",
        "--env",
        "PASSME",
        "--env",
        "NOTSET",
        "--",
        "echo ${PASSME-x} ${NOTSET-unset}",
    ]);
    c.env("PASSME", "from-caller").env_remove("NOTSET");
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], "from-caller unset\n", "{v}");
}

// ---------------------------------------------------------------------
// C16, C21, C22, C23. First use
// ---------------------------------------------------------------------

#[test]
fn c16_a_missing_config_is_an_error() {
    let t = TempRoot::new();
    let (code, e) = t.err(&["run", "--config", "/nonexistent/c.toml", "--", "true"]);
    assert_eq!(code, 1);
    assert_eq!(e["error"]["code"], "invalid_config", "{e}");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent/c.toml"));
}

#[test]
fn c21_delete_takes_several_ids_and_created_jobs_can_go() {
    let t = TempRoot::new();
    let a = id_of(&t.ok(&["run", "--", "true"]));
    let b = id_of(&t.ok(&["run", "--", "true"]));
    let v = t.ok(&["delete", &a, &b]);
    assert_eq!(v["deleted"], 2, "{v}");
    assert!(!t.job_dir(&a).exists() && !t.job_dir(&b).exists());
    // Nothing is removed when one id does not resolve.
    let c = id_of(&t.ok(&["run", "--", "true"]));
    let (_, e) = t.err(&["delete", &c, "01NOPE"]);
    assert_eq!(e["error"]["code"], "job_not_found");
    assert!(t.job_dir(&c).exists());
    for _ in 0..5 {
        t.ok(&["create", "--", "true"]);
    }
    let v = t.ok(&["delete", "--all"]);
    assert_eq!(v["deleted"], 1, "{v}");
    let v = t.ok(&["delete", "--all", "--include-created"]);
    assert_eq!(v["deleted"], 5, "{v}");
    // Each says why it was in scope: created here, not finished here.
    for e in v["jobs"].as_array().unwrap() {
        assert_eq!(
            (e["state"].as_str(), e["reason"].as_str()),
            (Some("created"), Some("created_in_cwd")),
            "{v}"
        );
    }
    assert_eq!(
        t.ok(&["list", "--limit", "0"])["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn c22_every_duration_flag_takes_units() {
    let t = TempRoot::new();
    let t0 = Instant::now();
    let v = t.ok(&[
        "run",
        "--timeout",
        "300ms",
        "--until",
        "5s",
        "--",
        "sleep 5",
    ]);
    assert_eq!(v["timed_out"], true, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let t0 = Instant::now();
    let v = t.ok(&["run", "--until", "0.3", "--", "sleep 2"]);
    assert_eq!(v["state"], "running", "{v}");
    assert!(t0.elapsed() < Duration::from_millis(1500));
    let id = id_of(&v);
    let v = t.ok(&["wait", "--until", "250ms", &id]);
    assert_eq!(v["state"], "running", "{v}");
    let v = t.ok(&["wait", "--until", "1m", &id]);
    assert_eq!(v["state"], "exited", "{v}");
    let v = t.ok(&[
        "run",
        "--timeout",
        "1.5m",
        "--kill-after",
        "500ms",
        "--progress-every",
        "2s",
        "--",
        "true",
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(t.meta(&id_of(&v))["timeout_ms"], 90_000);
}

#[test]
fn c23_every_error_prints_a_line_and_verbose_shows_steps() {
    let t = TempRoot::new();
    for args in [
        vec!["status", "01NOPE"],
        vec!["run", "--config", "/nonexistent", "--", "true"],
        vec!["notify", "set", "01NOPE", "--output-pattern", "x"],
    ] {
        let o = t.out(&args);
        assert_ne!(o.code, 0);
        assert!(
            o.stderr.contains("agent-exec: error: "),
            "{args:?}: {:?}",
            o.stderr
        );
    }
    let o = t.out(&["-v", "run", "--", "true"]);
    assert_eq!(o.code, 0);
    assert!(o.stderr.contains("defined job"), "{:?}", o.stderr);
    let o = t.out(&["-vv", "run", "--", "true"]);
    assert!(o.stderr.contains("supervisor"), "{:?}", o.stderr);
}

#[test]
fn a11_start_over_a_planted_log_symlink_answers_the_failed_job() {
    // D12: a launch failure is a failed job in the answer (ok, exit 0),
    // not an error while the job is recorded failed; the link is never
    // followed.
    let t = TempRoot::new();
    let secret = t.base.join("secret.txt");
    std::fs::write(&secret, b"do not read me").unwrap();
    let v = t.ok(&["create", "--", "echo", "ran"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let log = t.job_dir(&id).join("stdout.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&secret, &log).unwrap();
    let v = t.ok(&["start", &id]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "log_unwritable", "{v}");
    assert_eq!(v["stdout"], "", "{v}");
    assert!(!v.to_string().contains("do not read me"));
    assert_eq!(std::fs::read(&secret).unwrap(), b"do not read me");
    assert_eq!(t.ok(&["status", &id])["state"], "failed");
}

// ---------------------------------------------------------------------
// G1. A FIFO planted as a log; many small values under a login shell
// ---------------------------------------------------------------------

/// Run `c` to its end, but never past `secs`: a launch that blocks is
/// killed and the test fails, rather than hanging the suite.
fn bounded(t: &TempRoot, mut c: Command, secs: u64) -> Value {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let until = Instant::now() + Duration::from_secs(secs);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let guard = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if Instant::now() > until {
                kill9(u64::from(pid));
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let o = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(
        !guard.join().unwrap(),
        "{}: blocked past {secs} s",
        t.root.display()
    );
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("{e}: {text:?} {}", String::from_utf8_lossy(&o.stderr)))
}

/// Make `path` a FIFO.
fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

/// Open the FIFO `path` for reading, without blocking: a writer blocked
/// in its open is let go (cleanup for a run of the code before the fix).
fn release(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()
}

#[test]
fn g1_a_fifo_planted_as_a_log_fails_the_start_at_once() {
    // As a directory there would: `failed` with `log_unwritable`, the
    // command never run, no supervisor left blocked opening the FIFO.
    let t = TempRoot::new();
    for log in ["stdout.log", "stderr.log", "full.log"] {
        let marker = t.base.join(format!("ran-{log}"));
        let cmd = format!("touch {}", marker.display());
        let id = id_of(&t.ok(&["create", "--", &cmd]));
        let path = t.job_dir(&id).join(log);
        let _ = std::fs::remove_file(&path);
        mkfifo(&path);
        let v = bounded(&t, t.cmd(&["start", &id]), 60);
        let _held = release(&path);
        assert_eq!(v["state"], "failed", "{log}: {v}");
        assert_eq!(v["failure"]["code"], "log_unwritable", "{log}: {v}");
        assert_eq!(t.ok(&["status", &id])["state"], "failed", "{log}");
        // The stream logs are made before the command starts; full.log
        // after it (the command is killed at once then).
        if log != "full.log" {
            assert!(!marker.exists(), "{log}: the command ran");
        }
    }
    // A FIFO that has a reader opens at once: it is refused all the same,
    // and nothing is written into it.
    let id = id_of(&t.ok(&["create", "--", "echo into-the-fifo"]));
    let path = t.job_dir(&id).join("stdout.log");
    std::fs::remove_file(&path).unwrap();
    mkfifo(&path);
    let mut reader = release(&path).unwrap();
    let v = bounded(&t, t.cmd(&["start", &id]), 60);
    assert_eq!(v["failure"]["code"], "log_unwritable", "{v}");
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut reader, &mut got);
    assert!(got.is_empty(), "{got:?}");
    // `--log PATH` names a FIFO: the same.
    let fifo = t.base.join("full.fifo");
    mkfifo(&fifo);
    let log = fifo.to_str().unwrap().to_string();
    let v = bounded(&t, t.cmd(&["run", "--log", &log, "--", "true"]), 60);
    let _held = release(&fifo);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "log_unwritable", "{v}");
}

#[test]
fn g1_many_small_env_values_reach_a_login_shell_job() {
    // 30 values of 5000 bytes: each small, together more than the
    // kernel takes in one environment string (128 KiB). The profile sets
    // one of them; the caller's value wins (D36), and none of the values
    // is in any process's argv while the job runs (D22).
    let t = TempRoot::new();
    let (home, tools) = hostile_profile(&t);
    let profile = home.join(".profile");
    let mut text = std::fs::read_to_string(&profile).unwrap();
    text.push_str("V3=from-profile; export V3\n");
    std::fs::write(&profile, text).unwrap();
    let path = format!("{}:/usr/bin:/bin", tools.display());
    let value = |i: usize| format!("g1-secret-{i}-{}", "x".repeat(4990));
    let envf = t.base.join("b.env");
    let lines: String = (0..30).map(|i| format!("V{i}={}\n", value(i))).collect();
    std::fs::write(&envf, lines).unwrap();
    let script = "printf '%s %s %s %s\\n' \"${#V0}\" \"$V3\" \"${#V29}\" \
                  \"${__AGENT_EXEC_ENV-gone}${__AGENT_EXEC_ENV_1-gone}\"; \
                  for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done \
                  | grep -c 'g1[-]secret'";
    let v = run_env(
        &t,
        &home,
        &path,
        &[
            "--env-file",
            envf.to_str().unwrap(),
            "--env",
            "V3=from-caller",
            "--",
            script,
        ],
    );
    assert_eq!(v["state"], "exited", "{v}");
    let len = value(0).len();
    assert_eq!(
        v["stdout"],
        format!("{len} from-caller {} gonegone\n0\n", value(29).len()),
        "{v}"
    );
    // The values from the file win over the profile too, each whole.
    let v = run_env(
        &t,
        &home,
        &path,
        &[
            "--env-file",
            envf.to_str().unwrap(),
            "--",
            "printf %s \"$V3\"",
        ],
    );
    assert_eq!(v["stdout"], value(3), "{}", v["failure"]);
}

/// A directory where a job's meta.json should be is a damaged job,
/// `unsafe_path` (as for state.json), never "not found": the job is there.
#[test]
fn a_meta_json_that_is_a_directory_is_unsafe_path() {
    let t = TempRoot::new();
    let id = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    t.settle();
    let meta = t.job_dir(&id).join("meta.json");
    std::fs::remove_file(&meta).unwrap();
    std::fs::create_dir(&meta).unwrap();
    for cmd in ["status", "tail", "delete", "kill"] {
        let (code, v) = t.err(&[cmd, &id]);
        assert_eq!(
            (code, v["error"]["code"].as_str()),
            (1, Some("unsafe_path")),
            "{cmd}: {v}"
        );
        assert_eq!(v["error"]["details"]["job_id"], id.as_str(), "{cmd}: {v}");
    }
    assert!(meta.is_dir(), "nothing was removed");
}

/// A kept run whose directory `runs/<attempt>` was replaced by a symlink
/// (to a directory outside the root holding logs of the same names) is
/// not listed by `status` or `wait`: nothing in a job directory is read
/// through a symlink, and no path printed leads outside the root (D41).
/// A `restart` neither writes through it nor removes what it points at.
#[test]
fn store_a_symlinked_kept_run_is_not_listed_or_followed() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--retry", "1", "--", "sh", "-c", "echo once; exit 3"]);
    let id = id_of(&v);
    t.wait_done(&id);
    t.settle();
    let v = t.ok(&["status", &id]);
    assert_eq!(v["previous_runs"][0]["attempt"], 1, "{v}");
    let outside = t.base.join("outside");
    std::fs::create_dir(&outside).unwrap();
    for f in ["stdout.log", "stderr.log", "state.json"] {
        std::fs::write(outside.join(f), b"not ours\n").unwrap();
    }
    let run1 = t.job_dir(&id).join("runs").join("1");
    std::fs::rename(&run1, t.job_dir(&id).join("runs").join("kept-aside")).unwrap();
    std::os::unix::fs::symlink(&outside, &run1).unwrap();
    for cmd in ["status", "wait"] {
        let v = t.ok(&[cmd, &id]);
        // `wait` leaves out an empty list.
        let runs = v["previous_runs"].as_array().map_or(0, Vec::len);
        assert_eq!(runs, 0, "{cmd}: {v}");
    }
    let v = t.ok(&["restart", &id]);
    let root = t.root.to_string_lossy().into_owned();
    for r in v["previous_runs"].as_array().unwrap() {
        assert!(
            r["stdout_log_path"].as_str().unwrap().starts_with(&root),
            "{v}"
        );
        assert_ne!(r["attempt"], 1, "{v}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["state.json", "stderr.log", "stdout.log"]);
    assert_eq!(
        std::fs::read(outside.join("stdout.log")).unwrap(),
        b"not ours\n"
    );
}

/// `wait` of several running jobs under a process limit that leaves no
/// room for a watching thread per job still answers, looking at those
/// jobs on a tick: it was `internal_error` (a panic of thread::spawn).
/// As root, the jobs and the wait run as nobody, whose tasks the limit
/// counts (root's are not limited); otherwise as the caller.
#[test]
fn a_wait_of_many_jobs_under_a_thread_limit_still_answers() {
    let t = TempRoot::new();
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    let as_root = String::from_utf8_lossy(&uid).trim() == "0";
    if !as_root {
        eprintln!("not root: the limit would count this user's every task; skipped");
        return;
    }
    if Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("setpriv missing: skipped");
        return;
    }
    let bin = t.base.join("agent-exec");
    std::fs::copy(support::bin(), &bin).unwrap();
    std::fs::set_permissions(&t.base, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&t.root).unwrap();
    std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |script: &str, args: &[&str]| {
        let mut c = t.private("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .args(["bash", "-c", script, "bash"])
            .arg(&bin)
            .arg(&t.root)
            .args(args)
            .current_dir("/");
        t.exec(c)
    };
    let ids: Vec<String> = (0..6)
        .map(|_| {
            let o = as_nobody(r#"exec "$1" --root "$2" run --no-wait -- sleep 30"#, &[]);
            o.json()["job_id"].as_str().expect("launched").to_string()
        })
        .collect();
    // Every task of nobody's now, and room for the wait and two threads.
    let nobody_tasks = || -> usize {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
            .filter(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("65534"))
            })
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("Threads:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<usize>().ok())
            })
            .sum()
    };
    let limit = (nobody_tasks() + 3).to_string();
    let mut args = vec![limit.as_str()];
    args.extend(ids.iter().map(String::as_str));
    let o = as_nobody(
        r#"b=$1; r=$2; n=$3; shift 3; ulimit -u "$n" && exec "$b" --root "$r" wait --until 1 "$@""#,
        &args,
    );
    for id in &ids {
        let _ = t.out(&["kill", id]);
    }
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    let v = o.json();
    assert_eq!(v["type"], "wait", "{v}");
    let states = support::states(&v);
    assert_eq!(states, vec!["running"; 6], "{v}");
}

/// A job directory the caller may not look into (another user's, 0700)
/// is there: every command that names it answers `io_error` (permission
/// denied) with `details.job_id`, never `job_not_found`.
#[test]
fn store_a_job_directory_the_caller_cannot_read_is_io_error() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    t.settle();
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    let as_root = String::from_utf8_lossy(&uid).trim() == "0";
    // Another user's directory: as root, the test runs as nobody (root
    // reads everything); otherwise the directory is made unreadable.
    let bin = t.base.join("agent-exec");
    if as_root {
        if Command::new("setpriv").arg("--help").output().is_err() {
            eprintln!("setpriv missing: skipped");
            return;
        }
        std::fs::copy(support::bin(), &bin).unwrap();
        std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    } else {
        std::fs::set_permissions(t.job_dir(&id), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let run = |args: &[&str]| {
        let mut c = if as_root {
            let mut c = t.private("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(&bin);
            c
        } else {
            t.bare()
        };
        c.arg("--root").arg(&t.root).args(args);
        t.exec(c)
    };
    for args in [
        vec!["status", id.as_str()],
        vec!["status", &id[..12]],
        vec!["tail", id.as_str()],
        vec!["wait", id.as_str()],
        vec!["kill", id.as_str()],
        vec!["delete", id.as_str()],
        vec!["tag", "set", id.as_str(), "--tag", "x"],
    ] {
        let o = run(&args);
        let v = o.json();
        assert_eq!(
            (o.code, v["error"]["code"].as_str()),
            (1, Some("io_error")),
            "{args:?}: {v}"
        );
        assert_eq!(
            v["error"]["details"]["job_id"],
            id.as_str(),
            "{args:?}: {v}"
        );
    }
    // The root itself cannot be searched or read: the same (it said
    // job_not_found, as if the job were gone).
    std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o000)).unwrap();
    for args in [
        vec!["status", id.as_str()],
        vec!["status", &id[..12]],
        vec!["delete", id.as_str()],
    ] {
        let o = run(&args);
        let v = o.json();
        assert_eq!(
            (o.code, v["error"]["code"].as_str()),
            (1, Some("io_error")),
            "root unreadable, {args:?}: {v}"
        );
    }
    std::fs::set_permissions(&t.root, std::fs::Permissions::from_mode(0o755)).unwrap();
    if !as_root {
        std::fs::set_permissions(t.job_dir(&id), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    assert!(t.job_dir(&id).join("meta.json").is_file());
}

/// A spare job directory (`.spare-N`) that is not empty — a `lock`
/// planted in it, say — is never taken for a new job: the launch makes
/// its own directory, and the planted one is left as it is.
#[test]
fn store_a_spare_directory_that_is_not_empty_is_never_used() {
    let t = TempRoot::new();
    t.ok(&["run", "--", "true"]);
    t.settle();
    for spare in [".spare-0", ".spare-1"] {
        let d = t.root.join(spare);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("lock"), b"planted").unwrap();
    }
    for _ in 0..3 {
        let v = t.ok(&["run", "--", "echo", "fresh"]);
        assert_eq!(v["stdout"], "fresh\n", "{v}");
        t.settle();
    }
    for spare in [".spare-0", ".spare-1"] {
        assert_eq!(
            std::fs::read(t.root.join(spare).join("lock")).unwrap(),
            b"planted"
        );
    }
}

/// A spare job directory opened to others (chmod 777, by hand or a
/// careless tool) is never renamed into a job directory, which would
/// keep that mode: every job directory is 0700 (D22). So is the
/// completion cache's directory, whatever the umask: it holds every
/// job's command and cwd.
#[test]
fn store_job_and_cache_directories_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempRoot::new();
    t.ok(&["run", "--", "true"]);
    t.settle();
    for spare in [".spare-0", ".spare-1"] {
        let d = t.root.join(spare);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for _ in 0..2 {
        let id = t.ok(&["run", "--", "true"])["job_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mode = std::fs::metadata(t.job_dir(&id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{id}: {mode:o}");
        t.settle();
    }
    // Made by completion alone: none there before it.
    let _ = std::fs::remove_dir_all(t.root.join(".cache"));
    let script = format!(
        "umask 000; exec '{}' --root '{}' __complete -- status ''",
        support::bin(),
        t.root.display()
    );
    let o = t.exec({
        let mut c = t.private("sh");
        c.arg("-c").arg(script);
        c
    });
    assert_eq!(o.code, 0, "{}", o.stderr);
    let cache = t.root.join(".cache");
    let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}: {mode:o}", cache.display());
}

// ---------------------------------------------------------------------
// A file-size limit, a planted terminal-state file, a disk full to the
// last block
// ---------------------------------------------------------------------

/// `agent-exec --root <root> args...` under `ulimit -f blocks` (the
/// shell's unit: 512 or 1024 bytes, so limits here are chosen to hold
/// either way).
fn under_file_limit(t: &TempRoot, blocks: u32, args: &[&str]) -> support::Out {
    let mut c = t.private("sh");
    c.arg("-c")
        .arg(format!("ulimit -f {blocks} && exec \"$@\""))
        .arg("sh")
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(args);
    t.exec(c)
}

/// A write past the caller's RLIMIT_FSIZE fails with EFBIG, which is
/// recorded as a full disk's ENOSPC is: the job keeps its exit code and
/// says what its log lost. The supervisor used to die of SIGXFSZ, and
/// the job read `supervisor_lost`.
#[test]
fn a1_a_file_size_limit_is_recorded_and_the_exit_code_survives() {
    let t = TempRoot::new();
    // 400 blocks: 200 or 400 KB; seq prints about 1.3 MB.
    let o = under_file_limit(
        &t,
        400,
        &[
            "run",
            "--no-auto-gc",
            "--until",
            "60",
            "--",
            "seq 1 200000; exit 3",
        ],
    );
    let v = o.json();
    assert_eq!(v["ok"], true, "{v} {}", o.stderr);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["exit_code"], 3, "{v}");
    let lost = v["output_lost"].as_array().expect("output_lost in run");
    let out = lost
        .iter()
        .find(|l| l["stream"] == "stdout")
        .unwrap_or_else(|| panic!("stdout loss: {v}"));
    assert_eq!(out["errno"], "EFBIG", "{v}");
    let id = id_of(&v);
    // The log is an exact prefix of the stream, cut at the limit.
    let log = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    let stored = v["stdout_total_bytes"].as_u64().unwrap();
    assert_eq!(log.len() as u64, stored, "{v}");
    assert!(stored <= 400 * 1024, "{v}");
    let mut all = Vec::new();
    for n in 1..=200000 {
        all.extend_from_slice(format!("{n}\n").as_bytes());
    }
    assert_eq!(
        stored + out["dropped_bytes"].as_u64().unwrap(),
        all.len() as u64
    );
    assert_eq!(&log[..], &all[..log.len()]);
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (s["state"].as_str(), s["exit_code"].as_u64()),
        (Some("exited"), Some(3))
    );
    assert_eq!(s["output_lost"], v["output_lost"], "{s}");
}

/// A limit below the 64 KiB reserved for the job's end does not stop
/// the job (the reserve raised SIGXFSZ and the launch was lost), and the
/// workload itself gets SIGXFSZ at its default: a write of its own past
/// the limit kills it, as it would outside agent-exec (it is not left
/// ignored, which an ignored signal would be across exec).
#[test]
fn a1_a_small_file_size_limit_runs_the_job_with_the_default_signal() {
    let t = TempRoot::new();
    let big = t.base.join("big");
    // 50 blocks: 25 or 50 KB, under the reserve either way.
    let cmd = format!(
        "head -c 1000000 /dev/zero > {}; echo \"status $?\"; exit 5",
        big.display()
    );
    let o = under_file_limit(
        &t,
        50,
        &["run", "--no-auto-gc", "--until", "60", "--", &cmd],
    );
    let v = o.json();
    assert_eq!(v["ok"], true, "{v} {}", o.stderr);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["exit_code"], 5, "{v}");
    // 128 + SIGXFSZ (25): head died of the signal, not of EFBIG.
    assert_eq!(v["stdout"], "status 153\n", "{v}");
    let id = id_of(&v);
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (s["state"].as_str(), s["exit_code"].as_u64()),
        (Some("exited"), Some(5))
    );
}

/// Start a job that ends (exit 7) only once `go` exists, and wait until
/// its supervisor has made the file its terminal state goes to.
fn job_before_its_end(t: &TempRoot) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let go = t.base.join("go");
    let cmd = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; exit 7",
        go.display()
    );
    let id = t.start_job(&[&cmd]);
    let next = t.job_dir(&id).join(".state.next");
    eventually(".state.next made", 20, || next.exists());
    (id, next, go)
}

/// D41: the supervisor's terminal state goes where it wrote it, never
/// through whatever replaced its file's name. A symlink planted as
/// `.state.next` became state.json (the job's exit code lost for good,
/// every reader `unsafe_path`).
#[test]
fn a11_a_symlink_planted_as_the_next_state_is_not_published() {
    let t = TempRoot::new();
    let victim = t.base.join("victim");
    let (id, next, go) = job_before_its_end(&t);
    std::fs::remove_file(&next).unwrap();
    std::os::unix::fs::symlink(&victim, &next).unwrap();
    std::fs::write(&go, "").unwrap();
    let v = t.ok(&["wait", &id]);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_u64()),
        (Some("exited"), Some(7)),
        "{v}"
    );
    let st = t.job_dir(&id).join("state.json");
    assert!(std::fs::symlink_metadata(&st)
        .unwrap()
        .file_type()
        .is_file());
    assert!(
        !victim.exists(),
        "something was written through the symlink"
    );
    assert!(
        std::fs::symlink_metadata(&next).is_err(),
        "the planted name is left"
    );
    let s = t.ok(&["status", &id]);
    assert_eq!(s["exit_code"], 7, "{s}");
}

/// A regular file planted as `.state.next` (here one that says the job
/// exited 0) is not published as the job's end either: `wait` reported
/// the forged result.
#[test]
fn a11_a_forged_next_state_does_not_replace_the_real_end() {
    let t = TempRoot::new();
    let (id, next, go) = job_before_its_end(&t);
    let mut forged: Value =
        serde_json::from_str(&t.read(&id, "state.json")).expect("a running state");
    forged["job"]["status"] = "exited".into();
    forged["result"]["exit_code"] = 0.into();
    std::fs::remove_file(&next).unwrap();
    std::fs::write(&next, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
    std::fs::write(&go, "").unwrap();
    let v = t.ok(&["wait", &id]);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_u64()),
        (Some("exited"), Some(7)),
        "{v}"
    );
    let s = t.ok(&["status", &id]);
    assert_eq!(s["exit_code"], 7, "{s}");
    assert!(!next.exists(), "the planted file is left");
}

/// A disk with a block or two left: `run` either records the job as
/// `failed`/`no_space` or answers an error and leaves no job behind. It
/// answered `io_error` and left a job without state.json, which read
/// `launch_lost` later (and `status` an `io_error` while the disk was
/// full).
#[test]
fn a1_a_disk_full_to_the_last_block_leaves_no_half_made_job() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "200k") else {
        return;
    };
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    let filler = t.root.join("filler");
    for left_kib in [0u64, 4, 8] {
        t.settle();
        let avail = free_kib(&t.root);
        let fill = avail.saturating_sub(left_kib) * 1024;
        // Short of room at the very end is as good as full.
        let _ = std::fs::write(&filler, vec![0u8; fill as usize]);
        let marker = t.base.join("ran");
        let cmd = format!("touch {}", marker.display());
        let o = t.out(&["run", "--no-auto-gc", "--", &cmd]);
        let v = o.json();
        if v["ok"] == true {
            assert_eq!(v["state"], "failed", "{left_kib} KiB left: {v}");
            assert_eq!(v["failure"]["code"], "no_space", "{left_kib} KiB left: {v}");
            let s = t.ok(&["status", &id_of(&v)]);
            assert_eq!(s["failure"]["code"], "no_space", "{left_kib} KiB left: {s}");
        } else if let Some(id) = v["error"]["details"]["job_id"].as_str() {
            assert!(
                !t.job_dir(id).exists(),
                "{left_kib} KiB left: {v} and the job is left behind"
            );
        }
        assert!(!marker.exists(), "{left_kib} KiB left: the command ran");
        std::fs::remove_file(&filler).unwrap();
        // With room again, no job reads as a lost launch.
        let l = t.ok(&["list", "--all"]);
        for j in l["jobs"].as_array().unwrap() {
            let s = t.ok(&["status", j["job_id"].as_str().unwrap()]);
            assert!(
                s["state"] == "exited" || s["failure"]["code"] == "no_space",
                "{left_kib} KiB left: {s}"
            );
        }
    }
}

/// `start` of a created job on a disk full to the last block: either
/// the job is recorded `failed`/`no_space`, or the answer is a retryable
/// error and the job stays `created`, so that the retry it invites works
/// once space is freed (it read `launch_lost` for good).
#[test]
fn a1_start_on_a_full_disk_is_retryable_or_no_space() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "1m") else {
        return;
    };
    let id = id_of(&t.ok(&["create", "--", "echo", "hi"]));
    t.settle();
    let filler = t.root.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; (free_kib(&t.root) * 1024) as usize]);
    let v = t.out(&["start", &id]).json();
    let recorded = v["ok"] == true;
    if recorded {
        assert_eq!(v["failure"]["code"], "no_space", "{v}");
    } else {
        assert_eq!(v["error"]["retryable"], true, "{v}");
    }
    std::fs::remove_file(&filler).unwrap();
    let s = t.ok(&["status", &id]);
    if recorded {
        assert_eq!(s["failure"]["code"], "no_space", "{s}");
    } else {
        assert_eq!(s["state"], "created", "{s}");
        // Retried as the answer says it may be: once (a CI run of the
        // static build once met ENOSPC here again right after the
        // filler went; not seen since), then a moment later.
        let mut o = t.out(&["start", &id]);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while o.code != 0
            && o.json()["error"]["retryable"] == true
            && std::time::Instant::now() < until
        {
            std::thread::sleep(std::time::Duration::from_millis(100));
            o = t.out(&["start", &id]);
        }
        let v = o.json();
        assert_eq!(v["state"], "exited", "{v}");
        assert_eq!(v["stdout"], "hi\n", "{v}");
    }
}

/// A job whose supervisor dies while the disk is full is still reported
/// lost (the reader gives back the dead supervisor's reserve to record
/// it), not `io_error` by every reader and `unknown` in list.
#[test]
fn a1_a_supervisor_lost_on_a_full_disk_is_reported() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "1m") else {
        return;
    };
    let v = t.ok(&["run", "--no-auto-gc", "--no-wait", "--", "sleep", "30"]);
    let id = id_of(&v);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let filler = t.root.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; (free_kib(&t.root) * 1024) as usize]);
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    let s = t.ok(&["status", &id]);
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(s["failure"]["code"], "supervisor_lost", "{s}");
    let l = t.ok(&["list", "--all"]);
    assert_eq!(l["jobs"][0]["state"], "failed", "{l}");
    let w = t.ok(&["wait", "--until", "5", &id]);
    assert_eq!(w["state"], "failed", "{w}");
}

/// A reader that finds the job lock held while the recorded supervisor
/// is gone (another reader recording the loss, gc judging the job) waits
/// that hold out and answers with the truth, not the stale `running`.
#[test]
fn a_lost_supervisor_reads_lost_while_another_reader_holds_the_lock() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    let until = Instant::now() + Duration::from_secs(10);
    while !supervisor_gone(&t, &id) {
        assert!(Instant::now() < until, "the supervisor never went");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Another holder of the lock for a while (as a reconciling reader
    // would hold it, or an idle-priority auto-GC sweep that a busy
    // machine starves), taken before anyone has looked.
    let mut holder = Command::new("flock")
        .arg(t.job_dir(&id).join("lock"))
        .args(["sh", "-c", "echo held; sleep 1.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "held\n");
    let st = t.ok(&["status", &id]);
    assert_eq!(
        (st["state"].as_str(), st["failure"]["code"].as_str()),
        (Some("failed"), Some("supervisor_lost")),
        "{st}"
    );
    holder.wait().unwrap();
}

// ---------------------------------------------------------------------
// Tampered pids: never a signal to a process that is not the job's
// ---------------------------------------------------------------------

/// A stranger to every job: `setsid sleep SECS`, a session and group
/// leader of its own, killed when dropped.
struct Stranger(std::process::Child);

impl Stranger {
    fn start(secs: &str) -> Stranger {
        let c = Command::new("setsid")
            .args(["sleep", secs])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let s = Stranger(c);
        // setsid execs sleep in place (the test is no group leader).
        eventually("the stranger runs", 5, || sleepers(secs).contains(&s.pid()));
        // Start times count clock ticks (10 ms): a job started in the
        // stranger's tick would share its start time, the one thing that
        // tells a job's root from a process that took its number. Real
        // reuse of a pid takes far longer than a tick.
        let born = start_time(s.pid());
        eventually("a clock tick after the stranger's start", 5, || {
            uptime_ticks() > born + 1
        });
        s
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&self) -> bool {
        alive(u64::from(self.pid()))
    }
}

impl Drop for Stranger {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Edit a job's state.json with `f`; returns the text it had.
fn edit_state(t: &TempRoot, id: &str, f: impl FnOnce(&mut Value)) -> String {
    let p = t.job_dir(id).join("state.json");
    let was = std::fs::read_to_string(&p).unwrap();
    let mut v: Value = serde_json::from_str(&was).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
    was
}

/// A recorded pid past i32::MAX is a damaged record: `kill` used to
/// turn 2^32 - V into kill(V, SIGTERM) and answer ok while the job ran on.
#[test]
fn a_pid_past_i32_max_is_a_damaged_record_and_signals_nobody() {
    let t = TempRoot::new();
    let stranger = Stranger::start("71.25");
    let id = t.start_job(&["sleep", "71.5"]);
    eventually("sleep runs", 5, || sleepers("71.5").len() == 1);
    for field in ["pid", "sid", "supervisor_pid"] {
        let was = edit_state(&t, &id, |v| {
            v[field] = (4_294_967_296u64 - u64::from(stranger.pid())).into();
        });
        let (code, e) = t.err(&["kill", &id]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("io_error")),
            "{field}: {e}"
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("damaged job record"),
            "{field}: {e}"
        );
        assert!(stranger.alive(), "{field}: kill signalled the stranger");
        std::fs::write(t.job_dir(&id).join("state.json"), was).unwrap();
    }
    assert_eq!(sleepers("71.5").len(), 1, "the job was signalled");
    t.ok(&["kill", &id]);
    t.wait_done(&id);
    assert!(stranger.alive());
}

/// A running job whose record names a stranger's group (its start time
/// still the job's root's) signals nothing: `kill` and `restart` used to
/// send TERM to the stranger's group and answer ok.
#[test]
fn kill_of_a_running_job_signals_only_its_own_root_group() {
    let t = TempRoot::new();
    let stranger = Stranger::start("72.25");
    let id = t.start_job(&["sleep", "72.5"]);
    eventually("sleep runs", 5, || sleepers("72.5").len() == 1);
    let sp = stranger.pid();
    for fields in [&["pid"][..], &["pid", "sid"]] {
        let was = edit_state(&t, &id, |v| {
            assert!(v["pid_start_time"].as_u64().is_some(), "{v}");
            for f in fields {
                v[*f] = sp.into();
            }
        });
        for cmd in ["kill", "restart"] {
            let (code, e) = t.err(&[cmd, &id]);
            assert_eq!(
                (code, e["error"]["code"].as_str()),
                (1, Some("io_error")),
                "{cmd} {fields:?}: {e}"
            );
            assert!(stranger.alive(), "{cmd} {fields:?} signalled the stranger");
        }
        std::fs::write(t.job_dir(&id).join("state.json"), was).unwrap();
    }
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    assert_eq!(sleepers("72.5").len(), 1, "the job was signalled");
    t.ok(&["kill", &id]);
    t.wait_done(&id);
    assert!(stranger.alive());
}

/// Clock ticks (USER_HZ, 100 a second) since boot, as start times count.
fn uptime_ticks() -> u64 {
    let up = std::fs::read_to_string("/proc/uptime").unwrap();
    let secs: f64 = up.split_whitespace().next().unwrap().parse().unwrap();
    (secs * 100.0) as u64
}

/// Process `pid`'s start time (/proc/PID/stat field 22).
fn start_time(pid: u32) -> u64 {
    support::session_and_start(pid).1
}

/// Make job `id` (ended, its lock file free) read as `running` with
/// `pid` as its root, group and session, and `start` as the root's start
/// time if given: what a supervisor that died leaves, but naming a
/// process that is not the job's.
fn plant_running(t: &TempRoot, id: &str, pid: u32, start: Option<u64>) {
    let lock = t.job_dir(id).join("lock");
    assert!(lock.exists());
    // `run` answers once the job has ended; its supervisor may still
    // hold the lock a moment (auto-GC runs after the answer), and a
    // reader takes a held lock for a live job and its record as true.
    eventually("the supervisor lets go of the job's lock", 10, || {
        Command::new("flock")
            .args(["-n", "-s"])
            .arg(&lock)
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
    });
    // And is gone, with the sweep it started: one still delivering (or
    // collecting) pins the job's directory, and a reader then leaves the
    // planted record alone (seen in CI: gc --dry-run left it).
    t.settle_job(id);
    let mut v = serde_json::json!({
        "job": {"id": id, "status": "running", "started_at": "2026-01-01T00:00:00Z"},
        "result": {"exit_code": null, "signal": null, "duration_ms": null},
        "pid": pid, "sid": pid, "updated_at": "2026-01-01T00:00:00Z"
    });
    if let Some(s) = start {
        v["pid_start_time"] = s.into();
    }
    std::fs::write(t.job_dir(id).join("state.json"), v.to_string()).unwrap();
}

/// Every reader that records a lost supervisor, and `kill`, against a
/// planted record: the stranger it names must live on, the job read
/// `supervisor_lost` saying nothing was signalled, and `kill` refuse it
/// as a damaged record.
fn readers_spare(t: &TempRoot, id: &str, stranger: &Stranger, start: Option<u64>) {
    for args in [
        vec!["gc", "--dry-run"],
        vec!["delete", "--all", "--dry-run"],
        vec!["list", "--all"],
        vec!["status", id],
        vec!["wait", "--until", "0", id],
        vec!["tail", id],
    ] {
        plant_running(t, id, stranger.pid(), start);
        t.ok(&args);
        assert!(stranger.alive(), "{args:?} signalled the stranger");
        let st = t.state(id);
        assert_eq!(st["failure"]["code"], "supervisor_lost", "{args:?}: {st}");
        let msg = st["failure"]["message"].as_str().unwrap();
        assert!(msg.contains("nothing was signalled"), "{args:?}: {msg}");
    }
    plant_running(t, id, stranger.pid(), start);
    let (code, e) = t.err(&["kill", id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("io_error")),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("damaged job record"),
        "{e}"
    );
    assert!(stranger.alive(), "kill signalled the stranger");
}

/// A `running` record without a start time, its lock free, names a
/// stranger's group: every reader (gc --dry-run, list, status, …) took
/// the supervisor for lost and SIGKILLed the stranger, and `kill`
/// answered ok over it.
#[test]
fn a_lost_supervisor_record_without_a_start_time_signals_nobody() {
    let t = TempRoot::new();
    let stranger = Stranger::start("75.25");
    let id = id_of(&t.ok(&["run", "--", "true"]));
    readers_spare(&t, &id, &stranger, None);
}

/// A record planted in a shared root by one user, naming another user's
/// process with its true start time: a reader run by root SIGKILLed it.
/// Only the processes of the user who owns the job's directory are ever
/// signalled. Needs root (to give the directory away); skipped otherwise.
#[test]
fn a_lost_supervisor_record_of_another_user_signals_nobody() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "true"]));
    if std::os::unix::fs::chown(t.job_dir(&id), Some(65534), Some(65534)).is_err() {
        eprintln!("skipped: needs root to give a job directory to another user");
        return;
    }
    let stranger = Stranger::start("76.25");
    readers_spare(&t, &id, &stranger, Some(start_time(stranger.pid())));
    // The same record in a directory of the stranger's owner is the
    // job's: the lost supervisor's leftover is reaped.
    std::os::unix::fs::chown(t.job_dir(&id), Some(0), Some(0)).unwrap();
    plant_running(&t, &id, stranger.pid(), Some(start_time(stranger.pid())));
    let v = t.ok(&["status", &id]);
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    eventually("the leftover is reaped", 5, || !stranger.alive());
}

/// `kill` (and `delete`) of a queued job signal its supervisor only if
/// the recorded supervisor pid is the job's supervisor.
#[test]
fn kill_of_a_queued_job_signals_only_its_own_supervisor() {
    let t = TempRoot::new();
    let stranger = Stranger::start("73.25");
    let first = t.start_job(&["sleep", "73.5"]);
    let queued = id_of(&t.ok(&["run", "--no-wait", "--after", &first, "--", "true"]));
    assert_eq!(t.ok(&["status", &queued])["state"], "queued");
    let was = edit_state(&t, &queued, |v| {
        v["supervisor_pid"] = stranger.pid().into();
    });
    let (code, e) = t.err(&["kill", &queued]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("io_error")),
        "{e}"
    );
    assert!(stranger.alive(), "kill signalled the stranger");
    let _ = t.out(&["delete", &queued]);
    assert!(stranger.alive(), "delete signalled the stranger");
    std::fs::write(t.job_dir(&queued).join("state.json"), was).unwrap();
    let v = t.ok(&["kill", &queued]);
    assert_eq!(v["state"], "killed", "{v}");
    t.ok(&["kill", &first]);
    t.wait_done(&first);
    assert!(stranger.alive());
}

/// A `lock` file replaced under a running job is free on its new inode:
/// `status` used to take it, record supervisor_lost and SIGKILL the
/// healthy job while its supervisor ran on.
#[test]
fn a_replaced_lock_file_never_makes_a_live_job_lost() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "74.5"]);
    eventually("sleep runs", 5, || sleepers("74.5").len() == 1);
    let lock = t.job_dir(&id).join("lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "").unwrap();
    let v = t.ok(&["status", &id]);
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(t.state(&id)["job"]["status"], "running");
    assert_eq!(sleepers("74.5").len(), 1, "the job was killed");
    assert!(!supervisor_gone(&t, &id));
    t.ok(&["kill", &id]);
    eventually("the job ends", 10, || {
        t.state(&id)["job"]["status"] != "running"
    });
    assert_eq!(t.ok(&["status", &id])["state"], "killed");
}

/// A directory or FIFO planted as a created job's `lock` is no launch:
/// readers leave the job `created` (they recorded it `launch_lost`, for
/// good), and it starts once the junk is gone.
#[test]
fn a_planted_lock_that_is_not_a_file_never_makes_a_created_job_lost() {
    let t = TempRoot::new();
    for kind in ["dir", "fifo"] {
        let id = t.ok(&["create", "--", "true"])["job_id"]
            .as_str()
            .unwrap()
            .to_string();
        let lock = t.job_dir(&id).join("lock");
        match kind {
            "dir" => std::fs::create_dir(&lock).unwrap(),
            _ => assert!(Command::new("mkfifo")
                .arg(&lock)
                .status()
                .unwrap()
                .success()),
        }
        let l = t.ok(&["list", "--all"]);
        let entry = l["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id.as_str())
            .cloned();
        assert_eq!(entry.unwrap()["state"], "created", "{kind}: {l}");
        assert_eq!(t.ok(&["status", &id])["state"], "created", "{kind}");
        assert_eq!(t.state(&id)["job"]["status"], "created", "{kind}");
        match kind {
            "dir" => std::fs::remove_dir(&lock).unwrap(),
            _ => std::fs::remove_file(&lock).unwrap(),
        }
        let v = t.ok(&["start", &id]);
        assert_eq!(v["state"], "exited", "{kind}: {v}");
    }
}

// ---------------------------------------------------------------------
// What was lost, in every response about the job, and of its input
// ---------------------------------------------------------------------

/// Panic unless each of `docs` matches the embedded schema (strictly: no
/// field it does not declare).
fn valid(t: &TempRoot, docs: &[&Value]) {
    let schema = t.ok(&["schema"])["schema"].clone();
    for d in docs {
        validate::valid(&schema, d);
    }
}

/// The entry of `stream` in a document's `output_lost` (or Null).
fn loss_of(v: &Value, stream: &str) -> Value {
    v["output_lost"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["stream"] == stream))
        .cloned()
        .unwrap_or(Value::Null)
}

/// A job losing output says so while it runs, not only at its end: the
/// supervisor records the running state with `output_lost` as soon as a
/// log fails (on a full disk, with part of the reserve), so status,
/// wait, tail and list of the running job list it. They left it out
/// until the end.
#[test]
fn a1_output_lost_is_said_while_the_job_runs() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "256k") else {
        return;
    };
    let go = t.base.join("go");
    let cmd = format!(
        "head -c 500000 /dev/zero | tr '\\0' x; while [ ! -e {} ]; do sleep 0.05; done; exit 4",
        go.display()
    );
    let id = id_of(&t.ok(&["run", "--no-auto-gc", "--no-wait", "--", &cmd]));
    eventually("the running state lists the stdout loss", 20, || {
        !loss_of(&t.state(&id), "stdout").is_null()
    });
    for args in [
        vec!["status", &id],
        vec!["wait", "--until", "0", &id],
        vec!["tail", &id],
    ] {
        let v = t.ok(&args);
        if !v["state"].is_null() {
            assert_eq!(v["state"], "running", "{args:?}: {v}");
        }
        let out = loss_of(&v, "stdout");
        assert_eq!(out["errno"], "ENOSPC", "{args:?}: {v}");
        assert!(out["dropped_bytes"].as_u64() > Some(0), "{args:?}: {v}");
    }
    let l = t.ok(&["list", "--all"]);
    let e = &l["jobs"][0];
    assert_eq!(e["state"], "running", "{l}");
    assert_eq!(loss_of(e, "stdout")["errno"], "ENOSPC", "{l}");
    valid(&t, &[&l]);
    // At the end the counts are complete.
    std::fs::write(&go, "").unwrap();
    let w = t.wait_done(&id);
    assert_eq!(w["exit_code"], 4, "{w}");
    let out = loss_of(&w, "stdout");
    let stored = w["stdout_total_bytes"].as_u64().unwrap();
    assert_eq!(
        out["dropped_bytes"].as_u64().unwrap() + stored,
        500_000,
        "{w}"
    );
}

/// The same on a file system out of inodes as well as blocks (audit 33):
/// a running state written the ordinary way needs a new file, which no
/// block given back from the reserve makes. The file made for the
/// terminal state takes it, and `status` of the running job lists the
/// loss; it listed none until the end.
#[test]
fn a1_output_lost_is_said_while_the_job_runs_out_of_inodes() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs_inodes(&t.root, 40) else {
        return;
    };
    let (go, end) = (t.base.join("go"), t.base.join("end"));
    let cmd = format!(
        "while [ ! -e {go} ]; do sleep 0.02; done; head -c 300000 /dev/zero | tr '\\0' x; \
         while [ ! -e {end} ]; do sleep 0.02; done; exit 4",
        go = go.display(),
        end = end.display()
    );
    let id = id_of(&t.ok(&["run", "--no-auto-gc", "--no-wait", "--", &cmd]));
    let dir = t.job_dir(&id);
    eventually("the terminal state's file is made", 20, || {
        dir.join(".state.next").exists()
    });
    // No inode left, then no block.
    let fill = t.root.join("fill");
    std::fs::create_dir(&fill).unwrap();
    let mut n = 0;
    while std::fs::File::create(fill.join(n.to_string())).is_ok() {
        n += 1;
    }
    assert!(n > 0, "no inode to fill");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(fill.join("0"))
        .unwrap();
    while std::io::Write::write_all(&mut f, &[0u8; 65536]).is_ok() {}
    std::fs::write(&go, "").unwrap();
    eventually("the running state lists the stdout loss", 20, || {
        !loss_of(&t.state(&id), "stdout").is_null()
    });
    let s = t.ok(&["status", &id]);
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(loss_of(&s, "stdout")["errno"], "ENOSPC", "{s}");
    std::fs::write(&end, "").unwrap();
    let w = t.wait_done(&id);
    assert_eq!(w["exit_code"], 4, "{w}");
    let out = loss_of(&w, "stdout");
    assert_eq!(
        out["dropped_bytes"].as_u64().unwrap() + w["stdout_total_bytes"].as_u64().unwrap(),
        300_000,
        "{w}"
    );
}

/// Once the job has ended, `list`, `send`, the end line of `tail -f` and
/// the kept runs of `previous_runs` say what it lost too, as `status`
/// does (they left `output_lost` out).
#[test]
fn a1_output_lost_is_in_list_send_follow_and_previous_runs() {
    let t = TempRoot::new();
    // 400 blocks: 200 or 400 KB; seq prints about 1.3 MB, then the job
    // waits for a line.
    let o = under_file_limit(
        &t,
        400,
        &[
            "run",
            "--no-auto-gc",
            "--no-wait",
            "-i",
            "--",
            "seq 1 200000; read x; exit 3",
        ],
    );
    let v = o.json();
    assert_eq!(v["ok"], true, "{v} {}", o.stderr);
    let id = id_of(&v);
    // The line lets the job end within the yield.
    let s = t.ok(&["send", "--newline", "--yield", "60s", &id, "hi"]);
    assert_eq!(
        (s["state"].as_str(), s["exit_code"].as_u64()),
        (Some("exited"), Some(3)),
        "{s}"
    );
    let lost = s["output_lost"].clone();
    assert_eq!(loss_of(&s, "stdout")["errno"], "EFBIG", "{s}");
    assert_eq!(t.ok(&["status", &id])["output_lost"], lost);
    // list, read from the files and then from its cache note.
    for _ in 0..3 {
        let l = t.ok(&["list", "--all"]);
        assert_eq!(l["jobs"][0]["job_id"], id.as_str(), "{l}");
        assert_eq!(l["jobs"][0]["output_lost"], lost, "{l}");
    }
    let f = t.out(&["tail", "-f", &id]);
    let end: Value = serde_json::from_str(f.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "end", "{}", f.stdout);
    assert_eq!(end["output_lost"], lost, "{end}");
    let schema = t.ok(&["schema"])["schema"].clone();
    validate::valid_as(&schema, "FollowEnd", &end);
    // Restarted without the limit: the first run is kept with its loss.
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["previous_runs"][0]["output_lost"], lost, "{r}");
    let st = t.ok(&["status", &id]);
    assert_eq!(st["previous_runs"][0]["output_lost"], lost, "{st}");
    assert!(st["output_lost"].is_null(), "{st}");
    t.ok(&["send", "--eof", &id]);
    let w = t.wait_done(&id);
    assert_eq!(w["previous_runs"][0]["output_lost"], lost, "{w}");
    assert!(w["output_lost"].is_null(), "{w}");
    valid(&t, &[&s, &r, &st, &w, &t.ok(&["list", "--all"])]);
}

/// Input that stdin.log cannot record still reaches the job, and is
/// never lost silently: `send` answers `input_lost` (the bytes of this
/// send not recorded, and why) and the job's `output_lost` lists the
/// stdin stream, while it runs and at its end. Here stdin.log is a
/// symlink (not followed); `send` answered as if all had been recorded.
#[test]
fn input_that_stdin_log_cannot_record_is_reported() {
    let t = TempRoot::new();
    let got = t.base.join("got");
    let cmd = format!("read x; echo \"$x\" > {}; read y; exit 0", got.display());
    let id = id_of(&t.ok(&["run", "--no-auto-gc", "--no-wait", "-i", "--", &cmd]));
    let elsewhere = t.base.join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, t.job_dir(&id).join("stdin.log")).unwrap();
    let s = t.ok(&["send", "--newline", "--yield", "0", &id, "hello"]);
    assert_eq!(s["bytes_written"], 6, "{s}");
    let lost = &s["input_lost"];
    assert_eq!(
        (lost["stream"].as_str(), lost["dropped_bytes"].as_u64()),
        (Some("stdin"), Some(6)),
        "{s}"
    );
    assert_eq!(lost["errno"], "ELOOP", "{s}");
    // On record before the send was answered.
    let st = t.ok(&["status", &id]);
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(loss_of(&st, "stdin")["dropped_bytes"], 6, "{st}");
    eventually("the job has the line", 10, || {
        std::fs::read_to_string(&got).is_ok_and(|g| g == "hello\n")
    });
    assert!(!elsewhere.exists(), "stdin.log was followed");
    // The next send's bytes are counted too; its answer says its own.
    let s = t.ok(&["send", "--newline", "--yield", "30s", &id, "again"]);
    assert_eq!(s["input_lost"]["dropped_bytes"], 6, "{s}");
    assert_eq!(s["state"], "exited", "{s}");
    let w = t.wait_done(&id);
    assert_eq!(loss_of(&w, "stdin")["dropped_bytes"], 12, "{w}");
    valid(&t, &[&s, &st, &w]);
    // Nothing is said where all was recorded, or nothing was to be.
    let id = id_of(&t.ok(&[
        "run",
        "--no-auto-gc",
        "--no-wait",
        "-i",
        "--",
        "read x; read y",
    ]));
    let s = t.ok(&["send", "--newline", "--yield", "0", &id, "one"]);
    assert!(s["input_lost"].is_null(), "{s}");
    let s = t.ok(&[
        "send",
        "--newline",
        "--no-record",
        "--yield",
        "30s",
        &id,
        "two",
    ]);
    assert!(s["input_lost"].is_null(), "{s}");
    assert!(t.wait_done(&id)["output_lost"].is_null());
}

/// The same on a full disk: the job gets what was sent, `send` says it
/// was not recorded (ENOSPC), and the running job's record says so too.
#[test]
fn a1_input_on_a_full_disk_is_reported() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs(&t.root, "1m") else {
        return;
    };
    let got = t.base.join("got");
    let cmd = format!("read x; echo \"$x\" > {}; read y; exit 0", got.display());
    let id = id_of(&t.ok(&["run", "--no-auto-gc", "--no-wait", "-i", "--", &cmd]));
    let filler = t.root.join("filler");
    // More than is free: the disk is full to the last block.
    let _ = std::fs::write(
        &filler,
        vec![0u8; ((free_kib(&t.root) + 64) * 1024) as usize],
    );
    let s = t.ok(&["send", "--newline", "--yield", "0", &id, "hello"]);
    assert_eq!(s["bytes_written"], 6, "{s}");
    assert_eq!(
        (
            s["input_lost"]["errno"].as_str(),
            s["input_lost"]["dropped_bytes"].as_u64()
        ),
        (Some("ENOSPC"), Some(6)),
        "{s}"
    );
    // The answer's own output_lost says so as well (it lacked the stdin
    // stream when the state it read did not have it yet).
    assert_eq!(loss_of(&s, "stdin")["errno"], "ENOSPC", "{s}");
    let st = t.ok(&["status", &id]);
    assert_eq!(st["state"], "running", "{st}");
    assert_eq!(loss_of(&st, "stdin")["errno"], "ENOSPC", "{st}");
    eventually("the job has the line", 10, || {
        std::fs::read_to_string(&got).is_ok_and(|g| g == "hello\n")
    });
    std::fs::remove_file(&filler).unwrap();
    t.ok(&["send", "--eof", &id]);
    let w = t.wait_done(&id);
    assert_eq!(loss_of(&w, "stdin")["dropped_bytes"], 6, "{w}");
}

/// A launch lost before its supervisor made the logs: the reader that
/// records `launch_lost` makes them (empty), so the paths `run` printed
/// for the job exist (D41); they did not.
#[test]
fn a_lost_launch_has_the_logs_whose_paths_were_printed() {
    let t = TempRoot::new();
    let id = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = t.job_dir(&id);
    for f in ["stdout.log", "stderr.log"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    // What a launch leaves when its supervisor dies at once: the lock.
    std::fs::write(dir.join("lock"), "").unwrap();
    let s = t.ok(&["status", &id]);
    assert_eq!(s["failure"]["code"], "launch_lost", "{s}");
    for f in ["stdout.log", "stderr.log"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

/// The hidden `_supervise ROOT ID`, run by hand on a job that has run,
/// does nothing (it ran the finished job again, overwriting its logs and
/// result); nor with an id that is a path.
#[test]
fn supervise_by_hand_never_runs_a_finished_job_again() {
    let t = TempRoot::new();
    let id = t.ok(&["run", "--", "echo $$"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = (t.read(&id, "stdout.log"), t.read(&id, "state.json"));
    let root = t.root.to_str().unwrap().to_string();
    let parent = t.root.parent().unwrap().to_str().unwrap().to_string();
    let nested = format!("{}/{id}", t.root.file_name().unwrap().to_str().unwrap());
    for args in [
        [root.as_str(), id.as_str()],
        [parent.as_str(), nested.as_str()],
    ] {
        let mut c = t.bare();
        c.arg("_supervise").args(args).stderr(Stdio::null());
        let o = t.exec(c);
        assert_eq!(o.code, 0, "{args:?}");
    }
    assert_eq!(
        (t.read(&id, "stdout.log"), t.read(&id, "state.json")),
        before
    );
}

/// A `--cwd` the caller may not enter (search permission on the
/// directory itself) is `cwd_not_found` saying so, as the same refusal
/// one directory up is: it was `spawn_failed`, "spawn sh: Permission
/// denied", as if the wrapper could not run.
#[test]
fn a_cwd_the_caller_may_not_enter_is_cwd_not_found() {
    let t = TempRoot::new();
    let uid = Command::new("id").arg("-u").output().unwrap().stdout;
    let as_root = String::from_utf8_lossy(&uid).trim() == "0";
    let closed = t.base.join("closed");
    std::fs::create_dir(&closed).unwrap();
    // As root (who enters anything) the job is run as nobody, in a root
    // of its own: the directory is root's, 0700. Otherwise it is ours,
    // without search permission.
    let bin = t.base.join("agent-exec");
    let root = t.base.join("open-root");
    if as_root {
        if Command::new("setpriv").arg("--help").output().is_err() {
            eprintln!("setpriv missing: skipped");
            return;
        }
        std::fs::copy(support::bin(), &bin).unwrap();
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    } else {
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let mut c = if as_root {
        let mut c = t.private("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&bin)
            .arg("--root")
            .arg(&root);
        c
    } else {
        t.bare()
    };
    c.args(["run", "--cwd"]).arg(&closed).args(["--", "pwd"]);
    let o = t.exec(c);
    let v = o.json();
    let _ = std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700));
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "cwd_not_found", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("permission denied"), "{msg}");
}

/// A launch whose supervisor finds no inode for the job's first file
/// (the room kept for the record is bytes, not inodes) reads `failed`
/// with `no_space`, and is recorded so, in the lock file renamed to
/// state.json (no new inode needed): it read `launch_lost`, unsaved.
#[test]
fn a1_a_launch_left_without_inodes_reads_no_space() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs_inodes(&t.root, 64) else {
        return;
    };
    // Whatever a first launch makes in the root besides its job.
    t.ok(&["run", "--no-auto-gc", "--", "true"]);
    t.settle();
    // Room for the definition only: the job's directory, meta.json and
    // the lock.
    leave_inodes(&t, 3);
    let v = t.ok(&["run", "--no-auto-gc", "--", "echo", "hi"]);
    assert_eq!(
        (&v["state"], &v["failure"]["code"]),
        (&serde_json::json!("failed"), &serde_json::json!("no_space")),
        "{v}"
    );
    let id = v["job_id"].as_str().unwrap();
    let s = t.ok(&["status", id]);
    assert_eq!(s["failure"]["code"], "no_space", "{s}");
    assert!(t.job_dir(id).join("state.json").exists());
}

/// An `--env` value may be a secret (`--mask`): an error about one names
/// the variable and never shows the value, on stdout or stderr. The value
/// that is not UTF-8, and the reserved name, printed it whole.
#[test]
fn an_env_value_is_never_shown_in_an_error() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let secret = "topsecret";
    let not_utf8 = std::ffi::OsStr::from_bytes(b"SEC=topsecret\xffdef");
    let mut cases: Vec<Vec<&std::ffi::OsStr>> = vec![vec![
        "--env".as_ref(),
        not_utf8,
        "--mask".as_ref(),
        "SEC".as_ref(),
    ]];
    for env in ["__AGENT_EXEC_X=topsecret", "=topsecret"] {
        cases.push(vec!["--env".as_ref(), env.as_ref()]);
    }
    for case in cases {
        let mut c = t.bare();
        c.arg("run").args(&case).args(["--", "true"]);
        let o = t.exec(c);
        assert_eq!(o.code, 2, "{case:?}: {}", o.stdout);
        let v = o.json();
        assert_eq!(v["error"]["code"], "usage_error", "{v}");
        assert!(!o.stdout.contains(secret), "{case:?}: {}", o.stdout);
        assert!(!o.stderr.contains(secret), "{case:?}: {}", o.stderr);
    }
    let v = t.ok(&["list"]);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 0);
}

/// A jobs root that is a file, or a symlink loop, says what it is (both
/// read "File exists", the mkdir's error, as if nothing were wrong).
#[test]
fn a_root_that_cannot_be_a_directory_says_why() {
    let t = TempRoot::new();
    let file = t.base.join("a-file");
    std::fs::write(&file, "").unwrap();
    let loop1 = t.base.join("l1");
    std::os::unix::fs::symlink(t.base.join("l2"), &loop1).unwrap();
    std::os::unix::fs::symlink(&loop1, t.base.join("l2")).unwrap();
    for (root, why) in [(&file, "(os error 20)"), (&loop1, "(os error 40)")] {
        let mut c = t.bare();
        c.arg("--root").arg(root).args(["run", "--", "true"]);
        let o = t.exec(c);
        let v = o.json();
        assert_eq!(v["error"]["code"], "io_error", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{root:?}: {msg}");
        // A command about one job says the same of the root as `list`:
        // not a job directory "refused as a symlink" (unsafe_path).
        for args in [&["status", "01ABC"][..], &["wait", "01ABC"], &["list"]] {
            let mut c = t.bare();
            c.arg("--root").arg(root).args(args);
            let v = t.exec(c).json();
            assert_eq!(v["error"]["code"], "io_error", "{args:?} {v}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(msg.contains(why), "{root:?} {args:?}: {msg}");
        }
    }
}

/// Fill the file system of `t.root` with empty files until no inode is
/// left, then free `k` of them: a disk with exactly `k` inodes to spare.
fn leave_inodes(t: &TempRoot, k: usize) {
    let fill = t.root.join("fill");
    std::fs::create_dir(&fill).unwrap();
    let mut n = 0;
    while std::fs::File::create(fill.join(n.to_string())).is_ok() {
        n += 1;
    }
    for i in 1..=k.min(n) {
        std::fs::remove_file(fill.join((n - i).to_string())).unwrap();
    }
}

/// What a `run`, `restart` or `wait` answer and `status` say of a job
/// (state, exit code, attempt, failure code): they must agree.
fn outcome(v: &Value) -> (Value, Value, Value, Value) {
    (
        v["state"].clone(),
        v["exit_code"].clone(),
        v["attempt"].clone(),
        v["failure"]["code"].clone(),
    )
}

/// However few inodes a launch finds, the job either runs and its end is
/// recorded, or it does not run and reads `failed`/`no_space`; never a
/// job that ran and then lost its exit code (`supervisor_lost`, answered
/// `running` although it had ended), one killed for want of full.log, a
/// `no_space` job that ran anyway, or an empty state.json that every
/// later command refuses. The terminal state needs a new file: on a file
/// system out of inodes it goes into the job's lock file instead, and
/// the files a job makes once it runs are made before it starts there.
#[test]
fn a7_however_few_inodes_a_job_either_runs_recorded_or_not_at_all() {
    let variants: [&[&str]; 5] = [
        &[],
        &["--no-full-log"],
        &["--queue", "q"],
        &["-i"],
        &["--tty"],
    ];
    for k in 0..=12 {
        for extra in variants {
            let t = TempRoot::new();
            let Some(_fs) = Mount::tmpfs_inodes(&t.root, 64) else {
                return;
            };
            t.ok(&["run", "--no-auto-gc", "--", "true"]);
            t.settle();
            leave_inodes(&t, k);
            let mut args = vec!["run", "--no-auto-gc"];
            args.extend_from_slice(extra);
            args.extend(["--", "echo hi"]);
            let o = t.out(&args);
            if o.code != 0 {
                // No room for the definition: an error, and no job.
                let v = o.json();
                assert_eq!(v["error"]["code"], "io_error", "k={k}: {v}");
                continue;
            }
            let v = o.json();
            if v["state"] == "exited" {
                assert_eq!(v["exit_code"], 0, "k={k} {extra:?}: {v}");
                assert!(
                    v["stdout"].as_str().unwrap().starts_with("hi"),
                    "k={k} {extra:?}: {v}"
                );
            } else {
                // Not `queue_unusable`, `log_unwritable` or `spawn_failed`:
                // what stopped it was room.
                assert_eq!(
                    (&v["state"], &v["failure"]["code"]),
                    (&json!("failed"), &json!("no_space")),
                    "k={k} {extra:?}: {v}"
                );
                assert_eq!(
                    v["stdout"], "",
                    "k={k}: a job that did not run printed: {v}"
                );
            }
            t.settle();
            let id = v["job_id"].as_str().unwrap();
            let s = t.ok(&["status", id]);
            assert_eq!(outcome(&s), outcome(&v), "k={k} {extra:?}: {s}");
        }
    }
}

/// A `restart` on a disk out of inodes either keeps the run and records
/// the new one's end, or fails `io_error` leaving the job as it was; a
/// `--retry` job whose disk runs out of inodes while it runs ends with
/// its run's exit code (its run could not be kept, so it is not run
/// again). Both lost the exit code (`supervisor_lost`).
#[test]
fn a8_restart_and_retry_without_inodes_keep_the_exit_code() {
    for k in 0..=10 {
        let t = TempRoot::new();
        let Some(_fs) = Mount::tmpfs_inodes(&t.root, 64) else {
            return;
        };
        let v = t.ok(&["run", "--no-auto-gc", "--", "echo out; exit 3"]);
        let id = v["job_id"].as_str().unwrap().to_string();
        t.settle();
        leave_inodes(&t, k);
        let o = t.out(&["restart", &id]);
        t.settle();
        let s = t.ok(&["status", &id]);
        if o.code != 0 {
            assert_eq!(o.json()["error"]["code"], "io_error", "k={k}: {}", o.stdout);
            assert_eq!(
                outcome(&s),
                (json!("exited"), json!(3), json!(1), Value::Null),
                "k={k}: {s}"
            );
            continue;
        }
        let r = o.json();
        assert_eq!(r["attempt"], 2, "k={k}: {r}");
        match r["state"].as_str() {
            Some("exited") => assert_eq!(r["exit_code"], 3, "k={k}: {r}"),
            _ => assert_eq!(r["failure"]["code"], "no_space", "k={k}: {r}"),
        }
        assert_eq!(outcome(&s), outcome(&r), "k={k}: {s}");
    }
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs_inodes(&t.root, 64) else {
        return;
    };
    let gate = t.base.join("gate");
    let script = format!(
        "while [ ! -e '{}' ]; do sleep 0.01; done; exit 1",
        gate.display()
    );
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--no-auto-gc",
        "--retry",
        "3",
        "--",
        &script,
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    leave_inodes(&t, 0);
    // The gate lives outside the full disk.
    std::fs::write(&gate, "").unwrap();
    let w = t.ok(&["wait", &id]);
    assert_eq!(
        outcome(&w),
        (json!("exited"), json!(1), json!(1), Value::Null),
        "{w}"
    );
}

/// On a disk out of both blocks and inodes the supervisor cannot record
/// the stdin loss in state.json at all: the `send` answer still lists
/// the stdin stream in its `output_lost`, as it says `input_lost` (it
/// listed nothing, the state it read having nothing).
#[test]
fn a8_a_send_answer_lists_its_input_loss_where_the_state_cannot() {
    let t = TempRoot::new();
    let Some(_fs) = Mount::tmpfs_inodes(&t.root, 64) else {
        return;
    };
    let id = id_of(&t.ok(&[
        "run",
        "--no-auto-gc",
        "--no-wait",
        "-i",
        "--",
        "read x; read y",
    ]));
    // Every block, then every inode.
    let filler = t.root.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 5 << 20]);
    leave_inodes(&t, 0);
    let s = t.ok(&["send", "--newline", "--yield", "0", &id, "hello"]);
    assert_eq!(s["input_lost"]["stream"], "stdin", "{s}");
    assert_eq!(loss_of(&s, "stdin")["dropped_bytes"], 6, "{s}");
    std::fs::remove_file(&filler).unwrap();
    std::fs::remove_dir_all(t.root.join("fill")).unwrap();
    t.ok(&["send", "--eof", &id]);
    t.wait_done(&id);
}

/// A planted record naming a live process outside the session it
/// records: nothing is signalled (no member of that group is in that
/// session), and `supervisor_lost` now says so; it said nothing, as if
/// nothing had been left to kill.
#[test]
fn a_lost_supervisor_record_naming_a_process_of_another_session_says_nothing_was_signalled() {
    let t = TempRoot::new();
    let stranger = Stranger::start("77.25");
    let id = id_of(&t.ok(&["run", "--", "true"]));
    plant_running(&t, &id, stranger.pid(), Some(start_time(stranger.pid())));
    edit_state(&t, &id, |v| v["sid"] = 999_999.into());
    let v = t.ok(&["status", &id]);
    assert!(stranger.alive());
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("nothing was signalled"), "{msg}");
}

/// A job whose lock file was removed and whose supervisor then died:
/// readers said `supervisor_lost` but left its workload running, with
/// nothing said. What is left of its group is killed, with the checks
/// of a supervisor lost with its lock in place.
#[test]
fn a_lost_supervisor_without_its_lock_file_has_its_leftovers_killed() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep 78.25; true"]);
    eventually("sleep runs", 5, || sleepers("78.25").len() == 1);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    std::fs::remove_file(t.job_dir(&id).join("lock")).unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // Its root (the shell) dies with it (PDEATHSIG); the sleep lives on.
    let v = t.ok(&["status", &id]);
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    eventually("the leftover is killed", 5, || sleepers("78.25").is_empty());
}

/// Run `bin` as nobody (setpriv) with `t`'s private environment; None
/// when that cannot be done here (not root, no setpriv).
fn as_nobody(t: &TempRoot, bin: &Path) -> Option<Command> {
    let uid = Command::new("id").arg("-u").output().ok()?.stdout;
    if String::from_utf8_lossy(&uid).trim() != "0"
        || Command::new("setpriv").arg("--help").output().is_err()
    {
        return None;
    }
    let mut c = t.private("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin);
    Some(c)
}

/// Root reading another user's jobs in a shared root: the lost
/// supervisor's `job.finished` is left to the job's owner (root ran that
/// user's --notify-command as root), and the records root rewrites
/// (state.json, meta.json by `tag set`) stay the owner's, who could no
/// longer read them (root's 0600 files). Needs root; skipped otherwise.
#[test]
fn root_reading_another_users_jobs_runs_none_of_their_sinks_and_keeps_them_theirs() {
    use std::os::unix::fs::MetadataExt;
    let t = TempRoot::new();
    let bin = t.base.join("agent-exec");
    std::fs::copy(support::bin(), &bin).unwrap();
    let nobody = |args: &[&str]| {
        let mut c = as_nobody(&t, &bin)?;
        c.arg("--root").arg(&t.root).args(args);
        Some(t.exec(c))
    };
    std::fs::create_dir_all(&t.root).unwrap();
    std::os::unix::fs::chown(&t.root, Some(65534), Some(65534)).unwrap();
    let out = t.base.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let who = out.join("who");
    let sink = format!("id -u > {}", who.display());
    let Some(o) = nobody(&[
        "run",
        "--no-wait",
        "--notify-command",
        &sink,
        "--",
        "sleep",
        "79.25",
    ]) else {
        eprintln!("skipped: needs root and setpriv");
        return;
    };
    let id = id_of(&o.json());
    let done = id_of(&nobody(&["run", "--", "true"]).unwrap().json());
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    // Root's reads record the loss; root's tag set rewrites a record.
    t.ok(&["list", "--all"]);
    t.ok(&["tag", "set", &done, "--tag", "admin"]);
    for (job, file) in [
        (&id, "state.json"),
        (&done, "meta.json"),
        (&done, "meta.lock"),
    ] {
        let uid = std::fs::metadata(t.job_dir(job).join(file)).unwrap().uid();
        assert_eq!(uid, 65534, "{file} of {job}");
    }
    // Nothing was delivered by root; the owner's next read sends it.
    assert!(!who.exists(), "root ran the sink");
    let v = nobody(&["status", &id]).unwrap().json();
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    let d = nobody(&["status", &done]).unwrap().json();
    assert_eq!(d["tags"], json!(["admin"]), "{d}");
    eventually("the owner's read delivered", 10, || {
        std::fs::read_to_string(&who).is_ok_and(|s| s.ends_with('\n'))
    });
    assert_eq!(std::fs::read_to_string(&who).unwrap().trim(), "65534");
    // Root's restart of the user's job keeps the run in the user's
    // `runs/`: root's kept the owner's next restart out.
    t.ok(&["restart", &done]);
    for p in ["runs", "runs/1", "runs/1/state.json"] {
        let uid = std::fs::metadata(t.job_dir(&done).join(p)).unwrap().uid();
        assert_eq!(uid, 65534, "{p}");
    }
    let r = nobody(&["restart", &done]).unwrap().json();
    assert_eq!(r["attempt"], 3, "{r}");
    let s = nobody(&["status", &done]).unwrap().json();
    assert_eq!(s["previous_runs"].as_array().map(Vec::len), Some(2), "{s}");
}

/// The default config file under a directory the caller may not search
/// (HOME=/root after `su` or `setpriv`) is the built-in defaults, as
/// 0.2.3's `exists()` had it: every launch failed `invalid_config`. A
/// file that is there but unreadable is still refused. Needs root.
#[test]
fn a_default_config_the_caller_may_not_look_at_is_the_defaults() {
    let t = TempRoot::new();
    let bin = t.base.join("agent-exec");
    std::fs::copy(support::bin(), &bin).unwrap();
    let closed = t.base.join("closed");
    std::fs::create_dir_all(closed.join("agent-exec")).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = t.base.join("open-root");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = |config_home: &Path| {
        let mut c = as_nobody(&t, &bin)?;
        c.env("XDG_CONFIG_HOME", config_home)
            .arg("--root")
            .arg(&root)
            .args(["run", "--", "true"]);
        Some(t.exec(c).json())
    };
    let Some(v) = run(&closed) else {
        eprintln!("skipped: needs root and setpriv");
        return;
    };
    assert_eq!(v["state"], "exited", "{v}");
    // Searchable, with a config.toml nobody may read: refused.
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        closed.join("agent-exec"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let file = closed.join("agent-exec/config.toml");
    std::fs::write(&file, "").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let v = run(&closed).unwrap();
    assert_eq!(v["error"]["code"], "invalid_config", "{v}");
}

/// A supervisor killed between two `--retry` runs (the delay): the next
/// attempt never ran, and `supervisor_lost` says so (it read as a run
/// that ended unrecorded).
#[test]
fn a_supervisor_lost_in_a_retry_delay_says_the_attempt_never_ran() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "3",
        "--retry-delay",
        "60s",
        "--",
        "exit 1",
    ]);
    let id = id_of(&v);
    eventually("the second attempt waits", 10, || {
        let st = t.state(&id);
        st["attempt"] == 2 && st["job"]["started_at"].is_null()
    });
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    let s = t.ok(&["status", &id]);
    assert_eq!(s["failure"]["code"], "supervisor_lost", "{s}");
    let msg = s["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains("attempt 2") && msg.contains("never ran"),
        "{msg}"
    );
}

/// What a `--tty` job's root leaves behind in its session is still the
/// job's once the root has ended (its supervisor noted those processes
/// before it reaped the root, so the session cannot have been taken
/// since): `--kill-after` kills it, `kill` signals it, `delete` refuses
/// the job and `restart` ends it before the new run. Each of them took
/// it for a stranger's and left it running.
#[test]
fn a_tty_jobs_leftovers_stay_its_own_after_its_root() {
    let t = TempRoot::new();
    // The timeout's SIGKILL after the grace reaches a TERM-ignoring one.
    let v = t.ok(&[
        "run",
        "--tty",
        "--timeout",
        "0.5",
        "--kill-after",
        "0.5",
        "--",
        "trap '' HUP TERM; sleep 3310.1 & trap - TERM; sleep 3311",
    ]);
    assert_eq!(v["timed_out"], true, "{v}");
    eventually("the leftover to get its SIGKILL", 10, || {
        sleepers("3310.1").is_empty()
    });
    // kill, and delete before it.
    let script = "trap '' HUP; sleep 3310.2 & echo hi";
    let id = id_of(&t.ok(&["run", "--tty", "--", script]));
    assert_eq!(sleepers("3310.2").len(), 1);
    let (_, e) = t.err(&["delete", &id]);
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "exited", "{k}");
    // Until it has exited: a process on its way out has no command line
    // (what `sleepers` reads) a moment before it is a zombie, and delete
    // counts it till then (a CI run met that moment).
    eventually("the leftover to end by kill", 10, || {
        sleepers("3310.2").is_empty() && t.out(&["delete", &id]).code == 0
    });
    // restart ends the old run's leftover before the new run starts.
    let script = "trap '' HUP TERM; sleep 3310.3 & echo hi";
    let id = id_of(&t.ok(&["run", "--tty", "--", script]));
    let old = sleepers("3310.3");
    assert_eq!(old.len(), 1);
    let r = t.ok(&["restart", "--kill-after", "0.2", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    assert!(
        !sleepers("3310.3").contains(&old[0]),
        "the old run's leftover lives"
    );
    t.ok(&["kill", "--signal", "KILL", &id]);
    eventually("the new run's leftover to end", 10, || {
        sleepers("3310.3").is_empty()
    });
}

/// What a `--retry` run left in its group ends before the next run
/// starts, as `restart` ends it: `kill` reaches only the run on record,
/// so the earlier run's background process outlived it, and `delete`
/// then went through with it still running.
#[test]
fn a_retried_runs_leftovers_end_before_the_next_run() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--retry",
        "1",
        "--",
        "sleep 3320.5 >/dev/null 2>&1 & exit 1",
    ]);
    assert_eq!(v["attempt"], 2, "{v}");
    assert_eq!(sleepers("3320.5").len(), 1, "only the last run's is left");
    let id = id_of(&v);
    t.ok(&["kill", &id]);
    eventually("the last run's leftover to end by kill", 10, || {
        sleepers("3320.5").is_empty()
    });
    t.ok(&["delete", &id]);
}

/// Root here, with setpriv: a root job's processes may change their uid.
fn root_with_setpriv() -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout);
    let root = uid.is_ok_and(|u| String::from_utf8_lossy(&u).trim() == "0");
    if !root || Command::new("setpriv").arg("--help").output().is_err() {
        eprintln!("not root or no setpriv: skipped");
        return false;
    }
    true
}

/// A root-owned job whose root process dropped to another uid (setpriv,
/// as `su`, `sudo -u` or a daemon do) is still the job's: `kill` stops
/// it. It answered that the record was damaged and signalled nothing,
/// though the record named the job's own process (audit).
#[test]
fn kill_stops_a_root_job_whose_process_changed_its_uid() {
    if !root_with_setpriv() {
        return;
    }
    let t = TempRoot::new();
    let drop_to_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let mut args = vec!["run", "--no-wait", "--"];
    args.extend(drop_to_nobody);
    args.extend(["sleep", "79.25"]);
    let id = id_of(&t.ok(&args));
    eventually("sleep runs as nobody", 5, || sleepers("79.25").len() == 1);
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["signal"], "SIGTERM", "{k}");
    let v = t.wait_done(&id);
    assert_eq!(v["state"], "killed", "{v}");
    eventually("the sleep is gone", 5, || sleepers("79.25").is_empty());
}

/// A root job whose supervisor was lost, with processes of another uid
/// left in its group: the reader that records `supervisor_lost` kills
/// them all, and `delete` then removes the job. Nothing was signalled
/// ("process ... belongs to uid 65534"), and `kill` (damaged record) and
/// `delete` (processes still alive) both refused, for good (audit).
#[test]
fn a_lost_root_job_with_processes_of_another_uid_is_cleaned_up_and_deleted() {
    if !root_with_setpriv() {
        return;
    }
    let t = TempRoot::new();
    let id = t.start_job(&[
        "setpriv --reuid=65534 --regid=65534 --clear-groups sleep 79.5 & sleep 79.75",
    ]);
    eventually("both sleeps run", 5, || {
        sleepers("79.5").len() == 1 && sleepers("79.75").len() == 1
    });
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    kill9(sup);
    eventually("the supervisor is gone", 5, || !alive(sup));
    let v = t.ok(&["status", &id]);
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(!msg.contains("nothing was signalled"), "{msg}");
    eventually("the leftovers are killed", 5, || {
        sleepers("79.5").is_empty() && sleepers("79.75").is_empty()
    });
    t.ok(&["delete", &id]);
    assert!(!t.job_dir(&id).exists());
}

/// Root restarting (or starting) another user's job runs it as root: its
/// new root is uid 0, the child of the job's live supervisor, and `kill`
/// and a second `restart` stop it. Both answered that the record was
/// damaged ("not the job's process") and signalled nothing (audit).
#[test]
fn roots_restart_of_another_users_job_can_be_stopped() {
    let t = TempRoot::new();
    let bin = t.base.join("agent-exec");
    std::fs::copy(support::bin(), &bin).unwrap();
    std::fs::create_dir_all(&t.root).unwrap();
    std::os::unix::fs::chown(&t.root, Some(65534), Some(65534)).unwrap();
    let Some(mut c) = as_nobody(&t, &bin) else {
        eprintln!("skipped: needs root and setpriv");
        return;
    };
    c.arg("--root")
        .arg(&t.root)
        .args(["run", "--no-wait", "--", "sleep", "79.875"]);
    let id = id_of(&t.exec(c).json());
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["attempt"], 3, "{r}");
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["signal"], "SIGTERM", "{k}");
    assert_eq!(t.wait_done(&id)["state"], "killed");
    eventually("every run's sleep is gone", 5, || {
        sleepers("79.875").is_empty()
    });
}
