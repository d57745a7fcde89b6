//! Cursors, output ends and grep, black-box: a `tail --since` loop that
//! reassembles both streams of a busy job byte-exactly; every kind of bad
//! cursor is `invalid_cursor` (exit 2, HTTP 400); `run`/`wait` carry the
//! head, the end and a cursor after the head; `tail --grep` in bounded
//! memory; the same over HTTP.
//!
//! Jobs are waited for with `wait` (event-driven), never slept on.

mod support;

use std::io::Write;
use std::path::Path;

use serde_json::Value;
use support::TempRoot;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn range(v: &Value, k: &str) -> [u64; 2] {
    let a = v[k]
        .as_array()
        .unwrap_or_else(|| panic!("{k} missing in {v}"));
    [a[0].as_u64().unwrap(), a[1].as_u64().unwrap()]
}

fn log(t: &TempRoot, id: &str, name: &str) -> Vec<u8> {
    std::fs::read(t.job_dir(id).join(name)).unwrap()
}

/// A job that writes fast on both streams, interleaved: thousands of
/// lines, some without a newline, many with 2-, 3- and 4-byte characters.
const BUSY: &str = r#"i=0
while [ $i -lt 2500 ]; do
  printf 'out %d é€😀 line\n' $i
  printf 'err %d ü' $i >&2
  if [ $((i % 7)) -eq 0 ]; then printf '€'; printf '\n' >&2; fi
  if [ $((i % 11)) -eq 0 ]; then printf '😀😀 no newline '; fi
  i=$((i + 1))
done"#;

#[test]
fn a_since_loop_reads_every_byte_of_both_streams_once() {
    let t = TempRoot::new();
    let first = t.ok(&["run", "--no-wait", "--max-bytes", "0", "--", BUSY]);
    let id = s(&first, "job_id").to_string();
    // --max-bytes 0: nothing returned, so the cursor stands at 0, 0.
    assert_eq!(range(&first, "stdout_range"), [0, 0]);
    let mut cur = s(&first, "cursor").to_string();
    let (mut out, mut err) = (String::new(), String::new());
    let (mut out_at, mut err_at) = (0u64, 0u64);
    // Budgets that cut inside characters (never below 4, one character).
    let budgets = ["5", "97", "4", "1000", "6", "4096", "13"];
    let mut done = false;
    let mut calls = 0usize;
    loop {
        let budget = budgets[calls % budgets.len()];
        calls += 1;
        let v = t.ok(&["tail", "--since", &cur, "--max-bytes", budget, &id]);
        let (ro, re) = (range(&v, "stdout_range"), range(&v, "stderr_range"));
        // Contiguous: each read starts exactly where the last one ended,
        // and the text is exactly the bytes of its range.
        assert_eq!((ro[0], re[0]), (out_at, err_at), "{v}");
        assert_eq!(s(&v, "stdout").len() as u64, ro[1] - ro[0], "{v}");
        assert_eq!(s(&v, "stderr").len() as u64, re[1] - re[0], "{v}");
        assert!(ro[1] - ro[0] <= budget.parse::<u64>().unwrap());
        out.push_str(s(&v, "stdout"));
        err.push_str(s(&v, "stderr"));
        (out_at, err_at) = (ro[1], re[1]);
        cur = s(&v, "cursor").to_string();
        let empty = ro[0] == ro[1] && re[0] == re[1];
        if empty && done {
            break;
        }
        if empty {
            // Nothing new: is the job over? Its state is read before
            // the next tail, so one more empty read means the end.
            let st = t.ok(&["wait", "--until", "0", "--max-bytes", "0", &id]);
            done = st["state"] != "running";
        }
        assert!(calls < 100_000, "no end in sight");
    }
    let out_log = log(&t, &id, "stdout.log");
    let err_log = log(&t, &id, "stderr.log");
    assert!(out_log.len() > 50_000 && err_log.len() > 20_000);
    assert_eq!(out.as_bytes(), &out_log[..], "stdout reassembled");
    assert_eq!(err.as_bytes(), &err_log[..], "stderr reassembled");
    assert!(!out.contains('\u{fffd}') && !err.contains('\u{fffd}'));
    assert!(calls > 20, "the loop interleaved with the job's writes");
}

