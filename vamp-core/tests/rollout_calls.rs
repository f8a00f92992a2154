//! Rollouts that call the outside (issue 19), on the in-memory driver, a router whose counters
//! the test sets, a scripted metric provider and a recording webhook sender, on a virtual
//! clock: provider errors pause and never roll back, gates hold until they say yes, event
//! webhooks get every phase change in order, and a slow webhook holds up nothing else.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use vamp_core::memory::{MemoryDriver, MemoryPersistence, RecordingRouter};
use vamp_core::model::{Artifact, Blueprint, ProviderKind};
use vamp_core::rollout::{Phase, RolloutStatus, Weights};
use vamp_core::testkit::outside::{RecordingSender, ScriptedProvider};
use vamp_core::traits::{CallError, EventFilter, Page, Reading, RouteStats};
use vamp_core::{Vamp, dsl};

/// The first step of the rollouts here: 20% to the canary.
const AT_20: Weights = Weights {
    stable: 80,
    canary: 20,
};

struct World {
    vamp: Vamp,
    router: RecordingRouter,
    provider: Arc<ScriptedProvider>,
    sender: Arc<RecordingSender>,
    now: DateTime<Utc>,
    served: std::cell::Cell<u64>,
}

/// Deployments `names`, each a cluster `web` running `web:1` (all traffic) and `web:2`.
async fn world(names: &[&str]) -> World {
    world_calling(names, true).await
}

/// As [`world`]; `outside`: with a provider and a webhook sender.
async fn world_calling(names: &[&str], outside: bool) -> World {
    world_with(names, outside, vamp_core::VampConfig::default()).await
}

/// As [`world_calling`], with `config`.
async fn world_with(names: &[&str], outside: bool, config: vamp_core::VampConfig) -> World {
    let router = RecordingRouter::default();
    let provider = Arc::new(ScriptedProvider::new(ProviderKind::Prometheus));
    let sender = Arc::new(RecordingSender::new());
    let mut builder = Vamp::builder()
        .persistence(Arc::new(MemoryPersistence::default()))
        .driver(Arc::new(MemoryDriver::default()))
        .router(Arc::new(router.clone()))
        .config(config);
    if outside {
        builder = builder
            .provider(provider.clone())
            .webhook_sender(sender.clone());
    }
    let vamp = builder.build().unwrap();
    for a in dsl::read(
        "---\nkind: breeds\nname: web:1\ndeployable: img\nports: {web: 8080/http}\n---\nkind: breeds\nname: web:2\ndeployable: img\nports: {web: 8080/http}\n",
        None,
    )
    .unwrap()
    {
        vamp.put(a).await.unwrap();
    }
    for name in names {
        let Artifact::Blueprint(bp) = dsl::read(
            &format!("kind: blueprints\nname: {name}\nclusters:\n  web:\n    services: [web:1, web:2]\n    gateways:\n      web:\n        routes:\n          web:1: {{weight: 100%}}\n          web:2: {{weight: 0%}}\n"),
            None,
        )
        .unwrap()
        .remove(0) else {
            panic!("a blueprint")
        };
        vamp.deploy(name, &Blueprint::clone(&bp)).await.unwrap();
    }
    while !vamp.reconcile().await.unwrap().converged {}
    World {
        vamp,
        router,
        provider,
        sender,
        now: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::days(20_000),
        served: std::cell::Cell::new(0),
    }
}

fn spec(name: &str, metrics: &str, webhooks: &str) -> String {
    format!(
        "kind: rollouts\nname: {name}\ngateway: {name}/web/web\nstable: {name}/web/web:1/web\ncanary: {name}/web/web:2/web\nsteps:\n  - weight: 20%\n  - analysis: {{}}\nanalysis:\n  interval: 10s\n  min_requests: 10\n  consecutive_error_limit: 2\n  metrics:\n{metrics}{webhooks}"
    )
}

const PROMETHEUS: &str = "    - {provider: prometheus, url: \"http://prom.test:9090\", query: \"errors{route=\\\"{{canary}}\\\"}[{{interval}}]\", max: 0.01}\n";

impl World {
    async fn start(&self, text: &str) {
        for a in dsl::read(text, None).unwrap() {
            self.vamp.put(a).await.unwrap();
        }
    }

