//! Small helpers for messages about JSON input.

use serde_json::Value;

/// What a JSON value is, for error messages: "a string", "an array", "null", ….
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
