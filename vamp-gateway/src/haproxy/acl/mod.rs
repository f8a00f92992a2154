//! Conditions as HAProxy ACLs (spec §1.7.2): each operand becomes one or more *criteria*
//! (`acl <name> <criterion>` lines), and the condition becomes a disjunctive normal form over
//! them (`use_backend … if a b or !c d`).
//!
//! Literal ACLs (`<path_beg /api>`) are accepted from a list of known sample fetches and
//! re-quoted word by word, so they can match anything but cannot add a line, a comment, a
//! file read (`-f`) or an unknown keyword to the config.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};
use vamp_core::model::expression::{ConditionOperand, Expr};

use super::text::{Quoted, TextError};

mod fetch;
use fetch::*;
mod dnf;
use dnf::*;

/// The most terms a condition may have once in disjunctive normal form.
pub const MAX_TERMS: usize = 64;

/// Why a condition cannot be rendered as HAProxy ACLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    /// A value or name with characters that cannot go into the config.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A header or cookie name outside the accepted characters.
    #[error(
        "{what} name '{name}' is not accepted: use the letters, digits and - _ . only \
         (e.g. X-Canary, beta_user)"
    )]
    BadName {
        /// "header" or "cookie".
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A literal ACL that is not one known sample fetch with flags and patterns.
    #[error("the HAProxy ACL '{acl}' is not accepted: {reason}")]
    BadLiteral {
        /// The ACL as written.
        acl: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The condition expands to too many alternatives.
    #[error(
        "the condition has more than {MAX_TERMS} alternatives once expanded; simplify it \
         (fewer nested or/and/not)"
    )]
    TooComplex,
}

/// One ACL criterion: a sample fetch, its flags and its patterns, rendered and checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Criterion(String);

impl Criterion {
    /// The ACL name for this criterion: the first 16 hex digits of SHA-1 of the definition
    /// followed by `0000` (spec §1.7.2), so equal criteria share one name.
    pub fn acl_name(&self) -> String {
        let mut hasher = Sha1::new();
        hasher.update(self.0.as_bytes());
        hasher.update(b"0000");
        vamp_core::model::lookup::hex(&hasher.finalize()[..8])
    }

    /// The criterion as it appears after the ACL name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A string fetch matched with `method` (`None` = exact) against one quoted value. `--`
    /// ends the flags, so a value starting with `-` stays a value.
    fn matching(
        fetch: &str,
        method: Option<&str>,
        what: &'static str,
        value: &str,
    ) -> Result<Self, AclError> {
        let value = Quoted::new(what, value)?;
        Ok(Criterion(match method {
            Some(m) => format!("{fetch} -m {m} -- {value}"),
            None => format!("{fetch} -- {value}"),
        }))
    }

