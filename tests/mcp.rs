//! `agent-exec mcp` driven over pipes with raw JSON-RPC lines: the
//! session, the tools, errors, cancellation, concurrency and framing.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::TempRoot;

struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Messages read while looking for another one.
    seen: Vec<Value>,
    next_id: u64,
}

impl Mcp {
    fn start(t: &TempRoot, env: &[(&str, &str)]) -> Mcp {
        let mut c = t.cmd(&["mcp"]);
        for (k, v) in env {
            c.env(k, v);
        }
        Mcp::start_by(c)
    }

    /// The server as `c` starts it.
    fn start_by(mut c: Command) -> Mcp {
        c.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = support::spawn_copied(&mut c);
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Mcp {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            next_id: 100,
        }
    }

    fn init(t: &TempRoot) -> Mcp {
        Mcp::start(t, &[]).initialized()
    }

    /// The session opened: `initialize` answered, `initialized` sent.
    fn initialized(self) -> Mcp {
        let mut m = self;
        let r = m.request("initialize", json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
        assert_eq!(r["result"]["protocolVersion"], "2025-06-18");
        m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        m
    }

    fn send_raw(&mut self, line: &str) {
        let w = self.stdin.as_mut().unwrap();
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
        w.flush().unwrap();
    }

    /// Send a request; its id.
    fn ask(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_raw(&msg.to_string());
        id
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.ask(method, params);
        self.answer(&json!(id), Duration::from_secs(30))
    }

    /// `tools/call`; the result.
    fn call(&mut self, tool: &str, args: Value) -> Value {
        let r = self.request("tools/call", json!({"name": tool, "arguments": args}));
        assert!(r.get("result").is_some(), "{r}");
        r["result"].clone()
    }

    /// `call`, which must succeed; the structured content.
    fn ok(&mut self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args);
        assert_eq!(r["isError"], false, "{r}");
        assert_eq!(r["content"][0]["type"], "text");
        r["structuredContent"].clone()
    }

    fn next(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => {
                Some(serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The answer with this id (other messages are kept in `seen`).
    fn answer(&mut self, id: &Value, timeout: Duration) -> Value {
        if let Some(i) = self
            .seen
            .iter()
            .position(|m| &m["id"] == id && m.get("method").is_none())
        {
            return self.seen.remove(i);
        }
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let m = self
                .next(left)
                .unwrap_or_else(|| panic!("no answer to {id}"));
            if &m["id"] == id && m.get("method").is_none() {
                return m;
            }
            self.seen.push(m);
        }
    }

    fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < end, "server did not end at EOF");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn initialize_negotiates_the_revision() {
    let t = TempRoot::new();
    let mut m = Mcp::start(&t, &[]);
    for (asked, got) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", "2024-11-05"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = m.request("initialize", json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
        assert_eq!(r["jsonrpc"], "2.0");
        assert_eq!(r["result"]["protocolVersion"], got, "{r}");
        assert!(r["result"]["capabilities"]["tools"].is_object());
        assert_eq!(r["result"]["serverInfo"]["name"], "agent-exec");
        assert!(r["result"]["serverInfo"]["version"].is_string());
    }
    // The last negotiation (2025-11-25) holds: structured results.
    m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":{}}"#);
    let r = m.request("ping", json!({}));
    assert_eq!(r["result"], json!({}));
    assert!(m.seen.is_empty(), "notifications got answers: {:?}", m.seen);
}

#[test]
fn older_revisions_get_text_only() {
    let t = TempRoot::new();
    let mut m = Mcp::start(&t, &[]);
    m.request("initialize", json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    let tools = m.request("tools/list", json!({}));
    assert!(tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t.get("outputSchema").is_none()));
    let r = m.call("run", json!({"command": ["echo", "hi"]}));
    assert!(r.get("structuredContent").is_none(), "{r}");
    let doc: Value = serde_json::from_str(r["content"][1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(doc["type"], "run");
}

#[test]
fn tools_list_has_object_schemas() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["run", "status", "tail", "wait", "kill", "send", "list", "delete", "restart"]
    );
    // Each is named by `mcp --help` and its man page.
    let help =
        String::from_utf8(t.bare().args(["mcp", "--help"]).output().unwrap().stdout).unwrap();
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/agent-exec-mcp.1"),
    )
    .unwrap();
    for n in &names {
        assert!(help.contains(n), "mcp --help does not name {n}");
        assert!(page.contains(n), "agent-exec-mcp.1 does not name {n}");
    }
    for t in tools {
        assert!(t["description"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
    }
    // A count with a range says it (parallel said minimum 0, and no
    // maximum, for a value of 1 to 1024).
    let parallel = &tools[0]["inputSchema"]["properties"]["parallel"];
    assert_eq!(
        (&parallel["minimum"], &parallel["maximum"]),
        (&json!(1), &json!(1024)),
        "{parallel}"
    );
    // An optional parameter takes null too (the server reads it as left
    // out); a required one does not.
    let run = &tools[0]["inputSchema"]["properties"];
    assert!(run["command"].is_object() && run["env"]["type"] == json!(["object", "null"]));
    assert_eq!(run["until"]["type"], json!(["number", "string", "null"]));
    assert_eq!(
        run["interactive"]["type"],
        json!(["boolean", "string", "null"])
    );
    assert!(
        !run["command"].to_string().contains("null"),
        "{}",
        run["command"]
    );
    let tail = &tools[2]["inputSchema"]["properties"];
    assert_eq!(
        tail["tail_lines"]["type"],
        json!(["integer", "string", "null"])
    );
    assert_eq!(tail["job_id"]["type"], "string");
    assert_eq!(
        tools[5]["inputSchema"]["properties"]["data"]["type"],
        json!(["string", "null"])
    );
}

/// `stdin` is the job's input, byte for byte, as `send`'s `data` is: a
/// NUL in it goes to the job (it was refused as an argument would be).
/// In an argument or the environment it is still refused.
#[test]
fn run_stdin_carries_nul_bytes() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": ["od", "-An", "-c"], "stdin": "a\u{0}b"}),
    );
    let words: Vec<&str> = d["stdout"].as_str().unwrap().split_whitespace().collect();
    assert_eq!(words, ["a", "\\0", "b"], "{d}");
    let r = m.call("run", json!({"command": ["echo", "a\u{0}b"]}));
    assert_eq!(r["isError"], true, "{r}");
}

/// An MCP server whose binary is removed while it runs (`cargo clean`,
/// an upgrade that unlinks first) still starts jobs: its supervisors
/// come from the file it runs, held open from its start. Exec'd by path,
/// every launch read `launch_lost`.
#[test]
fn a_server_whose_binary_was_removed_still_starts_jobs() {
    let t = TempRoot::new();
    let (installed, mut c) = support::installed_copy(&t);
    c.arg("mcp");
    let mut m = Mcp::start_by(c).initialized();
    std::fs::remove_file(&installed).unwrap();
    let d = m.ok("run", json!({"command": ["echo", "hello"]}));
    assert_eq!(d["state"], "exited", "{d}");
    assert_eq!(d["stdout"], "hello\n", "{d}");
}

#[test]
fn run_inline_and_errors() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok("run", json!({"command": "echo hello"}));
    assert_eq!(
        (
            d["type"].as_str(),
            d["state"].as_str(),
            d["exit_code"].as_i64()
        ),
        (Some("run"), Some("exited"), Some(0))
    );
    assert_eq!(d["stdout"], "hello\n");
    // A failed job is a normal result.
    let d = m.ok("run", json!({"command": ["sh", "-c", "echo oops >&2; exit 7"], "env": {"A": "1"}, "tags": ["x.y"]}));
    assert_eq!(d["exit_code"], 7);
    assert_eq!(d["tags"], json!(["x.y"]));
    // The same as the CLI's status.
    let id = d["job_id"].as_str().unwrap().to_string();
    let st = m.ok("status", json!({"job_id": id}));
    assert_eq!(st, t.ok(&["status", &id]));
    // Calls that could not be carried out: isError with the envelope.
    for (tool, args, code) in [
        ("status", json!({"job_id": "nope"}), "job_not_found"),
        (
            "tail",
            json!({"job_id": id, "since": "garbage"}),
            "invalid_cursor",
        ),
        (
            "tail",
            json!({"job_id": id, "max_bytes": "lots"}),
            "invalid_request",
        ),
        ("tail", json!({"job_id": id, "bogus": 1}), "invalid_request"),
        (
            "wait",
            json!({"job_id": id, "until": -1}),
            "invalid_duration",
        ),
        ("run", json!({}), "invalid_request"),
        (
            "run",
            json!({"command": "true", "stdin": "-"}),
            "invalid_request",
        ),
        ("status", json!("not an object"), "invalid_request"),
        // What no environment or argument can hold, refused as over
        // HTTP, before a job is made.
        (
            "run",
            json!({"command": "true", "env": {"A": "x\0y"}}),
            "invalid_request",
        ),
        (
            "run",
            json!({"command": ["echo", "a\0b"]}),
            "invalid_request",
        ),
        (
            "run",
            json!({"command": "true", "cwd": "/tmp\0x"}),
            "invalid_request",
        ),
    ] {
        let r = m.call(tool, args.clone());
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
        let e = &r["structuredContent"];
        assert_eq!(
            (e["ok"].as_bool(), e["type"].as_str()),
            (Some(false), Some("error"))
        );
        assert_eq!(e["error"]["code"], code, "{tool} {args}: {r}");
    }
    let made = t.ok(&["list", "--all"])["jobs"].as_array().unwrap().len();
    assert_eq!(made, 2, "a refused call made a job");
    // An unknown argument is named against the tool's own arguments
    // (its schema's names: tags, command), not the CLI table's.
    let r = m.call("run", json!({"command": "true", "bogus": 1}));
    let msg = r["structuredContent"]["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    for name in ["command", "tags", "until"] {
        assert!(msg.contains(name), "{msg}");
    }
    assert!(!msg.contains(" tag,"), "{msg}");
    // An unknown tool is a protocol error.
    let r = m.request("tools/call", json!({"name": "reboot", "arguments": {}}));
    assert_eq!(r["error"]["code"], -32602);
    let r = m.request("no/such/method", json!({}));
    assert_eq!(r["error"]["code"], -32601);
}

