//! `--yaml` read back by real YAML readers: every YAML document the
//! binary prints must load, under PyYAML (YAML 1.1, when installed) and
//! yaml-rust2 (YAML 1.2), to exactly the JSON document of the same call.
//! Job output, tags and timestamps are where YAML 1.1 would otherwise read
//! `yes`, `0x1F`, `1:20` or `2026-01-02T03:04:05Z` as something else.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::TempRoot;
use yaml_rust2::{Yaml, YamlLoader};

/// Single-line job outputs (printed without a newline, so they become
/// plain or quoted scalars, not literal blocks) that a careless emitter
/// would let some reader mistype.
const OUTPUTS: &[&str] = &[
    "2026-01-02T03:04:05Z",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "yes",
    "No",
    "OFF",
    "y",
    "~",
    "Null",
    "0x1F",
    "-0x1F",
    "0b101",
    "017",
    "1:20",
    "190:20:30.15",
    "1_000",
    "+12",
    ".inf",
    "-.Inf",
    ".NaN",
    "6.8523015e+5",
    "1.2.3",
    "<<",
    "=",
    "plain words",
];

/// Tags are `[A-Za-z0-9-]` segments, which still spell many YAML 1.1 types.
const TAGS: &[&str] = &[
    "yes",
    "off",
    "2026-01-02",
    "0x1F",
    "1e5",
    "1-000",
    "null",
    "y",
];

/// The interpreter named by AGENT_EXEC_PYTHON (default python3), if it
/// can import yaml.
fn python() -> Option<String> {
    let py = std::env::var("AGENT_EXEC_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let ok = Command::new(&py)
        .args(["-c", "import yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Some(py)
    } else {
        println!("note: {py} cannot import yaml (PyYAML); YAML 1.1 read-back not checked");
        None
    }
}

/// Loads every text with PyYAML's safe_load in one interpreter, as
/// `json.dumps` would print it; an error (e.g. a datetime json cannot
/// encode) fails the test with the document.
fn pyyaml_all(py: &str, texts: &[String]) -> Vec<Value> {
    let script = r#"
import json, sys, yaml
out = []
for text in json.load(sys.stdin):
    try:
        out.append({"ok": json.loads(json.dumps(yaml.safe_load(text)))})
    except Exception as e:
        out.append({"err": "%s: %s" % (type(e).__name__, e)})
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    let input = serde_json::to_vec(texts).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(results.len(), texts.len());
    results
        .into_iter()
        .zip(texts)
        .map(|(r, text)| match r.get("ok") {
            Some(v) => v.clone(),
            None => panic!("PyYAML could not load {text:?}: {}", r["err"]),
        })
        .collect()
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(text) => json!(text.parse::<f64>().expect("float text")),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| match k {
                    Yaml::String(k) => (k.clone(), yaml_to_json(v)),
                    other => panic!("key read back as {other:?}"),
                })
                .collect(),
        ),
        other => panic!("unexpected YAML node {other:?}"),
    }
}

fn yaml_rust2(text: &str) -> Value {
    let docs = YamlLoader::load_from_str(text)
        .unwrap_or_else(|e| panic!("yaml-rust2 cannot load {text:?}: {e}"));
    assert_eq!(docs.len(), 1, "one document in {text:?}");
    yaml_to_json(&docs[0])
}

/// One call's YAML document and what it must read back as.
struct Case {
    what: String,
    yaml: String,
    want: Value,
}

/// Runs `args` with and without `--yaml`; both must agree on the exit code.
fn both_ways(t: &TempRoot, args: &[&str]) -> Case {
    let plain = t.out(args);
    let mut with = vec!["--yaml"];
    with.extend_from_slice(args);
    let yaml = t.out(&with);
    assert_eq!(plain.code, yaml.code, "exit codes of {args:?}");
    assert!(
        !yaml.stdout.trim_start().starts_with('{'),
        "{}",
        yaml.stdout
    );
    Case {
        what: format!("{args:?}"),
        yaml: yaml.stdout,
        want: plain.json(),
    }
}

/// Fields that differ between two launches of the same command.
const VOLATILE: &[&str] = &[
    "job_id",
    "short_job_id",
    "stdout_log_path",
    "stderr_log_path",
    "elapsed_ms",
    "waited_ms",
    "duration_ms",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    // Names the job, so differs too.
    "cursor",
    // What the job cost: measured, so differs from run to run.
    "cpu_user_ms",
    "cpu_sys_ms",
    "max_rss_kb",
    // How long `kill` watched the job: measured.
    "observed_within_ms",
];

/// `v` with each volatile field replaced by the name of its JSON type, so
/// two launches compare equal exactly when everything else (and every
/// type) matches.
fn masked(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = if VOLATILE.contains(&k.as_str()) {
                        let ty = match v {
                            Value::String(_) => "<string>",
                            Value::Number(_) => "<number>",
                            Value::Null => "<null>",
                            _ => "<other>",
                        };
                        Value::from(ty)
                    } else {
                        masked(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(masked).collect()),
        other => other.clone(),
    }
}

