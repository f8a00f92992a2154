//! The two kinds of text that reach a rendered HAProxy file: identifiers (proxy, server, ACL
//! and cookie names) and quoted values. Both are checked when built, so rendering cannot fail
//! and no user string can end a line, start a comment or leave its quotes.

use std::fmt;

/// Why a piece of text cannot go into an HAProxy config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// An identifier with a character HAProxy does not allow in names.
    #[error(
        "'{text}' is not a valid HAProxy name: use 1–{max} of the characters A–Z a–z 0–9 _ . : -",
        max = Ident::MAX_LEN
    )]
    BadIdent {
        /// The text.
        text: String,
    },
    /// A value with a control character (newline, tab, NUL, …), which would end the line.
    #[error("{what} '{}' contains a control character (newline, tab, …); remove it", .text.escape_debug())]
    ControlCharacter {
        /// What the value is (e.g. "header value").
        what: &'static str,
        /// The text.
        text: String,
    },
}

/// A name HAProxy accepts for a proxy, server, ACL or cookie: `[A-Za-z0-9_.:-]{1,64}`.
///
/// Shared text (`Arc<str>`): a render names each proxy several times (frontend, backend,
/// servers, cookies), and clones are then a count, not a copy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(std::sync::Arc<str>);

impl Ident {
    /// The longest name accepted (HAProxy has no fixed limit; ours keeps socket paths short).
    pub const MAX_LEN: usize = 64;

    /// Checks `text` and wraps it.
    ///
    /// ```
    /// use vamp_gateway::haproxy::text::Ident;
    /// assert!(Ident::new("o_93a45182d84b").is_ok());
    /// assert!(Ident::new("web\n    server evil 1.2.3.4:80").is_err());
    /// ```
    ///
    /// # Errors
    /// [`TextError::BadIdent`] for an empty, too long or otherwise invalid name.
    pub fn new(text: impl AsRef<str>) -> Result<Self, TextError> {
        let text = text.as_ref();
        if Self::is_valid(text) {
            Ok(Ident(text.into()))
        } else {
            Err(TextError::BadIdent {
                text: text.to_owned(),
            })
        }
    }

    /// `prefix` and `text` as one name (`o_<lookup name>`), made with one allocation.
    ///
    /// ```
    /// use vamp_gateway::haproxy::text::Ident;
    /// assert_eq!(Ident::prefixed("o_", "93a4").unwrap().as_str(), "o_93a4");
    /// assert!(Ident::prefixed("o_", "a b").is_err());
    /// ```
    ///
    /// # Errors
    /// As [`new`](Self::new), for the joined name.
    pub fn prefixed(prefix: &str, text: &str) -> Result<Self, TextError> {
        joined(&[prefix, text], |name| Self::new(name))
    }

    /// Whether [`new`](Self::new) takes `text` as it is.
    #[must_use]
    pub fn is_valid(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| NAME_BYTES[usize::from(b)])
    }

    /// A valid name made from any text: invalid characters become `_`, an empty result
    /// becomes `_`, and overlong text is cut (so two different inputs may give one name;
    /// callers that need uniqueness check for it).
    pub fn sanitized(text: &str) -> Self {
        if Self::is_valid(text) {
            return Ident(text.into());
        }
        let mut out: String = text
            .chars()
            .map(|c| {
                if c.is_ascii() && NAME_BYTES[c as usize] {
                    c
                } else {
                    '_'
                }
            })
            .take(Self::MAX_LEN)
            .collect();
        if out.is_empty() {
            out.push('_');
        }
        Ident(out.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `f` of `parts` joined into one text, on the stack when they fit in 128 bytes: whatever `f`
/// keeps of it (shared text, a name, a path) is then the one allocation.
pub(crate) fn joined<R>(parts: &[&str], f: impl FnOnce(&str) -> R) -> R {
    const STACK: usize = 128;
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > STACK {
        return f(&parts.concat());
    }
    let mut buf = [0u8; STACK];
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part.as_bytes());
        at += part.len();
    }
    // Whole `str`s joined are UTF-8; the fallback only keeps this free of a panic path.
    match std::str::from_utf8(&buf[..len]) {
        Ok(text) => f(text),
        Err(_) => f(&parts.concat()),
    }
}

