//! The command line and the output contract: help, version, usage errors
//! as JSON, --yaml, root precedence, id lookup and hostile ids.

mod support;

use serde_json::Value;
use support::TempRoot;

#[test]
fn version_and_help_are_human_text() {
    let t = TempRoot::new();
    for args in [&["--version"][..], &["-V"]] {
        let o = t.exec({
            let mut c = t.bare();
            c.args(args);
            c
        });
        assert_eq!(o.code, 0);
        assert_eq!(
            o.stdout,
            format!("agent-exec {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
    // A value is refused, as for every switch (it printed the version).
    for args in [&["--version=1"][..], &["--version="], &["-V=1"]] {
        let v = usage_error(&t, args);
        assert_eq!(
            v["error"]["message"], "'--version' takes no value",
            "{args:?}"
        );
    }
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "run"],
        &["run", "--help"],
        &["status", "-h"],
        // Help is answered where it is met: what follows is not judged
        // (it was a usage error).
        &["--help", "--bogus"],
        &["list", "-h", "--bogus"],
        &["run", "--help", "--timeout", "x"],
    ] {
        let o = t.exec({
            let mut c = t.bare();
            c.args(args);
            c
        });
        assert_eq!(o.code, 0, "{args:?}");
        assert!(
            o.stdout.contains("Usage: agent-exec"),
            "{args:?}: {}",
            o.stdout
        );
        assert!(!o.stdout.starts_with('{'));
    }
    let o = t.out(&["help", "run"]);
    for flag in [
        "--timeout",
        "--kill-after",
        "--until",
        "--no-wait",
        "--max-bytes",
    ] {
        assert!(o.stdout.contains(flag), "run help lacks {flag}");
    }
}

#[test]
fn help_help_is_the_help_commands_help() {
    let t = TempRoot::new();
    for args in [&["help", "help"][..], &["--root", "/x", "help", "help"]] {
        let o = t.exec({
            let mut c = t.bare();
            c.args(args);
            c
        });
        assert_eq!(o.code, 0, "{args:?}: {} / {}", o.stdout, o.stderr);
        assert!(o.stdout.contains("Usage: agent-exec help"), "{}", o.stdout);
        assert!(!o.stdout.starts_with('{'));
    }
}

fn usage_error(t: &TempRoot, args: &[&str]) -> Value {
    let o = t.exec({
        let mut c = t.bare();
        c.args(args);
        c
    });
    assert_eq!(o.code, 2, "{args:?}: {} / {}", o.stdout, o.stderr);
    let v = o.json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["schema_version"], "0.1");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["retryable"], false);
    assert!(!o.stderr.trim().is_empty(), "a human line on stderr");
    assert!(!o.stderr.lines().any(|l| l.starts_with('{')));
    v
}

#[test]
fn usage_errors_are_one_json_document_exit_2() {
    let t = TempRoot::new();
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["status"],
        &["status", "--bogus", "x"],
        &["--bogus"],
        &["run"],
        &["run", "--timeout"],
        &["run", "--stdin", "a", "--stdin-file", "b", "--", "cat"],
        &["run", "--inherit-env", "--no-inherit-env", "--", "true"],
        &["run", "--until", "1", "--forever", "--", "true"],
        &["run", "--tail-lines", "5", "--", "true"],
        &["wait", "--timeout-ms", "5", "x"],
        &["create", "--wait", "--", "true"],
        &["status", "a", "b"],
        &["--root"],
        // A variable needs a name (HTTP and MCP refuse one without).
        &["run", "--env", "=x", "--", "true"],
        &["create", "--env", "=", "--", "true"],
    ];
    for args in cases {
        let v = usage_error(&t, args);
        assert_eq!(v["error"]["code"], "usage_error", "{args:?}: {v}");
    }
    // A duration that does not parse has its own code, still exit 2.
    for bad in ["abc", "-1", "1.", "5 s"] {
        let v = usage_error(&t, &["run", "--timeout", bad, "--", "true"]);
        assert_eq!(v["error"]["code"], "invalid_duration", "{bad}: {v}");
    }
    // A number too large is said to be that, not "no integer".
    let v = usage_error(&t, &["list", "--limit", "18446744073709551616"]);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("too large"), "{m}");
    let v = usage_error(&t, &["list", "--limit", "x1"]);
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains("expected a non-negative integer"), "{m}");
}

