//! Property tests: the normalized writer round-trips every model value, and no input makes the
//! reader panic.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use vamp_core::dsl;
use vamp_core::model::*;

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,6}(:[0-9]\\.[0-9]{1,2})?"
}

/// Scalars users write, including ones YAML could misread if the writer did not quote them.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ./:_-]{0,12}",
        Just("true".to_owned()),
        Just("~".to_owned()),
        Just("null".to_owned()),
        Just("0x10".to_owned()),
        Just("1.5".to_owned()),
        Just("- a".to_owned()),
        Just("a: b".to_owned()),
        Just("#x".to_owned()),
        Just("'q'".to_owned()),
        Just("ünïcödé ✓".to_owned()),
        Just(" padded ".to_owned()),
        Just("costs $$5".to_owned()),
        Just("http://$db.host:$db.ports.port".to_owned()),
    ]
}

fn map<V: std::fmt::Debug + Clone + 'static>(
    key: impl Strategy<Value = String>,
    value: impl Strategy<Value = V>,
    max: usize,
) -> impl Strategy<Value = Map<V>> {
    prop::collection::vec((key, value), 0..max).prop_map(|v| v.into_iter().collect())
}

fn metadata() -> impl Strategy<Value = Metadata> {
    map(
        "[a-z]{1,5}",
        prop_oneof![
            text().prop_map(serde_json::Value::from),
            any::<i32>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
        ],
        3,
    )
}

fn percentage() -> impl Strategy<Value = Percentage> {
    (0u8..=100).prop_map(|p| Percentage::new(p).unwrap())
}

fn seconds() -> impl Strategy<Value = Seconds> {
    (0u64..100_000).prop_map(Seconds::new)
}

fn health_check(port: String) -> impl Strategy<Value = HealthCheck> {
    (
        "/[a-z/]{0,8}",
        seconds(),
        seconds(),
        seconds(),
        0u32..10,
        prop_oneof![Just("HTTP"), Just("HTTPS"), Just("TCP")],
    )
        .prop_map(move |(path, a, b, c, failures, protocol)| HealthCheck {
            path,
            port: port.clone(),
            initial_delay: a,
            timeout: b,
            interval: c,
            failures,
            protocol: protocol.to_owned(),
        })
}

fn argument() -> impl Strategy<Value = Argument> {
    prop_oneof![
        any::<bool>().prop_map(|b| Argument {
            key: "privileged".into(),
            value: b.into()
        }),
        ("[a-z]{1,6}", text()).prop_map(|(key, v)| Argument {
            key,
            value: v.into()
        }),
    ]
}

fn breed() -> impl Strategy<Value = Breed> {
    (
        name(),
        metadata(),
        (
            prop_oneof![
                Just("container/docker"),
                Just("command"),
                Just("application/javascript")
            ],
            "[a-z0-9/:._ -]{1,20}",
        ),
        map(
            "[a-z][a-z0-9_]{0,5}",
            (1u16.., any::<bool>()).prop_map(|(n, tcp)| Port {
                value: PortValue::Number(n),
                kind: if tcp { PortType::Tcp } else { PortType::Http },
            }),
            3,
        ),
        map(
            "[A-Z][A-Z0-9_]{0,5}",
            (prop::option::of("[A-Z_]{1,6}"), prop::option::of(text()))
                .prop_map(|(alias, value)| EnvVar { alias, value }),
            3,
        ),
        map("[A-Z][A-Z0-9_]{0,5}", text(), 2),
        prop::collection::vec(argument(), 0..3),
        map("[a-z]{1,5}", name().prop_map(Ref::Reference), 2),
        any::<bool>(),
    )
        .prop_flat_map(
            |(
                name,
                metadata,
                (kind, definition),
                ports,
                env,
                constants,
                arguments,
                deps,
                checks,
            )| {
                let port = ports.keys().next().cloned();
                let checks = match (checks, port) {
                    (true, Some(p)) => prop::collection::vec(health_check(p), 0..2)
                        .prop_map(Some)
                        .boxed(),
                    _ => Just(None).boxed(),
                };
                checks.prop_map(move |health_checks| Breed {
                    name: name.clone(),
                    metadata: metadata.clone(),
                    deployable: Deployable {
                        kind: kind.to_owned(),
                        definition: definition.clone(),
                    },
                    ports: ports.clone(),
                    environment_variables: env.clone(),
                    constants: constants.clone(),
                    arguments: arguments.clone(),
                    dependencies: deps.clone(),
                    health_checks,
                })
            },
        )
}

