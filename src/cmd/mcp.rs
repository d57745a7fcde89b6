//! `mcp`: the job loop as MCP tools over stdio (protocol in `crate::mcp`;
//! the tools here). D40: 0.2.31's names stay (`mcp`, tools `run status
//! tail wait kill`, `AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS`,
//! `AGENT_EXEC_MCP_MAX_UNTIL_SECONDS`); `send`, `list`, `delete` and
//! `restart` join them.
//!
//! Each tool is a door onto the CLI command of the same name, like the
//! HTTP routes: its arguments are the command's flags under their HTTP
//! names from the one table (`Flag::http_name`), plus `job_id`, and for
//! `run` `command`, `env` (an object) and `tags`, for `send` `data`.
//! They become the same `Matches` (`cli::matches_from_params`, the CLI's
//! checks and codes) and go to the operation the command calls.
//!
//! Invariants
//! - Schemas are derived, not written twice: `inputSchema` from the flag
//!   table, `outputSchema` from the embedded response schema (the
//!   command's response `anyOf` ErrorResponse, with the definitions it
//!   refers to).
//! - `inputSchema` names every argument a call takes (a flag's second
//!   name too: `lines` beside `tail_lines`) and declares exactly the
//!   JSON types a call takes for it: one function (`json_types`) feeds
//!   both the schema and the call's check. A count or a switch may come
//!   as its text (`"5"`, `"true"`), a signal as its number, a list (a
//!   list flag, `wait`'s `ids`) as one value alone (`list_schema`); text
//!   arguments must be strings.
//! - `structuredContent` is the document the CLI prints for the same
//!   call, key order included (the text is spliced, never re-sorted);
//!   an operation that could not be carried out is `isError: true` with
//!   the CLI's error envelope. A job that failed is a normal result.
//! - The text beside it (`summary`) says what the call mainly answers:
//!   how the job ended (a failure with its message, a timeout), what
//!   `wait` matched or `grep` found, the output's end, each bounded.
//! - A refused value is quoted as the client wrote it (a number
//!   serde_json would respell, from `Call::argument_text`), with the
//!   command line's reason.
//! - Descriptions name only forms a call takes: where the table's help
//!   names a command-line-only one (`--yield 1.5s`, `--stdin -`,
//!   `--file`), this door's words replace it (`mcp_help`, `restated`).
//! - Observations (`run`, `wait`, `send`'s yield) are bounded: no
//!   `until` means the default limit, a larger one (or `forever`) is
//!   capped at the maximum, so a call ends before the client's request
//!   timeout. `run` launches without waiting and then observes, so that
//!   a cancel reaches the wait. `restart` is bounded as a whole: its
//!   stop by a `kill_after` within the maximum (`bound_kill_after`), its
//!   watch by what the stop left of the maximum. Tool descriptions state
//!   the limits in effect, not the command line's defaults.
//! - Progress (with a `progressToken`) is the milliseconds the call has
//!   watched: it only rises, and keeps coming at least once a second
//!   while the job is quiet (`observing`).
//! - `tail --follow` is not offered (one call is one answer).
//! - `stdin: "-"` is refused: the server's stdin is the protocol.
//! - Arguments that do not go together are `invalid_request`, as over
//!   HTTP, never the command line's `usage_error` (`door_error`), and
//!   are named by the tool's argument names (`tty_size`, not
//!   `--tty-size`).
//! - Invalid limits in the environment (zero included: `Limits::from_env`)
//!   stop the server before it writes anything: stdout is the
//!   protocol's, so the reason goes to stderr.
//!
//! Rejected: hand-written tool schemas (they would drift from the
//! table); answering a job failure with `isError` (the call worked: the
//! agent reads the exit code).

use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::cli::{self, Cmd, Flag, Http, Kind, Matches, Ty};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::jsonin::Shown;
use crate::mcp::{Call, Server};
use crate::observe;
use crate::output::Output;

/// The tools, in the order `tools/list` gives them.
pub const TOOLS: [&str; 9] = [
    "run", "status", "tail", "wait", "kill", "send", "list", "delete", "restart",
];

pub const INSTRUCTIONS: &str = "agent-exec runs commands as detached background jobs. Call run with a command; \
if it is still running when the answer comes, read on with tail (since: the cursor of the last answer) or wait \
(output: a readiness pattern). Interactive jobs (interactive: true) take input through send. Jobs outlive this server.";

/// Flags a tool does not take (beyond the CLI-only ones).
fn skipped(tool: &str, flag: &Flag) -> bool {
    matches!((tool, flag.long), ("tail", "follow" | "until"))
}

/// The bounds of long observations, in milliseconds.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub default_ms: u64,
    pub max_ms: u64,
}

impl Limits {
    /// The limits when the environment sets none.
    pub const DEFAULT: Limits = Limits {
        default_ms: 10_000,
        max_ms: 50_000,
    };

    /// From `AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS` (10) and
    /// `AGENT_EXEC_MCP_MAX_UNTIL_SECONDS` (50: below the 60 s request
    /// timeout common in clients). Zero (in any spelling, down to what
    /// rounds to 0 ms) is refused like a value that does not parse: a
    /// maximum of 0 would cut every watch, `send`'s yield and
    /// `restart`'s grace to nothing, and would read to some as "no
    /// limit" (as `--timeout 0` does), the opposite of a cap; a default
    /// of 0 would quietly make every call without `until` a no-wait one,
    /// which a call asks for itself with `until: 0`. A value that is
    /// not UTF-8 is refused too, not taken for unset: it was set, and
    /// the server would run with limits nobody chose.
    pub fn from_env() -> Result<Limits> {
        let secs = |name: &str, default: u64| -> Result<u64> {
            let Some(raw) = std::env::var_os(name) else {
                return Ok(default);
            };
            let shown = raw.to_string_lossy();
            if shown.trim().is_empty() {
                return Ok(default);
            }
            raw.to_str()
                .and_then(|v| crate::time::parse_duration_ms(v).ok())
                .filter(|&ms| ms > 0)
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "{name}: expected a duration above 0 as the command line takes one (seconds, or with a unit: 500ms, 2m), got '{shown}'"
                    ))
                })
        };
        let max_ms = secs("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", Self::DEFAULT.max_ms)?;
        let default_ms = secs(
            "AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS",
            Self::DEFAULT.default_ms,
        )?
        .min(max_ms);
        Ok(Limits { default_ms, max_ms })
    }
}

/// Rejected for bad limits: starting anyway and answering every request
/// with the error (a client would have to guess why each call fails),
/// and the CLI's error document on stdout (not a JSON-RPC message: a
/// client reports it as garbage on the wire, not as the reason).
/// Clients report a server that exits, with its stderr.
pub fn exec(m: &Matches) -> Result<Output> {
    let limits = match Limits::from_env() {
        Ok(l) => l,
        Err(e) => {
            crate::output::error_line(&e);
            std::process::exit(e.exit_code());
        }
    };
    // Stdin that cannot be read (a directory, say) ends the server the
    // same way: the calls already read are answered, then the reason
    // goes to stderr, never as a document on the protocol's stdout.
    if let Err(e) = crate::mcp::serve(m.root.clone(), limits) {
        crate::output::error_line(&e);
        std::process::exit(e.exit_code());
    }
    Ok(Output::Done)
}

pub fn is_tool(name: &str) -> bool {
    TOOLS.contains(&name)
}

fn command(tool: &str) -> Result<&'static Cmd> {
    cli::find(tool).ok_or_else(|| Error::internal(format!("no command {tool}")))
}

// ---------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------

/// `tools/list`'s tools; `outputSchema` only for clients that take
/// structured results. Descriptions state the limits in effect.
pub fn tools(structured: bool, limits: Limits) -> Vec<Value> {
    let schema: Value = serde_json::from_str(super::schema::SCHEMA).unwrap_or(Value::Null);
    TOOLS
        .iter()
        .filter_map(|t| {
            let cmd = command(t).ok()?;
            let mut tool = json!({
                "name": t,
                "title": cmd.about,
                "description": description(t, cmd, limits),
                "inputSchema": input_schema(t, cmd, limits),
            });
            if structured {
                tool["outputSchema"] = output_schema(&schema, response_def(t));
                if *t == "wait" {
                    // Several ids answer with the other shape of `wait`.
                    also_answers(&mut tool["outputSchema"], &schema, "WaitManyResponse");
                }
            }
            Some(tool)
        })
        .collect()
}

fn description(tool: &str, cmd: &Cmd, limits: Limits) -> String {
    let mut d = format!("{}. {}", cmd.about, cmd.long_about);
    for (cli, ours) in restated(tool, limits) {
        d = d.replace(&cli, &ours);
    }
    let (default, cap) = (secs_text(limits.default_ms), secs_text(limits.max_ms));
    if matches!(tool, "run" | "wait" | "restart") {
        d.push_str(&format!(" Over MCP, until is in seconds; without it this server watches {default} s, and a longer one (or forever) is capped at {cap} s."));
    }
    if tool == "restart" {
        d.push_str(&format!(" The whole call stays within {cap} s: the watch gets what the stop left of it, and a kill_after over {cap} s is refused (invalid_request; stop the job with kill, then restart it); without kill_after, the grace is {} s.", secs_text(default_kill_after_ms().min(limits.max_ms))));
    }
    if tool == "send" {
        d.push_str(&format!(
            " Over MCP, yield_ms is capped at {} ms.",
            limits.max_ms
        ));
    }
    if tool == "tail" {
        d.push_str(" Over MCP, follow is not offered: loop with since.");
    }
    d
}

