//! Shell completion, driven the way a shell drives it: the bash script is
//! sourced in a real bash and its function called with COMP_WORDS; the
//! fish script is queried with `complete -C` in a real fish; the zsh
//! script runs in a real zsh with the completion builtins it calls
//! stubbed out; every script is syntax-checked by its shell when that
//! shell is installed. PowerShell cannot be installed here: its script is
//! checked structurally, and parsed by pwsh when pwsh is on PATH.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{bin, TempRoot};

fn have(shell: &str) -> bool {
    Command::new(shell)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn bin_dir() -> PathBuf {
    Path::new(bin()).parent().unwrap().to_path_buf()
}

/// A command in `dir` with the test's private environment and the
/// binary on PATH.
fn shell_cmd(t: &TempRoot, shell: &str, dir: &Path) -> Command {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new(shell);
    c.current_dir(dir)
        .env("PATH", path)
        .env("HOME", t.base.join("home"))
        .env("XDG_CONFIG_HOME", t.base.join("config"))
        .env_remove("AGENT_EXEC_ROOT")
        .env_remove("XDG_DATA_HOME")
        .env_remove("COMPLETE")
        .stdin(Stdio::null());
    c
}

fn script(t: &TempRoot, shell: &str) -> PathBuf {
    let o = t.bare().args(["completions", shell]).output().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.trim_start().starts_with('{'), "a script, not JSON");
    let p = t.base.join(format!("completion.{shell}"));
    std::fs::write(&p, text).unwrap();
    p
}

/// Source the bash script, set COMP_WORDS to `agent-exec words...` (the
/// last word is the one being completed), call `_agent_exec`, return
/// COMPREPLY.
fn bash_in(t: &TempRoot, dir: &Path, env: &[(&str, &Path)], words: &[&str]) -> Vec<String> {
    bash_at(t, dir, env, words, words.len())
}

