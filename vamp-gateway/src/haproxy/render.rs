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
/// let text = rendered.config.to_string();
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
        if let Some(other) = ports.get(&g.port) {
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
                ports.insert(g.port, &g.name);
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

/// The frontends and backends of one gateway.
fn gateway(
    g: &ResolvedGateway,
    opts: &RenderOptions,
) -> Result<(Vec<Frontend>, Vec<Backend>), GatewayError> {
    let mode = match g.protocol {
        PortType::Http => Mode::Http,
        PortType::Tcp => Mode::Tcp,
    };
    let http = mode == Mode::Http;
    if !http && g.sticky.is_some() {
        return Err((None, RenderErrorKind::NeedsHttp("sticky sessions")));
    }
    let g_name = ident(g.lookup_name.clone())?;
    let other = ident(format!("o_{}", g.lookup_name))?;
    let other_sock = socket(opts, &other)?;
    let sticky_route = g.sticky.is_some();
    let sticky_instance = g.sticky == Some(Sticky::Instance);

    let mut main = Frontend {
        name: g_name,
        comment: format!("gateway {} ({})", g.name, mode),
        binds: vec![Bind::Tcp(SocketAddr::new(opts.bind_host, g.port))],
        mode,
        acls: Vec::new(),
        use_backends: Vec::new(),
        default_backend: Some(other.clone()),
    };
    let mut frontends = Vec::new();
    let mut backends = Vec::new();
    let mut pool = Backend {
        name: other.clone(),
        comment: format!("other {}", g.name),
        mode,
        balance: if http {
            Algorithm::RoundRobin
        } else {
            Algorithm::LeastConn
        },
        cookie: sticky_route.then(|| other.clone()),
        set_paths: Vec::new(),
        forward_for: false,
        forwarded_port: false,
        servers: Vec::new(),
    };
    let mut acls: BTreeSet<Criterion> = BTreeSet::new();
    let mut seen_routes = BTreeSet::new();
    for r in &g.routes {
        let in_route = |kind: RenderErrorKind| (Some(r.path.clone()), kind);
        let r_name = Ident::new(r.lookup_name.clone()).map_err(|e| in_route(e.into()))?;
        if !seen_routes.insert(r_name.clone()) {
            continue; // the same route twice: HAProxy would refuse the duplicate proxy
        }
        let r_sock = socket(opts, &r_name)?;
        pool.servers.push(Server {
            name: r_name.clone(),
            comment: r.path.clone(),
            address: Address::Unix(r_sock.clone()),
            weight: u16::from(r.weight.get()),
            send_proxy: true,
            check: false,
            cookie: sticky_route.then(|| r_name.clone()),
        });
        if let Some(cond) = &r.condition {
            if !http {
                return Err(in_route(RenderErrorKind::NeedsHttp("conditions")));
            }
            let compiled = acl::compile(&cond.expr).map_err(|e| in_route(e.into()))?;
            if !compiled.is_never() {
                let im =
                    Ident::new(format!("im_{}", r.lookup_name)).map_err(|e| in_route(e.into()))?;
                for c in compiled.criteria() {
                    acls.insert(c.clone());
                }
                main.use_backends.push(UseBackend {
                    backend: im.clone(),
                    condition: (!compiled.is_always()).then(|| compiled.haproxy_condition()),
                });
                let strength = u16::from(r.condition_strength.get());
                backends.push(Backend {
                    name: im,
                    comment: format!("intermediate {}//{}: {}", g.name, r.path, cond.text),
                    mode,
                    balance: Algorithm::RoundRobin,
                    cookie: None,
                    set_paths: Vec::new(),
                    forward_for: false,
                    forwarded_port: false,
                    servers: vec![
                        Server {
                            name: r_name.clone(),
                            comment: String::new(),
                            address: Address::Unix(r_sock.clone()),
                            weight: strength,
                            send_proxy: true,
                            check: false,
                            cookie: None,
                        },
                        Server {
                            name: other.clone(),
                            comment: String::new(),
                            address: Address::Unix(other_sock.clone()),
                            weight: 100 - strength,
                            send_proxy: true,
                            check: false,
                            cookie: None,
                        },
                    ],
                });
            }
        }
        frontends.push(Frontend {
            name: r_name.clone(),
            comment: format!("{}//{}", g.name, r.path),
            binds: vec![Bind::Unix {
                path: r_sock,
                accept_proxy: true,
            }],
            mode,
            acls: Vec::new(),
            use_backends: Vec::new(),
            default_backend: Some(r_name.clone()),
        });
        backends.push(route_backend(g, r, r_name, mode, sticky_instance, opts).map_err(in_route)?);
    }
    main.acls = acls
        .into_iter()
        .map(|criterion| Acl { criterion })
        .collect();
    let pool_frontend = Frontend {
        name: other.clone(),
        comment: format!("other {}", g.name),
        binds: vec![Bind::Unix {
            path: other_sock,
            accept_proxy: true,
        }],
        mode,
        acls: Vec::new(),
        use_backends: Vec::new(),
        default_backend: Some(other),
    };
    let mut all_frontends = vec![main, pool_frontend];
    all_frontends.extend(frontends);
    let mut all_backends = vec![pool];
    all_backends.extend(backends);
    Ok((all_frontends, all_backends))
}

fn route_backend(
    g: &ResolvedGateway,
    r: &ResolvedRoute,
    name: Ident,
    mode: Mode,
    sticky_instance: bool,
    opts: &RenderOptions,
) -> Result<Backend, RenderErrorKind> {
    let http = mode == Mode::Http;
    let balance = match &r.balance {
        Balance::RoundRobin => Algorithm::RoundRobin,
        Balance::LeastConn => Algorithm::LeastConn,
        Balance::Source => Algorithm::Source,
        Balance::Other(name) => {
            Algorithm::from_name(name).ok_or_else(|| RenderErrorKind::Balance(name.clone()))?
        }
    };
    if !http && !r.rewrites.is_empty() {
        return Err(RenderErrorKind::NeedsHttp("rewrites"));
    }
    let set_paths = r
        .rewrites
        .iter()
        .map(|rw| rewrite(&rw.path, &rw.condition))
        .collect::<Result<Vec<_>, _>>()?;
    let mut servers: Vec<Server> = Vec::new();
    let mut names = BTreeSet::new();
    for t in &r.targets {
        let mut server_name = Ident::sanitized(&t.name);
        let mut n = 1;
        while names.contains(&server_name) {
            n += 1;
            server_name = Ident::sanitized(&format!(
                "{}-{n}",
                t.name.chars().take(Ident::MAX_LEN - 8).collect::<String>()
            ));
        }
        names.insert(server_name.clone());
        servers.push(Server {
            cookie: (sticky_instance && http).then(|| server_name.clone()),
            name: server_name,
            comment: if Ident::new(t.name.clone()).is_ok() {
                String::new()
            } else {
                t.name.clone()
            },
            address: Address::tcp(&t.host, t.port)?,
            weight: 100,
            send_proxy: false,
            check: opts.health_checks,
        });
    }
    Ok(Backend {
        cookie: (sticky_instance && http).then(|| name.clone()),
        name,
        comment: format!("{}//{}", g.name, r.path),
        mode,
        balance,
        set_paths,
        forward_for: http,
        forwarded_port: false,
        servers,
    })
}

/// `http-request set-path <path> if { <condition> }` (spec §1.8). The path may use
/// `%[<fetch>]` (e.g. `/v2%[path]`); the condition is one literal ACL, braces optional.
fn rewrite(path: &str, condition: &str) -> Result<SetPath, RenderErrorKind> {
    let bad = |reason: String| RenderErrorKind::Rewrite {
        path: path.to_owned(),
        condition: condition.to_owned(),
        reason,
    };
    let inner = condition.trim();
    let inner = inner
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(inner)
        .trim();
    let condition = Criterion::literal(inner).map_err(|e| bad(e.to_string()))?;
    if path.is_empty() || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the path must be non-empty, with no blanks".into()));
    }
    let mut rest = path;
    while let Some(i) = rest.find('%') {
        let after = &rest[i + 1..];
        let Some(sample) = after.strip_prefix('[') else {
            return Err(bad(
                "'%' must start a sample: %[path], %[query], %[hdr(name)]".into(),
            ));
        };
        let end = sample
            .find(']')
            .ok_or_else(|| bad("a '%[' is not closed by ']'".into()))?;
        acl::check_sample(&sample[..end]).map_err(bad)?;
        rest = &sample[end + 1..];
    }
    Ok(SetPath {
        path: Quoted::new("rewrite path", path)?,
        condition,
    })
}

