//! Watching a job run with `--retry` across its attempts: each attempt
//! writes new logs (the ended one's are kept in `runs/<n>/`) while the
//! job stays `running`, so `tail --follow` (NDJSON, `--raw`, HTTP) and
//! `wait --output` must go on from the logs they hold to the next
//! attempt's, and `send --yield` must keep reading the ones it holds,
//! instead of staying on (or reopening) a log nobody writes any more.
//! Black-box.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::TempRoot;

#[path = "support/validate.rs"]
mod validate;

/// Attempt 1 prints its first lines, then waits for the file `go` in the
/// job's cwd; every attempt then prints `seq 1 3n` and an unfinished
/// stderr line, and fails. Three attempts in all.
const THREE_ATTEMPTS: &str = r#"echo x >> cnt; n=$(wc -l < cnt); echo "attempt $n"; echo "err $n" >&2
if [ "$n" -eq 1 ]; then while [ ! -e go ]; do sleep 0.01; done; fi
seq 1 $((n * 3)); printf "no newline $n" >&2; exit 1"#;

/// What attempt `n` of `THREE_ATTEMPTS` writes to stdout.
fn stdout_of(n: u64) -> String {
    let mut s = format!("attempt {n}\n");
    for i in 1..=n * 3 {
        s.push_str(&format!("{i}\n"));
    }
    s
}

fn stderr_of(n: u64) -> String {
    format!("err {n}\nno newline {n}")
}

/// Read lines from `r` until one contains `needle` (the follower has
/// begun on attempt 1's logs); returns them.
fn lines_until(r: &mut impl BufRead, needle: &str) -> String {
    let mut got = String::new();
    loop {
        let mut l = String::new();
        assert!(
            r.read_line(&mut l).unwrap() > 0,
            "ended before {needle:?}: {got}"
        );
        got.push_str(&l);
        if l.contains(needle) {
            return got;
        }
    }
}

/// The NDJSON lines of a follow, split per attempt: for each, its stdout
/// and stderr joined from the output objects, whose ranges must be
/// contiguous from 0 within the attempt. Checks every line against the
/// schema and returns the attempts announced and the end object.
fn per_attempt(schema: &Value, text: &str) -> (Vec<(String, String)>, Vec<u64>, Value) {
    let mut attempts = vec![(String::new(), String::new())];
    let mut pos = [0u64; 2];
    let mut announced = Vec::new();
    let mut end = Value::Null;
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        validate::valid_as(schema, "FollowEvent", &v);
        assert!(end.is_null(), "a line after the end: {text}");
        match v["type"].as_str().unwrap() {
            "output" => {
                let i = usize::from(v["stream"] == "stderr");
                let r = [
                    v["range"][0].as_u64().unwrap(),
                    v["range"][1].as_u64().unwrap(),
                ];
                assert_eq!(r[0], pos[i], "contiguous within the attempt: {text}");
                pos[i] = r[1];
                let cur = attempts.last_mut().unwrap();
                let buf = if i == 0 { &mut cur.0 } else { &mut cur.1 };
                buf.push_str(v["data"].as_str().unwrap());
            }
            "attempt" => {
                announced.push(v["attempt"].as_u64().unwrap());
                attempts.push((String::new(), String::new()));
                pos = [0, 0];
            }
            "end" => end = v,
            other => panic!("unexpected {other}: {text}"),
        }
    }
    (attempts, announced, end)
}

/// The expected attempts of `THREE_ATTEMPTS`, each as its kept or live logs
/// say too.
fn check_attempts(t: &TempRoot, id: &str, attempts: &[(String, String)]) {
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    for (i, (out, err)) in attempts.iter().enumerate() {
        let n = i as u64 + 1;
        assert_eq!(out, &stdout_of(n), "stdout of attempt {n}");
        assert_eq!(err, &stderr_of(n), "stderr of attempt {n}");
        let dir = if n == 3 {
            t.job_dir(id)
        } else {
            t.job_dir(id).join("runs").join(n.to_string())
        };
        assert_eq!(
            out,
            &std::fs::read_to_string(dir.join("stdout.log")).unwrap()
        );
    }
}

