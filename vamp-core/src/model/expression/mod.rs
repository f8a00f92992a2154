//! Boolean expressions of conditions (spec §1.7.1) and route selectors (spec §1.7.3).
//!
//! ```text
//! expr   := term (("or" | "||" | "|") term)*        -- keywords are case-insensitive
//! term   := factor (("and" | "&&" | "&") factor)*   -- AND binds tighter than OR
//! factor := ("!" | "not ") (operand | "(" expr ")") | operand | "(" expr ")"
//! ```

use std::fmt;

mod condition;
pub use condition::{ConditionOperand, parse_condition};
mod selector;
pub use selector::check_selector;

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
