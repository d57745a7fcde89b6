//! `restart` and `run --retry`: the same id runs again, earlier runs are
//! kept (`previous_runs`, `runs/<attempt>/`), a running job is stopped
//! first (TERM, then KILL), `--retry` reruns failures and stops on kill,
//! `job.finished` fires once, a blocked `wait` answers with its run, and
//! the HTTP and MCP doors.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

/// A shell command that counts its runs in `counter` and prints `runN`
/// on stdout and `errN` on stderr; it exits `code` while the count is
/// below `ok_from` (0: always), else 0.
fn counting(counter: &Path, ok_from: u32, code: i32) -> String {
    let c = counter.display();
    format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; \
         echo run$n; echo err$n >&2; \
         if [ {ok_from} -gt 0 ] && [ $n -ge {ok_from} ]; then exit 0; fi; exit {code}"
    )
}

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

fn attempts(v: &Value) -> Vec<u64> {
    v["previous_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["attempt"].as_u64().unwrap())
        .collect()
}

/// Is this pid gone: no thread of it left but a zombie nobody needs?
fn gone(pid: u64) -> bool {
    !support::process_alive(pid)
}

#[test]
fn restart_of_a_finished_job_keeps_the_previous_run() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let v = t.ok(&["run", "--", &counting(&counter, 0, 3)]);
    assert_eq!(v["exit_code"], 3, "{v}");
    let id = id_of(&v);
    let r = t.ok(&["restart", &id]);
    assert_eq!(r["type"], "restart");
    assert_eq!(r["job_id"], id.as_str(), "same id");
    assert_eq!(r["state"], "exited");
    assert_eq!(r["exit_code"], 3);
    assert_eq!(r["stdout"], "run2\n", "the new run's output: {r}");
    assert_eq!(r["attempt"], 2);
    assert_eq!(attempts(&r), vec![1]);
    let prev = &r["previous_runs"][0];
    assert_eq!(prev["state"], "exited");
    assert_eq!(prev["exit_code"], 3);
    assert!(prev["started_at"].is_string() && prev["finished_at"].is_string());
    let out = prev["stdout_log_path"].as_str().unwrap();
    let err = prev["stderr_log_path"].as_str().unwrap();
    assert!(out.starts_with(t.job_dir(&id).join("runs").join("1").to_str().unwrap()));
    assert_eq!(std::fs::read_to_string(out).unwrap(), "run1\n");
    assert_eq!(std::fs::read_to_string(err).unwrap(), "err1\n");
    // The kept state is the old run's result.
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(t.job_dir(&id).join("runs/1/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["result"]["exit_code"], 3);
    // status says the same; tail reads the new run.
    let s = t.ok(&["status", &id]);
    assert_eq!(s["attempt"], 2);
    assert_eq!(s["previous_runs"], r["previous_runs"]);
    let tail = t.ok(&["tail", &id]);
    assert_eq!(tail["stdout"], "run2\n");
    // A first run's status: attempt 1, nothing before it.
    let fresh = id_of(&t.ok(&["run", "--", "true"]));
    let s = t.ok(&["status", &fresh]);
    assert_eq!(s["attempt"], 1);
    assert_eq!(s["previous_runs"], json!([]));
    // delete removes the kept runs with the job.
    t.settle();
    t.ok(&["delete", &id]);
    assert!(!t.job_dir(&id).exists());
}

#[test]
fn restart_of_a_running_job_stops_it_with_term_first() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let old_pid = t.state(&id)["pid"].as_u64().unwrap();
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["attempt"], 2);
    assert_eq!(r["state"], "running");
    let prev = &r["previous_runs"][0];
    assert_eq!(prev["state"], "killed", "{r}");
    assert_eq!(prev["signal"], "SIGTERM");
    assert!(gone(old_pid), "the old run's process is gone");
    let new_pid = t.state(&id)["pid"].as_u64().unwrap();
    assert_ne!(new_pid, old_pid);
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "killed");
}

#[test]
fn a_job_that_ignores_term_is_killed_after_the_grace() {
    let t = TempRoot::new();
    let id = t.start_job(&["trap '' TERM; echo ready; sleep 30"]);
    let w = t.ok(&["wait", "--output", "ready", "--until", "30", &id]);
    assert!(w["matched"].is_object(), "{w}");
    let old_pid = t.state(&id)["pid"].as_u64().unwrap();
    let t0 = Instant::now();
    let r = t.ok(&["restart", "--kill-after", "300ms", "--no-wait", &id]);
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "TERM was ignored"
    );
    let prev = &r["previous_runs"][0];
    assert_eq!(prev["state"], "killed", "{r}");
    assert_eq!(prev["signal"], "SIGKILL");
    assert!(gone(old_pid));
    assert_eq!(r["attempt"], 2);
    t.ok(&["kill", "--signal", "KILL", &id]);
}

