//! Boolean expressions of conditions (spec §1.7.1) and route selectors (spec §1.7.3).
//!
//! ```text
//! expr   := term (("or" | "||" | "|") term)*        -- keywords are case-insensitive
//! term   := factor (("and" | "&&" | "&") factor)*   -- AND binds tighter than OR
//! factor := ("!" | "not ") (operand | "(" expr ")") | operand | "(" expr ")"
//! ```

use std::fmt;

/// A boolean expression over operands `T`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<T> {
    /// Any of.
    Or(Vec<Expr<T>>),
    /// All of.
    And(Vec<Expr<T>>),
    /// Not.
    Not(Box<Expr<T>>),
    /// A leaf.
    Operand(T),
}

impl<T> Expr<T> {
    /// Evaluates with `leaf` deciding each operand.
    pub fn eval(&self, leaf: &mut impl FnMut(&T) -> bool) -> bool {
        match self {
            Expr::Or(items) => items.iter().any(|e| e.eval(leaf)),
            Expr::And(items) => items.iter().all(|e| e.eval(leaf)),
            Expr::Not(e) => !e.eval(leaf),
            Expr::Operand(t) => leaf(t),
        }
    }

    /// Every operand, left to right.
    pub fn operands(&self) -> Vec<&T> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a T>) {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().for_each(|e| e.collect(out)),
            Expr::Not(e) => e.collect(out),
            Expr::Operand(t) => out.push(t),
        }
    }
}

