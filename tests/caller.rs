//! What the caller brings with it: its environment (the jobs root's
//! variables, PATH), its working directory and its limits. None of them
//! may send a job anywhere but where it was asked to go, or make an
//! existing job look gone.

mod support;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use support::TempRoot;

/// `agent-exec --root ROOT` run from the test's directory under `ulimit
/// LIMIT` ("-n 40", "-S -n 64", "-v 60000"): add the arguments, then
/// `t.exec` it.
fn limited(t: &TempRoot, limit: &str) -> std::process::Command {
    let mut c = t.private("sh");
    c.current_dir(&t.cwd)
        .arg("-c")
        .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root);
    c
}

/// A root named in bytes that are not UTF-8 is refused, as `--root`
/// refuses it, never passed over for the next variable (which would put
/// the job in another root).
#[test]
fn a_root_variable_that_is_not_utf8_is_refused() {
    let t = TempRoot::new();
    let bad = t.base.as_os_str().as_bytes().to_vec();
    let bad = [bad.as_slice(), b"/r\xe9"].concat();
    for var in ["AGENT_EXEC_ROOT", "XDG_DATA_HOME"] {
        let mut c = t.bare();
        c.env(var, OsStr::from_bytes(&bad))
            .args(["run", "--", "true"]);
        let o = t.exec(c);
        let v = o.json();
        assert_eq!(o.code, 2, "{var}: {v}");
        assert_eq!(v["error"]["code"], "usage_error", "{var}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(var), "{v}");
        // Nothing went to the fallback root under HOME.
        assert!(!t.base.join("home/.local/share/agent-exec").exists());
    }
    // A variable that does not decide (AGENT_EXEC_ROOT is set) is not
    // looked at.
    let mut c = t.bare();
    c.env("AGENT_EXEC_ROOT", &t.root)
        .env("XDG_DATA_HOME", OsStr::from_bytes(&bad))
        .args(["run", "--", "true"]);
    let o = t.exec(c);
    assert_eq!(o.code, 0, "{}", o.stdout);
    // Commands that use no root do not care.
    let mut c = t.bare();
    c.env("AGENT_EXEC_ROOT", OsStr::from_bytes(&bad))
        .args(["completions", "bash"]);
    assert_eq!(t.exec(c).code, 0);
}

/// A caller in a directory that was removed, or whose path is not UTF-8,
/// gets an error and no job: the command never runs somewhere else.
#[test]
fn a_caller_directory_that_cannot_be_recorded_is_refused() {
    let t = TempRoot::new();
    let gone = t.base.join("gone");
    std::fs::create_dir(&gone).unwrap();
    // A shell that removes its own directory, then runs us there.
    let mut c = t.private("sh");
    c.current_dir(&gone).args([
        "-c",
        "rmdir \"$PWD\" && exec \"$0\" --root \"$1\" run -- pwd",
        support::bin(),
        t.root.to_str().unwrap(),
    ]);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "io_error", "{v}");
    let latin1 = [t.base.as_os_str().as_bytes(), b"/caf\xe9"].concat();
    let latin1 = std::path::PathBuf::from(OsStr::from_bytes(&latin1));
    std::fs::create_dir(&latin1).unwrap();
    let mut c = t.cmd(&["run", "--", "pwd"]);
    c.current_dir(&latin1);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(
        (o.code, v["error"]["code"].as_str()),
        (2, Some("usage_error")),
        "{v}"
    );
    // Neither left a job behind.
    assert_eq!(t.jobs_in_root(), 0);
}

/// D36 with a PATH entry that is not UTF-8: the caller's entries still
/// come first under the login shell, bytes as they were.
#[test]
fn a_caller_path_that_is_not_utf8_keeps_its_entries_first() {
    let t = TempRoot::new();
    let mine = t.base.join("mytools");
    std::fs::create_dir(&mine).unwrap();
    let path = [mine.as_os_str().as_bytes(), b":/usr/bin:/bin:/opt/caf\xe9"].concat();
    let mut c = t.cmd(&[
        "run",
        "--",
        "printf '%s' \"$PATH\"; env | grep -c __AGENT_EXEC",
    ]);
    c.env("PATH", OsStr::from_bytes(&path));
    let o = t.exec(c);
    let v = o.json();
    let out = v["stdout"].as_str().unwrap();
    assert!(
        out.starts_with(&format!("{}:/usr/bin:/bin:/opt/caf", mine.display())),
        "{out}"
    );
    // The variables that carried it are gone before the command runs.
    assert!(out.ends_with("0\n"), "{out}");
}

