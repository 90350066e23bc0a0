//! The self-hosted work queue's rules (spec §3.2.2, §3.2.3), without I/O: the state machine,
//! lease arithmetic, heartbeat preconditions, stop transitions, and the credentials workers
//! carry (environment keys and per-item sessions tokens).

use base64::Engine as _;
use serde_json::json;

use crate::Error;
use oma_api::work::WorkSecret;

/// What a first heartbeat sends as `expected_last_heartbeat`.
pub const NO_HEARTBEAT: &str = "NO_HEARTBEAT";
/// `block_ms` bounds of a long poll.
pub const MAX_BLOCK_MS: i64 = 999;
/// Items offered but not acknowledged for this long are offered again (when the poll does not
/// say otherwise).
pub const DEFAULT_RECLAIM_MS: i64 = 5_000;
/// The lease a heartbeat may ask for (`desired_ttl_seconds`), in seconds.
pub const MIN_TTL_SECONDS: i64 = 2;
pub const MAX_TTL_SECONDS: i64 = 3_600;
/// The lease when neither the operator nor the worker says otherwise.
pub const DEFAULT_TTL_SECONDS: i64 = 30;
/// A worker counts in `workers_polling` this long after its last poll.
pub const POLLING_WINDOW_MICROS: i64 = 30_000_000;

/// Environment keys start with this; the rest is 64 hex digits.
pub const ENVIRONMENT_KEY_PREFIX: &str = "sk-oma-env-";
/// Sessions tokens: `sk-oma-wst-<tenant>.<64 hex digits>` (the tenant says which store holds
/// the work item, without a lookup table).
pub const SESSIONS_TOKEN_PREFIX: &str = "sk-oma-wst-";

/// The states of a work item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkState {
    Queued,
    Starting,
    Active,
    Stopping,
    Stopped,
}

impl WorkState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkState::Queued => "queued",
            WorkState::Starting => "starting",
            WorkState::Active => "active",
            WorkState::Stopping => "stopping",
            WorkState::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => WorkState::Queued,
            "starting" => WorkState::Starting,
            "active" => WorkState::Active,
            "stopping" => WorkState::Stopping,
            "stopped" => WorkState::Stopped,
            _ => return None,
        })
    }

    /// Whether a worker holds (or may still claim) the item: a session with a live item needs
    /// no new one.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            WorkState::Queued | WorkState::Starting | WorkState::Active
        )
    }

    /// Whether the item runs under a lease (acknowledged and not stopped).
    pub fn is_leased(self) -> bool {
        matches!(
            self,
            WorkState::Starting | WorkState::Active | WorkState::Stopping
        )
    }
}

/// `block_ms` of a poll: absent means "don't wait"; 0 and values past 999 are refused.
pub fn block_ms(value: Option<i64>) -> Result<i64, Error> {
    match value {
        None => Ok(0),
        Some(n) if (1..=MAX_BLOCK_MS).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(format!(
            "block_ms: must be between 1 and {MAX_BLOCK_MS} milliseconds, got {n} \
             (leave it out for a poll that does not wait)"
        ))),
    }
}

/// `reclaim_older_than_ms` of a poll.
pub fn reclaim_ms(value: Option<i64>) -> Result<i64, Error> {
    match value {
        None => Ok(DEFAULT_RECLAIM_MS),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(Error::invalid(format!(
            "reclaim_older_than_ms: must not be negative, got {n}"
        ))),
    }
}

/// The lease a heartbeat gets: what it asked for within the bounds, else the default.
pub fn lease_ttl(desired: Option<i64>, default: i64) -> Result<i64, Error> {
    match desired {
        None => Ok(default.clamp(MIN_TTL_SECONDS, MAX_TTL_SECONDS)),
        Some(n) if (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid(format!(
            "desired_ttl_seconds: must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS}, got {n}"
        ))),
    }
}

/// What a heartbeat should do, given the item's state and the precondition it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Beat {
    /// Extend the lease; the item becomes (or stays) active.
    Extend,
    /// The item is stopping or stopped: report it, extend nothing (preconditions are not
    /// compared then).
    Report,
    /// The precondition failed: 412 with the item's current lease.
    Refuse,
}

/// Decides a heartbeat. `current` is the item's `last_heartbeat` as the API writes it (`None`
/// when no heartbeat was recorded since the item was last acknowledged).
pub fn beat(state: WorkState, current: Option<&str>, expected: Option<&str>) -> Beat {
    match state {
        WorkState::Stopping | WorkState::Stopped => Beat::Report,
        // Never acknowledged (or put back in the queue after its lease expired): whoever
        // beats for it holds no lease.
        WorkState::Queued => Beat::Refuse,
        WorkState::Starting | WorkState::Active => {
            let expected = expected.unwrap_or(NO_HEARTBEAT);
            let matches = match current {
                None => expected == NO_HEARTBEAT,
                Some(c) => expected == c,
            };
            if matches { Beat::Extend } else { Beat::Refuse }
        }
    }
}

/// The 412 of a failed heartbeat precondition (`error.details.current_state` is what the
/// official worker logs).
pub fn heartbeat_refused(state: WorkState, ttl_seconds: i64, last_heartbeat: &str) -> Error {
    let mut e = Error::new(
        crate::ErrorKind::PreconditionFailed,
        format!(
            "heartbeat precondition failed: expected_last_heartbeat does not match the work \
             item's lease (state `{}`, last_heartbeat `{last_heartbeat}`); another worker holds \
             it, or its lease expired and it was queued again",
            state.as_str()
        ),
    )
    .with_code("heartbeat_precondition_failed");
    e.details = Some(json!({
        "current_state": {
            "state": state.as_str(),
            "ttl_seconds": ttl_seconds,
            "last_heartbeat": last_heartbeat,
            "lease_extended": false,
        }
    }));
    e
}

