//! The `read`, `write` and `edit` tools. Blocking code, run on tokio's blocking pool.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;

use super::resolve_path;
use super::text::{human_bytes, numbered_line};
use crate::limits::{
    EDIT_CAP, READ_IMAGE_CAP as IMAGE_CAP, READ_PDF_CAP as PDF_CAP, READ_TEXT_CAP,
};
use crate::protocol::{OutputBlock, ToolOutcome};

/// How far into a file to look for a NUL byte when deciding that it is binary.
const BINARY_SNIFF: usize = 8 * 1024;
/// Lines of context shown around an edit.
const EDIT_CONTEXT_LINES: usize = 3;
/// At most this many lines of an edit's result are echoed back.
const EDIT_SNIPPET_MAX_LINES: usize = 40;

/// Media types recognised by their first bytes (the extension can lie).
fn sniff_media_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else {
        None
    }
}

/// Extensions that promise an image or PDF; such a file whose bytes say otherwise is an error
/// rather than a garbled text read.
fn media_type_by_extension(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("image/png"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "gif" => Some("image/gif"),
        "webp" => Some("image/webp"),
        "pdf" => Some("application/pdf"),
        _ => None,
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        ErrorKind::NotADirectory => "a parent of it is not a directory".to_string(),
        _ => e.to_string(),
    }
}

fn fail(tool: &str, path: &str, reason: impl std::fmt::Display) -> ToolOutcome {
    ToolOutcome::error(format!("{tool}: {path}: {reason}"))
}

pub(crate) fn read(workspace: &Path, file_path: &str, view_range: Option<[i64; 2]>) -> ToolOutcome {
    let path = match resolve_path(workspace, file_path) {
        Ok(p) => p,
        Err(e) => return ToolOutcome::error(format!("read: {e}")),
    };
    let meta = match fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => return fail("read", file_path, io_reason(&e)),
    };
    if meta.is_dir() {
        return fail(
            "read",
            file_path,
            "is a directory; use glob, or bash with ls, to list it",
        );
    }
    if !meta.is_file() {
        // FIFOs and devices can block forever or never end.
        return fail("read", file_path, "not a regular file");
    }
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return fail("read", file_path, io_reason(&e)),
    };
    let mut head = [0u8; 16];
    let head_len = match read_up_to(&mut file, &mut head) {
        Ok(n) => n,
        Err(e) => return fail("read", file_path, io_reason(&e)),
    };
    let sniffed = sniff_media_type(&head[..head_len]);
    if let Some(media_type) = sniffed {
        if view_range.is_some() {
            return fail(
                "read",
                file_path,
                "view_range applies to text files only; this is an image or PDF",
            );
        }
        return read_media(&path, file_path, meta.len(), media_type);
    }
    if let Some(expected) = media_type_by_extension(&path)
        && head_len > 0
    {
        return fail(
            "read",
            file_path,
            format!("the name says {expected}, but the content is not a valid {expected} file"),
        );
    }
    drop(file);
    read_text(&path, file_path, view_range)
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn read_media(path: &Path, file_path: &str, size: u64, media_type: &str) -> ToolOutcome {
    let cap = if media_type == "application/pdf" {
        PDF_CAP
    } else {
        IMAGE_CAP
    };
    if size > cap {
        return fail(
            "read",
            file_path,
            format!(
                "{media_type} file of {} exceeds the {} limit for images and PDFs",
                human_bytes(size),
                human_bytes(cap)
            ),
        );
    }
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail("read", file_path, io_reason(&e)),
    };
    let data_base64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let block = if media_type == "application/pdf" {
        OutputBlock::Document {
            media_type: media_type.to_string(),
            data_base64,
        }
    } else {
        OutputBlock::Image {
            media_type: media_type.to_string(),
            data_base64,
        }
    };
    ToolOutcome {
        content: vec![block],
        is_error: false,
    }
}

