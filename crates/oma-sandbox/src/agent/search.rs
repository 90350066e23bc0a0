//! The `glob` and `grep` tools. Blocking code, run on tokio's blocking pool; both check their
//! cancellation token as they walk, so a `Cancel` stops them promptly.
//!
//! Both walk with the `ignore` crate (ripgrep's walker): `.gitignore`, `.ignore` and
//! `.git/info/exclude` rules apply (inside or outside a git repository), hidden files are
//! included, `.git` itself is skipped and symlinks are not followed. An explicit `path` inside
//! an ignored directory is still searched.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use globset::GlobBuilder;
use ignore::{WalkBuilder, WalkState};
use regex::bytes::RegexBuilder;
use tokio_util::sync::CancellationToken;

use super::text::{human_bytes, utf8_prefix};
use super::{normalize, resolve_path};
use crate::limits::{GLOB_LIMIT, GREP_MATCH_LIMIT, GREP_OUTPUT_CAP};
use crate::protocol::ToolOutcome;

/// Longest matching line shown in full; longer ones are cut.
const GREP_LINE_CHARS: usize = 500;
/// Files larger than this are not searched by `grep` (and said so).
const GREP_FILE_CAP: u64 = 64 * 1024 * 1024;
/// Entries a walk may visit before it stops (and says so).
const WALK_LIMIT: usize = 200_000;
/// Glob matches collected before sorting; beyond this the walk stops.
const GLOB_COLLECT_LIMIT: usize = 100_000;
/// Compiled-regex size limit, so a pathological pattern fails fast instead of eating memory.
const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

fn walker(root: &Path) -> WalkBuilder {
    let mut b = WalkBuilder::new(root);
    b.hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .ignore(true)
        .parents(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git");
    b
}

/// Splits a pattern into the literal directories it starts with and the glob part, so
/// `src/**/*.rs` walks only `src`. The last component always stays in the glob.
fn split_literal_prefix(pattern: &str) -> (PathBuf, String) {
    let is_meta = |c: &str| c.contains(['*', '?', '[', '{']);
    let comps: Vec<&str> = pattern.split('/').collect();
    let mut prefix = PathBuf::new();
    let mut i = 0;
    if pattern.starts_with('/') {
        prefix.push("/");
        i = 1;
    }
    while i + 1 < comps.len() && !is_meta(comps[i]) {
        if !comps[i].is_empty() {
            prefix.push(comps[i]);
        }
        i += 1;
    }
    (prefix, comps[i..].join("/"))
}

pub(crate) fn glob(
    workspace: &Path,
    pattern: &str,
    path: Option<&str>,
    cancel: &CancellationToken,
) -> ToolOutcome {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return ToolOutcome::error("glob: the pattern is empty");
    }
    let base = match path {
        Some(p) => match resolve_path(workspace, p) {
            Ok(p) => p,
            Err(e) => return ToolOutcome::error(format!("glob: {e}")),
        },
        None => workspace.to_path_buf(),
    };
    let pattern = pattern.strip_prefix("./").unwrap_or(pattern);
    let (prefix, rest) = split_literal_prefix(pattern);
    let root = normalize(&base.join(prefix));
    let matcher = match GlobBuilder::new(&rest)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
    {
        Ok(g) => g.compile_matcher(),
        Err(e) => return ToolOutcome::error(format!("glob: invalid pattern `{pattern}`: {e}")),
    };
    match fs::metadata(&root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return ToolOutcome::error(format!("glob: {}: not a directory", root.display()));
        }
        // A literal prefix that does not exist simply matches nothing.
        Err(_) if path.is_none() || root != base => return ToolOutcome::text("no matches"),
        Err(e) => return ToolOutcome::error(format!("glob: {}: {e}", root.display())),
    }

    let mut found: Vec<(PathBuf, SystemTime)> = Vec::new();
    let mut visited = 0usize;
    let mut stopped: Option<String> = None;
    for entry in walker(&root).build() {
        if cancel.is_cancelled() {
            return ToolOutcome::error("glob: cancelled");
        }
        visited += 1;
        if visited > WALK_LIMIT {
            stopped = Some(format!(
                "the search stopped after visiting {WALK_LIMIT} entries"
            ));
            break;
        }
        let Ok(entry) = entry else { continue };
        if !entry
            .file_type()
            .is_some_and(|t| t.is_file() || t.is_symlink())
        {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        if !matcher.is_match(rel) {
            continue;
        }
        let mtime = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        found.push((entry.into_path(), mtime));
        if found.len() >= GLOB_COLLECT_LIMIT {
            stopped = Some(format!(
                "the search stopped after {GLOB_COLLECT_LIMIT} matches"
            ));
            break;
        }
    }
    if found.is_empty() {
        return ToolOutcome::text(match stopped {
            Some(why) => format!("no matches ({why}; narrow the path)"),
            None => "no matches".to_string(),
        });
    }
    // Newest first; ties by name so the order is stable.
    found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total = found.len();
    let mut lines: Vec<String> = found
        .iter()
        .take(GLOB_LIMIT)
        .map(|(p, _)| p.display().to_string())
        .collect();
    if total > GLOB_LIMIT {
        lines.push(format!(
            "[{total}{} files match; these are the {GLOB_LIMIT} most recently modified. Narrow the pattern or path to see others.]",
            if stopped.is_some() { "+" } else { "" }
        ));
    } else if let Some(why) = stopped {
        lines.push(format!("[Results may be incomplete: {why}.]"));
    }
    ToolOutcome::text(lines.join("\n"))
}