#[test]
fn validation_errors_have_specific_codes() {
    let t = TempRoot::new();
    let v = usage_error(&t, &["run", "--tag", "bad tag!", "--", "true"]);
    assert_eq!(v["error"]["code"], "invalid_tag");
    let v = usage_error(&t, &["run", "--tag", "a.*", "--", "true"]);
    assert_eq!(v["error"]["code"], "invalid_tag");
    let v = usage_error(&t, &["kill", "--signal", "NOPE", "x"]);
    assert_eq!(v["error"]["code"], "invalid_signal");
    // A pattern or a cursor that cannot be right is refused with the
    // other arguments, before the job is looked up (D5): the same order
    // as kill's signal.
    for (args, code) in [
        (
            &["kill", "--signal", "BOGUS", "nosuch"][..],
            "invalid_signal",
        ),
        (
            &["kill", "--signal", "RTMIN+99", "nosuch"],
            "invalid_signal",
        ),
        (&["tail", "--since", "garbage", "nosuch"], "invalid_cursor"),
        (
            &["tail", "--grep", "(", "--grep-type", "regex", "nosuch"],
            "invalid_pattern",
        ),
        (
            &["tail", "--grep-type", "regex", "--grep", "(", "nosuch"],
            "invalid_pattern",
        ),
        (
            &[
                "wait",
                "--output",
                "(",
                "--output-match-type",
                "regex",
                "nosuch",
            ],
            "invalid_pattern",
        ),
        (
            &["wait", "--output", "x", "--since", "garbage", "nosuch"],
            "invalid_cursor",
        ),
        // Without --output a cursor is no wait's: the misuse is said
        // first, whatever the cursor.
        (&["wait", "--since", "garbage", "nosuch"], "usage_error"),
    ] {
        let mut a = vec!["--root", "/nonexistent/ae-root"];
        a.extend_from_slice(args);
        let v = usage_error(&t, &a);
        assert_eq!(v["error"]["code"], code, "{args:?}: {v}");
    }
    // A real cursor (of some job) without --output: wait's own usage
    // error, also before the lookup.
    let id = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cursor = t.ok(&["tail", &id])["cursor"].as_str().unwrap().to_string();
    let v = usage_error(
        &t,
        &[
            "--root",
            "/nonexistent/ae-root",
            "wait",
            "--since",
            &cursor,
            "nosuch",
        ],
    );
    assert_eq!(v["error"]["code"], "usage_error", "{v}");
    // What is fine is not refused: a plain substring is no regex, and
    // the lookup then says what is wrong.
    let (code, v) = t.err(&["tail", "--grep", "(", "nosuch"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("job_not_found")),
        "{v}"
    );
    let (code, v) = t.err(&["kill", "--signal", "sigrtmin+1", "nosuch"]);
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (1, Some("job_not_found")),
        "{v}"
    );
}

