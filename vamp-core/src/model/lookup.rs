//! Vamp's stable lookup names (spec §4.2.1): the ids of gateways and routes in the data plane
//! (HAProxy frontend names, access-log `ft` fields) and in the API's `lookup_name`.

use sha1::{Digest, Sha1};

/// Lower-case hex of `bytes`, two digits each (no `format!` per byte: lookup names are made
/// for every gateway and route of every render). Fingerprints, tokens and HAProxy ACL names
/// use it too.
///
/// ```
/// assert_eq!(vamp_core::model::lookup::hex(&[0x0f, 0xa0]), "0fa0");
/// ```
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hash(text: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(b"class io.vamp.model.artifact.Gateway@");
    hasher.update(text.as_bytes());
    hasher.update(b"v1");
    let hex = hex(&hasher.finalize());
    // The original printed a BigInteger: no leading zeros.
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_owned()
    }
}

fn padded(segments: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
    while out.len() < 4 {
        out.push("*".into());
    }
    out
}

/// The lookup name of a gateway.
///
/// ```
/// use vamp_core::model::lookup::gateway_lookup_name;
/// assert_eq!(gateway_lookup_name("vamp/sava/port/_"), "93a45182d84bf6fc0c3c23c33a9501c7d74be2bb");
/// ```
pub fn gateway_lookup_name(gateway: &str) -> String {
    hash(gateway)
}

/// The lookup name of a route of a gateway: the gateway name padded to four elements with `*`,
/// then the route's segments padded to four.
pub fn route_lookup_name(gateway: &str, route: &str) -> String {
    let route_segments: Vec<&str> = if route.starts_with('[') {
        vec![route]
    } else {
        route.split('/').filter(|s| !s.is_empty()).collect()
    };
    let mut all = padded(&[gateway]);
    all.extend(padded(&route_segments));
    hash(&all.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_differ_from_gateways_and_each_other() {
        let g = gateway_lookup_name("shop/web");
        let r1 = route_lookup_name("shop/web", "shop/web/a:1/http");
        let r2 = route_lookup_name("shop/web", "shop/web/a:2/http");
        assert!(g != r1 && r1 != r2);
        assert_eq!(
            r1,
            route_lookup_name("shop/web", "shop/web/a:1/http"),
            "stable"
        );
        assert!(r1.chars().all(|c| c.is_ascii_hexdigit()) && !r1.starts_with('0'));
    }
}