/// `bash_in` with the cursor on `words[cword - 1]` (COMP_CWORD `cword`):
/// the words after it follow the cursor.
fn bash_at(
    t: &TempRoot,
    dir: &Path,
    env: &[(&str, &Path)],
    words: &[&str],
    cword: usize,
) -> Vec<String> {
    let s = script(t, "bash");
    let mut c = shell_cmd(t, "bash", dir);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("CWORD", cword.to_string())
        .arg("-c")
        .arg(
            r#"source "$0" || exit 9
COMP_WORDS=("$@"); COMP_CWORD=$CWORD
COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
_agent_exec
printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg(&s)
        .arg("agent-exec")
        .args(words);
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut v: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `--root` passed on the line.
fn bash(t: &TempRoot, words: &[&str]) -> Vec<String> {
    let root = t.root.to_string_lossy().into_owned();
    let mut w = vec!["--root", root.as_str()];
    w.extend_from_slice(words);
    bash_in(t, &t.cwd, &[], &w)
}

/// Ids in a fixed order so tests can name them.
const CREATED: &str = "01JAAAAAAAAAAAAAAAAAAAAAA1";
const RUNNING: &str = "01JAAAAAAAAAAAAAAAAAAAAAA2";
const EXITED: &str = "01JAAAAAAAAAAAAAAAAAAAAAA3";
const KILLED: &str = "01JAAAAAAAAAAAAAAAAAAAAAA4";
const FAILED: &str = "01JAAAAAAAAAAAAAAAAAAAAAA5";
const DEAD: &str = "01JAAAAAAAAAAAAAAAAAAAAAA6";
const BROKEN: &str = "01JAAAAAAAAAAAAAAAAAAAAAA7";

/// One job per state in t.cwd. RUNNING has no lock file (written by
/// another tool: its state is trusted); DEAD says running but its lock
/// is free, so its supervisor is gone; BROKEN has an unreadable state.
fn jobs(t: &TempRoot) {
    let done = Some("2026-01-01T00:00:01Z");
    t.fabricate(CREATED, "created", &t.cwd, None);
    t.fabricate(RUNNING, "running", &t.cwd, None);
    t.fabricate(EXITED, "exited", &t.cwd, done);
    t.fabricate(KILLED, "killed", &t.cwd, done);
    t.fabricate(FAILED, "failed", &t.cwd, done);
    t.fabricate(DEAD, "running", &t.cwd, None);
    std::fs::write(t.job_dir(DEAD).join("lock"), b"").unwrap();
    t.fabricate(BROKEN, "exited", &t.cwd, done);
    std::fs::write(t.job_dir(BROKEN).join("state.json"), b"{not json").unwrap();
}

fn ids(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn job_ids_are_filtered_by_state() {
    let t = TempRoot::new();
    jobs(&t);
    assert_eq!(bash(&t, &["start", ""]), ids(&[CREATED]));
    assert_eq!(bash(&t, &["wait", ""]), ids(&[CREATED, RUNNING]));
    assert_eq!(bash(&t, &["kill", ""]), ids(&[RUNNING]));
    let finished = ids(&[EXITED, KILLED, FAILED, DEAD]);
    assert_eq!(bash(&t, &["delete", ""]), finished);
    assert_eq!(bash(&t, &["rm", ""]), finished);
    let all = ids(&[CREATED, RUNNING, EXITED, KILLED, FAILED, DEAD, BROKEN]);
    assert_eq!(bash(&t, &["status", ""]), all);
    assert_eq!(bash(&t, &["tail", "--tail-lines", "5", ""]), all);
    assert_eq!(bash(&t, &["tag", "set", ""]), all);
    assert_eq!(bash(&t, &["notify", "set", ""]), all);
    // Completion only reads: the dead job is not reconciled on disk.
    assert_eq!(t.state(DEAD)["job"]["status"], "running");
}

/// The commands that take several ids offer the others after the first
/// (only the first was completed); the rest take one.
#[test]
fn several_ids_are_completed_where_several_are_taken() {
    let t = TempRoot::new();
    jobs(&t);
    assert_eq!(bash(&t, &["wait", CREATED, ""]), ids(&[RUNNING]));
    // An id given by a prefix only it has is given too; an ambiguous
    // prefix names none.
    let other = "01JZZZZZZZZZZZZZZZZZZZZZZ1";
    t.fabricate(other, "running", &t.cwd, None);
    assert_eq!(bash(&t, &["wait", "01jz", ""]), ids(&[CREATED, RUNNING]));
    assert_eq!(
        bash(&t, &["wait", "01JA", ""]),
        ids(&[CREATED, RUNNING, other])
    );
    assert_eq!(
        bash(&t, &["wait", "--any", RUNNING, ""]),
        ids(&[CREATED, other])
    );
    assert_eq!(
        bash(&t, &["delete", EXITED, FAILED, ""]),
        ids(&[KILLED, DEAD])
    );
    assert!(bash(&t, &["status", EXITED, ""]).is_empty());
    assert!(bash(&t, &["kill", RUNNING, ""]).is_empty());
}

/// `--after` and `--after-ok` take any job's id, as a value (spaced or
/// after `=`); other flag values offer none.
#[test]
fn dependency_flags_complete_job_ids() {
    let t = TempRoot::new();
    jobs(&t);
    let all = ids(&[CREATED, RUNNING, EXITED, KILLED, FAILED, DEAD, BROKEN]);
    assert_eq!(bash(&t, &["run", "--after", ""]), all);
    assert_eq!(bash(&t, &["create", "--after-ok", ""]), all);
    let o = t.out(&["__complete", "--", "run", "--after-ok=01ja"]);
    let words: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(words.len(), all.len(), "{words:?}");
    assert!(
        words.iter().all(|w| w.starts_with("--after-ok=01JA")),
        "{words:?}"
    );
    // Every job's, whichever directory it ran in: with jobs of this
    // directory, another's were left out (a positional id offers this
    // directory's only).
    let elsewhere = "01JZZZZZZZZZZZZZZZZZZZZZZ2";
    t.fabricate(elsewhere, "exited", &t.base, None);
    let mut with = all.clone();
    with.push(elsewhere.to_string());
    with.sort();
    assert_eq!(bash(&t, &["run", "--after", ""]), with);
    assert!(!bash(&t, &["status", ""]).contains(&elsewhere.to_string()));
}

/// `delete --all` takes no id: none is offered after it (one was, which
/// `delete` then refused).
#[test]
fn delete_all_offers_no_ids() {
    let t = TempRoot::new();
    jobs(&t);
    assert!(!bash(&t, &["delete", ""]).is_empty());
    assert!(bash(&t, &["delete", "--all", ""]).is_empty());
    assert!(bash(&t, &["rm", "--all", "--dry-run", ""]).is_empty());
}

/// A directory of the root whose name would not come back as one job id
/// (a flag, white space) is never offered: `-rf` was, to `start`.
#[test]
fn names_that_are_not_one_word_are_not_offered() {
    let t = TempRoot::new();
    for name in ["-rf", "with space", "01JGOOD0000000000000000000"] {
        t.fabricate(name, "created", &t.cwd, None);
    }
    assert_eq!(
        bash(&t, &["start", ""]),
        ids(&["01JGOOD0000000000000000000"])
    );
}

#[test]
fn a_live_supervisor_is_offered_to_kill() {
    let t = TempRoot::new();
    let id = t.start_job(&["sleep", "30"]);
    let done = t.start_job(&["true"]);
    t.wait_done(&done);
    assert_eq!(bash(&t, &["kill", ""]), vec![id.clone()]);
    assert_eq!(bash(&t, &["delete", ""]), vec![done.clone()]);
    t.ok(&["kill", "--signal", "KILL", &id]);
    t.wait_done(&id);
    assert!(bash(&t, &["kill", ""]).is_empty());
}

#[test]
fn queued_jobs_are_offered_to_kill_and_not_to_send() {
    let t = TempRoot::new();
    let first = t.ok(&["run", "--no-wait", "--queue", "c", "--", "sleep", "30"]);
    let first = first["job_id"].as_str().unwrap().to_string();
    let queued = t.ok(&["run", "--no-wait", "--queue", "c", "--", "true"]);
    assert_eq!(queued["state"], "queued", "{queued}");
    let queued = queued["job_id"].as_str().unwrap().to_string();
    let mut both = vec![first.clone(), queued.clone()];
    both.sort();
    let mut offered = bash(&t, &["kill", ""]);
    offered.sort();
    assert_eq!(offered, both);
    assert_eq!(bash(&t, &["send", ""]), vec![first.clone()]);
    t.ok(&["kill", "--signal", "KILL", &first]);
    t.wait_done(&queued);
}

#[test]
fn prefix_filtering_is_case_insensitive() {
    let t = TempRoot::new();
    let a = "01JBBBBBBBBBBBBBBBBBBBBBB1";
    let b = "01JBBBBBBBBBBBBBBBBBBBBBB2";
    let c = "01JCCCCCCCCCCCCCCCCCCCCCC1";
    for id in [a, b, c] {
        t.fabricate(id, "exited", &t.cwd, Some("2026-01-01T00:00:01Z"));
    }
    assert_eq!(bash(&t, &["status", "01JB"]), ids(&[a, b]));
    assert_eq!(bash(&t, &["status", "01jc"]), ids(&[c]));
    assert_eq!(bash(&t, &["status", b]), ids(&[b]));
    assert!(bash(&t, &["status", "01JZ"]).is_empty());
}

#[test]
fn jobs_of_the_current_directory_first() {
    let t = TempRoot::new();
    let elsewhere = t.base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let elsewhere = std::fs::canonicalize(elsewhere).unwrap();
    let here = "01JDDDDDDDDDDDDDDDDDDDDDD1";
    let there = "01JDDDDDDDDDDDDDDDDDDDDDD2";
    t.fabricate(here, "created", &t.cwd, None);
    t.fabricate(there, "created", &elsewhere, None);
    assert_eq!(bash(&t, &["status", ""]), ids(&[here]));
    let root = t.root.to_string_lossy().into_owned();
    let from_there = bash_in(&t, &elsewhere, &[], &["--root", &root, "start", ""]);
    assert_eq!(from_there, ids(&[there]));
    // From a directory with no job of its own, every known job id of the
    // root is offered (the README: status and tail complete them all).
    let nowhere = std::fs::canonicalize(t.base.join("home")).unwrap_or_else(|_| {
        std::fs::create_dir_all(t.base.join("home")).unwrap();
        std::fs::canonicalize(t.base.join("home")).unwrap()
    });
    let from_nowhere = bash_in(&t, &nowhere, &[], &["--root", &root, "status", ""]);
    assert_eq!(from_nowhere, ids(&[here, there]));
    let typed = bash_in(
        &t,
        &nowhere,
        &[],
        &["--root", &root, "tail", "01JDDDDDDDDDDDDDDDDDDDDDD2"],
    );
    assert_eq!(typed, ids(&[there]));
}

#[test]
fn root_from_the_line_or_the_environment() {
    let t = TempRoot::new();
    jobs(&t);
    let root = t.root.to_string_lossy().into_owned();
    // `--root=X` (bash splits it at '=') and `--root X` after the subcommand.
    let split = bash_in(&t, &t.cwd, &[], &["--root", "=", &root, "start", ""]);
    assert_eq!(split, ids(&[CREATED]));
    let after = bash_in(&t, &t.cwd, &[], &["start", "--root", &root, ""]);
    assert_eq!(after, ids(&[CREATED]));
    let env = bash_in(&t, &t.cwd, &[("AGENT_EXEC_ROOT", &t.root)], &["start", ""]);
    assert_eq!(env, ids(&[CREATED]));
    // Neither: the default root (under the private HOME) has no jobs.
    assert!(bash_in(&t, &t.cwd, &[], &["start", ""]).is_empty());
}

#[test]
fn subcommands_flags_and_values() {
    let t = TempRoot::new();
    jobs(&t);
    assert_eq!(bash(&t, &["ki"]), ["kill"]);
    assert_eq!(bash(&t, &["ta"]), ["tag", "tail"]);
    assert_eq!(bash(&t, &["tag", ""]), ["set"]);
    let top = bash(&t, &[""]);
    for c in ["run", "status", "install-skills", "completions", "help"] {
        assert!(top.contains(&c.to_string()), "{c} missing from {top:?}");
    }
    assert!(!top.iter().any(|c| c.starts_with('_')), "hidden: {top:?}");
    assert_eq!(bash(&t, &["kill", "--sig"]), ["--signal"]);
    let flags = bash(&t, &["run", "--no-"]);
    assert_eq!(
        flags,
        [
            "--no-auto-gc",
            "--no-full-log",
            "--no-inherit-env",
            "--no-wait"
        ]
    );
    // Values: choices, signals, booleans; never job ids.
    assert_eq!(bash(&t, &["list", "--state", "r"]), ["running"]);
    assert_eq!(bash(&t, &["list", "--state", "=", "ex"]), ["exited"]);
    let signals = bash(&t, &["kill", "--signal", ""]);
    for s in ["TERM", "KILL", "INT", "HUP", "USR1"] {
        assert!(signals.contains(&s.to_string()), "{s} missing: {signals:?}");
    }
    assert!(!signals.iter().any(|s| s.starts_with("01J")));
    assert_eq!(bash(&t, &["kill", "--signal", "SIGTE"]), ["SIGTERM"]);
    assert!(bash(&t, &["run", "--timeout", ""]).is_empty());
    assert!(bash(&t, &["status", "--yaml", "--root", ""])
        .iter()
        .all(|c| !c.starts_with("01J")));
    assert_eq!(
        bash(&t, &["completions", ""]),
        ["bash", "fish", "powershell", "zsh"]
    );
    // Paths: directories for --cwd, files for --stdin-file.
    std::fs::create_dir(t.cwd.join("subdir")).unwrap();
    std::fs::write(t.cwd.join("input.txt"), b"x").unwrap();
    assert_eq!(bash(&t, &["run", "--cwd", "su"]), ["subdir"]);
    assert_eq!(bash(&t, &["run", "--stdin-file", "inp"]), ["input.txt"]);
}

#[test]
fn complete_prints_plain_lines_and_no_variable_triggers_it() {
    let t = TempRoot::new();
    jobs(&t);
    let o = t.out(&["__complete", "--", "start", ""]);
    assert_eq!(o.code, 0);
    assert_eq!(o.stdout, format!("{CREATED}\n"));
    let o = t.out(&["__complete", "--", "bogus", ""]);
    assert_eq!((o.code, o.stdout.as_str()), (0, ""));
    // An exported COMPLETE changes nothing: a normal JSON answer.
    let o = t.exec({
        let mut c = t.cmd(&["status", CREATED]);
        c.env("COMPLETE", "bash");
        c
    });
    let v = o.json();
    assert_eq!(v["type"], "status", "{v}");
}

#[test]
fn bash_script_is_valid() {
    let t = TempRoot::new();
    let s = script(&t, "bash");
    let o = Command::new("bash").arg("-n").arg(&s).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn zsh_script_is_valid() {
    if !have("zsh") {
        println!("note: zsh not installed; zsh completion script not checked");
        return;
    }
    let t = TempRoot::new();
    let s = script(&t, "zsh");
    let o = Command::new("zsh").arg("-n").arg(&s).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs `_agent-exec` in a real zsh for `agent-exec words...` (cursor on
/// the last word), with the completion-system functions it calls stubbed
/// to print what they were given: `_describe` prints its `name:help`
/// entries, the others their own name.
fn zsh_complete(t: &TempRoot, words: &[&str]) -> Vec<String> {
    zsh_at(t, words, words.len())
}

/// `zsh_complete` with the cursor on `words[current - 1]` (CURRENT is
/// `current + 1`, counting `agent-exec`): the words after it follow it.
fn zsh_at(t: &TempRoot, words: &[&str], current: usize) -> Vec<String> {
    let s = script(t, "zsh");
    let o = shell_cmd(t, "zsh", &t.cwd)
        .arg("-f")
        .arg("-c")
        .arg(
            r#"compdef() { :; }
_describe() { print -rl -- "${(@P)4}"; }
_files() { print -r -- "_files $*"; }
compset() { :; }
_command_names() { print -r -- _command_names; }
source "$1" || exit 9
shift
words=(agent-exec "$@"); CURRENT=$(( CUR + 1 ))
_agent-exec"#,
        )
        .env("CUR", current.to_string())
        .arg("zsh")
        .arg(&s)
        .args(words)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn zsh_shows_flag_help() {
    if !have("zsh") {
        println!("note: zsh not installed; zsh descriptions not checked");
        return;
    }
    let t = TempRoot::new();
    jobs(&t);
    let root = t.root.to_string_lossy().into_owned();
    let got = zsh_complete(&t, &["kill", "--sig"]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("--signal:Signal name or number"),
        "{got:?}"
    );
    let got = zsh_complete(&t, &["ki"]);
    assert_eq!(got, ["kill:Signal a job's process group"]);
    // Choices are bare words; job ids carry their state.
    assert_eq!(zsh_complete(&t, &["list", "--state", "r"]), ["running"]);
    assert_eq!(
        zsh_complete(&t, &["--root", &root, "kill", ""]),
        [format!("{RUNNING}:running")]
    );
    assert_eq!(zsh_complete(&t, &["run", "--cwd", ""]), ["_files -/"]);
    assert_eq!(zsh_complete(&t, &["run", "--", ""]), ["_command_names"]);
}

/// `complete -C line` in a real fish with the script sourced; candidates
/// as fish prints them (`word<TAB>description`), sorted.
fn fish_complete(t: &TempRoot, s: &Path, line: &str) -> Vec<String> {
    let o = shell_cmd(t, "fish", &t.cwd)
        .arg("--no-config")
        .arg("-c")
        .arg("source $argv[1]; complete -C $argv[2]")
        .arg(s)
        .arg(line)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut v: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// The candidates without fish's descriptions.
fn bare(v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn fish_script_is_valid_and_completes() {
    if !have("fish") {
        println!("note: fish not installed; fish completion script not checked");
        return;
    }
    let t = TempRoot::new();
    jobs(&t);
    let s = script(&t, "fish");
    let o = Command::new("fish")
        .arg("--no-execute")
        .arg(&s)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let root = t.root.display().to_string();
    let line = format!("agent-exec --root {root} kill ");
    assert_eq!(
        fish_complete(&t, &s, &line),
        [format!("{RUNNING}\trunning")]
    );
    let line = format!("agent-exec --root {root} start 01ja");
    assert_eq!(bare(fish_complete(&t, &s, &line)), [CREATED]);
}

#[test]
fn fish_completes_values_as_separate_words() {
    if !have("fish") {
        println!("note: fish not installed; fish value completion not checked");
        return;
    }
    let t = TempRoot::new();
    let s = script(&t, "fish");
    std::fs::create_dir(t.cwd.join("subdir")).unwrap();
    std::fs::create_dir(t.cwd.join("subdir/inner")).unwrap();
    std::fs::write(t.cwd.join("settings.toml"), b"").unwrap();
    std::fs::write(t.cwd.join("subdir/data.txt"), b"x").unwrap();
    let fc = |line: &str| bare(fish_complete(&t, &s, line));
    // Directories for DIR flags, in both spellings, relative and absolute.
    assert_eq!(fc("agent-exec run --cwd su"), ["subdir/"]);
    assert_eq!(fc("agent-exec run --cwd=su"), ["--cwd=subdir/"]);
    assert_eq!(fc("agent-exec run --cwd subdir/"), ["subdir/inner/"]);
    let abs = format!("agent-exec run --cwd {}/su", t.cwd.display());
    assert_eq!(fc(&abs), [format!("{}/subdir/", t.cwd.display())]);
    assert_eq!(fc("agent-exec list --root su"), ["subdir/"]);
    // Files for PATH flags.
    assert_eq!(fc("agent-exec run --config se"), ["settings.toml"]);
    assert_eq!(fc("agent-exec run --config=se"), ["--config=settings.toml"]);
    assert_eq!(
        fc("agent-exec run --stdin-file subdir/d"),
        ["subdir/data.txt"]
    );
    // Choices, signals and booleans.
    assert_eq!(fc("agent-exec list --state r"), ["running"]);
    assert_eq!(fc("agent-exec kill --signal SIGTE"), ["SIGTERM"]);
    assert_eq!(fc("agent-exec run --wait=t"), ["--wait=true"]);
    // After a bare --wait, its value or the command (true is both).
    let wait = fc("agent-exec run --wait t");
    for w in ["true", "test"] {
        assert!(wait.contains(&w.to_string()), "{w}: {wait:?}");
    }
    // After `--`: the command's files; its first word is a command name.
    assert_eq!(fc("agent-exec run -- cat se"), ["settings.toml"]);
    assert_eq!(
        fc("agent-exec create -- cat subdir/"),
        ["subdir/data.txt", "subdir/inner/"]
    );
    assert_eq!(fc("agent-exec run --timeout 3 ls se"), ["settings.toml"]);
    let first = fc("agent-exec run -- ech");
    assert!(first.contains(&"echo".to_string()), "{first:?}");
}

#[test]
fn fish_shows_flag_help() {
    if !have("fish") {
        println!("note: fish not installed; fish descriptions not checked");
        return;
    }
    let t = TempRoot::new();
    let s = script(&t, "fish");
    let got = fish_complete(&t, &s, "agent-exec kill --sig");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("--signal\tSignal name or number"),
        "{got:?}"
    );
    let got = fish_complete(&t, &s, "agent-exec run --no-inh");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("--no-inherit-env\t"), "{got:?}");
    assert!(got[0].len() > "--no-inherit-env\t".len(), "{got:?}");
    let got = fish_complete(&t, &s, "agent-exec ki");
    assert_eq!(got, ["kill\tSignal a job's process group"]);
}

/// Balanced `{}`, `()`, `[]` outside strings and comments, and every
/// string closed, by PowerShell's quoting rules: `'...'` with `''` for a
/// quote, `"..."` with backtick escapes and `""`, `#` comments, backtick
/// escapes in code. `$(` inside a double-quoted string and `<#` block
/// comments are refused rather than followed.
fn powershell_balanced(text: &str) -> Result<(), String> {
    let chars: Vec<char> = text.chars().collect();
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied();
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        match c {
            '`' => i += 1,
            '#' if i == 0 || chars[i - 1].is_whitespace() => {
                if i > 0 && chars[i - 1] == '<' {
                    return Err(format!("line {line}: block comment"));
                }
                while at(i + 1).is_some_and(|n| n != '\n') {
                    i += 1;
                }
            }
            '\'' | '"' => {
                let start = line;
                loop {
                    i += 1;
                    match at(i) {
                        None => return Err(format!("string from line {start} not closed")),
                        Some('\n') => line += 1,
                        Some('`') if c == '"' => i += 1,
                        Some('$') if c == '"' && at(i + 1) == Some('(') => {
                            return Err(format!("line {line}: $( in a string"))
                        }
                        Some(q) if q == c && at(i + 1) == Some(c) => i += 1,
                        Some(q) if q == c => break,
                        Some(_) => {}
                    }
                }
            }
            '{' | '(' | '[' => stack.push((c, line)),
            '}' | ')' | ']' => {
                let want = match c {
                    '}' => '{',
                    ')' => '(',
                    _ => '[',
                };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    Some((open, l)) => {
                        return Err(format!("line {line}: {c} closes {open} of line {l}"))
                    }
                    None => return Err(format!("line {line}: unopened {c}")),
                }
            }
            _ => {}
        }
        i += 1;
    }
    match stack.pop() {
        Some((open, l)) => Err(format!("{open} of line {l} not closed")),
        None => Ok(()),
    }
}

#[test]
fn the_balance_check_catches_mistakes() {
    assert!(powershell_balanced("a { b ( 'x)' ) \"}\" } # )").is_ok());
    assert!(powershell_balanced("{ 'it''s' }").is_ok());
    assert!(powershell_balanced("{ ( }").is_err());
    assert!(powershell_balanced("{ 'open }").is_err());
    assert!(powershell_balanced("\"a `\" b").is_err());
    assert!(powershell_balanced("( ]").is_err());
}

#[test]
fn powershell_script_is_well_formed() {
    let t = TempRoot::new();
    let s = script(&t, "powershell");
    let text = std::fs::read_to_string(&s).unwrap();
    powershell_balanced(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for needle in [
        "Register-ArgumentCompleter -Native -CommandName agent-exec -ScriptBlock {",
        "[System.Management.Automation.CompletionResult]::new(",
        "param($wordToComplete, $commandAst, $cursorPosition)",
        "'__complete', '--', ':describe'",
        "':files'",
        "':dirs'",
        "':commands'",
        "ParameterName",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // Calls back the word the user typed, never a path fixed at generation.
    assert!(!text.contains(bin()), "{text}");
    if !have("pwsh") {
        println!("note: pwsh not installed; PowerShell script not parsed");
        return;
    }
    let quoted = s.display().to_string().replace('\'', "''");
    let parse = format!(
        "$errors = $null; $tokens = $null; \
         $null = [System.Management.Automation.Language.Parser]::ParseInput(\
         (Get-Content -Raw -LiteralPath '{quoted}'), [ref]$tokens, [ref]$errors); \
         if ($errors) {{ $errors | ForEach-Object {{ $_.ToString() }}; exit 1 }}"
    );
    let o = Command::new("pwsh")
        .args(["-NoProfile", "-NonInteractive", "-Command", &parse])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn complete_describes_only_on_request() {
    let t = TempRoot::new();
    let o = t.out(&["__complete", "--", "kill", "--sig"]);
    assert_eq!(o.stdout, "--signal\n");
    let o = t.out(&["__complete", "--", ":describe", "kill", "--sig"]);
    assert!(
        o.stdout.starts_with("--signal\tSignal name"),
        "{}",
        o.stdout
    );
    assert_eq!(o.stdout.lines().count(), 1, "{}", o.stdout);
    let o = t.out(&["__complete", "--", ":describe", "run", "--cwd", ""]);
    assert_eq!(o.stdout, ":dirs\n");
}

#[test]
fn the_cache_is_derived_and_heals() {
    let t = TempRoot::new();
    jobs(&t);
    let all = ids(&[CREATED, RUNNING, EXITED, KILLED, FAILED, DEAD, BROKEN]);
    assert_eq!(
        bash(&t, &["delete", ""]),
        ids(&[EXITED, KILLED, FAILED, DEAD])
    );
    let cache = t.root.join(".cache/complete");
    let text = std::fs::read_to_string(&cache).expect("cache written");
    assert!(text.contains(&format!("{EXITED}\texited\t-\t")), "{text}");
    // Not a job for anyone else.
    let v = t.ok(&["list", "--all"]);
    assert_eq!(v["skipped"], 0, "{v}");
    // Garbage is ignored and replaced.
    std::fs::write(&cache, "garbage\n01JAAAAAAAAAAAAAAAAAAAAAA9\texited\t/\n").unwrap();
    assert_eq!(bash(&t, &["status", ""]), all);
    assert!(std::fs::read_to_string(&cache)
        .unwrap()
        .starts_with("agent-exec complete-cache 3 "));
    // A deleted job disappears, from the candidates and the cache.
    std::fs::remove_dir_all(t.job_dir(EXITED)).unwrap();
    assert_eq!(bash(&t, &["delete", ""]), ids(&[KILLED, FAILED, DEAD]));
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(!text.contains(EXITED), "{text}");
}

#[test]
fn an_unchanged_root_is_not_listed_again() {
    let t = TempRoot::new();
    jobs(&t);
    let finished = ids(&[EXITED, KILLED, FAILED, DEAD]);
    assert_eq!(bash(&t, &["delete", ""]), finished);
    // The root's mtime is old enough for the cache to be trusted.
    let touched = std::process::Command::new("touch")
        .args(["-d", "1 hour ago"])
        .arg(&t.root)
        .status()
        .unwrap();
    assert!(touched.success());
    assert_eq!(bash(&t, &["delete", ""]), finished);
    // A line only the cache has shows up: the listing was skipped...
    let cache = t.root.join(".cache/complete");
    let mut text = std::fs::read_to_string(&cache).unwrap();
    let ghost = "01JZZZZZZZZZZZZZZZZZZZZZZZ";
    text.push_str(&format!("{ghost}\texited\t-\t{}\n", t.cwd.display()));
    std::fs::write(&cache, text).unwrap();
    let mut with_ghost = bash(&t, &["delete", ""]);
    assert!(with_ghost.contains(&ghost.to_string()), "{with_ghost:?}");
    with_ghost.retain(|i| i != ghost);
    assert_eq!(with_ghost, finished);
    // ...and any new job changes the root, so it is listed again.
    let v = t.ok(&["create", "--", "true"]);
    let new_id = v["job_id"].as_str().unwrap().to_string();
    let all = bash(&t, &["status", ""]);
    assert!(all.contains(&new_id), "{all:?}");
    assert!(!all.contains(&ghost.to_string()), "{all:?}");
}

/// Short flags are offered beside the long ones once a lone `-` is typed
/// (`tail -f`, `run -i`, `-h`); `--` asks for long flags only.
#[test]
fn complete_offers_short_flags_after_a_lone_dash() {
    let t = TempRoot::new();
    let words = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["__complete", "--"];
        a.extend_from_slice(args);
        t.out(&a).stdout.lines().map(str::to_string).collect()
    };
    let tail = words(&["tail", "-"]);
    for w in ["-f", "--follow", "-h", "--help", "-v"] {
        assert!(tail.iter().any(|x| x == w), "{w}: {tail:?}");
    }
    assert!(words(&["run", "-"]).iter().any(|x| x == "-i"));
    let long = words(&["tail", "--"]);
    assert!(long.iter().all(|x| x.starts_with("--")), "{long:?}");
    assert_eq!(words(&["tail", "-f"]), ["-f"]);
}

/// A flag's second name, shown in help as "Also --x" and taken by the
/// parser, is completed like the flag: by `__complete` itself and through
/// each shell's script; once either name is on the line, neither is
/// offered again.
#[test]
fn flag_aliases_shown_in_help_are_completed() {
    let t = TempRoot::new();
    let help = t.out(&["tail", "--help"]).stdout;
    assert!(help.contains("Also --lines"), "{help}");
    let o = t.out(&["__complete", "--", "tail", "--li"]);
    assert_eq!(o.stdout, "--lines\n");
    let o = t.out(&["__complete", "--", ":describe", "tail", "--li"]);
    assert!(
        o.stdout.starts_with("--lines\tLines to keep"),
        "{}",
        o.stdout
    );
    let all = t.out(&["__complete", "--", "tail", "--"]).stdout;
    assert!(all.lines().any(|l| l == "--tail-lines"), "{all}");
    assert!(all.lines().any(|l| l == "--lines"), "{all}");
    for given in ["--lines", "--tail-lines"] {
        let o = t.out(&["__complete", "--", "tail", given, "5", "--"]);
        assert!(
            !o.stdout
                .lines()
                .any(|l| l == "--lines" || l == "--tail-lines"),
            "{given}: {}",
            o.stdout
        );
    }
    assert_eq!(bash(&t, &["tail", "--li"]), ["--lines"]);
    if have("zsh") {
        let got = zsh_complete(&t, &["tail", "--li"]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].starts_with("--lines:Lines to keep"), "{got:?}");
    }
    if have("fish") {
        let s = script(&t, "fish");
        assert_eq!(
            bare(fish_complete(&t, &s, "agent-exec tail --li")),
            ["--lines"]
        );
    }
}

/// The shipped skill page on completion events (as `install-skills`
/// writes it) names the file a command sink's `AGENT_EXEC_EVENT_PATH`
/// points at as the README does: `completion_event.json` for
/// job.finished, `match_events/<seq>.json` for job.output.matched (never
/// the NDJSON log, whose line is written after the sinks ran).
#[test]
fn the_skill_names_the_event_path_as_the_readme_does() {
    let t = TempRoot::new();
    let o = t.out(&["install-skills"]);
    assert_eq!(o.code, 0, "{}", o.stdout);
    let page = t
        .cwd
        .join(".agents/skills/agent-exec/references/completion-events.md");
    let text = std::fs::read_to_string(&page).unwrap();
    let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = flat(&text);
    let start = text
        .find("- `AGENT_EXEC_EVENT_PATH`")
        .expect("the skill describes AGENT_EXEC_EVENT_PATH");
    let item = &text[start + 2..];
    let item = &item[..item.find(" - `").unwrap_or(item.len())];
    assert!(!item.contains("notification_events.ndjson"), "{item}");
    let at = |needle: &str| {
        item.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing: {item}"))
    };
    assert!(at("completion_event.json") < at("`job.finished`"), "{item}");
    assert!(
        at("`job.finished`") < at("match_events/<seq>.json"),
        "{item}"
    );
    assert!(
        at("match_events/<seq>.json") < at("`job.output.matched`"),
        "{item}"
    );
    assert!(item.contains("before the sink starts"), "{item}");
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(
        flat(&readme).contains("`AGENT_EXEC_EVENT_PATH` is `match_events/<seq>.json`"),
        "the README changed: check the skill against it"
    );
}

/// `--root` is found wherever it is on the line, before the cursor or
/// after it, and its value is unquoted as the shell will pass it:
/// quoted, backslash-escaped, `~`, an exported `$VAR` (0.2.3 took it
/// from the whole line). Scripts installed before the words after the
/// cursor were sent (no `:after=`) still get their answers.
#[test]
fn a_quoted_or_later_root_is_honoured() {
    let t = TempRoot::new();
    let spaced = t.base.join("my jobs");
    let o = t
        .bare()
        .arg("--root")
        .arg(&spaced)
        .args(["create", "--", "true"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = v["job_id"].as_str().unwrap().to_string();
    let one = vec![id.clone()];
    let base = t.base.display().to_string();
    let complete = |args: &[&str]| -> Vec<String> {
        let mut c = t.bare();
        c.env("AE_BASE", &t.base)
            .args(["__complete", "--"])
            .args(args);
        let o = c.output().unwrap();
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let forms = [
        format!("\"{base}/my jobs\""),
        format!("'{base}/my jobs'"),
        format!("{base}/my\\ jobs"),
        format!("{base}/'my jobs'"),
        format!("\"{base}\"/my\\ jobs"),
        "\"$AE_BASE/my jobs\"".to_string(),
        "${AE_BASE}/my\\ jobs".to_string(),
    ];
    for form in &forms {
        assert_eq!(complete(&["--root", form, "start", ""]), one, "{form}");
        let joined = format!("--root={form}");
        assert_eq!(complete(&[&joined, "start", ""]), one, "{joined}");
        // After the cursor.
        assert_eq!(
            complete(&[":after=2", "start", "", "--root", form]),
            one,
            "{form}"
        );
    }
    // `~` is the shell's only when unquoted.
    let home = t.base.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let linked = home.join("jobs");
    std::os::unix::fs::symlink(&spaced, &linked).unwrap();
    assert_eq!(complete(&["--root", "~/jobs", "start", ""]), one);
    assert!(complete(&["--root", "'~/jobs'", "start", ""]).is_empty());
    // Words already unquoted by the shell (fish, PowerShell) are taken as
    // they are.
    let plain = format!("{base}/my jobs");
    assert_eq!(complete(&[":literal", "--root", &plain, "start", ""]), one);
    // Through the scripts: bash and zsh send the words as typed.
    let quoted = format!("'{base}/my jobs'");
    assert_eq!(
        bash_in(&t, &t.cwd, &[], &["--root", &quoted, "start", ""]),
        one
    );
    let escaped = format!("{base}/my\\ jobs");
    let words = ["start", "", "--root", escaped.as_str()];
    assert_eq!(bash_at(&t, &t.cwd, &[], &words, 2), one);
    let words = ["start", "", "--root", "=", escaped.as_str()];
    assert_eq!(bash_at(&t, &t.cwd, &[], &words, 2), one);
    if have("zsh") {
        let got = zsh_complete(&t, &["--root", &quoted, "start", ""]);
        assert_eq!(got, [format!("{id}:created")]);
        let got = zsh_at(&t, &["start", "", "--root", &escaped], 2);
        assert_eq!(got, [format!("{id}:created")]);
    }
    if have("fish") {
        let s = script(&t, "fish");
        let line = format!("agent-exec --root '{base}/my jobs' start ");
        assert_eq!(bare(fish_complete(&t, &s, &line)), one);
    }
}

/// After a bare `--wait` (taken as `--wait true`), the next word is its
/// value or the next argument: both are offered.
#[test]
fn a_bare_wait_offers_booleans_and_the_next_argument() {
    let t = TempRoot::new();
    jobs(&t);
    let words = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["__complete", "--"];
        a.extend_from_slice(args);
        t.out(&a).stdout.lines().map(str::to_string).collect()
    };
    assert_eq!(words(&["start", "--wait", ""]), ["true", "false", CREATED]);
    assert_eq!(words(&["start", "--wait", "01ja"]), [CREATED]);
    assert_eq!(words(&["start", "--wait", "f"]), ["false"]);
    assert_eq!(words(&["run", "--wait", "ec"]), [":commands"]);
    assert_eq!(words(&["run", "--wait", ""]), [":commands"]);
    // A value given, or a flag next: as before.
    assert_eq!(words(&["start", "--wait", "true", ""]), [CREATED]);
    assert!(words(&["start", "--wait", "--u"]).contains(&"--until".to_string()));
    assert!(words(&["start", "--wait", "-"]).contains(&"--until".to_string()));
    assert_eq!(
        bash(&t, &["start", "--wait", ""]),
        ids(&[CREATED, "false", "true"])
    );
}

/// A job with meta.json and neither state.json nor lock reads `failed`
/// (`launch_lost`) in `status`: completion offers it where a failed job
/// goes (`delete`), not to `start`; and describes it so.
#[test]
fn a_job_without_state_is_offered_as_status_reports_it() {
    let t = TempRoot::new();
    jobs(&t);
    std::fs::remove_file(t.job_dir(CREATED).join("state.json")).unwrap();
    let v = t.ok(&["status", CREATED]);
    assert_eq!(v["state"], "failed", "{v}");
    assert!(bash(&t, &["start", ""]).is_empty());
    assert!(bash(&t, &["wait", ""]).iter().all(|i| i != CREATED));
    assert!(bash(&t, &["delete", ""]).contains(&CREATED.to_string()));
    let o = t.out(&[
        "__complete",
        "--",
        ":describe",
        "status",
        "01JAAAAAAAAAAAAAAAAAAAAAA1",
    ]);
    assert_eq!(o.stdout, format!("{CREATED}\tfailed\n"));
    // Still only read: nothing recorded by completion.
    assert!(!t.job_dir(CREATED).join("state.json").exists());
}

/// A job whose launch began (its lock made) and whose launcher died
/// before the job ran reads `failed` (`launch_lost`): not offered to
/// `start`, even when completion had seen it `created` before.
#[test]
fn a_launch_that_died_is_not_offered_to_start() {
    let t = TempRoot::new();
    jobs(&t);
    assert_eq!(bash(&t, &["start", ""]), ids(&[CREATED]));
    std::fs::write(t.job_dir(CREATED).join("lock"), b"").unwrap();
    assert!(bash(&t, &["start", ""]).is_empty());
    assert!(bash(&t, &["delete", ""]).contains(&CREATED.to_string()));
    assert_eq!(t.state(CREATED)["job"]["status"], "created");
    // While a launch holds the lock, it is still created.
    let holder = support::hold_flock(&t.job_dir(CREATED).join("lock"));
    let mut holder = holder;
    assert_eq!(bash(&t, &["start", ""]), ids(&[CREATED]));
    let _ = holder.kill();
    let _ = holder.wait();
}

/// zsh, fish and PowerShell ask `:describe`: every job id carries the
/// state `status` reports (a dead supervisor's job reads failed); an id
/// whose state is unreadable carries nothing. bash stays bare.
#[test]
fn job_ids_are_described_by_their_state() {
    let t = TempRoot::new();
    jobs(&t);
    let o = t.out(&["__complete", "--", ":describe", "status", ""]);
    let want: Vec<String> = [
        (CREATED, "created"),
        (RUNNING, "running"),
        (EXITED, "exited"),
        (KILLED, "killed"),
        (FAILED, "failed"),
        (DEAD, "failed"),
    ]
    .iter()
    .map(|(i, s)| format!("{i}\t{s}"))
    .chain([BROKEN.to_string()])
    .collect();
    let got: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(got, want);
    let o = t.out(&["__complete", "--", ":describe", "run", "--after", ""]);
    assert!(
        o.stdout.contains(&format!("{EXITED}\texited\n")),
        "{}",
        o.stdout
    );
    // Without the marker, bare ids.
    let o = t.out(&["__complete", "--", "status", ""]);
    assert!(!o.stdout.contains('\t'), "{}", o.stdout);
    if have("fish") {
        let s = script(&t, "fish");
        let line = format!("agent-exec --root {} start ", t.root.display());
        assert_eq!(
            fish_complete(&t, &s, &line),
            [format!("{CREATED}\tcreated")]
        );
    }
}

/// `help` takes a subcommand, a group and its member, or `help`: after
/// `help SUB` only what makes a valid `help` line is offered.
#[test]
fn help_offers_only_what_help_takes() {
    let t = TempRoot::new();
    let words = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["__complete", "--"];
        a.extend_from_slice(args);
        t.out(&a).stdout.lines().map(str::to_string).collect()
    };
    let top = words(&["help", ""]);
    for c in ["run", "status", "tag", "help"] {
        assert!(top.contains(&c.to_string()), "{c}: {top:?}");
    }
    assert_eq!(words(&["help", "ki"]), ["kill"]);
    assert!(words(&["help", "run", ""]).is_empty());
    assert!(words(&["help", "rm", ""]).is_empty());
    assert_eq!(words(&["help", "tag", ""]), ["set"]);
    assert!(words(&["help", "tag", "set", ""]).is_empty());
    assert!(words(&["help", "help", ""]).is_empty());
    // Every offered line is one `help` takes.
    for sub in words(&["help", ""]) {
        let o = t.out(&["help", &sub]);
        assert_eq!(o.code, 0, "help {sub}: {}", o.stderr);
        for more in words(&["help", &sub, ""]) {
            let o = t.out(&["help", &sub, &more]);
            assert_eq!(o.code, 0, "help {sub} {more}: {}", o.stderr);
        }
    }
}

/// Sourced by any path (even the bare file name, which is also the
/// function's name), the zsh script registers itself, as its header
/// says; autoloaded from fpath it completes.
#[test]
fn zsh_script_registers_when_sourced_by_any_path() {
    if !have("zsh") {
        println!("note: zsh not installed; zsh registration not checked");
        return;
    }
    let t = TempRoot::new();
    let dir = t.base.join("zfunc");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read(script(&t, "zsh")).unwrap();
    std::fs::write(dir.join("_agent-exec"), text).unwrap();
    let dump = t.base.join("zcompdump");
    for how in [
        "source _agent-exec",
        "source ./_agent-exec",
        "source $PWD/_agent-exec",
        "eval \"$(<_agent-exec)\"",
    ] {
        let o = shell_cmd(&t, "zsh", &dir)
            .arg("-f")
            .arg("-c")
            .arg(format!(
                "autoload -Uz compinit; compinit -u -d {}; {how}; echo rc=$?; print ${{_comps[agent-exec]:-unregistered}}",
                dump.display()
            ))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            out,
            "rc=0\n_agent-exec\n",
            "{how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Autoloaded (the completion system's way): the file's body runs as
    // the function and completes.
    let o = shell_cmd(&t, "zsh", &t.cwd)
        .arg("-f")
        .arg("-c")
        .arg(format!(
            r#"_describe() {{ print -rl -- "${{(@P)4}}"; }}
compdef() {{ print -r -- registered; }}
fpath=({} $fpath); autoload -Uz _agent-exec
words=(agent-exec ki); CURRENT=2; _agent-exec"#,
            dir.display()
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        out,
        "kill:Signal a job's process group\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
