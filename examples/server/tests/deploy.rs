//! `deploy/kubernetes/server.yaml` (issue 25): the configuration its ConfigMap carries is one
//! this server loads, with the token its Deployment gives through the environment.

use std::path::Path;

use vamp_server::config::ServerConfig;

#[test]
fn the_kubernetes_config_map_is_a_configuration_the_server_loads() {
    let manifests =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/server.yaml");
    let text = std::fs::read_to_string(&manifests).expect("server.yaml");
    let docs = vamp_core::dsl::parse_documents(&text).expect("YAML");
    let docs: Vec<serde_json::Value> = docs.iter().map(|d| d.to_json()).collect();
    let toml = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["vamp.toml"].as_str())
        .expect("a ConfigMap with vamp.toml");
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the server's Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["args"][1], "/etc/vamp/vamp.toml");
    let token_variable = container["env"][0]["name"].as_str().expect("env");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("vamp.toml");
    std::fs::write(&file, toml).expect("write");
    let env = [(
        token_variable.to_owned(),
        "a-token-from-the-secret".to_owned(),
    )];
    let (config, origins) =
        ServerConfig::load_with_origins(Some(&file), env, []).unwrap_or_else(|e| panic!("{e}"));
    let shown = config.to_toml_with_origins(&origins);
    for expected in [
        "kind = \"kubernetes\"",
        "kind = \"etcd\"",
        "kind = \"haproxy-kv\"",
        "listen = \"0.0.0.0:8080\"",
        "token = \"<hidden>\"",
    ] {
        assert!(shown.contains(expected), "{expected} not in:\n{shown}");
    }
}
