//! Route conditions evaluated in process, for the embedded router.
//!
//! The semantics follow what Vamp's HAProxy translation does (spec §1.7.2), so a condition
//! routes the same requests through either router:
//!
//! | condition | true when |
//! |---|---|
//! | `host == X` | a `Host` value equals `X` exactly |
//! | `user-agent == X` | a `User-Agent` value contains `X`; the aliases `Chrome`, `Firefox`, `Edge` match themselves, `Safari` needs `Safari` and `Version`, `IE` means `MSIE` (alias names in any case) |
//! | `has cookie N` / `misses cookie N` | a cookie `N` is sent / none is |
//! | `has header N` / `misses header N` | a header `N` (any case) is sent / none is |
//! | `cookie N has V` | a cookie `N` contains `V` |
//! | `header N has V` | a header `N` value contains `V` |
//!
//! `!=` and `misses` negate. A literal HAProxy ACL (`<…>`, or text outside the grammar) means
//! nothing outside HAProxy: [`Condition::parse`] refuses it with [`UnsupportedCondition`].
//!
//! ```
//! use vamp_gateway::condition::{Condition, Headers};
//!
//! let beta = Condition::parse("user-agent == Firefox and has cookie beta").unwrap();
//! let request = Headers::from([
//!     ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
//!     ("Cookie", "session=1; beta=yes"),
//! ]);
//! assert!(beta.matches(&request));
//! assert!(!beta.matches(&Headers::from([("Cookie", "beta=yes")])));
//! ```

use vamp_core::model::expression::{ConditionOperand, Expr, parse_condition};

/// What a condition needs to know of a request: its header values.
pub trait Request {
    /// Every value of header `name` (compared without regard to case), in the order sent.
    fn header_values(&self, name: &str) -> impl Iterator<Item = &str>;
}

/// A request given as a list of header lines; for tests and callers without an HTTP type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl<const N: usize> From<[(&str, &str); N]> for Headers {
    fn from(lines: [(&str, &str); N]) -> Self {
        Headers(
            lines
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }
}

impl Request for Headers {
    fn header_values(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A condition cannot be evaluated outside HAProxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the condition uses the HAProxy ACL '{acl}', which only the HAProxy routers understand; \
     write it in Vamp's condition grammar (host, user-agent, cookie, header), or route this \
     gateway through HAProxy"
)]
pub struct UnsupportedCondition {
    /// The literal ACL.
    pub acl: String,
}

/// One test on a request, aliases expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    Host(String),
    /// Every needle is in one `User-Agent` value.
    UserAgent(Vec<String>),
    Cookie(String),
    Header(String),
    CookieContains(String, String),
    HeaderContains(String, String),
}

/// A parsed condition, ready to test requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    expr: Expr<(Test, bool)>,
}

impl Condition {
    /// Parses condition text (spec §1.7.1).
    ///
    /// # Errors
    /// [`UnsupportedCondition`] for a literal HAProxy ACL.
    pub fn parse(text: &str) -> Result<Self, UnsupportedCondition> {
        Self::from_expr(&parse_condition(text))
    }

    /// A condition from an already parsed expression.
    ///
    /// # Errors
    /// [`UnsupportedCondition`] for a literal HAProxy ACL.
    pub fn from_expr(expr: &Expr<ConditionOperand>) -> Result<Self, UnsupportedCondition> {
        Ok(Condition {
            expr: convert(expr)?,
        })
    }

    /// Whether `request` meets the condition.
    pub fn matches(&self, request: &impl Request) -> bool {
        self.expr
            .eval(&mut |(test, positive)| test.holds(request) == *positive)
    }
}

fn convert(e: &Expr<ConditionOperand>) -> Result<Expr<(Test, bool)>, UnsupportedCondition> {
    let all =
        |items: &[Expr<ConditionOperand>]| items.iter().map(convert).collect::<Result<Vec<_>, _>>();
    Ok(match e {
        Expr::Or(items) => Expr::Or(all(items)?),
        Expr::And(items) => Expr::And(all(items)?),
        Expr::Not(inner) => Expr::Not(Box::new(convert(inner)?)),
        Expr::Operand(o) => Expr::Operand(leaf(o)?),
    })
}

