//! Domain rules: skills (spec §3.6, §5.6).
//!
//! A skill upload is a set of files whose names carry relative paths (`my-skill/SKILL.md`,
//! `my-skill/scripts/a.py`). The rules here decide whether such a set forms a skill — one
//! top-level directory, `SKILL.md` at its root, no path that could escape it — and read the
//! skill's `name` and `description` from the YAML front matter of `SKILL.md`.
//!
//! The front matter parser is deliberately small: SKILL.md front matter is a flat mapping of a
//! few scalar keys, and a full YAML implementation would be a large dependency for two
//! strings. It understands plain, single-quoted and double-quoted scalars (including the
//! multi-line forms), literal (`|`) and folded (`>`) block scalars, comments, and skips the
//! values of keys it does not need (nested mappings, lists, flow collections).

use std::collections::{BTreeSet, HashSet};

use crate::Error;

/// Longest skill name (the kebab-case slug), in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 1024;
/// Longest display name, in characters (spec: "Maximum 255 characters").
pub const MAX_DISPLAY_NAME_LEN: usize = 255;
/// Most files one upload may carry.
pub const MAX_FILES: usize = 1000;
/// Longest uploaded path, in bytes, and longest single path segment.
pub const MAX_PATH_LEN: usize = 1024;
pub const MAX_SEGMENT_LEN: usize = 255;
/// The file every skill needs at the root of its directory.
pub const SKILL_MD: &str = "SKILL.md";

/// Words a skill name may not contain (they would impersonate first-party skills).
const RESERVED_WORDS: [&str; 2] = ["anthropic", "claude"];

/// Normalises one uploaded filename into its path segments.
///
/// Backslashes count as separators (uploads from Windows tools) and `.`/empty segments are
/// dropped, but an absolute path, a drive letter or a `..` segment is an error rather than
/// something to repair: such a name is either a mistake or an attempt to write outside the
/// skill's directory.
pub fn normalize_path(raw: &str) -> Result<Vec<String>, Error> {
    if raw.is_empty() {
        return Err(Error::invalid(
            "every skill file needs a filename carrying its path, e.g. `my-skill/SKILL.md`",
        ));
    }
    if raw.len() > MAX_PATH_LEN {
        return Err(Error::invalid(format!(
            "skill file path is longer than {MAX_PATH_LEN} bytes: `{}…`",
            truncate_chars(raw, 60)
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "skill file path `{}` contains control characters",
            raw.escape_default()
        )));
    }
    let unified = raw.replace('\\', "/");
    let bytes = unified.as_bytes();
    let has_drive = bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
    if unified.starts_with('/') || has_drive {
        return Err(Error::invalid(format!(
            "skill file path `{raw}` is absolute: paths must be relative, e.g. `my-skill/SKILL.md`"
        )));
    }
    let mut segments = Vec::new();
    for seg in unified.split('/') {
        match seg {
            "" | "." => continue,
            ".." => {
                return Err(Error::invalid(format!(
                    "skill file path `{raw}` contains a `..` segment"
                )));
            }
            s if s.len() > MAX_SEGMENT_LEN => {
                return Err(Error::invalid(format!(
                    "skill file path `{raw}` has a segment longer than {MAX_SEGMENT_LEN} bytes"
                )));
            }
            s => segments.push(s.to_string()),
        }
    }
    if segments.is_empty() {
        return Err(Error::invalid(format!(
            "skill file path `{raw}` names no file"
        )));
    }
    Ok(segments)
}

/// Where the files of an upload go: the shared top-level directory and each file's path
/// below it, in upload order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillLayout {
    /// The one directory every uploaded path starts with.
    pub top_dir: String,
    /// Each file's path relative to `top_dir` (`SKILL.md`, `scripts/a.py`), in upload order.
    pub paths: Vec<String>,
    /// Index into `paths` of the root `SKILL.md`.
    pub skill_md: usize,
}

