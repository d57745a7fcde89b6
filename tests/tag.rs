//! `tag set`: replace, deduplicate, clear, any state, validation, and
//! concurrent edits that never corrupt or interleave meta.json.

mod support;

use std::process::Stdio;

use serde_json::{json, Value};
use support::TempRoot;

fn tags_of(t: &TempRoot, id: &str) -> Value {
    t.meta(id)["tags"].clone()
}

#[test]
fn replace_dedup_clear_and_shape() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--tag", "old", "--", "true"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let before = t.meta(&id);

    let o = t.out(&[
        "tag",
        "set",
        &id[..12],
        "--tag",
        "b",
        "--tag",
        "a.x",
        "--tag",
        "b",
        "--tag",
        "c-1",
        "--tag",
        "a.x",
    ]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    o.assert_order(&["schema_version", "ok", "type", "job_id", "tags"]);
    let v = o.json();
    assert_eq!(v["type"], "tag_set");
    assert_eq!(v["job_id"], id.as_str(), "the resolved full id");
    assert_eq!(v["tags"], json!(["b", "a.x", "c-1"]));
    assert_eq!(tags_of(&t, &id), json!(["b", "a.x", "c-1"]));

    // Everything else in meta.json is untouched.
    let mut after = t.meta(&id);
    after["tags"] = before["tags"].clone();
    assert_eq!(after, before);

    // Lowercase prefix works; no --tag clears.
    let v = t.ok(&["tag", "set", &id[..10].to_ascii_lowercase()]);
    assert_eq!(v["tags"], json!([]));
    assert_eq!(tags_of(&t, &id), json!([]));
    // The list filter sees the change.
    t.ok(&["tag", "set", &id, "--tag", "release"]);
    let l = t.ok(&["list", "--tag", "release"]);
    assert_eq!(l["jobs"][0]["job_id"], id.as_str());
    // meta.json stays private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["meta.json", "meta.lock"] {
        let mode = std::fs::metadata(t.job_dir(&id).join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

/// A tag that begins with `-` is given as `--tag=-x`; `--tag -x` is a
/// missing value, as 0.2.3's parser has it (`--tag -v` took `-v`, meant
/// as --verbose, for the tag). Other flags' values may begin with a
/// dash: a duration `-1` is its check's to refuse, a pattern `-yet` is
/// searched for.
#[test]
fn a_value_that_looks_like_a_flag_is_not_taken() {
    let t = TempRoot::new();
    for args in [
        &["run", "--tag", "-x", "--", "true"][..],
        &["run", "--tag", "-v", "--", "true"],
        &["list", "--tag", "-x"],
    ] {
        let (code, e) = t.err(args);
        assert_eq!(
            (code, e["error"]["code"].as_str()),
            (2, Some("usage_error")),
            "{args:?}: {e}"
        );
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("a value is required"),
            "{e}"
        );
    }
    let v = t.ok(&["run", "--tag=-x", "--", "true"]);
    assert_eq!(v["tags"], serde_json::json!(["-x"]), "{v}");
    let (code, e) = t.err(&["run", "--until", "-1", "--", "true"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("invalid_duration")),
        "{e}"
    );
    // Other values may begin with a dash: a pattern, say.
    let v = t.ok(&["run", "--", "echo", "not-yet"]);
    let id = v["job_id"].as_str().unwrap();
    let g = t.ok(&["tail", "--grep", "-yet", id]);
    assert_eq!(g["matches"][0]["line"], "not-yet", "{g}");
}

#[test]
fn works_in_every_state() {
    let t = TempRoot::new();
    let created = t.ok(&["create", "--", "true"])["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let running = t.start_job(&["sleep", "30"]);
    let done = t.start_job(&["true"]);
    t.wait_done(&done);
    for id in [&created, &running, &done] {
        let v = t.ok(&["tag", "set", id, "--tag", "seen"]);
        assert_eq!(v["tags"], json!(["seen"]));
        assert_eq!(tags_of(&t, id), json!(["seen"]));
    }
    // The running job is still running and its tags survive its end.
    assert_eq!(t.ok(&["status", &running])["state"], "running");
    t.ok(&["kill", &running]);
    t.wait_done(&running);
    assert_eq!(tags_of(&t, &running), json!(["seen"]));
    // A created job keeps its new tags when it starts.
    let s = t.ok(&["start", &created]);
    assert_eq!(s["tags"], json!(["seen"]));
}

#[test]
fn invalid_tags_and_unknown_jobs() {
    let t = TempRoot::new();
    let id = t.start_job(&["true"]);
    t.wait_done(&id);
    t.ok(&["tag", "set", &id, "--tag", "keep"]);
    for bad in ["", "a.*", ".a", "a.", "a..b", "a b", "a/b", "é", "a_b"] {
        let (code, e) = t.err(&["tag", "set", &id, "--tag", "ok", "--tag", bad]);
        assert_eq!(code, 2, "{bad:?}");
        assert_eq!(e["error"]["code"], "invalid_tag", "{bad:?}: {e}");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains("invalid tag"), "{msg}");
    }
    // Nothing was written by the refused calls.
    assert_eq!(tags_of(&t, &id), json!(["keep"]));
    // The specific reasons of the tag rules.
    let (_, e) = t.err(&["tag", "set", &id, "--tag", "x.*"]);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("may not end with '.*'"));
    let (_, e) = t.err(&["tag", "set", &id, "--tag", "a..b"]);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("segments must not be empty"));

    for bad in ["NOPE", "", "..", "/tmp", "../x"] {
        let (code, e) = t.err(&["tag", "set", bad, "--tag", "x"]);
        assert_eq!(code, 1, "{bad:?}");
        assert_eq!(e["error"]["code"], "job_not_found", "{bad:?}");
    }
    assert!(!t.base.join("meta.json").exists());
    assert!(!t.root.join("meta.json").exists());
    let (code, e) = t.err(&["tag", "set"]);
    assert_eq!(
        (code, e["error"]["code"].as_str()),
        (2, Some("usage_error"))
    );
}

