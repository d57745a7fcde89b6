//! install-skills: the embedded skill files, the base directories of
//! --claude/--global, and the .skill-lock.json merge rules.

mod support;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::TempRoot;

const FILES: &[&str] = &[
    "SKILL.md",
    "references/cli-contract.md",
    "references/completion-events.md",
    "references/integration-guide.md",
];

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn lock(base: &Path) -> (String, Value) {
    let text = read(&base.join(".skill-lock.json"));
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// The names of the lock's entries, in order.
fn skill_names(v: &Value) -> Vec<&str> {
    v["skills"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

fn home(t: &TempRoot) -> PathBuf {
    t.base.join("home")
}

#[test]
fn fresh_install_writes_the_skill_and_the_lock() {
    let t = TempRoot::new();
    let o = t.out(&["install-skills"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    o.assert_order(&[
        "schema_version",
        "ok",
        "type",
        "skills",
        "global",
        "lock_file_path",
    ]);
    let v = o.json();
    let base = t.cwd.join(".agents");
    let dir = base.join("skills/agent-exec");
    assert_eq!(v["type"], "install_skills");
    assert_eq!(v["global"], false);
    assert_eq!(
        v["lock_file_path"],
        base.join(".skill-lock.json").to_str().unwrap()
    );
    let skills = v["skills"].as_array().unwrap();
    assert_eq!(skills.len(), 1);
    assert_eq!(skills[0]["name"], "agent-exec");
    assert_eq!(skills[0]["source_type"], "embedded");
    assert_eq!(skills[0]["path"], dir.to_str().unwrap());
    assert!(o
        .stdout
        .contains(r#""skills":[{"name":"agent-exec","source_type":"embedded","path":"#));
    for f in FILES {
        let text = read(&dir.join(f));
        assert!(text.len() > 200, "{f} is too short");
        assert!(!text.contains("COMPLETE="), "{f} describes another CLI");
    }
    let skill = read(&dir.join("SKILL.md"));
    assert!(skill.starts_with("---\nname: agent-exec\ndescription: "));
    let (text, lock) = lock(&base);
    assert!(!text.ends_with('\n'), "no trailing newline");
    assert!(text.starts_with("{\n  \"skills\": [\n    {\n      \"name\": \"agent-exec\",\n"));
    let order = [
        "\"name\"",
        "\"source_type\"",
        "\"installed_at\"",
        "\"path\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{text}");
    let e = &lock["skills"][0];
    assert_eq!(e["source_type"], "embedded");
    assert_eq!(e["path"], dir.to_str().unwrap());
    let at = e["installed_at"].as_str().unwrap();
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    // No temp files left behind.
    let stray: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(stray.is_empty());
}

#[test]
fn reinstall_replaces_in_place_and_keeps_other_entries() {
    let t = TempRoot::new();
    let base = t.cwd.join(".agents");
    std::fs::create_dir_all(&base).unwrap();
    let before = r#"{
  "skills": [
    {"name": "first", "source_type": "git", "installed_at": "2020-01-01T00:00:00Z", "path": "/x/first"},
    {"name": "agent-exec", "source_type": "embedded", "installed_at": "2000-01-01T00:00:00Z", "path": "/old"},
    {"name": "last", "source_type": "local", "installed_at": "2021-01-01T00:00:00Z", "path": "/x/last"}
  ]
}"#;
    std::fs::write(base.join(".skill-lock.json"), before).unwrap();
    // A stale file of ours is overwritten.
    std::fs::create_dir_all(base.join("skills/agent-exec")).unwrap();
    std::fs::write(base.join("skills/agent-exec/SKILL.md"), "old").unwrap();
    t.ok(&["install-skills"]);
    let (_, v) = lock(&base);
    let names = skill_names(&v);
    assert_eq!(names, ["first", "agent-exec", "last"]);
    assert_eq!(v["skills"][0]["path"], "/x/first");
    assert_eq!(v["skills"][2]["installed_at"], "2021-01-01T00:00:00Z");
    assert_ne!(v["skills"][1]["installed_at"], "2000-01-01T00:00:00Z");
    assert_ne!(read(&base.join("skills/agent-exec/SKILL.md")), "old");
    // Twice more: still one entry of ours.
    t.ok(&["install-skills"]);
    let (_, v) = lock(&base);
    assert_eq!(v["skills"].as_array().unwrap().len(), 3);
}

#[test]
fn claude_and_global_choose_the_base() {
    let t = TempRoot::new();
    let cases = [
        (
            &["install-skills", "--claude"][..],
            t.cwd.join(".claude"),
            false,
        ),
        (
            &["install-skills", "--global"][..],
            home(&t).join(".agents"),
            true,
        ),
        (
            &["install-skills", "--global", "--claude"][..],
            home(&t).join(".claude"),
            true,
        ),
    ];
    for (args, base, global) in cases {
        let v = t.ok(args);
        assert_eq!(v["global"], global, "{args:?}");
        assert_eq!(
            v["lock_file_path"],
            base.join(".skill-lock.json").to_str().unwrap()
        );
        assert_eq!(
            v["skills"][0]["path"],
            base.join("skills/agent-exec").to_str().unwrap()
        );
        assert!(base
            .join("skills/agent-exec/references/cli-contract.md")
            .is_file());
    }
    assert!(!t.cwd.join(".agents").exists());
}

#[test]
fn legacy_map_form_is_converted() {
    let t = TempRoot::new();
    let base = t.cwd.join(".agents");
    std::fs::create_dir_all(&base).unwrap();
    let legacy = r#"{"skills": {
        "other": {"name": "ignored", "source_type": "git", "installed_at": "2020-01-01T00:00:00Z", "path": "/o"},
        "agent-exec": {"source_type": "embedded", "installed_at": "2000-01-01T00:00:00Z", "path": "/old"}
    }}"#;
    std::fs::write(base.join(".skill-lock.json"), legacy).unwrap();
    t.ok(&["install-skills"]);
    let (text, v) = lock(&base);
    let skills = v["skills"].as_array().expect("array form after install");
    assert_eq!(skills.len(), 2, "{text}");
    let other = skills.iter().find(|e| e["path"] == "/o").unwrap();
    assert_eq!(other["name"], "other", "the map key is the name");
    assert_eq!(other["source_type"], "git");
    let ours: Vec<_> = skills
        .iter()
        .filter(|e| e["name"] == "agent-exec")
        .collect();
    assert_eq!(ours.len(), 1);
    assert_ne!(ours[0]["path"], "/old");
}

#[test]
fn legacy_map_entries_that_are_not_whole_are_dropped() {
    let t = TempRoot::new();
    let base = t.cwd.join(".agents");
    std::fs::create_dir_all(&base).unwrap();
    let legacy = r#"{"skills": {
        "foo": {"source_type": "x", "installed_at": "t", "path": "/f"},
        "bar": {"source_type": "x"},
        "baz": {"source_type": "x", "installed_at": "t", "path": 3}
    }}"#;
    std::fs::write(base.join(".skill-lock.json"), legacy).unwrap();
    t.ok(&["install-skills"]);
    let (text, v) = lock(&base);
    let names = skill_names(&v);
    assert_eq!(names, ["foo", "agent-exec"], "{text}");
}

/// A lock file that cannot be parsed is treated as empty (as 0.2.3 and
/// its reference say): the skill is installed and a valid lock written,
/// with a warning on stderr.
#[test]
fn an_unparsable_lock_file_is_treated_as_empty() {
    for junk in ["garbage\n", "{ not json", "[1, 2]", r#"{"skills": 3}"#] {
        let t = TempRoot::new();
        let base = t.cwd.join(".claude");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join(".skill-lock.json"), junk).unwrap();
        let o = t.out(&["install-skills", "--claude"]);
        let v = o.json();
        assert_eq!((o.code, &v["ok"]), (0, &Value::Bool(true)), "{junk:?}: {v}");
        assert!(o.stderr.contains("WARN"), "{junk:?}: {}", o.stderr);
        let (_, lock) = lock(&base);
        assert_eq!(skill_names(&lock), ["agent-exec"], "{junk:?}");
        assert!(base.join("skills/agent-exec/SKILL.md").is_file());
    }
}

/// A non-file where a file or a directory of the skill goes is refused
/// alike (`unsafe_path`), saying what is there: a lock file that is a
/// directory was `io_error`, and a base that is a file was called a
/// symlink.
#[test]
fn the_wrong_kind_of_file_is_unsafe_path_saying_what_it_is() {
    let file_for_dir = |cwd: &Path| std::fs::write(cwd.join(".agents"), "x").unwrap();
    let dir_for_file =
        |cwd: &Path| std::fs::create_dir_all(cwd.join(".agents/.skill-lock.json")).unwrap();
    let file_for_skill_dir = |cwd: &Path| {
        std::fs::create_dir_all(cwd.join(".agents/skills")).unwrap();
        std::fs::write(cwd.join(".agents/skills/agent-exec"), "x").unwrap();
    };
    let dir_for_skill_file = |cwd: &Path| {
        std::fs::create_dir_all(cwd.join(".agents/skills/agent-exec/SKILL.md")).unwrap();
    };
    let fifo_for_file = |cwd: &Path| {
        std::fs::create_dir_all(cwd.join(".agents")).unwrap();
        let st = std::process::Command::new("mkfifo")
            .arg(cwd.join(".agents/.skill-lock.json"))
            .status()
            .unwrap();
        assert!(st.success());
    };
    for (plant, says) in [
        (
            &file_for_dir as &dyn Fn(&Path),
            "where a directory should be",
        ),
        (&dir_for_file, "a directory where a file should be"),
        // A FIFO blocked the lock file's read for ever.
        (
            &fifo_for_file,
            "a FIFO, socket or device where a file should be",
        ),
        // Deeper down, the same (both were io_error: "File exists", "Is
        // a directory").
        (&file_for_skill_dir, "where a directory should be"),
        (&dir_for_skill_file, "a directory where a file should be"),
    ] {
        let t = TempRoot::new();
        plant(&t.cwd);
        let (code, e) = t.err(&["install-skills"]);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (1, Some("unsafe_path")),
            "{e}"
        );
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{msg}");
    }
}

