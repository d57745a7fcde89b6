//! A waiting command that gets SIGTERM, SIGINT or SIGHUP (a caller's
//! `timeout`, an agent framework cancelling a tool call, Ctrl-C) stops
//! waiting at once, prints the one document its budget running out
//! would have printed (the job still running), and exits 128 + the
//! signal. The job is detached: it runs on, and ends as it would have.

mod support;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Out, TempRoot};

/// A job that says it started, then runs until the test releases it (a
/// file appears in its working directory): it is still running whatever
/// happens to the waiter, and then ends normally.
const HELD: &str = "echo started; while [ ! -e release ]; do sleep 0.02; done; echo released";

/// Wait (bounded) until `f` holds; what we wait for happens on the
/// processes' schedule, not ours.
fn eventually(what: &str, f: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The state letter of process `pid` (R, S, D, Z...).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// Does process `pid` hold a descriptor open on a file under `dir`?
fn holds_file_under(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| target.starts_with(dir))
}

/// Does some job of the root have `text` in its stdout.log?
fn some_job_wrote(t: &TempRoot, text: &str) -> bool {
    let Ok(dirs) = std::fs::read_dir(&t.root) else {
        return false;
    };
    dirs.flatten().any(|d| {
        std::fs::read_to_string(d.path().join("stdout.log")).is_ok_and(|s| s.contains(text))
    })
}

/// The waiter is asleep in its wait: in state S, and past the point
/// where `ready` says it has got to (something it did only once it was
/// handling its command: it launched the job, or opened the job's files).
fn until_waiting(child: &Child, ready: impl Fn() -> bool) {
    let pid = child.id();
    eventually("the waiter to be waiting", || {
        ready() && proc_state(pid) == Some('S')
    });
}

fn spawn(t: &TempRoot, args: &[&str]) -> Child {
    t.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent-exec")
}

fn signal(child: &Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {}", child.id());
}

fn finish(child: Child) -> Out {
    let o = child.wait_with_output().unwrap();
    Out {
        // None: ended by the signal itself, with no answer.
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The one document, `ok`, of type `kind`, and the exit status 128 + sig.
fn answered(o: &Out, kind: &str, code: i32) -> Value {
    assert_eq!(
        o.code, code,
        "exit status; stdout={:?} stderr={:?}",
        o.stdout, o.stderr
    );
    let v = o.json();
    assert_eq!(
        (v["ok"].as_bool(), v["type"].as_str()),
        (Some(true), Some(kind)),
        "{v}"
    );
    v
}

/// The jobs run on after their waiter was stopped, and end normally once
/// released (all at once: they share the release file).
fn still_run_then_end(t: &TempRoot, ids: &[&str]) {
    for id in ids {
        let s = t.ok(&["status", id]);
        assert_eq!(s["state"], "running", "{s}");
    }
    std::fs::write(t.cwd.join("release"), b"").unwrap();
    for id in ids {
        let w = t.wait_done(id);
        assert_eq!(
            (w["state"].as_str(), w["exit_code"].as_i64()),
            (Some("exited"), Some(0)),
            "{w}"
        );
        assert!(t.read(id, "stdout.log").ends_with("released\n"));
    }
}

#[test]
fn run_within_its_budget_answers_each_stop_signal() {
    for (sig, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let t = TempRoot::new();
        let child = spawn(&t, &["run", "--until", "120", "--", "sh", "-c", HELD]);
        until_waiting(&child, || some_job_wrote(&t, "started"));
        signal(&child, sig);
        let o = finish(child);
        let v = answered(&o, "run", code);
        assert_eq!(v["state"], "running", "SIG{sig}: {v}");
        assert!(v.get("exit_code").is_none(), "{v}");
        still_run_then_end(&t, &[v["job_id"].as_str().unwrap()]);
    }
}

#[test]
fn run_forever_answers_sigint() {
    let t = TempRoot::new();
    let child = spawn(&t, &["run", "--forever", "--", "sh", "-c", HELD]);
    until_waiting(&child, || some_job_wrote(&t, "started"));
    signal(&child, "INT");
    let v = answered(&finish(child), "run", 130);
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["stdout"], "started\n", "{v}");
    still_run_then_end(&t, &[v["job_id"].as_str().unwrap()]);
}

#[test]
fn start_answers_sigterm() {
    let t = TempRoot::new();
    let c = t.ok(&["create", "--", "sh", "-c", HELD]);
    let id = c["job_id"].as_str().unwrap().to_string();
    let child = spawn(&t, &["start", "--until", "120", &id]);
    until_waiting(&child, || some_job_wrote(&t, "started"));
    signal(&child, "TERM");
    let v = answered(&finish(child), "start", 143);
    assert_eq!(
        (v["job_id"].as_str(), v["state"].as_str()),
        (Some(id.as_str()), Some("running"))
    );
    still_run_then_end(&t, &[&id]);
}

#[test]
fn restart_answers_sigterm_once_the_new_run_is_watched() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    eventually("the first run to start", || {
        t.read(&id, "stdout.log").contains("started")
    });
    let child = spawn(&t, &["restart", "--until", "120", &id]);
    until_waiting(&child, || {
        t.state(&id)["attempt"] == 2 && t.read(&id, "stdout.log").contains("started")
    });
    signal(&child, "TERM");
    let v = answered(&finish(child), "restart", 143);
    assert_eq!(
        (v["state"].as_str(), v["attempt"].as_u64()),
        (Some("running"), Some(2)),
        "{v}"
    );
    still_run_then_end(&t, &[&id]);
}

