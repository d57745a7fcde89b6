//! Placeholder until its issue lands; replaced wholesale.

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::output::Output;

pub fn exec(_m: &Matches) -> Result<Output> {
    Err(Error::internal("not implemented yet"))
}

pub fn exec_complete(m: &Matches) -> Result<Output> {
    exec(m)
}

pub fn exec_gen_man(m: &Matches) -> Result<Output> {
    exec(m)
}
