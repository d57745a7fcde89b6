//! Man pages, generated from the flag table (`cli::COMMANDS`): the
//! overview `agent-exec.1` and one `agent-exec-<slug>.1` per visible
//! subcommand. `make man` runs the hidden `_gen-man DIR` command and the
//! pages under `man/` are committed; a test regenerates them and fails
//! when they differ, so the table and the pages cannot drift apart.
//!
//! What the table does not know lives here, next to the generator: the
//! response fields of each command (in JSON order), the error codes, the
//! environment and the files.
//!
//! Invariants
//! - Output is deterministic (no build time, no absolute path): the
//!   version and its release date (`DATE`) are the only things that
//!   change, and a release asks for `make man` like any other change.
//! - Every piece of text goes through `esc`: backslashes, hyphens
//!   (`\-`, so flags copy and paste as ASCII), non-ASCII characters and
//!   a leading `.` or `'` are escaped; macro arguments are quoted. The
//!   pages pass `groff -man -ww -z` and `mandoc -Tlint -W warning`
//!   without a message: no `.PP` right after `.SH`, a dated `.TH`, and
//!   cross-references written `\fBname\fR(1)`.
//! - Prose may mark literals with backticks; they become bold.
//!
//! Rejected: hand-written pages (they drift from the flags); mdoc (the
//! man macros are enough here and read more simply).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::cli::{self, Cmd, Flag, Kind, Matches, Pos, COMMANDS, GLOBAL_FLAGS};
use crate::error::{Error, Result};
use crate::output::{Output, Response};

#[derive(Serialize)]
struct GenManBody {
    dir: String,
    files: Vec<String>,
}

/// `_gen-man DIR`: write every page into DIR (created if missing),
/// remove pages of commands that no longer exist, list what was written.
pub fn exec_gen_man(m: &Matches) -> Result<Output> {
    let dir = Path::new(m.pos(0).unwrap_or("man"));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let pages = pages();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("agent-exec") && name.ends_with(".1");
            if ours && !pages.iter().any(|(n, _)| *n == name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut files = Vec::new();
    for (name, text) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        files.push(name.clone());
    }
    let body = GenManBody {
        dir: crate::store::absolutize(dir).to_string_lossy().into_owned(),
        files,
    };
    Ok(Output::Doc(Response::new("gen_man", &body)?))
}

/// Every page: (file name, roff source).
pub fn pages() -> Vec<(String, String)> {
    let mut out = vec![("agent-exec.1".to_string(), main_page())];
    for c in visible() {
        out.push((format!("agent-exec-{}.1", c.slug()), command_page(c)));
    }
    out
}

/// The commands that wait, and so answer a stop signal with their
/// document (`sys::hold_stop_signals`).
const WAITING: [&str; 6] = ["run", "start", "restart", "wait", "send", "tail"];

/// What a stop signal does to a waiting command.
const STOPPED: &str = "SIGHUP, SIGINT or SIGTERM ended the command's wait (run, start and restart while they watch the job, wait, send --yield, tail --follow): stdout holds the answer its budget running out would have given (the job running; tail --follow ends with its end line), and the exit status is 128 + the signal. The job is detached and goes on.";

fn visible() -> impl Iterator<Item = &'static Cmd> {
    COMMANDS.iter().copied().filter(|c| !c.hidden)
}

// ---------------------------------------------------------------------------
// roff writing
// ---------------------------------------------------------------------------

/// Escape text for a roff text line or a quoted macro argument.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut bold = false;
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '"' => out.push_str("\\(dq"),
            '`' => {
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '\n' | '\t' => out.push(' '),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c if c.is_ascii_control() => {}
            c => {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
        }
    }
    if bold {
        out.push_str("\\fR");
    }
    out
}

/// The date in every page's `.TH` line: the release date of the version
/// in Cargo.toml. Update it together with the version (then `make man`);
/// never the build time, so that the committed pages are reproducible.
pub const DATE: &str = "2026-12-02";

struct Page(String);

/// The longest source line of running text a page is written with.
const TEXT_WIDTH: usize = 78;

impl Page {
    fn new(title: &str, section_name: &str) -> Page {
        let mut p = Page(String::new());
        p.raw(&format!(
            ".TH \"{}\" 1 \"{}\" \"agent-exec {}\" \"{}\"",
            esc(&title.to_ascii_uppercase()),
            DATE,
            env!("CARGO_PKG_VERSION"),
            esc(section_name)
        ));
        // No hyphenation: a flag broken across lines cannot be copied.
        p.raw(".nh");
        // Ragged right: a line holding a long path cannot be justified
        // at a terminal's width (`man -l` at 80 columns warned "cannot
        // adjust line" on every page).
        p.raw(".ad l");
        p
    }
    fn raw(&mut self, line: &str) {
        self.0.push_str(line);
        self.0.push('\n');
    }
    /// A line of running text (escaped; protected against a leading
    /// control character).
    fn text(&mut self, s: &str) {
        let text = esc(s.trim());
        // Broken at spaces into source lines of at most `TEXT_WIDTH`
        // bytes (a filled paragraph joins them again): `mandoc -Tlint`
        // counts a longer one as a style fault. A word longer than that
        // stays whole on its own line.
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let cut = if rest.len() <= TEXT_WIDTH {
                rest.len()
            } else {
                rest[..=TEXT_WIDTH]
                    .rfind(' ')
                    .or_else(|| rest.find(' '))
                    .unwrap_or(rest.len())
            };
            let line = rest[..cut].trim_end();
            rest = rest[cut..].trim_start();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('.') || line.starts_with('\'') {
                self.0.push_str("\\&");
            }
            self.raw(line);
        }
    }
    fn sh(&mut self, s: &str) {
        self.raw(&format!(".SH \"{}\"", esc(s)));
    }
    /// Start a paragraph: `.PP`, except right after a section heading,
    /// which already starts one (mandoc: "PP after SH").
    fn para(&mut self) {
        let last = self.0.trim_end_matches('\n').rsplit('\n').next();
        if !last.is_some_and(|l| l.starts_with(".SH ") || l.starts_with(".SS ")) {
            self.raw(".PP");
        }
    }
    fn pp(&mut self, s: &str) {
        self.para();
        self.text(s);
    }
    /// A tagged paragraph; `tag` is already roff.
    fn tp(&mut self, tag: &str, body: &str) {
        self.raw(".TP");
        self.raw(tag);
        self.text(body);
    }
    /// A literal block (commands, file layouts).
    fn block(&mut self, lines: &[&str]) {
        self.para();
        self.raw(".RS 4");
        self.raw(".nf");
        for l in lines {
            let e = esc(l);
            if e.starts_with('.') || e.starts_with('\'') {
                self.0.push_str("\\&");
            }
            self.raw(&e);
        }
        self.raw(".fi");
        self.raw(".RE");
    }
}

fn bold(s: &str) -> String {
    format!("\\fB{}\\fR", esc(s))
}

/// A cross-reference, `\fBagent\-exec\-run\fR(1)`: no space before the
/// section, as man(7) writes it.
fn man_ref(page: &str) -> String {
    format!("{}(1)", bold(page))
}

fn ital(s: &str) -> String {
    format!("\\fI{}\\fR", esc(s))
}

/// `\fB\-\-until\fR \fISECONDS\fR` and friends.
fn flag_tag(f: &Flag) -> String {
    let mut t = String::new();
    if let Some(s) = f.short {
        let _ = write!(t, "{}, ", bold(&format!("-{s}")));
    }
    t.push_str(&bold(&format!("--{}", f.long)));
    match f.kind {
        Kind::Switch => {}
        Kind::Value(_) => {
            let _ = write!(t, " {}", ital(f.meta));
        }
        Kind::OptBool => t.push_str(" [\\fItrue\\fR|\\fIfalse\\fR]"),
    }
    t
}

fn flag_body(f: &Flag) -> String {
    let mut b = f.help.to_string();
    if !b.ends_with('.') {
        b.push('.');
    }
    if f.multi {
        b.push_str(" Repeatable.");
    }
    if !f.choices.is_empty() {
        let _ = write!(b, " Possible values: {}.", f.choices.join(", "));
    }
    if let Some(d) = f.default {
        let _ = write!(b, " Default: {d}.");
    }
    b
}

fn pos_tag(p: &Pos) -> String {
    if p.rest || p.many {
        format!("{}...", ital(p.name))
    } else {
        ital(p.name)
    }
}

fn synopsis(p: &mut Page, c: &Cmd) {
    let mut s = String::new();
    if !c.flags.is_empty() {
        s.push_str("[\\fIOPTIONS\\fR]");
    }
    for pos in c.pos {
        if !s.is_empty() {
            s.push(' ');
        }
        match (pos.rest, pos.required) {
            (true, _) => {
                let _ = write!(s, "[\\-\\-] {}...", ital(pos.name));
            }
            (false, true) => s.push_str(&pos_tag(pos)),
            (false, false) => {
                let _ = write!(s, "[{}]", pos_tag(pos));
            }
        }
    }
    p.raw(&format!(".B \"agent\\-exec {}\"", esc(c.name)));
    if !s.is_empty() {
        p.raw(&s);
    }
}

// ---------------------------------------------------------------------------
// What each command prints
// ---------------------------------------------------------------------------

/// The response of one command: its `type` and its fields in JSON order.
struct Reply {
    cmd: &'static str,
    /// The `type` of the document; empty when the output is not JSON.
    kind: &'static str,
    /// (field, what it holds). A `?` suffix marks an optional field.
    fields: &'static [(&'static str, &'static str)],
    /// Further notes on the output or the exit status.
    notes: &'static [&'static str],
    /// Related pages (slugs).
    see: &'static [&'static str],
}

const INLINE: &[(&str, &str)] = &[
    ("job_id", "The job's id: a ULID (26 characters, sortable by creation time)."),
    ("state", "The state when the answer was made: created, queued, running, exited, killed or failed."),
    ("tags", "The job's tags (always present, possibly empty)."),
    ("env_vars?", "The --env entries as KEY=VALUE, with masked keys shown as KEY=***; omitted when there are none."),
    ("stdout_log_path", "Absolute path of the persisted stdout log."),
    ("stderr_log_path", "Absolute path of the persisted stderr log."),
    ("elapsed_ms", "Milliseconds this command took."),
    ("waited_ms", "Milliseconds spent waiting for the job (0 without waiting)."),
    ("stdout", "The head of stdout: at most --max-bytes bytes, decoded as lossy UTF-8."),
    ("stderr", "The head of stderr, likewise."),
    ("stdout_range", "[start, end] byte offsets of the stdout text in the log. The output was truncated when end < stdout_total_bytes."),
    ("stderr_range", "[start, end] byte offsets of the stderr text."),
    ("stdout_total_bytes", "Every byte the job wrote to stdout so far (a capped log keeps fewer: stdout_dropped_bytes says how many are gone)."),
    ("stderr_total_bytes", "Likewise for stderr."),
    ("encoding", "Always \"utf-8-lossy\"."),
    ("exit_code?", "The exit status, once the job has exited."),
    ("finished_at?", "When the job ended (YYYY-MM-DDTHH:MM:SSZ), once terminal."),
    ("signal?", "The signal that ended the job, SIG-prefixed (\"SIGTERM\")."),
    ("duration_ms?", "How long the job ran, once terminal."),
    ("timed_out?", "Once terminal: true when --timeout stopped the job."),
    ("attempt", ATTEMPT),
    ("previous_runs?", PREVIOUS_RUNS_INLINE),
    ("failure?", "For a failed job: {code, message}, e.g. cwd_not_found, spawn_failed, env_file_unreadable, stdin_unreadable, log_unwritable, no_space, launch_lost, supervisor_lost."),
    ("output_lost?", OUTPUT_LOST),
    ("tty?", "true when the job runs on a pseudo-terminal (--tty): all its output is in stdout."),
    ("stdout_tail, stderr_tail?", TAIL_FIELD),
    ("stdout_tail_range, stderr_tail_range?", "[start, end] of the tail text."),
    ("cursor", CURSOR_FIELD),
    ("command", CMD_FIELD),
    ("cwd?", CWD_FIELD),
    ("cpu_user_ms?", CPU_USER),
    ("cpu_sys_ms?", CPU_SYS),
    ("max_rss_kb?", MAX_RSS),
    ("queue?", QUEUE_FIELD),
    ("queue_position?", QUEUE_POSITION),
    ("waiting_for?", WAITING_FOR),
    ("stdout_dropped_bytes", DROPPED),
    ("stderr_dropped_bytes", "As stdout_dropped_bytes, for stderr."),
];

