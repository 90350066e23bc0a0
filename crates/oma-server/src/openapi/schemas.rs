//! `components.schemas`: one schemars generator for responses (the serialize contract: a key
//! the server always writes is required, `null` included) and one for request bodies (the
//! deserialize contract: `Option` fields may be left out). A type that comes out differently
//! under the two contracts keeps its name for responses and gets an `Input` suffix for
//! requests, with the references inside request schemas rewritten to match.

use std::collections::BTreeSet;

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator};
use serde_json::{Map, Value};

use super::catalog::SchemaFn;

const PREFIX: &str = "#/components/schemas/";

pub struct Generators {
    response: SchemaGenerator,
    request: SchemaGenerator,
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas/".into();
        s.meta_schema = None;
    })
}

/// The request-side renames, to apply to every request schema handed out.
pub struct Renames(BTreeSet<String>);

impl Renames {
    pub fn apply(&self, v: &mut Value) {
        rewrite_refs(v, &self.0);
    }
}

impl Generators {
    pub fn new() -> Self {
        let mut response = settings().for_serialize().into_generator();
        response.subschema_for::<oma_api::ErrorEnvelope>();
        Self {
            response,
            request: settings().for_deserialize().into_generator(),
        }
    }

    pub fn response(&mut self, f: SchemaFn) -> Value {
        f(&mut self.response).to_value()
    }

    /// A request schema; pass it through [`Renames::apply`] once [`Generators::finish`] ran.
    pub fn request(&mut self, f: SchemaFn) -> Value {
        let schema: Schema = f(&mut self.request);
        schema.to_value()
    }

    /// `components.schemas` merged from both generators, and the renames made.
    pub fn finish(mut self) -> (Map<String, Value>, Renames) {
        let mut out = self.response.take_definitions(true);
        let req = self.request.take_definitions(true);
        let renamed = conflicts(&out, &req);
        for (name, mut schema) in req {
            rewrite_refs(&mut schema, &renamed);
            if renamed.contains(&name) {
                out.insert(format!("{name}Input"), schema);
            } else {
                out.entry(name).or_insert(schema);
            }
        }
        (out, Renames(renamed))
    }
}

/// Names whose request schema differs from the response one, directly or through a
/// reference to such a name.
fn conflicts(resp: &Map<String, Value>, req: &Map<String, Value>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = req
        .iter()
        .filter(|(n, s)| resp.get(*n).is_some_and(|r| r != *s))
        .map(|(n, _)| n.clone())
        .collect();
    loop {
        let more: Vec<String> = req
            .iter()
            .filter(|(n, s)| resp.contains_key(*n) && !out.contains(*n) && refs_any(s, &out))
            .map(|(n, _)| n.clone())
            .collect();
        if more.is_empty() {
            return out;
        }
        out.extend(more);
    }
}

fn refs_any(v: &Value, names: &BTreeSet<String>) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, x)| {
            (k == "$ref"
                && x.as_str()
                    .and_then(|r| r.strip_prefix(PREFIX))
                    .is_some_and(|n| names.contains(n)))
                || refs_any(x, names)
        }),
        Value::Array(a) => a.iter().any(|x| refs_any(x, names)),
        _ => false,
    }
}

fn rewrite_refs(v: &mut Value, renamed: &BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "$ref" {
                    if let Some(n) = x.as_str().and_then(|r| r.strip_prefix(PREFIX))
                        && renamed.contains(n)
                    {
                        *x = Value::String(format!("{PREFIX}{n}Input"));
                    }
                } else {
                    rewrite_refs(x, renamed);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_refs(x, renamed)),
        _ => {}
    }
}
