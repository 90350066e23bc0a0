//! Both providers against the fake servers of `oma-testkit`, over real loopback HTTP.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use oma_model::retry::{Backoff, open_with_retry};
use oma_model::{
    Accumulator, AnthropicConfig, AnthropicProvider, Block, BlockKind, ErrorClass, EventStream,
    Message, ModelError, ModelProvider, ModelRequest, ModelRouter, OpenAiConfig, OpenAiProvider,
    StopReason, StreamEvent, SystemBlock, Timeouts, ToolSpec, complete,
};
use oma_testkit::fake_anthropic::FakeAnthropic;
use oma_testkit::fake_model::{FakeBlock, FakeUsage, Gate, Reply};
use oma_testkit::fake_openai::FakeOpenAi;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

fn anthropic(fake: &FakeAnthropic) -> AnthropicProvider {
    AnthropicProvider::new(AnthropicConfig::new(&fake.base_url, "sk-ant-test")).unwrap()
}

fn openai(fake: &FakeOpenAi) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiConfig::new(fake.api_base(), "sk-test")).unwrap()
}

fn request(text: &str) -> ModelRequest {
    ModelRequest::new("claude-sonnet-4-5", vec![Message::user_text(text)], 1024)
}

fn bash_tool() -> ToolSpec {
    ToolSpec {
        name: "bash".into(),
        description: "Run a command".into(),
        input_schema: json!({"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}),
    }
}

async fn open(p: &dyn ModelProvider, req: ModelRequest) -> Result<EventStream, ModelError> {
    tokio::time::timeout(WAIT, p.stream(req))
        .await
        .expect("headers in time")
}

/// Drains a stream: its events, and the error it ended with if any.
async fn drain(mut s: EventStream) -> (Vec<StreamEvent>, Option<ModelError>) {
    let mut events = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, s.next())
            .await
            .expect("stream progress in time")
        {
            Some(Ok(e)) => events.push(e),
            Some(Err(e)) => {
                assert!(s.next().await.is_none(), "nothing after an error");
                return (events, Some(e));
            }
            None => return (events, None),
        }
    }
}

fn fold(events: &[StreamEvent]) -> Accumulator {
    let mut acc = Accumulator::new();
    for e in events {
        acc.push(e).unwrap();
    }
    acc
}

// ---------------------------------------------------------------------------------------------
// Anthropic

#[tokio::test]
async fn anthropic_text_and_request_shape() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("Hello there, world!"));
    let p = anthropic(&fake);
    let mut req = request("hi");
    req.system = vec![SystemBlock::new("You are terse.")];
    let c = complete(&p, req).await.unwrap();
    assert_eq!(c.message.text(), "Hello there, world!");
    assert_eq!(c.stop_reason, StopReason::EndTurn);
    assert_eq!(c.model, "claude-sonnet-4-5");
    assert!(c.message_id.starts_with("msg_"));
    assert!(c.usage.input_tokens > 0);
    assert_eq!(c.usage.output_tokens, 5); // 19 chars / 4, rounded up

    let rec = fake.recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].path, "/v1/messages");
    assert_eq!(
        rec[0].headers.get("x-api-key").map(String::as_str),
        Some("sk-ant-test")
    );
    assert_eq!(
        rec[0].headers.get("anthropic-version").map(String::as_str),
        Some("2023-06-01")
    );
    assert_eq!(
        rec[0].headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let body = &rec[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["system"],
        json!([{"type": "text", "text": "You are terse."}])
    );
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    );
}