/// A supervisor that cannot record the end (stopped here) leaves the
/// restart nothing it may keep: `invalid_state`, retryable, with nothing
/// started, and the same restart succeeds once the end is on record.
/// It said "did not end after SIGKILL", not retryable, of a job whose
/// process had ended.
#[test]
fn a_restart_whose_old_run_is_not_recorded_in_time_is_retryable() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep 30"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap() as i32;
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &sup.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {sup}");
    };
    signal("-STOP");
    let (_, e) = t.err(&["restart", "--kill-after", "100ms", "--no-wait", &id]);
    signal("-CONT");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], true, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not recorded"),
        "{e}"
    );
    let w = t.ok(&["wait", "--until", "30", &id]);
    assert_eq!(w["state"], "killed", "{w}");
    assert_eq!(w["attempt"], 1, "{w}");
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(attempts(&r), vec![1], "{r}");
    t.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn restart_after_the_supervisor_died() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let st = t.state(&id);
    let (sup, pid) = (
        st["supervisor_pid"].as_u64().unwrap(),
        st["pid"].as_u64().unwrap(),
    );
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &sup.to_string()])
        .status()
        .unwrap()
        .success());
    let until = Instant::now() + Duration::from_secs(10);
    while !gone(sup) {
        assert!(Instant::now() < until, "supervisor {sup} did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = t.ok(&["restart", "--no-wait", &id]);
    let prev = &r["previous_runs"][0];
    assert_eq!(prev["state"], "failed", "{r}");
    let kept: Value = serde_json::from_str(
        &std::fs::read_to_string(t.job_dir(&id).join("runs/1/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(kept["failure"]["code"], "supervisor_lost");
    assert!(gone(pid), "the orphaned workload was killed");
    assert_eq!(r["state"], "running");
    assert_eq!(r["attempt"], 2);
    t.ok(&["kill", &id]);
}

#[test]
fn concurrent_restarts_each_get_a_clear_answer() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let first_pid = t.state(&id)["pid"].as_u64().unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| {
            t.cmd(&["restart", "--no-wait", &id])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut oks = 0;
    for k in kids {
        let out = k.wait_with_output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        if v["ok"] == true {
            oks += 1;
        } else {
            assert_eq!(v["error"]["code"], "invalid_state", "{v}");
            // Beaten by another caller's launch: retryable, as a `start`
            // that meets another's launch is (audit).
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            if msg.contains("restarted by another caller") {
                assert_eq!(v["error"]["retryable"], true, "{v}");
            }
        }
    }
    assert!(oks >= 1);
    let s = t.ok(&["status", &id]);
    assert_eq!(s["attempt"], 1 + oks, "{s}");
    assert_eq!(s["state"], "running");
    // Every run replaced is gone; the one the state names lives.
    assert!(gone(first_pid));
    let live = t.state(&id)["pid"].as_u64().unwrap();
    assert!(!gone(live));
    for p in s["previous_runs"].as_array().unwrap() {
        assert_eq!(p["state"], "killed", "{p}");
    }
    t.ok(&["kill", &id]);
}

#[test]
fn only_the_last_keep_runs_are_kept() {
    let t = TempRoot::new();
    let cfg = t.base.join("config").join("agent-exec");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), "[restart]\nkeep_runs = 2\n").unwrap();
    let id = id_of(&t.ok(&["run", "--", "echo hi"]));
    let mut last = Value::Null;
    for _ in 0..3 {
        last = t.ok(&["restart", &id]);
    }
    assert_eq!(last["attempt"], 4);
    assert_eq!(attempts(&last), vec![2, 3]);
    let runs = t.job_dir(&id).join("runs");
    assert!(!runs.join("1").exists(), "the oldest run is removed");
    for p in last["previous_runs"].as_array().unwrap() {
        for k in ["stdout_log_path", "stderr_log_path"] {
            assert!(Path::new(p[k].as_str().unwrap()).exists(), "{p}");
        }
    }
    // keep_runs = 0: nothing is kept, and nothing listed.
    std::fs::write(cfg.join("config.toml"), "[restart]\nkeep_runs = 0\n").unwrap();
    let r = t.ok(&["restart", &id]);
    assert_eq!(r["attempt"], 5);
    assert_eq!(r["previous_runs"], json!([]));
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0);
    // Every answer that lists runs says so alike once the job has run
    // before, none kept or not: `wait` left the field out.
    assert_eq!(t.ok(&["wait", &id])["previous_runs"], json!([]));
    assert_eq!(t.ok(&["status", &id])["previous_runs"], json!([]));
    let retried = t.ok(&["run", "--retry", "1", "--", "false"]);
    assert_eq!(retried["attempt"], 2, "{retried}");
    assert_eq!(retried["previous_runs"], json!([]), "{retried}");
    // A first run has none to list.
    let first = t.ok(&["run", "--", "true"]);
    assert!(first.get("previous_runs").is_none(), "{first}");
}

/// A run pruned by the keep count with a file system mounted inside it
/// or on it (a bind mount keeps its device number) stays whole, and what
/// the mount shows is never touched: pruned by path, it was emptied,
/// outside the root. Once unmounted, the next archive removes it.
#[test]
fn a_run_with_a_mount_inside_is_not_pruned() {
    let t = TempRoot::new();
    let cfg = t.base.join("config").join("agent-exec");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), "[restart]\nkeep_runs = 1\n").unwrap();
    let precious = t.base.join("precious");
    std::fs::create_dir_all(&precious).unwrap();
    std::fs::write(precious.join("gold"), "gold").unwrap();
    // Inside the run, and the run's directory itself a mount point.
    for inside in ["runs/1/mnt", "runs/1"] {
        let id = id_of(&t.ok(&["run", "--", "true"]));
        t.ok(&["restart", &id]);
        let Some(mount) = support::Mount::bind(&precious, &t.job_dir(&id).join(inside)) else {
            return;
        };
        let v = t.ok(&["restart", &id]);
        assert_eq!(
            (&v["state"], &v["attempt"]),
            (&json!("exited"), &json!(3)),
            "{v}"
        );
        assert_eq!(attempts(&v), vec![2]);
        assert_eq!(
            std::fs::read_to_string(precious.join("gold"))
                .ok()
                .as_deref(),
            Some("gold"),
            "files under the mount at {inside} were removed"
        );
        // Unmounted, the run left behind goes at the next archive: a run
        // whose removal stopped once stayed for good.
        drop(mount);
        t.ok(&["restart", &id]);
        assert!(!t.job_dir(&id).join("runs/1").exists());
        assert!(precious.join("gold").exists());
    }
}

#[test]
fn keep_runs_of_a_config_given_with_run_holds_for_its_restarts() {
    // restart has no --config: what the one named at `run` says about
    // earlier runs stays with the job; the default config says nothing.
    let t = TempRoot::new();
    let cfg = t.base.join("mine.toml");
    std::fs::write(&cfg, "[restart]\nkeep_runs = 1\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let id = id_of(&t.ok(&["run", "--config", cfg, "--", "echo hi"]));
    let mut last = Value::Null;
    for _ in 0..3 {
        last = t.ok(&["restart", &id]);
    }
    assert_eq!(last["attempt"], 4);
    assert_eq!(attempts(&last), vec![3], "{last}");
    // Without --config the default (5) holds.
    let other = id_of(&t.ok(&["run", "--", "echo hi"]));
    for _ in 0..3 {
        last = t.ok(&["restart", &other]);
    }
    assert_eq!(attempts(&last), vec![1, 2, 3]);
}

/// A restart that died while keeping the previous run (the run linked
/// under runs/1 whole, the job's state not yet moved on; or, from an
/// older version, a log already moved there) loses nothing: readers still
/// see the run's output, and the next restart keeps it, never empties it.
#[test]
fn a_restart_that_died_while_keeping_the_run_loses_nothing() {
    let t = TempRoot::new();
    let script = "echo one; echo uno >&2";
    // Died after the kept run was whole: links under runs/1 (and a
    // staging directory of an even earlier attempt).
    let id = id_of(&t.ok(&["run", "--", script]));
    let dir = t.job_dir(&id);
    let run1 = dir.join("runs/1");
    std::fs::create_dir_all(&run1).unwrap();
    std::fs::create_dir_all(dir.join("runs/.1.new")).unwrap();
    for f in ["stdout.log", "stderr.log", "state.json"] {
        std::fs::hard_link(dir.join(f), run1.join(f)).unwrap();
    }
    assert_eq!(t.ok(&["tail", &id])["stdout"], "one\n");
    let r = t.ok(&["restart", &id]);
    assert_eq!(attempts(&r), vec![1], "{r}");
    kept_one_uno(&run1);
    assert!(!dir.join("runs/.1.new").exists());
    // The new run's logs are its own, not the kept run's emptied.
    assert_eq!(r["stdout"], "one\n");
    let r = t.ok(&["restart", &id]);
    assert_eq!(attempts(&r), vec![1, 2], "{r}");
    assert_eq!(
        std::fs::read_to_string(run1.join("stdout.log")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runs/2/stdout.log")).unwrap(),
        "one\n"
    );
    // Died half-way through an older version's moves: stdout.log is in
    // runs/1 already, stderr.log still in the job directory.
    let id = id_of(&t.ok(&["run", "--", script]));
    let dir = t.job_dir(&id);
    std::fs::create_dir_all(dir.join("runs/1")).unwrap();
    std::fs::rename(dir.join("stdout.log"), dir.join("runs/1/stdout.log")).unwrap();
    let r = t.ok(&["restart", &id]);
    assert_eq!(attempts(&r), vec![1], "{r}");
    assert_eq!(
        std::fs::read_to_string(dir.join("runs/1/stdout.log")).unwrap(),
        "one\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("runs/1/stderr.log")).unwrap(),
        "uno\n"
    );
}

/// Run directory `run` holds the logs of `echo one; echo uno >&2`.
fn kept_one_uno(run: &Path) {
    let read = |f: &str| std::fs::read_to_string(run.join(f)).unwrap();
    assert_eq!(
        (read("stdout.log"), read("stderr.log")),
        ("one\n".into(), "uno\n".into())
    );
}

/// A restart killed after it kept the run and made the next run's empty
/// logs, before it wrote the next state: the job still reads as the
/// ended run, whose logs are under runs/1 now. `tail` reads them there
/// (as `wait` does), and the next restart finishes the keep: it used to
/// take the fresh empty logs for someone else's and refuse every restart
/// from then on (`unsafe_path`).
#[test]
fn a_restart_that_died_after_making_the_next_logs_does_not_wedge_the_job() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "echo one; echo uno >&2"]));
    let dir = t.job_dir(&id);
    let run1 = dir.join("runs/1");
    std::fs::create_dir_all(&run1).unwrap();
    for f in ["stdout.log", "stderr.log", "state.json"] {
        std::fs::hard_link(dir.join(f), run1.join(f)).unwrap();
    }
    for f in ["stdout.log", "stderr.log"] {
        std::fs::remove_file(dir.join(f)).unwrap();
        std::fs::write(dir.join(f), "").unwrap();
    }
    let tail = t.ok(&["tail", &id]);
    assert_eq!(
        (&tail["stdout"], &tail["stderr"]),
        (&json!("one\n"), &json!("uno\n")),
        "{tail}"
    );
    assert_eq!(t.ok(&["wait", &id])["stdout"], "one\n");
    let r = t.ok(&["restart", &id]);
    assert_eq!(attempts(&r), vec![1], "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["stdout"], "one\n", "{r}");
    kept_one_uno(&run1);
    let r = t.ok(&["restart", &id]);
    assert_eq!(attempts(&r), vec![1, 2], "{r}");
}

