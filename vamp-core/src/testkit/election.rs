//! The [`LeaderElection`] conformance kit: handles on one store, each with a connection of
//! its own as servers have, elect one leader; when the leader dies its lease runs out and
//! another takes over; a leader that resigns hands over at once; every new leader has a
//! larger term; a restarted server learns who leads.

use std::future::Future;
use std::time::Duration;

use crate::traits::{Candidate, LeaderElection};

fn candidate(node: &str) -> Candidate {
    Candidate {
        node: node.to_owned(),
        url: format!("http://{node}.test/api/v1"),
    }
}

/// Runs the kit on handles `connect` opens on one fresh election, with leases of `ttl` (a
/// few seconds: the kit waits for one to run out). A handle the kit drops is a server that
/// died: whatever its store keeps for it must end by itself.
///
/// # Panics
/// On the first broken rule, naming it.
pub async fn conforms<F, Fut>(connect: F, ttl: Duration)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Box<dyn LeaderElection>>,
{
    let (one, two) = (candidate("node-1"), candidate("node-2"));
    let (a, b) = (connect().await, connect().await);
    // The first to campaign leads; the other learns who.
    let first = a.campaign(&one, ttl).await.expect("campaign");
    assert!(first.leader, "the first candidate leads: {first:?}");
    assert!(first.term > 0, "a leader's term is above 0: {first:?}");
    assert_eq!(first.holder.as_ref(), Some(&one));
    let other = b.campaign(&two, ttl).await.expect("campaign");
    assert!(!other.leader, "one leader at a time: {other:?}");
    assert_eq!(other.term, first.term);
    assert_eq!(
        other.holder.as_ref(),
        Some(&one),
        "followers know the leader's URL"
    );
    // Renewing keeps the term; the follower stays a follower.
    let renewed = a.campaign(&one, ttl).await.expect("renew");
    assert!(renewed.leader && renewed.term == first.term, "{renewed:?}");
    let other = b.campaign(&two, ttl).await.expect("campaign");
    assert!(!other.leader, "{other:?}");
    // Resigning when not leading changes nothing.
    b.resign(&two).await.expect("resign");
    let still = a.campaign(&one, ttl).await.expect("renew");
    assert!(still.leader && still.term == first.term, "{still:?}");
    // The leader dies: once its lease runs out, the other takes over in a new term.
    drop(a);
    let taken = super::eventually_within(
        "the second candidate to lead after the first died",
        ttl * 4 + Duration::from_secs(10),
        || async {
            let l = b.campaign(&two, ttl).await.ok()?;
            l.leader.then_some(l)
        },
    )
    .await;
    assert!(
        taken.term > first.term,
        "a new leader, a larger term: {taken:?}"
    );
    assert_eq!(taken.holder.as_ref(), Some(&two));
    // Restarted, the first learns who leads now.
    let a = connect().await;
    let back = a.campaign(&one, ttl).await.expect("campaign");
    assert!(!back.leader, "a restarted server follows: {back:?}");
    assert_eq!(back.term, taken.term);
    assert_eq!(back.holder.as_ref(), Some(&two));
    // A leader that resigns hands over at once, to a larger term again.
    b.resign(&two).await.expect("resign");
    let after = a.campaign(&one, ttl).await.expect("campaign");
    assert!(
        after.leader,
        "the lead is free after a resignation: {after:?}"
    );
    assert!(after.term > taken.term, "{after:?}");
    a.resign(&one).await.expect("resign");
}
