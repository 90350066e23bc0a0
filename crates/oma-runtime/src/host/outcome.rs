//! Outcomes (semantics §11): after `user.define_outcome` the agent works until its answer is
//! final, then a grader — a separate model request with its own context and no tools — judges
//! the deliverable (the outputs folder and the agent's report) against the rubric.
//! `needs_revision` feeds the verdict back and the agent works on; `satisfied` and `failed`
//! end the turn; the last allowed iteration that still needs revision is reported as
//! `max_iterations_reached` and the agent gets one final turn to acknowledge it.
//!
//! Everything is derived from the log, so a host that takes over after a crash evaluates
//! again an evaluation that had started and not ended (reusing its start event).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use oma_core::events::NewEvent;
use oma_model::types::{Block, Message, ModelRequest, SystemBlock, Usage};
use oma_store::events::StoredEvent;
use oma_store::runtime::Step;

use super::{HostResult, SessionHost, texts_of};
use crate::record::{self, IdleReason};

/// How often `span.outcome_evaluation_ongoing` is emitted while the grader works.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Deliverable text shown to the grader: per file, and in all.
const MAX_FILE_CHARS: usize = 20_000;
const MAX_TOTAL_CHARS: usize = 150_000;
const MAX_FILES: usize = 100;

const GRADER_SYSTEM: &str = "You grade the work of an AI agent against a rubric. You see the \
outcome the agent was asked to achieve, the rubric, the agent's final report and the files it \
delivered. Judge only what is there. Answer with one JSON object and nothing else: \
{\"result\": \"satisfied\" | \"needs_revision\" | \"failed\", \"explanation\": \"...\"}. Use \
`satisfied` when every criterion is met; `needs_revision` when some are not (say which and what \
to change); `failed` only when the rubric cannot apply to this outcome or contradicts its \
description.";

/// The outcome being worked on, as the log tells it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ActiveOutcome {
    pub id: String,
    pub description: String,
    pub rubric: Value,
    pub max_iterations: u32,
    /// The evaluation cycle the outcome is on (0-indexed).
    pub iteration: u32,
    /// An evaluation that started and has not ended.
    pub open_start: Option<String>,
    /// The agent's last response was final (no tool calls) and nothing came after it: the
    /// deliverable is ready to be judged.
    pub due: bool,
    /// The agent's report: the text of its last message.
    pub report: String,
}

/// What an evaluation led to.
pub(super) enum Verdict {
    /// The agent works on (a revision, or the final acknowledgement).
    Continue,
    /// The turn is over and recorded.
    Over,
}

/// The outcome that has not ended, if any.
pub(super) fn active_outcome(events: &[StoredEvent]) -> Option<ActiveOutcome> {
    let mut active: Option<ActiveOutcome> = None;
    let mut called = false;
    for e in events {
        let body = || serde_json::from_str::<Value>(&e.body).unwrap_or(Value::Null);
        match e.kind.as_str() {
            "user.define_outcome" => {
                let b = body();
                active = Some(ActiveOutcome {
                    id: str_of(&b, "outcome_id"),
                    description: str_of(&b, "description"),
                    rubric: b.get("rubric").cloned().unwrap_or(Value::Null),
                    max_iterations: b
                        .get("max_iterations")
                        .and_then(Value::as_u64)
                        .map_or(3, |n| n.clamp(1, 20) as u32),
                    iteration: 0,
                    open_start: None,
                    due: false,
                    report: String::new(),
                });
            }
            "user.message" => {
                if let Some(a) = active.as_mut() {
                    a.due = false;
                }
            }
            "agent.message" => {
                if let Some(a) = active.as_mut() {
                    a.report = texts_in(&body());
                }
            }
            "agent.tool_use" | "agent.custom_tool_use" | "agent.mcp_tool_use" => called = true,
            "span.model_request_end" => {
                let failed = body().get("is_error").and_then(Value::as_bool) == Some(true);
                if let Some(a) = active.as_mut()
                    && !failed
                {
                    a.due = !called;
                }
                called = false;
            }
            "span.outcome_evaluation_start" => {
                if let Some(a) = active.as_mut() {
                    a.open_start = Some(e.id.clone());
                }
            }
            "span.outcome_evaluation_end" => {
                let b = body();
                let terminal = !matches!(
                    b.get("result").and_then(Value::as_str),
                    Some("needs_revision")
                );
                if terminal {
                    active = None;
                } else if let Some(a) = active.as_mut() {
                    a.iteration += 1;
                    a.open_start = None;
                    a.due = false;
                }
            }
            _ => {}
        }
    }
    active
}