#[test]
fn restart_of_a_created_job_starts_it() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["create", "--", "echo deferred"]));
    let r = t.ok(&["restart", &id]);
    assert_eq!(r["state"], "exited");
    assert_eq!(r["stdout"], "deferred\n");
    assert_eq!(r["attempt"], 1);
    assert_eq!(r["previous_runs"], json!([]));
    // Once started, `start` is refused as before; restart runs it again.
    let (_, e) = t.err(&["start", &id]);
    assert_eq!(e["error"]["code"], "invalid_state");
    assert_eq!(t.ok(&["restart", &id])["attempt"], 2);
}

#[test]
fn restart_reuses_the_stored_env_values() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--env",
        "SECRET=s3cr3t",
        "--mask",
        "SECRET",
        "--",
        "echo $SECRET",
    ]);
    assert_eq!(v["stdout"], "s3cr3t\n");
    let r = t.ok(&["restart", &id_of(&v)]);
    assert_eq!(r["stdout"], "s3cr3t\n");
    assert_eq!(r["env_vars"], json!(["SECRET=***"]));
}

#[test]
fn retry_reruns_a_failing_job_until_it_succeeds() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let events = t.base.join("events.ndjson");
    let v = t.ok(&[
        "run",
        "--retry",
        "3",
        "--retry-delay",
        "100ms",
        "--notify-file",
        events.to_str().unwrap(),
        "--until",
        "30",
        "--",
        &counting(&counter, 3, 1),
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["exit_code"], 0, "the last run's result: {v}");
    assert_eq!(v["stdout"], "run3\n");
    let id = id_of(&v);
    let s = t.ok(&["status", &id]);
    assert_eq!(s["attempt"], 3);
    assert_eq!(attempts(&s), vec![1, 2]);
    // run's own answer lists them too, as status does.
    assert_eq!(v["attempt"], 3, "{v}");
    assert_eq!(v["previous_runs"], s["previous_runs"], "{v}");
    for (i, p) in s["previous_runs"].as_array().unwrap().iter().enumerate() {
        assert_eq!(p["exit_code"], 1);
        let out = std::fs::read_to_string(p["stdout_log_path"].as_str().unwrap()).unwrap();
        assert_eq!(out, format!("run{}\n", i + 1));
    }
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "3");
    // job.finished once, for the last run.
    t.settle();
    let lines: Vec<Value> = std::fs::read_to_string(&events)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["exit_code"], 0);
    assert_eq!(lines[0]["event_type"], "job.finished");
    assert_eq!(lines[0]["attempt"], 3, "the event names the last attempt");
}

#[test]
fn retry_gives_up_after_n_and_skips_killed_runs() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let v = t.ok(&["run", "--retry", "2", "--", &counting(&counter, 0, 7)]);
    assert_eq!(v["exit_code"], 7);
    assert_eq!(attempts(&v), vec![1, 2], "{v}");
    let s = t.ok(&["status", &id_of(&v)]);
    assert_eq!(s["attempt"], 3, "1 run + 2 retries");
    assert_eq!(attempts(&s), vec![1, 2]);
    // Killed: not retried.
    let id = id_of(&t.ok(&["run", "--retry", "3", "--no-wait", "--", "sleep", "30"]));
    assert_eq!(t.ok(&["kill", &id])["state"], "killed");
    let w = t.wait_done(&id);
    assert_eq!(w["state"], "killed");
    assert_eq!(w["attempt"], 1);
    // Timed out: not retried either.
    let v = t.ok(&[
        "run",
        "--retry",
        "3",
        "--timeout",
        "200ms",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(v["timed_out"], true, "{v}");
    assert_eq!(t.ok(&["status", &id_of(&v)])["attempt"], 1);
    // A first run has no earlier ones: run's answer leaves the field out.
    assert!(v.get("previous_runs").is_none(), "{v}");
}

/// A job that answers TERM with an exit code of its own (a server, a test
/// runner) was stopped on purpose by `kill` or `restart`: not retried.
#[test]
fn a_stopped_job_that_exits_non_zero_on_term_is_not_retried() {
    let t = TempRoot::new();
    let script = "trap 'exit 143' TERM; echo ready; sleep 30 & wait";
    let id = id_of(&t.ok(&["run", "--retry", "2", "--no-wait", "--", script]));
    let w = t.ok(&["wait", "--output", "ready", "--until", "30", &id]);
    assert!(w["matched"].is_object(), "{w}");
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "exited", "{k}");
    assert_eq!(k["exit_code"], 143);
    let s = t.wait_done(&id);
    assert_eq!(
        (s["state"].as_str(), s["attempt"].as_u64()),
        (Some("exited"), Some(1)),
        "{s}"
    );
    // restart stops it with TERM, which ends it at once (no SIGKILL
    // after the grace, no extra attempt), then runs it again.
    let id = id_of(&t.ok(&["run", "--retry", "2", "--no-wait", "--", script]));
    t.ok(&["wait", "--output", "ready", "--until", "30", &id]);
    let r = t.ok(&["restart", "--kill-after", "20s", "--no-wait", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    let prev = &r["previous_runs"][0];
    assert_eq!(
        (prev["state"].as_str(), prev["exit_code"].as_i64()),
        (Some("exited"), Some(143)),
        "{r}"
    );
    t.ok(&["kill", "--signal", "KILL", &id]);
}

/// A signal the job handles and lives on (USR1) is not a stop: the run
/// that later fails on its own is retried as ever.
#[test]
fn a_handled_signal_does_not_stop_retries() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); echo $((n+1)) > {c}; [ $n -ge 1 ] && exit 0; \
         trap 'echo usr1' USR1; echo ready; while [ ! -e {c}.go ]; do sleep 0.01; done; exit 5",
        c = counter.display()
    );
    let id = id_of(&t.ok(&["run", "--retry", "1", "--no-wait", "--", &script]));
    t.ok(&["wait", "--output", "ready", "--until", "30", &id]);
    let k = t.ok(&["kill", "--signal", "USR1", "--no-wait", &id]);
    assert_eq!(k["signal"], "SIGUSR1");
    t.ok(&["wait", "--output", "usr1", "--until", "30", &id]);
    std::fs::write(format!("{}.go", counter.display()), "").unwrap();
    let w = t.wait_done(&id);
    assert_eq!(
        (w["state"].as_str(), w["exit_code"].as_i64()),
        (Some("exited"), Some(0)),
        "{w}"
    );
    assert_eq!(w["attempt"], 2, "{w}");
}

