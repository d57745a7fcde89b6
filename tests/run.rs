//! `run`: the inline result, launch modes, environment, stdin, timeouts,
//! launch failures and the shape of the job directory.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use support::TempRoot;

#[test]
fn quick_job_returns_whole_result_in_one_call() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo", "hello world"]);
    assert_eq!(v["type"], "run");
    assert_eq!(v["state"], "exited");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["stdout"], "hello world\n");
    assert_eq!(v["stderr"], "");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 12]));
    assert_eq!(v["stderr_range"], serde_json::json!([0, 0]));
    assert_eq!(v["stdout_total_bytes"], 12);
    assert_eq!(v["encoding"], "utf-8-lossy");
    assert_eq!(v["timed_out"], false);
    assert_eq!(v["attempt"], 1);
    assert_eq!(v["tags"], serde_json::json!([]));
    assert!(v["finished_at"].is_string());
    assert!(v["duration_ms"].is_u64());
    assert!(v.get("signal").is_none());
    assert!(v.get("snapshot").is_none());
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(id.len(), 26, "ULID: {id}");
    t.out(&["run", "--", "echo", "x"]).assert_order(&[
        "schema_version",
        "ok",
        "type",
        "job_id",
        "state",
        "tags",
        "stdout_log_path",
        "stderr_log_path",
        "elapsed_ms",
        "waited_ms",
        "stdout",
        "stderr",
        "stdout_range",
        "stderr_range",
        "stdout_total_bytes",
        "stderr_total_bytes",
        "encoding",
        "exit_code",
        "finished_at",
        "duration_ms",
    ]);
    let dir = t.job_dir(id);
    assert_eq!(
        v["stdout_log_path"],
        dir.join("stdout.log").to_str().unwrap()
    );
    for f in [
        "meta.json",
        "state.json",
        "stdout.log",
        "stderr.log",
        "full.log",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let full = t.read(id, "full.log");
    assert!(full.ends_with(" [STDOUT] hello world\n"), "{full}");
}

#[test]
fn exit_codes_and_signals() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "sh -c 'exit 7'"]);
    assert_eq!(
        (v["state"].as_str(), v["exit_code"].as_i64()),
        (Some("exited"), Some(7))
    );
    assert!(v.get("signal").is_none());
    let v = t.ok(&["run", "--", "no-such-program-xyz", "arg"]);
    assert_eq!(v["state"], "exited");
    assert_eq!(v["exit_code"], 127);
    let v = t.ok(&["run", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(v["state"], "killed");
    assert_eq!(v["signal"], "SIGTERM");
    assert!(v.get("exit_code").is_none());
    let v = t.ok(&["run", "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(v["signal"], "SIGKILL");
}

#[test]
fn shell_string_and_argv_modes() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo a && echo b | tr b c"]);
    assert_eq!(v["stdout"], "a\nc\n");
    // argv mode: no shell parsing of the arguments.
    let v = t.ok(&["run", "--", "echo", "a && b", "$HOME"]);
    assert_eq!(v["stdout"], "a && b $HOME\n");
    // argv mode execs the workload: the recorded pid is the workload's.
    let v = t.ok(&["run", "--", "sh", "-c", "echo $$"]);
    let id = v["job_id"].as_str().unwrap();
    let pid = t.state(id)["pid"].as_u64().unwrap();
    assert_eq!(v["stdout"].as_str().unwrap().trim(), pid.to_string());
    let meta = t.meta(id);
    assert_eq!(meta["command"], serde_json::json!(["sh", "-c", "echo $$"]));
    assert_eq!(meta["shell_wrapper"], serde_json::json!(["sh", "-lc"]));
}

#[test]
fn bare_wait_anywhere_before_the_command() {
    let t = TempRoot::new();
    for args in [
        &["run", "--wait", "--", "echo", "x"][..],
        &["run", "--env", "K=V", "--wait", "echo", "x"],
        &["run", "--wait", "true", "echo", "x"],
        &["run", "--wait", "TRUE", "echo", "x"],
        &["run", "--wait=true", "echo", "x"],
        &["run", "--wait", "1", "echo", "x"],
    ] {
        let v = t.ok(args);
        assert_eq!(v["stdout"], "x\n", "{args:?}");
        assert_eq!(v["command"], serde_json::json!(["echo", "x"]), "{args:?}");
    }
    // A boolean is `1`/`0` on every door, and after a space as after `=`:
    // `--wait 0` is no wait, not a command named 0.
    for args in [
        &["run", "--wait", "false", "--", "echo", "x"][..],
        &["run", "--wait", "0", "--", "echo", "x"],
    ] {
        let v = t.ok(args);
        assert_eq!(v["waited_ms"], 0, "{args:?}");
        assert_eq!(v["command"], serde_json::json!(["echo", "x"]), "{args:?}");
    }
    let id = t.ok(&["create", "--", "echo", "x"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let v = t.ok(&["start", "--wait", "1", &id]);
    assert_eq!(v["stdout"], "x\n");
    // A child's own --wait reaches the child.
    let v = t.ok(&["run", "--", "echo", "--wait"]);
    assert_eq!(v["stdout"], "--wait\n");
}

#[test]
fn until_deadline_leaves_job_running() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--until", "1", "--", "sh", "-c", "sleep 30"]);
    assert_eq!(v["state"], "running");
    for k in [
        "exit_code",
        "finished_at",
        "signal",
        "duration_ms",
        "timed_out",
    ] {
        assert!(v.get(k).is_none(), "{k} present while running: {v}");
    }
    assert!(v["waited_ms"].as_u64().unwrap() >= 900);
    let id = v["job_id"].as_str().unwrap();
    let k = t.ok(&["kill", id]);
    assert_eq!(k["state"], "killed");
}

#[test]
fn output_does_not_end_the_wait() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "echo first; sleep 0.3; echo second",
    ]);
    assert_eq!(v["state"], "exited");
    assert_eq!(v["stdout"], "first\nsecond\n");
}

#[test]
fn no_wait_returns_running() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--no-wait", "--", "sleep", "5"]);
    assert_eq!(v["state"], "running");
    assert_eq!(v["waited_ms"], 0);
    let id = v["job_id"].as_str().unwrap();
    t.ok(&["kill", id]);
}

#[test]
fn environment_precedence_and_env_file() {
    let t = TempRoot::new();
    let envf = t.base.join("vars.env");
    std::fs::write(&envf, "# comment\n\nA=from-file\nB=file-b\nQ=\"quoted\"\n").unwrap();
    let v = t.ok(&[
        "run",
        "--env-file",
        envf.to_str().unwrap(),
        "--env",
        "A=from-flag",
        "--",
        "sh",
        "-c",
        "echo $A $B $Q",
    ]);
    assert_eq!(v["stdout"], "from-flag file-b \"quoted\"\n");
    let mut c = t.cmd(&["run", "--", "sh", "-c", "echo ${INHERITED:-none}"]);
    c.env("INHERITED", "yes");
    assert_eq!(t.exec(c).json()["stdout"], "yes\n");
    let mut c = t.cmd(&[
        "run",
        "--no-inherit-env",
        "--env",
        "ONLY=1",
        "--",
        "/usr/bin/env",
    ]);
    c.env("INHERITED", "yes");
    let out = t.exec(c).json()["stdout"].as_str().unwrap().to_string();
    assert!(out.contains("ONLY=1"));
    assert!(!out.contains("INHERITED"), "{out}");
}