impl SkillLayout {
    /// Checks the uploaded filenames (`None` for a part without one) and lays them out.
    pub fn from_uploads<'a>(
        names: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<Self, Error> {
        let mut top_dir: Option<String> = None;
        let mut paths = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            if paths.len() >= MAX_FILES {
                return Err(Error::invalid(format!(
                    "a skill upload may contain at most {MAX_FILES} files"
                )));
            }
            let segments = normalize_path(name.unwrap_or(""))?;
            if segments.len() < 2 {
                return Err(Error::invalid(format!(
                    "skill file `{}` is not inside a directory: all files must be in one top-level \
                     directory, e.g. `my-skill/SKILL.md`",
                    segments.join("/")
                )));
            }
            match &top_dir {
                None => top_dir = Some(segments[0].clone()),
                Some(top) if *top != segments[0] => {
                    return Err(Error::invalid(format!(
                        "all skill files must be in the same top-level directory: found `{top}/` and `{}/`",
                        segments[0]
                    )));
                }
                Some(_) => {}
            }
            let rel = segments[1..].join("/");
            if !seen.insert(rel.clone()) {
                return Err(Error::invalid(format!(
                    "skill file `{}/{rel}` is uploaded more than once",
                    segments[0]
                )));
            }
            paths.push(rel);
        }
        let top_dir = top_dir.ok_or_else(|| {
            Error::invalid(
                "a skill upload needs at least one file, including `<directory>/SKILL.md`",
            )
        })?;
        // A path cannot be both a file and a directory (`a` and `a/b`): the archive and the
        // mounted copy would be impossible to build.
        let dirs: BTreeSet<&str> = paths
            .iter()
            .flat_map(|p| p.match_indices('/').map(move |(i, _)| &p[..i]))
            .collect();
        if let Some(clash) = paths.iter().find(|p| dirs.contains(p.as_str())) {
            return Err(Error::invalid(format!(
                "skill path `{top_dir}/{clash}` is uploaded as a file but also used as a directory"
            )));
        }
        let skill_md = paths.iter().position(|p| p == SKILL_MD).ok_or_else(|| {
            Error::invalid(format!(
                "the skill directory `{top_dir}/` must contain `{SKILL_MD}` at its root (`{top_dir}/{SKILL_MD}`)"
            ))
        })?;
        Ok(Self {
            top_dir,
            paths,
            skill_md,
        })
    }
}

/// The two front matter keys oma reads. Absent, empty and `null` values are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontMatter {
    pub name: Option<String>,
    pub description: Option<String>,
}

/// A version's identity as read from its `SKILL.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillMeta {
    pub name: String,
    pub description: String,
}

/// Reads `name` and `description` from `SKILL.md` and validates them. `top_dir` stands in for
/// a missing `name` (spec: "set … from the first upload's SKILL.md frontmatter `name` (or its
/// enclosing directory)").
pub fn resolve_meta(top_dir: &str, skill_md: &[u8]) -> Result<SkillMeta, Error> {
    let text = std::str::from_utf8(skill_md)
        .map_err(|_| Error::invalid(format!("`{top_dir}/{SKILL_MD}` is not valid UTF-8 text")))?;
    let fm = parse_front_matter(text)?;
    let name = match fm.name {
        Some(n) => {
            let n = n.trim().to_string();
            validate_name(&n)
                .map_err(|e| Error::invalid(format!("front matter `name`: {}", e.message)))?;
            n
        }
        None => {
            validate_name(top_dir).map_err(|e| {
                Error::invalid(format!(
                    "`{SKILL_MD}` has no `name` in its front matter and the directory name cannot \
                     stand in for it: {}",
                    e.message
                ))
            })?;
            top_dir.to_string()
        }
    };
    let description = fm
        .description
        .map(|d| d.trim().to_string())
        .unwrap_or_default();
    validate_description(&description)?;
    Ok(SkillMeta { name, description })
}

