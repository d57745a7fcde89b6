//! create/start, status, tail, wait and kill; supervisor death; the
//! guarantees about logs at the moment a job turns terminal.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

#[test]
fn create_then_start() {
    let t = TempRoot::new();
    let envf = t.base.join("e.env");
    std::fs::write(&envf, "FROM_FILE=1\n").unwrap();
    let v = t.ok(&[
        "create",
        "--env",
        "SECRET=hunter2",
        "--mask",
        "SECRET",
        "--env-file",
        envf.to_str().unwrap(),
        "--tag",
        "later",
        "--stdin",
        "in",
        "--",
        "sh",
        "-c",
        "cat; echo \" $SECRET $FROM_FILE\"",
    ]);
    assert_eq!(v["type"], "create");
    assert_eq!(v["state"], "created");
    let id = v["job_id"].as_str().unwrap().to_string();
    assert!(v["stdout_log_path"]
        .as_str()
        .unwrap()
        .ends_with("stdout.log"));
    let meta = t.read(&id, "meta.json");
    assert!(!meta.contains("hunter2"), "secret in meta.json: {meta}");
    assert_eq!(t.state(&id)["job"]["status"], "created");
    assert!(t.state(&id)["job"].get("started_at").is_none());
    // Not yet started: kill refuses, wait times out, status says created.
    let (_, e) = t.err(&["kill", &id]);
    assert_eq!(e["error"]["code"], "invalid_state");
    assert_eq!(t.ok(&["status", &id])["state"], "created");
    let w = t.ok(&["wait", "--until", "0", &id]);
    assert_eq!(w["state"], "created");

    let s = t.ok(&["start", &id[..12]]);
    assert_eq!(s["type"], "start");
    assert_eq!(s["job_id"], id.as_str());
    assert_eq!(s["state"], "exited");
    assert_eq!(s["stdout"], "in hunter2 1\n");
    assert_eq!(s["tags"], json!(["later"]));
    assert_eq!(s["env_vars"], json!(["SECRET=***"]));
    assert!(!s.to_string().contains("hunter2\""), "{s}");
    assert!(s["elapsed_ms"].as_u64().unwrap() > 0 || s["duration_ms"].is_u64());
    let (_, e) = t.err(&["start", &id]);
    assert_eq!(e["error"]["code"], "invalid_state");
}

/// Each job has its three logs from its definition on (0.2.3 made them
/// at `create`), and after a launch that failed: full.log was made only
/// once the job ran. Not with --no-full-log, which writes none.
#[test]
fn a_job_has_its_full_log_from_its_definition() {
    let t = TempRoot::new();
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let logs = |job: &str| {
        ["stdout.log", "stderr.log", "full.log"].map(|n| t.job_dir(job).join(n).is_file())
    };
    let created = id(t.ok(&["create", "--", "echo", "hi"]));
    assert_eq!(logs(&created), [true; 3]);
    let nowhere = t.base.join("nowhere");
    let failed = id(t.ok(&["run", "--cwd", nowhere.to_str().unwrap(), "--", "true"]));
    assert_eq!(t.ok(&["status", &failed])["state"], "failed");
    assert_eq!(logs(&failed), [true; 3]);
    let none = id(t.ok(&["create", "--no-full-log", "--", "true"]));
    assert_eq!(logs(&none), [true, true, false]);
    // Started, it writes the log as ever.
    t.ok(&["start", &created]);
    let full = std::fs::read_to_string(t.job_dir(&created).join("full.log")).unwrap();
    assert!(full.ends_with("[STDOUT] hi\n"), "{full}");
}

