//! Workflows that run (spec §5.6): the pure planner — the status machine and the `daemon`,
//! `time` and `event` schedules on a clock the caller passes ([`plan`]) — ISO-8601 periods
//! ([`Period`]), and the runtime (`Vamp::workflow_pass`, run in `Vamp::run`) that starts the
//! runs and keeps their [`Executions`] — and the stock `health`, `metrics` and `allocation`
//! workflows ([`STOCK_WORKFLOWS`]).

mod host;
mod period;
pub mod plan;
pub(crate) mod runtime;
mod stock;

pub use host::WorkflowHost;
pub use period::Period;
pub use runtime::{
    Execution, ExecutionStatus, Executions, JAVASCRIPT, KEPT, MAX_LOG_LINES, WorkflowConfig,
    WorkflowLog,
};
pub use stock::{STOCK_WORKFLOWS, StockWorkflow};

#[cfg(test)]
mod tests;
