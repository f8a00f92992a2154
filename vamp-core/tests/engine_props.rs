//! Property tests of the deployment planners (spec §3.3–3.5).

use chrono::{Duration, Utc};
use proptest::prelude::*;
use vamp_core::dsl::ErrorKind;
use vamp_core::engine::{EngineConfig, finish_undeployment, merge, slice};
use vamp_core::model::*;

/// A breed with a subset of three ports.
fn breed(name: String, ports: [bool; 3]) -> Breed {
    let all = [
        ("web", PortType::Http),
        ("api", PortType::Http),
        ("db", PortType::Tcp),
    ];
    Breed {
        deployable: Deployable {
            kind: DEFAULT_DEPLOYABLE_TYPE.into(),
            definition: name.clone(),
        },
        name,
        ports: all
            .iter()
            .zip(ports)
            .filter(|(_, on)| *on)
            .enumerate()
            .map(|(i, ((p, kind), _))| {
                (
                    (*p).to_owned(),
                    Port {
                        value: PortValue::Number(8000 + i as u16),
                        kind: *kind,
                    },
                )
            })
            .collect(),
        ..Breed::default()
    }
}

fn service(b: Breed, scale: Option<u32>) -> Service {
    Service {
        breed: Ref::Inline(b),
        scale: scale.map(|instances| {
            Ref::Inline(Scale {
                cpu: Cpu::from_millis(100),
                memory: Memory::from_bytes(64_000_000),
                instances,
                ..Scale::default()
            })
        }),
        ..Service::default()
    }
}

/// Blueprints of 1–3 clusters with 1–3 services each (breeds unique), random scales, and
/// sometimes a cluster gateway giving some services a weight (which may be invalid).
fn blueprint() -> impl Strategy<Value = Blueprint> {
    prop::collection::vec(
        (
            prop::collection::vec((any::<[bool; 3]>(), prop::option::of(1u32..4)), 1..4),
            prop::option::of(prop::collection::vec(prop::option::of(0u8..=100), 1..4)),
        ),
        1..4,
    )
    .prop_map(|clusters| {
        let mut n = 0;
        let clusters = clusters
            .into_iter()
            .enumerate()
            .map(|(c, (services, weights))| {
                let services: Vec<Service> = services
                    .into_iter()
                    .map(|(ports, scale)| {
                        n += 1;
                        service(breed(format!("s{n}:1.0"), ports), scale)
                    })
                    .collect();
                let mut gateways = Map::new();
                if let Some(weights) = weights {
                    let routes = services
                        .iter()
                        .zip(weights)
                        .map(|(s, w)| {
                            let route = Route {
                                weight: w.and_then(Percentage::new),
                                ..Route::default()
                            };
                            (s.breed.name().to_owned(), Ref::Inline(route))
                        })
                        .collect();
                    gateways.insert(
                        "web".to_owned(),
                        Gateway {
                            routes,
                            ..Gateway::default()
                        },
                    );
                }
                (
                    format!("c{c}"),
                    Cluster {
                        services,
                        gateways,
                        ..Cluster::default()
                    },
                )
            })
            .collect();
        Blueprint {
            name: "bp".into(),
            clusters,
            ..Blueprint::default()
        }
    })
}

/// The desired state: everything but runtime status, timestamps, instances and health.
fn desired(d: &Deployment) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for key in ["status", "instances", "health", "interpolated"] {
                    m.shift_remove(key);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(d).unwrap();
    strip(&mut v);
    v
}

fn all_weights_are_0_or_100(d: &Deployment) -> Result<(), TestCaseError> {
    for (c, cluster) in &d.clusters {
        for (port, spec) in &cluster.gateways {
            let total: u32 = spec
                .routes
                .values()
                .map(|r| u32::from(r.inline().unwrap().weight.unwrap().get()))
                .sum();
            prop_assert!(total == 0 || total == 100, "{c}/{port} totals {total}%");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn weights_always_total_0_or_100(a in blueprint(), b in blueprint()) {
        let config = EngineConfig::default();
        let now = Utc::now();
        match merge(None, "d", &a, &config, now) {
            Ok(d1) => {
                all_weights_are_0_or_100(&d1)?;
                if let Ok(d2) = merge(Some(&d1), "d", &b, &config, now) {
                    all_weights_are_0_or_100(&d2)?;
                }
            }
            // The only way a generated blueprint fails is bad weights, reported as such.
            Err(e) => prop_assert_eq!(e.kind, ErrorKind::InvalidRouteWeight),
        }
    }

    #[test]
    fn merging_the_same_blueprint_twice_changes_nothing(a in blueprint()) {
        let config = EngineConfig::default();
        let now = Utc::now();
        let Ok(once) = merge(None, "d", &a, &config, now) else { return Ok(()) };
        let twice = merge(Some(&once), "d", &a, &config, now + Duration::seconds(60)).unwrap();
        prop_assert_eq!(desired(&once), desired(&twice));
    }

    #[test]
    fn merging_a_service_and_slicing_it_restores_the_deployment(
        a in blueprint(),
        ports in any::<[bool; 3]>(),
        into_existing in any::<bool>(),
    ) {
        let config = EngineConfig::default();
        let now = Utc::now();
        let Ok(before) = merge(None, "d", &a, &config, now) else { return Ok(()) };
        let cluster = if into_existing { "c0".to_owned() } else { "new".to_owned() };
        let added = Blueprint {
            name: "more".into(),
            clusters: Map::from_iter([(
                cluster.clone(),
                Cluster { services: vec![service(breed("added:1.0".into(), ports), None)], ..Cluster::default() },
            )]),
            ..Blueprint::default()
        };
        let merged = merge(Some(&before), "d", &added, &config, now).unwrap();
        all_weights_are_0_or_100(&merged)?;
        // The new service starts without traffic wherever a gateway already holds 100%.
        if into_existing {
            for spec in merged.clusters["c0"].gateways.values() {
                let others: u32 = spec.routes.iter()
                    .filter(|(k, _)| k.as_str() != "added:1.0")
                    .map(|(_, r)| u32::from(r.inline().unwrap().weight.unwrap().get()))
                    .sum();
                if others == 100 {
                    let w = spec.routes.get("added:1.0").map(|r| r.inline().unwrap().weight.unwrap().get());
                    prop_assert!(matches!(w, None | Some(0)), "joined at {w:?}");
                }
            }
        }
        // Slicing is refused exactly when the new service carries traffic the others cannot
        // take back (the routes it joined all held 0%, so it took 100%): removing it would
        // leave the gateway with nothing to send traffic to.
        let carries = |d: &Deployment| d.clusters.get(&cluster).is_some_and(|c| {
            c.gateways.values().any(|spec| {
                let w = |k: &str| spec.routes.get(k).map_or(0, |r| r.inline().unwrap().weight.unwrap().get());
                w("added:1.0") > 0 && spec.routes.len() > 1
            })
        });
        match slice(&merged, &added, now) {
            Ok(mut sliced) => {
                prop_assert!(!carries(&merged));
                finish_undeployment(&mut sliced, &cluster, "added:1.0");
                prop_assert_eq!(desired(&before), desired(&sliced));
            }
            Err(e) => {
                prop_assert_eq!(e.kind, ErrorKind::InvalidRouteWeight);
                prop_assert!(carries(&merged), "refused although the others hold the traffic");
            }
        }
    }
}