fn leaf(o: &ConditionOperand) -> Result<(Test, bool), UnsupportedCondition> {
    use ConditionOperand as O;
    Ok(match o {
        O::Host { value, positive } => (Test::Host(value.clone()), *positive),
        O::UserAgent { value, positive } => (Test::UserAgent(user_agent(value)), *positive),
        O::Cookie { name, positive } => (Test::Cookie(name.clone()), *positive),
        O::Header { name, positive } => (Test::Header(name.clone()), *positive),
        O::CookieContains {
            name,
            value,
            positive,
        } => (Test::CookieContains(name.clone(), value.clone()), *positive),
        O::HeaderContains {
            name,
            value,
            positive,
        } => (Test::HeaderContains(name.clone(), value.clone()), *positive),
        O::Raw(acl) => return Err(UnsupportedCondition { acl: acl.clone() }),
    })
}

/// The substrings a `user-agent == X` test looks for, all of which must be there (spec §1.7.2
/// aliases: Chrome, Firefox, Safari = Safari + Version, Edge, IE = MSIE; any other text is
/// looked for as it is). Shared by the in-process evaluator and the HAProxy renderer.
pub(crate) fn user_agent_needles(value: &str) -> Vec<&str> {
    match value.to_ascii_lowercase().as_str() {
        "chrome" => vec!["Chrome"],
        "firefox" => vec!["Firefox"],
        "safari" => vec!["Safari", "Version"],
        "edge" => vec!["Edge"],
        "ie" => vec!["MSIE"],
        _ => vec![value],
    }
}

fn user_agent(value: &str) -> Vec<String> {
    user_agent_needles(value)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The values of cookie `name` in the request's `Cookie` headers (names are case-sensitive).
pub(crate) fn cookies<'a>(
    request: &'a impl Request,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    request
        .header_values("cookie")
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim())
        })
}

