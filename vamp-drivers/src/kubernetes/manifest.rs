//! What the Kubernetes driver applies for a service (spec §6.3), as plain JSON: pure, so it
//! is tested by itself (snapshots) and read back into k8s-openapi's types.
//!
//! - The Deployment's name: `<deployment>-<cluster>-<service>` with each part kept when it
//!   is a DNS label of its own under 20 characters, else the first 12 hex digits of its SHA-1;
//!   the whole cut to a hash when longer than 52 (room for the pods' suffixes).
//! - Labels (values must be label values, so names go through the same ids):
//!   `app.kubernetes.io/managed-by: vamp`, `io.vamp: deployment-service`,
//!   `io.vamp.deployment-service: <name>`, `io.vamp.deployment`, `io.vamp.cluster`,
//!   `io.vamp.service`; the real names, the spec's fingerprint and the breed's ports go in
//!   annotations (`io.vamp/…`), where any text fits.
//! - One container named like the Deployment: the image, the environment, ports
//!   `p<number>`, requests `{cpu: <millis>m, memory: <n>M}`, `privileged` from the
//!   arguments, readiness and liveness probes from the first HTTP health check; the
//!   `kubernetes` dialect merged into the pod spec (its `containers[0]` into the container).
//! - A workflow run is a Job `workflow-<id>-<epochMillis>` (spec §5.6) of one pod that is
//!   never restarted, labelled `io.vamp: workflow`, `io.vamp.workflow: <id>`,
//!   `io.vamp.run: <job>`.

use serde_json::{Value, json};
use sha1::{Digest, Sha1};
use vamp_core::model::lookup::hex;
use vamp_core::traits::{GatewayEndpoint, RunSpec, ServiceKey, ServiceSpec};

/// The label every object the driver makes carries, and its value.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vamp");
/// Annotations with the real names and what the driver needs back.
pub(crate) const DEPLOYMENT: &str = "io.vamp/deployment";
pub(crate) const CLUSTER: &str = "io.vamp/cluster";
pub(crate) const SERVICE: &str = "io.vamp/service";
pub(crate) const FINGERPRINT: &str = "io.vamp/fingerprint";
pub(crate) const PORTS: &str = "io.vamp/ports";
/// The label that ties pods to their Deployment.
pub(crate) const ID: &str = "io.vamp.deployment-service";

fn sha1_hex(text: &str) -> String {
    hex(&Sha1::digest(text.as_bytes()))
}

/// A name part: kept when it is a DNS label under 20 characters, else 12 hex digits of its
/// SHA-1.
fn id(part: &str) -> String {
    let plain = !part.is_empty()
        && part.len() < 20
        && part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && part.as_bytes()[0].is_ascii_alphanumeric()
        && part.as_bytes()[part.len() - 1].is_ascii_alphanumeric();
    if plain {
        part.to_owned()
    } else {
        sha1_hex(part)[..12].to_owned()
    }
}

/// The Deployment's name for a service, e.g. `shop-web-<12 hex digits>` for the service
/// `sava:1.0.0` of cluster `web` of deployment `shop`.
pub(crate) fn name(key: &ServiceKey) -> String {
    let name = format!(
        "{}-{}-{}",
        id(&key.deployment),
        id(&key.cluster),
        id(&key.service)
    );
    if name.len() <= 52 {
        name
    } else {
        format!(
            "vamp-{}",
            &sha1_hex(&format!(
                "{}/{}/{}",
                key.deployment, key.cluster, key.service
            ))[..20]
        )
    }
}

/// The labels of a service's Deployment and pods.
pub(crate) fn labels(key: &ServiceKey) -> Value {
    json!({
        MANAGED_BY.0: MANAGED_BY.1,
        "io.vamp": "deployment-service",
        ID: name(key),
        "io.vamp.deployment": id(&key.deployment),
        "io.vamp.cluster": id(&key.cluster),
        "io.vamp.service": id(&key.service),
    })
}

/// The Deployment that runs `spec` in `namespace`, with `pull_policy` when set.
pub(crate) fn deployment(spec: &ServiceSpec, namespace: &str, pull_policy: Option<&str>) -> Value {
    let name = name(&spec.key);
    let labels = labels(&spec.key);
    let ports: serde_json::Map<String, Value> = spec
        .breed
        .ports
        .iter()
        .filter_map(|(n, p)| p.number().map(|number| (n.clone(), json!(number))))
        .collect();
    let annotations = json!({
        DEPLOYMENT: spec.key.deployment,
        CLUSTER: spec.key.cluster,
        SERVICE: spec.key.service,
        FINGERPRINT: spec.fingerprint(),
        PORTS: Value::Object(ports.clone()).to_string(),
    });
    let mut container = json!({
        "name": name,
        "image": spec.breed.deployable.definition,
        "env": spec.environment.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "ports": ports.values().map(|p| json!({"name": format!("p{p}"), "containerPort": p})).collect::<Vec<_>>(),
        "resources": {"requests": {
            "cpu": format!("{}m", spec.scale.cpu.millis()),
            "memory": format!("{}M", spec.scale.memory.bytes().div_ceil(1_000_000)),
        }},
    });
    if let Some(policy) = pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    if spec
        .arguments
        .iter()
        .any(|a| a.key == "privileged" && (a.value == json!(true) || a.value == json!("true")))
    {
        container["securityContext"] = json!({"privileged": true});
    }
    if let Some(check) = spec
        .health_checks
        .iter()
        .find(|c| c.protocol.eq_ignore_ascii_case("http"))
        && let Some(port) = ports.get(&check.port)
    {
        let probe = json!({
            "httpGet": {"path": check.path, "port": format!("p{port}")},
            "initialDelaySeconds": check.initial_delay.get(),
            "timeoutSeconds": check.timeout.get().max(1),
            "periodSeconds": check.interval.get().max(1),
            "failureThreshold": check.failures.max(1),
        });
        container["readinessProbe"] = probe.clone();
        container["livenessProbe"] = probe;
    }
    let mut pod_spec = json!({"containers": [container]});
    if let Some(Value::Object(dialect)) = &spec.dialect {
        for (k, v) in dialect {
            if k == "containers"
                && let Some(first) = v.as_array().and_then(|c| c.first())
            {
                merge(&mut pod_spec["containers"][0], first);
            } else {
                merge(&mut pod_spec[k.as_str()], v);
            }
        }
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "replicas": spec.scale.instances,
            "selector": {"matchLabels": {ID: name}},
            "template": {
                "metadata": {"labels": labels, "annotations": {FINGERPRINT: spec.fingerprint()}},
                "spec": pod_spec,
            },
        },
    })
}

