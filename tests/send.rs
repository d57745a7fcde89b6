//! Talking to a running job: `run -i` / `--tty` and `send`. A REPL on a
//! pipe and on a terminal, a password prompt that reads the terminal,
//! end of file, input recorded in stdin.log, and the errors.

mod support;
#[path = "support/validate.rs"]
mod validate;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::TempRoot;

fn start(t: &TempRoot, flags: &[&str], cmd: &[&str]) -> String {
    let mut a = vec!["run", "--no-wait"];
    a.extend_from_slice(flags);
    a.push("--");
    a.extend_from_slice(cmd);
    t.ok(&a)["job_id"].as_str().unwrap().to_string()
}

/// Send `text` (with a newline) and collect what the job answers until
/// `want` appears (each send waits up to 2 s; the REPL may be slow).
fn converse(t: &TempRoot, id: &str, text: &str, want: &str) -> String {
    let v = t.ok(&["send", "--newline", "--yield", "2s", id, text]);
    assert_eq!(v["type"], "send");
    assert_eq!(v["bytes_written"], text.len() + 1, "{v}");
    let mut got = v["stdout"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(10);
    while !got.contains(want) && Instant::now() < until {
        // Nothing more to say: an empty send just watches.
        let v = t.ok(&["send", "--yield", "500ms", id, ""]);
        got.push_str(v["stdout"].as_str().unwrap());
    }
    assert!(got.contains(want), "{want:?} not in {got:?}");
    got
}

#[test]
fn a_python_repl_on_a_pipe() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["python3", "-i", "-q", "-u"]);
    converse(&t, &id, "print(6 * 7)", "42");
    converse(&t, &id, "x = 'kept'; print(x.upper())", "KEPT");
    let v = t.ok(&["send", "--eof", "--yield", "5s", &id]);
    assert_eq!(v["stdin_open"], false, "{v}");
    let w = t.wait_done(&id);
    assert_eq!(
        (w["state"].as_str(), w["exit_code"].as_i64()),
        (Some("exited"), Some(0))
    );
    // What was sent is on disk, in order.
    let log = t.read(&id, "stdin.log");
    assert_eq!(log, "print(6 * 7)\nx = 'kept'; print(x.upper())\n");
}

#[test]
fn a_python_repl_on_a_terminal() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--no-wait", "--tty", "--", "python3", "-i", "-q"]);
    assert_eq!(v["tty"], true, "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let got = converse(
        &t,
        &id,
        "import sys; print(sys.stdin.isatty(), 6 * 7)",
        "True 42",
    );
    // A terminal echoes input and ends lines with CR LF.
    assert!(got.contains("\r\n"), "{got:?}");
    converse(
        &t,
        &id,
        "import os; print(os.environ['TERM'])",
        "xterm-256color",
    );
    // End of file on a terminal is ^D: the REPL exits.
    t.ok(&["send", "--eof", "--yield", "3s", &id]);
    let w = t.wait_done(&id);
    assert_eq!(w["state"], "exited", "{w}");
    assert_eq!(
        t.read(&id, "stderr.log"),
        "",
        "a terminal job's stderr log stays empty"
    );
}

#[test]
fn a_password_prompt_reads_the_terminal() {
    let t = TempRoot::new();
    let id = start(
        &t,
        &["--tty", "--tty-size", "100x30"],
        &[
            "python3",
            "-c",
            "import getpass, shutil; p = getpass.getpass('Password: '); print('got', p[::-1], shutil.get_terminal_size())",
        ],
    );
    // Wait for the prompt, then answer it.
    let until = Instant::now() + Duration::from_secs(10);
    while !t.read(&id, "stdout.log").contains("Password:") {
        assert!(Instant::now() < until, "no prompt");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = t.ok(&["send", "--newline", "--yield", "3s", &id, "s3cret"]);
    let w = t.wait_done(&id);
    assert_eq!(w["exit_code"], 0, "{w}");
    let out = t.read(&id, "stdout.log");
    assert!(out.contains("got terc3s"), "{out:?} / {v}");
    assert!(out.contains("columns=100, lines=30"), "{out:?}");
    // getpass turns echo off: the password is not in the output.
    assert!(!out.contains("s3cret"), "{out:?}");
}

#[test]
fn eof_ends_cat_and_stdin_bytes_go_first() {
    let t = TempRoot::new();
    let id = start(&t, &["-i", "--stdin", "first\n"], &["cat"]);
    let v = t.ok(&["send", "--yield", "1s", &id, "second\n"]);
    assert_eq!(v["bytes_written"], 7, "{v}");
    let v = t.ok(&["send", "--eof", "--yield", "5s", &id]);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(t.read(&id, "stdout.log"), "first\nsecond\n");
    // Closed now.
    let (code, e) = t.err(&["send", &id, "more"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("stdin_closed")),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["job_id"], id.as_str());
}

#[test]
fn eof_alone_closes_a_running_jobs_stdin() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sh", "-c", "cat; echo after-eof; sleep 30"]);
    let v = t.ok(&["send", "--eof", "--yield", "2s", &id]);
    assert_eq!(
        (v["state"].as_str(), v["stdin_open"].as_bool()),
        (Some("running"), Some(false)),
        "{v}"
    );
    assert!(v["stdout"].as_str().unwrap().contains("after-eof"), "{v}");
    let (_, e) = t.err(&["send", &id, "x"]);
    assert_eq!(e["error"]["code"], "stdin_closed", "{e}");
    t.ok(&["kill", &id]);
}