const TAIL_FIELD: &str = "The end of the log (its last --tail-bytes bytes at most, cut at a character boundary; a budget under the last character returns that character whole, as the head does its first) when the head does not reach it; absent when the head holds the whole log.";
const CURSOR_FIELD: &str = "Just after the output returned: tail --since reads on from here.";

const CMD_FIELD: &str =
    "The command as stored in meta.json: the words given, or the one shell string.";
const CWD_FIELD: &str = "The job's working directory.";
const CPU_USER: &str = "Once terminal: CPU time in user mode, in ms, of the job's process tree as wait4 reported it when the job's root process was reaped (the root and every descendant it reaped; a daemonised grandchild is not counted). Absent when the job never ran or its supervisor was lost.";
const CPU_SYS: &str = "Once terminal: CPU time in kernel mode, in ms (as cpu_user_ms).";
const MAX_RSS: &str = "Once terminal: peak resident set size in KiB of the largest process of the tree (wait4's ru_maxrss; as cpu_user_ms).";

const ATTEMPT: &str =
    "Which run of the job this is: 1 for its first, one more for each restart or --retry run.";
const PREVIOUS_RUNS: &str = "The earlier runs kept, oldest first: {attempt, state, exit_code or signal, started_at, finished_at, stdout_log_path, stderr_log_path, output_lost when that run lost output}; their logs are in <job>/runs/<attempt>/ (a run whose logs were removed by hand is not listed).";
const PREVIOUS_RUNS_INLINE: &str = "When the job has run before (a --retry run, a restarted job): its earlier runs, as status lists them in previous_runs.";
const QUEUE_FIELD: &str = "The job's queue (run --queue NAME), in any state.";
const QUEUE_POSITION: &str = "While queued in a queue's line: how many of its jobs are ahead of this one (0 = it starts next); absent while the job still waits for its --after/--after-ok jobs (it joins the line after them). Computed when read, never stale.";
const WAITING_FOR: &str = "While queued: the --after/--after-ok jobs that are not terminal yet.";
const DROPPED: &str = "Bytes of stdout a capped log (--max-log-bytes) dropped from its middle; 0 when nothing was. stdout_total_bytes still counts every byte.";

const OUTPUT_LOST: &str = "Output that could not be written to the logs (e.g. a full disk): one {stream, dropped_bytes, errno, message} per stream, e.g. {\"stream\": \"stdout\", \"dropped_bytes\": 4096, \"errno\": \"ENOSPC\", \"message\": \"...\"}; stream stdin: input sent that stdin.log could not record (the job got it). The exit code is recorded all the same. Recorded as soon as a log fails, so a running job's responses say it too, with the bytes lost by then (refreshed at each --progress-every); the end's counts are final.";

const JOB_ROW: &[(&str, &str)] = &[
    ("job_id", "The job's id."),
    (
        "short_job_id",
        "The shortest unique prefix of the id (at least 10 characters).",
    ),
    (
        "state",
        "created, queued, running, exited, killed, failed, or unknown when state.json cannot be read.",
    ),
    ("exit_code?", "Exit status, once exited."),
    ("signal?", "SIG-prefixed name of the signal that ended it, once killed."),
    ("created_at", "When the job was defined."),
    ("started_at?", "When it started."),
    ("finished_at?", "When it ended."),
    ("updated_at?", "Last state change (or progress refresh)."),
    ("duration_ms?", "How long it ran, once terminal."),
    ("output_lost?", OUTPUT_LOST),
    ("tags", "The job's tags."),
    ("command", CMD_FIELD),
    ("cwd?", CWD_FIELD),
    ("cpu_user_ms?", CPU_USER),
    ("cpu_sys_ms?", CPU_SYS),
    ("max_rss_kb?", MAX_RSS),
    ("queue?", QUEUE_FIELD),
    ("queue_position?", QUEUE_POSITION),
    ("waiting_for?", WAITING_FOR),
];

/// How the jobs root is chosen.
const ROOT_RULE: &str = "The jobs root is the first of: --root PATH; $AGENT_EXEC_ROOT; $XDG_DATA_HOME/agent-exec/jobs; $HOME/.local/share/agent-exec/jobs, where an unset HOME is the user's home in /etc/passwd; ./.agent-exec/jobs, relative to the current directory, when there is neither. An empty variable counts as unset; a relative XDG_DATA_HOME or HOME is relative to the current directory, as in 0.2.3 (give absolute paths); --root and AGENT_EXEC_ROOT are taken as given.";

const FULL_LOG: &str = "Both streams combined, one line per output line: YYYY-MM-DDTHH:MM:SSZ [STDOUT] text, or [STDERR]. A line over 64 KiB is split into several; invalid UTF-8 is replaced. run --log PATH writes it to PATH instead, --no-full-log (or [log] full = false) not at all. Capped by --max-log-bytes like the stream logs.";

/// What neither gc nor delete ever removes.
const SAFE_DELETE: &str = "Never removed, by gc or delete: a running job; a job whose supervisor holds its lock; a job another caller started or restarted while it was being removed (skipped with reason running); a job a reader (run, wait, status, tail --follow, serve or mcp), or its supervisor still delivering notifications, is holding (skipped with reason in_use); a job whose process group still has live members. A refused delete changes nothing.";

const DURATIONS: &str = "Every duration flag (--timeout, --kill-after, --until, --progress-every, wait --until, gc --older-than, --auto-gc-older-than) accepts a number with a unit: 500ms, 1.5s, 5m, 2h, 1d, 1w. A bare number keeps the flag's documented unit (seconds). Surrounding whitespace is trimmed (gc echoes older_than as given). Fields of the HTTP API keep theirs: timeout_ms in milliseconds, timeout and until in seconds.";

/// The job's environment: run, create (and start, which applies it).
const JOB_ENV: &[&str] = &[
    "The job's environment starts as a copy of the caller's (or empty, with --no-inherit-env); then the --env-file files apply, then the --env values, each in the order given; a later value wins.",
    "--env NAME without = passes the caller's current value of NAME, as docker run -e NAME does (a value that is not UTF-8 is a usage_error); when the caller has no NAME, it is dropped: the job has what the caller's environment and its login profile give it. Names beginning with __AGENT_EXEC_ are agent-exec's own: --env refuses them, and an env file holding one (or a NUL byte) fails the job with env_file_unreadable. A name that is not a shell identifier (letters, digits and _, not starting with a digit: A.B or A-B is not) is passed to the wrapper as given and shown in env_vars, but whether the command gets it is the wrapper's doing: bash and zsh pass it on, dash (/bin/sh on Debian and Ubuntu, so the default sh -lc) drops it; nor is it applied again after a login profile.",
    "With a login-shell wrapper (the default sh -lc, or a POSIX-family shell, sh, bash, dash, zsh, ksh, mksh, ash, yash or posh named directly, given a -l or --login flag) the shell's profile runs first (/etc/profile, ~/.profile, ...). After it, agent-exec applies every --env-file and --env value again, so they win over anything the profile set, rebuilds PATH: the caller's PATH entries first, then the entries the profile added that are not already there, and goes back to the job's directory if the profile changed it (with the shell's own cd, never a function the profile defined under that name). --env PATH=... is applied exactly as given. This set-up runs with the shell's -x and -v off (back on for the command if they were given, as in bash -xlc): a trace shows the command and nothing of the set-up (-v, which echoes each line as the shell reads it, shows the set-up's variable names on the first line, never the values). With --no-inherit-env the profile may still set PATH. A command of two or more arguments is run by exec \"$@\", or by exec $argv when the wrapper program is fish.",
    "Env files hold KEY=VALUE lines (blank lines and # comments are skipped; a line may begin with export). The value is everything after the first = exactly as written, spaces at either end included, up to the line ending (\\n, or \\r\\n); there is no quoting. A line that is only a NAME is --env NAME: the caller's value, or nothing when the caller has none (one that is not UTF-8 fails the job with env_file_unreadable). A line whose name is empty or holds white space (=x, B = x) fails the job with env_file_unreadable, naming the file and the line. A UTF-8 byte-order mark at the very start is dropped. An env file, like a --stdin-file, must be a regular file, and an env file is at most 1 MiB; anything else makes the job failed at once, with failure.code env_file_unreadable (or stdin_unreadable).",
];

const SECRETS: &[&str] = &[
    "Every command-line argument, --env KEY=VALUE included, is visible to ps(1) and under /proc while agent-exec runs. Pass secrets with --env-file.",
    "Values live only in <job>/env.json (mode 0600). meta.json names the variables (env_keys) and holds no values; env_vars in the run, start and restart responses shows the --env values, with every --mask key's value as *** (the HTTP answers of POST /exec and POST /restart/{id}, and MCP's run and restart results, leave env_vars out).",
];