/// The label that ties a workflow run's pod to its Job (set in the Job's template, so it does
/// not depend on the labels the Job controller adds).
pub(crate) const RUN: &str = "io.vamp.run";

/// The container of a workflow run's pod.
pub(crate) const RUN_CONTAINER: &str = "run";

/// A workflow run's Job name (spec §5.6: `workflow-<lookup>-<epochMillis>`): the workflow's
/// name as an id (kept when it is a short DNS label, else hashed), then the start time in
/// milliseconds — at most 52 characters, room for the pods' suffixes.
pub(crate) fn job_name(workflow: &str, epoch_millis: i64) -> String {
    format!("workflow-{}-{epoch_millis}", id(workflow))
}

/// The Job of one workflow run (spec §5.6): one pod, never restarted or retried
/// (`backoffLimit: 0`), the deadline the run's timeout (the server also stops waiting then and
/// deletes the Job), the run's environment, the breed's image.
pub(crate) fn job(spec: &RunSpec, namespace: &str, name: &str, pull_policy: Option<&str>) -> Value {
    let labels = json!({
        MANAGED_BY.0: MANAGED_BY.1,
        "io.vamp": "workflow",
        "io.vamp.workflow": id(&spec.name),
        RUN: name,
    });
    let mut container = json!({
        "name": RUN_CONTAINER,
        "image": spec.breed.deployable.definition,
        "env": spec.environment.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
    });
    if let Some(policy) = pull_policy {
        container["imagePullPolicy"] = json!(policy);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"io.vamp/workflow": spec.name},
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.timeout.as_secs().max(1),
            "template": {
                "metadata": {"labels": labels},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    })
}

/// The Service of a gateway: `vamp-gw-<id>`.
pub(crate) fn gateway_service_name(gateway: &str) -> String {
    let plain = gateway.replace('/', "-");
    let id = id(&plain);
    if id.len() + 8 <= 63 {
        format!("vamp-gw-{id}")
    } else {
        format!("vamp-gw-{}", &sha1_hex(gateway)[..12])
    }
}

/// A gateway's Service (spec §6.3): of `service_type`, selecting the gateway agents' pods
/// (`io.vamp=<agent_id>`) on the gateway's port, labelled `io.vamp=gateway`,
/// `io.vamp.gateway=<id>`, the gateway's name in the annotation `io.vamp/gateway`.
pub(crate) fn gateway_service(
    gateway: &GatewayEndpoint,
    service_type: &str,
    agent_id: &str,
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": gateway_service_name(&gateway.name),
            "labels": {
                MANAGED_BY.0: MANAGED_BY.1,
                "io.vamp": "gateway",
                "io.vamp.gateway": id(&gateway.name.replace('/', "-")),
            },
            "annotations": {"io.vamp/gateway": gateway.name},
        },
        "spec": {
            "type": service_type,
            "selector": {"io.vamp": agent_id},
            "ports": [{"name": "gateway", "protocol": "TCP", "port": gateway.port, "targetPort": gateway.port}],
        },
    })
}

/// Brings a stored Service to `desired`: its labels, annotations, type, selector and ports
/// (a port keeps the node port it was given when its number stays).
pub(crate) fn update_gateway_service(current: &mut Value, desired: &Value) {
    for part in ["labels", "annotations"] {
        merge(&mut current["metadata"][part], &desired["metadata"][part]);
    }
    for field in ["type", "selector"] {
        current["spec"][field] = desired["spec"][field].clone();
    }
    let old_ports = current["spec"]["ports"].clone();
    let mut ports = desired["spec"]["ports"].clone();
    if let Some(ports) = ports.as_array_mut() {
        for p in ports {
            let kept = old_ports
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["port"] == p["port"])
                .and_then(|o| o.get("nodePort"));
            if let Some(node_port) = kept {
                p["nodePort"] = node_port.clone();
            }
        }
    }
    current["spec"]["ports"] = ports;
}

/// A deep merge: objects key by key, anything else replaced.
fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (into, from) => *into = from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(d: &str, c: &str, s: &str) -> ServiceKey {
        ServiceKey {
            deployment: d.into(),
            cluster: c.into(),
            service: s.into(),
        }
    }

    #[test]
    fn names_are_dns_labels_and_stable() {
        let n = name(&key("shop", "web", "sava:1.0.0"));
        assert!(
            n.starts_with("shop-web-") && n.len() == "shop-web-".len() + 12,
            "{n}"
        );
        assert_eq!(n, name(&key("shop", "web", "sava:1.0.0")));
        assert_ne!(n, name(&key("shop", "web", "sava:1.1.0")));
        let long = name(&key(&"d".repeat(19), &"c".repeat(19), &"s".repeat(19)));
        assert!(long.starts_with("vamp-") && long.len() <= 52, "{long}");
        for n in [n, long] {
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
    }
}
