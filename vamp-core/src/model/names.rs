//! Name rules (spec §1.1).

/// The longest name accepted anywhere (servers may set a lower limit): a DNS name's length.
pub const MAX_NAME_LENGTH: usize = 253;

/// Characters no name may hold: control characters (NUL, newlines, escapes) and the Unicode
/// bidirectional controls, which make a name display as another one ("Trojan Source").
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Generic names (artifacts, clusters, references): no whitespace, `/`, `[` or `]`, no
/// control or bidirectional-control characters, at most [`MAX_NAME_LENGTH`] characters.
///
/// ```
/// use vamp_core::model::names::is_valid_name;
/// assert!(is_valid_name("sava:1.0.0"));
/// assert!(!is_valid_name("a/b"));
/// assert!(!is_valid_name("evil\u{202E}gpj.exe"));
/// assert!(!is_valid_name("nul\0"));
/// ```
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_LENGTH
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '[' | ']') || is_forbidden_char(c))
}

/// Strict names (ports, constants): the generic rule, and no `.` either.
pub fn is_valid_strict_name(name: &str) -> bool {
    is_valid_name(name) && !name.contains('.')
}

/// Gateway names: no whitespace, `[` or `]`, and 1–4 non-empty `/`-separated segments.
pub fn is_valid_gateway_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 4 * MAX_NAME_LENGTH
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '[' | ']') || is_forbidden_char(c))
        && segments(name).is_some_and(|n| (1..=4).contains(&n))
}

/// Event types: word characters and `-` only.
pub fn is_valid_event_type(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// The number of `/`-separated segments, or `None` if any is empty.
pub fn segments(path: &str) -> Option<usize> {
    let parts: Vec<&str> = path.split('/').collect();
    (!parts.iter().any(|p| p.is_empty())).then_some(parts.len())
}

/// If `path` is an external route target written `[host:port]`, the `host:port` inside.
pub fn external_target(path: &str) -> Option<&str> {
    path.strip_prefix('[')?.strip_suffix(']')
}

/// `host:port` split at its last `:`, the port read as a number (external route targets,
/// mirror targets).
///
/// ```
/// use vamp_core::model::names::host_port;
/// assert_eq!(host_port("10.0.0.9:8080"), Some(("10.0.0.9", 8080)));
/// assert_eq!(host_port("nowhere"), None);
/// ```
pub fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// Route paths: 1–4 segments of generic names, or an external target `[host:port]`.
pub fn is_valid_route_path(path: &str) -> bool {
    if let Some(inner) = external_target(path) {
        // Vamp accepts any non-empty text here; `host:port` is checked when it is resolved.
        return !inner.trim().is_empty()
            && inner.chars().count() <= MAX_NAME_LENGTH
            && !inner.contains(['[', ']'])
            && !inner
                .chars()
                .any(|c| c.is_whitespace() || is_forbidden_char(c));
    }
    segments(path).is_some_and(|n| (1..=4).contains(&n)) && path.split('/').all(is_valid_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(is_valid_name("a.b:c"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a[0]"));
        assert!(is_valid_strict_name("web"));
        assert!(!is_valid_strict_name("w.b"));
        assert!(is_valid_gateway_name("d/c/s/p"));
        assert!(!is_valid_gateway_name("a/b/c/d/e"));
        assert!(!is_valid_gateway_name("a//b"));
        assert!(is_valid_route_path("[10.0.0.1:8080]"));
        assert!(!is_valid_route_path("[]"));
        assert!(is_valid_event_type("my-type_1"));
        assert!(!is_valid_event_type("a.b"));
    }
}