/// A skill name: 1–64 characters of `a-z`, `0-9` and single inner hyphens, without the
/// reserved words `anthropic` and `claude`.
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid("skill name must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(Error::invalid(format!(
            "skill name `{}…` is longer than {MAX_NAME_LEN} characters",
            truncate_chars(name, 40)
        )));
    }
    let charset_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !charset_ok || name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err(Error::invalid(format!(
            "skill name `{name}` must be kebab-case: lowercase letters, digits and single hyphens \
             (not at the start or end)"
        )));
    }
    if let Some(word) = RESERVED_WORDS.iter().find(|w| name.contains(*w)) {
        return Err(Error::invalid(format!(
            "skill name `{name}` must not contain the reserved word `{word}`"
        )));
    }
    Ok(())
}

/// A description: required, at most 1024 characters, no XML-like tags (the description is
/// placed in the model's prompt, where tags could forge structure).
pub fn validate_description(d: &str) -> Result<(), Error> {
    if d.is_empty() {
        return Err(Error::invalid(format!(
            "`{SKILL_MD}` front matter must have a non-empty `description` saying what the skill \
             does and when to use it"
        )));
    }
    if d.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(Error::invalid(format!(
            "skill description is longer than {MAX_DESCRIPTION_LEN} characters"
        )));
    }
    if contains_tag(d) {
        return Err(Error::invalid(
            "skill description must not contain XML tags",
        ));
    }
    Ok(())
}

/// Whether `s` contains something shaped like an XML tag: `<` then a letter, `/`, `!` or `?`,
/// then a `>` later on.
fn contains_tag(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c == b'<'
            && b.get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || b"/!?".contains(n))
            && b[i + 1..].contains(&b'>')
    })
}

/// The display name to store: the caller's (validated), else the skill name. An empty or
/// blank value counts as not given, as a multipart text part cannot express `null`.
pub fn display_name(given: Option<&str>, meta: &SkillMeta) -> Result<String, Error> {
    let Some(given) = given.map(str::trim).filter(|g| !g.is_empty()) else {
        return Ok(meta.name.clone());
    };
    if given.chars().count() > MAX_DISPLAY_NAME_LEN {
        return Err(Error::invalid(format!(
            "`display_name` is longer than {MAX_DISPLAY_NAME_LEN} characters"
        )));
    }
    if given.chars().any(char::is_control) {
        return Err(Error::invalid(
            "`display_name` must be a single line without control characters",
        ));
    }
    Ok(given.to_string())
}

/// A later version must keep the skill's name: the name is the skill's directory wherever it
/// is mounted, so changing it would silently move the files under agents that use it.
pub fn check_same_name(skill_name: &str, upload: &SkillMeta) -> Result<(), Error> {
    if skill_name == upload.name {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "a new version must keep the skill's name `{skill_name}`, but the upload is named `{}`",
            upload.name
        )))
    }
}

/// How a `{version}` path segment names a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// The literal `latest`.
    Latest,
    /// A version id (`skillver_…`).
    Id(String),
    /// A Unix epoch in microseconds, as the older `skills-2025-10-02` beta addresses versions
    /// (its `version` field was the creation time). Ids are never all digits, so the two forms
    /// cannot be confused.
    Epoch(i64),
}

