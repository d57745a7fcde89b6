//! Shared helpers for the black-box tests: a fresh temporary jobs root,
//! a private HOME/XDG config (so the developer's config never leaks in),
//! and ways to run the built binary and read its one JSON document.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// The binary under test: the one cargo built for these tests, or the one
/// `AGENT_EXEC_TEST_BIN` names (`make test-static` runs the suite again
/// against the static product: musl and its link differ from the test
/// build, and a difference once hid a bug from every test here).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("AGENT_EXEC_TEST_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_agent-exec").to_string())
    })
}

static SEQ: AtomicU64 = AtomicU64::new(0);

pub struct TempRoot {
    pub base: PathBuf,
    pub root: PathBuf,
    pub cwd: PathBuf,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Assert that these top-level keys appear in this order in the raw
    /// text (serde_json's Value sorts keys, so it cannot tell).
    pub fn assert_order(&self, keys: &[&str]) {
        let mut last = 0;
        for k in keys {
            let pat = format!("\"{k}\":");
            let pos = self.stdout[last..]
                .find(&pat)
                .unwrap_or_else(|| panic!("{k} missing or out of order in {}", self.stdout));
            last += pos + pat.len();
        }
    }

    /// The one document on stdout.
    pub fn json(&self) -> Value {
        let docs: Vec<&str> = self.stdout.lines().filter(|l| !l.is_empty()).collect();
        assert_eq!(
            docs.len(),
            1,
            "expected one JSON line, got: {:?}",
            self.stdout
        );
        serde_json::from_str(docs[0]).unwrap_or_else(|e| panic!("bad JSON {:?}: {e}", self.stdout))
    }
}