/// One chunk of an HTTP chunked body (None: the last, empty one).
fn chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let n = usize::from_str_radix(size.trim_end(), 16).unwrap_or_else(|_| panic!("{size:?}"));
    let mut data = vec![0u8; n + 2];
    r.read_exact(&mut data).unwrap();
    data.truncate(n);
    (n > 0).then_some(data)
}

fn spawn_follow(t: &TempRoot, args: &[&str]) -> Child {
    t.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn follow_goes_on_through_every_retry_attempt() {
    let t = TempRoot::new();
    let schema = t.ok(&["schema"])["schema"].clone();
    let served = t.serve();
    let id = t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "2",
        "--retry-delay",
        "100ms",
        "--",
        "sh",
        "-c",
        THREE_ATTEMPTS,
    ])["job_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Three followers, all begun during attempt 1 (each has passed on
    // its first line before attempt 1 may end).
    let mut ndjson = spawn_follow(&t, &["tail", "--follow", "--until", "60", &id]);
    let mut nd_out = BufReader::new(ndjson.stdout.take().unwrap());
    let mut nd_text = lines_until(&mut nd_out, "attempt 1");
    let mut raw = spawn_follow(&t, &["tail", "--follow", "--raw", "--until", "60", &id]);
    let mut raw_out = BufReader::new(raw.stdout.take().unwrap());
    let mut raw_text = lines_until(&mut raw_out, "attempt 1");
    let mut http = TcpStream::connect(("127.0.0.1", served.port)).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        http,
        "GET /tail/{id}?follow=true HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut http = BufReader::new(http);
    let status = lines_until(&mut http, "HTTP/1.1");
    assert!(status.contains(" 200 "), "{status}");
    // The rest of the head, up to its blank line.
    while lines_until(&mut http, "\n") != "\r\n" {}
    let mut http_body = Vec::new();
    while !String::from_utf8_lossy(&http_body).contains("attempt 1") {
        http_body.extend(chunk(&mut http).expect("the first output"));
    }
    // A cursor of attempt 1's logs, for later.
    let early = t.ok(&["tail", &id])["cursor"].as_str().unwrap().to_string();
    std::fs::write(t.cwd.join("go"), "").unwrap();

    nd_out.read_to_string(&mut nd_text).unwrap();
    assert!(ndjson.wait().unwrap().success());
    let (attempts, announced, end) = per_attempt(&schema, &nd_text);
    assert_eq!(announced, [2, 3], "{nd_text}");
    check_attempts(&t, &id, &attempts);
    assert_eq!(
        (end["state"].as_str(), end["exit_code"].as_i64()),
        (Some("exited"), Some(1))
    );

    // The end's cursor is the last attempt's: reading on from it works
    // and finds nothing more. Attempt 1's cursor names logs replaced
    // since, as after a restart.
    let v = t.ok(&["tail", "--since", end["cursor"].as_str().unwrap(), &id]);
    let len = stdout_of(3).len() as u64;
    assert_eq!(
        (v["stdout"].as_str(), v["stdout_range"][0].as_u64()),
        (Some(""), Some(len)),
        "{v}"
    );
    let (code, e) = t.err(&["tail", "--since", &early, &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_cursor")),
        "{e}"
    );

    // --raw: the bytes of every attempt, stdout untouched, and a marker
    // line on stderr where each new attempt begins.
    raw_out.read_to_string(&mut raw_text).unwrap();
    let mut raw_err = String::new();
    raw.stderr
        .take()
        .unwrap()
        .read_to_string(&mut raw_err)
        .unwrap();
    assert!(raw.wait().unwrap().success());
    assert_eq!(raw_text, (1..=3).map(stdout_of).collect::<String>());
    assert_eq!(
        raw_err,
        format!(
            "{}\n[agent-exec: attempt 2]\n{}\n[agent-exec: attempt 3]\n{}",
            stderr_of(1),
            stderr_of(2),
            stderr_of(3)
        )
    );

    // HTTP: the same lines.
    while let Some(c) = chunk(&mut http) {
        http_body.extend(c);
    }
    let text = String::from_utf8(http_body).unwrap();
    let (attempts, announced, end) = per_attempt(&schema, &text);
    assert_eq!(announced, [2, 3], "{text}");
    check_attempts(&t, &id, &attempts);
    assert_eq!(end["exit_code"], 1, "{text}");
}

/// Whether process `pid` has `path` open.
fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|p| p == path))
}