/// Streams the file line by line, so a view of a few lines of a huge file stays cheap.
fn read_text(path: &Path, file_path: &str, view_range: Option<[i64; 2]>) -> ToolOutcome {
    let (start, end) = match view_range {
        None => (1usize, None),
        Some([start, end]) => {
            if start < 1 {
                return fail(
                    "read",
                    file_path,
                    format!("view_range starts at {start}; lines are numbered from 1"),
                );
            }
            if end > 0 && end < start {
                return fail(
                    "read",
                    file_path,
                    format!(
                        "view_range [{start}, {end}] ends before it starts (use an end of -1 for the end of the file)"
                    ),
                );
            }
            let end = if end > 0 {
                usize::try_from(end).ok()
            } else {
                None
            };
            (usize::try_from(start).unwrap_or(usize::MAX), end)
        }
    };

    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return fail("read", file_path, io_reason(&e)),
    };
    let mut reader = BufReader::new(file);
    let mut out = String::new();
    let mut line = Vec::new();
    let mut lineno = 0usize;
    let mut scanned = 0usize;
    let mut truncated_after: Option<usize> = None;
    loop {
        line.clear();
        let n = match reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => return fail("read", file_path, io_reason(&e)),
        };
        if n == 0 {
            break;
        }
        if scanned < BINARY_SNIFF && line.contains(&0) {
            return fail(
                "read",
                file_path,
                "binary file; use bash (for example `file`, `xxd | head`) to inspect it",
            );
        }
        scanned += n;
        lineno += 1;
        if lineno < start {
            continue;
        }
        if end.is_some_and(|e| lineno > e) {
            break;
        }
        if line.ends_with(b"\n") {
            line.pop();
        }
        if line.ends_with(b"\r") {
            line.pop();
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return fail(
                "read",
                file_path,
                format!(
                    "line {lineno} is not valid UTF-8; use bash (for example `iconv` or `xxd`) to inspect this file"
                ),
            );
        };
        let rendered = numbered_line(lineno, text);
        if out.len() + rendered.len() + 1 > READ_TEXT_CAP {
            truncated_after = Some(lineno - 1);
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&rendered);
    }

    if lineno == 0 {
        return ToolOutcome::text("(the file is empty)");
    }
    if start > lineno {
        return fail(
            "read",
            file_path,
            format!("view_range starts at line {start}, but the file has {lineno} lines"),
        );
    }
    if let Some(last) = truncated_after {
        out.push_str(&format!(
            "\n[Output truncated at {} after line {last}; read on with view_range [{}, -1].]",
            human_bytes(READ_TEXT_CAP as u64),
            last + 1
        ));
    }
    ToolOutcome::text(out)
}

pub(crate) fn write(workspace: &Path, file_path: &str, content: &str) -> ToolOutcome {
    let path = match resolve_path(workspace, file_path) {
        Ok(p) => p,
        Err(e) => return ToolOutcome::error(format!("write: {e}")),
    };
    if path.is_dir() {
        return fail("write", file_path, "is a directory");
    }
    let existed = path.exists();
    if let Some(parent) = path.parent()
        && let Err(e) = fs::create_dir_all(parent)
    {
        return fail(
            "write",
            file_path,
            format!("cannot create {}: {}", parent.display(), io_reason(&e)),
        );
    }
    if let Err(e) = fs::write(&path, content) {
        return fail("write", file_path, io_reason(&e));
    }
    ToolOutcome::text(format!(
        "{} {} ({})",
        if existed { "Overwrote" } else { "Created" },
        path.display(),
        human_bytes(content.len() as u64)
    ))
}

