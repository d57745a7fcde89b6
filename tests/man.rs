//! The man pages under man/: generated from the flag table, committed,
//! and kept in step with it. Also: they render, and neither groff nor
//! mandoc has anything to warn about.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{objects, TempRoot};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("man")
}

fn have(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn page_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    v.sort();
    v
}

/// Visible subcommands, from the top-level help.
fn subcommands(t: &TempRoot) -> Vec<String> {
    let o = t.bare().arg("--help").output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let l = l.trim_start();
            let end = l.find("  ")?;
            Some(l[..end].to_string())
        })
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn committed_pages_match_the_generator() {
    let t = TempRoot::new();
    let out = t.base.join("man");
    let v = t.ok(&["_gen-man", out.to_str().unwrap()]);
    let files: Vec<&str> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(files[0], "agent-exec.1");
    let fresh = page_names(&out);
    assert_eq!(
        fresh,
        page_names(&committed()),
        "the set of pages changed: run `make man` and commit man/"
    );
    for name in fresh {
        let new = std::fs::read_to_string(out.join(&name)).unwrap();
        let old = std::fs::read_to_string(committed().join(&name)).unwrap();
        assert!(
            new == old,
            "man/{name} is stale: run `make man` and commit the result"
        );
    }
}

/// The section `name` of a generated page, up to the next section.
fn section<'a>(page: &'a str, name: &str) -> &'a str {
    let head = format!(".SH \"{name}\"\n");
    let start = page
        .find(&head)
        .map(|i| i + head.len())
        .unwrap_or(page.len());
    let len = page[start..].find("\n.SH ").unwrap_or(page.len() - start);
    &page[start..start + len]
}

/// Runs of eight words that two paragraphs of `text` both hold: the
/// mark of one thing said twice in other words.
fn repeated_runs(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashMap::new();
    let mut twice = Vec::new();
    for (i, para) in text.split("\n.PP\n").enumerate() {
        let words: Vec<String> = para
            .replace("\\-", "-")
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect();
        for run in words.windows(8) {
            let run = run.join(" ");
            if *seen.entry(run.clone()).or_insert(i) != i {
                twice.push(run);
            }
        }
    }
    twice
}

#[test]
fn descriptions_say_it_once_and_synopses_mark_several_ids() {
    let t = TempRoot::new();
    let out = t.base.join("man");
    t.ok(&["_gen-man", out.to_str().unwrap()]);
    let page = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    for name in ["agent-exec-notify-set.1", "agent-exec-completions.1"] {
        let twice = repeated_runs(section(&page(name), "DESCRIPTION"));
        assert!(twice.is_empty(), "{name} says this twice: {twice:?}");
    }
    let delete = page("agent-exec-delete.1");
    assert!(
        section(&delete, "SYNOPSIS").contains("[\\fIJOB_ID\\fR...]"),
        "{delete}"
    );
    let wait = page("agent-exec-wait.1");
    assert!(
        section(&wait, "SYNOPSIS").contains("\\fIJOB_ID\\fR..."),
        "{wait}"
    );
}

#[test]
fn one_page_per_subcommand_with_every_flag() {
    let t = TempRoot::new();
    let cmds = subcommands(&t);
    assert!(cmds.len() > 10, "{cmds:?}");
    for c in &cmds {
        let page = committed().join(format!("agent-exec-{}.1", c.replace(' ', "-")));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|_| panic!("no page {} for '{c}'", page.display()));
        let mut help = t.bare();
        help.arg("help").args(c.split(' '));
        let help = String::from_utf8(help.output().unwrap().stdout).unwrap();
        let flags: Vec<&str> = help
            .lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with('-'))
            .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
            .map(|w| w.trim_end_matches(','))
            .collect();
        assert!(!flags.is_empty(), "no flags parsed for {c}");
        for f in flags {
            let escaped = f.replace('-', "\\-");
            assert!(
                text.contains(&format!("\\fB{escaped}\\fR")),
                "{} does not document {f}",
                page.display()
            );
        }
        let main = std::fs::read_to_string(committed().join("agent-exec.1")).unwrap();
        assert!(
            main.contains(&format!("agent-exec-{}", c.replace(' ', "-")).replace('-', "\\-")),
            "agent-exec.1 does not point to the page of {c}"
        );
    }
}