/// A restart of a job defined with `--retry` reruns the failures too; its
/// answer describes the last of them, earlier runs and all (not the list
/// as it stood when the restart launched).
#[test]
fn restart_answer_lists_the_runs_before_the_one_it_describes() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let v = t.ok(&["run", "--retry", "1", "--", &counting(&counter, 0, 4)]);
    assert_eq!(v["attempt"], 2);
    let r = t.ok(&["restart", &id_of(&v)]);
    assert_eq!(r["type"], "restart");
    assert_eq!(r["attempt"], 4, "restart + its retry: {r}");
    assert_eq!(r["exit_code"], 4);
    assert_eq!(attempts(&r), vec![1, 2, 3], "{r}");
    assert_eq!(attempts(&t.ok(&["status", &id_of(&v)])), vec![1, 2, 3]);
}

#[test]
fn kill_during_the_retry_delay_ends_the_job_killed() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let events = t.base.join("events.ndjson");
    // The first run fails at once; the job then waits out the delay as
    // attempt 2 (running, its stand-in leading the group).
    let id = in_retry_delay(
        &t,
        &counter,
        ["5", "60s"],
        &["--notify-file", events.to_str().unwrap()],
    );
    let t0 = Instant::now();
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "killed", "{k}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    let s = t.ok(&["status", &id]);
    assert_eq!(s["state"], "killed");
    assert_eq!(s["attempt"], 2);
    assert_eq!(attempts(&s), vec![1]);
    // No run after the kill; job.finished once, saying killed.
    t.settle();
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "1");
    let text = std::fs::read_to_string(&events).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["state"], "killed");
    // Attempt 2 never ran: no start and no duration (not 0 ms), as for a
    // queued job killed — in status, list, the table and job.finished.
    for (what, v) in [
        ("status", &s),
        ("list", &t.ok(&["list"])["jobs"][0]),
        ("job.finished", &lines[0]),
    ] {
        assert!(
            v.get("started_at").unwrap_or(&Value::Null).is_null(),
            "{what}: {v}"
        );
        assert!(v.get("duration_ms").is_none(), "{what}: {v}");
    }
    assert!(t.state(&id)["result"]["duration_ms"].is_null());
    let table = t.out(&["status", "--table", &id]).stdout;
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[1], row[3]), ("killed", "-"), "{table}");
    // The logs of the run that never came exist, empty (D41).
    for f in ["stdout.log", "stderr.log"] {
        assert_eq!(std::fs::read(t.job_dir(&id).join(f)).unwrap(), b"");
    }
}

/// A kill that comes between two runs of a fast-failing `--retry` job
/// (the root just ended, the next not yet recorded) still ends it: it
/// signalled nothing, answered running after 3 s, and the job retried on
/// (about 1 kill in 4 was lost so). Each is timing: many rounds.
#[test]
fn kill_between_two_retry_runs_is_never_lost() {
    let t = TempRoot::new();
    for round in 0..12 {
        let id = id_of(&t.ok(&["run", "--no-wait", "--retry", "100000", "--", "false"]));
        // Well into its retries.
        let until = Instant::now() + Duration::from_secs(20);
        while t.ok(&["status", &id])["attempt"].as_u64().unwrap_or(0) < 3 {
            assert!(Instant::now() < until, "no retries");
        }
        let k = t.ok(&["kill", &id]);
        assert_ne!(k["state"], "running", "round {round}: {k}");
        let a = t.ok(&["status", &id]);
        std::thread::sleep(Duration::from_millis(100));
        let b = t.ok(&["status", &id]);
        assert_ne!(b["state"], "running", "round {round}: {b}");
        assert_eq!(a["attempt"], b["attempt"], "round {round}: it ran on");
    }
}

/// The same for `restart`'s stop: one new run, at once (it waited out
/// --kill-after's SIGKILL, or failed after it).
#[test]
fn restart_between_two_retry_runs_stops_the_old_series_at_once() {
    let t = TempRoot::new();
    for round in 0..8 {
        let id = id_of(&t.ok(&["run", "--no-wait", "--retry", "100000", "--", "false"]));
        let until = Instant::now() + Duration::from_secs(20);
        while t.ok(&["status", &id])["attempt"].as_u64().unwrap_or(0) < 3 {
            assert!(Instant::now() < until, "no retries");
        }
        let t0 = Instant::now();
        let v = t.ok(&["restart", "--kill-after", "5", "--no-wait", &id]);
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "round {round}: the stop waited for --kill-after: {v}"
        );
        t.ok(&["kill", "--signal", "KILL", &id]);
        t.wait_done(&id);
    }
}

/// A job between `--retry` runs has its full.log, as every job does
/// (D41), and still has it once killed there: the kept run took the old
/// one and no new one was made.
#[test]
fn a_job_between_retry_runs_has_its_full_log() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&[
        "run",
        "--retry",
        "2",
        "--retry-delay",
        "60s",
        "--no-wait",
        "--",
        "sh",
        "-c",
        "echo o; exit 3",
    ]));
    in_the_retry_delay(&t, &id);
    let full = t.job_dir(&id).join("full.log");
    assert!(full.exists(), "no full.log between runs");
    let v = t.ok(&["kill", &id]);
    assert_eq!(v["state"], "killed", "{v}");
    assert!(full.exists(), "no full.log once killed between runs");
    assert!(t.job_dir(&id).join("runs/1/full.log").exists());
}

#[test]
fn restart_during_the_retry_delay_runs_at_once() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let id = id_of(&t.ok(&[
        "run",
        "--retry",
        "1",
        "--retry-delay",
        "60s",
        "--no-wait",
        "--",
        // Fails once, then succeeds.
        &counting(&counter, 2, 1),
    ]));
    in_the_retry_delay(&t, &id);
    let t0 = Instant::now();
    let r = t.ok(&["restart", &id]);
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the restart did not wait out the delay"
    );
    assert_eq!(r["attempt"], 3);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["stdout"], "run2\n", "{r}");
    assert_eq!(attempts(&r), vec![1, 2]);
    assert_eq!(r["previous_runs"][1]["state"], "killed");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "2");
}

/// A job that printed `first` and sleeps, a `-v` waiter (`wait_args`,
/// then the id) blocked on it, and a `restart` while it waits: the
/// restart's answer and the waiter's document, which came without
/// hanging.
fn restart_under_a_waiter(wait_args: &[&str]) -> (TempRoot, String, Value, Value) {
    let t = TempRoot::new();
    let id = t.start_job(&["echo first; sleep 30"]);
    t.ok(&["wait", "--output", "first", "--until", "30", &id]);
    let mut args = vec!["wait"];
    args.extend_from_slice(wait_args);
    args.extend(["--until", "30", &id]);
    let (r, w) = restart_while_waiting(&t, &args, &id);
    (t, id, r, w)
}