#[test]
fn a_created_jobs_env_file_is_read_at_start() {
    // The README: `--env-file` stores the path; the file is read at
    // start, so it may be written (or fixed) after `create`.
    let t = TempRoot::new();
    let envf = t.base.join("later.env");
    let p = envf.to_str().unwrap();
    let v = t.ok(&["create", "--env-file", p, "--", "sh", "-c", "echo $LATER"]);
    assert_eq!(v["state"], "created", "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    std::fs::write(&envf, "LATER=yes\n").unwrap();
    let v = t.ok(&["start", &id]);
    assert_eq!(
        (v["state"].as_str(), v["stdout"].as_str()),
        (Some("exited"), Some("yes\n")),
        "{v}"
    );
    // Still unusable at start: the job fails then, as a launch failure.
    let v = t.ok(&["create", "--env-file", "/no/such/file.env", "--", "true"]);
    assert_eq!(v["state"], "created", "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let v = t.ok(&["start", &id]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "env_file_unreadable", "{v}");
}

#[test]
fn a_defined_job_without_a_state_file_reads_as_created() {
    // What `run` leaves for the moment before its supervisor writes
    // `running` (it never writes `created`), made to last by holding the
    // lock as its launch does: every reader sees `created`. Once the lock
    // is free with no state written, the launch died: `launch_lost`.
    // Without a lock file at all (no `run` of ours leaves that; a launch
    // of 0.2.3's that failed early does) it is a launch that never
    // completed, too.
    let t = TempRoot::new();
    let id = t.ok(&["create", "--", "echo", "late"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(t.job_dir(&id).join("state.json")).unwrap();
    let lost = |s: &Value| {
        assert_eq!(
            (&s["state"], &s["failure"]["code"]),
            (&json!("failed"), &json!("launch_lost")),
            "{s}"
        );
    };
    lost(&t.ok(&["status", &id]));
    let mut held = support::hold_flock(&t.job_dir(&id).join("lock"));
    let s = t.ok(&["status", &id]);
    assert_eq!(s["state"], "created", "{s}");
    assert_eq!(t.ok(&["list"])["jobs"][0]["state"], "created");
    assert_eq!(t.ok(&["wait", "--until", "0", &id])["state"], "created");
    held.kill().unwrap();
    held.wait().unwrap();
    lost(&t.ok(&["status", &id]));
    let (_, e) = t.err(&["start", &id]);
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    // A directory without meta.json is no job to start.
    let stray = t.job_dir("01ZZZZZZZZZZZZZZZZZZZZZZZZ");
    std::fs::create_dir_all(&stray).unwrap();
    let (_, e) = t.err(&["start", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"]);
    assert_ne!(e["error"]["code"], "invalid_state", "{e}");
}

#[test]
fn concurrent_start_starts_once() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "create",
        "--",
        "sh",
        "-c",
        "echo started >> count.txt; sleep 1",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let kids: Vec<_> = (0..8)
        .map(|_| {
            let mut c = t.cmd(&["start", "--no-wait", &id]);
            c.stdout(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut won = 0;
    for k in kids {
        let o = k.wait_with_output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        if v["ok"] == true {
            won += 1;
        } else {
            assert_eq!(v["error"]["code"], "invalid_state", "{v}");
        }
    }
    assert_eq!(won, 1);
    t.wait_done(&id);
    let count = std::fs::read_to_string(t.cwd.join("count.txt")).unwrap();
    assert_eq!(count, "started\n");
}

#[test]
fn tail_reads_the_end() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; done; echo err >&2",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let tl = t.ok(&["tail", "--tail-lines", "2", id]);
    assert_eq!(tl["type"], "tail");
    assert_eq!(tl["stdout"], "line4\nline5\n");
    assert_eq!(tl["stderr"], "err\n");
    assert_eq!(tl["stdout_total_bytes"], 30);
    assert_eq!(tl["stdout_range"], json!([18, 30]));
    // `--lines` (0.2.31's name) is the same flag.
    assert_eq!(t.ok(&["tail", "--lines", "2", id]), tl);
    assert_eq!(t.ok(&["tail", "--lines=1", id])["stdout"], "line5\n");
    t.err(&["tail", "--lines", "1", "--tail-lines", "1", id]);
    t.out(&["tail", id]).assert_order(&[
        "job_id",
        "stdout",
        "stderr",
        "encoding",
        "stdout_log_path",
        "stderr_log_path",
        "stdout_range",
        "stderr_range",
        "stdout_total_bytes",
        "stderr_total_bytes",
    ]);
    let tl = t.ok(&["tail", id, "--max-bytes", "4", "--tail-lines", "0"]);
    assert_eq!(tl["stdout"], "ne5\n");
    assert_eq!(tl["stdout_range"], json!([26, 30]));
}

#[test]
fn wait_reports_terminal_and_deadline() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 0.2; exit 3"]);
    let w = t.ok(&["wait", &id]);
    assert_eq!(w["state"], "exited");
    assert_eq!(w["exit_code"], 3);
    assert!(w["updated_at"].is_string());
    assert_eq!(w["stdout_total_bytes"], 0);
    let id = t.start_job(&["sleep", "30"]);
    let t0 = Instant::now();
    let w = t.ok(&["wait", "--until", "1", &id]);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(w["state"], "running");
    assert!(w.get("exit_code").is_none());
    assert!(w["updated_at"].is_string());
    t.ok(&["kill", "--signal", "KILL", &id]);
}

#[test]
fn kill_reaches_grandchildren() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 100 & sleep 100"]);
    let pid = t.state(&id)["pid"].as_u64().unwrap();
    // Wait until both sleeps exist in the job's process group (the login
    // shell's own short-lived subshells must not count).
    let sleeps = || {
        group_members(pid)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeps() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(sleeps(), 2, "{:?}", group_members(pid));
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "killed", "{k}");
    assert_eq!(k["signal"], "SIGTERM");
    assert_eq!(k["terminated_signal"], "SIGTERM");
    assert!(k["observed_within_ms"].is_u64());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !group_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(group_members(pid).is_empty(), "a sleep survived the kill");
}

fn group_members(pgid: u64) -> Vec<u64> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some(rest) = stat.rsplit(')').next() else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 2 && f[0] != "Z" && f[2].parse::<u64>().ok() == Some(pgid) {
            v.push(pid);
        }
    }
    v
}

#[test]
fn kill_signals_by_name_and_number() {
    let t = TempRoot::new();
    for (sig, expect) in [
        ("INT", "SIGINT"),
        ("SIGKILL", "SIGKILL"),
        ("15", "SIGTERM"),
        ("hup", "SIGHUP"),
    ] {
        let id = t.start_job(&["sleep", "30"]);
        let k = t.ok(&["kill", "--signal", sig, &id]);
        assert_eq!(k["signal"], expect);
        assert_eq!(k["state"], "killed", "{sig}: {k}");
        assert_eq!(k["terminated_signal"], expect);
    }
    let id = t.start_job(&["sleep", "30"]);
    let k = t.ok(&["kill", "--no-wait", &id]);
    assert_eq!(
        k.as_object().unwrap().len(),
        5,
        "only job_id and signal: {k}"
    );
    let w = t.wait_done(&id);
    assert_eq!(w["state"], "killed");
    // Killing a finished job sends nothing and reports its state.
    let k = t.ok(&["kill", &id]);
    assert_eq!(k["state"], "killed");
}

#[test]
fn stkflt_and_real_time_signals_are_named() {
    // D7: a signal is always a name. The real-time ones are named from
    // SIGRTMIN and SIGRTMAX as the system's shells and `kill -l` number
    // them (glibc's: SIGRTMIN is 34), whatever C library agent-exec was
    // built with (musl's starts at 35): `kill --signal RTMIN+1` sends
    // what `trap … RTMIN+1` in bash waits for.
    let t = TempRoot::new();
    let (lo, hi) = (34, libc::SIGRTMAX());
    let mut cases = vec![
        ("rtmin+1".to_string(), "SIGRTMIN+1".to_string()),
        ("SIGRTMAX".to_string(), "SIGRTMAX".to_string()),
        ("RTMAX-1".to_string(), "SIGRTMAX-1".to_string()),
        (lo.to_string(), "SIGRTMIN".to_string()),
        ((hi - 2).to_string(), "SIGRTMAX-2".to_string()),
    ];
    if cfg!(target_arch = "x86_64") {
        cases.push(("stkflt".to_string(), "SIGSTKFLT".to_string()));
        cases.push(("16".to_string(), "SIGSTKFLT".to_string()));
    }
    for (sig, expect) in &cases {
        let id = t.start_job(&["sleep", "30"]);
        let k = t.ok(&["kill", "--signal", sig, &id]);
        assert_eq!(k["signal"], expect.as_str(), "{sig}: {k}");
        assert_eq!(k["state"], "killed", "{sig}: {k}");
        assert_eq!(k["terminated_signal"], expect.as_str(), "{sig}: {k}");
    }
    // A job that a real-time signal ends by itself says so too.
    let own = format!("kill -{} $$", lo + 1);
    let v = t.ok(&["run", "--", "sh", "-c", &own]);
    assert_eq!(
        (v["state"].as_str(), v["signal"].as_str()),
        (Some("killed"), Some("SIGRTMIN+1")),
        "{v}"
    );
}

#[test]
fn term_ignoring_job_is_not_reported_killed() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "trap '' TERM; sleep 30"]);
    std::thread::sleep(Duration::from_millis(300));
    let k = t.ok(&["kill", &id]);
    assert_eq!(
        k["state"], "running",
        "kill must report what really happened: {k}"
    );
    let k = t.ok(&["kill", "--signal", "KILL", &id]);
    assert_eq!(k["state"], "killed");
    assert_eq!(k["terminated_signal"], "SIGKILL");
}