#[test]
fn wait_answers_sigterm() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(&t, &["wait", "--until", "120", &id]);
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "TERM");
    let v = answered(&finish(child), "wait", 143);
    assert_eq!(v["state"], "running", "{v}");
    still_run_then_end(&t, &[&id]);
}

#[test]
fn wait_forever_answers_sighup() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(&t, &["wait", "--forever", &id]);
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "HUP");
    let v = answered(&finish(child), "wait", 129);
    assert_eq!(v["state"], "running", "{v}");
    still_run_then_end(&t, &[&id]);
}

#[test]
fn wait_for_any_of_two_answers_sigint() {
    let t = TempRoot::new();
    let a = t.start_job(&["sh", "-c", HELD]);
    let b = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(&t, &["wait", "--any", "--until", "120", &a, &b]);
    let (da, db) = (t.job_dir(&a), t.job_dir(&b));
    until_waiting(&child, || {
        holds_file_under(child.id(), &da) && holds_file_under(child.id(), &db)
    });
    signal(&child, "INT");
    let v = answered(&finish(child), "wait", 130);
    assert_eq!(v["mode"], "any", "{v}");
    assert!(v.get("first").is_none(), "none ended: {v}");
    let states = support::states(&v);
    assert_eq!(states, ["running", "running"], "{v}");
    still_run_then_end(&t, &[&a, &b]);
}

#[test]
fn wait_for_output_answers_sigterm_not_matched() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(
        &t,
        &["wait", "--output", "never printed", "--until", "120", &id],
    );
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "TERM");
    let v = answered(&finish(child), "wait", 143);
    assert_eq!(v["state"], "running", "{v}");
    assert!(v.get("matched").is_none(), "{v}");
    still_run_then_end(&t, &[&id]);
}

#[test]
fn send_answers_sigint_during_its_yield() {
    let t = TempRoot::new();
    let script = format!("read line; echo \"got $line\"; {HELD}");
    let v = t.ok(&["run", "--no-wait", "-i", "--", "sh", "-c", &script]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let child = spawn(&t, &["send", "--newline", "--yield", "120s", &id, "hello"]);
    let dir = t.job_dir(&id);
    until_waiting(&child, || {
        holds_file_under(child.id(), &dir) && t.read(&id, "stdout.log").contains("started")
    });
    signal(&child, "INT");
    let v = answered(&finish(child), "send", 130);
    assert_eq!(
        (v["state"].as_str(), v["bytes_written"].as_u64()),
        (Some("running"), Some(6)),
        "{v}"
    );
    still_run_then_end(&t, &[&id]);
}

#[test]
fn tail_follow_ends_with_whole_lines_on_sigterm() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(&t, &["tail", "--follow", &id]);
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "TERM");
    let o = finish(child);
    assert_eq!(o.code, 143, "stdout={:?} stderr={:?}", o.stdout, o.stderr);
    assert!(o.stdout.ends_with('\n'), "a half line: {:?}", o.stdout);
    let lines: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let end = lines.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["state"].as_str()),
        (Some("end"), Some("running")),
        "{end}"
    );
    assert_eq!(lines.iter().filter(|l| l["type"] == "end").count(), 1);
    still_run_then_end(&t, &[&id]);
}

