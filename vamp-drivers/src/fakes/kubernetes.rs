//! [`FakeKubernetes`]: the part of the Kubernetes API server a Vamp driver uses, served on
//! loopback with the API server's wire shapes and semantics, for tests (no API server can run
//! here). The Kubernetes driver is tested against this fake until it meets a real cluster.
//!
//! Built from the public API documentation (kubernetes.io/docs/reference/using-api/
//! api-concepts, server-side-apply, and the API reference of the kinds below):
//!
//! - Kinds: core/v1 `pods`, `services`, `configmaps`, `secrets`, `serviceaccounts`,
//!   `namespaces` (cluster-scoped); apps/v1 `deployments`, `daemonsets`; batch/v1 `jobs`.
//!   Paths `/api/v1/…` and `/apis/{group}/{version}/…`, namespaced
//!   (`/namespaces/{ns}/{plural}[/{name}[/status]]`) and across namespaces (`/{plural}`);
//!   `GET /version`.
//! - Every object gets `metadata.uid`, `resourceVersion` (one counter for the whole store, as
//!   etcd's revision), `creationTimestamp`, `generation` (raised when anything but `status`
//!   and `metadata` changes), `namespace`; `generateName` works.
//! - `GET` of a collection: a `<Kind>List` with `metadata.resourceVersion`, filtered by
//!   `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and `fieldSelector`
//!   (`metadata.name`, `metadata.namespace`); `limit`/`continue` are answered with the whole
//!   list and no continue token (allowed by the API).
//! - `?watch=true`: a stream of JSON lines `{"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR,
//!   "object": …}`. Without `resourceVersion` (or `0`) it starts with an `ADDED` per existing
//!   object; with one, it replays every change after it — or, when that version is older than
//!   the changes kept ([`FakeKubernetesConfig::watch_window`]), sends one `ERROR` event with a
//!   `Status` of code 410 (`Expired`, "too old resource version") and ends, as the API server
//!   does. `allowWatchBookmarks=true` adds a `BOOKMARK` (the kind, apiVersion and the current
//!   `resourceVersion` only) every [`FakeKubernetesConfig::bookmark_every`];
//!   `timeoutSeconds` ends the stream.
//! - `POST` creates (409 `AlreadyExists`); `PUT` replaces, refused with 409 `Conflict` when
//!   the body's `metadata.resourceVersion` is not the stored one; `DELETE` removes (pods owned
//!   by a deleted Deployment or Job go too, as the garbage collector's background deletion).
//! - `PATCH` with `application/merge-patch+json` (RFC 7386), `application/strategic-merge-
//!   patch+json` (treated as a merge patch: lists are replaced, not merged by key — a
//!   simplification) and `application/apply-patch+yaml` (server-side apply, YAML or JSON):
//!   `fieldManager` is required; each manager owns the leaf fields it applied
//!   (`metadata.managedFields`, `FieldsV1`; lists are atomic leaves — a simplification); a
//!   field another manager owns with another value is a 409 `Conflict` naming it, unless
//!   `force=true` takes it over; fields a manager applied before and leaves out now are
//!   removed when nobody else owns them; applying to a missing object creates it.
//! - The `status` subresource: writes to `…/status` change only `status`; writes to the object
//!   leave its `status` as it was.
//! - Errors are `Status` objects (`kind: Status`, `reason`, `code`, `details`).
//! - A tiny controller: a Deployment's `spec.replicas` (default 1) become Pods from its
//!   template (labels plus `pod-template-hash`, an owner reference), created `Pending`
//!   without an IP and made `Running` with a pod IP and a `Ready` condition a moment later
//!   (a separate change, so watches see both); a changed template replaces them; the
//!   Deployment's `status` (`observedGeneration`, `replicas`, `readyReplicas`,
//!   `availableReplicas`, `updatedReplicas`) follows. [`FakeKubernetes::fail_pods`] makes
//!   matching pods never become ready (a waiting container with the given reason). A Job gets
//!   one Pod and `status.succeeded = 1` once it ran, or `status.failed` when it is made to
//!   fail. No scheduling, no nodes, no images: pods "run" as soon as they exist.
//!
//! - `GET …/pods/{name}/log` (`container`, `follow`): the output of a pod the
//!   [`FakeKubelet`] runs; `400` while its container waits to start, as the API server.
//!
//! One file: a faithful fake of one wire protocol, kept in one place so it reads against the
//! API documentation.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// Settings of a [`FakeKubernetes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKubernetesConfig {
    /// How many changes are kept for watches that resume from a `resourceVersion`; older ones
    /// get 410 Gone (the API server keeps about five minutes of them).
    pub watch_window: usize,
    /// How often a watch with `allowWatchBookmarks=true` gets a `BOOKMARK` (the API server:
    /// about a minute).
    pub bookmark_every: Duration,
    /// How long a new pod stays `Pending` before it runs.
    pub start_after: Duration,
    /// Runs pods as local processes when set (see [`FakeKubelet`]); without it pods "run"
    /// with nothing behind their IPs.
    pub kubelet: Option<FakeKubelet>,
}

/// A kubelet for the fake: a pod whose image it knows runs as a local process, on an address
/// of its own in `127.<port>.0/24` — the fake's port as the middle bytes, so fakes side by
/// side never share one; up to 253 pods (every pod shares this machine's network, so the process is
/// told its pod IP in the variable `host_env` and must listen there), with the container's
/// environment and arguments. The pod is `Ready` once its readiness probe (`httpGet` or
/// `tcpSocket`; without one, a connection to its first container port) answers. An image it
/// does not know waits in `ImagePullBackOff`; a process that exits leaves its container
/// waiting in `CrashLoopBackOff` with the exit code (a Job's pod succeeds or fails by it).
/// Deleting the pod kills the process. What the process writes to standard output and
/// standard error is the pod's log (`GET …/pods/{name}/log`, `follow=true` streams it until
/// the process ends), both streams in one, as the kubelet keeps them. Restarts are not
/// simulated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeKubelet {
    /// Image → the command that stands for it (program, then arguments).
    pub images: BTreeMap<String, Vec<String>>,
    /// The environment variable that carries the pod IP to the process.
    pub host_env: String,
}

impl Default for FakeKubernetesConfig {
    fn default() -> Self {
        FakeKubernetesConfig {
            watch_window: 1000,
            bookmark_every: Duration::from_secs(1),
            start_after: Duration::from_millis(50),
            kubelet: None,
        }
    }
}

/// A kind the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Resource {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

impl Resource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        kind: "Service",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
    },
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
    },
    Resource {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
    },
];

fn resource(group: &str, version: &str, plural: &str) -> Option<Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .copied()
}

fn resource_of_kind(kind: &str) -> Option<Resource> {
    RESOURCES.iter().find(|r| r.kind == kind).copied()
}

