//! A small draft-07 validator (the subset our schema uses), strict about
//! undeclared fields, for tests that check new documents against
//! schema/agent-exec.schema.json; tests/schema.rs uses it too.
#![allow(dead_code)]

use serde_json::Value;

pub struct Validator<'a> {
    pub root: &'a Value,
}

impl Validator<'_> {
    fn resolve<'b>(&'b self, s: &'b Value) -> &'b Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.trim_start_matches("#/definitions/");
                &self.root["definitions"][name]
            }
            None => s,
        }
    }

    pub fn check(&self, schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        let s = self.resolve(schema);
        if let Some(c) = s.get("const") {
            if c != v {
                return Err(format!("{path}: {v} != const {c}"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                return Err(format!("{path}: {v} not in {e:?}"));
            }
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let ok = match t {
                "string" => v.is_string(),
                "integer" => v.is_i64() || v.is_u64(),
                "number" => v.is_number(),
                "boolean" => v.is_boolean(),
                "object" => v.is_object(),
                "array" => v.is_array(),
                "null" => v.is_null(),
                _ => false,
            };
            if !ok {
                return Err(format!("{path}: {v} is not {t}"));
            }
        }
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            if v.as_f64().is_some_and(|x| x < min) {
                return Err(format!("{path}: {v} < {min}"));
            }
        }
        if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
            if !regex_lite::Regex::new(p).unwrap().is_match(text) {
                return Err(format!("{path}: {text:?} !~ {p}"));
            }
        }
        if let Some(arr) = v.as_array() {
            if let Some(n) = s.get("minItems").and_then(Value::as_u64) {
                if (arr.len() as u64) < n {
                    return Err(format!("{path}: fewer than {n} items"));
                }
            }
            if let Some(n) = s.get("maxItems").and_then(Value::as_u64) {
                if (arr.len() as u64) > n {
                    return Err(format!("{path}: more than {n} items"));
                }
            }
            if let Some(items) = s.get("items") {
                for (i, x) in arr.iter().enumerate() {
                    self.check(items, x, &format!("{path}[{i}]"))?;
                }
            }
        }
        if let Some(obj) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req {
                    let k = r.as_str().unwrap();
                    if !obj.contains_key(k) {
                        return Err(format!("{path}: missing required {k}"));
                    }
                }
            }
            if let Some(props) = props {
                for (k, x) in obj {
                    match props.get(k) {
                        Some(ps) => self.check(ps, x, &format!("{path}.{k}"))?,
                        // Strict: everything we print must be declared.
                        None => return Err(format!("{path}: undeclared field {k}")),
                    }
                }
            }
        }
        if let Some(alts) = s.get("oneOf").and_then(Value::as_array) {
            let errs: Vec<String> = alts
                .iter()
                .filter_map(|a| self.check(a, v, path).err())
                .collect();
            let matched = alts.len() - errs.len();
            if matched != 1 {
                return Err(format!(
                    "{path}: matched {matched} of oneOf; errors: {errs:#?}"
                ));
            }
        }
        Ok(())
    }
}

/// Panic unless `doc` matches the whole schema.
pub fn valid(schema: &Value, doc: &Value) {
    let val = Validator { root: schema };
    if let Err(e) = val.check(schema, doc, "$") {
        panic!("{doc}\ndoes not match the schema: {e}");
    }
}

/// Panic unless `doc` matches the definition `name`.
pub fn valid_as(schema: &Value, name: &str, doc: &Value) {
    let val = Validator { root: schema };
    if let Err(e) = val.check(&schema["definitions"][name], doc, "$") {
        panic!("{doc}\ndoes not match {name}: {e}");
    }
}
