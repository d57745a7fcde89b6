//! `tail --follow` (NDJSON), `--raw`, `--since`, `--until`, and
//! `GET /tail/{id}?follow=true` (chunked), black-box.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use support::TempRoot;

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// Reassemble each stream from the output objects, checking that the
/// ranges are contiguous from `from` and each piece is at most 64 KiB.
fn reassemble(objs: &[Value], from: (u64, u64)) -> (String, String) {
    let mut out = (String::new(), String::new());
    let mut pos = from;
    for o in objs.iter().filter(|o| o["type"] == "output") {
        let data = o["data"].as_str().unwrap();
        let r = [
            o["range"][0].as_u64().unwrap(),
            o["range"][1].as_u64().unwrap(),
        ];
        assert!(r[1] - r[0] <= 32 * 1024 && r[1] > r[0], "{r:?}");
        assert_eq!(r[1] - r[0], data.len() as u64, "{o}");
        let (buf, at) = match o["stream"].as_str().unwrap() {
            "stdout" => (&mut out.0, &mut pos.0),
            "stderr" => (&mut out.1, &mut pos.1),
            s => panic!("stream {s}"),
        };
        assert_eq!(r[0], *at, "ranges are contiguous");
        *at = r[1];
        buf.push_str(data);
    }
    out
}

#[test]
fn a_fast_writer_on_both_streams_is_followed_byte_for_byte() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do echo \"out $i é\"; echo \"err $i\" >&2; i=$((i+1)); done",
    ]);
    let o = t.out(&["tail", "--follow", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let objs = lines(&o.stdout);
    let end = objs.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["state"], "exited");
    assert_eq!(end["exit_code"], 0);
    assert!(objs[..objs.len() - 1].iter().all(|o| o["type"] == "output"));
    let (out, err) = reassemble(&objs, (0, 0));
    assert_eq!(out, t.read(&id, "stdout.log"));
    assert_eq!(err, t.read(&id, "stderr.log"));
    assert_eq!(out.lines().count(), 20000);
    // The end cursor is just after everything: nothing new after it.
    let v = t.ok(&["tail", "--since", end["cursor"].as_str().unwrap(), &id]);
    assert_eq!(
        (v["stdout"].as_str(), v["stderr"].as_str()),
        (Some(""), Some(""))
    );
}

#[test]
fn since_and_until() {
    let t = TempRoot::new();
    let go = t.cwd.join("go");
    let script = format!(
        "echo one; while [ ! -e '{}' ]; do sleep 0.01; done; echo two; exit 5",
        go.display()
    );
    let id = t.start_job(&["sh", "-c", &script]);
    // Until the log holds "one", then follow for a while: running.
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.read(&id, "stdout.log").is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    let start = Instant::now();
    let o = t.out(&["tail", "-f", "--until", "0.3", &id]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let objs = lines(&o.stdout);
    assert_eq!(objs.len(), 2, "{objs:?}");
    assert_eq!(objs[0]["data"], "one\n");
    let end = &objs[1];
    assert_eq!(
        (end["type"].as_str(), end["state"].as_str()),
        (Some("end"), Some("running"))
    );
    assert_eq!(end["exit_code"], Value::Null);
    let cursor = end["cursor"].as_str().unwrap().to_string();
    std::fs::write(&go, "").unwrap();
    let o = t.out(&["tail", "--follow", "--since", &cursor, &id]);
    let objs = lines(&o.stdout);
    assert_eq!(objs.len(), 2, "{objs:?}");
    assert_eq!(objs[0]["data"], "two\n");
    assert_eq!(objs[0]["range"], serde_json::json!([4, 8]));
    assert_eq!(
        (objs[1]["state"].as_str(), objs[1]["exit_code"].as_i64()),
        (Some("exited"), Some(5))
    );
    // Errors before the stream are one error document.
    let (code, e) = t.err(&["tail", "-f", "--since", "bogus", &id]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_cursor"))
    );
    let (_, e) = t.err(&["tail", "-f", "NOSUCHJOB00"]);
    assert_eq!(e["error"]["code"], "job_not_found");
}

#[test]
fn raw_writes_the_bytes_themselves() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "printf 'a\\nb'; printf 'x\\0y\\n' >&2; printf 'c\\n'",
    ]);
    let o = t.cmd(&["tail", "--follow", "--raw", &id]).output().unwrap();
    assert!(o.status.success());
    assert_eq!(
        o.stdout,
        std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap()
    );
    assert_eq!(
        o.stderr,
        std::fs::read(t.job_dir(&id).join("stderr.log")).unwrap()
    );
    assert_eq!(o.stdout, b"a\nbc\n");
}

