//! Turning a command line into argv — split like a shell would, but with no shell, so
//! nothing in a definition or an environment value is ever interpreted — and the port
//! variables every instance gets (process and container drivers alike).

/// Why a command line cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot split command '{command}': {reason}")]
pub struct SplitError {
    /// The command line.
    pub command: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// Splits a command line into words: blanks separate words, `'…'` keeps everything literally,
/// `"…"` keeps everything but `\"` and `\\`, and a backslash outside quotes escapes the next
/// character. No expansion of any kind happens.
pub fn split(command: &str) -> Result<Vec<String>, SplitError> {
    let error = |reason| SplitError {
        command: command.to_owned(),
        reason,
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(error("a ' quote is not closed")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(error("a \" quote is not closed")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(error("a \" quote is not closed")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(error("the command ends with a backslash")),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err(error("the command is empty"));
    }
    Ok(words)
}

/// Replaces `$NAME` and `${NAME}` in a word by `vars[NAME]` for the given names only (the
/// `PORT…` variables); anything else stays as written.
pub fn substitute(word: &str, vars: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..len], len)
        };
        // Longest name first, so `$PORT0` is not read as `$PORT` + `0`.
        match vars.iter().find(|(k, _)| k == name) {
            Some((_, value)) if consumed > 0 => {
                out.push_str(value);
                rest = &after[consumed..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `PORT`, `PORT0…N`, `PORT_<NAME>` for an instance's ports, longest names first.
pub(crate) fn port_variables(ports: &vamp_core::model::Map<u16>) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for (i, (name, port)) in ports.iter().enumerate() {
        let upper: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        vars.push((format!("PORT_{upper}"), port.to_string()));
        vars.push((format!("PORT{i}"), port.to_string()));
    }
    if let Some(first) = ports.values().next() {
        vars.push(("PORT".into(), first.to_string()));
    }
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell_without_one() {
        let cases: &[(&str, &[&str])] = &[
            ("./app --port 80", &["./app", "--port", "80"]),
            ("  a   b  ", &["a", "b"]),
            ("echo 'a b' \"c d\"", &["echo", "a b", "c d"]),
            (r#"x "a \"q\" \\ \n" y"#, &["x", r#"a "q" \ \n"#, "y"]),
            (r"a\ b c", &["a b", "c"]),
            ("'$(rm -rf /)' ; echo", &["$(rm -rf /)", ";", "echo"]),
            ("''", &[""]),
        ];
        for (input, expected) in cases {
            assert_eq!(split(input).unwrap(), *expected, "{input}");
        }
        for bad in ["", "   ", "'open", "\"open", "trailing\\"] {
            assert!(split(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn substitutes_only_the_port_variables() {
        let vars = vec![
            ("PORT".to_owned(), "31000".to_owned()),
            ("PORT0".to_owned(), "31000".to_owned()),
            ("PORT1".to_owned(), "31001".to_owned()),
            ("PORT_WEB".to_owned(), "31000".to_owned()),
        ];
        assert_eq!(substitute("--port=$PORT", &vars), "--port=31000");
        assert_eq!(substitute("$PORT1:${PORT_WEB}", &vars), "31001:31000");
        assert_eq!(substitute("$HOME/$PORTX/$", &vars), "$HOME/$PORTX/$");
        assert_eq!(substitute("${PORT", &vars), "${PORT");
    }
}
