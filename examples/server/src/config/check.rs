//! What a configuration must satisfy beyond its types: kinds this build has, addresses,
//! ranges, tokens, and the settings that go together.

use super::*;

/// Whether `token` can be sent in an `Authorization` header: visible ASCII, no spaces, at
/// least 8 characters. `key` names the setting in the message.
///
/// ```
/// use vamp_server::config::check_token;
/// assert!(check_token("server.token", "a-long-secret").is_ok());
/// assert!(check_token("server.token", "two\nlines").unwrap_err().contains("server.token"));
/// ```
///
/// # Errors
/// What is wrong with the token, naming `key`.
pub fn check_token(key: &str, token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err(format!(
            "{key} is empty: leave it out for no authentication"
        ));
    }
    if let Some(c) = token.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "{key} holds {}: a token must be visible ASCII without spaces, or no client can send it in an Authorization header",
            if c.is_control() {
                format!("the control character U+{:04X}", u32::from(c))
            } else {
                format!("'{c}'")
            }
        ));
    }
    if token.len() < 8 {
        return Err(format!(
            "{key} is {} characters long: use at least 8 (e.g. `openssl rand -hex 16`)",
            token.len()
        ));
    }
    Ok(())
}

/// The ports of `range` that an outgoing connection may be given by the kernel: those inside
/// `ephemeral` (Linux: `net.ipv4.ip_local_port_range`, 32768–60999 by default) and not in
/// `reserved` (`net.ipv4.ip_local_reserved_ports`). A gateway or instance port among them can
/// be held by any client socket of the machine at the moment it is bound, and the bind fails.
///
/// ```
/// use vamp_server::config::ports_open_to_clients;
/// assert_eq!(ports_open_to_clients(40000..=45000, 32768..=60999, &[]), 5001);
/// assert_eq!(ports_open_to_clients(40000..=45000, 32768..=60999, &[40000..=44999]), 1);
/// assert_eq!(ports_open_to_clients(20000..=24999, 32768..=60999, &[]), 0);
/// ```
#[must_use]
pub fn ports_open_to_clients(
    range: std::ops::RangeInclusive<u16>,
    ephemeral: std::ops::RangeInclusive<u16>,
    reserved: &[std::ops::RangeInclusive<u16>],
) -> usize {
    let (first, last) = (
        (*range.start()).max(*ephemeral.start()),
        (*range.end()).min(*ephemeral.end()),
    );
    (first..=last)
        .filter(|p| !reserved.iter().any(|r| r.contains(p)))
        .count()
}

/// The kernel's ephemeral port range and its reserved ports, read from `/proc` (Linux);
/// `None` where they cannot be read.
#[must_use]
pub fn kernel_client_ports() -> Option<(
    std::ops::RangeInclusive<u16>,
    Vec<std::ops::RangeInclusive<u16>>,
)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(str::parse::<u16>);
    let (Some(Ok(first)), Some(Ok(last))) = (bounds.next(), bounds.next()) else {
        return None;
    };
    // "40000-45000,50000" (or empty): ranges and single ports, comma-separated.
    let reserved = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_reserved_ports")
        .unwrap_or_default()
        .trim()
        .split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some(a.trim().parse().ok()?..=b.trim().parse().ok()?),
            None => part.trim().parse().ok().map(|p| p..=p),
        })
        .collect();
    Some((first..=last, reserved))
}

/// The settings whose ports an outgoing connection can take, each as a warning that names
/// the key and the two fixes; empty when there are none or `/proc` cannot be read.
#[must_use]
pub fn client_port_warnings(config: &ServerConfig) -> Vec<String> {
    let Some((ephemeral, reserved)) = kernel_client_ports() else {
        return Vec::new();
    };
    [
        ("driver.ports", config.driver.ports.as_str()),
        ("gateways.ports", config.gateways.ports.as_str()),
    ]
    .into_iter()
    .filter_map(|(key, text)| {
        let range = port_range(text).ok()?;
        let open = ports_open_to_clients(range.clone(), ephemeral.clone(), &reserved);
        (open > 0).then(|| {
            format!(
                "{key} = {text}: {open} of its ports lie in the kernel's range for outgoing connections ({}-{}, net.ipv4.ip_local_port_range), where any client socket of this machine can hold one when it is bound; choose a range below {} (e.g. {key} = \"{}\") or reserve it (sysctl net.ipv4.ip_local_reserved_ports={}-{})",
                ephemeral.start(),
                ephemeral.end(),
                ephemeral.start(),
                suggestion(key),
                range.start(),
                range.end(),
            )
        })
    })
    .collect()
}

