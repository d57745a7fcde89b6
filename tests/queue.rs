//! Queues and dependencies (`run --queue/--parallel/--after/--after-ok`):
//! at most N at once, launch order, the `queued` state and its position,
//! kill/delete of a queued job, dependencies that fail or are deleted,
//! and crashes of supervisors that must free their slot by themselves.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

fn id_of(v: &Value) -> String {
    v["job_id"].as_str().unwrap().to_string()
}

/// `run --no-wait --queue Q [extra...] -- cmd...`, returning the answer.
fn enqueue(t: &TempRoot, queue: &str, extra: &[&str], cmd: &[&str]) -> Value {
    let mut a = vec!["run", "--no-wait", "--queue", queue];
    a.extend_from_slice(extra);
    a.push("--");
    a.extend_from_slice(cmd);
    t.ok(&a)
}

/// Block until the file at `p` exists (the job has reached that point).
fn wait_file(p: &Path) {
    let until = Instant::now() + Duration::from_secs(30);
    while !p.exists() {
        assert!(Instant::now() < until, "{} never appeared", p.display());
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn supervisor_pid(t: &TempRoot, id: &str) -> i32 {
    t.state(id)["supervisor_pid"].as_i64().unwrap() as i32
}

/// SIGSTOP the supervisors of `ids`, so that they do not act on what
/// happens next (a dependency's end); their pids, to SIGCONT them.
fn stop_supervisors(t: &TempRoot, ids: &[&String]) -> Vec<i32> {
    let pids: Vec<i32> = ids.iter().map(|id| supervisor_pid(t, id)).collect();
    for &pid in &pids {
        support_kill(pid, 19); // SIGSTOP
    }
    pids
}

/// A command that waits for `gate` to exist, then exits.
fn gated(gate: &Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.01; done", gate.display())
}

#[test]
fn never_more_than_n_at_once_and_in_launch_order() {
    let t = TempRoot::new();
    let log = t.base.join("markers.log");
    let n = 12;
    let mut ids = Vec::new();
    for i in 0..n {
        let script = format!(
            "echo start {i} >> '{l}'; sleep 0.1; echo end {i} >> '{l}'",
            l = log.display()
        );
        let v = enqueue(&t, "q", &["--parallel", "2"], &[&script]);
        assert!(v["state"] == "running" || v["state"] == "queued", "{v}");
        ids.push(id_of(&v));
    }
    for id in &ids {
        let v = t.wait_done(id);
        assert_eq!(v["state"], "exited", "{v}");
        assert_eq!(v["queue"], "q", "{v}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut live, mut most, mut starts) = (0i32, 0i32, Vec::new());
    for line in text.lines() {
        let (what, i) = line.split_once(' ').unwrap();
        match what {
            "start" => {
                live += 1;
                starts.push(i.parse::<usize>().unwrap());
            }
            _ => live -= 1,
        }
        most = most.max(live);
    }
    assert!(most <= 2, "{most} ran at once:\n{text}");
    assert_eq!(most, 2, "the two slots were never used together:\n{text}");
    assert_eq!(starts.len(), n);
    // Start order is the order the supervisors spawned the workloads: the
    // kernel hands out pids in increasing order, modulo its pid_max
    // (32,768 on some machines: a long test run goes round it). The
    // markers cannot tell: two jobs started a millisecond apart may
    // reach their first line in either order on a busy machine. Nor can
    // the pids of two neighbours in line: both slots free at once (every
    // job sleeps as long), each neighbour takes one in line order, and
    // then either may fork first. A job never starts before the one two
    // places ahead of it, which had its slot a whole run earlier.
    let pids: Vec<i64> = ids
        .iter()
        .map(|id| t.state(id)["pid"].as_i64().unwrap())
        .collect();
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(1 << 22);
    // w[2] comes after w[0]: less than half the pid space ahead of it.
    let after = |a: i64, b: i64| a != b && (b - a).rem_euclid(pid_max) < pid_max / 2;
    assert!(
        pids.windows(3).all(|w| after(w[0], w[2])),
        "workloads were not spawned in launch order: {pids:?}\n{text}"
    );
}

#[test]
fn queued_jobs_show_queue_and_position_and_start_as_slots_free() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = enqueue(&t, "line", &[], &[&gated(&gate)]);
    assert_eq!(a["state"], "running", "{a}");
    assert_eq!(a["queue"], "line", "{a}");
    let b = enqueue(&t, "line", &[], &["echo b"]);
    let c = enqueue(&t, "line", &[], &["echo c"]);
    assert_eq!(b["state"], "queued", "{b}");
    assert_eq!(b["queue_position"], 0, "{b}");
    assert_eq!(c["queue_position"], 1, "{c}");
    let (b, c) = (id_of(&b), id_of(&c));

    let s = t.ok(&["status", &c]);
    assert_eq!(s["state"], "queued", "{s}");
    assert_eq!(s["queue"], "line", "{s}");
    assert_eq!(s["queue_position"], 1, "{s}");
    assert!(s.get("started_at").is_none(), "{s}");

    let l = t.ok(&["list", "--state", "queued"]);
    let jobs = l["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{l}");
    let pos = |id: &str| jobs.iter().find(|j| j["job_id"] == id).unwrap()["queue_position"].clone();
    assert_eq!(pos(&b), 0);
    assert_eq!(pos(&c), 1);
    // A wait on several ids describes each as status does.
    let w = t.ok(&["wait", "--until", "0", &b, &c]);
    let jobs = w["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["queue_position"], 0, "{w}");
    assert_eq!(jobs[1]["queue_position"], 1, "{w}");

    let ps = t.ok(&["ps"]);
    let states = support::states(&ps);
    assert_eq!(states.iter().filter(|s| **s == "queued").count(), 2, "{ps}");
    assert_eq!(
        states.iter().filter(|s| **s == "running").count(),
        1,
        "{ps}"
    );

    // A wait budget that ends first answers `queued`, with the id.
    let w = t.ok(&["wait", "--until", "100ms", &b]);
    assert_eq!(w["state"], "queued", "{w}");

    // The cursor of the queued answer reads the output once it ran.
    let cursor = w["cursor"].as_str().unwrap().to_string();
    std::fs::write(&gate, "").unwrap();
    let vb = t.wait_done(&b);
    let since = t.ok(&["tail", "--since", &cursor, &b]);
    assert_eq!(since["stdout"], "b\n", "{since}");
    assert_eq!(vb["state"], "exited", "{vb}");
    assert_eq!(vb["stdout"], "b\n", "{vb}");
    assert!(vb.get("queue_position").is_none(), "{vb}");
    assert_eq!(t.wait_done(&c)["stdout"], "c\n");
}

/// The threads of a process, from /proc.
fn threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

#[test]
fn a_job_that_won_one_slot_stops_waiting_for_the_others() {
    // Two slots, both taken; the third job waits on both (a thread per
    // slot). Once it has one, it must not go on waiting for the other:
    // that thread would take the slot when it frees and only then let
    // go, in front of the job next in line.
    let t = TempRoot::new();
    let (ga, gb, gc) = (t.base.join("ga"), t.base.join("gb"), t.base.join("gc"));
    let a = id_of(&enqueue(
        &t,
        "two",
        &["--parallel", "2", "--no-auto-gc"],
        &[&gated(&ga)],
    ));
    let b = id_of(&enqueue(
        &t,
        "two",
        &["--parallel", "2", "--no-auto-gc"],
        &[&gated(&gb)],
    ));
    let c = enqueue(
        &t,
        "two",
        &["--parallel", "2", "--no-auto-gc"],
        &[&gated(&gc)],
    );
    assert_eq!(c["state"], "queued", "{c}");
    let c = id_of(&c);
    std::fs::write(&ga, "").unwrap();
    assert_eq!(t.wait_done(&a)["state"], "exited");
    let until = Instant::now() + Duration::from_secs(30);
    while t.ok(&["status", &c])["state"] != "running" {
        assert!(Instant::now() < until, "c never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Running, with b still holding the other slot: the supervisor is
    // down to its main thread (the waiter and both slot threads gone).
    let pid = supervisor_pid(&t, &c);
    let until = Instant::now() + Duration::from_secs(10);
    while threads(pid) > 1 {
        assert!(
            Instant::now() < until,
            "supervisor {pid} still has {} threads while c runs",
            threads(pid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::write(&gb, "").unwrap();
    std::fs::write(&gc, "").unwrap();
    assert_eq!(t.wait_done(&b)["state"], "exited");
    assert_eq!(t.wait_done(&c)["state"], "exited");
}

#[test]
fn run_with_a_budget_returns_queued_and_keeps_the_job() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = enqueue(&t, "q", &[], &[&gated(&gate)]);
    let t0 = Instant::now();
    let v = t.ok(&[
        "run",
        "--until",
        "200ms",
        "--queue",
        "q",
        "--",
        "echo later",
    ]);
    assert_eq!(v["state"], "queued", "{v}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&id_of(&a))["state"], "exited");
    assert_eq!(t.wait_done(&id_of(&v))["stdout"], "later\n");
}

#[test]
fn after_waits_until_the_dependency_is_terminal() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let mark = t.base.join("mark");
    let a = t.start_job(&[&format!(
        "{}; echo a-done > '{}'; exit 3",
        gated(&gate),
        mark.display()
    )]);
    let b = t.ok(&[
        "run",
        "--no-wait",
        "--after",
        &a,
        "--",
        &format!("cat '{}'", mark.display()),
    ]);
    assert_eq!(b["state"], "queued", "{b}");
    assert_eq!(b["waiting_for"], serde_json::json!([a]), "{b}");
    assert!(b.get("queue").is_none(), "{b}");
    let b = id_of(&b);
    assert_eq!(t.ok(&["status", &b])["state"], "queued");
    std::fs::write(&gate, "").unwrap();
    let v = t.wait_done(&b);
    // --after: any end will do, exit 3 included.
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "a-done\n", "{v}");
}

/// A working directory removed while the job waits its turn is
/// `cwd_not_found` when the turn comes, as at any launch: the workload's
/// chdir failed, and it read as `spawn_failed` blaming the wrapper.
#[test]
fn a_cwd_removed_while_queued_is_cwd_not_found() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let dir = t.base.join("gone-later");
    std::fs::create_dir(&dir).unwrap();
    let a = t.start_job(&[&gated(&gate)]);
    let b = t.ok(&[
        "run",
        "--no-wait",
        "--after",
        &a,
        "--cwd",
        dir.to_str().unwrap(),
        "--",
        "pwd",
    ]);
    assert_eq!(b["state"], "queued", "{b}");
    std::fs::remove_dir(&dir).unwrap();
    std::fs::write(&gate, "").unwrap();
    let v = t.wait_done(&id_of(&b));
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "cwd_not_found", "{v}");
}

#[test]
fn after_ok_runs_only_when_every_dependency_exited_zero() {
    let t = TempRoot::new();
    let good = t.start_job(&["true"]);
    let bad = t.start_job(&["exit 4"]);
    let mark = t.base.join("ran");
    let ok = t.ok(&["run", "--after-ok", &good, "--", "echo fine"]);
    assert_eq!(ok["state"], "exited", "{ok}");
    assert_eq!(ok["stdout"], "fine\n", "{ok}");

    let v = t.ok(&[
        "run",
        "--after-ok",
        &good,
        "--after-ok",
        &bad,
        "--",
        &format!("touch '{}'", mark.display()),
    ]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "dependency_failed", "{v}");
    assert!(
        v["failure"]["message"].as_str().unwrap().contains(&bad),
        "{v}"
    );
    assert!(
        v.get("started_at").is_none() && v.get("exit_code").is_none(),
        "{v}"
    );
    t.settle();
    assert!(!mark.exists(), "a job whose dependency failed ran");
}

#[test]
fn a_deleted_dependency_is_terminal_and_not_ok() {
    let t = TempRoot::new();
    // Never started: the waiter has no lock to block on; it must notice
    // the deletion all the same.
    let d1 = id_of(&t.ok(&["create", "--", "true"]));
    let d2 = id_of(&t.ok(&["create", "--", "true"]));
    let after = t.ok(&["run", "--no-wait", "--after", &d1, "--", "echo went"]);
    let after_ok = t.ok(&["run", "--no-wait", "--after-ok", &d2, "--", "echo no"]);
    assert_eq!(after["state"], "queued", "{after}");
    assert_eq!(after_ok["state"], "queued", "{after_ok}");
    t.ok(&["delete", &d1]);
    t.ok(&["delete", &d2]);
    let v = t.wait_done(&id_of(&after));
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "went\n", "{v}");
    let v = t.wait_done(&id_of(&after_ok));
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "dependency_failed", "{v}");
}

#[test]
fn a_created_dependency_that_is_started_later_is_waited_for() {
    let t = TempRoot::new();
    let d = id_of(&t.ok(&["create", "--", "echo dep"]));
    let b = t.ok(&["run", "--no-wait", "--after-ok", &d, "--", "echo after"]);
    assert_eq!(b["state"], "queued", "{b}");
    t.ok(&["start", &d]);
    let v = t.wait_done(&id_of(&b));
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "after\n", "{v}");
}

/// `run --no-wait --after-ok D... -- echo ok` and `--after D... -- echo
/// after`: both certainly waiting for `deps` (queued, `waiting_for`).
fn dependents(t: &TempRoot, deps: &[&str]) -> (String, String) {
    let mut ids = Vec::new();
    for (flag, word) in [("--after-ok", "ok"), ("--after", "after")] {
        let mut a = vec!["run", "--no-wait"];
        for d in deps {
            a.extend([flag, d]);
        }
        let echo = format!("echo {word}");
        a.extend(["--", &echo]);
        let v = t.ok(&a);
        assert_eq!(v["state"], "queued", "{v}");
        assert_eq!(v["waiting_for"], serde_json::json!(deps), "{v}");
        ids.push(id_of(&v));
    }
    (ids[0].clone(), ids[1].clone())
}

/// The `--after-ok` dependent failed `dependency_failed` without running,
/// its message containing each of `says`; the `--after` one ran.
fn judged_not_ok(t: &TempRoot, after_ok: &str, after: &str, says: &[&str]) {
    let v = t.wait_done(after_ok);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "dependency_failed", "{v}");
    assert!(v.get("started_at").is_none(), "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    for s in says {
        assert!(msg.contains(s), "{s:?} not in {v}");
    }
    let v = t.wait_done(after);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "after\n", "{v}");
}