#[test]
fn a_one_value_global_flag_is_given_once_per_level() {
    let t = TempRoot::new();
    let id = "01JCCCCCCCCCCCCCCCCCCCCCCC";
    let a = t.base.join("a");
    let b = t.base.join("b");
    let tr = TempRoot {
        base: t.base.join("unused"),
        root: b.clone(),
        cwd: t.cwd.clone(),
    };
    tr.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
    std::mem::forget(tr);
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    // Twice at one level: an error, as `list --limit 1 --limit 2` is;
    // `--table` and `--yaml` too (they were taken twice).
    let o = t.out(&["--yaml", "list", "--yaml", "--yaml"]);
    assert_eq!(o.code, 2, "{}", o.stdout);
    assert!(o.stdout.contains("code: usage_error"), "{}", o.stdout);
    assert!(o.stdout.contains("'--yaml' cannot be used multiple times"));
    let ra = format!("--root={a}");
    for args in [
        &["list", "--table", "--table"][..],
        &["list", &ra, "--root", b][..],
        &["--root", a, "--root", b, "list"],
        &[&ra, "--root", b, "status", id],
        &["status", id, "--root", a, "--root", b],
        &[
            "tag", "--root", a, "set", "--root", b, "--root", a, id, "--tag", "x",
        ],
    ] {
        let v = usage_error(&t, args);
        assert_eq!(v["error"]["code"], "usage_error", "{args:?}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("cannot be used multiple times"),
            "{v}"
        );
    }
    // Once before the subcommand and once after: the subcommand's wins
    // (as in 0.2.3), whichever comes first on the line.
    let status = |args: &[&str]| {
        let mut c = t.bare();
        c.args(args);
        t.exec(c).code
    };
    assert_eq!(status(&["--root", a, "status", id, "--root", b]), 0);
    assert_eq!(status(&["--root", b, "status", id, "--root", a]), 1);
    assert_eq!(
        status(&["--root", a, "tag", "--root", b, "set", id, "--tag", "x"]),
        0
    );
    assert_eq!(
        status(&["--root", b, "tag", "--root", a, "set", id, "--tag", "x"]),
        1
    );
    assert_eq!(
        status(&["--root", a, "tag", "set", "--root", b, id, "--tag", "x"]),
        0
    );
}

