//! A Server-Sent Events parser for response bodies that arrive in arbitrary chunks: the one
//! every client in oma uses (model streams, the legacy MCP transport, `oma tail`).
//!
//! Follows the WHATWG event-stream rules that matter to those clients: lines end in `\n`, `\r\n`
//! or `\r` (also when a `\r\n` pair is split across chunks), `data:` lines of one event are
//! joined with `\n`, one space after the colon is dropped, `:` lines are comments, a blank line
//! dispatches. Bytes are decoded per complete line, so a UTF-8 character split across chunks is
//! intact.

/// A body that cannot be read as server-sent events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SseError(pub String);

impl SseError {
    fn new(message: &str) -> Self {
        SseError(message.to_string())
    }
}

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when absent (the spec's default type "message").
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Longest line or event we buffer. Stream events are small (model deltas, JSON-RPC messages,
/// log lines); a peer sending megabytes without a line break is broken or hostile.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_cr: bool,
    /// No line completed yet: a UTF-8 BOM starting the stream is skipped.
    first_line: bool,
    event: String,
    data: String,
    has_data: bool,
    id: Option<String>,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new()
    }
}

impl SseParser {
    pub fn new() -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            first_line: true,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id: None,
        }
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.line.extend_from_slice(&rest[..pos]);
            let was_cr = rest[pos] == b'\r';
            rest = &rest[pos + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(ev) = self.line_done(&line)? {
                out.push(ev);
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > MAX_EVENT_BYTES {
            return Err(SseError::new("server-sent event line exceeds 8 MiB"));
        }
        Ok(out)
    }

    /// Call at end of body: an event not terminated by a blank line is discarded, as the spec
    /// says (a truncated stream must not look complete).
    pub fn finish(&mut self) -> bool {
        let dangling = self.has_data || !self.line.is_empty();
        self.line.clear();
        self.reset_event();
        dangling
    }

    fn line_done(&mut self, raw: &[u8]) -> Result<Option<SseEvent>, SseError> {
        let raw = if std::mem::take(&mut self.first_line) {
            raw.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(raw)
        } else {
            raw
        };
        if raw.is_empty() {
            if !self.has_data {
                self.event.clear();
                return Ok(None);
            }
            let ev = SseEvent {
                event: std::mem::take(&mut self.event),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
            };
            self.has_data = false;
            return Ok(Some(ev));
        }
        let line = std::str::from_utf8(raw)
            .map_err(|_| SseError::new("server-sent event line is not valid UTF-8"))?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > MAX_EVENT_BYTES {
                    return Err(SseError::new("server-sent event exceeds 8 MiB"));
                }
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields: nothing for us.
        }
        Ok(None)
    }

    fn reset_event(&mut self) {
        self.event.clear();
        self.data.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c).unwrap());
        }
        out
    }

    #[test]
    fn basic_events() {
        let evs = parse_all(&[b"event: a\ndata: {\"x\":1}\n\nevent: b\ndata: 2\n\n"]);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].event, "a");
        assert_eq!(evs[0].data, "{\"x\":1}");
        assert_eq!(evs[1].event, "b");
    }

    #[test]
    fn line_endings_multiline_comments_and_bom() {
        let src = b"\xEF\xBB\xBF: comment\r\nevent:x\r\ndata: one\r\ndata:two\r\nid: 7\r\n\r\ndata: lone\r\r\n";
        let evs = parse_all(&[src]);
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: "x".into(),
                    data: "one\ntwo".into(),
                    id: Some("7".into())
                },
                SseEvent {
                    event: String::new(),
                    data: "lone".into(),
                    id: Some("7".into())
                },
            ]
        );
    }

    #[test]
    fn every_split_gives_the_same_events() {
        let src = "event: a\r\ndata: héllo wörld ✓\r\n\r\nevent: b\ndata: x\ndata: y\n\n: ping\n\nevent: c\rdata: z\r\r".as_bytes();
        let whole = parse_all(&[src]);
        assert_eq!(whole.len(), 3);
        for i in 0..=src.len() {
            for j in i..=src.len() {
                let got = parse_all(&[&src[..i], &src[i..j], &src[j..]]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = src.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        assert!(parse_all(&[b"event: a\n\n\n\n"]).is_empty());
    }

    #[test]
    fn unterminated_event_is_dangling() {
        let mut p = SseParser::new();
        assert!(p.push(b"event: a\ndata: 1\n").unwrap().is_empty());
        assert!(p.finish());
        let mut p = SseParser::new();
        p.push(b"data: 1\n\n").unwrap();
        assert!(!p.finish());
    }

    #[test]
    fn oversized_lines_are_rejected() {
        let mut p = SseParser::new();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(p.push(&big).is_err());
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: \xff\xfe\n\n").is_err());
    }
}