/// Start `agent-exec -v <args>` (a wait), restart job `id` once it says
/// it is waiting, and return the restart's answer and the waiter's
/// document, which must come without hanging.
fn restart_while_waiting(t: &TempRoot, args: &[&str], id: &str) -> (Value, Value) {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    let mut waiter = t
        .cmd(&all)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The waiter says (at -v) when it starts waiting.
    let mut err = BufReader::new(waiter.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting up to") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "waiter ended early");
    }
    let r = t.ok(&["restart", "--no-wait", id]);
    let t0 = Instant::now();
    let mut out = String::new();
    waiter
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    waiter.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the wait did not hang"
    );
    (r, serde_json::from_str(out.trim()).unwrap())
}

#[test]
fn a_wait_blocked_during_a_restart_answers_with_its_run() {
    let (t, id, r, w) = restart_under_a_waiter(&[]);
    assert_eq!(r["attempt"], 2);
    assert_eq!(w["type"], "wait");
    assert_eq!(w["attempt"], 1, "the run it waited on: {w}");
    assert_eq!(w["state"], "killed");
    assert_eq!(w["signal"], "SIGTERM");
    assert_eq!(w["stdout"], "first\n");
    // The job itself runs on.
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", &id]);
}

#[test]
fn shell_completion_sees_a_restarted_job_running() {
    let t = TempRoot::new();
    // Ends at once the first time; runs on once the gate exists.
    let gate = t.base.join("gate");
    let cmd = format!("if [ -e {} ]; then sleep 30; fi", gate.display());
    let id = id_of(&t.ok(&["run", "--", &cmd]));
    let complete = |cmd: &str| t.out(&["__complete", "--", cmd, ""]).stdout;
    // Learned (and cached) as terminal: a delete candidate, not a kill one.
    assert!(complete("delete").contains(&id));
    assert!(!complete("kill").contains(&id));
    std::fs::write(&gate, "").unwrap();
    let r = t.ok(&["restart", "--no-wait", &id]);
    assert_eq!(r["state"], "running");
    assert!(complete("kill").contains(&id), "not hidden by the cache");
    assert!(!complete("delete").contains(&id));
    t.ok(&["kill", &id]);
}

#[test]
fn a_readiness_wait_blocked_during_a_restart_answers_with_its_run() {
    let (t, id, _, w) = restart_under_a_waiter(&["--output", "never printed"]);
    assert_eq!(w["attempt"], 1, "{w}");
    assert_eq!(w["state"], "killed");
    assert!(w.get("matched").is_none(), "{w}");
    assert_eq!(w["stdout"], "first\n");
    t.ok(&["kill", &id]);
}