/// An object's place in the store: plural, namespace ("" when cluster-scoped), name.
type Key = (&'static str, String, String);

/// A change, as watches see it.
#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    plural: &'static str,
    namespace: String,
    kind: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct Data {
    rv: u64,
    uids: u64,
    /// Pod IPs handed out.
    ips: u64,
    /// The middle bytes of the kubelet's pod IPs (this fake's port: unique on the machine).
    ip_base: [u8; 2],
    /// Cluster IPs and node ports handed out to Services.
    service_ips: u64,
    /// A concurrent writer, set to touch the next object replaced (an annotation) just before
    /// the replace is judged: its `resourceVersion` is stale then.
    interfere: Option<String>,
    /// How many 409 Conflicts were answered to stale replaces.
    conflicts: u64,
    /// How many watches were answered 410 Gone.
    expired: u64,
    /// Every request's `(API group, resource, verb)` as RBAC names them.
    verbs: BTreeSet<(String, String, String)>,
    objects: BTreeMap<Key, Value>,
    log: VecDeque<Change>,
    /// Pods matching a selector never become ready, with this reason.
    failing: Vec<(Selector, String)>,
    /// Pods that exist and are not yet running, with the instant they may.
    pending: BTreeMap<Key, tokio::time::Instant>,
    /// The kubelet's processes, by pod.
    processes: BTreeMap<Key, Process>,
    /// What the kubelet's processes wrote, by pod.
    logs: BTreeMap<Key, PodLog>,
}

/// A pod's log: its text, and how many of its process's output streams are still open.
#[derive(Debug, Default)]
struct PodLog {
    text: String,
    open: u8,
}

/// Where and what to probe: address, port, HTTP path (`None`: a TCP connection).
type Probe = (String, u16, Option<String>);

/// A pod's process and how to tell that it is ready.
#[derive(Debug)]
struct Process {
    child: tokio::process::Child,
    probe: Probe,
    ready: bool,
}

#[derive(Debug)]
struct State {
    config: FakeKubernetesConfig,
    data: Mutex<Data>,
    changed: watch::Sender<u64>,
    /// Bumped to end every open watch.
    ends: watch::Sender<u64>,
    /// Bumped when a pod's log grows or closes.
    logged: watch::Sender<u64>,
}

impl State {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fake Kubernetes API server on a loopback port (see the module docs for what it covers).
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use vamp_drivers::fakes::kubernetes::FakeKubernetes;
/// let fake = FakeKubernetes::start().await?;
/// println!("server: {}", fake.url()); // e.g. a kubeconfig's cluster.server
/// # Ok(()) }
/// ```
pub struct FakeKubernetes {
    endpoint: super::Endpoint,
    state: Arc<State>,
}

impl std::fmt::Debug for FakeKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKubernetes")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

super::serves_on_endpoint!(FakeKubernetes);

#[cfg(feature = "kubernetes")]
impl FakeKubernetes {
    /// A kube-rs client for the fake at `url` (what [`Endpoint::url`](super::Endpoint::url) gives): plain HTTP,
    /// no credentials — for a caller that keeps the address but not the fake.
    ///
    /// # Errors
    /// When `url` is not a URI, or kube cannot build a client for it.
    pub fn client_for(url: &str) -> std::io::Result<kube::Client> {
        let uri: axum::http::Uri = url.parse().map_err(std::io::Error::other)?;
        kube::Client::try_from(kube::Config::new(uri)).map_err(std::io::Error::other)
    }

    /// A kube-rs client for this fake.
    ///
    /// # Errors
    /// As [`client_for`](Self::client_for).
    pub fn client(&self) -> std::io::Result<kube::Client> {
        Self::client_for(&self.url())
    }
}

impl FakeKubernetes {
    /// Starts one with the default settings.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start() -> std::io::Result<FakeKubernetes> {
        FakeKubernetes::start_with(FakeKubernetesConfig::default()).await
    }

    /// Starts one with `config`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start_with(config: FakeKubernetesConfig) -> std::io::Result<FakeKubernetes> {
        let state = Arc::new(State {
            config,
            data: Mutex::new(Data::default()),
            changed: watch::channel(0).0,
            ends: watch::channel(0).0,
            logged: watch::channel(0).0,
        });
        {
            let mut data = state.data();
            for ns in ["default", "kube-system"] {
                let object =
                    json!({"metadata": {"name": ns}, "spec": {}, "status": {"phase": "Active"}});
                let _ = create(&mut data, &namespace_resource(), "", object, None);
            }
        }
        let shared = state.clone();
        let make: super::Make = Box::new(move || {
            let app_state = shared.clone();
            let app = axum::Router::new().fallback(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let state = app_state.clone();
                    async move { handle(&state, &method, &uri, &headers, &body).await }
                },
            );
            let controller = shared.clone();
            (app, Box::pin(run_pods(controller)))
        });
        let endpoint = super::Endpoint::start(make).await?;
        // Pod IPs no other fake hands out, in this process or another: 127.<port>.<n>.
        state.data().ip_base = endpoint.port().to_be_bytes();
        Ok(FakeKubernetes { endpoint, state })
    }

    /// Starts one with a [`FakeKubelet`] that runs `images` (image → program and arguments)
    /// as local processes, telling each process its pod IP in the variable `host_env`.
    ///
    /// # Errors
    /// When no loopback port can be bound.
    pub async fn start_with_kubelet(
        images: impl IntoIterator<Item = (String, Vec<String>)>,
        host_env: &str,
    ) -> std::io::Result<FakeKubernetes> {
        FakeKubernetes::start_with(FakeKubernetesConfig {
            kubelet: Some(FakeKubelet {
                images: images.into_iter().collect(),
                host_env: host_env.to_owned(),
            }),
            ..FakeKubernetesConfig::default()
        })
        .await
    }

    /// Pods whose labels match `selector` (label-selector syntax, e.g. `app=shop,version=2`)
    /// never become ready from now on: their container waits with `reason` (e.g.
    /// `ImagePullBackOff`); a Job's pod fails with it.
    ///
    /// # Errors
    /// A selector that does not parse.
    pub fn fail_pods(&self, selector: &str, reason: &str) -> Result<(), String> {
        let selector = Selector::parse(selector)?;
        self.state
            .data()
            .failing
            .push((selector, reason.to_owned()));
        Ok(())
    }

    /// The stored object, as the API would answer a `GET` (`None` when missing).
    pub fn object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let r = resource_of_kind(kind).filter(|r| r.api_version() == api_version)?;
        let ns = if r.namespaced { namespace } else { "" };
        self.state
            .data()
            .objects
            .get(&(r.plural, ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Makes the next replace (`PUT`) meet a concurrent writer: just before it is judged, the
    /// stored object gets the annotation `annotation: touched` (a new `resourceVersion`), so
    /// the replace is stale and answered 409 — as when another client wins the race.
    pub fn interfere_with_next_replace(&self, annotation: &str) {
        self.state.data().interfere = Some(annotation.to_owned());
    }

    /// Every `(API group, resource, verb)` asked for so far, as RBAC rules name them (`""`
    /// for the core group; `pods/log`, `deployments/status` for subresources; `get`, `list`,
    /// `watch`, `create`, `update`, `patch`, `delete`): what a client's Role must allow.
    pub fn verbs(&self) -> BTreeSet<(String, String, String)> {
        self.state.data().verbs.clone()
    }

    /// How many watches were answered `410 Gone` (resumed from a compacted version).
    pub fn expired(&self) -> u64 {
        self.state.data().expired
    }

    /// How many replaces were refused with 409 Conflict for a stale `resourceVersion`.
    pub fn conflicts(&self) -> u64 {
        self.state.data().conflicts
    }

    /// Every stored object of a kind in `namespace`, by name.
    pub fn objects(&self, api_version: &str, kind: &str, namespace: &str) -> Vec<Value> {
        let Some(r) = resource_of_kind(kind).filter(|r| r.api_version() == api_version) else {
            return Vec::new();
        };
        let ns = if r.namespaced { namespace } else { "" };
        self.state
            .data()
            .objects
            .iter()
            .filter(|((plural, n, _), _)| *plural == r.plural && n == ns)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// The store's current `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.state.data().rv
    }

    /// Compacts, as the API server's storage does: every change a watch could resume from is
    /// forgotten and the open watches end, so a client that watches again from the version it
    /// had gets 410 Gone and must list again.
    pub fn compact(&self) {
        let rv = {
            let mut data = self.state.data();
            data.log.clear();
            data.rv += 1;
            data.rv
        };
        self.state.ends.send_modify(|n| *n += 1);
        self.state.changed.send_replace(rv);
    }
}

fn namespace_resource() -> Resource {
    resource("", "v1", "namespaces").unwrap_or(RESOURCES[5])
}

// --- requests ------------------------------------------------------------------------------

/// What a path names.
#[derive(Debug)]
struct Target {
    resource: Resource,
    /// `None`: every namespace (a collection across them), or a cluster-scoped kind.
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<Subresource>,
}

/// The part of an object a path names after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subresource {
    /// `…/{name}/status`.
    Status,
    /// `…/pods/{name}/log`.
    Log,
}

