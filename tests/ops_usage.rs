//! Issue #16, parts 2, 5 and 6: what ran and what it cost (command, cwd,
//! CPU time, peak memory), waiting for several jobs (CLI, HTTP, MCP),
//! and the views for people (`--table`, `-v` progress notes).

mod support;
#[path = "support/validate.rs"]
mod validate;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

/// A shell loop that burns about 100-300 ms of user CPU.
const BURN: &str = "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo burnt";

fn schema(t: &TempRoot) -> Value {
    t.ok(&["schema"])["schema"].clone()
}

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------
// 2. What ran, and what it cost
// ---------------------------------------------------------------------------

#[test]
fn a_cpu_burning_job_reports_its_cpu_time_and_memory() {
    let t = TempRoot::new();
    let s = schema(&t);
    let burn = t.ok(&["run", "--until", "60", "--", BURN]);
    assert_eq!(burn["state"], "exited", "{burn}");
    let idle = t.ok(&["run", "--until", "60", "--", "sleep", "0.3"]);
    assert_eq!(idle["state"], "exited", "{idle}");
    let user = burn["cpu_user_ms"].as_u64().expect("cpu_user_ms");
    let idle_user = idle["cpu_user_ms"].as_u64().expect("cpu_user_ms");
    // The loop runs in the job's shell: its CPU is the job's.
    assert!(user >= 40, "a busy loop used {user} ms of CPU: {burn}");
    assert!(
        user > idle_user + 20,
        "busy {user} ms vs sleeping {idle_user} ms"
    );
    assert!(burn["cpu_sys_ms"].is_u64(), "{burn}");
    assert!(burn["max_rss_kb"].as_u64().unwrap() > 0, "{burn}");
    // The same numbers everywhere the job is described, and on disk.
    let id = id_of(&burn);
    let st = t.state(&id);
    assert_eq!(st["result"]["cpu_user_ms"], burn["cpu_user_ms"]);
    assert_eq!(st["result"]["max_rss_kb"], burn["max_rss_kb"]);
    let status = t.ok(&["status", &id]);
    let wait = t.ok(&["wait", &id]);
    let list = t.ok(&["list"]);
    let entry = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == id.as_str())
        .unwrap()
        .clone();
    for doc in [&status, &wait, &entry] {
        for k in ["cpu_user_ms", "cpu_sys_ms", "max_rss_kb"] {
            assert_eq!(doc[k], burn[k], "{k} in {doc}");
        }
    }
    for doc in [&burn, &idle, &status, &wait, &list] {
        validate::valid(&s, doc);
    }
}

#[test]
fn command_and_cwd_are_shown_always_and_costs_only_once_terminal() {
    let t = TempRoot::new();
    let s = schema(&t);
    let dir = t.cwd.join("sub");
    std::fs::create_dir_all(&dir).unwrap();
    let dir = std::fs::canonicalize(&dir).unwrap();
    let events = t.base.join("events.ndjson");
    let run = t.ok(&[
        "run",
        "--no-wait",
        "--cwd",
        dir.to_str().unwrap(),
        "--notify-file",
        events.to_str().unwrap(),
        "--tag",
        "ops.usage",
        "--",
        "sh",
        "-c",
        "until [ -e go ]; do sleep 0.01; done",
    ]);
    let id = id_of(&run);
    let want_cmd = json!(["sh", "-c", "until [ -e go ]; do sleep 0.01; done"]);
    let cwd = dir.to_str().unwrap();
    // Running: what runs and where, but no cost yet.
    let status = t.ok(&["status", &id]);
    let list = t.ok(&["list", "--cwd", cwd]);
    let wait0 = t.ok(&["wait", "--until", "0", &id]);
    for doc in [&run, &status, &list["jobs"][0], &wait0] {
        assert_eq!(doc["command"], want_cmd, "{doc}");
        assert_eq!(doc["cwd"], cwd, "{doc}");
        assert!(doc.get("cpu_user_ms").is_none(), "{doc}");
        assert!(doc.get("max_rss_kb").is_none(), "{doc}");
    }
    assert_eq!(status["tags"], json!(["ops.usage"]));
    // The job ends once `go` appears in its working directory.
    std::fs::write(dir.join("go"), b"").unwrap();
    let done = t.wait_done(&id);
    assert_eq!(done["state"], "exited", "{done}");
    assert!(
        done["cpu_user_ms"].is_u64() && done["max_rss_kb"].is_u64(),
        "{done}"
    );
    assert_eq!(done["command"], want_cmd);
    t.settle();
    let ev: Value = serde_json::from_str(
        std::fs::read_to_string(&events)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ev["event_type"], "job.finished");
    assert_eq!(ev["command"], want_cmd);
    assert_eq!(ev["cwd"], cwd);
    assert_eq!(ev["cpu_user_ms"], done["cpu_user_ms"], "{ev}");
    assert_eq!(ev["max_rss_kb"], done["max_rss_kb"], "{ev}");
    validate::valid_as(&s, "JobFinishedEvent", &ev);
    for doc in [&run, &status, &list, &wait0, &done] {
        validate::valid(&s, doc);
    }
    // A job that never ran has no cost, but its command and cwd.
    let created = t.ok(&["create", "--", "echo", "later"]);
    let st = t.ok(&["status", &id_of(&created)]);
    assert_eq!(st["command"], json!(["echo", "later"]));
    assert!(st.get("cpu_user_ms").is_none(), "{st}");
}