#[test]
fn dead_supervisor_becomes_failed() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut s = t.ok(&["status", &id]);
    while s["state"] == "running" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        s = t.ok(&["status", &id]);
    }
    assert_eq!(s["state"], "failed");
    assert_eq!(s["failure"]["code"], "supervisor_lost");
    assert_eq!(t.state(&id)["job"]["status"], "failed");
    let pid = t.state(&id)["pid"].as_u64().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-9", "--", &format!("-{pid}")])
        .status();
}

/// A stop signal sent to a running job's supervisor (a `kill` of the
/// wrong pid, a container's stop, a logout's HUP) is passed on to the
/// job's group and the ending recorded: the supervisor used to die of
/// it, taking the job with it by SIGKILL, `supervisor_lost`.
#[test]
fn a_stop_signal_to_the_supervisor_is_passed_on_and_recorded() {
    let t = TempRoot::new();
    let supervisor_of = |id: &str| {
        let v = t.ok(&["wait", "--output", "ready", "--until", "30", id]);
        assert_eq!(v["matched"]["line"], "ready", "{v}");
        t.state(id)["supervisor_pid"].as_u64().unwrap().to_string()
    };
    // TERM: the job dies of it, `killed`, and is not retried.
    let id = t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "2",
        "--",
        "sh",
        "-c",
        "echo ready; sleep 30",
    ])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sup = supervisor_of(&id);
    std::process::Command::new("kill")
        .args(["-TERM", &sup])
        .status()
        .unwrap();
    let v = t.wait_done(&id);
    assert_eq!(
        (
            v["state"].as_str(),
            v["signal"].as_str(),
            v["attempt"].as_u64()
        ),
        (Some("killed"), Some("SIGTERM"), Some(1)),
        "{v}"
    );
    assert!(v["failure"].is_null(), "{v}");
    // HUP reaches the job as HUP: it answers as it likes.
    let id = t.start_job(&[
        "sh",
        "-c",
        "trap 'echo got-hup; exit 7' HUP; echo ready; while :; do sleep 0.05; done",
    ]);
    let sup = supervisor_of(&id);
    std::process::Command::new("kill")
        .args(["-HUP", &sup])
        .status()
        .unwrap();
    let v = t.wait_done(&id);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(7)),
        "{v}"
    );
    assert!(t.read(&id, "stdout.log").contains("got-hup"));
}