/// A range of the same use outside Linux's default ephemeral range: the default.
fn suggestion(key: &str) -> String {
    if key == "driver.ports" {
        Driver::default().ports
    } else {
        Gateways::default().ports
    }
}

/// `first-last` as a port range.
///
/// ```
/// assert_eq!(vamp_server::config::port_range("40000-45000").unwrap(), 40000..=45000);
/// assert!(vamp_server::config::port_range("45000-40000").is_err());
/// ```
pub fn port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("'{text}' is not a port range like 40000-45000"))?;
    let first: u16 = first
        .trim()
        .parse()
        .map_err(|_| format!("'{first}' is not a port"))?;
    let last: u16 = last
        .trim()
        .parse()
        .map_err(|_| format!("'{last}' is not a port"))?;
    if first == 0 || first > last {
        return Err(format!("'{text}': the first port must be 1..=last"));
    }
    Ok(first..=last)
}

impl ServerConfig {
    /// Values that parse but cannot be used.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let fail = |message: String| Err(invalid("configuration", message));
        let kinds = [
            ("driver.kind", self.driver.kind(), available::DRIVERS),
            (
                "persistence.kind",
                self.persistence.kind.as_str(),
                available::PERSISTENCES,
            ),
            (
                "key_value.kind",
                self.key_value.kind.as_str(),
                available::KEY_VALUES,
            ),
            ("router.kind", self.router.kind.as_str(), available::ROUTERS),
        ];
        for (key, value, known) in kinds {
            let built: Vec<&str> = known.iter().filter(|(_, b)| *b).map(|(k, _)| *k).collect();
            match known.iter().find(|(k, _)| *k == value) {
                Some((_, true)) => {}
                Some((_, false)) => {
                    return fail(format!(
                        "{key} = '{value}' is not in this build: rebuild with `--features {}` (this build has: {})",
                        feature_of(value),
                        built.join(", ")
                    ));
                }
                None => {
                    return fail(format!(
                        "{key} = '{value}' is not a choice (choose one of: {})",
                        built.join(", ")
                    ));
                }
            }
        }
        let needs_ip = matches!(self.router.kind.as_str(), "embedded" | "haproxy-local");
        if needs_ip && self.gateways.host.parse::<std::net::IpAddr>().is_err() {
            return fail(format!(
                "gateways.host = '{}' is not an IP address (the {} router binds it, e.g. 127.0.0.1)",
                self.gateways.host, self.router.kind
            ));
        }
        if let Err(e) = self.gateways.vhost_address() {
            return fail(e);
        }
        if matches!(self.persistence.kind.as_str(), "postgres" | "elasticsearch")
            && self.persistence.url.as_deref().is_none_or(str::is_empty)
        {
            let example = if self.persistence.kind == "postgres" {
                "postgres://vamp@127.0.0.1:5432/vamp"
            } else {
                "http://127.0.0.1:9200"
            };
            return fail(format!(
                "persistence.kind = '{}' needs persistence.url (e.g. {example})",
                self.persistence.kind
            ));
        }
        if self.key_value.kind != "memory" && self.key_value.servers.trim().is_empty() {
            return fail(format!(
                "key_value.kind = '{}' needs key_value.servers (e.g. {})",
                self.key_value.kind,
                match self.key_value.kind.as_str() {
                    "etcd" => "http://127.0.0.1:2379",
                    "zookeeper" => "127.0.0.1:2181",
                    _ => "http://127.0.0.1:8500",
                }
            ));
        }
        if self.key_value.cert.is_some() != self.key_value.key.is_some() {
            return fail(
                "key_value.cert and key_value.key go together (a client certificate and its key)"
                    .into(),
            );
        }
        let tls = self.key_value.ca.is_some() || self.key_value.cert.is_some();
        if tls && (self.key_value.kind != "etcd" || !cfg!(feature = "etcd-tls")) {
            return fail(format!(
                "key_value.ca/cert/key are for etcd over TLS (key_value.kind = 'etcd', vamp-server built with --features etcd-tls); key_value.kind is '{}'",
                self.key_value.kind
            ));
        }
        if self.router.kind == "haproxy-kv" && self.key_value.kind == "memory" {
            return fail(
                "router.kind = 'haproxy-kv' publishes gateways for agents in other processes: set key_value.kind to etcd, zookeeper or consul".into(),
            );
        }
        if !self.key_value.root.starts_with('/') || self.key_value.root.ends_with('/') {
            return fail(format!(
                "key_value.root = '{}' must start with '/' and not end with one (e.g. /vamp/default)",
                self.key_value.root
            ));
        }
        match self.election.kind.as_str() {
            "none" => {}
            "postgres" if self.persistence.kind == "postgres" => {}
            kind @ ("etcd" | "zookeeper") if self.key_value.kind == kind => {}
            "postgres" | "etcd" | "zookeeper" => {
                let needs = if self.election.kind == "postgres" {
                    "persistence.kind = 'postgres'"
                } else if self.election.kind == "etcd" {
                    "key_value.kind = 'etcd'"
                } else {
                    "key_value.kind = 'zookeeper'"
                };
                return fail(format!(
                    "election.kind = '{}' elects on the store the servers share: it needs {needs}",
                    self.election.kind
                ));
            }
            other => {
                return fail(format!(
                    "election.kind = '{other}' is not a choice (choose one of: none, postgres, etcd, zookeeper)"
                ));
            }
        }
        if self.election.kind != "none" {
            if self.election.ttl < 2 {
                return fail(format!(
                    "election.ttl = {}: a lease needs at least 2 seconds",
                    self.election.ttl
                ));
            }
            if self.driver.kind() == "process" {
                return fail(
                    "election.kind is set, but driver.kind = 'process' runs services on this server alone: with several servers, services must run where every server can see them (driver.kind = 'docker' or 'swarm')".into(),
                );
            }
            // docs/ha.md: PostgreSQL is the one persistence that tells every server of the
            // others' writes (LISTEN/NOTIFY), fences the leader's writes in their own
            // transaction and serializes port claims across servers.
            if self.persistence.kind != "postgres" {
                let why = if matches!(self.persistence.kind.as_str(), "memory" | "sqlite") {
                    "is this server's alone"
                } else {
                    "cannot fence a leader's writes nor tell the other servers of a write"
                };
                return fail(format!(
                    "election.kind is set, but persistence.kind = '{}' {why}: servers that elect a leader share a PostgreSQL persistence (persistence.kind = 'postgres')",
                    self.persistence.kind
                ));
            }
        }
        if self.synchronization.period == 0 {
            return fail(
                "synchronization.period = 0: the reconciler needs a period of at least 1 second"
                    .into(),
            );
        }
        port_range(&self.driver.ports)
            .map_err(|e| invalid("configuration", format!("driver.ports: {e}")))?;
        port_range(&self.gateways.ports)
            .map_err(|e| invalid("configuration", format!("gateways.ports: {e}")))?;
        for (name, token) in self.server.all_tokens() {
            let key = if name == "token" {
                "server.token".to_owned()
            } else {
                format!("server.tokens.{name}")
            };
            check_token(&key, token).map_err(|m| invalid("configuration", m))?;
        }
        for origin in &self.server.cors_origins {
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return fail(format!(
                    "server.cors_origins: '{origin}' is not an origin: write scheme://host[:port] with no path, e.g. https://ui.example.com"
                ));
            }
        }
        if !self.server.listen.ip().is_loopback()
            && !self.server.has_tokens()
            && !self.server.insecure
        {
            return fail(format!(
                "server.listen = {} is reachable from other machines, and whoever reaches the API can run programs through it: set server.token (or server.tokens), or server.insecure = true to serve without one",
                self.server.listen
            ));
        }
        if self.server.header_timeout == 0 || self.server.idle_timeout == 0 {
            return fail(
                "server.header_timeout and server.idle_timeout must be at least 1 second".into(),
            );
        }
        if self.server.max_connections == 0 || self.router.max_connections == 0 {
            return fail(
                "server.max_connections and router.max_connections must be at least 1".into(),
            );
        }
        if self.router.header_timeout == 0 || self.router.idle_timeout == 0 {
            return fail(
                "router.header_timeout and router.idle_timeout must be at least 1 second".into(),
            );
        }
        port_range(&self.gateways.allowed_ports)
            .map_err(|e| invalid("configuration", format!("gateways.allowed_ports: {e}")))?;
        let l = &self.limits;
        if l.instances == 0
            || l.deployment_instances == 0
            || l.gateways == 0
            || l.routes == 0
            || l.name_length == 0
            || l.memory_mb == 0
            || !(l.cpu > 0.0 && l.cpu.is_finite())
        {
            return fail("limits: every limit must be above 0".into());
        }
        Ok(())
    }
}
