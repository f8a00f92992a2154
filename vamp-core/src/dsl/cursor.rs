//! Reading helpers over [`Node`]s: strict maps, typed scalars, paths and the source map.
//!
//! One file: the reading helpers every reader uses, kept together so they stay consistent.

use std::collections::HashMap;

use super::error::{DslError, ErrorKind};
use super::node::{Mark, Node, Value};
use crate::model::{Metadata, Percentage};

/// Where each artifact path was found in the source (for errors found after reading).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceMap {
    marks: HashMap<String, Mark>,
    /// Logical path prefixes written elsewhere in the source: the one-service cluster form
    /// `clusters.a: {breed: …}` is `clusters.a.services[0]` in the model.
    aliases: Vec<(String, String)>,
}

impl SourceMap {
    /// Records `path` at `mark` (the first visit wins).
    pub(crate) fn record(&mut self, path: &str, mark: Mark) {
        self.marks.entry(path.to_owned()).or_insert(mark);
    }

    /// Records that paths under `logical` were written under `written`.
    pub(crate) fn alias(&mut self, logical: &str, written: &str) {
        self.aliases.push((logical.to_owned(), written.to_owned()));
    }

    /// The mark of `path`, or of its closest recorded ancestor.
    pub fn locate(&self, path: &str) -> Mark {
        let owned;
        let mut p = path;
        for (logical, written) in &self.aliases {
            if let Some(rest) = path.strip_prefix(logical.as_str())
                && (rest.is_empty() || rest.starts_with(['.', '[']))
            {
                owned = format!("{written}{rest}");
                p = &owned;
                break;
            }
        }
        loop {
            if let Some(m) = self.marks.get(p) {
                return *m;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.marks.get("").copied().unwrap_or_default(),
            }
        }
    }

    /// Fills in line and column of an error from its path.
    pub fn place(&self, mut error: DslError) -> DslError {
        if error.line == 0 {
            let m = self.locate(&error.path);
            error.line = m.line;
            error.column = m.column;
        }
        error
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// An error at a node.
pub(crate) fn err(
    kind: ErrorKind,
    path: &str,
    node: &Node,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> DslError {
    DslError::new(kind, path, node.mark, message, hint)
}

/// An "expected X, found Y" error.
pub(crate) fn type_err(path: &str, node: &Node, expected: &str) -> DslError {
    err(
        ErrorKind::UnexpectedTypeError,
        path,
        node,
        format!("expected {expected}, found {}", node.value.type_name()),
        format!("write {expected} here"),
    )
}

/// A map being read: keys must all be consumed before [`Obj::finish`].
pub(crate) struct Obj<'n> {
    pub(crate) node: &'n Node,
    pub(crate) path: String,
    entries: &'n [(Node, Node)],
    used: Vec<bool>,
}

impl<'n> Obj<'n> {
    pub(crate) fn new(node: &'n Node, path: &str, what: &str) -> Result<Self, DslError> {
        match &node.value {
            Value::Map(entries) => Ok(Obj {
                node,
                path: path.to_owned(),
                entries,
                used: vec![false; entries.len()],
            }),
            _ => Err(type_err(path, node, what)),
        }
    }

    /// True when the map has this key (without consuming it).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| key_is(k, key))
    }

    /// Takes the value of the first present key of `keys` (aliases), with its path.
    pub(crate) fn take(&mut self, keys: &[&str]) -> Option<(&'n Node, String)> {
        let entries = self.entries;
        for key in keys {
            if let Some(i) = entries.iter().position(|(k, _)| key_is(k, key)) {
                self.used[i] = true;
                // Duplicate aliases (`env` and `environment_variables`) are both consumed; the
                // later ones are reported as unexpected by `finish` unless consumed too.
                return Some((&entries[i].1, join(&self.path, key)));
            }
        }
        None
    }

    /// Takes a required key.
    pub(crate) fn required(&mut self, keys: &[&str]) -> Result<(&'n Node, String), DslError> {
        self.take(keys).ok_or_else(|| {
            err(
                ErrorKind::MissingPathValueError,
                &join(&self.path, keys[0]),
                self.node,
                format!("missing required field '{}'", keys[0]),
                format!("add '{}: …' to {}", keys[0], display_path(&self.path)),
            )
        })
    }

    /// Consumes keys whose values are ignored (read-only fields of API output).
    pub(crate) fn ignore(&mut self, keys: &[&str]) {
        for key in keys {
            let _ = self.take(&[key]);
        }
    }

    /// The unconsumed entries.
    pub(crate) fn rest(&mut self) -> Vec<(&'n Node, &'n Node)> {
        let mut out = Vec::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                self.used[i] = true;
                out.push((k, v));
            }
        }
        out
    }

    /// Fails on the first key that was not consumed (strict consumption, spec §1.1).
    pub(crate) fn finish(self) -> Result<(), DslError> {
        for (i, (k, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let name = k.scalar_text().unwrap_or_else(|| k.to_string());
                return Err(err(
                    ErrorKind::UnexpectedElement,
                    &join(&self.path, &name),
                    k,
                    format!("unexpected field '{name}'"),
                    "remove it or check its spelling and indentation",
                ));
            }
        }
        Ok(())
    }
}

