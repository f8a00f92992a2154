//! [`Vamp::run`]: the loops of a running Vamp — reconciliation, routing, retention, rollouts
//! and workflows — until shutdown.

use chrono::Utc;

use super::*;

impl Vamp {
    /// Runs reconciliation passes until `shutdown` resolves: at once when something changes
    /// through this `Vamp`, every [`VampConfig::converging`] while a service converges, and
    /// every [`VampConfig::resync`] otherwise. A failing pass is logged and retried. With
    /// [`VampConfig::sla_period`] set, an [`sla_pass`](Self::sla_pass) runs that often too.
    ///
    /// Beside the reconciler runs the routing loop: whatever changes routing (a gateway, a
    /// deployment's weights, a condition) reaches the router at once through
    /// [`route_now`](Self::route_now), without waiting for a reconciliation pass. Passes in
    /// progress finish before `run` returns.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let stopper = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        tokio::join!(
            stopper,
            self.election_loop(stopped.clone()),
            self.change_loop(stopped.clone()),
            self.publish_loop(stopped.clone()),
            self.reconcile_loop(stopped.clone()),
            self.routing_loop(stopped.clone()),
            self.retention_loop(stopped.clone()),
            Box::pin(self.rollout_loop(stopped.clone())),
            Box::pin(self.workflow_loop(stopped))
        );
    }

    /// [`run`](Self::run) in a background task, until [`Background::stop`]: for embedders
    /// and tests that hold the `Vamp` themselves.
    ///
    /// ```
    /// # async fn demo() -> vamp_core::Result<()> {
    /// let vamp = vamp_core::Vamp::builder()
    ///     .driver(std::sync::Arc::new(vamp_core::memory::MemoryDriver::default()))
    ///     .build()?;
    /// let running = vamp.start();
    /// // … store, deploy, watch …
    /// running.stop().await;
    /// # Ok(()) }
    /// ```
    pub fn start(&self) -> Background {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let vamp = self.clone();
        let task = tokio::spawn(async move {
            vamp.run(async {
                let _ = stopped.await;
            })
            .await;
        });
        Background { stop, task }
    }

    /// Applies [`VampConfig::retention`] now; returns how many events went.
    ///
    /// # Errors
    /// When the persistence fails (or cannot: `Unsupported`).
    pub async fn retain_events(&self) -> Result<u64> {
        match &self.inner.config.retention {
            Some(retention) => self.db().retain_events(retention, Utc::now()).await,
            None => Ok(0),
        }
    }

    pub(crate) async fn rollout_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let Some(period) = self.inner.config.rollout_period else {
            return;
        };
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                _ = every.tick() => {}
                () = self.inner.rollout_wake.notified() => {}
            }
            if !self.leads() {
                continue;
            }
            if let Err(e) = Box::pin(self.as_leader(self.rollout_pass())).await {
                tracing::warn!(error = %e, "rollout pass failed");
            }
        }
    }

    pub(crate) async fn retention_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        if self.inner.config.retention.is_none() {
            return;
        }
        let mut every = tokio::time::interval(self.inner.config.retention_period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                _ = every.tick() => {}
            }
            if !self.leads() {
                continue;
            }
            match self.as_leader(self.retain_events()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "event retention"),
                Err(e) => tracing::warn!(error = %e, "event retention failed"),
            }
        }
    }

    pub(crate) async fn reconcile_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        let mut sla = self.inner.config.sla_period.map(|period| {
            let mut every = tokio::time::interval(period);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every
        });
        loop {
            let wait = if self.leads() {
                match self.as_leader(self.reconcile()).await {
                    Ok(report) if !report.converged => self.inner.config.converging,
                    Ok(_) => self.inner.config.resync,
                    Err(e) => {
                        tracing::warn!(error = %e, "reconciliation pass failed");
                        self.inner.config.converging
                    }
                }
            } else {
                // A follower routes what is stored; the leader acts.
                if let Err(e) = self.route_now().await {
                    tracing::warn!(error = %e, "routing pass failed");
                }
                self.inner.config.resync
            };
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = tick(sla.as_mut()) => {
                    if !self.leads() {
                        continue;
                    }
                    if let Err(e) = self.as_leader(self.sla_pass()).await {
                        tracing::warn!(error = %e, "SLA pass failed");
                    }
                }
            }
        }
    }

    pub(crate) async fn routing_loop(&self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = until_stopped(&mut stopped) => return,
                () = self.inner.reroute.notified() => {}
            }
            if let Err(e) = self.route_now().await {
                tracing::warn!(error = %e, "routing pass failed; the next change or resync retries");
            }
        }
    }
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until_stopped(stopped: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The next tick of the SLA timer; never, without one.
async fn tick(every: Option<&mut tokio::time::Interval>) {
    match every {
        Some(every) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A [`Vamp::run`] in the background ([`Vamp::start`]).
#[derive(Debug)]
pub struct Background {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    /// Stops the loops and waits until the passes in progress have finished.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the Vamp loops ended abnormally");
        }
    }
}
