//! Docker Compose import (spec §2.2 `POST /api/v1/docker-compose`): a compose file (v1 or v2
//! layout) becomes a blueprint with one cluster per compose service.
//!
//! - each service → cluster `<service>` with an inline breed `<service>:1.0.0` running
//!   `image` (`container/docker`);
//! - `ports` → breed ports `port_<container port>` (a range uses its first port; `/tcp` makes
//!   a TCP port, `/udp` is an `UnsupportedProtocolError`);
//! - `environment` (map or `K=V` list) → environment variables; a value `<service>:<port>` that
//!   names a linked service becomes `$<service>.host:$<service>.ports.port_<port>` and adds
//!   that port to the dependency; compose's `${VAR}` (the host environment) becomes Vamp's
//!   `${env://VAR}`;
//! - `links` and `depends_on` → dependencies on `<service>:1.0.0` (a link alias names the
//!   dependency);
//! - `command` → the `docker` dialect's `cmd`;
//! - everything else is ignored and reported in [`Import::notes`].
//!
//! ```
//! let text = "version: '2'\nservices:\n  db:\n    image: mysql:5.7\n    ports: ['3306']\n  \
//!             web:\n    image: wordpress\n    links: [db]\n    environment:\n      DB: db:3306\n";
//! let import = vamp_core::compose::import(text, "wordpress").unwrap();
//! let web = import.blueprint.clusters["web"].services[0].breed.inline().unwrap();
//! assert_eq!(web.environment_variables["DB"].value.as_deref(),
//!            Some("$db.host:$db.ports.port_3306"));
//! ```
//!
//! One file: one importer, compose file to blueprint, field by field as the compose
//! reference lists them.

use crate::dsl::{DslError, ErrorKind, Mark, Node, Value, parse_documents};
use crate::model::{
    Blueprint, Breed, Cluster, Deployable, EnvVar, Map, Port, PortType, PortValue, Ref, Service,
};

/// The result of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The blueprint.
    pub blueprint: Blueprint,
    /// What was ignored or changed, one line each, with where it was.
    pub notes: Vec<Note>,
}

/// Something the import ignored or adapted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Path in the compose file, e.g. `services.web.volumes`.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// What happened.
    pub message: String,
}

/// Keys of a compose service that are read.
const READ: [&str; 7] = [
    "image",
    "ports",
    "environment",
    "links",
    "depends_on",
    "command",
    "container_name",
];

type R<T> = Result<T, DslError>;

fn err(kind: ErrorKind, path: &str, mark: Mark, message: String, hint: &str) -> DslError {
    DslError::new(kind, path, mark, message, hint)
}

fn entries<'n>(node: &'n Node, path: &str) -> R<&'n [(Node, Node)]> {
    match &node.value {
        Value::Map(e) => Ok(e),
        Value::Null => Ok(&[]),
        other => Err(err(
            ErrorKind::UnexpectedTypeError,
            path,
            node.mark,
            format!("expected a map, found {}", other.type_name()),
            "check the compose file's indentation",
        )),
    }
}

fn get<'n>(map: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    map.iter()
        .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
        .map(|(_, v)| v)
}

fn strings(node: &Node, path: &str) -> R<Vec<(String, Mark)>> {
    let items: Vec<&Node> = match &node.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        // depends_on in the long form: a map of service → condition.
        Value::Map(entries) => entries.iter().map(|(k, _)| k).collect(),
        _ => vec![node],
    };
    items
        .into_iter()
        .map(|n| {
            n.scalar_text().map(|s| (s, n.mark)).ok_or_else(|| {
                err(
                    ErrorKind::UnexpectedInnerElementError,
                    path,
                    n.mark,
                    format!("expected a string, found {}", n.value.type_name()),
                    "write each entry as a plain string",
                )
            })
        })
        .collect()
}