/// Where a command's `long_about` states a limit of the command line
/// that this server sets otherwise, or a form a call does not take
/// (`send`'s `--file`): (the table's words, ours in their place), so
/// that a description states only the limit in effect and what a call
/// takes. A unit test holds each to be found in its text (a rewording
/// of the table would otherwise bring the command line's words back).
fn restated(tool: &str, limits: Limits) -> Vec<(String, String)> {
    let table = |tool, long| table_default_ms(tool, long).unwrap_or_default();
    match tool {
        "run" => vec![(
            format!("(--until, {} s)", secs_text(table("run", "until"))),
            format!("(until, {} s)", secs_text(limits.default_ms)),
        )],
        "kill" => vec![(
            format!(
                "watches up to {} s",
                secs_text(super::kill::OBSERVE.as_millis() as u64)
            ),
            format!("watches up to {} s", secs_text(kill_watch_ms(limits))),
        )],
        "send" => vec![
            (
                "Writes TEXT exactly as given (or --file's bytes)".to_string(),
                "Writes data exactly as given".to_string(),
            ),
            (
                format!("--yield (default {} ms,", table("send", "yield")),
                format!("yield_ms (default {} ms,", yield_default_ms(limits)),
            ),
        ],
        _ => Vec::new(),
    }
}

/// How long `kill` watches for the outcome here: its own watch, or the
/// call's limit when that is shorter.
fn kill_watch_ms(limits: Limits) -> u64 {
    (super::kill::OBSERVE.as_millis() as u64).min(limits.max_ms)
}

/// `send`'s yield when the call gives none: the table's, or the call's
/// limit when that is shorter.
fn yield_default_ms(limits: Limits) -> u64 {
    table_default_ms("send", "yield")
        .unwrap_or(250)
        .min(limits.max_ms)
}

fn response_def(tool: &str) -> String {
    let mut c = tool.chars();
    let head: String = c
        .next()
        .map(|f| f.to_ascii_uppercase())
        .into_iter()
        .collect();
    format!("{head}{}Response", c.as_str())
}

/// `ms` as seconds for a description: `10`, `0.5`.
fn secs_text(ms: u64) -> String {
    if ms % 1000 == 0 {
        (ms / 1000).to_string()
    } else {
        (ms as f64 / 1000.0).to_string()
    }
}

/// The default a tool's argument really has, and its cap, where this
/// server's limits set them (`bound_until`, `bound_kill_after`, `send`'s
/// yield): said in place of the command line's default.
fn limits_note(tool: &str, name: &str, limits: Limits) -> Option<String> {
    let (default, cap) = (secs_text(limits.default_ms), secs_text(limits.max_ms));
    Some(match (tool, name) {
        ("run" | "wait" | "restart", "until") => {
            format!("[default: {default}; at most {cap}: this server's limits]")
        }
        ("run" | "wait" | "restart", "forever") => {
            format!("[over MCP: watch at most {cap} s, this server's limit]")
        }
        ("restart", "kill_after") => format!(
            "[default: {}; at most {cap}: this server's limit for the whole call]",
            secs_text(default_kill_after_ms().min(limits.max_ms))
        ),
        ("send", "yield_ms") => format!(
            "[default: {}; at most {}]",
            yield_default_ms(limits),
            limits.max_ms
        ),
        _ => return None,
    })
}

/// The JSON types a call may give one value of `flag` as: what
/// `split_args` takes and `flag_schema` declares, from this one place so
/// that the schema says exactly what a call takes. A count or a switch
/// may also come as its text (`"5"`, `"true"`), as over HTTP, where
/// every value is text; a signal as its number.
fn json_types(flag: &Flag) -> &'static [&'static str] {
    match flag.kind {
        Kind::Switch | Kind::OptBool => &["boolean", "string"],
        Kind::Value(Ty::U64) => &["integer", "string"],
        Kind::Value(Ty::Duration) => match flag.http {
            Http::Millis(_) => &["integer", "string"],
            _ => &["number", "string"],
        },
        Kind::Value(Ty::Signal) => &["string", "integer"],
        Kind::Value(_) => &["string"],
    }
}

/// The texts a switch takes over MCP, letters in any case
/// (`cli::switch_value` reads them).
const SWITCH_TEXTS: [&str; 4] = ["true", "false", "1", "0"];

/// `SWITCH_TEXTS` as a JSON Schema pattern: JSON Schema regexes have no
/// case-insensitive flag, so each letter is a class of its two cases.
fn switch_pattern() -> String {
    let forms: Vec<String> = SWITCH_TEXTS
        .iter()
        .map(|t| {
            t.chars()
                .map(|c| match (c.to_ascii_uppercase(), c.to_ascii_lowercase()) {
                    (u, l) if u != l => format!("[{u}{l}]"),
                    _ => c.to_string(),
                })
                .collect()
        })
        .collect();
    format!("^({})$", forms.join("|"))
}

/// A count's text: digits, one `+` allowed (what `u64::from_str` takes).
const COUNT_PATTERN: &str = "^[+]?[0-9]+$";

/// A flag's help as this door says it: the table's, unless that names
/// a form of the command line that a call does not take (`send`'s
/// `--yield 1.5s`, `run --stdin -`, `TEXT` for `data`). A unit test
/// holds each table text replaced here to be the table's still.
fn mcp_help(tool: &str, flag: &Flag) -> &'static str {
    match (tool, flag.long) {
        ("run", "stdin") => {
            "Job stdin content, byte for byte, as given ('-' is refused: this server's stdin is the protocol)"
        }
        ("send", "yield") => "How long to watch for the job's answer",
        ("send", "newline") => "Append a newline to data",
        _ => flag.help,
    }
}

/// One flag's JSON Schema type, described by `help`; `note` replaces
/// the table's `[default: ...]`.
fn flag_schema(flag: &Flag, help: &str, note: Option<String>) -> Value {
    let types = json_types(flag);
    let mut s = match (flag.kind, flag.http) {
        // Not an enum: that would list one spelling of each text.
        (Kind::Switch | Kind::OptBool, _) => {
            json!({"type": types, "pattern": switch_pattern()})
        }
        (Kind::Value(Ty::Duration), Http::Millis(_)) => json!({
            "type": types,
            "minimum": 0,
            "pattern": COUNT_PATTERN,
            "description": format!("{help} (whole milliseconds: an integer, or its digits as text)"),
        }),
        (Kind::Value(Ty::Duration), _) => json!({
            "type": types,
            "minimum": 0,
            "description": format!("{help} (a number is seconds, fractions allowed; or text such as 500ms, 2m)"),
        }),
        (Kind::Value(Ty::U64), _) => match flag.range {
            Some((lo, hi)) => {
                json!({"type": types, "minimum": lo, "maximum": hi, "pattern": COUNT_PATTERN})
            }
            None => json!({"type": types, "minimum": 0, "pattern": COUNT_PATTERN}),
        },
        (Kind::Value(Ty::Choice), _) => json!({"type": types, "enum": flag.choices}),
        (Kind::Value(_), _) => json!({"type": types}),
    };
    // One type is named alone, as JSON Schema usually has it.
    if let [one] = types {
        s["type"] = Value::from(*one);
    }
    if s.get("description").is_none() {
        s["description"] = Value::from(help);
    }
    if let Some(note) = note.or_else(|| flag.default.map(|d| format!("[default: {d}]"))) {
        s["description"] = Value::from(format!(
            "{} {note}",
            s["description"].as_str().unwrap_or_default()
        ));
    }
    if flag.multi {
        list_schema(s, types)
    } else {
        s
    }
}

/// A list argument's schema: an array of `item`s (whose JSON types are
/// `types`), or one of them alone; the description moves to the list.
/// Calls take both forms (`list_values`).
fn list_schema(mut item: Value, types: &[&str]) -> Value {
    let desc = item.as_object_mut().and_then(|o| o.remove("description"));
    let mut list = vec!["array"];
    list.extend_from_slice(types);
    json!({"type": list, "items": item, "description": desc})
}

/// A list argument's values, as `list_schema` declares it: the items of
/// an array, or the one value given alone.
fn list_values(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        one => vec![one],
    }
}