#[test]
fn concurrent_tag_sets_never_corrupt_or_mix() {
    let t = TempRoot::new();
    let id = t.start_job(&["true"]);
    t.wait_done(&id);
    let n = 20;
    let wanted: Vec<Value> = (0..n)
        .map(|i| json!([format!("p{i}"), format!("p{i}.a"), format!("p{i}.b")]))
        .collect();
    let mut children: Vec<_> = (0..n)
        .map(|i| {
            let (a, b, c) = (format!("p{i}"), format!("p{i}.a"), format!("p{i}.b"));
            let mut cmd = t.cmd(&["tag", "set", &id, "--tag", &a, "--tag", &b, "--tag", &c]);
            cmd.stdout(Stdio::piped()).stderr(Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    // While they run, meta.json always parses and always holds one of
    // the complete lists (writes are atomic renames).
    let meta_path = t.job_dir(&id).join("meta.json");
    let mut reads = 0;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        let text = std::fs::read_to_string(&meta_path).unwrap();
        let m: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        let tags = &m["tags"];
        assert!(
            tags == &json!([]) || wanted.contains(tags),
            "partial tags {tags}"
        );
        reads += 1;
    }
    assert!(reads > 0);
    let mut reported = Vec::new();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success());
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert!(wanted.contains(&v["tags"]), "{v}");
        reported.push(v["tags"].clone());
    }
    // The last writer's list is what is stored, and it is one of them.
    let fin = tags_of(&t, &id);
    assert!(wanted.contains(&fin), "{fin}");
    let mut distinct = reported.clone();
    distinct.sort_by_key(|v| v.to_string());
    distinct.dedup();
    assert_eq!(distinct.len(), n, "each process stored its own list");
    // The rest of meta.json survived every rewrite.
    assert_eq!(t.meta(&id)["command"], json!(["true"]));
}

/// An error of `tag set` about the job names it in `details.job_id`, as
/// every error about a job does (`notify set` did already): here its
/// meta.lock is a planted symlink, which is never followed.
#[test]
fn tag_set_errors_name_the_job() {
    let t = TempRoot::new();
    let v = t.ok(&["run", "--", "true"]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let lock = t.job_dir(&id).join("meta.lock");
    let _ = std::fs::remove_file(&lock);
    std::os::unix::fs::symlink(t.base.join("elsewhere"), &lock).unwrap();
    let (code, e) = t.err(&["tag", "set", &id, "--tag", "x"]);
    assert_eq!(
        (code, &e["error"]["code"]),
        (1, &json!("unsafe_path")),
        "{e}"
    );
    assert_eq!(e["error"]["details"]["job_id"], id.as_str(), "{e}");
    assert!(!t.base.join("elsewhere").exists(), "the link was followed");
    assert_eq!(tags_of(&t, &id), json!([]));
}
