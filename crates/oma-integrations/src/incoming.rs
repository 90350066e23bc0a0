//! What a verified delivery asks of the agent: a turn in a conversation, a challenge to
//! answer, or nothing.
//!
//! - Slack: `event_callback` with an `app_mention`, or a `message` in a DM (`channel_type`
//!   `im`) that no bot wrote; the conversation is the thread (`thread_ts`, else the message's
//!   `ts`) in its channel; the delivery id is `event_id` (retries carry the same one).
//! - GitHub: `issue_comment` `created` on an issue or a pull request, mentioning `@<app-slug>`
//!   and not written by a bot; the conversation is `owner/repo#number`; the delivery id is
//!   `X-GitHub-Delivery`.
//! - Linear: `AgentSessionEvent` `created` (the prompt context) or `prompted` (the new
//!   activity's body); the conversation is the agent session; the delivery id is
//!   `Linear-Delivery` (else `webhookId`).

use serde_json::{Value, json};

use crate::Kind;

/// A turn the delivery asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub delivery_id: String,
    /// What happened, for ops events (`app_mention`, `issue_comment`, …).
    pub event: String,
    pub conversation: String,
    /// The text given to the agent.
    pub text: String,
    /// Where the reply goes; carries `scope`, the names a capability gate matches.
    pub target: Value,
    /// The title of a new session.
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Slack's `url_verification`: answer the challenge, run nothing.
    Challenge(String),
    /// Nothing for the agent (`event` says what it was); acknowledged so it is not retried.
    Ignored {
        delivery_id: Option<String>,
        event: String,
    },
    Turn(Turn),
}

/// The headers the parsers read (already as text).
#[derive(Debug, Clone, Default)]
pub struct DeliveryHeaders {
    pub github_event: Option<String>,
    pub github_delivery: Option<String>,
    pub linear_delivery: Option<String>,
}

fn s(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).and_then(Value::as_str).map(str::to_string)
}

/// Reads a verified body. `handle` is the name the agent answers to (GitHub app slug).
pub fn parse(
    kind: Kind,
    body: &Value,
    headers: &DeliveryHeaders,
    handle: Option<&str>,
) -> Result<Incoming, String> {
    match kind {
        Kind::Slack => slack(body),
        Kind::Github => github(body, headers, handle),
        Kind::Linear => linear(body, headers),
    }
}

fn slack(body: &Value) -> Result<Incoming, String> {
    let ty = s(body, "/type").unwrap_or_default();
    if ty == "url_verification" {
        let challenge = s(body, "/challenge").ok_or("url_verification without `challenge`")?;
        return Ok(Incoming::Challenge(challenge));
    }
    let delivery_id = s(body, "/event_id");
    if ty != "event_callback" {
        return Ok(Incoming::Ignored {
            delivery_id,
            event: ty,
        });
    }
    let delivery_id = delivery_id.ok_or("event_callback without `event_id`")?;
    let ev = body.get("event").ok_or("event_callback without `event`")?;
    let ev_type = s(ev, "/type").unwrap_or_default();
    let from_bot = ev.get("bot_id").is_some_and(|b| !b.is_null())
        || ev.get("subtype").is_some_and(|b| !b.is_null());
    let event = match ev_type.as_str() {
        "app_mention" => "app_mention".to_string(),
        "message" if s(ev, "/channel_type").as_deref() == Some("im") => "message.im".to_string(),
        other => {
            return Ok(Incoming::Ignored {
                delivery_id: Some(delivery_id),
                event: other.to_string(),
            });
        }
    };
    if from_bot {
        return Ok(Incoming::Ignored {
            delivery_id: Some(delivery_id),
            event: format!("{event}.bot"),
        });
    }
    let channel = s(ev, "/channel").ok_or("the event has no `channel`")?;
    let ts = s(ev, "/ts").ok_or("the event has no `ts`")?;
    let text = s(ev, "/text").unwrap_or_default();
    let user = s(ev, "/user").unwrap_or_default();
    // A channel mention is answered in its thread (the thread's root, or the message itself);
    // a direct message outside a thread belongs to the DM as a whole, answered in the DM.
    let (conversation, thread_ts) = match s(ev, "/thread_ts") {
        Some(t) => (format!("{channel}/{t}"), Some(t)),
        None if event == "message.im" => (channel.clone(), None),
        None => (format!("{channel}/{ts}"), Some(ts)),
    };
    Ok(Incoming::Turn(Turn {
        delivery_id,
        event,
        title: format!("Slack {conversation}"),
        conversation,
        text: format!("[Slack message from <@{user}> in {channel}]\n{text}"),
        target: json!({"channel": channel, "thread_ts": thread_ts, "scope": [channel]}),
    }))
}

