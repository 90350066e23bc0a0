//! Model requests of a turn: building the request from the thread's log (compacting the
//! context when it nears the window), streaming the response with previews and checkpoints,
//! retries, and recording what came back.

use super::*;

impl SessionHost {
    pub(super) async fn sample(&mut self) -> HostResult<Sampled> {
        let model = self
            .agent
            .pointer("/model/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let selected = match self
            .rt
            .inner()
            .providers
            .select(&self.store, &self.tenant, &model)
            .await
        {
            Ok(s) => s,
            Err(message) => {
                return self
                    .give_up("model_request_failed_error", &message, None)
                    .await;
            }
        };
        let Some(selected) = selected else {
            let message = format!(
                "no model provider is configured for model `{model}`: set ANTHROPIC_API_KEY (and \
                 ANTHROPIC_BASE_URL if needed) for the oma server, route the model to an \
                 OpenAI-compatible provider, or add a model route for it (/v1/oma/model_routes)"
            );
            return self
                .give_up("model_request_failed_error", &message, None)
                .await;
        };
        let provider = selected.provider;
        let model = selected.upstream_model;
        let context = match self.maybe_compact(provider.as_ref(), &model).await? {
            Compacted::Ready(context) => context,
            Compacted::LimitReached(times) => {
                let message = format!(
                    "The context was compacted {times} times in a row and still does not fit \
                     the model's window"
                );
                return self
                    .give_up("compaction_limit_reached_error", &message, None)
                    .await;
            }
        };
        let request = self.build_request(&model, context).await?;
        let backoff = self.rt.inner().config.backoff;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let start = record::model_request_start();
            let span_id = start.id.clone();
            self.commit(Step {
                events: vec![start],
                ..Step::default()
            })
            .await?;
            let asked = Instant::now();
            match self
                .stream_once(provider.as_ref(), request.clone(), &span_id)
                .await?
            {
                Streamed::Complete(acc, ids) => {
                    self.ops_model_request(provider.as_ref(), &model, asked, Ok(acc.usage()));
                    crate::metrics::model_request(provider.name(), "ok", asked.elapsed());
                    return self.record_response(acc, &span_id, ids).await;
                }
                Streamed::Interrupted {
                    partial,
                    inputs,
                    ids,
                } => {
                    self.ops_model_request(provider.as_ref(), &model, asked, Err(None));
                    crate::metrics::model_request(provider.name(), "interrupted", asked.elapsed());
                    let mut before = Vec::new();
                    if !partial.is_empty() {
                        before.push(record::with_id(
                            record::agent_message(&partial),
                            ids.message,
                        ));
                    }
                    before.push(record::model_request_end(&span_id, &Usage::default(), true));
                    self.interrupt(&inputs, before).await?;
                    self.clear_checkpoint(&span_id).await?;
                    return Ok(Sampled::TurnOver);
                }
                Streamed::Failed {
                    error,
                    partial,
                    ids,
                } => {
                    self.ops_model_request(provider.as_ref(), &model, asked, Err(Some(&error)));
                    let took = asked.elapsed();
                    crate::metrics::model_request(provider.name(), error_type(&error), took);
                    let mut events = Vec::new();
                    if !partial.is_empty() {
                        events.push(record::with_id(
                            record::agent_message(&partial),
                            ids.message,
                        ));
                    }
                    events.push(record::model_request_end(&span_id, &Usage::default(), true));
                    let kind = error_type(&error);
                    tracing::warn!(op = "model_request", session_id = %self.session, attempt, error = %error, "model request failed");
                    if error.retryable() && attempt < backoff.max_attempts {
                        events.push(record::session_error(kind, &error.to_string(), "retrying"));
                        events.push(record::status_rescheduled());
                        self.commit(Step {
                            events,
                            status: Some("rescheduling"),
                            close_stream: Some(span_id.clone()),
                            ..Step::default()
                        })
                        .await?;
                        let delay = backoff.delay(attempt, error.retry_after());
                        if let Some(inputs) = self.wait_or_interrupt(delay).await? {
                            self.interrupt(&inputs, vec![]).await?;
                            return Ok(Sampled::TurnOver);
                        }
                        self.commit(Step {
                            events: vec![record::status_running()],
                            status: Some("running"),
                            ..Step::default()
                        })
                        .await?;
                        continue;
                    }
                    self.commit(Step {
                        events,
                        close_stream: Some(span_id.clone()),
                        ..Step::default()
                    })
                    .await?;
                    return self.give_up(kind, &error.to_string(), Some(attempt)).await;
                }
            }
        }
    }