pub(crate) fn grep(
    workspace: &Path,
    pattern: &str,
    path: Option<&str>,
    cancel: &CancellationToken,
) -> ToolOutcome {
    if pattern.is_empty() {
        return ToolOutcome::error("grep: the pattern is empty");
    }
    let re = match RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
    {
        Ok(re) => re,
        Err(e) => return ToolOutcome::error(format!("grep: invalid regular expression: {e}")),
    };
    let root = match path {
        Some(p) => match resolve_path(workspace, p) {
            Ok(p) => p,
            Err(e) => return ToolOutcome::error(format!("grep: {e}")),
        },
        None => workspace.to_path_buf(),
    };
    if let Err(e) = fs::metadata(&root) {
        return ToolOutcome::error(format!("grep: {}: {e}", root.display()));
    }

    let mut out = Output::default();
    let mut visited = 0usize;
    let mut notes: Vec<String> = Vec::new();
    let mut walk = walker(&root);
    // Sorted, so repeated searches list matches in the same order.
    walk.sort_by_file_path(|a, b| a.cmp(b));
    let mut state = WalkState::Continue;
    for entry in walk.build() {
        if cancel.is_cancelled() {
            return ToolOutcome::error("grep: cancelled");
        }
        visited += 1;
        if visited > WALK_LIMIT {
            notes.push(format!(
                "the search stopped after visiting {WALK_LIMIT} entries"
            ));
            break;
        }
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        state = search_file(entry.path(), &re, &mut out, cancel);
        if matches!(state, WalkState::Quit) {
            break;
        }
    }
    if cancel.is_cancelled() {
        return ToolOutcome::error("grep: cancelled");
    }
    let mut text = if out.lines.is_empty() {
        "no matches".to_string()
    } else {
        out.lines.join("\n")
    };
    if matches!(state, WalkState::Quit) {
        text.push_str(&format!(
            "\n[Results truncated at {} matching lines / {}; narrow the pattern or path.]",
            GREP_MATCH_LIMIT,
            human_bytes(GREP_OUTPUT_CAP as u64)
        ));
    }
    if out.skipped_large > 0 {
        notes.push(format!(
            "{} file(s) over {} were not searched",
            out.skipped_large,
            human_bytes(GREP_FILE_CAP)
        ));
    }
    for note in notes {
        text.push_str(&format!("\n[{note}]"));
    }
    ToolOutcome::text(text)
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    bytes: usize,
    skipped_large: usize,
}

