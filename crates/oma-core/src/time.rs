//! Timestamps are stored as microseconds since the Unix epoch (an `i64` column in both
//! databases) and written on the wire as RFC 3339 UTC with microseconds and a `Z`.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

pub fn now_micros() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_micros() as i64
}

/// `2026-01-02T03:04:05.123456Z`.
pub fn format_micros(micros: i64) -> String {
    let nanos = i128::from(micros) * 1000;
    match OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let (y, mo, d) = (t.year(), t.month() as u8, t.day());
            let (h, mi, s) = (t.hour(), t.minute(), t.second());
            format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
                t.microsecond()
            )
        }
        Err(_) => "1970-01-01T00:00:00.000000Z".to_string(),
    }
}

/// Parses an RFC 3339 timestamp (any offset; `+00:00` or `Z`) into microseconds.
/// A bare date (`2026-01-02`) is taken as midnight UTC.
pub fn parse_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .or_else(|| {
            // Python's isoformat() of a naive datetime has no offset: treat it as UTC.
            OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339).ok()
        })
        .or_else(|| OffsetDateTime::parse(&format!("{s}T00:00:00Z"), &Rfc3339).ok())?;
    let utc = t.to_offset(UtcOffset::UTC);
    i64::try_from(utc.unix_timestamp_nanos() / 1000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let m = 1_767_323_045_123_456;
        let s = format_micros(m);
        assert_eq!(s, "2026-01-02T03:04:05.123456Z");
        assert_eq!(parse_micros(&s), Some(m));
        assert_eq!(parse_micros("2026-01-02T04:04:05.123456+01:00"), Some(m));
        assert_eq!(parse_micros("2026-01-02T03:04:05.123456"), Some(m));
        assert!(parse_micros("yesterday").is_none());
    }
}