#[test]
fn a_background_childs_words_just_after_the_end_are_kept() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "sh -c '(sleep 0.15; echo late) & echo early'"]);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "early\nlate\n", "{v}");
}

/// What the job's own process wrote before it ended is all in the logs,
/// whatever a descendant goes on writing to the other stream: the drain
/// read stdout (a background `yes`) for its whole bound, and 800 KB of
/// the stderr `seq` had written were lost, the job still `exited`. (The
/// cap keeps the flood's log small; totals count every byte.)
#[test]
fn a_flood_on_one_stream_loses_nothing_of_the_other() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--max-log-bytes",
        "1000000",
        "--",
        "yes & seq 1 300000 >&2",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let shown = format!(
        "{} {} {}",
        v["state"], v["stderr_total_bytes"], v["output_lost"]
    );
    assert_eq!(v["state"], "exited", "{shown}");
    // `seq 1 300000` writes 1,988,895 bytes.
    assert_eq!(v["stderr_total_bytes"], 1_988_895, "{shown}");
    assert!(v["output_lost"].is_null(), "{shown}");
    let log = t.read(id, "stderr.log");
    assert!(log.ends_with("\n299999\n300000\n"), "{shown}");
}

/// finished_at is when the job's own process ended, as finished_ns
/// records it, not when the drain of what its descendants went on
/// writing stopped: a 5 ms job read as finished a second later (the
/// drain's bound), in the next second.
#[test]
fn finished_at_is_the_end_of_the_process_not_of_the_drain() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--",
        "(while :; do echo x; sleep 0.05; done) & echo started",
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap();
    let st: Value = serde_json::from_str(&t.read(id, "state.json")).unwrap();
    let ns = st["finished_ns"].as_u64().unwrap();
    let at = st["finished_at"].as_str().unwrap();
    // The drain went on: the record was written a good while later.
    assert!(v["duration_ms"].as_u64().unwrap() < 900, "{v}");
    assert_eq!(
        at,
        support::ts_of_unix(ns / 1_000_000_000),
        "finished_at {at}, finished_ns {ns}"
    );
}