/// Parses a `{version}` path segment. `latest` is only meaningful for reads.
pub fn parse_version_ref(s: &str, allow_latest: bool) -> Result<VersionRef, Error> {
    if s.is_empty() {
        return Err(Error::invalid("skill version must not be empty"));
    }
    if s == "latest" {
        return if allow_latest {
            Ok(VersionRef::Latest)
        } else {
            Err(Error::invalid(
                "`latest` cannot be used here: name the skill version by its id",
            ))
        };
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(VersionRef::Epoch)
            .map_err(|_| Error::invalid(format!("skill version `{s}` is not a valid timestamp")));
    }
    Ok(VersionRef::Id(s.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Front matter
// ---------------------------------------------------------------------------------------------

/// Parses the YAML front matter at the top of a SKILL.md: a `---` line, a flat mapping, then a
/// closing `---` (or `...`) line.
pub fn parse_front_matter(text: &str) -> Result<FrontMatter, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let start = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .unwrap_or(lines.len());
    if lines.get(start).map(|l| l.trim_end()) != Some("---") {
        return Err(Error::invalid(format!(
            "`{SKILL_MD}` must start with YAML front matter: a `---` line, `name:` and \
             `description:` keys, then a closing `---` line"
        )));
    }
    let body_start = start + 1;
    let end = lines[body_start..]
        .iter()
        .position(|l| matches!(l.trim_end(), "---" | "..."))
        .map(|i| body_start + i)
        .ok_or_else(|| {
            Error::invalid(format!(
                "the front matter of `{SKILL_MD}` has no closing `---` line"
            ))
        })?;
    parse_mapping(&lines[body_start..end])
}

fn parse_mapping(lines: &[&str]) -> Result<FrontMatter, Error> {
    let mut fm = FrontMatter::default();
    let (mut seen_name, mut seen_description) = (false, false);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        // Blank lines, comments, and indented lines that belong to a skipped value.
        if trimmed.is_empty() || trimmed.starts_with('#') || line.starts_with([' ', '\t']) {
            i += 1;
            continue;
        }
        let lineno = i + 2; // 1-based, after the opening `---`
        let (key, rest) = split_key(line).ok_or_else(|| {
            Error::invalid(format!(
                "`{SKILL_MD}` front matter line {lineno} is not a `key: value` pair: `{}`",
                truncate_chars(trimmed, 80)
            ))
        })?;
        // The value's continuation: following lines that are indented or blank, up to the last
        // indented one (trailing blank lines belong to no value).
        let mut j = i + 1;
        let mut last = i;
        while j < lines.len() {
            let l = lines[j];
            if l.trim().is_empty() {
                j += 1;
            } else if l.starts_with([' ', '\t']) {
                last = j;
                j += 1;
            } else {
                break;
            }
        }
        let cont = &lines[i + 1..=last];
        let slot = match key.as_str() {
            "name" => Some((&mut fm.name, &mut seen_name)),
            "description" => Some((&mut fm.description, &mut seen_description)),
            _ => None,
        };
        if let Some((slot, seen)) = slot {
            if *seen {
                return Err(Error::invalid(format!(
                    "`{SKILL_MD}` front matter has `{key}` more than once"
                )));
            }
            *seen = true;
            *slot = parse_scalar(&key, rest, cont)?;
        }
        i = last + 1;
    }
    Ok(fm)
}

/// Splits `key: value` (the key possibly quoted). The colon must be followed by a space, a
/// tab or the end of the line, as in YAML.
fn split_key(line: &str) -> Option<(String, &str)> {
    let first = line.chars().next()?;
    if first == '"' || first == '\'' {
        let close = line[1..].find(first)? + 1;
        let key = line[1..close].to_string();
        let after = line[close + 1..].trim_start();
        let rest = after.strip_prefix(':')?;
        return (rest.is_empty() || rest.starts_with([' ', '\t'])).then_some((key, rest));
    }
    let mut search = 0;
    while let Some(off) = line[search..].find(':') {
        let at = search + off;
        let rest = &line[at + 1..];
        if rest.is_empty() || rest.starts_with([' ', '\t']) {
            let key = line[..at].trim_end();
            return (!key.is_empty()).then(|| (key.to_string(), rest));
        }
        search = at + 1;
    }
    None
}

/// Parses the scalar value of `key`: `first` is the text after the colon, `cont` the value's
/// continuation lines.
fn parse_scalar(key: &str, first: &str, cont: &[&str]) -> Result<Option<String>, Error> {
    let head = first.trim();
    let not_string = || {
        Error::invalid(format!(
            "`{SKILL_MD}` front matter `{key}` must be a string"
        ))
    };
    if head.starts_with('"') || head.starts_with('\'') {
        let mut joined = head.to_string();
        for l in cont {
            joined.push('\n');
            joined.push_str(l);
        }
        let (value, tail) = if head.starts_with('"') {
            double_quoted(&joined)
        } else {
            single_quoted(&joined)
        }
        .ok_or_else(|| {
            Error::invalid(format!(
                "`{SKILL_MD}` front matter `{key}` has an unterminated quoted string"
            ))
        })?;
        let tail = tail.trim();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err(Error::invalid(format!(
                "`{SKILL_MD}` front matter `{key}` has text after its closing quote"
            )));
        }
        return Ok(Some(value));
    }
    if head.starts_with('|') || head.starts_with('>') {
        return Ok(Some(block_scalar(key, head, cont)?));
    }
    if head.starts_with('[')
        || head.starts_with('{')
        || head.starts_with('&')
        || head.starts_with('*')
    {
        return Err(not_string());
    }
    let head = strip_comment(head);
    if head.is_empty() {
        // `key:` alone: either nothing, a nested structure, or a plain scalar on the next lines.
        let body: Vec<&str> = cont
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let Some(first_line) = body.first() else {
            return Ok(None);
        };
        if first_line.starts_with("- ") || *first_line == "-" || split_key(first_line).is_some() {
            return Err(not_string());
        }
        return Ok(plain_value(&fold_plain("", cont)));
    }
    Ok(plain_value(&fold_plain(head, cont)))
}