#[test]
fn a_follow_during_a_restart_ends_with_its_run() {
    let t = TempRoot::new();
    let id = t.start_job(&["echo first; sleep 30"]);
    let mut follower = t
        .cmd(&["tail", "--follow", "--until", "30", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(follower.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (v["type"].as_str(), v["data"].as_str()),
        (Some("output"), Some("first\n"))
    );
    t.ok(&["restart", "--no-wait", &id]);
    let t0 = Instant::now();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    follower.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "the follow did not hang"
    );
    let end: Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert_eq!(end["type"], "end", "{rest}");
    assert_eq!(end["state"], "killed", "{end}");
    t.ok(&["kill", &id]);
}

#[test]
fn bad_restart_requests() {
    let t = TempRoot::new();
    let (_, e) = t.err(&["restart", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"]);
    assert_eq!(e["error"]["code"], "job_not_found");
    let (code, e) = t.err(&["restart", "--signal", "NOPE", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"]);
    assert_eq!(code, 2);
    assert_eq!(e["error"]["code"], "invalid_signal");
    let (code, e) = t.err(&["run", "--retry-delay", "soon", "--", "true"]);
    assert_eq!(code, 2);
    assert_eq!(e["error"]["code"], "invalid_duration");
}

/// `--retry-delay` pauses between `--retry` runs: without `--retry` it
/// would do nothing, so it is refused (as `--parallel` without
/// `--queue`), by `run` and `create` and by MCP's `run`, before any job
/// is made.
#[test]
fn retry_delay_needs_retry() {
    let t = TempRoot::new();
    for cmd in ["run", "create"] {
        let (code, e) = t.err(&[cmd, "--retry-delay", "1s", "--", "true"]);
        assert_eq!(code, 2, "{cmd}: {e}");
        assert_eq!(e["error"]["code"], "usage_error", "{cmd}: {e}");
        assert_eq!(e["error"]["message"], "--retry-delay needs --retry");
    }
    assert_eq!(t.ok(&["list", "--all"])["jobs"], json!([]));
    let v = t.ok(&["run", "--retry", "1", "--retry-delay", "10ms", "--", "true"]);
    assert_eq!(v["exit_code"], 0);
    let mut mcp = Child(
        t.cmd(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut input = mcp.0.stdin.take().unwrap();
    let msgs = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run", "arguments": {"command": ["true"], "retry_delay": "1s"}}}),
    ];
    for m in msgs {
        writeln!(input, "{m}").unwrap();
    }
    drop(input);
    let mut text = String::new();
    mcp.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let r: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["id"] == 2)
        .unwrap_or_else(|| panic!("no answer: {text}"));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let e = &r["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_request", "{r}");
    assert_eq!(e["message"], "retry_delay needs retry", "{r}");
    assert_eq!(
        t.ok(&["list", "--all"])["jobs"].as_array().unwrap().len(),
        1
    );
}

/// Run `args` to its end, or kill it after 20 s (a spin or a hang is a
/// failure, not a stuck test run); its one JSON document.
fn err_within(t: &TempRoot, args: &[&str]) -> Value {
    let mut c = t
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    while c.try_wait().unwrap().is_none() {
        if Instant::now() >= end {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{args:?} did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    assert_eq!(v["ok"], false, "{v}");
    v
}

/// A `runs/<attempt>/` that agent-exec did not make (left by hand, or
/// planted) is refused: restart used to take it for a kept run whose
/// archive crashed half-way, unlink the job's own logs and list the
/// stranger's file as the run's.
#[test]
fn a_run_directory_not_made_by_agent_exec_is_refused_and_nothing_lost() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "sh", "-c", "echo ORIGINAL; exit 1"]));
    let run1 = t.job_dir(&id).join("runs/1");
    std::fs::create_dir_all(&run1).unwrap();
    std::fs::write(run1.join("stdout.log"), "stale\n").unwrap();
    let v = err_within(&t, &["restart", &id]);
    assert_eq!(v["error"]["code"], "unsafe_path", "{v}");
    assert_eq!(t.read(&id, "stdout.log"), "ORIGINAL\n");
    let st = t.ok(&["status", &id]);
    assert_eq!(
        (st["attempt"].as_u64(), st["exit_code"].as_i64()),
        (Some(1), Some(1)),
        "{st}"
    );
    // Without the stranger's file, the run is kept there as usual.
    std::fs::remove_file(run1.join("stdout.log")).unwrap();
    let v = t.ok(&["restart", &id]);
    assert_eq!(v["attempt"], 2, "{v}");
    assert_eq!(
        std::fs::read_to_string(run1.join("stdout.log")).unwrap(),
        "ORIGINAL\n"
    );
}

#[test]
fn a_lock_that_is_a_symlink_is_unsafe_path_for_restart_and_start() {
    let t = TempRoot::new();
    let target = t.base.join("elsewhere");
    std::fs::write(&target, "not a lock").unwrap();
    let ran = id_of(&t.ok(&["run", "--", "true"]));
    let made = id_of(&t.ok(&["create", "--", "true"]));
    for id in [&ran, &made] {
        let lock = t.job_dir(id).join("lock");
        let _ = std::fs::remove_file(&lock);
        std::os::unix::fs::symlink(&target, &lock).unwrap();
    }
    for args in [
        ["restart", ran.as_str()],
        ["restart", &made],
        ["start", &made],
    ] {
        let v = err_within(&t, &args);
        assert_eq!(v["error"]["code"], "unsafe_path", "{args:?}: {v}");
        assert_eq!(v["error"]["retryable"], false, "{v}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "not a lock");
    // Nothing ran: the finished job is still its first run.
    assert_eq!(t.ok(&["status", &ran])["attempt"], 1);
}

#[test]
fn a_start_that_loses_to_a_launch_in_progress_may_retry() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["create", "--", "true"]));
    // Stand in for the winner of a race, mid-launch: the job's lock
    // exists and is held, the job still reads created.
    let lock = t.job_dir(&id).join("lock");
    let mut holder = std::process::Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .args(["sh", "-c", "echo held; cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    for args in [["start", id.as_str()], ["restart", &id]] {
        let v = err_within(&t, &args);
        assert_eq!(v["error"]["code"], "invalid_state", "{args:?}: {v}");
        assert_eq!(v["error"]["retryable"], true, "{args:?}: {v}");
    }
    // The winner gone, the same call gets a settled answer.
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let v = err_within(&t, &["start", &id]);
    assert_eq!(v["error"]["code"], "invalid_state", "{v}");
    assert_eq!(v["error"]["retryable"], false, "{v}");
}

// ---------------------------------------------------------------------------
// HTTP and MCP
// ---------------------------------------------------------------------------

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request without a body: (status, JSON body).
fn http(port: u16, method: &str, path: &str) -> (u16, Value) {
    support::http_json(port, method, path, "")
}

#[test]
fn restart_over_http() {
    let t = TempRoot::new();
    let server = t.serve();
    let port = server.port;
    let id = id_of(&t.ok(&["run", "--", "echo http"]));
    let (status, v) = http(port, "POST", &format!("/restart/{id}?until=10"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["type"], "restart");
    assert_eq!(v["attempt"], 2);
    assert_eq!(v["stdout"], "http\n");
    assert_eq!(v["previous_runs"][0]["attempt"], 1);
    let (status, _) = http(port, "GET", &format!("/restart/{id}"));
    assert_eq!(status, 405);
    let (status, v) = http(port, "POST", &format!("/restart/{id}?signal=NOPE"));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_signal"))
    );
    let (status, v) = http(port, "POST", &format!("/restart/{id}?bogus=1"));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_request"))
    );
    // A running job over HTTP: stopped, then run again.
    let id = t.start_job(&["sleep", "30"]);
    let (status, v) = http(
        port,
        "POST",
        &format!("/restart/{id}?no_wait=true&kill_after=1"),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "running");
    assert_eq!(v["previous_runs"][0]["signal"], "SIGTERM");
    t.ok(&["kill", &id]);
}

#[test]
fn retry_over_http() {
    let t = TempRoot::new();
    let server = t.serve();
    let port = server.port;
    let counter = t.base.join("count");
    let body = json!({
        "command": [counting(&counter, 3, 1)],
        "retry": 3,
        "retry_delay": "50ms",
        "until": 30,
    });
    let (status, v) = support::http_json(port, "POST", "/exec", &body.to_string());
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(0)),
        "{v}"
    );
    assert_eq!(v["attempt"], 3, "{v}");
    assert_eq!(attempts(&v), vec![1, 2], "{v}");
    // A number is seconds, as `until`; and the bad forms are refused.
    let body = json!({"command": ["sh", "-c", "exit 4"], "retry": 1, "retry_delay": 0.05});
    let (status, v) = support::http_json(port, "POST", "/exec", &body.to_string());
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["attempt"].as_u64(), v["exit_code"].as_i64()),
        (Some(2), Some(4)),
        "{v}"
    );
    for (body, code) in [
        (
            json!({"command": ["true"], "retry_delay": 1}),
            "invalid_request",
        ),
        (
            json!({"command": ["true"], "retry": 1, "retry_delay": -1}),
            "invalid_duration",
        ),
        (
            json!({"command": ["true"], "retry": 0, "retry_delay": -1}),
            "invalid_duration",
        ),
        (json!({"command": ["true"], "retry": -1}), "invalid_request"),
        (
            json!({"command": ["true"], "retry": 5_000_000_000u64}),
            "invalid_request",
        ),
    ] {
        let (status, v) = support::http_json(port, "POST", "/exec", &body.to_string());
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some(code)),
            "{body}: {v}"
        );
    }
    // retry 0 is given: its delay is taken, and nothing is retried, as
    // `run --retry 0 --retry-delay 1s` (it was refused as without retry).
    let body = json!({"command": ["sh", "-c", "exit 3"], "retry": 0, "retry_delay": "1s"});
    let (status, v) = support::http_json(port, "POST", "/exec", &body.to_string());
    assert_eq!(
        (status, v["attempt"].as_u64(), v["exit_code"].as_i64()),
        (200, Some(1), Some(3)),
        "{v}"
    );
}

