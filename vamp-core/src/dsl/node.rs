//! A YAML document as a tree of [`Node`]s that remember where they came from.
//!
//! The DSL readers walk this tree instead of deserializing with serde: Vamp's DSL has many
//! short and long forms (`breed: name` or a whole breed, `9050/http` or a map, …), and every error
//! must name the artifact path, line and column. JSON is read by the same parser (JSON is YAML).
//!
//! One file: the YAML tree and its builder from the event parser change together.

use std::fmt;

use granit_parser::{Event, Parser, ScalarStyle, Span};

use super::error::{DslError, ErrorKind};

/// Upper bound on the number of nodes one input may expand to (aliases included), so that an
/// alias bomb ("billion laughs") is an error instead of exhausting memory.
const MAX_NODES: usize = 1_000_000;
/// Nodes an input may expand to per byte of its text, above [`BASE_NODES`]: a document
/// without aliases has fewer nodes than bytes, so only repeated alias expansion reaches the
/// budget — and a small body cannot make the reader build a huge tree (a 379-byte alias bomb
/// stops at 10 000 nodes instead of a million).
const NODES_PER_BYTE: usize = 4;
/// Nodes every input may expand to, whatever its size.
const BASE_NODES: usize = 8_192;

/// The expansion budget of a text of `len` bytes.
fn node_budget(len: usize) -> usize {
    len.saturating_mul(NODES_PER_BYTE)
        .saturating_add(BASE_NODES)
        .min(MAX_NODES)
}
/// Upper bound on nesting depth, so hostile input cannot overflow the stack of the readers.
const MAX_DEPTH: usize = 256;

/// A position in the source: 1-based line and 1-based column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Mark {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number.
    pub column: usize,
}