impl Target {
    fn status(&self) -> bool {
        self.subresource == Some(Subresource::Status)
    }

    fn log(&self) -> bool {
        self.subresource == Some(Subresource::Log)
    }
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => (Some((*ns).to_owned()), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        // `/api/v1/namespaces/{name}`: the namespace object itself.
        ["namespaces", name] => (None, vec!["namespaces", name]),
        other => (None, other.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), Some(Subresource::Status)),
        ["pods", name, "log"] => ("pods", Some((*name).to_owned()), Some(Subresource::Log)),
        _ => return None,
    };
    let resource = resource(group, version, plural)?;
    if !resource.namespaced && namespace.is_some() {
        return None;
    }
    Some(Target {
        resource,
        namespace,
        name,
        subresource,
    })
}

async fn handle(
    state: &Arc<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if uri.path() == "/version" {
        return json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-vamp-fake", "platform": "linux/amd64"}),
        );
    }
    let Some(target) = parse_path(uri.path()) else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
            None,
        )
        .into_response();
    };
    let query = super::query(uri);
    // The verb RBAC would check (kubernetes.io/docs/reference/access-authn-authz/authorization
    // "Determine the request verb").
    let verb = match (method, &target.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            "watch"
        }
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => "deletecollection",
        _ => "unknown",
    };
    let resource = match target.subresource {
        Some(Subresource::Status) => format!("{}/status", target.resource.plural),
        Some(Subresource::Log) => format!("{}/log", target.resource.plural),
        None => target.resource.plural.to_owned(),
    };
    state
        .data()
        .verbs
        .insert((target.resource.group.to_owned(), resource, verb.to_owned()));
    let ns = if target.resource.namespaced {
        target.namespace.clone()
    } else {
        Some(String::new())
    };
    match (method, &target.name) {
        (&Method::GET, Some(name)) if target.log() => {
            pod_log(state, ns.unwrap_or_default(), name, &query)
        }
        // A log is only read.
        (_, _) if target.log() => method_not_allowed(),
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_stream(state, &target, &query)
        }
        (&Method::GET, None) => list(state, &target, &query),
        (&Method::GET, Some(name)) => {
            let data = state.data();
            match ns.and_then(|ns| {
                data.objects
                    .get(&(target.resource.plural, ns, name.clone()))
            }) {
                Some(o) => json_response(StatusCode::OK, o),
                None => not_found(&target.resource, name).into_response(),
            }
        }
        (&Method::POST, None) => {
            let Some(ns) = ns else {
                return bad_request("a namespace is needed to create this kind").into_response();
            };
            let object = match parse_json(body) {
                Ok(o) => o,
                Err(e) => return bad_request(&e).into_response(),
            };
            write(state, StatusCode::CREATED, |data| {
                create(data, &target.resource, &ns, object, None)
            })
        }
        (&Method::PUT, Some(name)) => {
            let Some(ns) = ns else {
                return bad_request("a namespace is needed").into_response();
            };
            let object = match parse_json(body) {
                Ok(o) => o,
                Err(e) => return bad_request(&e).into_response(),
            };
            write(state, StatusCode::OK, |data| {
                replace(data, &target, &ns, name, object)
            })
        }
        (&Method::PATCH, Some(name)) => {
            let Some(ns) = ns else {
                return bad_request("a namespace is needed").into_response();
            };
            let kind = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            write(state, StatusCode::OK, |data| match kind.as_str() {
                "application/apply-patch+yaml" => {
                    let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                        return Err(bad_request(
                            "PATCH with application/apply-patch+yaml requires fieldManager",
                        ));
                    };
                    let force = query.get("force").is_some_and(|f| f == "true");
                    match parse_yaml_or_json(body) {
                        Ok(patch) => apply(data, &target, &ns, name, &patch, manager, force),
                        Err(e) => Err(bad_request(&e)),
                    }
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    match parse_json(body) {
                        Ok(patch) => merge_patch(data, &target, &ns, name, &patch),
                        Err(e) => Err(bad_request(&e)),
                    }
                }
                other => Err(status_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got '{other}')"
                    ),
                    None,
                )),
            })
        }
        (&Method::DELETE, Some(name)) => {
            let Some(ns) = ns else {
                return bad_request("a namespace is needed").into_response();
            };
            write(state, StatusCode::OK, |data| {
                delete(data, &target.resource, &ns, name)
            })
        }
        _ => method_not_allowed(),
    }
}

/// Runs a write under the lock, lets the controller settle, and answers `code` with the
/// object written (or the write's error).
fn write(
    state: &Arc<State>,
    code: StatusCode,
    op: impl FnOnce(&mut Data) -> Result<Value, Failure>,
) -> Response {
    let mut data = state.data();
    let answer = op(&mut data);
    settle(state, &mut data);
    match answer {
        Ok(object) => json_response(code, &object),
        Err(e) => e.into_response(),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("the body must be a JSON object".to_owned())
    }
}

fn parse_yaml_or_json(body: &[u8]) -> Result<Value, String> {
    if let Ok(v) = parse_json(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let mut documents =
        vamp_core::dsl::parse_documents(text).map_err(|e| format!("the body is not YAML: {e}"))?;
    if documents.len() != 1 {
        return Err("the body must be one YAML document".to_owned());
    }
    let value = documents.remove(0).to_json();
    if value.is_object() {
        Ok(value)
    } else {
        Err("the body must be an object".to_owned())
    }
}

// --- answers -------------------------------------------------------------------------------

fn method_not_allowed() -> Response {
    status_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        None,
    )
    .into_response()
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn status_object(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// An error answer: a `Status` with its HTTP code.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    status: Value,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        json_response(self.code, &self.status)
    }
}

fn status_error(code: StatusCode, reason: &str, message: &str, details: Option<Value>) -> Failure {
    Failure {
        code,
        status: status_object(code, reason, message, details),
    }
}

fn bad_request(message: &str) -> Failure {
    status_error(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn details(r: &Resource, name: &str) -> Value {
    json!({"name": name, "group": r.group, "kind": r.plural})
}

fn not_found(r: &Resource, name: &str) -> Failure {
    status_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("{}{} \"{name}\" not found", r.plural, group_suffix(r)),
        Some(details(r, name)),
    )
}

fn conflict(r: &Resource, name: &str, message: &str) -> Failure {
    status_error(
        StatusCode::CONFLICT,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {}{} \"{name}\": {message}",
            r.plural,
            group_suffix(r)
        ),
        Some(details(r, name)),
    )
}

fn group_suffix(r: &Resource) -> String {
    if r.group.is_empty() {
        String::new()
    } else {
        format!(".{}", r.group)
    }
}

// --- the store -----------------------------------------------------------------------------

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Records a change of the object at `key` (`None`: deleted) at a new resourceVersion.
fn record(
    data: &mut Data,
    r: &Resource,
    ns: &str,
    name: &str,
    object: Option<Value>,
    kind: &'static str,
) -> Value {
    data.rv += 1;
    let rv = data.rv;
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let object = match object {
        Some(mut o) => {
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            data.objects.insert(key, o.clone());
            o
        }
        None => {
            let mut o = data.objects.remove(&key).unwrap_or_default();
            o["metadata"]["resourceVersion"] = json!(rv.to_string());
            o
        }
    };
    data.log.push_back(Change {
        rv,
        plural: r.plural,
        namespace: ns.to_owned(),
        kind,
        object: object.clone(),
    });
    object
}

