//! `schema`: the JSON Schema (draft-07) of every response and event,
//! embedded in the binary so it is always the one for this version.
//!
//! Rejected: reading it from a path next to the binary (0.2.3 did; an
//! installed binary could not find it).

use crate::cli::Matches;
use crate::error::{Error, Result};
use crate::output::{Output, Response};

pub const SCHEMA: &str = include_str!("../../schema/agent-exec.schema.json");

pub fn exec(_m: &Matches) -> Result<Output> {
    // Parse once to fail loudly (never print a broken document) and to
    // read `$comment`, the date the schema was last revised.
    let v: serde_json::Value = serde_json::from_str(SCHEMA)
        .map_err(|e| Error::internal(format!("embedded schema is not valid JSON: {e}")))?;
    let generated_at = v["$comment"].as_str().unwrap_or("unknown");
    let body = format!(
        "{{\"schema_format\":\"json-schema-draft-07\",\"schema\":{},\"generated_at\":{}}}",
        serde_json::to_string(&v).unwrap_or_default(),
        serde_json::to_string(generated_at).unwrap_or_default()
    );
    Ok(Output::Doc(Response::raw("schema", body)))
}