/// Checks every case under yaml-rust2 and, when available, PyYAML.
fn check(cases: &[Case], mask: bool) {
    let fix = |v: &Value| if mask { masked(v) } else { v.clone() };
    for c in cases {
        assert_eq!(
            fix(&yaml_rust2(&c.yaml)),
            fix(&c.want),
            "yaml-rust2, {}:\n{}",
            c.what,
            c.yaml
        );
    }
    let Some(py) = python() else { return };
    let texts: Vec<String> = cases.iter().map(|c| c.yaml.clone()).collect();
    for (c, got) in cases.iter().zip(pyyaml_all(&py, &texts)) {
        assert_eq!(fix(&got), fix(&c.want), "PyYAML, {}:\n{}", c.what, c.yaml);
    }
}

#[test]
fn read_only_answers_read_back_identically() {
    let t = TempRoot::new();
    let mut cases = Vec::new();
    let mut ids = Vec::new();
    for out in OUTPUTS {
        let v = t.ok(&["run", "--", "printf", "%s", out]);
        assert_eq!(v["stdout"], *out, "{v}");
        ids.push(v["job_id"].as_str().unwrap().to_string());
    }
    let mut tagged = vec!["run"];
    for tag in TAGS {
        tagged.extend(["--tag", tag]);
    }
    tagged.extend(["--", "printf", "yes\\nno\\n0x1F\\n1:20\\n.inf\\n~\\n"]);
    let v = t.ok(&tagged);
    ids.push(v["job_id"].as_str().unwrap().to_string());
    for id in &ids {
        cases.push(both_ways(&t, &["status", id]));
        cases.push(both_ways(&t, &["tail", id]));
        cases.push(both_ways(&t, &["wait", id]));
    }
    cases.push(both_ways(&t, &["list", "--all"]));
    cases.push(both_ways(&t, &["list", "--tag", "2026-01-02"]));
    // Error documents.
    cases.push(both_ways(&t, &["status", "NOPE"]));
    cases.push(both_ways(&t, &["bogus"]));
    cases.push(both_ways(&t, &["run", "--tag", "1..2", "--", "true"]));
    // The timestamps themselves must have been written quoted.
    let status = &cases[0].yaml;
    assert!(status.contains("finished_at: '"), "{status}");
    check(&cases, false);
    // `kill` measures how long it watched: compared with that masked.
    check(&[both_ways(&t, &["kill", &ids[0]])], true);
}

/// `run` answers cannot be asked twice, so two launches of the same
/// command are compared with the fields that differ between launches
/// reduced to their types.
#[test]
fn run_answers_read_back_with_the_same_types() {
    let t = TempRoot::new();
    let mut cases = Vec::new();
    let mut launch = |args: &[&str]| {
        let c = both_ways(&t, args);
        cases.push(c);
    };
    launch(&["run", "--", "echo", "2026-01-02T03:04:05Z"]);
    launch(&["run", "--", "printf", "%s", "2026-01-02T03:04:05Z"]);
    launch(&[
        "run",
        "--",
        "printf",
        "yes\\nno\\n0x1F\\n1:20\\n.inf\\n~\\n",
    ]);
    launch(&[
        "run",
        "--tag",
        "off",
        "--tag",
        "2026-01-02",
        "--",
        "printf",
        "%s",
        "1_000",
    ]);
    launch(&["create", "--tag", "yes", "--", "echo", "0o17"]);
    check(&cases, true);
}

/// `tail --follow --yaml`: a YAML stream, one document (after its
/// `---`) for each line the JSON follow prints, reading back the same.
#[test]
fn a_follow_in_yaml_is_a_stream_of_the_same_documents() {
    let t = TempRoot::new();
    let v = t.ok(&[
        "run",
        "--",
        "printf 'yes\\n'; printf '0x1F: #x\\n' >&2; printf 'no end'",
    ]);
    let id = v["job_id"].as_str().unwrap().to_string();
    let plain = t.out(&["tail", "--follow", &id]);
    let yaml = t.out(&["--yaml", "tail", "--follow", &id]);
    assert_eq!((plain.code, yaml.code), (0, 0));
    let want: Vec<Value> = plain
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(want.len(), 3, "{}", plain.stdout);
    let docs = YamlLoader::load_from_str(&yaml.stdout)
        .unwrap_or_else(|e| panic!("yaml-rust2 cannot load {:?}: {e}", yaml.stdout));
    let got: Vec<Value> = docs.iter().map(yaml_to_json).collect();
    assert_eq!(got, want, "{}", yaml.stdout);
    if let Some(py) = python() {
        let mut child = Command::new(py)
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(yaml.stdout.as_bytes()).unwrap();
        drop(stdin);
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "PyYAML could not load {:?}",
            yaml.stdout
        );
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got, Value::Array(want));
    }
}
