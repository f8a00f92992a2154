//! The engine's unit tests. One file: they share fixtures, and each test is short.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;

use super::*;
use crate::dsl::{self, ErrorKind};
use crate::model::*;
use crate::traits::GatewayEndpoint;

const BREEDS: &str = "
---
kind: breeds
name: monarch:1.0
deployable: monarch:1.0
ports: {web: 8080/http}
---
kind: breeds
name: monarch:1.1
deployable: monarch:1.1
ports: {web: 8080/http}
---
kind: breeds
name: recommendation:1.0
deployable: recommendation:1.0
ports: {api: 9090/http, admin: 9091/tcp}
environment_variables:
  SECRET: ~
constants:
  SCHEMA: recs
---
kind: breeds
name: frontend:1.0
deployable: frontend:1.0
ports: {web: 8080/http}
environment_variables:
  BACKEND: http://$recs.host:$recs.ports.api/v1
  BACKEND_HOST[RECS_HOST]: $recs.host
  BACKEND_PORT: $recs.ports.api
  SCHEMA: $recs.constants.SCHEMA
  SECRET_COPY: $recs.environment_variables.SECRET
  OWN: prefix-$SCHEMA_LOCAL
  SCHEMA_LOCAL: local
  NAMESPACE: ${config://vamp.namespace}
  HOME_DIR: ${env://HOME}
  UNKNOWN: x${config://nope}y
dependencies:
  recs: recommendation:1.*
";

fn store() -> Vec<Artifact> {
    dsl::read(BREEDS, None).unwrap()
}

/// A blueprint from YAML, expanded against the test breeds.
fn bp(yaml: &str) -> Blueprint {
    let text = format!("kind: blueprints\n{yaml}");
    let read = dsl::read(&text, None).unwrap_or_else(|e| panic!("{e}"));
    match dsl::expand(&read[0], &store()).unwrap() {
        Artifact::Blueprint(b) => b,
        other => panic!("{other:?}"),
    }
}

fn config() -> EngineConfig {
    EngineConfig::default()
}

fn weights(d: &Deployment, cluster: &str, port: &str) -> Vec<(String, u8)> {
    d.clusters[cluster].gateways[port]
        .routes
        .iter()
        .map(|(k, r)| (k.clone(), r.inline().unwrap().weight.unwrap().get()))
        .collect()
}

fn w(pairs: &[(&str, u8)]) -> Vec<(String, u8)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

fn status(d: &Deployment, cluster: &str, breed: &str) -> (Intention, PhaseName) {
    let s = d.clusters[cluster]
        .services
        .iter()
        .find(|s| s.breed.name == breed)
        .unwrap();
    (s.status.intention, s.status.phase.name)
}

/// Spec §2.4, step by step.
#[test]
fn the_monarch_example() {
    let now = Utc::now();
    let d1 = merge(
        None,
        "monarch",
        &bp("name: monarch\nclusters:\n  monarch:\n    breed: monarch:1.0\n"),
        &config(),
        now,
    )
    .unwrap();
    assert_eq!(weights(&d1, "monarch", "web"), w(&[("monarch:1.0", 100)]));
    assert_eq!(
        status(&d1, "monarch", "monarch:1.0"),
        (Intention::Deployment, PhaseName::Initiated)
    );

    let d2 = merge(
        Some(&d1),
        "monarch",
        &bp("name: monarch-1.1\nclusters:\n  monarch:\n    breed: monarch:1.1\n  recommendation:\n    breed: recommendation:1.0\nenvironment_variables:\n  recommendation.SECRET: s3cr3t\n"),
        &config(),
        now,
    )
    .unwrap();
    assert_eq!(
        weights(&d2, "monarch", "web"),
        w(&[("monarch:1.0", 100), ("monarch:1.1", 0)]),
        "a new service joins a full gateway at 0%"
    );
    assert_eq!(
        weights(&d2, "recommendation", "api"),
        w(&[("recommendation:1.0", 100)])
    );
    assert_eq!(d2.name, "monarch", "the deployment keeps its name");

    let shifted = merge(
        Some(&d2),
        "monarch",
        &bp("name: monarch\nclusters:\n  monarch:\n    gateways:\n      web:\n        routes:\n          monarch:1.0: {weight: 0%}\n          monarch:1.1: {weight: 100%}\n    services: [monarch:1.0, monarch:1.1]\n"),
        &config(),
        now,
    )
    .unwrap();
    assert_eq!(
        weights(&shifted, "monarch", "web"),
        w(&[("monarch:1.0", 0), ("monarch:1.1", 100)])
    );

    // Removing 1.0 from d2 (where it still has all the traffic) is refused…
    let remove_old = bp("name: monarch\nclusters:\n  monarch:\n    breed: monarch:1.0\n");
    let e = slice(&d2, &remove_old, now).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRouteWeight);
    assert!(e.message.contains("0%"), "{}", e.message);
    // …and accepted once the traffic has moved.
    let sliced = slice(&shifted, &remove_old, now).unwrap();
    assert_eq!(
        status(&sliced, "monarch", "monarch:1.0"),
        (Intention::Undeployment, PhaseName::Initiated)
    );
    assert_eq!(
        weights(&sliced, "monarch", "web"),
        w(&[("monarch:1.1", 100)])
    );

    // The driver removes it; the service leaves the deployment.
    let mut done = sliced;
    assert!(!finish_undeployment(&mut done, "monarch", "monarch:1.0"));
    assert_eq!(done.clusters["monarch"].services.len(), 1);

    // Removing everything empties the deployment.
    let all = bp(
        "name: monarch\nclusters:\n  monarch: [monarch:1.1]\n  recommendation: [recommendation:1.0]\n",
    );
    let mut gone = slice(&done, &all, now).unwrap();
    assert!(
        gone.clusters.values().all(|c| c.gateways.is_empty()),
        "clusters with nothing running lose their gateways"
    );
    assert!(!finish_undeployment(&mut gone, "monarch", "monarch:1.1"));
    assert!(finish_undeployment(
        &mut gone,
        "recommendation",
        "recommendation:1.0"
    ));
    assert!(gone.ports.is_empty() && gone.hosts.is_empty());
}

#[test]
fn a_new_cluster_splits_evenly() {
    let text = "---\nkind: breeds\nname: s:1\ndeployable: s\nports: {web: 80}\n---\nkind: breeds\nname: s:2\ndeployable: s\nports: {web: 80}\n---\nkind: breeds\nname: s:3\ndeployable: s\nports: {web: 80}\n";
    let store = dsl::read(text, None).unwrap();
    let read = dsl::read(
        "kind: blueprints\nname: s\nclusters:\n  s: [s:1, s:2, s:3]\n",
        None,
    )
    .unwrap();
    let Artifact::Blueprint(b) = dsl::expand(&read[0], &store).unwrap() else {
        panic!()
    };
    let d = merge(None, "s", &b, &config(), Utc::now()).unwrap();
    assert_eq!(
        weights(&d, "s", "web"),
        w(&[("s:1", 33), ("s:2", 33), ("s:3", 34)])
    );
}

#[test]
fn merging_again_keeps_status_when_nothing_changed() {
    let now = Utc::now();
    let b = bp(
        "name: m\nclusters:\n  monarch:\n    breed: monarch:1.0\n    scale: {cpu: 1, memory: 1GB}\n",
    );
    let mut d = merge(None, "m", &b, &config(), now).unwrap();
    d.clusters["monarch"].services[0].status.phase.name = PhaseName::Done;
    let again = merge(Some(&d), "m", &b, &config(), now).unwrap();
    assert_eq!(status(&again, "monarch", "monarch:1.0").1, PhaseName::Done);
    // Omitting the scale keeps the old one and is no change (Vamp reset the service here).
    let no_scale = bp("name: m\nclusters:\n  monarch:\n    breed: monarch:1.0\n");
    let again = merge(Some(&d), "m", &no_scale, &config(), now).unwrap();
    assert_eq!(status(&again, "monarch", "monarch:1.0").1, PhaseName::Done);
    let scale = again.clusters["monarch"].services[0]
        .scale
        .as_ref()
        .unwrap();
    assert_eq!(scale.cpu.millis(), 1000, "the old scale stays");
    // A weight change leaves the service alone too.
    let weights_only = bp(
        "name: m\nclusters:\n  monarch:\n    gateways: {web: {routes: {monarch:1.0: {weight: 100%}}}}\n    services: [monarch:1.0]\n",
    );
    let again = merge(Some(&d), "m", &weights_only, &config(), now).unwrap();
    assert_eq!(status(&again, "monarch", "monarch:1.0").1, PhaseName::Done);
    // A new scale starts it over and clears the resolved environment.
    let mut resolved = d.clone();
    resolved.clusters["monarch"].services[0].interpolated = Some(Map::new());
    let rescaled = bp(
        "name: m\nclusters:\n  monarch:\n    breed: monarch:1.0\n    scale: {cpu: 2, memory: 1GB}\n",
    );
    let again = merge(Some(&resolved), "m", &rescaled, &config(), now).unwrap();
    assert_eq!(
        status(&again, "monarch", "monarch:1.0").1,
        PhaseName::Initiated
    );
    assert_eq!(again.clusters["monarch"].services[0].interpolated, None);
}

#[test]
fn gateways_are_derived_with_ports_and_virtual_hosts() {
    let now = Utc::now();
    let b = bp(
        "name: shop\ngateways:\n  9050: monarch/web\nclusters:\n  monarch:\n    breed: monarch:1.0\n  recommendation:\n    breed: recommendation:1.0\nenvironment_variables:\n  recommendation.SECRET: x\n",
    );
    let mut d = merge(None, "shop", &b, &config(), now).unwrap();
    assert_eq!(
        d.ports.values().collect::<Vec<_>>(),
        ["0", "0", "0"],
        "unallocated"
    );
    let taken = BTreeSet::from([40000]);
    let last = allocate_ports(&mut d, &taken, &config(), None).unwrap();
    assert_eq!(last, Some(40003));
    let ports: Vec<(&str, &str)> = d
        .ports
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        ports,
        [
            ("monarch.web", "40001"),
            ("recommendation.api", "40002"),
            ("recommendation.admin", "40003")
        ]
    );

    let gs = gateways(&d, &config());
    let names: Vec<&str> = gs.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "shop/monarch/web",
            "shop/recommendation/api",
            "shop/recommendation/admin",
            "shop/9050"
        ]
    );
    let web = &gs[0];
    assert_eq!(
        web.port,
        Some(GatewayPort {
            number: 40001,
            kind: PortType::Http
        })
    );
    assert_eq!(
        web.routes.keys().collect::<Vec<_>>(),
        ["shop/monarch/monarch:1.0/web"]
    );
    assert_eq!(web.virtual_hosts, ["web.monarch.shop.vamp"]);
    assert_eq!(
        gs[2].port.unwrap().kind,
        PortType::Tcp,
        "the breed port's type"
    );
    let external = &gs[3];
    assert_eq!(
        external.port,
        Some(GatewayPort {
            number: 9050,
            kind: PortType::Http
        })
    );
    assert_eq!(
        external.routes.keys().collect::<Vec<_>>(),
        ["shop/monarch/web"]
    );
    assert_eq!(external.virtual_hosts, ["9050.shop.vamp"]);

    // Re-planning keeps the allocated ports (they are part of the deployment).
    let again = merge(Some(&d), "shop", &b, &config(), now).unwrap();
    assert_eq!(again.ports, d.ports);
    let mut again = again;
    assert_eq!(
        allocate_ports(&mut again, &taken, &config(), last).unwrap(),
        last,
        "nothing new to allocate"
    );
}