    /// Every route of every deployment has served `n` requests more, without errors.
    fn serve(&self, names: &[&str], n: u64) {
        self.served.set(self.served.get() + n);
        let mut stats = Vec::new();
        for name in names {
            for v in ["web:1", "web:2"] {
                stats.push(RouteStats {
                    gateway: format!("{name}/web/web"),
                    route: format!("{name}/web/{v}/web"),
                    requests: self.served.get(),
                    ..RouteStats::default()
                });
            }
        }
        self.router.set_stats(stats);
    }

    /// A pass at the virtual `now`, then the answers it asked for, then another pass.
    async fn tick(&mut self, seconds: i64) {
        self.now += chrono::Duration::seconds(seconds);
        self.vamp.rollout_pass_at(self.now).await.unwrap();
        assert!(
            self.vamp
                .settle_rollout_calls(Duration::from_secs(10))
                .await,
            "calls in flight after 10 s"
        );
        self.vamp.rollout_pass_at(self.now).await.unwrap();
    }

    async fn status(&self, name: &str) -> RolloutStatus {
        self.vamp.rollout_status(name).await.unwrap().unwrap()
    }
}

#[tokio::test]
async fn provider_errors_pause_after_the_limit_and_never_roll_back() {
    let mut w = world(&["shop"]).await;
    w.provider.answer(Err(CallError::Unreachable {
        url: "http://prom.test:9090".into(),
        message: "connection refused".into(),
    }));
    w.start(&spec("shop", PROMETHEUS, "")).await;
    w.tick(0).await;
    assert_eq!(w.status("shop").await.weights, AT_20);
    for _ in 0..10 {
        w.serve(&["shop"], 100);
        w.tick(10).await;
        if w.status("shop").await.phase != Phase::Progressing {
            break;
        }
    }
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::Paused, "{s:?}");
    let reason = s.reason.unwrap_or_default();
    assert!(
        reason.contains("3 intervals in a row without an answer")
            && reason.contains("connection refused"),
        "{reason}"
    );
    assert_eq!(s.verdicts.fail, 0);
    assert_eq!(s.weights, AT_20, "weights held");
    // The query was asked with the template filled in.
    let (url, query) = w.provider.asked().remove(0);
    assert_eq!(url, "http://prom.test:9090");
    assert_eq!(query, "errors{route=\"shop/web/web:2/web\"}[10s]");
    // No data is no failure either; a number within its bound passes once there is traffic.
    w.provider.answer(Ok(Reading::Number(0.001)));
    w.vamp
        .rollout_command_at("shop", vamp_core::rollout::Command::Resume, w.now)
        .await
        .unwrap();
    for _ in 0..5 {
        w.serve(&["shop"], 100);
        w.tick(10).await;
    }
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
}

#[tokio::test]
async fn a_provider_number_out_of_bound_rolls_back_and_says_so() {
    let mut w = world(&["shop"]).await;
    w.provider.answer(Ok(Reading::Number(0.25)));
    w.start(&spec("shop", PROMETHEUS, "")).await;
    w.tick(0).await;
    for _ in 0..5 {
        w.serve(&["shop"], 100);
        w.tick(10).await;
    }
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    assert_eq!(
        s.weights,
        Weights {
            stable: 100,
            canary: 0
        }
    );
    let reason = s.reason.unwrap_or_default();
    assert!(
        reason.contains("prometheus 0.25") && reason.contains("max 0.01"),
        "{reason}"
    );
}

