//! Opaque page cursors: `page_` + URL-safe base64 of the position after which the next page
//! starts (the sort key and the id of the last item returned). A cursor that does not decode
//! is a client error, never a server error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key of the last item seen (a timestamp in micros, a seq, …).
    pub key: i64,
    /// The id of the last item seen, to break ties.
    pub id: String,
    /// Direction the cursor continues in: `true` for descending.
    pub desc: bool,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}|{}|{}",
            if self.desc { 'd' } else { 'a' },
            self.key,
            self.id
        );
        format!("page_{}", URL_SAFE_NO_PAD.encode(raw))
    }

    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid(format!("invalid page cursor `{s}`"));
        let body = s.strip_prefix("page_").ok_or_else(bad)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(3, '|');
        let desc = match parts.next() {
            Some("d") => true,
            Some("a") => false,
            _ => return Err(bad()),
        };
        let key = parts.next().and_then(|k| k.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().ok_or_else(bad)?.to_string();
        Ok(Cursor { key, id, desc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let c = Cursor {
            key: 42,
            id: "agent_x|y".into(),
            desc: true,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("page_!!!").is_err());
        assert!(Cursor::decode("nope").is_err());
        assert!(Cursor::decode("page_").is_err());
    }
}
