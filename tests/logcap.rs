//! Capped logs (`--max-log-bytes`, `--no-full-log`, `[log]` config),
//! black-box: what is kept on disk, the marker line, the counters, and
//! every read (head, tail, cursors, follow, grep, readiness) across the
//! gap. Output is `seq`'s, so every byte can be checked against a copy
//! made here.

mod support;

use std::path::PathBuf;

use serde_json::Value;
use support::TempRoot;

/// What `seq FROM TO` prints.
fn seq(from: u64, to: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for i in from..=to {
        v.extend_from_slice(format!("{i}\n").as_bytes());
    }
    v
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// A capped log's file: head, marker line, tail (None: no marker).
fn split_file(file: &[u8], head: usize) -> Option<(&[u8], String, &[u8])> {
    let rest = &file[head..];
    let start = usize::from(rest.first() == Some(&b'\n'));
    if !rest[start..].starts_with(b"[agent-exec: ") {
        return None;
    }
    let end = start + rest[start..].iter().position(|&b| b == b'\n')? + 1;
    let marker = String::from_utf8(rest[start..end].to_vec()).ok()?;
    Some((&file[..head], marker, &rest[end..]))
}

fn marker_count(marker: &str) -> u64 {
    marker
        .trim_end()
        .strip_prefix("[agent-exec: ")
        .and_then(|m| m.strip_suffix(" bytes dropped]"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not a marker: {marker:?}"))
}

const CAP: u64 = 100_000;
const HEAD: usize = (CAP / 2) as usize;
const TAIL: usize = (CAP - CAP / 2) as usize;

#[test]
fn ten_megabytes_keep_head_and_tail_within_the_cap() {
    let t = TempRoot::new();
    // About 10.4 MB on each stream.
    let v = t.ok(&[
        "run",
        "--forever",
        "--max-log-bytes",
        "100000",
        "--",
        "sh",
        "-c",
        "seq 1 1500000; seq 1 1500000 >&2",
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    let want = seq(1, 1_500_000);
    let total = want.len() as u64;
    assert!(total > 10_000_000);
    let id = v["job_id"].as_str().unwrap();
    for (name, stream) in [("stdout.log", "stdout"), ("stderr.log", "stderr")] {
        assert_eq!(n(&v[format!("{stream}_total_bytes")]), total, "{v}");
        assert_eq!(n(&v[format!("{stream}_dropped_bytes")]), total - CAP, "{v}");
        let file = std::fs::read(t.job_dir(id).join(name)).unwrap();
        let (head, marker, tail) = split_file(&file, HEAD).expect("a marker after the head");
        assert!(
            file.len() as u64 <= CAP + 50,
            "{name}: {} bytes",
            file.len()
        );
        assert_eq!(head, &want[..HEAD], "{name}: the head is the first bytes");
        assert_eq!(
            tail,
            &want[want.len() - TAIL..],
            "{name}: the tail is the last"
        );
        assert_eq!(marker_count(&marker), total - CAP, "{name}: {marker:?}");
        // One marker line, no other.
        let text = String::from_utf8_lossy(&file);
        assert_eq!(text.matches("[agent-exec: ").count(), 1);
    }
    // full.log is capped the same way, and the whole job stays small.
    let full = std::fs::read(t.job_dir(id).join("full.log")).unwrap();
    assert!(
        full.len() as u64 <= CAP + 50,
        "full.log: {} bytes",
        full.len()
    );
    let (_, marker, _) = split_file(&full, HEAD).expect("full.log has a marker");
    assert!(marker_count(&marker) > 2 * (total - CAP), "{marker}");
    assert!(full.ends_with(b"[STDERR] 1500000\n"));
    let on_disk: u64 = std::fs::read_dir(t.job_dir(id))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk < 4 * CAP, "{on_disk} bytes on disk");
}

/// A finished job of `seq 1 200000` (1.29 MB) capped at CAP.
fn finished(t: &TempRoot) -> (String, Vec<u8>) {
    let v = t.ok(&[
        "run",
        "--forever",
        "--max-log-bytes",
        "100000",
        "--max-bytes",
        "1000000",
        "--tail-bytes",
        "100",
        "--",
        "seq",
        "1",
        "200000",
    ]);
    let want = seq(1, 200_000);
    // The head stops at the gap; the end comes from the kept tail.
    let total = want.len() as u64;
    assert_eq!(v["stdout_range"], serde_json::json!([0, HEAD]), "{v}");
    assert_eq!(v["stdout"].as_str().unwrap().as_bytes(), &want[..HEAD]);
    assert_eq!(
        v["stdout_tail_range"],
        serde_json::json!([total - 100, total])
    );
    assert_eq!(
        v["stdout_tail"].as_str().unwrap().as_bytes(),
        &want[want.len() - 100..]
    );
    (v["job_id"].as_str().unwrap().to_string(), want)
}

#[test]
fn tail_and_cursors_read_across_the_gap() {
    let t = TempRoot::new();
    let (id, want) = finished(&t);
    let total = want.len() as u64;
    let tail_start = total - TAIL as u64;
    // Plain tail: the last lines, from the kept tail.
    let v = t.ok(&["tail", "--tail-lines", "3", &id]);
    assert_eq!(v["stdout"], "199998\n199999\n200000\n");
    assert_eq!(n(&v["stdout_total_bytes"]), total);
    assert_eq!(n(&v["stdout_dropped_bytes"]), total - CAP);
    // A window wider than the tail never reaches back across the gap.
    let v = t.ok(&["tail", "--tail-lines", "0", "--max-bytes", "1000000", &id]);
    assert_eq!(v["stdout_range"], serde_json::json!([tail_start, total]));
    assert_eq!(
        v["stdout"].as_str().unwrap().as_bytes(),
        &want[tail_start as usize..]
    );
    // A loop of tail --since from the start: the head, then the tail,
    // with the gap said once.
    // A cursor at 0: from an answer with an empty head.
    let zero = t.ok(&["wait", "--max-bytes", "0", &id]);
    let mut cursor = zero["cursor"].as_str().unwrap().to_string();
    let mut got = Vec::new();
    let mut skipped = 0;
    let mut ranges = Vec::new();
    for _ in 0..20 {
        let v = t.ok(&["tail", "--since", &cursor, "--max-bytes", "30000", &id]);
        let r = [n(&v["stdout_range"][0]), n(&v["stdout_range"][1])];
        let s = n(&v["stdout_skipped_bytes"]);
        if s > 0 {
            assert_eq!(r[0], tail_start, "{v}");
            assert_eq!(s, tail_start - HEAD as u64, "the whole gap, once");
        }
        skipped += s;
        ranges.push(r);
        got.extend_from_slice(v["stdout"].as_str().unwrap().as_bytes());
        cursor = v["cursor"].as_str().unwrap().to_string();
        if r[1] == total {
            break;
        }
    }
    assert_eq!(ranges[0], [0, 30000]);
    assert_eq!(
        ranges[1],
        [30000, HEAD as u64],
        "the head's read stops at the gap"
    );
    let mut expect = want[..HEAD].to_vec();
    expect.extend_from_slice(&want[tail_start as usize..]);
    assert_eq!(got, expect);
    assert_eq!(skipped, total - CAP);
}

/// A job capped at 100000 bytes that prints `seq 1 first`, then waits
/// for the file `go` (returned) before `then`; answers once the line
/// `first` is written: (id, go, that `wait`'s document).
fn capped_at_a_gate(t: &TempRoot, first: u32, then: &str) -> (String, PathBuf, Value) {
    let go = t.cwd.join("go");
    let script = format!(
        "seq 1 {first}; while [ ! -e {} ]; do sleep 0.01; done{then}",
        go.display()
    );
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--max-log-bytes",
        "100000",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let line = format!("^{first}$");
    let w = t.ok(&[
        "wait",
        "--output",
        &line,
        "--output-match-type",
        "regex",
        &id,
    ]);
    (id, go, w)
}

/// A follow of a job that printed `want` and exited 0: its lines cover
/// every byte once, in order, and each output piece is the job's bytes
/// there. Returns how many output pieces it had.
fn check_follow(stdout: &str, want: &[u8]) -> usize {
    let mut pos = 0u64;
    let mut pieces = 0;
    for line in stdout.lines() {
        let o: Value = serde_json::from_str(line).unwrap();
        if o["type"] == "end" {
            assert_eq!(o["exit_code"], 0);
            continue;
        }
        let r = [n(&o["range"][0]), n(&o["range"][1])];
        assert_eq!(r[0], pos, "{o}");
        if o["type"] == "output" {
            let data = o["data"].as_str().unwrap().as_bytes();
            assert_eq!(data, &want[r[0] as usize..r[1] as usize], "at {}", r[0]);
            pieces += 1;
        }
        pos = r[1];
    }
    assert_eq!(pos, want.len() as u64);
    pieces
}

#[test]
fn a_search_a_cut_overtakes_never_matches_the_piece_of_a_line_it_held() {
    // Every line has 9 digits: `^[0-9]{1,8}$` can only match a piece of
    // one. A search of the running job that was past the head when a cut
    // dropped what it had not read yet offered the start of the line it
    // held as a line ("100006" of "100006553", at a 64 KiB boundary).
    let t = TempRoot::new();
    let pattern = "^[0-9]{1,8}$";
    for _ in 0..4 {
        let v = t.ok(&[
            "run",
            "--no-wait",
            "--max-log-bytes",
            "100000",
            "--",
            "sh",
            "-c",
            "seq 100000000 106000000; sleep 0.2",
        ]);
        let id = v["job_id"].as_str().unwrap().to_string();
        for _ in 0..6 {
            let w = t.ok(&[
                "wait",
                "--until",
                "0.01",
                "--output",
                pattern,
                "--output-match-type",
                "regex",
                &id,
            ]);
            assert!(w.get("matched").is_none(), "{}", w["matched"]);
            let g = t.ok(&["tail", "--grep", pattern, "--grep-type", "regex", &id]);
            assert_eq!(g["matches"], serde_json::json!([]), "{}", g["matches"]);
        }
        t.ok(&["kill", &id]);
        t.wait_done(&id);
    }
}

#[test]
fn a_flood_that_outlives_the_drain_leaves_the_whole_tail() {
    // The job ends at once; what it left writes on until the drain's
    // bound (1 s), when the pipe is read one last time and closed. The
    // last reads passed over bytes for the sake of what the pipe held
    // after them, which nobody read: an 8 KiB tail where the cap keeps
    // 50000 bytes.
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--forever",
        "--max-log-bytes",
        "100000",
        "--",
        "sh",
        "-c",
        "(yes 0123456789 &); sleep 0.1",
    ]);
    assert_eq!(v["state"], "exited", "{}", v["state"]);
    let total = n(&v["stdout_total_bytes"]);
    assert!(total > 4 * CAP, "{total}");
    assert_eq!(n(&v["stdout_dropped_bytes"]), total - CAP);
    let id = v["job_id"].as_str().unwrap();
    let file = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
    let (head, _, tail) = split_file(&file, HEAD).expect("a marker after the head");
    assert_eq!(head.len(), HEAD);
    assert_eq!(tail.len(), TAIL, "the kept tail");
}

#[test]
fn a_reader_of_a_running_flood_never_finds_the_tail_empty() {
    // A pass-over cut the file's tail away and then appended what it
    // kept: a read in between found no tail at all.
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--max-log-bytes",
        "1000",
        "--",
        "sh",
        "-c",
        "yes 0123456789",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    // Past the first cut (the head, the tail and 2 MiB of slack), then
    // read again and again while the flood goes on.
    let mut reads = 0;
    while reads < 600 {
        let r = t.ok(&["tail", "--tail-lines", "0", &id]);
        if n(&r["stdout_total_bytes"]) > 4 * 1024 * 1024 {
            reads += 1;
            assert_ne!(r["stdout"], "", "an empty tail: {r}");
        }
    }
    t.ok(&["kill", &id]);
    assert_eq!(t.wait_done(&id)["state"], "killed");
}

/// Whether a child of `pid` is blocked writing to a full pipe.
fn child_blocked_on_a_pipe(pid: u64) -> bool {
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children.split_whitespace().any(|c| {
        std::fs::read_to_string(format!("/proc/{c}/wchan")).is_ok_and(|w| w.contains("pipe_write"))
    })
}

#[test]
fn a_flood_the_tee_is_behind_on_is_cut_exactly() {
    // The tee passes over bytes that what its pipe already holds will push
    // out of the tail (`Capper::skip`). To be sure it does, its supervisor
    // is stopped while the job fills the pipe (1 MiB, far past the tail's
    // 50000 bytes), after a first cut (2.7 MB were written).
    let t = TempRoot::new();
    let (id, go, _) = capped_at_a_gate(&t, 400_000, "; seq 400001 1000000");
    let st = t.state(&id);
    let sup = st["supervisor_pid"].as_u64().unwrap().to_string();
    let pid = st["pid"].as_u64().unwrap();
    let sig = |s: &str| {
        assert!(std::process::Command::new("kill")
            .args([s, &sup])
            .status()
            .unwrap()
            .success())
    };
    sig("-STOP");
    let follower = t
        .cmd(&["tail", "--follow", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(&go, "").unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !child_blocked_on_a_pipe(pid) {
        assert!(
            std::time::Instant::now() < until,
            "the job never filled its pipe"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    sig("-CONT");
    let v = t.wait_done(&id);
    assert_eq!(v["exit_code"], 0, "{}", v["state"]);
    let want = seq(1, 1_000_000);
    let total = want.len() as u64;
    assert_eq!(n(&v["stdout_total_bytes"]), total);
    assert_eq!(n(&v["stdout_dropped_bytes"]), total - CAP);
    let file = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    let (head, marker, tail) = split_file(&file, HEAD).expect("a marker after the head");
    assert_eq!(head, &want[..HEAD]);
    assert_eq!(marker_count(&marker), total - CAP);
    assert_eq!(
        tail,
        &want[want.len() - TAIL..],
        "the tail is the last bytes"
    );
    // full.log: its tail is whole lines, the last ones, in order.
    let full = std::fs::read(t.job_dir(&id).join("full.log")).unwrap();
    let (_, _, ftail) = split_file(&full, HEAD).expect("full.log has a marker");
    let lines: Vec<u64> = String::from_utf8_lossy(ftail)
        .lines()
        .skip(1) // a piece of a line
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(lines.len() > 1000, "{}", lines.len());
    let first = lines[0];
    assert_eq!(lines, (first..=1_000_000).collect::<Vec<_>>());
    // A follower that raced it read only the job's bytes, in order.
    let o = follower.wait_with_output().unwrap();
    check_follow(&String::from_utf8_lossy(&o.stdout), &want);
}

#[test]
fn a_cursor_into_bytes_dropped_later_skips_them() {
    let t = TempRoot::new();
    // Phase one is written (78894 bytes: under the cap, nothing dropped).
    let (id, go, w) = capped_at_a_gate(&t, 15000, "; seq 15001 300000");
    assert_eq!(w["matched"]["line"], "15000", "{w}");
    // A cursor at 60000: in the tail now, in the dropped middle later.
    let at50k = t.ok(&["wait", "--until", "0", "--max-bytes", "50000", &id]);
    let zero = t.ok(&[
        "tail",
        "--since",
        at50k["cursor"].as_str().unwrap(),
        "--max-bytes",
        "10000",
        &id,
    ]);
    assert_eq!(
        zero["stdout_range"],
        serde_json::json!([50000, 60000]),
        "{zero}"
    );
    assert_eq!(n(&zero["stdout_skipped_bytes"]), 0);
    let cursor = zero["cursor"].as_str().unwrap().to_string();
    std::fs::write(&go, "").unwrap();
    t.wait_done(&id);
    let want = seq(1, 300_000);
    let total = want.len() as u64;
    let tail_start = total - TAIL as u64;
    let v = t.ok(&["tail", "--since", &cursor, "--max-bytes", "500", &id]);
    assert_eq!(n(&v["stdout_skipped_bytes"]), tail_start - 60000, "{v}");
    assert_eq!(
        v["stdout_range"],
        serde_json::json!([tail_start, tail_start + 500])
    );
    assert_eq!(
        v["stdout"].as_str().unwrap().as_bytes(),
        &want[tail_start as usize..tail_start as usize + 500]
    );
    assert_eq!(n(&v["stdout_dropped_bytes"]), total - CAP);
    // wait --output --since the same cursor: readiness finds a line of
    // the tail, not one of the dropped middle.
    let w = t.ok(&["wait", "--output", "299999", "--since", &cursor, &id]);
    assert_eq!(w["matched"]["line"], "299999");
    assert_eq!(n(&w["stdout_skipped_bytes"]), tail_start - 60000, "{w}");
    let at = total - b"299999\n300000\n".len() as u64;
    assert_eq!(n(&w["matched"]["offset"]), at);
    let w = t.ok(&[
        "wait",
        "--output",
        "^100000$",
        "--output-match-type",
        "regex",
        &id,
    ]);
    assert!(w.get("matched").is_none(), "a dropped line matched: {w}");
}

#[test]
fn grep_and_follow_cross_the_gap() {
    let t = TempRoot::new();
    let (id, want) = finished(&t);
    let total = want.len() as u64;
    let tail_start = total - TAIL as u64;
    let offset_of = |line: &str| -> u64 {
        let needle = format!("\n{line}\n");
        let text = String::from_utf8_lossy(&want);
        text.find(&needle).unwrap() as u64 + 1
    };
    let v = t.ok(&[
        "tail",
        "--grep",
        "^(1000|100000|199990)$",
        "--grep-type",
        "regex",
        "--tail-lines",
        "0",
        &id,
    ]);
    let m: Vec<(String, u64)> = v["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["line"].as_str().unwrap().to_string(), n(&m["offset"])))
        .collect();
    assert_eq!(
        m,
        [
            ("1000".to_string(), offset_of("1000")),
            ("199990".to_string(), offset_of("199990"))
        ],
        "{v}"
    );
    assert_eq!(v["stdout_range"], serde_json::json!([0, total]));
    // Follow: the head, one gap object, the tail; every piece exact.
    let o = t.out(&["tail", "--follow", &id]);
    let objs: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let gaps: Vec<&Value> = objs.iter().filter(|o| o["type"] == "gap").collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["stream"], "stdout");
    assert_eq!(gaps[0]["range"], serde_json::json!([HEAD, tail_start]));
    assert_eq!(n(&gaps[0]["skipped_bytes"]), tail_start - HEAD as u64);
    let mut pos = 0u64;
    for o in objs.iter().filter(|o| o["stream"] == "stdout") {
        let r = [n(&o["range"][0]), n(&o["range"][1])];
        assert_eq!(r[0], pos, "{o}");
        if o["type"] == "output" {
            let data = o["data"].as_str().unwrap().as_bytes();
            assert_eq!(data, &want[r[0] as usize..r[1] as usize]);
        }
        pos = r[1];
    }
    assert_eq!(pos, total);
    // --raw shows the gap as the log does: one marker line.
    let o = t.out(&["tail", "--follow", "--raw", &id]);
    let (head, marker, tail) = split_file(o.stdout.as_bytes(), HEAD).expect("a marker");
    assert_eq!(head, &want[..HEAD]);
    assert_eq!(marker_count(&marker), tail_start - HEAD as u64);
    assert_eq!(tail, &want[tail_start as usize..]);
}

/// Followed with --raw, a finished capped job's bytes are its log's:
/// the marker starts a line of its own without a blank line before it
/// (a head that ended a line, or no head at all).
#[test]
fn a_raw_follow_of_a_finished_capped_job_is_its_log_byte_for_byte() {
    let t = TempRoot::new();
    for (cap, cmd) in [
        ("20", "seq 1 100"),
        ("1", "seq 1 50"),
        ("20", "printf abcdefghijklmnopqrstuvwxyz0123456789"),
        ("20", "seq 1 100 >&2"),
    ] {
        let v = t.ok(&["run", "--max-log-bytes", cap, "--", cmd]);
        let id = v["job_id"].as_str().unwrap();
        let o = t.out(&["tail", "--follow", "--raw", id]);
        let (got, log) = if cmd.ends_with(">&2") {
            (o.stderr, t.read(id, "stderr.log"))
        } else {
            (o.stdout, t.read(id, "stdout.log"))
        };
        assert_eq!(got, log, "{cap} {cmd}");
    }
}

#[test]
fn a_follower_racing_the_cuts_never_sees_wrong_bytes() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--max-log-bytes",
        "20000",
        "--",
        "seq",
        "1",
        "1500000",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let want = seq(1, 1_500_000);
    let o = t.out(&["tail", "--follow", id]);
    assert!(check_follow(&o.stdout, &want) >= 2);
}

#[test]
fn no_full_log_and_the_config_keys() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--no-full-log", "--", "echo", "hi"]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(v["stdout"], "hi\n");
    assert!(!t.job_dir(id).join("full.log").exists());
    assert_eq!(t.meta(id)["no_full_log"], true);
    for p in [&v["stdout_log_path"], &v["stderr_log_path"]] {
        assert!(std::path::Path::new(p.as_str().unwrap()).exists(), "{p}");
    }
    // --log and --no-full-log contradict each other.
    let (code, e) = t.err(&["run", "--no-full-log", "--log", "x.log", "--", "true"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{e}"
    );

    // [log] in the config file: the defaults of both flags.
    let cfg = t.base.join("log.toml");
    std::fs::write(&cfg, "[log]\nmax_bytes = 1000\nfull = false\n").unwrap();
    let c = cfg.to_str().unwrap();
    let v = t.ok(&["run", "--config", c, "--forever", "--", "seq", "1", "10000"]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(t.meta(id)["max_log_bytes"], 1000);
    assert!(!t.job_dir(id).join("full.log").exists());
    assert_eq!(
        n(&v["stdout_dropped_bytes"]),
        seq(1, 10000).len() as u64 - 1000
    );
    let file = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
    assert!(file.len() <= 1050, "{}", file.len());
    // The flags win over the file: 0 is no cap; --log brings full.log back.
    let v = t.ok(&[
        "run",
        "--config",
        c,
        "--max-log-bytes",
        "0",
        "--log",
        "f.log",
        "--forever",
        "--",
        "seq",
        "1",
        "10000",
    ]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(n(&v["stdout_dropped_bytes"]), 0);
    assert!(t.meta(id).get("max_log_bytes").is_none());
    assert!(t.cwd.join("f.log").exists());
    // --full-log brings the job's own full.log back (as HTTP's
    // `no_full_log: false` does); with --no-full-log it is a usage error.
    let v = t.ok(&["run", "--config", c, "--full-log", "--", "echo", "hi"]);
    let id = v["job_id"].as_str().unwrap();
    assert!(t.job_dir(id).join("full.log").exists(), "{v}");
    let v = t.ok(&["create", "--config", c, "--full-log", "--", "echo", "hi"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    t.ok(&["start", &id]);
    t.wait_done(&id);
    assert!(t.job_dir(&id).join("full.log").exists(), "{v}");
    let (code, e) = t.err(&["run", "--full-log", "--no-full-log", "--", "true"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{e}"
    );
    // create/start take it too.
    let v = t.ok(&[
        "create",
        "--max-log-bytes",
        "2000",
        "--",
        "seq",
        "1",
        "10000",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let v = t.ok(&["start", "--forever", id]);
    assert_eq!(
        n(&v["stdout_dropped_bytes"]),
        seq(1, 10000).len() as u64 - 2000
    );
    // A bad value in the file is refused, naming the key.
    std::fs::write(&cfg, "[log]\nmax_bytes = -1\n").unwrap();
    let (_, e) = t.err(&["run", "--config", c, "--", "true"]);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("log.max_bytes"),
        "{e}"
    );
}

#[test]
fn a_small_log_is_untouched_and_reports_nothing_dropped() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--max-log-bytes", "100000", "--", "seq", "1", "1000"]);
    let id = v["job_id"].as_str().unwrap();
    let want = seq(1, 1000);
    assert_eq!(
        std::fs::read(t.job_dir(id).join("stdout.log")).unwrap(),
        want
    );
    assert_eq!(n(&v["stdout_dropped_bytes"]), 0);
    assert_eq!(n(&v["stdout_total_bytes"]), want.len() as u64);
    let v = t.ok(&["tail", "--since", v["cursor"].as_str().unwrap(), id]);
    assert_eq!(n(&v["stdout_skipped_bytes"]), 0);
    // A head that ends inside a line: the marker starts its own line.
    let v = t.ok(&[
        "run",
        "--forever",
        "--max-log-bytes",
        "1002",
        "--",
        "seq",
        "1",
        "100000",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let file = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
    let want = seq(1, 100_000);
    assert_ne!(want[500], b'\n');
    assert_eq!(&file[..501], &want[..501]);
    assert!(file[501..].starts_with(b"\n[agent-exec: "));
    assert!(file.ends_with(&want[want.len() - 501..]));
}

#[test]
fn a_running_job_stays_within_its_bound() {
    let t = TempRoot::new();
    let (id, go, w) = capped_at_a_gate(&t, 1_500_000, "");
    assert_eq!(w["state"], "running", "{w}");
    let want = seq(1, 1_500_000);
    let total = want.len() as u64;
    // The marker line: 49 bytes, and a newline first when the head ends
    // inside a line.
    let marker = 49 + u64::from(want[HEAD - 1] != b'\n');
    assert_eq!(n(&w["stdout_total_bytes"]), total);
    let dropped = n(&w["stdout_dropped_bytes"]);
    assert!(dropped > 0, "{w}");
    // Not yet cut to the cap: the bound while running.
    let len = std::fs::metadata(t.job_dir(&id).join("stdout.log"))
        .unwrap()
        .len();
    assert!(len <= CAP + 2 * 1024 * 1024 + 128 * 1024 + 50, "{len}");
    assert_eq!(len - marker + dropped, total, "file, marker and gap add up");
    std::fs::write(&go, "").unwrap();
    let end = t.wait_done(&id);
    assert_eq!(n(&end["stdout_dropped_bytes"]), total - CAP);
    let len = std::fs::metadata(t.job_dir(&id).join("stdout.log"))
        .unwrap()
        .len();
    assert_eq!(len, CAP + marker, "cut to the cap when the job ended");
}

/// A log that ends a little past its cap (fewer bytes over than the
/// marker line is long, or a few more) keeps exactly its head and its
/// last bytes: the marker never lands on the kept tail.
#[test]
fn a_log_just_past_its_cap_keeps_its_last_bytes() {
    let t = TempRoot::new();
    // seq 1 20 is 51 bytes: 11 over a cap of 40; 1..=30 is 81 (41 over).
    for (to, cap) in [(20u64, 40usize), (30, 40), (12, 20), (20, 10)] {
        let v = t.ok(&[
            "run",
            "--max-log-bytes",
            &cap.to_string(),
            "--",
            "seq",
            "1",
            &to.to_string(),
        ]);
        let want = seq(1, to);
        let id = v["job_id"].as_str().unwrap();
        let (head, tail) = (cap / 2, cap - cap / 2);
        let dropped = (want.len() - cap) as u64;
        assert_eq!(n(&v["stdout_dropped_bytes"]), dropped, "{v}");
        let file = std::fs::read(t.job_dir(id).join("stdout.log")).unwrap();
        let (h, marker, rest) = split_file(&file, head).expect("a marker");
        assert_eq!(h, &want[..head]);
        assert_eq!(marker_count(&marker), dropped);
        assert_eq!(rest, &want[want.len() - tail..], "cap {cap}, seq 1 {to}");
        let tl = t.ok(&["tail", id]);
        assert_eq!(
            tl["stdout"].as_str().unwrap().as_bytes(),
            &want[want.len() - tail..],
            "{tl}"
        );
    }
}

/// A capped job whose supervisor is killed: the reader that records
/// `supervisor_lost` cuts its logs to their final size, as the
/// supervisor's end would have (N plus the marker), keeping the head and
/// the last bytes the job wrote.
#[test]
fn a_lost_supervisors_capped_log_is_cut_to_its_final_size() {
    let t = TempRoot::new();
    // 1.3 MB at once (less than the running slack: no cut yet), then quiet.
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--max-log-bytes",
        "1000",
        "--",
        "seq 1 200000; sleep 60",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    t.ok(&["wait", "--output", "200000", "--until", "30", &id]);
    let want = seq(1, 200_000);
    let before = std::fs::metadata(t.job_dir(&id).join("stdout.log")).unwrap();
    assert!(before.len() > 100_000, "cut already: {}", before.len());
    let sup = t.state(&id)["supervisor_pid"].as_u64().unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &sup.to_string()])
        .status();
    // A wait wakes when the dead supervisor's lock is let go of.
    let st = t.ok(&["wait", "--until", "30", &id]);
    assert_eq!(st["failure"]["code"], "supervisor_lost", "{st}");
    let file = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    let (head, marker, tail) = split_file(&file, 500).expect("a marker");
    assert_eq!(head, &want[..500]);
    assert_eq!(marker_count(&marker), want.len() as u64 - 1000);
    assert_eq!(tail, &want[want.len() - 500..]);
    let tl = t.ok(&["tail", &id]);
    assert_eq!(n(&tl["stdout_total_bytes"]), want.len() as u64, "{tl}");
}

/// `(line, offset)` of every match of a `tail --grep` answer.
fn matches(v: &Value) -> Vec<(String, u64)> {
    v["matches"]
        .as_array()
        .unwrap_or_else(|| panic!("no matches: {v}"))
        .iter()
        .map(|m| (m["line"].as_str().unwrap().to_string(), n(&m["offset"])))
        .collect()
}

/// The offsets of a `tail --grep` answer's matches (its lines may be
/// megabytes long).
fn offsets(v: &Value) -> Vec<u64> {
    matches(v).into_iter().map(|(_, o)| o).collect()
}

/// `tail --grep PATTERN` (a regex, every match) and `wait --output
/// PATTERN` (the first) of a finished job.
fn grep_and_ready(t: &TempRoot, id: &str, pattern: &str) -> (Vec<(String, u64)>, Value) {
    let v = t.ok(&[
        "tail",
        "--grep",
        pattern,
        "--grep-type",
        "regex",
        "--tail-lines",
        "0",
        id,
    ]);
    let w = t.ok(&[
        "wait",
        "--output",
        pattern,
        "--output-match-type",
        "regex",
        id,
    ]);
    (matches(&v), w)
}

/// The piece of a line the kept tail starts with is not a line: neither
/// grep nor readiness matches it (`^93$` would find a line the job never
/// printed: it printed 993).
#[test]
fn the_piece_of_a_line_the_tail_starts_with_is_never_matched() {
    let t = TempRoot::new();
    // Cap 64: the head is "1\n…13\n14" (the newline after 14 is the
    // first byte dropped: 14 is whole), the tail "93\n994\n…1000\n",
    // whose "93" is the end of 993.
    let v = t.ok(&["run", "--max-log-bytes", "64", "--", "seq", "1", "1000"]);
    let id = v["job_id"].as_str().unwrap();
    let want = seq(1, 1000);
    assert_eq!(&want[want.len() - 32..want.len() - 29], b"93\n");
    let (m, w) = grep_and_ready(&t, id, "^93$");
    assert_eq!(m, [], "the tail's first piece matched");
    assert!(w.get("matched").is_none(), "readiness on a piece: {w}");
    let (m, _) = grep_and_ready(&t, id, ".");
    let offset_of = |line: u64| -> u64 { seq(1, line - 1).len() as u64 };
    let expect: Vec<(String, u64)> = (1..=14)
        .chain(994..=1000)
        .map(|i| (i.to_string(), offset_of(i)))
        .collect();
    assert_eq!(m, expect);
    let (_, w) = grep_and_ready(&t, id, "^14$");
    assert_eq!(w["matched"]["offset"], offset_of(14), "{w}");
}

/// The piece of a line the head ends with is not a line either (`^0$`
/// would match the start of 0123456789).
#[test]
fn the_piece_of_a_line_the_head_ends_with_is_never_matched() {
    let t = TempRoot::new();
    // Cap 20: the head is "abcdefgh\n0", the start of 0123456789.
    let v = t.ok(&[
        "run",
        "--max-log-bytes",
        "20",
        "--",
        "echo abcdefgh; echo 0123456789; seq 1 1000",
    ]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(v["stdout"], "abcdefgh\n0", "{v}");
    let (m, w) = grep_and_ready(&t, id, "^0$");
    assert_eq!(m, [], "the head's last piece matched");
    assert!(w.get("matched").is_none(), "readiness on a piece: {w}");
    let (m, _) = grep_and_ready(&t, id, ".");
    let total = n(&v["stdout_total_bytes"]);
    let expect = [
        ("abcdefgh".to_string(), 0),
        ("999".to_string(), total - 9),
        ("1000".to_string(), total - 5),
    ];
    assert_eq!(m, expect);
}

/// A gap that starts and ends at line breaks leaves the lines on both
/// sides whole: they are matched, though their newlines' neighbours
/// were dropped.
#[test]
fn lines_the_gap_leaves_whole_are_matched() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--max-log-bytes",
        "20",
        "--",
        "echo aaaaaaaaaa; echo xxxxxxxxxxxxxxxxxxxx; echo 123456789",
    ]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(n(&v["stdout_dropped_bytes"]), 22, "{v}");
    let (m, w) = grep_and_ready(&t, id, ".");
    let expect = [("aaaaaaaaaa".to_string(), 0), ("123456789".to_string(), 32)];
    assert_eq!(m, expect);
    assert_eq!(w["matched"]["line"], "aaaaaaaaaa", "{w}");
    let (_, w) = grep_and_ready(&t, id, "^[0-9]+$");
    assert_eq!(w["matched"]["offset"], 32, "{w}");
}

/// The tail of a running job is cut inside a line that has not ended
/// yet: a search that stops there (a grep's cursor, readiness) starts
/// again at the tail and skips the piece once its newline comes, rather
/// than matching the rest of it as a line.
#[test]
fn a_cut_line_still_being_written_is_not_matched_when_it_ends() {
    let t = TempRoot::new();
    let go = t.cwd.join("go");
    let go2 = t.cwd.join("go2");
    // One line of 3 MB: more than the running slack, so the tail is cut
    // inside it while it is written.
    let script = format!(
        "printf B; head -c 3000000 /dev/zero | tr '\\0' a; \
         while [ ! -e {go} ]; do sleep 0.01; done; printf 'X\\nready\\n'; \
         while [ ! -e {go2} ]; do sleep 0.01; done",
        go = go.display(),
        go2 = go2.display()
    );
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--max-log-bytes",
        "100000",
        "--",
        "sh",
        "-c",
        &script,
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    // No line to wait for: wait until the supervisor has read it all.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let v = loop {
        let v = t.ok(&["tail", "--max-bytes", "0", &id]);
        if n(&v["stdout_total_bytes"]) == 3_000_001 {
            break v;
        }
        assert!(std::time::Instant::now() < until, "never written: {v}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let dropped = n(&v["stdout_dropped_bytes"]);
    assert!(dropped > 0, "not cut while running: {v}");
    let tail_start = HEAD as u64 + dropped;
    let piece = "^a*X?$";
    let g = t.ok(&[
        "tail",
        "--grep",
        piece,
        "--grep-type",
        "regex",
        "--output-stream",
        "stdout",
        &id,
    ]);
    assert_eq!(offsets(&g), Vec::<u64>::new(), "{}", g["stdout_range"]);
    // Stopped at the tail's start: the cut line is not over.
    assert_eq!(g["stdout_range"], serde_json::json!([0, tail_start]), "{g}");
    let cursor = g["cursor"].as_str().unwrap().to_string();
    std::fs::write(&go, "").unwrap();
    // Readiness finds the first whole line of the tail, not the piece.
    let w = t.ok(&[
        "wait",
        "--output",
        "^(a*X|ready)$",
        "--output-match-type",
        "regex",
        "--until",
        "60",
        &id,
    ]);
    assert_eq!(w["state"], "running", "{}", w["state"]);
    assert_eq!(n(&w["matched"]["offset"]), 3_000_003, "not the line ready");
    assert_eq!(w["matched"]["line"], "ready");
    // From the cursor (the tail's start, not cut again): the same.
    let g = t.ok(&[
        "tail",
        "--grep",
        piece,
        "--grep-type",
        "regex",
        "--since",
        &cursor,
        &id,
    ]);
    assert_eq!(
        offsets(&g),
        Vec::<u64>::new(),
        "the rest of a cut line matched"
    );
    let w = t.ok(&[
        "wait",
        "--output",
        piece,
        "--output-match-type",
        "regex",
        "--since",
        &cursor,
        "--until",
        "0",
        &id,
    ]);
    assert!(
        w.get("matched").is_none(),
        "readiness on a piece at {}",
        w["matched"]["offset"]
    );
    std::fs::write(&go2, "").unwrap();
    t.wait_done(&id);
    let (m, _) = grep_and_ready(&t, &id, ".");
    assert_eq!(m, [("ready".to_string(), 3_000_003)]);
}

/// Read a follow's JSON lines.
fn follow_lines(t: &TempRoot, id: &str) -> Vec<Value> {
    let out = t
        .cmd(&["tail", "--follow", "--until", "10", id])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A cut that falls inside a character drops that character whole: the
/// head ends and the tail starts with a whole one, on disk and in every
/// read (run's head and tail, tail, follow, a `--since` loop), so no
/// read shows U+FFFD for a character the job printed whole.
#[test]
fn a_cut_inside_a_character_drops_it_whole() {
    let t = TempRoot::new();
    // 30 × "€" (3 bytes each): the head's 20 bytes end 2 bytes into the
    // 7th; the tail's last 20 bytes start 2 bytes into a character.
    let script = "for i in $(seq 30); do printf '\\342\\202\\254'; done";
    let v = t.ok(&["run", "--max-log-bytes", "40", "--", script]);
    let six = "€".repeat(6);
    assert_eq!(v["stdout"], six.as_str(), "{v}");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 18]), "{v}");
    assert_eq!(v["stdout_tail"], six.as_str(), "{v}");
    assert_eq!(v["stdout_tail_range"], serde_json::json!([72, 90]), "{v}");
    assert_eq!(v["stdout_dropped_bytes"], 54, "{v}");
    let id = v["job_id"].as_str().unwrap().to_string();
    let file = std::fs::read(t.job_dir(&id).join("stdout.log")).unwrap();
    let text = String::from_utf8(file).expect("the log on disk is UTF-8");
    assert!(
        text.starts_with(&format!("{six}\n[agent-exec: 54 bytes")),
        "{text:?}"
    );
    assert!(
        text.ends_with(&format!("dropped]{}\n{six}", " ".repeat(18))),
        "{text:?}"
    );
    let tail = t.ok(&["tail", &id]);
    assert_eq!(tail["stdout"], six.as_str(), "{tail}");
    // A loop of `tail --since` from the cursor a `--no-wait` run
    // answers with (just after what that answer showed: the start, or,
    // for a job fast enough, some of its output, which a loaded CI run
    // met), 10 bytes at a time: the texts join to the two parts, and the
    // bytes between are counted as skipped.
    let c = t.ok(&["run", "--no-wait", "--max-log-bytes", "40", "--", script]);
    let id2 = c["job_id"].as_str().unwrap().to_string();
    t.wait_done(&id2);
    let shown = c["stdout"].as_str().unwrap_or_default().to_string();
    let (mut cursor, mut text, mut skipped) = (c["cursor"].as_str().unwrap().to_string(), shown, 0);
    loop {
        let r = t.ok(&["tail", "--max-bytes", "10", "--since", &cursor, &id2]);
        let s = r["stdout"].as_str().unwrap();
        assert!(!s.contains('\u{fffd}'), "{r}");
        skipped += n(&r["stdout_skipped_bytes"]);
        if s.is_empty() && r["cursor"] == cursor.as_str() {
            break;
        }
        text.push_str(s);
        cursor = r["cursor"].as_str().unwrap().to_string();
    }
    assert_eq!(text, "€".repeat(12));
    assert_eq!(skipped, 54);
    let follow = follow_lines(&t, &id);
    let data: Vec<(&str, Value)> = follow
        .iter()
        .filter(|l| l["type"] == "output")
        .map(|l| (l["data"].as_str().unwrap(), l["range"].clone()))
        .collect();
    assert_eq!(
        data,
        vec![
            (six.as_str(), serde_json::json!([0, 18])),
            (six.as_str(), serde_json::json!([72, 90]))
        ],
        "{follow:?}"
    );
    let gap: Vec<&Value> = follow.iter().filter(|l| l["type"] == "gap").collect();
    assert_eq!(gap.len(), 1, "{follow:?}");
    assert_eq!(gap[0]["range"], serde_json::json!([18, 72]), "{follow:?}");
}

/// A cap that keeps no head (`--max-log-bytes 1`): run's head is empty
/// at the start, and the one byte kept is the tail, not the head.
#[test]
fn a_cap_with_no_head_answers_an_empty_head() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--max-log-bytes", "1", "--", "seq", "1", "10"]);
    assert_eq!(v["stdout"], "", "{v}");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 0]), "{v}");
    assert_eq!(v["stdout_tail"], "\n", "{v}");
    assert_eq!(v["stdout_tail_range"], serde_json::json!([20, 21]), "{v}");
    assert_eq!(v["stdout_dropped_bytes"], 20, "{v}");
}

/// A `log.gaps` that is a symlink or a directory is refused
/// (`unsafe_path`), never read as "nothing dropped": then the marker line
/// passed for the job's output and the totals lost every dropped byte.
#[test]
fn a_gaps_file_that_is_a_symlink_or_a_directory_is_refused() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--max-log-bytes", "40", "--", "seq", "1", "5000"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let dir = t.job_dir(&id);
    let gaps = dir.join("log.gaps");
    let saved = t.base.join("saved-gaps");
    std::fs::rename(&gaps, &saved).unwrap();
    for kind in ["symlink", "dir"] {
        match kind {
            "symlink" => std::os::unix::fs::symlink(&saved, &gaps).unwrap(),
            _ => std::fs::create_dir(&gaps).unwrap(),
        }
        for args in [
            &["tail", &id][..],
            &["wait", &id],
            &["tail", "--follow", &id],
        ] {
            let o = t.out(args);
            let last: Value = serde_json::from_str(o.stdout.lines().last().unwrap()).unwrap();
            assert_eq!(
                last["error"]["code"], "unsafe_path",
                "{kind} {args:?}: {}",
                o.stdout
            );
        }
        match kind {
            "symlink" => std::fs::remove_file(&gaps).unwrap(),
            _ => std::fs::remove_dir(&gaps).unwrap(),
        }
    }
    std::fs::rename(&saved, &gaps).unwrap();
    assert!(
        t.ok(&["tail", &id])["stdout_dropped_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
}

/// A damaged gap record (written by somebody else: a torn record that
/// never heals) is an `io_error` within a few seconds for every read,
/// not a wait that neither `--until` nor a signal could end.
#[test]
fn a_damaged_gap_record_is_an_error_not_a_hang() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--max-log-bytes", "2000", "--", "seq", "1", "5000"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let gaps = t.job_dir(&id).join("log.gaps");
    let good = std::fs::read_to_string(&gaps).unwrap();
    // Each variant breaks stdout's record: its two generations disagree
    // (as a torn read would show), or it is no record at all.
    let torn = good.replacen("g=00000000000000000002 ", "g=00000000000000000003 ", 1);
    assert_ne!(torn, good, "{good:?}");
    // Cut short (emptied) too: it read as "nothing dropped".
    for damaged in [torn, "hello world\n".repeat(40), String::new()] {
        std::fs::write(&gaps, &damaged).unwrap();
        for args in [
            &["wait", "--until", "1", &id][..],
            &["tail", &id],
            &["tail", "--follow", "--until", "1", &id],
        ] {
            let mut child = t
                .cmd(args)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() {
                if std::time::Instant::now() > until {
                    let _ = child.kill();
                    panic!("{args:?} hung on a damaged log.gaps");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let o = child.wait_with_output().unwrap();
            let text = String::from_utf8(o.stdout).unwrap();
            let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
            assert_eq!(last["error"]["code"], "io_error", "{args:?}: {text}");
            assert!(
                last["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("log.gaps"),
                "{text}"
            );
        }
    }
}

/// A capped log on a disk with room for its cap but not for the slack it
/// may grow by between cuts: cut back when the disk fills, it keeps its
/// newest bytes and loses nothing (its first cut failed on the full disk,
/// and it stayed over its cap without the end of the output).
#[test]
fn a_capped_log_on_a_small_disk_is_cut_back_when_the_disk_fills() {
    let t = TempRoot::new();
    let Some(_fs) = support::Mount::tmpfs(&t.root, "400k") else {
        return;
    };
    let v = t.ok(&[
        "run",
        "--until",
        "60",
        "--no-full-log",
        "--max-log-bytes",
        "100000",
        "--",
        "seq 1 500000",
    ]);
    assert_eq!(v["state"], "exited", "{v}");
    assert!(v.get("output_lost").is_none(), "{v}");
    let total = v["stdout_total_bytes"].as_u64().unwrap();
    assert_eq!(total, 3_388_895, "{v}");
    assert_eq!(
        v["stdout_dropped_bytes"].as_u64().unwrap() + 100_000,
        total,
        "{v}"
    );
    let log = std::fs::read(v["stdout_log_path"].as_str().unwrap()).unwrap();
    assert!(log.len() <= 100_000 + 64, "{}", log.len());
    assert!(log.ends_with(b"499999\n500000\n"));
}

/// Capped logs whose final cut finds no room for its staged copy (three
/// streams on a nearly full disk): the cut is given up with nothing
/// moved, and the output stays readable. The cut's intent stayed on
/// record, and every read (the `run` answer itself, `tail`, `wait`)
/// tried the copy again and failed with io_error while the disk was
/// full, then cut the log at a stale place once it was not.
#[test]
fn a_cut_with_no_room_for_its_copy_leaves_the_logs_readable() {
    let t = TempRoot::new();
    let disk = t.base.join("disk");
    let Some(_fs) = support::Mount::tmpfs(&disk, "4m") else {
        return;
    };
    std::fs::write(disk.join("fill"), vec![0u8; 2_300_000]).unwrap();
    let root = disk.join("jobs");
    let mut c = t.bare();
    c.arg("--root").arg(&root).args([
        "run",
        "--no-auto-gc",
        "--max-log-bytes",
        "600000",
        "--until",
        "60",
        "--",
        "seq 1 2000000; seq 1 1000000 >&2",
    ]);
    let v = t.exec(c).json();
    assert_eq!(
        (&v["ok"], &v["state"]),
        (&Value::Bool(true), &Value::from("exited")),
        "{v}"
    );
    let id = v["job_id"].as_str().unwrap();
    for args in [["tail", id], ["wait", id]] {
        let mut c = t.bare();
        c.arg("--root").arg(&root).args(args);
        let w = t.exec(c).json();
        assert_eq!(w["ok"], true, "{args:?}: {w}");
    }
    // Room again: still the same output, nothing cut at a stale place.
    std::fs::remove_file(disk.join("fill")).unwrap();
    let mut c = t.bare();
    c.arg("--root")
        .arg(&root)
        .args(["tail", "--max-bytes", "8", id]);
    let w = t.exec(c).json();
    assert_eq!(w["ok"], true, "{w}");
    assert_eq!(w["stdout_total_bytes"], v["stdout_total_bytes"], "{w}");
}

/// A cut on a disk too full for its staged copy keeps a shorter tail
/// instead (audit 33): the log ends within its cap with its last bytes,
/// and nothing is lost. The cut was given up, the log stopped taking its
/// stream and ended over its cap (73,728 bytes for a cap of 50,000 here,
/// 1.2 MB lost). 140 KiB free: room for the job's own files and a log
/// that outgrows its cap by less than its tail's share.
#[test]
fn a_cut_with_no_room_for_its_copy_keeps_a_shorter_tail() {
    let t = TempRoot::new();
    let disk = t.base.join("disk");
    let Some(_fs) = support::Mount::tmpfs(&disk, "512k") else {
        return;
    };
    let root = disk.join("jobs");
    std::fs::create_dir(&root).unwrap();
    let avail = support::free_kib(&disk);
    std::fs::write(
        disk.join("fill"),
        vec![0u8; ((avail - 140) * 1024) as usize],
    )
    .unwrap();
    let mut c = t.bare();
    c.arg("--root").arg(&root).args([
        "run",
        "--no-auto-gc",
        "--no-full-log",
        "--until",
        "60",
        "--max-log-bytes",
        "50000",
        "--",
        "seq 1 200000; exit 9",
    ]);
    let v = t.exec(c).json();
    assert_eq!(v["exit_code"], 9, "{}", v["error"]);
    assert!(v.get("output_lost").is_none(), "{}", v["output_lost"]);
    let log = std::fs::read(v["stdout_log_path"].as_str().unwrap()).unwrap();
    assert!(log.len() <= 50_000 + 64, "{}", log.len());
    // The head, the marker (after a newline of its own when the head
    // ends inside a line), the last bytes: all the job wrote, but for
    // what the marker counts.
    let all: String = (1..=200_000).map(|i| format!("{i}\n")).collect();
    let all = all.as_bytes();
    assert_eq!(v["stdout_total_bytes"].as_u64(), Some(all.len() as u64));
    let at = log
        .windows(13)
        .position(|w| w == b"[agent-exec: ")
        .expect("a marker");
    let head = if all[at - 1] == b'\n' { at } else { at - 1 };
    assert_eq!(log[..head], all[..head]);
    let end = at + log[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let tail = &log[end..];
    assert!(tail.len() > 10_000, "{}", tail.len());
    assert!(all.ends_with(tail));
    let dropped = v["stdout_dropped_bytes"].as_u64().unwrap();
    assert_eq!((head + tail.len()) as u64 + dropped, all.len() as u64);
}