/// The session's `outcome_evaluations[]` entry for `o` in state `result`.
pub(super) fn entry(
    o: &ActiveOutcome,
    result: &str,
    iteration: u32,
    explanation: Option<&str>,
) -> Value {
    let terminal = oma_store::events::OUTCOME_TERMINAL.contains(&result);
    json!({
        "type": "outcome_evaluation",
        "outcome_id": o.id,
        "description": o.description,
        "iteration": iteration,
        "result": result,
        "explanation": explanation,
        "completed_at": terminal.then(|| oma_core::time::format_micros(oma_core::time::now_micros())),
    })
}

impl SessionHost {
    /// The outcome that has not ended (from the log).
    pub(super) async fn active_outcome(&mut self) -> HostResult<Option<ActiveOutcome>> {
        Ok(active_outcome(self.log().await?))
    }

    /// `outcome_evaluations[]` entry `running` for an outcome whose echo is among `events`.
    pub(super) fn outcome_started(events: &[NewEvent]) -> Option<Value> {
        let e = events.iter().find(|e| e.kind == "user.define_outcome")?;
        let o = ActiveOutcome {
            id: str_of(&e.body, "outcome_id"),
            description: str_of(&e.body, "description"),
            rubric: Value::Null,
            max_iterations: 3,
            iteration: 0,
            open_start: None,
            due: false,
            report: String::new(),
        };
        Some(entry(&o, "running", 0, None))
    }

    /// The events that close an outcome an interrupt ends: `span.outcome_evaluation_end`
    /// `interrupted` (its start id is "" when no evaluation had started).
    pub(super) async fn outcome_interrupted(
        &mut self,
    ) -> HostResult<(Vec<NewEvent>, Option<Value>)> {
        let Some(o) = self.active_outcome().await? else {
            return Ok((vec![], None));
        };
        let end = record::outcome_evaluation_end(
            o.open_start.as_deref().unwrap_or(""),
            &o.id,
            o.iteration,
            "interrupted",
            "The user interrupted the session while the outcome was being worked on.",
            &Usage::default(),
        );
        let e = entry(&o, "interrupted", o.iteration, None);
        Ok((vec![end], Some(e)))
    }

    /// Runs one evaluation cycle of `o` and records its verdict.
    pub(super) async fn evaluate_outcome(&mut self, o: ActiveOutcome) -> HostResult<Verdict> {
        let start_id = match &o.open_start {
            Some(id) => id.clone(),
            None => {
                let start = record::outcome_evaluation_start(&o.id, o.iteration);
                let id = start.id.clone();
                self.commit(Step {
                    events: vec![
                        start,
                        record::outcome_evaluation_ongoing(&o.id, o.iteration),
                    ],
                    outcome: Some(entry(&o, "evaluating", o.iteration, None)),
                    ..Step::default()
                })
                .await?;
                id
            }
        };
        let model = self.model_id().to_string();
        let selected = match self
            .rt
            .inner()
            .providers
            .select(&self.store, &self.tenant, &model)
            .await
        {
            Ok(Some(s)) => s,
            Ok(None) => {
                let message = format!(
                    "no model provider is configured for model `{model}` to grade the outcome"
                );
                self.give_up("model_request_failed_error", &message, None)
                    .await?;
                return Ok(Verdict::Over);
            }
            Err(message) => {
                self.give_up("model_request_failed_error", &message, None)
                    .await?;
                return Ok(Verdict::Over);
            }
        };
        let request = self.grader_request(&o, &selected.upstream_model).await;
        let provider = selected.provider;
        let mut grading = std::pin::pin!(oma_model::complete(provider.as_ref(), request));
        let graded = loop {
            let mut interrupted = None;
            tokio::select! {
                r = &mut grading => break r,
                _ = tokio::time::sleep(HEARTBEAT) => {}
                inputs = self.interrupt_signal() => interrupted = Some(inputs?),
            }
            if let Some(inputs) = interrupted {
                self.interrupt(&inputs, vec![]).await?;
                return Ok(Verdict::Over);
            }
            self.commit(Step {
                events: vec![record::outcome_evaluation_ongoing(&o.id, o.iteration)],
                ..Step::default()
            })
            .await?;
        };
        let done = match graded {
            Ok(done) => done,
            Err(error) => {
                // The evaluation stays open: the next turn (or host) grades again.
                let kind = super::error_type(&error);
                let message = format!("the outcome's grader failed: {error}");
                self.give_up(kind, &message, None).await?;
                return Ok(Verdict::Over);
            }
        };
        self.tokens += done.usage;
        let (mut result, explanation) = parse_verdict(&texts_of(&done.message).join("\n"));
        if result == "needs_revision" && o.iteration + 1 >= o.max_iterations {
            result = "max_iterations_reached";
        }
        let end = record::outcome_evaluation_end(
            &start_id,
            &o.id,
            o.iteration,
            result,
            &explanation,
            &done.usage,
        );
        let (state, iteration) = match result {
            "needs_revision" => ("running", o.iteration + 1),
            r => (r, o.iteration),
        };
        let outcome = Some(entry(&o, state, iteration, Some(&explanation)));
        if matches!(result, "needs_revision" | "max_iterations_reached") {
            self.commit(Step {
                events: vec![end],
                outcome,
                usage: Some(self.usage_json()),
                ..Step::default()
            })
            .await?;
            return Ok(Verdict::Continue);
        }
        let events = vec![
            end,
            self.usage_event(),
            record::status_idle(IdleReason::EndTurn, &[]),
        ];
        self.go_idle_with(events, vec![], outcome).await?;
        Ok(Verdict::Over)
    }