#[test]
fn the_end_object_names_a_signal() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "echo up; exec sleep 30"]);
    let child = t
        .cmd(&["tail", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.read(&id, "stdout.log").is_empty() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    t.ok(&["kill", "--signal", "KILL", &id]);
    let o = child.wait_with_output().unwrap();
    let objs = lines(&String::from_utf8(o.stdout).unwrap());
    let end = objs.last().unwrap();
    assert_eq!(end["type"], "end");
    assert_eq!(end["state"], "killed", "{end}");
    assert_eq!(end["signal"], "SIGKILL");
    assert_eq!(objs[0]["data"], "up\n");
}

#[test]
fn a_write_reaches_the_follower_within_milliseconds() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "sleep 0.3; echo ping; sleep 30"]);
    let mut child = t
        .cmd(&["tail", "-f", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let got = SystemTime::now();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["data"], "ping\n");
    let written = std::fs::metadata(t.job_dir(&id).join("stdout.log"))
        .unwrap()
        .modified()
        .unwrap();
    let lag = got.duration_since(written).unwrap_or_default();
    eprintln!("follow: chunk read {lag:?} after the write");
    assert!(lag < Duration::from_millis(250), "{lag:?}");
    t.ok(&["kill", &id]);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_follow_whose_reader_leaves_ends_while_the_job_is_quiet() {
    // `tail -f JOB | head -1` of a job that then says nothing for a long
    // time: the follow ends when its reader goes, not at the job's next
    // write (here: never, the job is killed at the end).
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "echo one; exec sleep 60"]);
    for raw in [false, true] {
        let mut args = vec!["tail", "-f", &id];
        if raw {
            args.push("--raw");
        }
        let mut child = t.cmd(&args).stdout(Stdio::piped()).spawn().unwrap();
        let mut r = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.contains("one"), "{line}");
        drop(r);
        let until = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > until {
                let _ = child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(
            status.is_some(),
            "raw={raw}: the follow outlived its reader"
        );
        assert_eq!(t.ok(&["status", &id])["state"], "running");
    }
    t.ok(&["kill", &id]);
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

fn open(port: u16, path: &str) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    BufReader::new(s)
}

/// The status and header lines of a response.
fn head(r: &mut BufReader<TcpStream>) -> (u16, Vec<String>) {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        let l = l.trim_end().to_string();
        if l.is_empty() {
            break;
        }
        lines.push(l);
    }
    let status = lines[0].split(' ').nth(1).unwrap().parse().unwrap();
    (status, lines)
}

/// One chunk of a chunked body (None: the zero-length chunk).
fn chunk(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let n = usize::from_str_radix(size.trim_end(), 16).unwrap_or_else(|_| panic!("{size:?}"));
    let mut data = vec![0u8; n + 2];
    r.read_exact(&mut data).unwrap();
    assert_eq!(&data[n..], b"\r\n");
    data.truncate(n);
    (n > 0).then_some(data)
}