fn github(body: &Value, h: &DeliveryHeaders, handle: Option<&str>) -> Result<Incoming, String> {
    let event = h
        .github_event
        .clone()
        .ok_or("the `X-GitHub-Event` header is missing")?;
    let delivery_id = h
        .github_delivery
        .clone()
        .ok_or("the `X-GitHub-Delivery` header is missing")?;
    let action = s(body, "/action").unwrap_or_default();
    if event != "issue_comment" || action != "created" {
        return Ok(Incoming::Ignored {
            delivery_id: Some(delivery_id),
            event: format!("{event}.{action}"),
        });
    }
    let comment = s(body, "/comment/body").unwrap_or_default();
    let author = s(body, "/comment/user/login").unwrap_or_default();
    let bot = s(body, "/comment/user/type").as_deref() == Some("Bot");
    let mentioned = handle.is_some_and(|h| mentions(&comment, h));
    if bot || !mentioned {
        return Ok(Incoming::Ignored {
            delivery_id: Some(delivery_id),
            event: if bot {
                "issue_comment.bot".into()
            } else {
                "issue_comment.not_mentioned".into()
            },
        });
    }
    let repo = s(body, "/repository/full_name").ok_or("the payload has no repository")?;
    let number = body
        .pointer("/issue/number")
        .and_then(Value::as_i64)
        .ok_or("the payload has no issue number")?;
    let is_pr = body.pointer("/issue/pull_request").is_some();
    let what = if is_pr { "pull request" } else { "issue" };
    let title = s(body, "/issue/title").unwrap_or_default();
    Ok(Incoming::Turn(Turn {
        delivery_id,
        event: "issue_comment".into(),
        conversation: format!("{repo}#{number}"),
        text: format!(
            "[GitHub comment by @{author} on {what} {repo}#{number}: {title}]\n{comment}"
        ),
        title: format!("GitHub {repo}#{number}"),
        target: json!({"repo": repo, "number": number, "scope": [repo]}),
    }))
}

/// Whether `text` mentions `@handle` as a whole word (GitHub logins are case-insensitive).
fn mentions(text: &str, handle: &str) -> bool {
    let needle = format!("@{}", handle.trim_start_matches('@')).to_ascii_lowercase();
    let hay = text.to_ascii_lowercase();
    hay.match_indices(&needle).any(|(i, _)| {
        let after = hay[i + needle.len()..].chars().next();
        !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    })
}

fn linear(body: &Value, h: &DeliveryHeaders) -> Result<Incoming, String> {
    let ty = s(body, "/type").unwrap_or_default();
    let action = s(body, "/action").unwrap_or_default();
    let delivery_id = h.linear_delivery.clone().or_else(|| s(body, "/webhookId"));
    if ty != "AgentSessionEvent" || !matches!(action.as_str(), "created" | "prompted") {
        return Ok(Incoming::Ignored {
            delivery_id,
            event: format!("{ty}.{action}"),
        });
    }
    let delivery_id = delivery_id.ok_or("the `Linear-Delivery` header is missing")?;
    let session = s(body, "/agentSession/id").ok_or("the payload has no `agentSession.id`")?;
    let text = if action == "created" {
        s(body, "/promptContext")
            .or_else(|| s(body, "/agentSession/comment/body"))
            .unwrap_or_default()
    } else {
        s(body, "/agentActivity/content/body")
            .or_else(|| s(body, "/agentActivity/body"))
            .unwrap_or_default()
    };
    let issue = s(body, "/agentSession/issue/identifier").unwrap_or_default();
    let mut scope = Vec::new();
    for p in [
        "/agentSession/issue/team/key",
        "/agentSession/issue/team/id",
        "/agentSession/issue/teamId",
    ] {
        if let Some(t) = s(body, p)
            && !scope.contains(&t)
        {
            scope.push(t);
        }
    }
    Ok(Incoming::Turn(Turn {
        delivery_id,
        event: format!("AgentSessionEvent.{action}"),
        conversation: session.clone(),
        text: format!("[Linear agent session on {issue}]\n{text}"),
        title: format!("Linear {issue}"),
        target: json!({"agent_session_id": session, "scope": scope}),
    }))
}

