//! Text shaping shared by the tools: terminal escapes, tails that respect UTF-8, sizes.

/// Renders raw terminal output as the text a person would have seen: ANSI escape sequences
/// removed and carriage-return overwrites applied (progress bars keep only their last state).
pub(crate) fn clean_terminal_output(raw: &str) -> String {
    let stripped = strip_ansi(raw);
    let mut out = String::with_capacity(stripped.len());
    for (i, line) in stripped.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // `\r\n` line ends leave a trailing `\r`; only a `\r` followed by more text overwrites.
        let line = line.strip_suffix('\r').unwrap_or(line);
        match line.rfind('\r') {
            Some(at) => out.push_str(&line[at + 1..]),
            None => out.push_str(line),
        }
    }
    out
}

/// Removes CSI (`ESC [ … final`), OSC (`ESC ] … BEL` or `ESC \`) and two-byte escapes.
pub(crate) fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // Parameters and intermediates, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                        chars.next();
                        break;
                    }
                }
            }
            // Two-byte escapes (`ESC (`, `ESC =`, …) and a lone trailing ESC.
            _ => {}
        }
    }
    out
}

/// The last `max` bytes of `bytes`, moved forward to a UTF-8 character boundary.
pub(crate) fn utf8_tail(bytes: &[u8], max: usize) -> &[u8] {
    if bytes.len() <= max {
        return bytes;
    }
    let mut start = bytes.len() - max;
    // Skip continuation bytes (10xxxxxx) so the tail starts at a character.
    while start < bytes.len() && (bytes[start] & 0b1100_0000) == 0b1000_0000 {
        start += 1;
    }
    &bytes[start..]
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub(crate) fn utf8_prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `cat -n` style: the number right-aligned in six columns, a tab, the line.
pub(crate) fn numbered_line(n: usize, line: &str) -> String {
    format!("{n:>6}\t{line}")
}

/// A byte count for people: `812 bytes`, `12.5 KiB`, `3.1 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n} bytes")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else {
        format!("{:.1} MiB", f / (KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_carriage_returns_are_cleaned() {
        assert_eq!(strip_ansi("\u{1b}[1;31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(strip_ansi("\u{1b}]0;title\u{7}x"), "x");
        assert_eq!(strip_ansi("a\u{1b}]8;;http://x\u{1b}\\b"), "ab");
        assert_eq!(
            clean_terminal_output("10%\r50%\r100%\nwin\r\nend"),
            "100%\nwin\nend"
        );
    }

    #[test]
    fn tails_and_prefixes_keep_characters_whole() {
        let s = "aé€x";
        assert_eq!(utf8_tail(s.as_bytes(), 4), "€x".as_bytes());
        assert_eq!(utf8_tail(s.as_bytes(), 2), b"x");
        assert_eq!(utf8_tail(s.as_bytes(), 100), s.as_bytes());
        assert_eq!(utf8_prefix(s, 2), "a");
        assert_eq!(utf8_prefix(s, 3), "aé");
    }

    #[test]
    fn numbering_and_sizes() {
        assert_eq!(numbered_line(7, "x"), "     7\tx");
        assert_eq!(human_bytes(10), "10 bytes");
        assert_eq!(human_bytes(2048), "2.0 KiB");
    }
}
