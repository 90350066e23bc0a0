//! Three-state fields of update requests: absent (preserve), `null` (clear) or a value.
//!
//! `serde` cannot tell an absent key from `null` with a plain `Option`, so update params use
//! `Patch<T>` with `#[serde(default)]`.

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }
    /// Applies the patch to an optional stored value.
    pub fn apply_to(self, current: &mut Option<T>) {
        match self {
            Patch::Absent => {}
            Patch::Null => *current = None,
            Patch::Value(v) => *current = Some(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            None => Patch::Null,
            Some(v) => Patch::Value(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct P {
        #[serde(default)]
        a: Patch<String>,
    }

    #[test]
    fn three_states() {
        let p: P = serde_json::from_str("{}").unwrap();
        assert_eq!(p.a, Patch::Absent);
        let p: P = serde_json::from_str(r#"{"a":null}"#).unwrap();
        assert_eq!(p.a, Patch::Null);
        let p: P = serde_json::from_str(r#"{"a":"x"}"#).unwrap();
        assert_eq!(p.a, Patch::Value("x".into()));
    }
}