#[test]
fn descendants_holding_pipes_do_not_hold_the_job() {
    let t = TempRoot::new();
    let t0 = Instant::now();
    let v = t.ok(&["run", "--", "sh -c 'sleep 30 &'"]);
    assert_eq!(v["state"], "exited", "{v}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let id = v["job_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t
        .pids_matching(&format!("_supervise {} {id}", t.root.display()))
        .is_empty()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        t.pids_matching(&format!("_supervise {} {id}", t.root.display()))
            .is_empty(),
        "supervisor still alive"
    );
}

#[test]
fn large_output_is_complete_when_terminal() {
    let t = TempRoot::new();
    // 20 MB without a trailing newline at the end of the last chunk.
    let v = t.ok(&[
        "run",
        "--until",
        "60",
        "--",
        "sh",
        "-c",
        "head -c 20000000 /dev/zero | tr '\\0' 'x'",
    ]);
    assert_eq!(v["state"], "exited");
    assert_eq!(v["stdout_total_bytes"], 20_000_000);
    let id = v["job_id"].as_str().unwrap();
    let log = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
    assert_eq!(log.len(), 20_000_000);
    assert!(log.iter().all(|&b| b == b'x'));
    // 64 KiB pieces in full.log.
    let full = t.read(id, "full.log");
    let pieces = full.lines().count();
    assert_eq!(pieces, 20_000_000usize.div_ceil(64 * 1024));
    assert_eq!(v["stdout"].as_str().unwrap().len(), 65536);
    assert_eq!(v["stdout_range"], json!([0, 65536]));
}

#[test]
fn invalid_utf8_reaches_full_log_replaced_and_in_order() {
    let t = TempRoot::new();
    // A short invalid line, then 70,000 invalid bytes: their first 64 KiB
    // piece triples in size once replaced, past full.log's write buffer.
    let script = "echo before; printf 'caf\\303\\251 \\377 end\\n'; \
                  head -c 70000 /dev/zero | tr '\\0' '\\377'; echo; echo after";
    let v = t.ok(&["run", "--until", "60", "--", "sh", "-c", script]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap();
    let raw = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
    assert_eq!(raw.len(), 7 + 12 + 70_000 + 1 + 6);
    assert_eq!(raw.iter().filter(|&&b| b == 0xff).count(), 70_001);
    let full = t.read(id, "full.log");
    let lines: Vec<&str> = full
        .lines()
        .map(|l| l.split_once(" [STDOUT] ").expect("tagged line").1)
        .collect();
    let fffd = |n: usize| "\u{fffd}".repeat(n);
    assert_eq!(lines.len(), 5, "{:?}", &full[..200]);
    assert_eq!(lines[0], "before");
    assert_eq!(lines[1], "caf\u{e9} \u{fffd} end");
    assert!(lines[2] == fffd(65536), "first piece");
    assert!(lines[3] == fffd(70_000 - 65536), "second piece");
    assert_eq!(lines[4], "after");
}

#[test]
fn interleaved_streams_keep_every_line_in_order() {
    let t = TempRoot::new();
    let script = "i=0; while [ $i -lt 50000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done";
    let v = t.ok(&["run", "--until", "120", "--", "sh", "-c", script]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap();
    let out = t.read(id, "stdout.log");
    let err = t.read(id, "stderr.log");
    let full = t.read(id, "full.log");
    let (mut o, mut e) = (0usize, 0usize);
    for line in full.lines() {
        let (_, rest) = line.split_once(' ').unwrap();
        if let Some(x) = rest.strip_prefix("[STDOUT] ") {
            assert_eq!(x, format!("out{o}"));
            o += 1;
        } else if let Some(x) = rest.strip_prefix("[STDERR] ") {
            assert_eq!(x, format!("err{e}"));
            e += 1;
        } else {
            panic!("bad line {line}");
        }
    }
    assert_eq!((o, e), (50000, 50000));
    assert_eq!(out.lines().count(), 50000);
    assert_eq!(err.lines().count(), 50000);
}

#[test]
fn full_log_follows_a_running_job() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "echo first; echo second >&2; sleep 30"]);
    // Both lines must reach full.log while the job still runs (not only
    // when its buffer fills or the job ends).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut full = String::new();
    while Instant::now() < deadline {
        full = t.read(&id, "full.log");
        if full.contains("[STDOUT] first") && full.contains("[STDERR] second") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(full.contains("[STDOUT] first\n"), "{full}");
    assert!(full.contains("[STDERR] second\n"), "{full}");
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", &id]);
}