#[test]
fn yaml_for_success_and_errors() {
    let t = TempRoot::new();
    let o = t.exec({
        let mut c = t.bare();
        c.args(["--yaml", "frobnicate"]);
        c
    });
    assert_eq!(o.code, 2);
    assert!(
        o.stdout
            .starts_with("schema_version: '0.1'\nok: false\ntype: error\n"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("code: usage_error"));

    let (code, _) = t.err(&["status", "NOPE"]);
    assert_eq!(code, 1);
    let o = t.out(&["status", "--yaml", "NOPE"]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("code: job_not_found"), "{}", o.stdout);

    t.fabricate(
        "01JAAAAAAAAAAAAAAAAAAAAAAA",
        "exited",
        &t.cwd,
        Some("2026-01-01T00:00:01Z"),
    );
    let o = t.out(&["--yaml", "status", "01JAAAAAAAAAAAAAAAAAAAAAAA"]);
    assert_eq!(o.code, 0);
    assert!(o.stdout.starts_with("schema_version: '0.1'\nok: true\ntype: status\njob_id: 01JAAAAAAAAAAAAAAAAAAAAAAA\nstate: exited\n"), "{}", o.stdout);
}

#[test]
fn status_reads_fabricated_job() {
    let t = TempRoot::new();
    let id = "01JBBBBBBBBBBBBBBBBBBBBBBB";
    t.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
    let v = t.ok(&["status", id]);
    t.out(&["status", id]).assert_order(&[
        "schema_version",
        "ok",
        "type",
        "job_id",
        "state",
        "exit_code",
        "created_at",
        "started_at",
        "finished_at",
    ]);
    assert_eq!(v["type"], "status");
    assert_eq!(v["state"], "exited");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(v["finished_at"], "2026-01-01T00:00:01Z");
}

#[test]
fn root_precedence() {
    let t = TempRoot::new();
    let id = "01JCCCCCCCCCCCCCCCCCCCCCCC";
    let a = t.base.join("a");
    let b = t.base.join("b");
    let xdg = t.base.join("xdg");
    let home = t.base.join("home");
    let make = |dir: &std::path::Path| {
        let tr = TempRoot {
            base: t.base.join("unused"),
            root: dir.to_path_buf(),
            cwd: t.cwd.clone(),
        };
        tr.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
        std::mem::forget(tr);
    };
    let status = |envs: &[(&str, &std::path::Path)], root: Option<&std::path::Path>| {
        let mut c = t.bare();
        for (k, v) in envs {
            c.env(k, v);
        }
        if let Some(r) = root {
            c.arg("--root").arg(r);
        }
        c.args(["status", id]);
        t.exec(c).code
    };
    // Nothing exists yet anywhere.
    assert_eq!(status(&[], None), 1);
    make(&home.join(".local/share/agent-exec/jobs"));
    assert_eq!(status(&[], None), 0, "HOME default");
    assert_eq!(
        status(&[("XDG_DATA_HOME", &xdg)], None),
        1,
        "XDG beats HOME"
    );
    make(&xdg.join("agent-exec/jobs"));
    assert_eq!(status(&[("XDG_DATA_HOME", &xdg)], None), 0);
    assert_eq!(
        status(&[("XDG_DATA_HOME", &xdg), ("AGENT_EXEC_ROOT", &a)], None),
        1,
        "env beats XDG"
    );
    make(&a);
    assert_eq!(status(&[("AGENT_EXEC_ROOT", &a)], None), 0);
    assert_eq!(
        status(&[("AGENT_EXEC_ROOT", &a)], Some(&b)),
        1,
        "--root beats env"
    );
    make(&b);
    assert_eq!(status(&[("AGENT_EXEC_ROOT", &a)], Some(&b)), 0);
    // --root after the subcommand works too.
    let mut c = t.bare();
    c.args(["status", id, "--root"]).arg(&b);
    assert_eq!(t.exec(c).code, 0);
}

/// Without HOME (unset or empty) the root is under the home the user
/// database gives, as 0.2.3's lookup has it: not under the current
/// directory, where the jobs were lost at the next `cd`.
#[test]
fn without_home_the_root_is_under_the_users_home() {
    let t = TempRoot::new();
    let uid = support::my_uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(home) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[2] == uid)
        .map(|f| f[5].to_string())
    else {
        println!("note: no /etc/passwd entry for uid {uid}; not checked");
        return;
    };
    let want = format!("{home}/.local/share/agent-exec/jobs");
    let sub = t.cwd.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    for (dir, unset) in [(&t.cwd, true), (&sub, true), (&sub, false)] {
        let mut c = t.bare();
        if unset {
            c.env_remove("HOME");
        } else {
            c.env("HOME", "");
        }
        c.current_dir(dir).args(["list"]);
        let o = t.exec(c);
        let v: Value = serde_json::from_str(&o.stdout).unwrap();
        assert_eq!(v["root"], want.as_str(), "{v}");
    }
}

/// A relative root is shown as given in the `root` field of `list`, `gc`
/// and `delete` (and meta.json), as 0.2.3 shows it: it was printed made
/// absolute. The paths of a job's files stay absolute.
#[test]
fn a_relative_root_is_shown_as_given() {
    let t = TempRoot::new();
    let run = |env: Option<&str>, args: &[&str]| -> Value {
        let mut c = t.bare();
        c.current_dir(&t.cwd).args(args);
        if let Some(v) = env {
            c.env("AGENT_EXEC_ROOT", v);
        }
        let o = t.exec(c);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stdout);
        serde_json::from_str(&o.stdout).unwrap()
    };
    let v = run(None, &["--root", "rel", "run", "--", "true"]);
    let log = v["stdout_log_path"].as_str().unwrap();
    assert!(log.starts_with(t.cwd.join("rel").to_str().unwrap()), "{v}");
    let id = v["job_id"].as_str().unwrap();
    let meta = std::fs::read_to_string(t.cwd.join("rel").join(id).join("meta.json")).unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["root"], "rel");
    for (env, root, shown) in [
        (None, Some("rel"), "rel"),
        (None, Some("./rel/"), "./rel/"),
        (Some("rel"), None, "rel"),
    ] {
        for cmd in [
            &["list"][..],
            &["gc", "--dry-run"],
            &["delete", "--all", "--dry-run"],
        ] {
            let mut args: Vec<&str> = root.map_or(vec![], |r| vec!["--root", r]);
            args.extend(cmd);
            assert_eq!(run(env, &args)["root"], shown, "{env:?} {args:?}");
        }
    }
}

