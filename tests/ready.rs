//! `wait --output PATTERN` (readiness): returns as soon as a matching
//! line exists, when the job ends, or at `--until`; also over HTTP.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::TempRoot;

/// Poll (with a deadline) until a job's log holds `needle`.
fn log_has(t: &TempRoot, id: &str, name: &str, needle: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while !t.read(id, name).contains(needle) {
        assert!(
            Instant::now() < until,
            "{name} of {id} never got {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_line_written_before_the_call_returns_at_once() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "echo boot; echo 'Listening on 127.0.0.1:1234'; sleep 30",
    ]);
    log_has(&t, &id, "stdout.log", "Listening");
    let start = Instant::now();
    let v = t.ok(&["wait", "--output", "Listening on", "--until", "20", &id]);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(v["state"], "running");
    assert_eq!(v["matched"]["stream"], "stdout");
    assert_eq!(v["matched"]["line"], "Listening on 127.0.0.1:1234");
    assert_eq!(v["matched"]["offset"], 5);
    t.ok(&["kill", &id]);
}

#[test]
fn a_line_written_after_the_call_wakes_the_wait_soon_after_the_write() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "sleep 0.5; echo 'Listening on 127.0.0.1:4321'; sleep 30",
    ]);
    let start = Instant::now();
    let o = t.out(&["wait", "--output", "Listening on", "--until", "20", &id]);
    let back = SystemTime::now();
    let v = o.json();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(v["matched"]["line"], "Listening on 127.0.0.1:4321", "{v}");
    assert_eq!(v["matched"]["offset"], 0);
    // The log's mtime is the write: the answer came within a few ms of it.
    let written = std::fs::metadata(t.job_dir(&id).join("stdout.log"))
        .unwrap()
        .modified()
        .unwrap();
    let lag = back.duration_since(written).unwrap_or_default();
    eprintln!("readiness: process exit {lag:?} after the matching write");
    assert!(lag < Duration::from_millis(250), "{lag:?}");
    t.ok(&["kill", &id]);
}

/// A line still being written matches once the match is settled: a
/// prompt waits for its answer without a newline (the wait waited for
/// ever). A regex match that ends where the writing stopped (`$`, `\b`
/// there) may still be undone by what comes: it waits for the line.
#[test]
fn an_unfinished_line_matches_once_the_match_is_settled() {
    let t = TempRoot::new();
    let script = "printf 'Continue? [y/n] '; read a; echo \"got $a\"; sleep 30";
    let v = t.ok(&["run", "--no-wait", "-i", "--", "sh", "-c", script]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let v = t.ok(&["wait", "--output", "[y/n]", "--until", "20", &id]);
    assert_eq!(v["matched"]["line"], "Continue? [y/n] ", "{v}");
    assert_eq!(v["state"], "running", "{v}");
    t.ok(&["send", "--newline", &id, "y"]);
    let v = t.ok(&["wait", "--output", "got y", "--until", "20", &id]);
    assert_eq!(v["matched"]["line"], "Continue? [y/n] got y", "{v}");
    t.ok(&["kill", &id]);
    let id = t.start_job(&["sh", "-c", "printf ready; sleep 0.4; echo ' now'; sleep 30"]);
    let regex = ["--output-match-type", "regex"];
    let v = t.ok(&[
        &["wait", "--output", r"ready\b", "--until", "20"][..],
        &regex,
        &[&id],
    ]
    .concat());
    assert_eq!(v["matched"]["line"], "ready now", "{v}");
    t.ok(&["kill", &id]);
    // A finished job's last line counts without its newline.
    let id = t.start_job(&["sh", "-c", "printf 'last ready'"]);
    t.wait_done(&id);
    let v = t.ok(&["wait", "--output", "ready", &id]);
    assert_eq!(v["matched"]["line"], "last ready", "{v}");
}

#[test]
fn regex_and_stream_filter() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "echo 'ready on 80'; echo 'ready on 81' >&2; sleep 30",
    ]);
    log_has(&t, &id, "stderr.log", "81");
    let v = t.ok(&[
        "wait",
        "--output",
        "ready on [0-9]+$",
        "--output-match-type",
        "regex",
        "--output-stream",
        "stderr",
        &id,
    ]);
    assert_eq!(v["matched"]["stream"], "stderr");
    assert_eq!(v["matched"]["line"], "ready on 81");
    let v = t.ok(&[
        "wait",
        "--output",
        "ready",
        "--output-stream",
        "stdout",
        &id,
    ]);
    assert_eq!(v["matched"]["stream"], "stdout");
    // A stream without the line does not match, whatever the other has.
    let v = t.ok(&[
        "wait",
        "--output",
        "81",
        "--output-stream",
        "stdout",
        "--until",
        "0.2",
        &id,
    ]);
    assert!(v.get("matched").is_none(), "{v}");
    let (code, e) = t.err(&["wait", "--output", "(", "--output-match-type", "regex", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_pattern"))
    );
    t.ok(&["kill", &id]);
}