const REPLIES: &[Reply] = &[
    Reply {
        cmd: "create",
        kind: "create",
        fields: &[
            ("job_id", "The new job's id (ULID)."),
            ("state", "\"created\"; \"failed\" when the definition itself could not be stored completely."),
            ("stdout_log_path", "Where stdout will be logged."),
            ("stderr_log_path", "Where stderr will be logged."),
            ("tags", "The job's tags."),
            ("failure?", "{code, message} when state is failed."),
            ("queue?", QUEUE_FIELD),
            ("tty?", "true when the job will run on a pseudo-terminal (--tty)."),
        ],
        notes: &[
            "No process starts; `start` launches the job later. --stdin and --stdin-file are copied into the job directory now; --env-file is read when the job starts.",
            "A --config file that does not exist is an error (invalid_config, exit status 1).",
        ],
        see: &["start", "run", "status"],
    },
    Reply {
        cmd: "start",
        kind: "start",
        fields: INLINE,
        notes: &[
            "Same fields as `run`. Only a created job starts; any other state is invalid_state, and of concurrent starts of one job exactly one wins.",
            "A job that fails to launch is still a successful command: ok is true, exit status 0, and state is failed with failure.code saying why.",
            "A job created with --config keeps that file's [gc] and [notify] sink_timeout: start goes by them even once the file is edited or removed (--no-auto-gc and --auto-gc-* still apply on top).",
        ],
        see: &["create", "run", "wait"],
    },
    Reply {
        cmd: "run",
        kind: "run",
        fields: INLINE,
        notes: &[
            "run waits until the job is terminal or --until seconds pass, whichever comes first; it does not return at the first output. With --no-wait it answers as soon as the job is running. The job goes on after run answers; read its result later with status, wait or tail.",
            "One command word is a shell string (pipes, &&); two or more words are an argv, exec'd after the login shell has started.",
            "With --tty, what send writes goes through the terminal's line discipline, which may discard bytes that bytes_written and stdin.log still count: in canonical (line) mode, the default, the kernel keeps at most 4095 bytes of one line (the rest of it is dropped). Send long lines to a program that puts its terminal in raw mode, or use -i without --tty: a pipe keeps every byte.",
            "A job that fails to launch (missing --cwd, unreadable --env-file) is still a successful command: ok is true, exit status 0, and state is failed with failure.code saying why. A --config file that does not exist is an error instead (invalid_config, exit status 1).",
            "Both streams also go to <job>/full.log (or the --log path), one line per output line: YYYY-MM-DDTHH:MM:SSZ [STDOUT] text, or [STDERR]. Lines over 64 KiB are split; invalid UTF-8 is replaced.",
            "With --retry N the supervisor runs the job again, up to N more times, when it exits with a non-zero code. A run that ends by a signal (any signal, state killed: kill, restart, a crash such as SIGSEGV, a signal it raised itself) is not retried, and neither is one --timeout stopped (the limit is the caller's). Each run ended is kept in <job>/runs/<attempt>/ and listed by status in previous_runs, and what it left in its process group gets SIGTERM, then SIGKILL after --kill-after (0: at once), before the next run starts; --retry-delay D (a usage_error without --retry) waits D before each new run, and a kill (or restart, or TERM, INT or HUP sent to the supervisor) meanwhile ends the job killed without another run (the next attempt, which never ran: no started_at, no duration_ms); a kill --signal that ends no process (STOP, CONT, TSTP, TTIN, TTOU, WINCH, URG, CHLD) is invalid_state, retryable, meanwhile. The job is running throughout, unless it is in a queue (--queue): then it lets go of its slot when a run fails, waits out the delay queued, outside the line (no queue_position), and then goes back into the line at its end; job.finished fires once, for the last run (its attempt field says which), and a waiting run or wait answers with the last run's result.",
            "With --max-log-bytes N (or [log] max_bytes) each log (stdout.log, stderr.log, full.log) keeps its first N/2 bytes (rounded down) and its last N - N/2 (a UTF-8 character a cut would split is dropped whole: each part may be up to 3 bytes shorter), with one marker line between them, [agent-exec: D bytes dropped]; the count is rewritten in place as more is dropped. Totals, ranges, cursors and grep offsets stay those of everything the job wrote; stdout_dropped_bytes / stderr_dropped_bytes say how much is gone. A read never spans the gap: the head stops at it, tail never reaches back across it, and tail --since from a cursor in the dropped bytes continues at the kept tail with stdout_skipped_bytes / stderr_skipped_bytes. While the job runs the tail may outgrow its half by its own size and a marker (at least 2 MiB) plus one read (128 KiB) before it is cut; while the job writes faster than the tee reads (its pipes already hold N - N/2 bytes or more, and at least 64 KiB), what those bytes will push out of the tail is dropped unwritten but for the last 8 KiB of each read, so a running job's tail may be shorter for a while (never empty; after a SIGKILL of its supervisor the final one too); when the job ends it is cut to N plus the marker. --no-full-log (or [log] full = false) writes no full.log.",
        ],
        see: &["status", "wait", "tail", "kill", "create", "restart"],
    },
    Reply {
        cmd: "status",
        kind: "status",
        fields: &[
            ("job_id", "The full job id."),
            ("state", "created, queued, running, exited, killed or failed."),
            ("exit_code?", "Exit status, once exited."),
            ("created_at", "When the job was defined."),
            ("started_at?", "When the current run started: absent while created or queued, and while a --retry job waits out --retry-delay before its next run."),
            ("finished_at?", "When it ended."),
            ("signal?", "SIG-prefixed name of the signal that ended it."),
            ("duration_ms?", "How long it ran."),
            ("timed_out?", "Once terminal: whether --timeout stopped it."),
            ("failure?", "{code, message} for a failed job."),
            ("output_lost?", OUTPUT_LOST),
            ("tags", "The job's tags."),
            ("tty?", "true for a job on a pseudo-terminal (--tty): all its output is in stdout."),
            ("interactive?", "true for a job whose stdin stays open for send (-i, or --tty, which implies it)."),
            ("command", CMD_FIELD),
            ("cwd?", CWD_FIELD),
            ("cpu_user_ms?", CPU_USER),
            ("cpu_sys_ms?", CPU_SYS),
            ("max_rss_kb?", MAX_RSS),
            ("attempt", ATTEMPT),
            ("previous_runs", PREVIOUS_RUNS),
            ("queue?", QUEUE_FIELD),
            ("queue_position?", QUEUE_POSITION),
            ("waiting_for?", WAITING_FOR),
        ],
        notes: &[
            "With --table (a person reading): one aligned row under the header ID STATE AGE DURATION EXIT COMMAND TAGS instead of the document.",
            "A job whose supervisor died while it ran is reported (and recorded) as failed with failure.code supervisor_lost, and its process group is killed at that moment (never a group whose leader's start time differs from the recorded one: a reused pid), so the workload never outlives its record unnoticed. A job whose launch began but whose supervisor died before the command ran reads as failed with launch_lost; one whose supervisor died while the job was queued reads supervisor_lost, saying it never ran.",
        ],
        see: &["wait", "tail", "list"],
    },
    Reply {
        cmd: "tail",
        kind: "tail",
        fields: &[
            ("job_id", "The full job id."),
            ("stdout", "The last lines of stdout (lossy UTF-8)."),
            ("stderr", "The last lines of stderr."),
            ("encoding", "Always \"utf-8-lossy\"."),
            ("stdout_log_path", "Path of the stdout log; absent when the log does not exist (it then reads as empty)."),
            ("stderr_log_path", "Path of the stderr log; absent likewise."),
            ("stdout_range", "[start, end] byte offsets of the returned stdout text; start > 0 means earlier output was left out."),
            ("stderr_range", "[start, end] byte offsets of the returned stderr text."),
            ("stdout_total_bytes", "Every byte the job wrote to stdout so far (a capped log keeps fewer: stdout_dropped_bytes says how many are gone)."),
            ("stderr_total_bytes", "Likewise for stderr."),
            ("cursor", "Just after the text returned: tail --since reads on from here."),
            ("matches?", "With --grep: the matching lines, one {stream, line, offset} each (offset: where the line starts in its log), stdout's before stderr's; stdout and stderr are then empty."),
            ("stdout_dropped_bytes / stderr_dropped_bytes", "Bytes a capped log (--max-log-bytes) dropped from its middle."),
            ("stdout_skipped_bytes / stderr_skipped_bytes", "Present with --since (absent without): bytes after the cursor that a capped log had dropped, passed over; the text starts after them. 0 when none were."),
            ("output_lost?", OUTPUT_LOST),
        ],
        notes: &["Each log is read with one bounded read of at most --max-bytes from its end, whatever its size.", "With --grep and --since, a cursor inside a line (read while the job had printed part of it) does not make the rest of it a line: the line is matched whole from its real start (^ anchors there; offset is that start, before the cursor), and matches only through a match that ends after the cursor, one that needs output written after it (a regex's matches are the leftmost-first ones it reports, tried from each start). The look back is bounded at 64 KiB (a longer line is matched in pieces from the cursor) and never crosses a capped log's gap.", "A capped log's tail never reaches back across its gap; grep searches the head, then the kept tail, and never matches a piece of the line the gap cuts. tail --follow shows each stretch of dropped bytes it passes over as one {\"type\":\"gap\",\"stream\",\"range\",\"skipped_bytes\"} line (--raw: the marker line): one for an ended job's gap; following a running job, one each time the rolling cut dropped bytes it had not read yet (the gaps and the output between them cover every byte once).", "tail --follow's end line carries output_lost, as status has it, when the job lost output, and failure ({code, message}) when it ended failed."],
        see: &["status", "run"],
    },
    Reply {
        cmd: "wait",
        kind: "wait",
        fields: &[
            ("job_id", "The full job id."),
            ("state", "The state when waiting ended; not terminal when the deadline passed."),
            ("exit_code?", "Exit status, once exited."),
            ("stdout_total_bytes?", "Every byte the job wrote to stdout so far (absent while the log does not exist; a capped log keeps fewer: stdout_dropped_bytes says how many are gone)."),
            ("stderr_total_bytes?", "Likewise for stderr."),
            ("updated_at", "Last state change."),
            ("finished_at?", "When the job ended."),
            ("signal?", "SIG-prefixed name of the signal that ended it."),
            ("duration_ms?", "How long it ran."),
            ("timed_out?", "Once terminal: whether --timeout stopped it."),
            ("failure?", "{code, message} for a failed job."),
            ("output_lost?", OUTPUT_LOST),
            ("attempt", ATTEMPT),
            ("previous_runs?", PREVIOUS_RUNS),
            ("matched?", "With --output: the line that matched {stream, line, offset}."),
            ("stdout, stderr", "The head of each log, as run returns it (--max-bytes)."),
            ("stdout_range, stderr_range", "[start, end] byte offsets of that text in the log."),
            ("encoding", "Always \"utf-8-lossy\"."),
            ("stdout_tail, stderr_tail?", TAIL_FIELD),
            ("stdout_tail_range, stderr_tail_range?", "[start, end] of the tail text."),
            ("cursor", CURSOR_FIELD),
            ("command", CMD_FIELD),
            ("cwd?", CWD_FIELD),
            ("cpu_user_ms?", CPU_USER),
            ("cpu_sys_ms?", CPU_SYS),
            ("max_rss_kb?", MAX_RSS),
            ("queue?", QUEUE_FIELD),
            ("queue_position?", QUEUE_POSITION),
            ("waiting_for?", WAITING_FOR),
            ("stdout_dropped_bytes / stderr_dropped_bytes?", "Bytes a capped log (--max-log-bytes) dropped from its middle (absent, as the totals, while a log does not exist)."),
            ("stdout_skipped_bytes / stderr_skipped_bytes", "Present with --output and --since (absent otherwise): bytes after the cursor that a capped log had dropped, passed over by the search. 0 when none were."),
        ],
        notes: &[
            "A deadline is not an error: ok is true, exit status 0, and state tells whether the job ended. Waiting wakes on the job's state change, not on a poll interval.",
            "With several job ids the document is instead {mode, first?, jobs}: mode is all or any, jobs holds the entries (one per id given, in order; an id given twice is waited for and described once, the same in both entries) and first the id of the job that ended first (--any). An unknown id fails the call with job_not_found and details.job_id. Several jobs are waited for in one thread, woken by each job's end (a small thread per running job watches its lock; where the system allows no more threads, that job is looked at every 50 ms).",
            "With --output and --since, a line the cursor falls inside is matched whole from its real start (^ anchors there; matched.offset is that start) but fires only through a match that ends after the cursor, as tail --grep --since: readiness never fires on output that was there before the cursor.",
            "A line still being written (a prompt waiting for its answer, with no newline) matches as soon as its match is settled: any occurrence of a contains pattern, a regex match that ends before the last byte written; one that ends there (ready$, \\d+) waits for the newline, or the job's end.",
            "A wait that began on a running job which is then restarted answers with the run it began on once that run has ended (attempt says which; its output is read from runs/<attempt>/), never with the new run. Its log paths name where that run's logs were when it answered: the restart may keep the run a moment later, and its logs are then the ones previous_runs names under runs/<attempt>/. Runs of run --retry are one job run to a waiter: it answers at the last.",
            "With -v and a terminal on stderr, a one-line progress note (time waited, bytes the job wrote so far) is rewritten there at most once a second and erased before the answer (and before -v's log line); without a terminal, nothing is written.",
        ],
        see: &["run", "status", "kill", "restart"],
    },
    Reply {
        cmd: "kill",
        kind: "kill",
        fields: &[
            ("job_id", "The full job id."),
            ("signal", "The signal asked for, SIG-prefixed (\"SIGTERM\"); always present, also when nothing was sent (a job that had ended with no process left in its group): it does not say that a process got it. state says what became of the job."),
            ("state?", "The state observed afterwards (absent with --no-wait)."),
            ("exit_code?", "Exit status, if the job exited."),
            ("terminated_signal?", "The signal that really ended the job, as the supervisor recorded it."),
            ("observed_within_ms?", "Milliseconds spent watching for the outcome."),
            ("timed_out?", "Once terminal: whether --timeout had stopped it."),
            ("failure?", "{code, message} when the job is failed (supervisor_lost, say), as status gives it."),
            ("output_lost?", OUTPUT_LOST),
        ],
        notes: &["A created job cannot be signalled (invalid_state). A queued job is ended (killed, without having run) by a signal that ends a process; one that ends none (STOP, CONT, TSTP, TTIN, TTOU, WINCH, URG, CHLD) is refused (invalid_state, retryable): nothing runs yet to receive it. A job that already ended is reported as it is (its state, exit_code or terminated_signal unchanged); if processes it left behind still live in its process group (a background process its root started), they are sent the signal (what delete's advice to kill a job first relies on), else nothing is sent. A signal other than CONT, STOP, TSTP, TTIN or TTOU is followed by SIGCONT to the group, as bash's kill does: a stopped job (SIGSTOP, ^Z) acts on it instead of keeping it pending. A job inherits no ignored signal from the caller of run, start or restart: it starts with every signal at its default action, so TERM ends a job started from a shell that ignores it (trap '' TERM, or INT and QUIT in a non-interactive shell's background job). kill does not write the state itself: the supervisor records what really happened.", "A job recorded as failed with supervisor_lost or launch_lost whose processes are still alive is still signalled (never a group whose leader's start time differs from the recorded one: a reused pid).", "A --tty job leads a session of its own, and while its root lives its process group stands for the whole session: the groups a shell with job control makes there (an interactive shell, or set -m) are signalled with it, by kill, a timeout and restart, and counted by delete and gc. When the root ends, its supervisor notes the processes still in the session (before it collects the root, so they can only be the job's); while one of them lives, what is left of the session is the job's as before (--kill-after kills it, kill signals it, delete refuses the job, restart ends it first). Once none of them lives, nothing of that session is taken for the job's: a stranger may have made a session with the same number since. Without --tty, processes that a job moves out of its group (job control, setsid) are out of reach.", "Only the job's own processes are signalled: a running job's group while its leader is the process the job started (by its start time), a queued job's supervisor while that pid is the job's supervisor (agent-exec _supervise ROOT ID). A state.json whose pids name any other process (edited by hand, or a number past 2147483647) is a damaged record: io_error, and nothing is signalled. restart's stop and delete of a queued job signal the same way."],
        see: &["run", "status", "wait"],
    },
    Reply {
        cmd: "restart",
        kind: "restart",
        fields: &[
            ("(run's fields)", "The new run's answer, exactly as run gives it (attempt among them)."),
            ("previous_runs", PREVIOUS_RUNS),
        ],
        notes: &[
            "The stored definition includes the timeouts, the notifications and --retry. The --until budget and elapsed_ms count from the new launch: the stop of the old run (up to --kill-after and more) is before it.",
            "The previous run's state.json, stdout.log, stderr.log, (in the job directory) full.log and its notification records (completion_event.json, notification_events.ndjson, match_events/) move to <job>/runs/<attempt>/ by rename; runs past [restart] keep_runs are removed (a job run or created with --config keeps what that file says, else the default config is read at restart time). A combined log written elsewhere (run --log PATH) is not kept: each run writes PATH anew, so after a restart it holds only the new run's lines.",
            "A job defined with --config keeps that file's [restart] keep_runs, [gc] and [notify] sink_timeout: restart goes by them even once the file is edited or removed (--no-auto-gc and --auto-gc-* still apply on top). A stop signal (HUP, INT, TERM) during the stop of the old run takes effect once the new run is being watched.",
        ],
        see: &["run", "status", "wait", "kill"],
    },
    Reply {
        cmd: "send",
        kind: "send",
        fields: &[
            ("job_id", "The full job id."),
            ("state", "The job's state after the yield."),
            ("bytes_written", "Bytes that reached the job's stdin; what did not get in within --yield was dropped, not queued (send the rest again). On --tty, the bytes written to the terminal: its line discipline may still discard some (see below)."),
            ("stdin_open", "Whether the job's stdin is still open."),
            ("input_lost?", "Of bytes_written, those stdin.log could not record (a full disk; a stdin.log that is a symlink, never followed), and why: {\"stream\": \"stdin\", dropped_bytes, errno, message}. The job got them all the same; absent when all were recorded, or with --no-record. The job's output_lost lists the stdin stream too."),
            ("stdout / stderr", "What the job wrote after the send began (at most --max-bytes each, lossy UTF-8)."),
            ("stdout_range / stderr_range", "Their byte ranges in the logs."),
            ("stdout_total_bytes / stderr_total_bytes", "The logs' sizes."),
            ("encoding", "Always utf-8-lossy."),
            ("waited_ms", "How long send watched."),
            ("exit_code / signal / finished_at / timed_out / failure?", "Once the job is terminal, as run reports them."),
            ("output_lost?", OUTPUT_LOST),
            ("cursor", "Just after the output returned: tail --since reads on from here."),
            ("stdout_dropped_bytes / stderr_dropped_bytes", "Bytes a capped log (--max-log-bytes) dropped from its middle."),
            ("stdout_skipped_bytes / stderr_skipped_bytes", "Bytes written after the send began that a capped log had dropped by the time send read them, passed over: the text starts after them (as tail --since from a cursor in the gap)."),
            ("attempt", "The run the output is from (1 for a job's first run): a --retry run that ends during the yield still answers with its own output."),
        ],
        notes: &["Only a running job started with -i or --tty has an open stdin: a job started without them, or one still created or queued, is invalid_state (retryable for a queued one, which starts by itself); after --eof, or once the job has ended, send is stdin_closed. TEXT is written byte for byte, UTF-8 or not (over HTTP and MCP it is a JSON string). The supervisor owns the job's stdin and takes the bytes through stdin.sock in the job directory; they are appended to stdin.log (0600) unless --no-record. On a terminal (--tty), --eof sends ^D (twice when the last line written is unfinished, since the first ^D only ends that line), as soon as the terminal's input has room for it, and closes the job's input as on a pipe: later sends are stdin_closed, and all output, the echo of what was sent included, is in stdout. A program in raw mode reads ^D as the byte 0x04, and one that reads on after its end of input waits for more: such a job is ended with kill.",
            "On a terminal (--tty), bytes_written and stdin.log count the bytes written to the terminal, not what the program read: in canonical (line) mode, the default, the kernel keeps at most 4095 bytes of one line, so a 10,000-byte line sent to sh -c 'stty -echo; wc -c' reaches it as 4096 bytes while bytes_written says 10001. Nobody can tell what the line discipline drops: send long lines to a program that puts its terminal in raw mode, or run the job with -i without --tty.",
            "--eof closes input after whatever part of TEXT got in within --yield (bytes_written says how much), and waits behind the bytes of sends that came before it; if its yield ends first it closes nothing and answers stdin_open true. stdin_open describes the run the send reached: false once that run has ended, even when a --retry run follows. One send carries at most 16 MiB (more is stdin_too_large; over HTTP the whole /send body, data as JSON escapes it, is at most 1 MiB, more is 413 payload_too_large); --yield 0 still gives the bytes up to 100 ms to get in.",
            "The supervisor takes 16 sends at once: one it could not take before its yield ended (plus up to 2 s) is invalid_state, retryable, and none of its bytes reached the job; only if the supervisor began writing and no answer came is it io_error, not retryable, saying some bytes may have got in. A connection to stdin.sock that sends nothing for 2 s before its request is whole is dropped (answered with what of its bytes got in, if it had sent a header), so idle connections cannot hold those places; a large send that keeps coming is never cut off.",
        ],
        see: &["run", "tail", "wait"],
    },
    Reply {
        cmd: "delete",
        kind: "delete",
        fields: &[
            ("root", "The jobs root."),
            ("dry_run", "Whether this was a preview."),
            ("cwd_scope?", "With --all: the directory whose jobs were considered."),
            ("deleted", "Job directories removed (0 with --dry-run)."),
            ("skipped", "Jobs not removed; always out_of_scope + failed."),
            ("out_of_scope", "Jobs that were not deletion targets (running, created, unreadable, other directory), and with --all directories whose names are not UTF-8 (never listed)."),
            ("failed", "Targets whose removal failed."),
            ("jobs", "One {job_id, state, action, reason} per job considered; action is deleted, would_delete or skipped; reason is explicit_delete (named), terminal_in_cwd or created_in_cwd (--all, --include-created), or why it was skipped."),
        ],
        notes: &[
            "delete takes several job ids at once. With one id, a job that cannot be removed (running, in use, alive) is an error (invalid_state, retryable when the job is in use: the message says whether a reader or the job's supervisor holds it); with several, every id must resolve first (else nothing is removed), then each job is deleted or listed skipped with its reason (running, in_use, pid_alive), as delete --all reports. delete --all --include-created also removes the created jobs in scope.",
            "A queued job is killed (without having run) and removed. Should its turn come as the kill goes out, it has started, and the kill ends it as it ends a running job: the job is then kept, its record showing that it ran (killed, started_at), and the delete says so (invalid_state, retryable; listed skipped with reason started among several); the next delete removes it. Two deletes of one queued job at once: one removes it, the other finds it gone (job_not_found).",
            SAFE_DELETE,
            "delete --all also skips a terminal job whose recorded process is still alive (reason pid_alive). The check compares the process's start time with the recorded one, so a reused pid never blocks a delete.",
        ],
        see: &["gc", "list"],
    },
    Reply {
        cmd: "gc",
        kind: "gc",
        fields: &[
            ("root", "The jobs root."),
            ("dry_run", "Whether this was a preview."),
            ("older_than", "The retention window used."),
            ("older_than_source", "\"flag\" or \"default\"."),
            ("deleted", "Jobs removed."),
            ("skipped", "Jobs kept (out_of_scope + failed)."),
            ("out_of_scope", "Jobs no rule selected, or not finished."),
            ("failed", "Selected jobs whose removal failed."),
            ("freed_bytes", "Bytes removed (or that would be, with --dry-run): the jobs' and those of earlier removals' remains (.gone-* in the root, not listed)."),
            ("scanned_dirs", "Directories examined."),
            ("candidate_count", "Jobs selected for deletion."),
            ("jobs", "One {job_id, state, action, reason, bytes} per job; reason joins the rules that selected it with + (older_than, max_jobs, max_bytes)."),
        ],
        notes: &[
            "Finished jobs (exited, killed, failed) are deleted by the rules above; their age compares finished_at (else updated_at) with the window. Active jobs (created, queued, running) are never touched, however old (skipped with reason active_job). gc also removes half-written job directories (named as a job id, no meta.json) older than a minute (state unknown, reason incomplete). Anything else in the root is skipped (state_unreadable), however old. A directory whose name is not UTF-8 (no id can name it) is never read or removed: it is counted as skipped and out_of_scope, and not listed. Without --dry-run, gc also removes the files of every queue nobody is in (<root>/.queues/NAME: its slot files and stale tickets), which are not counted; the queue's next job makes them anew.",
            SAFE_DELETE,
            DURATIONS,
        ],
        see: &["delete", "run"],
    },
    Reply {
        cmd: "schema",
        kind: "schema",
        fields: &[
            ("schema_format", "\"json-schema-draft-07\"."),
            ("schema", "The JSON Schema document, embedded in the binary."),
            ("generated_at", "The schema's revision stamp."),
        ],
        notes: &[],
        see: &[],
    },
    Reply {
        cmd: "list",
        kind: "list",
        fields: &[
            ("root", "The jobs root."),
            ("jobs", "One entry per job, newest created first (fields below)."),
            ("truncated", "True when --limit cut the list."),
            ("skipped", "Unreadable job directories among those read, and, unless truncated, directories whose names are not UTF-8."),
        ],
        notes: &["With --table (a person reading): an aligned text table instead, with the header row ID STATE AGE DURATION EXIT COMMAND TAGS (ID is short_job_id; DURATION of a running job is the time since it started; EXIT is the exit code or the signal), cut to the width in COLUMNS (else 100), COMMAND first (down to 24 columns), then TAGS, each cut ending in … (a line still too wide is cut at the width, ending in …); one job a line (control characters, bidirectional formatting characters and line or paragraph separators are shown as spaces). A list that --limit cut (truncated) says so on stderr: N jobs shown; more match. It is never chosen automatically."],
        see: &["ps", "status", "tag-set"],
    },
    Reply {
        cmd: "ps",
        kind: "list",
        fields: &[
            ("root", "The jobs root."),
            ("jobs", "One entry per running or queued job, newest first (fields below)."),
            ("truncated", "True when --limit cut the list."),
            ("skipped", "Unreadable job directories among those read, and, unless truncated, directories whose names are not UTF-8."),
        ],
        notes: &["With --table: the table of list --table."],
        see: &["list", "kill"],
    },
    Reply {
        cmd: "tag set",
        kind: "tag_set",
        fields: &[
            ("job_id", "The full job id."),
            ("tags", "The tags now stored."),
        ],
        notes: &["Tags are dot-separated segments of ASCII letters, digits and -; a stored tag cannot end in .* (that form is a list filter)."],
        see: &["list", "run"],
    },
    Reply {
        cmd: "install-skills",
        kind: "install_skills",
        fields: &[
            ("skills", "One {name, source_type, path}: \"agent-exec\", \"embedded\", and the skill directory."),
            ("global", "Whether --global was given."),
            ("lock_file_path", "The .skill-lock.json that records the install."),
        ],
        notes: &[
            "Base directory B: .agents (or .claude with --claude) in the current directory, or in $HOME with --global (HOME unset or empty: usage_error). Files go to B/skills/agent-exec/ (SKILL.md and references/); the lock file is B/.skill-lock.json, whose agent-exec entry is replaced in place (others are kept; a lock in the legacy map form, {\"skills\": {NAME: {...}}}, is written back as an array, without the entries that lack any of source_type, installed_at and path). A lock file that cannot be parsed is treated as empty, as 0.2.3 does: the skill is installed and the lock written anew, with a warning on stderr. Every file is written atomically.",
        ],
        see: &[],
    },
    Reply {
        cmd: "notify set",
        kind: "notify.set",
        fields: &[
            ("job_id", "The full job id."),
            ("notification", "The stored settings: {notify_command?, notify_file?, on_output_match?{pattern, match_type, stream, command?, file?}}; {} when nothing is configured."),
        ],
        notes: &[
            "--output-match-type regex uses regex-lite syntax: Rust regex without Unicode classes. An invalid regex is rejected (invalid_pattern).",
        ],
        see: &["run"],
    },
    Reply {
        cmd: "completions",
        kind: "",
        fields: &[],
        notes: &[
            "bash: agent-exec completions bash >> ~/.bash_completion. zsh: agent-exec completions zsh > ~/.zsh/completions/_agent-exec, with that directory in fpath before compinit. fish: agent-exec completions fish > ~/.config/fish/completions/agent-exec.fish. PowerShell: agent-exec completions powershell >> $PROFILE. make install installs the bash, zsh and fish scripts.",
        ],
        see: &[],
    },
    Reply {
        cmd: "serve",
        kind: "serve",
        fields: &[
            ("bind", "The address listened on."),
            ("port", "The actual port (useful with --port 0)."),
            ("pid", "The server's process id."),
        ],
        notes: &[
            "This document is printed once, when the server is listening; it then serves until SIGTERM, SIGINT or SIGHUP, which stop it at once: it accepts no more connections and reads no more requests; a request still waiting (a wait, an exec or restart waiting for its job, a send in its yield, a kill watching for the end) is answered 503 unavailable at once, naming the job in error.details.job_id (for a wait on several, the first, in the order given, whose end it was still waiting for; the job goes on), and a follow's stream ends with its end line (the state then, running while the job runs, and the cursor to read on from), as tail --follow stopped by SIGTERM does; any other request being served gets up to 2 s to be answered (with Connection: close), and a restart still stopping the old run finishes that and starts the new one first, however long its kill_after, then is answered as above (503 when it would wait for the new run; with no_wait, its document); then the server exits 0. Routes: GET /health, POST /exec, GET /status/{id}, GET /tail/{id}, GET /wait/{id}, GET /wait?ids=A,B[&any=true] (several jobs, as wait A B), POST /kill/{id}, POST /restart/{id}, POST /send/{id} (a JSON body: data, a string, and newline, eof, yield_ms, no_record, max_bytes as send takes them: the switches booleans, the numbers integers, either also as text; data is never a number), GET /list. Kill and restart take their parameters in the query only (a JSON body with fields is invalid_request; any other body is ignored); a method HTTP does not define is 501. Bodies are the same documents as the CLI's, fields in the same order; errors carry the error envelope with a matching HTTP status. A field given twice in a /send or /exec body is invalid_request.",
            "POST /exec takes a JSON object: command (required), cwd, env, timeout_ms or timeout (seconds, not both), kill_after_ms, until (seconds, fractions allowed, or a duration such as 500ms), wait, max_bytes, tail_bytes (as run --tail-bytes), tags, stdin, queue, parallel, after and after_ok (arrays of ids), max_log_bytes (0: no cap), no_full_log or full_log (not both; these two and parallel default to the [log] and [queue.NAME] settings of the config the server read at its start, as run's flags do), interactive (stdin stays open for POST /send), tty (a pseudo-terminal; implies interactive), tty_size (COLSxROWS, with tty), retry and retry_delay (as run --retry N and --retry-delay: seconds, fractions allowed, or a duration such as 500ms; retry_delay needs retry). A duration field (timeout_ms, timeout, kill_after_ms, until, retry_delay) that is not one, negative or of another type, is invalid_duration, naming the field, as run --timeout -1 is.",
            "Query parameters (percent-decoded, with + as a space as in form encoding: send %2B for a plus; an unknown one is invalid_request, on /health too, which takes none): /tail tail_lines, max_bytes, since, grep, grep_type, output_stream, follow, until (a follow streams NDJSON in a chunked body, to an HTTP/1.0 client unframed and ended by the close); /wait until (seconds, default 30), forever, max_bytes, tail_bytes, output, output_match_type, output_stream, since (and with ids: all, any); /kill signal (as kill --signal), no_wait; /restart signal, kill_after, wait, until, forever, no_wait, max_bytes, tail_bytes, no_auto_gc, auto_gc_older_than, auto_gc_max_jobs, auto_gc_max_bytes; /list limit, state, cwd, all, tag (repeatable). Any other parameter (but ids, and a flag repeatable on the command line) given twice is invalid_request, a true/false one too (no_wait=true&no_wait=false), as a flag given twice is a usage_error. Without cwd or all, /list and /exec use the server's working directory. POST /exec runs no auto-GC (as 0.2.3's did); /restart does, as restart does.",
            "Requests: HTTP/1.1 and HTTP/1.0 (a later HTTP/1 minor version is served as 1.1; another major version is 505); a target is a path or an absolute URI (http://127.0.0.1:19263/health); an HTTP/1.1 request without Host, or with one no URI could hold (a space, user@, a port that is not digits), is 400; Connection: close closes the connection after the answer wherever it is listed, a keep-alive beside it notwithstanding; Expect: 100-continue is honoured, but ignored from HTTP/1.0, which is never sent a 1xx. Limits: request line and headers 8 KiB and 100 fields (431), body 1 MiB (413), chunked bodies refused (411), any other transfer coding 501; 128 connections (503, retryable; a connection shed under load, or one the server has no file descriptor for, before its request is read gets the 503 too, with Retry-After: 1); once a request's first byte is in, its head must arrive within 2 s and its body within 10 s more, or it is answered 408 request_timeout (retryable) and the connection closed; a connection on which no request begins is closed after 5 s without a word; when all 128 are taken, one whose answer its client has left unread for 1 s is closed to make room (what the request did stands); whatever the load, an answer that takes no byte for 10 s is cut off there. At most 96 long requests (a wait, a follow, an exec that waits, a restart, a send, a kill that watches) run at once: one more waits up to 250 ms for a place, then is answered 503 unavailable (retryable).",
            "Browsers: --allow-origin enables CORS for that one origin: every OPTIONS request from it (or from no origin) is answered 200 with no body, before the routes and the token; without --allow-origin, OPTIONS is a method no route takes (405; 401 first without the token). A request carrying any other Origin, an OPTIONS preflight included, is refused (403 forbidden), so a web page can neither start or kill jobs nor hold a wait open (and it gets no CORS header, so it could read nothing). Clients that are not browsers send no Origin and are not affected. Without a token, a Host header (or an absolute URI's host) that is a DNS name (dotted, other than *.localhost) is refused too (403), against DNS rebinding; use 127.0.0.1 or localhost.",
        ],
        see: &["run"],
    },
    Reply {
        cmd: "mcp",
        kind: "",
        fields: &[],
        notes: &[
            "Prints no document of its own: stdout carries MCP messages only (JSON-RPC 2.0, one per line); diagnostics go to stderr. The protocol revision is the client's among 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05 (the newest when it asks for another).",
            "Besides the flags (max_bytes, tail_lines, since, output, signal, eof, yield_ms, ...), a tool takes job_id (wait takes ids, an array of ids or one alone, instead to wait for several jobs, with all or any); run also takes command (an array of words or one shell string; one empty word is a command, as run -- '' is), env (an object), cwd, stdin (\"-\" is refused: the server's stdin is the protocol) and tags; send takes data. until and timeout are seconds, fractions allowed; yield_ms is whole milliseconds; an until (or yield_ms) however large is capped by AGENT_EXEC_MCP_MAX_UNTIL_SECONDS, not refused. tail's follow is not offered.",
            "A result's structuredContent is the document the command prints for the same call (from revision 2025-06-18; older clients get it as text); content is a short text rendering: the state and how the job ended (exit code or signal, timed out, a failed job's failure code and message), what wait matched (the line, or with any the job that ended first) or the last of tail's grep matches, the output's end (at most 2000 bytes each), the cursor. A refused argument's message gives the command line's reason and the value as the call wrote it. A job that failed is a normal result; a call that could not be carried out (job_not_found, invalid_cursor, a bad argument) is isError true with the error envelope. An unknown tool is JSON-RPC error -32602, as are params that are not an object (null is taken as none); an argument given twice is invalid_request, as a field given twice in an HTTP body is; malformed JSON -32700, a line over 4 MiB -32600 (skipped without being held). A UTF-8 byte order mark before the first message is skipped; an answer's id is the request's as written (1e2 stays 1e2, an integer past 64 bits keeps its digits).",
            "The default until applies to run, wait and restart; the cap (also of forever and send's yield) keeps every call below a client's request timeout; restart as a whole stays within it: its watch gets what the stop left, a kill_after above it is refused (invalid_request), and the default grace (5s) is shortened to it. Calls run on 8 workers, so others are answered while one waits. notifications/cancelled ends a call's wait at once, with no answer; the job goes on. A restart cancelled before its relaunch still finishes its stop (up to its kill_after, within the cap) and the relaunch, keeping its worker until then; only the watch that follows ends at once. With _meta.progressToken, notifications/progress report the milliseconds watched (always rising) with the bytes of output in the message: when the output grows, at most 10 times a second, and at least once a second while the job is quiet.",
            "At EOF on stdin the server answers every request it has already read (each bounded by the limits above), then exits; if nobody reads its stdout any more it exits at once, with 0; an answer it cannot write for another reason (a full disk) ends it with 1, the reason on stderr. Jobs are detached and keep running.", "Under revision 2025-03-26 a JSON-RPC batch (an array) is answered with one array (notifications add nothing; an empty batch is -32600), whose calls share the one limit a call has (each watches at most what is left of it since the batch came); other revisions refuse batches (-32600). An invalid (not UTF-8 included) or zero AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS or AGENT_EXEC_MCP_MAX_UNTIL_SECONDS makes mcp print the reason on stderr and exit 1 before writing anything on stdout (a call that should not wait passes until 0). A stdin that cannot be read (a directory) ends the reading as EOF does; once the requests already read are answered, the reason goes to stderr and mcp exits 1. Numbers and switches may also be given as text (\"5\", \"true\"), a signal as its number, a list argument as one value; tail takes lines as another name for tail_lines; text arguments must be strings; null for a parameter that may be left out is the same as leaving it out. Each tool's inputSchema says exactly this.",
        ],
        see: &["run", "serve"],
    },
];

