//! Commands that talk to a `vamp-server` over its REST API (spec §7.2).
//!
//! Exit codes scripts can rely on: 0 done; 1 the server refused the request (its message is
//! printed); 3 the server could not be reached or failed (5xx); 4 a deployment waited for
//! failed; 5 waiting timed out. Usage errors exit 2 (clap).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Exit code: the server refused the request.
pub const REFUSED: i32 = 1;
/// Exit code: the server could not be reached, or failed.
pub const UNREACHABLE: i32 = 3;
/// Exit code: a deployment waited for failed.
pub const FAILED: i32 = 4;
/// Exit code: waiting timed out.
pub const TIMED_OUT: i32 = 5;

/// A failed command: its exit code and what to tell the user.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code.
    pub code: i32,
    /// The message.
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// A table (lists) or YAML (one artifact).
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the server at `host` (e.g. `http://127.0.0.1:8080`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(host: &str, token: Option<String>) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| fail(UNREACHABLE, format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            base: format!("{}/api/v1", host.trim_end_matches('/')),
            token,
            http,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends a request; the JSON answer (`Null` for none) or the server's message.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let response = request.timeout(timeout).send().await.map_err(|e| {
            fail(
                UNREACHABLE,
                format!(
                    "cannot reach vamp-server at {}: {e} (set --host or VAMP_HOST)",
                    self.base
                ),
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["message"].as_str().map_or_else(
            || {
                if status == 404 {
                    "not found".to_owned()
                } else {
                    text.clone()
                }
            },
            str::to_owned,
        );
        let code = if status.is_server_error() {
            UNREACHABLE
        } else {
            REFUSED
        };
        Err(fail(code, format!("{status}: {message}")))
    }

    /// `POST` with no body; the JSON answer.
    pub(crate) async fn post_empty(&self, path: &str) -> Result<Value, Failure> {
        self.send(
            self.request(reqwest::Method::POST, path),
            Duration::from_secs(30),
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(
            self.request(reqwest::Method::GET, path),
            Duration::from_secs(30),
        )
        .await
    }

    async fn with_body(
        &self,
        method: reqwest::Method,
        path: &str,
        yaml: &str,
    ) -> Result<Value, Failure> {
        let request = self
            .request(method, path)
            .header("Content-Type", "application/x-yaml")
            .body(yaml.to_owned());
        self.send(request, Duration::from_secs(30)).await
    }
}

fn segment(name: &str) -> String {
    vamp_core::traits::kv::encode_segment(name)
}

fn kind_path(kind: &str) -> Result<&'static str, Failure> {
    vamp_core::model::Kind::parse(kind)
        .map(|k| k.plural())
        .ok_or_else(|| fail(2, format!("'{kind}' is not an artifact kind (e.g. breeds, blueprints, deployments, gateways)")))
}

fn render(value: &Value, show: Show) -> String {
    match show {
        Show::Json => serde_json::to_string_pretty(value).unwrap_or_default() + "\n",
        Show::Yaml | Show::Table => serde_saphyr::to_string(value).unwrap_or_default(),
    }
}

/// `vamp create`: stores every document of `yaml` (POST `/api/v1`); prints what was stored.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn create(client: &Client, yaml: &str) -> Result<String, Failure> {
    let stored = client.with_body(reqwest::Method::POST, "", yaml).await?;
    let mut out = String::new();
    for a in stored.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "created {} {}",
            a["kind"].as_str().unwrap_or("?"),
            a["name"].as_str().unwrap_or("?")
        );
    }
    Ok(out)
}

/// `vamp delete <kind> <name>`.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn delete(client: &Client, kind: &str, name: &str) -> Result<String, Failure> {
    let path = format!("/{}/{}", kind_path(kind)?, segment(name));
    client
        .send(
            client.request(reqwest::Method::DELETE, &path),
            Duration::from_secs(30),
        )
        .await?;
    Ok(format!("deleted {} {name}\n", kind_path(kind)?))
}