pub(crate) fn edit(
    workspace: &Path,
    file_path: &str,
    old_string: &str,
    new_string: &str,
    replace_all: bool,
) -> ToolOutcome {
    let path = match resolve_path(workspace, file_path) {
        Ok(p) => p,
        Err(e) => return ToolOutcome::error(format!("edit: {e}")),
    };
    if old_string.is_empty() {
        return fail(
            "edit",
            file_path,
            "old_string is empty; to create or replace a whole file use write",
        );
    }
    if old_string == new_string {
        return fail(
            "edit",
            file_path,
            "old_string and new_string are identical; nothing would change",
        );
    }
    let text = match load_for_edit(&path, file_path) {
        Ok(t) => t,
        Err(outcome) => return outcome,
    };
    let count = text.matches(old_string).count();
    if count == 0 {
        return fail(
            "edit",
            file_path,
            "old_string was not found. It must match the file exactly, including whitespace \
             and indentation; read the file to check",
        );
    }
    if count > 1 && !replace_all {
        return fail(
            "edit",
            file_path,
            format!(
                "old_string occurs {count} times. Include more surrounding text to make it \
                 unique, or set replace_all to replace every occurrence"
            ),
        );
    }
    let first_at = text.find(old_string).unwrap_or(0);
    let updated = if replace_all {
        text.replace(old_string, new_string)
    } else {
        text.replacen(old_string, new_string, 1)
    };
    // Writing in place (not a rename) keeps the file's permissions, owner and links.
    if let Err(e) = fs::write(&path, &updated) {
        return fail("edit", file_path, io_reason(&e));
    }
    let replaced = if replace_all { count } else { 1 };
    let mut msg = format!(
        "Edited {}: replaced {replaced} occurrence{}.",
        path.display(),
        if replaced == 1 { "" } else { "s" }
    );
    if let Some(snippet) = snippet(&updated, first_at, new_string) {
        msg.push_str("\nThe edited region now reads:\n");
        msg.push_str(&snippet);
    }
    ToolOutcome::text(msg)
}

fn load_for_edit(path: &PathBuf, file_path: &str) -> Result<String, ToolOutcome> {
    let meta = fs::metadata(path).map_err(|e| fail("edit", file_path, io_reason(&e)))?;
    if meta.is_dir() {
        return Err(fail("edit", file_path, "is a directory"));
    }
    if !meta.is_file() {
        return Err(fail("edit", file_path, "not a regular file"));
    }
    if meta.len() > EDIT_CAP {
        return Err(fail(
            "edit",
            file_path,
            format!(
                "the file is {}; edit handles files up to {}. Use bash (sed, a script) instead",
                human_bytes(meta.len()),
                human_bytes(EDIT_CAP)
            ),
        ));
    }
    let bytes = fs::read(path).map_err(|e| fail("edit", file_path, io_reason(&e)))?;
    String::from_utf8(bytes).map_err(|_| {
        fail(
            "edit",
            file_path,
            "not valid UTF-8 text; edit only changes text files",
        )
    })
}