#[test]
fn since_skips_an_earlier_match() {
    let t = TempRoot::new();
    let go = t.cwd.join("go");
    let script = format!(
        "echo 'ready 1'; while [ ! -e '{}' ]; do sleep 0.01; done; echo 'ready 2'; sleep 30",
        go.display()
    );
    let id = t.start_job(&["sh", "-c", &script]);
    let v = t.ok(&["wait", "--output", "ready", "--until", "20", &id]);
    assert_eq!(v["matched"]["line"], "ready 1");
    let cursor = v["cursor"].as_str().unwrap().to_string();
    let child = t
        .cmd(&[
            "wait", "--output", "ready", "--since", &cursor, "--until", "20", &id,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&go, "").unwrap();
    let o = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matched"]["line"], "ready 2", "{v}");
    assert_eq!(v["matched"]["offset"], 8);
    let (code, e) = t.err(&["wait", "--output", "ready", "--since", "bogus", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_cursor"))
    );
    t.ok(&["kill", &id]);
}

/// A cursor inside a line: the line is matched whole from its real start
/// (`^` means its start, `offset` is its start), but only a match that
/// ends after the cursor counts.
#[test]
fn a_cursor_inside_a_line_matches_the_whole_line_past_the_cursor() {
    let t = TempRoot::new();
    let go = t.cwd.join("go");
    let script = format!(
        "printf 'notREADY-'; while [ ! -e '{}' ]; do sleep 0.01; done; echo yet",
        go.display()
    );
    let id = t.start_job(&["sh", "-c", &script]);
    log_has(&t, &id, "stdout.log", "notREADY-");
    let cursor = t.ok(&["tail", &id])["cursor"].as_str().unwrap().to_string();
    std::fs::write(&go, "").unwrap();
    t.wait_done(&id);
    let wait = |pattern: &str, kind: &str| {
        t.ok(&[
            "wait",
            "--output",
            pattern,
            "--output-match-type",
            kind,
            "--since",
            &cursor,
            "--until",
            "20",
            &id,
        ])
    };
    for (pattern, kind) in [("^yet", "regex"), ("READY", "contains"), ("READY", "regex")] {
        let v = wait(pattern, kind);
        assert!(v.get("matched").is_none(), "{pattern} ({kind}): {v}");
    }
    for (pattern, kind) in [
        ("READY-y", "contains"),
        ("yet$", "regex"),
        ("^not.*t$", "regex"),
        ("y", "contains"),
    ] {
        let v = wait(pattern, kind);
        assert_eq!(
            v["matched"]["line"], "notREADY-yet",
            "{pattern} ({kind}): {v}"
        );
        assert_eq!(v["matched"]["offset"], 0, "{pattern} ({kind}): {v}");
    }
    // tail --grep follows the same rule.
    let grep = |pattern: &str, kind: &str| {
        t.ok(&[
            "tail",
            "--grep",
            pattern,
            "--grep-type",
            kind,
            "--since",
            &cursor,
            &id,
        ])["matches"]
            .clone()
    };
    assert_eq!(grep("^yet", "regex"), serde_json::json!([]));
    assert_eq!(grep("READY", "contains"), serde_json::json!([]));
    assert_eq!(
        grep("-yet", "contains"),
        serde_json::json!([{"stream": "stdout", "line": "notREADY-yet", "offset": 0}])
    );
}

#[test]
fn a_job_that_ends_without_a_match() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 0.2; echo hello; exit 3"]);
    let v = t.ok(&["wait", "--output", "never", "--until", "20", &id]);
    assert!(v.get("matched").is_none(), "{v}");
    assert_eq!(v["state"], "exited");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["stdout"], "hello\n");
}

#[test]
fn until_without_a_match() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let start = Instant::now();
    let v = t.ok(&["wait", "--output", "never", "--until", "0.3", &id]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(v.get("matched").is_none(), "{v}");
    assert_eq!(v["state"], "running");
    t.ok(&["kill", &id]);
}

fn get(port: u16, path: &str) -> (u16, Value) {
    support::http_json(port, "GET", path, "")
}