#[test]
fn a_job_that_stops_reading_does_not_hold_send() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sleep", "30"]);
    let big = t.base.join("big");
    std::fs::write(&big, vec![b'x'; 8 << 20]).unwrap();
    let t0 = Instant::now();
    let v = t.ok(&[
        "send",
        "--yield",
        "300ms",
        "--file",
        big.to_str().unwrap(),
        &id,
    ]);
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let n = v["bytes_written"].as_u64().unwrap();
    assert!(n < 8 << 20, "{v}");
    // Only what got in is recorded.
    assert_eq!(
        std::fs::metadata(t.job_dir(&id).join("stdin.log"))
            .unwrap()
            .len(),
        n
    );
    t.ok(&["kill", &id]);
}

#[test]
fn no_record_and_errors() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    t.ok(&["send", "--no-record", "--yield", "1s", &id, "secret\n"]);
    assert!(!t.read(&id, "stdin.log").contains("secret"));
    assert!(t.read(&id, "stdout.log").contains("secret"));
    t.ok(&["send", "--eof", &id]);
    // Not interactive: invalid_state.
    let plain = start(&t, &[], &["sleep", "30"]);
    let (code, e) = t.err(&["send", &plain, "x"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("invalid_state")),
        "{e}"
    );
    t.ok(&["kill", &plain]);
    // Usage.
    let (code, e) = t.err(&["send", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{e}"
    );
    let (code, _) = t.err(&["run", "--tty-size", "80x24", "--", "true"]);
    assert_eq!(code, 2);
    let (code, _) = t.err(&["run", "--tty", "--tty-size", "0x3", "--", "true"]);
    assert_eq!(code, 2);
}

#[test]
fn kill_reaches_a_terminal_jobs_group() {
    let t = TempRoot::new();
    let id = start(
        &t,
        &["--tty"],
        &["sh", "-c", "sleep 71.5 & sleep 71.75; wait"],
    );
    let until = Instant::now() + Duration::from_secs(5);
    while t.pids_matching("sleep 71.5").len() < 2 {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(20));
    }
    let v: Value = t.ok(&["kill", &id]);
    assert_ne!(v["state"], "running", "{v}");
    let until = Instant::now() + Duration::from_secs(5);
    while !t.pids_matching("sleep 71.").is_empty() {
        assert!(Instant::now() < until, "a sleep survived the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn send_before_the_job_starts_is_invalid_state() {
    let t = TempRoot::new();
    // Created, never started: no supervisor, no stdin.sock.
    let made = t.ok(&["create", "-i", "--", "cat"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Queued behind another job of its queue.
    let ahead = start(&t, &["--queue", "pq"], &["sleep", "30"]);
    let queued = start(&t, &["-i", "--queue", "pq"], &["cat"]);
    assert_eq!(t.state(&queued)["job"]["status"], "queued");
    for (id, state) in [(&made, "created"), (&queued, "queued")] {
        let (code, e) = t.err(&["send", id, "x"]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("invalid_state")),
            "{e}"
        );
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("has not started yet") && msg.contains(state),
            "{msg}"
        );
        // A queued job starts by itself: the same send may work later.
        assert_eq!(e["error"]["retryable"], state == "queued", "{e}");
    }
    // The server's door says the same, with 400.
    let srv = t.serve();
    let (status, e) = support::http_json(
        srv.port,
        "POST",
        &format!("/send/{queued}"),
        r#"{"data":"x"}"#,
    );
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("invalid_state")),
        "{e}"
    );
    t.ok(&["kill", &ahead]);
    t.ok(&["kill", &queued]);
}

#[test]
fn a_running_job_without_its_socket_is_stdin_closed() {
    // As between the supervisor letting go of stdin.sock at the end of a
    // run and its recording the end.
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    std::fs::remove_file(t.job_dir(&id).join("stdin.sock")).unwrap();
    let (code, e) = t.err(&["send", &id, "x"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("stdin_closed")),
        "{e}"
    );
    t.ok(&["kill", &id]);
}

/// The supervisor lets go of stdin.sock as the run ends, with callers
/// connected and not taken: they read EOF (or a reset) with no answer.
/// None of their bytes got in, as for a socket already gone: that is
/// `stdin_closed`, not a non-retryable `io_error` ("hung up without an
/// answer", 2 of 600 sends racing a job's end). Played here by a
/// listener of the test's own in the socket's place that hangs up.
#[test]
fn a_send_the_supervisor_hangs_up_on_untaken_is_stdin_closed() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let sock = t.job_dir(&id).join("stdin.sock");
    std::fs::remove_file(&sock).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let hang_up = std::thread::spawn(move || {
        for _ in 0..2 {
            // Taken, then dropped unanswered: EOF, or a reset when the
            // caller's bytes are still unread.
            drop(listener.accept());
        }
    });
    for data in ["x".to_string(), "y".repeat(100_000)] {
        let (code, e) = t.err(&["send", "--yield", "2s", &id, &data]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("stdin_closed")),
            "{e}"
        );
    }
    hang_up.join().unwrap();
    std::fs::remove_file(&sock).unwrap();
    t.ok(&["kill", &id]);
}

#[test]
fn the_input_socket_is_0600_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempRoot::new();
    // The supervisor inherits the caller's umask.
    let root = t.root.to_str().unwrap().to_string();
    let mut c = t.private("sh");
    c.args(["-c", "umask 000; exec \"$@\"", "sh", support::bin()])
        .args(["--root", &root, "run", "--no-wait", "-i", "--", "cat"]);
    let o = t.exec(c);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let id = o.json()["job_id"].as_str().unwrap().to_string();
    let sock = t.job_dir(&id).join("stdin.sock");
    let mode = std::fs::symlink_metadata(&sock)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // And it is the one the supervisor listens on.
    let v = t.ok(&["send", "--newline", "--yield", "2s", &id, "hi"]);
    assert_eq!(v["bytes_written"], 3, "{v}");
    t.ok(&["send", "--eof", &id]);
    t.wait_done(&id);
}

