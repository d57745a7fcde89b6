//! Every `bash` example in README.md runs, in a private HOME and jobs
//! root, with the built binary on PATH as `agent-exec`, and succeeds; every
//! `json` example parses.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{bin, objects, TempRoot};

fn blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match cur.as_mut() {
            None if line.trim_start() == format!("```{lang}") => cur = Some(String::new()),
            Some(_) if line.trim_start() == "```" => out.push(cur.take().unwrap()),
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    out
}

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn bash_examples_run() {
    let t = TempRoot::new();
    let bin_dir = t.base.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("agent-exec")).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let examples = blocks(&readme(), "bash");
    assert!(examples.len() >= 10, "README lost its examples");
    for (i, script) in examples.iter().enumerate() {
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail", "-c", script])
            .current_dir(&t.cwd)
            .env("PATH", &path)
            .env("HOME", t.base.join("home"))
            .env("AGENT_EXEC_ROOT", &t.root)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("RUST_LOG")
            .env_remove("AGENT_EXEC_SERVE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("README example {i} hung:\n{script}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let out = child.wait_with_output().unwrap();
        assert!(
            status.success(),
            "README example {i} failed ({status}):\n{script}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn json_examples_parse_and_setup_commands_come_first() {
    let text = readme();
    for b in blocks(&text, "json") {
        serde_json::from_str::<serde_json::Value>(&b).unwrap_or_else(|e| panic!("{e}:\n{b}"));
    }
    let first = blocks(&text, "sh").into_iter().next().unwrap();
    assert!(first.contains("cargo run --release -- run -- echo hello"));
    assert!(first.contains("make test"));
    assert!(text.find("```sh").unwrap() < text.find("```bash").unwrap());
}

/// A newcomer's questions the README answers: how `agent-exec` gets on
/// PATH, what `make static` needs, where jobs and their logs live.
#[test]
fn readme_answers_setup_and_layout_questions() {
    let text = readme();
    let install = text
        .find("cargo install --path .")
        .expect("no install step");
    let first_bare_use = text.find("\nagent-exec ").expect("no example");
    assert!(install < first_bare_use, "install after the first example");
    for needle in [
        "make install",
        "target/static/agent-exec",
        "rustup target add",
        "-unknown-linux-musl",
        "bash-completion/completions/agent-exec",
        "zsh/site-functions/_agent-exec",
        "fish/vendor_completions.d/agent-exec.fish",
        "full.log",
        "[STDOUT]",
        "--log PATH",
        "AGENT_EXEC_ROOT",
        "$XDG_DATA_HOME/agent-exec/jobs",
        "$HOME/.local/share/agent-exec/jobs",
        "./.agent-exec/jobs",
        "--env-file",
        "output_lost",
        "launch_lost",
        "unsafe_path",
        "--include-created",
    ] {
        assert!(text.contains(needle), "README lacks {needle}");
    }
}

/// The quick start's sample answer to `run -- echo "hello world"` has
/// the fields the binary prints, in its order (values may differ).
#[test]
fn quick_start_sample_has_the_fields_run_prints() {
    let text = readme();
    let cmd = "agent-exec run -- echo \"hello world\"\n";
    let at = text.find(cmd).expect("the quick start's command");
    let sample = blocks(&text[at..], "json").into_iter().next().unwrap();
    let shown = &objects(&sample)[0].1;
    let t = TempRoot::new();
    let o = t.out(&["run", "--", "echo", "hello world"]);
    let printed = &objects(&o.stdout)[0].1;
    assert_eq!(
        shown, printed,
        "README's sample vs the binary: {}",
        o.stdout
    );
}