#[test]
fn tail_reads_start_and_end_on_character_boundaries() {
    let t = TempRoot::new();
    // "aaaa€€": € is e2 82 ac, at bytes 4..7 and 7..10.
    let first = t.ok(&["run", "--max-bytes", "0", "--", "printf 'aaaa€€'"]);
    let id = s(&first, "job_id").to_string();
    // The last 4 bytes start inside the first €: the read skips to the
    // next character, with or without a line limit, as run's end does.
    for lines in ["50", "0"] {
        let v = t.ok(&["tail", "--tail-lines", lines, "--max-bytes", "4", &id]);
        assert_eq!((s(&v, "stdout"), range(&v, "stdout_range")), ("€", [7, 10]));
    }
    // A budget under one character reads that character whole, so a
    // loop of small reads still joins to the log byte for byte.
    let mut cur = s(&first, "cursor").to_string();
    let mut got = String::new();
    let mut at = 0;
    for _ in 0..20 {
        let v = t.ok(&["tail", "--since", &cur, "--max-bytes", "2", &id]);
        let r = range(&v, "stdout_range");
        assert_eq!(r[0], at, "{v}");
        assert_eq!(s(&v, "stdout").len() as u64, r[1] - r[0], "{v}");
        if r[0] == r[1] {
            break;
        }
        got.push_str(s(&v, "stdout"));
        (at, cur) = (r[1], s(&v, "cursor").to_string());
    }
    assert_eq!(got, "aaaa€€");
    // Continuation bytes that no lead byte announces are invalid bytes
    // of their own, each a U+FFFD: a window that starts on them keeps
    // them (a budget of 3 over 4 of them read nothing, and run's tail
    // fields were absent though its head stopped at 1 of 7 bytes).
    let stray = r"printf 'ok\n\260\260\260\260'";
    let v = t.ok(&["run", "--max-bytes", "1", "--tail-bytes", "3", "--", stray]);
    assert_eq!(s(&v, "stdout_tail"), "\u{fffd}".repeat(3), "{v}");
    assert_eq!(range(&v, "stdout_tail_range"), [4, 7], "{v}");
    let id = s(&v, "job_id").to_string();
    for lines in ["50", "0"] {
        let v = t.ok(&["tail", "--tail-lines", lines, "--max-bytes", "3", &id]);
        assert_eq!(range(&v, "stdout_range"), [4, 7], "{v}");
    }
}

/// A grep's line under a budget smaller than its first character keeps
/// that character whole (it was an empty line that matched "a").
#[test]
fn a_grep_line_under_its_first_character_keeps_it_whole() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", r"printf '\360\237\230\200bar\n'"]);
    let id = s(&v, "job_id").to_string();
    for (budget, line) in [("1", "😀"), ("3", "😀"), ("4", "😀"), ("5", "😀b")] {
        let v = t.ok(&["tail", "--grep", "a", "--max-bytes", budget, &id]);
        assert_eq!(v["matches"][0]["line"], line, "--max-bytes {budget}: {v}");
    }
    let v = t.ok(&["tail", "--grep", "a", "--max-bytes", "0", &id]);
    assert_eq!(v["matches"], serde_json::json!([]), "{v}");
}