pub fn input_schema(tool: &str, cmd: &Cmd, limits: Limits) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    let job_help = "Job id (full ULID or a unique prefix, case-insensitive)";
    match tool {
        "run" => {
            props.insert(
                "command".into(),
                json!({
                    "description": "The command: an array of words (argv, run after the login shell starts; at least one, which may be empty, as with run -- ''), or one shell string (pipes, &&)",
                    "anyOf": [
                        {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        {"type": "string"},
                    ],
                }),
            );
            required.push("command");
        }
        "delete" => {
            props.insert(
                "job_id".into(),
                json!({"description": "Job id, or an array of them (not with all)", "anyOf": [
                    {"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1},
                ]}),
            );
        }
        "list" => {}
        "wait" => {
            props.insert(
                "job_id".into(),
                json!({"type": "string", "description": format!("{job_help}; give it, or ids")}),
            );
            let mut ids = list_schema(
                json!({"type": "string", "description": "Several job ids (or one alone): wait for all of them (all, the default) or the first to end (any); the answer then carries jobs (and, with any, first)"}),
                &["string"],
            );
            ids["minItems"] = Value::from(1);
            props.insert("ids".into(), ids);
        }
        _ => {
            props.insert(
                "job_id".into(),
                json!({"type": "string", "description": job_help}),
            );
            required.push("job_id");
        }
    }
    if tool == "send" {
        props.insert(
            "data".into(),
            json!({"type": "string", "description": "Text to write, exactly as given (see newline)"}),
        );
    }
    for f in cmd.flags.iter().filter(|f| !skipped(tool, f)) {
        let Some(name) = f.http_name() else { continue };
        let (name, schema) = match (tool, name.as_str()) {
            ("run", "env") => (
                "env".to_string(),
                json!({"type": "object", "additionalProperties": {"type": "string"},
                       "description": "Environment variables for the job, name to value"}),
            ),
            ("run", "tag") => ("tags".to_string(), flag_schema(f, f.help, None)),
            _ => {
                let note = limits_note(tool, &name, limits);
                (name, flag_schema(f, mcp_help(tool, f), note))
            }
        };
        // The table's second name is taken wherever the first is.
        if let Some(also) = f.http_also() {
            let mut alias = schema.clone();
            alias["description"] = Value::from(format!(
                "Another name for {name}; give one of the two. {}",
                alias["description"].as_str().unwrap_or_default()
            ));
            props.insert(also, alias);
        }
        props.insert(name, schema);
    }
    // A null is taken as the parameter left out (clients send one for an
    // optional parameter they do not use): the schema says so.
    for (k, v) in props.iter_mut() {
        if !required.contains(&k.as_str()) {
            nullable(v);
        }
    }
    json!({
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
}

/// Let the property schema `s` take null too.
fn nullable(s: &mut Value) {
    if let Some(any) = s.get_mut("anyOf").and_then(Value::as_array_mut) {
        any.push(json!({"type": "null"}));
        return;
    }
    match s.get("type").cloned() {
        Some(Value::String(t)) => s["type"] = json!([t, "null"]),
        Some(Value::Array(mut ts)) => {
            ts.push(Value::from("null"));
            s["type"] = Value::Array(ts);
        }
        _ => {}
    }
    if let Some(e) = s.get_mut("enum").and_then(Value::as_array_mut) {
        e.push(Value::Null);
    }
}

/// The response definition `name` or an error: an object schema whose
/// `definitions` hold every definition reachable from the two.
pub fn output_schema(schema: &Value, name: String) -> Value {
    let defs = schema.get("definitions").and_then(Value::as_object);
    let mut keep = Map::new();
    let mut todo = vec![name.clone(), "ErrorResponse".to_string()];
    while let Some(n) = todo.pop() {
        if keep.contains_key(&n) {
            continue;
        }
        let Some(d) = defs.and_then(|d| d.get(&n)) else {
            continue;
        };
        refs(d, &mut todo);
        keep.insert(n, d.clone());
    }
    json!({
        "type": "object",
        "anyOf": [
            {"$ref": format!("#/definitions/{name}")},
            {"$ref": "#/definitions/ErrorResponse"},
        ],
        "definitions": keep,
    })
}

/// Add the response definition `name` (and what it refers to) as one
/// more alternative of an `output_schema`.
fn also_answers(out: &mut Value, schema: &Value, name: &str) {
    let more = output_schema(schema, name.to_string());
    if let (Some(alts), Some(defs), Some(new)) = (
        out["anyOf"].as_array_mut(),
        Some(more["definitions"].clone()),
        more["anyOf"].get(0).cloned(),
    ) {
        alts.insert(1, new);
        if let (Some(d), Some(add)) = (out["definitions"].as_object_mut(), defs.as_object()) {
            for (k, v) in add {
                d.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => {
                        if let Some(n) = r.strip_prefix("#/definitions/") {
                            out.push(n.to_string());
                        }
                    }
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Calls
// ---------------------------------------------------------------------------

/// The arguments as the other doors give them: named parameters,
/// positionals and the trailing command.
struct Args {
    params: Vec<(String, String)>,
    pos: Vec<String>,
    rest: Vec<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidRequest(msg.into())
}

/// A value that must be text (a job id, `send`'s data).
fn text(name: &str, v: &Value) -> Result<String> {
    v.as_str().map(str::to_string).ok_or_else(|| {
        bad(format!(
            "parameter {name}: expected a string, got {}",
            Shown(v)
        ))
    })
}

/// A number past a double's range given for `flag`, refused with the
/// code of the flag's own bad values: a duration's is `invalid_duration`
/// (in the flag's unit; a negative one's too, as for `-1`), a signal's
/// `invalid_signal` (as `1e30`), a boolean's "expected true or false";
/// any other value's is out of range for it. Also HTTP's, for `/send`.
pub fn huge(name: &str, flag: &Flag, written: &str) -> Error {
    match flag.kind {
        Kind::Value(Ty::Duration) if matches!(flag.http, Http::Millis(_)) => {
            Error::InvalidDuration(format!(
                "parameter {name}: expected a non-negative whole number of milliseconds, got {written}"
            ))
        }
        Kind::Value(Ty::Duration) => Error::InvalidDuration(format!(
            "parameter {name}: expected a non-negative number of seconds (at most 1e308), got {written}"
        )),
        // As an unknown signal number is (`-1`, `1e30`).
        Kind::Value(Ty::Signal) => Error::InvalidSignal(format!(
            "parameter {name}: expected a signal name or number, got {written}"
        )),
        Kind::Switch | Kind::OptBool => bad(format!(
            "parameter {name}: expected true or false, got {written}"
        )),
        _ => bad(format!(
            "parameter {name}: {written} is out of range for it"
        )),
    }
}

/// The JSON type of `v`, for a message that must not show `v`.
fn json_type(v: &Value) -> &'static str {
    if crate::jsonin::huge_text(v).is_some() {
        return "a number";
    }
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One value of `flag` as the text the other doors give: refused unless
/// it is of a JSON type the schema declares for it (`json_types`).
/// `written`: the value's text as the client sent it, for a number
/// serde_json holds as an f64 (`Call::argument_text`).
fn flag_value(name: &str, flag: &Flag, v: &Value, written: Option<&str>) -> Result<String> {
    // A number past a double's range (`jsonin`): a number all the same,
    // refused as the value it is, with the code its flag's values have.
    if let Some(t) = crate::jsonin::huge_text(v) {
        return Err(huge(name, flag, t));
    }
    let typed = json_types(flag).iter().any(|t| match *t {
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        // 2.0 is an integer to JSON Schema too.
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    });
    if !typed {
        return Err(bad(format!(
            "parameter {name}: expected {}, got {}",
            json_types(flag).join(" or "),
            Shown(v)
        )));
    }
    match (flag.kind, v) {
        (Kind::Value(Ty::Duration), _) if flag.http == Http::Same => seconds(name, v),
        (Kind::Switch | Kind::OptBool, Value::String(s)) if cli::switch_value(s).is_none() => {
            Err(bad(format!(
                "parameter {name}: expected true or false (or 1 or 0), got '{s}'"
            )))
        }
        // Whole and within u64: as `u64::from_str` reads it (not
        // `2.0`). Past u64, a duration in milliseconds saturates, as
        // every duration does (and is then capped); anything else (a
        // count past u64, a negative number) goes on as the client
        // wrote it (`1e300`, `-2.0`), to be refused there with the
        // command line's reason, quoting what was sent, not a number
        // nobody wrote.
        (_, Value::Number(n)) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
            Ok(if (0.0..PAST_U64).contains(&f) {
                (f as u64).to_string()
            } else if f > 0.0 && matches!(flag.http, Http::Millis(_)) {
                u64::MAX.to_string()
            } else {
                written.map_or_else(|| n.to_string(), str::to_string)
            })
        }
        _ => scalar(name, v),
    }
}

fn scalar(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(bad(format!(
            "parameter {name}: expected a string, number or boolean, got {}",
            Shown(other)
        ))),
    }
}

fn strings(name: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    bad(format!(
                        "parameter {name}: expected strings, got {}",
                        Shown(x)
                    ))
                })
            })
            .collect(),
        Value::String(s) => Ok(vec![s.clone()]),
        other => Err(bad(format!(
            "parameter {name}: expected a string or an array of strings, got {}",
            Shown(other)
        ))),
    }
}