// ---------------------------------------------------------------------------
// 5. Wait for several jobs
// ---------------------------------------------------------------------------

#[test]
fn wait_any_answers_when_the_first_ends_while_another_still_runs() {
    let t = TempRoot::new();
    let s = schema(&t);
    let quick = t.start_job(&["sleep", "0.5"]);
    let slow = t.start_job(&["sleep", "60"]);
    let t0 = Instant::now();
    let v = t.ok(&["wait", "--any", "--until", "30", &slow, &quick]);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}: {v}");
    assert_eq!(v["type"], "wait");
    assert_eq!(v["mode"], "any");
    assert_eq!(v["first"], quick.as_str(), "{v}");
    let jobs = v["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    // In the order given, each as a single wait describes it.
    assert_eq!(jobs[0]["job_id"], slow.as_str());
    assert_eq!(jobs[0]["state"], "running");
    assert_eq!(jobs[1]["job_id"], quick.as_str());
    assert_eq!(jobs[1]["state"], "exited");
    assert_eq!(jobs[1]["exit_code"], 0);
    assert!(jobs[1]["cursor"].is_string() && jobs[1]["command"].is_array());
    assert!(v.get("job_id").is_none(), "{v}");
    validate::valid(&s, &v);
    t.ok(&["kill", &slow]);
}

/// Two jobs that ended a few milliseconds apart have state files of one
/// mtime (it moves in clock ticks): `first` is the one whose recorded
/// end came first, not the one named first.
#[test]
fn wait_any_first_is_the_earlier_end_within_one_clock_tick() {
    let t = TempRoot::new();
    let a = id_of(&t.ok(&["run", "--", "true"]));
    let b = id_of(&t.ok(&["run", "--", "true"]));
    let tick = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for (id, ns) in [
        (&a, 1_800_000_000_004_000_000u64),
        (&b, 1_800_000_000_001_000_000),
    ] {
        let p = t.job_dir(id).join("state.json");
        let mut st: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        st["finished_ns"] = ns.into();
        std::fs::write(&p, st.to_string()).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(tick)
            .unwrap();
    }
    let v = t.ok(&["wait", "--any", &a, &b]);
    assert_eq!(v["first"], b.as_str(), "{v}");
    let v = t.ok(&["wait", "--any", &b, &a]);
    assert_eq!(v["first"], b.as_str(), "{v}");
    // The supervisor records it.
    let c = id_of(&t.ok(&["run", "--", "true"]));
    assert!(t.state(&c)["finished_ns"].is_u64(), "{}", t.state(&c));
    // A record without it (0.2.3's, an older build's) goes by its
    // finished_at, not by when its file was last written: a job that
    // ended days ago in a root copied today came second.
    let old = "0123456789abcdef0123456789abcdef";
    t.fabricate(old, "exited", &t.cwd, Some("2026-12-01T10:00:01Z"));
    let v = t.ok(&["wait", "--any", &c, old]);
    assert_eq!(v["first"], old, "{v}");
}