#[test]
fn lookup_by_prefix_and_ambiguity() {
    let t = TempRoot::new();
    t.fabricate(
        "01JDDDDDDD0000000000000001",
        "exited",
        &t.cwd,
        Some("2026-01-01T00:00:01Z"),
    );
    t.fabricate(
        "01JDDDDDDE0000000000000002",
        "exited",
        &t.cwd,
        Some("2026-01-01T00:00:01Z"),
    );
    let v = t.ok(&["status", "01jdddddDD0000000000000001"]);
    assert_eq!(v["job_id"], "01JDDDDDDD0000000000000001");
    let v = t.ok(&["status", "01jddddddd"]);
    assert_eq!(v["job_id"], "01JDDDDDDD0000000000000001");
    let v = t.ok(&["status", "01JDDDDDDE"]);
    assert_eq!(v["job_id"], "01JDDDDDDE0000000000000002");
    let (code, v) = t.err(&["status", "01jddd"]);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["code"], "ambiguous_job_id");
    assert_eq!(v["error"]["retryable"], false);
    let c = &v["error"]["details"]["candidates"];
    assert_eq!(c[0], "01JDDDDDDD0000000000000001");
    assert_eq!(c[1], "01JDDDDDDE0000000000000002");
    assert_eq!(v["error"]["details"]["truncated"], false);
    // Named as given, as through every other door (several ids, --after).
    assert_eq!(v["error"]["details"]["job_id"], "01jddd");
    let (_, v) = t.err(&["status", "01JX"]);
    assert_eq!(v["error"]["code"], "job_not_found");
    assert_eq!(v["error"]["message"], "job not found: 01JX");
}

#[test]
fn hostile_ids_are_not_found() {
    let t = TempRoot::new();
    t.fabricate("01JEEEEEEEEEEEEEEEEEEEEEEE", "exited", &t.cwd, None);
    for bad in ["", ".", "..", "../jobs", "/tmp", "a/b", "../../etc"] {
        let (code, v) = t.err(&["status", bad]);
        assert_eq!(code, 1);
        assert_eq!(v["error"]["code"], "job_not_found", "{bad:?}");
    }
}

#[test]
fn stderr_never_carries_json() {
    let t = TempRoot::new();
    let mut c = t.cmd(&["status", "nope"]);
    c.env("RUST_LOG", "trace");
    let o = t.exec(c);
    assert!(
        !o.stderr.lines().any(|l| l.starts_with('{')),
        "{}",
        o.stderr
    );
    assert_eq!(o.json()["error"]["code"], "job_not_found");
}

#[test]
fn closed_stdout_is_quiet() {
    let t = TempRoot::new();
    let mut c = t.cmd(&["status", "nope"]);
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    drop(child.stdout.take());
    let st = child.wait().unwrap();
    assert!(st.code().is_some(), "killed by a signal instead of exiting");
}

/// /dev/full for writing: every write fails with ENOSPC.
fn dev_full() -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap()
}

#[test]
fn an_answer_that_cannot_be_written_is_a_failure() {
    // /dev/full: every write fails with ENOSPC. The job ran, but the
    // caller never got its answer, and must not read success.
    let t = TempRoot::new();
    for args in [vec!["--version"], vec!["run", "--", "true"]] {
        let mut c = t.cmd(&args);
        c.stdout(dev_full());
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("could not write the answer"),
            "{args:?}: {err}"
        );
    }
}

/// A reader gone before the answer (EPIPE) is quiet, and the exit status
/// is the command's own: an error's stays 1 (or 2), success 0. It was 0
/// whatever happened, which `set -o pipefail` read as success (audit).
#[test]
fn a_reader_gone_keeps_the_commands_exit_status() {
    let t = TempRoot::new();
    for (args, want) in [
        (vec!["status", "nope"], 1),
        (vec!["frobnicate"], 2),
        (vec!["list"], 0),
    ] {
        // A socket whose peer is closed: the first write is EPIPE.
        let (ours, peer) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(peer);
        let mut c = t.cmd(&args);
        c.stdout(std::process::Stdio::from(std::os::fd::OwnedFd::from(ours)));
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(want), "{args:?}");
    }
}