/// The bytes of a name, as a table: lookup names are hex, and a chain of comparisons per
/// byte mispredicted on every switch between digit and letter (an eighth of a 10 000-gateway
/// render, issue 21).
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-');
        b += 1;
    }
    table
};

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value rendered inside single quotes: HAProxy takes everything between them literally
/// (no `${VAR}` expansion, no `#` comments, no backslash escapes), and a quote inside the
/// value is written `'\''`, as in a POSIX shell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quoted(pub(super) String);

impl Quoted {
    /// Checks that `text` has no control character and wraps it.
    ///
    /// ```
    /// use vamp_gateway::haproxy::text::Quoted;
    /// assert_eq!(Quoted::new("value", "it's").unwrap().to_string(), r"'it'\''s'");
    /// assert!(Quoted::new("value", "a\nb").is_err());
    /// ```
    ///
    /// # Errors
    /// [`TextError::ControlCharacter`], naming `what`.
    pub fn new(what: &'static str, text: impl Into<String>) -> Result<Self, TextError> {
        let text = text.into();
        if text.chars().any(char::is_control) {
            return Err(TextError::ControlCharacter { what, text });
        }
        Ok(Quoted(text))
    }

    /// The value, unquoted.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Quoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("'")?;
        write_quoted_inner(&self.0, f)?;
        f.write_str("'")
    }
}

/// The inside of a quoted value: each `'` written `'\''`.
pub(crate) fn write_quoted_inner(text: &str, f: &mut impl fmt::Write) -> fmt::Result {
    for (i, part) in text.split('\'').enumerate() {
        if i > 0 {
            f.write_str(r"'\''")?;
        }
        f.write_str(part)?;
    }
    Ok(())
}

/// Writes text for a `#` comment as it goes: control characters become spaces, so a
/// comment always ends at its own line.
pub(crate) fn write_comment(text: &str, w: &mut impl fmt::Write) -> fmt::Result {
    // No byte that starts a control character (C0, DEL, or C1 as 0xC2 0x80–0x9F): as it is.
    // Every byte looked at (no early exit), so the test runs on whole vectors of bytes.
    let control = text.bytes().fold(false, |seen, b| {
        seen | (b < 0x20) | (b == 0x7f) | (b == 0xc2)
    });
    if !control {
        return w.write_str(text);
    }
    // Each control character between two parts becomes one space.
    let mut parts = text.split(char::is_control);
    if let Some(first) = parts.next() {
        w.write_str(first)?;
    }
    for part in parts {
        w.write_str(" ")?;
        w.write_str(part)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sanitized_names_are_valid(text in ".{0,80}") {
            let name = Ident::sanitized(&text);
            prop_assert!(Ident::new(name.as_str()).is_ok());
        }

        #[test]
        fn a_prefixed_name_is_the_name_of_the_joined_text(
            prefix in "[a-z_]{1,4}|.{0,3}",
            text in "[0-9a-f]{0,70}|.{0,12}",
        ) {
            let joined = format!("{prefix}{text}");
            let direct = Ident::new(&joined).map(|n| n.as_str().to_owned());
            let prefixed = Ident::prefixed(&prefix, &text).map(|n| n.as_str().to_owned());
            prop_assert_eq!(prefixed.is_ok(), direct.is_ok(), "{:?}", joined);
            prop_assert_eq!(prefixed.ok(), direct.ok());
        }

        #[test]
        fn only_text_with_a_control_character_is_changed_in_a_comment(text in "\\PC{0,30}|.{0,30}") {
            let mut out = String::new();
            write_comment(&text, &mut out).unwrap();
            prop_assert!(!out.chars().any(char::is_control));
            if !text.chars().any(char::is_control) {
                prop_assert_eq!(out, text);
            }
        }

        #[test]
        fn quoted_values_stay_on_one_line_and_round_trip(text in "[^\\p{Cc}]{0,40}") {
            let rendered = Quoted::new("value", text.clone()).unwrap().to_string();
            prop_assert!(!rendered.contains('\n'));
            // Undo the shell-style quoting: the value comes back exactly.
            let inner = &rendered[1..rendered.len() - 1];
            prop_assert_eq!(inner.replace(r"'\''", "'"), text);
        }
    }

    #[test]
    fn comments_cannot_end_their_line() {
        let comment = |text: &str| {
            let mut out = String::new();
            write_comment(text, &mut out).unwrap();
            out
        };
        assert_eq!(comment("a\nbackend x"), "a backend x");
        assert_eq!(comment("\r\n"), "  ", "one space each");
    }
}
