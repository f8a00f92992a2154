//! DSL errors: one typed value per problem, from the catalogue of spec §1.15.

use std::fmt;

use super::node::Mark;

macro_rules! error_kinds {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// The kind of a DSL error: the names of Vamp's error catalogue (spec §1.15), so API
        /// clients and scripts can match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum ErrorKind {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorKind {
            /// Every error kind, in catalogue order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name),*];

            /// The catalogue name, e.g. `"RouteWeightError"`.
            pub fn name(self) -> &'static str {
                match self { $(ErrorKind::$name => stringify!($name),)* }
            }

            /// Looks a kind up by its catalogue name.
            pub fn from_name(name: &str) -> Option<ErrorKind> {
                match name { $(stringify!($name) => Some(ErrorKind::$name),)* _ => None }
            }
        }
    };
}

error_kinds! {
    /// The text is not valid YAML or JSON.
    YamlParsingError,
    /// A required field is missing.
    MissingPathValueError,
    /// A value has the wrong type (e.g. a list where a string is expected).
    UnexpectedTypeError,
    /// A nested element is not allowed here.
    UnexpectedInnerElementError,
    /// An unknown field (strict consumption, spec §1.1).
    UnexpectedElement,
    /// A value must be either a reference or an anonymous inline definition.
    EitherReferenceOrAnonymous,
    /// A named definition where only an anonymous one is allowed.
    NotAnonymousError,
    /// A name breaks the name rules (whitespace, `/`, `[`, `]`).
    IllegalName,
    /// A port or constant name breaks the strict name rules (also no `.`).
    IllegalStrictName,
    /// The name in the body differs from the name in the URL.
    InconsistentArtifactName,
    /// The `kind` field differs from the expected kind.
    InconsistentArtifactKind,
    /// `metadata` is not a map.
    UnsupportedMetadata,
    /// A value expression (`$…`) or condition cannot be parsed.
    ParserError,
    /// A trait value is a map or a list.
    MalformedTraitError,
    /// A port has no value.
    MissingPortValueError,
    /// A constant has no value.
    MissingConstantValueError,
    /// Dependencies form a cycle.
    RecursiveDependenciesError,
    /// A trait value refers to a dependency alias that is not declared.
    UnresolvedDependencyInTraitValueError,
    /// An `arguments` entry is not a single-entry map.
    InvalidArgumentError,
    /// An argument has an invalid value (`privileged` must be a boolean).
    InvalidArgumentValueError,
    /// A dependency cannot be resolved.
    UnresolvedDependencyError,
    /// A gateway refers to a port that no breed of the cluster has.
    UnresolvedGatewayPortError,
    /// A blueprint-scope environment variable names an unknown cluster or variable.
    UnresolvedEnvironmentVariableError,
    /// A breed appears more than once in a blueprint.
    NonUniqueBlueprintBreedReferenceError,
    /// An inline breed's dependency is not satisfied by the blueprint.
    UnresolvedBreedDependencyError,
    /// Route weights of a cluster gateway are negative or exceed 100%.
    RouteWeightError,
    /// A route condition strength is outside 0–100%.
    RouteConditionStrengthError,
    /// A scale escalation targets an unknown cluster.
    UnresolvedScaleEscalationTargetCluster,
    /// A blueprint has no services.
    NoServiceError,
    /// A service environment variable has no value.
    MissingEnvironmentVariableError,
    /// `sticky` is not one of route, instance, none.
    IllegalGatewayStickyValue,
    /// `virtual_hosts` is not a string or a list of strings.
    IllegalGatewayVirtualHosts,
    /// A cluster gateway route names a service that is not in the cluster.
    UnresolvedServiceRouteError,
    /// A gateway name has an unsupported form.
    UnsupportedGatewayNameError,
    /// A route path has an unsupported form.
    UnsupportedRoutePathError,
    /// `sticky` on a TCP port.
    StickyPortTypeError,
    /// A condition on a TCP port.
    ConditionPortTypeError,
    /// An anonymous cluster gateway in a cluster whose breeds do not have exactly one port.
    IllegalAnonymousRoutingPortMappingError,
    /// Gateway route weights do not total 0% or 100%.
    GatewayRouteWeightError,
    /// A gateway route condition strength is outside 0–100%.
    GatewayRouteConditionStrengthError,
    /// Two external gateways of a blueprint use the same port.
    DuplicateGatewayPortError,
    /// A rewrite is not of the form `<path> if <condition>`.
    UnsupportedPathRewriteError,
    /// A health check names a port the breed does not have.
    UnresolvedPortReferenceError,
    /// A health check has a negative `failures`.
    NegativeFailuresNumberError,
    /// A gateway port is outside 0–65535 or malformed.
    InvalidGatewayPortError,
    /// A route selector cannot be parsed.
    InvalidSelectorError,
    /// A route selector on a route that is not a single-segment route.
    RouteSelectorOnlyRouteError,
    /// A route selector together with an external target.
    RouteSelectorExternalTargetError,
    /// A workflow has no or an unknown schedule.
    UndefinedWorkflowScheduleError,
    /// A workflow time schedule has an invalid period.
    IllegalWorkflowSchedulePeriod,
    /// A workflow status is not one of the known ones.
    IllegalWorkflowStatus,
    /// An event has no tags.
    NoTagEventError,
    /// An event timestamp cannot be parsed.
    EventTimestampError,
    /// An event query combines lt+lte or gt+gte.
    EventQueryTimeError,
    /// An event query aggregator is unknown.
    UnsupportedAggregatorError,
    /// An event type breaks the name rule.
    EventTypeError,
    /// `import` is empty.
    EmptyImportError,
    /// `import` is malformed.
    ImportDefinitionError,
    /// `import` names an artifact that does not exist.
    ImportReferenceError,
    /// A reference names an artifact that does not exist.
    ArtifactNotFound,
    /// The document's kind is unknown.
    UnexpectedArtifact,
    /// A unit value (cpu, memory, time, percentage) is malformed.
    UnsupportedUnitValue,
    /// A docker-compose feature cannot be converted.
    UnsupportedComposeFeature,
    /// A port protocol other than TCP (docker-compose `/udp`).
    UnsupportedProtocolError,
    /// Operation layer: a route weight is not supported.
    UnsupportedRouteWeight,
    /// Operation layer: after a change the route weights no longer total 0% or 100%.
    InvalidRouteWeight,
    /// Operation layer: a placeholder (`~`) was left without a value.
    UnresolvedVariableValueError,
    /// Operation layer: a breed is used by more than one service of a deployment.
    NonUniqueBreedReferenceError,
    /// Operation layer: a gateway port is in use.
    UnavailableGatewayPortError,
    /// Operation layer: the gateway port range is exhausted.
    NoAvailablePortError,
    /// Operation layer: internal gateways cannot be created through the API.
    InternalGatewayCreateError,
    /// Operation layer: the routes of an internal gateway cannot be changed.
    InternalGatewayUpdateError,
    /// Operation layer: internal gateways cannot be removed while their deployment exists.
    InternalGatewayRemoveError,
    /// Operation layer: a deployment service failed.
    DeploymentServiceError,
    /// Operation layer: a deployment and a workflow have the same name.
    DeploymentWorkflowNameCollision,
    /// Operation layer: a workflow cannot be updated now.
    WorkflowUpdateError,
    /// Operation layer: a configuration value is invalid.
    InvalidConfigurationError,
    /// Operation layer: a value is over one of the server's limits (instances, CPU, memory,
    /// gateways, routes, name length).
    LimitExceededError,
    /// Operation layer: no configured container driver can run the breed's deployable.
    UnsupportedDeployableError,
    /// Operation layer: the configured router cannot evaluate a condition.
    UnsupportedConditionError,
    /// A rollout breaks a rule of its own (no steps, one route twice, two bounds on a check…).
    InvalidRolloutError,
    /// A rollout names a metric that is not built in, or one the router cannot measure.
    UnsupportedRolloutMetric,
    /// Operation layer: a rollout names a gateway or route that does not exist.
    UnresolvedRolloutRouteError,
    /// Operation layer: another rollout runs on the same gateway, or the rollout cannot change now.
    RolloutConflictError,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One problem found in DSL input: what, where (artifact path, line, column) and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct DslError {
    /// The catalogue kind.
    pub kind: ErrorKind,
    /// The artifact path, e.g. `clusters.frontend.services[1].breed` (empty = the document).
    pub path: String,
    /// 1-based line (0 when unknown, e.g. for input that did not come from text).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// A one-line hint on how to fix it.
    pub hint: String,
}

impl DslError {
    /// Builds an error.
    pub fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        mark: Mark,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        DslError {
            kind,
            path: path.into(),
            line: mark.line,
            column: mark.column,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// `message` with the path in front when there is one, then the hint.
    fn render(&self) -> String {
        let mut s = String::new();
        if !self.path.is_empty() {
            s.push_str(&self.path);
            s.push_str(": ");
        }
        s.push_str(&self.message);
        if !self.hint.is_empty() {
            s.push_str(" (hint: ");
            s.push_str(&self.hint);
            s.push(')');
        }
        s
    }

    /// Renders as `file:line:column: error[Kind]: message`, the CLI's format.
    pub fn display_with_file(&self, file: &str) -> String {
        format!(
            "{file}:{}:{}: error[{}]: {self}",
            self.line, self.column, self.kind
        )
    }

    /// The error as JSON: `{kind, path, line, column, message, hint}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind.name(),
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "hint": self.hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.name()), Some(*kind));
        }
    }

    #[test]
    fn display_names_path_and_hint() {
        let e = DslError::new(
            ErrorKind::RouteWeightError,
            "clusters.a.gateways.web",
            Mark { line: 3, column: 5 },
            "weights total 120%",
            "make them total 100%",
        );
        assert_eq!(
            e.display_with_file("bp.yml"),
            "bp.yml:3:5: error[RouteWeightError]: clusters.a.gateways.web: weights total 120% (hint: make them total 100%)"
        );
    }
}