fn scale(named: bool) -> impl Strategy<Value = Scale> {
    (name(), 0u64..1_000_000, 0u64..(1 << 40), 0u32..100).prop_map(
        move |(name, cpu, mem, instances)| Scale {
            name: if named { name } else { String::new() },
            metadata: Metadata::default(),
            cpu: Cpu::from_millis(cpu),
            memory: Memory::from_bytes(mem),
            instances,
        },
    )
}

fn route(named: bool) -> impl Strategy<Value = Route> {
    (
        name(),
        prop::option::of(percentage()),
        prop::option::of(prop_oneof![
            "(has|misses) cookie [a-z]{1,5}".prop_map(|c| Ref::Inline(Condition {
                definition: c,
                ..Condition::default()
            })),
            name().prop_map(Ref::Reference),
        ]),
        prop::option::of(percentage()),
        prop::collection::vec(
            prop_oneof![
                "/[a-z]{0,4} if path_beg /[a-z]{1,4}".prop_map(|path| Ref::Inline(Rewrite {
                    path,
                    ..Rewrite::default()
                })),
                name().prop_map(Ref::Reference),
            ],
            0..2,
        ),
        prop::option::of(prop_oneof![Just("roundrobin"), Just("leastconn")]),
        prop::option::of(
            ("[a-z]{1,8}(\\.[a-z]{1,5}){0,2}", 1u16.., percentage()).prop_map(
                |(host, port, percentage)| Mirror {
                    target: format!("{host}:{port}"),
                    percentage,
                },
            ),
        ),
    )
        .prop_map(
            move |(n, weight, condition, strength, rewrites, balance, mirror)| Route {
                name: if named { n } else { String::new() },
                metadata: Metadata::default(),
                weight,
                condition,
                condition_strength: strength,
                rewrites,
                balance: balance.map(str::to_owned),
                selector: None,
                mirror,
            },
        )
}

fn route_path() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,5}(/[a-z0-9]{1,4}){0,3}",
        "\\[[a-z]{1,5}\\.example:[0-9]{2,4}\\]",
    ]
}

fn gateway(top: bool) -> impl Strategy<Value = Gateway> {
    (
        "[a-z]{1,5}(/[a-z0-9]{1,4}){0,3}",
        0u16..,
        any::<bool>(),
        prop::option::of(prop_oneof![Just(Sticky::Route), Just(Sticky::Instance)]),
        prop::collection::vec("[a-z]{1,6}\\.example", 0..2),
        map(
            route_path(),
            prop_oneof![
                route(false).prop_map(Ref::Inline),
                name().prop_map(Ref::Reference)
            ],
            3,
        ),
    )
        .prop_map(
            move |(name, number, tcp, sticky, virtual_hosts, routes)| Gateway {
                name: if top { name } else { String::new() },
                metadata: Metadata::default(),
                port: top.then_some(GatewayPort {
                    number,
                    kind: if tcp { PortType::Tcp } else { PortType::Http },
                }),
                sticky,
                virtual_hosts,
                selector: None,
                routes,
            },
        )
}

fn escalation(depth: u32) -> BoxedStrategy<Escalation> {
    let leaf = prop_oneof![
        (0i64..5, 5i64..10, 1i64..3, prop::option::of("[a-z]{1,5}")).prop_map(
            |(minimum, maximum, scale_by, target)| EscalationKind::ScaleInstances(ScaleBy {
                minimum,
                maximum,
                scale_by,
                target
            })
        ),
        (0u32..4, 4u32..8).prop_map(|(a, b)| EscalationKind::ScaleCpu(ScaleBy {
            minimum: f64::from(a) / 4.0,
            maximum: f64::from(b),
            scale_by: 0.25,
            target: None
        })),
        "[a-z]{3,6}".prop_map(|kind| EscalationKind::Generic {
            kind,
            parameters: Map::from_iter([("channel".to_owned(), serde_json::json!("ops"))])
        }),
    ];
    let kind = if depth == 0 {
        leaf.boxed()
    } else {
        let item = prop_oneof![
            escalation(depth - 1).prop_map(Ref::Inline),
            name().prop_map(Ref::Reference)
        ];
        prop_oneof![
            leaf,
            prop::collection::vec(item.clone(), 0..3).prop_map(EscalationKind::ToAll),
            prop::collection::vec(item, 0..3).prop_map(EscalationKind::ToOne),
        ]
        .boxed()
    };
    kind.prop_map(|kind| Escalation {
        kind,
        ..Escalation::default()
    })
    .boxed()
}