/// Whether `allow` lets the agent act on a target with these `scope` names: `*` is
/// everywhere, `owner/*` every repository of an owner, anything else one exact name
/// (case-insensitively, as the services treat them).
pub fn allowed(allow: &[String], target: &Value) -> bool {
    let names: Vec<&str> = target
        .get("scope")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    allow.iter().any(|a| {
        a == "*"
            || names.iter().any(|n| {
                n.eq_ignore_ascii_case(a)
                    || a.strip_suffix("/*").is_some_and(|owner| {
                        n.split_once('/')
                            .is_some_and(|(o, _)| o.eq_ignore_ascii_case(owner))
                    })
            })
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn slack_events() {
        let c = parse(
            Kind::Slack,
            &json!({"type": "url_verification", "challenge": "abc", "token": "t"}),
            &DeliveryHeaders::default(),
            None,
        )
        .unwrap();
        assert_eq!(c, Incoming::Challenge("abc".into()));
        let mention = json!({"type": "event_callback", "event_id": "Ev1", "team_id": "T1",
            "event": {"type": "app_mention", "user": "U1", "text": "<@UBOT> hi", "ts": "1.2",
                      "channel": "C1", "event_ts": "1.2"}});
        let Incoming::Turn(t) =
            parse(Kind::Slack, &mention, &DeliveryHeaders::default(), None).unwrap()
        else {
            panic!("a mention is a turn")
        };
        assert_eq!(t.delivery_id, "Ev1");
        assert_eq!(t.conversation, "C1/1.2");
        assert_eq!(t.target["thread_ts"], "1.2");
        // In a thread: the thread's root is the conversation.
        let mut threaded = mention.clone();
        threaded["event"]["thread_ts"] = json!("1.0");
        let Incoming::Turn(t) =
            parse(Kind::Slack, &threaded, &DeliveryHeaders::default(), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(t.conversation, "C1/1.0");
        // A DM is a turn; a bot's own DM message is not; a channel message is not.
        let dm = json!({"type": "event_callback", "event_id": "Ev2", "event": {"type": "message",
            "channel_type": "im", "channel": "D1", "user": "U1", "text": "hey", "ts": "3.4"}});
        let Incoming::Turn(t) = parse(Kind::Slack, &dm, &DeliveryHeaders::default(), None).unwrap()
        else {
            panic!("a DM is a turn")
        };
        // The whole DM is one conversation, answered in the DM itself.
        assert_eq!(t.conversation, "D1");
        assert!(t.target["thread_ts"].is_null());
        let mut bot = dm.clone();
        bot["event"]["bot_id"] = json!("B1");
        assert!(matches!(
            parse(Kind::Slack, &bot, &DeliveryHeaders::default(), None).unwrap(),
            Incoming::Ignored { .. }
        ));
        let mut chan = dm;
        chan["event"]["channel_type"] = json!("channel");
        assert!(matches!(
            parse(Kind::Slack, &chan, &DeliveryHeaders::default(), None).unwrap(),
            Incoming::Ignored { .. }
        ));
    }

    #[test]
    fn github_mentions_and_gates() {
        let h = DeliveryHeaders {
            github_event: Some("issue_comment".into()),
            github_delivery: Some("d-1".into()),
            ..Default::default()
        };
        let body = json!({"action": "created", "issue": {"number": 7, "title": "Bug",
            "pull_request": {"url": "x"}}, "comment": {"body": "@oma-bot please look",
            "user": {"login": "alice", "type": "User"}},
            "repository": {"full_name": "acme/web", "name": "web", "owner": {"login": "acme"}}});
        let Incoming::Turn(t) = parse(Kind::Github, &body, &h, Some("oma-bot")).unwrap() else {
            panic!()
        };
        assert_eq!(t.conversation, "acme/web#7");
        assert!(t.text.contains("pull request"));
        assert!(matches!(
            parse(Kind::Github, &body, &h, Some("oma")).unwrap(),
            Incoming::Ignored { .. }
        ));
        assert!(allowed(&["acme/*".into()], &t.target));
        assert!(allowed(&["ACME/web".into()], &t.target));
        assert!(!allowed(&["acme/api".into()], &t.target));
        assert!(!allowed(&[], &t.target));
        assert!(allowed(&["*".into()], &t.target));
    }

    #[test]
    fn linear_agent_sessions() {
        let h = DeliveryHeaders {
            linear_delivery: Some("ld-1".into()),
            ..Default::default()
        };
        let created = json!({"type": "AgentSessionEvent", "action": "created",
            "webhookTimestamp": 1, "promptContext": "<issue>fix it</issue>",
            "agentSession": {"id": "as-1", "issue": {"identifier": "ENG-1",
                "team": {"id": "team-uuid", "key": "ENG"}}}});
        let Incoming::Turn(t) = parse(Kind::Linear, &created, &h, None).unwrap() else {
            panic!()
        };
        assert_eq!(t.conversation, "as-1");
        assert!(t.text.contains("fix it"));
        assert!(allowed(&["ENG".into()], &t.target));
        assert!(!allowed(&["OPS".into()], &t.target));
        let prompted = json!({"type": "AgentSessionEvent", "action": "prompted",
            "agentSession": {"id": "as-1"}, "agentActivity": {"content": {"type": "prompt",
            "body": "and the tests"}}});
        let Incoming::Turn(t) = parse(Kind::Linear, &prompted, &h, None).unwrap() else {
            panic!()
        };
        assert!(t.text.ends_with("and the tests"));
    }
}
