//! A typed HAProxy configuration and its renderer.
//!
//! Every field holds checked text ([`Ident`], [`Quoted`], [`Criterion`], paths checked by
//! [`SocketPath`]), so [`Config`]'s `Display` cannot produce a line a user wrote. The shape
//! follows the Vamp layout (spec §4.2.2); [`render`](super::render) fills it from gateways.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::acl::Criterion;
use super::text::{Ident, Quoted, TextError};

mod display;

/// A whole configuration file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// The `global` section.
    pub global: Global,
    /// The `defaults` section.
    pub defaults: Defaults,
    /// Frontends, in order.
    pub frontends: Vec<Frontend>,
    /// Backends, in order.
    pub backends: Vec<Backend>,
}

/// The `global` section: the process-wide settings the agent and process control rely on.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// Run as master + worker (needed for seamless reloads through the master CLI).
    pub master_worker: bool,
    /// The admin socket (`stats socket … level admin expose-fd listeners`): runtime API and
    /// listener hand-over on reload.
    pub admin_socket: Option<SocketPath>,
    /// Connections per process.
    pub maxconn: u32,
    /// How long an old worker may finish its connections after a reload.
    pub hard_stop_after_s: u32,
    /// Where server states (weights, up/down) are kept across reloads.
    pub server_state_file: Option<SocketPath>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            master_worker: true,
            admin_socket: None,
            maxconn: 4096,
            hard_stop_after_s: 30,
            server_state_file: None,
        }
    }
}

/// The `defaults` section (spec §4.4 base config, with shorter timeouts for tests possible).
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    /// `timeout connect`, ms.
    pub connect_ms: u32,
    /// `timeout client` / `timeout server`, ms.
    pub client_server_ms: u32,
    /// `timeout http-request`, ms.
    pub http_request_ms: u32,
    /// Connection retries (`retries`), with `option redispatch`.
    pub retries: u8,
}

impl Defaults {
    /// Short timeouts for loopback set-ups and tests: connect 2 s, client/server 10 s, request
    /// headers 5 s, 3 retries — a dead backend is given up on quickly.
    pub fn short() -> Self {
        Defaults {
            connect_ms: 2_000,
            client_server_ms: 10_000,
            http_request_ms: 5_000,
            retries: 3,
        }
    }
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            connect_ms: 5_000,
            client_server_ms: 50_000,
            http_request_ms: 5_000,
            retries: 3,
        }
    }
}

/// `mode http` or `mode tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Layer 7.
    Http,
    /// Layer 4.
    Tcp,
}

impl Mode {
    /// `http` or `tcp`, as HAProxy writes it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Tcp => "tcp",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A filesystem path for a unix socket or state file: no control characters, and short
/// enough for `sun_path` (107 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketPath(std::sync::Arc<str>);

impl SocketPath {
    /// The longest path a unix socket address holds.
    pub const MAX_LEN: usize = 107;

    /// Checks `path`.
    ///
    /// # Errors
    /// [`TextError::ControlCharacter`], or [`TextError::BadIdent`] (naming the path) when it
    /// is not valid UTF-8 or too long.
    pub fn new(path: impl Into<PathBuf>) -> Result<Self, TextError> {
        let path = path.into();
        let text = path
            .into_os_string()
            .into_string()
            .map_err(|p| TextError::BadIdent {
                text: PathBuf::from(p).display().to_string(),
            })?;
        Self::from_text(text)
    }

    /// [`new`](Self::new) for a path that is text already.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn from_text(text: String) -> Result<Self, TextError> {
        let Quoted(text) = Quoted::new("socket path", text)?;
        if text.len() > Self::MAX_LEN {
            return Err(TextError::BadIdent {
                text: format!("{text} (longer than {} bytes)", Self::MAX_LEN),
            });
        }
        Ok(SocketPath(text.into()))
    }

    /// A path in a directory checked with [`from_text`](Self::from_text), named by an
    /// [`Ident`](crate::haproxy::text::Ident): only its length is left to check.
    pub(crate) fn from_checked_dir(text: &str) -> Result<Self, TextError> {
        if text.len() > Self::MAX_LEN {
            return Err(TextError::BadIdent {
                text: format!("{text} (longer than {} bytes)", Self::MAX_LEN),
            });
        }
        Ok(SocketPath(text.into()))
    }

    /// The path.
    pub fn path(&self) -> &Path {
        Path::new(&*self.0)
    }

    /// Writes the path quoted, after `prefix` (inside the quotes), as [`Quoted`] does.
    fn write_quoted(&self, prefix: &str, f: &mut impl fmt::Write) -> fmt::Result {
        f.write_str("'")?;
        f.write_str(prefix)?;
        crate::haproxy::text::write_quoted_inner(&self.0, f)?;
        f.write_str("'")
    }
}

/// Where a frontend listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bind {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket; `accept_proxy` reads a PROXY protocol header first.
    Unix {
        /// The socket.
        path: SocketPath,
        /// Expect the PROXY protocol.
        accept_proxy: bool,
    },
}