/// `null`, `~` and empty plain scalars mean "no value".
fn plain_value(s: &str) -> Option<String> {
    match s.trim() {
        "" | "~" | "null" | "Null" | "NULL" => None,
        v => Some(v.to_string()),
    }
}

/// Removes a trailing ` # comment` from a plain scalar.
fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return s[..i].trim_end();
        }
    }
    s
}

/// Folds a multi-line plain scalar: line breaks become spaces, blank lines become newlines.
fn fold_plain(head: &str, cont: &[&str]) -> String {
    let mut out = head.to_string();
    let mut blanks = 0usize;
    for l in cont {
        let t = l.trim();
        if t.is_empty() {
            blanks += 1;
            continue;
        }
        if t.starts_with('#') {
            // A comment line ends a plain scalar.
            break;
        }
        if !out.is_empty() {
            if blanks == 0 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', blanks));
            }
        }
        blanks = 0;
        out.push_str(strip_comment(t));
    }
    out
}

/// Parses a double-quoted scalar at the start of `s` (which may span lines). Returns the value
/// and the text after the closing quote.
fn double_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    '0' => out.push('\0'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    't' | '\t' => out.push('\t'),
                    'n' => out.push('\n'),
                    'v' => out.push('\u{b}'),
                    'f' => out.push('\u{c}'),
                    'r' => out.push('\r'),
                    'e' => out.push('\u{1b}'),
                    ' ' => out.push(' '),
                    '"' => out.push('"'),
                    '/' => out.push('/'),
                    '\\' => out.push('\\'),
                    'N' => out.push('\u{85}'),
                    '_' => out.push('\u{a0}'),
                    'L' => out.push('\u{2028}'),
                    'P' => out.push('\u{2029}'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        out.push(char::from_u32(code)?);
                    }
                    '\n' => {
                        // An escaped line break joins the lines without a space.
                        while chars.peek().is_some_and(|(_, c)| *c == ' ' || *c == '\t') {
                            chars.next();
                        }
                    }
                    _ => return None,
                }
            }
            '\n' => fold_quoted_break(&mut out, &mut chars),
            c => out.push(c),
        }
    }
    None
}

/// Parses a single-quoted scalar at the start of `s` (`''` is a quote).
fn single_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1).peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' => {
                if chars.peek().is_some_and(|(_, c)| *c == '\'') {
                    chars.next();
                    out.push('\'');
                } else {
                    return Some((out, &s[i + 1..]));
                }
            }
            '\n' => fold_quoted_break(&mut out, &mut chars),
            c => out.push(c),
        }
    }
    None
}