/// Out of descriptors, a lookup is an I/O failure (retryable), never
/// `job_not_found`: an agent would conclude the job is gone.
#[test]
fn running_out_of_descriptors_is_not_job_not_found() {
    let t = TempRoot::new();
    let ids: Vec<String> = (0..80)
        .map(|_| {
            t.ok(&["run", "--no-auto-gc", "--", "true"])["job_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    t.settle();
    let mut c = limited(&t, "-n 40");
    c.args(["wait", "--until", "5"]).args(&ids);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], "io_error", "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
}

/// Under a descriptor limit as low as 64 a job still starts: the
/// descriptors handed to the supervisor are moved above the ones they
/// go to, not to a fixed 64 (EINVAL at that limit).
#[test]
fn a_low_descriptor_limit_still_runs_jobs() {
    let t = TempRoot::new();
    for limit in ["64", "32"] {
        let mut c = limited(&t, &format!("-n {limit}"));
        c.args(["run", "--", "echo", "hi"]);
        let o = t.exec(c);
        let v = o.json();
        assert_eq!(
            (v["state"].as_str(), v["stdout"].as_str()),
            (Some("exited"), Some("hi\n")),
            "{limit}: {v}"
        );
    }
}

/// Scans out of descriptors answer io_error too: never "no jobs" (list)
/// or real jobs called unreadable (gc, delete --all).
#[test]
fn scans_out_of_descriptors_fail_rather_than_skip() {
    let t = TempRoot::new();
    for _ in 0..3 {
        t.ok(&["run", "--no-auto-gc", "--", "true"]);
    }
    t.settle();
    for args in [
        &["list", "--all"][..],
        &["gc", "--dry-run"],
        &["delete", "--all", "--dry-run"],
    ] {
        let mut c = limited(&t, "-n 4");
        c.args(args);
        let o = t.exec(c);
        let v = o.json();
        assert_eq!(v["error"]["code"], "io_error", "{args:?}: {v}");
    }
}

/// A supervisor out of descriptors (a `--tty` job holds several more
/// than a piped one) still records the job's end: it keeps two spare
/// descriptors for state.json's write. Its caller, told the end, reads
/// that record; before, the supervisor could write nothing and its
/// caller answered `created` about a job that had run and been killed.
#[test]
fn a_supervisor_out_of_descriptors_still_records_the_end() {
    let t = TempRoot::new();
    for limit in ["11", "12", "13", "14", "15", "16", "17", "18"] {
        let mut c = limited(&t, &format!("-n {limit}"));
        c.args([
            "run",
            "--no-auto-gc",
            "--until",
            "10",
            "--tty",
            "--",
            "echo",
            "hi",
        ]);
        let o = t.exec(c);
        let v = o.json();
        let Some(id) = v["job_id"].as_str() else {
            // Too few even for the caller: an error, and no job.
            assert_eq!(v["ok"], false, "{limit}: {v}");
            continue;
        };
        let state = v["state"].as_str().unwrap_or_default();
        assert!(
            matches!(state, "exited" | "failed"),
            "{limit}: a terminal answer, got {v}"
        );
        if state == "failed" {
            assert!(v["failure"]["code"].is_string(), "{limit}: {v}");
        }
        let s = t.ok(&["status", id]);
        assert_eq!(s["state"], v["state"], "{limit}: {s}");
    }
}

/// A `run` too short of descriptors to define or start its job answers
/// an error and leaves no job behind: no directory (half-written or
/// whole) for `list` to show as failed with no failure, or for a later
/// reader to call `launch_lost`. A job it could record answers with
/// its failure.
#[test]
fn a_run_out_of_descriptors_leaves_no_job_behind() {
    let t = TempRoot::new();
    std::fs::create_dir_all(&t.root).unwrap();
    for limit in 4..=10 {
        let mut c = limited(&t, &format!("-n {limit}"));
        c.args(["run", "--no-auto-gc", "--", "echo", "hi"]);
        let o = t.exec(c);
        let v = o.json();
        let jobs = || -> Vec<String> {
            std::fs::read_dir(&t.root)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        };
        if v["ok"] == false {
            assert_eq!(v["error"]["code"], "io_error", "{limit}: {v}");
            assert!(v["error"]["details"]["job_id"].is_null(), "{limit}: {v}");
            assert_eq!(jobs(), Vec::<String>::new(), "{limit}: {v}");
            continue;
        }
        let id = v["job_id"].as_str().unwrap();
        if v["state"] == "failed" {
            assert!(v["failure"]["code"].is_string(), "{limit}: {v}");
        }
        t.wait_done(id);
        std::fs::remove_dir_all(t.root.join(id)).unwrap();
    }
}

/// A budget (`--max-bytes`) larger than the memory the caller's limit
/// leaves (`ulimit -v`) answers one document, never an abort with none
/// (exit 134, "memory allocation of N bytes failed"): the log's text
/// fits, or the answer is `io_error` (ENOMEM). Limits from below to
/// above what 20 MB of output needs, so some land in between.
#[test]
fn a_budget_beyond_the_memory_left_still_answers_one_document() {
    let t = TempRoot::new();
    let big = t.base.join("big.txt");
    std::fs::write(&big, vec![b'a'; 20_000_000]).unwrap();
    let big = big.to_str().unwrap();
    let v = t.ok(&["run", "--no-auto-gc", "--max-bytes", "10", "--", "cat", big]);
    let id = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(t.wait_done(&id)["state"], "exited");
    let huge = "100000000";
    let calls: [&[&str]; 4] = [
        &["tail", "--max-bytes", huge, &id],
        &["wait", "--output", "a", "--max-bytes", huge, &id],
        &[
            "wait",
            "--any",
            "--max-bytes",
            huge,
            "--tail-bytes",
            huge,
            &id,
            &id,
        ],
        &[
            "run",
            "--no-auto-gc",
            "--until",
            "30",
            "--max-bytes",
            huge,
            "--",
            "cat",
            big,
        ],
    ];
    for kb in [20_000, 30_000, 45_000, 60_000, 75_000] {
        for args in calls {
            let mut c = limited(&t, &format!("-v {kb}"));
            c.args(args);
            let o = t.exec(c);
            assert!(
                matches!(o.code, 0 | 1),
                "{kb} {args:?}: {} {}",
                o.code,
                o.stderr
            );
            let v = o.json();
            if o.code == 1 {
                assert_eq!(v["error"]["code"], "io_error", "{kb} {args:?}: {v}");
            } else {
                // `wait A B` describes each job under `jobs`.
                let one = if v["jobs"].is_array() {
                    &v["jobs"][0]
                } else {
                    &v
                };
                assert_eq!(
                    one["stdout"].as_str().map(str::len),
                    Some(20_000_000),
                    "{kb} {args:?}"
                );
            }
        }
    }
}

/// `wait` on many ids holds a few descriptors per job; under a soft
/// limit below that it raises the soft limit to the hard one rather
/// than fail (a thousand queued jobs against the common soft 1024).
#[test]
fn wait_on_many_ids_lifts_a_low_soft_descriptor_limit() {
    let t = TempRoot::new();
    let ids: Vec<String> = (0..100)
        .map(|_| t.job_id_of(&["create", "--", "true"]))
        .collect();
    let mut c = limited(&t, "-S -n 64");
    c.args(["wait", "--until", "0"]).args(&ids);
    let v = t.exec(c).json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["jobs"].as_array().map(Vec::len), Some(100), "{v}");
}

/// A running job holds more descriptors through the wait (its lock, the
/// watch on it): a soft limit of 20 ended a wait on 4 running jobs with
/// io_error (EMFILE), one of 6 a wait on one, where the hard limit had
/// room (audit 33: the limit was raised for more than 16 ids only).
#[test]
fn wait_on_a_few_running_jobs_lifts_a_low_soft_descriptor_limit() {
    let t = TempRoot::new();
    let ids: Vec<String> = (0..6).map(|_| t.start_job(&["sleep", "30"])).collect();
    for mode in ["--all", "--any"] {
        let mut c = limited(&t, "-S -n 20");
        c.args(["wait", mode, "--until", "0.2"]).args(&ids);
        let v = t.exec(c).json();
        assert_eq!(v["ok"], true, "{mode}: {v}");
        assert_eq!(v["jobs"].as_array().map(Vec::len), Some(6), "{v}");
    }
    let mut c = limited(&t, "-S -n 6");
    c.args(["wait", "--until", "0.2", &ids[0]]);
    let v = t.exec(c).json();
    assert_eq!(v["state"], "running", "{v}");
    for id in &ids {
        t.ok(&["kill", id]);
    }
}

/// However few descriptors the caller leaves (`ulimit -n`), a `run`
/// answers io_error with no job left, or the job reads `failed` with
/// `spawn_failed`, as the README says, or it runs. Audit 33: at 9 the
/// job read `meta_unreadable` (of an intact meta.json), at 10
/// `log_unwritable`, codes no document lists for this.
#[test]
fn a_run_short_of_descriptors_fails_as_documented() {
    let t = TempRoot::new();
    for n in 7..=16 {
        let mut c = limited(&t, &format!("-n {n}"));
        c.args(["run", "--until", "10", "--", "echo", "hi"]);
        let v = t.exec(c).json();
        match (&v["state"], &v["failure"]["code"], &v["error"]["code"]) {
            (s, _, _) if s == "exited" => assert_eq!(v["stdout"], "hi\n", "{n}: {v}"),
            (s, f, _) if s == "failed" => assert_eq!(f, "spawn_failed", "{n}: {v}"),
            (_, _, e) => assert_eq!(e, "io_error", "{n}: {v}"),
        }
    }
}

/// `tail --grep` keeping every match (`--tail-lines 0`) within a large
/// `--max-bytes`: millions of short matching lines outgrow the memory
/// left, and the answer is io_error (ENOMEM), not an abort with no
/// document (over HTTP, the end of the whole server).
#[test]
fn grep_matches_beyond_the_memory_left_answer_io_error() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--no-auto-gc",
        "--max-bytes",
        "10",
        "--",
        "yes ab | head -c 20000000",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    assert_eq!(t.wait_done(&id)["state"], "exited");
    for kb in [60_000, 120_000] {
        let mut c = limited(&t, &format!("-v {kb}"));
        c.args(["tail", "--grep", "ab", "--tail-lines", "0"]).args([
            "--max-bytes",
            "100000000",
            &id,
        ]);
        let o = t.exec(c);
        assert_eq!(o.code, 1, "{kb}: {} {}", o.code, o.stderr);
        let v = o.json();
        assert_eq!(v["error"]["code"], "io_error", "{kb}: {v}");
    }
}

