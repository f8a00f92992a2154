//! Artifacts: `vamp create`, `delete`, `list`, `describe`, `update-gateway`, `generate`.

use super::*;

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
    let mut table = comfy_table::Table::new();
    table
        .load_style(comfy_table::presets::NOTHING)
        .set_header(["NAME", "DETAIL"]);
    for a in &all {
        let detail = match kind {
            "deployments" => deployment_progress(a).summary(),
            "gateways" => routes_summary(a),
            _ => String::new(),
        };
        table.add_row([a["name"].as_str().unwrap_or("?"), detail.as_str()]);
    }
    Ok(format!("{}\n", table.trim_fmt()))
}

pub(super) fn routes_summary(gateway: &Value) -> String {
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