/// Lines around the first replacement, numbered, so the model can check the result without
/// another read.
fn snippet(updated: &str, first_at: usize, new_string: &str) -> Option<String> {
    let first_line = updated.get(..first_at)?.matches('\n').count();
    let new_lines = new_string.matches('\n').count() + 1;
    let from = first_line.saturating_sub(EDIT_CONTEXT_LINES);
    let to = first_line + new_lines + EDIT_CONTEXT_LINES;
    let lines: Vec<String> = updated
        .split('\n')
        .enumerate()
        .skip(from)
        .take((to - from).min(EDIT_SNIPPET_MAX_LINES))
        .map(|(i, l)| numbered_line(i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .collect();
    if lines.is_empty() {
        None
    } else {
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn read_numbers_lines_and_honours_ranges() {
        let d = ws();
        fs::write(d.path().join("f.txt"), "a\nb\r\nc\nd").unwrap();
        let all = read(d.path(), "f.txt", None);
        assert!(!all.is_error);
        assert_eq!(
            all.text_content(),
            "     1\ta\n     2\tb\n     3\tc\n     4\td"
        );
        let mid = read(d.path(), "f.txt", Some([2, 3]));
        assert_eq!(mid.text_content(), "     2\tb\n     3\tc");
        let to_end = read(d.path(), "f.txt", Some([3, 0]));
        assert_eq!(to_end.text_content(), "     3\tc\n     4\td");
        let past = read(d.path(), "f.txt", Some([3, 99]));
        assert_eq!(past.text_content(), "     3\tc\n     4\td");
        assert!(read(d.path(), "f.txt", Some([9, -1])).is_error);
        assert!(read(d.path(), "f.txt", Some([0, 2])).is_error);
        assert!(read(d.path(), "f.txt", Some([3, 2])).is_error);
    }

    #[test]
    fn read_refuses_binaries_dirs_and_missing_files() {
        let d = ws();
        fs::write(d.path().join("b.bin"), b"\x7fELF\x00\x01\x02").unwrap();
        let out = read(d.path(), "b.bin", None);
        assert!(out.is_error && out.text_content().contains("binary"));
        assert!(
            read(d.path(), ".", None)
                .text_content()
                .contains("directory")
        );
        let missing = read(d.path(), "nope.txt", None);
        assert!(missing.is_error);
        assert!(missing.text_content().contains("no such file"));
        fs::write(d.path().join("fake.png"), "not a png").unwrap();
        assert!(read(d.path(), "fake.png", None).is_error);
        fs::write(d.path().join("empty.txt"), "").unwrap();
        assert_eq!(
            read(d.path(), "empty.txt", None).text_content(),
            "(the file is empty)"
        );
    }

    #[test]
    fn read_caps_long_text() {
        let d = ws();
        let line = "x".repeat(1000);
        let body: Vec<&str> = std::iter::repeat_n(line.as_str(), 400).collect();
        fs::write(d.path().join("big.txt"), body.join("\n")).unwrap();
        let out = read(d.path(), "big.txt", None);
        assert!(!out.is_error);
        let text = out.text_content();
        assert!(text.len() <= READ_TEXT_CAP + 200);
        assert!(
            text.contains("[Output truncated"),
            "{}",
            &text[text.len() - 200..]
        );
    }

    #[test]
    fn images_and_pdfs_come_back_as_blocks() {
        let d = ws();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        fs::write(d.path().join("p.png"), png).unwrap();
        let out = read(d.path(), "p.png", None);
        assert_eq!(
            out.content,
            vec![OutputBlock::Image {
                media_type: "image/png".into(),
                data_base64: base64::engine::general_purpose::STANDARD.encode(png),
            }]
        );
        fs::write(d.path().join("doc"), b"%PDF-1.4\n...").unwrap();
        assert!(matches!(
            &read(d.path(), "doc", None).content[0],
            OutputBlock::Document { media_type, .. } if media_type == "application/pdf"
        ));
        assert!(read(d.path(), "p.png", Some([1, 2])).is_error);
    }

    #[test]
    fn write_creates_parents_and_overwrites() {
        let d = ws();
        let out = write(d.path(), "a/b/c.txt", "hi");
        assert!(!out.is_error);
        assert!(out.text_content().starts_with("Created"));
        assert_eq!(
            fs::read_to_string(d.path().join("a/b/c.txt")).unwrap(),
            "hi"
        );
        let out = write(d.path(), "a/b/c.txt", "bye");
        assert!(out.text_content().starts_with("Overwrote"));
        assert_eq!(
            fs::read_to_string(d.path().join("a/b/c.txt")).unwrap(),
            "bye"
        );
        assert!(write(d.path(), "a", "x").is_error);
    }

    #[test]
    fn edit_requires_a_unique_match_unless_replace_all() {
        let d = ws();
        let p = d.path().join("e.txt");
        fs::write(&p, "one two\ntwo three\n").unwrap();
        let out = edit(d.path(), "e.txt", "two", "2", false);
        assert!(out.is_error);
        assert!(out.text_content().contains("occurs 2 times"));
        let out = edit(d.path(), "e.txt", "four", "4", false);
        assert!(out.is_error && out.text_content().contains("not found"));
        let out = edit(d.path(), "e.txt", "one two", "1 2", false);
        assert!(!out.is_error, "{out:?}");
        assert!(out.text_content().contains("     1\t1 2"));
        assert_eq!(fs::read_to_string(&p).unwrap(), "1 2\ntwo three\n");
        let out = edit(d.path(), "e.txt", "t", "T", true);
        assert!(out.text_content().contains("replaced 2 occurrences"));
        assert_eq!(fs::read_to_string(&p).unwrap(), "1 2\nTwo Three\n");
        assert!(edit(d.path(), "e.txt", "", "x", false).is_error);
        assert!(edit(d.path(), "e.txt", "x", "x", false).is_error);
        assert!(edit(d.path(), "missing.txt", "x", "y", false).is_error);
    }
}
