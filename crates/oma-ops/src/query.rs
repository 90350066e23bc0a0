//! Parsing what `oma events query` and the admin API accept, so both read the same way:
//! time bounds (`1h`, `30m`, `2d`, or an RFC 3339 time), `name=value` filters and group-by
//! lists.

use oma_store::ops_events::valid_name;

/// A time bound: a duration back from `now` (`90s`, `15m`, `1h`, `7d`) or an RFC 3339 time
/// (`2026-01-02T03:04:05Z`, or a date). Microseconds.
pub fn parse_time(s: &str, now_micros: i64) -> Result<i64, String> {
    let s = s.trim();
    let unit = |c: char| -> Option<i64> {
        Some(match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        })
    };
    if let Some(last) = s.chars().last()
        && let Some(secs) = unit(last)
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
        && n >= 0
    {
        return Ok(now_micros.saturating_sub(n.saturating_mul(secs).saturating_mul(1_000_000)));
    }
    oma_core::time::parse_micros(s).ok_or_else(|| {
        format!("`{s}` is not a time: use a duration back from now (90s, 15m, 1h, 7d) or an RFC 3339 time")
    })
}

/// `name=value` → `(name, value)`.
pub fn parse_where(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not a filter: write name=value (e.g. tool=bash)"))?;
    let k = k.trim();
    if !valid_name(k) {
        return Err(format!(
            "`{k}` is not a field name (letters, digits, `_` and `.`)"
        ));
    }
    Ok((k.to_string(), v.trim().to_string()))
}

/// `tool,outcome` → `["tool", "outcome"]`.
pub fn parse_group_by(s: &str) -> Result<Vec<String>, String> {
    let keys: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = keys.iter().find(|k| !valid_name(k)) {
        return Err(format!(
            "`{bad}` is not a field name (letters, digits, `_` and `.`)"
        ));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = 10_000_000_000_000;
        assert_eq!(parse_time("1h", now).unwrap(), now - 3_600_000_000);
        assert_eq!(parse_time("90s", now).unwrap(), now - 90_000_000);
        assert_eq!(
            parse_time("2026-01-02T03:04:05.123456Z", now).unwrap(),
            1_767_323_045_123_456
        );
        assert!(parse_time("soon", now).is_err());
        assert!(parse_time("-1h", now).is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(
            parse_where("tool=bash").unwrap(),
            ("tool".into(), "bash".into())
        );
        assert_eq!(parse_where("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_where("tool").is_err());
        assert!(parse_where("x'=1").is_err());
        assert_eq!(
            parse_group_by("tool, outcome").unwrap(),
            vec!["tool", "outcome"]
        );
        assert!(parse_group_by("tool;drop").is_err());
    }
}