#[test]
fn a_dependency_restarted_while_awaited_is_judged_by_the_run_it_was_on() {
    // The dependents wait on run 1 (it cannot end before its gate
    // opens); `restart` kills it and starts run 2, which exits 0 once the
    // gate opens. Both dependents judge run 1 (killed), never run 2,
    // whichever process gets the job lock first when run 1 lets go: a
    // race once, so it is run several times.
    let t = TempRoot::new();
    for k in 0..5 {
        let gate = t.base.join(format!("gate.{k}"));
        let a = t.start_job(&[&gated(&gate)]);
        let (after_ok, after) = dependents(&t, &[&a]);
        let r = t.ok(&["restart", "--no-wait", &a]);
        assert_eq!(r["attempt"], 2, "{r}");
        std::fs::write(&gate, "").unwrap();
        judged_not_ok(&t, &after_ok, &after, &[&a, "run 1", "killed"]);
        let v = t.wait_done(&a);
        assert_eq!(
            (v["state"].as_str(), v["attempt"].as_u64()),
            (Some("exited"), Some(2)),
            "{v}"
        );
    }
}

#[test]
fn a_queued_dependency_is_judged_by_its_run_started_or_restarted() {
    let t = TempRoot::new();
    // Queued, then started: its run is the one that waited in the line.
    let gate = t.base.join("gate1");
    let g = id_of(&enqueue(&t, "dq", &[], &[&gated(&gate)]));
    let a = id_of(&enqueue(&t, "dq", &[], &["echo a"]));
    assert_eq!(t.ok(&["status", &a])["state"], "queued");
    let (after_ok, after) = dependents(&t, &[&a]);
    std::fs::write(&gate, "").unwrap();
    let v = t.wait_done(&after_ok);
    assert_eq!(
        (v["state"].as_str(), v["stdout"].as_str()),
        (Some("exited"), Some("ok\n")),
        "{v}"
    );
    assert_eq!(t.wait_done(&after)["stdout"], "after\n");
    t.wait_done(&g);

    // Queued, then restarted: run 1 ended killed without running, and
    // that is the run the dependents judge, not run 2 (which exits 0).
    let gate = t.base.join("gate2");
    let g = id_of(&enqueue(&t, "dq", &[], &[&gated(&gate)]));
    let a = id_of(&enqueue(&t, "dq", &[], &["echo a"]));
    let (after_ok, after) = dependents(&t, &[&a]);
    let r = t.ok(&["restart", "--until", "0", &a]);
    assert_eq!(
        (r["state"].as_str(), r["attempt"].as_u64()),
        (Some("queued"), Some(2)),
        "{r}"
    );
    std::fs::write(&gate, "").unwrap();
    judged_not_ok(&t, &after_ok, &after, &[&a, "run 1", "killed"]);
    assert_eq!(t.wait_done(&a)["stdout"], "a\n");
    t.wait_done(&g);
}

