//! The HAProxy sample fetches a condition may name, with their arguments: what a criterion
//! is checked against before it reaches a configuration.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Ip,
    Bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Args {
    None,
    /// `fetch` or `fetch(name)`.
    OptName,
    /// `fetch(name)`.
    Name,
    /// `fetch`, `fetch(name)` or `fetch(name,occurrence)`.
    OptNameOcc,
    /// `fetch(name)` or `fetch(name,occurrence)`.
    NameOcc,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct FetchSpec {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) args: Args,
    /// The match method a derivative implies (`path_beg` → `beg`).
    pub(super) implied: Option<&'static str>,
}

pub(super) const fn f(
    name: &'static str,
    kind: Kind,
    args: Args,
    implied: Option<&'static str>,
) -> FetchSpec {
    FetchSpec {
        name,
        kind,
        args,
        implied,
    }
}

/// The sample fetches literal ACLs may use (HAProxy 2.6 names, each checked by `haproxy -c`
/// in the tests).
pub(super) const FETCHES: &[FetchSpec] = {
    use Args::*;
    use Kind::*;
    &[
        f("path", Str, None, Option::None),
        f("path_beg", Str, None, Some("beg")),
        f("path_end", Str, None, Some("end")),
        f("path_sub", Str, None, Some("sub")),
        f("path_dir", Str, None, Some("dir")),
        f("path_dom", Str, None, Some("dom")),
        f("path_reg", Str, None, Some("reg")),
        f("path_len", Int, None, Option::None),
        f("url", Str, None, Option::None),
        f("url_beg", Str, None, Some("beg")),
        f("url_end", Str, None, Some("end")),
        f("url_sub", Str, None, Some("sub")),
        f("url_reg", Str, None, Some("reg")),
        f("base", Str, None, Option::None),
        f("base_beg", Str, None, Some("beg")),
        f("base_sub", Str, None, Some("sub")),
        f("query", Str, None, Option::None),
        f("method", Str, None, Option::None),
        f("req.ver", Str, None, Option::None),
        f("url_param", Str, Name, Option::None),
        f("urlp", Str, Name, Option::None),
        f("hdr", Str, OptNameOcc, Option::None),
        f("hdr_beg", Str, OptNameOcc, Some("beg")),
        f("hdr_end", Str, OptNameOcc, Some("end")),
        f("hdr_sub", Str, OptNameOcc, Some("sub")),
        f("hdr_dir", Str, OptNameOcc, Some("dir")),
        f("hdr_dom", Str, OptNameOcc, Some("dom")),
        f("hdr_reg", Str, OptNameOcc, Some("reg")),
        f("req.hdr", Str, OptNameOcc, Option::None),
        f("req.fhdr", Str, NameOcc, Option::None),
        f("hdr_cnt", Int, OptName, Option::None),
        f("req.hdr_cnt", Int, OptName, Option::None),
        f("req.fhdr_cnt", Int, OptName, Option::None),
        f("hdr_ip", Ip, OptNameOcc, Option::None),
        f("cook", Str, OptName, Option::None),
        f("cook_beg", Str, OptName, Some("beg")),
        f("cook_end", Str, OptName, Some("end")),
        f("cook_sub", Str, OptName, Some("sub")),
        f("cook_reg", Str, OptName, Some("reg")),
        f("req.cook", Str, OptName, Option::None),
        f("cook_cnt", Int, OptName, Option::None),
        f("req.cook_cnt", Int, OptName, Option::None),
        f("src", Ip, None, Option::None),
        f("dst", Ip, None, Option::None),
        f("src_port", Int, None, Option::None),
        f("dst_port", Int, None, Option::None),
        f("ssl_fc", Bool, None, Option::None),
        f("always_true", Bool, None, Option::None),
        f("always_false", Bool, None, Option::None),
    ]
};

pub(super) struct Fetch {
    pub(super) spec: FetchSpec,
    pub(super) text: String,
}

impl Fetch {
    pub(super) fn parse(word: &str) -> Result<Self, String> {
        let (name, args) = match word.split_once('(') {
            Some((name, rest)) => {
                let args = rest.strip_suffix(')').ok_or_else(|| {
                    format!("'{word}' has an unclosed '(' (converters are not accepted)")
                })?;
                (name, Some(args))
            }
            None => (word, None),
        };
        let spec = *FETCHES.iter().find(|s| s.name == name).ok_or_else(|| {
            format!(
                "'{name}' is not a known sample fetch; use one of {}",
                FETCHES
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        let args: Vec<&str> = match args {
            Some(a) => a.split(',').collect(),
            None => Vec::new(),
        };
        let (min, max) = match spec.args {
            Args::None => (0, 0),
            Args::OptName => (0, 1),
            Args::Name => (1, 1),
            Args::OptNameOcc => (0, 2),
            Args::NameOcc => (1, 2),
        };
        if args.len() < min || args.len() > max {
            return Err(format!(
                "'{name}' takes {min} to {max} argument(s) in parentheses, not {}",
                args.len()
            ));
        }
        if let Some(n) = args.first() {
            check_name("argument", n).map_err(|e| e.to_string())?;
        }
        if let Some(occ) = args.get(1)
            && occ.parse::<i32>().is_err()
        {
            return Err(format!(
                "'{occ}' in '{word}' must be a whole number (the occurrence)"
            ));
        }
        Ok(Fetch {
            spec,
            text: word.to_owned(),
        })
    }
}

/// Header, cookie and fetch-argument names: letters, digits, `-`, `_`, `.`.
pub(super) fn check_name(what: &'static str, name: &str) -> Result<(), AclError> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AclError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}