/// A running job's last bytes are held back only when they may still
/// become a character: a valid start (e2 82, the first two of €) waits
/// for its end; bytes that can start none (c0, f5, an overlong e0 80, a
/// surrogate's ed a0, f4 90 past U+10FFFF) are shown as U+FFFD at once.
/// They used to stay hidden until the job wrote more or ended.
#[test]
fn only_bytes_that_may_still_become_a_character_are_held_back() {
    let t = TempRoot::new();
    for (bytes, shown) in [
        (r"\342\202", "ok"),
        (r"\300", "ok\u{fffd}"),
        (r"\365", "ok\u{fffd}"),
        (r"\340\200", "ok\u{fffd}\u{fffd}"),
        (r"\355\240", "ok\u{fffd}\u{fffd}"),
        (r"\364\220", "ok\u{fffd}\u{fffd}"),
    ] {
        let script = format!("printf 'ok{bytes}'; while [ ! -e release ]; do sleep 0.02; done");
        let v = t.ok(&["run", "--no-wait", "--", &script]);
        let id = s(&v, "job_id").to_string();
        let total = 2 + bytes.matches('\\').count() as u64;
        // Every byte is in the log before it is read.
        let log = t.job_dir(&id).join("stdout.log");
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < total {
            assert!(std::time::Instant::now() < until, "{bytes}: never written");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let v = t.ok(&["tail", &id]);
        assert_eq!(s(&v, "stdout"), shown, "{bytes}: {v}");
        let end = if shown == "ok" { 2 } else { total };
        assert_eq!(range(&v, "stdout_range"), [0, end], "{bytes}: {v}");
        // Nothing returned (`--max-bytes 0`): the range and the cursor
        // still stop before the character being written.
        let zero = t.ok(&["tail", "--max-bytes", "0", &id]);
        assert_eq!(range(&zero, "stdout_range"), [end, end], "{bytes}: {zero}");
        assert_eq!(zero["cursor"], v["cursor"], "{bytes}: {zero}");
        std::fs::write(t.cwd.join("release"), "").unwrap();
        t.wait_done(&id);
        std::fs::remove_file(t.cwd.join("release")).unwrap();
    }
}

#[test]
fn bad_cursors_are_invalid_cursor_never_a_restart() {
    let t = TempRoot::new();
    let a = t.ok(&["run", "--", "sh", "-c", "echo out; echo err >&2"]);
    let b = t.ok(&["run", "--", "echo", "other"]);
    let (ida, cura) = (s(&a, "job_id").to_string(), s(&a, "cursor").to_string());
    let curb = s(&b, "cursor").to_string();
    // The cursor works where it belongs.
    let v = t.ok(&["tail", "--since", &cura, &ida]);
    assert_eq!((s(&v, "stdout"), range(&v, "stdout_range")), ("", [4, 4]));
    let bad = |cur: &str, why: &str| {
        let (code, e) = t.err(&["tail", "--since", cur, &ida]);
        assert_eq!(code, 2, "{why}: {e}");
        assert_eq!(e["error"]["code"], "invalid_cursor", "{why}: {e}");
        assert_eq!(e["error"]["details"]["job_id"], ida.as_str());
    };
    // What is no cursor at all is refused with the other arguments,
    // before the job is looked up (D5), naming the job as it was given
    // (an error about a job carries details.job_id).
    let malformed = |cur: &str, why: &str| {
        let (code, e) = t.err(&["tail", "--since", cur, &ida[..12]]);
        assert_eq!(code, 2, "{why}: {e}");
        assert_eq!(e["error"]["code"], "invalid_cursor", "{why}: {e}");
        assert_eq!(e["error"]["details"]["job_id"], &ida[..12], "{why}: {e}");
    };
    malformed("garbage", "garbage");
    malformed("", "empty");
    malformed(&format!("{cura}A"), "extended");
    malformed(&"A".repeat(500), "long");
    bad(&curb, "another job's cursor");
    // Past the end: the log was truncated in place (same file).
    let p = t.job_dir(&ida).join("stdout.log");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(1)
        .unwrap();
    bad(&cura, "past the end");
    // Replaced: a new file with the same content (and size).
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, b"out\n").unwrap();
    bad(&cura, "replaced");
    // Deleted.
    std::fs::remove_file(&p).unwrap();
    bad(&cura, "deleted");
    // The grep form checks the cursor too.
    let (code, e) = t.err(&["tail", "--grep", "x", "--since", &curb, &ida]);
    assert_eq!((code, s(&e["error"], "code")), (2, "invalid_cursor"));
}

/// A tail budget under the last character returns it whole, as a head
/// budget under the first does: it used to return no tail at all though
/// the head stopped short of the end.
#[test]
fn a_tail_budget_under_one_character_returns_it_whole() {
    let t = TempRoot::new();
    for (max, tail, want) in [
        ("4", "3", [8, 12]),
        ("1", "1", [8, 12]),
        ("8", "2", [8, 12]),
    ] {
        let v = t.ok(&[
            "run",
            "--max-bytes",
            max,
            "--tail-bytes",
            tail,
            "--",
            "printf",
            "😀😀😀",
        ]);
        assert_eq!(s(&v, "stdout_tail"), "😀", "{max}/{tail}: {v}");
        assert_eq!(range(&v, "stdout_tail_range"), want, "{max}/{tail}: {v}");
        let id = s(&v, "job_id").to_string();
        let w = t.ok(&["wait", "--max-bytes", max, "--tail-bytes", tail, &id]);
        assert_eq!(s(&w, "stdout_tail"), "😀", "{w}");
        // tail's own budget: the same rule (it gave "" at [12, 12]).
        let e = t.ok(&["tail", "--max-bytes", tail, &id]);
        assert_eq!(
            (s(&e, "stdout"), range(&e, "stdout_range")),
            ("😀", want),
            "{e}"
        );
    }
    // A head that reaches the end leaves no tail.
    let v = t.ok(&[
        "run",
        "--max-bytes",
        "12",
        "--tail-bytes",
        "1",
        "--",
        "printf",
        "😀😀😀",
    ]);
    assert_eq!(range(&v, "stdout_range"), [0, 12], "{v}");
    assert!(v.get("stdout_tail").is_none(), "{v}");
}