/// A duration given in seconds (a number) as the flag's text.
fn seconds(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .and_then(crate::time::seconds_text)
            .ok_or_else(|| {
                Error::InvalidDuration(format!(
                    "parameter {name}: expected a non-negative number of seconds, got {n}"
                ))
            }),
        Value::String(s) => Ok(s.clone()),
        other => Err(bad(format!(
            "parameter {name}: expected a number of seconds, got {}",
            Shown(other)
        ))),
    }
}

/// `call`: where the arguments' text as sent is found (None: a call
/// made here, as `restart`'s second one).
fn split_args(tool: &str, cmd: &'static Cmd, args: &Value, call: Option<&Call>) -> Result<Args> {
    let obj = match args {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        other => return Err(bad(format!("arguments must be an object, got {other}"))),
    };
    let mut a = Args {
        params: Vec::new(),
        pos: Vec::new(),
        rest: Vec::new(),
    };
    let mut data = None;
    for (k, v) in &obj {
        if v.is_null() {
            continue;
        }
        match (tool, k.as_str()) {
            ("run", "command") => {
                a.rest = strings(k, v)?;
                // As over HTTP: no argument can hold a NUL.
                if a.rest.iter().any(|c| c.contains('\0')) {
                    return Err(bad("command must not contain NUL characters"));
                }
                continue;
            }
            ("run", "env") => {
                // Values may be secrets: an error names their JSON type,
                // never shows them (`["A=SECRET"]` was printed back).
                let Value::Object(env) = v else {
                    return Err(bad(format!(
                        "parameter env: expected an object of NAME: value strings, got {}",
                        json_type(v)
                    )));
                };
                for (name, val) in env {
                    let val = val.as_str().ok_or_else(|| {
                        bad(format!(
                            "parameter env.{name}: expected a string, got {}",
                            json_type(val)
                        ))
                    })?;
                    let entry = crate::launch::env_entry(name, val)
                        .map_err(|e| bad(format!("parameter env: {e}")))?;
                    a.params.push(("env".into(), entry));
                }
                continue;
            }
            ("run", "tags") => {
                for t in strings(k, v)? {
                    // Checked here, to be named as the tool names it (the
                    // table's check says `tag`).
                    crate::job::validate_tag(&t).map_err(|e| e.about("parameter tags"))?;
                    a.params.push(("tag".into(), t));
                }
                continue;
            }
            ("send", "data") => {
                data = Some(text(k, v)?);
                continue;
            }
            // The tool's name for the table's `tag` is `tags`.
            ("run", "tag") => return Err(unknown_argument(tool, cmd, k)),
            ("list", "job_id") | ("run", "job_id") => {}
            ("delete", "job_id") => {
                a.pos = strings(k, v)?;
                // As its inputSchema says (minItems 1), `all` or not.
                if a.pos.is_empty() {
                    return Err(bad(
                        "parameter job_id: an array of ids must name at least one job",
                    ));
                }
                continue;
            }
            ("wait", "ids") => {
                if obj.get("job_id").is_some_and(|j| !j.is_null()) {
                    return Err(bad("job_id and ids cannot be used together"));
                }
                // A list argument: one id alone is a list of one, as
                // the schema says (`list_schema`).
                a.pos = list_values(v)
                    .into_iter()
                    .map(|id| text(k, id))
                    .collect::<Result<_>>()?;
                if a.pos.is_empty() {
                    return Err(bad("ids must name at least one job"));
                }
                continue;
            }
            (_, "job_id") => {
                a.pos.insert(0, text(k, v)?);
                continue;
            }
            _ => {}
        }
        let flag = cmd.flags.iter().filter(|f| !skipped(tool, f)).find(|f| {
            f.http_name().as_deref() == Some(k.as_str())
                || f.http_also().as_deref() == Some(k.as_str())
        });
        let Some(flag) = flag else {
            if cmd
                .flags
                .iter()
                .any(|f| f.http_name().as_deref() == Some(k.as_str()))
            {
                // A flag of the command this tool does not offer
                // (`tail`'s follow): not in the schema, so unknown here.
                return Err(unknown_argument(tool, cmd, k));
            }
            // matches_from_params names the parameters there are.
            a.params.push((k.clone(), scalar(k, v).unwrap_or_default()));
            continue;
        };
        let values = match v {
            _ if flag.multi => list_values(v),
            Value::Array(_) => {
                return Err(bad(format!(
                    "parameter {k}: expected one value, got an array"
                )))
            }
            _ => vec![v],
        };
        // A number serde_json respells, given alone (found by its name).
        let written = call.filter(|_| v.is_f64()).and_then(|c| c.argument_text(k));
        for v in values {
            a.params.push((k.clone(), flag_value(k, flag, v, written)?));
        }
    }
    if tool == "send" {
        a.pos.extend(data);
    }
    // `no_X: false` asks for X where the command has both switches
    // (`no_full_log: false` writes full.log whatever the config says, as
    // over HTTP); alone, the switch false would only be "not given".
    let negated: Vec<String> = a
        .params
        .iter()
        .filter(|(k, v)| !cli::flag_on(v) && k.starts_with("no_"))
        .map(|(k, _)| k[3..].to_string())
        .filter(|x| {
            cmd.flags
                .iter()
                .any(|f| f.http_name().as_deref() == Some(x.as_str()))
        })
        .collect();
    for x in negated {
        a.params
            .retain(|(k, _)| k.strip_prefix("no_") != Some(x.as_str()));
        if !a.params.iter().any(|(k, _)| *k == x) {
            a.params.push((x, "true".into()));
        }
    }
    Ok(a)
}

/// Parameter `name`'s duration, in milliseconds; one that does not parse
/// is `invalid_duration` naming the parameter, as every other is.
fn param_duration_ms(name: &str, v: &str) -> Result<u64> {
    crate::time::parse_duration_ms(v).map_err(|e| e.about(&format!("parameter {name}")))
}

