//! The configuration as HAProxy reads it: every value already typed and quoted, so writing
//! it out cannot inject a line.
//!
//! Written piece by piece with `write_str` (numbers through `itoa`) into any [`fmt::Write`],
//! rather than with `writeln!` templates: 10 000 gateways are tens of megabytes of text, and
//! the formatting machinery's per-argument cost was a third of a render (issue 21).

use super::*;
use crate::haproxy::text::write_comment;

/// Writes a number without the formatting machinery.
fn num(w: &mut impl fmt::Write, n: impl itoa::Integer) -> fmt::Result {
    w.write_str(itoa::Buffer::new().format(n))
}

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
        let sections = self.frontends.len() + self.backends.len();
        let threads = crate::haproxy::cores_for(sections, 4 * PARALLEL_FROM);
        let mut out = String::with_capacity(1024 + 400 * sections);
        if threads == 1 {
            let _ = self.write_to(&mut out);
            return out;
        }
        // Many sections: each core writes a share of them, joined in order.
        let _ = self.write_head(&mut out);
        let sections: Vec<Section<'_>> = self
            .frontends
            .iter()
            .map(Section::Frontend)
            .chain(self.backends.iter().map(Section::Backend))
            .collect();
        // The first share straight into `out` on this thread; the others beside it, appended.
        let mut chunks = sections.chunks(sections.len().div_ceil(threads));
        let first = chunks.next().unwrap_or_default();
        let parts: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .map(|part| {
                    scope.spawn(move || {
                        let mut text = String::with_capacity(400 * part.len());
                        for section in part {
                            let _ = section.write_to(&mut text);
                        }
                        text
                    })
                })
                .collect();
            for section in first {
                let _ = section.write_to(&mut out);
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for part in parts {
            out.push_str(&part);
        }
        out
    }

    fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        self.write_head(w)?;
        for fe in &self.frontends {
            Section::Frontend(fe).write_to(w)?;
        }
        for be in &self.backends {
            Section::Backend(be).write_to(w)?;
        }
        Ok(())
    }

    /// `global` and `defaults`.
    fn write_head(&self, w: &mut impl fmt::Write) -> fmt::Result {
        let g = &self.global;
        w.write_str("# Rendered by vamp-gateway; edits are overwritten.\nglobal\n")?;
        if g.master_worker {
            w.write_str("    master-worker\n")?;
        }
        w.write_str("    maxconn ")?;
        num(w, g.maxconn)?;
        w.write_str("\n    hard-stop-after ")?;
        num(w, g.hard_stop_after_s)?;
        w.write_str("s\n")?;
        if let Some(sock) = &g.admin_socket {
            w.write_str("    stats socket ")?;
            sock.write_quoted("", w)?;
            w.write_str(" mode 600 level admin expose-fd listeners\n")?;
        }
        if let Some(file) = &g.server_state_file {
            w.write_str("    server-state-file ")?;
            file.write_quoted("", w)?;
            w.write_str("\n")?;
        }
        let d = &self.defaults;
        w.write_str("\ndefaults\n    mode http\n    option dontlognull\n    option redispatch\n")?;
        w.write_str("    retries ")?;
        num(w, d.retries)?;
        w.write_str("\n    option http-keep-alive\n")?;
        for (what, ms) in [
            ("connect", d.connect_ms),
            ("client", d.client_server_ms),
            ("server", d.client_server_ms),
            ("http-request", d.http_request_ms),
            ("check", d.connect_ms),
        ] {
            w.write_str("    timeout ")?;
            w.write_str(what)?;
            w.write_str(" ")?;
            num(w, ms)?;
            w.write_str("ms\n")?;
        }
        w.write_str("    default-server init-addr last,libc,none\n")?;
        if g.server_state_file.is_some() {
            w.write_str("    load-server-state-from-file global\n")?;
        }
        Ok(())
    }
}

/// From this many sections on (×4), [`Config::text`] uses every core (at most 4).
const PARALLEL_FROM: usize = 512;

