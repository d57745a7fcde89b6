//! Fuzz / property tests of the built binary, black-box, on four surfaces:
//!
//! 1. `argv`: random argument vectors built from the real vocabulary
//!    (every subcommand of `agent-exec --help` and every flag of each
//!    `agent-exec help <cmd>`) and hostile values.
//! 2. `config`: random, valid and broken `config.toml` files (and a FIFO,
//!    a directory, a 1 MiB+ file) given to `run --config`,
//!    `create --config`, and — from the default location — to `start` and
//!    `gc --dry-run` (`gc` has no `--config` flag: it reads no config).
//! 3. `http`: random raw HTTP/1.1 requests to one `serve --port 0`.
//! 4. `jobdir`: job directories corrupted in random ways (random bytes,
//!    huge or mistyped JSON, symlinks out of the root, FIFOs, hostile
//!    names), then read and removed by every command that looks at them.
//!
//! Properties (each case): the process exits 0, 1 or 2 within 15 s;
//! stdout is exactly one JSON document (one YAML document with
//! `--yaml`; text for `--help`, `help`, `--version`, `completions`,
//! and a table for `--table`);
//! `ok` is a bool and matches the exit status; an error has a non-empty
//! snake_case `code`; exit 2 exactly for the usage family; never
//! `internal_error`; stderr never shows a panic; nothing outside the
//! jobs root changes (canary files beside it keep their content, and no
//! out-of-root file's content is ever printed).
//!
//! The bounded pass runs in `cargo test` (about 6 s on two cores).
//! The long pass, with more iterations and a random seed:
//!
//! ```sh
//! AGENT_EXEC_FUZZ_ITERS=20000 AGENT_EXEC_FUZZ_SEED=random \
//!     cargo test --release --test fuzz -- --nocapture
//! ```
//!
//! `AGENT_EXEC_FUZZ_ITERS` is the number of argv cases; the other
//! surfaces scale from it (config: /2, http: x2, jobdir rounds: /25);
//! the default is 600.
//! `AGENT_EXEC_FUZZ_SEED` takes a number (decimal or 0x-hex) or
//! `random`; without it each surface has a fixed seed, so `cargo test`
//! is reproducible. A failure prints the seed and the case to rerun.
//!
//! Safety: these tests may run as root. No generated value can make the
//! binary write, delete or signal anything outside the temporary base
//! directory: paths the binary writes to (`--log`, `--notify-file`,
//! `--output-file`, `--root`) come from a contained set; job ids that
//! traverse (`../canary`) point at canaries inside the base, never at
//! system paths; commands (`run`, `--notify-command`, HTTP `/exec`) are
//! `true`, `echo`, `sleep 0`; pids written into corrupted state files are
//! above any possible pid_max; every binary runs in its own process group.

mod support;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

/// Each binary call must end within this.
const CASE_LIMIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// Deterministic randomness, iterations, seeds
// ---------------------------------------------------------------------------

/// splitmix64: small, fast, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    /// True with probability `num / den`.
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
    fn ps(&mut self, v: &[&'static str]) -> &'static str {
        v[self.below(v.len())]
    }
    /// Bytes without NUL (argv cannot carry NUL).
    fn bytes_no_nul(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next() % 255) as u8 + 1).collect()
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn env_iters() -> usize {
    std::env::var("AGENT_EXEC_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(600)
}

/// The seed of one surface: `AGENT_EXEC_FUZZ_SEED`, or a fixed one.
fn seed_for(surface: &str, fixed: u64) -> u64 {
    let raw = std::env::var("AGENT_EXEC_FUZZ_SEED").unwrap_or_default();
    let raw = raw.trim();
    if raw.is_empty() {
        return fixed;
    }
    if raw == "random" {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let mut r = Rng(t.as_nanos() as u64 ^ u64::from(std::process::id()) ^ fixed);
        let s = r.next();
        eprintln!("fuzz {surface}: seed {s:#x}");
        return s;
    }
    let parsed = match raw.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => raw.parse().ok(),
    };
    parsed.unwrap_or_else(|| panic!("AGENT_EXEC_FUZZ_SEED={raw:?}: not a number or 'random'"))
}

/// Prints how to reproduce when the test fails (panics) while it lives.
struct SeedNote {
    surface: &'static str,
    seed: u64,
    case: String,
}

impl Drop for SeedNote {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "\nfuzz {} FAILED with seed {:#x} at {}\n  rerun: AGENT_EXEC_FUZZ_SEED={:#x} cargo test --test fuzz {} -- --nocapture\n",
                self.surface, self.seed, self.case, self.seed, self.surface
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Running the binary with a deadline
// ---------------------------------------------------------------------------

struct Run {
    argv: Vec<OsString>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn show(&self) -> String {
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                let s = a.to_string_lossy();
                if s.len() > 200 {
                    format!(
                        "{}...<{} bytes>",
                        &s[..s.floor_char_boundary_compat(200)],
                        s.len()
                    )
                } else {
                    s.into_owned()
                }
            })
            .collect();
        format!(
            "argv={argv:?}\n  exit={:?} elapsed={:?}\n  stdout={:?}\n  stderr={:?}",
            self.code,
            self.elapsed,
            clip(&self.stdout, 2000),
            clip(&self.stderr, 2000)
        )
    }
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        i = i.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

fn clip(s: &str, n: usize) -> String {
    if s.len() <= n {
        s.to_string()
    } else {
        format!(
            "{}...<{} bytes>",
            &s[..s.floor_char_boundary_compat(n)],
            s.len()
        )
    }
}

/// Runs `c` (stdin null, own process group) for at most `CASE_LIMIT`;
/// on overrun kills it and reports `code: None`.
fn run_bounded(mut c: Command, argv: Vec<OsString>) -> Run {
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let t0 = Instant::now();
    let mut child = c.spawn().expect("spawn agent-exec");
    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        let _ = tx.send((true, b));
    });
    std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        let _ = tx2.send((false, b));
    });
    let mut code = None;
    let mut timed_out = false;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            code = st.code();
            break;
        }
        if t0.elapsed() > CASE_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            timed_out = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let elapsed = t0.elapsed();
    // The pipes close when the binary exits, unless something it left
    // behind holds them: give that a little time, then report it.
    let (mut so, mut se) = (None, None);
    let until = Instant::now() + Duration::from_secs(3);
    while so.is_none() || se.is_none() {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((true, b)) => so = Some(b),
            Ok((false, b)) => se = Some(b),
            Err(_) => break,
        }
    }
    let held = so.is_none() || se.is_none();
    let mut stderr = String::from_utf8_lossy(&se.unwrap_or_default()).into_owned();
    if held {
        stderr.push_str("\n[fuzz: stdout/stderr still held open 3 s after exit]");
    }
    if timed_out {
        code = None;
    }
    Run {
        argv,
        code: if held { None } else { code },
        stdout: String::from_utf8_lossy(&so.unwrap_or_default()).into_owned(),
        stderr,
        elapsed,
    }
}

/// "exit/code" of a call, for the coverage summary.
fn outcome(r: &Run) -> String {
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap_or(Value::Null);
    let what = v["error"]["code"]
        .as_str()
        .or(v["type"].as_str())
        .unwrap_or(if r.stdout.contains("code:") {
            "yaml"
        } else {
            "text"
        });
    format!("{:?}/{what}", r.code.unwrap_or(-1))
}