#[tokio::test]
async fn gates_hold_until_their_webhooks_say_yes() {
    let mut w = world(&["shop"]).await;
    let (pre, confirm) = ("http://hooks.test/pre", "http://hooks.test/confirm");
    w.sender.status(pre, 500);
    w.sender.status(confirm, 403);
    let hooks = format!(
        "webhooks:\n  - {{type: pre-rollout, url: \"{pre}\", retries: 0}}\n  - {{type: confirm-promotion, url: \"{confirm}\"}}\n"
    );
    w.start(&spec(
        "shop",
        "    - {metric: success-rate, min: 99%}\n",
        &hooks,
    ))
    .await;
    for _ in 0..3 {
        w.tick(10).await;
    }
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::Paused, "{s:?}");
    assert_eq!(
        s.weights,
        Weights {
            stable: 100,
            canary: 0
        },
        "a pre-rollout 500 keeps the weights"
    );
    assert!(
        s.reason
            .clone()
            .unwrap_or_default()
            .contains("answered 500"),
        "{s:?}"
    );
    // Asked again every interval, not more often.
    let asked = w.sender.posted_to(pre).len();
    w.tick(1).await;
    assert_eq!(
        w.sender.posted_to(pre).len(),
        asked,
        "asked again within the interval"
    );
    w.sender.status(pre, 200);
    w.tick(10).await;
    w.tick(0).await;
    assert_eq!(w.status("shop").await.weights, AT_20);
    // Every step done: the confirm-promotion gate holds it, asked every interval.
    for _ in 0..4 {
        w.serve(&["shop"], 100);
        w.tick(10).await;
    }
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::Paused, "{s:?}");
    assert!(
        s.reason
            .clone()
            .unwrap_or_default()
            .contains("answered 403"),
        "{s:?}"
    );
    assert_eq!(s.weights, AT_20);
    w.sender.status(confirm, 200);
    w.tick(10).await;
    w.tick(0).await;
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::Succeeded, "{s:?}");
    assert_eq!(
        s.weights,
        Weights {
            stable: 0,
            canary: 100
        }
    );
    // What a gate receives.
    let body = &w.sender.posted_to(confirm)[0];
    assert_eq!(body["rollout"], "shop");
    assert_eq!(body["type"], "confirm-promotion");
    assert!(
        body["text"].as_str().unwrap_or_default().contains("shop"),
        "{body}"
    );
}