/// With `--root`, the root's variables decide nothing: a launch whose
/// environment holds them in bytes that are not UTF-8 runs its job (its
/// supervisor, which inherits them, refused itself as a caller without
/// `--root`: every job read `launch_lost`).
#[test]
fn root_variables_that_are_not_utf8_do_not_matter_beside_root() {
    let t = TempRoot::new();
    let bad = [t.base.as_os_str().as_bytes(), b"/r\xff"].concat();
    for var in ["AGENT_EXEC_ROOT", "XDG_DATA_HOME", "HOME"] {
        let mut c = t.cmd(&["run", "--", "echo", "hi"]);
        c.env(var, OsStr::from_bytes(&bad));
        let v = t.exec(c).json();
        assert_eq!(
            (&v["state"], &v["stdout"]),
            (&"exited".into(), &"hi\n".into()),
            "{var}: {v}"
        );
        let id = t.ok(&["create", "--", "true"])["job_id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut c = t.cmd(&["start", "--until", "5", &id]);
        c.env(var, OsStr::from_bytes(&bad));
        let v = t.exec(c).json();
        assert_eq!(v["state"], "exited", "{var}: {v}");
    }
}

/// The same with a relative `--cwd`: it is from the caller's directory,
/// which cannot be recorded either (the job was made, `cwd: "rel"`, and
/// failed `cwd_not_found` wherever it was started).
#[test]
fn a_relative_cwd_from_a_removed_directory_is_refused() {
    let t = TempRoot::new();
    let gone = t.base.join("gone");
    std::fs::create_dir(&gone).unwrap();
    for cmd in ["create", "run"] {
        std::fs::create_dir_all(&gone).unwrap();
        let mut c = t.private("sh");
        c.current_dir(&gone).args([
            "-c",
            "rmdir \"$PWD\" && exec \"$0\" --root \"$1\" \"$2\" --cwd rel -- pwd",
            support::bin(),
            t.root.to_str().unwrap(),
            cmd,
        ]);
        let v = t.exec(c).json();
        assert_eq!(v["error"]["code"], "io_error", "{cmd}: {v}");
    }
    assert_eq!(t.jobs_in_root(), 0);
}

/// A caller's umask that masks the owner's own bits (0277, 0777) no
/// longer makes the root, the job directory and its files unusable
/// (they were 0500/0400, or mode 0): they are 0700 and 0600 as always,
/// and the job itself runs with the caller's umask.
#[test]
fn a_umask_masking_the_owner_leaves_job_modes_whole() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempRoot::new();
    for mask in ["0277", "0777"] {
        let root = t.base.join(format!("root-{mask}"));
        let mut c = t.private("sh");
        c.args([
            "-c",
            &format!("umask {mask} && exec \"$0\" --root \"$1\" run -- sh -c umask"),
            support::bin(),
            root.to_str().unwrap(),
        ]);
        let v = t.exec(c).json();
        assert_eq!(v["state"], "exited", "{mask}: {v}");
        assert_eq!(v["stdout"], format!("{mask}\n"), "{mask}: {v}");
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700, "{mask}: the root");
        let dir = root.join(v["job_id"].as_str().unwrap());
        assert_eq!(mode(&dir), 0o700, "{mask}: the job directory");
        for f in ["meta.json", "state.json", "stdout.log", "stderr.log"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{mask}: {f}");
        }
        // And the root stays usable under a usual umask after.
        let mut c = t.private("sh");
        c.args([
            "-c",
            "umask 022 && exec \"$0\" --root \"$1\" run -- true",
            support::bin(),
            root.to_str().unwrap(),
        ]);
        assert_eq!(t.exec(c).json()["state"], "exited", "{mask}");
    }
}