/// Fills what the server sets on a new object.
fn stamp_new(
    data: &mut Data,
    r: &Resource,
    ns: &str,
    object: &mut Value,
) -> Result<String, Failure> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let meta = &mut object["metadata"];
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(n), _) if !n.is_empty() => n.to_owned(),
        (_, Some(prefix)) => {
            data.uids += 1;
            format!("{prefix}{:05x}", data.uids * 7919 % 0xfffff)
        }
        _ => {
            return Err(status_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                &format!(
                    "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                    r.kind
                ),
                None,
            ));
        }
    };
    if !valid_name(&name) {
        return Err(status_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            &format!(
                "{} \"{name}\" is invalid: metadata.name: Invalid value: \"{name}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                r.kind
            ),
            Some(details(r, &name)),
        ));
    }
    data.uids += 1;
    meta["name"] = json!(name);
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", data.uids));
    meta["creationTimestamp"] = json!(now());
    meta["generation"] = json!(1);
    if r.namespaced {
        meta["namespace"] = json!(ns);
    } else if let Value::Object(m) = meta {
        m.remove("namespace");
    }
    if let Value::Object(m) = meta {
        m.remove("resourceVersion");
        m.remove("generateName");
    }
    object["kind"] = json!(r.kind);
    object["apiVersion"] = json!(r.api_version());
    Ok(name)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

fn create(
    data: &mut Data,
    r: &Resource,
    ns: &str,
    mut object: Value,
    managed: Option<Value>,
) -> Result<Value, Failure> {
    if r.namespaced
        && !data
            .objects
            .contains_key(&("namespaces", String::new(), ns.to_owned()))
    {
        return Err(status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        ));
    }
    let name = stamp_new(data, r, ns, &mut object)?;
    if data
        .objects
        .contains_key(&(r.plural, ns.to_owned(), name.clone()))
    {
        return Err(status_error(
            StatusCode::CONFLICT,
            "AlreadyExists",
            &format!("{}{} \"{name}\" already exists", r.plural, group_suffix(r)),
            Some(details(r, &name)),
        ));
    }
    if let Some(managed) = managed {
        object["metadata"]["managedFields"] = managed;
    }
    if r.plural == "services" {
        allocate_service_addresses(data, &mut object);
    }
    Ok(record(data, r, ns, &name, Some(object), "ADDED"))
}

/// What the API server fills in on a new Service: a cluster IP (`10.96.0.0/16`) and, for
/// `NodePort` and `LoadBalancer` Services, a node port per port (from 30000).
fn allocate_service_addresses(data: &mut Data, object: &mut Value) {
    data.service_ips += 1;
    let n = data.service_ips;
    if object["spec"]["clusterIP"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        object["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", (n / 250) % 250, n % 250 + 1));
    }
    let exposed = matches!(
        object["spec"]["type"].as_str(),
        Some("NodePort" | "LoadBalancer")
    );
    if let Some(ports) = object["spec"]["ports"].as_array_mut() {
        for (i, port) in ports.iter_mut().enumerate() {
            if exposed && port["nodePort"].is_null() {
                port["nodePort"] = json!(30000 + (n * 8 + i as u64) % 2768);
            }
        }
    }
}

/// What a write may change: `status` only through the subresource, the rest only through the
/// object; server-set metadata stays.
fn merge_write(r: &Resource, current: &Value, mut next: Value, status: bool) -> Value {
    if status {
        let mut out = current.clone();
        out["status"] = next.get("status").cloned().unwrap_or(Value::Null);
        return out;
    }
    let keep = [
        "uid",
        "creationTimestamp",
        "generation",
        "namespace",
        "name",
        "managedFields",
    ];
    for k in keep {
        if let Some(v) = current["metadata"].get(k) {
            next["metadata"][k] = v.clone();
        }
    }
    if let Some(s) = current.get("status") {
        next["status"] = s.clone();
    } else if let Value::Object(m) = &mut next {
        m.remove("status");
    }
    next["kind"] = json!(r.kind);
    next["apiVersion"] = json!(r.api_version());
    let spec_changed = strip_meta(current) != strip_meta(&next);
    if spec_changed {
        let generation = current["metadata"]["generation"].as_u64().unwrap_or(1);
        next["metadata"]["generation"] = json!(generation + 1);
    }
    next
}

/// An object without `metadata` and `status`: what `generation` counts changes of.
fn strip_meta(o: &Value) -> Value {
    let mut o = o.clone();
    if let Value::Object(m) = &mut o {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

fn replace(
    data: &mut Data,
    target: &Target,
    ns: &str,
    name: &str,
    next: Value,
) -> Result<Value, Failure> {
    let r = &target.resource;
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let Some(mut current) = data.objects.get(&key).cloned() else {
        return Err(not_found(r, name));
    };
    if let Some(annotation) = data.interfere.take() {
        current["metadata"]["annotations"][annotation.as_str()] = json!("touched");
        current = record(data, r, ns, name, Some(current), "MODIFIED");
    }
    if next["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if let Some(rv) = next["metadata"]["resourceVersion"].as_str()
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        data.conflicts += 1;
        return Err(conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut next = next;
    if r.plural == "services"
        && next["spec"]["clusterIP"].is_null()
        && let Some(ip) = current["spec"].get("clusterIP")
    {
        // Immutable: a replace that leaves it out keeps it.
        next["spec"]["clusterIP"] = ip.clone();
    }
    let merged = merge_write(r, &current, next, target.status());
    if merged == current {
        return Ok(current);
    }
    Ok(record(data, r, ns, name, Some(merged), "MODIFIED"))
}

/// RFC 7386.
fn json_merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn merge_patch(
    data: &mut Data,
    target: &Target,
    ns: &str,
    name: &str,
    patch: &Value,
) -> Result<Value, Failure> {
    let r = &target.resource;
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let Some(current) = data.objects.get(&key).cloned() else {
        return Err(not_found(r, name));
    };
    if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
        && Some(rv) != current["metadata"]["resourceVersion"].as_str()
    {
        return Err(conflict(
            r,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let mut next = current.clone();
    json_merge(&mut next, patch);
    let merged = merge_write(r, &current, next, target.status());
    if merged == current {
        return Ok(current);
    }
    Ok(record(data, r, ns, name, Some(merged), "MODIFIED"))
}

fn delete(data: &mut Data, r: &Resource, ns: &str, name: &str) -> Result<Value, Failure> {
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let Some(current) = data.objects.get(&key).cloned() else {
        return Err(not_found(r, name));
    };
    let deleted = record(data, r, ns, name, None, "DELETED");
    data.pending.remove(&key);
    // Its process, if the kubelet runs one, is killed as it is dropped.
    data.processes.remove(&key);
    data.logs.remove(&key);
    // The garbage collector's background deletion of what the object owned.
    if let Some(uid) = current["metadata"]["uid"].as_str() {
        let owned: Vec<Key> = data
            .objects
            .iter()
            .filter(|(_, o)| owner_uid(o) == Some(uid))
            .map(|(k, _)| k.clone())
            .collect();
        for (plural, ons, oname) in owned {
            if let Some(or) = RESOURCES.iter().find(|x| x.plural == plural) {
                let _ = delete(data, or, &ons, &oname);
            }
        }
    }
    Ok(deleted)
}

fn owner_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))?["uid"]
        .as_str()
}

// --- server-side apply ---------------------------------------------------------------------

/// The leaf paths of an object (lists are atomic leaves), without server-set metadata.
fn leaves(value: &Value, prefix: &mut Vec<String>, out: &mut BTreeMap<Vec<String>, Value>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                if prefix.is_empty() && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if prefix.len() == 1
                    && prefix[0] == "metadata"
                    && matches!(
                        k.as_str(),
                        "name"
                            | "namespace"
                            | "resourceVersion"
                            | "uid"
                            | "managedFields"
                            | "creationTimestamp"
                            | "generation"
                    )
                {
                    continue;
                }
                prefix.push(k.clone());
                leaves(v, prefix, out);
                prefix.pop();
            }
        }
        other => {
            if !prefix.is_empty() {
                out.insert(prefix.clone(), other.clone());
            }
        }
    }
}

fn get_path<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, k| v.get(k))
}