impl Test {
    fn holds(&self, request: &impl Request) -> bool {
        match self {
            Test::Host(host) => request
                .header_values("host")
                .flat_map(|v| v.split(','))
                .any(|v| v.trim() == host),
            Test::UserAgent(needles) => request
                .header_values("user-agent")
                .any(|v| needles.iter().all(|n| v.contains(n.as_str()))),
            Test::Cookie(name) => cookies(request, name).next().is_some(),
            Test::Header(name) => request.header_values(name).next().is_some(),
            Test::CookieContains(name, value) => {
                cookies(request, name).any(|v| v.contains(value.as_str()))
            }
            Test::HeaderContains(name, value) => request
                .header_values(name)
                .any(|v| v.contains(value.as_str())),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const SAFARI: &str = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";
    const CHROME: &str =
        "Mozilla/5.0 (X11) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    const IE: &str = "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1)";

    fn holds(condition: &str, request: &Headers) -> bool {
        Condition::parse(condition)
            .unwrap_or_else(|e| panic!("{condition}: {e}"))
            .matches(request)
    }

    #[test]
    fn each_operand_as_specified() {
        let r = Headers::from([
            ("Host", "shop.example.com"),
            ("User-Agent", FIREFOX),
            ("Cookie", "session=abc123; group=beta-testers"),
            ("X-Canary", "yes please"),
        ]);
        let table = [
            ("host == shop.example.com", true),
            ("host == example.com", false),
            ("host != example.com", true),
            ("user-agent == Firefox", true),
            ("user-agent == firefox", true),
            ("user-agent == Gecko/2010", true),
            ("user-agent == Chrome", false),
            ("user-agent != Chrome", true),
            ("has cookie session", true),
            ("has cookie Session", false),
            ("misses cookie session", false),
            ("misses cookie other", true),
            ("has header x-canary", true),
            ("has header X-Other", false),
            ("misses header X-Other", true),
            ("cookie group has beta", true),
            ("cookie group has alpha", false),
            ("cookie group misses alpha", true),
            ("header X-Canary has please", true),
            ("header X-Canary misses please", false),
        ];
        for (condition, want) in table {
            assert_eq!(holds(condition, &r), want, "{condition}");
        }
    }

    #[test]
    fn user_agent_aliases_follow_the_haproxy_translation() {
        let ua = |v: &str| Headers::from([("User-Agent", v)]);
        assert!(holds("user-agent == Safari", &ua(SAFARI)));
        // Chrome's agent says Safari too, but not Version: not Safari.
        assert!(!holds("user-agent == Safari", &ua(CHROME)));
        assert!(holds("user-agent == chrome", &ua(CHROME)));
        assert!(holds("user-agent == IE", &ua(IE)));
        assert!(!holds("user-agent == IE", &ua(FIREFOX)));
        assert!(!holds("user-agent == Firefox", &Headers::default()));
    }

    #[test]
    fn the_spec_example() {
        let c = "(User-Agent = Chrome OR User-Agent = Firefox) AND has cookie vamp";
        let with = |ua: &str, cookie: &str| Headers::from([("User-Agent", ua), ("Cookie", cookie)]);
        assert!(holds(c, &with(CHROME, "vamp=1")));
        assert!(holds(c, &with(FIREFOX, "a=1; vamp=2")));
        assert!(!holds(c, &with(IE, "vamp=1")));
        assert!(!holds(c, &with(FIREFOX, "vampire=1")));
    }

    #[test]
    fn cookies_come_from_every_cookie_line() {
        let r = Headers::from([("cookie", "a=1"), ("Cookie", " b = two ")]);
        assert!(holds("has cookie a and cookie b has two", &r));
        assert!(holds("has header cookie", &r));
    }

    #[test]
    fn haproxy_acls_are_refused_with_the_reason() {
        let e = Condition::parse("<hdr_sub(user-agent) Android>").unwrap_err();
        assert_eq!(e.acl, "hdr_sub(user-agent) Android");
        assert!(e.to_string().contains("HAProxy"), "{e}");
        assert!(Condition::parse("has cookie a and <path_beg /api>").is_err());
    }

    const OPERANDS: &[&str] = &[
        "host == a.test",
        "user-agent == Firefox",
        "has cookie beta",
        "misses cookie beta",
        "cookie beta has yes",
        "has header X-Canary",
        "header X-Canary has 1",
    ];
    const LINES: &[(&str, &str)] = &[
        ("Host", "a.test"),
        ("Host", "b.test"),
        ("User-Agent", FIREFOX),
        ("User-Agent", CHROME),
        ("Cookie", "beta=yes"),
        ("Cookie", "beta=no; other=1"),
        ("X-Canary", "1"),
        ("x-canary", "0"),
    ];

    fn condition() -> impl Strategy<Value = String> {
        let leaf = prop::sample::select(OPERANDS).prop_map(str::to_owned);
        leaf.prop_recursive(3, 12, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    fn request() -> impl Strategy<Value = Headers> {
        prop::sample::subsequence(LINES, 0..=LINES.len()).prop_map(|lines| {
            Headers(
                lines
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            )
        })
    }

    proptest! {
        /// `and`, `or` and `not` compose as boolean logic over whole conditions.
        #[test]
        fn operators_compose(a in condition(), b in condition(), r in request()) {
            let (x, y) = (holds(&a, &r), holds(&b, &r));
            prop_assert_eq!(holds(&format!("({a}) and ({b})"), &r), x && y);
            prop_assert_eq!(holds(&format!("({a}) or ({b})"), &r), x || y);
            prop_assert_eq!(holds(&format!("not ({a})"), &r), !x);
            prop_assert_eq!(holds(&format!("!({a})"), &r), !x);
        }
    }
}