#[test]
fn the_port_range_can_run_out() {
    let b = bp(
        "name: r\nclusters:\n  recommendation:\n    breed: recommendation:1.0\nenvironment_variables:\n  recommendation.SECRET: x\n",
    );
    let mut d = merge(None, "r", &b, &config(), Utc::now()).unwrap();
    let small = EngineConfig {
        ports: PortAllocator::new(50000..=50000),
        ..config()
    };
    let e = allocate_ports(&mut d, &BTreeSet::new(), &small, None).unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoAvailablePortError);
}

#[test]
fn dependencies_resolve_to_clusters_and_environment_to_gateways() {
    let now = Utc::now();
    let b = bp(
        "name: shop\nclusters:\n  front:\n    breed: frontend:1.0\n  recs:\n    breed: recommendation:1.0\nenvironment_variables:\n  recs.SECRET: s3cr3t\n",
    );
    let mut d = merge(None, "shop", &b, &config(), now).unwrap();
    allocate_ports(&mut d, &BTreeSet::new(), &config(), None).unwrap();
    let front = d.clusters["front"].services[0].clone();
    assert_eq!(
        front.dependencies.get("recs").map(String::as_str),
        Some("recs")
    );
    let api = d.ports["recs.api"].clone();

    let no_gateways = BTreeMap::new();
    let sources = EnvironmentSources {
        gateways: &no_gateways,
        config: &|k| (k == "vamp.namespace").then(|| "prod".to_owned()),
        env: &|k| (k == "HOME").then(|| "/home/vamp".to_owned()),
    };
    let env = resolve_environment(&d, "front", &front, &sources);
    let get = |k: &str| env.get(k).map(String::as_str).unwrap_or("<missing>");
    assert_eq!(get("BACKEND"), format!("http://127.0.0.1:{api}/v1"));
    assert_eq!(
        get("RECS_HOST"),
        "127.0.0.1",
        "aliases name the container variable"
    );
    assert_eq!(get("BACKEND_PORT"), api);
    assert_eq!(get("SCHEMA"), "recs");
    assert_eq!(
        get("SECRET_COPY"),
        "s3cr3t",
        "the dependency's deployment-scope value"
    );
    assert_eq!(get("OWN"), "prefix-local");
    assert_eq!(get("NAMESPACE"), "prod");
    assert_eq!(get("HOME_DIR"), "/home/vamp");
    assert_eq!(get("UNKNOWN"), "xy", "unknown references are empty");

    // Where the driver publishes gateways elsewhere (a Kubernetes Service), host:port follow it.
    let published = BTreeMap::from([(
        "shop/recs/api".to_owned(),
        GatewayEndpoint {
            name: "shop/recs/api".into(),
            host: "10.0.0.7".into(),
            port: 80,
        },
    )]);
    let sources = EnvironmentSources {
        gateways: &published,
        ..sources
    };
    let env = resolve_environment(&d, "front", &front, &sources);
    assert_eq!(env["BACKEND"], "http://10.0.0.7:80/v1");
}