#[test]
fn eof_after_an_unfinished_line_ends_a_terminal_read() {
    let t = TempRoot::new();
    // Text and ^D in one send: the first ^D hands "abc" over, the second
    // is the end of file.
    let id = start(&t, &["--tty"], &["cat"]);
    let v = t.ok(&["send", "--eof", "--yield", "20s", &id, "abc"]);
    assert_eq!(
        (v["state"].as_str(), v["stdin_open"].as_bool()),
        (Some("exited"), Some(false)),
        "{v}"
    );
    // An unfinished line left by an earlier send, then --eof alone.
    let id = start(&t, &["--tty"], &["cat"]);
    t.ok(&["send", "--yield", "100ms", &id, "abc"]);
    let v = t.ok(&["send", "--eof", "--yield", "20s", &id]);
    assert_eq!(
        (v["state"].as_str(), v["stdin_open"].as_bool()),
        (Some("exited"), Some(false)),
        "{v}"
    );
    // At the start of a line one ^D is enough, and only one is sent: the
    // second reader gets no end of file and is still running.
    let id = start(
        &t,
        &["--tty"],
        &["sh", "-c", "cat; echo got-eof; cat; echo again"],
    );
    t.ok(&["send", "--newline", "--eof", "--yield", "100ms", &id, "abc"]);
    let until = Instant::now() + Duration::from_secs(10);
    while !t.read(&id, "stdout.log").contains("got-eof") {
        assert!(Instant::now() < until, "the first cat saw no end of file");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.state(&id)["job"]["status"], "running");
    assert!(!t.read(&id, "stdout.log").contains("again"));
    t.ok(&["kill", &id]);
}

#[test]
fn eof_closes_a_terminal_jobs_input_for_good() {
    // As on a pipe: after --eof the job's input is closed, even though
    // on a terminal it was a ^D and the job reads on.
    let t = TempRoot::new();
    let id = start(
        &t,
        &["--tty"],
        &["sh", "-c", "cat; echo after-eof; sleep 30"],
    );
    let v = t.ok(&["send", "--eof", "--newline", "--yield", "2s", &id, "x"]);
    assert_eq!(
        (v["state"].as_str(), v["stdin_open"].as_bool()),
        (Some("running"), Some(false)),
        "{v}"
    );
    assert_eq!(v["bytes_written"], 2, "{v}");
    let (code, e) = t.err(&["send", &id, "y"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("stdin_closed")),
        "{e}"
    );
    // Nothing of the refused send reached the job or its record.
    assert_eq!(t.read(&id, "stdin.log"), "x\n");
    t.ok(&["kill", &id]);
}