/// Converts a compose file into a blueprint called `name`.
pub fn import(text: &str, name: &str) -> R<Import> {
    let docs = parse_documents(text)?;
    let Some(root) = docs.first() else {
        return Err(err(
            ErrorKind::NoServiceError,
            "",
            Mark::default(),
            "the compose file is empty".into(),
            "add services",
        ));
    };
    let top = entries(root, "")?;
    let mut notes = Vec::new();
    // v2/v3 have `services:`; v1 has the services at the top level.
    let (services_node, base) = match get(top, "services") {
        Some(s) => {
            for (k, _) in top {
                let key = k.scalar_text().unwrap_or_default();
                if !matches!(key.as_str(), "services" | "version") {
                    notes.push(Note {
                        path: key.clone(),
                        line: k.mark.line,
                        message: format!("top-level '{key}' is not imported"),
                    });
                }
            }
            (s, "services".to_owned())
        }
        None => (root, String::new()),
    };
    let services = entries(services_node, &base)?;
    if services.is_empty() {
        return Err(err(
            ErrorKind::NoServiceError,
            &base,
            services_node.mark,
            "the compose file has no services".into(),
            "add a service with an image",
        ));
    }
    let join = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_owned()
        } else {
            format!("{a}.{b}")
        }
    };
    let names: Vec<String> = services
        .iter()
        .filter_map(|(k, _)| k.scalar_text())
        .collect();

    let mut breeds: Map<Breed> = Map::new();
    let mut dialects: Map<crate::model::Dialects> = Map::new();
    // Ports other services need on a dependency: (service, port number).
    let mut wanted: Vec<(String, u16)> = Vec::new();
    for (k, spec) in services {
        let service = k.scalar_text().unwrap_or_default();
        let path = join(&base, &service);
        crate::dsl::validate_name(&service, &path, k.mark)?;
        let fields = entries(spec, &path)?;
        for (fk, _) in fields {
            let key = fk.scalar_text().unwrap_or_default();
            if !READ.contains(&key.as_str()) {
                notes.push(Note {
                    path: join(&path, &key),
                    line: fk.mark.line,
                    message: format!("'{key}' is not supported and was ignored"),
                });
            }
        }
        let image = get(fields, "image")
            .and_then(Node::scalar_text)
            .ok_or_else(|| {
                err(
                    ErrorKind::UnsupportedComposeFeature,
                    &join(&path, "image"),
                    spec.mark,
                    format!("service '{service}' has no image"),
                    "build the image first and name it with 'image:'",
                )
            })?;
        let mut breed = Breed {
            name: format!("{service}:1.0.0"),
            deployable: Deployable {
                kind: "container/docker".into(),
                definition: image,
            },
            ..Breed::default()
        };
        if let Some(ports) = get(fields, "ports") {
            let p = join(&path, "ports");
            let items: Vec<&Node> = match &ports.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![ports],
            };
            for item in items {
                let port = compose_port(item, &p)?;
                breed
                    .ports
                    .insert(format!("port_{}", port_number(&port)), port);
            }
        }
        // Dependencies: links (with aliases) and depends_on.
        let mut deps: Vec<(String, String)> = Vec::new();
        if let Some(links) = get(fields, "links") {
            for (link, mark) in strings(links, &join(&path, "links"))? {
                let (target, alias) = link.split_once(':').unwrap_or((&link, &link));
                check_service(&names, target, &join(&path, "links"), mark)?;
                deps.push((alias.to_owned(), target.to_owned()));
            }
        }
        if let Some(on) = get(fields, "depends_on") {
            for (target, mark) in strings(on, &join(&path, "depends_on"))? {
                check_service(&names, &target, &join(&path, "depends_on"), mark)?;
                if !deps.iter().any(|(_, t)| *t == target) {
                    deps.push((target.clone(), target));
                }
            }
        }
        for (alias, target) in &deps {
            breed
                .dependencies
                .insert(alias.clone(), Ref::Reference(format!("{target}:1.0.0")));
        }
        if let Some(env) = get(fields, "environment") {
            let p = join(&path, "environment");
            for (key, value, mark) in environment(env, &p)? {
                let value = value.map(|v| {
                    if let Some((alias, target, port)) = dependency_address(&v, &deps) {
                        wanted.push((target, port));
                        format!("${alias}.host:${alias}.ports.port_{port}")
                    } else {
                        host_environment(&v)
                    }
                });
                if value.is_none() {
                    notes.push(Note {
                        path: join(&p, &key),
                        line: mark.line,
                        message: format!(
                            "'{key}' has no value (compose takes it from the shell); set it before deploying"
                        ),
                    });
                }
                breed
                    .environment_variables
                    .insert(key, EnvVar { alias: None, value });
            }
        }
        if let Some(command) = get(fields, "command") {
            let cmd = match &command.value {
                Value::Seq(_) => command.to_json(),
                _ => serde_json::Value::String(command.scalar_text().unwrap_or_default()),
            };
            let mut d = crate::model::Dialects::new();
            d.insert("docker".into(), serde_json::json!({ "cmd": cmd }));
            dialects.insert(service.clone(), d);
        }
        breeds.insert(service, breed);
    }
    for (target, port) in wanted {
        if let Some(b) = breeds.get_mut(&target) {
            b.ports.entry(format!("port_{port}")).or_insert(Port {
                value: PortValue::Number(port),
                kind: PortType::Http,
            });
        }
    }
    let clusters = breeds
        .into_iter()
        .map(|(service, breed)| {
            let dialects = dialects.shift_remove(&service).unwrap_or_default();
            let cluster = Cluster {
                services: vec![Service {
                    breed: Ref::Inline(breed),
                    dialects,
                    ..Service::default()
                }],
                ..Cluster::default()
            };
            (service, cluster)
        })
        .collect();
    Ok(Import {
        blueprint: Blueprint {
            name: name.to_owned(),
            clusters,
            ..Blueprint::default()
        },
        notes,
    })
}