/// Line folding inside a quoted scalar: trailing spaces before the break and leading spaces
/// after it are dropped; one break becomes a space, each further blank line a newline.
fn fold_quoted_break(
    out: &mut String,
    chars: &mut std::iter::Peekable<impl Iterator<Item = (usize, char)>>,
) {
    while out.ends_with([' ', '\t']) {
        out.pop();
    }
    let mut breaks = 0;
    loop {
        while chars
            .peek()
            .is_some_and(|(_, c)| *c == ' ' || *c == '\t' || *c == '\r')
        {
            chars.next();
        }
        if chars.peek().is_some_and(|(_, c)| *c == '\n') {
            chars.next();
            breaks += 1;
        } else {
            break;
        }
    }
    if breaks == 0 {
        out.push(' ');
    } else {
        out.extend(std::iter::repeat_n('\n', breaks));
    }
}

/// A literal (`|`) or folded (`>`) block scalar with optional chomping (`-`/`+`) and
/// indentation indicators.
fn block_scalar(key: &str, head: &str, cont: &[&str]) -> Result<String, Error> {
    let bad = || {
        Error::invalid(format!(
            "`{SKILL_MD}` front matter `{key}` has an invalid block scalar header"
        ))
    };
    let literal = head.starts_with('|');
    let mut chomp = ' ';
    let mut explicit_indent = None;
    let header = strip_comment(&head[1..]);
    for c in header.chars() {
        match c {
            '-' | '+' if chomp == ' ' => chomp = c,
            '1'..='9' if explicit_indent.is_none() => {
                explicit_indent = c.to_digit(10).map(|d| d as usize)
            }
            _ => return Err(bad()),
        }
    }
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let indent = explicit_indent
        .or_else(|| {
            cont.iter()
                .find(|l| !l.trim().is_empty())
                .map(|l| indent_of(l))
        })
        .unwrap_or(0);
    let lines: Vec<&str> = cont
        .iter()
        .map(|l| {
            if l.trim().is_empty() {
                ""
            } else {
                l.get(indent.min(indent_of(l))..).unwrap_or("")
            }
        })
        .collect();
    let mut body = String::new();
    if literal {
        for l in &lines {
            body.push_str(l);
            body.push('\n');
        }
    } else {
        // Folding: adjacent "normal" lines join with a space; blank lines are newlines; lines
        // that start with extra indentation keep their breaks.
        let mut prev_normal = false;
        let mut pending_blanks = 0usize;
        for (idx, l) in lines.iter().enumerate() {
            if l.is_empty() {
                pending_blanks += 1;
                continue;
            }
            let more_indented = l.starts_with([' ', '\t']);
            if idx > 0 && !body.is_empty() {
                if prev_normal && !more_indented && pending_blanks == 0 {
                    body.push(' ');
                } else if prev_normal && !more_indented {
                    body.extend(std::iter::repeat_n('\n', pending_blanks));
                } else {
                    body.extend(std::iter::repeat_n('\n', pending_blanks + 1));
                }
            } else {
                body.extend(std::iter::repeat_n('\n', pending_blanks));
            }
            pending_blanks = 0;
            body.push_str(l);
            prev_normal = !more_indented;
        }
        if !body.is_empty() {
            body.extend(std::iter::repeat_n('\n', pending_blanks + 1));
        }
    }
    let content = body.trim_end_matches('\n');
    Ok(match chomp {
        '-' => content.to_string(),
        '+' => body,
        _ if content.is_empty() => String::new(),
        _ => format!("{content}\n"),
    })
}