#[test]
fn a_send_that_begins_in_dropped_bytes_says_what_it_skipped() {
    let t = TempRoot::new();
    let id = start(
        &t,
        &["-i", "--max-log-bytes", "100"],
        &["sh", "-c", "seq 1 100; cat >/dev/null; seq 1 1000"],
    );
    // The first part is in (seq 1 100 is 292 bytes); the job now reads.
    let until = Instant::now() + Duration::from_secs(10);
    let cursor = loop {
        let v = t.ok(&["tail", &id]);
        if v["stdout_total_bytes"] == 292 {
            break v["cursor"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < until, "{v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let v = t.ok(&["send", "--eof", "--yield", "20s", &id, "x"]);
    assert_eq!(v["state"], "exited", "{v}");
    let [start, end] = [0, 1].map(|i| v["stdout_range"][i].as_u64().unwrap());
    // The send began at 292, inside what the cap dropped: the answer
    // starts at the kept tail and says how much it passed over.
    assert!(start > 292, "{v}");
    assert_eq!(v["stdout_skipped_bytes"], start - 292, "{v}");
    assert_eq!(v["stderr_skipped_bytes"], 0, "{v}");
    assert_eq!(end, v["stdout_total_bytes"].as_u64().unwrap(), "{v}");
    assert!(
        v["stdout"].as_str().unwrap().ends_with("999\n1000\n"),
        "{v}"
    );
    // As tail --since from the same place says.
    let tail = t.ok(&["tail", "--since", &cursor, &id]);
    for k in ["stdout_range", "stdout_skipped_bytes", "stdout"] {
        assert_eq!(tail[k], v[k], "{k}: {tail} / {v}");
    }
    let s: Value = serde_json::from_str(include_str!("../schema/agent-exec.schema.json")).unwrap();
    validate::valid(&s, &v);
}

/// A job whose stdin nobody reads until the test creates `go` in its
/// working directory; then `then` runs with the input.
fn gated(t: &TempRoot, then: &str) -> String {
    let script = format!("until [ -e go ]; do sleep 0.05; done; {then}");
    start(t, &["-i"], &["sh", "-c", &script])
}

fn open_gate(t: &TempRoot) {
    std::fs::write(t.cwd.join("go"), b"").unwrap();
}

/// Fill the job's stdin pipe: it takes no more until the job reads.
/// Returns once the supervisor has closed the filling send's connection:
/// it answers a caller just before it closes that caller's end, and an
/// end still open would be counted by `until_connected` as the next
/// caller, which may then not have connected yet (a later one could get
/// ahead of it).
fn fill(t: &TempRoot, id: &str) {
    let big = t.base.join("big");
    std::fs::write(&big, vec![b'x'; 8 << 20]).unwrap();
    let v = t.ok(&[
        "send",
        "--yield",
        "200ms",
        "--file",
        big.to_str().unwrap(),
        id,
    ]);
    assert!(v["bytes_written"].as_u64().unwrap() < 8 << 20, "{v}");
    let until = Instant::now() + Duration::from_secs(20);
    while connections(t, id) > 0 {
        assert!(
            Instant::now() < until,
            "the filling send's connection stayed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Callers connected to the job's stdin.sock (taken by its supervisor
/// or still in the listen queue; also one already answered whose end the
/// supervisor has not closed yet): /proc/net/unix lists each connection's
/// supervisor end under the listening socket's path, as well as the
/// listening socket itself.
fn connections(t: &TempRoot, id: &str) -> usize {
    let dir = t.job_dir(id).display().to_string();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap();
    table.lines().filter(|l| l.contains(&dir)).count() - 1
}

fn until_connected(t: &TempRoot, id: &str, n: usize) {
    let until = Instant::now() + Duration::from_secs(20);
    while connections(t, id) < n {
        assert!(Instant::now() < until, "{n} callers never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `n` connections to job `id`'s stdin.sock that send nothing.
fn idle_connections(t: &TempRoot, id: &str, n: usize) -> Vec<std::os::unix::net::UnixStream> {
    let sock = t.job_dir(id).join("stdin.sock");
    (0..n)
        .map(|_| std::os::unix::net::UnixStream::connect(&sock).unwrap())
        .collect()
}

/// A send the supervisor takes only after its --yield has ended (the
/// sixteen places held by connections that send nothing, until they are
/// given up) writes nothing, and says so: invalid_state, retryable. It
/// answered ok, exit 0, with bytes_written 0, of a job that reads (its
/// caller took the input for delivered and never sent it again; audit
/// 29).
#[test]
fn a_send_taken_after_its_yield_is_refused_as_retryable() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let idle = idle_connections(&t, &id, 16);
    until_connected(&t, &id, 16);
    let (code, e) = t.err(&["send", "--yield", "1s", &id, "LATE"]);
    assert_eq!(code, 1, "{e}");
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    assert_eq!(e["error"]["retryable"], true, "{e}");
    drop(idle);
    // The job reads: a send now gets in, and the refused one never did.
    let v = t.ok(&["send", "--yield", "500ms", &id, "NOW"]);
    assert_eq!(v["bytes_written"], 3, "{v}");
    t.ok(&["send", "--eof", &id]);
    let v = t.wait_done(&id);
    assert_eq!(v["stdout"], "NOW", "{v}");
}

#[test]
fn a_send_refused_as_retryable_never_reaches_the_job_later() {
    let t = TempRoot::new();
    let id = gated(&t, "tail -c 100");
    fill(&t, &id);
    std::thread::scope(|s| {
        // Sixteen callers take every place the supervisor has.
        let waiting: Vec<_> = (1..=16)
            .map(|i| {
                let (t, id) = (&t, &id);
                s.spawn(move || {
                    let text = format!("m{i},");
                    (t.ok(&["send", "--yield", "30s", id, &text]), text)
                })
            })
            .collect();
        until_connected(&t, &id, 16);
        // The seventeenth waits in the listen queue past its yield.
        let t0 = Instant::now();
        let (code, e) = t.err(&["send", "--yield", "1s", &id, "LATE"]);
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        assert_eq!(code, 1, "{e}");
        assert_eq!(e["error"]["retryable"], true, "{e}");
        // Then the job reads: the sixteen get in, the refused one never.
        // An eof after them ends the job, and with it their yields.
        open_gate(&t);
        let v = t.ok(&["send", "--eof", "--yield", "20s", &id]);
        assert_eq!(v["stdin_open"], false, "{v}");
        for w in waiting {
            let (v, text) = w.join().unwrap();
            assert_eq!(v["bytes_written"], text.len(), "{v}");
        }
    });
    t.wait_done(&id);
    let out = t.read(&id, "stdout.log");
    for i in 1..=16 {
        assert!(out.contains(&format!("m{i},")), "m{i} missing: {out:?}");
    }
    assert!(!out.contains("LATE"), "{out:?}");
    assert!(!t.read(&id, "stdin.log").contains("LATE"));
}

#[test]
fn connections_that_send_nothing_are_let_go_and_never_hold_send() {
    use std::io::Read;
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    // Sixteen connections take every place and never send a request.
    let idle = idle_connections(&t, &id, 16);
    let t0 = Instant::now();
    for mut c in idle {
        // The supervisor hangs up on each (end of file, no answer): a
        // timeout here means it still holds the place.
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got)
            .expect("an idle connection was never let go");
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let v = t.ok(&["send", "--newline", "--yield", "100ms", &id, "hi"]);
    assert_eq!(v["bytes_written"], 3, "{v}");
    t.ok(&["kill", &id]);
}

/// CPU time (user + system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// More callers than places wait in the listen queue at no cost: the
/// supervisor spun a whole core, polling a listener it would not accept
/// from, for as long as a seventeenth caller waited.
#[test]
fn callers_beyond_every_place_cost_the_supervisor_nothing() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sleep", "30"]);
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let held = idle_connections(&t, &id, 17);
    // Well within the 2 s for which idle connections are kept.
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(sup);
    std::thread::sleep(Duration::from_millis(1000));
    let used = cpu_ticks(sup) - before;
    drop(held);
    // A spinning supervisor takes about 100 ticks a second.
    assert!(used < 30, "{used} ticks in 1 s");
    t.ok(&["kill", &id]);
}

#[test]
fn a_slow_message_that_keeps_coming_is_not_cut_off() {
    use std::io::{BufRead, Write};
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let sock = t.job_dir(&id).join("stdin.sock");
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    // A caller's own pace, longer in all than the idle bound (2 s) but
    // never idle that long between pieces.
    let pieces = 6;
    c.write_all(format!("{{\"len\":{pieces},\"wait_ms\":5000}}\n").as_bytes())
        .unwrap();
    for _ in 0..pieces {
        std::thread::sleep(Duration::from_millis(600));
        c.write_all(b"x").unwrap();
    }
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&c).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["bytes_written"], pieces, "{v}");
    assert_eq!(t.read(&id, "stdin.log"), "xxxxxx");
    t.ok(&["kill", &id]);
}

#[test]
fn text_that_is_not_utf8_is_sent_byte_for_byte() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let text = b"caf\xe9 \xff\n";
    let mut c = t.cmd(&["send", "--eof", "--yield", "5s", &id]);
    c.arg(std::ffi::OsStr::from_bytes(text));
    let v = t.exec(c).json();
    assert_eq!(v["bytes_written"], text.len(), "{v}");
    t.wait_done(&id);
    let dir = t.job_dir(&id);
    assert_eq!(std::fs::read(dir.join("stdin.log")).unwrap(), text);
    assert_eq!(std::fs::read(dir.join("stdout.log")).unwrap(), text);
    // The job id is still a word of UTF-8.
    let mut c = t.cmd(&["send"]);
    c.arg(std::ffi::OsStr::from_bytes(b"\xff"));
    c.arg("x");
    let o = t.exec(c);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert_eq!(o.json()["error"]["code"], "usage_error");
}

#[test]
fn more_callers_than_places_are_not_held_past_their_yield() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sleep", "120"]);
    fill(&t, &id);
    let yield_s = 4;
    std::thread::scope(|s| {
        let callers: Vec<_> = (1..=20)
            .map(|i| {
                let (t, id) = (&t, &id);
                s.spawn(move || {
                    let t0 = Instant::now();
                    let o = t.out(&[
                        "send",
                        "--yield",
                        &format!("{yield_s}s"),
                        id,
                        &format!("m{i}"),
                    ]);
                    (t0.elapsed(), o.json())
                })
            })
            .collect();
        for c in callers {
            let (took, v) = c.join().unwrap();
            assert!(took < Duration::from_secs(yield_s + 3), "{took:?}: {v}");
            if v["ok"] == true {
                // Nothing gets into a full pipe; stdin stays open.
                assert_eq!(
                    (v["bytes_written"].as_u64(), v["stdin_open"].as_bool()),
                    (Some(0), Some(true)),
                    "{v}"
                );
            } else {
                assert_eq!(v["error"]["retryable"], true, "{v}");
            }
        }
    });
    t.ok(&["kill", &id]);
}

#[test]
fn eof_waits_behind_an_earlier_callers_bytes() {
    let t = TempRoot::new();
    let id = gated(&t, "tail -c 7");
    fill(&t, &id);
    std::thread::scope(|s| {
        let a = s.spawn(|| t.ok(&["send", "--yield", "30s", &id, "DATA-A\n"]));
        until_connected(&t, &id, 1);
        let eof = s.spawn(|| t.ok(&["send", "--eof", "--yield", "30s", &id]));
        until_connected(&t, &id, 2);
        open_gate(&t);
        // A's bytes got in, then the end of file: the job has ended.
        let a = a.join().unwrap();
        assert_eq!(a["bytes_written"], 7, "{a}");
        let eof = eof.join().unwrap();
        assert_eq!(eof["stdin_open"], false, "{eof}");
    });
    t.wait_done(&id);
    assert_eq!(t.read(&id, "stdout.log"), "DATA-A\n");
}

#[test]
fn eof_whose_yield_ends_behind_an_earlier_caller_says_stdin_is_open() {
    let t = TempRoot::new();
    let id = gated(&t, "tail -c 7");
    fill(&t, &id);
    std::thread::scope(|s| {
        let a = s.spawn(|| t.ok(&["send", "--yield", "30s", &id, "DATA-A\n"]));
        until_connected(&t, &id, 1);
        // Its yield ends while A's bytes are still waiting: nothing closed.
        let eof = t.ok(&["send", "--eof", "--yield", "500ms", &id]);
        assert_eq!(
            (eof["bytes_written"].as_u64(), eof["stdin_open"].as_bool()),
            (Some(0), Some(true)),
            "{eof}"
        );
        open_gate(&t);
        // Still open: a later eof closes it, after A's bytes (the job
        // then ends, which ends A's yield too).
        let v = t.ok(&["send", "--eof", "--yield", "20s", &id]);
        assert_eq!(v["stdin_open"], false, "{v}");
        let a = a.join().unwrap();
        assert_eq!(a["bytes_written"], 7, "{a}");
    });
    t.wait_done(&id);
    assert_eq!(t.read(&id, "stdout.log"), "DATA-A\n");
}

#[test]
fn eof_closes_input_even_when_its_text_did_not_all_get_in() {
    let t = TempRoot::new();
    let id = gated(&t, "cat >/dev/null; echo saw-eof");
    let big = t.base.join("big");
    std::fs::write(&big, vec![b'x'; 8 << 20]).unwrap();
    let v = t.ok(&[
        "send",
        "--eof",
        "--yield",
        "300ms",
        "--file",
        big.to_str().unwrap(),
        &id,
    ]);
    let n = v["bytes_written"].as_u64().unwrap();
    assert!(n < 8 << 20, "{v}");
    // After what got in, input is closed, as --eof says.
    assert_eq!(v["stdin_open"], false, "{v}");
    let (_, e) = t.err(&["send", &id, "more"]);
    assert_eq!(e["error"]["code"], "stdin_closed", "{e}");
    open_gate(&t);
    let w = t.wait_done(&id);
    assert_eq!(w["exit_code"], 0, "{w}");
    assert_eq!(t.read(&id, "stdout.log"), "saw-eof\n");
}

/// A terminal whose input is full (the job is not reading yet) takes
/// `--eof`'s ^D once the job reads: it was dropped (a write that would
/// block), and the job waited for the end of its input for ever while
/// `send` had said input was closed.
#[test]
fn eof_reaches_a_terminal_whose_input_is_full() {
    let t = TempRoot::new();
    // No echo (set before the test sends): the output is wc's count.
    let script = "stty -echo; : >ready; until [ -e go ]; do sleep 0.05; done; wc -c";
    let id = start(&t, &["--tty"], &["sh", "-c", script]);
    let until = Instant::now() + Duration::from_secs(20);
    while !t.cwd.join("ready").exists() {
        assert!(Instant::now() < until, "the job never began");
        std::thread::sleep(Duration::from_millis(10));
    }
    let lines = t.base.join("lines");
    let text: String = (1..=20000).map(|i| format!("{i}\n")).collect();
    std::fs::write(&lines, &text).unwrap();
    let v = t.ok(&[
        "send",
        "--yield",
        "300ms",
        "--file",
        lines.to_str().unwrap(),
        &id,
    ]);
    let n = v["bytes_written"].as_u64().unwrap();
    assert!(n < text.len() as u64, "the terminal took it all: {v}");
    let v = t.ok(&["send", "--eof", "--yield", "100ms", &id]);
    assert_eq!(v["stdin_open"], false, "{v}");
    open_gate(&t);
    let w = t.ok(&["wait", "--until", "20", &id]);
    assert_eq!(w["state"], "exited", "the job never saw its input end");
    assert_eq!(t.read(&id, "stdout.log").trim(), n.to_string());
}

/// `--file -` sends the caller's stdin, to its end: bytes TEXT cannot
/// carry (a NUL) piped in (it was "No such file" for a file named `-`).
#[test]
fn file_dash_sends_the_callers_stdin() {
    use std::io::Write;
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let mut c = t.cmd(&["send", "--file", "-", "--eof", "--yield", "5s", &id]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"a\0b\n").unwrap();
    let o = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bytes_written"], 4, "{v}");
    let w = t.wait_done(&id);
    assert_eq!(w["state"], "exited", "{w}");
    assert_eq!(
        std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap(),
        b"a\0b\n"
    );
    assert_eq!(
        std::fs::read(t.job_dir(&id).join("stdin.log")).unwrap(),
        b"a\0b\n"
    );
}

/// An empty `--file` is an argument error, as every other empty path
/// is (it was `io_error` "read : No such file"), even for a job that
/// does not exist (checked first).
#[test]
fn an_empty_file_path_is_a_usage_error() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    for job in [id.as_str(), "01NOSUCHJOB"] {
        let (code, e) = t.err(&["send", "--file", "", job]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (2, Some("usage_error")),
            "{e}"
        );
    }
    t.ok(&["send", "--eof", &id]);
    assert_eq!(t.wait_done(&id)["stdout"], "", "nothing was sent");
}

/// A `--file` that is a directory, a FIFO or a device is the caller's
/// own path, not a job's file: `io_error` as a missing one is, never
/// `unsafe_path` (the refusal of what sits in a job directory).
#[test]
fn a_file_that_is_not_regular_is_an_io_error() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let fifo = t.base.join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let dir = t.base.to_str().unwrap().to_string();
    let missing = t.base.join("missing");
    for path in [
        dir.as_str(),
        fifo.to_str().unwrap(),
        "/dev/null",
        missing.to_str().unwrap(),
    ] {
        let (code, e) = t.err(&["send", "--file", path, &id]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("io_error")),
            "{path}: {e}"
        );
    }
    t.ok(&["send", "--eof", &id]);
    assert_eq!(t.wait_done(&id)["stdout"], "", "nothing was sent");
}