/// Prose sections of a command page beyond its flags: (heading, paragraphs).
fn sections(c: &Cmd) -> Vec<(&'static str, &'static [&'static str])> {
    let mut v: Vec<(&'static str, &'static [&'static str])> = Vec::new();
    if matches!(c.name, "run" | "create") {
        v.push(("JOB ENVIRONMENT", JOB_ENV));
        v.push(("SECRETS", SECRETS));
    }
    if matches!(c.name, "run" | "create" | "start" | "wait") {
        v.push(("DURATIONS", &[DURATIONS]));
    }
    v
}

/// The ENVIRONMENT section of a command page: what selects the jobs root
/// (every command takes --root), then what this command reads or sets.
fn environment(c: &Cmd) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("AGENT_EXEC_ROOT", "The jobs root, when --root is not given. Then $XDG_DATA_HOME/agent-exec/jobs, then $HOME/.local/share/agent-exec/jobs (HOME unset: the home in /etc/passwd), else ./.agent-exec/jobs; see agent-exec(1)."),
    ];
    match c.name {
        "run" | "create" => {
            v.push(("XDG_CONFIG_HOME", "The config file is $XDG_CONFIG_HOME/agent-exec/config.toml (else $HOME/.config/agent-exec/config.toml), unless --config is given."));
            v.push(("AGENT_EXEC_EVENT_PATH, AGENT_EXEC_JOB_ID, AGENT_EXEC_EVENT_TYPE", "Set for the notification command sinks: the persisted event file, the job id, and job.finished or job.output.matched. A sink whose event file cannot be written (a full disk) is not started, and recorded as failed."));
            v.push(("PATH", "A command sink runs in the environment and the working directory of the command that started the job, not with its --env values or --cwd; under a login-shell wrapper its PATH is rebuilt as the job's is: the caller's entries first, then those the profile added."));
        }
        "notify set" => {
            v.push(("AGENT_EXEC_EVENT_PATH, AGENT_EXEC_JOB_ID, AGENT_EXEC_EVENT_TYPE", "Set for the notification command sinks: the persisted event file, the job id, and job.finished or job.output.matched. A sink whose event file cannot be written (a full disk) is not started, and recorded as failed."));
            v.push(("PATH", "A command sink runs in the environment and the working directory of the command that started the job, not with its --env values or --cwd; under a login-shell wrapper its PATH is rebuilt as the job's is: the caller's entries first, then those the profile added."));
        }
        "serve" => {
            v.push(("AGENT_EXEC_SERVE_TOKEN", "When set, every route but /health needs the header Authorization: Bearer <token>; without it, requests are refused with 401 unauthorized. Required, with --insecure, for a non-loopback bind. Whitespace around the value is ignored; an empty or blank value is no token; one holding a control character (a line break) or not valid UTF-8 is invalid_config, as no request could carry it. The jobs the server starts do not inherit it."));
        }
        "install-skills" => {
            v.push(("HOME", "The base directory of --global."));
        }
        "mcp" => {
            v.push(("AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS", "How long run, wait and restart watch when a call gives no until (default 10; never more than the maximum)."));
            v.push(("AGENT_EXEC_MCP_MAX_UNTIL_SECONDS", "The most any call watches: a cap on until, forever, send's yield, kill's watch and a whole restart (default 50)."));
        }
        _ => {}
    }
    v.push((
        "RUST_LOG",
        "Log level on stderr (error, warn, info, debug, trace); it wins over -v.",
    ));
    v
}

fn reply(c: &Cmd) -> Option<&'static Reply> {
    REPLIES.iter().find(|r| r.cmd == c.name)
}