#[test]
fn planning_errors_name_the_problem() {
    let now = Utc::now();
    // A dependency no cluster provides.
    let e = merge(
        None,
        "x",
        &bp("name: x\nclusters:\n  front: frontend:1.0\n"),
        &config(),
        now,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnresolvedDependencyError);
    assert_eq!(e.path, "clusters.front.services[0].breed.dependencies.recs");
    // A placeholder nobody fills.
    let e = merge(
        None,
        "x",
        &bp("name: x\nclusters:\n  recs: recommendation:1.0\n"),
        &config(),
        now,
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnresolvedVariableValueError);
    // References must be expanded first.
    let raw = dsl::read(
        "kind: blueprints\nname: x\nclusters:\n  m: monarch:1.0\n",
        None,
    )
    .unwrap();
    let Artifact::Blueprint(raw) = &raw[0] else {
        panic!()
    };
    assert_eq!(
        merge(None, "x", raw, &config(), now).unwrap_err().kind,
        ErrorKind::ArtifactNotFound
    );
    // An illegal deployment name.
    assert_eq!(
        merge(
            None,
            "a b",
            &bp("name: x\nclusters:\n  m: monarch:1.0\n"),
            &config(),
            now
        )
        .unwrap_err()
        .kind,
        ErrorKind::IllegalName
    );
}