/// A stdout that is a non-blocking pipe (an agent harness may hand one
/// over) gets the whole document however full the pipe gets: EAGAIN cut
/// it at what the pipe held, and the exit status was 1.
#[test]
fn a_non_blocking_stdout_gets_the_whole_document() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let t = TempRoot::new();
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two descriptors, which we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; a small pipe fills at once.
    unsafe {
        libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 4096);
        let fl = libc::fcntl(w.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(w.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    let mut c = t.cmd(&["run", "--", "seq", "1", "60000"]);
    c.stdout(std::process::Stdio::from(w))
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    // Our copy of the write end goes with the command: EOF comes when
    // agent-exec exits.
    drop(c);
    // Read nothing until the pipe is full: the document is bigger, so
    // its writer has met a full non-blocking pipe (EAGAIN).
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into `queued`.
        unsafe { libc::ioctl(r.as_raw_fd(), libc::FIONREAD, &mut queued) };
        if queued >= 4096 {
            break;
        }
        assert!(std::time::Instant::now() < until, "the pipe never filled");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let mut got = Vec::new();
    std::fs::File::from(r).read_to_end(&mut got).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8(got).unwrap();
    assert_eq!(status.code(), Some(0), "{text:.200}");
    let v: serde_json::Value = serde_json::from_str(&text).expect("one whole document");
    assert_eq!(v["state"], "exited", "{v}");
    assert_eq!(v["stdout"].as_str().unwrap().len(), 65536, "{v}");
}

/// A caller that ignores SIGHUP (`nohup`) keeps its wait: the signal no
/// longer ends it (it was taken all the same, blocked signals never
/// being discarded), while SIGTERM still does.
#[test]
fn a_wait_under_nohup_outlives_sighup() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let mut c = t.private("sh");
    c.args([
        "-c",
        "trap '' HUP && exec \"$0\" --root \"$1\" wait --until 60 \"$2\"",
        support::bin(),
        t.root.to_str().unwrap(),
        &id,
    ])
    .stdout(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let pid = child.id() as i32;
    // Once it waits (the job lock's byte is taken), HUP, then TERM.
    let lock = t.job_dir(&id).join("lock");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !waiting_on(&lock) {
        assert!(std::time::Instant::now() < until, "wait never began");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // SAFETY: kill with a pid we started and a valid signal.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    // The HUP is ignored: the wait goes on, still waiting on the lock.
    let again = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::time::Instant::now() < again {
        assert!(waiting_on(&lock), "HUP ended the wait");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(143));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["state"], "running", "{v}");
    t.ok(&["kill", &id]);
}

/// Is some process blocked waiting for a lock on file `lock` (the `wait`
/// in its wait for the job's end)? /proc/locks lists a blocked request
/// as "N: -> TYPE ADVISORY MODE PID DEV:INODE ...".
fn waiting_on(lock: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(lock).map(|m| m.ino().to_string()) else {
        return false;
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"->") && f.get(6).and_then(|d| d.rsplit(':').next()) == Some(&ino)
    })
}