/// A config `[gc] older_than` that is no duration skips auto-GC (a
/// warning on the server's stderr); the run goes on, as on the CLI.
#[test]
fn run_with_a_config_older_than_that_is_no_duration() {
    let t = TempRoot::new();
    let d = t.base.join("config/agent-exec");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.toml"), "[gc]\nolder_than = \"bogus\"\n").unwrap();
    let mut m = Mcp::init(&t);
    let d = m.ok("run", json!({"command": "echo hello"}));
    assert_eq!(
        (&d["state"], &d["stdout"]),
        (&json!("exited"), &json!("hello\n")),
        "{d}"
    );
}

/// Under `[log] full = false`, `no_full_log: false` writes full.log, as
/// it does over HTTP (it was taken as the switch not given), and so does
/// `full_log: true`; nothing said, the config holds.
#[test]
fn no_full_log_false_writes_full_log_as_over_http() {
    let t = TempRoot::new();
    let d = t.base.join("config/agent-exec");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.toml"), "[log]\nfull = false\n").unwrap();
    let mut m = Mcp::init(&t);
    for (args, full) in [
        (json!({"command": "echo a", "no_full_log": false}), true),
        (json!({"command": "echo a", "full_log": true}), true),
        (json!({"command": "echo a"}), false),
        (json!({"command": "echo a", "no_full_log": true}), false),
    ] {
        let v = m.ok("run", args.clone());
        let id = v["job_id"].as_str().unwrap();
        assert_eq!(t.job_dir(id).join("full.log").exists(), full, "{args}");
    }
}

/// An id that itself holds a lone surrogate escape comes back as it was
/// written: it came back with U+FFFD in the escape's place, and the
/// client never found its answer (audit 27). Read as raw lines: such a
/// line is no text serde_json reads.
#[test]
fn an_id_with_a_lone_surrogate_comes_back_as_written() {
    use std::io::Write;
    let t = TempRoot::new();
    let mut c = t.cmd(&["mcp"]);
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let ids = [r#""\ud800""#, r#""a\udc00b""#, r#""\udfff\ud800x""#];
    let mut input = child.stdin.take().unwrap();
    for id in ids {
        writeln!(input, r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), ids.len(), "{text}");
    for (line, id) in lines.iter().zip(ids) {
        assert!(line.contains(&format!(r#""id":{id},"#)), "{id}: {line}");
        assert!(line.contains("-32602"), "{line}");
    }
}

#[test]
fn malformed_and_invalid_messages() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    m.send_raw("{not json");
    let r = m.answer(&Value::Null, Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32700);
    m.send_raw(r#"{"id":7,"method":"ping"}"#);
    let r = m.answer(&json!(7), Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32600);
    m.send_raw("[1,2]");
    let r = m.answer(&Value::Null, Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32600);
    // params, when given, is an object (a null is taken as none).
    m.send_raw(r#"{"jsonrpc":"2.0","id":71,"method":"ping","params":42}"#);
    let r = m.answer(&json!(71), Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    m.send_raw(r#"{"jsonrpc":"2.0","id":72,"method":"tools/list","params":[1]}"#);
    let r = m.answer(&json!(72), Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    m.send_raw(r#"{"jsonrpc":"2.0","id":73,"method":"ping","params":null}"#);
    assert_eq!(
        m.answer(&json!(73), Duration::from_secs(5))["result"],
        json!({})
    );
    // An argument given twice is refused, as in an HTTP body, never
    // decided by the last one (the job ran 'echo b').
    m.send_raw(
        r#"{"jsonrpc":"2.0","id":74,"method":"tools/call","params":{"name":"run","arguments":{"command":"echo a","command":"echo b"}}}"#,
    );
    let r = m.answer(&json!(74), Duration::from_secs(5));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let e = &r["result"]["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_request", "{r}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("duplicate field `command`"),
        "{r}"
    );
    assert_eq!(t.ok(&["list"])["jobs"], json!([]));
    assert_eq!(m.request("ping", json!({}))["result"], json!({}));
    // A lone surrogate escape is JSON syntax but no character: the
    // request is refused under its own id (it was a parse error with id
    // null, and the client waited); a notification that holds one gets
    // no answer, as none does.
    m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/x","params":{"a":"\udc00"}}"#);
    m.send_raw(
        r#"{"jsonrpc":"2.0","id":"s","method":"tools/call","params":{"name":"status","arguments":{"job_id":"\ud800"}}}"#,
    );
    let r = m.answer(&json!("s"), Duration::from_secs(5));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lone surrogate"),
        "{r}"
    );
    assert_eq!(m.request("ping", json!({}))["result"], json!({}));
    assert!(
        m.seen
            .iter()
            .all(|x| x["id"] != Value::Null || x["error"]["code"] != -32700),
        "{:?}",
        m.seen
    );
    // A number past a double's range is valid JSON: the request keeps
    // its id (it was a parse error with id null, never answered), and
    // the argument is refused as the number it is, never taken for text:
    // a duration's is invalid_duration, as a negative one's is, and the
    // message quotes it as written (it showed the object standing in
    // for it, {"$huge_number":"1e309"}, as "expected number or string").
    for (id, args, code, quoted) in [
        (
            8,
            r#"{"command":"true","timeout":1e309}"#,
            "invalid_duration",
            "1e309",
        ),
        (
            11,
            r#"{"command":"true","until":-1e309}"#,
            "invalid_duration",
            "-1e309",
        ),
        (
            12,
            r#"{"job_id":"x","max_bytes":1e400}"#,
            "invalid_request",
            "1e400",
        ),
        // With the code of the field's own bad values: an unknown
        // signal's, milliseconds for yield_ms, a boolean's.
        (
            13,
            r#"{"job_id":"x","signal":1e309}"#,
            "invalid_signal",
            "1e309",
        ),
        (
            14,
            r#"{"job_id":"x","data":"","yield_ms":-1e309}"#,
            "invalid_duration",
            "-1e309",
        ),
        (
            15,
            r#"{"job_id":"x","data":"","eof":1e309}"#,
            "invalid_request",
            "1e309",
        ),
    ] {
        let tool = match id {
            12 => "tail",
            13 => "kill",
            14 | 15 => "send",
            _ => "run",
        };
        m.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{args}}}}}"#
        ));
        let r = m.answer(&json!(id), Duration::from_secs(5));
        assert_eq!(r["result"]["isError"], true, "{r}");
        let e = &r["result"]["structuredContent"]["error"];
        assert_eq!(e["code"], code, "{r}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("got {quoted}"))
                || msg.contains(&format!("{quoted} is out of range")),
            "{r}"
        );
        assert!(!msg.contains("huge_number"), "{r}");
        assert!(id != 14 || msg.contains("milliseconds"), "{r}");
        assert!(id != 15 || msg.contains("true or false"), "{r}");
    }
    m.send_raw(
        r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"name":"run","arguments":{"command":[1e309]}}}"#,
    );
    let r = m.answer(&json!(10), Duration::from_secs(5));
    assert_eq!(r["result"]["isError"], true, "{r}");
    let msg = r["result"]["structuredContent"]["error"]["message"].to_string();
    assert!(msg.contains("got 1e309"), "{r}");
    // An env value may be a secret: a wrong shape is named, not shown.
    for env in [
        json!(["A=SECRET"]),
        json!("A=SECRET"),
        json!({"A": ["SECRET"]}),
    ] {
        let r = m.call("run", json!({"command": "true", "env": env}));
        assert_eq!(r["isError"], true, "{r}");
        assert!(!r.to_string().contains("SECRET"), "{r}");
    }
    m.send_raw(r#"{"jsonrpc":"2.0","id":9,"method":"ping","params":{"x":-1E+400}}"#);
    assert_eq!(
        m.answer(&json!(9), Duration::from_secs(5))["result"],
        json!({})
    );
    assert_eq!(m.ok("list", json!({}))["jobs"].as_array().unwrap().len(), 0);
}

/// An id past a double's range is answered as it was written (it came
/// back a string, "1e309", which no client matches to its request).
#[test]
fn a_huge_id_is_answered_as_written() {
    let t = TempRoot::new();
    let mut c = t.bare();
    c.arg("mcp").stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(
        stdin,
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-06-18","capabilities":{{}},"clientInfo":{{"name":"t","version":"0"}}}}}}"#
    )
    .unwrap();
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1e309,"method":"ping"}}"#).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let last = text.lines().last().unwrap_or_default();
    assert_eq!(
        last, r#"{"jsonrpc":"2.0","id":1e309,"result":{}}"#,
        "{text}"
    );
}

#[test]
fn run_past_until_then_tail_with_cursors() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "echo one; sleep 1; echo two; sleep 1; echo three", "until": 0.3}),
    );
    assert_eq!(d["state"], "running", "{d}");
    assert!(d["waited_ms"].as_u64().unwrap() < 2000);
    let id = d["job_id"].as_str().unwrap().to_string();
    let mut cursor = d["cursor"].as_str().unwrap().to_string();
    let mut text = d["stdout"].as_str().unwrap().to_string();
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let tl = m.ok("tail", json!({"job_id": id, "since": cursor}));
        assert_eq!(tl["type"], "tail");
        text.push_str(tl["stdout"].as_str().unwrap());
        cursor = tl["cursor"].as_str().unwrap().to_string();
        if text.contains("three") {
            break;
        }
        assert!(Instant::now() < end, "never saw the end: {text:?}");
        m.ok("wait", json!({"job_id": id, "until": 0.5}));
    }
    assert_eq!(text, "one\ntwo\nthree\n");
    // until: 0 answers at once.
    let t0 = Instant::now();
    let w = m.ok("wait", json!({"job_id": id, "until": 0}));
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(w["type"], "wait");
}

#[test]
fn interactive_send_and_readiness() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "echo ready; while read l; do echo got:$l; done", "interactive": true, "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    let w = m.ok(
        "wait",
        json!({"job_id": id, "output": "ready", "until": 10}),
    );
    assert_eq!(w["matched"]["line"], "ready", "{w}");
    assert_eq!(w["state"], "running");
    let s = m.ok(
        "send",
        json!({"job_id": id, "data": "hi", "newline": true, "yield_ms": 2000}),
    );
    assert_eq!(s["type"], "send");
    assert_eq!(s["bytes_written"], 3);
    let mut seen = s["stdout"].as_str().unwrap().to_string();
    if !seen.contains("got:hi") {
        let w = m.ok(
            "wait",
            json!({"job_id": id, "output": "got:hi", "until": 5}),
        );
        seen = w["matched"]["line"].as_str().unwrap_or("").to_string();
    }
    assert!(seen.contains("got:hi"), "{seen:?}");
    let s = m.ok("send", json!({"job_id": id, "eof": true, "yield_ms": 3000}));
    assert_eq!(s["stdin_open"], false);
    let w = m.ok("wait", json!({"job_id": id, "until": 5}));
    assert_eq!(
        (w["state"].as_str(), w["exit_code"].as_i64()),
        (Some("exited"), Some(0)),
        "{w}"
    );
}