    /// The turn is dead: `session.error{exhausted}`, usage, idle with `retries_exhausted`.
    /// Input queued during the turn is flushed, as the API documents.
    pub(super) async fn give_up(
        &mut self,
        kind: &str,
        message: &str,
        attempts: Option<u32>,
    ) -> HostResult<Sampled> {
        let message = match attempts {
            Some(n) if n > 1 => format!("{message} (gave up after {n} attempts)"),
            _ => message.to_string(),
        };
        let flushed: Vec<i64> = self
            .store
            .pending_inputs(&self.tenant, &self.session)
            .await?
            .into_iter()
            .map(|q| q.seq)
            .collect();
        let events = vec![
            record::session_error(kind, &message, "exhausted"),
            self.usage_event(),
            record::status_idle(IdleReason::RetriesExhausted, &[]),
        ];
        self.go_idle(events, flushed).await?;
        Ok(Sampled::TurnOver)
    }

    /// The model context: the newest compaction summary stands in for the events it covers.
    pub(super) async fn projection(&mut self) -> HostResult<(Projection, Vec<StoredEvent>)> {
        let events = self.log().await?.to_vec();
        let Some(c) = self.compaction.clone() else {
            return Ok((project(&from_stored(&events)), events));
        };
        let (covered, kept): (Vec<StoredEvent>, Vec<StoredEvent>) =
            events.into_iter().partition(|e| e.seq <= c.upto_seq);
        let mut p = project(&from_stored(&kept));
        // System messages keep applying after their turn was summarised.
        let mut system_extra = project(&from_stored(&covered)).system_extra;
        system_extra.append(&mut p.system_extra);
        p.system_extra = system_extra;
        let summary = Block::Text {
            text: compaction_preamble(&c.summary),
            cache: false,
        };
        match p.messages.first_mut() {
            Some(first) if first.role == Role::User => first.content.insert(0, summary),
            _ => p.messages.insert(
                0,
                Message {
                    role: Role::User,
                    content: vec![summary],
                },
            ),
        }
        Ok((p, kept))
    }

    /// Compacts the context until the next request fits (see [`Self::compact_once`]), at most
    /// `max_compactions_in_a_row` times since the model last produced something.
    pub(super) async fn maybe_compact(
        &mut self,
        provider: &dyn oma_model::ModelProvider,
        model: &str,
    ) -> HostResult<Compacted> {
        if self.child.is_some() {
            // A child's context is not compacted (its thread is one delegated task).
            return Ok(Compacted::Ready(None));
        }
        let max = self.rt.inner().config.max_compactions_in_a_row;
        loop {
            let in_a_row = compactions_in_a_row(self.log().await?);
            match self.compact_once(provider, model, in_a_row >= max).await? {
                Once::Fits(p) => return Ok(Compacted::Ready(Some(p))),
                Once::Compacted => continue,
                Once::Failed => return Ok(Compacted::Ready(None)),
                Once::TooMany => return Ok(Compacted::LimitReached(in_a_row)),
            }
        }
    }

