//! The metadata bag shared by most resources: at most 16 pairs, keys up to 64 characters,
//! values up to 512 characters. Updates are patches: a string upserts, `null` deletes.

use serde_json::{Map, Value};

use crate::Error;

pub const MAX_PAIRS: usize = 16;
pub const MAX_KEY_CHARS: usize = 64;
pub const MAX_VALUE_CHARS: usize = 512;

pub type Metadata = std::collections::BTreeMap<String, String>;

/// Checks a complete bag against the limits.
pub fn validate(bag: &Metadata) -> Result<(), Error> {
    if bag.len() > MAX_PAIRS {
        return Err(invalid(format!(
            "metadata: at most {MAX_PAIRS} pairs are allowed"
        )));
    }
    for (k, v) in bag {
        if k.is_empty() || k.chars().count() > MAX_KEY_CHARS {
            return Err(invalid(format!(
                "metadata: key `{k}` must be 1 to {MAX_KEY_CHARS} characters"
            )));
        }
        if v.chars().count() > MAX_VALUE_CHARS {
            return Err(invalid(format!(
                "metadata: value of `{k}` must be at most {MAX_VALUE_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// Reads a create-time bag (`map<string,string>`), rejecting other value types.
pub fn from_create(value: Option<&Value>) -> Result<Metadata, Error> {
    let mut bag = Metadata::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        bag.insert(k.clone(), s.clone());
                    }
                    _ => {
                        return Err(invalid(format!(
                            "metadata: value of `{k}` must be a string"
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(invalid("metadata: must be an object of string values")),
    }
    validate(&bag)?;
    Ok(bag)
}

/// Applies a patch (`map<string, string|null>`) to `bag`. `empty_deletes` makes an empty
/// string delete the key too (environments behave that way).
pub fn apply_patch(
    bag: &mut Metadata,
    patch: &Map<String, Value>,
    empty_deletes: bool,
) -> Result<(), Error> {
    for (k, v) in patch {
        match v {
            Value::Null => {
                bag.remove(k);
            }
            Value::String(s) if empty_deletes && s.is_empty() => {
                bag.remove(k);
            }
            Value::String(s) => {
                bag.insert(k.clone(), s.clone());
            }
            _ => {
                return Err(invalid(format!(
                    "metadata: value of `{k}` must be a string or null"
                )));
            }
        }
    }
    validate(bag)
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid(message).with_code("invalid_metadata")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_upserts_and_deletes() {
        let mut bag = from_create(Some(&json!({"a": "1", "b": "2"}))).unwrap();
        let patch = json!({"a": null, "c": "3"});
        apply_patch(&mut bag, patch.as_object().unwrap(), false).unwrap();
        assert_eq!(bag.keys().collect::<Vec<_>>(), vec!["b", "c"]);
    }

    #[test]
    fn limits_are_enforced() {
        let many: Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(from_create(Some(&Value::Object(many))).is_err());
        assert!(from_create(Some(&json!({"k": "x".repeat(513)}))).is_err());
        assert!(from_create(Some(&json!({"k".repeat(65): "x"}))).is_err());
        assert!(from_create(Some(&json!({"k": 1}))).is_err());
    }
}