/// A follow whose writes fail for another reason than a reader gone (a
/// full disk) lost the job's output: exit 1 with the reason on stderr.
/// It exited 0 without a word, `--raw` losing the job's stderr the same
/// way; and `serve`, whose document could not be written, went on
/// listening on a port nobody could learn (audit).
#[test]
fn a_follow_or_a_server_that_cannot_write_fails() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "sh", "-c", "echo out; echo err >&2"]);
    let id = v["job_id"].as_str().unwrap();
    let mut c = t.cmd(&["tail", "--follow", id]);
    c.stdout(dev_full());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("write the follow to stdout"), "{err}");
    let mut c = t.cmd(&["tail", "--follow", "--raw", id]);
    c.stdout(std::process::Stdio::null()).stderr(dev_full());
    assert_eq!(c.output().unwrap().status.code(), Some(1));
    // `serve` ends at once (the test's own timeout would end it).
    let mut c = t.private("timeout");
    c.arg("20")
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(["serve", "--port", "0"])
        .stdout(dev_full());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("announce the server"), "{err}");
}

#[test]
fn a_root_through_a_file_is_an_io_error_that_says_so() {
    // A mistyped --root, not a planted link: io_error with the system's
    // reason, not unsafe_path.
    let t = TempRoot::new();
    std::fs::create_dir_all(&t.base).unwrap();
    let file = t.base.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    for (root, args) in [
        (file.join("jobs"), &["run", "--", "true"][..]),
        (file.clone(), &["list"][..]),
    ] {
        let mut c = t.bare();
        c.arg("--root").arg(&root).args(args);
        let out = t.exec(c);
        assert_eq!(out.code, 1, "{args:?}");
        let v = out.json();
        assert_eq!(v["error"]["code"], "io_error", "{args:?}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("Not a directory"), "{msg}");
    }
}

#[test]
fn short_switches_bundle_in_any_order() {
    // After a switch, the rest of a cluster is more short flags, as
    // getopt reads it: `-fv` is `-f -v`, not `-f` with the value "v".
    let t = TempRoot::new();
    let id = t.start_job(&["echo", "hi"]);
    t.wait_done(&id);
    for cluster in ["-fv", "-vf"] {
        let o = t.out(&["tail", cluster, &id]);
        assert_eq!(o.code, 0, "{cluster}: {} / {}", o.stdout, o.stderr);
        assert!(
            o.stdout.contains("\"type\":\"end\""),
            "{cluster}: {}",
            o.stdout
        );
    }
    let v = t.ok(&["run", "-iv", "--no-wait", "--", "cat"]);
    let job = v["job_id"].as_str().unwrap().to_string();
    t.ok(&["send", "--eof", &job, "x"]);
    assert_eq!(t.wait_done(&job)["state"], "exited");
    // `-V` leads a cluster as any switch does: `-Vv` is `-V -v` (it was
    // "'--version' takes no value").
    for cluster in ["-Vv", "-Vh", "-vVv"] {
        let o = t.out(&[cluster]);
        assert_eq!(o.code, 0, "{cluster}: {} / {}", o.stdout, o.stderr);
        assert!(
            o.stdout.starts_with("agent-exec "),
            "{cluster}: {}",
            o.stdout
        );
    }
    // What else follows `-V` is named as in any cluster.
    let (code, e) = t.err(&["-Vx"]);
    assert_eq!(code, 2);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("'-x'"),
        "{e}"
    );
    // A '-' inside a cluster is named as what it is, not as a flag '--'.
    let (code, e) = t.err(&["tail", "-f-", &id]);
    assert_eq!(code, 2);
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("inside a cluster") && !msg.contains("'--'"),
        "{e}"
    );
    // A switch twice in one cluster is a switch given twice.
    let (code, e) = t.err(&["tail", "-ff", &id]);
    assert_eq!(code, 2);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("multiple times"),
        "{e}"
    );
}

