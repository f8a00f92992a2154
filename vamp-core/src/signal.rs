//! Shutdown on a signal, for the binaries (feature `signal`).

/// Resolves on SIGINT (Ctrl-C) or SIGTERM; on SIGINT alone where SIGTERM cannot be watched.
///
/// ```no_run
/// # async fn serve(stop: impl Future<Output = ()>) {}
/// # async fn run() {
/// serve(vamp_core::signal::shutdown()).await;
/// # }
/// ```
pub async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
