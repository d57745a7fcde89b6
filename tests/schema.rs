//! `schema`: the embedded JSON Schema describes what we really print.
//! Real outputs of every command are validated against it with a small
//! draft-07 validator (the subset our schema uses), in a strict mode that
//! also rejects fields the schema does not declare — so the schema cannot
//! drift behind the code.

mod support;

use serde_json::Value;
use support::TempRoot;

// The strict validator is shared with the tests of newer documents.
#[path = "support/validate.rs"]
mod validate;
use validate::{valid, valid_as as event};

fn schema(t: &TempRoot) -> Value {
    let v = t.ok(&["schema"]);
    assert_eq!(v["schema_format"], "json-schema-draft-07");
    assert!(v["generated_at"].is_string());
    v["schema"].clone()
}

#[test]
fn every_command_output_matches_the_schema() {
    let t = TempRoot::new();
    let s = schema(&t);
    let mut docs: Vec<Value> = Vec::new();
    docs.push(t.ok(&["schema"]));
    let run = t.ok(&["run", "--tag", "ci", "--env", "K=V", "--", "echo", "hi"]);
    let id = run["job_id"].as_str().unwrap().to_string();
    docs.push(run);
    docs.push(t.ok(&["run", "--until", "0", "--", "sleep", "0.2"]));
    docs.push(t.ok(&["run", "--cwd", "/nonexistent", "--", "true"]));
    docs.push(t.ok(&["run", "--timeout", "1", "--", "sleep", "5"]));
    let created = t.ok(&["create", "--", "echo", "later"]);
    let cid = created["job_id"].as_str().unwrap().to_string();
    docs.push(created);
    docs.push(t.ok(&["start", &cid]));
    docs.push(t.ok(&["status", &id]));
    docs.push(t.ok(&["tail", &id]));
    docs.push(t.ok(&["wait", &id]));
    // A log that is gone: tail leaves out its path (it reads as empty).
    let gone = t.ok(&["run", "--", "echo", "x"]);
    let gid = gone["job_id"].as_str().unwrap().to_string();
    std::fs::remove_file(t.job_dir(&gid).join("stdout.log")).unwrap();
    let tail = t.ok(&["tail", &gid]);
    assert!(tail.get("stdout_log_path").is_none(), "{tail}");
    docs.push(tail);
    let long = t.start_job(&["sleep", "30"]);
    docs.push(t.ok(&["wait", "--until", "0", &long]));
    docs.push(t.ok(&["kill", "--no-wait", &long]));
    docs.push(t.ok(&["kill", &long]));
    // restart, and the earlier runs it keeps as status and wait show them.
    docs.push(t.ok(&["restart", &id]));
    docs.push(t.ok(&["restart", "--no-wait", &long]));
    docs.push(t.ok(&["status", &long]));
    docs.push(t.ok(&["kill", &long]));
    docs.push(t.ok(&["wait", &long]));
    docs.push(t.ok(&["list"]));
    docs.push(t.ok(&["ps", "--all"]));
    docs.push(t.ok(&["tag", "set", &id, "--tag", "x.y"]));
    docs.push(t.ok(&["notify", "set", &id, "--output-pattern", "ERR"]));
    docs.push(t.ok(&["gc", "--dry-run"]));
    docs.push(t.ok(&["delete", "--all", "--dry-run"]));
    docs.push(t.ok(&["delete", &cid]));
    let mut c = t.cmd(&["install-skills"]);
    c.current_dir(&t.cwd);
    docs.push(t.exec(c).json());
    for args in [
        &["status", "nope"][..],
        &["status", "01"],
        &["kill", "--signal", "X", "a"],
        &[],
    ] {
        let o = t.out(args);
        docs.push(o.json());
    }
    // An error about a job (details.job_id) and a refused symlink.
    let broken = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let log = t.job_dir(&broken).join("stdout.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", &log).unwrap();
    let (_, e) = t.err(&["tail", &broken]);
    assert_eq!(e["error"]["code"], "unsafe_path");
    assert_eq!(e["error"]["details"]["job_id"], broken.as_str());
    docs.push(e);
    // A job whose output could not all be stored (a state record as the
    // supervisor writes it on a full disk).
    let lost = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = t.job_dir(&lost).join("state.json");
    let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    st["output_lost"] = serde_json::json!([{"stream": "stdout", "dropped_bytes": 7, "errno": "ENOSPC", "message": "No space left on device (os error 28)"}]);
    std::fs::write(&p, st.to_string()).unwrap();
    // Every response about the job says so, each mode of tail and kill too.
    let cursor = t.ok(&["tail", &lost])["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        &["status", &lost][..],
        &["wait", &lost],
        &["tail", &lost],
        &["tail", "--since", &cursor, &lost],
        &["tail", "--grep", "x", &lost],
        &["kill", &lost],
        &["kill", "--no-wait", &lost],
    ] {
        let d = t.ok(args);
        assert_eq!(d["output_lost"][0]["dropped_bytes"], 7, "{args:?}: {d}");
        docs.push(d);
    }
    // After the fields they had before it, as in status.
    t.out(&["tail", &lost]).assert_order(&[
        "stdout_dropped_bytes",
        "stderr_dropped_bytes",
        "output_lost",
    ]);
    t.out(&["kill", &lost])
        .assert_order(&["observed_within_ms", "timed_out", "output_lost"]);
    // And nothing is said where nothing was lost.
    for args in [&["tail", &id][..], &["kill", &id]] {
        let d = t.ok(args);
        assert!(d.get("output_lost").is_none(), "{args:?}: {d}");
    }
    // send to an interactive job, and its errors.
    let cat = t.ok(&["run", "--no-wait", "-i", "--", "cat"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    docs.push(t.ok(&["send", "--newline", "--yield", "1s", &cat, "hi"]));
    docs.push(t.ok(&["send", "--eof", "--yield", "2s", &cat]));
    let (_, e) = t.err(&["send", &cat, "x"]);
    assert_eq!(e["error"]["code"], "stdin_closed");
    docs.push(e);
    let tty = t.ok(&["run", "--tty", "--", "echo", "on a terminal"]);
    assert_eq!(tty["tty"], true);
    docs.push(tty);
    // Cursors, output ends and grep.
    let big = t.ok(&[
        "run",
        "--max-bytes",
        "10",
        "--tail-bytes",
        "8",
        "--",
        "sh",
        "-c",
        "seq 1 100; seq 1 100 >&2",
    ]);
    assert!(
        big["stdout_tail"].is_string() && big["stderr_tail_range"].is_array(),
        "{big}"
    );
    let bid = big["job_id"].as_str().unwrap().to_string();
    let cur = big["cursor"].as_str().unwrap().to_string();
    docs.push(big);
    docs.push(t.ok(&["wait", "--max-bytes", "10", "--tail-bytes", "8", &bid]));
    docs.push(t.ok(&["tail", "--since", &cur, "--max-bytes", "20", &bid]));
    let g = t.ok(&["tail", "--grep", "^9", "--grep-type", "regex", &bid]);
    assert!(!g["matches"].as_array().unwrap().is_empty(), "{g}");
    docs.push(g);
    let (code, e) = t.err(&["tail", "--since", "not-a-cursor", &bid]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_cursor"))
    );
    docs.push(e);
    for d in &docs {
        valid(&s, d);
    }

    // Events: job.finished (with delivery results) and job.output.matched.
    let sink = t.base.join("events.ndjson");
    let v = t.ok(&[
        "run",
        "--notify-file",
        sink.to_str().unwrap(),
        "--output-pattern",
        "hi",
        "--",
        "echo",
        "hi",
    ]);
    let jid = v["job_id"].as_str().unwrap();
    // The supervisor finishes delivery after the terminal state.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !t
        .read(jid, "completion_event.json")
        .contains("attempted_at")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let fin: Value = serde_json::from_str(&t.read(jid, "completion_event.json")).unwrap();
    event(&s, "JobFinishedEvent", &fin);
    let line = std::fs::read_to_string(&sink).unwrap();
    event(
        &s,
        "JobFinishedEvent",
        &serde_json::from_str(line.lines().next().unwrap()).unwrap(),
    );
    let m = t.read(jid, "notification_events.ndjson");
    event(
        &s,
        "JobOutputMatchedEvent",
        &serde_json::from_str(m.lines().next().unwrap()).unwrap(),
    );
}

#[test]
fn serve_documents_match_the_schema() {
    let t = TempRoot::new();
    let s = schema(&t);
    let srv = t.serve();
    valid(&s, &srv.doc);
    let get = |path: &str| support::http_json(srv.port, "GET", path, "").1;
    valid(&s, &get("/health"));
    valid(&s, &get("/status/nope"));
    valid(&s, &get("/list"));
    let v = t.ok(&["run", "--max-bytes", "4", "--", "seq", "1", "1000"]);
    let id = v["job_id"].as_str().unwrap();
    let cur = v["cursor"].as_str().unwrap();
    let w = get(&format!("/wait/{id}?max_bytes=4&tail_bytes=10"));
    assert!(w["stdout_tail"].is_string(), "{w}");
    valid(&s, &w);
    valid(&s, &get(&format!("/tail/{id}?since={cur}&max_bytes=30")));
    let e = get(&format!("/tail/{id}?since=zz"));
    assert_eq!(e["error"]["code"], "invalid_cursor");
    valid(&s, &e);
}

#[test]
fn readiness_and_follow_outputs_match_the_schema() {
    let t = TempRoot::new();
    let s = schema(&t);
    let id = t.start_job(&["sh", "-c", "echo 'ready on 1'; echo warn >&2; exit 4"]);
    t.wait_done(&id);
    let w = t.ok(&["wait", "--output", "ready", &id]);
    assert_eq!(w["matched"]["line"], "ready on 1");
    valid(&s, &w);
    valid(&s, &t.ok(&["wait", "--output", "nothing", &id]));
    let o = t.out(&["tail", "--follow", &id]);
    let lines: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.last().unwrap()["type"], "end");
    assert_eq!(lines.last().unwrap()["exit_code"], 4);
    for l in &lines {
        event(&s, "FollowEvent", l);
    }
    let long = t.start_job(&["sleep", "30"]);
    let o = t.out(&["tail", "-f", "--until", "0.1", &long]);
    let end: Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(end["exit_code"], Value::Null);
    event(&s, "FollowEvent", &end);
    t.ok(&["kill", &long]);
}

#[test]
fn capped_log_outputs_match_the_schema() {
    let t = TempRoot::new();
    let s = schema(&t);
    let r = t.ok(&[
        "run",
        "--forever",
        "--max-log-bytes",
        "1000",
        "--",
        "seq",
        "1",
        "100000",
    ]);
    assert!(r["stdout_dropped_bytes"].as_u64().unwrap() > 0, "{r}");
    valid(&s, &r);
    let id = r["job_id"].as_str().unwrap();
    let cursor = r["cursor"].as_str().unwrap();
    let tl = t.ok(&["tail", "--since", cursor, id]);
    assert!(tl["stdout_skipped_bytes"].as_u64().unwrap() > 0, "{tl}");
    valid(&s, &tl);
    let w = t.ok(&["wait", "--output", "100000", "--since", cursor, id]);
    assert!(w["stdout_skipped_bytes"].as_u64().unwrap() > 0, "{w}");
    valid(&s, &w);
    let o = t.out(&["tail", "--follow", id]);
    let mut gaps = 0;
    for l in o.stdout.lines() {
        let v: Value = serde_json::from_str(l).unwrap();
        gaps += usize::from(v["type"] == "gap");
        event(&s, "FollowEvent", &v);
    }
    assert_eq!(gaps, 1);
}