fn set_path(value: &mut Value, path: &[String], leaf: Value) {
    let mut at = value;
    for k in path {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = match at {
            Value::Object(m) => m.entry(k.clone()).or_insert(Value::Null),
            _ => return,
        };
    }
    *at = leaf;
}

fn remove_path(value: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = value;
    for k in parents {
        match at.get_mut(k) {
            Some(v) => at = v,
            None => return,
        }
    }
    if let Value::Object(m) = at {
        m.remove(last);
    }
}

/// `FieldsV1`: `{"f:spec": {"f:replicas": {}}}`.
fn fields_v1(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = Value::Object(Map::new());
    for path in paths {
        let keyed: Vec<String> = path.iter().map(|k| format!("f:{k}")).collect();
        set_path(&mut root, &keyed, json!({}));
    }
    root
}

fn paths_of_fields_v1(fields: &Value, prefix: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    if let Value::Object(m) = fields {
        if m.is_empty() && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        for (k, v) in m {
            if let Some(k) = k.strip_prefix("f:") {
                prefix.push(k.to_owned());
                paths_of_fields_v1(v, prefix, out);
                prefix.pop();
            }
        }
    }
}

/// Each manager's fields, from `metadata.managedFields`.
fn managers(o: &Value) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let mut out = BTreeMap::new();
    for entry in o["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(manager) = entry["manager"].as_str() else {
            continue;
        };
        let mut paths = BTreeSet::new();
        paths_of_fields_v1(&entry["fieldsV1"], &mut Vec::new(), &mut paths);
        out.insert(manager.to_owned(), paths);
    }
    out
}

fn managed_fields(r: &Resource, managers: &BTreeMap<String, BTreeSet<Vec<String>>>) -> Value {
    Value::Array(
        managers
            .iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(m, p)| {
                json!({
                    "manager": m,
                    "operation": "Apply",
                    "apiVersion": r.api_version(),
                    "time": now(),
                    "fieldsType": "FieldsV1",
                    "fieldsV1": fields_v1(p),
                })
            })
            .collect(),
    )
}

fn apply(
    data: &mut Data,
    target: &Target,
    ns: &str,
    name: &str,
    patch: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, Failure> {
    let r = &target.resource;
    if patch["metadata"]["name"]
        .as_str()
        .is_some_and(|n| n != name)
    {
        return Err(bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    if patch["kind"].as_str().is_some_and(|k| k != r.kind)
        || patch["apiVersion"]
            .as_str()
            .is_some_and(|v| v != r.api_version())
    {
        return Err(bad_request(&format!(
            "the apiVersion and kind of an apply must be {} {}",
            r.api_version(),
            r.kind
        )));
    }
    let mut applied = BTreeMap::new();
    leaves(patch, &mut Vec::new(), &mut applied);
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let Some(current) = data.objects.get(&key).cloned() else {
        if target.status() {
            return Err(not_found(r, name));
        }
        let mut object = patch.clone();
        object["metadata"]["name"] = json!(name);
        let owned: BTreeSet<Vec<String>> = applied.keys().cloned().collect();
        let all = BTreeMap::from([(manager.to_owned(), owned)]);
        let created = create(data, r, ns, object, Some(managed_fields(r, &all)))?;
        return Ok(created);
    };
    let mut owners = managers(&current);
    // Conflicts: a field another manager owns, applied with another value.
    if !force {
        let mut conflicts = Vec::new();
        for (path, value) in &applied {
            let differs = get_path(&current, path) != Some(value);
            if !differs {
                continue;
            }
            for (other, paths) in &owners {
                if other != manager && paths.contains(path) {
                    conflicts.push(format!("conflict with \"{other}\": .{}", path.join(".")));
                }
            }
        }
        if !conflicts.is_empty() {
            let n = conflicts.len();
            return Err(status_error(
                StatusCode::CONFLICT,
                "Conflict",
                &format!(
                    "Apply failed with {n} conflict{}: {}",
                    if n == 1 { "" } else { "s" },
                    conflicts.join("; ")
                ),
                Some(
                    json!({"name": name, "group": r.group, "kind": r.plural, "causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": c})).collect::<Vec<_>>()}),
                ),
            ));
        }
    }
    let mut next = current.clone();
    // Fields this manager applied before and leaves out now go, unless another owns them.
    let before = owners.remove(manager).unwrap_or_default();
    for path in &before {
        if !applied.contains_key(path) && !owners.values().any(|p| p.contains(path)) {
            remove_path(&mut next, path);
        }
    }
    for (path, value) in &applied {
        set_path(&mut next, path, value.clone());
        for paths in owners.values_mut() {
            // Forced, or the same value: shared ownership when equal, taken over when forced.
            if force && get_path(&current, path) != Some(value) {
                paths.remove(path);
            }
        }
    }
    owners.insert(manager.to_owned(), applied.keys().cloned().collect());
    let mut merged = merge_write(r, &current, next.clone(), target.status());
    // Nothing changed, ownership included: a no-op, as on the API server (no new
    // resourceVersion, no new managedFields time).
    if merged == current && owners == managers(&current) {
        return Ok(current);
    }
    if !target.status() {
        merged["metadata"]["managedFields"] = managed_fields(r, &owners);
    }
    Ok(record(data, r, ns, name, Some(merged), "MODIFIED"))
}

// --- label selectors -----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Selector(Vec<Requirement>);

impl Selector {
    fn parse(text: &str) -> Result<Selector, String> {
        let mut out = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // One requirement up to the next comma outside parentheses.
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    *c == ',' && depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let part = rest[..end].trim();
            rest = rest[end..].trim_start_matches(',').trim();
            out.push(Self::requirement(part)?);
        }
        Ok(Selector(out))
    }

    fn requirement(part: &str) -> Result<Requirement, String> {
        let values = |s: &str| -> Result<Vec<String>, String> {
            let inner = s
                .trim()
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: '{part}': expected a list in parentheses")
                })?;
            Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
        };
        if let Some((k, v)) = part.split_once("!=") {
            return Ok(Requirement::NotEquals(
                k.trim().to_owned(),
                v.trim().to_owned(),
            ));
        }
        if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
            return Ok(Requirement::Equals(
                k.trim().to_owned(),
                v.trim().to_owned(),
            ));
        }
        if let Some((k, v)) = part.split_once(" notin ") {
            return Ok(Requirement::NotIn(k.trim().to_owned(), values(v)?));
        }
        if let Some((k, v)) = part.split_once(" in ") {
            return Ok(Requirement::In(k.trim().to_owned(), values(v)?));
        }
        if let Some(k) = part.strip_prefix('!') {
            return Ok(Requirement::NotExists(k.trim().to_owned()));
        }
        if part.is_empty() || part.contains(char::is_whitespace) {
            return Err(format!("unable to parse requirement: '{part}'"));
        }
        Ok(Requirement::Exists(part.to_owned()))
    }

    fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Whether `o` passes the `labelSelector` and `fieldSelector` of a query.
struct Filter {
    labels: Selector,
    fields: Vec<(String, String, bool)>,
}