#[test]
fn main_page_covers_the_contract() {
    let main = std::fs::read_to_string(committed().join("agent-exec.1")).unwrap();
    for needle in [
        "OUTPUT CONTRACT",
        "ERROR CODES",
        "EXIT STATUS",
        "ENVIRONMENT",
        "FILES",
        "schema_version",
        "retryable",
        "job_not_found",
        "ambiguous_job_id",
        "usage_error",
        "AGENT_EXEC_ROOT",
        "XDG_DATA_HOME",
        "./.agent-exec/jobs",
        "full.log",
        "[STDOUT]",
        "env_file_unreadable",
        "launch_lost",
        "supervisor_lost",
        "output_lost",
        "unsafe_path",
        "details.job_id",
        "1.5s",
        "XDG_CONFIG_HOME",
        "RUST_LOG",
        "AGENT_EXEC_SERVE_TOKEN",
        "AGENT_EXEC_EVENT_PATH",
        "meta.json",
        "notification_events.ndjson",
        "[gc]",
        "regex-lite",
    ] {
        let n = needle.replace('-', "\\-");
        assert!(main.contains(&n), "agent-exec.1 lacks {needle}");
    }
}

#[test]
fn pages_name_their_specific_environment() {
    for (page, needles) in [
        ("agent-exec-serve.1", &["AGENT_EXEC_SERVE_TOKEN"][..]),
        (
            "agent-exec-run.1",
            &["JOB ENVIRONMENT", "--env-file", "env.json", "full.log"],
        ),
        (
            "agent-exec-create.1",
            &["JOB ENVIRONMENT", "--no-inherit-env"],
        ),
        ("agent-exec-completions.1", &["powershell"]),
        ("agent-exec-delete.1", &["in_use", "pid_alive"]),
        ("agent-exec-gc.1", &["in_use", "meta.json"]),
    ] {
        let text = std::fs::read_to_string(committed().join(page)).unwrap();
        let env = text
            .split(".SH \"ENVIRONMENT\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{page} has no ENVIRONMENT section"));
        assert!(
            env.contains("AGENT_EXEC_ROOT"),
            "{page}: ENVIRONMENT lacks AGENT_EXEC_ROOT"
        );
        for n in needles {
            let n = n.replace('-', "\\-");
            assert!(text.contains(&n), "{page} lacks {n}");
        }
    }
    let serve = std::fs::read_to_string(committed().join("agent-exec-serve.1")).unwrap();
    let env = serve.split(".SH \"ENVIRONMENT\"").nth(1).unwrap();
    assert!(env.contains("AGENT_EXEC_SERVE_TOKEN"));
}

/// Cross-references read `agent-exec-run(1)`, never `agent-exec-run (1)`.
#[test]
fn see_also_has_no_space_before_the_section() {
    for name in page_names(&committed()) {
        let text = std::fs::read_to_string(committed().join(&name)).unwrap();
        assert!(!text.contains(" (1)"), "{name}: a space before (1)");
        let see = text
            .split(".SH \"SEE ALSO\"")
            .nth(1)
            .unwrap_or_else(|| panic!("{name}: no SEE ALSO"));
        assert!(see.contains("\\fR(1)"), "{name}: {see}");
    }
}

/// `mandoc -Tlint` finds nothing to report, style messages (a source
/// line over 80 bytes) included. Skipped, with a note, when mandoc is
/// not installed; CI installs it.
#[test]
fn mandoc_lint_is_clean() {
    if !have("mandoc", "-V") {
        println!("note: mandoc not installed; man pages not linted by mandoc");
        return;
    }
    let mut problems = String::new();
    for name in page_names(&committed()) {
        let o = Command::new("mandoc")
            .arg("-Tlint")
            .arg(committed().join(&name))
            .output()
            .unwrap();
        let msgs = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        if !o.status.success() || !msgs.trim().is_empty() {
            problems.push_str(&format!("{name} ({}):\n{msgs}", o.status));
        }
    }
    assert!(problems.is_empty(), "mandoc -Tlint:\n{problems}");
}