/// `vamp list <kind>`: every page.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn list(client: &Client, kind: &str, show: Show) -> Result<String, Failure> {
    let kind = kind_path(kind)?;
    let mut all = Vec::new();
    for page in 1.. {
        let items = client
            .get(&format!("/{kind}?page={page}&per_page=30"))
            .await?;
        let items = items.as_array().cloned().unwrap_or_default();
        let done = items.len() < 30;
        all.extend(items);
        if done {
            break;
        }
    }
    if show != Show::Table {
        return Ok(render(&Value::Array(all), show));
    }
    let mut out = String::from("NAME\tDETAIL\n");
    for a in &all {
        let detail = match kind {
            "deployments" => deployment_progress(a).summary(),
            "gateways" => routes_summary(a),
            _ => String::new(),
        };
        let _ = writeln!(out, "{}\t{detail}", a["name"].as_str().unwrap_or("?"));
    }
    Ok(out)
}

fn routes_summary(gateway: &Value) -> String {
    let port = gateway["port"].as_str().unwrap_or("");
    let routes: Vec<String> = gateway["routes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, r)| format!("{k}@{}", r["weight"].as_str().unwrap_or("-")))
        .collect();
    format!("{port} {}", routes.join(" "))
}

/// `vamp describe <kind> <name>`.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn describe(
    client: &Client,
    kind: &str,
    name: &str,
    as_blueprint: bool,
    show: Show,
) -> Result<String, Failure> {
    let query = if as_blueprint {
        "?as_blueprint=true"
    } else {
        ""
    };
    let value = client
        .get(&format!("/{}/{}{query}", kind_path(kind)?, segment(name)))
        .await?;
    Ok(render(&value, show))
}

/// `vamp deploy|merge <blueprint> <deployment>`: reads the stored blueprint and puts it to the
/// deployment (created, or merged into), then waits for it when `wait` is given.
///
/// # Errors
/// The server's refusal, that it cannot be reached, or the wait's failure.
pub async fn deploy(
    client: &Client,
    blueprint: &str,
    deployment: &str,
    wait: Option<Duration>,
    progress: &mut dyn std::io::Write,
) -> Result<String, Failure> {
    let bp = client
        .get(&format!("/blueprints/{}", segment(blueprint)))
        .await?;
    let yaml = serde_saphyr::to_string(&bp).unwrap_or_default();
    client
        .with_body(
            reqwest::Method::PUT,
            &format!("/deployments/{}", segment(deployment)),
            &yaml,
        )
        .await?;
    if let Some(limit) = wait {
        wait_for(client, deployment, limit, progress).await?;
    }
    Ok(format!("deployment {deployment}: {blueprint} deployed\n"))
}

/// `vamp undeploy <deployment> [--service <breed>]`: removes one service, or every one.
///
/// # Errors
/// The server's refusal (e.g. the service still carries traffic), that it cannot be reached,
/// or the wait's failure.
pub async fn undeploy(
    client: &Client,
    deployment: &str,
    service: Option<&str>,
    wait: Option<Duration>,
    progress: &mut dyn std::io::Write,
) -> Result<String, Failure> {
    let path = format!("/deployments/{}", segment(deployment));
    let current = client.get(&path).await?;
    let mut clusters = serde_json::Map::new();
    for (name, cluster) in current["clusters"].as_object().into_iter().flatten() {
        let services: Vec<Value> = cluster["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["breed"]["name"].as_str())
            .filter(|b| service.is_none_or(|wanted| wanted == *b))
            .map(|b| json!(b))
            .collect();
        if !services.is_empty() {
            clusters.insert(name.clone(), json!({ "services": services }));
        }
    }
    if clusters.is_empty() {
        return Err(fail(
            REFUSED,
            format!(
                "deployment {deployment} has no service {}",
                service.unwrap_or("at all")
            ),
        ));
    }
    let body = json!({"name": deployment, "clusters": clusters});
    let yaml = serde_saphyr::to_string(&body).unwrap_or_default();
    client
        .with_body(reqwest::Method::DELETE, &path, &yaml)
        .await?;
    if let Some(limit) = wait {
        if service.is_some() {
            wait_for(client, deployment, limit, progress).await?;
        } else {
            wait_gone(client, deployment, limit).await?;
        }
    }
    Ok(match service {
        Some(s) => format!("deployment {deployment}: {s} removed\n"),
        None => format!("deployment {deployment}: undeployed\n"),
    })
}

/// `vamp update-gateway <name> --weights r1@70%,r2@30%`.
///
/// # Errors
/// A malformed weight list, the server's refusal, or that it cannot be reached.
pub async fn update_gateway(client: &Client, name: &str, weights: &str) -> Result<String, Failure> {
    let mut routes = serde_json::Map::new();
    for pair in weights.split(',').filter(|p| !p.trim().is_empty()) {
        let (route, weight) = pair.trim().rsplit_once('@').ok_or_else(|| {
            fail(
                2,
                format!("'{pair}' is not route@weight (e.g. app:1.0@70%)"),
            )
        })?;
        routes.insert(route.to_owned(), json!({ "weight": weight }));
    }
    let body = json!({"name": name, "routes": routes});
    let yaml = serde_saphyr::to_string(&body).unwrap_or_default();
    let gateway = client
        .with_body(reqwest::Method::PUT, &format!("/gateways/{name}"), &yaml)
        .await?;
    Ok(format!("gateway {name}: {}\n", routes_summary(&gateway)))
}

/// `vamp emit <value> --tags a,b`.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn emit(
    client: &Client,
    value: &str,
    tags: &[String],
    kind: Option<&str>,
) -> Result<String, Failure> {
    let value: Value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
    let mut event = json!({"tags": tags, "value": value});
    if let Some(kind) = kind {
        event["type"] = json!(kind);
    }
    let stored = client
        .with_body(reqwest::Method::POST, "/events", &event.to_string())
        .await?;
    Ok(format!("event {}\n", stored["id"].as_str().unwrap_or("?")))
}

