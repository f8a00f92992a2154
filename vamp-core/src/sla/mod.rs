//! SLA evaluation and escalation planning (spec §1.9, §1.10, §5.5), as pure functions: the
//! [`Vamp`](crate::Vamp) runtime feeds them response times and scales and applies what they
//! return.
//!
//! - [`evaluate`]: a `response_time_sliding_window` SLA looks at the mean response time of
//!   each of the cluster's gateways over the window and takes the worst: above `upper` →
//!   [`Direction::Escalate`], below `lower` → [`Direction::DeEscalate`].
//! - [`plan`]: the cluster's escalations as one `to_one` group — escalating tries them from
//!   the head, de-escalating from the tail, and the first that can apply does. A scale
//!   escalation changes the **first service** of its target cluster (the SLA's own cluster
//!   unless `target` names another) by `scale_by`, and applies only if the result stays within
//!   `[minimum, maximum]`. `to_all` applies every member that can, each seeing the others'
//!   results (unlike Vamp, where one member that could not apply lost the earlier ones:
//!   spec §10 Q8).
//!
//! # Layout
//!
//! - `plan.rs` — pure: [`evaluate`], [`plan`], the escalation [`steps`] an SLA resolves to,
//!   and the mean of a sliding window ([`window_mean`]);
//! - `runtime.rs` — [`Vamp::sla_pass`](crate::Vamp::sla_pass): reads the deployments and the
//!   `metrics` events (the stock `metrics` workflow publishes them), feeds the planner,
//!   publishes SLA events and rescales.

mod plan;
pub(crate) mod runtime;

pub use plan::*;
pub use runtime::SlaReport;

#[cfg(test)]
mod tests;