#[test]
fn an_env_file_s_byte_order_mark_is_not_part_of_its_first_name() {
    let t = TempRoot::new();
    let envf = t.base.join("bom.env");
    std::fs::write(&envf, "\u{feff}FIRST=1\nSECOND=2\n").unwrap();
    let v = t.ok(&[
        "run",
        "--env-file",
        envf.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "echo ${FIRST:-lost} $SECOND",
    ]);
    assert_eq!(v["stdout"], "1 2\n", "{v}");
    // Only at the very start: a later one is part of its line.
    std::fs::write(&envf, "A=\u{feff}x\n").unwrap();
    let v = t.ok(&[
        "run",
        "--env-file",
        envf.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "printf %s \"$A\"",
    ]);
    assert_eq!(v["stdout"], "\u{feff}x", "{v}");
}

#[test]
fn mask_keeps_secret_out_of_everything_visible() {
    let t = TempRoot::new();
    let secret = "s3cr3t-value-42";
    let kv = format!("TOKEN={secret}");
    let v = t.ok(&[
        "run", "--until", "0", "--env", &kv, "--mask", "TOKEN", "--env", "PLAIN=1", "--", "sleep",
        "2",
    ]);
    let text = v.to_string();
    assert!(!text.contains(secret), "{text}");
    assert_eq!(v["env_vars"], serde_json::json!(["TOKEN=***", "PLAIN=1"]));
    let id = v["job_id"].as_str().unwrap();
    assert!(!t.read(id, "meta.json").contains(secret));
    assert!(!t.read(id, "state.json").contains(secret));
    // No process's argv carries it.
    assert!(
        t.pids_matching(secret).is_empty(),
        "secret in some /proc/*/cmdline"
    );
    let s = t.ok(&["status", id]).to_string();
    assert!(!s.contains(secret));
    t.ok(&["kill", id]);
    let env_json = t.job_dir(id).join("env.json");
    let mode = std::fs::metadata(env_json).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn stdin_variants() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--stdin", "abc", "--", "cat"]);
    assert_eq!(v["stdout"], "abc");
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(t.meta(id)["stdin_file"], "stdin.bin");
    let mode = std::fs::metadata(t.job_dir(id).join("stdin.bin"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let v = t.ok(&["run", "--stdin", "", "--", "wc", "-c"]);
    assert_eq!(v["stdout"].as_str().unwrap().trim(), "0");

    let f = t.base.join("in.txt");
    std::fs::write(&f, "from file\n").unwrap();
    let v = t.ok(&["run", "--stdin-file", f.to_str().unwrap(), "--", "cat"]);
    assert_eq!(v["stdout"], "from file\n");

    let mut c = t.cmd(&["run", "--stdin", "-", "--", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped\ninput")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["stdout"], "piped\ninput");

    let v = t.ok(&["run", "--", "cat"]);
    assert_eq!(v["stdout"], "", "no stdin means /dev/null");
    assert!(t
        .meta(v["job_id"].as_str().unwrap())
        .get("stdin_file")
        .is_none());

    std::fs::write(&f, vec![b'x'; 1025]).unwrap();
    let (code, v) = t.err(&[
        "run",
        "--stdin-max-bytes",
        "1024",
        "--stdin-file",
        f.to_str().unwrap(),
        "--",
        "cat",
    ]);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "stdin_too_large");
    std::fs::write(&f, vec![b'x'; 1024]).unwrap();
    let v = t.ok(&[
        "run",
        "--stdin-max-bytes",
        "1024",
        "--stdin-file",
        f.to_str().unwrap(),
        "--",
        "wc",
        "-c",
    ]);
    assert_eq!(v["stdout"].as_str().unwrap().trim(), "1024");
}

#[test]
fn a_launch_failure_prints_log_paths_that_exist() {
    // D41: every path we print exists when we print it, a failed launch's
    // logs included (empty: nothing ran).
    let t = TempRoot::new();
    for (cmd, args) in [
        ("run", vec!["--cwd", "/no/such/dir"]),
        ("run", vec!["--env-file", "/no/such/file.env"]),
        ("run", vec!["--stdin-file", "/no/such/input"]),
        ("create", vec!["--stdin-file", "/no/such/input"]),
        ("run", vec!["--shell-wrapper", "/no/such/shell -c"]),
    ] {
        let mut a = vec![cmd];
        a.extend(&args);
        a.extend(["--", "true"]);
        let v = t.ok(&a);
        assert_eq!(v["state"], "failed", "{a:?} {v}");
        for k in ["stdout_log_path", "stderr_log_path"] {
            let p = v[k].as_str().unwrap();
            assert!(std::path::Path::new(p).is_file(), "{a:?}: {k} {p} missing");
        }
    }
}

#[test]
fn launch_failures_are_failed_jobs_not_errors() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--cwd", "/no/such/dir", "--", "true"]);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["failure"]["code"], "cwd_not_found");
    assert_eq!(
        v["failure"]["message"],
        "working directory not found: /no/such/dir"
    );
    // A file is not "not found": the message says what is wrong.
    let file = t.base.join("a-file");
    std::fs::write(&file, "").unwrap();
    for (cwd, why) in [
        (file.clone(), "is not a directory"),
        (file.join("below"), "a part of its path is not a directory"),
    ] {
        let v = t.ok(&["run", "--cwd", cwd.to_str().unwrap(), "--", "true"]);
        assert_eq!(v["failure"]["code"], "cwd_not_found", "{v}");
        let msg = v["failure"]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{msg}");
    }
    let v = t.ok(&["run", "--shell-wrapper", "/no/such/shell -c", "--", "true"]);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["failure"]["code"], "spawn_failed");
    let v = t.ok(&["run", "--env-file", "/no/such/file.env", "--", "true"]);
    assert_eq!(v["failure"]["code"], "env_file_unreadable");
    let v = t.ok(&["run", "--stdin-file", "/no/such/input", "--", "cat"]);
    assert_eq!(v["failure"]["code"], "stdin_unreadable");
    let id = v["job_id"].as_str().unwrap();
    let s = t.ok(&["status", id]);
    assert_eq!(s["state"], "failed");
    assert_eq!(s["failure"]["code"], "stdin_unreadable");
    let w = t.ok(&["wait", "--until", "1", id]);
    assert_eq!(w["state"], "failed");
}

/// The workload starts as a fresh exec would: no blocked signals, none
/// ignored that we ignore (SIGPIPE is ignored by Rust's runtime), in its
/// own process group, with the wrapper found as execvp finds it.
#[test]
fn the_workload_starts_clean_and_is_found_as_execvp_finds_it() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "sh -c",
        "--",
        "grep",
        "-E",
        "^Sig(Blk|Ign)",
        "/proc/self/status",
    ]);
    let text = v["stdout"].as_str().unwrap();
    let mask = |name: &str| {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{text}");
    let sigpipe = 1u64 << (13 - 1);
    assert_eq!(mask("SigIgn:") & sigpipe, 0, "SIGPIPE ignored: {text}");
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "sh -c",
        "--",
        "sh",
        "-c",
        "echo $(($$ == $(ps -o pgid= -p $$)))",
    ]);
    assert_eq!(v["stdout"], "1\n", "its own process group: {v}");

    // A wrapper named without a slash is searched on the job's PATH: an
    // entry whose file is not executable is passed over, as by execvp.
    let bin = |name: &str| {
        let d = t.base.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (first, second) = (bin("first"), bin("second"));
    std::fs::write(first.join("mysh"), "#!/bin/sh\necho wrong\n").unwrap();
    let script = second.join("mysh");
    std::fs::write(&script, "#!/bin/sh\necho \"right $*\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "PATH={}:{}:/usr/bin:/bin",
        first.display(),
        second.display()
    );
    let v = t.ok(&[
        "run",
        "--env",
        &path,
        "--shell-wrapper",
        "mysh -x",
        "--",
        "one",
    ]);
    assert_eq!(v["exit_code"], 0, "{v}");
    assert_eq!(v["stdout"], "right -x one\n");
    // Found nowhere: a failed launch that names the error.
    let v = t.ok(&[
        "run",
        "--env",
        &path,
        "--shell-wrapper",
        "no-such-shell-anywhere -c",
        "--",
        "true",
    ]);
    assert_eq!(v["state"], "failed");
    assert_eq!(v["failure"]["code"], "spawn_failed");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("No such file or directory"), "{msg}");
    // Only a non-executable one: permission denied, as execvp reports.
    std::fs::write(first.join("mysh-nope"), "#!/bin/sh\n").unwrap();
    let v = t.ok(&[
        "run",
        "--env",
        &path,
        "--shell-wrapper",
        "mysh-nope -c",
        "--",
        "true",
    ]);
    assert_eq!(v["failure"]["code"], "spawn_failed");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("Permission denied"), "{msg}");
}