impl Mark {
    fn from_span(span: &Span) -> Self {
        Mark {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// One YAML value with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where the value starts.
    pub mark: Mark,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null` or an empty value.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string; `quoted` is true when the source quoted it (so `"1"` stays a string).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping with its keys in source order.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// A short name of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a map",
        }
    }
}

impl Node {
    /// A node without a source position (used for values built in code).
    pub fn synthetic(value: Value) -> Self {
        Node {
            value,
            mark: Mark::default(),
        }
    }

    /// The scalar as text, if it is a scalar (numbers and booleans are printed).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// Converts to JSON (map keys become strings).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Seq(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Map(entries) => serde_json::Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Builds a node tree from JSON (positions are unknown).
    pub fn from_json(value: &serde_json::Value) -> Node {
        let v = match value {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_f64().map(Value::Float))
                .unwrap_or(Value::Null),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Seq(a.iter().map(Node::from_json).collect()),
            serde_json::Value::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, v)| (Node::synthetic(Value::Str(k.clone())), Node::from_json(v)))
                    .collect(),
            ),
        };
        Node::synthetic(v)
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

/// Parses every document of `text` (YAML or JSON) into node trees.
///
/// An empty input, or an input of only comments, yields no documents.
pub fn parse_documents(text: &str) -> Result<Vec<Node>, DslError> {
    let mut builder = Builder {
        budget: node_budget(text.len()),
        ..Builder::default()
    };
    for item in Parser::new_from_str(text) {
        let (event, span) = item.map_err(|e| {
            let m = e.marker();
            DslError::new(
                ErrorKind::YamlParsingError,
                "",
                Mark {
                    line: m.line(),
                    column: m.col() + 1,
                },
                format!("cannot parse YAML/JSON: {}", e.info().replace('\n', "; ")),
                "check indentation, quotes and brackets around this position",
            )
        })?;
        builder.event(event, &span)?;
    }
    Ok(builder.documents)
}

#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    /// Open collections: the node under construction and, for maps, a pending key.
    stack: Vec<Frame>,
    /// Anchored nodes with their size in nodes (counted once, when anchored).
    anchors: Vec<(usize, Node, usize)>,
    nodes: usize,
    budget: usize,
}

enum Frame {
    Seq(Node, usize),
    Map(Node, usize, Option<Node>),
}

impl Builder {
    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), DslError> {
        let mark = Mark::from_span(span);
        match event {
            Event::DocumentStart(..) => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| (t.handle().to_owned(), t.suffix().to_owned()));
                let node = Node {
                    value: scalar(&text, style, tag.as_ref()),
                    mark,
                };
                self.push(node, anchor)?;
            }
            Event::SequenceStart(_, anchor, _) => {
                self.depth_check(mark)?;
                self.stack.push(Frame::Seq(
                    Node {
                        value: Value::Seq(Vec::new()),
                        mark,
                    },
                    anchor,
                ));
            }
            Event::MappingStart(_, anchor, _) => {
                self.depth_check(mark)?;
                self.stack.push(Frame::Map(
                    Node {
                        value: Value::Map(Vec::new()),
                        mark,
                    },
                    anchor,
                    None,
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(Frame::Seq(node, anchor) | Frame::Map(node, anchor, _)) =
                    self.stack.pop()
                {
                    self.push(node, anchor)?;
                }
            }
            Event::Alias(id) => {
                let Some(size) = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, _, size)| *size)
                else {
                    return Err(DslError::new(
                        ErrorKind::YamlParsingError,
                        "",
                        mark,
                        "alias refers to an unknown anchor",
                        "define the anchor (&name) before using it (*name)",
                    ));
                };
                // Counted before the copy is made: a bomb is refused before it takes memory.
                self.nodes = self.nodes.saturating_add(size);
                self.over_budget(mark)?;
                let node = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == id)
                    .map(|(_, n, _)| n.clone())
                    .unwrap_or_else(|| Node::synthetic(Value::Null));
                self.push(
                    Node {
                        value: node.value,
                        mark,
                    },
                    0,
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    fn depth_check(&self, mark: Mark) -> Result<(), DslError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(DslError::new(
                ErrorKind::YamlParsingError,
                "",
                mark,
                format!("input is nested deeper than {MAX_DEPTH} levels"),
                "flatten the document",
            ));
        }
        Ok(())
    }

    fn over_budget(&self, mark: Mark) -> Result<(), DslError> {
        if self.nodes > self.budget {
            return Err(DslError::new(
                ErrorKind::YamlParsingError,
                "",
                mark,
                format!(
                    "input expands to more than {} values ({NODES_PER_BYTE} per byte of input)",
                    self.budget
                ),
                "avoid repeated alias expansion (*name) of large anchors",
            ));
        }
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<(), DslError> {
        self.nodes += 1;
        self.over_budget(node.mark)?;
        if anchor != 0 {
            let size = count(&node);
            self.anchors.push((anchor, node.clone(), size));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq(seq, _)) => {
                if let Value::Seq(items) = &mut seq.value {
                    items.push(node);
                }
            }
            Some(Frame::Map(map, _, pending)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Value::Map(entries) = &mut map.value {
                        if key_is_merge(&key) {
                            merge_into(entries, node);
                        } else {
                            entries.push((key, node));
                        }
                    }
                }
            },
        }
        Ok(())
    }
}

fn count(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(count).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count(k) + count(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn key_is_merge(key: &Node) -> bool {
    matches!(&key.value, Value::Str(s) if s == "<<")
}

/// YAML merge keys (`<<: *base`): entries already present win.
fn merge_into(entries: &mut Vec<(Node, Node)>, source: Node) {
    let maps = match source.value {
        Value::Map(m) => vec![m],
        Value::Seq(items) => items
            .into_iter()
            .filter_map(|n| match n.value {
                Value::Map(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for map in maps {
        for (k, v) in map {
            if !entries.iter().any(|(e, _)| e.value == k.value) {
                entries.push((k, v));
            }
        }
    }
}

/// Resolves a scalar with the YAML 1.2 core schema (plain scalars only; quoted ones are strings).
fn scalar(text: &str, style: ScalarStyle, tag: Option<&(String, String)>) -> Value {
    if let Some((_, suffix)) = tag {
        match suffix.as_str() {
            "str" => return Value::Str(text.to_owned()),
            "null" => return Value::Null,
            _ => {}
        }
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Value::Int(i);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_owned())
}

fn parse_int(text: &str) -> Option<i64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    if body.is_empty() {
        return None;
    }
    if let Some(hex) = body.strip_prefix("0x") {
        let v = i64::from_str_radix(hex, 16).ok()?;
        return Some(if text.starts_with('-') { -v } else { v });
    }
    if let Some(oct) = body.strip_prefix("0o") {
        let v = i64::from_str_radix(oct, 8).ok()?;
        return Some(if text.starts_with('-') { -v } else { v });
    }
    if body.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    None
}

fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    matches!(body, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (body.bytes().any(|b| b.is_ascii_digit())
            && body
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let docs = parse_documents("name: a\nports:\n  web: 8080/http\n").unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("map")
        };
        assert_eq!(entries[1].0.mark, Mark { line: 2, column: 1 });
        let Value::Map(ports) = &entries[1].1.value else {
            panic!("map")
        };
        assert_eq!(ports[0].1.mark, Mark { line: 3, column: 8 });
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let docs = parse_documents("[1, '1', 1.5, true, ~, '', 0x10, 1.0.0, 50%]").unwrap();
        let Value::Seq(items) = &docs[0].value else {
            panic!("seq")
        };
        let values: Vec<_> = items.iter().map(|n| n.value.clone()).collect();
        assert_eq!(
            values,
            vec![
                Value::Int(1),
                Value::Str("1".into()),
                Value::Float(1.5),
                Value::Bool(true),
                Value::Null,
                Value::Str(String::new()),
                Value::Int(16),
                Value::Str("1.0.0".into()),
                Value::Str("50%".into()),
            ]
        );
    }

    #[test]
    fn multiple_documents_and_json() {
        let docs = parse_documents("---\na: 1\n---\n{\"b\": [2]}\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].to_json(), serde_json::json!({"b": [2]}));
    }

    #[test]
    fn aliases_and_merge_keys_expand() {
        let docs = parse_documents("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n").unwrap();
        assert_eq!(
            docs[0].to_json(),
            serde_json::json!({"base": {"x": 1}, "other": {"y": 2, "x": 1}})
        );
    }

    #[test]
    fn alias_bombs_are_rejected() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(err.kind, ErrorKind::YamlParsingError);
    }

    #[test]
    fn syntax_errors_carry_positions() {
        let err = parse_documents("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.kind, ErrorKind::YamlParsingError);
        assert!(err.line >= 1);
    }
}