#[test]
fn dependency_cycles_are_named() {
    // Expanding stored breeds that depend on each other reports the cycle by name…
    let text = "---\nkind: breeds\nname: a:1\ndeployable: a\ndependencies: {b: b:1}\n---\nkind: breeds\nname: b:1\ndeployable: b\ndependencies: {a: a:1}\n";
    let store = dsl::read(text, None).unwrap();
    let read = dsl::read(
        "kind: blueprints\nname: c\nclusters:\n  a: a:1\n  b: b:1\n",
        None,
    )
    .unwrap();
    let e = dsl::expand(&read[0], &store).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RecursiveDependenciesError);
    assert_eq!(e.message, "recursive dependencies: a:1 -> b:1 -> a:1");
    assert_eq!(e.path, "clusters.a.services[0].breed.dependencies.b");
    // …and clusters that depend on each other through prefix references (not expanded) are
    // caught when merging.
    let text = "---\nkind: breeds\nname: a:1\ndeployable: a\ndependencies: {b: \"b:*\"}\n---\nkind: breeds\nname: b:1\ndeployable: b\ndependencies: {a: \"a:*\"}\n";
    let store = dsl::read(text, None).unwrap();
    let Artifact::Blueprint(b) = dsl::expand(&read[0], &store).unwrap() else {
        panic!()
    };
    let e = merge(None, "c", &b, &config(), Utc::now()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RecursiveDependenciesError);
    assert!(e.message.contains("a -> b -> a"), "{}", e.message);
}

