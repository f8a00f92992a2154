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
    let mut config = Config {
        global,
        defaults: opts.defaults.clone(),
        frontends: Vec::new(),
        backends: Vec::new(),
    };
    let mut sorted: Vec<&ResolvedGateway> = gateways.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ports: BTreeMap<u16, &str> = BTreeMap::new();
    let mut vhosts: Vec<(&ResolvedGateway, Vec<Quoted>)> = Vec::new();
    for g in sorted {
        let fail = |route: Option<&str>, kind: RenderErrorKind| RenderError {
            gateway: g.name.clone(),
            route: route.map(str::to_owned),
            kind,
        };
        if g.port == 0 && (opts.virtual_hosts.is_none() || g.virtual_hosts.is_empty()) {
            failed.push(fail(None, RenderErrorKind::NoListener));
            continue;
        }
        if let Some(other) = ports.get(&g.port).filter(|_| g.port != 0) {
            failed.push(fail(
                None,
                RenderErrorKind::PortTaken {
                    port: g.port,
                    other: (*other).to_owned(),
                },
            ));
            continue;
        }
        match gateway(g, opts) {
            Ok((frontends, backends)) => {
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
                        continue;
                    }
                    Err(e) => {
                        failed.push(fail(None, e.into()));
                        continue;
                    }
                }
                if g.port != 0 {
                    ports.insert(g.port, &g.name);
                }
                config.frontends.extend(frontends);
                config.backends.extend(backends);
            }
            Err((route, kind)) => failed.push(fail(route.as_deref(), kind)),
        }
    }
    if let (Some(addr), false) = (opts.virtual_hosts, vhosts.is_empty()) {
        virtual_hosts(&mut config, addr, opts, &vhosts);
    }
    Rendered { config, failed }
}

type GatewayError = (Option<String>, RenderErrorKind);

fn ident(text: String) -> Result<Ident, GatewayError> {
    Ident::new(text).map_err(|e| (None, e.into()))
}

fn socket(opts: &RenderOptions, name: &Ident) -> Result<SocketPath, GatewayError> {
    SocketPath::new(opts.socket_dir.join(format!("{name}.sock"))).map_err(|e| (None, e.into()))
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