#[test]
fn wait_output_finds_a_line_of_a_later_retry_attempt() {
    let t = TempRoot::new();
    let script = r#"if [ -e started ]; then echo READY; while [ ! -e stop ]; do sleep 0.05; done
else touch started; echo first; while [ ! -e go ]; do sleep 0.01; done; exit 1; fi"#;
    let id = t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "1",
        "--retry-delay",
        "100ms",
        "--",
        "sh",
        "-c",
        script,
    ])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = t.ok(&["wait", "--output", "first", "--until", "30", &id]);
    assert_eq!(
        (first["state"].as_str(), first["attempt"].as_u64()),
        (Some("running"), Some(1))
    );

    // A readiness wait begun on attempt 1: it holds attempt 1's logs
    // (open, as /proc shows) before that attempt ends.
    let waiting = t
        .cmd(&["wait", "--output", "READY", "--until", "20", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let log = std::fs::canonicalize(t.job_dir(&id).join("stdout.log")).unwrap();
    let t0 = Instant::now();
    while !has_open(waiting.id(), &log) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "wait never opened {log:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(t.cwd.join("go"), "").unwrap();

    // Attempt 2 prints READY and runs on until `stop`: an answer while
    // it runs is the match, not the job's end (or --until).
    let o = waiting.wait_with_output().unwrap();
    std::fs::write(t.cwd.join("stop"), "").unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["attempt"], 2, "{v}");
    assert_eq!(v["matched"]["line"], "READY", "{v}");
    assert_eq!(v["matched"]["offset"], 0, "{v}");
    assert_eq!(v["stdout"], "READY\n", "{v}");
    let done = t.wait_done(&id);
    assert_eq!(
        (done["exit_code"].as_i64(), done["attempt"].as_u64()),
        (Some(0), Some(2))
    );
}

#[test]
fn send_yield_keeps_the_output_of_an_attempt_that_ended_meanwhile() {
    let t = TempRoot::new();
    let schema = t.ok(&["schema"])["schema"].clone();
    // A long delay: the job sits between attempts when the answer is read.
    let id = t.ok(&[
        "run",
        "--no-wait",
        "-i",
        "--retry",
        "1",
        "--retry-delay",
        "60s",
        "--",
        "sh",
        "-c",
        r#"read x; echo "got $x"; exit 1"#,
    ])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = t.ok(&["send", "--newline", "--yield", "3s", &id, "one"]);
    // The attempt the send reached ended and was kept during the yield.
    let st = t.ok(&["status", &id]);
    assert_eq!(
        (st["state"].as_str(), st["attempt"].as_u64()),
        (Some("running"), Some(2)),
        "{st}"
    );
    assert_eq!(t.read(&id, "runs/1/stdout.log"), "got one\n");
    assert_eq!(v["stdout"], "got one\n", "{v}");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 8]), "{v}");
    assert_eq!(v["stdout_total_bytes"], 8, "{v}");
    assert_eq!(v["attempt"], 1, "{v}");
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["bytes_written"], 4, "{v}");
    validate::valid(&schema, &v);
    // Between the two runs: the next one takes input, so a send now is
    // refused as one to try again, not as a closed stdin.
    let (code, e) = t.err(&["send", "--newline", &id, "two"]);
    assert_eq!(code, 1, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], true, "{e}");
    // A follow begun on a later run says so before its output.
    let mut f = t
        .cmd(&["tail", "-f", "--until", "0", &id])
        .output()
        .unwrap();
    let text = String::from_utf8(std::mem::take(&mut f.stdout)).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"type": "attempt", "attempt": 2}),
        "{text}"
    );
    t.ok(&["kill", &id]);
    assert_eq!(t.wait_done(&id)["state"], "killed");
}