/// A `--retry 1` job whose first attempt waits for `<dir>/g1` and exits
/// 1; its second touches `<dir>/again`, waits for `<dir>/g2` and exits 0.
fn fails_once(t: &TempRoot, dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let script = format!(
        "{}; if [ ! -e '{m}' ]; then touch '{m}'; exit 1; fi; touch '{again}'; {}",
        gated(&dir.join("g1")),
        gated(&dir.join("g2")),
        m = dir.join("m").display(),
        again = dir.join("again").display(),
    );
    id_of(&t.ok(&["run", "--no-wait", "--retry", "1", "--", &script]))
}

#[test]
fn a_retried_dependency_is_judged_by_the_last_attempt_of_its_run() {
    let t = TempRoot::new();
    // Attempt 1 fails, its retry exits 0: one run, which ended well.
    let dir = t.base.join("one");
    let a = fails_once(&t, &dir);
    let (after_ok, after) = dependents(&t, &[&a]);
    std::fs::write(dir.join("g1"), "").unwrap();
    wait_file(&dir.join("again"));
    std::fs::write(dir.join("g2"), "").unwrap();
    let v = t.wait_done(&after_ok);
    assert_eq!(
        (v["state"].as_str(), v["stdout"].as_str()),
        (Some("exited"), Some("ok\n")),
        "{v}"
    );
    assert_eq!(t.wait_done(&after)["stdout"], "after\n");
    assert_eq!(t.state(&a)["attempt"], 2);

    // Restarted during its retry: the run waited on ended with its
    // second attempt, killed (kept in runs/2/), not with run 3.
    let dir = t.base.join("two");
    let a = fails_once(&t, &dir);
    let (after_ok, after) = dependents(&t, &[&a]);
    std::fs::write(dir.join("g1"), "").unwrap();
    // The second attempt runs, blocked on g2, and its pid is recorded
    // (so that the restart's SIGTERM reaches it).
    wait_file(&dir.join("again"));
    let until = Instant::now() + Duration::from_secs(30);
    while t.state(&a)["pid"].is_null() {
        assert!(Instant::now() < until, "no pid for the second attempt");
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = t.ok(&["restart", "--no-wait", &a]);
    assert_eq!(r["attempt"], 3, "{r}");
    std::fs::write(dir.join("g2"), "").unwrap();
    judged_not_ok(&t, &after_ok, &after, &[&a, "run 2", "killed (SIGTERM)"]);
    assert_eq!(t.wait_done(&a)["state"], "exited");
}

#[test]
fn every_dependency_is_judged_by_its_run_when_the_wait_began() {
    // The dependents wait for B first; A is restarted meanwhile (with
    // keep_runs = 0, so its run 1 leaves no record). When the wait gets
    // to A, it judges run 1, the run A was on when the wait began: it
    // ended, and nothing says it exited 0 — not run 2, which does.
    let t = TempRoot::new();
    let cfg = t.base.join("keep0.toml");
    std::fs::write(&cfg, "[restart]\nkeep_runs = 0\n").unwrap();
    let (gate_a, gate_b) = (t.base.join("gate_a"), t.base.join("gate_b"));
    let cfg = cfg.to_str().unwrap();
    let a = id_of(&t.ok(&["run", "--no-wait", "--config", cfg, "--", &gated(&gate_a)]));
    let b = t.start_job(&[&gated(&gate_b)]);
    let (after_ok, after) = dependents(&t, &[&b, &a]);
    let r = t.ok(&["restart", "--no-wait", &a]);
    assert_eq!(r["previous_runs"], serde_json::json!([]), "{r}");
    std::fs::write(&gate_a, "").unwrap();
    assert_eq!(t.wait_done(&a)["state"], "exited");
    std::fs::write(&gate_b, "").unwrap();
    // Judged by run 1 either way: found ended (killed by the restart)
    // when the dependent's waiter first looked, or, looked at only after
    // B, no longer kept. On a loaded machine (CI) the waiter's first look
    // came after the restart.
    let v = t.wait_done(&after_ok);
    let msg = v["failure"]["message"].as_str().unwrap_or_default();
    let says = if msg.contains("no longer kept") {
        "no longer kept"
    } else {
        "killed (SIGTERM)"
    };
    judged_not_ok(&t, &after_ok, &after, &[&a, "run 1", says]);
}

#[test]
fn a_killed_queued_job_ends_killed_without_running_and_the_queue_moves_on() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let mark = t.base.join("ran");
    let a = id_of(&enqueue(&t, "k", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(
        &t,
        "k",
        &[],
        &[&format!("touch '{}'", mark.display())],
    ));
    let c = id_of(&enqueue(&t, "k", &[], &["echo c"]));
    let k = t.ok(&["kill", "--signal", "INT", &q]);
    assert_eq!(k["state"], "killed", "{k}");
    assert_eq!(k["terminated_signal"], "SIGINT", "{k}");
    assert_eq!(k["signal"], "SIGINT", "{k}");
    // Another ending signal is sent as TERM: `signal` is the one asked
    // for (kill(1): it does not say that a process got it), and
    // `terminated_signal` what the record says.
    let d = id_of(&enqueue(&t, "k", &[], &["true"]));
    let k = t.ok(&["kill", "--signal", "KILL", &d]);
    assert_eq!(
        (&k["signal"], &k["terminated_signal"]),
        (&json!("SIGKILL"), &json!("SIGTERM")),
        "{k}"
    );
    assert_eq!(t.ok(&["status", &d])["signal"], "SIGTERM");
    let s = t.ok(&["status", &q]);
    assert_eq!(s["state"], "killed", "{s}");
    assert!(s.get("started_at").is_none(), "{s}");
    // The next one moved up.
    assert_eq!(t.ok(&["status", &c])["queue_position"], 0);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&c)["stdout"], "c\n");
    assert_eq!(t.wait_done(&a)["state"], "exited");
    t.settle();
    assert!(!mark.exists(), "the killed queued job ran");
}

