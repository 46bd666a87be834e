//! A parser for the ConfigObj INI dialect certbot writes its renewal files in.
//!
//! Pure: text in, tree out. Supported: `key = value`, full-line comments
//! (`#` or `;`), inline `#` comments after a value, single-, double- and
//! triple-quoted values, comma lists (`a, b` and a trailing comma for a
//! one-item list), and nested sections (`[renewalparams]`, `[[webroot_map]]`).
//! Duplicate keys and sections, unterminated quotes and lines that are neither
//! a section, a comment nor `key = value` are errors naming the file and line.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}: {message}", path = path.display())]
pub struct IniError {
    pub path: PathBuf,
    pub line: usize,
    pub message: String,
}

/// One value: a plain string or a comma list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    List(Vec<String>),
}

impl Value {
    /// Every item (a string is a list of one; an empty string of none).
    pub fn items(&self) -> Vec<String> {
        match self {
            Value::Str(s) if s.is_empty() => Vec::new(),
            Value::Str(s) => vec![s.clone()],
            Value::List(v) => v.clone(),
        }
    }

    /// The value as one string (list items joined with ", ").
    pub fn joined(&self) -> String {
        match self {
            Value::Str(s) => s.clone(),
            Value::List(v) => v.join(", "),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: Value,
    /// 1-based line of the key.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    /// Empty for the top level.
    pub name: String,
    /// 1-based line of the header (0 for the top level).
    pub line: usize,
    pub entries: Vec<Entry>,
    pub sections: Vec<Section>,
}

impl Section {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }

    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// A parsed file: the top-level section holds everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ini {
    pub root: Section,
}

/// Parses `text`; `path` only names the file in errors.
pub fn parse(text: &str, path: &Path) -> Result<Ini, IniError> {
    let mut p = Parser {
        lines: text.lines().enumerate(),
        path,
    };
    // Open sections as a stack of (depth, section); index 0 is the root.
    let mut stack: Vec<(usize, Section)> = vec![(0, Section::default())];
    while let Some((idx, raw)) = p.lines.next() {
        let line = idx + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.starts_with('[') {
            let (depth, name) = p.header(trimmed, line)?;
            let parent_depth = stack.last().map(|(d, _)| *d).unwrap_or(0);
            if depth > parent_depth + 1 {
                return Err(p.err(
                    line,
                    format!(
                        "section [{name}] is nested {depth} deep but its parent is only {parent_depth} deep"
                    ),
                ));
            }
            close_to(&mut stack, depth - 1);
            let parent = &stack
                .last()
                .ok_or_else(|| p.err(line, "no parent".into()))?
                .1;
            if parent.section(&name).is_some() {
                return Err(p.err(line, format!("section [{name}] appears twice")));
            }
            if parent.get(&name).is_some() {
                return Err(p.err(line, format!("[{name}] is both a key and a section")));
            }
            stack.push((
                depth,
                Section {
                    name,
                    line,
                    ..Section::default()
                },
            ));
            continue;
        }
        let Some((key, rest)) = raw.split_once('=') else {
            return Err(p.err(
                line,
                format!(
                    "expected `key = value`, a [section] or a # comment, found {:?}",
                    shorten(trimmed)
                ),
            ));
        };
        let key = unquote_key(key.trim());
        if key.is_empty() {
            return Err(p.err(line, "a key is missing before '='".into()));
        }
        let value = p.value(rest, line)?;
        let current = &mut stack
            .last_mut()
            .ok_or_else(|| p.err(line, "no section".into()))?
            .1;
        if current.get(&key).is_some() || current.section(&key).is_some() {
            return Err(p.err(
                line,
                format!("key {key:?} appears twice in the same section"),
            ));
        }
        current.entries.push(Entry { key, value, line });
    }
    close_to(&mut stack, 0);
    let root = stack.pop().map(|(_, s)| s).unwrap_or_default();
    Ok(Ini { root })
}

/// Pops sections deeper than `depth` into their parents.
fn close_to(stack: &mut Vec<(usize, Section)>, depth: usize) {
    while stack.len() > 1 && stack.last().is_some_and(|(d, _)| *d > depth) {
        if let Some((_, done)) = stack.pop() {
            if let Some((_, parent)) = stack.last_mut() {
                parent.sections.push(done);
            }
        }
    }
}

struct Parser<'a, I> {
    lines: I,
    path: &'a Path,
}