fn sla(named: bool) -> impl Strategy<Value = Sla> {
    (
        name(),
        prop_oneof![
            (0u64..5000, 0u64..5000, 0u64..600, 0u64..600).prop_map(|(u, l, i, c)| {
                SlaKind::ResponseTimeSlidingWindow {
                    upper: u,
                    lower: l,
                    interval: i,
                    cooldown: c,
                }
            }),
            Just(SlaKind::EscalationOnly),
        ],
        prop::option::of(prop_oneof![
            escalation(1).prop_map(Ref::Inline),
            name().prop_map(Ref::Reference)
        ]),
    )
        .prop_map(move |(n, kind, escalation)| Sla {
            name: if named { n } else { String::new() },
            metadata: Metadata::default(),
            kind,
            escalations: escalation.into_iter().collect(),
        })
}

fn service() -> impl Strategy<Value = Service> {
    (
        prop_oneof![
            breed().prop_map(Ref::Inline),
            name().prop_map(Ref::Reference)
        ],
        prop::option::of(prop_oneof![
            scale(false).prop_map(Ref::Inline),
            name().prop_map(Ref::Reference)
        ]),
        map("[A-Z]{1,5}", text(), 2),
        prop::option::of(prop_oneof![Just("HOST"), Just("BRIDGE")]),
    )
        .prop_map(|(breed, scale, environment_variables, network)| Service {
            breed,
            scale,
            environment_variables,
            network: network.map(str::to_owned),
            ..Service::default()
        })
}

fn blueprint() -> impl Strategy<Value = Blueprint> {
    (
        name(),
        map(
            "[a-z]{1,6}",
            (
                prop::collection::vec(service(), 1..3),
                prop_oneof![
                    map("[a-z]{1,5}", gateway(false), 2),
                    // The anonymous cluster gateway (spec §1.5.3).
                    gateway(false).prop_map(|g| Map::from_iter([(String::new(), g)])),
                ],
                prop::option::of(prop_oneof![
                    sla(false).prop_map(Ref::Inline),
                    name().prop_map(Ref::Reference)
                ]),
            )
                .prop_map(|(services, gateways, sla)| Cluster {
                    services,
                    gateways,
                    sla,
                    ..Cluster::default()
                }),
            3,
        ),
        map(
            (1u16.., any::<bool>()).prop_map(|(n, tcp)| {
                GatewayPort {
                    number: n,
                    kind: if tcp { PortType::Tcp } else { PortType::Http },
                }
                .to_string()
            }),
            gateway(false),
            2,
        ),
        map(
            "[a-z]{1,4}\\.environment_variables\\.[A-Z]{1,4}",
            prop::option::of(text()),
            2,
        ),
    )
        .prop_map(
            |(name, clusters, gateways, environment_variables)| Blueprint {
                name,
                clusters,
                gateways: dedupe_ports(gateways),
                environment_variables,
                ..Blueprint::default()
            },
        )
}

/// External gateway keys must have distinct port numbers.
fn dedupe_ports(gateways: Map<Gateway>) -> Map<Gateway> {
    let mut seen = std::collections::HashSet::new();
    gateways
        .into_iter()
        .filter(|(k, _)| seen.insert(GatewayPort::parse(k).unwrap().number))
        .collect()
}

fn workflow() -> impl Strategy<Value = Workflow> {
    (
        name(),
        prop_oneof![
            breed().prop_map(Ref::Inline),
            name().prop_map(Ref::Reference)
        ],
        prop_oneof![
            Just(Schedule::Daemon),
            prop::collection::vec("[a-z:]{1,8}", 1..3).prop_map(Schedule::Event),
            (
                prop_oneof![Just("PT1M"), Just("P1DT2H"), Just("PT0.5S"), Just("P2W")],
                prop::option::of(Just("now".to_owned())),
                prop::option::of(0u32..10)
            )
                .prop_map(|(p, start, repeat)| Schedule::Time {
                    period: p.to_owned(),
                    start,
                    repeat
                }),
        ],
        prop_oneof![
            Just(WorkflowStatus::Starting),
            Just(WorkflowStatus::Running),
            Just(WorkflowStatus::Suspended)
        ],
        map("[A-Z]{1,5}", prop::option::of(text()), 2),
    )
        .prop_map(|(name, breed, schedule, status, env)| Workflow {
            name,
            breed,
            schedule,
            status,
            // Workflow values must be set (a `~` is a MissingEnvironmentVariableError).
            environment_variables: env
                .into_iter()
                .map(|(k, v)| (k, Some(v.unwrap_or_default())))
                .collect(),
            ..Workflow::default()
        })
}

