//! The command-line table and the lexopt loop that reads it.
//!
//! `COMMANDS` is the single source of truth for subcommands and flags:
//! parsing, `--help`, the man pages and the shell completions are all
//! generated from it, and a test checks that they agree. A subcommand is
//! one row (plus its file under `cmd/`); a flag is one `Flag` entry.
//!
//! Invariants
//! - Values are validated here, by type, before any command runs: a bad
//!   integer or choice is `usage_error`, a bad tag `invalid_tag`, a bad
//!   signal `invalid_signal`, a bad duration `invalid_duration` — all exit 2.
//! - Global flags (`--root`, `--yaml`, `--table`, `-v`) are accepted before or after
//!   the subcommand name, up to the first word of a trailing command.
//! - For commands that take a trailing `COMMAND...`, the first positional
//!   word (or everything after `--`) belongs to the child, verbatim.
//! - `--wait [true|false]` takes its value only when the next word is a
//!   boolean, so a bare `--wait` works anywhere, also after `--env K=V`.
//!
//! Rejected: clap (not in our dependency budget, and its usage errors are
//! plain text); rewriting argv before parsing (0.2.3 did this for
//! `--wait` and stopped at the first option value).

use std::ffi::OsString;

use crate::cmd;
use crate::error::{Error, Result};
use crate::output::Output;

/// What a value must look like; checked while parsing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    Str,
    /// Bytes for the job to read (`--stdin`): any text, NUL included
    /// (only HTTP and MCP can carry one; it never becomes an argument).
    Data,
    /// `KEY=VALUE` or `KEY` (`--env`): a name, without `=`.
    Env,
    Path,
    Cmd,
    U64,
    /// A TCP port, 0..=65535: out of range is refused as a non-number
    /// is, while the arguments are parsed (0.2.3's clap `u16`).
    Port,
    Bool,
    Choice,
    Tag,
    TagPattern,
    Signal,
    Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Present or not.
    Switch,
    /// Takes one value.
    Value(Ty),
    /// `--wait`, `--wait true`, `--wait=false`.
    OptBool,
}

/// Which jobs a job-id argument offers in shell completion.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum JobFilter {
    All,
    Created,
    Waitable,
    Running,
    /// Running or queued: what `kill` can end.
    Killable,
    Terminal,
}

#[derive(Debug)]
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    pub meta: &'static str,
    pub kind: Kind,
    pub multi: bool,
    pub default: Option<&'static str>,
    pub choices: &'static [&'static str],
    pub help: &'static str,
    /// The flag's name in the other doors (HTTP query or body, MCP).
    pub http: Http,
    /// A second long name, accepted everywhere the first is (with `_`
    /// for `-` in the other doors) and named in the help text.
    pub also: Option<&'static str>,
    /// The values a count may take, where that is less than any u64
    /// (`--parallel` 1 to 1024): said in MCP's inputSchema. Checked
    /// where the value is used, with its own message.
    pub range: Option<(u64, u64)>,
}

/// How a flag is named outside the command line. One table names every
/// parameter once for all doors: the CLI, HTTP routes and (later) MCP
/// tools translate into the same `Matches` and call the same operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Http {
    /// The long name with `-` as `_` (`max-bytes` → `max_bytes`).
    Same,
    /// A duration flag given in milliseconds under this name
    /// (`--yield` → `yield_ms`).
    Millis(&'static str),
    /// Only on the command line (it reads the caller's files or
    /// terminal, or configures the caller itself).
    CliOnly,
}

impl Flag {
    const fn switch(long: &'static str, help: &'static str) -> Flag {
        Flag {
            long,
            short: None,
            meta: "",
            kind: Kind::Switch,
            multi: false,
            default: None,
            choices: &[],
            help,
            http: Http::Same,
            also: None,
            range: None,
        }
    }
    const fn value(long: &'static str, meta: &'static str, ty: Ty, help: &'static str) -> Flag {
        Flag {
            long,
            short: None,
            meta,
            kind: Kind::Value(ty),
            multi: false,
            default: None,
            choices: &[],
            help,
            http: Http::Same,
            also: None,
            range: None,
        }
    }
    const fn multi(mut self) -> Flag {
        self.multi = true;
        self
    }
    const fn default(mut self, d: &'static str) -> Flag {
        self.default = Some(d);
        self
    }
    const fn choices(mut self, c: &'static [&'static str]) -> Flag {
        self.choices = c;
        self
    }
    const fn range(mut self, lo: u64, hi: u64) -> Flag {
        self.range = Some((lo, hi));
        self
    }
    const fn short(mut self, c: char) -> Flag {
        self.short = Some(c);
        self
    }
    const fn also(mut self, long: &'static str) -> Flag {
        self.also = Some(long);
        self
    }
    const fn cli_only(mut self) -> Flag {
        self.http = Http::CliOnly;
        self
    }
    const fn http_ms(mut self, name: &'static str) -> Flag {
        self.http = Http::Millis(name);
        self
    }

    /// Does the flag take true or false (a switch, `--wait [true|false]`)?
    pub fn is_boolean(&self) -> bool {
        matches!(self.kind, Kind::Switch | Kind::OptBool)
    }

    /// The name this flag has in the HTTP (and MCP) doors, if any.
    pub fn http_name(&self) -> Option<String> {
        match self.http {
            Http::Same => Some(self.long.replace('-', "_")),
            Http::Millis(n) => Some(n.to_string()),
            Http::CliOnly => None,
        }
    }

    /// The second name (`also`) in the HTTP (and MCP) doors, if any:
    /// accepted wherever `http_name` is, so MCP's inputSchema lists it.
    pub fn http_also(&self) -> Option<String> {
        match self.http {
            Http::CliOnly => None,
            _ => self.also.map(|a| a.replace('-', "_")),
        }
    }

    pub fn takes_value(&self) -> bool {
        matches!(self.kind, Kind::Value(_))
    }

    /// `--name <META>` as help and man pages show it.
    pub fn synopsis(&self) -> String {
        match self.kind {
            Kind::Switch => format!("--{}", self.long),
            Kind::Value(_) => format!("--{} <{}>", self.long, self.meta),
            Kind::OptBool => format!("--{} [true|false]", self.long),
        }
    }
}

#[derive(Debug)]
pub struct Pos {
    pub name: &'static str,
    pub required: bool,
    /// The trailing `COMMAND...`: this word and every later one.
    pub rest: bool,
    /// Takes one or more words (flags may come between them).
    pub many: bool,
    pub jobs: Option<JobFilter>,
    /// Allowed values, when the argument is a choice.
    pub values: &'static [&'static str],
    pub help: &'static str,
    /// Taken as the bytes given, UTF-8 or not (`send`'s TEXT: bytes for
    /// a job's stdin); every other word must be UTF-8.
    pub bytes: bool,
}

pub type Exec = fn(&Matches) -> Result<Output>;

pub struct Cmd {
    /// Space-separated path: `status`, `tag set`.
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub about: &'static str,
    pub long_about: &'static str,
    pub flags: &'static [Flag],
    pub pos: &'static [Pos],
    pub conflicts: &'static [(&'static str, &'static str)],
    pub hidden: bool,
    pub exec: Exec,
    /// Example invocations (man pages; each is run by a test).
    pub examples: &'static [&'static str],
}

impl Cmd {
    pub fn flag(&self, long: &str) -> Option<&'static Flag> {
        self.flags
            .iter()
            .find(|f| f.long == long || f.also == Some(long))
    }
    /// The flag named `name` in the HTTP and MCP doors (either name).
    pub fn http_flag(&self, name: &str) -> Option<&'static Flag> {
        self.flags.iter().find(|f| {
            f.http_name().as_deref() == Some(name) || f.http_also().as_deref() == Some(name)
        })
    }
    /// The file-name form: `tag-set`.
    pub fn slug(&self) -> String {
        self.name.replace(' ', "-")
    }
    pub fn usage(&self) -> String {
        let mut u = format!("agent-exec {}", self.name);
        if !self.flags.is_empty() {
            u.push_str(" [OPTIONS]");
        }
        for p in self.pos {
            u.push(' ');
            match (p.rest, p.required) {
                (true, _) => u.push_str(&format!("[--] <{}>...", p.name)),
                (false, true) if p.many => u.push_str(&format!("<{}>...", p.name)),
                (false, true) => u.push_str(&format!("<{}>", p.name)),
                (false, false) if p.many => u.push_str(&format!("[{}]...", p.name)),
                (false, false) => u.push_str(&format!("[{}]", p.name)),
            }
        }
        u
    }
}

// ---------------------------------------------------------------------------
// Global flags
// ---------------------------------------------------------------------------

pub static GLOBAL_FLAGS: &[Flag] = &[
    Flag::value(
        "root",
        "PATH",
        Ty::Path,
        "Jobs root directory (precedence: --root > AGENT_EXEC_ROOT > $XDG_DATA_HOME/agent-exec/jobs > ~/.local/share/agent-exec/jobs)",
    ),
    Flag::switch("yaml", "Print the response as YAML instead of JSON"),
    Flag::switch("table", "list, ps and status: print an aligned text table for people (ID STATE AGE DURATION EXIT COMMAND TAGS) instead of the document, cut to $COLUMNS (else 100) columns; never chosen automatically; other commands refuse it (usage_error)"),
    Flag::switch("verbose", "More diagnostics on stderr (-v info, -vv debug, -vvv trace)").short('v'),
    Flag::switch("help", "Print help (human text)").short('h'),
    Flag::switch("version", "Print the version (top level only)").short('V'),
];

// ---------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------

// Definition-time flags shared by `run` and `create`.
const TIMEOUT: Flag = Flag::value(
    "timeout",
    "DURATION",
    Ty::Duration,
    "Send SIGTERM to the job's process group after this long (500ms, 1.5s, 5m, ...; a bare number is seconds; 0 = no limit)",
)
.default("0");
const KILL_AFTER: Flag = Flag::value(
    "kill-after",
    "DURATION",
    Ty::Duration,
    "Time between the timeout's SIGTERM and SIGKILL to the whole group, even after its root process ended (0 = SIGKILL at once)",
)
.default("0");
const CWD: Flag = Flag::value(
    "cwd",
    "DIR",
    Ty::Path,
    "Working directory of the job (default: the current directory; not empty)",
);
const ENV: Flag = Flag::value(
    "env",
    "KEY[=VALUE]",
    Ty::Env,
    "Set an environment variable for the job (applied after --env-file and after the login profile); KEY alone passes the caller's value on",
)
.multi();
const ENV_FILE: Flag = Flag::value(
    "env-file",
    "FILE",
    Ty::Path,
    "Read KEY=VALUE lines (KEY alone: the caller's value) from a regular file of at most 1 MiB, read when the job starts (for run: now; for create: at start, so it may be written in between); the way to pass secrets",
)
.multi();
const INHERIT_ENV: Flag = Flag::switch(
    "inherit-env",
    "Start from the caller's environment (the default)",
);
const NO_INHERIT_ENV: Flag =
    Flag::switch("no-inherit-env", "Start the job with an empty environment");
