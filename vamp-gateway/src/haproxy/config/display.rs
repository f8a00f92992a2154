//! The configuration as HAProxy reads it: every value already typed and quoted, so writing
//! it out cannot inject a line.

use super::*;

impl Config {
    /// The configuration as HAProxy reads it (what `to_string` gives), written into a buffer
    /// sized for it up front: a render of thousands of gateways would otherwise spend its time
    /// growing and copying the text.
    ///
    /// ```
    /// use vamp_gateway::haproxy::render::{RenderOptions, render};
    /// let text = render(&[], &RenderOptions::default()).config.text();
    /// assert!(text.starts_with("# Rendered by vamp-gateway"));
    /// ```
    #[must_use]
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out =
            String::with_capacity(1024 + 640 * (self.frontends.len() + self.backends.len()));
        let _ = write!(out, "{self}");
        out
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.global;
        f.write_str("# Rendered by vamp-gateway; edits are overwritten.\nglobal\n")?;
        if g.master_worker {
            f.write_str("    master-worker\n")?;
        }
        writeln!(f, "    maxconn {}", g.maxconn)?;
        writeln!(f, "    hard-stop-after {}s", g.hard_stop_after_s)?;
        if let Some(sock) = &g.admin_socket {
            writeln!(
                f,
                "    stats socket {} mode 600 level admin expose-fd listeners",
                sock.quoted("")
            )?;
        }
        if let Some(file) = &g.server_state_file {
            writeln!(f, "    server-state-file {}", file.quoted(""))?;
        }
        let d = &self.defaults;
        f.write_str("\ndefaults\n    mode http\n    option dontlognull\n    option redispatch\n")?;
        writeln!(f, "    retries {}", d.retries)?;
        f.write_str("    option http-keep-alive\n")?;
        writeln!(f, "    timeout connect {}ms", d.connect_ms)?;
        writeln!(f, "    timeout client {}ms", d.client_server_ms)?;
        writeln!(f, "    timeout server {}ms", d.client_server_ms)?;
        writeln!(f, "    timeout http-request {}ms", d.http_request_ms)?;
        writeln!(f, "    timeout check {}ms", d.connect_ms)?;
        f.write_str("    default-server init-addr last,libc,none\n")?;
        if g.server_state_file.is_some() {
            f.write_str("    load-server-state-from-file global\n")?;
        }
        for fe in &self.frontends {
            write!(f, "\n{fe}")?;
        }
        for be in &self.backends {
            write!(f, "\n{be}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# {}", Comment(&self.comment))?;
        writeln!(f, "frontend {}", self.name)?;
        for bind in &self.binds {
            match bind {
                Bind::Tcp(addr) => writeln!(f, "    bind {addr}")?,
                Bind::Unix { path, accept_proxy } => writeln!(
                    f,
                    "    bind {}{}",
                    path.quoted("unix@"),
                    if *accept_proxy { " accept-proxy" } else { "" }
                )?,
            }
        }
        writeln!(f, "    mode {}", self.mode)?;
        if self.mode == Mode::Http {
            // Idle keep-alive connections are closed after their response when an old
            // worker stops after a reload, instead of being cut (HAProxy 2.6).
            f.write_str("    option idle-close-on-response\n")?;
        }
        for acl in &self.acls {
            writeln!(f, "    acl {} {}", acl.criterion.acl_name(), acl.criterion)?;
        }
        for ub in &self.use_backends {
            match &ub.condition {
                Some(c) => writeln!(f, "    use_backend {} if {c}", ub.backend)?,
                None => writeln!(f, "    use_backend {}", ub.backend)?,
            }
        }
        if let Some(be) = &self.default_backend {
            writeln!(f, "    default_backend {be}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# {}", Comment(&self.comment))?;
        writeln!(f, "backend {}", self.name)?;
        writeln!(f, "    mode {}", self.mode)?;
        writeln!(f, "    balance {}", self.balance)?;
        if let Some(cookie) = &self.cookie {
            writeln!(f, "    cookie {cookie} insert indirect nocache")?;
        }
        for sp in &self.set_paths {
            writeln!(
                f,
                "    http-request set-path {} if {{ {} }}",
                sp.path, sp.condition
            )?;
        }
        if self.forward_for {
            f.write_str("    option forwardfor\n")?;
        }
        if self.forwarded_port {
            f.write_str("    http-request set-header X-Forwarded-Port %[dst_port]\n")?;
        }
        for s in &self.servers {
            write!(f, "    server {} ", s.name)?;
            match &s.address {
                Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}")?,
                Address::Tcp { host, port } => write!(f, "{host}:{port}")?,
                Address::Unix(path) => write!(f, "{}", path.quoted("unix@"))?,
            }
            write!(f, " weight {}", s.weight)?;
            if s.send_proxy {
                f.write_str(" send-proxy")?;
            }
            if s.check {
                f.write_str(" check inter 1s fall 2 rise 1")?;
            }
            if let Some(c) = &s.cookie {
                write!(f, " cookie {c}")?;
            }
            if !s.comment.is_empty() {
                write!(f, "  # {}", Comment(&s.comment))?;
            }
            f.write_str("\n")?;
        }
        Ok(())
    }
}
