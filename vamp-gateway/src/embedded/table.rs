//! The routing table of one gateway: built from a [`ResolvedGateway`], swapped whole.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use vamp_core::model::{PortType, Sticky};
use vamp_core::traits::{ResolvedGateway, ResolvedRewrite};

use super::stats::RouteCounters;
use crate::condition::{Condition, Request};
use crate::select::{Pick, Route, Selector};

/// Why a gateway cannot be routed in process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// A condition in HAProxy's own syntax.
    #[error("route '{route}': {source}")]
    Condition {
        /// The route.
        route: String,
        /// Why.
        source: crate::condition::UnsupportedCondition,
    },
    /// A rewrite the embedded router cannot apply.
    #[error(
        "route '{route}': rewrite '{path} if {condition}' is not supported by the embedded router: \
         {reason}"
    )]
    Rewrite {
        /// The route.
        route: String,
        /// The new path.
        path: String,
        /// The condition.
        condition: String,
        /// What is not supported.
        reason: &'static str,
    },
    /// An HTTP feature on a TCP gateway.
    #[error("{0} need an http gateway; this one is tcp")]
    NeedsHttp(&'static str),
}

/// A path rewrite the embedded router applies: `<template> if <test on the path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewrite {
    test: PathTest,
    /// Literal pieces and `%[path]` / `%[query]` samples.
    template: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathTest {
    Always,
    Exact(Vec<String>),
    Begins(Vec<String>),
    Ends(Vec<String>),
    Contains(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Path,
    Query,
}

impl Rewrite {
    /// Reads the subset of HAProxy rewrites that needs no HAProxy: conditions `path`,
    /// `path_beg`, `path_end`, `path_sub` or `always_true`; samples `%[path]`, `%[query]`.
    fn parse(route: &str, rw: &ResolvedRewrite) -> Result<Self, TableError> {
        let bad = |reason| TableError::Rewrite {
            route: route.to_owned(),
            path: rw.path.clone(),
            condition: rw.condition.clone(),
            reason,
        };
        let cond = rw.condition.trim();
        let cond = cond
            .strip_prefix('{')
            .and_then(|c| c.strip_suffix('}'))
            .unwrap_or(cond);
        let mut words = cond.split_whitespace();
        let fetch = words.next().ok_or_else(|| bad("the condition is empty"))?;
        let values: Vec<String> = words
            .filter(|w| *w != "--")
            .map(|w| w.trim_matches(['\'', '"']).to_owned())
            .collect();
        if values.iter().any(|v| v.starts_with('-')) {
            return Err(bad("ACL flags are not supported"));
        }
        let test = match fetch {
            "always_true" if values.is_empty() => PathTest::Always,
            "path" => PathTest::Exact(values),
            "path_beg" => PathTest::Begins(values),
            "path_end" => PathTest::Ends(values),
            "path_sub" => PathTest::Contains(values),
            _ => {
                return Err(bad(
                    "conditions may test the path only (path, path_beg, path_end, path_sub)",
                ));
            }
        };
        let mut template = Vec::new();
        let mut rest = rw.path.as_str();
        while let Some(i) = rest.find("%[") {
            if i > 0 {
                template.push(Piece::Text(rest[..i].to_owned()));
            }
            let after = &rest[i + 2..];
            let end = after.find(']').ok_or_else(|| bad("a '%[' is not closed"))?;
            template.push(match &after[..end] {
                "path" => Piece::Path,
                "query" => Piece::Query,
                _ => return Err(bad("samples other than %[path] and %[query]")),
            });
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            template.push(Piece::Text(rest.to_owned()));
        }
        Ok(Rewrite { test, template })
    }

    /// The new path, if the rewrite applies to `path`.
    pub(crate) fn apply(&self, path: &str, query: Option<&str>) -> Option<String> {
        let hit = match &self.test {
            PathTest::Always => true,
            PathTest::Exact(v) => v.iter().any(|p| path == p),
            PathTest::Begins(v) => v.iter().any(|p| path.starts_with(p.as_str())),
            PathTest::Ends(v) => v.iter().any(|p| path.ends_with(p.as_str())),
            PathTest::Contains(v) => v.iter().any(|p| path.contains(p.as_str())),
        };
        hit.then(|| {
            self.template
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => t.as_str(),
                    Piece::Path => path,
                    Piece::Query => query.unwrap_or_default(),
                })
                .collect()
        })
    }
}

/// One route: where its traffic goes.
#[derive(Debug)]
pub(crate) struct RouteEntry {
    /// The route path (for stats).
    pub(crate) path: String,
    /// The route lookup name (sticky cookie value and instance-cookie name).
    pub(crate) lookup: String,
    /// `(name, host, port)` of the targets.
    pub(crate) targets: Vec<(String, String, u16)>,
    next: AtomicUsize,
    pub(crate) rewrites: Vec<Rewrite>,
    pub(crate) stats: Arc<RouteCounters>,
    /// Where copies of a share of the requests go.
    pub(crate) mirror: Option<super::mirror::Mirror>,
}