/// The server's event stream (`GET /api/v1/events/stream`, server-sent events), read one
/// `data:` payload at a time.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    /// Bytes not yet split into messages: a message, even a UTF-8 character, may span chunks.
    buffer: Vec<u8>,
    ready: std::collections::VecDeque<String>,
}

impl EventStream {
    /// Subscribes to the events with all of `tags` (and of `kind`, when given).
    ///
    /// # Errors
    /// The server's refusal, or that it cannot be reached.
    pub async fn open(
        client: &Client,
        tags: &[String],
        kind: Option<&str>,
    ) -> Result<Self, Failure> {
        let mut query: Vec<(&str, &str)> = tags.iter().map(|t| ("tag", t.as_str())).collect();
        if let Some(kind) = kind {
            query.push(("type", kind));
        }
        let response = client
            .request(reqwest::Method::GET, "/events/stream")
            .query(&query)
            .send()
            .await
            .map_err(|e| {
                fail(
                    UNREACHABLE,
                    format!("cannot reach vamp-server at {}: {e}", client.base),
                )
            })?;
        if !response.status().is_success() {
            return Err(fail(
                REFUSED,
                format!("the event stream was refused: {}", response.status()),
            ));
        }
        Ok(EventStream {
            response,
            buffer: Vec::new(),
            ready: std::collections::VecDeque::new(),
        })
    }

    /// The next event's JSON text; `None` when the server ends the stream.
    ///
    /// # Errors
    /// The stream broke.
    pub async fn next(&mut self) -> Result<Option<String>, Failure> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Ok(Some(data));
            }
            let Some(chunk) = self
                .response
                .chunk()
                .await
                .map_err(|e| fail(UNREACHABLE, format!("the event stream broke: {e}")))?
            else {
                return Ok(None);
            };
            self.buffer.extend_from_slice(&chunk);
            self.ready.extend(take_messages(&mut self.buffer));
        }
    }
}

/// The `data` of every whole message at the start of `buffer` (removed from it): messages end
/// with a blank line (`\n\n`, `\r\n\r\n` or `\r\r`); several `data:` lines join with `\n`.
fn take_messages(buffer: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let end = (0..buffer.len()).find_map(|i| {
            [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"]
                .iter()
                .find(|sep| buffer[i..].starts_with(sep))
                .map(|sep| (i, sep.len()))
        });
        let Some((at, len)) = end else {
            return out;
        };
        let message: Vec<u8> = buffer.drain(..at + len).collect();
        let text = String::from_utf8_lossy(&message[..at]);
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if !data.is_empty() {
            out.push(data.join("\n"));
        }
    }
}

#[cfg(test)]
mod sse_tests {
    use super::take_messages;