#[test]
fn restart_over_mcp() {
    let t = TempRoot::new();
    let mut mcp = Child(
        t.cmd(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut input = mcp.0.stdin.take().unwrap();
    let mut output = BufReader::new(mcp.0.stdout.take().unwrap());
    let mut ask = |id: u64, method: &str, params: Value| -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(input, "{msg}").unwrap();
        input.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(output.read_line(&mut line).unwrap() > 0, "mcp ended");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == json!(id) {
                return v;
            }
        }
    };
    ask(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let tools = ask(2, "tools/list", json!({}));
    let restart = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "restart")
        .cloned()
        .expect("a restart tool");
    let props = &restart["inputSchema"]["properties"];
    assert!(
        props["job_id"].is_object()
            && props["signal"].is_object()
            && props["kill_after"].is_object()
    );
    let id = id_of(&t.ok(&["run", "--", "echo mcp"]));
    let r = ask(
        3,
        "tools/call",
        json!({"name": "restart", "arguments": {"job_id": id, "until": 10}}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    let doc = &r["result"]["structuredContent"];
    assert_eq!(doc["type"], "restart");
    assert_eq!(doc["attempt"], 2);
    assert_eq!(doc["stdout"], "mcp\n");
    let r = ask(
        4,
        "tools/call",
        json!({"name": "restart", "arguments": {"job_id": "01ZZZZZZZZZZZZZZZZZZZZZZZZ"}}),
    );
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["structuredContent"]["error"]["code"],
        "job_not_found"
    );
}

/// A wait for several jobs, blocked when one of them is restarted,
/// settles that job with the run it began on (as a single wait does),
/// never with the new run: `--any` answers at once with it as `first`,
/// `--all` counts it as ended. Each run waited on is itself a restart's,
/// just begun.
#[test]
fn a_wait_for_several_jobs_during_a_restart_answers_with_the_run_it_waited_on() {
    let t = TempRoot::new();
    let id = t.start_job(&["echo first; sleep 30"]);
    let other = t.start_job(&["sleep 30"]);
    let quick = t.start_job(&["true"]);
    t.ok(&["wait", &quick]);
    for round in 0..6 {
        let any = round % 2 == 0;
        // A run whose supervisor has only just started is waited on.
        let began = t.ok(&["restart", "--no-wait", &id])["attempt"]
            .as_u64()
            .unwrap();
        let mut args = vec!["wait", "--until", "30"];
        if any {
            args.extend(["--any", &id, &other]);
        } else {
            // `--all` over the restarted job and one that has ended.
            args.extend(["--all", &id, &quick]);
        }
        let (_, w) = restart_while_waiting(&t, &args, &id);
        let mine = &w["jobs"][0];
        assert_eq!(mine["job_id"], id.as_str(), "{w}");
        assert_eq!(mine["attempt"], began, "the run it waited on: {w}");
        assert_eq!(mine["state"], "killed", "{w}");
        if any {
            assert_eq!(w["first"], id.as_str(), "{w}");
            assert_eq!(w["jobs"][1]["state"], "running", "{w}");
        } else {
            assert_eq!(w["jobs"][1]["state"], "exited", "{w}");
        }
    }
    t.ok(&["kill", &id]);
    t.ok(&["kill", &other]);
}

/// While a launch holds a `created` job (a `start`, or a `restart`
/// between its runs), `send` and `kill` are refused as retryable: the
/// job is about to run. A launch is mimicked by holding the job lock,
/// as one does while it starts the supervisor.
#[test]
fn send_to_a_job_being_launched_is_retryable() {
    let t = TempRoot::new();
    let v = t.ok(&["create", "-i", "--", "cat"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    // Not being launched: not retryable.
    let (_, e) = t.err(&["send", &id, "x"]);
    assert_eq!(
        (
            e["error"]["code"].as_str(),
            e["error"]["retryable"].as_bool()
        ),
        (Some("invalid_state"), Some(false)),
        "{e}"
    );
    let dir = t.job_dir(&id);
    let held = dir.join("held");
    let mut holder = std::process::Command::new("flock")
        .arg("-x")
        .arg(dir.join("lock"))
        .arg("-c")
        .arg(format!("touch '{}'; sleep 30", held.display()))
        .spawn()
        .expect("flock(1)");
    let until = Instant::now() + Duration::from_secs(20);
    while !held.exists() {
        assert!(Instant::now() < until, "flock never held the lock");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for args in [vec!["send", &id, "x"], vec!["kill", &id]] {
        let (_, e) = t.err(&args);
        assert_eq!(
            (
                e["error"]["code"].as_str(),
                e["error"]["retryable"].as_bool()
            ),
            (Some("invalid_state"), Some(true)),
            "{args:?}: {e}"
        );
    }
    let _ = holder.kill();
    let _ = holder.wait();
}

/// Each run's match events stay with that run: `restart` keeps
/// `match_events/` in `runs/<attempt>/`, and the next run numbers its
/// own from 1 in a new one, never over the kept run's files.
#[test]
fn restart_keeps_each_runs_match_events() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let sink = "cat \"$AGENT_EXEC_EVENT_PATH\" > /dev/null";
    let v = t.ok(&[
        "run",
        "--output-pattern",
        "run",
        "--output-command",
        sink,
        "--",
        &counting(&counter, 0, 0),
    ]);
    let id = id_of(&v);
    let r = t.ok(&["restart", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    t.settle();
    let dir = t.job_dir(&id);
    let line = |p: &Path| -> String {
        let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ev: Value = serde_json::from_str(&text).unwrap();
        ev["line"].as_str().unwrap().to_string()
    };
    assert_eq!(line(&dir.join("runs/1/match_events/000001.json")), "run1");
    assert_eq!(line(&dir.join("match_events/000001.json")), "run2");
    assert!(!dir.join("match_events/000002.json").exists());
}

/// `wait --any`: a `--retry` job still running when another ends is
/// described as `wait ID` alone would, its current attempt with its
/// output (it said attempt 1, with the output of a later one).
#[test]
fn wait_any_describes_a_retrying_job_as_it_is_now() {
    let t = TempRoot::new();
    let x = id_of(&t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "50",
        "--",
        "sh",
        "-c",
        "echo out$$; sleep 0.1; exit 1",
    ]));
    let y = id_of(&t.ok(&["run", "--no-wait", "--", "sleep", "0.7"]));
    let v = t.ok(&["wait", "--any", &x, &y]);
    assert_eq!(v["first"], y.as_str(), "{v}");
    let e = &v["jobs"][0];
    assert_eq!(e["state"], "running", "{v}");
    let attempt = e["attempt"].as_u64().unwrap();
    assert!(attempt > 1, "{e}");
    let kept = e["previous_runs"].as_array().map_or(0, Vec::len);
    assert!((1..=5).contains(&kept), "{e}");
    t.ok(&["kill", &x]);
}

/// Kept runs are listed where they are now: a jobs root moved or renamed
/// since (their paths recorded under the old one) listed none of them.
#[test]
fn kept_runs_survive_a_moved_root() {
    let t = TempRoot::new();
    let id = id_of(&t.ok(&["run", "--", "echo", "hi"]));
    t.ok(&["restart", &id]);
    t.ok(&["restart", &id]);
    let moved = t.base.join("moved-root");
    std::fs::rename(&t.root, &moved).unwrap();
    let o = t.exec({
        let mut c = t.bare();
        c.arg("--root").arg(&moved).args(["status", &id]);
        c
    });
    let v = o.json();
    assert_eq!(attempts(&v), vec![1, 2], "{v}");
    for r in v["previous_runs"].as_array().unwrap() {
        for k in ["stdout_log_path", "stderr_log_path"] {
            let p = r[k].as_str().unwrap();
            assert!(p.starts_with(moved.to_str().unwrap()), "{p}");
            assert!(std::path::Path::new(p).is_file(), "{p}");
        }
    }
    std::fs::rename(&moved, &t.root).unwrap();
}

/// A job waiting out its `--retry-delay`: attempt 2 recorded, its stand-in
/// leading the group, no run started.
/// `[retries, delay]` as `--retry` and `--retry-delay` take them; `extra`
/// flags go before the command.
fn in_retry_delay(
    t: &TempRoot,
    counter: &Path,
    [retries, delay]: [&str; 2],
    extra: &[&str],
) -> String {
    let command = counting(counter, 0, 1);
    let mut args = vec![
        "run",
        "--retry",
        retries,
        "--retry-delay",
        delay,
        "--no-wait",
    ];
    args.extend_from_slice(extra);
    args.extend(["--", command.as_str()]);
    let id = id_of(&t.ok(&args));
    let s = in_the_retry_delay(t, &id);
    assert_eq!(s["state"], "running");
    id
}

/// Wait (20 s at most) until the `--retry` job `id` is between its first
/// and second run: attempt 2, its stand-in's pid on record. Its status.
fn in_the_retry_delay(t: &TempRoot, id: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let s = t.ok(&["status", id]);
        if s["attempt"] == 2 && t.state(id)["pid"].is_u64() {
            return s;
        }
        assert!(Instant::now() < until, "never reached the delay: {s}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// TERM sent to the supervisor during the retry delay ends the job at
/// once, `killed` without another run, as `kill` does. It was held back
/// until the delay was over, and then a next run was started (and
/// recorded as having run) only to be killed.
#[test]
fn term_to_the_supervisor_during_the_retry_delay_ends_the_job_at_once() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let id = in_retry_delay(&t, &counter, ["3", "60s"], &[]);
    let needle = format!("_supervise {} {id}", t.root.display());
    let sup = t.pids_matching(&needle);
    assert_eq!(sup.len(), 1, "{sup:?}");
    let t0 = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &sup[0].to_string()])
        .status()
        .unwrap()
        .success());
    let w = t.ok(&["wait", "--until", "30", &id]);
    assert!(t0.elapsed() < Duration::from_secs(10), "{w}");
    assert_eq!(w["state"], "killed", "{w}");
    assert_eq!(w["signal"], "SIGTERM", "{w}");
    assert_eq!(w["attempt"], 2);
    let s = t.ok(&["status", &id]);
    assert!(s.get("started_at").unwrap_or(&Value::Null).is_null(), "{s}");
    t.settle();
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "1");
}

