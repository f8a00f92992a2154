//! Gateways → HAProxy configuration, in Vamp's layout (spec §4.2.2):
//!
//! ```text
//! frontend <G>      bind host:port; acl …; use_backend im_<R> if …; default_backend o_<G>
//! frontend o_<G>    bind unix@<dir>/o_<G>.sock accept-proxy → backend o_<G>
//! frontend <R>      bind unix@<dir>/<R>.sock accept-proxy   → backend <R>   (per route)
//! backend o_<G>     weighted pool: server <R> unix@…<R>.sock weight <route weight>
//! backend im_<R>    condition strength: server <R> weight s, server o_<G> weight 100-s
//! backend <R>       the route's targets
//! ```
//!
//! Weights and strengths are server weights, so the agent changes them at run time with no
//! reload ([`runtime_weights`]). `sticky: route` adds a cookie to `o_<G>`; `sticky: instance`
//! adds one to each route backend too. Requests that match a condition are decided by the
//! condition first (at its strength), then by the pinned route (as the embedded router).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use vamp_core::model::{PortType, Sticky};
use vamp_core::traits::{Balance, ResolvedGateway, ResolvedRoute};

use super::acl::{self, AclError, Criterion};
use super::config::{
    Acl, Address, Algorithm, Backend, Bind, Config, Defaults, Frontend, Global, Mode, Server,
    SetPath, SocketPath, UseBackend,
};
use super::text::{Ident, Quoted, TextError};

mod gateway;
use gateway::{gateway, virtual_hosts};

/// How gateways are rendered: where things listen and the base sections.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// The address gateway ports bind to (default `127.0.0.1`).
    pub bind_host: IpAddr,
    /// The directory of the route sockets (`<dir>/<lookup name>.sock`); short, because a
    /// socket path holds at most 107 bytes.
    pub socket_dir: PathBuf,
    /// The admin socket for the runtime API and listener hand-over.
    pub admin_socket: Option<PathBuf>,
    /// Server states kept across reloads.
    pub server_state_file: Option<PathBuf>,
    /// Where the `virtual_hosts` frontend listens; `None` = no virtual hosts.
    pub virtual_hosts: Option<SocketAddr>,
    /// Health-check the targets (`check inter 1s fall 2 rise 1`).
    pub health_checks: bool,
    /// Global settings (admin socket and state file are taken from the fields above).
    pub global: Global,
    /// Defaults.
    pub defaults: Defaults,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            bind_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            socket_dir: PathBuf::from("/tmp/vamp-haproxy"),
            admin_socket: None,
            server_state_file: None,
            virtual_hosts: None,
            health_checks: true,
            global: Global::default(),
            defaults: Defaults::default(),
        }
    }
}

/// Why one gateway cannot be rendered (the others still are).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gateway '{gateway}'{}: {kind}", route.as_ref().map(|r| format!(", route '{r}'")).unwrap_or_default())]
pub struct RenderError {
    /// The gateway.
    pub gateway: String,
    /// The route, when the problem is in one.
    pub route: Option<String>,
    /// What is wrong.
    pub kind: RenderErrorKind,
}

/// What is wrong with a gateway.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderErrorKind {
    /// A name, value or path cannot go into the config.
    #[error(transparent)]
    Text(#[from] TextError),
    /// A condition cannot be rendered.
    #[error(transparent)]
    Acl(#[from] AclError),
    /// A path rewrite cannot be rendered.
    #[error("rewrite '{path} if {condition}': {reason}")]
    Rewrite {
        /// The new path.
        path: String,
        /// The condition.
        condition: String,
        /// What is wrong.
        reason: String,
    },
    /// An HTTP feature on a TCP gateway.
    #[error("{0} need an http gateway; this one is tcp")]
    NeedsHttp(&'static str),
    /// A balance algorithm HAProxy does not have.
    #[error(
        "balance '{0}' is not an HAProxy algorithm; use roundrobin, leastconn, source, first, static-rr, random or uri"
    )]
    Balance(String),
    /// A gateway without a port of its own, and no virtual-host frontend to serve it.
    #[error(
        "it has no port of its own and the configuration no virtual-host frontend (gateways.vhost_listen)"
    )]
    NoListener,
    /// Another gateway has the port.
    #[error("port {port} is already used by gateway '{other}'")]
    PortTaken {
        /// The port.
        port: u16,
        /// The gateway that has it.
        other: String,
    },
}