/// A queue member whose run failed and is to be retried lets go of its
/// slot for its `--retry-delay`: it is `queued` meanwhile, outside the
/// line (no queue_position), and the job behind it runs. It held the
/// slot through the delay, nothing of it running, and the queue stood
/// still (audit 26). A kill in the delay ends it killed without another
/// run.
#[test]
fn a_retried_queue_member_lets_go_of_its_slot_for_its_delay() {
    let t = TempRoot::new();
    let a = id_of(&enqueue(
        &t,
        "r1",
        &["--retry", "1", "--retry-delay", "60s"],
        &["exit 3"],
    ));
    let b = id_of(&enqueue(&t, "r1", &[], &["echo b"]));
    let until = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = t.ok(&["status", &a]);
        if s["attempt"] == 2 {
            break s;
        }
        assert!(Instant::now() < until, "no second attempt: {s}");
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(s["state"], "queued", "{s}");
    assert!(s.get("queue_position").is_none(), "{s}");
    assert_eq!(s["previous_runs"][0]["exit_code"], 3, "{s}");
    // The job behind it runs during the delay (not after its 60 s).
    let v = t.ok(&["wait", "--until", "30", &b]);
    assert_eq!(
        (&v["state"], &v["stdout"]),
        (&json!("exited"), &json!("b\n")),
        "{v}"
    );
    let ps = t.ok(&["ps"]);
    let states: Vec<_> = ps["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].clone())
        .collect();
    assert_eq!(states, [json!("queued")], "{ps}");
    let k = t.ok(&["kill", &a]);
    assert_eq!(k["state"], "killed", "{k}");
    let s = t.ok(&["status", &a]);
    assert_eq!(
        (&s["state"], &s["attempt"]),
        (&json!("killed"), &json!(2)),
        "{s}"
    );
    assert!(s.get("started_at").is_none(), "{s}");
}

/// A signal that would only stop, continue or tell a process (STOP,
/// CONT, WINCH...) reaches nothing in a queued job: `kill` refuses it
/// (invalid_state) instead of answering `ok`, and the job stays queued.
#[test]
fn a_signal_that_ends_no_process_is_refused_for_a_queued_job() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "s", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(&t, "s", &[], &["echo q"]));
    for sig in ["STOP", "CONT", "TSTP", "WINCH"] {
        let (code, e) = t.err(&["kill", "--signal", sig, &q]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("invalid_state")),
            "{sig}: {e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains("queued"),
            "{e}"
        );
        // Once the job runs, the same call reaches it.
        assert_eq!(e["error"]["retryable"], true, "{e}");
    }
    assert_eq!(t.ok(&["status", &q])["state"], "queued");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&q)["stdout"], "q\n");
    t.wait_done(&a);
}

#[test]
fn restart_of_a_queued_job_ends_that_run_unrun_and_queues_it_again_at_the_back() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "r", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(&t, "r", &[], &["echo q"]));
    let c = id_of(&enqueue(&t, "r", &[], &["echo c"]));
    let r = t.ok(&["restart", "--until", "0", &q]);
    assert_eq!(r["type"], "restart", "{r}");
    assert_eq!(r["state"], "queued", "{r}");
    assert_eq!(r["attempt"], 2, "{r}");
    let prev = &r["previous_runs"][0];
    assert_eq!(prev["state"], "killed", "{r}");
    assert!(
        prev.get("started_at").is_none(),
        "the first run never started: {r}"
    );
    // Behind c now: c moved up, q joined the line again at its back.
    assert_eq!(t.ok(&["status", &c])["queue_position"], 0);
    assert_eq!(t.ok(&["status", &q])["queue_position"], 1);
    std::fs::write(&gate, "").unwrap();
    let w = t.wait_done(&q);
    assert_eq!(
        (w["state"].as_str(), w["stdout"].as_str()),
        (Some("exited"), Some("q\n")),
        "{w}"
    );
    let (sc, sq) = (t.ok(&["status", &c]), t.ok(&["status", &q]));
    let started = |v: &serde_json::Value| v["started_at"].as_str().unwrap_or_default().to_string();
    assert!(started(&sc) <= started(&sq), "c ran after q: {sc} {sq}");
    t.wait_done(&a);
}

#[test]
fn a_queued_job_that_starts_is_killable_like_any_other() {
    // Its supervisor blocked signals while it waited: the workload must
    // not inherit that mask.
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let started = t.base.join("started");
    let a = id_of(&enqueue(&t, "m", &[], &[&gated(&gate)]));
    let b = id_of(&enqueue(
        &t,
        "m",
        &[],
        &[&format!("touch '{}'; exec sleep 30", started.display())],
    ));
    std::fs::write(&gate, "").unwrap();
    t.wait_done(&a);
    wait_file(&started);
    let k = t.ok(&["kill", &b]);
    assert_eq!(k["state"], "killed", "{k}");
    assert_eq!(k["terminated_signal"], "SIGTERM", "{k}");
}

#[test]
fn deleting_a_queued_job_takes_it_out_of_the_queue() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "d", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(&t, "d", &[], &["echo q"]));
    let c = id_of(&enqueue(&t, "d", &[], &["echo c"]));
    let d = t.ok(&["delete", &q]);
    assert_eq!(d["deleted"], 1, "{d}");
    assert!(!t.job_dir(&q).exists());
    assert_eq!(t.ok(&["status", &c])["queue_position"], 0);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&c)["stdout"], "c\n");
    assert_eq!(t.wait_done(&a)["state"], "exited");
}

