//! Placeholder until its issue lands; replaced wholesale.

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::output::Output;

pub fn exec(_m: &Matches) -> Result<Output> {
    Err(Error::internal("not implemented yet"))
}

pub fn exec_ps(m: &Matches) -> Result<Output> {
    exec(m)
}