/// A rendered configuration and the gateways left out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The configuration.
    pub config: Config,
    /// Gateways that could not be rendered, with the reason.
    pub failed: Vec<RenderError>,
}

/// Renders `gateways` (in name order, so equal input gives equal text).
///
/// ```
/// use vamp_core::model::{Percentage, PortType};
/// use vamp_core::traits::{Balance, ResolvedGateway, ResolvedRoute, RouteTarget};
/// use vamp_gateway::haproxy::render::{render, RenderOptions};
///
/// let route = |path: &str, weight: u8, port: u16| ResolvedRoute {
///     path: path.into(),
///     lookup_name: format!("r{port}"),
///     weight: Percentage::new(weight).unwrap(),
///     condition: None,
///     condition_strength: Percentage::FULL,
///     rewrites: vec![],
///     balance: Balance::RoundRobin,
///     mirror: None,
///     targets: vec![RouteTarget { name: format!("web{port}"), host: "127.0.0.1".into(), port }],
/// };
/// let gateway = ResolvedGateway {
///     name: "shop/web".into(),
///     lookup_name: "g1".into(),
///     port: 9050,
///     protocol: PortType::Http,
///     sticky: None,
///     virtual_hosts: vec![],
///     routes: vec![route("web:1.0", 90, 8081), route("web:2.0", 10, 8082)],
/// };
/// let rendered = render(&[gateway], &RenderOptions::default());
/// let text = rendered.config.text();
/// assert!(rendered.failed.is_empty());
/// assert!(text.contains("bind 127.0.0.1:9050"));
/// assert!(text.contains("server r8081 'unix@/tmp/vamp-haproxy/r8081.sock' weight 90 send-proxy"));
/// ```
pub fn render(gateways: &[ResolvedGateway], opts: &RenderOptions) -> Rendered {
    let mut global = opts.global.clone();
    let mut failed = Vec::new();
    let top = |kind: TextError| RenderError {
        gateway: String::new(),
        route: None,
        kind: RenderErrorKind::Text(kind),
    };
    global.admin_socket = match opts.admin_socket.as_ref().map(SocketPath::new).transpose() {
        Ok(s) => s,
        Err(e) => {
            failed.push(top(e));
            None
        }
    };
    global.server_state_file = match opts
        .server_state_file
        .as_ref()
        .map(SocketPath::new)
        .transpose()
    {
        Ok(s) => s,
        Err(e) => {
            failed.push(top(e));
            None
        }
    };
    // Sized up front: thousands of gateways would otherwise grow (and copy) these many times.
    let routes: usize = gateways.iter().map(|g| g.routes.len()).sum();
    let conditions = gateways
        .iter()
        .flat_map(|g| &g.routes)
        .filter(|r| r.condition.is_some())
        .count();
    let mut config = Config {
        global,
        defaults: opts.defaults.clone(),
        frontends: Vec::with_capacity(2 * gateways.len() + routes + 1),
        backends: Vec::with_capacity(2 * gateways.len() + routes + conditions),
    };
    let mut sorted: Vec<&ResolvedGateway> = gateways.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let parts = render_each(&sorted, opts);
    let mut results = Vec::with_capacity(sorted.len());
    let mut sections = Vec::with_capacity(parts.len());
    for (part, part_results) in parts {
        results.extend(part_results.into_iter().map(|r| (sections.len(), r)));
        sections.push((part.frontends.into_iter(), part.backends.into_iter()));
    }
    let mut results = results.into_iter();
    let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
    let mut vhosts: Vec<(&ResolvedGateway, Vec<Quoted>)> = Vec::new();
    for g in sorted {
        let Some((at, result)) = results.next() else {
            break;
        };
        let Some((fes, bes)) = sections.get_mut(at) else {
            break;
        };
        let (f, b) = result.as_ref().map_or((0, 0), |counts| *counts);
        let fail = |route: Option<&str>, kind: RenderErrorKind| RenderError {
            gateway: g.name.clone(),
            route: route.map(str::to_owned),
            kind,
        };
        let kept = 'check: {
            if g.port == 0 && (opts.virtual_hosts.is_none() || g.virtual_hosts.is_empty()) {
                failed.push(fail(None, RenderErrorKind::NoListener));
                break 'check false;
            }
            if let Some(other) = ports.get(&g.port).filter(|_| g.port != 0) {
                failed.push(fail(
                    None,
                    RenderErrorKind::PortTaken {
                        port: g.port,
                        other: (*other).to_owned(),
                    },
                ));
                break 'check false;
            }
            if let Err((route, kind)) = result {
                failed.push(fail(route.as_deref(), kind));
                break 'check false;
            }
            let names: Result<Vec<Quoted>, TextError> = g
                .virtual_hosts
                .iter()
                .map(|h| Quoted::new("virtual host", h.clone()))
                .collect();
            match names {
                Ok(names) if g.protocol == PortType::Http || names.is_empty() => {
                    if !names.is_empty() {
                        vhosts.push((g, names));
                    }
                }
                Ok(_) => {
                    failed.push(fail(None, RenderErrorKind::NeedsHttp("virtual hosts")));
                    break 'check false;
                }
                Err(e) => {
                    failed.push(fail(None, e.into()));
                    break 'check false;
                }
            }
            if g.port != 0 {
                ports.insert(g.port, &g.name);
            }
            true
        };
        // This gateway's sections, taken in order whether it is kept or not.
        if kept {
            config.frontends.extend(fes.by_ref().take(f));
            config.backends.extend(bes.by_ref().take(b));
        } else {
            fes.by_ref().take(f).for_each(drop);
            bes.by_ref().take(b).for_each(drop);
        }
    }
    if let (Some(addr), false) = (opts.virtual_hosts, vhosts.is_empty()) {
        virtual_hosts(&mut config, addr, opts, &Memo::new(opts), &vhosts);
    }
    Rendered { config, failed }
}