#[test]
fn run_returns_head_end_and_a_cursor_after_the_head() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--max-bytes",
        "1000",
        "--tail-bytes",
        "500",
        "--",
        "sh",
        "-c",
        "seq 1 20000; echo failed: last line >&2",
    ]);
    let id = s(&v, "job_id").to_string();
    let file = log(&t, &id, "stdout.log");
    let n = file.len() as u64;
    assert_eq!(range(&v, "stdout_range"), [0, 1000]);
    assert_eq!(s(&v, "stdout").as_bytes(), &file[..1000]);
    assert_eq!(range(&v, "stdout_tail_range"), [n - 500, n]);
    assert_eq!(s(&v, "stdout_tail").as_bytes(), &file[file.len() - 500..]);
    assert!(s(&v, "stdout_tail").ends_with("19999\n20000\n"));
    // stderr fits in its head: no tail fields for it.
    assert_eq!(s(&v, "stderr"), "failed: last line\n");
    assert!(v.get("stderr_tail").is_none() && v.get("stderr_tail_range").is_none());
    // The new fields come after every existing one.
    let o = t.out(&[
        "run",
        "--max-bytes",
        "10",
        "--",
        "sh",
        "-c",
        "seq 1 100; seq 1 100 >&2",
    ]);
    o.assert_order(&[
        "job_id",
        "state",
        "stdout",
        "stderr",
        "stdout_range",
        "stderr_range",
        "stdout_total_bytes",
        "stderr_total_bytes",
        "encoding",
        "exit_code",
        "timed_out",
        "stdout_tail",
        "stderr_tail",
        "stdout_tail_range",
        "stderr_tail_range",
        "cursor",
    ]);
    // The middle is read with --since from the run's cursor.
    let mut cur = s(&v, "cursor").to_string();
    let mut all = s(&v, "stdout").to_string();
    loop {
        let r = t.ok(&["tail", "--since", &cur, "--max-bytes", "40000", &id]);
        if s(&r, "stdout").is_empty() {
            break;
        }
        all.push_str(s(&r, "stdout"));
        cur = s(&r, "cursor").to_string();
    }
    assert_eq!(all.as_bytes(), &file[..]);
    // Small output: the head reaches the end, no tail fields; and
    // --tail-bytes 0 turns them off.
    let small = t.ok(&["run", "--", "echo", "hi"]);
    assert!(small.get("stdout_tail").is_none() && small.get("stdout_tail_range").is_none());
    assert!(small["cursor"].is_string());
    let off = t.ok(&[
        "run",
        "--max-bytes",
        "2",
        "--tail-bytes",
        "0",
        "--",
        "seq",
        "1",
        "9",
    ]);
    assert!(off.get("stdout_tail").is_none());
    // A tail window never overlaps the head: all of it after the head.
    let w = t.ok(&[
        "run",
        "--max-bytes",
        "5",
        "--tail-bytes",
        "100",
        "--",
        "seq",
        "1",
        "9",
    ]);
    assert_eq!(range(&w, "stdout_tail_range"), [5, 18]);
    // start answers the same way.
    let c = t.ok(&["create", "--", "seq", "1", "1000"]);
    let st = t.ok(&[
        "start",
        "--max-bytes",
        "8",
        "--tail-bytes",
        "5",
        s(&c, "job_id"),
    ]);
    assert_eq!(s(&st, "stdout_tail"), "1000\n");
    assert!(st["cursor"].is_string());
}