fn virtual_hosts(
    config: &mut Config,
    addr: SocketAddr,
    opts: &RenderOptions,
    gateways: &[(&ResolvedGateway, Vec<Quoted>)],
) {
    let Ok(name) = Ident::new("virtual_hosts") else {
        return;
    };
    let target = if opts.bind_host.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        opts.bind_host
    };
    let mut fe = Frontend {
        name,
        comment: "virtual hosts".into(),
        binds: vec![Bind::Tcp(addr)],
        mode: Mode::Http,
        acls: Vec::new(),
        use_backends: Vec::new(),
        default_backend: None,
    };
    for (g, hosts) in gateways {
        let Ok(be) = Ident::new(format!("vh_{}", g.lookup_name)) else {
            continue;
        };
        let criteria: Vec<Criterion> = hosts.iter().map(acl::host_criterion).collect();
        let condition = criteria
            .iter()
            .map(Criterion::acl_name)
            .collect::<Vec<_>>()
            .join(" or ");
        fe.acls
            .extend(criteria.into_iter().map(|criterion| Acl { criterion }));
        fe.use_backends.push(UseBackend {
            backend: be.clone(),
            condition: Some(condition),
        });
        config.backends.push(Backend {
            name: be.clone(),
            comment: format!("virtual hosts of {}", g.name),
            mode: Mode::Http,
            balance: Algorithm::RoundRobin,
            cookie: None,
            set_paths: Vec::new(),
            forward_for: true,
            forwarded_port: true,
            servers: vec![Server {
                name: be,
                comment: String::new(),
                address: Address::Tcp {
                    host: target.to_string(),
                    port: g.port,
                },
                weight: 100,
                send_proxy: false,
                check: false,
                cookie: None,
            }],
        });
    }
    config.frontends.push(fe);
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
