//! The stock workflows (spec §5.2–5.4): `health`, `metrics` and `allocation`, JavaScript
//! daemons an embedder installs with [`Vamp::install_stock_workflows`] (the server does on
//! every start) and that cannot be deleted or stopped afterwards — only suspended, or
//! updated (their environment sets their period and window).
//!
//! They read the router's counters through `vamp.traffic` ([`Vamp::traffic`]) where Vamp's
//! searched HAProxy's access logs in Elasticsearch, and publish the events the health and
//! metrics lookups (`/api/v1/health/…`, `/api/v1/metrics/…`) and the SLA runtime read. The
//! scripts are in this directory, each with what it publishes at its top.

use crate::model::{Artifact, Kind};
use crate::vamp::lock;
use crate::{Error, Result, Vamp};

/// A stock workflow: its name, its script, and the environment it is installed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockWorkflow {
    /// The workflow's name.
    pub name: &'static str,
    /// The JavaScript it runs.
    pub script: &'static str,
    /// `(variable, value)` of its environment: `VAMP_WORKFLOW_EXECUTION_PERIOD` and its window.
    pub environment: &'static [(&'static str, &'static str)],
}

/// The stock workflows, as installed.
pub const STOCK_WORKFLOWS: [StockWorkflow; 3] = [
    StockWorkflow {
        name: "health",
        script: include_str!("health.js"),
        environment: &[
            ("VAMP_WORKFLOW_EXECUTION_PERIOD", "10"),
            ("HEALTH_TIME_WINDOW", "60"),
        ],
    },
    StockWorkflow {
        name: "metrics",
        script: include_str!("metrics.js"),
        environment: &[
            ("VAMP_WORKFLOW_EXECUTION_PERIOD", "10"),
            ("METRICS_TIME_WINDOW", "10"),
        ],
    },
    StockWorkflow {
        name: "allocation",
        script: include_str!("allocation.js"),
        environment: &[("VAMP_WORKFLOW_EXECUTION_PERIOD", "60")],
    },
];

impl StockWorkflow {
    /// The workflow artifact, as YAML (spec §1.13): a `daemon` with an inline
    /// `application/javascript` breed `vamp-<name>:1` that declares the environment.
    ///
    /// ```
    /// let yaml = vamp_core::workflow::STOCK_WORKFLOWS[0].artifact_yaml();
    /// let read = vamp_core::dsl::read(&yaml, Some(vamp_core::model::Kind::Workflow)).unwrap();
    /// assert_eq!(read[0].name(), "health");
    /// ```
    #[must_use]
    pub fn artifact_yaml(&self) -> String {
        // A JSON string is a YAML string: the script needs no escaping rules of its own.
        let script = serde_json::Value::String(self.script.to_owned()).to_string();
        let env: String = self
            .environment
            .iter()
            .map(|(k, v)| format!("\n    {k}: \"{v}\""))
            .collect();
        format!(
            "name: {name}\nschedule: daemon\nbreed:\n  name: vamp-{name}:1\n  deployable:\n    type: application/javascript\n    definition: {script}\n  environment_variables:{env}\n",
            name = self.name
        )
    }
}

impl Vamp {
    /// Stores the stock workflows ([`STOCK_WORKFLOWS`]) that are not stored yet — a user's
    /// changes to one already there are kept — and protects all three from deletion and
    /// `stopping` from now on. Returns the names of those it stored.
    ///
    /// ```
    /// # async fn demo(vamp: vamp_core::Vamp) -> vamp_core::Result<()> {
    /// let installed = vamp.install_stock_workflows().await?;
    /// println!("installed {installed:?}");
    /// assert!(vamp.delete(vamp_core::model::Kind::Workflow, "health").await.is_err());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// When the store cannot be read or written.
    pub async fn install_stock_workflows(&self) -> Result<Vec<String>> {
        let mut installed = Vec::new();
        for stock in &STOCK_WORKFLOWS {
            lock(&self.inner.protected).insert(stock.name.to_owned());
            if self.get(Kind::Workflow, stock.name).await?.is_some() {
                continue;
            }
            let mut read =
                crate::dsl::read(&stock.artifact_yaml(), Some(Kind::Workflow)).map_err(|e| {
                    Error::Corrupt {
                        backend: "stock workflows",
                        message: format!("{}: {e}", stock.name),
                    }
                })?;
            let Some(workflow @ Artifact::Workflow(_)) = read.pop() else {
                continue;
            };
            self.put(workflow).await?;
            tracing::info!(workflow = stock.name, "stock workflow installed");
            installed.push(stock.name.to_owned());
        }
        Ok(installed)
    }

    /// Refuses to delete or stop a protected (stock) workflow.
    pub(crate) fn check_not_protected(&self, kind: Kind, name: &str) -> Result<()> {
        if kind == Kind::Workflow && lock(&self.inner.protected).contains(name) {
            return Err(Error::Refused {
                what: format!("workflow '{name}'"),
                message: format!(
                    "a stock workflow cannot be deleted or stopped; suspend it (PUT /api/v1/workflows/{name}/status suspended) or change its environment"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stock_workflow_reads_as_a_javascript_daemon() {
        for stock in &STOCK_WORKFLOWS {
            let read = crate::dsl::read(&stock.artifact_yaml(), Some(Kind::Workflow));
            let Ok(read) = read else {
                panic!("{}: {read:?}", stock.name);
            };
            let Some(Artifact::Workflow(w)) = read.first() else {
                panic!("{}: not a workflow", stock.name);
            };
            assert_eq!(w.name, stock.name);
            assert_eq!(w.schedule, crate::model::Schedule::Daemon);
            let crate::model::Ref::Inline(breed) = &w.breed else {
                panic!("an inline breed");
            };
            assert_eq!(breed.deployable.kind, super::super::JAVASCRIPT);
            assert_eq!(breed.deployable.definition, stock.script);
        }
    }

    /// A status set through the API while a pass planned from the older one wins: the pass's
    /// step is not applied over it.
    #[tokio::test]
    async fn a_pass_does_not_overwrite_a_status_set_since_it_read_it() {
        use crate::model::WorkflowStatus;
        let vamp = Vamp::builder()
            .driver(std::sync::Arc::new(crate::memory::MemoryDriver::default()))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        vamp.install_stock_workflows()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The pass read `starting` and planned `running`; the API set `suspending` since.
        vamp.set_workflow_status("metrics", WorkflowStatus::Suspending)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let after = vamp
            .change_workflow_status(
                "metrics",
                Some(WorkflowStatus::Starting),
                WorkflowStatus::Running,
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(after.map(|w| w.status), Some(WorkflowStatus::Suspending));
    }
}