#[test]
fn a_sliced_service_can_come_back() {
    let now = Utc::now();
    let both = bp(
        "name: m\nclusters:\n  monarch:\n    gateways: {web: {routes: {monarch:1.0: {weight: 100%}, monarch:1.1: {weight: 0%}}}}\n    services: [monarch:1.0, monarch:1.1]\n",
    );
    let d = merge(None, "m", &both, &config(), now).unwrap();
    let sliced = slice(&d, &bp("name: m\nclusters:\n  monarch: monarch:1.1\n"), now).unwrap();
    assert_eq!(
        status(&sliced, "monarch", "monarch:1.1").0,
        Intention::Undeployment
    );
    let back = merge(
        Some(&sliced),
        "m",
        &bp("name: m\nclusters:\n  monarch: monarch:1.1\n"),
        &config(),
        now,
    )
    .unwrap();
    assert_eq!(
        status(&back, "monarch", "monarch:1.1"),
        (Intention::Deployment, PhaseName::Initiated)
    );
    assert_eq!(
        weights(&back, "monarch", "web"),
        w(&[("monarch:1.0", 100), ("monarch:1.1", 0)])
    );
}

/// Found by `engine_props`: a gateway still at 0% (waiting for its first weights) must not
/// block removing a service that carries none of its traffic.
#[test]
fn removing_a_service_without_traffic_is_never_refused() {
    let now = Utc::now();
    let held = bp(
        "name: m\nclusters:\n  monarch:\n    gateways: {web: {routes: {monarch:1.0: {weight: 0%}}}}\n    services: [monarch:1.0]\n",
    );
    let d = merge(None, "m", &held, &config(), now).unwrap();
    // A service without a web port joins the cluster but not its web gateway.
    let other = bp(
        "name: m\nclusters:\n  monarch:\n    services:\n      - breed: recommendation:1.0\n        environment_variables: {SECRET: s}\n",
    );
    let merged = merge(Some(&d), "m", &other, &config(), now).unwrap();
    assert_eq!(weights(&merged, "monarch", "web"), w(&[("monarch:1.0", 0)]));
    let sliced = slice(&merged, &other, now).unwrap();
    assert_eq!(
        status(&sliced, "monarch", "recommendation:1.0").0,
        Intention::Undeployment
    );
    // A version joining routes that all hold 0% takes the traffic: removing it is refused.
    let next = bp("name: m\nclusters:\n  monarch: monarch:1.1\n");
    let carrying = merge(Some(&d), "m", &next, &config(), now).unwrap();
    assert_eq!(
        weights(&carrying, "monarch", "web"),
        w(&[("monarch:1.0", 0), ("monarch:1.1", 100)])
    );
    let refused = slice(&carrying, &next, now).unwrap_err();
    assert_eq!(refused.kind, ErrorKind::InvalidRouteWeight);
}

