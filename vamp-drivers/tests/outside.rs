//! What rollouts call outside (issue 19): the Prometheus provider against a real Prometheus
//! (a private one per test, scraping a local target every second), the web provider and the
//! webhook sender against local HTTP servers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use vamp_core::testkit::services::{PrivatePrometheus, service};
use vamp_core::traits::{CallError, MetricProvider, Reading, WebhookSender};
use vamp_drivers::outside::{HttpWebhooks, PrometheusProvider, WebProvider};

/// Serves `app` on a free loopback port; returns `http://127.0.0.1:<port>`.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://127.0.0.1:{port}")
}

const METRICS: &str = "# TYPE vamp_test_ratio gauge\nvamp_test_ratio 0.25\n# TYPE vamp_test_series gauge\nvamp_test_series{a=\"1\"} 1\nvamp_test_series{a=\"2\"} 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_answers_one_number_no_data_or_a_clear_error() {
    let Some(binary) = service("prometheus") else {
        return;
    };
    let target = serve(Router::new().route("/metrics", get(|| async { METRICS }))).await;
    let dir = tempfile::tempdir().unwrap();
    let mut prometheus = PrivatePrometheus::start(
        binary,
        dir.path(),
        &[target.trim_start_matches("http://").to_owned()],
        Duration::from_secs(1),
    )
    .await;
    let url = prometheus.url();
    let p = PrometheusProvider::new().unwrap();
    let t = Duration::from_secs(5);
    // Bounded poll: the first scrape lands within a second or two.
    let first = vamp_core::testkit::eventually("a scraped sample", || {
        let (p, url) = (p.clone(), url.clone());
        async move {
            match p.measure(&url, "vamp_test_ratio", t).await {
                Ok(Reading::Number(v)) => Some(v),
                _ => None,
            }
        }
    })
    .await;
    assert!((first - 0.25).abs() < 1e-12);
    assert_eq!(
        p.measure(&url, "sum(vamp_test_series)", t).await,
        Ok(Reading::Number(3.0))
    );
    let many = p.measure(&url, "vamp_test_series", t).await;
    assert!(
        matches!(&many, Err(CallError::Answer { message, .. }) if message.contains("2 series")),
        "{many:?}"
    );
    assert!(matches!(
        p.measure(&url, "vamp_test_absent", t).await,
        Ok(Reading::NoData(_))
    ));
    assert!(matches!(
        p.measure(&url, "vamp_test_ratio - vamp_test_ratio / 0 * 0", t)
            .await,
        Ok(Reading::NoData(_))
    ));
    let refused = p.measure(&url, "sum(", t).await;
    assert!(
        matches!(&refused, Err(CallError::Answer { message, .. }) if message.contains("bad_data")),
        "Prometheus' own reason: {refused:?}"
    );
    assert_eq!(
        p.collection_period(&url, t).await,
        Some(Duration::from_secs(1))
    );
    // An outage is a call error that may pass, never a number.
    prometheus.stop().await;
    let down = p.measure(&url, "vamp_test_ratio", t).await;
    assert!(matches!(&down, Err(e) if e.is_transient()), "{down:?}");
}

#[tokio::test]
async fn the_web_provider_reads_the_number_at_a_json_path() {
    let base = serve(
        Router::new()
            .route(
                "/score",
                get(|| async {
                    axum::Json(serde_json::json!({"data": {"value": 0.5}, "none": null}))
                }),
            )
            .route(
                "/broken",
                get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
            .route("/text", get(|| async { "not json" })),
    )
    .await;
    let p = WebProvider::new().unwrap();
    let t = Duration::from_secs(5);
    let score = format!("{base}/score");
    assert_eq!(
        p.measure(&score, "$.data.value", t).await,
        Ok(Reading::Number(0.5))
    );
    assert!(matches!(
        p.measure(&score, "$.none", t).await,
        Ok(Reading::NoData(_))
    ));
    let broken = p.measure(&format!("{base}/broken"), "$.value", t).await;
    assert!(
        matches!(&broken, Err(CallError::Status { status: 502, body, .. }) if body.contains("upstream down")),
        "{broken:?}"
    );
    assert!(broken.is_err_and(|e| e.is_transient()));
    let slow = p
        .measure(
            &format!("{base}/slow"),
            "$.value",
            Duration::from_millis(300),
        )
        .await;
    assert!(matches!(slow, Err(CallError::Timeout { .. })), "{slow:?}");
    let text = p.measure(&format!("{base}/text"), "$.value", t).await;
    assert!(
        matches!(&text, Err(CallError::Answer { message, .. }) if message.contains("not JSON")),
        "{text:?}"
    );
}

#[tokio::test]
async fn webhooks_post_json_and_report_the_status() {
    let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let seen = received.clone();
    let base = serve(
        Router::new()
            .route(
                "/ok",
                post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(body);
                        axum::http::StatusCode::OK
                    }
                }),
            )
            .route("/no", post(|| async { axum::http::StatusCode::FORBIDDEN })),
    )
    .await;
    let s = HttpWebhooks::new().unwrap();
    let t = Duration::from_secs(5);
    let body = serde_json::json!({"rollout": "r", "text": "rollout r: Succeeded"});
    assert_eq!(s.post(&format!("{base}/ok"), &body, t).await, Ok(200));
    assert_eq!(
        received.lock().unwrap().as_slice(),
        std::slice::from_ref(&body)
    );
    assert_eq!(s.post(&format!("{base}/no"), &body, t).await, Ok(403));
    let port = vamp_core::testkit::free_port();
    let nobody = s.post(&format!("http://127.0.0.1:{port}/"), &body, t).await;
    assert!(
        matches!(&nobody, Err(CallError::Unreachable { .. })),
        "{nobody:?}"
    );
}

/// HTTPS works without any process-wide TLS set-up (ring is given explicitly): against a
/// local TLS server whose certificate no system root signed, the handshake happens and the
/// call fails saying why.
#[tokio::test]
async fn https_is_spoken_and_an_unknown_issuer_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let [_, cert, key, _, _] = vamp_core::testkit::services::tls_certificates(dir.path());
    let port = vamp_core::testkit::free_port();
    let mut server = tokio::process::Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept", &port.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl (scripts/test.sh installs it)");
    vamp_core::testkit::eventually("the TLS server listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let s = HttpWebhooks::new().unwrap();
    let refused = s
        .post(
            &format!("https://127.0.0.1:{port}/"),
            &serde_json::json!({"x": 1}),
            Duration::from_secs(5),
        )
        .await;
    assert!(
        matches!(&refused, Err(CallError::Unreachable { message, .. }) if message.to_lowercase().contains("certificate")),
        "{refused:?}"
    );
    let _ = server.start_kill();
    let _ = server.wait().await;
}