impl RouteEntry {
    /// The next target, round robin; `pinned` (a target name) wins when it is still there.
    pub(crate) fn target(&self, pinned: Option<&str>) -> Option<(usize, &(String, String, u16))> {
        if let Some(name) = pinned
            && let Some(i) = self.targets.iter().position(|t| t.0 == name)
        {
            return self.targets.get(i).map(|t| (i, t));
        }
        match self.targets.len() {
            0 => return None,
            // One instance: no round robin (and no count every thread writes).
            1 => return self.targets.first().map(|t| (0, t)),
            _ => {}
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len();
        self.targets.get(i).map(|t| (i, t))
    }
}

/// The routing table of one gateway.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) gateway: String,
    pub(crate) protocol: PortType,
    pub(crate) sticky: Option<Sticky>,
    /// The route cookie (`o_<gateway lookup name>`, as HAProxy names it).
    pub(crate) cookie: String,
    selector: Mutex<Selector>,
    pub(crate) routes: Vec<RouteEntry>,
    /// The gateway as given, to tell what changed.
    pub(crate) source: ResolvedGateway,
}

impl Table {
    /// Builds the table; `counters` gives each route its (possibly existing) counters.
    pub(crate) fn build(
        g: &ResolvedGateway,
        mut counters: impl FnMut(&str) -> Arc<RouteCounters>,
    ) -> Result<Self, TableError> {
        let http = g.protocol == PortType::Http;
        if !http && g.sticky.is_some() {
            return Err(TableError::NeedsHttp("sticky sessions"));
        }
        let mut selector_routes = Vec::with_capacity(g.routes.len());
        let mut routes = Vec::with_capacity(g.routes.len());
        for r in &g.routes {
            let mut sr = Route::weighted(r.lookup_name.clone(), r.weight.get());
            if let Some(c) = &r.condition {
                if !http {
                    return Err(TableError::NeedsHttp("conditions"));
                }
                let condition =
                    Condition::from_expr(&c.expr).map_err(|source| TableError::Condition {
                        route: r.path.clone(),
                        source,
                    })?;
                sr = sr.with_condition(condition, r.condition_strength.get());
            }
            if !http && !r.rewrites.is_empty() {
                return Err(TableError::NeedsHttp("rewrites"));
            }
            if !http && r.mirror.is_some() {
                return Err(TableError::NeedsHttp("mirrors"));
            }
            let rewrites = r
                .rewrites
                .iter()
                .map(|rw| Rewrite::parse(&r.path, rw))
                .collect::<Result<Vec<_>, _>>()?;
            selector_routes.push(sr);
            routes.push(RouteEntry {
                path: r.path.clone(),
                lookup: r.lookup_name.clone(),
                targets: r
                    .targets
                    .iter()
                    .map(|t| (t.name.clone(), t.host.clone(), t.port))
                    .collect(),
                next: AtomicUsize::new(0),
                rewrites,
                stats: counters(&r.path),
                mirror: r.mirror.as_ref().map(super::mirror::Mirror::new),
            });
        }
        Ok(Table {
            gateway: g.name.clone(),
            protocol: g.protocol,
            sticky: g.sticky,
            cookie: format!("o_{}", g.lookup_name),
            selector: Mutex::new(Selector::new(selector_routes)),
            routes,
            source: g.clone(),
        })
    }

    /// The route for a request, and whether the response should pin the client to it.
    pub(crate) fn pick(&self, request: &impl Request) -> Option<Pick> {
        let mut selector = self.selector.lock().unwrap_or_else(PoisonError::into_inner);
        if self.sticky.is_some() {
            selector.pick_sticky(request, &self.cookie)
        } else {
            selector
                .pick(request)
                .map(|route| Pick { route, pin: false })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(path: &str, condition: &str) -> Result<Rewrite, TableError> {
        Rewrite::parse(
            "r",
            &ResolvedRewrite {
                path: path.into(),
                condition: condition.into(),
            },
        )
    }

    proptest::proptest! {
        /// Any rewrite is read or refused — never a panic — and applying it never panics.
        #[test]
        fn rewrites_never_panic(path in ".{0,30}", condition in ".{0,30}", request in "/.{0,20}") {
            if let Ok(r) = rw(&path, &condition) {
                let _ = r.apply(&request, Some("q=1"));
            }
        }
    }

    #[test]
    fn rewrites_of_the_path_are_applied() {
        let r = rw("/v2%[path]", "{ path_beg /api }").unwrap();
        assert_eq!(r.apply("/api/x", None).as_deref(), Some("/v2/api/x"));
        assert_eq!(r.apply("/web", None), None);
        let r = rw("/new?%[query]", "path_end .php .asp").unwrap();
        assert_eq!(r.apply("/a.asp", Some("x=1")).as_deref(), Some("/new?x=1"));
        assert!(rw("/x", "hdr(host) a").is_err());
        assert!(rw("/x%[url]", "path /").is_err());
        assert!(rw("/x", "path_beg -i /a").is_err());
    }
}
