//! The etcd store against real etcd 3.4: the shared conformance kit on the instance
//! scripts/test.sh starts, and an outage test on a private instance of its own.
#![cfg(feature = "etcd")]

use std::time::Duration;

use vamp_core::testkit::services::PrivateEtcd;
use vamp_drivers::etcd::{EtcdConfig, EtcdStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_key_value_store_kit() {
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let store = EtcdStore::connect(EtcdConfig::new(url))
        .await
        .expect("connect to the test etcd");
    vamp_core::testkit::kv::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_passes_the_election_kit() {
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    // A connection per server, under a root of their own.
    let root = format!("/{}", vamp_core::testkit::unique("election"));
    vamp_core::testkit::election::conforms(
        || async {
            let store = EtcdStore::connect(EtcdConfig::new(url.clone()))
                .await
                .expect("connect");
            Box::new(store.election(&root)) as Box<dyn vamp_core::traits::LeaderElection>
        },
        Duration::from_secs(2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_calls_fast_and_the_watch_resumes_without_loss_or_duplicates() {
    let Some(_) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let binary = vamp_core::testkit::services::service_binary("etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = PrivateEtcd::start(binary, dir.path()).await;
    let mut config = EtcdConfig::new(etcd.url());
    config.timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_secs(1);
    let store = EtcdStore::connect(config).await.expect("connect");
    vamp_core::testkit::kv::survives_outage(&store, &mut etcd, Duration::from_secs(1)).await;
    etcd.stop().await;
}

#[cfg(feature = "kv")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_persistence_over_etcd_passes_the_persistence_kit() {
    let Some(url) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let store = EtcdStore::connect(EtcdConfig::new(url))
        .await
        .expect("connect to the test etcd");
    let root = format!("/vamp-kit-persistence/{}", std::process::id());
    let db = vamp_drivers::kv::KvPersistence::new(std::sync::Arc::new(store), root);
    vamp_core::testkit::persistence::run_all(&db).await;
}

#[cfg(feature = "etcd-tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_works_and_wrong_settings_are_refused() {
    use vamp_core::traits::KeyValueStore;
    use vamp_drivers::etcd::EtcdTls;
    let Some(_) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut etcd, client) = PrivateEtcd::start_tls(dir.path()).await;
    let (ca, client_cert, client_key) = (client.ca, client.cert, client.key);
    let connect = |tls: Option<EtcdTls>| {
        let mut config = EtcdConfig::new(etcd.url());
        config.timeout = Duration::from_secs(2);
        config.connect_timeout = Duration::from_secs(2);
        config.tls = tls;
        EtcdStore::connect(config)
    };
    let good = EtcdTls::from_files(Some(&ca), Some((&client_cert, &client_key))).expect("files");
    let store = connect(Some(good.clone())).await.expect("connect over TLS");
    // The member elects itself first: poll, bounded.
    vamp_core::testkit::eventually_within("an answer over TLS", Duration::from_secs(20), || {
        store.put("/tls/k", b"v")
    })
    .await;
    assert_eq!(
        store.get("/tls/k").await.expect("get").map(|e| e.value),
        Some(b"v".to_vec())
    );
    // Without a client certificate, or trusting another CA: calls fail, clearly and in time.
    for (tls, why) in [
        (
            Some(EtcdTls {
                identity: None,
                ..good.clone()
            }),
            "no client certificate",
        ),
        (
            Some(EtcdTls {
                ca: Some(std::fs::read_to_string(&client_cert).expect("pem")),
                ..good.clone()
            }),
            "an untrusted server",
        ),
    ] {
        let result = vamp_core::testkit::within_limit(
            why,
            Duration::from_secs(10),
            Box::pin(async {
                match connect(tls).await {
                    Ok(store) => store.get("/tls/k").await.map(|_| ()),
                    Err(e) => Err(e),
                }
            }),
        )
        .await;
        let err = result.expect_err(why);
        assert!(err.to_string().contains("etcd"), "{why}: {err}");
    }
    let missing =
        EtcdTls::from_files(Some(&dir.path().join("nope.pem")), None).expect_err("missing file");
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    etcd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_authentication_works_and_missing_or_wrong_credentials_are_refused() {
    use vamp_core::traits::KeyValueStore;
    let Some(_) = vamp_core::testkit::services::service("etcd") else {
        return;
    };
    let binary = vamp_core::testkit::services::service_binary("etcd");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut etcd = PrivateEtcd::start(binary, dir.path()).await;
    // Turn authentication on: a root user with the root role first (etcd requires it).
    let url = etcd.url();
    let mut admin = vamp_core::testkit::eventually_within(
        "the private etcd to answer",
        Duration::from_secs(20),
        || {
            let url = url.clone();
            async move {
                let mut client = etcd_client::Client::connect([url], None).await.ok()?;
                client.user_list().await.ok()?;
                Some(client)
            }
        },
    )
    .await;
    admin
        .user_add("root", "s3cret", None)
        .await
        .expect("user add");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin.auth_enable().await.expect("auth enable");

    let config = |user: Option<(&str, &str)>| {
        let mut config = EtcdConfig::new(etcd.url());
        config.timeout = Duration::from_secs(2);
        config.connect_timeout = Duration::from_secs(2);
        config.user = user.map(|(u, p)| (u.to_owned(), p.to_owned()));
        config
    };
    let store = EtcdStore::connect(config(Some(("root", "s3cret"))))
        .await
        .expect("connect with the password");
    store.put("/auth/k", b"v").await.expect("put as root");
    for (user, why) in [
        (None, "no credentials"),
        (Some(("root", "wrong")), "a wrong password"),
    ] {
        let result = match EtcdStore::connect(config(user)).await {
            Ok(store) => store.put("/auth/k", b"x").await.map(|_| ()),
            Err(e) => Err(e),
        };
        let err = result.expect_err(why);
        assert!(err.to_string().contains("etcd"), "{why}: {err}");
    }
    assert_eq!(
        store.get("/auth/k").await.expect("get").map(|e| e.value),
        Some(b"v".to_vec()),
        "refused writes changed nothing"
    );
    etcd.stop().await;
}