#[test]
fn http_follow_is_chunked_ndjson() {
    let t = TempRoot::new();
    let s = t.serve();
    let id = t.start_job(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 5000 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done; sleep 0.2; echo last",
    ]);
    let mut r = open(s.port, &format!("/tail/{id}?follow=true"));
    let (status, headers) = head(&mut r);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("transfer-encoding: chunked")),
        "{headers:?}"
    );
    let mut body = Vec::new();
    while let Some(c) = chunk(&mut r) {
        assert!(c.ends_with(b"\n"), "a chunk holds whole lines");
        body.extend_from_slice(&c);
    }
    let objs = lines(std::str::from_utf8(&body).unwrap());
    let end = objs.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["state"].as_str()),
        (Some("end"), Some("exited"))
    );
    let (out, err) = reassemble(&objs, (0, 0));
    assert_eq!(out, t.read(&id, "stdout.log"));
    assert_eq!(err, t.read(&id, "stderr.log"));
    assert!(out.ends_with("last\n"));
    // Errors before the stream are plain error answers.
    let mut r = open(s.port, &format!("/tail/{id}?follow=true&since=bogus"));
    assert_eq!(head(&mut r).0, 400);
}

/// The server's stop ends a follow as SIGTERM ends `tail --follow`: with
/// the end line (the state then, the cursor to read on from), then the
/// body's end — not a stream cut off without it.
#[test]
fn a_follow_ended_by_the_servers_stop_ends_with_its_end_line() {
    let t = TempRoot::new();
    let mut s = t.serve();
    let id = t.start_job(&["sh", "-c", "echo hello; exec sleep 30"]);
    let mut r = open(s.port, &format!("/tail/{id}?follow=true"));
    assert_eq!(head(&mut r).0, 200);
    let mut body = Vec::new();
    while !String::from_utf8_lossy(&body).contains("hello") {
        body.extend(chunk(&mut r).expect("the stream ended before the output"));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    while let Some(c) = chunk(&mut r) {
        body.extend(c);
    }
    let objs = lines(std::str::from_utf8(&body).unwrap());
    let end = objs.last().unwrap();
    assert_eq!(
        (end["type"].as_str(), end["state"].as_str()),
        (Some("end"), Some("running")),
        "{objs:?}"
    );
    assert!(end["exit_code"].is_null(), "{end}");
    // The cursor is after what the stream passed on: nothing is read twice.
    let cursor = end["cursor"].as_str().unwrap();
    let v = t.ok(&["tail", "--since", cursor, &id]);
    assert_eq!(
        (&v["stdout"], &v["stderr"]),
        (&"".into(), &"".into()),
        "{v}"
    );
    assert_eq!(s.child.wait().unwrap().code(), Some(0));
    t.ok(&["kill", &id]);
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_client_that_leaves_mid_stream_stops_it() {
    let t = TempRoot::new();
    let s = t.serve();
    let pid = s.child.id();
    let id = t.start_job(&["sh", "-c", "echo hello; sleep 30"]);
    let idle = threads(pid);
    let mut r = open(s.port, &format!("/tail/{id}?follow=true"));
    assert_eq!(head(&mut r).0, 200);
    let first = chunk(&mut r).unwrap();
    assert!(String::from_utf8_lossy(&first).contains("hello"));
    assert!(threads(pid) > idle);
    drop(r);
    // The follower notices at once (it polls the socket while it sleeps).
    let deadline = Instant::now() + Duration::from_secs(5);
    while threads(pid) > idle {
        assert!(
            Instant::now() < deadline,
            "the follow thread is still there"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server is healthy and follows again.
    let mut h = open(s.port, "/health");
    assert_eq!(head(&mut h).0, 200);
    let mut r = open(s.port, &format!("/tail/{id}?follow=true&until=0"));
    assert_eq!(head(&mut r).0, 200);
    let mut body = Vec::new();
    while let Some(c) = chunk(&mut r) {
        body.extend_from_slice(&c);
    }
    let objs = lines(std::str::from_utf8(&body).unwrap());
    assert_eq!(objs.last().unwrap()["state"], "running");
    assert_eq!(
        objs[0]["data"], "hello\n",
        "until=0 still passes on what is there"
    );
    t.ok(&["kill", &id]);
}