const MASK: Flag = Flag::value(
    "mask",
    "KEY",
    Ty::Str,
    "Show this --env variable's value as *** in the env_vars of the CLI's run, start and restart answers (HTTP and MCP answers have no env_vars)",
)
.multi();
const STDIN: Flag = Flag::value(
    "stdin",
    "VALUE",
    Ty::Data,
    "Job stdin content, byte for byte (UTF-8, as an argument must be); '-' reads the caller's stdin, any bytes (it must not be a terminal)",
);
const STDIN_FILE: Flag = Flag::value(
    "stdin-file",
    "PATH",
    Ty::Path,
    "Copy this file into the job's stdin.bin and use it as stdin",
);
const STDIN_MAX_BYTES: Flag = Flag::value(
    "stdin-max-bytes",
    "BYTES",
    Ty::U64,
    "Largest stdin accepted (stdin_too_large beyond)",
)
.default("67108864");
const TAG: Flag = Flag::value(
    "tag",
    "TAG",
    Ty::Tag,
    "Tag the job: dot-separated segments of letters, digits and '-'",
)
.multi();
// Queues and dependencies (see queue.rs), shared by `run` and `create`.
const QUEUE: Flag = Flag::value(
    "queue",
    "NAME",
    Ty::Str,
    "Run in queue NAME: at most --parallel of its jobs at once, the others wait (state queued) and start in launch order",
);
const PARALLEL: Flag = Flag::value(
    "parallel",
    "N",
    Ty::U64,
    "With --queue: how many of the queue's jobs run at once, 1 to 1024 (default: config [queue.NAME] parallel, else 1)",
)
.range(1, crate::queue::MAX_PARALLEL);
const AFTER: Flag = Flag::value(
    "after",
    "JOB_ID",
    Ty::Str,
    "Start only once this job is terminal (queued until then)",
)
.multi();
const AFTER_OK: Flag = Flag::value(
    "after-ok",
    "JOB_ID",
    Ty::Str,
    "Start only if this job exits 0; otherwise end failed (dependency_failed) without running",
)
.multi();
const LOG: Flag = Flag::value(
    "log",
    "PATH",
    Ty::Path,
    "Write the combined timestamped log here instead of <job>/full.log, making missing parent directories; never inside a directory of the jobs root (the launch fails log_unwritable). Restart writes it anew: earlier runs' combined logs are not kept",
);
const MAX_LOG_BYTES: Flag = Flag::value(
    "max-log-bytes",
    "BYTES",
    Ty::U64,
    "Cap each log (stdout.log, stderr.log, full.log) at BYTES: its first half and a rolling last half are kept, the middle is dropped, counted and marked by one line (default: config [log] max_bytes, else no cap; 0 = no cap)",
);
const NO_FULL_LOG: Flag = Flag::switch(
    "no-full-log",
    "Do not write full.log (also config [log] full = false)",
);
const FULL_LOG: Flag = Flag::switch(
    "full-log",
    "Write full.log even where config [log] full = false says not to (the default otherwise)",
);
const PROGRESS_EVERY: Flag = Flag::value(
    "progress-every",
    "DURATION",
    Ty::Duration,
    "Refresh state.json's updated_at this often while running (0 = never)",
)
.default("0");
const CONFIG: Flag = Flag::value(
    "config",
    "PATH",
    Ty::Path,
    "Read this config.toml instead of $XDG_CONFIG_HOME/agent-exec/config.toml",
);
const INTERACTIVE: Flag = Flag::switch(
    "interactive",
    "Keep the job's stdin open for 'send' (any --stdin/--stdin-file bytes go first)",
)
.short('i');
const TTY: Flag = Flag::switch(
    "tty",
    "Run the job on a pseudo-terminal (implies -i); its output is logged to stdout.log",
);
const TTY_SIZE: Flag = Flag::value(
    "tty-size",
    "COLSxROWS",
    Ty::Str,
    "Size of the job's terminal (with --tty; each 1 to 10000)",
)
.default("80x24");
const SHELL_WRAPPER: Flag = Flag::value(
    "shell-wrapper",
    "'PROG FLAGS'",
    Ty::Str,
    "Shell used to launch the command: one argument, e.g. \"bash -lc\" (default: config, else \"sh -lc\")",
);

// `--retry`: definition-time, shared by `run` and `create`.
const RETRY: Flag = Flag::value(
    "retry",
    "N",
    Ty::U64,
    "Run the job again, up to N more times, when it exits non-zero; a run ended by any signal (state killed: kill, restart, a crash, a signal it raised itself) or by --timeout is not retried; each run is kept in previous_runs",
)
.default("0");
const RETRY_DELAY: Flag = Flag::value(
    "retry-delay",
    "DURATION",
    Ty::Duration,
    "Pause before each --retry run (500ms, 2s, ...; a bare number is seconds; needs --retry); a kill meanwhile ends the job killed, as an attempt that never ran",
)
.default("0");

// Observation flags shared by `run` and `start`.
const WAIT: Flag = Flag {
    long: "wait",
    short: None,
    meta: "BOOL",
    kind: Kind::OptBool,
    multi: false,
    default: Some("true"),
    choices: &[],
    help: "Wait for the job before answering; a bare --wait means true",
    http: Http::Same,
    also: None,
    range: None,
};
const UNTIL: Flag = Flag::value(
    "until",
    "DURATION",
    Ty::Duration,
    "Wait budget: answer when the job ends or after this long (500ms, 1.5s, 2m; a bare number is seconds)",
)
.default("10");
const FOREVER: Flag = Flag::switch(
    "forever",
    "Wait until the job ends, however long (not with --until, --no-wait or --wait false)",
);
const NO_WAIT: Flag = Flag::switch(
    "no-wait",
    "Answer as soon as the job is running (same as --wait false)",
);
const MAX_BYTES: Flag = Flag::value(
    "max-bytes",
    "BYTES",
    Ty::U64,
    "Most bytes of each log's head in the answer",
)
.default("65536");
const TAIL_BYTES: Flag = Flag::value(
    "tail-bytes",
    "BYTES",
    Ty::U64,
    "When a log is longer than the head, also return its last BYTES (stdout_tail/stderr_tail, never overlapping the head; 0 = none)",
)
.default("16384");

// Notification flags shared by `run` and `create` (`notify set` has its own names).
const NOTIFY_COMMAND: Flag = Flag::value(
    "notify-command",
    "COMMAND",
    Ty::Cmd,
    "Shell command run when the job finishes; the job.finished event JSON is on its stdin (not empty)",
);
const NOTIFY_FILE: Flag = Flag::value(
    "notify-file",
    "PATH",
    Ty::Path,
    "Append the job.finished event to this file as one NDJSON line",
);
const OUTPUT_PATTERN: Flag = Flag::value(
    "output-pattern",
    "PATTERN",
    Ty::Str,
    "Emit a job.output.matched event for every output line matching this pattern",
);
const OUTPUT_MATCH_TYPE: Flag = Flag::value(
    "output-match-type",
    "TYPE",
    Ty::Choice,
    "How --output-pattern matches: substring, or a regex (regex-lite syntax)",
)
.choices(&["contains", "regex"]);
const OUTPUT_STREAM: Flag = Flag::value(
    "output-stream",
    "STREAM",
    Ty::Choice,
    "Which stream's lines are matched",
)
.choices(&["stdout", "stderr", "either"]);
const OUTPUT_COMMAND: Flag = Flag::value(
    "output-command",
    "COMMAND",
    Ty::Cmd,
    "Shell command run for every matching line; the event JSON is on its stdin (not empty; on notify set, '' removes it)",
);
const OUTPUT_FILE: Flag = Flag::value(
    "output-file",
    "PATH",
    Ty::Path,
    "Append every job.output.matched event to this file as NDJSON",
);

// Auto-GC flags shared by `run` and `start`.
const NO_AUTO_GC: Flag = Flag::switch(
    "no-auto-gc",
    "Skip the automatic clean-up of old finished jobs for this launch",
);
const AUTO_GC_OLDER_THAN: Flag = Flag::value(
    "auto-gc-older-than",
    "DURATION",
    Ty::Duration,
    "Auto-GC retention window (30d, 24h, 60m, 1w, 1.5s, 500ms; a bare number is seconds)",
);
const AUTO_GC_MAX_JOBS: Flag = Flag::value(
    "auto-gc-max-jobs",
    "N",
    Ty::U64,
    "Auto-GC keeps at most N finished jobs",
);
const AUTO_GC_MAX_BYTES: Flag = Flag::value(
    "auto-gc-max-bytes",
    "BYTES",
    Ty::U64,
    "Auto-GC trims finished jobs oldest-first to this many bytes",
);

// Filters shared by `list` and `ps`.
const LIMIT: Flag =
    Flag::value("limit", "N", Ty::U64, "Most jobs to return (0 = all)").default("50");
const LIST_CWD: Flag = Flag::value(
    "cwd",
    "DIR",
    Ty::Path,
    "Only jobs whose working directory is DIR (default: the current directory)",
);
const ALL: Flag = Flag::switch("all", "Jobs from every directory");
const TAG_FILTER: Flag = Flag::value(
    "tag",
    "PATTERN",
    Ty::TagPattern,
    "Only jobs with this tag; 'ns.*' matches a namespace; repeat to require all",
)
.multi();

const COMMAND: Pos = Pos {
    name: "COMMAND",
    required: true,
    rest: true,
    many: false,
    jobs: None,
    values: &[],
    help: "The command: one word is a shell string (pipes, &&); two or more are argv, exec'd after the login shell starts",
    bytes: false,
};

const JOB_ID: Pos = Pos {
    name: "JOB_ID",
    required: true,
    rest: false,
    many: false,
    jobs: Some(JobFilter::All),
    values: &[],
    help: "Job id (full ULID or a unique prefix, case-insensitive)",
    bytes: false,
};

const fn job_pos(jobs: JobFilter) -> Pos {
    Pos {
        name: "JOB_ID",
        required: true,
        rest: false,
        many: false,
        jobs: Some(jobs),
        values: &[],
        help: "Job id (full ULID or a unique prefix, case-insensitive)",
        bytes: false,
    }
}

const DEFINE_CONFLICTS: &[(&str, &str)] = &[
    ("stdin", "stdin-file"),
    ("inherit-env", "no-inherit-env"),
    ("full-log", "no-full-log"),
];

pub static COMMANDS: &[&Cmd] = &[
    &CREATE,
    &START,
    &RUN,
    &STATUS,
    &TAIL,
    &WAIT_CMD,
    &KILL,
    &RESTART,
    &SEND,
    &DELETE,
    &GC,
    &SCHEMA,
    &LIST,
    &PS,
    &TAG_SET,
    &INSTALL_SKILLS,
    &NOTIFY_SET,
    &COMPLETIONS,
    &SERVE,
    &MCP,
    &SUPERVISE,
    &NOTIFY_LOST,
    &AUTO_GC,
    &COMPLETE,
    &GEN_MAN,
];

static CREATE: Cmd = Cmd {
    name: "create",
    alias: None,
    about: "Define a job without starting it",
    long_about: "Stores the command, environment, stdin and timeouts in a new job directory with state 'created'. No process starts; 'start' launches it later.",
    flags: &[TIMEOUT, KILL_AFTER, CWD, ENV, ENV_FILE, INHERIT_ENV, NO_INHERIT_ENV, MASK, STDIN, STDIN_FILE, STDIN_MAX_BYTES, INTERACTIVE, TTY, TTY_SIZE, TAG, MAX_LOG_BYTES, NO_FULL_LOG, FULL_LOG, PROGRESS_EVERY, CONFIG, SHELL_WRAPPER, NOTIFY_COMMAND, NOTIFY_FILE, OUTPUT_PATTERN, OUTPUT_MATCH_TYPE, OUTPUT_STREAM, OUTPUT_COMMAND, OUTPUT_FILE, RETRY, RETRY_DELAY, QUEUE, PARALLEL, AFTER, AFTER_OK],
    pos: &[COMMAND],
    conflicts: DEFINE_CONFLICTS,
    hidden: false,
    exec: cmd::create::exec,
    examples: &["agent-exec create -- echo deferred"],
};