impl TempRoot {
    pub fn new() -> TempRoot {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let base = std::env::temp_dir().join(format!(
            "ae-test-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let root = base.join("jobs");
        let cwd = base.join("work");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::create_dir_all(base.join("home")).unwrap();
        let cwd = std::fs::canonicalize(&cwd).unwrap();
        TempRoot { base, root, cwd }
    }

    /// A command with a private environment; the caller adds arguments.
    pub fn bare(&self) -> Command {
        self.private(bin())
    }

    /// `program` (another client of agent-exec, say) in the same private
    /// environment as `bare`: this root's HOME and config, no
    /// agent-exec variables from the developer's shell.
    pub fn private(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(&self.cwd)
            .env("HOME", self.base.join("home"))
            .env("XDG_CONFIG_HOME", self.base.join("config"))
            .env_remove("AGENT_EXEC_ROOT")
            .env_remove("XDG_DATA_HOME")
            .env_remove("RUST_LOG")
            .env_remove("AGENT_EXEC_SERVE_TOKEN")
            .stdin(Stdio::null());
        c
    }

    /// `agent-exec --root <root> args...`
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.bare();
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    pub fn exec(&self, mut c: Command) -> Out {
        let o: Output = c.output().expect("spawn agent-exec");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    pub fn out(&self, args: &[&str]) -> Out {
        self.exec(self.cmd(args))
    }

    /// Run and require success: exit 0 and `ok: true`.
    pub fn ok(&self, args: &[&str]) -> Value {
        let o = self.out(args);
        let v = o.json();
        assert_eq!(o.code, 0, "args {args:?}: {v} stderr={}", o.stderr);
        assert_eq!(v["ok"], true, "{v}");
        v
    }

    /// Run and require an error envelope; returns it.
    pub fn err(&self, args: &[&str]) -> (i32, Value) {
        let o = self.out(args);
        let v = o.json();
        assert_eq!(v["ok"], false, "args {args:?}: {v}");
        assert_eq!(v["type"], "error");
        (o.code, v)
    }

    /// The `job_id` of a command that must succeed (`run`, `create`).
    pub fn job_id_of(&self, args: &[&str]) -> String {
        self.ok(args)["job_id"].as_str().unwrap().to_string()
    }

    /// `run --no-wait -- args`, returning the job id.
    pub fn start_job(&self, cmd: &[&str]) -> String {
        let mut a = vec!["run", "--no-wait", "--"];
        a.extend_from_slice(cmd);
        let v = self.ok(&a);
        v["job_id"].as_str().unwrap().to_string()
    }

    /// Wait (event-driven, on the CLI) until the job is terminal.
    pub fn wait_done(&self, id: &str) -> Value {
        let v = self.ok(&["wait", "--until", "60", id]);
        assert_ne!(v["state"], "running", "job {id} still running: {v}");
        v
    }

    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn read(&self, id: &str, name: &str) -> String {
        std::fs::read_to_string(self.job_dir(id).join(name)).unwrap_or_default()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.read(id, "state.json")).unwrap()
    }

    pub fn meta(&self, id: &str) -> Value {
        serde_json::from_str(&self.read(id, "meta.json")).unwrap()
    }

    /// Write a job directory by hand (for tests of readers).
    pub fn fabricate(&self, id: &str, status: &str, cwd: &Path, finished_at: Option<&str>) {
        let d = self.job_dir(id);
        std::fs::create_dir_all(&d).unwrap();
        let meta = serde_json::json!({
            "job": {"id": id}, "schema_version": "0.1", "command": ["true"],
            "created_at": "2026-01-01T00:00:00Z", "root": self.root, "env_keys": [],
            "cwd": cwd, "tags": [], "inherit_env": true, "timeout_ms": 0,
            "kill_after_ms": 0, "progress_every_ms": 0, "shell_wrapper": ["sh", "-lc"]
        });
        std::fs::write(
            d.join("meta.json"),
            serde_json::to_vec_pretty(&meta).unwrap(),
        )
        .unwrap();
        let mut state = serde_json::json!({
            "job": {"id": id, "status": status, "started_at": "2026-01-01T00:00:00Z"},
            "result": {"exit_code": if status == "exited" { Value::from(0) } else { Value::Null }, "signal": null, "duration_ms": null},
            "updated_at": finished_at.unwrap_or("2026-01-01T00:00:00Z"),
        });
        if let Some(f) = finished_at {
            state["finished_at"] = Value::from(f);
        }
        if status == "created" {
            state["job"].as_object_mut().unwrap().remove("started_at");
        }
        std::fs::write(
            d.join("state.json"),
            serde_json::to_vec_pretty(&state).unwrap(),
        )
        .unwrap();
        std::fs::write(d.join("stdout.log"), b"").unwrap();
        std::fs::write(d.join("stderr.log"), b"").unwrap();
    }

    /// Wait until no supervisor of this root is left, nor the auto-GC one
    /// started (`_gc`): what follows the job's answer (auto-GC,
    /// notifications) is done.
    /// How many jobs the root holds (entries not hidden).
    pub fn jobs_in_root(&self) -> usize {
        std::fs::read_dir(&self.root).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
    }

    pub fn settle(&self) {
        let root = self.root.display();
        self.settle_on(&[format!("_supervise {root}"), format!("_gc {root}")]);
    }

    /// Wait until job `id` has no supervisor left, nor this root an
    /// auto-GC sweep (`_gc`), whatever other jobs' supervisors do: a
    /// sweep pins each job it reads, and a reader then leaves that job's
    /// record alone. (The sweep's process is the supervisor's until its
    /// exec.)
    pub fn settle_job(&self, id: &str) {
        let root = self.root.display();
        self.settle_on(&[format!("_supervise {root} {id}"), format!("_gc {root}")]);
    }

    fn settle_on(&self, needles: &[String]) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while needles.iter().any(|n| !self.pids_matching(n).is_empty()) || mid_exec() {
            assert!(
                std::time::Instant::now() < until,
                "supervisors never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Pids of processes whose command line contains `needle`.
    pub fn pids_matching(&self, needle: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if pid == std::process::id() {
                continue;
            }
            let Some(cmdline) = live_cmdline(pid) else {
                continue;
            };
            let s = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if s.contains(needle) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// Is a process of ours (comm `agent-exec`) in the middle of an exec?
/// From the switch to the new image until its arguments are in place,
/// /proc shows it with an empty command line: a supervisor's child
/// becoming `_gc ROOT …` matched no needle for that moment, and `settle`
/// returned with the sweep still to come (a test then found a job the
/// sweep removed after it had looked). Any test's process counts: the
/// moment is microseconds long.
fn mid_exec() -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            return false;
        };
        std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == "agent-exec")
            && live_cmdline(pid).is_some_and(|c| c.is_empty())
    })
}

/// Is the state letter of a /proc `stat` line that of an exited task?
fn stat_is_dead(stat: &str) -> bool {
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.trim_start().bytes().next());
    matches!(state, Some(b'Z' | b'X') | None)
}

