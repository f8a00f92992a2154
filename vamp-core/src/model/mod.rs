//! Artifacts as plain Rust values (spec §1).
//!
//! Readers live in [`crate::dsl`]; every type here derives (or implements) `Serialize` to its
//! normalized long form, which the readers accept back unchanged.

mod artifact;
mod blueprint;
mod breed;
mod deployment;
mod event;
pub mod expression;
mod gateway;
pub mod interpolation;
pub mod lookup;
pub mod names;
mod reference;
mod rollout;
mod sla;
mod template;
mod units;
mod workflow;

pub use artifact::{Artifact, Kind};
pub use blueprint::{Blueprint, Cluster, Scale, Service};
pub use breed::{
    Argument, Breed, DEFAULT_DEPLOYABLE_TYPE, Deployable, EnvVar, HealthCheck, Port, PortType,
    PortValue,
};
pub use deployment::{
    Deployment, DeploymentCluster, DeploymentService, Instance, Intention, Phase, PhaseName,
    ServiceHealth, ServiceStatus,
};
pub use event::{Aggregator, AggregatorType, DEFAULT_EVENT_TYPE, Event, EventQuery, TimeRange};
pub use gateway::{Condition, Gateway, GatewayPort, Mirror, Rewrite, Route, Sticky};
pub use reference::{Named, Ref, ReferenceStyle};
pub use rollout::{
    Analysis, Check, DEFAULT_CALL_TIMEOUT, Metric, MetricBound, MetricCheck, ProviderCheck,
    ProviderKind, Rollout, RolloutStep, TEMPLATE_VARIABLES, Webhook, WebhookKind,
    format_metric_value, render_template,
};
pub use sla::{Escalation, EscalationKind, ScaleBy, Sla, SlaKind};
pub use template::Template;
pub use units::{Cpu, Memory, Percentage, Seconds, UnitError};
pub use workflow::{Schedule, Workflow, WorkflowStatus, is_valid_period};

/// An ordered string-keyed map: source order is kept (route order matters for conditions).
pub type Map<V> = indexmap::IndexMap<String, V>;

/// Free-form metadata.
pub type Metadata = Map<serde_json::Value>;

/// Scheduler-specific settings by scheduler name (`marathon`, `kubernetes`, `docker`, …).
pub type Dialects = Map<serde_json::Value>;