#[test]
fn sigkill_of_a_running_members_supervisor_frees_its_slot() {
    let t = TempRoot::new();
    let a = id_of(&enqueue(&t, "crash", &[], &["exec sleep 300"]));
    let b = id_of(&enqueue(&t, "crash", &[], &["echo next"]));
    assert_eq!(t.ok(&["status", &b])["state"], "queued");
    let pid = t.state(&a)["pid"].as_i64().unwrap() as i32;
    support_kill(supervisor_pid(&t, &a), libc_sigkill());
    let v = t.wait_done(&b);
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"], "next\n", "{v}");
    let s = t.ok(&["status", &a]);
    assert_eq!(s["state"], "failed", "{s}");
    assert_eq!(s["failure"]["code"], "supervisor_lost", "{s}");
    // Its workload died with it (parent-death signal).
    let until = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(
            Instant::now() < until,
            "the workload outlived its supervisor"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Its workload's root dies with a SIGKILLed supervisor, but not the
/// rest of its process group: the next job must not start beside it.
/// Nobody reads the lost job here; the next one's supervisor settles it
/// (records supervisor_lost, kills the group) before it starts.
#[test]
fn sigkill_of_a_running_members_supervisor_ends_its_whole_group_before_the_next_starts() {
    let t = TempRoot::new();
    let a = id_of(&enqueue(&t, "crash2", &[], &["sleep 64.75; echo"]));
    let a_dir = t.job_dir(&a);
    let until = Instant::now() + Duration::from_secs(10);
    while sleepers("64.75") == 0 {
        assert!(Instant::now() < until, "the job's sleep never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    // B counts A's leftover sleeps when it starts.
    let b = id_of(&enqueue(
        &t,
        "crash2",
        &[],
        &["ps -eo args | grep -c '^sleep 64.75$'"],
    ));
    let sup = supervisor_pid(&t, &a);
    support_kill(sup, libc_sigkill());
    let v = t.wait_done(&b);
    assert_eq!(v["stdout"], "0\n", "B started beside A's workload: {v}");
    // Recorded on disk by B's supervisor, not by a reader of A.
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(a_dir.join("state.json")).unwrap()).unwrap();
    assert_eq!(st["failure"]["code"], "supervisor_lost", "{st}");
    assert_eq!(sleepers("64.75"), 0);
}

/// Live processes whose command line is exactly `sleep ARG`.
fn sleepers(arg: &str) -> usize {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes())
                && !std::fs::read_to_string(e.path().join("stat"))
                    .unwrap_or_default()
                    .contains(") Z")
        })
        .count()
}

#[test]
fn sigkill_of_a_queued_supervisor_reads_lost_and_the_line_moves_on() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "c2", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(&t, "c2", &[], &["echo q"]));
    let c = id_of(&enqueue(&t, "c2", &[], &["echo c"]));
    support_kill(supervisor_pid(&t, &q), libc_sigkill());
    let v = t.wait_done(&q);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "supervisor_lost", "{v}");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&c)["stdout"], "c\n");
    assert_eq!(t.wait_done(&a)["state"], "exited");
}

/// A command for `sh -c` that leaves a process ignoring TERM in its group
/// (its pid in `pid`) and ends at TERM itself.
fn leaving_a_term_proof_process(pid: &Path) -> String {
    format!(
        "(trap '' TERM; exec sleep 30) & echo $! > '{}'; sleep 31",
        pid.display()
    )
}

/// What `sh -c` says of process `pid` (from its file): alive, or gone
/// (a zombie waiting for its reaper is gone).
fn state_of(pid: &Path) -> String {
    format!(
        "s=$(cut -d' ' -f3 /proc/$(cat '{}')/stat 2>/dev/null); \
         if [ -z \"$s\" ] || [ \"$s\" = Z ]; then echo gone; else echo alive; fi",
        pid.display()
    )
}

#[test]
fn a_timed_out_members_leftover_is_killed_before_the_next_starts_after_a_crash() {
    // A's --timeout fires; its root ends at TERM, its leftover ignores
    // TERM; its supervisor records A and waits out --kill-after holding
    // the slot. Killed then (SIGKILL), nobody sent the SIGKILL: B started
    // at once beside the leftover, which lived on for good (audit).
    let t = TempRoot::new();
    let left = t.base.join("left.pid");
    let a = id_of(&enqueue(
        &t,
        "ka",
        &["--timeout", "0.3", "--kill-after", "1", "--no-auto-gc"],
        &[&leaving_a_term_proof_process(&left)],
    ));
    let b = id_of(&enqueue(&t, "ka", &["--no-auto-gc"], &[&state_of(&left)]));
    let v = t.wait_done(&a);
    assert_eq!(v["timed_out"], true, "{v}");
    wait_file(&left);
    support_kill(supervisor_pid(&t, &a), libc_sigkill());
    let v = t.wait_done(&b);
    assert_eq!(v["stdout"], "gone\n", "B started beside A's leftover: {v}");
}

#[test]
fn a_timed_out_jobs_leftover_is_killed_by_a_reader_after_a_crash() {
    // The same without a queue: the first read once --kill-after is due
    // sends the SIGKILL the dead supervisor owed.
    leftover_killed_by(&["status"]);
}

/// A listing is such a read too (audit 35): `list` and `ps` showed the
/// job and left its leftover running past its --kill-after for good,
/// noted (a listing before the crash cached the job, so later ones
/// never looked at it again).
#[test]
fn a_timed_out_jobs_leftover_is_killed_by_a_listing_after_a_crash() {
    leftover_killed_by(&["list", "--all"]);
    leftover_killed_by(&["ps", "--all"]);
}

/// Job A's --timeout fires, its leftover ignores TERM, its supervisor
/// dies waiting out --kill-after: `reader` (plus the job's id for
/// `status`), called until the leftover is gone, sends the SIGKILL.
fn leftover_killed_by(reader: &[&str]) {
    let t = TempRoot::new();
    let left = t.base.join("left.pid");
    let a = id_of(&t.ok(&[
        "run",
        "--no-wait",
        "--timeout",
        "0.3",
        "--kill-after",
        "1",
        "--",
        &leaving_a_term_proof_process(&left),
    ]));
    let v = t.wait_done(&a);
    assert_eq!(v["timed_out"], true, "{v}");
    wait_file(&left);
    let mut args = reader.to_vec();
    if reader == ["status"] {
        args.push(&a);
    }
    // Read once while the supervisor still waits (a listing may note
    // the job then), then the crash.
    t.ok(&args);
    support_kill(supervisor_pid(&t, &a), libc_sigkill());
    let pid: i32 = std::fs::read_to_string(&left)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let until = Instant::now() + Duration::from_secs(20);
    while !gone() {
        assert!(
            Instant::now() < until,
            "{reader:?}: A's leftover {pid} lives on"
        );
        t.ok(&args);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gc_never_collects_a_queued_job() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "g", &[], &[&gated(&gate)]));
    let q = id_of(&enqueue(&t, "g", &[], &["echo q"]));
    let g = t.ok(&["gc", "--older-than", "0s", "--max-jobs", "0"]);
    assert_eq!(g["deleted"], 0, "{g}");
    assert!(t.job_dir(&q).exists());
    assert!(
        t.root.join(".queues").join("g").is_dir(),
        "gc took the queue"
    );
    assert_eq!(t.ok(&["status", &q])["state"], "queued");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&q)["stdout"], "q\n");
    t.wait_done(&a);
}