/// Searches one file; `Quit` once the output is full.
fn search_file(
    path: &Path,
    re: &regex::bytes::Regex,
    out: &mut Output,
    cancel: &CancellationToken,
) -> WalkState {
    let Ok(meta) = fs::metadata(path) else {
        return WalkState::Continue;
    };
    if meta.len() > GREP_FILE_CAP {
        out.skipped_large += 1;
        return WalkState::Continue;
    }
    let mut data = Vec::with_capacity(meta.len() as usize);
    let Ok(mut f) = fs::File::open(path) else {
        return WalkState::Continue;
    };
    if f.read_to_end(&mut data).is_err() {
        return WalkState::Continue;
    }
    // Binary files are skipped, as ripgrep does.
    if data[..data.len().min(8 * 1024)].contains(&0) {
        return WalkState::Continue;
    }
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if i.is_multiple_of(10_000) && cancel.is_cancelled() {
            return WalkState::Quit;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !re.is_match(line) {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let shown = utf8_prefix(&text, GREP_LINE_CHARS);
        let ellipsis = if shown.len() < text.len() { " …" } else { "" };
        let rendered = format!("{}:{}:{shown}{ellipsis}", path.display(), i + 1);
        if out.lines.len() >= GREP_MATCH_LIMIT || out.bytes + rendered.len() > GREP_OUTPUT_CAP {
            return WalkState::Quit;
        }
        out.bytes += rendered.len() + 1;
        out.lines.push(rendered);
    }
    WalkState::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn touch(path: &Path, body: &str, age_secs: u64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, body).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn literal_prefixes_are_split_off() {
        assert_eq!(
            split_literal_prefix("src/**/*.rs"),
            (PathBuf::from("src"), "**/*.rs".to_string())
        );
        assert_eq!(
            split_literal_prefix("/etc/*.conf"),
            (PathBuf::from("/etc"), "*.conf".to_string())
        );
        assert_eq!(
            split_literal_prefix("a/b.txt"),
            (PathBuf::from("a"), "b.txt".to_string())
        );
        assert_eq!(
            split_literal_prefix("*.md"),
            (PathBuf::new(), "*.md".to_string())
        );
    }

    #[test]
    fn glob_is_newest_first_and_respects_gitignore() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path();
        touch(&ws.join("old.rs"), "", 300);
        touch(&ws.join("src/new.rs"), "", 10);
        touch(&ws.join("src/deep/mid.rs"), "", 100);
        touch(&ws.join("src/notes.md"), "", 5);
        touch(&ws.join("target/gen.rs"), "", 1);
        touch(&ws.join(".gitignore"), "target/\n", 1000);
        let token = CancellationToken::new();
        let out = glob(ws, "**/*.rs", None, &token);
        let want = ["src/new.rs", "src/deep/mid.rs", "old.rs"]
            .map(|p| ws.join(p).display().to_string())
            .join("\n");
        assert_eq!(out.text_content(), want);
        // `*` does not cross directories.
        let top = glob(ws, "*.rs", None, &token);
        assert_eq!(top.text_content(), ws.join("old.rs").display().to_string());
        // An explicit path into an ignored directory is searched.
        let ignored = glob(ws, "*.rs", Some("target"), &token);
        assert_eq!(
            ignored.text_content(),
            ws.join("target/gen.rs").display().to_string()
        );
        assert_eq!(
            glob(ws, "**/*.py", None, &token).text_content(),
            "no matches"
        );
        assert_eq!(
            glob(ws, "nope/*.rs", None, &token).text_content(),
            "no matches"
        );
        assert!(glob(ws, "a[", None, &token).is_error);
    }

    #[test]
    fn grep_lists_path_line_text_and_skips_binaries() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path();
        touch(&ws.join("a.txt"), "alpha\nbeta\ngamma beta\n", 0);
        touch(&ws.join("sub/b.txt"), "no\nbeta here\n", 0);
        fs::write(ws.join("bin.dat"), b"beta\0\x01").unwrap();
        let token = CancellationToken::new();
        let out = grep(ws, "bet[a]", None, &token);
        let a = ws.join("a.txt").display().to_string();
        let b = ws.join("sub/b.txt").display().to_string();
        assert_eq!(
            out.text_content(),
            format!("{a}:2:beta\n{a}:3:gamma beta\n{b}:2:beta here")
        );
        let one = grep(ws, "^gamma", Some("a.txt"), &token);
        assert_eq!(one.text_content(), format!("{a}:3:gamma beta"));
        assert_eq!(grep(ws, "zeta", None, &token).text_content(), "no matches");
        assert!(grep(ws, "(", None, &token).is_error);
        assert!(grep(ws, "x", Some("missing"), &token).is_error);
    }

    #[test]
    fn grep_caps_matches_and_stops_when_cancelled() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path();
        let body = "hit\n".repeat(2000);
        touch(&ws.join("many.txt"), &body, 0);
        let token = CancellationToken::new();
        let out = grep(ws, "hit", None, &token);
        let text = out.text_content();
        assert_eq!(text.matches(":hit").count(), GREP_MATCH_LIMIT);
        assert!(text.contains("[Results truncated"));
        token.cancel();
        assert!(grep(ws, "hit", None, &token).is_error);
        assert!(glob(ws, "*", None, &token).is_error);
    }
}
