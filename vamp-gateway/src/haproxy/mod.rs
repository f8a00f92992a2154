//! HAProxy as Vamp's data plane (spec §4): the configuration model and renderer, the
//! runtime-API client and process control.
//!
//! - [`text`]: names and quoted values that cannot inject configuration.
//! - [`acl`]: conditions as ACLs in disjunctive normal form (spec §1.7.2).
//! - [`config`]: the typed configuration and its `Display`.
//! - [`render`]: gateways → configuration in Vamp's layout (spec §4.2.2).
//! - [`runtime`]: the runtime API (weights, server states, statistics) over the admin socket.
//! - [`process`]: master-worker start, `haproxy -c`, seamless reload, read-back.
//! - [`local`] (feature `haproxy-local`): a `Router` driving one local HAProxy.
//! - [`kv`] (feature `haproxy-kv`): a `Router` publishing gateways for agents.

pub mod acl;
pub mod config;
#[cfg(feature = "haproxy-kv")]
pub mod kv;
#[cfg(feature = "haproxy-local")]
pub mod local;
pub mod process;
pub mod render;
pub mod runtime;
pub mod text;

/// `f` over `items` in order, shared out over the cores (at most 4, a thread each) once
/// there are `from` items or more; fewer are done on the calling thread in one share. The
/// results come back in the order of the shares. (Rendering and writing thousands of
/// gateways, issue 21.)
pub(crate) fn in_shares<T: Sync, R: Send>(
    items: &[T],
    from: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = cores_for(items.len(), from);
    if threads == 1 {
        return vec![f(items)];
    }
    let f = &f;
    let mut shares = items.chunks(items.len().div_ceil(threads));
    let first = shares.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let handles: Vec<_> = shares.map(|share| scope.spawn(move || f(share))).collect();
        // The first share on this thread: one thread fewer to start, and what it allocates
        // is freed where it was allocated (cross-thread frees cost the allocator more).
        let mut results = Vec::with_capacity(threads);
        results.push(f(first));
        results.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))),
        );
        results
    })
}

/// The threads to share `items` things out over: every core (at most 4) from `from` on,
/// else 1.
pub(crate) fn cores_for(items: usize, from: usize) -> usize {
    if items >= from {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    } else {
        1
    }
}