#[test]
fn a_second_signal_makes_no_second_document() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", HELD]);
    let child = spawn(&t, &["wait", "--forever", &id]);
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "TERM");
    signal(&child, "INT");
    let o = finish(child);
    // Whichever was taken first: both may be pending when it looks.
    assert!([130, 143].contains(&o.code), "{} {:?}", o.code, o.stdout);
    let v = o.json();
    assert_eq!(
        (v["type"].as_str(), v["state"].as_str()),
        (Some("wait"), Some("running")),
        "{v}"
    );
    still_run_then_end(&t, &[&id]);
}

/// Does process `pid` block SIGHUP, SIGINT or SIGTERM (`SigBlk` of
/// /proc/PID/status: bit n-1 for signal n)?
fn blocks_a_stop_signal(pid: u64) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
    let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
    let stop = [libc::SIGHUP, libc::SIGINT, libc::SIGTERM];
    stop.iter().any(|&sig| mask & (1 << (sig - 1)) != 0)
}

#[test]
fn the_job_never_inherits_the_waiters_blocked_signals() {
    let t = TempRoot::new();
    let child = spawn(&t, &["run", "--until", "120", "--", "sh", "-c", HELD]);
    until_waiting(&child, || some_job_wrote(&t, "started"));
    let id = std::fs::read_dir(&t.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| t.job_dir(n).join("state.json").exists())
        .unwrap();
    let st = t.state(&id);
    // The job's root only: the supervisor blocks the stop signals itself,
    // from its start, to read them from a signalfd and pass them on to
    // the job (lifecycle.rs, a_stop_signal_to_the_supervisor_is_passed_on_
    // and_recorded), whatever mask it was started with.
    let pid = st["pid"].as_u64().unwrap_or_else(|| panic!("{st}"));
    // dash blocks every signal for a moment around each fork (the job's
    // loop forks `sleep`), then restores the mask it started with: an
    // inherited block would never lift.
    eventually(
        &format!("the job's root {pid} unblocks the stop signals"),
        || !blocks_a_stop_signal(pid),
    );
    signal(&child, "TERM");
    answered(&finish(child), "run", 143);
    still_run_then_end(&t, &[&id]);
}

/// Is `sig` (a number) pending for process `pid` as a whole (ShdPnd)?
fn pending(pid: u32, sig: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("ShdPnd:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

/// Signals that come while `restart` is still stopping the old run: the
/// first one is what the exit status names, not the lowest-numbered one
/// pending by the time the wait began (TERM then INT used to exit 130).
#[test]
fn restart_names_the_first_signal_of_its_stop_phase() {
    let t = TempRoot::new();
    // Ignores TERM: the stop lasts until --kill-after.
    let script = format!("trap '' TERM; {HELD}");
    let id = t.start_job(&["sh", "-c", &script]);
    eventually("the first run to start", || {
        t.read(&id, "stdout.log").contains("started")
    });
    let child = spawn(
        &t,
        &["restart", "--kill-after", "6s", "--until", "120", &id],
    );
    let dir = t.job_dir(&id);
    until_waiting(&child, || holds_file_under(child.id(), &dir));
    signal(&child, "TERM");
    // Taken at once, well inside the 6 s stop (it used to stay pending
    // until the stop was over).
    let until = Instant::now() + Duration::from_secs(3);
    while pending(child.id(), 15) {
        assert!(Instant::now() < until, "TERM still pending during the stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "INT");
    let v = answered(&finish(child), "restart", 143);
    assert_eq!(v["attempt"].as_u64(), Some(2), "{v}");
    still_run_then_end(&t, &[&id]);
}

/// The signals process `pid` ignores (SigIgn of /proc/PID/status), as
/// the kernel's bit mask: bit n-1 for signal n.
fn ignored_signals(pid: u64) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .expect("SigIgn line");
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// `agent-exec --root ROOT args...` started from bash after `trap ''
/// SIGS`: the caller ignores those signals, and SIG_IGN survives exec.
/// bash, not sh: dash does not ignore CHLD.
fn from_a_shell_ignoring(t: &TempRoot, sigs: &str, args: &[&str]) -> Value {
    let mut c = t.private("bash");
    c.arg("-c")
        .arg(format!("trap '' {sigs}; exec \"$@\""))
        .arg("bash")
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(args);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!((o.code, &v["ok"]), (0, &Value::Bool(true)), "{v}");
    v
}

/// The root pid of a running job, once recorded.
fn root_pid(t: &TempRoot, id: &str) -> u64 {
    eventually("the job's pid", || t.state(id)["pid"].as_u64().is_some());
    t.state(id)["pid"].as_u64().unwrap()
}

#[test]
fn a_job_ignores_no_signal_its_caller_ignored() {
    let t = TempRoot::new();
    let v = from_a_shell_ignoring(
        &t,
        "INT TERM HUP QUIT CHLD",
        &["run", "--no-wait", "--", "sleep", "61"],
    );
    let id = v["job_id"].as_str().unwrap().to_string();
    let pid = root_pid(&t, &id);
    assert_eq!(ignored_signals(pid), 0, "SigIgn of the job's root");
    // The default TERM ends it (it was ignored before, and kill watched 3 s).
    let k = t.ok(&["kill", &id]);
    assert_eq!(
        (k["state"].as_str(), k["terminated_signal"].as_str()),
        (Some("killed"), Some("SIGTERM")),
        "{k}"
    );
}

#[test]
fn a_caller_ignoring_sigchld_still_gets_the_exit_code() {
    // The supervisor too starts with default dispositions: with SIGCHLD
    // ignored the kernel would reap the job, and its status be lost.
    let t = TempRoot::new();
    let v = from_a_shell_ignoring(&t, "CHLD", &["run", "--", "sh", "-c", "exit 3"]);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(3)),
        "{v}"
    );
}

#[test]
fn kill_ends_a_stopped_job() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "kill -STOP $$; echo after"]);
    let pid = root_pid(&t, &id) as u32;
    eventually("the job to be stopped", || proc_state(pid) == Some('T'));
    // TERM, then CONT: stopped, it would keep TERM pending for ever.
    let k = t.ok(&["kill", &id]);
    assert_eq!(
        (k["state"].as_str(), k["terminated_signal"].as_str()),
        (Some("killed"), Some("SIGTERM")),
        "{k}"
    );
}