#[test]
fn cwd_is_used_and_recorded() {
    let t = TempRoot::new();
    let d = t.base.join("elsewhere");
    std::fs::create_dir_all(&d).unwrap();
    let v = t.ok(&["run", "--cwd", d.to_str().unwrap(), "--", "pwd"]);
    let canon = std::fs::canonicalize(&d).unwrap();
    assert_eq!(
        v["stdout"].as_str().unwrap().trim(),
        canon.to_str().unwrap()
    );
    assert_eq!(
        t.meta(v["job_id"].as_str().unwrap())["cwd"],
        canon.to_str().unwrap()
    );
}

/// An empty `--cwd` (an unset variable in a script) is refused: it would
/// have run the job in the caller's directory without a word.
#[test]
fn an_empty_cwd_is_refused() {
    let t = TempRoot::new();
    for verb in ["run", "create"] {
        let (code, e) = t.err(&[verb, "--cwd", "", "--", "pwd"]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (2, Some("usage_error")),
            "{verb}: {e}"
        );
        assert!(
            e["error"]["message"].as_str().unwrap().contains("--cwd"),
            "{e}"
        );
    }
    assert_eq!(t.ok(&["list", "--all"])["jobs"], serde_json::json!([]));
}

#[test]
fn timeout_records_and_kills() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!(v["state"], "killed", "{v}");
    assert_eq!(v["timed_out"], true);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(t.state(id)["result"]["timed_out"], true);
    // TERM ignored: kill-after brings SIGKILL.
    let v = t.ok(&[
        "run",
        "--timeout",
        "1",
        "--kill-after",
        "1",
        "--",
        "sh",
        "-c",
        "trap '' TERM; sleep 30",
    ]);
    assert_eq!(v["state"], "killed");
    assert_eq!(v["signal"], "SIGKILL");
    assert_eq!(v["timed_out"], true);
    // A job that finishes in time is not timed out.
    let v = t.ok(&["run", "--timeout", "10", "--", "true"]);
    assert_eq!(v["timed_out"], false);
}

#[test]
fn tags_and_log_flag() {
    let t = TempRoot::new();
    let log = t.base.join("logs/sub/full.txt");
    let v = t.ok(&[
        "run",
        "--tag",
        "ci",
        "--tag",
        "a.b",
        "--tag",
        "ci",
        "--log",
        log.to_str().unwrap(),
        "--",
        "echo",
        "x",
    ]);
    assert_eq!(v["tags"], serde_json::json!(["ci", "a.b"]));
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("[STDOUT] x"));
}

#[test]
fn an_unwritable_log_fails_the_job_and_stops_it() {
    let t = TempRoot::new();
    // A regular file where --log needs a directory.
    let blocker = t.base.join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let log = blocker.join("full.txt");
    let marker = format!("ae-log-{}", std::process::id());
    let v = t.ok(&[
        "run",
        "--log",
        log.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        &format!("sleep 30 # {marker}"),
    ]);
    assert_eq!(v["state"], "failed", "{v}");
    let id = v["job_id"].as_str().unwrap();
    let st = t.ok(&["status", id]);
    assert_eq!(st["state"], "failed", "{st}");
    assert_eq!(t.state(id)["failure"]["code"], "log_unwritable");
    // Said as what it is (it read "File exists").
    let msg = t.state(id)["failure"]["message"].to_string();
    assert!(msg.contains("(os error 20)"), "{msg}");
    assert!(
        t.pids_matching(&marker).is_empty(),
        "the workload was stopped"
    );
    // Opened before the spawn: a caller that does not wait is told too,
    // and nothing ran (it was told `running`, most times, of a job then
    // killed and recorded `failed`).
    for round in 0..5 {
        let v = t.ok(&[
            "run",
            "--no-wait",
            "--log",
            log.to_str().unwrap(),
            "--",
            "sleep",
            "30",
        ]);
        assert_eq!(v["state"], "failed", "round {round}: {v}");
        assert_eq!(v["failure"]["code"], "log_unwritable", "{v}");
        let st = t.state(v["job_id"].as_str().unwrap());
        assert!(st["pid"].is_null() && st["started_at"].is_null(), "{st}");
    }
}

/// `--log` never writes into a directory of the jobs root, as a file
/// sink never does: pointed at another job's log or record it fails the
/// launch (`log_unwritable`, saying why), and that job is untouched. It
/// overwrote the other job's stdout.log, and state.json made that job
/// unreadable. A file directly in the root is allowed.
#[test]
fn a_log_inside_a_job_directory_is_refused() {
    let t = TempRoot::new();
    let other = t.ok(&["run", "--", "echo original"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = t.job_dir(&other);
    let before: Vec<_> = ["stdout.log", "state.json", "meta.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    // Spelled plainly, and through a link to the job's directory.
    let link = t.base.join("there");
    std::os::unix::fs::symlink(&dir, &link).unwrap();
    // And through a dangling link naming a file there (it was made).
    let dangling = t.base.join("dangling.log");
    std::os::unix::fs::symlink(dir.join("runs"), &dangling).unwrap();
    for target in [
        dir.join("stdout.log"),
        dir.join("state.json"),
        link.join("meta.json"),
        dir.join("new/sub/x.log"),
        dangling,
    ] {
        let v = t.ok(&[
            "run",
            "--log",
            target.to_str().unwrap(),
            "--",
            "echo intruder",
        ]);
        assert_eq!(v["state"], "failed", "{target:?}: {v}");
        let st = t.state(v["job_id"].as_str().unwrap());
        assert_eq!(st["failure"]["code"], "log_unwritable", "{st}");
        let msg = st["failure"]["message"].as_str().unwrap();
        assert!(msg.contains("inside a directory of the jobs root"), "{msg}");
    }
    assert!(!dir.join("new").exists(), "nothing is made there");
    assert!(!dir.join("runs").exists(), "nothing is made there");
    let after: Vec<_> = ["stdout.log", "state.json", "meta.json"]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    assert!(before == after, "the other job's files are untouched");
    assert_eq!(t.ok(&["tail", &other])["stdout"], "original\n");
    let beside = t.root.join("combined.log");
    let v = t.ok(&["run", "--log", beside.to_str().unwrap(), "--", "echo fine"]);
    assert_eq!(v["state"], "exited", "{v}");
    assert!(std::fs::read_to_string(&beside)
        .unwrap()
        .contains("[STDOUT] fine"));
}

#[test]
fn permissions_are_private() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "echo", "x"]);
    let dir = t.job_dir(v["job_id"].as_str().unwrap());
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let mode = e.metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{:?}", e.file_name());
    }
}

