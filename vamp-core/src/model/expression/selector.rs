//! Route selectors (spec §1.6.1): checked here, matched by the engine.

use super::*;

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

pub(super) fn selector_operand(s: &mut Scanner<'_>) -> Option<()> {
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
pub(super) fn paren_arg(s: &mut Scanner<'_>) -> Option<String> {
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
