//! Keys as slash-separated paths for stores whose keys are paths (ZooKeeper znodes, Consul KV
//! keys), injective and readable: `/vamp/default/gateways` is `vamp/default/gateways`.
//!
//! A key is split at `/`; each segment is percent-encoded as by
//! [`encode_segment`](vamp_core::traits::kv::encode_segment), except that an empty segment is
//! `%` and `.`/`..` are `%2E`/`%2E%2E` (paths must not hold them). A key without a leading `/`
//! lives under the segment `%%`. No encoded path contains `%%` elsewhere, `%log` or `%seq`
//! segments, so stores keep their own nodes next to the keys under such names.

use vamp_core::traits::kv::{decode_segment, encode_segment};

/// The segment under which keys without a leading `/` live.
pub(crate) const RELATIVE: &str = "%%";

/// One key segment as a path segment. `reserved` names a segment that must be encoded
/// although it is plain (ZooKeeper's `zookeeper` at the top of `/`).
pub(crate) fn encode(segment: &str, reserved: Option<&str>) -> String {
    match segment {
        "" => "%".to_owned(),
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        s if Some(s) == reserved => s
            .bytes()
            .next()
            .map(|b| format!("%{b:02X}{}", &s[1..]))
            .unwrap_or_default(),
        s => encode_segment(s),
    }
}

/// A path segment back to a key segment; `None` for a store's own names and foreign ones.
pub(crate) fn decode(name: &str) -> Option<String> {
    if name == "%" {
        Some(String::new())
    } else {
        decode_segment(name)
    }
}

/// The path of `key`, without a leading `/`. `reserved` applies to the first segment of an
/// absolute key.
pub(crate) fn path(key: &str, reserved: Option<&str>) -> String {
    let (absolute, rest) = match key.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let mut out = String::with_capacity(key.len() + 3);
    if !absolute {
        out.push_str(RELATIVE);
    }
    for (i, segment) in rest.split('/').enumerate() {
        if !out.is_empty() {
            out.push('/');
        }
        out.push_str(&encode(segment, reserved.filter(|_| absolute && i == 0)));
    }
    out
}

/// The key of a path [`path`] made; `None` for paths it cannot have made.
pub(crate) fn key(path: &str) -> Option<String> {
    let mut segments = path.split('/');
    let mut out = String::with_capacity(path.len());
    let first = segments.next()?;
    if first == RELATIVE {
        let mut rest = segments.map(decode);
        out.push_str(&rest.next()??);
        for segment in rest {
            out.push('/');
            out.push_str(&segment?);
        }
    } else {
        out.push('/');
        out.push_str(&decode(first)?);
        for segment in segments {
            out.push('/');
            out.push_str(&decode(segment)?);
        }
    }
    Some(out)
}

/// Where the keys starting with `prefix` live: the path of the prefix's complete segments
/// (`None`: every key, relative and absolute), to be listed and filtered by [`key`].
pub(crate) fn directory(prefix: &str, reserved: Option<&str>) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    let cut = prefix.rfind('/').map_or(0, |i| i + 1);
    let complete = &prefix[..cut];
    let absolute = prefix.starts_with('/');
    Some(match complete {
        "" if absolute => String::new(),
        "" => RELATIVE.to_owned(),
        "/" => String::new(),
        c => path(c.strip_suffix('/').unwrap_or(c), reserved),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn readable_for_plain_keys() {
        assert_eq!(
            path("/vamp/default/gateways/haproxy/2.6/configuration", None),
            "vamp/default/gateways/haproxy/2.6/configuration"
        );
        assert_eq!(path("gateways", None), "%%/gateways");
        assert_eq!(path("/./..//x y", None), "%2E/%2E%2E/%/x%20y");
        assert_eq!(path("/zookeeper/a", Some("zookeeper")), "%7Aookeeper/a");
        assert_eq!(path("/a/zookeeper", Some("zookeeper")), "a/zookeeper");
    }

    #[test]
    fn directories_of_prefixes() {
        assert_eq!(directory("", None), None);
        assert_eq!(directory("/", None).as_deref(), Some(""));
        assert_eq!(directory("/v", None).as_deref(), Some(""));
        assert_eq!(directory("/vamp/de", None).as_deref(), Some("vamp"));
        assert_eq!(directory("/vamp/", None).as_deref(), Some("vamp"));
        assert_eq!(directory("g", None).as_deref(), Some("%%"));
        assert_eq!(directory("g/a/", None).as_deref(), Some("%%/g/a"));
        assert_eq!(directory("//", None).as_deref(), Some("%"));
    }

    proptest! {
        #[test]
        fn keys_round_trip(k in "\\PC{1,40}") {
            let p = path(&k, Some("zookeeper"));
            prop_assert_eq!(key(&p), Some(k));
            for segment in p.split('/') {
                prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
                prop_assert!(!["%log", "%seq", "%rev"].contains(&segment));
            }
            prop_assert!(!p.contains("%%") || p.starts_with("%%/"));
        }

        #[test]
        fn a_key_lies_under_the_directory_of_each_of_its_prefixes(key in "/?[a-c/.]{1,12}", cut in 0usize..12) {
            let cut = cut.min(key.len());
            let prefix = &key[..cut];
            let p = path(&key, None);
            match directory(prefix, None) {
                None => {}
                Some(dir) if dir.is_empty() => prop_assert!(!p.starts_with(RELATIVE)),
                Some(dir) => prop_assert!(p.starts_with(&format!("{dir}/")), "{} not under {}", p, dir),
            }
        }
    }
}
