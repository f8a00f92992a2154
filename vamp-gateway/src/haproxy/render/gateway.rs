//! One gateway's frontend and backends: routes, conditions, rewrites, virtual hosts.

use super::*;

/// Appends the frontends and backends of one gateway to `out`, and says how many of each;
/// on an error nothing is appended.
pub(super) fn gateway<'a>(
    g: &'a ResolvedGateway,
    opts: &RenderOptions,
    memo: &mut Memo<'a>,
    out: &mut Sections,
) -> Result<(usize, usize), GatewayError> {
    let (frontends, backends) = (out.frontends.len(), out.backends.len());
    match append_gateway(g, opts, memo, out) {
        Ok(()) => Ok((
            out.frontends.len() - frontends,
            out.backends.len() - backends,
        )),
        Err(e) => {
            out.frontends.truncate(frontends);
            out.backends.truncate(backends);
            Err(e)
        }
    }
}

fn append_gateway<'a>(
    g: &'a ResolvedGateway,
    opts: &RenderOptions,
    memo: &mut Memo<'a>,
    out: &mut Sections,
) -> Result<(), GatewayError> {
    let mode = match g.protocol {
        PortType::Http => Mode::Http,
        PortType::Tcp => Mode::Tcp,
    };
    let http = mode == Mode::Http;
    if !http && g.sticky.is_some() {
        return Err((None, RenderErrorKind::NeedsHttp("sticky sessions")));
    }
    let g_name = ident(&g.lookup_name)?;
    let other = Ident::prefixed("o_", &g.lookup_name).map_err(|e| (None, e.into()))?;
    let other_sock = memo.socket(&other)?;
    let sticky_route = g.sticky.is_some();
    let sticky_instance = g.sticky == Some(Sticky::Instance);

    // Port 0: no port of its own; the virtual-host frontend reaches it on a socket.
    let bind = match g.port {
        0 => Bind::Unix {
            path: memo.socket(&g_name)?,
            accept_proxy: true,
        },
        port => Bind::Tcp(SocketAddr::new(opts.bind_host, port)),
    };
    let main = Frontend {
        name: g_name,
        comment: text(&["gateway ", &g.name, " (", mode.as_str(), ")"]),
        bind,
        mode,
        acls: Vec::new(),
        use_backends: Vec::new(),
        default_backend: Some(other.clone()),
    };
    let other_comment = text(&["other ", &g.name]);
    // In order: this frontend, the pool's, the routes'; the pool's backend, the routes'.
    let main_at = out.frontends.len();
    out.frontends.push(main);
    out.frontends.push(Frontend {
        name: other.clone(),
        comment: other_comment.clone(),
        bind: Bind::Unix {
            path: other_sock.clone(),
            accept_proxy: true,
        },
        mode,
        acls: Vec::new(),
        use_backends: Vec::new(),
        default_backend: Some(other.clone()),
    });
    let frontends = &mut out.frontends;
    let backends = &mut out.backends;
    let pool_at = backends.len();
    backends.push(Backend {
        name: other.clone(),
        comment: other_comment,
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
        servers: Vec::with_capacity(g.routes.len()),
    });
    let mut acls: BTreeSet<Criterion> = BTreeSet::new();
    for r in &g.routes {
        let in_route = |kind: RenderErrorKind| (Some(r.path.clone()), kind);
        let r_name = Ident::new(&r.lookup_name).map_err(|e| in_route(e.into()))?;
        // The same route twice: HAProxy would refuse the duplicate proxy. (Routes are few:
        // the pool's servers are the list of those seen.)
        if backends[pool_at].servers.iter().any(|s| s.name == r_name) {
            continue;
        }
        let r_sock = memo.socket(&r_name)?;
        // The route's frontend and backend say the same.
        let r_comment = text(&[&g.name, "//", &r.path]);
        backends[pool_at].servers.push(Server {
            name: r_name.clone(),
            comment: Some(r.path.as_str().into()),
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
            let compiled = memo.condition(cond).map_err(|e| in_route(e.into()))?;
            if !compiled.condition.is_never() {
                let im = Ident::prefixed("im_", &r.lookup_name).map_err(|e| in_route(e.into()))?;
                for c in compiled.condition.criteria() {
                    acls.insert(c.clone());
                }
                frontends[main_at].use_backends.push(UseBackend {
                    backend: im.clone(),
                    condition: compiled.text.clone(),
                });
                let strength = u16::from(r.condition_strength.get());
                backends.push(Backend {
                    name: im,
                    comment: text(&["intermediate ", &g.name, "//", &r.path, ": ", &cond.text]),
                    mode,
                    balance: Algorithm::RoundRobin,
                    cookie: None,
                    set_paths: Vec::new(),
                    forward_for: false,
                    forwarded_port: false,
                    servers: vec![
                        Server {
                            name: r_name.clone(),
                            comment: None,
                            address: Address::Unix(r_sock.clone()),
                            weight: strength,
                            send_proxy: true,
                            check: false,
                            cookie: None,
                        },
                        Server {
                            name: other.clone(),
                            comment: None,
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
            comment: r_comment.clone(),
            bind: Bind::Unix {
                path: r_sock,
                accept_proxy: true,
            },
            mode,
            acls: Vec::new(),
            use_backends: Vec::new(),
            default_backend: Some(r_name.clone()),
        });
        backends.push(
            route_backend(r, r_name, r_comment, mode, sticky_instance, opts, memo)
                .map_err(in_route)?,
        );
    }
    frontends[main_at].acls = acls
        .into_iter()
        .map(|criterion| memo.acl(criterion))
        .collect();
    Ok(())
}

/// `parts` joined as shared text (one allocation when they fit on the stack).
fn text(parts: &[&str]) -> std::sync::Arc<str> {
    crate::haproxy::text::joined(parts, |text| text.into())
}

pub(super) fn route_backend<'a>(
    r: &'a ResolvedRoute,
    name: Ident,
    comment: std::sync::Arc<str>,
    mode: Mode,
    sticky_instance: bool,
    opts: &RenderOptions,
    memo: &mut Memo<'a>,
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
    let mut servers: Vec<Server> = Vec::with_capacity(r.targets.len());
    for t in &r.targets {
        let mut server_name = Ident::sanitized(&t.name);
        let mut n = 1;
        while servers.iter().any(|s| s.name == server_name) {
            n += 1;
            server_name = Ident::sanitized(&format!(
                "{}-{n}",
                t.name.chars().take(Ident::MAX_LEN - 8).collect::<String>()
            ));
        }
        servers.push(Server {
            cookie: (sticky_instance && http).then(|| server_name.clone()),
            name: server_name,
            comment: (!Ident::is_valid(&t.name)).then(|| t.name.as_str().into()),
            address: memo.address(&t.host, t.port)?,
            weight: 100,
            send_proxy: false,
            check: opts.health_checks,
        });
    }
    Ok(Backend {
        cookie: (sticky_instance && http).then(|| name.clone()),
        name,
        comment,
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
pub(super) fn rewrite(path: &str, condition: &str) -> Result<SetPath, RenderErrorKind> {
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

pub(super) fn virtual_hosts(
    config: &mut Config,
    addr: SocketAddr,
    opts: &RenderOptions,
    memo: &Memo<'_>,
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
        bind: Bind::Tcp(addr),
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
        let condition: std::sync::Arc<str> = criteria
            .iter()
            .map(Criterion::acl_name)
            .collect::<Vec<_>>()
            .join(" or ")
            .into();
        fe.acls.extend(criteria.into_iter().map(Acl::new));
        fe.use_backends.push(UseBackend {
            backend: be.clone(),
            condition: Some(condition),
        });
        // A gateway without a port of its own listens on a socket only.
        let (address, send_proxy) = match g.port {
            0 => match Ident::new(&g.lookup_name).map(|n| memo.socket(&n)) {
                Ok(Ok(path)) => (Address::Unix(path), true),
                _ => continue,
            },
            port => (
                Address::Tcp {
                    host: target.to_string().into(),
                    port,
                },
                false,
            ),
        };
        config.backends.push(Backend {
            name: be.clone(),
            comment: text(&["virtual hosts of ", &g.name]),
            mode: Mode::Http,
            balance: Algorithm::RoundRobin,
            cookie: None,
            set_paths: Vec::new(),
            forward_for: true,
            forwarded_port: true,
            servers: vec![Server {
                name: be,
                comment: None,
                address,
                weight: 100,
                send_proxy,
                check: false,
                cookie: None,
            }],
        });
    }
    config.frontends.push(fe);
}