impl Filter {
    fn of(query: &BTreeMap<String, String>) -> Result<Filter, Failure> {
        let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str))
            .map_err(|e| bad_request(&e))?;
        let mut fields = Vec::new();
        for part in query
            .get("fieldSelector")
            .map_or("", String::as_str)
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (k, v, eq) = match part.split_once("!=") {
                Some((k, v)) => (k, v, false),
                None => match part.split_once("==").or_else(|| part.split_once('=')) {
                    Some((k, v)) => (k, v, true),
                    None => return Err(bad_request(&format!("invalid field selector: '{part}'"))),
                },
            };
            let k = k.trim();
            if !matches!(k, "metadata.name" | "metadata.namespace") {
                return Err(bad_request(&format!("field label not supported: {k}")));
            }
            fields.push((k.to_owned(), v.trim().to_owned(), eq));
        }
        Ok(Filter { labels, fields })
    }

    fn passes(&self, o: &Value) -> bool {
        self.labels.matches(&o["metadata"]["labels"])
            && self.fields.iter().all(|(k, v, eq)| {
                let field = k.strip_prefix("metadata.").unwrap_or(k);
                (o["metadata"][field].as_str() == Some(v.as_str())) == *eq
            })
    }
}

// --- list and watch ------------------------------------------------------------------------

fn in_scope(target: &Target, plural: &str, ns: &str) -> bool {
    plural == target.resource.plural
        && (!target.resource.namespaced || target.namespace.as_deref().is_none_or(|t| t == ns))
}

fn list(state: &Arc<State>, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let filter = match Filter::of(query) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let data = state.data();
    let items: Vec<Value> = data
        .objects
        .iter()
        .filter(|((plural, ns, _), o)| in_scope(target, plural, ns) && filter.passes(o))
        .map(|(_, o)| o.clone())
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", target.resource.kind),
            "apiVersion": target.resource.api_version(),
            "metadata": {"resourceVersion": data.rv.to_string()},
            "items": items,
        }),
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch_stream(state: &Arc<State>, target: &Target, query: &BTreeMap<String, String>) -> Response {
    let filter = match Filter::of(query) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let from = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| v.parse::<u64>());
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let r = target.resource;
    let scope_ns = target.namespace.clone();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    // What the watch starts with, and from where it follows the log.
    let (first, mut seen) = {
        let mut data = state.data();
        match from {
            Some(Err(_)) => return bad_request("resourceVersion must be a number").into_response(),
            None => {
                let initial: Vec<Bytes> = data
                    .objects
                    .iter()
                    .filter(|((plural, ns, _), o)| in_scope(target, plural, ns) && filter.passes(o))
                    .map(|(_, o)| event_line("ADDED", o))
                    .collect();
                (initial, data.rv)
            }
            Some(Ok(rv)) => {
                let oldest = data.log.front().map_or(data.rv + 1, |c| c.rv);
                if rv + 1 < oldest && rv < data.rv {
                    data.expired += 1;
                    let gone = status_object(
                        StatusCode::GONE,
                        "Expired",
                        &format!(
                            "too old resource version: {rv} ({})",
                            oldest.saturating_sub(1)
                        ),
                        None,
                    );
                    (vec![event_line("ERROR", &gone)], u64::MAX)
                } else {
                    (Vec::new(), rv)
                }
            }
        }
    };
    let state = state.clone();
    let every = state.config.bookmark_every;
    tokio::spawn(async move {
        for line in first {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        if seen == u64::MAX {
            return;
        }
        let mut changed = state.changed.subscribe();
        let mut ends = state.ends.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut bookmark = tokio::time::interval(every);
        bookmark.tick().await;
        loop {
            let (lines, latest) = {
                let data = state.data();
                let lines: Vec<Bytes> = data
                    .log
                    .iter()
                    .filter(|c| c.rv > seen)
                    .filter(|c| {
                        c.plural == r.plural
                            && (!r.namespaced
                                || scope_ns.as_deref().is_none_or(|n| n == c.namespace))
                            && filter.passes(&c.object)
                    })
                    .map(|c| event_line(c.kind, &c.object))
                    .collect();
                (lines, data.rv)
            };
            seen = latest;
            for line in lines {
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = bookmark.tick(), if bookmarks => {
                    let mark = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": {"resourceVersion": seen.to_string()}});
                    if tx.send(Ok(event_line("BOOKMARK", &mark))).await.is_err() {
                        return;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return,
                _ = ends.changed() => return,
            }
        }
    });
    let stream = tokio_stream_from(rx);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// --- pod logs ------------------------------------------------------------------------------

/// Starts copying a just-started process's output into its pod's log.
fn collect_output(state: &Arc<State>, data: &mut Data, key: &Key) {
    let Some(process) = data.processes.get_mut(key) else {
        return;
    };
    type Pipe = Box<dyn tokio::io::AsyncRead + Send + Unpin>;
    let mut pipes: Vec<Pipe> = Vec::new();
    if let Some(out) = process.child.stdout.take() {
        pipes.push(Box::new(out));
    }
    if let Some(err) = process.child.stderr.take() {
        pipes.push(Box::new(err));
    }
    data.logs.insert(
        key.clone(),
        PodLog {
            text: String::new(),
            open: u8::try_from(pipes.len()).unwrap_or(2),
        },
    );
    for pipe in pipes {
        let (state, key) = (state.clone(), key.clone());
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(log) = state.data().logs.get_mut(&key) {
                    log.text.push_str(&line);
                    log.text.push('\n');
                }
                state.logged.send_modify(|n| *n += 1);
            }
            if let Some(log) = state.data().logs.get_mut(&key) {
                log.open = log.open.saturating_sub(1);
            }
            state.logged.send_modify(|n| *n += 1);
        });
    }
}

/// `GET …/pods/{name}/log`: the pod's output so far, or with `follow=true` a stream of it
/// that ends when the process has ended (or the pod is deleted).
fn pod_log(
    state: &Arc<State>,
    ns: String,
    name: &str,
    query: &BTreeMap<String, String>,
) -> Response {
    let pods = RESOURCES[0];
    let key: Key = ("pods", ns, name.to_owned());
    {
        let data = state.data();
        let Some(pod) = data.objects.get(&key) else {
            return not_found(&pods, name).into_response();
        };
        let first = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let container = query.get("container").cloned().unwrap_or(first.clone());
        if container != first {
            return bad_request(&format!(
                "container {container} is not valid for pod {name}"
            ))
            .into_response();
        }
        if !data.logs.contains_key(&key) && pod["status"]["phase"] == "Pending" {
            return bad_request(&format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            ))
            .into_response();
        }
    }
    let follow = query.get("follow").is_some_and(|f| f == "true" || f == "1");
    let text_response = |body: Body| {
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body)
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    };
    if !follow {
        let text = state
            .data()
            .logs
            .get(&key)
            .map(|l| l.text.clone())
            .unwrap_or_default();
        return text_response(Body::from(text));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let state = state.clone();
    tokio::spawn(async move {
        let mut logged = state.logged.subscribe();
        let mut sent = 0;
        loop {
            logged.mark_unchanged();
            let (more, open) = {
                let data = state.data();
                match data.logs.get(&key) {
                    Some(log) => (log.text[sent..].to_owned(), log.open > 0),
                    None => (String::new(), false),
                }
            };
            sent += more.len();
            if !more.is_empty() && tx.send(Ok(Bytes::from(more))).await.is_err() {
                return;
            }
            if !open {
                return;
            }
            if logged.changed().await.is_err() {
                return;
            }
        }
    });
    text_response(Body::from_stream(tokio_stream_from(rx)))
}

// --- the controller ------------------------------------------------------------------------

