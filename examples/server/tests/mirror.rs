//! `mirror` on a gateway's route (issue 21): stored and served with the embedded router,
//! refused with the reason where the router cannot mirror, and a bad target named with its
//! line.

mod common;

use common::{Server, get, parse, post};

const GATEWAY: &str = "name: shop\nport: 0/http\nroutes:\n  '[127.0.0.1:9]':\n    weight: 100%\n    mirror: {target: '127.0.0.1:10', percentage: 25%}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_router_takes_a_mirror() {
    let server = Server::start(&[]).await;
    let u = &server.url;
    post(202, &format!("{u}/gateways"), GATEWAY).await;
    let stored = parse(&get(200, &format!("{u}/gateways/shop")).await);
    assert_eq!(
        stored["routes"]["[127.0.0.1:9]"]["mirror"],
        serde_json::json!({"target": "127.0.0.1:10", "percentage": "25%"}),
        "{stored}"
    );
    let body = post(
        400,
        &format!("{u}/gateways"),
        "name: bad\nroutes:\n  '[127.0.0.1:9]':\n    mirror: {target: nowhere}\n",
    )
    .await;
    assert!(
        body.contains("nowhere") && body.contains("host:port"),
        "{body}"
    );
    assert!(body.contains("line"), "the line is named: {body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_that_cannot_mirror_refuses_it_at_validation() {
    let server = Server::start(&[("router.kind", "none")]).await;
    let u = &server.url;
    let body = post(400, &format!("{u}/gateways"), GATEWAY).await;
    assert!(body.contains("cannot mirror"), "{body}");
    assert!(body.contains("mirror"), "{body}");
    assert_eq!(common::get_status(&format!("{u}/gateways/shop")).await, 404);
    server.stop().await;
}