#[test]
fn anonymous_cluster_gateways_take_the_single_port() {
    let d = merge(
        None,
        "m",
        &bp("name: m\nclusters:\n  monarch:\n    gateways: {sticky: route, routes: {monarch:1.0: {weight: 100%}}}\n    services: [monarch:1.0]\n"),
        &config(),
        Utc::now(),
    )
    .unwrap();
    assert_eq!(
        d.clusters["monarch"].gateways["web"].sticky,
        Some(Sticky::Route)
    );
}

#[test]
fn gateways_resolve_to_instances_and_chain() {
    let now = Utc::now();
    let b = bp(
        "name: shop\ngateways:\n  9050: monarch/web\nclusters:\n  monarch:\n    gateways: {web: {routes: {monarch:1.0: {weight: 90%}, monarch:1.1: {weight: 10%, condition: has cookie beta}}}}\n    services: [monarch:1.0, monarch:1.1]\n",
    );
    let mut d = merge(None, "shop", &b, &config(), now).unwrap();
    allocate_ports(&mut d, &BTreeSet::new(), &config(), None).unwrap();
    let gs = gateways(&d, &config());

    // Nothing runs yet: the internal gateway is held back, the external one is served (empty).
    let resolved = resolve_gateways(&gs, std::slice::from_ref(&d), "127.0.0.1");
    assert_eq!(
        resolved.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["shop/9050"]
    );
    assert!(
        resolved[0].routes[0].targets.is_empty(),
        "no route to the internal gateway's port while nobody serves it: {:?}",
        resolved[0].routes[0].targets
    );

    // Instances appear (one of 1.1 not yet deployed).
    let instance = |name: &str, port: u16, deployed: bool| Instance {
        name: name.into(),
        host: "127.0.0.1".into(),
        ports: Map::from_iter([("web".to_owned(), port)]),
        deployed,
    };
    let services = &mut d.clusters["monarch"].services;
    services[0].instances = vec![instance("a", 31000, true), instance("b", 31001, true)];
    services[1].instances = vec![instance("c", 31002, true), instance("d", 31003, false)];
    let resolved = resolve_gateways(&gs, std::slice::from_ref(&d), "127.0.0.1");
    let names: Vec<&str> = resolved.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        ["shop/9050", "shop/monarch/web"],
        "fewer segments first"
    );
    let internal = &resolved[1];
    assert_eq!(internal.port, 40000);
    assert_eq!(internal.lookup_name, vamp_core_lookup("shop/monarch/web"));
    let r0 = &internal.routes[0];
    assert_eq!(
        (r0.path.as_str(), r0.weight.get()),
        ("shop/monarch/monarch:1.0/web", 90)
    );
    assert_eq!(
        r0.targets.iter().map(|t| t.port).collect::<Vec<_>>(),
        [31000, 31001]
    );
    let r1 = &internal.routes[1];
    assert_eq!(
        r1.targets.iter().map(|t| t.port).collect::<Vec<_>>(),
        [31002],
        "only deployed instances"
    );
    assert_eq!(r1.condition_strength.get(), 100);
    assert!(r1.condition.as_ref().unwrap().text.contains("beta"));
    let external = &resolved[0];
    assert_eq!(
        external.routes[0].targets[0].port, 40000,
        "the external gateway chains to the internal one"
    );
    assert_eq!(
        external.routes[0].weight.get(),
        100,
        "its single route takes all the traffic"
    );
}

