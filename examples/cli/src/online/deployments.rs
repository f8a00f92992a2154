//! Deployments: `vamp deploy`, `merge`, `undeploy`, and `--wait` (progress fed by the event
//! stream).

use super::*;

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
    pub(crate) fn summary(&self) -> String {
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

/// Follows the deployment until every service is deployed, one fails, or `limit` passes.
/// The deployment's events (`deployments:<name>`, over SSE) prompt each look; without them
/// (a stream that ends or breaks) it looks every 250 ms, and a quiet stream every 2 s. On a
/// terminal the progress is a bar on stderr (indicatif); elsewhere a line per change.
pub(super) async fn wait_for(
    client: &Client,
    deployment: &str,
    limit: Duration,
    progress: &mut dyn std::io::Write,
) -> Result<(), Failure> {
    let deadline = Instant::now() + limit;
    // Subscribed before the first look, so no change between the two is missed.
    let mut changes = EventStream::open(client, &[format!("deployments:{deployment}")], None)
        .await
        .ok();
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut last = String::new();
    loop {
        let d = client
            .get(&format!("/deployments/{}", segment(deployment)))
            .await?;
        let p = deployment_progress(&d);
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(deployment.to_owned());
        let line = p.summary();
        if line != last && bar.is_hidden() {
            let _ = writeln!(progress, "{deployment}: {line}");
        }
        last = line;
        if !p.failed.is_empty() {
            bar.abandon();
            return Err(fail(
                FAILED,
                format!("deployment {deployment} failed: {}", p.failed.join("; ")),
            ));
        }
        if p.done == p.total && p.total > 0 {
            bar.finish_and_clear();
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bar.abandon();
            return Err(fail(
                TIMED_OUT,
                format!(
                    "deployment {deployment} did not converge within {}s",
                    limit.as_secs()
                ),
            ));
        }
        match changes.as_mut() {
            Some(stream) => {
                match tokio::time::timeout(left.min(Duration::from_secs(2)), stream.next()).await {
                    Ok(Ok(Some(_))) | Err(_) => {}
                    Ok(Ok(None) | Err(_)) => changes = None,
                }
            }
            None => tokio::time::sleep(left.min(Duration::from_millis(250))).await,
        }
    }
}

pub(super) async fn wait_gone(
    client: &Client,
    deployment: &str,
    limit: Duration,
) -> Result<(), Failure> {
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