    /// Reads a literal ACL (`path_beg /api`, `hdr(x-version) -i v2`, `src 10.0.0.0/8`).
    ///
    /// ```
    /// use vamp_gateway::haproxy::acl::Criterion;
    /// assert_eq!(Criterion::literal("path_beg /api").unwrap().as_str(), "path_beg -- '/api'");
    /// assert!(Criterion::literal("path_beg -f /etc/passwd").is_err());
    /// ```
    ///
    /// # Errors
    /// [`AclError::BadLiteral`] saying which word is wrong.
    pub fn literal(acl: &str) -> Result<Self, AclError> {
        let bad = |reason: String| AclError::BadLiteral {
            acl: acl.to_owned(),
            reason,
        };
        if acl.chars().any(char::is_control) {
            return Err(bad(
                "it contains a control character (newline, tab, …)".into()
            ));
        }
        let words = split_words(acl).map_err(bad)?;
        let Some((first, rest)) = words.split_first() else {
            return Err(bad("it is empty".into()));
        };
        let fetch = Fetch::parse(first).map_err(bad)?;
        let mut out = fetch.text.clone();
        let mut method: Option<String> = fetch.spec.implied.map(str::to_owned);
        let mut i = 0;
        while let Some(word) = rest.get(i) {
            match word.as_str() {
                "-i" | "-n" if fetch.spec.kind == Kind::Str => out.push_str(&format!(" {word}")),
                "-m" => {
                    let m = rest
                        .get(i + 1)
                        .ok_or_else(|| bad("'-m' needs a method".into()))?;
                    if fetch.spec.implied.is_some() {
                        return Err(bad(format!(
                            "'{}' already matches by '{}'; drop '-m {m}'",
                            fetch.spec.name,
                            fetch.spec.implied.unwrap_or_default()
                        )));
                    }
                    let allowed: &[&str] = match fetch.spec.kind {
                        Kind::Str => &[
                            "str", "sub", "beg", "end", "reg", "dir", "dom", "len", "found",
                        ],
                        _ => &["found"],
                    };
                    if !allowed.contains(&m.as_str()) {
                        return Err(bad(format!(
                            "'-m {m}' is not a match method for '{}'; use one of {}",
                            fetch.spec.name,
                            allowed.join(", ")
                        )));
                    }
                    out.push_str(&format!(" -m {m}"));
                    method = Some(m.clone());
                    i += 1;
                }
                "--" => {
                    i += 1;
                    break;
                }
                w if w.starts_with('-') && !matches!(fetch.spec.kind, Kind::Int) => {
                    return Err(bad(format!(
                        "the flag '{w}' is not accepted (only -i, -n, -m <method>); write '-- {w}' \
                         to match it as a value"
                    )));
                }
                _ => break,
            }
            i += 1;
        }
        let patterns = rest.get(i..).unwrap_or_default();
        let method = method.as_deref();
        match (fetch.spec.kind, method) {
            (_, Some("found")) | (Kind::Bool, _) => {
                if !patterns.is_empty() {
                    return Err(bad(
                        "this test takes no value; remove the words after it".into()
                    ));
                }
            }
            (_, _) if patterns.is_empty() => {
                return Err(bad(format!(
                    "'{}' needs a value to compare with",
                    fetch.spec.name
                )));
            }
            (Kind::Int, _) | (Kind::Str, Some("len")) => {
                check_ints(patterns).map_err(bad)?;
                out.push(' ');
                out.push_str(&patterns.join(" "));
            }
            (Kind::Str, m) => {
                out.push_str(" --");
                for p in patterns {
                    if m == Some("reg") {
                        regex_syntax::Parser::new().parse(p).map_err(|e| {
                            bad(format!(
                                "'{p}' is not a regular expression: {}",
                                first_line(&e.to_string())
                            ))
                        })?;
                    }
                    out.push_str(&format!(" {}", Quoted::new("ACL value", p.clone())?));
                }
            }
            (Kind::Ip, _) => {
                for p in patterns {
                    let (addr, prefix) = p
                        .split_once('/')
                        .map_or((p.as_str(), None), |(a, b)| (a, Some(b)));
                    let ip: IpAddr = addr
                        .parse()
                        .map_err(|_| bad(format!("'{p}' is not an IP address or network")))?;
                    if let Some(prefix) = prefix {
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        match prefix.parse::<u8>() {
                            Ok(n) if n <= max => {}
                            _ => {
                                return Err(bad(format!(
                                    "'{p}' has a bad prefix length (0–{max})"
                                )));
                            }
                        }
                    }
                    out.push(' ');
                    out.push_str(p);
                }
            }
        }
        Ok(Criterion(out))
    }
}