    /// The grader's request: the outcome, the rubric, the report and the deliverables.
    async fn grader_request(&mut self, o: &ActiveOutcome, model: &str) -> ModelRequest {
        let rubric = self.rubric_text(&o.rubric).await;
        let deliverables = if self.self_hosted {
            "(The session runs on a self-hosted worker: its files are not visible to the grader. \
             Judge the agent's report.)"
                .to_string()
        } else {
            let dir = self
                .rt
                .inner()
                .config
                .sessions_dir
                .join(&self.session)
                .join("mnt")
                .join("outputs");
            describe_outputs(&dir)
        };
        let report = if o.report.is_empty() {
            "(no report)"
        } else {
            &o.report
        };
        let text = format!(
            "## Outcome\n{}\n\n## Rubric\n{rubric}\n\n## The agent's final report\n{report}\n\n\
             ## Deliverables in /mnt/session/outputs/\n{deliverables}",
            o.description
        );
        let messages = vec![Message::user(vec![Block::text(text)])];
        let mut req = ModelRequest::new(model, messages, self.rt.inner().config.max_tokens);
        req.system = vec![SystemBlock::new(GRADER_SYSTEM)];
        req
    }

    /// A rubric as text: its content, or the text of its file.
    async fn rubric_text(&self, rubric: &Value) -> String {
        match rubric.get("type").and_then(Value::as_str) {
            Some("text") => str_of(rubric, "content"),
            Some("file") => {
                let id = str_of(rubric, "file_id");
                match self.file_text(&id).await {
                    Ok(t) => t,
                    Err(why) => format!("(the rubric file {id} could not be read: {why})"),
                }
            }
            _ => "(no rubric)".into(),
        }
    }

    async fn file_text(&self, id: &str) -> Result<String, String> {
        let rec = self
            .store
            .file_record(&self.tenant, id)
            .await
            .map_err(|e| e.to_string())?;
        let blobs = self.store.blobs().ok_or("no blob storage attached")?;
        let bytes = blobs.get(&rec.blob_key).await.map_err(|e| e.to_string())?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "it is not UTF-8 text".to_string())
    }

    /// Ends the turn like `go_idle`, also recording an `outcome_evaluations[]` entry.
    pub(super) async fn go_idle_with(
        &mut self,
        events: Vec<NewEvent>,
        consumed: Vec<i64>,
        outcome: Option<Value>,
    ) -> HostResult<()> {
        self.pending_outcome = outcome;
        self.go_idle(events, consumed).await
    }
}