/// The state a stop request leads to, or the 409 of an item that already stopped.
pub fn stop(state: WorkState, force: bool, work_id: &str) -> Result<WorkState, Error> {
    match state {
        WorkState::Stopped => Err(Error::conflict(format!(
            "work item `{work_id}` is already stopped"
        ))
        .with_code("work_already_stopped")),
        // Nobody runs an unacknowledged item: there is nothing to shut down gracefully.
        WorkState::Queued => Ok(WorkState::Stopped),
        _ if force => Ok(WorkState::Stopped),
        WorkState::Starting | WorkState::Active | WorkState::Stopping => Ok(WorkState::Stopping),
    }
}

/// A new random credential `prefix` + 64 hex digits (`infix` goes between, for tokens that
/// name their tenant).
fn new_secret(prefix: &str, infix: &str) -> String {
    let bytes = crate::ids::random_bytes(32);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{infix}{hex}")
}

/// A new environment key.
pub fn new_environment_key() -> String {
    new_secret(ENVIRONMENT_KEY_PREFIX, "")
}

/// A new sessions token for a work item of `tenant`.
pub fn new_sessions_token(tenant: &str) -> String {
    new_secret(SESSIONS_TOKEN_PREFIX, &format!("{tenant}."))
}

/// The tenant a sessions token belongs to, if `token` has the shape of one.
pub fn sessions_token_tenant(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(SESSIONS_TOKEN_PREFIX)?;
    let (tenant, secret) = rest.rsplit_once('.')?;
    (!tenant.is_empty() && secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(tenant)
}

/// The `secret` of a poll response: URL-safe base64 (no padding) of `{"sessions_token": …}`.
pub fn encode_secret(sessions_token: &str) -> String {
    let payload = WorkSecret {
        sessions_token: sessions_token.to_string(),
    };
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

/// The sessions token inside a `secret` (padding optional), if it decodes.
pub fn decode_secret(secret: &str) -> Option<String> {
    let trimmed = secret.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()?;
    let payload: WorkSecret = serde_json::from_slice(&bytes).ok()?;
    (!payload.sessions_token.is_empty()).then_some(payload.sessions_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_parameters_are_bounded() {
        assert_eq!(block_ms(None).unwrap(), 0);
        assert_eq!(block_ms(Some(999)).unwrap(), 999);
        assert!(block_ms(Some(0)).is_err());
        assert!(block_ms(Some(1000)).is_err());
        assert_eq!(reclaim_ms(None).unwrap(), DEFAULT_RECLAIM_MS);
        assert!(reclaim_ms(Some(-1)).is_err());
        assert_eq!(lease_ttl(None, 30).unwrap(), 30);
        assert_eq!(lease_ttl(None, 0).unwrap(), MIN_TTL_SECONDS);
        assert_eq!(lease_ttl(Some(60), 30).unwrap(), 60);
        assert!(lease_ttl(Some(1), 30).is_err());
    }

    #[test]
    fn heartbeats_need_the_lease_they_last_saw() {
        use WorkState::*;
        assert_eq!(beat(Starting, None, Some(NO_HEARTBEAT)), Beat::Extend);
        assert_eq!(beat(Starting, None, None), Beat::Extend);
        assert_eq!(beat(Active, Some("t1"), Some("t1")), Beat::Extend);
        assert_eq!(beat(Active, Some("t1"), Some(NO_HEARTBEAT)), Beat::Refuse);
        assert_eq!(beat(Active, Some("t1"), Some("t0")), Beat::Refuse);
        assert_eq!(beat(Starting, None, Some("t0")), Beat::Refuse);
        assert_eq!(beat(Queued, None, Some(NO_HEARTBEAT)), Beat::Refuse);
        // Once stopping, the precondition is not compared.
        assert_eq!(beat(Stopping, Some("t1"), Some("stale")), Beat::Report);
        assert_eq!(beat(Stopped, None, None), Beat::Report);
        let e = heartbeat_refused(Active, 30, "t1");
        assert_eq!(e.code, Some("heartbeat_precondition_failed"));
        assert_eq!(
            e.details.unwrap()["current_state"]["lease_extended"],
            json!(false)
        );
    }

    #[test]
    fn stops_follow_the_state_machine() {
        use WorkState::*;
        assert_eq!(stop(Queued, false, "w").unwrap(), Stopped);
        assert_eq!(stop(Active, false, "w").unwrap(), Stopping);
        assert_eq!(stop(Starting, true, "w").unwrap(), Stopped);
        assert_eq!(stop(Stopping, false, "w").unwrap(), Stopping);
        assert_eq!(stop(Stopping, true, "w").unwrap(), Stopped);
        let e = stop(Stopped, true, "w").unwrap_err();
        assert_eq!(e.kind, crate::ErrorKind::Conflict);
    }

    #[test]
    fn secrets_carry_the_sessions_token() {
        let token = new_sessions_token("acme-1");
        assert_eq!(sessions_token_tenant(&token), Some("acme-1"));
        assert_eq!(sessions_token_tenant("sk-oma-wst-acme.abc"), None);
        assert_eq!(sessions_token_tenant(&new_environment_key()), None);
        let secret = encode_secret(&token);
        assert!(!secret.contains('=') && !secret.contains('+') && !secret.contains('/'));
        assert_eq!(decode_secret(&secret).as_deref(), Some(token.as_str()));
        // Padding is optional on the way in.
        let padded = format!("{secret}{}", "=".repeat((4 - secret.len() % 4) % 4));
        assert_eq!(decode_secret(&padded).as_deref(), Some(token.as_str()));
        assert_eq!(decode_secret("not base64 !"), None);
    }
}