fn fields(p: &mut Page, fields: &[(&str, &str)]) {
    for (name, what) in fields {
        let (name, opt) = match name.strip_suffix('?') {
            Some(n) => (n, " Omitted when absent."),
            None => (*name, ""),
        };
        p.tp(&bold(name), &format!("{what}{opt}"));
    }
}

// ---------------------------------------------------------------------------
// The pages
// ---------------------------------------------------------------------------

fn command_page(c: &Cmd) -> String {
    let slug = c.slug();
    let mut p = Page::new(&format!("agent-exec-{slug}"), "agent-exec manual");
    p.sh("NAME");
    p.text(&format!("agent-exec-{slug} - {}", c.about));
    p.sh("SYNOPSIS");
    synopsis(&mut p, c);
    if let Some(a) = c.alias {
        p.pp(&format!("Alias: `agent-exec {a}`."));
    }
    p.sh("DESCRIPTION");
    if c.long_about.is_empty() {
        p.pp(&format!("{}.", c.about.trim_end_matches('.')));
    } else {
        p.pp(c.long_about);
    }
    let r = reply(c);
    for n in r.map_or(&[][..], |r| r.notes) {
        p.pp(n);
    }
    if !c.pos.is_empty() {
        p.sh("ARGUMENTS");
        for pos in c.pos {
            let mut body = pos.help.trim_end_matches('.').to_string();
            body.push('.');
            if !pos.values.is_empty() {
                let _ = write!(body, " Possible values: {}.", pos.values.join(", "));
            }
            if !pos.required {
                body.push_str(" Optional.");
            }
            p.tp(&pos_tag(pos), &body);
        }
    }
    if !c.flags.is_empty() {
        p.sh("OPTIONS");
        for f in c.flags {
            p.tp(&flag_tag(f), &flag_body(f));
        }
        for (a, b) in c.conflicts {
            p.pp(&format!("`--{a}` and `--{b}` cannot be used together."));
        }
    }
    p.sh("GLOBAL OPTIONS");
    p.pp("Accepted before or after the subcommand name (up to the first word of a job's command):");
    for f in GLOBAL_FLAGS.iter().filter(|f| f.long != "version") {
        p.tp(&flag_tag(f), &flag_body(f));
    }
    for (heading, paras) in sections(c) {
        p.sh(heading);
        for t in paras {
            p.pp(t);
        }
    }
    p.sh("OUTPUT");
    match r {
        Some(r) if !r.kind.is_empty() => {
            p.pp(&format!(
                "On success, one JSON document on stdout (YAML with --yaml): `schema_version` (\"0.1\"), `ok` (true), `type` (\"{}\"), then these fields in this order:",
                r.kind
            ));
            fields(&mut p, r.fields);
            if matches!(c.name, "list" | "ps") {
                p.pp("Each entry of `jobs` holds, in this order:");
                fields(&mut p, JOB_ROW);
            }
            p.pp("On failure, the error envelope described in agent-exec(1): `ok` is false, `type` is \"error\", and `error` holds `code`, `message`, `retryable` and sometimes `details`.");
        }
        _ if c.name == "mcp" => p.pp(
            "JSON-RPC 2.0 messages on stdout, one per line, and nothing else: no document of its own. The tools' results are in the answers (structuredContent, or a text block for revisions before 2025-06-18); diagnostics go to stderr. A usage error on the command line still prints the JSON error envelope.",
        ),
        _ => p.pp(
            "Plain text on stdout, not JSON. A usage error still prints the JSON error envelope.",
        ),
    }
    p.sh("EXIT STATUS");
    if c.name == "mcp" {
        p.tp(&bold("0"), "stdin reached EOF and every request already read was answered, or nobody reads stdout any more.");
        p.tp(&bold("1"), "An invalid (not UTF-8 included) or zero AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS or AGENT_EXEC_MCP_MAX_UNTIL_SECONDS: the reason is on stderr, and nothing was written on stdout. Or stdin could not be read (a directory, say): the requests already read were answered on stdout, and the reason is on stderr.");
    } else {
        p.tp(&bold("0"), "Success (the document has ok: true).");
        p.tp(
            &bold("1"),
            "The command failed; stdout holds the error envelope.",
        );
    }
    p.tp(&bold("2"), "Usage error: unknown flag, missing argument or invalid value (usage_error, invalid_tag, invalid_signal, invalid_duration, invalid_pattern, invalid_cursor).");
    if WAITING.contains(&c.name) {
        p.tp(&bold("129, 130, 143"), STOPPED);
    }
    p.sh("ENVIRONMENT");
    for (k, v) in environment(c) {
        p.tp(&bold(k), v);
    }
    if !c.examples.is_empty() {
        p.sh("EXAMPLES");
        p.block(c.examples);
    }
    p.sh("SEE ALSO");
    let mut see = vec![man_ref("agent-exec")];
    for s in r.map_or(&[][..], |r| r.see) {
        see.push(man_ref(&format!("agent-exec-{s}")));
    }
    let mut line = String::new();
    for (i, s) in see.iter().enumerate() {
        if i > 0 {
            line.push_str(",\n");
        }
        line.push_str(s);
    }
    p.raw(&line);
    p.0
}

