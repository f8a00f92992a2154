//! The PostgreSQL persistence against a real PostgreSQL 15: the shared conformance kit on the
//! server scripts/test.sh starts, restart survival, and an outage test on a private cluster.
#![cfg(feature = "postgres")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use vamp_core::Error;
use vamp_core::model::{Event, Kind};
use vamp_core::testkit::services::service;
use vamp_core::testkit::{eventually_blocking, eventually_within, unique, within_limit};
use vamp_core::traits::{Page, Persistence, Precondition};
use vamp_drivers::postgres::PostgresPersistence;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_persistence_kit() {
    let Some(url) = service("postgres") else {
        return;
    };
    let db = PostgresPersistence::connect(&url)
        .await
        .expect("connect to the test postgres");
    vamp_core::testkit::persistence::run_all(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_passes_the_election_kit() {
    let Some(url) = service("postgres") else {
        return;
    };
    // A pool per server, on one scope of their own.
    let scope = unique("election");
    vamp_core::testkit::election::conforms(
        || async {
            let db = PostgresPersistence::connect(&url).await.expect("connect");
            Box::new(db.election(scope.as_str())) as Box<dyn vamp_core::traits::LeaderElection>
        },
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_appended_by_another_server_reach_this_ones_subscribers_once() {
    use futures::StreamExt;
    let Some(url) = service("postgres") else {
        return;
    };
    let (here, there) = (
        PostgresPersistence::connect(&url).await.expect("connect"),
        PostgresPersistence::connect(&url).await.expect("connect"),
    );
    let mut stream = here.subscribe().await.expect("subscribe");
    let tag = unique("foreign");
    let theirs = there
        .append_event(&Event::new([tag.as_str(), "there"], json!(1)))
        .await
        .expect("append there");
    let ours = here
        .append_event(&Event::new([tag.as_str(), "here"], json!(2)))
        .await
        .expect("append here");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("both events within 10 s")
            .expect("the stream goes on")
            .expect("an event");
        if next.event.tags.contains(&tag) {
            seen.push(next.id);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, [theirs.id, ours.id], "each once, with its stored id");
    // Nothing more of ours (no echo of our own append through the database).
    let more = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match stream.next().await {
                Some(Ok(e)) if e.event.tags.contains(&tag) => return e.id,
                Some(_) => {}
                None => std::future::pending::<()>().await,
            }
        }
    })
    .await;
    assert!(more.is_err(), "an event came twice: {more:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_lease_writes_nothing() {
    use vamp_core::traits::{Candidate, LeaderElection};
    let Some(url) = service("postgres") else {
        return;
    };
    let (db_a, db_b) = (
        PostgresPersistence::connect(&url).await.expect("connect"),
        PostgresPersistence::connect(&url).await.expect("connect"),
    );
    let scope = unique("fence");
    let (ea, eb) = (db_a.election(scope.as_str()), db_b.election(scope.as_str()));
    let node = |n: &str| Candidate {
        node: n.to_owned(),
        url: String::new(),
    };
    let ttl = Duration::from_secs(1);
    let first = ea.campaign(&node("a"), ttl).await.expect("campaign");
    assert!(first.leader);
    let fence_a = ea.fence("a", first.term).expect("postgres fences");
    let name = unique("fenced");
    db_a.put_fenced(
        Kind::Breed,
        &name,
        &json!({"v": 1}),
        Precondition::Any,
        &fence_a,
    )
    .await
    .expect("the leader writes");
    // A paused leader: its lease runs out, b takes over.
    let second = eventually_within("b to lead", Duration::from_secs(10), || async {
        let l = eb.campaign(&node("b"), ttl).await.ok()?;
        l.leader.then_some(l)
    })
    .await;
    let refused = db_a
        .put_fenced(
            Kind::Breed,
            &name,
            &json!({"v": 2}),
            Precondition::Any,
            &fence_a,
        )
        .await
        .expect_err("a stale term is refused");
    assert!(
        matches!(&refused, Error::Fenced { term, node, .. } if *term == first.term && node == "a"),
        "{refused}"
    );
    let stored = db_b
        .get(Kind::Breed, &name)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(
        stored.value,
        json!({"v": 1}),
        "nothing written with the stale term"
    );
    assert_eq!(stored.revision, 1);
    // The new leader writes with its own term; another node with that term may not.
    let fence_b = eb.fence("b", second.term).expect("fence");
    db_b.put_fenced(
        Kind::Breed,
        &name,
        &json!({"v": 3}),
        Precondition::Any,
        &fence_b,
    )
    .await
    .expect("the new leader writes");
    let impostor = vamp_core::traits::Fence {
        node: "a".into(),
        ..fence_b
    };
    assert!(matches!(
        db_a.put_fenced(
            Kind::Breed,
            &name,
            &json!({"v": 4}),
            Precondition::Any,
            &impostor
        )
        .await,
        Err(Error::Fenced { .. })
    ));
    assert_eq!(
        db_a.get(Kind::Breed, &name)
            .await
            .expect("get")
            .expect("stored")
            .value,
        json!({"v": 3})
    );
}

/// An election on another store (etcd, ZooKeeper) fences with tokens: once a larger term has
/// been raised or has written, a smaller one writes nothing — however it was paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_fencing_token_writes_nothing_once_a_larger_one_is_raised() {
    use vamp_core::traits::Fence;
    let Some(url) = service("postgres") else {
        return;
    };
    let (db_a, db_b) = (
        PostgresPersistence::connect(&url).await.expect("connect"),
        PostgresPersistence::connect(&url).await.expect("connect"),
    );
    let scope = format!("etcd:/{}", unique("token"));
    let (old, new) = (Fence::token(&scope, "a", 41), Fence::token(&scope, "b", 57));
    let name = unique("tokened");
    let put = |db: &PostgresPersistence, v: u64, fence: &Fence| {
        let (db, fence, name) = (db.clone(), fence.clone(), name.clone());
        async move {
            db.put_fenced(
                Kind::Breed,
                &name,
                &json!({"v": v}),
                Precondition::Any,
                &fence,
            )
            .await
        }
    };
    db_a.raise_fence(&old)
        .await
        .expect("the first leader raises");
    put(&db_a, 1, &old).await.expect("the first leader writes");
    // A new leader raises its term before it acts: the old one's next write is refused.
    db_b.raise_fence(&new).await.expect("the new leader raises");
    let refused = put(&db_a, 2, &old)
        .await
        .expect_err("a smaller term is refused");
    assert!(
        matches!(&refused, Error::Fenced { term: 41, node, .. } if node == "a"),
        "{refused}"
    );
    put(&db_b, 3, &new).await.expect("the new leader writes");
    // Its term again, from another node: refused; an old term cannot be raised again.
    assert!(matches!(
        put(&db_a, 4, &Fence::token(&scope, "a", 57)).await,
        Err(Error::Fenced { .. })
    ));
    assert!(matches!(
        db_a.raise_fence(&old).await,
        Err(Error::Fenced { .. })
    ));
    let stored = db_a
        .get(Kind::Breed, &name)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!((stored.value, stored.revision), (json!({"v": 3}), 2));
    // Each write records the term it was made in: what docs/ha.md's check reads.
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let terms: Vec<(Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT fence_scope, fence_term FROM artifact_revisions WHERE name = $1 ORDER BY revision",
    )
    .bind(&name)
    .fetch_all(&pool)
    .await
    .expect("revisions");
    assert_eq!(
        terms,
        [
            (Some(scope.clone()), Some(41)),
            (Some(scope.clone()), Some(57))
        ]
    );
    // A lease fence records nothing of its own (its lease row is the record).
    db_a.raise_fence(&Fence::lease(&scope, "a", 1))
        .await
        .expect("nothing to raise");
}

/// What each server publishes (its router's counters) is replaced in place and read by all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_publishes_one_record_per_topic_that_every_connection_reads() {
    let Some(url) = service("postgres") else {
        return;
    };
    let (db_a, db_b) = (
        PostgresPersistence::connect(&url).await.expect("connect"),
        PostgresPersistence::connect(&url).await.expect("connect"),
    );
    let topic = unique("topic");
    db_a.publish(&topic, "a", &json!({"n": 1}))
        .await
        .expect("publish");
    db_a.publish(&topic, "a", &json!({"n": 2}))
        .await
        .expect("again");
    db_b.publish(&topic, "b", &json!([1, 2]))
        .await
        .expect("publish");
    let read = db_b
        .published(&topic, Duration::from_secs(60))
        .await
        .expect("read");
    let by_node: Vec<(&str, &serde_json::Value)> =
        read.iter().map(|p| (p.node.as_str(), &p.value)).collect();
    assert_eq!(by_node, [("a", &json!({"n": 2})), ("b", &json!([1, 2]))]);
    assert!(read.iter().all(|p| p.age < Duration::from_secs(60)));
    assert!(
        db_a.published(&unique("other"), Duration::from_secs(60))
            .await
            .expect("read")
            .is_empty()
    );
}