#[tokio::test]
async fn anthropic_thinking_and_tool_use_round_trip() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::thinking(
        "The user wants a listing.",
        Reply::ToolUse {
            text: Some("Let me look.".into()),
            name: "bash".into(),
            input: json!({"command": "ls -la /tmp"}),
        },
    ));
    fake.push(Reply::text("There are two files."));
    let p = anthropic(&fake);
    let mut req = request("what is in /tmp?");
    req.tools = vec![bash_tool()];
    req.thinking = Some(2048);
    req.max_tokens = 4096;

    let (events, err) = drain(open(&p, req.clone()).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert!(matches!(
        &events[1],
        StreamEvent::BlockStart {
            index: 0,
            kind: BlockKind::Thinking
        }
    ));
    let c = fold(&events).finish().unwrap();
    assert_eq!(c.stop_reason, StopReason::ToolUse);
    let [
        Block::Thinking {
            thinking,
            signature,
        },
        Block::Text { text, .. },
        Block::ToolUse { id, name, input },
    ] = c.message.content.as_slice()
    else {
        panic!("unexpected content {:?}", c.message.content);
    };
    assert_eq!(thinking, "The user wants a listing.");
    assert!(!signature.is_empty());
    assert_eq!(text, "Let me look.");
    assert_eq!(name, "bash");
    assert_eq!(input, &json!({"command": "ls -la /tmp"}));

    // Second turn: the assistant message (with its signed thinking) and the tool result go back;
    // the fake checks the pairing like the real API.
    req.messages.push(c.message.clone());
    req.messages.push(Message::user(vec![Block::tool_result(
        id.clone(),
        "a.txt\nb.txt",
        false,
    )]));
    let c2 = complete(&p, req).await.unwrap();
    assert_eq!(c2.message.text(), "There are two files.");

    let bodies = fake.requests();
    assert_eq!(bodies[0]["tools"][0]["name"], "bash");
    assert_eq!(
        bodies[0]["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    let sent = &bodies[1]["messages"];
    assert_eq!(sent[1]["content"][0]["type"], "thinking");
    assert_eq!(sent[1]["content"][0]["signature"], json!(signature));
    assert_eq!(
        sent[2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": "a.txt\nb.txt"}]})
    );
}

#[tokio::test]
async fn anthropic_several_tools_and_redacted_thinking() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::RedactedThinking {
        data: "opaque-blob".into(),
        reply: Box::new(Reply::ToolUses {
            text: None,
            calls: vec![
                ("read".into(), json!({"path": "a"})),
                ("read".into(), json!({"path": "b"})),
            ],
        }),
    });
    let c = complete(&anthropic(&fake), request("read both"))
        .await
        .unwrap();
    assert_eq!(
        c.message.content[0],
        Block::RedactedThinking {
            data: "opaque-blob".into()
        }
    );
    let inputs: Vec<_> = c.message.tool_uses().map(|t| t.2.clone()).collect();
    assert_eq!(inputs, vec![json!({"path": "a"}), json!({"path": "b"})]);
    let ids: Vec<_> = c.message.tool_uses().map(|t| t.0.to_string()).collect();
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn anthropic_usage_with_prompt_cache() {
    let fake = FakeAnthropic::start().await;
    fake.set_default(Some(Reply::text("ok")));
    let p = anthropic(&fake);
    let mut req = request("question one");
    req.system = vec![SystemBlock {
        text: "A long and stable system prompt. ".repeat(40),
        cache: true,
    }];
    let first = complete(&p, req.clone()).await.unwrap().usage;
    assert!(first.cache_creation_input_tokens > 300, "{first:?}");
    assert_eq!(first.cache_read_input_tokens, 0);
    req.messages = vec![Message::user_text("question two")];
    let second = complete(&p, req).await.unwrap().usage;
    assert_eq!(
        second.cache_read_input_tokens,
        first.cache_creation_input_tokens
    );
    assert_eq!(second.cache_creation_input_tokens, 0);
    assert_eq!(
        fake.requests()[0]["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );

    // Explicit numbers pass through unchanged, from message_start and message_delta.
    let usage = FakeUsage {
        input_tokens: 11,
        output_tokens: 22,
        cache_creation_input_tokens: 33,
        cache_read_input_tokens: 44,
    };
    fake.push(Reply::text("x").with_usage(usage));
    let (events, _) = drain(open(&p, request("q")).await.unwrap()).await;
    let StreamEvent::Started { usage: u0, .. } = &events[0] else {
        panic!()
    };
    assert_eq!(
        (
            u0.input_tokens,
            u0.cache_read_input_tokens,
            u0.output_tokens
        ),
        (11, 44, 1)
    );
    let u = fold(&events).finish().unwrap().usage;
    assert_eq!(
        (
            u.input_tokens,
            u.output_tokens,
            u.cache_creation_input_tokens,
            u.cache_read_input_tokens
        ),
        (11, 22, 33, 44)
    );
}

#[tokio::test]
async fn anthropic_overloaded_is_retryable_with_retry_after() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::Error {
        status: 529,
        error_type: "overloaded_error".into(),
        retry_after: Some(3),
    });
    let err = open(&anthropic(&fake), request("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::Overloaded);
    assert!(err.retryable());
    assert_eq!(err.status(), Some(529));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert_eq!(err.error_type(), Some("overloaded_error"));
    assert!(err.request_id().is_some_and(|r| r.starts_with("req_")));

    fake.push(Reply::error(429, "rate_limit_error"));
    let err = open(&anthropic(&fake), request("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::RateLimited);
    assert!(err.retryable());
}

#[tokio::test]
async fn anthropic_auth_and_invalid_requests_are_terminal() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::error(401, "authentication_error"));
    let err = open(&anthropic(&fake), request("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::Auth);
    assert!(!err.retryable());
    assert_eq!(err.message(), "invalid x-api-key");

    // The fake checks conversations like the real API: an unanswered tool_use is a 400.
    fake.push(Reply::text("unused"));
    let mut req = request("hi");
    req.messages.push(Message::assistant(vec![Block::ToolUse {
        id: "toolu_x".into(),
        name: "bash".into(),
        input: json!({}),
    }]));
    req.messages.push(Message::user_text("and?"));
    let err = open(&anthropic(&fake), req).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::InvalidRequest);
    assert!(!err.retryable());
    assert!(err.message().contains("tool_result"), "{err}");
    assert_eq!(fake.remaining(), 1);
}

#[tokio::test]
async fn anthropic_dropped_connection_is_retryable() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("This answer will be cut off in the middle.").drop_after(4));
    let (events, err) = drain(open(&anthropic(&fake), request("hi")).await.unwrap()).await;
    let err = err.expect("an error after the drop");
    assert_eq!(err.kind(), ErrorClass::Connection, "{err}");
    assert!(err.retryable());
    // message_start, block start, one delta, ping were delivered; the partial keeps the text.
    assert!(!events.is_empty());
    let acc = fold(&events);
    assert!(!acc.partial().text().is_empty());
    assert!(acc.finish().is_err());
    assert_eq!(fake.counts().dropped, 1);
}

#[tokio::test]
async fn anthropic_error_event_mid_stream() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("partial answer").stream_error(3, "overloaded_error"));
    let (events, err) = drain(open(&anthropic(&fake), request("hi")).await.unwrap()).await;
    assert_eq!(events.len(), 3);
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorClass::Overloaded);
    assert!(err.retryable());
}

