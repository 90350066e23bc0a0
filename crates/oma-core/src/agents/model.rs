//! `model`: the model id and its effort and speed, resolved at save time.

use super::*;

/// The effort an agent gets when none is given. The API resolves a per-model default at save
/// time and documents `high` as the usual one; oma applies it to every model.
pub fn default_effort(_model_id: &str) -> EffortLevel {
    EffortLevel::High
}

/// Reads `model` (an id string or a model config object) into the response form.
/// `previous` is the stored model on update: when the id is unchanged and `effort` is omitted,
/// the stored effort is kept; everything else is whole-object replacement (an omitted
/// `inference_geo` clears the pin, an omitted `speed` resets to `standard`).
pub fn parse_model(v: &Value, previous: Option<&ModelConfig>) -> Result<ModelConfig, Error> {
    let inherited = |id: &str| -> Effort {
        match previous {
            Some(prev) if prev.id == id => prev.effort.unwrap_or(Effort {
                level: default_effort(id),
            }),
            _ => Effort {
                level: default_effort(id),
            },
        }
    };
    match v {
        Value::String(id) => {
            let id = model_id(id, "model")?;
            Ok(ModelConfig {
                effort: Some(inherited(&id)),
                inference_geo: None,
                speed: Some(Speed::Standard),
                id,
            })
        }
        Value::Object(o) => {
            let id = match o.get("id") {
                Some(Value::String(s)) => model_id(s, "model.id")?,
                None | Some(Value::Null) => return Err(invalid("model.id", "is required")),
                Some(other) => {
                    return Err(invalid(
                        "model.id",
                        format!("must be a string, got {}", kind_of(other)),
                    ));
                }
            };
            let effort = match o.get("effort") {
                None => inherited(&id),
                Some(Value::Null) => Effort {
                    level: default_effort(&id),
                },
                Some(e) => parse_effort(e, "model.effort")?,
            };
            let speed = match present(o, "speed") {
                None => Speed::Standard,
                Some(Value::String(s)) if s == "standard" => Speed::Standard,
                Some(Value::String(s)) if s == "fast" => Speed::Fast,
                Some(Value::String(s)) => {
                    return Err(invalid(
                        "model.speed",
                        format!("unknown speed `{s}`; expected `standard` or `fast`"),
                    ));
                }
                Some(other) => {
                    return Err(invalid(
                        "model.speed",
                        format!("must be a string, got {}", kind_of(other)),
                    ));
                }
            };
            let inference_geo = match present(o, "inference_geo") {
                None => None,
                Some(Value::String(g)) if INFERENCE_GEOS.contains(&g.as_str()) => Some(g.clone()),
                Some(Value::String(g)) => {
                    return Err(invalid(
                        "model.inference_geo",
                        format!("unknown region `{g}`; expected {}", one_of(&INFERENCE_GEOS)),
                    ));
                }
                Some(other) => {
                    return Err(invalid(
                        "model.inference_geo",
                        format!("must be a string, got {}", kind_of(other)),
                    ));
                }
            };
            Ok(ModelConfig {
                id,
                effort: Some(effort),
                inference_geo,
                speed: Some(speed),
            })
        }
        Value::Null => Err(invalid("model", "is required")),
        other => Err(invalid(
            "model",
            format!(
                "must be a model id string or a model config object, got {}",
                kind_of(other)
            ),
        )),
    }
}

pub(super) fn model_id(s: &str, path: &str) -> Result<String, Error> {
    let n = s.chars().count();
    if n == 0 || n > MAX_MODEL_ID_CHARS {
        return Err(invalid(
            path,
            format!("must be a model id of 1 to {MAX_MODEL_ID_CHARS} characters"),
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            path,
            format!("`{s}` is not a model id: it contains whitespace"),
        ));
    }
    Ok(s.to_string())
}

/// `effort`: a bare level string or `{"type": level}`.
pub(super) fn parse_effort(v: &Value, path: &str) -> Result<Effort, Error> {
    let expected = || {
        let names: Vec<&str> = EffortLevel::ALL.iter().map(|l| l.as_str()).collect();
        one_of(&names)
    };
    let (level, level_path) = match v {
        Value::String(s) => (s.as_str(), path.to_string()),
        Value::Object(o) => (type_tag(o, path)?, format!("{path}.type")),
        other => {
            return Err(invalid(
                path,
                format!(
                    "must be a level string or an object with `type`, got {}",
                    kind_of(other)
                ),
            ));
        }
    };
    EffortLevel::parse(level)
        .map(|level| Effort { level })
        .ok_or_else(|| {
            invalid(
                &level_path,
                format!("unknown effort `{level}`; expected {}", expected()),
            )
        })
}