    /// Summarises older context with a model call when the next request would come close to
    /// the model's window, and records `agent.thread_context_compacted`. The current turn's
    /// user message and what followed it stay verbatim when that alone fits.
    pub(super) async fn compact_once(
        &mut self,
        provider: &dyn oma_model::ModelProvider,
        model: &str,
        at_limit: bool,
    ) -> HostResult<Once> {
        let config = &self.rt.inner().config;
        let limit = (config.context_window_tokens as f64 * config.compact_at) as u64;
        let (projection, kept) = self.projection().await?;
        if estimate_tokens(&projection) < limit || kept.is_empty() {
            // Nothing to compact: the caller can use this context as it is.
            return Ok(Once::Fits(projection));
        }
        if at_limit {
            return Ok(Once::TooMany);
        }
        // Keep the current turn (from its user.message on) when it is small enough by itself.
        let turn_start = kept.iter().rposition(|e| e.kind == "user.message");
        let upto = match turn_start {
            Some(i) if i > 0 && estimate_tokens(&project(&from_stored(&kept[i..]))) < limit / 2 => {
                kept[i - 1].seq
            }
            _ => kept.last().map_or(0, |e| e.seq),
        };
        let to_summarise: Vec<StoredEvent> =
            kept.iter().filter(|e| e.seq <= upto).cloned().collect();
        let mut context = project(&from_stored(&to_summarise));
        if let Some(previous) = self.compaction.clone() {
            let block = Block::Text {
                text: compaction_preamble(&previous.summary),
                cache: false,
            };
            match context.messages.first_mut() {
                Some(first) if first.role == Role::User => first.content.insert(0, block),
                _ => context.messages.insert(
                    0,
                    Message {
                        role: Role::User,
                        content: vec![block],
                    },
                ),
            }
        }
        let ask = Block::Text {
            text: SUMMARY_REQUEST.to_string(),
            cache: false,
        };
        match context.messages.last_mut() {
            Some(last) if last.role == Role::User => last.content.push(ask),
            _ => context.messages.push(Message {
                role: Role::User,
                content: vec![ask],
            }),
        }
        self.attach_files(&mut context.messages).await;
        let mut req = ModelRequest::new(model, context.messages, self.rt.inner().config.max_tokens);
        req.system = vec![SystemBlock::new(SUMMARY_SYSTEM)];
        let asked = Instant::now();
        let completed = oma_model::complete(provider, req).await;
        let outcome = completed.as_ref().map_or_else(error_type, |_| "ok");
        crate::metrics::model_request(provider.name(), outcome, asked.elapsed());
        match completed {
            Ok(done) => {
                let summary = texts_of(&done.message).join("\n");
                self.tokens += done.usage;
                let event = record::context_compacted();
                let compaction = oma_store::runtime::Compaction {
                    event_id: event.id.clone(),
                    upto_seq: upto,
                    summary,
                };
                self.commit(Step {
                    events: vec![event],
                    compaction: Some(compaction),
                    usage: Some(self.usage_json()),
                    ..Step::default()
                })
                .await?;
                Ok(Once::Compacted)
            }
            Err(e) => {
                // Not fatal: the turn goes on; the model request may still fit.
                tracing::warn!(op = "compaction", session_id = %self.session, error = %e, "context compaction failed");
                self.ops_silent("runtime.compaction", &e);
                Ok(Once::Failed)
            }
        }
    }