/// A job that ends once the file `go` appears, one that sleeps for a
/// minute, and a `wait --any --forever` on both, in that order, given a
/// moment to set up: (go, gated, sleeper, the wait).
fn gated_pair_waited(t: &TempRoot) -> (std::path::PathBuf, String, String, std::process::Child) {
    let go = t.base.join("go");
    let script = format!("while [ ! -e '{}' ]; do sleep 0.01; done", go.display());
    let gated = t.start_job(&[&script]);
    let sleeper = t.start_job(&["sleep", "60"]);
    let mut c = t.cmd(&["wait", "--any", "--forever", &gated, &sleeper]);
    c.stdout(Stdio::piped());
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    (go, gated, sleeper, child)
}

/// Two jobs that end microseconds apart may let go of their locks in the
/// other order: the wait hears the later end first. `first` is still the
/// earlier end. Made certain here: the earlier job's supervisor is
/// stopped once its end is on file (written here, as it would have
/// written it), so its lock is heard only after the other job's.
#[test]
fn wait_any_first_is_the_earlier_end_even_when_heard_second() {
    let t = TempRoot::new();
    let (go, _late, early, child) = gated_pair_waited(&t);
    let st = t.state(&early);
    let sup = st["supervisor_pid"].as_i64().unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let signal = |sig: &str, target: String| {
        let ok = Command::new("kill")
            .args([sig, "--", &target])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {target}");
    };
    signal("-STOP", sup.to_string());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut ended = st.clone();
    ended["job"]["status"] = "exited".into();
    ended["result"] = json!({"exit_code": 0, "signal": null, "duration_ms": 1, "timed_out": false});
    ended["finished_ns"] = (now.as_nanos() as u64).into();
    ended["finished_at"] = st["updated_at"].clone();
    let p = t.job_dir(&early).join("state.json");
    let tmp = t.job_dir(&early).join(".state.test");
    std::fs::write(&tmp, ended.to_string()).unwrap();
    std::fs::rename(&tmp, &p).unwrap();
    std::fs::write(&go, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    signal("-KILL", sup.to_string());
    signal("-KILL", format!("-{pid}"));
    assert_eq!(v["first"], early.as_str(), "{v}");
    assert_eq!(v["jobs"][0]["state"], "exited", "{v}");
    assert_eq!(v["jobs"][1]["state"], "exited", "{v}");
}

#[test]
fn wait_any_is_woken_by_the_end_not_by_a_tick() {
    let t = TempRoot::new();
    // The first job ends when a file appears; the wait must answer right
    // after, whatever the deadline.
    let (go, a, b, child) = gated_pair_waited(&t);
    let t0 = Instant::now();
    std::fs::write(&go, b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["first"], a.as_str(), "{v}");
    assert_eq!(v["jobs"][1]["state"], "running", "{v}");
    assert!(
        took < Duration::from_secs(3),
        "answered {took:?} after the end"
    );
    t.ok(&["kill", &b]);
}

#[test]
fn wait_all_waits_for_every_job_within_one_deadline() {
    let t = TempRoot::new();
    let s = schema(&t);
    let a = t.start_job(&["sleep", "0.2"]);
    let b = t.start_job(&["sh", "-c", "sleep 0.6; exit 3"]);
    let v = t.ok(&["wait", "--until", "30", &a, &b]);
    assert_eq!(v["mode"], "all");
    assert!(v.get("first").is_none(), "{v}");
    let states: Vec<(&str, i64)> = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["state"].as_str().unwrap(),
                j["exit_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, vec![("exited", 0), ("exited", 3)]);
    validate::valid(&s, &v);
    // The deadline covers the whole call, not each job.
    let slow1 = t.start_job(&["sleep", "60"]);
    let slow2 = t.start_job(&["sleep", "60"]);
    let t0 = Instant::now();
    let v = t.ok(&["wait", "--all", "--until", "700ms", &slow1, &a, &slow2]);
    let took = t0.elapsed();
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(took >= Duration::from_millis(650), "took {took:?}");
    let st = support::states(&v);
    assert_eq!(st, vec!["running", "exited", "running"]);
    t.ok(&["kill", &slow1]);
    t.ok(&["kill", &slow2]);
}

#[test]
fn wait_for_several_refuses_unknown_ids_and_single_wait_is_unchanged() {
    let t = TempRoot::new();
    let a = t.start_job(&["true"]);
    t.wait_done(&a);
    let missing = "01ZZZZZZZZZZZZZZZZZZZZZZZZ";
    let (code, e) = t.err(&["wait", &a, missing]);
    assert_eq!(code, 1);
    assert_eq!(e["error"]["code"], "job_not_found", "{e}");
    assert_eq!(e["error"]["details"]["job_id"], missing, "{e}");
    // One id: the single document, as before, even with --any.
    for args in [vec!["wait", a.as_str()], vec!["wait", "--any", a.as_str()]] {
        let v = t.ok(&args);
        assert_eq!(v["job_id"], a.as_str(), "{v}");
        assert!(v.get("jobs").is_none() && v.get("mode").is_none(), "{v}");
    }
    let (code, e) = t.err(&["wait", "--all", "--any", &a, &a]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
    let (code, e) = t.err(&["wait", "--output", "x", &a, &a]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
}

#[test]
fn wait_for_several_names_the_job_whose_record_is_damaged() {
    let t = TempRoot::new();
    let a = t.start_job(&["true"]);
    t.wait_done(&a);
    let b = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(t.job_dir(&a).join("state.json"), "garbage").unwrap();
    for args in [
        vec!["wait", a.as_str(), b.as_str()],
        vec!["wait", "--any", b.as_str(), a.as_str()],
    ] {
        let (_, e) = t.err(&args);
        assert_eq!(e["error"]["code"], "io_error", "{e}");
        assert_eq!(e["error"]["details"]["job_id"], a.as_str(), "{args:?}: {e}");
    }
}

#[test]
fn http_wait_takes_several_ids() {
    let t = TempRoot::new();
    let s = schema(&t);
    let server = t.serve();
    let http_get = |path: &str| support::http_json(server.port, "GET", path, "");
    let quick = t.start_job(&["sleep", "0.3"]);
    let slow = t.start_job(&["sleep", "60"]);
    let t0 = Instant::now();
    let (code, v) = http_get(&format!("/wait?ids={slow},{quick}&any=true&until=20"));
    assert_eq!(code, 200, "{v}");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(v["mode"], "any");
    assert_eq!(v["first"], quick.as_str(), "{v}");
    assert_eq!(v["jobs"][0]["state"], "running");
    assert_eq!(v["jobs"][1]["state"], "exited");
    validate::valid(&s, &v);
    // all (the default), with the one deadline.
    let (_, v) = http_get(&format!("/wait?ids={quick}&ids={slow}&until=300ms"));
    assert_eq!(v["mode"], "all", "{v}");
    assert_eq!(v["jobs"][0]["state"], "exited");
    assert_eq!(v["jobs"][1]["state"], "running");
    // One id: exactly /wait/{id}'s document.
    let (_, one) = http_get(&format!("/wait?ids={quick}"));
    assert_eq!(one["job_id"], quick.as_str(), "{one}");
    assert!(one.get("jobs").is_none());
    validate::valid(&s, &one);
    let (code, e) = http_get("/wait");
    assert_eq!(code, 400, "{e}");
    assert_eq!(e["error"]["code"], "invalid_request");
    let (code, e) = http_get(&format!("/wait?ids={quick},01ZZZZZZZZZZZZZZZZZZZZZZZZ"));
    assert_eq!(code, 404, "{e}");
    assert_eq!(
        e["error"]["details"]["job_id"],
        "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
    );
    let (code, e) = http_get(&format!("/wait?ids={quick},{slow}&bogus=1"));
    assert_eq!(code, 400, "{e}");
    t.ok(&["kill", &slow]);
}

#[test]
fn mcp_wait_takes_ids() {
    let t = TempRoot::new();
    let quick = t.start_job(&["sleep", "0.3"]);
    let slow = t.start_job(&["sleep", "60"]);
    let mut c = t.cmd(&["mcp"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut call = |id: u64, method: &str, params: Value| -> Value {
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "mcp ended");
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    };
    call(
        1,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let tools = call(2, "tools/list", json!({}));
    let wait_tool = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "wait")
        .unwrap()
        .clone();
    // A list, or one id alone (or null: left out).
    assert_eq!(
        wait_tool["inputSchema"]["properties"]["ids"]["type"],
        json!(["array", "string", "null"])
    );
    let alts = wait_tool["outputSchema"]["anyOf"].to_string();
    assert!(alts.contains("WaitManyResponse"), "{alts}");
    let r = call(
        3,
        "tools/call",
        json!({"name": "wait", "arguments": {"ids": [slow, quick], "any": true, "until": 20}}),
    );
    let doc = &r["result"]["structuredContent"];
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(doc["first"], quick.as_str(), "{r}");
    assert_eq!(doc["jobs"][0]["state"], "running");
    // job_id alone: as before.
    let r = call(
        4,
        "tools/call",
        json!({"name": "wait", "arguments": {"job_id": quick}}),
    );
    assert_eq!(r["result"]["structuredContent"]["job_id"], quick.as_str());
    let r = call(5, "tools/call", json!({"name": "wait", "arguments": {}}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    t.ok(&["kill", &slow]);
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------
// 6. A view for people
// ---------------------------------------------------------------------------

const HEADER: [&str; 7] = ["ID", "STATE", "AGE", "DURATION", "EXIT", "COMMAND", "TAGS"];

/// Column starts from the header row.
fn columns(header: &str) -> Vec<usize> {
    HEADER
        .iter()
        .map(|h| header.find(h).unwrap_or_else(|| panic!("{h} in {header}")))
        .collect()
}

#[test]
fn table_shows_list_ps_and_status_aligned_and_json_stays_the_default() {
    let t = TempRoot::new();
    let done = t.ok(&["run", "--tag", "a.b", "--", "sh", "-c", "exit 4"]);
    let running = t.start_job(&["sleep", "60"]);
    // JSON, whatever stdout is: the default is never the table.
    let o = t.out(&["list"]);
    assert!(o.stdout.starts_with('{'), "{}", o.stdout);
    let o = t.out(&["list", "--table"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", o.stdout);
    let cols = columns(lines[0]);
    assert!(cols.windows(2).all(|w| w[0] < w[1]), "{}", lines[0]);
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        HEADER.to_vec()
    );
    for row in &lines[1..] {
        // Each cell starts at its header's column, after a space.
        for &c in &cols[1..] {
            assert!(
                row.as_bytes()[c - 1] == b' ' && row.as_bytes()[c] != b' ',
                "column {c} of {row:?} in\n{}",
                o.stdout
            );
        }
    }
    // Newest first: the running sleep, then the job that exited 4.
    assert!(lines[1].contains("running") && lines[1].contains("sleep 60"));
    assert!(lines[2].contains("exited") && lines[2].contains("sh -c exit 4"));
    assert!(lines[2].contains("a.b"), "{}", lines[2]);
    assert_eq!(&lines[2][cols[4]..cols[4] + 1], "4", "{}", lines[2]);
    let ps = t.out(&["ps", "--table"]);
    assert_eq!(ps.stdout.lines().count(), 2, "{}", ps.stdout);
    assert!(ps.stdout.lines().nth(1).unwrap().contains(&running[..10]));
    let st = t.out(&["--table", "status", done["job_id"].as_str().unwrap()]);
    let st_lines: Vec<&str> = st.stdout.lines().collect();
    assert_eq!(st_lines.len(), 2, "{}", st.stdout);
    // The same short id as the listing's, not the full one.
    let listed = t.ok(&["list"]);
    let short = listed["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["job_id"] == done["job_id"])
        .unwrap()["short_job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        st_lines[1].starts_with(&format!("{short} ")),
        "{}",
        st.stdout
    );
    t.ok(&["kill", &running]);
}

#[test]
fn table_is_cut_to_columns() {
    let t = TempRoot::new();
    let long = format!("echo {}", "x".repeat(400));
    let id = t.ok(&["run", "--", &long])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [(Some("60"), 60usize), (None, 100), (Some("150"), 150)];
    // `status` cuts its one row the same way: COMMAND gives way down to
    // its floor of 24 columns, and TAGS (the last column) stays where
    // that leaves room for it; at 60 columns it does not, and the line
    // is cut at the width.
    for (args, (cols, want)) in cases
        .iter()
        .map(|c| (vec!["list", "--table"], *c))
        .chain(cases.iter().map(|c| (vec!["status", "--table", &id], *c)))
    {
        let mut c = t.cmd(&args);
        match cols {
            Some(v) => c.env("COLUMNS", v),
            None => c.env_remove("COLUMNS"),
        };
        let o = t.exec(c);
        assert_eq!(o.code, 0);
        for l in o.stdout.lines() {
            assert!(l.chars().count() <= want, "{want}: {l:?}");
        }
        let row = o.stdout.lines().nth(1).unwrap();
        assert!(row.contains("echo xxx") && row.contains('…'), "{row}");
        if want > 60 {
            assert!(row.ends_with('-'), "{args:?}: {row}");
        } else {
            assert!(row.ends_with("xxx…"), "{args:?}: {row}");
        }
        assert_eq!(row.chars().count(), want.min(row.chars().count()));
    }
}

#[test]
fn table_elsewhere_is_a_usage_error_and_errors_stay_documents() {
    let t = TempRoot::new();
    let (code, e) = t.err(&["--table", "gc"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
    assert!(e["error"]["message"].as_str().unwrap().contains("--table"));
    // Refused before anything is done: no job was created.
    let (code, _) = t.err(&["run", "--table", "--", "true"]);
    assert_eq!(code, 2);
    assert_eq!(
        t.ok(&["list", "--all"])["jobs"].as_array().unwrap().len(),
        0
    );
    // Refused beside --yaml too, in either order, and the error is a
    // YAML document, as every error is when --yaml is given (D5).
    // So is any other usage error beside the pair (it was JSON whenever
    // --table was there).
    for args in [
        &["list", "--table", "--yaml"][..],
        &["--yaml", "list", "--table"],
        &["--yaml", "--table", "list", "--limit", "x"],
        &["--table", "--yaml", "bogus"],
    ] {
        let o = t.out(args);
        assert_eq!(o.code, 2, "{args:?}");
        let text = &o.stdout;
        assert!(
            text.starts_with(
                "schema_version: '0.1'\nok: false\ntype: error\nerror:\n  code: usage_error\n"
            ),
            "{args:?}: {text}"
        );
    }
    // An error of a table command is still the JSON error document.
    let (code, e) = t.err(&["status", "--table", "01ZZZZZZZZZZZZZZZZZZZZZZZZ"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (1, Some("job_not_found"))
    );
}

#[test]
fn progress_notes_need_a_terminal() {
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "echo hi; sleep 1.5"]);
    // stderr is a pipe here: -v gives log lines, never a progress note.
    let o = t.out(&["-v", "wait", "--until", "10", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(!o.stderr.contains("waiting 1s"), "{}", o.stderr);
    assert!(!o.stderr.contains('\r'), "{:?}", o.stderr);
    assert!(!o.stderr.contains("written so far"), "{}", o.stderr);
    let o = t.out(&["-v", "run", "--forever", "--", "sleep", "1.2"]);
    assert_eq!(o.code, 0);
    assert!(!o.stderr.contains("written so far"), "{}", o.stderr);
}

#[test]
fn progress_notes_at_a_terminal() {
    // `script` gives the command a terminal (stdin, stdout, stderr).
    if support::no_script() {
        return;
    }
    let t = TempRoot::new();
    let id = t.start_job(&["sh", "-c", "echo hello; sleep 2.5"]);
    let line = format!(
        "{} --root {} -v wait --until 20 {id}",
        support::bin(),
        t.root.display()
    );
    let mut c = std::process::Command::new("script");
    c.args(["-qec", &line, "/dev/null"])
        .current_dir(&t.cwd)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    let o = t.exec(c);
    assert!(
        o.stdout.contains("written so far"),
        "no note at a terminal: {:?}",
        o.stdout
    );
    // Once a second at most: about 2.5 s of waiting, at most 3 notes.
    let notes = o.stdout.matches("written so far").count();
    assert!((1..=3).contains(&notes), "{notes} notes: {:?}", o.stdout);
    assert!(o.stdout.contains("6 B written"), "{:?}", o.stdout);
    // The answer is still one JSON document, after the note was erased.
    let json_start = o.stdout.find("{\"schema_version\"").unwrap();
    let doc: Value =
        serde_json::from_str(o.stdout[json_start..].lines().next().unwrap().trim()).unwrap();
    assert_eq!(doc["state"], "exited");
}

#[test]
fn wait_for_several_sees_a_lost_supervisor_at_once() {
    let t = TempRoot::new();
    let a = t.start_job(&["sleep", "60"]);
    let b = t.start_job(&["sleep", "0.3"]);
    let mut c = t.cmd(&["wait", "--all", "--until", "30", &a, &b]);
    c.stdout(Stdio::piped());
    let child = c.spawn().unwrap();
    // Let the wait begin (b ends meanwhile), then kill a's supervisor.
    std::thread::sleep(Duration::from_millis(600));
    let sup = t.state(&a)["supervisor_pid"].as_u64().unwrap();
    let t0 = Instant::now();
    std::process::Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let took = t0.elapsed();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["state"], "failed", "{v}");
    assert_eq!(v["jobs"][0]["failure"]["code"], "supervisor_lost", "{v}");
    // Lost: no cost was ever recorded.
    assert!(v["jobs"][0].get("cpu_user_ms").is_none(), "{v}");
    assert_eq!(v["jobs"][1]["state"], "exited", "{v}");
    assert!(
        took < Duration::from_secs(5),
        "answered {took:?} after the crash"
    );
}

#[test]
fn list_entries_carry_the_duration_and_the_table_shows_it_as_status_does() {
    let t = TempRoot::new();
    let s = schema(&t);
    // `list` keeps notes of finished jobs only in a root of 64 jobs or more.
    for _ in 0..64 {
        t.ok(&["create", "--", "true"]);
    }
    // Long enough to cross a second boundary now and then, which the
    // timestamps (to the second) alone would show as 1s.
    let done = t.ok(&["run", "--until", "30", "--", "sleep", "0.3"]);
    assert_eq!(done["state"], "exited", "{done}");
    let id = id_of(&done);
    let want = done["duration_ms"].as_u64().expect("duration_ms");
    let entry = |l: &Value, id: &str| {
        let jobs = l["jobs"].as_array().unwrap();
        jobs.iter().find(|j| j["job_id"] == id).unwrap().clone()
    };
    let running = t.start_job(&["sleep", "60"]);
    let l = t.ok(&["list", "--limit", "0"]);
    validate::valid(&s, &l);
    let (done_e, live_e) = (entry(&l, &id), entry(&l, &running));
    assert_eq!(done_e["duration_ms"].as_u64(), Some(want), "{done_e}");
    assert!(live_e.get("duration_ms").is_none(), "{live_e}");
    t.ok(&["kill", &running]);
    t.ok(&["wait", "--until", "30", &running]);
    // Once the files have settled, `list` notes what it shows of each
    // finished job and later reads the note instead: the duration too.
    let notes = t.root.join(".cache/list");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&notes).is_ok_and(|n| n.contains(&id)) {
        assert!(Instant::now() < deadline, "list never noted the job");
        std::thread::sleep(Duration::from_millis(150));
        t.ok(&["list", "--limit", "0"]);
    }
    let l = t.ok(&["list", "--limit", "0"]);
    validate::valid(&s, &l);
    let noted = entry(&l, &id);
    assert_eq!(noted["duration_ms"].as_u64(), Some(want), "{noted}");
    let cell = |out: &str| {
        let lines: Vec<&str> = out.lines().collect();
        let cols = columns(lines[0]);
        let row = lines.iter().find(|l| l.starts_with(&id[..10])).unwrap();
        row[cols[3]..cols[4]].trim().to_string()
    };
    // The only exited job: the table's short ids are the ULID's time
    // part, which the 64 jobs made above may share with it.
    let listed = cell(&t.out(&["list", "--table", "--state", "exited"]).stdout);
    let status = cell(&t.out(&["--table", "status", &id]).stdout);
    assert_eq!(listed, status);
    assert_ne!(listed, "1s", "0.3 s shown from second timestamps");
}