fn truncate_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(s: &str) -> FrontMatter {
        parse_front_matter(s).unwrap()
    }

    #[test]
    fn plain_front_matter() {
        let f = fm("---\nname: my-skill\ndescription: Does things. Use when asked.\n---\n# Body\n");
        assert_eq!(f.name.as_deref(), Some("my-skill"));
        assert_eq!(
            f.description.as_deref(),
            Some("Does things. Use when asked.")
        );
    }

    #[test]
    fn crlf_bom_comments_and_other_keys() {
        let text = "\u{feff}---\r\n# a comment\r\nlicense: MIT\r\nname: pdf-tools # trailing\r\nmetadata:\r\n  \
                    version: 1\r\n  tags: [a, b]\r\nallowed-tools:\r\n  - Read\r\n  - Bash\r\ndescription: \
                    Reads PDFs: text and tables.\r\n---\r\nbody";
        let f = fm(text);
        assert_eq!(f.name.as_deref(), Some("pdf-tools"));
        // A colon inside a plain value is tolerated (strict YAML would reject it).
        assert_eq!(
            f.description.as_deref(),
            Some("Reads PDFs: text and tables.")
        );
    }

    #[test]
    fn quoted_scalars() {
        let f =
            fm("---\nname: \"my-skill\"\ndescription: 'It''s \"quoted\" # not a comment'\n---\n");
        assert_eq!(f.name.as_deref(), Some("my-skill"));
        assert_eq!(
            f.description.as_deref(),
            Some("It's \"quoted\" # not a comment")
        );
        let f = fm("---\ndescription: \"tab\\there \\u00e9 \\\"q\\\" \\\\ end\"\n---\n");
        assert_eq!(f.description.as_deref(), Some("tab\there é \"q\" \\ end"));
        let f = fm("---\ndescription: \"line one\n  line two\n\n  para\"\nname: x\n---\n");
        assert_eq!(f.description.as_deref(), Some("line one line two\npara"));
        let f = fm("---\ndescription: 'a\n  b'\n---\n");
        assert_eq!(f.description.as_deref(), Some("a b"));
        let f = fm("---\n\"name\": q-key\n---\n");
        assert_eq!(f.name.as_deref(), Some("q-key"));
    }

    #[test]
    fn multi_line_plain_and_block_scalars() {
        let f = fm("---\ndescription: first\n  second\n  third\nname: x\n---\n");
        assert_eq!(f.description.as_deref(), Some("first second third"));
        let f = fm("---\ndescription:\n  on the next line\n---\n");
        assert_eq!(f.description.as_deref(), Some("on the next line"));
        let f = fm("---\ndescription: |\n  line 1\n  line 2\n\nname: x\n---\n");
        assert_eq!(f.description.as_deref(), Some("line 1\nline 2\n"));
        let f = fm("---\ndescription: >-\n  folded\n  text\n\n  new para\n---\n");
        assert_eq!(f.description.as_deref(), Some("folded text\nnew para"));
        let f = fm("---\ndescription: |-\n    indented\n      more\n---\n");
        assert_eq!(f.description.as_deref(), Some("indented\n  more"));
    }

    #[test]
    fn null_and_missing_values() {
        let f = fm("---\nname:\ndescription: ~\n---\n");
        assert_eq!(f, FrontMatter::default());
        let f = fm("---\nother: 1\n---\n");
        assert_eq!(f, FrontMatter::default());
    }

    #[test]
    fn front_matter_errors() {
        for bad in [
            "no front matter",
            "---\nname: x\n",
            "---\nname: x\nname: y\n---\n",
            "---\nname: [a, b]\n---\n",
            "---\ndescription:\n  a: b\n---\n",
            "---\ndescription:\n  - a\n---\n",
            "---\nname: \"unterminated\n---\n",
            "---\nname: \"x\" trailing\n---\n",
            "---\njust a line\n---\n",
            "---\ndescription: \"bad \\q escape\"\n---\n",
        ] {
            assert!(parse_front_matter(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("a/b/c.py").unwrap(), vec!["a", "b", "c.py"]);
        assert_eq!(normalize_path("./a//b\\c").unwrap(), vec!["a", "b", "c"]);
        for bad in [
            "",
            "/abs/x",
            "C:/x",
            "c:\\x",
            "a/../b",
            "..",
            "a/\u{0}b",
            "./.",
            &"x".repeat(2000),
        ] {
            assert!(normalize_path(bad).is_err(), "{bad:?} should fail");
        }
        assert!(normalize_path(&format!("a/{}", "y".repeat(300))).is_err());
    }

    #[test]
    fn layouts() {
        let l = SkillLayout::from_uploads([
            Some("s/scripts/a.py"),
            Some("s/SKILL.md"),
            Some("s/ref.md"),
        ])
        .unwrap();
        assert_eq!(l.top_dir, "s");
        assert_eq!(l.paths, vec!["scripts/a.py", "SKILL.md", "ref.md"]);
        assert_eq!(l.skill_md, 1);

        let err = |names: Vec<Option<&str>>| SkillLayout::from_uploads(names).unwrap_err().message;
        assert!(err(vec![Some("a/SKILL.md"), Some("b/x.md")]).contains("same top-level directory"));
        assert!(err(vec![Some("SKILL.md")]).contains("not inside a directory"));
        assert!(err(vec![Some("a/x.md")]).contains("must contain `SKILL.md`"));
        assert!(err(vec![Some("a/sub/SKILL.md")]).contains("must contain `SKILL.md`"));
        assert!(err(vec![Some("a/SKILL.md"), Some("a/./SKILL.md")]).contains("more than once"));
        assert!(
            err(vec![Some("a/SKILL.md"), Some("a/x"), Some("a/x/y")])
                .contains("also used as a directory")
        );
        assert!(err(vec![None]).contains("filename"));
        assert!(err(vec![]).contains("at least one file"));
        let many: Vec<String> = (0..=MAX_FILES).map(|i| format!("a/{i}")).collect();
        assert!(SkillLayout::from_uploads(many.iter().map(|s| Some(s.as_str()))).is_err());
    }

    #[test]
    fn names_and_meta() {
        for ok in ["a", "my-skill", "pdf2-tools", &"a".repeat(64)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "My-Skill",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a b",
            "claude-helper",
            "my-anthropic",
            &"a".repeat(65),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should fail");
        }
        let meta =
            resolve_meta("dir", b"---\nname: my-skill\ndescription: Does X.\n---\n").unwrap();
        assert_eq!(
            meta,
            SkillMeta {
                name: "my-skill".into(),
                description: "Does X.".into()
            }
        );
        // The directory stands in for a missing name.
        let meta = resolve_meta("dir-name", b"---\ndescription: Does X.\n---\n").unwrap();
        assert_eq!(meta.name, "dir-name");
        assert!(resolve_meta("Bad Dir", b"---\ndescription: Does X.\n---\n").is_err());
        assert!(
            resolve_meta("d", b"---\nname: d\n---\n")
                .unwrap_err()
                .message
                .contains("description")
        );
        assert!(resolve_meta("d", b"---\nname: d\ndescription: has <tag> in it\n---\n").is_err());
        resolve_meta("d", b"---\nname: d\ndescription: a < b and c > d\n---\n").unwrap();
        assert!(resolve_meta("d", &[0xff, 0xfe]).is_err());
        let long = format!("---\nname: d\ndescription: {}\n---\n", "x".repeat(1025));
        assert!(resolve_meta("d", long.as_bytes()).is_err());
    }

    #[test]
    fn display_names() {
        let meta = SkillMeta {
            name: "my-skill".into(),
            description: "d".into(),
        };
        assert_eq!(display_name(None, &meta).unwrap(), "my-skill");
        assert_eq!(display_name(Some("  "), &meta).unwrap(), "my-skill");
        assert_eq!(display_name(Some(" My Skill "), &meta).unwrap(), "My Skill");
        assert!(display_name(Some("two\nlines"), &meta).is_err());
        assert!(display_name(Some(&"x".repeat(256)), &meta).is_err());
        check_same_name("my-skill", &meta).unwrap();
        assert!(check_same_name("other", &meta).is_err());
    }

    #[test]
    fn version_refs() {
        assert_eq!(
            parse_version_ref("latest", true).unwrap(),
            VersionRef::Latest
        );
        assert!(parse_version_ref("latest", false).is_err());
        assert_eq!(
            parse_version_ref("1759178010641129", false).unwrap(),
            VersionRef::Epoch(1_759_178_010_641_129)
        );
        assert!(parse_version_ref("99999999999999999999999", false).is_err());
        assert_eq!(
            parse_version_ref("skillver_x", false).unwrap(),
            VersionRef::Id("skillver_x".into())
        );
        assert!(parse_version_ref("", true).is_err());
    }
}
