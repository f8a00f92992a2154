//! HAProxy's runtime API over its admin socket: weights, server states and statistics
//! without a reload.
//!
//! One command (or a `;`-separated batch) per connection, as `socat` does: write, close the
//! write side, read to the end. Every call is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::text::{Ident, TextError};

/// A runtime-API call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket could not be reached (HAProxy down or restarting).
    #[error("cannot reach the HAProxy socket {}: {source}", path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No answer in time.
    #[error("HAProxy did not answer '{command}' within {timeout:?}")]
    Timeout {
        /// The command.
        command: String,
        /// The limit.
        timeout: Duration,
    },
    /// HAProxy refused the command.
    #[error("HAProxy refused '{command}': {answer}")]
    Refused {
        /// The command.
        command: String,
        /// Its answer.
        answer: String,
    },
    /// A backend or server name that is not an HAProxy name.
    #[error(transparent)]
    Name(#[from] TextError),
    /// An answer that could not be read.
    #[error("unexpected answer to '{command}': {answer}")]
    Unexpected {
        /// The command.
        command: String,
        /// The answer.
        answer: String,
    },
}

/// The administrative state of a server (`set server <b>/<s> state …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Takes traffic.
    Ready,
    /// Keeps its sessions, takes no new ones.
    Drain,
    /// Out of service.
    Maint,
}

/// One row of `show stat`: a frontend, backend or server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatRow {
    /// Proxy name.
    pub proxy: String,
    /// Server name, or `FRONTEND` / `BACKEND`.
    pub server: String,
    /// `UP`, `DOWN`, `OPEN`, `MAINT`, … (empty when not applicable).
    pub status: String,
    /// Current weight (servers and backends).
    pub weight: Option<u32>,
    /// Sessions handled in total.
    pub sessions_total: u64,
    /// HTTP requests handled in total (HTTP frontends and backends; `None` otherwise).
    pub requests_total: Option<u64>,
    /// HTTP responses with a 5xx status.
    pub http_5xx: u64,
    /// Connection errors to servers.
    pub connect_errors: u64,
    /// Response errors from servers.
    pub response_errors: u64,
    /// The average response time of the last 1 024 requests, ms (`rtime`; backends and
    /// servers of HTTP proxies).
    pub response_time_ms: Option<u64>,
}

/// A client of one admin socket.
#[derive(Debug, Clone)]
pub struct RuntimeApi {
    socket: PathBuf,
    timeout: Duration,
}