#[test]
fn a_lockless_legacy_job_whose_process_is_gone_is_not_running() {
    // 0.2.3 wrote no lock file; D12 still holds: a `running` job whose
    // recorded process is gone reads failed (supervisor_lost). One whose
    // process lives stays running.
    let t = TempRoot::new();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    // The record's start is now: the live process started with the job
    // (one that started after it would be a later process).
    let now = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap()
        .stdout;
    let now = String::from_utf8(now).unwrap().trim().to_string();
    let set_pid = |id: &str, pid: u32| {
        t.fabricate(id, "running", &t.cwd, None);
        let p = t.job_dir(id).join("state.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["pid"] = pid.into();
        v["job"]["started_at"] = now.clone().into();
        std::fs::write(&p, v.to_string()).unwrap();
    };
    let dead = "0123456789abcdef0123456789abcdef";
    let live = "fedcba9876543210fedcba9876543210";
    set_pid(dead, gone_pid);
    set_pid(live, child.id());
    let v = t.ok(&["status", dead]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    let w = t.ok(&["wait", "--until", "5", dead]);
    assert_eq!(w["state"], "failed", "{w}");
    assert_eq!(t.ok(&["status", live])["state"], "running");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(t.ok(&["status", live])["state"], "failed");
}

/// `kill` while a launch holds a created job's lock (the moment between
/// `run`'s definition and its supervisor's start) is contention, as
/// `start` says then: retryable, never "has not been started".
#[test]
fn kill_during_a_launch_is_retryable() {
    use std::io::BufRead;
    let t = TempRoot::new();
    let id = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, v) = t.err(&["kill", &id]);
    assert_eq!(
        (code, v["error"]["retryable"].as_bool()),
        (1, Some(false)),
        "{v}"
    );
    // A launch in progress: the job lock exists and is held.
    let mut hold = std::process::Command::new("flock")
        .arg("-o")
        .arg(t.job_dir(&id).join("lock"))
        .args(["sh", "-c", "echo held; cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let mut line = String::new();
    std::io::BufReader::new(hold.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    let (code, v) = t.err(&["kill", &id]);
    assert_eq!(v["error"]["code"], "invalid_state", "{v}");
    assert_eq!(
        (code, v["error"]["retryable"].as_bool()),
        (1, Some(true)),
        "{v}"
    );
    drop(hold.stdin.take());
    let _ = hold.wait();
}

/// A directory path of exactly `len` bytes under `base`, made: 200-byte
/// components, then one that makes up the rest (each within NAME_MAX).
fn path_of_len(base: &std::path::Path, len: usize) -> std::path::PathBuf {
    let mut p = base.to_path_buf();
    while len - p.as_os_str().len() > 256 {
        p.push("d".repeat(200));
    }
    let rest = len - p.as_os_str().len() - 1;
    p.push("e".repeat(rest));
    std::fs::create_dir_all(&p).unwrap();
    assert_eq!(p.as_os_str().len(), len);
    p
}

/// A job is made only under a root where every path of it fits in
/// PATH_MAX (README: at most 4022 bytes): there, all of `run`, `status`,
/// `tail` and `delete` work; one byte more, `run` and `create` refuse
/// up front with `io_error` (ENAMETOOLONG) and make nothing. A root of
/// 4060 bytes made jobs that no later command could read or delete.
#[test]
fn a_job_is_made_only_under_a_root_whose_paths_all_fit() {
    let t = TempRoot::new();
    let cmd = |root: &std::path::Path, args: &[&str]| {
        let mut c = t.bare();
        c.arg("--root").arg(root).args(args);
        t.exec(c)
    };
    let root = path_of_len(&t.base.join("fits"), 4022);
    // With match events, and a restart: its longest paths, those of a
    // kept run's records, are there to remove.
    let sink = t.base.join("matches.ndjson");
    let sink = sink.to_str().unwrap();
    let o = cmd(
        &root,
        &[
            "run",
            "--output-pattern",
            "hi",
            "--output-file",
            sink,
            "--",
            "echo",
            "hi",
        ],
    );
    let v = o.json();
    assert_eq!((o.code, &v["state"]), (0, &json!("exited")), "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let log = v["stdout_log_path"].as_str().unwrap();
    assert!(log.len() < 4096, "{}", log.len());
    assert_eq!(std::fs::read_to_string(log).unwrap(), "hi\n");
    for args in [vec!["status", &id], vec!["tail", &id]] {
        let o = cmd(&root, &args);
        assert_eq!(
            (o.code, &o.json()["ok"]),
            (0, &json!(true)),
            "{args:?}: {}",
            o.stdout
        );
    }
    // The supervisor is done before the delete (else `in_use`).
    let needles = [
        format!("_supervise {}", root.display()),
        format!("_gc {}", root.display()),
    ];
    let settle = || {
        let until = Instant::now() + Duration::from_secs(20);
        while needles.iter().any(|n| !t.pids_matching(n).is_empty()) {
            assert!(Instant::now() < until, "supervisor never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    settle();
    let o = cmd(&root, &["restart", &id]);
    assert_eq!(o.json()["state"], "exited", "{}", o.stdout);
    settle();
    assert!(root
        .join(&id)
        .join("runs/1/notification_events.ndjson")
        .exists());
    // Set aside under a name no longer than its id, the job's longest
    // paths still fit: it is removed whole (`.gone-<id>.<pid>.<n>` left
    // a kept run that neither delete nor gc could remove).
    let o = cmd(&root, &["delete", &id]);
    assert_eq!(
        (o.code, &o.json()["deleted"]),
        (0, &json!(1)),
        "{}",
        o.stdout
    );
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".spare") && n != ".gc.lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
    for len in [4023, 4060] {
        let root = path_of_len(&t.base.join(format!("over-{len}")), len);
        for args in [["run", "--", "true"], ["create", "--", "true"]] {
            let o = cmd(&root, &args);
            let e = o.json();
            assert_eq!(
                (o.code, &e["error"]["code"]),
                (1, &json!("io_error")),
                "{len} {args:?}: ok={} error={}",
                e["ok"],
                e["error"]
            );
            let msg = e["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("at most 4022 bytes") && msg.contains("(os error 36)"),
                "{len}: {msg}"
            );
        }
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "{len}");
    }
}

/// A directory where a job's `lock` should be is `unsafe_path` for
/// `restart`, as a symlink or a FIFO there is (README: "a directory or
/// other non-file, where ... a file in it should be"), not `io_error`.
#[test]
fn restart_refuses_a_lock_that_is_a_directory() {
    let t = TempRoot::new();
    let id = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    t.wait_done(&id);
    t.settle();
    let lock = t.job_dir(&id).join("lock");
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let (code, e) = t.err(&["restart", &id]);
    assert_eq!(
        (code, &e["error"]["code"]),
        (1, &json!("unsafe_path")),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["job_id"], id.as_str(), "{e}");
    assert!(lock.is_dir());
}

/// Write a 0.2.3-style job by hand: meta.json and state.json as 0.2.3
/// wrote them (no lock file, values of `create --env` in meta.json).
fn legacy_job(t: &TempRoot, id: &str, meta_extra: &str, state: &str) {
    let dir = t.job_dir(id);
    std::fs::create_dir_all(&dir).unwrap();
    let meta = format!(
        r#"{{"job":{{"id":"{id}"}},"schema_version":"0.1","command":["sh","-c","echo K=$K"],"created_at":"2026-05-02T03:56:39Z","root":"{root}","cwd":"/tmp","tags":[],"inherit_env":true,"timeout_ms":0,"kill_after_ms":0,"progress_every_ms":0,"shell_wrapper":["sh","-lc"]{meta_extra}}}"#,
        root = t.root.display()
    );
    std::fs::write(dir.join("meta.json"), meta).unwrap();
    std::fs::write(dir.join("state.json"), state).unwrap();
}

/// A job 0.2.3 created keeps its `--env` values in meta.json
/// (`env_vars_runtime`): `start` runs it with them. It ran without them
/// while its answer showed them set.
#[test]
fn a_legacy_created_job_starts_with_its_env_values() {
    let t = TempRoot::new();
    let id = "fedcba9876543210fedcba9876543210";
    legacy_job(
        &t,
        id,
        r#","env_keys":["K"],"env_vars":["K=***"],"env_vars_runtime":["K=legacyval"],"mask":["K"]"#,
        &format!(
            r#"{{"job":{{"id":"{id}","status":"created"}},"result":{{"exit_code":null,"signal":null,"duration_ms":null}},"updated_at":"2026-05-02T03:56:39Z"}}"#
        ),
    );
    // A tag set rewrites meta.json: the values stay.
    t.ok(&["tag", "set", id, "--tag", "old"]);
    let v = t.ok(&["start", id]);
    assert_eq!(
        (v["state"].as_str(), v["stdout"].as_str()),
        (Some("exited"), Some("K=legacyval\n")),
        "{v}"
    );
}

/// A job defined with --env values whose env.json is gone does not run
/// without them: it fails `env_unreadable`.
#[test]
fn a_job_whose_env_values_are_gone_fails_to_start() {
    let t = TempRoot::new();
    let v = t.ok(&["create", "--env", "K=v", "--", "echo K=$K"]);
    let id = v["job_id"].as_str().unwrap();
    std::fs::remove_file(t.job_dir(id).join("env.json")).unwrap();
    let v = t.ok(&["start", id]);
    assert_eq!(
        (v["state"].as_str(), v["failure"]["code"].as_str()),
        (Some("failed"), Some("env_unreadable")),
        "{v}"
    );
}

/// 0.2.3's `kill` recorded the signal as a bare name ("TERM"): read as
/// D7 spells it.
#[test]
fn a_legacy_bare_signal_name_reads_with_its_prefix() {
    let t = TempRoot::new();
    let id = "0123456789abcdef0123456789abcdef";
    legacy_job(
        &t,
        id,
        "",
        &format!(
            r#"{{"job":{{"id":"{id}","status":"killed","started_at":"2026-05-02T03:56:39Z"}},"result":{{"exit_code":null,"signal":"TERM","duration_ms":5}},"pid":999999,"finished_at":"2026-05-02T03:56:40Z","updated_at":"2026-05-02T03:56:40Z"}}"#
        ),
    );
    assert_eq!(t.ok(&["status", id])["signal"], "SIGTERM");
    assert_eq!(t.ok(&["wait", id])["signal"], "SIGTERM");
}

/// An ended `--tty` job's record names its root's pid as its group and
/// its session. Once that pid is free, a stranger may take it, call
/// setsid and leave a child in that session: `kill` and `delete` of the
/// job must not take the child for the job's (it was signalled).
#[test]
fn a_stranger_in_an_ended_terminal_jobs_old_session_is_left_alone() {
    let t = TempRoot::new();
    // The stranger: a session leader (setsid(1), not forking: a spawned
    // child leads no group) that leaves a child behind and exits.
    let o = std::process::Command::new("setsid")
        .args(["sh", "-c", "sleep 3607.5 >/dev/null 2>&1 & echo $$"])
        .output()
        .expect("setsid(1) from util-linux");
    let sid: u64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let child = t.pids_matching("sleep 3607.5");
    assert_eq!(child.len(), 1, "{child:?}");
    let id = "01K00000000000000000000077";
    t.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
    let p = t.job_dir(id).join("state.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v["pid"] = sid.into();
    v["sid"] = sid.into();
    v["pid_start_time"] = 1.into();
    std::fs::write(&p, v.to_string()).unwrap();
    t.ok(&["kill", id]);
    t.ok(&["delete", id]);
    let alive = support::process_alive(u64::from(child[0]));
    let _ = std::process::Command::new("kill")
        .args(["-9", &child[0].to_string()])
        .status();
    assert!(alive, "the stranger's child was signalled");
}

/// A supervisor killed between its workload's spawn and the record of it
/// leaves the job `created` on disk with its lock free, and what the
/// workload started alive in the supervisor's session (its root dies
/// with the supervisor). The reader kills what is left of that session,
/// named by the pid the supervisor wrote at the start of the lock file
/// before the spawn, and records `supervisor_lost`: it recorded
/// `launch_lost` and left them running, out of reach. Made here by hand:
/// a session whose leader is gone and one member sleeps on.
#[test]
fn a_supervisor_lost_right_after_the_spawn_leaves_nothing_running() {
    let t = TempRoot::new();
    let id = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // The job's definition is a second old when the session starts.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let out = std::process::Command::new("setsid")
        .args(["sh", "-c", "sleep 62.125 >/dev/null 2>&1 & echo $$"])
        .output()
        .unwrap();
    let sid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let sleepers = || t.pids_matching("sleep 62.125");
    assert_eq!(sleepers().len(), 1);
    std::fs::write(t.job_dir(&id).join("lock"), format!("{sid}\n")).unwrap();
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (&s["state"], &s["failure"]["code"]),
        (&json!("failed"), &json!("supervisor_lost")),
        "{s}"
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !sleepers().is_empty() {
        assert!(
            std::time::Instant::now() < until,
            "the session's process lives on"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // A running job's lock names its supervisor first.
    let id = t.ok(&["run", "--no-wait", "--", "sleep 30"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let lock = std::fs::read(t.job_dir(&id).join("lock")).unwrap();
    assert!(lock.starts_with(format!("{sup}\n").as_bytes()));
    t.ok(&["kill", &id]);
}