/// The command line of process `pid` while any of its threads lives,
/// read from a live thread. A process is gone only when all its threads
/// are: a killed multi-threaded process shows its leader as a zombie
/// (with an empty command line) while its other threads are still
/// exiting, and they hold its descriptors (a job's lock) until the last
/// one has gone.
fn live_cmdline(pid: u32) -> Option<Vec<u8>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        if !stat_is_dead(&stat) {
            return std::fs::read(t.path().join("cmdline")).ok();
        }
    }
    None
}

/// Is any thread of process `pid` alive (see `live_cmdline`)?
/// Hold an exclusive flock on `path` (flock(1) from util-linux, which
/// creates a missing file) until the returned child's stdin is closed or
/// it is killed.
pub fn hold_flock(path: &Path) -> std::process::Child {
    use std::io::BufRead;
    // -o: the lock is held by flock itself, not also by the command it
    // runs, so that killing flock (and reaping it) lets go of the lock at
    // once; the command kept it (a CI run found the lock still held).
    let mut c = Command::new("flock")
        .arg("-o")
        .arg(path)
        .args(["sh", "-c", "echo held; cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let mut line = String::new();
    std::io::BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n");
    c
}

/// The `state` of each entry of a several-job answer's `jobs`.
pub fn states(v: &Value) -> Vec<&str> {
    v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect()
}

/// The test's effective uid, as `id -u` prints it.
#[allow(dead_code)]
/// Another door's error `got` is the command line's `cli` for the same
/// call (both the `error` objects): the same code, details and
/// retryable, and the same message or it after the refused value's name
/// (`parameter grep: …`).
pub fn assert_door_error(got: &Value, cli: &Value, what: &str) {
    for k in ["code", "details", "retryable"] {
        assert_eq!(got[k], cli[k], "{what}");
    }
    let (msg, want) = (
        got["message"].as_str().unwrap(),
        cli["message"].as_str().unwrap(),
    );
    assert!(
        msg == want || msg.ends_with(&format!(": {want}")),
        "{what}: {msg} / {want}"
    );
}

/// True, with a note, when script(1) (which gives a command a terminal)
/// is missing: the caller's test is skipped.
pub fn no_script() -> bool {
    let missing = Command::new("script").arg("--version").output().is_err();
    if missing {
        eprintln!("note: script(1) missing; pseudo-terminal test skipped");
    }
    missing
}

pub fn my_uid() -> String {
    let out = Command::new("id").arg("-u").output().unwrap().stdout;
    String::from_utf8(out).unwrap().trim().to_string()
}

/// `sleep SECS` leading a process group of its own, as a process a job
/// left behind would: the child, its pid, session id and start time (as
/// a job's state records them: `pid`, `sid`, `pid_start_time`).
pub fn group_leader(secs: &str) -> (std::process::Child, u32, u64, u64) {
    use std::os::unix::process::CommandExt;
    let child = Command::new("sleep")
        .arg(secs)
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = child.id();
    let (sid, start) = session_and_start(pid);
    (child, pid, sid, start)
}

/// Process `pid`'s session id and start time (/proc/PID/stat fields 6
/// and 22).
pub fn session_and_start(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    (f[3].parse().unwrap(), f[19].parse().unwrap())
}

pub fn process_alive(pid: u64) -> bool {
    u32::try_from(pid).ok().and_then(live_cmdline).is_some()
}

/// A `serve --port 0` of a root: the child (killed when this is
/// dropped), the port it bound and its first document.
pub struct Served {
    pub child: std::process::Child,
    pub port: u16,
    pub doc: Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TempRoot {
    /// Start `serve --port 0` and read the port from its first line.
    pub fn serve(&self) -> Served {
        self.serve_by(self.cmd(&["serve", "--port", "0"]))
    }

    /// `serve` as `c` starts it (through a shell, say), its port read
    /// from its first line.
    pub fn serve_by(&self, mut c: Command) -> Served {
        use std::io::BufRead;
        let mut child = c
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let doc: Value = serde_json::from_str(&line).unwrap();
        let port = doc["port"].as_u64().unwrap() as u16;
        Served { child, port, doc }
    }
}

/// A copy of the binary under test in `t`'s own `bin/` (an installed
/// one a test may remove or replace while it runs), and a command for
/// it in `t`'s private environment, its root given.
pub fn installed_copy(t: &TempRoot) -> (PathBuf, Command) {
    let dir = t.base.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let installed = dir.join("agent-exec");
    std::fs::copy(bin(), &installed).unwrap();
    let mut c = t.private(&installed);
    c.arg("--root").arg(&t.root);
    (installed, c)
}

/// Spawn `c`, whose program may be a binary copied just now (an
/// installed one): it may be open for writing in a child another test
/// forked meanwhile, until that child's exec closes it, and the spawn
/// fails ETXTBSY for that moment (a known race of copy-then-run).
pub fn spawn_copied(c: &mut Command) -> std::process::Child {
    let mut tries = 0;
    loop {
        match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            r => return r.expect("spawn"),
        }
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, a
/// JSON body when `body` is not empty): the status and the raw body.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, rest.to_string())
}

/// `http`, its body read as JSON (Null when it is not).
pub fn http_json(port: u16, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, text) = http(port, method, path, body);
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        // Stop anything a test left running in this root, then clean up:
        // each job's process group, then the supervisors.
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let st = std::fs::read_to_string(e.path().join("state.json")).unwrap_or_default();
                let v: Value = serde_json::from_str(&st).unwrap_or(Value::Null);
                if v["job"]["status"] == "running" {
                    if let Some(pid) = v["pid"].as_u64() {
                        let _ = Command::new("kill")
                            .args(["-9", "--", &format!("-{pid}")])
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            }
        }
        for pid in self.pids_matching(&self.root.to_string_lossy()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Every object in a JSON text, in the order it opens: its depth (1 for
/// the document) and its keys in the order written. serde_json's Value
/// sorts keys, so it cannot tell the order a page promises.
pub fn objects(text: &str) -> Vec<(usize, Vec<String>)> {
    let b = text.as_bytes();
    let mut out: Vec<(usize, Vec<String>)> = Vec::new();
    // One entry per open container: Some(index into out) for an object.
    let mut open: Vec<Option<usize>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                out.push((open.len() + 1, Vec::new()));
                open.push(Some(out.len() - 1));
            }
            b'[' => open.push(None),
            b'}' | b']' => {
                open.pop();
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let mut j = i + 1;
                while b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if let (b':', Some(Some(o))) = (b[j], open.last()) {
                    out[*o].1.push(text[start..i].to_string());
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// A file system mounted at `at` for one test, unmounted (lazily) when
/// dropped, even when the test fails, before its TempRoot removes
/// anything. None, with a note, where mounting is not allowed (not root).
pub struct Mount(PathBuf);

impl Mount {
    fn with(args: &[&std::ffi::OsStr], at: &Path, what: &str) -> Option<Mount> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(args)
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("note: cannot mount here (not root?); {what} test skipped");
            return None;
        }
        Some(Mount(at.to_path_buf()))
    }

    /// A small tmpfs of `size` (as mount takes it: 1m, 200k), private to
    /// its owner.
    pub fn tmpfs(at: &Path, size: &str) -> Option<Mount> {
        Mount::tmpfs_with(at, &format!("size={size}"), "full-disk")
    }

    /// A tmpfs of 4 MiB with room for only `inodes` files and
    /// directories, private to its owner.
    pub fn tmpfs_inodes(at: &Path, inodes: u32) -> Option<Mount> {
        Mount::tmpfs_with(at, &format!("size=4m,nr_inodes={inodes}"), "out-of-inodes")
    }

    fn tmpfs_with(at: &Path, opts: &str, what: &str) -> Option<Mount> {
        let opts = format!("{opts},mode=0700");
        Mount::with(
            &[
                "-t".as_ref(),
                "tmpfs".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "tmpfs".as_ref(),
            ],
            at,
            what,
        )
    }

    /// `src` bind-mounted at `at`.
    pub fn bind(src: &Path, at: &Path) -> Option<Mount> {
        Mount::with(&["--bind".as_ref(), src.as_os_str()], at, "mount-point")
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The size of a job's stdin.log, once it has at least one byte: the
/// supervisor records what it writes, so the job's pipe is then full
/// (the job never reads) and a send of more is blocked.
pub fn blocked_log(t: &TempRoot, id: &str) -> u64 {
    let log = t.job_dir(id).join("stdin.log");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(n) = std::fs::metadata(&log)
            .ok()
            .map(|m| m.len())
            .filter(|&n| n > 0)
        {
            return n;
        }
        assert!(std::time::Instant::now() < until, "no byte reached the job");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (days-to-civil, UTC).
pub fn ts_of_unix(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// df's count of free 1 KiB blocks on the file system holding `path`.
pub fn free_kib(path: &Path) -> u64 {
    let df = Command::new("df")
        .args(["--output=avail", "-k"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&df.stdout)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("df's free count")
}
