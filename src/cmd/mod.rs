//! One file per subcommand. Each exposes `exec(&Matches) -> Result<Output>`:
//! it reads its validated arguments, calls the core, and returns a value.
//! None of them prints.

pub mod completions;
pub mod create;
pub mod delete;
pub mod gc;
pub mod install_skills;
pub mod kill;
pub mod list;
pub mod mcp;
pub mod notify_set;
pub mod restart;
pub mod run;
pub mod schema;
pub mod send;
pub mod serve;
pub mod start;
pub mod status;
pub mod tag_set;
pub mod tail;
pub mod wait;

use crate::cli::Matches;
use crate::store::Store;

/// The jobs root for this invocation.
pub fn store(m: &Matches) -> Store {
    Store::resolve(m.root.as_deref())
}