#[tokio::test]
async fn anthropic_cancel_by_dropping_the_stream() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::text("word ".repeat(200)).slow(Duration::from_millis(20)));
    let mut s = open(&anthropic(&fake), request("hi")).await.unwrap();
    for _ in 0..3 {
        s.next().await.unwrap().unwrap();
    }
    drop(s);
    tokio::time::timeout(WAIT, fake.wait_cancelled(1))
        .await
        .expect("the fake saw the connection close");
    assert_eq!(fake.counts().completed, 0);
}

#[tokio::test]
async fn anthropic_gated_stream_gives_a_partial_then_completes() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(
        Reply::ToolUse {
            text: Some("Checking.".into()),
            name: "bash".into(),
            input: json!({"command": "pwd"}),
        }
        // message_start, content_block_start, one text delta, ping, content_block_stop.
        .gated(5, &gate),
    );
    let mut s = open(&anthropic(&fake), request("hi")).await.unwrap();
    tokio::time::timeout(WAIT, gate.reached()).await.unwrap();
    let mut acc = Accumulator::new();
    for _ in 0..4 {
        acc.push(&s.next().await.unwrap().unwrap()).unwrap();
    }
    assert_eq!(acc.partial().text(), "Checking.");
    assert!(acc.partial().tool_uses().next().is_none());
    gate.open();
    while let Some(e) = tokio::time::timeout(WAIT, s.next()).await.unwrap() {
        acc.push(&e.unwrap()).unwrap();
    }
    let c = acc.finish().unwrap();
    assert_eq!(c.message.tool_uses().count(), 1);
    tokio::time::timeout(WAIT, fake.wait_completed(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn anthropic_cancel_while_paused_at_a_gate() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::text("never finished").gated(2, &gate));
    let mut s = open(&anthropic(&fake), request("hi")).await.unwrap();
    s.next().await.unwrap().unwrap();
    tokio::time::timeout(WAIT, gate.reached()).await.unwrap();
    drop(s);
    tokio::time::timeout(WAIT, fake.wait_cancelled(1))
        .await
        .expect("the fake noticed the closed connection while paused");
}