/// `kill --signal STOP` during the retry delay reaches no process of the
/// job: refused (invalid_state, retryable), and the delay ends on time
/// even if the stand-in is frozen by hand. It had frozen the stand-in,
/// and with it the job, `running` until someone continued it.
#[test]
fn a_stop_signal_during_the_retry_delay_neither_lands_nor_freezes_the_job() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let id = in_retry_delay(&t, &counter, ["3", "1s"], &[]);
    let (code, e) = t.err(&["kill", "--signal", "STOP", &id]);
    assert_eq!(
        (
            code,
            e["error"]["code"].as_str(),
            e["error"]["retryable"].as_bool()
        ),
        (1, Some("invalid_state"), Some(true)),
        "{e}"
    );
    // Frozen behind our back: the delay is the supervisor's clock.
    let stand_in = t.state(&id)["pid"].as_u64().unwrap();
    assert!(Command::new("kill")
        .args(["-STOP", &stand_in.to_string()])
        .status()
        .unwrap()
        .success());
    let w = t.ok(&["wait", "--until", "30", &id]);
    assert_eq!(w["state"], "exited", "{w}");
    assert_eq!(w["attempt"], 4, "{w}");
    assert_eq!(std::fs::read_to_string(&counter).unwrap().trim(), "4");
}

/// Between keeping the ended run and its new supervisor's first record,
/// a restart holds the job lock over a `created` record of the next
/// attempt. Readers show it as being started (`running`, or `queued` for
/// a job of a queue), never `created`, which says the job was defined
/// and never started (a poller or `list --state created` took it so).
#[test]
fn a_job_being_restarted_never_reads_created() {
    let t = TempRoot::new();
    let plain = "01K00000000000000000000001";
    let queued = "01K00000000000000000000002";
    for id in [plain, queued] {
        t.fabricate(id, "created", &t.cwd, None);
        let p = t.job_dir(id).join("state.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["attempt"] = 2.into();
        std::fs::write(&p, v.to_string()).unwrap();
    }
    let p = t.job_dir(queued).join("meta.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    m["queue"] = "q".into();
    std::fs::write(&p, m.to_string()).unwrap();
    let mut holders: Vec<_> = [plain, queued]
        .iter()
        .map(|id| support::hold_flock(&t.job_dir(id).join("lock")))
        .collect();
    assert_eq!(t.ok(&["status", plain])["state"], "running");
    assert_eq!(t.ok(&["status", queued])["state"], "queued");
    let created = t.ok(&["list", "--all", "--state", "created"]);
    assert_eq!(created["jobs"], json!([]), "{created}");
    let ps = t.ok(&["ps", "--all"]);
    assert_eq!(ps["jobs"].as_array().unwrap().len(), 2, "{ps}");
    // Acting on it is still "being started", retryable.
    let (_, e) = t.err(&["kill", plain]);
    assert_eq!(e["error"]["retryable"], true, "{e}");
    for h in &mut holders {
        drop(h.stdin.take());
        h.wait().unwrap();
    }
    // With nobody behind it any more, it is a launch that was lost.
    let v = t.ok(&["status", plain]);
    assert_eq!(v["failure"]["code"], "launch_lost", "{v}");
}

/// A signal that ends a process but is not TERM, INT or HUP (USR1) ends
/// a job in its retry delay recorded as SIGTERM, as the same kill of a
/// queued job is (nothing of either runs): it read SIGUSR1.
#[test]
fn kill_usr1_during_the_retry_delay_reads_as_a_queued_jobs_kill() {
    let t = TempRoot::new();
    let counter = t.base.join("count");
    let id = in_retry_delay(&t, &counter, ["5", "60s"], &[]);
    let k = t.ok(&["kill", "--signal", "USR1", &id]);
    assert_eq!(
        (&k["state"], &k["terminated_signal"]),
        (&json!("killed"), &json!("SIGTERM")),
        "{k}"
    );
    assert_eq!(t.ok(&["status", &id])["signal"], "SIGTERM");
}

/// A restart soon after a supervisor died still gets that run's
/// `job.finished` out, once: the reader that found the loss started its
/// delivery, which then found the next run in its place and sent
/// nothing (the event was lost for good, and runs/1 said it was owed).
#[test]
fn a_restart_after_a_lost_supervisor_sends_that_runs_event() {
    for read_first in [false, true] {
        let t = TempRoot::new();
        let ev = t.base.join("ev.ndjson");
        let id = id_of(&t.ok(&[
            "run",
            "--no-wait",
            "--notify-file",
            ev.to_str().unwrap(),
            "--",
            "sleep 30",
        ]));
        let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
        Command::new("kill")
            .args(["-9", &sup.to_string()])
            .status()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !gone(sup) {
            assert!(Instant::now() < until, "the supervisor outlived SIGKILL");
            std::thread::sleep(Duration::from_millis(5));
        }
        if read_first {
            // The loss recorded by a reader, whose delivery has begun.
            assert_eq!(t.ok(&["status", &id])["state"], "failed");
        }
        let r = t.ok(&["restart", "--no-wait", &id]);
        assert_eq!(r["attempt"], 2, "{r}");
        t.ok(&["kill", &id]);
        t.ok(&["wait", &id]);
        let events = || -> Vec<(Value, Value)> {
            std::fs::read_to_string(&ev)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .map(|v| (v["attempt"].clone(), v["state"].clone()))
                .collect()
        };
        let until = Instant::now() + Duration::from_secs(10);
        while events().len() < 2 {
            assert!(
                Instant::now() < until,
                "read first {read_first}: {:?}",
                events()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut got = events();
        got.sort_by_key(|e| e.0.as_u64());
        assert_eq!(
            got,
            vec![(json!(1), json!("failed")), (json!(2), json!("killed"))],
            "read first {read_first}"
        );
        let kept = t.job_dir(&id).join("runs/1/state.json");
        let kept: Value = serde_json::from_slice(&std::fs::read(kept).unwrap()).unwrap();
        assert!(kept.get("finished_owed").is_none(), "{kept}");
    }
}

/// A `runs` that is no directory of ours (a file, a symlink) is refused
/// before the running job is stopped: the restart stopped it, then
/// failed to keep its run, and its `unsafe_path` said nothing of the stop.
#[test]
fn an_unusable_runs_is_refused_before_the_job_is_stopped() {
    let t = TempRoot::new();
    let id = t.ok(&["run", "--no-wait", "--", "sleep 30"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(t.job_dir(&id).join("runs"), "").unwrap();
    let (_, e) = t.err(&["restart", &id]);
    assert_eq!(e["error"]["code"], "unsafe_path", "{e}");
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", &id]);
}
