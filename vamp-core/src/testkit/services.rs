//! Real services for integration tests (ARCHITECTURE, "Tests that need real services").
//!
//! `scripts/test.sh` starts the services and exports `VAMP_TEST_SERVICES` (e.g.
//! `etcd zookeeper postgres docker haproxy`) plus one address variable per service,
//! `VAMP_TEST_<NAME>` (e.g. `VAMP_TEST_ETCD=http://127.0.0.1:23790`).

/// The address of a real service for this test, or `None` to skip.
///
/// - Listed in `VAMP_TEST_SERVICES` → its address from `VAMP_TEST_<NAME>`; the test then uses
///   it and **fails** if the service cannot be reached. Listed without an address → panic.
/// - Not listed → prints why the test is skipped and returns `None`, so a plain `cargo test`
///   works on a laptop without the services.
pub fn service(name: &str) -> Option<String> {
    let listed = std::env::var("VAMP_TEST_SERVICES").unwrap_or_default();
    if !listed
        .split([' ', ','])
        .any(|s| s.eq_ignore_ascii_case(name))
    {
        eprintln!(
            "skipped: service '{name}' is not in VAMP_TEST_SERVICES ('{listed}'); scripts/test.sh starts it"
        );
        return None;
    }
    let var = format!("VAMP_TEST_{}", name.to_ascii_uppercase().replace('-', "_"));
    match std::env::var(&var) {
        Ok(address) if !address.is_empty() => Some(address),
        _ => panic!("VAMP_TEST_SERVICES lists '{name}' but {var} is not set"),
    }
}
