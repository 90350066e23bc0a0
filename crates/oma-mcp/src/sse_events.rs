//! An incremental `text/event-stream` parser (the WHATWG rules), for the legacy HTTP+SSE
//! transport: lines end in LF, CRLF or a lone CR; `:` lines are comments (keep-alives);
//! `data:` lines of one event are joined with LF; a blank line ends the event.

/// One event longer than this ends the stream: a server that never ends its event must not
/// grow our buffer without bound (16 MiB, rmcp's limit for one SSE event).
pub(crate) const MAX_EVENT: usize = 16 * 1024 * 1024;

/// A complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field, `message` when there was none.
    pub event: String,
    pub data: String,
}

#[derive(Default)]
pub(crate) struct Parser {
    buf: Vec<u8>,
    /// Bytes of `buf` before this hold no line end, so are not scanned again.
    scanned: usize,
    /// The last line ended in a CR at the end of a chunk: an LF first in the next one is part
    /// of that line end, not an empty line.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl Parser {
    /// Takes the next bytes of the body; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Event>, String> {
        let mut bytes = bytes;
        if !bytes.is_empty()
            && std::mem::take(&mut self.after_cr)
            && let Some(rest) = bytes.strip_prefix(b"\n")
        {
            bytes = rest;
        }
        self.buf.extend_from_slice(bytes);
        let mut events = Vec::new();
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(offset) = self.buf[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = from + offset;
            let ending = match (self.buf[end], self.buf.get(end + 1)) {
                (b'\r', Some(b'\n')) => 2,
                (b'\r', None) => {
                    self.after_cr = true;
                    1
                }
                _ => 1,
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
            start = end + ending;
            from = start;
        }
        self.buf.drain(..start);
        // No line end is left in the buffer.
        self.scanned = self.buf.len();
        if self.buf.len() + self.data.len() > MAX_EVENT {
            return Err(format!(
                "the server sent an event longer than {MAX_EVENT} bytes"
            ));
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            if !std::mem::take(&mut self.has_data) {
                return None;
            }
            return Some(Event {
                event: if event.is_empty() {
                    "message".into()
                } else {
                    event
                },
                data: std::mem::take(&mut self.data),
            });
        }
        if line.starts_with(':') {
            return None;
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
            }
            // `id` and `retry` matter only to reconnecting clients; we do not reconnect.
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::default();
        chunks.iter().flat_map(|c| p.feed(c).unwrap()).collect()
    }

    fn ev(event: &str, data: &str) -> Event {
        Event {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn events_comments_and_multi_line_data() {
        let body =
            b": keep-alive\n\nevent: endpoint\ndata: /messages?s=1\n\ndata: {\"a\":\ndata:  1}\n\n";
        assert_eq!(
            all(&[body]),
            vec![
                ev("endpoint", "/messages?s=1"),
                ev("message", "{\"a\":\n 1}")
            ]
        );
    }

    #[test]
    fn any_line_ending_and_any_chunking() {
        let body = b"event: endpoint\r\ndata: /m\r\n\r\ndata: x\rdata: y\r\r";
        let want = vec![ev("endpoint", "/m"), ev("message", "x\ny")];
        assert_eq!(all(&[body]), want);
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(all(&bytes), want);
        let (a, b) = body.split_at(17);
        assert_eq!(all(&[a, b]), want);
        // A CR ending one chunk and an LF starting the next are one line end.
        assert_eq!(
            all(&[b"data: a\r", b"", b"\n", b"\r\n"]),
            vec![ev("message", "a")]
        );
    }

    #[test]
    fn an_endless_event_is_refused() {
        let mut p = Parser::default();
        let chunk = vec![b'x'; 1024 * 1024];
        p.feed(b"data: ").unwrap();
        let failed = (0..20).any(|_| p.feed(&chunk).is_err());
        assert!(failed);
    }
}