/// The verdict in the grader's answer: its JSON object, or failing that the first verdict word.
fn parse_verdict(answer: &str) -> (&'static str, String) {
    let parsed = answer
        .find('{')
        .zip(answer.rfind('}'))
        .filter(|(a, b)| a < b)
        .and_then(|(a, b)| serde_json::from_str::<Value>(&answer[a..=b]).ok());
    if let Some(v) = parsed {
        let explanation = str_of(&v, "explanation");
        match v.get("result").and_then(Value::as_str) {
            Some("satisfied") => return ("satisfied", explanation),
            Some("needs_revision") => return ("needs_revision", explanation),
            Some("failed") => return ("failed", explanation),
            _ => {}
        }
    }
    let lower = answer.to_ascii_lowercase();
    for word in ["needs_revision", "satisfied", "failed"] {
        if lower.contains(word) {
            let r = match word {
                "needs_revision" => "needs_revision",
                "satisfied" => "satisfied",
                _ => "failed",
            };
            return (r, answer.trim().to_string());
        }
    }
    (
        "failed",
        format!(
            "The grader's answer could not be read as a verdict: {}",
            answer.chars().take(2_000).collect::<String>()
        ),
    )
}

/// The outputs folder as the grader reads it: each file's path and size, with the content of
/// text files (bounded).
fn describe_outputs(dir: &Path) -> String {
    let mut files = Vec::new();
    collect(dir, dir, &mut files);
    files.sort();
    if files.is_empty() {
        return "(no files)".into();
    }
    let mut out = String::new();
    let mut budget = MAX_TOTAL_CHARS;
    for (rel, path) in files.iter().take(MAX_FILES) {
        let bytes = std::fs::read(path).unwrap_or_default();
        out.push_str(&format!("### {rel} ({} bytes)\n", bytes.len()));
        match std::str::from_utf8(&bytes) {
            Ok(text) if budget > 0 => {
                let shown: String = text.chars().take(MAX_FILE_CHARS.min(budget)).collect();
                budget = budget.saturating_sub(shown.len());
                let cut = if shown.len() < text.len() {
                    "\n[… cut]"
                } else {
                    ""
                };
                out.push_str(&format!("```\n{shown}{cut}\n```\n\n"));
            }
            Ok(_) => out.push_str("(content not shown: the deliverables are too large)\n\n"),
            Err(_) => out.push_str("(binary)\n\n"),
        }
    }
    if files.len() > MAX_FILES {
        out.push_str(&format!("… and {} more files\n", files.len() - MAX_FILES));
    }
    out
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_dir() {
            collect(root, &path, out);
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((rel, path));
        }
    }
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn texts_in(body: &Value) -> String {
    body.get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: i64, kind: &str, body: Value) -> StoredEvent {
        StoredEvent {
            seq,
            id: format!("sevt_{seq}"),
            kind: kind.into(),
            thread_id: None,
            body: body.to_string(),
        }
    }

    #[test]
    fn verdicts_are_read_from_json_or_words() {
        assert_eq!(
            parse_verdict("ok {\"result\": \"satisfied\", \"explanation\": \"all good\"}"),
            ("satisfied", "all good".to_string())
        );
        assert_eq!(
            parse_verdict("NEEDS_REVISION: add tests").0,
            "needs_revision"
        );
        assert_eq!(parse_verdict("hmm").0, "failed");
    }

    #[test]
    fn the_log_says_which_outcome_is_active_and_when_it_is_due() {
        let define = ev(
            1,
            "user.define_outcome",
            json!({"outcome_id": "outc_1", "description": "d",
            "rubric": {"type": "text", "content": "r"}, "max_iterations": 2}),
        );
        let tool = ev(2, "agent.tool_use", json!({"id": "t"}));
        let end1 = ev(3, "span.model_request_end", json!({"is_error": false}));
        let msg = ev(
            4,
            "agent.message",
            json!({"content": [{"type": "text", "text": "done"}]}),
        );
        let end2 = ev(5, "span.model_request_end", json!({"is_error": false}));
        let log = vec![define.clone(), tool, end1];
        assert!(!active_outcome(&log).unwrap().due);
        let mut log = [log, vec![msg, end2]].concat();
        let a = active_outcome(&log).unwrap();
        assert!(a.due && a.report == "done" && a.max_iterations == 2 && a.iteration == 0);
        log.push(ev(6, "span.outcome_evaluation_start", json!({})));
        assert_eq!(
            active_outcome(&log).unwrap().open_start.as_deref(),
            Some("sevt_6")
        );
        log.push(ev(
            7,
            "span.outcome_evaluation_end",
            json!({"result": "needs_revision"}),
        ));
        let a = active_outcome(&log).unwrap();
        assert!(!a.due && a.iteration == 1 && a.open_start.is_none());
        log.push(ev(
            8,
            "span.outcome_evaluation_end",
            json!({"result": "satisfied"}),
        ));
        assert!(active_outcome(&log).is_none());
    }
}