/// Every error code (`Error::code`): (code, exit status, what it means).
pub const ERROR_CODES: &[(&str, u8, &str)] = &[
    ("usage_error", 2, "The command line is wrong: unknown subcommand or flag, missing argument, invalid value, conflicting flags."),
    ("invalid_tag", 2, "A --tag value or tag filter breaks the tag rules."),
    ("invalid_signal", 2, "An unknown signal name or number for kill --signal."),
    ("invalid_duration", 2, "A duration that does not parse (expected a number with a unit: 500ms, 1.5s, 5m, 2h, 1d, 1w; or a bare number of seconds)."),
    ("invalid_pattern", 2, "An --output-pattern or tail --grep regex that does not compile."),
    ("invalid_cursor", 2, "A tail --since cursor that is garbage, belongs to another job, points past the end of a log, or names a log that was deleted or replaced since."),
    ("job_not_found", 1, "No job matches the id or prefix."),
    ("ambiguous_job_id", 1, "The prefix matches several jobs; details holds candidates (sorted, at most 20), truncated, and job_id (the prefix as given)."),
    ("invalid_state", 1, "The job's state does not allow the operation (start of a started job, kill of a created job, delete of a running job); retryable when another caller is mid-change on the job (a launch in progress, the previous run's supervisor still delivering notifications)."),
    ("stdin_required", 1, "--stdin - (or send --file -) while standard input is a terminal."),
    ("stdin_closed", 1, "send to a job whose stdin was closed (--eof) or that has ended."),
    ("stdin_too_large", 1, "The job's stdin exceeds --stdin-max-bytes, or a send exceeds 16 MiB."),
    ("invalid_config", 1, "config.toml (or a server setting) cannot be used, or --config names a file that does not exist; the message names the file, line and key."),
    ("unsafe_path", 1, "A file inside a job directory is a symlink (or a directory or other non-file where a file should be), or the job directory itself is a symlink; agent-exec follows neither."),
    ("io_error", 1, "An operating-system failure, or a damaged job record (a state.json or meta.json that does not parse, or names processes that are not the job's); retryable when trying again can help (EAGAIN, EBUSY, ENOSPC, ...)."),
    ("internal_error", 1, "A bug; a panic is reported this way too."),
    ("serve_unsafe_bind", 1, "serve refuses a non-loopback address without --insecure and AGENT_EXEC_SERVE_TOKEN."),
    ("invalid_request", 1, "HTTP and MCP: a malformed request body, query or header (400; 411 for a chunked body, 501 for another transfer coding or a method HTTP does not define, 505 for another HTTP major version), or a parameter or tool argument the command line would refuse as usage_error (missing, unknown, of the wrong type, or not going with another)."),
    ("unauthorized", 1, "HTTP: missing or wrong bearer token (401)."),
    ("forbidden", 1, "HTTP: a request from a browser Origin other than --allow-origin, or (without a token) a Host that is a DNS name (403)."),
    ("not_found", 1, "HTTP: no route at this path (404)."),
    ("method_not_allowed", 1, "HTTP: the route does not serve this method (405)."),
    ("payload_too_large", 1, "HTTP: a request line or headers over their limits (431), or a body over its limit (413)."),
    ("unavailable", 1, "HTTP: the server is at its connection limit or its limit of long requests, or is shutting down (a request waiting on a job then names it in details.job_id; the job goes on); retryable (503)."),
    ("request_timeout", 1, "HTTP: a request that began did not arrive whole in time (its head within 2 s, its body within 10 s); retryable (408)."),
];