#[test]
fn a_send_over_the_message_limit_is_stdin_too_large() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["cat"]);
    let huge = t.base.join("huge");
    std::fs::write(&huge, vec![b'x'; (16 << 20) + 1]).unwrap();
    let (code, e) = t.err(&["send", "--file", huge.to_str().unwrap(), &id]);
    assert_eq!(
        (
            code,
            e["error"]["code"].as_str(),
            e["error"]["retryable"].as_bool()
        ),
        (1, Some("stdin_too_large"), Some(false)),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("16 MiB"),
        "{e}"
    );
    // Exactly the limit is fine.
    let limit = t.base.join("limit");
    std::fs::write(&limit, vec![b'y'; 16 << 20]).unwrap();
    t.ok(&[
        "send",
        "--no-record",
        "--yield",
        "100ms",
        "--file",
        limit.to_str().unwrap(),
        &id,
    ]);
    t.ok(&["kill", &id]);
}

#[test]
fn stdin_open_is_false_once_the_run_that_took_the_bytes_has_ended() {
    let t = TempRoot::new();
    let id = start(
        &t,
        &["-i", "--retry", "2", "--retry-delay", "5s"],
        &["sh", "-c", "read -r line; echo got $line; exit 1"],
    );
    let v = t.ok(&["send", "--newline", "--yield", "2s", &id, "x"]);
    // Run 1 read the line and ended during the yield; the job waits for
    // run 2. The input the send reached is gone with run 1.
    assert_eq!(
        (
            v["attempt"].as_u64(),
            v["state"].as_str(),
            v["stdin_open"].as_bool()
        ),
        (Some(1), Some("running"), Some(false)),
        "{v}"
    );
    assert_eq!(v["stdout"], "got x\n", "{v}");
    t.ok(&["kill", &id]);
}