#[test]
fn wait_returns_the_inline_fields() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "seq 1 3000; echo oops >&2; exit 3"]);
    let o = t.out(&[
        "wait",
        "--until",
        "60",
        "--max-bytes",
        "100",
        "--tail-bytes",
        "20",
        &id,
    ]);
    let v = o.json();
    assert_eq!(o.code, 0, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(3))
    );
    let file = log(&t, &id, "stdout.log");
    assert_eq!(s(&v, "stdout").as_bytes(), &file[..100]);
    assert_eq!(s(&v, "stderr"), "oops\n");
    assert_eq!(range(&v, "stdout_range"), [0, 100]);
    assert_eq!(v["stdout_total_bytes"], file.len() as u64);
    assert_eq!(s(&v, "stdout_tail"), "2997\n2998\n2999\n3000\n");
    assert_eq!(s(&v, "encoding"), "utf-8-lossy");
    // wait's own fields first, in their order, then run's inline ones.
    o.assert_order(&[
        "job_id",
        "state",
        "exit_code",
        "stdout_total_bytes",
        "stderr_total_bytes",
        "updated_at",
        "finished_at",
        "duration_ms",
        "timed_out",
        "stdout",
        "stderr",
        "stdout_range",
        "stderr_range",
        "encoding",
        "stdout_tail",
        "stdout_tail_range",
        "cursor",
    ]);
    // Its cursor stands after the head.
    let r = t.ok(&["tail", "--since", s(&v, "cursor"), "--max-bytes", "5", &id]);
    assert_eq!(range(&r, "stdout_range"), [100, 105]);
    assert_eq!(s(&r, "stdout").as_bytes(), &file[100..105]);
    // Defaults: 64 KiB head, the whole small output, no tail.
    let d = t.ok(&["wait", &id]);
    assert_eq!(s(&d, "stdout").len(), file.len());
    assert!(d.get("stdout_tail").is_none());
}

