//! HTML → readable text, for `web_fetch`. Deliberately simple (no DOM): drop markup, scripts,
//! styles and comments, turn block elements into line breaks and list items into bullets,
//! decode entities, and collapse whitespace. Good enough for a model to read a page; not a
//! renderer.

/// Elements whose content is never text for a reader.
const SKIP_CONTENT: [&str; 7] = [
    "script", "style", "noscript", "template", "svg", "head", "iframe",
];

/// Elements that start a new line.
const BLOCK: [&str; 30] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "table",
];

/// The page's `<title>`, if any.
pub(crate) fn title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let t = collapse_inline(&decode_entities(&html[open_end..close]));
    (!t.is_empty()).then_some(t)
}

/// The readable text of an HTML document.
pub(crate) fn to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let bytes = html.as_bytes();
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let mut pre_depth = 0usize;
    while i < bytes.len() {
        if bytes[i] != b'<' {
            let next = html[i..].find('<').map_or(html.len(), |n| i + n);
            // The page's own text must not contain the markers used below.
            let text = decode_entities(&html[i..next]).replace([PRE_START, PRE_END], "");
            if pre_depth > 0 {
                out.push_str(&text);
            } else {
                // Source line breaks and indentation are layout, not content: any run of
                // whitespace is one space (the tidy pass trims line ends).
                let mut prev_space = false;
                for c in text.chars() {
                    if c.is_whitespace() {
                        if !prev_space {
                            out.push(' ');
                        }
                        prev_space = true;
                    } else {
                        out.push(c);
                        prev_space = false;
                    }
                }
            }
            i = next;
            continue;
        }
        // Comments, doctype, CDATA.
        if lower[i..].starts_with("<!--") {
            i = lower[i..].find("-->").map_or(bytes.len(), |n| i + n + 3);
            continue;
        }
        if lower[i..].starts_with("<!") || lower[i..].starts_with("<?") {
            i = lower[i..].find('>').map_or(bytes.len(), |n| i + n + 1);
            continue;
        }
        let Some(end) = tag_end(&lower, i) else {
            // A stray `<` in text.
            out.push('<');
            i += 1;
            continue;
        };
        let tag = &lower[i + 1..end];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        i = end + 1;
        if name.is_empty() {
            continue;
        }
        if !closing && SKIP_CONTENT.contains(&name.as_str()) {
            let close = format!("</{name}");
            i = lower[i..]
                .find(&close)
                .and_then(|n| lower[i + n..].find('>').map(|m| i + n + m + 1))
                .unwrap_or(bytes.len());
            continue;
        }
        match name.as_str() {
            "pre" => {
                if closing {
                    if pre_depth > 0 {
                        pre_depth -= 1;
                        out.push(PRE_END);
                    }
                } else {
                    pre_depth += 1;
                    out.push(PRE_START);
                }
            }
            "li" if !closing => out.push_str("\n- "),
            "tr" if !closing => out.push('\n'),
            "td" | "th" if !closing => out.push_str(" | "),
            n if BLOCK.contains(&n) => out.push('\n'),
            _ => {}
        }
    }
    for _ in 0..pre_depth {
        out.push(PRE_END);
    }
    tidy(&out)
}

/// Private-use characters marking preformatted text inside the intermediate output, which
/// the tidy pass leaves as it is.
const PRE_START: char = '\u{E000}';
const PRE_END: char = '\u{E001}';

/// Index of the `>` closing the tag that starts at `start`, skipping quoted attribute values.
fn tag_end(lower: &str, start: usize) -> Option<usize> {
    let bytes = lower.as_bytes();
    // `<` must be followed by a letter, `/` or `!` to be a tag at all.
    let next = *bytes.get(start + 1)?;
    if !(next.is_ascii_alphabetic() || next == b'/') {
        return None;
    }
    let mut quote: Option<u8> = None;
    for (k, &b) in bytes.iter().enumerate().skip(start + 1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(k),
            None => {}
        }
    }
    None
}

/// Runs of whitespace become one space.
fn collapse_inline(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tidies everything outside preformatted blocks (see [`tidy_lines`]) and keeps those blocks
/// verbatim, on lines of their own.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut normal = String::new();
    let mut pre = String::new();
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            PRE_START => {
                if depth == 0 {
                    push_block(&mut out, &tidy_lines(&normal));
                    normal.clear();
                }
                depth += 1;
            }
            PRE_END => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    push_block(&mut out, pre.trim_matches('\n'));
                    pre.clear();
                }
            }
            c if depth > 0 => pre.push(c),
            c => normal.push(c),
        }
    }
    push_block(&mut out, &tidy_lines(&normal));
    out
}

fn push_block(out: &mut String, block: &str) {
    if block.trim().is_empty() {
        return;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(block);
}

/// Trims each line, collapses spaces, keeps at most one blank line in a row, trims the whole.
fn tidy_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = collapse_spaces(line.trim());
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.trim().to_string()
}

fn collapse_spaces(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut prev_space = false;
    for c in line.chars() {
        if c == ' ' {
            if !prev_space {
                out.push(c);
            }
            prev_space = true;
        } else {
            out.push(c);
            prev_space = false;
        }
    }
    out
}

/// Decodes the common named entities and all numeric ones.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest[1..]
            .find(|c: char| c == ';' || c.is_whitespace() || c == '&')
            .map(|n| n + 1);
        let decoded = match end {
            Some(end) if rest.as_bytes()[end] == b';' => {
                decode_entity(&rest[1..end]).map(|c| (c, end + 1))
            }
            _ => None,
        };
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| *c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        "ndash" => '–',
        "mdash" => '—',
        "hellip" => '…',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "laquo" => '«',
        "raquo" => '»',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "middot" => '·',
        "bull" => '•',
        "times" => '×',
        "deg" => '°',
        "euro" => '€',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_become_readable_text() {
        let html = r#"<!DOCTYPE html><html><head><title>My &amp; Page</title>
            <style>body { color: red }</style><script>var x = "<p>no</p>";</script></head>
            <body><h1>Hello</h1><p>First   para with <a href="/x?a=1&amp;b=2">a link</a>.</p>
            <!-- hidden -->
            <ul><li>one</li><li>two &lt;3</li></ul>
            <pre>keep
   spacing</pre>
            <table><tr><th>k</th><td>v</td></tr></table>
            <p>x &#8212; y &#x41; &bogus; 1 < 2</p></body></html>"#;
        assert_eq!(title(html).as_deref(), Some("My & Page"));
        let text = to_text(html);
        assert!(!text.contains("color"), "{text}");
        assert!(!text.contains("no</p>"), "{text}");
        assert!(!text.contains("hidden"), "{text}");
        assert!(text.contains("Hello\n"), "{text}");
        assert!(text.contains("First para with a link."), "{text}");
        assert!(text.contains("- one\n- two <3"), "{text}");
        assert!(text.contains("\nkeep\n   spacing\n"), "{text}");
        assert!(text.contains("| k | v"), "{text}");
        assert!(text.contains("x — y A &bogus; 1 < 2"), "{text}");
        assert!(
            !text.contains("My & Page"),
            "the head is not body text: {text}"
        );
    }

    #[test]
    fn entities_decode() {
        assert_eq!(
            decode_entities("a &amp;&lt;b&gt; &#39;c&#x27;"),
            "a &<b> 'c'"
        );
        assert_eq!(decode_entities("AT&T & co"), "AT&T & co");
        assert_eq!(decode_entities("&#0;"), "&#0;");
    }
}
