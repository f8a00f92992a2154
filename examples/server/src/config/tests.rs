use super::*;

fn load(
    file: &str,
    env: &[(&str, &str)],
    flags: &[(&str, &str)],
) -> Result<ServerConfig, ConfigError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vamp.toml");
    std::fs::write(&path, file).expect("write");
    ServerConfig::load(
        Some(&path),
        env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        flags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    )
}

#[test]
fn defaults_need_nothing_installed() {
    let config = ServerConfig::load(None, [], []).expect("defaults");
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        (
            config.driver.kind(),
            config.persistence.kind.as_str(),
            config.router.kind.as_str()
        ),
        ("process", "sqlite", "embedded")
    );
    assert_eq!(config.sqlite_path(), PathBuf::from("vamp-data/vamp.db"));
}

#[test]
fn file_then_environment_then_flags() {
    let config = load(
        "[server]\nlisten = \"127.0.0.1:1000\"\nbody_limit = 10\n[persistence]\nkind = \"memory\"\n",
        &[("VAMP_SERVER__LISTEN", "127.0.0.1:2000"), ("VAMP_SERVER__BODY_LIMIT", "20"), ("HOME", "/x")],
        &[("server.listen", "127.0.0.1:3000")],
    )
    .expect("config");
    assert_eq!(config.server.listen.port(), 3000, "flags win");
    assert_eq!(
        config.server.body_limit, 20,
        "the environment beats the file"
    );
    assert_eq!(config.persistence.kind, "memory", "the file beats defaults");
}

#[test]
fn mistakes_name_the_key_the_place_and_the_fix() {
    let err = load("[server]\nlisen = \"x\"\n", &[], &[])
        .expect_err("unknown key")
        .to_string();
    assert!(
        err.contains("vamp.toml") && err.contains("lisen") && err.contains("line 2"),
        "{err}"
    );
    let err = load("[server]\nlisten = 8080\n", &[], &[])
        .expect_err("wrong type")
        .to_string();
    assert!(err.contains("listen"), "{err}");
    let err = load("[server\n", &[], &[])
        .expect_err("bad toml")
        .to_string();
    assert!(err.contains("vamp.toml"), "{err}");
    let err = load("", &[("VAMP_SERVER__LISTEN", "nowhere")], &[])
        .expect_err("bad address")
        .to_string();
    assert!(err.contains("listen"), "{err}");
    let err = load("[persistence]\nkind = \"oracle\"\n", &[], &[])
        .expect_err("kind")
        .to_string();
    assert!(
        err.contains("persistence.kind") && err.contains("sqlite, memory"),
        "{err}"
    );
    let err = load("[persistence]\nkind = \"postgres\"\n", &[], &[])
        .expect_err("postgres without a url, or without the feature")
        .to_string();
    assert!(
        err.contains("persistence.url") || err.contains("--features postgres"),
        "{err}"
    );
    let err = load("[router]\nkind = \"haproxy-kv\"\n", &[], &[])
        .expect_err("haproxy-kv on a private store")
        .to_string();
    assert!(
        err.contains("key_value.kind") || err.contains("--features haproxy"),
        "{err}"
    );
    let err = load("[key_value]\ncert = \"c.pem\"\n", &[], &[])
        .expect_err("a certificate without its key")
        .to_string();
    assert!(err.contains("key_value.key"), "{err}");
    let err = load("[key_value]\nca = \"ca.pem\"\n", &[], &[])
        .expect_err("TLS for the memory store")
        .to_string();
    assert!(err.contains("etcd"), "{err}");
    let err = load("[key_value]\nroot = \"vamp\"\n", &[], &[])
        .expect_err("relative root")
        .to_string();
    assert!(err.contains("key_value.root"), "{err}");
    let err = load("[gateways]\nports = \"9-1\"\n", &[], &[])
        .expect_err("range")
        .to_string();
    assert!(err.contains("gateways.ports"), "{err}");
    let err = load("[server]\ntoken = \"\"\n", &[], &[])
        .expect_err("empty token")
        .to_string();
    assert!(err.contains("server.token"), "{err}");
}