/// The state files a supervisor swaps in place (`.state.next`, a queued
/// job's `.state.run`, `.state.prev` where the file system cannot swap)
/// are gone once it has exited, and state.json is the whole final state.
#[test]
fn a_finished_job_keeps_no_scratch_state_files() {
    let t = TempRoot::new();
    let plain = t.ok(&["run", "--", "echo", "x"]);
    let queued = t.ok(&["run", "--queue", "q", "--", "echo", "y"]);
    t.settle();
    for v in [plain, queued] {
        let id = v["job_id"].as_str().unwrap();
        assert_eq!(v["state"], "exited", "{v}");
        let names: Vec<String> = std::fs::read_dir(t.job_dir(id))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.starts_with('.')),
            "scratch files left: {names:?}"
        );
        let st = t.state(id);
        assert_eq!(st["job"]["status"], "exited", "{st}");
        assert_eq!(st["result"]["exit_code"], 0);
    }
}

#[test]
fn progress_every_refreshes_updated_at() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--progress-every",
        "1",
        "--until",
        "0",
        "--",
        "sleep",
        "2.5",
    ]);
    let id = v["job_id"].as_str().unwrap();
    let first = t.state(id)["updated_at"].clone();
    let w = t.wait_done(id);
    assert_eq!(w["state"], "exited");
    // Refreshes are atomic writes: the file always parses.
    assert_ne!(t.state(id)["updated_at"], first);
}

#[test]
fn concurrent_runs_get_distinct_ids() {
    let t = TempRoot::new();
    let children: Vec<_> = (0..50)
        .map(|_| {
            let mut c = t.cmd(&["run", "--no-wait", "--", "true"]);
            c.stdout(Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for ch in children {
        let o = ch.wait_with_output().unwrap();
        assert!(o.status.success());
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        ids.insert(v["job_id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 50);
    for id in &ids {
        let w = t.wait_done(id);
        assert_eq!(w["exit_code"], 0, "{w}");
    }
}

#[test]
fn max_bytes_bounds_the_inline_head() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--max-bytes", "4", "--", "echo", "hello world"]);
    assert_eq!(v["stdout"], "hell");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 4]));
    assert_eq!(v["stdout_total_bytes"], 12);
    let v = t.ok(&["run", "--max-bytes", "0", "--", "echo", "x"]);
    assert_eq!(v["stdout"], "");
    assert_eq!(v["stdout_range"], serde_json::json!([0, 0]));
}

#[test]
fn forever_waits_for_the_end() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--forever", "--", "sh", "-c", "sleep 0.3; echo late"]);
    assert_eq!(v["state"], "exited");
    assert_eq!(v["stdout"], "late\n");
}

#[test]
fn inherit_env_is_the_default_and_explicit() {
    let t = TempRoot::new();
    let mut c = t.cmd(&[
        "run",
        "--inherit-env",
        "--",
        "sh",
        "-c",
        "echo $FROM_CALLER",
    ]);
    c.env("FROM_CALLER", "kept");
    assert_eq!(t.exec(c).json()["stdout"], "kept\n");
    assert_eq!(t.meta(&t.start_job(&["true"]))["inherit_env"], true);
}

#[test]
fn shell_wrapper_from_flag_and_config() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "bash -c",
        "--",
        "echo $BASH_VERSION",
    ]);
    assert_ne!(v["stdout"], "\n", "bash ran the string: {v}");
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(
        t.meta(id)["shell_wrapper"],
        serde_json::json!(["bash", "-c"])
    );
    // [shell] unix in the default config.
    let cfg = t.base.join("config/agent-exec");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.toml"),
        "[shell]\nunix = [\"bash\", \"-c\"]\n",
    )
    .unwrap();
    let v = t.ok(&["run", "--", "echo ${BASH_VERSION:+bash}"]);
    assert_eq!(v["stdout"], "bash\n");
    // The flag beats the config.
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "sh -c",
        "--",
        "echo ${BASH_VERSION:-plain}",
    ]);
    assert_eq!(v["stdout"], "plain\n");
    // An explicit --config beats the default one.
    let other = t.base.join("other.toml");
    std::fs::write(&other, "[shell]\nunix = [\"sh\", \"-c\"]\n").unwrap();
    let v = t.ok(&[
        "run",
        "--config",
        other.to_str().unwrap(),
        "--",
        "echo ${BASH_VERSION:-plain}",
    ]);
    assert_eq!(v["stdout"], "plain\n");
    // One without the key leaves the wrapper to the default file (the
    // precedence: flag, --config, default file, built-in; audit: it went
    // to the built-in `sh -lc`).
    let no_key = t.base.join("no-key.toml");
    std::fs::write(&no_key, "[gc]\nauto = true\n").unwrap();
    let v = t.ok(&[
        "run",
        "--config",
        no_key.to_str().unwrap(),
        "--",
        "echo ${BASH_VERSION:+bash}",
    ]);
    assert_eq!(v["stdout"], "bash\n", "{v}");
    // A broken config is an invalid_config envelope naming the file.
    std::fs::write(cfg.join("config.toml"), "[shell\n").unwrap();
    let (code, e) = t.err(&["run", "--", "true"]);
    assert_eq!(code, 1);
    assert_eq!(e["error"]["code"], "invalid_config");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config.toml:1"),
        "{e}"
    );
    // Not the file asked for: a broken default file fails no `--config`
    // run, and the wrapper is then the built-in (audit).
    let o = t.out(&[
        "run",
        "--config",
        no_key.to_str().unwrap(),
        "--",
        "echo ${BASH_VERSION:-plain}",
    ]);
    assert_eq!(o.code, 0, "{} {}", o.stdout, o.stderr);
    assert_eq!(o.json()["stdout"], "plain\n");
    assert!(!o.stderr.contains("config.toml"), "{}", o.stderr);
    let (code, e) = t.err(&["run", "--shell-wrapper", "  ", "--", "true"]);
    assert_eq!(code, 2);
    assert_eq!(e["error"]["code"], "usage_error");
}

#[test]
fn stdin_dash_on_a_terminal_is_refused() {
    if support::no_script() {
        return;
    }
    let t = TempRoot::new();
    let line = format!(
        "{} --root {} run --stdin - -- cat",
        support::bin(),
        t.root.display()
    );
    // script(1) gives the command a pseudo-terminal as its stdin.
    let o = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .current_dir(&t.cwd)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let json = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_default();
    let v: serde_json::Value =
        serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["error"]["code"], "stdin_required", "{v}");
    assert!(
        !t.root.exists() || std::fs::read_dir(&t.root).unwrap().next().is_none(),
        "no job left behind"
    );
}