#[test]
fn forever_refuses_no_wait_and_integers_refuse_surrounding_space() {
    let t = TempRoot::new();
    // --no-wait and --wait false are --until 0, which --forever
    // contradicts, as it does --until itself.
    for (args, flag) in [
        (
            &["run", "--forever", "--no-wait", "--", "true"][..],
            "--no-wait",
        ),
        (
            &["run", "--wait", "false", "--forever", "--", "true"],
            "--wait false",
        ),
        (
            &["run", "--forever", "--wait=false", "--", "true"],
            "--wait false",
        ),
        (
            &["start", "--no-wait", "--forever", "01NOSUCHJOB"],
            "--no-wait",
        ),
        (
            &["restart", "--forever", "--no-wait", "01NOSUCHJOB"],
            "--no-wait",
        ),
    ] {
        let v = usage_error(&t, args);
        assert_eq!(v["error"]["code"], "usage_error", "{args:?}: {v}");
        assert_eq!(
            v["error"]["message"],
            format!("the argument '{flag}' cannot be used with '--forever'"),
            "{args:?}"
        );
    }
    let v = usage_error(&t, &["run", "--forever", "--until", "0", "--", "true"]);
    assert_eq!(
        v["error"]["message"],
        "the argument '--until' cannot be used with '--forever'"
    );
    // `--no-wait` overrides `--until` and `--wait`, as 0.2.3's did (the
    // reference); only `--forever` contradicts it.
    for args in [
        &["run", "--no-wait", "--until", "5", "--", "sleep 2"][..],
        &["run", "--no-wait", "--wait", "true", "--", "sleep 2"],
        &["run", "--no-wait", "--wait", "false", "--", "sleep 2"],
    ] {
        let v = t.ok(args);
        assert_eq!(v["state"], "running", "{args:?}: {v}");
        assert_eq!(v["waited_ms"], 0, "{args:?}: {v}");
    }
    // Waiting stays compatible with --forever.
    let v = t.ok(&["run", "--wait", "true", "--forever", "--", "true"]);
    assert_eq!(v["state"], "exited");
    // Integers refuse surrounding whitespace (durations trim it: gc.rs).
    let v = usage_error(&t, &["list", "--limit", " 5"]);
    assert_eq!(v["error"]["code"], "usage_error", "{v}");
}

/// A boolean reads the same on every door: true or false in any case, 1
/// or 0. The command line took `--wait=TRUE` and not `--wait=1`; HTTP and
/// MCP the other way round.
#[test]
fn booleans_read_alike_on_every_door() {
    let t = TempRoot::new();
    // The job of an answer that does not wait must outlive that answer:
    // `true` could end first, and did on a busy machine.
    for (v, waits) in [("1", true), ("0", false), ("TRUE", true), ("False", false)] {
        let cmd = if waits { "true" } else { "sleep 60" };
        let r = t.ok(&["run", &format!("--wait={v}"), "--", cmd]);
        let state = if waits { "exited" } else { "running" };
        assert_eq!(r["state"], state, "--wait={v}: {r}");
        if !waits {
            let id = r["job_id"].as_str().unwrap();
            t.ok(&["kill", "--signal", "KILL", id]);
        }
    }
    let v = usage_error(&t, &["run", "--wait=yes", "--", "true"]);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("true or false"),
        "{v}"
    );
}

