//! agent-exec: run commands as detached background jobs, answer in JSON.
//!
//! This file is the table of contents: parse the command line, dispatch
//! to one `cmd::*` function, render exactly one response, exit. Nothing
//! below `main` writes to stdout except `output`.

#![deny(unsafe_code)]

mod cache;
mod cli;
mod cmd;
mod config;
mod cursor;
mod error;
mod gc;
mod http;
mod input;
mod job;
mod jsonin;
mod launch;
mod logcap;
mod man;
mod mcp;
mod notify;
mod observe;
mod output;
mod progress;
mod queue;
mod runs;
mod store;
mod supervisor;
mod sys;
mod table;
mod time;
mod toml;
mod usage;
mod waitset;
mod yaml;

use std::ffi::OsString;

use cli::Parsed;
use output::Output;

#[global_allocator]
static ALLOC: sys::SmallAlloc = sys::SmallAlloc;

fn main() {
    sys::own_umask();
    output::install_panic_hook();
    // A write past the caller's file-size limit is an error we record
    // (EFBIG), never a signal that kills us with nothing recorded.
    let _ = sys::catch_file_size_signal();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Decided before parsing, so that usage errors honour --yaml too.
    output::set_yaml(cli::wants_yaml(&args));
    let code = match cli::parse(args) {
        Ok(Parsed::Version) => {
            output::print_text(&format!("agent-exec {}\n", env!("CARGO_PKG_VERSION")));
            0
        }
        Ok(Parsed::Help(text)) => {
            output::print_text(&text);
            0
        }
        Ok(Parsed::Run(m)) => {
            // The supervisor and the server run for long: what they keep
            // stays resident. Every other command exits soon.
            if !matches!(m.cmd.name, "_supervise" | "serve" | "mcp") {
                sys::keep_large_blocks();
            }
            // `--table --yaml` is refused (`table::check`), in YAML as
            // every error document is beside --yaml (D5).
            output::set_yaml(m.yaml);
            output::init_logging(m.verbose);
            // Progress notes are for a person watching stderr only.
            progress::enable(m.verbose > 0 && sys::isatty(2));
            // Commands that never touch a jobs root do not care where it
            // is; a supervisor (or a lost one's notifier) is handed its
            // root by whoever started it, which checked the variables
            // already, or had `--root` and did not need them.
            let rootless = matches!(
                m.cmd.name,
                "schema" | "completions" | "install-skills" | "_supervise" | "_notify" | "_gc"
            );
            let checked = table::check(&m).and_then(|()| match rootless {
                true => Ok(()),
                false => store::check_root_env(m.root.as_deref()),
            });
            let res = match checked {
                Ok(()) => (m.cmd.exec)(&m),
                Err(e) => Err(e),
            };
            match res {
                Ok(Output::Doc(r)) if m.table => {
                    // The same short id as `list` gives, from the root's
                    // names (one directory read, for a person's view).
                    let names = std::cell::OnceCell::new();
                    let short = |id: &str| {
                        let store = store::Store::resolve(m.root.as_deref());
                        names
                            .get_or_init(|| store.names().ok())
                            .as_ref()
                            .map(|n: &store::Names| n.short_id(id))
                    };
                    output::print_table(&r, &short);
                    0
                }
                Ok(Output::Doc(r)) => {
                    output::print_response(&r);
                    0
                }
                Ok(Output::Text(t)) => {
                    output::print_text(&t);
                    0
                }
                Ok(Output::Done) => 0,
                Err(e) => {
                    output::error_line(&e);
                    output::print_error(&e);
                    e.exit_code()
                }
            }
        }
        Err(e) => {
            output::error_line(&e);
            output::print_error(&e);
            e.exit_code()
        }
    };
    // A command whose wait a stop signal ended (`observe::until_stopped`)
    // has printed its answer; its status says it was interrupted, the
    // shell's way: 128 + the signal.
    let code = sys::stop_signal().map_or(code, |sig| 128 + sig);
    std::process::exit(output::exit_status(code));
}