static START: Cmd = Cmd {
    name: "start",
    alias: None,
    about: "Launch a job made by 'create'",
    long_about: "Starts a 'created' job and waits like 'run' (until it ends or --until passes). Any other state is invalid_state; of concurrent starts exactly one wins.",
    flags: &[WAIT, UNTIL, FOREVER, NO_WAIT, MAX_BYTES, TAIL_BYTES, NO_AUTO_GC, AUTO_GC_OLDER_THAN, AUTO_GC_MAX_JOBS, AUTO_GC_MAX_BYTES],
    pos: &[job_pos(JobFilter::Created)],
    conflicts: &[("until", "forever")],
    hidden: false,
    exec: cmd::start::exec,
    examples: &["agent-exec start 01JABCDEF0"],
};

static RUN: Cmd = Cmd {
    name: "run",
    alias: None,
    about: "Run a command as a detached background job",
    long_about: "Creates a job, starts it under a detached supervisor, and waits until it ends or the wait budget (--until, 10 s) passes. The answer holds the state, exit code and the head of stdout/stderr (and, when a log is longer, its last --tail-bytes), with a cursor for tail --since; the job goes on if it is still running.",
    flags: &[TIMEOUT, KILL_AFTER, CWD, ENV, ENV_FILE, INHERIT_ENV, NO_INHERIT_ENV, MASK, STDIN, STDIN_FILE, STDIN_MAX_BYTES, INTERACTIVE, TTY, TTY_SIZE, TAG, LOG, MAX_LOG_BYTES, NO_FULL_LOG, FULL_LOG, PROGRESS_EVERY, CONFIG, SHELL_WRAPPER, NOTIFY_COMMAND, NOTIFY_FILE, OUTPUT_PATTERN, OUTPUT_MATCH_TYPE, OUTPUT_STREAM, OUTPUT_COMMAND, OUTPUT_FILE, RETRY, RETRY_DELAY, QUEUE, PARALLEL, AFTER, AFTER_OK, WAIT, UNTIL, FOREVER, NO_WAIT, MAX_BYTES, TAIL_BYTES, NO_AUTO_GC, AUTO_GC_OLDER_THAN, AUTO_GC_MAX_JOBS, AUTO_GC_MAX_BYTES],
    pos: &[COMMAND],
    conflicts: &[("stdin", "stdin-file"), ("inherit-env", "no-inherit-env"), ("full-log", "no-full-log"), ("until", "forever"), ("log", "no-full-log")],
    hidden: false,
    exec: cmd::run::exec,
    examples: &["agent-exec run -- echo hello", "agent-exec run --timeout 5 --kill-after 2 -- sleep 60", "agent-exec run -- 'make build && make test'"],
};

static STATUS: Cmd = Cmd {
    name: "status",
    alias: None,
    about: "Report a job's state",
    long_about: "Reads the job's state; a job whose supervisor is gone is reported as failed (failure.code supervisor_lost), never as running.",
    flags: &[],
    pos: &[JOB_ID],
    conflicts: &[],
    hidden: false,
    exec: cmd::status::exec,
    examples: &["agent-exec status 01JABCDEF0"],
};

static TAIL: Cmd = Cmd {
    name: "tail",
    alias: None,
    about: "Show the end of a job's stdout and stderr, or what is new since a cursor",
    long_about: "Reads at most --max-bytes from the end of each log and keeps the last --tail-lines lines of that window. With --since CURSOR (the cursor of an earlier run, start, wait or tail answer) it returns the output written after the cursor instead: at most --max-bytes per stream from the start of the new output (--tail-lines does not apply); a loop of tail --since reads every byte once. Every answer carries a new cursor, just after what it returned. A cursor of another job, past the end of a log, or for a log deleted or replaced since is invalid_cursor. With --grep it returns matches instead of text: the last --tail-lines matching lines of each stream (at most --max-bytes of line text), searched in bounded memory whatever the log's size; a running job's unfinished last line is left for a later search, and with --since only the new output is searched. With --follow (-f) it streams instead, from the start of the logs (or --since) until the job ends (or --until): one JSON object per line (NDJSON; with --yaml, a YAML stream of the same objects, each a document after its ---) - {type: output, stream, data, range} per piece of output as it is written (at most 32 KiB, whole UTF-8 characters), then {type: end, state, exit_code, signal, cursor, and output_lost when output was lost}. A job run with --retry is followed through every attempt: {type: attempt, attempt} comes before a later attempt's output (and first, when the follow begins on a later run), whose ranges are offsets in that attempt's own logs, from 0; the end's cursor is the last attempt's. It ends early when its reader goes (stdout a closed pipe). With --raw the bytes themselves are written, stdout's to stdout and stderr's to stderr, and nothing else but a line [agent-exec: attempt N] on stderr before a later attempt's bytes. These two modes are the exceptions to one document per call; an error before streaming starts is still one error document.",
    flags: &[
        Flag::value("tail-lines", "N", Ty::U64, "Lines to keep from the end of each log (0 = all in the byte window); with --grep, matches kept per stream (0 = no count limit). Also --lines").default("50").also("lines"),
        Flag::value("max-bytes", "BYTES", Ty::U64, "Most bytes read from the end of each log; with --since, from the cursor on; with --grep, most bytes of line text per stream").default("65536"),
        Flag::value("since", "CURSOR", Ty::Str, "Return only the output written after this cursor (from an earlier answer's cursor field); with --grep, a line the cursor falls inside is matched whole but only through a match that ends after the cursor"),
        Flag::value("grep", "PATTERN", Ty::Str, "Return the lines matching PATTERN (matches: stream, line, offset) instead of text"),
        Flag::value("grep-type", "TYPE", Ty::Choice, "How --grep matches: substring, or a regex (regex-lite syntax)").default("contains").choices(&["contains", "regex"]),
        Flag::value("output-stream", "STREAM", Ty::Choice, "Which stream --grep searches").default("either").choices(&["stdout", "stderr", "either"]),
        Flag::switch("follow", "Stream the output as it is written, as NDJSON (one object per line), until the job ends").short('f'),
        Flag::switch("raw", "With --follow (implied): write the output bytes themselves, stdout to stdout and stderr to stderr, nothing else").cli_only(),
        Flag::value("until", "DURATION", Ty::Duration, "With --follow: stop after this long even if the job still runs (default: no limit)"),
    ],
    pos: &[JOB_ID],
    conflicts: &[("follow", "grep"), ("raw", "grep")],
    hidden: false,
    exec: cmd::tail::exec,
    examples: &["agent-exec tail --tail-lines 20 01JABCDEF0", "agent-exec tail --since \"$CURSOR\" 01JABCDEF0", "agent-exec tail --grep 'error\\[E[0-9]+\\]' --grep-type regex 01JABCDEF0", "agent-exec tail --follow 01JABCDEF0"],
};

static WAIT_CMD: Cmd = Cmd {
    name: "wait",
    alias: None,
    about: "Block until a job (or several) ends or a deadline passes",
    long_about: "Returns as soon as the job is terminal, or after --until seconds with its current state (not an error). Given several job ids, it waits for all of them (--all, the default) or for the first to end (--any), within one deadline for the whole call, and answers with jobs: one entry per id, in the order given, each as a wait of that job alone would describe it (and, with --any, first: the id that ended first). The job itself is not affected; use run --timeout to limit it. With --output PATTERN it also returns as soon as a line of output matches (at once if one was already written: the output written before the call is searched for up to a second past --until, which is all of a log of hundreds of MB; from --since on when given): the answer then carries matched (stream, line, offset); for a job run with --retry, the lines of every later attempt too (offset in the log of the attempt that printed the line). The logs are read for this, not the job slowed: the wait wakes on each write (inotify), scans only the new bytes, and an unfinished last line waits for its newline unless the job has ended. The answer carries the same output as run's: the head of each log (--max-bytes), its end when the head does not reach it (--tail-bytes), and a cursor for tail --since.",
    flags: &[
        Flag::value("until", "DURATION", Ty::Duration, "Deadline for waiting (500ms, 1.5s, 2m; a bare number is seconds)").default("30"),
        Flag::switch("forever", "Wait with no deadline"),
        Flag::value("poll", "DURATION", Ty::Duration, "Accepted for compatibility and ignored: waiting wakes on events"),
        MAX_BYTES,
        TAIL_BYTES,
        Flag::value("output", "PATTERN", Ty::Str, "Also return as soon as a line of output matches PATTERN (readiness); the answer's matched field names it"),
        Flag::value("output-match-type", "TYPE", Ty::Choice, "How --output matches: substring, or a regex (regex-lite syntax)").default("contains").choices(&["contains", "regex"]),
        Flag::value("output-stream", "STREAM", Ty::Choice, "Which stream --output searches").default("either").choices(&["stdout", "stderr", "either"]),
        Flag::value("since", "CURSOR", Ty::Str, "Search for --output only in the output written after this cursor (default: from the start of the logs); a line the cursor falls inside is matched whole but only through a match that ends after the cursor"),
        Flag::switch("all", "With several job ids: answer when all of them have ended (the default)"),
        Flag::switch("any", "With several job ids: answer when the first of them ends"),
    ],
    pos: &[Pos {
        name: "JOB_ID",
        required: true,
        rest: false,
        many: true,
        jobs: Some(JobFilter::Waitable),
        values: &[],
        help: "Job id (full ULID or a unique prefix, case-insensitive); several to wait for more than one job",
        bytes: false,
    }],
    conflicts: &[("until", "forever"), ("all", "any")],
    hidden: false,
    exec: cmd::wait::exec,
    examples: &["agent-exec wait --until 60 01JABCDEF0", "agent-exec wait --output 'Listening on' --until 30 01JABCDEF0", "agent-exec wait --any --until 60 01JABCDEF0 01JABCDEF1"],
};

static KILL: Cmd = Cmd {
    name: "kill",
    alias: None,
    about: "Signal a job's process group",
    long_about: "Sends the signal to the job's whole process group (then SIGCONT, unless the signal is CONT, STOP, TSTP, TTIN or TTOU, so that a stopped job acts on it) and watches up to 3 s for the outcome the supervisor records. A job that already ended is reported as it is; processes it left in its group are still signalled, and with none left nothing is sent.",
    flags: &[
        Flag::value("signal", "SIGNAL", Ty::Signal, "Signal name or number: TERM, SIGTERM, 15, INT, KILL, HUP, QUIT, USR1, USR2, STOP, CONT, STKFLT, RTMIN, RTMIN+n, RTMAX-n, RTMAX, ...").default("TERM"),
        Flag::switch("no-wait", "Do not watch for the outcome"),
    ],
    pos: &[job_pos(JobFilter::Killable)],
    conflicts: &[],
    hidden: false,
    exec: cmd::kill::exec,
    examples: &["agent-exec kill --signal KILL 01JABCDEF0"],
};