/// gc removes the files of a queue nobody is in (they stayed for every
/// queue name ever used), keeps those of a queue in use, and a later
/// job of that name makes the queue anew.
#[test]
fn gc_removes_the_files_of_a_queue_nobody_is_in() {
    let t = TempRoot::new();
    let queues = t.root.join(".queues");
    // Without auto-GC throughout: the sweep a launch starts (its own
    // process, at the lowest priority) may run once a job has let go of
    // its slot, and take an unused queue's files itself.
    let done = id_of(&enqueue(&t, "gone", &["--no-auto-gc"], &["true"]));
    t.wait_done(&done);
    t.settle();
    assert!(queues.join("gone").join("slot.0").exists());
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "busy", &["--no-auto-gc"], &[&gated(&gate)]));
    let b = id_of(&enqueue(&t, "busy", &["--no-auto-gc"], &["echo second"]));
    assert_eq!(t.ok(&["status", &b])["state"], "queued");
    let dry = t.ok(&["gc", "--dry-run"]);
    assert_eq!(dry["deleted"], 0, "{dry}");
    assert!(queues.join("gone").is_dir(), "a dry run removed a queue");
    t.ok(&["gc"]);
    assert!(!queues.join("gone").exists(), "an unused queue stayed");
    assert!(
        queues.join("busy").join("slot.0").exists(),
        "gc took the files of a queue in use"
    );
    let s = t.ok(&["status", &b]);
    assert_eq!(
        (&s["state"], &s["queue_position"]),
        (&json!("queued"), &json!(0)),
        "{s}"
    );
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&b)["stdout"], "second\n");
    t.wait_done(&a);
    t.settle();
    t.ok(&["gc"]);
    assert!(!queues.join("busy").exists(), "a queue used up stayed");
    let again = id_of(&enqueue(&t, "gone", &["--no-auto-gc"], &["echo again"]));
    assert_eq!(t.wait_done(&again)["stdout"], "again\n");
    // What gc does not know in a queue's directory keeps it.
    t.settle();
    std::fs::write(queues.join("gone").join("notes"), "mine").unwrap();
    t.ok(&["gc"]);
    assert!(queues.join("gone").join("notes").exists());
}

/// gc removing an idle queue while jobs join it never lets more than
/// its slots' worth run: a job that opened the queue as gc removed it
/// joins the queue made anew.
#[test]
fn gc_racing_jobs_that_join_a_queue_never_breaks_its_limit() {
    let t = TempRoot::new();
    let log = t.base.join("markers.log");
    let stop = t.base.join("stop");
    let gcs = std::process::Command::new("sh")
        .arg("-c")
        .arg("while [ ! -e \"$2\" ]; do \"$0\" --root \"$1\" gc >/dev/null 2>&1; done")
        .arg(support::bin())
        .arg(&t.root)
        .arg(&stop)
        .spawn()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..30 {
        let script = format!(
            "echo start {i} >> '{l}'; sleep 0.01; echo end {i} >> '{l}'",
            l = log.display()
        );
        ids.push(id_of(&enqueue(&t, "race", &[], &[&script])));
        if i % 3 == 0 {
            // Now and then an idle queue for gc to remove.
            t.wait_done(ids.last().unwrap());
        }
    }
    for id in &ids {
        assert_eq!(t.wait_done(id)["state"], "exited");
    }
    std::fs::write(&stop, "").unwrap();
    let _ = gcs.wait_with_output();
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut live, mut most) = (0i32, 0i32);
    for line in text.lines() {
        live += if line.starts_with("start") { 1 } else { -1 };
        most = most.max(live);
    }
    assert_eq!(most, 1, "more than one ran at once:\n{text}");
    assert_eq!(text.lines().count(), 60, "{text}");
}

#[test]
fn parallel_comes_from_the_config_when_not_given() {
    let t = TempRoot::new();
    let cfg = t.base.join("c.toml");
    std::fs::write(&cfg, "[queue.cfgq]\nparallel = 2\n").unwrap();
    let gate = t.base.join("gate");
    let c = cfg.to_str().unwrap();
    let one = enqueue(&t, "cfgq", &["--config", c], &[&gated(&gate)]);
    let two = enqueue(&t, "cfgq", &["--config", c], &[&gated(&gate)]);
    let three = enqueue(&t, "cfgq", &["--config", c], &["echo 3"]);
    assert_eq!(one["state"], "running", "{one}");
    assert_eq!(two["state"], "running", "{two}");
    assert_eq!(three["state"], "queued", "{three}");
    std::fs::write(&gate, "").unwrap();
    for v in [one, two, three] {
        assert_eq!(t.wait_done(&id_of(&v))["state"], "exited");
    }
    std::fs::write(&cfg, "[queue.cfgq]\nparallel = 0\n").unwrap();
    let (code, e) = t.err(&["run", "--config", c, "--queue", "cfgq", "--", "true"]);
    assert_eq!(e["error"]["code"], "invalid_config", "{e}");
    assert_ne!(code, 0);
}

/// A config table for a name no queue can have is named on stderr and
/// ignored: it failed every command that read the file (`invalid_config`),
/// most of which use no queue (audit).
#[test]
fn a_config_table_no_queue_can_use_is_a_warning() {
    let t = TempRoot::new();
    let cfg = t.base.join("c.toml");
    std::fs::write(
        &cfg,
        "[queue.\"my queue\"]\nparallel = 2\n[queue.ok]\nparallel = 2\n",
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let o = t.out(&["run", "--config", c, "--", "echo", "hi"]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("my queue") && o.stderr.contains(":1:"),
        "{}",
        o.stderr
    );
    // The valid table beside it still counts.
    let gate = t.base.join("gate");
    let one = enqueue(&t, "ok", &["--config", c], &[&gated(&gate)]);
    let two = enqueue(&t, "ok", &["--config", c], &[&gated(&gate)]);
    assert_eq!(two["state"], "running", "{two}");
    std::fs::write(&gate, "").unwrap();
    for v in [one, two] {
        assert_eq!(t.wait_done(&id_of(&v))["state"], "exited");
    }
}

#[test]
fn bad_queue_flags_are_clear_errors() {
    let t = TempRoot::new();
    for bad in ["../x", "a/b", ".hidden", ""] {
        let (code, e) = t.err(&["run", "--queue", bad, "--", "true"]);
        assert_eq!(e["error"]["code"], "usage_error", "{bad}: {e}");
        assert_eq!(code, 2);
    }
    let (code, e) = t.err(&["run", "--queue", "q", "--parallel", "0", "--", "true"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{e}"
    );
    let (_, e) = t.err(&["run", "--parallel", "2", "--", "true"]);
    assert_eq!(e["error"]["code"], "usage_error", "{e}");
    let (code, e) = t.err(&["run", "--after", "01NOSUCHJOB", "--", "true"]);
    assert_eq!(e["error"]["code"], "job_not_found", "{e}");
    assert_eq!(e["error"]["details"]["job_id"], "01NOSUCHJOB", "{e}");
    assert_eq!(code, 1);
    let (_, e) = t.err(&["create", "--after-ok", "nope", "--", "true"]);
    assert_eq!(e["error"]["code"], "job_not_found", "{e}");
    // Nothing was left behind by the refused definitions.
    assert_eq!(
        t.ok(&["list", "--all"])["jobs"].as_array().unwrap().len(),
        0
    );
}

#[test]
fn create_then_start_keeps_the_queue() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "cs", &[], &[&gated(&gate)]));
    let c = id_of(&t.ok(&["create", "--queue", "cs", "--", "echo created"]));
    let s = t.ok(&["start", "--no-wait", &c]);
    assert_eq!(s["state"], "queued", "{s}");
    assert_eq!(s["queue"], "cs", "{s}");
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&c)["stdout"], "created\n");
    t.wait_done(&a);
}