/// A caller that overtook an earlier one (whose header was still on its
/// way) and began its message finishes it before the earlier caller gets
/// a byte in: the earlier one's bytes were spliced into the middle of the
/// other's once its header came.
#[test]
fn a_message_that_has_begun_is_never_split_by_an_earlier_caller() {
    use std::io::{BufRead, Write};
    let t = TempRoot::new();
    let id = gated(&t, "cat");
    let sock = t.job_dir(&id).join("stdin.sock");
    // The earlier caller: connected, its header not sent yet.
    let mut early = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    until_connected(&t, &id, 1);
    let big = t.base.join("big");
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&big, &body).unwrap();
    std::thread::scope(|s| {
        let later = s.spawn(|| {
            let f = big.to_str().unwrap();
            // Answered when its yield is over (it watches the output that
            // long); its bytes are all in well before.
            t.ok(&[
                "send",
                "--yield",
                "8s",
                "--max-bytes",
                "0",
                "--file",
                f,
                &id,
            ])
        });
        // Its first bytes are in (the pipe is full, the job reads
        // nothing yet): its message has begun.
        let until = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(t.job_dir(&id).join("stdin.log")).map_or(0, |m| m.len()) == 0 {
            assert!(Instant::now() < until, "the later send never began");
            std::thread::sleep(Duration::from_millis(10));
        }
        early
            .write_all(b"{\"len\":5,\"wait_ms\":30000}\nHELLO")
            .unwrap();
        open_gate(&t);
        let v = later.join().unwrap();
        assert_eq!(v["bytes_written"], body.len(), "{v}");
    });
    early
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(&early)
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"bytes_written\":5"), "{line}");
    drop(early);
    t.ok(&["send", "--eof", "--yield", "10s", &id]);
    t.wait_done(&id);
    let mut want = body.clone();
    want.extend_from_slice(b"HELLO");
    let got = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    assert!(
        got == want,
        "the messages were spliced: HELLO at {:?}",
        got.windows(5).position(|w| w == b"HELLO")
    );
}