/// One section after the head, preceded by a blank line.
#[derive(Clone, Copy)]
enum Section<'a> {
    Frontend(&'a Frontend),
    Backend(&'a Backend),
}

impl Section<'_> {
    fn write_to(self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str("\n")?;
        match self {
            Section::Frontend(fe) => fe.write_to(w),
            Section::Backend(be) => be.write_to(w),
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Frontend {
    fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str("# ")?;
        write_comment(&self.comment, w)?;
        w.write_str("\nfrontend ")?;
        w.write_str(self.name.as_str())?;
        w.write_str("\n")?;
        w.write_str("    bind ")?;
        match &self.bind {
            Bind::Tcp(addr) => write!(w, "{addr}")?,
            Bind::Unix { path, accept_proxy } => {
                path.write_quoted("unix@", w)?;
                if *accept_proxy {
                    w.write_str(" accept-proxy")?;
                }
            }
        }
        w.write_str("\n")?;
        w.write_str("    mode ")?;
        w.write_str(self.mode.as_str())?;
        w.write_str("\n")?;
        if self.mode == Mode::Http {
            // Idle keep-alive connections are closed after their response when an old
            // worker stops after a reload, instead of being cut (HAProxy 2.6).
            w.write_str("    option idle-close-on-response\n")?;
        }
        for acl in &self.acls {
            w.write_str("    acl ")?;
            w.write_str(acl.name.as_str())?;
            w.write_str(" ")?;
            w.write_str(acl.criterion.as_str())?;
            w.write_str("\n")?;
        }
        for ub in &self.use_backends {
            w.write_str("    use_backend ")?;
            w.write_str(ub.backend.as_str())?;
            if let Some(c) = &ub.condition {
                w.write_str(" if ")?;
                w.write_str(c)?;
            }
            w.write_str("\n")?;
        }
        if let Some(be) = &self.default_backend {
            w.write_str("    default_backend ")?;
            w.write_str(be.as_str())?;
            w.write_str("\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Backend {
    fn write_to(&self, w: &mut impl fmt::Write) -> fmt::Result {
        w.write_str("# ")?;
        write_comment(&self.comment, w)?;
        w.write_str("\nbackend ")?;
        w.write_str(self.name.as_str())?;
        w.write_str("\n    mode ")?;
        w.write_str(self.mode.as_str())?;
        w.write_str("\n    balance ")?;
        w.write_str(self.balance.as_str())?;
        w.write_str("\n")?;
        if let Some(cookie) = &self.cookie {
            w.write_str("    cookie ")?;
            w.write_str(cookie.as_str())?;
            w.write_str(" insert indirect nocache\n")?;
        }
        for sp in &self.set_paths {
            writeln!(
                w,
                "    http-request set-path {} if {{ {} }}",
                sp.path, sp.condition
            )?;
        }
        if self.forward_for {
            w.write_str("    option forwardfor\n")?;
        }
        if self.forwarded_port {
            w.write_str("    http-request set-header X-Forwarded-Port %[dst_port]\n")?;
        }
        for s in &self.servers {
            w.write_str("    server ")?;
            w.write_str(s.name.as_str())?;
            w.write_str(" ")?;
            match &s.address {
                Address::Tcp { host, port } => {
                    let v6 = host.contains(':');
                    if v6 {
                        w.write_str("[")?;
                    }
                    w.write_str(host)?;
                    w.write_str(if v6 { "]:" } else { ":" })?;
                    num(w, *port)?;
                }
                Address::Unix(path) => path.write_quoted("unix@", w)?,
            }
            w.write_str(" weight ")?;
            num(w, s.weight)?;
            if s.send_proxy {
                w.write_str(" send-proxy")?;
            }
            if s.check {
                w.write_str(" check inter 1s fall 2 rise 1")?;
            }
            if let Some(c) = &s.cookie {
                w.write_str(" cookie ")?;
                w.write_str(c.as_str())?;
            }
            if let Some(comment) = &s.comment {
                w.write_str("  # ")?;
                write_comment(comment, w)?;
            }
            w.write_str("\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}