/// `acl <name> <criterion>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// The ACL name, derived from the criterion ([`Criterion::acl_name`]).
    pub name: Ident,
    /// The criterion.
    pub criterion: Criterion,
}

impl Acl {
    /// The ACL of `criterion`, named after it.
    #[must_use]
    pub fn new(criterion: Criterion) -> Self {
        Acl {
            name: Ident::sanitized(&criterion.acl_name()),
            criterion,
        }
    }
}

/// `use_backend <backend> [if <condition>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseBackend {
    /// The backend.
    pub backend: Ident,
    /// ACL names joined as HAProxy conditions (`a b or !c`); `None` = always. Shared text:
    /// many gateways test the same condition.
    pub condition: Option<Arc<str>>,
}

/// A frontend.
#[derive(Debug, Clone, PartialEq)]
pub struct Frontend {
    /// Name (a lookup name, spec §4.2.1).
    pub name: Ident,
    /// What it is, for humans (rendered as a comment). Shared text: a route's frontend and
    /// backend say the same.
    pub comment: Arc<str>,
    /// Where it listens (one listener each in Vamp's layout).
    pub bind: Bind,
    /// Mode.
    pub mode: Mode,
    /// ACLs.
    pub acls: Vec<Acl>,
    /// Switching rules, first match wins.
    pub use_backends: Vec<UseBackend>,
    /// Where everything else goes.
    pub default_backend: Option<Ident>,
}

/// `balance` algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Smooth weighted round robin.
    RoundRobin,
    /// Fewest connections.
    LeastConn,
    /// Hash of the client address.
    Source,
    /// Fill the first server first.
    First,
    /// Static weighted round robin.
    StaticRr,
    /// Random, weighted.
    Random,
    /// Hash of the URI.
    Uri,
}

impl Algorithm {
    /// The algorithm with HAProxy's name `name`, if it takes no arguments.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "roundrobin" => Algorithm::RoundRobin,
            "leastconn" => Algorithm::LeastConn,
            "source" => Algorithm::Source,
            "first" => Algorithm::First,
            "static-rr" => Algorithm::StaticRr,
            "random" => Algorithm::Random,
            "uri" => Algorithm::Uri,
            _ => return None,
        })
    }
}

impl Algorithm {
    /// The name HAProxy reads after `balance`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "roundrobin",
            Algorithm::LeastConn => "leastconn",
            Algorithm::Source => "source",
            Algorithm::First => "first",
            Algorithm::StaticRr => "static-rr",
            Algorithm::Random => "random",
            Algorithm::Uri => "uri",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `host:port`; `host` is an IP address or a DNS name (checked).
    Tcp {
        /// IP or DNS name (shared text: a render names each instance host many times).
        host: std::sync::Arc<str>,
        /// Port.
        port: u16,
    },
    /// A unix socket (a route frontend of this config).
    Unix(SocketPath),
}

impl Address {
    /// A TCP address; `host` must be an IP address or a DNS name.
    ///
    /// # Errors
    /// [`TextError::BadIdent`] naming the host.
    pub fn tcp(host: &str, port: u16) -> Result<Self, TextError> {
        let ip = host.parse::<std::net::IpAddr>().is_ok();
        let dns = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if ip || dns {
            Ok(Address::Tcp {
                host: host.into(),
                port,
            })
        } else {
            Err(TextError::BadIdent {
                text: format!("{host} (not an IP address or DNS name)"),
            })
        }
    }
}

/// A server line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Name, unique in its backend.
    pub name: Ident,
    /// For humans (rendered as a comment after the line), if anything.
    pub comment: Option<Arc<str>>,
    /// Address.
    pub address: Address,
    /// Weight 0–256 (0 = no traffic from balancing).
    pub weight: u16,
    /// Send a PROXY protocol header (hops to route frontends).
    pub send_proxy: bool,
    /// Health-check it.
    pub check: bool,
    /// The sticky cookie value naming it.
    pub cookie: Option<Ident>,
}

/// `http-request set-path <path> if { <criterion> }` (spec §1.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetPath {
    /// The new path (a checked log-format string).
    pub path: Quoted,
    /// When.
    pub condition: Criterion,
}

/// A backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Backend {
    /// Name (`o_…`, `im_…` or a route lookup name).
    pub name: Ident,
    /// For humans (rendered as a comment).
    pub comment: Arc<str>,
    /// Mode.
    pub mode: Mode,
    /// Algorithm.
    pub balance: Algorithm,
    /// `cookie <name> insert indirect nocache` for sticky sessions.
    pub cookie: Option<Ident>,
    /// Path rewrites.
    pub set_paths: Vec<SetPath>,
    /// `option forwardfor` (http).
    pub forward_for: bool,
    /// `http-request set-header X-Forwarded-Port %[dst_port]` (virtual-host backends).
    pub forwarded_port: bool,
    /// Servers.
    pub servers: Vec<Server>,
}