static RESTART: Cmd = Cmd {
    name: "restart",
    alias: None,
    about: "Run a job again under the same id, keeping its earlier runs",
    long_about: "Relaunches the job from its stored definition (command, cwd, --env values, stdin; env files are read again) under the same id, then waits like run. A running job is first sent --signal (TERM) and, if it has not ended after --kill-after, SIGKILL; it must be gone (its supervisor, once it has delivered that run's notifications, and every process of its group) before the new run starts. The previous run's result and logs are kept in <job>/runs/<attempt>/ and listed by status as previous_runs (the last [restart] keep_runs, default 5); attempt counts the runs. A created job is started, as start would.",
    flags: &[
        Flag::value("signal", "SIGNAL", Ty::Signal, "Signal for a running job: TERM, INT, HUP, KILL, ...").default("TERM"),
        Flag::value("kill-after", "DURATION", Ty::Duration, "SIGKILL the running job's group if it has not ended this long after --signal").default("5s"),
        WAIT, UNTIL, FOREVER, NO_WAIT, MAX_BYTES, TAIL_BYTES, NO_AUTO_GC, AUTO_GC_OLDER_THAN, AUTO_GC_MAX_JOBS, AUTO_GC_MAX_BYTES,
    ],
    pos: &[job_pos(JobFilter::All)],
    conflicts: &[("until", "forever")],
    hidden: false,
    exec: cmd::restart::exec,
    examples: &["agent-exec restart 01JABCDEF0", "agent-exec restart --signal INT --kill-after 2s --no-wait 01JABCDEF0"],
};

static SEND: Cmd = Cmd {
    name: "send",
    alias: None,
    about: "Write to an interactive job's stdin and read what it answers",
    long_about: "Writes TEXT exactly as given (or --file's bytes) to the stdin of a job started with -i or --tty, then watches for --yield (default 250 ms, less if the job ends) and answers with the output written after the send began, bytes_written (what reached the job's stdin), stdin_open and attempt (the run the output is from: a --retry run that ends during the yield still answers with its own output). Between two --retry runs a send is invalid_state, retryable. --eof closes the job's stdin after writing (on a terminal: sends ^D); later sends are stdin_closed. What was sent is appended to stdin.log unless --no-record.",
    flags: &[
        Flag::switch("newline", "Append a newline to TEXT"),
        Flag::value("file", "PATH", Ty::Path, "Send this regular file's bytes instead of TEXT (-: the caller's stdin, read to its end)").cli_only(),
        Flag::switch("eof", "Close the job's stdin after writing (alone: just close it)"),
        Flag::value("yield", "DURATION", Ty::Duration, "How long to watch for the job's answer (250ms, 1.5s, ...)").default("250ms").http_ms("yield_ms"),
        Flag::switch("no-record", "Do not append what is sent to stdin.log"),
        Flag::value("max-bytes", "BYTES", Ty::U64, "Most bytes of each stream's new output in the answer").default("65536"),
    ],
    pos: &[
        job_pos(JobFilter::Running),
        Pos {
            name: "TEXT",
            required: false,
            rest: false,
            many: false,
            jobs: None,
            values: &[],
            help: "Bytes to write, exactly as given (see --newline)",
            bytes: true,
        },
    ],
    conflicts: &[("file", "newline")],
    hidden: false,
    exec: cmd::send::exec,
    examples: &["agent-exec send --newline 01JABCDEF0 'print(1+1)'", "agent-exec send --eof 01JABCDEF0"],
};

/// The words of the internal commands (`_supervise`, `_notify`, `_gc`): the
/// jobs root and the job's id, as the launcher passes them.
const ROOT_AND_ID: &[Pos] = &[
    Pos {
        name: "ROOT",
        required: true,
        rest: false,
        many: false,
        jobs: None,
        values: &[],
        help: "Jobs root",
        bytes: false,
    },
    Pos {
        name: "JOB_ID",
        required: true,
        rest: false,
        many: false,
        jobs: None,
        values: &[],
        help: "Job id",
        bytes: false,
    },
];

static SUPERVISE: Cmd = Cmd {
    name: "_supervise",
    alias: None,
    about: "Internal: the per-job supervisor",
    long_about: "",
    flags: &[
        Flag::value(
            "gc",
            "SPEC",
            Ty::Str,
            "Auto-GC settings to run beside the job",
        ),
        Flag::value(
            "sink-timeout",
            "DURATION",
            Ty::Duration,
            "Time limit of command sinks (0 = none)",
        ),
        Flag::value(
            "pause-ms",
            "MS",
            Ty::U64,
            "Be the stand-in of a job between --retry runs: sleep, exit",
        ),
        Flag::value(
            "umask",
            "OCTAL",
            Ty::Str,
            "The caller's umask, for the workload and the sinks",
        ),
    ],
    pos: ROOT_AND_ID,
    conflicts: &[],
    hidden: true,
    exec: crate::supervisor::exec,
    examples: &[],
};

static NOTIFY_LOST: Cmd = Cmd {
    name: "_notify",
    alias: None,
    about: "Internal: deliver the job.finished of a job whose supervisor was lost",
    long_about: "",
    flags: &[Flag::value(
        "attempt",
        "N",
        Ty::U64,
        "The run whose end was recorded (nothing is sent for another)",
    )],
    pos: ROOT_AND_ID,
    conflicts: &[],
    hidden: true,
    exec: crate::notify::exec_lost,
    examples: &[],
};

static AUTO_GC: Cmd = Cmd {
    name: "_gc",
    alias: None,
    about: "Internal: the auto-GC sweep that follows a launch",
    long_about: "",
    flags: &[
        Flag::value(
            "gc",
            "SPEC",
            Ty::Str,
            "Auto-GC settings, as the launch resolved them",
        ),
        Flag::switch(
            "wait-turn",
            "Wait for the sweep that holds the guard, then sweep (the guard's seat is held)",
        ),
    ],
    pos: ROOT_AND_ID,
    conflicts: &[],
    hidden: true,
    exec: crate::gc::exec_auto,
    examples: &[],
};

static DELETE: Cmd = Cmd {
    name: "delete",
    alias: Some("rm"),
    about: "Remove jobs, or every finished job of this directory",
    long_about: "delete JOB_ID... removes the given jobs, none of which may be running. delete --all removes the finished (exited, killed, failed) jobs whose working directory is the current one (and created ones with --include-created); running jobs, jobs still being read, and jobs with live processes are skipped and reported.",
    flags: &[
        Flag::switch("all", "Every finished job whose working directory is the current one"),
        Flag::switch("include-created", "With --all: remove created (never started) jobs too"),
        Flag::switch("dry-run", "Report what would be removed; remove nothing"),
    ],
    pos: &[Pos { name: "JOB_ID", required: false, rest: false, many: true, jobs: Some(JobFilter::Terminal), values: &[], help: "Job ids (not with --all)", bytes: false }],
    conflicts: &[],
    hidden: false,
    exec: cmd::delete::exec,
    examples: &["agent-exec delete --all --dry-run"],
};

static GC: Cmd = Cmd {
    name: "gc",
    alias: None,
    about: "Delete old finished jobs from the whole jobs root",
    long_about: "A finished job is deleted when it breaks any rule: finished longer ago than --older-than, beyond the newest --max-jobs finished jobs, or needed (oldest first) to bring finished jobs' bytes under --max-bytes. Created and running jobs are never touched.",
    flags: &[
        Flag::value("older-than", "DURATION", Ty::Duration, "Retention window: 30d, 24h, 60m, 1w, 1.5s, 500ms; a bare number is seconds").default("30d"),
        Flag::value("max-jobs", "N", Ty::U64, "Keep at most the newest N finished jobs"),
        Flag::value("max-bytes", "BYTES", Ty::U64, "Delete oldest finished jobs until their total size is at most BYTES (one that cannot be removed now is passed over, its bytes still counted)"),
        Flag::switch("dry-run", "Report what would be deleted; delete nothing"),
    ],
    pos: &[],
    conflicts: &[],
    hidden: false,
    exec: cmd::gc::exec,
    examples: &["agent-exec gc --older-than 7d --dry-run"],
};

static SCHEMA: Cmd = Cmd {
    name: "schema",
    alias: None,
    about: "Print the JSON Schema of every response",
    long_about: "Prints the JSON Schema (draft-07) embedded in the binary, describing the envelope, every response type and the notification events.",
    flags: &[],
    pos: &[],
    conflicts: &[],
    hidden: false,
    exec: cmd::schema::exec,
    examples: &["agent-exec schema"],
};

static LIST: Cmd = Cmd {
    name: "list",
    alias: None,
    about: "List jobs, newest first (this directory's by default)",
    long_about: "Lists jobs whose working directory is the current one (or --cwd DIR, or --all), newest created first, filtered by --state and --tag.",
    flags: &[
        LIMIT,
        Flag::value("state", "STATE", Ty::Choice, "Only jobs in this state").choices(&["created", "queued", "running", "exited", "killed", "failed", "unknown"]),
        LIST_CWD,
        ALL,
        TAG_FILTER,
    ],
    pos: &[],
    conflicts: &[("cwd", "all")],
    hidden: false,
    exec: cmd::list::exec,
    examples: &["agent-exec list --all --tag ci", "agent-exec list --state running --limit 0"],
};

static PS: Cmd = Cmd {
    name: "ps",
    alias: None,
    about: "List running and queued jobs",
    long_about: "Like 'list', but only running and queued jobs (a queued job with its queue_position or waiting_for), with the same filters except --state.",
    flags: &[LIMIT, LIST_CWD, ALL, TAG_FILTER],
    pos: &[],
    conflicts: &[("cwd", "all")],
    hidden: false,
    exec: cmd::list::exec_ps,
    examples: &["agent-exec ps --all"],
};

static TAG_SET: Cmd = Cmd {
    name: "tag set",
    alias: None,
    about: "Replace a job's tags",
    long_about: "Replaces all tags of a job (any state) with the given ones, deduplicated in first-seen order; no --tag clears them.",
    flags: &[TAG],
    pos: &[JOB_ID],
    conflicts: &[],
    hidden: false,
    exec: cmd::tag_set::exec,
    examples: &["agent-exec tag set 01JABCDEF0 --tag release --tag approved"],
};

static INSTALL_SKILLS: Cmd = Cmd {
    name: "install-skills",
    alias: None,
    about: "Install the built-in agent-exec skill for coding agents",
    long_about: "Writes the embedded agent-exec skill to .agents/skills/agent-exec (or .claude/skills with --claude), here or in your home directory (--global), and records it in .skill-lock.json.",
    flags: &[
        Flag::switch("claude", "Install under .claude instead of .agents"),
        Flag::switch("global", "Install under your home directory instead of the current one"),
    ],
    pos: &[],
    conflicts: &[],
    hidden: false,
    exec: cmd::install_skills::exec,
    examples: &["agent-exec install-skills --claude"],
};

static NOTIFY_SET: Cmd = Cmd {
    name: "notify set",
    alias: None,
    about: "Change a job's notification settings",
    long_about: "Updates the stored notification settings of a job in any state; flags not given keep their stored values. Metadata only: no sink runs now, even for a finished job. A running job applies output-match changes to lines printed after this returns; earlier output is never replayed. An empty value removes a setting: --command '' the job.finished command, --output-command '' the match command, --output-file '' the match file, --output-pattern '' (alone) output-match as a whole. Any other --output-* flag needs a pattern (given now or stored), else it is a usage_error rather than a setting silently dropped.",
    flags: &[
        Flag::value("command", "COMMAND", Ty::Cmd, "Shell command for the job.finished event (replaces the stored one; '' removes it)"),
        OUTPUT_PATTERN,
        OUTPUT_MATCH_TYPE,
        OUTPUT_STREAM,
        OUTPUT_COMMAND,
        OUTPUT_FILE,
    ],
    pos: &[JOB_ID],
    conflicts: &[],
    hidden: false,
    exec: cmd::notify_set::exec,
    examples: &["agent-exec notify set 01JABCDEF0 --output-pattern ERROR --output-file /tmp/errors.ndjson"],
};