fn check_service(names: &[String], target: &str, path: &str, mark: Mark) -> R<()> {
    if names.iter().any(|n| n == target) {
        Ok(())
    } else {
        Err(err(
            ErrorKind::UnresolvedDependencyError,
            path,
            mark,
            format!("'{target}' is not a service of this compose file"),
            "link only to services defined in the same file",
        ))
    }
}

fn port_number(port: &Port) -> u16 {
    port.number().unwrap_or(0)
}

/// `3000`, `"3000-3005"`, `"8000:8000"`, `"127.0.0.1:8001:8001"`, `"6060:6060/tcp"`, or the long
/// form `{target: 80, published: 8080, protocol: tcp}`: the container port counts.
fn compose_port(node: &Node, path: &str) -> R<Port> {
    let bad = |m: String| {
        err(
            ErrorKind::UnexpectedTypeError,
            path,
            node.mark,
            m,
            "write ports like \"8080\", \"80:8080\" or \"8080/tcp\"",
        )
    };
    let (spec, protocol) = match &node.value {
        Value::Map(e) => {
            let target = get(e, "target")
                .and_then(Node::scalar_text)
                .ok_or_else(|| bad("a long-form port needs 'target'".into()))?;
            let protocol = get(e, "protocol").and_then(Node::scalar_text);
            (target, protocol)
        }
        _ => {
            let text = node
                .scalar_text()
                .ok_or_else(|| bad(format!("a port cannot be {}", node.value.type_name())))?;
            match text.split_once('/') {
                Some((s, p)) => (s.to_owned(), Some(p.to_owned())),
                None => (text, None),
            }
        }
    };
    let kind = match protocol.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => PortType::Http,
        Some("tcp") => PortType::Tcp,
        Some(other) => {
            return Err(err(
                ErrorKind::UnsupportedProtocolError,
                path,
                node.mark,
                format!("port protocol '{other}' is not supported"),
                "only TCP ports can be routed; remove the port or use /tcp",
            ));
        }
    };
    let container = spec.rsplit(':').next().unwrap_or(&spec);
    let first = container.split('-').next().unwrap_or(container);
    let number = first
        .trim()
        .parse::<u16>()
        .map_err(|_| bad(format!("'{spec}' has no container port number")))?;
    Ok(Port {
        value: PortValue::Number(number),
        kind,
    })
}