/// After every write: trims the watch log, runs the controller, wakes the watches.
fn settle(state: &Arc<State>, data: &mut Data) {
    reconcile(data, &state.config);
    while data.log.len() > state.config.watch_window {
        data.log.pop_front();
    }
    state.changed.send_replace(data.rv);
}

/// A short stable hash of a pod template (`pod-template-hash`).
fn template_hash(template: &Value) -> String {
    let text = template.to_string();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn reconcile(data: &mut Data, config: &FakeKubernetesConfig) {
    let (deploy_r, pod_r, job_r) = (RESOURCES[6], RESOURCES[0], RESOURCES[8]);
    let owners: Vec<(Resource, Value)> = data
        .objects
        .iter()
        .filter(|((plural, _, _), _)| *plural == "deployments" || *plural == "jobs")
        .map(|((plural, _, _), o)| (if *plural == "jobs" { job_r } else { deploy_r }, o.clone()))
        .collect();
    for (r, owner) in owners {
        let ns = owner["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let uid = owner["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let owner_name = owner["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let template = owner["spec"]["template"].clone();
        let hash = template_hash(&template);
        let wanted = if r.plural == "jobs" {
            1
        } else {
            owner["spec"]["replicas"].as_u64().unwrap_or(1)
        };
        let pods: Vec<(Key, Value)> = data
            .objects
            .iter()
            .filter(|(k, o)| k.0 == "pods" && owner_uid(o) == Some(uid.as_str()))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        // Pods of an old template go; then as many as wanted are made.
        let mut current = 0;
        for (key, pod) in &pods {
            let same =
                pod["metadata"]["labels"]["pod-template-hash"].as_str() == Some(hash.as_str());
            if same && current < wanted {
                current += 1;
            } else if r.plural == "deployments" {
                let _ = delete(data, &pod_r, &key.1, &key.2);
            }
        }
        let made_before = pods.len() as u64;
        for i in current..wanted {
            if r.plural == "jobs" && made_before > 0 {
                break;
            }
            data.uids += 1;
            let name = format!(
                "{owner_name}-{hash}-{:05x}",
                (data.uids * 104_729 + i) % 0xfffff
            );
            let mut labels = template["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels["pod-template-hash"] = json!(hash);
            let pod = json!({
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": template["metadata"]["annotations"].clone(),
                    "ownerReferences": [{
                        "apiVersion": r.api_version(), "kind": r.kind, "name": owner_name,
                        "uid": uid, "controller": true, "blockOwnerDeletion": true,
                    }],
                },
                "spec": template["spec"].clone(),
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]},
            });
            if create(data, &pod_r, &ns, pod, None).is_ok() {
                data.pending.insert(
                    ("pods", ns.clone(), name),
                    tokio::time::Instant::now() + config.start_after,
                );
            }
        }
        owner_status(data, r, &ns, &owner_name, &uid, &hash);
    }
}

/// The owner's status, from its pods.
fn owner_status(data: &mut Data, r: Resource, ns: &str, name: &str, uid: &str, hash: &str) {
    let key = (r.plural, ns.to_owned(), name.to_owned());
    let Some(owner) = data.objects.get(&key).cloned() else {
        return;
    };
    let pods: Vec<&Value> = data
        .objects
        .iter()
        .filter(|(k, o)| k.0 == "pods" && owner_uid(o) == Some(uid))
        .map(|(_, o)| o)
        .collect();
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let updated = pods
        .iter()
        .filter(|p| p["metadata"]["labels"]["pod-template-hash"].as_str() == Some(hash))
        .count();
    let status = if r.plural == "jobs" {
        let failed = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Failed")
            .count();
        let succeeded = pods
            .iter()
            .filter(|p| p["status"]["phase"] == "Succeeded")
            .count();
        let mut s = json!({"active": pods.len() - failed - succeeded});
        if succeeded > 0 {
            s["succeeded"] = json!(succeeded);
            s["conditions"] = json!([{"type": "Complete", "status": "True"}]);
        }
        if failed > 0 {
            s["failed"] = json!(failed);
            s["conditions"] =
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]);
        }
        s
    } else {
        let wanted = owner["spec"]["replicas"].as_u64().unwrap_or(1);
        json!({
            "observedGeneration": owner["metadata"]["generation"],
            "replicas": pods.len(),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": pods.len().saturating_sub(ready),
            "conditions": [{
                "type": "Available",
                "status": if ready as u64 >= wanted { "True" } else { "False" },
                "reason": if ready as u64 >= wanted { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
            }],
        })
    };
    if owner.get("status") != Some(&status) {
        let mut next = owner;
        next["status"] = status;
        record(data, &r, ns, name, Some(next), "MODIFIED");
    }
}

fn pod_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Moves pods whose time has come from `Pending` to running (or failing), then their
/// owners' status; runs beside the server.
async fn run_pods(state: Arc<State>) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        probe_pass(&state).await;
        let mut data = state.data();
        let now = tokio::time::Instant::now();
        let due: Vec<Key> = data
            .pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let watched = kubelet_pass(&mut data);
        if due.is_empty() && !watched {
            continue;
        }
        for key in due {
            data.pending.remove(&key);
            let Some(mut pod) = data.objects.get(&key).cloned() else {
                continue;
            };
            let failing = data
                .failing
                .iter()
                .find(|(s, _)| s.matches(&pod["metadata"]["labels"]))
                .map(|(_, reason)| reason.clone());
            let job = pod["metadata"]["ownerReferences"][0]["kind"] == "Job";
            data.ips += 1;
            if let Some(kubelet) = &state.config.kubelet
                && failing.is_none()
            {
                let [a, b] = data.ip_base;
                let ip = format!("127.{a}.{b}.{}", data.ips % 253 + 1);
                pod["status"] = start_process(&mut data, kubelet, &key, &pod, &ip);
                collect_output(&state, &mut data, &key);
                record(
                    &mut data,
                    &RESOURCES[0],
                    &key.1,
                    &key.2,
                    Some(pod),
                    "MODIFIED",
                );
                continue;
            }
            let ip = format!("10.244.{}.{}", (data.ips / 250) % 250, data.ips % 250 + 2);
            let container = pod["spec"]["containers"][0]["name"]
                .as_str()
                .unwrap_or("main")
                .to_owned();
            pod["status"] = match (&failing, job) {
                (Some(reason), false) => json!({
                    "phase": "Pending", "podIP": ip, "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                    "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": pod["spec"]["containers"][0]["image"], "imageID": "", "state": {"waiting": {"reason": reason, "message": format!("the fake was told to fail: {reason}")}}}],
                }),
                (Some(reason), true) => json!({
                    "phase": "Failed", "podIP": ip, "reason": reason,
                    "conditions": [{"type": "Ready", "status": "False"}],
                }),
                (None, true) => json!({
                    "phase": "Succeeded", "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted"}],
                }),
                (None, false) => running_status(
                    &ip,
                    &container,
                    pod["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default(),
                    true,
                ),
            };
            record(
                &mut data,
                &RESOURCES[0],
                &key.1,
                &key.2,
                Some(pod),
                "MODIFIED",
            );
        }
        settle(&state, &mut data);
    }
}

fn now_text() -> String {
    now()
}

// --- the kubelet ---------------------------------------------------------------------------