fn key_is(k: &Node, key: &str) -> bool {
    matches!(&k.value, Value::Str(s) if s == key)
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        "the document".to_owned()
    } else {
        format!("'{path}'")
    }
}

/// The entries of a map node, or a type error.
pub(crate) fn entries<'n>(
    node: &'n Node,
    path: &str,
    what: &str,
) -> Result<&'n [(Node, Node)], DslError> {
    match &node.value {
        Value::Map(e) => Ok(e),
        // `environment_variables:` with nothing after it is an empty map.
        Value::Null => Ok(&[]),
        _ => Err(type_err(path, node, what)),
    }
}

/// A map key as text.
pub(crate) fn key_text(key: &Node, path: &str) -> Result<String, DslError> {
    // YAML reads an unquoted `[host:port]:` key as a one-element list; it means the text.
    if let Value::Seq(items) = &key.value
        && let [item] = items.as_slice()
        && let Some(text) = item.scalar_text()
    {
        return Ok(format!("[{text}]"));
    }
    key.scalar_text()
        .ok_or_else(|| type_err(path, key, "a plain key"))
}

/// A scalar as a string (numbers and booleans are accepted and printed).
pub(crate) fn string(node: &Node, path: &str) -> Result<String, DslError> {
    node.scalar_text()
        .ok_or_else(|| type_err(path, node, "a string"))
}

/// A one-line string for data-plane text (conditions, rewrites, virtual hosts): no control
/// characters (a newline would be a line of HAProxy configuration) and no bidirectional
/// controls (text that displays as other text). `kind` is the error reported.
pub(crate) fn one_line(node: &Node, path: &str, kind: ErrorKind) -> Result<String, DslError> {
    let text = string(node, path)?;
    if let Some(c) = text
        .chars()
        .find(|c| crate::model::names::is_forbidden_char(*c))
    {
        return Err(err(
            kind,
            path,
            node,
            format!(
                "the text holds the control character U+{:04X}",
                u32::from(c)
            ),
            "write it on one line, without control or bidirectional-control characters",
        ));
    }
    Ok(text)
}

/// A list item that must be a string (`UnexpectedInnerElementError` otherwise).
pub(crate) fn item_string(node: &Node, path: &str) -> Result<String, DslError> {
    match &node.value {
        Value::Map(_) | Value::Seq(_) | Value::Null => Err(err(
            ErrorKind::UnexpectedInnerElementError,
            path,
            node,
            format!(
                "expected a string in this list, found {}",
                node.value.type_name()
            ),
            "write each item as a plain string",
        )),
        _ => string(node, path),
    }
}

/// A scalar as a string, `None` for null.
pub(crate) fn opt_string(node: &Node, path: &str) -> Result<Option<String>, DslError> {
    match node.value {
        Value::Null => Ok(None),
        _ => string(node, path).map(Some),
    }
}

/// A non-negative integer.
pub(crate) fn unsigned(node: &Node, path: &str) -> Result<u64, DslError> {
    match &node.value {
        Value::Int(i) if *i >= 0 => Ok(*i as u64),
        Value::Str(s) if s.trim().parse::<u64>().is_ok() => Ok(s.trim().parse().unwrap_or(0)),
        _ => Err(type_err(path, node, "a non-negative whole number")),
    }
}