/// From this many gateways on, [`render_each`] uses every core.
const PARALLEL_FROM: usize = 512;

/// Sections appended in order (one gateway's after another's).
#[derive(Default)]
pub(super) struct Sections {
    pub(super) frontends: Vec<Frontend>,
    pub(super) backends: Vec<Backend>,
}

/// How many frontends and backends one gateway has in its [`Sections`], or why it has none.
type Counted = Result<(usize, usize), GatewayError>;

/// The frontends and backends of each gateway, in order. Each gateway's own: with many, they
/// are worked out on every core (at most 4), each thread with its own [`Memo`], and
/// [`render`] then checks ports and joins them in order, as if one thread had done it.
fn render_each(sorted: &[&ResolvedGateway], opts: &RenderOptions) -> Vec<(Sections, Vec<Counted>)> {
    crate::haproxy::in_shares(sorted, PARALLEL_FROM, |part| {
        let mut memo = Memo::new(opts);
        let routes: usize = part.iter().map(|g| g.routes.len()).sum();
        let mut out = Sections {
            frontends: Vec::with_capacity(2 * part.len() + routes),
            backends: Vec::with_capacity(2 * part.len() + routes),
        };
        let counts = part
            .iter()
            .map(|g| gateway(g, opts, &mut memo, &mut out))
            .collect::<Vec<_>>();
        (out, counts)
    })
}

type GatewayError = (Option<String>, RenderErrorKind);

fn ident(text: impl AsRef<str>) -> Result<Ident, GatewayError> {
    Ident::new(text).map_err(|e| (None, e.into()))
}

/// What one render works out once, however many gateways use it: the socket directory as
/// text, and each distinct condition compiled with its `if` text (conditions are usually
/// shared: a named condition, or a canary's header test on many gateways).
///
/// The maps hash with foldhash: their keys come from the render's own input, and SipHash's
/// protection against chosen collisions cost more than the lookups themselves.
pub(super) struct Memo<'a> {
    socket_dir: Result<String, TextError>,
    conditions: foldhash::HashMap<&'a str, Result<std::rc::Rc<Compiled>, AclError>>,
    acl_names: foldhash::HashMap<Criterion, Ident>,
    hosts: foldhash::HashMap<&'a str, std::sync::Arc<str>>,
}