/// Bound an observation: no `until` is the default, more (or `forever`)
/// the maximum.
fn bound_until(params: &mut Vec<(String, String)>, limits: Limits) -> Result<()> {
    let forever = params
        .iter()
        .any(|(k, v)| k == "forever" && cli::flag_on(v));
    params.retain(|(k, _)| k != "forever");
    let given = params.iter().position(|(k, _)| k == "until");
    if forever && given.is_some() {
        // As the command line and HTTP: both asked is a contradiction,
        // not one of them winning.
        return Err(bad("until and forever cannot be used together"));
    }
    let not_waiting = crate::cli::not_waiting(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    if let (true, Some(a)) = (forever, not_waiting) {
        return Err(bad(format!(
            "{} and forever cannot be used together",
            a.replace('-', "_")
        )));
    }
    let ms = match given {
        Some(i) => param_duration_ms("until", &params[i].1)?,
        None if forever => limits.max_ms,
        None => limits.default_ms,
    }
    .min(limits.max_ms);
    if let Some(i) = given {
        params.remove(i);
    }
    params.push(("until".into(), format!("{ms}ms")));
    Ok(())
}

/// `restart`'s `--kill-after` when none is given, from the table.
fn default_kill_after_ms() -> u64 {
    table_default_ms("restart", "kill-after").unwrap_or(5000)
}

/// The default of the duration flag `--long` of `tool`'s command, from
/// the table.
fn table_default_ms(tool: &str, long: &str) -> Option<u64> {
    command(tool)
        .ok()?
        .flags
        .iter()
        .find(|f| f.long == long)
        .and_then(|f| f.default)
        .and_then(|d| crate::time::parse_duration_ms(d).ok())
}

/// Keep `restart`'s stop within the call's limit: a `kill_after` above
/// it is refused (shortening it would SIGKILL the job sooner than asked,
/// a change to the job, not just to the watch); without one, the
/// default grace is shortened to the limit when that is less.
fn bound_kill_after(params: &mut Vec<(String, String)>, limits: Limits) -> Result<()> {
    match params.iter().rposition(|(k, _)| k == "kill_after") {
        Some(i) => {
            let ms = param_duration_ms("kill_after", &params[i].1)?;
            if ms > limits.max_ms {
                return Err(bad(format!(
                    "kill_after {} s is longer than this server lets one call take ({} s, AGENT_EXEC_MCP_MAX_UNTIL_SECONDS): give a shorter one, or stop the job with kill (and wait) before restart",
                    secs_text(ms),
                    secs_text(limits.max_ms)
                )));
            }
        }
        None => {
            let ms = default_kill_after_ms().min(limits.max_ms);
            params.push(("kill_after".into(), format!("{ms}ms")));
        }
    }
    Ok(())
}

/// The limits of `call`'s watch: the server's, held to what is left of
/// its batch's (`Call::time_left`) when it came in one.
fn call_limits(srv: &Server, call: Option<&Call>) -> Limits {
    match call.and_then(Call::time_left) {
        Some(left) => {
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            Limits {
                default_ms: srv.limits.default_ms.min(ms),
                max_ms: srv.limits.max_ms.min(ms),
            }
        }
        None => srv.limits,
    }
}

/// The tool's `Matches`, as the CLI would build them; `call`, when they
/// are its arguments, has their text as sent (`split_args`).
fn matches(srv: &Server, tool: &str, args: &Value, call: Option<&Call>) -> Result<Matches> {
    let cmd = command(tool)?;
    let mut a = split_args(tool, cmd, args, call)?;
    let limits = call_limits(srv, call);
    match tool {
        "run" | "wait" => bound_until(&mut a.params, limits)?,
        "restart" => {
            bound_until(&mut a.params, limits)?;
            // What a kill_after may be is the server's rule, not the
            // time left: the same call is refused or not whenever it runs.
            bound_kill_after(&mut a.params, srv.limits)?;
        }
        "send" => {
            let cap = limits.max_ms;
            let mut given = false;
            for (k, v) in a.params.iter_mut().filter(|(k, _)| k == "yield_ms") {
                given = true;
                *v = cli::param_millis(k, v)?.min(cap).to_string();
            }
            // The default yield is held to the limit too, as the
            // description says (`yield_default_ms`).
            if !given {
                let ms = yield_default_ms(limits);
                a.params.push(("yield_ms".into(), ms.to_string()));
            }
        }
        _ => {}
    }
    if tool == "run" {
        // As on the command line (`run -- ''`) and over HTTP, an empty
        // word is a command; no word at all is none.
        if a.rest.is_empty() {
            return Err(bad("command is required: at least one word"));
        }
        if a.params.iter().any(|(k, v)| k == "stdin" && v == "-") {
            return Err(bad(
                "stdin '-' would read the server's stdin (the protocol); give the bytes themselves",
            ));
        }
    }
    let needs_job = cmd
        .pos
        .first()
        .is_some_and(|p| p.required && p.name == "JOB_ID");
    if needs_job && a.pos.is_empty() {
        return Err(bad(if tool == "wait" {
            "job_id (or ids) is required"
        } else {
            "job_id is required"
        }));
    }
    let mut m = cli::matches_from_params(cmd, srv.root.clone(), &a.params, a.pos).map_err(|e| {
        // The table names a flag by its HTTP name (`tag`); the tool's
        // arguments are its schema's (`tags`, `command`, `job_id`): name
        // those.
        match e {
            Error::InvalidRequest(msg) if msg.starts_with("unknown parameter '") => {
                let name = msg["unknown parameter '".len()..]
                    .split('\'')
                    .next()
                    .unwrap_or_default();
                unknown_argument(tool, cmd, name)
            }
            e => e,
        }
    })?;
    m.rest = a.rest;
    check_together(tool, &m)?;
    Ok(m)
}

/// An argument the tool does not take, with the names of those it does
/// (its schema's).
fn unknown_argument(tool: &str, cmd: &Cmd, name: &str) -> Error {
    // The names do not depend on the limits.
    let schema = input_schema(tool, cmd, Limits::DEFAULT);
    let names: Vec<&str> = schema["properties"]
        .as_object()
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    Error::InvalidRequest(format!(
        "unknown parameter '{name}': expected one of {}",
        names.join(", ")
    ))
}

/// Arguments that need another, checked here so that they are named as
/// the tool's arguments (the operations check them too, in the command
/// line's words).
fn check_together(tool: &str, m: &Matches) -> Result<()> {
    match tool {
        "run" if m.has("tty-size") && !m.has("tty") => Err(bad("tty_size needs tty")),
        "run" if m.has("parallel") && !m.has("queue") => Err(bad("parallel needs queue")),
        "send" if m.pos(1).is_none() && !m.has("eof") && !m.has("newline") => {
            Err(bad("send needs data, eof or newline"))
        }
        _ => Ok(()),
    }
}

/// The error as this door gives it: a `usage_error` (the command line's
/// code for a bad invocation) becomes `invalid_request`, as over HTTP,
/// with the command line's flag names (`--tty-size`) put as the tool's
/// arguments (`tty_size`).
fn door_error(tool: &str, e: Error) -> Error {
    match e {
        Error::Usage(msg) => Error::InvalidRequest(argument_names(tool, &msg)),
        Error::InJob(id, inner) => Error::InJob(id, Box::new(door_error(tool, *inner))),
        e => e,
    }
}

/// `msg` with each `--flag` of the tool's command written as its
/// argument name; other text (a value quoted back, say) is left alone.
/// HTTP's bodies name their fields the same way (`/exec`).
pub(crate) fn argument_names(tool: &str, msg: &str) -> String {
    let Ok(cmd) = command(tool) else {
        return msg.to_string();
    };
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(at) = rest.find("--") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
            .unwrap_or(after.len());
        let word = &after[..len];
        match cmd
            .flags
            .iter()
            .find(|f| f.long == word)
            .and_then(Flag::http_name)
        {
            Some(name) => out.push_str(&name),
            None => {
                out.push_str("--");
                out.push_str(word);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The envelope the CLI prints around `body` (as `output::Response`
/// builds it), as text.
fn doc<T: Serialize>(kind: &str, body: &T) -> Result<String> {
    // Fallibly, as the CLI builds its document: a body the memory left
    // cannot hold (log text as large as `max_bytes` asked for) is
    // io_error (ENOMEM), not the abort of the whole server.
    let mut b = Vec::new();
    let built = crate::output::write_json(&mut b, body).and_then(|()| room_for(b.len()));
    if let Err(e) = built {
        // About the job the body names (its first field), if one does.
        let head = String::from_utf8_lossy(&b[..b.len().min(256)]);
        return Err(match job_of(&head) {
            Some(id) => e.in_job(&id),
            None => e,
        });
    }
    let b = String::from_utf8(b).map_err(|e| Error::internal(format!("serialize: {e}")))?;
    let fields = b.strip_prefix('{').unwrap_or("}");
    let sep = if fields == "}" { "" } else { "," };
    Ok(format!(
        "{{\"schema_version\":\"{}\",\"ok\":true,\"type\":\"{kind}\"{sep}{fields}",
        crate::output::SCHEMA_VERSION
    ))
}

/// Answer a call: the `CallToolResult` as JSON text, or None when it was
/// cancelled (nothing is sent).
pub fn call_tool(srv: &Server, call: &Call) -> Option<String> {
    let tool = call
        .params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let args = call.params.get("arguments").cloned().unwrap_or(Value::Null);
    let t0 = Instant::now();
    let answer = match &call.twice {
        Some(why) => Err(bad(why.clone())),
        None => Ok(()),
    }
    .and_then(|()| matches(srv, tool, &args, Some(call)))
    .and_then(|m| operate(srv, call, tool, &m))
    .map_err(|e| door_error(tool, e));
    crate::info!("mcp: {tool} answered in {} ms", t0.elapsed().as_millis());
    // The result copies the document a few times over (parsed for its
    // summary, then wrapped in the result, then in the message): room for
    // that is made sure of first, or the answer is io_error (ENOMEM)
    // about the job, as the CLI's is.
    let answer = answer.and_then(|d| match d {
        Some(d) => match room_for(d.len().saturating_mul(5)) {
            Ok(()) => Ok(Some(d)),
            Err(e) => Err(match job_of(&d) {
                Some(id) => e.in_job(&id),
                None => e,
            }),
        },
        None => Ok(None),
    });
    match answer {
        Ok(Some(d)) => Some(result(srv, &d, false)),
        Ok(None) => None,
        Err(e) => Some(error_result(srv, &e)),
    }
}

/// Can `bytes` more be allocated now? io_error (ENOMEM) if not: what is
/// built next (infallibly, as std builds strings) would end the process.
fn room_for(bytes: usize) -> Result<()> {
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(bytes)
        .map_err(|_| crate::observe::out_of_memory("build the answer"))
}

/// The job a document is about: its `job_id`, which follows the
/// envelope's first fields.
fn job_of(doc: &str) -> Option<String> {
    let head = doc.get(..doc.len().min(256))?;
    let at = head.find("\"job_id\":\"")? + "\"job_id\":\"".len();
    let id = head.get(at..)?.split('"').next()?;
    crate::store::valid_id(id).then(|| id.to_string())
}

/// An `isError` result carrying the CLI's error envelope.
pub fn error_result(srv: &Server, e: &Error) -> String {
    result(srv, &crate::output::error_json(e), true)
}

fn result(srv: &Server, doc: &str, is_error: bool) -> String {
    let v: Value = serde_json::from_str(doc).unwrap_or(Value::Null);
    let text = serde_json::to_string(&summary(&v)).unwrap_or_default();
    if srv.structured() {
        format!("{{\"content\":[{{\"type\":\"text\",\"text\":{text}}}],\"structuredContent\":{doc},\"isError\":{is_error}}}")
    } else {
        // Older clients have no structured results: the document follows
        // the summary as a second text block.
        let whole = serde_json::to_string(doc).unwrap_or_default();
        format!("{{\"content\":[{{\"type\":\"text\",\"text\":{text}}},{{\"type\":\"text\",\"text\":{whole}}}],\"isError\":{is_error}}}")
    }
}

/// At most this many bytes of each stream's end (and of grep's matches)
/// in the short text.
const EXCERPT: usize = 2000;

/// The end of `text`, at most `EXCERPT` bytes of it (whole characters);
/// whether some was cut.
fn excerpt(text: &str) -> (&str, bool) {
    let mut cut = text.len().saturating_sub(EXCERPT);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    (&text[cut..], cut > 0)
}

/// The start of `text`, at most `EXCERPT` bytes of it (whole
/// characters), and " [...]" when some was cut: where a line's start
/// says what it is (a failure message, a matched line).
fn opening(text: &str) -> (&str, &'static str) {
    let mut at = text.len().min(EXCERPT);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    (&text[..at], if at < text.len() { " [...]" } else { "" })
}

/// How a job ended, as far as its document says: `, exit code 1`,
/// `, signal SIGTERM`, `, timed out`, and a failed job's failure code.
fn outcome(j: &Value) -> String {
    let mut s = String::new();
    if let Some(c) = j["exit_code"].as_i64() {
        s.push_str(&format!(", exit code {c}"));
    }
    // `kill`'s `signal` is the one it sent; how the job ended is its
    // `terminated_signal` (a job that exited has none).
    let ended_by = match j["type"].as_str() {
        Some("kill") => j["terminated_signal"].as_str(),
        _ => j["signal"].as_str(),
    };
    if let Some(sig) = ended_by {
        s.push_str(&format!(", signal {sig}"));
    }
    if j["timed_out"] == Value::Bool(true) {
        s.push_str(", timed out");
    }
    if let Some(code) = j["failure"]["code"].as_str() {
        s.push_str(&format!(", failure {code}"));
    }
    s
}

/// The short text rendering: the state and how the job ended (a
/// failure with its message), what `wait` matched or `grep` found, the
/// output's end, the cursor.
fn summary(v: &Value) -> String {
    if v["ok"] == Value::Bool(false) {
        return format!(
            "error {}: {}",
            v["error"]["code"].as_str().unwrap_or("?"),
            v["error"]["message"].as_str().unwrap_or("")
        );
    }
    let mut s = String::new();
    if let Some(jobs) = v["jobs"].as_array() {
        s.push_str(&format!("{} job(s)", jobs.len()));
        // `wait --any`: what it waited for is the one that ended first.
        if let Some(first) = v["first"].as_str() {
            s.push_str(&format!(", first to end: {first}"));
        }
        for j in jobs.iter().take(50) {
            // What a delete (or a dry run) did with each job, and why
            // not: the point of its answer, and all some clients show.
            let action = match (j["action"].as_str(), j["reason"].as_str()) {
                (Some(a), Some(r)) => format!(" [{a}: {r}]"),
                (Some(a), None) => format!(" [{a}]"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "\n{} {}{}{action} {}",
                j["job_id"].as_str().unwrap_or("?"),
                j["state"].as_str().unwrap_or("?"),
                outcome(j),
                j["command"]
                    .as_array()
                    .map(|c| c
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default(),
            ));
        }
        return s;
    }
    if let Some(id) = v["job_id"].as_str() {
        s.push_str(&format!("job {id}"));
    } else {
        s.push_str(v["type"].as_str().unwrap_or("done"));
    }
    if let Some(st) = v["state"].as_str() {
        s.push_str(&format!(": {st}"));
    }
    s.push_str(&outcome(v));
    if let Some(m) = v["failure"]["message"].as_str() {
        // Its start says why; a long one (a path) is cut after EXCERPT.
        let (m, more) = opening(m);
        s.push_str(&format!("\nfailure: {m}{more}"));
    }
    if let Some(m) = v["matched"]["line"].as_str() {
        // A line is up to a 64 KiB piece: bounded as the rest is.
        let (m, more) = opening(m);
        s.push_str(&format!(
            "\nmatched ({}): {m}{more}",
            v["matched"]["stream"].as_str().unwrap_or("?")
        ));
    }
    if let Some(found) = v["matches"].as_array() {
        // grep's answer is its matches (the streams are empty): the
        // last of them, bounded as a stream's end is.
        s.push_str(&format!("\n--- {} match(es) ---", found.len()));
        let lines: String = found
            .iter()
            .map(|f| {
                format!(
                    "\n{}: {}",
                    f["stream"].as_str().unwrap_or("?"),
                    f["line"].as_str().unwrap_or("")
                )
            })
            .collect();
        let (mut end, cut) = excerpt(&lines);
        if cut {
            // From the first whole match on.
            end = end.find('\n').map_or(end, |i| &end[i..]);
            s.push_str("\n[...]");
        }
        s.push_str(end);
    }
    for stream in ["stdout", "stderr"] {
        let head = v[stream].as_str().unwrap_or("");
        let tail = v[format!("{stream}_tail")].as_str().unwrap_or("");
        if head.is_empty() && tail.is_empty() {
            continue;
        }
        s.push_str(&format!("\n--- {stream} ---\n"));
        let (end, cut) = excerpt(if tail.is_empty() { head } else { tail });
        if cut || !tail.is_empty() {
            s.push_str("[...]\n");
        }
        s.push_str(end);
    }
    if let Some(c) = v["cursor"].as_str() {
        s.push_str(&format!("\ncursor: {c}"));
    }
    s
}

/// Carry the call out; None when it was cancelled.
fn operate(srv: &Server, call: &Call, tool: &str, m: &Matches) -> Result<Option<String>> {
    let store = super::store(m);
    let lookup = || store.lookup(m.pos(0).unwrap_or_default());
    let d = match tool {
        "run" => return run(srv, call, m),
        "wait" if m.positionals.len() > 1 => return wait_many(srv, call, m),
        "wait" => {
            let job = lookup()?;
            return wait(srv, call, m, &job).map_err(|e| e.in_job(&job.id));
        }
        "send" => {
            let job = lookup()?;
            let req = super::send::request_from(m)?;
            let wake = Some(call.wake_fd());
            let body = observing(
                srv,
                call,
                std::slice::from_ref(&job),
                Instant::now(),
                || super::send::send_job_or(&job, &req, wake),
            )
            .map_err(|e| e.in_job(&job.id))?;
            doc("send", &body)?
        }
        "status" => {
            let job = lookup()?;
            doc("status", &super::status::read(&job)?)?
        }
        "tail" => {
            let job = lookup()?;
            let req = super::tail::TailReq::from_matches(m);
            doc("tail", &super::tail::tail_body(&job, &req)?)?
        }
        "kill" => {
            let job = lookup()?;
            let sig = crate::sys::parse_signal(m.get("signal").unwrap_or("TERM"))
                .unwrap_or(libc::SIGTERM);
            // Watched within the call's limit, and no longer than a
            // cancel allows.
            let within =
                std::time::Duration::from_millis(kill_watch_ms(call_limits(srv, Some(call))));
            let no_wait = m.has("no-wait");
            let body =
                super::kill::kill_job_within(&job, sig, no_wait, Some(call.wake_fd()), within)
                    .map_err(|e| e.in_job(&job.id))?;
            if call.cancelled() {
                return Ok(None);
            }
            doc("kill", &body)?
        }
        "list" => {
            let q = super::list::ListQuery {
                limit: m.u64("limit").unwrap_or(50),
                state: m.get("state").map(str::to_string),
                cwd: if m.has("all") {
                    None
                } else {
                    Some(match m.get("cwd") {
                        // As the command line's `--cwd ''` and `run`'s:
                        // an unset variable, not the server's directory.
                        Some("") => return Err(bad("cwd must not be empty")),
                        Some(c) => c.to_string(),
                        None => super::list::caller_dir()?,
                    })
                },
                tags: m.all("tag").into_iter().map(str::to_string).collect(),
                active: false,
            };
            doc("list", &super::list::list_jobs(&store, &q)?)?
        }
        "delete" => delete(m, &store)?,
        "restart" => {
            let job = lookup()?;
            return restart(srv, call, m, &job).map_err(|e| e.in_job(&job.id));
        }
        _ => return Err(bad(format!("unknown tool: {tool}"))),
    };
    Ok(Some(d))
}

/// `delete`: as the command decides between one, many and `--all`.
fn delete(m: &Matches, store: &crate::store::Store) -> Result<String> {
    use super::delete::{delete_all, delete_many, delete_one};
    let dry_run = m.has("dry-run");
    let ids = &m.positionals;
    if m.has("include-created") && !m.has("all") {
        return Err(bad("include_created needs all"));
    }
    let body = match (m.has("all"), ids.len()) {
        (true, 0) => delete_all(
            store,
            super::list::caller_dir()?,
            dry_run,
            m.has("include-created"),
        )?,
        (false, 1) => delete_one(store, &store.lookup(&ids[0])?, dry_run)?,
        (false, n) if n > 1 => {
            let jobs = super::delete::lookup_distinct(store, ids)?;
            delete_many(store, &jobs, dry_run)
        }
        (true, _) => return Err(bad("all and job_id cannot be used together")),
        (false, _) => return Err(bad("delete needs job_id, or all")),
    };
    doc("delete", &body)
}

/// `run`: define and launch without waiting, then observe with the
/// call's wake socket, and answer as `run` does.
fn run(srv: &Server, call: &Call, m: &Matches) -> Result<Option<String>> {
    use super::run::{inline_body, run_spec, WaitPlan};
    let t0 = Instant::now();
    crate::launch::check_flags(m)?;
    let cfg = crate::config::load(m.get("config").map(std::path::Path::new))?;
    let spec = crate::launch::Spec::from_matches(m, &cfg)?;
    let auto_gc = crate::gc::AutoGc::from_matches(m, &cfg.gc);
    let plan = WaitPlan::from_matches(m);
    let mut launched = run_spec(
        &super::store(m),
        &spec,
        WaitPlan {
            wait: false,
            ..plan
        },
        auto_gc.as_ref(),
    )?;
    // No env display in an MCP answer (see `restart`).
    launched.env_vars.clear();
    let terminal = matches!(launched.state, "exited" | "killed" | "failed");
    if !plan.wait || terminal {
        return doc("run", &launched).map(Some);
    }
    let store = super::store(m);
    let job = store.lookup(&launched.job_id)?;
    let deadline = plan.deadline();
    let waited_from = Instant::now();
    let st = observing(srv, call, std::slice::from_ref(&job), waited_from, || {
        observe::wait_terminal_or(&job, deadline, Some(call.wake_fd()))
    })
    .map_err(|e| e.in_job(&job.id))?;
    if call.cancelled() {
        return Ok(None);
    }
    let meta = job.read_meta().map_err(|e| e.in_job(&job.id))?;
    let body = inline_body(
        &job,
        &meta,
        &st,
        (plan.max_bytes, plan.tail_bytes),
        t0.elapsed().as_millis() as u64,
        waited_from.elapsed().as_millis() as u64,
    )
    .map_err(|e| e.in_job(&job.id))?;
    doc("run", &body).map(Some)
}

/// `restart`: the stop and the launch without a wait, then `run`'s watch
/// of the new run, all within the call's limit: the watch ends `until`
/// after the launch (as `restart` counts it) or `max_ms` after the call
/// began, whichever is first, so a long stop leaves less of it (the stop
/// itself is bounded by `bound_kill_after`). Progress goes out during
/// both; a cancel drops the answer.
fn restart(srv: &Server, call: &Call, m: &Matches, job: &Job) -> Result<Option<String>> {
    use std::time::Duration;
    let called = Instant::now();
    let plan = super::run::WaitPlan::from_matches(m);
    // The same call without its wait, through the same checks.
    let mut args = call.params.get("arguments").cloned().unwrap_or(Value::Null);
    if let Value::Object(o) = &mut args {
        for k in ["wait", "no_wait", "forever", "until"] {
            o.remove(k);
        }
        o.insert("no_wait".into(), Value::Bool(true));
    }
    let launch_only = matches(srv, "restart", &args, None)?;
    let store = super::store(m);
    let launched = observing(srv, call, std::slice::from_ref(job), called, || {
        super::restart::restart_job(&store, job, &launch_only)
    })?;
    if call.cancelled() {
        return Ok(None);
    }
    let cap = called.checked_add(Duration::from_millis(call_limits(srv, Some(call)).max_ms));
    let body = super::restart::watch_relaunched(job, launched, plan, cap, |deadline| {
        let st = observing(srv, call, std::slice::from_ref(job), called, || {
            observe::wait_terminal_or(job, deadline, Some(call.wake_fd()))
        })?;
        Ok((!call.cancelled()).then_some(st))
    })?;
    match body {
        Some(mut body) => {
            // No env display in an MCP answer, as in HTTP's: the values
            // would go into the model's context.
            body.inline.env_vars.clear();
            doc("restart", &body).map(Some)
        }
        None => Ok(None),
    }
}

/// `wait`, readiness included, ending early when the call is cancelled.
fn wait(srv: &Server, call: &Call, m: &Matches, job: &Job) -> Result<Option<String>> {
    use super::wait::{wait_body, wait_ready, Budget, Ready};
    let budget = Budget::from_matches(m);
    let ready = Ready::from_matches(m);
    if ready.is_none() && m.has("since") {
        return Err(bad("since needs output"));
    }
    let deadline = m.duration_ms("until").and_then(crate::time::deadline_after);
    let look = || stir(call);
    let client = observe::Client {
        fd: call.wake_fd(),
        events: crate::sys::POLLIN,
        look: &look,
    };
    let body = observing(
        srv,
        call,
        std::slice::from_ref(job),
        Instant::now(),
        || -> Result<Option<_>> {
            if let Some(r) = &ready {
                return wait_ready(job, r, deadline, budget, Some(client));
            }
            let st = observe::wait_terminal_or(job, deadline, Some(call.wake_fd()))?;
            if call.cancelled() {
                return Ok(None);
            }
            wait_body(job, &st, budget).map(Some)
        },
    )?;
    match body {
        Some(b) if !call.cancelled() => doc("wait", &b).map(Some),
        _ => Ok(None),
    }
}

/// A cancelled call is a client that left: the observation ends.
fn stir(call: &Call) -> observe::Stir {
    if call.cancelled() {
        observe::Stir::Left
    } else {
        observe::Stir::Quiet
    }
}

/// `wait` with `ids`: several jobs, ending early when the call is
/// cancelled.
fn wait_many(srv: &Server, call: &Call, m: &Matches) -> Result<Option<String>> {
    use super::wait::{lookup_all, Budget};
    if m.has("output") || m.has("since") {
        return Err(bad("output and since take one job: give job_id"));
    }
    let jobs = lookup_all(&super::store(m), &m.positionals)?;
    let budget = Budget::from_matches(m);
    let deadline = m.duration_ms("until").and_then(crate::time::deadline_after);
    let look = || stir(call);
    let client = observe::Client {
        fd: call.wake_fd(),
        events: crate::sys::POLLIN,
        look: &look,
    };
    let body = observing(srv, call, &jobs, Instant::now(), || {
        super::wait::wait_many(&jobs, m.has("any"), deadline, budget, Some(client))
    })?;
    match body {
        Some(b) if !call.cancelled() => doc("wait", &b).map(Some),
        _ => Ok(None),
    }
}

/// Run `f` (an observation of `jobs`: one, or a `wait` on several)
/// while a ticker reports progress to a client that asked for it. The
/// value is the milliseconds since `t0` (the call's watch began), which
/// only rises, as the protocol wants, and keeps rising while the jobs
/// are quiet: clients take progress as a sign of life. The message says
/// how much output the jobs have so far.
/// One goes out at the first tick, then when the output grew (at most
/// 10 a second) and at least once a second while nothing changes. The
/// ticker is joined before this returns.
fn observing<T>(srv: &Server, call: &Call, jobs: &[Job], t0: Instant, f: impl FnOnce() -> T) -> T {
    use std::time::Duration;
    const TICK: Duration = Duration::from_millis(100);
    const KEEP_ALIVE: Duration = Duration::from_secs(1);
    if !call.wants_progress() {
        return f();
    }
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            // When the last one went out, and the bytes it reported.
            let mut last: Option<(Instant, u64)> = None;
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(TICK) {
                if call.cancelled() {
                    return;
                }
                let bytes: u64 = jobs
                    .iter()
                    .map(|j| {
                        observe::log_size(&j.stdout_path()) + observe::log_size(&j.stderr_path())
                    })
                    .sum();
                let due = match last {
                    None => true,
                    Some((at, b)) => b != bytes || at.elapsed() >= KEEP_ALIVE,
                };
                if !due {
                    continue;
                }
                let ms = t0.elapsed().as_millis() as u64;
                let msg = if bytes > 0 {
                    format!("{bytes} bytes of output after {ms} ms")
                } else {
                    format!("no output after {ms} ms")
                };
                srv.progress(call, ms, &msg);
                last = Some((Instant::now(), bytes));
            }
        });
        let out = f();
        drop(stop);
        out
    })
}

/// The document a CLI command prints for `m`, for tests of this door.
#[cfg(test)]
fn cli_doc(m: &Matches) -> String {
    match (m.cmd.exec)(m) {
        Ok(Output::Doc(r)) => r.to_json(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kill`'s text says how the job ended, not which signal was sent.
    #[test]
    fn a_kill_summary_names_the_signal_that_ended_the_job() {
        let sent_term_killed_by_term = serde_json::json!({"type": "kill", "signal": "SIGKILL",
            "state": "killed", "terminated_signal": "SIGTERM", "timed_out": true});
        assert_eq!(
            outcome(&sent_term_killed_by_term),
            ", signal SIGTERM, timed out"
        );
        let exited = serde_json::json!({"type": "kill", "signal": "SIGUSR1",
            "state": "exited", "exit_code": 3});
        assert_eq!(outcome(&exited), ", exit code 3");
        let status = serde_json::json!({"type": "status", "state": "killed", "signal": "SIGTERM"});
        assert_eq!(outcome(&status), ", signal SIGTERM");
    }

    #[test]
    fn every_tool_has_object_schemas_from_the_table() {
        for t in tools(true, Limits::DEFAULT) {
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            assert_eq!(t["outputSchema"]["type"], "object", "{t}");
            let defs = t["outputSchema"]["definitions"].as_object().unwrap();
            let name = t["name"].as_str().unwrap();
            assert!(defs.contains_key(&response_def(name)), "{name}");
            assert!(defs.contains_key("ErrorResponse"), "{name}");
            let mut want = Vec::new();
            refs(&t["outputSchema"], &mut want);
            for r in want {
                assert!(defs.contains_key(&r), "{name}: {r} unresolved");
            }
        }
        // Optional parameters take null as left out (`nullable`).
        let tail = input_schema("tail", command("tail").unwrap(), Limits::DEFAULT);
        let count = json!(["integer", "string", "null"]);
        assert_eq!(tail["properties"]["max_bytes"]["type"], count);
        assert_eq!(tail["properties"]["lines"]["type"], count);
        assert_eq!(tail["properties"]["job_id"]["type"], "string");
        assert!(tail["properties"].get("follow").is_none());
        let run = input_schema("run", command("run").unwrap(), Limits::DEFAULT);
        assert_eq!(run["properties"]["env"]["type"], json!(["object", "null"]));
        assert_eq!(
            run["properties"]["tags"]["type"],
            json!(["array", "string", "null"])
        );
        assert_eq!(
            run["properties"]["interactive"]["type"],
            json!(["boolean", "string", "null"])
        );
        assert_eq!(run["properties"]["cwd"]["type"], json!(["string", "null"]));
        let send = input_schema("send", command("send").unwrap(), Limits::DEFAULT);
        assert_eq!(send["properties"]["yield_ms"]["type"], count);
        assert!(send["properties"].get("file").is_none());
        assert!(tools(false, Limits::DEFAULT)
            .iter()
            .all(|t| t.get("outputSchema").is_none()));
    }

    /// A switch's pattern takes exactly the texts `cli::switch_value`
    /// takes, and every boolean parameter of every tool carries it.
    #[test]
    fn switch_schemas_take_what_calls_take() {
        let re = regex_lite::Regex::new(&switch_pattern()).unwrap();
        let mut samples: Vec<String> = ["yes", "no", "on", "", "2", "01", "truee", " true", "t"]
            .map(String::from)
            .to_vec();
        // Every mix of cases of true and false.
        for word in ["true", "false"] {
            for mask in 0..1u32 << word.len() {
                samples.push(
                    word.chars()
                        .enumerate()
                        .map(|(i, c)| match mask >> i & 1 {
                            1 => c.to_ascii_uppercase(),
                            _ => c,
                        })
                        .collect(),
                );
            }
        }
        samples.extend(["1", "0"].map(String::from));
        for s in &samples {
            assert_eq!(re.is_match(s), cli::switch_value(s).is_some(), "{s:?}");
        }
        let mut seen = 0;
        for t in tools(true, Limits::DEFAULT) {
            for (k, p) in t["inputSchema"]["properties"].as_object().unwrap() {
                if !p["type"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!("boolean")))
                {
                    continue;
                }
                seen += 1;
                assert_eq!(p["pattern"], switch_pattern(), "{} {k}", t["name"]);
                assert!(p.get("enum").is_none(), "{} {k}: {p}", t["name"]);
            }
        }
        assert!(seen > 0);
    }

    #[test]
    fn descriptions_restate_the_table_s_limits() {
        let limits = Limits {
            default_ms: 1_500,
            max_ms: 2_000,
        };
        for tool in TOOLS {
            let cmd = command(tool).unwrap();
            for (cli, ours) in restated(tool, limits) {
                // The table still says it, so the description says ours.
                assert!(cmd.long_about.contains(&cli), "{tool}: {cli}");
                assert!(description(tool, cmd, limits).contains(&ours), "{tool}");
            }
        }
        let send = description("send", command("send").unwrap(), limits);
        assert!(!send.contains("--file") && !send.contains("TEXT"), "{send}");
        // Each flag help said otherwise here is the table's still, and
        // what we say names no form a call refuses.
        for (tool, long, cli) in [
            ("run", "stdin", "'-' reads the caller's stdin"),
            ("send", "yield", "(250ms, 1.5s, ...)"),
            ("send", "newline", "TEXT"),
        ] {
            let flag = command(tool).unwrap().flag(long).unwrap();
            assert!(flag.help.contains(cli), "{tool} {long}: {}", flag.help);
            assert!(!mcp_help(tool, flag).contains(cli), "{tool} {long}");
        }
        let send = description("send", command("send").unwrap(), limits);
        assert!(send.contains("(default 250 ms,"), "{send}");
        let tight = Limits {
            default_ms: 100,
            max_ms: 100,
        };
        let send = description("send", command("send").unwrap(), tight);
        assert!(send.contains("(default 100 ms,"), "{send}");
    }

    #[test]
    fn envelopes_match_the_cli() {
        let m = cli::matches_from_params(
            command("list").unwrap(),
            Some("/nonexistent-ae-root".into()),
            &[],
            vec![],
        )
        .unwrap();
        let cli = cli_doc(&m);
        let q = super::super::list::ListQuery {
            limit: 50,
            state: None,
            cwd: Some(super::super::list::current_dir()),
            tags: vec![],
            active: false,
        };
        let ours = doc(
            "list",
            &super::super::list::list_jobs(&super::super::store(&m), &q).unwrap(),
        )
        .unwrap();
        assert_eq!(ours, cli);
    }

    #[test]
    fn seconds_become_duration_text() {
        let limits = Limits {
            default_ms: 10_000,
            max_ms: 20_000,
        };
        let mut p = vec![("until".to_string(), seconds("until", &json!(1.5)).unwrap())];
        bound_until(&mut p, limits).unwrap();
        assert_eq!(p, vec![("until".to_string(), "1500ms".to_string())]);
        let mut p = vec![("until".to_string(), "99".to_string())];
        bound_until(&mut p, limits).unwrap();
        assert_eq!(p[0].1, "20000ms");
        let mut p = vec![];
        bound_until(&mut p, limits).unwrap();
        assert_eq!(p[0].1, "10000ms");
        let mut p = vec![("forever".to_string(), "true".to_string())];
        bound_until(&mut p, limits).unwrap();
        assert_eq!(p, vec![("until".to_string(), "20000ms".to_string())]);
        assert!(seconds("until", &json!(-1)).is_err());
        let mut p = vec![
            ("forever".to_string(), "true".to_string()),
            ("until".to_string(), "1s".to_string()),
        ];
        let e = bound_until(&mut p, limits).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let mut p = vec![
            ("forever".to_string(), "false".to_string()),
            ("until".to_string(), "1s".to_string()),
        ];
        bound_until(&mut p, limits).unwrap();
    }

    #[test]
    fn restart_grace_is_held_to_the_call_limit() {
        let limits = Limits {
            default_ms: 1_000,
            max_ms: 2_000,
        };
        let mut p = vec![("kill_after".to_string(), "20s".to_string())];
        let e = bound_kill_after(&mut p, limits).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(e.to_string().contains("kill_after 20 s"), "{e}");
        let mut p = vec![("kill_after".to_string(), "1.5s".to_string())];
        bound_kill_after(&mut p, limits).unwrap();
        assert_eq!(p, vec![("kill_after".to_string(), "1.5s".to_string())]);
        // The default (5 s) shortened to the limit, or kept below it.
        let mut p = vec![];
        bound_kill_after(&mut p, limits).unwrap();
        assert_eq!(p, vec![("kill_after".to_string(), "2000ms".to_string())]);
        let mut p = vec![];
        bound_kill_after(&mut p, Limits::DEFAULT).unwrap();
        assert_eq!(p, vec![("kill_after".to_string(), "5000ms".to_string())]);
        assert_eq!(
            bound_kill_after(&mut vec![("kill_after".into(), "x".into())], limits)
                .unwrap_err()
                .code(),
            "invalid_duration"
        );
    }

    #[test]
    fn usage_errors_become_invalid_requests_named_as_arguments() {
        let e = door_error("run", Error::usage("--tty-size needs --tty"));
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(e.to_string(), "tty_size needs tty");
        let e = door_error(
            "send",
            Error::usage("give TEXT or --file, not both").in_job("01J"),
        );
        assert_eq!(e.code(), "invalid_request");
        // `--file` is the command line's only: left as it is; a value
        // quoted back is not a flag.
        assert!(e.to_string().contains("--file"), "{e}");
        assert_eq!(
            argument_names("run", "invalid value '--x' for '--queue': bad"),
            "invalid value '--x' for 'queue': bad"
        );
        assert_eq!(argument_names("send", "--yield"), "yield_ms");
        // The specific codes stay.
        let e = door_error("wait", Error::InvalidDuration("x".into()));
        assert_eq!(e.code(), "invalid_duration");
    }
}
