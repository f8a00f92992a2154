//! The one bounded poll of the tests (issue 20): for state that has no event to wait on.
//! Polls every 10 ms, backing off to 250 ms, until the check succeeds or the limit passes;
//! then panics naming what it waited for and the last answer it got.

use std::fmt::Debug;
use std::time::Duration;

use super::WAIT;

const FIRST: Duration = Duration::from_millis(10);
const SLOWEST: Duration = Duration::from_millis(250);

/// What a check answers: done with a value, or not yet (with what it saw, for the panic).
pub trait Attempt {
    /// The value a successful check gives.
    type Value;
    /// `Ok` when done; `Err` with what was seen otherwise.
    fn settle(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Attempt for Option<T> {
    type Value = T;
    fn settle(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl Attempt for bool {
    type Value = ();
    fn settle(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T, E: Debug> Attempt for Result<T, E> {
    type Value = T;
    fn settle(self) -> Result<T, Option<String>> {
        self.map_err(|e| Some(format!("{e:?}")))
    }
}

fn timed_out(what: &str, limit: Duration, last: Option<String>) -> ! {
    match last {
        Some(last) => panic!("timed out after {limit:?} waiting for {what}; last seen: {last}"),
        None => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// [`eventually_within`] [`WAIT`].
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut n = 0;
/// let got = vamp_core::testkit::eventually("the third call", || {
///     n += 1;
///     let v = (n == 3).then_some(n);
///     async move { v }
/// })
/// .await;
/// assert_eq!(got, 3);
/// # });
/// ```
pub async fn eventually<A, F, Fut>(what: &str, check: F) -> A::Value
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    eventually_within(what, WAIT, check).await
}

/// Polls `check` until it succeeds ([`Attempt`]: `Some`, `true`, `Ok`), for at most `limit`.
///
/// # Panics
/// On timeout, with `what` and the last `Err` the check gave.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// use std::time::Duration;
/// let mut n = 0;
/// vamp_core::testkit::eventually_within("five calls", Duration::from_secs(5), || {
///     n += 1;
///     let r: Result<(), String> = if n >= 5 { Ok(()) } else { Err(format!("call {n}")) };
///     async move { r }
/// })
/// .await;
/// # });
/// ```
pub async fn eventually_within<A, F, Fut>(what: &str, limit: Duration, mut check: F) -> A::Value
where
    A: Attempt,
    F: FnMut() -> Fut,
    Fut: Future<Output = A>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = FIRST;
    loop {
        let last = match check().await.settle() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if tokio::time::Instant::now() >= deadline {
            timed_out(what, limit, last);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(SLOWEST);
    }
}

/// [`eventually_within`] for code that cannot await: sleeps the thread between checks.
///
/// # Panics
/// On timeout, with `what` and the last `Err` the check gave.
///
/// ```
/// use std::time::Duration;
/// let t0 = std::time::Instant::now();
/// vamp_core::testkit::eventually_blocking("20 ms", Duration::from_secs(5), || {
///     t0.elapsed() >= Duration::from_millis(20)
/// });
/// ```
pub fn eventually_blocking<A: Attempt>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> A,
) -> A::Value {
    let deadline = std::time::Instant::now() + limit;
    let mut pause = FIRST;
    loop {
        let last = match check().settle() {
            Ok(v) => return v,
            Err(last) => last,
        };
        if std::time::Instant::now() >= deadline {
            timed_out(what, limit, last);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(SLOWEST);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_check_that_never_succeeds_panics_with_the_last_answer() {
        let outcome = tokio::spawn(async {
            eventually_within("never", Duration::from_millis(100), || async {
                Err::<(), _>("still 3 replicas")
            })
            .await;
        })
        .await;
        let panic = outcome.expect_err("a timeout panics").into_panic();
        let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(text.contains("waiting for never"), "{text}");
        assert!(text.contains("still 3 replicas"), "{text}");
    }
}
