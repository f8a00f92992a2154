//! The value interpolation grammar of trait values (spec §1.4).
//!
//! ```text
//! value    := part+
//! part     := literal | "$$" | "$" variable | "${" ws? variable ws? "}"
//! variable := global | trait | host | local
//! global   := segment "://" segment ("." segment)*     config://vamp.namespace, env://HOME
//! trait    := segment "." segment "." rest              db.ports.port, db.constants.X.Y
//! host     := segment ".host"                           db.host
//! local    := segment                                   PORT
//! ```

use std::fmt;

/// One piece of an interpolated value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text (`$$` already unescaped to `$`).
    Literal(String),
    /// A variable to resolve.
    Variable(Variable),
}

/// A variable inside a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// `scheme://path`, e.g. `config://vamp.namespace` or `env://HOME`.
    Global {
        /// `config`, `env`, …
        scheme: String,
        /// What follows `://`.
        path: String,
    },
    /// `<alias>.<group>.<name>`, e.g. `db.ports.port`.
    Trait {
        /// The dependency alias (or cluster name).
        alias: String,
        /// `ports`, `environment_variables`, `constants` or `hosts`.
        group: String,
        /// The trait name (may contain dots).
        name: String,
    },
    /// `<alias>.host`.
    Host {
        /// The dependency alias.
        alias: String,
    },
    /// A local name: the service's own environment variable or constant.
    Local(String),
}

impl Variable {
    /// The dependency alias this variable refers to, if any.
    pub fn alias(&self) -> Option<&str> {
        match self {
            Variable::Trait { alias, .. } | Variable::Host { alias } => Some(alias),
            Variable::Global { .. } | Variable::Local(_) => None,
        }
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variable::Global { scheme, path } => write!(f, "{scheme}://{path}"),
            Variable::Trait { alias, group, name } => write!(f, "{alias}.{group}.{name}"),
            Variable::Host { alias } => write!(f, "{alias}.host"),
            Variable::Local(name) => f.write_str(name),
        }
    }
}

/// Why a value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse value '{value}' at offset {offset}: {reason}")]
pub struct InterpolationError {
    /// The whole value.
    pub value: String,
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// The trait groups a `trait` variable may name.
pub const GROUPS: [&str; 4] = ["ports", "environment_variables", "constants", "hosts"];

/// Spec §1.4 lets a segment contain `/`; names never do (spec §1.1), so a segment stops there
/// and `http://$db.host:$db.ports.web/api` means port `web` followed by `/api`.
fn is_segment_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '[' | ']' | '.' | '{' | '}' | ':' | ';' | ',' | '$' | '/'))
}

/// Parses a value into literal and variable parts.
///
/// ```
/// use vamp_core::model::interpolation::{parse, Part, Variable};
/// let parts = parse("http://$db.host:${db.ports.port}/x").unwrap();
/// assert_eq!(parts[1], Part::Variable(Variable::Host { alias: "db".into() }));
/// ```
pub fn parse(value: &str) -> Result<Vec<Part>, InterpolationError> {
    let err = |offset: usize, reason: &str| InterpolationError {
        value: value.to_owned(),
        offset,
        reason: reason.to_owned(),
    };
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        literal.push_str(&rest[..pos]);
        let offset = value.len() - rest.len() + pos;
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            literal.push('$');
            rest = r;
            continue;
        }
        let (text, consumed) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| err(offset, "'${' is not closed by '}'"))?;
            let text = inner[..end].trim();
            if text.contains(char::is_whitespace) || text.is_empty() {
                return Err(err(
                    offset,
                    "a variable in ${…} must be one name without blanks",
                ));
            }
            (text, end + 2)
        } else {
            let len = variable_len(after);
            if len == 0 {
                return Err(err(
                    offset,
                    "'$' must be followed by a variable name (write $$ for a literal $)",
                ));
            }
            (&after[..len], len)
        };
        let variable = parse_variable(text).ok_or_else(|| err(offset, "malformed variable"))?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Variable(variable));
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// Length of an unbraced variable: a global (`x://a.b`), or up to three dotted segments where
/// a trait's third segment stops at the first char that cannot be in a segment.
fn variable_len(text: &str) -> usize {
    let seg = |s: &str| s.find(|c: char| !is_segment_char(c)).unwrap_or(s.len());
    let first = seg(text);
    if first == 0 {
        return 0;
    }
    let after_first = &text[first..];
    if let Some(path) = after_first.strip_prefix("://") {
        let mut len = first + 3;
        let mut p = path;
        loop {
            let l = seg(p);
            if l == 0 {
                break;
            }
            len += l;
            p = &p[l..];
            match p.strip_prefix('.') {
                Some(next) if seg(next) > 0 => {
                    len += 1;
                    p = next;
                }
                _ => break,
            }
        }
        return len;
    }
    let mut len = first;
    let mut p = after_first;
    for _ in 0..2 {
        match p.strip_prefix('.') {
            Some(next) if seg(next) > 0 => {
                let l = seg(next);
                len += 1 + l;
                p = &next[l..];
            }
            _ => break,
        }
    }
    len
}

fn parse_variable(text: &str) -> Option<Variable> {
    let valid = |s: &str| !s.is_empty() && s.chars().all(is_segment_char);
    if let Some((scheme, path)) = text.split_once("://") {
        return (valid(scheme) && path.split('.').all(valid)).then(|| Variable::Global {
            scheme: scheme.to_owned(),
            path: path.to_owned(),
        });
    }
    let parts: Vec<&str> = text.splitn(3, '.').collect();
    match parts.as_slice() {
        [local] if valid(local) => Some(Variable::Local((*local).to_owned())),
        [alias, "host"] if valid(alias) => Some(Variable::Host {
            alias: (*alias).to_owned(),
        }),
        [alias, group, name] if valid(alias) && valid(group) && name.split('.').all(valid) => {
            Some(Variable::Trait {
                alias: (*alias).to_owned(),
                group: (*group).to_owned(),
                name: (*name).to_owned(),
            })
        }
        _ => None,
    }
}

/// The variables of a value, in order.
pub fn variables(value: &str) -> Result<Vec<Variable>, InterpolationError> {
    Ok(parse(value)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Variable(v) => Some(v),
            Part::Literal(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(s: &str) -> Vec<String> {
        variables(s)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn forms() {
        assert_eq!(
            vars("$db.host:$db.ports.port"),
            ["db.host", "db.ports.port"]
        );
        assert_eq!(vars("${ db.constants.a.b }x"), ["db.constants.a.b"]);
        assert_eq!(
            vars("jdbc://${config://vamp.namespace}"),
            ["config://vamp.namespace"]
        );
        assert_eq!(vars("${env://HOME}/x"), ["env://HOME"]);
        assert_eq!(vars("$env://HOME/x"), ["env://HOME"]);
        assert_eq!(
            vars("http://$db.host:$db.ports.web/api/v1"),
            ["db.host", "db.ports.web"],
            "a path after a reference is literal text"
        );
        assert_eq!(vars("$PORT"), ["PORT"]);
        assert_eq!(vars("cost $$5"), Vec::<String>::new());
        assert_eq!(
            parse("cost $$5").unwrap(),
            vec![Part::Literal("cost $5".into())]
        );
    }

    #[test]
    fn errors() {
        for bad in ["${a b}", "${a", "$ x", "$", "${}"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