    /// The model request for the current context (`context`, when the caller already built
    /// it).
    pub(super) async fn build_request(
        &mut self,
        model: &str,
        context: Option<Projection>,
    ) -> HostResult<ModelRequest> {
        let projection = match context {
            Some(p) => p,
            None => self.projection().await?.0,
        };
        let mut system = Vec::new();
        if let Some(s) = self
            .agent
            .get("system")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            system.push(SystemBlock::new(s));
        }
        if let Some(note) = self.mounts_prompt().await {
            system.push(SystemBlock::new(note));
        }
        for extra in projection.system_extra {
            system.push(SystemBlock::new(extra));
        }
        let mut messages = projection.messages;
        self.attach_files(&mut messages).await;
        let mut req = ModelRequest::new(model, messages, self.rt.inner().config.max_tokens);
        req.system = system;
        req.tools = self.tool_specs();
        if let Some(effort) = self
            .agent
            .pointer("/model/effort/type")
            .and_then(Value::as_str)
        {
            req.effort = Some(effort.to_string());
        }
        Ok(req)
    }

    /// Streams one model request, checkpointing partial text and watching for an interrupt.
    pub(super) async fn stream_once(
        &mut self,
        provider: &dyn oma_model::ModelProvider,
        request: ModelRequest,
        span_id: &str,
    ) -> HostResult<Streamed> {
        let mut acc = Accumulator::new();
        let mut ids = PreviewIds::default();
        let mut stream = tokio::select! {
            r = provider.stream(request) => match r {
                Ok(s) => s,
                Err(error) => return Ok(Streamed::Failed { error, partial: vec![], ids }),
            },
            inputs = self.interrupt_signal() => {
                let inputs = inputs?;
                return Ok(Streamed::Interrupted { partial: vec![], inputs, ids });
            }
        };
        // Partial text is checkpointed at most every `every`, and at the latest `every` after
        // it changed, even when the stream then stalls: a crash keeps what was streamed.
        let every = self.rt.inner().config.checkpoint_every;
        let mut dirty_since: Option<Instant> = None;
        loop {
            let checkpoint_due = dirty_since.map(|t| t + every);
            tokio::select! {
                next = stream.next() => match next {
                    Some(Ok(ev)) => {
                        let finished = matches!(ev, StreamEvent::Finished { .. });
                        if matches!(ev, StreamEvent::TextDelta { .. }) && dirty_since.is_none() {
                            dirty_since = Some(Instant::now());
                        }
                        self.preview(&ev, &mut ids);
                        if let Err(error) = acc.push(&ev) {
                            return Ok(Streamed::Failed { error, partial: texts_of(&acc.partial()), ids });
                        }
                        if finished {
                            return Ok(Streamed::Complete(acc, ids));
                        }
                    }
                    Some(Err(error)) => return Ok(Streamed::Failed { error, partial: texts_of(&acc.partial()), ids }),
                    None => {
                        let error = ModelError::incomplete("the model stream ended before the response was complete");
                        return Ok(Streamed::Failed { error, partial: texts_of(&acc.partial()), ids });
                    }
                },
                _ = sleep_until_opt(checkpoint_due) => {
                    let partial = json!({"text": texts_of(&acc.partial())});
                    self.store.save_stream_checkpoint(&self.tenant, &self.session, span_id, &partial).await?;
                    dirty_since = None;
                }
                inputs = self.interrupt_signal() => {
                    let inputs = inputs?;
                    drop(stream);
                    return Ok(Streamed::Interrupted { partial: texts_of(&acc.partial()), inputs, ids });
                }
            }
        }
    }

    /// Publishes the live preview of what a stream event adds (`event_start` when a text or
    /// thinking block begins, `event_delta` per text fragment).
    pub(super) fn preview(&self, ev: &StreamEvent, ids: &mut PreviewIds) {
        let hub = self.rt.hub();
        match ev {
            StreamEvent::BlockStart {
                index,
                kind: oma_model::BlockKind::Text,
            } => {
                let slot = ids.text_slots.len();
                ids.text_slots.insert(*index, slot);
                if ids.message.is_none() {
                    let id = oma_core::ids::new_id(oma_core::ids::EVENT);
                    ids.message = Some(id.clone());
                    hub.preview(
                        &self.session,
                        Preview {
                            thread_id: self.current_thread().map(str::to_string),
                            event_type: "agent.message",
                            event_id: id,
                            delta: None,
                        },
                    );
                }
            }
            StreamEvent::BlockStart {
                kind: oma_model::BlockKind::Thinking | oma_model::BlockKind::RedactedThinking { .. },
                ..
            } if ids.thinking.is_none() => {
                let id = oma_core::ids::new_id(oma_core::ids::EVENT);
                ids.thinking = Some(id.clone());
                hub.preview(
                    &self.session,
                    Preview {
                        thread_id: self.current_thread().map(str::to_string),
                        event_type: "agent.thinking",
                        event_id: id,
                        delta: None,
                    },
                );
            }
            StreamEvent::TextDelta { index, text } if !text.is_empty() => {
                if let (Some(id), Some(slot)) = (&ids.message, ids.text_slots.get(index)) {
                    hub.preview(
                        &self.session,
                        Preview {
                            thread_id: self.current_thread().map(str::to_string),
                            event_type: "agent.message",
                            event_id: id.clone(),
                            delta: Some((*slot, text.clone())),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    /// Resolves when a `user.interrupt` is queued, with the queue up to and including it.
    /// Whether queued input is an interrupt of the thread being run: one of the whole session
    /// (no `session_thread_id`), or one aimed at this thread.
    pub(super) fn interrupts_me(&self, q: &QueuedInput) -> bool {
        if q.kind != "user.interrupt" {
            return false;
        }
        match q.body.get("session_thread_id").and_then(Value::as_str) {
            None => true,
            Some(t) => Some(t) == self.current_thread().or(self.primary_thread.as_deref()),
        }
    }

    pub(super) async fn interrupt_signal(&self) -> HostResult<Vec<QueuedInput>> {
        loop {
            self.notify.notified().await;
            let inputs = self
                .store
                .pending_inputs(&self.tenant, &self.session)
                .await?;
            if let Some(pos) = inputs.iter().position(|q| self.interrupts_me(q)) {
                return Ok(inputs[..=pos].to_vec());
            }
        }
    }

    /// Sleeps `delay` unless an interrupt arrives first.
    pub(super) async fn wait_or_interrupt(
        &self,
        delay: Duration,
    ) -> HostResult<Option<Vec<QueuedInput>>> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(None),
            inputs = self.interrupt_signal() => Ok(Some(inputs?)),
        }
    }

    pub(super) async fn record_response(
        &mut self,
        acc: Accumulator,
        span_id: &str,
        ids: PreviewIds,
    ) -> HostResult<Sampled> {
        let completion = match acc.finish() {
            Ok(c) => c,
            Err(error) => {
                let events = vec![record::model_request_end(span_id, &Usage::default(), true)];
                self.commit(Step {
                    events,
                    close_stream: Some(span_id.to_string()),
                    ..Step::default()
                })
                .await?;
                return self
                    .give_up(error_type(&error), &error.to_string(), None)
                    .await;
            }
        };
        let refused = completion.stop_reason == oma_model::StopReason::Refusal;
        let (message, usage) = (completion.message, completion.usage);
        self.tokens += usage;
        let mut events = Vec::new();
        if message.content.iter().any(|b| {
            matches!(
                b,
                oma_model::types::Block::Thinking { .. }
                    | oma_model::types::Block::RedactedThinking { .. }
            )
        }) {
            events.push(record::with_id(record::agent_thinking(), ids.thinking));
        }
        let texts = texts_of(&message);
        if !texts.is_empty() {
            events.push(record::with_id(record::agent_message(&texts), ids.message));
        }
        let permissions = self.permissions();
        let custom: HashSet<String> = self.custom_tool_names();
        let mut tool_calls = false;
        // A refused response ends the turn: nothing it may have started to call runs.
        for (_, name, input) in message.tool_uses().filter(|_| !refused) {
            tool_calls = true;
            if custom.contains(name) {
                events.push(record::custom_tool_use(name, input));
            } else if let Some(event) = self.mcp.tool_use(name, input) {
                events.push(event);
            } else {
                // A tool the toolset does not offer is refused when it is settled.
                let policy = permissions
                    .get(name)
                    .copied()
                    .unwrap_or(oma_api::agents::PermissionPolicy::AlwaysAllow);
                let evaluated = crate::permission::evaluate_builtin(policy, name, input);
                events.push(record::tool_use(name, input, &evaluated));
            }
        }
        events.push(record::model_request_end(span_id, &usage, false));
        let mut status = None;
        // With an outcome being worked on, a final answer goes to the grader, not to idle.
        let graded = !tool_calls && !refused && self.active_outcome().await?.is_some();
        if !tool_calls && !graded {
            // The turn ends with this answer: record its end in the same step.
            if let Some(since) = self.running_since.take() {
                self.active_seconds += since.elapsed().as_secs_f64();
            }
            if refused {
                events.push(self.usage_event());
                events.push(record::status_idle_refused(
                    completion.stop_details.as_ref(),
                ));
            } else if self.over_budget() {
                events.extend(self.budget_stop(IdleReason::EndTurn).await?);
            } else {
                events.push(self.usage_event());
                events.push(record::status_idle(IdleReason::EndTurn, &[]));
            }
            status = Some("idle");
        }
        self.commit(Step {
            events,
            status,
            usage: Some(self.usage_json()),
            close_stream: Some(span_id.to_string()),
            ..Step::default()
        })
        .await?;
        Ok(Sampled::Done {
            tool_calls: tool_calls || graded,
        })
    }

    pub(super) async fn clear_checkpoint(&mut self, span_id: &str) -> HostResult<()> {
        self.commit(Step {
            close_stream: Some(span_id.to_string()),
            ..Step::default()
        })
        .await?;
        Ok(())
    }
}

/// What compaction made of the context before a model request.
pub(super) enum Compacted {
    /// Ready to send: the context when it was built already, `None` to build it afresh.
    Ready(Option<Projection>),
    /// Compacted this many times in a row and it still does not fit.
    LimitReached(u32),
}

/// One compaction step.
pub(super) enum Once {
    Fits(Projection),
    Compacted,
    /// The summary request failed; the request goes out as it is.
    Failed,
    /// It does not fit and may not be compacted again.
    TooMany,
}

/// How a model request ended.
pub(super) enum Sampled {
    /// The response is in the log; `tool_calls` says whether the turn continues.
    Done { tool_calls: bool },
    /// The turn is over (interrupted, or retries exhausted); the host has recorded why.
    TurnOver,
}

pub(super) enum Streamed {
    Complete(Accumulator, PreviewIds),
    Interrupted {
        partial: Vec<String>,
        inputs: Vec<QueuedInput>,
        ids: PreviewIds,
    },
    Failed {
        error: ModelError,
        partial: Vec<String>,
        ids: PreviewIds,
    },
}

/// The ids promised to preview subscribers (`event_start`) for the events this model request
/// is producing; the buffered events carry them, so previews and events reconcile by id.
#[derive(Debug, Default, Clone)]
pub(super) struct PreviewIds {
    pub(super) message: Option<String>,
    pub(super) thinking: Option<String>,
    /// Model content-block index → position in the `agent.message` content array.
    pub(super) text_slots: HashMap<usize, usize>,
}

pub(super) const SUMMARY_SYSTEM: &str = "You compact the history of an agent session. Write a faithful, \
     self-contained summary that lets the agent continue the work without the original messages.";

pub(super) const SUMMARY_REQUEST: &str = "Summarise the conversation above for your own later use: the user's goals and \
     instructions, decisions made, facts learned (file paths, commands, results, errors), the current state of the \
     work, and what remains to do. Be specific and complete; omit pleasantries.";

pub(super) fn compaction_preamble(summary: &str) -> String {
    format!(
        "[Earlier parts of this session were compacted. Summary of what happened so far:]\n{summary}"
    )
}

/// A rough token count of a context (about four bytes of JSON per token), enough to decide
/// when to compact without a tokenizer.
pub(super) fn estimate_tokens(p: &Projection) -> u64 {
    let bytes = serde_json::to_string(&p.messages).map_or(0, |s| s.len())
        + p.system_extra.iter().map(String::len).sum::<usize>();
    (bytes / 4) as u64
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
pub(super) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

pub(super) fn error_type(e: &ModelError) -> &'static str {
    match e.kind() {
        ErrorClass::RateLimited => "model_rate_limited_error",
        ErrorClass::Overloaded => "model_overloaded_error",
        ErrorClass::Billing => "billing_error",
        ErrorClass::Other => "unknown_error",
        _ => "model_request_failed_error",
    }
}

pub(super) fn texts_of(m: &Message) -> Vec<String> {
    m.content
        .iter()
        .filter_map(|b| match b {
            oma_model::types::Block::Text { text, .. } if !text.is_empty() => Some(text.clone()),
            _ => None,
        })
        .collect()
}
