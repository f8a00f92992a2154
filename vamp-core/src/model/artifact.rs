//! Artifact kinds and the [`Artifact`] sum type.

use std::fmt;

use serde::Serialize;

use super::{
    Blueprint, Breed, Condition, Deployment, Escalation, Event, EventQuery, Gateway, Rewrite,
    Rollout, Route, Scale, Sla, Template, Workflow,
};

/// The kinds of artifacts (spec §1.1); written in the plural (`breeds`), read singular or plural.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `breeds`
    Breed,
    /// `blueprints`
    Blueprint,
    /// `deployments`
    Deployment,
    /// `gateways`
    Gateway,
    /// `routes`
    Route,
    /// `conditions`
    Condition,
    /// `rewrites`
    Rewrite,
    /// `scales`
    Scale,
    /// `slas`
    Sla,
    /// `escalations`
    Escalation,
    /// `workflows`
    Workflow,
    /// `events`
    Event,
    /// `event-queries`
    EventQuery,
    /// `templates`
    Template,
    /// `rollouts`: automated canary releases (issue 18).
    Rollout,
    /// The status of a rollout, kept apart from it so status changes are no revisions of the
    /// rollout. Internal: not in [`Kind::ALL`], not addressable through the API.
    RolloutStatus,
    /// What the workflow runtime keeps of a workflow (its schedule's progress), so a
    /// restarted server goes on without running anything twice. Internal, as
    /// [`Kind::RolloutStatus`].
    WorkflowState,
}

impl Kind {
    /// Every kind users write (not the internal [`Kind::RolloutStatus`]).
    pub const ALL: [Kind; 15] = [
        Kind::Breed,
        Kind::Blueprint,
        Kind::Deployment,
        Kind::Gateway,
        Kind::Route,
        Kind::Condition,
        Kind::Rewrite,
        Kind::Scale,
        Kind::Sla,
        Kind::Escalation,
        Kind::Workflow,
        Kind::Event,
        Kind::EventQuery,
        Kind::Template,
        Kind::Rollout,
    ];

    /// The plural name used by the API and in `kind:` fields.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Breed => "breeds",
            Kind::Blueprint => "blueprints",
            Kind::Deployment => "deployments",
            Kind::Gateway => "gateways",
            Kind::Route => "routes",
            Kind::Condition => "conditions",
            Kind::Rewrite => "rewrites",
            Kind::Scale => "scales",
            Kind::Sla => "slas",
            Kind::Escalation => "escalations",
            Kind::Workflow => "workflows",
            Kind::Event => "events",
            Kind::EventQuery => "event-queries",
            Kind::Template => "templates",
            Kind::Rollout => "rollouts",
            Kind::RolloutStatus => "rollout-status",
            Kind::WorkflowState => "workflow-state",
        }
    }

    /// The singular name.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::EventQuery => "event-query",
            other => other.plural().strip_suffix('s').unwrap_or(other.plural()),
        }
    }

    /// Reads a kind, singular or plural (decision Q3), `_` and `-` alike.
    ///
    /// ```
    /// use vamp_core::model::Kind;
    /// assert_eq!(Kind::parse("breed"), Some(Kind::Breed));
    /// assert_eq!(Kind::parse("slas"), Some(Kind::Sla));
    /// assert_eq!(Kind::parse("event_query"), Some(Kind::EventQuery));
    /// ```
    pub fn parse(text: &str) -> Option<Kind> {
        let t = text.trim().to_ascii_lowercase().replace('_', "-");
        Kind::ALL
            .into_iter()
            .find(|k| k.plural() == t || k.singular() == t)
    }

    /// True for artifacts stored by name (everything except events and event queries).
    pub fn is_stored(self) -> bool {
        !matches!(self, Kind::Event | Kind::EventQuery)
    }

    /// True for what Vamp keeps for itself (rollout status, workflow state), never read or
    /// written as an artifact through the DSL or the API.
    pub fn is_internal(self) -> bool {
        matches!(self, Kind::RolloutStatus | Kind::WorkflowState)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}