static COMPLETIONS: Cmd = Cmd {
    name: "completions",
    alias: None,
    about: "Print a shell completion script",
    long_about: "Prints a completion script for bash, zsh, fish or PowerShell (plain text, not JSON). It completes subcommands, flags, flag values (fixed choices, signal names, file names) and job ids (the current directory's jobs, or every job of the root when the directory has none), filtered by state: start offers created jobs, wait created, queued and running ones, kill queued and running ones, send running ones, delete finished ones (none after --all), the others all; --after and --after-ok every job's id, whatever its directory. The candidates come from agent-exec itself, through a hidden subcommand; no environment variable is involved.",
    flags: &[],
    pos: &[Pos { name: "SHELL", required: true, rest: false, many: false, jobs: None, values: &["bash", "zsh", "fish", "powershell"], help: "bash, zsh, fish or powershell", bytes: false }],
    conflicts: &[],
    hidden: false,
    exec: cmd::completions::exec,
    examples: &["agent-exec completions bash >> ~/.bash_completion"],
};

static SERVE: Cmd = Cmd {
    name: "serve",
    alias: None,
    about: "Serve the job API over HTTP/1.1",
    long_about: "Serves /health, /exec, /status, /tail, /wait, /kill, /restart, /send and /list. Prints one 'serve' document when listening. With AGENT_EXEC_SERVE_TOKEN set, every route but /health needs 'Authorization: Bearer <token>'. A non-loopback bind needs --insecure and the token.",
    flags: &[
        Flag::value("bind", "HOST:PORT", Ty::Str, "Address to listen on (an IP literal and a port)").default("127.0.0.1:19263"),
        Flag::value("port", "PORT", Ty::Port, "Listen on 127.0.0.1:PORT, PORT 0 to 65535 (0 picks a free port)"),
        Flag::switch("insecure", "Allow a non-loopback bind (needs AGENT_EXEC_SERVE_TOKEN too)"),
        Flag::value("allow-origin", "ORIGIN", Ty::Str, "Answer CORS requests from exactly this origin (scheme://host[:port]; host lower-cased and a default port dropped, as browsers send it)"),
    ],
    pos: &[],
    conflicts: &[("bind", "port")],
    hidden: false,
    exec: cmd::serve::exec,
    examples: &["agent-exec serve --port 0"],
};

static MCP: Cmd = Cmd {
    name: "mcp",
    alias: None,
    about: "Serve the job loop as MCP tools over stdio",
    long_about: "Speaks the Model Context Protocol (JSON-RPC 2.0, one message per line) on stdin and stdout, with the tools run, status, tail, wait, kill, send, list, delete and restart: each takes its command's flags under their HTTP names (until and timeout in seconds) and answers with the document the command prints as structuredContent. Waits are bounded by AGENT_EXEC_MCP_DEFAULT_UNTIL_SECONDS (10, when a call gives no until) and AGENT_EXEC_MCP_MAX_UNTIL_SECONDS (50, a cap). At EOF on stdin it answers every request already read, then ends; jobs go on.",
    flags: &[],
    pos: &[],
    conflicts: &[],
    hidden: false,
    exec: cmd::mcp::exec,
    examples: &["agent-exec mcp", "claude mcp add agent-exec -- agent-exec mcp"],
};

static COMPLETE: Cmd = Cmd {
    name: "__complete",
    alias: None,
    about: "Internal: completion candidates for the shell scripts",
    long_about: "",
    flags: &[],
    pos: &[Pos {
        name: "WORDS",
        required: false,
        rest: true,
        many: false,
        jobs: None,
        values: &[],
        help: "Words of the command line",
        bytes: false,
    }],
    conflicts: &[],
    hidden: true,
    exec: cmd::completions::exec_complete,
    examples: &[],
};

static GEN_MAN: Cmd = Cmd {
    name: "_gen-man",
    alias: None,
    about: "Internal: write the man pages into a directory",
    long_about: "",
    flags: &[],
    pos: &[Pos {
        name: "DIR",
        required: true,
        rest: false,
        many: false,
        jobs: None,
        values: &[],
        help: "Output directory",
        bytes: false,
    }],
    conflicts: &[],
    hidden: true,
    exec: cmd::completions::exec_gen_man,
    examples: &[],
};

pub const ABOUT: &str =
    "Non-interactive agent job runner: runs commands as detached background jobs and prints one JSON document per call";

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

/// A successful parse: which command, and its validated values.
#[derive(Debug)]
pub struct Matches {
    pub cmd: &'static Cmd,
    pub root: Option<String>,
    pub yaml: bool,
    /// `--table` (list, ps, status only; see `table`).
    pub table: bool,
    pub verbose: u8,
    values: Vec<(&'static str, String)>,
    pub positionals: Vec<String>,
    /// The bytes of positionals taken as bytes (`Pos::bytes`), by index;
    /// `positionals` holds their lossy text.
    raw: Vec<(usize, Vec<u8>)>,
    pub rest: Vec<String>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cmd({})", self.name)
    }
}

impl Matches {
    /// Was the flag given at all (switch, or any value)?
    pub fn has(&self, long: &str) -> bool {
        self.values.iter().any(|(k, _)| *k == long)
    }
    /// The last value given, or the table default.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .map(|(_, v)| v.as_str())
            .or_else(|| self.cmd.flag(long).and_then(|f| f.default))
    }
    /// Every value given for a repeatable flag, in order.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| *k == long)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    /// An integer flag (validated while parsing), or its default.
    pub fn u64(&self, long: &str) -> Option<u64> {
        self.get(long).and_then(|v| v.parse().ok())
    }
    /// A duration flag (validated while parsing) in milliseconds, or its
    /// default; saturated values mean "never" (see time::deadline_after).
    pub fn duration_ms(&self, long: &str) -> Option<u64> {
        self.get(long)
            .and_then(|v| crate::time::parse_duration_ms(v).ok())
    }
    /// A boolean flag: `Some(true)` for a bare switch.
    pub fn bool(&self, long: &str) -> Option<bool> {
        self.get(long).map(|v| v.eq_ignore_ascii_case("true"))
    }
    pub fn pos(&self, i: usize) -> Option<&str> {
        self.positionals.get(i).map(|s| s.as_str())
    }
    /// A positional's bytes: as given on the command line for one taken
    /// as bytes (`Pos::bytes`), else its text's.
    pub fn pos_bytes(&self, i: usize) -> Option<&[u8]> {
        match self.raw.iter().find(|(at, _)| *at == i) {
            Some((_, b)) => Some(b),
            None => self.pos(i).map(str::as_bytes),
        }
    }
}

/// What the command line asks for.
pub enum Parsed {
    Run(Box<Matches>),
    Help(String),
    Version,
}

/// Scan for `--yaml` before any `--`, so that even a usage error can be
/// rendered the way the caller asked (D5), beside `--table` too (that
/// pair is refused, in YAML).
pub fn wants_yaml(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--yaml")
}

pub fn find(name: &str) -> Option<&'static Cmd> {
    COMMANDS
        .iter()
        .copied()
        .find(|c| c.name == name || c.alias == Some(name))
}

/// Group words such as `tag` in `tag set`.
fn is_group(word: &str) -> bool {
    COMMANDS
        .iter()
        .any(|c| c.name.split_once(' ').is_some_and(|(g, _)| g == word))
}

fn utf8(v: OsString) -> Result<String> {
    v.into_string()
        .map_err(|v| Error::usage(format!("argument is not valid UTF-8: {v:?}")))
}

fn lexopt_err(e: lexopt::Error) -> Error {
    Error::usage(e.to_string())
}

/// Where on the command line a global flag was given: before any
/// subcommand word, after a group word (`tag`), or after the subcommand.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Level {
    Top,
    Group,
    Command,
}