fn first_line(text: &str) -> &str {
    text.lines().last().unwrap_or(text).trim()
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Integer patterns: `N`, `N:M`, or an operator (`eq ne gt ge lt le`) followed by `N`.
fn check_ints(patterns: &[String]) -> Result<(), String> {
    let int = |w: &str| w.parse::<i64>().is_ok();
    let mut words = patterns.iter();
    while let Some(w) = words.next() {
        if matches!(w.as_str(), "eq" | "ne" | "gt" | "ge" | "lt" | "le") {
            match words.next() {
                Some(n) if int(n) => {}
                _ => return Err(format!("'{w}' must be followed by a whole number")),
            }
        } else {
            let ok = match w.split_once(':') {
                Some((a, b)) => (a.is_empty() || int(a)) && (b.is_empty() || int(b)),
                None => int(w),
            };
            if !ok {
                return Err(format!(
                    "'{w}' is not a whole number, a range N:M or 'eq N'"
                ));
            }
        }
    }
    Ok(())
}

/// Splits on blanks; `'…'` and `"…"` group words (no escapes inside).
fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("a {q} quote is not closed"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A condition compiled for HAProxy: its criteria and a disjunctive normal form over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledCondition {
    /// Alternatives (OR) of conjunctions (AND) of `(criterion, positive)`.
    pub terms: Vec<Vec<(Criterion, bool)>>,
}

impl CompiledCondition {
    /// Always true: some alternative has no test.
    pub fn is_always(&self) -> bool {
        self.terms.iter().any(Vec::is_empty)
    }

    /// Never true: no alternative.
    pub fn is_never(&self) -> bool {
        self.terms.is_empty()
    }

    /// Every criterion used, once each, in a stable order.
    pub fn criteria(&self) -> BTreeSet<&Criterion> {
        self.terms.iter().flatten().map(|(c, _)| c).collect()
    }

    /// The condition after `if`: `a b or !c d` (space = and).
    pub fn haproxy_condition(&self) -> String {
        self.terms
            .iter()
            .map(|term| {
                term.iter()
                    .map(|(c, positive)| {
                        format!("{}{}", if *positive { "" } else { "!" }, c.acl_name())
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(" or ")
    }
}

/// Compiles a parsed condition (spec §1.7.2): operands → criteria (user-agent aliases
/// expanded), then disjunctive normal form with contradictions, duplicates and absorbed
/// alternatives removed.
///
/// ```
/// use vamp_core::model::expression::parse_condition;
/// use vamp_gateway::haproxy::acl::compile;
///
/// let c = compile(&parse_condition("has cookie beta and not host = old.example.com")).unwrap();
/// let criteria: Vec<&str> = c.criteria().into_iter().map(|c| c.as_str()).collect();
/// assert!(criteria.contains(&"req.cook(beta) -m found"));
/// assert!(criteria.contains(&"req.hdr(host) -- 'old.example.com'"));
/// assert_eq!(c.terms.len(), 1);
/// ```
///
/// # Errors
/// [`AclError`] naming the operand that cannot be rendered.
pub fn compile(expr: &Expr<ConditionOperand>) -> Result<CompiledCondition, AclError> {
    let criteria = to_criteria(expr)?;
    Ok(CompiledCondition {
        terms: simplify(dnf(&criteria, false)?),
    })
}

/// Checks a sample used in a log-format string (`%[path]`): one known fetch, no converters.
pub(crate) fn check_sample(word: &str) -> Result<(), String> {
    Fetch::parse(word).map(|_| ())
}

/// `req.hdr(host),field(1,:) -i -- '<host>'`: the Host header without its port, any case.
pub(crate) fn host_criterion(host: &Quoted) -> Criterion {
    Criterion(format!("req.hdr(host),field(1,:) -i -- {host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vamp_core::model::expression::parse_condition;

    fn compiled(text: &str) -> CompiledCondition {
        compile(&parse_condition(text)).unwrap()
    }

    #[test]
    fn spec_translations() {
        let one = |text: &str| {
            let c = compiled(text);
            assert_eq!(c.terms.len(), 1, "{text}");
            c.terms[0]
                .iter()
                .map(|(c, p)| format!("{}{}", if *p { "" } else { "!" }, c.as_str()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            one("host == www.example.com"),
            ["req.hdr(host) -- 'www.example.com'"]
        );
        assert_eq!(one("host != a"), ["!req.hdr(host) -- 'a'"]);
        assert_eq!(one("has cookie beta"), ["req.cook(beta) -m found"]);
        assert_eq!(one("misses cookie beta"), ["req.cook_cnt(beta) eq 0"]);
        assert_eq!(one("has header X-A"), ["req.hdr_cnt(X-A) gt 0"]);
        assert_eq!(one("misses header X-A"), ["req.hdr_cnt(X-A) eq 0"]);
        assert_eq!(
            one("cookie group has admin"),
            ["req.cook(group) -m sub -- 'admin'"]
        );
        assert_eq!(one("header X-V misses 2"), ["!req.fhdr(X-V) -m sub -- '2'"]);
        let mut safari = one("user-agent = Safari");
        safari.sort();
        assert_eq!(
            safari,
            [
                "req.fhdr(User-Agent) -m sub -- 'Safari'",
                "req.fhdr(User-Agent) -m sub -- 'Version'"
            ]
        );
        // Not Safari = not Safari or not Version: two alternatives.
        assert_eq!(compiled("user-agent != Safari").terms.len(), 2);
    }

    #[test]
    fn spec_example_has_two_alternatives_sharing_the_cookie() {
        let c = compiled("(User-Agent = Chrome OR User-Agent = Firefox) AND has cookie vamp");
        assert_eq!(c.terms.len(), 2);
        assert_eq!(c.criteria().len(), 3);
        let cookie = Criterion("req.cook(vamp) -m found".into()).acl_name();
        assert!(
            c.haproxy_condition().matches(&cookie).count() == 2,
            "{}",
            c.haproxy_condition()
        );
    }

    #[test]
    fn contradictions_and_tautologies_are_constant() {
        assert!(compiled("has cookie a and not has cookie a").is_never());
        assert!(compiled("has cookie a or not has cookie a").is_always());
        assert_eq!(
            compiled("has cookie a or has cookie a and has cookie b")
                .terms
                .len(),
            1
        );
    }

    #[test]
    fn literals_are_checked_word_by_word() {
        let ok = |t: &str| Criterion::literal(t).unwrap().0;
        assert_eq!(ok("hdr(x-version) -i v3"), "hdr(x-version) -i -- 'v3'");
        assert_eq!(ok("path_beg '/a b'"), "path_beg -- '/a b'");
        assert_eq!(ok("req.hdr_cnt(x) gt 1"), "req.hdr_cnt(x) gt 1");
        assert_eq!(ok("src 10.0.0.0/8 ::1"), "src 10.0.0.0/8 ::1");
        assert_eq!(ok("path -m reg ^/v[0-9]+/"), "path -m reg -- '^/v[0-9]+/'");
        for bad in [
            "path_beg -f /etc/passwd",
            "lua.evil x",
            "hdr(a,b,c) x",
            "hdr(x\ny) z",
            "path",
            "path -m reg (",
            "src 10.0.0.0/33",
            "req.hdr_cnt(x) gt many",
            "path_beg -m sub x",
            "always_true x",
            "path_beg 'x",
        ] {
            assert!(Criterion::literal(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn too_complex_conditions_are_refused() {
        // (a1 or b1) and (a2 or b2) and … : 2^7 alternatives.
        let text = (0..7)
            .map(|i| format!("(has cookie a{i} or has cookie b{i})"))
            .collect::<Vec<_>>()
            .join(" and ");
        assert_eq!(compile(&parse_condition(&text)), Err(AclError::TooComplex));
    }

    /// Every fetch literal ACLs accept is one HAProxy 2.6 knows, with the arguments and
    /// patterns we allow (checked by the real `haproxy -c` when the tests have it).
    #[test]
    fn every_known_fetch_passes_haproxy() {
        let Some(binary) = vamp_core::testkit::services::service("haproxy") else {
            return;
        };
        let mut acls = String::new();
        for (i, spec) in FETCHES.iter().enumerate() {
            let fetch = match spec.args {
                Args::None | Args::OptName | Args::OptNameOcc => spec.name.to_owned(),
                Args::Name | Args::NameOcc => format!("{}(x-a)", spec.name),
            };
            let pattern = match spec.kind {
                Kind::Str => "v",
                Kind::Int => "gt 1",
                Kind::Ip => "10.0.0.0/8",
                Kind::Bool => "",
            };
            let c = Criterion::literal(&format!("{fetch} {pattern}")).unwrap();
            acls.push_str(&format!(
                "    acl a{i} {c}\n    http-request deny if a{i}\n"
            ));
            if matches!(spec.args, Args::OptName | Args::OptNameOcc | Args::NameOcc) {
                let arg = if spec.args == Args::OptName {
                    "x-a"
                } else {
                    "x-a,-1"
                };
                let c = Criterion::literal(&format!("{}({arg}) {pattern}", spec.name)).unwrap();
                acls.push_str(&format!(
                    "    acl b{i} {c}\n    http-request deny if b{i}\n"
                ));
            }
        }
        let config = format!(
            "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n\
             frontend f\n    bind 127.0.0.1:1\n{acls}    default_backend b\nbackend b\n    server s 127.0.0.1:2\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.cfg");
        std::fs::write(&file, &config).unwrap();
        let out = std::process::Command::new(binary)
            .args(["-c", "-dW", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}\n{config}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn expr() -> impl Strategy<Value = Expr<(Criterion, bool)>> {
        let leaf = (0u8..4, any::<bool>())
            .prop_map(|(i, p)| Expr::Operand((Criterion(format!("c{i}")), p)));
        leaf.prop_recursive(4, 24, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::Or),
                prop::collection::vec(inner.clone(), 0..3).prop_map(Expr::And),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    proptest! {
        /// Any literal is accepted or refused with a reason — never a panic — and what is
        /// accepted stays on one line.
        #[test]
        fn literals_never_panic_and_stay_on_one_line(text in ".{0,60}") {
            if let Ok(c) = Criterion::literal(&text) {
                prop_assert!(!c.as_str().chars().any(char::is_control));
            }
        }

        /// The simplified normal form is the same function as the expression, for every assignment.
        #[test]
        fn normal_form_is_equivalent(e in expr()) {
            let Ok(terms) = dnf(&e, false) else { return Ok(()) };
            let sets: Vec<BTreeSet<(Criterion, bool)>> = simplify(terms).iter().map(|t| t.iter().cloned().collect()).collect();
            for bits in 0u8..16 {
                let value = |c: &Criterion| {
                    let i: u8 = c.0[1..].parse().unwrap();
                    bits & (1 << i) != 0
                };
                let expected = e.eval(&mut |(c, p)| value(c) == *p);
                let got = sets.iter().any(|t| t.iter().all(|(c, p)| value(c) == *p));
                prop_assert_eq!(expected, got);
            }
        }
    }
}