#[test]
fn cancelled_wait_gets_no_answer_and_others_are_served() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok("run", json!({"command": "sleep 30", "until": 0}));
    let id = d["job_id"].as_str().unwrap().to_string();
    let waiting = m.ask("tools/call", json!({"name": "wait", "arguments": {"job_id": id, "until": 20}, "_meta": {"progressToken": "p1"}}));
    // Others are answered meanwhile.
    let t0 = Instant::now();
    assert_eq!(m.request("ping", json!({}))["result"], json!({}));
    let st = m.ok("status", json!({"job_id": id}));
    assert_eq!(st["state"], "running");
    assert!(t0.elapsed() < Duration::from_secs(3));
    std::thread::sleep(Duration::from_millis(400));
    m.send_raw(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": waiting, "reason": "test"}}).to_string());
    // A readiness wait, cancelled too.
    let ready = m.ask(
        "tools/call",
        json!({"name": "wait", "arguments": {"job_id": id, "output": "never", "until": 20}}),
    );
    std::thread::sleep(Duration::from_millis(200));
    m.send_raw(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": ready}}).to_string());
    // Nothing comes for either (within well under their until).
    let end = Instant::now() + Duration::from_secs(2);
    while let Some(msg) = m.next(end.saturating_duration_since(Instant::now())) {
        assert_ne!(
            msg["id"],
            json!(waiting),
            "answered a cancelled call: {msg}"
        );
        assert_ne!(msg["id"], json!(ready), "answered a cancelled call: {msg}");
        m.seen.push(msg);
    }
    // Progress came for the first while it waited, rising, and none
    // after the cancel was taken.
    let prog: Vec<u64> = m
        .seen
        .iter()
        .filter(|s| s["method"] == "notifications/progress" && s["params"]["progressToken"] == "p1")
        .map(|s| s["params"]["progress"].as_u64().unwrap())
        .collect();
    assert!(!prog.is_empty(), "no progress: {:?}", m.seen);
    assert!(prog.windows(2).all(|w| w[0] < w[1]), "{prog:?}");
    // The job goes on; the workers are free again.
    let st = m.ok("status", json!({"job_id": id}));
    assert_eq!(st["state"], "running");
    let k = m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
    assert_eq!(k["type"], "kill");
    let w = m.ok("wait", json!({"job_id": id, "until": 5}));
    assert_eq!(w["state"], "killed", "{w}");
}

/// A cancelled `send` whose bytes are blocked (the job never reads; its
/// pipe is full) ends at once: no answer, no more bytes to the job, and
/// it holds nothing up (the server exits at EOF without waiting out its
/// yield).
#[test]
fn cancel_ends_a_blocked_send() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "sleep 60", "interactive": true, "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    let data = "x".repeat(256 << 10);
    let sending = m.ask(
        "tools/call",
        json!({"name": "send", "arguments": {"job_id": id, "data": data, "yield_ms": 20000}}),
    );
    support::blocked_log(&t, &id);
    let t0 = Instant::now();
    m.send_raw(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": sending}}).to_string());
    let st = m.ok("status", json!({"job_id": id}));
    assert_eq!(st["state"], "running");
    assert!(
        m.seen.iter().all(|s| s["id"] != json!(sending)),
        "answered a cancelled call"
    );
    // EOF: the server ends once its calls are done, and the cancelled
    // send is (`close` allows 5 s, a quarter of its yield).
    assert!(m.close().success());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    t.ok(&["kill", &id]);
}

#[test]
fn cancel_ends_the_wait_promptly() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok("run", json!({"command": "sleep 30", "until": 0}));
    let id = d["job_id"].as_str().unwrap().to_string();
    // Fill every worker with a wait, cancel them all: a call made right
    // after is answered at once, so each wait ended promptly.
    let ids: Vec<u64> = (0..8)
        .map(|_| {
            m.ask(
                "tools/call",
                json!({"name": "wait", "arguments": {"job_id": id, "until": 20}}),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for i in &ids {
        m.send_raw(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": i}}).to_string());
    }
    let t0 = Instant::now();
    m.ok("status", json!({"job_id": id}));
    assert!(
        t0.elapsed() < Duration::from_millis(1000),
        "{:?}",
        t0.elapsed()
    );
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

#[test]
fn limits_bound_observations() {
    let t = TempRoot::new();
    let mut m = Mcp::start(
        &t,
        &[
            ("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS", "0.5"),
            ("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", "1"),
        ],
    );
    m.request("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    let t0 = Instant::now();
    let d = m.ok("run", json!({"command": "sleep 30"}));
    assert_eq!(d["state"], "running");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let id = d["job_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    let w = m.ok("wait", json!({"job_id": id, "until": 3600}));
    assert_eq!(w["state"], "running");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let w = m.ok("wait", json!({"job_id": id, "forever": true}));
    assert_eq!(w["state"], "running");
    m.ok("kill", json!({"job_id": id}));
    // kill's watch of a job that does not die (3 s on the command line)
    // is held to the limit too.
    let d = m.ok(
        "run",
        json!({"command": "trap '' TERM; echo armed; while :; do sleep 0.1; done", "until": 1}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    m.ok("wait", json!({"job_id": id, "output": "armed"}));
    let t0 = Instant::now();
    let k = m.ok("kill", json!({"job_id": id}));
    let took = t0.elapsed();
    assert_eq!(k["state"], "running", "{k}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

#[test]
fn list_delete_and_kill() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let a = m.ok("run", json!({"command": "true"}))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let l = m.ok("list", json!({}));
    assert_eq!(l["type"], "list");
    assert!(
        l["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|j| j["job_id"] == json!(a)),
        "{l}"
    );
    let all = m.ok("list", json!({"all": true, "limit": 0}));
    assert!(!all["jobs"].as_array().unwrap().is_empty());
    // The text says what was done with each job, not only its state: a
    // running job skipped read like the one deleted beside it.
    let running = t.start_job(&["sleep", "30"]);
    let r = m.call("delete", json!({"job_id": [a.as_str(), running.as_str()]}));
    let text = text_of(&r);
    assert!(
        text.contains(&format!("{a} exited [deleted: explicit_delete]")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{running} running [skipped: running]")),
        "{text}"
    );
    t.ok(&["kill", &running]);
    let r = m.call("status", json!({"job_id": a}));
    assert_eq!(r["structuredContent"]["error"]["code"], "job_not_found");
}

#[test]
fn oversized_line_is_refused_and_the_server_goes_on() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let hwm = |m: &Mcp| {
        let status = std::fs::read_to_string(format!("/proc/{}/status", m.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    let before = hwm(&m);
    // 5 MiB, then 24 MiB: each answered with an error (id null) and
    // skipped; the server goes on.
    for mib in [5, 24] {
        let mut big = String::from(r#"{"jsonrpc":"2.0","id":99,"method":"ping","params":{"x":""#);
        big.push_str(&"x".repeat(mib << 20));
        big.push_str(r#""}}"#);
        m.send_raw(&big);
        let r = m.answer(&Value::Null, Duration::from_secs(10));
        assert_eq!(r["error"]["code"], -32600, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains("too long"),
            "{r}"
        );
        assert_eq!(m.request("ping", json!({}))["result"], json!({}));
    }
    // Memory stayed bounded: a line is never held whole (at most the
    // 4 MiB limit while it is read).
    if let (Some(a), Some(b)) = (before, hwm(&m)) {
        assert!(b - a < 16 * 1024, "peak RSS grew by {} kB", b - a);
    }
}

#[test]
fn a_flood_of_concurrent_calls() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let ids: Vec<u64> = (0..50)
        .map(|i| {
            m.ask(
                "tools/call",
                json!({"name": "run", "arguments": {"command": format!("echo n{i}")}}),
            )
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let r = m.answer(&json!(id), Duration::from_secs(60));
        let d = &r["result"]["structuredContent"];
        assert_eq!(d["stdout"], format!("n{i}\n"), "{r}");
    }
}

#[test]
fn eof_ends_the_server_and_jobs_go_on() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok("run", json!({"command": "sleep 1; echo late", "until": 0}));
    let id = d["job_id"].as_str().unwrap().to_string();
    let d = m.ok("run", json!({"command": "sleep 3; echo later", "until": 0}));
    let other = d["job_id"].as_str().unwrap().to_string();
    // A wait in flight at EOF is answered before the server ends.
    let asked = m.ask(
        "tools/call",
        json!({"name": "wait", "arguments": {"job_id": id, "until": 20}}),
    );
    drop(m.stdin.take());
    let r = m.answer(&json!(asked), Duration::from_secs(30));
    let w = &r["result"]["structuredContent"];
    assert_eq!(
        (w["state"].as_str(), w["stdout"].as_str()),
        (Some("exited"), Some("late\n")),
        "{r}"
    );
    let status = m.close();
    assert!(status.success(), "{status:?}");
    // The server is gone; its jobs are not.
    let w = t.ok(&["wait", "--until", "10", &other]);
    assert_eq!(
        (w["state"].as_str(), w["stdout"].as_str()),
        (Some("exited"), Some("later\n"))
    );
}

/// The messages a server wrote for this input, read to its end.
fn served(
    t: &TempRoot,
    env: &[(&str, &str)],
    input: &[Value],
) -> (std::process::Output, Vec<Value>) {
    let mut c = t.cmd(&["mcp"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn agent-exec mcp");
    let mut text = String::new();
    for msg in input {
        text.push_str(&msg.to_string());
        text.push('\n');
    }
    // Written at once, then EOF: the server has read everything before
    // most of it is answered. (A server that refused to start has
    // closed its end: nothing to check here.)
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(text.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let msgs = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (out, msgs)
}

fn initialize(revision: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": revision, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

fn tool_call(id: u64, tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": args}})
}

#[test]
fn eof_answers_every_request_already_read() {
    let t = TempRoot::new();
    let (out, msgs) = served(
        &t,
        &[],
        &[
            initialize("2025-06-18"),
            tool_call(1, "run", json!({"command": "echo hi"})),
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
            tool_call(3, "run", json!({"command": "sleep 1; echo late"})),
            // Cancelled by the client: no answer, as ever.
            tool_call(4, "run", json!({"command": "sleep 1"})),
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}}),
        ],
    );
    assert!(out.status.success(), "{:?}", out.status);
    let answer = |id: u64| {
        msgs.iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("no answer to {id}: {msgs:?}"))
    };
    let d = &answer(1)["result"]["structuredContent"];
    assert_eq!(
        (d["state"].as_str(), d["stdout"].as_str()),
        (Some("exited"), Some("hi\n")),
        "{d}"
    );
    assert_eq!(answer(2)["result"], json!({}));
    let d = &answer(3)["result"]["structuredContent"];
    assert_eq!(
        (d["state"].as_str(), d["stdout"].as_str()),
        (Some("exited"), Some("late\n")),
        "{d}"
    );
    assert!(msgs.iter().all(|m| m["id"] != json!(4)), "{msgs:?}");
    assert_eq!(msgs.len(), 4, "{msgs:?}");
}

#[test]
fn eof_then_stdout_closed_ends_the_server_without_the_calls() {
    let t = TempRoot::new();
    let mut c = t.cmd(&["mcp"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn agent-exec mcp");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    writeln!(stdin, "{}", initialize("2025-06-18")).unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("protocolVersion"), "{line}");
    // A call that would observe for 40 s; then nobody listens any more.
    writeln!(
        stdin,
        "{}",
        tool_call(1, "run", json!({"command": "sleep 60", "until": 40}))
    )
    .unwrap();
    drop(stdin);
    drop(stdout);
    let end = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the server waited for a call nobody would read");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    for j in t.ok(&["list", "--all"])["jobs"].as_array().unwrap() {
        t.out(&["kill", "--signal", "KILL", j["job_id"].as_str().unwrap()]);
    }
}

#[test]
fn batches_under_2025_03_26() {
    let t = TempRoot::new();
    let mut m = Mcp::start(&t, &[]);
    let r = m.request("initialize", json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    assert_eq!(r["result"]["protocolVersion"], "2025-03-26");
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "run", "arguments": {"command": "echo hi"}}},
        {"foo": 1},
        {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}},
        {"jsonrpc": "2.0", "id": 4, "method": "no/such"},
    ]);
    m.send_raw(&batch.to_string());
    // One array: an answer per request, none for the notification.
    let all = m.next(Duration::from_secs(30)).expect("the batch's answer");
    let all = all
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {all}"));
    assert_eq!(all.len(), 5, "{all:?}");
    let by_id = |id: Value| {
        all.iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("{id}: {all:?}"))
    };
    assert_eq!(by_id(json!(1))["result"], json!({}));
    let run = by_id(json!(2));
    // 2025-03-26 has no structured results: the document is the second text.
    let doc: Value =
        serde_json::from_str(run["result"]["content"][1]["text"].as_str().unwrap()).unwrap();
    assert_eq!(doc["stdout"], "hi\n", "{run}");
    assert_eq!(by_id(Value::Null)["error"]["code"], -32600);
    assert_eq!(by_id(json!(3))["error"]["code"], -32600);
    assert_eq!(by_id(json!(4))["error"]["code"], -32601);
    // An empty batch is an invalid request, answered alone.
    m.send_raw("[]");
    let r = m.next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (Value::Null, json!(-32600)),
        "{r}"
    );
    // Notifications only: nothing at all comes back.
    m.send_raw(r#"[{"jsonrpc":"2.0","method":"notifications/initialized"}]"#);
    m.send_raw(r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    let r = m.next(Duration::from_secs(5)).unwrap();
    assert_eq!(r["id"], 9, "{r}");
    // A cancelled call in a batch has no answer; the others do.
    let r = m.call("run", json!({"command": "sleep 30", "until": 0}));
    let doc: Value = serde_json::from_str(r["content"][1]["text"].as_str().unwrap()).unwrap();
    let id = doc["job_id"].as_str().unwrap().to_string();
    m.send_raw(&json!([
        {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "wait", "arguments": {"job_id": id, "until": 30}}},
        {"jsonrpc": "2.0", "id": 11, "method": "ping"},
    ]).to_string());
    m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":10}}"#);
    let r = m.next(Duration::from_secs(20)).unwrap();
    assert_eq!(r, json!([{"jsonrpc": "2.0", "id": 11, "result": {}}]));
    m.call("kill", json!({"job_id": id, "signal": "KILL"}));
}

/// A batch's calls share the one limit a call has: the array (sent once
/// all are answered) comes within it, whatever the count. Eight workers
/// took 24 waits in rounds, each round the whole limit (6 s for 2 s).
#[test]
fn a_batch_is_answered_within_one_calls_limit() {
    let t = TempRoot::new();
    let mut m = Mcp::start(&t, &[("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", "2")]);
    let r = m.request("initialize", json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    assert_eq!(r["result"]["protocolVersion"], "2025-03-26");
    let r = m.call("run", json!({"command": "sleep 30", "until": 0}));
    let doc: Value = serde_json::from_str(r["content"][1]["text"].as_str().unwrap()).unwrap();
    let id = doc["job_id"].as_str().unwrap().to_string();
    let calls: Vec<Value> = (0..24)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {"name": "wait", "arguments": {"job_id": id, "until": 30}}}))
        .collect();
    let t0 = Instant::now();
    m.send_raw(&Value::Array(calls).to_string());
    let all = m.next(Duration::from_secs(30)).expect("the batch's answer");
    let took = t0.elapsed();
    assert_eq!(all.as_array().map(Vec::len), Some(24), "{all}");
    assert!(
        took < Duration::from_millis(4500),
        "answered after {took:?}"
    );
    m.call("kill", json!({"job_id": id, "signal": "KILL"}));
}

#[test]
fn batches_are_refused_under_2025_06_18() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    m.send_raw(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
    let r = m.next(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (r["id"].clone(), r["error"]["code"].clone()),
        (Value::Null, json!(-32600)),
        "{r}"
    );
    assert_eq!(m.request("ping", json!({}))["result"], json!({}));
}

#[test]
fn argument_conflicts_are_invalid_requests() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "cat", "interactive": true, "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    for (tool, args) in [
        ("send", json!({"job_id": id})),
        ("run", json!({"command": "true", "tty_size": "80x24"})),
        (
            "run",
            json!({"command": "true", "forever": true, "until": 1}),
        ),
        ("wait", json!({"job_id": id, "forever": true, "until": 1})),
        (
            "restart",
            json!({"job_id": id, "forever": true, "until": 1}),
        ),
        ("run", json!({"command": "true", "parallel": 2})),
        (
            "run",
            json!({"command": "true", "queue": "q", "parallel": 0}),
        ),
        ("run", json!({"command": "true", "queue": "..q"})),
        ("run", json!({"command": "true", "shell_wrapper": " "})),
        ("tail", json!({"job_id": id, "follow": true})),
        // As on the command line (they were accepted).
        (
            "run",
            json!({"command": "true", "no_wait": true, "forever": true}),
        ),
        (
            "restart",
            json!({"job_id": id, "wait": false, "forever": true}),
        ),
        ("list", json!({"cwd": ""})),
    ] {
        let r = m.call(tool, args.clone());
        let e = &r["structuredContent"]["error"];
        assert_eq!(e["code"], "invalid_request", "{tool} {args}: {r}");
        let msg = e["message"].as_str().unwrap();
        assert!(!msg.contains("--"), "{tool} {args}: named as a flag: {msg}");
    }
    // None of them made a job.
    assert_eq!(m.ok("list", json!({}))["jobs"].as_array().unwrap().len(), 1);
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

/// An argument error about one job's read (a cursor, a pattern) names
/// the job as the call gave it in `details.job_id`: the command line's
/// error for the same arguments.
#[test]
fn argument_errors_about_a_jobs_read_name_the_job_as_given() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let id = t.start_job(&["true"]);
    let short = &id[..10];
    for (tool, args, cli) in [
        (
            "tail",
            json!({"job_id": short, "since": "garbage"}),
            vec!["tail", "--since", "garbage", short],
        ),
        (
            "tail",
            json!({"job_id": id, "grep": "(", "grep_type": "regex"}),
            vec!["tail", "--grep", "(", "--grep-type", "regex", &id],
        ),
        (
            "wait",
            json!({"job_id": id, "output": "(", "output_match_type": "regex", "until": 0}),
            vec!["wait", "--output", "(", "--output-match-type", "regex", &id],
        ),
        (
            "wait",
            json!({"ids": [short, id], "output": "x", "since": "garbage", "until": 0}),
            vec!["wait", "--output", "x", "--since", "garbage", short, &id],
        ),
    ] {
        let (_, want) = t.err(&cli);
        let r = m.call(tool, args.clone());
        assert_eq!(r["isError"], true, "{args}: {r}");
        let e = &r["structuredContent"]["error"];
        assert!(e["details"]["job_id"].is_string(), "{args}: {r}");
        support::assert_door_error(e, &want["error"], &args.to_string());
    }
}

/// `send` with nothing to send says what it needs: `newline` alone is
/// one (it sends a line end), as are `data` and `eof`.
#[test]
fn send_without_anything_to_send_names_all_it_takes() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "cat", "interactive": true, "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    let r = m.call("send", json!({"job_id": id}));
    let e = &r["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_request", "{r}");
    let msg = e["message"].as_str().unwrap();
    for name in ["data", "eof", "newline"] {
        assert!(msg.contains(name), "{name} not named: {msg}");
    }
    let s = m.ok(
        "send",
        json!({"job_id": id, "newline": true, "yield_ms": 200}),
    );
    assert_eq!(s["bytes_written"], 1, "{s}");
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

/// No env display in an MCP answer, of `run` or of `restart` (it gave
/// restart's unmasked values to the model).
#[test]
fn answers_carry_no_env_values() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "true", "env": {"API_TOKEN": "s3cr3t"}}),
    );
    assert!(d.get("env_vars").is_none(), "{d}");
    let id = d["job_id"].as_str().unwrap().to_string();
    for args in [
        json!({"job_id": id}),
        json!({"job_id": id, "no_wait": true}),
    ] {
        let r = m.ok("restart", args);
        assert!(r.get("env_vars").is_none(), "{r}");
        assert!(!r.to_string().contains("s3cr3t"), "{r}");
        t.wait_done(&id);
    }
}

#[test]
fn invalid_limits_stop_the_server_before_stdout() {
    let t = TempRoot::new();
    for var in [
        "AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS",
        "AGENT_EXEC_MCP_MAX_UNTIL_SECONDS",
    ] {
        for bad in ["abc", "-1", "nan", "1e300"] {
            let (out, msgs) = served(&t, &[(var, bad)], &[initialize("2025-06-18")]);
            assert!(!out.status.success(), "{var}={bad}");
            assert!(
                msgs.is_empty(),
                "{var}={bad}: stdout is the protocol's: {msgs:?}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(var) && err.contains(bad), "{var}={bad}: {err}");
        }
        // Empty is unset: the default.
        let (out, msgs) = served(&t, &[(var, "")], &[initialize("2025-06-18")]);
        assert!(out.status.success(), "{var}=: {:?}", out.status);
        assert_eq!(msgs[0]["result"]["protocolVersion"], "2025-06-18");
    }
}

/// Zero is no limit to observe by: a cap of 0 s would cut every watch,
/// `send`'s yield and `restart`'s grace to nothing, and 0 reads as "no
/// limit" elsewhere (`--timeout 0`), which would defeat the cap. A
/// default of 0 would turn every call without `until` into a no-wait
/// one; `until: 0` on the call is the way to ask for that. Refused as
/// an unparsable value is, in any spelling of zero.
#[test]
fn zero_limits_stop_the_server_as_invalid_ones_do() {
    let t = TempRoot::new();
    for var in [
        "AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS",
        "AGENT_EXEC_MCP_MAX_UNTIL_SECONDS",
    ] {
        for zero in ["0", "0s", "0.0", "0ms"] {
            let (out, msgs) = served(&t, &[(var, zero)], &[initialize("2025-06-18")]);
            assert_eq!(out.status.code(), Some(1), "{var}={zero}");
            assert!(msgs.is_empty(), "{var}={zero}: wrote {msgs:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(var) && err.contains(&format!("'{zero}'")),
                "{var}={zero}: {err}"
            );
        }
    }
    // The smallest limits that are not zero still serve.
    let (out, msgs) = served(
        &t,
        &[
            ("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS", "1ms"),
            ("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", "1ms"),
        ],
        &[initialize("2025-06-18")],
    );
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(msgs[0]["result"]["protocolVersion"], "2025-06-18");
}

/// A server with these limits, initialized.
fn with_limits(t: &TempRoot, default: &str, max: &str) -> Mcp {
    let mut m = Mcp::start(
        t,
        &[
            ("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS", default),
            ("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", max),
        ],
    );
    m.request("initialize", json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}));
    m
}

/// Any finite non-negative `until` above the cap is capped, however
/// large (1e20 as 1e308), as is `send`'s `yield_ms`; a tiny one is the
/// least wait. A negative one is still refused.
#[test]
fn huge_until_and_yield_are_capped_not_refused() {
    let t = TempRoot::new();
    let mut m = with_limits(&t, "0.2", "0.5");
    let d = m.ok(
        "run",
        json!({"command": "cat >/dev/null", "interactive": true, "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    for until in [json!(1e20), json!(1e100), json!(1e308), json!(1e-300)] {
        let t0 = Instant::now();
        let w = m.ok("wait", json!({"job_id": id, "until": until}));
        assert_eq!(w["state"], "running", "{until}: {w}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{until}: {:?}",
            t0.elapsed()
        );
    }
    for y in [json!(1e20), json!(1e300), json!("99999999999999999999")] {
        let t0 = Instant::now();
        let s = m.ok("send", json!({"job_id": id, "data": "x", "yield_ms": y}));
        assert_eq!(s["bytes_written"], 1, "{y}: {s}");
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{y}: {:?}",
            t0.elapsed()
        );
    }
    let r = m.call("wait", json!({"job_id": id, "until": -1}));
    assert_eq!(r["isError"], true, "{r}");
    assert_eq!(
        r["structuredContent"]["error"]["code"], "invalid_duration",
        "{r}"
    );
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

#[test]
fn restart_stays_within_the_call_limit() {
    let t = TempRoot::new();
    let mut m = with_limits(&t, "1", "2");
    // A job that ignores TERM: only SIGKILL after kill_after stops it,
    // and its next run does the same.
    let id = m.ok(
        "run",
        json!({"command": "trap '' TERM; echo up; sleep 300", "until": 0}),
    )["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Up: its trap is set (a TERM before it would end it).
    let up = |m: &mut Mcp| {
        let until = Instant::now() + Duration::from_secs(20);
        while m.ok("tail", json!({"job_id": id}))["stdout"] != "up\n" {
            assert!(Instant::now() < until, "the job never came up");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    up(&mut m);
    // A grace longer than the call may take is refused, the job left
    // alone.
    let r = m.call("restart", json!({"job_id": id, "kill_after": "20s"}));
    assert_eq!(r["isError"], true, "{r}");
    let e = &r["structuredContent"]["error"];
    assert_eq!(e["code"], "invalid_request", "{r}");
    assert!(e["message"].as_str().unwrap().contains("kill_after"), "{r}");
    let st = m.ok("status", json!({"job_id": id}));
    assert_eq!(
        (&st["state"], &st["attempt"]),
        (&json!("running"), &json!(1))
    );
    // A grace within it: the watch gets what the stop left of the 2 s
    // (about 0.5 s), not its own until on top.
    let d = m.ok(
        "restart",
        json!({"job_id": id, "kill_after": 1.5, "until": 5}),
    );
    assert_eq!(
        (&d["state"], &d["attempt"]),
        (&json!("running"), &json!(2)),
        "{d}"
    );
    assert!(d["waited_ms"].as_u64().unwrap() < 1500, "{d}");
    assert_eq!(d["previous_runs"].as_array().unwrap().len(), 1, "{d}");
    assert_eq!(d["previous_runs"][0]["signal"], "SIGKILL", "{d}");
    up(&mut m);
    // No kill_after: the default grace (5 s) is shortened to the limit,
    // which leaves the watch nothing.
    let d = m.ok("restart", json!({"job_id": id}));
    assert_eq!(
        (&d["state"], &d["attempt"]),
        (&json!("running"), &json!(3)),
        "{d}"
    );
    assert!(d["waited_ms"].as_u64().unwrap() < 1000, "{d}");
    assert_eq!(d["type"], "restart");
    assert_eq!(d["previous_runs"].as_array().unwrap().len(), 2, "{d}");
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

#[test]
fn descriptions_state_the_limits_in_effect() {
    let t = TempRoot::new();
    let mut m = with_limits(&t, "7", "20");
    let r = m.request("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let tool = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap().clone();
    for n in ["run", "wait", "restart"] {
        let t = tool(n);
        let until = t["inputSchema"]["properties"]["until"]["description"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(until.contains("[default: 7; at most 20"), "{n}: {until}");
        assert!(
            !until.contains("default: 10]") && !until.contains("default: 30]"),
            "{n}: {until}"
        );
        let d = t["description"].as_str().unwrap();
        assert!(d.contains("7 s") && d.contains("20 s"), "{n}: {d}");
    }
    let restart = tool("restart");
    let ka = restart["inputSchema"]["properties"]["kill_after"]["description"]
        .as_str()
        .unwrap();
    assert!(ka.contains("[default: 5; at most 20"), "{ka}");
    let send = tool("send");
    let y = send["inputSchema"]["properties"]["yield_ms"]["description"]
        .as_str()
        .unwrap();
    assert!(y.contains("at most 20000"), "{y}");
    // Fractions are said as such.
    let t2 = TempRoot::new();
    let mut m = with_limits(&t2, "0.5", "1.5");
    let r = m.request("tools/list", json!({}));
    let until = r["result"]["tools"][3]["inputSchema"]["properties"]["until"]["description"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(until.contains("[default: 0.5; at most 1.5"), "{until}");
}

#[test]
fn progress_keeps_coming_while_a_job_that_printed_is_quiet() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let d = m.ok(
        "run",
        json!({"command": "printf abc; sleep 30", "until": 0}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    // Its 3 bytes are out before the wait begins.
    let until = Instant::now() + Duration::from_secs(20);
    while !t.read(&id, "stdout.log").contains("abc") {
        assert!(Instant::now() < until, "the job never printed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let w = m.ask("tools/call", json!({"name": "wait", "arguments": {"job_id": id, "until": 3.5}, "_meta": {"progressToken": "k"}}));
    let r = m.answer(&json!(w), Duration::from_secs(30));
    assert_eq!(r["result"]["structuredContent"]["state"], "running", "{r}");
    let prog: Vec<(u64, String)> = m
        .seen
        .iter()
        .filter(|s| s["method"] == "notifications/progress" && s["params"]["progressToken"] == "k")
        .map(|s| {
            (
                s["params"]["progress"].as_u64().unwrap(),
                s["params"]["message"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // One at the start, then about one a second as a sign of life: the
    // value rises though the output does not grow.
    assert!(prog.len() >= 3, "{prog:?}");
    assert!(prog.windows(2).all(|w| w[0].0 < w[1].0), "{prog:?}");
    assert!(prog.iter().all(|p| p.1.contains("3 bytes")), "{prog:?}");
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
}

/// A `wait` on several jobs reports progress as a wait on one does (it
/// sent none): the output of all of them, about once a second.
#[test]
fn a_wait_on_several_jobs_reports_progress() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let ids: Vec<String> = ["printf ab; sleep 30", "printf cde; sleep 30"]
        .iter()
        .map(|c| {
            m.ok("run", json!({"command": c, "until": 0}))["job_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(20);
    while t.read(&ids[0], "stdout.log").len() + t.read(&ids[1], "stdout.log").len() < 5 {
        assert!(Instant::now() < until, "the jobs never printed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let w = m.ask("tools/call", json!({"name": "wait", "arguments": {"ids": ids, "until": 2.5}, "_meta": {"progressToken": "many"}}));
    let r = m.answer(&json!(w), Duration::from_secs(30));
    assert_eq!(r["result"]["isError"], false, "{r}");
    let prog: Vec<String> = m
        .seen
        .iter()
        .filter(|s| {
            s["method"] == "notifications/progress" && s["params"]["progressToken"] == "many"
        })
        .map(|s| s["params"]["message"].as_str().unwrap().to_string())
        .collect();
    assert!(prog.len() >= 2, "{prog:?}");
    assert!(prog.iter().all(|p| p.contains("5 bytes")), "{prog:?}");
    // With --any, the short text names the one that ended first (what
    // the wait waited for), as `first` does.
    m.ok("kill", json!({"job_id": ids[1], "signal": "KILL"}));
    let r = m.call("wait", json!({"ids": ids, "any": true, "until": 20}));
    assert_eq!(r["structuredContent"]["first"], ids[1].as_str(), "{r}");
    let text = text_of(&r);
    assert!(
        text.starts_with(&format!("2 job(s), first to end: {}\n", ids[1])),
        "{text}"
    );
    m.ok("kill", json!({"job_id": ids[0], "signal": "KILL"}));
}

/// Whether `v` fits the JSON Schema `s`, for the keywords inputSchema
/// uses: `type` (one name or several), `enum`, `pattern`, `minimum`,
/// `minItems`, `items`, `anyOf`, object `properties`,
/// `additionalProperties` and `required`.
fn fits(s: &Value, v: &Value) -> bool {
    let is = |t: &str| match t {
        "string" => v.is_string(),
        "integer" => v.is_u64() || v.is_i64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        _ => false,
    };
    let typed = match &s["type"] {
        Value::String(t) => is(t),
        Value::Array(ts) => ts.iter().any(|t| is(t.as_str().unwrap_or_default())),
        _ => true,
    };
    let listed = s["enum"].as_array().map_or(true, |e| e.contains(v));
    let patterned = match (s["pattern"].as_str(), v.as_str()) {
        (Some(p), Some(text)) => regex_lite::Regex::new(p).unwrap().is_match(text),
        _ => true,
    };
    let above = match (s["minimum"].as_f64(), v.as_f64()) {
        (Some(min), Some(x)) => x >= min,
        _ => true,
    } && match (s["maximum"].as_f64(), v.as_f64()) {
        (Some(max), Some(x)) => x <= max,
        _ => true,
    };
    let items = match v.as_array() {
        Some(a) => {
            s["minItems"].as_u64().map_or(true, |n| a.len() as u64 >= n)
                && a.iter()
                    .all(|x| s.get("items").map_or(true, |i| fits(i, x)))
        }
        None => true,
    };
    let any = s["anyOf"]
        .as_array()
        .map_or(true, |alts| alts.iter().any(|a| fits(a, v)));
    let object = match (v.as_object(), s["properties"].as_object()) {
        (Some(o), Some(props)) => {
            let closed = s["additionalProperties"] == false;
            o.iter().all(|(k, x)| match props.get(k) {
                Some(p) => fits(p, x),
                None => !closed,
            }) && s["required"].as_array().map_or(true, |r| {
                r.iter().all(|k| o.contains_key(k.as_str().unwrap()))
            })
        }
        _ => true,
    };
    typed && listed && patterned && above && items && any && object
}

/// Every argument a tool's call takes is in its inputSchema: the
/// command's flags under their MCP names and their aliases (`lines`
/// for `tail_lines`). A name is probed with `[null]` for its value: a
/// name the call knows refuses that value; an unknown one is refused as
/// unknown (and no job is made either way).
#[test]
fn every_argument_a_call_takes_is_in_the_input_schema() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    for tool in r["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let props = tool["inputSchema"]["properties"].as_object().unwrap();
        let help =
            String::from_utf8(t.bare().args([name, "--help"]).output().unwrap().stdout).unwrap();
        let options = help
            .split("Options:")
            .nth(1)
            .and_then(|o| o.split("Global options:").next())
            .unwrap_or_default();
        let mut names: Vec<String> = regex_lite::Regex::new(r"--([a-z][a-z-]*)")
            .unwrap()
            .captures_iter(options)
            .flat_map(|c| {
                let n = c[1].replace('-', "_");
                [format!("{n}_ms"), n]
            })
            .collect();
        names.sort();
        names.dedup();
        for arg in names {
            // No argument takes a list holding null.
            let mut args = json!({arg.as_str(): [null]});
            if name == "run" {
                args["command"] = json!("true");
            } else if props.contains_key("job_id") && arg != "job_id" {
                args["job_id"] = json!("0");
            }
            let r = m.call(name, args);
            assert_eq!(r["isError"], true, "{name} {arg}: {r}");
            let msg = r["structuredContent"]["error"]["message"].as_str().unwrap();
            let unknown = msg.starts_with(&format!("unknown parameter '{arg}'"));
            assert_eq!(
                !unknown,
                props.contains_key(&arg),
                "{name}: {arg} is taken by calls but not in inputSchema, or the other way round: {msg}"
            );
        }
    }
    assert!(m.ok("list", json!({"all": true}))["jobs"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Each form a call takes for an argument (a number's and a boolean's
/// text form, an alias, one value for a list) fits that argument's
/// inputSchema, and a form the schema leaves out is refused.
#[test]
fn every_form_a_call_takes_fits_the_input_schema() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    let schemas: std::collections::HashMap<String, Value> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["inputSchema"].clone(),
            )
        })
        .collect();
    let ok = |m: &mut Mcp, tool: &str, args: Value| -> Value {
        assert!(
            fits(&schemas[tool], &args),
            "{tool} {args} does not fit {}",
            schemas[tool]
        );
        m.ok(tool, args)
    };
    let d = ok(
        &mut m,
        "run",
        json!({"command": "printf 'a\\nb\\nc\\n'", "wait": "true", "until": "20", "max_bytes": "100",
               "tail_bytes": 0, "tags": "one.tag", "retry": "0", "no_auto_gc": "false",
               "interactive": false}),
    );
    assert_eq!(d["state"], "exited", "{d}");
    assert_eq!(d["tags"], json!(["one.tag"]));
    let id = d["job_id"].as_str().unwrap().to_string();
    for lines in [json!("2"), json!(2), json!("+2")] {
        let d = ok(&mut m, "tail", json!({"job_id": id, "lines": lines}));
        assert_eq!(d["stdout"], "b\nc\n", "lines {lines}: {d}");
    }
    let d = ok(
        &mut m,
        "tail",
        json!({"job_id": id, "tail_lines": "1", "max_bytes": "64"}),
    );
    assert_eq!(d["stdout"], "c\n", "{d}");
    let d = ok(
        &mut m,
        "wait",
        json!({"ids": [id], "until": 1, "max_bytes": 1, "any": "1"}),
    );
    assert_eq!(
        (&d["state"], &d["stdout"]),
        (&json!("exited"), &json!("a")),
        "{d}"
    );
    let d = ok(
        &mut m,
        "list",
        json!({"all": "true", "limit": "1", "tag": "one.tag"}),
    );
    assert_eq!(d["jobs"].as_array().unwrap().len(), 1, "{d}");
    let d = ok(
        &mut m,
        "run",
        json!({"command": "cat", "interactive": "true", "until": 0}),
    );
    let cat = d["job_id"].as_str().unwrap().to_string();
    let d = ok(
        &mut m,
        "send",
        json!({"job_id": cat, "data": "hi", "newline": "true", "yield_ms": "2000", "no_record": "1"}),
    );
    assert_eq!(d["bytes_written"], 3, "{d}");
    ok(
        &mut m,
        "kill",
        json!({"job_id": cat, "signal": 9, "no_wait": "false"}),
    );
    let d = ok(
        &mut m,
        "restart",
        json!({"job_id": id, "kill_after": "1", "until": 20, "signal": "TERM"}),
    );
    assert_eq!(d["attempt"], 2, "{d}");
    let d = ok(
        &mut m,
        "delete",
        json!({"job_id": [id, cat], "dry_run": "true"}),
    );
    assert_eq!(d["type"], "delete", "{d}");

    // Forms the schema leaves out are refused, not guessed at.
    for (tool, args) in [
        ("tail", json!({"job_id": id, "max_bytes": true})),
        ("tail", json!({"job_id": id, "max_bytes": 1.5})),
        ("tail", json!({"job_id": id, "lines": "two"})),
        ("tail", json!({"job_id": id, "since": 5})),
        ("list", json!({"all": 1})),
        ("list", json!({"all": "yes"})),
        ("status", json!({"job_id": 5})),
        ("wait", json!({"ids": 5})),
        ("wait", json!({"ids": [5]})),
    ] {
        assert!(
            !fits(&schemas[tool], &args),
            "{tool} {args} fits the schema"
        );
        let r = m.call(tool, args.clone());
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
    }
    // A null for an optional parameter is that parameter left out, in
    // the schema as in the call (the schema refused what was taken).
    let args = json!({"all": null, "limit": null, "state": null});
    assert!(fits(&schemas["list"], &args), "{}", schemas["list"]);
    assert_eq!(m.call("list", args)["isError"], false);
}

/// `ids` is a list argument: one id alone is a list of one, in the
/// schema as in the call.
#[test]
fn wait_takes_one_id_alone_as_ids() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    let wait = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "wait")
        .unwrap()["inputSchema"]
        .clone();
    // Said the way the other lists (run's tags, after) say it.
    let tags = r["result"]["tools"][0]["inputSchema"]["properties"]["tags"]["type"].clone();
    assert_eq!(wait["properties"]["ids"]["type"], tags, "{wait}");
    let id = m.ok("run", json!({"command": "echo one", "until": 20}))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let args = json!({"ids": id, "until": 5});
    assert!(fits(&wait, &args), "{args} does not fit {wait}");
    let one = m.ok("wait", args);
    assert_eq!(
        (&one["job_id"], &one["state"], &one["stdout"]),
        (&json!(id), &json!("exited"), &json!("one\n")),
        "{one}"
    );
    // As an array of one answers.
    let listed = m.ok("wait", json!({"ids": [id], "until": 5}));
    let timeless = |mut d: Value| {
        d.as_object_mut().unwrap().remove("waited_ms");
        d
    };
    assert_eq!(timeless(one), timeless(listed));
    // With job_id, still a conflict.
    let r = m.call("wait", json!({"ids": id, "job_id": id}));
    assert_eq!(r["isError"], true, "{r}");
}

/// Each description states the limits in effect and no other: every
/// "N s" and "N ms" in it is one of them.
#[test]
fn descriptions_state_only_the_limits_in_effect() {
    let numbers = regex_lite::Regex::new(r"\b([0-9]+(?:\.[0-9]+)?) (s|ms)\b").unwrap();
    // (tool, the seconds and the milliseconds it may state)
    type Allowed = &'static [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    )];
    let cases: [(&[(&str, &str)], Allowed); 2] = [
        (
            &[("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS", "4")],
            &[
                ("run", &["4", "50"], &[]),
                ("wait", &["4", "50"], &[]),
                ("restart", &["4", "50", "5"], &[]),
                ("kill", &["3"], &[]),
                ("send", &[], &["250", "50000"]),
            ],
        ),
        (
            &[("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", "0.2")],
            &[
                ("run", &["0.2"], &[]),
                ("wait", &["0.2"], &[]),
                ("restart", &["0.2"], &[]),
                ("kill", &["0.2"], &[]),
                ("send", &[], &["200"]),
            ],
        ),
    ];
    for (env, allowed) in cases {
        let t = TempRoot::new();
        let mut m = Mcp::start(&t, env);
        let r = m.request("tools/list", json!({}));
        for tool in r["result"]["tools"].as_array().unwrap() {
            let name = tool["name"].as_str().unwrap();
            let d = tool["description"].as_str().unwrap();
            let (secs, ms) = allowed
                .iter()
                .find(|(n, _, _)| *n == name)
                .map_or((&[][..], &[][..]), |(_, s, ms)| (*s, *ms));
            let stated: Vec<(&str, &str)> = numbers
                .captures_iter(d)
                .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
                .collect();
            for (n, unit) in &stated {
                let ok = if *unit == "s" { secs } else { ms };
                assert!(ok.contains(n), "{env:?} {name}: states {n} {unit}: {d}");
            }
            // The ones it watches with are all stated.
            for n in secs {
                assert!(
                    stated.contains(&(n, "s")),
                    "{env:?} {name}: {n} s missing: {d}"
                );
            }
        }
        // So does send's yield_ms, held to the limit.
        let send = r["result"]["tools"][5]["inputSchema"]["properties"]["yield_ms"]["description"]
            .as_str()
            .unwrap()
            .to_string();
        let want = if env[0].1 == "0.2" {
            "[default: 200; at most 200]"
        } else {
            "[default: 250; at most 50000]"
        };
        assert!(send.contains(want), "{env:?}: {send}");
    }
}

#[test]
fn a_bom_before_the_first_message_is_skipped() {
    let t = TempRoot::new();
    let mut m = Mcp::start(&t, &[]);
    m.send_raw(&format!(
        "\u{feff}{}",
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    ));
    let r = m.answer(&json!(1), Duration::from_secs(10));
    assert_eq!(r["result"]["protocolVersion"], "2025-06-18", "{r}");
    // Only there: anywhere else it is not JSON.
    m.send_raw(&format!(
        "\u{feff}{}",
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"})
    ));
    let r = m.answer(&Value::Null, Duration::from_secs(10));
    assert_eq!(r["error"]["code"], -32700, "{r}");
}

/// An answer's id is the request's as written, a number serde_json
/// would round or respell included; a call is cancelled by that id.
#[test]
fn ids_come_back_as_sent() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let raw_answer = |m: &mut Mcp| {
        m.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("an answer")
    };
    for id in [
        "123456789012345678901234567890",
        "1e2",
        "-0.5",
        "1.0",
        "18446744073709551615",
        "-9223372036854775808",
        r#""a""#,
    ] {
        m.send_raw(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#));
        assert_eq!(
            raw_answer(&mut m),
            format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#)
        );
    }
    // Two ids an f64 cannot tell apart: the one cancelled gets no
    // answer, the other its own.
    let job = m.ok("run", json!({"command": "sleep 30", "until": 0}))["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in [
        "123456789012345678901234567890",
        "123456789012345678901234567891",
    ] {
        m.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"wait","arguments":{{"job_id":"{job}","until":1}}}}}}"#
        ));
    }
    m.send_raw(r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":123456789012345678901234567890}}"#);
    let line = raw_answer(&mut m);
    assert!(
        line.starts_with(r#"{"jsonrpc":"2.0","id":123456789012345678901234567891,"result":"#),
        "{line}"
    );
    m.send_raw(r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#);
    assert_eq!(
        raw_answer(&mut m),
        r#"{"jsonrpc":"2.0","id":"after","result":{}}"#
    );
    // A progress token is any string or number, kept as written as an id
    // is: these got no progress at all.
    for token in ["1.5", "1e2", "18446744073709551616"] {
        m.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":"p","method":"tools/call","params":{{"name":"wait","_meta":{{"progressToken":{token}}},"arguments":{{"job_id":"{job}","until":1.5}}}}}}"#
        ));
        let first = raw_answer(&mut m);
        assert!(
            first.starts_with(&format!(
                r#"{{"jsonrpc":"2.0","method":"notifications/progress","params":{{"progressToken":{token},"#
            )),
            "{first}"
        );
        while !raw_answer(&mut m).starts_with(r#"{"jsonrpc":"2.0","id":"p","#) {}
    }
    m.ok("kill", json!({"job_id": job, "signal": "KILL"}));
}

/// An `Out` for an assertion's message.
fn shown(o: &support::Out) -> String {
    format!(
        "exit {}, stdout {:?}, stderr {:?}",
        o.code, o.stdout, o.stderr
    )
}

/// `call`'s short text (`content[0]`).
fn text_of(r: &Value) -> String {
    r["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The text says what the call mainly returns: a failed job's failure,
/// that a run timed out, grep's matches (the last ones, bounded as the
/// output's end is).
#[test]
fn content_text_says_what_the_call_returns() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.call(
        "run",
        json!({"command": "true", "cwd": "/nonexistent-ae-dir"}),
    );
    assert_eq!(r["structuredContent"]["state"], "failed", "{r}");
    let text = text_of(&r);
    assert!(
        text.contains("cwd_not_found") && text.contains("/nonexistent-ae-dir"),
        "{text}"
    );
    let r = m.call(
        "run",
        json!({"command": "sleep 5", "timeout": 0.2, "until": 20}),
    );
    assert_eq!(r["structuredContent"]["timed_out"], true, "{r}");
    assert!(text_of(&r).contains("timed out"), "{r}");
    let d = m.ok(
        "run",
        json!({"command": "printf 'a\\nfoo 1\\nb\\nfoo 2\\n'; seq -f 'many %g' 1 3000", "until": 20}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    let r = m.call("tail", json!({"job_id": id, "grep": "foo"}));
    assert_eq!(
        r["structuredContent"]["matches"].as_array().unwrap().len(),
        2
    );
    let text = text_of(&r);
    assert!(text.contains("foo 1") && text.contains("foo 2"), "{text}");
    // Many matches: the last of them, within the output's bound.
    let r = m.call(
        "tail",
        json!({"job_id": id, "grep": "many", "tail_lines": 0}),
    );
    assert_eq!(
        r["structuredContent"]["matches"].as_array().unwrap().len(),
        3000
    );
    let text = text_of(&r);
    assert!(
        text.contains("many 3000") && !text.contains("many 1\n"),
        "{text}"
    );
    assert!(text.len() < 3000, "{} bytes: {text}", text.len());
    // The line a wait matched is bounded too (it was given whole: up to
    // a 64 KiB piece).
    let d = m.ok(
        "run",
        json!({"command": "head -c 9000 /dev/zero | tr '\\0' x; echo", "until": 20}),
    );
    let id = d["job_id"].as_str().unwrap().to_string();
    let r = m.call(
        "wait",
        json!({"ids": id, "output": "x", "max_bytes": 0, "tail_bytes": 0}),
    );
    assert_eq!(
        r["structuredContent"]["matched"]["line"]
            .as_str()
            .map(str::len),
        Some(9000),
        "{r}"
    );
    let text = text_of(&r);
    assert!(
        text.contains("matched (stdout): xxx") && text.contains("x [...]"),
        "{text}"
    );
    assert!(text.len() < 2300, "{} bytes: {text}", text.len());
}

/// A limit that is not UTF-8 was set all the same: refused as an
/// invalid one is, not taken for unset.
#[test]
fn non_utf8_limits_stop_the_server() {
    use std::os::unix::ffi::OsStrExt;
    let t = TempRoot::new();
    for var in [
        "AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS",
        "AGENT_EXEC_MCP_MAX_UNTIL_SECONDS",
    ] {
        let mut c = t.cmd(&["mcp"]);
        c.env(var, std::ffi::OsStr::from_bytes(b"5\xff"));
        let out = t.exec(c);
        assert_eq!(out.code, 1, "{var}: {}", shown(&out));
        assert!(out.stdout.is_empty(), "{var}: {}", shown(&out));
        assert!(out.stderr.contains(var), "{var}: {}", shown(&out));
    }
}

/// A stdin that cannot be read is reported on stderr, never as a
/// document on the protocol's stdout, and the exit status says so.
#[test]
fn unreadable_stdin_is_reported_on_stderr() {
    let t = TempRoot::new();
    let mut c = t.cmd(&["mcp"]);
    c.stdin(std::fs::File::open(&t.cwd).unwrap());
    let out = t.exec(c);
    assert_eq!(out.code, 1, "{}", shown(&out));
    assert!(out.stdout.is_empty(), "{}", shown(&out));
    assert!(out.stderr.contains("read stdin"), "{}", shown(&out));
}

/// Descriptions say only what a call takes; an empty word is a command,
/// as on the command line.
#[test]
fn descriptions_name_only_forms_a_call_takes() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let tool = |n: &str| tools.iter().find(|t| t["name"] == n).unwrap().clone();
    let (run, send) = (tool("run"), tool("send"));
    let yield_ms = send["inputSchema"]["properties"]["yield_ms"]["description"]
        .as_str()
        .unwrap();
    assert!(
        !yield_ms.contains("1.5s") && !yield_ms.contains("250ms"),
        "{yield_ms}"
    );
    let stdin = run["inputSchema"]["properties"]["stdin"]["description"]
        .as_str()
        .unwrap();
    assert!(!stdin.contains("reads the caller's stdin"), "{stdin}");
    let said = send["description"].as_str().unwrap();
    assert!(!said.contains("--file"), "{said}");
    // What the descriptions say is refused is.
    let id = m.ok(
        "run",
        json!({"command": "cat", "interactive": true, "until": 0}),
    )["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = m.call(
        "send",
        json!({"job_id": id, "data": "x", "yield_ms": "1.5s"}),
    );
    assert_eq!(r["isError"], true, "{r}");
    let r = m.call("run", json!({"command": "true", "stdin": "-"}));
    assert_eq!(r["isError"], true, "{r}");
    m.ok("kill", json!({"job_id": id, "signal": "KILL"}));
    // One empty word fits the schema and runs, as `run -- ''` does.
    let args = json!({"command": [""], "until": 20});
    assert!(fits(&run["inputSchema"], &args));
    let d = m.ok("run", args);
    assert_eq!(
        (&d["state"], &d["command"]),
        (&json!("exited"), &json!([""])),
        "{d}"
    );
    let cli = t.ok(&["run", "--until", "20", "--", ""]);
    assert_eq!(cli["exit_code"], d["exit_code"], "{cli}");
    // No word at all is no command, in the schema as in the call.
    let none = json!({"command": []});
    assert!(!fits(&run["inputSchema"], &none));
    assert_eq!(m.call("run", none)["isError"], true);
}

/// A refused value's message gives the command line's reason and the
/// value as the client wrote it.
#[test]
fn refused_values_say_why_quoting_what_was_sent() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let message = |m: &mut Mcp, line: String| -> String {
        m.next_id += 1;
        let id = m.next_id;
        m.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{line}}}"#
        ));
        let r = m.answer(&json!(id), Duration::from_secs(30));
        assert_eq!(r["result"]["isError"], true, "{r}");
        let e = &r["result"]["structuredContent"]["error"];
        assert_eq!(e["code"], "invalid_request", "{r}");
        e["message"].as_str().unwrap().to_string()
    };
    for (args, want) in [
        (
            r#"{"name":"list","arguments":{"limit":1e300}}"#,
            "parameter limit: invalid value '1e300': expected a non-negative integer",
        ),
        (
            r#"{"name":"list","arguments":{"limit":-2.0}}"#,
            "parameter limit: invalid value '-2.0': expected a non-negative integer",
        ),
        (
            r#"{"name":"tail","arguments":{"job_id":"x","max_bytes":-1}}"#,
            "parameter max_bytes: invalid value '-1': expected a non-negative integer",
        ),
        (
            r#"{"name":"run","arguments":{"command":"true","cwd":"a\u0000b"}}"#,
            "parameter cwd: invalid value 'a\0b': NUL is not allowed",
        ),
        (
            r#"{"name":"list","arguments":{"state":"bogus"}}"#,
            "parameter state: invalid value 'bogus': possible values: created,",
        ),
    ] {
        let msg = message(&mut m, args.to_string());
        assert!(msg.starts_with(want), "{args}: {msg}");
    }
    assert!(m.ok("list", json!({"all": true}))["jobs"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// A duration that does not parse names its parameter (a call may carry
/// several), `until` too; an empty list of ids is outside `delete`'s
/// schema, as the call refuses it.
#[test]
fn a_bad_duration_names_its_parameter_and_delete_wants_an_id() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    for (name, args) in [
        (
            "until",
            json!({"command": "true", "timeout": "5s", "until": "abc"}),
        ),
        (
            "timeout",
            json!({"command": "true", "timeout": "abc", "until": "5s"}),
        ),
        ("kill_after", json!({"command": "true", "kill_after": "x"})),
    ] {
        let r = m.call("run", args);
        assert_eq!(r["isError"], true, "{r}");
        let e = &r["structuredContent"]["error"];
        assert_eq!(e["code"], "invalid_duration", "{r}");
        let msg = e["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("parameter {name}: ")), "{msg}");
    }
    // Every kind of value with a code of its own, in every tool.
    for (tool, args, code, name) in [
        (
            "restart",
            json!({"job_id": "x", "kill_after": "xyz"}),
            "invalid_duration",
            "kill_after",
        ),
        (
            "tail",
            json!({"job_id": "x", "grep": "(", "grep_type": "regex"}),
            "invalid_pattern",
            "grep",
        ),
        (
            "run",
            json!({"command": "true", "output_pattern": "(", "output_match_type": "regex"}),
            "invalid_pattern",
            "output_pattern",
        ),
        (
            "run",
            json!({"command": "true", "tags": ["bad tag"]}),
            "invalid_tag",
            "tags",
        ),
        (
            "kill",
            json!({"job_id": "x", "signal": "BOGUS"}),
            "invalid_signal",
            "signal",
        ),
    ] {
        let r = m.call(tool, args);
        let e = &r["structuredContent"]["error"];
        assert_eq!(e["code"], code, "{r}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("parameter {name}: ")),
            "{tool}: {msg}"
        );
    }
    let r = m.request("tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let delete = tools.iter().find(|t| t["name"] == "delete").unwrap();
    for none in [json!({"job_id": []}), json!({"job_id": [], "all": true})] {
        assert!(!fits(&delete["inputSchema"], &none));
        assert_eq!(m.call("delete", none)["isError"], true);
    }
    assert!(fits(&delete["inputSchema"], &json!({"job_id": ["a"]})));
}

/// `mcp --table` is refused for what mcp prints: messages, no document.
#[test]
fn table_refusal_says_mcp_prints_no_document() {
    let t = TempRoot::new();
    let out = t.out(&["mcp", "--table"]);
    assert_eq!(out.code, 2, "{}", shown(&out));
    let msg = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains("no document of its own"), "{msg}");
    assert!(!msg.contains("its JSON document"), "{msg}");
}

#[test]
fn an_answer_that_cannot_be_written_ends_the_server_with_1_and_says_why() {
    // stdout on /dev/full: every write fails with ENOSPC. Answers are
    // lost, so the server must not end as if all went well (a closed
    // pipe, where nobody reads any more, still ends with 0).
    let t = TempRoot::new();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let mut c = t.cmd(&["mcp"]);
    c.stdin(Stdio::piped())
        .stdout(Stdio::from(full))
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn agent-exec mcp");
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}", initialize("2025-06-18")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("stdout"), "{err}");
}

/// A `run` whose answer the server's memory cannot hold (log text as
/// large as `max_bytes` asked for, under `ulimit -v`) is answered
/// io_error about the job, as the CLI's is; the server aborted (exit
/// 134), and every call in flight went unanswered.
#[test]
fn an_answer_beyond_the_memory_left_is_io_error_and_the_server_goes_on() {
    let t = TempRoot::new();
    let big = t.base.join("big.txt");
    std::fs::write(&big, vec![b'a'; 20_000_000]).unwrap();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let run = tool_call(
        2,
        "run",
        json!({"command": ["cat", big.to_str().unwrap()], "max_bytes": 100_000_000u64, "until": 30}),
    );
    let list = tool_call(3, "list", json!({"all": true}));
    let mut answered_whole = false;
    for kb in [60_000, 100_000, 150_000, 250_000, 400_000] {
        let mut c = t.private("sh");
        c.args([
            "-c",
            &format!("ulimit -v {kb} && exec \"$0\" --root \"$1\" mcp"),
            support::bin(),
            t.root.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut w = child.stdin.take().unwrap();
        for m in [&init, &run, &list] {
            writeln!(w, "{m}").unwrap();
        }
        drop(w);
        let o = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{kb}: {err}");
        let answers: Vec<Value> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let of = |id: u64| {
            answers
                .iter()
                .find(|a| a["id"] == id)
                .unwrap_or_else(|| panic!("{kb}: no answer to {id}: {err}"))
        };
        assert_eq!(of(3)["result"]["isError"], false, "{kb}");
        let r = &of(2)["result"];
        if r["isError"] == true {
            let e = &r["structuredContent"]["error"];
            assert_eq!(e["code"], "io_error", "{kb}: {e}");
            assert!(e["details"]["job_id"].is_string(), "{kb}: {e}");
        } else {
            let len = r["structuredContent"]["stdout"].as_str().map(str::len);
            assert_eq!(len, Some(20_000_000), "{kb}");
            answered_whole = true;
        }
    }
    assert!(answered_whole, "no limit let the answer through");
}

/// Every boolean parameter of every tool says in its inputSchema what a
/// call takes for it (true or false, the text in any case, "1" or "0"):
/// a value the schema allows is taken by the server, one it leaves out
/// ("yes") is refused as that parameter's.
#[test]
fn boolean_parameters_take_what_their_schema_allows() {
    let t = TempRoot::new();
    let mut m = Mcp::init(&t);
    let r = m.request("tools/list", json!({}));
    let allowed = [
        json!(true),
        json!(false),
        json!("TRUE"),
        json!("True"),
        json!("fAlSe"),
        json!("1"),
        json!("0"),
    ];
    let refused = [
        json!("yes"),
        json!("on"),
        json!(""),
        json!("truee"),
        json!(" true"),
        json!(1),
    ];
    // No such job: a tool with a job takes or refuses its arguments, then
    // finds nothing to act on.
    let ghost = "01JZZZZZZZZZZZZZZZZZZZZZZZ";
    let mut seen = 0;
    for tool in r["result"]["tools"].as_array().unwrap() {
        let name = tool["name"].as_str().unwrap();
        let schema = &tool["inputSchema"];
        for (param, p) in schema["properties"].as_object().unwrap() {
            let boolean = json!("boolean");
            if !p["type"].as_array().is_some_and(|ts| ts.contains(&boolean)) {
                continue;
            }
            seen += 1;
            let base = match name {
                "run" => json!({"command": "true", "until": 20}),
                "list" => json!({}),
                _ => json!({"job_id": ghost}),
            };
            let forms = allowed.iter().map(|v| (v, true));
            for (v, ok) in forms.chain(refused.iter().map(|v| (v, false))) {
                let mut args = base.clone();
                args[param] = v.clone();
                assert_eq!(fits(schema, &args), ok, "{name} {args}: {p}");
                let r = m.call(name, args.clone());
                let msg = r["structuredContent"]["error"]["message"]
                    .as_str()
                    .unwrap_or_default();
                let refusal = format!("parameter {param}: expected");
                assert_eq!(!msg.starts_with(&refusal), ok, "{name} {args}: {r}");
            }
        }
    }
    assert!(seen >= 20, "{seen} boolean parameters");
}
