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

#[cfg(test)]
mod tests {
    use super::SCHEMA;

    #[test]
    fn every_documented_error_code_is_in_the_schema() {
        let v: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let codes =
            &v["definitions"]["ErrorResponse"]["properties"]["error"]["properties"]["code"]["enum"];
        let codes: Vec<&str> = codes
            .as_array()
            .expect("the error code enum")
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        for (code, _, _) in crate::man::ERROR_CODES {
            assert!(codes.contains(code), "{code} is not in the schema");
        }
        for code in &codes {
            assert!(
                crate::man::ERROR_CODES.iter().any(|(c, _, _)| c == code),
                "{code} is not documented"
            );
        }
    }
}