/// `agent-exec --root <root> argv...` with the root's private environment.
fn run_in(t: &TempRoot, argv: &[OsString]) -> Run {
    let mut c = t.bare();
    c.arg("--root").arg(&t.root).args(argv);
    let mut full = vec![OsString::from("--root"), t.root.clone().into_os_string()];
    full.extend(argv.iter().cloned());
    run_bounded(c, full)
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

// ---------------------------------------------------------------------------
// The output contract
// ---------------------------------------------------------------------------

const USAGE_FAMILY: &[&str] = &[
    "usage_error",
    "invalid_tag",
    "invalid_signal",
    "invalid_duration",
    "invalid_pattern",
    "invalid_cursor",
];

fn snake_case(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

/// What a call may print: one JSON document, unless `--yaml` (one YAML
/// document) or a help/version/completions request (text, exit 0).
#[derive(Clone, Copy, PartialEq)]
struct Expect {
    yaml: bool,
    text: bool,
    /// `tail --follow` / `--raw`: NDJSON or raw bytes when it succeeds
    /// (the documented exceptions to one document per call).
    stream: bool,
}

const JSON: Expect = Expect {
    yaml: false,
    text: false,
    stream: false,
};

/// Checks the envelope rules on a parsed document.
fn check_envelope(
    ok: Option<bool>,
    typ: Option<&str>,
    code: Option<&str>,
    exit: i32,
) -> Result<(), String> {
    let ok = ok.ok_or("`ok` is not a bool")?;
    match (ok, exit) {
        (true, 0) => Ok(()),
        (true, _) => Err(format!("ok:true with exit {exit}")),
        (false, 0) => Err("ok:false with exit 0".into()),
        (false, _) => {
            if typ != Some("error") {
                return Err(format!("ok:false but type {typ:?}"));
            }
            let code = code.ok_or("error without a string code")?;
            if !snake_case(code) {
                return Err(format!("error code {code:?} is not snake_case"));
            }
            if code == "internal_error" {
                return Err("internal_error".into());
            }
            let usage = USAGE_FAMILY.contains(&code);
            if usage && exit != 2 {
                return Err(format!("usage-family code {code} with exit {exit}"));
            }
            if !usage && exit != 1 {
                return Err(format!(
                    "code {code} with exit {exit} (2 is for the usage family)"
                ));
            }
            Ok(())
        }
    }
}

/// The common property of one call; returns the JSON document if any.
fn check_call(r: &Run, expect: Expect) -> Result<Option<Value>, String> {
    let code = match r.code {
        None => return Err("did not finish within the time bound (or held its pipes)".into()),
        Some(c) if (0..=2).contains(&c) => c,
        Some(c) => return Err(format!("exit status {c}")),
    };
    if r.stderr.contains("panicked") || r.stderr.contains("internal error") {
        return Err("stderr shows a panic / internal error".into());
    }
    if expect.stream && code == 0 && !expect.text {
        // NDJSON: every line one JSON object; raw: any bytes.
        return Ok(None);
    }
    let docs: Vec<&str> = r.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    if !expect.yaml && docs.len() == 1 {
        if let Ok(v) = serde_json::from_str::<Value>(docs[0]) {
            if !v.is_object() {
                return Err("the JSON document is not an object".into());
            }
            if v["schema_version"] != "0.1" {
                return Err("schema_version is not \"0.1\"".into());
            }
            check_envelope(
                v["ok"].as_bool(),
                v["type"].as_str(),
                v["error"]["code"].as_str(),
                code,
            )?;
            return Ok(Some(v));
        }
    }
    if expect.yaml {
        let ys = yaml_rust2::YamlLoader::load_from_str(&r.stdout);
        match ys {
            Ok(ys) if ys.len() == 1 && !ys[0]["ok"].is_badvalue() => {
                let y = &ys[0];
                if y["schema_version"].as_str() != Some("0.1") {
                    return Err("schema_version is not \"0.1\"".into());
                }
                check_envelope(
                    y["ok"].as_bool(),
                    y["type"].as_str(),
                    y["error"]["code"].as_str(),
                    code,
                )?;
                return Ok(None);
            }
            Ok(ys) if !expect.text => {
                return Err(format!("{} YAML documents, or no `ok` key", ys.len()))
            }
            Err(e) if !expect.text => return Err(format!("stdout is not YAML: {e}")),
            _ => {}
        }
    }
    if expect.text {
        if code != 0 || r.stdout.trim().is_empty() {
            return Err("neither one document nor help/version text with exit 0".into());
        }
        return Ok(None);
    }
    Err(format!(
        "stdout is not exactly one JSON document ({} lines)",
        docs.len()
    ))
}

// ---------------------------------------------------------------------------
// Canaries: files outside the jobs root that nothing may touch or print
// ---------------------------------------------------------------------------

struct Canary {
    marker: String,
    files: Vec<(PathBuf, Vec<u8>)>,
    dirs: Vec<(PathBuf, Vec<String>)>,
    base: PathBuf,
    base_entries: Vec<String>,
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

impl Canary {
    /// `base/canary/` (a directory beside the root) with a marker file,
    /// a `passwd` stand-in, and `fakejob/`: a complete copy of a job
    /// directory whose stdout.log holds the marker.
    fn new(t: &TempRoot, tag: &str) -> Canary {
        let marker = format!(
            "AE-FUZZ-CANARY-{tag}-{}-{:x}",
            std::process::id(),
            Rng(t.base.as_os_str().len() as u64).next()
        );
        let dir = t.base.join("canary");
        let fake = dir.join("fakejob");
        std::fs::create_dir_all(&fake).unwrap();
        let mut files = Vec::new();
        let mut put = |p: PathBuf, b: Vec<u8>| {
            std::fs::write(&p, &b).unwrap();
            files.push((p, b));
        };
        put(
            dir.join("secret.txt"),
            format!("{marker} secret\n").into_bytes(),
        );
        put(
            dir.join("passwd"),
            format!("root:x:0:0:{marker}:/root:/bin/sh\n").into_bytes(),
        );
        let meta = json!({
            "job": {"id": "fakejob"}, "schema_version": "0.1", "command": ["true"],
            "created_at": "2026-01-01T00:00:00Z", "root": t.root, "env_keys": [],
            "cwd": t.cwd, "tags": [], "inherit_env": true, "timeout_ms": 0,
            "kill_after_ms": 0, "progress_every_ms": 0, "shell_wrapper": ["sh", "-lc"]
        });
        let state = json!({
            "job": {"id": "fakejob", "status": "exited", "started_at": "2020-01-01T00:00:00Z"},
            "result": {"exit_code": 0, "signal": null, "duration_ms": 1, "timed_out": false},
            "finished_at": "2020-01-01T00:00:00Z", "updated_at": "2020-01-01T00:00:00Z"
        });
        put(fake.join("meta.json"), serde_json::to_vec(&meta).unwrap());
        put(fake.join("state.json"), serde_json::to_vec(&state).unwrap());
        put(
            fake.join("stdout.log"),
            format!("{marker} stdout\n").into_bytes(),
        );
        put(
            fake.join("stderr.log"),
            format!("{marker} stderr\n").into_bytes(),
        );
        put(
            fake.join("full.log"),
            format!("{marker} full\n").into_bytes(),
        );
        let dirs = vec![(dir.clone(), listing(&dir)), (fake.clone(), listing(&fake))];
        Canary {
            marker,
            files,
            dirs,
            base: t.base.clone(),
            base_entries: Vec::new(),
        }
    }

    /// Record the base directory's entries now (after setup).
    fn seal(&mut self) {
        std::fs::create_dir_all(self.base.join("jobs")).unwrap();
        self.base_entries = listing(&self.base);
    }

    /// Nothing outside the root changed, no out-of-root content printed.
    fn check(&self, stdout: &str) -> Result<(), String> {
        if stdout.contains(&self.marker) {
            return Err("stdout shows the content of a file outside the jobs root".into());
        }
        for (p, b) in &self.files {
            match std::fs::read(p) {
                Ok(now) if &now == b => {}
                Ok(_) => return Err(format!("canary {} was modified", p.display())),
                Err(e) => return Err(format!("canary {} is gone: {e}", p.display())),
            }
        }
        for (d, names) in &self.dirs {
            if &listing(d) != names {
                return Err(format!(
                    "canary directory {} changed: {:?}",
                    d.display(),
                    listing(d)
                ));
            }
        }
        if !self.base_entries.is_empty() {
            let now = listing(&self.base);
            if now != self.base_entries {
                return Err(format!(
                    "something was created or removed beside the jobs root: {:?} -> {now:?}",
                    self.base_entries
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The vocabulary, read from the binary's own help
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Flag {
    long: String,
    /// `Some(true)`: takes a value; `Some(false)`: an optional value
    /// (`--wait [true|false]`); `None`: a switch.
    value: Option<bool>,
}

#[derive(Debug, Clone)]
struct Sub {
    words: Vec<String>,
    flags: Vec<Flag>,
}

fn help_text(args: &[&str]) -> String {
    let o = Command::new(support::bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {o:?}");
    String::from_utf8(o.stdout).unwrap()
}

/// Flags of the `Options:` and `Global options:` sections.
fn parse_flags(help: &str) -> Vec<Flag> {
    let mut flags = Vec::new();
    let mut in_opts = false;
    for line in help.lines() {
        if line.ends_with("ptions:") {
            in_opts = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_opts = false;
            continue;
        }
        if !in_opts {
            continue;
        }
        let Some(pos) = line.find("--") else { continue };
        let rest = &line[pos..];
        let long: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ',')
            .collect();
        let after = rest[long.len()..].trim_start();
        let value = if after.starts_with('<') {
            Some(true)
        } else if after.starts_with('[') {
            Some(false)
        } else {
            None
        };
        flags.push(Flag { long, value });
    }
    flags
}

fn vocabulary() -> Vec<Sub> {
    let top = help_text(&["--help"]);
    let mut subs = Vec::new();
    let mut in_cmds = false;
    for line in top.lines() {
        if line == "Commands:" {
            in_cmds = true;
            continue;
        }
        if !line.starts_with(' ') {
            in_cmds = false;
        }
        if !in_cmds {
            continue;
        }
        // "  tag set         Replace ...": the name is up to a double space.
        let name = line
            .trim_start()
            .split("  ")
            .next()
            .unwrap()
            .trim()
            .to_string();
        // `serve` and `mcp` are servers (stdout is theirs, not one
        // document; mcp ends at once on the null stdin): the HTTP surface
        // covers serve, tests/mcp.rs covers mcp.
        if name.is_empty() || name == "serve" || name == "mcp" || name == "help" {
            continue;
        }
        let words: Vec<String> = name.split(' ').map(String::from).collect();
        let mut args: Vec<&str> = vec!["help"];
        args.extend(words.iter().map(String::as_str));
        let h = help_text(&args);
        let flags = parse_flags(&h)
            .into_iter()
            .filter(|f| f.long != "--root")
            .collect();
        if let Some(alias) = line.split("[aliases: ").nth(1) {
            let alias = alias.trim_end_matches(']').trim();
            subs.push(Sub {
                words: vec![alias.to_string()],
                flags: parse_flags(&h)
                    .into_iter()
                    .filter(|f| f.long != "--root")
                    .collect(),
            });
        }
        subs.push(Sub { words, flags });
    }
    subs
}

// ---------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------

const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "+5",
    "007",
    "65536",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "-99999999999999999999999",
    "1e309",
    "-1e309",
    "1.5",
    "NaN",
    "inf",
    "0x10",
    " 1",
    "1 ",
    "１２",
];

const DURATIONS: &[&str] = &[
    "0",
    "500ms",
    "1.5s",
    "5m",
    "2h",
    "1d",
    "1w",
    "9999999999999999999s",
    "18446744073709551615ms",
    "99999999999999999999w",
    "1.",
    ".5",
    "0.0001ms",
    "0.0000000000000000001s",
    "1e3s",
    "-1s",
    "1 s",
    "s",
    "ms",
    "1ss",
    "1y",
    "1.5.5s",
    "١s",
    "1S",
    "1MS",
    "0s",
    "0ms",
    "1h30m",
];

/// Values safe wherever the binary only reads or validates them.
fn hostile(r: &mut Rng) -> OsString {
    let fixed: &[&str] = &[
        "",
        "--",
        "=",
        "-",
        "-x",
        "---",
        " ",
        "\t",
        "\n",
        "é",
        "日本語",
        "\u{202e}evil",
        "😀",
        "e\u{301}",
        "../..",
        "/etc/passwd",
        "/",
        ".",
        "..",
        "a/b",
        "é01",
        "01É",
        "\\",
        "%00",
        "$(true)",
        "`true`",
        "'",
        "\"",
        "a=b=c",
        "TERM",
        "SIGKILL",
        "true",
        "false",
        "null",
        "{}",
    ];
    match r.below(10) {
        0..=3 => OsString::from(*r.pick(fixed)),
        4 => OsString::from(*r.pick(NUMBERS)),
        5 => OsString::from(*r.pick(DURATIONS)),
        6 => {
            let n = 1 + r.below(64);
            OsString::from_vec(r.bytes_no_nul(n))
        }
        7 => {
            // Long strings: usually 300 B, sometimes 100 KB.
            let n = if r.chance(1, 4) { 100 * 1024 } else { 300 };
            let c = *r.pick(&["a", "é", "/", "-", "9"]);
            OsString::from(c.repeat(n / c.len()))
        }
        _ => {
            let s: String = (0..1 + r.below(12))
                .map(|_| *r.pick(&['a', 'Z', '0', '9', '.', '-', '_', '*', 'é', '日', ' ']))
                .collect();
            OsString::from(s)
        }
    }
}

/// A value for `flag`. Flags whose value the binary writes to, runs or
/// roots at get only contained/harmless values.
fn value_for(r: &mut Rng, flag: &str, t: &TempRoot) -> OsString {
    let base = t.base.to_string_lossy().into_owned();
    fn p(s: &str) -> OsString {
        OsString::from(s)
    }
    match flag {
        "--log" | "--notify-file" | "--output-file" => {
            let work = t.cwd.to_string_lossy().into_owned();
            match r.below(8) {
                0 => p(""),
                1 => p("out.log"),
                2 => p("no/such/dir/x.log"),
                3 => OsString::from(format!("{work}/events.ndjson")),
                4 => OsString::from(work),
                5 => p("/dev/null"),
                6 => p("é日本.log"),
                _ => p("sub/../x.ndjson"),
            }
        }
        "--notify-command" | "--output-command" | "--command" => p(r.ps(&[
            "true",
            "",
            "cat >/dev/null",
            "exit 7",
            "echo é",
            " ",
            "sleep 0",
        ])),
        "--shell-wrapper" => match r.below(3) {
            0 => p(r.ps(&[
                "sh -lc",
                "sh -c",
                "bash -c",
                "",
                " ",
                "sh",
                "no-such-shell -c",
                "sh  -c  -e",
            ])),
            _ => {
                let mut v = hostile(r);
                // Never a path or a shell word that could run something.
                if v.to_string_lossy().contains('/') || v.to_string_lossy().contains('$') {
                    v = p("no-such-shell");
                }
                v
            }
        },
        "--root" => p(r.ps(&["alt", "alt/deeper", "é"])),
        // Not the marker file: an error naming a line of the file the
        // caller chose to read is fine.
        "--config" => match r.below(3) {
            0 => OsString::from(format!("{base}/work/missing.toml")),
            1 => OsString::from(format!("{base}/canary")),
            _ => hostile(r),
        },
        "--stdin-file" | "--env-file" => match r.below(3) {
            0 => OsString::from(format!("{base}/canary/secret.txt")),
            1 => OsString::from(format!("{base}/canary")),
            _ => hostile(r),
        },
        "--signal" => match r.below(3) {
            0 | 1 => p(r.ps(&[
                "TERM", "KILL", "SIGTERM", "15", "9", "0", "-1", "65", "99", "SIGFOO", "term",
                "INT", "HUP", "USR1", "STOP", "CONT", "SIGRTMIN", "RTMIN+1", "31", "32", "34",
                "64",
            ])),
            _ => hostile(r),
        },
        "--timeout"
        | "--kill-after"
        | "--until"
        | "--progress-every"
        | "--poll"
        | "--older-than"
        | "--auto-gc-older-than" => match r.below(5) {
            0 => hostile(r),
            _ => p(r.ps(DURATIONS)),
        },
        "--max-bytes"
        | "--limit"
        | "--tail-lines"
        | "--stdin-max-bytes"
        | "--max-jobs"
        | "--auto-gc-max-jobs"
        | "--auto-gc-max-bytes" => match r.below(5) {
            0 => hostile(r),
            _ => p(r.ps(NUMBERS)),
        },
        "--tag" => match r.below(3) {
            0 | 1 => p(r.ps(&[
                "ci", "a.b", "ns.*", "*", "bad tag", "a..b", ".a", "a.", "é", "-", "a-b.c-d", "A.B",
            ])),
            _ => hostile(r),
        },
        "--state" => match r.below(3) {
            0 | 1 => p(r.ps(&[
                "created", "running", "exited", "killed", "failed", "unknown", "EXITED", "done",
            ])),
            _ => hostile(r),
        },
        "--output-match-type" => p(r.ps(&["contains", "regex", "REGEX", "glob", ""])),
        "--output-stream" => p(r.ps(&["stdout", "stderr", "either", "both", ""])),
        "--output-pattern" => match r.below(3) {
            0 | 1 => p(r.ps(&[
                "ERROR",
                "(",
                "[",
                ")",
                "a{99999}",
                "a{1000}{1000}",
                ".*",
                "(?i)x",
                "\\",
                "(a*)*b",
                "\\p{Greek}",
                "[[:alpha:]]",
                "(?P<n>x)",
                "x{2,1}",
                "",
            ])),
            _ => hostile(r),
        },
        "--env" => match r.below(3) {
            0 | 1 => p(r.ps(&[
                "A=1", "A", "=x", "A=", "PATH=", "A=é", "É=1", "A B=1", "1A=2", "A=b=c",
            ])),
            _ => hostile(r),
        },
        "--wait" => p(r.ps(&["true", "false", "TRUE", "yes", "0", ""])),
        "--cwd" => match r.below(3) {
            0 => OsString::from(t.cwd.clone()),
            _ => hostile(r),
        },
        _ => hostile(r),
    }
}

// ---------------------------------------------------------------------------
// 1. Argument vectors
// ---------------------------------------------------------------------------

/// Jobs that argv cases can name: finished ones and created ones.
struct Jobs {
    finished: Vec<String>,
    created: Vec<String>,
}

fn make_jobs(t: &TempRoot) -> Jobs {
    let id = |v: Value| v["job_id"].as_str().unwrap().to_string();
    let finished = vec![id(t.ok(&["run", "--timeout", "5", "--", "echo", "hi"]))];
    let created = (0..2)
        .map(|_| id(t.ok(&["create", "--timeout", "1", "--", "true"])))
        .collect();
    Jobs { finished, created }
}

/// A positional (a job id, mostly): contained even when it traverses.
fn positional(r: &mut Rng, jobs: &Jobs, allow_created: bool) -> OsString {
    let mut ids: Vec<&String> = jobs.finished.iter().collect();
    if allow_created {
        ids.extend(jobs.created.iter());
    }
    match r.below(8) {
        0..=3 if !ids.is_empty() => {
            let id = (*r.pick(&ids)).clone();
            let s = match r.below(4) {
                0 => id,
                1 => id.to_ascii_lowercase(),
                2 => id[..10].to_string(),
                _ => id[..1 + r.below(25)].to_string(),
            };
            OsString::from(s)
        }
        4 => OsString::from(*r.pick(&[
            ".",
            "..",
            "a/b",
            "../canary",
            "../canary/fakejob",
            "../../canary",
            "é",
            "日本",
            "",
            "-",
            "--",
            "01",
            "0",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "zzzzzzzzzzzzzzzzzzzzzzzzzz",
        ])),
        5 => {
            let s = "Z".repeat(if r.chance(1, 3) { 100 * 1024 } else { 200 });
            OsString::from(s)
        }
        6 => OsString::from(*r.pick(NUMBERS)),
        _ => {
            // Hostile, but never a path leaving the base: strip '/'.
            let v = hostile(r).into_vec();
            OsString::from_vec(v.into_iter().filter(|&b| b != b'/').collect())
        }
    }
}

fn gen_argv(r: &mut Rng, subs: &[Sub], t: &TempRoot, jobs: &Jobs) -> (Vec<OsString>, Expect) {
    let mut a: Vec<OsString> = Vec::new();
    let mut text = false;
    let mut yaml = false;
    // Global flags before the subcommand.
    if r.chance(1, 5) {
        a.push("--yaml".into());
        yaml = true;
    }
    if r.chance(1, 10) {
        a.push(r.pick(&["-v", "-vv", "-vvv", "--verbose"]).into());
    }
    if r.chance(1, 30) {
        a.push(r.pick(&["-h", "--help", "-V", "--version"]).into());
        text = true;
    }
    if r.chance(1, 15) {
        // `help <cmd>`, or a subcommand that does not exist.
        let s = r.pick(subs).clone();
        if r.chance(1, 2) {
            a.push("help".into());
            a.extend(s.words.iter().map(OsString::from));
            text = true;
        } else {
            a.push(positional(r, jobs, false));
        }
        return (
            a,
            Expect {
                yaml,
                text,
                stream: false,
            },
        );
    }
    let s = r.pick(subs).clone();
    let name = s.words.join(" ");
    a.extend(s.words.iter().map(OsString::from));
    if name == "completions" {
        text = true;
    }
    let launches = name == "run" || name == "create";
    let mut used: Vec<String> = Vec::new();
    // Mostly well-formed calls with a hostile value or two; now and then
    // a pile of flags, unknown flags and stray positionals.
    let wild = r.chance(1, 5);
    let nflags = if wild { r.below(8) } else { r.below(4) };
    for _ in 0..nflags {
        if s.flags.is_empty() {
            break;
        }
        if wild && r.chance(1, 4) {
            a.push(
                r.pick(&[
                    "--bogus",
                    "--ro",
                    "-x",
                    "---",
                    "--=",
                    "-",
                    "--timeout=",
                    "--yaml=1",
                    "-vx",
                    "--ALL",
                ])
                .into(),
            );
            continue;
        }
        let f = r.pick(&s.flags).clone();
        if f.long == "--global"
            || (launches && f.long == "--timeout")
            || (f.long == "--help" && !r.chance(1, 10))
        {
            continue;
        }
        // Each flag once, but for a rare repeat (a usage error).
        if used.contains(&f.long) && !(wild && r.chance(1, 3)) {
            continue;
        }
        used.push(f.long.clone());
        // `--table` (list, ps, status) prints a table for people: text.
        if f.long == "--help" || f.long == "--version" || f.long == "--table" {
            text = true;
        }
        if f.long == "--yaml" {
            yaml = true;
        }
        match f.value {
            Some(true) => {
                let v = value_for(r, &f.long, t);
                if r.chance(1, 4) {
                    let mut joined = OsString::from(format!("{}=", f.long));
                    joined.push(v);
                    a.push(joined);
                } else if wild && r.chance(1, 8) {
                    // The value missing: the flag comes last.
                    a.push(f.long.into());
                    break;
                } else {
                    a.push(f.long.into());
                    a.push(v);
                }
            }
            Some(false) => {
                a.push(f.long.clone().into());
                if r.chance(1, 2) {
                    a.push(value_for(r, &f.long, t));
                }
            }
            None => {
                if wild && r.chance(1, 5) {
                    let mut joined = OsString::from(format!("{}=", f.long));
                    joined.push(hostile(r));
                    a.push(joined);
                } else {
                    a.push(f.long.into());
                }
            }
        }
    }
    if !launches {
        let takes_id = [
            "start",
            "status",
            "tail",
            "wait",
            "kill",
            "delete",
            "rm",
            "tag set",
            "notify set",
        ]
        .contains(&name.as_str());
        let n = if name == "completions" {
            a.push(
                r.pick(&["bash", "zsh", "fish", "powershell", "elvish", "", "BASH"])
                    .into(),
            );
            usize::from(wild)
        } else if takes_id {
            if wild {
                r.below(3)
            } else {
                1
            }
        } else {
            usize::from(wild && r.chance(1, 3))
        };
        for _ in 0..n {
            a.push(positional(r, jobs, name != "wait"));
        }
    }
    // A follow ends when its job does: bound it like every other call.
    let stream = a
        .iter()
        .any(|w| w == "--follow" || w == "-f" || w == "--raw");
    if stream && !a.iter().any(|w| w == "--until") {
        a.push("--until".into());
        a.push("1".into());
    }
    if launches {
        a.push("--timeout".into());
        a.push("1".into());
        a.push("--".into());
        let cmd: Vec<OsString> = match r.below(5) {
            0 => os(&["true"]),
            1 => os(&["sleep", "0"]),
            2 => os(&["echo", "hi"]),
            3 => vec!["echo".into(), hostile(r)],
            _ => os(&["true", "--", "x"]),
        };
        a.extend(cmd);
    }
    (a, Expect { yaml, text, stream })
}

#[test]
fn argv() {
    let seed = seed_for("argv", 0xA11C_E5EE_D001);
    let mut note = SeedNote {
        surface: "argv",
        seed,
        case: "setup".into(),
    };
    let mut r = Rng(seed);
    let subs = vocabulary();
    let names: Vec<String> = subs.iter().map(|s| s.words.join(" ")).collect();
    for must in [
        "run", "create", "start", "status", "tail", "wait", "kill", "list", "gc", "delete",
        "tag set",
    ] {
        assert!(
            names.iter().any(|n| n == must),
            "vocabulary lacks {must}: {names:?}"
        );
    }
    let run = subs.iter().find(|s| s.words == ["run"]).unwrap();
    assert!(
        run.flags.len() >= 25,
        "run flags parsed from help: {:?}",
        run.flags
    );

    let t = TempRoot::new();
    let mut canary = Canary::new(&t, "argv");
    let mut jobs = make_jobs(&t);
    // Everything an argv case may create beside the root is in `work/`.
    canary.seal();

    let iters = env_iters();
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut stats = std::collections::BTreeMap::new();
    for i in 0..iters {
        if i % 30 == 29 {
            jobs = make_jobs(&t);
        }
        let (argv, expect) = gen_argv(&mut r, &subs, &t, &jobs);
        note.case = format!("case {i}");
        let out = run_in(&t, &argv);
        let res = check_call(&out, expect).and_then(|_| canary.check(&out.stdout));
        *stats.entry(outcome(&out)).or_insert(0) += 1;
        if let Err(e) = res {
            failures.push(format!("case {i}: {e}\n  {}", out.show()));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    eprintln!("fuzz argv: {iters} cases in {:?}: {stats:?}", t0.elapsed());
    assert!(
        failures.is_empty(),
        "{} violation(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 2. Config files
// ---------------------------------------------------------------------------

fn toml_value(r: &mut Rng, depth: usize) -> String {
    match r.below(if depth > 3 { 9 } else { 11 }) {
        0 => r.pick(&["true", "false", "TRUE", "yes"]).to_string(),
        1 => r.pick(NUMBERS).to_string(),
        2 => format!("\"{}\"", r.pick(DURATIONS)),
        3 => r
            .pick(&[
                "\"9999999999999999999s\"",
                "\"\"",
                "\"30d\"",
                "\"é\"",
                "\"\\u0000\"",
                "\"a\\qb\"",
                "'lit'",
                "'''multi\nline'''",
                "\"\"\"ml\"\"\"",
                "\"unterminated",
            ])
            .to_string(),
        4 => r
            .pick(&[
                "1979-05-27T07:32:00Z",
                "07:32:00",
                "1979-05-27",
                "nan",
                "+inf",
                "-inf",
                "0o777",
                "0b101",
                "1_000",
                "1__0",
            ])
            .to_string(),
        5 => "[\"sh\", \"-lc\"]".into(),
        6 => r
            .pick(&[
                "[]",
                "[\"\"]",
                "[\"a\\u0000\"]",
                "[1, 2]",
                "[\"bash\", 1]",
                "{}",
                "{ a = 1 }",
            ])
            .to_string(),
        7 => {
            let n = r.below(4) + 1;
            let n = if r.chance(1, 8) { 5000 } else { n };
            format!("{}1{}", "[".repeat(n), "]".repeat(n))
        }
        8 => String::new(),
        _ => {
            let items: Vec<String> = (0..r.below(4)).map(|_| toml_value(r, depth + 1)).collect();
            if r.chance(1, 2) {
                format!("[{}]", items.join(", "))
            } else {
                let kv: Vec<String> = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("k{i} = {v}"))
                    .collect();
                format!("{{ {} }}", kv.join(", "))
            }
        }
    }
}

fn toml_text(r: &mut Rng) -> Vec<u8> {
    let tables = [
        "[gc]",
        "[notify]",
        "[shell]",
        "[gc.sub]",
        "[[gc]]",
        "[other]",
        "[ gc ]",
        "[\"gc\"]",
        "[gc",
        "[]",
        "[gc]]",
        "[shell.unix]",
    ];
    let keys = [
        "auto",
        "older_than",
        "max_jobs",
        "max_bytes",
        "scan_limit",
        "delete_limit",
        "sink_timeout",
        "unix",
        "\"auto\"",
        "gc.auto",
        "notify.sink_timeout",
        "shell.unix",
        "unknown",
        "é",
        "",
        "a b",
    ];
    let mut s = String::new();
    for _ in 0..r.below(12) {
        match r.below(8) {
            0 | 1 => {
                s.push_str(r.ps(&tables));
                s.push('\n');
            }
            2 => s.push_str(r.ps(&[
                "# comment\n",
                "\n",
                "   \n",
                "\r\n",
                "key\n",
                "= 1\n",
                "\u{feff}",
                "\t\n",
            ])),
            _ => {
                let k = r.pick(&keys).to_string();
                let v = toml_value(r, 0);
                s.push_str(&format!("{k}{}{v}\n", r.pick(&[" = ", "=", " =", " : "])));
            }
        }
    }
    let mut b = s.into_bytes();
    match r.below(12) {
        0 => {
            // Bad UTF-8 somewhere.
            let at = r.below(b.len() + 1);
            b.splice(at..at, [0xff, 0xfe, 0xc3]);
        }
        1 => {
            let at = r.below(b.len() + 1);
            b.truncate(at);
        }
        2 => b.extend(r.bytes(64)),
        3 => b.push(0),
        _ => {}
    }
    b
}

#[test]
fn config() {
    let seed = seed_for("config", 0xC0F1_6000_0002);
    let mut note = SeedNote {
        surface: "config",
        seed,
        case: "setup".into(),
    };
    let mut r = Rng(seed);
    let t = TempRoot::new();
    let dir = t.base.join("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    let default_dir = t.base.join("config").join("agent-exec");
    std::fs::create_dir_all(&default_dir).unwrap();
    let mut canary = Canary::new(&t, "config");
    canary.seal();

    let iters = (env_iters() / 2).max(10);
    let t0 = Instant::now();
    let mut failures = Vec::new();
    for i in 0..iters {
        note.case = format!("case {i}");
        let path = dir.join(format!("c{i}.toml"));
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&path);
        // The special files, early so the bounded pass sees each.
        let desc: String = match i {
            0 => {
                let st = Command::new("mkfifo").arg(&path).status().unwrap();
                assert!(st.success());
                "a FIFO".into()
            }
            1 => {
                std::fs::create_dir(&path).unwrap();
                "a directory".into()
            }
            2 => {
                let mut b = b"[gc]\nauto = true\n".to_vec();
                b.extend(vec![b'#'; 1024 * 1024 + 10]);
                std::fs::write(&path, b).unwrap();
                "a 1 MiB+ file".into()
            }
            3 => {
                let big = format!("[gc]\nolder_than = \"{}\"\n", "9".repeat(1024 * 1023));
                std::fs::write(&path, big).unwrap();
                "a just-under-1 MiB value".into()
            }
            4 => {
                std::fs::write(&path, b"[shell]\nunix = [\"sh\", \"-lc\"]\n[gc]\nauto = false\nolder_than = \"9999999999999999999s\"\nmax_jobs = 18446744073709551615\nmax_bytes = 99999999999999999999999\nscan_limit = -1\n").unwrap();
                "huge numbers".into()
            }
            5 => {
                let target = dir.join("target.toml");
                std::fs::write(&target, b"[gc]\nauto = false\n").unwrap();
                std::os::unix::fs::symlink(&target, &path).unwrap();
                "a symlink to a config file".into()
            }
            _ => {
                let b = toml_text(&mut r);
                std::fs::write(&path, &b).unwrap();
                format!("text {:?}", clip(&String::from_utf8_lossy(&b), 400))
            }
        };
        // The default location too, read by `start`.
        let default = default_dir.join("config.toml");
        let _ = std::fs::remove_file(&default);
        let _ = std::fs::remove_dir_all(&default);
        if i == 0 {
            Command::new("mkfifo").arg(&default).status().unwrap();
        } else if i == 1 {
            std::fs::create_dir(&default).unwrap();
        } else {
            std::fs::copy(&path, &default).ok();
        }
        let p = path.clone().into_os_string();
        let calls: Vec<Vec<OsString>> = vec![
            vec![
                "run".into(),
                "--timeout".into(),
                "1".into(),
                "--config".into(),
                p.clone(),
                "--".into(),
                "true".into(),
            ],
            vec![
                "create".into(),
                "--config".into(),
                p,
                "--".into(),
                "true".into(),
            ],
        ];
        let mut created = None;
        for argv in calls {
            let out = run_in(&t, &argv);
            let res = check_call(&out, JSON).and_then(|v| {
                let v = v.unwrap_or(Value::Null);
                if argv[0] == "create" {
                    created = v["job_id"].as_str().map(String::from);
                }
                match out.code {
                    Some(0) => Ok(()),
                    Some(1)
                        if matches!(
                            v["error"]["code"].as_str(),
                            Some("invalid_config" | "io_error")
                        ) =>
                    {
                        Ok(())
                    }
                    _ => Err(
                        "a config may only give exit 0, or exit 1 with invalid_config/io_error"
                            .into(),
                    ),
                }
            });
            if let Err(e) = res.and_then(|_| canary.check(&out.stdout)) {
                failures.push(format!("case {i} ({desc}): {e}\n  {}", out.show()));
            }
        }
        if let Some(id) = created {
            for argv in [os(&["start", &id]), os(&["gc", "--dry-run"])] {
                let out = run_in(&t, &argv);
                let res = check_call(&out, JSON).and_then(|v| {
                    let v = v.unwrap_or(Value::Null);
                    match out.code {
                        Some(0) => Ok(()),
                        Some(1)
                            if matches!(
                                v["error"]["code"].as_str(),
                                Some("invalid_config" | "io_error")
                            ) =>
                        {
                            Ok(())
                        }
                        _ => Err(
                            "default config: exit 0, or exit 1 with invalid_config/io_error".into(),
                        ),
                    }
                });
                if let Err(e) = res.and_then(|_| canary.check(&out.stdout)) {
                    failures.push(format!(
                        "case {i} ({desc}, default location): {e}\n  {}",
                        out.show()
                    ));
                }
            }
        }
        if failures.len() >= 5 {
            break;
        }
    }
    eprintln!("fuzz config: {iters} cases in {:?}", t0.elapsed());
    assert!(
        failures.is_empty(),
        "{} violation(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 3. HTTP
// ---------------------------------------------------------------------------

struct Served {
    child: std::process::Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_serve(t: &TempRoot) -> Served {
    let err = std::fs::File::create(t.base.join("work").join("serve.err")).unwrap();
    let mut c = t.cmd(&["serve", "--port", "0"]);
    c.stdout(Stdio::piped()).stderr(err).process_group(0);
    let mut child = c.spawn().expect("spawn serve");
    let mut out = child.stdout.take().unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while out.read(&mut b).unwrap_or(0) == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    let doc: Value = serde_json::from_slice(&line)
        .unwrap_or_else(|e| panic!("serve line {:?}: {e}", String::from_utf8_lossy(&line)));
    assert_eq!(doc["type"], "serve", "{doc}");
    let port = doc["port"].as_u64().unwrap() as u16;
    // Keep reading (and dropping) stdout so the server never blocks on it.
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    Served { child, port }
}

struct Resp {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Reads one response; `Ok(None)` for a clean close before any byte.
fn read_response(s: &mut TcpStream, head_only: bool) -> Result<Option<Resp>, String> {
    let mut buf = Vec::new();
    loop {
        // The head.
        let end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > 64 * 1024 {
                return Err("response head over 64 KiB".into());
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) if buf.is_empty() => return Ok(None),
                Ok(0) => {
                    return Err(format!(
                        "connection closed inside a response head: {:?}",
                        String::from_utf8_lossy(&buf)
                    ))
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if buf.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(None)
                }
                Err(e) => return Err(format!("reading the response head: {e}")),
            }
        };
        let head =
            String::from_utf8(buf[..end].to_vec()).map_err(|_| "response head is not UTF-8")?;
        let first = head.lines().next().unwrap_or("");
        let mut parts = first.splitn(3, ' ');
        let (v, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if v != "HTTP/1.1" || code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad status line {first:?}"));
        }
        let status: u16 = code.parse().unwrap();
        let rest = buf.split_off(end);
        if status == 100 {
            buf = rest;
            continue;
        }
        let cl = head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        });
        let mut body = rest;
        let no_body = head_only || status == 204 || status == 304;
        if !no_body {
            match cl {
                Some(n) => {
                    while body.len() < n {
                        let mut chunk = [0u8; 8192];
                        match s.read(&mut chunk) {
                            Ok(0) => {
                                return Err(format!("body cut short: {} of {n} bytes", body.len()))
                            }
                            Ok(k) => body.extend_from_slice(&chunk[..k]),
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(format!("reading the body: {e}")),
                        }
                    }
                    body.truncate(n);
                }
                None => {
                    if !head.to_ascii_lowercase().contains("connection: close") {
                        return Err(
                            "a response without Content-Length on a kept-alive connection".into(),
                        );
                    }
                    let _ = s.read_to_end(&mut body);
                }
            }
        } else {
            body.clear();
        }
        return Ok(Some(Resp { status, head, body }));
    }
}

fn check_response(method: &str, resp: &Resp) -> Result<(), String> {
    let body = String::from_utf8_lossy(&resp.body);
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    if resp.status >= 400 && method != "HEAD" && resp.status != 408 && resp.status != 431 {
        let v = v
            .as_ref()
            .ok_or_else(|| format!("{} without a JSON error body: {body:?}", resp.status))?;
        if v["ok"] != false || v["type"] != "error" {
            return Err(format!(
                "{} body is not an error envelope: {v}",
                resp.status
            ));
        }
        let code = v["error"]["code"].as_str().unwrap_or("");
        if !snake_case(code) {
            return Err(format!("error code {code:?} is not snake_case"));
        }
    }
    if let Some(v) = &v {
        if v["error"]["code"] == "internal_error" {
            return Err(format!("internal_error: {v}"));
        }
        if resp.status < 300 && v.get("ok").is_some() && v["ok"] != true {
            return Err(format!("{} with ok != true: {v}", resp.status));
        }
    }
    // 501 (a method HTTP does not define, an unknown transfer coding),
    // 503 and 505 are refusals of the request; any other 5xx is a fault.
    if resp.status >= 500 && ![501, 503, 505].contains(&resp.status) {
        return Err(format!("status {}: {body:?}", resp.status));
    }
    Ok(())
}

fn exec_body(r: &mut Rng, cwd: &str) -> Vec<u8> {
    let raw: &[&str] = &[
        "",
        "{",
        "null",
        "[]",
        "\"x\"",
        "{\"command\":",
        "{\"command\":[\"true\"],\"until\":1e309}",
        "{\"command\":[\"true\"],\"timeout\":1e309}",
        "{\"command\":[\"true\"],\"max_bytes\":-1}",
        "{\"command\":[\"true\"],\"command\":[\"echo\"]}",
        "{\"command\":[\"true\"]} trailing",
        "{\"command\":[\"true\"]}{\"command\":[\"true\"]}",
        "{\"command\":[\"tr\\u0000ue\"]}",
        "{\"command\":[\"\\ud800\"]}",
    ];
    match r.below(10) {
        0 => return r.pick(raw).as_bytes().to_vec(),
        1 => {
            let n = 200 + r.below(20000);
            return format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes();
        }
        2 => {
            let mut b = b"{\"command\":[\"echo\",\"".to_vec();
            b.extend(r.bytes(16));
            b.extend_from_slice(b"\"]}");
            return b;
        }
        _ => {}
    }
    let hostile_vals = || {
        vec![
            json!(null),
            json!(true),
            json!(5),
            json!(-1),
            json!(1.5),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(""),
            json!("x"),
            json!([]),
            json!({}),
            json!([5]),
            json!({"A": 1}),
        ]
    };
    let mut m = serde_json::Map::new();
    let command = match r.below(8) {
        0 => r.pick(&hostile_vals()).clone(),
        1 => json!(["echo", "é日本", ""]),
        2 => json!(["sleep", "0"]),
        3 => json!("true"),
        4 => Value::Null,
        _ => json!(["true"]),
    };
    if !command.is_null() {
        m.insert("command".into(), command);
    }
    // A small timeout, unless a hostile one is being tried.
    m.insert("timeout_ms".into(), json!(1000));
    for _ in 0..r.below(5) {
        let k = *r.pick(&[
            "cwd",
            "env",
            "timeout_ms",
            "timeout",
            "kill_after_ms",
            "wait",
            "until",
            "max_bytes",
            "tags",
            "stdin",
            "bogus",
            "command",
        ]);
        if k == "command" {
            continue;
        }
        let v = match r.below(3) {
            0 => r.pick(&hostile_vals()).clone(),
            _ => match k {
                "cwd" => json!(*r.pick(&["/", "", "../..", "/etc/passwd", cwd, "rel", "é"])),
                "env" => r
                    .pick(&[
                        json!({"A": "1"}),
                        json!({"A": 1}),
                        json!({"": "x"}),
                        json!({"A=B": "c"}),
                        json!({"A": null}),
                        json!({"É": "é"}),
                    ])
                    .clone(),
                "timeout_ms" | "kill_after_ms" => json!(*r.pick(&[0u64, 1, 500, 1000, u64::MAX])),
                "timeout" => r
                    .pick(&[json!(0.5), json!(-1), json!(1), json!(1e300), json!("1s")])
                    .clone(),
                "wait" => r.pick(&[json!(true), json!(false), json!("yes")]).clone(),
                "until" => r
                    .pick(&[
                        json!(0),
                        json!(1),
                        json!(-1),
                        json!(1e300),
                        json!(u64::MAX),
                        json!(0.001),
                    ])
                    .clone(),
                "max_bytes" => r
                    .pick(&[json!(0), json!(1), json!(-1), json!(u64::MAX), json!(1.5)])
                    .clone(),
                "tags" => r
                    .pick(&[
                        json!(["ci"]),
                        json!(["bad tag"]),
                        json!([""]),
                        json!("ci"),
                        json!([1]),
                    ])
                    .clone(),
                "stdin" => r
                    .pick(&[
                        json!(""),
                        json!("abc"),
                        json!("x".repeat(70000)),
                        json!([1]),
                    ])
                    .clone(),
                _ => json!(1),
            },
        };
        // Never a hostile timeout together with a long run: the command
        // is `true`, `echo` or `sleep 0` anyway.
        m.insert(k.into(), v);
    }
    if m.contains_key("timeout") && r.chance(1, 2) {
        m.remove("timeout_ms");
    }
    serde_json::to_vec(&Value::Object(m)).unwrap()
}

fn gen_request(r: &mut Rng, ids: &[String], cwd: &str) -> (String, Vec<u8>) {
    // Most requests are well-formed with hostile values in the query or
    // body; a quarter break the protocol itself.
    let wild = r.chance(1, 4);
    let mut method = r
        .pick(&[
            "GET", "GET", "GET", "POST", "POST", "POST", "HEAD", "PUT", "DELETE", "OPTIONS",
            "PATCH", "get", "", "G\u{1}T", "CONNECT", "TRACE",
        ])
        .to_string();
    let id = if !ids.is_empty() && r.chance(2, 3) {
        let id = r.pick(ids).clone();
        match r.below(3) {
            0 => id,
            1 => id[..10].to_string(),
            _ => id.to_ascii_lowercase(),
        }
    } else {
        r.pick(&[
            "x",
            "..",
            ".",
            "%2e%2e",
            "a%2Fb",
            "%00",
            "é",
            "%C3%A9",
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "a/b",
            "%",
        ])
        .to_string()
    };
    let route = match r.below(if wild { 12 } else { 7 }) {
        0 => "/health".to_string(),
        1 => "/exec".to_string(),
        2 => format!("/status/{id}"),
        3 => format!("/tail/{id}"),
        4 => format!("/wait/{id}"),
        5 => format!("/kill/{id}"),
        6 => "/list".to_string(),
        7 => r
            .pick(&[
                "/",
                "*",
                "",
                "//health",
                "/status/",
                "/status",
                "/health/",
                "/HEALTH",
                "/exec/x",
                "http://127.0.0.1/health",
                "/health#f",
                "/%zz",
                "/list/..",
                "/../../etc/passwd",
            ])
            .to_string(),
        8 => format!(
            "/{}",
            "a".repeat(r.pick(&[100usize, 9000, 20000]).to_owned())
        ),
        9 => format!("/status/{}", "Z".repeat(200)),
        10 => "/list".to_string(),
        _ => format!("/tail/{id}"),
    };
    if !wild {
        method = match route.as_str() {
            "/exec" => "POST",
            x if x.starts_with("/kill/") => "POST",
            _ => "GET",
        }
        .to_string();
    }
    let mut target = route.clone();
    let takes_query = ["/wait/", "/tail/", "/kill/", "/list"]
        .iter()
        .any(|p| route.starts_with(p));
    if (wild && r.chance(1, 3)) || (takes_query && r.chance(2, 3)) {
        let keys = [
            "until",
            "forever",
            "max_bytes",
            "tail_lines",
            "signal",
            "no_wait",
            "state",
            "cwd",
            "all",
            "tag",
            "limit",
            "bogus",
            "",
        ];
        let vals = [
            "0",
            "1",
            "-1",
            "18446744073709551616",
            "99999999999999999999999",
            "1e309",
            "abc",
            "",
            "true",
            "false",
            "%zz",
            "%00",
            "KILL",
            "TERM",
            "SIGFOO",
            "exited",
            "%2F",
            "é",
            "0.5",
            "+1",
        ];
        let n = 1 + r.below(4);
        let q: Vec<String> = (0..n)
            .map(|_| {
                let k = if wild {
                    *r.pick(&keys)
                } else {
                    match route.split('/').nth(1).unwrap_or("") {
                        "wait" => *r.pick(&["until", "forever"]),
                        "tail" => *r.pick(&["tail_lines", "max_bytes"]),
                        "kill" => *r.pick(&["signal", "no_wait"]),
                        "list" => *r.pick(&["state", "cwd", "all", "tag", "limit"]),
                        _ => *r.pick(&keys),
                    }
                };
                // A running wait needs a bound: jobs here end at once, so
                // even `forever` is short.
                let v = *r.pick(&vals);
                match r.below(8) {
                    0 => k.to_string(),
                    _ => format!("{k}={v}"),
                }
            })
            .collect();
        target.push('?');
        target.push_str(&q.join(if r.chance(1, 10) { ";" } else { "&" }));
    }
    let version = if !wild {
        if r.chance(1, 10) {
            "HTTP/1.0"
        } else {
            "HTTP/1.1"
        }
    } else {
        *r.pick(&[
            "HTTP/1.1",
            "HTTP/1.1",
            "HTTP/1.1",
            "HTTP/1.1",
            "HTTP/1.0",
            "HTTP/2",
            "HTTP/1.2",
            "http/1.1",
            "HTTP/1.1x",
            "",
        ])
    };
    let body: Vec<u8> = if route == "/exec" || r.chance(1, 8) {
        exec_body(r, cwd)
    } else {
        Vec::new()
    };
    let mut head = format!("{method} {target} {version}\r\n");
    if !wild || r.chance(9, 10) {
        head.push_str(r.ps(&[
            "Host: 127.0.0.1\r\n",
            "Host: localhost\r\n",
            "Host: 127.0.0.1\r\n",
        ]));
    }
    let extra = [
        "Host: evil.example.com\r\n",
        "Origin: http://evil.example\r\n",
        "Content-Type: application/json\r\n",
        "Content-Type: text/plain\r\n",
        "Expect: 100-continue\r\n",
        "Transfer-Encoding: chunked\r\n",
        "Connection: close\r\n",
        "Connection: keep-alive\r\n",
        "Authorization: Bearer x\r\n",
        "Authorization: \r\n",
        "NoColonHere\r\n",
        "Bad Name: x\r\n",
        " folded: x\r\n",
        "X-Empty:\r\n",
        "X-Unicode: é日本\r\n",
        "Content-Length: 5\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: abc\r\n",
        "Content-Length: 99999999999999999999\r\n",
    ];
    if wild {
        for _ in 0..r.below(4) {
            head.push_str(r.ps(&extra));
        }
    } else if r.chance(1, 3) {
        head.push_str(r.ps(&[
            "Connection: close\r\n",
            "Content-Type: application/json\r\n",
            "Connection: keep-alive\r\n",
            "Expect: 100-continue\r\n",
        ]));
    }
    if wild && r.chance(1, 10) {
        for i in 0..150 {
            head.push_str(&format!("X-H{i}: v\r\n"));
        }
    }
    if wild && r.chance(1, 10) {
        head.push_str(&format!("X-Big: {}\r\n", "v".repeat(9000)));
    }
    match if wild { r.below(10) } else { 9 } {
        0 => {}
        _ if body.is_empty() && !wild => {}
        1 => head.push_str(&format!(
            "Content-Length: {}\r\n",
            body.len() + 1 + r.below(100)
        )),
        2 => head.push_str(&format!(
            "Content-Length: {}\r\n",
            body.len().saturating_sub(1 + r.below(5))
        )),
        3 => head.push_str(&format!(
            "Content-Length: {}\r\nContent-Length: {}\r\n",
            body.len(),
            body.len() + 1
        )),
        4 => head.push_str(&format!("Content-Length: {}\r\n", 2 * 1024 * 1024)),
        _ => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
    }
    let end = if wild {
        *r.pick(&["\r\n", "\r\n", "\n", ""])
    } else {
        "\r\n"
    };
    head.push_str(end);
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&body);
    if r.chance(1, 10) {
        // Pipelined: a second request right behind.
        bytes.extend_from_slice(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    }
    (method, bytes)
}

/// Sends `bytes`, half-closes, reads every response until the server
/// closes. Errors are property violations.
fn exchange(port: u16, method: &str, bytes: &[u8]) -> Result<Vec<Resp>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(CASE_LIMIT)).unwrap();
    s.set_write_timeout(Some(CASE_LIMIT)).unwrap();
    // The server may answer and close before all is written (413, 431).
    let _ = s.write_all(bytes);
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    loop {
        // Only the first response is to our method; a pipelined second
        // request is a GET.
        let head_only = out.is_empty() && method == "HEAD";
        match read_response(&mut s, head_only)? {
            None => return Ok(out),
            Some(resp) => {
                let close = resp.head.to_ascii_lowercase().contains("connection: close");
                out.push(resp);
                if close || out.len() > 4 {
                    return Ok(out);
                }
            }
        }
    }
}

fn health(port: u16) -> Result<(), String> {
    let rs = exchange(
        port,
        "GET",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )?;
    match rs.first() {
        Some(r) if r.status == 200 => Ok(()),
        Some(r) => Err(format!(
            "/health answered {} {:?}",
            r.status,
            String::from_utf8_lossy(&r.body)
        )),
        None => Err("/health: connection closed without an answer".into()),
    }
}

#[test]
fn http() {
    let seed = seed_for("http", 0x4777_9000_0003);
    let mut note = SeedNote {
        surface: "http",
        seed,
        case: "setup".into(),
    };
    let mut r = Rng(seed);
    let t = TempRoot::new();
    let jobs = make_jobs(&t);
    let mut ids = jobs.finished.clone();
    ids.extend(jobs.created.iter().cloned());
    let mut canary = Canary::new(&t, "http");
    let mut srv = start_serve(&t);
    canary.seal();
    let cwd = t.cwd.to_string_lossy().into_owned();

    let iters = env_iters() * 2;
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut stats = std::collections::BTreeMap::new();
    for i in 0..iters {
        note.case = format!("request {i}");
        let (method, bytes) = gen_request(&mut r, &ids, &cwd);
        let shown = || clip(&String::from_utf8_lossy(&bytes), 600);
        match exchange(srv.port, &method, &bytes) {
            Err(e) => failures.push(format!("request {i}: {e}\n  request={:?}", shown())),
            Ok(rs) => {
                let key = rs
                    .first()
                    .map_or("closed".to_string(), |x| x.status.to_string());
                if std::env::var_os("AGENT_EXEC_FUZZ_DEBUG").is_some() {
                    eprintln!(
                        "{key} <- {:?}\n   {}",
                        clip(&String::from_utf8_lossy(&bytes), 200),
                        rs.first().map_or(String::new(), |x| clip(
                            &String::from_utf8_lossy(&x.body),
                            200
                        ))
                    );
                }
                *stats.entry(key).or_insert(0) += 1;
                for resp in &rs {
                    if let Err(e) = check_response(&method, resp) {
                        failures.push(format!(
                            "request {i}: {e}\n  request={:?}\n  response head={:?}",
                            shown(),
                            resp.head
                        ));
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&resp.body) {
                        if let Some(id) = v["job_id"].as_str() {
                            if !ids.iter().any(|x| x == id) && ids.len() < 40 {
                                ids.push(id.to_string());
                            }
                        }
                    }
                }
            }
        }
        if let Err(e) = canary.check("") {
            failures.push(format!("request {i}: {e}\n  request={:?}", shown()));
        }
        if i % 50 == 49 {
            if let Err(e) = health(srv.port) {
                failures.push(format!("after request {i}: server not answering: {e}"));
                break;
            }
        }
        if failures.len() >= 5 {
            break;
        }
    }
    note.case = "end".into();
    if let Err(e) = health(srv.port) {
        failures.push(format!("at the end: server not answering: {e}"));
    }
    // SIGTERM: a clean exit 0.
    let st = Command::new("kill")
        .args(["-TERM", &srv.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let stop = Instant::now();
    let code = loop {
        if let Some(st) = srv.child.try_wait().unwrap() {
            break st.code();
        }
        if stop.elapsed() > CASE_LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if code != Some(0) {
        failures.push(format!(
            "serve after SIGTERM: exit {code:?} after {:?}",
            stop.elapsed()
        ));
    }
    let err = std::fs::read_to_string(t.base.join("work").join("serve.err")).unwrap_or_default();
    if err.contains("panicked") || err.contains("internal error") {
        failures.push(format!("serve stderr shows a panic: {}", clip(&err, 2000)));
    }
    eprintln!(
        "fuzz http: {iters} requests in {:?}: {stats:?}",
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} violation(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------
// 4. Job-directory contents
// ---------------------------------------------------------------------------

/// A pid no process can have (above the largest possible pid_max, below
/// i32::MAX): corrupted state files may name it without risk.
fn safe_pid(r: &mut Rng) -> Value {
    match r.below(5) {
        0 => json!(4_194_305 + r.below(1000)),
        1 => json!(i32::MAX),
        2 => json!("12"),
        3 => Value::Null,
        _ => json!(1.5),
    }
}

/// Replace every number under a pid-like key with a safe one.
fn sanitize_pids(v: &mut Value, r: &mut Rng) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let kl = k.to_ascii_lowercase();
                if (kl.contains("pid") || kl == "sid" || kl.contains("pgid"))
                    && !kl.contains("start")
                {
                    *x = safe_pid(r);
                } else {
                    sanitize_pids(x, r);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| sanitize_pids(x, r)),
        _ => {}
    }
}

fn weird_value(r: &mut Rng) -> Value {
    r.pick(&[
        json!(5),
        json!(-1),
        json!("running"),
        json!("exited"),
        json!("created"),
        json!("zombie"),
        json!(""),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!(u64::MAX),
        json!(1e300),
        json!("2026-13-45T99:99:99Z"),
        json!("é日本"),
        json!({"code": 5}),
    ])
    .clone()
}

/// Mutate parsed JSON: wrong types, unknown statuses, removed keys.
fn mutate_json(r: &mut Rng, v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    let keys: Vec<String> = m.keys().cloned().collect();
    for _ in 0..1 + r.below(3) {
        match r.below(6) {
            0 if !keys.is_empty() => {
                m.remove(r.pick(&keys));
            }
            1 => {
                if let Some(j) = m.get_mut("job").and_then(Value::as_object_mut) {
                    let st = weird_value(r);
                    j.insert("status".into(), st);
                }
            }
            2 if !keys.is_empty() => {
                let k = r.pick(&keys).clone();
                m.insert(k, weird_value(r));
            }
            3 => {
                if let Some(j) = m.get_mut("job").and_then(Value::as_object_mut) {
                    let id = weird_value(r);
                    j.insert("id".into(), id);
                }
            }
            4 => {
                m.insert("job".into(), weird_value(r));
            }
            _ => {
                if let Some(res) = m.get_mut("result").and_then(Value::as_object_mut) {
                    res.insert("exit_code".into(), weird_value(r));
                    res.insert("signal".into(), weird_value(r));
                }
            }
        }
    }
}

/// The size of `p` if it is a regular file (not a symlink, FIFO, ...).
fn regular_len(p: &Path) -> Option<u64> {
    std::fs::symlink_metadata(p)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map(|m| m.len())
}

/// Remove the FIFOs from the root and its job directories: TempRoot's
/// Drop reads every state.json, and opening a FIFO would block it.
fn defuse(root: &Path) {
    use std::os::unix::fs::FileTypeExt;
    let mut dirs = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        dirs.extend(rd.flatten().map(|e| e.path()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_fifo()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

// Fixed: a job file that is not valid JSON, or is over job::MAX_JSON, was
// reported as `internal_error`; it is now `io_error` ("damaged job
// record"), since a damaged job directory is bad input, not a bug. The
// switch stays so that a regression is easy to tell from a new bug.
const TOLERATE_KNOWN_CORRUPT_JSON_INTERNAL: bool = false;

/// Is this failure the known bug above (and only that)?
fn known_corrupt_json_internal(out: &Run) -> bool {
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    let msg = v["error"]["message"].as_str().unwrap_or("");
    TOLERATE_KNOWN_CORRUPT_JSON_INTERNAL
        && out.code == Some(1)
        && v["error"]["code"] == "internal_error"
        && (msg.ends_with(".json is too large")
            || msg.contains(".json is larger than")
            || (msg.starts_with("parse ")
                && (msg.contains("/meta.json: ") || msg.contains("/state.json: "))))
}

/// One random corruption of job `id`; returns what was done.
fn corrupt(r: &mut Rng, t: &TempRoot, id: &str, big_done: &mut bool) -> String {
    let d = t.job_dir(id);
    let canary = t.base.join("canary");
    // Once the job directory is a symlink (or gone), writing "into" it
    // would write into the canary: leave it alone.
    if !std::fs::symlink_metadata(&d).is_ok_and(|m| m.is_dir()) {
        return format!("{id}: left alone (not a real directory)");
    }
    let file = *r.pick(&[
        "state.json",
        "meta.json",
        "stdout.log",
        "stderr.log",
        "full.log",
        "lock",
    ]);
    let p = d.join(file);
    let rm = |p: &Path| {
        let _ = std::fs::remove_file(p);
        let _ = std::fs::remove_dir_all(p);
    };
    match r.below(14) {
        0 => {
            // Only a regular file, never through a symlink or a FIFO.
            let Some(len) = regular_len(&p) else {
                return format!("{id}/{file}: left alone (not a regular file)");
            };
            let cut = r.below(len as usize + 1);
            if let Ok(f) = std::fs::OpenOptions::new().write(true).open(&p) {
                let _ = f.set_len(cut as u64);
            }
            format!("{id}/{file}: truncated to {cut}")
        }
        1 => {
            let n = r.below(2000);
            rm(&p);
            std::fs::write(&p, r.bytes(n)).unwrap();
            format!("{id}/{file}: {n} random bytes")
        }
        2 | 3 => {
            let which = if r.chance(1, 2) {
                "state.json"
            } else {
                "meta.json"
            };
            let p = d.join(which);
            let mut v: Value = regular_len(&p)
                .and_then(|_| std::fs::read(&p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(json!({"job": {"id": id, "status": "running"}}));
            mutate_json(r, &mut v);
            sanitize_pids(&mut v, r);
            rm(&p);
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            format!("{id}/{which}: {}", clip(&v.to_string(), 300))
        }
        4 => {
            // A state that claims to be running, with a pid nobody has.
            let mut v = json!({
                "job": {"id": id, "status": *r.pick(&["running", "created", "exited", "killed", "failed", "unknown", "paused"]),
                        "started_at": "2020-01-01T00:00:00Z"},
                "result": {"exit_code": null, "signal": null, "duration_ms": null, "timed_out": false},
                "updated_at": "2020-01-01T00:00:00Z",
                "pid": 0, "supervisor_pid": 0, "sid": 0, "pid_start_time": weird_value(r)
            });
            sanitize_pids(&mut v, r);
            let p = d.join("state.json");
            rm(&p);
            std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
            format!("{id}/state.json: {v}")
        }
        5 if !*big_done => {
            *big_done = true;
            let which = *r.pick(&["state.json", "meta.json"]);
            let p = d.join(which);
            let mut s = format!("{{\"job\":{{\"id\":\"{id}\",\"status\":\"exited\"}},\"pad\":\"");
            s.push_str(&"x".repeat(20 * 1024 * 1024));
            s.push_str("\"}");
            rm(&p);
            std::fs::write(&p, s).unwrap();
            format!("{id}/{which}: 20 MB JSON")
        }
        6 | 7 => {
            // Symlinks out of the root: to the marker file, the passwd
            // stand-in (we may be root: never a real system file), the
            // fake job's files.
            let target = match r.below(3) {
                0 => canary.join("secret.txt"),
                1 => canary.join("passwd"),
                _ => canary.join("fakejob").join(file),
            };
            rm(&p);
            std::os::unix::fs::symlink(&target, &p).unwrap();
            format!("{id}/{file} -> {}", target.display())
        }
        8 => {
            rm(&d);
            std::os::unix::fs::symlink(canary.join("fakejob"), &d).unwrap();
            format!("{id} -> canary/fakejob")
        }
        9 => {
            let which = *r.pick(&[
                "stdout.log",
                "stderr.log",
                "full.log",
                "state.json",
                "meta.json",
                "lock",
            ]);
            let p = d.join(which);
            rm(&p);
            let st = Command::new("mkfifo").arg(&p).status().unwrap();
            assert!(st.success());
            format!("{id}/{which}: a FIFO")
        }
        10 => {
            rm(&p);
            std::fs::create_dir_all(p.join("sub")).unwrap();
            format!("{id}/{file}: a directory")
        }
        11 => {
            rm(&p);
            format!("{id}/{file}: removed")
        }
        12 => {
            let p = d.join("lock");
            rm(&p);
            let n = r.below(64);
            std::fs::write(&p, r.bytes(n)).unwrap();
            format!("{id}/lock: {n} random bytes")
        }
        _ => {
            let n = r.below(200);
            if regular_len(&p).is_some() {
                std::fs::write(&p, r.bytes(n)).ok();
            }
            std::os::unix::fs::symlink(canary.join("secret.txt"), d.join("extra-link")).ok();
            format!("{id}/{file}: overwritten in place, plus a stray symlink")
        }
    }
}

const HOSTILE_NAMES: &[&str] = &[
    "é",
    "日本",
    "a\nb",
    "a\tb",
    "a b",
    " lead",
    "trail ",
    "-dash",
    "--all",
    "01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "01arz3ndektsv4rrffq69g5fav",
    "0",
    "\u{202e}x",
    "\\",
    "*",
    "?",
];

#[test]
fn jobdir() {
    let seed = seed_for("jobdir", 0xD1D1_7000_0004);
    let mut note = SeedNote {
        surface: "jobdir",
        seed,
        case: "setup".into(),
    };
    let mut r = Rng(seed);
    let rounds = (env_iters() / 25).max(4);
    let t0 = Instant::now();
    let mut failures = Vec::new();
    let mut big_done = false;
    let mut calls = 0usize;
    let mut known = std::collections::BTreeMap::new();
    for round in 0..rounds {
        let t = TempRoot::new();
        let mut canary = Canary::new(&t, "jobdir");
        let mut ids = Vec::new();
        for _ in 0..2 {
            ids.push(
                t.ok(&["run", "--timeout", "5", "--", "echo", "hi"])["job_id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        ids.push(
            t.ok(&["create", "--timeout", "1", "--", "true"])["job_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        // Directories with hostile names; some complete jobs (a copy of
        // a real job's meta.json and state.json), some empty.
        let mut names: Vec<String> = Vec::new();
        for _ in 0..1 + r.below(4) {
            let name = match r.below(4) {
                0 => "x".repeat(*r.pick(&[127usize, 128, 129, 200])),
                1 => String::from_utf8_lossy(&r.bytes_no_nul(8)).replace('/', "_"),
                _ => r.pick(HOSTILE_NAMES).to_string(),
            };
            let d = t.root.join(&name);
            if std::fs::create_dir(&d).is_err() {
                continue;
            }
            if r.chance(1, 2) {
                let src = t.job_dir(&ids[0]);
                for f in ["meta.json", "state.json", "stdout.log"] {
                    let _ = std::fs::copy(src.join(f), d.join(f));
                }
            }
            names.push(name);
        }
        // A plain file and a symlink in the root itself.
        std::fs::write(t.root.join("not-a-dir"), b"x").unwrap();
        std::os::unix::fs::symlink(
            t.base.join("canary").join("fakejob"),
            t.root.join("01LINKLINKLINKLINKLINKLINK"),
        )
        .unwrap();
        names.push("01LINKLINKLINKLINKLINKLINK".into());
        let mut done = Vec::new();
        for _ in 0..1 + r.below(4) {
            let id = r.pick(&ids).clone();
            done.push(corrupt(&mut r, &t, &id, &mut big_done));
        }
        canary.seal();

        let mut targets: Vec<String> = ids.clone();
        targets.extend(names.iter().cloned());
        for id in ids.iter().chain(names.iter()) {
            let cut = id
                .char_indices()
                .nth(1 + r.below(10))
                .map(|(i, _)| i)
                .unwrap_or(id.len());
            targets.push(id[..cut].to_string());
        }
        let mut plan: Vec<Vec<String>> = Vec::new();
        for _ in 0..8 + r.below(6) {
            let id = r.pick(&targets).clone();
            let argv: Vec<String> = match r.below(12) {
                0 => vec!["status".into(), id],
                1 => vec!["tail".into(), id],
                2 => vec![
                    "tail".into(),
                    "--max-bytes".into(),
                    r.pick(&["0", "1", "18446744073709551615"]).to_string(),
                    "--tail-lines".into(),
                    "0".into(),
                    id,
                ],
                3 => vec!["wait".into(), "--until".into(), "0".into(), id],
                4 => vec!["kill".into(), "--no-wait".into(), id],
                5 => vec!["delete".into(), id],
                6 => vec!["list".into(), "--all".into()],
                7 => vec!["ps".into(), "--all".into()],
                8 => vec!["gc".into(), "--dry-run".into()],
                9 => vec!["gc".into(), "--older-than".into(), "0".into()],
                10 => vec!["tag".into(), "set".into(), id, "--tag".into(), "x".into()],
                _ => vec![
                    "list".into(),
                    "--all".into(),
                    "--state".into(),
                    r.pick(&["running", "exited", "failed", "unknown"])
                        .to_string(),
                ],
            };
            plan.push(argv);
        }
        // Always: the readers on every name, and both gc forms at the end.
        for id in &targets {
            plan.push(vec!["tail".into(), id.clone()]);
        }
        plan.push(vec![
            "list".into(),
            "--all".into(),
            "--limit".into(),
            "0".into(),
        ]);
        plan.push(vec!["gc".into(), "--dry-run".into()]);
        plan.push(vec![
            "delete".into(),
            "--all".into(),
            "--include-created".into(),
        ]);
        plan.push(vec![
            "gc".into(),
            "--older-than".into(),
            "0".into(),
            "--max-jobs".into(),
            "0".into(),
        ]);
        for argv in plan {
            calls += 1;
            note.case = format!("round {round}, {argv:?} after {done:?}");
            let a: Vec<OsString> = argv.iter().map(OsString::from).collect();
            let out = run_in(&t, &a);
            let res = check_call(&out, JSON).and_then(|_| canary.check(&out.stdout));
            if res.is_err()
                && known_corrupt_json_internal(&out)
                && canary.check(&out.stdout).is_ok()
            {
                *known.entry(argv[0].clone()).or_insert(0usize) += 1;
            } else if let Err(e) = res {
                failures.push(format!(
                    "round {round}: {e}\n  corruption: {done:?}\n  {}",
                    out.show()
                ));
            }
            if failures.len() >= 5 {
                break;
            }
        }
        defuse(&t.root);
        if failures.len() >= 5 {
            break;
        }
    }
    eprintln!(
        "fuzz jobdir: {rounds} rounds, {calls} calls in {:?}; KNOWN internal_error on corrupt JSON: {known:?}",
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} violation(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