#[tokio::test]
async fn event_webhooks_get_every_phase_change_in_order_and_rollback_webhooks_roll_back() {
    let mut w = world(&["shop"]).await;
    let (events, post, rollback) = (
        "http://hooks.test/events",
        "http://hooks.test/post",
        "http://hooks.test/rollback",
    );
    w.sender.status(rollback, 404);
    let hooks = format!(
        "webhooks:\n  - {{type: event, url: \"{events}\"}}\n  - {{type: post-rollout, url: \"{post}\"}}\n  - {{type: rollback, url: \"{rollback}\"}}\n"
    );
    w.start(&spec(
        "shop",
        "    - {metric: success-rate, min: 99%}\n",
        &hooks,
    ))
    .await;
    w.tick(0).await;
    w.vamp
        .rollout_command_at("shop", vamp_core::rollout::Command::Pause, w.now)
        .await
        .unwrap();
    w.vamp
        .rollout_command_at("shop", vamp_core::rollout::Command::Resume, w.now)
        .await
        .unwrap();
    // Someone answers the rollback webhook with 200: the canary is rolled back.
    w.sender.status(rollback, 200);
    w.tick(10).await;
    w.tick(0).await;
    let s = w.status("shop").await;
    assert_eq!(s.phase, Phase::RolledBack, "{s:?}");
    assert!(
        s.reason
            .clone()
            .unwrap_or_default()
            .contains("rollback webhooks"),
        "{s:?}"
    );
    // Delivered in the background, in order: the phases of the stored phase events.
    let stored = w
        .vamp
        .events(
            &EventFilter {
                tags: vec!["rollouts:shop".into(), "phase".into()],
                ..EventFilter::default()
            },
            Page::ALL,
        )
        .await
        .unwrap();
    let mut want: Vec<String> = stored
        .items
        .iter()
        .map(|e| {
            e.event.value["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    want.reverse(); // newest first in the store
    vamp_core::testkit::eventually("every phase change delivered", || {
        let got = w.sender.posted_to(events).len();
        let n = want.len();
        async move { (got >= n).then_some(()) }
    })
    .await;
    let got: Vec<String> = w
        .sender
        .posted_to(events)
        .iter()
        .map(|b| b["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(got, want);
    assert!(
        want.len() >= 4,
        "started, Paused, Progressing, RolledBack: {want:?}"
    );
    vamp_core::testkit::eventually("post-rollout delivered", || {
        let n = w.sender.posted_to(post).len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(w.sender.posted_to(post)[0]["phase"], "RolledBack");
}

#[tokio::test]
async fn a_slow_webhook_holds_up_no_other_rollout() {
    let mut w = world(&["slow", "quick"]).await;
    let hook = "http://hooks.test/slow";
    w.sender.delay(hook, Duration::from_secs(3_600));
    w.start(&spec(
        "slow",
        "    - {metric: success-rate, min: 99%}\n",
        &format!("webhooks:\n  - {{type: pre-rollout, url: \"{hook}\", timeout: 60s}}\n"),
    ))
    .await;
    w.start(&spec(
        "quick",
        "    - {metric: success-rate, min: 99%}\n",
        "",
    ))
    .await;
    for _ in 0..5 {
        w.serve(&["slow", "quick"], 100);
        w.now += chrono::Duration::seconds(10);
        w.vamp.rollout_pass_at(w.now).await.unwrap();
    }
    assert_eq!(w.status("quick").await.phase, Phase::Succeeded);
    let slow = w.status("slow").await;
    assert_eq!(slow.phase, Phase::Paused, "{slow:?}");
    assert!(
        slow.reason
            .unwrap_or_default()
            .contains("waiting for the pre-rollout"),
        "still waiting"
    );
    assert!(
        !w.vamp.settle_rollout_calls(Duration::ZERO).await,
        "the slow webhook is still being asked"
    );
}

#[tokio::test]
async fn refused_when_this_vamp_cannot_call_out() {
    let w = world_calling(&["shop"], false).await;
    for (text, kind, at) in [
        (
            spec("shop", PROMETHEUS, ""),
            "UnsupportedRolloutMetric",
            "analysis.metrics[0].provider",
        ),
        (
            spec(
                "shop",
                "    - {metric: success-rate, min: 99%}\n",
                "webhooks:\n  - {type: event, url: \"http://hooks.test/e\"}\n",
            ),
            "InvalidRolloutError",
            "webhooks[0]",
        ),
    ] {
        let a = dsl::read(&text, None).unwrap().remove(0);
        let err = w.vamp.put(a).await.unwrap_err();
        let shown = format!("{err:?}");
        assert!(shown.contains(kind) && shown.contains(at), "{shown}");
    }
    assert!(
        w.vamp.rollouts().await.unwrap().is_empty(),
        "nothing stored"
    );
}

#[tokio::test]
async fn a_window_shorter_than_two_scrapes_is_warned_about() {
    let mut w = world(&["shop"]).await;
    w.provider.period(Some(Duration::from_secs(15)));
    w.provider.answer(Ok(Reading::Number(0.0)));
    w.start(&spec("shop", PROMETHEUS, "")).await;
    w.tick(0).await;
    let warned = vamp_core::testkit::eventually("the warning", || {
        let vamp = w.vamp.clone();
        async move {
            let found = vamp
                .events(
                    &EventFilter {
                        tags: vec!["rollouts:shop".into(), "warning".into()],
                        ..EventFilter::default()
                    },
                    Page::ALL,
                )
                .await
                .ok()?;
            found.items.into_iter().next()
        }
    })
    .await;
    let text = warned.event.value["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        text.contains("(10s)") && text.contains("(15s)") && text.contains("at least 30s"),
        "{text}"
    );
}

#[tokio::test]
async fn only_the_hosts_allowed_are_called() {
    let w = world_with(
        &["shop"],
        true,
        vamp_core::VampConfig {
            call_hosts: vec!["127.0.0.1".into()],
            ..vamp_core::VampConfig::default()
        },
    )
    .await;
    let refused = w
        .vamp
        .put(
            dsl::read(&spec("shop", PROMETHEUS, ""), None)
                .unwrap()
                .remove(0),
        )
        .await
        .unwrap_err();
    let shown = format!("{refused:?}");
    assert!(
        shown.contains("prom.test")
            && shown.contains("analysis.metrics[0].url")
            && shown.contains("call_hosts"),
        "{shown}"
    );
    let allowed = spec("shop", PROMETHEUS, "").replace("prom.test:9090", "127.0.0.1:9090");
    w.vamp
        .put(dsl::read(&allowed, None).unwrap().remove(0))
        .await
        .unwrap();
}