#[test]
fn grep_contains_regex_streams_limits_and_since() {
    let t = TempRoot::new();
    let id = t.start_job(&[
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do echo \"ok $i\"; echo \"error E$i\"; echo \"error on stderr $i\" >&2; done",
    ]);
    t.wait_done(&id);
    let lines = |v: &Value| -> Vec<(String, String, u64)> {
        v["matches"]
            .as_array()
            .unwrap_or_else(|| panic!("no matches in {v}"))
            .iter()
            .map(|m| {
                (
                    s(m, "stream").to_string(),
                    s(m, "line").to_string(),
                    m["offset"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // contains, both streams, stdout's first; the last 2 of each.
    let v = t.ok(&["tail", "--grep", "error", "--tail-lines", "2", &id]);
    let got = lines(&v);
    let out = log(&t, &id, "stdout.log");
    let at = |needle: &str| {
        String::from_utf8_lossy(&out)
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}")) as u64
    };
    assert_eq!(
        got,
        [
            ("stdout".into(), "error E5".into(), at("error E5")),
            ("stdout".into(), "error E6".into(), at("error E6")),
            ("stderr".into(), "error on stderr 5".into(), 72),
            ("stderr".into(), "error on stderr 6".into(), 90),
        ]
    );
    assert_eq!(s(&v, "stdout"), "");
    // regex, one stream.
    let v = t.ok(&[
        "tail",
        "--grep",
        "^error E[246]$",
        "--grep-type",
        "regex",
        "--output-stream",
        "stdout",
        &id,
    ]);
    let got: Vec<String> = lines(&v).into_iter().map(|m| m.1).collect();
    assert_eq!(got, ["error E2", "error E4", "error E6"]);
    let v = t.ok(&[
        "tail",
        "--grep",
        "stderr 1",
        "--output-stream",
        "stderr",
        &id,
    ]);
    assert_eq!(
        lines(&v),
        [("stderr".into(), "error on stderr 1".into(), 0)]
    );
    // --max-bytes bounds the line text kept per stream.
    let v = t.ok(&["tail", "--grep", "ok", "--max-bytes", "9", &id]);
    let got: Vec<String> = lines(&v).into_iter().map(|m| m.1).collect();
    assert_eq!(got, ["ok 5", "ok 6"]);
    // An invalid regex.
    let (code, e) = t.err(&["tail", "--grep", "(", "--grep-type", "regex", &id]);
    assert_eq!((code, s(&e["error"], "code")), (2, "invalid_pattern"));
    // --since: only what is new. A job that writes, then waits for us.
    let gate = t.base.join("gate");
    let script = format!(
        "echo 'error one'; echo quiet; while [ ! -e '{}' ]; do sleep 0.01; done; echo 'error two'; echo 'error partial' >&2",
        gate.display()
    );
    let id = t.start_job(&["sh", "-c", &script]);
    // Until the first two lines are there (the job blocks on the gate).
    let first = loop {
        let v = t.ok(&["tail", "--grep", "error", &id]);
        if range(&v, "stdout_range")[1] >= 16 {
            break v;
        }
    };
    assert_eq!(lines(&first).len(), 1);
    std::fs::write(&gate, b"").unwrap();
    t.wait_done(&id);
    let v = t.ok(&[
        "tail",
        "--grep",
        "error",
        "--since",
        s(&first, "cursor"),
        &id,
    ]);
    assert_eq!(
        lines(&v),
        [
            ("stdout".into(), "error two".into(), 16),
            ("stderr".into(), "error partial".into(), 0),
        ]
    );
    let again = t.ok(&["tail", "--grep", "error", "--since", s(&v, "cursor"), &id]);
    assert!(lines(&again).is_empty());
}

/// Peak RSS in KiB of `agent-exec args`, with GNU time; None without it.
fn peak_rss_kib(t: &TempRoot, args: &[&str]) -> Option<u64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let mut c = std::process::Command::new(time);
    c.args(["-f", "%M"])
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(args)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"));
    let o = c.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let err = String::from_utf8_lossy(&o.stderr);
    err.lines().last()?.trim().parse().ok()
}

/// `tail --grep` streams through the log: its peak RSS on a 200 MB log
/// is that of the same search on a tiny one, plus at most 2 MiB (about
/// 3 s in a debug build; AE_GREP_MB=20 makes it smaller). The absolute
/// figure depends on the build: the static release binary stays under
/// 2 MiB in all, a debug build starts at about 5 MiB.
#[test]
fn grep_reads_a_big_log_in_bounded_memory() {
    let t = TempRoot::new();
    let small = t.ok(&["run", "--", "echo", "NEEDLE small"]);
    let small = s(&small, "job_id").to_string();
    let big = t.ok(&["run", "--", "true"]);
    let big = s(&big, "job_id").to_string();
    let mb: usize = std::env::var("AE_GREP_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // Write the big log in place of the job's (a finished job: nothing
    // else writes it). Lines of 100 bytes, one in 10000 a match, plus
    // one 1 MB line without a newline in the middle.
    let p = t.job_dir(&big).join("stdout.log");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    let filler = "x".repeat(90);
    let lines = mb * 10_000;
    for i in 0..lines {
        if i == lines / 2 {
            f.write_all(&vec![b'y'; 1 << 20]).unwrap();
        }
        if i % 10_000 == 0 {
            writeln!(f, "NEEDLE {i:08} {}", &filler[..75]).unwrap();
        } else {
            writeln!(f, "{i:08} {filler}").unwrap();
        }
    }
    drop(f);
    let size = std::fs::metadata(&p).unwrap().len();
    let args = |id: &str| {
        vec![
            "tail".to_string(),
            "--grep".into(),
            "NEEDLE".into(),
            "--tail-lines".into(),
            "3".into(),
            id.to_string(),
        ]
    };
    let a = args(&big);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let v = t.ok(&a);
    let ms = v["matches"].as_array().unwrap();
    assert_eq!(ms.len(), 3, "{v}");
    let last = (lines - 1) / 10_000 * 10_000;
    assert!(
        s(&ms[2], "line").starts_with(&format!("NEEDLE {last:08}")),
        "{v}"
    );
    assert_eq!(range(&v, "stdout_range"), [0, size]);
    let peak = peak_rss_kib(&t, &a);
    std::fs::remove_file(&p).unwrap();
    let Some(big_kib) = peak else {
        eprintln!("no /usr/bin/time: peak RSS not measured");
        return;
    };
    let b = args(&small);
    let b: Vec<&str> = b.iter().map(String::as_str).collect();
    let base_kib = peak_rss_kib(&t, &b).unwrap();
    assert!(
        big_kib <= base_kib + 2048,
        "grep of {mb} MB peaked at {big_kib} KiB, a tiny log at {base_kib} KiB"
    );
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[test]
fn http_tail_since_and_wait_match_the_cli() {
    let t = TempRoot::new();
    let srv = t.serve();
    let get = |path: &str| support::http(srv.port, "GET", path, "");
    let v = t.ok(&["run", "--max-bytes", "7", "--", "seq", "1", "500"]);
    let id = s(&v, "job_id").to_string();
    let cur = s(&v, "cursor").to_string();
    for (path, args) in [
        (
            format!("/tail/{id}?since={cur}&max_bytes=30"),
            vec!["tail", "--since", &cur, "--max-bytes", "30", &id],
        ),
        (
            format!("/wait/{id}?max_bytes=7&tail_bytes=12"),
            vec!["wait", "--max-bytes", "7", "--tail-bytes", "12", &id],
        ),
        (format!("/wait/{id}"), vec!["wait", &id]),
        (
            format!("/tail/{id}?grep=%5E4.0%24&grep_type=regex&output_stream=stdout&tail_lines=3"),
            vec![
                "tail",
                "--grep",
                "^4.0$",
                "--grep-type",
                "regex",
                "--output-stream",
                "stdout",
                "--tail-lines",
                "3",
                &id,
            ],
        ),
    ] {
        let (status, body) = get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body, t.out(&args).stdout, "{path}");
    }
    let (_, body) = get(&format!("/tail/{id}?since={cur}&max_bytes=30"));
    let r: Value = serde_json::from_str(&body).unwrap();
    let file = log(&t, &id, "stdout.log");
    assert_eq!(s(&r, "stdout").as_bytes(), &file[7..37]);
    let (_, body) = get(&format!("/wait/{id}?max_bytes=7&tail_bytes=12"));
    let w: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (s(&w, "stdout"), s(&w, "stdout_tail")),
        ("1\n2\n3\n4", "498\n499\n500\n")
    );
    // Bad cursors and patterns: 400 with the CLI's codes.
    let other = t.ok(&["run", "--", "true"]);
    for (q, code) in [
        ("since=garbage".to_string(), "invalid_cursor"),
        (format!("since={}", s(&other, "cursor")), "invalid_cursor"),
        ("grep=(&grep_type=regex".into(), "invalid_pattern"),
        ("grep=x&grep_type=glob".into(), "invalid_request"),
    ] {
        let (status, body) = get(&format!("/tail/{id}?{q}"));
        let e: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, s(&e["error"], "code")), (400, code), "{q}: {body}");
    }
}

/// D41: every path a response prints exists when it is printed. A log
/// removed by hand reads as empty and `tail` leaves its path out; a kept
/// run whose directory was removed by hand is not listed in
/// `previous_runs` (by `status` or `wait`). Nothing is recreated.
#[test]
fn printed_log_paths_exist_after_files_are_removed_by_hand() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo out; echo err >&2"]);
    let id = s(&v, "job_id").to_string();
    std::fs::remove_file(t.job_dir(&id).join("stdout.log")).unwrap();
    let v = t.ok(&["tail", &id]);
    assert!(v.get("stdout_log_path").is_none(), "{v}");
    assert_eq!((s(&v, "stdout"), range(&v, "stdout_range")), ("", [0, 0]));
    assert!(Path::new(s(&v, "stderr_log_path")).is_file(), "{v}");
    assert_eq!(s(&v, "stderr"), "err\n");
    assert!(!t.job_dir(&id).join("stdout.log").exists(), "recreated");

    // Two kept runs (a retried job); the first one's directory goes.
    let v = t.ok(&["run", "--retry", "2", "--", "echo try; exit 1"]);
    let id = s(&v, "job_id").to_string();
    assert_eq!(v["previous_runs"].as_array().unwrap().len(), 2, "{v}");
    std::fs::remove_dir_all(t.job_dir(&id).join("runs/1")).unwrap();
    for v in [t.ok(&["status", &id]), t.ok(&["wait", &id])] {
        let runs = v["previous_runs"].as_array().unwrap();
        let attempts: Vec<u64> = runs
            .iter()
            .map(|r| r["attempt"].as_u64().unwrap())
            .collect();
        assert_eq!(attempts, vec![2], "{v}");
        for r in runs {
            for k in ["stdout_log_path", "stderr_log_path"] {
                assert!(Path::new(s(r, k)).is_file(), "{k}: {v}");
            }
        }
    }
}