#[test]
fn the_printed_config_hides_the_token_and_reads_back() {
    let config = load(
        "[server]\ntoken = \"s3cret-token\"\n[key_value]\ncredentials = \"root:s3cret\"\n[persistence]\nkind = \"memory\"\nurl = \"postgres://u:s3cret@h/db\"\n",
        &[],
        &[],
    )
    .expect("config");
    let shown = config.to_toml();
    assert!(
        !shown.contains("s3cret") && shown.matches("<hidden>").count() == 3,
        "{shown}"
    );
    let back: ServerConfig = toml::from_str(&shown).expect("reads back");
    assert_eq!(back.server.listen, config.server.listen);
}

#[test]
fn each_value_says_where_it_came_from_and_keeps_its_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vamp.toml");
    std::fs::write(&path, "[server]\nbody_limit = 4096\n").expect("write");
    let env = [
        ("VAMP_SERVER__TOKEN", "0123456789"),
        ("VAMP_ROLLOUTS__CALL_HOSTS", "a.example, b.example"),
        ("VAMP_SERVER__TOKENS", "{ ci = \"ci-token-0001\" }"),
        ("VAMP_TEST_SERVICES", "not a setting: no `__`"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let flags = [("server.listen".to_owned(), "127.0.0.1:9000".to_owned())];
    let (config, origins) =
        ServerConfig::load_with_origins(Some(&path), env, flags).expect("config");
    // A token of digits keeps its leading zero: text, as the field is.
    assert_eq!(config.server.token.as_deref(), Some("0123456789"));
    assert_eq!(config.rollouts.call_hosts, ["a.example", "b.example"]);
    assert_eq!(config.server.tokens["ci"], "ci-token-0001");
    assert_eq!(config.server.body_limit, 4096);
    assert_eq!(origins["server.body_limit"], path.display().to_string());
    assert_eq!(origins["server.token"], "VAMP_SERVER__TOKEN");
    assert_eq!(origins["server.tokens"], "VAMP_SERVER__TOKENS");
    assert_eq!(origins["server.listen"], "flag server.listen");
    assert!(!origins.contains_key("server.data_dir"), "a default");
    let shown = config.to_toml_with_origins(&origins);
    assert!(
        shown.contains("listen = \"127.0.0.1:9000\"  # flag server.listen")
            && shown.contains("token = \"<hidden>\"  # VAMP_SERVER__TOKEN")
            && !shown.contains("0123456789"),
        "{shown}"
    );
}

#[test]
fn port_ranges_that_outgoing_connections_can_take_are_warned_of_naming_the_key() {
    let Some((ephemeral, reserved)) = kernel_client_ports() else {
        eprintln!("SKIPPED: /proc/sys/net/ipv4/ip_local_port_range cannot be read here");
        return;
    };
    // Ten ports at the start of the kernel's range that are not reserved: warned of.
    let start = *ephemeral.start();
    let inside = format!("{start}-{}", start.saturating_add(9));
    let open = ports_open_to_clients(port_range(&inside).expect("range"), ephemeral, &reserved);
    let below = format!("{}-{}", start - 100, start - 1);
    let config = load(
        &format!("[gateways]\nports = \"{inside}\"\n[driver]\nports = \"{below}\"\n"),
        &[],
        &[],
    )
    .expect("config");
    let warnings = client_port_warnings(&config);
    if open == 0 {
        assert!(warnings.is_empty(), "{warnings:?}");
        eprintln!("SKIPPED: the kernel reserves {inside}");
        return;
    }
    assert_eq!(
        warnings.len(),
        1,
        "the driver's range lies below: {warnings:?}"
    );
    let warning = &warnings[0];
    assert!(
        warning.starts_with(&format!("gateways.ports = {inside}: {open} of its ports")),
        "{warning}"
    );
    assert!(
        warning.contains(&format!("net.ipv4.ip_local_reserved_ports={inside}")),
        "the fix is named: {warning}"
    );
}

#[test]
fn the_default_port_ranges_lie_below_linuxs_default_range_for_outgoing_connections() {
    let config = ServerConfig::load(None, [], []).expect("defaults");
    for text in [&config.driver.ports, &config.gateways.ports] {
        let range = port_range(text).expect("range");
        assert_eq!(
            ports_open_to_clients(range, 32768..=60999, &[]),
            0,
            "{text}"
        );
    }
}