    #[test]
    fn messages_split_across_chunks_and_characters_read_whole() {
        let message =
            "data: {\"text\":\"rollout r: déjà vu\"}\r\n\r\ndata: a\ndata: b\n\n: comment\n\n";
        let bytes = message.as_bytes();
        // Cut inside the two-byte 'é'.
        let cut = message.find('é').unwrap() + 1;
        let mut buffer = bytes[..cut].to_vec();
        assert!(take_messages(&mut buffer).is_empty(), "not whole yet");
        buffer.extend_from_slice(&bytes[cut..]);
        assert_eq!(
            take_messages(&mut buffer),
            ["{\"text\":\"rollout r: déjà vu\"}", "a\nb"]
        );
        assert!(buffer.is_empty());
    }
}

/// `vamp events --tag … [--count n]`: prints each matching event as one JSON line as it
/// arrives (SSE), until `count` events or the stream ends.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn events(
    client: &Client,
    tags: &[String],
    kind: Option<&str>,
    count: Option<usize>,
    out: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    let mut stream = EventStream::open(client, tags, kind).await?;
    let mut seen = 0;
    while let Some(data) = stream.next().await? {
        let _ = writeln!(out, "{data}");
        let _ = out.flush();
        seen += 1;
        if count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
    }
    Ok(())
}

/// `vamp generate breed|blueprint --source <name> --target <name>`: a copy of a stored
/// artifact under a new name (a breed's deployable replaced with `--deployable`), as YAML to
/// edit and `vamp create`.
///
/// # Errors
/// The server's refusal, or that it cannot be reached.
pub async fn generate(
    client: &Client,
    kind: &str,
    source: &str,
    target: &str,
    deployable: Option<&str>,
) -> Result<String, Failure> {
    let kind = kind_path(kind)?;
    let mut value = client.get(&format!("/{kind}/{}", segment(source))).await?;
    value["name"] = json!(target);
    if let Some(d) = deployable {
        value["deployable"] = json!(d);
    }
    Ok(render(&value, Show::Yaml))
}

/// Where a deployment's services stand.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Services deployed and done.
    pub done: usize,
    /// All services.
    pub total: usize,
    /// Services that failed, with their reason.
    pub failed: Vec<String>,
}

impl Progress {
    fn summary(&self) -> String {
        let mut s = format!("{}/{} services deployed", self.done, self.total);
        if !self.failed.is_empty() {
            let _ = write!(s, ", failed: {}", self.failed.join("; "));
        }
        s
    }
}

/// The progress of a deployment as the API shows it.
pub fn deployment_progress(d: &Value) -> Progress {
    let mut p = Progress::default();
    for cluster in d["clusters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, c)| c)
    {
        for s in cluster["services"].as_array().into_iter().flatten() {
            p.total += 1;
            let status = &s["status"];
            let phase = status["phase"]["name"].as_str().unwrap_or_default();
            match (status["intention"].as_str().unwrap_or_default(), phase) {
                (_, "Failed") => p.failed.push(format!(
                    "{}: {}",
                    s["breed"]["name"].as_str().unwrap_or("?"),
                    status["phase"]["message"]
                        .as_str()
                        .unwrap_or("no reason given")
                )),
                ("Deployment", "Done") => p.done += 1,
                _ => {}
            }
        }
    }
    p
}

/// Polls the deployment until every service is deployed (printing progress when it changes),
/// one fails, or `limit` passes.
async fn wait_for(
    client: &Client,
    deployment: &str,
    limit: Duration,
    progress: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    loop {
        let d = client
            .get(&format!("/deployments/{}", segment(deployment)))
            .await?;
        let p = deployment_progress(&d);
        let line = p.summary();
        if line != last {
            let _ = writeln!(progress, "{deployment}: {line}");
            last = line;
        }
        if !p.failed.is_empty() {
            return Err(fail(
                FAILED,
                format!("deployment {deployment} failed: {}", p.failed.join("; ")),
            ));
        }
        if p.done == p.total && p.total > 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(
                TIMED_OUT,
                format!(
                    "deployment {deployment} did not converge within {}s",
                    limit.as_secs()
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_gone(client: &Client, deployment: &str, limit: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    loop {
        match client
            .get(&format!("/deployments/{}", segment(deployment)))
            .await
        {
            Err(f) if f.code == REFUSED && f.message.starts_with("404") => return Ok(()),
            Err(f) => return Err(f),
            Ok(_) if Instant::now() >= deadline => {
                return Err(fail(
                    TIMED_OUT,
                    format!(
                        "deployment {deployment} was not removed within {}s",
                        limit.as_secs()
                    ),
                ));
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}