fn main_page() -> String {
    let mut p = Page::new("agent-exec", "agent-exec manual");
    p.sh("NAME");
    p.text(&format!("agent-exec - {}", cli::ABOUT));
    p.sh("SYNOPSIS");
    p.raw(".B agent\\-exec");
    p.raw("[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR...]");
    p.sh("DESCRIPTION");
    p.pp("agent-exec runs commands as detached background jobs and answers every invocation with exactly one JSON document on stdout, so that an agent or a script can parse it without filtering. Each job is a directory under the jobs root; any later invocation (status, tail, wait, kill, list) reads it. No daemon is involved: each job has its own small supervisor process.");
    p.pp("`run` waits until the job ends or its wait budget (--until, 10 seconds) passes, whichever is first, and returns the state, the exit code and the head of stdout and stderr in one round trip. A longer job keeps running; its result is read later with status, wait or tail.");
    p.sh("COMMANDS");
    for c in visible() {
        let mut body = c.about.to_string();
        if let Some(a) = c.alias {
            let _ = write!(body, " (alias: {a})");
        }
        let _ = write!(body, ". See agent-exec-{}(1).", c.slug());
        p.tp(&bold(c.name), &body);
    }
    p.tp(&bold("help"), "Print help for a subcommand (human text).");
    p.sh("GLOBAL OPTIONS");
    for f in GLOBAL_FLAGS {
        p.tp(&flag_tag(f), &flag_body(f));
    }
    p.pp("Short flags bundle as in getopt: tail -fv is tail -f -v.");
    p.sh("OUTPUT CONTRACT");
    p.pp("Every invocation prints exactly one document on stdout: JSON on one line, or YAML with --yaml. Diagnostics go to stderr only. The only exceptions are --help, help, --version and the completion scripts, which print human text, and tail --follow, which streams one JSON object per line (NDJSON; with --yaml, a YAML stream of the same objects, each after its ---), or the raw bytes with --raw.");
    p.pp("A success document starts with `schema_version` (\"0.1\"), `ok` (true) and `type` (the command's response type), followed by the command's fields in a fixed order (see each command's page). Optional fields are omitted, not null.");
    p.pp("A failure prints the error envelope: `schema_version`, `ok` (false), `type` (\"error\") and `error` with `code` (stable, see ERROR CODES), `message` (for humans, may change), `retryable` (true when the same call may succeed later) and, for some codes, `details`; an error about a job carries `details.job_id`. Usage errors are reported this way too.");
    p.pp("Every error also prints one human line on stderr: agent-exec: error: <message>. -v and -vv show the launch and wait steps on stderr; with -v, wait and run --forever also keep a one-line progress note on stderr when it is a terminal (never otherwise).");
    p.pp("--table is for people: list, ps and status then print an aligned plain-text table (header ID STATE AGE DURATION EXIT COMMAND TAGS) cut to the terminal width (COLUMNS, else 100) instead of the document. It is only ever chosen by the flag, never by detecting a terminal, so scripts and agents always get JSON. Other commands refuse it with usage_error before doing anything, as they do --table with --yaml (that error in YAML, as every error beside --yaml); an error is still printed as the error document.");
    p.pp("Timestamps are UTC, YYYY-MM-DDTHH:MM:SSZ; durations are milliseconds; signals are SIG-prefixed names (\"SIGTERM\"). Log text is decoded as lossy UTF-8; a range [start, end] with end < total_bytes (run, start) or start > 0 (tail) means the text is a part of the log.");
    p.sh("JOB STATES");
    p.tp(&bold("created"), "Defined by create; no process yet.");
    p.tp(
        &bold("queued"),
        "Started, but waiting for a slot of its queue (--queue; queue_position: how many are ahead, 0 = next) or for other jobs (--after, --after-ok; waiting_for lists them). Its supervisor waits in the kernel; nothing of the command runs yet. kill ends it killed without having run; delete takes it out of the queue.",
    );
    p.tp(
        &bold("running"),
        "The supervisor and the command are alive.",
    );
    p.tp(
        &bold("exited"),
        "The command exited; exit_code holds its status. The logs are complete.",
    );
    p.tp(
        &bold("killed"),
        "A signal ended the command; signal names it, timed_out says whether --timeout sent it.",
    );
    p.tp(&bold("failed"), "The job could not run or lost its supervisor; failure.code says why: cwd_not_found, spawn_failed, env_file_unreadable, env_unreadable (the job's stored --env values, env.json, are unreadable or gone; the command never ran), stdin_unreadable, log_unwritable (a log could not be created; the command was stopped unrun or at once); no_space (the file system had no room for the space reserved for the job's end, so the command never ran; with no room even for its definition, run answers io_error and no job is made, and start, on a disk without even a block to spare for the job's record, answers io_error, retryable, and leaves the job created); launch_lost (the supervisor died before the command ran); supervisor_lost (it died while the command ran, or while the job was queued; its process group is killed then; SIGTERM, SIGINT or SIGHUP sent to a supervisor does not lose it: it passes the signal on to the job's group and records how the job ended); dependency_failed (an --after-ok job did not exit 0, or was deleted; the command never ran; a dependency is judged by the run it was on when the wait began); queue_unusable (the queue's directory could not be used safely, e.g. .queues is a symlink; the command never ran).");
    p.sh("ERROR CODES");
    for (code, exit, what) in ERROR_CODES {
        if what.starts_with("HTTP:") {
            p.tp(&bold(code), what);
        } else {
            p.tp(&bold(code), &format!("{what} Exit status {exit}."));
        }
    }
    p.sh("EXIT STATUS");
    p.tp(
        &bold("0"),
        "Success. A job that failed or timed out is still a successful command: look at state.",
    );
    p.tp(
        &bold("1"),
        "The command failed; stdout holds the error envelope.",
    );
    p.tp(&bold("2"), "Usage error (usage_error, invalid_tag, invalid_signal, invalid_duration, invalid_pattern, invalid_cursor).");
    p.tp(&bold("129, 130, 143"), STOPPED);
    p.sh("ENVIRONMENT");
    p.pp(ROOT_RULE);
    let env: &[(&str, &str)] = &[
        ("AGENT_EXEC_ROOT", "The jobs root, when --root is not given."),
        ("XDG_DATA_HOME", "Without --root and AGENT_EXEC_ROOT, the jobs root is $XDG_DATA_HOME/agent-exec/jobs (a relative value is relative to the current directory)."),
        ("HOME", "Otherwise the jobs root is $HOME/.local/share/agent-exec/jobs. When HOME is unset or empty, the user's home in /etc/passwd stands in for it, and without one the root is ./.agent-exec/jobs in the current directory. Also the base of install-skills --global and of the default config path."),
        ("XDG_CONFIG_HOME", "The config file is $XDG_CONFIG_HOME/agent-exec/config.toml when this is an absolute path, else $HOME/.config/agent-exec/config.toml."),
        ("RUST_LOG", "Log level on stderr: error, warn, info, debug or trace (also target=level); it wins over -v."),
        ("AGENT_EXEC_SERVE_TOKEN", "When set, every serve route but /health needs the header Authorization: Bearer <token>. Required for a non-loopback bind. Whitespace around the value is ignored; an empty or blank value is no token; one holding a control character (a line break) or not valid UTF-8 is invalid_config, as no request could carry it. The jobs the server starts do not inherit it."),
        ("AGENT_EXEC_EVENT_PATH", "Set for notification command sinks: a file that already holds the event when the sink starts: completion_event.json for job.finished; for job.output.matched, match_events/<seq>.json in the job directory, <seq> being the event's line in notification_events.ndjson (whose line, with the sinks' delivery_results, is written once they have run). Match events are kept per run: restart (and --retry) moves them to runs/<attempt>/match_events/, and the next run numbers its own from 1 again. When that file cannot be written (a full disk), the sink is not started: its delivery result is success false with an error \"not started: ...\" naming the failed write; file sinks still get the event."),
        ("PATH", "A command sink runs in the environment and the working directory of the command that started the job (run, start, restart; / if that directory is gone), not with the job's --env values or --cwd, plus AGENT_EXEC_EVENT_PATH, AGENT_EXEC_JOB_ID and AGENT_EXEC_EVENT_TYPE. Under a login-shell wrapper (the default sh -lc) its PATH is rebuilt as the job's is: the caller's entries first, then those the profile added."),
        ("AGENT_EXEC_JOB_ID", "Set for notification command sinks: the job id."),
        ("AGENT_EXEC_EVENT_TYPE", "Set for notification command sinks: job.finished or job.output.matched."),
    ];
    for (k, v) in env {
        p.tp(&bold(k), v);
    }
    p.sh("FILES");
    p.pp("Each job is a directory <root>/<JOB_ID>/ (mode 0700, files 0600), the root chosen as ENVIRONMENT describes:");
    let files: &[(&str, &str)] = &[
        ("meta.json", "The job's definition: command, cwd, tags, the names of its environment variables (env_keys, no values), timeouts, notification settings."),
        ("state.json", "Where the job is: status, pid, started_at, finished_at, result {exit_code, signal, duration_ms, timed_out}, failure."),
        ("stdout.log, stderr.log", "The raw output of each stream."),
        ("full.log", FULL_LOG),
        ("env.json", "The job's --env values: the only place they are stored."),
        ("stdin.bin", "The job's stdin, from --stdin or --stdin-file."),
        ("lock", "Held by the supervisor while the job runs: a free lock and a running state mean the supervisor is gone."),
        ("completion_event.json", "The job.finished event and its delivery results."),
        ("notification_events.ndjson", "One line per job.output.matched event, with delivery results."),
        ("match_events/<seq>.json", "A job.output.matched event with a command sink, written before the sink starts (its AGENT_EXEC_EVENT_PATH), as one line of JSON: read as NDJSON too, it is that one event."),
        ("runs/<attempt>/", "An earlier run kept by restart or run --retry: its state.json, stdout.log, stderr.log and the other per-run files above. The last [restart] keep_runs are kept."),
    ];
    for (k, v) in files {
        p.tp(&bold(k), v);
    }
    p.pp("No file inside a job directory is followed through a symlink, and a job directory that is a symlink is not a job: such a path is an error with code unsafe_path. Space for the terminal state is reserved when the job starts, so a job whose output could not all be written (e.g. ENOSPC, or EFBIG past the caller's file-size limit) still records its exit code, and its responses list what was lost in `output_lost`, while it runs as at its end. Input sent that stdin.log cannot record reaches the job all the same, and is listed there too (stream stdin; send answers it in `input_lost`).");
    p.pp("In the root, `.cache/complete` holds what shell completion learned about each job (its cwd, a terminal state, and any other state with the stamp of the job's directory it was read under, trusted while that directory is unchanged), and `.cache/list` what `list` learned (the job names while the root is unchanged, and what it shows of each finished job, checked against the job's files before use); both are derived and may be deleted at any time. `.spare-0` and `.spare-1` are empty directories a supervisor leaves for the next launches, which rename one into place as their job directory (a rename is cheaper than a new directory); they may be deleted at any time too. Names starting with a dot are never jobs.");
    p.pp("The config file (see ENVIRONMENT for its path, or --config) is optional TOML; unknown keys are ignored:");
    p.block(&[
        "[shell]",
        "unix = [\"sh\", \"-lc\"]      # argv prefix for a command string",
        "",
        "[gc]",
        "auto = true                # auto-GC after run and start",
        "older_than = \"30d\"         # retention window",
        "max_jobs = 200             # keep at most N finished jobs",
        "max_bytes = 1073741824     # trim finished jobs to this size",
        "scan_limit = 200           # auto-GC budget per launch: directories read",
        "delete_limit = 20          # auto-GC budget per launch: jobs deleted",
        "",
        "[notify]",
        "sink_timeout = \"30s\"       # time limit of a command sink (\"0\" = no limit)",
        "",
        "[restart]",
        "keep_runs = 5              # earlier runs kept by restart and --retry",
        "",
        "[queue.build]              # one table per queue NAME",
        "parallel = 2               # run --queue build without --parallel: 2 at once",
        "",
        "[log]",
        "max_bytes = 0              # default --max-log-bytes (0 = no cap)",
        "full = true                # false: as --no-full-log",
    ]);
    p.pp("A config that is not valid TOML or holds a value of the wrong type is invalid_config for every command that reads it. A [gc] older_than string that is not a duration is the exception: only auto-GC reads it, and auto-GC never fails a launch, so it is skipped with a warning on stderr (unless --auto-gc-older-than gives the window) and the job runs. gc itself does not read [gc].");
    p.sh("JOB ENVIRONMENT");
    for t in JOB_ENV.iter().chain(SECRETS) {
        p.pp(t);
    }
    p.sh("DURATIONS");
    p.pp(DURATIONS);
    p.sh("NOTIFICATIONS");
    p.pp("With --notify-command or --notify-file, a job.finished event is delivered when the job ends: the command receives the event JSON on stdin, the file gets it appended as one NDJSON line. With --output-pattern, every output line that matches emits a job.output.matched event to --output-command and --output-file. Sinks never change the job's state; their results are recorded in the job directory. A job whose supervisor died (supervisor_lost, launch_lost) gets its job.finished too, sent by a detached delivery that the reader recording that end starts (the reader does not wait for it; a command sink then runs in that reader's environment).");
    p.pp("--output-match-type contains matches a substring; regex uses regex-lite syntax: Rust regex without Unicode classes (\\d, \\w and [[:alpha:]] are ASCII-only; \\p{...} is not supported).");
    p.sh("EXAMPLES");
    p.block(&[
        "agent-exec run -- make test",
        "agent-exec run --until 60 --timeout 600 -- cargo build",
        "JOB=$(agent-exec run --no-wait -- ./long-task.sh | jq -r .job_id)",
        "agent-exec wait --until 300 \"$JOB\"",
        "agent-exec tail --tail-lines 20 \"$JOB\"",
        "agent-exec list --state running",
        "agent-exec gc --older-than 7d --dry-run",
    ]);
    p.sh("SEE ALSO");
    let see: Vec<String> = visible()
        .map(|c| man_ref(&format!("agent-exec-{}", c.slug())))
        .collect();
    p.raw(&see.join(",\n"));
    p.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_is_iso() {
        let b = DATE.as_bytes();
        assert_eq!(b.len(), 10, "{DATE}");
        for (i, c) in b.iter().enumerate() {
            assert!(
                if i == 4 || i == 7 {
                    *c == b'-'
                } else {
                    c.is_ascii_digit()
                },
                "{DATE} is not YYYY-MM-DD"
            );
        }
    }

    #[test]
    fn escaping() {
        assert_eq!(esc("--root"), "\\-\\-root");
        assert_eq!(esc("a\\b"), "a\\eb");
        assert_eq!(esc("say \"hi\""), "say \\(dqhi\\(dq");
        assert_eq!(esc("x — y"), "x \\[u2014] y");
        assert_eq!(esc("`run` now"), "\\fBrun\\fR now");
        let mut p = Page(String::new());
        p.text(".hidden");
        p.text("'quoted");
        assert_eq!(p.0, "\\&.hidden\n\\&'quoted\n");
    }

    #[test]
    fn every_flag_is_documented() {
        let pages = pages();
        for c in visible() {
            let name = format!("agent-exec-{}.1", c.slug());
            let (_, text) = pages.iter().find(|(n, _)| *n == name).unwrap();
            for f in c.flags.iter().chain(GLOBAL_FLAGS.iter().take(4)) {
                assert!(
                    text.contains(&format!("\\fB\\-\\-{}\\fR", esc(f.long))),
                    "{name} lacks --{}",
                    f.long
                );
            }
            assert!(reply(c).is_some(), "no output description for {}", c.name);
        }
    }

    #[test]
    fn table_prose_has_no_markup() {
        for c in COMMANDS {
            for f in c.flags {
                assert!(!f.help.contains('`'), "{} --{}", c.name, f.long);
            }
            assert!(!c.long_about.contains('`') && !c.about.contains('`'));
        }
    }

    /// Codes documented before their `Error` variant exists (the docs
    /// were written to a spec being implemented at the same time).
    const AHEAD: &[&str] = &[];

    /// Adding an Error variant fails to compile here until its code is
    /// documented (the match has no wildcard).
    #[test]
    fn every_error_code_is_documented() {
        let samples = [
            Error::Usage(String::new()),
            Error::InvalidTag(String::new()),
            Error::InvalidSignal(String::new()),
            Error::InvalidDuration(String::new()),
            Error::InvalidPattern(String::new()),
            Error::InvalidCursor(String::new()),
            Error::JobNotFound(String::new()),
            Error::AmbiguousJobId {
                prefix: String::new(),
                candidates: Vec::new(),
                more: 0,
            },
            Error::InvalidState(String::new()),
            Error::StdinRequired,
            Error::StdinTooLarge(0),
            Error::InvalidConfig(String::new()),
            Error::io("x", std::io::Error::from(std::io::ErrorKind::Other)),
            Error::Internal(String::new()),
            Error::ServeUnsafeBind(String::new()),
            Error::InvalidRequest(String::new()),
            Error::Unauthorized,
            Error::Forbidden(String::new()),
            Error::RouteNotFound(String::new()),
            Error::MethodNotAllowed { allow: "" },
            Error::PayloadTooLarge(String::new()),
            Error::Unavailable(String::new()),
            Error::RequestTimeout(String::new()),
            Error::UnsafePath(String::new()),
            Error::StdinClosed(String::new()),
        ];
        for e in &samples {
            match e {
                Error::Usage(_)
                | Error::InvalidTag(_)
                | Error::InvalidSignal(_)
                | Error::InvalidDuration(_)
                | Error::InvalidPattern(_)
                | Error::InvalidCursor(_)
                | Error::JobNotFound(_)
                | Error::AmbiguousJobId { .. }
                | Error::InvalidState(_)
                | Error::StdinRequired
                | Error::StdinTooLarge(_)
                | Error::InvalidConfig(_)
                | Error::Io { .. }
                | Error::Internal(_)
                | Error::ServeUnsafeBind(_)
                | Error::InvalidRequest(_)
                | Error::Unauthorized
                | Error::Forbidden(_)
                | Error::RouteNotFound(_)
                | Error::MethodNotAllowed { .. }
                | Error::PayloadTooLarge(_)
                | Error::Unavailable(_)
                | Error::RequestTimeout(_)
                | Error::UnsafePath(_)
                | Error::StdinClosed(_)
                | Error::Busy(_)
                | Error::InJob(..) => {}
            }
            let row = ERROR_CODES.iter().find(|(c, _, _)| *c == e.code());
            let (_, exit, _) = row.unwrap_or_else(|| panic!("{} undocumented", e.code()));
            assert_eq!(i32::from(*exit), e.exit_code(), "{}", e.code());
            assert!(
                !AHEAD.contains(&e.code()),
                "{} exists now: take it out of AHEAD",
                e.code()
            );
        }
        assert_eq!(samples.len() + AHEAD.len(), ERROR_CODES.len());
    }

    /// The skill an agent reads names every code it may be answered
    /// with (it lacked invalid_cursor, stdin_closed, unsafe_path and two
    /// of the server's, and told the agent to branch on `code`).
    #[test]
    fn the_skill_names_every_error_code() {
        let contract = include_str!("../skills/agent-exec/references/cli-contract.md");
        for (code, _, _) in ERROR_CODES {
            assert!(contract.contains(&format!("`{code}`")), "{code}");
        }
    }
}