#[test]
fn http_wait_output() {
    let t = TempRoot::new();
    let srv = t.serve();
    let port = srv.port;
    let id = t.start_job(&["sh", "-c", "sleep 0.3; echo 'Listening on :9'; sleep 30"]);
    let start = Instant::now();
    let (status, v) = get(port, &format!("/wait/{id}?output=Listening&until=20"));
    assert_eq!(status, 200, "{v}");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(v["matched"]["line"], "Listening on :9", "{v}");
    let (status, v) = get(
        port,
        &format!("/wait/{id}?output=%3A%5B0-9%5D%24&output_match_type=regex&output_stream=stdout"),
    );
    assert_eq!(
        (status, v["matched"]["offset"].as_u64()),
        (200, Some(0)),
        "{v}"
    );
    let (status, v) = get(
        port,
        &format!("/wait/{id}?output=(&output_match_type=regex"),
    );
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_pattern"))
    );
    let (status, v) = get(port, &format!("/wait/{id}?output=x&since=nope"));
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    let (status, v) = get(port, &format!("/wait/{id}?output=never&until=0"));
    assert_eq!(status, 200);
    assert!(v.get("matched").is_none());
    t.ok(&["kill", &id]);
}

#[test]
fn a_terminal_jobs_lines_match_without_their_carriage_return() {
    // A terminal ends lines in "\r\n": matched as line ends, so that `$`
    // anchors and `line` has no "\r"; the log keeps the bytes as written.
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--tty",
        "--",
        "sh",
        "-c",
        "echo ready; sleep 30",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let v = t.ok(&[
        "wait",
        "--output",
        "^ready$",
        "--output-match-type",
        "regex",
        "--until",
        "20",
        &id,
    ]);
    assert_eq!(v["matched"]["line"], "ready", "{v}");
    assert_eq!(v["matched"]["offset"], 0, "{v}");
    let v = t.ok(&["tail", "--grep", "y$", "--grep-type", "regex", &id]);
    assert_eq!(v["matches"][0]["line"], "ready", "{v}");
    assert_eq!(t.read(&id, "stdout.log"), "ready\r\n");
    t.ok(&["kill", &id]);
    // The supervisor's matcher (--output-pattern events) alike.
    let events = t.base.join("events.ndjson");
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--tty",
        "--output-pattern",
        "^go$",
        "--output-match-type",
        "regex",
        "--output-file",
        events.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo go; sleep 30",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    t.ok(&["wait", "--output", "go", "--until", "20", &id]);
    let until = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&events)
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < until, "no job.output.matched event");
        std::thread::sleep(Duration::from_millis(10));
    }
    let text = std::fs::read_to_string(&events).unwrap();
    let e: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(e["line"], "go", "{e}");
    t.ok(&["kill", &id]);
    // A program that ends its lines in "\r\n" itself: the terminal makes
    // them "\r\r\n", and every "\r" before the "\n" is the line's end
    // (`ready$` never matched, and `line` kept a "\r").
    let id = t.ok(&[
        "run",
        "--no-wait",
        "--tty",
        "--",
        "printf 'set\\r\\n'; sleep 30",
    ])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = t.ok(&[
        "wait",
        "--output",
        "^set$",
        "--output-match-type",
        "regex",
        "--until",
        "20",
        &id,
    ]);
    assert_eq!(v["matched"]["line"], "set", "{v}");
    let v = t.ok(&["tail", "--grep", "t$", "--grep-type", "regex", &id]);
    assert_eq!(v["matches"][0]["line"], "set", "{v}");
    assert_eq!(t.read(&id, "stdout.log"), "set\r\r\n");
    t.ok(&["kill", &id]);
}

/// `--until` bounds the search of a huge log too: 100 MB of two-byte
/// lines took one scan of the whole log (tens of seconds) before the
/// deadline was looked at. The bound here is generous; the old search
/// took over 20 s on this log.
#[test]
fn a_huge_log_is_searched_no_longer_than_until() {
    let t = TempRoot::new();
    let total: u64 = 100_000_000;
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--no-full-log",
        "--",
        &format!("yes | head -c {total}; sleep 300"),
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let until = Instant::now() + Duration::from_secs(120);
    let log = t.job_dir(&id).join("stdout.log");
    while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) != total {
        assert!(
            Instant::now() < until,
            "the log never reached {total} bytes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let v = t.ok(&[
        "wait",
        "--output",
        "NOPE$",
        "--output-match-type",
        "regex",
        "--until",
        "1",
        &id,
    ]);
    let took = t0.elapsed();
    assert_eq!(v["state"], "running", "{v}");
    assert!(v.get("matched").is_none_or(Value::is_null), "{v}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    t.ok(&["kill", &id]);
    t.wait_done(&id);
}

/// What was written before the wait began is searched whole even with
/// `--until 0` (within a second past it): a line 3 MB into the log was
/// "no match" on every such call, the search having stopped at 1 MiB.
#[test]
fn until_zero_finds_a_line_written_far_into_a_log() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--",
        "yes 0123456789abcdef | head -c 3000000; echo; echo READY",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let v = t.ok(&["wait", "--output", "READY", "--until", "0", &id]);
    assert_eq!(v["matched"]["line"], "READY", "{}", v["matched"]);
    assert_eq!(v["matched"]["offset"], 3_000_001, "{}", v["matched"]);
}