fn event() -> impl Strategy<Value = Event> {
    (
        prop::collection::vec("[a-z]{1,5}(:[a-z0-9]{1,5})?", 1..4),
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            Just(serde_json::json!({"a": [1, "b", true], "c": {"d": null}})),
        ],
        "[a-z_-]{1,8}",
        0i64..4_000_000_000_000,
    )
        .prop_map(|(tags, value, kind, millis)| Event {
            tags,
            value,
            kind,
            timestamp: DateTime::<Utc>::from_timestamp_millis(millis).unwrap(),
        })
}

fn artifact() -> impl Strategy<Value = Artifact> {
    prop_oneof![
        breed().prop_map(Artifact::Breed),
        blueprint().prop_map(Artifact::Blueprint),
        gateway(true).prop_map(Artifact::Gateway),
        route(true).prop_map(Artifact::Route),
        scale(true).prop_map(Artifact::Scale),
        sla(true).prop_map(Artifact::Sla),
        escalation(2).prop_map(|mut e| {
            e.name = "esc".into();
            Artifact::Escalation(e)
        }),
        workflow().prop_map(Artifact::Workflow),
        event().prop_map(Artifact::Event),
        (name(), "(has|misses) header [A-Z]{1,4}").prop_map(|(name, definition)| {
            Artifact::Condition(Condition {
                name,
                metadata: Metadata::default(),
                definition,
            })
        }),
        (name(), metadata()).prop_map(|(name, definition)| Artifact::Template(Template {
            name,
            metadata: Metadata::default(),
            definition,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn written_yaml_reads_back_equal(artifacts in prop::collection::vec(artifact(), 1..4)) {
        let yaml = dsl::to_yaml(&artifacts).unwrap();
        let back = dsl::read(&yaml, None);
        prop_assert!(back.is_ok(), "{:?}\n{yaml}", back.err());
        prop_assert_eq!(back.unwrap(), artifacts, "{}", yaml);
    }

    #[test]
    fn written_json_reads_back_equal(a in artifact()) {
        let json = dsl::to_json(std::slice::from_ref(&a)).to_string();
        let back = dsl::read(&json, None);
        prop_assert!(back.is_ok(), "{:?}\n{json}", back.err());
        prop_assert_eq!(back.unwrap(), vec![a]);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = dsl::load(&text, None, None);
        let _ = dsl::load(&text, Some(Kind::Blueprint), None);
    }

    /// YAML-shaped noise built from DSL tokens reaches far deeper than random text.
    #[test]
    fn arbitrary_yaml_never_panics(tokens in prop::collection::vec(prop_oneof![
        Just("kind: "), Just("breeds"), Just("blueprints"), Just("gateways"), Just("workflows"),
        Just("events"), Just("name: "), Just("clusters:"), Just("services:"), Just("breed: "),
        Just("routes:"), Just("weight: "), Just("50%"), Just("condition: "), Just("ports:"),
        Just("8080/http"), Just("environment_variables:"), Just("$a.b.c"), Just("${"), Just("}"),
        Just("\n"), Just("\n  "), Just("\n    "), Just("- "), Just("{"), Just("["), Just("]"),
        Just(": "), Just(", "), Just("---\n"), Just("&a "), Just("*a"), Just("<<: "), Just("~"),
        Just("'"), Just("\""), Just("import: "), Just("schedule: "), Just("sla:"), Just("type: "),
        Just("escalations:"), Just("to_all: "), Just("scale: "), Just("memory: "), Just("1Gi"),
        Just("x"), Just("!!str "), Just("#"), Just("\t"), Just("["),
    ], 0..80)) {
        let text: String = tokens.concat();
        let _ = dsl::load(&text, None, None);
        for kind in Kind::ALL {
            let _ = dsl::load(&text, Some(kind), None);
        }
    }
}