/// A dependency that has ended is off `waiting_for` for every reader at
/// once, even while the dependent's supervisor has not yet woken to
/// rewrite it (held here with SIGSTOP): `status` said queued, waiting
/// for a job `wait` had just reported exited. A dependent in a queue,
/// with nothing left to wait for, has a place in its line: behind
/// everyone in it, since it joins at the end (it had neither field).
#[test]
fn an_ended_dependency_is_off_waiting_for_before_its_dependent_wakes() {
    let t = TempRoot::new();
    let (gate, hold) = (t.base.join("gate"), t.base.join("hold"));
    let a = t.start_job(&[&gated(&gate)]);
    let b = t.start_job(&["sleep 60"]);
    // Queue q: one job holds its slot until `hold`, one waits in line.
    let holder = id_of(&enqueue(&t, "q", &[], &[&gated(&hold)]));
    let ahead = id_of(&enqueue(&t, "q", &[], &["true"]));
    assert_eq!(t.ok(&["status", &ahead])["queue_position"], 0);
    let both = id_of(&t.ok(&[
        "run",
        "--no-wait",
        "--after",
        &a,
        "--after",
        &b,
        "--",
        "true",
    ]));
    let one = id_of(&t.ok(&["run", "--no-wait", "--after", &a, "--", "true"]));
    let queued = id_of(&enqueue(&t, "q", &["--after", &a], &["true"]));
    let stopped = stop_supervisors(&t, &[&both, &one, &queued]);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&a)["state"], "exited");
    let v = t.ok(&["status", &both]);
    assert_eq!(v["waiting_for"], serde_json::json!([b]), "{v}");
    let v = t.ok(&["status", &one]);
    assert_eq!(v["state"], "queued", "{v}");
    assert!(v.get("waiting_for").is_none(), "{v}");
    let v = t.ok(&["status", &queued]);
    assert_eq!(v["state"], "queued", "{v}");
    assert!(v.get("waiting_for").is_none(), "{v}");
    assert_eq!(v["queue_position"], 1, "{v}");
    // The same in a listing.
    let l = t.ok(&["list", "--state", "queued"]);
    let entry = l["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == queued.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["queue_position"], 1, "{l}");
    for &pid in &stopped {
        support_kill(pid, 18); // SIGCONT
    }
    t.ok(&["kill", &b]);
    std::fs::write(&hold, "").unwrap();
    for id in [&both, &one, &holder, &ahead, &queued] {
        assert_eq!(t.wait_done(id)["state"], "exited", "{id}");
    }
}

/// A dependent whose `--after-ok` dependency ended other than exited 0
/// never joins its line (it is about to fail `dependency_failed`): while
/// its supervisor has not woken to judge (held with SIGSTOP), readers
/// show it with nothing to wait for and no place in the line (it showed
/// the place at the end of the line, as one about to join).
#[test]
fn a_doomed_after_ok_dependent_has_no_place_in_its_line() {
    let t = TempRoot::new();
    let (gate, hold) = (t.base.join("gate"), t.base.join("hold"));
    let dep = t.start_job(&[&format!("{}; exit 3", gated(&gate))]);
    let holder = id_of(&enqueue(&t, "dq", &[], &[&gated(&hold)]));
    let doomed = id_of(&enqueue(&t, "dq", &["--after-ok", &dep], &["true"]));
    let fine = id_of(&enqueue(&t, "dq", &["--after", &dep], &["true"]));
    let stopped = stop_supervisors(&t, &[&doomed, &fine]);
    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&dep)["exit_code"], 3);
    let v = t.ok(&["status", &doomed]);
    assert_eq!(v["state"], "queued", "{v}");
    assert!(v.get("waiting_for").is_none(), "{v}");
    assert!(v.get("queue_position").is_none(), "{v}");
    // `--after` takes any end: that one is about to join (behind nobody
    // waiting: the holder has the slot, the line is empty).
    let v = t.ok(&["status", &fine]);
    assert_eq!(v["queue_position"], 0, "{v}");
    for &pid in &stopped {
        support_kill(pid, 18); // SIGCONT
    }
    let v = t.wait_done(&doomed);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "dependency_failed", "{v}");
    std::fs::write(&hold, "").unwrap();
    for id in [&holder, &fine] {
        assert_eq!(t.wait_done(id)["state"], "exited", "{id}");
    }
}

fn libc_sigkill() -> i32 {
    9
}

/// kill(1) rather than a libc dependency in the tests.
fn support_kill(pid: i32, sig: i32) {
    let st = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success());
}

/// Every field of `doc` is declared by schema definition `def` (the
/// schema test's strict mode, for the queued documents it never sees),
/// and `state`'s value is one the schema allows.
fn declared(schema: &Value, def: &str, doc: &Value) {
    let props = &schema["definitions"][def]["properties"];
    for (k, v) in doc.as_object().unwrap() {
        let p = &props[k];
        assert!(!p.is_null(), "{def}: field {k} is not in the schema");
        if k == "state" {
            assert!(
                p["enum"].as_array().unwrap().contains(v),
                "{def}: state {v} not allowed"
            );
        }
        if k == "queue_position" {
            assert_eq!(p["type"], "integer");
        }
    }
}

#[test]
fn queued_documents_are_in_the_schema() {
    let t = TempRoot::new();
    let schema = t.ok(&["schema"])["schema"].clone();
    let gate = t.base.join("gate");
    let a = id_of(&enqueue(&t, "s", &[], &[&gated(&gate)]));
    let run = enqueue(&t, "s", &[], &["true"]);
    declared(&schema, "RunResponse", &run);
    let q = id_of(&run);
    let dep = t.ok(&["run", "--no-wait", "--after", &q, "--", "true"]);
    assert!(dep["waiting_for"].is_array(), "{dep}");
    declared(&schema, "RunResponse", &dep);
    declared(&schema, "StatusResponse", &t.ok(&["status", &q]));
    declared(
        &schema,
        "WaitResponse",
        &t.ok(&["wait", "--until", "0", &q]),
    );
    let c = id_of(&t.ok(&["create", "--queue", "s", "--", "true"]));
    declared(&schema, "StartResponse", &t.ok(&["start", "--no-wait", &c]));
    let l = t.ok(&["list", "--state", "queued"]);
    assert!(!l["jobs"].as_array().unwrap().is_empty(), "{l}");
    let mut list_def = schema["definitions"]["ListResponse"]["properties"]["jobs"]["items"].clone();
    let mut defs = schema.clone();
    defs["definitions"]["ListEntry"] = std::mem::take(&mut list_def);
    for j in l["jobs"].as_array().unwrap() {
        declared(&defs, "ListEntry", j);
    }
    std::fs::write(&gate, "").unwrap();
    for id in [a, q, c, id_of(&dep)] {
        assert_eq!(t.wait_done(&id)["state"], "exited");
    }
}