/// `environment` as a map or a `K=V` list; `K` alone has no value.
fn environment(node: &Node, path: &str) -> R<Vec<(String, Option<String>, Mark)>> {
    match &node.value {
        Value::Map(e) => e
            .iter()
            .map(|(k, v)| {
                let key = k.scalar_text().unwrap_or_default();
                Ok((key, v.scalar_text(), k.mark))
            })
            .collect(),
        _ => strings(node, path).map(|items| {
            items
                .into_iter()
                .map(|(item, mark)| match item.split_once('=') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned()), mark),
                    None => (item, None, mark),
                })
                .collect()
        }),
    }
}

/// `<service>:<port>` where the service is a dependency: (alias, service, port).
fn dependency_address(value: &str, deps: &[(String, String)]) -> Option<(String, String, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    deps.iter()
        .find(|(alias, target)| host == alias || host == target)
        .map(|(alias, target)| (alias.clone(), target.clone(), port))
}

/// Compose's `$VAR` / `${VAR}` (host environment) → `${env://VAR}`; `$$` stays a literal `$`.
fn host_environment(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = r;
        } else if let Some(end) = after.strip_prefix('{').and_then(|a| a.find('}')) {
            // `${VAR:-default}` keeps only the name.
            let inner = &after[1..=end];
            let name = inner.split([':', '-', '?']).next().unwrap_or(inner);
            out.push_str(&format!("${{env://{name}}}"));
            rest = &after[end + 2..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 {
                out.push_str("$$");
            } else {
                out.push_str(&format!("${{env://{}}}", &after[..len]));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Artifact;

    const SOCK_SHOP: &str = r#"
version: '2'
services:
  front-end:
    image: weaveworksdemos/front-end
    ports:
      - "8079"
    environment:
      - reschedule=on-node-failure
  user:
    image: weaveworksdemos/user
    depends_on: [user-db]
    environment:
      - MONGO_HOST=user-db:27017
      - PASSWORD=${MONGO_PASSWORD}
      - TOKEN
  user-db:
    image: weaveworksdemos/user-db
    volumes: [data:/data]
    restart: always
  load:
    image: weaveworksdemos/load-test
    command: "-d 60 -r 200 -c 2 -h front-end"
volumes:
  data: {}
"#;

    #[test]
    fn services_become_clusters_with_breeds() {
        let import = import(SOCK_SHOP, "sock-shop").unwrap();
        let bp = &import.blueprint;
        assert_eq!(bp.name, "sock-shop");
        let names: Vec<&str> = bp.clusters.keys().map(String::as_str).collect();
        assert_eq!(names, ["front-end", "user", "user-db", "load"]);
        let breed = |c: &str| bp.clusters[c].services[0].breed.inline().unwrap().clone();
        let fe = breed("front-end");
        assert_eq!(fe.name, "front-end:1.0.0");
        assert_eq!(fe.deployable.definition, "weaveworksdemos/front-end");
        assert_eq!(fe.ports["port_8079"].to_string(), "8079/http");
        let user = breed("user");
        assert_eq!(
            user.environment_variables["MONGO_HOST"].value.as_deref(),
            Some("$user-db.host:$user-db.ports.port_27017")
        );
        assert_eq!(
            user.environment_variables["PASSWORD"].value.as_deref(),
            Some("${env://MONGO_PASSWORD}")
        );
        assert_eq!(user.environment_variables["TOKEN"].value, None);
        assert_eq!(
            user.dependencies["user-db"],
            Ref::Reference("user-db:1.0.0".into())
        );
        assert!(
            breed("user-db").ports.contains_key("port_27017"),
            "a referenced port is added"
        );
        assert_eq!(
            bp.clusters["load"].services[0].dialects["docker"]["cmd"],
            "-d 60 -r 200 -c 2 -h front-end"
        );
    }

    #[test]
    fn ignored_fields_are_reported_with_lines() {
        let import = import(SOCK_SHOP, "sock-shop").unwrap();
        let paths: Vec<(&str, usize)> = import
            .notes
            .iter()
            .map(|n| (n.path.as_str(), n.line))
            .collect();
        assert!(
            paths.contains(&("services.user-db.volumes", 19)),
            "{paths:?}"
        );
        assert!(
            paths.contains(&("services.user-db.restart", 20)),
            "{paths:?}"
        );
        assert!(paths.contains(&("volumes", 24)), "{paths:?}");
        assert!(import.notes.iter().any(|n| n.message.contains("TOKEN")));
    }

    #[test]
    fn the_result_is_a_valid_blueprint_that_round_trips() {
        let import = import(SOCK_SHOP.replace("      - TOKEN\n", "").as_str(), "shop").unwrap();
        let artifact = Artifact::Blueprint(import.blueprint);
        let yaml = crate::dsl::to_yaml(std::slice::from_ref(&artifact)).unwrap();
        let loaded =
            crate::dsl::load(&yaml, None, None).unwrap_or_else(|e| panic!("{e:?}\n{yaml}"));
        assert_eq!(loaded, vec![artifact]);
    }

    #[test]
    fn port_forms() {
        let text = "services:\n  a:\n    image: a\n    ports:\n      - 3000\n      - \"3001-3005\"\n      \
                    - \"8000:8002\"\n      - \"9090-9091:8080-8081\"\n      - \"127.0.0.1:5000-5010:5001-5010\"\n      \
                    - \"6060:6060/tcp\"\n      - {target: 7000, published: 7001, protocol: tcp}\n";
        let import = import(text, "p").unwrap();
        let ports = &import.blueprint.clusters["a"].services[0]
            .breed
            .inline()
            .unwrap()
            .ports;
        let shown: Vec<String> = ports.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            shown,
            [
                "port_3000=3000/http",
                "port_3001=3001/http",
                "port_8002=8002/http",
                "port_8080=8080/http",
                "port_5001=5001/http",
                "port_6060=6060/tcp",
                "port_7000=7000/tcp"
            ]
        );
    }

    #[test]
    fn udp_is_rejected_with_its_line() {
        let e = import(
            "services:\n  a:\n    image: a\n    ports:\n      - \"53:53/udp\"\n",
            "x",
        )
        .unwrap_err();
        assert_eq!((e.kind, e.line), (ErrorKind::UnsupportedProtocolError, 5));
    }

    #[test]
    fn v1_layout_links_and_aliases() {
        let text = "db:\n  image: mysql\nweb:\n  image: wp\n  links: [\"db:database\"]\n  \
                    environment: {DB_HOST: \"database:3306\", COST: \"$$5\"}\n";
        let import = import(text, "wp").unwrap();
        let web = import.blueprint.clusters["web"].services[0]
            .breed
            .inline()
            .unwrap()
            .clone();
        assert_eq!(
            web.dependencies["database"],
            Ref::Reference("db:1.0.0".into())
        );
        assert_eq!(
            web.environment_variables["DB_HOST"].value.as_deref(),
            Some("$database.host:$database.ports.port_3306")
        );
        assert_eq!(
            web.environment_variables["COST"].value.as_deref(),
            Some("$$5")
        );
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let cases = [
            ("", ErrorKind::NoServiceError),
            ("services: {}\n", ErrorKind::NoServiceError),
            (
                "services:\n  a:\n    build: .\n",
                ErrorKind::UnsupportedComposeFeature,
            ),
            (
                "services:\n  a:\n    image: a\n    links: [b]\n",
                ErrorKind::UnresolvedDependencyError,
            ),
            ("services:\n  a b:\n    image: a\n", ErrorKind::IllegalName),
            ("services: [a]\n", ErrorKind::UnexpectedTypeError),
            (
                "services:\n  a:\n    image: a\n    ports: [\"x:y\"]\n",
                ErrorKind::UnexpectedTypeError,
            ),
        ];
        for (text, kind) in cases {
            assert_eq!(import(text, "x").unwrap_err().kind, kind, "{text:?}");
        }
    }
}