/// Starts a pod's process; answers the pod's status.
fn start_process(
    data: &mut Data,
    kubelet: &FakeKubelet,
    key: &Key,
    pod: &Value,
    ip: &str,
) -> Value {
    let container = &pod["spec"]["containers"][0];
    let name = container["name"].as_str().unwrap_or("main").to_owned();
    let image = container["image"].as_str().unwrap_or_default().to_owned();
    let waiting = |reason: &str, message: String| {
        json!({
            "phase": "Pending", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
            "containerStatuses": [{"name": name, "ready": false, "restartCount": 0, "image": image, "imageID": "",
                "state": {"waiting": {"reason": reason, "message": message}}}],
        })
    };
    let Some(argv) = kubelet.images.get(&image).filter(|a| !a.is_empty()) else {
        return waiting(
            "ImagePullBackOff",
            format!("Back-off pulling image \"{image}\": the fake kubelet knows no such image"),
        );
    };
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .args(
            container["args"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        )
        .env(&kubelet.host_env, ip)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for e in container["env"].as_array().into_iter().flatten() {
        if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
            command.env(k, v);
        }
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return waiting(
                "RunContainerError",
                format!("cannot start {}: {e}", argv[0]),
            );
        }
    };
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    let port_of = |p: &Value| -> Option<u16> {
        match p {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(named) => ports
                .iter()
                .find(|c| c["name"].as_str() == Some(named))
                .and_then(|c| c["containerPort"].as_u64())
                .and_then(|n| u16::try_from(n).ok()),
            _ => None,
        }
    };
    let first = ports
        .first()
        .and_then(|c| c["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok());
    let probe = &container["readinessProbe"];
    let (port, path) = if probe["httpGet"].is_object() {
        (
            port_of(&probe["httpGet"]["port"]),
            Some(probe["httpGet"]["path"].as_str().unwrap_or("/").to_owned()),
        )
    } else if probe["tcpSocket"].is_object() {
        (port_of(&probe["tcpSocket"]["port"]), None)
    } else {
        (first, None)
    };
    let ready = port.is_none();
    data.processes.insert(
        key.clone(),
        Process {
            child,
            probe: (ip.to_owned(), port.unwrap_or(0), path),
            ready,
        },
    );
    running_status(ip, &name, &image, ready)
}

fn running_status(ip: &str, container: &str, image: &str, ready: bool) -> Value {
    let flag = if ready { "True" } else { "False" };
    json!({
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": now_text(),
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": flag}, {"type": "Ready", "status": flag}],
        "containerStatuses": [{"name": container, "ready": ready, "started": true, "restartCount": 0,
            "image": image, "imageID": "", "state": {"running": {"startedAt": now_text()}}}],
    })
}

/// Notes processes that exited (their pods' status says so); true when a status changed.
fn kubelet_pass(data: &mut Data) -> bool {
    let exited: Vec<(Key, Option<i32>)> = data
        .processes
        .iter_mut()
        .filter_map(|(k, p)| match p.child.try_wait() {
            Ok(Some(status)) => Some((k.clone(), status.code())),
            Ok(None) => None,
            Err(_) => Some((k.clone(), None)),
        })
        .collect();
    let changed = !exited.is_empty();
    for (key, code) in exited {
        data.processes.remove(&key);
        let Some(mut pod) = data.objects.get(&key).cloned() else {
            continue;
        };
        let code = code.unwrap_or(137);
        let container = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("main")
            .to_owned();
        let image = pod["spec"]["containers"][0]["image"].clone();
        let terminated = json!({"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "finishedAt": now_text()});
        let job = pod["metadata"]["ownerReferences"][0]["kind"] == "Job";
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
        if job {
            pod["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
            pod["status"]["containerStatuses"] = json!([{"name": container, "ready": false, "restartCount": 0, "image": image, "imageID": "", "state": {"terminated": terminated}}]);
        } else {
            pod["status"]["containerStatuses"] = json!([{"name": container, "ready": false, "restartCount": 1, "image": image, "imageID": "",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {container}: it exited with {code}")}},
                "lastState": {"terminated": terminated}}]);
        }
        record(data, &RESOURCES[0], &key.1, &key.2, Some(pod), "MODIFIED");
    }
    changed
}

/// Probes the processes not ready yet (outside the lock), and marks those that answer.
async fn probe_pass(state: &Arc<State>) {
    let waiting: Vec<(Key, Probe)> = state
        .data()
        .processes
        .iter()
        .filter(|(_, p)| !p.ready)
        .map(|(k, p)| (k.clone(), p.probe.clone()))
        .collect();
    if waiting.is_empty() {
        return;
    }
    let mut answered = Vec::new();
    for (key, (ip, port, path)) in waiting {
        if probe(&ip, port, path.as_deref()).await {
            answered.push(key);
        }
    }
    if answered.is_empty() {
        return;
    }
    let mut data = state.data();
    for key in answered {
        let Some(process) = data.processes.get_mut(&key) else {
            continue;
        };
        process.ready = true;
        let Some(mut pod) = data.objects.get(&key).cloned() else {
            continue;
        };
        let ip = pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let container = pod["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("main")
            .to_owned();
        let image = pod["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        pod["status"] = running_status(&ip, &container, &image, true);
        record(
            &mut data,
            &RESOURCES[0],
            &key.1,
            &key.2,
            Some(pod),
            "MODIFIED",
        );
    }
    settle(state, &mut data);
}

/// A readiness probe: a TCP connection, or an HTTP GET answered 200–399, within 300 ms.
async fn probe(ip: &str, port: u16, path: Option<&str>) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut tcp = tokio::net::TcpStream::connect((ip, port)).await.ok()?;
        let Some(path) = path else {
            return Some(true);
        };
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        let code: u16 = std::str::from_utf8(&head[9..12]).ok()?.parse().ok()?;
        Some((200..400).contains(&code))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(300), attempt).await,
        Ok(Some(true))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_match_as_the_api_server_does() {
        let labels = json!({"app": "shop", "version": "2", "tier": "web"});
        for (selector, want) in [
            ("", true),
            ("app=shop", true),
            ("app==shop,version=2", true),
            ("app!=shop", false),
            ("version in (1, 2)", true),
            ("version notin (2,3)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing,app in (shop),version notin (9)", true),
        ] {
            let s = Selector::parse(selector).expect(selector);
            assert_eq!(s.matches(&labels), want, "{selector}");
        }
        assert!(Selector::parse("version in 1,2").is_err());
        assert!(Selector::parse("a b").is_err());
    }

    #[test]
    fn paths_name_kinds_namespaces_objects_and_status() {
        let t = parse_path("/apis/apps/v1/namespaces/vamp/deployments/shop/status").expect("path");
        assert_eq!(
            (
                t.resource.kind,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.status()
            ),
            ("Deployment", Some("vamp"), Some("shop"), true)
        );
        let t = parse_path("/api/v1/pods").expect("path");
        assert_eq!((t.resource.kind, t.namespace, t.name), ("Pod", None, None));
        let t = parse_path("/api/v1/namespaces/vamp").expect("path");
        assert_eq!(
            (t.resource.kind, t.name.as_deref()),
            ("Namespace", Some("vamp"))
        );
        assert!(parse_path("/apis/apps/v1/namespaces/vamp/widgets").is_none());
        assert!(parse_path("/api/v1/namespaces/vamp/namespaces/x").is_none());
    }

    #[test]
    fn a_merge_patch_is_rfc_7386() {
        let mut doc = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        json_merge(&mut doc, &json!({"a": null, "b": {"c": 5}, "l": [9]}));
        assert_eq!(doc, json!({"b": {"c": 5, "d": 3}, "l": [9]}));
    }

    #[test]
    fn managed_fields_read_back_as_the_paths_they_were_made_of() {
        let paths: BTreeSet<Vec<String>> = [
            vec!["spec".to_owned(), "replicas".to_owned()],
            vec!["metadata".to_owned(), "labels".to_owned(), "app".to_owned()],
        ]
        .into();
        let v1 = fields_v1(&paths);
        assert_eq!(v1["f:spec"]["f:replicas"], json!({}));
        let mut back = BTreeSet::new();
        paths_of_fields_v1(&v1, &mut Vec::new(), &mut back);
        assert_eq!(back, paths);
    }
}