/// The lock servers share across processes: a second holder waits until the first lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_lock_excludes_another_connection_until_dropped() {
    let Some(url) = service("postgres") else {
        return;
    };
    let (db_a, db_b) = (
        PostgresPersistence::connect(&url).await.expect("connect"),
        PostgresPersistence::connect(&url).await.expect("connect"),
    );
    let name = unique("lock");
    let held = db_a
        .lock_shared(&name)
        .await
        .expect("lock")
        .expect("postgres locks");
    let (taken_tx, mut taken_rx) = tokio::sync::oneshot::channel();
    let key = format!("vamp-lock/{name}");
    let waiter = tokio::spawn(async move {
        let second = db_b.lock_shared(&name).await.expect("lock");
        let _ = taken_tx.send(());
        second
    });
    // While a holds it, b waits: the database shows b's request as not granted.
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    eventually_within("b to wait for the lock", Duration::from_secs(10), || {
        let (pool, key) = (pool.clone(), key.clone());
        async move {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 1)",
            )
            .bind(key)
            .fetch_one(&pool)
            .await
            .ok()?;
            (waiting > 0).then_some(())
        }
    })
    .await;
    assert!(taken_rx.try_recv().is_err(), "b took a held lock");
    drop(held);
    within_limit("b to take the lock", Duration::from_secs(10), waiter)
        .await
        .expect("waiter")
        .expect("b holds it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_and_events_survive_a_new_connection_and_numbering_continues() {
    let Some(url) = service("postgres") else {
        return;
    };
    let name = unique("reopen");
    {
        let db = PostgresPersistence::connect(&url).await.expect("connect");
        db.put(Kind::Breed, &name, &json!({"v": 1}), Precondition::Any)
            .await
            .expect("put");
        db.put(Kind::Breed, &name, &json!({"v": 2}), Precondition::Any)
            .await
            .expect("put");
        db.append_event(&Event::new([format!("reopen:{name}")], json!(1)))
            .await
            .expect("event");
    }
    let db = PostgresPersistence::connect(&url).await.expect("reconnect");
    let got = db
        .get(Kind::Breed, &name)
        .await
        .expect("get")
        .expect("still there");
    assert_eq!((got.revision, got.value), (2, json!({"v": 2})));
    let next = db
        .put(
            Kind::Breed,
            &name,
            &json!({"v": 3}),
            Precondition::Revision(2),
        )
        .await
        .expect("put");
    assert_eq!(next.revision, 3);
    let filter = vamp_core::traits::EventFilter::tags([format!("reopen:{name}")]);
    assert_eq!(
        db.query_events(&filter, Page::default())
            .await
            .expect("events")
            .total,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_and_tags_are_data_not_sql() {
    let Some(url) = service("postgres") else {
        return;
    };
    let db = PostgresPersistence::connect(&url).await.expect("connect");
    let name = format!("x'); DROP TABLE artifacts; --{}", unique(""));
    db.put(Kind::Breed, &name, &json!("v"), Precondition::Absent)
        .await
        .expect("put");
    assert!(db.get(Kind::Breed, &name).await.expect("get").is_some());
    let tag = format!("t' OR '1'='1{}", unique(""));
    db.append_event(&Event::new([tag.clone()], json!(null)))
        .await
        .expect("event");
    let filter = vamp_core::traits::EventFilter::tags([tag]);
    assert_eq!(
        db.query_events(&filter, Page::default())
            .await
            .expect("query")
            .total,
        1
    );
    assert!(
        db.list(Kind::Breed, Page::default())
            .await
            .expect("list")
            .total
            >= 1
    );
}

/// A private cluster under a directory postgres owns, stopped by its postmaster PID.
struct PrivatePostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn init(bin: PathBuf, dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivatePostgres {
            bin,
            dir: dir.to_owned(),
            port,
        }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off",
            self.port,
            self.dir.display()
        );
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("postgres.log"))
            .args(["-w", "-t", "30", "-o", &options, "start"])
            .output()
            .expect("pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// SIGINT (fast shutdown) to the postmaster's PID; waits until it is gone.
    fn stop(&self) {
        let Ok(pidfile) = std::fs::read_to_string(self.dir.join("data/postmaster.pid")) else {
            return;
        };
        let Some(pid) = pidfile.lines().next().map(str::trim).map(str::to_owned) else {
            return;
        };
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        eventually_blocking("postgres to exit", Duration::from_secs(20), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fails_calls_clearly_and_the_store_recovers_with_nothing_lost() {
    let Some(_) = service("postgres") else { return };
    let bin = PathBuf::from(
        std::env::var("VAMP_TEST_POSTGRES_BIN")
            .expect("VAMP_TEST_POSTGRES_BIN is set with postgres"),
    );
    let dir = tempfile::Builder::new()
        .prefix("pg")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let pg = PrivatePostgres::init(bin, dir.path());
    pg.start();
    let db = PostgresPersistence::connect_with(&pg.url(), Duration::from_secs(2))
        .await
        .expect("connect");
    for i in 0..10 {
        db.put(Kind::Breed, &format!("b{i}"), &json!(i), Precondition::Any)
            .await
            .expect("put before");
        db.append_event(&Event::new(["outage"], json!(i)))
            .await
            .expect("event before");
    }

    pg.stop();
    for i in 10..13 {
        let err = within_limit(
            "a put during the outage to fail (timeout 2 s)",
            Duration::from_secs(4),
            db.put(Kind::Breed, &format!("b{i}"), &json!(i), Precondition::Any),
        )
        .await
        .expect_err("down");
        assert!(
            matches!(
                err,
                Error::Unavailable { .. } | Error::Timeout { .. } | Error::Backend { .. }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("postgres"),
            "the error names the backend: {err}"
        );
    }
    let got = within_limit(
        "a get during the outage to fail",
        Duration::from_secs(4),
        db.get(Kind::Breed, "b0"),
    )
    .await;
    assert!(got.is_err());

    pg.start();
    let ten = json!(10);
    let a = eventually_within("postgres to come back", Duration::from_secs(20), || {
        db.put(Kind::Breed, "b10", &ten, Precondition::Any)
    })
    .await;
    assert_eq!(a.revision, 1, "the failed write did not half-happen");
    assert_eq!(
        db.list(Kind::Breed, Page::new(1, 100))
            .await
            .expect("list")
            .total,
        11
    );
    let filter = vamp_core::traits::EventFilter::tags(["outage"]);
    assert_eq!(
        db.query_events(&filter, Page::default())
            .await
            .expect("events")
            .total,
        10
    );
}