/// A position in the text being parsed.
pub(crate) struct Scanner<'a> {
    pub(crate) text: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    pub(crate) fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }

    /// Consumes `word` (case-insensitive) if it is followed by a non-word character.
    pub(crate) fn keyword(&mut self, word: &str) -> bool {
        let r = self.rest();
        if r.len() >= word.len()
            && r.is_char_boundary(word.len())
            && r[..word.len()].eq_ignore_ascii_case(word)
            && !r[word.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Consumes a literal symbol.
    pub(crate) fn symbol(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }
}

/// Parses `text` as an expression whose operands `operand` reads; `None` if it does not parse.
pub(crate) fn parse<T>(
    text: &str,
    operand: &dyn Fn(&mut Scanner<'_>) -> Option<T>,
) -> Option<Expr<T>> {
    let mut s = Scanner { text, pos: 0 };
    let e = expr(&mut s, operand, 0)?;
    s.skip_ws();
    s.rest().is_empty().then_some(e)
}

const MAX_DEPTH: usize = 64;

fn expr<T>(
    s: &mut Scanner<'_>,
    operand: &dyn Fn(&mut Scanner<'_>) -> Option<T>,
    depth: usize,
) -> Option<Expr<T>> {
    let mut terms = vec![term(s, operand, depth)?];
    loop {
        let save = s.pos;
        s.skip_ws();
        if s.symbol("||") || s.keyword("or") || s.symbol("|") {
            terms.push(term(s, operand, depth)?);
        } else {
            s.pos = save;
            break;
        }
    }
    Some(if terms.len() == 1 {
        terms.pop()?
    } else {
        Expr::Or(terms)
    })
}

fn term<T>(
    s: &mut Scanner<'_>,
    operand: &dyn Fn(&mut Scanner<'_>) -> Option<T>,
    depth: usize,
) -> Option<Expr<T>> {
    let mut factors = vec![factor(s, operand, depth)?];
    loop {
        let save = s.pos;
        s.skip_ws();
        if s.symbol("&&") || s.keyword("and") || s.symbol("&") {
            factors.push(factor(s, operand, depth)?);
        } else {
            s.pos = save;
            break;
        }
    }
    Some(if factors.len() == 1 {
        factors.pop()?
    } else {
        Expr::And(factors)
    })
}

fn factor<T>(
    s: &mut Scanner<'_>,
    operand: &dyn Fn(&mut Scanner<'_>) -> Option<T>,
    depth: usize,
) -> Option<Expr<T>> {
    if depth > MAX_DEPTH {
        return None;
    }
    s.skip_ws();
    let save = s.pos;
    if s.symbol("!") || s.keyword("not") {
        s.skip_ws();
        if let Some(inner) = group_or_operand(s, operand, depth) {
            return Some(Expr::Not(Box::new(inner)));
        }
        s.pos = save;
    }
    group_or_operand(s, operand, depth)
}

fn group_or_operand<T>(
    s: &mut Scanner<'_>,
    operand: &dyn Fn(&mut Scanner<'_>) -> Option<T>,
    depth: usize,
) -> Option<Expr<T>> {
    s.skip_ws();
    if s.symbol("(") {
        let e = expr(s, operand, depth + 1)?;
        s.skip_ws();
        return s.symbol(")").then_some(e);
    }
    let save = s.pos;
    match operand(s) {
        Some(t) => Some(Expr::Operand(t)),
        None => {
            s.pos = save;
            None
        }
    }
}

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

fn quote(s: &str) -> String {
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

fn condition_operand(s: &mut Scanner<'_>) -> Option<ConditionOperand> {
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

fn user_agent(s: &mut Scanner<'_>) -> bool {
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

fn contains_word(s: &mut Scanner<'_>) -> Option<bool> {
    if s.keyword("has") || s.keyword("contains") {
        Some(true)
    } else if s.keyword("misses") {
        Some(false)
    } else {
        None
    }
}

/// `cmp string`; returns (positive, string).
fn comparison(s: &mut Scanner<'_>) -> Option<(bool, String)> {
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
fn string(s: &mut Scanner<'_>) -> Option<String> {
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

/// Checks a route selector expression (spec §1.7.3); the error says what is wrong.
///
/// ```
/// use vamp_core::model::expression::check_selector;
/// assert!(check_selector("label(app)(web) && port(8080)").is_ok());
/// assert!(check_selector("label(app)").is_err());
/// ```
pub fn check_selector(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("the selector is empty".into());
    }
    parse(text, &selector_operand)
        .map(|_| ())
        .ok_or_else(|| "it does not parse".into())
}

fn selector_operand(s: &mut Scanner<'_>) -> Option<()> {
    s.skip_ws();
    if s.keyword("true") || s.keyword("false") {
        return Some(());
    }
    let r = s.rest();
    let name_len = r.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = r[..name_len].to_ascii_lowercase();
    s.pos += name_len;
    let args = match name.as_str() {
        "label" => 2,
        "name" | "id" | "kind" | "type" | "namespace" | "group" | "image" | "ip" | "host"
        | "port" | "port_index" | "index" => 1,
        _ => return None,
    };
    for _ in 0..args {
        let arg = paren_arg(s)?;
        let numeric = matches!(name.as_str(), "port" | "port_index" | "index");
        let valid = if numeric {
            arg.trim().parse::<u32>().is_ok()
        } else {
            regex_syntax::Parser::new().parse(&arg).is_ok()
        };
        if !valid {
            return None;
        }
    }
    Some(())
}

/// `( … )` with balanced inner parentheses (regexes may contain groups).
fn paren_arg(s: &mut Scanner<'_>) -> Option<String> {
    if !s.symbol("(") {
        return None;
    }
    let mut depth = 1;
    for (i, c) in s.rest().char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let arg = s.rest()[..i].to_owned();
                    s.pos += i + 1;
                    return Some(arg);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConditionOperand as O;

    #[test]
    fn condition_forms() {
        let cases = [
            (
                "host == example.com",
                O::Host {
                    value: "example.com".into(),
                    positive: true,
                },
            ),
            (
                "host != 'a b'",
                O::Host {
                    value: "a b".into(),
                    positive: false,
                },
            ),
            (
                "User.Agent is Chrome",
                O::UserAgent {
                    value: "Chrome".into(),
                    positive: true,
                },
            ),
            (
                "useragent not IE",
                O::UserAgent {
                    value: "IE".into(),
                    positive: false,
                },
            ),
            (
                "has cookie vamp",
                O::Cookie {
                    name: "vamp".into(),
                    positive: true,
                },
            ),
            (
                "misses header X-Beta",
                O::Header {
                    name: "X-Beta".into(),
                    positive: false,
                },
            ),
            (
                "cookie group contains \"be\"\"ta\"",
                O::CookieContains {
                    name: "group".into(),
                    value: "be\"ta".into(),
                    positive: true,
                },
            ),
            (
                "header X misses y",
                O::HeaderContains {
                    name: "X".into(),
                    value: "y".into(),
                    positive: false,
                },
            ),
            (
                "<hdr_sub(user-agent) Android>",
                O::Raw("hdr_sub(user-agent) Android".into()),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_condition(text), Expr::Operand(expected), "{text}");
        }
    }

    #[test]
    fn precedence_and_negation() {
        let e =
            parse_condition("(user-agent = Chrome OR user-agent = Firefox) AND has cookie vamp");
        let Expr::And(items) = &e else {
            panic!("{e:?}")
        };
        assert!(matches!(items[0], Expr::Or(_)));
        let e = parse_condition("a_host == x || has cookie a && ! has header b");
        assert!(
            matches!(e, Expr::Operand(O::Raw(_))),
            "unknown operand falls back to raw"
        );
        let e = parse_condition("host == x || has cookie a && ! has header b");
        let Expr::Or(items) = &e else { panic!("{e:?}") };
        assert!(matches!(&items[1], Expr::And(f) if matches!(f[1], Expr::Not(_))));
        let e = parse_condition("not (has cookie a or has cookie b)");
        assert!(matches!(e, Expr::Not(_)));
    }

    #[test]
    fn display_parses_back() {
        for text in [
            "host != 'a b'",
            "cookie 'x y' has ''''",
            "header h misses v",
            "<x y>",
        ] {
            let e = parse_condition(text);
            let Expr::Operand(op) = &e else { panic!() };
            assert_eq!(parse_condition(&op.to_string()), e);
        }
    }

    #[test]
    fn selectors() {
        assert!(check_selector("name(web.*) and not kind(app) or image((a|b):1)").is_ok());
        assert!(check_selector("true").is_ok());
        assert!(check_selector("port(abc)").is_err());
        assert!(check_selector("bogus(x)").is_err());
        assert!(check_selector("(name(a)").is_err());
        assert!(
            check_selector("image([)").is_err(),
            "arguments are regular expressions"
        );
    }
}