/// A send's answer starts on a character boundary: a character the job
/// had only begun to write when the send came is returned whole.
#[test]
fn a_send_answer_starts_with_a_character_the_job_had_begun() {
    let t = TempRoot::new();
    let id = start(
        &t,
        &["-i"],
        &[
            "sh",
            "-c",
            "printf 'ab\\342\\202'; read x; printf '\\254 got %s\\n' \"$x\"; sleep 1",
        ],
    );
    let until = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(t.job_dir(&id).join("stdout.log")).map_or(0, |m| m.len()) < 4 {
        assert!(Instant::now() < until, "the job never wrote");
        std::thread::sleep(Duration::from_millis(10));
    }
    let v = t.ok(&["send", "--newline", "--yield", "2s", &id, "hi"]);
    assert_eq!(v["stdout"], "€ got hi\n", "{v}");
    assert_eq!(v["stdout_range"][0], 2, "{v}");
}

/// Once input is closed, every later send is `stdin_closed`, an empty
/// one (a second `--eof`, or nothing to say) included.
#[test]
fn an_empty_send_after_the_end_of_input_is_stdin_closed() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sh", "-c", "cat >/dev/null; sleep 30"]);
    let v = t.ok(&["send", "--eof", "--yield", "200ms", &id]);
    assert_eq!(v["stdin_open"], false, "{v}");
    for a in [
        vec!["send", "--yield", "200ms", "--eof", &id],
        vec!["send", "--yield", "200ms", &id, ""],
    ] {
        let v = t.out(&a).json();
        assert_eq!(v["error"]["code"], "stdin_closed", "{a:?}: {v}");
    }
    t.ok(&["kill", &id]);
}