/// Parse `args` (without argv[0]).
pub fn parse(args: Vec<OsString>) -> Result<Parsed> {
    let mut p = lexopt::Parser::from_args(args);
    let mut cmd: Option<&'static Cmd> = None;
    let mut group: Option<String> = None;
    let mut help_words: Option<Vec<String>> = None;
    let mut root = None;
    // The global flags given so far, each with its level.
    let mut given: Vec<(&str, Level)> = Vec::new();
    let mut yaml = false;
    let mut table = false;
    let mut verbose = 0u8;
    let mut values: Vec<(&'static str, String)> = Vec::new();
    let mut positionals = Vec::new();
    let mut raw = Vec::new();
    let mut rest = Vec::new();
    let mut want_help = false;

    // Help is answered where it is met, as clap does: what follows
    // `--help` (`--help --bogus`) is not judged.
    let mut read = || -> Result<Option<Parsed>> {
        while let Some(arg) = p.next().map_err(lexopt_err)? {
            use lexopt::Arg::{Long, Short, Value};
            match arg {
                Short('h') | Long("help") => want_help = true,
                Short('V') | Long("version") if cmd.is_none() && group.is_none() => {
                    // As every switch: `--version=1` (or `-V=1`) is no
                    // version request. `-Vv` is `-V -v`: what follows a short
                    // one in its cluster are more switches, not its value.
                    let more_switches = |v: &std::ffi::OsStr| {
                        !v.is_empty() && v.as_encoded_bytes().iter().all(|b| b"vhV".contains(b))
                    };
                    let short = matches!(arg, Short(_));
                    match p.optional_value() {
                        Some(v) if short && more_switches(&v) => {}
                        // `-Vx`: the flag the cluster goes on with is named,
                        // as in any other cluster.
                        Some(v) if short => {
                            let b = v.as_encoded_bytes();
                            let bad = b.iter().find(|c| !b"vhV".contains(c));
                            match bad {
                                Some(b'-') => return Err(Error::usage(
                                    "unexpected '-' inside a cluster of short flags (as in '-f-')",
                                )),
                                Some(&c) if c.is_ascii_alphabetic() => {
                                    return Err(unknown_flag(&format!("-{}", c as char), None))
                                }
                                _ => return Err(Error::usage("'--version' takes no value")),
                            }
                        }
                        Some(_) => return Err(Error::usage("'--version' takes no value")),
                        None => {}
                    }
                    return Ok(Some(Parsed::Version));
                }
                Short('v') | Long("verbose") => verbose = verbose.saturating_add(1),
                // As 0.2.3: each global flag once per level. `--root` given
                // before the subcommand and after it: the subcommand's (the
                // later level) wins; twice at one level is an error, as for
                // any one-value flag, never a silent "last one wins".
                Long(name @ ("yaml" | "table" | "root")) => {
                    let level = if cmd.is_some() {
                        Level::Command
                    } else if group.is_some() {
                        Level::Group
                    } else {
                        Level::Top
                    };
                    let synopsis = match name {
                        "root" => "--root <PATH>",
                        "yaml" => "--yaml",
                        _ => "--table",
                    };
                    if given.contains(&(synopsis, level)) {
                        return Err(Error::usage(match cmd {
                            Some(c) => format!(
                                "the argument '{synopsis}' cannot be used multiple times (in 'agent-exec {}')",
                                c.name
                            ),
                            None => format!("the argument '{synopsis}' cannot be used multiple times"),
                        }));
                    }
                    given.push((synopsis, level));
                    match name {
                        "yaml" => yaml = true,
                        "table" => table = true,
                        _ => {
                            let v = flag_value(&mut p, "--root <PATH>")?;
                            if v.is_empty() {
                                return Err(Error::usage("--root must not be empty"));
                            }
                            root = Some(v);
                        }
                    }
                }
                Long(name) => {
                    let Some(c) = cmd else {
                        return Err(match &group {
                            // `tag --bogus`: the group's help names its
                            // subcommands, as `tag set --bogus` names set's.
                            Some(g) => Error::usage(format!(
                                "unexpected argument '--{name}' for 'agent-exec {g}'; see 'agent-exec {g} --help'"
                            )),
                            None => unknown_flag(&format!("--{name}"), None),
                        });
                    };
                    let Some(flag) = c.flag(name) else {
                        return Err(unknown_flag(&format!("--{name}"), Some(c)));
                    };
                    read_flag(&mut p, c, flag, false, &mut values)?;
                }
                Short(ch) => {
                    let flag = cmd.and_then(|c| c.flags.iter().find(|f| f.short == Some(ch)));
                    match (cmd, flag) {
                        (Some(c), Some(f)) => read_flag(&mut p, c, f, true, &mut values)?,
                        // A '-' inside a cluster (`-f-`) is no flag `--`.
                        _ if ch == '-' => {
                            return Err(Error::usage(
                                "unexpected '-' inside a cluster of short flags (as in '-f-')",
                            ))
                        }
                        _ => return Err(unknown_flag(&format!("-{ch}"), cmd)),
                    }
                }
                Value(v) => {
                    let as_bytes = cmd
                        .and_then(|c| next_pos(c, positionals.len()))
                        .is_some_and(|p| p.bytes);
                    if as_bytes && help_words.is_none() {
                        use std::os::unix::ffi::OsStringExt;
                        let b = v.into_vec();
                        positionals.push(String::from_utf8_lossy(&b).into_owned());
                        raw.push((positionals.len() - 1, b));
                        continue;
                    }
                    let v = utf8(v)?;
                    if let Some(words) = help_words.as_mut() {
                        words.push(v);
                        continue;
                    }
                    match cmd {
                        None => {
                            if let Some(g) = group.take() {
                                let full = format!("{g} {v}");
                                cmd = Some(find(&full).ok_or_else(|| {
                                    Error::usage(format!("unrecognized subcommand '{full}'"))
                                })?);
                            } else if v == "help" {
                                help_words = Some(Vec::new());
                            } else if is_group(&v) {
                                group = Some(v);
                            } else {
                                cmd = Some(find(&v).ok_or_else(|| {
                                    Error::usage(format!("unrecognized subcommand '{v}'"))
                                })?);
                            }
                        }
                        Some(c) => match next_pos(c, positionals.len()) {
                            Some(pos) if pos.rest => {
                                rest.push(v);
                                for raw in p.raw_args().map_err(lexopt_err)? {
                                    rest.push(utf8(raw)?);
                                }
                                break;
                            }
                            Some(pos) => {
                                if !pos.values.is_empty() && !pos.values.contains(&v.as_str()) {
                                    return Err(Error::usage(format!(
                                        "invalid value '{v}' for '<{}>': possible values: {}",
                                        pos.name,
                                        pos.values.join(", ")
                                    )));
                                }
                                positionals.push(v)
                            }
                            None => {
                                return Err(Error::usage(format!(
                                    "unexpected argument '{v}' for '{}'",
                                    c.name
                                )))
                            }
                        },
                    }
                }
            }
        }
        Ok(None)
    };
    match read() {
        Ok(Some(done)) => return Ok(done),
        Ok(None) => {}
        Err(_) if want_help => {}
        Err(e) => return Err(e),
    }

    if let Some(words) = help_words {
        // `help --help` (or `-h`): help's own help, as `help help`, and
        // as `SUB --help` is SUB's.
        if want_help && words.is_empty() {
            return Ok(Parsed::Help(help_help()));
        }
        return help_for_words(&words).map(Parsed::Help);
    }
    if want_help {
        return Ok(Parsed::Help(match (cmd, group) {
            (Some(c), _) => command_help(c),
            (None, Some(g)) => group_help(&g),
            (None, None) => top_help(),
        }));
    }
    let Some(cmd) = cmd else {
        return Err(match group {
            Some(g) => Error::usage(format!(
                "'{g}' requires a subcommand; see 'agent-exec {g} --help'"
            )),
            None => Error::usage("no subcommand given; see 'agent-exec --help'"),
        });
    };
    for (i, pos) in cmd.pos.iter().enumerate() {
        let given = if pos.rest {
            !rest.is_empty()
        } else {
            positionals.len() > i
        };
        if pos.required && !given {
            let shown = if pos.rest {
                format!("<{}>...", pos.name)
            } else {
                format!("<{}>", pos.name)
            };
            return Err(Error::usage(format!(
                "the following required arguments were not provided: {shown}"
            )));
        }
    }
    for (a, b) in cmd.conflicts {
        if values.iter().any(|(k, _)| k == a) && values.iter().any(|(k, _)| k == b) {
            return Err(Error::usage(format!(
                "the argument '--{a}' cannot be used with '--{b}'"
            )));
        }
    }
    if let Some(a) = forever_not_waiting(values.iter().map(|(k, v)| (*k, v.as_str()))) {
        return Err(Error::usage(format!(
            "the argument '--{a}' cannot be used with '--forever'"
        )));
    }
    if let Some((a, b)) = needs_another(cmd, &values) {
        return Err(Error::usage(format!("--{a} needs --{b}")));
    }
    check_together(cmd, &values, false).map_err(|e| about_read_of(cmd, &positionals, e))?;
    Ok(Parsed::Run(Box::new(Matches {
        cmd,
        root,
        yaml,
        table,
        verbose,
        values,
        positionals,
        raw,
        rest,
    })))
}

/// The positional that the word after `given` positionals of `c` is.
fn next_pos(c: &'static Cmd, given: usize) -> Option<&'static Pos> {
    c.pos
        .get(given)
        .or_else(|| c.pos.last().filter(|p| p.many && given >= c.pos.len()))
}

/// A duration parameter another door gives in whole milliseconds
/// (`yield_ms`). Past u64 they saturate, as every duration does: the
/// command line's `--yield 99999999999999999999` is capped, not refused.
pub fn param_millis(name: &str, v: &str) -> Result<u64> {
    let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    match v.parse() {
        Ok(ms) => Ok(ms),
        Err(_) if digits => Ok(u64::MAX),
        Err(_) => Err(Error::InvalidDuration(format!(
            "parameter {name}: expected milliseconds, got '{v}'"
        ))),
    }
}

/// The same `Matches` the command line would give, from the parameters
/// of another door (an HTTP query or JSON body, an MCP tool call): names
/// from `Flag::http_name`, values checked by the same rules, so every
/// door has the same defaults, types and error codes. `root`: the
/// server's jobs root. A name that is no parameter of `cmd` is
/// `invalid_request`, naming those that are.
pub fn matches_from_params(
    cmd: &'static Cmd,
    root: Option<String>,
    params: &[(String, String)],
    positionals: Vec<String>,
) -> Result<Matches> {
    let mut values: Vec<(&'static str, String)> = Vec::new();
    // Every flag given, a switch given as false too (which sets nothing):
    // `no_wait=true&no_wait=false` is refused as `--no-wait --no-wait` is,
    // not decided by the last one.
    let mut given: Vec<&'static str> = Vec::new();
    for (name, v) in params {
        let Some(flag) = cmd.http_flag(name) else {
            let known: Vec<String> = cmd
                .flags
                .iter()
                .flat_map(|f| [f.http_name(), f.http_also()])
                .flatten()
                .collect();
            return Err(Error::InvalidRequest(if known.is_empty() {
                format!("unknown parameter '{name}': this route takes none")
            } else {
                format!(
                    "unknown parameter '{name}': expected one of {}",
                    known.join(", ")
                )
            }));
        };
        // An empty value is no boolean (`no_wait=` read as true: a client
        // that built it from an empty variable got no-wait); HTTP's bare
        // `?no_wait` comes here as "true" (`http_params`).
        let truth = |v: &str| {
            switch_value(v).ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "parameter {name}: expected true or false (or 1 or 0), got '{v}'"
                ))
            })
        };
        let value = match (flag.kind, flag.http) {
            (Kind::Switch, _) => truth(v)?.then(|| "true".to_string()),
            (Kind::OptBool, _) => Some(truth(v)?.to_string()),
            (Kind::Value(Ty::Duration), Http::Millis(_)) => {
                Some(format!("{}ms", param_millis(name, v)?))
            }
            (Kind::Value(ty), _) => {
                // The command line's own check: a value of the wrong shape
                // is that door's `invalid_request`, with the command
                // line's reason (the specific codes, invalid_duration and
                // the like, stay as they are).
                // Those name the parameter too: a call may carry several
                // durations, and the reason alone named none of them.
                check_value(flag, ty, v).map_err(|e| match e {
                    Error::Usage(msg) => Error::InvalidRequest(format!(
                        "parameter {name}: invalid value '{v}': {}",
                        value_reason(flag, v, &msg)
                    )),
                    other => other.about(&format!("parameter {name}")),
                })?;
                Some(v.clone())
            }
        };
        if !flag.multi && given.contains(&flag.long) {
            return Err(Error::InvalidRequest(format!(
                "parameter {name} given more than once"
            )));
        }
        given.push(flag.long);
        values.extend(value.map(|v| (flag.long, v)));
    }
    for (a, b) in cmd.conflicts {
        if values.iter().any(|(k, _)| k == a) && values.iter().any(|(k, _)| k == b) {
            return Err(Error::InvalidRequest(format!(
                "{} and {} cannot be used together",
                a.replace('-', "_"),
                b.replace('-', "_")
            )));
        }
    }
    // As on the command line: not waiting and `forever` contradict.
    if let Some(a) = forever_not_waiting(values.iter().map(|(k, v)| (*k, v.as_str()))) {
        return Err(Error::InvalidRequest(format!(
            "{} and forever cannot be used together",
            a.replace('-', "_")
        )));
    }
    if let Some((a, b)) = needs_another(cmd, &values) {
        let name = |long| cmd.flag(long).and_then(Flag::http_name).unwrap_or_default();
        return Err(Error::InvalidRequest(format!(
            "{} needs {}",
            name(a),
            name(b)
        )));
    }
    // As on the command line: a bad pattern or cursor is refused before
    // the route looks up its job, naming it as given.
    check_together(cmd, &values, true).map_err(|e| about_read_of(cmd, &positionals, e))?;
    Ok(Matches {
        cmd,
        root,
        yaml: false,
        table: false,
        verbose: 0,
        values,
        positionals,
        raw: Vec::new(),
        rest: Vec::new(),
    })
}

/// Why `check_value` refused `v`: its message without the part that
/// names the flag as the command line does (`--limit <N>`), which
/// another door's message names as its parameter.
fn value_reason<'a>(flag: &Flag, v: &str, msg: &'a str) -> &'a str {
    let named = format!("invalid value '{v}' for '{}': ", flag.synopsis());
    msg.strip_prefix(named.as_str()).unwrap_or(msg)
}

/// `--no-wait` and `--wait false` are `--until 0`, which `--forever`
/// contradicts: refused as `--until` is, not one of them quietly lost.
/// Which of the two was given with `forever` (as `no-wait` or
/// `wait false`), if any. Shared by the command line and HTTP; MCP,
/// which takes `forever` out first, asks `not_waiting`. Not refused:
/// `--no-wait` with `--until` or `--wait`, which it overrides, as
/// 0.2.3's did (the reference's run flags).
fn forever_not_waiting<'a>(
    values: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Option<&'static str> {
    let forever = values.clone().any(|(k, v)| k == "forever" && flag_on(v));
    forever.then(|| not_waiting(values)).flatten()
}

/// Which of `--no-wait` or `--wait false` is among `values` (flag or
/// parameter names), if either.
pub fn not_waiting<'a>(
    mut values: impl Iterator<Item = (&'a str, &'a str)>,
) -> Option<&'static str> {
    values.find_map(|(k, v)| match k {
        "no-wait" | "no_wait" if flag_on(v) => Some("no-wait"),
        "wait" if !flag_on(v) => Some("wait false"),
        _ => None,
    })
}

