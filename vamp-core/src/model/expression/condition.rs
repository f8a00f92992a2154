//! Condition operands (spec §1.7.1): headers, cookies, hosts, user agents, and their parsing.

use super::*;

/// A condition operand (spec §1.7.1). `positive` is false for the negating comparisons
/// (`!=`, `!`, `not`, `misses`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConditionOperand {
    /// `host == X`.
    Host {
        /// The host.
        value: String,
        /// False for `!=`.
        positive: bool,
    },
    /// `user-agent == X` (X may be an alias: Chrome, Firefox, Safari, Edge, IE).
    UserAgent {
        /// The user agent text.
        value: String,
        /// False for `!=`.
        positive: bool,
    },
    /// `has cookie N` / `misses cookie N`.
    Cookie {
        /// Cookie name.
        name: String,
        /// False for `misses`.
        positive: bool,
    },
    /// `has header N` / `misses header N`.
    Header {
        /// Header name.
        name: String,
        /// False for `misses`.
        positive: bool,
    },
    /// `cookie N has V`.
    CookieContains {
        /// Cookie name.
        name: String,
        /// The substring.
        value: String,
        /// False for `misses`.
        positive: bool,
    },
    /// `header N has V`.
    HeaderContains {
        /// Header name.
        name: String,
        /// The substring.
        value: String,
        /// False for `misses`.
        positive: bool,
    },
    /// A literal HAProxy ACL (`<…>`, or a whole condition that does not parse).
    Raw(String),
}

impl fmt::Display for ConditionOperand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = |p: bool| if p { "==" } else { "!=" };
        let has = |p: bool| if p { "has" } else { "misses" };
        match self {
            ConditionOperand::Host { value, positive } => {
                write!(f, "host {} {}", op(*positive), quote(value))
            }
            ConditionOperand::UserAgent { value, positive } => {
                write!(f, "user-agent {} {}", op(*positive), quote(value))
            }
            ConditionOperand::Cookie { name, positive } => {
                write!(f, "{} cookie {}", has(*positive), quote(name))
            }
            ConditionOperand::Header { name, positive } => {
                write!(f, "{} header {}", has(*positive), quote(name))
            }
            ConditionOperand::CookieContains {
                name,
                value,
                positive,
            } => write!(
                f,
                "cookie {} {} {}",
                quote(name),
                has(*positive),
                quote(value)
            ),
            ConditionOperand::HeaderContains {
                name,
                value,
                positive,
            } => write!(
                f,
                "header {} {} {}",
                quote(name),
                has(*positive),
                quote(value)
            ),
            ConditionOperand::Raw(acl) => write!(f, "<{acl}>"),
        }
    }
}

pub(super) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !"()'\"".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Parses a condition. Text that does not fit the grammar is one raw HAProxy ACL (spec §1.7.1).
///
/// ```
/// use vamp_core::model::expression::{parse_condition, ConditionOperand, Expr};
/// let e = parse_condition("user-agent == Firefox and has cookie beta");
/// assert_eq!(e.operands().len(), 2);
/// assert!(matches!(parse_condition("hdr_sub(user-agent) Android"),
///     Expr::Operand(ConditionOperand::Raw(_))));
/// ```
pub fn parse_condition(text: &str) -> Expr<ConditionOperand> {
    parse(text, &condition_operand)
        .unwrap_or_else(|| Expr::Operand(ConditionOperand::Raw(text.trim().to_owned())))
}

pub(super) fn condition_operand(s: &mut Scanner<'_>) -> Option<ConditionOperand> {
    s.skip_ws();
    if s.symbol("<") {
        let end = s.rest().find('>')?;
        let acl = s.rest()[..end].to_owned();
        if acl.contains('<') {
            return None;
        }
        s.pos += end + 1;
        return Some(ConditionOperand::Raw(acl));
    }
    let save = s.pos;
    if s.keyword("host") {
        if let Some((positive, value)) = comparison(s) {
            return Some(ConditionOperand::Host { value, positive });
        }
        s.pos = save;
    }
    if user_agent(s) {
        if let Some((positive, value)) = comparison(s) {
            return Some(ConditionOperand::UserAgent { value, positive });
        }
        s.pos = save;
    }
    if let Some(positive) = contains_word(s) {
        s.skip_ws();
        let cookie = s.keyword("cookie");
        if cookie || s.keyword("header") {
            s.skip_ws();
            let name = string(s)?;
            return Some(if cookie {
                ConditionOperand::Cookie { name, positive }
            } else {
                ConditionOperand::Header { name, positive }
            });
        }
        s.pos = save;
    }
    let cookie = s.keyword("cookie");
    if cookie || s.keyword("header") {
        s.skip_ws();
        let name = string(s)?;
        s.skip_ws();
        let positive = contains_word(s)?;
        s.skip_ws();
        let value = string(s)?;
        return Some(if cookie {
            ConditionOperand::CookieContains {
                name,
                value,
                positive,
            }
        } else {
            ConditionOperand::HeaderContains {
                name,
                value,
                positive,
            }
        });
    }
    None
}

pub(super) fn user_agent(s: &mut Scanner<'_>) -> bool {
    let save = s.pos;
    let r = s.rest();
    if r.len() >= 4 && r.is_char_boundary(4) && r[..4].eq_ignore_ascii_case("user") {
        s.pos += 4;
        let _ = s.symbol("-") || s.symbol(".");
        if s.keyword("agent") {
            return true;
        }
    }
    s.pos = save;
    false
}

pub(super) fn contains_word(s: &mut Scanner<'_>) -> Option<bool> {
    if s.keyword("has") || s.keyword("contains") {
        Some(true)
    } else if s.keyword("misses") {
        Some(false)
    } else {
        None
    }
}

/// `cmp string`; returns (positive, string).
pub(super) fn comparison(s: &mut Scanner<'_>) -> Option<(bool, String)> {
    s.skip_ws();
    let positive = if s.symbol("==") || s.symbol("=") {
        true
    } else if s.symbol("!=") || s.symbol("!") {
        false
    } else if s.keyword("is") || s.keyword("has") || s.keyword("contains") {
        true
    } else if s.keyword("not") || s.keyword("misses") {
        false
    } else {
        return None;
    };
    s.skip_ws();
    Some((positive, string(s)?))
}

/// `'single'` (`''` = `'`), `"double"` (`""` = `"`), or a run of visible chars except `(` `)`.
pub(super) fn string(s: &mut Scanner<'_>) -> Option<String> {
    for q in ['\'', '"'] {
        if s.rest().starts_with(q) {
            let mut out = String::new();
            let mut chars = s.rest().char_indices().skip(1).peekable();
            while let Some((i, c)) = chars.next() {
                if c == q {
                    if chars.peek().is_some_and(|(_, n)| *n == q) {
                        out.push(q);
                        chars.next();
                        continue;
                    }
                    s.pos += i + 1;
                    return Some(out);
                }
                out.push(c);
            }
            return None;
        }
    }
    let r = s.rest();
    let len = r
        .find(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .unwrap_or(r.len());
    if len == 0 {
        return None;
    }
    s.pos += len;
    Some(r[..len].to_owned())
}