/// A send whose bytes are blocked (the job never reads; its pipe is
/// full) stops waiting at a stop signal, not at the end of its yield:
/// it answers as the yield's end would, with the bytes that got in (no
/// more reach the job, and stdin.log has exactly them), exit 130.
#[test]
fn sigint_ends_a_blocked_send_at_once() {
    let t = TempRoot::new();
    let id = start(&t, &["-i"], &["sleep", "60"]);
    let big = t.base.join("big");
    std::fs::write(&big, vec![b'x'; 1 << 20]).unwrap();
    let child = t
        .cmd(&[
            "send",
            "--file",
            big.to_str().unwrap(),
            "--yield",
            "20s",
            &id,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    support::blocked_log(&t, &id);
    let t0 = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert_eq!(o.status.code(), Some(130), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["ok"], &v["type"]),
        (&serde_json::json!(true), &serde_json::json!("send")),
        "{v}"
    );
    assert_eq!(v["state"], "running", "{v}");
    let written = v["bytes_written"].as_u64().unwrap();
    assert!(written > 0 && written < 1 << 20, "{v}");
    // Nothing more got in after the answer: once the job has ended, its
    // record of input is exactly the bytes the answer counted.
    t.ok(&["kill", &id]);
    t.wait_done(&id);
    let logged = std::fs::metadata(t.job_dir(&id).join("stdin.log"))
        .unwrap()
        .len();
    assert_eq!(logged, written);
}

/// A supervisor that dies while it writes a send's bytes: some got in
/// (stdin.log has them), so the answer is an io_error that says they may
/// have, not stdin_closed ("the job has ended", as if none had). Fails
/// on the old code only when the reader finds the loss recorded first
/// (1 run in 3 here).
#[test]
fn a_supervisor_dying_mid_send_is_an_io_error_that_says_bytes_may_have_got_in() {
    let t = TempRoot::new();
    let data = t.base.join("big.bin");
    std::fs::write(&data, vec![b'x'; 1 << 20]).unwrap();
    let v = t.ok(&["run", "--no-wait", "-i", "--", "sleep", "30"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let send = t
        .cmd(&[
            "send",
            "--yield",
            "5s",
            "--file",
            data.to_str().unwrap(),
            &id,
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the job's pipe is full, the supervisor is mid-write.
    let log = t.job_dir(&id).join("stdin.log");
    let until = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < until, "nothing was written");
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = send.wait_with_output().unwrap();
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["error"]["code"], "io_error", "{e}");
    assert_eq!(e["error"]["retryable"], false, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("may have reached"),
        "{e}"
    );
}

/// A terminal job's shell with job control puts each of its jobs in a
/// process group of its own, in the job's session: a timeout, a `kill`
/// and the check `delete` makes reach them all (they outlived a job
/// recorded killed, and `delete` removed it while they ran).
#[test]
fn a_terminal_jobs_other_process_groups_go_with_it() {
    let t = TempRoot::new();
    let gone = |needle: &str| {
        let until = Instant::now() + Duration::from_secs(10);
        while !t.pids_matching(needle).is_empty() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    // Its timeout (set -m: a group per background job, as an
    // interactive shell makes).
    let v = t.ok(&[
        "run",
        "--tty",
        "--timeout",
        "1",
        "--",
        "bash",
        "-c",
        "set -m; sleep 3601.25 & sleep 3602.25",
    ]);
    assert_eq!(v["timed_out"], true, "{v}");
    assert!(
        gone("sleep 3601.25"),
        "a background group outlived the timeout"
    );
    assert!(gone("sleep 3602.25"));
    // `kill`, and `delete` meanwhile.
    let id = start(
        &t,
        &["--tty"],
        &["bash", "-c", "set -m; sleep 3603.25 & sleep 3604.25 & wait"],
    );
    let until = Instant::now() + Duration::from_secs(10);
    while t.pids_matching("sleep 3604.25").is_empty() {
        assert!(Instant::now() < until, "the job never started its sleeps");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, e) = t.err(&["delete", &id]);
    assert_eq!(e["error"]["code"], "invalid_state", "{e}");
    t.ok(&["kill", "--signal", "KILL", &id]);
    t.wait_done(&id);
    assert!(gone("sleep 3603.25"), "a background group outlived kill");
    assert!(gone("sleep 3604.25"));
    t.ok(&["delete", &id]);
}

/// An agent that comes back to a job reads from `status` whether it can
/// `send` to it (`interactive`) and whether its output is a terminal's
/// (`tty`); `create --tty` says `tty` as `run`'s answer does. Nothing
/// said either after the launch.
#[test]
fn status_says_whether_a_job_takes_input_and_runs_on_a_terminal() {
    let t = TempRoot::new();
    let c = t.ok(&["create", "--tty", "--", "cat"]);
    assert_eq!(c["tty"], true, "{c}");
    let id = c["job_id"].as_str().unwrap().to_string();
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (&s["tty"], &s["interactive"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{s}"
    );
    let i = start(&t, &["-i"], &["cat"]);
    let s = t.ok(&["status", &i]);
    assert_eq!(
        (s.get("tty"), &s["interactive"]),
        (None, &Value::Bool(true)),
        "{s}"
    );
    let plain = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let s = t.ok(&["status", &plain]);
    assert_eq!((s.get("tty"), s.get("interactive")), (None, None), "{s}");
    let c = t.ok(&["create", "--", "true"]);
    assert!(c.get("tty").is_none(), "{c}");
    t.ok(&["send", "--eof", &i]);
    t.wait_done(&i);
}

/// A root whose job paths are too long for a socket address (108 bytes:
/// a root of about 70 made every `-i` and `--tty` job fail
/// `spawn_failed`, "path must be shorter than SUN_LEN") still takes
/// interactive jobs, on a pipe and on a terminal, and `send` reaches
/// them.
#[test]
fn interactive_jobs_work_under_a_long_root() {
    let t = TempRoot::new();
    let root = t.base.join("r".repeat(120));
    let cmd = |args: &[&str]| {
        let mut c = t.bare();
        c.arg("--root").arg(&root).args(args);
        t.exec(c).json()
    };
    for flag in ["-i", "--tty"] {
        let v = cmd(&["run", flag, "--no-wait", "--", "cat"]);
        assert_eq!(v["state"], "running", "{flag}: {v}");
        let id = v["job_id"].as_str().unwrap().to_string();
        let s = cmd(&["send", "--newline", "--eof", &id, "hello"]);
        assert_eq!(s["ok"], true, "{flag}: {s}");
        let w = cmd(&["wait", &id]);
        assert_eq!(w["state"], "exited", "{flag}: {w}");
        assert!(
            w["stdout"].as_str().unwrap().contains("hello"),
            "{flag}: {w}"
        );
    }
}

/// `send --file -` with a terminal for stdin is refused as `run --stdin
/// -` is (`stdin_required`): it read the terminal until someone typed ^D
/// (audit).
#[test]
fn send_file_dash_on_a_terminal_is_refused() {
    if support::no_script() {
        return;
    }
    let t = TempRoot::new();
    let v = t.ok(&["run", "-i", "--no-wait", "--", "cat"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let line = format!(
        "timeout 10 {} --root {} send --file - {id}",
        support::bin(),
        t.root.display()
    );
    // script(1) gives the command a pseudo-terminal as its stdin; ours,
    // held open, never ends it.
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&t.cwd)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let held = child.stdin.take();
    let o = child.wait_with_output().unwrap();
    drop(held);
    let text = String::from_utf8_lossy(&o.stdout);
    let json = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["error"]["code"], "stdin_required", "{v}");
    t.ok(&["kill", &id]);
}

/// A send to a job that reads ended while a `restart` of it is under way
/// (`lock` byte 1 held, as the restart holds it from before it stops the
/// run to the next run's launch) is `invalid_state`, retryable: the next
/// run takes input. It was `stdin_closed`, not retryable, in the moment
/// between the old run's end and the new one (audit 36). Without the
/// restart, an ended job's send is `stdin_closed` as before.
#[test]
fn a_send_while_a_restart_is_under_way_may_be_tried_again() {
    let t = TempRoot::new();
    let id = t.job_id_of(&["run", "-i", "--", "true"]);
    assert_eq!(t.wait_done(&id)["state"], "exited");
    let lock = t.job_dir(&id).join("lock");
    // A POSIX record lock on byte 1 conflicts with the OFD lock a send
    // asks about, as the restart's own does.
    let mut holder = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl,sys; f=open(sys.argv[1],'r+'); \
             fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB, 1, 1); print('held', flush=True); sys.stdin.read()",
        ])
        .arg(&lock)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "held");
    let (code, e) = t.err(&["send", &id, "hi"]);
    assert_eq!(
        (code, &e["error"]["code"], &e["error"]["retryable"]),
        (1, &Value::from("invalid_state"), &Value::from(true)),
        "{e}"
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let (_, e) = t.err(&["send", &id, "hi"]);
    assert_eq!(e["error"]["code"], "stdin_closed", "{e}");
}