/// A boolean's text, the same on every door: `true` or `false` in any
/// case, `1` or `0` (the command line took `TRUE` and not `1`, HTTP and
/// MCP the other way round). None: not a boolean.
pub fn switch_value(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") || v == "1" {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") || v == "0" {
        Some(false)
    } else {
        None
    }
}

/// A switch's value as the doors give it: on unless false or 0.
pub fn flag_on(v: &str) -> bool {
    switch_value(v) != Some(false)
}

/// A flag given without the one it only makes sense with: `(given,
/// missing)`, each door naming them in its own words. Refused rather than
/// ignored, as `--parallel` without `--queue` is: a `--retry-delay`
/// without `--retry` would never pause anything, and `tail --until`
/// without `--follow` (or `--raw`, which implies it) never stops
/// anything, nor does `--grep-type` or `--output-stream` choose anything
/// without `--grep`, nor `wait`'s `--output-match-type` or
/// `--output-stream` without `--output`.
fn needs_another(
    cmd: &Cmd,
    values: &[(&'static str, String)],
) -> Option<(&'static str, &'static str)> {
    let given = |long: &str| values.iter().any(|(k, _)| *k == long);
    let pairs: &[(&'static str, &'static str)] = match cmd.name {
        "tail" => &[
            ("until", "follow"),
            ("grep-type", "grep"),
            ("output-stream", "grep"),
        ],
        // Readiness: a match type, stream or cursor chooses nothing
        // without a pattern (said before a cursor is read: `--since
        // garbage` alone is this, not `invalid_cursor`).
        "wait" => &[
            ("output-match-type", "output"),
            ("output-stream", "output"),
            ("since", "output"),
        ],
        _ => &[("retry-delay", "retry")],
    };
    pairs
        .iter()
        .copied()
        .find(|&(a, b)| given(a) && !given(b) && !(b == "follow" && given("raw")))
}

/// An error of `check_together` is about one job's read (`tail JOB
/// --since`, `wait JOB --output`): it names the job as given (the first
/// id, for `wait A B`), as every error about a job carries
/// `details.job_id` — on every door, so the command line, HTTP and MCP
/// give the same error for the same arguments.
fn about_read_of(cmd: &Cmd, positionals: &[String], e: Error) -> Error {
    match (cmd.pos.first(), positionals.first()) {
        (Some(p), Some(id)) if p.name == "JOB_ID" && !p.rest => e.in_job(id),
        _ => e,
    }
}

/// The checks of a value that need another one (a pattern and its
/// `--*-type`) or that the flag's type cannot make (a cursor's form):
/// still argument checks, so they come before any command looks up its
/// job — `tail --grep '(' --grep-type regex nosuch` is `invalid_pattern`
/// and `tail --since garbage nosuch` `invalid_cursor` (exit 2, D5), as
/// `kill --signal BOGUS nosuch` is `invalid_signal`. Whether a cursor is
/// this job's, and inside its logs, is known only with the job.
/// `door`: for HTTP and MCP, whose messages name the parameter (a call
/// may carry several patterns), `run`'s output pattern included.
fn check_together(cmd: &Cmd, values: &[(&'static str, String)], door: bool) -> Result<()> {
    let get = |long: &str| {
        values
            .iter()
            .rev()
            .find(|(k, _)| *k == long)
            .map(|(_, v)| v.as_str())
    };
    let pairs: &[(&str, &str)] = match door {
        true => &[
            ("grep", "grep-type"),
            ("output", "output-match-type"),
            ("output-pattern", "output-match-type"),
        ],
        false => &[("grep", "grep-type"), ("output", "output-match-type")],
    };
    for &(pattern, ty) in pairs {
        let Some(flag) = cmd.flag(pattern) else {
            continue;
        };
        if let (Some(p), Some("regex")) = (get(pattern), get(ty)) {
            crate::observe::Pattern::new(p, true).map_err(|e| match door {
                true => e.about(&format!(
                    "parameter {}",
                    flag.http_name().unwrap_or_default()
                )),
                false => e,
            })?;
        }
    }
    if let (Some(_), Some(c)) = (cmd.flag("since"), get("since")) {
        crate::cursor::Cursor::check_form(c)?;
    }
    Ok(())
}

fn unknown_flag(flag: &str, cmd: Option<&Cmd>) -> Error {
    match cmd {
        Some(c) => Error::usage(format!(
            "unexpected argument '{flag}' for 'agent-exec {}'; see 'agent-exec {} --help'",
            c.name, c.name
        )),
        None => Error::usage(format!(
            "unexpected argument '{flag}'; see 'agent-exec --help'"
        )),
    }
}

/// The value of a flag: `--f=v` or `--f v`. A separate word that itself
/// looks like a long flag is not taken as a value (`--cwd --timeout 5`
/// is a missing value, not a directory named `--timeout`). For a tag
/// (`tags`), a dash and a letter is a flag too, as 0.2.3's parser has
/// it: `--tag -v` took `-v`, meant as --verbose, for the tag, and such a
/// tag is given as `--tag=-v`. Other values may begin with a dash (a
/// pattern `-yet`, a duration `-1d` that its check refuses).
fn flag_value(p: &mut lexopt::Parser, shown: &str) -> Result<String> {
    utf8(flag_value_os(p, shown, false)?)
}

/// `flag_value` before the UTF-8 check, for a flag whose own error code
/// covers a value that is not text (a cursor: `invalid_cursor`).
fn flag_value_os(p: &mut lexopt::Parser, shown: &str, tags: bool) -> Result<OsString> {
    if let Some(v) = p.optional_value() {
        return Ok(v);
    }
    let missing = || {
        Error::usage(format!(
            "a value is required for '{shown}' but none was supplied"
        ))
    };
    let mut raw = p.try_raw_args().ok_or_else(missing)?;
    let flag_like = |s: &str| {
        s.starts_with("--")
            || (tags
                && s.strip_prefix('-')
                    .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_alphabetic())))
    };
    let next = raw.next_if(|a| !a.to_str().is_some_and(flag_like));
    next.ok_or_else(missing)
}

/// Read one flag's value. `short` says it was spelled as a letter in a
/// cluster: there, what follows a switch is more letters (`-fv` is
/// `-f -v`, as POSIX getopt reads it), never an attached value, so the
/// rest of the cluster is left for the next `p.next()`.
fn read_flag(
    p: &mut lexopt::Parser,
    cmd: &Cmd,
    flag: &'static Flag,
    short: bool,
    values: &mut Vec<(&'static str, String)>,
) -> Result<()> {
    let value = match flag.kind {
        Kind::Switch => {
            if !short && p.optional_value().is_some() {
                return Err(Error::usage(format!("'--{}' takes no value", flag.long)));
            }
            "true".to_string()
        }
        Kind::OptBool => {
            let attached = if short { None } else { p.optional_value() };
            let v = match attached {
                Some(v) => Some(utf8(v)?),
                None => p
                    .try_raw_args()
                    .and_then(|mut raw| {
                        // The next word is the value when it is a
                        // boolean as every door spells one (`1`/`0`
                        // too, as the README says), else a command's.
                        raw.next_if(|a| a.to_str().and_then(switch_value).is_some())
                    })
                    .and_then(|v| v.into_string().ok()),
            };
            let v = v.unwrap_or_else(|| "true".to_string());
            check_value(flag, Ty::Bool, &v)?;
            switch_value(&v).unwrap_or(true).to_string()
        }
        Kind::Value(ty) => {
            let tags = matches!(ty, Ty::Tag | Ty::TagPattern);
            let v = match flag_value_os(p, &flag.synopsis(), tags)?.into_string() {
                Ok(v) => v,
                // Garbage for a cursor is `invalid_cursor` however it is
                // spelled, as every other unreadable cursor is.
                Err(v) if flag.long == "since" => {
                    return Err(Error::InvalidCursor(format!("not a cursor: {v:?}")))
                }
                // An `--env` value may be a secret (`--mask`): the error
                // names the variable, never shows the value.
                Err(v) if ty == Ty::Env => {
                    let text = v.to_string_lossy();
                    let name = text.split_once('=').map_or(&*text, |(n, _)| n);
                    return Err(Error::usage(format!(
                        "argument is not valid UTF-8: --env {name:?}=… (the value is not shown)"
                    )));
                }
                Err(v) => utf8(v)?,
            };
            check_value(flag, ty, &v)?;
            v
        }
    };
    if !flag.multi && values.iter().any(|(k, _)| *k == flag.long) {
        return Err(Error::usage(format!(
            "the argument '{}' cannot be used multiple times (in 'agent-exec {}')",
            flag.synopsis(),
            cmd.name
        )));
    }
    values.push((flag.long, value));
    Ok(())
}

/// Type-check one value. The error code names what was wrong.
fn check_value(flag: &Flag, ty: Ty, v: &str) -> Result<()> {
    let bad = |why: &str| {
        // An `--env` value may be a secret (`--mask`): shown by name only.
        let shown = match (ty, v.split_once('=')) {
            (Ty::Env, Some((name, _))) => format!("{name}=…"),
            _ => v.to_string(),
        };
        Error::usage(format!(
            "invalid value '{shown}' for '{}': {why}",
            flag.synopsis()
        ))
    };
    // No door can carry a NUL into an argument or the environment (the
    // command line cannot hold one; HTTP and MCP values can).
    if v.contains('\0') && ty != Ty::Data {
        return Err(bad("NUL is not allowed"));
    }
    match ty {
        Ty::Str | Ty::Data | Ty::Path | Ty::Cmd => Ok(()),
        Ty::Env => match v.split_once('=').map_or(v, |(name, _)| name) {
            "" => Err(bad("a variable name is required before '='")),
            n if crate::launch::reserved_env_name(n) => Err(bad(crate::launch::RESERVED_ENV)),
            _ => Ok(()),
        },
        Ty::U64 => v.parse::<u64>().map(|_| ()).map_err(|_| {
            // All digits and still no u64: too large, not malformed.
            match !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
                true => bad(&format!("too large (at most {})", u64::MAX)),
                false => bad("expected a non-negative integer"),
            }
        }),
        Ty::Port => v
            .parse::<u16>()
            .map(|_| ())
            .map_err(|_| bad("expected a port number, 0 to 65535")),
        Ty::Bool => match switch_value(v) {
            Some(_) => Ok(()),
            None => Err(bad("expected true or false (or 1 or 0)")),
        },
        Ty::Choice => {
            if flag.choices.contains(&v) {
                Ok(())
            } else {
                Err(bad(&format!(
                    "possible values: {}",
                    flag.choices.join(", ")
                )))
            }
        }
        Ty::Tag => crate::job::validate_tag(v),
        Ty::TagPattern => crate::job::validate_tag_pattern(v),
        Ty::Signal => crate::sys::parse_signal(v).map(|_| ()).ok_or_else(|| {
            Error::InvalidSignal(format!(
                "invalid signal '{v}': expected a name such as TERM, SIGTERM or a number such as 15"
            ))
        }),
        Ty::Duration => crate::time::parse_duration(v).map(|_| ()),
    }
}

// ---------------------------------------------------------------------------
// Help text, generated from the table
// ---------------------------------------------------------------------------

fn flag_lines(out: &mut String, flags: &[Flag]) {
    let rows: Vec<(String, String)> = flags
        .iter()
        .map(|f| {
            let left = match f.short {
                Some(s) => format!("-{s}, {}", f.synopsis()),
                None => format!("    {}", f.synopsis()),
            };
            let mut right = f.help.to_string();
            if f.http == Http::CliOnly {
                right.push_str(" [CLI only]");
            } else if let Http::Millis(n) = f.http {
                right.push_str(&format!(" [HTTP: {n}, in ms]"));
            }
            if f.multi {
                right.push_str(" (repeatable)");
            }
            if !f.choices.is_empty() {
                right.push_str(&format!(" [possible values: {}]", f.choices.join(", ")));
            }
            if let Some(d) = f.default {
                right.push_str(&format!(" [default: {d}]"));
            }
            (left, right)
        })
        .collect();
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    for (l, r) in rows {
        out.push_str(&format!("  {l:width$}  {r}\n"));
    }
}

pub fn top_help() -> String {
    let mut s = format!(
        "agent-exec {} — {ABOUT}\n\nUsage: agent-exec [OPTIONS] <COMMAND>\n\nCommands:\n",
        env!("CARGO_PKG_VERSION")
    );
    let visible: Vec<&&Cmd> = COMMANDS.iter().filter(|c| !c.hidden).collect();
    let width = visible.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for c in visible {
        let alias = c
            .alias
            .map(|a| format!(" [aliases: {a}]"))
            .unwrap_or_default();
        s.push_str(&format!("  {:width$}  {}{alias}\n", c.name, c.about));
    }
    s.push_str(&format!(
        "  {:width$}  Print help for a subcommand\n",
        "help"
    ));
    s.push_str("\nOptions:\n");
    flag_lines(&mut s, GLOBAL_FLAGS);
    s.push_str(
        "\nEvery command prints exactly one JSON document on stdout (YAML with --yaml);\n\
         diagnostics go to stderr. Exit status: 0 ok, 1 error, 2 usage error.\n\
         See 'agent-exec help <COMMAND>' and man agent-exec.\n",
    );
    s
}

pub fn command_help(c: &Cmd) -> String {
    let mut s = format!("{}\n\n", c.about);
    if !c.long_about.is_empty() {
        s.push_str(c.long_about);
        s.push_str("\n\n");
    }
    s.push_str(&format!("Usage: {}\n", c.usage()));
    if let Some(a) = c.alias {
        s.push_str(&format!("Alias: {a}\n"));
    }
    if !c.pos.is_empty() {
        s.push_str("\nArguments:\n");
        let width = c.pos.iter().map(|p| p.name.len() + 2).max().unwrap_or(0);
        for p in c.pos {
            s.push_str(&format!(
                "  {:width$}  {}\n",
                format!("<{}>", p.name),
                p.help
            ));
        }
    }
    if !c.flags.is_empty() {
        s.push_str("\nOptions:\n");
        flag_lines(&mut s, c.flags);
    }
    s.push_str("\nGlobal options:\n");
    flag_lines(&mut s, &GLOBAL_FLAGS[..5]);
    if !c.examples.is_empty() {
        s.push_str("\nExamples:\n");
        for e in c.examples {
            s.push_str(&format!("  {e}\n"));
        }
    }
    s
}

fn group_help(g: &str) -> String {
    let mut s = format!("Usage: agent-exec {g} <COMMAND>\n\nCommands:\n");
    for c in COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(&format!("{g} ")))
    {
        s.push_str(&format!("  {}  {}\n", &c.name[g.len() + 1..], c.about));
    }
    s
}

/// `help help`: the help command is a command too (not in `COMMANDS`,
/// since it is answered while parsing, and never runs).
fn help_help() -> String {
    "Print help for a subcommand (human text on stdout, exit 0)\n\n\
     Usage: agent-exec help [COMMAND]...\n\n\
     Arguments:\n  \
     [COMMAND]...  The subcommand to describe, e.g. 'status' or 'tag set' (none: the overview)\n"
        .to_string()
}

fn help_for_words(words: &[String]) -> Result<String> {
    if words.is_empty() {
        return Ok(top_help());
    }
    if words == ["help"] {
        return Ok(help_help());
    }
    let name = words.join(" ");
    if let Some(c) = find(&name) {
        return Ok(command_help(c));
    }
    if words.len() == 1 && is_group(&words[0]) {
        return Ok(group_help(&words[0]));
    }
    Err(Error::usage(format!("unrecognized subcommand '{name}'")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    fn parse_ok(s: &[&str]) -> Matches {
        match parse(args(s)) {
            Ok(Parsed::Run(m)) => *m,
            Ok(_) => panic!("expected a command for {s:?}"),
            Err(e) => panic!("parse {s:?}: {e}"),
        }
    }

    #[test]
    fn root_before_or_after_subcommand() {
        let m = parse_ok(&["--root", "/r", "status", "X"]);
        assert_eq!(m.root.as_deref(), Some("/r"));
        let m = parse_ok(&["status", "X", "--root=/s"]);
        assert_eq!(m.root.as_deref(), Some("/s"));
        assert_eq!(m.pos(0), Some("X"));
        // At both levels the subcommand's wins, wherever it stands.
        let m = parse_ok(&["--root", "/r", "status", "--root", "/s", "X"]);
        assert_eq!(m.root.as_deref(), Some("/s"));
        let m = parse_ok(&[
            "--root", "/r", "tag", "--root", "/g", "set", "X", "--tag", "t",
        ]);
        assert_eq!(m.root.as_deref(), Some("/g"));
        // Twice at one level is a usage error, as for any one-value flag.
        for bad in [
            &["--root", "/r", "--root", "/s", "status", "X"][..],
            &["status", "X", "--root", "/r", "--root=/s"],
            &[
                "--root", "/r", "status", "--root", "/s", "X", "--root", "/t",
            ],
        ] {
            match parse(args(bad)) {
                Err(e) => assert_eq!(e.code(), "usage_error", "{bad:?}"),
                Ok(_) => panic!("{bad:?} parsed"),
            }
        }
    }

    #[test]
    fn an_unknown_flag_after_a_group_word_points_to_the_groups_help() {
        for (a, g) in [
            (&["tag", "--bogus"][..], "tag"),
            (&["notify", "--x"], "notify"),
        ] {
            match parse(args(a)) {
                Err(e) => assert!(
                    e.to_string()
                        .ends_with(&format!("see 'agent-exec {g} --help'")),
                    "{a:?}: {e}"
                ),
                _ => panic!("{a:?}: accepted"),
            }
        }
    }

    #[test]
    fn help_dash_dash_help_is_helps_own_help() {
        for a in [&["help", "--help"][..], &["help", "-h"], &["help", "help"]] {
            match parse(args(a)) {
                Ok(Parsed::Help(t)) => assert_eq!(t, help_help(), "{a:?}"),
                _ => panic!("{a:?}: not help"),
            }
        }
    }

    #[test]
    fn help_help_describes_help() {
        match parse(args(&["help", "help"])) {
            Ok(Parsed::Help(h)) => assert!(h.contains("Usage: agent-exec help"), "{h}"),
            _ => panic!("help help"),
        }
    }

    #[test]
    fn patterns_and_cursors_are_checked_with_the_arguments() {
        let code = |a: &[&str]| match parse(args(a)) {
            Err(e) => e.code(),
            Ok(_) => "ok",
        };
        assert_eq!(
            code(&["tail", "--grep", "(", "--grep-type", "regex", "X"]),
            "invalid_pattern"
        );
        assert_eq!(code(&["tail", "--grep", "(", "X"]), "ok");
        assert_eq!(
            code(&["wait", "--output-match-type=regex", "--output", "[", "X"]),
            "invalid_pattern"
        );
        assert_eq!(code(&["tail", "--since", "garbage", "X"]), "invalid_cursor");
        assert_eq!(
            code(&["wait", "--output", "x", "--since", "", "X"]),
            "invalid_cursor"
        );
        // Without --output, a cursor is no wait's, whatever it is.
        assert_eq!(code(&["wait", "--since", "", "X"]), "usage_error");
        // Not even text: still a cursor that is garbage.
        use std::os::unix::ffi::OsStringExt;
        for attached in [false, true] {
            let mut a: Vec<OsString> = args(&["tail"]);
            if attached {
                a.push(OsString::from_vec(b"--since=\xff".to_vec()));
            } else {
                a.push("--since".into());
                a.push(OsString::from_vec(vec![0xff]));
            }
            a.push("X".into());
            let e = parse(a).err().map(|e| e.code());
            assert_eq!(e, Some("invalid_cursor"), "attached: {attached}");
        }
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &[][..],
            &["bogus"],
            &["status"],
            &["status", "a", "b"],
            &["status", "--nope", "a"],
            &["--root"],
            &["--root", ""],
        ] {
            let e = match parse(args(bad)) {
                Err(e) => e,
                Ok(_) => panic!("{bad:?} parsed"),
            };
            assert_eq!(e.code(), "usage_error", "{bad:?}: {e}");
        }
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(args(&["--help"])), Ok(Parsed::Help(_))));
        assert!(matches!(
            parse(args(&["status", "-h"])),
            Ok(Parsed::Help(_))
        ));
        assert!(matches!(
            parse(args(&["help", "status"])),
            Ok(Parsed::Help(_))
        ));
        assert!(matches!(parse(args(&["-V"])), Ok(Parsed::Version)));
    }

    #[test]
    fn yaml_scan_stops_at_double_dash() {
        assert!(wants_yaml(&args(&["--yaml", "x"])));
        assert!(wants_yaml(&args(&["--table", "list", "--yaml"])));
        assert!(!wants_yaml(&args(&["run", "--", "--yaml"])));
    }

    #[test]
    fn other_doors_name_flags_from_the_table() {
        let p = |k: &str, v: &str| (k.to_string(), v.to_string());
        let tail = find("tail").unwrap();
        let m = matches_from_params(
            tail,
            None,
            &[p("max_bytes", "10"), p("tail_lines", "3")],
            vec!["X".into()],
        )
        .unwrap();
        assert_eq!(
            (m.u64("max-bytes"), m.u64("tail-lines")),
            (Some(10), Some(3))
        );
        // The same validation and codes as the command line.
        let e = matches_from_params(tail, None, &[p("max_bytes", "x")], vec![]).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = matches_from_params(tail, None, &[p("nope", "1")], vec![]).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(e.to_string().contains("max_bytes"), "{e}");
        let send = find("send").unwrap();
        let m = matches_from_params(
            send,
            None,
            &[p("yield_ms", "1500"), p("eof", "true")],
            vec![],
        )
        .unwrap();
        assert_eq!((m.duration_ms("yield"), m.has("eof")), (Some(1500), true));
        let m = matches_from_params(send, None, &[p("eof", "false")], vec![]).unwrap();
        assert!(!m.has("eof"));
        // CLI-only flags have no name elsewhere.
        let e = matches_from_params(send, None, &[p("file", "/etc/passwd")], vec![]).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let wait = find("wait").unwrap();
        let e = matches_from_params(wait, None, &[p("until", "1"), p("forever", "true")], vec![])
            .unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        let e = matches_from_params(wait, None, &[p("until", "soon")], vec![]).unwrap_err();
        assert_eq!(e.code(), "invalid_duration");
    }

    #[test]
    fn every_flag_has_help_and_meta() {
        for c in COMMANDS {
            for f in c.flags {
                assert!(!f.help.is_empty(), "{} --{}", c.name, f.long);
                if f.takes_value() {
                    assert!(!f.meta.is_empty(), "{} --{}", c.name, f.long);
                }
                if let Some(d) = f.default {
                    if let Kind::Value(ty) = f.kind {
                        check_value(f, ty, d).unwrap();
                    }
                }
            }
            let help = command_help(c);
            for f in c.flags {
                assert!(help.contains(&format!("--{}", f.long)));
            }
        }
    }
}