/// A `tail` flag of another mode than the one asked is refused, as
/// `--retry-delay` without `--retry` is: it was accepted and did nothing
/// (`--until` without `--follow` stops nothing).
#[test]
fn flags_of_another_mode_are_refused() {
    let t = TempRoot::new();
    for (args, msg) in [
        (
            &["tail", "--until", "1", "01NOSUCHJOB"][..],
            "--until needs --follow",
        ),
        (
            &["tail", "--grep-type", "regex", "01NOSUCHJOB"],
            "--grep-type needs --grep",
        ),
        (
            &["tail", "--output-stream", "stderr", "01NOSUCHJOB"],
            "--output-stream needs --grep",
        ),
        // A readiness wait's match type and stream choose nothing
        // without its pattern (they were accepted and ignored).
        (
            &["wait", "--output-match-type", "regex", "01NOSUCHJOB"],
            "--output-match-type needs --output",
        ),
        (
            &["wait", "--output-stream", "stderr", "01NOSUCHJOB"],
            "--output-stream needs --output",
        ),
        // Before the cursor is read: not invalid_cursor for a bad one.
        (
            &["wait", "--since", "garbage", "01NOSUCHJOB"],
            "--since needs --output",
        ),
    ] {
        let v = usage_error(&t, args);
        assert_eq!(v["error"]["message"], msg, "{args:?}: {v}");
    }
    // An empty `run --output-pattern` is no output-match, as in 0.2.3
    // (the reference), not an error.
    t.ok(&["run", "--output-pattern", "", "--", "true"]);
    // Each with its mode is fine (the job does not exist: that is all).
    for args in [
        &["tail", "--follow", "--until", "1", "01NOSUCHJOB"][..],
        &["tail", "--raw", "--until", "1", "01NOSUCHJOB"],
        &[
            "tail",
            "--grep",
            "x",
            "--grep-type",
            "regex",
            "--output-stream",
            "stderr",
            "01NOSUCHJOB",
        ],
        &[
            "wait",
            "--output",
            "x",
            "--output-match-type",
            "regex",
            "--output-stream",
            "stderr",
            "01NOSUCHJOB",
        ],
    ] {
        let (_, e) = t.err(args);
        assert_eq!(e["error"]["code"], "job_not_found", "{args:?}: {e}");
    }
}

/// `--shell-wrapper` takes one argument, the program and its flags in
/// one string: help and the man pages show its value quoted, so that it
/// does not read as two arguments (`--shell-wrapper bash -lc` is a
/// usage_error).
#[test]
fn the_shell_wrapper_value_reads_as_one_argument() {
    let t = TempRoot::new();
    for sub in ["run", "create"] {
        let o = t.exec({
            let mut c = t.bare();
            c.args([sub, "--help"]);
            c
        });
        assert!(
            o.stdout.contains("--shell-wrapper <'PROG FLAGS'>"),
            "{sub}: {}",
            o.stdout
        );
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("man/agent-exec-{sub}.1")),
        )
        .unwrap();
        assert!(page.contains("\\fI'PROG FLAGS'\\fR"), "{sub}: {page}");
    }
    let (code, e) = t.err(&["run", "--shell-wrapper", "bash", "-lc", "--", "true"]);
    assert_eq!(
        (code, &e["error"]["code"]),
        (2, &"usage_error".into()),
        "{e}"
    );
}

/// Out of descriptors when it reads the default config (which does not
/// exist): `io_error`, retryable, as any read then; it was
/// `invalid_config`, not retryable, about a file that is not there. Only
/// a binary that starts with three descriptors can get that far (the
/// static product; `make test-static`): a dynamically linked one fails
/// in its loader first, and has nothing to show here.
#[test]
fn out_of_descriptors_at_the_config_is_io_error() {
    let t = TempRoot::new();
    let mut c = t.private("sh");
    c.arg("-c")
        .arg("ulimit -n 3; exec \"$0\" \"$@\"")
        .arg(support::bin())
        .arg("--root")
        .arg(&t.root)
        .args(["run", "--", "true"]);
    let o = t.exec(c);
    if o.stdout.is_empty() {
        eprintln!(
            "note: the binary does not start with 3 descriptors (dynamic link): {}",
            o.stderr
        );
        return;
    }
    let v = o.json();
    assert_eq!(v["error"]["code"], "io_error", "{v}");
    assert_eq!(v["error"]["retryable"], true, "{v}");
}