/// A line over 64 KiB goes to full.log and to `tail --grep` in pieces
/// that end on character boundaries: valid UTF-8 stays valid (fixed
/// 64 KiB pieces cut a "€" at every piece's end, into U+FFFD twice).
#[test]
fn long_lines_are_cut_between_characters() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "yes '€' | head -n 100000 | tr -d '\\n'; echo"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(v["state"], "exited", "{v}");
    let full = std::fs::read(t.job_dir(&id).join("full.log")).unwrap();
    let text = String::from_utf8(full).unwrap();
    assert!(!text.contains('\u{fffd}'), "full.log has U+FFFD");
    assert_eq!(text.matches('€').count(), 100_000);
    let v = t.ok(&["tail", "--grep", "€", "--max-bytes", "1000000", &id]);
    let m = v["matches"].as_array().unwrap();
    assert!(m.len() > 1, "{}", m.len());
    let mut joined = String::new();
    for piece in m {
        let line = piece["line"].as_str().unwrap();
        assert!(!line.contains('\u{fffd}'), "piece at {}", piece["offset"]);
        assert_eq!(piece["offset"].as_u64().unwrap() as usize, joined.len());
        joined.push_str(line);
    }
    assert_eq!(joined, "€".repeat(100_000));
}

/// A line of exactly 64 KiB is one line, whichever read brings its
/// newline: no empty line after it for `tail --grep` or readiness to
/// find (`^$` matched one at its newline). On a terminal the same holds
/// for a line whose "\r\n" straddles that size.
#[test]
fn a_line_of_exactly_the_piece_size_is_one_line() {
    let t = TempRoot::new();
    let a = "head -c 65536 /dev/zero | tr '\\0' a; echo; echo b";
    let tty = "head -c 65535 /dev/zero | tr '\\0' a; echo; echo b";
    for (flags, script, first) in [(&[][..], a, 65536u64), (&["--tty"][..], tty, 65535)] {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", script]);
        let v = t.ok(&args);
        let id = v["job_id"].as_str().unwrap().to_string();
        let v = t.ok(&[
            "tail",
            "--grep",
            "",
            "--tail-lines",
            "0",
            "--max-bytes",
            "1000000",
            &id,
        ]);
        let got: Vec<(u64, usize)> = v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["offset"].as_u64().unwrap(),
                    m["line"].as_str().unwrap().len(),
                )
            })
            .collect();
        let eol = if flags.is_empty() { 1 } else { 2 };
        assert_eq!(
            got,
            vec![(0, first as usize), (first + eol, 1)],
            "{flags:?}"
        );
        let v = t.ok(&[
            "wait",
            "--output",
            "^$",
            "--output-match-type",
            "regex",
            "--until",
            "0",
            &id,
        ]);
        assert!(
            v.get("matched").is_none_or(Value::is_null),
            "{flags:?}: {v}"
        );
    }
}

/// A `--retry` job whose line is printed just before its attempt exits:
/// the answer describes one run, with that run's own output and runs.
/// It described the attempt that printed the line, `running`, with the
/// next attempt's empty logs (the line's run moved to runs/1/ meanwhile)
/// and without that run in `previous_runs`.
#[test]
fn readiness_on_a_retried_job_describes_one_run() {
    let t = TempRoot::new();
    for _ in 0..5 {
        let v = t.ok(&[
            "run",
            "--no-wait",
            "--retry",
            "1",
            "--retry-delay",
            "1s",
            "--",
            "sleep 0.2; echo READY; exit 1",
        ]);
        let id = v["job_id"].as_str().unwrap();
        let w = t.ok(&["wait", "--output", "READY", "--until", "10", id]);
        assert_eq!(w["matched"]["line"], "READY", "{w}");
        match w["attempt"].as_u64().unwrap() {
            // The run that printed it, as it was then.
            1 => {
                assert_eq!(w["stdout"], "READY\n", "{w}");
                assert!(w.get("previous_runs").is_none(), "{w}");
            }
            // The next one, and the run that printed it among the kept.
            2 => {
                assert_eq!(w["stdout"], "", "{w}");
                assert_eq!(w["previous_runs"][0]["attempt"], 1, "{w}");
                let log = w["previous_runs"][0]["stdout_log_path"].as_str().unwrap();
                assert_eq!(std::fs::read_to_string(log).unwrap(), "READY\n");
            }
            n => panic!("attempt {n}: {w}"),
        }
        t.ok(&["kill", id]);
    }
}