#[test]
fn queues_and_dependencies_over_http_and_mcp() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let srv = t.serve();
    let http =
        |method: &str, path: &str, body: &str| support::http_json(srv.port, method, path, body).1;
    let body = |cmd: &str, extra: &str| {
        format!(
            r#"{{"command":["sh","-c",{}],"wait":false{extra}}}"#,
            Value::from(cmd)
        )
    };
    let a = http("POST", "/exec", &body(&gated(&gate), r#","queue":"web""#));
    assert_eq!(a["state"], "running", "{a}");
    let q = http(
        "POST",
        "/exec",
        &body("echo q", r#","queue":"web","parallel":1"#),
    );
    assert_eq!(q["state"], "queued", "{q}");
    assert_eq!(q["queue_position"], 0, "{q}");
    let dep = format!(r#","after_ok":["{}"]"#, id_of(&q));
    let d = http("POST", "/exec", &body("echo d", &dep));
    assert_eq!(d["waiting_for"], serde_json::json!([id_of(&q)]), "{d}");
    let l = http("GET", "/list?state=queued&all=true", "");
    assert_eq!(l["jobs"].as_array().unwrap().len(), 2, "{l}");
    let bad = http("POST", "/exec", &body("true", r#","queue":"../up""#));
    assert_eq!(bad["ok"], false, "{bad}");
    let bad = http(
        "POST",
        "/exec",
        &body("true", r#","after":["01NOSUCHJOB"]"#),
    );
    assert_eq!(bad["error"]["code"], "job_not_found", "{bad}");

    // MCP: the same through the `run` tool's arguments.
    let mut mcp = t
        .cmd(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(mcp.stdout.take().unwrap());
    let mut input = mcp.stdin.take().unwrap();
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
        "name": "run",
        "arguments": {"command": "echo m", "queue": "web", "no_wait": true}}});
    writeln!(
        input,
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"0"}}}}}}"#
    )
    .unwrap();
    writeln!(input, "{call}").unwrap();
    let answer = loop {
        let mut l = String::new();
        assert!(out.read_line(&mut l).unwrap() > 0, "mcp ended");
        let v: Value = serde_json::from_str(&l).unwrap();
        if v["id"] == 2 {
            break v;
        }
    };
    drop(input);
    let _ = mcp.wait();
    let m = &answer["result"]["structuredContent"];
    assert_eq!(m["state"], "queued", "{answer}");
    assert_eq!(m["queue_position"], 1, "{answer}");

    std::fs::write(&gate, "").unwrap();
    assert_eq!(t.wait_done(&id_of(&d))["stdout"], "d\n");
    assert_eq!(t.wait_done(m["job_id"].as_str().unwrap())["stdout"], "m\n");
    t.wait_done(&id_of(&a));
}

#[test]
fn a_symlinked_queues_directory_is_never_followed() {
    // `<root>/.queues` planted as a symlink to a directory elsewhere,
    // holding a stale-looking ticket: the queue is unusable (the job
    // fails with `queue_unusable`), and nothing outside the root is made
    // or removed.
    let t = TempRoot::new();
    t.ok(&["run", "--", "true"]);
    let outside = t.base.join("outside-queues");
    let planted = outside
        .join("q")
        .join("w.00000000000000000001.01M8Y3PJ6RHVVVBE5CA0PRT8BS");
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, "").unwrap();
    std::os::unix::fs::symlink(&outside, t.root.join(".queues")).unwrap();
    let v = t.ok(&["run", "--queue", "q", "--", "echo", "hi"]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "queue_unusable", "{v}");
    assert!(planted.exists(), "a ticket outside the root was removed");
    let mut names: Vec<_> = std::fs::read_dir(outside.join("q"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 1, "made outside the root: {names:?}");
}

/// Dependencies that have ended are judged first: an --after-ok one that
/// failed fails the job at once (it waited for those named before it),
/// and `waiting_for` names only those not ended (it listed ended ones).
#[test]
fn ended_dependencies_are_judged_first_and_never_listed_as_awaited() {
    let t = TempRoot::new();
    let failed = id_of(&t.ok(&["run", "--", "sh", "-c", "exit 2"]));
    let ok = id_of(&t.ok(&["run", "--", "true"]));
    let long = t.start_job(&["sleep", "64.5"]);
    let v = t.ok(&[
        "run",
        "--until",
        "5",
        "--after",
        &long,
        "--after-ok",
        &failed,
        "--",
        "true",
    ]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "dependency_failed", "{v}");
    let v = t.ok(&[
        "run",
        "--no-wait",
        "--after",
        &ok,
        "--after",
        &long,
        "--",
        "true",
    ]);
    let id = id_of(&v);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let s = t.ok(&["status", &id]);
        if s["waiting_for"] == serde_json::json!([long]) {
            break;
        }
        assert!(Instant::now() < until, "{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    t.ok(&["kill", &long]);
    assert_eq!(t.wait_done(&id)["state"], "exited");
}

/// A created job shows its queue, as every state does (create, status
/// and list left it out until the job was started).
#[test]
fn a_created_job_shows_its_queue() {
    let t = TempRoot::new();
    let v = t.ok(&["create", "--queue", "qq", "--", "true"]);
    assert_eq!(v["queue"], "qq", "{v}");
    let id = id_of(&v);
    let s = t.ok(&["status", &id]);
    assert_eq!(
        (s["state"].as_str(), s["queue"].as_str()),
        (Some("created"), Some("qq")),
        "{s}"
    );
    let l = t.ok(&["list", "--state", "created"]);
    assert_eq!(l["jobs"][0]["queue"], "qq", "{l}");
    assert_eq!(t.ok(&["start", &id])["queue"], "qq");
}

/// A job whose `--timeout` fired holds its slot until what is left of
/// its group after TERM (a process that ignores it) has had its KILL:
/// the next job started beside it, one slot running two jobs.
#[test]
fn a_timed_out_job_holds_its_slot_until_its_group_is_gone() {
    let t = TempRoot::new();
    let a = enqueue(
        &t,
        "q",
        &["--timeout", "1", "--kill-after", "2"],
        &["sh", "-c", "(trap '' TERM; sleep 3605.75) & sleep 3605.75"],
    );
    // What B sees when it starts: any process of A's left (their command
    // lines hold the number; B's own pattern does not match itself).
    let b = enqueue(
        &t,
        "q",
        &[],
        &[
            "sh",
            "-c",
            "grep -ls '3605[.]75' /proc/[0-9]*/cmdline >/dev/null && echo overlap || echo alone",
        ],
    );
    let a = t.wait_done(&id_of(&a));
    assert_eq!(a["timed_out"], true, "{a}");
    let b = t.wait_done(&id_of(&b));
    assert_eq!(b["stdout"], "alone\n", "{b}");
}

/// `kill` of a queued job whose supervisor is stopped continues it (as
/// a running job's group is continued): the job ends `killed` within the
/// call and the line behind it moves on. The TERM stayed pending, the
/// answer said `queued`, and the queue stalled until someone sent
/// SIGCONT (audit).
#[test]
fn kill_of_a_queued_job_with_a_stopped_supervisor_ends_it() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let head = id_of(&enqueue(&t, "q", &[], &[&gated(&gate)]));
    let doomed = id_of(&enqueue(&t, "q", &[], &["true"]));
    let after = id_of(&enqueue(&t, "q", &[], &["true"]));
    stop_supervisors(&t, &[&doomed]);
    let k = t.ok(&["kill", &doomed]);
    assert_eq!(k["state"], "killed", "{k}");
    std::fs::write(&gate, b"").unwrap();
    for id in [&head, &after] {
        let v = t.ok(&["wait", "--until", "20", id]);
        assert_eq!(v["state"], "exited", "{v}");
    }
}

/// `delete` of a queued job whose supervisor is stopped removes it: the
/// kill continues the supervisor, which records the job killed. It said
/// "job is currently running" (not retryable) and left the kill pending,
/// to end the job in place once continued (audit).
#[test]
fn delete_of_a_queued_job_with_a_stopped_supervisor_removes_it() {
    let t = TempRoot::new();
    let gate = t.base.join("gate");
    let head = id_of(&enqueue(&t, "q", &[], &[&gated(&gate)]));
    let doomed = id_of(&enqueue(&t, "q", &[], &["true"]));
    stop_supervisors(&t, &[&doomed]);
    let d = t.ok(&["delete", &doomed]);
    assert_eq!(d["deleted"], 1, "{d}");
    assert!(!t.job_dir(&doomed).exists());
    std::fs::write(&gate, b"").unwrap();
    let v = t.ok(&["wait", "--until", "20", &head]);
    assert_eq!(v["state"], "exited", "{v}");
}