/// `--global` without a HOME is the caller's environment, not a bug: a
/// usage error (exit 2) naming HOME, never `internal_error`.
#[test]
fn global_without_home_is_a_usage_error() {
    let t = TempRoot::new();
    for home in [None, Some("")] {
        let mut c = t.bare();
        c.args(["install-skills", "--global"]);
        match home {
            None => c.env_remove("HOME"),
            Some(h) => c.env("HOME", h),
        };
        let o = t.exec(c);
        let v = o.json();
        assert_eq!(o.code, 2, "{home:?}: {v}");
        assert_eq!(v["error"]["code"], "usage_error", "{home:?}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("HOME"),
            "{v}"
        );
    }
}

/// A HOME (or current directory) that is not UTF-8: refused, nothing
/// written; the answer would have named lossy paths that do not exist.
#[test]
fn a_base_that_is_not_utf8_is_a_usage_error_and_nothing_is_written() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    let odd = t.base.join(std::ffi::OsStr::from_bytes(b"h\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    let mut c = t.bare();
    c.args(["install-skills", "--global"]).env("HOME", &odd);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(
        (o.code, &v["error"]["code"]),
        (2, &json!("usage_error")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("HOME"),
        "{v}"
    );
    let mut c = t.bare();
    c.args(["install-skills"]).current_dir(&odd);
    let o = t.exec(c);
    let v = o.json();
    assert_eq!(
        (o.code, &v["error"]["code"]),
        (2, &json!("usage_error")),
        "{v}"
    );
    assert_eq!(std::fs::read_dir(&odd).unwrap().count(), 0);
}

/// A base directory that is a symlink (a `~/.claude` kept in a dotfiles
/// checkout) is followed for the lock file as for the skill: the install
/// is whole, and the answer names the paths as the user gave them.
#[test]
fn a_symlinked_base_directory_is_followed_for_every_file() {
    let t = TempRoot::new();
    let real = t.base.join("dotfiles/claude");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(home(&t)).unwrap();
    std::os::unix::fs::symlink(&real, home(&t).join(".claude")).unwrap();
    let v = t.ok(&["install-skills", "--global", "--claude"]);
    let base = home(&t).join(".claude");
    assert_eq!(
        v["lock_file_path"],
        base.join(".skill-lock.json").to_str().unwrap()
    );
    let (_, lock) = lock(&real);
    assert_eq!(skill_names(&lock), ["agent-exec"]);
    for f in FILES {
        assert!(real.join("skills/agent-exec").join(f).is_file(), "{f}");
    }
    assert!(std::fs::symlink_metadata(home(&t).join(".claude"))
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A lock file too large to be one (over 4 MiB) is treated as one that
/// does not parse: empty, with a warning, and written anew (it was an
/// io_error no retry could mend).
#[test]
fn an_oversized_lock_file_is_written_anew() {
    let t = TempRoot::new();
    std::fs::create_dir_all(t.cwd.join(".agents")).unwrap();
    let lock = t.cwd.join(".agents/.skill-lock.json");
    std::fs::File::create(&lock)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    let o = t.out(&["install-skills"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    assert!(o.stderr.contains("WARN"), "{}", o.stderr);
    assert!(std::fs::metadata(&lock).unwrap().len() < 4096);
}

/// A file where a directory on the way should be is named in the
/// refusal (it named the directory to be made below it).
#[test]
fn the_refusal_names_the_file_in_the_way() {
    let t = TempRoot::new();
    let agents = t.cwd.join(".agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(agents.join("skills"), "").unwrap();
    let (_, e) = t.err(&["install-skills"]);
    assert_eq!(e["error"]["code"], "unsafe_path", "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("refusing {}", agents.join("skills").display())),
        "{msg}"
    );
}