#[tokio::test]
async fn anthropic_read_timeout_is_retryable() {
    let fake = FakeAnthropic::start().await;
    let gate = Gate::new();
    fake.push(Reply::text("stalls").gated(2, &gate));
    let mut cfg = AnthropicConfig::new(&fake.base_url, "k");
    cfg.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        read: Duration::from_millis(300),
    };
    let p = AnthropicProvider::new(cfg).unwrap();
    let (events, err) = drain(open(&p, request("hi")).await.unwrap()).await;
    assert_eq!(events.len(), 2);
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorClass::Timeout, "{err}");
    assert!(err.retryable());
}

#[tokio::test]
async fn anthropic_connection_refused_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let p = AnthropicProvider::new(AnthropicConfig::new(format!("http://{addr}"), "k")).unwrap();
    let err = open(&p, request("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::Connection, "{err}");
    assert!(err.retryable());
}

#[tokio::test]
async fn open_with_retry_waits_and_succeeds() {
    let fake = FakeAnthropic::start().await;
    fake.push(Reply::Error {
        status: 529,
        error_type: "overloaded_error".into(),
        retry_after: Some(0),
    });
    fake.push(Reply::error(500, "api_error"));
    fake.push(Reply::text("finally"));
    let p = anthropic(&fake);
    let backoff = Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(50),
        max_attempts: 5,
    };
    let mut retries = Vec::new();
    let s = open_with_retry(&p, &request("hi"), &backoff, |attempt, err, _| {
        retries.push((attempt, err.kind()))
    })
    .await
    .unwrap();
    let (events, err) = drain(s).await;
    assert!(err.is_none());
    assert_eq!(fold(&events).finish().unwrap().message.text(), "finally");
    assert_eq!(
        retries,
        vec![(1, ErrorClass::Overloaded), (2, ErrorClass::Server)]
    );

    // Terminal errors are not retried; attempts are bounded.
    fake.push(Reply::error(401, "authentication_error"));
    let err = open_with_retry(&p, &request("hi"), &backoff, |_, _, _| panic!("no retry"))
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorClass::Auth);
    fake.set_default(Some(Reply::error(503, "api_error")));
    let mut n = 0;
    let err = open_with_retry(&p, &request("hi"), &backoff, |_, _, _| n += 1)
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorClass::Server);
    assert_eq!(n, 4);
}

#[tokio::test]
async fn unscripted_request_fails_fast() {
    let fake = FakeAnthropic::start().await;
    let err = open(&anthropic(&fake), request("hi")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::InvalidRequest);
    assert!(err.message().contains("no scripted reply"));
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible

#[tokio::test]
async fn openai_text_usage_and_request_shape() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("Bonjour tout le monde"));
    let mut cfg = OpenAiConfig::new(fake.api_base(), "sk-test");
    cfg.model_map
        .insert("claude-sonnet-4-5".into(), "llama-3.1-8b".into());
    let p = OpenAiProvider::new(cfg).unwrap();
    let mut req = request("salut");
    req.system = vec![SystemBlock::new("Be French.")];
    let c = complete(&p, req).await.unwrap();
    assert_eq!(c.message.text(), "Bonjour tout le monde");
    assert_eq!(c.stop_reason, StopReason::EndTurn);
    assert_eq!(c.model, "llama-3.1-8b");
    assert!(c.usage.input_tokens > 0);
    assert_eq!(c.usage.output_tokens, 6); // 21 chars

    let rec = &fake.recorded()[0];
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(
        rec.headers.get("authorization").map(String::as_str),
        Some("Bearer sk-test")
    );
    assert_eq!(rec.body["model"], "llama-3.1-8b");
    assert_eq!(rec.body["stream"], true);
    assert_eq!(rec.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(
        rec.body["messages"],
        json!([{"role": "system", "content": "Be French."}, {"role": "user", "content": "salut"}])
    );
}