#[test]
fn groff_reports_no_warnings() {
    if !have("groff", "--version") {
        println!("note: groff not installed; man pages not linted");
        return;
    }
    // As groff lays pages out by default, and as `man -l` does at a
    // terminal's width (80 columns, and a narrow 62): a line holding a
    // long path that could not be justified there warned on every page.
    for args in [&[][..], &["-Tutf8", "-rLL=78n"], &["-Tutf8", "-rLL=60n"]] {
        for name in page_names(&committed()) {
            let o = Command::new("groff")
                .args(["-man", "-ww", "-z"])
                .args(args)
                .arg(committed().join(&name))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() && err.trim().is_empty(),
                "{name} {args:?}: {err}"
            );
        }
    }
}

#[test]
fn man_renders_every_page() {
    if !have("man", "--version") {
        println!("note: man not installed; rendering not checked");
        return;
    }
    for name in page_names(&committed()) {
        let o = Command::new("man")
            .arg("-l")
            .arg(committed().join(&name))
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.trim().is_empty(), "{name}: {err}");
        assert!(
            text.contains("NAME") && text.contains("SEE ALSO"),
            "{name}: {text}"
        );
    }
}

#[test]
fn every_field_run_wait_and_send_emit_is_on_their_pages() {
    let t = TempRoot::new();
    // The OUTPUT section only: a field named in the description's prose
    // is not described.
    let page = |name: &str| {
        let text = std::fs::read_to_string(committed().join(format!("agent-exec-{name}.1")))
            .unwrap()
            .replace("\\-", "-")
            .replace("\\(", "(");
        let from = text.find(".SH \"OUTPUT\"").expect("an OUTPUT section");
        let rest = &text[from + 1..];
        let to = rest.find("\n.SH ").map_or(rest.len(), |i| i);
        rest[..to].to_string()
    };
    let o = t
        .cmd(&["run", "--max-bytes", "10", "--", "seq", "1000"])
        .output()
        .unwrap();
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = run["job_id"].as_str().unwrap().to_string();
    let o = t.cmd(&["wait", "--max-bytes", "10", &id]).output().unwrap();
    let wait: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cat = t.ok(&["run", "--no-wait", "-i", "--", "cat"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = t.cmd(&["send", "--eof", &cat, "x"]).output().unwrap();
    let send: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(send["ok"], true, "{send}");
    for (name, doc) in [
        ("run", &run),
        ("start", &run),
        ("wait", &wait),
        ("send", &send),
    ] {
        let text = page(name);
        for k in doc.as_object().unwrap().keys() {
            if ["schema_version", "ok", "type"].contains(&k.as_str()) {
                continue;
            }
            assert!(text.contains(k.as_str()), "{name}.1 does not describe {k}");
        }
    }
}

/// The field names a generated page's OUTPUT section lists, one group
/// per tag (`stdout, stderr` and `a? / b?` are one place in the order);
/// with `entries`, those listed for each entry of `jobs` instead.
fn listed(page: &str, entries: bool) -> Vec<Vec<String>> {
    let out = section(page, "OUTPUT");
    let (top, rows) = out.split_once("Each entry of").unwrap_or((out, ""));
    let part = if entries { rows } else { top };
    let lines: Vec<&str> = part.lines().collect();
    lines
        .windows(2)
        .filter(|w| w[0] == ".TP")
        .map(|w| {
            w[1].replace("\\fB", "")
                .replace("\\fR", "")
                .replace("\\-", "-")
                .split([',', '/'])
                .map(|n| n.trim().trim_end_matches('?').to_string())
                .collect()
        })
        .collect()
}

/// `keys` (a document's, past its envelope) are all on the page, in the
/// page's order.
fn in_page_order(name: &str, groups: &[Vec<String>], keys: &[String], doc: &str) {
    let mut last = 0;
    let mut prev = "(start)";
    for k in keys {
        if ["schema_version", "ok", "type"].contains(&k.as_str()) {
            continue;
        }
        let at = groups
            .iter()
            .position(|g| g.contains(k))
            .unwrap_or_else(|| panic!("{name} does not list {k}, which this holds: {doc}"));
        assert!(
            at >= last,
            "{name} lists {k} before {prev}; the binary writes it after: {doc}"
        );
        last = at;
        prev = k;
    }
}

/// "then these fields in this order" is the binary's order, for every
/// kind of answer: finished, killed, failed, cut short with a tail,
/// matched, rerun, queued and waiting on another job.
#[test]
fn output_sections_list_fields_in_the_binarys_order() {
    let t = TempRoot::new();
    let out = t.base.join("man");
    t.ok(&["_gen-man", out.to_str().unwrap()]);
    let page =
        |name: &str| std::fs::read_to_string(out.join(format!("agent-exec-{name}.1"))).unwrap();
    let id = |doc: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(doc).unwrap();
        v["job_id"].as_str().unwrap().to_string()
    };
    let raw = |args: &[&str]| -> String {
        let o = t.out(args);
        assert!(o.stdout.contains("\"ok\":true"), "{args:?}: {}", o.stdout);
        o.stdout
    };

    let mut answers: Vec<(&str, String)> = Vec::new();
    let done = raw(&["run", "--", "echo", "hi"]);
    let j = id(&done);
    answers.push(("run", done));
    let long = raw(&["run", "--max-bytes", "10", "--", "seq", "1000"]);
    let l = id(&long);
    answers.push(("run", long));
    let killed = raw(&["run", "--timeout", "0.1", "--", "sleep", "30"]);
    let k = id(&killed);
    answers.push(("run", killed));
    let failed = raw(&["run", "--cwd", "/nonexistent/dir", "--", "true"]);
    let f = id(&failed);
    answers.push(("run", failed));
    answers.push((
        "run",
        raw(&["run", "--env", "S=1", "--mask", "S", "--", "true"]),
    ));
    let rerun = raw(&["run", "--retry", "1", "--", "false"]);
    let r = id(&rerun);
    answers.push(("run", rerun));
    let tty = raw(&["run", "--tty", "--", "echo", "hi"]);
    let tt = id(&tty);
    answers.push(("run", tty));
    let interactive = id(&raw(&["run", "-i", "--", "true"]));
    answers.push(("create", raw(&["create", "--tty", "--", "true"])));
    let created = raw(&["create", "--", "echo", "hi"]);
    answers.push(("start", raw(&["start", &id(&created)])));
    // A queue held by a job that sleeps, and one job in line behind it,
    // and another waiting for that one.
    let holder = id(&raw(&[
        "run",
        "--no-wait",
        "--queue",
        "q",
        "--parallel",
        "1",
        "--",
        "sleep",
        "30",
    ]));
    let queued = raw(&["run", "--no-wait", "--queue", "q", "--", "true"]);
    let q = id(&queued);
    answers.push(("run", queued));
    let after = raw(&["run", "--no-wait", "--after", &q, "--", "true"]);
    let a = id(&after);
    answers.push(("run", after));

    for job in [&j, &k, &f, &r, &q, &a, &tt, &interactive] {
        answers.push(("status", raw(&["status", job])));
    }
    for job in [&j, &l, &k, &f, &r] {
        answers.push(("wait", raw(&["wait", "--max-bytes", "10", job])));
    }
    answers.push(("wait", raw(&["wait", "--output", "hi", &j])));
    answers.push(("wait", raw(&["wait", "--until", "0", &q])));
    answers.push(("wait", raw(&["wait", "--until", "0", &a])));
    answers.push(("tail", raw(&["tail", &j])));
    answers.push(("tail", raw(&["tail", "--grep", "hi", &j])));

    for (name, doc) in &answers {
        let objs = objects(doc);
        in_page_order(
            &format!("{name}(1)"),
            &listed(&page(name), false),
            &objs[0].1,
            doc,
        );
    }
    let list = raw(&["list", "--all"]);
    let rows = listed(&page("list"), true);
    for (_, keys) in objects(&list).iter().filter(|(depth, _)| *depth == 3) {
        in_page_order("list(1)'s entries", &rows, keys, &list);
    }
    let ps = raw(&["ps", "--all"]);
    for (_, keys) in objects(&ps).iter().filter(|(depth, _)| *depth == 3) {
        in_page_order("ps(1)'s entries", &listed(&page("ps"), true), keys, &ps);
    }
    for job in [&holder, &q, &a] {
        let _ = t.out(&["kill", job]);
    }
    t.wait_done(&holder);
}

/// The body of the `.TP` entry tagged `\fBtag\fR` in `text`.
/// The body of the tagged paragraph `tag` in `text`: its source lines
/// (broken at 78 bytes) up to the next macro, joined by spaces.
fn entry(text: &str, tag: &str) -> String {
    let head = format!(".TP\n\\fB{}\\fR\n", tag.replace('-', "\\-"));
    let at = text
        .find(&head)
        .unwrap_or_else(|| panic!("no entry {tag} in {text}"))
        + head.len();
    text[at..]
        .lines()
        .take_while(|l| !l.starts_with('.'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the pages say about states, --mask, serve's stop, error codes
/// and the config file is what the binary does.
#[test]
fn pages_say_what_the_binary_does() {
    let t = TempRoot::new();
    let out = t.base.join("man");
    t.ok(&["_gen-man", out.to_str().unwrap()]);
    let page = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();

    // A queued job answers state queued; every page that lists the
    // states of a job's answer names it.
    for name in ["run", "start", "status"] {
        let p = page(&format!("agent-exec-{name}.1"));
        let state = entry(section(&p, "OUTPUT"), "state");
        assert!(state.contains("queued"), "{name}(1)'s state: {state}");
    }

    // meta.json holds no --env values, masked or not.
    for cmd in ["run", "create"] {
        let o = t.bare().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8(o.stdout).unwrap();
        let mask = help
            .lines()
            .find(|l| l.trim_start().starts_with("--mask"))
            .unwrap_or_else(|| panic!("{cmd} --help has no --mask: {help}"));
        assert!(
            !mask.contains("meta.json") && mask.contains("env_vars"),
            "{cmd} --help: {mask}"
        );
    }

    // serve stops at once; it does not also claim a 2 s grace for every
    // request in flight.
    let serve = page("agent-exec-serve.1").replace('\n', " ");
    assert!(
        !serve.contains("give requests in flight up to 2 s"),
        "serve(1) contradicts itself on SIGTERM"
    );
    let main = page("agent-exec.1");
    let codes = section(&main, "ERROR CODES");
    assert!(
        entry(codes, "unavailable").contains("shutting down"),
        "{codes}"
    );

    // A damaged job record is io_error, not internal_error.
    let id = t.ok(&["run", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(t.job_dir(&id).join("state.json"), "garbage\n").unwrap();
    let (_, e) = t.err(&["status", &id]);
    assert_eq!(e["error"]["code"], "io_error", "{e}");
    assert!(
        entry(codes, "io_error").contains("damaged job record"),
        "{codes}"
    );
    assert!(
        !entry(codes, "internal_error").contains("job file"),
        "{codes}"
    );

    // The config tables the binary reads are all in FILES.
    let files = section(&main, "FILES");
    for table in [
        "[shell]",
        "[gc]",
        "[notify]",
        "[restart]",
        "[queue.",
        "[log]",
    ] {
        assert!(files.contains(table), "FILES lacks {table}");
    }
}