impl RuntimeApi {
    /// A client of the socket at `socket`, with a 5 s limit per call.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        RuntimeApi {
            socket: socket.into(),
            timeout: Duration::from_secs(5),
        }
    }

    /// The same client with another limit per call.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one command line (commands may be joined with `;`) and returns the answer.
    ///
    /// # Errors
    /// [`RuntimeError::Connect`], [`RuntimeError::Timeout`], or
    /// [`RuntimeError::Unexpected`] for a command with a line break.
    pub async fn command(&self, command: &str) -> Result<String, RuntimeError> {
        if command.contains(['\n', '\r']) {
            return Err(RuntimeError::Unexpected {
                command: command.escape_debug().to_string(),
                answer: "a command must be one line".into(),
            });
        }
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await.map_err(|source| {
                RuntimeError::Connect {
                    path: self.socket.clone(),
                    source,
                }
            })?;
            let io = |source| RuntimeError::Connect {
                path: self.socket.clone(),
                source,
            };
            stream
                .write_all(format!("{command}\n").as_bytes())
                .await
                .map_err(io)?;
            stream.shutdown().await.map_err(io)?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.map_err(io)?;
            Ok(answer)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| RuntimeError::Timeout {
                command: command.to_owned(),
                timeout: self.timeout,
            })?
    }

    /// Sends commands that answer nothing on success; any answer is HAProxy's refusal.
    async fn silent(&self, command: &str) -> Result<(), RuntimeError> {
        let answer = self.command(command).await?;
        let answer = answer.trim();
        if answer.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Refused {
                command: command.to_owned(),
                answer: answer.to_owned(),
            })
        }
    }

    /// Sets the weight of `server` in `backend` (0–256).
    ///
    /// # Errors
    /// [`RuntimeError::Refused`] for an unknown backend or server, and the socket errors.
    pub async fn set_weight(
        &self,
        backend: &str,
        server: &str,
        weight: u16,
    ) -> Result<(), RuntimeError> {
        self.set_weights(&[(backend, server, weight)]).await
    }

    /// Sets several weights in one exchange (one `;`-joined command line).
    ///
    /// # Errors
    /// As [`set_weight`](Self::set_weight); HAProxy runs the commands before the failing one.
    pub async fn set_weights(&self, weights: &[(&str, &str, u16)]) -> Result<(), RuntimeError> {
        if weights.is_empty() {
            return Ok(());
        }
        let mut line = Vec::with_capacity(weights.len());
        for (backend, server, weight) in weights {
            let (b, s) = (Ident::new(*backend)?, Ident::new(*server)?);
            line.push(format!("set weight {b}/{s} {}", (*weight).min(256)));
        }
        self.silent(&line.join(";")).await
    }

    /// The current and initial weight of `server` in `backend`.
    ///
    /// # Errors
    /// [`RuntimeError::Refused`] for an unknown server, and the socket errors.
    pub async fn weight(&self, backend: &str, server: &str) -> Result<(u16, u16), RuntimeError> {
        let command = format!(
            "get weight {}/{}",
            Ident::new(backend)?,
            Ident::new(server)?
        );
        let answer = self.command(&command).await?;
        // "5 (initial 10)"
        let parsed = answer
            .trim()
            .split_once(" (initial ")
            .and_then(|(cur, init)| {
                Some((cur.parse().ok()?, init.strip_suffix(')')?.parse().ok()?))
            });
        parsed.ok_or(RuntimeError::Refused {
            command,
            answer: answer.trim().to_owned(),
        })
    }

    /// Sets the administrative state of a server.
    ///
    /// # Errors
    /// [`RuntimeError::Refused`] for an unknown server, and the socket errors.
    pub async fn set_state(
        &self,
        backend: &str,
        server: &str,
        state: ServerState,
    ) -> Result<(), RuntimeError> {
        let state = match state {
            ServerState::Ready => "ready",
            ServerState::Drain => "drain",
            ServerState::Maint => "maint",
        };
        self.silent(&format!(
            "set server {}/{} state {state}",
            Ident::new(backend)?,
            Ident::new(server)?
        ))
        .await
    }

    /// `show servers state`: the text HAProxy reads back from its server-state file.
    ///
    /// # Errors
    /// The socket errors.
    pub async fn servers_state(&self) -> Result<String, RuntimeError> {
        self.command("show servers state").await
    }

    /// `show stat`: one row per frontend, backend and server.
    ///
    /// # Errors
    /// The socket errors, or [`RuntimeError::Unexpected`] if the CSV has no header.
    pub async fn stats(&self) -> Result<Vec<StatRow>, RuntimeError> {
        let answer = self.command("show stat").await?;
        parse_stats(&answer).ok_or_else(|| RuntimeError::Unexpected {
            command: "show stat".into(),
            answer: answer.lines().next().unwrap_or_default().to_owned(),
        })
    }
}

/// Reads `show stat` CSV (first line `# pxname,svname,…`).
fn parse_stats(csv: &str) -> Option<Vec<StatRow>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next()?.strip_prefix("# ")?.split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (px, sv) = (col("pxname")?, col("svname")?);
    let (status, weight, stot, h5, econ, eresp, req_tot, rtime) = (
        col("status"),
        col("weight"),
        col("stot"),
        col("hrsp_5xx"),
        col("econ"),
        col("eresp"),
        col("req_tot"),
        col("rtime"),
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let get = |i: Option<usize>| i.and_then(|i| fields.get(i)).copied().unwrap_or_default();
        let num = |i: Option<usize>| get(i).parse::<u64>().unwrap_or(0);
        rows.push(StatRow {
            proxy: get(Some(px)).to_owned(),
            server: get(Some(sv)).to_owned(),
            status: get(status).to_owned(),
            weight: get(weight).parse().ok(),
            sessions_total: num(stot),
            requests_total: get(req_tot).parse().ok(),
            http_5xx: num(h5),
            connect_errors: num(econ),
            response_errors: num(eresp),
            response_time_ms: get(rtime).parse().ok(),
        });
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_rows_are_read_by_column_name() {
        let csv = "# pxname,svname,stot,status,weight,hrsp_5xx,econ,eresp,req_tot,rtime,\n\
                   fe,FRONTEND,12,OPEN,,0,,,30,,\n\
                   be,s1,7,UP,10,2,1,0,,4,\n";
        let rows = parse_stats(csv).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].server, "s1");
        assert_eq!(rows[1].weight, Some(10));
        assert_eq!(rows[1].sessions_total, 7);
        assert_eq!(rows[1].http_5xx, 2);
        assert_eq!(rows[0].weight, None);
        assert_eq!(
            (rows[0].requests_total, rows[1].requests_total),
            (Some(30), None)
        );
        assert_eq!(
            (rows[0].response_time_ms, rows[1].response_time_ms),
            (None, Some(4))
        );
        assert!(parse_stats("Unknown command\n").is_none());
    }
}