/// Any artifact.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "artifacts are moved rarely; boxing adds noise"
)]
pub enum Artifact {
    /// A breed.
    Breed(Breed),
    /// A blueprint.
    Blueprint(Blueprint),
    /// A deployment.
    Deployment(Deployment),
    /// A gateway.
    Gateway(Gateway),
    /// A stored route.
    Route(Route),
    /// A stored condition.
    Condition(Condition),
    /// A stored rewrite.
    Rewrite(Rewrite),
    /// A stored scale.
    Scale(Scale),
    /// A stored SLA.
    Sla(Sla),
    /// A stored escalation.
    Escalation(Escalation),
    /// A workflow.
    Workflow(Workflow),
    /// An event.
    Event(Event),
    /// An event query.
    EventQuery(EventQuery),
    /// A template.
    Template(Template),
    /// A rollout.
    Rollout(Rollout),
}

impl Artifact {
    /// The kind.
    pub fn kind(&self) -> Kind {
        match self {
            Artifact::Breed(_) => Kind::Breed,
            Artifact::Blueprint(_) => Kind::Blueprint,
            Artifact::Deployment(_) => Kind::Deployment,
            Artifact::Gateway(_) => Kind::Gateway,
            Artifact::Route(_) => Kind::Route,
            Artifact::Condition(_) => Kind::Condition,
            Artifact::Rewrite(_) => Kind::Rewrite,
            Artifact::Scale(_) => Kind::Scale,
            Artifact::Sla(_) => Kind::Sla,
            Artifact::Escalation(_) => Kind::Escalation,
            Artifact::Workflow(_) => Kind::Workflow,
            Artifact::Event(_) => Kind::Event,
            Artifact::EventQuery(_) => Kind::EventQuery,
            Artifact::Template(_) => Kind::Template,
            Artifact::Rollout(_) => Kind::Rollout,
        }
    }

    /// The name (empty for events and event queries).
    pub fn name(&self) -> &str {
        match self {
            Artifact::Breed(a) => &a.name,
            Artifact::Blueprint(a) => &a.name,
            Artifact::Deployment(a) => &a.name,
            Artifact::Gateway(a) => &a.name,
            Artifact::Route(a) => &a.name,
            Artifact::Condition(a) => &a.name,
            Artifact::Rewrite(a) => &a.name,
            Artifact::Scale(a) => &a.name,
            Artifact::Sla(a) => &a.name,
            Artifact::Escalation(a) => &a.name,
            Artifact::Workflow(a) => &a.name,
            Artifact::Template(a) => &a.name,
            Artifact::Rollout(a) => &a.name,
            Artifact::Event(_) | Artifact::EventQuery(_) => "",
        }
    }

    /// The normalized JSON form with `kind` first.
    pub fn to_json(&self) -> serde_json::Value {
        let body = match self {
            Artifact::Breed(a) => serde_json::to_value(a),
            Artifact::Blueprint(a) => serde_json::to_value(a),
            Artifact::Deployment(a) => serde_json::to_value(a),
            Artifact::Gateway(a) => serde_json::to_value(a),
            Artifact::Route(a) => serde_json::to_value(a),
            Artifact::Condition(a) => serde_json::to_value(a),
            Artifact::Rewrite(a) => serde_json::to_value(a),
            Artifact::Scale(a) => serde_json::to_value(a),
            Artifact::Sla(a) => serde_json::to_value(a),
            Artifact::Escalation(a) => serde_json::to_value(a),
            Artifact::Workflow(a) => serde_json::to_value(a),
            Artifact::Event(a) => serde_json::to_value(a),
            Artifact::EventQuery(a) => serde_json::to_value(a),
            Artifact::Template(a) => serde_json::to_value(a),
            Artifact::Rollout(a) => serde_json::to_value(a),
        }
        // Serializing plain data into a JSON value cannot fail (no non-string map keys).
        .unwrap_or(serde_json::Value::Null);
        let mut out = serde_json::Map::new();
        out.insert("kind".into(), self.kind().plural().into());
        if let serde_json::Value::Object(fields) = body {
            out.extend(fields);
        }
        serde_json::Value::Object(out)
    }
}