/// A compiled condition and its text after `if` (`None` when it always holds).
pub(super) struct Compiled {
    pub(super) condition: acl::CompiledCondition,
    pub(super) text: Option<std::sync::Arc<str>>,
}

impl<'a> Memo<'a> {
    fn new(opts: &RenderOptions) -> Self {
        let socket_dir = opts
            .socket_dir
            .to_str()
            .map(str::to_owned)
            .ok_or_else(|| TextError::BadIdent {
                text: opts.socket_dir.display().to_string(),
            })
            .and_then(|dir| SocketPath::from_text(dir.clone()).map(|_| dir));
        Memo {
            socket_dir,
            conditions: foldhash::HashMap::default(),
            acl_names: foldhash::HashMap::default(),
            hosts: foldhash::HashMap::default(),
        }
    }

    /// The ACL of `criterion`, its name worked out once per render.
    pub(super) fn acl(&mut self, criterion: Criterion) -> Acl {
        if let Some(name) = self.acl_names.get(&criterion) {
            return Acl {
                name: name.clone(),
                criterion,
            };
        }
        let acl = Acl::new(criterion);
        self.acl_names
            .insert(acl.criterion.clone(), acl.name.clone());
        acl
    }

    /// `host:port` as a server address, each distinct host checked once per render and its
    /// text shared (instances on one node share their host).
    pub(super) fn address(&mut self, host: &'a str, port: u16) -> Result<Address, TextError> {
        if let Some(host) = self.hosts.get(host) {
            return Ok(Address::Tcp {
                host: host.clone(),
                port,
            });
        }
        let address = Address::tcp(host, port)?;
        if let Address::Tcp { host: shared, .. } = &address {
            self.hosts.insert(host, shared.clone());
        }
        Ok(address)
    }

    /// `<socket dir>/<name>.sock`.
    pub(super) fn socket(&self, name: &Ident) -> Result<SocketPath, GatewayError> {
        let dir = self
            .socket_dir
            .as_ref()
            .map_err(|e| (None, e.clone().into()))?;
        let slash = if !dir.is_empty() && !dir.ends_with('/') {
            "/"
        } else {
            ""
        };
        // The directory was checked once; a name has no control character.
        crate::haproxy::text::joined(
            &[dir.as_str(), slash, name.as_str(), ".sock"],
            SocketPath::from_checked_dir,
        )
        .map_err(|e| (None, e.into()))
    }

    /// The condition compiled, once per distinct text.
    pub(super) fn condition(
        &mut self,
        condition: &'a vamp_core::traits::ResolvedCondition,
    ) -> Result<std::rc::Rc<Compiled>, AclError> {
        self.conditions
            .entry(condition.text.as_str())
            .or_insert_with(|| {
                acl::compile(&condition.expr).map(|condition| {
                    let text =
                        (!condition.is_always()).then(|| condition.haproxy_condition().into());
                    std::rc::Rc::new(Compiled { condition, text })
                })
            })
            .clone()
    }
}

/// The runtime-API weights of a rendered gateway: `(backend, server, weight)` for the pool
/// (`o_<G>/<R>` = route weight) and each condition (`im_<R>/<R>` = strength,
/// `im_<R>/o_<G>` = 100 − strength). Setting these is a weight-only change: no reload.
pub fn runtime_weights(g: &ResolvedGateway) -> Vec<(String, String, u16)> {
    let other = format!("o_{}", g.lookup_name);
    let mut out = Vec::new();
    for r in &g.routes {
        out.push((
            other.clone(),
            r.lookup_name.clone(),
            u16::from(r.weight.get()),
        ));
        if r.condition.is_some() {
            let im = format!("im_{}", r.lookup_name);
            let s = u16::from(r.condition_strength.get());
            out.push((im.clone(), r.lookup_name.clone(), s));
            out.push((im, other.clone(), 100 - s));
        }
    }
    out
}