#[tokio::test]
async fn openai_tool_calls_round_trip() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::ToolUses {
        text: Some("Reading both.".into()),
        calls: vec![
            ("read".into(), json!({"path": "a"})),
            ("bash".into(), json!({"command": "wc -l b"})),
        ],
    });
    fake.push(Reply::text("a has 1 line, b has 2."));
    let p = openai(&fake);
    let mut req = request("summarize");
    req.tools = vec![bash_tool()];
    let c = complete(&p, req.clone()).await.unwrap();
    assert_eq!(c.stop_reason, StopReason::ToolUse);
    assert_eq!(c.message.text(), "Reading both.");
    let calls: Vec<_> = c
        .message
        .tool_uses()
        .map(|(id, n, i)| (id.to_string(), n.to_string(), i.clone()))
        .collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1, "read");
    assert_eq!(calls[1].2, json!({"command": "wc -l b"}));

    req.messages.push(c.message.clone());
    req.messages.push(Message::user(vec![
        Block::tool_result(calls[0].0.clone(), "1", false),
        Block::tool_result(calls[1].0.clone(), "2 b", false),
    ]));
    let c2 = complete(&p, req).await.unwrap();
    assert_eq!(c2.message.text(), "a has 1 line, b has 2.");
    let sent = &fake.requests()[1];
    assert_eq!(
        sent["tools"][0],
        json!({"type": "function", "function": {"name": "bash", "description": "Run a command", "parameters": bash_tool().input_schema}})
    );
    let m = sent["messages"].as_array().unwrap();
    assert_eq!(m[1]["tool_calls"].as_array().unwrap().len(), 2);
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": calls[0].0, "content": "1"})
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": calls[1].0, "content": "2 b"})
    );
}

#[tokio::test]
async fn openai_reasoning_and_cached_usage() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        Reply::Blocks {
            blocks: vec![
                FakeBlock::Thinking("step by step".into()),
                FakeBlock::Text("42".into()),
            ],
            stop_reason: "max_tokens".into(),
        }
        .with_usage(FakeUsage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 90,
        }),
    );
    let c = complete(&openai(&fake), request("q")).await.unwrap();
    assert_eq!(c.stop_reason, StopReason::MaxTokens);
    assert!(
        matches!(&c.message.content[0], Block::Thinking { thinking, .. } if thinking == "step by step")
    );
    assert_eq!(c.message.text(), "42");
    assert_eq!(
        (
            c.usage.input_tokens,
            c.usage.cache_read_input_tokens,
            c.usage.output_tokens
        ),
        (10, 90, 5)
    );
}

#[tokio::test]
async fn openai_errors_classified() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::Error {
        status: 429,
        error_type: "rate_limit_exceeded".into(),
        retry_after: Some(2),
    });
    fake.push(Reply::error(401, "invalid_api_key"));
    fake.push(Reply::error(503, "server_error"));
    let p = openai(&fake);
    let err = open(&p, request("q")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    let err = open(&p, request("q")).await.err().unwrap();
    assert_eq!(err.kind(), ErrorClass::Auth);
    assert!(!err.retryable());
    assert_eq!(err.message(), "Incorrect API key provided");
    let err = open(&p, request("q")).await.err().unwrap();
    assert!(err.retryable());
}

#[tokio::test]
async fn openai_drop_and_in_stream_error_are_retryable() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("cut short somewhere in here").drop_after(2));
    fake.push(Reply::text("also cut").stream_error(2, "server_error"));
    let p = openai(&fake);
    let (events, err) = drain(open(&p, request("q")).await.unwrap()).await;
    assert!(!events.is_empty());
    assert_eq!(err.unwrap().kind(), ErrorClass::Connection);
    let (_, err) = drain(open(&p, request("q")).await.unwrap()).await;
    let err = err.unwrap();
    assert_eq!(err.kind(), ErrorClass::Server);
    assert!(err.retryable());
}

#[tokio::test]
async fn openai_cancel_by_dropping_the_stream() {
    let fake = FakeOpenAi::start().await;
    fake.push(Reply::text("token ".repeat(200)).slow(Duration::from_millis(20)));
    let mut s = open(&openai(&fake), request("q")).await.unwrap();
    s.next().await.unwrap().unwrap();
    s.next().await.unwrap().unwrap();
    drop(s);
    tokio::time::timeout(WAIT, fake.wait_cancelled(1))
        .await
        .expect("the fake saw the connection close");
}

#[tokio::test]
async fn router_sends_each_model_to_its_provider() {
    let a = FakeAnthropic::start().await;
    let o = FakeOpenAi::start().await;
    a.push(Reply::text("from anthropic"));
    o.push(Reply::text("from openai"));
    let router = ModelRouter::new()
        .route("gpt-*", Arc::new(openai(&o)))
        .route("*", Arc::new(anthropic(&a)));
    let c = complete(&router, request("q")).await.unwrap();
    assert_eq!(c.message.text(), "from anthropic");
    let mut req = request("q");
    req.model = "gpt-4o".into();
    assert_eq!(
        complete(&router, req).await.unwrap().message.text(),
        "from openai"
    );
}