/// A signed integer.
pub(crate) fn integer(node: &Node, path: &str) -> Result<i64, DslError> {
    match &node.value {
        Value::Int(i) => Ok(*i),
        Value::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| type_err(path, node, "a whole number")),
        _ => Err(type_err(path, node, "a whole number")),
    }
}

/// A number.
pub(crate) fn number(node: &Node, path: &str) -> Result<f64, DslError> {
    match &node.value {
        Value::Int(i) => Ok(*i as f64),
        Value::Float(f) if f.is_finite() => Ok(*f),
        Value::Str(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| type_err(path, node, "a number")),
        _ => Err(type_err(path, node, "a number")),
    }
}

/// A percentage: `"N%"`, or a bare number 0–100 (decision Q5).
pub(crate) fn percentage(node: &Node, path: &str, kind: ErrorKind) -> Result<Percentage, DslError> {
    let invalid = |msg: String| {
        err(
            kind,
            path,
            node,
            msg,
            "write a percentage between 0% and 100%, e.g. \"50%\"",
        )
    };
    match &node.value {
        // Vamp reads a percentage only as text with its sign (issue 17).
        Value::Int(i) => Err(err(
            ErrorKind::UnexpectedTypeError,
            path,
            node,
            format!("{i} is a bare number, not a percentage"),
            format!("write it with its sign, e.g. \"{i}%\""),
        )),
        Value::Str(s) => {
            let t = s.trim();
            // A negative or too-large number is a range error, not a type error.
            if let Some(n) = t.strip_suffix('%').map(str::trim)
                && let Ok(v) = n.parse::<i64>()
                && !(0..=100).contains(&v)
            {
                return Err(invalid(format!("{v}% is outside 0%-100%")));
            }
            Percentage::parse(t).map_err(|e| type_err_msg(path, node, &e.0))
        }
        _ => Err(type_err(path, node, "a percentage like \"50%\"")),
    }
}

fn type_err_msg(path: &str, node: &Node, message: &str) -> DslError {
    err(
        ErrorKind::UnexpectedTypeError,
        path,
        node,
        message,
        "write a percentage like \"50%\"",
    )
}

/// A boolean (`true`/`false`, also as strings).
pub(crate) fn boolean(node: &Node) -> Option<bool> {
    match &node.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `metadata`: a free map (spec §1.1).
pub(crate) fn metadata(node: &Node, path: &str) -> Result<Metadata, DslError> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((key_text(k, path)?, v.to_json())))
            .collect(),
        Value::Null => Ok(Metadata::default()),
        _ => Err(err(
            ErrorKind::UnsupportedMetadata,
            path,
            node,
            format!("metadata must be a map, found {}", node.value.type_name()),
            "write metadata as 'key: value' pairs",
        )),
    }
}

/// A free JSON map (dialects, template definitions).
pub(crate) fn json_map(
    node: &Node,
    path: &str,
) -> Result<crate::model::Map<serde_json::Value>, DslError> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| Ok((key_text(k, path)?, v.to_json())))
            .collect(),
        Value::Null => Ok(Default::default()),
        _ => Err(type_err(path, node, "a map")),
    }
}

/// A list, or a single item wrapped in a list.
pub(crate) fn list_or_one(node: &Node) -> Vec<(usize, &Node)> {
    match &node.value {
        Value::Seq(items) => items.iter().enumerate().collect(),
        Value::Null => Vec::new(),
        _ => vec![(0, node)],
    }
}

/// Checks a name with the generic rule (`IllegalName`).
pub(crate) fn check_name(name: &str, path: &str, node: &Node) -> Result<(), DslError> {
    if crate::model::names::is_valid_name(name) {
        Ok(())
    } else {
        Err(err(
            ErrorKind::IllegalName,
            path,
            node,
            format!("illegal name '{name}'"),
            "names may not be empty or contain blanks, '/', '[' or ']'",
        ))
    }
}

/// Checks a name with the strict rule (`IllegalStrictName`).
pub(crate) fn check_strict_name(name: &str, path: &str, node: &Node) -> Result<(), DslError> {
    if crate::model::names::is_valid_strict_name(name) {
        Ok(())
    } else {
        Err(err(
            ErrorKind::IllegalStrictName,
            path,
            node,
            format!("illegal name '{name}'"),
            "port and constant names may not contain blanks, '.', '/', '[' or ']'",
        ))
    }
}