/// A `kill` while a `--retry` job's ended run has its leftovers ended
/// (before the next run, up to --kill-after) ends the job without
/// another run; answered before that end, it is retryable
/// `invalid_state`, as `send` answers then. It read `io_error` "damaged
/// job record", not retryable, and the next run started.
#[test]
fn a_kill_while_a_retried_runs_leftovers_are_ended_may_try_again() {
    let t = TempRoot::new();
    let id = leftovers_being_ended(&t, "63.125");
    let o = t.out(&["kill", &id]);
    let v = o.json();
    if v["ok"] == false {
        assert_eq!(v["error"]["code"], "invalid_state", "{v}");
        assert_eq!(v["error"]["retryable"], true, "{v}");
    }
    // The kill stops the job there: the ended run is its end, and no
    // other run starts (the next one ran, the kill having reached none).
    let s = t.ok(&["wait", "--until", "30", &id]);
    assert_eq!(
        (&s["state"], &s["attempt"], &s["exit_code"]),
        (&Value::from("exited"), &Value::from(1), &Value::from(3)),
        "{s}"
    );
    kill_sleeps(&t, "63.125");
}

/// A `--retry 1 --kill-after 4s` job whose first run has ended (its root
/// exited and reaped) while what it left behind, a `sleep SECS` that
/// ignores TERM, holds out: the supervisor is ending it before the next
/// run.
fn leftovers_being_ended(t: &TempRoot, secs: &str) -> String {
    let script = format!("(trap '' TERM; exec sleep {secs}) & exit 3");
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--retry",
        "1",
        "--kill-after",
        "4s",
        "--",
        &script,
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let root = t.state(&id)["pid"].as_u64().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{root}")).exists() {
        assert!(Instant::now() < until, "the first run never ended");
        std::thread::sleep(Duration::from_millis(5));
    }
    id
}

fn kill_sleeps(t: &TempRoot, secs: &str) {
    for pid in t.pids_matching(&format!("sleep {secs}")) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
}

/// A `restart` while a `--retry` run's leftovers are ended starts no
/// retry run of its own before the restart's: the next run started, and
/// the restart killed it (kept in previous_runs, started).
#[test]
fn a_restart_while_a_retried_runs_leftovers_are_ended_starts_one_run() {
    let t = TempRoot::new();
    let id = leftovers_being_ended(&t, "63.375");
    let r = t.ok(&["restart", "--no-wait", &id]);
    let runs: Vec<(u64, String)> = r["previous_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["attempt"].as_u64().unwrap(),
                p["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(runs, [(1, "exited".to_string())], "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
    t.ok(&["kill", &id]);
    kill_sleeps(&t, "63.375");
}

/// A `--retry` job whose supervisor died after it kept the run that
/// ended (runs/1/) and before the next run's state: the kept record is
/// the job's end, exit code and all, and previous_runs agrees with runs/
/// after a restart. It read supervisor_lost for that run. Made by hand:
/// an ended job's record kept as run 1, state.json put back to that run
/// running under a supervisor that is gone.
#[test]
fn a_supervisor_lost_after_keeping_a_run_leaves_that_runs_end() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo hi; exit 3"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    t.settle();
    let dir = t.job_dir(&id);
    std::fs::create_dir_all(dir.join("runs/1")).unwrap();
    // As an archive keeps a run: its own record, its logs' second names.
    std::fs::copy(dir.join("state.json"), dir.join("runs/1/state.json")).unwrap();
    for f in ["stdout.log", "stderr.log"] {
        std::fs::hard_link(dir.join(f), dir.join("runs/1").join(f)).unwrap();
    }
    let mut st = t.state(&id);
    st["job"]["status"] = "running".into();
    st["result"]["exit_code"] = Value::Null;
    st["finished_at"] = Value::Null;
    st["supervisor_pid"] = 999_999.into();
    std::fs::write(dir.join("state.json"), st.to_string()).unwrap();
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (&s["state"], &s["attempt"], &s["exit_code"]),
        (&Value::from("exited"), &Value::from(1), &Value::from(3)),
        "{s}"
    );
    let r = t.ok(&["restart", &id]);
    assert_eq!(r["previous_runs"][0]["exit_code"], 3, "{r}");
    assert_eq!(r["previous_runs"][0]["state"], "exited", "{r}");
}