fn vamp_core_lookup(name: &str) -> String {
    crate::model::lookup::gateway_lookup_name(name)
}

/// The reconciliation step, pure: dependencies first, the environment from the input (not the
/// process), a deploy call until the driver runs what is specified, then Done with its event.
#[test]
fn a_step_deploys_dependencies_first_and_reads_the_environment_it_is_given() {
    use crate::traits::{ServiceKey, ServiceState};
    let t0 = Utc::now();
    let b = bp(
        "name: shop\nclusters:\n  front:\n    breed: frontend:1.0\n  recs:\n    breed: recommendation:1.0\nenvironment_variables:\n  recs.SECRET: s\n",
    );
    let mut d = merge(None, "shop", &b, &config(), t0).unwrap();
    allocate_ports(&mut d, &BTreeSet::new(), &config(), None).unwrap();
    let endpoints = BTreeMap::new();
    let scale = Scale::default();
    let env = |k: &str| (k == "HOME").then(|| "/given".to_owned());
    let step_with = |d: &mut Deployment, actual: &BTreeMap<ServiceKey, ServiceState>| {
        converge(
            d,
            &ConvergeInput {
                actual,
                now: t0,
                endpoints: &endpoints,
                env: &env,
                driver: "memory",
                default_scale: &scale,
                ready_for_deployment: std::time::Duration::from_secs(600),
                ready_for_undeployment: std::time::Duration::from_secs(600),
            },
        )
    };
    let key = |cluster: &str, service: &str| ServiceKey {
        deployment: "shop".into(),
        cluster: cluster.into(),
        service: service.into(),
    };
    // Nothing runs: only the dependency is deployed; the front end waits for it.
    let first = step_with(&mut d, &BTreeMap::new());
    assert!(!first.converged);
    let deployed: Vec<&ServiceKey> = first
        .calls
        .iter()
        .filter_map(|c| match c {
            DriverCall::Deploy(spec) => Some(&spec.key),
            DriverCall::Undeploy(_) => None,
        })
        .collect();
    assert_eq!(deployed, [&key("recs", "recommendation:1.0")]);
    assert_eq!(
        status(&d, "recs", "recommendation:1.0").1,
        PhaseName::Updating
    );
    // The driver runs it as specified: Done, with its event.
    let Some(DriverCall::Deploy(spec)) = first.calls.first() else {
        panic!("a deploy call")
    };
    let running = ServiceState {
        key: Some(spec.key.clone()),
        instances: vec![Instance {
            name: "recs-1".into(),
            host: "127.0.0.1".into(),
            ports: Map::from_iter([("api".to_owned(), 9090), ("admin".to_owned(), 9091)]),
            deployed: true,
        }],
        fingerprint: Some(spec.fingerprint()),
        ..ServiceState::default()
    };
    let actual = BTreeMap::from([(spec.key.clone(), running)]);
    let second = step_with(&mut d, &actual);
    assert_eq!(status(&d, "recs", "recommendation:1.0").1, PhaseName::Done);
    assert!(
        second
            .events
            .iter()
            .any(|e| e.tags.contains(&"synchronization:deployed".to_owned())),
        "{:?}",
        second.events
    );
    // Now the front end goes, its environment read from what the step was given.
    let third = step_with(&mut d, &actual);
    let front = third
        .calls
        .iter()
        .find_map(|c| match c {
            DriverCall::Deploy(spec) if spec.key == key("front", "frontend:1.0") => Some(spec),
            _ => None,
        })
        .expect("the front end is deployed once its dependency is done");
    assert_eq!(
        front.environment.get("HOME_DIR").map(String::as_str),
        Some("/given")
    );
}