impl<'a, I: Iterator<Item = (usize, &'a str)>> Parser<'a, I> {
    fn err(&self, line: usize, message: String) -> IniError {
        IniError {
            path: self.path.to_path_buf(),
            line,
            message,
        }
    }

    /// `[name]`, `[[name]]`, ... with an optional trailing comment.
    fn header(&self, s: &str, line: usize) -> Result<(usize, String), IniError> {
        let depth = s.chars().take_while(|&c| c == '[').count();
        let body = &s[depth..];
        let closing = "]".repeat(depth);
        let Some(end) = body.find(']') else {
            return Err(self.err(line, format!("section header {s:?} has no closing ']'")));
        };
        let name = body[..end].trim();
        let after = &body[end..];
        let Some(rest) = after.strip_prefix(closing.as_str()) else {
            return Err(self.err(
                line,
                format!("section header {s:?} opens with {depth} '[' but closes with a different number"),
            ));
        };
        let rest = rest.trim_start();
        if rest.starts_with(']') || !(rest.is_empty() || rest.starts_with('#')) {
            return Err(self.err(line, format!("unexpected text after section header {s:?}")));
        }
        if name.is_empty() {
            return Err(self.err(line, "empty section name".into()));
        }
        Ok((depth, unquote_key(name)))
    }

    /// The value after '=': quoted, unquoted or a list, then an optional comment.
    fn value(&mut self, rest: &str, line: usize) -> Result<Value, IniError> {
        let s = rest.trim();
        for q in ["'''", "\"\"\""] {
            if let Some(body) = s.strip_prefix(q) {
                return self.triple(body, q, line);
            }
        }
        let mut items = Vec::new();
        let mut is_list = false;
        let mut cur = s;
        loop {
            cur = cur.trim_start();
            if cur.is_empty() || cur.starts_with('#') {
                break;
            }
            if let Some(next) = cur.strip_prefix(',').filter(|_| items.is_empty()) {
                // A lone "," is ConfigObj's empty list.
                is_list = true;
                cur = next;
                continue;
            }
            let (item, after) = self.item(cur, line)?;
            items.push(item);
            let after = after.trim_start();
            if let Some(next) = after.strip_prefix(',') {
                is_list = true;
                cur = next;
            } else if after.is_empty() || after.starts_with('#') {
                break;
            } else {
                return Err(self.err(
                    line,
                    format!("unexpected text {:?} after a quoted value", shorten(after)),
                ));
            }
        }
        if is_list {
            Ok(Value::List(items))
        } else {
            Ok(Value::Str(items.pop().unwrap_or_default()))
        }
    }

    /// One list item: a quoted string or text up to ',' or '#'.
    fn item<'s>(&self, s: &'s str, line: usize) -> Result<(String, &'s str), IniError> {
        if let Some(q) = s.chars().next().filter(|c| matches!(c, '"' | '\'')) {
            let body = &s[1..];
            let Some(end) = body.find(q) else {
                return Err(self.err(line, format!("unterminated {q} quote")));
            };
            return Ok((body[..end].to_string(), &body[end + 1..]));
        }
        let end = s.find([',', '#']).unwrap_or(s.len());
        Ok((s[..end].trim_end().to_string(), &s[end..]))
    }

    /// A triple-quoted value, possibly over several lines.
    fn triple(&mut self, body: &str, q: &str, line: usize) -> Result<Value, IniError> {
        let mut text = body.to_string();
        loop {
            if let Some(end) = text.find(q) {
                let after = text[end + q.len()..].trim();
                if !(after.is_empty() || after.starts_with('#')) {
                    return Err(self.err(
                        line,
                        format!("unexpected text {:?} after a quoted value", shorten(after)),
                    ));
                }
                text.truncate(end);
                return Ok(Value::Str(text));
            }
            match self.lines.next() {
                Some((_, next)) => {
                    text.push('\n');
                    text.push_str(next);
                }
                None => return Err(self.err(line, format!("unterminated {q} quote"))),
            }
        }
    }
}

fn unquote_key(k: &str) -> String {
    for q in ['"', '\''] {
        if k.len() >= 2 && k.starts_with(q) && k.ends_with(q) {
            return k[1..k.len() - 1].to_string();
        }
    }
    k.to_string()
}

fn shorten(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests;
