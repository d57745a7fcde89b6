//! Talking to a running job: `run -i` / `--tty` and `send`. A REPL on a
//! pipe and on a terminal, a password prompt that reads the terminal,
//! end of file, input recorded in stdin.log, and the errors.

mod support;

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
    // second reader still reads.
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
    let v = t.ok(&["send", "--eof", "--yield", "20s", &id]);
    assert_eq!(v["state"], "exited", "{v}");
    assert!(v["stdout"].as_str().unwrap().contains("again"), "{v}");
}
