//! Webhook verification, exactly as each service signs its deliveries.
//!
//! - Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:{X-Slack-Request-Timestamp}:{body}">`
//!   with the app's signing secret; the timestamp (seconds) must be within five minutes.
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>` with the webhook secret;
//!   GitHub sends no timestamp, so replays are stopped by `X-GitHub-Delivery` (de-duplicated).
//! - Linear: `Linear-Signature: <hex HMAC-SHA256 of body>` with the webhook secret; the body's
//!   `webhookTimestamp` (milliseconds) must be within a minute.
//!
//! Signatures are compared in constant time (`hmac`'s `verify_slice`). Errors say what was
//! wrong, never the secret or the expected signature.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a Slack request timestamp may be from now (Slack's own recommendation).
pub const SLACK_WINDOW_SECS: i64 = 5 * 60;
/// How far a Linear `webhookTimestamp` may be from now (Linear's recommendation).
pub const LINEAR_WINDOW_MS: i64 = 60 * 1000;

/// Why a delivery was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing")]
    MissingHeader(&'static str),
    #[error("the `{0}` header is malformed")]
    Malformed(&'static str),
    #[error("signature does not match")]
    Mismatch,
    #[error("the delivery is stale: its timestamp is {0} s away from now (window {1} s)")]
    Stale(i64, i64),
    #[error("the body is not the JSON the service sends: {0}")]
    Body(String),
}

impl VerifyError {
    /// The `outcome` an ops event records for it.
    pub fn outcome(&self) -> &'static str {
        match self {
            VerifyError::Stale(..) => "stale",
            VerifyError::Body(_) => "invalid",
            _ => "forged",
        }
    }
}

/// HMAC takes keys of every length, so this never fails in practice; an error is still
/// reported as a mismatch rather than a panic.
fn mac(secret: &[u8], parts: &[&[u8]]) -> Option<HmacSha256> {
    let mut m = HmacSha256::new_from_slice(secret).ok()?;
    for p in parts {
        m.update(p);
    }
    Some(m)
}

/// The hex HMAC-SHA256 of `parts` (concatenated) under `secret`.
pub fn sign(secret: &[u8], parts: &[&[u8]]) -> String {
    mac(secret, parts).map_or_else(String::new, |m| hex::encode(m.finalize().into_bytes()))
}

fn check(
    secret: &[u8],
    parts: &[&[u8]],
    hex_sig: &str,
    header: &'static str,
) -> Result<(), VerifyError> {
    let given = hex::decode(hex_sig.trim()).map_err(|_| VerifyError::Malformed(header))?;
    mac(secret, parts)
        .ok_or(VerifyError::Mismatch)?
        .verify_slice(&given)
        .map_err(|_| VerifyError::Mismatch)
}

/// Verifies a Slack request. `now_secs` is the current Unix time.
pub fn slack(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), VerifyError> {
    const TS: &str = "X-Slack-Request-Timestamp";
    const SIG: &str = "X-Slack-Signature";
    let ts = timestamp.ok_or(VerifyError::MissingHeader(TS))?.trim();
    let sig = signature.ok_or(VerifyError::MissingHeader(SIG))?;
    let at: i64 = ts.parse().map_err(|_| VerifyError::Malformed(TS))?;
    let hex_sig = sig
        .trim()
        .strip_prefix("v0=")
        .ok_or(VerifyError::Malformed(SIG))?;
    // The signature first: a forged request learns nothing from a timing of the window check.
    check(secret, &[b"v0:", ts.as_bytes(), b":", body], hex_sig, SIG)?;
    let skew = (now_secs - at).abs();
    if skew > SLACK_WINDOW_SECS {
        return Err(VerifyError::Stale(now_secs - at, SLACK_WINDOW_SECS));
    }
    Ok(())
}

/// Verifies a GitHub delivery.
pub fn github(secret: &[u8], signature: Option<&str>, body: &[u8]) -> Result<(), VerifyError> {
    const SIG: &str = "X-Hub-Signature-256";
    let sig = signature.ok_or(VerifyError::MissingHeader(SIG))?;
    let hex_sig = sig
        .trim()
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed(SIG))?;
    check(secret, &[body], hex_sig, SIG)
}

/// Verifies a Linear delivery: the signature, then `webhookTimestamp` (ms) in the signed body.
/// `now_ms` is the current Unix time in milliseconds.
pub fn linear(
    secret: &[u8],
    signature: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), VerifyError> {
    const SIG: &str = "Linear-Signature";
    let sig = signature.ok_or(VerifyError::MissingHeader(SIG))?;
    check(secret, &[body], sig, SIG)?;
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| VerifyError::Body(e.to_string()))?;
    let at = v
        .get("webhookTimestamp")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| VerifyError::Body("`webhookTimestamp` is missing".into()))?;
    if (now_ms - at).abs() > LINEAR_WINDOW_MS {
        return Err(VerifyError::Stale(
            (now_ms - at) / 1000,
            LINEAR_WINDOW_MS / 1000,
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

    /// Slack's documented example (api.slack.com/authentication/verifying-requests-from-slack).
    #[test]
    fn slack_documented_example_verifies() {
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let ts = "1531420618";
        let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        slack(SECRET, Some(ts), Some(sig), body, 1_531_420_618).unwrap();
        assert_eq!(
            slack(SECRET, Some(ts), Some(sig), body, 1_531_420_618 + 301),
            Err(VerifyError::Stale(301, SLACK_WINDOW_SECS))
        );
        assert_eq!(
            slack(b"wrong", Some(ts), Some(sig), body, 1_531_420_618),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn slack_refuses_forged_missing_and_malformed() {
        let body = br#"{"type":"event_callback"}"#;
        let now = 1_700_000_000;
        let ts = now.to_string();
        let good = format!("v0={}", sign(SECRET, &[b"v0:", ts.as_bytes(), b":", body]));
        slack(SECRET, Some(&ts), Some(&good), body, now).unwrap();
        // One byte of the body changed.
        assert_eq!(
            slack(
                SECRET,
                Some(&ts),
                Some(&good),
                br#"{"type":"event_callbacK"}"#,
                now
            ),
            Err(VerifyError::Mismatch)
        );
        // The timestamp is part of what is signed: moving it breaks the signature.
        let later = (now + 10).to_string();
        assert_eq!(
            slack(SECRET, Some(&later), Some(&good), body, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            slack(SECRET, None, Some(&good), body, now),
            Err(VerifyError::MissingHeader("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            slack(SECRET, Some(&ts), None, body, now),
            Err(VerifyError::MissingHeader("X-Slack-Signature"))
        );
        assert_eq!(
            slack(SECRET, Some(&ts), Some(&good[3..]), body, now),
            Err(VerifyError::Malformed("X-Slack-Signature"))
        );
        assert_eq!(
            slack(SECRET, Some(&ts), Some("v0=zz"), body, now),
            Err(VerifyError::Malformed("X-Slack-Signature"))
        );
        // A timestamp in the future is as stale as one in the past.
        let future = (now + 600).to_string();
        let sig = format!(
            "v0={}",
            sign(SECRET, &[b"v0:", future.as_bytes(), b":", body])
        );
        assert_eq!(
            slack(SECRET, Some(&future), Some(&sig), body, now),
            Err(VerifyError::Stale(-600, SLACK_WINDOW_SECS))
        );
    }

    /// GitHub's documented example (docs.github.com "Validating webhook deliveries").
    #[test]
    fn github_documented_example_verifies() {
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        github(b"It's a Secret to Everybody", Some(sig), b"Hello, World!").unwrap();
        assert_eq!(
            github(b"It's a secret to everybody", Some(sig), b"Hello, World!"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            github(
                b"It's a Secret to Everybody",
                Some(&sig[7..]),
                b"Hello, World!"
            ),
            Err(VerifyError::Malformed("X-Hub-Signature-256"))
        );
        assert_eq!(
            github(b"x", None, b"Hello, World!"),
            Err(VerifyError::MissingHeader("X-Hub-Signature-256"))
        );
    }

    #[test]
    fn linear_checks_signature_then_timestamp() {
        let now = 1_700_000_000_000_i64;
        let body = format!(r#"{{"type":"AgentSessionEvent","webhookTimestamp":{now}}}"#);
        let sig = sign(SECRET, &[body.as_bytes()]);
        linear(SECRET, Some(&sig), body.as_bytes(), now + 59_000).unwrap();
        assert_eq!(
            linear(SECRET, Some(&sig), body.as_bytes(), now + 61_000),
            Err(VerifyError::Stale(61, 60))
        );
        assert_eq!(
            linear(b"other", Some(&sig), body.as_bytes(), now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            linear(SECRET, None, body.as_bytes(), now),
            Err(VerifyError::MissingHeader("Linear-Signature"))
        );
        let no_ts = br#"{"type":"AgentSessionEvent"}"#;
        let sig = sign(SECRET, &[no_ts]);
        assert!(matches!(
            linear(SECRET, Some(&sig), no_ts, now),
            Err(VerifyError::Body(_))
        ));
    }
}