/// The attribute letters `lsattr -d` shows for `dir`; None (with a note)
/// where the file system keeps no such attributes or lsattr is missing.
fn attributes(dir: &std::path::Path) -> Option<String> {
    let o = std::process::Command::new("lsattr")
        .arg("-d")
        .arg(dir)
        .output()
        .ok()?;
    if !o.status.success() {
        eprintln!(
            "note: skipped: lsattr -d {}: {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return None;
    }
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    Some(
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn the_jobs_root_is_marked_the_top_of_its_hierarchies() {
    // An existing root without the mark (as a user's, made before) gets
    // it at the next launch: ext4 then spreads the job directories over
    // block groups (see sys::spread_subdirectories).
    let t = TempRoot::new();
    std::fs::create_dir_all(&t.root).unwrap();
    let Some(before) = attributes(&t.root) else {
        return;
    };
    assert!(
        !before.contains('T'),
        "a fresh directory has T already: {before}"
    );
    t.ok(&["run", "--", "true"]);
    let after = attributes(&t.root).unwrap();
    assert!(after.contains('T'), "the root is not marked: {after}");
    // A job directory is an ordinary directory: no mark of its own.
    let job = std::fs::read_dir(&t.root)
        .unwrap()
        .flatten()
        .find(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .unwrap();
    assert!(!attributes(&job.path()).unwrap().contains('T'));
}

#[test]
fn a_launch_takes_the_directory_a_supervisor_made_ahead_and_nothing_reports_it() {
    // Each supervisor, once its caller is told the job runs, makes the
    // missing spare directories (.spare-N); the next launch renames one
    // into place instead of making a directory on its own path.
    use std::os::unix::fs::MetadataExt;
    let t = TempRoot::new();
    let first = t.ok(&["run", "--", "true"]);
    assert_eq!(first["state"], "exited", "{first}");
    t.settle();
    let spares: Vec<(String, u64)> = std::fs::read_dir(&t.root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".spare-"))
        .map(|n| {
            let ino = std::fs::metadata(t.root.join(&n)).unwrap().ino();
            (n, ino)
        })
        .collect();
    assert!(!spares.is_empty(), "no spare directory was made");
    let second = t.ok(&["run", "--", "echo", "hi"]);
    assert_eq!(second["stdout"], "hi\n", "{second}");
    let id = second["job_id"].as_str().unwrap();
    let ino = std::fs::metadata(t.job_dir(id)).unwrap().ino();
    assert!(
        spares.iter().any(|(_, i)| *i == ino),
        "{id} is not one of the spares {spares:?}"
    );
    t.settle();
    // Neither list, gc nor delete --all sees them.
    let v = t.ok(&["list", "--all"]);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 2, "{v}");
    let v = t.ok(&["gc"]);
    assert!(!v.to_string().contains(".spare"), "{v}");
    assert_eq!(v["scanned_dirs"], 2, "{v}");
    let v = t.ok(&["delete", "--all"]);
    assert!(!v.to_string().contains(".spare"), "{v}");

    // A --no-wait caller has its answer when it exits: the spares are
    // made then, while the job still runs.
    let t = TempRoot::new();
    let v = t.ok(&["run", "--no-wait", "--", "sleep", "30"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !t.root.join(".spare-0").is_dir() {
        assert!(
            std::time::Instant::now() < until,
            "no spare while the job runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(t.ok(&["status", &id])["state"], "running");
    t.ok(&["kill", &id]);
    t.wait_done(&id);
}

#[test]
fn a_root_given_as_a_symlink_gets_spare_directories_too() {
    // The root is the user's path: followed, as for everything else.
    use std::os::unix::fs::MetadataExt;
    let t = TempRoot::new();
    let real = t.base.join("real-root");
    std::fs::create_dir_all(&real).unwrap();
    let link = t.base.join("link-root");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = || {
        let mut c = t.bare();
        c.arg("--root").arg(&link).args(["run", "--", "true"]);
        let v = t.exec(c).json();
        assert_eq!(v["state"], "exited", "{v}");
        v["job_id"].as_str().unwrap().to_string()
    };
    run();
    let spares = [real.join(".spare-0"), real.join(".spare-1")];
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !spares.iter().all(|s| s.is_dir()) {
        assert!(
            std::time::Instant::now() < until,
            "no spares in a linked root"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let inos: Vec<u64> = spares
        .iter()
        .map(|s| std::fs::metadata(s).unwrap().ino())
        .collect();
    let id = run();
    let got = std::fs::metadata(real.join(&id)).unwrap().ino();
    assert!(inos.contains(&got), "{id} was made, not taken");
}

/// One variable longer than the kernel takes in a single string (128
/// KiB) fails the launch with `spawn_failed` naming that variable — not
/// its value, and not the total, which is far under the kernel's limit.
#[test]
fn a_variable_too_long_for_the_kernel_is_named() {
    let t = TempRoot::new();
    let env = t.cwd.join("big.env");
    let value = "b".repeat(140_000);
    std::fs::write(&env, format!("BIG_ONE={value}\n")).unwrap();
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "sh -c",
        "--env-file",
        env.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["failure"]["code"], "spawn_failed", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(msg.contains("the variable BIG_ONE"), "{msg}");
    assert!(!msg.contains("bbbb"), "{msg}");
}

/// Is `prog` on this PATH? (`--version` answers without side effects in
/// the shells asked about.)
fn have(prog: &str) -> bool {
    std::process::Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `--shell-wrapper "fish -lc"` with a command given as argv runs that
/// argv, program name first: fish binds the words after `-c SCRIPT --`
/// to `$argv`, not to `"$@"`. The one-string form is fish's to read.
#[test]
fn a_fish_wrapper_runs_the_argv_it_was_given() {
    if !have("fish") {
        println!("note: fish not installed; the fish wrapper is not checked");
        return;
    }
    let t = TempRoot::new();
    let fish = |cmd: &[&str]| t.ok(&[&["run", "--shell-wrapper", "fish -lc", "--"], cmd].concat());
    let v = fish(&["echo", "hello", "world"]);
    assert_eq!(v["stdout"], "hello world\n", "{v}");
    // Each word reaches the program as it is: no splitting, no expansion.
    let v = fish(&["printf", "[%s]", "a b", "$HOME", "(x)", "", "--"]);
    assert_eq!(v["stdout"], "[a b][$HOME][(x)][][--]", "{v}");
    // The program replaces fish: the recorded pid and status are its own.
    let v = fish(&["sh", "-c", "echo $$; exit 7"]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(v["exit_code"], 7, "{v}");
    let pid = t.state(id)["pid"].as_u64().unwrap();
    assert_eq!(v["stdout"].as_str().unwrap().trim(), pid.to_string());
    let v = fish(&["echo (echo one-string)"]);
    assert_eq!(v["stdout"], "one-string\n", "{v}");
}

/// A tracing login wrapper (`bash -xlc`, `sh -xlc`, bash's `-v`) traces
/// the user's command, never agent-exec's set-up, which holds the
/// values of --env-file and --env: none of them reaches the logs.
#[test]
fn a_tracing_wrapper_does_not_trace_the_set_up_and_its_secrets() {
    let t = TempRoot::new();
    let envf = t.base.join("secret.env");
    std::fs::write(&envf, "TOKEN=s3cret-from-file\n").unwrap();
    let envf = envf.to_str().unwrap();
    for wrapper in ["bash -xlc", "sh -xlc", "bash -vlc", "bash -xvlc"] {
        for (cmd, traced) in [
            (&["echo", "argv-form"][..], "echo argv-form"),
            (&["echo one-string"][..], "echo one-string"),
        ] {
            let mut a = vec![
                "run",
                "--shell-wrapper",
                wrapper,
                "--env-file",
                envf,
                "--env",
                "FLAG=s3cret-from-flag",
                "--",
            ];
            a.extend_from_slice(cmd);
            let v = t.ok(&a);
            assert_eq!(v["exit_code"], 0, "{wrapper}: {v}");
            let id = v["job_id"].as_str().unwrap();
            for log in ["stderr.log", "full.log"] {
                let text = t.read(id, log);
                assert!(
                    !text.contains("s3cret"),
                    "{wrapper} {cmd:?}: {log} holds a secret:\n{text}"
                );
                // -v alone echoes the -c string, which names the command
                // only in the one-string form.
                let shown = wrapper.contains('x') || cmd.len() == 1;
                assert!(
                    !shown || text.contains(traced),
                    "{wrapper} {cmd:?}: the command is not traced in {log}:\n{text}"
                );
            }
            assert_eq!(v["stdout"], format!("{}\n", &traced[5..]), "{v}");
        }
    }
    // The set-up restores only what was on: without -x nothing is traced.
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "bash -lc",
        "--env-file",
        envf,
        "--",
        "echo",
        "quiet",
    ]);
    let id = v["job_id"].as_str().unwrap();
    assert_eq!(t.read(id, "stderr.log"), "", "{v}");
}

/// Env-file lines: the value is exactly what follows the first `=`
/// (spaces at either end kept, only the line ending dropped, `\r\n`
/// included); a bare NAME passes the caller's value on, as `--env NAME`
/// does, and is dropped when the caller has none; a leading `export ` is
/// accepted; a line with no name is refused, naming file and line.
#[test]
fn env_file_lines_keep_their_values_and_pass_bare_names_on() {
    let t = TempRoot::new();
    let envf = t.base.join("lines.env");
    std::fs::write(
        &envf,
        "A=  x  \r\nB=\ty\t\nC=z \r\n  D=indented\nexport E=exported\nCALLER_ONE\nGONE=from-file\nGONE\nNEVER\n",
    )
    .unwrap();
    let show = "printf '[%s]' \"$A\" \"$B\" \"$C\" \"$D\" \"$E\" \"${CALLER_ONE-unset}\" \"${GONE-unset}\" \"${NEVER-unset}\"";
    for wrapper in ["sh -c", "sh -lc"] {
        let mut c = t.cmd(&[
            "run",
            "--shell-wrapper",
            wrapper,
            "--env-file",
            envf.to_str().unwrap(),
            "--",
            show,
        ]);
        c.env("CALLER_ONE", "from-caller").env_remove("NEVER");
        let v = t.exec(c).json();
        assert_eq!(
            v["stdout"], "[  x  ][\ty\t][z ][indented][exported][from-caller][from-file][unset]",
            "{wrapper}: {v}"
        );
    }
    // A line whose name is empty is the file's fault: said with its line.
    std::fs::write(&envf, "# names\nOK=1\n=no-name\n").unwrap();
    let v = t.ok(&["run", "--env-file", envf.to_str().unwrap(), "--", "true"]);
    assert_eq!(v["failure"]["code"], "env_file_unreadable", "{v}");
    let msg = v["failure"]["message"].as_str().unwrap();
    assert!(
        msg.contains(envf.to_str().unwrap()) && msg.contains("line 3"),
        "{msg}"
    );
}

/// A profile that changes directory does not move the job: under a
/// login wrapper the set-up re-enters the job's directory after it.
#[test]
fn a_profile_that_changes_directory_does_not_move_the_job() {
    let t = TempRoot::new();
    std::fs::write(t.base.join("home/.profile"), "cd /\n").unwrap();
    let d = t.base.join("work dir 'quoted'");
    std::fs::create_dir_all(&d).unwrap();
    let d = std::fs::canonicalize(&d).unwrap();
    let d = d.to_str().unwrap();
    for cmd in [&["pwd"][..], &["sh", "-c", "pwd; pwd -P"][..]] {
        let mut a = vec!["run", "--cwd", d, "--"];
        a.extend_from_slice(cmd);
        let v = t.ok(&a);
        let out = v["stdout"].as_str().unwrap();
        assert!(
            !out.is_empty() && out.lines().all(|l| l == d),
            "{cmd:?}: {v}"
        );
    }
    // A job that did not ask for a directory stays where it was started.
    let v = t.ok(&["run", "--", "pwd"]);
    assert_eq!(v["stdout"], format!("{}\n", t.cwd.display()), "{v}");
}

/// A name that is not a shell identifier (`A.B`, `A-B`) is taken and
/// handed to the wrapper as given: bash passes it on to the command,
/// login shell or not (dash, the usual sh, drops it, as README says).
#[test]
fn names_that_are_not_shell_identifiers_reach_the_command_through_bash() {
    let t = TempRoot::new();
    for wrapper in ["bash -c", "bash -lc"] {
        let v = t.ok(&[
            "run",
            "--shell-wrapper",
            wrapper,
            "--env",
            "A.B=4",
            "--env",
            "A-B=2",
            "--",
            "env | grep '^A[.-]B=' | sort",
        ]);
        assert_eq!(v["stdout"], "A-B=2\nA.B=4\n", "{wrapper}: {v}");
        assert_eq!(v["env_vars"], serde_json::json!(["A.B=4", "A-B=2"]), "{v}");
    }
}

/// A key of a known config section that nothing reads is ignored, as in
/// 0.2.3, and said on stderr with its line: a misspelt `max_job` and a
/// queue table nested by its dotted name did nothing without a word.
#[test]
fn unknown_config_keys_are_warned_of_and_ignored() {
    let t = TempRoot::new();
    let cfg = t.base.join("typo.toml");
    std::fs::write(
        &cfg,
        "[gc]\nmax_job = 1\n[queue.a.b]\nparallel = 2\n[log]\nfull = true\n[newer]\nx = 1\n",
    )
    .unwrap();
    let o = t.out(&["run", "--config", cfg.to_str().unwrap(), "--", "true"]);
    assert_eq!(o.json()["state"], "exited", "{}", o.stdout);
    assert!(
        o.stderr.contains("typo.toml:2: gc.max_job: unknown key"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("typo.toml:3: queue.a.b: unknown key"),
        "{}",
        o.stderr
    );
    // Known keys and unknown sections say nothing.
    assert!(
        !o.stderr.contains("log.full") && !o.stderr.contains("newer"),
        "{}",
        o.stderr
    );
}

/// A run whose job's directory is removed while it waits (or while its
/// launch reads the running record): the error that follows is about a
/// job that ran, and names it (`details.job_id`), as `start`'s and
/// `wait`'s do; it named none.
#[test]
fn a_run_whose_wait_fails_names_its_job() {
    let t = TempRoot::new();
    let mut c = t.cmd(&[
        "run",
        "--until",
        "30",
        "--",
        "while [ ! -e release ]; do sleep 0.02; done",
    ]);
    c.stdout(Stdio::piped());
    let child = c.spawn().unwrap();
    // The job's directory, once it runs.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let dir = loop {
        let found = std::fs::read_dir(&t.root).ok().and_then(|d| {
            d.flatten().map(|e| e.path()).find(|p| {
                std::fs::read_to_string(p.join("state.json")).is_ok_and(|s| s.contains("running"))
            })
        });
        if let Some(d) = found {
            break d;
        }
        assert!(std::time::Instant::now() < until, "the job never ran");
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let id = dir.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(t.cwd.join("release"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["details"]["job_id"], id.as_str(), "{v}");
}

/// A profile that moved away and defined `cd` as a function (rvm's, a
/// prompt hook's) no longer has that function run by the way back to
/// the job's directory: it printed into the job's output, or refused
/// and the command never ran.
#[test]
fn the_way_back_from_a_profile_uses_the_shells_own_cd() {
    let t = TempRoot::new();
    let home = t.base.join("home");
    let profile = "command cd /\ncd() { echo hook; return 1; }\n";
    std::fs::write(home.join(".profile"), profile).unwrap();
    std::fs::write(
        home.join(".zprofile"),
        "builtin cd /\ncd() { echo hook; return 1; }\n",
    )
    .unwrap();
    let want = format!("ran\n{}\n", t.cwd.display());
    for wrapper in ["sh -lc", "bash -lc", "zsh -lc"] {
        if !installed(wrapper.split(' ').next().unwrap()) {
            continue;
        }
        let v = t.ok(&["run", "--shell-wrapper", wrapper, "--", "echo ran; pwd"]);
        assert_eq!(
            (&v["stdout"], &v["exit_code"]),
            (&serde_json::json!(want), &serde_json::json!(0)),
            "{wrapper}: {v}"
        );
    }
}

/// A profile's alias named `builtin` (zsh expands aliases in scripts;
/// bash with expand_aliases) no longer turns the set-up into `echo`s
/// that printed it, secrets and all, into the job's output and left the
/// profile's values in place; nor does a function named `[` that always
/// succeeds keep the PATH rebuild looping for good (audit).
#[test]
fn a_profiles_builtin_alias_and_bracket_function_do_not_hijack_the_set_up() {
    let t = TempRoot::new();
    let home = t.base.join("home");
    let hijack = "alias builtin=echo
export MODE=profile
";
    std::fs::write(
        home.join(".bash_profile"),
        format!("shopt -s expand_aliases\n{hijack}[() {{ return 0; }}\n"),
    )
    .unwrap();
    std::fs::write(home.join(".zprofile"), hijack).unwrap();
    let env = t.base.join("job.env");
    std::fs::write(&env, "TOKEN=s3cret\n").unwrap();
    // The command sees --env and --env-file's values, and nothing else
    // is printed.
    let check = |wrapper: &str| {
        let v = t.ok(&[
            "run",
            "--until",
            "20",
            "--shell-wrapper",
            wrapper,
            "--env-file",
            env.to_str().unwrap(),
            "--env",
            "MODE=ci",
            "--",
            "echo \"mode=$MODE ${#TOKEN}\"",
        ]);
        assert_eq!(v["state"], "exited", "{wrapper}: {v}");
        assert_eq!(v["stdout"], "mode=ci 6\n", "{wrapper}: {v}");
    };
    for wrapper in ["bash -lc", "zsh -lc"] {
        if installed(wrapper.split(' ').next().unwrap()) {
            check(wrapper);
        }
    }
    // zsh parses what `eval` reads when it runs, aliases and all: an
    // alias named `export` printed the values.
    if installed("zsh") {
        std::fs::write(
            home.join(".zprofile"),
            "export MODE=profile\nalias export=echo\n",
        )
        .unwrap();
        check("zsh -lc");
    }
}

/// Under bash or zsh, an argv command whose first word starts with a
/// dash is that program, as under any shell: `exec -c env` ran env with
/// an emptied environment (`-c` taken as exec's option; audit).
#[test]
fn an_argv_program_with_a_leading_dash_is_not_an_option_of_exec() {
    let t = TempRoot::new();
    for wrapper in ["sh -c", "bash -c", "zsh -c"] {
        if !installed(wrapper.split(' ').next().unwrap()) {
            continue;
        }
        let v = t.ok(&["run", "--shell-wrapper", wrapper, "--", "-c", "env"]);
        assert_eq!(v["exit_code"], 127, "{wrapper}: {v}");
    }
}

/// A `--tty` job's terminal size is its own: the caller's COLUMNS and
/// LINES (which programs read before asking the terminal) are left out,
/// unless the job's own --env sets them.
#[test]
fn a_tty_job_gets_no_caller_columns_or_lines() {
    let t = TempRoot::new();
    let show = "echo \"${COLUMNS-unset} ${LINES-unset} $(stty size)\"";
    let mut c = t.cmd(&["run", "--tty", "--tty-size", "120x40", "--", show]);
    c.env("COLUMNS", "33").env("LINES", "11");
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], "unset unset 40 120\r\n", "{v}");
    let mut c = t.cmd(&["run", "--tty", "--env", "COLUMNS=50", "--", show]);
    c.env("COLUMNS", "33").env("LINES", "11");
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], "50 unset 24 80\r\n", "{v}");
    // Without a terminal, the caller's values pass as any variable does.
    let mut c = t.cmd(&["run", "--", "echo \"${COLUMNS-unset}\""]);
    c.env("COLUMNS", "33");
    assert_eq!(t.exec(c).json()["stdout"], "33\n");
}

/// Whether `program` can be run here (a test of a shell that is missing
/// says so and skips it).
fn installed(program: &str) -> bool {
    let there = std::process::Command::new(program)
        .arg("-c")
        .arg("true")
        .status()
        .is_ok();
    if !there {
        eprintln!("skipped {program}: not installed");
    }
    there
}

/// A login profile that makes a variable read-only (`readonly PATH`, a
/// hardened profile's `readonly TMOUT`) keeps its value, and the job
/// runs: the set-up's export of it failed, and dash, the usual sh, ended
/// there (exit 2, the command never ran).
#[test]
fn a_profile_that_makes_a_variable_read_only_does_not_stop_the_job() {
    let t = TempRoot::new();
    let home = t.base.join("home");
    let profile = "readonly PATH\nTMOUT=900; export TMOUT; readonly TMOUT\n";
    std::fs::write(home.join(".profile"), profile).unwrap();
    std::fs::write(home.join(".zprofile"), profile).unwrap();
    for wrapper in ["sh -lc", "bash -lc", "zsh -lc"] {
        if !installed(wrapper.split(' ').next().unwrap()) {
            continue;
        }
        let v = t.ok(&[
            "run",
            "--shell-wrapper",
            wrapper,
            "--env",
            "TMOUT=0",
            "--env",
            "OTHER=1",
            "--",
            "echo $TMOUT $OTHER",
        ]);
        assert_eq!(
            (&v["stdout"], &v["stderr"], &v["exit_code"]),
            (
                &serde_json::json!("900 1\n"),
                &serde_json::json!(""),
                &serde_json::json!(0)
            ),
            "{wrapper}: {v}"
        );
        let v = t.ok(&["run", "--shell-wrapper", wrapper, "--", "echo", "argv"]);
        assert_eq!(v["stdout"], "argv\n", "{wrapper}: {v}");
    }
}

/// Names a shell gives a meaning of its own are not assigned again after
/// the profile: zsh's UID, EUID, GID, EGID and USERNAME made it change
/// user (setuid), `IFS` changed how the command's words split, and
/// bash's read-only PPID or BASHPID wrote an error into the job's
/// output. They reach the job as without a profile.
#[test]
fn names_special_to_the_shell_are_not_assigned_again() {
    let t = TempRoot::new();
    let me = support::my_uid();
    if installed("zsh") {
        let v = t.ok(&[
            "run",
            "--shell-wrapper",
            "zsh -lc",
            "--env",
            "UID=65534",
            "--env",
            "EUID=65534",
            "--env",
            "USERNAME=daemon",
            "--env",
            "GID=65534",
            "--",
            "id",
            "-u",
        ]);
        assert_eq!(v["stdout"], format!("{me}\n"), "{v}");
    }
    let split = "x='a b'; for w in $x; do echo \"[$w]\"; done";
    for wrapper in ["sh -lc", "bash -lc"] {
        let v = t.ok(&[
            "run",
            "--shell-wrapper",
            wrapper,
            "--env",
            "IFS=:",
            "--",
            split,
        ]);
        assert_eq!(v["stdout"], "[a]\n[b]\n", "{wrapper}: {v}");
    }
    let v = t.ok(&[
        "run",
        "--shell-wrapper",
        "bash -lc",
        "--env",
        "PPID=1",
        "--env",
        "BASHPID=1",
        "--",
        "true",
    ]);
    assert_eq!(
        (&v["stderr"], &v["exit_code"]),
        (&serde_json::json!(""), &serde_json::json!(0)),
        "{v}"
    );
}

/// A command sink run by a login shell goes back to the directory of the
/// command that started the job should the profile `cd` (it ran, and
/// wrote, in the profile's directory).
#[test]
fn a_command_sink_returns_from_a_profiles_cd() {
    let t = TempRoot::new();
    std::fs::write(t.base.join("home/.profile"), "cd /\n").unwrap();
    let out = t.cwd.join("sink-pwd");
    let v = t.ok(&["run", "--notify-command", "pwd > sink-pwd", "--", "true"]);
    assert_eq!(v["state"], "exited", "{v}");
    t.settle();
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default(),
        format!("{}\n", t.cwd.display())
    );
}

/// A fish reached through `env` runs a command given as words with
/// `exec $argv`: handed `exec "$@"`, fish refused it and exited 0 (the
/// job read as a success, its command never run).
#[test]
fn fish_through_env_runs_the_words_given() {
    let t = TempRoot::new();
    if !installed("fish") {
        return;
    }
    for wrapper in ["env fish -c", "env -i A=1 fish -c", "fish -c"] {
        let v = t.ok(&[
            "run",
            "--shell-wrapper",
            wrapper,
            "--",
            "sh",
            "-c",
            "echo ran; exit 3",
        ]);
        assert_eq!(
            (&v["stdout"], &v["exit_code"]),
            (&serde_json::json!("ran\n"), &serde_json::json!(3)),
            "{wrapper}: {v}"
        );
    }
}

/// The set-up after a login profile runs whatever options, functions and
/// aliases the profile left: with `set -e` a value the shell refused
/// (read-only) ended the shell there; with `set -u` and no PATH it
/// failed on `$PATH`; bash functions (and any shell's aliases) named
/// `eval`, `export`, `unset` or `set` printed the set-up, values and
/// all, into the job's output, or left it in the job's environment. The
/// options come back for the command.
#[test]
fn the_set_up_holds_against_the_profiles_options_functions_and_aliases() {
    let t = TempRoot::new();
    let home = t.base.join("home");
    let run = |wrapper: &str, profile: &str, args: &[&str]| {
        for f in [".profile", ".bash_profile", ".zprofile"] {
            std::fs::write(home.join(f), profile).unwrap();
        }
        let mut a = vec!["run", "--shell-wrapper", wrapper];
        a.extend_from_slice(args);
        t.ok(&a)
    };
    for wrapper in ["sh -lc", "bash -lc", "zsh -lc"] {
        if !installed(wrapper.split(' ').next().unwrap()) {
            continue;
        }
        let v = run(
            wrapper,
            "readonly FOO=prof\nset -e\n",
            &[
                "--env",
                "FOO=mine",
                "--",
                "echo $FOO; case $- in *e*) echo errexit;; esac",
            ],
        );
        assert_eq!(v["stdout"], "prof\nerrexit\n", "{wrapper}: {v}");
        if wrapper != "zsh -lc" {
            let v = run(
                wrapper,
                "unset PATH\nset -u\n",
                &[
                    "--",
                    "echo ${PATH:+path}; case $- in *u*) echo nounset;; esac",
                ],
            );
            assert_eq!(v["stdout"], "path\nnounset\n", "{wrapper}: {v}");
        }
    }
    let v = run(
        "bash -lc",
        "cd /\neval() { echo EVAL; }\nexport() { echo EXPORT; }\nunset() { echo UNSET; }\nset() { echo SET; }\n",
        &["--env", "FOO=mine", "--", "echo \"$FOO\" $(pwd); env | grep -c __AGENT_EXEC || true"],
    );
    assert_eq!(v["stdout"], format!("mine {}\n0\n", t.cwd.display()), "{v}");
    let v = run(
        "sh -lc",
        "alias eval=echo unset=echo command=echo\n",
        &[
            "--env",
            "SECRET=s3cret",
            "--",
            "echo \"$SECRET\"; env | grep -c __AGENT_EXEC || true",
        ],
    );
    assert_eq!(v["stdout"], "s3cret\n0\n", "{v}");
    // The hand-off of an argv command is a special built-in too: a
    // profile's `alias exec=...` ran in its place (the job `exited` 0
    // without having run).
    for wrapper in ["sh -lc", "bash -lc", "zsh -lc"] {
        if !installed(wrapper.split(' ').next().unwrap()) {
            continue;
        }
        let profile = "alias exec='echo HIJACKED'\nexec() { echo HIJACKED; }\n";
        let profile = if wrapper == "sh -lc" {
            // dash has no function of a special built-in's name.
            "alias exec='echo HIJACKED'\n"
        } else {
            profile
        };
        let v = run(wrapper, profile, &["--", "printf", "%s\n", "real"]);
        assert_eq!(v["stdout"], "real\n", "{wrapper}: {v}");
    }
}

/// A job started from a directory reached through a symlink keeps the
/// shell's PWD (the symlink path) and its OLDPWD when the profile did
/// not move it: the set-up compared PWD with the physical path and went
/// "back", setting both.
#[test]
fn a_profile_that_does_not_move_keeps_pwd_through_a_symlink() {
    let t = TempRoot::new();
    let real = t.base.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = t.base.join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut c = t.cmd(&["run", "--", "echo \"$PWD\""]);
    c.current_dir(&link).env("PWD", &link);
    let v = t.exec(c).json();
    assert_eq!(v["stdout"], format!("{}\n", link.display()), "{v}");
}