#[test]
fn a_timeout_ends_a_stopped_job_with_term_not_at_the_kill() {
    // The TERM at the timeout is followed by CONT, as kill's is: a
    // stopped job would keep it pending until the KILL, 60 s later.
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--timeout",
        "1s",
        "--kill-after",
        "60s",
        "--until",
        "30s",
        "--",
        "sh",
        "-c",
        "kill -STOP $$; echo after",
    ]);
    assert_eq!(
        (
            v["state"].as_str(),
            v["signal"].as_str(),
            v["timed_out"].as_bool()
        ),
        (Some("killed"), Some("SIGTERM"), Some(true)),
        "{v}"
    );
}

#[test]
fn kill_of_an_ended_job_signals_what_its_group_left() {
    let t = TempRoot::new();
    // The root exits at once, leaving a background process in its group.
    let v = t.ok(&["run", "--", "sh", "-c", "sleep 61 & echo $!"]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let left: u64 = t.read(&id, "stdout.log").trim().parse().unwrap();
    assert!(support::process_alive(left));
    let k = t.ok(&["kill", &id]);
    assert_eq!(
        (
            k["signal"].as_str(),
            k["state"].as_str(),
            k["exit_code"].as_i64()
        ),
        (Some("SIGTERM"), Some("exited"), Some(0)),
        "{k}"
    );
    eventually("the leftover process to end", || {
        !support::process_alive(left)
    });
    // Nothing left: nothing is sent, the job is reported as it is, and
    // `signal` still names the signal asked for.
    let k = t.ok(&["kill", "--signal", "INT", &id]);
    assert_eq!(
        (
            k["signal"].as_str(),
            k["state"].as_str(),
            k["exit_code"].as_i64()
        ),
        (Some("SIGINT"), Some("exited"), Some(0)),
        "{k}"
    );
}

/// A Ctrl-C (SIGINT to the caller's process group) in the first
/// milliseconds of `run` never kills the job's supervisor: until its
/// setsid the supervisor is in that group, and it died there (the job
/// read `launch_lost`, 1 run in 20 to 75 here). Timing: many rounds, at
/// delays around the launch.
#[test]
fn a_ctrl_c_to_the_callers_group_during_the_launch_never_loses_the_job() {
    use std::os::unix::process::CommandExt;
    let t = TempRoot::new();
    for round in 0..300u64 {
        let mut c = t.cmd(&["run", "--no-auto-gc", "--", "sleep", "0.05"]);
        c.process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(300 + (round % 50) * 100));
        let _ = std::process::Command::new("kill")
            .args(["-INT", "--", &format!("-{}", child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = child.wait();
    }
    let v = t.ok(&["list", "--all", "--limit", "0"]);
    for j in v["jobs"].as_array().unwrap() {
        let id = j["job_id"].as_str().unwrap();
        let s = t.wait_done(id);
        assert_ne!(s["failure"]["code"], "launch_lost", "{s}");
        assert_eq!(s["state"], "exited", "{s}");
    }
}

/// `args` reading the caller's stdin: spawned with some bytes written
/// and the writer kept open, so that the read waits for more.
fn reading_stdin(t: &TempRoot, args: &[&str]) -> (Child, std::process::ChildStdin) {
    let mut child = t
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn agent-exec");
    let mut input = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut input, b"partial input").unwrap();
    (child, input)
}

/// Whether `child` ended (after a stop signal) with its stdin's writer
/// still open, and what it answered. Bounded: on failure the writer is
/// closed so that the test ends.
fn end_then_close(mut child: Child, input: std::process::ChildStdin) -> (bool, Out) {
    let until = Instant::now() + Duration::from_secs(10);
    let mut ended = false;
    while Instant::now() < until {
        if child.try_wait().unwrap().is_some() {
            ended = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(input);
    (ended, finish(child))
}

/// `run --stdin -` reading a caller's stdin whose writer never closes it:
/// a stop signal ends the read at once, with an error document and no
/// job made. It read on until EOF (forever, with a writer that stays),
/// then launched the job all the same.
#[test]
fn run_reading_the_callers_stdin_answers_sigterm_and_makes_no_job() {
    let t = TempRoot::new();
    let (child, input) = reading_stdin(&t, &["run", "--stdin", "-", "--", "wc -c"]);
    // Reading: it has made the job directory and waits in its read.
    let root = t.root.clone();
    until_waiting(&child, || {
        std::fs::read_dir(&root)
            .is_ok_and(|d| d.flatten().any(|e| e.path().join("stdin.bin").exists()))
    });
    signal(&child, "TERM");
    let (ended, o) = end_then_close(child, input);
    assert!(ended, "still reading after SIGTERM: {:?}", o.stdout);
    assert_eq!(o.code, 143, "stdout={:?} stderr={:?}", o.stdout, o.stderr);
    let v = o.json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "io_error", "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
    assert_eq!(t.ok(&["list", "--all"])["jobs"], serde_json::json!([]));
}

/// `send --file -` reading a caller's stdin whose writer stays: SIGINT
/// ends the read with an error document, nothing sent (the process died
/// of the signal, with no document).
#[test]
fn send_reading_the_callers_stdin_answers_sigint_and_sends_nothing() {
    let t = TempRoot::new();
    let id = t.ok(&["run", "--no-wait", "-i", "--", "cat"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (child, input) = reading_stdin(&t, &["send", "--file", "-", &id]);
    // Asleep in its read (nothing else makes it wait before the send).
    until_waiting(&child, || true);
    signal(&child, "INT");
    let (_, o) = end_then_close(child, input);
    assert_eq!(o.code, 130, "stdout={:?} stderr={:?}", o.stdout, o.stderr);
    let v = o.json();
    assert_eq!(
        (&v["error"]["code"], &v["error"]["retryable"]),
        (&json!("io_error"), &json!(true)),
        "{v}"
    );
    assert_eq!(t.read(&id, "stdin.log"), "");
    t.ok(&["kill", &id]);
}

/// A stop signal ends `wait --output` while it is still searching the
/// output written before it began (which it reads whole, past
/// `--until`): a pattern this slow over these lines (a tenth of a
/// second a line, more in a debug build) held SIGINT until the whole
/// log was searched, half a minute.
#[test]
fn a_stop_signal_ends_a_slow_search_of_the_written_output() {
    let t = TempRoot::new();
    let script = "for i in $(seq 300); do head -c 3000 /dev/zero | tr '\\0' a; echo; done; : >written; sleep 300";
    let id = t.start_job(&["sh", "-c", script]);
    eventually("the output to be written", || {
        t.cwd.join("written").exists()
    });
    let child = spawn(
        &t,
        &[
            "wait",
            "--output",
            "[a-z]{1,1000}b",
            "--output-match-type",
            "regex",
            &id,
        ],
    );
    eventually("the waiter to have opened the logs", || {
        holds_file_under(child.id(), &t.job_dir(&id))
    });
    let t0 = Instant::now();
    signal(&child, "INT");
    let o = finish(child);
    let took = t0.elapsed();
    let v = answered(&o, "wait", 130);
    assert_eq!(v["state"], "running", "{v}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    t.ok(&["kill", &id]);
}

/// A signal that reaches a command after its wait ended by itself, while
/// it writes its answer (here a large one, to a reader that is slow to
/// read it), ends no wait: the whole answer, and its own status, 0. It
/// was 128 + the signal, and with a TERM then a HUP, 129: the lowest
/// numbered, not the first.
#[test]
fn a_signal_while_the_answer_is_written_leaves_its_status() {
    use std::io::Read;
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "seq", "1", "3000000"]);
    assert_eq!(v["state"], "exited", "{v}");
    let id = v["job_id"].as_str().unwrap();
    let mut child = spawn(&t, &["wait", "--max-bytes", "100000000", id]);
    let mut out = child.stdout.take().unwrap();
    // Its first byte: the answer is being written, and the pipe fills.
    let mut first = [0u8; 1];
    out.read_exact(&mut first).unwrap();
    signal(&child, "TERM");
    signal(&child, "HUP");
    let mut rest = Vec::new();
    out.read_to_end(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut doc = first.to_vec();
    doc.extend(rest);
    let v: Value = serde_json::from_slice(&doc).unwrap();
    assert_eq!(
        (&v["state"], &v["exit_code"]),
        (&json!("exited"), &json!(0))
    );
    // The whole output, in the whole answer.
    assert_eq!(v["stdout_total_bytes"].as_u64(), Some(22_888_896));
    assert_eq!(v["stdout"].as_str().map(str::len), Some(22_888_896));
}

/// A signal other than SIGTERM, SIGINT or SIGHUP sent to a supervisor (a
/// stray `kill -USR1` of the wrong pid, a container's SIGQUIT, the job's
/// own `kill -ALRM $PPID`) no longer kills it, losing the job: it is
/// ignored, and the job ends as it would have, recorded. The fault
/// signals too (a `kill -ABRT` is no crash); each is sent twice, the
/// second once the first was taken: a SIGSEGV used to meet the Rust
/// runtime's stack-overflow handler, which let the first go and put the
/// default action back for the next.
#[test]
fn a_supervisor_outlives_stray_signals() {
    let t = TempRoot::new();
    let signals = [
        libc::SIGABRT,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGPROF,
        // Below the C library's SIGRTMIN (musl's is 35): bash's RTMIN is 34.
        32,
        33,
        34,
        libc::SIGRTMIN() + 3,
    ];
    for sig in signals {
        let v = t.ok(&["run", "--no-wait", "--", HELD]);
        let id = v["job_id"].as_str().unwrap().to_string();
        let log = t.job_dir(&id).join("stdout.log");
        eventually("the job started", || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("started"))
        });
        let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
        for _ in 0..2 {
            // SAFETY: kill with a pid read from the record and a valid signal.
            assert_eq!(unsafe { libc::kill(sup as i32, sig) }, 0, "signal {sig}");
            // Taken: pending neither for the process nor for a thread.
            eventually("the signal was taken", || {
                let status = std::fs::read_to_string(format!("/proc/{sup}/status"));
                let none = |k: &str| {
                    status.as_ref().is_ok_and(|s| {
                        s.lines()
                            .filter(|l| l.starts_with(k))
                            .all(|l| l.trim_end().ends_with(&"0".repeat(16)))
                    })
                };
                status.is_err() || (none("SigPnd:") && none("ShdPnd:"))
            });
        }
        std::fs::write(t.cwd.join("release"), b"").unwrap();
        let done = t.wait_done(&id);
        assert_eq!(
            (&done["state"], &done["exit_code"]),
            (&json!("exited"), &json!(0)),
            "signal {sig}: {done}"
        );
        assert_eq!(done["stdout"], "started\nreleased\n", "signal {sig}");
        std::fs::remove_file(t.cwd.join("release")).unwrap();
    }
    // The job itself, signalling its parent (the supervisor).
    let v = t.ok(&[
        "run",
        "--",
        "kill -USR2 $PPID; kill -QUIT $PPID; echo after",
    ]);
    assert_eq!(
        (&v["state"], &v["stdout"]),
        (&json!("exited"), &json!("after\n")),
        "{v}"
    );
}

/// A root that leaves the process group it leads (a `setpgid` into the
/// session's other group) is still reached by `--timeout`, `kill` and
/// `restart`: each signals it itself, beside its group. The group alone
/// missed it: `--timeout` recorded `timed_out` for a job that ran on to
/// exit 0, `kill` answered `running`, `restart` could never stop it.
#[test]
fn a_root_that_left_its_group_is_still_signalled() {
    let t = TempRoot::new();
    let leave =
        "import os,time; os.setpgid(0, os.getsid(0)); print('left', flush=True); time.sleep(30)";
    let v = t.ok(&[
        "run",
        "--timeout",
        "1",
        "--until",
        "20",
        "--",
        "python3",
        "-c",
        leave,
    ]);
    assert_eq!(
        (&v["state"], &v["signal"], &v["timed_out"]),
        (&json!("killed"), &json!("SIGTERM"), &json!(true)),
        "{v}"
    );
    let started = |id: &str| {
        let log = t.job_dir(id).join("stdout.log");
        eventually("the root left its group", || {
            std::fs::read_to_string(&log).is_ok_and(|s| s.contains("left"))
        });
    };
    let id = t.ok(&["run", "--no-wait", "--", "python3", "-c", leave])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    started(&id);
    let k = t.ok(&["kill", "--signal", "KILL", &id]);
    assert_eq!(
        (&k["state"], &k["signal"]),
        (&json!("killed"), &json!("SIGKILL")),
        "{k}"
    );
    let id = t.ok(&["run", "--no-wait", "--", "python3", "-c", leave])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    started(&id);
    let r = t.ok(&["restart", "--kill-after", "5s", "--no-wait", &id]);
    assert_eq!(r["attempt"], 2, "{r}");
    assert_eq!(r["previous_runs"][0]["signal"], "SIGTERM", "{r}");
    t.ok(&["kill", "--signal", "KILL", &id]);
}

/// `sh -c SCRIPT` in new namespaces (`unshare FLAGS`), with `$B` the
/// binary and `$R` the jobs root; None where namespaces cannot be made
/// here (not root).
fn in_namespaces(t: &TempRoot, flags: &[&str], script: &str) -> Option<String> {
    let mut c = std::process::Command::new("unshare");
    c.args(flags)
        .args(["sh", "-c", script])
        .env("B", support::bin())
        .env("R", &t.root)
        .stdin(Stdio::null());
    let o = c.output().ok()?;
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    if text.contains("NO-NAMESPACES") || (!o.status.success() && text.is_empty()) {
        eprintln!(
            "note: cannot make namespaces here (not root?); test skipped: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        return None;
    }
    Some(text)
}

/// A caller in a pid namespace of its own that kept the host's /proc
/// (audit 38, high): /proc vouched for the job's root by its start time,
/// and the signal, numbered in the caller's namespace, killed the
/// caller's own process under that number while the job ran on. Now
/// nothing is signalled and the answer says why, at once.
#[test]
fn kill_from_a_pid_namespace_with_a_foreign_proc_signals_nothing() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let pid = t.state(&id)["pid"].as_u64().unwrap();
    // The caller's process takes the job's pid number in the new
    // namespace (the next pid there is ns_last_pid + 1), leading its own
    // group as the job's root does.
    let script = format!(
        "echo {} > /proc/sys/kernel/ns_last_pid || {{ echo NO-NAMESPACES; exit; }}; \
         setsid sleep 30 & s=$!; [ $s = {pid} ] || {{ echo NO-NAMESPACES; exit; }}; sleep 0.1; \
         \"$B\" --root \"$R\" kill {id}; kill -0 $s && echo stranger-alive; kill $s",
        pid - 1
    );
    let Some(out) = in_namespaces(&t, &["--pid", "--fork"], &script) else {
        return;
    };
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "io_error", "{out}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was signalled"),
        "{out}"
    );
    assert!(out.contains("stranger-alive"), "{out}");
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", "--signal", "KILL", &id]);
}

/// Without /proc (hidden by a sandbox): the job's processes cannot be
/// told from others, so `kill` signals nothing and says so at once, and
/// a look at the job does not wait on its supervisor (audit 38: `kill`
/// waited 4 s and called the record damaged; `status` took 2 s).
#[test]
fn without_proc_kill_signals_nothing_and_status_answers_at_once() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let script = format!(
        "mount -t tmpfs none /proc || {{ echo NO-NAMESPACES; exit; }}; \
         \"$B\" --root \"$R\" kill {id}; \"$B\" --root \"$R\" status {id}"
    );
    let t0 = Instant::now();
    let Some(out) = in_namespaces(&t, &["--mount", "--fork"], &script) else {
        return;
    };
    let took = t0.elapsed();
    let mut lines = out.lines().filter(|l| !l.is_empty());
    let k: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(k["error"]["code"], "io_error", "{out}");
    let s: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(s["state"], "running", "{out}");
    // Either would have waited 2 s or more.
    assert!(took < Duration::from_millis(1900), "{took:?}");
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", "--signal", "KILL", &id]);
}

/// From another pid namespace an ended job is judged by what its
/// supervisor recorded at its end (audit 40): one that left a process
/// behind is neither deleted nor collected from there (it was: the
/// process lived on with no record left to kill it by), while one that
/// left none is restarted, killed (reported as it is) and collected as
/// usual (they answered io_error, "damaged job record").
#[test]
fn an_ended_job_read_from_another_pid_namespace() {
    let t = TempRoot::new();
    let left = t.job_id_of(&["run", "--", "sleep 31.5 & exit 0"]);
    let clean = t.job_id_of(&["run", "--", "exit 4"]);
    let script = format!(
        "\"$B\" --root \"$R\" delete {left} || true; \
         \"$B\" --root \"$R\" gc --older-than 0 --dry-run; \
         \"$B\" --root \"$R\" kill {clean}; \
         \"$B\" --root \"$R\" restart {clean}"
    );
    let Some(out) = in_namespaces(&t, &["--pid", "--fork", "--mount-proc"], &script) else {
        return;
    };
    let docs: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(docs.len(), 4, "{out}");
    assert_eq!(docs[0]["error"]["code"], "invalid_state", "{out}");
    assert!(t.job_dir(&left).join("meta.json").exists(), "deleted");
    let gc = &docs[1]["jobs"];
    let of = |id: &str| {
        gc.as_array()
            .unwrap()
            .iter()
            .find(|j| j["job_id"] == id)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(of(&left)["reason"], "pid_alive", "{out}");
    assert_eq!(of(&clean)["action"], "would_delete", "{out}");
    assert_eq!(
        (&docs[2]["state"], &docs[2]["exit_code"]),
        (&json!("exited"), &json!(4)),
        "{out}"
    );
    assert_eq!(
        (&docs[3]["attempt"], &docs[3]["exit_code"]),
        (&json!(2), &json!(4)),
        "{out}"
    );
    t.ok(&["kill", &left]);
}

/// A record whose root pid and start time name another process (the
/// job rewrote its own state.json, or a hand did) signals nothing: the
/// root of a running job must be its supervisor's child (audit 39: kill
/// killed that process, another job's root or anyone's).
#[test]
fn a_running_record_naming_another_process_signals_nothing() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let mut stranger = std::process::Command::new("setsid")
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let start: u64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let path = t.job_dir(&id).join("state.json");
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    st["pid"] = json!(pid);
    st["pid_start_time"] = json!(start);
    let tmp = t.job_dir(&id).join("t");
    std::fs::write(&tmp, st.to_string()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let (_, e) = t.err(&["kill", &id]);
    assert_eq!(e["error"]["code"], "io_error", "{e}");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger was killed"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

/// A job that stops its own supervisor (SIGSTOP) and ends: `kill`
/// continues the supervisor, which records the end (audit 39: it read
/// running for good, and kill answered running after its 3 s).
#[test]
fn kill_continues_a_supervisor_its_job_stopped() {
    let t = TempRoot::new();
    let id = t.start_job(&["kill -STOP $PPID; exit 3"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{sup}/stat")).unwrap_or_default();
        if stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('T')
        {
            break;
        }
        assert!(Instant::now() < until, "the supervisor never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let v = t.ok(&["kill", &id]);
    assert_eq!(
        (&v["state"], &v["exit_code"]),
        (&json!("exited"), &json!(3)),
        "{v}"
    );
}
